"""BLG-PIAA: bilevel gradient optimization (Zhu et al., IEEE TCYB 2020, Algorithm 1)."""

import torch

from .base import MetaLearner

__all__ = ["BLG"]


class BLG(MetaLearner):
    """Bilevel gradient optimization of BLG-PIAA.

    Each task adapts the prior with ``inner_steps`` Adam steps on its support set and
    ``inner_steps`` more on its query set; the prior then moves towards the adapted
    weights: ``theta <- theta - outer_lr * mean_i(theta - theta_i)``.

    The parameters are those of :class:`~sklearn_piaa.meta.MetaLearner`.

    Notes
    -----
    The released scripts of the paper differ in places: their outer update moves 1/4 of
    the way towards each task's weights in turn, Adam state is shared across tasks, and
    BatchNorm statistics are not part of the update. This class follows the paper's
    Algorithm 1 with a fresh Adam per task (kept from support to query steps) and also
    moves BatchNorm running statistics with the same rule.

    References
    ----------
    .. [1] H. Zhu, L. Li, J. Wu, S. Zhao, G. Ding and G. Shi, "Personalized Image
       Aesthetics Assessment via Meta-Learning With Bilevel Gradient Optimization",
       IEEE Transactions on Cybernetics, 52(3):1798-1811, 2022 (online 2020).
    """

    def accumulate(self, acc, prior_state, learner):
        """Add ``theta - theta_i`` of the adapted task to ``acc``."""
        with torch.no_grad():
            state = self.meta_state(learner)
            # multi-tensor ops: the same arithmetic, one call for all tensors
            torch._foreach_add_([acc[n] for n in state],
                                torch._foreach_sub([prior_state[n] for n in state],
                                                   list(state.values())))

    def accumulate_stacked(self, acc, prior_state, stacked, n_tasks):
        """Add ``sum_i (theta - theta_i)`` of stacked adapted tasks to ``acc``.

        ``stacked`` (tensors of shape ``(n_tasks, ...)``) is overwritten with the
        differences ``theta_i - theta``, taken and added task by task in the order and
        arithmetic of :meth:`accumulate` (which keeps the precision that
        ``n_tasks * theta - sum_i theta_i`` would cancel away), without a weight-sized
        temporary.
        """
        names = list(acc)
        sums, prior = [acc[n] for n in names], [prior_state[n] for n in names]
        for i in range(n_tasks):
            task = [stacked[n][i] for n in names]
            torch._foreach_sub_(task, prior)
            torch._foreach_sub_(sums, task)

    def outer_update(self, prior, acc, n_tasks):
        """``theta <- theta - outer_lr * mean_i(theta - theta_i)``."""
        for name, t in self.meta_state(prior).items():
            t.sub_(acc[name], alpha=self.outer_lr / n_tasks)
