"""save_model / load_model: weights + config round trips, versions, devices, baselines."""

import copy
import errno
import gc
import os
import pickle
import re
import shutil
import tempfile
import time
import warnings

import numpy as np
import pytest
import torch
from conftest import (
    damage_the_end_record,
    damage_the_list_of_parts,
    edited_state,
    flip_a_stored_byte,
    mark_a_part_as_a_folder,
    tiny_baselines,
    zero_a_listed_name_byte,
)
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from skorch.dataset import ValidSplit

import sklearn_piaa
from sklearn_piaa import (
    MetaAestheticRegressor,
    PIAAWarning,
    SupportQuerySplit,
    TaskVectorRegressor,
    _io,
    _persistence,
    load_model,
    save_model,
    srocc_scorer,
)
from sklearn_piaa.baselines import (
    ConsensusRidgeRegressor,
    PAMRegressor,
    PersonalizedBaseline,
)


@pytest.fixture
def prior(ratings, tiny_params):
    X, y, groups = ratings
    return MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups), X, y


def _images(n=40, seed=0):
    rng = np.random.RandomState(seed)
    imgs = rng.randint(0, 256, (n, 36, 36, 3)).astype(np.uint8)
    y = np.clip(1 + imgs[..., 0].mean((1, 2)) / 64 + 0.3 * rng.randn(n), 1, 5)
    return imgs, y, np.repeat(np.arange(4), n // 4)


def test_prior_round_trip_keeps_predictions_and_fitted_facts(prior, tmp_path):
    meta, X, y = prior
    path = tmp_path / "prior.pt"
    save_model(meta, path)
    loaded = load_model(path)
    assert isinstance(loaded, MetaAestheticRegressor)
    np.testing.assert_array_equal(loaded.predict(X), meta.predict(X))
    assert loaded.get_params() == meta.get_params()
    assert loaded.raters_ == meta.raters_
    assert loaded.score_range_ == meta.score_range_
    np.testing.assert_array_equal(loaded.history_, meta.history_)
    # The loaded prior personalizes exactly as the original does.
    a = meta.personalize(X[:20], y[:20], random_state=0).predict(X[20:40])
    b = loaded.personalize(X[:20], y[:20], random_state=0).predict(X[20:40])
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_personalized_round_trip_keeps_own_scale(prior, tmp_path):
    meta, X, y = prior
    net = meta.personalize(X[:20], y[:20] * 100, score_range=(100, 500), random_state=0)
    save_model(net, tmp_path / "user.pt")
    loaded = load_model(tmp_path / "user.pt")
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    assert loaded.predict(X).min() >= 100
    # Not the prior: the personalized weights were stored.
    assert not np.allclose(loaded.predict(X), meta.predict(X))


@pytest.mark.parametrize("train_backbone", [False, True])
def test_image_models_store_the_backbone_they_need(tmp_path, train_backbone):
    imgs, y, groups = _images()
    meta = MetaAestheticRegressor(backbone="tiny_cnn", train_backbone=train_backbone,
                                  hidden_sizes=(8,), n_iterations=3, support_size=6,
                                  query_size=3, random_state=0).fit(imgs, y, groups=groups)
    save_model(meta, tmp_path / "m.pt")
    # tiny_cnn is randomly initialized: only the file can bring its weights back.
    with torch.random.fork_rng():
        torch.manual_seed(123)
        loaded = load_model(tmp_path / "m.pt")
    np.testing.assert_allclose(loaded.predict(imgs), meta.predict(imgs), rtol=1e-6)


def test_file_holds_only_plain_data(prior, tmp_path):
    meta, X, _ = prior
    save_model(meta, tmp_path / "p.pt")
    state = torch.load(tmp_path / "p.pt", weights_only=True)  # raises on pickled objects
    assert state["format"] == "sklearn-piaa-model"
    assert state["format_version"] == _persistence.FORMAT_VERSION
    # which release wrote it, for a release that cannot read it to say
    assert state["written_by"] == f"sklearn-piaa {sklearn_piaa.__version__}"


def test_newer_and_unknown_formats_give_clear_errors(prior, tmp_path):
    meta, _, _ = prior
    path = tmp_path / "p.pt"
    save_model(meta, path)
    state = edited_state(path)
    state["format_version"] = _persistence.FORMAT_VERSION + 1
    state["written_by"] = "sklearn-piaa 9.0"
    torch.save(state, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match=r"version \d+ \(written by sklearn-piaa 9.0\), newer "
                                         r"than this sklearn-piaa \S+ reads"):
        load_model(tmp_path / "newer.pt")
    del state["format_version"]  # was read as "version None, newer: upgrade"
    torch.save(state, tmp_path / "unversioned.pt")
    with pytest.raises(ValueError, match="unversioned.pt has the .* marker but no valid "
                                         "model format version .got None.: the file is "
                                         "damaged"):
        load_model(tmp_path / "unversioned.pt")
    # a setting added after this version (the format version is not raised for one):
    # was "the saved model's entries are damaged or do not fit this sklearn-piaa"
    newer = {**state, "format_version": _persistence.FORMAT_VERSION,
             "params": {**state["params"], "future_setting": 1}}
    torch.save(newer, tmp_path / "newer_setting.pt")
    with pytest.raises(ValueError, match=r"newer_setting.pt holds setting\(s\) "
                                         r"\['future_setting'\] of MetaAestheticRegressor, "
                                         "which this sklearn-piaa does not have: the file "
                                         "was saved by a newer sklearn-piaa; upgrade"):
        load_model(tmp_path / "newer_setting.pt")
    state["format_version"] = 0
    torch.save(state, tmp_path / "older.pt")
    with pytest.raises(ValueError, match="can no longer read"):
        load_model(tmp_path / "older.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a sklearn-piaa model file"):
        load_model(tmp_path / "other.pt")
    (tmp_path / "broken.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="broken.pt"):
        load_model(tmp_path / "broken.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_model(tmp_path / "missing.pt")


def test_older_format_is_upgraded_when_an_upgrade_exists(prior, tmp_path, monkeypatch):
    meta, X, _ = prior
    save_model(meta, tmp_path / "p.pt")
    state = edited_state(tmp_path / "p.pt")
    old = dict(state, format_version=0, fit_seconds=state["fitted"]["fit_time"])
    del old["fitted"]["fit_time"]
    torch.save(old, tmp_path / "v0.pt")

    def upgrade(s):
        s = dict(s, format_version=1)
        s["fitted"]["fit_time"] = s.pop("fit_seconds")
        return s

    monkeypatch.setitem(_persistence._UPGRADES, 0, upgrade)
    np.testing.assert_array_equal(load_model(tmp_path / "v0.pt").predict(X), meta.predict(X))


def test_a_model_file_with_a_flipped_bit_is_refused(prior, tmp_path):
    # torch.load does not check the archive's checksums: a damaged copy of a prior
    # loaded and predicted wrong (even infinite) scores
    meta, _, _ = prior
    path = tmp_path / "p.pt"
    save_model(meta, path)
    part = flip_a_stored_byte(path)
    with pytest.raises(ValueError, match=f"p.pt is not a readable.*{part} fails its checksum"):
        load_model(path)


def test_a_damaged_name_of_a_part_is_given_in_full(prior, tmp_path):
    # "its part archive/dat fails its checksum": zipfile cut the listed name
    # "archive/dat\0/3" at its NUL byte, and no checksum had failed; a list of parts
    # that could not be read was "its part (its list of parts: BadZipFile) fails its
    # checksum".
    meta, _, _ = prior
    path = tmp_path / "p.pt"
    save_model(meta, path)
    before = path.read_bytes()
    name, listed = zero_a_listed_name_byte(path)
    with pytest.raises(ValueError) as caught:
        load_model(path)
    assert str(caught.value) == (
        f"{path} is not a readable sklearn-piaa model file (damaged or another format): "
        f"its part's name differs between the archive's list of parts ({listed!r}) and "
        f"the part's own header ({name}): a damaged copy (a bad disk, an interrupted "
        "transfer?)")
    path.write_bytes(before)
    damage_the_list_of_parts(path)
    with pytest.raises(ValueError, match=r"p.pt is not a readable .*: its list of parts "
                                         r"cannot be read \(BadZipFile: .*\): a damaged"):
        load_model(path)


def test_a_model_file_whose_directory_is_damaged_is_refused(prior, tmp_path):
    # The archive's checksums cover each part's bytes, not its directory: a folder bit
    # set on a weight's entry made torch.load read that weight wrong without a word
    # (zeros, or whatever memory held: the same bytes only by chance).
    meta, X, _ = prior
    path = tmp_path / "p.pt"
    save_model(meta, path)
    mark_a_part_as_a_folder(path)
    try:
        loaded = load_model(path)
    except ValueError as exc:
        assert re.search(r"p.pt is damaged \(a bad disk.*or was changed and saved again by "
                         "another program", str(exc)), exc
    else:  # read right by chance: then it is what was written
        np.testing.assert_array_equal(loaded.predict(X), meta.predict(X))


def test_a_model_file_that_loads_otherwise_than_written_is_refused(prior, tmp_path):
    # what the digest guards against, deterministically: a weight that loads as zeros
    meta, _, _ = prior
    save_model(meta, tmp_path / "p.pt")
    state = torch.load(tmp_path / "p.pt", weights_only=True)  # its digest kept
    first = next(iter(state["module"]))
    state["module"][first] = torch.zeros_like(state["module"][first])
    torch.save(state, tmp_path / "zeros.pt")
    with pytest.raises(ValueError, match=r"zeros.pt is damaged \(a bad disk.*its contents "
                                         "differ from what sklearn-piaa wrote"):
        load_model(tmp_path / "zeros.pt")


def test_a_damaged_end_record_is_a_clear_error(prior, tmp_path):
    meta, _, _ = prior
    path = tmp_path / "p.pt"
    save_model(meta, path)
    damage_the_end_record(path)  # zipfile raised BadZipFile, a traceback on the CLI
    with pytest.raises(ValueError, match="p.pt is not a readable.*end record"):
        load_model(path)


def test_files_written_before_the_digest_still_load(prior, tmp_path):
    meta, X, _ = prior
    save_model(meta, tmp_path / "p.pt")
    torch.save(edited_state(tmp_path / "p.pt"), tmp_path / "old.pt")
    np.testing.assert_array_equal(load_model(tmp_path / "old.pt").predict(X), meta.predict(X))


def test_an_error_that_is_only_a_number_is_named():
    from sklearn_piaa._checkpoint import _reason

    assert _reason(KeyError(191)) == "KeyError: 191"  # not a bare "191" in the message
    assert _reason(ValueError("bad header")) == "bad header"


def test_a_weights_file_with_a_flipped_bit_is_refused(tmp_path):
    from sklearn_piaa.nn.backbones import _read_state_dict

    path = tmp_path / "w.pth"
    torch.save({"conv.weight": torch.randn(4096)}, path)
    assert set(_read_state_dict(path, "resnet18")) == {"conv.weight"}
    flip_a_stored_byte(path)
    with pytest.raises(ValueError, match="w.pth for backbone 'resnet18' is damaged"):
        _read_state_dict(path, "resnet18")


def test_prior_saved_on_a_gpu_loads_on_cpu(prior, tmp_path):
    meta, X, _ = prior
    save_model(meta, tmp_path / "p.pt")
    # A file written on a GPU machine differs only in the stored device parameter
    # (weights are always stored on the CPU).
    state = edited_state(tmp_path / "p.pt")
    state["params"]["device"] = "cuda"
    torch.save(state, tmp_path / "gpu.pt")
    if torch.cuda.is_available():
        assert load_model(tmp_path / "gpu.pt").prior_net_.device == "cuda"
        return
    with pytest.warns(PIAAWarning, match="loaded on the CPU"):
        loaded = load_model(tmp_path / "gpu.pt")
    assert loaded.device == "cpu"
    np.testing.assert_array_equal(loaded.predict(X), meta.predict(X))


def test_save_refuses_what_it_cannot_store(prior, tmp_path):
    meta, X, y = prior
    # NotFittedError as predict's (was ValueError)
    for unfitted in (MetaAestheticRegressor(), TaskVectorRegressor()):
        with pytest.raises(NotFittedError, match=f"the {type(unfitted).__name__} is not "
                                                 "fitted; call fit first"):
            save_model(unfitted, tmp_path / "x.pt")
    with pytest.raises(TypeError, match="MetaAestheticRegressor, a PersonalizedNet"):
        save_model(object(), tmp_path / "x.pt")
    custom = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten())
    imgs, yi, groups = _images()
    fitted = MetaAestheticRegressor(backbone=custom, hidden_sizes=(4,), n_iterations=1,
                                    support_size=5, query_size=2).fit(imgs, yi, groups=groups)
    with pytest.raises(TypeError, match="custom backbone"):
        save_model(fitted, tmp_path / "x.pt")
    assert not os.path.exists(tmp_path / "x.pt")
    # pickle still works for it
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).predict(imgs[:4]),
                                  fitted.predict(imgs[:4]))


