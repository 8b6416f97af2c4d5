"""What kind of thing ``X`` is, and how to index and join it without copying images.

``X`` may be image file paths, PIL images, uint8 image arrays ``(N, H, W, 3)`` or a list
of differently sized ones, or precomputed feature arrays ``(N, D)``.
"""

import numbers
import os
import re

import numpy as np
from scipy import sparse
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_array

from ._messages import row_numbers
from ._score_range import check_score_range  # the estimators import it from here
from ._warnings import warn_caller

__all__ = ["input_kind", "n_samples", "take", "concat", "check_score_range",
           "check_finite_features", "check_scores", "is_count", "feature_names",
           "check_feature_names", "refuse_grouped_digits", "refuse_unreal_scores",
           "warn_if_float32_merges", "float_features",
           "refuse_one_row", "refuse_one_path", "is_number", "unique_rows", "check_seed",
           "check_cache_dir", "check_verbose", "with_rows", "check_alphas"]

FEATURES = "features"
IMAGES = "images"


def _is_path(x):
    return isinstance(x, (str, os.PathLike))


def feature_names(X):
    """The column names of a DataFrame ``X`` when all are strings, else ``None``.

    scikit-learn's rule: only string names are feature names, and names of mixed
    types are refused, as its estimators refuse them: kept as no names, a table of
    embedding columns ``0..1279`` joined to named ones was predicted in any column
    order without an error.

    Returns
    -------
    ndarray of str objects, or None

    Raises
    ------
    TypeError
        If some column names are strings and some are not.
    """
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "iloc"):
        return None
    names = list(columns)
    strings = [isinstance(n, str) for n in names]
    if any(strings) and not all(strings):
        kinds = sorted({type(n).__name__ for n in names})
        others = [n for n, is_str in zip(names, strings) if not is_str]
        raise TypeError(
            f"X's column names mix strings and other types ({', '.join(kinds)}; e.g. "
            f"{others[:3]!r} are not strings): feature names are kept and checked only "
            "when all are strings. Convert them all, X.columns = X.columns.astype(str), "
            "or none.")
    if not names or not all(strings):
        return None
    return np.asarray(names, dtype=object)


def check_feature_names(fitted, X, owner, names=None):
    """Refuse a DataFrame ``X`` whose column names differ from those seen in fit.

    Features in another order or under other names are another input: predicting
    from them gives other scores without an error. Unlike scikit-learn, names on one
    side only (an array for a model fitted on a DataFrame) pass without a warning:
    the package's own protocols index rows of plain arrays.

    Parameters
    ----------
    fitted : sequence of str or None
        The names seen in fit (``feature_names_in_``).
    X : array-like
    owner : str
        The fitted model's class name, for the message.
    names : sequence of str, default=None
        The names of ``X``'s columns when ``X`` no longer carries them (a
        :class:`TaskSet`'s ``feature_names``).

    Raises
    ------
    ValueError
        If ``X`` has names and they are not ``fitted``, in order.
    """
    names = feature_names(X) if names is None else names
    if fitted is None or names is None:
        return
    fitted = list(fitted)
    if list(names) == fitted:
        return
    unseen = [n for n in names if n not in fitted]
    present = set(names)
    missing = [n for n in fitted if n not in present]
    message = f"The feature names should match those that were passed when {owner} was fitted."
    if unseen:
        message += f" Unseen at fit time: {unseen[:10]}."
    if missing:
        message += f" Seen at fit time, yet now missing: {missing[:10]}."
    if not unseen and not missing:
        message += " They must be in the same order as in fit."
    raise ValueError(message)


def _nonempty_images(arr):
    """IMAGES, for an image array with at least one image (numpy's own error is obscure)."""
    if len(arr) == 0:
        raise ValueError("X is empty: at least one image or feature row is needed.")
    return IMAGES


