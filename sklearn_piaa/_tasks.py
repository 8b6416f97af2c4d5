"""Ratings grouped by rater: the task collection that meta-learning iterates over."""

import fractions
import numbers
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Hashable, Mapping

import numpy as np
from scipy import sparse
from sklearn.exceptions import DataConversionWarning

from ._inputs import (
    FEATURES,
    as_float_scores,
    as_indexable,
    check_finite_features,
    check_seed,
    concat,
    feature_names,
    float_features,
    input_kind,
    n_samples,
    refuse_one_path,
    refuse_one_row,
    score_array,
    take,
    unique_rows,
    warn_if_float32_merges,
)
from ._messages import listing, row_numbers
from ._warnings import warn_caller

__all__ = ["TaskSet", "as_tasks", "support_query_sizes"]


#: The one rater of a fit without groups: every rating, of no known person.
NO_GROUPS = "(all ratings: fit without groups)"


def _as_ids(groups):
    """``groups`` as a 1-D array, each rater id as it was given."""
    if not isinstance(groups, (list, tuple)):
        return np.asarray(groups)
    try:
        ids = np.asarray(groups)
    except ValueError:  # ids of unequal lengths, e.g. tuples ("site", 3) and ("lab", 3, 1)
        ids = None
    # numpy reads a list of mixed ids as strings (a NaN, an empty cell, became the rater
    # 'nan', 1 and '1' one rater, and b'ann' and 'ann' too), bools among numbers as
    # numbers (True and 1 one rater) and a list of tuple ids as a 2-D table: each id
    # goes into its own cell instead, where the checks of TaskSet see it as given.
    if ids is None or ids.ndim != 1 or (
            ids.dtype.kind in "US" and not (all(isinstance(g, str) for g in groups)
                                            or all(isinstance(g, bytes) for g in groups))
    ) or (ids.dtype.kind in "iuf" and any(isinstance(g, (bool, np.bool_)) for g in groups)
          # ints among floats, as floats: 2**53 and 2**53 + 1 one rater
          ) or (ids.dtype.kind == "f" and any(
              isinstance(g, (int, np.integer)) and float(g) != g for g in groups)):
        ids = np.empty(len(groups), dtype=object)
        for i, g in enumerate(groups):
            ids[i] = g
    return ids


def rater_text(r):
    """A rater id as text: 7, numpy's 7, 7.0 and "7" (how readers spell ids) all "7".

    For telling whether two collections name the same person (a test rater among the
    training raters), where the ids may have come through different readers. Text is
    taken in Unicode's composed form (NFC): "café" typed with an accent mark after
    the "e" (as macOS file names store it) names the same person.

    Parameters
    ----------
    r : object
        A rater id.

    Returns
    -------
    str
    """
    if isinstance(r, (numbers.Integral, np.integer)) and not isinstance(r, (bool, np.bool_)):
        return str(int(r))
    if isinstance(r, (float, np.floating)) and float(r).is_integer():
        return str(int(r))
    return unicodedata.normalize("NFC", str(r).strip())


def raters_among(raters, others):
    """The ``raters`` that are also among ``others``, matched by :func:`rater_text`.

    A prior fitted on int ids (a DataFrame column) and raters read as strings (the
    readers, the command line) name the same people.

    Parameters
    ----------
    raters, others : iterable of rater ids

    Returns
    -------
    list
        Those of ``raters``, in their order and spelling.
    """
    others = {rater_text(r) for r in others}
    return [r for r in raters if rater_text(r) in others]


def _is_missing(g):
    # None, NaN, and pandas' NA and NaT (whose comparisons give NA, not a bool).
    return (g is None or isinstance(g, (float, np.floating)) and g != g
            or type(g).__name__ in ("NAType", "NaTType"))


