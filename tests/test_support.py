"""Choosing support images: the selectors and the paired chosen-vs-random protocol."""

import importlib.util
import itertools
import os
import pickle
import warnings

import numpy as np
import pytest
from conftest import TINY, make_rating_features
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import RidgeCV

from sklearn_piaa import (
    ConsensusRidgeRegressor,
    MetaAestheticRegressor,
    PIAAWarning,
    SupportSelector,
    TaskSet,
    compare_support_strategies,
    evaluate_personalization,
    select_support,
    srocc,
)
from sklearn_piaa.report import paired_difference


def _clusters(n_clusters=4, per_cluster=6, n_features=5, spread=0.05, random_state=0):
    rng = np.random.RandomState(random_state)
    centers = 20 * rng.randn(n_clusters, n_features)
    X = np.repeat(centers, per_cluster, axis=0) + spread * rng.randn(
        n_clusters * per_cluster, n_features)
    return X, np.repeat(np.arange(n_clusters), per_cluster)


def _planted_disagreement(n_raters=10, n_images=60, n_features=6, random_state=0):
    """Raters agree on feature 0 and split on feature 1: images far out on feature 1
    are the contested ones."""
    rng = np.random.RandomState(random_state)
    X = rng.randn(n_images, n_features)
    sign = np.where(np.arange(n_raters) % 2, 1.0, -1.0)
    y = np.concatenate([X[:, 0] + s * X[:, 1] + 0.05 * rng.randn(n_images) for s in sign])
    groups = np.repeat([f"r{u}" for u in range(n_raters)], n_images)
    return TaskSet.from_arrays(np.tile(X, (n_raters, 1)), y, groups)


def _standardized(X):
    s = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(s > 0, s, 1)


def _radius(Z, picks):
    d = np.sqrt(((Z[:, None, :] - Z[None, list(picks), :]) ** 2).sum(-1))
    return d.min(axis=1).max()


# -- k-center greedy ---------------------------------------------------------------


def test_kcenter_one_pick_per_cluster():
    X, label = _clusters()
    picks = SupportSelector("kcenter").select(X, 4)
    assert sorted(label[picks].tolist()) == [0, 1, 2, 3]
    # Fitted on other images of the same space, the scaler changes but not the cover.
    tasks = TaskSet.from_arrays(X, np.arange(len(X), dtype=float), np.repeat(["a", "b"], 12))
    picks = SupportSelector("kcenter").fit(tasks).select(X, 4)
    assert sorted(label[picks].tolist()) == [0, 1, 2, 3]


def test_kcenter_matches_brute_force_on_a_tiny_case():
    rng = np.random.RandomState(1)
    X = rng.randn(8, 3)
    Z = _standardized(X)
    picks = SupportSelector("kcenter").select(X, 3)
    # The first pick is the candidate nearest the mean; each next one is the farthest
    # from those already picked.
    assert picks[0] == np.argmin(((Z - Z.mean(0)) ** 2).sum(1))
    for i in range(1, len(picks)):
        rest = [j for j in range(len(Z)) if j not in picks[:i]]
        gaps = {j: np.sqrt(((Z[picks[:i]] - Z[j]) ** 2).sum(1)).min() for j in rest}
        assert gaps[picks[i]] == pytest.approx(max(gaps.values()))
    # Gonzalez's bound: within twice the best k-center radius, found by brute force.
    best = min(_radius(Z, c) for c in itertools.combinations(range(len(Z)), 3))
    assert _radius(Z, picks) <= 2 * best + 1e-12


def test_kcenter_picks_are_nested_and_distinct_with_duplicates():
    X = np.repeat(np.arange(4.0)[:, None], 3, axis=0)  # 4 distinct images, 3 copies each
    picks = SupportSelector("kcenter").select(X, 12)
    assert len(set(picks.tolist())) == 12
    assert sorted(set(X[picks[:4], 0].tolist())) == [0.0, 1.0, 2.0, 3.0]
    np.testing.assert_array_equal(SupportSelector("kcenter").select(X, 5), picks[:5])


