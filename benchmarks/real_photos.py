"""Personalization on real photos scored by simulated raters: ``../shared/data/photos``.

The 1,000 photos are measured (:func:`~sklearn_piaa.datasets.measure_attributes`:
brightness, contrast, colourfulness, saturation, sharpness, noise, composition...)
and simulated raters score them from these attributes with a known taste model
(:func:`~sklearn_piaa.datasets.simulate_raters`, calibrated to real raters'
agreement with the consensus; the statistics are printed). The models never see the
attributes, only frozen EfficientNet-Lite0 embeddings of the photos, computed once.
Raters are split into folds (no rater on both sides); a prior is meta-trained on the
training raters, and each held-out rater is scored (SROCC) on the same query images
(all their images but the largest support set) after personalizing on 10 and on 100
of their other images. Reported beside it, on the same draws:

- ``prior``: the meta-trained prior alone (zero-shot);
- ``consensus``: the training raters' mean score of each image, each training rater's
  scores centred on their own mean first (raters rate different images, so their
  biases would otherwise leak into the consensus). A photo that no training rater
  rated gets the consensus predicted by a ridge regression (RidgeCV, weighted by
  the number of ratings) from its embedding, fitted on the photos they did rate;
- ``consensus + ridge``: the consensus plus a per-rater ridge regression (RidgeCV)
  of the rater's residual on the embeddings, fitted on the support images.

Usage: ``python benchmarks/real_photos.py [--raters 60] [--images-per-rater 200]
[--folds 3] [--repeats 3] [--iterations 300] [--support 10 100] [--max-photos N]``.
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
from sklearn_piaa.datasets import (
    consensus_agreement,
    measure_attributes,
    pairwise_agreement,
    simulate_raters,
)

PHOTOS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "photos")
ALPHAS = np.logspace(-1, 4, 11)


def _calibration(data):
    rho = consensus_agreement(data.y, data.groups, data.image_index)
    pair = pairwise_agreement(data.y, data.groups, data.image_index)
    per_rater = [data.y[data.groups == u] for u in data.rater_ids]
    print("simulated raters vs OASIS-beauty real raters (in brackets):")
    print(f"  Spearman with leave-one-out consensus: mean {np.nanmean(rho):.2f} (0.63), "
          f"median {np.nanmedian(rho):.2f} (0.66), p10 {np.nanpercentile(rho, 10):.2f} "
          f"(0.45), p90 {np.nanpercentile(rho, 90):.2f} (0.79)")
    print(f"  mean pairwise Spearman {np.nanmean(pair):.2f} (0.40; higher is expected with "
          f"fewer raters per image); within-rater sd {np.mean([v.std() for v in per_rater]):.2f}"
          f", sd of rater means {np.std([v.mean() for v in per_rater]):.2f} (1-5 scale)")
    print("  score histogram 1..5: "
          + " ".join(f"{np.mean(data.y == s):.2f}" for s in range(1, 6)))


def _consensus(F_img, y, groups, image_index, n_images):
    """Per-photo mean of rater-centred scores; unrated photos predicted from embeddings."""
    _, rater = np.unique(groups, return_inverse=True)
    centred = y - (np.bincount(rater, y) / np.bincount(rater))[rater]
    counts = np.bincount(image_index, minlength=n_images)
    sums = np.bincount(image_index, centred, minlength=n_images)
    rated = counts > 0
    consensus = np.zeros(n_images)
    consensus[rated] = sums[rated] / counts[rated]
    if (~rated).any() and rated.sum() >= 3:
        fill = RidgeCV(alphas=ALPHAS).fit(F_img[rated], consensus[rated],
                                          sample_weight=counts[rated])
        consensus[~rated] = fill.predict(F_img[~rated])
    return consensus, rated


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raters", type=int, default=60)
    ap.add_argument("--images-per-rater", type=int, default=200)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--support", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--outer-lr", type=float, default=0.1)
    ap.add_argument("--random-state", type=int, default=0)
    ap.add_argument("--max-photos", type=int, default=None,
                    help="use a random subset of this many photos (quick runs)")
    args = ap.parse_args(argv)
    if not os.path.isdir(PHOTOS):
        print(f"photos not found at {os.path.abspath(PHOTOS)}; nothing to do.")
        return 0
    paths = sorted(os.path.join(PHOTOS, f) for f in os.listdir(PHOTOS)
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))
    rng = np.random.RandomState(args.random_state)
    if args.max_photos is not None and args.max_photos < len(paths):
        paths = [paths[i] for i in np.sort(rng.choice(len(paths), args.max_photos, False))]
    supports = sorted(set(args.support))
    if args.images_per_rater > len(paths):
        ap.error(f"--images-per-rater {args.images_per_rater} exceeds the {len(paths)} photos")
    if supports[0] < 2 or supports[-1] > args.images_per_rater - 3:
        ap.error(f"--support sizes must lie in [2, images-per-rater - 3 = "
                 f"{args.images_per_rater - 3}]; got {supports}")
    warnings.simplefilter("ignore", UndefinedSROCCWarning)

    t0 = time.perf_counter()
    attributes, _ = measure_attributes(paths)
    t_measure = time.perf_counter() - t0
    data = simulate_raters(attributes, n_raters=args.raters,
                           images_per_rater=args.images_per_rater,
                           random_state=args.random_state)
    y, groups, image_index = data.y, data.groups, data.image_index
    print(f"{len(paths)} photos, {args.raters} simulated raters x {args.images_per_rater} "
          f"photos = {len(y)} ratings; attributes measured in {t_measure:.1f}s")
    _calibration(data)

    t1 = time.perf_counter()
    F_img = embed_images(paths)  # once; every fold and baseline works on the same features
    F = F_img[image_index]
    t_embed = time.perf_counter() - t1
    print(f"embedded {len(paths)} photos ({t_embed:.1f}s)", flush=True)

    names = ["prior", "consensus"] + [f"{m} @{k}" for k in supports
                                      for m in ("consensus + ridge", "personalized")]
    rows = {name: [] for name in names}
    n_filled, n_query = 0, 0
    t_meta = t_eval = 0.0
    cv = UserGroupKFold(args.folds, random_state=args.random_state)
    for fold, (train, test) in enumerate(cv.split(F, y, groups)):
        t2 = time.perf_counter()
        meta = MetaAestheticRegressor(backbone=None, n_iterations=args.iterations,
                                      outer_lr=args.outer_lr, random_state=args.random_state)
        meta.fit(F[train], y[train], groups=groups[train])
        t3 = time.perf_counter()
        consensus, rated = _consensus(F_img, y[train], groups[train], image_index[train],
                                      len(paths))
        for rater in np.unique(groups[test]):
            idx = np.flatnonzero(groups == rater)
            for _ in range(args.repeats):
                perm = rng.permutation(idx)
                qry = perm[supports[-1]:]
                c_qry = consensus[image_index[qry]]
                n_filled += int((~rated[image_index[qry]]).sum())
                n_query += len(qry)
                rows["prior"].append(srocc(y[qry], meta.predict(F[qry])))
                rows["consensus"].append(srocc(y[qry], c_qry))
                for k in supports:
                    sup = perm[:k]
                    resid = RidgeCV(alphas=ALPHAS).fit(
                        F[sup], y[sup] - consensus[image_index[sup]])
                    rows[f"consensus + ridge @{k}"].append(
                        srocc(y[qry], c_qry + resid.predict(F[qry])))
                    net = meta.personalize(F[sup], y[sup],
                                           random_state=rng.randint(2**31 - 1))
                    rows[f"personalized @{k}"].append(srocc(y[qry], net.predict(F[qry])))
        t4 = time.perf_counter()
        t_meta, t_eval = t_meta + t3 - t2, t_eval + t4 - t3
        print(f"fold {fold + 1}/{args.folds}: meta-train {t3 - t2:.1f}s, "
              f"evaluate {t4 - t3:.1f}s", flush=True)

    print(f"\nSROCC on held-out simulated raters of real photos, {args.repeats} draws per "
          f"rater, query = all but {supports[-1]} of each rater's photos "
          f"(mean ± std over rater-draws; nan dropped)")
    for name, values in rows.items():
        v = np.asarray(values, dtype=float)
        ok = np.isfinite(v)
        mean = f"{v[ok].mean():.3f} ± {v[ok].std():.3f}" if ok.any() else "  nan"
        print(f"  {name:<24} {mean}  (n={ok.sum()}, undefined {int((~ok).sum())})")
    print(f"query ratings whose photo no training rater rated (ridge-filled consensus): "
          f"{n_filled}/{n_query}")
    print(f"timings: measure {t_measure:.1f}s, embed {t_embed:.1f}s, meta-train {t_meta:.1f}s, "
          f"evaluate {t_eval:.1f}s, total {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
