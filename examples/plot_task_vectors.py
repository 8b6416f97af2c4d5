"""
Personalizing by mixing task vectors
====================================

:class:`~sklearn_piaa.TaskVectorRegressor` (Yun & Choo, ECCV 2024) personalizes a
new rater by mixing fine-tuned versions of a base network: task vectors
``tau_k = theta_k - theta_0`` and only ``K`` coefficients per rater, fitted on their
few ratings with a rank loss. Here the base is a BLG-PIAA prior (used as it is,
through :class:`sklearn.frozen.FrozenEstimator`), the versions are the prior
fine-tuned on clusters of training raters, and the three ways to personalize --
BLG's fine-tuning, the mixture, and the mixture fine-tuned -- are compared on the
same held-out raters and support draws. Small settings, so that it runs in under a
minute; :doc:`/benchmarks` has full-size runs.
"""

# %%
# Data and the BLG prior
# ----------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.frozen import FrozenEstimator

from sklearn_piaa import (
    MetaAestheticRegressor,
    TaskSet,
    TaskVectorRegressor,
    UserGroupShuffleSplit,
    embed_images,
    evaluate_personalization,
)
from sklearn_piaa.datasets import make_aesthetic_benchmark
from sklearn_piaa.report import METHOD_LABELS, format_table

data = make_aesthetic_benchmark(n_images=160, n_raters=36, images_per_rater=100,
                                image_size=64, random_state=0)
X = embed_images(data.images)[data.image_index]
y, groups = data.y, data.groups
train, test = next(UserGroupShuffleSplit(n_splits=1, test_size=8, random_state=0)
                   .split(X, y, groups))
train_tasks = TaskSet.from_arrays(X[train], y[train], groups[train])
test_tasks = TaskSet.from_arrays(X[test], y[test], groups[test])

blg = MetaAestheticRegressor(backbone=None, hidden_sizes=(128,), n_iterations=60,
                             outer_lr=0.1, random_state=0).fit(train_tasks)

# %%
# Task vectors from clusters of training raters
# ---------------------------------------------
tv = TaskVectorRegressor(FrozenEstimator(blg), n_sources=4, random_state=0).fit(train_tasks)
for name, raters in tv.source_raters_.items():
    print(f"source {name}: {len(raters)} training raters")

# %%
# Three ways to personalize, same raters and draws
# ------------------------------------------------
models = {"blg": blg, "tv_blg": tv,
          "tv_blg_finetune": TaskVectorRegressor(FrozenEstimator(blg), n_sources=4,
                                                 finetune_epochs=20, random_state=0)
          .fit(train_tasks)}
results = {name: evaluate_personalization(model, test_tasks, n_support=(10, 50),
                                          n_repeats=2, random_state=0)
           for name, model in models.items()}
# The keys name the package's methods, which these models are: label them so.
print(format_table(results, labels=METHOD_LABELS))

# %%
# Each rater's coefficients
# -------------------------
# Fitted on 50 of the rater's images: which fine-tuned versions the rater's taste
# is made of, relative to the prior.
coefs = np.array([tv.personalize(*[a[:50] for a in test_tasks[r]], random_state=0)
                  .coefficients_ for r in test_tasks.raters])
fig, ax = plt.subplots(figsize=(6, 3))
im = ax.imshow(coefs.T, cmap="RdBu_r", vmin=-np.abs(coefs).max(), vmax=np.abs(coefs).max())
ax.set_xlabel("held-out rater")
ax.set_ylabel("task vector (cluster)")
ax.set_yticks(range(len(tv.source_names_)), tv.source_names_)
fig.colorbar(im, ax=ax, label="coefficient")
fig.tight_layout()
plt.show()
