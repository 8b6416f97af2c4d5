import numpy as np
import torch
from torch import nn

from sklearn_piaa.meta import BLG


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
