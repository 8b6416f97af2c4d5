"""Splitters: over raters (meta-train vs meta-test) and within one rater (support vs query)."""


import numpy as np
from sklearn.model_selection import GroupKFold, GroupShuffleSplit
from sklearn.model_selection._split import BaseCrossValidator
from sklearn.utils import check_random_state

from ._inputs import is_count
from ._tasks import (
    _as_ids,
    _sorted_raters,
    refuse_bool_ids,
    refuse_missing_ids,
    warn_same_text,
)

__all__ = ["UserGroupKFold", "UserGroupShuffleSplit", "SupportQuerySplit"]


def _check_groups(groups, n_splits=None):
    """``groups`` as scikit-learn's splitters can sort them, after checking them."""
    if groups is None:
        raise ValueError(
            "user-grouped splitting needs the rater id of each row: pass groups=users "
            "(or params={'groups': users} with metadata routing enabled)."
        )
    ids = _as_ids(groups)  # each id in its own cell, as fit and TaskSet read them
    if ids.ndim != 1:
        raise ValueError(f"groups must hold one rater id per row; got shape {ids.shape}.")
    refuse_missing_ids(ids)
    refuse_bool_ids(ids)
    if ids.dtype != object:
        raters = np.unique(ids)
        if ids.dtype.kind in "US":
            warn_same_text(raters.tolist())  # "7" and "7 ", or b"7" and b"7 "
        n_raters = len(raters)
    else:
        raters = _sorted_raters(set(ids.tolist()))
        warn_same_text(raters)
        # ids of several types (7 and "anna") or tuples, which numpy cannot sort or
        # scikit-learn's splitters read as a table: each rater's place in the package's
        # own order of raters instead
        order = {r: i for i, r in enumerate(raters)}
        ids = np.array([order[g] for g in ids.tolist()], dtype=np.intp)
        n_raters = len(order)
    if n_splits is not None and n_raters < n_splits:
        raise ValueError(f"cannot split {n_raters} rater(s) into {n_splits} folds.")
    return ids


class UserGroupKFold(GroupKFold):
    """K-fold over raters: every rater's ratings fall in exactly one test fold.

    No rater is ever in both the meta-training and the meta-test part of a split, as the
    BLG-PIAA protocol requires. A thin layer over
    :class:`~sklearn.model_selection.GroupKFold` that shuffles raters by default and
    names the problem when ``groups`` is missing.

    Parameters
    ----------
    n_splits : int, default=5
    shuffle : bool, default=True
        Shuffle raters before forming folds.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffle. With ``None`` every call of :meth:`split` forms new folds (as
        :class:`~sklearn.model_selection.KFold` with ``shuffle=True`` does), so two
        ``cross_val_score`` runs given the same splitter do not see the same folds: fix
        it to compare estimators on paired folds.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_piaa import UserGroupKFold
    >>> groups = np.repeat(["a", "b", "c"], 4)
    >>> folds = UserGroupKFold(3, random_state=0).split(np.zeros(12), groups=groups)
    >>> sorted(str(r) for _, test in folds for r in set(groups[test]))
    ['a', 'b', 'c']
    """

    def __init__(self, n_splits=5, *, shuffle=True, random_state=None):
        super().__init__(n_splits=n_splits, shuffle=shuffle, random_state=random_state)

    def split(self, X, y=None, groups=None):
        """Yield (train, test) row indices, grouped by rater.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Only its length is used.
        y : array-like of shape (n_samples,), default=None
            Only checked for length.
        groups : array-like of shape (n_samples,), default=None
            Rater id of each row; required.

        Yields
        ------
        train, test : ndarray of int
            Row indices of the training and test raters' ratings.

        Raises
        ------
        ValueError
            When iteration starts: if ``groups`` is None, has a missing id (None or
            NaN) or fewer raters than ``n_splits``, or if ``X``, ``y`` and ``groups``
            differ in length.
        """
        groups = _check_groups(groups, self.n_splits)
        yield from super().split(X, y, groups)


