"""The paper's comparison tables: every method on the same raters and support draws."""

import contextlib
import numbers
import time
import warnings
from collections.abc import Mapping

import numpy as np

from . import _names
from ._estimator import MetaAestheticRegressor
from ._inputs import check_verbose
from ._names import BASELINE_LABELS
from ._task_vectors import TaskVectorRegressor
from ._tasks import TaskSet, raters_among
from ._warnings import PIAAWarning
from .baselines import (
    ConsensusRidgeRegressor,
    FPMFRegressor,
    PAIAARegressor,
    PAMRegressor,
    USARRegressor,
    UserRidgeRegressor,
)
from .evaluation import PersonalizationResult, evaluate_personalization
from .meta import ALGORITHMS

__all__ = ["TABLE1_METHODS", "BASELINES", "TASK_VECTOR_METHODS", "METHOD_LABELS",
           "compare_methods",
           "paired_difference", "format_table"]

#: Baseline rows: name -> (label, estimator class, fixed parameters).
BASELINES = {name: (BASELINE_LABELS[name], *made) for name, made in {
    "pam": (PAMRegressor, {"variant": "both"}),
    "pam_attributes": (PAMRegressor, {"variant": "attributes"}),
    "pam_content": (PAMRegressor, {"variant": "content"}),
    "fpmf": (FPMFRegressor, {}),
    "usar": (USARRegressor, {"variant": "both"}),
    "usar_ppr": (USARRegressor, {"variant": "ppr"}),
    "usar_pad": (USARRegressor, {"variant": "pad"}),
    "pa_iaa": (PAIAARegressor, {}),
    "ridge": (UserRidgeRegressor, {}),
    "consensus_ridge": (ConsensusRidgeRegressor, {}),
}.items()}

# The names and labels below live in _names, which the command line's parser reads
# without importing torch; they are documented here, where the API reference looks.

#: Task-vector rows (:class:`~sklearn_piaa.TaskVectorRegressor`): name -> (label,
#: algorithm of the base network, epochs of fine-tuning after the combination).
TASK_VECTOR_METHODS = _names.TASK_VECTOR_METHODS

#: Rows of BLG-PIAA's Table I that run with no input beyond ratings: name -> label.
#: ``pam``, ``pam_attributes`` (attribute columns), ``pa_iaa`` (a personality table)
#: and the single USAR components are in :data:`METHOD_LABELS`.
TABLE1_METHODS = _names.TABLE1_METHODS

#: Every row this package can report: name -> label.
METHOD_LABELS = _names.METHOD_LABELS


