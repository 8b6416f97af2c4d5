"""Personalization on real raters: the "liking" experiment in ``../shared/data/liking``.

100 people rated how much they like 55 images (0-500 slider). Raters are split into
folds (no rater on both sides); a prior is meta-trained on the training raters over
frozen EfficientNet-Lite0 embeddings, and each held-out rater is personalized on 10 of
their images and scored (SROCC) on the other 45 (a rater whose ratings are all equal is
left out, with a line that names them). Reported beside it, on the same draws:

- ``prior``: the meta-trained prior alone (zero-shot);
- ``consensus``: the training raters' mean score of each image (all raters rated the
  same 55 images, so this zero-shot baseline knows the query images' popularity);
- ``consensus + ridge``: the consensus plus a per-rater ridge regression of the rater's
  residual on the image embeddings, fitted on the 10 support images.

Usage: ``python benchmarks/real_raters.py [--folds 5] [--repeats 5] [--iterations 300]
[--hidden-sizes 1024 512]``.
Needs ``../shared`` (it exits with a message when that is absent).
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
from sklearn.linear_model import RidgeCV

from sklearn_piaa import (
    MetaAestheticRegressor,
    UndefinedSROCCWarning,
    UserGroupKFold,
    embed_images,
    srocc,
)
from sklearn_piaa.datasets import read_ratings

LIKING = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "liking")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n-support", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--outer-lr", type=float, default=0.1)
    ap.add_argument("--random-state", type=int, default=0)
    ap.add_argument("--hidden-sizes", type=int, nargs="+", default=None,
                    help="the head's hidden layers (default: the package's, 1024 512)")
    args = ap.parse_args(argv)
    if not os.path.isdir(LIKING):
        print(f"real-rater data not found at {os.path.abspath(LIKING)}; nothing to do.")
        return 0
    warnings.simplefilter("ignore", UndefinedSROCCWarning)
    t0 = time.perf_counter()
    data = read_ratings(os.path.join(LIKING, "ratings.csv"),
                        image_root=os.path.join(LIKING, "images"))
    # A rater who gave every image the same score orders no pair of images (undefined
    # SROCC): left out, as the package's warning advises, and said so.
    X, y, groups = data.X, data.y, np.asarray(data.groups)
    constant = data.tasks.constant_raters()
    if constant:
        keep = ~np.isin(groups, list(constant))
        X, y, groups = [x for x, k in zip(X, keep) if k], y[keep], groups[keep]
        print(f"left out {len(constant)} rater(s) whose ratings are all equal: "
              + ", ".join(f"{r!r} (all {v:g})" for r, v in constant.items()))
    images = sorted(set(X))
    image_id = np.array([images.index(x) for x in X])
    print(f"{len(set(groups))} raters, {len(images)} images, {len(y)} ratings")

    # Embed once; every fold and baseline then works on the same features.
    F = embed_images(images)[image_id]
    print(f"embedded {len(images)} images ({time.perf_counter() - t0:.1f}s)")

    rng = np.random.RandomState(args.random_state)
    rows = {"prior": [], "consensus": [], "consensus + ridge": [], "personalized": []}
    cv = UserGroupKFold(args.folds, random_state=args.random_state)
    for fold, (train, test) in enumerate(cv.split(F, y, groups)):
        t1 = time.perf_counter()
        head = {} if args.hidden_sizes is None else {"hidden_sizes": tuple(args.hidden_sizes)}
        meta = MetaAestheticRegressor(backbone=None, n_iterations=args.iterations,
                                      outer_lr=args.outer_lr, random_state=args.random_state,
                                      **head)
        meta.fit(F[train], y[train], groups=groups[train])
        consensus = np.array([y[train][image_id[train] == i].mean() for i in range(len(images))])
        for rater in np.unique(groups[test]):
            idx = np.flatnonzero(groups == rater)
            for _ in range(args.repeats):
                perm = rng.permutation(idx)
                sup, qry = perm[:args.n_support], perm[args.n_support:]
                rows["prior"].append(srocc(y[qry], meta.predict(F[qry])))
                rows["consensus"].append(srocc(y[qry], consensus[image_id[qry]]))
                resid = RidgeCV(alphas=np.logspace(-1, 4, 11)).fit(
                    F[sup], y[sup] - consensus[image_id[sup]])
                rows["consensus + ridge"].append(
                    srocc(y[qry], consensus[image_id[qry]] + resid.predict(F[qry])))
                net = meta.personalize(F[sup], y[sup], random_state=rng.randint(2**31 - 1))
                rows["personalized"].append(srocc(y[qry], net.predict(F[qry])))
        print(f"fold {fold + 1}/{args.folds}: {time.perf_counter() - t1:.1f}s", flush=True)
    print(f"\nSROCC on held-out real raters, {args.n_support} support images, "
          f"{args.repeats} draws per rater (mean ± std over rater-draws; nan dropped)")
    for name, values in rows.items():
        v = np.asarray(values, dtype=float)
        ok = np.isfinite(v)
        print(f"  {name:<18} {v[ok].mean():.3f} ± {v[ok].std():.3f}  "
              f"(n={ok.sum()}, undefined {int((~ok).sum())})")
    print(f"total {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
