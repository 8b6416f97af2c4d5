"""The stacked inner loop (all tasks of a batch at once) computes what separate runs do."""

import copy

import pytest
import torch

from sklearn_piaa.meta import ALGORITHMS
from sklearn_piaa.meta._stacked import stackable
from sklearn_piaa.nn import AestheticHead


def _tasks(g, n_tasks=4, n_support=12, n_query=5, dim=32, dtype=torch.float64):
    def part(n):
        return (torch.randn(n, dim, generator=g).to(dtype),
                (torch.rand(n, generator=g) * 4 + 1).to(dtype))
    return [(part(n_support), part(n_query)) for _ in range(n_tasks)]


@pytest.mark.parametrize("name", ["blg", "merged", "reptile"])
def test_stacked_and_per_task_loops_give_the_same_prior(name):
    # float64: the gradient of a bias that feeds BatchNorm is zero up to rounding, and
    # Adam divides it by its own scale, so in float32 rounding noise alone moves those
    # biases by up to a learning rate whichever way the loop is written.
    head = AestheticHead(32, (16, 8), dropout=0.0).double()
    priors, losses = [], []
    for stacked in (True, False):
        prior, learner = copy.deepcopy(head), copy.deepcopy(head)
        algo = ALGORITHMS[name](inner_lr=1e-2, inner_steps=3, outer_lr=0.3)
        algo.stacked = stacked
        g = torch.Generator().manual_seed(1)
        for _ in range(4):
            loss = algo.step(prior, learner, _tasks(g), lr_scale=0.9)
        priors.append(prior.state_dict())
        losses.append(loss)
    for key in priors[0]:
        torch.testing.assert_close(priors[0][key], priors[1][key], rtol=1e-9, atol=1e-10,
                                   msg=key)
    assert losses[0] == pytest.approx(losses[1], rel=1e-9)


def test_stacking_needs_equal_task_shapes_and_a_trainable_learner():
    g = torch.Generator().manual_seed(0)
    head = AestheticHead(32, (8,))
    tasks = _tasks(g, dtype=torch.float32)
    assert stackable(head, tasks)
    assert not stackable(head, tasks[:1])
    ragged = tasks[:3] + _tasks(g, n_tasks=1, n_support=7, dtype=torch.float32)
    assert not stackable(head, ragged)
    head.layers[0].weight.requires_grad_(False)
    assert not stackable(head, tasks)


def test_ragged_batches_fall_back_to_per_task_adaptation():
    g = torch.Generator().manual_seed(0)
    head = AestheticHead(32, (8,), dropout=0.0).double()
    tasks = _tasks(g, n_tasks=2) + _tasks(g, n_tasks=1, n_support=7)
    results = []
    for stacked in (True, False):
        prior, learner = copy.deepcopy(head), copy.deepcopy(head)
        algo = ALGORITHMS["blg"](inner_steps=2)
        algo.stacked = stacked
        algo.step(prior, learner, tasks)
        results.append(prior.state_dict())
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], rtol=0, atol=0)


class _WithBackbone(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(32, 16)
        self.head = AestheticHead(16, (8,), dropout=0.0)

    def forward(self, x):
        return self.head(self.backbone(x))


@pytest.mark.parametrize("name", ["blg", "merged", "reptile"])
def test_the_stacked_loop_trains_a_backbone_at_its_own_rate(name):
    # the stacked loop put every tensor at inner_lr: inner_backbone_lr was ignored
    net = _WithBackbone().double()
    priors = []
    for stacked in (True, False):
        prior, learner = copy.deepcopy(net), copy.deepcopy(net)
        algo = ALGORITHMS[name](inner_lr=1e-2, inner_backbone_lr=3e-2, inner_steps=2,
                                outer_lr=0.3)
        algo.stacked = stacked
        g = torch.Generator().manual_seed(1)
        for _ in range(2):
            algo.step(prior, learner, _tasks(g), lr_scale=0.9)
        priors.append(prior.state_dict())
    for key in priors[0]:
        torch.testing.assert_close(priors[0][key], priors[1][key], rtol=1e-9, atol=1e-10,
                                   msg=key)