def test_save_never_leaves_a_partial_file(prior, tmp_path, monkeypatch):
    meta, X, _ = prior
    path = tmp_path / "p.pt"
    save_model(meta, path)
    before = path.read_bytes()

    def dies(obj, fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        save_model(meta, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["p.pt"]


def test_save_removes_the_temporary_file_a_killed_save_left(prior, tmp_path):
    # kill -9 during save_model left "p.pt.piaa-<random>.tmp", as large as the model, for
    # good: cache and checkpoint leftovers were swept after an hour, a model's never.
    meta, _, _ = prior
    path = tmp_path / "p.pt"
    hours_ago = time.time() - 2 * 3600

    def left(prefix="p.pt.piaa-", age=hours_ago):
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=tmp_path)
        os.write(fd, b"PK\3\4 half a model")
        os.close(fd)
        os.utime(name, (age, age))
        return os.path.basename(name)

    killed = left()
    others = [left(age=time.time()),  # another process's save in progress, maybe
              left(prefix="q.pt.piaa-"),  # another file's
              left(prefix="p.pt.piaa-x."),  # not mkstemp's name for this one
              left(prefix="p.pt.")]  # not the package's: a user's file of the same shape
    for name in ("p.pt.backup.tmp", "p.pt.previous.tmp", "notes.tmp"):  # a user's own
        (tmp_path / name).write_bytes(b"mine")
        os.chmod(tmp_path / name, 0o644)  # as a umask of 022 makes it (077: 0600)
        os.utime(tmp_path / name, (hours_ago, hours_ago))
        others.append(name)
    (tmp_path / "p.pt.piaa-abcdefgh.tmp").mkdir()
    others.append("p.pt.piaa-abcdefgh.tmp")
    save_model(meta, path)
    assert sorted(os.listdir(tmp_path)) == sorted(["p.pt", *others])
    assert killed not in os.listdir(tmp_path)


def _torch_out_of_room(errors):
    """A torch.save that fails as torch's archive writer does on a full disk (a
    RuntimeError), after a file object error of ``errors`` (None: none said)."""
    def save(obj, fh):
        fh.write(b"PK\3\4" + bytes(7148))
        torchs = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos "
                              "7232 vs 7152")
        if errors is None:
            raise torchs
        try:
            raise OSError(errors, os.strerror(errors))
        except OSError:
            raise torchs  # the file object's error as its context, as torch raises it
    return save


@pytest.mark.parametrize("errors, free, expected", [
    (errno.ENOSPC, None, errno.ENOSPC),  # the file object's error, behind torch's
    (None, 0, errno.ENOSPC),  # none said, and the disk is full
    (None, 10**9, None),  # none said, and there is room: a plain OSError
    ("plain", None, errno.ENOSPC),  # the file object's own error, before torch's
])
def test_a_save_that_runs_out_of_room_is_an_oserror_naming_the_file(prior, tmp_path,
                                                                    monkeypatch, errors,
                                                                    free, expected):
    # torch's "RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos
    # 7232 vs 7152": the command line printed its traceback, and callers catching
    # OSError missed it; the file object's own "[Errno 28] No space left on device"
    # named no file.
    meta, _, _ = prior
    path = tmp_path / "p.pt"
    save_model(meta, path)
    before = path.read_bytes()
    if errors == "plain":
        def save(obj, fh):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    else:
        save = _torch_out_of_room(errors)
    monkeypatch.setattr(torch, "save", save)
    if free is not None:
        usage = shutil.disk_usage(tmp_path)
        monkeypatch.setattr(_io.shutil, "disk_usage",
                            lambda folder: usage._replace(free=free))
    with pytest.raises(OSError) as caught:
        save_model(meta, path)
    if expected:
        assert str(caught.value) == (f"writing {str(path)!r} failed: no space left on "
                                     "device (disk full?); nothing was written: free some "
                                     "space or choose another folder.")
    else:  # not the disk, that we can tell: torch's words, and no guess
        assert str(caught.value) == (f"writing {str(path)!r} failed: [enforce fail at "
                                     "inline_container.cc:672] . unexpected pos 7232 vs "
                                     "7152; nothing was written.")
    assert caught.value.errno == expected
    assert isinstance(caught.value.__cause__, RuntimeError if errors != "plain" else OSError)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["p.pt"]


