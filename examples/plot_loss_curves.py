"""
Loss curves: meta-training and personalization
==============================================

Two kinds of curves tell whether training went well.

* ``history_`` of a fitted :class:`~sklearn_piaa.MetaAestheticRegressor` holds, per
  outer iteration, the mean query loss of the tasks in the batch: the squared error of
  each task's adapted copy on the task's query images, at the last inner step taken on
  them (BLG adapts on the support set, then on the query set). Losses are measured in
  quarters of the score range, which on this 1-5 scale are its points. It should fall
  and level off.
* A personalized net is a skorch regressor: its ``history`` records the fine-tuning
  loss per epoch, and any validation loss or score asked for. Here each fine-tuning
  run also scores the rater's held-out images (a skorch ``predefined_split``), the
  curve of the paper's Fig. 9, drawn with
  :func:`~sklearn_piaa.plotting.plot_finetune_history`.
"""

# %%
# Data: embed once, split raters
# ------------------------------
import matplotlib.pyplot as plt
import numpy as np
from skorch.callbacks import EpochScoring
from skorch.dataset import Dataset
from skorch.helper import predefined_split

from sklearn_piaa import MetaAestheticRegressor, embed_images, srocc_scorer
from sklearn_piaa.datasets import make_aesthetic_benchmark
from sklearn_piaa.plotting import plot_finetune_history

data = make_aesthetic_benchmark(n_images=200, n_raters=30, images_per_rater=100,
                                image_size=64, random_state=0)
features = embed_images(data.images)
X, y, groups = features[data.image_index], data.y, data.groups
test_raters = data.rater_ids[-3:]
train = ~np.isin(groups, test_raters)

# %%
# Meta-training curves
# --------------------
# BLG-PIAA with two outer step sizes (``outer_lr``, the paper's beta). The raw
# per-iteration loss is noisy -- four random raters per iteration -- so a moving average
# over 10 iterations is drawn on top. (Each algorithm records the loss of its own inner
# loop, so curves compare settings of one algorithm, not algorithms.)
fits = {}
for outer_lr in (0.1, 0.01):
    fits[outer_lr] = MetaAestheticRegressor(
        backbone=None, hidden_sizes=(128,), n_iterations=120, outer_lr=outer_lr,
        random_state=0).fit(X[train], y[train], groups=groups[train])
    print(f"outer_lr={outer_lr}: {fits[outer_lr].fit_time_:.1f} s")

fig, ax = plt.subplots(figsize=(6, 3.2))
window = np.ones(10) / 10
for outer_lr, meta in fits.items():
    line, = ax.plot(meta.history_, alpha=0.25)
    ax.plot(np.arange(9, len(meta.history_)), np.convolve(meta.history_, window, "valid"),
            color=line.get_color(), label=f"outer_lr={outer_lr}")
ax.set_xlabel("outer iteration")
ax.set_ylabel("query MSE")
ax.legend()
fig.tight_layout()

# %%
# Fine-tuning curves of held-out raters
# -------------------------------------
# Each held-out rater's prior copy is fine-tuned on 10 of their images for 30 epochs;
# the validation set is the rater's other images. Extra keyword arguments of
# :meth:`~sklearn_piaa.MetaAestheticRegressor.personalize` go to the skorch net, so
# callbacks and ``train_split`` are set there. With ``backbone=None`` the validation
# set is a plain skorch ``Dataset`` of features and column-vector scores.
meta = fits[0.1]
rng = np.random.RandomState(0)
fig, axes = plt.subplots(2, len(test_raters), figsize=(10, 5), sharex=True)
for col, rater in enumerate(test_raters):
    Xr, yr = X[groups == rater], y[groups == rater]
    order = rng.permutation(len(yr))
    support, query = order[:10], order[10:]
    valid = Dataset(Xr[query], yr[query].reshape(-1, 1))
    net = meta.personalize(
        Xr[support], yr[support], random_state=0, max_epochs=30,
        train_split=predefined_split(valid),
        callbacks=[EpochScoring(srocc_scorer, lower_is_better=False, name="valid_srocc")])
    plot_finetune_history(net, keys=("train_loss", "valid_loss"), ax=axes[0, col])
    plot_finetune_history(net, keys=("valid_srocc",), ax=axes[1, col])
    axes[0, col].set_title(str(rater))
axes[0, 0].set_ylabel("MSE")
axes[1, 0].set_ylabel("SROCC")
fig.tight_layout()
plt.show()

# %%
# Compare the two rows. Held-out MSE and held-out SROCC need not move together: MSE
# also counts where the rater sits on the scale and how widely they spread their
# scores, which 10 images estimate poorly, while SROCC counts only the ranking -- what
# PIAA is judged by. With 10 images, fine-tuning must stay short and gentle, which is
# why the defaults are 20 epochs at a small learning rate (``finetune_epochs``,
# ``finetune_lr``); a larger ``finetune_lr`` moves faster and overfits sooner.
