"""Figures of the paper's kind (needs the optional ``plot`` extra: matplotlib)."""

import numbers

import numpy as np
from sklearn.exceptions import NotFittedError

from .evaluation import PersonalizationResult

__all__ = ["plot_rater_srocc", "plot_finetune_history", "plot_parameter_study",
           "plot_gradient_map"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'sklearn-piaa[plot]'") \
            from None
    return plt


def plot_rater_srocc(result, n_support=None, ax=None):
    """Per-rater SROCC bars, prior vs personalized (as in the paper's Figure 4).

    Parameters
    ----------
    result : PersonalizationResult
        From :func:`~sklearn_piaa.evaluate_personalization`.
    n_support : int, default=None
        Support size to show; ``None`` takes the smallest evaluated.
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    TypeError
        When ``result`` is not a PersonalizationResult (a list or dict of them, say:
        plot one at a time).
    ValueError
        When ``result`` has no rows (every rater skipped), or none at ``n_support``.
    """
    if not isinstance(result, PersonalizationResult):
        # its .table would be read as a missing attribute
        raise TypeError("plot_rater_srocc needs one PersonalizationResult (as "
                        "evaluate_personalization returns); got "
                        f"{type(result).__name__}. Plot each result of a list or dict "
                        "on its own axes.")
    plt = _pyplot()
    table = result.table
    if len(table) == 0:
        # Every rater was skipped at every size: there is no bar to draw.
        skipped = {k: len(raters) for k, raters in result.skipped.items()}
        raise ValueError("result holds no evaluated rater: its table is empty (raters "
                         f"skipped per support size: {skipped}); there is nothing to plot.")
    if n_support is None:
        n_support = int(table["n_support"].min())
    elif isinstance(n_support, bool) or not isinstance(n_support, numbers.Integral):
        # "10" found no rows: "no results at n_support=10; evaluated: [5, 10]"
        raise ValueError(f"n_support must be an integer, one of the support sizes "
                         f"evaluated; got {n_support!r}.")
    rows = table[table["n_support"] == n_support]
    if len(rows) == 0:
        raise ValueError(f"no results at n_support={n_support}; evaluated: "
                         f"{sorted(set(table['n_support'].tolist()))}.")
    # grouped by the ids as Python objects: rows["rater"] == ("ds", 8) compared a tuple
    # id element by element (NaN bars, or a broadcasting error)
    of = {}
    for i, r in enumerate(rows["rater"].tolist()):
        of.setdefault(r, []).append(i)
    raters = list(of)
    prior = np.array([_mean_defined(rows["srocc_prior"][of[r]]) for r in raters])
    personal = np.array([_mean_defined(rows["srocc_personalized"][of[r]]) for r in raters])
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4, 0.5 * len(raters)), 3))
    pos = np.arange(len(raters))
    ax.bar(pos - 0.2, prior, width=0.4, label="prior")
    ax.bar(pos + 0.2, personal, width=0.4, label=f"personalized ({n_support} images)")
    # A NaN bar is no bar at all: mark where SROCC is undefined (constant ratings or
    # predictions in every draw) rather than leave a gap that reads as zero.
    undefined = np.r_[pos[np.isnan(prior)] - 0.2, pos[np.isnan(personal)] + 0.2]
    if len(undefined):
        ax.plot(undefined, np.zeros(len(undefined)), "x", color="black",
                label="undefined SROCC")
    ax.set_xticks(pos, [str(r) for r in raters], rotation=90)
    ax.set_xlabel("rater")
    ax.set_ylabel("SROCC")
    ax.legend(fontsize="small")
    return ax


def _mean_defined(values):
    # np.nanmean warns on an all-NaN slice; an undefined mean is NaN, said by the plot
    ok = np.isfinite(values)
    return float(values[ok].mean()) if ok.any() else np.nan


