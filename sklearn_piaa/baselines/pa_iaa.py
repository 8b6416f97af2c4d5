"""PA_IAA (Li, Zhu et al., IEEE TIP 2020): personality-assisted multi-task aesthetics."""

import numbers
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._device import resolve_device, seeded, unpickled_device
from ..nn import PersonalityNet
from ._base import BaselineRegressor, consensus_scores

__all__ = ["PAIAARegressor", "liked_image_traits"]

_HOW = ("PAIAARegressor needs Big-Five personality labels: pass personality=a mapping "
        "rater id -> 5 traits in [-1, 1] (e.g. each PARA rater's scores from "
        "PARA-UserInfo.csv, rescaled; or the personality table that "
        "make_aesthetic_benchmark(personality=True) returns).")


def _frame_traits(frame):
    """A DataFrame (or Series) of traits as a dict rater -> row, checked."""
    if getattr(frame, "ndim", 2) == 1:  # a Series: one trait per rater
        frame = frame.to_frame()
    index = frame.index
    duplicated = list(dict.fromkeys(index[index.duplicated()].tolist()))
    if duplicated:
        # A dict built from it would silently keep the last row of each.
        raise ValueError(f"personality has more than one row for rater(s) "
                         f"{duplicated[:10]!r}; give each rater one row of traits.")
    text = [c for c, t in frame.dtypes.items() if getattr(t, "kind", "O") not in "iuf"]
    if text:
        raise ValueError(f"personality column(s) {text!r} are not numeric; every column is "
                         f"taken as a trait, so select the trait columns only.")
    return {r: np.asarray(v, dtype=float) for r, v in
            zip(index.tolist(), frame.to_numpy(dtype=float, na_value=np.nan))}


def _trait_table(personality, raters):
    if personality is None:
        raise ValueError(f"personality=None: {_HOW}")
    if hasattr(personality, "to_dict") and hasattr(personality, "index"):  # pandas
        personality = _frame_traits(personality)
    if not isinstance(personality, Mapping):
        raise ValueError(f"personality must be a mapping or DataFrame; got "
                         f"{type(personality).__name__}. {_HOW}")
    # Rater 7 and a table's '7' (a CSV's ids are text) are one rater; exact keys first.
    by_text = {str(k).strip(): k for k in personality}
    keys = {r: r if r in personality else by_text.get(str(r).strip()) for r in raters}
    missing = [r for r, k in keys.items() if k is None]
    if missing:
        raise ValueError(f"personality has no traits for {len(missing)} training rater(s): "
                         f"{missing[:10]!r} (its ids include {list(personality)[:5]!r}). "
                         "Every training rater needs a row.")
    rows = []
    for r in raters:
        try:
            rows.append(np.asarray(personality[keys[r]], dtype=float).reshape(-1))
        except (TypeError, ValueError):
            raise ValueError(f"personality traits of rater {r!r} are not numbers: "
                             f"{personality[keys[r]]!r}.") from None
    empty = [r for r, row in zip(raters, rows) if len(row) == 0]
    if empty:
        raise ValueError(f"personality has no traits (an empty row) for rater(s) "
                         f"{empty[:10]!r}.")
    lengths = [len(row) for row in rows]
    usual = max(set(lengths), key=lengths.count)
    odd = [(r, n) for r, n in zip(raters, lengths) if n != usual]
    if odd:
        raise ValueError(f"personality must give every rater the same number of traits: "
                         f"most have {usual}, but "
                         + ", ".join(f"{r!r} has {n}" for r, n in odd[:10]) + ".")
    table = np.array(rows)
    bad = [r for r, row in zip(raters, table)
           if not np.isfinite(row).all() or np.abs(row).max() > 1]
    if bad:
        raise ValueError(f"personality traits must be finite numbers in [-1, 1]; not so for "
                         f"rater(s) {bad[:10]!r}. Rescale e.g. 1-5 scores as (t - 3) / 2.")
    return table