def refuse_one_path(X):
    """Refuse one path given as ``X`` (of a folder, most often), naming it.

    A string is not a sequence of images: taken as an array it is one 0-d item, and
    the first ``len()`` fails with a message about neither images nor folders.

    Raises
    ------
    ValueError
        If ``X`` is a ``str``, ``bytes`` or ``os.PathLike``.
    """
    if isinstance(X, (str, bytes, os.PathLike)):
        path = os.fsdecode(X)
        advice = ("for the images of a folder, pass a list of its files, e.g. "
                  "sorted(glob.glob(os.path.join(folder, '*.jpg')))" if os.path.isdir(X)
                  else f"for one image, pass a list of one: [{path!r}]")
        raise ValueError(
            f"X must hold one image per row (a list of image paths, PIL images, an image "
            f"array or features); got the {'folder' if os.path.isdir(X) else 'path'} "
            f"{path!r}: {advice}.")


def input_kind(X):
    """Return ``"features"`` for a numeric 2-D array, ``"images"`` for anything image-like.

    Raises
    ------
    ValueError
        If ``X`` is none of the supported inputs.
    """
    if sparse.issparse(X):
        return FEATURES  # rejected with scikit-learn's own message by check_array
    refuse_one_path(X)
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # pandas objects
        X = X.to_numpy()
    if not _is_pil(X) and (isinstance(X, np.ndarray) or hasattr(X, "__array__")):
        arr = np.asarray(X)
        if arr.dtype.kind == "c":
            raise ValueError("Complex data not supported: X must hold real numbers or images.")
        if arr.dtype.kind in "biuf" and arr.ndim in (1, 2) or arr.ndim == 2:
            return FEATURES
        if arr.dtype.kind in "biuf" and arr.ndim == 4:
            if arr.shape[-1] not in (1, 3, 4):
                raise ValueError(
                    f"image arrays must be (N, H, W, 3) with channels last; got shape {arr.shape}."
                )
            if arr.dtype != np.uint8:
                # refused here, once: image by image it was the same reason ten times,
                # and on_error="skip" made every prediction NaN
                raise ValueError(not_uint8(arr))
            if arr.shape[0] and not (arr.shape[1] and arr.shape[2]):
                # resized, an image of no pixels is a black one: embedded without a word
                raise ValueError(f"image arrays must have pixels: X has shape {arr.shape}, "
                                 "images of height or width 0.")
            return _nonempty_images(arr)
        if arr.dtype.kind == "S":
            raise ValueError("X holds bytes (paths as bytes?), which are not taken: decode "
                             "them, [os.fsdecode(p) for p in X].")
        if arr.dtype.kind in "OU" and arr.ndim == 1:
            return _nonempty_images(arr)
        raise ValueError(
            "X must be image paths, PIL images, uint8 arrays of shape (N, H, W, 3) or a "
            f"2-D feature array (N, D); got an array of shape {arr.shape} and dtype "
            f"{arr.dtype}.{_shape_hint(arr)}"
        )
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("X is empty: at least one image or feature row is needed.")
        first = X[0]
        if _is_path(first) or _is_pil(first) or isinstance(first, np.ndarray) and (
                first.ndim == 3 or first.ndim == 2 and first.dtype == np.uint8):
            return IMAGES  # a 2-D uint8 array in a list: a greyscale image
        if np.ndim(first) == 1:
            return FEATURES
        if isinstance(first, bytes):
            hint = (" Paths given as bytes are not taken: decode them, "
                    "[os.fsdecode(p) for p in X].")
        elif hasattr(first, "shape") and len(first.shape) == 4:
            hint = (f" X[0] has shape {tuple(first.shape)}, a batch of one: join the "
                    "batches, numpy.concatenate(X), or pass each image (H, W, 3).")
        elif hasattr(first, "shape") and len(first.shape) in (2, 3):
            hint = (f" X[0] is a {type(first).__name__}; pass image arrays as numpy uint8 "
                    "arrays (tensor.numpy()).")
        else:
            hint = f" X[0] is a {type(first).__name__}."
        raise ValueError(
            "X must be image paths, PIL images, uint8 arrays of shape (N, H, W, 3) or a 2-D "
            f"feature array (N, D); got a {type(X).__name__}.{hint}")
    # one path never gets here: refuse_one_path named it above
    hint = " One image is given: pass a list, [image]." if _is_pil(X) else ""
    raise ValueError(
        "X must be image paths, PIL images, uint8 arrays of shape (N, H, W, 3) or a 2-D "
        f"feature array (N, D); got {type(X).__name__}.{hint}"
    )


