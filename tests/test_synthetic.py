"""Tests of the synthetic personalized-aesthetics benchmark."""

import numpy as np
import pytest
from scipy.ndimage import laplace, median_filter
from scipy.stats import spearmanr

from sklearn_piaa.datasets.synthetic import (
    consensus_agreement,
    make_aesthetic_benchmark,
    pairwise_agreement,
)

SMALL = {"n_images": 30, "n_raters": 4, "images_per_rater": 12, "image_size": 32}


@pytest.fixture(scope="module")
def default():
    return make_aesthetic_benchmark(random_state=0)


def _luminance(images):
    return images.astype(float) @ np.array([0.299, 0.587, 0.114])


def _pool(lum):
    # 2x2 average pooling, on the last two axes.
    n, h, w = lum.shape
    return lum[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2).mean((2, 4))


def _attr(data, name):
    return data.attributes[:, data.attribute_names.index(name)]


def test_shapes_and_dtypes(default):
    n_ratings = 40 * 120
    assert default.images.shape == (600, 64, 64, 3)
    assert default.images.dtype == np.uint8
    assert default.attributes.dtype == np.float32
    assert default.attributes.shape == (600, len(default.attribute_names))
    assert np.all((default.attributes >= 0) & (default.attributes <= 1))
    for key in ("image_index", "y", "groups"):
        assert default[key].shape == (n_ratings,)
    assert np.issubdtype(default.image_index.dtype, np.integer)
    assert default.y.dtype == np.float32
    assert all(isinstance(g, str) for g in default.groups.tolist())
    assert default.groups[0] == "rater_000"
    n_features = len(default.taste_feature_names)
    assert default.rater_weights.shape == (40, n_features)
    assert default.consensus_weights.shape == (n_features,)
    for key in ("rater_bias", "rater_scale", "rater_individuality"):
        assert default[key].shape == (40,)
    assert isinstance(default.DESCR, str) and "consensus_weight" in default.DESCR


def test_scores_are_integers_in_range(default):
    assert np.all(default.y == np.round(default.y))
    assert default.y.min() >= 1 and default.y.max() <= 5
    # Quantisation should not collapse the scale onto a couple of levels.
    assert len(np.unique(default.y)) == 5


def test_each_rater_rates_distinct_images(default):
    assert list(np.unique(default.groups)) == list(default.rater_ids)
    for rater in default.rater_ids:
        idx = default.image_index[default.groups == rater]
        assert len(idx) == 120 and len(np.unique(idx)) == 120
        assert idx.min() >= 0 and idx.max() < 600


def test_deterministic_for_fixed_seed():
    a = make_aesthetic_benchmark(**SMALL, random_state=3)
    b = make_aesthetic_benchmark(**SMALL, random_state=3)
    c = make_aesthetic_benchmark(**SMALL, random_state=4)
    for key in ("images", "attributes", "image_index", "y", "rater_weights"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a.images, c.images)
    assert not np.array_equal(a.attributes, c.attributes)
    assert not np.array_equal(a.image_index, c.image_index)


def test_global_rng_untouched():
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    make_aesthetic_benchmark(**SMALL, random_state=np.random.RandomState(0))
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_attributes_reflected_in_pixels(default):
    lum = _luminance(default.images)
    rho = spearmanr(_attr(default, "brightness"), lum.mean((1, 2)))[0]
    assert rho > 0.5
    rho = spearmanr(_attr(default, "contrast"), lum.std((1, 2)))[0]
    assert rho > 0.3
    chroma = default.images.max(-1).astype(float) - default.images.min(-1)
    assert spearmanr(_attr(default, "saturation"), chroma.mean((1, 2)))[0] > 0.3
    # Pooling twice averages the additive noise away, so blur dominates the
    # Laplacian energy; dividing by the variance removes the contrast effect.
    coarse = _pool(_pool(lum))
    sharp = np.array([laplace(im).var() for im in coarse]) / (lum.var((1, 2)) + 1.0)
    assert spearmanr(_attr(default, "sharpness"), sharp)[0] > 0.4
    residual = np.array([(im - median_filter(im, 3)).std() for im in lum])
    assert spearmanr(_attr(default, "noise"), residual)[0] > 0.8
    half = _pool(lum)
    asym = np.abs(half - half[:, :, ::-1]).mean((1, 2)) / (lum.std((1, 2)) + 1.0)
    assert spearmanr(_attr(default, "symmetry"), asym)[0] < -0.4