def liked_image_traits(y, groups, inverse, n_images, traits, raters):
    """Mean traits of the raters who liked each image (scored it above their own mean).

    Parameters
    ----------
    y, groups, inverse : ndarray of shape (n_ratings,)
        Scores, rater ids and image index of each rating.
    n_images : int
    traits : ndarray of shape (n_raters, n_traits)
        Rows in the order of ``raters``.
    raters : list

    Returns
    -------
    labels : ndarray of shape (n_images, n_traits)
        0 where nobody liked the image.
    liked : ndarray of bool, shape (n_images,)
        Whether anybody liked the image.
    """
    code = {r: i for i, r in enumerate(raters)}
    user = np.fromiter((code[g] for g in groups.tolist()), dtype=np.intp, count=len(y))
    mean = np.bincount(user, weights=y) / np.bincount(user)
    # A rating equal to its rater's mean is not above it, whatever the rounding of the
    # mean: on 0.2-1.0 (1-5 stars / 5) the rounding alone decided, unlike on 1-5.
    tol = 1e-6 * max(float(np.ptp(y)) if len(y) else 0.0, np.finfo(np.float64).tiny)
    like = y - mean[user] > tol
    count = np.bincount(inverse[like], minlength=n_images)
    labels = np.zeros((n_images, traits.shape[1]))
    np.add.at(labels, inverse[like], traits[user[like]])
    return labels / np.maximum(count, 1)[:, None], count > 0