class UserGroupShuffleSplit(GroupShuffleSplit):
    """Random splits of raters into meta-training and meta-test raters.

    A thin layer over :class:`~sklearn.model_selection.GroupShuffleSplit` with a clear
    error when ``groups`` is missing; ``test_size`` counts raters, not ratings.

    Parameters
    ----------
    n_splits : int, default=5
    test_size : float or int, default=0.2
        Fraction or number of raters in each test part.
    train_size : float or int, default=None
    random_state : int, RandomState instance or None, default=None
    """

    def __init__(self, n_splits=5, *, test_size=0.2, train_size=None, random_state=None):
        super().__init__(n_splits=n_splits, test_size=test_size, train_size=train_size,
                         random_state=random_state)

    def split(self, X, y=None, groups=None):
        """Yield (train, test) row indices, grouped by rater.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Only its length is used.
        y : array-like of shape (n_samples,), default=None
            Only checked for length.
        groups : array-like of shape (n_samples,), default=None
            Rater id of each row; required.

        Yields
        ------
        train, test : ndarray of int
            Row indices of the training and test raters' ratings.

        Raises
        ------
        ValueError
            When iteration starts: if ``groups`` is None or has a missing id (None or
            NaN), if ``X``, ``y`` and ``groups`` differ in length, or if ``test_size``
            or ``train_size`` does not fit the number of raters.
        """
        groups = _check_groups(groups)
        try:
            yield from super().split(X, y, groups)
        except ValueError as exc:
            # ("With n_samples=1, test_size=0.2 ... the resulting train set will be
            # empty", of a user with 60 rows)
            if "number of samples" not in str(exc) and "n_samples=" not in str(exc):
                raise
            # scikit-learn's words: "smaller than the number of samples 4", of raters here
            raise ValueError(f"{exc} (here the samples are raters: "
                             f"{len(set(groups.tolist()))} of them).") from None


class SupportQuerySplit(BaseCrossValidator):
    """Within one rater: ``n_support`` random images to train on, the rest to test on.

    Use it to evaluate a personalized net with
    :func:`~sklearn.model_selection.cross_val_score` (each split re-fits the net from
    the prior on a new random support set). The re-fits keep the net's batch size and
    learning rate, which :meth:`~sklearn_piaa.MetaAestheticRegressor.personalize`
    chose for the number of images it was given: personalize on ``n_support`` images
    for the split to repeat what ``personalize`` does on that many (or compare
    support sizes with :func:`~sklearn_piaa.evaluate_personalization`).

    Parameters
    ----------
    n_support : int, default=10
        Images in each support (training) set.
    n_repeats : int, default=10
        Number of random support draws.
    random_state : int, RandomState instance or None, default=None

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_piaa import SupportQuerySplit
    >>> cv = SupportQuerySplit(n_support=3, n_repeats=2, random_state=0)
    >>> [(len(s), len(q)) for s, q in cv.split(np.zeros(10))]
    [(3, 7), (3, 7)]
    """

    def __init__(self, n_support=10, n_repeats=10, random_state=None):
        self.n_support = n_support
        self.n_repeats = n_repeats
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits (``n_repeats``).

        Parameters
        ----------
        X, y, groups : object, default=None
            Ignored; present for scikit-learn's splitter API.

        Returns
        -------
        int
            ``n_repeats``, as set (not validated here).
        """
        return self.n_repeats

    def split(self, X, y=None, groups=None):
        """Yield (support, query) index arrays.

        Parameters
        ----------
        X : array-like or list
            One rater's images or features; only ``len(X)`` is used.
        y : object, default=None
            Ignored; present for scikit-learn's splitter API.
        groups : array-like of shape (n_samples,), default=None
            Ignored when it names one rater (or is None); several raters are refused:
            support and query images would mix them.

        Yields
        ------
        support : ndarray of shape (n_support,)
            Sorted row indices to train on.
        query : ndarray of shape (n_samples - n_support,)
            The other rows, sorted.

        Raises
        ------
        ValueError
            When iteration starts: if ``n_support`` or ``n_repeats`` is not a positive
            integer, ``groups`` names several raters, or ``X`` has fewer than
            ``n_support + 2`` rows.
        """
        if not is_count(self.n_support):
            raise ValueError(f"n_support must be a positive integer; got {self.n_support!r}.")
        if not is_count(self.n_repeats):
            raise ValueError(f"n_repeats must be a positive integer; got {self.n_repeats!r}.")
        if groups is not None:
            ids = _as_ids(groups)
            refuse_missing_ids(ids)
            raters = set(ids.tolist())
            if len(raters) > 1:
                raise ValueError(
                    f"SupportQuerySplit splits one rater's images, but groups names "
                    f"{len(raters)} raters: personalize and score each rater on their own "
                    "images (personalized_srocc, PersonalizedSROCCScorer), or split the "
                    "raters with UserGroupKFold / UserGroupShuffleSplit.")
        n = len(X)
        if n < self.n_support + 2:
            raise ValueError(
                f"this rater has {n} images: too few for n_support={self.n_support} plus at "
                "least 2 query images."
            )
        rng = check_random_state(self.random_state)
        for _ in range(self.n_repeats):
            perm = rng.permutation(n)
            yield np.sort(perm[:self.n_support]), np.sort(perm[self.n_support:])

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover
        raise NotImplementedError("split() is overridden")
