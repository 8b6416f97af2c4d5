"""The aesthetic head's training-mode forward and backward passes, written out by hand.

Training the head over cached embeddings is the inner loop of head-only meta-training
and of personalization; autograd spends most of that time on bookkeeping and fresh
allocations around a handful of small matrix products. :class:`HeadGradient` computes
the same loss and the same parameter gradients (and moves BatchNorm running statistics
exactly as :class:`torch.nn.BatchNorm1d` does), writing the two large weight gradients
into buffers it keeps, so an optimizer step can follow without any allocation of
weight-sized memory.

The loss itself stays with autograd: it is applied to the head's ``(N, 1)`` output, a
tensor of ``N`` numbers, so any criterion (squared error, rank losses) works unchanged.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .head import AestheticHead
from .losses import AestheticLoss

__all__ = ["HeadGradient"]


class _Block:
    """One FC-BN-PReLU-Dropout block's modules."""

    def __init__(self, linear, bn, prelu, dropout):
        self.linear, self.bn, self.prelu, self.dropout = linear, bn, prelu, dropout

    @property
    def p(self):
        """The dropout rate as the layer has it now (a user may change it between fits)."""
        return float(self.dropout.p)


def _blocks(head):
    """The head's FC-BN-PReLU-Dropout blocks and output layer, or None if it is another shape."""
    layers = list(head.layers)
    if not layers or len(layers) % 4 != 1 or not isinstance(layers[-1], nn.Linear):
        return None
    blocks = []
    for i in range(0, len(layers) - 1, 4):
        linear, bn, prelu, drop = layers[i:i + 4]
        if not (type(linear) is nn.Linear and linear.bias is not None
                and isinstance(bn, nn.BatchNorm1d) and bn.affine and bn.track_running_stats
                and bn.momentum is not None and type(prelu) is nn.PReLU
                and type(drop) is nn.Dropout):
            return None
        blocks.append(_Block(linear, bn, prelu, drop))
    if type(layers[-1]) is not nn.Linear or layers[-1].bias is None:
        return None
    return blocks, layers[-1]


#: Batches of at most this many rows (on a CPU) are multiplied as ``W @ h.T`` and
#: transposed back: the same product, but on the 2-core Xeon of ``benchmarks/speed.py``
#: the BLAS kernel for a few rows times a transposed weight ran the 1024 -> 512 layer
#: at half the rate (0.27-0.45 ms against 0.14-0.21 ms at 16-40 rows), no faster from
#: about 50 rows on.
_TRANSPOSED_ROWS = 40


def _linear(h, weight, bias):
    """``h @ weight.T + bias``, by the faster of two layouts (``_TRANSPOSED_ROWS``)."""
    if h.shape[0] <= _TRANSPOSED_ROWS and h.device.type == "cpu":
        return torch.addmm(bias.unsqueeze(1), weight, h.t()).t().contiguous()
    return torch.addmm(bias, h, weight.t())


_SHIFTS = {}


def _bit_shifts(device):
    """``0, 1, ..., 62`` as int64 on ``device``, made once per device (a hot path)."""
    shifts = _SHIFTS.get(device)
    if shifts is None:
        shifts = _SHIFTS[device] = torch.arange(63, dtype=torch.int64, device=device)
    return shifts


def _prelu_backward(a, grad, slope):
    """PReLU's input gradient and ``min(a, 0) * grad`` (summed, the slope's gradient).

    ``grad`` is overwritten; ``slope`` broadcasts against ``a``. The input gradient is
    ``grad`` where ``a > 0`` and ``slope * grad`` elsewhere, computed in float arithmetic
    only: boolean tensors (comparisons, ``where``) cost several times a multiply on CPU.
    """
    positive = a.sign().clamp_(min=0.0)  # 1 where a > 0, else 0
    negative = positive.neg().add_(1.0)
    neg_part = a.clamp(max=0.0).mul_(grad)
    # 1 or the slope, exactly (1 + 0 * slope, 0 + 1 * slope): one product with grad
    return grad.mul_(torch.addcmul(positive, negative, slope)), neg_part


def _plain_mse(criterion):
    """Whether ``criterion`` is the package's squared error, unchanged by a subclass or
    by forward hooks (which only a call of the module runs)."""
    from torch.nn.modules import module

    return (isinstance(criterion, AestheticLoss) and criterion.kind == "mse"
            and type(criterion).forward is AestheticLoss.forward
            and not (criterion._forward_hooks or criterion._forward_pre_hooks
                     or getattr(module, "_global_forward_hooks", None)
                     or getattr(module, "_global_forward_pre_hooks", None)))


