"""Synthetic personalized-aesthetics benchmark with a known generative model."""

import colorsys
import numbers

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter
from scipy.stats import spearmanr
from sklearn.utils import Bunch, check_random_state

from .._inputs import is_count
from .._messages import row_numbers
from .._tasks import _as_ids, rater_codes

__all__ = ["make_aesthetic_benchmark", "consensus_agreement", "pairwise_agreement"]

ATTRIBUTE_NAMES = [
    "brightness", "contrast", "colorfulness", "saturation", "sharpness", "noise",
    "thirds_distance", "subject_size", "symmetry", "background_hue", "pattern",
]  # fmt: skip
_A = {name: k for k, name in enumerate(ATTRIBUTE_NAMES)}

# (feature name, shared weight): the shared taste loosely mirrors photographic
# folklore. The nuisance attributes (background_hue, pattern) are deliberately
# absent so that no rater, shared or individual, can care about them.
_TASTE = [
    ("brightness", 0.2), ("contrast", 0.3), ("colorfulness", 0.4), ("saturation", 0.1),
    ("sharpness", 0.9), ("noise", -0.7), ("thirds_distance", -0.5), ("subject_size", 0.2),
    ("symmetry", 0.3), ("-(brightness-0.55)^2", 0.8), ("-(contrast-0.6)^2", 0.3),
    ("-(saturation-0.6)^2", 0.4), ("-(subject_size-0.45)^2", 0.4),
    ("sharpness*subject_size", 0.3), ("colorfulness*saturation", 0.3),
]  # fmt: skip
TASTE_FEATURE_NAMES = [name for name, _ in _TASTE]
TRAIT_NAMES = ["openness", "conscientiousness", "extraversion", "agreeableness",
               "neuroticism"]  # the Big Five
_W0 = np.array([w for _, w in _TASTE])

# Rating-scale constants, rescaled from real 1-7 data (std of rater means 0.70,
# within-rater sd 1.69) to a 1-5 scale, before quantisation shrinks them.
_BIAS_SD, _SCALE_MEDIAN, _SCALE_LOG_SD, _INDIVIDUALITY_LOG_SD = 0.55, 1.15, 0.2, 0.5


def _taste_features(a):
    def pref(name, best):
        return -((a[:, _A[name]] - best) ** 2)

    lin = a[:, [_A[n] for n in TASTE_FEATURE_NAMES[:9]]]
    extra = [
        pref("brightness", 0.55), pref("contrast", 0.6), pref("saturation", 0.6),
        pref("subject_size", 0.45),
        a[:, _A["sharpness"]] * a[:, _A["subject_size"]],
        a[:, _A["colorfulness"]] * a[:, _A["saturation"]],
    ]  # fmt: skip
    return np.column_stack([lin] + extra)


def _safe_sd(v):
    sd = v.std(axis=0)
    # A one-image pool has no spread; leave such columns unscaled rather than divide by 0.
    return np.where(sd > 0, sd, 1.0)


def _rgb(h, s, v):
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _shape(draw, kind, cx, cy, r, fill, mirror):
    if kind == 0:
        draw.ellipse([cx - r, cy - 0.7 * r, cx + r, cy + 0.7 * r], fill=fill)
    elif kind == 1:
        draw.rectangle([cx - 0.8 * r, cy - r, cx + 0.8 * r, cy + r], fill=fill)
    else:
        # An irregular (non-symmetric) polygon, so that mirrored pairs really
        # differ from unmirrored placements.
        sx = -1 if mirror else 1
        pts = [(1.0, 0.1), (0.2, 1.0), (-0.9, 0.6), (-0.6, -0.8), (0.5, -0.9)]
        draw.polygon([(cx + sx * r * x, cy + r * y) for x, y in pts], fill=fill)


