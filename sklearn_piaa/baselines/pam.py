"""PAM (Ren et al., ICCV 2017): a generic aesthetic model plus a per-user residual."""

import numbers

import numpy as np
from scipy.special import softmax
from sklearn.cluster import KMeans
from sklearn.utils._param_validation import Interval, StrOptions

from .._inputs import as_indexable
from .._warnings import warn_caller
from ..datasets.photo_raters import PHOTO_ATTRIBUTE_NAMES, measure_attributes
from ._base import BaselineRegressor, _ridge, consensus_scores

__all__ = ["PAMRegressor"]


class _AttributeInput:
    """Images -> ``[embedding, measured attributes]``: the attributes are the last columns.

    Parameters
    ----------
    embedder : ImageEmbedder
    size : int
        Longest side of the copy :func:`measure_attributes` measures.
    """

    def __init__(self, embedder, size):
        self.embedder = embedder
        self.size = size

    def __call__(self, X, y=None):
        unique, inverse = self.transform_unique(X)
        return unique[inverse]

    def transform_unique(self, X, strict_cache=False):
        unique, inverse = self.embedder.transform_unique(X, strict_cache=strict_cache)
        # by position: an array of paths, or a Series with its own index labels
        X = as_indexable(X)
        first = np.unique(inverse, return_index=True)[1]  # one row per distinct image
        # An image the embedder skipped (on_error="skip") has a NaN embedding: its
        # attributes are NaN too, where measuring it failed on the file.
        readable = ~np.isnan(unique[:, 0])
        attrs = np.full((len(unique), len(PHOTO_ATTRIBUTE_NAMES)), np.nan, np.float32)
        if readable.any():
            attrs[readable] = measure_attributes([X[i] for i in first[readable]],
                                                 self.size)[0]
        return np.hstack([unique, attrs]), inverse


def _attribute_columns(columns, width):
    """``attribute_columns`` as sorted distinct column numbers (from numbers or a mask)."""
    raw = np.asarray(columns)
    if raw.dtype == bool:
        # A mask read as numbers would silently pick columns 0 and 1.
        if raw.shape != (width,):
            raise ValueError(f"attribute_columns as a boolean mask needs one entry per "
                             f"column of X ({width}); got shape {raw.shape}.")
        return np.flatnonzero(raw)
    raw = raw.reshape(-1)
    if raw.size and raw.dtype.kind not in "iu":
        # Truncating 6.7 to 6 would pick a column nobody asked for.
        raise ValueError(f"attribute_columns must be integer column numbers or a boolean "
                         f"mask of the {width} columns of X; got {columns!r}.")
    return np.unique(raw.astype(np.intp))