def refuse_missing_ids(ids):
    """Refuse None, NaN or NaT among rater ids (a splitter would make a rater of them).

    Parameters
    ----------
    ids : ndarray of shape (n,)

    Raises
    ------
    ValueError
        Naming how many and the first rows.
    """
    if ids.dtype.kind not in "OfcMm":  # no other kind can hold a missing value
        return
    missing = [i for i, g in enumerate(ids.tolist()) if _is_missing(g)]
    if missing:
        raise ValueError(
            f"groups has {len(missing)} missing rater id(s) (None or NaN), at "
            f"{row_numbers(missing)}; every rating needs its rater.")


def refuse_bool_ids(ids):
    """Refuse True and False as rater ids.

    Python takes True for 1 and False for 0: the raters ``1`` and ``True`` were one,
    with no sign but a warning of repeated images. A ``groups`` of bools only is most
    likely a mask passed in its place.

    Parameters
    ----------
    ids : ndarray of shape (n,)

    Raises
    ------
    ValueError
        Naming the rows (or, for a bool array, saying it looks like a mask).
    """
    if ids.dtype.kind == "b":
        raise ValueError(
            "groups holds booleans (True/False), not rater ids (a mask passed as groups?); "
            "give the rater of each rating. If the two values are two raters, name them "
            "otherwise, e.g. groups.astype(int).")
    if ids.dtype.kind != "O":  # no other kind can hold a bool
        return
    rows = [i for i, g in enumerate(ids.tolist()) if isinstance(g, (bool, np.bool_))]
    if rows:
        raise ValueError(
            f"groups has {len(rows)} rater id(s) True or False, at {row_numbers(rows)}: "
            "Python takes True for 1 and False for 0, so the raters 1 and True would be "
            "one. Give rater ids that are numbers or text.")


def _id_text(r):
    # bytes as text: b"ann" from an HDF5 file and "ann" from a CSV file name one person
    if isinstance(r, bytes):
        r = r.decode("utf-8", "backslashreplace")
    return rater_text(r)


_DECIMAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _id_number(r):
    """The number a rater id writes (exactly), or None: ``"07"``, ``"7.0"`` and 7 are 7."""
    if isinstance(r, (bool, np.bool_)):
        return None
    if isinstance(r, bytes):
        r = r.decode("utf-8", "backslashreplace")
    if isinstance(r, str):
        r = r.strip()
        return fractions.Fraction(r) if _DECIMAL.fullmatch(r) else None
    if isinstance(r, numbers.Real) and np.isfinite(r):
        return fractions.Fraction(r)
    return None


def warn_same_text(raters):
    """Warn when two distinct rater ids read the same (``7`` and ``"7"``, ``b"ann"`` and
    ``"ann"``), or write one number (``"7"``, ``"07"`` and ``"7.0"``).

    They are two raters to every set and splitter -- a person's ratings split between
    a training and a test fold -- while the package's check for test raters seen in
    training (:func:`rater_text`) takes ``7`` and ``"7"`` for one.

    Parameters
    ----------
    raters : sequence
        Distinct rater ids, sorted (the message lists them in this order).
    """
    by_text = {}
    for r in raters:
        by_text.setdefault(_id_text(r), []).append(r)
    alike = [ids for ids in by_text.values() if len(ids) > 1]
    if alike:
        # astype(str) would spell b"ann" "b'ann'": still another rater than "ann"
        decode = any(len({isinstance(r, bytes) for r in ids}) == 2 for ids in alike)
        # text and text: spaces around it, or two Unicode forms (printed alike but for
        # ascii) of one text
        forms = any(all(isinstance(r, str) for r in ids) for ids in alike)
        if forms:
            advice = ("write each id one way: without spaces around it, in one Unicode "
                      "form, e.g. unicodedata.normalize('NFC', id.strip()).")
        else:
            advice = "give the ids one type, e.g. " + (
                "text, decoding the bytes ids (b'ann'.decode())." if decode else
                "np.asarray(groups, dtype=object).astype(str).")
        warn_caller(
            f"{len(alike)} rater id(s) are written two ways: "
            + listing([" and ".join(map(ascii if forms else repr, ids)) for ids in alike],
                      5, sep="; ")
            + ". They count as different raters (their ratings can fall on both sides of "
            "a split); if each is one person, " + advice)
    by_number = {}
    for r in raters:
        value = _id_number(r)
        if value is not None:  # one id per text: 7 and "7" were named above
            by_number.setdefault(value, {}).setdefault(_id_text(r), r)
    numbers_alike = [list(ids.values()) for ids in by_number.values() if len(ids) > 1]
    if numbers_alike:
        warn_caller(
            f"{len(numbers_alike)} set(s) of rater ids write one number: "
            + listing([" and ".join(map(repr, ids)) for ids in numbers_alike], 5, sep="; ")
            + ". They count as different raters (their ratings can fall on both sides of "
            "a split); if each set is one person, write its id one way (7, not 07 or 7.0).")


