"""Head-only fine-tuning settings: personalized SROCC and time of each, on paired draws.

A BLG-PIAA prior (``MetaAestheticRegressor(backbone=None, n_iterations=300,
outer_lr=0.1)`` over frozen EfficientNet-Lite0 embeddings) is meta-trained on the
training raters; each held-out rater is then personalized (20 epochs of Adam) with
each fine-tuning setting below, on the same support draws and fine-tuning seeds, and
scored on the rest of their images (:func:`~sklearn_piaa.evaluate_personalization`).
Differences to the first setting are paired: mean ± standard error over raters
(:func:`~sklearn_piaa.report.paired_difference`). The seconds are the median wall
time of one :meth:`~sklearn_piaa.MetaAestheticRegressor.personalize` call on one
rater, the settings timed in alternating rounds.

Settings (``finetune_batch_size``, ``finetune_lr``):

- ``batch 10, lr 3e-5``: the previous default (200 Adam steps at 100 images);
- ``default``: both ``None``: batches of a quarter of the rater's images (at least
  10), learning rate 3e-5 x sqrt(batch / 10) (80 steps at 100 images);
- ``one batch, lr scaled``: all support images in one batch (20 steps), the same
  learning-rate rule;
- ``one batch, lr 3e-5``: all support images in one batch, the learning rate unscaled.

With ``--learning-rates``, the sweep that chose the learning rate of the batch-10
default instead (``docs/algorithm.md``): one batch at 1e-3, 1e-4 and 3e-5, batches of
10 at 1e-4 and 3e-5, against the default.

Data options as in ``support_selection.py``: the built-in benchmark by default,
``--photos DIR`` for real photos scored by simulated raters, ``--ratings CSV
--image-root DIR`` for real raters.

Usage: ``python benchmarks/finetune_defaults.py [--photos DIR | --ratings CSV
--image-root DIR] [--n-support 10 25 50 100] [--n-repeats 5] [--rounds 5]
[--learning-rates]``.
"""

import argparse
import os
import sys
import time

import numpy as np

from sklearn_piaa import evaluate_personalization
from sklearn_piaa.report import paired_difference

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support_selection import (  # noqa: E402
    add_data_arguments,
    fit_prior,
    missing_data,
    split_raters,
)

#: name -> (finetune_batch_size, finetune_lr); a batch larger than any rater's support
#: set means "all of them in one batch".
SETTINGS = {
    "batch 10, lr 3e-5": (10, 3e-5),
    "default": (None, None),
    "one batch, lr scaled": (10**9, None),
    "one batch, lr 3e-5": (10**9, 3e-5),
}

#: --learning-rates: the sweep behind the batch-10 default's learning rate
LEARNING_RATES = {
    "default": (None, None),
    "one batch, lr 1e-3": (10**9, 1e-3),
    "one batch, lr 1e-4": (10**9, 1e-4),
    "one batch, lr 3e-5": (10**9, 3e-5),
    "batch 10, lr 1e-4": (10, 1e-4),
    "batch 10, lr 3e-5": (10, 3e-5),
}


def personalize_seconds(prior, tasks, sizes, rounds=5, settings=SETTINGS):
    """Median seconds of one ``personalize`` per setting and support size.

    One rater with enough images, the settings timed in alternating rounds: this
    machine's speed drifts within minutes, so the settings are compared at the same
    moments rather than one after another.
    """
    rater = next(r for r in tasks.raters if len(tasks[r][1]) >= max(sizes))
    X, y = tasks[rater]
    times = {(name, k): [] for name in settings for k in sizes}
    for _ in range(rounds):
        for name, (batch_size, lr) in settings.items():
            prior.set_params(finetune_batch_size=batch_size, finetune_lr=lr)
            for k in sizes:
                start = time.perf_counter()
                prior.personalize(X[:k], y[:k], random_state=0)
                times[name, k].append(time.perf_counter() - start)
    return {key: float(np.median(t)) for key, t in times.items()}


def format_table(results, seconds, sizes):
    """One row per support size and setting: SROCC, paired difference, seconds."""
    reference = next(iter(results))
    header = (f"{'setting':<22}{'n_support':>10}{'SROCC mean ± std':>20}"
              f"{'vs ' + reference:>30}{'s/rater':>9}")
    lines = [header, "-" * len(header)]
    for k in sizes:
        prior = results[reference].summary[k]["prior"]  # on the same query images
        lines.append(f"{'prior only':<22}{k:>10}{prior.mean:>12.3f} ± {prior.std:.3f}")
        for name, res in results.items():
            s = res.summary[k]["personalized"]
            row = f"{name:<22}{k:>10}{s.mean:>12.3f} ± {s.std:.3f}"
            if name == reference:
                row += f"{'':>30}"
            else:
                mean, se, n = paired_difference(res, results[reference])[k]
                row += f"{mean:>+18.4f} ± {se:.4f} ({n:>2})"
            lines.append(row + f"{seconds[name, k]:>9.3f}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(ap)
    ap.add_argument("--n-support", type=int, nargs="+", default=[10, 25, 50, 100])
    ap.add_argument("--n-repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the timings")
    ap.add_argument("--learning-rates", action="store_true",
                    help="the learning-rate sweep of docs/algorithm.md instead")
    args = ap.parse_args(argv)
    settings = LEARNING_RATES if args.learning_rates else SETTINGS
    if missing_data(args):
        return 0
    sizes = sorted(set(args.n_support))

    t0 = time.perf_counter()
    train_tasks, test_tasks = split_raters(args)
    t1 = time.perf_counter()
    prior = fit_prior(train_tasks, args)
    print(f"BLG prior fitted ({time.perf_counter() - t1:.1f}s)", flush=True)

    results = {}
    for name, (batch_size, lr) in settings.items():
        t2 = time.perf_counter()
        prior.set_params(finetune_batch_size=batch_size, finetune_lr=lr)
        # The same random_state: the same support draws and seeds for every setting.
        results[name] = evaluate_personalization(prior, test_tasks, n_support=tuple(sizes),
                                                 n_repeats=args.n_repeats,
                                                 random_state=args.random_state)
        print(f"{name}: {time.perf_counter() - t2:.1f}s", flush=True)
    seconds = personalize_seconds(prior, test_tasks, sizes, args.rounds, settings)

    print(f"\nSROCC of {len(test_tasks)} held-out raters x {args.n_repeats} draws (query: "
          "each rater's images outside the support set); mean ± std over raters, paired "
          "difference ± SE (raters)")
    print(format_table(results, seconds, sizes))
    print(f"total {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
