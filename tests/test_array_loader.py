"""Slicing batches of in-memory arrays yields exactly what skorch's DataLoader yields."""

import numpy as np
import pytest
import torch
from skorch.dataset import Dataset
from torch.utils.data import DataLoader

from sklearn_piaa._array_loader import ArrayLoader, array_loader


def _batches(loader, seed):
    torch.manual_seed(seed)
    batches = [[t.clone() for t in batch] for batch in loader]
    return batches, torch.rand(4)  # what the generator gives next


@pytest.mark.parametrize("kind", ["numpy", "tensor", "no_y"])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_same_batches_and_draws_as_dataloader(kind, shuffle, drop_last):
    rng = np.random.RandomState(0)
    X = rng.randn(23, 5).astype(np.float32)
    y = rng.rand(23, 1).astype(np.float32)
    if kind == "tensor":
        X, y = torch.from_numpy(X), torch.from_numpy(y)
    if kind == "no_y":
        y = None
    kwargs = dict(batch_size=4, shuffle=shuffle, drop_last=drop_last)
    dataset = Dataset(X, y)
    fast = array_loader(dataset, DataLoader, kwargs)
    assert isinstance(fast, ArrayLoader)
    got, got_next = _batches(fast, seed=7)
    want, want_next = _batches(DataLoader(dataset, **kwargs), seed=7)
    assert len(got) == len(want) == len(fast)
    for (gx, gy), (wx, wy) in zip(got, want):
        assert gx.dtype == wx.dtype and gy.dtype == wy.dtype
        assert torch.equal(gx, wx) and torch.equal(gy, wy)
    assert torch.equal(got_next, want_next)


def test_float64_and_fortran_order_keep_dataloader_values():
    X = np.asfortranarray(np.random.RandomState(1).randn(10, 3))
    dataset = Dataset(X, None)
    fast = array_loader(dataset, DataLoader, {"batch_size": 3})
    (gx, _), (wx, _) = next(iter(fast)), next(iter(DataLoader(dataset, batch_size=3)))
    assert gx.dtype == torch.float64 and gx.is_contiguous() and torch.equal(gx, wx)


class _OwnDataset(Dataset):
    pass


@pytest.mark.parametrize("case", ["collate_fn", "workers", "subclass", "list", "strings",
                                  "reversed", "read_only", "other_iterator"])
def test_anything_else_keeps_the_dataloader(case):
    X = np.zeros((6, 2), dtype=np.float32)
    dataset, iterator, kwargs = Dataset(X, None), DataLoader, {"batch_size": 2}
    if case == "collate_fn":
        kwargs["collate_fn"] = list
    elif case == "workers":
        kwargs["num_workers"] = 1
    elif case == "subclass":
        dataset = _OwnDataset(X, None)
    elif case == "list":
        dataset = Dataset(X.tolist(), None)
    elif case == "strings":
        dataset = Dataset(np.array([["a"]] * 6), None)
    elif case == "reversed":
        dataset = Dataset(X[::-1], None)
    elif case == "read_only":
        X.setflags(write=False)
    elif case == "other_iterator":
        iterator = type("Loader", (DataLoader,), {})
    assert array_loader(dataset, iterator, kwargs) is None


@pytest.fixture(params=["as_set", 1])
def torch_threads(request):
    if request.param == "as_set":
        yield torch.get_num_threads()
        return
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        torch.set_num_threads(before)


def test_personalized_net_fits_and_predicts_the_same_either_way(monkeypatch, torch_threads):
    from sklearn_piaa._personalize import PersonalizedNet
    from sklearn_piaa.nn import AestheticHead
    from sklearn_piaa.nn.losses import AestheticLoss

    head = AestheticHead(6, (8,), dropout=0.5)
    rng = np.random.RandomState(0)
    X, y = rng.randn(25, 6).astype(np.float32), rng.uniform(1, 5, 25)
    results = []
    for sliced in (True, False):
        monkeypatch.setattr(PersonalizedNet, "array_batches", sliced)
        net = PersonalizedNet(head, criterion=AestheticLoss, optimizer=torch.optim.Adam,
                              lr=1e-2, max_epochs=3, batch_size=4,
                              iterator_train__shuffle=True, iterator_valid__batch_size=7,
                              train_split=None, verbose=0)
        iterator = net.initialize().get_iterator(net.get_dataset(X, y), training=True)
        assert isinstance(iterator, ArrayLoader) == sliced
        torch.manual_seed(3)
        net.fit(X, y)
        results.append((net.module_.state_dict(), net.predict(X), torch.rand(2)))
    (s1, p1, r1), (s2, p2, r2) = results
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    if torch_threads == 1:
        # on one thread a product's rounding follows its input's memory alignment: a
        # slice of 6-feature rows may start off it where a collated batch does not
        np.testing.assert_allclose(p1, p2, rtol=1e-6, atol=0)
    else:
        np.testing.assert_array_equal(p1, p2)
    assert torch.equal(r1, r2)
    assert not np.allclose(p1, p1[0])  # trained to something


def test_shuffled_batches_match_the_dataloader_even_without_draws():
    # draws=False only skips the base-seed draw of an *unshuffled* iteration: shuffling
    # must still draw what the DataLoader draws, or the order differs
    X = np.arange(46, dtype=np.float32).reshape(23, 2)
    dataset = Dataset(X, None)
    kwargs = dict(batch_size=4, shuffle=True)
    fast = array_loader(dataset, DataLoader, kwargs, draws=False)
    assert isinstance(fast, ArrayLoader)
    torch.manual_seed(5)
    got = [b[0].clone() for b in fast]
    got_next = torch.rand(3)
    torch.manual_seed(5)
    want = [b[0].clone() for b in DataLoader(dataset, **kwargs)]
    want_next = torch.rand(3)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert torch.equal(g, w)
    assert torch.equal(got_next, want_next)


def test_batch_size_zero_keeps_the_dataloader():
    dataset = Dataset(np.zeros((6, 2), np.float32), None)
    assert array_loader(dataset, DataLoader, {"batch_size": 0}) is None