def test_save_refuses_to_replace_a_file_that_is_no_model(prior, tmp_path, monkeypatch):
    # save_model(meta, "train.csv") replaced a user's ratings table without a word
    meta, X, _ = prior
    table = tmp_path / "train.csv"
    table.write_text("rater,image,score\nu0,a.jpg,3\n")
    with pytest.raises(FileExistsError, match=re.escape(
            f"{str(table)!r}: the file exists and is not an sklearn-piaa model file")):
        save_model(meta, table)
    assert table.read_text() == "rater,image,score\nu0,a.jpg,3\n"
    # another program's weights, and a meta-training checkpoint (same archive format)
    torch.save({"w": torch.zeros(3)}, tmp_path / "weights.pth")
    torch.save({"format": _persistence.FORMAT, "run_id": "r", "iteration": 3},
               tmp_path / "checkpoint.pt")
    for name in ("weights.pth", "checkpoint.pt"):
        with pytest.raises(FileExistsError, match=re.escape(name)):
            save_model(meta, tmp_path / name)
    # a file that cannot be read to tell (root reads anything: the read fails here)
    def unreadable(path):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(_persistence, "_not_an_archive", unreadable)
        with pytest.raises(FileExistsError, match=r"weights.pth': the file exists and "
                                                  r"cannot be read .*Permission denied"):
            save_model(meta, tmp_path / "weights.pth")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        save_model(meta, tmp_path)
    # an earlier model is replaced (rerunning a script), and so is an empty file
    save_model(meta, tmp_path / "prior.pt")
    save_model(meta, tmp_path / "prior.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    save_model(meta, tmp_path / "empty.pt")
    np.testing.assert_array_equal(load_model(tmp_path / "empty.pt").predict(X),
                                  meta.predict(X))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt", "empty.pt", "prior.pt",
                                            "train.csv", "weights.pth"]


# -- baselines ------------------------------------------------------------------------

BASELINES = tiny_baselines()


def _same_params(a, b):
    pa, pb = a.get_params(), b.get_params()
    assert pa.keys() == pb.keys()
    for key in pa:
        if key == "personality":  # a dict of arrays: compared rater by rater
            assert pa[key].keys() == pb[key].keys()
            for rater in pa[key]:
                np.testing.assert_array_equal(pa[key][rater], pb[key][rater])
        else:
            assert pa[key] == pb[key], key


@pytest.mark.parametrize("est", BASELINES,
                         ids=lambda e: type(e).__name__ + getattr(e, "variant", ""))
def test_baseline_round_trip_predicts_and_personalizes_identically(est, ratings, tmp_path):
    X, y, groups = ratings
    fitted = clone(est).fit(X, y, groups=groups)
    save_model(fitted, tmp_path / "b.pt")
    loaded = load_model(tmp_path / "b.pt")
    assert type(loaded) is type(fitted)
    _same_params(loaded, fitted)
    assert loaded.raters_ == fitted.raters_ and loaded.score_range_ == fitted.score_range_
    # Bit for bit: the fitted arrays keep their dtype and memory order.
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    a = fitted.personalize(X[:15], y[:15]).predict(X[15:60])
    b = loaded.personalize(X[:15], y[:15]).predict(X[15:60])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("est", [BASELINES[1], BASELINES[5], BASELINES[7]],
                         ids=["ConsensusRidge", "USAR", "PA_IAA"])
def test_personalized_baseline_round_trip(est, ratings, tmp_path):
    X, y, groups = ratings
    fitted = clone(est).fit(X, y, groups=groups)
    user = fitted.personalize(X[:20], 10 * y[:20], score_range=(10, 50))
    save_model(user, tmp_path / "user.pt")
    loaded = load_model(tmp_path / "user.pt")
    assert isinstance(loaded, PersonalizedBaseline) and loaded.score_range == (10, 50)
    np.testing.assert_array_equal(loaded.predict(X), user.predict(X))
    # The rater's own fit was stored, not refitted: its prior alone predicts otherwise.
    assert not np.allclose(loaded.predict(X), loaded.prior.predict(X))
    np.testing.assert_array_equal(loaded.prior.predict(X), fitted.predict(X))


@pytest.mark.parametrize("cls", [PAMRegressor, ConsensusRidgeRegressor])
def test_image_baselines_store_their_backbone(cls, tmp_path):
    imgs, y, groups = _images()
    params = {"n_content_classes": 3} if cls is PAMRegressor else {}
    fitted = cls(backbone="tiny_cnn", random_state=0, **params).fit(imgs, y, groups=groups)
    user = fitted.personalize(imgs[:10], y[:10])
    save_model(fitted, tmp_path / "b.pt")
    save_model(user, tmp_path / "u.pt")
    # tiny_cnn is randomly initialized: only the file can bring its weights back.
    with torch.random.fork_rng():
        torch.manual_seed(123)
        loaded, loaded_user = load_model(tmp_path / "b.pt"), load_model(tmp_path / "u.pt")
    np.testing.assert_array_equal(loaded.predict(imgs), fitted.predict(imgs))
    np.testing.assert_array_equal(loaded_user.predict(imgs), user.predict(imgs))
    np.testing.assert_array_equal(loaded.personalize(imgs[:10], y[:10]).predict(imgs),
                                  user.predict(imgs))


def test_baseline_file_with_an_unknown_class_is_refused(ratings, tmp_path):
    X, y, groups = ratings
    save_model(ConsensusRidgeRegressor().fit(X, y, groups=groups), tmp_path / "b.pt")
    state = edited_state(tmp_path / "b.pt")  # plain data only
    assert state["kind"] == "baseline"
    assert state["fitted"]["generic_"]["__sklearn__"] == "RidgeCV"

    def edited(change):
        s = copy.deepcopy(state)
        change(s)
        torch.save(s, tmp_path / "edited.pt")
        return tmp_path / "edited.pt"

    bad = edited(lambda s: s["fitted"]["generic_"].update(__sklearn__="SVR"))
    with pytest.raises(ValueError, match=r"edited.pt asks to rebuild a scikit-learn class "
                                         r"'SVR', which is not one a model file may hold"):
        load_model(bad)
    with pytest.raises(ValueError, match="baseline 'Pipeline'"):
        load_model(edited(lambda s: s.update(estimator="Pipeline")))
    with pytest.raises(ValueError, match="torch module 'Linear'"):
        load_model(edited(lambda s: s["fitted"].update(
            generic_={"__module__": "Linear", "args": {}, "state": {}})))
    with pytest.raises(ValueError, match="entries are damaged"):
        load_model(edited(lambda s: s.pop("fitted")))
    with pytest.raises(ValueError, match="of kind 'forest'"):
        load_model(edited(lambda s: s.update(kind="forest")))
    with pytest.warns(PIAAWarning, match="saved with scikit-learn 0.1"):
        load_model(edited(lambda s: s.update(sklearn_version="0.1")))


def test_save_refuses_baselines_it_cannot_store(ratings, tmp_path):
    X, y, groups = ratings
    with pytest.raises(NotFittedError, match="ConsensusRidgeRegressor is not fitted"):
        save_model(ConsensusRidgeRegressor(), tmp_path / "x.pt")
    with pytest.raises(NotFittedError, match="PersonalizedBaseline is not fitted"):
        save_model(PersonalizedBaseline(ConsensusRidgeRegressor()), tmp_path / "x.pt")

    class MyRidge(ConsensusRidgeRegressor):
        pass

    with pytest.raises(TypeError, match="MyRidge has code of its own"):
        save_model(MyRidge().fit(X, y, groups=groups), tmp_path / "x.pt")
    custom = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten())
    imgs, yi, gi = _images()
    fitted = ConsensusRidgeRegressor(backbone=custom).fit(imgs, yi, groups=gi)
    with pytest.raises(TypeError, match="custom backbone"):
        save_model(fitted, tmp_path / "x.pt")
    assert not os.path.exists(tmp_path / "x.pt")


