"""Personalization by task-vector customization (Yun & Choo, ECCV 2024)."""

import copy
import numbers
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context, clone
from sklearn.cluster import KMeans
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.func import functional_call

from ._device import PickledOnCPU, seeded, to_device, trains
from ._diverged import check_trained
from ._estimator import (
    _SCALE_CHECKED,
    MetaAestheticRegressor,
    _scores_at,
    scores_outside,
    warn_constant_raters,
    warn_if_unranked,
    warn_mixed_scales,
)
from ._features import SATURATES, SCALE_FAR_ROWS, FeatureInput, far_rows_checked
from ._inputs import FEATURES, check_feature_names, check_seed, input_kind
from ._messages import listing
from ._params import NumbersNotBools
from ._progress import progress
from ._tasks import as_tasks, rater_text
from ._warnings import PIAAWarning, warn_caller
from .nn import AestheticHead, AestheticLoss
from .nn.losses import LOSSES

__all__ = ["TaskVectorRegressor"]

# The head's output mapping: a property of the rater's scale, not of a task.
_NOT_COMBINED = ("score_low", "score_span")


def _weights_of(source, index):
    """The network inside a fitted model, for reading its weights."""
    if isinstance(source, FrozenEstimator):
        source = source.estimator
    if isinstance(source, MetaAestheticRegressor):
        check_is_fitted(source, "prior_net_")
        source = source.prior_net_
    module = getattr(source, "module_", source)
    if module is source and hasattr(source, "initialize"):  # a skorch net, never fitted
        raise NotFittedError(f"sources[{index}] is a {type(source).__name__} that is not "
                             "fitted; sources must be fitted models (such as the nets that "
                             "personalize returns), taken as they are. A GridSearchCV clones "
                             "the values of its parameter grid, which unfits them: wrap each "
                             "in sklearn.frozen.FrozenEstimator there.")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"sources[{index}] must be a fitted MetaAestheticRegressor, a fitted "
                        f"skorch net or an nn.Module; got {type(source).__name__}.")
    return module


def _is_fitted(estimator):
    """Whether ``estimator`` (not a FrozenEstimator) has been fitted."""
    if isinstance(estimator, FrozenEstimator):
        return False
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def _combinable(module):
    """Names of the floating-point entries of ``module``'s state that task vectors move."""
    return [name for name, t in module.state_dict().items()
            if t.is_floating_point() and name.rsplit(".", 1)[-1] not in _NOT_COMBINED]


def _is_variance(key):
    return key.endswith("running_var")


def _delta(base, tuned, key):
    """One weight's task vector: the difference, or the log-ratio for a variance.

    Batch-norm variances of fine-tuned versions can be well below the base's; a linear
    mix with coefficients summing past 1 then gives a variance near or below zero and a
    network that blows up. A geometric mix keeps every variance positive and still
    gives the fine-tuned version at coefficient 1.
    """
    if _is_variance(key):
        return torch.log(tuned.clamp_min(1e-12)) - torch.log(base.clamp_min(1e-12))
    return tuned - base


def _as_inputs(adapter, X, device):
    """``X`` as one tensor the network eats (embeddings, or evaluation-mode images)."""
    data = adapter(X)
    if isinstance(data, torch.utils.data.Dataset):
        if hasattr(data, "train"):
            data.train = False  # no augmentation while fitting coefficients
        data = torch.stack([data[i][0] for i in range(len(data))])
        normalize = getattr(adapter, "normalize", None)
        if normalize is not None and data.dtype == torch.uint8:
            # The datasets yield 8-bit pixels that the net normalizes on its device
            # (PersonalizedNet.infer); fed raw, the network saw 0-255 inputs.
            return normalize(data.to(device))
    return torch.as_tensor(np.asarray(data) if not torch.is_tensor(data) else data,
                           dtype=torch.float32, device=device)


def _fold_batch_norm(module, weights):
    """The same evaluation-mode network with each batch norm's statistics in its affine.

    Torch's batch norm takes no gradient through its running statistics, yet they move
    with the coefficients like the weights do. In evaluation mode batch norm is
    ``w (x - mean) / sqrt(var + eps) + b``, so folding the statistics into ``w`` and
    ``b`` (and passing mean 0, var ``1 - eps``) computes the same function, differentiably.
    """
    out = dict(weights)
    for name, m in module.named_modules():
        if not isinstance(m, torch.nn.modules.batchnorm._BatchNorm) or not m.affine:
            continue
        p = f"{name}." if name else ""
        mean, var = out.get(p + "running_mean"), out.get(p + "running_var")
        if mean is None or var is None:
            continue
        scale = out[p + "weight"] / torch.sqrt(var + m.eps)
        out[p + "weight"], out[p + "bias"] = scale, out[p + "bias"] - scale * mean
        out[p + "running_mean"] = torch.zeros_like(mean).detach()
        out[p + "running_var"] = torch.full_like(var, 1 - m.eps).detach()
    return out


