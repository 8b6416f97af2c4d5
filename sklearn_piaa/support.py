"""Choosing the support images: which images a new rater should be asked to rate."""

import numbers
import warnings
from collections.abc import Mapping

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions

from ._inputs import (
    FEATURES,
    as_indexable,
    check_alphas,
    check_feature_names,
    feature_names,
    input_kind,
    unique_rows,
)
from ._messages import row_numbers
from ._tasks import TaskSet, as_tasks
from ._warnings import PIAAWarning

__all__ = ["SupportSelector", "select_support"]

# Strategy -> whether it needs the training raters (a fitted selector).
_NEEDS_RATERS = {"random": False, "kcenter": False, "disagreement": True, "hybrid": True}


_EMBED_FIRST = ("Embed the images first, with the prior's own input adapter "
                "(prior.input_(X), a fitted MetaAestheticRegressor with a frozen "
                "backbone) or with embed_images(X).")


def _refuse_images(X, what):
    if input_kind(X) != FEATURES:
        raise ValueError(f"{what} must be a 2-D array of image embeddings; got images. "
                         + _EMBED_FIRST)


def _features(X, what="X", keep_float=False):
    """``X`` as a finite float64 feature matrix, or a ValueError naming the problem.

    ``keep_float``: a float32 ``X`` stays float32 (a rater table repeats each image's
    row per rating: cast after dropping the repeats, it takes a third of the memory).
    """
    _refuse_images(X, what)
    F = np.asarray(as_indexable(X))  # pandas' nullable columns: pd.NA as NaN
    if F.dtype.kind in "OSU":
        # a table of image paths is 2-D too: numpy's "could not convert string to
        # float" named neither the argument nor what to do
        text = next((v for v in F.ravel() if isinstance(v, (str, bytes))), None)
        if text is not None:
            raise ValueError(f"{what} must be a 2-D array of image embeddings; got text "
                             f"({text!r}): image paths? {_EMBED_FIRST}")
    if not (keep_float and F.dtype.kind == "f"):
        F = F.astype(np.float64, copy=False)
    if F.ndim != 2 or F.shape[0] == 0 or F.shape[1] == 0:
        raise ValueError(f"{what} must be a non-empty 2-D array (n_images, n_features); "
                         f"got shape {F.shape}.")
    bad = ~np.isfinite(F).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{what} has {len(rows)} row(s) with NaN or infinite features "
            f"({row_numbers(rows, n=10)}); unreadable images embed as NaN with "
            "on_error='skip': drop those rows before choosing support images.")
    return F


def _check_n(n, n_candidates):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"n must be an integer number of images; got {n!r}.")
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}.")
    if n > n_candidates:
        raise ValueError(f"cannot choose n={n} support images from {n_candidates} "
                         "candidate(s); pass at most as many as there are candidates.")
    return int(n)


#: Beyond this, squares of values (a column's variance, a squared distance) can overflow
#: float64 (whose largest square root is about 1.3e154): such values are scaled first.
_HUGE = 2.0 ** 500


def _standardize(F):
    top = np.maximum(F.max(axis=0), -F.min(axis=0))  # no |F| copy of the whole array
    if top.max() <= _HUGE:
        mean, scale = F.mean(axis=0), F.std(axis=0)
    else:
        # A row of 1e200 made the variance infinite, every value of its column 0 after
        # standardizing, and the outlier invisible (with a RuntimeWarning): each column
        # is scaled by its largest |value|, which squares cannot overflow.
        unit = np.where(top > 0, top, 1.0)
        G = F / unit
        mean, scale = G.mean(axis=0) * unit, G.std(axis=0) * unit
    # A constant feature carries no distance; dividing by 1 keeps it at 0.
    scale[scale < 1e-12] = 1.0
    return mean, scale


#: Rows of candidates per block of a distance computation: a block's differences
#: (1024 x 128 float64, 1 MB) stay in a core's cache, where the whole candidate set's
#: (50 MB at 50,000) went to memory and back twice per pick.
_BLOCK = 1024


def _distances(Z, z, out):
    """``sqrt(((Z - z) ** 2).sum(axis=1))`` into ``out``, the same numbers, by blocks."""
    for start in range(0, len(Z), _BLOCK):
        diff = Z[start:start + _BLOCK] - z
        np.square(diff, out=diff)
        np.sqrt(diff.sum(axis=1), out=out[start:start + _BLOCK])
    return out