def rater_codes(groups):
    """The sorted distinct rater ids of ``groups`` and each rating's index among them.

    Missing, boolean and unhashable ids are refused by row; ids written two ways (``7``
    and ``"7"``) stay two raters, with a warning.

    Parameters
    ----------
    groups : ndarray of shape (n,)
        As :func:`_as_ids` gives them (each id as it was given).

    Returns
    -------
    raters : list
    codes : ndarray of shape (n,), intp
    """
    refuse_missing_ids(groups)
    refuse_bool_ids(groups)
    if groups.dtype.kind == "O":  # "unhashable type: 'list'" from set() below
        lists = [i for i, g in enumerate(groups.tolist()) if not isinstance(g, Hashable)]
        if lists:
            raise ValueError(
                f"groups holds {type(groups[lists[0]]).__name__}s, not rater ids "
                f"({groups[lists[0]]!r} at {row_numbers(lists[:1])}): give one id per "
                "rating, e.g. df['user'] rather than df[['user']].")
    raters = _sorted_raters(set(groups.tolist()))
    if groups.dtype.kind in "OUS":  # 7 and "7", "7" and "7 ", or b"ann" and "ann"
        warn_same_text(raters)
    order = {r: i for i, r in enumerate(raters)}
    codes = np.fromiter((order[g] for g in groups.tolist()), dtype=np.intp,
                        count=len(groups))
    return raters, codes


def _sorted_raters(raters):
    # Sorting makes the rater order independent of row order, so fit(tasks) and
    # fit(X, y, groups) draw the same tasks for the same random_state.
    try:
        return sorted(raters)
    except TypeError:
        return sorted(raters, key=lambda r: (type(r).__name__, str(r)))


def support_query_sizes(n_images, support_size, query_size):
    """Support and query sizes for a rater with ``n_images`` images.

    Raters with at least ``support_size + query_size`` images get exactly those sizes.
    Smaller raters: 80% of their images (at least one) form the support set and the rest,
    up to ``query_size``, the query set -- a rule modelled on the reference implementation
    of BLG-PIAA, which differs in detail (see the algorithm page of the docs). The
    support set of a smaller rater may so be larger than ``support_size`` (21 images
    with sizes 2 and 20 give 16 and 5).

    Parameters
    ----------
    n_images : int
    support_size, query_size : int

    Returns
    -------
    (int, int)
    """
    if n_images >= support_size + query_size:
        return support_size, query_size
    n_support = min(max(int(0.8 * n_images), 1), n_images - 1)
    return n_support, min(n_images - n_support, query_size)


