"""The paper's comparison tables: every method on the same raters and support draws."""

import time

import numpy as np

from ._estimator import MetaAestheticRegressor
from ._task_vectors import TaskVectorRegressor
from .baselines import (
    ConsensusRidgeRegressor,
    FPMFRegressor,
    PAIAARegressor,
    PAMRegressor,
    USARRegressor,
    UserRidgeRegressor,
)
from .evaluation import evaluate_personalization
from .meta import ALGORITHMS

__all__ = ["TABLE1_METHODS", "BASELINES", "TASK_VECTOR_METHODS", "METHOD_LABELS",
           "compare_methods",
           "paired_difference", "format_table"]

#: Baseline rows: name -> (label, estimator class, fixed parameters).
BASELINES = {
    "pam": ("PAM (attributes + content)", PAMRegressor, {"variant": "both"}),
    "pam_attributes": ("PAM (attributes)", PAMRegressor, {"variant": "attributes"}),
    "pam_content": ("PAM (content)", PAMRegressor, {"variant": "content"}),
    "fpmf": ("FPMF", FPMFRegressor, {}),
    "usar": ("USAR (PPR & PAD)", USARRegressor, {"variant": "both"}),
    "usar_ppr": ("USAR (PPR)", USARRegressor, {"variant": "ppr"}),
    "usar_pad": ("USAR (PAD)", USARRegressor, {"variant": "pad"}),
    "pa_iaa": ("PA_IAA", PAIAARegressor, {}),
    "ridge": ("per-user ridge (own)", UserRidgeRegressor, {}),
    "consensus_ridge": ("consensus + residual ridge", ConsensusRidgeRegressor, {}),
}

#: Task-vector rows (:class:`TaskVectorRegressor`): name -> (label, algorithm of the
#: base network, epochs of fine-tuning after the combination).
TASK_VECTOR_METHODS = {
    "tv_average": ("task vectors (generic base)", "average", 0),
    "tv_blg": ("task vectors (BLG base)", "blg", 0),
    "tv_blg_finetune": ("task vectors (BLG base) + fine-tune", "blg", 20),
}

#: Rows of BLG-PIAA's Table I that run with no input beyond ratings: name -> label.
#: ``pam``, ``pam_attributes`` (attribute columns), ``pa_iaa`` (a personality table)
#: and the single USAR components are in :data:`METHOD_LABELS`.
TABLE1_METHODS = {
    "none": "none (ImageNet, fresh head)",
    "average": "BA-PIAA (average)",
    "maml": "MAML",
    "reptile": "Reptile",
    "merged": "merged (Fig. 5a)",
    "blg": "BLG-PIAA",
    **{name: BASELINES[name][0]
       for name in ("pam_content", "fpmf", "usar", "ridge", "consensus_ridge")},
}

#: Every row this package can report: name -> label.
METHOD_LABELS = {**TABLE1_METHODS, **{name: row[0] for name, row in BASELINES.items()},
                 **{name: row[0] for name, row in TASK_VECTOR_METHODS.items()}}


def _make_method(name, random_state, method_params, estimator_params):
    if name in TASK_VECTOR_METHODS:
        _, algorithm, epochs = TASK_VECTOR_METHODS[name]
        # The base is the same estimator as that algorithm's own row: the same prior.
        base = _make_method(algorithm, random_state, method_params, estimator_params)
        return TaskVectorRegressor(**{"base": base, "finetune_epochs": epochs,
                                      "random_state": random_state,
                                      **method_params.get(name, {})})
    if name not in BASELINES:
        return MetaAestheticRegressor(**{"algorithm": name, "random_state": random_state,
                                         **estimator_params, **method_params.get(name, {})})
    _, cls, fixed = BASELINES[name]
    # The shared settings that a baseline has (backbone, device, ...) apply to it too.
    accepted = cls().get_params()
    shared = {k: v for k, v in estimator_params.items() if k in accepted}
    return cls(**{**shared, **fixed, "random_state": random_state,
                  **method_params.get(name, {})})