def _row_tops(Z):
    """The largest |value| of each row of the standardized ``Z``, all finite.

    Raises
    ------
    ValueError
        Naming the rows whose standardized values are beyond float64's range.
    """
    top = np.maximum(Z.max(axis=1), -Z.min(axis=1))
    _raise_for_far_rows(~np.isfinite(top), "to compare in float64 (standardized, they "
                        "exceed about 1.8e308)")
    return top


def _raise_for_far_rows(bad, why):
    if bad.any():
        raise ValueError(
            f"X has {int(bad.sum())} row(s) ({row_numbers(np.flatnonzero(bad), n=10)}) "
            f"too far from the other embeddings {why}: check those rows; embeddings "
            "of a backbone lie within tens.")


def _for_distances(Z):
    """``Z``, or ``Z`` times a power of 2, whose squared distances cannot overflow.

    A power of 2 changes no comparison of distances (it is exact), and leaves as much
    room below for small differences as there is above for the largest. Candidates
    standardized by a fitted selector can lie anywhere (a row of 1e200 among
    embeddings of order 1), where the squares overflowed to infinity.

    Raises
    ------
    ValueError
        Naming the rows whose standardized values are beyond float64's range.
    """
    top = _row_tops(Z)
    # a difference is below 2 * top, and its square summed over the columns below 2**1010
    limit = _HUGE / np.sqrt(Z.shape[1])
    if top.max() <= limit:
        return Z
    return Z * 2.0 ** -int(np.ceil(np.log2(top.max() / limit)))


def _greedy(Z, n, first, weight):
    """Farthest-first traversal from ``first``; distances scaled by ``weight`` if given."""
    picks = [int(first)]
    dist = _distances(Z, Z[first], np.empty(len(Z)))
    new, gain = np.empty(len(Z)), np.empty(len(Z))
    for _ in range(n - 1):
        np.copyto(gain, dist) if weight is None else np.multiply(dist, weight, out=gain)
        # Picked rows sit at distance 0, but duplicates of them do too: mask explicitly.
        gain[picks] = -np.inf
        i = int(np.argmax(gain))
        picks.append(i)
        np.minimum(dist, _distances(Z, Z[i], new), out=dist)
    return np.asarray(picks, dtype=np.intp)


def _ridge(Z, target, alphas):
    # Leave-one-out (GCV) needs a few points; below that, shrink the most.
    if len(target) < 3:
        return Ridge(alpha=float(alphas.max())).fit(Z, target)
    return RidgeCV(alphas=alphas).fit(Z, target)


#: What disagreement needs: a spread over one rater's model is 0 on every image.
_COMMITTEE = ("needs at least two training raters with a deviation model (raters with 3 "
              "or more ratings of images that another rater rated too)")


def _committee(raters):
    return (f"only rater {raters[0]!r} has one" if raters else "no rater has one")


