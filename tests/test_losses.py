"""Rank-aware training losses."""

import numpy as np
import pytest
import torch

from sklearn_piaa import MetaAestheticRegressor, srocc
from sklearn_piaa.nn import AestheticHead, AestheticLoss, loss_unit, pairwise_rank_loss


def test_rank_loss_rewards_the_ratings_order_whatever_the_scale():
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    right, wrong = torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0.4, 0.3, 0.2, 0.1])
    assert pairwise_rank_loss(right * 50, y) < pairwise_rank_loss(right, y)
    assert pairwise_rank_loss(right, y) < np.log(2) < pairwise_rank_loss(wrong, y)
    # By hand: 6 ordered pairs, each log(1 + exp(-(p_i - p_j))).
    p = torch.tensor([0.0, 1.0, 0.5, 2.0], dtype=torch.float64)
    yy = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    expected = np.mean([np.log1p(np.exp(-(p[i] - p[j]).item()))
                        for i in range(4) for j in range(4) if yy[i] > yy[j]])
    assert float(pairwise_rank_loss(p, yy)) == pytest.approx(expected, rel=1e-12)


def test_ties_carry_no_rank_loss_and_mse_is_the_default():
    p = torch.tensor([1.0, 3.0], requires_grad=True)
    tied = torch.tensor([2.0, 2.0])
    loss = pairwise_rank_loss(p, tied)
    loss.backward()
    assert float(loss.detach()) == 0.0 and float(p.grad.abs().sum()) == 0.0
    pred, y = torch.randn(5, 1), torch.randn(5)
    assert float(AestheticLoss()(pred, y)) == pytest.approx(
        float(torch.nn.functional.mse_loss(pred.reshape(-1), y)))
    both = AestheticLoss("mse+rank", rank_weight=2.0)(pred, y)
    assert float(both) == pytest.approx(float(torch.nn.functional.mse_loss(
        pred.reshape(-1), y) + 2 * pairwise_rank_loss(pred, y)), rel=1e-6)
    with pytest.raises(ValueError, match="loss must be one of"):
        AestheticLoss("hinge")
    # broadcast: 3 predictions against 1 rating gave a loss; a negative or NaN weight
    # rewarded mis-ordered pairs or made every loss NaN
    with pytest.raises(ValueError, match="got 3 predictions and 1 ratings"):
        AestheticLoss()(torch.zeros(3), torch.ones(1))
    for weight in (-5.0, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="rank_weight must be a finite number >= 0"):
            AestheticLoss("mse+rank", rank_weight=weight)
    assert AestheticLoss("mse+rank", rank_weight=np.float32(0.5)).rank_weight == 0.5


@pytest.mark.parametrize("loss", ["rank", "mse+rank"])
def test_estimator_trains_and_personalizes_with_a_rank_loss(ratings, tiny_params, loss):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**{**tiny_params, "loss": loss}).fit(X, y, groups=groups)
    assert np.isfinite(meta.history_).all()
    rater = groups == "r11"
    Xr, yr = X[rater], y[rater]
    net = meta.personalize(Xr[:40], yr[:40], max_epochs=30, lr=1e-3)
    assert isinstance(net.criterion_, AestheticLoss) and net.criterion_.kind == loss
    # On a rater it has trained on, ranking improves over the prior.
    assert srocc(yr[:40], net.predict(Xr[:40])) > srocc(yr[:40], meta.predict(Xr[:40]))


@pytest.mark.parametrize("algorithm, loss", [("blg", "rank"), ("blg", "mse+rank"),
                                             ("maml", "mse"), ("fomaml", "rank")])
def test_ratings_in_other_units_train_the_same_network(ratings, algorithm, loss):
    # The rank loss's logistic, the balance of mse+rank and MAML's SGD steps changed
    # with the units: the same ratings on 0-1 or 0-10000 gave other priors, other
    # personalized nets and other SROCC (0-1: rank predictions pushed to the ends).
    X, y, groups = ratings
    train, test = ~np.isin(groups, ["r10", "r11"]), groups == "r11"
    params = dict(backbone=None, hidden_sizes=(16,), n_iterations=30, support_size=20,
                  query_size=10, inner_lr=1e-2, outer_lr=0.1, finetune_epochs=10,
                  random_state=0, algorithm=algorithm, loss=loss)
    scores = []
    for k, c in [(1.0, 0.0), (0.25, -0.25), (2500.0, -2500.0)]:  # 1-5, 0-1, 0-10000
        meta = MetaAestheticRegressor(**params).fit(X[train], c + k * y[train],
                                                    groups=groups[train])
        net = meta.personalize(X[test][:20], c + k * y[test][:20])
        scores.append([(m.predict(X[test]) - c) / k for m in (meta, net)])
    for other in scores[1:]:
        for a, b in zip(scores[0], other):
            np.testing.assert_allclose(b, a, atol=2e-3)  # of a 1-5 scale


def test_task_vector_coefficients_do_not_depend_on_the_units(ratings):
    from sklearn_piaa import TaskVectorRegressor

    X, y, groups = ratings
    base = dict(backbone=None, hidden_sizes=(16,), algorithm="average", n_iterations=40,
                support_size=20, query_size=10, finetune_epochs=5, random_state=0)
    coefficients = []
    for k, c in [(1.0, 0.0), (2500.0, -2500.0)]:
        tv = TaskVectorRegressor(MetaAestheticRegressor(**base), n_sources=3, source_epochs=5,
                                 coef_steps=20, finetune_epochs=0, random_state=0).fit(
            X, c + k * y, groups=groups)
        coefficients.append(tv.personalize(X[:30], c + k * y[:30]).coefficients_)
    np.testing.assert_allclose(coefficients[1], coefficients[0], atol=2e-3)


@pytest.mark.parametrize("score_range, unit", [((1.0, 5.0), 1.0), ((0.0, 1.0), 0.25),
                                               ((0.0, 100.0), 25.0)])
def test_loss_unit_is_one_point_of_the_1_to_5_scale(score_range, unit):
    assert loss_unit(AestheticHead(4, (3,), score_range=score_range)) == unit


def test_rank_loss_of_a_single_ordered_pair_is_its_logistic_loss():
    import math

    import torch

    from sklearn_piaa.nn import pairwise_rank_loss

    p, y = torch.tensor([0.5, 0.0], dtype=torch.float64), torch.tensor([1.0, 2.0])
    assert float(pairwise_rank_loss(p, y)) == pytest.approx(math.log1p(math.exp(0.5)))


@pytest.mark.parametrize("unit", [0.0, -1.0, float("inf"), float("nan")])
def test_a_unit_that_is_not_positive_and_finite_is_refused(unit):
    from sklearn_piaa.nn import AestheticLoss

    with pytest.raises(ValueError, match="unit must be a positive finite number"):
        AestheticLoss("mse", unit=unit)
