"""Readers for personalized aesthetics data sets: a ratings table to a :class:`TaskSet`.

Every reader returns a :class:`~sklearn.utils.Bunch` whose ``tasks`` can be passed to
:meth:`MetaAestheticRegressor.fit` as they are, with ``X`` holding absolute image paths.
The data sets themselves are not downloaded: point the readers at your local copy.
"""

import csv
import io
import math
import os
import re
import urllib.parse
import warnings
from importlib import resources

import numpy as np
from sklearn.utils import Bunch

from .._inputs import is_number
from .._messages import listing
from .._tasks import TaskSet
from .._warnings import PIAAWarning
from ._table import (
    COLUMN_OPTIONS,
    IMAGE_DIR_HINT,
    IMAGE_ROOT_HINT,
    _first,
    _ids,
    _is_blank,
    _load_table,
    _read,
    _read_text,
    _where,
)

__all__ = ["read_ratings", "read_flickr_aes", "read_para", "read_real_cur", "read_aadb"]

# -- bunches and rater splits --------------------------------------------------------


def _bunch(X, y, groups, title):
    tasks = TaskSet.from_arrays(X, y, groups)
    descr = (f"{title}\n\n{len(y)} ratings of {len(set(X))} images by {len(tasks)} raters. "
             "No train/test rater split.\n")
    return Bunch(tasks=tasks, X=X, y=y, groups=groups, train_raters=None, test_raters=None,
                 train=None, test=None, DESCR=descr)


def _warn_off_scale(bunch, name, path, low=1.0, high=5.0):
    """Warn when scores read as a public data set's lie outside its published scale.

    A copy whose score column is another (a count, an id) or was rescaled (0-100) is
    read without error, and the model fits whatever scale it is given; a prior of the
    data set's own scale then meets the user's ratings on another.
    """
    outside = np.flatnonzero((bunch.y < low) | (bunch.y > high))
    if len(outside):
        i = outside[0]
        warnings.warn(
            f"{path}: {len(outside)} of {len(bunch.y)} scores lie outside {name}'s "
            f"{low:g}-{high:g} scale (from {bunch.y.min():g} to {bunch.y.max():g}; e.g. "
            f"{bunch.y[i]:g} by rater {bunch.groups[i]!r}): is the score column the data "
            "set's own, and the copy not rescaled? The model fits the scores as read.",
            PIAAWarning, stacklevel=3)


def _present(tasks, ids, what):
    ids = list(dict.fromkeys(str(i).strip() for i in ids))
    if not ids:  # "none of them occurs in the ratings" sent the reader to the ratings
        raise ValueError(f"the {what} are given as an empty list (a split file with a "
                         "header and no ids?); list them, or read without a split (on the "
                         "command line, without --test-raters).")
    absent = [i for i in ids if i not in tasks]
    # "w2,w3" under a one-column header is one id: warned of as absent, w2 and w3 would
    # have stayed on the other side of the split
    joined = [(i, parts) for i in absent
              if len(parts := [p.strip() for p in re.split(r"[,;\t]", i)]) > 1
              and all(p in tasks for p in parts if p) and any(parts)]
    if joined:
        i, parts = joined[0]
        more = f" (and {len(joined) - 1} more such)" if len(joined) > 1 else ""
        raise ValueError(f"the {what} include {i!r}{more}, which is no rater, but "
                         f"{listing(map(repr, filter(None, parts)))} are: several ids on "
                         "one line, read as one under a one-column header? List one id a "
                         "line, or name each column in the header.")
    if absent:
        warnings.warn(f"{len(absent)} of the {len(ids)} {what} do not occur in the ratings "
                      f"and are left out: {_first(absent, 10)}.", PIAAWarning, stacklevel=4)
    return sorted(i for i in ids if i in tasks)


