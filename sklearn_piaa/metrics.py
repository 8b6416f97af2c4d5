"""SROCC, the metric of personalized aesthetics, and scorers built on it."""

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import make_scorer
from sklearn.pipeline import Pipeline
from sklearn.utils.metadata_routing import MetadataRequest

from ._estimator import _SCALE_CHECKED, check_scales, warn_repeated_images
from ._features import drop_unreadable, image_reader
from ._inputs import (
    FEATURES,
    as_float_scores,
    check_feature_names,
    check_seed,
    input_kind,
    is_count,
    score_array,
    take,
)
from ._messages import listing
from ._tasks import TaskSet, rater_text, raters_among
from ._warnings import PIAAWarning, UndefinedSROCCWarning

__all__ = [
    "srocc",
    "srocc_scorer",
    "SROCCSummary",
    "aggregate_srocc",
    "personalized_srocc",
    "PersonalizedSROCCScorer",
]


def srocc(y_true, y_pred):
    """Spearman rank-order correlation between true and predicted scores.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)

    Returns
    -------
    float
        The correlation, or ``nan`` (with an :class:`UndefinedSROCCWarning`) when it is
        undefined: fewer than two samples, constant ratings or predictions, or NaN or
        infinite values among them (a model predicts NaN for an image it could not
        read).

    Raises
    ------
    ValueError
        If ``y_true`` or ``y_pred`` (the message names which) holds values that are not
        numbers, or is not 1-D (or a column), or the two differ in length.

    Examples
    --------
    >>> from sklearn_piaa import srocc
    >>> round(srocc([1, 2, 3, 4], [10, 20, 40, 30]), 3)
    0.8
    """
    value, undefined, _ = _srocc(y_true, y_pred)
    if undefined:
        warnings.warn(f"SROCC is undefined ({undefined}); returning nan.",
                      UndefinedSROCCWarning, stacklevel=2)
    return value


def _scores_1d(y, what):
    y = score_array(y, what)
    y = as_float_scores(y, np.float64, what)
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        # flattening (n, 2) would pair each score with another image's
        raise ValueError(f"{what} must be 1-D (one score per image) or a column; got "
                         f"shape {y.shape}.")
    return y.reshape(-1)


def _srocc(y_true, y_pred):
    # (SROCC, why it is undefined, its cause), without a warning: for loops that count
    # undefined values themselves. The cause is the why without its counts (both None
    # where defined): a rater's draws are named by cause, and "2 of the 5 predictions
    # are NaN or infinite" at one draw and "1 of the 5 ..." at another are one cause.
    # Silencing srocc's warning there with warnings.catch_warnings is not an option: it
    # swaps the process-wide filter list, and blocks overlapping in threads leave an
    # "ignore" filter behind for good.
    y_true, y_pred = _scores_1d(y_true, "y_true"), _scores_1d(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred have different lengths: {len(y_true)} and {len(y_pred)}."
        )
    # An infinite score has no place among the others' ranks (it was ranked silently,
    # and two of them made a "constant" that scipy warned about in its own words).
    n_bad = int((~np.isfinite(y_true)).sum()), int((~np.isfinite(y_pred)).sum())
    if any(n_bad):
        bad = [(n, name) for n, name in zip(n_bad, ("ratings", "predictions")) if n]
        return (float("nan"), " and ".join(f"{n} of the {len(y_true)} {name} are NaN or "
                                           "infinite" for n, name in bad),
                "NaN or infinite " + " and ".join(name for _, name in bad))
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        why = ("fewer than 2 samples" if len(y_true) < 2 else
               "constant ratings" if np.ptp(y_true) == 0 else "constant predictions")
        return float("nan"), why, why
    return float(spearmanr(y_true, y_pred).statistic), None, None


