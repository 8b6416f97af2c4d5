"""Lists of offending items in messages, shortened the same way everywhere."""

__all__ = ["listing"]


def listing(items, n=10, sep=", "):
    """The first ``n`` of ``items`` joined by ``sep``, saying how many there are in all.

    Parameters
    ----------
    items : iterable
        Strings, or anything ``str`` gives a name to.
    n : int, default=10
    sep : str, default=", "

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
    more = f"{sep}... ({len(items)} in all)" if len(items) > n else ""
    return sep.join(items[:n]) + more
