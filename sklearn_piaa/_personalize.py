"""The skorch regressor that holds a prior or a personalized aesthetic network."""

import copy
import warnings

import numpy as np
import torch
from skorch import NeuralNetRegressor
from skorch.dataset import Dataset

from ._warnings import PIAAWarning

__all__ = ["PersonalizedNet"]


class PersonalizedNet(NeuralNetRegressor):
    """A :class:`skorch.NeuralNetRegressor` over images or embeddings of one rater.

    It behaves like any skorch net (callbacks, ``history``, ``save_params`` /
    ``load_params``, ``set_params(optimizer__lr=...)``, ``partial_fit``), with three
    differences that make it fit this package:

    - ``input`` turns what the user passes as ``X`` (image paths, PIL images, arrays
      or features) into what the module eats: cached embeddings in head-only mode,
      an augmenting image dataset in whole-network mode.
    - ``fit`` starts from ``module`` (the prior) every time: the trained weights live in
      ``module_`` and ``module`` keeps the prior, so a re-fit or a clone never compounds.
    - ``y`` may be 1-D and ``predict`` returns a 1-D array.

    Parameters
    ----------
    module : torch.nn.Module
        The prior network (an instance; it is copied, never trained in place).
    input : callable, default=None
        ``input(X, y=None)`` -> array or torch Dataset.
    **kwargs
        Any :class:`skorch.NeuralNetRegressor` parameter.
    """

    def __init__(self, module, *args, input=None, **kwargs):
        self.input = input
        super().__init__(module, *args, **kwargs)

    def initialize_module(self):
        """``module_`` = a deep copy of ``module`` (the prior), so fits never compound."""
        kwargs = self.get_params_for("module")
        module = self.module
        if isinstance(module, torch.nn.Module) and not kwargs:
            # Training must never touch the prior held in `module`.
            self.module_ = copy.deepcopy(module)
            return self
        return super().initialize_module()

    def get_dataset(self, X, y=None):
        """Pass ``X`` through ``input`` (embeddings or an image dataset); y as a column."""
        if y is not None:
            y = np.asarray(y, dtype=np.float32).reshape(-1, 1)
        if self.input is not None and not isinstance(X, torch.utils.data.Dataset):
            X = self.input(X, y)
        if isinstance(X, torch.utils.data.Dataset):
            return X
        return Dataset(X, y)

    def get_iterator(self, dataset, training=False):
        """skorch's iterator; image datasets augment only while training."""
        # Image datasets augment only while training.
        if hasattr(dataset, "train"):
            dataset.train = training
        return super().get_iterator(dataset, training=training)

    def predict(self, X):
        """Predicted scores, shape (n_samples,).

        Images that cannot be read when the input skips them (``on_error="skip"``)
        get NaN, never a made-up score.
        """
        dataset = self.get_dataset(X)
        out = super().predict(dataset).reshape(-1)
        failed = getattr(dataset, "failed", None)
        if failed:
            out[list(failed)] = np.nan
            warnings.warn(f"{len(failed)} image(s) could not be read; their predictions "
                          "are NaN: " + "; ".join(list(failed.values())[:10]),
                          PIAAWarning, stacklevel=2)
        return out