def _undefined_raters(causes):
    """The raters whose SROCC was undefined, each with the causes of its draws.

    Parameters
    ----------
    causes : dict
        Rater id -> the causes :func:`_srocc` gave at its undefined draws (None for
        a defined draw, or where the cause is not known).

    Returns
    -------
    str
        E.g. ``"'6yf78' (constant ratings); 'u1' (constant predictions)"``, shortened
        by :func:`~sklearn_piaa._messages.listing`.
    """
    named = []
    for rater, whys in causes.items():
        known = list(dict.fromkeys(w for w in whys if w))
        named.append(f"{rater!r} ({', '.join(known)})" if known else repr(rater))
    return listing(named, sep="; ")


srocc_scorer = make_scorer(srocc)
srocc_scorer.__doc__ = """Scorer for zero-shot predictions: SROCC of ``estimator.predict(X)``
against ``y`` over all given rows.

It pools the rows of every rater into one correlation, so raters' offsets of scale
(one rates 2-4, another 3-5) count as disagreement; it is not the per-rater zero-shot
figure of the paper. That is the ``prior`` column of
:func:`~sklearn_piaa.evaluate_personalization` (the mean over raters of each rater's
SROCC), the counterpart of :class:`PersonalizedSROCCScorer`'s mean."""


@dataclass(frozen=True)
class SROCCSummary:
    """Mean and spread of SROCC values, with the count of undefined ones left out.

    Attributes
    ----------
    mean, std : float
        Over the defined values (``nan`` when none is defined). ``std`` is the
        population standard deviation (``ddof=0``), the spread of the values, not a
        standard error of the mean; :func:`~sklearn_piaa.report.paired_difference`
        gives standard errors (``ddof=1``).
    n : int
        Number of defined values used.
    n_dropped : int
        Number of undefined (``nan``) values left out.
    """

    mean: float
    std: float
    n: int
    n_dropped: int

    def __str__(self):
        dropped = f", {self.n_dropped} undefined dropped" if self.n_dropped else ""
        return f"{self.mean:.3f} ± {self.std:.3f} (n={self.n}{dropped})"


def aggregate_srocc(values):
    """Average SROCC values, leaving out undefined ones explicitly.

    Parameters
    ----------
    values : array-like of float
        One correlation per rater, in [-1, 1]; ``nan`` for undefined ones.

    Returns
    -------
    SROCCSummary
        The mean and the population standard deviation (``np.std`` with ``ddof=0``) of
        the defined values: over raters, the "mean ± std" the package's tables print.
        Published tables do not always say what follows their "±" (a spread over
        repeated trials of the mean over raters is far smaller); compare their means.

    Raises
    ------
    ValueError
        If ``values`` is a table with more than one row and column (say
        :func:`personalized_srocc`'s raters x repeats: average each rater's first), or
        holds a value outside [-1, 1] (an infinity too).
    TypeError
        If ``values`` is a dict.

    Examples
    --------
    >>> from sklearn_piaa import aggregate_srocc
    >>> s = aggregate_srocc([0.5, 0.7, float("nan")])
    >>> round(s.mean, 3), s.n, s.n_dropped
    (0.6, 2, 1)
    """
    if isinstance(values, dict):
        raise TypeError("values is a dict: pass its values, list(values.values()), for a "
                        "summary over them.")
    values = np.asarray(values, dtype=np.float64)
    if values.ndim > 1 and sum(n > 1 for n in values.shape) > 1:
        # personalized_srocc's (raters, repeats) table, flattened, gave the spread over
        # every draw for the spread over raters
        raise ValueError(
            f"values has shape {values.shape}; give one value per rater: for a (raters, "
            "repeats) table, each rater's mean over its repeats first (np.nanmean(values, "
            "axis=1)), or values.ravel() to summarize the draws themselves.")
    values = values.reshape(-1)
    wrong = np.isinf(values) | (np.abs(np.nan_to_num(values)) > 1 + 1e-9)
    if wrong.any():
        raise ValueError(f"values must be correlations in [-1, 1] (or nan where undefined); "
                         f"{int(wrong.sum())} are not, e.g. {values[wrong][0]:g} at position "
                         f"{int(np.flatnonzero(wrong)[0])}.")
    ok = np.isfinite(values)
    n_dropped = int((~ok).sum())
    if not ok.any():
        return SROCCSummary(float("nan"), float("nan"), 0, n_dropped)
    return SROCCSummary(float(values[ok].mean()), float(values[ok].std()), int(ok.sum()),
                        n_dropped)


