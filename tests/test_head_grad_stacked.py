"""Stacked copies of the head, trained by the hand-written step, compute what each copy
computes alone: gradients and statistics equal autograd's, and meta-training on stacked
tasks gives the prior of the plain one-task-at-a-time loop."""

import copy

import pytest
import torch
from test_head_grad import (
    _assert_same_state,
    _autograd_with_masks,
    _head,
    _masks_from,
    _replay_dropout,
)
from torch import nn

from sklearn_piaa.meta import ALGORITHMS
from sklearn_piaa.nn import AestheticLoss, StackedHeadGradient
from sklearn_piaa.nn.head_grad import HeadGradient


def _distinct_heads(k, dropout, per_channel):
    heads = []
    for i in range(k):
        torch.manual_seed(100 + i)
        head = _head(dropout, per_channel=per_channel)
        with torch.no_grad():  # slopes differing between units and copies
            for m in head.modules():
                if isinstance(m, nn.PReLU):
                    m.weight.uniform_(0.05, 0.5)
        heads.append(head)
    return heads


@pytest.mark.parametrize("kind, unit", [("mse", 1.0), ("rank", 1.0), ("mse", 25.0),
                                        ("mse+rank", 0.25)])
@pytest.mark.parametrize("dropout", [0.0, 0.5, 0.3])
@pytest.mark.parametrize("per_channel", [False, True])
def test_each_copy_has_the_gradients_and_statistics_of_autograd(kind, unit, dropout,
                                                               per_channel, monkeypatch):
    k, n = 3, 9
    heads = _distinct_heads(k, dropout, per_channel)
    stacked = StackedHeadGradient(heads[0], k)
    with torch.no_grad():  # copy i starts as head i, so a mixed-up copy cannot pass
        for name, t in stacked.state().items():
            for i, head in enumerate(heads):
                t[i].copy_(dict(head.named_parameters(), **dict(head.named_buffers()))[name])
    xs = [torch.randn(n, 16, dtype=torch.float64) for _ in range(k)]
    y = torch.rand(k, n, dtype=torch.float64) * 10
    criterion = AestheticLoss(kind, unit=unit)
    masks = _masks_from(HeadGradient, monkeypatch)
    losses = stacked.loss_backward(StackedHeadGradient.stack_inputs(xs), y, criterion)
    assert len(masks) == (2 if dropout else 0)
    state = stacked.state()
    for i, head in enumerate(heads):
        ref_loss = _autograd_with_masks(head, xs[i], y[i], criterion,
                                        [m[i].t() for m in masks])
        torch.testing.assert_close(losses[i], ref_loss, rtol=1e-12, atol=1e-12)
        for name, p in head.named_parameters():
            torch.testing.assert_close(state[name].grad[i], p.grad, rtol=1e-9, atol=1e-12,
                                       msg=f"copy {i}: {name}")
        for name, b in head.named_buffers():
            if b.is_floating_point():
                torch.testing.assert_close(state[name][i], b, rtol=1e-12, atol=1e-12,
                                           msg=f"copy {i}: {name}")


def test_copies_draw_their_own_dropout_masks():
    head = _head(0.5)
    stacked = StackedHeadGradient(head, 2)
    stacked.load(dict(head.named_parameters(), **dict(head.named_buffers())))
    x = torch.randn(12, 16, dtype=torch.float64)
    stacked.loss_backward(StackedHeadGradient.stack_inputs([x, x]),
                          torch.rand(2, 12, dtype=torch.float64), AestheticLoss("mse"))
    grad = stacked.state()["layers.0.weight"].grad
    assert not torch.equal(grad[0], grad[1])  # same data and weights: only masks differ


def _batches(g, n_batches=3, k=3, n_support=12, n_query=5):
    def part(n):
        return torch.randn(n, 16, generator=g).double(), torch.rand(n, generator=g).double() * 10
    return [[(part(n_support), part(n_query)) for _ in range(k)] for _ in range(n_batches)]


def _count_stacked_steps(monkeypatch):
    calls = []
    original = StackedHeadGradient.loss_backward

    def spy(self, x, y, criterion):
        calls.append(x.shape[0])
        return original(self, x, y, criterion)
    monkeypatch.setattr(StackedHeadGradient, "loss_backward", spy)
    return calls