def test_baseline_with_efficientnet_stores_only_its_fingerprint(tmp_path):
    imgs, y, groups = _images(n=24)
    fitted = ConsensusRidgeRegressor(backbone="efficientnet_lite0").fit(imgs, y, groups=groups)
    save_model(fitted, tmp_path / "b.pt")
    state = torch.load(tmp_path / "b.pt", weights_only=True)
    # The shipped ImageNet weights are not copied into every file.
    assert state["backbone"] is None and isinstance(state["backbone_fingerprint"], str)
    assert os.path.getsize(tmp_path / "b.pt") < 100_000
    np.testing.assert_array_equal(load_model(tmp_path / "b.pt").predict(imgs),
                                  fitted.predict(imgs))


def test_loading_a_model_again_reuses_the_loaded_efficientnet_without_building_it(
        tmp_path, monkeypatch):
    # each load built EfficientNet-Lite0 and read its shipped weights, to find it equal
    # to the backbone already loaded and drop it: 0.26 s of a net's 0.44 s load
    from sklearn_piaa.baselines import ConsensusRidgeRegressor
    from sklearn_piaa.nn import backbones

    gc.collect()
    imgs, y, groups = _images(n=24)
    meta = MetaAestheticRegressor(hidden_sizes=(8,), n_iterations=2, support_size=3,
                                  query_size=2, random_state=0).fit(imgs, y, groups=groups)
    save_model(meta, tmp_path / "prior.pt")
    net = meta.personalize(imgs[:6], y[:6], random_state=0)
    save_model(net, tmp_path / "net.pt")
    ridge = ConsensusRidgeRegressor(backbone="efficientnet_lite0").fit(imgs, y, groups=groups)
    save_model(ridge, tmp_path / "ridge.pt")
    first = load_model(tmp_path / "prior.pt")
    built, build = [], backbones.BACKBONES["efficientnet_lite0"]
    monkeypatch.setitem(backbones.BACKBONES, "efficientnet_lite0",
                        lambda *a, **k: built.append(1) or build(*a, **k))
    again, loaded_net = load_model(tmp_path / "prior.pt"), load_model(tmp_path / "net.pt")
    loaded_ridge = load_model(tmp_path / "ridge.pt")
    assert built == []
    for model in (again, loaded_net.prior_, loaded_ridge):
        assert model.input_.backbone is first.input_.backbone
    np.testing.assert_array_equal(again.predict(imgs), meta.predict(imgs))
    np.testing.assert_array_equal(loaded_net.predict(imgs), net.predict(imgs))
    np.testing.assert_array_equal(loaded_ridge.predict(imgs), ridge.predict(imgs))
    # whole-network models train their backbone: never shared, built as before
    whole = MetaAestheticRegressor(train_backbone=True, hidden_sizes=(8,), n_iterations=1,
                                   support_size=3, query_size=2, finetune_epochs=1,
                                   random_state=0).fit(imgs[:12], y[:12], groups=groups[:12])
    save_model(whole, tmp_path / "whole.pt")
    np.testing.assert_array_equal(load_model(tmp_path / "whole.pt").predict(imgs[:4]),
                                  whole.predict(imgs[:4]))
    assert built == [1, 1]  # fit built one, load_model the other


def test_predict_and_load_model_leave_torchs_generator_alone(tmp_path):
    # Prediction draws a loader seed (as skorch's DataLoader does) and load_model builds
    # randomly initialized modules: both moved the caller's torch generator.
    import numpy as np
    import torch
    from conftest import TINY, make_rating_features

    from sklearn_piaa import MetaAestheticRegressor, load_model, save_model
    X, y, groups, _ = make_rating_features()
    meta = MetaAestheticRegressor(**TINY).fit(X, y, groups=groups)
    net = meta.personalize(X[:10], y[:10])
    save_model(net, tmp_path / "me.pt")
    for call in (lambda: meta.predict(X), lambda: net.predict(X),
                 lambda: load_model(tmp_path / "me.pt")):
        torch.manual_seed(5)
        call()
        after = torch.rand(3)
        torch.manual_seed(5)
        np.testing.assert_array_equal(after, torch.rand(3))


def test_a_cache_dir_that_cannot_exist_here_is_dropped_on_load(tmp_path, image_files):
    # A prior moved to another machine failed every prediction creating its cache_dir.
    import numpy as np
    import pytest

    from sklearn_piaa import MetaAestheticRegressor, PIAAWarning, load_model, save_model
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2,
                                  support_size=4, query_size=2, random_state=0,
                                  cache_dir=tmp_path / "gone" / "cache")
    meta.fit(image_files, y, groups=np.repeat(["a", "b"], 6))
    save_model(meta, tmp_path / "prior.pt")
    expected = meta.predict(image_files)
    import shutil
    shutil.rmtree(tmp_path / "gone")
    with pytest.warns(PIAAWarning, match="cache_dir .* cannot be made here"):
        loaded = load_model(tmp_path / "prior.pt")
    assert loaded.cache_dir is None
    np.testing.assert_allclose(loaded.predict(image_files), expected, rtol=1e-5)
    (tmp_path / "gone").mkdir()  # its parent exists again: kept
    assert load_model(tmp_path / "prior.pt").cache_dir is not None


@pytest.mark.parametrize("est", BASELINES,
                         ids=lambda e: type(e).__name__ + getattr(e, "variant", ""))
def test_refitting_a_baseline_prior_leaves_its_personalized_models_alone(est, ratings,
                                                                         tmp_path):
    # The rater's model read the prior's fitted state at predict and save time: a refit
    # (a loop over folds) changed every earlier rater's predictions and saved file.
    X, y, groups = ratings
    first = np.isin(groups, ["r00", "r01", "r02", "r03", "r04", "r05"])
    prior = clone(est).fit(X[first], y[first], groups=groups[first])
    user = prior.personalize(X[:20], y[:20])
    before = user.predict(X[20:80])
    prior.fit(X[~first][:, ::-1], y[~first], groups=groups[~first])
    np.testing.assert_array_equal(user.predict(X[20:80]), before)
    save_model(user, tmp_path / "user.pt")
    np.testing.assert_array_equal(load_model(tmp_path / "user.pt").predict(X[20:80]), before)


def test_a_net_saves_as_it_was_after_its_prior_is_refitted(ratings, tiny_params, tmp_path):
    # save_model read the architecture from the live prior: after a refit with other
    # hidden_sizes it wrote a file that failed to load.
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    net = meta.personalize(X[:20], y[:20], random_state=0)
    meta.set_params(hidden_sizes=(4, 4)).fit(X[:, :5], y, groups=groups)
    save_model(net, tmp_path / "net.pt")
    np.testing.assert_allclose(load_model(tmp_path / "net.pt").predict(X[20:80]),
                               net.predict(X[20:80]), rtol=1e-6)


def test_a_clone_of_a_personalized_net_saves(ratings, tiny_params, tmp_path):
    # GridSearchCV's best_estimator_ is a clone: it lost what save_model needs.
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    refit = clone(meta.personalize(X[:20], y[:20], random_state=0)).fit(X[:30], y[:30])
    save_model(refit, tmp_path / "net.pt")
    np.testing.assert_allclose(load_model(tmp_path / "net.pt").predict(X[30:80]),
                               refit.predict(X[30:80]), rtol=1e-6)


def test_personalized_models_keep_the_priors_feature_width_and_names(ratings, tiny_params,
                                                                    tmp_path):
    # Neither a personalized net nor a personalized baseline had n_features_in_ or
    # feature_names_in_, which their priors and scikit-learn's regressors have.
    pd = pytest.importorskip("pandas")  # not in the [test] extra
    X, y, groups = ratings
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    for prior in (MetaAestheticRegressor(**tiny_params), ConsensusRidgeRegressor()):
        for data, names in ((X, None), (df, list(df.columns))):
            user = prior.fit(data, y, groups=groups).personalize(data[:20], y[:20],
                                                                 random_state=0)
            save_model(user, tmp_path / "user.pt")
            refit = clone(user)
            assert not hasattr(refit, "n_features_in_")
            assert not hasattr(refit, "feature_names_in_")
            refit.fit(data[:20], y[:20])
            for model in (user, pickle.loads(pickle.dumps(user)),
                          load_model(tmp_path / "user.pt"), refit):
                assert model.n_features_in_ == X.shape[1]
                if names is None:
                    assert not hasattr(model, "feature_names_in_")
                else:
                    assert list(model.feature_names_in_) == names


