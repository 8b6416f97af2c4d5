"""The check of a rating scale, ``score_range=(low, high)``, without scikit-learn.

The command line checks ``--score-range`` as its parser reads the option, and an error
there should not wait seconds for scikit-learn and scipy, which ``_inputs`` imports.
"""

import numpy as np

__all__ = ["check_score_range"]


def check_score_range(score_range):
    """``score_range`` as two finite floats ``(low, high)`` with ``low < high``.

    Both in float64 and in float32, in which the network computes.

    Parameters
    ----------
    score_range : sequence of two numbers

    Returns
    -------
    (float, float)

    Raises
    ------
    ValueError
        Naming what is wrong: not a pair, not numbers, not finite, not increasing, or
        beyond float32 (infinite, or of no width: low and high the same float32).
    """
    try:
        values = [float(v) for v in score_range]
    except (TypeError, ValueError):
        raise ValueError(f"score_range must be a pair of numbers (low, high); got "
                         f"{score_range!r}.") from None
    if len(values) != 2:
        raise ValueError(f"score_range must be a pair (low, high); got {len(values)} "
                         f"value(s): {score_range!r}.")
    low, high = values
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"score_range must be (low, high), finite, with low < high; got "
                         f"{score_range!r}.")
    with np.errstate(over="ignore"):
        low32, high32 = np.float32(low), np.float32(high)
        span32 = high32 - low32
    if not (np.isfinite(low32) and np.isfinite(high32) and np.isfinite(span32)):
        # The head computes in float32: its output range would be infinite or NaN.
        raise ValueError(f"score_range={score_range!r} is beyond float32's range (about "
                         "+-3.4e38, also for high - low), in which the network computes; "
                         "rescale the scores.")
    if not high32 > low32:
        # Checked in float64 above, (1e8, 1e8 + 1) passed: the head then mapped every
        # image onto one score.
        raise ValueError(f"score_range={score_range!r} has no width in float32, in which "
                         f"the network computes: low and high both read {float(low32):.9g}, "
                         "far above their difference. Subtract a common offset from the "
                         "scores and the range (e.g. y - low), or rescale them.")
    return low, high
