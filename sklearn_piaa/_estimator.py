"""MetaAestheticRegressor: meta-train an aesthetic prior over raters, personalize it."""

import copy
import difflib
import hashlib
import inspect
import math
import numbers
import os
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    Interval,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import check_is_fitted

from ._checkpoint import Checkpointer, fingerprint
from ._device import PickledOnCPU, resolve_device, seeded, trains, unpickled_device
from ._diverged import LEVELS, check_trained, score_levels
from ._features import (
    DECODED_CACHE,
    FeatureInput,
    ImageDataset,
    ImageEmbedder,
    ImageInput,
    backbone_fingerprint,
    drop_unreadable,
    far_rows_checked,
    image_reader,
    run_keys,
    unreadable_rows,
)
from ._inputs import (
    FEATURES,
    check_score_range,
    check_scores,
    check_seed,
    input_kind,
    is_count,
    n_samples,
    refuse_one_row,
    stray_scores,
    warn_if_coarse_range,
    warn_if_float32_merges,
    with_rows,
)
from ._io import check_writable_dir, folder_path
from ._messages import (
    listing,
    pass_score_range,
    row_numbers,
    score_range_given,
    scores_given,
)
from ._params import NumbersNotBools, refuse_bool_numbers
from ._personalize import PersonalizedNet, _augmenting, seeded_split
from ._progress import progress
from ._tasks import NO_GROUPS, as_tasks
from ._warnings import PIAAWarning, warn_caller
from .meta import ALGORITHMS
from .nn import LOSSES, AestheticHead, AestheticLoss, AestheticNet
from .nn.backbones import SHIPS_WEIGHTS, owned_backbone
from .nn.head import head_of
from .nn.losses import loss_unit

__all__ = ["MetaAestheticRegressor"]

_META_ADVICE = ("inner_lr, outer_lr or inner_steps (--inner-lr, --outer-lr, --inner-steps "
                "on the command line)")


#: Head-only fine-tuning: Adam's learning rate at batches of 10 images and the number of
#: batches per epoch for larger raters (chosen on benchmarks/finetune_defaults.py).
_HEAD_LR, _HEAD_MIN_BATCH, _HEAD_BATCHES = 3e-5, 10, 4


#: The settings the fitted network is built from. ``set_params`` without a refit changes
#: them on the estimator but not in the network: saving, personalizing and the
#: fine-tuning defaults read them as fitted (``_fitted``).
_ARCHITECTURE = ("backbone", "backbone_weights", "train_backbone", "hidden_sizes", "dropout",
                 "mixed_precision", "device", "cache_dir")


#: The algorithms whose outer update learns from the query set after the inner loop
#: adapted to the support set; the others merge the two sets (or learn nothing).
_ON_QUERY = ("blg", "maml", "fomaml")


def another_scale(y, low, high, lowest_fifth=True, highest_fifth=False):
    """How ``y`` sits in a prior's range ``(low, high)`` if it looks like another scale.

    Ratings on 1-10 against a prior of 0-500 fill a sliver of the head's output range;
    on 0-100, its lowest fifth. Fine-tuning squeezes such a scale into a corner of the
    sigmoid and learns little (measured: 0.33 -> 0.15 SROCC at 40 images). Scores that
    all lie in the highest fifth are not taken for another scale: a smaller scale sits
    at the bottom of the range or inside it, and raters who like everything on the
    prior's own scale do sit there (2 of the 100 real raters of ``../shared``'s liking
    set, 433-499.5 and 496.5-500 on its 0-500 slider).

    Parameters
    ----------
    y : array-like of shape (n,)
        A rater's scores.
    low, high : float
        The prior's output range.
    lowest_fifth : bool, default=True
        Whether scores that all lie in the range's lowest fifth look like another
        scale. Among training raters they need not: on a discrete scale a harsh rater
        of the same scale gives only its lowest marks (1s and 2s of 1-10).
    highest_fifth : bool, default=False
        Whether scores that all lie in the range's highest fifth do. One rater who
        likes everything sits there; all the ratings of a data set, pooled, do not
        (a 0-100 "like" slider where everyone rated 90-100 fitted with
        ``score_range=(0, 100)``: prior SROCC 0.65 -> 0.10, measured).

    Returns
    -------
    str or None
        E.g. ``"span 2.0%"`` or ``"all lie in the lowest fifth"`` (of the range); None
        when ``y`` has fewer than 5 scores, is constant, or looks like the prior's own
        scale.
    """
    y = np.asarray(y, dtype=np.float64)
    if len(y) < 5:
        return None
    width = high - low
    spread = float(y.max() - y.min()) / width
    if spread <= 0:
        return None
    if high - float(y.min()) <= 0.2 * width and not highest_fifth:
        return None
    if spread < 0.05:
        return f"span {100 * spread:.1f}%"
    if high - float(y.min()) <= 0.2 * width:
        return "all lie in the highest fifth"
    if lowest_fifth and float(y.max()) - low <= 0.2 * width:
        return "all lie in the lowest fifth"
    return None


def history_label(algorithm, loss):
    """How the progress bar names the loss of ``history_``: ``"query_mse"``, ``"mse"``,
    ``"query_loss"`` or ``"loss"``.

    "query_mse" alone named a rank loss, and the loss of Reptile's merged sets, alike.

    Parameters
    ----------
    algorithm, loss : str
        The estimator's parameters.

    Returns
    -------
    str
    """
    on_query = algorithm in _ON_QUERY  # see history_'s description
    return ("query_" if on_query else "") + ("mse" if loss == "mse" else "loss")