class TaskSet:
    """One task per rater: that rater's images (or features) and scores.

    Build it with :meth:`from_arrays` (a long table of ratings) or :meth:`from_mapping`
    (``rater -> (X, y)``). Raters are kept in sorted order.

    Parameters
    ----------
    X : array-like or list
        All rated images or features, one row per rating.
    y : array-like of shape (n_ratings,)
        Scores.
    groups : array-like of shape (n_ratings,)
        Rater id of each rating.

    Attributes
    ----------
    X : ndarray or list
        The rows as given (a DataFrame as its values).
    y : ndarray of float32 of shape (n_ratings,)
        The scores, as the networks train on them.
    groups : ndarray of shape (n_ratings,)
        Rater id of each rating.
    raters : list
        Rater ids, sorted.
    indices : dict
        Rater id -> integer row indices into ``X``.
    feature_names : ndarray of str or None
        The column names of a feature DataFrame given as ``X`` (``X`` itself is kept as
        a plain array); the evaluation protocols check them against a model's
        ``feature_names_in_``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_piaa import TaskSet
    >>> X = np.arange(12, dtype=np.float32).reshape(6, 2)
    >>> tasks = TaskSet.from_arrays(X, [1, 2, 3, 4, 5, 1], ["a", "a", "a", "b", "b", "b"])
    >>> len(tasks), tasks.raters
    (2, ['a', 'b'])
    >>> Xb, yb = tasks["b"]
    >>> yb.tolist()
    [4.0, 5.0, 1.0]
    """

    def __init__(self, X, y, groups):
        # kept for the protocols to check against a model's feature_names_in_: the rows
        # below are a plain array
        refuse_one_path(X)
        if sparse.issparse(X):  # "len() of unsized object" further on
            raise ValueError(f"X is a sparse {type(X).__name__}; a TaskSet holds dense "
                             "features: X.toarray().")
        if isinstance(groups, (str, bytes)):  # "groups must be 1-D ...; got ()"
            raise ValueError(f"groups is the string {groups!r}, not one rater id per "
                             "rating: give the ids themselves (df['user'] for a table's "
                             "column).")
        self.feature_names = feature_names(X)
        X = as_indexable(X)
        refuse_one_row(X)  # else a fit failed with an IndexError
        if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind == "f":
            # here, where the rows are those of the X given: an evaluation that checks
            # one rater's draw at a time named a row of the draw
            check_finite_features(X.astype(np.float32, copy=False))
        y = score_array(y, hint=" Scores grouped by rater go in TaskSet.from_mapping("
                        "{rater: (X_rater, y_rater)}); a flat y takes the rater of each score "
                        "in groups.")
        groups = _as_ids(groups)
        n = n_samples(X)
        if y.ndim == 2 and y.shape[1] == 1:
            warn_caller("A column-vector y was passed when a 1d array was expected; it is "
                        "raveled.", DataConversionWarning)
            y = y.reshape(-1)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one score per rating); got shape {y.shape}.")
        if groups.ndim != 1:
            raise ValueError(f"groups must be 1-D (one rater id per rating); got {groups.shape}.")
        if not (n == len(y) == len(groups)):
            raise ValueError(
                f"X, y and groups must have the same length; got {n}, {len(y)} and {len(groups)}."
            )
        if n == 0:
            raise ValueError("no ratings given: X, y and groups are empty.")
        given = y
        y = as_float_scores(y, np.float32)  # overflow is reported below, with the rater
        raters, codes = rater_codes(groups)
        bad = ~np.isfinite(y)
        if bad.any():
            named = [raters[c] for c in np.unique(codes[bad])]
            raise ValueError(
                f"y has {int(bad.sum())} NaN or infinite score(s) (or beyond float32's "
                f"range), from rater(s) {', '.join(map(repr, named[:10]))}"
                f"{' ...' if len(named) > 10 else ''}; drop or fill them."
            )
        warn_if_float32_merges(given, y)
        self.X = X
        self.y = y
        self.groups = groups
        self.raters = raters
        sort = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[sort], np.arange(len(raters) + 1))
        self.indices = {r: sort[bounds[i]:bounds[i + 1]] for i, r in enumerate(raters)}

    @classmethod
    def from_arrays(cls, X, y, groups):
        """Build from a long table: row ``i`` says rater ``groups[i]`` gave ``X[i]`` ``y[i]``.

        Parameters
        ----------
        X : array-like or list
            One image (path, PIL image, uint8 array) or feature row per rating.
        y : array-like of shape (n_ratings,)
            Scores.
        groups : array-like of shape (n_ratings,)
            Rater id of each rating.

        Returns
        -------
        TaskSet

        Raises
        ------
        ValueError
            For lengths that differ, non-numeric or non-finite scores, or missing
            or bool (``True``, ``False``) rater ids.
        """
        return cls(X, y, groups)

    @classmethod
    def from_mapping(cls, mapping):
        """Build from ``{rater: (X_rater, y_rater)}``.

        Parameters
        ----------
        mapping : dict
            Rater id -> ``(X, y)``: the rater's images or feature rows and their scores
            (1-D, or a column vector). Feature arrays of the raters are stacked; image
            arrays of other sizes are joined into one list.

        Returns
        -------
        TaskSet
            Rows in the order of the sorted rater ids.

        Raises
        ------
        ValueError
            For an empty mapping, an entry that is not a pair, a 1-D numeric ``X``, a
            2-D ``y``, ``X`` and ``y`` of other lengths, NaN or infinite features,
            feature arrays of other widths, or a rater with no ratings (empty ``X`` and
            ``y``), naming the rater. A TaskSet holds only raters with ratings, as a
            long table does: an empty rater, which ``fit`` and the evaluations left
            out without a word, is refused rather than skipped.
        """
        if not isinstance(mapping, Mapping) or not mapping:
            raise ValueError("from_mapping expects a non-empty dict rater -> (X, y).")
        # named as keys: checked among the ratings, they were "rows 0, 1, 2" of a groups
        # the caller never gave
        for key in mapping:
            if _is_missing(key):
                raise ValueError(f"mapping has the key {key!r}, which is no rater id: "
                                 "every rater needs an id.")
            if isinstance(key, (bool, np.bool_)):
                raise ValueError(f"mapping has the key {key!r}: Python takes True for 1 and "
                                 "False for 0, so the raters 1 and True would be one. Give "
                                 "rater ids that are numbers or text.")
        Xs, ys, gs, names, empty = [], [], [], {}, []
        for rater in _sorted_raters(mapping):
            # numpy's str (keys from np.unique) would read "np.str_('r11')" in messages
            shown = rater.item() if isinstance(rater, np.generic) else rater
            try:
                Xr, yr = mapping[rater]
            except (TypeError, ValueError):
                raise ValueError(f"mapping[{shown!r}] must be a pair (X, y).") from None
            if (isinstance(Xr, np.ndarray) and Xr.ndim == 1
                    and np.issubdtype(Xr.dtype, np.number)):
                raise ValueError(
                    f"rater {shown!r}: X is a 1-D array of numbers; it must be a 2-D "
                    "feature array (n_images, n_features) or images, in a pair (X, y).")
            names[rater] = feature_names(Xr)
            Xr = as_indexable(Xr)
            if isinstance(Xr, np.ndarray) and Xr.ndim == 2 and Xr.dtype.kind == "f":
                # checked here, where the rater and its own row numbers are known
                check_finite_features(Xr.astype(np.float32, copy=False),
                                      what=f"rater {shown!r}: X")
            yr = score_array(yr, f"rater {shown!r}: y")
            if yr.ndim == 2 and yr.shape[1] == 1:
                yr = yr[:, 0]
            if yr.ndim != 1:
                raise ValueError(f"rater {shown!r}: y must be 1-D (one score per image); "
                                 f"got shape {yr.shape}.")
            if n_samples(Xr) != len(yr):
                raise ValueError(
                    f"rater {shown!r}: X has {n_samples(Xr)} rows but y has {len(yr)} scores."
                )
            if not len(yr):
                empty.append(rater)
            Xs.append(Xr)
            ys.append(yr)
            ids = np.empty(len(yr), dtype=object)
            ids.fill(rater)  # np.full would spread a tuple id over the rows
            gs.append(ids)
        if empty:
            # From a filter that kept none of a rater's images, most likely: refused, as
            # no long table (from_arrays) can name a rater of no rows.
            raise ValueError(
                (f"rater {empty[0]!r} has" if len(empty) == 1 else
                 f"{len(empty)} raters have") + " no ratings (empty X and y in the "
                "mapping)" + (f": {listing(map(repr, empty))}" if len(empty) > 1 else "")
                + (". Leave it out of the mapping, or give its ratings." if len(empty) == 1
                   else ". Leave them out of the mapping, or give their ratings."))
        first = next(iter(names.values()))
        other = [r for r, n in names.items() if (n is None) != (first is None)
                 or (n is not None and list(n) != list(first))]
        if other:
            # stacked by position, columns in another order would be other features
            raise ValueError(f"the raters' feature tables have other columns than the first "
                             f"rater's: {other[:10]}; give every rater the same columns, "
                             "in the same order.")
        widths = {r: x.shape[1] for r, x in zip(names, Xs)
                  if isinstance(x, np.ndarray) and x.ndim == 2}
        if len(set(widths.values())) > 1:
            w0 = next(iter(widths.values()))
            other = [f"{r!r} ({w})" for r, w in widths.items() if w != w0]
            raise ValueError(f"the raters' feature arrays have other widths than the first "
                             f"rater's {w0} columns: {listing(other)}.")
        tasks = cls(concat(Xs), np.concatenate(ys), np.concatenate(gs))
        tasks.feature_names = first
        return tasks

    def __len__(self):
        return len(self.raters)

    def __iter__(self):
        return iter(self.raters)

    def __contains__(self, rater):
        return rater in self.indices

    def __getitem__(self, rater):
        if rater not in self.indices:
            raise KeyError(f"no rater {rater!r} in this TaskSet")
        idx = self.indices[rater]
        return take(self.X, idx), self.y[idx]

    def __repr__(self):
        return f"TaskSet(n_raters={len(self)}, n_ratings={len(self.y)})"

    @property
    def n_ratings(self):
        """Total number of ratings."""
        return len(self.y)

    def sizes(self):
        """Number of images each rater rated.

        Returns
        -------
        dict
            Rater id -> number of ratings, in the order of ``raters``.
        """
        return {r: len(i) for r, i in self.indices.items()}

    def constant_raters(self):
        """Raters who gave every image the same score.

        Their ratings order no pair of images: their SROCC is undefined, and they teach
        a model nothing about how people rank images. Scores are compared as stored
        (float32).

        Returns
        -------
        dict
            Rater id -> that one score (a float), for raters with at least 2 ratings,
            in the order of ``raters``.

        Examples
        --------
        >>> from sklearn_piaa import TaskSet
        >>> tasks = TaskSet.from_arrays([[0.0], [1.0], [2.0], [3.0]], [5, 5, 1, 2],
        ...                             ["a", "a", "b", "b"])
        >>> tasks.constant_raters()
        {'a': 5.0}
        """
        return {r: float(self.y[i[0]]) for r, i in self.indices.items()
                if len(i) > 1 and np.ptp(self.y[i]) == 0}

    def repeated_images(self):
        """Raters who rated an image more than once, and how many rows repeat one.

        Images are told apart by file path or by feature row; PIL images and pixel
        arrays are not compared.

        Returns
        -------
        dict
            Rater id -> number of rows that repeat an image of theirs (only raters with
            at least one).
        """
        features = input_kind(self.X) == FEATURES
        repeats = {}
        numeric = isinstance(self.X, np.ndarray) and self.X.dtype.kind in "biuf"
        if numeric and not features:  # pixels, not compared: nor copied rater by rater
            return repeats
        if numeric:
            # All rows hashed at once: rater by rater, 4,000 raters of 10 rows each took
            # 1.1-1.7 s of 40,000 rows (fit checks its training raters, however many).
            inverse = unique_rows(self.X.reshape(len(self.X), -1))[1]
            for rater, idx in self.indices.items():
                distinct = len(np.unique(inverse[idx]))
                if distinct < len(idx):
                    repeats[rater] = len(idx) - distinct
            return repeats
        for rater, idx in self.indices.items():
            rows = take(self.X, idx)
            if features:
                rows = np.asarray(rows)
                if rows.dtype == object:  # a table with text columns (for a Pipeline)
                    try:
                        distinct = len({tuple(r) for r in rows.tolist()})
                    except TypeError:  # cells that cannot be compared
                        continue
                else:  # by hash: sorting a big rater's rows took seconds per scoring
                    distinct = len(unique_rows(rows)[0])
            elif all(isinstance(x, (str, os.PathLike)) for x in rows):
                distinct = len({os.path.abspath(os.fspath(x)) for x in rows})
            else:
                continue
            if distinct < len(idx):
                repeats[rater] = len(idx) - distinct
        return repeats

    def subset(self, raters):
        """A new TaskSet with only ``raters``.

        Parameters
        ----------
        raters : sequence
            Rater ids of this TaskSet.

        Returns
        -------
        TaskSet

        Raises
        ------
        TypeError
            If ``raters`` is one id (text, bytes or a number) rather than a collection.
        KeyError
            If a rater is not in this TaskSet.
        ValueError
            If ``raters`` is empty or lists a rater more than once.
        """
        # "u0" is a sequence of letters, not of raters; a generator is read once
        if isinstance(raters, (str, bytes)) or not np.iterable(raters):
            raise TypeError(f"subset takes a list of rater ids; got {raters!r} (for one "
                            f"rater, pass [{raters!r}]).")
        raters = list(raters)
        missing = [r for r in raters if r not in self.indices]
        if missing:
            raise KeyError(f"raters not in this TaskSet: {missing[:10]}")
        if not raters:  # numpy's "need at least one array to concatenate" said nothing
            raise ValueError("subset needs at least one rater; got none.")
        repeated = [r for r, count in Counter(raters).items() if count > 1]
        if repeated:  # their ratings would be copied, weighing them twice
            raise ValueError(f"raters listed more than once: {repeated[:10]}")
        return self.rows(np.concatenate([self.indices[r] for r in raters]))

    def rows(self, idx):
        """A new TaskSet with the ratings in rows ``idx`` (indices or a boolean mask).

        Parameters
        ----------
        idx : array-like of int, or of bool with shape (n_ratings,)
            Rows of ``X``, ``y`` and ``groups``.

        Returns
        -------
        TaskSet

        Raises
        ------
        ValueError
            If a boolean mask has the wrong shape, or no row is selected.
        """
        idx = np.asarray(idx)
        if idx.size == 0:  # [] is a float array; say what is wrong rather than IndexError
            raise ValueError("no ratings given: rows() needs at least one row.")
        if idx.dtype == bool:
            if idx.shape != (len(self.y),):
                raise ValueError(f"a boolean mask of rows must have one entry per rating "
                                 f"({len(self.y)}); got shape {idx.shape}.")
            idx = np.flatnonzero(idx)
        tasks = TaskSet(take(self.X, idx), self.y[idx], self.groups[idx])
        tasks.feature_names = self.feature_names
        return tasks

    def check_min_size(self, min_images, what="meta-training", advice=""):
        """Raise a ValueError listing raters with fewer than ``min_images`` images.

        Parameters
        ----------
        min_images : int
            Fewest images a rater may have.
        what : str, default="meta-training"
            What the images are too few for, in the message.
        advice : str, default=""
            How to go on, appended to the message.

        Raises
        ------
        ValueError
            If any rater has fewer than ``min_images`` images (the first 10 are named).
        """
        small = {r: len(i) for r, i in self.indices.items() if len(i) < min_images}
        if small:
            raise ValueError(
                f"{len(small)} rater(s) have fewer than {min_images} images, too few for "
                f"{what}: {listing(f'{r!r} ({n})' for r, n in small.items())}."
                + (" With 1 sample a rater cannot give both a support and a query image."
                   if min_images == 2 else "") + (f" {advice}" if advice else "")
            )

    def draw(self, rater, support_size, query_size, rng):
        """Row indices of a random support and query set of ``rater``.

        The two sets do not overlap; their sizes follow ``support_query_sizes``.

        Parameters
        ----------
        rater : hashable
            A rater id of this TaskSet.
        support_size, query_size : int
            Sizes wanted, which raters of at least ``support_size + query_size``
            images get; a smaller rater's images are split 80/20 (see
            ``support_query_sizes``), so its support set may exceed ``support_size``.
        rng : int, numpy.random.RandomState, numpy.random.Generator or None
            Draws the permutation. An int seeds a new generator, so that the same int
            gives the same sets; ``None`` draws from NumPy's global generator (as
            :func:`sklearn.utils.check_random_state` reads these); a generator is
            advanced.

        Returns
        -------
        support : ndarray of int
            Row indices into ``X`` and ``y`` of the support set, in random order.
        query : ndarray of int
            Those of the query set.

        Raises
        ------
        KeyError
            If ``rater`` is not in this TaskSet.
        ValueError
            If ``rng`` cannot seed a random generator (e.g. a str or a negative int).
        """
        if not isinstance(rng, np.random.Generator):  # check_random_state refuses those
            rng = check_seed(rng, "rng")
        idx = self.indices[rater]
        n_s, n_q = support_query_sizes(len(idx), support_size, query_size)
        perm = idx[rng.permutation(len(idx))]
        return perm[:n_s], perm[n_s:n_s + n_q]


