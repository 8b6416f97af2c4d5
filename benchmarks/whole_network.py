"""Whole-network BLG-PIAA (the paper's setting) on one device: where the time goes.

Everything at the paper's meta-training sizes (k=4 raters per outer iteration, S=5 inner
steps, 80 support / 20 query images at 224 px with the training augmentation),
EfficientNet-Lite0 + the 1024-512-1 head, on ``--device`` (``cuda`` where there is
one, else ``cpu``), in float32 and with ``mixed_precision=True`` (bfloat16 autocast):

- arithmetic: one Adam step of the whole network on 80 and on 20 decoded images (random
  tensors already on the device; channels-last weights, as the estimator trains a
  built-in backbone), and the outer iteration's k x S x (80 + 20) steps they add up to;
- decoding: the k x (80 + 20) JPEGs one outer iteration reads (decode, resize, random
  crop and flip, normalize), by the estimator's own batch loader, with its decoding
  threads and with one thread;
- ``MetaAestheticRegressor(train_backbone=True).fit``: seconds per outer iteration
  (its ``fit_time_``, after a one-iteration warm-up fit), against the sum of the two
  above (the next iteration's images are decoded while one trains, so it can beat
  that sum) and against the arithmetic alone; with every image decoded each time it
  is drawn (as on a data set larger than the estimator keeps decoded, FLICKR-AES's
  40,000 images) and with the decoded images kept (this small data set);
- ``personalize`` one rater on 100 images with the default fine-tuning (20 epochs, full
  batch) against 20 steps on 100 decoded images, and ``predict`` of the images;
- head-only mode on the same device: embedding images/s against the bare backbone
  forward, meta-training s/iteration on 1280-d embeddings, personalizing on 100
  embeddings, predicting 10,000.

The images are generated 500x375 JPEGs (about FLICKR-AES's photo size). Peak memory: the
process's maximum RSS and, on a GPU, torch's peak allocation.

Usage: ``python benchmarks/whole_network.py [--device cuda] [--iterations 5]
[--images 400] [--repeats 3] [--skip-head-only]``. On a CPU one outer iteration takes
minutes: use ``--device cpu --quick --iterations 1 --repeats 1`` (float32, one fit, one
personalization).
"""

import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np
import torch

import sklearn_piaa._estimator as estimator_module
from sklearn_piaa import MetaAestheticRegressor, embed_images
from sklearn_piaa._features import ImageDataset, decode_threads
from sklearn_piaa.nn import load_backbone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed import _median_time, print_table, whole_network_step  # noqa: E402

N_RATERS = 8


def jpeg_files(n, tmp, size=(500, 375)):
    """``n`` smooth random photos of ``size`` as JPEG files in ``tmp``."""
    from PIL import Image

    rng = np.random.RandomState(0)
    files = []
    for i in range(n):
        path = os.path.join(tmp, f"{i}.jpg")
        base = (rng.rand(12, 16, 3) * 255).astype(np.uint8)
        Image.fromarray(base).resize(size, Image.BICUBIC).save(path, quality=90)
        files.append(path)
    return files


def ratings(files, n_user, seed=0):
    """``N_RATERS`` raters, each scoring ``n_user`` of ``files``: ``X, y, groups``."""
    rng = np.random.RandomState(seed)
    X, groups = [], []
    for r in range(N_RATERS):
        X += [files[i] for i in rng.choice(len(files), n_user, replace=False)]
        groups += [f"rater{r}"] * n_user
    return X, rng.uniform(1, 5, len(X)), np.asarray(groups)


def decode_seconds(files, device, threads, a):
    """Seconds to load one outer iteration's k x (support + query) training images."""
    backbone = load_backbone(a.backbone, pretrained=False)
    data = {"images": ImageDataset(files, None, backbone.input_size, backbone.mean,
                                   backbone.std, train=True, threads=threads),
            "y": torch.zeros(len(files), device=device)}
    rng = np.random.RandomState(0)
    sets = [rng.choice(len(files), n, replace=False)
            for _ in range(a.tasks) for n in (a.support, a.query)]
    crops = data["images"].draw_crops(sum(len(idx) for idx in sets), rng)

    def load():
        pixels = MetaAestheticRegressor._pixels(data, (sets, crops))
        return MetaAestheticRegressor._batches(data, sets, device, pixels)
    return _median_time(load, a.repeats, device)


