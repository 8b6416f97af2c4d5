import numpy as np
import pytest

from sklearn_piaa import TaskSet
from sklearn_piaa._tasks import support_query_sizes


def test_from_arrays_and_mapping_agree(ratings):
    X, y, groups = ratings
    a = TaskSet.from_arrays(X, y, groups)
    mapping = {g: (X[groups == g], y[groups == g]) for g in np.unique(groups)[::-1]}
    b = TaskSet.from_mapping(mapping)
    assert a.raters == b.raters
    for r in a:
        np.testing.assert_array_equal(a[r][0], b[r][0])
        np.testing.assert_array_equal(a[r][1], b[r][1])


def test_lists_of_paths_are_indexed_without_copy():
    X = [f"/img/{i}.jpg" for i in range(6)]
    tasks = TaskSet.from_arrays(X, [1, 2, 3, 4, 5, 1], [1, 0, 1, 0, 1, 0])
    assert tasks[0][0] == ["/img/1.jpg", "/img/3.jpg", "/img/5.jpg"]
    assert tasks.sizes() == {0: 3, 1: 3}


@pytest.mark.parametrize("n, expected", [(100, (80, 20)), (150, (80, 20)), (50, (40, 10)),
                                         (10, (8, 2)), (2, (1, 1))])
def test_support_query_sizes_follow_reference_rule(n, expected):
    assert support_query_sizes(n, 80, 20) == expected


def test_draw_is_disjoint_and_within_rater(ratings):
    X, y, groups = ratings
    tasks = TaskSet.from_arrays(X, y, groups)
    rng = np.random.RandomState(0)
    sup, qry = tasks.draw("r03", 50, 20, rng)
    assert len(sup) == 50 and len(qry) == 20
    assert not set(sup) & set(qry)
    assert set(groups[np.concatenate([sup, qry])]) == {"r03"}


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="same length"):
        TaskSet.from_arrays(np.zeros((3, 2)), [1, 2], [0, 0, 1])
    with pytest.raises(ValueError, match=r"NaN or infinite.*'b'"):
        TaskSet.from_arrays(np.zeros((3, 2)), [1, np.nan, 2], ["a", "b", "a"])
    with pytest.raises(ValueError, match="numeric"):
        TaskSet.from_arrays(np.zeros((2, 2)), ["x", 1], ["a", "a"])
    tasks = TaskSet.from_arrays(np.zeros((3, 2)), [1, 2, 3], ["a", "a", "lonely"])
    with pytest.raises(ValueError, match="'lonely' \\(1\\)"):
        tasks.check_min_size(2)
    with pytest.raises(ValueError, match=r"mapping\['a'\]"):
        TaskSet.from_mapping({"a": np.zeros(3)})


def test_subset_and_rows_refuse_what_would_go_wrong_silently():
    t = TaskSet.from_arrays(np.arange(12.0).reshape(6, 2), np.arange(6.0),
                            np.repeat(["a", "b"], 3))
    # A rater listed twice had its ratings copied, weighing it twice.
    with pytest.raises(ValueError, match=r"raters listed more than once: \['a'\]"):
        t.subset(["a", "b", "a"])
    # [] became a float index array (IndexError).
    with pytest.raises(ValueError, match="needs at least one row"):
        t.rows([])
    # numpy's "need at least one array to concatenate"
    with pytest.raises(ValueError, match="subset needs at least one rater"):
        t.subset([])
    assert t.subset(["b"]).n_ratings == 3
    # a generator was spent by the check for unknown raters: "needs at least one rater"
    assert t.subset(r for r in ["a", "b"]).n_ratings == 6
    # one id: its letters were taken for raters
    with pytest.raises(TypeError, match=r"subset takes a list of rater ids; got 'ab' \(for "
                                        r"one rater, pass \['ab'\]\)"):
        t.subset("ab")


def test_raters_image_arrays_of_other_sizes_join_as_a_list():
    # "cannot join arrays with different shapes per row" for photos of other sizes.
    rng = np.random.RandomState(0)
    a = rng.randint(0, 255, (3, 16, 20, 3)).astype(np.uint8)
    b = rng.randint(0, 255, (3, 24, 18, 3)).astype(np.uint8)
    t = TaskSet.from_mapping({"a": (a, np.arange(3.0)), "b": (b, np.arange(3.0))})
    assert isinstance(t.X, list) and len(t.X) == 6
    assert t["b"][0][0].shape == (24, 18, 3)
    # features: no, and the rater is named
    with pytest.raises(ValueError, match=r"other widths than the first rater.s 4 columns: 'b'"):
        TaskSet.from_mapping({"a": (np.zeros((3, 4)), np.arange(3.0)),
                              "b": (np.zeros((3, 5)), np.arange(3.0))})


