"""Models pickled on a GPU load on a machine without one (found by an audit).

No GPU is needed: a pickle written on one differs only in the device recorded for each
tensor, which these tests record as ``cuda:0`` for the model's own tensors, while the
model's device settings read ``"cuda"``; loading then runs as on a machine without CUDA.
tests/test_cuda.py does it for real where there is a GPU.
"""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
import torch.serialization
from sklearn.frozen import FrozenEstimator

import sklearn_piaa._device
from sklearn_piaa import MetaAestheticRegressor, TaskVectorRegressor
from sklearn_piaa.baselines import PAIAARegressor


def _live(model):
    """The storages of the tensors reachable from ``model``, and the objects with a
    ``device`` setting."""
    storages, owners, seen = set(), [], set()

    def walk(obj):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            storages.add(obj.untyped_storage().data_ptr())
        elif isinstance(obj, torch.nn.Module):
            for t in (*obj.parameters(), *obj.buffers()):
                storages.add(t.untyped_storage().data_ptr())
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)
        elif type(obj).__module__.split(".")[0] in ("sklearn_piaa", "sklearn", "skorch") \
                and hasattr(obj, "__dict__") and not isinstance(obj, type):
            if "device" in vars(obj):
                owners.append(obj)
            for v in vars(obj).values():
                walk(v)

    walk(model)
    return storages, owners


def pickled_as_on_a_gpu(model, monkeypatch):
    """``pickle.dumps(model)`` as it reads when the model lives on ``cuda``."""
    storages, owners = _live(model)
    tag = torch.serialization.location_tag
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag",
                  lambda s: "cuda:0" if s.data_ptr() in storages else tag(s))
        m.setattr(sklearn_piaa._device, "off_cpu", lambda obj: True, raising=False)
        for owner in owners:
            m.setattr(owner, "device", "cuda")
        return pickle.dumps(model)


def _features_prior(ratings, tiny_params):
    X, y, groups = ratings
    return MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)


def _prior(ratings, tiny_params, image_files):
    return _features_prior(ratings, tiny_params), ratings[0][:10], ratings[1][:10]


def _net(ratings, tiny_params, image_files):
    X, y, _ = ratings
    return _features_prior(ratings, tiny_params).personalize(X[:10], y[:10]), X[:10], y[:10]


def _task_vectors(ratings, tiny_params, image_files):
    X, y, groups = ratings
    prior = _features_prior(ratings, tiny_params)
    model = TaskVectorRegressor(FrozenEstimator(prior), n_sources=2, source_epochs=1,
                                coef_steps=3, random_state=0).fit(X, y, groups=groups)
    return model, X[:10], y[:10]


def _task_vector_net(ratings, tiny_params, image_files):
    model, X, y = _task_vectors(ratings, tiny_params, image_files)
    return model.personalize(X, y), X, y


def _images(image_files, train_backbone):
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    meta = MetaAestheticRegressor(backbone="tiny_cnn", train_backbone=train_backbone,
                                  hidden_sizes=(8,), n_iterations=2, support_size=4,
                                  query_size=2, finetune_epochs=1, random_state=0)
    return meta.fit(image_files, y, groups=np.repeat(["a", "b"], 6)), image_files, y


def _head_on_images(ratings, tiny_params, image_files):
    return _images(image_files, False)


def _whole_network_net(ratings, tiny_params, image_files):
    meta, X, y = _images(image_files, True)
    return meta.personalize(X[:6], y[:6]), X, y


def _own_backbone_module(ratings, tiny_params, image_files):
    from sklearn_piaa.nn import load_backbone

    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    meta = MetaAestheticRegressor(backbone=load_backbone("tiny_cnn"), hidden_sizes=(8,),
                                  n_iterations=2, support_size=4, query_size=2,
                                  finetune_epochs=1, random_state=0)
    return meta.fit(image_files, y, groups=np.repeat(["a", "b"], 6)), image_files, y


