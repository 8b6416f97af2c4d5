"""The aesthetic regression head of BLG-PIAA and the whole network around it."""

import torch
import torch.nn.functional as F
from torch import nn

from .._inputs import check_score_range

__all__ = ["AestheticHead", "AestheticNet", "BatchNorm1d", "head_of"]


class BatchNorm1d(nn.BatchNorm1d):
    """BatchNorm that normalizes a single-sample training batch with its running statistics.

    A batch of one has no variance, and :class:`torch.nn.BatchNorm1d` raises on it in
    training mode. Such batches are ordinary here: a rater with 11 images fine-tuned in
    batches of 10, or a 2-image rater's 1-image query set.
    """

    def forward(self, x):
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                self.bias, False, 0.0, self.eps)
        return super().forward(x)


class AestheticHead(nn.Module):
    """FC-BN-PReLU-Dropout blocks, then one output mapped into the rating range.

    The paper's head is FC(1024)-BN-PReLU-Dropout -> FC(512)-BN-PReLU-Dropout -> FC(1).
    The output passes through a sigmoid scaled to ``score_range``, as the reference
    implementation does for its 1-5 ratings, so predictions never leave the scale.

    Parameters
    ----------
    in_features : int
        Size of the image embedding.
    hidden_sizes : tuple of int, default=(1024, 512)
    dropout : float, default=0.5
    score_range : (float, float), default=(1.0, 5.0)
        Lowest and highest possible score.
    """

    def __init__(self, in_features, hidden_sizes=(1024, 512), dropout=0.5,
                 score_range=(1.0, 5.0)):
        super().__init__()
        layers = []
        width = in_features
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), BatchNorm1d(size), nn.PReLU(),
                       nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)
        low, high = check_score_range(score_range)
        self.register_buffer("score_low", torch.tensor(low))
        self.register_buffer("score_span", torch.tensor(high - low))

    def forward(self, x):
        """Scores ``(N, 1)`` in the rating range from embeddings ``(N, D)``.

        Under autocast the output layer, sigmoid and scaling run in float32: in
        bfloat16 the scores would lie on a grid (steps of 1/64 near 3.5), tying images
        that float32 ranks apart.
        """
        *body, out = self.layers
        for layer in body:
            x = layer(x)
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self.score_low + self.score_span * torch.sigmoid(out(x.float()))
        return self.score_low + self.score_span * torch.sigmoid(out(x))

    @torch.no_grad()
    def set_score_range(self, low, high):
        """Map outputs into ``(low, high)`` instead: a monotone rescaling of every score.

        Parameters
        ----------
        low : float
            New lower bound of the output range.
        high : float
            New upper bound of the output range.

        Raises
        ------
        ValueError
            Unless ``low < high``, both finite.
        """
        low, high = check_score_range((low, high))
        self.score_low.fill_(low)
        self.score_span.fill_(high - low)


class AestheticNet(nn.Module):
    """A backbone (images -> pooled embedding) followed by an :class:`AestheticHead`.

    Parameters
    ----------
    backbone : nn.Module
        Maps a batch of normalized images ``(N, 3, H, W)`` to embeddings ``(N, D)``.
    head : AestheticHead
    """

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x):
        """Scores ``(N, 1)`` from normalized images ``(N, 3, H, W)``."""
        return self.head(self.backbone(x))


def head_of(module):
    """The :class:`AestheticHead` that ends ``module``, or None.

    Parameters
    ----------
    module : object
        A head, a net ending in one (:class:`AestheticNet`), or anything else.

    Returns
    -------
    AestheticHead or None
        The last head among ``module``'s submodules; None when it has none or is
        not a torch module.
    """
    if not isinstance(module, nn.Module):
        return None
    heads = [m for m in module.modules() if isinstance(m, AestheticHead)]
    return heads[-1] if heads else None

