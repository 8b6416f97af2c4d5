"""
Parameter study: support size, tasks per batch and inner steps (the paper's Fig. 5)
===================================================================================

BLG-PIAA's Fig. 5 varies one meta-training setting at a time -- the support and
query sizes, the number of raters per outer iteration k, and the inner steps S --
and reports personalized SROCC on held-out raters. Here
:class:`~sklearn.model_selection.GridSearchCV` runs that study: a list of grids, one
per setting, each candidate meta-trained on some raters and scored on others
(:class:`~sklearn_piaa.UserGroupKFold`) after personalizing on 10 of their images
(:class:`~sklearn_piaa.PersonalizedSROCCScorer`).
:func:`~sklearn_piaa.plotting.plot_parameter_study` draws one panel per setting.

The estimator is small (a 64-unit head over precomputed embeddings, 40 outer
iterations) so that the study runs in under a minute; the figures show the method,
not the paper's numbers.
"""

# %%
# Data: the built-in benchmark, embedded once
# -------------------------------------------
import matplotlib.pyplot as plt
import sklearn
from sklearn.model_selection import GridSearchCV

from sklearn_piaa import (
    MetaAestheticRegressor,
    PersonalizedSROCCScorer,
    UserGroupKFold,
    embed_images,
)
from sklearn_piaa.datasets import make_aesthetic_benchmark
from sklearn_piaa.plotting import plot_parameter_study

data = make_aesthetic_benchmark(n_images=160, n_raters=24, images_per_rater=80,
                                image_size=64, random_state=0)
X = embed_images(data.images)[data.image_index]
y, groups = data.y, data.groups

# %%
# One grid per setting
# --------------------
# Settings missing from a grid keep the estimator's values (support 40 / query 20,
# k = 4, S = 5), as in the paper's study.
meta = MetaAestheticRegressor(backbone=None, hidden_sizes=(64,), n_iterations=40,
                              support_size=40, query_size=20, outer_lr=0.1,
                              random_state=0)
grids = [{"support_size": [10, 40]}, {"tasks_per_batch": [1, 4]},
         {"inner_steps": [1, 5]}]
sklearn.set_config(enable_metadata_routing=True)
search = GridSearchCV(meta, grids, cv=UserGroupKFold(n_splits=2, random_state=0),
                      scoring=PersonalizedSROCCScorer(n_support=10, random_state=0))
search.fit(X, y, groups=groups)
sklearn.set_config(enable_metadata_routing=False)

# %%
# The study
# ---------
# Error bars are the spread over the two rater folds.
axes = plot_parameter_study(search)
axes[0].figure.suptitle("personalized SROCC at 10 images, held-out raters")
plt.tight_layout()
plt.show()
