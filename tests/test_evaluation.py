import os
import re
import warnings

import numpy as np
import pytest
import torch

from sklearn_piaa import ConsensusRidgeRegressor, MetaAestheticRegressor, PIAAWarning, TaskSet
from sklearn_piaa._warnings import SkippedWarning
from sklearn_piaa.evaluation import evaluate_personalization


@pytest.fixture
def fitted(ratings, tiny_params):
    X, y, groups = ratings
    train = ~np.isin(groups, ["r09", "r10", "r11"])
    meta = MetaAestheticRegressor(**tiny_params).fit(X[train], y[train], groups=groups[train])
    return meta, TaskSet.from_arrays(X[~train], y[~train], groups[~train])


def _assert_warned(record, category, match):
    # One record for two warnings rather than nested pytest.warns: before pytest 8 the
    # inner one kept the outer one's warning.
    assert any(issubclass(w.category, category) and re.search(match, str(w.message))
               for w in record), (category, match, [str(w.message) for w in record])


def test_protocol_table_and_summary(fitted):
    meta, test = fitted
    res = evaluate_personalization(meta, test, n_support=(5, 20), n_repeats=2,
                                   random_state=0)
    assert len(res.table) == 3 * 2 * 2
    assert set(res.table["n_support"]) == {5, 20}
    assert (res.table["n_query"] == 80 - res.table["n_support"]).all()
    assert set(res.summary) == {5, 20}
    assert res.summary[20]["personalized"].n == 3
    assert np.isfinite(res.table["srocc_prior"]).all()
    # The prior's score does not depend on the support size, only on the query draw.
    assert not np.allclose(res.table["srocc_prior"], res.table["srocc_personalized"])
    assert "personalized" in str(res)
    # a notebook shows the summary, not the dataclass's dump of the structured table
    assert str(res) in repr(res) and "array(" not in repr(res)


def test_more_repeats_extend_a_table_and_raters_draw_on_their_own(fitted):
    # Seeds came from one (raters, repeats) matrix: 3 repeats redrew the raters' first
    # 2, and adding or leaving out a rater changed the others' draws.
    meta, test = fitted
    two = evaluate_personalization(meta, test, n_support=5, n_repeats=2, random_state=0).table
    three = evaluate_personalization(meta, test, n_support=5, n_repeats=3,
                                     random_state=0).table
    np.testing.assert_array_equal(three[three["repeat"] < 2], two)
    alone = evaluate_personalization(meta, test.subset(["r10"]), n_support=5, n_repeats=2,
                                     random_state=0).table
    np.testing.assert_array_equal(alone, two[two["rater"] == "r10"])
    other = evaluate_personalization(meta, test, n_support=5, n_repeats=2,
                                     random_state=1).table
    assert not np.array_equal(other["seed"], two["seed"])


def test_same_random_state_same_table_in_parallel(fitted):
    meta, test = fitted
    a = evaluate_personalization(meta, test, n_support=5, n_repeats=2, random_state=3)
    b = evaluate_personalization(meta, test, n_support=5, n_repeats=2, random_state=3,
                                 n_jobs=2)
    np.testing.assert_array_equal(a.table["srocc_personalized"], b.table["srocc_personalized"])
    c = evaluate_personalization(meta, test, n_support=5, n_repeats=2, random_state=4)
    assert not np.array_equal(a.table["srocc_personalized"], c.table["srocc_personalized"])


def test_raters_run_in_chunks_give_the_table_in_rater_order(ratings, tiny_params,
                                                            monkeypatch):
    # a job per rater pickled the prior into every job: they now run several raters
    X, y, groups = ratings
    train = np.isin(groups, ["r00", "r01", "r02"])
    meta = MetaAestheticRegressor(**tiny_params).fit(X[train], y[train], groups=groups[train])
    test = TaskSet.from_arrays(X[~train], y[~train], groups[~train])
    assert len(test) == 9  # chunks of 2 raters for 2 workers
    import joblib

    import sklearn_piaa.evaluation as evaluation

    a = evaluate_personalization(meta, test, n_support=5, n_repeats=2, random_state=3)
    b = evaluate_personalization(meta, test, n_support=5, n_repeats=2, random_state=3,
                                 n_jobs=2)
    assert list(dict.fromkeys(b.table["rater"])) == test.raters
    np.testing.assert_array_equal(a.table, b.table)
    chunks = []
    run = evaluation._run_chunk
    monkeypatch.setattr(evaluation, "_run_chunk",
                        lambda func, prior, calls: chunks.append(len(calls)) or run(
                            func, prior, calls))
    with joblib.parallel_config(backend="threading"):  # in this process: counted
        c = evaluate_personalization(meta, test, n_support=5, n_repeats=2, random_state=3,
                                     n_jobs=2)
    assert sorted(chunks) == [1, 2, 2, 2, 2]
    np.testing.assert_array_equal(a.table, c.table)


def test_same_table_with_joblib_threads(fitted):
    # The raters' seeded fine-tunings drew from each other's torch stream.
    import joblib
    meta, test = fitted
    a = evaluate_personalization(meta, test, n_support=5, n_repeats=2, random_state=3)
    with joblib.parallel_config(backend="threading"):
        b = evaluate_personalization(meta, test, n_support=5, n_repeats=2, random_state=3,
                                     n_jobs=2)
    np.testing.assert_array_equal(a.table["srocc_personalized"], b.table["srocc_personalized"])


