"""Command line: ``sklearn-piaa demo`` runs the main job on the built-in benchmark."""

import argparse
import sys
import time

import numpy as np

from ._device import resolve_device
from ._estimator import MetaAestheticRegressor
from ._features import ImageEmbedder
from ._tasks import TaskSet
from .datasets import consensus_agreement, make_aesthetic_benchmark, read_ratings
from .evaluation import evaluate_personalization
from .model_selection import UserGroupShuffleSplit
from .nn import load_backbone
from .report import TABLE1_METHODS, compare_methods, format_table

__all__ = ["main", "run_demo", "run_table1"]


def _printer(out):
    def say(msg):
        print(msg, file=sys.stdout if out is None else out, flush=True)
    return say


def run_demo(n_images=1200, n_raters=60, images_per_rater=160, image_size=128,
             n_test_raters=12, n_support=(10, 100), n_repeats=3, backbone="efficientnet_lite0",
             n_iterations=300, outer_lr=0.1, random_state=0, verbose=1, out=None):
    """Meta-train on the built-in benchmark and report prior vs personalized SROCC.

    Parameters
    ----------
    n_images, n_raters, images_per_rater, image_size : int
        Size of the generated benchmark (see :func:`make_aesthetic_benchmark`).
    n_test_raters : int, default=12
        Raters held out of meta-training and personalized.
    n_support : tuple of int, default=(10, 100)
        Support sizes to personalize on.
    n_repeats : int, default=3
        Random support draws per held-out rater.
    backbone : str, default="efficientnet_lite0"
    n_iterations : int, default=300
    outer_lr : float, default=0.1
    random_state : int, default=0
    verbose : int, default=1
    out : file-like, default=None
        Where to print; ``None`` means standard output.

    Returns
    -------
    PersonalizationResult
    """
    say = _printer(out)
    t0 = time.perf_counter()
    data = make_aesthetic_benchmark(n_images=n_images, n_raters=n_raters,
                                    images_per_rater=images_per_rater, image_size=image_size,
                                    random_state=random_state)
    agree = consensus_agreement(data.y, data.groups, data.image_index)
    say(f"built-in benchmark: {n_images} images, {n_raters} raters x {images_per_rater} "
        f"ratings; rater vs leave-one-out consensus SROCC {np.nanmean(agree):.2f} "
        f"({time.perf_counter() - t0:.1f}s)")
    X = data.images[data.image_index]
    test_raters = data.rater_ids[-n_test_raters:]
    test = np.isin(data.groups, test_raters)

    meta = MetaAestheticRegressor(backbone=backbone, n_iterations=n_iterations,
                                  outer_lr=outer_lr, random_state=random_state,
                                  verbose=verbose)
    t1 = time.perf_counter()
    meta.fit(X[~test], data.y[~test], groups=data.groups[~test])
    say(f"meta-trained on {n_raters - n_test_raters} raters: {n_iterations} iterations "
        f"({time.perf_counter() - t1:.1f}s, of which meta-training {meta.fit_time_:.1f}s)")

    t2 = time.perf_counter()
    result = evaluate_personalization(
        meta, TaskSet.from_arrays(X[test], data.y[test], data.groups[test]),
        n_support=n_support, n_repeats=n_repeats, random_state=random_state)
    say(f"personalized {len(test_raters)} raters x {n_repeats} draws on "
        f"{' and '.join(map(str, n_support))} images ({time.perf_counter() - t2:.1f}s)")
    say("")
    say(f"SROCC on held-out raters (mean ± std over {n_test_raters} raters; the prior is "
        "scored on the same query images)")
    say(str(result))
    say(f"total {time.perf_counter() - t0:.1f}s")
    return result


