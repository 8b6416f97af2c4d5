"""Choosing the support images: personalized SROCC of chosen versus random support sets.

A BLG-PIAA prior (``MetaAestheticRegressor(backbone=None, n_iterations=300,
outer_lr=0.1)`` over frozen EfficientNet-Lite0 embeddings, as ``sklearn-piaa table1``
fits it) is meta-trained on the training raters; each held-out rater is then
personalized on 10 and on 25 images picked from a pool by each
:class:`~sklearn_piaa.SupportSelector` strategy, and on as many drawn at random from
the same pool. :func:`~sklearn_piaa.compare_support_strategies` draws the query set
first and scores every strategy on it, so the differences to random are paired (same
raters, query images and fine-tuning seeds); they are given as mean ± standard error
over raters (:func:`~sklearn_piaa.report.paired_difference`).

Data (the same data and rater split as ``sklearn-piaa table1`` with its defaults):

- default: the built-in benchmark (1,200 images, 60 raters x 160 ratings, 128 px);
- ``--photos DIR``: real photos scored by simulated raters from measured attributes;
- ``--ratings CSV --image-root DIR``: a rater/image/score table of real raters (e.g.
  ``../shared/data/liking/ratings.csv``, 55 images per rater: use ``--n-query 20``).

Usage: ``python benchmarks/support_selection.py [--photos DIR | --ratings CSV
--image-root DIR] [--n-support 10 25] [--n-query 60] [--n-repeats 5]``.
"""

import argparse
import os
import sys
import time

import numpy as np

from sklearn_piaa import (
    MetaAestheticRegressor,
    SupportSelector,
    TaskSet,
    UserGroupShuffleSplit,
    compare_support_strategies,
    embed_images,
)
from sklearn_piaa._cli_common import image_files
from sklearn_piaa.datasets import (
    make_aesthetic_benchmark,
    measure_attributes,
    read_ratings,
    simulate_raters,
)
from sklearn_piaa.report import paired_difference

STRATEGIES = ("kcenter", "disagreement", "hybrid")


def add_data_arguments(ap):
    """The data, rater split and prior options (shared with ``finetune_defaults.py``)."""
    source = ap.add_mutually_exclusive_group()
    source.add_argument("--photos", help="folder of real photos (simulated raters)")
    source.add_argument("--ratings", help="a rater,image,score CSV of real raters")
    ap.add_argument("--image-root", help="folder the CSV's image names are relative to")
    ap.add_argument("--n-images", type=int, default=1200)
    ap.add_argument("--n-raters", type=int, default=60)
    ap.add_argument("--images-per-rater", type=int, default=160)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--n-iterations", type=int, default=300)
    ap.add_argument("--outer-lr", type=float, default=0.1)
    ap.add_argument("--cache-dir", default=None, help="on-disk embedding cache")
    ap.add_argument("--random-state", type=int, default=0)


def missing_data(args):
    """Say so and return True when a data path given on the command line is absent."""
    for path in (args.photos, args.ratings):
        if path and not os.path.exists(path):
            print(f"{path} not found; nothing to do.")
            return True
    return False


def split_raters(args):
    """Embeddings, scores and raters from ``args``, split into training and held-out
    raters (``(train_tasks, test_tasks)``); prints what was loaded and how long it took."""
    start = time.perf_counter()
    F, y, groups, what = _load(args)
    train, test = next(UserGroupShuffleSplit(1, test_size=args.test_fraction,
                                             random_state=args.random_state)
                       .split(F, y, groups))
    train_tasks = TaskSet.from_arrays(F[train], y[train], groups[train])
    test_tasks = TaskSet.from_arrays(F[test], y[test], groups[test])
    print(f"{what}; {len(train_tasks)} training and {len(test_tasks)} held-out raters "
          f"({time.perf_counter() - start:.1f}s)", flush=True)
    return train_tasks, test_tasks


