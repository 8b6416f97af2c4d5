"""What the baselines share: input handling, per-image consensus, per-user residual ridge.

Every baseline follows one pattern: a prior fitted on the training raters gives a base
score ``base(x)`` and a user map ``phi(x)``; personalizing fits a ridge regression of the
rater's residual ``y - base(x)`` on ``phi(x)``, its shrinkage chosen by efficient
leave-one-out cross-validation on the support set. Subclasses override the steps they
need (:meth:`BaselineRegressor._fit_prior`, ``_base``, ``_user_features``, or the
whole ``_user_fit`` / ``_user_predict`` pair).
"""

import copy
import numbers
import os

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._device import PickledOnCPU, resolve_device, seeded, trains, unpickled_device
from .._estimator import (
    _SCALE_CHECKED,
    another_scale,
    scores_outside,
    warn_constant_raters,
    warn_identical_features,
    warn_if_stray,
    warn_if_unranked,
    warn_mixed_scales,
)
from .._features import FeatureInput, ImageEmbedder, image_reader
from .._inputs import (
    FEATURES,
    check_alphas,
    check_score_range,
    check_scores,
    check_seed,
    input_kind,
    n_samples,
    refuse_one_row,
    unique_rows,
    with_rows,
)
from .._messages import pass_score_range, row_numbers, score_range_given
from .._params import NumbersNotBools
from .._tasks import as_tasks
from .._warnings import warn_caller
from ..nn import BACKBONES
from ..nn.backbones import owned_backbone

__all__ = ["BaselineRegressor", "PersonalizedBaseline", "consensus_scores"]

def consensus_scores(y, inverse, n_images):
    """Mean of each image's ratings (the generic target).

    A mean over ratings, not raters: a rater's repeated ratings of an image (trial-level
    data) each count, as the meta-learners' pooled draws count them.

    Parameters
    ----------
    y : ndarray of shape (n_ratings,)
    inverse : ndarray of shape (n_ratings,)
        Image index of each rating.
    n_images : int

    Returns
    -------
    ndarray of shape (n_images,)
    """
    total = np.bincount(inverse, weights=y, minlength=n_images)
    count = np.bincount(inverse, minlength=n_images)
    return total / np.maximum(count, 1)


def _same(a, b):
    """Whether two parameter values are equal (arrays element-wise)."""
    if a is b:
        return True
    try:
        return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))
    except Exception:  # values that do not compare: taken as a change
        return False


def _on_readable(Z, score):
    """``score(Z)`` on rows without NaN; NaN for the others.

    An image the embedder could not read (its ``on_error="skip"``, which the command
    line's ``--on-error skip`` sets) has a NaN embedding and
    gets a NaN score, never a made-up one; scikit-learn's models refuse NaN input.
    """
    ok = np.isfinite(Z).all(axis=1)
    if ok.all():
        return score(Z)
    out = np.full(len(Z), np.nan)
    if ok.any():
        out[ok] = score(Z[ok])
    return out


def _fit_pca(Z, n_components, rng, n_rows):
    # At most one component fewer than there are images, and no more than features.
    pca = PCA(min(n_components, Z.shape[1], max(len(Z) - 1, 1)), random_state=rng).fit(Z)
    if n_rows > 1 and not pca.explained_variance_[0] > 0:  # (Z holds distinct images)
        # FPMF divides by it: NaN weights, NaN scores, and nothing said
        raise ValueError("the training images' features (embeddings) are all the same: "
                         "there is no image content to learn from. Check the features, "
                         "or give images that differ.")
    return pca


def _ridge(Phi, target, alphas):
    # GCV needs at least 3 points to say anything; below that, shrink the most. Checked
    # here, where every ridge is fitted: alphas are read again at personalization
    # (set_params after fit, prior__alphas), where NaN predicted NaN and 0 fitted plain
    # least squares on two images in eight dimensions.
    grid = check_alphas(alphas) * max(Phi.shape[1], 1)
    if len(target) < 3:
        return Ridge(alpha=float(grid.max())).fit(Phi, target)
    return RidgeCV(alphas=grid).fit(Phi, target)