def not_uint8(arr, values=True):
    """The message refusing image pixels ``arr`` that are not uint8, with the cast to use.

    Parameters
    ----------
    arr : ndarray
        Image pixels, one image or a stack.
    values : bool, default=True
        Whether to say the range of the values and the cast that fits it; else the
        message is the same for every array of that dtype (one of many images: said
        once for all).

    Returns
    -------
    str
    """
    text = f"image arrays must be uint8 (0-255); got dtype {arr.dtype}"
    if not values:
        if arr.dtype.kind in "iuf":
            text += (": np.clip(x, 0, 255).round().astype(np.uint8) makes them pixels (x * "
                     "255 for values in [0, 1])")
        return text + "."
    if arr.dtype.kind in "iuf" and arr.size:
        with np.errstate(invalid="ignore"):
            low, high = float(np.nanmin(arr)), float(np.nanmax(arr))
        scale = "X * 255" if arr.dtype.kind == "f" and 0 <= low and high <= 1 else "X"
        text += (f", values {low:g} to {high:g}: np.clip({scale}, 0, 255).round()"
                 ".astype(np.uint8) makes them pixels")
    return text + "."


def _shape_hint(arr):
    """What an array of images in another shape likely is, as a sentence, or ""."""
    if arr.dtype == np.uint8 and arr.ndim == 3:
        return (" One colour image (H, W, 3)? Pass [X] or X[None]. Greyscale images "
                "(N, H, W)? Give them a channel: X[..., None].")
    return ""


def _is_pil(x):
    return type(x).__module__.startswith("PIL.") and hasattr(x, "convert")


def as_indexable(X):
    """Return ``X`` as something :func:`take` can index (ndarray or list)."""
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):
        dtypes = getattr(X, "dtypes", None)
        if dtypes is not None and not hasattr(dtypes, "kind") and len(dtypes) and all(
                getattr(d, "kind", "O") in "biuf" for d in dtypes) and any(
                not isinstance(d, np.dtype) for d in dtypes):
            # pandas' nullable columns (Float64, Int64): to_numpy() gives an object
            # array holding pd.NA, which no finite-value check read
            X = X.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            X = X.to_numpy()
    if isinstance(X, np.ndarray):
        return X
    if isinstance(X, tuple):
        return list(X)
    if isinstance(X, list):
        # np.ndim would decode a PIL image (and fail on a truncated file): ask it last.
        if X and not _is_path(X[0]) and not _is_pil(X[0]) and np.ndim(X[0]) == 1:
            return np.asarray(X)
        return X
    return np.asarray(X)


def n_samples(X):
    """Number of samples in ``X``."""
    return X.shape[0] if sparse.issparse(X) else len(X)  # len() of a sparse matrix fails


def with_rows(X):
    """``X``, or ``np.asarray(X)`` where ``X`` converts to an array but has no ``len``.

    scikit-learn's ``check_array`` takes any object with ``__array__`` (its test
    helper ``_NotAnArray`` has nothing else), and so does ``fit``; a rater's rows must
    be counted and indexed as well, which such an object cannot do itself.

    Parameters
    ----------
    X : object

    Returns
    -------
    object
        ``X`` itself where it has a length (an ndarray, a DataFrame, a list, a scipy
        sparse matrix or array), or is no array-like at all (left for
        :func:`input_kind` to name).
    """
    return np.asarray(X) if hasattr(X, "__array__") and not hasattr(X, "__len__") else X


def take(X, indices):
    """Rows ``indices`` of ``X`` (an ndarray or a list), without copying list items."""
    if isinstance(X, np.ndarray):
        return X[np.asarray(indices, dtype=np.intp)]
    if hasattr(X, "iloc"):  # pandas: by position, as X[i] would go by index label
        return X.iloc[np.asarray(indices, dtype=np.intp)]
    return [X[i] for i in indices]


def concat(parts):
    """Join several ``X`` of the same kind, in order."""
    if all(isinstance(p, np.ndarray) for p in parts):
        shapes = {p.shape[1:] for p in parts}
        if len(shapes) == 1:
            return np.concatenate(parts, axis=0)
        if any(p.ndim != 4 for p in parts):
            raise ValueError(f"cannot join arrays with different shapes per row: {sorted(shapes)}")
        # image batches of other sizes (one rater's photos at 256 px, another's at 320):
        # a list of images, which every image input accepts
    out = []
    for p in parts:
        out.extend(list(p))
    return out