def _render(a, size, grid, rng):
    """Render one image whose pixels reflect the attribute vector ``a``."""
    a = a.tolist()  # PIL misbehaves with numpy scalars (e.g. a blur radius)
    hue, spread = a[_A["background_hue"]], 0.5 * a[_A["colorfulness"]]
    chroma = 0.25 + 0.6 * a[_A["colorfulness"]]
    yy, rr = grid
    top = np.array(_rgb(hue, chroma, 0.75), dtype=float)
    bottom = np.array(_rgb(hue + 0.35 * spread, chroma, 0.5), dtype=float)
    # The ring texture is centred, so it never breaks mirror symmetry.
    rings = 12.0 * np.sin(2 * np.pi * (2 + 8 * a[_A["pattern"]]) * rr)
    bg = top + (bottom - top) * yy[..., None] + rings[..., None]
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)

    r = (0.08 + 0.2 * a[_A["subject_size"]]) * size
    # Offsets point either towards the centre or towards the edge, so the
    # attribute is a pure distance from the thirds line.
    d = a[_A["thirds_distance"]] * size / 6 * rng.choice([-1, 1])
    cx, cy = size / 3 + d, size * rng.uniform(0.4, 0.6)
    kind = rng.integers(3)
    subject = _rgb(hue + spread, chroma, 0.95)
    if a[_A["symmetry"]] >= 0.5:
        _shape(draw, kind, cx, cy, r, subject, False)
        _shape(draw, kind, size - cx, cy, r, subject, True)
    else:
        _shape(draw, kind, cx, cy, r, subject, False)
        accent = _rgb(hue + 0.7 * spread, chroma, 0.35)
        ax, ay = size * rng.uniform(0.6, 0.9), size * rng.choice([0.2, 0.8])
        _shape(draw, (kind + 1) % 3, ax, ay, 0.5 * r, accent, False)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    img = ImageEnhance.Color(img).enhance(0.1 + 1.7 * a[_A["saturation"]])
    img = ImageEnhance.Contrast(img).enhance(0.3 + 1.4 * a[_A["contrast"]])
    img = ImageEnhance.Brightness(img).enhance(0.35 + 1.1 * a[_A["brightness"]])
    radius = 3.0 * (1 - a[_A["sharpness"]]) * size / 64
    if radius > 0.05:
        img = img.filter(ImageFilter.GaussianBlur(radius))
    out = np.asarray(img, dtype=np.float32)
    out = out + rng.standard_normal(out.shape, dtype=np.float32) * (25.0 * a[_A["noise"]])
    return np.clip(out, 0, 255).astype(np.uint8)


def _check_int(value, name, low):
    if not is_count(value, low):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return int(value)


def _check_float(value, name, low, high=np.inf):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or not low <= value <= high:
        bounds = f"in [{low}, {high}]" if np.isfinite(high) else f">= {low}"
        raise ValueError(f"{name} must be a finite number {bounds}, got {value!r}.")
    return float(value)


DESCR = """\
Synthetic personalized image aesthetics benchmark
-------------------------------------------------

Images are procedural renders (gradient + ring-textured background, one subject
shape and either its mirror image or a smaller accent shape) controlled by
attributes drawn i.i.d. U(0, 1) per image: brightness, contrast, colorfulness
(hue spread and chroma), saturation, sharpness (Gaussian blur radius), noise
(additive Gaussian noise), thirds_distance (horizontal distance of the subject
from a rule-of-thirds line), subject_size, symmetry (Bernoulli(0.5)), and the
nuisance attributes background_hue and pattern, which no rater cares about.

Scores. phi(a) holds 15 taste features: 9 linear attributes, 4 preferred-value
terms such as -(brightness - 0.55)^2 and 2 interactions, standardised over the
image pool. With c = consensus_weight, rater u's latent score on image i is

    s_ui = c g0(i) + (1 - c) r_u g_u(i) + noise e_ui,

where g0 = phi w0 (shared taste) and g_u = phi d_u with d_u ~ N(0, I) (rater
deviation) are standardised over the pool, r_u ~ LogNormal(0, 0.5) sets how
much rater u deviates, and e_ui ~ N(0, 1). Hence s_ui = phi(a_i) . w_u + noise
e_ui with w_u = rater_weights[u]. The rating is round(3 + b_u + k_u z_ui)
clipped to 1..5, with z_ui the s_ui standardised per rater, bias b_u ~ N(0, 0.55)
and scale k_u ~ 1.15 LogNormal(0, 0.2).
"""


