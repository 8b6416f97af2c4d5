"""The skorch regressor that holds a prior or a personalized aesthetic network."""

import contextlib
import copy
import numbers
import os
import sys
import threading
import warnings

import numpy as np
import torch
from sklearn.utils import _safe_indexing
from skorch import NeuralNetRegressor
from skorch.callbacks import PrintLog
from skorch.dataset import Dataset, ValidSplit, unpack_data
from skorch.utils import to_tensor

from ._array_loader import array_loader
from ._device import autocast, cpu_copies, resolve_device, seeded, trains, unpickled_device
from ._diverged import LEVELS, check_trained, score_levels
from ._features import (
    FeatureInput,
    ImageEmbedder,
    ImageInput,
    cpu_forward_batch,
    drop_unreadable,
    far_rows_checked,
)
from ._inputs import check_scores, is_count, warn_if_float32_merges, with_rows
from ._interrupts import watching_ctrl_c
from ._messages import scores_given
from ._pickled import fill_new_params
from ._warnings import PIAAWarning, warn_caller
from .nn.adam import adam_step, is_plain_fused_adam
from .nn.head import head_of
from .nn.head_grad import HeadGradient
from .nn.losses import AestheticLoss, loss_unit

__all__ = ["PersonalizedNet"]

# Set while this thread predicts: its batches of array slices then draw no number from
# torch's generator (a DataLoader draws a seed it never uses), so prediction needs no
# seeded block -- and no turn behind another thread's fit.
_PREDICTING = threading.local()

# The nets inside a _kept_on_failure block, by id: a nested block leaves the restoring
# to the outer one.
_KEEPING = set()


class _PrintLog(PrintLog):
    """skorch's :class:`~skorch.callbacks.PrintLog`, which formats nothing it would not
    print, and colours only what goes to a terminal.

    skorch's formats the epoch's table even at ``verbose=0`` and then drops it: at 20
    short epochs, about 3% of personalizing a rater on 100 embeddings. It colours each
    epoch's best values with ANSI codes wherever they go: a redirected ``sklearn-piaa
    personalize > log.txt`` got ``ESC[36m`` in its file. Here they are coloured only where
    the table is printed to a terminal (and the ``NO_COLOR`` environment variable is
    unset); a ``sink`` other than ``print`` (a logger, a file) gets no colour.
    """

    def on_epoch_end(self, net, **kwargs):
        if self.sink is print and not net.verbose:
            return
        self._colour = self._to_terminal()
        super().on_epoch_end(net, **kwargs)

    def _to_terminal(self):
        if self.sink is not print or os.environ.get("NO_COLOR"):
            return False
        isatty = getattr(sys.stdout, "isatty", None)  # a replaced stdout may have none
        try:
            return bool(isatty and isatty())
        except (OSError, ValueError):  # a closed stream
            return False

    def format_row(self, row, key, color):
        """skorch's, without the colour where the table does not go to a terminal.

        Parameters
        ----------
        row : dict
            One epoch's entries of the history (``"train_loss"``,
            ``"train_loss_best"``, ...).
        key : str
            The entry to format.
        color : str
            The ANSI code skorch colours a best value with (used only on a terminal).

        Returns
        -------
        str or object
            The value as the table prints it: a number formatted (with ``floatfmt``
            where it is not whole), a flag as ``"+"`` or ``""``; other values as they
            are.
        """
        if not getattr(self, "_colour", None) and row.get(f"{key}_best"):
            # skorch colours a value whose "<key>_best" flag is set: this hook formats
            # the value, and the flag only decides the colour
            row = {**row, f"{key}_best": False}
        return super().format_row(row, key, color)


def _augmenting(dataset, training):
    """``dataset`` with its images augmented only while training.

    A copy where the flag changes: skorch makes the train and validation iterators of a
    ``train_split`` before it runs either, over two subsets of one dataset, so a
    flag set on that dataset would be the last one set for both.
    """
    if isinstance(dataset, torch.utils.data.Subset):
        inner = _augmenting(dataset.dataset, training)
        return dataset if inner is dataset.dataset else torch.utils.data.Subset(
            inner, dataset.indices)
    if getattr(dataset, "train", training) != training:
        dataset = copy.copy(dataset)  # shares the decoded images, keyed by the flag
        dataset.train = training
    return dataset


def seeded_split(split, seed):
    """``split``, or a copy drawing its validation share from ``seed``.

    skorch's ``ValidSplit(0.2)`` without a ``random_state`` draws the validation images
    from NumPy's global generator: the same ``personalize(random_state=...)`` gave
    another net each time (and moved the user's global generator). Only a random share
    is seeded; k-fold ``ValidSplit(5)`` takes fixed folds and is left as given.
    """
    if (isinstance(split, ValidSplit) and split.random_state is None
            and isinstance(split.cv, numbers.Real)
            and not isinstance(split.cv, numbers.Integral)):
        split = copy.copy(split)  # the user's object stays as given
        split.random_state = seed % 2**32  # NumPy's seeds; a net's may be larger
    return split


