"""Loading and validating a long ratings table: columns, scores, duplicates, files.

Shared by every reader in :mod:`sklearn_piaa.datasets.readers`; each check names the
file, column, rows and raters at fault.
"""

import codecs
import csv
import io
import itertools
import numbers
import os
import re
import shlex
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
from sklearn.utils import Bunch

from .._inputs import warn_if_float32_merges
from .._messages import NO_URLS, listing, looks_like_url
from .._warnings import PIAAWarning, warn_caller

_SHOWN = 5  # how many offending rows, files or raters an error message lists


def _first(items, n=_SHOWN):
    return listing(items, n)


#: The data sets the readers know, by their ratings file as distributed (the readers'
#: defaults) and its columns: for messages that point a table or folder given to the
#: wrong reader at the right one.
DATA_SETS = (
    # (name, --format, reader, ratings file, columns)
    ("FLICKR-AES", "flickr-aes", "read_flickr_aes",
     "FLICKR-AES_image_labeled_by_each_worker.csv", ("worker", "imagePair", "score")),
    ("PARA", "para", "read_para", "annotation/PARA-Images.csv",
     ("userId", "imageName", "aestheticScore", "sessionId")),
    ("REAL-CUR", "real-cur", "read_real_cur", "ratings.csv", ("worker", "image", "MOS")),
    ("AADB", "aadb", "read_aadb", "AADB_AllinAll.csv", ("workerID", "imgName", "score")),
    # AADB as distributed: Mechanical Turk's results, several images per row
    ("AADB", "aadb", "read_aadb", "AADB_AllinAll.csv",
     ("WorkerId", "Input.image_url1", "Answer.overallScore1")),
)


def _not_a_folder_of_ratings(path):
    """The error for a folder given where a ratings CSV is expected."""
    known = next((d for d in DATA_SETS if d[1] != "real-cur"  # its file name is generic
                  and os.path.isfile(os.path.join(path, d[3]))), None)
    if known:
        name, fmt, reader, file, _ = known
        how = (f"or, as it holds {name}'s {file}, --format {fmt} on the command line "
               f"({reader} from Python)")
    else:
        formats = ", ".join(dict.fromkeys(d[1] for d in DATA_SETS))
        how = (f"or --format <name> ({formats}) for a data set's folder on the command "
               "line (read_flickr_aes, ... from Python)")
    return IsADirectoryError(f"{path} is a folder; pass the ratings CSV, {how}.")


def _data_set_hint(columns, path=None):
    """" Its columns are those of X's file: ..." where ``columns`` hold a known data
    set's, or ""; ``path`` is the table's file, if any."""
    known = next((d for d in DATA_SETS if set(d[4]) <= set(columns)), None)
    if known is None:
        return ""
    name, fmt, reader, file, cols = known
    folder = f" ({os.path.dirname(os.path.abspath(path))})" if path else ""
    return (f" Its columns {list(cols)} are those of {name}'s {file}: read the data set's "
            f"folder{folder} with --format {fmt} on the command line ({reader} from "
            "Python), or name the columns (--rater-col, --image-col, --score-col).")


# -- loading a table -----------------------------------------------------------------


def _load_table(table, needed=None, frame_hint=False):
    """Columns (name -> list, copied), a name for messages, CSV line numbers and a base dir.

    ``needed``, ``frame_hint``: see :func:`_read_csv`.
    """
    if isinstance(table, (str, os.PathLike)):
        return _read_csv(os.fspath(table), needed, frame_hint)
    if hasattr(table, "columns") and hasattr(table, "to_numpy"):  # a pandas DataFrame
        name = "the DataFrame"
        if hasattr(table, "items"):
            # Column by column: to_numpy() of an all-numeric frame is one float array,
            # which would turn rater 7 into '7.0' and image 101 into '101.0'.
            items = ((c, _frame_column(s)) for c, s in table.items())
        else:  # a frame-like object without pandas' column access
            values = np.asarray(table.to_numpy(), dtype=object)
            items = ((c, values[:, j].tolist()) for j, c in enumerate(table.columns))
        cols = _named_columns(name, items)
    elif isinstance(table, Mapping):
        name = "the dict table"
        cols = _named_columns(name, ((c, _dict_column(name, c, v)) for c, v in table.items()))
        lengths = {c: len(v) for c, v in cols.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"the columns of the dict table differ in length: {lengths}.")
    else:
        raise TypeError("table must be a CSV path, a pandas DataFrame or a dict of columns; "
                        f"got {type(table).__name__}.")
    n = len(next(iter(cols.values()), []))
    # A filtered or re-indexed frame's rows are found by their index label (df.loc),
    # not by their position: messages name the label wherever the two differ.
    labels = None
    index = getattr(table, "index", None)
    if index is not None and hasattr(index, "tolist") and len(index) == n:
        labels = index.tolist()
        if labels == list(range(n)):
            labels = None
    return Bunch(cols=cols, name=name, lines=None, n=n, base=os.getcwd(), labels=labels)