class PAMRegressor(BaselineRegressor):
    """PAM: generic aesthetics plus a per-user residual over attributes and/or content.

    Personalized Aesthetics Model of Ren et al. [1]_: a generic regressor ``g`` is
    trained on the training raters' mean score of each image; a new rater's score is
    ``g(x) + r_u(x)``, with the residual ``r_u`` regressed on image features from the
    rater's support images. The paper's three variants pick the residual's features:

    - ``"attributes"``: measured aesthetic attributes of the image -- brightness,
      contrast, colourfulness, saturation, sharpness, noise, rule-of-thirds distance
      of the salient point, salient area, mirror symmetry and edge density, each
      defined in :func:`sklearn_piaa.datasets.measure_attributes`;
    - ``"content"``: a content-class probability vector: soft assignment of the
      backbone embedding to ``n_content_classes`` content clusters found on the
      training images;
    - ``"both"``: the two concatenated.

    Parameters
    ----------
    variant : {"attributes", "content", "both"}, default="both"
    attribute_columns : array-like of int or of bool, default=None
        With ``backbone=None``: the columns of ``X`` that hold measured attributes, as
        column numbers or as a boolean mask with one entry per column
        (e.g. from :func:`~sklearn_piaa.datasets.measure_attributes`); the other
        columns are the content embedding. Ignored with a backbone, where attributes
        are measured from the images.
    n_content_classes : int, default=20
        Number of content clusters, at most the number of distinct training images:
        with fewer images each is a class of its own, with a warning.
    attribute_size : int, default=128
        Longest side of the copy the attributes are measured on (images only).
    backbone, backbone_weights, alphas, batch_size, cache_dir, device
        Shared by the baselines: see :class:`~sklearn_piaa.baselines.BaselineRegressor`
        (by default ``backbone=None``: ``X`` holds cached embeddings).
    random_state : int, RandomState instance or None, default=None
        Seeds the content clustering.

    Attributes
    ----------
    generic_ : RidgeCV
        ``g``, over all standardized features (embedding and attributes).
    attribute_columns_ : ndarray of int
        Columns of the standardized features holding attributes.
    content_classes_ : KMeans
        Content clusters of the training images' embeddings (``variant`` "content" or
        "both" only).
    temperature_ : float
        Softmax temperature of the content-class probabilities (``variant`` "content"
        or "both" only).
    attribute_names_ : list of str
        Attribute names (with images) or ``"x<column>"`` (with features).
    input_, scaler_, score_range_, raters_
        See :class:`~sklearn_piaa.baselines.BaselineRegressor`.

    Notes
    -----
    Where this approximates [1]_: the generic model is a ridge regression on frozen
    embeddings and attributes rather than a fine-tuned deep network; the attributes
    are computed by hand-written measures rather than the AADB attribute network; the
    content classes are unsupervised clusters of the embedding rather than a
    supervised content classifier; the residual regressor is a ridge whose penalty
    is chosen by leave-one-out cross-validation on the support set.

    References
    ----------
    .. [1] J. Ren, X. Shen, Z. Lin, R. Mech and D. J. Foran, "Personalized Image
       Aesthetics", ICCV 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_piaa.baselines import PAMRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(300, 8)
    >>> y = X[:, 0] + 0.1 * rng.randn(300)
    >>> pam = PAMRegressor(variant="attributes", attribute_columns=[6, 7], random_state=0)
    >>> pam = pam.fit(X, y, groups=np.repeat([0, 1, 2], 100))
    >>> pam.personalize(X[:10], y[:10]).predict(X[10:13]).shape
    (3,)
    """

    _parameter_constraints = {
        **BaselineRegressor._parameter_constraints,
        "variant": [StrOptions({"attributes", "content", "both"})],
        "attribute_columns": ["array-like", None],
        "n_content_classes": [Interval(numbers.Integral, 1, None, closed="left")],
        "attribute_size": [Interval(numbers.Integral, 16, None, closed="left")],
    }

    def __init__(self, variant="both", attribute_columns=None, n_content_classes=20,
                 attribute_size=128, backbone=None, backbone_weights=None,
                 alphas=(0.1, 1.0, 10.0, 100.0, 1000.0), batch_size=64, cache_dir=None,
                 device="cpu", random_state=None):
        self.variant = variant
        self.attribute_columns = attribute_columns
        self.n_content_classes = n_content_classes
        self.attribute_size = attribute_size
        super().__init__(backbone=backbone, backbone_weights=backbone_weights, alphas=alphas,
                         batch_size=batch_size, cache_dir=cache_dir, device=device,
                         random_state=random_state)

    # variant picks the residual's features; content ones need a prior fitted with them
    _personalize_params = ("alphas", "variant")

    def _image_input(self, backbone):
        return _AttributeInput(super()._image_input(backbone), self.attribute_size)

    def _fit_prior(self, Z, inverse, y, groups, rng):
        width = Z.shape[1]
        if self.backbone is not None:
            cols = np.arange(width - len(PHOTO_ATTRIBUTE_NAMES), width)
            self.attribute_names_ = list(PHOTO_ATTRIBUTE_NAMES)
        elif self.attribute_columns is None:
            if self.variant != "content":
                raise ValueError(
                    f"variant={self.variant!r} with backbone=None needs attribute_columns: "
                    "the columns of X that hold measured attributes (see "
                    "sklearn_piaa.datasets.measure_attributes). Or use variant='content'.")
            cols = np.empty(0, dtype=np.intp)
        else:
            cols = _attribute_columns(self.attribute_columns, width)
            if len(cols) == 0 or cols.min() < 0 or cols.max() >= width:
                raise ValueError(f"attribute_columns must index the {width} columns of X; "
                                 f"got {self.attribute_columns}.")
        if self.backbone is None:
            self.attribute_names_ = [f"x{c}" for c in cols]
        self.attribute_columns_ = cols
        content = np.delete(Z, cols, axis=1)
        if self.variant != "attributes" and content.shape[1] == 0:
            raise ValueError(f"variant={self.variant!r} needs content columns besides the "
                             "attribute columns.")
        self.generic_ = _ridge(Z, consensus_scores(y, inverse, len(Z)), self.alphas)
        if self.variant != "attributes":
            k = min(self.n_content_classes, len(Z))
            if k < self.n_content_classes:
                warn_caller(
                    f"n_content_classes={self.n_content_classes} is more than the {len(Z)} "
                    f"distinct training images: PAMRegressor uses {k} content classes, "
                    "one per image. Set n_content_classes to at most the number of "
                    "images to silence this.")
            self.content_classes_ = KMeans(k, n_init=3, random_state=rng).fit(content)
            # Temperature: the typical squared distance of an image to its own class, so
            # that probabilities are neither one-hot nor uniform.
            d2 = self.content_classes_.transform(content) ** 2
            own = d2.min(axis=1)
            # An image alone in its class is at its centre up to round-off (1e-30, not
            # always 0): distances that small against the classes' spacing count as 0.
            own[own <= 1e-9 * np.median(d2)] = 0.0
            temperature = np.median(own)
            if temperature <= 0:
                # Most images alone in their class (fewer than about two per class):
                # their distance 0 made the softmax one-hot. The typical distance of
                # the others, or failing those the spacing of the classes, instead.
                positive = own[own > 0]
                if positive.size:
                    temperature = np.median(positive)
                elif d2.shape[1] > 1:
                    temperature = np.median(np.sort(d2, axis=1)[:, 1])
            self.temperature_ = float(max(temperature, 1e-12))

    def _base(self, Z):
        return self.generic_.predict(Z)

    def _user_features(self, Z):
        parts = []
        if self.variant != "content":
            if len(self.attribute_columns_) == 0:
                raise ValueError(
                    f"variant={self.variant!r} needs attribute columns, which this prior, "
                    "fitted with variant='content' on features without "
                    "attribute_columns, lacks: fit it with attribute_columns (the columns "
                    "of X that hold measured attributes), or personalize with "
                    "variant='content'.")
            parts.append(Z[:, self.attribute_columns_])
        if self.variant != "attributes":
            if not hasattr(self, "content_classes_"):
                raise ValueError(
                    f"variant={self.variant!r} needs content classes, which this prior, "
                    "fitted with variant='attributes', lacks: fit it with "
                    f"variant={self.variant!r} (or 'both', which serves every variant).")
            content = np.delete(Z, self.attribute_columns_, axis=1)
            d2 = self.content_classes_.transform(content) ** 2
            parts.append(softmax(-d2 / self.temperature_, axis=1))
        return np.hstack(parts)