@pytest.mark.parametrize("name", ["blg", "merged", "reptile"])
@pytest.mark.parametrize("dropout", [0.0, 0.5])
@pytest.mark.parametrize("loss", ["mse", "mse+rank"])
@pytest.mark.parametrize("max_stacked", [8, 2])  # 2: three tasks stacked as 2, then 1
def test_stacked_and_plain_meta_training_give_the_same_prior(name, dropout, loss,
                                                             max_stacked, monkeypatch):
    head = _head(dropout)
    k, steps = 3, 3
    batches = _batches(torch.Generator().manual_seed(1), k=k)
    masks = _masks_from(HeadGradient, monkeypatch)
    calls = _count_stacked_steps(monkeypatch)
    priors, losses = [], []
    for fused in (True, False):
        prior, learner = copy.deepcopy(head), copy.deepcopy(head)
        algo = ALGORITHMS[name](inner_lr=1e-2, inner_steps=steps, outer_lr=0.3, loss=loss)
        algo.fused_head, algo.max_stacked = fused, max_stacked
        draws = len(algo.phases(*batches[0][0])) * steps * 2  # per chunk: steps x layers
        chunks = [min(max_stacked, k - first) for first in range(0, k, max_stacked)]
        hooks = []
        if not fused and dropout:
            # Each stacked step drew one (copies, units, rows) mask per layer; the plain
            # path runs task by task and takes that task's slice, transposed.
            order, drawn = [], 0
            for _ in batches:
                for size in chunks:
                    for i in range(size):
                        order += [m[i].t() for m in masks[drawn:drawn + draws]]
                    drawn += draws
            assert drawn == len(masks)
            replay = iter(order)
            hooks = _replay_dropout([learner], replay)
        for i, batch in enumerate(batches):
            loss_value = algo.step(prior, learner, batch, lr_scale=0.9 if i else 1.0)
        for h in hooks:
            h.remove()
        if fused:  # the stacked path ran, in chunks of at most max_stacked tasks
            per_batch = [size for size in chunks for _ in range(draws // 2)]
            assert calls == per_batch * len(batches)
        priors.append(prior.state_dict())
        losses.append(loss_value)
    if dropout:
        assert next(replay, None) is None  # every mask used, once
    _assert_same_state(priors[0], priors[1])
    moved = max(float((priors[0][key] - v).abs().max())
                for key, v in head.state_dict().items() if v.is_floating_point())
    assert moved > 1e-3  # training moved the prior: the comparison is not vacuous
    assert losses[0] == pytest.approx(losses[1], rel=1e-9)


@pytest.mark.parametrize("case", ["ragged", "one_row", "zero_steps", "frozen", "max_1"])
def test_batches_it_cannot_stack_are_adapted_task_by_task(case, monkeypatch):
    g = torch.Generator().manual_seed(0)
    head = _head()
    tasks = _batches(g, n_batches=1)[0]
    steps = 0 if case == "zero_steps" else 2
    if case == "ragged":
        tasks[1] = _batches(g, n_batches=1, n_support=7)[0][0]
    if case == "one_row":
        tasks = [(s, (xq[:1], yq[:1])) for s, (xq, yq) in tasks]
    if case == "frozen":
        head.layers[0].weight.requires_grad_(False)
    calls = _count_stacked_steps(monkeypatch)
    results = []
    for fused in (True, False):
        prior, learner = copy.deepcopy(head), copy.deepcopy(head)
        algo = ALGORITHMS["blg"](inner_lr=1e-2, inner_steps=steps, outer_lr=0.5)
        algo.fused_head = fused
        if case == "max_1":
            algo.max_stacked = 1
        algo.step(prior, learner, tasks)
        results.append(prior.state_dict())
    assert calls == []
    _assert_same_state(results[0], results[1])


def test_rejects_other_modules():
    with pytest.raises(ValueError, match="AestheticHead"):
        StackedHeadGradient(nn.Linear(3, 1), 2)
    with pytest.raises(ValueError, match="n_copies"):
        StackedHeadGradient(_head(), 0)


@pytest.mark.parametrize("name", ["blg", "merged", "reptile"])
def test_stacked_accumulation_is_the_task_by_task_one_bit_for_bit(name):
    # float32 tasks close to the prior: a sum taken as k * prior - sum(tasks) would
    # lose most digits of the differences and not be equal here
    algo = ALGORITHMS[name]()
    prior = _head()
    prior_state = {n: t.detach().clone() for n, t in algo.meta_state(prior).items()}
    tasks = [{n: t + 1e-4 * torch.randn_like(t) for n, t in prior_state.items()}
             for _ in range(5)]
    plain = algo.init_accumulator(prior)
    learner = copy.deepcopy(prior)
    for task in tasks:
        with torch.no_grad():
            for n, t in algo.meta_state(learner).items():
                t.copy_(task[n])
        algo.accumulate(plain, prior_state, learner)
    stacked_acc = algo.init_accumulator(prior)
    for chunk in (tasks[:2], tasks[2:4], tasks[4:]):  # as the loop does, max_stacked=2
        stacked = {n: torch.stack([task[n] for task in chunk]) for n in prior_state}
        algo.accumulate_stacked(stacked_acc, prior_state, stacked, len(chunk))
    for n in plain:
        assert torch.equal(stacked_acc[n], plain[n]), n
        assert plain[n].abs().max() > 0
