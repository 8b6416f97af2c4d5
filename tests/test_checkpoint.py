"""Checkpoint and resume: an interrupted meta-training ends with the uninterrupted prior."""

import glob
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import sklearn
import torch
from conftest import edited_state, flip_a_stored_byte, make_rating_features
from sklearn.model_selection import GridSearchCV

from sklearn_piaa import (
    MetaAestheticRegressor,
    PersonalizedSROCCScorer,
    PIAAWarning,
    UserGroupKFold,
)
from sklearn_piaa._checkpoint import RUN_KEY_VERSION, Checkpointer, checkpoint_name
from sklearn_piaa._features import run_keys


def checkpoint_file(folder):
    """The one checkpoint file in ``folder``, or None when it holds none.

    A write's temporary file (``*.tmp``, left by a process killed while writing; the
    next run removes it) is not a checkpoint.
    """
    files = sorted(f for f in os.listdir(folder)
                   if f.startswith("checkpoint") and not f.endswith(".tmp"))
    assert len(files) <= 1, files
    return os.path.join(folder, files[0]) if files else None


def _interrupted_at(call, monkeypatch, fit):
    """Run ``fit`` with BLG's outer step interrupted (KeyboardInterrupt) at its ``call``-th
    call, as a user stopping the run would; the step is put back afterwards."""
    from sklearn_piaa.meta import ALGORITHMS

    blg = ALGORITHMS["blg"]
    step, calls = blg.step, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return step(self, *args, **kwargs)

    monkeypatch.setattr(blg, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit()
    monkeypatch.setattr(blg, "step", step)


def _state(meta):
    return meta.prior_net_.module_.state_dict()


def _assert_same_prior(a, b):
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-6, atol=1e-7, msg=k)
    np.testing.assert_allclose(a.history_, b.history_, rtol=1e-6)


@pytest.mark.parametrize("algorithm", ["blg", "maml", "average", "reptile"])
def test_resume_after_a_stop_gives_the_same_prior(ratings, tiny_params, tmp_path, algorithm):
    X, y, groups = ratings
    params = {**tiny_params, "algorithm": algorithm, "n_iterations": 12}
    straight = MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    # A run stopped after 7 iterations (its last checkpoint at 5), then restarted.
    MetaAestheticRegressor(**{**params, "n_iterations": 7}, checkpoint_dir=tmp_path,
                           checkpoint_every=5).fit(X, y, groups=groups)
    state = torch.load(checkpoint_file(tmp_path), weights_only=True)
    assert state["iteration"] == 7  # the last iteration is always saved
    resumed = MetaAestheticRegressor(**params, checkpoint_dir=tmp_path,
                                     checkpoint_every=5).fit(X, y, groups=groups)
    _assert_same_prior(straight, resumed)


def test_runs_of_other_settings_keep_their_own_checkpoints(ratings, tiny_params, tmp_path):
    X, y, groups = ratings
    params = {**tiny_params, "n_iterations": 4, "checkpoint_dir": tmp_path}
    other = {**params, "inner_lr": 0.5}
    MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    MetaAestheticRegressor(**other).fit(X, y, groups=groups)
    MetaAestheticRegressor(**params).fit(X, y - 0.5, groups=groups)  # other data
    assert len(os.listdir(tmp_path)) == 3
    # each continues from its own checkpoint, to the prior of a straight run
    for p in (params, other):
        longer = {**p, "n_iterations": 6}
        resumed = MetaAestheticRegressor(**longer).fit(X, y, groups=groups)
        straight = MetaAestheticRegressor(**{**longer, "checkpoint_dir": None}).fit(
            X, y, groups=groups)
        _assert_same_prior(straight, resumed)


def test_a_shorter_run_leaves_a_longer_ones_checkpoint_alone(ratings, tiny_params, tmp_path,
                                                             monkeypatch):
    # It raised (the checkpoint is beyond n_iterations): the shorter candidates of a grid
    # search over n_iterations sharing the folder scored nan.
    X, y, groups = ratings
    params = {**tiny_params, "n_iterations": 6, "checkpoint_dir": tmp_path}
    MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    longer = checkpoint_file(tmp_path)
    before = open(longer, "rb").read()
    shorter = {**params, "n_iterations": 3}
    got = MetaAestheticRegressor(**shorter).fit(X, y, groups=groups)
    straight = MetaAestheticRegressor(**{**shorter, "checkpoint_dir": None}).fit(
        X, y, groups=groups)
    _assert_same_prior(straight, got)
    assert open(longer, "rb").read() == before
    own = longer.replace(".pt", "-n3.pt")
    assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(longer),
                                                   os.path.basename(own)])
    assert torch.load(own, weights_only=True)["iteration"] == 3
    # run again, the shorter one finds its own file finished: no iteration runs again
    from sklearn_piaa.meta import ALGORITHMS

    blg, steps = ALGORITHMS["blg"], []
    step = blg.step
    monkeypatch.setattr(blg, "step", lambda *a, **k: steps.append(1) or step(*a, **k))
    again = MetaAestheticRegressor(**shorter).fit(X, y, groups=groups)
    assert steps == []
    _assert_same_prior(straight, again)