def test_kcenter_measures_rows_of_extreme_magnitude_without_overflow():
    # A row of 1e200 overflowed the column variances (a RuntimeWarning), standardized
    # every column to 0 and picked rows 0, 1, 2, ...: the outlier, the farthest
    # candidate of all, was never picked. Its squared distances overflowed too, with a
    # fitted selector.
    X = np.random.RandomState(0).randn(20, 4)
    tasks = TaskSet.from_arrays(X[::-1] + 0.1, np.arange(20.0), np.repeat(["a", "b"], 10))
    fitted = SupportSelector("kcenter").fit(tasks)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for big in (1e200, 1e300):
            far = X.copy()
            far[7] = big
            assert select_support(far, 5)[1] == 7
            assert fitted.select(far, 5)[1] == 7
        # one huge value: the outlier's column no longer tells the others apart, as
        # with a large finite one; the other columns still do
        one = X.copy()
        one[5, 0] = 1e8
        expected = select_support(one, 8)
        assert expected[1] == 5
        one[5, 0] = 1e160
        np.testing.assert_array_equal(select_support(one, 8), expected)
    far = X.copy()
    far[[3, 9]] = [[1.7e308], [-1.7e308]]  # beyond float64 once standardized: named
    with pytest.raises(ValueError, match=r"2 row\(s\) \(rows 3, 9, counting from 0\) too "
                                         "far from the other embeddings"):
        fitted.select(far, 5)


# -- disagreement ------------------------------------------------------------------


def test_disagreement_finds_the_images_planted_raters_disagree_on():
    tasks = _planted_disagreement()
    sel = SupportSelector("disagreement").fit(tasks)
    assert len(sel.raters_) == 10 and sel.rater_coef_.shape == (10, 6)
    candidates = np.random.RandomState(5).randn(40, 6)
    contested = np.abs(candidates[:, 1])
    assert srocc(contested, sel.disagreement(candidates)) > 0.9
    picks = sel.select(candidates, 5)
    assert len(set(picks.tolist()) & set(np.argsort(-contested)[:5].tolist())) >= 4
    # Agreement on feature 0 does not count as disagreement.
    assert srocc(np.abs(candidates[:, 0]), sel.disagreement(candidates)) < 0.5


def test_float32_embeddings_fit_the_selector_that_their_float64_values_fit():
    # fit keeps float32 rows until the repeats of each image are dropped (the table
    # repeats an image's row per rating: 3x the data in float64 at FLICKR-AES size)
    tasks = _planted_disagreement()
    X32 = np.asarray(tasks.X, dtype=np.float32)
    assert X32.dtype == np.float32
    wide = SupportSelector("hybrid").fit(X32.astype(np.float64), tasks.y, tasks.groups)
    narrow = SupportSelector("hybrid").fit(X32, tasks.y, tasks.groups)
    np.testing.assert_array_equal(narrow.rater_coef_, wide.rater_coef_)
    candidates = np.random.RandomState(5).randn(40, 6)
    np.testing.assert_array_equal(narrow.select(candidates, 5), wide.select(candidates, 5))


