"""End to end at FLICKR-AES scale: embed, meta-train, evaluate -- and where the time goes.

A synthetic stand-in of FLICKR-AES's size (40,000 images, 210 raters of which 37 are
held out, about 1,000 ratings per rater so that each image has about 5 raters) is
rendered by :func:`~sklearn_piaa.datasets.make_aesthetic_benchmark` and written to disk
as JPEG files, so that decoding is part of the measurement as it is on the real data
(the files are written just before, so they are read from the operating system's page
cache rather than the disk, and they are 256-pixel renderings, smaller than FLICKR-AES's
photos of about 500 pixels). The peak memory printed is the whole process's, rendering
included. Then, timed separately:

1. embedding every image with EfficientNet-Lite0 into an on-disk cache (against the
   bare forward pass of the network the embedder runs, BatchNorm folded, in the
   batches it runs, on decoded random tensors, timed just before and just after; not
   counted);
2. BLG meta-training, 1000 outer iterations at the paper's settings (head-only);
3. the paper's protocol on the 37 held-out raters: 10 and 100 support images,
   10 draws each (``evaluate_personalization``).

Usage: ``python benchmarks/flickr_scale.py [--scale 1.0] [--workdir DIR]
[--mixed-precision]``. ``--scale``
shrinks images, raters and iterations together (0.1: 4,000 images, 21 raters, 100
iterations) for a quick look; the printed table says which scale ran. The full scale
needs about 2 GB of disk under ``--workdir`` for JPEGs and cache.
"""

import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from sklearn_piaa import (
    MetaAestheticRegressor,
    TaskSet,
    embed_images,
    evaluate_personalization,
)
from sklearn_piaa._device import autocast
from sklearn_piaa._features import ImageEmbedder
from sklearn_piaa.datasets import make_aesthetic_benchmark
from sklearn_piaa.nn import load_backbone


def bare_forward_rate(mixed_precision, images=1280):
    """Images/s of the embedder's own network (BatchNorm folded, channels-last, in the
    batches it runs) on decoded random tensors: embedding if decoding cost nothing."""
    embedder = ImageEmbedder(load_backbone("efficientnet_lite0"), torch.device("cpu"),
                             mixed_precision=mixed_precision)
    net, step = embedder._inference_net(), embedder._forward_batch()
    x = torch.randn(step, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast("cpu", mixed_precision):
        net(x)
        t0 = time.perf_counter()
        for _ in range(images // step):
            net(x)
    return images // step * step / (time.perf_counter() - t0), step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--workdir", default=None, help="where JPEGs and the cache go "
                                                    "(default: a temporary folder)")
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--mixed-precision", action="store_true",
                    help="embed under bfloat16 autocast (mixed_precision=True)")
    args = ap.parse_args(argv)
    n_images = int(round(40_000 * args.scale))
    n_raters = max(4, int(round(210 * args.scale)))
    n_test = max(2, int(round(37 * args.scale)))
    per_rater = min(n_images, 1000)
    iterations = max(10, int(round(1000 * args.scale)))
    times = {}
    if args.workdir is not None:
        os.makedirs(args.workdir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        t0 = time.perf_counter()
        data = make_aesthetic_benchmark(n_images=n_images, n_raters=n_raters,
                                        images_per_rater=per_rater, image_size=256,
                                        random_state=0)
        files = []
        for i, img in enumerate(data.images):
            path = os.path.join(work, f"{i:05d}.jpg")
            Image.fromarray(img).save(path, quality=90)
            files.append(path)
        del data["images"]  # from here on the images exist only as files
        times["render + write JPEGs (setup, not counted)"] = time.perf_counter() - t0
        X = [files[i] for i in data.image_index]
        test_raters = set(data.rater_ids[-n_test:])
        test = np.array([g in test_raters for g in data.groups])
        train = TaskSet.from_arrays([x for x, t in zip(X, test) if not t], data.y[~test],
                                    data.groups[~test])
        held_out = TaskSet.from_arrays([x for x, t in zip(X, test) if t], data.y[test],
                                       data.groups[test])

        meta = MetaAestheticRegressor(n_iterations=iterations, cache_dir=os.path.join(
            work, "cache"), mixed_precision=args.mixed_precision, random_state=0, verbose=1)
        bare_before, step = bare_forward_rate(args.mixed_precision)
        t1 = time.perf_counter()
        embed_images(files, batch_size=64, cache_dir=os.path.join(work, "cache"),
                     mixed_precision=args.mixed_precision)
        times["1. embed all images (EfficientNet-Lite0, to disk cache)"] = \
            time.perf_counter() - t1
        bare = (bare_before + bare_forward_rate(args.mixed_precision)[0]) / 2
        embed_rate = n_images / times["1. embed all images (EfficientNet-Lite0, to disk cache)"]
        t2 = time.perf_counter()
        meta.fit(train)
        times[f"2. meta-train {iterations} iterations (+ cache reads)"] = \
            time.perf_counter() - t2
        t3 = time.perf_counter()
        result = evaluate_personalization(meta, held_out, n_support=(10, 100), n_repeats=10,
                                          random_state=0, n_jobs=args.n_jobs, verbose=1)
        times[f"3. evaluate {len(held_out)} raters x 10 draws at 10 and 100 images"] = \
            time.perf_counter() - t3
    print(f"\nscale {args.scale}: {n_images} images, {n_raters} raters ({n_test} held out), "
          f"{len(data.y)} ratings; mixed_precision={args.mixed_precision}")
    total = 0.0
    for name, seconds in times.items():
        print(f"{name:<64}{seconds:>9.1f} s")
        if "setup" not in name:
            total += seconds
    print(f"{'total (1-3)':<64}{total:>9.1f} s  ({total / 60:.1f} min; target 30 min at "
          "scale 1)")
    print(f"embedding {embed_rate:.1f} images/s; the bare forward it runs (folded, batches "
          f"of {step}, before and after) {bare:.1f} images/s: {embed_rate / bare:.2f} of it")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS) {peak:.0f} MiB; meta-training {meta.fit_time_:.1f} s "
          f"= {meta.fit_time_ / iterations:.3f} s/iteration")
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