def test_a_new_run_beside_an_unfinished_one_warns(ratings, tiny_params, tmp_path, monkeypatch):
    # The user who changed a setting meant to resume, perhaps: say what happens.

    X, y, groups = ratings
    params = {**tiny_params, "n_iterations": 6, "checkpoint_dir": tmp_path,
              "checkpoint_every": 2}
    _interrupted_at(4, monkeypatch, lambda: MetaAestheticRegressor(**params).fit(
        X, y, groups=groups))
    unfinished = os.path.basename(checkpoint_file(tmp_path))
    with pytest.warns(UserWarning, match=f"1 unfinished run.*{unfinished}.*starts at "
                                         "iteration 0") as record:
        MetaAestheticRegressor(**{**params, "inner_lr": 0.5}).fit(X, y, groups=groups)
    assert record[0].filename == __file__
    # finished runs are no reason to warn
    MetaAestheticRegressor(**params).fit(X, y, groups=groups)  # resumes and finishes it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MetaAestheticRegressor(**{**params, "inner_lr": 0.1}).fit(X, y, groups=groups)


def test_grid_search_with_a_checkpoint_dir(ratings, tiny_params, tmp_path, monkeypatch):
    # One checkpoint file per folder made every fit after the first fail.
    X, y, groups = ratings
    params = {**tiny_params, "n_iterations": 3, "checkpoint_dir": tmp_path}
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(MetaAestheticRegressor(**params), {"inner_lr": [1e-3, 1e-2]},
                              cv=UserGroupKFold(2, random_state=0),
                              scoring=PersonalizedSROCCScorer(n_support=10))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # finished runs beside each other: no warning
            search.fit(X, y, groups=groups)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    assert len(os.listdir(tmp_path)) == 5  # 2 candidates x 2 folds, and the refit
    # a search run again finds every fit finished: no iteration runs again
    from sklearn_piaa.meta import ALGORITHMS

    blg, steps = ALGORITHMS["blg"], []
    step = blg.step
    monkeypatch.setattr(blg, "step", lambda *a, **k: steps.append(1) or step(*a, **k))
    with sklearn.config_context(enable_metadata_routing=True):
        search.fit(X, y, groups=groups)
    assert steps == []
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], scores)
    assert len(os.listdir(tmp_path)) == 5


def test_equal_settings_of_other_types_resume_the_same_run(ratings, tiny_params, tmp_path,
                                                             monkeypatch):
    # np.float64(1e-3) from a search's grid against 1e-3, (1, 5) against the command
    # line's (1.0, 5.0), [8] against (8,): a second run from iteration 0, and a warning
    # that the folder held a run "of other data or settings"
    from sklearn_piaa.meta import ALGORITHMS

    X, y, groups = ratings
    params = {**tiny_params, "n_iterations": 3, "checkpoint_dir": tmp_path,
              "inner_lr": np.float64(1e-3), "score_range": (1.0, 5.0),
              "hidden_sizes": list(tiny_params["hidden_sizes"])}
    first = MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    blg, steps = ALGORITHMS["blg"], []
    step = blg.step
    monkeypatch.setattr(blg, "step", lambda *a, **k: steps.append(1) or step(*a, **k))
    again = {**params, "inner_lr": 1e-3, "score_range": (1, 5),
             "hidden_sizes": tuple(tiny_params["hidden_sizes"])}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = MetaAestheticRegressor(**again).fit(X, y, groups=groups)
    assert steps == [] and len(os.listdir(tmp_path)) == 1
    np.testing.assert_array_equal(second.predict(X[:5]), first.predict(X[:5]))


def test_grid_search_over_n_iterations_with_a_checkpoint_dir(ratings, tiny_params, tmp_path):
    X, y, groups = ratings

    def search(folder):
        params = {**tiny_params, "checkpoint_dir": folder, "checkpoint_every": 2}
        with sklearn.config_context(enable_metadata_routing=True):
            return GridSearchCV(MetaAestheticRegressor(**params), {"n_iterations": [6, 3]},
                                cv=UserGroupKFold(2, random_state=0),
                                scoring=PersonalizedSROCCScorer(n_support=10),
                                error_score="raise").fit(X, y, groups=groups)

    shared, alone = search(tmp_path), search(None)
    np.testing.assert_array_equal(shared.cv_results_["mean_test_score"],
                                  alone.cv_results_["mean_test_score"])


def test_ratings_moved_between_raters_are_another_run(ratings, tiny_params, tmp_path):
    # Each rater kept their count, which was all the run's key held of the raters: a fix
    # of two swapped rater ids resumed the old run and returned its prior.
    X, y, groups = ratings
    params = {**tiny_params, "n_iterations": 4, "checkpoint_dir": tmp_path}
    MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    fixed = groups.copy()
    other = np.flatnonzero(groups != groups[0])[0]
    fixed[0], fixed[other] = groups[other], groups[0]
    resumed = MetaAestheticRegressor(**params).fit(X, y, groups=fixed)
    assert len(os.listdir(tmp_path)) == 2
    straight = MetaAestheticRegressor(**{**params, "checkpoint_dir": None}).fit(
        X, y, groups=fixed)
    _assert_same_prior(straight, resumed)