def _add_split(bunch, test_ids=None, train_ids=None, what="raters of the split"):
    """Set train/test of ``bunch``; a side given as None holds every other rater."""
    for side, ids in (("test", test_ids), ("train", train_ids)):
        if isinstance(ids, (str, bytes)):
            raise ValueError(f"the {side} {what} must be a list of ids; got the string "
                             f"{ids!r}, which would be read as its characters: give "
                             f"[{ids!r}].")
    tasks = bunch.tasks
    test = None if test_ids is None else _present(tasks, test_ids, f"test {what}")
    train = None if train_ids is None else _present(tasks, train_ids, f"train {what}")
    if test is not None and train is not None:
        both = sorted(set(test) & set(train))
        if both:
            raise ValueError(f"{len(both)} rater(s) are in both the train and the test "
                             f"{what}: {_first(both)}.")
        listed = set(test) | set(train)
        left = [r for r in tasks.raters if r not in listed]
        if left:
            warnings.warn(f"{len(left)} rater(s) are in neither the train nor the test {what} "
                          f"and are left out of both: {_first(left, 10)}.", PIAAWarning,
                          stacklevel=3)
    if test is None:
        test = sorted(set(tasks.raters) - set(train))
    if train is None:
        train = sorted(set(tasks.raters) - set(test))
    if not test:
        raise ValueError(f"none of the test {what} occurs in the ratings, so the test side "
                         "of the split would be empty; read without a split to skip it (on "
                         "the command line, without --test-raters).")
    if train_ids is not None and not train:
        # an empty train side would read as "no split" to a caller falling back on
        # every rater, test raters included
        raise ValueError(f"none of the train {what} occurs in the ratings, so the train "
                         "side of the split would be empty; are the ids written alike?")
    bunch.update(train_raters=train, test_raters=test, test=tasks.subset(test),
                 train=tasks.subset(train) if train else None)
    bunch.DESCR = bunch.DESCR.replace(
        "No train/test rater split.", f"Split: {len(train)} train / {len(test)} test raters "
        f"({what}).")
    return bunch


