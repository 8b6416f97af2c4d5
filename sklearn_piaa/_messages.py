"""Lists of items in messages, worded and shortened the same way everywhere."""

import os
import re

__all__ = ["NO_URLS", "listing", "looks_like_url", "pass_score_range", "row_numbers",
           "score_range_given", "scores_given"]


def listing(items, n=10, sep=", ", total=None):
    """The first ``n`` of ``items`` joined by ``sep``, saying how many there are in all.

    Parameters
    ----------
    items : iterable
        Strings, or anything ``str`` gives a name to.
    n : int, default=10
    sep : str, default=", "
    total : int, default=None
        How many there are in all, where ``items`` holds only the first few (costly to
        describe); None: ``len(items)``.

    Returns
    -------
    str
        E.g. ``"a, b, c, ... (12 in all)"``; a cut list never ends a sentence in
        ``"...."`` nor looks complete.

    Examples
    --------
    >>> listing(["a", "b", "c"], n=2)
    'a, b, ... (3 in all)'
    """
    items = [str(item) for item in items]
    total = len(items) if total is None else total
    more = f"{sep}... ({total} in all)" if total > n else ""
    return sep.join(items[:n]) + more


def scores_given(scores, detail=""):
    """The few scores a collapsed network gives, counted and listed.

    Meta-training's and fine-tuning's collapse warnings name them alike.

    Parameters
    ----------
    scores : sequence of float
        The distinct scores, in order.
    detail : str, default=""
        Appended inside the parentheses, after the scores (e.g. ``", range 1-5"``).

    Returns
    -------
    str
        E.g. ``"two scores (1.000 and 5.000)"``.

    Examples
    --------
    >>> scores_given([3.0])
    'one score (3.000)'
    >>> scores_given([1, 5], ", range 1-5")
    'two scores (1.000 and 5.000, range 1-5)'
    """
    count = {1: "one score", 2: "two scores"}.get(len(scores), f"{len(scores)} scores")
    return f"{count} ({' and '.join(f'{v:.3f}' for v in scores)}{detail})"


def pass_score_range(of="of that scale"):
    """Advice to give the rating scale, spelled for Python and for the command line.

    Parameters
    ----------
    of : str, default="of that scale"
        Whose scale, after ``score_range=(low, high)``.

    Returns
    -------
    str
        A clause without a final period.

    Examples
    --------
    >>> pass_score_range("of theirs")
    'pass score_range=(low, high) of theirs (--score-range LOW,HIGH on the command line)'
    """
    # The command line's users meet the same messages as Python's (the estimators raise
    # and warn them): a Python spelling alone left them to guess the option.
    return f"pass score_range=(low, high) {of} (--score-range LOW,HIGH on the command line)"


def score_range_given(low, high):
    """A given ``score_range`` as Python and the command line spell it.

    Parameters
    ----------
    low, high : float

    Returns
    -------
    str

    Examples
    --------
    >>> score_range_given(0.0, 100.0)
    'score_range=(0, 100) (--score-range 0,100 on the command line)'
    """
    return f"score_range=({low:g}, {high:g}) (--score-range {low:g},{high:g} on the command line)"


def row_numbers(rows, of="", n=5):
    """Rows of an array named as positions that count from 0.

    A bare "row 7" reads as a line of the user's CSV file (whose reader's own errors
    count lines from 1, header included), where it meant ``X[7]``.

    Parameters
    ----------
    rows : iterable of int
        0-based positions.
    of : str, default=""
        The array they are rows of (e.g. ``"X"``), if the message has not named it.
    n : int, default=5
        How many to list (see :func:`listing`).

    Returns
    -------
    str

    Examples
    --------
    >>> row_numbers([7], of="X")
    'row 7 of X, counting from 0'
    >>> row_numbers(range(8), n=2)
    'rows 0, 1, ... (8 in all), counting from 0'
    """
    rows = [int(i) for i in rows]
    word = "row" if len(rows) == 1 else "rows"
    return f"{word} {listing(rows, n)}{f' of {of}' if of else ''}, counting from 0"


#: What a URL given as an image path is told.
NO_URLS = "URLs are not supported: download the images and give their local paths"

# A scheme of two letters or more: "C://photos" is a Windows drive.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")


def looks_like_url(path):
    """Whether an image path is a URL (``scheme://...``), which no reader opens.

    Joined onto a folder, ``https://example.com/a.jpg`` became
    ``<folder>/https:/example.com/a.jpg``, reported missing.

    Parameters
    ----------
    path : str, bytes or path-like

    Returns
    -------
    bool

    Examples
    --------
    >>> looks_like_url("https://example.com/a.jpg"), looks_like_url("photos/a.jpg")
    (True, False)
    """
    try:
        path = path if isinstance(path, str) else os.fsdecode(path)
    except TypeError:
        return False
    return _URL.match(path) is not None