def test_personalized_models_on_images_have_no_feature_width():
    # as their priors: the width is the backbone's business, not the input's
    imgs, y, groups = _images(24)
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(4,), n_iterations=2,
                                  support_size=4, query_size=2, finetune_epochs=1,
                                  random_state=0).fit(imgs, y, groups=groups)
    prior = ConsensusRidgeRegressor(backbone="tiny_cnn", random_state=0).fit(
        imgs, y, groups=groups)
    for model in (meta, meta.personalize(imgs[:6], y[:6]), prior,
                  prior.personalize(imgs[:6], y[:6])):
        assert not hasattr(model, "n_features_in_")
        assert not hasattr(model, "feature_names_in_")


def test_a_pickled_embedder_leaves_its_embeddings_behind(image_files):
    # The memo of every embedded image was pickled too: joblib copied all the training
    # embeddings into every job of a parallel evaluation (200 MB each at FLICKR-AES size).
    from sklearn_piaa._features import ImageEmbedder
    from sklearn_piaa.nn import load_backbone
    embedder = ImageEmbedder(load_backbone("tiny_cnn"), torch.device("cpu"))
    empty = len(pickle.dumps(embedder))
    expected = embedder.transform(image_files)
    copy_ = pickle.loads(pickle.dumps(embedder))
    assert len(pickle.dumps(embedder)) == empty and embedder._memory
    np.testing.assert_array_equal(copy_.transform(image_files), expected)


def test_settings_changed_since_fit_neither_break_the_file_nor_the_fine_tuning(tmp_path):
    # set_params without a refit: the files (prior, and a net personalized afterwards)
    # were written with the new settings beside the old weights and did not load, and
    # personalize took the head-only fine-tuning defaults for a whole-network prior.
    imgs, y, groups = _images()
    meta = MetaAestheticRegressor(backbone="tiny_cnn", train_backbone=True, hidden_sizes=(8,),
                                  n_iterations=2, support_size=6, query_size=3,
                                  random_state=0).fit(imgs, y, groups=groups)
    before = meta.personalize(imgs[:20], y[:20])
    meta.set_params(train_backbone=False, hidden_sizes=(4,))
    after = meta.personalize(imgs[:20], y[:20])
    assert (after.lr, after.batch_size) == (before.lr, before.batch_size) == (1e-5, -1)
    np.testing.assert_array_equal(after.predict(imgs), before.predict(imgs))
    save_model(meta, tmp_path / "prior.pt")
    save_model(after, tmp_path / "net.pt")
    loaded = load_model(tmp_path / "prior.pt")
    assert loaded.train_backbone and loaded.hidden_sizes == (8,)
    np.testing.assert_allclose(loaded.predict(imgs), meta.predict(imgs), rtol=1e-6)
    np.testing.assert_allclose(load_model(tmp_path / "net.pt").predict(imgs),
                               after.predict(imgs), rtol=1e-6)
    assert meta.get_params()["hidden_sizes"] == (4,)  # the estimator's settings stay set


def test_settings_changed_after_loading_neither_break_the_file_nor_the_fine_tuning(tmp_path):
    # load_model did not note the settings the network was built with, so a
    # set_params on a loaded prior wrote a file whose settings and weights disagreed
    imgs, y, groups = _images()
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2,
                                  support_size=6, query_size=3,
                                  random_state=0).fit(imgs, y, groups=groups)
    save_model(meta, tmp_path / "prior.pt")
    loaded = load_model(tmp_path / "prior.pt").set_params(hidden_sizes=(4,), dropout=0.0)
    net = loaded.personalize(imgs[:20], y[:20], random_state=0)
    save_model(loaded, tmp_path / "again.pt")
    save_model(net, tmp_path / "net.pt")
    again = load_model(tmp_path / "again.pt")
    assert again.hidden_sizes == (8,) and again.dropout == meta.dropout
    np.testing.assert_allclose(again.predict(imgs), meta.predict(imgs), rtol=1e-6)
    np.testing.assert_allclose(load_model(tmp_path / "net.pt").predict(imgs),
                               net.predict(imgs), rtol=1e-6)


def _caching_prior(folder, imgs, y, groups):
    """A tiny image prior fitted on the first 20 images, caching embeddings in ``folder``."""
    return MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2,
                                  support_size=6, query_size=3, random_state=0,
                                  cache_dir=folder).fit(imgs[:20], y[:20], groups=groups[:20])


def test_set_params_moves_or_turns_off_a_fitted_priors_cache(tmp_path):
    # set_params(cache_dir=...) on a fitted or loaded prior was ignored: its embedder
    # kept writing to the old folder, and a service could not turn the cache off
    imgs, y, groups = _images()
    meta = _caching_prior(tmp_path / "old", imgs, y, groups)
    n_old = len(list((tmp_path / "old").rglob("*.npy")))
    assert n_old == 20
    expected = meta.predict(imgs)  # the 20 new images are cached too
    assert len(list((tmp_path / "old").rglob("*.npy"))) == 40
    save_model(meta, tmp_path / "prior.pt")
    loaded = load_model(tmp_path / "prior.pt").set_params(cache_dir=None)
    fresh = _images(seed=1)[0]
    np.testing.assert_allclose(loaded.predict(imgs), expected, rtol=1e-5)
    loaded.predict(fresh)
    assert len(list((tmp_path / "old").rglob("*.npy"))) == 40  # nothing written
    loaded.set_params(cache_dir=tmp_path / "new")
    loaded.predict(_images(seed=2)[0])  # (fresh ones: those above are held in memory)
    assert len(list((tmp_path / "new").rglob("*.npy"))) == 40
    assert len(list((tmp_path / "old").rglob("*.npy"))) == 40
    save_model(loaded, tmp_path / "moved.pt")
    assert load_model(tmp_path / "moved.pt").cache_dir == os.path.abspath(tmp_path / "new")
    meta.set_params(cache_dir=None)  # a prior fitted in this process too
    meta.personalize(fresh[:10], y[:10])
    assert len(list((tmp_path / "old").rglob("*.npy"))) == 40


def test_save_model_writes_a_cache_dir_set_since_fit(tmp_path):
    # the file held the folder of the prior's last predict: load, turn the cache off,
    # save -- and the service's prior wrote into the author's folder
    imgs, y, groups = _images()
    meta = _caching_prior(tmp_path / "old", imgs, y, groups)
    save_model(meta.set_params(cache_dir=None), tmp_path / "off.pt")
    loaded = load_model(tmp_path / "off.pt")
    assert loaded.cache_dir is None
    loaded.predict(_images(seed=1)[0])
    assert len(list((tmp_path / "old").rglob("*.npy"))) == 20
    save_model(loaded.set_params(cache_dir=tmp_path / "new"), tmp_path / "on.pt")
    assert load_model(tmp_path / "on.pt").cache_dir == os.path.abspath(tmp_path / "new")


@pytest.mark.parametrize("baseline", [
    ConsensusRidgeRegressor, lambda **kw: PAMRegressor(variant="content",
                                                       n_content_classes=2, **kw)])
def test_set_params_moves_or_turns_off_a_fitted_baselines_cache(tmp_path, baseline):
    # the embedder made in fit kept its folder, in memory and in the saved file
    imgs, y, groups = _images()
    est = baseline(backbone="tiny_cnn", cache_dir=tmp_path / "old", random_state=0).fit(
        imgs[:20], y[:20], groups=groups[:20])
    expected = est.predict(imgs[20:])

    def cached(folder):
        return len(list((tmp_path / folder).rglob("*.npy")))

    assert cached("old") == 40
    est.set_params(cache_dir=None)
    est.predict(_images(seed=1)[0])
    est.personalize(_images(seed=2)[0][:10], y[:10]).predict(_images(seed=3)[0][:5])
    assert cached("old") == 40
    save_model(est, tmp_path / "off.pt")
    assert load_model(tmp_path / "off.pt").cache_dir is None
    loaded = load_model(tmp_path / "off.pt").set_params(cache_dir=tmp_path / "new")
    np.testing.assert_allclose(loaded.predict(imgs[20:]), expected, rtol=1e-5)
    assert cached("new") == 20
    save_model(loaded, tmp_path / "on.pt")
    assert load_model(tmp_path / "on.pt").cache_dir == os.path.abspath(tmp_path / "new")


