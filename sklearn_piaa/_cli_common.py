"""What the command line's subcommands share: printing, finding image files."""

import os
import sys

__all__ = ["IMAGE_EXTENSIONS", "TABLE_DEFAULTS", "printer", "plural", "image_files",
           "given_table_options"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

#: Defaults of the options that describe a ratings CSV (``--image-root``, ``--rater-col``,
#: ...). Where no CSV is read, a value other than these would be silently ignored.
TABLE_DEFAULTS = {"image_root": None, "rater_col": "rater", "image_col": "image",
                  "score_col": "score"}


def printer(out):
    """A ``say(msg)`` that prints to ``out`` (standard output when None), flushed."""
    def say(msg):
        print(msg, file=sys.stdout if out is None else out, flush=True)
    return say


def plural(n, noun):
    """``n`` and ``noun``, with an "s" unless ``n`` is 1: "1 draw", "3 draws"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def given_table_options(args):
    """"--a, --b do not apply" for the table options set away from their defaults, or ""."""
    given = [f"--{name.replace('_', '-')}" for name, default in TABLE_DEFAULTS.items()
             if getattr(args, name, default) != default]
    if not given:
        return ""
    return f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply"


def image_files(paths):
    """The image files named by ``paths``; folders are searched recursively.

    A path that names nothing is an error: a mistyped file name given on the command
    line would otherwise be scored as an unreadable image (NaN) with exit status 0.
    """
    missing = [path for path in paths if not os.path.exists(path)]
    if missing:
        raise SystemExit(f"no such file or folder: {', '.join(missing)}")
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(root, f) for root, _, names in os.walk(path)
                            for f in names if f.lower().endswith(IMAGE_EXTENSIONS))
        else:
            files.append(path)
    if not files:
        raise SystemExit(f"no image files found in {', '.join(paths)}.")
    return files