def test_a_checkpoint_of_an_earlier_way_of_keying_runs_is_named(ratings, tiny_params,
                                                                  tmp_path):
    # Runs were keyed otherwise before (without each row's rater, with absolute paths,
    # in one checkpoint.pt per folder): an earlier version's checkpoint of the same run
    # was called a run "of other data or settings" to resume by fitting with them (or,
    # finished, passed over without a word); load_model said a fit would finish it.
    from sklearn_piaa import load_model
    from sklearn_piaa._checkpoint import with_digest

    X, y, groups = ratings
    params = {**tiny_params, "n_iterations": 4, "checkpoint_dir": tmp_path}
    MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    written = checkpoint_file(tmp_path)
    state = torch.load(written, weights_only=True)
    del state["run_key_version"]
    state["run_id"] = "0" * len(state["run_id"])  # the same run under the earlier key
    torch.save(with_digest(state), tmp_path / "checkpoint.pt")
    os.remove(written)
    with pytest.warns(UserWarning, match=r"holds 1 checkpoint.s. of another run-key version "
                                         r"or of none \(checkpoint.pt\): if one is this "
                                         "run's, written by another sklearn-piaa that keyed "
                                         "runs otherwise, only that version resumes it .* "
                                         "this run starts at iteration 0"):
        MetaAestheticRegressor(**{**params, "n_iterations": 6}).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="finishes it -- if it was written by another "
                                         "sklearn-piaa that keyed runs otherwise, only "
                                         "that version can"):
        load_model(tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="the run's data and settings finishes it; save"):
        load_model(checkpoint_file_of(tmp_path, exclude="checkpoint.pt"))


def checkpoint_file_of(folder, exclude):
    (name,) = [f for f in os.listdir(folder) if f.startswith("checkpoint") and f != exclude]
    return os.path.join(folder, name)


def test_damaged_checkpoint_is_named(ratings, tiny_params, tmp_path):
    X, y, groups = ratings
    MetaAestheticRegressor(**tiny_params, checkpoint_dir=tmp_path).fit(X, y, groups=groups)
    path = checkpoint_file(tmp_path)
    with open(path, "wb") as fh:
        fh.write(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"{os.path.basename(path)} cannot be read.*delete it"):
        MetaAestheticRegressor(**tiny_params, checkpoint_dir=tmp_path).fit(X, y, groups=groups)


def test_a_longer_run_is_not_moved_off_the_shared_file_by_a_shorter_one(tmp_path):
    # Two lengths of one run in parallel: the longer one, behind the shorter one's
    # finished file, moved to a file of its own for good, and its rerun resumed from
    # the shorter one's end.
    from sklearn_piaa._checkpoint import Checkpointer, checkpoint_name

    class Algorithm:
        def state_dict(self):
            return {}

    run, history = "cd" * 32, np.zeros(10)
    args = (torch.nn.Linear(2, 1), Algorithm(), np.random.RandomState(0))
    short, long = (Checkpointer(tmp_path, 2, run, n) for n in (5, 10))
    assert short.load() is None and long.load() is None  # both start before either writes
    short.save(5, 5, *args, history, 1.0, torch.device("cpu"))
    shared = tmp_path / checkpoint_name(run)
    for i in (2, 4):  # behind the shared file, on its own way: nothing to add
        long.save(i, 10, *args, history, 1.0, torch.device("cpu"))
        assert torch.load(shared, weights_only=True)["iteration"] == 5
    for i in (6, 8, 10):
        long.save(i, 10, *args, history, 1.0, torch.device("cpu"))
    assert os.listdir(tmp_path) == [shared.name]
    assert Checkpointer(tmp_path, 2, run, 10).load()["iteration"] == 10


def test_files_saved_without_checksums_are_read(ratings, tiny_params, tmp_path):
    # torch can save without CRCs (all 0): the check refused the package's own files
    # and told the user to delete a good checkpoint
    import importlib

    try:
        save = importlib.import_module("torch.utils.serialization").config.save
        old = save.compute_crc32
    except (ImportError, AttributeError):
        pytest.skip("this torch always writes checksums")
    # set and put back by hand: monkeypatch's undo deletes a config entry it cannot see
    save.compute_crc32 = False
    try:
        _saved_without_checksums(ratings, tiny_params, tmp_path)
    finally:
        save.compute_crc32 = old


def _saved_without_checksums(ratings, tiny_params, tmp_path):
    from sklearn_piaa import load_model, save_model

    X, y, groups = ratings
    params = {**tiny_params, "n_iterations": 4, "checkpoint_dir": tmp_path / "ck"}
    meta = MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    save_model(meta, tmp_path / "prior.pt")
    np.testing.assert_array_equal(load_model(tmp_path / "prior.pt").predict(X), meta.predict(X))
    longer = MetaAestheticRegressor(**{**params, "n_iterations": 6}).fit(X, y, groups=groups)
    straight = MetaAestheticRegressor(**{**params, "n_iterations": 6,
                                         "checkpoint_dir": None}).fit(X, y, groups=groups)
    _assert_same_prior(straight, longer)


def test_a_checkpoint_with_a_flipped_bit_is_refused(ratings, tiny_params, tmp_path):
    # torch.load does not check the archive's checksums: a damaged weight resumed as is
    X, y, groups = ratings
    MetaAestheticRegressor(**tiny_params, checkpoint_dir=tmp_path).fit(X, y, groups=groups)
    path = checkpoint_file(tmp_path)
    part = flip_a_stored_byte(path)
    with pytest.raises(ValueError, match=f"{os.path.basename(path)} is damaged.*{part}.*"
                                         "checksum.*delete it"):
        MetaAestheticRegressor(**tiny_params, checkpoint_dir=tmp_path).fit(X, y, groups=groups)


def test_a_checkpoint_that_loads_otherwise_than_written_is_refused(ratings, tiny_params,
                                                                   tmp_path):
    # as a damaged directory entry makes torch.load read a weight (as zeros)
    X, y, groups = ratings
    MetaAestheticRegressor(**tiny_params, checkpoint_dir=tmp_path).fit(X, y, groups=groups)
    path = checkpoint_file(tmp_path)
    state = torch.load(path, weights_only=True)  # its digest kept
    first = next(iter(state["prior"]))
    state["prior"][first] = torch.zeros_like(state["prior"][first])
    torch.save(state, path)
    with pytest.raises(ValueError, match=f"checkpoint .*{os.path.basename(path)} is damaged \\(a "
                                         "bad disk.*its contents differ.*Delete it"):
        MetaAestheticRegressor(**tiny_params, checkpoint_dir=tmp_path).fit(X, y, groups=groups)