def test_model_files_by_bytes_paths(prior, tmp_path):
    # save_model failed in a str join and load_model called a good file damaged
    meta, X, _ = prior
    path = os.fsencode(tmp_path / "prior.pt")
    save_model(meta, path)
    np.testing.assert_array_equal(load_model(path).predict(X), meta.predict(X))


def test_a_copys_cache_dir_is_its_own(tmp_path):
    # A deep copy shares the fitted embedder: set_params(cache_dir=...) on the copy
    # changed where the original (and nets personalized from it) cached.
    imgs, y, groups = _images()
    meta = _caching_prior(tmp_path / "a", imgs, y, groups)
    net = meta.personalize(imgs[:10], y[:10])
    earlier = meta.personalize(imgs[:10], y[:10])
    meta.set_params(cache_dir=tmp_path / "a2").predict(imgs[:1])
    # a net personalized before the prior's cache moved keeps (and saves) its own
    save_model(earlier, tmp_path / "earlier.pt")
    assert load_model(tmp_path / "earlier.pt").input.cache_dir == os.path.abspath(tmp_path / "a")
    meta.set_params(cache_dir=tmp_path / "a").predict(imgs[:1])
    other = copy.deepcopy(meta).set_params(cache_dir=tmp_path / "b", on_error="skip")
    other.predict(imgs[20:25])
    meta.predict(imgs[25:30])
    net.predict(imgs[30:35])

    def cached(folder):
        return len(list((tmp_path / folder).rglob("*.npy")))

    assert (cached("a"), cached("b")) == (30, 5)
    assert meta.input_.on_error == meta.on_error == "raise"
    assert meta.input_.cache_dir == os.path.abspath(tmp_path / "a")
    # the copy's adapter serves its prior net as well, and is the one it saves
    assert other.prior_net_.input is other.input_
    save_model(other, tmp_path / "other.pt")
    assert load_model(tmp_path / "other.pt").cache_dir == os.path.abspath(tmp_path / "b")


def test_a_nets_image_reading_is_set_with_input_params_and_saved(tmp_path, image_files):
    # A net loaded from someone else's file cached the user's photos in the author's
    # folder and stopped at one bad image, whatever was set: net.set_params(cache_dir=)
    # was refused, and net.prior_.set_params(cache_dir=) changed nothing the net used.
    # A prior trained with verbose=1 (the command line's) kept its progress bars after
    # set_params(verbose=0).
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    author = tmp_path / "author"
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2,
                                  support_size=4, query_size=2, random_state=0,
                                  cache_dir=author, verbose=1)
    meta.fit(image_files, y, groups=np.repeat(["a", "b"], 6))
    assert meta.input_.progress
    meta.set_params(verbose=0).predict(image_files[:1])
    assert not meta.input_.progress
    net = meta.set_params(verbose=1).personalize(image_files[:6], y[:6], random_state=0)
    save_model(net, tmp_path / "net.pt")
    loaded = load_model(tmp_path / "net.pt")
    with pytest.raises(ValueError, match=r"set_params\(input__cache_dir=None\)"):
        loaded.set_params(cache_dir=None)
    n_author = len(list(author.rglob("*.npy")))
    new = _images(4, seed=1)[0]
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    assert loaded.set_params(input__cache_dir=None, input__on_error="skip",
                             input__progress=False) is loaded
    with pytest.warns(PIAAWarning, match="bad.jpg"):
        scores = loaded.predict([image_files[0], str(bad)])
    assert np.isfinite(scores[0]) and np.isnan(scores[1])
    loaded.predict(new)
    assert len(list(author.rglob("*.npy"))) == n_author
    # the settings are the net's: its prior and the net it was loaded beside keep theirs
    assert (loaded.prior_.cache_dir, net.input.cache_dir) == (str(author), str(author))
    assert net.input.on_error == "raise" and net.input.progress
    # and are saved with it
    save_model(loaded, tmp_path / "again.pt")
    again = load_model(tmp_path / "again.pt")
    assert (again.input.cache_dir, again.input.on_error, again.input.progress) == (
        None, "skip", False)
    np.testing.assert_allclose(again.predict(new), loaded.predict(new), rtol=1e-6)
    # a call refused for another parameter changes nothing
    with pytest.raises(ValueError, match="no_such_setting"):
        again.set_params(input__on_error="raise", no_such_setting=1)
    assert again.input.on_error == "skip"
    for params, match in (({"input__shape": 3}, "unknown input__ setting"),
                          ({"input__on_error": "ignore"}, "'raise' or 'skip'"),
                          ({"input__progress": "yes"}, "True or False")):
        with pytest.raises(ValueError, match=match):
            loaded.set_params(**params)
    features = MetaAestheticRegressor(backbone=None, hidden_sizes=(8,), n_iterations=1,
                                      support_size=4, query_size=2, random_state=0)
    X = np.random.RandomState(0).randn(12, 5)
    feature_net = features.fit(X, y, groups=np.repeat(["a", "b"], 6)).personalize(X[:6], y[:6])
    with pytest.raises(ValueError, match="precomputed features"):
        feature_net.set_params(input__cache_dir=None)


def test_a_loaded_net_keeps_its_fine_tuning_settings_and_seed(prior, tmp_path):
    meta, X, y = prior
    net = meta.personalize(X[:40], y[:40], max_epochs=3, lr=1e-3)
    save_model(net, tmp_path / "net.pt")
    loaded = load_model(tmp_path / "net.pt")
    for key in ("random_state", "max_epochs", "lr", "batch_size", "optimizer__betas",
                "optimizer__weight_decay", "criterion__kind"):
        assert loaded.get_params()[key] == net.get_params()[key], key
    # its refits repeat themselves (they start from the prior, as the saved net's do)
    a = clone(loaded).fit(X[40:60], y[40:60]).predict(X[60:90])
    b = clone(loaded).fit(X[40:60], y[40:60]).predict(X[60:90])
    np.testing.assert_array_equal(a, b)
    net.set_params(callbacks=[("noop", _NoopCallback())])
    with pytest.warns(PIAAWarning, match=r"\['callbacks'\] are objects a model file cannot"):
        save_model(net, tmp_path / "cb.pt")