def _training_raters(prior, depth=3):
    """The raters ``prior`` was fitted on, as far as it records them (a set)."""
    raters = getattr(prior, "raters_", None)
    seen = set() if raters is None else set(raters)
    for members in (getattr(prior, "source_raters_", None) or {}).values():
        seen.update(members)
    # A task-vector model's base and a FrozenEstimator's prior were fitted on raters too.
    inner = getattr(prior, "base_", None)
    inner = getattr(prior, "estimator", None) if inner is None else inner
    if inner is not None and depth:
        seen |= _training_raters(inner, depth - 1)
    return seen


def _warn_seen_raters(prior, test_tasks, stacklevel):
    """Warn when test raters are among the prior's training raters: not held out."""
    seen = _training_raters(prior)
    both = raters_among(test_tasks.raters, seen)
    if both:
        warnings.warn(
            f"{len(both)} of the {len(test_tasks)} test rater(s) were among the prior's "
            f"{len(seen)} training raters ({', '.join(map(repr, both[:5]))}"
            f"{' ...' if len(both) > 5 else ''}): their ratings were seen in training, so "
            "these are not held-out figures. Evaluate on raters the prior was not trained "
            "on.", PIAAWarning, stacklevel=stacklevel)


def _as_is(X):
    return X


def _personalizer(estimator):
    """``(transform, model)``: ``model.personalize`` on ``transform(X)`` personalizes
    ``estimator``, which may be a fitted search (nested cross-validation) or a pipeline
    (``transform`` is :func:`_as_is` for anything else)."""
    if hasattr(estimator, "personalize"):
        return _as_is, estimator
    best = getattr(estimator, "best_estimator_", None)
    if best is not None:
        return _personalizer(best)
    if isinstance(estimator, Pipeline):
        transform, model = _personalizer(estimator[-1])
        return (lambda X: transform(estimator[:-1].transform(X))), model
    raise TypeError(
        f"personalized SROCC personalizes the model it scores, and a "
        f"{type(estimator).__name__} has no personalize method (nor is it a fitted search "
        "or a Pipeline ending in one that has).")


def _draw_seeds(random_state, raters, n_repeats):
    """Each rater's seeds, one per repeat, from the rater's id and the repeat's number.

    One draw from ``random_state``, mixed with the rater's id (as text) and the repeat:
    a rater's first draws are the same whatever the number of repeats and whichever
    other raters are evaluated beside it, so more repeats extend a table, and a rater
    added or left out changes no one else's draws.

    Parameters
    ----------
    random_state : int, RandomState instance or None
    raters : sequence
        Rater ids.
    n_repeats : int

    Returns
    -------
    ndarray of shape (len(raters), n_repeats)
        Seeds below 2**31 - 1.
    """
    base = int(check_seed(random_state).randint(np.iinfo(np.int32).max))
    seeds = np.empty((len(raters), n_repeats), dtype=np.int64)
    for i, r in enumerate(raters):
        key = int.from_bytes(hashlib.sha256(rater_text(r).encode()).digest()[:8], "little")
        for j in range(n_repeats):
            word = np.random.SeedSequence([base, key, j]).generate_state(1, np.uint64)[0]
            seeds[i, j] = int(word) % np.iinfo(np.int32).max
    return seeds


def _skips_unreadable(model, X):
    """Whether ``model`` leaves out images of ``X`` it cannot read (``on_error="skip"``)."""
    return (input_kind(X) != FEATURES
            and getattr(image_reader(model), "on_error", None) == "skip")