def test_scoring_in_threads_leaves_the_warning_filters_alone(fitted):
    # catch_warnings swaps the process-wide filter list: blocks overlapping in threads
    # left an "ignore UndefinedSROCCWarning" behind, silencing every later one.
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    import joblib

    from sklearn_piaa import PersonalizedSROCCScorer
    meta, test = fitted
    scorer = PersonalizedSROCCScorer(n_support=5, n_repeats=2)
    before = list(warnings.filters)
    for seed in range(3):
        with joblib.parallel_config(backend="threading"):
            evaluate_personalization(meta, test, n_support=5, n_repeats=2, random_state=seed,
                                     n_jobs=2)
        with ThreadPoolExecutor(3) as pool:
            one = [test.rows(test.indices[r]) for r in test.raters]
            list(pool.map(lambda t: scorer(meta, t.X, t.y, t.groups), one))
    assert warnings.filters == before


def test_multiprocessing_backend_is_refused_not_hung(fitted):
    # Forked workers hang in torch's first parallel kernel (the call used to fail on
    # return_as="generator" first); one job runs in this process and is fine.
    import joblib
    meta, test = fitted
    with joblib.parallel_config(backend="multiprocessing"):
        with pytest.raises(ValueError, match="'multiprocessing' backend forks"):
            evaluate_personalization(meta, test, n_support=5, n_repeats=1, n_jobs=2)
        result = evaluate_personalization(meta, test, n_support=5, n_repeats=1, n_jobs=1)
    assert len(result.table) == len(test.raters)


def test_raters_with_too_few_images_are_reported(fitted):
    meta, test = fitted
    # r11 keeps 30 of its 80 images: skipped at 40 support images, not at 5
    small = TaskSet.from_mapping({r: (test[r][0][:30], test[r][1][:30]) if r == "r11"
                                  else test[r] for r in test.raters})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = evaluate_personalization(meta, small, n_support=(5, 40, 79, 90), n_repeats=1,
                                       random_state=0)
    said = [str(w.message) for w in caught if issubclass(w.category, PIAAWarning)]
    assert said == ["n_support=79, 90 left out: no test rater has enough images (n_support "
                    "+ 2; the largest rater has 80).",
                    "1 rater(s) have fewer than 42 images and are skipped at n_support=40: "
                    "'r11' (30)"]
    # a category of their own: a caller printing the result filters them by it, once
    assert [w.category for w in caught if issubclass(w.category, PIAAWarning)] == [
        SkippedWarning, SkippedWarning]
    assert [r for r, _ in res.skipped[40]] == ["r11"]
    # a size no rater reaches: no NaN row in the summary, its raters named in one line
    assert list(res.summary) == [5, 40] and res.summary[40]["personalized"].n == 2
    assert [r for r, _ in res.skipped[79]] == ["r09", "r10", "r11"]
    text = str(res)
    assert "nan" not in text and "skipped at 79" not in text and "skipped at 90" not in text
    assert "left out n_support=79, 90: no rater has enough images (the most any has: 80)" \
        in text
    assert text.count("'r11'") == 1 and "skipped at 40 images (too few images): 'r11' (30)" \
        in text
    with pytest.raises(ValueError, match=r"no test rater has enough images .*\[79, 90\]"):
        evaluate_personalization(meta, test, n_support=(79, 90), n_repeats=1)


def test_cross_scale_evaluation(fitted):
    meta, test = fitted
    scaled = TaskSet.from_arrays(test.X, (test.y - 1) * 25.0, test.groups)  # a 0-100 scale
    with pytest.raises(ValueError, match="score_range"):
        evaluate_personalization(meta, scaled, n_support=5, n_repeats=1, random_state=0)
    a = evaluate_personalization(meta, test, n_support=5, n_repeats=1, random_state=0)
    b = evaluate_personalization(meta, scaled, n_support=5, n_repeats=1, random_state=0,
                                 score_range=(0, 100))
    # A linear change of scale leaves the prior's SROCC exactly as it was.
    np.testing.assert_allclose(a.table["srocc_prior"], b.table["srocc_prior"])
    assert np.isfinite(b.table["srocc_personalized"]).all()


def test_undefined_draws_are_counted_not_dropped_silently():
    # A rater's mean over draws left its undefined draws out without a word.
    from sklearn_piaa import ConsensusRidgeRegressor, UndefinedSROCCWarning
    rng = np.random.RandomState(0)
    F = rng.randn(40, 5)

    def scores(rows):
        return np.clip(np.round(3 + rows[:, 0]), 1, 5)

    train = TaskSet.from_mapping({r: (F[i * 10:(i + 2) * 10], scores(F[i * 10:(i + 2) * 10]))
                                  for i, r in enumerate("abc")})
    prior = ConsensusRidgeRegressor().fit(train)
    # One high rating among eleven equal ones: a query set without it is constant.
    test = TaskSet.from_mapping({"z": (F[:12], np.array([3.0] * 11 + [5.0])),
                                 "w": (F[12:24], scores(F[12:24]))})
    with pytest.warns(UndefinedSROCCWarning) as record:
        result = evaluate_personalization(prior, test, n_support=5, n_repeats=6,
                                          random_state=0)
    table = result.table
    n_bad = int(np.isnan(table["srocc_personalized"]).sum())
    assert n_bad > 0  # the case this test is about happened
    undefined = [str(w.message) for w in record if w.category is UndefinedSROCCWarning]
    assert f"{n_bad} of 12 draws (personalized)" in undefined[0]
    assert "undefined SROCC at 5 images: " in str(result)
    assert f"{n_bad} of 12 draws (personalized)" in str(result)
    # Both raters keep a defined mean; the undefined draws are not counted as raters.
    assert result.summary[5]["personalized"].n == 2


