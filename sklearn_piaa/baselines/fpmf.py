"""FPMF: feature-based probabilistic matrix factorization (O'Donovan et al., 2014)."""

import numbers

import numpy as np
from sklearn.utils._param_validation import Interval

from .._tasks import _sorted_raters
from ._base import BaselineRegressor, _fit_pca

__all__ = ["FPMFRegressor"]


def _solve(A, b, penalty):
    return np.linalg.solve(A + np.diag(penalty), b)


def _alternate(F, yc, user, P, b, W, lam, sweeps):
    """``sweeps`` alternating ridge fits of the raters' ``(P, b)`` and the item map ``W``.

    ``F`` (n, r): item features of the n ratings; ``yc`` (n,): the ratings less their
    mean; ``user`` (n,): each rating's rater index into ``P`` (U, k) and ``b`` (U,);
    ``W`` (r, k). Both ridges need only each rater's sums over their ratings, fixed
    across sweeps: ``G_u = F_u' F_u``, ``s_u = F_u' 1``, ``h_u = F_u' yc_u`` and
    ``c_u = 1' yc_u``. (Built from the ratings, the item map's design matrix was
    n x k*r floats -- GBs at a million ratings -- and every sweep scanned all ratings
    once per rater.)
    """
    n_users, k = P.shape
    r = F.shape[1]
    # float64 sums, as the products with the float64 factors were
    F, yc = np.asarray(F, dtype=np.float64), np.asarray(yc, dtype=np.float64)
    P, b = P.copy(), b.copy()
    counts = np.bincount(user, minlength=n_users)
    order = np.argsort(user, kind="stable")
    starts = np.r_[0, np.cumsum(counts)]
    Fo, yo = F[order], yc[order]
    G = np.stack([Fo[i:j].T @ Fo[i:j] for i, j in zip(starts[:-1], starts[1:])])
    S = np.add.reduceat(Fo, starts[:-1], axis=0)
    H = np.add.reduceat(Fo * yo[:, None], starts[:-1], axis=0)
    c = np.add.reduceat(yo, starts[:-1])
    for _ in range(sweeps):
        # Raters: a ridge of (p_u, b_u) on the item factors F_u W and a bias column,
        # the bias unpenalized.
        # All raters' (k+1)-square systems in one batched solve: a loop over 10,000
        # raters' small systems took 20 s of a 28 s fit.
        SW = S @ W
        A = np.empty((n_users, k + 1, k + 1))
        A[:, :k, :k] = W.T @ G @ W
        A[:, :k, k] = A[:, k, :k] = SW
        A[:, k, k] = counts + 1e-8
        A[:, np.arange(k), np.arange(k)] += lam * counts[:, None]
        rhs = np.concatenate([H @ W, c[:, None]], axis=1)
        sol = np.linalg.solve(A, rhs[:, :, None])[:, :, 0]
        P, b = sol[:, :k], sol[:, k]
        # Item map: yc - b_u = vec(W) . kron(p_u, f), one ridge over all ratings:
        # D'D = sum_u kron(p_u p_u', G_u) and D't = sum_u kron(p_u, h_u - b_u s_u).
        outer = (P[:, :, None] * P[:, None, :]).reshape(n_users, k * k)
        DtD = (outer.T @ G.reshape(n_users, r * r)).reshape(k, k, r, r)
        DtD = DtD.transpose(0, 2, 1, 3).reshape(k * r, k * r)
        Dtt = (P.T @ (H - b[:, None] * S)).reshape(k * r)
        W = _solve(DtD, Dtt, np.full(k * r, lam * len(F))).reshape(k, r).T
    return P, b, W