def test_tuple_rater_keys_of_a_mapping_stay_one_rater_each():
    # np.full spread ("flickr", 7) over a rater's two rows: four raters of one image
    from sklearn_piaa import TaskSet

    tasks = TaskSet.from_mapping({("flickr", 7): (np.zeros((2, 3)), [1.0, 2.0]),
                                  ("aadb", 3): (np.ones((2, 3)), [3.0, 4.0])})
    assert tasks.raters == [("aadb", 3), ("flickr", 7)]
    assert sorted(tasks.groups.tolist()) == [("aadb", 3)] * 2 + [("flickr", 7)] * 2
    TaskSet.from_mapping({("flickr", 7): (np.zeros((12, 3)), np.ones(12))})


def test_draw_takes_a_seed_or_none_as_check_random_state_does():
    tasks = TaskSet.from_arrays(np.arange(20.0)[:, None], np.arange(20.0) % 5 + 1,
                                np.arange(20) % 2)
    by_seed = tasks.draw(0, 4, 3, rng=0)
    by_state = tasks.draw(0, 4, 3, rng=np.random.RandomState(0))
    for a, b in zip(by_seed, by_state):
        np.testing.assert_array_equal(a, b)
    # None draws from NumPy's global generator (seeded by the conftest fixture)
    np.random.seed(1)
    first = tasks.draw(0, 4, 3, rng=None)
    np.random.seed(1)
    for a, b in zip(first, tasks.draw(0, 4, 3, rng=None)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"rng='x' cannot seed a random generator: give an "
                                         r"int in \[0, 2\*\*32 - 1\]"):
        tasks.draw(0, 4, 3, rng="x")


def test_constant_raters_are_those_with_two_or_more_equal_scores():
    X = np.arange(14, dtype=np.float32).reshape(7, 2)
    tasks = TaskSet.from_arrays(X, [5, 5, 1, 2, 3, 4.0, 4.0],
                                ["a", "a", "b", "b", "one", "c", "c"])
    assert tasks.constant_raters() == {"a": 5.0, "c": 4.0}


def test_repeated_images_count_a_raters_own_repeats_only():
    # Feature rows are hashed all at once (fit checks every training rater): a row that
    # another rater also rated is no repeat, and pixel arrays are not compared.
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    rows = [0, 1, 0, 0, 1, 2, 3, 3]
    groups = ["a", "a", "a", "b", "b", "b", "c", "d"]
    tasks = TaskSet.from_arrays(X[rows], np.arange(8.0), groups)
    assert tasks.repeated_images() == {"a": 1}
    pixels = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    assert TaskSet.from_arrays(pixels, np.arange(4.0), ["a"] * 4).repeated_images() == {}


def test_a_rater_of_no_ratings_is_refused_by_name(ratings):
    # It vanished: from TaskSet.raters, fit's raters_ and an evaluation's skipped
    # raters alike, where a rater of 1 rating is named.
    from sklearn_piaa import (
        ConsensusRidgeRegressor,
        MetaAestheticRegressor,
        evaluate_personalization,
    )

    X, y, groups = ratings
    ann, empty = (X[:40], y[:40]), (X[:0], y[:0])
    with pytest.raises(ValueError, match=r"^rater 'bob' has no ratings \(empty X and y in "
                                         r"the mapping\)\. Leave it out"):
        TaskSet.from_mapping({"ann": ann, "bob": empty})
    with pytest.raises(ValueError, match=r"2 raters have no ratings .*: 7, 'bob'\. Leave them"):
        TaskSet.from_mapping({"ann": ann, "bob": empty, 7: ([], [])})
    with pytest.raises(ValueError, match="rater 'bob' has no ratings"):
        MetaAestheticRegressor(backbone=None).fit({"ann": ann, "cy": (X[40:80], y[40:80]),
                                                   "bob": empty})
    prior = ConsensusRidgeRegressor(backbone=None).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="rater 'bob' has no ratings"):
        evaluate_personalization(prior, {"ann": ann, "bob": empty}, n_support=10,
                                 n_repeats=1, random_state=0)