class SupportSelector(BaseEstimator):
    """Choose which images a new rater should rate before the prior is personalized.

    The paper's raters rate a random sample [1]_. A selector picks the ``n`` images of
    a candidate pool (as embeddings) whose ratings should tell most about the rater:

    - ``"random"``: a uniform sample (the paper's protocol), for reference.
    - ``"kcenter"``: k-center greedy (farthest-first traversal) on standardized
      embeddings [2]_ [3]_: the picks cover the pool, every candidate lies close to a
      pick. The first pick is the candidate nearest the pool's mean.
    - ``"disagreement"``: the images on which the raters seen in training disagree
      most. ``fit`` learns, per training rater, a ridge regression of that rater's
      (standardized) scores' deviation from the leave-one-out consensus on the
      standardized embeddings; the spread (standard deviation over raters) of those
      predicted deviations on a candidate, each without its intercept (a rater's
      constant offset changes none of its rankings), measures how much raters
      disagree on it
      (query by committee [4]_, the committee being the training raters' taste
      models). The top ``n`` candidates are picked.
    - ``"hybrid"``: k-center greedy where each candidate's distance to the picks is
      weighted by its disagreement, so picks are both spread out and contested; the
      first pick is the most contested candidate.

    Parameters
    ----------
    strategy : {"kcenter", "disagreement", "hybrid", "random"}, default="kcenter"
    alphas : tuple of float, default=(0.1, 1.0, 10.0, 100.0, 1000.0)
        Ridge penalties of the training raters' deviation models, chosen per rater by
        leave-one-out; per feature (multiplied by the embedding width, as in
        :mod:`sklearn_piaa.baselines`).
    random_state : int, RandomState instance or None, default=None
        Used by ``"random"`` only; with an int, ``select`` gives the same picks for the
        same candidates. The other strategies are deterministic.

    Attributes
    ----------
    n_features_in_ : int
        Embedding width seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame given to ``fit`` (only then); candidates given as
        a DataFrame must have these columns, in this order.
    mean_, scale_ : ndarray of shape (n_features,)
        Mean and standard deviation of the training images' embeddings (each distinct
        image counted once); candidates are standardized with them. An unfitted
        ``"kcenter"`` or ``"random"`` selector standardizes candidates over themselves.
    raters_ : list
        Training raters with a deviation model (at least 3 ratings of images that
        someone else rated too).
    rater_coef_ : ndarray of shape (n_raters, n_features)
        Their deviation models' coefficients on standardized embeddings.

    See Also
    --------
    select_support : the same as a function.
    sklearn_piaa.compare_support_strategies : personalized SROCC for chosen versus
        random support sets, paired on the same query images.

    Notes
    -----
    Selection only reorders which images a rater is asked about; whether it helps
    depends on the data and the prior. k-center greedy favours atypical images (the
    farthest candidate is picked next), which may be the ones a prior ranks worst;
    see the benchmarks before relying on any strategy.

    References
    ----------
    .. [1] H. Zhu et al., "Personalized Image Aesthetics Assessment via Meta-Learning
       With Bilevel Gradient Optimization", IEEE Transactions on Cybernetics, 2022.
    .. [2] O. Sener and S. Savarese, "Active Learning for Convolutional Neural
       Networks: A Core-Set Approach", ICLR 2018.
    .. [3] T. F. Gonzalez, "Clustering to minimize the maximum intercluster distance",
       Theoretical Computer Science 38, 1985.
    .. [4] H. S. Seung, M. Opper and H. Sompolinsky, "Query by committee", COLT 1992.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_piaa import SupportSelector
    >>> rng = np.random.RandomState(0)
    >>> centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    >>> X = np.repeat(centers, 5, axis=0) + 0.1 * rng.randn(15, 2)
    >>> picks = SupportSelector(strategy="kcenter").select(X, 3)
    >>> sorted((picks // 5).tolist())  # one image of each cluster
    [0, 1, 2]
    """

    _parameter_constraints = {
        "strategy": [StrOptions(set(_NEEDS_RATERS))],
        "alphas": ["array-like"],
        "random_state": ["random_state"],
    }

    def __init__(self, strategy="kcenter", *, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0),
                 random_state=None):
        self.strategy = strategy
        self.alphas = alphas
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, groups=None):
        """Learn the embedding scale and the training raters' deviation models.

        Parameters
        ----------
        X : TaskSet, dict, or array-like of shape (n_ratings, n_features)
            Training raters over embeddings, with the input rules of
            :meth:`MetaAestheticRegressor.fit`.
        y : array-like of shape (n_ratings,), default=None
        groups : array-like of shape (n_ratings,), default=None
            Rater id of each row.

        Returns
        -------
        self
        """
        names = feature_names(X)
        if not isinstance(X, (TaskSet, Mapping)):
            # as_tasks' own refusal advises a backbone, which a selector has not
            _refuse_images(X, "the training embeddings")
        tasks = as_tasks(X, y, groups, features=True, owner="SupportSelector")
        if names is None:  # a TaskSet or dict of tables carries them (as fit takes them)
            names = getattr(tasks, "feature_names", None)
        F = _features(tasks.X, "the training embeddings", keep_float=True)
        alphas = check_alphas(self.alphas)
        unique, inverse = unique_rows(F)
        unique = unique.astype(np.float64)  # the same rows as of float64 features
        mean, scale = _standardize(unique)
        Z = (unique - mean) / scale
        raters, coef = self._deviation_models(Z, inverse, tasks, alphas * Z.shape[1])
        if len(raters) < 2 and _NEEDS_RATERS[self.strategy]:
            raise ValueError(f"strategy={self.strategy!r} {_COMMITTEE}; {_committee(raters)}.")
        self.n_features_in_ = F.shape[1]
        if names is None:
            self.__dict__.pop("feature_names_in_", None)
        else:  # candidates' columns in another order would be other images' features
            self.feature_names_in_ = names
        self.mean_, self.scale_ = mean, scale
        self.raters_, self.rater_coef_ = raters, coef
        return self

    @staticmethod
    def _deviation_models(Z, inverse, tasks, alphas):
        y = np.asarray(tasks.y, dtype=np.float64)
        z = np.zeros_like(y)
        # Raters use the scale differently; only how they order images is compared.
        for rows in tasks.indices.values():
            sd = y[rows].std()
            z[rows] = (y[rows] - y[rows].mean()) / (sd if sd > 0 else 1.0)
        total = np.bincount(inverse, weights=z, minlength=len(Z))
        count = np.bincount(inverse, minlength=len(Z))
        raters, coef = [], []
        for rater, rows in tasks.indices.items():
            img = inverse[rows]
            # Leave the rater out: its own scores, repeats of one image included, must
            # neither pull the consensus to itself nor make an image count as shared
            # (two raters who each rated their own images twice shared none, yet fitted)
            own = np.bincount(img, weights=z[rows], minlength=len(Z))[img]
            own_count = np.bincount(img, minlength=len(Z))[img]
            others = count[img] - own_count
            shared = others > 0
            if shared.sum() < 3:
                continue
            loo = (total[img] - own)[shared] / others[shared]
            model = _ridge(Z[img[shared]], z[rows][shared] - loo, alphas)
            raters.append(rater)
            coef.append(model.coef_)
        coef = np.asarray(coef, dtype=np.float64).reshape(len(raters), Z.shape[1])
        return raters, coef

    def _transform(self, X):
        F = _features(X)
        if not hasattr(self, "mean_"):
            mean, scale = _standardize(F)
        else:
            if F.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {F.shape[1]} features, but SupportSelector was "
                                 f"fitted on embeddings with {self.n_features_in_}.")
            check_feature_names(getattr(self, "feature_names_in_", None), X,
                                "SupportSelector")
            mean, scale = self.mean_, self.scale_
        with np.errstate(over="ignore"):  # beyond float64: named by _row_tops
            return (F - mean) / scale

    def _check_fitted_for(self, what):
        if not hasattr(self, "rater_coef_"):
            raise NotFittedError(
                f"SupportSelector(strategy={self.strategy!r}) needs the training raters "
                f"for {what}: call fit(train_tasks) first.")
        if len(self.rater_coef_) < 2:
            raise ValueError(f"disagreement is undefined: it {_COMMITTEE}; "
                             f"{_committee(self.raters_)}.")

    def disagreement(self, X):
        """How much the training raters are predicted to disagree on each image.

        Parameters
        ----------
        X : array-like of shape (n_images, n_features)
            Embeddings.

        Returns
        -------
        ndarray of shape (n_images,)
            Standard deviation over training raters of their predicted deviation from
            the consensus without its intercept (the part that varies with the image),
            in units of a rater's score standard deviation.

        Raises
        ------
        ValueError
            Naming the rows of ``X`` too far from the training embeddings for float64
            (standardized, beyond about 1.8e308), as :meth:`select` does.
        """
        self._check_fitted_for("disagreement")
        Z = self._transform(X)
        # Each row scaled by a power of 2 to at most 1 in |value| (exact: its spread
        # scales alike, and rows within 1 are left as they are), so that neither the
        # products nor their squares overflow: a row of 1e200 gave inf, with a
        # RuntimeWarning, where select() measured it (see _for_distances).
        exponent = np.maximum(np.frexp(_row_tops(Z))[1], 0)
        spread = (np.ldexp(Z, -exponent[:, None]) @ self.rater_coef_.T).std(axis=1)
        with np.errstate(over="ignore"):
            spread = np.ldexp(spread, exponent)
        _raise_for_far_rows(~np.isfinite(spread), "for their disagreement to be a float64 "
                            "(beyond about 1.8e308)")
        return spread

    def select(self, X, n):
        """Indices of the ``n`` candidates the new rater should rate.

        Parameters
        ----------
        X : array-like of shape (n_candidates, n_features)
            Embeddings of the candidate images (in the space ``fit`` saw).
        n : int
            Number of images to pick, from 1 to ``n_candidates``.

        Returns
        -------
        ndarray of shape (n,)
            Distinct indices into ``X``, in the order picked (for ``"kcenter"`` and
            ``"hybrid"`` the first ``m`` picks are the selection of size ``m``).
        """
        self._validate_params()
        if _NEEDS_RATERS[self.strategy]:
            self._check_fitted_for(f"strategy={self.strategy!r}")
        Z = self._transform(X)
        n = _check_n(n, len(Z))
        if self.strategy == "random":
            return check_random_state(self.random_state).permutation(len(Z))[:n]
        # scaled by a power of 2 where needed: distances and spreads compare alike
        Z = _for_distances(Z)
        if self.strategy == "kcenter":
            return _greedy(Z, n, _centre(Z), weight=None)
        spread = (Z @ self.rater_coef_.T).std(axis=1)
        # coefficients of z-scored deviations on standardized features: below 1e-9 they
        # are rounding (raters who agree everywhere gave 1e-19 and picks by that noise)
        if not spread.max() > 0 or not np.abs(self.rater_coef_).max() > 1e-9:
            warnings.warn(
                f"strategy={self.strategy!r}: the training raters' models agree on every "
                "candidate (their coefficients are all alike: constant or fully shrunk "
                "ratings), so disagreement ranks nothing; "
                + ("the first candidates are picked: use 'kcenter' instead."
                   if self.strategy == "disagreement" else "picking by 'kcenter' instead."),
                PIAAWarning, stacklevel=2)
            if self.strategy == "hybrid":
                return _greedy(Z, n, _centre(Z), weight=None)
            spread = np.zeros_like(spread)  # the first candidates, not by rounding noise
        if self.strategy == "disagreement":
            # A stable sort: ties go to the lower index, so picks are reproducible; an
            # image given twice is asked for again only once every other one has been.
            order = np.argsort(-spread, kind="stable")
            seen, first, again = set(), [], []
            for i in order:
                key = Z[i].tobytes()
                (again if key in seen else first).append(i)
                seen.add(key)
            return np.asarray(first + again, dtype=np.intp)[:n]
        weight = spread / spread.mean()
        return _greedy(Z, n, int(np.argmax(weight)), weight=weight)