def _named_columns(name, items):
    cols = {}
    for c, values in items:
        key = str(c).strip()
        if key in cols:
            # Stripping can make two names one ("rater" and " rater"): keeping either
            # column would silently drop the other.
            raise ValueError(f"{name}: repeated column name {key!r} (after stripping spaces).")
        cols[key] = values
    return cols


def _frame_column(series):
    """A pandas column as Python values: ints stay ints; missing values (NA, NaT) are None."""
    values = series.tolist()
    missing = series.isna().tolist()
    # A float NaN stays NaN, so that an error message shows the value as it was given.
    return [None if m and not isinstance(v, float) else v for v, m in zip(values, missing)]


def _dict_column(name, c, values):
    # A scalar (or a str, which is iterable letter by letter) is not a column: list("abc")
    # would make three ids of one.
    if (isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable)
            or getattr(values, "ndim", 1) != 1):
        raise ValueError(f"{name}: column {str(c).strip()!r} must be a 1-D list or array of "
                         f"values, one per rating; got {type(values).__name__} "
                         f"{_short(values)}.")
    return list(values)


def _short(value, n=40):
    text = repr(value)
    return text if len(text) <= n else text[:n - 3] + "..."


def _read_text(path):
    """The text of UTF-8 file ``path`` (byte-order marks dropped); ValueError naming bad
    bytes."""
    with open(path, "rb") as f:
        data = f.read()
    # A byte-order mark would otherwise glue onto the first column name.
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        # Files joined end to end (exports concatenated) carry one at each join, unseen
        # in the messages: "missing: img/a.jpg" for a file that exists, a rater
        # "\ufeffb" apart from "b". The character means nothing anywhere else either.
        return data[skip:].decode("utf-8").replace("\ufeff", "")
    except UnicodeDecodeError as exc:
        if data.startswith(b"PK\x03\x04"):
            # a model file (a torch archive) given where the ratings go: the advice to
            # re-save it as UTF-8 would send the user the wrong way
            raise ValueError(f"{path} is a zip archive (a model file, as sklearn-piaa saves "
                             "them?), not a CSV of ratings: were the arguments given in "
                             "another order?") from None
        at = skip + exc.start
        line = data.count(b"\n", 0, at) + 1
        utf16 = " (it looks UTF-16 encoded)" if data[:2] in (codecs.BOM_UTF16_LE,
                                                              codecs.BOM_UTF16_BE) else ""
        raise ValueError(f"{path} is not UTF-8 text{utf16}: byte 0x{data[at]:02x} at byte "
                         f"{at} (line {line}) is not valid UTF-8; re-save it as UTF-8."
                         ) from None


def _swallows_rows(row, names, needed, record):
    """Whether a record whose quoted cell runs over lines may hold swallowed rows.

    Such a cell is accepted only in a column the reader does not use (``needed``; None:
    none is accepted), where the record has the header's field count, its quotes close
    properly (``record``: its lines, read again strictly) and no line inside the cell
    reads as a row of its own: a stray quote would otherwise swallow the rows after it.
    """
    if needed is None or len(row) != len(names):
        return True
    for j, cell in enumerate(row):
        if "\n" in cell or "\r" in cell:
            parts = cell.splitlines()[1:]
            if names[j] in needed or any(
                    len(next(csv.reader([p]), [])) >= len(names) for p in parts):
                return True
    try:
        return len(list(csv.reader(record, strict=True, skipinitialspace=True))) != 1
    except csv.Error:  # e.g. a quote never closed, or closed before other text
        return True


