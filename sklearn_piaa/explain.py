"""Input-gradient maps: which pixels move a model's predicted score (BLG-PIAA Fig. 7-10)."""

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted

from ._estimator import MetaAestheticRegressor
from ._features import ImageEmbedder, ImageInput, _draft, image_tensor
from ._personalize import PersonalizedNet

__all__ = ["gradient_map"]


def _score_function(model):
    """``(f, size, mean, std, device)``: f maps a normalized image batch to scores."""
    if isinstance(model, FrozenEstimator):  # a fitted prior, as the README passes one on
        model = model.estimator
    if isinstance(model, MetaAestheticRegressor):
        check_is_fitted(model, "prior_net_")
        net = model.prior_net_
    else:
        net = model
    if not isinstance(net, PersonalizedNet):
        raise TypeError("gradient_map needs a fitted MetaAestheticRegressor or a fitted "
                        f"PersonalizedNet; got {type(model).__name__}.")
    if not getattr(net, "initialized_", False):  # a clone, say
        raise NotFittedError(f"this {type(model).__name__} is not fitted: gradient_map "
                             "needs a fitted one.")
    adapter, module = net.input, net.module_
    if isinstance(adapter, ImageEmbedder):
        backbone = adapter.backbone
        modules = (backbone, module)

        def f(x):
            return module(backbone(x))
    elif isinstance(adapter, ImageInput):
        backbone = module.backbone
        modules = (module,)
        f = module
    else:
        raise ValueError("this model was fitted on precomputed features (backbone=None): "
                         "gradient maps need the image network. Fit it on images.")
    return f, modules, backbone, torch.device(net.device)


def gradient_map(model, image, reduce="max"):
    """Gradient of the predicted score with respect to the network's input.

    The saliency map of Simonyan et al. [2]_, as BLG-PIAA [1]_ shows for its prior and
    personalized models (Figs. 7, 8 and 10): large values mark pixels where a small
    change moves the predicted score most. Computed through the backbone and the head
    (in head-only mode through the frozen backbone of the embedding cache), in
    evaluation mode, on the image as the network sees it: decoded as ``predict``
    decodes it, resized to its input size (a square) and normalized, ``(pixel / 255 -
    mean) / std`` per channel. The gradient is with respect to those normalized values:
    with a backbone whose channels' ``std`` differ (ImageNet's), ``reduce="max"``
    compares channels on slightly different scales.

    Parameters
    ----------
    model : MetaAestheticRegressor or PersonalizedNet
        A fitted prior (or a ``FrozenEstimator`` of one), or a net from
        :meth:`MetaAestheticRegressor.personalize`, fitted on images (not on
        precomputed features).
    image : str, path-like, PIL.Image.Image or ndarray (H, W, 3) uint8
    reduce : {"max", "none"}, default="max"
        ``"max"``: the largest absolute gradient over the colour channels, shape
        ``(size, size)``; ``"none"``: the signed gradient, shape ``(3, size, size)``.

    Returns
    -------
    ndarray
        float32, at the network's input resolution.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        When ``model`` is not fitted.
    TypeError
        When ``model`` is neither a :class:`MetaAestheticRegressor` nor a
        :class:`PersonalizedNet` (e.g. a ``TaskVectorRegressor``: explain the nets its
        ``personalize`` returns).
    ValueError
        When ``model`` was fitted on precomputed features (no backbone), or for another
        ``reduce``.

    References
    ----------
    .. [1] H. Zhu et al., "Personalized Image Aesthetics Assessment via Meta-Learning
       With Bilevel Gradient Optimization", IEEE Transactions on Cybernetics, 2022.
    .. [2] K. Simonyan, A. Vedaldi and A. Zisserman, "Deep Inside Convolutional
       Networks: Visualising Image Classification Models and Saliency Maps", ICLR
       Workshop, 2014.
    """
    if reduce not in ("max", "none"):
        raise ValueError(f"reduce must be 'max' or 'none'; got {reduce!r}.")
    # several images read as pixels: "image arrays must be uint8; got dtype <U45"
    many = (isinstance(image, (list, tuple)) or isinstance(image, np.ndarray) and (
        image.ndim == 4 or image.ndim == 1 and image.dtype.kind in "OUS")
        # a pandas Series or DataFrame: df["image"], one row of it included
        or hasattr(image, "to_numpy") and not isinstance(image, np.ndarray))
    if many:
        raise ValueError(f"gradient_map takes one image; got {len(image)} in a "
                         f"{type(image).__name__}: call it once per image.")
    if isinstance(image, bytes):
        raise ValueError("gradient_map takes an image path as text; got bytes: decode "
                         "it, os.fsdecode(path).")
    f, modules, backbone, device = _score_function(model)
    # A gradient, also where the caller is in inference mode (enable_grad alone does
    # not leave it) or has gradients off.
    with torch.inference_mode(False), torch.enable_grad():
        # decoded as predict decodes it (a JPEG file at a reduced scale where that
        # still covers the input size): the map is of the image predict scores
        x = image_tensor(_draft(image, backbone.input_size), backbone.input_size,
                         backbone.mean, backbone.std)
        x = x.unsqueeze(0).to(device).requires_grad_()
        # every submodule's own mode: train(mode) would give all of them the top one's
        modes = [(sub, sub.training) for m in modules for sub in m.modules()]
        try:
            for m in modules:
                m.eval()
            (grad,) = torch.autograd.grad(f(x).sum(), x)
        finally:
            for sub, mode in modes:
                sub.training = mode
    grad = grad[0].detach().float().cpu().numpy()
    return grad if reduce == "none" else np.abs(grad).max(axis=0)
