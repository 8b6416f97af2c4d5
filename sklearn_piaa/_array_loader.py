"""Mini-batches of in-memory arrays by slicing, as a torch ``DataLoader`` would yield them.

skorch hands every batch through a ``DataLoader``: one ``Dataset.__getitem__`` call per
row and a ``default_collate`` that stacks the rows again. For embeddings held in memory
that bookkeeping costs more than the network: a tenth of a second of a personalization,
a third of a 10,000-row prediction. :class:`ArrayLoader` yields the same batches -- the
same rows in the same order, the same dtypes and shapes, and the same draws from torch's
global generator -- by indexing the whole arrays once per batch.
"""

import numpy as np
import torch
from skorch.dataset import Dataset
from torch.utils.data import DataLoader

__all__ = ["ArrayLoader", "array_loader"]

# DataLoader arguments whose defaults ArrayLoader reproduces; any other setting (a
# sampler, a collate_fn, workers, pinned memory, ...) keeps the DataLoader.
_HANDLED = {"batch_size", "shuffle", "drop_last"}


def _as_tensor(a):
    return a if isinstance(a, torch.Tensor) else torch.from_numpy(a)


class ArrayLoader:
    """Batches ``[X[idx], y[idx]]`` of a :class:`skorch.dataset.Dataset` over arrays.

    Parameters
    ----------
    X : ndarray or Tensor of shape (N, ...)
    y : ndarray or Tensor of shape (N, ...) or None
        ``None`` yields zeros of shape ``(B, 1)``, as skorch's ``Dataset`` does.
    batch_size : int
    shuffle : bool, default=False
    drop_last : bool, default=False
    draws : bool, default=True
        Draw what the ``DataLoader`` draws (see Notes). False, for prediction, where
        nothing depends on the draws: then an unshuffled iteration touches no generator.

    Notes
    -----
    Iterating draws from torch's global generator exactly what a single-process
    ``DataLoader`` draws (a base seed, then the ``RandomSampler``'s seed when
    shuffling), so dropout masks and later draws are unchanged by the swap. Unshuffled
    batches of C-ordered arrays are views of them (the ``DataLoader`` copies): the
    package's modules never write to their input.
    """

    def __init__(self, X, y, batch_size, shuffle=False, drop_last=False, draws=True):
        self.X, self.y = _as_tensor(X), None if y is None else _as_tensor(y)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.draws = draws or shuffle

    def __len__(self):
        n, b = len(self.X), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        n = len(self.X)
        if self.draws:
            # _BaseDataLoaderIter draws a base seed for workers even when there are none.
            torch.empty((), dtype=torch.int64).random_()
        order = None
        if self.shuffle:
            # RandomSampler: a seed from the global generator, a private one for randperm.
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            stop = min(start + self.batch_size, n)
            if order is None:
                Xb = self.X[start:stop]
                yb = None if self.y is None else self.y[start:stop]
            else:
                idx = order[start:stop]
                Xb = self.X.index_select(0, idx)
                yb = None if self.y is None else self.y.index_select(0, idx)
            if yb is None:
                yb = torch.zeros(stop - start, 1)
            # default_collate stacks rows into fresh contiguous tensors; so do these
            # (a no-op for slices of C-ordered data), for identical matmul paths. A slice
            # may start off the allocator's 64-byte alignment, where one-thread products
            # can round the last bit otherwise; copying each batch to align it would
            # cost prediction about a tenth of its time, so slices are kept.
            yield [Xb.contiguous(), yb.contiguous()]


def array_loader(dataset, iterator, kwargs, draws=True):
    """An :class:`ArrayLoader` standing in for ``iterator(dataset, **kwargs)``, or None.

    Only where the result is the same: skorch's own ``Dataset`` over a plain array or
    tensor (and ``y`` an array, tensor or None), a plain ``DataLoader``, and no
    ``DataLoader`` argument beyond ``batch_size``, ``shuffle`` and ``drop_last``.

    Parameters
    ----------
    dataset : torch Dataset
        What skorch would hand to the iterator.
    iterator : type
        The net's ``iterator_train`` or ``iterator_valid``.
    kwargs : dict
        The iterator's arguments, ``batch_size`` resolved to a number as skorch does.
    draws : bool, default=True
        See :class:`ArrayLoader`.

    Returns
    -------
    ArrayLoader or None
        None where the ``DataLoader`` must run.
    """
    if iterator is not DataLoader or type(dataset) is not Dataset or set(kwargs) - _HANDLED:
        return None
    X, y = dataset.X, dataset.y
    arrays = (np.ndarray, torch.Tensor)
    if not isinstance(X, arrays) or not (y is None or isinstance(y, arrays)) \
            or getattr(X, "ndim", 0) < 1 or (y is not None and len(y) != len(X)):
        return None
    if any(isinstance(a, np.ndarray) and (a.dtype.kind not in "biufc" or not a.flags.writeable
                                          or any(s < 0 for s in a.strides))
           for a in (X, y)):
        return None  # default_collate's own conversions (and warnings) apply there
    batch_size = kwargs["batch_size"]
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        return None
    return ArrayLoader(X, y, int(batch_size), bool(kwargs.get("shuffle", False)),
                       bool(kwargs.get("drop_last", False)), draws)