def _frame_hint(path, text, delimiter, skiprows=0, needed=None):
    """" ..., or, in Python, pass read_ratings the table as pandas reads it: ..." for a
    file separated by ``delimiter``, with ``decimal=','`` where a cell looks like a
    decimal comma ("3,5"), ``skiprows`` for Excel's "sep=" line, and the rater and image
    columns (the first two of ``needed``) read as text."""
    options = f"sep={delimiter!r}"
    cell = rf"(^|{re.escape(delimiter)})[ \t]*-?\d+,\d+[ \t]*({re.escape(delimiter)}|\r?$)"
    if delimiter != "," and re.search(cell, text[:65536], re.MULTILINE):
        options += ", decimal=','"
    if skiprows:
        options += f", skiprows={skiprows}"
    if needed is not None:
        # pandas reads ids "007" and "7" both as the number 7 (one rater), and "NA" as
        # missing, where this reader keeps the text
        options += (f", dtype={{{needed[0]!r}: str, {needed[1]!r}: str}}, "
                    "keep_default_na=False")
    # image_root: an in-memory table's images are looked for in the current directory,
    # not beside the file it came from
    folder = os.path.dirname(os.path.abspath(path))
    return (f", or, in Python, pass read_ratings the table as pandas reads it: "
            f"read_ratings(pandas.read_csv({path!r}, {options}), image_root={folder!r})")