def _keeps_first_layer(module, x):
    """Whether the coefficient fit can keep the first layer's products (:class:`_FirstLayer`).

    Known for :class:`AestheticHead` (the frozen-backbone network). Kept products take
    ``n_sources x len(x) x width`` numbers, as many as the layer's task vectors at
    ``len(x) = in_features``; above that the layer is combined at each step instead.
    """
    return (isinstance(module, AestheticHead) and isinstance(module.layers[0], nn.Linear)
            and len(x) <= module.layers[0].in_features)


class _FirstLayer:
    """An :class:`AestheticHead`'s first layer output for any coefficients, made fast.

    ``x (W_0 + sum_k lambda_k tau_k)^T = x W_0^T + sum_k lambda_k (x tau_k^T)``: the
    products with the base and with each task vector are computed once per rater, so a
    step of the coefficient fit combines ``n x width`` outputs instead of rebuilding
    the layer's ``width x in_features`` weights (the largest of the head) and
    multiplying. In ``module`` the layer is replaced by an identity.
    """

    keys = ("layers.0.weight", "layers.0.bias")

    def __init__(self, task_vectors, module, x):
        self._columns = [list(task_vectors).index(k) for k in self.keys]
        tau_w, tau_b = (task_vectors[k].to(x.device) for k in self.keys)
        layer = module.layers[0]
        with torch.no_grad():
            self._base = nn.functional.linear(x, layer.weight, layer.bias)
            self._products = torch.einsum("nd,khd->knh", x, tau_w)
            self._bias = tau_b
        module.layers[0] = nn.Identity()

    def __call__(self, lam):
        """The layer's output for coefficients ``lam`` of shape (n_sources, n_tensors)."""
        w, b = (lam[:, j] for j in self._columns)
        return (self._base + torch.tensordot(w, self._products, dims=1)
                + torch.tensordot(b, self._bias, dims=1))


