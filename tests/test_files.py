"""Caches, checkpoints and model files as processes and people leave them (an audit)."""

import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sklearn_piaa import MetaAestheticRegressor, _features, load_model, save_model
from sklearn_piaa._io import atomic_write, check_writable_dir

SMALL = dict(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2, support_size=4,
             query_size=2, random_state=0)


@pytest.fixture
def photos(tmp_path):
    rng = np.random.RandomState(0)
    paths = []
    for i in range(14):
        path = tmp_path / "photos" / f"p{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.randint(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_a_read_only_cache_serves_what_it_holds(photos, tmp_path, monkeypatch):
    # every prediction failed on a read-only cache_dir, even of images it held
    data = photos[:12], np.linspace(1, 5, 12)
    meta = MetaAestheticRegressor(**SMALL, cache_dir=tmp_path / "cache").fit(
        *data, groups=np.repeat([0, 1], 6))  # caches the 12 photos it was fitted on
    before = MetaAestheticRegressor(**SMALL).fit(*data, groups=np.repeat([0, 1], 6)).predict(
        photos)
    save_model(meta, tmp_path / "p.pt")
    loaded = load_model(tmp_path / "p.pt")
    real = _features.check_writable_dir

    def read_only(path, needed_bytes=0, what="directory", name=None):
        if os.path.isdir(path):
            raise ValueError(f"{name or f'{what} {path!r}'} is not writable: Read-only "
                             "file system.")
        return real(path, needed_bytes, what, name)

    monkeypatch.setattr(_features, "check_writable_dir", read_only)
    np.testing.assert_allclose(loaded.predict(photos[:12]), before[:12], rtol=1e-6)
    with pytest.warns(UserWarning, match="not writable.*2 image.* without being cached"):
        np.testing.assert_allclose(loaded.predict(photos), before, rtol=1e-6)


