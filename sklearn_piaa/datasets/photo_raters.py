"""Simulated raters on real photos: measured aesthetic attributes and a known taste model."""

import numpy as np
from PIL import Image
from scipy import ndimage
from sklearn.utils import Bunch, check_random_state

from .._features import load_image
from .synthetic import _check_float, _check_int, _safe_sd, _simulate_ratings

__all__ = ["measure_attributes", "simulate_raters", "PHOTO_ATTRIBUTE_NAMES"]

PHOTO_ATTRIBUTE_NAMES = [
    "brightness", "contrast", "colorfulness", "saturation", "sharpness", "noise",
    "thirds_distance", "salient_area", "symmetry", "edge_density",
]  # fmt: skip
_P = {name: k for k, name in enumerate(PHOTO_ATTRIBUTE_NAMES)}

# Shared taste over standardised attributes z (photographic folklore): linear terms,
# preferred values ("not too dark, not washed out") as -(z - best)^2, one interaction.
_LINEAR = {
    "brightness": 0.2, "contrast": 0.3, "colorfulness": 0.4, "saturation": 0.1,
    "sharpness": 0.6, "noise": -0.4, "thirds_distance": -0.3, "salient_area": 0.1,
    "symmetry": 0.2, "edge_density": -0.2,
}  # fmt: skip
_PREFERRED = {"brightness": (0.3, 0.6), "contrast": (0.3, 0.3), "saturation": (0.3, 0.4),
              "salient_area": (0.5, 0.3)}  # name: (preferred z, weight)
_INTERACTION = ("sharpness", "colorfulness", 0.3)
PHOTO_TASTE_FEATURE_NAMES = (
    list(_LINEAR) + [f"-({n}-{b:g})^2" for n, (b, _) in _PREFERRED.items()]
    + ["{}*{}".format(*_INTERACTION[:2])]
)  # fmt: skip
_W0 = np.array(list(_LINEAR.values()) + [w for _, w in _PREFERRED.values()] + [_INTERACTION[2]])


def _measure_one(src, size):
    img = load_image(src)
    img.thumbnail((size, size), Image.BILINEAR)
    if min(img.size) < 2:  # a thin panorama: gradients need 2 pixels a side
        img = img.resize((max(img.width, 2), max(img.height, 2)), Image.BILINEAR)
    rgb = np.asarray(img, dtype=np.float64) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    lum = 0.299 * r + 0.587 * g + 0.114 * b
    h, w = lum.shape
    rg, yb = 255 * (r - g), 255 * (0.5 * (r + g) - b)
    colorful = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    top = rgb.max(axis=2)
    sat = np.divide(top - rgb.min(axis=2), top, out=np.zeros_like(top), where=top > 0)
    sharp = np.log1p(ndimage.laplace(255 * lum).var())
    # Immerkaer's noise mask has zero response to any local plane; for Gaussian noise of
    # sd s its median absolute response is 0.6745 * 6s. Texture also excites it, so only
    # the flattest fifth of the pixels (smallest smoothed gradient) is used.
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    resp = np.abs(ndimage.convolve(255 * lum, mask, mode="reflect"))
    grad = ndimage.gaussian_gradient_magnitude(255 * lum, 1.0)
    noise = np.median(resp[grad <= np.percentile(grad, 20)]) / (6 * 0.6745)
    # Frequency-tuned saliency: distance of the blurred colour from the image's mean colour.
    blurred = ndimage.gaussian_filter(rgb, sigma=(max(h, w) / 64, max(h, w) / 64, 0))
    sal = ndimage.gaussian_filter(
        np.linalg.norm(blurred - rgb.reshape(-1, 3).mean(axis=0), axis=2), max(h, w) / 32)
    py, px = np.unravel_index(np.argmax(sal), sal.shape)
    pt = np.array([(py + 0.5) / h, (px + 0.5) / w])
    thirds = min(np.hypot(*(pt - (a, c))) for a in (1 / 3, 2 / 3) for c in (1 / 3, 2 / 3))
    area = float((sal > 0.5 * (sal.min() + sal.max())).mean()) if np.ptp(sal) > 0 else 0.0
    mirror = lum[:, ::-1]
    sym = (np.corrcoef(lum.ravel(), mirror.ravel())[0, 1] if lum.std() > 1e-12 else 1.0)
    gy, gx = np.gradient(lum)
    edges = float((np.hypot(gx, gy) > 0.05).mean())
    return [lum.mean(), lum.std(), colorful, sat.mean(), sharp, noise, thirds, area, sym, edges]


