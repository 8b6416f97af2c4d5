"""Adapting a batch of tasks at once: the prior's tensors stacked along a task axis.

Every inner update of BLG-PIAA (Adam or SGD, weight decay included) acts elementwise
on the weights, and tasks never share weights, so ``k`` copies of the learner can be
stacked into tensors of shape ``(k, ...)`` and trained as one: :func:`torch.func.vmap`
runs the learner's own ``forward`` on each task's slice (batched matrix products),
the per-task losses are summed (each slice's gradient is its task's gradient), and one
optimizer call updates all copies. The arithmetic is that of ``k`` separate runs; the
Python work and the optimizer calls are shared.
"""

import torch
from torch.func import functional_call, vmap

__all__ = ["stackable", "stack_state", "stacked_adapt"]


def stackable(learner, tasks):
    """Whether the tasks can be adapted together on ``learner``.

    Needs every parameter trainable (head-only training: a frozen backbone has no
    business being copied ``k`` times) and every task's support and query sets of the
    same sizes as the first task's.
    """
    if len(tasks) < 2 or not all(p.requires_grad for p in learner.parameters()):
        return False
    (xs, ys), (xq, yq) = tasks[0]
    shapes = (xs.shape, ys.numel(), xq.shape, yq.numel())
    return all((s[0].shape, s[1].numel(), q[0].shape, q[1].numel()) == shapes
               for s, q in tasks[1:])


def stack_state(learner, prior_state, k):
    """``k`` copies of the prior: stacked leaf parameters and stacked buffers."""
    params = {n: prior_state[n].detach().unsqueeze(0).repeat(k, *[1] * p.ndim)
              .requires_grad_() for n, p in learner.named_parameters()}
    buffers = {n: (prior_state[n] if n in prior_state else b).detach().unsqueeze(0)
               .repeat(k, *[1] * b.ndim) for n, b in learner.named_buffers()}
    return params, buffers


def stacked_adapt(learner, params, buffers, optimizer, x, y, steps, loss):
    """``steps`` optimizer steps of every task on its own ``(x[i], y[i])``.

    Parameters
    ----------
    learner : nn.Module
        Supplies ``forward`` (its own weights are not used).
    params, buffers : dict of Tensor
        Stacked state from :func:`stack_state`; updated in place (BatchNorm running
        statistics by the forward passes).
    optimizer : torch.optim.Optimizer
        Over ``params.values()``.
    x, y : Tensor of shape (k, n, ...) and (k, n)
    steps : int
    loss : callable
        ``loss(model, x, y)`` for one task, ``model`` a callable.

    Returns
    -------
    Tensor of shape (k,)
        Each task's loss at its last step (before that step's update).
    """
    def task_loss(p, b, xi, yi):
        return loss(lambda inp: functional_call(learner, (p, b), (inp,)), xi, yi)

    # Dropout masks differ between tasks, as they would in separate runs.
    batched = vmap(task_loss, randomness="different")
    if steps == 0:
        with torch.no_grad():
            return batched(params, buffers, x, y)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        losses = batched(params, buffers, x, y)
        losses.sum().backward()
        optimizer.step()
    return losses.detach()
