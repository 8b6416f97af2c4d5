"""The paper's comparison tables: every method on the same raters and support draws."""

import time

import numpy as np

from ._estimator import MetaAestheticRegressor
from .evaluation import evaluate_personalization

__all__ = ["TABLE1_METHODS", "compare_methods", "format_table"]

#: Rows of BLG-PIAA's Table I that this package implements: algorithm -> label.
TABLE1_METHODS = {
    "none": "none (ImageNet, fresh head)",
    "average": "BA-PIAA (average)",
    "maml": "MAML",
    "reptile": "Reptile",
    "merged": "merged (Fig. 5a)",
    "blg": "BLG-PIAA",
}


def compare_methods(train_tasks, test_tasks, algorithms=tuple(TABLE1_METHODS),
                    n_support=(10, 100), n_repeats=10, random_state=0, n_jobs=None,
                    score_range=None, verbose=0, **estimator_params):
    """Meta-train each algorithm on ``train_tasks`` and evaluate it on ``test_tasks``.

    All methods share the estimator settings, the held-out raters and the random
    support draws (same ``random_state``), as in the paper's Table I. With training and
    test raters from different data sets (and ``score_range`` set to the test raters'
    scale) it gives the layout of the paper's Table IV.

    Parameters
    ----------
    train_tasks, test_tasks : TaskSet
    algorithms : iterable of str, default=all of ``TABLE1_METHODS``
    n_support : tuple of int, default=(10, 100)
    n_repeats : int, default=10
    random_state : int, default=0
    n_jobs : int, default=None
        Parallel raters in :func:`evaluate_personalization`.
    score_range : (float, float), default=None
        The test raters' scale, when it differs from the training raters'.
    verbose : int, default=0
        Print a line per method.
    **estimator_params
        Passed to every :class:`MetaAestheticRegressor` (e.g. ``backbone=None`` with
        precomputed embeddings, ``n_iterations``).

    Returns
    -------
    dict
        Algorithm name -> :class:`PersonalizationResult`.
    """
    results = {}
    for name in algorithms:
        t0 = time.perf_counter()
        meta = MetaAestheticRegressor(algorithm=name, random_state=random_state,
                                      **estimator_params).fit(train_tasks)
        results[name] = evaluate_personalization(
            meta, test_tasks, n_support=n_support, n_repeats=n_repeats,
            random_state=random_state, n_jobs=n_jobs, score_range=score_range)
        if verbose:
            print(f"[compare] {name}: {time.perf_counter() - t0:.1f}s", flush=True)
    return results


def format_table(results, labels=None):
    """Rows per method, columns per support size: mean ± std SROCC (the paper's layout).

    The prior-only (zero-shot) score of each method is given on the right.
    """
    labels = {**TABLE1_METHODS, **(labels or {})}
    sizes = sorted({k for r in results.values() for k in r.summary})
    header = f"{'method':<28}" + "".join(f"{f'{k} images':>17}" for k in sizes)
    lines = [header + f"{'prior only':>17}", "-" * (len(header) + 17)]
    for name, res in results.items():
        cells = [res.summary[k]["personalized"] for k in sizes]
        prior = res.summary[sizes[0]]["prior"]
        row = f"{labels.get(name, name):<28}" + "".join(
            f"{c.mean:>10.3f} ± {c.std:.3f}" if np.isfinite(c.mean) else f"{'n/a':>17}"
            for c in cells)
        lines.append(row + f"{prior.mean:>10.3f} ± {prior.std:.3f}")
    return "\n".join(lines)
