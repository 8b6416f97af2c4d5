"""Training losses: the paper's squared error, and rank-aware ones for a rank metric."""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["pairwise_rank_loss", "AestheticLoss", "LOSSES"]

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
    """Squared error, pairwise rank loss, or their sum.

    Parameters
    ----------
    kind : {"mse", "rank", "mse+rank"}, default="mse"
        ``"mse"`` is the paper's loss; ``"rank"`` :func:`pairwise_rank_loss`;
        ``"mse+rank"`` the sum (keeps predictions on the rating scale while ordering
        pairs).
    rank_weight : float, default=1.0
        Weight of the rank term in ``"mse+rank"``.
    """

    def __init__(self, kind="mse", rank_weight=1.0):
        super().__init__()
        if kind not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}; got {kind!r}.")
        self.kind = kind
        self.rank_weight = rank_weight

    def forward(self, pred, y):
        """The loss of predictions ``pred`` against ratings ``y``."""
        pred, y = pred.reshape(-1), y.reshape(-1).to(pred.dtype)
        if self.kind == "mse":
            return torch.mean((pred - y) ** 2)
        rank = pairwise_rank_loss(pred, y)
        if self.kind == "rank":
            return rank
        return torch.mean((pred - y) ** 2) + self.rank_weight * rank