def _refuse_module_params(module, params):
    """Refuse ``module__*`` settings of a net whose ``module`` is the prior.

    skorch builds a new module from the class and these arguments: the prior's weights
    and BatchNorm statistics were thrown away without a word (with every argument
    given), or the build failed on a missing one.
    """
    given = sorted(k for k in params if k.startswith("module__"))
    if given and isinstance(module, torch.nn.Module):
        raise ValueError(
            f"{given} cannot be set: the net fine-tunes the prior held in `module`, and "
            "skorch would build a new network from its class, without the prior's "
            "weights. Change the prior's setting (e.g. MetaAestheticRegressor(dropout="
            "...)) and personalize again, or change the layer on net.module.")


def _reading_replaced(adapter, settings):
    """A copy of a net's image reader ``adapter`` with other ``settings`` (checked)."""
    allowed = (("cache_dir", "on_error", "progress") if isinstance(adapter, ImageEmbedder)
               else ("on_error",) if isinstance(adapter, ImageInput) else ())
    if not allowed:
        raise ValueError(f"this net reads precomputed features, not images: it takes no "
                         f"input__ settings (got {', '.join(sorted(settings))}).")
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        kind = ("a net reading images through an embedder" if isinstance(adapter, ImageEmbedder)
                else "a whole-network net (it caches no embeddings and shows no progress "
                     "bar)")
        raise ValueError(f"unknown input__ setting(s) {', '.join(unknown)} for {kind}; "
                         f"the settings are {', '.join(allowed)}.")
    if settings.get("on_error", "raise") not in ("raise", "skip"):
        raise ValueError(f"input__on_error must be 'raise' or 'skip'; got "
                         f"{settings['on_error']!r}.")
    if not isinstance(settings.get("progress", False), bool):
        raise ValueError(f"input__progress must be True or False; got "
                         f"{settings['progress']!r}.")
    if isinstance(adapter, ImageEmbedder):
        return adapter.replaced(**settings)  # shares the backbone and embeddings in memory
    new = copy.copy(adapter)
    new.__dict__.update(settings)
    return new


