"""What the command line's subcommands share: printing, finding image files.

The parser reads its choices and defaults from here, so this module imports nothing
heavy at its top: the readers (numpy, scikit-learn) and Pillow are imported by the
functions that use them, and ``--help`` does not wait for them.
"""

import ctypes
import functools
import inspect
import os
import sys

from ._messages import NO_URLS, listing, looks_like_url

__all__ = ["image_extensions", "TABLE_DEFAULTS", "READERS", "printer", "plural",
           "image_files", "given_table_options", "read_data", "keep_freed_memory"]


@functools.cache
def image_extensions():
    """File extensions (lower case) that a folder search picks up.

    Those of the photo formats this Pillow opens (some need optional plugins). Curated
    rather than all of Pillow's: a folder may hold .h5 or .mpg files that Pillow's
    scientific and video plugins claim but that are not photos.
    """
    from PIL import Image

    candidates = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib",
                  ".gif", ".tif", ".tiff", ".webp", ".avif", ".heic", ".heif", ".jp2",
                  ".j2k", ".jpf", ".jpx", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".qoi",
                  ".psd")
    Image.init()
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return tuple(ext for ext in candidates if ext in readable)


#: ``--format`` choices: how a data argument is read (a CSV, or a data set's folder by
#: the reader of :mod:`sklearn_piaa.datasets` named here).
READERS = {"table": None, "flickr-aes": "read_flickr_aes", "para": "read_para",
           "real-cur": "read_real_cur", "aadb": "read_aadb"}

#: Defaults of the options that describe a ratings CSV (``--image-root``, ``--rater-col``,
#: ...). Where no CSV is read, a value other than these would be silently ignored.
TABLE_DEFAULTS = {"image_root": None, "rater_col": "rater", "image_col": "image",
                  "score_col": "score"}


#: Defaults of the options that size the built-in benchmark (``--n-images``, ...). Where
#: the raters or images come from elsewhere, a value other than these would be ignored.
BENCHMARK_DEFAULTS = {"n_images": 1200, "n_raters": 60, "images_per_rater": 160,
                      "image_size": 128}


def _set_away(defaults, args, used):
    """The options of ``defaults`` set away from them and not in ``used``, as
    ``["--n-images", ...]``."""
    return [f"--{name.replace('_', '-')}" for name, default in defaults.items()
            if name not in used and getattr(args, name, default) != default]


def unused_benchmark_options(args, used=()):
    """The benchmark options set away from their defaults and not in ``used``, as
    ``["--n-images", ...]``."""
    return _set_away(BENCHMARK_DEFAULTS, args, used)


def check_benchmark_sizes(n_images, images_per_rater):
    """Refuse ``--images-per-rater`` above ``--n-images``, in the options' words and
    before the built-in benchmark is made (each rater rates distinct images)."""
    if images_per_rater > n_images:
        raise ValueError(f"--images-per-rater {images_per_rater} exceeds --n-images "
                         f"{n_images}: each rater rates distinct images.")


def printer(out):
    """A ``say(msg)`` that prints to ``out`` (standard output when None), flushed."""
    def say(msg):
        print(msg, file=sys.stdout if out is None else out, flush=True)
    return say