def test_kill_during_a_checkpoint_write_keeps_the_previous_one(ratings, tiny_params, tmp_path,
                                                               monkeypatch):
    X, y, groups = ratings
    params = {**tiny_params, "n_iterations": 4, "checkpoint_dir": tmp_path,
              "checkpoint_every": 2}
    MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    path = checkpoint_file(tmp_path)
    with open(path, "rb") as fh:
        before = fh.read()
    real_save = torch.save

    def killed_mid_write(obj, fh):
        real_save(obj, fh)
        fh.truncate(100)  # half the bytes reached the disk ...
        raise KeyboardInterrupt  # ... when the process was stopped

    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        MetaAestheticRegressor(**{**params, "n_iterations": 6}).fit(X, y, groups=groups)
    with open(path, "rb") as fh:
        assert fh.read() == before
    assert os.listdir(tmp_path) == [os.path.basename(path)]
    # a SIGKILL leaves the temporary file behind: the run's next fit removes it once
    # it is an hour old; a younger one may be the write in progress of a run sharing
    # the file (another n_iterations in a grid search), which removing it crashed
    stale, fresh = f"{path}.x1y2z3.tmp", f"{path}.a4b5c6.tmp"
    for name in (stale, fresh):
        with open(name, "wb") as fh:
            fh.write(before[:100])
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    monkeypatch.undo()
    MetaAestheticRegressor(**{**params, "n_iterations": 6}).fit(X, y, groups=groups)
    assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(path),
                                                   os.path.basename(fresh)])
    assert torch.load(path, weights_only=True)["iteration"] == 6


_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import edited_state, flip_a_stored_byte, make_rating_features
    from sklearn_piaa import MetaAestheticRegressor
    X, y, groups, _ = make_rating_features()
    MetaAestheticRegressor(backbone=None, hidden_sizes=(16,), n_iterations={n},
                           support_size=20, query_size=10, random_state=0,
                           checkpoint_dir={ckpt!r}, checkpoint_every=10).fit(X, y, groups=groups)
