"""Files that must never be left half-written: atomic writes and space checks."""

import errno
import os
import re
import shutil
import stat
import struct
import tempfile
import time
import zipfile

__all__ = ["atomic_write", "write_and_rename", "check_writable_dir", "check_output_file",
           "folder_path"]

# At import, for systems without /proc: os.umask can only be read by setting it,
# which is not thread-safe.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _umask():
    """The process's umask now (a program may set it after importing this package)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK


def atomic_write(path, write, fsync=True):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over.

    A crash or kill at any moment leaves either the old file or the new one, never a
    truncated one: the rename is atomic on POSIX and Windows file systems. The
    temporary file of an earlier write of ``path`` killed before its rename
    (``<name>.piaa-<random>.tmp``, an hour old or more) is removed.

    Parameters
    ----------
    path : str or path-like
    write : callable
        Receives a binary file object open for writing.
    fsync : bool, default=True
        Flush the data to disk before the rename (survives a power cut, not only a
        killed process); off for many small cache files, where it would dominate.

    Raises
    ------
    OSError
        For an unusable ``path`` (a directory, a missing or read-only folder, a
        read-only file), or a write that failed, naming ``path`` (a full disk:
        ``errno.ENOSPC``, also where torch's writer said so as a ``RuntimeError``).
    """
    path = os.fspath(path)
    problem = _not_a_file_name(path)
    if problem:  # else the temporary file goes beside the folder, and the rename fails
        error = FileNotFoundError if not path else IsADirectoryError
        raise error(f"{path!r} {problem}; give a file name to write.")
    if os.path.islink(path):
        # Through the link, as a shell's ">" writes: renaming over the link itself would
        # put a plain file in its place and leave the file it points to as it was.
        path = os.path.realpath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a directory; give a file name to write.")
    if not os.path.isdir(directory):  # else mkstemp names a temporary file the user never gave
        if os.path.exists(directory):  # "does not exist" of a path that does misled
            raise NotADirectoryError(f"the folder of {path!r}, {directory!r}, is a file, "
                                     "not a folder.")
        raise FileNotFoundError(f"the folder of {path!r} does not exist: {directory!r}.")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        # The rename would replace a file its owner made read-only, as ">" would not.
        raise PermissionError(f"{path!r} is read-only; make it writable or choose another "
                              "name.")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)  # an overwritten file keeps its mode
    except OSError:
        mode = 0o666 & ~_umask()  # a new file gets what open() would give it
    # A write of this file killed before its rename (kill -9, a power cut) left its
    # temporary file, as large as the file, for good: nothing else removes it.
    # The marker: only the package's own leftovers are removed, not a user's
    # "scores.csv.20240101.tmp" of the same shape.
    prefix = os.path.basename(path) + TEMP_MARKER
    remove_unfinished_writes(directory, prefix, older_than=STALE_WRITE_SECONDS, exact=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    except PermissionError:  # its message names a temporary file the user never gave
        raise PermissionError(f"cannot write {path!r}: its folder {directory!r} is not "
                              "writable; make it writable or choose another folder."
                              ) from None
    except OSError as exc:  # the same, for a folder that takes no new files (/proc)
        raise type(exc)(exc.errno, f"cannot write {path!r} in its folder {directory!r}: "
                        f"{exc.strerror or exc}") from None
    # mkstemp made it private (0600)
    write_and_rename(fd, tmp, path, write, fsync=fsync, mode=mode, explain=True)


def write_and_rename(fd, tmp, path, write, fsync=False, mode=None, explain=False):
    """Call ``write(fileobj)`` on the open temporary file ``tmp`` (descriptor ``fd``),
    then rename it over ``path``; on any failure, Ctrl-C included, remove ``tmp``.

    Parameters
    ----------
    fd : int
        The temporary file's open descriptor (closed here).
    tmp, path : str
    write : callable
        Receives a binary file object open for writing.
    fsync : bool, default=False
        Flush the data to disk before the rename.
    mode : int, default=None
        Permissions to give the file before the rename; None keeps those it was made
        with.
    explain : bool, default=False
        A failed write (a full disk) raises an :class:`OSError` naming ``path`` (see
        :func:`_write_failed`) rather than the file object's or torch's own error.
    """
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        # Judged before the temporary file goes: its bytes are what filled the disk.
        failed = _write_failed(exc, path) if explain else None
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if failed is not None:
            raise failed from exc
        raise


#: Errors of a write that found no room: a full disk, or the user's quota spent.
_NO_ROOM = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}

#: Free bytes below which a write that failed without saying why is put down to a full
#: disk: a write that fills the disk leaves less than a block or so.
_FULL_BELOW = 1 << 20