def as_tasks(X, y=None, groups=None, features=False, owner="the estimator"):
    """The :class:`TaskSet` that an estimator's ``fit(X, y, groups)`` describes.

    Parameters
    ----------
    X : TaskSet, dict, or array-like / list
        A TaskSet, a mapping ``rater -> (X, y)``, or one row per rating.
    y : array-like, default=None
        Scores, with row-wise ``X`` only.
    groups : array-like, default=None
        Rater of each row; without it all rows are one rater, with a warning.
    features : bool, default=False
        Row-wise ``X`` must be a 2-D feature array (scikit-learn's validation).
    owner : str, default="the estimator"
        Named in error messages.

    Returns
    -------
    TaskSet
    """
    if isinstance(X, (TaskSet, Mapping)) and not sparse.issparse(X):  # dok is a dict
        if y is not None or groups is not None:
            raise ValueError("pass y and groups only with row-wise X, not with a TaskSet "
                             "or a rater -> (X, y) mapping.")
        return X if isinstance(X, TaskSet) else TaskSet.from_mapping(X)
    if y is None:
        raise ValueError(f"{owner} requires y to be passed, but the target y is None (y is "
                         "optional only with a TaskSet or a mapping).")
    names = feature_names(X)  # check_array keeps the values of a table, not its columns
    if features:
        if input_kind(X) != FEATURES:
            raise ValueError(f"{owner} with backbone=None needs X as a 2-D array of "
                             "precomputed features; got images (paths, PIL images or "
                             "pixel arrays). Choose a backbone to use images.")
        # Precomputed features get scikit-learn's own validation, and NaN or inf the rows.
        X = float_features(X)
        check_finite_features(X)
    if groups is None:
        warn_caller(
            "fit() got no groups: all ratings are treated as one rater, so nothing "
            "person-specific is learned. Pass groups=rater_ids. Inside "
            "cross_val_score or GridSearchCV, scikit-learn gives groups only to the "
            "splitter unless metadata routing is on: run them inside "
            "'with sklearn.config_context(enable_metadata_routing=True):' (or pass "
            "params={'groups': rater_ids} to cross_val_score).")
        # not 0 or another id a real rater may have: a held-out rater 0 was taken for
        # one the prior was trained on
        groups = np.full(n_samples(X), NO_GROUPS, dtype=object)
    tasks = TaskSet.from_arrays(X, y, groups)
    tasks.feature_names = names
    return tasks
