import unicodedata
import warnings

import numpy as np
import pytest

from sklearn_piaa import SupportQuerySplit, UserGroupKFold, UserGroupShuffleSplit


@pytest.mark.parametrize("cv", [UserGroupKFold(3, random_state=0),
                                UserGroupShuffleSplit(4, test_size=0.25, random_state=0)])
def test_no_rater_on_both_sides(cv, ratings):
    X, y, groups = ratings
    n = 0
    for train, test in cv.split(X, y, groups):
        assert not set(groups[train]) & set(groups[test])
        assert len(train) + len(test) <= len(X)
        n += 1
    assert n == cv.get_n_splits()


def test_kfold_covers_every_rater_once(ratings):
    X, y, groups = ratings
    seen = np.concatenate([np.unique(groups[t]) for _, t in UserGroupKFold(4).split(X, y,
                                                                                     groups)])
    assert sorted(seen) == sorted(np.unique(groups))


def test_group_splitters_need_groups(ratings):
    X, y, _ = ratings
    with pytest.raises(ValueError, match="rater id"):
        next(UserGroupKFold(3).split(X, y))
    with pytest.raises(ValueError, match="2 rater"):
        next(UserGroupKFold(3).split(X[:4], y[:4], ["a", "a", "b", "b"]))


def test_support_query_split():
    cv = SupportQuerySplit(n_support=4, n_repeats=3, random_state=0)
    splits = list(cv.split(np.zeros(12)))
    assert len(splits) == 3 == cv.get_n_splits()
    for s, q in splits:
        assert len(s) == 4 and len(q) == 8 and not set(s) & set(q)
    assert not np.array_equal(splits[0][0], splits[1][0])
    with pytest.raises(ValueError, match="too few"):
        list(SupportQuerySplit(n_support=11).split(np.zeros(12)))


def test_rater_ids_of_several_types_are_split_as_fit_takes_them():
    # numpy cannot sort 7 and "anna": the splitters failed on ids that fit accepts
    groups = np.array([7, 7, 8, 8, "anna", "anna", "bob", "bob"], dtype=object)
    folds = list(UserGroupKFold(2, random_state=0).split(np.zeros(8), groups=groups))
    tested = sorted((sorted(map(str, set(groups[test].tolist()))) for _, test in folds))
    assert tested in ([["7", "8"], ["anna", "bob"]], [["7", "anna"], ["8", "bob"]],
                      [["7", "bob"], ["8", "anna"]])
    for train, test in folds:
        assert not set(groups[train].tolist()) & set(groups[test].tolist())
    (train, test), = UserGroupShuffleSplit(1, test_size=0.5, random_state=0).split(
        np.zeros(8), groups=groups)
    assert len(set(groups[test].tolist())) == 2 and len(test) == 4


def test_a_test_size_larger_than_the_raters_is_said_in_raters():
    # scikit-learn's "smaller than the number of samples 4": 4 raters, of 40 rows
    groups = np.repeat(list("abcd"), 10)
    with pytest.raises(ValueError, match=r"number of samples 4 .*\(here the samples are "
                                         r"raters: 4 of them\)"):
        list(UserGroupShuffleSplit(test_size=10).split(np.zeros(40), groups=groups))
    # "With n_samples=1, test_size=0.2 ... the resulting train set will be empty", of
    # one rater with 60 rows
    with pytest.raises(ValueError, match=r"n_samples=1, .*train set will be empty.*"
                                         r"\(here the samples are raters: 1 of them\)"):
        list(UserGroupShuffleSplit().split(np.zeros(60), groups=["ann"] * 60))