def _readable_rows(prior, X, y):
    """``X, y`` and the prior's scores, without the images it could not read.

    A model that skips unreadable images (``on_error="skip"``) predicts NaN for them,
    and its embedder warns naming them: left in, one such image in a query set would
    make that draw's SROCC undefined, and in a support set it would be dropped by
    ``personalize`` anyway. Any other NaN (features, or a model that reads images
    strictly) is the model's own failure and is left for the SROCC to report.

    Parameters
    ----------
    prior : estimator
        Predicts ``X``: the model, or a search or pipeline around it.
    X : array-like or list
        One rater's images or features.
    y : ndarray of shape (n_samples,)

    Returns
    -------
    X, y : the rows kept
    pred : ndarray
        The prior's scores of the rows kept.
    """
    pred = prior.predict(X)
    ok = ~np.isnan(pred)
    if ok.all() or not _skips_unreadable(prior, X):
        return X, y, pred
    keep = np.flatnonzero(ok)
    return take(X, keep), y[keep], pred[keep]


def _readable(model, X, y, transform=_as_is):
    """``X, y`` without the images ``model`` cannot read (``on_error="skip"``).

    Found by reading them, as :func:`_readable_rows` finds them by predicting: a
    whole-network model's prediction is a forward pass per image that the scorer does
    not use. The embedder warns naming them, as prediction would.
    """
    kept = drop_unreadable(image_reader(model), transform(X), y, "skip", return_kept=True,
                           none_ok=True)[2]  # none readable: the caller counts too few
    return take(X, kept), y[kept]


def _personalized_draws(model, X, y, seeds, n_support, transform=_as_is,
                        personalize_params=None):
    """Personalize ``model`` on each random support set of one rater, as the protocol draws.

    Each repeat's ``seed`` (:func:`_draw_seeds`) permutes the rater's rows once, with
    ``RandomState(seed).permutation``: the support set is its first ``k`` rows for each
    ``k`` of ``n_support`` (so a 10-image support is part of the 100-image one), the
    query set the rest; the same seed is ``personalize``'s ``random_state``.
    :func:`~sklearn_piaa.evaluate_personalization` and the personalized scorer both
    draw here, so that they score the same draws for the same ``random_state``.

    Parameters
    ----------
    model : estimator
        Has ``personalize(X, y, random_state=...)``.
    X : array-like or list
        The rater's rows, as ``transform`` takes them.
    y : ndarray of shape (n_samples,)
    seeds : sequence of int
        One per repeat.
    n_support : tuple of int
        Support sizes; a size that leaves fewer than 2 query rows is passed over.
    transform : callable, default=_as_is
        Turns rows into what ``model`` takes (a pipeline's earlier steps).
    personalize_params : dict, default=None
        More arguments of ``personalize`` (``score_range``).

    Yields
    ------
    repeat : int
    seed : int
    k : int
        The support size.
    query : ndarray of int
        The query rows (positions in ``X``).
    net : estimator
        The personalized model.
    """
    for repeat, seed in enumerate(seeds):
        seed = int(seed)
        perm = np.random.RandomState(seed).permutation(len(y))
        for k in n_support:
            if len(y) < k + 2:
                continue
            support = perm[:k]
            net = model.personalize(transform(take(X, support)), y[support],
                                    random_state=seed, **(personalize_params or {}))
            yield repeat, seed, k, perm[k:], net


def _scale_advice(model):
    """How to give ``model`` the raters' rating scale: by its ``score_range`` setting (a
    pipeline's or a task-vector model's named by its path), or, for a baseline, which
    has none, by rescaling the scores."""
    params = model.get_params() if hasattr(model, "get_params") else {}
    key = next((k for k in ("score_range", "base__score_range") if k in params),
               next((k for k in params if k.endswith("__score_range")), None))
    if key is None:
        return ("rescale their scores onto the training raters' scale (this model takes "
                "no score_range).")
    return (f"give the estimator {key}=(low, high) of the rating scale (set_params), so "
            "that the prior of every fold covers it.")