def plot_finetune_history(net, keys=("train_loss",), ax=None):
    """Loss (or any recorded score) per fine-tuning epoch of a personalized net (Figure 9).

    Parameters
    ----------
    net : PersonalizedNet
        A fitted net, e.g. from :meth:`MetaAestheticRegressor.personalize()
        <sklearn_piaa.MetaAestheticRegressor.personalize>`; add an ``EpochScoring``
        callback to record query scores.
    keys : str or tuple of str, default=("train_loss",)
        Columns of ``net.history`` to draw.
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    TypeError
        When ``net`` is not a skorch net (a prior or a baseline: no epochs to show).
    ValueError
        When its history records no epoch, or not ``keys``.
    """
    from skorch import NeuralNet

    if not isinstance(net, NeuralNet):  # a prior or a baseline has no epochs to show
        raise TypeError("plot_finetune_history needs a PersonalizedNet (or another skorch "
                        f"net), e.g. from personalize(); got {type(net).__name__}.")
    if isinstance(keys, str):  # one name, not its letters
        keys = (keys,)
    if not len(getattr(net, "history", ())):
        raise ValueError("net.history records no epoch: the net was not fine-tuned here "
                         "(a net read by load_model has no history; max_epochs=0 runs "
                         "none).")
    keys = tuple(keys)
    if not keys:
        raise ValueError("keys is empty: name at least one column of net.history.")
    for key in keys:  # before a figure is made: a refused call leaves none open
        missing = [h["epoch"] for h in net.history if key not in h]
        if missing:
            raise ValueError(f"net.history has no {key!r} at epoch(s) {missing[:5]}.")
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    for key in keys:
        ax.plot(net.history[:, "epoch"], net.history[:, key], marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel(keys[0] if len(keys) == 1 else "value")
    ax.legend(fontsize="small")
    return ax


def plot_parameter_study(search, params=None, axes=None, metric=None):
    """Score against each searched parameter, one panel each (the paper's Figure 5).

    Reads a fitted :class:`~sklearn.model_selection.GridSearchCV` (or any search with
    ``cv_results_`` of a grid). The paper varies one setting at a time -- support and
    query sizes, tasks per batch k, inner steps S -- holding the others at their
    defaults: give the search a list of grids, one per parameter (``[{"inner_steps":
    [1, 3, 5]}, {"tasks_per_batch": [1, 2, 4]}]``), and each panel shows the candidates
    of its parameter. In a full grid (or a sub-grid of several parameters), a panel
    shows the best candidate of a grid that varies its parameter (by the score
    plotted) and the candidates of that grid that differ from it in that parameter
    alone. A successive-halving search scores a candidate once per round it reached:
    each is drawn with the score of its last round (candidates dropped early were
    scored on fewer resources). A randomized search's candidates seldom share their
    other values: plot its ``cv_results_`` against each parameter instead.

    Parameters
    ----------
    search : fitted search estimator
    params : str or list of str, default=None
        Parameters to plot; ``None`` means every searched one.
    axes : Axes or sequence of matplotlib Axes, default=None
        One per parameter.
    metric : str, default=None
        The score to plot when the search used several (``scoring={"srocc": ...,
        ...}``); ``None`` means the one it refit on.

    Returns
    -------
    ndarray of matplotlib Axes
        The panels, one per parameter.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        When ``search`` is not fitted.
    ValueError
        For a parameter that was not searched, a score it did not compute, or too few
        ``axes``.
    """
    if not hasattr(search, "cv_results_"):
        raise NotFittedError(f"this {type(search).__name__} is not fitted yet: fit it before "
                             "plotting its results.")
    plt = _pyplot()
    results = search.cv_results_
    metrics = sorted(k[len("mean_test_"):] for k in results if k.startswith("mean_test_"))
    if metric is None and "mean_test_score" not in results:
        refit = getattr(search, "refit", None)
        metric = refit if isinstance(refit, str) else None
        if metric is None:
            raise ValueError(f"the search scored several metrics {metrics}: choose one "
                             "with metric=.")
    suffix = "score" if metric is None else metric
    if f"mean_test_{suffix}" not in results:
        raise ValueError(f"the search has no score {metric!r}; it scored {metrics}.")
    names = sorted({k[len("param_"):] for k in results if k.startswith("param_")})
    params = names if params is None else [params] if isinstance(params, str) else list(params)
    unknown = [p for p in params if p not in names]
    if unknown:
        raise ValueError(f"parameter(s) {unknown} were not searched; searched: {names}.")
    if not params:
        raise ValueError("params is empty: name at least one searched parameter.")
    if axes is not None:
        axes = np.ravel(np.asarray(axes, dtype=object))  # one Axes, a list or a grid
        if len(axes) < len(params):
            raise ValueError(f"{len(params)} parameter(s) to plot but {len(axes)} Axes.")
    else:
        _, axes = plt.subplots(1, len(params), figsize=(3.2 * len(params), 3), squeeze=False)
        axes = axes[0]
    mean, std = results[f"mean_test_{suffix}"], results[f"std_test_{suffix}"]
    cands = results["params"]
    rounds = results.get("iter")  # a successive-halving search: one row per round
    last = {}
    for i, cand in enumerate(cands):
        last[repr(sorted(cand.items()))] = i  # rounds come in order
    kept = set(last.values()) if rounds is not None else set(range(len(cands)))
    # The best by the score plotted (a multi-metric search that did not refit has no
    # best_params_; without one a full grid drew every candidate in every panel).
    rank = results.get(f"rank_test_{suffix}")
    order = (np.argsort(rank, kind="stable") if rank is not None
             else np.argsort(np.where(np.isfinite(mean), -mean, np.inf), kind="stable"))
    for ax, name in zip(axes, params):
        column = results[f"param_{name}"]
        # The candidates of a (sub-)grid that differ in this parameter alone, by their
        # other values (another sub-grid's candidates lack some of its parameters, and
        # were taken for matches of their values); grouped once, not per candidate (a
        # randomized search of 2000 candidates took 14 s).
        grids = {}
        for i in sorted(kept):
            if name in cands[i]:
                grids.setdefault(_others(cands[i], name), []).append(i)
        # The best candidate of a grid that varies this parameter: a sub-grid holding
        # one value of it hid another's sweep behind a one-point panel.
        searched = [grids[_others(cands[i], name)] for i in order
                    if i in kept and name in cands[i]]
        rows = list(next((g for g in searched if len(g) > 1), searched[0]))
        # Numbers in order, then None and other values (tuples: hidden_sizes) in grid
        # order: numpy can order neither a None among numbers nor tuples as values.
        rows.sort(key=lambda i: (0, column[i]) if isinstance(column[i], numbers.Real)
                  and not isinstance(column[i], bool) else (1, 0))
        x = [column[i] for i in rows]
        ax.errorbar(range(len(rows)), mean[rows], yerr=std[rows], marker="o", capsize=3)
        ax.set_xticks(range(len(rows)), [f"{v:g}" if isinstance(v, float) else str(v)
                                         for v in x])
        ax.set_xlabel(name)
        ax.set_ylabel("mean test score" if metric is None else f"mean test {metric}")
    return np.asarray(axes[:len(params)])


def _others(candidate, name):
    """A candidate's parameters but ``name``, as a key: equal values one key whatever
    their type (0.01 and np.float64(0.01) of two sub-grids, 1 and 1.0), as ``==`` tells
    them; an unhashable value by its repr."""
    def key(v):
        if isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)):
            return float(v)
        try:
            hash(v)
        except TypeError:
            return repr(v)
        return v

    return tuple(sorted(((k, key(v)) for k, v in candidate.items() if k != name),
                        key=lambda item: item[0]))