def _header(text):
    """The delimiter (``","``, ``"\t"`` or None: runs of whitespace) and the field names of
    the first non-blank line of ``text``, quotes and spaces around them dropped."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = "," if "," in first else "\t" if "\t" in first else None
    fields = (next(csv.reader([first], delimiter=delimiter)) if delimiter
              else _space_fields(first))
    return delimiter, [f.strip().strip("\"'") for f in fields]


def _space_fields(line, one_column=False):
    """The fields of a whitespace-separated ``line``; a quoted field keeps its spaces.

    Under a one-column header an unquoted line is one field: the id "John Smith", not
    two. A line of quoted fields (R's write.table: ``"1" "w1"``) is split either way.
    """
    line = line.strip()
    if one_column and not line.startswith('"'):
        return [line] if line else []
    return next(csv.reader([line], delimiter=" ", skipinitialspace=True), [])


def _read_ids(path, column="worker", text=None, has_header=True):
    """Ids in ``column`` of a comma-, tab- or whitespace-separated table with a header row.

    The header's first delimiter found (a comma, else a tab) separates the fields, as in
    a CSV: an empty cell stays a field. A header with neither separates fields by runs of
    whitespace (a quoted field keeps its spaces; under a one-column header each line is
    one id, spaces and all). Quotes around fields are dropped. A row whose field count
    differs from the header's is an error naming the file and line. ``has_header=False``:
    one id a line, no header.
    """
    if text is None:
        text = _read_text(path)
    lines = text.splitlines()
    delimiter, names = _header(text) if has_header else (None, [column])
    if delimiter is None:
        rows = ((n, _space_fields(line, one_column=len(names) == 1))
                for n, line in enumerate(lines, 1))
    else:
        # The csv module, not a split on runs of separators: that merged an empty cell
        # into its neighbour ("1,,A1" read A1 as the second field) and moved the ids.
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                            skipinitialspace=True)
        rows = ((reader.line_num, row) for row in reader)
    # quotes dropped: R's write.csv quotes every id (and adds a quoted row-name column)
    rows = [(n, [f.strip().strip("\"'") for f in row]) for n, row in rows
            if any(f.strip() for f in row)]
    if not has_header:
        rows.insert(0, (0, [column]))
    if not rows or column not in rows[0][1]:
        semicolons = (" separated by ';': write commas between the columns"
                      if rows and any(column in f.split(";") for f in rows[0][1]) else "")
        raise ValueError(f"{path}: expected a header row naming a {column!r} column; "
                         f"found {rows[0][1] if rows else 'an empty file'}{semicolons}.")
    header = rows[0][1]
    while len(header) > 1 and not header[-1]:
        header.pop()  # a trailing separator (Excel's "worker,"), as in a data row
    j, ids = header.index(column), []
    for n, row in rows[1:]:
        while len(row) > len(header) and not row[-1]:
            row.pop()  # a trailing separator is harmless
        if len(row) != len(header) and not has_header:
            raise ValueError(f"{path}, line {n}: {len(row)} fields, but a list of ids has "
                             "one a line (quote an id with spaces in it, or give a header "
                             "row naming the columns).")
        if len(row) != len(header):
            rownames = (" (row names, as R's write.table writes them? write with "
                        "row.names=FALSE)" if len(row) == len(header) + 1 else "")
            raise ValueError(f"{path}, line {n}: {len(row)} field(s) but the header has "
                             f"{len(header)} ({header}){rownames}; give every row one "
                             f"field per column, an empty one as two adjacent commas.")
        if not row[j]:
            raise ValueError(f"{path}, line {n}: the {column!r} cell is empty; give the id "
                             "or remove the row.")
        ids.append(row[j])
    return ids


def _ratings_path(root, ratings_file):
    """``root`` and its ratings file's path; an error where ``root`` is no folder."""
    root = os.fspath(root)
    if os.path.isfile(root):
        # Else the file would be looked for inside itself: "not found: f.csv/f.csv".
        parent = os.path.dirname(os.path.abspath(root))
        here = (f"; here {parent}" if os.path.basename(root)
                == os.path.basename(ratings_file) else "")
        raise NotADirectoryError(f"{root} is a file, but the path must be the data set's "
                                 f"folder (the one holding {ratings_file}){here}.")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data set folder not found: {root}")
    return root, os.path.join(root, ratings_file)


# -- public readers ------------------------------------------------------------------


def read_ratings(table, rater_col="rater", image_col="image", score_col="score",
                 image_root=None, duplicates="mean", check_files=True, min_images=None):
    """Read a long table of ratings, one row per (rater, image, score).

    Parameters
    ----------
    table : str, path-like, pandas DataFrame or dict of columns
        A comma-separated UTF-8 file with a header row (blank lines before it are
        skipped), or an in-memory table. Spaces around column names and cells, quoted or
        not, are ignored, and so are columns without a name whose cells are all empty
        (Excel's trailing commas, ``image,score,,``). A quoted cell may run over lines
        (a comment written on several) only in a column not read here; elsewhere, or
        where a line inside it reads as a row of its own, it is refused as a likely
        stray quote. The table is never modified.
    rater_col, image_col, score_col : str, default="rater", "image", "score"
        Columns of the rater id, the image file (relative to ``image_root``, or absolute)
        and the numeric score.
    image_root : str or path-like, default=None
        Folder of the images; None means the CSV file's folder, or the current directory
        for an in-memory table.
    duplicates : {"mean", "error"}, default="mean"
        A rater rating an image more than once either gets one row with the mean score,
        in place of the first (with a PIAAWarning counting and naming the pairs), or
        raises.
    check_files : bool, default=True
        Check that every image file exists.
    min_images : int, default=None
        If given, raise for raters with fewer distinct images.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``tasks`` (:class:`~sklearn_piaa.TaskSet` of all raters); in table order, ``X``
        (list of absolute image paths), ``y`` (float32) and ``groups`` (object array of
        str rater ids); the rater split as ``train_raters``, ``test_raters`` (lists)
        and ``train``, ``test`` (TaskSets; None for an empty side), all None without a
        split (always, here); ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If the table or, with ``check_files``, images are missing (count, first names;
        an absolute path as itself, not under ``image_root``; a folder directly under
        ``image_root`` that holds them, or else the current directory where the names
        are relative to it (``image_root="."``), where (nearly) all are missing there).
    IsADirectoryError
        If ``table`` is a folder (naming the ``--format`` that reads it, where it holds
        a known data set's ratings file).
    ValueError
        On a file that is not UTF-8 (naming the byte) or not comma-separated (with the
        ``pandas.read_csv`` call that reads it into a DataFrame, which is accepted), a
        dict column that is not a list or array, repeated or missing columns, a column
        without a name that holds data, other than the first (naming
        those found, the found column that likely holds a missing one, and the reader
        of a known data set whose columns they are), an empty
        table or id cell, non-numeric or non-finite scores (rows, values), duplicates
        with ``duplicates="error"``, or raters with fewer than ``min_images`` images
        (names, counts).

    Warns
    -----
    PIAAWarning
        With ``duplicates="mean"``, where ratings are averaged: how many (rater, image)
        pairs and ratings, and the first pairs with their rows.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = Path(tmp.name, "ratings.csv")
    >>> _ = path.write_text("rater, image, score\\nann, a.jpg, 4\\nann, b.jpg, 2\\nbob, a.jpg, 5")
    >>> data = read_ratings(path, check_files=False)
    >>> data.tasks, data.y.tolist(), data.groups.tolist(), Path(data.X[1]).name
    (TaskSet(n_raters=2, n_ratings=3), [4.0, 2.0, 5.0], ['ann', 'ann', 'bob'], 'b.jpg')
    >>> tmp.cleanup()
    """
    return _read_ratings(table, (rater_col, image_col, score_col), image_root, duplicates,
                         check_files, min_images)


def _read_ratings(table, cols, image_root, duplicates="mean", check_files=True,
                  min_images=None, hint=IMAGE_ROOT_HINT):
    """:func:`read_ratings`; ``hint`` names the caller's image folder parameter (see
    ``IMAGE_ROOT_HINT``)."""
    t = _load_table(table, needed=cols, frame_hint=True)
    X, y, groups = _read(t, cols, image_root, duplicates, check_files, min_images, hint=hint,
                         options=COLUMN_OPTIONS)
    return _bunch(X, y, groups, f"Ratings read from {t.name}")


def read_flickr_aes(root, ratings_file="FLICKR-AES_image_labeled_by_each_worker.csv",
                    image_dir="40K", split="official", check_files=True):
    """Read FLICKR-AES: 40,000 Flickr photos, each rated 1-5 by 5 of 210 workers.

    The data set of [1]_.

    Parameters
    ----------
    root : str or path-like
        Folder of the data set.
    ratings_file : str, default="FLICKR-AES_image_labeled_by_each_worker.csv"
        Ratings file in ``root``, header ``worker, imagePair, score`` as distributed
        (the spaces are ignored). Repeated ratings are averaged, with a PIAAWarning.
    image_dir : str, default="40K"
        Folder in ``root`` holding the ``imagePair`` files.
    split : {"official", None}, default="official"
        "official": the workers of ``root/test_workers.csv`` and ``train_workers.csv``
        where present (comma-, tab- or whitespace-separated, with a header row naming a
        ``worker`` column; a missing file means all other workers), else the 37 test
        workers shipped with this package [2]_ and all other workers for training (no
        split, with a warning, where none of those 37 occurs). None: no split.
    check_files : bool, default=True
        Check that every image file exists.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As :func:`read_ratings`, with the split.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_ratings`; ValueError also if no test worker occurs in the ratings.
    NotADirectoryError
        If ``root`` is a file (such as the ratings file itself) rather than a folder.

    Warns
    -----
    PIAAWarning
        Naming the split's workers that do not occur in the ratings.

    References
    ----------
    .. [1] Ren, J., Shen, X., Lin, Z., Mech, R. and Foran, D. J. "Personalized Image
       Aesthetics". ICCV, 2017. Its protocol has 173 train and 37 test workers.
    .. [2] The shipped list is ``code/PIAA/FlickrAES_PIAA/label/test_workers_ID.csv`` of
       the GitHub repository yzc-ippl/MTCL.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = Path(tmp.name, "FLICKR-AES_image_labeled_by_each_worker.csv").write_text(
    ...     "worker, imagePair, score\\nw1, x.jpg, 3\\nw2, x.jpg, 5\\n")
    >>> _ = Path(tmp.name, "test_workers.csv").write_text("worker\\nw2\\n")
    >>> data = read_flickr_aes(tmp.name, check_files=False)
    >>> data.train_raters, data.test_raters, data.y.tolist()
    (['w1'], ['w2'], [3.0, 5.0])
    >>> tmp.cleanup()
    """
    if split not in ("official", None):
        raise ValueError(f"split must be 'official' or None, got {split!r}.")
    root, ratings_path = _ratings_path(root, ratings_file)
    cols = ("worker", "imagePair", "score")
    t = _load_table(ratings_path, needed=cols)
    X, y, groups = _read(t, cols, os.path.join(root, image_dir),
                         check_files=check_files, hint=IMAGE_DIR_HINT)
    bunch = _bunch(X, y, groups, "FLICKR-AES (Ren et al., ICCV 2017), per-worker 1-5 scores")
    _warn_off_scale(bunch, "FLICKR-AES", t.name)
    if split is None:
        return bunch
    files = {s: os.path.join(root, f"{s}_workers.csv") for s in ("train", "test")}
    if not any(os.path.isfile(p) for p in files.values()):
        shipped = resources.files(__package__) / "data" / "flickr_aes_test_workers.csv"
        test_ids = _read_ids(shipped, text=shipped.read_text(encoding="utf-8"))
        if not any(str(i).strip() in bunch.tasks for i in test_ids):
            # a copy of other workers: refused, with advice the command line could not
            # follow (it has no way to read without the shipped split)
            warnings.warn(f"none of the {len(test_ids)} test workers of the Ren et al. split "
                          f"(shipped with the package) occurs in {t.name}: read without a "
                          "split. Give test_workers.csv (or --test-raters FILE) for a split "
                          "of its workers.", PIAAWarning, stacklevel=2)
            return bunch
        return _add_split(bunch, test_ids, None, "workers of the Ren et al. split")
    ids = {s: _read_ids(p) if os.path.isfile(p) else None for s, p in files.items()}
    return _add_split(bunch, ids["test"], ids["train"], f"workers listed in {root}")


def read_para(root, ratings_file="annotation/PARA-Images.csv", image_dir="imgs",
              test_users=None, check_files=True):
    """Read PARA: 31,220 images rated 1-5 in half steps by 438 subjects.

    The data set of [1]_.

    Parameters
    ----------
    root : str or path-like
        Folder of the data set.
    ratings_file : str, default="annotation/PARA-Images.csv"
        Ratings file in ``root``, with columns ``userId``, ``imageName``,
        ``aestheticScore`` and ``sessionId`` (others are ignored). Repeats are
        averaged, with a PIAAWarning.
    image_dir : str, default="imgs"
        Folder in ``root`` holding the images at ``<sessionId>/<imageName>``.
    test_users : iterable of str, default=None
        Users forming the test side of a split, all others the train side. None: no
        split, as the package defines none; the PARA paper's PIAA protocol lists its
        test users in separate files, which can be read and passed here.
    check_files : bool, default=True
        Check that every image file exists.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As :func:`read_ratings`.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_ratings`.
    NotADirectoryError
        If ``root`` is a file (such as the ratings file itself) rather than a folder.

    References
    ----------
    .. [1] Yang, Y., Xu, L., Li, L., Qie, N., Li, Y., Zhang, P. and Guo, Y. "Personalized
       Image Aesthetics Assessment with Rich Attributes". CVPR, 2022.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> Path(tmp.name, "annotation").mkdir()
    >>> _ = Path(tmp.name, "annotation", "PARA-Images.csv").write_text(
    ...     "sessionId,imageName,userId,aestheticScore\\ns1,a.jpg,u1,3.5\\ns1,a.jpg,u2,4\\n")
    >>> data = read_para(tmp.name, check_files=False)
    >>> Path(data.X[0]).relative_to(tmp.name).parts, data.y.tolist(), data.train
    (('imgs', 's1', 'a.jpg'), [3.5, 4.0], None)
    >>> tmp.cleanup()
    """
    root, ratings_path = _ratings_path(root, ratings_file)
    t = _load_table(ratings_path,
                    needed=("userId", "imageName", "aestheticScore", "sessionId"))

    def locate(raters, images, y):
        return [os.path.join(s, im) for s, im in zip(_ids(t, "sessionId"), images)]

    X, y, groups = _read(t, ("userId", "imageName", "aestheticScore"),
                         os.path.join(root, image_dir), check_files=check_files,
                         extra=("sessionId",), locate=locate, hint=IMAGE_DIR_HINT)
    bunch = _bunch(X, y, groups, "PARA (Yang et al., CVPR 2022), per-subject aesthetic scores")
    _warn_off_scale(bunch, "PARA", t.name)
    return bunch if test_users is None else _add_split(bunch, test_users, None, "users given")


def read_real_cur(root, ratings_file="ratings.csv", image_dir="images", check_files=True):
    """Read REAL-CUR: the photo collections of 14 users, each rated by its owner.

    The data set of [1]_.

    All users are test users: REAL-CUR serves to evaluate personalizing a prior trained
    on other data (e.g. FLICKR-AES [2]_), so ``test_raters`` lists every user and
    ``train_raters`` and ``train`` are None.

    Parameters
    ----------
    root : str or path-like
        Folder of the data set.
    ratings_file : str, default="ratings.csv"
        Ratings file in ``root``, with columns ``worker``, ``image`` and ``MOS``.
    image_dir : str, default="images"
        Folder in ``root`` holding the images sorted by score, at
        ``<worker>/<int(MOS)>/<image>``.
    check_files : bool, default=True
        Check that every image file exists.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As :func:`read_ratings`.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_ratings`.
    NotADirectoryError
        If ``root`` is a file (such as the ratings file itself) rather than a folder.

    References
    ----------
    .. [1] Lv, P., Wang, M., Xu, Y., Peng, Z., Sun, J., Su, S., Zhou, B. and Xu, M. "USAR:
       an Interactive User-specific Aesthetic Ranking Framework for Images". ACM
       Multimedia, 2018.
    .. [2] Zhu, H., Li, L., Wu, J., Zhao, S., Ding, G. and Shi, G. "Personalized Image
       Aesthetics Assessment via Meta-Learning With Bilevel Gradient Optimization". IEEE
       Transactions on Cybernetics, 2022.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = Path(tmp.name, "ratings.csv").write_text("worker,image,MOS\\nu1,a.jpg,4.6\\n")
    >>> data = read_real_cur(tmp.name, check_files=False)
    >>> Path(data.X[0]).relative_to(tmp.name).parts, data.test_raters, data.train
    (('images', 'u1', '4', 'a.jpg'), ['u1'], None)
    >>> tmp.cleanup()
    """
    root, ratings_path = _ratings_path(root, ratings_file)
    t = _load_table(ratings_path, needed=("worker", "image", "MOS"))

    def locate(raters, images, y):
        # An image rated twice by its owner with scores in two folders got two paths:
        # the repeat went unnoticed (two ratings of "two images") or "missing" was said.
        folders = {}
        for w, s, im in zip(raters, y, images):
            folders.setdefault((w, os.path.normpath(im)), {}).setdefault(int(s), s)
        twice = [(w, im, list(f.values())) for (w, im), f in folders.items() if len(f) > 1]
        if twice:
            raise ValueError(
                f"{t.name}: {len(twice)} image(s) rated more than once by one user with "
                "MOS in different score folders (images/<worker>/<int(MOS)>/), so that "
                "only one of the ratings can be right: "
                + listing(f"{w!r} rated {im!r} {' and '.join(f'{v:g}' for v in scores)}"
                          for w, im, scores in twice)
                + "; keep one rating of each.")
        return [os.path.join(w, str(int(s)), im) for w, s, im in zip(raters, y, images)]

    X, y, groups = _read(t, ("worker", "image", "MOS"), os.path.join(root, image_dir),
                         check_files=check_files, locate=locate, hint=IMAGE_DIR_HINT)
    bunch = _bunch(X, y, groups, "REAL-CUR (Lv et al., ACM MM 2018), per-user scores")
    bunch = _add_split(bunch, bunch.tasks.raters, None, "users; REAL-CUR has test users only")
    bunch.train_raters = None
    return bunch


#: AADB as distributed: Mechanical Turk's results, a row per assignment in which one
#: worker rated several images (ten): ``WorkerId``, ``Input.image_url1`` ... and
#: ``Answer.overallScore1`` ...
_AADB_WORKER, _AADB_URL, _AADB_SCORE = "WorkerId", "Input.image_url", "Answer.overallScore"


def _aadb_image_name(url):
    """The file name AADB gives the photo at Flickr address ``url``.

    ``http://farm1.staticflickr.com/255/19452343093_8ee7e5e375_b.jpg`` is
    ``farm1_255_19452343093_8ee7e5e375_b.jpg``: server farm, server and file name. An
    address of another shape gives its file name.
    """
    parts = urllib.parse.urlsplit(str(url).strip())
    segments = [s for s in parts.path.split("/") if s]
    host = parts.netloc.split(".")[0]
    if host and len(segments) >= 2:
        return f"{host}_{segments[0]}_{segments[-1]}"
    return segments[-1] if segments else ""


def _aadb_slots(t):
    """AADB's slots in table ``t``: ``{k: (url column, score column)}``, by the columns'
    own names (``Input.image_url01`` is slot 1). A column without its partner, or two
    of one slot, is an error: the ratings of that slot would be lost or read twice."""
    found = {_AADB_URL: {}, _AADB_SCORE: {}}
    for c in t.cols:
        for prefix, slots in found.items():
            if c.startswith(prefix) and c[len(prefix):].isdigit():
                k = int(c[len(prefix):])
                if k in slots:
                    raise ValueError(f"{t.name}: columns {slots[k]!r} and {c!r} are both "
                                     f"slot {k}; keep one of them.")
                slots[k] = c
    urls, scores = found[_AADB_URL], found[_AADB_SCORE]
    if not urls and not scores:
        return {}
    alone = [c for k, c in sorted(urls.items()) if k not in scores] + \
            [c for k, c in sorted(scores.items()) if k not in urls]
    if alone:
        near = [c for c in t.cols if c not in urls.values() and c not in scores.values()
                and c.lower().startswith((_AADB_URL.lower(), _AADB_SCORE.lower()))]
        raise ValueError(
            f"{t.name}: column(s) {alone} have no partner among "
            f"{_AADB_URL}<k> / {_AADB_SCORE}<k> "
            + (f"(misspelt as {near}?)" if near else "(a misspelt column name?)")
            + ", so their ratings could not be read; name each slot's two columns alike.")
    return {k: (urls[k], scores[k]) for k in sorted(urls)}


def _aadb_long(t):
    """AADB's results table ``t`` as one row per rating, or None where ``t`` is not laid
    out so. Its columns (rater, image, score) are named after those they come from."""
    if _AADB_WORKER not in t.cols:
        return None
    slots = _aadb_slots(t)
    if not slots:
        return None
    cols = (_AADB_WORKER, f"{_AADB_URL}N", f"{_AADB_SCORE}N")
    long = {c: [] for c in cols}
    lines = []
    for i in range(t.n):
        worker = t.cols[_AADB_WORKER][i]
        for url_col, score_col in slots.values():
            url, score = t.cols[url_col][i], t.cols[score_col][i]
            if _is_blank(url) and _is_blank(score):
                continue  # an assignment of fewer images
            for col, cell in ((url_col, url), (score_col, score)):
                if "\n" in str(cell) or "\r" in str(cell):  # see _read_csv
                    raise ValueError(f"{t.name}, {_where(t, i)}: the quoted cell in column "
                                     f"{col!r} runs over lines; remove the stray quote "
                                     "(\") or the line breaks inside the cell.")
            # named here by the columns of the file: the one-row-per-rating table's
            # messages would name its own ("Input.image_urlN"), once per slot
            where = f"{t.name}, {_where(t, i)}"
            if _is_blank(worker):
                raise ValueError(f"{where}: column {_AADB_WORKER!r} is empty in a row of "
                                 "ratings; give the worker's id or remove the row.")
            for col, cell, other, value in ((url_col, url, score_col, score),
                                            (score_col, score, url_col, url)):
                if _is_blank(cell):
                    raise ValueError(f"{where}: column {col!r} is empty, though {other!r} "
                                     f"holds {value!r}.")
            if not is_number(score) or not math.isfinite(float(score)):
                raise ValueError(f"{where}: column {score_col!r} must hold a finite "
                                 f"number; got {score!r}.")
            for col, cell in zip(cols, (worker, _aadb_image_name(url), score)):
                long[col].append(cell)
            lines.append(t.lines[i] if t.lines is not None else i)
    return Bunch(cols=long, n=len(lines), lines=lines if t.lines is not None else None,
                 labels=None, base=t.base,
                 name=f"{t.name} (read as one row per rating)")


def read_aadb(root, ratings_file="AADB_AllinAll.csv", image_dir="datasetImages_originalSize",
              rater_col="workerID", image_col="imgName", score_col="score", test_workers=None,
              check_files=True):
    """Read AADB ratings with their rater ids.

    The data set of [1]_.

    ``AADB_AllinAll.csv`` as distributed is Amazon Mechanical Turk's results table: a
    row per assignment, in which worker ``WorkerId`` rated the images at
    ``Input.image_url1`` ... ``Input.image_url10`` with ``Answer.overallScore1`` ...
    (1-5). Such a table (a file without ``rater_col``) is read as one rating per image,
    each image by the name AADB's image folder gives it
    (``farm1_255_19452343093_8ee7e5e375_b.jpg`` for
    ``http://farm1.staticflickr.com/255/19452343093_8ee7e5e375_b.jpg``). Copies laid
    out one row per rating are read as :func:`read_ratings` reads them, with the
    column names as parameters.

    Parameters
    ----------
    root : str or path-like
        Folder of the data set.
    ratings_file : str, default="AADB_AllinAll.csv"
        Comma-separated ratings with a header row, in ``root``: Mechanical Turk's
        results as distributed, or one row per rating. Repeats are averaged, with a
        PIAAWarning.
    image_dir : str, default="datasetImages_originalSize"
        Folder in ``root`` holding the images.
    rater_col, image_col, score_col : str, default="workerID", "imgName", "score"
        Columns of the rater id, image file name and score of a table of one row per
        rating.
    test_workers : iterable of str, default=None
        Workers forming the test side of a split, all others the train side. None: no
        split. Ren et al. [2]_ use 168 train / 22 test workers; that list is not public,
        so the package cannot ship it.
    check_files : bool, default=True
        Check that every image file exists.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As :func:`read_ratings`.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_ratings`.
    NotADirectoryError
        If ``root`` is a file (such as the ratings file itself) rather than a folder.

    References
    ----------
    .. [1] Kong, S., Shen, X., Lin, Z., Mech, R. and Fowlkes, C. "Photo Aesthetics Ranking
       Network with Attributes and Content Adaptation". ECCV, 2016.
    .. [2] Ren, J., Shen, X., Lin, Z., Mech, R. and Foran, D. J. "Personalized Image
       Aesthetics". ICCV, 2017.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = Path(tmp.name, "AADB_AllinAll.csv").write_text(
    ...     "imgName,workerID,score\\na.jpg,7,2\\nb.jpg,8,4\\n")
    >>> data = read_aadb(tmp.name, test_workers=[8], check_files=False)
    >>> data.train_raters, data.test_raters
    (['7'], ['8'])
    >>> tmp.cleanup()
    """
    root, ratings_path = _ratings_path(root, ratings_file)
    cols = (rater_col, image_col, score_col)
    t = _load_table(ratings_path, needed=(*cols, _AADB_WORKER))
    if rater_col not in t.cols and (long := _aadb_long(t)) is not None:
        t, cols = long, tuple(long.cols)  # else the missing columns are named by _read
    # The command line's --format aadb reads the columns of this function's defaults:
    # there, other columns are read as a ratings table.
    image_root = os.path.join(root, image_dir)
    X, y, groups = _read(t, cols, image_root, check_files=check_files,
                         hint=IMAGE_DIR_HINT, options=COLUMN_OPTIONS,
                         as_table=(ratings_path, image_root))
    bunch = _bunch(X, y, groups, f"Ratings read from {t.name}")
    _warn_off_scale(bunch, "AADB", t.name)
    bunch.DESCR = "AADB (Kong et al., ECCV 2016). " + bunch.DESCR
    return bunch if test_workers is None else _add_split(bunch, test_workers, None,
                                                         "workers given")