class BaselineRegressor(PickledOnCPU, NumbersNotBools, RegressorMixin, BaseEstimator):
    """Base class of the baselines: fit a prior over raters, personalize by ridge.

    Not meant to be used directly. Subclasses list their own parameters in
    ``__init__``; the ones below are common to all of them.

    Parameters
    ----------
    backbone : str, nn.Module or None, default=None
        ``None`` when ``X`` holds precomputed features (e.g. cached embeddings);
        otherwise images are embedded once by this frozen backbone, as in
        :class:`~sklearn_piaa.MetaAestheticRegressor`.
    backbone_weights : str or path-like, default=None
        Local weights file of the backbone.
    alphas : tuple of float, default=(0.1, 1.0, 10.0, 100.0, 1000.0)
        Ridge penalties tried by leave-one-out on the support set, per feature of the
        user map (multiplied by its width, so one grid serves 5 and 1280 features).
        With fewer than 3 support images, where leave-one-out says nothing, the
        largest penalty is used.
    batch_size : int, default=64
        Batch size for embedding images (on a CPU the backbone runs on parts of 2
        images per thread).
    cache_dir : str or path-like, default=None
        On-disk embedding cache, as for :class:`~sklearn_piaa.MetaAestheticRegressor`
        (see :ref:`backbones`).
    device : str or torch.device, default="cpu"
        Torch device the backbone (and PA-IAA's network) runs on. Checked in ``fit``
        as :class:`~sklearn_piaa.MetaAestheticRegressor` checks it, also where nothing
        runs on it (``backbone=None``).
    random_state : int, RandomState instance or None, default=None
        Resolved in ``fit``; seeds whatever the method draws at random, and the initial
        weights of a backbone without pretrained ones (as ``tiny_cnn``).

    Attributes
    ----------
    input_ : FeatureInput or ImageEmbedder
        Turns ``X`` into features.
    scaler_ : StandardScaler
        Standardizes the features over the training images.
    score_range_ : tuple of float
        Lowest and highest training score.
    raters_ : list
        Training raters.
    n_features_in_ : int
        Feature width (only when ``backbone=None``).
    feature_names_in_ : ndarray of str
        The column names of the DataFrame fitted on (only with ``backbone=None`` and a
        DataFrame with string column names); a DataFrame given later must have the same
        columns in the same order.

    Notes
    -----
    The default ``alphas`` were chosen on training raters only: on the built-in
    benchmark with ``personality=True`` (EfficientNet-Lite0 embeddings), 12 of the 48
    training raters held out, 3 support draws each, the grid from 0.1 gained 0.00-0.04
    SROCC at 10 images over a grid from 0.01 for every baseline and lost at most 0.008
    at 100; a grid from 1 gained a little more at 10 but lost up to 0.017 at 100
    (measured once when the default was set, by a script not in the repository).
    """

    __metadata_request__fit = {"groups": True}

    #: The parameters read when a rater is personalized; the others shape the fitted
    #: prior, which :class:`PersonalizedBaseline` takes as it is.
    _personalize_params = ("alphas",)

    _parameter_constraints = {
        "backbone": [StrOptions(set(BACKBONES)), torch.nn.Module, None],
        "backbone_weights": "no_validation",
        "alphas": ["array-like"],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "cache_dir": [str, os.PathLike, None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
    }

    def __init__(self, *, backbone=None, backbone_weights=None,
                 alphas=(0.1, 1.0, 10.0, 100.0, 1000.0), batch_size=64, cache_dir=None,
                 device="cpu", random_state=None):
        self.backbone = backbone
        self.backbone_weights = backbone_weights
        self.alphas = alphas
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.device = device
        self.random_state = random_state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "scaler_" in state:
            # fitted on a GPU, unpickled on a machine without one: its embedder runs on
            # the CPU, and device said "cuda" without a word (a refit then failed)
            self.device = unpickled_device(self.device)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A zero-shot prior over raters, not a regressor of pooled scores: some predict
        # a constant (the per-user ridge) before a rater's own images are seen.
        tags.regressor_tags.poor_score = True
        return tags

    # -- fit -------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    @trains
    def fit(self, X, y=None, groups=None):
        """Fit the prior on the training raters.

        Parameters
        ----------
        X : TaskSet, dict, or array-like / list
            As in :meth:`MetaAestheticRegressor.fit()
            <sklearn_piaa.MetaAestheticRegressor.fit>`.
        y : array-like of shape (n_ratings,), default=None
        groups : array-like of shape (n_ratings,), default=None
            Rater id of each row.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If ``device`` names no torch device, or one this machine does not have
            (even with ``backbone=None``, as :class:`~sklearn_piaa.MetaAestheticRegressor`
            refuses it); if ``alphas`` are not positive numbers.
        InvalidParameterError
            (a ``ValueError`` and a ``TypeError``) If a parameter has a type or value
            it does not accept, e.g. ``device=0`` or ``cache_dir=3``.

        Warns
        -----
        PIAAWarning
            If some raters gave every image the same score (named, as
            :meth:`MetaAestheticRegressor.fit() <sklearn_piaa.MetaAestheticRegressor.fit>`
            names them), or a few ratings lie far beyond all others, or some raters'
            scores look like another scale than the other raters' (named).
        """
        # The same input rules (and messages) as the meta-learned prior.
        tasks = as_tasks(X, y, groups, features=self.backbone is None,
                         owner=type(self).__name__)
        warn_constant_raters(tasks)
        warn_if_stray(tasks, "They count as ratings in the consensus and in the scale new "
                             "raters are compared with: drop those rows if they are codes "
                             "(if they are real ratings, filter this PIAAWarning).")
        warn_mixed_scales(tasks, (float(tasks.y.min()), float(tasks.y.max())),
                          "The consensus averages their scores with the others' as if all "
                          "were on one scale, which misplaces the images they rated, and "
                          "the prior learns their taste from a sliver of the range")
        names = tasks.feature_names if self.backbone is None else None
        check_alphas(self.alphas)
        # Checked even where nothing runs on it (backbone=None, the ridge baselines): the
        # values MetaAestheticRegressor refuses are refused here too, with its message.
        resolve_device(self.device)
        rng = check_random_state(self.random_state)
        # A refit that fails part-way must leave the previous fit untouched.
        previous = self.__dict__.copy()
        try:
            for name in [k for k in previous if k.endswith("_") and not k.startswith("_")]:
                del self.__dict__[name]  # a fit sets only what its settings need
            self.input_ = self._make_input(tasks.X, names)
            if names is not None:
                self.feature_names_in_ = names
            unique, inverse = self._embed_unique(tasks.X)
            if self.backbone is None and len(unique) == 1:
                warn_identical_features()
            self.scaler_ = StandardScaler().fit(unique)
            Z = self.scaler_.transform(unique)
            self.score_range_ = (float(tasks.y.min()), float(tasks.y.max()))
            self._fit_prior(Z, inverse, tasks.y.astype(np.float64), np.asarray(tasks.groups),
                            rng)
            self.raters_ = list(tasks.raters)
            if self.backbone is None:
                self.n_features_in_ = self.input_.n_features
            else:
                self.__dict__.pop("n_features_in_", None)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(previous)
            raise
        return self

    def _make_input(self, X, names=None):
        if self.backbone is None:
            if input_kind(X) != FEATURES:
                raise ValueError(f"backbone=None needs X as a 2-D feature array; got images. "
                                 f"Choose a backbone to use images with "
                                 f"{type(self).__name__}.")
            return FeatureInput(np.asarray(X).shape[1], owner=type(self).__name__,
                                feature_names=names)
        # Building layers draws their initial weights (a backbone without pretrained
        # ones, as tiny_cnn): from a forked generator, not the caller's, seeded from
        # random_state. A generator of its own, and a RandomState instance given is read
        # from a copy: fit's draws stay those of a fit on these images' embeddings. (None
        # draws from numpy's global generator, advancing it: a new backbone each fit.)
        rng = self.random_state
        rng = copy.deepcopy(rng) if isinstance(rng, np.random.RandomState) else rng
        seed = check_random_state(rng).randint(np.iinfo(np.int32).max)
        with seeded(seed):
            backbone = owned_backbone(self.backbone, self.backbone_weights)
        return self._image_input(backbone)

    def _image_input(self, backbone):
        """The input adapter over a built backbone (``load_model`` rebuilds it here too)."""
        device = resolve_device(self.device)
        self._cache_dir_given_ = self.cache_dir  # see _apply_reading_params
        return ImageEmbedder(backbone.to(device), device, self.batch_size, self.cache_dir)

    def _apply_reading_params(self):
        """Make ``input_``'s embedder cache where ``cache_dir`` says now.

        A ``set_params(cache_dir=...)`` after fit (a loaded prior on another machine's
        folder, or None for a service that must not write) was ignored: the embedder
        made in fit kept its folder, in memory and in the saved file. The embedder is
        replaced, not changed: models sharing it keep their own folders.
        """
        embedder = image_reader(self)
        if isinstance(embedder, ImageEmbedder) and self.cache_dir is not getattr(
                self, "_cache_dir_given_", self.cache_dir):
            new = embedder.replaced(cache_dir=self.cache_dir)
            if self.input_ is embedder:
                self.input_ = new
            else:  # PAM's adapter, around the embedder
                self.input_ = copy.copy(self.input_)
                self.input_.embedder = new
            self._cache_dir_given_ = self.cache_dir

    def _embed_unique(self, X):
        """Features of the distinct images in ``X`` and each row's image index."""
        if hasattr(self.input_, "transform_unique"):
            unique, inverse = self.input_.transform_unique(X, strict_cache=True)
            # In the order (and with the merges) of a fit on these embeddings as features:
            # the images come first-seen, and sums over them differ in the last bits.
            unique, which = unique_rows(unique)
            return unique, which[inverse]
        F = self.input_(X)
        # Identical feature rows are the same image: rows of a rating table repeat them.
        return unique_rows(F)

    def _transform(self, X):
        """Standardized features of ``X`` (as seen by the prior)."""
        self._apply_reading_params()
        return self.scaler_.transform(np.asarray(self.input_(X), dtype=np.float64))

    def _fit_prior(self, Z, inverse, y, groups, rng):
        """Fit the method's prior. ``Z``: standardized distinct images; ``inverse``: the
        image of each rating; ``y``, ``groups``: the ratings."""
        raise NotImplementedError

    # -- the user model ---------------------------------------------------------------

    def _base(self, Z):
        """Base score of the personalized model (the prior's own prediction)."""
        raise NotImplementedError

    def _user_features(self, Z):
        """The user map ``phi`` the residual ridge is fitted on."""
        return Z

    def _user_fit(self, Z, y, rescale):
        base = rescale(self._base(Z))
        return {"ridge": _ridge(self._user_features(Z), y - base, self.alphas)}

    def _user_predict(self, Z, state, rescale):
        return rescale(self._base(Z)) + state["ridge"].predict(self._user_features(Z))

    # -- use -------------------------------------------------------------------------

    def predict(self, X):
        """Zero-shot scores: the method's prediction for a rater it knows nothing about.

        Parameters
        ----------
        X : array-like or list
            Features (``backbone=None``) or images.

        Returns
        -------
        ndarray of shape (n_samples,), float64
            The method's scores, in float64 whatever the features' dtype (PA-IAA's
            network included); NaN for images the embedder could not read (with the
            command line's ``--on-error skip``).
        """
        check_is_fitted(self, "scaler_")
        return _on_readable(self._transform(X), self._base)

    def personalize(self, X, y, random_state=None, score_range=None):
        """Fit the per-user model on one rater's support images.

        Parameters
        ----------
        X : array-like or list
            Features of the support images (or the images, with a backbone).
        y : array-like of shape (n_samples,)
            Their scores by this rater.
        random_state : int, RandomState instance or None, default=None
            Accepted for the protocol's sake (evaluations pass each draw's seed), and
            otherwise ignored: the user models are deterministic. Checked all the same,
            as :meth:`MetaAestheticRegressor.personalize()
            <sklearn_piaa.MetaAestheticRegressor.personalize>` checks it.
        score_range : (float, float), default=None
            The rater's scale when it differs from the training raters'; the prior's
            scores are mapped linearly onto it.

        Returns
        -------
        PersonalizedBaseline
            A fitted scikit-learn regressor; the prior is left unchanged.

        Raises
        ------
        NotFittedError
            If this baseline is not fitted.
        ValueError
            If ``random_state`` cannot seed a random generator (e.g. a str); and as
            :meth:`PersonalizedBaseline.fit` raises.

        Warns
        -----
        PIAAWarning
            As :meth:`PersonalizedBaseline.fit` warns.
        """
        check_is_fitted(self, "scaler_")
        # a misspelt seed is a mistake even where nothing draws from it: the same call
        # with a meta-learner would fail
        check_seed(random_state)
        return PersonalizedBaseline(self, score_range=score_range).fit(X, y)


def _warn_if_another_scale(y, score_range):
    """Warn when a rater's scores leave, or fill a corner of, the prior's training range.

    A baseline fits any scale, from its prior's scores on the training scale: a rater on
    0-100 against a 1-5 prior gave FPMF 0.54 SROCC where its own scale gave 0.61, with
    no word. (An evaluation names such raters once: ``_SCALE_CHECKED``.)
    """
    low, high = score_range
    if getattr(_SCALE_CHECKED, "on", False) or not high > low:
        return
    where = another_scale(y, low, high)
    where = ("lie outside the range" if scores_outside(y, low, high).any()
             else where and f"{where} of the range")
    if where:
        warn_caller(f"the rater's scores ({y.min():g} to {y.max():g}) {where} "
                    f"of the baseline's training scores ({low:g}, {high:g}). If this rater "
                    f"uses another scale, {pass_score_range()}.")


class PersonalizedBaseline(RegressorMixin, BaseEstimator):
    """One rater's model: a fitted baseline prior plus that rater's ridge.

    Parameters
    ----------
    prior : BaselineRegressor
        A fitted baseline.
    score_range : (float, float), default=None
        The rater's scale, if not the prior's.

    Attributes
    ----------
    prior_ : BaselineRegressor
        The prior as it was when this model was fitted (a shallow copy): refitting
        ``prior`` later changes neither this model's predictions nor what
        :func:`~sklearn_piaa.save_model` writes for it.
    state_ : dict
        The rater's fitted parameters (e.g. ``"ridge"``, a fitted ridge regressor).
    score_range_ : (float, float) or None
        ``score_range`` as fitted: predictions stay on that scale after a later
        ``set_params`` (refit to change it).
    n_features_in_ : int
        Feature width, the prior's (only when the prior was fitted with
        ``backbone=None``).
    feature_names_in_ : ndarray of str
        The prior's column names (only when it was fitted on a DataFrame with string
        column names); a DataFrame given to ``fit`` or ``predict`` must have the same
        columns in the same order.
    """

    def __init__(self, prior, score_range=None):
        self.prior = prior
        self.score_range = score_range

    def __sklearn_clone__(self):
        # The prior is this model's fixed starting point, not a setting to refit: a
        # clone (as cross_val_score makes per split) keeps it fitted and shared --
        # fit only reads it -- as a clone of a PersonalizedNet keeps the prior's weights.
        return type(self)(prior=self.prior, score_range=self.score_range)

    def set_params(self, **params):
        """Set parameters; ``prior__...`` ones on a copy of the prior.

        The prior is shared with clones (see above) and with the user who personalized
        it: a search over ``prior__alphas`` changed the user's own prior. A shallow copy
        takes the new settings (its fitted attributes stay shared, unchanged).

        Only the prior's settings read when a rater is personalized can change (e.g.
        ``alphas``; USAR's ``variant``, ``top_fraction`` and ``ppr_weight``; PAM's
        ``variant``). Another (``prior__n_factors``) would shape a prior that is not
        fitted again here, so it is refused: a search over it scored every candidate
        alike.

        Raises
        ------
        ValueError
            For a new value of a prior setting that only its fit reads.
        """
        prior = params.get("prior", self.prior)
        current = prior.get_params(deep=False)
        read = getattr(prior, "_personalize_params", ())
        fixed = [key for key, value in params.items()
                 if (name := key.removeprefix("prior__")) != key and name in current
                 and name not in read and not _same(value, current[name])]
        if fixed:
            raise ValueError(
                f"{', '.join(fixed)}: {'it shapes' if len(fixed) == 1 else 'they shape'} "
                f"the fitted prior, which {type(self).__name__} personalizes as it is "
                "(it is not fitted again here), so the new value would change nothing. "
                "Fit a prior per value instead (e.g. a search over the "
                f"{type(prior).__name__} itself, scored by PersonalizedSROCCScorer); "
                f"settings read when personalizing: {list(prior._personalize_params)}.")
        if any(key.startswith("prior__") for key in params):
            self.prior = copy.copy(self.prior)
        return super().set_params(**params)

    @property
    def _prior(self):
        # Models pickled before prior_ existed read the prior they were given.
        return self.__dict__.get("prior_", self.prior)

    @staticmethod
    def _rescale(base, prior, score_range):
        if score_range is None:
            return base
        lo, hi = prior.score_range_
        low, high = score_range
        return low + (base - lo) * (high - low) / (hi - lo)

    @property
    def _fitted_range(self):
        # The scale the rater's ridge was fitted on, whatever set_params did since
        # (models pickled before score_range_ existed read the parameter).
        return self.__dict__.get("score_range_", self.score_range)

    def fit(self, X, y):
        """Fit the rater's parameters on their support images.

        Parameters
        ----------
        X : array-like or list
            Features of the support images (``backbone=None``; any array-like the
            prior's ``fit`` accepts, such as an object with only ``__array__``) or the
            images.
        y : array-like of shape (n_samples,) or (n_samples, 1)
            Their scores by this rater.

        Returns
        -------
        self

        Raises
        ------
        NotFittedError
            If ``prior`` is not fitted.
        ValueError
            If ``y`` is None (the rater's scores are required), is not one numeric score
            per image, is empty or not finite; if ``score_range`` is not a valid
            ``(low, high)``; or if ``score_range`` is given and ``y`` leaves it or the
            prior's training scores were all equal.

        Warns
        -----
        PIAAWarning
            If ``y`` is one score or several all equal (nothing about how the rater
            ranks images), or looks like another scale than the prior's, as
            :meth:`MetaAestheticRegressor.personalize()
            <sklearn_piaa.MetaAestheticRegressor.personalize>` warns.
        """
        check_is_fitted(self.prior, "scaler_")
        # A copy: a refit of the prior rebinds its attributes, and must not change this
        # model afterwards (the copy shares them, so costs nothing).
        prior = copy.copy(self.prior)
        X = with_rows(X)  # an array-like the prior's fit accepts: its rows are counted
        refuse_one_row(X)
        y = check_scores(y, n_samples(X))
        if len(y) == 0 or not np.isfinite(y).all():
            raise ValueError("personalize needs at least one rated image and finite scores.")
        if self.score_range is not None:
            low, high = check_score_range(self.score_range)
            outside = scores_outside(y, low, high)
            if outside.any():
                # as the meta-learned prior refuses them: predictions would leave the
                # scale the rater is said to use
                raise ValueError(
                    f"{int(outside.sum())} score(s) lie outside "
                    f"{score_range_given(low, high)}, e.g. {np.float32(y[outside][0]):g} "
                    f"({row_numbers(np.flatnonzero(outside)[:1], of='X')}); give the "
                    "rater's own scale.")
            lo, hi = prior.score_range_
            if not hi > lo:
                # The map onto the rater's scale divides by the prior's score span.
                raise ValueError(
                    f"score_range={self.score_range!r} cannot be used: the prior's training "
                    f"scores were all {lo:g} (score_range_={prior.score_range_}), so "
                    "there is no scale to map onto the rater's. Fit the prior on varied "
                    "scores, or personalize without score_range.")
        score_range = self.score_range
        if score_range is None:
            _warn_if_another_scale(np.asarray(y, dtype=np.float64), prior.score_range_)
        Z = prior._transform(X)
        readable = np.isfinite(Z).all(axis=1)
        if not readable.all():
            # images the embedder skipped (the command line's --on-error skip), warned
            # of there as left out of any training: scikit-learn's ridge refuses NaN
            if not readable.any():
                raise ValueError("none of the support images could be read, so there is "
                                 "nothing to personalize on.")
            Z, y = Z[readable], y[readable]
        warn_if_unranked(y)
        self.state_ = prior._user_fit(Z, y, lambda base: self._rescale(base, prior,
                                                                       score_range))
        self.prior_, self.score_range_ = prior, score_range
        self._take_input_attributes(prior)
        return self

    def _take_input_attributes(self, prior):
        """``n_features_in_`` and ``feature_names_in_`` as ``prior`` has them.

        Its input adapter checks this model's ``X`` (width and names), as it checks the
        prior's; on images neither is set, as on the prior. ``load_model`` calls it too.
        """
        for name in ("n_features_in_", "feature_names_in_"):
            if hasattr(prior, name):
                setattr(self, name, getattr(prior, name))
            else:  # a refit on images must not keep a previous fit's width
                self.__dict__.pop(name, None)

    def predict(self, X):
        """The rater's predicted scores.

        Parameters
        ----------
        X : array-like or list
            Features (``backbone=None``) or images.

        Returns
        -------
        ndarray of shape (n_samples,), float64
            Computed in float64, as the prior's scores; NaN for images the prior's
            embedder could not read (with the command line's ``--on-error skip``).

        Raises
        ------
        NotFittedError
            If this model is not fitted.
        """
        check_is_fitted(self, "state_")
        prior = self._prior
        return _on_readable(prior._transform(X), lambda Z: prior._user_predict(
            Z, self.state_, lambda base: self._rescale(base, prior, self._fitted_range)))