def fit_seconds(X, y, groups, params, iterations, keep_decoded=True, warm_up=True):
    """Seconds per outer iteration of ``fit`` (after a one-iteration warm-up fit).

    ``keep_decoded=False``: no decoded images kept between iterations, as with a data
    set larger than the estimator keeps (FLICKR-AES's 40,000 images).
    """
    kept = estimator_module.DECODED_CACHE
    estimator_module.DECODED_CACHE = kept if keep_decoded else 0
    try:
        if warm_up:
            MetaAestheticRegressor(n_iterations=1, **params).fit(X, y, groups=groups)
        meta = MetaAestheticRegressor(n_iterations=iterations, **params).fit(
            X, y, groups=groups)
    finally:
        estimator_module.DECODED_CACHE = kept
    return meta.fit_time_ / iterations, meta


def whole_network(files, device, a, mixed_precision):
    """Seconds per outer iteration of ``fit`` (without and with decoded images kept),
    of one ``personalize`` and of ``predict``.

    ``a.quick``: one fit (images kept, no warm-up; the first figure is then None), one
    ``personalize`` and one ``predict``.
    """
    X, y, groups = ratings(files, a.user_images)
    iterations, repeats, n_user = a.iterations, a.repeats, a.user_images
    params = dict(train_backbone=True, device=device, mixed_precision=mixed_precision,
                  tasks_per_batch=a.tasks, inner_steps=a.steps, support_size=a.support,
                  query_size=a.query, backbone=a.backbone, random_state=0)
    Xu, yu = X[:n_user], y[:n_user]
    if a.quick:
        per_it, meta = fit_seconds(X, y, groups, params, iterations, warm_up=False)
        start = time.perf_counter()
        net = meta.personalize(Xu, yu, random_state=0)
        pers = time.perf_counter() - start
        return None, per_it, pers, _median_time(lambda: net.predict(files), 1, device)
    cold, _ = fit_seconds(X, y, groups, params, iterations, keep_decoded=False)
    per_it, meta = fit_seconds(X, y, groups, params, iterations)
    meta.personalize(Xu, yu)  # warm-up
    pers = _median_time(lambda: meta.personalize(Xu, yu, random_state=0), repeats, device)
    net = meta.personalize(Xu, yu, random_state=0)
    pred = _median_time(lambda: net.predict(files), repeats, device)
    return cold, per_it, pers, pred


