"""Property-based tests over rating tables (hypothesis): any valid table reads right,
any broken one is refused with a message naming what is wrong."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklearn_piaa import TaskSet
from sklearn_piaa.datasets import read_ratings

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=6)
ratings = st.lists(st.tuples(ids, st.sampled_from([f"img{i}.jpg" for i in range(30)]),
                             st.floats(1, 5, allow_nan=False, width=32)),
                   min_size=1, max_size=200)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _table(rows, order, extra):
    cols = {"rater": [r for r, _, _ in rows], "image": [i for _, i, _ in rows],
            "score": [s for _, _, s in rows]}
    if extra:
        cols["comment"] = ["x"] * len(rows)
    return {name: cols[name] for name in order if name in cols} | \
        {k: v for k, v in cols.items() if k not in order}


@pytest.mark.filterwarnings("ignore:.*more than once; their:UserWarning")  # averaged: said
@SETTINGS
@given(rows=ratings, order=st.permutations(["rater", "image", "score", "comment"]),
       extra=st.booleans())
def test_valid_tables_read_to_per_pair_means(rows, order, extra):
    data = read_ratings(_table(rows, order, extra), check_files=False)
    expected = {}
    for r, i, s in rows:
        expected.setdefault((r, i), []).append(s)
    got = {(g, x.rsplit("/", 1)[-1]): v for g, x, v in zip(data.groups, data.X, data.y)}
    assert got.keys() == expected.keys()  # duplicates merged, nothing lost
    for key, scores in expected.items():
        assert got[key] == pytest.approx(np.mean(scores), rel=1e-5)
    assert data.tasks.sizes() == {r: sum(1 for k in expected if k[0] == r)
                                  for r in {k[0] for k in expected}}


@SETTINGS
@given(rows=ratings, where=st.integers(0, 10**6),
       bad=st.sampled_from(["nan", "inf", "", "four", None, "1,5"]))
def test_bad_scores_are_refused_naming_the_column(rows, where, bad):
    table = _table(rows, ["rater", "image", "score"], False)
    table["score"][where % len(rows)] = bad
    with pytest.raises(ValueError, match="'score'"):
        read_ratings(table, check_files=False)


@SETTINGS
@given(rows=ratings, where=st.integers(0, 10**6), col=st.sampled_from(["rater", "image"]))
def test_empty_ids_are_refused_naming_the_column(rows, where, col):
    table = _table(rows, ["rater", "image", "score"], False)
    table[col][where % len(rows)] = "  "
    with pytest.raises(ValueError, match=f"'{col}'"):
        read_ratings(table, check_files=False)


@SETTINGS
@given(rows=ratings, missing=st.sampled_from(["rater", "image", "score"]))
def test_missing_columns_are_named(rows, missing):
    table = _table(rows, ["rater", "image", "score"], False)
    del table[missing]
    with pytest.raises(ValueError, match=missing):
        read_ratings(table, check_files=False)


@SETTINGS
@given(n_raters=st.integers(1, 3000), seed=st.integers(0, 2**31 - 1),
       labels=st.sampled_from(["int", "str", "mixed"]))
def test_taskset_groups_every_rating_once_whatever_the_rater_count(n_raters, seed, labels):
    rng = np.random.RandomState(seed)
    n = int(rng.randint(n_raters, 3 * n_raters + 1))
    codes = np.concatenate([np.arange(n_raters), rng.randint(0, n_raters, n - n_raters)])
    rng.shuffle(codes)
    groups = {"int": codes, "str": np.array([f"u{c}" for c in codes], dtype=object),
              "mixed": np.array([c if c % 2 else f"u{c}" for c in codes], dtype=object)}[labels]
    X = rng.randn(n, 2).astype(np.float32)
    y = rng.rand(n).astype(np.float32)
    tasks = TaskSet.from_arrays(X, y, groups)
    assert len(tasks) == n_raters
    assert sum(tasks.sizes().values()) == n
    seen = np.concatenate([tasks.indices[r] for r in tasks.raters])
    assert np.array_equal(np.sort(seen), np.arange(n))
    for r in tasks.raters[:20]:
        Xr, yr = tasks[r]
        mask = np.array([g == r and type(g) is type(r) for g in groups.tolist()])
        np.testing.assert_array_equal(yr, y[mask])


@SETTINGS
@given(y=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                            st.text(max_size=3)), min_size=2, max_size=20))
@np.errstate(over="ignore")
def test_taskset_refuses_non_finite_or_text_scores(y):
    # float32 is what scores are stored as: larger finite numbers overflow and are refused.
    finite = all(isinstance(v, float) and np.isfinite(np.float32(v)) for v in y)
    numeric_text = all(isinstance(v, float) or _is_float(v) for v in y)
    X = np.zeros((len(y), 2), dtype=np.float32)
    groups = [0, 1] * (len(y) // 2) + [0] * (len(y) % 2)
    values = np.array(y, dtype=object)
    if finite:
        TaskSet.from_arrays(X, values, groups)
        return
    if numeric_text and all(np.isfinite(np.float32(float(v))) for v in y):
        return  # numbers written as text are accepted like numpy does
    with pytest.raises(ValueError, match="numeric|NaN or infinite"):
        TaskSet.from_arrays(X, values, groups)


def _is_float(v):
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True