def measure_attributes(images, size=128):
    """Measure aesthetic attributes of real photos.

    Each image is decoded as the package decodes every image (EXIF orientation
    applied; greyscale, palette, CMYK, 16-bit and transparent images to RGB) and measured
    on a copy downscaled (never upscaled) to ``size`` pixels on its longest side.
    Luminance is ``L = 0.299 R + 0.587 G + 0.114 B`` with channels in [0, 1].

    - ``brightness``: mean of ``L``, in [0, 1].
    - ``contrast``: standard deviation of ``L`` (RMS contrast).
    - ``colorfulness``: Hasler and Suesstrunk's metric on 0-255 channels,
      ``sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)`` with
      ``rg = R - G`` and ``yb = (R + G) / 2 - B``; about 0 (grey) to 100+ (vivid).
    - ``saturation``: mean HSV saturation ``(max - min) / max`` over pixels, in [0, 1].
    - ``sharpness``: ``log(1 + var(Laplacian of 255 L))``; blur lowers it.
    - ``noise``: a robust estimate of the sd of additive noise in 255 L: the median
      absolute response of Immerkaer's 3x3 mask (zero on any local plane) / (6 x 0.6745),
      over the flattest 20% of pixels (smallest Gaussian-smoothed gradient). Exactly
      flat areas (letterbox bars, a frame, clipped sky) are among those pixels and
      respond 0: where they cover a fifth of the image or more, the estimate is 0
      however noisy the rest.
    - ``thirds_distance``: distance, in image-size units (height and width scaled to
      1), from the most salient point to the nearest rule-of-thirds intersection.
      Saliency is frequency-tuned: the distance of the slightly blurred colour from
      the image's mean colour, smoothed (reflecting the image at its edges); the
      salient point is its maximum. The reflection favours maxima on the border: on
      about 40% of 200 shared photos the point lies on the image's edge, 12% in a
      corner, rather than on the subject; a uniform image, without a salient point,
      gives the top-left corner's distance (about 0.47).
    - ``salient_area``: share of pixels whose saliency exceeds the midpoint of its
      range (0 when saliency is flat).
    - ``symmetry``: Pearson correlation of ``L`` with its left-right mirror, in
      [-1, 1] (1 for a mirror-symmetric or uniform image).
    - ``edge_density``: share of pixels whose luminance gradient magnitude exceeds
      0.05 per pixel (clutter).

    Parameters
    ----------
    images : list or ndarray of shape (n_images, height, width, 3)
        Image paths, PIL images or uint8 arrays.
    size : int, default=128
        Longest side, in pixels, of the copy that is measured (at least 16).

    Returns
    -------
    attributes : ndarray of shape (n_images, 10), float32
        One row per image, columns as in ``names``.
    names : list of str
        The attribute names: brightness, contrast, colorfulness, saturation,
        sharpness, noise, thirds_distance, salient_area, symmetry, edge_density.

    Examples
    --------
    >>> import numpy as np
    >>> dark, light = np.full((2, 32, 32, 3), 40, np.uint8), np.full((32, 32, 3), 200, np.uint8)
    >>> attrs, names = measure_attributes([dark[0], light])
    >>> attrs.shape, bool(attrs[1, names.index("brightness")] > attrs[0, 0])
    ((2, 10), True)
    """
    size = _check_int(size, "size", 16)
    if isinstance(images, Image.Image):  # "'Image' object is not iterable"
        raise ValueError("images must be a list of images; got one PIL image: pass "
                         "[image].")
    if isinstance(images, np.ndarray) and images.ndim == 1 and images.dtype.kind in "OU":
        images = list(images)  # paths (np.array(paths), a Series' to_numpy()), as a list
    if isinstance(images, (str, bytes)) or (isinstance(images, np.ndarray) and images.ndim != 4):
        raise ValueError("images must be a list of images or an array of shape "
                         f"(n_images, height, width, 3); got {type(images).__name__}"
                         f"{getattr(images, 'shape', '')}.")
    rows = [_measure_one(src, size) for src in images]
    if not rows:
        raise ValueError("images is empty; measure_attributes needs at least one image.")
    return np.asarray(rows, dtype=np.float32), list(PHOTO_ATTRIBUTE_NAMES)


def _photo_taste_features(attributes):
    z = (attributes - attributes.mean(axis=0)) / _safe_sd(attributes)
    z = np.clip(z, -3, 3)  # a few extreme photos should not dominate the squares
    extra = [-((z[:, _P[n]] - best) ** 2) for n, (best, _) in _PREFERRED.items()]
    extra.append(z[:, _P[_INTERACTION[0]]] * z[:, _P[_INTERACTION[1]]])
    return np.column_stack([z[:, [_P[n] for n in _LINEAR]]] + extra)


