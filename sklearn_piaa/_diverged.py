"""One check that training left a usable network: finite weights, statistics and losses."""

import numpy as np
import torch

__all__ = ["HUGE_FEATURES", "LEVELS", "check_trained", "largest_value", "score_levels"]

#: Features whose largest |value| is beyond this overflow the head's BatchNorm variances
#: in float32 (squares beyond 3.4e38), whatever the learning rates: training that diverges
#: on them names their size first. Below it the head's BatchNorm makes training
#: indifferent to the features' scale (1e6 or 1e10 trained as well as 1: the same
#: losses), and a divergence there is the learning rates' (EfficientNet-Lite0's
#: embeddings lie in 0-6). The prior's predictions follow only once its BatchNorm
#: running statistics have (BLG moves them outer_lr of the way per iteration, from mean
#: 0 and variance 1): after 20 iterations, priors on features at scale 1 and 1e6 differed
#: by up to 1.35 on a 1-5 scale, after 1000 by 0.007.
HUGE_FEATURES = 1e18

#: Scores closer than this fraction of the output range count as one score in the checks
#: that a network tells images apart (meta-training's and fine-tuning's collapse checks).
LEVELS = 1000


def score_levels(scores, low, high):
    """The distinct scores among ``scores``, to ``1 / LEVELS`` of the range ``(low, high)``.

    Parameters
    ----------
    scores : array-like
        Predictions or ratings (finite).
    low, high : float
        The output range.

    Returns
    -------
    ndarray of float
        The sorted distinct levels, as numbers of ``1 / LEVELS`` steps above ``low``
        (0 at ``low``, ``LEVELS`` at ``high``).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    return np.unique(np.round((scores - low) / (high - low) * LEVELS))


def largest_value(features):
    """The largest ``|value|`` of a feature array or tensor; None where it has no numbers.

    Parameters
    ----------
    features : ndarray, tensor, array-like or None

    Returns
    -------
    float or None
    """
    if features is None:
        return None
    if torch.is_tensor(features):
        return float(features.detach().abs().max()) if features.numel() else None
    try:
        x = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError):  # a torch Dataset, a list of images
        return None
    return float(np.abs(x).max()) if x.size else None


def check_trained(module, losses, what, advice, where="", kept="", features=None):
    """Raise when training diverged, rather than hand back a network that predicts NaN.

    A learning rate too large for the data (or features or scores at extreme
    magnitudes) turns weights or BatchNorm statistics into NaN or infinity, or drives a
    BatchNorm running variance negative (an outer step that overshoots), which makes
    every prediction NaN while the training loss, computed on batch statistics, still
    looks fine.

    Parameters
    ----------
    module : torch.nn.Module
    losses : array-like of float
        The training losses so far (may be empty).
    what : str
        What was trained, for the message (e.g. ``"meta-training"``).
    advice : str
        The settings to lower, for the message.
    where : str, default=""
        When it was found (e.g. ``" by iteration 40"``).
    kept : str, default=""
        What was left untouched, a sentence (e.g. ``"The previous fit is kept."``).
    features : ndarray, tensor or array-like, default=None
        The precomputed features trained on, looked at only when training diverged:
        beyond :data:`HUGE_FEATURES` the message names their size first, and scaling
        them, before the settings to lower.

    Raises
    ------
    FloatingPointError
        Naming the first non-finite loss and the tensors that went wrong.
    """
    tensors = [(n, t) for n, t in (*module.named_parameters(), *module.named_buffers())
               if t.is_floating_point()]
    variances = [(n, t) for n, t in module.named_buffers() if n.endswith("running_var")]
    with torch.no_grad():
        # One sum per tensor: NaN or infinity anywhere makes it non-finite, and it costs a
        # tenth of an element-wise test (0.2 ms for the paper's head, every personalize).
        checks = [torch.isfinite(t.sum()) for _, t in tensors]
        checks += [t.min() >= 0 for _, t in variances if t.numel()]
        bad = negative = []
        if checks and not bool(torch.stack(checks).all()):
            # Element-wise, to name them (and because a sum can also overflow).
            bad = [n for n, t in tensors if not bool(torch.isfinite(t).all())]
            negative = [n for n, t in variances if not bool((t >= 0).all())]
    losses = np.asarray(losses, dtype=np.float64).reshape(-1)
    nan_loss = np.flatnonzero(~np.isfinite(losses))
    if not (bad or negative or nan_loss.size):
        return
    problems = []
    if nan_loss.size:
        problems.append(f"the loss is {losses[nan_loss[0]]} from step {nan_loss[0] + 1} "
                        f"of {len(losses)}")
    if bad:
        problems.append(f"{len(bad)} weight or statistic tensor(s) hold NaN or "
                        f"infinity ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''})")
    if negative:
        problems.append(f"BatchNorm running variance below zero ({', '.join(negative[:3])}"
                        f"{' ...' if len(negative) > 3 else ''}), which makes every "
                        "prediction NaN")
    big = largest_value(features)
    if big is not None and big > HUGE_FEATURES:
        # Lowering the learning rates cannot help there: the first thing to say.
        todo = (f"The features are far too large (largest |value| {big:.3g}, where a "
                "backbone's embeddings are of order 1 to 10): scale them first, e.g. with "
                "sklearn's StandardScaler fitted on the training rows (in a Pipeline, or "
                "by hand), and the same way before predict and personalize; if training "
                f"still diverges, lower {advice}.")
    else:
        todo = f"Lower {advice}, or bring the features and scores to moderate magnitudes."
    raise FloatingPointError(
        f"{what} diverged{where}: {'; '.join(problems)}. {todo}"
        f"{' ' + kept if kept else ''}")