def test_disagreement_of_rows_of_extreme_magnitude_overflows_nothing():
    # select() scaled such rows (see the kcenter test above); disagreement(X), on the
    # same standardized values, gave inf for a row of 1e200, with a RuntimeWarning
    sel = SupportSelector("disagreement").fit(_planted_disagreement())
    X = np.random.RandomState(0).randn(10, 6)
    plain = sel.disagreement(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        far = {}
        for big in (1e200, 2e200, 1e300):
            X[3] = big
            far[big] = sel.disagreement(X)
            assert np.isfinite(far[big]).all()
            np.testing.assert_array_equal(np.delete(far[big], 3), np.delete(plain, 3))
    assert far[2e200][3] == pytest.approx(2 * far[1e200][3], rel=1e-12)
    assert far[1e300][3] == pytest.approx(1e100 * far[1e200][3], rel=1e-12)
    X[[2, 5]] = [[1.7e308], [-1.7e308]]  # beyond float64 once standardized: named
    with pytest.raises(ValueError, match=r"2 row\(s\) \(rows 2, 5, counting from 0\) too "
                                         "far from the other embeddings"):
        sel.disagreement(X)


def test_disagreement_asks_for_an_image_given_twice_only_after_the_others():
    tasks = _planted_disagreement()
    sel = SupportSelector("disagreement").fit(tasks)
    candidates = np.random.RandomState(5).randn(6, 6)
    twice = np.vstack([candidates, candidates])  # every image given twice
    picks = sel.select(twice, 8)
    assert sorted(np.asarray(picks[:6]) % 6) == list(range(6))
    np.testing.assert_array_equal(picks[:6], sel.select(candidates, 6))


@pytest.mark.parametrize("strategy", ["disagreement", "hybrid"])
def test_raters_who_agree_everywhere_are_said_to_rank_nothing(strategy):
    # constant ratings: every model alike, disagreement 0 everywhere, and the picks
    # were the first candidates (hybrid: starting from the first), without a word
    tasks = _planted_disagreement()
    flat = TaskSet.from_arrays(tasks.X, np.full(len(tasks.y), 3.0), tasks.groups)
    candidates = np.random.RandomState(5).randn(12, 6)
    sel = SupportSelector(strategy).fit(flat)
    with pytest.warns(PIAAWarning, match="agree on every candidate"):
        picks = sel.select(candidates, 4)
    if strategy == "hybrid":
        np.testing.assert_array_equal(
            picks, SupportSelector("kcenter").fit(flat).select(candidates, 4))

@pytest.mark.parametrize("strategy", ["disagreement", "hybrid"])
def test_raters_who_agree_up_to_rounding_are_said_to_rank_nothing(strategy):
    # identical (not constant) ratings gave coefficients of 1e-19, above 0: picks by
    # rounding noise, without the warning
    tasks = _planted_disagreement()
    first = tasks.groups == tasks.raters[0]
    same = dict(zip(map(bytes, tasks.X[first]), tasks.y[first]))
    alike = TaskSet.from_arrays(tasks.X, [same.get(bytes(x), 3.0) for x in tasks.X],
                                tasks.groups)
    # one rater's scores all 1 higher: the same ranking
    shifted = TaskSet.from_arrays(alike.X, alike.y + (alike.groups == tasks.raters[1]),
                                  alike.groups)
    candidates = np.random.RandomState(5).randn(12, 6)
    kcenter = SupportSelector("kcenter").fit(alike).select(candidates, 4)
    for train in (alike, shifted):
        with pytest.warns(PIAAWarning, match="agree on every candidate"):
            picks = SupportSelector(strategy).fit(train).select(candidates, 4)
        np.testing.assert_array_equal(picks, [0, 1, 2, 3] if strategy == "disagreement"
                                      else kcenter)


def test_a_raters_own_repeats_are_not_shared_images():
    # two raters who each rated their own images twice shared none, yet the selector
    # fitted, and picked by coefficients of 1e-19
    X = np.random.RandomState(0).randn(10, 4)
    images = np.r_[X[:5], X[:5], X[5:], X[5:]]
    y = np.r_[np.arange(5.0), np.arange(5.0) + 0.5, np.arange(5.0)[::-1], np.arange(5.0)]
    tasks = TaskSet.from_arrays(images, y, np.repeat(["a", "b"], 10))
    with pytest.raises(ValueError, match="needs at least two training raters with a "
                                         "deviation model.*no rater has one"):
        SupportSelector("disagreement").fit(tasks)


@pytest.mark.parametrize("strategy", ["disagreement", "hybrid"])
def test_a_committee_of_one_rater_is_refused(strategy):
    # one rater with a deviation model fitted: disagreement was 0 on every image and
    # select warned of "coefficients all alike"
    X = np.random.RandomState(0).randn(20, 4)
    # "a" shares five images, each with a rater of that image alone (no model of theirs)
    lone = TaskSet.from_arrays(np.r_[X, X[:5]], np.r_[X[:, 0], np.arange(5.0)],
                               np.r_[["a"] * 20, [f"b{i}" for i in range(5)]])
    with pytest.raises(ValueError, match="at least two training raters.*only rater 'a'"):
        SupportSelector(strategy).fit(lone)
    fitted = SupportSelector("kcenter").fit(lone).set_params(strategy=strategy)
    with pytest.raises(ValueError, match="at least two training raters.*only rater 'a'"):
        fitted.select(X, 2)


def test_images_are_refused_with_the_way_to_embed_them():
    # row-wise images to fit advised a backbone, which a selector has not; a table of
    # image paths to select failed in numpy's "could not convert string to float"
    images = np.random.RandomState(0).randint(0, 255, (8, 8, 8, 3)).astype(np.uint8)
    with pytest.raises(ValueError, match="got images. Embed the images first"):
        SupportSelector().fit(images, np.arange(8.0), groups=np.repeat([0, 1], 4))
    paths = np.array([[f"{i}.jpg"] for i in range(8)], dtype=object)
    with pytest.raises(ValueError, match="got text \\('0.jpg'\\): image paths\\? Embed"):
        SupportSelector().select(paths, 2)


def test_hybrid_starts_at_the_most_contested_image_and_spreads_out():
    tasks = _planted_disagreement()
    candidates = np.random.RandomState(5).randn(40, 6)
    sel = SupportSelector("hybrid").fit(tasks)
    picks = sel.select(candidates, 6)
    assert picks[0] == np.argmax(sel.disagreement(candidates))
    assert len(set(picks.tolist())) == 6


def test_deviation_models_use_only_shared_images():
    # Rater "c" shares no image with anyone: no consensus to deviate from.
    X = np.random.RandomState(0).randn(30, 3)
    tasks = {"a": (X[:20], np.arange(20.0)), "b": (X[:20], np.arange(20.0)[::-1]),
             "c": (X[20:], np.arange(10.0))}
    sel = SupportSelector("disagreement").fit(tasks)
    assert sel.raters_ == ["a", "b"]
    with pytest.raises(ValueError, match="another rater rated too"):
        SupportSelector("disagreement").fit({"c": (X[20:], np.arange(10.0))})
    # A strategy without rater models fits anyway.
    SupportSelector("kcenter").fit({"c": (X[20:], np.arange(10.0))})


# -- determinism, estimator API ----------------------------------------------------


def test_random_strategy_is_reproducible():
    X = np.random.RandomState(0).randn(50, 4)
    a = SupportSelector("random", random_state=3).select(X, 10)
    b = select_support(X, 10, strategy="random", random_state=3)
    c = SupportSelector("random", random_state=4).select(X, 10)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(set(a.tolist())) == 10 and a.max() < 50


@pytest.mark.parametrize("strategy", ["kcenter", "disagreement", "hybrid"])
def test_deterministic_strategies_ignore_random_state(strategy):
    tasks = _planted_disagreement()
    X = np.random.RandomState(2).randn(30, 6)
    a = SupportSelector(strategy, random_state=0).fit(tasks).select(X, 7)
    b = SupportSelector(strategy, random_state=1).fit(tasks).select(X, 7)
    np.testing.assert_array_equal(a, b)


def test_clone_and_pickle():
    tasks = _planted_disagreement()
    sel = SupportSelector("hybrid", alphas=(1.0, 10.0), random_state=0)
    copy = clone(sel)
    assert copy.get_params() == sel.get_params() and not hasattr(copy, "mean_")
    sel.fit(tasks)
    X = np.random.RandomState(2).randn(30, 6)
    back = pickle.loads(pickle.dumps(sel))
    np.testing.assert_array_equal(back.select(X, 5), sel.select(X, 5))
    np.testing.assert_allclose(back.disagreement(X), sel.disagreement(X))


def test_fit_accepts_arrays_with_groups():
    tasks = _planted_disagreement()
    a = SupportSelector("disagreement").fit(tasks)
    b = SupportSelector("disagreement").fit(tasks.X, tasks.y, groups=tasks.groups)
    # Row-wise X is validated to float32, as in MetaAestheticRegressor.fit.
    np.testing.assert_allclose(a.rater_coef_, b.rater_coef_, rtol=1e-4, atol=1e-7)


# -- errors ------------------------------------------------------------------------


def test_errors_are_named():
    X = np.random.RandomState(0).randn(10, 3)
    sel = SupportSelector("kcenter")
    with pytest.raises(ValueError, match="cannot choose n=11 .* from 10"):
        sel.select(X, 11)
    with pytest.raises(ValueError, match="at least 1"):
        sel.select(X, 0)
    with pytest.raises(ValueError, match="integer"):
        sel.select(X, 2.5)
    with pytest.raises(ValueError, match="strategy"):
        SupportSelector("entropy").select(X, 2)
    with pytest.raises(ValueError, match="strategy"):
        SupportSelector("entropy").fit(_planted_disagreement())
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite features \(row 3, counting "
                                         r"from 0\)"):
        sel.select(bad, 2)
    with pytest.raises(ValueError, match="embeddings; got images"):
        sel.select(np.zeros((4, 8, 8, 3), dtype=np.uint8), 2)
    with pytest.raises(ValueError, match="alphas"):
        SupportSelector("disagreement", alphas=(0.0,)).fit(_planted_disagreement())


def test_missing_values_of_pandas_nullable_columns_are_named():
    # pd.NA in a Float64 table failed in float() with a bare TypeError
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.random.RandomState(0).randn(10, 3)).astype("Float64")
    X.iloc[3, 1] = pd.NA
    with pytest.raises(ValueError, match=r"NaN or infinite features \(row 3, counting "
                                         r"from 0\)"):
        select_support(X, 2)
    np.testing.assert_array_equal(select_support(X.iloc[4:], 3),
                                  select_support(X.iloc[4:].astype("float64"), 3))


