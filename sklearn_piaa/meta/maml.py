"""MAML and first-order MAML (Finn et al., ICML 2017)."""

import torch
from torch.func import functional_call

from .base import MetaLearner

__all__ = ["MAML", "FOMAML"]


class MAML(MetaLearner):
    """Model-agnostic meta-learning: differentiate the query loss through the inner loop.

    Each task starts from the prior's weights ``theta``, takes ``inner_steps`` plain SGD
    steps on its support set, ``theta_i = theta_{k-1} - alpha * grad L_s(theta_{k-1})``,
    and scores the adapted weights on its query set. The meta-gradient
    ``d L_q(theta_i) / d theta`` -- second-order terms included -- is averaged over the
    tasks and the prior takes one Adam step on it.

    The parameters are those of :class:`~sklearn_piaa.meta.MetaLearner`. ``inner_lr``
    (``inner_backbone_lr`` for parameters named ``backbone.*``), scaled by ``lr_scale``,
    is the inner SGD step size; ``outer_lr``, ``betas`` and ``weight_decay`` (L2)
    configure the outer Adam.

    Notes
    -----
    The outer Adam lives on the algorithm so that its moments persist across
    :meth:`~sklearn_piaa.meta.MetaLearner.step` calls. It belongs to one prior: it is
    rebuilt whenever :meth:`~sklearn_piaa.meta.MetaLearner.step` receives a module
    whose trainable parameters are not the ones it holds, and :meth:`reset` drops it
    explicitly (e.g. to restart training the same prior).

    The inner loop runs the learner functionally (:func:`torch.func.functional_call`)
    in train mode, so BatchNorm normalizes with batch statistics and the gradient flows
    through them; Dropout is active. Running statistics are not differentiable: the
    learner's buffers start from the prior's, are updated by the inner forward passes,
    and the prior takes their mean over tasks (BLG's rule with step 1).

    The returned loss, like the outer objective, is the query loss of the adapted
    weights.

    References
    ----------
    .. [1] C. Finn, P. Abbeel and S. Levine, "Model-Agnostic Meta-Learning for Fast
       Adaptation of Deep Networks", Proceedings of the 34th International Conference
       on Machine Learning (ICML), PMLR 70:1126-1135, 2017.
    """

    #: Drop the second-order terms (the inner gradients are treated as constants).
    first_order = False

    def reset(self):
        """Forget the outer Adam state (needed only to restart with the same prior)."""
        self._outer = None

    def state_dict(self):
        """The outer Adam's moments, if it has taken a step."""
        opt = getattr(self, "_outer", None)
        return {} if opt is None else {"outer": opt.state_dict()}

    def load_state_dict(self, state, prior):
        """Rebuild the outer Adam over ``prior`` with saved moments."""
        if "outer" in state:
            self.reset()
            self.outer_optimizer(prior).load_state_dict(state["outer"])

    def outer_optimizer(self, prior):
        """The outer Adam over ``prior``'s trainable parameters, created on first use."""
        params = [p for p in prior.parameters() if p.requires_grad]
        opt = getattr(self, "_outer", None)
        held = opt.param_groups[0]["params"] if opt is not None else []
        # Identity, not equality: a new prior (or a changed requires_grad) needs new moments.
        if len(held) != len(params) or any(a is not b for a, b in zip(held, params)):
            opt = torch.optim.Adam(params, lr=self.outer_lr, betas=tuple(self.betas),
                                   weight_decay=self.weight_decay)
            self._outer = opt
        for group in opt.param_groups:
            group["lr"] = self.outer_lr  # follow changes to the attribute
        return opt

    def adapt_task(self, prior_state, learner, support, query, lr_scale=1.0):
        """Adapt functionally from the prior; leave the meta-gradient in ``learner``'s grads.

        ``learner`` ends with the adapted weights, its buffers as updated by the inner
        forward passes, and ``.grad`` holding ``d L_q / d theta`` for this task.
        """
        self.load_prior(prior_state, learner)
        named = [(n, p) for n, p in learner.named_parameters() if p.requires_grad]
        lrs = [(self.inner_backbone_lr if n.startswith("backbone.") else self.inner_lr)
               * lr_scale for n, _ in named]
        # Fresh leaves holding the prior's values: the meta-gradient is taken w.r.t. them.
        theta = [prior_state[n].detach().clone().requires_grad_() for n, _ in named]
        names = [n for n, _ in named]

        def loss(weights, x, y):
            # Parameters missing from the dict (frozen ones) and buffers come from learner.
            return self.loss(lambda inp: functional_call(learner, dict(zip(names, weights)),
                                                         (inp,)), x, y)

        fast = theta
        for _ in range(self.inner_steps):
            grads = torch.autograd.grad(loss(fast, *support), fast, allow_unused=True,
                                        create_graph=not self.first_order)
            fast = [w if g is None else w - lr * g for w, g, lr in zip(fast, grads, lrs)]
        query_loss = loss(fast, *query)
        meta_grads = torch.autograd.grad(query_loss, theta, allow_unused=True)
        with torch.no_grad():
            for (_, p), w, g in zip(named, fast, meta_grads):
                p.copy_(w)
                p.grad = torch.zeros_like(p) if g is None else g
        return float(query_loss.detach())

    def accumulate(self, acc, prior_state, learner):
        """Add the task's meta-gradient (left in ``learner``'s grads) and its statistics."""
        with torch.no_grad():
            params = dict(learner.named_parameters())
            for name, t in self.meta_state(learner).items():
                if name not in params:
                    acc[name].add_(t)  # a buffer: its adapted value
                elif params[name].grad is not None:
                    acc[name].add_(params[name].grad)  # a parameter: its meta-gradient

    def outer_update(self, prior, acc, n_tasks):
        """One outer Adam step on the mean meta-gradient; mean BatchNorm statistics."""
        opt = self.outer_optimizer(prior)
        params = dict(prior.named_parameters())
        for name, t in self.meta_state(prior).items():
            if name not in params:
                # Only BatchNorm statistics move in the inner loop; a mean of k equal
                # copies of another buffer (the head's score range) is not exact.
                if name.endswith(("running_mean", "running_var")):
                    t.copy_(acc[name] / n_tasks)
            elif params[name].requires_grad:
                params[name].grad = acc[name] / n_tasks
        try:
            opt.step()
        except RuntimeError as exc:
            if "overflow" not in str(exc):
                raise
            # Adam's first step size, outer_lr / (1 - beta1), beyond float32: torch's
            # "value cannot be converted to type float without overflow" named neither
            # the setting nor that training diverged, and left the command's traceback
            raise FloatingPointError(
                f"meta-training diverged: the outer Adam step overflowed float32 "
                f"(outer_lr={self.outer_lr!r}); lower outer_lr.") from None
        opt.zero_grad(set_to_none=True)


class FOMAML(MAML):
    """First-order MAML: the meta-gradient is the query gradient at the adapted weights.

    As :class:`MAML`, but the inner gradients are not differentiated
    (no ``create_graph``), so ``d theta_i / d theta`` is taken as the identity and the
    Hessian-vector products of the inner loop disappear -- the first-order
    approximation of [1]_, Section 5.2, analysed by [2]_.

    The parameters are those of :class:`~sklearn_piaa.meta.MAML`.

    References
    ----------
    .. [1] C. Finn, P. Abbeel and S. Levine, "Model-Agnostic Meta-Learning for Fast
       Adaptation of Deep Networks", ICML, PMLR 70:1126-1135, 2017.
    .. [2] A. Nichol, J. Achiam and J. Schulman, "On First-Order Meta-Learning
       Algorithms", arXiv:1803.02999, 2018.
    """

    first_order = True