def test_ground_truth_is_consistent(default):
    np.testing.assert_allclose(
        default.consensus_score, default.taste_features @ default.consensus_weights
    )
    # Nobody cares about the nuisance attributes.
    for name in ("background_hue", "pattern"):
        assert abs(spearmanr(_attr(default, name), default.consensus_score)[0]) < 0.15
    # Ratings follow the raters' own tastes better than the shared one.
    own = (
        default.taste_features[default.image_index]
        * default.rater_weights[np.searchsorted(default.rater_ids, default.groups)]
    )
    rho_own = spearmanr(own.sum(1), default.y)[0]
    rho_shared = spearmanr(default.consensus_score[default.image_index], default.y)[0]
    assert rho_own > rho_shared > 0.3


def test_calibration_of_default_call(default):
    rho = consensus_agreement(default.y, default.groups, default.image_index)
    assert rho.shape == (40,) and not np.isnan(rho).any()
    assert 0.5 <= rho.mean() <= 0.75
    assert 0.5 <= np.median(rho) <= 0.78
    p10, p90 = np.percentile(rho, [10, 90])
    assert 0.25 <= p10 < np.median(rho) < p90 <= 0.9
    pairs = pairwise_agreement(default.y, default.groups, default.image_index)
    assert pairs.shape == (40, 40)
    np.testing.assert_array_equal(pairs, pairs.T)
    assert 0.3 <= np.nanmean(pairs) <= 0.6
    means = np.array([default.y[default.groups == g].mean() for g in default.rater_ids])
    within = np.array([default.y[default.groups == g].std() for g in default.rater_ids])
    assert 0.2 <= means.std() / within.mean() <= 0.6


@pytest.mark.parametrize("weight, low, high", [(1.0, 0.75, 1.0), (0.0, -0.2, 0.2)])
def test_consensus_weight_controls_agreement(weight, low, high):
    data = make_aesthetic_benchmark(
        n_images=150, n_raters=20, images_per_rater=60, image_size=16,
        consensus_weight=weight, noise=0.0, random_state=0,
    )  # fmt: skip
    rho = consensus_agreement(data.y, data.groups, data.image_index)
    assert low <= np.nanmean(rho) <= high


def test_consensus_agreement_by_hand():
    # Rater c rates image 1 and 2 the other way round; d never varies.
    y = [1, 2, 3, 1, 2, 3, 1, 3, 2, 2, 2, 2]
    groups = ["a"] * 3 + ["b"] * 3 + ["c"] * 3 + ["d"] * 3
    images = [0, 1, 2] * 4
    rho = consensus_agreement(y, groups, images)
    # a's consensus is the mean of b, c and d: (4/3, 7/3, 7/3), tied on 1 and 2.
    expected_a = spearmanr([1, 2, 3], [4 / 3, 7 / 3, 7 / 3])[0]
    np.testing.assert_allclose(
        rho[:3], [expected_a, expected_a, spearmanr([1, 3, 2], [4 / 3, 2, 8 / 3])[0]]
    )
    assert np.isnan(rho[3])
    # With min_others=4 no image has enough other raters.
    assert np.isnan(consensus_agreement(y, groups, images, min_others=4)).all()