def compare_methods(train_tasks, test_tasks, algorithms=tuple(TABLE1_METHODS),
                    n_support=(10, 100), n_repeats=10, random_state=0, n_jobs=None,
                    score_range=None, verbose=0, method_params=None, method_tasks=None,
                    **estimator_params):
    """Fit each method on ``train_tasks`` and evaluate it on ``test_tasks``.

    All methods share the held-out raters and the random support draws (same
    ``random_state``, so differences between methods are paired), as in the paper's
    Table I. With training and test raters from different data sets (and
    ``score_range`` set to the test raters' scale) it gives the layout of the paper's
    Table IV.

    Parameters
    ----------
    train_tasks, test_tasks : TaskSet
    algorithms : iterable of str, default=all of ``TABLE1_METHODS``
        Meta-learning algorithms of :class:`MetaAestheticRegressor`, baselines of
        :data:`BASELINES` and task-vector rows of :data:`TASK_VECTOR_METHODS` (any name
        in :data:`METHOD_LABELS`).
    n_support : tuple of int, default=(10, 100)
    n_repeats : int, default=10
    random_state : int, default=0
    n_jobs : int, default=None
        Parallel raters in :func:`evaluate_personalization`.
    score_range : (float, float), default=None
        The test raters' scale, when it differs from the training raters'.
    verbose : int, default=0
        Print a line per method.
    method_params : dict, default=None
        Name -> parameters of that method only, e.g.
        ``{"pa_iaa": {"personality": table}, "pam": {"attribute_columns": cols}}``.
    method_tasks : dict, default=None
        Name -> ``(train_tasks, test_tasks)`` for a method that needs other features
        of the same ratings (e.g. embeddings with measured attributes appended, for
        PAM). Each rater's ratings must be in the same order, so that the support
        draws stay identical.
    **estimator_params
        Passed to every :class:`MetaAestheticRegressor` (e.g. ``backbone=None`` with
        precomputed embeddings, ``n_iterations``); the baselines take those they have
        (``backbone``, ``device``, ...).

    Returns
    -------
    dict
        Method name -> :class:`PersonalizationResult`.
    """
    method_params, method_tasks = method_params or {}, method_tasks or {}
    known = set(ALGORITHMS) | set(BASELINES) | set(TASK_VECTOR_METHODS)
    unknown = sorted(set(algorithms) - known)
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(known)}.")
    results = {}
    for name in algorithms:
        t0 = time.perf_counter()
        train, test = method_tasks.get(name, (train_tasks, test_tasks))
        model = _make_method(name, random_state, method_params, estimator_params).fit(train)
        results[name] = evaluate_personalization(
            model, test, n_support=n_support, n_repeats=n_repeats,
            random_state=random_state, n_jobs=n_jobs, score_range=score_range)
        if verbose:
            print(f"[compare] {name}: {time.perf_counter() - t0:.1f}s", flush=True)
    return results


def paired_difference(result, reference):
    """Mean paired SROCC difference ``result - reference`` and its standard error.

    Both results must come from the same raters and support draws (the same
    ``random_state`` in :func:`evaluate_personalization`). For each rater, the
    differences over repeats where both are defined are averaged; the mean and its
    standard error are then taken over raters.

    Parameters
    ----------
    result, reference : PersonalizationResult

    Returns
    -------
    dict
        ``n_support -> (mean, standard error, number of raters)``.
    """
    out = {}
    for k in result.summary:
        a = result.table[result.table["n_support"] == k]
        b = reference.table[reference.table["n_support"] == k]
        ref = {(r, rep): v for r, rep, v in zip(b["rater"].tolist(), b["repeat"].tolist(),
                                                 b["srocc_personalized"].tolist())}
        per_rater = {}
        for r, rep, v in zip(a["rater"].tolist(), a["repeat"].tolist(),
                             a["srocc_personalized"].tolist()):
            w = ref.get((r, rep), np.nan)
            if np.isfinite(v) and np.isfinite(w):
                per_rater.setdefault(r, []).append(v - w)
        d = np.array([np.mean(v) for v in per_rater.values()])
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan
        out[k] = (float(d.mean()) if len(d) else np.nan, float(se), len(d))
    return out


def format_table(results, labels=None, reference="blg"):
    """Rows per method, columns per support size: mean ± std SROCC (the paper's layout).

    The prior-only (zero-shot) score of each method is given next; when ``reference``
    is among the results, the last columns give each method's paired difference to it
    (mean ± standard error over raters, :func:`paired_difference`).
    """
    labels = {**METHOD_LABELS, **(labels or {})}
    sizes = sorted({k for r in results.values() for k in r.summary})
    ref = results.get(reference)
    width = max([28, *(len(labels.get(name, name)) + 2 for name in results)])
    header = f"{'method':<{width}}" + "".join(f"{f'{k} images':>17}" for k in sizes)
    header += f"{'prior only':>17}"
    if ref is not None:
        header += "".join(f"{f'vs {reference} @{k}':>18}" for k in sizes)
    lines = [header, "-" * len(header)]
    for name, res in results.items():
        cells = [res.summary[k]["personalized"] for k in sizes]
        prior = res.summary[sizes[0]]["prior"]
        row = f"{labels.get(name, name):<{width}}" + "".join(
            f"{c.mean:>10.3f} ± {c.std:.3f}" if np.isfinite(c.mean) else f"{'n/a':>17}"
            for c in cells + [prior])
        if ref is not None and name != reference:
            diff = paired_difference(res, ref)
            row += "".join(f"{diff[k][0]:>+11.3f} ± {diff[k][1]:.3f}"
                           if k in diff and np.isfinite(diff[k][0]) else f"{'n/a':>18}"
                           for k in sizes)
        lines.append(row)
    return "\n".join(lines)