@pytest.mark.parametrize("groups", [
    [("site", r) for r in (0, 0, 1, 1, 2, 2, 3, 3)],  # read as a 2-D table before
    [1, 1, "1", "1", 2, 2, "2", "2"],  # read as strings: 1 and "1" one rater before
], ids=["tuples", "1 and '1'"])
def test_rater_ids_in_a_list_are_the_raters_fit_sees(groups):
    from sklearn_piaa import TaskSet

    mixed = any(isinstance(g, str) for g in groups)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        n_raters = len(TaskSet.from_arrays(np.zeros((8, 2)), np.ones(8), groups).raters)
        folds = {name: list(splitter.split(np.zeros(8), groups=groups)) for name, splitter in (
            ("kfold", UserGroupKFold(4, random_state=0)),
            ("shuffle", UserGroupShuffleSplit(3, test_size=1, random_state=0)))}
    # ids written two ways are named, the same way each time
    named = {str(w.message) for w in caught if "written two ways" in str(w.message)}
    assert len(named) == mixed and all("1 and '1'; 2 and '2'" in m for m in named)
    assert n_raters == 4
    rater = np.empty(8, dtype=object)
    rater[:] = [str(g) + type(g).__name__ for g in groups]
    for name in folds:
        for train, test in folds[name]:
            assert len(train) + len(test) == 8 and len(test) == 2
            assert len(set(rater[test])) == 1 and rater[test][0] not in set(rater[train])
    tested = {rater[test][0] for _, test in folds["kfold"]}
    assert len(tested) == 4


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_a_missing_rater_id_is_refused_by_the_splitters(missing):
    # fit and TaskSet refused it; a splitter made a rater "None" of it (a test fold).
    groups = np.repeat(np.array(["a", "b", "c", "d"], dtype=object), 5)
    groups[7] = missing
    X = np.zeros((20, 2))
    for cv in (UserGroupKFold(2, random_state=0),
               UserGroupShuffleSplit(2, test_size=1, random_state=0)):
        with pytest.raises(ValueError, match=r"1 missing rater id\(s\) \(None or NaN\), at "
                                             r"row 7, counting from 0"):
            list(cv.split(X, None, groups))


def test_missing_ids_of_other_kinds_are_refused_by_every_splitter():
    X = np.zeros((20, 2))
    dates = np.repeat(np.array(["2020-01-01", "2020-01-02"], dtype="M8[D]"), 10)
    dates[3] = np.datetime64("NaT")
    with pytest.raises(ValueError, match=r"1 missing rater id\(s\)"):
        list(UserGroupKFold(2, random_state=0).split(X, None, dates))
    one = np.full(20, "a", dtype=object)
    one[4] = float("nan")  # was "groups names 2 raters"
    with pytest.raises(ValueError, match=r"1 missing rater id\(s\) .* row 4, counting from 0"):
        list(SupportQuerySplit(n_support=5).split(X, None, one))


def test_one_rater_written_two_ways_is_named():
    from sklearn_piaa import PIAAWarning, TaskSet
    from sklearn_piaa._tasks import raters_among

    groups = np.repeat(np.array([0, 1, 2, 3], dtype=object), 5)
    groups[:2] = "0"  # the same person, read from another file as text
    X, y = np.zeros((20, 2)), np.arange(20.0)
    with pytest.warns(PIAAWarning, match=r"1 rater id\(s\) are written two ways: 0 and '0'"):
        list(UserGroupKFold(2, random_state=0).split(X, None, groups))
    with pytest.warns(PIAAWarning, match="written two ways"):
        TaskSet.from_arrays(X, y, groups)
    spaced = np.repeat(["7", "7 ", "8", "9"], 5)  # text ids, one with a stray space
    for run in (lambda: TaskSet.from_arrays(X, y, spaced),
                lambda: list(UserGroupKFold(2, random_state=0).split(X, None, spaced))):
        with pytest.warns(PIAAWarning, match=r"written two ways: '7' and '7 '.* without "
                                             r"spaces around it"):
            run()
    # "José" typed with an accent key, and read from a macOS file name (decomposed):
    # two raters without a word, and not the same person to the seen-in-training check
    composed, decomposed = (unicodedata.normalize(form, "José") for form in ("NFC", "NFD"))
    forms = np.repeat([composed, decomposed, "8", "9"], 5)
    for run in (lambda: TaskSet.from_arrays(X, y, forms),
                lambda: list(UserGroupKFold(2, random_state=0).split(X, None, forms))):
        with pytest.warns(PIAAWarning, match=r"written two ways: 'Jose\\u0301' and "
                                             r"'Jos\\xe9'.*in one Unicode form"):
            run()
    assert raters_among([composed, "8"], [decomposed]) == [composed]


def test_bytes_and_text_ids_of_one_rater_are_named():
    # b"ann" (from an HDF5 file) and "ann" (from a CSV file) were two raters without a
    # word in an array, and one rater without a word in a list.
    from sklearn_piaa import PIAAWarning, TaskSet

    X, y = np.zeros((20, 2)), np.arange(20.0)
    listed = [b"ann"] * 5 + ["ann"] * 5 + ["bob"] * 10
    message = r"written two ways: b'ann' and 'ann'\. .*decoding the bytes ids"
    for groups in (listed, np.array(listed, dtype=object)):
        with pytest.warns(PIAAWarning, match=message):
            assert TaskSet.from_arrays(X, y, groups).raters == [b"ann", "ann", "bob"]
        with pytest.warns(PIAAWarning, match=message):
            list(UserGroupKFold(2, random_state=0).split(X, None, groups))
    spaced = np.repeat([b"7", b"7 ", b"8", b"9"], 5)
    with pytest.warns(PIAAWarning, match=r"written two ways: b'7' and b'7 '"):
        TaskSet.from_arrays(X, y, spaced)


