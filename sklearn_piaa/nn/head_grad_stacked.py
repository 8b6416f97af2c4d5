"""The hand-written head step of :mod:`.head_grad`, for ``k`` copies of a head at once.

The inner loop of head-only meta-training trains ``k`` copies of the prior, one per
task, on sets of the same size. Stacking the copies along a task axis turns each
step's dozens of small kernels per copy (batch norm, PReLU, dropout, their backward
passes) into the same kernels once, on ``k`` times the data, and the matrix products
into batched ones; the arithmetic of every copy is the one :class:`HeadGradient` does
for it alone. On the 2-core CPU of ``benchmarks/speed.py`` the paper's outer iteration
(4 tasks) ran about 1.2x faster in two stacks of 2 than one task after another.

Activations are kept feature-major, ``(k, features, rows)``: a layer is then one
``bmm`` of the stacked weights ``(k, out, in)`` plus the bias, and viewed as
``(1, k * features, rows)`` the activations are what :func:`torch.native_batch_norm`
normalizes per channel -- each copy's features over its own rows.
"""

import torch
import torch.nn.functional as F

from .head import AestheticHead
from .head_grad import HeadGradient, _blocks, _mse_and_gradient, _plain_mse, _prelu_backward

__all__ = ["StackedHeadGradient"]


