"""Loading and validating a long ratings table: columns, scores, duplicates, files.

Shared by every reader in :mod:`sklearn_piaa.datasets.readers`; each check names the
file, column, rows and raters at fault.
"""

import csv
import numbers
import os
from collections import Counter
from collections.abc import Mapping

import numpy as np
from sklearn.utils import Bunch

_SHOWN = 5  # how many offending rows, files or raters an error message lists


def _first(items, n=_SHOWN):
    items = list(items)
    more = f", ... ({len(items)} in all)" if len(items) > n else ""
    return ", ".join(map(str, items[:n])) + more


# -- loading a table -----------------------------------------------------------------


def _load_table(table):
    """Columns (name -> list, copied), a name for messages, CSV line numbers and a base dir."""
    if isinstance(table, (str, os.PathLike)):
        return _read_csv(os.fspath(table))
    if hasattr(table, "columns") and hasattr(table, "to_numpy"):  # a pandas DataFrame
        values = np.asarray(table.to_numpy(), dtype=object)
        cols = {str(c).strip(): values[:, j].tolist() for j, c in enumerate(table.columns)}
        name = "the DataFrame"
    elif isinstance(table, Mapping):
        cols = {str(c).strip(): list(v) for c, v in table.items()}
        lengths = {c: len(v) for c, v in cols.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"the columns of the dict table differ in length: {lengths}.")
        name = "the dict table"
    else:
        raise TypeError("table must be a CSV path, a pandas DataFrame or a dict of columns; "
                        f"got {type(table).__name__}.")
    n = len(next(iter(cols.values()), []))
    return Bunch(cols=cols, name=name, lines=None, n=n, base=os.getcwd())


def _read_csv(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ratings file not found: {path}")
    # utf-8-sig drops a byte-order mark, which would otherwise glue onto the first name.
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise ValueError(f"{path} is empty: expected a header row naming the columns.")
        names = [h.strip() for h in header]
        if len(set(names)) < len(names):
            raise ValueError(f"{path}: repeated column names in the header {names}.")
        rows, lines = [], []
        for row in reader:
            cells = [c.strip() for c in row]
            while len(cells) > len(names) and not cells[-1]:
                cells.pop()  # a trailing comma is harmless
            if not any(cells):
                continue
            if len(cells) != len(names):
                raise ValueError(f"{path}, line {reader.line_num}: {len(cells)} field(s) but "
                                 f"the header has {len(names)} ({names}).")
            rows.append(cells)
            lines.append(reader.line_num)
    cols = {c: [r[j] for r in rows] for j, c in enumerate(names)}
    return Bunch(cols=cols, name=path, lines=lines, n=len(rows),
                 base=os.path.dirname(os.path.abspath(path)))


def _where(t, i):
    return f"line {t.lines[i]}" if t.lines is not None else f"row {i}"


# -- validating columns --------------------------------------------------------------


def _require(t, names):
    missing = [c for c in names if c not in t.cols]
    if missing:
        raise ValueError(f"{t.name} lacks column(s) {missing}; found columns {list(t.cols)} "
                         "(names are matched case-sensitively, after stripping spaces).")
    if t.n == 0:
        raise ValueError(f"{t.name} has a header but no ratings.")


def _is_blank(v):
    return v is None or (isinstance(v, numbers.Real) and v != v) or str(v).strip() == ""


def _ids(t, col):
    vals = t.cols[col]
    blank = [_where(t, i) for i, v in enumerate(vals) if _is_blank(v)]
    if blank:
        raise ValueError(f"{t.name}: column {col!r} is empty at {_first(blank)}.")
    return [str(v).strip() for v in vals]


def _scores(t, col):
    vals = t.cols[col]
    y = np.empty(len(vals))
    for i, v in enumerate(vals):
        try:
            y[i] = float(v)
        except (TypeError, ValueError):
            y[i] = np.nan
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        listed = _first(f"{_where(t, i)} ({vals[i]!r})" for i in bad)
        raise ValueError(f"{t.name}: column {col!r} must hold finite numbers; {len(bad)} "
                         f"value(s) do not: {listed}.")
    return y


def _merge_duplicates(t, raters, paths, y, duplicates):
    pos, code, first = {}, np.empty(len(y), dtype=np.intp), []
    for i, key in enumerate(zip(raters, paths)):
        code[i] = pos.setdefault(key, len(pos))
        if code[i] == len(first):
            first.append(i)
    counts = np.bincount(code)
    if duplicates == "error" and (counts > 1).any():
        dup = np.flatnonzero(counts > 1)
        listed = _first(
            f"{raters[first[g]]!r} on {os.path.basename(paths[first[g]])!r} at "
            + "/".join(_where(t, i) for i in np.flatnonzero(code == g))
            for g in dup[:_SHOWN]
        )
        raise ValueError(f"{t.name} rates {len(dup)} (rater, image) pair(s) more than once: "
                         f"{listed}{' ...' if len(dup) > _SHOWN else ''}. Pass "
                         "duplicates='mean' to average them.")
    return [raters[i] for i in first], [paths[i] for i in first], np.bincount(code, y) / counts


def _check_files(t, paths, root):
    unique = list(dict.fromkeys(paths))
    missing = [p for p in unique if not os.path.isfile(p)]
    if missing:
        shown = [os.path.relpath(p, root) if p.startswith(root + os.sep) else p for p in missing]
        raise FileNotFoundError(
            f"{len(missing)} of the {len(unique)} image file(s) named in {t.name} are missing "
            f"under {root}: {_first(shown)}. Check the image folder, or pass check_files=False."
        )


def _check_min_images(t, raters, min_images):
    if isinstance(min_images, bool) or not isinstance(min_images, numbers.Integral):
        raise ValueError(f"min_images must be an integer or None, got {min_images!r}.")
    small = sorted((r, n) for r, n in Counter(raters).items() if n < min_images)
    if small:
        raise ValueError(f"{len(small)} rater(s) in {t.name} have fewer than {min_images} "
                         f"images: {_first(f'{r!r} ({n})' for r, n in small)}.")


def _read(t, cols, image_root, duplicates="mean", check_files=True, min_images=None,
          extra=(), locate=None):
    """Validated ``(X, y, groups)`` of table ``t``; ``locate`` maps image cells to paths."""
    if duplicates not in ("mean", "error"):
        raise ValueError(f"duplicates must be 'mean' or 'error', got {duplicates!r}.")
    rater_col, image_col, score_col = cols
    _require(t, [*cols, *extra])
    raters, images, y = _ids(t, rater_col), _ids(t, image_col), _scores(t, score_col)
    if locate is not None:
        images = locate(raters, images, y)
    root = os.path.abspath(os.path.expanduser(os.fspath(t.base if image_root is None
                                                         else image_root)))
    # join() keeps an absolute image cell as it is; abspath normalises "a/../b" spellings
    # so that they count as duplicates of "b".
    paths = [os.path.abspath(os.path.join(root, im)) for im in images]
    raters, paths, y = _merge_duplicates(t, raters, paths, y, duplicates)
    if check_files:
        _check_files(t, paths, root)
    if min_images is not None:
        _check_min_images(t, raters, min_images)
    return paths, y.astype(np.float32), np.array(raters, dtype=object)