def plural(n, noun):
    """``n`` and ``noun``, with an "s" unless ``n`` is 1: "1 draw", "3 draws"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def given_table_options(args, used=()):
    """"--a, --b do not apply" for the table options set away from their defaults, or "".

    Options named in ``used`` (e.g. ``"image_root"``) are passed on, so not listed.
    """
    given = _set_away(TABLE_DEFAULTS, args, used)
    if not given:
        return ""
    return f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply"


def read_data(path, args, check_files=True, name="DATA"):
    """The ratings at ``path`` as ``args.format`` lays them out: a Bunch with tasks,
    train, test (the split where the data set defines one).

    ``--test-raters FILE`` holds out the raters listed in FILE (see
    :func:`read_rater_ids`), in place of a data set's own test raters.

    With a data set's own format, ``--image-root`` is passed on as the reader's
    ``image_dir`` (the folder holding the images, where it is not the one the data set
    is distributed with); the column options (``--rater-col``, ...), which it would
    ignore, are refused (SystemExit), as is ``--image-root`` for a reader without an
    image folder parameter.

    Parameters
    ----------
    path : str
        A ratings CSV, or a data set's folder.
    args : argparse.Namespace
        With ``format`` and the table options.
    check_files : bool, default=True
        Check that every image file exists.
    name : str, default="DATA"
        How messages name ``path`` (the option or argument that gave it).

    Returns
    -------
    sklearn.utils.Bunch
    """
    from .datasets.readers import _add_split

    data = _read_data(path, args, check_files, name)
    test_raters = getattr(args, "test_raters", None)
    if test_raters is not None:
        try:
            data = _add_split(data, read_rater_ids(test_raters),
                              what=f"raters of {test_raters}")
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--test-raters: {exc}") from None
    return data


def _read_data(path, args, check_files, name):
    from . import datasets

    if args.format == "table":
        return datasets.read_ratings(path, rater_col=args.rater_col,
                                     image_col=args.image_col, score_col=args.score_col,
                                     image_root=args.image_root, check_files=check_files)
    reader, options = getattr(datasets, READERS[args.format]), {}
    if args.image_root is not None and "image_dir" in inspect.signature(reader).parameters:
        # Made absolute here: the reader joins image_dir onto the data set's folder, but
        # the user typed the path relative to where the command runs.
        options["image_dir"] = os.path.abspath(os.path.expanduser(args.image_root))
    given = given_table_options(args, used=("image_root",) if options else ())
    if given:
        folder = " and image folder" if args.image_root is not None and not options else ""
        raise SystemExit(f"{given} with --format {args.format}, which reads the data "
                         f"set's own columns{folder} under {name}; use --format "
                         "table (the default) for a CSV laid out otherwise.")
    return reader(path, check_files=check_files, **options)


#: Column names taken for the rater ids of a --test-raters file with several columns.
RATER_ID_COLUMNS = ("rater", "worker", "user", "userId", "workerID", "WorkerId", "rater_id",
                    "worker_id", "user_id")


def read_rater_ids(path):
    """The rater ids of a ``--test-raters`` file.

    A table with a header row (comma-, tab- or whitespace-separated) whose rater
    column is named one of :data:`RATER_ID_COLUMNS`, or a list of ids, one a line, with
    or without such a header (a first line of another name is an id: an id list has no
    header to lose).

    Parameters
    ----------
    path : str

    Returns
    -------
    list of str
    """
    from .datasets._table import _read_text
    from .datasets.readers import _header, _read_ids

    text = _read_text(path)
    delimiter, names = _header(text)
    column = next((c for c in RATER_ID_COLUMNS if c in names), None)
    if column is None and len(names) == 1 and any(
            c in names[0].split(";") for c in RATER_ID_COLUMNS):
        raise ValueError(f"{path}: its header {names[0]!r} is separated by ';': write "
                         "commas between the columns (or give ids only, one a line).")
    if column is None and len(names) == 1:  # ids only, the first line among them
        return _read_ids(path, "rater", text, has_header=False)
    if column is None:
        raise ValueError(f"{path}: expected a header row naming the rater id column, "
                         f"one of {list(RATER_ID_COLUMNS)} (or ids only, one a line); "
                         f"found {names}"
                         + ("" if delimiter else " (ids with spaces: start the file with the "
                            "line 'rater', or quote each id)") + ".")
    return _read_ids(path, column, text)


def _walk(folder, unreadable):
    """The files under ``folder``, following linked folders but not around a loop.

    Hidden files and folders (names starting with ".") are left out. Subfolders that
    cannot be listed are appended to ``unreadable`` (their :class:`OSError`), for the
    caller to name; ``folder`` itself raises (PermissionError where it is not readable).
    """
    def onerror(exc):
        # os.walk's default is to skip the folder without a word: its images were left
        # out of the scores with exit status 0.
        if exc.filename is not None and os.fspath(exc.filename) != os.fspath(folder):
            unreadable.append(exc)
        elif isinstance(exc, PermissionError):
            raise PermissionError(f"cannot read the folder {folder}: permission denied; "
                                  "make it readable (chmod u+rx) or give the images "
                                  "another way.") from None
        else:
            raise type(exc)(exc.errno, f"cannot read the folder {folder}: "
                            f"{exc.strerror or exc}") from None

    seen = set()
    for root, dirs, names in os.walk(folder, onerror=onerror, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        # Hidden files and folders are not photos: macOS's "._IMG.jpg" resource forks,
        # ".thumbnails/" caches.
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        yield from (os.path.join(root, f) for f in names if not f.startswith("."))


def _unreadable_folders(errors):
    """"could not read N subfolders (why): a, b, ..." for the :class:`OSError` of
    :func:`_walk`, or ""."""
    if not errors:
        return ""
    folders = sorted({os.fspath(e.filename) for e in errors})
    why = sorted({(e.strerror or type(e).__name__).lower() for e in errors})
    return (f"could not read {plural(len(folders), 'subfolder')} ({', '.join(why)}), so any "
            f"images in {'it' if len(folders) == 1 else 'them'} were left out: "
            + listing(folders, 5))


def _is_image_name(path):
    return os.path.basename(path).lower().endswith(image_extensions())


def _not_images(others):
    """"left out N files that are not images ..." naming a few of ``others``, or ""."""
    if not others:
        return ""
    kinds = sorted({os.path.splitext(f)[1].lower() or "no extension" for f in others})
    one = len(others) == 1
    said = (f"left out {plural(len(others), 'file')} that {'is' if one else 'are'} not "
            f"{'an image' if one else 'images'} of a supported type ({listing(kinds, 5)}): "
            + listing(others, 5))
    if {".heic", ".heif"} & set(kinds):
        # iPhones save HEIC by default, and Pillow reads it only through a plugin
        said += "; this Pillow cannot read HEIC/HEIF photos: convert them to JPEG"
    return said


def image_files(paths):
    """The image files named by ``paths``; folders are searched recursively.

    A path that names nothing is an error: a mistyped file name given on the command
    line would otherwise be scored as an unreadable image (NaN) with exit status 0. The
    files of a folder that are not of an image type (see :func:`image_extensions`) are
    left out, and named in one :class:`~sklearn_piaa.PIAAWarning`; hidden ones silently.
    So are the subfolders that cannot be listed (no read permission), in another; a
    folder of ``paths`` that cannot be listed raises a :class:`PermissionError` (an
    :class:`OSError` for another reason) naming it.
    """
    import warnings

    from ._warnings import PIAAWarning

    urls = [path for path in paths if looks_like_url(path)]
    if urls:  # else "no such file or folder"
        raise SystemExit(f"{', '.join(urls)}: {NO_URLS}.")
    missing = [path for path in paths if not os.path.exists(path)]
    if missing:
        raise SystemExit(f"no such file or folder: {', '.join(missing)}")
    files, others, unreadable = [], [], []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(_walk(path, unreadable))
            files += [f for f in found if _is_image_name(f)]
            others += [f for f in found if not _is_image_name(f)]
        else:
            files.append(path)
    said = [s for s in (_unreadable_folders(unreadable), _not_images(others)) if s]
    if not files:
        raise SystemExit(f"no image files found in {', '.join(paths)}"
                         + "".join(f"; {s}" for s in said) + ".")
    for message in said:
        # a warning, as for unreadable images: standard output may be the scores' CSV
        warnings.warn(message + ".", PIAAWarning, stacklevel=2)
    return files


# mallopt's parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: The environment variables and preloads by which a user chooses the allocator's
#: behaviour: keep_freed_memory leaves such a choice alone.
_ALLOCATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES",
                       "LD_PRELOAD")


def keep_freed_memory():
    """Let glibc's ``malloc`` keep freed memory for reuse, for this process.

    A network's forward pass on a CPU allocates and frees each layer's activations;
    by default glibc returns much of that memory to the system and maps it afresh the
    next time, and the page faults slowed EfficientNet-Lite0's forward pass on a few
    images at a time 1.3-1.7x on a 2-core machine (``benchmarks/RESULTS.md``). This
    serves allocations below 32 MB from the heap and keeps up to 256 MB of freed heap.
    The command line calls it for its own process; nothing in the library does.

    Returns
    -------
    bool
        Whether it was applied: not where the C library is not glibc, nor where the
        environment already chooses (``MALLOC_MMAP_THRESHOLD_``,
        ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``, a preloaded allocator).
    """
    if not sys.platform.startswith("linux") or any(os.environ.get(k)
                                                   for k in _ALLOCATOR_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # glibc's own: musl has neither
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
                and libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20))