def _centre(Z):
    """The candidate nearest the candidates' mean: where k-center starts."""
    return int(np.argmin(((Z - Z.mean(axis=0)) ** 2).sum(axis=1)))


def select_support(X, n, strategy="kcenter", *, selector=None, train_tasks=None,
                   random_state=None):
    """Pick ``n`` of the candidate images ``X`` for a new rater to rate.

    A shortcut for ``SupportSelector(strategy, random_state=random_state)
    .fit(train_tasks).select(X, n)`` (``fit`` skipped without ``train_tasks``).

    Parameters
    ----------
    X : array-like of shape (n_candidates, n_features)
        Embeddings of the candidate images.
    n : int
        Number of images to pick.
    strategy : {"kcenter", "disagreement", "hybrid", "random"}, default="kcenter"
        See :class:`SupportSelector`; ignored when ``selector`` is given.
    selector : SupportSelector, default=None
        A selector to use as it is (already fitted where its strategy needs it).
    train_tasks : TaskSet or dict, default=None
        Training raters over the same embeddings; needed by ``"disagreement"`` and
        ``"hybrid"``.
    random_state : int, RandomState instance or None, default=None
        For ``"random"``; not with ``selector`` (which has its own).

    Returns
    -------
    ndarray of shape (n,)
        Indices into ``X``.

    References
    ----------
    .. [1] O. Sener and S. Savarese, "Active Learning for Convolutional Neural
       Networks: A Core-Set Approach", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_piaa import select_support
    >>> X = np.array([[0.0], [0.1], [5.0], [5.1], [9.9], [10.0]])
    >>> select_support(X, 3).tolist()  # the middle first, then the far ends
    [2, 0, 5]
    """
    if selector is not None:
        for name, value in (("train_tasks", train_tasks), ("random_state", random_state)):
            if value is not None:  # the selector's own settings and fit would win silently
                raise ValueError(f"pass either selector or {name}, not both: a given "
                                 "selector is used as it is (set its random_state).")
        return selector.select(X, n)
    selector = SupportSelector(strategy, random_state=random_state)
    if train_tasks is not None:
        selector.fit(train_tasks)
    elif strategy in ("disagreement", "hybrid"):
        raise NotFittedError(f"select_support(strategy={strategy!r}) needs the training "
                             "raters: pass train_tasks=.")
    return selector.select(X, n)