def personalized_srocc(estimator, X, y, groups, n_support=10, n_repeats=1,
                       too_few="raise", random_state=None):
    """Personalize on ``n_support`` images of each rater and score SROCC on the rest.

    This is the measurement of the BLG-PIAA paper: for every rater in ``groups`` and
    each repeat, draw ``n_support`` of that rater's images at random, call
    ``estimator.personalize`` on them and compute SROCC on the rater's other images.
    The draws are :func:`~sklearn_piaa.evaluate_personalization`'s: for the same
    raters (their rows in the same order), ``n_support``, ``n_repeats`` and
    ``random_state``, the scores are its ``srocc_personalized`` at that support size.

    Parameters
    ----------
    estimator : object
        A fitted estimator with ``personalize(X, y, random_state=...)``, such as
        :class:`MetaAestheticRegressor`; or a fitted search over one (its
        ``best_estimator_``: nested cross-validation), or a fitted Pipeline ending in one
        (its other steps transform the support and query images).
    X : array-like or list
        Images or features, one row per rating.
    y : array-like of shape (n_ratings,)
    groups : array-like of shape (n_ratings,)
        Rater id of each rating.
    n_support : int, default=10
    n_repeats : int, default=1
        Random support draws per rater; a rater's SROCC is the mean over its repeats.
    too_few : {"raise", "skip"}, default="raise"
        What to do with raters that have fewer than ``n_support + 2`` images: raise a
        ValueError naming them, or leave them out with a :class:`PIAAWarning` naming
        them (an :class:`UndefinedSROCCWarning` when that leaves none).
    random_state : int, RandomState instance or None, default=None
        One number is drawn from it; each rater's draw at each repeat is seeded from
        that number, the rater's id and the repeat's number (the seed permutes the
        rater's images, the first ``n_support`` are the support set, and it is
        ``personalize``'s ``random_state``), as in
        :func:`~sklearn_piaa.evaluate_personalization`. A rater's draws therefore do
        not depend on which other raters are scored beside it (a fold's other raters),
        and more repeats keep the first ones. ``None`` draws anew at each call.

    Returns
    -------
    raters : list
        Rater ids scored, in sorted order.
    scores : ndarray of shape (n_raters, n_repeats)
        SROCC per rater and repeat (``nan`` where undefined, with an
        :class:`UndefinedSROCCWarning` naming the raters and the cause).
    """
    raters, scores, whys = _personalized_srocc(estimator, X, y, groups, n_support,
                                               n_repeats, too_few, random_state,
                                               stacklevel=3)
    undefined = np.isnan(scores)
    if undefined.any():
        # as the scorer and evaluate_personalization say it: a NaN in the array alone
        # went unnoticed into a user's mean
        warnings.warn(
            f"undefined SROCC (nan) in {int(undefined.sum())} of {scores.size} draws: "
            + _undefined_raters({raters[i]: whys[i]
                                 for i in np.flatnonzero(undefined.any(axis=1))}) + ".",
            UndefinedSROCCWarning, stacklevel=2)
    return raters, scores


