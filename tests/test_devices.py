"""Device arguments and mixed precision as saved and loaded (found by an audit)."""

import re
import warnings

import numpy as np
import pytest
import torch
from conftest import edited_state, tiny_baselines
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_piaa import (
    MetaAestheticRegressor,
    PersonalizedNet,
    _device,
    embed_images,
    load_model,
    save_model,
)
from sklearn_piaa._device import resolve_device
from sklearn_piaa.nn import AestheticHead


@pytest.fixture
def prior(ratings, tiny_params):
    X, y, groups = ratings
    return MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups), X, y


@pytest.mark.parametrize("device", ["CPU", 0, "nonsense"]
                         + ([] if torch.cuda.is_available() else ["cuda"])
                         + ([] if torch.backends.mps.is_available() else ["mps"]))
def test_an_unusable_device_to_load_on_is_a_clear_error(prior, tmp_path, device):
    meta, _, _ = prior
    save_model(meta, tmp_path / "p.pt")
    with pytest.raises(ValueError, match=r"device=.* (is not a valid|was requested)"):
        load_model(tmp_path / "p.pt", device=device)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_a_prior_saved_on_a_device_this_machine_lacks_loads_on_the_cpu(prior, tmp_path):
    meta, X, _ = prior
    save_model(meta, tmp_path / "p.pt")
    state = edited_state(tmp_path / "p.pt")
    state["params"]["device"] = "mps"  # a prior trained on a Mac
    torch.save(state, tmp_path / "mac.pt")
    with pytest.warns(UserWarning, match="device='mps', which this machine does not have"):
        loaded = load_model(tmp_path / "mac.pt")
    np.testing.assert_allclose(loaded.predict(X[:20]), meta.predict(X[:20]), rtol=1e-6)


def test_device_and_mixed_precision_are_saved_as_fitted(prior, tmp_path):
    meta, X, y = prior
    net = meta.personalize(X[:30], y[:30], mixed_precision=True)  # the net's own setting
    save_model(net, tmp_path / "net.pt")
    loaded = load_model(tmp_path / "net.pt")
    assert loaded.mixed_precision is True
    np.testing.assert_array_equal(loaded.predict(X[:50]), net.predict(X[:50]))
    # set_params without a refit changes neither the prior in memory nor its file
    meta.set_params(mixed_precision=True, device="nonsense")
    save_model(meta, tmp_path / "p.pt")
    again = load_model(tmp_path / "p.pt")
    assert again.device == "cpu" and again.mixed_precision is False
    np.testing.assert_array_equal(again.predict(X[:50]), meta.predict(X[:50]))


def test_a_net_without_a_device_predicts(ratings):
    # skorch's device=None ("do not move the module") reached torch.device(None)
    X, y, _ = ratings
    net = PersonalizedNet(AestheticHead(X.shape[1], hidden_sizes=(8,), score_range=(1, 5)),
                          max_epochs=1, device=None, lr=1e-3, train_split=None,
                          optimizer=torch.optim.Adam, random_state=0).fit(X[:30], y[:30])
    assert np.isfinite(net.predict(X[:3])).all()


def test_resolve_device_names_what_is_missing():
    assert resolve_device("cpu:0") == torch.device("cpu", 0)
    with pytest.raises(ValueError, match="this torch cannot use 'meta' devices"):
        resolve_device("meta")


@pytest.mark.parametrize("device", ["nonsense"]
                         + ([] if torch.cuda.is_available() else ["cuda"]))
def test_baselines_refuse_the_devices_the_meta_learner_refuses(ratings, tiny_params, device):
    # With backbone=None nothing runs on the device, yet a typo (or a GPU this machine
    # lacks) is a mistake the same call with the meta-learner reports.
    X, y, groups = ratings
    with pytest.raises(ValueError, match=f"device={device!r} (is not a valid|was requested)"
                       ) as meta_error:
        MetaAestheticRegressor(**{**tiny_params, "device": device}).fit(X, y, groups=groups)
    for baseline in tiny_baselines():
        with pytest.raises(ValueError, match=re.escape(str(meta_error.value))):
            baseline.set_params(device=device).fit(X, y, groups=groups)


def test_an_int_device_is_refused_by_functions_as_by_the_estimators(prior, tmp_path):
    # torch reads 0 as "cuda:0": the estimators' parameter validation refuses it, and
    # embed_images and load_model took it (and used a GPU where there is one).
    meta, X, y = prior
    with pytest.raises(InvalidParameterError,
                       match="'device' parameter of MetaAestheticRegressor must be an "
                             "instance of 'str' or an instance of 'torch.device'. Got 0"):
        MetaAestheticRegressor(device=0).fit(X, y)
    save_model(meta, tmp_path / "p.pt")
    message = (r"device=0 is not a valid device argument: give a str, such as 'cpu' or "
               r"'cuda:0', or a torch.device, as the estimators take \(got int\)")
    with pytest.raises(InvalidParameterError, match=message):
        load_model(tmp_path / "p.pt", device=0)
    with pytest.raises(InvalidParameterError, match=message):
        embed_images(np.zeros((2, 40, 40, 3), dtype=np.uint8), backbone="tiny_cnn", device=0)


def test_cuda_index_equal_to_the_device_count_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _device.resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match="has 2 CUDA device"):
        _device.resolve_device("cuda:2")


def test_to_device_keeps_container_types():
    t = torch.zeros(2)
    moved = _device.to_device({"a": (t, [t]), "b": 3}, "cpu")
    assert type(moved["a"]) is tuple and type(moved["a"][1]) is list and moved["b"] == 3


def test_unpickled_device_none_stays_none_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _device.unpickled_device(None) is None
        assert _device.unpickled_device("cpu") == "cpu"


def test_cpu_copies_returns_the_same_state_when_all_on_cpu():
    state = {"w": torch.zeros(2), "m": torch.nn.Linear(2, 2), "l": [torch.ones(1)]}
    assert _device.cpu_copies(state) is state