def test_a_loaded_net_keeps_its_prediction_settings(prior, tmp_path):
    # predict_nonlinearity and warm_start were dropped without a word: the loaded net
    # predicted on another scale (a user's own iterator classes were dropped alike)
    meta, X, y = prior
    net = meta.personalize(X[:40], y[:40], max_epochs=2, warm_start=True,
                           predict_nonlinearity=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        save_model(net, tmp_path / "net.pt")
    loaded = load_model(tmp_path / "net.pt")
    assert loaded.warm_start is True and loaded.predict_nonlinearity is None

    class Loader(torch.utils.data.DataLoader):
        pass

    net = meta.personalize(X[:40], y[:40], max_epochs=2, predict_nonlinearity=torch.tanh,
                           iterator_valid=Loader)
    with pytest.warns(PIAAWarning, match=r"\['predict_nonlinearity', 'iterator_valid'\] "
                                         "are objects"):
        save_model(net, tmp_path / "own.pt")


@pytest.mark.parametrize("params", [
    {"optimizer": torch.optim.SGD, "optimizer__momentum": 0.9, "lr": 0.05},
    {"optimizer": torch.optim.AdamW},
    {"criterion": torch.nn.HuberLoss, "criterion__delta": 0.5},
    {"train_split": ValidSplit(0.25)},
])
def test_a_loaded_net_keeps_its_optimizer_criterion_and_split(prior, tmp_path, params):
    # The file kept criterion__delta but not HuberLoss (the file then never loaded:
    # "damaged"), and dropped SGD and ValidSplit: the loaded net refit with Adam and no
    # split, another model, without a word.
    meta, X, y = prior
    net = meta.personalize(X[:40], y[:40], max_epochs=2, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        save_model(net, tmp_path / "net.pt")
    loaded = load_model(tmp_path / "net.pt")
    for key in ("optimizer", "criterion"):
        assert loaded.get_params()[key] is net.get_params()[key], key
    assert type(loaded.train_split) is type(net.train_split)
    np.testing.assert_array_equal(loaded.predict(X[60:70]), net.predict(X[60:70]))
    np.testing.assert_array_equal(clone(loaded).fit(X[40:60], y[40:60]).predict(X[60:90]),
                                  clone(net).fit(X[40:60], y[40:60]).predict(X[60:90]))


def test_a_net_whose_optimizer_this_torch_lacks_is_refused_by_name(prior, tmp_path,
                                                                    monkeypatch):
    meta, X, y = prior
    save_model(meta.personalize(X[:40], y[:40], max_epochs=1, optimizer=torch.optim.SGD),
               tmp_path / "net.pt")
    monkeypatch.delattr(torch.optim, "SGD")  # a torch without it
    with pytest.raises(ValueError, match=r"net\.pt: the personalized net's optimizer is "
                                         r"'torch\.optim\.SGD', which this sklearn-piaa"):
        load_model(tmp_path / "net.pt")


class _MyLoss(torch.nn.MSELoss):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale


def test_a_net_whose_criterion_a_file_cannot_name_loads_without_it(prior, tmp_path):
    meta, X, y = prior
    net = meta.personalize(X[:40], y[:40], max_epochs=2, criterion=_MyLoss,
                           criterion__scale=2.0)
    with pytest.warns(PIAAWarning, match=r"\['criterion'\] are objects a model file cannot "
                                         r"store \(and their criterion__\* options\)"):
        save_model(net, tmp_path / "net.pt")
    # its options are not handed to the package's loss, which takes no scale
    loaded = load_model(tmp_path / "net.pt")
    np.testing.assert_array_equal(loaded.predict(X[60:70]), net.predict(X[60:70]))
    clone(loaded).fit(X[40:60], y[40:60])


class _NoopCallback:
    def initialize(self):
        return self


def _refits(net, X, y):
    """What re-fitting ``net`` gives: a clone's predictions, a cross-validation's scores."""
    again = clone(net).fit(X[:10], y[:10]).predict(X[10:])
    scores = cross_val_score(net, X, y, cv=SupportQuerySplit(10, 3, random_state=1),
                             scoring=srocc_scorer)
    return again, scores


@pytest.mark.parametrize("score_range", [None, (100, 500)])
def test_a_loaded_net_refits_from_the_prior_as_the_saved_one_does(prior, tmp_path,
                                                                  score_range):
    # The file held only the personalized weights, which became the loaded net's
    # module: its clones (cross_val_score over SupportQuerySplit) fine-tuned from
    # weights that had seen the query images, and scored above the saved net's (audit:
    # SROCC 0.224 against -0.094 in memory). With score_range, the prior module is the
    # rescaled one (as the net in memory holds it).
    meta, X, y = prior
    Xi, yi = X[:60], y[:60] if score_range is None else 100 * y[:60]
    net = meta.personalize(Xi, yi, score_range=score_range, max_epochs=30, lr=1e-2,
                           random_state=0)
    save_model(net, tmp_path / "net.pt")
    loaded = load_model(tmp_path / "net.pt")
    for got, expected in zip(_refits(loaded, Xi, yi), _refits(net, Xi, yi)):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))  # fit left it alone
    # a refit in place too; then both hold the refitted weights, and predict alike
    loaded.fit(Xi[:10], yi[:10])
    np.testing.assert_allclose(loaded.predict(X), net.fit(Xi[:10], yi[:10]).predict(X),
                               rtol=1e-6)
    # only the prior's entries that differ from the personalized ones are stored
    state = torch.load(tmp_path / "net.pt", weights_only=True)
    assert "score_low" not in state["prior_module"]
    assert set(state["prior_module"]) < set(state["module"])


def test_a_loaded_whole_network_net_refits_from_the_prior(tmp_path):
    imgs, y, groups = _images()
    meta = MetaAestheticRegressor(backbone="tiny_cnn", train_backbone=True,
                                  hidden_sizes=(8,), n_iterations=3, support_size=6,
                                  query_size=3, random_state=0).fit(imgs, y, groups=groups)
    net = meta.personalize(imgs[:20], y[:20], max_epochs=5, lr=1e-2, random_state=0)
    save_model(net, tmp_path / "net.pt")
    loaded = load_model(tmp_path / "net.pt")
    expected = clone(net).fit(imgs[:10], y[:10]).predict(imgs[20:])
    np.testing.assert_allclose(clone(loaded).fit(imgs[:10], y[:10]).predict(imgs[20:]),
                               expected, rtol=1e-5)
    # the backbone trained too: its prior weights are stored beside the personalized ones
    state = torch.load(tmp_path / "net.pt", weights_only=True)
    assert any(k.startswith("backbone.") for k in state["prior_module"])


def test_a_net_saved_without_its_prior_loads_but_refuses_to_refit(prior, tmp_path):
    # Files written before they held the prior's weights: the loaded net has only the
    # personalized ones, from which a refit would start, scoring images they have seen.
    meta, X, y = prior
    net = meta.personalize(X[:40], y[:40], random_state=0)
    save_model(net, tmp_path / "net.pt")
    state = edited_state(tmp_path / "net.pt")
    state.pop("prior_module", None)
    torch.save(state, tmp_path / "old.pt")
    old = load_model(tmp_path / "old.pt")
    np.testing.assert_array_equal(old.predict(X), net.predict(X))
    refused = (r"loaded from .*{}, a model file without the prior.s weights.*personalized "
               r"network.*Personalize the prior again")
    with pytest.raises(TypeError, match=refused.format("old.pt")):
        clone(old)
    with pytest.raises(TypeError, match=refused.format("old.pt")):
        cross_val_score(old, X[:40], y[:40], cv=SupportQuerySplit(10, 2, random_state=0))
    with pytest.raises(TypeError, match=refused.format("old.pt")):
        old.fit(X[:10], y[:10])
    np.testing.assert_array_equal(old.predict(X), net.predict(X))  # left as it was
    # partial_fit continues from the personalized weights, as it does on any net
    assert not np.array_equal(old.partial_fit(X[:10], y[:10]).predict(X), net.predict(X))
    # saved again or pickled, it still refuses
    save_model(old, tmp_path / "again.pt")
    with pytest.raises(TypeError, match=refused.format("again.pt")):
        clone(load_model(tmp_path / "again.pt"))
    with pytest.raises(TypeError, match=refused.format("old.pt")):
        clone(pickle.loads(pickle.dumps(old)))


def test_prior_weights_false_writes_a_smaller_file_whose_net_refuses_to_refit(prior,
                                                                             tmp_path):
    # The prior's weights double a head-only net's file: a service storing many raters'
    # nets may leave them out, and gets a net that predicts but will not refit.
    meta, X, y = prior
    net = meta.personalize(X[:40], y[:40], random_state=0)
    save_model(net, tmp_path / "full.pt")
    save_model(net, tmp_path / "small.pt", prior_weights=False)
    assert "prior_module" not in torch.load(tmp_path / "small.pt", weights_only=True) \
        or torch.load(tmp_path / "small.pt", weights_only=True)["prior_module"] is None
    assert os.path.getsize(tmp_path / "small.pt") < 0.8 * os.path.getsize(tmp_path / "full.pt")
    small = load_model(tmp_path / "small.pt")
    np.testing.assert_array_equal(small.predict(X), net.predict(X))
    with pytest.raises(TypeError, match=r"small\.pt, a model file without the prior.s "
                                        r"weights \(saved with prior_weights=False"):
        clone(small)
    # no second copy of the head for refits it refuses; partial_fit trains it
    assert small.module is small.module_
    small.partial_fit(X[40:60], y[40:60])
    assert not np.array_equal(small.predict(X), net.predict(X))
    save_model(small, tmp_path / "small2.pt", prior_weights=False)
    np.testing.assert_array_equal(load_model(tmp_path / "small2.pt").predict(X),
                                  small.predict(X))
    with pytest.raises(TypeError, match="prior_weights must be True or False"):
        save_model(net, tmp_path / "bad.pt", prior_weights="no")
    assert not os.path.exists(tmp_path / "bad.pt")
    save_model(meta, tmp_path / "prior.pt", prior_weights=False)  # a prior: ignored
    np.testing.assert_array_equal(load_model(tmp_path / "prior.pt").predict(X), meta.predict(X))


