"""Per-user ridge over image embeddings: own ratings only, or consensus plus residual."""

import numpy as np

from ._base import BaselineRegressor, _ridge, consensus_scores

__all__ = ["UserRidgeRegressor", "ConsensusRidgeRegressor"]

_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


class UserRidgeRegressor(BaselineRegressor):
    """Per-user ridge on the rater's own ratings only, over frozen image embeddings.

    The training raters are used only to standardize the features;
    :meth:`~sklearn_piaa.baselines.BaselineRegressor.personalize` fits ``y ~ b + Z w``
    on the support images with the penalty chosen by efficient leave-one-out
    cross-validation. The honest lower bar: what a rater's own few ratings say on
    their own, as in the per-user ridge of Ryu and Yanaka [1]_.

    Parameters
    ----------
    backbone, backbone_weights, alphas, batch_size, cache_dir, device
        Shared by the baselines: see :class:`~sklearn_piaa.baselines.BaselineRegressor`
        (by default ``backbone=None``: ``X`` holds cached embeddings).
    random_state : int, RandomState instance or None, default=None
        Seeds only the initial weights of a backbone without pretrained ones (as
        ``tiny_cnn``); the method itself is deterministic.

    Attributes
    ----------
    mean_score_ : float
        Mean training score: the zero-shot prediction (constant, so the prior's SROCC
        is undefined).
    input_, scaler_, score_range_, raters_
        See :class:`~sklearn_piaa.baselines.BaselineRegressor`.

    See Also
    --------
    ConsensusRidgeRegressor : the same ridge on the residual of a consensus model.

    References
    ----------
    .. [1] Ryu and Yanaka, per-user ridge over frozen image features as a personalized
       aesthetics baseline, Findings of ACL, 2026.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_piaa.baselines import UserRidgeRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(200, 6)
    >>> y = X[:, 0] + 0.1 * rng.randn(200)
    >>> model = UserRidgeRegressor().fit(X, y, groups=np.repeat([0, 1], 100))
    >>> user = model.personalize(X[:20], y[:20])
    >>> bool(np.corrcoef(user.predict(X[20:]), y[20:])[0, 1] > 0.9)
    True
    """

    #: Its zero-shot scores are one constant: the prior's SROCC is undefined by design,
    #: which evaluations then leave unreported rather than warn about at every draw.
    _constant_prior = True

    def __init__(self, backbone=None, backbone_weights=None, alphas=_ALPHAS, batch_size=64,
                 cache_dir=None, device="cpu", random_state=None):
        super().__init__(backbone=backbone, backbone_weights=backbone_weights, alphas=alphas,
                         batch_size=batch_size, cache_dir=cache_dir, device=device,
                         random_state=random_state)

    def _fit_prior(self, Z, inverse, y, groups, rng):
        self.mean_score_ = float(y.mean())

    def _base(self, Z):
        return np.full(len(Z), self.mean_score_)


class ConsensusRidgeRegressor(UserRidgeRegressor):
    """Consensus ridge over embeddings plus a shrunk per-user residual ridge.

    ``fit`` trains a ridge regression ``g`` of each training image's mean score (over
    its ratings: a rater's repeated ratings of an image each count) on the
    standardized embedding;
    :meth:`~sklearn_piaa.baselines.BaselineRegressor.personalize` fits a second ridge
    to the rater's residual ``y - g(x)`` with the penalty chosen by leave-one-out on
    the support set, so that with few or noisy ratings the model shrinks back to the
    consensus. It is PAM's generic-plus-residual scheme [1]_ with the embedding as the
    only feature, and the strong simple baseline of per-user ridge over frozen
    features [2]_.

    Parameters
    ----------
    backbone, backbone_weights, alphas, batch_size, cache_dir, device
        Shared by the baselines: see :class:`~sklearn_piaa.baselines.BaselineRegressor`
        (by default ``backbone=None``: ``X`` holds cached embeddings).
    random_state : int, RandomState instance or None, default=None
        Seeds only the initial weights of a backbone without pretrained ones (as
        ``tiny_cnn``); the method itself is deterministic.

    Attributes
    ----------
    generic_ : RidgeCV
        The consensus model on standardized features.
    input_, scaler_, score_range_, raters_
        See :class:`~sklearn_piaa.baselines.BaselineRegressor`.

    See Also
    --------
    PAMRegressor : the same scheme over aesthetic attributes and content classes.

    References
    ----------
    .. [1] J. Ren, X. Shen, Z. Lin, R. Mech and D. J. Foran, "Personalized Image
       Aesthetics", ICCV 2017.
    .. [2] Ryu and Yanaka, Findings of ACL, 2026.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_piaa.baselines import ConsensusRidgeRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(300, 6)
    >>> y = X[:, 0] + 0.1 * rng.randn(300)
    >>> model = ConsensusRidgeRegressor().fit(X, y, groups=np.repeat([0, 1, 2], 100))
    >>> model.predict(X[:3]).shape
    (3,)
    """

    _constant_prior = False  # the consensus ranks images

    def _fit_prior(self, Z, inverse, y, groups, rng):
        self.generic_ = _ridge(Z, consensus_scores(y, inverse, len(Z)), self.alphas)

    def _base(self, Z):
        return self.generic_.predict(Z)