def simulate_raters(attributes, n_raters=60, images_per_rater=200, consensus_weight=0.6,
                    noise=0.3, random_state=None):
    """Simulate personalized 1-5 ratings of photos from their measured attributes.

    The generative model is that of
    :func:`~sklearn_piaa.datasets.make_aesthetic_benchmark`, on the attributes of
    :func:`measure_attributes`: the attributes are standardised over the pool (clipped
    to +-3 sd) into taste features phi (10 linear terms, 4 preferred-value terms such
    as ``-(brightness - 0.3)^2`` and the interaction ``sharpness*colorfulness``), which
    are standardised again. Rater ``u``'s latent score on image ``i`` is

        s_ui = c g0(i) + (1 - c) r_u g_u(i) + noise e_ui,

    with ``g0 = phi w0`` the shared taste and ``g_u = phi d_u``, ``d_u ~ N(0, I)``, the
    rater's deviation (both scaled to unit sd over the pool), ``r_u ~ LogNormal(0,
    0.5)`` and ``e_ui ~ N(0, 1)``. The rating is ``round(3 + b_u + k_u z_ui)`` clipped
    to 1..5, with ``z_ui`` the standardised latent, ``b_u ~ N(0, 0.55)`` and
    ``k_u ~ 1.15 LogNormal(0, 0.2)``.

    Parameters
    ----------
    attributes : array-like of shape (n_images, 10)
        Measured attributes, columns as returned by :func:`measure_attributes`.
    n_raters : int, default=60
        Number of raters.
    images_per_rater : int, default=200
        Distinct images each rater scores, drawn without replacement; at most
        ``n_images``.
    consensus_weight : float, default=0.6
        Weight ``c`` in [0, 1] of the shared taste against each rater's deviation.
    noise : float, default=0.3
        Standard deviation (>= 0) of the rating noise relative to the shared taste.
    random_state : int, RandomState instance or None, default=None
        Seed for tastes, scale use, noise and the rating design.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Parallel arrays of length ``n_raters * images_per_rater``: ``image_index``
        (int64 rows of ``attributes``), ``y`` (float32 integers 1..5) and ``groups``
        (rater ids ``"rater_000"``, ...; ``rater_ids`` lists them). The ground truth:
        ``taste_features`` ((n_images, 15)) with ``taste_feature_names``,
        ``rater_weights`` ((n_raters, 15)), ``consensus_weights`` (``w0``),
        ``consensus_score`` (``g0``), ``rater_individuality``, ``rater_bias``,
        ``rater_scale``, ``consensus_weight`` and ``noise``.

    Notes
    -----
    With the defaults, on the 1,000 photos of ``../shared/data/photos``, each photo
    gets about 12 raters and :func:`~sklearn_piaa.datasets.consensus_agreement`
    has a mean near 0.63 across raters, as real OASIS-beauty raters do (mean 0.63,
    median 0.66, 10th percentile 0.45, 90th percentile 0.79).

    Examples
    --------
    >>> import numpy as np
    >>> attrs = np.random.RandomState(0).rand(50, 10)
    >>> data = simulate_raters(attrs, n_raters=4, images_per_rater=20, random_state=0)
    >>> data.y.shape, sorted(set(data.y.tolist())) <= [1.0, 2.0, 3.0, 4.0, 5.0]
    ((80,), True)
    """
    a = np.asarray(attributes, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != len(PHOTO_ATTRIBUTE_NAMES) or len(a) == 0:
        raise ValueError(f"attributes must have shape (n_images, {len(PHOTO_ATTRIBUTE_NAMES)})"
                         f" as returned by measure_attributes; got shape {a.shape}.")
    if not np.isfinite(a).all():
        raise ValueError("attributes contain NaN or infinite values.")
    n_raters = _check_int(n_raters, "n_raters", 1)
    images_per_rater = _check_int(images_per_rater, "images_per_rater", 1)
    if images_per_rater > len(a):
        raise ValueError(f"images_per_rater={images_per_rater} exceeds the {len(a)} images in "
                         "attributes; each rater rates distinct images.")
    c = _check_float(consensus_weight, "consensus_weight", 0.0, 1.0)
    noise = _check_float(noise, "noise", 0.0)
    rng = check_random_state(random_state)

    ratings = _simulate_ratings(_photo_taste_features(a), _W0, n_raters,
                                images_per_rater, c, noise, rng)
    return Bunch(taste_feature_names=list(PHOTO_TASTE_FEATURE_NAMES), **ratings)