def test_unfitted_and_mismatched_selectors():
    X = np.random.RandomState(0).randn(10, 6)
    with pytest.raises(NotFittedError, match="call fit"):
        SupportSelector("disagreement").select(X, 2)
    with pytest.raises(NotFittedError, match="training raters: pass train_tasks="):
        select_support(X, 2, strategy="hybrid")  # a function: no fit to call
    with pytest.raises(NotFittedError):
        SupportSelector("kcenter").disagreement(X)
    sel = SupportSelector("disagreement").fit(_planted_disagreement())
    with pytest.raises(ValueError, match="X has 3 features.*with 6"):
        sel.select(X[:, :3], 2)
    with pytest.raises(ValueError, match="either selector or train_tasks"):
        select_support(X, 2, selector=sel, train_tasks=_planted_disagreement())
    with pytest.raises(ValueError, match="either selector or random_state"):
        select_support(X, 2, selector=sel, random_state=0)
    np.testing.assert_array_equal(select_support(X, 3, selector=sel), sel.select(X, 3))


# -- the paired protocol -----------------------------------------------------------


class _RecordingPrior:
    """Scores feature 0; records every (support, query) pair it is personalized on."""

    def __init__(self):
        self.calls = []

    def predict(self, X):
        return np.asarray(X)[:, 0]

    def personalize(self, X, y, random_state=None):
        support, calls = np.asarray(X)[:, -1].astype(int), self.calls

        class Net:
            def predict(self, Xq):
                calls.append((support, np.asarray(Xq)[:, -1].astype(int)))
                return np.asarray(Xq)[:, 0] + 0.01 * support.sum()

        return Net()