def _make_method(name, random_state, method_params, estimator_params, baseline_defaults=None):
    if name in TASK_VECTOR_METHODS:
        _, algorithm, epochs = TASK_VECTOR_METHODS[name]
        # The base is the same estimator as that algorithm's own row: the same prior.
        base = _make_method(algorithm, random_state, method_params, estimator_params,
                            baseline_defaults)
        return TaskVectorRegressor(**{"base": base, "finetune_epochs": epochs,
                                      "random_state": random_state,
                                      **method_params.get(name, {})})
    if name not in BASELINES:
        return MetaAestheticRegressor(**{"algorithm": name, "random_state": random_state,
                                         **estimator_params, **method_params.get(name, {})})
    _, cls, fixed = BASELINES[name]
    # The shared settings that a baseline has (backbone, device, ...) apply to it too,
    # and baseline_defaults where not given (see compare_methods).
    accepted = cls().get_params()
    shared = {k: v for k, v in {**(baseline_defaults or {}), **estimator_params}.items()
              if k in accepted}
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
    train_tasks, test_tasks : TaskSet or dict
        The raters, or ``{rater: (X, y)}`` as :meth:`~sklearn_piaa.TaskSet.from_mapping` takes.
    algorithms : str or iterable of str, default=all of ``TABLE1_METHODS``
        Meta-learning algorithms of :class:`~sklearn_piaa.MetaAestheticRegressor`,
        baselines of :data:`BASELINES` and task-vector rows of
        :data:`TASK_VECTOR_METHODS` (any name in :data:`METHOD_LABELS`); a string is one
        name.
    n_support : tuple of int, default=(10, 100)
    n_repeats : int, default=10
    random_state : int, default=0
        Seeds every method's training and its support draws. An integer only: ``None``
        or a ``RandomState`` instance would give each method other draws, and the
        differences between methods would no longer be paired.
    n_jobs : int, default=None
        Parallel raters in :func:`~sklearn_piaa.evaluate_personalization`.
    score_range : (float, float), default=None
        The test raters' scale, when it differs from the training raters'.
    verbose : int or bool, default=0
        Print a line per method.
    method_params : dict, default=None
        Name -> parameters of that method only, e.g.
        ``{"pa_iaa": {"personality": table}, "pam": {"attribute_columns": cols}}``.
        Every key must be a method name (of :data:`METHOD_LABELS` or an algorithm).
    method_tasks : dict, default=None
        Name -> ``(train_tasks, test_tasks)`` for a method that needs other features
        of the same ratings (e.g. embeddings with measured attributes appended, for
        PAM). Its test raters and each one's ratings, in order, must be those of
        ``test_tasks``, so that the support draws stay identical.
    **estimator_params
        Passed to every :class:`~sklearn_piaa.MetaAestheticRegressor` (e.g.
        ``backbone=None`` with precomputed embeddings, ``n_iterations``); the baselines
        take those they have (``backbone``, ``device``, ``alphas``, ...). Beside a
        meta-learner, a baseline not given ``backbone`` takes the meta-learners'
        default (EfficientNet-Lite0), so that all embed the same images alike.

    Returns
    -------
    dict
        Method name -> :class:`~sklearn_piaa.PersonalizationResult`, whose ``method``
        is that name: :func:`format_table` labels these rows by :data:`METHOD_LABELS`.

    Warns
    -----
    PIAAWarning
        Those of each method's training and evaluation (raters left out, undefined
        SROCC...), issued when that method's run ends, its name in front
        (``"blg: 2 rater(s) ..."``).

    Raises
    ------
    ValueError
        For an unknown method name (in ``algorithms``, ``method_params`` or
        ``method_tasks``) or shared setting (``**estimator_params``), or test raters
        of ``method_tasks`` that differ from ``test_tasks`` (other raters, or other
        ratings), or test raters that are also training raters (their scores would
        not be held out), or a ``random_state`` that is not an integer, or a
        ``verbose`` that is neither a bool nor an integer of at least 0.
    """
    check_verbose(verbose)  # before any method is fitted
    if not isinstance(random_state, numbers.Integral) or isinstance(random_state, bool):
        raise ValueError(
            f"random_state must be an integer, so that every method sees the same support "
            f"draws (paired differences); got {random_state!r}.")
    method_params, method_tasks = method_params or {}, method_tasks or {}
    if isinstance(algorithms, str):
        # Iterating a bare string would run its letters as method names.
        algorithms = (algorithms,)
    algorithms = list(algorithms)
    known = set(ALGORITHMS) | set(BASELINES) | set(TASK_VECTOR_METHODS)
    unknown = sorted(set(algorithms) - known)
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(known)}.")
    repeated = sorted({a for a in algorithms if algorithms.count(a) > 1})
    if repeated:  # the results are keyed by method: a second run would replace the first
        raise ValueError(f"algorithms lists {repeated} more than once.")
    for what, given in (("method_params", method_params), ("method_tasks", method_tasks)):
        # A misspelt key would silently run the method with its defaults. Keys of known
        # methods not run here are allowed: one settings dict may serve many runs.
        stray = sorted(set(given) - known, key=str)
        if stray:
            raise ValueError(f"{what} has key(s) {stray} that name no method; the methods "
                             f"being run are {algorithms} (any of {sorted(known)} may be "
                             "given settings).")
    # A misspelt shared setting was dropped by the baselines without a word, and refused
    # by a meta-learner only when its turn came, after the methods before it had run.
    meta_defaults = MetaAestheticRegressor().get_params()
    baselines = [a for a in algorithms if a in BASELINES]
    accepted = set(meta_defaults).union(*(BASELINES[a][1]().get_params() for a in baselines))
    stray = sorted(set(estimator_params) - accepted)
    if stray:
        raise ValueError(f"unknown setting(s) {stray}: the shared settings are the "
                         "parameters of MetaAestheticRegressor and of the baselines run; "
                         "give a method's own settings in method_params.")
    # A baseline's own default backbone (None: features) failed on the images the
    # meta-learners embed by default, after those had trained: beside a meta-learner, a
    # baseline embeds as it does.
    baseline_defaults = ({"backbone": meta_defaults["backbone"]}
                         if "backbone" not in estimator_params
                         and any(a not in BASELINES for a in algorithms) else {})
    ignored = sorted(k for k in ("on_error", "mixed_precision") if k in estimator_params
                     and estimator_params[k] != meta_defaults[k])
    if ignored and baselines:
        warnings.warn(f"{', '.join(f'{k}={estimator_params[k]!r}' for k in ignored)} applies "
                      f"to the meta-learners only: the baselines {baselines} have no such "
                      "setting, and read and embed images as the defaults do.",
                      PIAAWarning, stacklevel=2)
    reference = _as_taskset(test_tasks)
    for name in algorithms:
        train, test = method_tasks.get(name, (train_tasks, test_tasks))
        _check_held_out(name, _as_taskset(train), _as_taskset(test))
    for name in algorithms:
        if name in method_tasks:
            test = _as_taskset(method_tasks[name][1])
            # Other types are refused, with their message, by evaluate_personalization.
            if isinstance(test, TaskSet) and isinstance(reference, TaskSet):
                _check_same_raters(name, test, reference)
    results = {}
    for name in algorithms:
        t0 = time.perf_counter()
        train, test = method_tasks.get(name, (train_tasks, test_tasks))
        with _named_warnings(name):
            model = _make_method(name, random_state, method_params, estimator_params,
                                 baseline_defaults)
            results[name] = evaluate_personalization(
                model.fit(train), test, n_support=n_support, n_repeats=n_repeats,
                random_state=random_state, n_jobs=n_jobs, score_range=score_range)
        results[name].method = name  # the row is this package's method: its label is true
        if verbose:
            print(f"[compare] {name}: {time.perf_counter() - t0:.1f}s", flush=True)
    return results


@contextlib.contextmanager
def _named_warnings(name):
    """Issue the warnings of one method's run with the method's name in front.

    Every method warns about the same raters in the same words ("3 rater(s) have
    undefined SROCC..."); without the name a table's reader cannot tell which row a
    warning is about. The caller's filters act as usual when a warning is first
    issued (``"ignore"`` drops it, ``"error"`` raises at once); what they let through
    is issued again, named, once the run ends.
    """
    with warnings.catch_warnings(record=True) as caught:
        yield
    for w in caught:
        message = w.message
        if isinstance(message, Warning) and message.args and isinstance(message.args[0], str):
            message.args = (f"{name}: {message.args[0]}",) + message.args[1:]
        else:
            message = f"{name}: {message}"
        warnings.warn_explicit(message, w.category, w.filename, w.lineno, source=w.source)


def _as_taskset(tasks):
    return TaskSet.from_mapping(tasks) if isinstance(tasks, dict) else tasks


def _few(values, n=10):
    values = sorted(values, key=str)
    return repr(values[:n])[:-1] + (", ...]" if len(values) > n else "]")


def _check_held_out(name, train, test):
    """Refuse test raters that are also training raters: their scores are not held out."""
    if not (isinstance(train, TaskSet) and isinstance(test, TaskSet)):
        return  # other types are refused by fit or evaluate_personalization
    both = raters_among(test.raters, train.raters)
    if both:
        raise ValueError(f"{len(both)} rater(s) are both training and test raters of "
                         f"{name!r}: {_few(both)}; the test raters must be held out of "
                         "training (split by rater, e.g. with UserGroupShuffleSplit).")


def _check_same_raters(name, test, reference):
    """Refuse ``method_tasks[name]`` test raters other than ``test_tasks``' (unpaired)."""
    a, b = list(test.raters), list(reference.raters)
    if a != b:
        detail = []
        if set(a) - set(b):
            detail.append(f"only in method_tasks: {_few(set(a) - set(b))}")
        if set(b) - set(a):
            detail.append(f"only in test_tasks: {_few(set(b) - set(a))}")
        raise ValueError(f"method_tasks[{name!r}] has other test raters than test_tasks ("
                         + ("; ".join(detail) or "another order") + "); every method must "
                         "be evaluated on the same raters for paired differences.")
    differ = [r for r in b if not np.array_equal(test.y[test.indices[r]],
                                                 reference.y[reference.indices[r]])]
    if differ:
        raise ValueError(f"method_tasks[{name!r}] gives rater(s) {_few(differ)} other ratings "
                         "(or another order) than test_tasks; the support draws would differ.")


def _draw_keys(result, sizes):
    t = result.table
    return {key for key in zip(t["rater"].tolist(), t["repeat"].tolist(),
                               t["n_support"].tolist()) if key[2] in sizes}


def _draw_seeds(result, sizes):
    """(rater, repeat, n_support) -> the draw's seed, or None for a table without seeds."""
    if "seed" not in result.table.dtype.names:
        return None
    return _draw_column(result, sizes, "seed")


def _draw_column(result, sizes, name):
    """``(rater, repeat, n_support) -> result.table[name]`` at ``sizes``."""
    t = result.table
    return {(r, rep, k): v for r, rep, k, v in zip(
        t["rater"].tolist(), t["repeat"].tolist(), t["n_support"].tolist(),
        t[name].tolist()) if k in sizes}


def _check_paired(result, reference, sizes, names):
    """Refuse results whose (rater, repeat, n_support) rows at ``sizes`` differ, or whose
    draws at those rows differ (other seeds: another ``random_state``)."""
    protocols = [getattr(r, "protocol", "evaluate_personalization")
                 for r in (result, reference)]
    if protocols[0] != protocols[1]:
        # a seed draws other images under each: the keys and seeds alike were paired
        raise ValueError(
            f"{names[0]} and {names[1]} come from other protocols ({protocols[0]} and "
            f"{protocols[1]}), whose draws of one seed are other support and query "
            "images, so their differences would not be paired. Compare results of one "
            "function.")
    a, b = _draw_keys(result, sizes), _draw_keys(reference, sizes)
    if a == b:
        seeds_a, seeds_b = _draw_seeds(result, sizes), _draw_seeds(reference, sizes)
        if seeds_a is None or seeds_b is None:
            return  # a table built without seeds (by hand) cannot be checked further
        # The keys are the same whatever random_state was: only the seeds tell the draws.
        differ = sum(seeds_a[key] != seeds_b[key] for key in seeds_a)
        if differ:
            raise ValueError(
                f"{names[0]} and {names[1]} were evaluated on other support draws: "
                f"{differ} of {len(seeds_a)} (rater, repeat, n_support) draws have other "
                "seeds, so their differences would not be paired. Evaluate both with the "
                "same integer random_state (random_state=None draws anew each call).")
        query_a, query_b = _draw_column(result, sizes, "n_query"), \
            _draw_column(reference, sizes, "n_query")
        other = [key for key in query_a if query_a[key] != query_b[key]]
        if other:
            # the same seed over a query set of another size is another draw
            r, rep, k = other[0]
            raise ValueError(
                f"{names[0]} and {names[1]} were evaluated on query sets of other sizes: "
                f"{len(other)} of {len(query_a)} draws (e.g. rater {r!r}, repeat {rep}, "
                f"n_support={k}: {query_a[other[0]]} and {query_b[other[0]]} query "
                "images), so their differences would not be paired. Evaluate both with "
                "the same n_query.")
        return
    detail = []
    for axis, what in ((0, "raters"), (2, "support sizes"), (1, "repeats")):
        va, vb = {key[axis] for key in a}, {key[axis] for key in b}
        if va - vb:
            detail.append(f"{what} only in {names[0]}: {_few(va - vb)}")
        if vb - va:
            detail.append(f"{what} only in {names[1]}: {_few(vb - va)}")
    if not detail:
        detail.append(f"(rater, repeat, n_support) rows in one only: {_few(a ^ b, 5)}")
    raise ValueError(f"{names[0]} and {names[1]} were not evaluated on the same draws ("
                     + "; ".join(detail) + "); a paired difference needs the same test "
                     "raters, n_support, n_repeats and random_state.")


def _paired_means(result, reference, sizes):
    out = {}
    for k in sizes:
        a = result.table[result.table["n_support"] == k]
        b = reference.table[reference.table["n_support"] == k]
        ref = {(r, rep): v for r, rep, v in zip(b["rater"].tolist(), b["repeat"].tolist(),
                                                 b["srocc_personalized"].tolist())}
        per_rater = {}
        for r, rep, v in zip(a["rater"].tolist(), a["repeat"].tolist(),
                             a["srocc_personalized"].tolist()):
            w = ref[(r, rep)]
            if np.isfinite(v) and np.isfinite(w):
                per_rater.setdefault(r, []).append(v - w)
        d = np.array([np.mean(v) for v in per_rater.values()])
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan
        out[k] = (float(d.mean()) if len(d) else np.nan, float(se), len(d))
    return out


def _check_result(value, name, function):
    """Refuse what is not a PersonalizationResult with a TypeError naming it."""
    if not isinstance(value, PersonalizationResult):
        # its attributes would be read as a missing .summary or .table
        raise TypeError(f"{function} needs {name} to be a PersonalizationResult (as "
                        f"evaluate_personalization returns); got {type(value).__name__}.")


def paired_difference(result, reference):
    """Mean paired SROCC difference ``result - reference`` and its standard error.

    Both results must come from the same raters and support draws (the same integer
    ``random_state`` in :func:`~sklearn_piaa.evaluate_personalization`; the draws'
    seeds, in the tables' ``seed`` column, are compared). For each rater, the
    differences over repeats where both are defined are averaged; the mean and its
    standard error are then taken over raters.

    Parameters
    ----------
    result, reference : PersonalizationResult

    Returns
    -------
    dict
        ``n_support -> (mean, standard error, number of raters)``.

    Raises
    ------
    TypeError
        When ``result`` or ``reference`` is not a PersonalizationResult (a dict of
        them, say: compare two of its values).
    ValueError
        When the two tables do not hold the same (rater, repeat, n_support) rows: other
        raters, support sizes or repeats; or when the same rows have other seeds (other
        draws, e.g. from two calls with ``random_state=None``), other numbers of query
        images, or come from another protocol (:func:`~sklearn_piaa.evaluate_personalization`
        and :func:`~sklearn_piaa.compare_support_strategies` draw other images from one
        seed). Each would pair unrelated draws.
    """
    names = ("result", "reference")
    for name, given in zip(names, (result, reference)):
        _check_result(given, name, "paired_difference")
    _check_paired(result, reference, set(result.summary) | set(reference.summary), names)
    # Sizes where every rater was skipped have no rows to compare, but still differ.
    if set(result.summary) != set(reference.summary):
        raise ValueError(f"result and reference were not evaluated on the same support "
                         f"sizes: {sorted(result.summary)} and {sorted(reference.summary)}.")
    return _paired_means(result, reference, list(result.summary))


def _se(value):
    # one rater has no standard error (nor a spread): "n/a" in the width of "0.045"
    return f"{value:.3f}" if np.isfinite(value) else f"{'n/a':>5}"


def format_table(results, labels=None, reference="auto"):
    """Rows per method, columns per support size: mean ± std SROCC (the paper's layout).

    The prior-only (zero-shot) score of each method at the smallest support size is
    given next (the query sets differ between sizes); with a ``reference``, the last
    columns give each method's paired difference to it (mean ± standard error over
    raters, :func:`paired_difference`).

    Each row is labelled by its key, as given, unless ``labels`` maps the key, or the
    result is the package's own run of the method the key names (:func:`compare_methods`
    records it in the result's ``method``): that row takes the method's label of
    :data:`METHOD_LABELS` ("BLG-PIAA" for ``"blg"``). A key that merely spells a
    method's name is not taken for it: ``{"ridge": result}`` of a user's
    :class:`~sklearn_piaa.ConsensusRidgeRegressor` stays "ridge", not the per-user
    ridge's label. ``labels=METHOD_LABELS`` labels every key that names a method.

    Parameters
    ----------
    results : dict
        Method name -> :class:`~sklearn_piaa.PersonalizationResult`, e.g. from
        :func:`compare_methods`.
    labels : dict, default=None
        Key of ``results`` -> row label, over the labels above.
    reference : str or None, default="auto"
        The key of the method the paired differences are taken against; None for no
        paired columns. ``"auto"``: ``"blg"`` where that is a key, else none.

    Returns
    -------
    str
        A support size a method was not evaluated at shows ``n/a``. With a reference,
        a last line says that the paired columns are mean ± standard error.

    Raises
    ------
    TypeError
        When ``results`` is not a dict of PersonalizationResult (one result, say: pass
        ``{"name": result}``).
    ValueError
        When ``results`` is empty, or ``reference`` is not one of its keys (the
        paired columns were left out without a word), or a method and ``reference``
        were evaluated on other raters, repeats or draws (seeds) at a support size they
        share (the paired difference would be meaningless).
    """
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a dict of method name -> PersonalizationResult "
                        f"(as compare_methods returns); got {type(results).__name__}. For one "
                        "result, pass {'name': result}.")
    for name, result in results.items():
        _check_result(result, f"results[{name!r}]", "format_table")
    if not results:
        raise ValueError("results is empty: give at least one method's "
                         "PersonalizationResult.")
    if isinstance(reference, str) and reference == "auto":
        reference = "blg" if "blg" in results else None
    elif reference is not None and reference not in results:
        raise ValueError(f"reference={reference!r} is not a key of results "
                         f"{_few(results)}: give the key of the method to pair the others "
                         "with, or None for no paired columns.")
    given = labels or {}
    labels = {name: str(given[name] if name in given else METHOD_LABELS[name]
                        if getattr(res, "method", None) == name and name in METHOD_LABELS
                        else name)
              for name, res in results.items()}
    sizes = sorted({k for r in results.values() for k in r.summary})
    ref = None if reference is None else results[reference]
    width = max([28, *(len(label) + 2 for label in labels.values())])
    # "0.123 ± 0.045" cells; the paired columns widen with the reference's name.
    cell = 18
    paired = max([19, *(len(f"vs {reference} @{k}") + 2 for k in sizes)])
    header = f"{'method':<{width}}" + "".join(f"{f'{k} images':>{cell}}" for k in sizes)
    # The prior's score depends on the query set, which depends on the support size:
    # one size for every method, or the column would compare other query sets.
    prior_size = sizes[0] if sizes else None
    header += f"{f'prior only @{prior_size}':>{cell}}"
    if ref is not None:
        header += "".join(f"{f'vs {reference} @{k}':>{paired}}" for k in sizes)
    lines = [header, "-" * len(header)]
    for name, res in results.items():
        # A size this method was not evaluated at is shown as n/a, like an undefined one.
        cells = [res.summary[k]["personalized"] if k in res.summary else None
                 for k in sizes]
        prior = res.summary[prior_size]["prior"] if prior_size in res.summary else None
        row = f"{labels[name]:<{width}}" + "".join(
            f"{c.mean:>{cell - 8}.3f} ± {_se(c.std)}"
            if c is not None and np.isfinite(c.mean) else f"{'n/a':>{cell}}"
            for c in cells + [prior])
        if ref is not None and name != reference:
            common = [k for k in sizes if k in res.summary and k in ref.summary]
            _check_paired(res, ref, set(common), (repr(name), repr(reference)))
            diff = _paired_means(res, ref, common)
            row += "".join(f"{diff[k][0]:>+{paired - 8}.3f} ± {_se(diff[k][1])}"
                           if k in diff and np.isfinite(diff[k][0]) else f"{'n/a':>{paired}}"
                           for k in sizes)
        lines.append(row)
    if ref is not None and len(results) > 1:
        # the cells above are mean ± std; a reader would take these for the same
        lines.append(f"(vs {reference}: mean paired difference ± its standard error over "
                     "raters)")
    return "\n".join(lines)