def fit_prior(train_tasks, args):
    """The BLG prior as ``sklearn-piaa table1`` fits it."""
    return MetaAestheticRegressor(backbone=None, n_iterations=args.n_iterations,
                                  outer_lr=args.outer_lr,
                                  random_state=args.random_state).fit(train_tasks)


def _load(args):
    """Embeddings of each rating, its score and its rater."""
    if args.ratings:
        data = read_ratings(args.ratings, image_root=args.image_root)
        images = sorted(set(data.X))
        where = {path: i for i, path in enumerate(images)}
        index = np.array([where[x] for x in data.X])
        return (embed_images(images, cache_dir=args.cache_dir)[index], data.y,
                np.asarray(data.groups), f"{args.ratings}: {len(images)} images")
    if args.photos:
        files = image_files([args.photos])  # the same photos, in the order table1 uses
        attributes, _ = measure_attributes(files)
        data = simulate_raters(attributes, n_raters=args.n_raters,
                               images_per_rater=min(args.images_per_rater, len(files)),
                               random_state=args.random_state)
        return (embed_images(files, cache_dir=args.cache_dir)[data.image_index], data.y,
                data.groups, f"{args.photos}: {len(files)} photos, simulated raters")
    data = make_aesthetic_benchmark(n_images=args.n_images, n_raters=args.n_raters,
                                    images_per_rater=args.images_per_rater,
                                    image_size=args.image_size,
                                    random_state=args.random_state)
    return (embed_images(data.images, cache_dir=args.cache_dir)[data.image_index], data.y,
            data.groups, f"built-in benchmark: {args.n_images} images")


def format_support_table(results, sizes):
    """Rows per strategy and support size: SROCC over raters and the paired gain."""
    header = (f"{'strategy':<14}{'n_support':>10}{'SROCC mean ± std':>20}"
              f"{'vs random ± SE':>20}{'raters':>8}")
    lines = [header, "-" * len(header)]
    prior = results["random"].summary[sizes[0]]["prior"]
    lines.append(f"{'prior only':<14}{'-':>10}{prior.mean:>12.3f} ± {prior.std:.3f}")
    for k in sizes:
        for name, res in results.items():
            s = res.summary[k]["personalized"]
            row = f"{name:<14}{k:>10}{s.mean:>12.3f} ± {s.std:.3f}"
            if name != "random":
                mean, se, n = paired_difference(res, results["random"])[k]
                row += f"{mean:>+12.3f} ± {se:.3f}{n:>8}"
            lines.append(row)
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(ap)
    ap.add_argument("--n-support", type=int, nargs="+", default=[10, 25])
    ap.add_argument("--n-query", type=int, default=None,
                    help="query images per rater (default: 60; 20 with --ratings)")
    ap.add_argument("--n-repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if missing_data(args):
        return 0
    n_query = args.n_query or (20 if args.ratings else 60)
    sizes = sorted(set(args.n_support))

    t0 = time.perf_counter()
    train_tasks, test_tasks = split_raters(args)

    t1 = time.perf_counter()
    prior = fit_prior(train_tasks, args)
    selectors = {name: SupportSelector(name).fit(train_tasks) for name in STRATEGIES}
    print(f"BLG prior and selectors fitted ({time.perf_counter() - t1:.1f}s)", flush=True)

    t2 = time.perf_counter()
    results = compare_support_strategies(
        prior, test_tasks, selectors, n_support=tuple(sizes), n_query=n_query,
        n_repeats=args.n_repeats, random_state=args.random_state)
    print(f"personalized {len(test_tasks)} raters x {args.n_repeats} draws x "
          f"{len(results)} strategies ({time.perf_counter() - t2:.1f}s)\n")
    print(f"SROCC on {n_query} random query images per rater and draw (the same for "
          "every strategy); mean ± std over raters, paired difference to random ± SE")
    print(format_support_table(results, sizes))
    print(f"total {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