def _personalized_srocc(estimator, X, y, groups, n_support=10, n_repeats=1,
                        too_few="raise", random_state=None, stacklevel=2):
    # personalized_srocc, and the cause of each undefined value (an object array like
    # scores: None where defined; see _srocc), for the scorer's warnings to name it.
    # stacklevel: of the warnings warned here, one that reaches past the public caller
    # (personalized_srocc, the scorer) to the user's line
    if groups is None:
        raise ValueError(
            "personalized SROCC needs the rater id of each row (groups). In cross_val_score "
            "or GridSearchCV enable metadata routing (with sklearn.config_context("
            "enable_metadata_routing=True):) and pass params={'groups': users} to "
            "cross_val_score, or groups=users to the search's fit (and to a fitted "
            "search's score)."
        )
    if too_few not in ("raise", "skip"):
        raise ValueError(f"too_few must be 'raise' or 'skip'; got {too_few!r}.")
    for name, value in (("n_support", n_support), ("n_repeats", n_repeats)):
        if not is_count(value):
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    transform, model = _personalizer(estimator)
    tasks = TaskSet.from_arrays(X, y, groups)
    check_feature_names(getattr(estimator, "feature_names_in_", None), None,
                        type(estimator).__name__, names=tasks.feature_names)
    warn_repeated_images(tasks, stacklevel=stacklevel + 1)
    _warn_seen_raters(model, tasks, stacklevel=stacklevel + 1)
    # A pipeline's steps may select a table's columns by name: give them the table.
    rows = X if hasattr(X, "iloc") else tasks.X
    need = n_support + 2
    sizes = tasks.sizes()
    if too_few == "raise":
        tasks.check_min_size(need, what=f"personalizing on {n_support} images and scoring "
                                        "SROCC on at least 2 others")
    raters = [r for r in tasks.raters if sizes[r] >= need]
    skipped = [r for r in tasks.raters if sizes[r] < need]
    if not raters:  # skipping is asked for, but a score of nothing needs saying
        warnings.warn(
            f"no rater has {need} images (personalizing on {n_support} and scoring SROCC on "
            f"at least 2 others); all {len(tasks.raters)} were skipped and there is nothing "
            "to score.", UndefinedSROCCWarning, stacklevel=stacklevel)
    elif skipped:  # the mean is over the others: say which raters it leaves out
        warnings.warn(
            f"{len(skipped)} of {len(tasks.raters)} rater(s) have fewer than {need} images "
            f"(personalizing on {n_support} and scoring SROCC on at least 2 others) and were "
            "skipped: " + ", ".join(f"{r!r} ({sizes[r]})" for r in skipped[:10])
            + (" ..." if len(skipped) > 10 else ""), PIAAWarning, stacklevel=stacklevel)
    # In a search each fold's prior takes its scale from that fold's training raters:
    # a held-out rater using a score none of them used failed at some draws only.
    check_scales(model, tasks, _scale_advice(estimator), raters=raters)
    seeds = _draw_seeds(random_state, raters, n_repeats)
    skipping = _skips_unreadable(model, rows)
    scores = np.full((len(raters), n_repeats), np.nan)
    whys = np.full((len(raters), n_repeats), None, dtype=object)
    _SCALE_CHECKED.on = True  # raters of another scale were named above, once
    try:
        for i, rater in enumerate(raters):
            idx = tasks.indices[rater]
            X_r, y_r = take(rows, idx), tasks.y[idx]
            if skipping:  # as evaluate_personalization leaves them out
                X_r, y_r = _readable(model, X_r, y_r, transform)
                if len(y_r) < need:  # counted above with its unreadable images
                    whys[i] = (f"{len(y_r)} readable images, fewer than {need} (personalizing "
                               f"on {n_support} and scoring SROCC on at least 2 others)")
                    continue
            for j, _, _, query, net in _personalized_draws(model, X_r, y_r, seeds[i],
                                                           (n_support,), transform):
                scores[i, j], _, whys[i, j] = _srocc(
                    y_r[query], net.predict(transform(take(X_r, query))))
    finally:
        _SCALE_CHECKED.on = False
    return raters, scores, whys


