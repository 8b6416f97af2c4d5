"""
Model selection: GridSearchCV over the inner learning rate and steps
====================================================================

:class:`~sklearn_piaa.MetaAestheticRegressor` is a scikit-learn estimator, so
:class:`~sklearn.model_selection.GridSearchCV` tunes it. Two things make the search
measure what matters for personalization:

* the folds are formed over **raters** (:class:`~sklearn_piaa.UserGroupKFold`): each
  candidate is meta-trained on some raters and scored on raters it has never seen;
* the score is **personalized SROCC** (:class:`~sklearn_piaa.PersonalizedSROCCScorer`):
  each held-out rater's copy of the prior is fine-tuned on 10 of their images and
  scored on the rest, as in the paper's protocol.

Both need the rater id of every row. With scikit-learn's metadata routing enabled,
``groups`` passed to ``fit`` reaches the splitter, the estimator's ``fit`` and the
scorer.
"""

# %%
# Data: embed once
# ----------------
import matplotlib.pyplot as plt
import pandas as pd
import sklearn
from sklearn.model_selection import GridSearchCV

from sklearn_piaa import (
    MetaAestheticRegressor,
    PersonalizedSROCCScorer,
    UserGroupKFold,
    embed_images,
)
from sklearn_piaa.datasets import make_aesthetic_benchmark

data = make_aesthetic_benchmark(n_images=160, n_raters=30, images_per_rater=80,
                                image_size=64, random_state=0)
X = embed_images(data.images)[data.image_index]
y, groups = data.y, data.groups

# %%
# The search
# ----------
# Four candidates, three rater folds: 12 meta-trainings plus the refit of the best
# candidate. The estimator is kept small (40 outer iterations) so that the example
# runs in well under a minute.
sklearn.set_config(enable_metadata_routing=True)

meta = MetaAestheticRegressor(backbone=None, hidden_sizes=(64,), n_iterations=40,
                              support_size=40, query_size=20, outer_lr=0.1,
                              random_state=0)
search = GridSearchCV(
    meta,
    param_grid={"inner_lr": [1e-4, 1e-3], "inner_steps": [1, 5]},
    cv=UserGroupKFold(n_splits=3, random_state=0),
    scoring=PersonalizedSROCCScorer(n_support=10),
)
search.fit(X, y, groups=groups)
sklearn.set_config(enable_metadata_routing=False)

# %%
# The result table
# ----------------
# ``cv_results_`` has one row per candidate: mean and spread over the three folds of
# the mean personalized SROCC of each fold's held-out raters.
results = pd.DataFrame(search.cv_results_)
table = results[["param_inner_lr", "param_inner_steps", "mean_test_score",
                 "std_test_score", "rank_test_score", "mean_fit_time"]]
table.sort_values("rank_test_score").round(
    {"mean_test_score": 3, "std_test_score": 3, "mean_fit_time": 2})

# %%
print("best:", search.best_params_, f"SROCC {search.best_score_:.3f}")

# %%
# Each candidate's fold scores
# ----------------------------
# Each fold scores a different handful of raters, so the folds disagree; read
# differences between candidates against that spread before choosing.
fig, ax = plt.subplots(figsize=(6, 3))
labels = [f"lr={p['inner_lr']:g}\nsteps={p['inner_steps']}" for p in search.cv_results_["params"]]
for i in range(search.n_splits_):
    ax.plot(labels, results[f"split{i}_test_score"], "o", color="grey", alpha=0.6,
            label="fold" if i == 0 else None)
ax.errorbar(labels, results["mean_test_score"], yerr=results["std_test_score"], fmt="s",
            color="C3", capsize=4, label="mean ± std")
ax.set_ylabel("personalized SROCC (10 images)")
ax.legend(fontsize="small")
fig.tight_layout()
plt.show()
