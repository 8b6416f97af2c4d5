"""MAML, FOMAML, Reptile and Merged against hand-computed numpy references."""

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_piaa.meta import ALGORITHMS, FOMAML, MAML, Average, Merged, Reptile

KW = dict(inner_lr=0.05, inner_steps=2, outer_lr=0.3, betas=(0.9, 0.99), weight_decay=0.01)


def _augment(x):
    return np.hstack([x, np.ones((len(x), 1))])


def _grad(theta, x, y):
    """Gradient of the MSE of the linear model ``[x, 1] @ theta``."""
    xb = _augment(x)
    return 2.0 / len(y) * xb.T @ (xb @ theta - y)


def _hessian(x):
    xb = _augment(x)
    return 2.0 / len(x) * xb.T @ xb


def _sgd(theta, x, y, lr, steps):
    for _ in range(steps):
        theta = theta - lr * _grad(theta, x, y)
    return theta


def _adam(theta, grads, lr, betas, wd, state, eps=1e-8):
    """Adam (L2 weight decay, bias correction); ``grads(theta)``; ``state`` = [m, v, t]."""
    m, v, t = state
    g = grads(theta) + wd * theta
    t += 1
    m = betas[0] * m + (1 - betas[0]) * g
    v = betas[1] * v + (1 - betas[1]) * g ** 2
    state[:] = m, v, t
    return theta - lr * (m / (1 - betas[0] ** t)) / (np.sqrt(v / (1 - betas[1] ** t)) + eps)


def _tasks(rng, n=2):
    tasks, arrays = [], []
    for _ in range(n):
        xs, ys, xq, yq = rng.randn(6, 3), rng.randn(6), rng.randn(4, 3), rng.randn(4)
        arrays.append((xs, ys, xq, yq))
        tasks.append(((torch.tensor(xs), torch.tensor(ys)), (torch.tensor(xq), torch.tensor(yq))))
    return tasks, arrays


def _theta(lin):
    return np.concatenate([lin.weight.detach().numpy().ravel(), lin.bias.detach().numpy()])


def _maml_grad(theta0, arrays, first_order):
    """Exact meta-gradient: (I - a H_s)^K g_q(theta_K); first order drops the product."""
    grads = []
    for xs, ys, xq, yq in arrays:
        theta_k = _sgd(theta0, xs, ys, KW["inner_lr"], KW["inner_steps"])
        g = _grad(theta_k, xq, yq)
        if not first_order:
            # A linear model's MSE has a constant Hessian, so every factor is the same.
            jac = np.eye(len(theta0)) - KW["inner_lr"] * _hessian(xs)
            g = np.linalg.matrix_power(jac, KW["inner_steps"]) @ g
        grads.append(g)
    return np.mean(grads, axis=0)


@pytest.mark.parametrize("cls", [MAML, FOMAML])
def test_maml_two_outer_steps_match_hand_computation(cls):
    rng = np.random.RandomState(0)
    lin, learner = nn.Linear(3, 1).double(), nn.Linear(3, 1).double()
    algo = cls(**KW)
    theta = _theta(lin)
    state = [np.zeros_like(theta), np.zeros_like(theta), 0]
    for _ in range(2):  # the second step checks that the outer Adam's moments persist
        tasks, arrays = _tasks(rng)
        before = _theta(lin)
        theta = _adam(theta, lambda t, a=arrays: _maml_grad(t, a, cls.first_order),
                      KW["outer_lr"], KW["betas"], KW["weight_decay"], state)
        loss = algo.step(lin, learner, tasks)
        np.testing.assert_allclose(_theta(lin), theta, rtol=1e-8, atol=1e-12)
        assert np.abs(_theta(lin) - before).max() > 1e-3
        # The returned loss is the mean query loss of the adapted weights.
        expected_loss = np.mean([
            np.mean((_augment(xq) @ _sgd(before, xs, ys, KW["inner_lr"], 2) - yq) ** 2)
            for xs, ys, xq, yq in arrays])
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-8)


def test_maml_and_fomaml_differ():
    rng = np.random.RandomState(1)
    tasks, _ = _tasks(rng)
    priors = []
    for cls in (MAML, FOMAML):
        torch.manual_seed(0)
        lin = nn.Linear(3, 1).double()
        # Adam's first step is ~ outer_lr * sign(g): compare the gradients via a second step.
        algo = cls(**KW)
        algo.step(lin, nn.Linear(3, 1).double(), tasks)
        algo.step(lin, nn.Linear(3, 1).double(), tasks)
        priors.append(_theta(lin))
    assert np.abs(priors[0] - priors[1]).max() > 1e-6