def _mse_and_gradient(pred, y, unit=1.0, copies=None):
    """``AestheticLoss("mse", unit=unit)`` of ``pred`` and its gradient, as autograd
    computes them.

    The same operations in the same order (mean's ``1 / N``, then times the power
    rule's ``2 d``, then the unit's division), so the gradient is bit for bit
    autograd's, without its graph. With ``copies=k``, ``pred`` and ``y`` hold ``k``
    copies' rows one after another, and each copy's loss is the mean over its own
    rows (a tensor of ``k`` losses).
    """
    d = pred.reshape(-1) - y.reshape(-1).to(pred.dtype)
    if copies is not None:
        d = d.view(copies, -1)
    if unit != 1.0:
        d = d / unit
    loss = torch.mean(d ** 2) if copies is None else torch.mean(d ** 2, 1)
    inv_n = torch.ones((), dtype=pred.dtype, device=pred.device).div_(d.shape[-1])
    grad = (d * 2).mul_(inv_n)
    if unit != 1.0:
        grad = grad.div_(unit)
    return loss, grad.reshape(pred.shape)


class HeadGradient:
    """Loss and parameter gradients of an :class:`~sklearn_piaa.nn.AestheticHead` in training mode.

    Equivalent to ``loss = criterion(head(x), y); loss.backward()`` with ``head`` in
    training mode -- dropout, batch statistics and running-statistics updates included --
    but without autograd: the backward pass is the chain rule through the head's
    layers, and the gradients land in ``p.grad`` buffers that are allocated once and
    reused. Dropout masks are drawn from torch's global generator (``random_()`` bits
    for ``p=0.5``, ``torch.rand`` otherwise), so a seeded run repeats itself, though
    not mask for mask with :class:`torch.nn.Dropout`.

    Parameters
    ----------
    head : AestheticHead
        Trained in place: its parameters receive gradients, its BatchNorm buffers move.
        Check :meth:`supports` first.

    Notes
    -----
    Batches of one image are left to autograd (see :meth:`supports_batch`): the
    package's BatchNorm normalizes them with running statistics instead.
    """

    def __init__(self, head):
        parsed = _blocks(head) if isinstance(head, AestheticHead) else None
        if parsed is None:
            raise ValueError("HeadGradient needs an AestheticHead of FC-BN-PReLU-Dropout "
                             f"blocks; got {type(head).__name__}.")
        self.head = head
        self.blocks, self.out = parsed
        self._layers = tuple(head.layers)
        self._grads = {}

    @staticmethod
    def supports(module):
        """Whether ``module`` is a head this class can train: every parameter trainable."""
        return (isinstance(module, AestheticHead) and _blocks(module) is not None
                and all(p.requires_grad for p in module.parameters()))

    def matches(self, module):
        """Whether ``module`` is still the head this was made for, every parameter trainable.

        A kept instance serves the next batches only while this holds: a layer replaced
        in ``module.layers`` or a parameter frozen (skorch's ``Freezer``, by hand)
        makes another head, which :meth:`for_module` must parse again.

        Parameters
        ----------
        module : torch.nn.Module

        Returns
        -------
        bool
        """
        layers = getattr(module, "layers", ())
        return (module is self.head and len(layers) == len(self._layers)
                and all(a is b for a, b in zip(layers, self._layers))
                and all(p.requires_grad for p in self._parameters()))

    @classmethod
    def for_module(cls, module):
        """A :class:`HeadGradient` of ``module``, or None where :meth:`supports` says no."""
        return cls(module) if cls.supports(module) else None

    @staticmethod
    def supports_batch(x):
        """Whether a batch can take the hand-written path (two or more rows, floating)."""
        return x.ndim == 2 and x.shape[0] >= 2 and x.is_floating_point()

    def _parameters(self):
        """The head's parameters, read from its layers (cheaper than ``parameters()``)."""
        for blk in self.blocks:
            yield from (blk.linear.weight, blk.linear.bias, blk.bn.weight, blk.bn.bias,
                        blk.prelu.weight)
        yield from (self.out.weight, self.out.bias)

    def _attach_grads(self):
        """Give each parameter its reusable gradient buffer (``zero_grad`` may drop them)."""
        for p in self._parameters():
            buf = self._grads.get(p)
            if buf is not None and p.grad is buf:
                continue
            if buf is None or buf.shape != p.shape or buf.device != p.device \
                    or buf.dtype != p.dtype:
                buf = self._grads[p] = torch.empty_like(p)
            p.grad = buf

    @staticmethod
    def _dropout_mask(like, p):
        """Dropout's ``keep / (1 - p)`` mask, keeping each entry with probability ``1 - p``.

        Drawn as ``ceil(u - p)`` of a uniform ``u``, which is 1 exactly when ``u > p``;
        for ``p = 0.5`` (the paper's) from the bits of random integers instead: each
        int64 of ``random_()`` is uniform on ``[0, 2**63)``, so 63 fair coins, where the
        uniform float costs a generator call per entry (3x slower on CPU).
        """
        if p >= 1.0:
            return torch.zeros_like(like)
        if p == 0.5:
            n = like.numel()
            words = torch.empty(-(-n // 63), dtype=torch.int64, device=like.device).random_()
            bits = words.unsqueeze(1).bitwise_right_shift(_bit_shifts(like.device))
            bits = bits.bitwise_and_(1)
            return bits.view(-1)[:n].view(like.shape).to(like.dtype).mul_(2.0)
        u = torch.rand(like.shape, device=like.device, dtype=like.dtype)
        return u.sub_(p).ceil_().mul_(1.0 / (1.0 - p))

    @torch.no_grad()
    def _forward(self, x):
        """Training-mode forward pass; returns the output and what the backward needs."""
        saved, h = [], x
        for blk in self.blocks:
            lin, bn = blk.linear, blk.bn
            z = _linear(h, lin.weight, lin.bias)
            # torch's own batch-norm kernel: batch statistics, running averages moved in
            # place (unbiased variance), exactly as BatchNorm1d.forward in training mode.
            a, mean, invstd = torch.native_batch_norm(
                z, bn.weight, bn.bias, bn.running_mean, bn.running_var, True, bn.momentum,
                bn.eps)
            bn.num_batches_tracked.add_(1)
            out = F.prelu(a, blk.prelu.weight)
            mask = None
            if blk.p > 0.0:
                mask = self._dropout_mask(out, blk.p)
                out = out.mul_(mask)
            saved.append((h, z, mean, invstd, a, mask))
            h = out
        z = torch.addmm(self.out.bias, h, self.out.weight.t())
        sig = torch.sigmoid(z)
        return self.head.score_low + self.head.score_span * sig, (saved, h, sig)

    @torch.no_grad()
    def _backward(self, grad_out, cache):
        """Chain rule from ``d loss / d output`` to every parameter's ``.grad``."""
        saved, h, sig = cache
        # Through the sigmoid: d sig = sig * (1 - sig).
        grad = grad_out * self.head.score_span * (sig - sig.square())
        torch.mm(grad.t(), h, out=self.out.weight.grad)
        torch.sum(grad, 0, out=self.out.bias.grad)
        grad = grad @ self.out.weight
        for i in range(len(self.blocks) - 1, -1, -1):
            blk = self.blocks[i]
            bn, lin, alpha = blk.bn, blk.linear, blk.prelu.weight
            h_in, z, mean, invstd, a, mask = saved[i]
            if mask is not None:
                grad = grad.mul_(mask)
            grad, neg_part = _prelu_backward(a, grad, alpha)
            if alpha.numel() == 1:
                alpha.grad.copy_(neg_part.sum().reshape(alpha.shape))
            else:
                torch.sum(neg_part, 0, out=alpha.grad)
            grad, g_weight, g_bias = torch.ops.aten.native_batch_norm_backward(
                grad, z, bn.weight, bn.running_mean, bn.running_var, mean, invstd, True,
                bn.eps, [True, True, True])
            bn.weight.grad.copy_(g_weight)
            bn.bias.grad.copy_(g_bias)
            torch.mm(grad.t(), h_in, out=lin.weight.grad)
            torch.sum(grad, 0, out=lin.bias.grad)
            if i > 0:
                grad = grad @ lin.weight

    def loss_backward(self, x, y, criterion):
        """Forward, loss and backward on one batch; gradients land in ``p.grad``.

        Parameters
        ----------
        x : Tensor of shape (N, D), N >= 2
            Embeddings.
        y : Tensor
            Ratings, any shape ``criterion`` accepts.
        criterion : callable
            ``criterion(pred, y)`` -> scalar tensor, ``pred`` of shape (N, 1).

        Returns
        -------
        loss : Tensor
            Scalar, detached.
        pred : Tensor of shape (N, 1)
            The training-mode output, detached.
        """
        self._attach_grads()
        pred, cache = self._forward(x)
        if _plain_mse(criterion):
            loss, grad_out = _mse_and_gradient(pred, y, criterion.unit)
        else:
            leaf = pred.detach().requires_grad_(True)
            with torch.enable_grad():
                loss = criterion(leaf, y)
                (grad_out,) = torch.autograd.grad(loss, leaf)
        self._backward(grad_out, cache)
        return loss.detach(), pred