def check_alphas(alphas):
    """Ridge penalties as a 1-D float array, or a ValueError naming them.

    Parameters
    ----------
    alphas : array-like of float

    Returns
    -------
    ndarray of shape (n_alphas,), float64

    Raises
    ------
    ValueError
        Unless ``alphas`` are one or more positive finite numbers.
    """
    try:
        grid = np.asarray(alphas, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        grid = np.empty(0)
    if len(grid) == 0 or not (grid > 0).all() or not np.isfinite(grid).all():
        raise ValueError(f"alphas must be positive numbers; got {alphas}.")
    return grid


def is_count(value, low=1):
    """Whether ``value`` is an integer of at least ``low`` (bool and whole floats are not)."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and value >= low)


def check_seed(random_state, name="random_state"):
    """``random_state`` as a RandomState, as :func:`sklearn.utils.check_random_state` makes.

    Parameters
    ----------
    random_state : int, RandomState instance or None
    name : str, default="random_state"
        The argument's name, for the error message.

    Returns
    -------
    numpy.random.RandomState

    Raises
    ------
    ValueError
        If ``random_state`` cannot seed a generator (a str, a float, a negative int).
    """
    try:
        return check_random_state(random_state)
    except (ValueError, TypeError):
        # sklearn's message names the value but neither the argument nor what it takes
        raise ValueError(f"{name}={random_state!r} cannot seed a random generator: give an "
                         "int in [0, 2**32 - 1], a numpy.random.RandomState or None."
                         ) from None


def check_cache_dir(cache_dir):
    """Refuse a ``cache_dir`` that is no folder path before os.path reads it.

    Parameters
    ----------
    cache_dir : str, os.PathLike or None

    Raises
    ------
    InvalidParameterError
        (a ``ValueError`` and a ``TypeError``, the estimators' parameter validation's
        class) If ``cache_dir`` is neither a str, an os.PathLike nor None (os.path's own
        error names neither the argument nor the value).
    """
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise InvalidParameterError(
            f"cache_dir must be a str or os.PathLike (a folder), or None; got {cache_dir!r} "
            f"({type(cache_dir).__name__}).")


def check_verbose(verbose):
    """Refuse a ``verbose`` the estimators' parameter validation refuses.

    Parameters
    ----------
    verbose : int or bool

    Raises
    ------
    ValueError
        If ``verbose`` is not a bool or an integer of at least 0.
    """
    if not (isinstance(verbose, (bool, np.bool_)) or is_count(verbose, low=0)):
        raise ValueError(f"verbose must be a bool or an integer of at least 0; got "
                         f"{verbose!r}.")


def float_features(X):
    """Precomputed features as a float32 array, by scikit-learn's ``check_array``.

    A table's columns that are not numbers are named (``check_array`` names only a
    value it could not convert). Dates and durations are refused: a table of them only
    was cast to nanoseconds without a word, and one beside numbers failed with numpy's
    promotion error, naming no column.

    Parameters
    ----------
    X : array-like of shape (n_rows, n_features)

    Returns
    -------
    ndarray of shape (n_rows, n_features), float32
        NaN and infinite values are left for :func:`check_finite_features` to report.

    Raises
    ------
    ValueError
        Naming the columns that are not numbers (dates and durations included).
    """
    columns = getattr(X, "columns", None)
    dtypes = getattr(X, "dtypes", None)
    if columns is not None and dtypes is not None:
        dated = [c for c, t in zip(columns, dtypes) if getattr(t, "kind", None) in ("m", "M")]
        if dated:
            raise ValueError(_not_numbers(dated, "dates or durations"))
    elif isinstance(X, np.ndarray) and X.dtype.kind in "mM":
        raise ValueError(f"X holds dates or durations ({X.dtype}), not numbers; precomputed "
                         "features must be numeric.")
    try:
        return check_array(X, dtype=np.float32, ensure_all_finite=False)
    except (TypeError, ValueError) as exc:
        # TypeError: an object column of pandas Timestamps ("float() argument must be ...")
        if columns is None or isinstance(exc, ValueError) and "could not convert" not in str(exc):
            raise
        bad = []
        for c in columns:
            try:
                np.asarray(X[c], dtype=np.float32)
            except (TypeError, ValueError):
                bad.append(c)
        if not bad:
            raise
        raise ValueError(_not_numbers(bad, str(exc))) from None


def _not_numbers(columns, why):
    return (f"X's column(s) {columns[:10]}{' ...' if len(columns) > 10 else ''} are not "
            f"numbers ({why}); precomputed features must be numeric. To use images, pass "
            "their paths (e.g. df['image']) to a model with a backbone.")


def check_finite_features(X, what="X"):
    """Raise a ValueError naming the rows of a feature array ``X`` that hold NaN or inf.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    what : str, default="X"
        How the message names the array.
    """
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if len(bad):
        raise ValueError(f"{what} has NaN or infinite values in {len(bad)} row(s) "
                         f"({row_numbers(bad)}); precomputed features must be finite (read "
                         "as float32: beyond about 3.4e38 is infinite).")


def refuse_grouped_digits(y, what="y"):
    """Refuse scores written as text with an underscore.

    Python and NumPy read ``"4_5"`` as 45 (digit grouping): as a rating it is a typo or
    another decimal mark, never forty-five.

    Parameters
    ----------
    y : ndarray
    what : str, default="y"
        How the message names ``y``.
    """
    if y.dtype.kind in "USO":
        # only what reads as a number without the underscores: "rater_7" as a score is
        # no number at all, which the caller's own message says
        bad = [v for v in y.ravel().tolist()
               if isinstance(v, str) and "_" in v and is_number(v.replace("_", ""))]
        if bad:
            raise ValueError(f"{what} must hold numeric scores; {len(bad)} are text with an "
                             f"underscore, e.g. {bad[:3]} (read as numbers, '4_5' is 45).")


def as_float_scores(y, dtype=np.float64, what="y"):
    """``y`` cast to ``dtype``, or a ValueError naming the values that are no numbers.

    What NumPy would cast without a word is refused first: complex numbers, dates and
    durations (:func:`refuse_unreal_scores`), text with an underscore
    (:func:`refuse_grouped_digits`). NumPy's "could not convert string to float:
    np.str_('4,0')" named neither the argument nor, for a decimal comma, what to write
    instead.

    Parameters
    ----------
    y : ndarray
    dtype : dtype, default=np.float64
    what : str, default="y"
        How the message names ``y``.

    Returns
    -------
    ndarray
    """
    refuse_unreal_scores(y, what)
    refuse_grouped_digits(y, what)
    try:
        with np.errstate(over="ignore"):  # overflow is the callers' to report
            return y.astype(dtype)
    except (TypeError, ValueError):
        bad = [v for v in y.ravel().tolist() if not is_number(v)]
        comma = any(isinstance(v, str) and re.fullmatch(r"\s*[-+]?\d+,\d+\s*", v) for v in bad)
        raise ValueError(f"{what} must hold numeric scores; {len(bad)} of {y.size} are not "
                         f"numbers, e.g. {bad[:3]}"
                         + (" (decimal commas? write 3.5, not 3,5)" if comma else "")
                         + ".") from None


def refuse_unreal_scores(y, what="y"):
    """Refuse complex scores, and dates or durations given as scores.

    NumPy casts them to float without an error: a complex score loses its imaginary
    part (with only a ``ComplexWarning``) and a date or a duration becomes a count of
    its units (nanoseconds since 1970 for pandas' dates), a scale of 1e9-5e9 that no
    check took for anything but scores.

    Parameters
    ----------
    y : ndarray
    what : str, default="y"
        How the message names ``y``.

    Raises
    ------
    ValueError
        Naming ``what``, the kind of values and an example.
    """
    kind = y.dtype.kind
    values = y.ravel().tolist() if kind == "O" else []
    complex_ = [v for v in values if isinstance(v, (complex, np.complexfloating))]
    if kind == "c" or complex_:
        example = (complex_ or y.ravel().tolist())[:1]
        raise ValueError(f"{what} holds complex numbers"
                         + (f" (e.g. {complex(example[0])})" if example else "")
                         + "; scores must be real numbers (casting to float would drop the "
                         "imaginary part).")
    if kind in "mM" or any(isinstance(v, (np.datetime64, np.timedelta64)) for v in values):
        type_ = y.dtype if kind in "mM" else "datetime64 or timedelta64 values"
        raise ValueError(f"{what} holds dates or durations ({type_}), not scores: read as "
                         "numbers they would be counts of their units (nanoseconds, for "
                         "pandas' dates). Convert them to the scores they stand for.")


def warn_if_coarse_range(low, high, what="the score range"):
    """Warn when float32, in which the network computes, has few steps in ``(low, high)``.

    Ratings of 1-5 plus 1e6 (``score_range=(1e6 + 1, 1e6 + 5)``) are each exact in
    float32, so :func:`warn_if_float32_merges` is silent; but the head's output
    ``low + (high - low) * sigmoid(z)`` moves in steps of 0.0625 there: 32 distinct
    predictions among 100 images (measured); at 1e7, 3, and the prior's SROCC fell from
    0.59 to 0.56.

    Parameters
    ----------
    low, high : float
        The range the network maps into.
    what : str, default="the score range"
        How the message names the range.
    """
    step = float(np.spacing(np.float32(max(abs(low), abs(high)))))
    levels = (high - low) / step
    if levels >= 1000:
        return
    warn_caller(
        f"{what} ({low:.9g}, {high:.9g}) lies where float32, in which the network computes, "
        f"moves in steps of {step:g}: predictions take at most {int(levels) + 1} distinct "
        "values in it, so images scored apart tie, and their ranking (SROCC) is lost. "
        "Subtract a common offset from the scores (e.g. "
        + (f"y - {low:.9g}" if low >= 0 else f"y + {-low:.9g}")
        + ") before fit, and add it back to the predictions.")


def warn_if_float32_merges(given, y32, what="y"):
    """Warn when float32, in which the models hold scores, merges distinct scores.

    ``y + 1e8`` kept 2 of its 5 ratings apart: the prior trained on them, and
    personalize said that a rater gave every image the same score, without a word on
    the cause. As :func:`~sklearn_piaa._estimator.warn_identical_features` does for
    features, this warns and goes on. Casting is monotonic, so it can merge scores but
    never reorder them; gaps up to a millionth of the scores' span, or a billionth of
    their size, are left out (means computed in float64 in two ways differ in their
    last digits, which no rating means).

    Parameters
    ----------
    given : ndarray
        The scores as given (any numeric dtype, or numbers as text or objects), finite.
    y32 : ndarray of float32
        The same scores cast to float32.
    what : str, default="y"
        How the message names the scores.
    """
    kind, size = given.dtype.kind, given.dtype.itemsize
    if kind == "b" or kind in "iu" and size <= 2 or kind == "f" and size <= 4:
        return  # every such value is exact in float32
    y64 = given.astype(np.float64)
    order = np.argsort(y64, kind="stable")
    y64, y32 = y64[order], y32[order]
    span = y64[-1] - y64[0] if len(y64) else 0.0
    gaps = np.diff(y64)
    # nor gaps below a billionth of the scores' size: [3.0, 3.0000000000000004] is one
    # score computed two ways, whose span is that noise itself
    size = float(np.abs(y64).max()) if len(y64) else 0.0
    merged = np.flatnonzero((gaps > max(1e-6 * span, 1e-9 * size))
                            & (np.diff(y32) == 0))
    if not len(merged):
        return
    i = merged[0]
    warn_caller(
        f"{what} holds {len(np.unique(y64))} distinct scores, but float32 (in which the "
        f"models hold scores) keeps {len(np.unique(y32))}: it loses differences far below "
        f"the scores' common offset, as in y + 1e8 (e.g. {y64[i]:.17g} and "
        f"{y64[i + 1]:.17g} both become {float(y32[i]):.9g}), so scores that differ in "
        f"{what} train as equal. Subtract a common offset (e.g. y - y.min()) or rescale "
        "the scores.")


def is_number(v):
    """Whether ``float(v)`` reads ``v`` as a number.

    Parameters
    ----------
    v : object

    Returns
    -------
    bool
    """
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def refuse_one_row(X):
    """Refuse a 1-D array of numbers as ``X``.

    It is one row of features, whose length would otherwise be taken for a number of
    images ("X has 8 images but y has 1 scores").

    Parameters
    ----------
    X : object

    Raises
    ------
    ValueError
        When ``X`` is a 1-D numeric ndarray.
    """
    if isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype.kind in "biuf":
        raise ValueError(f"X is a 1-D array of {len(X)} numbers; it must be 2-D, one row "
                         "per image (X.reshape(1, -1) for a single row of features).")


def score_array(y, what="y", hint=""):
    """``np.asarray(y)``, with numpy's error for a ragged nested list reworded.

    ``y=[[1, 2, 3], [4, 5]]`` (scores grouped by rater, say) fails in numpy with
    "setting an array element with a sequence ... inhomogeneous shape", which does not
    say that ``y`` must be one score per image.

    Parameters
    ----------
    y : array-like
    what : str, default="y"
        How the message names ``y``.
    hint : str, default=""
        A sentence that ends the message: what the caller takes instead.

    Returns
    -------
    ndarray
    """
    try:
        return np.asarray(y)
    except ValueError as exc:
        if "inhomogeneous" not in str(exc) and "sequence" not in str(exc):
            raise
        raise ValueError(f"{what} must be one score per image (a flat list of numbers); it "
                         f"holds lists of different lengths.{hint}") from None


def check_scores(y, n_rows=None, what="y"):
    """``y`` as a 1-D float64 array of scores, one per row.

    A column vector ``(n, 1)`` is accepted; any other 2-D shape is refused rather than
    flattened, which would pair scores with the wrong images.

    Parameters
    ----------
    y : array-like
    n_rows : int, default=None
        The number of images ``y`` must score, if known.
    what : str, default="y"
        How messages name ``y``.

    Returns
    -------
    ndarray of shape (n,), float64

    Raises
    ------
    ValueError
        If ``y`` is None, is not one numeric score per row, or has another length than
        ``n_rows``.
    """
    if y is None:
        # np.asarray(None) is a 0-d object array: "must be 1-D" would hide what is missing
        raise ValueError(f"the rater's scores are required ({what}=None given): pass one "
                         "score per image.")
    y = score_array(y, what)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{what} must be 1-D (one score per image); got shape {y.shape}.")
    y = as_float_scores(y, np.float64, what)
    if n_rows is not None and n_rows != len(y):
        raise ValueError(f"X has {n_rows} images but {what} has {len(y)} scores.")
    return y


def _kept_below(values, counts, limit, ratio, step):
    """How many of the sorted distinct ``values`` to keep: all but the largest top tail
    of at most ``limit`` ratings beyond a gap wider than ``ratio`` times the span of the
    rest (from above its own bottom ``limit`` ratings, which may be strays too), and
    than ``ratio`` scale steps ``step``."""
    if len(values) < 2 or limit <= 0:
        return len(values)
    floor = values[min(np.searchsorted(np.cumsum(counts), limit, side="right"),
                       len(values) - 1)]
    tail = np.cumsum(counts[::-1])[::-1][1:]  # ratings in values[j + 1:]
    span = np.maximum(values[:-1] - floor, step)
    cut = np.flatnonzero((tail <= limit) & (np.diff(values) > ratio * span))
    return int(cut[0]) + 1 if len(cut) else len(values)


def stray_scores(y, share=0.05, ratio=3.0):
    """Ratings far beyond all the others, such as a code for a missing rating.

    The values at either end that hold at most ``share`` of the ratings and lie beyond a
    gap wider than ``ratio`` times the span of the rest: one "99" among ratings of 1-5,
    or thirty among a thousand, but not the few 5s of raters who mostly give 3.

    Parameters
    ----------
    y : ndarray of shape (n,)
    share : float, default=0.05
    ratio : float, default=3.0

    Returns
    -------
    far : ndarray of bool, shape (n,)
    core : (float, float)
        The lowest and highest of the other ratings.
    """
    y = np.asarray(y, dtype=np.float64)
    values, counts = np.unique(y, return_counts=True)
    lo, hi = 0, len(values)  # the rest: values[lo:hi]
    # the scale's step: most raters giving 3 make the few 1s and 5s no strays
    step = np.diff(values).min() if len(values) > 1 else 0.0
    for _ in range(4):  # a cut at one end narrows the rest, which may reveal the other
        left = share * len(y) - (counts[:lo].sum() + counts[hi:].sum())
        new_hi = lo + _kept_below(values[lo:hi], counts[lo:hi], left, ratio, step)
        left = share * len(y) - (counts[:lo].sum() + counts[new_hi:].sum())
        new_lo = new_hi - _kept_below(-values[lo:new_hi][::-1], counts[lo:new_hi][::-1],
                                      left, ratio, step)
        if (new_lo, new_hi) == (lo, hi):
            break
        lo, hi = new_lo, new_hi
    core = (float(values[lo]), float(values[hi - 1])) if len(values) else (0.0, 0.0)
    return (y < core[0]) | (y > core[1]), core


def unique_rows(F, block=4096):
    """``np.unique(F, axis=0, return_inverse=True)``, without sorting every row.

    A rater table repeats each image's row once per rater (5-30 times), and sorting
    187,726 rows of 1280 floats took numpy 25-30 s and 2 GB. Rows are told apart first
    by a hash of their bits (in blocks of ``block`` rows), checked bit for bit; the
    distinct images are then put in numpy's order by their first column (numpy orders
    the rows that tie on it), so the result is numpy's exactly.

    Parameters
    ----------
    F : ndarray of shape (n_rows, n_features)
    block : int, default=4096

    Returns
    -------
    unique : ndarray of shape (n_unique, n_features)
    inverse : ndarray of shape (n_rows,)
    """
    F = np.ascontiguousarray(F)
    if F.ndim != 2 or len(F) < 2 or F.shape[1] == 0 or (F.shape[1] * F.itemsize) % 8:
        unique, inverse = np.unique(F, axis=0, return_inverse=True)
        return unique, inverse.reshape(-1)
    words = F.view(np.uint64)
    # odd multipliers: a row's hash is a sum of its 64-bit words times fixed weights,
    # wrapping as unsigned integers do
    weights = np.random.RandomState(0).randint(1, 2**62, size=words.shape[1],
                                               dtype=np.uint64) * 2 + 1
    hashes = np.concatenate([(words[i:i + block] * weights).sum(axis=1, dtype=np.uint64)
                             for i in range(0, len(F), block)])
    _, first, code = np.unique(hashes, return_index=True, return_inverse=True)
    code = code.reshape(-1)
    for i in range(0, len(F), block):  # a shared hash must mean the same row
        if not np.array_equal(F[i:i + block], F[first[code[i:i + block]]]):
            unique, inverse = np.unique(F, axis=0, return_inverse=True)
            return unique, inverse.reshape(-1)
    order = _row_order(F, first)
    if order is None:
        unique, inverse = np.unique(F[first], axis=0, return_inverse=True)
        return unique, inverse.reshape(-1)[code]
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    return F[first[order]], rank[code]


def _row_order(F, rows):
    """The order in which ``np.unique(axis=0)`` lists the rows ``F[rows]`` (bitwise
    distinct), or None where only numpy can tell (NaN, rows equal as numbers).

    numpy compares rows column by column, as numbers. Sorting the distinct images by
    their first column, and letting numpy order only the runs that tie on it, gives the
    same order at a fraction of the cost: numpy sorted 40,000 rows of 1280 floats in 8 s.
    """
    inexact = F.dtype.kind in "fc"
    first = F[rows, 0]
    if inexact and np.isnan(first).any():
        return None
    order = np.argsort(first, kind="stable")
    ties = first[order[1:]] == first[order[:-1]]
    if ties.any():
        tied = np.zeros(len(order), dtype=bool)
        tied[1:] |= ties
        tied[:-1] |= ties
        runs = F[rows[order[tied]]]
        if inexact and np.isnan(runs).any():
            return None
        # numpy's own order for the tied runs alone (its row comparison stops at the
        # first column that differs; a lexsort of every column took twice as long)
        kept, within = np.unique(runs, axis=0, return_index=True)
        if len(kept) < len(runs):  # rows equal as numbers, e.g. 0.0 and -0.0
            return None
        order[tied] = order[tied][within]
    return order

