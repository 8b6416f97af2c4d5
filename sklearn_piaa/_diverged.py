"""One check that training left a usable network: finite weights, statistics and losses."""

import numpy as np
import torch

__all__ = ["LEVELS", "check_trained", "score_levels"]

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


def check_trained(module, losses, what, advice, where="", kept=""):
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
    raise FloatingPointError(
        f"{what} diverged{where}: {'; '.join(problems)}. Lower {advice}, or bring the "
        f"features and scores to moderate magnitudes.{' ' + kept if kept else ''}")
