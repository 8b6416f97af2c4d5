"""Bad input gets an error that names the problem, never a silent wrong answer.

Each case here once passed silently (NaN predictions, scores paired with the wrong
images, a prior overwritten) or failed with a bare KeyError / unpacking error.
"""

import os
import stat
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import TINY, edited_state, make_rating_features
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_piaa import (
    ConsensusRidgeRegressor,
    MetaAestheticRegressor,
    PIAAWarning,
    TaskSet,
    UserRidgeRegressor,
    embed_images,
    evaluate_personalization,
    load_model,
    personalized_srocc,
    save_model,
    srocc,
)
from sklearn_piaa.cli import main


@pytest.fixture(scope="module")
def fitted():
    X, y, groups, _ = make_rating_features()
    return MetaAestheticRegressor(**TINY).fit(X, y, groups=groups), X, y, groups


@pytest.mark.parametrize("score_range, message", [
    ((1, np.inf), "finite"),
    ((np.nan, 5), "finite"),
    ((5, 1), "low < high"),
    ((1,), "got 1 value"),
    ((1, 3, 5), "got 3 value"),
    # distinct in float64, one float32: every prediction was the same constant
    ((1e8, 1e8 + 1), r"no width in float32, .* both read 100000000"),
])
def test_score_range_is_a_finite_increasing_pair(fitted, tiny_params, score_range, message):
    meta, X, y, groups = fitted
    with pytest.raises(ValueError, match=message):
        MetaAestheticRegressor(**{**tiny_params, "score_range": score_range}).fit(
            X, y, groups=groups)
    with pytest.raises(ValueError, match=message):
        meta.personalize(X[:10], y[:10], score_range=score_range)
    prior = UserRidgeRegressor().fit(X, y, groups=groups)
    with pytest.raises(ValueError, match=message):
        prior.personalize(X[:10], y[:10], score_range=score_range)
    with pytest.raises(ValueError, match="pair of numbers"):
        meta.personalize(X[:10], y[:10], score_range="high")


def test_two_column_scores_are_refused_not_flattened(fitted):
    meta, X, y, groups = fitted
    y2 = np.column_stack([y[:10], y[10:20]])
    with pytest.raises(ValueError, match=r"y must be 1-D .*\(10, 2\)"):
        meta.personalize(X[:10], y2)
    with pytest.raises(ValueError, match=r"rater 'a': y must be 1-D"):
        TaskSet.from_mapping({"a": (X[:10], y2), "b": (X[10:20], y[10:20])})
    with pytest.raises(ValueError, match="numeric"):
        meta.personalize(X[:3], ["a", "b", "c"])
    # A column vector is one score per image: accepted.
    net = meta.personalize(X[:10], y[:10, None], max_epochs=1)
    assert net.predict(X[:2]).shape == (2,)