def test_a_prior_constant_by_design_is_not_warned_about_at_every_draw():
    # The per-user ridge predicts one constant before a rater's own images: table1
    # warned "undefined SROCC ... in 20 of 20 draws (prior)" under its n/a column.
    from sklearn_piaa import ConsensusRidgeRegressor, UndefinedSROCCWarning, UserRidgeRegressor
    rng = np.random.RandomState(0)
    F = rng.randn(60, 5)
    y = 3 + F[:, 0] + 0.1 * rng.randn(60)
    train = TaskSet.from_mapping({r: (F[i * 10:(i + 2) * 10], y[i * 10:(i + 2) * 10])
                                  for i, r in enumerate("abc")})
    test = TaskSet.from_mapping({"z": (F[40:60], y[40:60])})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedSROCCWarning)
        result = evaluate_personalization(UserRidgeRegressor().fit(train), test,
                                          n_support=5, n_repeats=2, random_state=0)
    assert np.isnan(result.table["srocc_prior"]).all()  # the case this test is about
    assert np.isfinite(result.table["srocc_personalized"]).all()
    # a prior that ranks images and still gives no SROCC is warned about
    flat = ConsensusRidgeRegressor().fit(train)
    flat.generic_.coef_[:] = 0.0
    with pytest.warns(UndefinedSROCCWarning, match=r"2 of 2 draws \(prior\)"):
        evaluate_personalization(flat, test, n_support=5, n_repeats=2, random_state=0)


def test_repeated_images_of_a_test_rater_are_warned_about(fitted, tmp_path):
    # A repeat can be drawn into both the support and the query set: SROCC then
    # rewards memory (tripled rows moved pers@100 from 0.271 to 0.303 in an audit).
    from sklearn_piaa import PersonalizedSROCCScorer
    meta, test = fitted
    X, y = test["r09"]
    twice = TaskSet.from_mapping({"r09": (np.concatenate([X, X[:7]]),
                                          np.concatenate([y, y[:7]])),
                                  "r10": test["r10"]})
    with pytest.warns(PIAAWarning, match=r"1 test rater.*'r09' \(7\) repeated rows"):
        evaluate_personalization(meta, twice, n_support=5, n_repeats=1, random_state=0)
    with pytest.warns(PIAAWarning, match=r"'r09' \(7\)"):
        PersonalizedSROCCScorer(n_support=5)(meta, twice.X, twice.y, twice.groups)
    paths = [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), str(tmp_path / "." / "a.jpg")]
    assert TaskSet.from_arrays(paths, [1, 2, 3], ["u"] * 3).repeated_images() == {"u": 1}
    assert test.repeated_images() == {}


def test_nan_predictions_on_features_are_not_dropped_as_unreadable_images(ratings):
    # rows the prior predicted as NaN were left out of the draws as if they were
    # unreadable images: with features no image is unreadable, and the protocol ran
    # on fewer images without a word
    from sklearn_piaa.baselines import ConsensusRidgeRegressor

    class Broken(ConsensusRidgeRegressor):
        def predict(self, X):
            pred = super().predict(X)
            return np.where(np.asarray(X)[:, 0] > 0.5, np.nan, pred)

    X, y, groups = ratings
    train = ~np.isin(groups, ["r10", "r11"])
    prior = Broken(backbone=None).fit(X[train], y[train], groups=groups[train])
    test = TaskSet.from_arrays(X[~train], y[~train], groups[~train])
    with pytest.warns(UserWarning, match="undefined SROCC"):
        result = evaluate_personalization(prior, test, n_support=5, n_repeats=1,
                                          random_state=0)
    sizes = test.sizes()
    assert [int(q) for q in result.table["n_query"]] == [sizes["r10"] - 5, sizes["r11"] - 5]
    assert np.isnan(result.table["srocc_prior"]).all()


def test_raters_the_prior_cannot_reach_or_saw_as_other_ids_are_named(ratings, tiny_params):
    # A score outside the prior's range failed only the draws that put it in a support
    # set, naming a position there; and a rater fitted as 7 was not recognized as "7"
    X, y, groups = ratings
    codes = {r: i for i, r in enumerate(sorted(set(groups.tolist())))}
    ids = np.array([codes[g] for g in groups.tolist()])  # int ids, as a DataFrame gives
    train = ids < 9
    meta = MetaAestheticRegressor(**tiny_params).fit(X[train], y[train], groups=ids[train])
    low, high = meta.score_range_
    test = TaskSet.from_arrays(X[~train], np.clip(y[~train], low, high),
                               ids[~train].astype(str))
    bad = test.y.copy()
    bad[test.indices[test.raters[0]][3]] = high + 1
    with pytest.raises(ValueError, match=rf"1 test rater\(s\) .*'{test.raters[0]}' \(1 of"):
        evaluate_personalization(meta, TaskSet.from_arrays(X[~train], bad,
                                                           ids[~train].astype(str)),
                                 n_support=(5,), n_repeats=1)
    seen = TaskSet.from_arrays(X[ids == 0], y[ids == 0], np.full((ids == 0).sum(), "0"))
    with pytest.warns(PIAAWarning, match="were among the prior's .* training raters"):
        evaluate_personalization(meta, seen, n_support=(5,), n_repeats=1)


def test_a_rater_on_another_scale_is_named_once_not_at_every_draw(ratings, tiny_params):
    # personalize warned at each support draw: dozens of the same warning per rater
    import warnings

    X, y, groups = ratings
    train = ~np.isin(groups, ["r10", "r11"])
    meta = MetaAestheticRegressor(**tiny_params).fit(X[train], y[train] * 100,
                                                    groups=groups[train])
    low, high = meta.score_range_
    y_test = y[~train] * 100
    odd = groups[~train] == "r11"  # as if on 0-100 against the prior's 100-500
    y_test[odd] = low + (y_test[odd] - low) * 0.2 * (high - low) / (y_test[odd].max() - low)
    test = TaskSet.from_arrays(X[~train], y_test, groups[~train])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        evaluate_personalization(meta, test, n_support=(5, 10), n_repeats=3)
    scale = [str(w.message) for w in record if "another scale" in str(w.message)]
    assert len(scale) == 1, scale
    assert "1 test rater(s)" in scale[0] and "'r11'" in scale[0] and "lowest fifth" in scale[0]
    with pytest.warns(PIAAWarning, match="all lie in the lowest fifth"):  # alone, as before
        meta.personalize(*test["r11"])