def _write_failed(exc, path):
    """The :class:`OSError` to raise for ``exc``, raised while writing ``path``, or None
    to raise ``exc`` itself.

    The file object's own error names no file ("[Errno 28] No space left on device"),
    and torch's archive writer turns it into a ``RuntimeError`` ("[enforce fail at
    inline_container.cc:672] . unexpected pos 7232 vs 7152"), which callers catching
    OSError miss. Its ``errno`` is the file object's (``errno.ENOSPC`` for a full
    disk), else ``ENOSPC`` where the folder's free space shows the disk full, else None.
    """
    if isinstance(exc, RuntimeError) and "inline_container" in str(exc):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError) and cause.errno is not None:
            exc = cause
        elif _disk_full(path):
            return _failed(path, errno.ENOSPC, os.strerror(errno.ENOSPC).lower())
        else:
            # not the disk, that we can tell: torch's own words are all there is
            return _failed(path, None, str(exc).strip())
    if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
        return _failed(path, exc.errno, (exc.strerror or os.strerror(exc.errno)).lower())
    return None


def _disk_full(path):
    """Whether the folder of ``path`` has (next to) no free space."""
    try:
        return shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free < _FULL_BELOW
    except OSError:
        return False


def _failed(path, code, why):
    """"writing PATH failed: WHY ..." as an OSError of errno ``code``."""
    room = code in _NO_ROOM
    failed = OSError(f"writing {path!r} failed" + (f": {why}" if why else "")
                     + (" (disk full?)" if room else "") + "; nothing was written"
                     + (": free some space or choose another folder." if room else "."))
    # Set after: given to the constructor (with a strerror) it would put "[Errno 28]"
    # before the message.
    failed.errno = code
    return failed


def damaged_part(path):
    """How the first damaged part of the zip archive ``path`` is damaged, or None.

    ``torch.load`` does not check the CRC-32 that ``torch.save`` writes for each part
    of its archive: a flipped bit in a weight loads as a wrong number (an infinite
    score, say).

    Parameters
    ----------
    path : str or path-like
        A zip archive (a torch file).

    Returns
    -------
    str or None
        A phrase naming the part by its full record name, e.g. "its part
        archive/data/3 fails its checksum"; None when every part checks out.
    """
    try:
        archive = zipfile.ZipFile(path)
    except Exception as exc:  # a directory too damaged to list the parts
        return f"its list of parts cannot be read ({type(exc).__name__}: {exc})"
    with archive:
        for info in archive.infolist():
            if info.CRC == 0:
                # written without checksums (torch.utils.serialization.config.save.
                # compute_crc32 = False): nothing to check against
                continue
            try:
                with archive.open(info) as fh:
                    while fh.read(1 << 20):
                        pass
            except Exception as exc:  # zipfile.BadZipFile: "Bad CRC-32", a broken header
                return _damage(path, info, exc)
    return None


def _damage(path, info, exc):
    """What :func:`damaged_part` says of the part ``info`` that raised ``exc``."""
    # orig_filename: zipfile cuts a name at a NUL byte (a zeroed block of a bad disk
    # made "archive/data/3" the "archive/dat" of the message)
    name = _shown(info.orig_filename)
    if "Bad CRC-32" in str(exc):
        return f"its part {name} fails its checksum"
    header = _header_name(path, info)
    if header is not None and header != info.orig_filename:
        # which of the two is damaged cannot be told: both are named in full
        return (f"its part's name differs between the archive's list of parts ({name}) "
                f"and the part's own header ({_shown(header)})")
    return f"its part {name} cannot be read ({type(exc).__name__}: {exc})"


def _shown(name):
    """``name`` as it is, or as Python writes it where it holds unprintable characters."""
    return name if name.isprintable() else repr(name)


def _header_name(path, info):
    """The name of the part ``info`` as its own header (not the archive's list) gives
    it, or None where that header cannot be read."""
    try:
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            header = fh.read(30)
            if len(header) < 30 or header[:4] != b"PK\x03\x04":
                return None
            flags, = struct.unpack("<H", header[6:8])
            length, = struct.unpack("<H", header[26:28])
            raw = fh.read(length)
    except OSError:
        return None
    return raw.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")


#: A temporary file older than this (seconds) is a write that never finished; a younger
#: one may be another process's write in progress (a checkpoint or cache entry shared
#: by parallel runs), which removing it would crash.
STALE_WRITE_SECONDS = 3600


#: Between a file's name and the random part of :func:`atomic_write`'s temporary files.
TEMP_MARKER = ".piaa-"

#: The random part :func:`tempfile.mkstemp` puts in a name: 8 of these characters.
_MKSTEMP_RANDOM = re.compile(r"[a-z0-9_]{8}")


def remove_unfinished_writes(folder, name="", older_than=0.0, exact=False):
    """Remove the temporary files :func:`atomic_write` left in ``folder`` when killed.

    A process killed between writing and renaming leaves ``<name><random>.tmp``
    (:func:`atomic_write`: ``<file>.piaa-<random>.tmp``).

    Parameters
    ----------
    folder : str or path-like
    name : str, default=""
        Only those of writes of files whose names start with it.
    older_than : float, default=0.0
        Only those last modified more than this many seconds ago (younger ones may be
        another process's writes in progress).
    exact : bool, default=False
        Only ``<name><random>.tmp`` with :func:`tempfile.mkstemp`'s random part, as a
        plain file of the mode it makes (0600), which :func:`atomic_write` changes only
        just before the rename: for a user's folder, where other files whose names
        start with ``name`` and end in ".tmp" are not the package's to remove.
    """
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not (entry.name.startswith(name) and entry.name.endswith(".tmp")):
            continue
        try:
            if exact and not (_MKSTEMP_RANDOM.fullmatch(entry.name[len(name):-len(".tmp")])
                              and entry.is_file(follow_symlinks=False)
                              and (os.name == "nt"
                                   or stat.S_IMODE(entry.stat().st_mode) == 0o600)):
                continue
            if now - entry.stat().st_mtime > older_than:
                os.unlink(entry.path)
        except OSError:
            pass  # gone already, or not ours to remove: harmless either way