def test_a_pickled_net_refits_from_the_prior(prior, tmp_path):
    # pickle keeps the module parameter (the prior) beside module_
    meta, X, y = prior
    Xi, yi = X[:60], y[:60]
    net = meta.personalize(Xi, yi, max_epochs=30, lr=1e-2, random_state=0)
    save_model(net, tmp_path / "net.pt")
    expected = _refits(net, Xi, yi)
    for copy_ in (pickle.loads(pickle.dumps(net)),
                  pickle.loads(pickle.dumps(load_model(tmp_path / "net.pt")))):
        for got, want in zip(_refits(copy_, Xi, yi), expected):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_models_loaded_with_equal_frozen_backbones_share_one(tmp_path, monkeypatch):
    # each loaded model held its own backbone: ten users' nets of one prior, loaded in
    # a service, held ten copies (about 50 MB each) and embedded each image ten times
    # Models of earlier tests that wait in reference cycles would hold an equal tiny_cnn
    # (and its memo of their images) in the registry of loaded backbones.
    gc.collect()
    imgs, y, groups = _images()
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2,
                                  support_size=6, query_size=3,
                                  random_state=0).fit(imgs, y, groups=groups)
    for u in range(3):
        save_model(meta.personalize(imgs[10 * u:10 * u + 10], y[10 * u:10 * u + 10],
                                    random_state=u), tmp_path / f"u{u}.pt")
    save_model(meta, tmp_path / "prior.pt")
    other = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2,
                                   support_size=6, query_size=3,
                                   random_state=1).fit(imgs, y, groups=groups)
    save_model(other, tmp_path / "other.pt")  # another tiny_cnn: other random weights
    nets = [load_model(tmp_path / f"u{u}.pt") for u in range(3)]
    prior = load_model(tmp_path / "prior.pt")
    backbones = {id(m.input_.backbone) for m in (prior, *(n.prior_ for n in nets))}
    assert len(backbones) == 1
    assert id(load_model(tmp_path / "other.pt").input_.backbone) not in backbones
    memo = prior.input_._memory
    assert all(n.prior_.input_._memory is memo for n in nets)
    expected = [nets[0].predict(imgs)]
    from sklearn_piaa._features import ImageEmbedder

    embedded, embed = [], ImageEmbedder._embed_batch
    monkeypatch.setattr(ImageEmbedder, "_embed_batch",
                        lambda self, pixels: embedded.append(len(pixels)) or embed(self, pixels))
    expected += [n.predict(imgs) for n in nets[1:]]
    assert embedded == []  # embedded once, for all of them
    monkeypatch.undo()
    for u, net in enumerate(nets):
        np.testing.assert_array_equal(net.predict(imgs), expected[u])
        np.testing.assert_allclose(
            net.predict(imgs), meta.personalize(imgs[10 * u:10 * u + 10],
                                                y[10 * u:10 * u + 10],
                                                random_state=u).predict(imgs), rtol=1e-5)
    # each keeps its own settings
    prior.set_params(on_error="skip").predict(imgs[:2])
    assert nets[0].prior_.input_.on_error == "raise"


def test_a_pickle_from_before_a_parameter_existed_loads_with_its_default(prior, tmp_path):
    # a prior and net pickled before loss and mixed_precision existed loaded, then failed
    # at their first use with a bare AttributeError (save_model too)
    meta, X, y = prior
    net = meta.personalize(X[:10], y[:10])
    expected, expected_net = meta.predict(X[:20]), net.predict(X[:20])
    old = copy.deepcopy(meta)
    del old.loss, old.mixed_precision, old.prior_net_.mixed_precision
    old_net = copy.deepcopy(net)
    del old_net.mixed_precision
    with pytest.warns(PIAAWarning) as caught:
        loaded = pickle.loads(pickle.dumps(old))
        loaded_net = pickle.loads(pickle.dumps(old_net))
    assert sorted({str(w.message) for w in caught}) == [
        f"this {name} was pickled by an earlier sklearn-piaa, without the parameters added "
        f"since: they take their defaults ({settings}). Save it with save_model: model "
        "files load in later versions as they were saved."
        for name, settings in [("MetaAestheticRegressor", "loss='mse', mixed_precision=False"),
                               ("PersonalizedNet", "mixed_precision=False")]]
    np.testing.assert_allclose(loaded.predict(X[:20]), expected, rtol=1e-6)
    np.testing.assert_allclose(loaded_net.predict(X[:20]), expected_net, rtol=1e-6)
    np.testing.assert_allclose(loaded.personalize(X[:10], y[:10]).predict(X[:20]),
                               expected_net, rtol=1e-6)
    save_model(loaded, tmp_path / "p.pt")
    np.testing.assert_allclose(load_model(tmp_path / "p.pt").predict(X[:20]), expected,
                               rtol=1e-6)


def test_a_prior_pickled_before_embedders_had_progress_still_predicts(tmp_path):
    # set_params(verbose=...) now reaches the embedder's progress bars, which an
    # embedder pickled before it had the attribute lacked: AttributeError on predict
    imgs, y, groups = _images(12)
    meta = _caching_prior(None, imgs, y, groups)
    del meta.input_.__dict__["progress"]
    old = pickle.loads(pickle.dumps(meta))
    assert old.input_.progress is False
    old.set_params(verbose=1).predict(imgs[:2])
    assert old.input_.progress is True


def test_a_priors_net_holds_its_network_once(prior, tmp_path):
    # module (where a fit starts) and module_ were two copies of the never-fitted prior:
    # twice its weights in memory and in a pickle (skorch pickles module_ apart)
    meta, X, y = prior
    before = meta.predict(X[:20])
    save_model(meta, tmp_path / "p.pt")
    loaded = load_model(tmp_path / "p.pt")
    copied = pickle.loads(pickle.dumps(meta))
    for model in (meta, loaded, copied):
        assert model.prior_net_.module is model.prior_net_.module_
        np.testing.assert_array_equal(model.predict(X[:20]), before)
        net = model.personalize(X[:20], y[:20], random_state=0)
        assert net.module_ is not model.prior_net_.module_
        np.testing.assert_array_equal(model.predict(X[:20]), before)  # the prior unchanged
    # the pickle of two copies is a network's pickle longer
    twice = copy.deepcopy(meta)
    twice.prior_net_.module = copy.deepcopy(twice.prior_net_.module_)
    network = len(pickle.dumps(meta.prior_net_.module_))
    assert len(pickle.dumps(meta)) + 0.9 * network < len(pickle.dumps(twice))


def test_a_loaded_prior_keeps_its_feature_width(ratings, tiny_params, tmp_path):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    save_model(meta, tmp_path / "prior.pt")
    loaded = load_model(tmp_path / "prior.pt")
    assert meta.n_features_in_ == X.shape[1]
    assert loaded.n_features_in_ == X.shape[1]
    np.testing.assert_array_equal(loaded.predict(X), meta.predict(X))


def test_a_loaded_prior_keeps_its_fit_time(ratings, tiny_params, tmp_path):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    save_model(meta, tmp_path / "prior.pt")
    loaded = load_model(tmp_path / "prior.pt")
    assert meta.fit_time_ > 0
    assert loaded.fit_time_ == meta.fit_time_


def test_a_prior_seeded_with_a_generator_saves_without_it(ratings, tiny_params, tmp_path):
    X, y, groups = ratings
    params = {**tiny_params, "random_state": np.random.RandomState(0)}
    meta = MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    save_model(meta, tmp_path / "prior.pt")
    loaded = load_model(tmp_path / "prior.pt")
    assert loaded.random_state is None  # a generator's position is not a setting
    np.testing.assert_array_equal(loaded.predict(X), meta.predict(X))


def test_a_loaded_net_keeps_a_batch_size_given_to_personalize(prior, tmp_path):
    meta, X, y = prior
    net = meta.personalize(X[:40], y[:40], max_epochs=2, batch_size=7)
    assert net.batch_size == 7
    save_model(net, tmp_path / "net.pt")
    assert load_model(tmp_path / "net.pt").batch_size == 7