def test_maml_outer_optimizer_follows_the_prior():
    algo = MAML(**KW)
    a, b = nn.Linear(3, 1).double(), nn.Linear(3, 1).double()
    opt = algo.outer_optimizer(a)
    assert algo.outer_optimizer(a) is opt
    assert algo.outer_optimizer(b) is not opt
    algo.reset()
    assert algo.outer_optimizer(b) is not opt


@pytest.mark.parametrize("cls", [Reptile, Merged])
def test_first_order_outer_step_matches_hand_computation(cls):
    rng = np.random.RandomState(0)
    lin, learner = nn.Linear(3, 1).double(), nn.Linear(3, 1).double()
    theta0 = _theta(lin)
    tasks, arrays = _tasks(rng)
    adapted = []
    for xs, ys, xq, yq in arrays:
        x, y = np.vstack([xs, xq]), np.concatenate([ys, yq])
        if cls is Reptile:
            adapted.append(_sgd(theta0, x, y, KW["inner_lr"], KW["inner_steps"]))
        else:
            theta, state = theta0, [np.zeros_like(theta0), np.zeros_like(theta0), 0]
            for _ in range(2 * KW["inner_steps"]):
                theta = _adam(theta, lambda t, x=x, y=y: _grad(t, x, y), KW["inner_lr"],
                              KW["betas"], KW["weight_decay"], state)
            adapted.append(theta)
    expected = theta0 + KW["outer_lr"] * np.mean([a - theta0 for a in adapted], axis=0)
    cls(**KW).step(lin, learner, tasks)
    np.testing.assert_allclose(_theta(lin), expected, rtol=1e-8, atol=1e-12)
    assert np.abs(_theta(lin) - theta0).max() > 1e-3


def _head():
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.PReLU(), nn.Dropout(0.5),
                         nn.Linear(8, 1))


@pytest.mark.parametrize("name", ["maml", "fomaml", "reptile", "merged"])
def test_step_on_a_batchnorm_head(name):
    prior = _head()
    learner = _head()
    learner.load_state_dict(prior.state_dict())
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    tasks = [((torch.randn(8, 4) + 2.0, torch.randn(8)), (torch.randn(5, 4), torch.randn(5)))
             for _ in range(3)]
    algo = ALGORITHMS[name](inner_lr=1e-2, inner_steps=2, outer_lr=0.1)
    for _ in range(2):
        loss = algo.step(prior, learner, tasks, lr_scale=0.5)
        assert isinstance(loss, float) and np.isfinite(loss)
    after = prior.state_dict()
    assert all(after[k].dtype == torch.float32 for k in after if k != "1.num_batches_tracked")
    for k in ("0.weight", "4.bias", "2.weight", "1.running_mean"):
        assert not torch.equal(before[k], after[k]), k
    assert all(torch.isfinite(v).all() for v in after.values())
    # The learner keeps the prior's architecture.
    assert [type(m) for m in learner] == [type(m) for m in prior]
    assert {k: v.shape for k, v in learner.state_dict().items()} == \
        {k: v.shape for k, v in after.items()}


@pytest.mark.parametrize("name", ["maml", "fomaml", "reptile", "merged"])
def test_frozen_parameters_stay_put(name):
    prior = _head()
    prior[0].requires_grad_(False)
    learner = _head()
    learner.load_state_dict(prior.state_dict())
    learner[0].requires_grad_(False)
    frozen = prior[0].weight.detach().clone()
    tasks = [((torch.randn(8, 4), torch.randn(8)), (torch.randn(5, 4), torch.randn(5)))]
    ALGORITHMS[name](inner_steps=1, outer_lr=0.1).step(prior, learner, tasks)
    assert torch.equal(prior[0].weight, frozen)


@pytest.mark.parametrize("algorithm", ["maml", "fomaml"])
def test_maml_keeps_the_output_range_exact(algorithm):
    # averaging k copies of the score-range buffers moved them off score_range_ by an ulp
    from sklearn_piaa import MetaAestheticRegressor
    rng = np.random.RandomState(0)
    X = rng.randn(140, 6)
    y = np.round(1.3 + 8.6 * rng.rand(140), 1)
    y[:2] = 1.3, 9.9
    est = MetaAestheticRegressor(backbone=None, algorithm=algorithm, hidden_sizes=(8,),
                                 dropout=0.0, n_iterations=5, tasks_per_batch=7,
                                 support_size=10, query_size=5, inner_steps=1,
                                 random_state=0).fit(X, y, groups=np.repeat(np.arange(7), 20))
    head = est.prior_net_.module_
    assert float(head.score_low) == np.float32(est.score_range_[0])
    assert float(head.score_low + head.score_span) == np.float32(est.score_range_[1])


