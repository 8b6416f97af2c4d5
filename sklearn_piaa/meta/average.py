"""BA-PIAA and no prior: the two baselines of BLG-PIAA's Table I without meta-learning."""

import torch

from .base import MetaLearner

__all__ = ["Average", "NoPrior"]


class Average(MetaLearner):
    """BA-PIAA: a generic-aesthetics prior trained on all raters' ratings pooled.

    Each outer iteration pools the support and query images of the sampled raters and
    takes ``inner_steps`` Adam steps on the prior itself (no task copies, no outer
    update). With squared error the best prediction for an image is the mean of its
    scores weighted by how often each is drawn, so the prior learns an average
    (consensus) aesthetic score that BA-PIAA fine-tunes per rater. Adam's state
    persists across iterations.

    The parameters are those of :class:`~sklearn_piaa.meta.MetaLearner`; ``outer_lr`` is
    not used.

    Notes
    -----
    BA-PIAA in [1]_ trains on each image's mean score. Sampling raters and pooling
    their ratings fits the same loop as the meta-learners and has that optimum where
    the raters have equal numbers of ratings (or at most ``support_size +
    query_size`` each). Otherwise a rating weighs in proportion to how often it is
    drawn: raters are drawn alike, and a draw takes at most ``support_size +
    query_size`` of a rater's images, so each rating of a rater with ``n`` ratings
    counts ``(support_size + query_size) / n`` as much as one of a small rater's. A
    rater of 500 ratings beside one of 20 on the same images pulls the prior less
    than the plain mean of the two would.

    References
    ----------
    .. [1] H. Zhu, L. Li, J. Wu, S. Zhao, G. Ding and G. Shi, "Personalized Image
       Aesthetics Assessment via Meta-Learning With Bilevel Gradient Optimization",
       IEEE Transactions on Cybernetics, 52(3):1798-1811, 2022 (BA-PIAA, Table I).
    .. [2] J. Ren, X. Shen, Z. Lin, R. Mech and D. J. Foran, "Personalized Image
       Aesthetics", ICCV 2017 (a generic model adapted per user).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._optimizer = None
        self._prior_id = None

    def _optimizer_for(self, prior):
        # One Adam for the prior, kept while the same prior is trained.
        if self._optimizer is None or self._prior_id != id(prior):
            self._optimizer = self.inner_optimizer(prior)
            self._prior_id = id(prior)
        return self._optimizer

    def state_dict(self):
        """The pooled Adam's moments, if it has taken a step."""
        return {} if self._optimizer is None else {"adam": self._optimizer.state_dict()}

    def load_state_dict(self, state, prior):
        """Rebuild the pooled Adam over ``prior`` with saved moments."""
        if "adam" in state:
            self._optimizer = None
            self._optimizer_for(prior).load_state_dict(state["adam"])

    def step(self, prior, learner, tasks, lr_scale=1.0):
        """``inner_steps`` Adam steps of the prior on the batch's pooled ratings."""
        self._optimizer_for(prior)
        for group, lr in zip(self._optimizer.param_groups,
                             (self.inner_lr, self.inner_backbone_lr)):
            group["lr"] = lr * lr_scale
        pooled = [self.merge(*task) for task in tasks]
        x = torch.cat([p[0] for p in pooled])
        y = torch.cat([p[1] for p in pooled])
        prior.train()
        return self.adapt(prior, self._optimizer, x, y)


class NoPrior(MetaLearner):
    """No prior at all: the ImageNet backbone with a freshly initialized head.

    The lower bound of BLG-PIAA's Table I: each rater's model is fine-tuned from a head
    that has seen no ratings. ``fit`` only sets the rating range and builds the network.

    References
    ----------
    .. [1] H. Zhu et al., "Personalized Image Aesthetics Assessment via Meta-Learning
       With Bilevel Gradient Optimization", IEEE Transactions on Cybernetics, 2022.
    """

    meta_trains = False

    def step(self, prior, learner, tasks, lr_scale=1.0):
        """Nothing to learn: the prior stays as initialized (never called by ``fit``)."""
        return float("nan")