""")


def test_sigkilled_run_resumes_to_the_uninterrupted_prior(tmp_path):
    n = 10**6  # the child never finishes on its own
    X, y, groups, _ = make_rating_features()
    ckpt = tmp_path / "ckpt"
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(tests=os.path.dirname(__file__), n=n, ckpt=str(ckpt)))
    # Same thread count as this process: summation order changes with it, and Adam
    # turns the rounding noise of the (mathematically zero) gradient of a bias that
    # feeds BatchNorm into steps of the learning rate's size.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    child = subprocess.Popen([sys.executable, str(script)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not (ckpt.is_dir() and checkpoint_file(ckpt)):
            assert child.poll() is None, "the child exited before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        time.sleep(0.3)  # let it run on past a checkpoint, into the next interval
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    reached = torch.load(checkpoint_file(ckpt), weights_only=True)["iteration"]
    assert 10 <= reached < n, reached  # it really was killed mid-way
    # n_iterations may change between runs (it is the run's end, not its identity):
    # finish 15 iterations past the kill, then compare with a straight run of that length.
    params = dict(backbone=None, hidden_sizes=(16,), n_iterations=reached + 15,
                  support_size=20, query_size=10, random_state=0)
    # A write the kill cut short leaves a temporary file. The resumed run removes it
    # once it is an hour old (a younger one may be a write in progress of a run sharing
    # the file: test_kill_during_a_checkpoint_write_keeps_the_previous_one); aged here.
    hours_ago = time.time() - 7200
    for f in os.listdir(ckpt):
        if f.endswith(".tmp"):
            os.utime(ckpt / f, (hours_ago, hours_ago))
    resumed = MetaAestheticRegressor(**params, checkpoint_dir=ckpt,
                                     checkpoint_every=10).fit(X, y, groups=groups)
    assert not [f for f in os.listdir(ckpt) if f.endswith(".tmp")]
    straight = MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    _assert_same_prior(straight, resumed)


def test_whole_network_resume_after_an_interrupt(image_files, tmp_path, monkeypatch):
    # Whole-network training decodes the next iteration's images ahead: the checkpoint
    # at iteration 2 must hold the random state from before that look-ahead.

    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    groups = np.repeat(["a", "b"], 6)
    params = dict(backbone="tiny_cnn", train_backbone=True, hidden_sizes=(8,),
                  n_iterations=5, tasks_per_batch=1, support_size=3, query_size=2,
                  random_state=0)
    straight = MetaAestheticRegressor(**params).fit(image_files, y, groups=groups)
    _interrupted_at(3, monkeypatch, lambda: MetaAestheticRegressor(
        **params, checkpoint_dir=tmp_path, checkpoint_every=2).fit(image_files, y,
                                                                  groups=groups))
    assert torch.load(checkpoint_file(tmp_path), weights_only=True)["iteration"] == 2
    resumed = MetaAestheticRegressor(**params, checkpoint_dir=tmp_path,
                                     checkpoint_every=2).fit(image_files, y, groups=groups)
    _assert_same_prior(straight, resumed)


def _image_ratings(n=40):
    rng = np.random.RandomState(0)
    imgs = rng.randint(0, 256, (n, 32, 32, 3)).astype(np.uint8)
    return imgs, rng.uniform(1, 5, n), np.repeat(np.arange(4), n // 4)


def test_whole_network_runs_from_other_backbone_weights_are_other_runs(tmp_path):
    # The weights file replaced at the same path (or another module) resumed the old
    # run's checkpoint: the old prior came back, trained on the old weights.
    from sklearn_piaa.nn import load_backbone
    imgs, y, groups = _image_ratings()
    weights = tmp_path / "tiny.pth"
    params = dict(backbone="tiny_cnn", backbone_weights=str(weights), train_backbone=True,
                  hidden_sizes=(8,), n_iterations=2, support_size=6, query_size=3,
                  random_state=0, checkpoint_dir=tmp_path / "run")
    for seed in (1, 2):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            torch.save(load_backbone("tiny_cnn", pretrained=False).state_dict(), weights)
        if seed == 1:
            MetaAestheticRegressor(**params).fit(imgs, y, groups=groups)
            MetaAestheticRegressor(**{**params, "n_iterations": 3}).fit(imgs, y, groups=groups)
    # a new run, in its own checkpoint, not the old one resumed
    resumed = MetaAestheticRegressor(**params).fit(imgs, y, groups=groups)
    assert len(os.listdir(tmp_path / "run")) == 2
    straight = MetaAestheticRegressor(**{**params, "checkpoint_dir": None}).fit(
        imgs, y, groups=groups)
    _assert_same_prior(straight, resumed)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten())
    params.update(backbone=module, backbone_weights=None, checkpoint_dir=tmp_path / "mod")
    MetaAestheticRegressor(**params).fit(imgs, y, groups=groups)
    with torch.no_grad():
        module[0].weight.mul_(2)
    MetaAestheticRegressor(**params).fit(imgs, y, groups=groups)
    assert len(os.listdir(tmp_path / "mod")) == 2


def test_backbone_weights_without_a_named_backbone_are_refused(tmp_path):
    imgs, y, groups = _image_ratings()
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten())
    with pytest.raises(ValueError, match="apply to a named backbone; got the module "
                                         "Sequential"):
        MetaAestheticRegressor(backbone=module, backbone_weights="/no/such.pth",
                               hidden_sizes=(4,), n_iterations=1, support_size=4,
                               query_size=2).fit(imgs, y, groups=groups)
    with pytest.raises(ValueError, match="needs a named backbone; got backbone=None"):
        MetaAestheticRegressor(backbone=None, backbone_weights="w.pth").fit(
            imgs.reshape(40, -1)[:, :8].astype(np.float32), y, groups=groups)


def test_a_whole_network_run_continues_after_its_images_change_permissions(image_files,
                                                                          tmp_path):
    # The run was keyed by each file's status-change time, which chmod sets: raising
    # n_iterations after a chmod started a new run at iteration 0, without a word.
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    groups = np.repeat(["a", "b"], 6)
    params = dict(backbone="tiny_cnn", train_backbone=True, hidden_sizes=(8,),
                  tasks_per_batch=1, support_size=3, query_size=2, random_state=0,
                  checkpoint_dir=tmp_path / "ckpt")
    MetaAestheticRegressor(**params, n_iterations=2).fit(image_files, y, groups=groups)
    os.chmod(image_files[0], 0o640)
    MetaAestheticRegressor(**params, n_iterations=3).fit(image_files, y, groups=groups)
    (name,) = os.listdir(tmp_path / "ckpt")
    assert torch.load(tmp_path / "ckpt" / name, weights_only=True)["iteration"] == 3


def test_a_head_only_image_run_resumes_when_its_embeddings_round_otherwise(image_files,
                                                                          tmp_path, monkeypatch):
    # The run was keyed by the embeddings' values, which the backbone's arithmetic
    # changes at the level of rounding with torch's thread count: a run restarted on a
    # machine (or a job) with other CPUs started over at iteration 0.
    from sklearn_piaa._features import ImageEmbedder

    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    groups = np.repeat(["a", "b"], 6)
    params = dict(backbone="tiny_cnn", hidden_sizes=(8,), tasks_per_batch=1,
                  support_size=3, query_size=2, random_state=0,
                  checkpoint_dir=tmp_path / "ckpt")
    MetaAestheticRegressor(**params, n_iterations=2).fit(image_files, y, groups=groups)
    transform_unique = ImageEmbedder.transform_unique

    def rounded_otherwise(self, X, strict_cache=False):
        unique, inverse = transform_unique(self, X, strict_cache)
        return np.nextafter(unique, np.inf, dtype=np.float32), inverse

    monkeypatch.setattr(ImageEmbedder, "transform_unique", rounded_otherwise)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "unfinished runs of other data or settings"
        MetaAestheticRegressor(**params, n_iterations=3).fit(image_files, y, groups=groups)
    (name,) = os.listdir(tmp_path / "ckpt")
    assert torch.load(tmp_path / "ckpt" / name, weights_only=True)["iteration"] == 3
    # other images are another run
    MetaAestheticRegressor(**params, n_iterations=2).fit(image_files[::-1], y,
                                                         groups=groups)
    assert len(os.listdir(tmp_path / "ckpt")) == 2


@pytest.mark.parametrize("train_backbone", [False, True])
def test_a_moved_image_folder_resumes_its_run(tmp_path, train_backbone):
    # Keyed by absolute paths, a head-only run on files did not find its checkpoint
    # after its folder moved (keyed by the embeddings, it used to).
    import shutil

    from PIL import Image

    src = tmp_path / "photos" / "set"
    src.mkdir(parents=True)
    rng = np.random.RandomState(0)
    for i in range(12):
        Image.fromarray(rng.randint(0, 256, (24, 24, 3)).astype(np.uint8)).save(
            src / f"{i}.png")
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    groups = np.repeat(["a", "b"], 6)
    params = dict(backbone="tiny_cnn", train_backbone=train_backbone, hidden_sizes=(8,),
                  tasks_per_batch=1, support_size=3, query_size=2, random_state=0,
                  checkpoint_dir=tmp_path / "ckpt")
    MetaAestheticRegressor(**params, n_iterations=2).fit(
        [str(src / f"{i}.png") for i in range(12)], y, groups=groups)
    moved = tmp_path / "elsewhere"
    shutil.move(str(tmp_path / "photos"), str(moved))  # the same files, times kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MetaAestheticRegressor(**params, n_iterations=3).fit(
            [str(moved / "set" / f"{i}.png") for i in range(12)], y, groups=groups)
    (name,) = os.listdir(tmp_path / "ckpt")
    assert torch.load(tmp_path / "ckpt" / name, weights_only=True)["iteration"] == 3
    # another order of the same files is other data
    MetaAestheticRegressor(**params, n_iterations=2).fit(
        [str(moved / "set" / f"{i}.png") for i in range(11, -1, -1)], y, groups=groups)
    assert len(os.listdir(tmp_path / "ckpt")) == 2


def test_runs_of_user_backbones_that_preprocess_otherwise_are_other_runs(image_files,
                                                                         tmp_path):
    # Parameter-free modules: told apart by their code and preprocessing, which the key
    # of a head-only run on images left out once it no longer hashed the embeddings.
    from sklearn_piaa.nn import Backbone

    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    groups = np.repeat(["a", "b"], 6)
    params = dict(hidden_sizes=(8,), tasks_per_batch=1, support_size=3, query_size=2,
                  random_state=0, checkpoint_dir=tmp_path / "ckpt")
    for mean, std in (((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), ((0.9, 0.1, 0.5), (0.05, 0.3, 0.02))):
        backbone = Backbone(torch.nn.Identity(), 3, input_size=16, mean=mean, std=std)
        meta = MetaAestheticRegressor(backbone=backbone, n_iterations=2, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the second run beside the first one's file
            meta.fit(image_files, y, groups=groups)
    assert len(os.listdir(tmp_path / "ckpt")) == 2


def test_a_named_backbone_given_another_input_size_is_another_run_and_cache(image_files,
                                                                           tmp_path):
    # the key of a built-in name held its weights only: tiny_cnn set to 64 px resumed
    # the 32 px run and took the 32 px embeddings from the cache
    from sklearn_piaa.nn import load_backbone

    y, groups = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2), np.repeat(["a", "b"], 6)
    torch.manual_seed(0)
    small = load_backbone("tiny_cnn")
    large = load_backbone("tiny_cnn")
    large.load_state_dict(small.state_dict())
    large.input_size = 64
    params = dict(hidden_sizes=(8,), n_iterations=2, tasks_per_batch=1, support_size=3,
                  query_size=2, random_state=0, checkpoint_dir=tmp_path / "ckpt",
                  cache_dir=tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the second run beside the first one's file
        a = MetaAestheticRegressor(backbone=small, **params).fit(image_files, y, groups=groups)
        b = MetaAestheticRegressor(backbone=large, **params).fit(image_files, y, groups=groups)
    assert len(os.listdir(tmp_path / "ckpt")) == 2
    assert len(os.listdir(tmp_path / "cache")) == 2
    fresh = MetaAestheticRegressor(backbone=large, **{**params, "checkpoint_dir": None,
                                                      "cache_dir": None})
    fresh.fit(image_files, y, groups=groups)
    np.testing.assert_allclose(b.predict(image_files), fresh.predict(image_files), rtol=1e-5)
    assert not np.allclose(a.input_.transform(image_files), b.input_.transform(image_files))


def test_an_unseeded_random_backbone_is_not_resumed_under_another_head(image_files,
                                                                       tmp_path):
    # tiny_cnn ships no weights: with random_state=None each fit draws another backbone,
    # and a head trained on one backbone's embeddings resumed on another's
    y, groups = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2), np.repeat(["a", "b"], 6)
    params = dict(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2, tasks_per_batch=1,
                  support_size=3, query_size=2, checkpoint_dir=tmp_path / "ckpt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            MetaAestheticRegressor(**params).fit(image_files, y, groups=groups)
    assert len(os.listdir(tmp_path / "ckpt")) == 2


def test_a_checkpoint_that_cannot_be_written_warns_and_training_goes_on(
        ratings, tiny_params, tmp_path, monkeypatch):
    # a full disk at one write aborted the fit and lost the prior in memory
    import errno

    import sklearn_piaa._checkpoint as checkpoint

    X, y, groups = ratings
    writes, write = [], checkpoint.atomic_write

    def full(path, *args, **kwargs):
        writes.append(path)
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return write(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "atomic_write", full)
    params = {**tiny_params, "n_iterations": 6, "checkpoint_every": 2}
    with pytest.warns(PIAAWarning, match=r"^checkpoint_dir: the checkpoint after iteration 4 "
                                         r"could not be written \(\[Errno 28\] No space left "
                                         r".*meta-training goes on"):
        meta = MetaAestheticRegressor(**params, checkpoint_dir=tmp_path).fit(
            X, y, groups=groups)
    assert len(meta.history_) == 6 and len(writes) == 3
    assert torch.load(checkpoint_file(tmp_path), weights_only=True)["iteration"] == 6
    plain = MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    np.testing.assert_array_equal(meta.predict(X[:20]), plain.predict(X[:20]))


@pytest.mark.parametrize("seed", [None, "instance"])
def test_resuming_an_unseeded_run_says_the_seed_given_is_not_used(ratings, tiny_params,
                                                                    tmp_path, seed):
    # a fit with RandomState(1) returned the prior of an earlier RandomState(0) run in
    # the same folder without a word (found by an audit)
    X, y, groups = ratings
    params = {**tiny_params, "n_iterations": 3, "checkpoint_dir": tmp_path}
    del params["random_state"]

    def state():
        return None if seed is None else np.random.RandomState(len(os.listdir(tmp_path)))

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fresh run: nothing to say
        first = MetaAestheticRegressor(**params, random_state=state()).fit(
            X, y, groups=groups)
    given = "None" if seed is None else "a RandomState instance"
    with pytest.warns(UserWarning, match=rf"iteration 3 of 3\), an earlier fit with the same "
                      rf"data and settings: random_state={given} does not tell runs apart"
                      r".* and returns its prior"):
        again = MetaAestheticRegressor(**params, random_state=state()).fit(
            X, y, groups=groups)
    _assert_same_prior(first, again)
    with pytest.warns(UserWarning, match=r"iteration 3 of 5\).*draws instead of making new"):
        MetaAestheticRegressor(**{**params, "n_iterations": 5}, random_state=state()).fit(
            X, y, groups=groups)


def test_resuming_an_unseeded_run_leaves_numpys_global_generator_alone(ratings, tiny_params,
                                                                        tmp_path):
    # random_state=None resumed by setting numpy's global generator to the checkpoint's
    # state: the caller's stream repeated the earlier run's numbers, whatever its seed
    X, y, groups = ratings
    params = {**tiny_params, "random_state": None, "checkpoint_every": 2}
    del params["n_iterations"]
    MetaAestheticRegressor(**params, n_iterations=4, checkpoint_dir=tmp_path / "a").fit(
        X, y, groups=groups)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    after, priors = [], []
    for user_seed, folder in [(1, "a"), (2, "b")]:
        np.random.seed(user_seed)
        with pytest.warns(UserWarning, match="continues that run's random draws"):
            priors.append(MetaAestheticRegressor(**params, n_iterations=6,
                                                 checkpoint_dir=tmp_path / folder).fit(
                X, y, groups=groups))
        after.append(np.random.rand(3))
    assert not np.array_equal(*after)
    _assert_same_prior(*priors)  # the run's own draws go on as checkpointed


#: The run key (``fingerprint``) of a fit with :data:`_PINNED_PARAMS` on
#: :func:`_pinned_data`, by ``RUN_KEY_VERSION``: add an entry, never edit one.
PINNED_RUN_KEYS = {3: "cbe838b5cff12f60ef451837cdd3f69f"}
#: :func:`run_keys` of the images of ``test_the_image_keys_of_a_run_are_pinned``, by
#: ``RUN_KEY_VERSION``: add an entry, never edit one.
PINNED_IMAGE_KEYS = {3: ["612e6a7067:1700000000000000000:55",
                         "622e706e67:1700000000000000000:55",
                         "b998e52d282e0ded1d51704986403dd5"]}

#: Every constructor parameter, spelled out: a new one enters get_params(), and so
#: every run's key, unless _checkpointer ignores it. Python numbers, strings and
#: tuples only: numpy 2 writes the repr of its scalars otherwise than numpy 1.
_PINNED_PARAMS = dict(
    backbone=None, backbone_weights=None, train_backbone=False, hidden_sizes=(4,),
    dropout=0.5, algorithm="blg", n_iterations=1, tasks_per_batch=2, support_size=3,
    query_size=1, inner_steps=1, inner_lr=1e-3, inner_backbone_lr=1e-4, outer_lr=1e-2,
    betas=(0.9, 0.99), weight_decay=1e-5, loss="mse", lr_decay=0.9, lr_decay_every=100,
    finetune_epochs=1, finetune_lr=None, finetune_batch_size=None, score_range=(1.0, 5.0),
    batch_size=64, cache_dir=None, on_error="raise", device="cpu", mixed_precision=False,
    checkpoint_every=1, random_state=0, verbose=0)


def _pinned_data():
    # Exact binary fractions, copied into the key as they are: no arithmetic whose
    # rounding could differ between CPUs or torch builds.
    X = (np.arange(24, dtype=np.float32).reshape(12, 2) - 11.5) / 8
    y = np.array([1, 2, 3, 4, 5, 3, 2, 4, 5, 1, 3, 4], dtype=np.float32)
    return X, y, np.repeat(["ann", "bob", "cy"], 4)


def _advice(pinned, got):
    # the next version's entry, unless the version was raised already
    version = RUN_KEY_VERSION + (RUN_KEY_VERSION in pinned)
    return ("the run key changed: if intended, raise RUN_KEY_VERSION and update this value "
            f"(add {version}: {got!r} to the pinned values).")


def test_the_run_key_is_pinned(tmp_path):
    # A change to how runs are keyed (or a new constructor parameter) must raise
    # RUN_KEY_VERSION, which tells a user why the old run's checkpoint is passed over.
    # The key is that of features: paths, dates, the machine's threads and torch's
    # version never enter it, nor does the folder; the hash seed differs from run to
    # run (pytest leaves PYTHONHASHSEED unset), and the key must not.
    X, y, groups = _pinned_data()
    MetaAestheticRegressor(**_PINNED_PARAMS, checkpoint_dir=tmp_path).fit(X, y, groups=groups)
    key = torch.load(checkpoint_file(tmp_path), weights_only=True)["run_id"]
    assert key == PINNED_RUN_KEYS.get(RUN_KEY_VERSION), _advice(PINNED_RUN_KEYS, key)


def test_the_image_keys_of_a_run_are_pinned(tmp_path):
    # An image run's key holds these in place of the features; a file's are its path
    # below the run's folder, its modification time and its size, all fixed here (an
    # even number of seconds, which even FAT keeps). A user's backbone module, keyed
    # by its repr and weights, is left out: both come with the machine's torch.
    from sklearn_piaa._features import run_keys

    images = []
    for name in ("a.jpg", "b.png"):
        (tmp_path / name).write_bytes(b"not decoded" * len(name))
        os.utime(tmp_path / name, ns=(1_700_000_000 * 10**9,) * 2)
        images.append(str(tmp_path / name))
    images.append(np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
    keys = run_keys(images).tolist()
    assert keys == PINNED_IMAGE_KEYS.get(RUN_KEY_VERSION), _advice(PINNED_IMAGE_KEYS, keys)



def test_an_unusable_checkpoint_dir_is_refused_before_the_images_are_embedded(
        tmp_path, image_files, monkeypatch):
    # It was checked when the first checkpoint was due: after every image was embedded
    # (hours of EfficientNet on FLICKR-AES), whose embeddings went with the error.
    def never(*args, **kwargs):
        raise AssertionError("the images were embedded")

    monkeypatch.setattr(MetaAestheticRegressor, "_build", never)
    taken = tmp_path / "taken"
    taken.write_text("a file")
    meta = MetaAestheticRegressor(backbone="tiny_cnn", checkpoint_dir=taken, random_state=0)
    with pytest.raises(ValueError, match=r"checkpoint_dir '.*taken' exists and is not a "
                                         r"directory"):
        meta.fit(image_files, np.arange(len(image_files)) % 5 + 1.0,
                 groups=np.repeat(["a", "b"], len(image_files) // 2))


def test_a_checkpoint_of_another_format_version_is_refused(ratings, tiny_params, tmp_path):
    X, y, groups = ratings
    MetaAestheticRegressor(**tiny_params, checkpoint_dir=tmp_path).fit(X, y, groups=groups)
    path, = glob.glob(os.path.join(tmp_path, "checkpoint-*.pt"))
    state = edited_state(path)
    state["format_version"] = 2  # a later sklearn-piaa's layout
    torch.save(state, path)
    with pytest.raises(ValueError, match="has format version 2; this sklearn-piaa reads "
                                         "version 1"):
        MetaAestheticRegressor(**tiny_params, checkpoint_dir=tmp_path).fit(X, y, groups=groups)


def test_one_file_runs_on_other_files_have_other_keys(image_files, tmp_path):
    other = tmp_path / "other.png"
    shutil.copy2(image_files[0], other)  # same size and modification time
    st = os.stat(image_files[0])
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert run_keys([image_files[0]])[0] != run_keys([str(other)])[0]


def test_a_resumed_run_counts_the_time_of_the_run_it_continues(ratings, tiny_params,
                                                               tmp_path):
    X, y, groups = ratings
    params = {**tiny_params, "n_iterations": 4, "checkpoint_dir": tmp_path}
    first = MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    path, = glob.glob(os.path.join(tmp_path, "checkpoint-*.pt"))
    held = torch.load(path, weights_only=True)["elapsed"]
    assert 0 < held <= first.fit_time_
    state = edited_state(path)
    state["elapsed"] = 1000.0  # as if the first run had taken 1000 s
    torch.save(state, path)
    resumed = MetaAestheticRegressor(**{**params, "n_iterations": 6}).fit(
        X, y, groups=groups)
    assert 1000.0 <= resumed.fit_time_ < 1300.0
    assert torch.load(path, weights_only=True)["elapsed"] >= 1000.0


class _Algorithm:
    def state_dict(self):
        return {}


def _args():
    return (torch.nn.Linear(2, 1), _Algorithm(), np.random.RandomState(0))


def test_a_run_behind_its_own_finished_twin_writes_nothing(tmp_path):
    # two processes of the same run (same length): one finished the shared file;
    # the other, behind it, must neither write nor move to a file of its own.
    run, history = "ab" * 32, np.zeros(10)
    first, second = (Checkpointer(tmp_path, 2, run, 10) for _ in range(2))
    assert first.load() is None and second.load() is None
    first.save(10, 10, *_args(), history, 1.0, torch.device("cpu"))
    shared = tmp_path / checkpoint_name(run)
    before = shared.read_bytes()
    for i in (2, 4, 6, 8):
        second.save(i, 10, *_args(), history, 1.0, torch.device("cpu"))
    assert os.listdir(tmp_path) == [shared.name]
    assert shared.read_bytes() == before


def test_a_shorter_run_does_not_warn_of_its_longer_twins_unfinished_file(tmp_path):
    # the shared file holds a longer run of the same data and settings, stopped
    # past the shorter run's end: not "an unfinished run of other data or settings".
    run, history = "cd" * 32, np.zeros(10)
    longer = Checkpointer(tmp_path, 2, run, 10)
    assert longer.load() is None
    longer.save(8, 10, *_args(), history, 1.0, torch.device("cpu"))  # stopped at 8 of 10
    shorter = Checkpointer(tmp_path, 2, run, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert shorter.load() is None  # its own file: none yet
    assert os.path.basename(shorter.path) == checkpoint_name(run, 5)
