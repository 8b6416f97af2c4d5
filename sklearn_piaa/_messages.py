"""Lists of offending items in messages, shortened the same way everywhere."""

__all__ = ["listing"]


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