def folder_path(path):
    """A folder parameter (``cache_dir``, ``checkpoint_dir``) as an absolute path.

    ``~`` is the user's home, as in the readers' ``image_root``: taken literally it
    made a folder named ``~`` in the working directory (the shell leaves a ``~`` after
    ``--cache-dir=`` alone), one ``rm -rf ~`` away from the home folder. Absolute: a
    later ``os.chdir`` (or a model used from another folder) must not start a new
    folder beside the working directory.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str
        A bytes path decoded as the file system does (``os.fsdecode``).
    """
    return os.fsdecode(os.path.abspath(os.path.expanduser(os.fspath(path))))


def check_writable_dir(path, needed_bytes=0, what="directory", name=None):
    """Create ``path`` if needed and fail early if it is not writable or too small.

    Parameters
    ----------
    path : str or path-like
    needed_bytes : int, default=0
        Free space required, checked with :func:`shutil.disk_usage`.
    what : str, default="directory"
        How the error message names the directory (e.g. ``"cache_dir"``).
    name : str, default=None
        The whole name the error message starts with, where ``what`` and ``path`` do
        not say it (a subfolder the user never gave); by default ``what`` and ``path``.
    """
    path = os.fspath(path)
    name = f"{what} {path!r}" if name is None else name
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{name} exists and is not a directory.")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        why = exc.strerror or exc
        if isinstance(exc, NotADirectoryError):  # "Not a directory": which of the folders
            blocking = _file_on_the_way(path)
            if blocking:
                why = f"{blocking!r} is a file, not a folder"
        raise ValueError(f"{name} cannot be created: {why}.") from None
    if not os.path.isdir(path):
        raise ValueError(f"{name} exists and is not a directory.")
    _probe_writable(path, name)
    if needed_bytes:
        free = shutil.disk_usage(path).free
        if free < needed_bytes:
            raise ValueError(f"{name} has {_size(free)} free but about "
                             f"{_size(needed_bytes)} are needed.")


def _file_on_the_way(path):
    """The deepest existing ancestor of ``path`` that is not a folder, or None."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            return None
        parent = up
    return parent if parent and not os.path.isdir(parent) else None


def _size(n_bytes):
    """``n_bytes`` in words: "0 bytes", "12 kB", "3.5 MiB", "1.2 GiB"."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} bytes"


def check_output_file(path, inputs=(), what="output file"):
    """Fail early, naming the problem, if ``path`` cannot take a new file.

    For commands that compute for long before they write: a directory, a missing or
    read-only folder, or one of the command's own ``inputs`` (which the write would
    replace) is refused before any work is done.

    Parameters
    ----------
    path : str or path-like
    inputs : sequence of str or path-like, default=()
        Files the command reads.
    what : str, default="output file"
        How the error message names ``path``.
    """
    path = os.fspath(path)
    problem = _not_a_file_name(path)
    if problem:
        raise ValueError(f"{what} {path!r} {problem}; give a file name.")
    if os.path.isdir(path):
        raise ValueError(f"{what} {path!r} is a directory; give a file name.")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{what} {path!r} is read-only; make it writable or choose "
                         "another name.")
    try:
        target = os.stat(path)
    except OSError:
        target = None  # a new file replaces no input
    for src in inputs if target is not None else ():
        try:
            same = os.path.samestat(target, os.stat(src))
        except OSError:
            continue
        if same:
            raise ValueError(f"{what} {path!r} is the input file {os.fspath(src)!r}; writing "
                             "it would replace it. Choose another name.")
    # a link is written through (atomic_write): the folder that matters is its target's
    folder = os.path.dirname(os.path.realpath(path) if os.path.islink(path)
                             else os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{what} {path!r}: folder {folder!r} does not exist.")
    _probe_writable(folder, f"{what} {path!r}: folder {folder!r}")


def _not_a_file_name(path):
    """Why ``path`` cannot name a file, said after it ("is empty"), or ``""``."""
    if not path:
        return "is empty"
    if path.endswith((os.sep, os.altsep or os.sep)):
        return f"ends with {path[-1]!r}, as a folder's name does"
    return ""


def _probe_writable(folder, name):
    """Raise a ValueError starting with ``name`` unless a file can be created in ``folder``."""
    # os.access says yes to root on read-only mounts: probe with a real file.
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"{name} is not writable: {exc.strerror or exc}.") from None