def _id_tasks(n_raters=3, per_rater=40, random_state=0):
    # The last column is a row id, so the recorder can tell which images it saw.
    rng = np.random.RandomState(random_state)
    X = np.column_stack([rng.randn(n_raters * per_rater, 4), np.arange(n_raters * per_rater)])
    y = rng.randn(len(X))
    groups = np.repeat([f"u{u}" for u in range(n_raters)], per_rater)
    return TaskSet.from_arrays(X, y, groups)


def test_query_sets_are_identical_across_strategies():
    tasks = _id_tasks()
    selectors = {"kc": SupportSelector("kcenter"),
                 "rand7": SupportSelector("random", random_state=7)}
    prior = _RecordingPrior()
    results = compare_support_strategies(prior, tasks, selectors, n_support=(5, 10),
                                         n_query=15, n_repeats=2, random_state=0)
    assert set(results) == {"random", "kc", "rand7"}
    # Calls come per (rater, repeat, size): random first, then each selector.
    chunks = [prior.calls[i:i + 3] for i in range(0, len(prior.calls), 3)]
    assert len(chunks) == 3 * 2 * 2
    queries = set()
    for chunk in chunks:
        (s0, q0), *others = chunk
        assert len(q0) == 15
        queries.add(tuple(sorted(q0)))
        for s, q in others:
            np.testing.assert_array_equal(q, q0)
            assert not set(s) & set(q0)
        assert all(len(s) == len(s0) for s, _ in chunk)
    assert len(queries) == 3 * 2  # one query set per rater and repeat, fresh each time
    # The random support of 5 is part of the one of 10 (nested draws), each handed to
    # personalize in the rater's own order.
    for small, large in zip(chunks[0::2], chunks[1::2]):
        assert set(small[0][0]) < set(large[0][0])
        assert list(small[0][0]) == sorted(small[0][0])
    # The selector's picks are made from the pool: all the rater's images but the query.
    s_kc, q = chunks[0][1]
    Xr = tasks["u0"][0]
    pool = Xr[~np.isin(Xr[:, -1], q)]
    assert len(pool) == 40 - 15
    expected = pool[SupportSelector("kcenter").select(pool, 5), -1].astype(int)
    np.testing.assert_array_equal(np.sort(s_kc), np.sort(expected))
    for name in ("kc", "rand7"):
        np.testing.assert_array_equal(results[name].table["srocc_prior"],
                                      results["random"].table["srocc_prior"])


def test_compare_on_a_real_prior_is_paired_and_reproducible(ratings):
    X, y, groups = ratings
    test = np.isin(groups, ["r00", "r01", "r02"])
    train = ~test
    prior = ConsensusRidgeRegressor().fit(X[train], y[train], groups=groups[train])
    train_tasks = TaskSet.from_arrays(X[train], y[train], groups[train])
    test_tasks = TaskSet.from_arrays(X[test], y[test], groups[test])
    selectors = [SupportSelector(s).fit(train_tasks) for s in ("kcenter", "disagreement")]
    kwargs = dict(n_support=(10, 25), n_query=30, n_repeats=3, random_state=0)
    a = compare_support_strategies(prior, test_tasks, selectors, **kwargs)
    b = compare_support_strategies(prior, test_tasks, selectors, **kwargs)
    for name in a:
        np.testing.assert_array_equal(a[name].table, b[name].table)
        assert set(a[name].summary) == {10, 25}
        assert len(a[name].table) == 3 * 3 * 2
    diff = paired_difference(a["kcenter"], a["random"])
    assert set(diff) == {10, 25} and all(n == 3 for _, _, n in diff.values())
    assert np.isfinite([m for m, _, _ in diff.values()]).all()