class FPMFRegressor(BaselineRegressor):
    """Feature-based matrix factorization: ratings from user factors and mapped features.

    The model of O'Donovan, Agarwala and Hertzmann [1]_, used as a personalized
    aesthetics baseline by Ren et al. [2]_: rater ``u``'s score of image ``x`` is

        y_u(x) = mu + b_u + p_u . (W f(x)),

    where ``f(x)`` is the image's feature vector (here the standardized embedding
    reduced to ``n_components`` principal components), ``W`` maps it to
    ``n_factors`` latent item factors and ``p_u`` are the rater's factors. ``fit``
    learns ``W``, ``p_u`` and ``b_u`` of the training raters by alternating ridge
    (MAP) updates. A new rater's ``b_u`` and ``p_u`` are fitted by ridge on their
    support images with ``W`` frozen, shrunk towards the mean training rater with a
    penalty chosen by leave-one-out; the zero-shot prediction is the mean rater's.

    Parameters
    ----------
    n_factors : int, default=8
        Latent dimension of ``p_u`` and ``W f(x)``.
    n_components : int, default=32
        Principal components of the embedding that form ``f(x)``.
    l2 : float, default=0.01
        Gaussian-prior penalty on ``W`` and on the training raters' factors, per rating.
    max_iter : int, default=30
        Alternating updates.
    backbone, backbone_weights, alphas, batch_size, cache_dir, device
        Shared by the baselines: see :class:`~sklearn_piaa.baselines.BaselineRegressor`
        (by default ``backbone=None``: ``X`` holds cached embeddings).
    random_state : int, RandomState instance or None, default=None
        Seeds the initial factors.

    Attributes
    ----------
    pca_ : PCA
        ``f``: the embedding's principal components.
    item_map_ : ndarray of shape (n_kept, n_factors)
        ``W`` (transposed): item factors are ``f(x) @ item_map_``. ``n_kept`` is
        ``pca_.n_components_``: ``n_components`` at most, fewer when the features or
        the distinct training images are fewer.
    user_factors_ : ndarray of shape (n_raters, n_factors)
        ``p_u`` of the training raters (order of ``raters_``).
    user_bias_ : ndarray of shape (n_raters,)
    mean_ : float
        ``mu``.
    score_scale_ : float
        Standard deviation of the training scores: the factors are fitted in its units,
        so that the results do not depend on the scale's (0-1 or 0-500).
    input_, scaler_, score_range_, raters_
        See :class:`~sklearn_piaa.baselines.BaselineRegressor`.
    n_iter_ : int
        Alternating updates run (``max_iter``: there is no stopping rule).

    Notes
    -----
    Where this approximates [1]_: maximum a posteriori estimates by alternating ridge
    updates instead of sampling or gradient training, and the new rater's factors are
    shrunk towards the mean training rater rather than towards zero; the features are
    a frozen backbone's embedding instead of colour-palette features.

    References
    ----------
    .. [1] P. O'Donovan, A. Agarwala and A. Hertzmann, "Collaborative Filtering of
       Color Aesthetics", Computational Aesthetics (Eurographics), 2014.
    .. [2] J. Ren, X. Shen, Z. Lin, R. Mech and D. J. Foran, "Personalized Image
       Aesthetics", ICCV 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_piaa.baselines import FPMFRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(300, 6)
    >>> y = X[:, 0] + 0.1 * rng.randn(300)
    >>> fpmf = FPMFRegressor(n_factors=2, n_components=4, random_state=0)
    >>> fpmf = fpmf.fit(X, y, groups=np.repeat([0, 1, 2], 100))
    >>> fpmf.item_map_.shape
    (4, 2)
    """

    _parameter_constraints = {
        **BaselineRegressor._parameter_constraints,
        "n_factors": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "l2": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(self, n_factors=8, n_components=32, l2=0.01, max_iter=30, backbone=None,
                 backbone_weights=None, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0), batch_size=64,
                 cache_dir=None, device="cpu", random_state=None):
        self.n_factors = n_factors
        self.n_components = n_components
        self.l2 = l2
        self.max_iter = max_iter
        super().__init__(backbone=backbone, backbone_weights=backbone_weights, alphas=alphas,
                         batch_size=batch_size, cache_dir=cache_dir, device=device,
                         random_state=random_state)

    def _fit_prior(self, Z, inverse, y, groups, rng):
        self.pca_ = _fit_pca(Z, self.n_components, rng, len(inverse))
        F = self.pca_.transform(Z) / np.sqrt(self.pca_.explained_variance_[0])
        F = F[inverse]  # one row per rating
        # np.unique's order where it can sort; mixed int/str ids (which it cannot) too
        users = _sorted_raters(set(groups.tolist()))
        code = {u: i for i, u in enumerate(users)}
        user = np.fromiter((code[g] for g in groups.tolist()), dtype=np.intp, count=len(groups))
        k, r = self.n_factors, F.shape[1]
        self.mean_ = float(y.mean())
        # In units of the scores' spread: the penalties on both factors of a product
        # otherwise weigh differently on 1-5 and 0-500 ratings (other rankings)
        self.score_scale_ = float(y.std()) or 1.0
        y = (y - self.mean_) / self.score_scale_ + self.mean_
        P = 0.1 * rng.standard_normal((len(users), k))
        b = np.zeros(len(users))
        W = 0.1 * rng.standard_normal((r, k))
        P, b, W = _alternate(F, y - self.mean_, user, P, b, W, self.l2, self.max_iter)
        self.item_map_, self.user_factors_, self.user_bias_ = W, P, b
        self.n_iter_ = self.max_iter  # a fixed number of sweeps, no stopping rule

    def _item_factors(self, Z):
        F = self.pca_.transform(Z) / np.sqrt(self.pca_.explained_variance_[0])
        return F @ self.item_map_

    def _base(self, Z):
        # The mean training rater: the zero-shot prediction and the new rater's anchor.
        scale = getattr(self, "score_scale_", 1.0)  # files saved before it: raw units
        return self.mean_ + scale * (self.user_bias_.mean()
                                     + self._item_factors(Z) @ self.user_factors_.mean(axis=0))

    def _user_features(self, Z):
        return self._item_factors(Z)
