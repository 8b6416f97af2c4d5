"""Training losses: the paper's squared error, and rank-aware ones for a rank metric."""

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["pairwise_rank_loss", "AestheticLoss", "LOSSES", "loss_unit"]

#: The training losses by the name ``MetaAestheticRegressor(loss=...)`` takes: squared
#: error, the pairwise rank loss, and their sum.
LOSSES = ("mse", "rank", "mse+rank")


def pairwise_rank_loss(pred, y):
    """Logistic loss on every ordered pair: ``mean log(1 + exp(-(p_i - p_j)))``.

    Taken over the pairs with ``y_i > y_j`` (RankNet, Burges et al. 2005): it is small
    when the predictions order the pair as the ratings do, whatever their scale, so it
    targets what SROCC measures. Ties in ``y`` contribute nothing; a batch without an
    ordered pair gives 0 (with a gradient of 0).

    Parameters
    ----------
    pred, y : Tensor of shape (n,) or (n, 1)

    Returns
    -------
    Tensor
        Scalar.
    """
    pred, y = pred.reshape(-1), y.reshape(-1)
    diff = pred.unsqueeze(1) - pred.unsqueeze(0)  # p_i - p_j
    ordered = (y.unsqueeze(1) > y.unsqueeze(0)).to(pred.dtype)
    n_pairs = ordered.sum()
    return (F.softplus(-diff) * ordered).sum() / n_pairs.clamp(min=1)


class AestheticLoss(nn.Module):
    """Squared error, pairwise rank loss, or their sum, in a unit of the score scale.

    Parameters
    ----------
    kind : {"mse", "rank", "mse+rank"}, default="mse"
        ``"mse"`` is the paper's loss; ``"rank"`` :func:`pairwise_rank_loss`;
        ``"mse+rank"`` the sum (keeps predictions on the rating scale while ordering
        pairs).
    rank_weight : float, default=1.0
        Weight of the rank term in ``"mse+rank"``.
    unit : float, default=1.0
        Score differences are measured in this unit. The package gives a quarter of
        the network's score range (one point of the paper's 1-5 scale), so that ratings
        in other units -- 0-1, 0-100, a 0-500 slider -- train to the same network as the
        same ratings on 1-5, mapped onto their scale: the rank loss's logistic
        function, the balance of the two terms of ``"mse+rank"`` and plain-SGD steps
        would otherwise change with the units. For a score range of 1-5 the unit is 1
        and changes nothing.
    """

    def __init__(self, kind="mse", rank_weight=1.0, unit=1.0):
        super().__init__()
        if kind not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}; got {kind!r}.")
        if not float(unit) > 0 or not math.isfinite(float(unit)):
            raise ValueError(f"unit must be a positive finite number; got {unit!r}.")
        # a negative weight rewards mis-ordered pairs; NaN made every loss NaN
        if isinstance(rank_weight, bool) or not isinstance(rank_weight, numbers.Real) \
                or not 0 <= rank_weight < math.inf:
            raise ValueError(f"rank_weight must be a finite number >= 0; got "
                             f"{rank_weight!r}.")
        self.kind = kind
        self.rank_weight = rank_weight
        self.unit = float(unit)

    def forward(self, pred, y):
        """The loss of predictions ``pred`` against ratings ``y``."""
        pred, y = pred.reshape(-1), y.reshape(-1).to(pred.dtype)
        if pred.shape != y.shape:
            # broadcast, 3 predictions against 1 rating gave a loss without a word
            raise ValueError(f"pred and y must hold one value per image alike; got "
                             f"{pred.numel()} predictions and {y.numel()} ratings.")
        unit = self.unit
        if self.kind != "rank":
            d = pred - y
            mse = torch.mean((d if unit == 1.0 else d / unit) ** 2)
            if self.kind == "mse":
                return mse
        rank = pairwise_rank_loss(pred if unit == 1.0 else pred / unit, y)
        if self.kind == "rank":
            return rank
        return mse + self.rank_weight * rank


def loss_unit(head):
    """The :class:`AestheticLoss` unit the package gives a network ending in ``head``.

    Parameters
    ----------
    head : AestheticHead

    Returns
    -------
    float
        A quarter of the head's score range: one point of the paper's 1-5 scale, and 1
        on it.
    """
    return float(head.score_span) / 4.0