def test_compare_skips_small_raters_and_checks_its_arguments():
    tasks = _id_tasks(per_rater=30)
    prior, sel = _RecordingPrior(), {"kc": SupportSelector("kcenter")}
    # every rater is skipped at 20: the size is left out, in one line
    with pytest.warns(PIAAWarning, match="n_support=20 left out: no test rater has enough "
                                         "images"):
        res = compare_support_strategies(prior, tasks, sel, n_support=(5, 20), n_query=15,
                                         n_repeats=1, random_state=0)
    assert len(res["kc"].skipped[20]) == 3 and not res["kc"].skipped[5]
    assert set(res["kc"].table["n_support"].tolist()) == {5} and list(res["kc"].summary) == [5]
    with pytest.raises(ValueError, match="'random' is the protocol's own"):
        compare_support_strategies(prior, tasks, {"random": SupportSelector("random")})
    with pytest.raises(ValueError, match="share a strategy name"):
        compare_support_strategies(prior, tasks, [SupportSelector(), SupportSelector()])
    with pytest.raises(ValueError, match="n_query"):
        compare_support_strategies(prior, tasks, sel, n_query=1)
    with pytest.raises(ValueError, match="n_query"):
        compare_support_strategies(prior, tasks, sel, n_query=1.5)
    with pytest.raises(ValueError, match="empty"):
        compare_support_strategies(prior, tasks, {})
    # A fraction of each rater's images works as the query size.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = compare_support_strategies(prior, tasks, sel, n_support=5, n_query=0.5,
                                         n_repeats=1, random_state=0)
    assert set(res["kc"].table["n_query"].tolist()) == {15}


def test_images_are_embedded_through_the_prior_input_adapter():
    rng = np.random.RandomState(0)
    images = (rng.rand(30, 8, 8, 3) * 255).astype(np.uint8)
    tasks = TaskSet.from_arrays(images, rng.randn(30), np.repeat(["a", "b"], 15))

    class Embed:
        def transform(self, X):
            return np.asarray(X, dtype=float).mean(axis=(1, 2))

    class ImagePrior:
        input_ = Embed()

        def predict(self, X):
            return self.input_.transform(X)[:, 0]

        def personalize(self, X, y, random_state=None):
            return self

    res = compare_support_strategies(ImagePrior(), tasks, [SupportSelector()], n_support=5,
                                     n_query=10, n_repeats=1, random_state=0)
    assert len(res["kcenter"].table) == 2
    del ImagePrior.input_
    ImagePrior.predict = lambda self, X: np.zeros(len(X))
    with pytest.raises(ValueError, match="no embedding input adapter"):
        compare_support_strategies(ImagePrior(), tasks, [SupportSelector()], n_support=5,
                                   n_query=10, n_repeats=1)


def test_evaluate_personalization_default_path_is_unchanged():
    from sklearn_piaa.evaluation import _draw_seeds

    # The paper's protocol, replayed by hand: one permutation per rater and repeat,
    # the first k images as support and all the others as query.
    X, y, groups, _ = make_rating_features(n_raters=6, per_rater=40)
    prior = ConsensusRidgeRegressor().fit(X[12 * 4:], y[12 * 4:], groups=groups[12 * 4:])
    tasks = TaskSet.from_arrays(X, y, groups).subset(["r00", "r01"])
    res = evaluate_personalization(prior, tasks, n_support=(5, 20), n_repeats=2,
                                   random_state=0)
    # each draw's seed from random_state, the rater and the repeat (as test_evaluation
    # checks); the draws themselves are replayed here
    seeds = _draw_seeds(0, tasks.raters, 2)
    expected = []
    for i, rater in enumerate(tasks.raters):
        Xr, yr = tasks[rater]
        for repeat, seed in enumerate(seeds[i]):
            perm = np.random.RandomState(seed).permutation(len(yr))
            for k in (5, 20):
                sup, qry = perm[:k], perm[k:]
                net = prior.personalize(Xr[sup], yr[sup])
                expected.append((rater, repeat, k, len(qry),
                                 srocc(yr[qry], prior.predict(Xr[qry])),
                                 srocc(yr[qry], net.predict(Xr[qry])), seed))
    assert res.table.tolist() == expected


def test_benchmark_script_runs(capsys):
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "support_selection.py")
    spec = importlib.util.spec_from_file_location("support_selection", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--n-images", "40", "--n-raters", "10", "--images-per-rater", "30",
                        "--image-size", "32", "--n-iterations", "2", "--n-repeats", "1",
                        "--n-support", "4", "8", "--n-query", "12"]) == 0
    out = capsys.readouterr().out
    for row in ("prior only", "random ", "kcenter ", "disagreement ", "hybrid "):
        assert row in out


