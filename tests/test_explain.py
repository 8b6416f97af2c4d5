"""Input-gradient maps of priors and personalized nets."""

import numpy as np
import pytest
import torch

from sklearn_piaa import MetaAestheticRegressor, gradient_map
from sklearn_piaa._features import image_tensor, load_image


def _images(n=40, seed=0):
    rng = np.random.RandomState(seed)
    imgs = rng.randint(0, 256, (n, 36, 36, 3)).astype(np.uint8)
    # Taste: brightness of the left half.
    y = np.clip(1 + imgs[:, :, :18].mean((1, 2, 3)) / 64 + 0.2 * rng.randn(n), 1, 5)
    return imgs, y, np.repeat(np.arange(4), n // 4)


@pytest.mark.parametrize("train_backbone", [False, True])
def test_map_is_the_gradient_of_the_score(train_backbone):
    imgs, y, groups = _images()
    meta = MetaAestheticRegressor(backbone="tiny_cnn", train_backbone=train_backbone,
                                  hidden_sizes=(8,), dropout=0.0, n_iterations=3,
                                  support_size=6, query_size=3, random_state=0)
    meta.fit(imgs, y, groups=groups)
    signed = gradient_map(meta, imgs[0], reduce="none")
    size = 32  # tiny_cnn's input size
    assert signed.shape == (3, size, size) and signed.dtype == np.float32
    np.testing.assert_allclose(gradient_map(meta, imgs[0]), np.abs(signed).max(0))
    # Finite differences along the gradient, on the normalized input the network sees.
    backbone = meta.input_.backbone if not train_backbone else meta.prior_net_.module_.backbone
    x = image_tensor(load_image(imgs[0]), size, backbone.mean, backbone.std).unsqueeze(0)
    norm = float(np.linalg.norm(signed))
    direction = torch.from_numpy(signed / norm).unsqueeze(0)
    module = meta.prior_net_.module_.eval()

    def score(inp):
        with torch.no_grad():
            if train_backbone:
                return float(module(inp))
            return float(module(backbone.eval()(inp)))

    eps = 1e-2
    slope = (score(x + eps * direction) - score(x - eps * direction)) / (2 * eps)
    assert norm > 0
    assert slope == pytest.approx(norm, rel=0.05)


def test_personalized_nets_have_their_own_maps():
    imgs, y, groups = _images()
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=3,
                                  support_size=6, query_size=3, random_state=0)
    meta.fit(imgs, y, groups=groups)
    # The opposite taste, on the same scale.
    likes_dark = meta.personalize(imgs, y.max() + y.min() - y, max_epochs=30, lr=1e-2)
    prior_map = gradient_map(meta, imgs[1])
    personal_map = gradient_map(likes_dark, imgs[1])
    assert personal_map.shape == prior_map.shape
    assert not np.allclose(prior_map, personal_map)
    # Training/evaluation modes are restored afterwards.
    meta.prior_net_.module_.train()
    gradient_map(meta, imgs[1])
    assert meta.prior_net_.module_.training
    # each submodule's own: a net training with its head's BatchNorm frozen keeps it so
    module = meta.prior_net_.module_
    frozen = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert frozen
    for m in frozen:
        m.eval()
    gradient_map(meta, imgs[1])
    assert module.training and not any(m.training for m in frozen)


def test_feature_models_and_bad_arguments_are_refused(ratings, tiny_params):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="precomputed features"):
        gradient_map(meta, image)
    with pytest.raises(TypeError, match="fitted MetaAestheticRegressor"):
        gradient_map(object(), image)
    imgs, yi, gi = _images()
    fitted = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(4,), n_iterations=1,
                                    support_size=5, query_size=2).fit(imgs, yi, groups=gi)
    with pytest.raises(ValueError, match="reduce"):
        gradient_map(fitted, image, reduce="mean")
    # "image arrays must be uint8 (0-255); got dtype <U45" for two photos' paths
    for many, kind in (([image, image], "list"), (np.array(["a.jpg", "b.jpg"]), "ndarray"),
                       (np.stack([image] * 2), "ndarray")):
        with pytest.raises(ValueError, match=rf"takes one image; got 2 in a {kind}: call it "
                                             "once per image"):
            gradient_map(fitted, many)
    # "image arrays must be uint8 (0-255); got dtype object" for df["image"] (one row
    # too), "dtype |S23" for a path as bytes
    with pytest.raises(ValueError, match="takes an image path as text; got bytes"):
        gradient_map(fitted, b"a.jpg")
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        with pytest.raises(ValueError, match="got 1 in a Series: call it once per image"):
            gradient_map(fitted, pd.Series(["a.jpg"], index=[7]))
    # a clone of a personalized net: "needs a fitted PersonalizedNet; got PersonalizedNet"
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="PersonalizedNet is not fitted"):
        gradient_map(clone(fitted.personalize(imgs[:10], yi[:10])), image)
    # under the caller's inference mode: "element 0 of tensors does not require grad"
    expected = gradient_map(fitted, image)
    with torch.inference_mode():
        np.testing.assert_array_equal(gradient_map(fitted, image), expected)


def test_a_photo_file_is_mapped_as_predict_decodes_it(tmp_path):
    # the map decoded a JPEG in full where predict decodes it at a reduced scale: the map
    # explained another image than the one scored (295.38 against 295.43)
    from PIL import Image
    from sklearn.frozen import FrozenEstimator

    from sklearn_piaa._features import _draft

    imgs, y, groups = _images()
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=3,
                                  support_size=6, query_size=3, random_state=0)
    meta.fit(imgs, y, groups=groups)
    rng = np.random.RandomState(1)
    photo = tmp_path / "photo.jpg"
    Image.fromarray(rng.randint(0, 256, (240, 240, 3)).astype(np.uint8)).save(photo)
    as_predicted = _draft(photo, 32)
    assert as_predicted.size != (240, 240)  # decoded at a reduced scale
    assert meta.predict([photo]) == pytest.approx(meta.predict([as_predicted]), abs=1e-5)
    np.testing.assert_allclose(gradient_map(meta, photo), gradient_map(meta, as_predicted))
    # a FrozenEstimator of the prior (as the README hands one to a search) is mapped too
    np.testing.assert_array_equal(gradient_map(FrozenEstimator(meta), imgs[0]),
                                  gradient_map(meta, imgs[0]))


def test_head_only_map_runs_the_frozen_backbone_in_eval_mode():
    # head-only mode: the map goes through the embedding cache's backbone, "in
    # evaluation mode" -- also when the caller left that backbone in training mode
    imgs, y, groups = _images()
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=3,
                                  support_size=6, query_size=3, random_state=0)
    meta.fit(imgs, y, groups=groups)
    backbone = meta.prior_net_.input.backbone
    expected = gradient_map(meta, imgs[0])
    stats = {k: v.clone() for k, v in backbone.state_dict().items()}
    backbone.train()
    got = gradient_map(meta, imgs[0])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    # no BatchNorm statistics updated by the map, and the caller's mode is kept
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, stats[k]), k
    assert backbone.training