def scores_outside(y, low, high):
    """Mask of the scores a head of range ``(low, high)`` cannot reach.

    Compared in float32, as the network trains and as ``fit`` measured the range: 0.1
    as a float32 rating is 0.10000000149.

    Parameters
    ----------
    y : array-like of shape (n,)
    low, high : float

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    y = np.asarray(y, dtype=np.float32)
    return (y < np.float32(low)) | (y > np.float32(high))


#: Set while an evaluation personalizes a rater it has already checked (and named in
#: one warning): the per-draw warning would repeat it dozens of times. Equal scores
#: (``warn_if_unranked``) are left to the evaluation's warning of undefined SROCC.
_SCALE_CHECKED = threading.local()


def _copy_rng(rng):
    copy_ = np.random.RandomState()
    copy_.set_state(rng.get_state())
    return copy_


def _set_score_range(module, score_range):
    """Map every :class:`AestheticHead` of ``module`` onto ``score_range``."""
    for m in module.modules():
        if isinstance(m, AestheticHead):
            m.set_score_range(*score_range)


def warn_identical_features():
    """Warn that every training image has the same features: nothing tells them apart.

    Zeroed embeddings (a broken extraction) or features with a large common offset,
    whose differences float32 cannot hold (``X + 1e8``), trained a prior that scores
    every image alike, and the collapse check stayed quiet: the prior told no scores
    apart before training either.
    """
    warn_caller("every feature column is constant: all training images have the same "
                "features (in float32, which the models compute in and which also loses "
                "differences far below a column's common offset, as in X + 1e8), so "
                "nothing tells the images apart and every image gets one score. Check "
                "the feature extraction, or standardize each column (mean 0, standard "
                "deviation 1) before fit.")


def warn_if_stray(tasks, consequence):
    """Warn when a few ratings far beyond all others set the score range taken from them.

    One "99" among ratings of 1-5 (a code for a missing rating) made the head map into
    1-99: every other rating squeezed into a twentieth of its output, a prior that ranked
    nothing, and later warnings that blamed the test raters' scales. Strays are told
    by :func:`~sklearn_piaa._inputs.stray_scores` (up to 5% of the ratings, beyond a
    wide gap); the 0.5% quantiles of an earlier check missed a stray among 100-199
    ratings, or 1% of them among 1,000.

    Parameters
    ----------
    tasks : TaskSet
    consequence : str
        What the stretched range does to this model and what to do, ending the warning.
    """
    y = np.asarray(tasks.y, dtype=np.float64)
    if len(y) < 20:
        return
    far, (core_low, core_high) = stray_scores(y)
    if not far.any():
        return
    warn_caller(
        f"the score range is taken from the ratings as ({y.min():g}, {y.max():g}), but "
        f"all other ratings lie within ({core_low:g}, {core_high:g}); {int(far.sum())} lie "
        f"far outside: {_scores_at(y, far, tasks)}. Codes for missing ratings? "
        + consequence)


def warn_constant_raters(tasks):
    """Warn naming the training raters who gave every image the same score.

    They order no pair of images (their SROCC is undefined) and so teach nothing about
    how people rank images, yet every estimator's fit trains on them as on any other
    rater (meta-training draws them as often; a baseline's consensus averages them
    in): 1 of the 100 raters of ``../shared``'s liking set rated all 55 images 500, and
    was taken without a word. Every estimator's ``fit`` calls it, so the warning reads
    the same whichever is fitted. The one rater of a fit without groups is left to that
    case's own warning.

    Parameters
    ----------
    tasks : TaskSet
        The raters as meta-trained (after unreadable images are left out).
    """
    same = {r: v for r, v in tasks.constant_raters().items() if r != NO_GROUPS}
    if not same:
        return
    sizes = tasks.sizes()
    warn_caller(
        f"{len(same)} of {len(tasks)} training rater(s) gave every image the same score: "
        + listing(f"{r!r} ({sizes[r]} images, all {v:g})" for r, v in same.items())
        + ". Their ratings teach nothing about how people rank images (their SROCC is "
        "undefined), yet fit trains on them as on any other rater's. "
        "Leave them out unless that is meant: TaskSet.subset, or drop their rows of X, y "
        "and groups (the sklearn-piaa meta-train command: --drop-constant-raters).")


def warn_repeated_images(tasks, stacklevel=None):
    """Warn when raters rated an image more than once, naming them.

    A repeat can be drawn into both a rater's support and query set. Evaluating, SROCC
    then rewards memory, not taste (tripled rows moved pers@100 from 0.271 to 0.303 in
    an audit); meta-training with a split (BLG, MAML, FOMAML), the prior is trained to
    recall on the query set a score it was just shown on the support set. Images are
    told apart as :meth:`TaskSet.repeated_images` tells them: by file path or feature
    row; PIL images and pixel arrays are not compared.

    Parameters
    ----------
    tasks : TaskSet
    stacklevel : int, default=None
        For the test raters of an evaluation: the ``warnings.warn`` stacklevel, from
        this function, of the public caller's caller (a scorer is called by
        scikit-learn, which ``warn_caller`` would skip to the user's line). ``None``:
        the raters are the training raters of ``fit``, and the warning is shown at
        the user's line.
    """
    repeats = tasks.repeated_images()
    if not repeats:
        return
    named = ", ".join(f"{r!r} ({n})" for r, n in list(repeats.items())[:5])
    named = f"({named}{' ...' if len(repeats) > 5 else ''} repeated rows)"
    if input_kind(tasks.X) == FEATURES:
        # equal feature rows may be two files of one photo, which no averaging by name
        # merges
        named += (" (rows of equal features count as one image: copies of a photo under "
                  "other names too, which are best dropped)")
    if stacklevel is not None:
        warnings.warn(
            f"{len(repeats)} test rater(s) rated an image more than once {named}: a repeat "
            "can fall in both the support and the query set, which inflates SROCC. Average "
            "each rater's repeats first (read_ratings does).", PIAAWarning,
            stacklevel=stacklevel)
        return
    warn_caller(
        f"{len(repeats)} of {len(tasks)} training rater(s) rated an image more than once "
        f"{named}: a repeat can fall in both the support and the query set of "
        "meta-training, which then rewards recalling a score just shown over adapting to "
        "taste. Average each rater's repeats first (read_ratings does).")


def _plain(value):
    """A setting as plain Python: equal settings of other types hash alike in a run's
    key (``np.float64(1e-3)`` from a search's grid and ``1e-3``, ``[8]`` and ``(8,)``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value


def another_scale_raters(tasks, low, high, raters=None, lowest_fifth=True):
    """The raters of ``tasks`` whose scores look like another scale than ``(low, high)``.

    Each rater's scores are judged by :func:`another_scale`, which the checks of test
    raters (:func:`check_scales`) and of training raters (:func:`warn_mixed_scales`)
    share, so that both name the same raters.

    Parameters
    ----------
    tasks : TaskSet
    low, high : float
        The range the scores are judged against.
    raters : iterable, default=None
        The raters of ``tasks`` to judge; ``None`` means all.
    lowest_fifth : bool, default=True
        As for :func:`another_scale`.

    Returns
    -------
    list of str
        E.g. ``"'u7' (1 to 5: span 0.8%)"``, one per such rater, in the order given.
    """
    return [_named_scale(r, y, where)
            for r, y, where in _judged_scales(tasks, low, high, raters, lowest_fifth)
            if where]


def _judged_scales(tasks, low, high, raters=None, lowest_fifth=True):
    """``(rater, scores, another_scale's verdict)`` for the raters of ``tasks``."""
    for r in tasks.raters if raters is None else raters:
        # the scores alone: tasks[r] also copies the rater's rows of X
        y = np.asarray(tasks.y[tasks.indices[r]], dtype=np.float64)
        yield r, y, another_scale(y, low, high, lowest_fifth)


def _named_scale(r, y, where=""):
    """``"'u7' (1 to 5: span 0.8%)"``: a rater, its scores' range and the verdict."""
    return f"{r!r} ({y.min():g} to {y.max():g}{': ' + where if where else ''})"


def warn_mixed_scales(tasks, score_range, cost, given=False, whose=None):
    """Warn naming the training raters whose scores look like another scale than the rest.

    Ratings of 1-5 mixed with ratings of 0-500 were fitted without a word: the score
    range, taken from all the ratings, became (0, 500), and the 1-5 raters' scores sat
    in under 1% of it, where the model's errors on them are next to nothing. Every
    estimator's ``fit`` calls it, so the warning reads the same whichever is fitted.
    Nothing is said when every rater looks so (only possible with a given
    ``score_range``: no rater differs from the rest), nor for one rater, nor when a few
    ratings lie far beyond all others (:func:`warn_if_stray`): a code such as 99 among
    ratings of 1-5 leaves every other rater in a corner of the range it stretches, and
    either that warning names it or a given ``score_range`` says it is a real rating.

    Parameters
    ----------
    tasks : TaskSet
        The raters as fitted (after unreadable images are left out).
    score_range : (float, float)
        The range the model maps into, or that the baseline's training scores span.
    cost : str
        What such raters do to this model, a sentence without its final period.
    given : bool, default=False
        Whether ``score_range`` was given (``score_range=``) rather than taken from
        the ratings, for the message.
    whose : str, default=None
        What the range is, for the message, when neither given nor taken from these
        ratings (a fitted base's training range); then every rater may be named.
    """
    low, high = score_range
    if len(tasks) < 2 or not high > low:
        return
    if len(tasks.y) >= 20 and stray_scores(tasks.y)[0].any():  # as warn_if_stray tells
        return
    # a narrow span only: a harsh rater of the others' scale sits in its lowest fifth
    judged = list(_judged_scales(tasks, low, high, lowest_fifth=False))
    odd = [_named_scale(r, y, where) for r, y, where in judged if where]
    # against a range of its own (a fitted base's), every rater can be on another scale
    if not odd or len(odd) == len(tasks) and whose is None:
        return
    if whose is None and not given and 2 * len(odd) > len(tasks):
        # Most raters in a sliver of the range taken from all the ratings: the few who
        # stretched it are the ones to rescale ("9 of 10 look like another scale" named
        # the nine raters of 1-5 beside one of 0-500)
        wide = [_named_scale(r, y) for r, y, where in judged if not where]
        warn_caller(
            f"{len(odd)} of {len(tasks)} training rater(s) have scores in a sliver of the "
            f"range ({low:g}, {high:g}) taken from all the ratings, which "
            f"{len(wide)} rater(s) on a far wider scale stretched: "
            f"{listing(wide, n=5, sep='; ')}. The others: {listing(odd, n=3, sep='; ')}. "
            f"{cost}. Rescale the wider scale's scores onto the others' before fit "
            "(ratings of 0-500 onto 1-5 as 1 + y / 125, say), or leave those raters out: "
            "TaskSet.subset, or drop their rows of X, y and groups.")
        return
    than = "the other raters'" if whose is None else "that range's"
    if whose is None:
        whose = (score_range_given(low, high) if given
                 else f"the range ({low:g}, {high:g}) taken from all the ratings")
    warn_caller(
        f"{len(odd)} of {len(tasks)} training rater(s) have scores that look like another "
        f"scale than {than}, within {whose}: {listing(odd, n=5, sep='; ')}. "
        f"{cost}. Rescale those raters' scores onto the others' scale before fit "
        "(ratings of 1-5 onto 0-500 as 125 * (y - 1), say), or leave them out: "
        "TaskSet.subset, or drop their rows of X, y and groups.")


def warn_if_given_range_too_wide(y, low, high, whose, pooled=False):
    """Warn when every score sits in a sliver of a given ``score_range``.

    :func:`warn_mixed_scales` names raters unlike the rest, and the check of a rater
    against a prior's range is skipped when ``score_range`` is given; neither spoke
    when all the ratings were of a narrower scale than the range given for them.
    Ratings of 1-5 fitted with ``score_range=(0, 100)`` made a prior whose SROCC fell
    from 0.43 to -0.05 (0.55 to 0.04 personalized) on the package's test raters.

    Parameters
    ----------
    y : array-like of shape (n,)
        All the scores fitted on.
    low, high : float
        The given range.
    whose : str
        Whose scores they are, the subject of a plural verb: "the training ratings".
    pooled : bool, default=False
        Whether ``y`` pools many raters' scores: then scores all in the range's highest
        fifth are warned of too (see :func:`another_scale`).
    """
    y = np.asarray(y, dtype=np.float64)
    where = another_scale(y, low, high, highest_fifth=pooled)
    if where:
        warn_caller(
            f"{whose} ({y.min():g} to {y.max():g}) {where} of "
            f"{score_range_given(low, high)}. The head's sigmoid maps into that whole "
            "range and the loss measures errors in it, so the network learns little from "
            "scores in a corner of it. If these ratings use another scale, pass that "
            "scale as score_range, or leave score_range out to take it from the ratings.")


def _score_text(value, low, high):
    """``value`` as ``{:g}`` writes it, or in full where that would read as inside
    ``(low, high)``: 100.0001 outside (0, 100) was shown as "100"."""
    text = f"{value:g}"
    if low is not None and low <= float(text) <= high:
        # a float32 score (as networks train) by float32's shortest text: 100.0001,
        # not 100.0000991821289
        v32 = np.float32(value)
        text = str(v32) if float(v32) == float(value) else str(float(value))
    return text


def _scores_at(y, outside, tasks=None, X=None, bounds=(None, None)):
    """The first few flagged scores of ``y``, with rater and image where ``tasks`` tells
    (or ``X``, one rater's images as given, the image); a score outside ``bounds`` is
    written with the digits that show it is."""
    if tasks is not None:
        X = tasks.X
    paths = isinstance(X, (list, tuple)) or getattr(getattr(X, "dtype", None), "kind",
                                                    None) in ("O", "U", "S")
    where = []
    for i in np.flatnonzero(outside)[:3]:
        # by position: a pandas Series of paths would go by its index labels
        x = (X.iloc[i] if hasattr(X, "iloc") else X[i]) if paths else None
        image = f"image {os.fspath(x)}, " if isinstance(x, (str, os.PathLike)) else ""
        if tasks is None:
            where.append(f"{_score_text(y[i], *bounds)} ({image}{row_numbers([i], of='X')})")
            continue
        rater = tasks.groups[i]
        rater = rater.item() if isinstance(rater, np.generic) else rater
        where.append(f"{_score_text(y[i], *bounds)} (rater {rater!r}, {image}"
                     f"{row_numbers([i], of='X')})")
    more = int(outside.sum())
    return "; ".join(where) + (f"; ... ({more} in all)" if more > 3 else "")


def _file_fingerprint(path):
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _head_batch_size(n_images):
    """Default head-only batch: a quarter of the rater's images, at least 10."""
    if n_images is None:
        return _HEAD_MIN_BATCH
    return max(_HEAD_MIN_BATCH, math.ceil(n_images / _HEAD_BATCHES))


def _head_lr(batch_size, n_images):
    """Default head-only learning rate: 3e-5 at batches of up to 10 images, times the
    square root of how many times larger the batch is (the square-root scaling rule
    for Adam; Malladi et al., NeurIPS 2022)."""
    rows = batch_size
    if n_images is not None:
        rows = n_images if batch_size == -1 else min(batch_size, n_images)
    # -1 with no rater yet (the prior's own net) counts as 10: the base rate.
    return _HEAD_LR * math.sqrt(max(rows, _HEAD_MIN_BATCH) / _HEAD_MIN_BATCH)


#: personalize's overrides of the fine-tuning settings, checked as the settings are
#: (batch_size=-1 is skorch's "all images at once")
_OVERRIDE_CONSTRAINTS = {
    "lr": [Interval(numbers.Real, 0, None, closed="left")],
    "max_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
    "batch_size": [Interval(numbers.Integral, 1, None, closed="left"),
                   Options(numbers.Integral, {-1})],
}


#: Names users reach for, and the fine-tuning net's for them.
_NET_PARAM_ALIASES = {"learning_rate": "lr", "epochs": "max_epochs", "n_epochs": "max_epochs"}


def _refuse_unknown_net_params(net, net_params):
    """Refuse, naming ``personalize`` and the likely meant name, what ``net`` does not take.

    skorch refused ``personalize(X, y, epochs=5)`` with its own text ("__init__() got
    unexpected argument(s) epochs. Either you made a typo, or you added new arguments
    in a subclass..."), which named neither the method nor ``max_epochs``. Its rule is
    kept: a name of the net's ``__init__``, a name ending in ``_``, or one that starts
    with a component's prefix (whose malformed ``prefix_name`` skorch names itself).
    """
    # the named parameters of every __init__ up to skorch's NeuralNet (subclasses pass
    # the rest on as **kwargs)
    accepted = {name for cls in type(net).__mro__ if "__init__" in vars(cls)
                for name, p in inspect.signature(cls.__init__).parameters.items()
                if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    prefixes = getattr(net, "prefixes_", ())
    unknown = [name for name in net_params
               if name not in accepted and not name.endswith("_")
               and not any(name.startswith(p) for p in prefixes)]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = ([_NET_PARAM_ALIASES[name]] if name in _NET_PARAM_ALIASES
                 else difflib.get_close_matches(name, sorted(accepted), n=1))
        if name == "groups":
            hints.append("'groups' (personalize fits one rater: pass that rater's X and y)")
        elif close:
            hints.append(f"{name!r} (did you mean {close[0]!r}?)")
        else:
            hints.append(repr(name))
    raise TypeError(
        f"personalize() got unexpected keyword argument(s) {', '.join(hints)}. It takes X, "
        "y, random_state, score_range and the fine-tuning net's parameters: max_epochs, lr, "
        "batch_size, callbacks, train_split, optimizer, optimizer__<name>, ... (skorch's "
        "NeuralNet).")


class MetaAestheticRegressor(PickledOnCPU, NumbersNotBools, RegressorMixin, BaseEstimator):
    """Meta-learned aesthetic prior over raters, personalized to a new rater in a few shots.

    ``fit`` runs bilevel meta-training (BLG-PIAA [1]_): each rater is a task; per outer
    iteration ``tasks_per_batch`` raters are drawn, a copy of the prior is adapted with
    ``inner_steps`` Adam steps on ``support_size`` of the rater's images and
    ``inner_steps`` more on ``query_size`` others, and the prior moves towards the
    adapted weights by ``outer_lr``. ``predict`` gives the prior's (zero-shot) scores;
    :meth:`personalize` fine-tunes a copy on one rater's images and returns a fitted
    skorch regressor.

    Parameters
    ----------
    backbone : str, nn.Module or None, default="efficientnet_lite0"
        Image network: ``"efficientnet_lite0"`` (ImageNet weights shipped with the
        package's dependencies), ``"resnet18"``, ``"alexnet"``, ``"inception_v3"`` (need
        ``backbone_weights``), ``"tiny_cnn"`` (small, random, for tests), any module
        mapping images to embeddings, or ``None`` when ``X`` holds precomputed features.
    backbone_weights : str or path-like, default=None
        Local weights file of the backbone (never downloaded).
    train_backbone : bool, default=False
        ``False``: freeze the backbone, embed each image once (cached) and train only the
        head -- fast on CPU. ``True``: train the whole network, as in the paper.
    hidden_sizes : tuple of int, default=(1024, 512)
        Widths of the head's FC-BN-PReLU-Dropout blocks.
    dropout : float, default=0.5
    algorithm : {"blg", "maml", "fomaml", "reptile", "merged", "average", "none"}, \
            default="blg"
        Meta-learning algorithm: BLG-PIAA's bilevel optimization, MAML with second-order
        outer gradients through SGD inner steps (``fomaml``: first-order), Reptile, the
        paper's ablation with support and query merged, BA-PIAA's generic prior trained
        on the pooled ratings (``average``), or no prior at all (``none``). See
        :mod:`sklearn_piaa.meta`; the inner/outer parameters below apply to each as its
        docstring says (``betas`` and ``weight_decay`` also set MAML's outer Adam).
    n_iterations : int, default=1000
        Outer iterations.
    tasks_per_batch : int, default=4
        Raters per outer iteration (the paper's k); at most the number of training
        raters (a larger value uses them all).
    support_size : int, default=80
    query_size : int, default=20
        Images per task in the support and query sets (the paper's m_s, m_q). Raters
        with fewer than ``support_size + query_size`` images use 80% of their images as
        support and the rest (up to ``query_size``) as query (modelled on the reference
        code, whose sizes differ in detail: see the algorithm page of the docs).
    inner_steps : int, default=5
        Adam steps on the support set, and again on the query set (the paper's S).
    inner_lr : float, default=1e-3
        Inner Adam learning rate of the head.
    inner_backbone_lr : float, default=1e-4
        Inner Adam learning rate of the backbone when ``train_backbone=True``; head-only,
        ``fit`` warns when it is set otherwise (it has no use there).
    outer_lr : float, default=1e-2
        Outer step size (the paper's beta). ``sklearn-piaa demo`` and ``table1`` use
        0.1, over fewer iterations (300).
    betas : tuple of float, default=(0.9, 0.99)
        Adam betas of the inner loop and of fine-tuning (the released scripts use
        torch's defaults, ``(0.9, 0.999)``, and no weight decay).
    weight_decay : float, default=1e-5
        Adam weight decay of the inner loop and of fine-tuning.
    loss : {"mse", "rank", "mse+rank"}, default="mse"
        Training loss of meta-training and of :meth:`personalize`: squared error (the
        paper's), a pairwise logistic rank loss over the pairs of differently rated
        images (:func:`~sklearn_piaa.nn.pairwise_rank_loss`; SROCC, the metric, is a
        rank correlation), or their sum. Score differences are measured in a quarter
        of the score range (one point of a 1-5 scale; see
        :class:`~sklearn_piaa.nn.AestheticLoss`), so ratings in other units train the
        same network, mapped onto their scale.
    lr_decay : float, default=0.9
        Factor applied to the inner learning rates every ``lr_decay_every`` iterations.
    lr_decay_every : int, default=100
    finetune_epochs : int, default=20
        Epochs of :meth:`personalize` (the paper's P).
    finetune_lr : float, default=None
        Adam learning rate of :meth:`personalize`. ``None`` means the paper's 1e-5 when
        the whole network is trained; in head-only mode 3e-5 for batches of up to 10
        images, times ``sqrt(batch / 10)`` for larger batches (the square-root scaling
        rule for Adam), whatever set the batch size (see Notes).
    finetune_batch_size : int, default=None
        Mini-batch size of :meth:`personalize`. ``None`` means all of the rater's images
        in one batch (one step per epoch, as the reference code does) when the whole
        network is trained; in head-only mode a quarter of the rater's images, at least
        10: one step per 10 images up to 40 images, four steps per epoch beyond.
    score_range : (float, float), default=None
        Lowest and highest score; ``None`` takes them from the training ratings.
    batch_size : int, default=64
        Batch size for embedding (images decoded and cached together; on a CPU the
        frozen backbone runs on parts of 2 images per thread, which keeps its
        activations in the cores' caches) and for whole-network prediction.
    cache_dir : str or path-like, default=None
        Directory for an on-disk cache of image embeddings (head-only mode; with
        ``train_backbone=True`` ``fit`` warns that it has no use). Embeddings
        stream to it batch by batch, so an interrupted extraction resumes where it
        stopped. ``fit`` fails before embedding if the folder cannot be made or lacks
        the space for the new embeddings; a read-only one (a shared cache) serves the
        embeddings it holds, and the others are computed without being cached, with a
        :class:`PIAAWarning`. After ``fit`` (``predict``, ``personalize``, a model
        loaded on another machine) the cache never stops the work: a folder that cannot
        be made, a full disk or a failed write warns (once per folder and process; a
        folder that takes no file is probed again after 10 minutes), and images are
        embedded without it. ``set_params(cache_dir=...)`` on a fitted prior moves its
        cache (``None`` turns it off). A leading ``~`` is the home folder. A value of
        another type than str, os.PathLike or None is refused with a TypeError.
    on_error : {"raise", "skip"}, default="raise"
        An image file that cannot be read (missing, empty, truncated, not an image):
        ``"raise"`` stops with an error naming it (FileNotFoundError for a missing
        file, IsADirectoryError for a folder, else ValueError) (in whole-network mode
        every image is checked before training starts); ``"skip"`` warns with the names of
        all such files, leaves their ratings out of ``fit`` and :meth:`personalize`,
        and predicts NaN for them. Greyscale, CMYK, palette, 16-bit and transparent
        images are converted to RGB and EXIF orientation is applied either way.
    device : str or torch.device, default="cpu"
        Torch device, e.g. ``"cuda"`` or ``"cuda:1"`` (an int is refused: torch reads it
        as a CUDA index, which ``"cuda:1"`` says plainly).
    mixed_precision : bool, default=False
        Run forward passes under bfloat16 autocast (:func:`torch.autocast`): in
        head-only mode when embedding images and when predicting (the head still trains
        in float32), with ``train_backbone=True`` in every forward pass of
        meta-training, fine-tuning and prediction. On a GPU it saves memory; whether
        it saves time depends on the sizes: on an NVIDIA H200 at the paper's sizes
        (EfficientNet-Lite0, 80 and 20 images per step) whole-network training was
        no faster, the steps being bound by kernel launches rather than arithmetic
        (``benchmarks/whole_network.py``). On a CPU with bfloat16
        instructions (AVX-512 BF16 / AMX) it embeds about 1.2-1.3x faster and predicts
        from embeddings 2-4x faster, but trains the whole network slower than float32
        (``benchmarks/speed.py``). On a CPU without bfloat16 support in torch (AVX2
        only, e.g. AMD EPYC before Zen 4) bfloat16 is emulated and far slower (20x in
        embedding, measured): the first such use in a process warns. Embeddings differ
        from float32 ones by about 4% (relative norm; up to 9% on photos); they are
        cached apart from them.
        Predicted scores move by a fraction of a percent of the score range.
    checkpoint_dir : str or path-like, default=None
        Directory for meta-training checkpoints. When set, ``fit`` writes the state of
        the run there every ``checkpoint_every`` iterations (atomically), and a ``fit``
        with the same data and settings resumes from the checkpoint it finds, ending
        with the same prior as an uninterrupted run (on CPU, with a fixed
        ``random_state``). A larger ``n_iterations`` continues a finished run. Each
        run (data and settings) has its own file, so the fits of a grid search can
        share one directory; a run that finds none of its own starts afresh, and
        warns when the directory holds unfinished runs of other data or settings. A
        ``RandomState`` instance, like ``None``, does not identify the run: ``fit``
        resumes the checkpoint of the same data and other settings, and continues its
        random stream, with a warning (``None`` in a generator of its own: NumPy's
        global one is left as it was). A checkpoint that cannot be written (a full
        disk, the folder removed) is warned of once, and training goes on. A leading
        ``~`` is the home folder.
    checkpoint_every : int, default=100
        Iterations between checkpoints.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
        Show progress bars (embedding, meta-training) on stderr when positive.

    Attributes
    ----------
    prior_net_ : PersonalizedNet
        The meta-trained prior as an initialized skorch regressor.
    n_features_in_ : int
        Feature width (only when ``backbone=None``).
    feature_names_in_ : ndarray of str
        The column names of the DataFrame fitted on (only with ``backbone=None`` and a
        DataFrame with string column names). A DataFrame given later, to ``predict``,
        ``personalize`` or a personalized net, must have the same columns in the same
        order.
    embedding_dim_ : int
        Input width of the head.
    score_range_ : tuple of float
    raters_ : list
        Raters seen during meta-training.
    history_ : ndarray of shape (n_iterations,)
        The tasks' mean loss per outer iteration (empty for ``algorithm="none"``), in
        the loss's unit (squared quarters of the score range for ``"mse"``): on the
        query sets after the inner steps for ``"maml"`` and ``"fomaml"``; on the query
        sets before the last of the steps taken on them for ``"blg"`` (which trains on
        the query set too: after the support steps with ``inner_steps=1``); on the
        merged support and query set before the last inner step for ``"reptile"`` and
        ``"merged"``; on the pooled batch for ``"average"``.
    fit_time_ : float
        Seconds spent in meta-training (embedding excluded); a run resumed from
        ``checkpoint_dir`` counts the time of the runs it continues.
    input_ : callable
        Turns ``X`` into the network's input: checks a feature array
        (``backbone=None``), embeds images with the frozen backbone (head-only mode;
        ``input_.transform(images)`` returns the embeddings, cached), or reads images
        for whole-network training.

    Notes
    -----
    The head-only fine-tuning defaults were chosen on the built-in benchmark (1,200
    images, 48 meta-training and 12 held-out raters, EfficientNet-Lite0 embeddings, 3
    support draws per rater); mean SROCC at 10 / 100 support images, prior alone
    0.585 / 0.561 (``benchmarks/finetune_defaults.py --learning-rates``): lr 1e-3 full
    batch 0.501 / 0.609; 1e-4 full batch 0.586 / 0.639; 3e-5 full batch 0.594 / 0.613;
    3e-5 batch 10: 0.594 / 0.642. Batches of a quarter of the rater's
    images with the learning rate scaled by the square root of the batch size then
    matched batches of 10 at 50 and 100 images in fewer steps (1.25x at 50, 2.5x at
    100; paired differences -0.000 to +0.003 SROCC, standard errors 0.001-0.002, over
    three seeds of the built-in benchmark and on real photos;
    ``benchmarks/finetune_defaults.py``).
    Fine-tuning parameters are read when :meth:`personalize` runs, so
    ``set_params(finetune_lr=...)`` needs no new fit.

    With ``train_backbone=True`` images are decoded by up to 16 threads (one per
    core), the next outer iteration's while one trains, and up to 1,024 decoded
    images (about 200 MB at 224 px) are kept in memory for meta-training and for each
    :meth:`personalize`; batches reach ``device`` as 8-bit pixels.

    See Also
    --------
    PersonalizedSROCCScorer : score personalization on held-out raters.
    UserGroupKFold : cross-validation over raters.

    References
    ----------
    .. [1] H. Zhu, L. Li, J. Wu, S. Zhao, G. Ding and G. Shi, "Personalized Image
       Aesthetics Assessment via Meta-Learning With Bilevel Gradient Optimization",
       IEEE Transactions on Cybernetics, 52(3):1798-1811, 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_piaa import MetaAestheticRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(300, 8).astype(np.float32)
    >>> users = np.repeat(np.arange(6), 50)
    >>> y = np.clip(np.round(3 + X[:, 0] + 0.3 * rng.randn(300)), 1, 5)
    >>> meta = MetaAestheticRegressor(backbone=None, hidden_sizes=(16,), n_iterations=20,
    ...                               support_size=20, query_size=10, random_state=0)
    >>> meta = meta.fit(X, y, groups=users)
    >>> net = meta.personalize(X[:10], y[:10])
    >>> net.predict(X[10:13]).shape
    (3,)
    """

    __metadata_request__fit = {"groups": True}

    _parameter_constraints = {
        "backbone": [StrOptions({"efficientnet_lite0", "resnet18", "alexnet", "inception_v3",
                                 "tiny_cnn"}), torch.nn.Module, None],
        "backbone_weights": "no_validation",
        "train_backbone": ["boolean"],
        "hidden_sizes": [tuple, list],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "algorithm": [StrOptions(set(ALGORITHMS))],
        "n_iterations": [Interval(numbers.Integral, 0, None, closed="left")],
        "tasks_per_batch": [Interval(numbers.Integral, 1, None, closed="left")],
        "support_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "query_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "inner_steps": [Interval(numbers.Integral, 0, None, closed="left")],
        "inner_lr": [Interval(numbers.Real, 0, None, closed="left")],
        "inner_backbone_lr": [Interval(numbers.Real, 0, None, closed="left")],
        "outer_lr": [Interval(numbers.Real, 0, None, closed="left")],
        "betas": [tuple, list],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "loss": [StrOptions(set(LOSSES))],
        "lr_decay": [Interval(numbers.Real, 0, 1, closed="right")],
        "lr_decay_every": [Interval(numbers.Integral, 1, None, closed="left")],
        "finetune_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
        "finetune_lr": [Interval(numbers.Real, 0, None, closed="left"), None],
        "finetune_batch_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "score_range": [tuple, list, None],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "cache_dir": [str, os.PathLike, None],
        "on_error": [StrOptions({"raise", "skip"})],
        "device": [str, torch.device],
        "mixed_precision": ["boolean"],
        "checkpoint_dir": [str, os.PathLike, None],
        "checkpoint_every": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, backbone="efficientnet_lite0", backbone_weights=None,
                 train_backbone=False, hidden_sizes=(1024, 512), dropout=0.5, algorithm="blg",
                 n_iterations=1000, tasks_per_batch=4, support_size=80, query_size=20,
                 inner_steps=5, inner_lr=1e-3, inner_backbone_lr=1e-4, outer_lr=1e-2,
                 betas=(0.9, 0.99), weight_decay=1e-5, loss="mse", lr_decay=0.9,
                 lr_decay_every=100,
                 finetune_epochs=20, finetune_lr=None, finetune_batch_size=None,
                 score_range=None, batch_size=64, cache_dir=None, on_error="raise",
                 device="cpu", mixed_precision=False, checkpoint_dir=None, checkpoint_every=100,
                 random_state=None, verbose=0):
        self.backbone = backbone
        self.backbone_weights = backbone_weights
        self.train_backbone = train_backbone
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.algorithm = algorithm
        self.n_iterations = n_iterations
        self.tasks_per_batch = tasks_per_batch
        self.support_size = support_size
        self.query_size = query_size
        self.inner_steps = inner_steps
        self.inner_lr = inner_lr
        self.inner_backbone_lr = inner_backbone_lr
        self.outer_lr = outer_lr
        self.betas = betas
        self.weight_decay = weight_decay
        self.loss = loss
        self.lr_decay = lr_decay
        self.lr_decay_every = lr_decay_every
        self.finetune_epochs = finetune_epochs
        self.finetune_lr = finetune_lr
        self.finetune_batch_size = finetune_batch_size
        self.score_range = score_range
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.on_error = on_error
        self.device = device
        self.mixed_precision = mixed_precision
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True  # on GPU; on CPU a fixed random_state reproduces
        tags.regressor_tags.poor_score = True
        return tags

    def __setstate__(self, state):
        super().__setstate__(state)
        if "prior_net_" in state:
            # a prior trained on a GPU, unpickled on a machine without one (its net
            # loads on the CPU); an unfitted one's device is for fit to check
            self.device = unpickled_device(self.device)

    # -- fit -------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    @trains
    def fit(self, X, y=None, groups=None):
        """Meta-train the prior over raters.

        Parameters
        ----------
        X : TaskSet, dict, or array-like / list
            A :class:`TaskSet`, a mapping ``rater -> (X, y)``, or one row per rating:
            image paths, PIL images, uint8 arrays ``(N, H, W, 3)``, or features ``(N, D)``
            when ``backbone=None``.
        y : array-like of shape (n_ratings,), default=None
            Scores (only with row-wise ``X``).
        groups : array-like of shape (n_ratings,), default=None
            Rater id of each row. Without it all rows are treated as one rater, with a
            warning. With metadata routing enabled, ``groups`` is requested by default.

        Returns
        -------
        self : MetaAestheticRegressor

        Raises
        ------
        InvalidParameterError
            (a ``ValueError`` and a ``TypeError``) If a parameter has a type or value
            it does not accept, e.g. ``device=0`` or ``cache_dir=3``.
        ValueError
            If ``device`` names no torch device, or one this machine does not have; if
            a rater has fewer than 2 ratings (named), none included: a mapping's rater
            of empty ``X`` and ``y`` is refused as :meth:`TaskSet.from_mapping` refuses
            it.
        FloatingPointError
            If meta-training diverged (NaN or infinite weights, losses or statistics: a
            learning rate too large for the data, or features far too large, whose
            size the message then names first). The previous fit, if any, and the
            last checkpoint before the divergence are kept.

        Warns
        -----
        PIAAWarning
            If meta-training collapsed the prior: finite, but scoring every image
            alike, or each at one end of the range (learning rates far too large); if
            some raters gave every image the same score (named: they teach nothing
            about how people rank images); if some raters' scores look like another
            scale than the other raters' (named: 1-5 among 0-500, say, where the loss
            gives their ratings almost no weight); if some raters rated an image more
            than once (named; with ``algorithm`` "blg", "maml" or "fomaml", whose
            support and query sets a repeat can fall in both); if ``inner_steps=0``
            leaves the algorithm nothing to learn from.
        """
        tasks = self._as_tasks(X, y, groups)
        # a TaskSet or a mapping of DataFrames carries its column names too
        names = tasks.feature_names if self.backbone is None else None
        tasks.check_min_size(2, advice=(
            "Leave them out first: TaskSet.subset, or the rows of X, y and groups "
            "(the sklearn-piaa meta-train command: --min-images 2)."))
        if len(tasks) == 1 and tasks.raters[0] != NO_GROUPS:  # that case has its own warning
            warn_caller(
                f"the training data holds the ratings of one rater only "
                f"({tasks.raters[0]!r}): meta-training learns how raters differ from many "
                "raters' ratings, so this prior learns one person's taste and nothing about "
                "adapting to another. Pass the ratings of many raters (groups=rater_ids; "
                "on the command line, a ratings file of many raters).")
        self._check_shapes()
        self._warn_if_no_steps()
        self._warn_if_unused_settings()
        device = resolve_device(self.device)
        if self.checkpoint_dir is not None:
            # before the images are embedded, not when the first checkpoint is due
            check_writable_dir(folder_path(self.checkpoint_dir), what="checkpoint_dir")
        rng = check_random_state(self.random_state)
        seed = rng.randint(np.iinfo(np.int32).max)

        # With on_error="skip", the scores of images that turn out unreadable are not
        # checked against a given score_range: they are left out (checked below).
        skip = self.on_error == "skip"
        score_range = self._score_range(tasks, check=not skip)
        with seeded(seed, device):
            prior, input_adapter, data, kept = self._build(tasks, score_range, device,
                                                           seed)
        if kept is not tasks:  # unreadable images left out (on_error="skip")
            self._warn_dropped_raters(tasks, kept)
            # their scores must not set the scale the head maps into
            score_range = self._score_range(kept)
            _set_score_range(prior, score_range)
            tasks = kept
        elif skip:
            self._score_range(tasks)
        warn_constant_raters(tasks)
        warn_if_coarse_range(*score_range, "the prior's score range")
        if self.score_range is None:
            warn_if_stray(tasks, "The prior's output spans the whole range, which squeezes "
                                 "every other rating into a sliver of it: drop those rows, "
                                 "or, if they are real ratings, "
                                 + pass_score_range("of the rating scale") + ".")
        warn_mixed_scales(tasks, score_range, "The prior maps every rater into that range "
                          "and its loss measures errors on it, so their ratings weigh next "
                          "to nothing in meta-training and the prior learns little of their "
                          "taste", given=self.score_range is not None)
        if self.score_range is not None:
            warn_if_given_range_too_wide(tasks.y, *score_range, "the training ratings",
                                         pooled=len(tasks) > 1)
        identical = False
        if "x" in data and self.backbone is None:
            identical = self._warn_if_unscaled(data["x"])
        # The others train on support and query merged. All ratings as one rater (no
        # groups) repeat the images that several raters rated, and features that tell
        # no image apart make every row a repeat: both cases have their own warning.
        if (self.algorithm in _ON_QUERY and tasks.raters[0] != NO_GROUPS
                and not identical):
            warn_repeated_images(tasks)
        # one score for every image: a prior that gives one is right, not collapsed
        check_collapse = np.ptp(np.asarray(tasks.y, dtype=np.float64)) > 0
        if check_collapse:
            before = self._score_levels(prior, data, score_range)
            # by the sample's statistics: the head's on precomputed features (or a
            # frozen backbone's); a whole network's would be the same pass again
            before = (before, self._score_levels(prior, data, score_range, batch_stats=True)
                      if "x" in data else before)
        history, fit_time = self._meta_train(prior, tasks, data, rng, seed, device)
        check_trained(prior, history, "meta-training", _META_ADVICE,
                      kept="The previous fit is kept." if hasattr(self, "prior_net_") else "",
                      features=data["x"] if self.backbone is None else None)
        prior.eval()
        if check_collapse:
            after = self._score_levels(prior, data, score_range)
        # Fitted state is set only now: a refit that fails on bad input keeps the old prior.
        self.score_range_ = score_range
        self.embedding_dim_ = data["dim"]
        if self.backbone is None:
            self.n_features_in_ = data["dim"]
            # what predict and personalize compare the rows they get with (FeatureInput)
            input_adapter.largest_norm = float(torch.linalg.vector_norm(data["x"], dim=1)
                                               .max())
        elif hasattr(self, "n_features_in_"):
            del self.n_features_in_
        if names is None:
            self.__dict__.pop("feature_names_in_", None)
        else:  # checked by the input adapter, for the prior and every personalized net
            self.feature_names_in_ = input_adapter.feature_names = names
        self.raters_ = list(tasks.raters)
        self.history_, self.fit_time_ = history, fit_time
        self.input_ = input_adapter
        self._record_architecture()
        self.prior_net_ = self._prior_net(prior, device)
        if check_collapse:
            self._warn_if_collapsed(before, after)
        return self

    @staticmethod
    def _score_levels(prior, data, score_range, batch_stats=False):
        """How many scores the prior tells apart among a sample of the distinct images.

        Up to 2048 of them (16 in whole-network mode, where each costs a forward pass),
        to a thousandth of the score range, in eval mode; no random draw. With
        ``batch_stats`` (precomputed features), the head's BatchNorm layers normalize by
        the sample's own statistics, as training does, leaving theirs as they are.
        """
        was_training = prior.training
        prior.eval()
        norms = [m for m in prior.modules() if isinstance(m, torch.nn.modules.batchnorm
                                                         ._BatchNorm)] \
            if batch_stats and "x" in data else []
        kept = [(m.running_mean, m.running_var) for m in norms]
        for m in norms:  # without running statistics, torch normalizes by the batch's
            m.running_mean = m.running_var = None
        try:
            with torch.no_grad():
                if "x" in data:
                    x = data["x"]
                    rows = torch.linspace(0, len(x) - 1, min(len(x), 2048),
                                          device=x.device).long()
                    pred = prior(x[rows])
                else:
                    images = _augmenting(data["images"], False)  # test-time resizing
                    rows = np.unique(np.linspace(0, len(images) - 1, min(len(images), 16))
                                     .astype(np.intp))
                    pred = prior(images.load(rows, device=next(prior.parameters()).device))
        finally:
            prior.train(was_training)
            for m, (mean, var) in zip(norms, kept):
                m.running_mean, m.running_var = mean, var
        pred = pred.float().cpu().numpy().ravel()
        pred = pred[np.isfinite(pred)]  # embeddings of unreadable images are NaN
        low, high = score_range
        levels = score_levels(pred, low, high)
        return levels * (high - low) / LEVELS + low, len(pred)

    def _warn_if_collapsed(self, before, after):
        """Warn when meta-training left the prior with at most two scores, from more.

        A learning rate far too large can saturate the network while its weights stay
        finite, so nothing diverges: the prior scores every image alike, or each at one
        end of the range, and ranks nothing; personalization starts from nothing it
        learned. A prior that told fewer than five scores apart before meta-training
        (a toy one, on a few images barely apart) is not named.

        ``before`` holds the scores before meta-training by the head's BatchNorm
        statistics, then by the sample's own. On features far from unit scale the
        untrained head's statistics (mean 0, variance 1) saturated it, so such a prior
        was never named: there the sample's statistics tell the scores apart, and a
        prior saturated at the ends of the range is named (one scoring alike in the
        middle has running statistics that have not caught up after a short run: not
        the learning rates' doing).
        """
        (levels, n), ((was, _), (untrained, _)) = after, before
        if len(levels) > 2:
            return
        low, high = self.score_range_
        if len(was) < 5:
            ends = all(min(v - low, high - v) <= (high - low) / 100 for v in levels)
            if len(untrained) < 5 or not ends:
                return
            was = untrained
        # n counts rows: features given once per rating repeat an image's
        scores = scores_given(levels, f", range {low:g}-{high:g}; {n} rows looked at")
        warn_caller(
            f"meta-training collapsed the prior: it gives the training images {scores}, "
            f"where it gave {len(was)} different scores before meta-training. It ranks "
            "nothing, and personalization starts from nothing it learned. Learning rates "
            f"too large do this (inner_lr={self.inner_lr!r}, outer_lr={self.outer_lr!r}): "
            "lower them and fit again.")

    @staticmethod
    def _warn_if_unscaled(x):
        """Warn when precomputed features have a tiny spread or a large common offset.

        The head's first BatchNorm erases a spread far below its epsilon (1e-5 of
        variance), and its running mean cannot follow an offset hundreds of times the
        spread as the weights move: the prior then scores every image alike (found
        with features scaled by 1e-6, or shifted by 1000), without any error.

        Returns whether every feature column is constant (what it then warns of): each
        row is then the same image, which no other check should count as a repeat.
        """
        # a sample of rows: at FLICKR-AES size all of them in float64 would be 400 MB
        rows = torch.linspace(0, len(x) - 1, min(len(x), 4096), device=x.device).long()
        x = x[rows].double()
        std = x.std(0)
        varying = std > 0  # constant columns are no reason to warn
        if len(x) < 2:
            return False
        if not varying.any():
            warn_identical_features()
            return True
        spread = float(std[varying].median())
        offset = float((x.mean(0)[varying].abs() / std[varying]).median())
        if spread >= 1e-3 and offset <= 100:
            return False
        what = (f"a tiny spread (median standard deviation of a column {spread:.2g})"
                if spread < 1e-3 else
                f"a large common offset (median |mean| / standard deviation of a column "
                f"{offset:.3g})")
        warn_caller(
            f"the features have {what}: the head's BatchNorm cannot use them, and the prior "
            "may score every image alike. Standardize each column (mean 0, standard "
            "deviation 1, as sklearn's StandardScaler does on the training rows) before "
            "fit, and the same way before predict and personalize.")
        return False

    def _record_architecture(self):
        """Note the settings the network was built with (:data:`_ARCHITECTURE`).

        ``fit`` and ``load_model`` call it: a ``set_params`` after either changes the
        estimator, not the network, and saving must describe the network.
        """
        self._fitted_architecture_ = {k: getattr(self, k) for k in _ARCHITECTURE}
        if self.cache_dir is not None:  # where the embedder caches, whatever the folder
            self._fitted_architecture_["cache_dir"] = folder_path(self.cache_dir)
        self._cache_dir_given_ = self.cache_dir

    def _fitted(self, name):
        """Setting ``name`` of :data:`_ARCHITECTURE` as the prior was fitted with."""
        return getattr(self, "_fitted_architecture_", {}).get(name, getattr(self, name))

    def _as_tasks(self, X, y, groups):
        return as_tasks(X, y, groups, features=self.backbone is None,
                        owner=type(self).__name__)

    def _warn_if_unused_settings(self):
        """Warn of a setting given that the mode fitted has no use for.

        ``inner_backbone_lr`` in head-only mode (a grid search over it fitted the same
        prior once per value) and ``cache_dir`` with the whole network trained ran
        without a word; the command line said so of ``--cache-dir`` only.
        """
        default = inspect.signature(type(self).__init__).parameters["inner_backbone_lr"]
        if not self.train_backbone and self.inner_backbone_lr != default.default:
            warn_caller(
                f"inner_backbone_lr={self.inner_backbone_lr!r} has no effect with "
                "train_backbone=False: the backbone is frozen, and only the head learns "
                "(at inner_lr). A search over it fits the same prior for every value.")
        if self.train_backbone and self.cache_dir is not None:
            warn_caller(
                "cache_dir has no effect with train_backbone=True: the whole network "
                "trains, so no embeddings are cached.")

    def _warn_if_no_steps(self):
        """Warn when ``inner_steps=0`` or a learning rate of 0 makes meta-training change
        no weight.

        These algorithms move the prior towards task copies trained for ``inner_steps``
        steps (or train the prior itself for that many): the fit ran in full, with a
        normal log, and changed nothing but BatchNorm statistics. (MAML and FOMAML
        still learn from the query loss at the prior.) The same with the inner steps of
        size 0, or an outer step of size 0 (all but ``"average"``, which takes none).
        """
        if self.n_iterations == 0:
            return
        copies = self.algorithm in ("blg", "merged", "reptile", "average")
        still = self.inner_lr == 0 and not (self.train_backbone and self.inner_backbone_lr)
        if copies and (self.inner_steps == 0 or still):
            setting = ("inner_steps=0" if self.inner_steps == 0 else
                       "inner_lr=0" + (" and inner_backbone_lr=0" if self.train_backbone
                                       else ""))
            warn_caller(
                f"{setting} with algorithm={self.algorithm!r}: the prior moves towards "
                "copies of itself adapted in inner_steps steps of inner_lr, so "
                "meta-training changes no weight and the prior keeps its initial head. "
                "Set inner_steps to 1 or more (the paper's S is 5) and inner_lr above 0, "
                "or use n_iterations=0 for an untrained prior (--inner-steps, --inner-lr, "
                "--n-iterations on the command line).")
        elif self.outer_lr == 0 and self.algorithm != "average":
            warn_caller(
                f"outer_lr=0 with algorithm={self.algorithm!r}: the prior takes outer steps "
                "of size 0, so meta-training changes no weight and the prior keeps its "
                "initial head. Set outer_lr above 0, or use n_iterations=0 for an "
                "untrained prior (--outer-lr, --n-iterations on the command line).")

    def _check_shapes(self):
        if not all(is_count(h) for h in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive integers; got {self.hidden_sizes}.")
        self._check_betas()
        if self.train_backbone and self.backbone is None:
            raise ValueError("train_backbone=True needs a backbone; got backbone=None.")
        if self.backbone_weights is not None and self.backbone is None:
            raise ValueError(f"backbone_weights={self.backbone_weights!r} needs a named "
                             "backbone; got backbone=None (precomputed features).")

    def _check_betas(self):
        if len(self.betas) != 2 or not all(
                isinstance(b, numbers.Real) and not isinstance(b, bool) and 0 <= b < 1
                for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1); got {self.betas}.")

    def _score_range(self, tasks, check=True):
        y = tasks.y
        if self.score_range is not None:
            low, high = check_score_range(self.score_range)
            outside = (y < low) | (y > high)
            if check and outside.any():
                raise ValueError(f"{int(outside.sum())} score(s) lie outside "
                                 f"{score_range_given(low, high)}: "
                                 f"{_scores_at(y, outside, tasks, bounds=(low, high))}.")
            return low, high
        low, high = float(y.min()), float(y.max())
        if low == high:
            low, high = low - 0.5, high + 0.5
        return low, high

    def _make_backbone(self, device, pretrained=True):
        """The image backbone on ``device``, or ``None`` for precomputed features."""
        if self.backbone is None:
            return None
        return owned_backbone(self.backbone, self.backbone_weights,
                              pretrained=pretrained).to(device)

    def _architecture(self, backbone, dim, score_range, device, seed=None):
        """The network the prior is and the input adapter skorch feeds it through.

        Parameters
        ----------
        backbone : Backbone or None
            The built backbone; ``None`` for precomputed features.
        dim : int
            The embedding (or feature) width.
        score_range : (float, float)
            The range the head maps into.
        device : torch.device
        seed : int, default=None
            Reseeds torch's generator just before the head is made (see
            :meth:`_module`); ``None`` draws on from it. Call with a seed only inside a
            :func:`~sklearn_piaa._device.seeded` block.

        Returns
        -------
        module : torch.nn.Module
        adapter : FeatureInput, ImageEmbedder or ImageInput
        """
        adapter = self._input_adapter(backbone, dim, device)
        return self._module(backbone, dim, score_range, device, seed), adapter

    def _input_adapter(self, backbone, dim, device):
        """What turns ``X`` into the module's input: features, embeddings or pixels."""
        if backbone is None:
            return FeatureInput(dim, owner=type(self).__name__)
        if not self.train_backbone:
            return ImageEmbedder(backbone, device, self.batch_size, self.cache_dir,
                                 progress=bool(self.verbose), on_error=self.on_error,
                                 mixed_precision=self.mixed_precision)
        return ImageInput(backbone.input_size, backbone.mean, backbone.std,
                          on_error=self.on_error)

    def _module(self, backbone, dim, score_range, device, seed=None):
        """The prior's network: the head, over the backbone where the backbone trains.

        With a ``seed``, torch's generator is reseeded with it just before the head is
        made: building a backbone draws from the generator (the random weights of
        ``tiny_cnn``, those a pretrained one loads over), so a head made after it started
        from other weights than the head of a fit on the same images' embeddings with
        ``backbone=None`` (47 apart on a 0-500 scale at the same ``random_state``).
        Reseeded, the head starts alike whichever backbone was built, or none; with
        ``backbone=None`` nothing was drawn before it, so that fit is as it was.
        """
        if seed is not None:
            torch.manual_seed(int(seed))
        head = AestheticHead(dim, hidden_sizes=tuple(self.hidden_sizes), dropout=self.dropout,
                             score_range=score_range).to(device)
        if backbone is None or not self.train_backbone:
            return head
        net = AestheticNet(backbone, head).to(device)
        if isinstance(self.backbone, str):
            # Convolutions train about 1.5x faster on a CPU with channels-last weights
            # (benchmarks/RESULTS.md); a user's module may assume the default layout.
            net = net.to(memory_format=torch.channels_last)
        return net

    def _build(self, tasks, score_range, device, seed):
        """The prior module, the input adapter, the training data, and the tasks.

        Called inside ``seeded(seed, device)``: the head is made from ``seed`` (see
        :meth:`_module`), after the backbone is built and the images embedded. With
        ``on_error="skip"``, the tasks come back without the unreadable images.
        """
        kind = input_kind(tasks.X)
        y = torch.as_tensor(tasks.y, device=device)
        if self.backbone is None:
            if kind != FEATURES:
                raise ValueError("backbone=None needs X as a 2-D feature array; got images. "
                                 "Choose a backbone to use images.")
            dim = np.asarray(tasks.X).shape[1]
            feats = FeatureInput(dim, owner=type(self).__name__)(tasks.X)
            data = {"x": torch.tensor(feats, device=device),  # a copy: never alias X
                    "rows": torch.arange(len(feats), device=device), "y": y, "dim": dim}
            return (*self._architecture(None, dim, score_range, device, seed), data, tasks)
        if self.train_backbone and kind == FEATURES:
            raise ValueError("train_backbone=True needs images as X, not a feature array.")
        backbone = self._make_backbone(device)
        dim = backbone.out_features
        if not self.train_backbone:
            embedder = self._input_adapter(backbone, dim, device)
            unique, inverse = embedder.transform_unique(tasks.X, strict_cache=True)
            bad = np.isnan(unique[:, 0])[inverse]  # unreadable images (on_error="skip")
            if bad.any():
                tasks, inverse = self._drop_rows(tasks, bad), inverse[~bad]
                y = torch.as_tensor(tasks.y, device=device)
            # The same rows as the features of a fit with backbone=None give: each row
            # indexes its image's embedding.
            data = {"x": torch.as_tensor(unique, device=device),
                    "rows": torch.as_tensor(inverse, device=device), "y": y, "dim": dim,
                    "backbone": backbone}
            head = self._module(backbone, dim, score_range, device, seed)
            return head, embedder, data, tasks
        # Decoding every image once now beats failing on a bad file hours into training.
        bad = unreadable_rows(tasks.X, backbone.input_size, self.on_error)
        if bad.any():
            tasks = self._drop_rows(tasks, bad)
            y = torch.as_tensor(tasks.y, device=device)
        net, adapter = self._architecture(backbone, dim, score_range, device, seed)
        data = {"images": ImageDataset(tasks.X, None, backbone.input_size, backbone.mean,
                                       backbone.std, train=True, cache=DECODED_CACHE),
                "y": y, "dim": dim, "backbone": backbone}  # as it starts: for checkpoints
        return net, adapter, data, tasks

    @staticmethod
    def _warn_dropped_raters(tasks, kept):
        gone = [r for r in tasks.raters if r not in kept]
        if gone:
            warn_caller(f"{len(gone)} rater(s) had no readable image and were left out of "
                        f"meta-training: {listing(map(repr, gone))}.")

    @staticmethod
    def _drop_rows(tasks, bad):
        if bad.all():
            raise ValueError("none of the images could be read (on_error='skip').")
        tasks = tasks.rows(~bad)
        tasks.check_min_size(2, what="meta-training after skipping unreadable images")
        return tasks

    def _draw(self, tasks, k, data, rng):
        """One outer iteration's random draws: the index sets (support, query for each of
        ``k`` raters) and, for images, their training crops."""
        raters = tasks.raters
        chosen = rng.choice(len(raters), size=k, replace=False)
        sets = [s for r in chosen for s in tasks.draw(raters[r], self.support_size,
                                                         self.query_size, rng)]
        crops = (data["images"].draw_crops(sum(len(idx) for idx in sets), rng)
                 if "images" in data else None)
        return sets, crops

    @staticmethod
    def _pixels(data, draws):
        """The 8-bit pixels of one iteration's images (``None`` for features)."""
        if "images" not in data:
            return None
        sets, crops = draws
        return data["images"].pixels([int(i) for idx in sets for i in idx], crops)

    @staticmethod
    def _batches(data, sets, device, pixels=None):
        """``(x, y)`` on ``device`` for each index array in ``sets``; images from their
        ``pixels`` (:meth:`_pixels`)."""
        if "images" in data:
            images = data["images"].normalize(pixels, device)
            ends = np.cumsum([len(idx) for idx in sets])
            xs = [images[end - len(idx):end] for idx, end in zip(sets, ends)]
        else:
            xs = [data["x"][data["rows"][torch.as_tensor(idx, device=device)]] for idx in sets]
        return [(x, data["y"][torch.as_tensor(idx, device=device)])
                for x, idx in zip(xs, sets)]

    def _checkpointer(self, tasks, data, unit=1.0):
        if self.checkpoint_dir is None:
            return None
        # Settings that change the prior; n_iterations may grow to continue a run.
        ignore = {"n_iterations", "checkpoint_dir", "checkpoint_every", "verbose", "device",
                  "batch_size", "cache_dir", "finetune_epochs", "finetune_lr",
                  "finetune_batch_size"}
        config = {k: (type(v).__name__ if isinstance(v, (torch.nn.Module,
                                                          np.random.RandomState)) else _plain(v))
                  for k, v in self.get_params(deep=False).items() if k not in ignore}
        if self.score_range is not None:  # (1, 5) and the command line's (1.0, 5.0)
            config["score_range"] = tuple(float(v) for v in self.score_range)
        if not self.mixed_precision:
            config.pop("mixed_precision")  # keeps checkpoints written before it existed valid
        config["raters"] = [(repr(r), n) for r, n in tasks.sizes().items()]
        if unit != 1.0:  # losses in a unit of the scale since 0.1: runs before are others
            config["loss_unit"] = unit
        # The rater of each row too: ratings moved between raters that keep their counts
        # (a fix of swapped ids) are other data, and reused the old run's prior.
        number = {r: i for i, r in enumerate(tasks.sizes())}
        arrays = [data["y"], np.fromiter((number[r] for r in tasks.groups), dtype=np.int64,
                                         count=len(tasks.groups))]
        if input_kind(tasks.X) == FEATURES:  # the features themselves
            arrays += [data["x"], data["rows"]]
        else:
            # The images themselves, by key (run_keys), not their embeddings in
            # head-only training: the backbone's arithmetic differs with torch's thread
            # count at the level of rounding, and a run restarted with other threads
            # (a job given other CPUs) would not find its checkpoint.
            arrays.append(run_keys(tasks.X))  # whole-network data holds the same X
            # and the backbone: a module (its weights, code and preprocessing) or a
            # weights file swapped under the same settings is another run
            if self.backbone_weights is not None:
                config["backbone_weights"] = _file_fingerprint(self.backbone_weights)
            elif isinstance(self.backbone, torch.nn.Module) or \
                    self.backbone not in SHIPS_WEIGHTS:
                # a module, or no weights given for a backbone that ships none
                # (tiny_cnn): its weights are drawn at each fit, so with
                # random_state=None a head trained on one backbone's embeddings resumed
                # on another's
                config["backbone"] = backbone_fingerprint(data["backbone"])
        return Checkpointer(self.checkpoint_dir, self.checkpoint_every,
                            fingerprint(config, arrays), self.n_iterations)

    def _meta_train(self, prior, tasks, data, rng, seed, device):
        learner_cls = ALGORITHMS[self.algorithm]
        algo = learner_cls(inner_lr=self.inner_lr, inner_backbone_lr=self.inner_backbone_lr,
                           inner_steps=self.inner_steps, outer_lr=self.outer_lr,
                           betas=tuple(self.betas), weight_decay=self.weight_decay,
                           loss=self.loss, loss_unit=loss_unit(head_of(prior)),
                           mixed_precision=self.mixed_precision and self.train_backbone)
        if not algo.meta_trains:
            return np.empty(0), 0.0
        checkpoints = self._checkpointer(tasks, data, algo.criterion.unit)
        saved = checkpoints.load() if checkpoints is not None else None
        learner = copy.deepcopy(prior)
        k = min(self.tasks_per_batch, len(tasks.raters))
        history = np.empty(self.n_iterations)
        first, elapsed = 0, 0.0
        with seeded(seed + 1, device):
            if saved is not None:
                if self.random_state is None:
                    # numpy's global generator is the caller's: the run's draws go on
                    # in one of its own, not by setting the global one back to the
                    # checkpoint's state (its stream repeated the earlier run's numbers)
                    rng = np.random.RandomState()
                first, done, elapsed = Checkpointer.restore(saved, prior, algo, rng, device)
                if not isinstance(self.random_state, numbers.Integral):
                    # the seed given is overridden: say so, a new prior was expected
                    given = ("None" if self.random_state is None
                             else "a RandomState instance")
                    warn_caller(
                        f"fit resumed the run checkpointed in {checkpoints.path} (iteration "
                        f"{first} of {self.n_iterations}), an earlier fit with the same data "
                        f"and settings: random_state={given} does not tell runs apart, so "
                        "this fit continues that run's random draws"
                        + (" and returns its prior" if first >= self.n_iterations else "")
                        + " instead of making new ones. Pass an int random_state to tell "
                        "runs apart, or another checkpoint_dir.")
                if first > self.n_iterations:
                    raise ValueError(
                        f"the checkpoint in {checkpoints.path} is at iteration {first}, "
                        f"beyond n_iterations={self.n_iterations}; raise n_iterations or "
                        "use another checkpoint_dir.")
                history[:first] = done
            start = time.perf_counter() - elapsed
            bar = progress(total=self.n_iterations, initial=first, desc="meta-train",
                           enabled=bool(self.verbose))
            label = history_label(self.algorithm, self.loss)
            # The next iteration's images are decoded while this one trains: its draws
            # come from the NumPy rng only, so looking ahead changes no number, and a
            # checkpoint stores the rng as it was before them.
            with ThreadPoolExecutor(max_workers=1) as pool:
                if first < self.n_iterations:
                    draws = self._draw(tasks, k, data, rng)
                    pending = pool.submit(self._pixels, data, draws)
                for it in range(first, self.n_iterations):
                    sets, pixels = draws[0], pending.result()
                    rng_now = _copy_rng(rng) if checkpoints is not None else None
                    if it + 1 < self.n_iterations:
                        draws = self._draw(tasks, k, data, rng)
                        pending = pool.submit(self._pixels, data, draws)
                    pairs = self._batches(data, sets, device, pixels)
                    batch = list(zip(pairs[::2], pairs[1::2]))
                    lr_scale = self.lr_decay ** (it // self.lr_decay_every)
                    history[it] = algo.step(prior, learner, batch, lr_scale)
                    bar.update(**{label: history[it]})
                    if checkpoints is not None and checkpoints.due(it + 1, self.n_iterations):
                        # Never over the last good checkpoint with a diverged prior.
                        check_trained(prior, history[:it + 1], "meta-training",
                                      _META_ADVICE, where=f" by iteration {it + 1}",
                                      kept="It was not checkpointed: the checkpoint "
                                           "before it is kept.",
                                      features=data["x"] if self.backbone is None else None)
                        checkpoints.save(it + 1, self.n_iterations, prior, algo, rng_now,
                                         history, time.perf_counter() - start, device)
            bar.close()
        return history, time.perf_counter() - start

    def _finetune_params(self, n_images=None, batch_size=None):
        """skorch parameters of :meth:`personalize` for a rater with ``n_images`` images.

        ``batch_size`` is one given to :meth:`personalize` directly; the default
        learning rate follows the batch size actually used.
        """
        # Read at personalize() time, so changing finetune_* needs no new meta-training.
        lr = self.finetune_lr
        if batch_size is None:
            batch_size = self.finetune_batch_size
        whole = self._fitted("train_backbone")
        if whole:
            lr = 1e-5 if lr is None else lr
            batch_size = -1 if batch_size is None else batch_size  # skorch's "all at once"
        else:
            if batch_size is None:
                batch_size = _head_batch_size(n_images)
            if lr is None:
                lr = _head_lr(batch_size, n_images)
        return dict(
            criterion=AestheticLoss,
            criterion__kind=self.loss,
            lr=lr,
            optimizer__betas=tuple(self.betas),
            optimizer__weight_decay=self.weight_decay,
            # The fused kernel is 2-3x faster than skorch's default single-tensor Adam.
            optimizer__fused=True,
            max_epochs=self.finetune_epochs,
            batch_size=batch_size,
            # Prediction over embeddings is cheap per row: large batches amortize overhead.
            iterator_valid__batch_size=self.batch_size if whole else 4096,
        )

    def _prior_net(self, module, device):
        """The prior's skorch net over ``module``, holding it once.

        skorch keeps ``module`` (where a fit starts) and ``module_`` (what it trains and
        predicts with): the prior's net is never fitted (``personalize`` fits a clone,
        which copies ``module``), so two copies doubled a prior's memory and its pickle
        (42 MB for EfficientNet-Lite0 trained whole, 21 MB saved).
        """
        net = self._make_net(module, device).initialize()
        net.module = net.module_
        return net

    def _make_net(self, module, device):
        return PersonalizedNet(
            module,
            input=self.input_,
            # Over embeddings only prediction gains from bfloat16: the head trains
            # faster in float32 by its hand-written path (benchmarks/speed.py).
            mixed_precision=bool(self.mixed_precision) and (
                True if self._fitted("train_backbone") else "inference"),
            optimizer=torch.optim.Adam,
            iterator_train__shuffle=True,
            train_split=None,
            device=str(device),
            verbose=0,
            **self._finetune_params(),
        )

    # -- use -------------------------------------------------------------------------

    def predict(self, X):
        """The prior's (zero-shot) scores.

        Parameters
        ----------
        X : array-like or list
            Images or features, as in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples,), float32
            The network's float32 output, also under ``mixed_precision``; NaN for
            images that cannot be read with ``on_error="skip"``.

        Warns
        -----
        PIAAWarning
            If rows of features have a norm more than 10 times the largest of those
            fitted on (named): the head saturates on them, and scores them at the ends
            of the score range.
        """
        check_is_fitted(self, "prior_net_")
        self._apply_reading_params()
        return self.prior_net_.predict(X)

    def _apply_reading_params(self):
        # on_error, cache_dir and verbose (progress bars) are read where images are
        # decoded and embedded, by the input adapter made in fit: a later set_params (on
        # a loaded prior, say: another machine's cache folder, or none for a service
        # that must not write) must reach it too.
        # An embedder is shared by copy.deepcopy (see ImageEmbedder): it is replaced, not
        # changed, so that a copy's settings never reach the original or nets
        # personalized before.
        adapter = image_reader(self)
        if isinstance(adapter, ImageEmbedder):
            settings = {}
            if adapter.on_error != self.on_error:
                settings["on_error"] = self.on_error
            if adapter.progress != bool(self.verbose):  # verbose=1 of a CLI-trained prior
                settings["progress"] = bool(self.verbose)
            new_folder = self.cache_dir is not getattr(self, "_cache_dir_given_",
                                                       self.cache_dir)
            if new_folder:
                # set after fit, so no parameter validation ran: replaced checks it (and
                # makes it absolute)
                settings["cache_dir"] = self.cache_dir
            if settings:
                self.input_ = self.prior_net_.input = adapter.replaced(**settings)
            if new_folder:
                # a new dict: nets personalized before share the old one (net.prior_)
                self._fitted_architecture_ = {**self._fitted_architecture_,
                                              "cache_dir": self.input_.cache_dir}
                self._cache_dir_given_ = self.cache_dir
        elif hasattr(adapter, "on_error"):  # copied, not shared, by copy.deepcopy
            adapter.on_error = self.on_error

    def _readable(self, X, y):
        """``X, y`` without unreadable images when ``on_error="skip"``; the rows kept."""
        return drop_unreadable(self.input_, X, y, self.on_error, return_kept=True)

    def personalize(self, X, y, random_state=None, score_range=None, **net_params):
        """Fine-tune a copy of the prior on one rater's images.

        Parameters
        ----------
        X : array-like or list
            The rater's images (or features: any array-like :meth:`fit` accepts, such as
            an object with only ``__array__``).
        y : array-like of shape (n_samples,)
            The rater's scores.
        random_state : int, RandomState instance or None, default=None
            Seeds shuffling and dropout, and the validation images of a
            ``train_split=ValidSplit(fraction)`` given without its own ``random_state``;
            ``None`` derives it from the estimator's ``random_state``.
        score_range : (float, float), default=None
            The rater's rating scale when it differs from the one the prior was trained
            on (``score_range_``), e.g. ``(0, 500)`` for a prior trained on 1-5 ratings.
            The copy's outputs are then mapped linearly from ``score_range_`` onto this
            range before fine-tuning, so the prior's ranking (and any SROCC) is unchanged
            and predictions come back in the rater's own scale. ``None`` keeps
            ``score_range_`` and requires ``y`` to lie within it.
        **net_params
            Overrides for the skorch net, e.g. ``max_epochs=50``, ``lr=1e-4``,
            ``callbacks=[EarlyStopping()]`` with ``train_split=ValidSplit(0.2)``, or
            ``optimizer=torch.optim.SGD``. The prior's Adam settings (``betas``) and
            loss settings (``loss``) go only to Adam (or AdamW) and to the package's loss; its
            ``weight_decay`` goes to any optimizer that has one.

        Returns
        -------
        PersonalizedNet
            A fitted skorch regressor; the prior is left unchanged. The net's ``prior_``
            attribute is the prior as it was (a shallow copy): refitting the prior
            later changes neither the net nor what :func:`save_model` writes for it.

        Raises
        ------
        ValueError
            If ``y`` is None (the rater's scores are required), is not one finite score
            per image or leaves the prior's (or the given) score range, or
            ``random_state`` cannot seed a random generator (e.g. a str).
        InvalidParameterError
            If a setting changed since ``fit`` (``set_params(finetune_lr=...)``), or an
            ``lr``, ``max_epochs`` or ``batch_size`` override, is not a valid value.
        TypeError
            If an override is no parameter of the net (``epochs=5``: the name meant,
            ``max_epochs``, is suggested).

        Warns
        -----
        PIAAWarning
            If ``y`` is one score or several all equal (nothing about how the rater
            ranks images), or looks like another scale than the prior's; if rows of
            features lie far outside those fitted on (as :meth:`predict` names them).
        """
        check_is_fitted(self, "prior_net_")
        self._check_finetune_settings(net_params)
        self._apply_reading_params()
        X, y, (low, high) = self._check_rater(X, y, score_range)  # names far rows
        warn_if_unranked(y)
        with far_rows_checked():
            return self._finetune(X, y, random_state,
                                  None if score_range is None else (low, high), **net_params)

    def _check_finetune_settings(self, net_params):
        """Refuse, by name, fine-tuning settings changed since fit and bad overrides.

        A ``set_params(finetune_lr="1e-3")`` since fit, or ``lr=nan`` given to
        personalize, failed inside skorch or torch ("'<=' not supported ...", "Invalid
        learning rate: nan"), naming neither the setting nor the method.
        """
        self._validate_params()
        self._check_betas()  # fine-tuning's Adam takes them: (0.9,) failed in torch
        _refuse_unknown_net_params(self.prior_net_, net_params)
        overrides = {k: v for k, v in net_params.items() if k in _OVERRIDE_CONSTRAINTS}
        refuse_bool_numbers(_OVERRIDE_CONSTRAINTS, overrides, "personalize")
        validate_parameter_constraints(_OVERRIDE_CONSTRAINTS, overrides,
                                       caller_name="personalize")
        if "device" in net_params:
            # as fit checks its own: torch's "Found no NVIDIA driver" or "Invalid device
            # string", and an int read as a CUDA index, otherwise
            resolve_device(net_params["device"])

    def _check_rater(self, X, y, score_range=None):
        """One rater's ``X, y`` checked (and unreadable images dropped); their scale."""
        X = with_rows(X)  # an array-like fit accepts: its rows are counted below
        kind = input_kind(X)  # a generator or another X of no supported kind: before len()
        refuse_one_row(X)
        if kind == FEATURES:  # features of another width, or for an image model: before y
            self.input_(X)
        # float32 first: the network trains on float32, and score_range_ was measured on
        # float32 ratings, so a float64 y can only fail the range check by rounding.
        given = check_scores(y, n_samples(X))
        y = given.astype(np.float32)
        warn_if_float32_merges(given, y)
        y = y.astype(np.float64)
        if len(y) == 0:
            raise ValueError("personalize needs at least one rated image.")
        if not np.isfinite(y).all():
            raise ValueError(f"y has {int((~np.isfinite(y)).sum())} NaN or infinite score(s).")
        low, high = (self.score_range_ if score_range is None
                     else check_score_range(score_range))
        # The scores of images left out (on_error="skip") are not the rater's data.
        given, images = y, X
        X, y, kept = self._readable(X, y)
        outside = np.zeros(len(given), dtype=bool)  # at the rows as given, for the message
        outside[kept] = scores_outside(y, low, high)
        if outside.any():
            same = ""
            if score_range is None and self.score_range is None:
                # a held-out rater of the training raters' own scale, who used a score
                # none of them did (a fold of a search): the prior is what to change
                same = (" If it uses the same scale, the prior's range is that of its "
                        "training ratings: fit the prior with score_range=(low, high) of the "
                        "whole scale (--score-range LOW,HIGH of sklearn-piaa meta-train).")
            raise ValueError(
                f"{int(outside.sum())} score(s) lie outside the range ({low:g}, {high:g}), "
                f"e.g. {_scores_at(given, outside, X=images, bounds=(low, high))}. If this "
                f"rater uses another scale than the prior's training data, "
                f"{pass_score_range()}.{same}")
        if getattr(_SCALE_CHECKED, "on", False):
            return X, y, (low, high)
        if score_range is not None:
            warn_if_coarse_range(low, high, "score_range")
            warn_if_given_range_too_wide(y, low, high, "the rater's scores")
            return X, y, (low, high)
        where = another_scale(y, low, high)
        if where:
            warn_caller(
                f"the rater's scores ({y.min():g} to {y.max():g}) {where} of the prior's range "
                f"({low:g}, {high:g}). If this rater uses another scale, "
                f"{pass_score_range()}.")
        return X, y, (low, high)

    def _finetune(self, X, y, random_state, score_range, module=None, **net_params):
        """Fine-tune a copy of ``module`` (default: the prior) on checked ``X, y``."""
        if random_state is None:
            random_state = self.random_state
        seed = check_seed(random_state).randint(np.iinfo(np.int32).max)
        net = clone(self.prior_net_)
        # skorch's get_params holds its own list of the names to check, which would
        # replace the new net's: a misspelled name would then pass unchecked.
        kept = {k: v for k, v in net.get_params(deep=False).items()
                if k != "_params_to_validate"}
        params = _fitting({**kept, **self._finetune_params(len(y), net_params.get("batch_size"))},
                          net_params, net)
        if module is not None:
            params["module"] = module
        params["train_split"] = seeded_split(params.get("train_split"), seed)
        # A new net rather than set_params: skorch refuses module, criterion and
        # optimizer instances in set_params before the net is initialized.
        net = type(net)(**{**params, "random_state": seed})
        if score_range is not None:
            _set_score_range(net.module, score_range)
        # What save_model needs to rebuild the architecture (and fit, to tell a collapsed
        # prior from a collapse in fine-tuning). A copy: a refit of this prior (other
        # hidden_sizes, features) rebinds its attributes, and must not change what an
        # earlier net saves; the copy shares them, so costs nothing.
        net.prior_ = copy.copy(self)
        net.prior_.__dict__.update(getattr(self, "_fitted_architecture_", {}))
        net.fit(X, y.astype(np.float32))  # seeded by its random_state
        return net


def warn_if_unranked(y):
    """Warn when a rater's scores cannot say how the rater ranks images.

    One score, or several all equal (a rater who rated every image 500, as one of the
    100 raters of ``../shared``'s liking set did), orders no pair of images, yet
    personalizing on them moves the scores of the images unevenly (fine-tuning, the
    rater's task-vector coefficients, a baseline's ridge): the prior's ranking at best,
    scrambled at worst. Every estimator's ``personalize`` calls it (the baselines' from
    :meth:`PersonalizedBaseline.fit <sklearn_piaa.baselines.PersonalizedBaseline.fit>`),
    so the warning reads the same whichever learned the prior. Inside an evaluation
    (``_SCALE_CHECKED``) equal scores are not warned about at every draw: a rater whose
    scores are all equal has undefined SROCC, which the evaluation's own warning names
    with its cause.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        The rater's checked scores.
    """
    if len(y) == 1:
        warn_caller("personalize got one rated image: it says nothing about how this "
                    "rater ranks images, so the personalized model ranks images as the "
                    "prior does at best. Personalize on several of the rater's ratings "
                    "(10 or more), or predict with the prior.")
    elif np.ptp(y) == 0 and not getattr(_SCALE_CHECKED, "on", False):
        warn_caller(f"personalize got {len(y)} rated images, all scored {y[0]:g}: they "
                    "say nothing about how this rater ranks images, so the personalized "
                    "model ranks images as the prior does at best. Personalize on "
                    "ratings that differ (10 or more), or predict with the prior.")


def _fitting(defaults, given, net):
    """The fine-tuning net's parameters: ``given`` over ``defaults``, without the
    defaults that the criterion or optimizer finally used cannot take.

    The defaults set the package's loss and Adam's hyperparameters; a user's
    ``criterion=torch.nn.L1Loss`` or ``optimizer=torch.optim.SGD`` takes neither
    ``kind`` nor ``betas``.
    """
    params = {**defaults, **given}
    criterion = params.get("criterion", net.criterion)
    ours = isinstance(criterion, type) and issubclass(criterion, AestheticLoss)
    optimizer = params.get("optimizer", net.optimizer)
    adam = isinstance(optimizer, type) and issubclass(optimizer, (torch.optim.Adam,
                                                                   torch.optim.AdamW))
    for key in defaults:
        if key in given:
            continue
        if key.startswith("criterion__") and not ours:
            del params[key]
        elif key.startswith("optimizer__") and not adam and not (
                key == "optimizer__weight_decay" and _takes(optimizer, "weight_decay")):
            del params[key]
    return params


def _takes(factory, name):
    """Whether ``factory`` (an optimizer class) has a parameter ``name``."""
    try:
        return name in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def check_scales(prior, tasks, advice, raters=None, score_range=None):
    """Check each rater's scores against a meta-learned prior's output range, up front.

    Raters with scores the head cannot reach are refused, by name: ``personalize``
    refuses them too, but only a draw that puts such a score in the support set meets
    it, so a run failed or not by the seed. Raters whose scores look like another
    scale are named in one warning, from all their scores (``personalize`` would warn
    at every draw: callers set ``_SCALE_CHECKED.on`` while they personalize). A
    task-vector model is checked as its base is. The baselines fit any scale: raters
    outside their training scores' range are named in a warning instead.

    Parameters
    ----------
    prior : estimator
        Checked when it is fitted and has a ``score_range_`` (a meta-learned prior, a
        baseline), or a fitted base of one (a :class:`TaskVectorRegressor`).
    tasks : TaskSet
        The raters about to be personalized.
    advice : str
        What to do about raters of another scale, ending the messages.
    raters : sequence, default=None
        The raters of ``tasks`` to check; ``None`` means all.
    score_range : (float, float), default=None
        The test raters' scale, given in place of the prior's: raters with scores
        outside it are refused, whatever the prior, as ``personalize`` refuses them at
        the draws that meet such a score; a range far wider than all their scores is
        warned of, as ``fit`` warns of it.
    """
    raters = tasks.raters if raters is None else raters
    if score_range is not None:
        low, high = check_score_range(score_range)
        bad, _ = _raters_outside(tasks, low, high, raters)
        if bad:
            raise ValueError(
                f"{len(bad)} test rater(s) have scores outside the given "
                f"{score_range_given(low, high)}: {listing(bad)}. Pass the range of the "
                "test raters' scale.")
        if len(raters):
            warn_if_given_range_too_wide(
                np.concatenate([tasks.y[tasks.indices[r]] for r in raters]), low, high,
                "the test raters' scores", pooled=len(raters) > 1)
        return
    prior = getattr(prior, "base_", prior)  # a task-vector model personalizes its base
    if not hasattr(prior, "score_range_"):
        return
    neural = isinstance(prior, MetaAestheticRegressor)
    low, high = prior.score_range_
    bad, inside = _raters_outside(tasks, low, high, raters)
    odd = another_scale_raters(tasks, low, high, inside)
    if bad and neural:
        raise ValueError(
            f"{len(bad)} test rater(s) have scores outside the prior's output range "
            f"({low:g}, {high:g}): {listing(bad)}. If they use another scale than the "
            "training raters, " + advice)
    if bad:
        warn_caller(
            f"{len(bad)} test rater(s) have scores outside the range of the baseline's "
            f"training scores ({low:g}, {high:g}): {listing(bad)}. It fits them as given, "
            "from its prior's scores on the training scale; if they use another scale, "
            + advice)
    if odd:
        cost = ("Personalizing squeezes such a scale into a corner of the prior's output "
                "and learns little" if neural else "The baseline fits them from its "
                "prior's scores on the training scale")
        warn_caller(
            f"{len(odd)} test rater(s) have scores that look like another scale than the "
            f"prior's ({low:g}, {high:g}): {listing(odd, sep='; ')}. {cost}; if they use "
            "another scale, " + advice)


def _raters_outside(tasks, low, high, raters):
    """The raters with scores outside ``(low, high)``, described, and the others."""
    bad, inside = [], []
    for r in raters:
        y = np.asarray(tasks.y[tasks.indices[r]], dtype=np.float64)
        outside = scores_outside(y, low, high)
        if outside.any():
            bad.append(f"{r!r} ({int(outside.sum())} of {len(y)}, e.g. "
                       f"{_score_text(np.float32(y[outside][0]), low, high)})")
        else:
            inside.append(r)
    return bad, inside