def test_candidates_with_other_columns_are_refused():
    # candidates' columns in another order were scored as other images, silently
    pd = pytest.importorskip("pandas")
    X, y, groups, _ = make_rating_features()
    columns = [f"f{j}" for j in range(X.shape[1])]
    selector = SupportSelector("disagreement").fit(pd.DataFrame(X, columns=columns), y,
                                                   groups=groups)
    assert list(selector.feature_names_in_) == columns
    candidates = pd.DataFrame(X[:30], columns=columns)
    assert len(selector.select(candidates, 5)) == 5
    np.testing.assert_array_equal(selector.select(candidates, 5), selector.select(X[:30], 5))
    with pytest.raises(ValueError, match="SupportSelector"):
        selector.select(candidates[columns[::-1]], 5)
    assert not hasattr(SupportSelector("disagreement").fit(X, y, groups=groups),
                       "feature_names_in_")
    # a TaskSet (or dict) of the tables carries the names too, as the prior's fit reads
    tasks = TaskSet.from_arrays(pd.DataFrame(X, columns=columns), y, groups)
    from_tasks = SupportSelector("disagreement").fit(tasks)
    assert list(from_tasks.feature_names_in_) == columns
    with pytest.raises(ValueError, match="SupportSelector"):
        from_tasks.select(candidates[columns[::-1]], 5)


def test_strategies_choosing_the_same_images_score_the_same(ratings, tiny_params):
    # Every strategy must take the whole pool here; fine-tuning on it in the order each
    # strategy picked the images scored them apart (kcenter 0.52 against random 0.48)
    X, y, groups = ratings
    test = np.isin(groups, ["r00", "r01"])
    prior = MetaAestheticRegressor(**tiny_params).fit(X[~test], y[~test],
                                                      groups=groups[~test])
    train_tasks = TaskSet.from_arrays(X[~test], y[~test], groups[~test])
    test_tasks = TaskSet.from_arrays(X[test], y[test], groups[test])
    n = min(test_tasks.sizes().values())
    selectors = [SupportSelector(s).fit(train_tasks) for s in ("kcenter", "disagreement")]
    got = compare_support_strategies(prior, test_tasks, selectors, n_support=(10,),
                                     n_query=n - 10, n_repeats=2, random_state=0)
    for name in ("kcenter", "disagreement"):
        np.testing.assert_array_equal(got[name].table["srocc_personalized"],
                                      got["random"].table["srocc_personalized"])


def _three_raters(seed=0, n_images=30, n_features=4):
    rng = np.random.RandomState(seed)
    F = rng.randn(n_images, n_features)
    ys = [F @ rng.randn(n_features) + 0.3 * rng.randn(n_images) for _ in range(3)]
    X = np.vstack([F] * 3)
    y = np.concatenate(ys)
    groups = np.repeat(["a", "b", "c"], n_images)
    return F, ys, X, y, groups


def test_deviation_models_are_ridges_on_the_leave_one_out_consensus():
    F, ys, X, y, groups = _three_raters()
    sel = SupportSelector("disagreement", alphas=(1.0,)).fit(X, y, groups=groups)
    Z = (F - F.mean(0)) / F.std(0)
    z = [(v - v.mean()) / v.std() for v in ys]
    for i, rater in enumerate(["a", "b", "c"]):
        others = np.mean([z[j] for j in range(3) if j != i], axis=0)
        ref = RidgeCV(alphas=[1.0 * F.shape[1]]).fit(Z, z[i] - others)
        np.testing.assert_allclose(sel.rater_coef_[sel.raters_.index(rater)], ref.coef_,
                                   rtol=1e-6, atol=1e-10)


def test_deviation_models_do_not_depend_on_a_raters_use_of_the_scale():
    F, ys, X, y, groups = _three_raters(seed=1)
    first = SupportSelector("disagreement").fit(X, y, groups=groups)
    y2 = y.copy()
    y2[groups == "b"] = 100 + 20 * y2[groups == "b"]  # rater b on a wider scale
    second = SupportSelector("disagreement").fit(X, y2, groups=groups)
    np.testing.assert_allclose(second.rater_coef_, first.rater_coef_, rtol=1e-3, atol=1e-5)


def test_a_rater_with_only_two_shared_images_gets_no_deviation_model():
    F, ys, X, y, groups = _three_raters(seed=2)
    # rater "d" rates two of the shared images and five images nobody else rated
    rng = np.random.RandomState(5)
    own = rng.randn(5, F.shape[1]) + 10
    Xd = np.vstack([F[:2], own])
    X = np.vstack([X, Xd])
    y = np.concatenate([y, rng.randn(7)])
    groups = np.concatenate([groups, ["d"] * 7])
    sel = SupportSelector("disagreement").fit(X, y, groups=groups)
    assert sel.raters_ == ["a", "b", "c"]
    assert sel.rater_coef_.shape == (3, F.shape[1])


