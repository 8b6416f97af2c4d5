"""
Gradient maps: where the prior and two personalized models look
================================================================

BLG-PIAA shows input-gradient maps of its prior and of personalized models (the
paper's Figs. 7, 8 and 10): the magnitude of the predicted score's gradient with
respect to each pixel. :func:`~sklearn_piaa.gradient_map` computes it for a fitted
prior or any personalized net, through the frozen EfficientNet-Lite0 backbone and the
head; :func:`~sklearn_piaa.plotting.plot_gradient_map` draws it over the image.

Here a prior is meta-trained on the built-in benchmark and personalized to the two
raters whose tastes (the benchmark's ground truth) differ most; the maps of the three
models on the same images show what each has learned to attend to.
"""

# %%
# A prior and two personalized models
# -----------------------------------
import matplotlib.pyplot as plt
import numpy as np

from sklearn_piaa import MetaAestheticRegressor
from sklearn_piaa.datasets import make_aesthetic_benchmark
from sklearn_piaa.plotting import plot_gradient_map

data = make_aesthetic_benchmark(n_images=240, n_raters=20, images_per_rater=120,
                                image_size=96, random_state=0)
X = data.images[data.image_index]
meta = MetaAestheticRegressor(hidden_sizes=(128,), n_iterations=60, support_size=40,
                              query_size=20, outer_lr=0.1, random_state=0)
meta.fit(X, data.y, groups=data.groups)

# The two raters whose taste vectors (``rater_weights``, consensus included) point
# furthest apart.
w = data.rater_weights / np.linalg.norm(data.rater_weights, axis=1, keepdims=True)
a, b = np.unravel_index(np.argmin(w @ w.T), (len(w), len(w)))
nets = {}
for rater in (a, b):
    mask = data.groups == data.rater_ids[rater]
    nets[str(data.rater_ids[rater])] = meta.personalize(X[mask], data.y[mask], max_epochs=40,
                                                   lr=3e-4)
print("raters:", ", ".join(map(str, nets)))

# %%
# The maps
# --------
# Each row is one image; the columns are the prior and the two raters' models. Maps
# are normalized per panel, so they compare where each model looks, not how strongly.
images = data.images[:3]
fig, axes = plt.subplots(len(images), 3, figsize=(7, 2.4 * len(images)))
for row, image in zip(axes, images):
    plot_gradient_map(meta, image, ax=row[0], title="prior")
    for ax, (rater, net) in zip(row[1:], nets.items()):
        plot_gradient_map(net, image, ax=ax, title=rater)
plt.tight_layout()
plt.show()