class PAIAARegressor(BaselineRegressor):
    """PA_IAA: generic aesthetics plus per-user fusion of predicted personality traits.

    Personality-assisted multi-task learning of Li, Zhu et al. [1]_: one network with a
    generic-aesthetics head and a personality head, trained jointly on the training
    raters. The generic head regresses each image's mean score; the personality head
    regresses the Big-Five traits of the people who like the image (the mean traits
    of the training raters who scored it above their own mean). A new rater's score is

        y_u(x) = generic(x) + b_u + sum_k p_k(x) w_uk,

    with the weights ``w_u`` (and bias ``b_u``) fitted by ridge on the support images,
    penalty chosen by leave-one-out.

    Parameters
    ----------
    personality : mapping or DataFrame, default=None
        Rater id -> Big-Five traits in [-1, 1], for every training rater (the PARA
        layout of ``PARA-UserInfo.csv``, aggregated here over the images each rater
        liked). Required.
    hidden_size : int, default=128
    dropout : float, default=0.2
    personality_weight : float, default=1.0
        Weight of the personality loss against the generic loss.
    max_epochs : int, default=100
    lr : float, default=1e-3
    train_batch_size : int, default=64
    weight_decay : float, default=1e-4
    backbone, backbone_weights, alphas, batch_size, cache_dir, device
        Shared by the baselines: see :class:`~sklearn_piaa.baselines.BaselineRegressor`
        (by default ``backbone=None``: ``X`` holds cached embeddings).
    random_state : int, RandomState instance or None, default=None
        Seeds the network's initialization and mini-batches.

    Attributes
    ----------
    module_ : PersonalityNet
        The trained multi-task network (eval mode).
    n_traits_ : int
    history_ : ndarray of shape (max_epochs,)
        Mean training loss per epoch (of the standardized scores).
    score_mean_, score_scale_ : float
        Mean and standard deviation of the images' consensus scores: the generic head
        is trained on them standardized, so the results do not depend on the scale's
        units (0-1 or 0-500).
    input_, scaler_, score_range_, raters_
        See :class:`~sklearn_piaa.baselines.BaselineRegressor`.

    Notes
    -----
    Where this approximates [1]_: the network is a one-layer head on frozen embeddings
    rather than a fine-tuned deep network; the per-user fusion weights are constants
    fitted by ridge instead of image-dependent weights learned by fine-tuning; the
    personality labels of an image come from a rater-level table, aggregated over
    the images each rater liked (as for PARA), not from a PsychoFlickr image table.

    References
    ----------
    .. [1] L. Li, H. Zhu, S. Zhao, G. Ding and W. Lin, "Personality-Assisted
       Multi-Task Learning for Generic and Personalized Image Aesthetics Assessment",
       IEEE Transactions on Image Processing, 29:3898-3910, 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_piaa.baselines import PAIAARegressor
    >>> rng = np.random.RandomState(0)
    >>> X, users = rng.randn(300, 6), np.repeat(["a", "b", "c"], 100)
    >>> y = X[:, 0] + 0.1 * rng.randn(300)
    >>> traits = {"a": [0.5, 0, 0, 0, 0], "b": [-0.5, 0, 0, 0, 0], "c": [0, 0.3, 0, 0, 0]}
    >>> model = PAIAARegressor(personality=traits, max_epochs=5, random_state=0)
    >>> model.fit(X, y, groups=users).personalize(X[:10], y[:10]).predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints = {
        **BaselineRegressor._parameter_constraints,
        "personality": "no_validation",  # checked in fit, with a message on what to give
        "hidden_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "personality_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "train_batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
    }

    def __init__(self, personality=None, hidden_size=128, dropout=0.2, personality_weight=1.0,
                 max_epochs=100, lr=1e-3, train_batch_size=64, weight_decay=1e-4,
                 backbone=None, backbone_weights=None, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0),
                 batch_size=64, cache_dir=None, device="cpu", random_state=None):
        self.personality = personality
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.personality_weight = personality_weight
        self.max_epochs = max_epochs
        self.lr = lr
        self.train_batch_size = train_batch_size
        self.weight_decay = weight_decay
        super().__init__(backbone=backbone, backbone_weights=backbone_weights, alphas=alphas,
                         batch_size=batch_size, cache_dir=cache_dir, device=device,
                         random_state=random_state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True  # on GPU; on CPU a fixed random_state reproduces
        return tags

    def __setstate__(self, state):
        super().__setstate__(state)
        if "module_" in state:  # fitted: its network was pickled as a CPU copy
            self.device = unpickled_device(self.device)
            self.module_.to(resolve_device(self.device))

    def _fit_prior(self, Z, inverse, y, groups, rng):
        raters = sorted(set(groups.tolist()), key=str)
        traits = _trait_table(self.personality, raters)
        labels, liked = liked_image_traits(y, groups, inverse, len(Z), traits, raters)
        device = resolve_device(self.device)
        seed = rng.randint(np.iinfo(np.int32).max)
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
        consensus = consensus_scores(y, inverse, len(Z))
        # Standardized: plain squared error on raw scores (a 0-500 slider) dwarfs the
        # trait loss and the learning rate's reach, and the results depended on the
        # scale's units (SROCC 0.35 on 1-5, 0.11 on the same ratings x 100).
        self.score_mean_ = float(consensus.mean())
        self.score_scale_ = float(consensus.std()) or 1.0
        x = as_t(Z)
        g = as_t((consensus - self.score_mean_) / self.score_scale_)
        t, m = as_t(labels), as_t(liked)
        with seeded(seed, device):
            module = PersonalityNet(Z.shape[1], self.hidden_size, traits.shape[1],
                                    self.dropout).to(device)
            self.history_ = self._train(module, x, g, t, m)
        self.module_ = module.eval()
        self.n_traits_ = traits.shape[1]

    def _train(self, module, x, g, t, m):
        opt = torch.optim.Adam(module.parameters(), lr=self.lr,
                               weight_decay=self.weight_decay)
        history = np.empty(self.max_epochs)
        module.train()
        for epoch in range(self.max_epochs):
            order = torch.randperm(len(x), device=x.device)
            total = 0.0
            for start in range(0, len(x), self.train_batch_size):
                b = order[start:start + self.train_batch_size]
                score, traits = module(x[b])
                # Images nobody liked carry no personality label: mask them out.
                sq = ((traits - t[b]) ** 2).mean(1) * m[b]
                trait_loss = sq.sum() / m[b].sum().clamp(min=1)
                loss = torch.mean((score - g[b]) ** 2) + self.personality_weight * trait_loss
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(b)
            history[epoch] = total / len(x)
        return history

    def _outputs(self, Z):
        x = torch.as_tensor(Z, dtype=torch.float32, device=next(self.module_.parameters()).device)
        with torch.inference_mode():
            score, traits = self.module_(x)
        # .float(): under a caller's bfloat16 autocast the outputs are bfloat16, which
        # numpy does not take
        return (score.float().cpu().numpy().astype(np.float64),
                traits.float().cpu().numpy().astype(np.float64))

    def _base(self, Z):
        # files saved before the scores were standardized have neither
        scale, mean = getattr(self, "score_scale_", 1.0), getattr(self, "score_mean_", 0.0)
        return self._outputs(Z)[0] * scale + mean

    def _user_features(self, Z):
        return self._outputs(Z)[1]

    def predict_personality(self, X):
        """Predicted Big-Five traits of the people who would like each image.

        Parameters
        ----------
        X : array-like or list

        Returns
        -------
        ndarray of shape (n_samples, n_traits)
        """
        check_is_fitted(self, "module_")
        return self._user_features(self._transform(X))