def test_consensus_agreement_keeps_ties_of_real_valued_scores():
    # The consensus was "all minus own": round-off split the tied consensus of images 0
    # and 1 (0.1 + 0.2 and 0.2 + 0.1, over two), so a's agreement read 1.0, not 0.866.
    y = [1, 2, 3, 0.1, 0.2, 0.3, 0.2, 0.1, 0.3]
    groups = ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    rho = consensus_agreement(y, groups, [0, 1, 2] * 3)
    assert rho[0] == pytest.approx(spearmanr([1, 2, 3], [0.15, 0.15, 0.3])[0])
    # three others, summed in another order on each image
    y = [1, 2, 3, 4, 0.1, 0.7, 0.3, 0.9, 0.7, 0.3, 0.1, 0.9, 0.3, 0.1, 0.7, 0.2]
    groups = ["a"] * 4 + ["b"] * 4 + ["c"] * 4 + ["d"] * 4
    rho = consensus_agreement(y, groups, [0, 1, 2, 3] * 4)
    assert rho[0] == pytest.approx(spearmanr([1, 2, 3, 4], [1.1, 1.1, 1.1, 1.8])[0])


def test_agreement_keeps_rater_ids_of_two_types_apart_and_refuses_bad_ratings():
    # numpy read 7 and "7" as one rater (two opposite raters averaged into constant
    # scores: NaN), one NaN score turned three raters' agreement NaN, min_others=0
    # divided by 0
    from sklearn_piaa import PIAAWarning

    rng = np.random.RandomState(0)
    base = rng.rand(12)
    y = np.concatenate([base, 1 - base, base + 0.1 * rng.rand(12), base])
    groups = [7] * 12 + ["7"] * 12 + ["a"] * 12 + ["b"] * 12
    images = list(range(12)) * 4
    with pytest.warns(PIAAWarning, match="written two ways: 7 and '7'"):
        rho = consensus_agreement(y, groups, images)
    assert rho.shape == (4,) and np.isfinite(rho).all()
    with pytest.warns(PIAAWarning, match="written two ways"):
        assert pairwise_agreement(y, groups, images).shape == (4, 4)
    bad = y.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match=r"y has 1 NaN or infinite score\(s\), at row 3"):
        consensus_agreement(bad, ["a"] * 24 + ["b"] * 24, images)
    for call, name in [(consensus_agreement, "min_others"), (pairwise_agreement, "min_shared")]:
        for value in (0, "2"):
            with pytest.raises(ValueError, match=f"{name} must be an integer of at least 1"):
                call(y, ["a"] * 24 + ["b"] * 24, images, value)
    with pytest.raises(ValueError, match="missing rater id"):
        consensus_agreement(y[:3], ["a", None, "b"], [0, 1, 2])


def test_pairwise_agreement_averages_repeated_ratings():
    # a rated image 0 twice (1, then 5): the last one was kept, so the answer hung on
    # the order of the rows
    y = [1, 5, 2, 3, 4, 4, 3, 2, 1]
    groups = ["a"] * 5 + ["b"] * 4
    images = [0, 0, 1, 2, 3, 0, 1, 2, 3]
    expected = spearmanr([3, 2, 3, 4], [4, 3, 2, 1])[0]
    for order in (slice(None), [1, 0, 2, 3, 4, 5, 6, 7, 8]):
        got = pairwise_agreement(np.array(y)[order], np.array(groups)[order],
                                 np.array(images)[order], min_shared=3)
        assert got[0, 1] == pytest.approx(expected)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_images": 0}, "n_images"),
        ({"n_images": 2.5}, "n_images"),
        ({"n_raters": 0}, "n_raters"),
        ({"images_per_rater": 0}, "images_per_rater"),
        ({"image_size": 4}, "image_size"),
        ({"image_size": True}, "image_size"),
        ({"consensus_weight": 1.5}, "consensus_weight"),
        ({"consensus_weight": np.nan}, "consensus_weight"),
        ({"noise": -0.1}, "noise"),
        ({"noise": "high"}, "noise"),
        # without personality too: it was taken unchecked
        ({"personality_weight": 5.0}, "personality_weight"),
        ({"personality_weight": "x"}, "personality_weight"),
    ],
)
def test_invalid_arguments(kwargs, name):
    params = dict(SMALL, **kwargs)
    with pytest.raises(ValueError, match=name):
        make_aesthetic_benchmark(**params, random_state=0)


def test_too_many_images_per_rater():
    with pytest.raises(ValueError, match="images_per_rater=31.*n_images=30"):
        make_aesthetic_benchmark(**dict(SMALL, images_per_rater=31), random_state=0)
