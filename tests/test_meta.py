import copy

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_piaa.meta import BLG
from sklearn_piaa.meta._stacked import stack_state, stacked_adapt
from sklearn_piaa.nn import AestheticHead


def _numpy_adam_task(w, b, sets, lr, steps, betas, wd, eps=1e-8):
    """Hand-written Adam (L2 weight decay, bias correction) on a linear model with MSE."""
    m = np.zeros(len(w) + 1)
    v = np.zeros(len(w) + 1)
    theta = np.concatenate([w, [b]]).astype(np.float64)
    t = 0
    for x, y in sets:
        xb = np.hstack([x, np.ones((len(x), 1))])
        for _ in range(steps):
            t += 1
            grad = 2.0 / len(y) * xb.T @ (xb @ theta - y) + wd * theta
            m = betas[0] * m + (1 - betas[0]) * grad
            v = betas[1] * v + (1 - betas[1]) * grad ** 2
            m_hat = m / (1 - betas[0] ** t)
            v_hat = v / (1 - betas[1] ** t)
            theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta


def test_one_blg_outer_step_matches_hand_computation():
    rng = np.random.RandomState(0)
    lin = nn.Linear(3, 1).double()
    w0 = lin.weight.detach().numpy().ravel().copy()
    b0 = float(lin.bias.detach())
    tasks, adapted = [], []
    algo = BLG(inner_lr=0.05, inner_steps=2, outer_lr=0.3, betas=(0.9, 0.99), weight_decay=0.01)
    for _ in range(2):
        xs, ys = rng.randn(6, 3), rng.randn(6)
        xq, yq = rng.randn(4, 3), rng.randn(4)
        tasks.append(((torch.tensor(xs), torch.tensor(ys)), (torch.tensor(xq), torch.tensor(yq))))
        adapted.append(_numpy_adam_task(w0, b0, [(xs, ys), (xq, yq)], 0.05, 2, (0.9, 0.99),
                                        0.01))
    theta0 = np.concatenate([w0, [b0]])
    expected = theta0 - 0.3 * np.mean([theta0 - a for a in adapted], axis=0)

    learner = nn.Linear(3, 1).double()
    algo.step(lin, learner, tasks)
    got = np.concatenate([lin.weight.detach().numpy().ravel(), lin.bias.detach().numpy()])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # The first task's adaptation moved the weights: the step is not a no-op.
    assert np.abs(got - theta0).max() > 1e-3


def test_outer_step_moves_batchnorm_statistics():
    prior = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    learner = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    x = torch.randn(8, 2) + 3.0
    task = ((x, torch.randn(8)), (x, torch.randn(8)))
    BLG(inner_steps=1, outer_lr=1.0).step(prior, learner, [task])
    # With outer_lr=1 the prior takes the adapted running mean, which saw inputs near 3.
    np.testing.assert_allclose(prior[1].running_mean, learner[1].running_mean)
    assert prior[1].running_mean.abs().sum() > 0


def test_average_step_is_adam_on_pooled_ratings():
    from sklearn_piaa.meta import Average

    rng = np.random.RandomState(1)
    lin = nn.Linear(3, 1).double()
    w0 = lin.weight.detach().numpy().ravel().copy()
    b0 = float(lin.bias.detach())
    sets = [(rng.randn(5, 3), rng.randn(5)) for _ in range(4)]
    tasks = [tuple((torch.tensor(x), torch.tensor(y)) for x, y in sets[i:i + 2])
             for i in (0, 2)]
    algo = Average(inner_lr=0.05, inner_steps=3, betas=(0.9, 0.99), weight_decay=0.01)
    algo.step(lin, None, tasks)
    x_all = np.vstack([x for x, _ in sets])
    y_all = np.concatenate([y for _, y in sets])
    expected = _numpy_adam_task(w0, b0, [(x_all, y_all)], 0.05, 3, (0.9, 0.99), 0.01)
    got = np.concatenate([lin.weight.detach().numpy().ravel(), lin.bias.detach().numpy()])
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def _random_tasks(g, n_tasks, n_support, n_query, dim=32):
    def part(n):
        return (torch.randn(n, dim, generator=g, dtype=torch.float64),
                torch.rand(n, generator=g, dtype=torch.float64) * 4 + 1)
    return [(part(n_support), part(n_query)) for _ in range(n_tasks)]


