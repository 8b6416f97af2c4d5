"""
Comparing methods on the same raters and draws (the paper's Table I)
====================================================================

A fair comparison meta-trains every method on the same raters and personalizes every
method on the same held-out raters *and the same random support images*.
:func:`sklearn_piaa.report.compare_methods` does that and
:func:`~sklearn_piaa.report.format_table` prints the paper's Table I layout: one row
per method, mean ± std over held-out raters of the personalized SROCC per support size,
then the prior's zero-shot SROCC and each method's paired difference from BLG-PIAA
(:func:`~sklearn_piaa.report.paired_difference`: same raters, same draws).
``sklearn-piaa table1`` runs the same thing from the command line.

Methods here: no prior (a fresh head on ImageNet features), BA-PIAA's generic prior
trained on the pooled ratings (``average``), Reptile, and BLG-PIAA. The settings are
small so that the example runs in under a minute; see the :doc:`/benchmarks` page for
a full-size run.
"""

# %%
# Data: embed once, split raters
# ------------------------------
import matplotlib.pyplot as plt
import numpy as np

from sklearn_piaa import TaskSet, UserGroupShuffleSplit, embed_images
from sklearn_piaa.datasets import make_aesthetic_benchmark
from sklearn_piaa.report import TABLE1_METHODS, compare_methods, format_table

data = make_aesthetic_benchmark(n_images=160, n_raters=36, images_per_rater=100,
                                image_size=64, random_state=0)
X = embed_images(data.images)[data.image_index]
y, groups = data.y, data.groups
train, test = next(UserGroupShuffleSplit(n_splits=1, test_size=8, random_state=0)
                   .split(X, y, groups))
train_tasks = TaskSet.from_arrays(X[train], y[train], groups[train])
test_tasks = TaskSet.from_arrays(X[test], y[test], groups[test])

# %%
# Every method, same raters, same support draws
# ---------------------------------------------
# Keyword arguments after the protocol's own go to every
# :class:`~sklearn_piaa.MetaAestheticRegressor`.
results = compare_methods(
    train_tasks, test_tasks, algorithms=("none", "average", "reptile", "blg"),
    n_support=(10, 50), n_repeats=1, random_state=0,
    backbone=None, hidden_sizes=(128,), n_iterations=60, outer_lr=0.1)
print(format_table(results))

# %%
# The same numbers as a figure
# ----------------------------
sizes = (10, 50)
fig, ax = plt.subplots(figsize=(8, 3.2))
width = 0.8 / len(results)
for i, (name, res) in enumerate(results.items()):
    means = [res.summary[k]["personalized"].mean for k in sizes]
    stds = [res.summary[k]["personalized"].std for k in sizes]
    ax.bar(np.arange(len(sizes)) + (i - (len(results) - 1) / 2) * width, means, width,
           yerr=stds, capsize=3, label=TABLE1_METHODS[name])
ax.set_xticks(np.arange(len(sizes)), [f"{k} support images" for k in sizes])
ax.set_ylabel("SROCC, mean ± std over raters")
ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
fig.tight_layout()
plt.show()