def plot_gradient_map(model, image, ax=None, alpha=0.6, cmap="inferno", title=None):
    """The image with its input-gradient map on top (the paper's Figures 7, 8 and 10).

    The photo is shown at its own size and aspect ratio. The map is of the square view
    the network sees (the photo resized to its input size, see
    :func:`~sklearn_piaa.gradient_map`), and is stretched back onto the photo with the
    network's resampling, bilinear: a pixel of the map lies over the part of the photo
    it was computed from.

    Parameters
    ----------
    model : MetaAestheticRegressor or PersonalizedNet
        As for :func:`~sklearn_piaa.gradient_map`.
    image : str, path-like, PIL.Image.Image or ndarray (H, W, 3) uint8
    ax : matplotlib Axes, default=None
    alpha : float, default=0.6
        Opacity of the map.
    cmap : str, default="inferno"
    title : str, default=None

    Returns
    -------
    matplotlib Axes
        The last two of its ``images`` are the photo, ``(H, W, 3)``, and the map at the
        network's input resolution, drawn over the photo's extent.
    """
    from ._features import load_image
    from .explain import gradient_map

    plt = _pyplot()
    saliency = gradient_map(model, image)
    # Normalised per map: the figure compares where, not how much.
    top = np.percentile(saliency, 99.5)
    shown = np.clip(saliency / top, 0, 1) if top > 0 else saliency
    # upright, as the network decodes it (EXIF orientation)
    photo = np.asarray(load_image(image))
    height, width = photo.shape[:2]
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3 * height / width) if width > height
                             else (3 * width / height, 3))
    background = ax.imshow(photo)
    # Over the photo's own pixels: the map's square is stretched back to the photo's
    # shape, which the network squashed to a square. Interpolating the map's values
    # (not its colours) bilinearly is the resampling the network's resize used.
    ax.imshow(shown, cmap=cmap, alpha=alpha, extent=background.get_extent(),
              interpolation="bilinear", interpolation_stage="data")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize="small")
    return ax