def test_a_fitted_search_is_evaluated_by_its_best_estimator_and_a_pipeline_refused_early():
    # Both failed inside a joblib job: "'GridSearchCV' object has no attribute
    # 'personalize'", where personalized_srocc took the search's best estimator.
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn_piaa import MetaAestheticRegressor, TaskSet
    rng = np.random.RandomState(0)
    X = rng.randn(160, 5).astype(np.float32)
    y = np.clip(np.round(3 + X[:, 0] + 0.5 * rng.randn(160)), 1, 5)
    groups = np.repeat(np.arange(8), 20)
    params = dict(backbone=None, hidden_sizes=(8,), n_iterations=2, support_size=8,
                  query_size=4, finetune_epochs=2, random_state=0, score_range=(1, 5))
    train, test = groups < 6, TaskSet.from_arrays(X[groups >= 6], y[groups >= 6],
                                                 groups[groups >= 6])
    search = GridSearchCV(MetaAestheticRegressor(**params), {"inner_steps": [1, 2]}, cv=2)
    search.fit(X[train], y[train], groups=groups[train])
    got = evaluate_personalization(search, test, n_support=5, n_repeats=2, random_state=0)
    want = evaluate_personalization(search.best_estimator_, test, n_support=5, n_repeats=2,
                                    random_state=0)
    np.testing.assert_array_equal(got.table, want.table)
    pipe = make_pipeline(StandardScaler(), MetaAestheticRegressor(**params))
    pipe.fit(X[train], y[train], metaaestheticregressor__groups=groups[train])
    with pytest.raises(TypeError, match="a Pipeline has none. For a Pipeline, pass its last"):
        evaluate_personalization(pipe, test, n_support=5, n_repeats=2)


def test_the_printed_columns_stay_aligned_with_long_cells():
    # "nan ± nan (n=0, 2 undefined dropped)" pushed the personalized column out of line
    from sklearn_piaa import PersonalizationResult, aggregate_srocc

    table = np.zeros(0, dtype=[("n_support", int), ("n_query", int), ("srocc_prior", float),
                               ("srocc_personalized", float)])
    long, short = aggregate_srocc([np.nan, np.nan]), aggregate_srocc([0.5, 0.6])
    result = PersonalizationResult(table, {10: {"prior": long, "personalized": short},
                                           100: {"prior": short, "personalized": short}})
    lines = str(result).splitlines()
    starts = {line.rindex(str(short)) for line in lines[1:3]}
    assert len(starts) == 1 and lines[0].index("personalized") in starts


