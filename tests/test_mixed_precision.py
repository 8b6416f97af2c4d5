"""bfloat16 autocast (``mixed_precision=True``): embedding and whole-network training on CPU."""

import os
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from sklearn_piaa import MetaAestheticRegressor, PIAAWarning, embed_images, save_model
from sklearn_piaa._device import autocast
from sklearn_piaa._features import ImageEmbedder
from sklearn_piaa.meta import BLG
from sklearn_piaa.nn import AestheticHead, load_backbone


def test_mixed_precision_embeddings_are_close_but_not_float32(image_files):
    full = embed_images(image_files, backbone="tiny_cnn")
    torch.manual_seed(0)  # tiny_cnn is randomly initialized: the same weights again
    half = embed_images(image_files, backbone="tiny_cnn", mixed_precision=True)
    assert half.dtype == np.float32 and np.isfinite(half).all()
    rel = np.linalg.norm(half - full) / np.linalg.norm(full)
    assert 0 < rel < 0.05, rel


def test_bfloat16_on_a_cpu_without_it_is_warned_of_once(image_files, monkeypatch):
    from sklearn_piaa import _device

    assert isinstance(_device.cpu_bfloat16_is_slow(), bool)
    monkeypatch.setattr(_device, "_SLOW_BFLOAT16_WARNED", [])
    monkeypatch.setattr(_device, "cpu_bfloat16_is_slow", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embed_images(image_files[:2], backbone="tiny_cnn", mixed_precision=True)
    monkeypatch.setattr(_device, "cpu_bfloat16_is_slow", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float32 on such a CPU: nothing to say
        embed_images(image_files[:2], backbone="tiny_cnn")
    with pytest.warns(PIAAWarning, match=r"no bfloat16 support in torch \(its CPU "
                                         r"capability: \w+\).*Set mixed_precision=False"
                      ) as record:
        embed_images(image_files[:2], backbone="tiny_cnn", mixed_precision=True)
    assert len(record) == 1 and record[0].filename == __file__  # the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: a service is not flooded
        embed_images(image_files[:2], backbone="tiny_cnn", mixed_precision=True)


def test_mixed_precision_embeddings_are_cached_apart(image_files, tmp_path):
    backbone = load_backbone("tiny_cnn")
    cpu = torch.device("cpu")
    cache = tmp_path / "cache"
    full = ImageEmbedder(backbone, cpu, cache_dir=cache).transform(image_files)
    half = ImageEmbedder(backbone, cpu, cache_dir=cache, mixed_precision=True).transform(
        image_files)
    dirs = sorted(os.listdir(cache))
    assert len(dirs) == 2 and dirs[0] == dirs[1].replace("-v", "-bf16-v")
    for d in dirs:
        assert len(os.listdir(cache / d)) == len(image_files)
    # A new embedder reads each precision's rows back from its own folder.
    again = ImageEmbedder(backbone, cpu, cache_dir=cache, mixed_precision=True)
    np.testing.assert_array_equal(again.transform(image_files), half)
    assert not np.array_equal(half, full)


def test_whole_network_mixed_precision_on_cpu(image_files, tmp_path):
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    groups = np.repeat(["a", "b"], 6)
    params = dict(backbone="tiny_cnn", train_backbone=True, hidden_sizes=(8,),
                  n_iterations=3, support_size=4, query_size=2, finetune_epochs=2,
                  random_state=0)
    preds = []
    for mixed in (False, True):
        meta = MetaAestheticRegressor(**params, mixed_precision=mixed)
        meta.fit(image_files, y, groups=groups)
        net = meta.personalize(image_files[:6], y[:6])
        assert net.mixed_precision is mixed
        p = net.predict(image_files)
        assert p.dtype == np.float32 and np.isfinite(p).all()
        preds.append(p)
    assert not np.array_equal(preds[0], preds[1])  # autocast really ran
    np.testing.assert_allclose(preds[0], preds[1], atol=0.2)
    save_model(net, tmp_path / "me.pt")  # the setting is saved with the model
    from sklearn_piaa import load_model

    loaded = load_model(tmp_path / "me.pt")
    assert loaded.prior_.mixed_precision is True
    np.testing.assert_allclose(loaded.predict(image_files), preds[1], rtol=1e-5, atol=1e-5)


def test_mixed_precision_turns_the_hand_written_head_path_off():
    head = AestheticHead(8, (4,))
    assert BLG()._head_gradient(head) is not None
    assert BLG(mixed_precision=True)._head_gradient(head) is None


@pytest.mark.parametrize("bad", ["yes", 1.5])
def test_mixed_precision_must_be_boolean(ratings, tiny_params, bad):
    X, y, groups = ratings
    with pytest.raises(ValueError, match="mixed_precision"):
        MetaAestheticRegressor(**tiny_params, mixed_precision=bad).fit(X, y, groups=groups)


def test_head_only_mixed_precision_predicts_in_bfloat16_but_trains_in_float32(
        ratings, tiny_params):
    X, y, groups = ratings
    tiny_params.update(hidden_sizes=(64, 32), finetune_epochs=3)
    fitted = []
    for mixed in (False, True):
        meta = MetaAestheticRegressor(**tiny_params, mixed_precision=mixed)
        meta.fit(X, y, groups=groups)
        net = meta.personalize(X[:30], y[:30], random_state=0)
        assert net.mixed_precision == ("inference" if mixed else False)
        assert net._fused() is not None  # float32 training by the hand-written path
        fitted.append((net.module_.state_dict(), net.predict(X), meta.predict(X)))
    (w0, p0, prior0), (w1, p1, prior1) = fitted
    assert all(torch.equal(w0[k], w1[k]) for k in w0)  # the same float32 training
    for full, half in ((p0, p1), (prior0, prior1)):
        assert half.dtype == np.float32 and not np.array_equal(full, half)
        np.testing.assert_allclose(half, full, atol=0.05)
        # The scores leave the head in float32: no bfloat16 grid that ties images
        # (between 2 and 4 its steps are 1/64: a few dozen levels for 200 images).
        assert len(np.unique(full)) > 100
        assert len(np.unique(half)) == len(np.unique(full))
        assert spearmanr(half, full).statistic > 0.99


@pytest.mark.parametrize("bad", ["training", 2])
def test_personalized_net_checks_mixed_precision(bad):
    from sklearn_piaa._personalize import PersonalizedNet

    with pytest.raises(ValueError, match="mixed_precision"):
        PersonalizedNet(AestheticHead(4, (3,)), mixed_precision=bad).initialize()


def test_mixed_precision_computes_in_bfloat16():
    layer = torch.nn.Linear(4, 3)
    x = torch.rand(2, 4)
    with autocast("cpu", enabled=True):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    with autocast("cpu", enabled=False):
        assert layer(x).dtype == torch.float32