def make_aesthetic_benchmark(
    n_images=600,
    n_raters=40,
    images_per_rater=120,
    image_size=64,
    consensus_weight=0.6,
    noise=0.3,
    random_state=None,
    personality=False,
    personality_weight=0.5,
):
    """Generate rendered images and personalized 1-5 ratings with known tastes.

    Parameters
    ----------
    n_images : int, default=600
        Number of images in the pool.
    n_raters : int, default=40
        Number of raters.
    images_per_rater : int, default=120
        Number of distinct images each rater scores, drawn at random without
        replacement from the pool. Must not exceed ``n_images``.
    image_size : int, default=64
        Height and width of the square RGB images, at least 16.
    consensus_weight : float, default=0.6
        Weight ``c`` in [0, 1] of the shared taste against each rater's own
        deviation. 1 makes all raters share one taste, 0 makes them unrelated.
    noise : float, default=0.3
        Standard deviation (>= 0) of the per-rating noise, relative to the unit
        scale of the standardised shared taste.
    random_state : int, RandomState instance or None, default=None
        Seed controlling images, tastes and the rating design.
    personality : bool, default=False
        Give each rater latent Big-Five traits ``t_u`` in (-1, 1) (``tanh`` of a
        standard normal) that drive part of their individual taste, and return the
        personality table (for :class:`~sklearn_piaa.PAIAARegressor`).
        ``False`` returns exactly what earlier versions returned.
    personality_weight : float, default=0.5
        With ``personality=True``, the share ``p`` in [0, 1] of the variance of each
        rater's deviation that their traits drive: ``d_u`` becomes
        ``sqrt(1 - p) d_u + sqrt(p) t_u L`` (rescaled to unit sd over the pool), with
        ``L ~ N(0, I)`` a (5, 15) loading of traits on taste features.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``images`` (uint8, (n_images, image_size, image_size, 3)), ``attributes``
        (float32, (n_images, 11), in [0, 1]) with ``attribute_names``, and the
        rating table as parallel arrays of length ``n_raters * images_per_rater``:
        ``image_index`` (int64 rows of ``images``), ``y`` (float32 integers 1..5)
        and ``groups`` (rater ids ``"rater_000"``, ...; ``rater_ids`` lists them).
        The ground truth: ``taste_features`` (standardised phi, (n_images, 15))
        with ``taste_feature_names``; ``rater_weights`` ((n_raters, 15), the
        taste ``w_u`` of each rater); ``consensus_weights`` (``w0``, so that
        ``rater_weights - consensus_weight * consensus_weights`` is the
        individual deviation); ``consensus_score`` (``g0``, (n_images,));
        ``rater_individuality`` (``r_u``), ``rater_bias`` (``b_u``) and
        ``rater_scale`` (``k_u``); ``consensus_weight``, ``noise`` and ``DESCR``.
        With ``personality=True`` also ``rater_traits`` ((n_raters, 5)),
        ``trait_names`` (openness, conscientiousness, extraversion, agreeableness,
        neuroticism), ``trait_loadings`` (``L``, (5, 15)) and ``personality``, the
        table: a dict rater id -> traits.

    Notes
    -----
    The generative model is spelt out in ``DESCR``: a consensus-weighted mix of
    a shared nonlinear taste (linear, preferred-value and interaction terms of
    the attributes) and a rater-specific deviation of rater-dependent size, plus
    rating noise, passed through each rater's scale use (bias and spread) and
    quantised to 1..5, in the spirit of personalized aesthetics data [1]_.

    The defaults target a per-rater Spearman correlation with the leave-one-out
    consensus (:func:`consensus_agreement`) of mean 0.63, median 0.66, 10th
    percentile 0.45 and 90th percentile 0.79, and a std of rater means about
    0.4 times the within-rater sd. With only ~8 raters per image, the noisy
    consensus makes that target imply a mean pairwise Spearman between raters
    (:func:`pairwise_agreement`) of about 0.47 rather than a lower value.

    References
    ----------
    .. [1] Ren, J., Shen, X., Lin, Z., Mech, R. and Foran, D. J. "Personalized
       Image Aesthetics". ICCV, 2017.

    Examples
    --------
    >>> from sklearn_piaa.datasets.synthetic import make_aesthetic_benchmark
    >>> data = make_aesthetic_benchmark(n_images=20, n_raters=3, images_per_rater=10,
    ...                                 image_size=32, random_state=0)
    >>> data.images.shape, data.y.shape, str(data.groups[0])
    ((20, 32, 32, 3), (30,), 'rater_000')
    >>> sorted(set(data.y.tolist())) <= [1.0, 2.0, 3.0, 4.0, 5.0]
    True
    """
    n_images = _check_int(n_images, "n_images", 1)
    n_raters = _check_int(n_raters, "n_raters", 1)
    images_per_rater = _check_int(images_per_rater, "images_per_rater", 1)
    image_size = _check_int(image_size, "image_size", 16)
    if images_per_rater > n_images:
        raise ValueError(
            f"images_per_rater={images_per_rater} exceeds n_images={n_images}; each "
            "rater rates distinct images, so images_per_rater must be <= n_images."
        )
    c = _check_float(consensus_weight, "consensus_weight", 0.0, 1.0)
    noise = _check_float(noise, "noise", 0.0)
    rng = check_random_state(random_state)
    # A Generator, seeded from the RandomState, is much faster for the
    # per-pixel noise, and stays fully determined by random_state.
    gen = np.random.default_rng(rng.randint(np.iinfo(np.int32).max))

    if not isinstance(personality, (bool, np.bool_)):
        raise ValueError(f"personality must be True or False, got {personality!r}.")
    # checked without personality too: a typo there was taken without a word
    p = _check_float(personality_weight, "personality_weight", 0.0, 1.0)
    attributes = gen.random((n_images, len(ATTRIBUTE_NAMES)))
    attributes[:, _A["symmetry"]] = gen.random(n_images) < 0.5
    coords = (np.arange(image_size) + 0.5) / image_size
    yy = np.broadcast_to(coords[:, None], (image_size, image_size))
    rr = np.hypot(coords[None, :] - 0.5, coords[:, None] - 0.5)
    images = np.stack([_render(a, image_size, (yy, rr), gen) for a in attributes])

    ratings = _simulate_ratings(_taste_features(attributes), _W0, n_raters,
                                images_per_rater, c, noise, gen,
                                personality_weight=p if personality else None)
    return Bunch(
        images=images, attributes=attributes.astype(np.float32),
        attribute_names=list(ATTRIBUTE_NAMES), taste_feature_names=list(TASTE_FEATURE_NAMES),
        DESCR=DESCR, **ratings,
    )  # fmt: skip