@pytest.mark.parametrize("groups, message", [
    ([1] * 10 + [True] * 10, r"10 rater id\(s\) True or False, at rows 10, 11, .* "
                             r"counting from 0: Python takes True for 1"),
    (np.array([0] * 10 + [np.False_] * 10, dtype=object), r"10 rater id\(s\) True or False"),
    (np.arange(20) < 10, r"groups holds booleans \(True/False\), not rater ids \(a mask"),
], ids=["list", "object array", "mask"])
def test_bool_rater_ids_are_refused(groups, message):
    # True and 1 are equal in Python: they were one rater (a list even made them ints).
    from sklearn_piaa import TaskSet

    X, y = np.zeros((20, 2)), np.arange(20.0)
    with pytest.raises(ValueError, match=message):
        TaskSet.from_arrays(X, y, groups)
    with pytest.raises(ValueError, match=message):
        list(UserGroupKFold(2, random_state=0).split(X, None, groups))


def test_support_query_split_refuses_several_raters():
    X = np.zeros((20, 2))
    split = SupportQuerySplit(n_support=5, random_state=0)
    with pytest.raises(ValueError, match="splits one rater's images, but groups names 2"):
        list(split.split(X, None, np.repeat(["a", "b"], 10)))
    assert len(list(split.split(X, None, np.repeat(["a"], 20)))) == split.get_n_splits()


def test_the_model_selection_guide_s_examples_run_in_order(ratings, monkeypatch):
    # The search's block turned metadata routing on for the rest of the session, and the
    # next block's cross_val_score(groups=...) then failed ("groups can only be passed if
    # metadata routing is not enabled"): each block leaves the setting as it found it.
    import inspect
    import pathlib
    import re
    import textwrap

    import sklearn

    from sklearn_piaa import MetaAestheticRegressor

    page = (pathlib.Path(__file__).parents[1] / "docs" / "user_guide"
            / "model_selection.rst").read_text()
    blocks = [textwrap.dedent(b) for b in
              re.findall(r"code-block:: python\n\n((?:(?:[ \t]+\S.*)?\n)+)", page)]
    assert len(blocks) >= 3 and any("PersonalizedSROCCScorer(" in b and "cross_val_score("
                                    in b for b in blocks)
    # The blocks' estimators, small: each search candidate is a meta-training.
    small = {"hidden_sizes": (16,), "n_iterations": 5, "support_size": 20,
             "query_size": 10, "finetune_epochs": 2}
    names = list(inspect.signature(MetaAestheticRegressor).parameters)
    defaults = list(MetaAestheticRegressor.__init__.__defaults__)
    for name, value in small.items():
        defaults[names.index(name)] = value
    monkeypatch.setattr(MetaAestheticRegressor.__init__, "__defaults__", tuple(defaults))
    X, y, users = ratings
    namespace = {"X": X, "y": y, "users": users}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny fits' collapse and convergence warnings
        for block in blocks:
            exec(compile(block, "model_selection.rst", "exec"), namespace)
            assert not sklearn.get_config()["enable_metadata_routing"]


def _test_raters(cv, groups):
    return [tuple(sorted(set(groups[test].tolist()))) for _, test in
            cv.split(np.zeros(len(groups)), groups=groups)]


def test_kfold_shuffles_raters_by_default_and_its_seed_fixes_the_folds():
    groups = np.repeat([f"u{i:02d}" for i in range(20)], 3)
    # same seed, same folds: paired comparisons of estimators need them
    assert _test_raters(UserGroupKFold(4, random_state=0), groups) == \
        _test_raters(UserGroupKFold(4, random_state=0), groups)
    folds = {tuple(_test_raters(UserGroupKFold(4, random_state=s), groups)) for s in range(4)}
    assert len(folds) > 1
    assert UserGroupKFold().shuffle is True


def test_support_query_split_yields_sorted_rows():
    for support, query in SupportQuerySplit(n_support=3, n_repeats=5,
                                            random_state=0).split(np.zeros(15)):
        np.testing.assert_array_equal(support, np.sort(support))
        np.testing.assert_array_equal(query, np.sort(query))
        assert sorted([*support, *query]) == list(range(15))


def test_shuffle_split_holds_out_a_fifth_of_the_raters_by_default():
    groups = np.repeat([f"u{i:02d}" for i in range(10)], 4)
    for train, test in UserGroupShuffleSplit(random_state=0).split(np.zeros(40), groups=groups):
        assert len(set(groups[test].tolist())) == 2
        assert len(set(groups[train].tolist())) == 8
