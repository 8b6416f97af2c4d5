"""Real-world image folders: odd formats are converted, broken files raise or are skipped."""

import re
import shutil

import numpy as np
import pytest
from PIL import Image

from sklearn_piaa import MetaAestheticRegressor, PIAAWarning
from sklearn_piaa._features import load_image

SMALL = dict(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2, support_size=4,
             query_size=2, finetune_epochs=2, random_state=0)


def _rgb(seed, size=(40, 32)):
    rng = np.random.RandomState(seed)
    return (rng.rand(size[1], size[0], 3) * 255).astype(np.uint8)


@pytest.fixture
def odd_folder(tmp_path):
    """Readable images in every awkward format, plus broken and non-image files."""
    good, bad = [], []
    for i in range(8):
        path = tmp_path / f"plain_{i}.jpg"
        Image.fromarray(_rgb(i)).save(path)
        good.append(path)
    Image.fromarray(_rgb(20)).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(_rgb(21)).convert("L").save(tmp_path / "grey.png")
    Image.fromarray((np.arange(32 * 40).reshape(32, 40) * 50).astype(np.uint16)).save(
        tmp_path / "deep16.png")
    rgba = np.dstack([_rgb(22), np.full((32, 40), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(_rgb(23)).save(tmp_path / "rotated.jpg", exif=exif)
    good += [tmp_path / n for n in ("cmyk.jpg", "grey.png", "deep16.png", "alpha.png",
                                    "rotated.jpg")]
    full = tmp_path / "plain_0.jpg"
    (tmp_path / "truncated.jpg").write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image")
    bad += [tmp_path / n for n in ("truncated.jpg", "empty.jpg", "notes.txt")]
    bad.append(tmp_path / "deleted.jpg")  # named in the ratings, absent on disk
    return [str(p) for p in good], [str(p) for p in bad]


def test_awkward_formats_are_converted_correctly(odd_folder, tmp_path):
    assert load_image(tmp_path / "cmyk.jpg").mode == "RGB"
    grey = np.asarray(load_image(tmp_path / "grey.png"))
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    # 16-bit: scaled to 8 bits, not clipped at 255 (Pillow's convert would turn it white).
    deep = np.asarray(load_image(tmp_path / "deep16.png"))[..., 0].astype(int)
    raw = (np.arange(32 * 40).reshape(32, 40) * 50).astype(np.uint16)
    assert np.abs(deep - raw / 257).max() <= 1
    assert (deep < 255).mean() > 0.9
    # Half-transparent pixels are composited onto white.
    alpha = np.asarray(load_image(tmp_path / "alpha.png")).astype(int)
    expected = np.rint(_rgb(22).astype(float) * 128 / 255 + 255 * 127 / 255)
    assert np.abs(alpha - expected).max() <= 2
    # EXIF orientation applied: a 40x32 picture is displayed 32 wide, 40 high.
    assert load_image(tmp_path / "rotated.jpg").size == (32, 40)


@pytest.mark.parametrize("name", ["truncated.jpg", "empty.jpg", "notes.txt", "deleted.jpg"])
def test_on_error_raise_names_the_file(odd_folder, name):
    good, bad = odd_folder
    path = next(p for p in bad if p.endswith(name))
    X = good + [path]
    y = np.linspace(1, 5, len(X))
    groups = np.arange(len(X)) % 2
    with pytest.raises((ValueError, FileNotFoundError), match=name):
        MetaAestheticRegressor(**SMALL).fit(X, y, groups=groups)


def test_a_numpy_string_path_is_named_plainly(tmp_path):
    from sklearn_piaa import embed_images

    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ValueError) as info:
        embed_images(np.array([str(tmp_path / "empty.jpg")]), backbone="tiny_cnn")
    assert "empty.jpg" in str(info.value) and "np.str_" not in str(info.value)


@pytest.mark.parametrize("train_backbone", [False, True])
def test_on_error_skip_reports_every_bad_file_and_never_scores_it(odd_folder, train_backbone):
    good, bad = odd_folder
    X = good + bad
    rng = np.random.RandomState(0)
    y = rng.uniform(1, 5, len(X))
    groups = np.arange(len(X)) % 2
    meta = MetaAestheticRegressor(**SMALL, train_backbone=train_backbone, on_error="skip")
    with pytest.warns(PIAAWarning) as record:
        meta.fit(X, y, groups=groups)
    message = " ".join(str(w.message) for w in record)
    for path in bad:
        assert path in message
    with pytest.warns(PIAAWarning):
        pred = meta.predict(X)
    assert np.isfinite(pred[: len(good)]).all()
    assert np.isnan(pred[len(good):]).all()
    with pytest.warns(PIAAWarning):
        net = meta.personalize(X, y)
    assert np.isfinite(net.predict(good)).all()


def test_skip_with_nothing_readable_is_an_error(odd_folder):
    _, bad = odd_folder
    with pytest.raises(ValueError, match="none of the images could be read"), \
            pytest.warns(PIAAWarning):
        MetaAestheticRegressor(**SMALL, on_error="skip").fit(bad, [1, 2, 3, 4],
                                                             groups=[0, 0, 1, 1])


def test_cache_dir_problems_are_found_before_embedding(odd_folder, tmp_path, monkeypatch):
    good, _ = odd_folder
    y = np.linspace(1, 5, len(good))
    groups = np.arange(len(good)) % 2
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cache_dir .* cannot be created"):
        MetaAestheticRegressor(**SMALL, cache_dir=blocker / "cache").fit(good, y, groups=groups)
    # the file given as the folder: named, where "Not a directory" left it to guess which
    with pytest.raises(ValueError, match=re.escape(
            f"cannot be created: {str(blocker)!r} is a file, not a folder.")):
        MetaAestheticRegressor(**SMALL, cache_dir=blocker).fit(good, y, groups=groups)

    class Full:
        free = 1000

    monkeypatch.setattr(shutil, "disk_usage", lambda path: Full)
    with pytest.raises(ValueError, match="has 1000 bytes free but about .* KiB are needed"):
        MetaAestheticRegressor(**SMALL, cache_dir=tmp_path / "c").fit(good, y, groups=groups)


def test_a_cache_that_fails_after_fit_never_stops_a_prediction(odd_folder, tmp_path,
                                                               monkeypatch):
    # a deployed prior's cache folder that cannot be made there, a full disk, or a
    # write failing half-way stopped every prediction; the cache is only a convenience
    from sklearn_piaa import _features

    good, _ = odd_folder
    y = np.linspace(1, 5, len(good))
    groups = np.arange(len(good)) % 2
    fit_on, new = good[:4], good[4:]
    plain = MetaAestheticRegressor(**SMALL).fit(fit_on, y[:4], groups=groups[:4])
    expected = plain.predict(new)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    meta = MetaAestheticRegressor(**SMALL, cache_dir=tmp_path / "c").fit(
        fit_on, y[:4], groups=groups[:4])
    meta.input_.cache_dir = str(blocker / "cache")  # as on a machine where it cannot be made
    with pytest.warns(PIAAWarning, match="cannot be created.*embedded without being cached"):
        np.testing.assert_allclose(meta.predict(new), expected, rtol=1e-5)

    class Full:
        free = 1000

    meta = MetaAestheticRegressor(**SMALL, cache_dir=tmp_path / "d").fit(
        fit_on, y[:4], groups=groups[:4])
    with monkeypatch.context() as m:
        m.setattr(shutil, "disk_usage", lambda path: Full)
        with pytest.warns(PIAAWarning, match="1000 bytes free.*without being cached"):
            np.testing.assert_allclose(meta.predict(new), expected, rtol=1e-5)

    def no_space(path, array):
        raise OSError(28, "No space left on device")

    meta = MetaAestheticRegressor(**SMALL, cache_dir=tmp_path / "e").fit(
        fit_on, y[:4], groups=groups[:4])
    monkeypatch.setattr(_features, "_atomic_save", no_space)
    with pytest.warns(PIAAWarning, match="writing an embedding failed .No space left"):
        np.testing.assert_allclose(meta.predict(new), expected, rtol=1e-5)
    # and fit, hours into embedding, keeps going too
    with pytest.warns(PIAAWarning, match="writing an embedding failed"):
        again = MetaAestheticRegressor(**SMALL, cache_dir=tmp_path / "f").fit(
            fit_on, y[:4], groups=groups[:4])
    monkeypatch.undo()
    np.testing.assert_allclose(again.predict(new), expected, rtol=1e-5)


def test_cache_entry_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    import os

    from sklearn_piaa import _features

    row = np.arange(1280, dtype=np.float32)
    _features._atomic_save(str(tmp_path / "a.npy"), row)
    assert np.array_equal(np.load(tmp_path / "a.npy"), row)
    umask = os.umask(0)
    os.umask(umask)
    if os.name == "posix":  # what open() gives a new file
        assert (tmp_path / "a.npy").stat().st_mode & 0o777 == 0o666 & ~umask

    def half_then_fail(fh, array):
        fh.write(b"\x93NUMPY half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_features.np, "save", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        _features._atomic_save(str(tmp_path / "b.npy"), row)
    with pytest.raises(KeyboardInterrupt):
        def interrupted(fh, array):
            raise KeyboardInterrupt
        monkeypatch.setattr(_features.np, "save", interrupted)
        _features._atomic_save(str(tmp_path / "a.npy"), row + 1)
    # neither a partial entry nor a temporary file; the earlier entry intact
    assert sorted(os.listdir(tmp_path)) == ["a.npy"]
    monkeypatch.undo()
    assert np.array_equal(np.load(tmp_path / "a.npy"), row)


def test_damaged_cache_entry_is_recomputed(odd_folder, tmp_path):
    good, _ = odd_folder
    y = np.linspace(1, 5, len(good))
    groups = np.arange(len(good)) % 2
    cache = tmp_path / "cache"
    a = MetaAestheticRegressor(**SMALL, cache_dir=cache).fit(good, y, groups=groups)
    entries = sorted(cache.rglob("*.npy"))
    assert len(entries) == len(good)
    before = np.load(entries[0])
    entries[0].write_bytes(b"\x93NUMPY garbage")
    b = MetaAestheticRegressor(**SMALL, cache_dir=cache).fit(good, y, groups=groups)
    # Recomputed alone rather than in a batch: equal up to the convolution's rounding.
    np.testing.assert_allclose(np.load(entries[0]), before, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.predict(good), b.predict(good), rtol=1e-4)
