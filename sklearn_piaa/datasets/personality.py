"""Raters' Big-Five personality tables, for :class:`~sklearn_piaa.PAIAARegressor`."""

import os

import numpy as np

from .._tasks import _id_text
from ._table import _first, _load_table

__all__ = ["read_personality"]


def read_personality(path, raters, rater_col="rater", image_col="image", ratings=None,
                     trait_cols=None):
    """Rater id -> Big-Five traits, read from a CSV for :class:`~sklearn_piaa.PAIAARegressor`.

    Parameters
    ----------
    path : str or path-like
        A CSV with a header: the rater id column and five trait columns (any names,
        e.g. openness, conscientiousness, extraversion, agreeableness, neuroticism),
        each a number in [-1, 1]; one row per rater. Other columns are allowed where
        ``trait_cols`` names the traits, or where exactly five column names start with
        "personality".
    raters : iterable
        The raters that need traits (every rater of the ratings). Rows of other raters
        are checked as well and kept in the returned mapping.
    rater_col, image_col : str, default="rater", "image"
        The id column; ``image_col`` only serves to recognize an image -> traits table.
    ratings : str, default=None
        Name of the ratings file, for messages.
    trait_cols : sequence of 5 str, default=None
        The trait columns, in the order the model takes them. None: every column
        besides ``rater_col`` where there are five; else the five columns whose names
        start with "personality" (any case), in file order, where there are exactly
        five. The latter reads PARA's ``PARA-UserInfo.csv`` (``userId``, age, gender,
        ..., then its ``personality-*`` columns; pass ``rater_col="userId"``); its
        values must still lie in [-1, 1], so a file on another scale is refused, naming
        the first value outside, until rescaled.

    Returns
    -------
    dict
        Rater id -> ndarray of shape (5,): the ids of ``raters`` as given (rater ``7``
        matches the file's ``7``), and the file's other raters as text.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an existing file.
    ValueError
        With a message naming the file, line, column or raters at fault.

    See Also
    --------
    sklearn_piaa.PAIAARegressor : takes the table as ``personality``.
    """
    if isinstance(raters, (str, bytes)):
        raise ValueError(f"raters must be a list of rater ids; got the string {raters!r}, "
                         f"which would be read as its characters: give [{raters!r}].")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"personality file not found: {path}")
    t = _load_table(path)
    names = list(t.cols)
    if rater_col not in t.cols:
        if image_col in t.cols:
            raise ValueError(
                f"{path} has an {image_col!r} column: an image -> traits table (the "
                f"PsychoFlickr layout). PA_IAA here learns from each rater's own traits: "
                f"give a {rater_col!r} column and five trait columns (e.g. PARA's "
                "PARA-UserInfo.csv, rescaled to [-1, 1]).")
        raise ValueError(f"{path} has no {rater_col!r} column (columns: {names}): a "
                         "personality file holds a rater id column (--rater-col) and five "
                         "trait columns.")
    traits = _trait_columns(path, names, rater_col, trait_cols)
    table, by_text = {}, {}
    for i, rater in enumerate(t.cols[rater_col]):
        where = f"{path}, line {t.lines[i]}"
        if not str(rater).strip():  # else kept under the id "", which no rater has
            raise ValueError(f"{where}: the {rater_col!r} cell is empty; give the rater's id "
                             "or remove the row.")
        text = _id_text(rater)
        if text in by_text:  # "José" in two Unicode forms too
            raise ValueError(f"{where}: rater {rater!r} appears a second time.")
        by_text[text] = rater
        values = []
        for c in traits:
            cell = t.cols[c][i]
            try:  # "0_1" is no number, though Python reads it as 1 (digit grouping)
                v = np.nan if "_" in str(cell) else float(cell)
            except ValueError:
                v = np.nan
            if not -1 <= v <= 1:  # also false for NaN
                raise ValueError(f"{where}: {c!r} is {cell!r}; traits must be numbers "
                                 "in [-1, 1] (rescale e.g. 1-5 scores as (t - 3) / 2).")
            values.append(v)
        table[rater] = np.array(values)
    # The file's ids are text; the caller's may be numbers (rater 7 and 7.0 are the
    # file's '7'), bytes or another Unicode form, matched as the readers match them.
    raters = sorted({r.item() if isinstance(r, np.generic) else r for r in raters}, key=str)
    missing = [r for r in raters if _id_text(r) not in by_text]
    if missing:
        source = ratings or "the ratings"
        hint = "" if len(missing) < len(raters) else (
            f" None of its ids ({_first(table) or 'none'}) is a rater of {source}: is "
            f"{rater_col!r} the id column, and are the ids written alike?")
        raise ValueError(f"{path} has no traits for {len(missing)} rater(s) of {source}: "
                         f"{_first(missing)}.{hint}")
    # under the caller's ids, as the ratings' groups name them
    matched = {r: table[by_text[_id_text(r)]] for r in raters}
    used = {by_text[_id_text(r)] for r in raters}
    return {**{k: v for k, v in table.items() if k not in used}, **matched}


def _trait_columns(path, names, rater_col, trait_cols):
    """The five trait columns of a file with columns ``names`` (see read_personality)."""
    if trait_cols is not None:
        if isinstance(trait_cols, str):
            raise ValueError(f"trait_cols must be a list of five column names; got the "
                             f"string {trait_cols!r}.")
        traits = [str(c).strip() for c in trait_cols]
        missing = [c for c in traits if c not in names]
        if missing:
            raise ValueError(f"{path} lacks the trait column(s) {missing} of trait_cols; "
                             f"its columns: {names}.")
        if len(traits) != 5 or len(set(traits)) != 5 or rater_col in traits:
            raise ValueError(f"trait_cols must name five distinct columns besides "
                             f"{rater_col!r}, one per Big-Five trait; got {traits}.")
        return traits
    traits = [c for c in names if c != rater_col]
    if len(traits) == 5:
        return traits
    # PARA's PARA-UserInfo.csv: user columns (age, gender, ...), then personality-* ones
    named = [c for c in traits if c.lower().startswith("personality")]
    if len(named) == 5:
        return named
    raise ValueError(f"{path} has {len(traits)} column(s) besides {rater_col!r} "
                     f"({traits}); PA_IAA needs the five Big-Five traits, one column "
                     "each: name them with trait_cols (the command line's --trait-cols), or "
                     "keep only the five.")
