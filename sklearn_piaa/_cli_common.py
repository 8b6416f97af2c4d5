"""What the command line's subcommands share: printing, finding image files."""

import os
import sys

__all__ = ["IMAGE_EXTENSIONS", "printer", "image_files"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def printer(out):
    """A ``say(msg)`` that prints to ``out`` (standard output when None), flushed."""
    def say(msg):
        print(msg, file=sys.stdout if out is None else out, flush=True)
    return say


def image_files(paths):
    """The image files named by ``paths``; folders are searched recursively."""
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