@pytest.mark.parametrize("n_tasks", [1, 2])
def test_changed_betas_and_weight_decay_reach_the_reused_inner_optimizer(n_tasks):
    # the fused path keeps one inner optimizer across steps; _renew must give it
    # the algorithm's betas and weight decay as they are now, as a fresh optimizer has.
    head = AestheticHead(32, (16,), dropout=0.0).double()
    g = torch.Generator().manual_seed(0)
    first, second = _random_tasks(g, n_tasks, 12, 5), _random_tasks(g, n_tasks, 12, 5)
    prior, learner = copy.deepcopy(head), copy.deepcopy(head)
    algo = BLG(inner_lr=1e-2, inner_steps=3, outer_lr=0.5, betas=(0.9, 0.99),
               weight_decay=0.0)
    algo.step(prior, learner, first)
    fresh_prior = copy.deepcopy(prior)
    algo.betas, algo.weight_decay = (0.5, 0.6), 5.0
    algo.step(prior, learner, second)
    BLG(inner_lr=1e-2, inner_steps=3, outer_lr=0.5, betas=(0.5, 0.6), weight_decay=5.0).step(
        fresh_prior, copy.deepcopy(head), second)
    for key, value in fresh_prior.state_dict().items():
        torch.testing.assert_close(prior.state_dict()[key], value, rtol=1e-9, atol=1e-12,
                                   msg=key)


def test_zero_inner_steps_returns_the_priors_query_loss():
    # with inner_steps=0 step returns the mean query-set loss of the unchanged prior
    rng = np.random.RandomState(0)
    lin = nn.Linear(3, 1).double()
    theta = np.concatenate([lin.weight.detach().numpy().ravel(), lin.bias.detach().numpy()])
    tasks, expected = [], []
    for _ in range(2):
        xs, ys, xq, yq = rng.randn(6, 3), rng.randn(6), rng.randn(4, 3), rng.randn(4)
        tasks.append(((torch.tensor(xs), torch.tensor(ys)),
                      (torch.tensor(xq), torch.tensor(yq))))
        expected.append(np.mean((np.hstack([xq, np.ones((4, 1))]) @ theta - yq) ** 2))
    loss = BLG(inner_steps=0).step(lin, nn.Linear(3, 1).double(), tasks)
    assert loss == pytest.approx(np.mean(expected), rel=1e-10)
    assert loss > 0.1


def test_tasks_with_equal_support_but_different_query_sizes():
    # a rater with fewer than support_size + query_size images keeps support_size
    # support images but fewer query images (e.g. 25 images with sizes 20 and 10 give
    # 20 and 5); such a batch must not be stacked (torch.stack of ragged query sets).
    head = AestheticHead(32, (16,), dropout=0.0).double()
    g = torch.Generator().manual_seed(0)
    tasks = _random_tasks(g, 1, 12, 5) + _random_tasks(g, 1, 12, 3)
    results = []
    for max_stacked in (2, 1):
        prior, learner = copy.deepcopy(head), copy.deepcopy(head)
        algo = BLG(inner_lr=1e-2, inner_steps=2, outer_lr=0.5)
        algo.max_stacked = max_stacked
        algo.step(prior, learner, tasks)
        results.append(prior.state_dict())
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], rtol=0, atol=0)


def test_stacked_tasks_draw_their_own_dropout_masks():
    # two copies trained on the same data must see different dropout masks, as
    # two separate runs would; with one shared mask they stay identical.
    torch.manual_seed(0)
    head = AestheticHead(32, (16,), dropout=0.5).double()
    head.train()
    prior_state = {n: t.detach().clone() for n, t in
                   [*head.named_parameters(), *head.named_buffers()]}
    params, buffers = stack_state(head, prior_state, 2)
    optimizer = torch.optim.SGD(list(params.values()), lr=0.1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(10, 32, generator=g, dtype=torch.float64)
    y = torch.rand(10, generator=g, dtype=torch.float64) * 4 + 1
    losses = stacked_adapt(head, params, buffers, optimizer, torch.stack([x, x]),
                           torch.stack([y, y]), 1,
                           lambda model, xi, yi: ((model(xi).reshape(-1) - yi) ** 2).mean())
    assert losses[0] != losses[1]
    assert not torch.equal(params["layers.0.weight"][0], params["layers.0.weight"][1])