def test_a_score_range_float32_cannot_resolve_is_warned_of(fitted, tiny_params):
    # ratings of 1-5 plus 1e6 are each exact in float32, but the head's output moves in
    # steps of 0.0625 there: 32 distinct predictions among 100 images, without a word
    meta, X, y, groups = fitted
    message = (r"score range \(1000001, 1000005\) lies where float32, .* steps of 0\.0625: "
               r"predictions take at most 65 distinct values .*\(e\.g\. y - 1000001\)")
    with pytest.warns(PIAAWarning, match="the prior's " + message):
        MetaAestheticRegressor(**tiny_params).fit(X, y + 1e6, groups=groups)
    with pytest.warns(PIAAWarning, match=r"^score_range \(-1000005, -999995\) .*y \+ 1000005"):
        meta.personalize(X[:10], y[:10] - 1e6, score_range=(-1e6 - 5, -1e6 + 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        meta.personalize(X[:10], y[:10] + 1e4, score_range=(1e4, 1e4 + 10))


def test_ragged_nested_scores_are_named(fitted):
    # numpy's "setting an array element with a sequence ... inhomogeneous shape" did not
    # say that y is one score per image
    meta, X, y, groups = fitted
    ragged = [list(y[:3]), list(y[3:5])]
    message = "must be one score per image .* lists of different lengths"
    with pytest.raises(ValueError, match=message + ".*TaskSet.from_mapping"):
        TaskSet.from_arrays(X[:2], ragged, ["a", "b"])
    with pytest.raises(ValueError, match="rater 'a': y " + message):
        TaskSet.from_mapping({"a": (X[:2], ragged), "b": (X[2:4], y[2:4])})
    with pytest.raises(ValueError, match="y_true " + message):
        srocc(ragged, [1, 2])
    with pytest.raises(ValueError, match="^y " + message):
        meta.personalize(X[:2], ragged)


def test_a_nan_feature_in_an_evaluation_is_named_by_its_row_of_x(fitted):
    # the evaluations checked one rater's draw at a time: "row 3" of a random draw
    # (another at another random_state), after personalizing the raters before it
    meta, X, y, groups = fitted
    bad = X.copy()
    row = int(np.flatnonzero(groups == groups[-1])[5])
    bad[row, 1] = np.nan
    message = rf"^X has NaN or infinite values in 1 row\(s\) \(row {row}, counting from 0\)"
    with pytest.raises(ValueError, match=message):
        personalized_srocc(meta, bad, y, groups, n_support=5, random_state=0)
    with pytest.raises(ValueError, match=message):
        TaskSet.from_arrays(bad, y, groups)
    # a dict: the rater named (as written, not numpy's "np.str_('r05')"), its own row
    mapping = {r: (bad[groups == r], y[groups == r]) for r in np.unique(groups)}
    with pytest.raises(ValueError, match=rf"^rater '{groups[-1]}': X has NaN .* \(row 5,"):
        evaluate_personalization(meta, mapping, n_support=(5,), n_repeats=1)


def test_personalize_without_scores_asks_for_them(fitted):
    # said "y must be 1-D (one score per image); got shape ()": np.asarray(None) is 0-d
    meta, X, y, groups = fitted
    prior = UserRidgeRegressor().fit(X, y, groups=groups)
    message = r"the rater's scores are required \(y=None given\)"
    for personalize in (meta.personalize, prior.personalize,
                        prior.personalize(X[:10], y[:10]).fit):
        with pytest.raises(ValueError, match=message):
            personalize(X[:10], None)


def test_rater_pairs_and_ids_are_checked(ratings):
    X, y, groups = ratings
    with pytest.raises(ValueError, match=r"rater 'a': X is a 1-D array of numbers"):
        TaskSet.from_mapping({"a": (X[:20, 0], y[:20]), "b": (X[20:40, 0], y[20:40])})
    with pytest.raises(ValueError, match=r"rater 'a': X is a 1-D array"):
        TaskSet.from_mapping({"a": X[:2], "b": X[2:4]})  # rows, not an (X, y) pair
    for missing in (None, np.nan):
        g = groups.astype(object)
        g[[3, 7]] = missing
        with pytest.raises(ValueError,
                           match=r"2 missing rater id\(s\).* rows 3, 7, counting from 0"):
            TaskSet.from_arrays(X, y, g)
    tasks = TaskSet.from_arrays(X, y, groups)
    with pytest.raises(ValueError, match="one entry per rating"):
        tasks.rows(np.ones(5, dtype=bool))
    assert tasks.rows(groups == groups[0]).raters == [groups[0]]


def test_features_given_to_an_image_model_must_be_finite():
    rng = np.random.RandomState(0)
    X = rng.randn(160, 16).astype(np.float32)
    y = np.clip(np.round(3 + X[:, 0]), 1, 5)
    groups = np.repeat(np.arange(8), 20)
    params = dict(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2, support_size=10,
                  query_size=5, finetune_epochs=1, random_state=0)
    bad = X.copy()
    bad[3, 0] = np.nan  # column 0: NaN there is how unreadable images are told apart
    with pytest.raises(ValueError, match=r"NaN or infinite values in 1 row\(s\) \(row 3, "
                                         r"counting from 0\)"):
        MetaAestheticRegressor(**params).fit(bad, y, groups=groups)
    meta = MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    bad[3, 0], bad[4, 5] = 1.0, np.inf
    with pytest.raises(ValueError, match=r"row 4, counting from 0\)"):
        meta.predict(bad[:5])
    with pytest.raises(ValueError, match=r"row 4, counting from 0\)"):
        meta.personalize(bad[:10], y[:10])
    feats = X.copy()
    feats[2] = np.nan
    with pytest.raises(ValueError, match=r"row 2, counting from 0\)"):
        MetaAestheticRegressor(**{**params, "backbone": None}).fit(feats, y, groups=groups)


def test_a_nets_own_fit_checks_the_scores(fitted):
    meta, X, y, groups = fitted
    net = meta.personalize(X[:10], y[:10], max_epochs=1)
    before = net.predict(X[:5])
    y_nan = y[:10].copy()
    y_nan[0] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        net.partial_fit(X[:10], y_nan)
    with pytest.raises(ValueError, match="outside the network's output range"):
        net.fit(X[:10], y[:10] + 100)
    np.testing.assert_array_equal(net.predict(X[:5]), before)
    low, high = meta.score_range_
    edge = np.array([low, high] * 5, dtype=np.float32)  # the bounds themselves are fine
    assert np.isfinite(net.fit(X[:10], edge).predict(X[:2])).all()
    with pytest.raises(ValueError, match="'max_epochs' parameter of personalize must be an "
                                         "int in the range"):
        meta.personalize(X[:10], y[:10], max_epochs=-3)


def test_damaged_model_files_are_named(fitted, tmp_path):
    meta = fitted[0]
    path = tmp_path / "prior.pt"
    save_model(meta, path)
    state = edited_state(path)
    for key in ("params", "fitted", "module"):
        damaged = tmp_path / f"no_{key}.pt"
        torch.save({k: v for k, v in state.items() if k != key}, damaged)
        with pytest.raises(ValueError, match=f"no_{key}.pt.*entry '{key}' is missing"):
            load_model(damaged)
    extra = tmp_path / "extra.pt"
    torch.save({**state, "params": {**state["params"], "foo": 1}}, extra)
    with pytest.raises(ValueError, match="extra.pt.*'foo'"):
        load_model(extra)


def test_saved_files_get_the_usual_permissions(fitted, tmp_path):
    meta = fitted[0]
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "prior.pt"
    save_model(meta, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
    os.chmod(path, 0o640)
    save_model(meta, path)  # an overwritten file keeps its mode
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    with pytest.raises(IsADirectoryError, match="is a directory"):
        save_model(meta, tmp_path)
    # A umask set after the package was imported counts (it was read once, at import).
    old = os.umask(0o077)
    try:
        save_model(meta, tmp_path / "private.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "private.pt").st_mode) == 0o600


class _MoveCounter(torch.nn.Module):
    """A backbone that counts the times it is moved (``.cpu()``, ``.to(...)``)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.moves = 0

    def forward(self, x):
        return self.conv(x).mean((2, 3))

    def _apply(self, fn, recurse=True):
        self.moves += 1
        return super()._apply(fn, recurse)


def test_pickling_leaves_the_live_backbone_where_it_is(tiny_params):
    # __getstate__ called backbone.cpu(), which moves a module in place: pickling a
    # CUDA model (a joblib worker, a save) took its backbone off the GPU.
    import pickle

    images = np.random.RandomState(0).randint(0, 255, (12, 24, 24, 3), dtype=np.uint8)
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    meta = MetaAestheticRegressor(**{**tiny_params, "backbone": _MoveCounter(), "n_iterations": 2,
                                     "support_size": 4, "query_size": 2}).fit(
        images, y, groups=np.repeat(["a", "b"], 6))
    live = meta.input_.backbone
    spy = next(m for m in live.modules() if isinstance(m, _MoveCounter))
    moves = spy.moves
    copy = pickle.loads(pickle.dumps(meta))
    assert spy.moves == moves and meta.input_.backbone is live
    np.testing.assert_array_equal(copy.predict(images), meta.predict(images))


def test_embedding_batch_size_is_checked():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        embed_images(np.zeros((2, 40, 40, 3), dtype=np.uint8), backbone="tiny_cnn",
                     batch_size=0)


def test_a_cache_dir_of_another_type_is_named(fitted):
    # os.path's own TypeError named neither cache_dir nor what it takes
    _, X, y, groups = fitted
    images = (np.random.RandomState(0).rand(8, 40, 40, 3) * 255).astype(np.uint8)
    with pytest.raises(TypeError, match=r"cache_dir must be a str or os.PathLike \(a folder\), "
                                        r"or None; got 3 \(int\)"):
        embed_images(images, backbone="tiny_cnn", cache_dir=3)
    accepted = ("'cache_dir' parameter of {} must be an instance of 'str', an instance of "
                "'os.PathLike' or None. Got 3")
    with pytest.raises(TypeError, match=accepted.format("MetaAestheticRegressor")):
        MetaAestheticRegressor(**{**TINY, "cache_dir": 3}).fit(X, y, groups=groups)
    # backbone=None caches nothing, but the setting is refused as the meta-learner's is
    with pytest.raises(TypeError, match=accepted.format("ConsensusRidgeRegressor")):
        ConsensusRidgeRegressor(cache_dir=3).fit(X, y, groups=groups)
    # set after fit, where no parameter validation runs
    prior = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(4,), n_iterations=2,
                                   support_size=2, query_size=2, finetune_epochs=1,
                                   random_state=0).fit(images, np.arange(8.0) % 5 + 1,
                                                       groups=np.arange(8) % 2)
    prior.set_params(cache_dir=3)
    with pytest.raises(TypeError, match=r"cache_dir must be a str or os.PathLike"):
        prior.predict(images[:2])
    # the class parameter validation raises (as resolve_device raises for device)
    with pytest.raises(InvalidParameterError, match=r"cache_dir must be a str"):
        prior.predict(images[:2])
    with pytest.raises(InvalidParameterError, match=r"cache_dir must be a str"):
        embed_images(images, backbone="tiny_cnn", cache_dir=3)


def _ratings_csv(tmp_path, image_files):
    lines = ["rater,image,score"]
    for u in range(4):
        for i, path in enumerate(image_files):
            lines.append(f"u{u},{os.path.basename(path)},{1 + (i * (u + 2)) % 5}")
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_refuses_an_unusable_output_before_training(tmp_path, image_files, monkeypatch):
    csv_path = _ratings_csv(tmp_path, image_files)

    def never(*args, **kwargs):
        raise AssertionError("trained before checking -o")

    monkeypatch.setattr(MetaAestheticRegressor, "fit", never)
    train = ["meta-train", str(csv_path), "--backbone", "tiny_cnn", "--quiet", "-o"]
    with pytest.raises(SystemExit, match="folder .*nodir.* does not exist"):
        main(train + [str(tmp_path / "nodir" / "prior.pt")])
    with pytest.raises(SystemExit, match="is a directory"):
        main(train + [str(tmp_path)])
    with pytest.raises(SystemExit, match="is the input file"):
        main(train + [str(csv_path)])


def test_cli_personalize_keeps_the_prior_and_names_the_file(tmp_path, image_files):
    csv_path = _ratings_csv(tmp_path, image_files)
    prior = tmp_path / "prior.pt"
    main(["meta-train", str(csv_path), "-o", str(prior), "--backbone", "tiny_cnn",
          "--n-iterations", "2", "--support-size", "5", "--query-size", "3", "--quiet"])
    mine = tmp_path / "mine.csv"
    mine.write_text("image,score\n" + "".join(
        f"{os.path.basename(p)},{1 + i % 5}\n" for i, p in enumerate(image_files)))
    with pytest.raises(SystemExit, match="is the input file"):
        main(["personalize", str(prior), str(mine), "-o", str(prior), "--quiet"])
    assert isinstance(load_model(prior), MetaAestheticRegressor)
    bad = tmp_path / "bad.csv"
    bad.write_text("image,score\nimg_00.png,3\nimg_01.jpg,abc\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*line 3"):
        main(["personalize", str(prior), str(bad), "-o", str(tmp_path / "u.pt"), "--quiet"])
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("img,score\nimg_00.png,3\n")
    with pytest.raises(ValueError, match=r"nocol\.csv lacks column\(s\) \['image'\]; found "
                                         r"columns \['img', 'score'\]"):
        main(["personalize", str(prior), str(nocol), "-o", str(tmp_path / "u.pt"), "--quiet"])


def test_the_command_prints_input_errors_as_one_line(tmp_path, capsys, monkeypatch):
    from sklearn_piaa.cli import console

    monkeypatch.delenv("SKLEARN_PIAA_TRACEBACK", raising=False)
    missing = tmp_path / "missing.csv"
    assert console(["meta-train", str(missing), "-o", str(tmp_path / "p.pt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sklearn-piaa: error: ") and "missing.csv" in err
    assert "Traceback" not in err
    monkeypatch.setenv("SKLEARN_PIAA_TRACEBACK", "1")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        console(["meta-train", str(missing), "-o", str(tmp_path / "p.pt")])


def test_the_command_prints_warnings_as_one_line(capsys, monkeypatch):
    # they came as "/path/to/sklearn_piaa/cli.py:441: PIAAWarning: ..." plus a source line
    import warnings

    from sklearn_piaa import PIAAWarning, cli

    def run(argv):
        warnings.warn("2 image(s) could not be read", PIAAWarning, stacklevel=1)
        return 0

    monkeypatch.delenv("SKLEARN_PIAA_TRACEBACK", raising=False)
    monkeypatch.setattr(cli, "main", run)
    # as Python shows a warning outside pytest, which records them
    monkeypatch.setattr(warnings, "showwarning", lambda m, c, f, n, file=None, line=None:
                        sys.stderr.write(warnings.formatwarning(m, c, f, n, line)))
    default = warnings.formatwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert cli.console([]) == 0
    assert capsys.readouterr().err == "sklearn-piaa: warning: 2 image(s) could not be read\n"
    assert warnings.formatwarning is default  # the process's own setting, restored


@pytest.mark.parametrize("sizes", [(True,), (8, 0), (8.0,)])
def test_hidden_sizes_must_be_counts(fitted, tiny_params, sizes):
    # (True,) reached torch and failed there, far from the parameter.
    _, X, y, groups = fitted
    with pytest.raises(ValueError, match="hidden_sizes must be positive integers"):
        MetaAestheticRegressor(**{**tiny_params, "hidden_sizes": sizes}).fit(
            X, y, groups=groups)


@pytest.mark.parametrize("param", ["n_support", "n_repeats"])
def test_support_query_split_counts_refuse_bools(param):
    from sklearn_piaa import SupportQuerySplit
    with pytest.raises(ValueError, match=f"{param} must be a positive integer"):
        list(SupportQuerySplit(**{param: True}).split(np.zeros((12, 2))))


@pytest.mark.parametrize("low, high", [(5.0, 1.0), (1.0, 1.0), (1.0, np.inf)])
def test_aesthetic_head_score_range_is_checked(low, high):
    # set_score_range(5, 1) reversed every score silently.
    from sklearn_piaa.nn import AestheticHead
    with pytest.raises(ValueError, match="low < high"):
        AestheticHead(4, (3,), score_range=(low, high))
    head = AestheticHead(4, (3,))
    with pytest.raises(ValueError, match="low < high"):
        head.set_score_range(low, high)
    assert float(head.score_low) == 1.0 and float(head.score_span) == 4.0


def test_a_rater_on_a_much_smaller_scale_is_warned_about(fitted):
    # Ratings on 1-10 against a prior trained on 0-500 were fine-tuned without a word.
    from sklearn_piaa import PIAAWarning
    meta, X, _, _ = fitted
    meta = MetaAestheticRegressor(**TINY).fit(X, fitted[2] * 100, groups=fitted[3])
    low, high = meta.score_range_
    small = np.linspace(low, low + 0.02 * (high - low), 10)
    with pytest.warns(PIAAWarning, match=r"span 2.0% of the prior's range .* score_range"):
        meta.personalize(X[:10], small)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        meta.personalize(X[:10], small, score_range=(small.min(), small.max()))
        meta.personalize(X[:10], np.linspace(low, high, 10))
    # a 0-100 rater against a 0-500 prior spans 20% of it: not a sliver, but its lowest
    # fifth, where fine-tuning learned half as much (measured), without a word
    fifth = np.linspace(low, low + 0.2 * (high - low), 10)
    with pytest.warns(PIAAWarning, match=r"all lie in the lowest fifth of the prior's range"):
        meta.personalize(X[:10], fifth)
    # the highest fifth, or a sliver of it, is a rater who likes everything on the
    # prior's own scale (2 of the 100 real raters of the liking set), not another scale
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        meta.personalize(X[:10], fifth - low + high - 0.2 * (high - low))
        meta.personalize(X[:10], small - low + high - 0.02 * (high - low))


@pytest.mark.parametrize("make", [
    lambda: MetaAestheticRegressor(**TINY),
    lambda: ConsensusRidgeRegressor(),
], ids=["meta", "baseline"])
def test_features_under_other_column_names_are_refused(make, tmp_path):
    # Columns in another order gave other scores without a word (scikit-learn's own
    # estimators refuse them).
    pd = pytest.importorskip("pandas")  # not in the [test] extra
    X, y, groups, _ = make_rating_features()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    model = make().fit(df, y, groups=groups)
    assert list(model.feature_names_in_) == list(df.columns)
    user = model.personalize(df[:20], y[:20])
    expected = user.predict(df[20:40])
    np.testing.assert_array_equal(user.predict(X[20:40]), expected)  # an array: no names
    save_model(user, tmp_path / "user.pt")
    loaded = load_model(tmp_path / "user.pt")
    reordered = df[df.columns[::-1]]
    renamed = df.rename(columns={"f0": "brightness"})
    for m in (model, user, loaded):
        with pytest.raises(ValueError, match="same order as in fit"):
            m.predict(reordered[20:40])
        with pytest.raises(ValueError, match=r"Unseen at fit time: \['brightness'\]"):
            m.predict(renamed[20:40])
    with pytest.raises(ValueError, match="same order"):
        model.personalize(reordered[:20], y[:20])
    model.fit(X, y, groups=groups)  # an array: the names of the earlier fit go
    assert not hasattr(model, "feature_names_in_")


@pytest.mark.parametrize("scale", [(0.0, 0.1), (0.7, 1.0), (-0.3, 0.3)])
def test_ratings_on_a_decimal_end_of_the_scale_lie_inside_it(scale):
    # personalize compared float32 ratings with float64 ends: 0.1 rated was
    # 0.10000000149, "outside the range (0, 0.1)" -- also for the prior's own ratings.
    X, y, groups, _ = make_rating_features()
    y = np.interp(y, [1, 5], scale)
    y[:2] = scale
    meta = MetaAestheticRegressor(**TINY, score_range=scale).fit(X, y, groups=groups)
    for score_range in (None, scale):
        assert np.isfinite(meta.personalize(X[:20], y[:20], score_range=score_range)
                           .predict(X[20:30])).all()


def test_rater_ids_in_a_list_keep_their_types():
    # numpy read a list of mixed ids as strings: an empty cell (NaN) became the rater
    # 'nan', and 1 and '1' one rater.
    X, y, groups, _ = make_rating_features()
    ids = [1 if g < "r06" else "1" for g in groups.tolist()]
    with pytest.warns(UserWarning, match=r"written two ways: 1 and '1'"):
        assert TaskSet.from_arrays(X, y, ids).raters == [1, "1"]
    holes = [float("nan") if i == 7 else g for i, g in enumerate(groups.tolist())]
    with pytest.raises(ValueError, match=r"1 missing rater id\(s\) .* row 7, counting from 0"):
        TaskSet.from_arrays(X, y, holes)


def test_rater_ids_that_write_one_number_are_named():
    # A CSV's "7", "07" and "7.0" were three raters without a word (a DataFrame of
    # numbers gives "7" for each), and the seen-in-training check took them for three
    X, y, groups, _ = make_rating_features(n_raters=4, per_rater=30)
    ids = np.array(["7", "07", "7.0", "12345678901234567891"])[
        np.searchsorted(np.unique(groups), groups)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(TaskSet.from_arrays(X, y, ids).raters) == 4
    said = [str(w.message) for w in caught if "write one number" in str(w.message)]
    assert said == ["1 set(s) of rater ids write one number: '07' and '7' and '7.0'. They "
                    "count as different raters (their ratings can fall on both sides of a "
                    "split); if each set is one person, write its id one way (7, not 07 "
                    "or 7.0)."]
    # ids alike but for the 20th digit are not one number (a float would say so)
    ids = np.where(ids == "07", "12345678901234567890", ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TaskSet.from_arrays(X, y, np.where(ids == "7.0", "8", ids))


def test_pandas_missing_rater_ids_are_named():
    pd = pytest.importorskip("pandas")  # not in the [test] extra
    X, y, groups, _ = make_rating_features()
    ids = pd.Series(groups, dtype="string")
    ids[3] = pd.NA  # convert_dtypes() makes empty cells <NA>: "boolean value of NA"
    with pytest.raises(ValueError, match=r"1 missing rater id\(s\) .* row 3, counting from 0"):
        TaskSet.from_arrays(X, y, ids)


def test_empty_generators_and_text_tables_get_messages_that_name_them(image_files, capsys):
    # numpy's "need at least one array to stack", "could not convert string to
    # float" and "generator has no len()" named nothing a user could act on
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2,
                                  support_size=4, query_size=2, random_state=0)
    meta.fit(image_files, np.tile([1.0, 2.0, 3.0, 4.0], 3), groups=np.repeat([0, 1], 6))
    for empty in (np.array([], dtype=object), np.zeros((0, 8, 8, 3), dtype=np.uint8)):
        with pytest.raises(ValueError, match="X is empty"):
            meta.predict(empty)
    with pytest.raises(ValueError, match="X must be image paths"):
        meta.personalize((p for p in image_files), np.ones(len(image_files)))
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("sklearn-piaa 0.1")
    pd = pytest.importorskip("pandas")  # (the docs' environment has it)
    with pytest.raises(ValueError, match="X is empty"):
        meta.predict(pd.Series([], dtype=object))
    with pytest.raises(ValueError, match=r"table of 1 column\(s\) holding text.*df\['image'\]"):
        meta.predict(pd.DataFrame({"image": image_files}))
    # fit read the table through a TaskSet, as an array: "could not convert string to
    # float"
    with pytest.raises(ValueError, match=r"2-D array of 1 column\(s\) holding text.*"
                                         r"df\['image'\]"):
        meta.fit(pd.DataFrame({"image": image_files}), np.tile([1.0, 2.0, 3.0, 4.0], 3),
                 groups=np.repeat([0, 1], 6))


def test_a_folder_or_one_path_as_x_is_named(tmp_path):
    # "len() of unsized object" from deep in the task set, naming neither.
    meta = MetaAestheticRegressor(**{**TINY, "backbone": "tiny_cnn"})
    with pytest.raises(ValueError, match=r"got the folder .*list of its files"):
        meta.fit(str(tmp_path), [1.0, 2.0, 3.0], groups=["a", "a", "b"])
    with pytest.raises(ValueError, match=r"got the path 'one\.jpg': .*\['one\.jpg'\]"):
        TaskSet("one.jpg", [1.0], ["a"])


def test_rater_ids_given_as_scores_are_not_called_grouped_digits():
    # 'rater_000' was refused as a number written with an underscore ('4_5' is 45).
    X, y, groups, _ = make_rating_features(n_raters=3, per_rater=30)
    with pytest.raises(ValueError, match=r"^y must hold numeric scores; 90 of 90 are not "
                                         r"numbers, e\.g\. \['r00_x'") as info:
        MetaAestheticRegressor(**TINY).fit(X, np.char.add(groups, "_x"), groups=y)
    assert "underscore" not in str(info.value)
    with pytest.raises(ValueError, match="underscore"):
        MetaAestheticRegressor(**TINY).fit(X, np.full(len(X), "4_5"), groups=groups)


def test_scores_with_decimal_commas_are_named_alike_in_fit_personalize_and_metrics():
    # personalize said "could not convert string to float: np.str_('4,0')"
    X, y, groups, _ = make_rating_features(n_raters=3, per_rater=30)
    text = np.array([f"{v:.1f}".replace(".", ",") for v in y])
    said = r"y must hold numeric scores; 90 of 90 are not numbers, e\.g\. \['.*\(decimal commas\?"
    with pytest.raises(ValueError, match="^" + said):
        MetaAestheticRegressor(**TINY).fit(X, text, groups=groups)
    meta = MetaAestheticRegressor(**TINY).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="^" + said.replace("90 of 90", "10 of 10")):
        meta.personalize(X[:10], text[:10])
    with pytest.raises(ValueError, match="^y_true must hold numeric scores; 10 of 10 .*"
                                         r"\(decimal commas\? write 3\.5, not 3,5\)\.$"):
        srocc(text[:10], y[:10])


def test_a_cut_list_says_how_many_there_are():
    X, y, groups, _ = make_rating_features(n_raters=12, per_rater=20)
    with pytest.raises(ValueError) as info:
        TaskSet(X, y, groups).check_min_size(30)
    assert "... (12 in all)." in str(info.value) and "...." not in str(info.value)


@pytest.mark.parametrize("change, message", [
    (lambda y: y + 5j, r"y holds complex numbers \(e.g. \(.*\+5j\)\)"),
    (lambda y: np.array(list(y + 5j), dtype=object), "y holds complex numbers"),
    (lambda y: y.astype("datetime64[ns]"), r"y holds dates or durations \(datetime64"),
    (lambda y: y.astype("timedelta64[s]"), r"y holds dates or durations \(timedelta64"),
], ids=["complex", "complex objects", "datetime64", "timedelta64"])
def test_complex_and_dated_scores_are_refused(fitted, tiny_params, change, message):
    # Complex scores lost their imaginary part (numpy's ComplexWarning only), and dates
    # trained a prior on nanoseconds since 1970.
    from sklearn_piaa import srocc

    meta, X, y, groups = fitted
    bad = change(y.astype(np.int64) if "datetime" in message else y)
    with pytest.raises(ValueError, match=message):
        MetaAestheticRegressor(**tiny_params).fit(X, bad, groups=groups)
    with pytest.raises(ValueError, match=message):
        UserRidgeRegressor().fit(X, bad, groups=groups)
    with pytest.raises(ValueError, match=message):
        meta.personalize(X[:10], bad[:10])
    with pytest.raises(ValueError, match=message.replace("y holds", "y_true holds")):
        srocc(bad[:10], y[:10])


def test_dated_feature_columns_are_named():
    # A date column beside numbers raised numpy's DTypePromotionError, naming no column;
    # a table of dates only was read as nanoseconds.
    X, y, groups, _ = make_rating_features(n_raters=4, per_rater=30)
    with pytest.raises(ValueError, match=r"X holds dates or durations \(datetime64"):
        MetaAestheticRegressor(**TINY).fit(X.astype("datetime64[s]"), y, groups=groups)
    pd = pytest.importorskip("pandas")  # not in the [test] extra
    table = pd.DataFrame(X, columns=[f"c{i}" for i in range(8)])
    one = table.assign(c3=pd.to_datetime(table["c3"] * 1e9))
    dated = one.assign(c5=pd.to_timedelta(table["c5"], unit="s"))
    with pytest.raises(ValueError, match=r"X's column\(s\) \['c3', 'c5'\] are not numbers "
                                         r"\(dates or durations\)"):
        MetaAestheticRegressor(**TINY).fit(dated, y, groups=groups)
    with pytest.raises(ValueError, match=r"X's column\(s\) \['c3'\] are not numbers"):
        MetaAestheticRegressor(**TINY).fit(dated[["c3"]], y, groups=groups)
    meta = MetaAestheticRegressor(**TINY).fit(table, y, groups=groups)
    for call in (meta.predict, lambda t: meta.personalize(t, y[:10])):
        with pytest.raises(ValueError, match=r"X's column\(s\) \['c3'\] are not numbers"):
            call(one.iloc[:10])
    stamps = table.assign(c3=pd.to_datetime(table["c3"] * 1e9).astype(object))
    with pytest.raises(ValueError, match=r"X's column\(s\) \['c3'\] are not numbers"):
        MetaAestheticRegressor(**TINY).fit(stamps, y, groups=groups)


def test_scores_that_float32_merges_are_warned_about(fitted, tmp_path):
    # y + 1e8 trained on 2 of its 5 ratings without a word, and personalize then said
    # that the rater gave every image the same score.
    from sklearn_piaa import PIAAWarning
    from sklearn_piaa.datasets import read_ratings

    meta, X, y, groups = fitted
    far = y.astype(np.float64) + 1e8
    message = (r"y holds 5 distinct scores, but float32 .* keeps 2: .* common offset.*"
               r"\(e.g. 100000001 and 100000002 both become 100000000\).* y - y.min\(\)")
    with pytest.warns(PIAAWarning, match=message):
        TaskSet(X, far, groups)
    with pytest.warns(PIAAWarning, match=message):
        UserRidgeRegressor().fit(X, far, groups=groups)
    with pytest.warns(PIAAWarning, match=r"y holds \d distinct scores, but float32"):
        meta.personalize(X[:20], far[:20], score_range=(1e8, 1e8 + 8))
    with pytest.warns(PIAAWarning, match=r"table.csv's scores holds 2 distinct scores"):
        (tmp_path / "table.csv").write_text("rater,image,score\na,x.jpg,100000001\n"
                                            "a,y.jpg,100000002\n")
        read_ratings(tmp_path / "table.csv", check_files=False)
    # Means computed in float64 in two ways differ in their last digits: no rating means
    # that, nor do scores float32 holds exactly.
    noisy = y.astype(np.float64) + 1e-13 * np.random.RandomState(0).randn(len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        TaskSet(X, noisy, groups)
        TaskSet(X, y.astype(np.int64) + 2**20, groups)
        # one score computed two ways: the span is that noise itself
        TaskSet(X[:10], np.array([3.0, 3.0000000000000004] * 5), groups[:10])