def _read_csv(path, needed=None, frame_hint=False):
    """The table in CSV file ``path``; ``needed``: the columns the caller reads, if known.

    A quoted cell running over lines is refused (as the sign of a stray quote) unless
    it lies in a column outside ``needed`` and the record is otherwise sound. A file
    separated otherwise than by commas is refused; with ``frame_hint`` (the caller is
    :func:`read_ratings`, which takes a DataFrame) the message says how pandas reads it.
    """
    if os.path.isdir(path):
        raise _not_a_folder_of_ratings(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ratings file not found: {path}")
    # newline="" keeps line ends for the csv module, which needs them inside quoted cells.
    # skipinitialspace: in 'ann, "my image, v2.jpg", 4' the space before the quote would
    # otherwise make the quote part of the cell and split the name at its comma.
    text, skipped = _read_text(path), 0
    hint = re.match(r"sep=(.?)[ \t]*\r?\n", text)
    if hint:  # Excel's "sep=," line names the delimiter; it is not the header
        if hint.group(1) != ",":
            also = (_frame_hint(path, text[hint.end():], hint.group(1), skiprows=1,
                                needed=needed)
                    if frame_hint and hint.group(1) else "")
            raise ValueError(f"{path} must be comma-separated, but its first line "
                             f"{hint.group(0).strip()!r} declares {hint.group(1)!r}; re-save "
                             f"it with commas between the columns{also}.")
        text, skipped = text[hint.end():], 1
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    header = next((row for row in reader if any(h.strip() for h in row)), None)
    if header is None:
        raise ValueError(f"{path} is empty: expected a header row naming the columns.")
    names = [h.strip() for h in header]
    named = [h for h in names if h]
    if len(named) == 1:
        seen = [d for d in (";", "\t") if d in named[0]]
        if seen:
            also = _frame_hint(path, text, seen[0], needed=needed) if frame_hint else ""
            raise ValueError(f"{path} must be comma-separated, but its header "
                             f"{header[names.index(named[0])]!r} has no comma and is "
                             f"separated by {seen[0]!r}; re-save it with commas between "
                             f"the columns{also}.")
    if len(set(named)) < len(named):
        raise ValueError(f"{path}: repeated column names in the header {names}.")
    # Columns without a name at the end of the header (Excel's "image,score,,") may be
    # left out of a row; they are dropped below where they hold nothing.
    width = max(j for j, h in enumerate(names) if h) + 1
    rows, lines, raw = [], [], None
    while True:
        start = reader.line_num + 1 + skipped  # the record's first line, for messages
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. an unclosed quote swallowing the rest of the file
            raise ValueError(f"{path}, line {start}: {exc}; is a quote (\") left "
                             "unclosed there?") from None
        cells = [c.strip() for c in row]
        while len(cells) > len(names) and not cells[-1]:
            cells.pop()  # a trailing comma is harmless
        if reader.line_num + skipped > start:
            # A quoted cell running over lines: a comment written on several lines, or a
            # stray quote, which would silently swallow the rows after it into one cell.
            if raw is None:  # the lines as the reader saw them
                raw = io.StringIO(text, newline="").readlines()
            record = raw[start - skipped - 1:reader.line_num]
            if _swallows_rows(cells, names, needed, record):
                spans = [j for j, c in enumerate(row) if "\n" in c or "\r" in c] or [0]
                j = next((j for j in spans if j < len(names) and needed is not None
                          and names[j] in needed), spans[0])
                col = names[j] if j < len(names) else f"field {j + 1}"
                raise ValueError(f"{path}, line {start}: the quoted cell in column {col!r} "
                                 f"is not closed on its line but on line "
                                 f"{reader.line_num + skipped}; remove the stray quote "
                                 "(\") or the line breaks inside the cell.")
        if not any(cells):
            continue
        if width <= len(cells) < len(names):
            cells += [""] * (len(names) - len(cells))
        if len(cells) != len(names):
            raise ValueError(f"{path}, line {start}: {len(cells)} "
                             f"field(s) but the header has {len(names)} ({names}).")
        rows.append(cells)
        lines.append(start)
    unnamed = [j for j, h in enumerate(names) if not h]
    # An unnamed column of empty cells carries nothing to lose: what Excel writes for
    # cells once formatted, or a trailing separator on every line.
    full = [j for j in unnamed if any(r[j] for r in rows)]
    if len(full) > 1:
        # one dict key for them all would keep the last and drop the others' data
        i, j = next((i, j) for i, r in enumerate(rows) for j in full if r[j])
        raise ValueError(f"{path}: {len(full)} columns hold data but have no name in the "
                         f"header (columns {', '.join(str(j + 1) for j in full)} of "
                         f"{names}; e.g. line {lines[i]}: {rows[i][j]!r}); name them in "
                         "the header, or delete them.")
    if len(full) == 1 and full[0] > 0:
        # The first is R's row names. Another is data: the decimals of "3,5" below a
        # header ending with a comma ("image,score,") would be dropped, 3.5 read as 3.
        (j,) = full
        i = next(i for i, r in enumerate(rows) if r[j])
        raise ValueError(f"{path}: column {j + 1} holds data but has no name in the "
                         f"header ({names}; e.g. line {lines[i]}: {rows[i][j]!r}); a score "
                         "written with a decimal comma (3,5) is split in two there: write "
                         "3.5 or quote the cell (\"3,5\"). Otherwise name the column in the "
                         "header, or delete it.")
    keep = [j for j in range(len(names)) if j not in unnamed or j in full]
    cols = {names[j]: [r[j] for r in rows] for j in keep}
    return Bunch(cols=cols, name=path, lines=lines, n=len(rows), labels=None,
                 base=os.path.dirname(os.path.abspath(path)))


def _where(t, i):
    if t.lines is not None:
        return f"line {t.lines[i]}"
    if t.labels is not None:
        return f"index {t.labels[i]!r}"
    return f"row {i}"


# -- validating columns --------------------------------------------------------------


#: The parameters that name a ratings table's rater, image and score columns, in
#: Python and on the command line (None: a reader without that option there).
COLUMN_OPTIONS = (("rater_col", "--rater-col"), ("image_col", "--image-col"),
                  ("score_col", "--score-col"))

#: Words of column names that name people: a rater column by another name.
PEOPLE_WORDS = {"user", "worker", "participant", "subject", "person", "annotator", "judge",
                "respondent", "observer", "rater", "viewer", "customer", "author", "uid",
                "pid", "sid", "wid", "userid", "workerid", "raterid"}

#: Words in the names that the rater, image and score columns go by in other tables.
_COLUMN_WORDS = (
    PEOPLE_WORDS,
    {"image", "img", "file", "filename", "path", "filepath", "photo", "picture", "pic",
     "imagename", "imgname", "url", "imagepair"},
    {"score", "rating", "value", "mos", "liking", "grade", "aesthetic", "response", "rate"},
)
#: First words of a count ("n_ratings", "num_images"), not of the column counted.
_COUNT_WORDS = {"n", "num", "number", "count", "nb", "total"}


def _words(column):
    """The lower-case words of a column name: ``userId`` and ``user_id`` are user, id."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(column)).lower()
    return [w for w in re.split(r"[^a-z0-9]+", spaced) if w]


def _likely_column(role, name, unused):
    """The one column of ``unused`` whose name says it holds ``role`` (0: rater, 1:
    image, 2: score) in place of the missing column ``name``, or None."""
    words = _COLUMN_WORDS[role]
    found = [c for c in unused if (w := _words(c)) and w[0] not in _COUNT_WORDS
             and any(x in words or x.rstrip("s") in words for x in w)]
    for closer in (lambda c: c.lower() == name.lower(),  # "Rater" before "user"
                   lambda c: "".join(_words(c)) in words):  # "rating" before "rating_scale"
        if len(found) > 1:
            found = [c for c in found if closer(c)] or found
    return found[0] if len(found) == 1 else None


def _column_hint(t, names, options, as_table=None):
    """" To read 'user' as the rater column, pass rater_col='user' (...)." for the
    columns of ``t`` that likely hold the missing ones of ``names``, or "".

    ``options``: per name, the (Python, command-line) parameters that set it (a
    command-line name of None: Python only), or None where the columns are fixed.
    ``as_table``: where the command line sets the columns only by reading the file
    as a ratings table (a data set's reader), ``(ratings file, image folder)``.
    """
    used = set(names)
    unused = [c for c in t.cols if c not in used]
    missing = [(n, o) for n, o in zip(names, options or ()) if o and n not in t.cols]
    roles = {o[0]: i for i, o in enumerate(COLUMN_OPTIONS)}
    guess = {}
    for name, (param, flag) in missing:
        if param in roles:
            column = _likely_column(roles[param], name, unused)
            if column is not None:
                guess[param, flag] = column
    if not guess and len(missing) == 1 and len(unused) == 1 \
            and (w := _words(unused[0])) and w[0] not in _COUNT_WORDS:
        guess[missing[0][1]] = unused[0]  # the only column left is the likeliest
    if not guess or len(set(guess.values())) < len(guess):  # one column cannot be two
        return ""
    what = " and ".join(f"{column!r} as the {param.split('_')[0]} column"
                        for (param, _), column in guess.items())
    python = ", ".join(f"{param}={column!r}" for (param, _), column in guess.items())
    cli = ""
    if all(flag for _, flag in guess):
        flags = " ".join(f"{flag} {shlex.quote(column)}" for (_, flag), column in guess.items())
        cli = f" ({flags} on the command line)"
        if as_table is not None:
            path, image_root = (shlex.quote(os.fspath(p)) for p in as_table)
            cli = (f" (on the command line, read {path} as a table: DATA {path} with "
                   f"{flags} --image-root {image_root}, without --format)")
    return f" To read {what}, pass {python}{cli}."


def _require(t, names, options=None, as_table=None):
    """Refuse a table ``t`` lacking a column of ``names``, or without rows.

    ``options``: per name, the (Python, command-line) parameters that set the column
    (see :data:`COLUMN_OPTIONS`; a command-line name of None: Python only), so that
    the message can suggest the found column that likely holds a missing one; None
    where the columns are fixed. ``as_table``: see :func:`_column_hint`.
    """
    missing = [c for c in names if c not in t.cols]
    if missing:
        raise ValueError(f"{t.name} lacks column(s) {missing}; found columns {list(t.cols)} "
                         "(names are matched case-sensitively, after stripping spaces)."
                         + _column_hint(t, names, options, as_table)
                         + _data_set_hint(t.cols, t.name if t.lines is not None else None))
    if t.n == 0:
        raise ValueError(f"{t.name} has a header but no ratings.")


def _is_blank(v):
    return v is None or (isinstance(v, numbers.Real) and v != v) or _text(v).strip() == ""


def _text(v):
    """``str(v)``, bytes decoded: an HDF5 file's b"ann" is the "ann" of a CSV file (str()
    wrote "b'ann'", a rater of its own and an image path nobody has)."""
    # bytes that are no UTF-8 are named as written (and match nothing)
    return v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else str(v)


def _ids(t, col):
    vals = t.cols[col]
    blank = [_where(t, i) for i, v in enumerate(vals) if _is_blank(v)]
    if blank:
        raise ValueError(f"{t.name}: column {col!r} is empty at {_first(blank)}.")
    # A whole float is an integer id of a column that held a blank (pandas then stores
    # the column as float): rater 7.0 is the '7' of the same table read from its file.
    return [str(int(v)) if isinstance(v, float) and v.is_integer() else _text(v).strip()
            for v in vals]


def _scores(t, col):
    vals = t.cols[col]
    y = np.empty(len(vals))
    for i, v in enumerate(vals):
        try:
            # float() reads "4_5" as 45 (Python's digit grouping): not a score as written
            y[i] = np.nan if isinstance(v, str) and "_" in v else float(v)
        except (TypeError, ValueError):
            y[i] = np.nan
    # the network trains on float32: 1e39 is finite here and infinite there, where the
    # line it came from is no longer known
    huge = np.abs(y) > np.finfo(np.float32).max
    bad = np.flatnonzero(~np.isfinite(y) | huge)
    if len(bad):
        listed = _first(f"{_where(t, i)} ({vals[i]!r})" for i in bad)
        within = (f" within float32's range (±{np.finfo(np.float32).max:.3g})"
                  if huge.any() else "")
        raise ValueError(f"{t.name}: column {col!r} must hold finite numbers{within}; "
                         f"{len(bad)} value(s) do not: {listed}.")
    return y


def _merge_duplicates(t, raters, paths, y, duplicates):
    pos, code, first = {}, np.empty(len(y), dtype=np.intp), []
    for i, key in enumerate(zip(raters, paths)):
        code[i] = pos.setdefault(key, len(pos))
        if code[i] == len(first):
            first.append(i)
    counts = np.bincount(code)
    if (counts > 1).any():
        dup = np.flatnonzero(counts > 1)
        listed = listing((f"{raters[first[g]]!r} on {os.path.basename(paths[first[g]])!r} at "
                          + "/".join(_where(t, i) for i in np.flatnonzero(code == g))
                          for g in dup[:_SHOWN]), _SHOWN, total=len(dup))
        if duplicates == "error":
            raise ValueError(f"{t.name} rates {len(dup)} (rater, image) pair(s) more than "
                             f"once: {listed}. Pass duplicates='mean' to average them.")
        # Said, not done silently: rating counts then differ from the published ones.
        warn_caller(f"{t.name} rates {len(dup)} (rater, image) pair(s) more than once; "
                    f"their {int(counts[dup].sum())} ratings are averaged into "
                    f"{len(dup)} (duplicates='mean'): {listed}. Reading with "
                    "duplicates='error' (in Python) refuses them.", PIAAWarning)
    return [raters[i] for i in first], [paths[i] for i in first], np.bincount(code, y) / counts


#: Where a reader's images are looked for: the parameter that sets the folder, and the
#: advice of a missing-images error, worded for Python callers and for the command line,
#: which share the readers.
IMAGE_ROOT_HINT = ("image_root", "image_root=; --image-root on the command line")
IMAGE_DIR_HINT = ("image_dir",
                  "image_dir= under the data set's root; --image-root on the command line")


def _as_spelled_on_disk(paths):
    """Each missing path replaced by its other Unicode normal form where that exists.

    "café.jpg" can be spelled with one code point for "é" (NFC, what most editors
    type) or two (NFD, what macOS file names and zips made there use): the same name on
    screen, another to the file system.
    """
    found = {}
    for p in dict.fromkeys(paths):
        if not os.path.isfile(p):
            found[p] = next((q for q in (unicodedata.normalize(f, p) for f in ("NFC", "NFD"))
                             if q != p and os.path.isfile(q)), p)
    return [found.get(p, p) for p in paths]


#: How many missing names, and entries of the image folder, the search for the
#: subfolder that holds the images looks at: a few stat calls, whatever the tree's size.
_SAMPLE, _LISTED = 20, 1000


def _subfolder_holding(root, names):
    """The folder directly under ``root`` where every one of ``names`` (relative) exists,
    or None; looks at the first entries of ``root`` only (see ``_LISTED``)."""
    names = names[:_SAMPLE]
    try:
        with os.scandir(root) as entries:
            folders = [e.path for e in itertools.islice(entries, _LISTED)
                       if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return None
    for folder in sorted(folders):
        if all(os.path.isfile(os.path.join(folder, n)) for n in names):
            return folder
    return None


def _found_here(root, names):
    """Whether every one of ``names`` (relative) exists under the current directory,
    where that is not ``root``; looks at the first few only (see ``_SAMPLE``)."""
    here = os.getcwd()
    if os.path.normcase(os.path.abspath(root)) == os.path.normcase(here):
        return False
    return all(os.path.isfile(os.path.join(here, n)) for n in names[:_SAMPLE])


def _beside_table(t, root):
    """"; ... beside the table there is <folder>" where ``root``, a folder under the
    current directory that does not exist, does exist taken from the table's folder."""
    base, here = t.get("base"), os.getcwd()
    if not base or not os.path.abspath(root).startswith(here + os.sep):
        return ""
    beside = os.path.join(base, os.path.relpath(root, here))
    if os.path.normcase(beside) == os.path.normcase(os.path.abspath(root)) \
            or not os.path.isdir(beside):
        return ""
    return (f"; a relative image folder is taken from the current directory, and beside "
            f"the table there is {beside}: give that path")


def _check_files(t, paths, root, hint=IMAGE_ROOT_HINT, absolute=frozenset()):
    """Refuse missing image ``paths``; ``hint``: see :data:`IMAGE_ROOT_HINT`;
    ``absolute``: those the table gives as absolute paths, which the image folder
    ``root`` does not apply to."""
    param, hint = hint
    unique = list(dict.fromkeys(paths))
    missing = [p for p in unique if not os.path.isfile(p)]
    if not missing:
        return
    under = [p for p in missing if p not in absolute]
    elsewhere = [p for p in missing if p in absolute]
    if len(missing) == len(unique) and not elsewhere and not os.path.isdir(root) \
            and all(p.startswith(root + os.sep) for p in missing):
        # a mistyped folder: one line about it, not every file under it
        raise FileNotFoundError(
            f"the image folder {root} does not exist (none of the {len(unique)} image "
            f"file(s) named in {t.name} can be found). Check the image folder ({hint})"
            f"{_beside_table(t, root)}.")
    shown = [os.path.relpath(p, root) if p.startswith(root + os.sep) else p for p in under]
    # An absolute path is looked for where it points: "missing under <root>" sent the
    # reader to a folder the path has nothing to do with.
    if under and elsewhere:
        where = (f": {len(under)} under {root} ({_first(shown)}) and {len(elsewhere)} at "
                 f"the absolute path(s) the table gives ({_first(elsewhere)})")
    elif under:
        where = f" under {root}: {_first(shown)}"
    else:
        where = f" at the absolute path(s) the table gives: {_first(elsewhere)}"
    message = (f"{len(missing)} of the {len(unique)} image file(s) named in {t.name} are "
               f"missing{where}.{_near_miss(missing[:_SHOWN])}")
    folders = [p for p in missing[:_SAMPLE] if os.path.isdir(p)]
    if folders:  # they exist: "missing" alone sent the reader looking for them
        are = ("is a folder, not an image file: name the image files in it"
               if len(folders) == 1 else
               "are folders, not image files: name the image files in them")
        message += f" Of these, {_first(folders)} {are}."
    relative = [os.path.relpath(p, root) for p in under if p.startswith(root + os.sep)]
    # Only where (nearly) all are missing: a table whose names are relative to a
    # subfolder (images/), read with its own folder as the image folder.
    folder = (_subfolder_holding(root, relative)
              if relative and len(missing) >= 0.9 * len(unique) else None)
    if folder is not None:
        message += (f" The {'missing ' if len(missing) < len(unique) else ''}names are "
                    f"found under {folder}: pass {param}={folder!r} (--image-root "
                    f"{shlex.quote(folder)} on the command line).")
    elif relative and len(missing) >= 0.9 * len(unique) and _found_here(root, relative):
        # Names written as seen from where one runs ("data/imgs/a.jpg" in data/t.csv):
        # the folder to name is the current one, though "missing under" pointed away.
        here = "'.'" if param == "image_root" else repr(os.getcwd())  # image_dir: joined
        message += (f" The {'missing ' if len(missing) < len(unique) else ''}names are "
                    f"found relative to the current directory ({os.getcwd()}): pass "
                    f"{param}={here} (--image-root . on the command line).")
    elif under:
        message += f" Check the image folder ({hint}) and the image names."
    if elsewhere:
        message += (" Check the absolute paths: they are used as they are, not looked "
                    "for under the image folder.")
    if len(missing) < len(unique):
        # not where every image is missing: skipping them all leaves nothing to train on
        message += (" To train without them, read with check_files=False and fit with "
                    "on_error='skip' (--on-error skip for sklearn-piaa meta-train, "
                    "personalize, evaluate and predict).")
    raise FileNotFoundError(message)


#: Extensions tried on a missing image name that has none.
_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def _near_miss(missing):
    """" A file named ... exists: ..." for a missing image whose name is spelled on disk
    with another case, with an extension the table leaves out, or with "/" where the
    table has a Windows "\\"; else "". The names in a table and on disk most often
    differ in one of these ways, and the message would otherwise only say "missing"."""
    listings = {}
    for path in missing:
        folder, name = os.path.split(path)
        tried = [path.replace("\\", "/")] if "\\" in path else []
        if not os.path.splitext(name)[1]:
            tried += [path + ext for ext in _EXTENSIONS]
        found = next((q for q in tried if os.path.isfile(q)), None)
        if found is None and os.path.isdir(folder):
            if folder not in listings:
                try:
                    listings[folder] = {n.lower(): n for n in os.listdir(folder)}
                except OSError:
                    listings[folder] = {}
            other = listings[folder].get(name.lower())
            # not a folder of that name, the path itself maybe
            found = (os.path.join(folder, other)
                     if other and os.path.isfile(os.path.join(folder, other)) else None)
        if found is not None:
            return (f" A file named {os.path.basename(found)!r} exists where the table "
                    f"names {name!r} (in {os.path.dirname(found)}): names are matched "
                    "exactly, case and extension included.")
    return ""


def _check_min_images(t, raters, min_images):
    if isinstance(min_images, bool) or not isinstance(min_images, numbers.Integral):
        raise ValueError(f"min_images must be an integer or None, got {min_images!r}.")
    small = sorted((r, n) for r, n in Counter(raters).items() if n < min_images)
    if small:
        raise ValueError(f"{len(small)} rater(s) in {t.name} have fewer than {min_images} "
                         f"images: {_first(f'{r!r} ({n})' for r, n in small)}.")


def _read(t, cols, image_root, duplicates="mean", check_files=True, min_images=None,
          extra=(), locate=None, hint=IMAGE_ROOT_HINT, options=None, as_table=None):
    """Validated ``(X, y, groups)`` of table ``t``; ``locate`` maps image cells to paths.

    ``hint`` names, in a missing-images error, how the caller sets the image folder
    (:data:`IMAGE_ROOT_HINT`);
    ``options`` and ``as_table``, in a missing-columns error, how it names ``cols``
    (see :func:`_require`).
    """
    if duplicates not in ("mean", "error"):
        raise ValueError(f"duplicates must be 'mean' or 'error', got {duplicates!r}.")
    rater_col, image_col, score_col = cols
    _require(t, [*cols, *extra], options, as_table)
    raters, images, y = _ids(t, rater_col), _ids(t, image_col), _scores(t, score_col)
    if locate is not None:
        images = locate(raters, images, y)
    urls = [f"{_where(t, i)}: {im}" for i, im in enumerate(images) if looks_like_url(im)]
    if urls:  # joined onto the image folder, they were reported missing, mangled
        raise ValueError(f"{t.name}: the image column {image_col!r} holds "
                         f"{len(urls)} URL(s), at {_first(urls)}. {NO_URLS}.")
    root = os.path.abspath(os.path.expanduser(os.fspath(t.base if image_root is None
                                                         else image_root)))
    # join() keeps an absolute image cell as it is; abspath normalises "a/../b" spellings
    # so that they count as duplicates of "b".
    # Once per distinct cell: a rater table names each image once per rater (5-30 times).
    resolved = {im: os.path.abspath(os.path.join(root, im)) for im in dict.fromkeys(images)}
    paths = [resolved[im] for im in images]
    if check_files:
        paths = _as_spelled_on_disk(paths)
    raters, paths, y = _merge_duplicates(t, raters, paths, y, duplicates)
    if check_files:
        absolute = {resolved[im] for im in resolved if os.path.isabs(im)}
        _check_files(t, paths, root, hint, absolute)
    if min_images is not None:
        _check_min_images(t, raters, min_images)
    y32 = y.astype(np.float32)
    warn_if_float32_merges(y, y32, what=f"{t.name}'s scores")
    return paths, y32, np.array(raters, dtype=object)