def head_only(files, device, a):
    """Head-only mode: embedding images/s, bare forward images/s, meta-training
    s/iteration, personalize (100 embeddings) and predict (10,000) seconds."""
    iterations, repeats = a.iterations, a.repeats
    embed_images(files[:64], a.backbone, device=device)  # warm-up
    emb = len(files) / _median_time(lambda: embed_images(files, a.backbone, device=device),
                                    repeats, device)
    backbone = load_backbone(a.backbone).eval().to(device)
    size = backbone.input_size
    batch = torch.randn(64, 3, size, size, device=device)
    with torch.inference_mode():
        backbone(batch)
        bare = 64 / _median_time(lambda: backbone(batch), repeats, device)
    rng = np.random.RandomState(0)
    X = rng.randn(20_000, 1280).astype(np.float32)  # EfficientNet-Lite0's width
    y = rng.uniform(1, 5, len(X))
    groups = np.repeat(np.arange(200), 100)
    params = dict(backbone=None, device=device, random_state=0)
    MetaAestheticRegressor(n_iterations=2, **params).fit(X, y, groups=groups)  # warm-up
    meta = MetaAestheticRegressor(n_iterations=10 * iterations, **params).fit(
        X, y, groups=groups)
    per_it = meta.fit_time_ / (10 * iterations)
    meta.personalize(X[:100], y[:100])
    pers = _median_time(lambda: meta.personalize(X[:100], y[:100], random_state=0),
                        repeats, device)
    net = meta.personalize(X[:100], y[:100], random_state=0)
    X10k = X[:10_000]
    net.predict(X10k)
    pred = _median_time(lambda: net.predict(X10k), repeats, device)
    return emb, bare, per_it, pers, pred


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--iterations", type=int, default=5,
                    help="outer iterations timed per fit")
    ap.add_argument("--images", type=int, default=400, help="distinct JPEG files")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the short timings")
    ap.add_argument("--skip-head-only", action="store_true",
                    help="leave out the head-only rows")
    ap.add_argument("--quick", action="store_true",
                    help="float32 only, one fit without warm-up, one personalize: for a "
                         "CPU, where an outer iteration takes minutes")
    # The paper's sizes; smaller ones only to check that the script runs.
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--tasks", type=int, default=4, help="raters per outer iteration (k)")
    ap.add_argument("--steps", type=int, default=5, help="inner steps (S)")
    ap.add_argument("--support", type=int, default=80, help="support images per rater")
    ap.add_argument("--query", type=int, default=20, help="query images per rater")
    ap.add_argument("--user-images", type=int, default=100,
                    help="images per rater, and of the rater personalized")
    args = ap.parse_args(argv)
    device = args.device
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    print(f"torch {torch.__version__}, device {device} ({name}), {torch.get_num_threads()} "
          f"threads, {os.cpu_count()} CPUs, {decode_threads()} decoding threads", flush=True)
    rows = []
    n_s, n_q, n_user = args.support, args.query, args.user_images
    precisions = (False,) if args.quick else (False, True)
    steps = {(n, mp): whole_network_step(n, args.repeats, mp, device, args.backbone)
             for n in sorted({n_s, n_q, n_user}) for mp in precisions}
    tmp = tempfile.TemporaryDirectory()
    files = jpeg_files(args.images, tmp.name)
    decode = decode_seconds(files, device, None, args)
    decode_1 = decode_seconds(files, device, 1, args)
    n_decoded = args.tasks * (n_s + n_q)
    rows.append((f"decode one outer iteration's {n_decoded} images, s", decode,
                 "one decoding thread", decode_1, decode_1 / decode, "x faster"))
    for mp in precisions:
        label = "bfloat16" if mp else "float32"
        arithmetic = args.tasks * args.steps * (steps[n_s, mp] + steps[n_q, mp])
        cold, per_it, pers, pred = whole_network(files, device, args, mp)
        print(f"{label}: {cold or per_it:.3f} s/iteration ({per_it:.3f} with decoded "
              f"images kept), personalize {pers:.3f} s, predict {pred:.3f} s", flush=True)
        rows.append((f"whole network ({label}): one Adam step on {n_s} images, s",
                     steps[n_s, mp], f"one step on {n_q} images", steps[n_q, mp], None, ""))
        if cold is not None:
            rows.append((f"  outer iteration, s/iteration ({label})", cold,
                         "its steps' arithmetic + decoding, s", arithmetic + decode,
                         (arithmetic + decode) / cold, "of that"))
            rows.append(("  same", cold, "its steps' arithmetic alone, s", arithmetic,
                         arithmetic / cold, "of that"))
        first = "same, " if cold else "outer iteration, one cold fit (no warm-up), "
        rows.append((f"  {first}decoded images kept (small data set)", per_it,
                     "its steps' arithmetic alone, s",
                     arithmetic, arithmetic / per_it, "of that"))
        rows.append(("  1000 iterations (the paper's), min", (cold or per_it) * 1000 / 60, "",
                     None, None, ""))
        rows.append((f"  personalize {n_user} images, 20 epochs, s ({label})", pers,
                     f"20 steps on {n_user} decoded images, s", 20 * steps[n_user, mp],
                     20 * steps[n_user, mp] / pers, "of that"))
        rows.append((f"  predict {len(files)} images, images/s ({label})",
                     len(files) / pred, "", None, None, ""))
    if not args.skip_head_only:
        emb, bare, per_it, pers, pred = head_only(files, device, args)
        rows.append(("head-only: embedding, images/s", emb, "bare backbone forward, batch 64",
                     bare, emb / bare, "of bare"))
        rows.append(("head-only: meta-training, s/iteration (paper sizes)", per_it, "", None,
                     None, ""))
        rows.append(("head-only: personalize 100 embeddings, s", pers, "target", 0.3,
                     0.3 / pers, "x target"))
        rows.append(("head-only: predict 10,000 embeddings, s", pred, "target", 0.1,
                     0.1 / pred, "x target"))
    print_table(rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = (f"; GPU peak allocated {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
           if device.startswith("cuda") else "")
    print(f"\npeak memory (max RSS) {peak:.0f} MiB{gpu}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