@pytest.mark.parametrize("cls", [MAML, FOMAML])
def test_maml_inner_step_follows_lr_scale(cls):
    # lr_scale (the estimator's lr_decay) scales MAML's inner SGD step
    tasks, _ = _tasks(np.random.RandomState(0))
    runs = []
    for inner_lr, scale in ((0.1, 0.5), (0.05, 1.0)):
        torch.manual_seed(0)
        lin = nn.Linear(3, 1).double()
        algo = cls(inner_lr=inner_lr, inner_steps=2, outer_lr=0.3)
        losses = [algo.step(lin, nn.Linear(3, 1).double(), tasks, lr_scale=scale)
                  for _ in range(2)]
        runs.append((losses, _theta(lin)))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-10)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-10)


class _WithBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(3, 3)
        self.head = nn.Linear(3, 1)

    def forward(self, x):
        return self.head(self.backbone(x))


@pytest.mark.parametrize("cls", [MAML, FOMAML])
def test_maml_inner_loop_trains_the_backbone_at_its_own_rate(cls):
    # inner_backbone_lr=0 leaves the backbone as it is in the inner loop, as a
    # frozen backbone would be
    tasks, _ = _tasks(np.random.RandomState(0))
    losses = []
    for frozen in (False, True):
        torch.manual_seed(0)
        prior, learner = _WithBackbone().double(), _WithBackbone().double()
        if frozen:
            prior.backbone.requires_grad_(False)
            learner.backbone.requires_grad_(False)
        algo = cls(inner_lr=0.1, inner_backbone_lr=0.0, inner_steps=2, outer_lr=0.3)
        losses.append(algo.step(prior, learner, tasks))
    assert losses[0] == pytest.approx(losses[1], rel=1e-12)


def test_maml_outer_step_follows_a_changed_outer_lr():
    # the outer Adam takes outer_lr as it is now ("follow changes to the attribute")
    tasks, _ = _tasks(np.random.RandomState(0))
    lin = nn.Linear(3, 1).double()
    algo = MAML(inner_lr=0.05, inner_steps=1, outer_lr=0.3, weight_decay=0.0)
    algo.step(lin, nn.Linear(3, 1).double(), tasks)
    before = _theta(lin)
    algo.outer_lr = 0.0
    algo.step(lin, nn.Linear(3, 1).double(), tasks)
    np.testing.assert_array_equal(_theta(lin), before)


@pytest.mark.parametrize("cls", [MAML, FOMAML])
def test_maml_prior_takes_the_mean_batchnorm_statistics_of_its_tasks(cls):
    # the prior's running statistics are the mean over tasks, not their sum:
    # a batch of k copies of one task gives those of the task alone
    g = torch.Generator().manual_seed(0)
    task = ((torch.randn(8, 2, generator=g) + 3.0, torch.randn(8, generator=g)),
            (torch.randn(5, 2, generator=g) + 3.0, torch.randn(5, generator=g)))
    stats = []
    for k in (1, 3):
        torch.manual_seed(0)
        prior = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
        learner = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
        cls(inner_lr=1e-2, inner_steps=1, outer_lr=0.1).step(prior, learner, [task] * k)
        stats.append((prior[1].running_mean.clone(), prior[1].running_var.clone()))
    torch.testing.assert_close(stats[0][0], stats[1][0])
    torch.testing.assert_close(stats[0][1], stats[1][1])
    assert stats[0][0].abs().max() > 0.1


def _pooled_tasks(seed):
    rng = np.random.RandomState(seed)
    sets = [(torch.tensor(rng.randn(5, 3)), torch.tensor(rng.randn(5))) for _ in range(4)]
    return [(sets[0], sets[1]), (sets[2], sets[3])]



def test_average_step_follows_lr_scale():
    # the pooled Adam's step size is inner_lr * lr_scale (the estimator's lr_decay)
    priors = []
    for inner_lr, scale in ((0.1, 0.5), (0.05, 1.0)):
        torch.manual_seed(0)
        lin = nn.Linear(3, 1).double()
        Average(inner_lr=inner_lr, inner_steps=3).step(lin, None, _pooled_tasks(1), lr_scale=scale)
        priors.append(_theta(lin))
    np.testing.assert_allclose(priors[0], priors[1], rtol=1e-12)


def test_average_gives_a_new_prior_a_new_optimizer():
    # Adam's moments belong to one prior; a second prior starts from fresh moments
    torch.manual_seed(0)
    a, b = nn.Linear(3, 1).double(), nn.Linear(3, 1).double()
    b_copy = nn.Linear(3, 1).double()
    b_copy.load_state_dict(b.state_dict())
    algo = Average(inner_lr=0.05, inner_steps=2)
    algo.step(a, None, _pooled_tasks(1))
    algo.step(b, None, _pooled_tasks(2))
    Average(inner_lr=0.05, inner_steps=2).step(b_copy, None, _pooled_tasks(2))
    np.testing.assert_allclose(_theta(b), _theta(b_copy), rtol=1e-12)
