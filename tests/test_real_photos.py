"""Tests of measured photo attributes, simulated photo raters and the real-photo benchmark."""

import importlib.util
import os

import numpy as np
import pytest
from PIL import Image, ImageFilter

from sklearn_piaa.datasets import consensus_agreement, measure_attributes, simulate_raters
from sklearn_piaa.datasets.photo_raters import PHOTO_ATTRIBUTE_NAMES

ROOT = os.path.join(os.path.dirname(__file__), "..")
SCRIPT = os.path.join(ROOT, "benchmarks", "real_photos.py")
PHOTOS = os.path.join(ROOT, "..", "shared", "data", "photos")


def _texture(seed=0, size=64):
    # Smooth random texture: structure at several scales, no single dominant edge.
    rng = np.random.RandomState(seed)
    img = Image.fromarray((rng.rand(size // 8, size // 8, 3) * 255).astype(np.uint8))
    base = np.asarray(img.resize((size, size), Image.BICUBIC), dtype=float)
    return np.clip(base + 20 * rng.randn(size, size, 3), 0, 255).astype(np.uint8)


def _attr(images, name):
    attrs, names = measure_attributes(images)
    return attrs[:, names.index(name)]


def test_measure_attributes_shape_and_inputs(tmp_path):
    imgs = [_texture(0), _texture(1)]
    path = tmp_path / "a.png"
    Image.fromarray(imgs[0]).save(path)
    attrs, names = measure_attributes(imgs)
    assert attrs.shape == (2, len(PHOTO_ATTRIBUTE_NAMES)) and attrs.dtype == np.float32
    assert names == PHOTO_ATTRIBUTE_NAMES and np.isfinite(attrs).all()
    # A path, a PIL image and an array of the same pixels measure the same.
    same, _ = measure_attributes([str(path), Image.fromarray(imgs[0]), np.stack(imgs)[0]])
    np.testing.assert_allclose(same, attrs[[0, 0, 0]], rtol=1e-6)
    np.testing.assert_allclose(measure_attributes(np.stack(imgs))[0], attrs)
    # an array of paths was refused ("got ndarray(2,)"), one PIL image a TypeError
    np.testing.assert_allclose(measure_attributes(np.array([str(path)] * 2))[0],
                               attrs[[0, 0]], rtol=1e-6)
    with pytest.raises(ValueError, match=r"got one PIL image: pass \[image\]"):
        measure_attributes(Image.fromarray(imgs[0]))


def test_measure_attributes_respond_to_the_image():
    tex = _texture(0)
    brighter = np.clip(tex.astype(int) + 60, 0, 255).astype(np.uint8)
    assert np.diff(_attr([tex, brighter], "brightness")) > 0.15
    blurred = np.asarray(Image.fromarray(tex).filter(ImageFilter.GaussianBlur(2)))
    assert np.diff(_attr([tex, blurred], "sharpness")) < -1
    mirrored = tex.copy()
    mirrored[:, 32:] = tex[:, :32][:, ::-1]
    sym = _attr([tex, mirrored], "symmetry")
    assert sym[1] > 0.99 and sym[0] < 0.8
    grey = np.full((64, 64, 3), 128, np.uint8)
    rng = np.random.RandomState(0)
    noisy = [np.clip(grey + sd * rng.randn(64, 64, 1), 0, 255).astype(np.uint8) for sd in (3, 15)]
    assert np.diff(_attr(noisy, "noise")) > 3
    colour = grey.copy()
    colour[:32, :, 0], colour[32:, :, 2] = 230, 230
    for name in ("colorfulness", "saturation"):
        assert np.diff(_attr([grey, colour], name)) > 0
    # A bright blob on a third-intersection is nearer to it than one in the centre.
    at_third, centre = np.zeros((2, 90, 90, 3), np.uint8)
    at_third[25:35, 25:35], centre[40:50, 40:50] = 255, 255
    dist = _attr([at_third, centre], "thirds_distance")
    assert dist[0] < 0.05 < dist[1]


def test_measure_attributes_errors():
    with pytest.raises(ValueError, match="images"):
        measure_attributes(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        measure_attributes([])
    with pytest.raises(ValueError, match="size"):
        measure_attributes([_texture()], size=4)


@pytest.fixture(scope="module")
def attrs():
    return np.random.RandomState(0).rand(120, len(PHOTO_ATTRIBUTE_NAMES))


def test_simulate_raters_shapes_and_scores(attrs):
    data = simulate_raters(attrs, n_raters=6, images_per_rater=40, random_state=0)
    assert data.y.shape == data.groups.shape == data.image_index.shape == (240,)
    assert data.y.dtype == np.float32 and set(np.unique(data.y)) <= {1, 2, 3, 4, 5}
    assert data.image_index.min() >= 0 and data.image_index.max() < 120
    assert list(data.rater_ids) == [f"rater_{u:03d}" for u in range(6)]
    for u in data.rater_ids:
        assert len(set(data.image_index[data.groups == u])) == 40
    assert data.taste_features.shape == (120, len(data.taste_feature_names))
    assert data.rater_weights.shape == (6, len(data.taste_feature_names))


def test_simulate_raters_determinism(attrs):
    a = simulate_raters(attrs, n_raters=5, images_per_rater=30, random_state=1)
    b = simulate_raters(attrs, n_raters=5, images_per_rater=30,
                        random_state=np.random.RandomState(1))
    c = simulate_raters(attrs, n_raters=5, images_per_rater=30, random_state=2)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.image_index, b.image_index)
    assert not np.array_equal(a.y, c.y)


def test_consensus_weight_controls_agreement(attrs):
    def agreement(c):
        d = simulate_raters(attrs, n_raters=12, images_per_rater=60, consensus_weight=c,
                            noise=0.0, random_state=0)
        return np.nanmean(consensus_agreement(d.y, d.groups, d.image_index))

    assert agreement(1.0) > 0.8 > agreement(0.6) > agreement(0.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_raters=0), "n_raters"),
    (dict(images_per_rater=121), "images_per_rater"),
    (dict(images_per_rater=2.5), "images_per_rater"),
    (dict(consensus_weight=1.5), "consensus_weight"),
    (dict(noise=-1), "noise"),
])  # fmt: skip
def test_simulate_raters_errors(attrs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_raters(attrs, **{"images_per_rater": 10, **kwargs})


def test_simulate_raters_rejects_bad_attributes(attrs):
    with pytest.raises(ValueError, match="attributes"):
        simulate_raters(attrs[:, :5])
    bad = attrs.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        simulate_raters(bad, images_per_rater=10)


def _load_script():
    spec = importlib.util.spec_from_file_location("real_photos_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_without_data(monkeypatch, tmp_path, capsys):
    script = _load_script()
    monkeypatch.setattr(script, "PHOTOS", str(tmp_path / "absent"))
    assert script.main([]) == 0
    assert "nothing to do" in capsys.readouterr().out


@pytest.mark.skipif(not os.path.isdir(PHOTOS), reason="../shared/data/photos is absent")
def test_benchmark_smoke(capsys):
    args = ["--max-photos", "40", "--raters", "8", "--images-per-rater", "30", "--folds", "2",
            "--repeats", "1", "--iterations", "3", "--support", "5", "10"]
    assert _load_script().main(args) == 0
    out = capsys.readouterr().out
    for line in ("leave-one-out consensus", "prior", "personalized @10", "consensus + ridge @5"):
        assert line in out
    assert "(n=8, undefined 0)" in out
