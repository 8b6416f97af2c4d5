"""Reptile (Nichol, Achiam and Schulman, 2018)."""

import torch

from .blg import BLG

__all__ = ["Reptile"]


class Reptile(BLG):
    """Reptile: plain SGD on the whole task, then move the prior towards the result.

    Each task's support and query sets are merged -- Reptile has no train/test split
    within a task -- and a copy of the prior takes ``inner_steps`` full-batch SGD steps
    on them. The outer update is the batched Reptile step
    ``theta <- theta + outer_lr * mean_i(theta_i - theta)``, which is BLG's.

    The parameters are those of :class:`~sklearn_piaa.meta.MetaLearner`. ``inner_lr``
    (``inner_backbone_lr`` for parameters named ``backbone.*``), scaled by ``lr_scale``,
    is the SGD step size.
    ``betas`` and ``weight_decay`` are not used: the inner loop is plain SGD.

    Notes
    -----
    The returned loss is the loss on the merged task before the last inner step.
    BatchNorm running statistics move with the same rule as the weights.

    References
    ----------
    .. [1] A. Nichol, J. Achiam and J. Schulman, "On First-Order Meta-Learning
       Algorithms", arXiv:1803.02999, 2018.
    """

    def inner_optimizer_for(self, params, lr_scale=1.0):
        """Plain SGD (parameter groups carry the head's and backbone's own rates)."""
        return torch.optim.SGD(params, lr=self.inner_lr * lr_scale)

    def inner_settings(self):
        """None besides the learning rates: plain SGD.

        Returns
        -------
        dict
            Empty.
        """
        return {}

    def phases(self, support, query):
        """One set: the task's support and query merged."""
        return [self.merge(support, query)]