class PersonalizedNet(NeuralNetRegressor):
    """A :class:`skorch.NeuralNetRegressor` over images or embeddings of one rater.

    It behaves like any skorch net (callbacks, ``history``, ``save_params`` /
    ``load_params``, ``set_params(optimizer__lr=...)``, ``partial_fit``), with three
    differences that make it fit this package:

    - ``input`` turns what the user passes as ``X`` (image paths, PIL images, arrays
      or features) into what the module eats: cached embeddings in head-only mode,
      an augmenting image dataset in whole-network mode.
    - ``fit`` starts from ``module`` (the prior) every time (with skorch's
      ``warm_start=True``, from the trained weights): the trained weights live in
      ``module_`` and ``module`` keeps the prior, so a re-fit or a clone never compounds.
      ``module__*`` settings are refused: skorch would build a new network from the
      class, without the prior's weights.
      A net read back by :func:`~sklearn_piaa.load_model` (or unpickled) keeps it too,
      except one from a file without the prior's weights (``save_model(...,
      prior_weights=False)`` or an earlier sklearn-piaa's), which refuses to re-fit.
    - ``y`` may be 1-D and ``predict`` returns a 1-D array.

    How the net reads images is set with ``set_params(input__cache_dir=...,
    input__on_error=..., input__progress=...)`` (see :meth:`set_params`).

    Parameters
    ----------
    module : torch.nn.Module
        The prior network (an instance; it is copied, never trained in place).
    *args
        Passed on to :class:`skorch.NeuralNetRegressor` (its ``criterion``, ...).
    input : callable, default=None
        ``input(X, y=None)`` -> array or torch Dataset.
    mixed_precision : bool or "inference", default=False
        Run the module's forward passes under bfloat16 autocast: with True those of
        training and prediction, with ``"inference"`` those of prediction only (training
        stays float32). Outputs and the loss stay float32.
    random_state : int or None, default=None
        Seeds torch's generator for the duration of each ``fit`` (dropout masks,
        shuffling; the caller's generator is restored afterwards), so a fit, and a
        clone's fit -- e.g. in ``cross_val_score`` with worker processes -- repeats
        itself. :meth:`MetaAestheticRegressor.personalize` sets it. ``None``: draws
        from torch's global generator. ``partial_fit`` always draws from it.
    **kwargs
        Any :class:`skorch.NeuralNetRegressor` parameter.

    Attributes
    ----------
    module_, optimizer_, criterion_, history_
        skorch's, once initialized or fitted; ``optimizer_`` is made where it is first
        used (a training step, or the attribute read), so a net that only predicts has
        none.
    prior_ : MetaAestheticRegressor
        On a net that :meth:`MetaAestheticRegressor.personalize` returned: the prior as
        it was (what :func:`~sklearn_piaa.save_model` needs to rebuild the network). On a
        net from :func:`~sklearn_piaa.load_model`: its settings and fitted facts, without
        a network to predict with (``module`` holds the prior's network, unless the file
        left it out).
    coefficients_ : ndarray of shape (n_sources,) or (n_sources, n_tensors)
        On a net that :meth:`TaskVectorRegressor.personalize` returned: the rater's
        task-vector coefficients.
    n_features_in_ : int
        Feature width, once initialized or fitted, where ``input`` checks precomputed
        features (a net personalized from a prior fitted with ``backbone=None``); not
        set on images, as on the prior.
    feature_names_in_ : ndarray of str
        The prior's column names, where it was fitted on a DataFrame with string column
        names; a DataFrame given later must have the same columns in the same order.
    """

    #: Train an :class:`~sklearn_piaa.nn.AestheticHead` over embeddings with its
    #: hand-written backward pass and a direct fused Adam step
    #: (:class:`~sklearn_piaa.nn.HeadGradient`,
    #: :func:`~sklearn_piaa.nn.adam_step`): the same updates as skorch's step, about
    #: 1.4x faster at the default batches (``benchmarks/speed.py``). The step
    #: overwrites every gradient, so skorch's ``zero_grad`` is skipped, and the
    #: modules are switched to training mode only when something switched them out
    #: of it. Off: skorch's autograd step throughout.
    fused_head = True
    #: Batch in-memory arrays (embeddings) by slicing them
    #: (in the same order and batch sizes) instead of a ``DataLoader``'s
    #: per-row indexing and collation: the same batches and random draws, without the
    #: per-row Python work. Off: skorch's ``DataLoader`` throughout.
    array_batches = True

    def __init__(self, module, *args, input=None, mixed_precision=False, random_state=None,
                 **kwargs):
        self.input = input
        self.mixed_precision = mixed_precision
        self.random_state = random_state
        super().__init__(module, *args, **kwargs)

    def set_params(self, **params):
        """Set parameters, as skorch's ``set_params``; ``input__*`` sets how images are read.

        ``input__cache_dir`` (a folder, or None for no on-disk cache),
        ``input__on_error`` (``"raise"`` or ``"skip"``) and ``input__progress`` (bool)
        change how the net reads images -- e.g. a net loaded from someone else's file,
        which caches in its author's folder. The net's image reader is replaced, not
        changed: its prior and other nets that share it keep theirs. The settings are
        saved with the net (:func:`~sklearn_piaa.save_model`).

        Parameters
        ----------
        **params
            skorch and constructor parameters, and the ``input__*`` settings above.

        Returns
        -------
        self
        """
        reading = {k[len("input__"):]: params.pop(k) for k in list(params)
                   if k.startswith("input__")}
        for name in ("cache_dir", "on_error", "progress"):
            if name in params:
                raise ValueError(f"PersonalizedNet has no parameter {name!r}: how the net "
                                 f"reads images is set with net.set_params(input__{name}="
                                 f"{params[name]!r}).")
        if "device" in params:  # else torch's "Found no NVIDIA driver" at predict
            resolve_device(params["device"])
        _refuse_module_params(self.module, params)
        # the reader checked before anything is set: a refused call changes nothing
        reader = _reading_replaced(self.input, reading) if reading else None
        if params:
            super().set_params(**params)
        if reader is not None:
            self.input = reader
        return self

    def __sklearn_clone__(self):
        if "coefficients_" in self.__dict__:
            raise TypeError(
                "a net from TaskVectorRegressor.personalize cannot be cloned and re-fitted: "
                "its module combines the task vectors with coefficients fitted on the "
                "images it was personalized on, which a clone's fit would not re-fit (a "
                "cross-validation would score images the coefficients saw). Call "
                "TaskVectorRegressor.personalize on each support set instead, e.g. through "
                "sklearn_piaa.evaluation.evaluate_personalization.")
        self._check_prior()
        clone = super().__sklearn_clone__()
        if "prior_" in self.__dict__:
            # What save_model needs to rebuild the architecture, which a clone (a
            # GridSearchCV's best_estimator_) shares.
            clone.prior_ = self.prior_
        return clone

    def _check_prior(self):
        """Refuse a refit where ``module`` holds the personalized network, not the prior.

        :func:`~sklearn_piaa.load_model` marks such a net: one from a file that does not
        hold the prior's weights (``save_model(..., prior_weights=False)``, or written by
        an earlier sklearn-piaa).
        """
        path = self.__dict__.get("_module_is_personalized_")
        if path:
            # A refit would fine-tune weights that have already seen the rater's images,
            # and a cross-validation would score those images as if unseen.
            raise TypeError(
                f"this net was loaded from {path}, a model file without the prior's weights "
                "(saved with prior_weights=False, written by an earlier sklearn-piaa, or "
                "saved from a net loaded from such a file): its module is the personalized "
                "network, so a fit, or a clone's (cross_val_score, GridSearchCV), would "
                "fine-tune weights that have already seen the rater's images and score "
                "them too well. Personalize the prior again (load_model of the prior's "
                "file, then its personalize) and save that net; this one predicts, and "
                "its partial_fit trains it further.")

    def __getstate__(self):
        # skorch writes module_, optimizer_ and criterion_ to load on the CPU where the
        # GPU is missing; the module given as a parameter (the prior's, on its device)
        # and any other tensor would still load on the device they were pickled from.
        state = super().__getstate__()
        state.pop("_head_grad_", None)  # gradient buffers: rebuilt on demand, never saved
        if self.__dict__.get("module") is not None \
                and self.__dict__.get("module") is self.__dict__.get("module_"):
            # one network held as both (a prior's net): skorch pickles module_ apart from
            # the rest, which would write it twice and unpickle two copies
            state["module"] = None
            state["_module_is_module_"] = True
        return cpu_copies(state)

    def __setstate__(self, state):
        # skorch would load on the CPU where the device is missing too, warning in its own
        # words for each net inside a model
        if state.get("initialized_"):  # an unfitted net's device is for fit to check
            state["device"] = unpickled_device(state.get("device"))
        shared = state.pop("_module_is_module_", False)
        super().__setstate__(state)
        if shared:
            self.module = self.module_
        fill_new_params(self)
        if isinstance(self.module, torch.nn.Module) and self.device is not None:
            self.module.to(self.device)

    @property
    def _default_callbacks(self):
        return [(name, _PrintLog() if type(cb) is PrintLog else cb)
                for name, cb in super()._default_callbacks]

    def _fused(self):
        """The module's :class:`HeadGradient`, or None where skorch's own step runs."""
        module = getattr(self, "module_", None)
        if not self.fused_head or self._autocast(training=True) \
                or list(self._optimizers) != ["optimizer"] \
                or not is_plain_fused_adam(getattr(self, "optimizer_", None)):
            return None
        cached = self.__dict__.get("_head_grad_")
        # Checked at every call (microseconds): the user may replace or freeze layers of
        # module_ between fits, and a callback even between batches.
        if cached is not None and cached[0] is module \
                and (cached[1] is None or cached[1].matches(module)):
            return cached[1]
        fused = HeadGradient.for_module(module)
        # for_module walks every module: once. The trailing "_" keeps this cache out of
        # get_params, and so out of what clone copies.
        self.__dict__["_head_grad_"] = (module, fused)
        return fused

    def initialize(self):
        """skorch's ``initialize``: build the module, criterion and optimizer.

        ``fit`` (and ``partial_fit`` of an uninitialized net) and
        :func:`~sklearn_piaa.load_model` call it; a clone (a ``GridSearchCV``'s
        candidate) is uninitialized until then.

        ``mixed_precision`` and ``max_epochs`` are checked first. Over features (not
        images), ``n_features_in_`` and, where the prior was fitted on named columns,
        ``feature_names_in_`` are set from the input adapter, as the prior has them;
        the values of an earlier initialization are dropped.

        Returns
        -------
        self : PersonalizedNet
            The initialized net.

        Raises
        ------
        ValueError
            If ``mixed_precision`` is not True, False or ``"inference"``, or
            ``max_epochs`` is not a non-negative integer.
        """
        if not (isinstance(self.mixed_precision, (bool, np.bool_))
                or self.mixed_precision == "inference"):
            raise ValueError("mixed_precision must be True, False or 'inference'; got "
                             f"{self.mixed_precision!r}.")
        # skorch runs no epoch for a negative count: the "trained" net would be the prior.
        if not is_count(self.max_epochs, low=0):
            raise ValueError(f"max_epochs must be a non-negative integer; got "
                             f"{self.max_epochs!r}.")
        super().initialize()
        # Here, where skorch makes module_ (in fit, partial_fit and load_model), so that
        # a clone, never initialized, has neither. The input adapter checks X against
        # them, as it checks the prior's.
        for name in ("n_features_in_", "feature_names_in_"):
            self.__dict__.pop(name, None)
        if isinstance(self.input, FeatureInput):
            self.n_features_in_ = self.input.n_features
            names = getattr(self.input, "feature_names", None)  # older pickles lack it
            if names is not None:
                self.feature_names_in_ = np.asarray(names, dtype=object)
        return self

    def _autocast(self, training=None):
        """Whether a forward pass (by default the one about to run) goes under autocast."""
        if training is None:
            # skorch sets the module's mode before every batch, training or prediction.
            training = self.module_.training
        if isinstance(self.mixed_precision, str):  # "inference"
            return not training
        return bool(self.mixed_precision)

    def infer(self, x, **fit_params):
        """skorch's forward pass, under bfloat16 autocast with ``mixed_precision``.

        Images that come as 8-bit pixels (from ``sklearn_piaa._features.ImageInput``,
        whole-network mode) are normalized on the net's device first.

        Parameters
        ----------
        x : torch.Tensor or dict
            One batch of input, as the iterator yields it; a dict is passed to the
            module's ``forward`` as keyword arguments (skorch's rule).
        **fit_params
            Passed on to the module's ``forward``.

        Returns
        -------
        torch.Tensor
            The module's output, cast to float32 when it ran under autocast.
        """
        normalize = getattr(self.input, "normalize", None)
        if normalize is not None and torch.is_tensor(x) and x.dtype == torch.uint8:
            x = to_tensor(x, device=self.device)
            step = cpu_forward_batch()
            if x.device.type == "cpu" and not self.module_.training and len(x) > step:
                # A few images at a time keep the backbone's activations in the cores'
                # caches; in eval mode each image's score depends on that image alone.
                # Each part is made float just before it runs, as the embedder does.
                return torch.cat([self._infer(normalize(part), fit_params)
                                  for part in x.split(step)])
            x = normalize(x)
        return self._infer(x, fit_params)

    def _infer(self, x, fit_params):
        if not self._autocast():
            return super().infer(x, **fit_params)
        with autocast(self.device):
            out = super().infer(x, **fit_params)
        return out.float()

    def train_step_single(self, batch, **fit_params):
        """skorch's training step, by the head's hand-written backward pass where it applies."""
        Xi, yi = unpack_data(batch)
        fused = self._fused()
        if fused is None or fit_params or not torch.is_tensor(Xi) \
                or not HeadGradient.supports_batch(Xi):
            if fused is not None:  # _zero_grad_optimizer left the gradients (see there)
                self.optimizer_.zero_grad()
            return super().train_step_single(batch, **fit_params)
        if not (self.module_.training and getattr(self.criterion_, "training", True)):
            # train() walks every submodule (0.1 ms a batch); after the first batch they
            # stay in training mode unless something (a prediction) switched them.
            self._set_training(True)
        if type(self).get_loss is NeuralNetRegressor.get_loss:
            # skorch's get_loss is the criterion on y as a tensor; handing the criterion
            # itself over lets HeadGradient see a plain squared error.
            criterion, yi = self.criterion_, to_tensor(yi, device=self.device)
        else:
            def criterion(pred, y):
                return self.get_loss(pred, y, X=Xi, training=True)
        loss, y_pred = fused.loss_backward(to_tensor(Xi, device=self.device), yi, criterion)
        return {"loss": loss, "y_pred": y_pred}

    def _zero_grad_optimizer(self, set_to_none=None):
        # The hand-written backward pass overwrites every gradient; a batch it does not
        # take zeroes them in train_step_single instead.
        if self._fused() is None:
            super()._zero_grad_optimizer(set_to_none)

    def _step_optimizer(self, step_fn):
        # A plain fused Adam: the closure once, then the kernel without Adam.step's
        # per-call bookkeeping (the same update; see adam_step).
        if step_fn is None or self._fused() is None:
            return super()._step_optimizer(step_fn)
        step_fn()
        adam_step(self.optimizer_)

    def initialize_criterion(self):
        """skorch's criterion. Given as the class :class:`~sklearn_piaa.nn.AestheticLoss`
        (as the package gives it), its ``unit`` is a quarter of the module's score range
        unless ``criterion__unit`` says otherwise; an instance is used as it is."""
        super().initialize_criterion()
        if isinstance(self.criterion, type) and issubclass(self.criterion, AestheticLoss) \
                and "unit" not in self.get_params_for("criterion"):
            head = head_of(self.module_)
            if head is not None:
                self.criterion_.unit = loss_unit(head)
        return self

    def initialize_optimizer(self, *args, **kwargs):
        """skorch's optimizer, made where it is first used (a training step, or
        ``optimizer_`` read) rather than here.

        A process's first optimizer imports ``torch._dynamo`` (1.5-3 s on the project's
        2-core CPUs), which a net that only predicts (a prior, a net loaded from a model
        file, the ``sklearn-piaa predict`` command) never needs. It is made over
        ``module_``'s parameters as they are then.

        Returns
        -------
        PersonalizedNet
            ``self``, as skorch's method returns.
        """
        # skorch registers the component when the net's first optimizer_ is set (for
        # set_params, and to load without CUDA); none is set here, so it is done as
        # skorch does it, without mutating the lists.
        for attr, value in (("prefixes_", "optimizer"), ("_optimizers", "optimizer"),
                            ("cuda_dependent_attributes_", "optimizer_")):
            if value not in getattr(self, attr):
                setattr(self, attr, getattr(self, attr)[:] + [value])
        # __dict__, not skorch's __delattr__, which would unregister the component.
        self.__dict__.pop("optimizer_", None)
        self.__dict__["_optimizer_pending_"] = (args, kwargs)
        return self

    def __getattr__(self, name):
        # Only reached where the attribute is missing.
        pending = self.__dict__.get("_optimizer_pending_") if name == "optimizer_" else None
        if pending is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        del self.__dict__["_optimizer_pending_"]
        super().initialize_optimizer(*pending[0], **pending[1])
        return self.__dict__["optimizer_"]

    def initialize_module(self):
        """``module_`` = a deep copy of ``module`` (the prior), so fits never compound."""
        kwargs = self.get_params_for("module")
        module = self.module
        _refuse_module_params(module, {f"module__{k}": v for k, v in kwargs.items()})
        if isinstance(module, torch.nn.Module) and not kwargs:
            # Training must never touch the prior held in `module`.
            self.module_ = copy.deepcopy(module)
            return self
        return super().initialize_module()

    def fit(self, X, y=None, **fit_params):
        """skorch's ``fit`` (from ``module``, the prior), after checking the scores.

        ``y`` must be 1-D, finite and within the output range of the network's
        aesthetic head; it is checked before anything is reset. A ``fit`` that raises
        (``X`` refused, fine-tuning diverged, Ctrl-C) leaves the net as it was before
        it: its trained weights, optimizer and history.

        Parameters
        ----------
        X : array-like, list or torch Dataset
            What ``input`` accepts (image paths, PIL images, image arrays or features);
            a torch Dataset goes to skorch as it is.
        y : array-like of shape (n_samples,) or (n_samples, 1), default=None
            Scores; ``None`` where ``X`` is a Dataset that yields them.
        **fit_params
            skorch's ``fit_params``: passed on to the module's ``forward`` and to
            ``train_split``.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If ``y`` is not one numeric score per row, holds NaN or infinity, or leaves
            the head's output range; if ``random_state`` is not an integer or None; or
            if ``mixed_precision`` or ``max_epochs`` is invalid (checked by
            :meth:`initialize`).
        FloatingPointError
            If fine-tuning diverged (NaN or infinite weights or losses: a learning rate
            too large).
        TypeError
            If the net was loaded from a model file that does not hold the prior's
            weights (``prior_weights=False``, or an earlier sklearn-piaa's): its
            ``module`` is the personalized network, not the prior. Its clones are
            refused alike.
        KeyboardInterrupt
            On Ctrl-C, after skorch has ended training (skorch itself would return the
            net as the interrupt left it, as if trained). A callback that stops training
            by raising ``KeyboardInterrupt`` (skorch's ``EarlyStopping``) ends the fit
            as in skorch: the net is returned, trained that far.
        """
        self._check_prior()
        seed = self.random_state
        if seed is not None and not is_count(seed, low=0):
            # An int only: a RandomState instance would give each clone other draws.
            raise ValueError(f"random_state must be a non-negative integer or None; got "
                             f"{seed!r}.")
        if y is not None:
            y = self._check_scores(y, self.module)
        # X is checked once skorch has reset the net to the prior: a refit refused for
        # its X (features of another width, NaN, too few rows) left a personalized net
        # predicting as the prior, to be saved under the rater's name.
        # with warm_start, skorch trains the module and optimizer in place: restored too
        with self._kept_on_failure(states=bool(self.warm_start)), \
                self._split_seeded(seed), \
                contextlib.nullcontext() if seed is None else seeded(seed, self.device):
            return super().fit(X, y, **fit_params)  # checked by partial_fit

    @contextlib.contextmanager
    def _split_seeded(self, seed):
        """``train_split`` drawing a random validation share from ``seed`` during a fit.

        ``random_state`` promises a fit that repeats itself; a ``ValidSplit(0.2)`` set on
        the net (a grid search over it) drew its share from NumPy's global generator.
        """
        given = self.train_split
        split = given if seed is None else seeded_split(given, seed)
        if split is given:
            yield
            return
        self.train_split = split
        try:
            yield
        finally:
            self.train_split = given

    @contextlib.contextmanager
    def _kept_on_failure(self, states=True):
        """Put the net back as it was when the block raises (any exception, Ctrl-C).

        skorch's reset (``fit``) makes new objects (a copy of the prior, an optimizer)
        but empties the history in place, and training (``partial_fit``) changes the
        weights and the optimizer's moments in place: the attributes, the history's
        epochs and, with ``states``, those states are restored. Within another such
        block (``fit``'s, around its ``partial_fit``) it does nothing: the outer one
        restores, and fit leaves the old module and optimizer untouched, so that a
        personalization copies no weights for this.
        """
        if id(self) in _KEEPING:  # not an attribute: a net pickled inside would keep it
            yield
            return
        before = dict(vars(self))
        history = self.__dict__.get("history_")
        epochs = list(history) if history is not None else None
        kept = [(obj, copy.deepcopy(obj.state_dict())) for obj in
                (self.__dict__.get(name) for name in ("module_", "optimizer_"))
                if states and obj is not None]
        _KEEPING.add(id(self))
        try:
            yield
        except BaseException:
            vars(self).clear()
            vars(self).update(before)
            if epochs is not None:
                history[:] = epochs
            for obj, state in kept:
                obj.load_state_dict(state)
            raise
        finally:
            _KEEPING.discard(id(self))

    @trains
    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """skorch's ``partial_fit`` (from the trained weights), after checking the scores
        as :meth:`fit` does.

        Once the net is initialized the scores are checked against the trained
        module's head (``module_``), else against the prior's.

        Parameters
        ----------
        X : array-like, list or torch Dataset
            As for :meth:`fit`.
        y : array-like of shape (n_samples,) or (n_samples, 1), default=None
            As for :meth:`fit`.
        classes : None
            Unused; skorch accepts it for scikit-learn's ``partial_fit`` signature.
        **fit_params
            skorch's ``fit_params``, as for :meth:`fit`.

        Returns
        -------
        self

        Raises
        ------
        ValueError, FloatingPointError
            As for :meth:`fit`.
        KeyboardInterrupt
            As for :meth:`fit`.

        Notes
        -----
        A ``partial_fit`` that raises leaves the net as it was before it, as
        :meth:`fit` does: not half trained (Ctrl-C), nor diverged.
        """
        if y is not None:
            module = getattr(self, "module_", None) if self.initialized_ else None
            y = self._check_scores(y, self.module if module is None else module)
            if not isinstance(X, torch.utils.data.Dataset):
                X = with_rows(X)  # as personalize takes it: rows to index for the checks
                # personalize drops unreadable images itself; a refit of the net (a clone
                # in cross_val_score) must too. fit comes here as well (skorch).
                X, y = drop_unreadable(self.input, X, y, getattr(self.input, "on_error", None))
        with self._kept_on_failure():  # not half trained, nor diverged
            self._interrupted = False
            with watching_ctrl_c() as seen:
                try:
                    super().partial_fit(X, y, classes=classes, **fit_params)
                finally:
                    interrupted = self.__dict__.pop("_interrupted", False)
            if interrupted and seen.maybe:
                # skorch ends fit quietly on Ctrl-C and returns the net as it was then
                # (perhaps not trained at all): not a result to hand on as fine-tuned. A
                # callback's KeyboardInterrupt (EarlyStopping's) ends a finished fit.
                raise KeyboardInterrupt
            # A diverged net predicts NaN (or, its BatchNorm variance negative, NaN for
            # all).
            losses = [epoch["train_loss"] for epoch in self.history if "train_loss" in epoch]
            check_trained(self.module_, losses, "fine-tuning",
                          "the learning rate (lr, or the prior's finetune_lr; --lr on the command "
                          "line) or max_epochs (--epochs)",
                          features=X if isinstance(self.input, FeatureInput) else None)
        # Not where the backbone trains: there each image costs a forward pass.
        if y is not None and not isinstance(self.input, ImageInput) and (
                isinstance(X, (list, tuple, np.ndarray)) or hasattr(X, "iloc")):
            with far_rows_checked():  # the fit named them
                self._warn_if_collapsed(X, y)
        return self

    def _warn_if_collapsed(self, X, y):
        """Warn when fine-tuning left the net scoring the rater's images at the range's ends.

        As a learning rate far too large can (``MetaAestheticRegressor`` warns of the
        same in meta-training): weights finite, so nothing diverged, but the output's
        sigmoid saturated, every image at one end of the range or the other. Looked at
        on up to 2048 of the training rows (of a net over embeddings or features), to a
        thousandth of the output range, unless their ratings are all at the range's ends
        (where such a net may be right). It asked for five or more different ratings,
        which a 10-image support on 1-5 seldom has: a net scoring every image 1.0 or
        5.0 went unnamed in the paper's main setting.
        """
        head = head_of(self.module_)
        if head is None:
            return
        low, span = float(head.score_low), float(head.score_span)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        rows = np.unique(np.linspace(0, len(y) - 1, min(len(y), 2048)).astype(np.intp))
        if isinstance(self.input, FeatureInput) and self.input.far_rows(
                self.input(_safe_indexing(X, rows))):
            return  # features far outside the prior's saturate it: named as the cause
        levels = score_levels(y[rows], low, low + span)
        rated = len(levels)
        if rated < 2 or not ((levels > 1) & (levels < LEVELS - 1)).any():
            return  # one score (warned of), or only the ends: a net at the ends may fit
        found = score_levels(self.predict(_safe_indexing(X, rows)), low, low + span)
        # saturated: at the ends (a net that barely moves its scores apart is not named)
        if len(found) > 2 or ((found > 1) & (found < LEVELS - 1)).any():
            return
        scores = scores_given([low + v * span / LEVELS for v in found])
        prior = self.__dict__.get("prior_")  # the MetaAestheticRegressor it started from
        if prior is not None and "prior_net_" not in vars(prior):
            prior = None  # a loaded net's: the prior's settings without its network
        if prior is not None and len(score_levels(prior.predict(_safe_indexing(X, rows)),
                                                  low, low + span)) <= 2:
            warn_caller(
                f"the prior was collapsed before fine-tuning: it gives {len(rows)} of the "
                f"rater's images, rated with {rated} different scores, at most two, and "
                f"the fine-tuned net {scores}. It ranks nothing; a lower fine-tuning rate "
                "cannot help. Meta-training's learning rates too large do this (the "
                f"prior's inner_lr={prior.inner_lr!r}, outer_lr={prior.outer_lr!r}): fit "
                "the prior again with lower ones.")
            return
        warn_caller(
            f"fine-tuning collapsed the net: it gives {len(rows)} of the rater's images "
            f"{scores}, rated with {rated} different ones. It ranks nothing. A learning "
            f"rate too large does this (lr={self.lr!r}): lower it and fine-tune again.")

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's ``fit_loop``, noting a ``KeyboardInterrupt`` for :meth:`partial_fit`,
        which raises it again if it was a Ctrl-C."""
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            self._interrupted = True
            raise

    def get_dataset(self, X, y=None):
        """Pass ``X`` through ``input`` (embeddings or an image dataset); y as a column."""
        if y is not None:
            y = np.asarray(y, dtype=np.float32).reshape(-1, 1)
        if self.input is not None and not isinstance(X, torch.utils.data.Dataset):
            X = self.input(X, y)
        if isinstance(X, torch.utils.data.Dataset):
            return X
        return Dataset(X, y)

    @staticmethod
    def _check_scores(y, module):
        """``y`` as a float32 column, checked against ``module``'s aesthetic head."""
        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().numpy()
        given = check_scores(y)
        y = given.astype(np.float32)
        warn_if_float32_merges(given, y)
        bad = ~np.isfinite(y)
        if bad.any():
            raise ValueError(f"y has {int(bad.sum())} NaN or infinite score(s); a net "
                             "cannot be trained on them.")
        head = head_of(module)
        if head is not None and len(y):
            low = float(head.score_low)
            high = low + float(head.score_span)
            slack = 1e-4 * (high - low)  # the bounds went through float32 arithmetic
            outside = (y < low - slack) | (y > high + slack)
            if outside.any():  # the sigmoid output can never reach them
                raise ValueError(
                    f"{int(outside.sum())} score(s) lie outside the network's output range "
                    f"({low:g}, {high:g}), e.g. {y[outside][:3].tolist()}; personalize with "
                    "score_range=(low, high) to train on another scale.")
        return y.reshape(-1, 1)

    def get_iterator(self, dataset, training=False):
        """skorch's iterator; image datasets augment only while training.

        Over arrays in memory, with skorch's default ``DataLoader`` settings, the
        batches come from slicing the arrays (see ``array_batches``).
        """
        dataset = _augmenting(dataset, training)
        draws = training or not getattr(_PREDICTING, "on", False)
        loader = self._array_iterator(dataset, training, draws)
        if loader is not None:
            return loader
        return super().get_iterator(dataset, training=training)

    def _array_iterator(self, dataset, training, draws=True):
        """The batches of slices of arrays :meth:`get_iterator` gives, or None."""
        if not self.array_batches:
            return None
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs = self.get_params_for(prefix)
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        return array_loader(dataset, getattr(self, prefix), kwargs, draws)

    def predict(self, X):
        """Predicted scores, shape (n_samples,).

        Images that cannot be read when the input skips them (``on_error="skip"``)
        get NaN, never a made-up score.

        Parameters
        ----------
        X : array-like, list or torch Dataset
            What ``input`` accepts (image paths, PIL images, image arrays or features).

        Returns
        -------
        ndarray of shape (n_samples,), float32
            The scores, as the module computes them (the package's networks: in float32,
            also under ``mixed_precision``); NaN for unreadable images, with a
            :class:`PIAAWarning`.

        Warns
        -----
        PIAAWarning
            If rows of features lie far outside those the prior was fitted on (as
            :meth:`MetaAestheticRegressor.predict` names them).
        """
        dataset = self.get_dataset(X)
        # Slices of arrays in order draw no random number, and need not wait for a
        # seeded fit or personalization of another thread (a service personalizing one
        # user while it scores for others); a DataLoader draws a seed per iteration.
        draws = self._array_iterator(dataset, training=False, draws=False) is None
        _PREDICTING.on = True  # this thread's get_iterator: batches without draws
        try:
            with seeded(None, self.device) if draws else contextlib.nullcontext():
                out = super().predict(dataset).reshape(-1)
        finally:
            _PREDICTING.on = False
        failed = getattr(dataset, "failed", None)
        if failed:
            out[list(failed)] = np.nan
            warnings.warn(f"{len(failed)} image(s) could not be read; their predictions "
                          "are NaN: " + "; ".join(list(failed.values())[:10]),
                          PIAAWarning, stacklevel=2)
        return out