class _LoggedPool(torch.nn.Module):
    """A backbone that notes each forward pass's process and images in a file: worker
    processes cannot count in the test's memory."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def forward(self, x):
        import threading

        with open(self.log, "a") as fh:
            main = threading.current_thread() is threading.main_thread()
            fh.write(f"{os.getpid()} {len(x)} {int(main)}\n")
        return x.mean(dim=(2, 3))


def _logged_images_and_prior(tmp_path, n_images, rng):
    """``n_images`` small PNG paths, the log file of :class:`_LoggedPool`, and an
    unfitted tiny prior whose backbone writes each forward pass to that log."""
    from PIL import Image

    from sklearn_piaa.nn import Backbone

    paths = []
    for i in range(n_images):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray((rng.rand(12, 12, 3) * 255).astype(np.uint8)).save(paths[-1])
    log = tmp_path / "forward.log"
    backbone = Backbone(_LoggedPool(str(log)), out_features=3, input_size=16, name="logged")
    meta = MetaAestheticRegressor(backbone=backbone, hidden_sizes=(4,), n_iterations=2,
                                  support_size=4, query_size=2, finetune_epochs=2,
                                  random_state=0)
    return paths, log, meta


def test_worker_processes_embed_no_image_again(tmp_path):
    # Each job's copy of the prior came without the embeddings held in memory: each
    # worker embedded every image of each of its chunks again (12 raters of the same
    # 60 images, from the command line: 360 embedded for 60), which made n_jobs=2
    # slower than n_jobs=1.
    rng = np.random.RandomState(0)
    paths, log, meta = _logged_images_and_prior(tmp_path, 16, rng)
    meta.fit(paths[:8] * 2, rng.randint(1, 6, 16).astype(float),
             groups=np.repeat(["a", "b"], 8))
    log.unlink()
    raters = [f"t{r}" for r in range(8)]  # 8 chunks of one rater for 2 workers
    test = TaskSet.from_arrays(paths * len(raters),
                               rng.randint(1, 6, 16 * len(raters)).astype(float),
                               np.repeat(raters, 16))
    parallel = evaluate_personalization(meta, test, n_support=5, n_repeats=2,
                                        random_state=0, n_jobs=2)
    passes = np.loadtxt(log, dtype=np.int64, ndmin=2)
    assert set(passes[:, 0]) == {os.getpid()}  # no worker ran the backbone
    assert passes[:, 1].sum() == 8  # the images fit had not seen, each once
    alone = evaluate_personalization(meta, test, n_support=5, n_repeats=2, random_state=0)
    np.testing.assert_array_equal(parallel.table, alone.table)
    # a memo_size below the images' count: the workers (and this process, between
    # chunks) forgot what they were given and embedded it again
    meta.input_._memory.clear()
    meta.input_.memo_size = 3
    log.unlink()
    small = evaluate_personalization(meta, test, n_support=5, n_repeats=2, random_state=0,
                                     n_jobs=2)
    passes = np.loadtxt(log, dtype=np.int64, ndmin=2)
    assert set(passes[:, 0]) == {os.getpid()} and passes[:, 1].sum() == 16
    np.testing.assert_array_equal(small.table, alone.table)
    # the bound held afterwards, the memo cut back to it (it kept all 16)
    assert meta.input_.memo_size == 3 and len(meta.input_._memory) == 3


def test_a_workers_warning_that_cannot_be_rebuilt_travels_as_text():
    # the warning objects went back with the results: one whose class takes keywords
    # (as scikit-learn's InconsistentVersionWarning) failed to unpickle in the caller,
    # and the whole evaluation was lost
    import warnings

    from sklearn_piaa.evaluation import _portable

    class KeywordWarning(UserWarning):
        def __init__(self, *, size):
            super().__init__(f"only {size} images")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn(KeywordWarning(size=5))
        warnings.warn("plain", PIAAWarning)
    (text, category, *_), plain = [_portable(w) for w in caught]
    assert (text, category) == ("KeywordWarning: only 5 images", UserWarning)
    assert plain[:2] == ("plain", PIAAWarning)


def test_overlapping_evaluations_leave_the_shared_memo_bound_as_set():
    # each evaluation raised the bound every embedder of the backbone shares and put
    # back the value it read: a second one started meanwhile read the first's raise
    # and left it for good
    from sklearn_piaa._features import ImageEmbedder
    from sklearn_piaa.nn import load_backbone

    torch.manual_seed(0)
    embedder = ImageEmbedder(load_backbone("tiny_cnn"), "cpu")
    embedder.memo_size = 3
    rows = {f"k{i}": np.zeros(embedder.out_features, np.float32) for i in range(30)}
    first, second = embedder.holding(10), embedder.holding(20)
    first.__enter__()
    second.__enter__()
    assert embedder.memo_size == 3
    embedder.remember(rows)
    assert len(embedder._memory) == 20
    first.__exit__(None, None, None)
    assert len(embedder._memory) == 20  # the second still holds them
    second.__exit__(None, None, None)
    assert embedder.memo_size == 3 and len(embedder._memory) == 3
    with pytest.raises(KeyboardInterrupt):  # a hold that raised is cut back too
        with embedder.holding(20):
            embedder.remember(rows)
            raise KeyboardInterrupt
    assert len(embedder._memory) == 3


def test_images_are_embedded_in_the_main_thread_before_the_jobs_start(tmp_path):
    # Embedded lazily as joblib took each chunk, the later chunks' images were embedded
    # in joblib's callback thread, holding up the results, out of Ctrl-C's reach.
    rng = np.random.RandomState(0)
    raters = [f"t{r}" for r in range(8)]  # 8 chunks of one rater for 2 workers
    # images of its own for each rater
    paths, log, meta = _logged_images_and_prior(tmp_path, 16 * len(raters), rng)
    meta.fit(paths[:16], np.tile(np.arange(1.0, 6.0), 4)[:16], groups=np.repeat(["a", "b"], 8))
    log.unlink()
    test = TaskSet.from_arrays(paths, rng.randint(1, 6, len(paths)).astype(float),
                               np.repeat(raters, 16))
    evaluate_personalization(meta, test, n_support=5, n_repeats=1, random_state=0, n_jobs=2)
    passes = np.loadtxt(log, dtype=np.int64, ndmin=2)
    assert set(passes[:, 0]) == {os.getpid()} and passes[:, 2].all()
    assert passes[:, 1].sum() == len(paths) - 16  # each image fit had not seen, once


def test_undefined_srocc_names_the_raters_and_the_cause():
    # "undefined SROCC ... (constant ratings or predictions ...) in 2 of 6 draws" named
    # neither the rater nor which of the two it was.
    from sklearn_piaa import ConsensusRidgeRegressor, UndefinedSROCCWarning
    rng = np.random.RandomState(0)
    F = rng.randn(60, 5)
    y = np.clip(np.round(3 + F[:, 0]), 1, 5)
    train = TaskSet.from_mapping({r: (F[i * 10:(i + 2) * 10], y[i * 10:(i + 2) * 10])
                                  for i, r in enumerate("abc")})
    prior = ConsensusRidgeRegressor().fit(train)
    test = TaskSet.from_mapping({"same": (F[40:50], np.full(10, 3.0)),
                                 "w": (F[50:60], y[50:60])})
    with pytest.warns(UndefinedSROCCWarning, match=r"in 2 of 4 draws \(prior\), 2 of 4 draws "
                                                   r"\(personalized\), of 1 rater\(s\): 'same' "
                                                   r"\(constant ratings\); left out"):
        evaluate_personalization(prior, test, n_support=5, n_repeats=2, random_state=0)
    prior.generic_.coef_[:] = 0.0  # a prior that scores every image alike
    with pytest.warns(UndefinedSROCCWarning, match=r"of 1 rater\(s\): 'w' \(constant "
                                                   r"predictions of the prior model\); "):
        evaluate_personalization(prior, test.subset(["w"]), n_support=5, n_repeats=2,
                                 random_state=0)


def test_the_personalized_scorer_scores_the_protocols_draws(fitted):
    # The scorer drew every support set from one stream over all raters, the protocol
    # each (rater, repeat) from its own seed: the same random_state scored other draws
    # (0.1705 against the protocol's 0.1545 in an audit), and a rater's draws depended
    # on the raters beside it in the fold.
    from sklearn_piaa import PersonalizedSROCCScorer
    from sklearn_piaa.metrics import personalized_srocc
    meta, test = fitted
    res = evaluate_personalization(meta, test, n_support=5, n_repeats=2, random_state=0)
    raters, scores = personalized_srocc(meta, test.X, test.y, test.groups, n_support=5,
                                        n_repeats=2, random_state=0)
    assert raters == list(res.table["rater"][::2]) == test.raters
    assert res.table["repeat"].tolist() == [0, 1] * 3
    np.testing.assert_array_equal(scores, res.table["srocc_personalized"].reshape(3, 2))
    scorer = PersonalizedSROCCScorer(n_support=5, n_repeats=2, random_state=0)
    assert scorer(meta, test.X, test.y, test.groups) == pytest.approx(
        res.summary[5]["personalized"].mean, rel=1e-12)
    alone = test.subset(["r10"])
    _, one = personalized_srocc(meta, alone.X, alone.y, alone.groups, n_support=5,
                                n_repeats=2, random_state=0)
    np.testing.assert_array_equal(one[0], scores[raters.index("r10")])
    # A RandomState instance gives each one number, as evaluate_personalization takes
    _, drawn = personalized_srocc(meta, test.X, test.y, test.groups, n_support=5,
                                  n_repeats=2, random_state=np.random.RandomState(7))
    table = evaluate_personalization(meta, test, n_support=5, n_repeats=2,
                                     random_state=np.random.RandomState(7)).table
    np.testing.assert_array_equal(drawn, table["srocc_personalized"].reshape(3, 2))
    assert not np.array_equal(drawn, scores)


@pytest.mark.filterwarnings("ignore:.*scored on fewer than 10 query images")
def test_the_scorer_leaves_unreadable_images_out_as_the_protocol_does(image_files, tmp_path):
    # The scorer drew over every row, unreadable images too (a model with
    # on_error="skip" predicts NaN for them): a draw with one among its query images was
    # undefined, where the protocol draws over the readable images only.
    from sklearn_piaa.metrics import personalized_srocc
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2,
                                  support_size=4, query_size=2, finetune_epochs=2,
                                  batch_size=4, random_state=0, on_error="skip").fit(
        image_files * 2, np.r_[y, y[::-1]], groups=np.repeat(["a", "b"], 12))
    X = [*image_files, str(tmp_path / "gone.png")] * 2
    scores, groups = np.r_[y, 3.0, y[::-1], 3.0], np.repeat(["c", "d"], 13)
    with pytest.warns(PIAAWarning, match="gone.png"):
        table = evaluate_personalization(meta, TaskSet.from_arrays(X, scores, groups),
                                         n_support=5, n_repeats=2, random_state=0).table
    with pytest.warns(PIAAWarning, match="gone.png"):
        _, drawn = personalized_srocc(meta, X, scores, groups, n_support=5, n_repeats=2,
                                      random_state=0)
    assert (table["n_query"] == 12 - 5).all()
    np.testing.assert_array_equal(drawn, table["srocc_personalized"].reshape(2, 2))
    # a rater with just enough images, one of them unreadable, has too few left: named
    # with that cause, not as an unexplained undefined SROCC
    from sklearn_piaa import PersonalizedSROCCScorer, UndefinedSROCCWarning
    X = [*image_files[:6], str(tmp_path / "gone.png"), *image_files]
    scores, groups = np.r_[y[:6], 3.0, y], np.repeat(["c", "d"], [7, 12])
    with pytest.warns(PIAAWarning) as record:
        value = PersonalizedSROCCScorer(n_support=5)(meta, X, scores, groups=groups)
    _assert_warned(record, PIAAWarning, "gone.png")
    _assert_warned(record, UndefinedSROCCWarning, r"'c' \(6 readable images, fewer than 7")
    assert np.isfinite(value)


def _prior_and_a_rater_with_unreadable_images(image_files, tmp_path):
    """A tiny_cnn prior skipping unreadable images, and raters 'c' (8 images, 2 of them
    missing files: 6 readable) and 'd' (12)."""
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2,
                                  support_size=4, query_size=2, finetune_epochs=2,
                                  batch_size=4, random_state=0, on_error="skip").fit(
        image_files, y, groups=np.repeat(["a", "b"], 6))
    gone = [str(tmp_path / f"gone{i}.png") for i in range(2)]
    X = [*image_files[:6], *gone, *image_files]
    scores, groups = np.r_[y[:6], 3.0, 3.0, y], np.repeat(["c", "d"], [8, 12])
    return meta, TaskSet.from_arrays(X, scores, groups)


@pytest.mark.filterwarnings("ignore:.*scored on fewer than 10 query images")
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_rater_left_too_few_readable_images_is_skipped_by_name(image_files, tmp_path, n_jobs):
    # Counted with its unreadable images, rater 'c' passed the n_support + 2 check; the
    # images left out then could not fill the draw, and 'c' vanished from the table and
    # the means without a word (a lone such rater: "nan ± nan (n=0)").
    from sklearn_piaa._warnings import SkippedWarning
    meta, tasks = _prior_and_a_rater_with_unreadable_images(image_files, tmp_path)
    with pytest.warns(PIAAWarning) as record:
        result = evaluate_personalization(meta, tasks, n_support=(4, 6), n_repeats=2,
                                          random_state=0, n_jobs=n_jobs)
    _assert_warned(record, SkippedWarning,
                   r"^1 rater\(s\) have fewer than 8 readable images, their unreadable "
                   r"ones left out, and are skipped at n_support=6: 'c' \(6 of 8 readable\)")
    assert result.skipped == {4: [], 6: [("c", 6)]}
    assert sorted(set(result.table["rater"][result.table["n_support"] == 6])) == ["d"]
    assert result.summary[6]["personalized"].n == 1
    assert "skipped at 6 images (too few images): 'c' (6)" in str(result)
    # its query images as scored, not as counted with the unreadable ones ('c' (2 at
    # n_support=6), a size it was skipped at)
    _assert_warned(record, PIAAWarning, r"^2 rater\(s\) are scored on fewer than 10 query "
                                        r"images: 'c' \(2 at n_support=4\), 'd' \(6 at "
                                        r"n_support=6\)\.")
    # compare_support_strategies left such a rater out of its tables without a word
    from sklearn_piaa import SupportSelector, compare_support_strategies
    with pytest.warns(PIAAWarning) as record:
        results = compare_support_strategies(
            meta, tasks, [SupportSelector("kcenter")], n_support=(2, 4), n_query=4,
            n_repeats=1, random_state=0, n_jobs=n_jobs)
    _assert_warned(record, SkippedWarning,
                   r"^1 rater\(s\) have too few readable images for a query set of 4 and a "
                   r"pool of 4, their unreadable ones left out, and are skipped at "
                   r"n_support=4: 'c' \(6 of 8 readable\)")
    for found in results.values():
        assert found.skipped == {2: [], 4: [("c", 6)]}
        assert sorted(set(found.table["rater"][found.table["n_support"] == 2])) == ["c", "d"]
    # 'c' alone: nothing to score at any size, said as for too few images
    with pytest.warns(PIAAWarning), pytest.raises(
            ValueError, match=r"no test rater has enough readable images for any n_support "
                              r"in \[6\] .*the most any has: 6"):
        evaluate_personalization(meta, tasks.subset(["c"]), n_support=6, n_repeats=1)


@pytest.mark.filterwarnings("ignore:.*scored on fewer than 10 query images")
def test_the_scorer_finds_unreadable_images_without_predicting_them(image_files, tmp_path,
                                                                     monkeypatch):
    # It predicted every image of every rater with the prior to find the unreadable
    # ones, and used none of those scores: a forward pass per image of a whole network.
    from sklearn_piaa import PersonalizedSROCCScorer, UndefinedSROCCWarning
    y = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2)
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=1,
                                  support_size=4, query_size=2, finetune_epochs=1,
                                  batch_size=4, random_state=0, on_error="skip",
                                  train_backbone=True).fit(
        image_files, y, groups=np.repeat(["a", "b"], 6))
    gone = [str(tmp_path / f"gone{i}.png") for i in range(7)]
    X = [*image_files, gone[0], *gone]
    scores, groups = np.r_[y, 3.0, np.ones(7)], np.repeat(["c", "d"], [13, 7])

    def refuse(*args, **kwargs):
        raise AssertionError("the prior predicted")

    monkeypatch.setattr(MetaAestheticRegressor, "predict", refuse)
    # 'd' has no readable image: named as too few, not a failure
    with pytest.warns(PIAAWarning) as record:
        value = PersonalizedSROCCScorer(n_support=5)(meta, X, scores, groups=groups)
    _assert_warned(record, PIAAWarning, "gone0.png")
    _assert_warned(record, UndefinedSROCCWarning, r"'d' \(0 readable images, fewer than 7")
    assert np.isfinite(value)


def test_parallel_evaluation_embeds_as_the_priors_settings_say(tmp_path):
    # With worker processes the test images are embedded here, first, by the prior's
    # embedder as it was at its last predict: a set_params(cache_dir=None) made since
    # was ignored there, and the images were cached in the old folder.
    rng = np.random.RandomState(0)
    imgs = rng.randint(0, 256, (40, 24, 24, 3)).astype(np.uint8)
    y = 1 + 4 * rng.rand(40)
    groups = np.repeat(["a", "b", "c", "d"], 10)
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(8,), n_iterations=2,
                                  support_size=4, query_size=2, random_state=0,
                                  cache_dir=tmp_path / "cache").fit(
        imgs[:20], y[:20], groups=groups[:20])
    before = len(list((tmp_path / "cache").rglob("*.npy")))
    meta.set_params(cache_dir=None)
    test = TaskSet.from_arrays(imgs[20:], y[20:], groups[20:])
    evaluate_personalization(meta, test, n_support=4, n_repeats=1, random_state=0, n_jobs=2)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == before


def _protocols(prior):
    from sklearn_piaa import SupportSelector, compare_support_strategies

    return {"evaluate_personalization": lambda test, **kw: evaluate_personalization(
                prior, test, n_support=(5,), n_repeats=1, **kw),
            "compare_support_strategies": lambda test, **kw: compare_support_strategies(
                prior, test, [SupportSelector("kcenter")], n_support=(5,), n_query=20,
                n_repeats=1, **kw)}


@pytest.mark.parametrize("protocol", ["evaluate_personalization", "compare_support_strategies"])
def test_protocols_check_every_rater_against_the_given_or_the_priors_range_up_front(
        fitted, protocol):
    # compare_support_strategies, and evaluate_personalization given score_range, left
    # the range to personalize: a score outside it failed the draws that put it in a
    # support set only, naming a row there, not the rater; a given range far wider than
    # the scores passed without a word; a rater of another scale was warned of at
    # every draw
    meta, test = fitted
    run = _protocols(meta)[protocol]
    low, high = meta.score_range_
    bad = test.y.copy()
    bad[test.indices[test.raters[0]][3]] = high + 1
    bad = TaskSet.from_arrays(test.X, bad, test.groups)
    for seed in range(3):
        with pytest.raises(ValueError, match=r"1 test rater\(s\) .*output range.*'r09' \(1 of"):
            run(bad, random_state=seed)
        with pytest.raises(ValueError, match=rf"1 test rater\(s\) have scores outside the "
                                             rf"given score_range=\({low:g}, {high:g}\).*"
                                             rf"'r09' \(1 of 80"):
            run(bad, random_state=seed, score_range=(low, high))
    with pytest.warns(PIAAWarning, match=r"the test raters' scores \(.*\) span .* of "
                                         r"score_range=\(0, 500\)"):
        run(test, score_range=(0, 500))
    odd = test.y.copy()
    rows = test.groups == "r11"
    odd[rows] = low + (odd[rows] - low) * 0.1  # in the lowest fifth of the prior's range
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run(TaskSet.from_arrays(test.X, odd, test.groups))
    scale = [str(w.message) for w in record if "another scale" in str(w.message)]
    assert len(scale) == 1 and "'r11'" in scale[0], scale


@pytest.mark.parametrize("protocol", ["evaluate_personalization", "compare_support_strategies"])
def test_images_for_a_features_prior_are_refused_before_any_word_on_the_raters(
        fitted, protocol):
    # the raters were warned of as seen in training (and their images as repeated)
    # before personalize refused the images, when no rater was to be scored at all
    meta, _ = fitted
    paths = np.array([f"photo{i % 15}.jpg" for i in range(40)], dtype=object)
    tasks = TaskSet.from_arrays(paths, np.tile([1.0, 2, 3, 4, 5], 8),
                                np.repeat(["r00", "r01"], 20))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"fitted on precomputed features \(backbone=None\)"
                                             r", so X must be a 2-D feature array; got images"):
            _protocols(meta)[protocol](tasks)


def test_worker_processes_follow_the_callers_warning_filters(image_files, tmp_path):
    # joblib's own Parallel: an "error" (or "ignore") filter for PIAAWarning held with
    # n_jobs=1 only; the workers printed the warning and the run went on
    import warnings

    from sklearn_piaa import PIAAWarning

    rng = np.random.RandomState(0)
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(4,), n_iterations=2,
                                  support_size=4, query_size=2, finetune_epochs=1,
                                  on_error="skip", random_state=0)
    meta.fit(image_files * 2, rng.randint(1, 6, 24).astype(float),
             groups=np.repeat(["a", "b"], 12))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    X = [str(bad), *image_files[1:]] + image_files
    test = TaskSet.from_arrays(X, rng.randint(1, 6, 24).astype(float), np.repeat(["c", "d"], 12))
    for n_jobs in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIAAWarning)
            with pytest.raises(PIAAWarning, match="could not be read"):
                evaluate_personalization(meta, test, n_support=5, n_repeats=1, n_jobs=n_jobs)
    # and the warnings they let through reach the caller: a collapse in every draw's
    # fine-tuning was printed on the workers' stderr, unseen by a caller recording
    meta.set_params(finetune_lr=1e8, on_error="raise")
    collapsed = []
    for n_jobs in (1, 2):
        with pytest.warns(PIAAWarning) as record:
            evaluate_personalization(meta, test.subset(["d"]), n_support=5, n_repeats=2,
                                     n_jobs=n_jobs)
        # (which draws collapse, and how, differs with the workers' rounding at lr 1e8)
        collapsed.append([w for w in record if "fine-tuning collapsed" in str(w.message)])
    assert all(collapsed)


@pytest.fixture
def ridge_and_held_out(ratings):
    X, y, groups = ratings
    train = ~np.isin(groups, ["r09", "r10", "r11"])
    prior = ConsensusRidgeRegressor().fit(
        TaskSet.from_arrays(X[train], y[train], groups[train]))
    return prior, TaskSet.from_arrays(X[~train], y[~train], groups[~train])


def test_summary_at_each_size_is_over_raters_of_their_mean_at_that_size(ridge_and_held_out):
    prior, test = ridge_and_held_out
    res = evaluate_personalization(prior, test, n_support=(5, 30), n_repeats=3,
                                   random_state=0)
    t = res.table
    for k in (5, 30):
        for name in ("prior", "personalized"):
            means = [np.nanmean(t[f"srocc_{name}"][(t["n_support"] == k) & (t["rater"] == r)])
                     for r in test.raters]
            s = res.summary[k][name]
            assert s.n == 3 and s.n_dropped == 0
            assert s.mean == pytest.approx(np.mean(means))
            assert s.std == pytest.approx(np.std(means))
    assert res.summary[5]["personalized"].mean != res.summary[30]["personalized"].mean


def test_ten_query_images_are_not_warned_about(ridge_and_held_out):
    prior, test = ridge_and_held_out
    small = TaskSet.from_mapping({r: (test[r][0][:15], test[r][1][:15]) for r in test.raters})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate_personalization(prior, small, n_support=5, n_repeats=1, random_state=0)
    assert not [w for w in caught if "query images" in str(w.message)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate_personalization(prior, small, n_support=6, n_repeats=1, random_state=0)
    assert [w for w in caught if "fewer than 10 query images" in str(w.message)]


def test_a_rater_left_one_image_beyond_the_support_is_not_scored(image_files, tmp_path):
    # 'c' has 8 images, 2 unreadable: 6 readable. At n_support=5 one query image would
    # be left (SROCC undefined): it is skipped, and no row of it is in the table.
    meta, tasks = _prior_and_a_rater_with_unreadable_images(image_files, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate_personalization(meta, tasks, n_support=(4, 5), n_repeats=2,
                                          random_state=0)
    assert result.skipped == {4: [], 5: [("c", 6)]}
    at5 = result.table[result.table["n_support"] == 5]
    assert sorted(set(at5["rater"])) == ["d"]
    assert (result.table["n_query"] >= 2).all()
