"""Lists of items in messages, worded and shortened the same way everywhere."""

__all__ = ["listing", "scores_given"]


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