def _simulate_ratings(phi, w0, n_raters, images_per_rater, c, noise, gen,
                      personality_weight=None):
    """The rater model shared by the built-in and the real-photo benchmarks.

    ``phi`` holds raw taste features per image and ``w0`` the consensus weights; ``gen``
    is a numpy Generator or RandomState. Returns the rating table and the ground truth
    as a dict (see :func:`make_aesthetic_benchmark` for the meaning of each key).
    ``personality_weight=None`` draws no traits (and so the same numbers as before).
    """
    n_images = len(phi)
    phi = (phi - phi.mean(axis=0)) / _safe_sd(phi)
    w0 = w0 / _safe_sd(phi @ w0)
    deviation = gen.standard_normal((n_raters, phi.shape[1]))
    deviation /= _safe_sd(phi @ deviation.T)[:, None]
    extra = {}
    if personality_weight is not None:
        traits = np.tanh(gen.standard_normal((n_raters, len(TRAIT_NAMES))))
        loadings = gen.standard_normal((len(TRAIT_NAMES), phi.shape[1]))
        driven = traits @ loadings
        driven /= _safe_sd(phi @ driven.T)[:, None]
        p = personality_weight
        deviation = np.sqrt(1 - p) * deviation + np.sqrt(p) * driven
        deviation /= _safe_sd(phi @ deviation.T)[:, None]
        extra = dict(rater_traits=traits, trait_names=list(TRAIT_NAMES),
                     trait_loadings=loadings)
    individuality = np.exp(_INDIVIDUALITY_LOG_SD * gen.standard_normal(n_raters))
    rater_weights = c * w0 + (1 - c) * individuality[:, None] * deviation
    latent_sd = np.sqrt(_safe_sd(phi @ rater_weights.T) ** 2 + noise**2)
    bias = _BIAS_SD * gen.standard_normal(n_raters)
    scale = _SCALE_MEDIAN * np.exp(_SCALE_LOG_SD * gen.standard_normal(n_raters))
    image_index = np.concatenate(
        [gen.choice(n_images, images_per_rater, replace=False) for _ in range(n_raters)]
    ).astype(np.int64)
    rater = np.repeat(np.arange(n_raters), images_per_rater)
    latent = np.einsum("ij,ij->i", phi[image_index], rater_weights[rater])
    z = (latent + noise * gen.standard_normal(latent.shape)) / latent_sd[rater]
    y = np.clip(np.rint(3.0 + bias[rater] + scale[rater] * z), 1, 5).astype(np.float32)
    width = max(3, len(str(n_raters - 1)))
    rater_ids = np.array([f"rater_{u:0{width}d}" for u in range(n_raters)])
    return dict(
        image_index=image_index, y=y, groups=rater_ids[rater], rater_ids=rater_ids,
        taste_features=phi, rater_weights=rater_weights, consensus_weights=w0,
        consensus_score=phi @ w0, rater_individuality=individuality, rater_bias=bias,
        rater_scale=scale, consensus_weight=c, noise=noise, **extra,
    ) | ({"personality": dict(zip(rater_ids.tolist(), extra["rater_traits"]))}
         if extra else {})


