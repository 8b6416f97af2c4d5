"""``python -m sklearn_piaa``: the ``sklearn-piaa`` command, where its script is not on
the PATH (a virtual environment not activated)."""

import sys

from .cli import console

if __name__ == "__main__":
    sys.exit(console())