def _personality(ratings, tiny_params, image_files):
    X, y, groups = ratings
    traits = {g: np.linspace(-0.5, 0.5, 5) * (i % 3 - 1)
              for i, g in enumerate(np.unique(groups))}
    model = PAIAARegressor(personality=traits, hidden_size=8, max_epochs=2, random_state=0)
    return model.fit(X, y, groups=groups), X[:10], y[:10]


def _baseline_on_images(ratings, tiny_params, image_files):
    # its device read "cuda" without a word after unpickling, and a refit failed
    from sklearn_piaa import UserRidgeRegressor

    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    model = UserRidgeRegressor(backbone="tiny_cnn", random_state=0)
    return model.fit(image_files, y, groups=np.repeat(["a", "b"], 6)), image_files, y


@pytest.mark.parametrize("make", [_prior, _net, _task_vectors, _task_vector_net,
                                  _head_on_images, _whole_network_net, _own_backbone_module,
                                  _personality, _baseline_on_images])
def test_a_model_pickled_on_a_gpu_loads_and_predicts_without_one(
        make, ratings, tiny_params, image_files, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, X, y = make(ratings, tiny_params, image_files)
    expected = model.predict(X)
    data = pickled_as_on_a_gpu(model, monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="pickled with device='cuda' was loaded on this "
                                         "machine, which does not have that device"):
        loaded = pickle.loads(data)
    _, owners = _live(loaded)
    assert owners and all(str(o.device) == "cpu" for o in owners)
    np.testing.assert_allclose(loaded.predict(X), expected, rtol=1e-6)


def test_a_model_on_the_cpu_pickles_its_own_tensors(ratings, tiny_params):
    # nothing to copy: pickling a CPU model makes no copy of its network
    net = _net(ratings, tiny_params, None)[0]
    state = net.__getstate__()
    assert state["module"] is net.module


def test_an_unfitted_model_keeps_its_device_for_fit_to_check(monkeypatch):
    # a joblib worker unpickled MetaAestheticRegressor(device="cuda") as a CPU model:
    # cross_val_score ran on the CPU with n_jobs=2 and refused with n_jobs=1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for model in (MetaAestheticRegressor(device="cuda"),
                      PAIAARegressor(device="cuda")):
            assert pickle.loads(pickle.dumps(model)).device == "cuda"


def test_a_shallow_copy_shares_the_networks_of_a_model_on_a_gpu(
        ratings, tiny_params, image_files, monkeypatch):
    # copy.copy went through __getstate__, copying every network to the CPU and back
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior = _features_prior(ratings, tiny_params)
        vectors = _task_vectors(ratings, tiny_params, image_files)[0]
        personality = _personality(ratings, tiny_params, image_files)[0]
    monkeypatch.setattr(sklearn_piaa._device, "off_cpu", lambda obj: True)
    assert copy.copy(prior).prior_net_ is prior.prior_net_
    assert copy.copy(vectors).task_vectors_ is vectors.task_vectors_
    assert copy.copy(personality).module_ is personality.module_


@pytest.mark.parametrize("make", [_prior, _task_vectors, _own_backbone_module, _personality])
def test_a_deep_copy_of_a_model_on_a_gpu_copies_its_state_as_it_is(
        make, ratings, tiny_params, image_files, monkeypatch):
    # copy.deepcopy went through __getstate__ too: a copy of a model on a GPU had the
    # networks that nothing moves back (a backbone module given as a parameter) on the
    # CPU, its device setting still "cuda"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, X, _ = make(ratings, tiny_params, image_files)

    def pickled(self):
        raise AssertionError("copy.deepcopy took the model's state for pickling")

    with monkeypatch.context() as m:
        m.setattr(sklearn_piaa._device.PickledOnCPU, "__getstate__", pickled)
        copied = copy.deepcopy(model)
    np.testing.assert_allclose(copied.predict(X), model.predict(X), rtol=1e-6)