def _spearman(a, b):
    # Constant input makes Spearman undefined; answer nan without scipy's warning.
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return np.nan
    return float(spearmanr(a, b)[0])


def _rating_table(y, groups, image_index, name, value):
    """Scores, rater codes, image codes and the sorted rater ids of a ratings table.

    Rater ids are kept as given (``7`` and ``"7"`` two raters, with the package's
    warning: numpy's ``np.unique`` read a mixed list as text, one rater), missing or
    boolean ids and non-finite scores refused by row, and ``name`` (the minimum count
    parameter) checked as an integer of at least 1.
    """
    if not is_count(value):
        raise ValueError(f"{name} must be an integer of at least 1; got {value!r}.")
    y = np.asarray(y, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, one score per rating; got shape {y.shape}.")
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise ValueError(f"y has {len(bad)} NaN or infinite score(s), at "
                         f"{row_numbers(bad)}; every rating needs a score.")
    raters, rater = rater_codes(_as_ids(groups))
    images = _as_ids(image_index).tolist()
    code = {im: i for i, im in enumerate(dict.fromkeys(images))}
    image = np.fromiter((code[im] for im in images), dtype=np.intp, count=len(images))
    if not len(y) == len(rater) == len(image):
        raise ValueError("y, groups and image_index must have the same length.")
    return y, rater, image, len(code), raters


def consensus_agreement(y, groups, image_index, min_others=2):
    """Spearman correlation of each rater with the leave-one-out consensus.

    The consensus of rater ``u`` on image ``i`` is the mean score of the *other*
    raters on ``i``; only images with at least ``min_others`` other raters count.

    Parameters
    ----------
    y : array-like of shape (n_ratings,)
        Scores.
    groups : array-like of shape (n_ratings,)
        Rater id of each rating.
    image_index : array-like of shape (n_ratings,)
        Image id of each rating.
    min_others : int, default=2
        Minimum number of other raters an image needs to enter the correlation.

    Returns
    -------
    agreement : ndarray of shape (n_raters,)
        Spearman correlation per rater, in the order of the sorted rater ids
        (``np.unique(groups)`` for ids of one type; ``7`` and ``"7"`` are two raters,
        with a warning); nan where undefined (fewer than 3 usable images, or constant
        scores).

    Raises
    ------
    ValueError
        For NaN or infinite scores, missing or boolean rater ids (naming the rows),
        arrays of different lengths, or ``min_others`` below 1.

    Examples
    --------
    >>> rho = consensus_agreement([1, 2, 3, 1, 2, 3, 1, 3, 2],
    ...                           ["a"] * 3 + ["b"] * 3 + ["c"] * 3, [0, 1, 2] * 3)
    >>> rho.round(2).tolist()
    [0.87, 0.87, 0.5]
    """
    y, rater, image, n_images, rater_ids = _rating_table(y, groups, image_index,
                                                         "min_others", min_others)
    images = np.arange(n_images)
    # Pool repeated ratings of one (rater, image) pair so that a rater never
    # counts towards its own consensus.
    pair, pair_of = np.unique(rater * len(images) + image, return_inverse=True)
    pair_sum = np.bincount(pair_of, y)
    pair_n = np.bincount(pair_of)
    p_rater, p_image = pair // len(images), pair % len(images)
    img_raters = np.bincount(p_image, minlength=len(images))
    others = img_raters[p_image] - 1
    # Each other rater contributes their mean score, so raters weigh equally.
    pair_mean = pair_sum / pair_n
    # The others' sum is added up without the rater's own score, each image's scores in
    # ascending order: "all minus own" left round-off that split equal consensus values
    # (0.1 + 0.2 and 0.2 + 0.1 as 0.15 and 0.15000000000000002), losing Spearman's ties.
    by_value = np.lexsort((pair_mean, p_image))
    value, who = pair_mean[by_value], p_rater[by_value]
    start = np.concatenate([[0], np.cumsum(img_raters)])  # each image's run in by_value
    agreement = np.full(len(rater_ids), np.nan)
    for u in range(len(rater_ids)):
        keep = np.flatnonzero((p_rater == u) & (others >= min_others))
        # the runs of u's images, one after another, u's own entries masked out
        run = img_raters[p_image[keep]]
        at = np.repeat(start[p_image[keep]] - np.cumsum(run) + run, run) + np.arange(run.sum())
        other_sum = np.bincount(np.repeat(np.arange(len(keep)), run),
                                np.where(who[at] != u, value[at], 0.0), minlength=len(keep))
        agreement[u] = _spearman(pair_mean[keep], other_sum / others[keep])
    return agreement


def pairwise_agreement(y, groups, image_index, min_shared=5):
    """Spearman correlation of every pair of raters on the images both rated.

    Parameters
    ----------
    y, groups, image_index : array-like of shape (n_ratings,)
        Scores, rater ids and image ids, as in :func:`consensus_agreement`.
    min_shared : int, default=5
        Pairs sharing fewer images get nan. Repeated ratings of an image by one rater
        count as their mean.

    Returns
    -------
    agreement : ndarray of shape (n_raters, n_raters)
        Symmetric matrix over the sorted unique rater ids, nan on the diagonal
        and where undefined.

    Raises
    ------
    ValueError
        As :func:`consensus_agreement` raises (``min_shared`` below 1).
    """
    y, rater, image, n_images, rater_ids = _rating_table(y, groups, image_index,
                                                         "min_shared", min_shared)
    images = np.arange(n_images)
    # Repeated ratings of one (rater, image) pair are averaged, as in
    # consensus_agreement: assigning them kept whichever came last.
    total = np.zeros((len(rater_ids), len(images)))
    count = np.zeros((len(rater_ids), len(images)))
    np.add.at(total, (rater, image), y)
    np.add.at(count, (rater, image), 1)
    seen = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        table = total / count
    out = np.full((len(rater_ids), len(rater_ids)), np.nan)
    for u in range(len(rater_ids)):
        for v in range(u + 1, len(rater_ids)):
            both = seen[u] & seen[v]
            if both.sum() >= min_shared:
                out[u, v] = out[v, u] = _spearman(table[u, both], table[v, both])
    return out
