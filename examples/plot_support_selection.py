"""
Choosing the support images a new rater rates
=============================================

In the paper's protocol a new rater rates a *random* sample of images before the
prior is personalized. :class:`~sklearn_piaa.SupportSelector` picks the sample
instead:

- ``"kcenter"``: k-center greedy on standardized embeddings (Sener & Savarese, 2018):
  images that cover the pool;
- ``"disagreement"``: the images on which the raters seen in meta-training are
  predicted to disagree most (a committee of per-rater taste models);
- ``"hybrid"``: k-center greedy with each distance weighted by disagreement.

:func:`~sklearn_piaa.compare_support_strategies` measures whether it pays: for each
held-out rater and draw it holds out a random query set first, then personalizes the
prior on the chosen support and on a random support of the same size from the same
pool, and scores both on the *same* query images. The gain over random is a paired
difference (:func:`~sklearn_piaa.report.paired_difference`). The settings are small so
that the example runs in well under a minute; ``benchmarks/support_selection.py``
runs the full-size comparison, and the :doc:`/benchmarks` page shows that selection
does not always help.
"""

# %%
# Data: embed once, split raters
# ------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA

from sklearn_piaa import (
    MetaAestheticRegressor,
    SupportSelector,
    TaskSet,
    UserGroupShuffleSplit,
    compare_support_strategies,
    embed_images,
)
from sklearn_piaa.datasets import make_aesthetic_benchmark
from sklearn_piaa.report import paired_difference

data = make_aesthetic_benchmark(n_images=160, n_raters=36, images_per_rater=100,
                                image_size=64, random_state=0)
X = embed_images(data.images)[data.image_index]
y, groups = data.y, data.groups
train, test = next(UserGroupShuffleSplit(n_splits=1, test_size=8, random_state=0)
                   .split(X, y, groups))
train_tasks = TaskSet.from_arrays(X[train], y[train], groups[train])
test_tasks = TaskSet.from_arrays(X[test], y[test], groups[test])

# %%
# A prior, and selectors fitted on the same training raters
# ---------------------------------------------------------
# ``"disagreement"`` and ``"hybrid"`` learn the training raters' taste models in
# ``fit``; ``"kcenter"`` only needs the embedding scale.
prior = MetaAestheticRegressor(backbone=None, hidden_sizes=(128,), n_iterations=60,
                               outer_lr=0.1, random_state=0).fit(train_tasks)
selectors = {name: SupportSelector(name).fit(train_tasks)
             for name in ("kcenter", "disagreement", "hybrid")}

# %%
# What each strategy picks for one rater
# --------------------------------------
# The first held-out rater's images in the plane of their two main principal
# components, with the 10 images each strategy would ask them to rate; the colour is
# the training raters' predicted disagreement.
X_rater, _ = test_tasks[test_tasks.raters[0]]
plane = PCA(2, random_state=0).fit_transform(X_rater)
spread = selectors["disagreement"].disagreement(X_rater)
picks = {"random": np.random.RandomState(0).permutation(len(X_rater))[:10],
         **{name: sel.select(X_rater, 10) for name, sel in selectors.items()}}
fig, axes = plt.subplots(1, 4, figsize=(11, 2.9), sharex=True, sharey=True)
for ax, (name, idx) in zip(axes, picks.items()):
    ax.scatter(*plane.T, c=spread, s=12, cmap="viridis")
    ax.scatter(*plane[idx].T, s=70, facecolors="none", edgecolors="red", linewidths=1.5)
    ax.set_title(name)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()

# %%
# Chosen versus random support, paired on the same query images
# -------------------------------------------------------------
results = compare_support_strategies(prior, test_tasks, selectors, n_support=(10, 25),
                                     n_query=40, n_repeats=2, random_state=0)
for k in (10, 25):
    print(f"{k} support images: random "
          f"{results['random'].summary[k]['personalized'].mean:.3f}")
    for name in selectors:
        mean, se, n = paired_difference(results[name], results["random"])[k]
        print(f"  {name:<13} {results[name].summary[k]['personalized'].mean:.3f}  "
              f"vs random {mean:+.3f} ± {se:.3f} (SE over {n} raters)")

# %%
# The same numbers as a figure
# ----------------------------
# Left: mean SROCC over raters. Right: each rater's gain over random support (mean
# over draws); points below zero are raters for whom choosing did worse than chance.
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
names = list(results)
for j, k in enumerate((10, 25)):
    means = [results[n].summary[k]["personalized"].mean for n in names]
    stds = [results[n].summary[k]["personalized"].std for n in names]
    left.bar(np.arange(len(names)) + (j - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=3,
             label=f"{k} images")
    for i, name in enumerate(names[1:]):
        a = results[name].table[results[name].table["n_support"] == k]
        b = results["random"].table[results["random"].table["n_support"] == k]
        gain = a["srocc_personalized"] - b["srocc_personalized"]  # same rows, same order
        per_rater = [gain[a["rater"] == r].mean() for r in dict.fromkeys(a["rater"])]
        right.scatter(np.full(len(per_rater), i + (j - 0.5) * 0.3), per_rater, s=14,
                      color=f"C{j}", label=f"{k} images" if i == 0 else None)
left.set_xticks(np.arange(len(names)), names)
left.set_ylabel("SROCC, mean ± std over raters")
left.legend(fontsize="small")
right.axhline(0, color="grey", lw=0.8)
right.set_xticks(np.arange(len(names) - 1), names[1:])
right.set_ylabel("SROCC gain over random, per rater")
right.legend(fontsize="small")
fig.tight_layout()
plt.show()
