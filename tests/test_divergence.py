"""Training that diverges is an error that says so, and loses no earlier fit or checkpoint."""

import os

import numpy as np
import pytest
import torch

from sklearn_piaa import MetaAestheticRegressor

SMALL = dict(backbone=None, hidden_sizes=(16,), n_iterations=4, support_size=10,
             query_size=5, inner_steps=2, random_state=0, finetune_epochs=3)


def _data():
    rng = np.random.RandomState(0)
    X = rng.randn(180, 8).astype(np.float32)
    y = np.clip(np.round(3 + rng.randn(180)), 1, 5).astype(np.float32)
    return X, y, np.repeat(np.arange(6), 30)


def test_a_diverged_meta_training_raises_and_keeps_the_previous_fit():
    # An outer step that overshoots drove a BatchNorm running variance below zero:
    # every prediction NaN, the loss history finite, and no word.
    X, y, groups = _data()
    meta = MetaAestheticRegressor(**SMALL).fit(X, y, groups=groups)
    before = meta.predict(X)
    with pytest.raises(FloatingPointError, match="meta-training diverged: BatchNorm running "
                                                 "variance .*Lower inner_lr.*fit is kept"):
        meta.set_params(outer_lr=1e6, n_iterations=1).fit(X, y, groups=groups)
    np.testing.assert_array_equal(meta.predict(X), before)
    with pytest.raises(FloatingPointError, match="the loss is nan from step"):
        MetaAestheticRegressor(**{**SMALL, "inner_lr": 1e30}).fit(X, y, groups=groups)


def test_a_diverged_iteration_leaves_the_last_good_checkpoint(tmp_path):
    # Continuing a run (a larger n_iterations) overwrote the good checkpoint with a
    # prior that predicts NaN.
    X, y, groups = _data()
    params = dict(SMALL, outer_lr=10, checkpoint_dir=tmp_path, checkpoint_every=2)
    MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    (name,) = os.listdir(tmp_path)
    good = (tmp_path / name).read_bytes()
    with pytest.raises(FloatingPointError, match="by iteration 5: .*not checkpointed"):
        MetaAestheticRegressor(**{**params, "n_iterations": 5}).fit(X, y, groups=groups)
    assert (tmp_path / name).read_bytes() == good
    state = torch.load(tmp_path / name, weights_only=True)
    assert state["iteration"] == 4 and os.listdir(tmp_path) == [name]


def test_a_diverged_fine_tuning_raises():
    X, y, groups = _data()
    meta = MetaAestheticRegressor(**SMALL).fit(X, y, groups=groups)
    with pytest.raises(FloatingPointError, match="fine-tuning diverged.*Lower the learning"):
        meta.personalize(X[:20], y[:20], lr=1e30)
    assert np.isfinite(meta.personalize(X[:20], y[:20]).predict(X[20:40])).all()


def test_a_score_range_beyond_float32_is_refused():
    X, y, groups = _data()
    with pytest.raises(ValueError, match="beyond float32's range"):
        MetaAestheticRegressor(**SMALL, score_range=(0, 1e39)).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="beyond float32's range"):
        MetaAestheticRegressor(**SMALL, score_range=(-3e38, 3e38)).fit(X, y, groups=groups)


def test_huge_finite_weights_are_not_called_diverged():
    # The check sums each tensor first (fast); a sum that overflows is tested again.
    from sklearn_piaa._diverged import check_trained
    layer = torch.nn.Linear(4, 4)
    with torch.no_grad():
        layer.weight.fill_(3e38)
    check_trained(layer, [1.0], "fine-tuning", "lr")
    with torch.no_grad():
        layer.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"1 weight or statistic tensor\(s\) .*weight"):
        check_trained(layer, [1.0], "fine-tuning", "lr")