def test_int_ids_among_floats_stay_apart():
    # numpy read the list as float64, where 2**53 and 2**53 + 1 are one number: two
    # raters merged without a word
    ids = [2**53] * 4 + [2**53 + 1] * 4 + [3.0] * 4
    tasks = TaskSet.from_arrays(np.zeros((12, 2)), np.arange(12.0), ids)
    assert tasks.sizes() == {3.0: 4, 2**53: 4, 2**53 + 1: 4}


def test_rows_that_would_fail_fit_are_refused_by_the_task_set():
    # a 1-D X failed fit with an IndexError; a nullable pandas frame's pd.NA passed the
    # finite check as an object array and failed in float()
    with pytest.raises(ValueError, match="X is a 1-D array of 6 numbers; it must be 2-D"):
        TaskSet.from_arrays(np.arange(6.0), np.arange(6.0), [0, 0, 0, 1, 1, 1])
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": pd.array([0.1, 0.2, None, 0.4], dtype="Float64"),
                          "b": pd.array([1, 2, 3, 4], dtype="Int64")})
    with pytest.raises(ValueError, match=r"X has NaN or infinite values in 1 row\(s\) "
                                         r"\(row 2"):
        TaskSet.from_arrays(frame, [1.0, 2, 3, 4], [0, 0, 1, 1])
    frame.loc[2, "a"] = 0.3
    tasks = TaskSet.from_arrays(frame, [1.0, 2, 3, 4], [0, 0, 1, 1])
    assert tasks.X.dtype == np.float64 and tasks.feature_names.tolist() == ["a", "b"]


def test_malformed_ids_and_rows_are_named():
    # "unhashable type: 'list'", "groups must be 1-D ...; got ()", "len() of unsized
    # object", and keys of a mapping named as rows of a groups never given
    from scipy import sparse

    X, y = np.zeros((4, 2)), np.arange(4.0)
    with pytest.raises(ValueError, match=r"groups holds lists, not rater ids \(\[0\] at row 0"):
        TaskSet.from_arrays(X, y, [[0], [0], [1], [1]])
    with pytest.raises(ValueError, match="groups is the string 'user'"):
        TaskSet.from_arrays(X, y, "user")
    with pytest.raises(ValueError, match=r"X is a sparse csr_matrix.*X\.toarray\(\)"):
        TaskSet.from_arrays(sparse.csr_matrix(X), y, [0, 0, 1, 1])
    for key, message in ((None, "the key None, which is no rater id"),
                         (float("nan"), "the key nan, which is no rater id"),
                         (True, "the key True: Python takes True for 1")):
        with pytest.raises(ValueError, match=message):
            TaskSet.from_mapping({"a": (X[:2], y[:2]), key: (X[2:], y[2:])})


def test_a_rater_of_exactly_support_plus_query_images_gets_those_sizes():
    # n == support_size + query_size is the large-rater case (not an 80/20 split)
    assert support_query_sizes(30, 20, 10) == (20, 10)


def test_a_small_raters_query_set_stays_within_query_size():
    # 21 images with sizes (20, 2): support 16, query capped at 2
    assert support_query_sizes(21, 20, 2) == (16, 2)


def test_a_small_raters_draw_caps_its_query_set_at_query_size():
    tasks = TaskSet.from_arrays(np.arange(21, dtype=np.float32).reshape(-1, 1),
                                np.arange(21) % 5 + 1, ["a"] * 21)
    support, query = tasks.draw("a", 20, 2, 0)
    assert (len(support), len(query)) == (16, 2)


def test_a_float_rater_id_matches_the_int_id_of_the_same_person():
    # 7.0 (an id column read as floats) and 7 (read as ints) are one rater to the
    # seen-in-training check
    from sklearn_piaa._tasks import rater_text, raters_among

    assert rater_text(7.0) == rater_text(np.float32(7)) == rater_text(7) == "7"
    assert raters_among([7.0, 8.5], [7, 9]) == [7.0]


def test_from_mapping_takes_a_column_vector_of_scores():
    X = np.arange(8, dtype=np.float32).reshape(4, 2)
    tasks = TaskSet.from_mapping({"a": (X, np.array([[1.0], [2.0], [3.0], [4.0]]))})
    assert tasks["a"][1].tolist() == [1.0, 2.0, 3.0, 4.0]