class TaskVectorRegressor(PickledOnCPU, NumbersNotBools, RegressorMixin, BaseEstimator):
    """Personalize by mixing task vectors: per-user coefficients over fine-tuned models.

    Task-vector customization [1]_: a base network ``theta_0`` and ``K`` fine-tuned
    versions of it ``theta_k`` give task vectors ``tau_k = theta_k - theta_0``. A new
    rater's model is ``theta_0 + sum_k lambda_k tau_k`` (one coefficient per vector, or
    one per vector and weight tensor with ``coefficients="layer"``), with the
    coefficients -- a handful of numbers -- fitted to the rater's few ratings with a
    pairwise rank loss. Optionally the combined network is then fine-tuned like
    :meth:`MetaAestheticRegressor.personalize` (``finetune_epochs``).

    ``fit`` trains the base (any :class:`MetaAestheticRegressor`: a generic model with
    ``algorithm="average"``, or the BLG prior) and the fine-tuned versions: by default
    one per cluster of training raters (raters grouped by the direction in which their
    ratings pull the base's output layer), or one per group that ``sources`` names
    (e.g. the data set each rater comes from); ``sources`` may also be a list of models
    fine-tuned elsewhere from the same base.

    Parameters
    ----------
    base : MetaAestheticRegressor, default=None
        The base network's estimator, cloned and fitted on the training raters in
        ``fit``; wrap a fitted one in :class:`sklearn.frozen.FrozenEstimator` to use it
        as it is (a fitted base given unwrapped with a list of ``sources`` is refitted,
        with a :class:`PIAAWarning`). ``None`` means
        ``MetaAestheticRegressor(algorithm="average")`` (a generic model of the pooled
        ratings, with the default backbone). A base fitted here whose ``random_state``
        is ``None`` (the default one included) is seeded from ``random_state``; one with
        its own ``random_state`` keeps it.
    sources : "clusters", dict or list, default="clusters"
        Where the fine-tuned versions come from: ``"clusters"`` -- ``n_sources``
        clusters of the training raters, the base fine-tuned on each cluster's pooled
        ratings; a dict ``rater -> group label`` -- one version per group (every
        training rater must have a label); a list of fitted models with the base's
        architecture (fitted :class:`MetaAestheticRegressor`, skorch nets such as
        :class:`PersonalizedNet`, or ``nn.Module``), taken as they are. ``None`` is what
        :func:`~sklearn_piaa.load_model` gives an estimator whose sources were models (a
        file does not hold them): it predicts and personalizes, and ``fit`` refuses it,
        asking for the sources again.
    n_sources : int, default=8
        Number of rater clusters with ``sources="clusters"``.
    source_epochs : int, default=10
        Epochs of fine-tuning the base on each group's ratings.
    source_lr : float, default=1e-4
        Adam learning rate of that fine-tuning.
    source_batch_size : int, default=32
    coefficients : {"global", "layer"}, default="global"
        One coefficient per task vector, or one per task vector and weight tensor.
    coef_steps : int, default=100
        Adam steps (full batch) on the coefficients in :meth:`personalize`.
    coef_lr : float, default=0.05
        Their learning rate.
    coef_l2 : float, default=1.0
        Penalty ``coef_l2 / n * sum(lambda ** 2)`` for ``n`` ratings (a Gaussian prior
        against the mean loss): with few ratings, stay near the base.
    loss : {"rank", "mse", "mse+rank"}, default="rank"
        Loss of the coefficient fit; see :class:`~sklearn_piaa.nn.AestheticLoss`.
    finetune_epochs : int, default=0
        Epochs of ordinary fine-tuning of the combined network afterwards, with the
        base's fine-tuning settings (``finetune_lr``, ``finetune_batch_size``); 0: none.
    random_state : int, RandomState instance or None, default=None
        Resolved in ``fit``; seeds the clustering of the raters, the fine-tuning of the
        sources and the base's fit when the base has no ``random_state`` of its own
        (as scikit-learn's ensembles seed their estimators). Also the default of
        :meth:`personalize`'s ``random_state``.
    verbose : int, default=0
        Progress bar over the sources on stderr when positive.

    Attributes
    ----------
    base_ : MetaAestheticRegressor
        The fitted base.
    source_names_ : list
        One label per task vector (cluster numbers, group labels or list positions).
    source_raters_ : dict
        Label -> training raters whose ratings made that version (empty for given
        models).
    task_vectors_ : dict
        Weight name -> tensor of shape ``(n_sources, *weight.shape)``: each source's
        fine-tuned minus base weights (for batch-norm running variances, the log of
        their ratio, so that variances mix geometrically and stay positive).
    score_range_ : tuple of float
        The base's rating scale.
    n_features_in_ : int
        The base's feature width (only when it was fitted on features).
    feature_names_in_ : ndarray of str
        The base's feature names (only when it was fitted on a DataFrame of features
        with string column names).

    See Also
    --------
    MetaAestheticRegressor : the bilevel-meta-learned prior (a good ``base``).

    Notes
    -----
    Yun & Choo form task vectors from models fine-tuned on several public aesthetics and
    quality databases. With one data set of raters (as here, offline), the sources are
    groups of its raters instead; with a dict ``sources`` that names each rater's data
    set, the original setting is recovered. The coefficients start at 0 (the base); the
    network is used in evaluation mode while they are fitted (dropout off, batch
    normalization with its running statistics, which are combined like the weights --
    the variances geometrically, so that they stay positive).

    References
    ----------
    .. [1] J. Yun and J. Choo, "Scaling Up Personalized Image Aesthetic Assessment via
       Task Vector Customization", ECCV 2024.
    .. [2] G. Ilharco et al., "Editing Models with Task Arithmetic", ICLR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_piaa import MetaAestheticRegressor, TaskVectorRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(400, 8).astype(np.float32)
    >>> users = np.repeat(np.arange(8), 50)
    >>> y = np.clip(3 + X[:, 0] * np.where(users % 2, 1, -1) + 0.3 * rng.randn(400), 1, 5)
    >>> base = MetaAestheticRegressor(backbone=None, hidden_sizes=(16,),
    ...                               algorithm="average", n_iterations=30, random_state=0)
    >>> tv = TaskVectorRegressor(base, n_sources=2, random_state=0).fit(X, y, groups=users)
    >>> net = tv.personalize(X[:10], y[:10])
    >>> net.predict(X[10:13]).shape
    (3,)
    """

    __metadata_request__fit = {"groups": True}

    _parameter_constraints = {
        "base": [MetaAestheticRegressor, BaseEstimator, None],
        "sources": [StrOptions({"clusters"}), dict, list, tuple, None],
        "n_sources": [Interval(numbers.Integral, 1, None, closed="left")],
        "source_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "source_lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "source_batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "coefficients": [StrOptions({"global", "layer"})],
        "coef_steps": [Interval(numbers.Integral, 0, None, closed="left")],
        "coef_lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "coef_l2": [Interval(numbers.Real, 0, None, closed="left")],
        "loss": [StrOptions(set(LOSSES))],
        "finetune_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, base=None, *, sources="clusters", n_sources=8, source_epochs=10,
                 source_lr=1e-4, source_batch_size=32, coefficients="global", coef_steps=100,
                 coef_lr=0.05, coef_l2=1.0, loss="rank", finetune_epochs=0,
                 random_state=None, verbose=0):
        self.base = base
        self.sources = sources
        self.n_sources = n_sources
        self.source_epochs = source_epochs
        self.source_lr = source_lr
        self.source_batch_size = source_batch_size
        self.coefficients = coefficients
        self.coef_steps = coef_steps
        self.coef_lr = coef_lr
        self.coef_l2 = coef_l2
        self.loss = loss
        self.finetune_epochs = finetune_epochs
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        tags.regressor_tags.poor_score = True
        return tags

    def __setstate__(self, state):
        super().__setstate__(state)
        if "task_vectors_" in self.__dict__:  # where the base's net is (the CPU without it)
            self.task_vectors_ = to_device(self.task_vectors_, self.base_.prior_net_.device)

    def __sklearn_clone__(self):
        """A clone as :func:`sklearn.base.clone` makes it, sharing a list of ``sources``.

        Models given as ``sources`` are fitted models, taken as they are: cloned, as
        ``clone`` clones the estimators in a list, they would come back unfitted, and
        ``cross_val_score`` or ``GridSearchCV`` could not fit this estimator. The clone
        gets a new list of the same models (read, never changed, by ``fit``).

        Returns
        -------
        TaskVectorRegressor
            Unfitted, with the same parameters.
        """
        if not isinstance(self.sources, (list, tuple)):
            return super().__sklearn_clone__()
        stand_in = copy.copy(self)  # its own __dict__: self keeps its sources
        stand_in.sources = "clusters"
        new = clone(stand_in)
        new.sources = type(self.sources)(self.sources)
        return new

    # -- fit -------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=False)
    @trains
    def fit(self, X=None, y=None, groups=None):
        """Fit the base and the fine-tuned versions on the training raters.

        Parameters
        ----------
        X : TaskSet, dict, array-like / list, or None
            The training raters, as in :meth:`MetaAestheticRegressor.fit`. May be
            ``None`` only when ``base`` is already fitted (a ``FrozenEstimator``) and
            ``sources`` is a list of models.
        y : array-like of shape (n_ratings,), default=None
        groups : array-like of shape (n_ratings,), default=None
            Rater id of each row.

        Returns
        -------
        self

        Warns
        -----
        PIAAWarning
            If some training raters gave every image the same score (named, as
            :meth:`MetaAestheticRegressor.fit` names them; by the base's fit, or here
            where a fitted base is kept), or some raters' scores look like another scale
            than the others' (named, likewise).

        Raises
        ------
        ValueError
            If a kept fitted base (``FrozenEstimator``) is to be fine-tuned on scores
            outside its range (named, with rater and row).
        """
        rng = check_random_state(self.random_state)
        base = MetaAestheticRegressor(algorithm="average") if self.base is None else self.base
        wrapped = getattr(base, "estimator", base) if isinstance(base, FrozenEstimator) \
            else base
        if not isinstance(wrapped, MetaAestheticRegressor):
            # before the base's fit: that is the long part, and another model's fit fails
            # with its own words (Ridge: "missing 1 required positional argument")
            raise TypeError(f"base must be a MetaAestheticRegressor (or a FrozenEstimator of "
                            f"one); got {type(wrapped).__name__}.")
        if self.sources is None:
            # scikit-learn's "must be ... Got None instead" did not say why it is None
            raise ValueError("sources is None, as in a TaskVectorRegressor loaded from a "
                             "file whose sources were fitted models (which a file does not "
                             "hold): give them again, set_params(sources=[...]), or "
                             "sources='clusters' to make them from the training raters.")
        given = isinstance(self.sources, (list, tuple))
        if given and len(self.sources) == 0:
            raise ValueError("sources is an empty list; give at least one fine-tuned model.")
        tasks = None
        if X is not None:
            template = getattr(base, "estimator", base)
            tasks = as_tasks(X, y, groups, features=getattr(template, "backbone", 0) is None,
                             owner=type(self).__name__)
        elif not (given and isinstance(base, FrozenEstimator)):
            raise ValueError("fit needs the training raters (X) unless base is a fitted "
                             "model in a FrozenEstimator and sources is a list of models.")
        if isinstance(self.sources, dict):
            # Checked before any training: a missing label should not cost a fit.
            missing = [r for r in tasks.raters if r not in self.sources]
            if missing:
                keys = {rater_text(k) for k in self.sources}
                hint = (" Its keys spell these raters' ids with another type (e.g. '7' for "
                        "7): give the keys as the ids are." if any(
                            rater_text(r) in keys for r in missing) else "")
                raise ValueError(f"sources has no group label for {len(missing)} training "
                                 f"rater(s): {listing(map(repr, missing))}.{hint}")
        if given and tasks is not None and _is_fitted(base):
            # The given sources were fine-tuned from this fitted base; cloning refits it,
            # and the task vectors would measure two independent trainings instead.
            warnings.warn(f"base is a fitted {type(base).__name__} but not wrapped in "
                          "FrozenEstimator: fit refits a clone of it, so the task vectors "
                          "of the given sources are taken against a different base than "
                          "the one they were fine-tuned from. Pass "
                          "base=FrozenEstimator(base) to use it as it is.",
                          PIAAWarning, stacklevel=3)
        base_ = clone(base)
        if tasks is not None and not isinstance(base_, FrozenEstimator):
            params = base_.get_params(deep=False)
            if "random_state" in params and params["random_state"] is None:
                # Left unseeded, the base made the whole fit irreproducible. Drawn only
                # here, so a seeded base leaves the draws below (clusters, sources) as
                # they were.
                base_.set_params(random_state=rng.randint(np.iinfo(np.int32).max))
            base_.fit(tasks)  # the tasks carry X's column names to the base
        model = getattr(base_, "estimator", base_)  # FrozenEstimator wraps the fitted one
        check_is_fitted(model, "prior_net_")
        if tasks is not None and not given and isinstance(base_, FrozenEstimator):
            # the fitted base saw none of the raters the sources are fine-tuned on
            warn_constant_raters(tasks)
            low, high = model.score_range_
            outside = scores_outside(tasks.y, low, high)  # in float32, as fit measured
            if outside.any():
                # else the first group's personalize refuses, naming rows of the group
                raise ValueError(
                    f"{int(outside.sum())} score(s) lie outside the base's range ({low:g}, "
                    f"{high:g}), which the sources are fine-tuned in: "
                    f"{_scores_at(tasks.y, outside, tasks, bounds=(low, high))}. Rescale "
                    "those raters' scores "
                    "onto the base's scale, or leave them out.")
            warn_mixed_scales(tasks, (low, high), "Each version is fine-tuned on them in "
                              "that range, where their ratings weigh next to nothing",
                              whose=f"the base's range ({low:g}, {high:g})")
        theta0 = model.prior_net_.module_
        if given:
            names = list(range(len(self.sources)))
            members = {i: [] for i in names}
            fitted = [_weights_of(s, i) for i, s in enumerate(self.sources)]
        else:
            members = self._groups(model, tasks, rng)
            names = list(members)
            fitted = self._fine_tune(model, tasks, members, rng)
        diffs = [self._difference(theta0, m, name) for name, m in zip(names, fitted)]
        # One (n_sources, ...) tensor per weight: a combination is then one tensordot.
        self.task_vectors_ = {k: torch.stack([d[k] for d in diffs]) for k in diffs[0]}
        self.base_, self.source_names_, self.source_raters_ = model, names, members
        self.score_range_ = model.score_range_
        self._input_of(model)
        return self

    def _input_of(self, model):
        """Take the fitted base's feature width and names (none for images)."""
        for name in ("n_features_in_", "feature_names_in_"):
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))
            else:
                self.__dict__.pop(name, None)

    def _groups(self, model, tasks, rng):
        """Label -> training raters, from ``sources`` (a dict) or by clustering."""
        if isinstance(self.sources, dict):
            members = {}
            for r in tasks.raters:
                members.setdefault(self.sources[r], []).append(r)
            return members
        k = min(self.n_sources, len(tasks.raters))
        if k < self.n_sources:
            warnings.warn(f"n_sources={self.n_sources} but only {len(tasks.raters)} training "
                          f"raters: using {k} clusters.", PIAAWarning, stacklevel=4)
        pulls = self._rater_pulls(model, tasks)
        labels = KMeans(k, n_init=10, random_state=rng.randint(np.iinfo(np.int32).max)
                        ).fit_predict(pulls)
        members = {}
        for r, label in zip(tasks.raters, labels):
            members.setdefault(int(label), []).append(r)
        return dict(sorted(members.items()))

    @staticmethod
    def _rater_pulls(model, tasks):
        """Each rater's gradient of squared error at the base's output layer, unit length.

        Raters whose ratings pull the base the same way have similar taste relative to
        it, so they share a fine-tuned version.
        """
        module = copy.deepcopy(model.prior_net_.module_).eval()
        last = [m for m in module.modules() if isinstance(m, torch.nn.Linear)][-1]
        device = model.prior_net_.device
        pulls = []
        for r in tasks.raters:
            Xr, yr = tasks[r]
            x = _as_inputs(model.input_, Xr, device)
            target = torch.as_tensor(yr, dtype=torch.float32, device=device)
            module.zero_grad()
            torch.mean((module(x).reshape(-1) - target) ** 2).backward()
            pulls.append(torch.cat([last.weight.grad.reshape(-1), last.bias.grad]).cpu()
                         .double().numpy())
        pulls = np.stack(pulls)
        return pulls / np.maximum(np.linalg.norm(pulls, axis=1, keepdims=True), 1e-12)

    def _fine_tune(self, model, tasks, members, rng):
        """The base fine-tuned on each group's pooled ratings."""
        bar = progress(total=len(members), desc="sources", unit="source",
                       enabled=bool(self.verbose))
        modules = []
        # fit named raters of another scale or of equal scores, by rater: personalize
        # would say it again of each group, as of one rater
        _SCALE_CHECKED.on = True
        try:
            for raters in members.values():
                part = tasks.subset(raters)
                try:
                    net = model.personalize(part.X, part.y,
                                            random_state=rng.randint(2**31 - 1),
                                            max_epochs=self.source_epochs,
                                            lr=self.source_lr,
                                            batch_size=self.source_batch_size)
                except FloatingPointError as exc:
                    raise FloatingPointError(
                        f"{exc} The sources are fine-tuned with source_lr="
                        f"{self.source_lr!r} for source_epochs={self.source_epochs!r}: lower "
                        "those.") from None
                modules.append(net.module_)
                bar.update()
        finally:
            _SCALE_CHECKED.on = False
        bar.close()
        return modules

    @staticmethod
    def _difference(theta0, module, name):
        base, tuned = theta0.state_dict(), module.state_dict()
        keys = _combinable(theta0)
        wrong = [k for k in keys if k not in tuned or tuned[k].shape != base[k].shape]
        if wrong:
            raise ValueError(f"source {name!r} does not have the base's architecture: "
                             f"{len(wrong)} weight(s) missing or of another shape, e.g. "
                             f"{wrong[:3]}.")
        # in the base's dtype too: a float64 source (fine-tuned under a float64
        # default dtype) fitted, then failed in combine and personalize
        return {k: _delta(base[k], tuned[k].to(base[k].device, base[k].dtype), k)
                .detach().clone() for k in keys}

    # -- use -------------------------------------------------------------------------

    def predict(self, X):
        """Zero-shot scores: the base's (all coefficients 0).

        Parameters
        ----------
        X : array-like or list

        Returns
        -------
        ndarray of shape (n_samples,), float32
            The base network's float32 output, as :meth:`MetaAestheticRegressor.predict`
            gives it.
        """
        check_is_fitted(self, "task_vectors_")
        self._check_width(X)
        return self.base_.predict(X)

    def _check_width(self, X):
        """Refuse features of another width, or columns under other names or in another
        order, under this class's name (not the base's)."""
        check_feature_names(getattr(self, "feature_names_in_", None), X, type(self).__name__)
        n = getattr(self, "n_features_in_", None)
        if n is None or input_kind(X) != FEATURES:
            return
        # the width of what the base will read (np.shape would ask an array-like
        # object for __array_function__ support)
        shape = np.asarray(X).shape
        if len(shape) == 2 and shape[1] != n:
            raise ValueError(f"X has {shape[1]} features, but {type(self).__name__} is "
                             f"expecting {n} features as input (the width seen in fit).")

    def combine(self, coefficients):
        """The base network moved by ``coefficients`` times the task vectors.

        Parameters
        ----------
        coefficients : array-like of shape (n_sources,) or (n_sources, n_tensors)

        Returns
        -------
        torch.nn.Module
            A new network (evaluation mode); the base is unchanged.
        """
        check_is_fitted(self, "task_vectors_")
        module = copy.deepcopy(self.base_.prior_net_.module_).eval()
        lam = torch.as_tensor(np.asarray(coefficients, dtype=np.float32))
        module.load_state_dict(self._combined(lam, module), strict=False)
        return module

    def _per_tensor(self, lam, device):
        """Coefficients as ``(n_sources, n_tensors)``, columns in ``task_vectors_`` order."""
        n_sources, n_tensors = len(self.source_names_), len(self.task_vectors_)
        if lam.ndim == 1 and len(lam) == n_sources:
            lam = lam[:, None].expand(n_sources, n_tensors)
        if tuple(lam.shape) != (n_sources, n_tensors):
            raise ValueError(f"coefficients must have shape ({n_sources},) or "
                             f"({n_sources}, {n_tensors}); got {tuple(lam.shape)}.")
        return lam.to(device)

    def _combined(self, lam, module, skip=()):
        """``name -> theta_0 + sum_k lambda_k tau_k`` (differentiable in ``lam``).

        Weights named in ``skip`` are left out (their combination is made elsewhere).
        """
        base = module.state_dict()
        lam = self._per_tensor(lam, next(iter(self.task_vectors_.values())).device)
        out = {}
        for j, key in enumerate(self.task_vectors_):
            if key in skip:
                continue
            step = torch.tensordot(lam[:, j], self.task_vectors_[key], dims=1)
            # Variances combine in log space (see _delta): positive for any coefficients.
            out[key] = base[key] * torch.exp(step) if _is_variance(key) else base[key] + step
        return out

    def _fit_coefficients(self, x, y, seed):
        """Adam on the coefficients, full batch, from 0 (the base)."""
        module = copy.deepcopy(self.base_.prior_net_.module_).eval()
        n_tensors = 1 if self.coefficients == "global" else len(self.task_vectors_)
        lam = torch.zeros(len(self.source_names_), n_tensors, device=x.device,
                          requires_grad=True)
        # in a quarter of the base's score range: y is on its scale (see personalize)
        low, high = self.base_.score_range_
        criterion = AestheticLoss(kind=self.loss, unit=(high - low) / 4.0)
        target = torch.as_tensor(y, dtype=torch.float32, device=x.device)
        opt = torch.optim.Adam([lam], lr=self.coef_lr)
        first = (_FirstLayer(self.task_vectors_, module, x) if _keeps_first_layer(module, x)
                 else None)
        buffers = dict(module.named_buffers())
        with seeded(seed, x.device):
            for _ in range(self.coef_steps):
                # one column per weight tensor, made once for both uses
                coefs = self._per_tensor(lam.squeeze(1) if n_tensors == 1 else lam, x.device)
                if first is None:
                    weights, inputs = self._combined(coefs, module), x
                else:
                    weights, inputs = self._combined(coefs, module, first.keys), first(coefs)
                weights = _fold_batch_norm(module, weights)
                pred = functional_call(module, {**buffers, **weights}, (inputs,)).reshape(-1)
                # A Gaussian prior on the coefficients: its weight against the mean loss
                # shrinks as the rater gives more ratings.
                loss = criterion(pred, target) + self.coef_l2 / len(y) * (lam ** 2).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        lam = lam.detach()
        return lam.squeeze(1) if n_tensors == 1 else lam

    @staticmethod
    def _warn_if_unmoved(lam, far, n_images, moves):
        """Name rows far outside the base's features, and coefficients left at 0.

        Adam moves every coefficient whose gradient is not exactly 0: all of them still
        at 0 after the steps mean the loss did not change with them at all, which the
        net, the base's network, would not show.
        """
        stuck = moves and not bool(lam.any())
        if far and stuck:
            warn_caller(f"{far} The base's output saturates on them, so fitting the "
                        "rater's coefficients moved nothing: they stayed 0 (the base's "
                        f"network). {SCALE_FAR_ROWS}")
        elif far:
            warn_caller(f"{far} {SATURATES} {SCALE_FAR_ROWS}")
        elif stuck:
            warn_caller(
                "the rater's coefficients stayed 0 (the base's network): the loss did not "
                f"change with them on the rater's {n_images} image(s). The "
                "base's output is saturated there (each image at an end of its score range: "
                "features far larger than those it was fitted on, or a collapsed base), or "
                "the task vectors are all 0.")

    def personalize(self, X, y, random_state=None, score_range=None, **net_params):
        """Fit one rater's coefficients (and optionally fine-tune) on their ratings.

        Parameters
        ----------
        X : array-like or list
            The rater's images (or features).
        y : array-like of shape (n_samples,)
            Their scores.
        random_state : int, RandomState instance or None, default=None
        score_range : (float, float), default=None
            The rater's scale when it is not the base's (see
            :meth:`MetaAestheticRegressor.personalize`).
        **net_params
            Overrides for the skorch net's fine-tuning (with ``finetune_epochs > 0``).

        Returns
        -------
        PersonalizedNet
            A fitted skorch regressor holding the combined (and fine-tuned) network; its
            ``coefficients_`` attribute holds the rater's coefficients. Its
            ``partial_fit`` fine-tunes further, for the base's ``finetune_epochs`` where
            this class's ``finetune_epochs`` is 0. It cannot be
            cloned (as ``cross_val_score`` or ``GridSearchCV`` do to re-fit it): a clone
            would keep the coefficients fitted on these images.

        Raises
        ------
        ValueError
            As :meth:`MetaAestheticRegressor.personalize` raises it (e.g. for
            ``y=None``: the rater's scores are required), or if ``X`` holds features of
            another width than those fitted on.
        TypeError
            If ``net_params`` holds a setting of this class rather than of the net, or
            a name the net does not take (as for
            :meth:`MetaAestheticRegressor.personalize`).
        FloatingPointError
            If fitting the coefficients (``coef_lr``, ``coef_steps``) or fine-tuning
            diverged.

        Warns
        -----
        PIAAWarning
            As :meth:`MetaAestheticRegressor.personalize` warns (``y`` one score or
            several all equal, or another scale than the base's); with ``loss='rank'``
            equal scores are named once, as leaving the coefficients at 0. If rows of
            features lie far outside the base's (as :meth:`MetaAestheticRegressor.predict`
            names them), once, saying whether the coefficients stayed 0 there; if the
            coefficients stayed 0 for another reason.
        """
        check_is_fitted(self, "task_vectors_")
        base = self.base_
        # The net would keep this class's own settings as attributes that change nothing
        # (names both have, such as verbose, are the net's).
        own = sorted(set(net_params) & set(self.get_params(deep=False))
                     - set(base.prior_net_.get_params(deep=False)))
        if own:
            raise TypeError(f"{', '.join(own)}: setting(s) of TaskVectorRegressor, not of "
                            "the fine-tuning net; give them with set_params(...) before "
                            "personalize.")
        # (a loaded model's sources is None, which fit would refuse: its own settings
        # are not checked whole, but the fine-tuning's are)
        base._check_finetune_settings({"max_epochs": self.finetune_epochs, **net_params})
        self._check_width(X)
        # Rows far outside the base's features are named once, below, with what they
        # did to the coefficients: not again by each step that reads them.
        with far_rows_checked():
            X, y, scale = base._check_rater(X, y, score_range)
            if random_state is None:
                random_state = self.random_state
            rng = check_seed(random_state)
            seed = rng.randint(np.iinfo(np.int32).max)
            x = _as_inputs(base.input_, X, base.prior_net_.device)
            # The loss measures differences on the base's scale, in a unit of it.
            (lo, hi), (low, high) = base.score_range_, scale
            y_fit = lo + (y - low) * (hi - lo) / (high - low)
            unranked = self.loss == "rank" and self.coef_steps > 0 and np.ptp(y_fit) == 0
            if unranked:
                # One cause, one warning: this one says what the cause does here.
                warn_caller("the rater's ratings are all equal (or there is only one): the "
                            "rank loss has no ordered pair to fit, so the coefficients stay 0 "
                            "(the base's network). loss='mse' or 'mse+rank' fits them to the "
                            "level.")
            else:
                warn_if_unranked(y)
            lam = self._fit_coefficients(x, y_fit, seed)
            features = isinstance(base.input_, FeatureInput)
            self._warn_if_unmoved(lam, base.input_.far_rows(x.cpu().numpy()) if features
                                  else "", len(y), moves=self.coef_steps > 0 and not unranked)
            combined = self.combine(lam.cpu().numpy())
            check_trained(combined, [], "fitting the rater's coefficients",
                          "coef_lr or coef_steps", features=x if features else None)
            net = base._finetune(X, y, rng, None if score_range is None else scale,
                                 module=combined,
                                 **{"max_epochs": self.finetune_epochs, **net_params})
        if net.max_epochs == 0:
            # Without fine-tuning here, a later partial_fit (more of the rater's
            # ratings) would run no epoch at all: it trains as the base's nets do.
            net.set_params(max_epochs=base.finetune_epochs)
        net.coefficients_ = lam.cpu().numpy()
        if isinstance(net.input, FeatureInput):
            # The base's adapter names the base's class in its errors (a width the net
            # was not fitted on), but the user fitted and called this one. A copy: the
            # base's own predictions keep its name.
            net.input = copy.copy(net.input)
            net.input.owner = type(self).__name__
        return net
