"""Files that must never be left half-written: atomic writes and space checks."""

import os
import shutil
import tempfile

__all__ = ["atomic_write", "check_writable_dir"]


def atomic_write(path, write, fsync=True):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over.

    A crash or kill at any moment leaves either the old file or the new one, never a
    truncated one: the rename is atomic on POSIX and Windows file systems.

    Parameters
    ----------
    path : str or path-like
    write : callable
        Receives a binary file object open for writing.
    fsync : bool, default=True
        Flush the data to disk before the rename (survives a power cut, not only a
        killed process); off for many small cache files, where it would dominate.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: no stray temporary files are left behind.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def check_writable_dir(path, needed_bytes=0, what="directory"):
    """Create ``path`` if needed and fail early if it is not writable or too small.

    Parameters
    ----------
    path : str or path-like
    needed_bytes : int, default=0
        Free space required, checked with :func:`shutil.disk_usage`.
    what : str, default="directory"
        How the error message names the directory (e.g. ``"cache_dir"``).
    """
    path = os.fspath(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{what} {path!r} cannot be created: {exc.strerror or exc}.") from None
    if not os.path.isdir(path):
        raise ValueError(f"{what} {path!r} exists and is not a directory.")
    # os.access says yes to root on read-only mounts: probe with a real file.
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ValueError(f"{what} {path!r} is not writable: {exc.strerror or exc}.") from None
    if needed_bytes:
        free = shutil.disk_usage(path).free
        if free < needed_bytes:
            raise ValueError(
                f"{what} {path!r} has {free / 2**20:.1f} MiB free but about "
                f"{needed_bytes / 2**20:.1f} MiB are needed.")