class StackedHeadGradient:
    """Training-mode loss and gradients of ``k`` stacked copies of an :class:`AestheticHead`.

    Holds the copies' parameters and BatchNorm statistics as tensors of shape
    ``(k, *shape)`` (gradients in ``.grad``, buffers reused), so one optimizer over
    :meth:`parameters` steps every copy, and :meth:`state` shows them under the head's
    own names. Each copy computes what :class:`HeadGradient` computes for one head.

    Parameters
    ----------
    head : AestheticHead
        The architecture; only its shapes, dtype, device and score range are read
        (:meth:`load` sets the copies' values). Check :meth:`HeadGradient.supports`.
    n_copies : int
        ``k``, the number of copies.

    Notes
    -----
    Dropout masks are drawn as :class:`HeadGradient` draws them, one draw of shape
    ``(k, features, rows)`` per layer and step, so they differ between copies but are
    not those of ``k`` separate :class:`HeadGradient` runs.
    """

    def __init__(self, head, n_copies):
        parsed = _blocks(head) if isinstance(head, AestheticHead) else None
        if parsed is None:
            raise ValueError("StackedHeadGradient needs an AestheticHead of "
                             f"FC-BN-PReLU-Dropout blocks; got {type(head).__name__}.")
        if int(n_copies) < 1:
            raise ValueError(f"n_copies must be at least 1; got {n_copies}.")
        self.n_copies = k = int(n_copies)
        blocks, out = parsed
        self._blocks = blocks  # dropout rates and BatchNorm settings read as they are now
        names = {id(t): n for n, t in [*head.named_parameters(), *head.named_buffers()]}

        def stack(t):
            return torch.empty((k,) + tuple(t.shape), dtype=t.dtype, device=t.device)

        # parameters and moved buffers under the head's names, each (k, *shape)
        self._params = {n: stack(p) for n, p in head.named_parameters()}
        self._buffers = {n: stack(b) for n, b in head.named_buffers()
                         if b.is_floating_point()}
        for p in self._params.values():
            p.grad = torch.empty_like(p)
        st = {**self._params, **self._buffers}

        def find(t):
            return st[names[id(t)]]

        self._layers = []
        for blk in blocks:
            self._layers.append(tuple(find(t) for t in (
                blk.linear.weight, blk.linear.bias, blk.bn.weight, blk.bn.bias,
                blk.bn.running_mean, blk.bn.running_var, blk.prelu.weight)))
        self._out = find(out.weight), find(out.bias)
        self._low = find(head.score_low).view(k, 1, 1)
        self._span = find(head.score_span).view(k, 1, 1)

    def parameters(self):
        """The stacked parameters, for an optimizer that steps every copy.

        Returns
        -------
        list of Tensor
            ``(k, *shape)`` each, with their ``.grad`` buffers.
        """
        return list(self._params.values())

    def state(self):
        """The copies' parameters and floating-point buffers, by the head's names.

        Returns
        -------
        dict of str to Tensor
            ``(k, *shape)`` each; row ``i`` is copy ``i``. The tensors themselves, not
            copies: changing them changes the copies.
        """
        return {**self._params, **self._buffers}

    @torch.no_grad()
    def load(self, state):
        """Set every copy to the same values.

        Parameters
        ----------
        state : dict of str to Tensor
            A tensor of the head's shape for each name of :meth:`state` (as
            ``MetaLearner.meta_state`` gives them).
        """
        for name, t in self.state().items():
            t.copy_(state[name].unsqueeze(0).expand_as(t))

    @staticmethod
    def stack_inputs(xs):
        """``k`` embedding sets as the input of :meth:`loss_backward`.

        Parameters
        ----------
        xs : sequence of k Tensors of shape (rows, D)

        Returns
        -------
        Tensor of shape (k, D, rows)
        """
        return torch.stack([x.t() for x in xs])

    @torch.no_grad()
    def _forward(self, x):
        k, saved, h = self.n_copies, [], x
        for (w, b, gamma, beta, mean_run, var_run, alpha), blk in zip(self._layers,
                                                                      self._blocks):
            p, eps, momentum = blk.p, float(blk.bn.eps), float(blk.bn.momentum)
            # product, then bias: at 80 rows 1.2x faster than baddbmm (CPU of speed.py)
            z = torch.bmm(w, h).add_(b.unsqueeze(2))
            feats, rows = z.shape[1], z.shape[2]
            a, mean, invstd = torch.native_batch_norm(
                z.view(1, k * feats, rows), gamma.view(-1), beta.view(-1),
                mean_run.view(-1), var_run.view(-1), True, momentum, eps)
            if alpha.shape[1] == 1:  # one slope per copy: copies as channels
                out = F.prelu(a.view(1, k, feats * rows), alpha.view(-1))
            else:  # a slope per unit: units as channels
                out = F.prelu(a, alpha.view(-1))
            out = out.view(k, feats, rows)
            mask = None
            if p > 0.0:
                mask = HeadGradient._dropout_mask(out, p)
                out = out.mul_(mask)
            saved.append((h, z, mean, invstd, a.view(k, feats, rows), mask))
            h = out
        w, b = self._out
        sig = torch.sigmoid(torch.baddbmm(b.unsqueeze(2), w, h))  # (k, 1, rows)
        return self._low + self._span * sig, (saved, h, sig)

    @torch.no_grad()
    def _backward(self, grad_out, cache):
        k = self.n_copies
        saved, h, sig = cache
        grad = grad_out * self._span * (sig - sig.square())
        w, b = self._out
        torch.bmm(grad, h.transpose(1, 2), out=w.grad)
        torch.sum(grad, 2, out=b.grad)
        grad = torch.bmm(w.transpose(1, 2), grad)
        for i in range(len(self._layers) - 1, -1, -1):
            w, b, gamma, beta, mean_run, var_run, alpha = self._layers[i]
            h_in, z, mean, invstd, a, mask = saved[i]
            feats, rows = z.shape[1], z.shape[2]
            if mask is not None:
                grad = grad.mul_(mask)
            per_copy = alpha.shape[1] == 1
            grad, neg_part = _prelu_backward(
                a, grad, alpha.view(k, 1, 1) if per_copy else alpha.unsqueeze(2))
            if per_copy:
                torch.sum(neg_part.view(k, -1), 1, keepdim=True, out=alpha.grad)
            else:
                torch.sum(neg_part, 2, out=alpha.grad)
            grad, g_gamma, g_beta = torch.ops.aten.native_batch_norm_backward(
                grad.view(1, k * feats, rows), z.view(1, k * feats, rows), gamma.view(-1),
                mean_run.view(-1), var_run.view(-1), mean, invstd, True,
                float(self._blocks[i].bn.eps),
                [True, True, True])
            gamma.grad.view(-1).copy_(g_gamma)
            beta.grad.view(-1).copy_(g_beta)
            grad = grad.view(k, feats, rows)
            torch.bmm(grad, h_in.transpose(1, 2), out=w.grad)
            torch.sum(grad, 2, out=b.grad)
            if i > 0:
                grad = torch.bmm(w.transpose(1, 2), grad)

    def loss_backward(self, x, y, criterion):
        """Forward, loss and backward of every copy on its own batch.

        Parameters
        ----------
        x : Tensor of shape (k, D, N), N >= 2
            Copy ``i``'s embeddings, one column per image (:meth:`stack_inputs`).
        y : Tensor of shape (k, N)
            Ratings.
        criterion : callable
            ``criterion(pred, y_i)`` -> scalar tensor, ``pred`` of shape (N, 1), applied
            to each copy.

        Returns
        -------
        Tensor of shape (k,)
            Each copy's loss, detached.
        """
        k, n = self.n_copies, x.shape[2]
        pred, cache = self._forward(x)
        if _plain_mse(criterion):
            # each copy's mean over its own N rows; pred is (k, 1, N)
            losses, grad_out = _mse_and_gradient(pred, y, criterion.unit, copies=k)
        else:
            leaf = pred.detach().view(k, n, 1).requires_grad_(True)
            with torch.enable_grad():
                losses = torch.stack([criterion(leaf[i], y[i]) for i in range(k)])
                (grad_out,) = torch.autograd.grad(losses.sum(), leaf)
            grad_out = grad_out.view(k, 1, n)
        self._backward(grad_out, cache)
        return losses.detach()
