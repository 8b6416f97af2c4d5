"""The bilevel meta-learning loop, as small steps that algorithms override."""

import torch

from .._device import autocast
from ..nn.adam import adam_step, reset_optimizer
from ..nn.head_grad import HeadGradient
from ..nn.head_grad_stacked import StackedHeadGradient
from ..nn.losses import AestheticLoss
from ._stacked import stack_state, stackable, stacked_adapt

__all__ = ["MetaLearner"]


class MetaLearner:
    """One outer iteration: adapt a copy of the prior to each task, then move the prior.

    For every task of a batch, :meth:`adapt_task` loads the prior into a worker module
    (no deep copy per task), makes a fresh inner optimizer (:meth:`inner_optimizer`),
    runs :meth:`adapt` on the support set and then on the query set, and
    :meth:`accumulate` records what the task wants; :meth:`outer_update` then changes
    the prior. Subclasses override one of these steps.

    Parameters
    ----------
    inner_lr : float, default=1e-3
        Adam learning rate of the head in the inner loop.
    inner_backbone_lr : float, default=1e-4
        Adam learning rate of the backbone (whole-network training only).
    inner_steps : int, default=5
        Adam steps on the support set, and again on the query set.
    outer_lr : float, default=1e-2
        Outer step size.
    betas : (float, float), default=(0.9, 0.99)
        Adam betas of the inner optimizer.
    weight_decay : float, default=1e-5
        Adam weight decay of the inner optimizer.
    loss : {"mse", "rank", "mse+rank"}, default="mse"
        Training loss of the inner loop (:class:`~sklearn_piaa.nn.AestheticLoss`).
    loss_unit : float, default=1.0
        Its unit of score differences (:func:`sklearn_piaa.nn.loss_unit` of the
        prior's head).
    mixed_precision : bool, default=False
        Run the learner's forward passes under bfloat16 autocast (the loss itself in
        float32); the hand-written head path is then not used.
    """

    #: False for baselines that leave the prior as initialized (no loop is run).
    meta_trains = True
    #: Adapt a batch's tasks together by autograd through :func:`torch.func.vmap`
    #: where possible (see :meth:`step`). Off: on a 2-core CPU this loop measured
    #: slower than one task at a time (its larger tensors are reallocated every step;
    #: ``benchmarks/speed.py``); the hand-written path below stacks tasks without it.
    stacked = False
    #: Train an :class:`~sklearn_piaa.nn.AestheticHead` (head-only mode) with its
    #: hand-written backward pass instead of autograd and a new optimizer per task:
    #: the same updates, faster (``benchmarks/speed.py``). A batch whose tasks' sets
    #: have equal sizes is adapted all at once on stacked copies of the prior
    #: (:class:`~sklearn_piaa.nn.StackedHeadGradient`, one optimizer call per step for
    #: all of them); other batches task by task (:class:`~sklearn_piaa.nn.HeadGradient`,
    #: one inner optimizer whose state is reset per task). Off: autograd throughout.
    fused_head = True
    #: At most this many tasks are stacked at once by the hand-written path (more are
    #: adapted in turns; 1: task by task). On the 2-core CPU of ``benchmarks/speed.py``
    #: the paper's 4 tasks ran 1.2x faster in two stacks of 2 than one at a time, and
    #: only 1.03-1.09x faster all 4 together (each copy adds four times the head's
    #: memory to a step's working set: weights, gradients, Adam moments). On a GPU,
    #: where a step's cost is its kernel launches, larger stacks may pay (not measured).
    max_stacked = 2

    def __init__(self, inner_lr=1e-3, inner_backbone_lr=1e-4, inner_steps=5, outer_lr=1e-2,
                 betas=(0.9, 0.99), weight_decay=1e-5, loss="mse", loss_unit=1.0,
                 mixed_precision=False):
        self.inner_lr = inner_lr
        self.inner_backbone_lr = inner_backbone_lr
        self.inner_steps = inner_steps
        self.outer_lr = outer_lr
        self.betas = betas
        self.weight_decay = weight_decay
        self.criterion = AestheticLoss(loss, unit=loss_unit)
        self.mixed_precision = mixed_precision
        self._fused_module = self._fused = self._reused_optimizer = None
        self._stacked_head = None

    @staticmethod
    def meta_state(module):
        """The tensors the outer update moves: parameters and floating-point buffers.

        BatchNorm running statistics are included so that the prior, used in eval mode,
        carries statistics consistent with its weights.
        """
        state = dict(module.named_parameters())
        state.update((n, b) for n, b in module.named_buffers() if b.is_floating_point())
        return state

    def param_groups(self, learner, lr_scale=1.0):
        """Trainable parameters of the learner: head and backbone at their own rates."""
        backbone, head = [], []
        for name, p in learner.named_parameters():
            if p.requires_grad:
                (backbone if name.startswith("backbone.") else head).append(p)
        groups = [{"params": head, "lr": self.inner_lr * lr_scale}]
        if backbone:
            groups.append({"params": backbone, "lr": self.inner_backbone_lr * lr_scale})
        return groups

    def load_prior(self, prior_state, learner):
        """Overwrite the learner's weights and statistics with the prior's, in place."""
        with torch.no_grad():
            state = self.meta_state(learner)
            # one multi-tensor copy instead of a call per tensor
            torch._foreach_copy_(list(state.values()), [prior_state[n] for n in state])
        learner.train()

    @staticmethod
    def merge(support, query):
        """One set ``(x, y)`` from a task's support and query sets."""
        return (torch.cat([support[0], query[0]]),
                torch.cat([support[1].reshape(-1), query[1].reshape(-1)]))

    def inner_optimizer(self, learner, lr_scale=1.0):
        """A fresh Adam over the learner (see :meth:`param_groups`)."""
        return self.inner_optimizer_for(self.param_groups(learner, lr_scale), lr_scale)

    def _head_gradient(self, module):
        """The hand-written gradient of ``module`` (see ``fused_head``), or None.

        Kept for one module at a time (the learner, or the average baseline's prior);
        a module whose loss a subclass changes keeps autograd.
        """
        if self._fused_module is not module:
            use = (self.fused_head and not self.mixed_precision
                   and type(self).loss is MetaLearner.loss)
            self._fused_module, self._reused_optimizer = module, None
            self._fused = HeadGradient.for_module(module) if use else None
        return self._fused

    def reset_inner_optimizer(self, learner, lr_scale=1.0):
        """An inner optimizer over the learner as :meth:`inner_optimizer` makes it.

        With the hand-written head gradient, one optimizer serves every task: its state
        is zeroed in place (for Adam exactly a fresh optimizer's, without allocating and
        faulting in two weight-sized moment buffers per task) and its learning rates set.
        """
        if self._head_gradient(learner) is None:
            return self.inner_optimizer(learner, lr_scale)
        optimizer = self._reused_optimizer
        if optimizer is None:
            optimizer = self._reused_optimizer = self.inner_optimizer(learner, lr_scale)
            return optimizer
        return self._renew(optimizer, learner, lr_scale)

    def _renew(self, optimizer, learner, lr_scale):
        """``optimizer`` as new (:func:`~sklearn_piaa.nn.adam.reset_optimizer`), its
        groups' learning rates those of :meth:`param_groups`, its betas and weight decay
        the learner's now (a user may change them between steps)."""
        reset_optimizer(optimizer)
        settings = self.inner_settings()
        for group, fresh in zip(optimizer.param_groups, self.param_groups(learner, lr_scale)):
            group.update(settings)
            group["lr"] = fresh["lr"]
        return optimizer

    def inner_settings(self):
        """The inner optimizer's settings besides its learning rates.

        What :meth:`inner_optimizer_for` gives a new optimizer; an optimizer kept from
        task to task is given them again at each task, as a user may change them
        between steps. A subclass with another optimizer returns its own.

        Returns
        -------
        dict
            Adam's ``betas`` and ``weight_decay``.
        """
        return {"betas": tuple(self.betas), "weight_decay": self.weight_decay}

    def inner_optimizer_for(self, params, lr_scale=1.0):
        """The inner optimizer over ``params`` (tensors or param groups): fused Adam."""
        return torch.optim.Adam(params, lr=self.inner_lr * lr_scale, fused=True,
                                **self.inner_settings())

    def loss(self, learner, x, y):
        """The training loss of ``learner`` on ``(x, y)``: by default squared error, the
        paper's."""
        if not self.mixed_precision:
            return self.criterion(learner(x), y)
        with autocast(x.device):
            pred = learner(x)
        return self.criterion(pred.float(), y)

    def adapt(self, learner, optimizer, x, y):
        """``inner_steps`` optimizer steps on one set; returns the last loss.

        With ``inner_steps=0`` no weight is updated and the loss of the unchanged learner
        is returned; that loss is computed in training mode, so its BatchNorm running
        statistics still take in the batch.
        """
        if self.inner_steps == 0:
            with torch.no_grad():
                return float(self.loss(learner, x, y))
        for _ in range(self.inner_steps):
            loss = self.backward(learner, optimizer, x, y)
            adam_step(optimizer)
        return float(loss.detach())

    def backward(self, learner, optimizer, x, y):
        """Leave the gradient of :meth:`loss` on ``(x, y)`` in the learner's ``.grad``.

        By the head's hand-written backward pass where it applies (see ``fused_head``),
        else by autograd. Returns the loss (before the step).
        """
        fused = self._head_gradient(learner)
        if fused is not None and HeadGradient.supports_batch(x):
            return fused.loss_backward(x, y, self.criterion)[0]
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss(learner, x, y)
        loss.backward()
        return loss

    def phases(self, support, query):
        """The sets a task's inner loop runs on, in order, ``inner_steps`` steps each.

        BLG-PIAA: the support set, then the query set, with one optimizer throughout.
        """
        return [support, query]

    def adapt_task(self, prior_state, learner, support, query, lr_scale=1.0):
        """Load the prior into ``learner`` and adapt it on each of :meth:`phases`.

        Returns the last loss (on the last phase's set).
        """
        self.load_prior(prior_state, learner)
        optimizer = self.reset_inner_optimizer(learner, lr_scale)
        for x, y in self.phases(support, query):
            loss = self.adapt(learner, optimizer, x, y)
        return loss

    def state_dict(self):
        """State the algorithm carries across iterations (for checkpoints); none here."""
        return {}

    def load_state_dict(self, state, prior):
        """Restore :meth:`state_dict` for training ``prior``."""

    def init_accumulator(self, prior):
        """Zeroed storage for what the tasks of one batch contribute."""
        return {n: torch.zeros_like(t) for n, t in self.meta_state(prior).items()}

    def accumulate(self, acc, prior_state, learner):
        """Add one adapted task to ``acc``; overridden by each algorithm."""
        raise NotImplementedError

    def outer_update(self, prior, acc, n_tasks):
        """Move the prior given the accumulated task contributions."""
        raise NotImplementedError

    def step(self, prior, learner, tasks, lr_scale=1.0):
        """One outer iteration over ``tasks``, a list of ``((x_s, y_s), (x_q, y_q))``.

        Algorithms with ``accumulate_stacked`` adapt all tasks at once when they can
        (every parameter trainable, every task's support and query sets of equal
        sizes): the same updates, run as batched matrix products and one optimizer
        call per step instead of one per task -- by autograd through
        :func:`torch.func.vmap` with ``stacked``, else by the hand-written head step in
        head-only training (``fused_head``).

        Returns the mean over tasks of the loss :meth:`adapt` returns on the query set
        (see ``history_`` of :class:`~sklearn_piaa.MetaAestheticRegressor`: for BLG,
        before its last step on that set).
        """
        if self.stacked and hasattr(self, "accumulate_stacked") and stackable(learner, tasks):
            return self.step_stacked(prior, learner, tasks, lr_scale)
        if self._stacks_heads(learner, tasks):
            return self._step_stacked_heads(prior, learner, tasks, lr_scale)
        prior_state = {n: t.detach().clone() for n, t in self.meta_state(prior).items()}
        acc = self.init_accumulator(prior)
        losses = []
        for support, query in tasks:
            losses.append(self.adapt_task(prior_state, learner, support, query, lr_scale))
            self.accumulate(acc, prior_state, learner)
        with torch.no_grad():
            self.outer_update(prior, acc, len(tasks))
        return sum(losses) / len(losses)

    def _stacks_heads(self, learner, tasks):
        """Whether :meth:`step` adapts ``tasks`` on stacked heads (see ``fused_head``).

        Where the hand-written head step applies to a batch of tasks whose sets have
        equal sizes of two or more rows, for algorithms that adapt each task as
        :class:`MetaLearner` does and accumulate stacked tasks (``accumulate_stacked``).
        """
        return (self.max_stacked >= 2 and hasattr(self, "accumulate_stacked")
                and self.inner_steps >= 1
                and all(getattr(type(self), m) is getattr(MetaLearner, m)
                        for m in ("adapt", "adapt_task", "backward"))
                and stackable(learner, tasks) and self._head_gradient(learner) is not None
                and all(HeadGradient.supports_batch(x) for x, _ in self.phases(*tasks[0])))

    def _stacked_heads(self, learner, n_copies):
        """``(StackedHeadGradient, optimizer)`` of ``n_copies`` copies of ``learner``.

        Kept per number of copies (a batch and its remainder) for one learner.
        """
        if self._stacked_head is None or self._stacked_head[0] is not learner:
            self._stacked_head = (learner, {})
        cache = self._stacked_head[1]
        if n_copies not in cache:
            head = StackedHeadGradient(learner, n_copies)
            cache[n_copies] = head, self.inner_optimizer_for(head.parameters())
        return cache[n_copies]

    def _step_stacked_heads(self, prior, learner, tasks, lr_scale):
        """:meth:`step` on stacked copies of the prior, ``max_stacked`` tasks at a time."""
        prior_state = {n: t.detach() for n, t in self.meta_state(prior).items()}
        acc = self.init_accumulator(prior)
        losses = []
        for first in range(0, len(tasks), self.max_stacked):
            chunk = tasks[first:first + self.max_stacked]
            head, optimizer = self._stacked_heads(learner, len(chunk))
            head.load(prior_state)
            self._renew(optimizer, learner, lr_scale)  # one optimizer for the chunk, as new
            for phase in zip(*(self.phases(s, q) for s, q in chunk)):
                x = head.stack_inputs([x for x, _ in phase])
                y = torch.stack([y.reshape(-1) for _, y in phase])
                for _ in range(self.inner_steps):
                    loss = head.loss_backward(x, y, self.criterion)
                    adam_step(optimizer)
            losses.append(loss)
            with torch.no_grad():
                self.accumulate_stacked(acc, prior_state, head.state(), len(chunk))
        with torch.no_grad():
            self.outer_update(prior, acc, len(tasks))
        return float(torch.cat(losses).mean())

    def step_stacked(self, prior, learner, tasks, lr_scale=1.0):
        """:meth:`step` with the tasks' inner loops run together on stacked weights."""
        prior_state = {n: t.detach().clone() for n, t in self.meta_state(prior).items()}
        learner.train()
        params, buffers = stack_state(learner, prior_state, len(tasks))
        # by name, as param_groups: a stacked backbone trains at inner_backbone_lr
        groups = [{"params": [p for n, p in params.items() if not n.startswith("backbone.")],
                   "lr": self.inner_lr * lr_scale}]
        backbone = [p for n, p in params.items() if n.startswith("backbone.")]
        if backbone:
            groups.append({"params": backbone, "lr": self.inner_backbone_lr * lr_scale})
        optimizer = self.inner_optimizer_for(groups, lr_scale)
        sets = [self.phases(s, q) for s, q in tasks]
        for phase in range(len(sets[0])):
            x = torch.stack([task[phase][0] for task in sets])
            y = torch.stack([task[phase][1].reshape(-1) for task in sets])
            losses = stacked_adapt(learner, params, buffers, optimizer, x, y,
                                   self.inner_steps, self.loss)
        acc = self.init_accumulator(prior)
        with torch.no_grad():
            self.accumulate_stacked(acc, prior_state, {**params, **buffers}, len(tasks))
            self.outer_update(prior, acc, len(tasks))
        return float(losses.mean())
