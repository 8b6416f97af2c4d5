"""The package leaves its caller's state alone: random generators, modules, warnings."""

import numpy as np
import pytest
import torch

from sklearn_piaa import ConsensusRidgeRegressor, MetaAestheticRegressor, embed_images


def _images(n=6):
    rng = np.random.RandomState(0)
    return (rng.rand(n, 40, 48, 3) * 255).astype(np.uint8)


def test_embedding_does_not_move_the_callers_generator():
    # Building a backbone draws its layers' initial weights (tiny_cnn has no
    # pretrained ones): it drew from the caller's generator.
    torch.manual_seed(7)
    caller = torch.random.get_rng_state()
    first = embed_images(_images(), backbone="tiny_cnn")
    assert torch.equal(torch.random.get_rng_state(), caller)
    np.testing.assert_array_equal(embed_images(_images(), backbone="tiny_cnn"), first)


def test_a_seeded_baseline_builds_the_same_backbone_whatever_the_callers_seed():
    X = list(_images(12))
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    groups = np.repeat(["a", "b"], 6)
    preds = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        caller = torch.random.get_rng_state()
        model = ConsensusRidgeRegressor(backbone="tiny_cnn", random_state=0)
        preds.append(model.fit(X, y, groups=groups).predict(X))
        assert torch.equal(torch.random.get_rng_state(), caller)
    np.testing.assert_array_equal(preds[0], preds[1])


class _WrongWidth(torch.nn.Module):
    """A user's backbone that fails on 224-pixel images (its linear layer is too small)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(10, 3)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_a_failed_probe_leaves_the_users_module_in_its_mode():
    module = _WrongWidth().train()
    meta = MetaAestheticRegressor(backbone=module, hidden_sizes=(4,), n_iterations=1,
                                  support_size=3, query_size=2)
    with pytest.raises(ValueError, match="backbone module _WrongWidth fails on one image"):
        meta.fit(list(_images(12)), np.tile([1.0, 2.0, 3.0], 4),
                 groups=np.repeat(["a", "b"], 6))
    assert module.training  # it was left in eval mode


def test_a_baseline_seeds_its_backbone_from_any_random_state():
    # Only an int seeded the backbone: a RandomState instance built it from the
    # caller's generator, and None built the same one on every fit.
    X = list(_images(12))
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    groups = np.repeat(["a", "b"], 6)

    def fit(random_state, caller_seed=0):
        torch.manual_seed(caller_seed)
        model = ConsensusRidgeRegressor(backbone="tiny_cnn", random_state=random_state)
        return model.fit(X, y, groups=groups).predict(X)

    first = fit(np.random.RandomState(0), caller_seed=1)
    np.testing.assert_array_equal(fit(np.random.RandomState(0), caller_seed=2), first)
    np.testing.assert_array_equal(fit(0), first)
    assert not np.array_equal(fit(None), fit(None))


def test_prediction_does_not_wait_for_a_seeded_fit_in_another_thread(ratings, tiny_params):
    # predict took the lock that seeded fits and personalizations hold for their whole
    # run: a service's predictions stalled behind any personalization in another thread
    import threading

    from sklearn_piaa._device import seeded

    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    net = meta.personalize(X[:20], y[:20], random_state=0)
    expected = meta.predict(X), net.predict(X)
    inside, release = threading.Event(), threading.Event()

    def personalizing_elsewhere():
        with seeded(0):
            inside.set()
            release.wait(60)

    other = threading.Thread(target=personalizing_elsewhere)
    other.start()
    inside.wait(60)
    try:
        done = []
        scoring = threading.Thread(target=lambda: done.append((meta.predict(X),
                                                               net.predict(X))))
        scoring.start()
        scoring.join(30)
        assert done, "prediction waited for the other thread's seeded block"
        np.testing.assert_array_equal(done[0][0], expected[0])
        np.testing.assert_array_equal(done[0][1], expected[1])
    finally:
        release.set()
        other.join()


@pytest.fixture
def float64_default():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("algorithm", ["blg", "maml"])
def test_a_callers_float64_default_dtype_is_neither_used_nor_changed(ratings, tiny_params,
                                                                    tmp_path, algorithm,
                                                                    float64_default):
    # torch.set_default_dtype(torch.float64) built float64 layers, which failed on the
    # float32 features: "mat1 and mat2 must have the same dtype" in fit and load_model
    from sklearn_piaa import load_model, save_model

    X, y, groups = ratings
    meta = MetaAestheticRegressor(**{**tiny_params, "algorithm": algorithm})
    meta.fit(X, y, groups=groups)
    assert torch.get_default_dtype() == torch.float64
    assert meta.predict(X[:3]).dtype == np.float32
    user = meta.personalize(X[:10], y[:10])
    assert np.isfinite(user.predict(X[10:13])).all()
    save_model(meta, tmp_path / "m.piaa")
    np.testing.assert_array_equal(load_model(tmp_path / "m.piaa").predict(X[:3]),
                                  meta.predict(X[:3]))
    assert torch.get_default_dtype() == torch.float64


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_fit_trains_inside_the_callers_no_grad_or_inference_mode(ratings, tiny_params, mode):
    # "element 0 of tensors does not require grad" for MAML, PA-IAA and task vectors
    from sklearn.frozen import FrozenEstimator

    from sklearn_piaa import PAIAARegressor, TaskVectorRegressor

    X, y, groups = ratings
    traits = {r: np.linspace(-1, 1, 5) * (i % 3 - 1) for i, r in enumerate(np.unique(groups))}
    maml = MetaAestheticRegressor(**{**tiny_params, "algorithm": "maml"})
    with mode():
        maml.fit(X, y, groups=groups)
        PAIAARegressor(personality=traits, max_epochs=2).fit(X, y, groups=groups)
        TaskVectorRegressor(FrozenEstimator(maml), n_sources=2, source_epochs=1,
                            coef_steps=2, random_state=0).fit(X, y, groups=groups)
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    assert np.isfinite(maml.predict(X[:3])).all()


def test_embed_images_leaves_the_users_module_alone():
    # it was put in eval mode with its weights laid out channels-last (and, on a GPU,
    # moved there), where fit works on a copy; a mixed_precision of "False" ran bfloat16
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                 torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).train()
    module.input_size = 32
    weight = module[0].weight.detach().clone()
    embed_images(_images(), backbone=module)
    assert module.training and module[0].weight.is_contiguous()
    assert torch.equal(module[0].weight, weight)
    with pytest.raises(ValueError, match="mixed_precision must be True or False; got 'False'"):
        embed_images(_images(), backbone="tiny_cnn", mixed_precision="False")


def test_training_inside_the_callers_bfloat16_autocast(ratings, tiny_params):
    # the hand-written head steps failed: "Expected out tensor to have dtype
    # c10::BFloat16"; PA-IAA's scores could not become numpy arrays
    from sklearn_piaa import PAIAARegressor

    X, y, groups = ratings
    traits = {r: np.linspace(-1, 1, 5) * (i % 3 - 1) for i, r in enumerate(np.unique(groups))}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
        user = meta.personalize(X[:10], y[:10])
        pa = PAIAARegressor(personality=traits, max_epochs=1).fit(X, y, groups=groups)
        assert np.isfinite(pa.predict(X[:3])).all()
    assert torch.is_autocast_cpu_enabled() is False
    reference = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    np.testing.assert_array_equal(meta.predict(X[:5]), reference.predict(X[:5]))
    np.testing.assert_allclose(user.predict(X[10:15]),
                               reference.personalize(X[:10], y[:10]).predict(X[10:15]),
                               rtol=1e-5)