def test_a_read_only_cache_is_said_once_by_the_users_folder(photos, tmp_path, monkeypatch):
    # a service on a read-only shared cache was warned at every predict that met new
    # images (the count changed: Python's filter let each through), probed the folder
    # with a file every time, and the warning named the backbone's subfolder only
    monkeypatch.setattr(_features, "_ASIDE", {}, raising=False)  # a new process
    monkeypatch.setattr(_features, "_WARNED", set(), raising=False)
    meta = MetaAestheticRegressor(**SMALL, cache_dir=tmp_path / "cache").fit(
        photos[:6], np.linspace(1, 5, 6), groups=np.repeat([0, 1], 3))
    save_model(meta, tmp_path / "p.pt")
    real, probes = _features.check_writable_dir, []

    def read_only(path, needed_bytes=0, what="directory", name=None):
        probes.append(path)
        if os.path.isdir(path):
            raise ValueError(f"{name or f'{what} {path!r}'} is not writable: Read-only "
                             "file system.")
        return real(path, needed_bytes, what, name)

    monkeypatch.setattr(_features, "check_writable_dir", read_only)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for model in (load_model(tmp_path / "p.pt"), load_model(tmp_path / "p.pt")):
            model.predict(photos[6:7])
            model.predict(photos[7:10])
    (warning,) = [str(w.message) for w in caught if "cache_dir" in str(w.message)]
    assert warning.startswith(f"cache_dir {str(tmp_path / 'cache')!r} (its subfolder '")
    assert "not writable" in warning and "later calls" in warning
    assert len(probes) == 1
    # checked again once the time is up: a remounted cache is used again
    monkeypatch.setattr(_features, "check_writable_dir", real)
    monkeypatch.setattr(_features, "_ASIDE", dict.fromkeys(_features._ASIDE, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(tmp_path / "p.pt").predict(photos[10:12])
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 6 + 2


def test_a_full_cache_is_said_once_and_still_caches_what_fits(photos, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(_features, "_WARNED", set(), raising=False)
    meta = MetaAestheticRegressor(**SMALL, cache_dir=tmp_path / "cache").fit(
        photos[:4], np.linspace(1, 5, 4), groups=np.repeat([0, 1], 2))
    expected = MetaAestheticRegressor(**SMALL).fit(
        photos[:4], np.linspace(1, 5, 4), groups=np.repeat([0, 1], 2)).predict(photos)

    class Disk:
        free = 3 * 4096  # room for three cache files

    monkeypatch.setattr(shutil, "disk_usage", lambda path: Disk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_allclose(meta.predict(photos[4:8]), expected[4:8], rtol=1e-5)
        np.testing.assert_allclose(meta.predict(photos[8:13]), expected[8:13], rtol=1e-5)
        np.testing.assert_allclose(meta.predict(photos[13:]), expected[13:], rtol=1e-5)
    (warning,) = [str(w.message) for w in caught if "cache_dir" in str(w.message)]
    assert "12.0 KiB free but about 16.0 KiB are needed" in warning
    assert "later calls cache what fits" in warning
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 4 + 1  # the last one fitted


def test_a_relative_cache_dir_is_saved_as_the_folder_it_is(photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    meta = MetaAestheticRegressor(**SMALL, cache_dir="emb").fit(
        photos[:12], np.linspace(1, 5, 12), groups=np.repeat([0, 1], 6))
    save_model(meta, tmp_path / "p.pt")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    loaded = load_model(tmp_path / "p.pt")
    assert loaded.cache_dir == str(tmp_path / "emb")
    loaded.predict(photos[12:])
    meta.predict(photos[12:])
    assert os.listdir(tmp_path / "elsewhere") == []  # no new cache beside the caller


def test_a_folder_that_takes_no_new_file_is_named_not_a_temporary_file(tmp_path, monkeypatch):
    # as /proc does: the error named "x.pt.s440jgen.tmp", a file the user never gave
    import errno
    import tempfile

    def refused(*args, **kwargs):
        raise OSError(errno.ENOENT, "No such file or directory", "x.pt.s440jgen.tmp")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(OSError, match=r"cannot write .*x\.pt' in its folder") as err:
        atomic_write(tmp_path / "x.pt", lambda fh: fh.write(b"x"))
    assert ".tmp" not in str(err.value)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, reading the pickle
def test_file_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the folder of .*prior\.pt' does not exist"):
        atomic_write(tmp_path / "nodir" / "prior.pt", lambda fh: fh.write(b"x"))
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        check_writable_dir(tmp_path / "a_file", what="checkpoint_dir")
    with open(tmp_path / "m.pkl", "wb") as fh:
        pickle.dump({"a": 1}, fh)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not torch's "Detected pickle protocol" as well
        with pytest.raises(ValueError, match="it is a pickle .* load it with joblib.load"):
            load_model(tmp_path / "m.pkl")


def test_a_file_in_a_read_only_folder_is_refused_by_the_folders_name(tmp_path, monkeypatch):
    # mkstemp's PermissionError named "prior.pt.<random>.tmp", a file the user never gave.
    from sklearn_piaa import _io

    def refused(prefix, suffix, dir):
        raise PermissionError(13, "Permission denied", os.path.join(dir, prefix + "x1y2" + suffix))

    monkeypatch.setattr(_io.tempfile, "mkstemp", refused)  # root writes anywhere: no chmod
    with pytest.raises(PermissionError) as info:
        atomic_write(tmp_path / "prior.pt", lambda fh: fh.write(b"x"))
    assert "folder" in str(info.value) and str(tmp_path) in str(info.value)
    assert ".tmp" not in str(info.value)


def test_a_truncated_model_or_checkpoint_is_called_truncated(ratings, tiny_params, tmp_path):
    # it was "not a torch archive, as every model file is (an image, a table?)"
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params, checkpoint_dir=tmp_path / "ck").fit(
        X, y, groups=groups)
    save_model(meta, tmp_path / "m.pt")
    (checkpoint,) = (tmp_path / "ck").iterdir()
    for path in (tmp_path / "m.pt", checkpoint):
        path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="m.pt is not a readable .* whose end is missing: a "
                                         "truncated file"):
        load_model(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="cannot be read .* truncated file"):
        MetaAestheticRegressor(**tiny_params, checkpoint_dir=tmp_path / "ck").fit(
            X, y, groups=groups)


def test_a_checkpoint_is_named_as_such(ratings, tiny_params, tmp_path):
    X, y, groups = ratings
    MetaAestheticRegressor(**tiny_params, checkpoint_dir=tmp_path).fit(X, y, groups=groups)
    (name,) = os.listdir(tmp_path)
    with pytest.raises(ValueError, match="is a meta-training checkpoint"):
        load_model(tmp_path / name)
    # a file of Python objects: no advice to load it unsafely
    torch.save({"x": object.__new__(_Opaque)}, tmp_path / name)
    with pytest.raises(ValueError) as info:
        MetaAestheticRegressor(**tiny_params, checkpoint_dir=tmp_path).fit(X, y, groups=groups)
    assert "holds Python objects" in str(info.value)
    assert "weights_only" not in str(info.value)


class _Opaque:
    pass


def _tiny_embed(images, **kwargs):
    torch.manual_seed(0)  # tiny_cnn is randomly initialized: the same weights every call
    return _features.embed_images(images, backbone="tiny_cnn", **kwargs)


@pytest.mark.parametrize("damage", [b"{'descr': '<f4', 'fortran_order': False, 'shape'",
                                    b"{'descr': '<f4', 'fortran_order': False, "
                                    b"'shape': (99999999999999,), }"])
def test_a_damaged_cache_entry_is_embedded_again(photos, tmp_path, damage):
    # a header cut short made NumPy's parser raise tokenize's error, which escaped:
    # every later call on that image failed while the entry existed
    cache = tmp_path / "cache"
    expected = _tiny_embed(photos[:3], cache_dir=cache)
    (entry, *_) = sorted(cache.rglob("*.npy"))
    raw = entry.read_bytes()
    entry.write_bytes(raw[:10] + damage.ljust(118) + b"\n" + raw[128:])
    np.testing.assert_array_equal(_tiny_embed(photos[:3], cache_dir=cache), expected)
    np.testing.assert_array_equal(np.load(entry), np.load(entry))  # written again, whole


def test_a_path_stepping_up_from_a_link_is_the_file_it_opens(tmp_path):
    # abspath takes "link/.." for the folder holding the link, the system for the
    # target's parent: one file's embedding was keyed, cached and handed back as
    # another's (in one call without a cache too)
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "sub")
    rng = np.random.RandomState(0)
    a = rng.randint(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "real" / "img.png")
    Image.fromarray(255 - a).save(tmp_path / "img.png")
    stepping, plain = str(tmp_path / "link" / ".." / "img.png"), str(tmp_path / "img.png")
    expected = _tiny_embed([a, 255 - a])
    np.testing.assert_allclose(_tiny_embed([stepping, plain]), expected, rtol=1e-5,
                               atol=1e-6)
    _tiny_embed([stepping], cache_dir=tmp_path / "cache")
    _features._MEMOS.clear()  # a new process: what the cache holds
    np.testing.assert_allclose(_tiny_embed([plain], cache_dir=tmp_path / "cache"),
                               expected[1:], rtol=1e-5, atol=1e-6)
    keys = _features.run_keys([stepping, plain])
    assert keys[0] != keys[1]
    # a step up from a folder that is not there opens nothing: it was resolved leniently
    # (the missing folder skipped) and handed the embedding of the file beside it
    with pytest.raises(FileNotFoundError, match="image file not found"):
        _tiny_embed([plain, str(tmp_path / "missing" / ".." / "img.png")])


def test_a_read_only_cache_without_the_backbones_folder_warns(photos, tmp_path, monkeypatch):
    # the backbone's subfolder not made yet in a read-only cache_dir raised, as a
    # mistyped path does, where a read-only folder is documented to warn
    monkeypatch.setattr(_features, "_ASIDE", {}, raising=False)
    monkeypatch.setattr(_features, "_WARNED", set(), raising=False)
    (tmp_path / "shared").mkdir()
    real = _features.check_writable_dir

    def read_only(path, needed_bytes=0, what="directory", name=None):
        if str(tmp_path / "shared") in str(path):
            raise ValueError(f"{name} cannot be created: Read-only file system.")
        return real(path, needed_bytes, what, name)

    monkeypatch.setattr(_features, "check_writable_dir", read_only)
    data = photos[:6], np.linspace(1, 5, 6)
    with pytest.warns(UserWarning, match="cannot be created.*without being cached"):
        meta = MetaAestheticRegressor(**SMALL, cache_dir=tmp_path / "shared").fit(
            *data, groups=np.repeat([0, 1], 3))
    expected = MetaAestheticRegressor(**SMALL).fit(*data, groups=np.repeat([0, 1], 3))
    np.testing.assert_allclose(meta.predict(photos), expected.predict(photos), rtol=1e-6)
    with pytest.raises(ValueError, match="cannot be created"):  # a path that is not there
        MetaAestheticRegressor(**SMALL, cache_dir=tmp_path / "shared" / "typo").fit(
            *data, groups=np.repeat([0, 1], 3))


@pytest.mark.parametrize("folder", [b"runs", 3])
def test_a_checkpoint_dir_of_another_type_is_refused_by_name(photos, folder):
    # fit failed deep in os.path ("Can't mix strings and bytes in path components")
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="'checkpoint_dir' parameter"):
        MetaAestheticRegressor(**SMALL, checkpoint_dir=folder).fit(
            photos[:6], np.linspace(1, 5, 6), groups=np.repeat([0, 1], 3))


def test_cache_and_checkpoint_folders_in_the_home_folder(photos, tmp_path, monkeypatch):
    # "~" was taken literally: a folder named "~" in the working directory
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    _tiny_embed(photos[:2], cache_dir="~/emb")
    MetaAestheticRegressor(**{**SMALL, "n_iterations": 4}, checkpoint_dir="~/runs",
                           checkpoint_every=2).fit(photos[:6], np.linspace(1, 5, 6),
                                                   groups=np.repeat([0, 1], 3))
    assert os.listdir(tmp_path / "work") == []
    assert len(list((tmp_path / "home" / "emb").rglob("*.npy"))) == 2
    assert os.listdir(tmp_path / "home" / "runs")


def test_embeddings_held_in_memory_are_written_to_a_cache_given_later(photos, tmp_path):
    # the memo's rows were never written to a cache_dir given after them (set_params
    # on a fitted prior): the next process embedded them all again
    meta = MetaAestheticRegressor(**SMALL).fit(photos[:6], np.linspace(1, 5, 6),
                                               groups=np.repeat([0, 1], 3))
    meta.set_params(cache_dir=tmp_path / "cache")
    meta.predict(photos[:8])
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 8