def run_table1(args, out=None):
    """Run ``sklearn-piaa table1`` for parsed ``args``; returns the results dict."""
    say = _printer(out)
    t0 = time.perf_counter()
    if args.ratings:
        data = read_ratings(args.ratings, rater_col=args.rater_col, image_col=args.image_col,
                            score_col=args.score_col, image_root=args.image_root)
        X, y, groups = data.X, data.y, np.asarray(data.groups)
    else:
        data = make_aesthetic_benchmark(n_images=args.n_images, n_raters=args.n_raters,
                                        images_per_rater=args.images_per_rater,
                                        image_size=args.image_size,
                                        random_state=args.random_state)
        # A list of views: no copy of the pixels per rating.
        X = [data.images[i] for i in data.image_index]
        y, groups = data.y, data.groups
    # Embed each distinct image once; every method then trains on the same features.
    embedder = ImageEmbedder(load_backbone(args.backbone), resolve_device("cpu"))
    unique, inverse = embedder.transform_unique(X)
    F = unique[inverse]
    train, test = next(UserGroupShuffleSplit(1, test_size=args.test_fraction,
                                             random_state=args.random_state)
                       .split(F, y, groups))
    say(f"{len(set(groups))} raters ({len(set(groups[test]))} held out), {len(unique)} "
        f"images embedded ({time.perf_counter() - t0:.1f}s)")
    results = compare_methods(
        TaskSet.from_arrays(F[train], y[train], groups[train]),
        TaskSet.from_arrays(F[test], y[test], groups[test]),
        algorithms=args.algorithms, n_support=tuple(args.n_support),
        n_repeats=args.n_repeats, random_state=args.random_state, n_jobs=args.n_jobs,
        verbose=1, backbone=None, n_iterations=args.n_iterations, outer_lr=args.outer_lr)
    say(f"\nSROCC on held-out raters, mean ± std over raters ({args.n_repeats} draws each)")
    say(format_table(results))
    say(f"total {time.perf_counter() - t0:.1f}s")
    return results


def main(argv=None):
    """Entry point of the ``sklearn-piaa`` command."""
    parser = argparse.ArgumentParser(prog="sklearn-piaa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="meta-train on the built-in benchmark, personalize "
                                       "held-out raters at 10 and 100 images, print SROCC")
    demo.add_argument("--n-images", type=int, default=1200)
    demo.add_argument("--n-raters", type=int, default=60)
    demo.add_argument("--images-per-rater", type=int, default=160)
    demo.add_argument("--image-size", type=int, default=128)
    demo.add_argument("--n-test-raters", type=int, default=12)
    demo.add_argument("--n-support", type=int, nargs="+", default=[10, 100])
    demo.add_argument("--n-repeats", type=int, default=3)
    demo.add_argument("--backbone", default="efficientnet_lite0")
    demo.add_argument("--n-iterations", type=int, default=300)
    demo.add_argument("--outer-lr", type=float, default=0.1)
    demo.add_argument("--random-state", type=int, default=0)
    demo.add_argument("--quiet", action="store_true")
    table = sub.add_parser("table1", help="the paper's Table I: every method on the same "
                                          "held-out raters and support draws")
    table.add_argument("--ratings", help="a rater/image/score CSV (default: the built-in "
                                         "benchmark)")
    table.add_argument("--image-root", help="folder the CSV's image names are relative to")
    table.add_argument("--rater-col", default="rater")
    table.add_argument("--image-col", default="image")
    table.add_argument("--score-col", default="score")
    table.add_argument("--test-fraction", type=float, default=0.2)
    table.add_argument("--n-images", type=int, default=1200)
    table.add_argument("--n-raters", type=int, default=60)
    table.add_argument("--images-per-rater", type=int, default=160)
    table.add_argument("--image-size", type=int, default=128)
    table.add_argument("--algorithms", nargs="+", default=list(TABLE1_METHODS))
    table.add_argument("--n-support", type=int, nargs="+", default=[10, 100])
    table.add_argument("--n-repeats", type=int, default=3)
    table.add_argument("--n-iterations", type=int, default=300)
    table.add_argument("--outer-lr", type=float, default=0.1)
    table.add_argument("--backbone", default="efficientnet_lite0")
    table.add_argument("--n-jobs", type=int, default=None)
    table.add_argument("--random-state", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "table1":
        run_table1(args)
    if args.command == "demo":
        run_demo(n_images=args.n_images, n_raters=args.n_raters,
                 images_per_rater=args.images_per_rater, image_size=args.image_size,
                 n_test_raters=args.n_test_raters, n_support=tuple(args.n_support),
                 n_repeats=args.n_repeats,
                 backbone=args.backbone, n_iterations=args.n_iterations,
                 outer_lr=args.outer_lr, random_state=args.random_state,
                 verbose=0 if args.quiet else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