class PersonalizedSROCCScorer:
    """Scorer: mean over held-out raters of SROCC after personalizing on ``n_support`` images.

    Use it as ``scoring=`` in :func:`~sklearn.model_selection.cross_val_score` or
    :class:`~sklearn.model_selection.GridSearchCV` with a user-grouped splitter. It needs
    the rater of each test row, which scikit-learn passes through metadata routing:
    ``with sklearn.config_context(enable_metadata_routing=True):`` around the search,
    with the groups given as usual (``cross_val_score(..., groups=users)`` or
    ``params={"groups": users}``). Without routing, ``params`` reaches ``fit`` only:
    the scorer gets no groups and every fold scores NaN (scikit-learn's "Scoring
    failed" warning shows the scorer's error). The scorer requests ``groups`` by
    default.

    Parameters
    ----------
    n_support : int, default=10
        Images per rater to personalize on (the paper uses 10 and 100).
    n_repeats : int, default=1
        Random support draws per rater.
    too_few : {"raise", "skip"}, default="raise"
        Raters with fewer than ``n_support + 2`` images raise an error or are skipped
        with a :class:`PIAAWarning` naming them (the score is ``nan``, with an
        :class:`UndefinedSROCCWarning`, when none is left).
    random_state : int, RandomState instance or None, default=0
        Fixed by default so that every candidate of a grid search sees the same draws.
        Only an int does that: a RandomState instance advances from call to call in
        one process (each candidate and fold draws anew) while each worker process of
        ``n_jobs`` starts from its own copy, so scores then depend on ``n_jobs``;
        ``None`` draws anew each call. The draws are
        :func:`~sklearn_piaa.evaluate_personalization`'s (see
        :func:`personalized_srocc`): each rater's are seeded from one number drawn
        from ``random_state``, the rater's id and the repeat's number, so they do not
        depend on the other raters of the fold, and a rater's score is its
        personalized SROCC in :func:`~sklearn_piaa.evaluate_personalization` with the
        same ``random_state``, ``n_support`` and ``n_repeats``.

    Notes
    -----
    Undefined SROCC values (constant ratings or predictions on a query set) are left
    out -- a draw's out of its rater's mean over repeats, a rater's out of the mean
    over raters -- with a warning that says how many of each and names the raters
    with the cause, as :func:`evaluate_personalization` does.
    """

    def __init__(self, n_support=10, n_repeats=1, too_few="raise", random_state=0):
        self.n_support = n_support
        self.n_repeats = n_repeats
        self.too_few = too_few
        self.random_state = random_state

    def __call__(self, estimator, X, y, groups=None):
        raters, scores, whys = _personalized_srocc(
            estimator, X, y, groups, n_support=self.n_support, n_repeats=self.n_repeats,
            too_few=self.too_few, random_state=self.random_state, stacklevel=3)
        # Undefined draws are left out of a rater's mean (np.nanmean would warn for a
        # rater with none defined; see _srocc on silencing warnings).
        defined = ~np.isnan(scores)
        n_defined = defined.sum(axis=1)
        per_rater = np.full(len(scores), np.nan)
        np.divide(np.where(defined, scores, 0.0).sum(axis=1), n_defined, out=per_rater,
                  where=n_defined > 0)
        summary = aggregate_srocc(per_rater)
        if summary.n_dropped:
            # named with the cause: constant ratings are the data's (a rater who rated
            # everything alike), constant predictions the model's
            dropped = np.flatnonzero(n_defined == 0)
            warnings.warn(
                f"{summary.n_dropped} of {len(per_rater)} raters had undefined SROCC and were "
                "left out of the mean: "
                + _undefined_raters({raters[i]: whys[i] for i in dropped}) + ".",
                UndefinedSROCCWarning, stacklevel=2)
        partial = (n_defined > 0) & (n_defined < scores.shape[1])
        if partial.any():
            # Said as evaluate_personalization says it: in a search, a setting whose
            # personalized model turns constant at some draws is scored on the others.
            warnings.warn(
                f"undefined SROCC on the query images in {int((~defined[partial]).sum())} "
                f"of {scores.size} draws, of {int(partial.sum())} rater(s) scored on their "
                "other draws: " + _undefined_raters(
                    {raters[i]: whys[i] for i in np.flatnonzero(partial)})
                + "; left out of those raters' means.", UndefinedSROCCWarning, stacklevel=2)
        return summary.mean

    def get_metadata_routing(self):
        """Request ``groups`` for scoring (see scikit-learn's metadata routing)."""
        request = MetadataRequest(owner=type(self).__name__)
        request.score.add_request(param="groups", alias=True)
        return request

    def __repr__(self):
        return (f"PersonalizedSROCCScorer(n_support={self.n_support}, "
                f"n_repeats={self.n_repeats}, too_few={self.too_few!r}, "
                f"random_state={self.random_state!r})")
