"""Figures of the paper's kind (needs the optional ``plot`` extra: matplotlib)."""

import numpy as np

__all__ = ["plot_rater_srocc", "plot_finetune_history"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'sklearn-piaa[plot]'") \
            from None
    return plt


def plot_rater_srocc(result, n_support=None, ax=None):
    """Per-rater SROCC bars, prior vs personalized (the paper's Fig. 4).

    Parameters
    ----------
    result : PersonalizationResult
        From :func:`evaluate_personalization`.
    n_support : int, default=None
        Support size to show; ``None`` takes the smallest evaluated.
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib Axes
    """
    plt = _pyplot()
    table = result.table
    if n_support is None:
        n_support = int(table["n_support"].min())
    rows = table[table["n_support"] == n_support]
    if len(rows) == 0:
        raise ValueError(f"no results at n_support={n_support}; evaluated: "
                         f"{sorted(set(table['n_support'].tolist()))}.")
    raters = list(dict.fromkeys(rows["rater"].tolist()))
    prior = [np.nanmean(rows["srocc_prior"][rows["rater"] == r]) for r in raters]
    personal = [np.nanmean(rows["srocc_personalized"][rows["rater"] == r]) for r in raters]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4, 0.5 * len(raters)), 3))
    pos = np.arange(len(raters))
    ax.bar(pos - 0.2, prior, width=0.4, label="prior")
    ax.bar(pos + 0.2, personal, width=0.4, label=f"personalized ({n_support} images)")
    ax.set_xticks(pos, [str(r) for r in raters], rotation=90)
    ax.set_ylabel("SROCC")
    ax.legend(fontsize="small")
    return ax


def plot_finetune_history(net, keys=("train_loss",), ax=None):
    """Loss (or any recorded score) per fine-tuning epoch of a personalized net (Fig. 9).

    Parameters
    ----------
    net : PersonalizedNet
        A fitted net, e.g. from :meth:`MetaAestheticRegressor.personalize`; add an
        ``EpochScoring`` callback to record query scores.
    keys : tuple of str, default=("train_loss",)
        Columns of ``net.history`` to draw.
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib Axes
    """
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    for key in keys:
        missing = [h["epoch"] for h in net.history if key not in h]
        if missing:
            raise ValueError(f"net.history has no {key!r} at epoch(s) {missing[:5]}.")
        ax.plot(net.history[:, "epoch"], net.history[:, key], marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.legend(fontsize="small")
    return ax
