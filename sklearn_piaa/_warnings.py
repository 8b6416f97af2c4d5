"""Warning classes of the package, and warnings that point at the user's code."""

import importlib.util
import os
import sys
import warnings

__all__ = ["PIAAWarning", "UndefinedSROCCWarning"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_FIT_WRAPPER = os.path.join("sklearn", "base.py")
# a personalized net's checks run inside skorch's fit, called by the user or by ours
_SKORCH = os.path.dirname(importlib.util.find_spec("skorch").origin) + os.sep


class PIAAWarning(UserWarning):
    """Something the user should know about their data or settings."""


class UndefinedSROCCWarning(PIAAWarning, RuntimeWarning):
    """A Spearman correlation was undefined (constant ratings or predictions)."""


class CacheDirWarning(PIAAWarning):
    """A loaded model's ``cache_dir`` cannot be made on this machine: it caches nothing.

    Not exported: the command line leaves it out, by this category, where
    ``--cache-dir`` or ``--no-cache`` replaces the model's folder.
    """


class SkippedWarning(PIAAWarning):
    """Raters an evaluation skipped, or support sizes it left out: its result names them too.

    Not exported: a caller that prints the result (the ``evaluate`` command) filters it
    by this category, so as to say them once. A filter on the message text broke
    silently at any rewording.
    """


def _ours(code):
    # scikit-learn's _fit_context wraps every estimator's fit in a function of its own
    return code.co_filename.startswith((_PACKAGE, _SKORCH)) or (
        code.co_name == "wrapper" and code.co_filename.endswith(_FIT_WRAPPER))


def warn_caller(message, category=PIAAWarning):
    """``warnings.warn`` shown at the first line outside this package (and skorch).

    A fixed ``stacklevel`` is right for one way of reaching the warning only: the same
    check runs from ``fit`` (inside scikit-learn's wrapper), from ``personalize`` and
    from the protocols, and a warning shown at a line of the package or of scikit-learn
    tells the user nothing (and escapes a filter on their own module).

    Parameters
    ----------
    message : str
    category : type, default=PIAAWarning
    """
    frame, level = sys._getframe(1), 2  # 2: the frame that called this function
    while frame is not None and _ours(frame.f_code):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