def test_standardization_counts_each_distinct_image_once():
    F, ys, X, y, groups = _three_raters(seed=3)
    # a fourth rater re-rates two images only: they must not weigh more in the scale
    X = np.vstack([X, F[:2], F[:2]])
    y = np.concatenate([y, [1.0, 2.0, 2.0, 1.0]])
    groups = np.concatenate([groups, ["d", "d", "e", "e"]])
    sel = SupportSelector("disagreement").fit(X, y, groups=groups)
    np.testing.assert_allclose(sel.mean_, F.mean(axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sel.scale_, F.std(axis=0), rtol=1e-5)


def _tasks(ratings, n=15):
    X, y, groups = ratings
    train = ~np.isin(groups, ["r09", "r10"])
    keep = np.r_[np.flatnonzero(groups == "r09")[:n], np.flatnonzero(groups == "r10")[:n]]
    return (TaskSet.from_arrays(X[train], y[train], groups[train]),
            TaskSet.from_arrays(X[keep], y[keep], groups[keep]))


def test_a_fractional_n_query_is_rounded_to_the_nearest_count(ratings):
    # half of 15 images is 7.5: rounded, 8 query images (not truncated to 7)
    train, test = _tasks(ratings, n=15)
    prior = ConsensusRidgeRegressor().fit(train)
    res = compare_support_strategies(prior, test, [SupportSelector("kcenter")], n_support=3,
                                     n_query=0.5, n_repeats=1, random_state=0)
    assert (res["random"].table["n_query"] == 8).all()


def test_strategies_fine_tune_with_each_draws_seed(ratings, tiny_params):
    # each personalization is seeded by its draw: two runs of one random_state agree,
    # and runs of other random_states fine-tune differently
    train, test = _tasks(ratings, n=30)
    prior = MetaAestheticRegressor(**tiny_params).fit(train)
    kw = dict(n_support=10, n_query=10, n_repeats=2)
    sel = [SupportSelector("kcenter")]
    a = compare_support_strategies(prior, test, sel, random_state=0, **kw)
    b = compare_support_strategies(prior, test, sel, random_state=0, **kw)
    for name in a:
        np.testing.assert_array_equal(a[name].table["srocc_personalized"],
                                      b[name].table["srocc_personalized"])


FT = dict(finetune_epochs=20, finetune_batch_size=4, finetune_lr=1e-2)


def test_strategies_are_reproducible_for_a_prior_without_a_seed_of_its_own():
    # Each personalization is seeded by its draw's seed (the table's seed column), so
    # one random_state gives the same table twice even when the prior itself has
    # random_state=None (which would fine-tune each call anew).
    X, y, groups, _ = make_rating_features()
    test = np.isin(groups, ["r00", "r01"])
    train = TaskSet.from_arrays(X[~test], y[~test], groups[~test])
    tasks = TaskSet.from_arrays(X[test], y[test], groups[test])
    prior = MetaAestheticRegressor(**{**TINY, "random_state": None, **FT}).fit(train)
    # fine-tuning does depend on its seed here (otherwise the check below says nothing)
    a = prior.personalize(X[test][:10], y[test][:10], random_state=1).predict(X[test][10:])
    b = prior.personalize(X[test][:10], y[test][:10], random_state=2).predict(X[test][10:])
    assert not np.allclose(a, b)
    kw = dict(n_support=20, n_query=30, n_repeats=2, random_state=0)
    sel = [SupportSelector("kcenter")]
    first = compare_support_strategies(prior, tasks, sel, **kw)
    second = compare_support_strategies(prior, tasks, sel, **kw)
    for name in first:
        np.testing.assert_array_equal(first[name].table["srocc_personalized"],
                                      second[name].table["srocc_personalized"])


def test_each_strategy_is_fine_tuned_with_its_draws_seed():
    # A draw's personalized SROCC is that of prior.personalize(support, random_state=seed)
    # with the seed in the table, not of the prior's own random_state.
    from sklearn_piaa import srocc

    X, y, groups, _ = make_rating_features()
    test = np.isin(groups, ["r00"])
    train = TaskSet.from_arrays(X[~test], y[~test], groups[~test])
    Xr, yr = X[test], y[test]
    tasks = TaskSet.from_arrays(Xr, yr, groups[test])
    prior = MetaAestheticRegressor(**{**TINY, **FT}).fit(train)
    res = compare_support_strategies(prior, tasks, [SupportSelector("kcenter")],
                                     n_support=20, n_query=30, n_repeats=3,
                                     random_state=0)["random"]
    for row in res.table:
        seed = int(row["seed"])
        perm = np.random.RandomState(seed).permutation(len(yr))
        qry, sup = perm[:30], np.sort(perm[30:50])
        net = prior.personalize(Xr[sup], yr[sup], random_state=seed)
        assert srocc(yr[qry], net.predict(Xr[qry])) == row["srocc_personalized"]
