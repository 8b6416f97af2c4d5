"""A fused Adam step without the per-call bookkeeping of :meth:`torch.optim.Adam.step`.

Training the head over cached embeddings takes hundreds of small Adam steps; around
each call of torch's fused kernel, ``Adam.step`` spends a few hundred microseconds on
Python bookkeeping and on one increment per step counter -- a third of the step on a
2-core CPU. :func:`adam_step` calls the same kernel with the optimizer's own state and
hyperparameters, so the update is bit for bit the one ``optimizer.step()`` makes, and
keeps every step counter as a view into one tensor, so one increment serves them all.
Anything else (another optimizer, ``amsgrad``, a tensor learning rate, a torch without
the kernel, step hooks or a learning-rate scheduler's wrapped ``step``) goes through
``optimizer.step()`` unchanged.
"""

import torch

__all__ = ["adam_step", "is_plain_fused_adam", "reset_optimizer"]

_KERNEL = getattr(torch, "_fused_adam_", None)


def is_plain_fused_adam(optimizer):
    """Whether :func:`adam_step` calls the fused kernel itself for ``optimizer``.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer or None

    Returns
    -------
    bool
        True for a ``torch.optim.Adam(..., fused=True)`` without amsgrad, capturable,
        differentiable or decoupled weight decay, with float hyperparameters.
    """
    if _KERNEL is None or type(optimizer) is not torch.optim.Adam:
        return False
    for group in optimizer.param_groups:
        if not group.get("fused") or group.get("amsgrad") or group.get("capturable") \
                or group.get("differentiable") or group.get("decoupled_weight_decay") \
                or not isinstance(group["lr"], float) or not isinstance(group["betas"][0], float):
            return False
    return True


def _watched(optimizer):
    """Whether something expects ``optimizer.step()`` to run: step hooks, or a ``step``
    wrapped on the instance (a learning-rate scheduler's, which notes the call)."""
    from torch.optim import optimizer as module

    return "step" in vars(optimizer) or any(
        getattr(owner, name, None) for owner, name in (
            (optimizer, "_optimizer_step_pre_hooks"), (optimizer, "_optimizer_step_post_hooks"),
            (module, "_global_optimizer_pre_hooks"), (module, "_global_optimizer_post_hooks")))


def _group_state(optimizer, group):
    """The group's ``(params, grads, exp_avgs, exp_avg_sqs, steps tensor)``.

    A missing state is created as ``Adam`` creates it, except that the step counters
    are views into one tensor (kept under the first parameter's state).
    """
    params = [p for p in group["params"] if p.grad is not None]
    states = [optimizer.state[p] for p in params]
    if not params:
        return None
    first = states[0]
    counters = first.get("_steps")
    # One counter per parameter stepped now, in order: a parameter without a gradient
    # this time is not stepped, and its count must not move (as in Adam.step).
    if counters is None or counters.numel() != len(states) \
            or any("step" not in s for s in states) \
            or any(s["step"]._base is not counters or s["step"].storage_offset() != i
                   for i, s in enumerate(states)):
        old = [float(s["step"]) if "step" in s else 0.0 for s in states]
        counters = torch.tensor(old, dtype=torch.float32, device=params[0].device)
        for i, (p, s) in enumerate(zip(params, states)):
            s["step"] = counters[i]
            if "exp_avg" not in s:
                s["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                s["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        first["_steps"] = counters
    return (params, [p.grad for p in params], [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states], counters, [s["step"] for s in states])


@torch.no_grad()
def adam_step(optimizer):
    """``optimizer.step()``, with torch's fused Adam kernel called directly where it applies.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Anything but a plain ``torch.optim.Adam(..., fused=True)`` is stepped as usual.
    """
    if not is_plain_fused_adam(optimizer) or _watched(optimizer):
        optimizer.step()
        return
    for group in optimizer.param_groups:
        state = _group_state(optimizer, group)
        if state is None:
            continue
        params, grads, exp_avgs, exp_avg_sqs, counters, steps = state
        counters.add_(1)
        beta1, beta2 = group["betas"]
        _KERNEL(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=group["lr"],
                beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                eps=group["eps"], amsgrad=False, maximize=group["maximize"])


@torch.no_grad()
def reset_optimizer(optimizer):
    """Make ``optimizer`` as if new, reusing its state memory where that is exact.

    Adam's state (step counters and moments) is zeroed in place: a new Adam's first
    step sees exactly that. Other optimizers lose their state.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Changed in place; its parameter groups and hyperparameters are kept.
    """
    if not isinstance(optimizer, torch.optim.Adam):
        optimizer.state.clear()
        return
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                value.zero_()
