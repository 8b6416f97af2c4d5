import inspect
import pickle
import re
import warnings

import numpy as np
import pytest
import sklearn
import torch
from conftest import TINY, tiny_baselines
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from skorch.callbacks import EpochScoring
from skorch.dataset import ValidSplit

from sklearn_piaa import (
    ConsensusRidgeRegressor,
    MetaAestheticRegressor,
    PersonalizedNet,
    PersonalizedSROCCScorer,
    PIAAWarning,
    SupportQuerySplit,
    TaskSet,
    TaskVectorRegressor,
    UserGroupKFold,
    personalized_srocc,
    srocc,
    srocc_scorer,
)
from sklearn_piaa.datasets import make_aesthetic_benchmark


def _prior_state(meta):
    return {k: v.clone() for k, v in meta.prior_net_.module_.state_dict().items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_fit_taskset_equals_fit_arrays(ratings, tiny_params):
    X, y, groups = ratings
    a = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    b = MetaAestheticRegressor(**tiny_params).fit(TaskSet.from_arrays(X, y, groups))
    mapping = {g: (X[groups == g], y[groups == g]) for g in np.unique(groups)}
    c = MetaAestheticRegressor(**tiny_params).fit(mapping)
    _assert_same_state(_prior_state(a), _prior_state(b))
    _assert_same_state(_prior_state(a), _prior_state(c))
    d = MetaAestheticRegressor(**{**tiny_params, "random_state": 1}).fit(X, y, groups=groups)
    assert not np.allclose(a.predict(X[:20]), d.predict(X[:20]))


def test_meta_training_changes_and_keeps_scale(ratings, tiny_params):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**{**tiny_params, "n_iterations": 0}).fit(X, y, groups=groups)
    before = meta.predict(X)
    meta = MetaAestheticRegressor(**{**tiny_params, "n_iterations": 60, "outer_lr": 0.5}).fit(
        X, y, groups=groups)
    after = meta.predict(X)
    assert meta.history_.shape == (60,)
    assert not np.allclose(before, after)
    assert after.min() >= y.min() and after.max() <= y.max()
    # The prior learns the shared taste: zero-shot SROCC over all ratings is positive.
    assert srocc(y, after) > 0.2


def test_personalize_returns_fitted_skorch_net_and_keeps_prior(ratings, tiny_params):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    state = _prior_state(meta)
    zero_shot = meta.predict(X[:30])
    net = meta.personalize(X[:15], y[:15])
    assert isinstance(net, PersonalizedNet)
    assert len(net.history) == tiny_params["finetune_epochs"]
    assert net.predict(X[:30]).shape == (30,)
    assert not np.allclose(net.predict(X[:30]), zero_shot)
    _assert_same_state(state, _prior_state(meta))
    np.testing.assert_array_equal(meta.predict(X[:30]), zero_shot)
    # Refitting starts from the prior again, so the same seed gives the same net.
    p1 = net.predict(X[:30])
    with torch.random.fork_rng():
        torch.manual_seed(123)
        net.fit(X[:15], y[:15])
    assert net.predict(X[:30]).shape == (30,)
    again = meta.personalize(X[:15], y[:15])
    np.testing.assert_allclose(again.predict(X[:30]), p1, rtol=1e-6)


@pytest.mark.parametrize("n, params, overrides, batches, lr", [
    # Up to 40 images: batches of 10 at 3e-5, one step per 10 images.
    (10, {}, {}, 1, 3e-5),
    (25, {}, {}, 3, 3e-5),
    (40, {}, {}, 4, 3e-5),
    # Beyond: a quarter of the images per batch, lr by the square root of the batch.
    (100, {}, {}, 4, 3e-5 * np.sqrt(2.5)),
    (101, {}, {}, 4, 3e-5 * np.sqrt(2.6)),
    # The rule follows a batch size given either way, capped at the rater's images.
    (100, {"finetune_batch_size": 50}, {}, 2, 3e-5 * np.sqrt(5)),
    (60, {"finetune_batch_size": 1000}, {}, 1, 3e-5 * np.sqrt(6)),
    (60, {}, {"batch_size": -1}, 1, 3e-5 * np.sqrt(6)),
    (60, {}, {"batch_size": 5}, 12, 3e-5),
    # A learning rate given is used as is.
    (100, {"finetune_lr": 1e-4}, {}, 4, 1e-4),
    (100, {}, {"lr": 2e-4, "batch_size": 100}, 1, 2e-4),
])
def test_head_only_finetuning_defaults(ratings, tiny_params, n, params, overrides, batches,
                                       lr):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**{**tiny_params, "finetune_epochs": 2, **params})
    meta.fit(X, y, groups=groups)
    net = meta.personalize(X[:n], y[:n], **overrides)
    assert len(net.history[-1]["batches"]) == batches
    assert net.optimizer_.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-12)
    # A prior's defaults follow how it was fitted, not a later set_params.
    head_only = {k: meta._finetune_params(n)[k] for k in ("lr", "batch_size")}
    meta.set_params(train_backbone=True)
    assert {k: meta._finetune_params(n)[k] for k in ("lr", "batch_size")} == head_only
    # The whole-network defaults (the paper's) do not depend on the rater's size.
    whole = MetaAestheticRegressor(**{**tiny_params, **params, "backbone": "tiny_cnn",
                                      "train_backbone": True})
    assert {k: whole._finetune_params(n)[k] for k in ("lr", "batch_size")} == {
        "lr": 1e-5 if "finetune_lr" not in params else params["finetune_lr"],
        "batch_size": params.get("finetune_batch_size", -1)}


def test_skorch_features_work_on_personalized_net(ratings, tiny_params, tmp_path):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    cb = EpochScoring(lambda net, X_, y_: srocc(y_, net.predict(X_)), on_train=True,
                      name="train_srocc", lower_is_better=False)
    net = meta.personalize(X[:20], y[:20], callbacks=[cb], max_epochs=3)
    assert len(net.history) == 3 and "train_srocc" in net.history[-1]
    net.save_params(f_params=tmp_path / "p.pt")
    other = meta.personalize(X[20:40], y[20:40])
    assert not np.allclose(other.predict(X[:10]), net.predict(X[:10]))
    other.load_params(f_params=tmp_path / "p.pt")
    np.testing.assert_allclose(other.predict(X[:10]), net.predict(X[:10]), rtol=1e-6)
    net.set_params(optimizer__lr=0.5)
    assert net.optimizer_.param_groups[0]["lr"] == 0.5


def test_predict_returns_the_dtype_its_docstring_names(ratings, tiny_params):
    # The docs said "ndarray": float32 from the networks, float64 from the baselines.
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    prior = ConsensusRidgeRegressor().fit(X, y, groups=groups)
    models = [meta, meta.personalize(X[:20], y[:20]),
              meta.personalize(X[:20], y[:20], mixed_precision=True),
              prior, prior.personalize(X[:20], y[:20])]
    for model, dtype in zip(models, ["float32"] * 3 + ["float64"] * 2):
        assert model.predict(X[:5]).dtype == dtype
        returns = inspect.getdoc(type(model).predict).split("Returns\n-------\n")[1]
        assert returns.startswith(f"ndarray of shape (n_samples,), {dtype}\n")


def test_personalized_net_prints_its_log_only_when_asked(ratings, tiny_params, capsys):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    meta.personalize(X[:20], y[:20], max_epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    meta.personalize(X[:20], y[:20], max_epochs=2, verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert "train_loss" in lines[0] and len(lines) == 4  # header, rule, two epochs
    logged = []
    meta.personalize(X[:20], y[:20], max_epochs=2, verbose=0,
                     callbacks__print_log__sink=logged.append)
    assert len(logged) == 4 and capsys.readouterr().out == ""


def test_clone_and_pickle_round_trips(ratings, tiny_params):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    unfitted = clone(meta)
    assert unfitted.get_params() == meta.get_params()
    with pytest.raises(NotFittedError):
        unfitted.predict(X)
    loaded = pickle.loads(pickle.dumps(meta))
    np.testing.assert_array_equal(loaded.predict(X[:25]), meta.predict(X[:25]))
    net = meta.personalize(X[:15], y[:15])
    net2 = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(net2.predict(X[:25]), net.predict(X[:25]))
    # A clone of a personalized net is unfitted and re-fits from the prior.
    refit = clone(net)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        refit.fit(X[:15], y[:15])
    assert refit.predict(X[:25]).shape == (25,)


def test_cross_val_score_zero_shot(ratings, tiny_params):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params)
    scores = cross_val_score(meta, X, y, groups=groups, params={"groups": groups},
                             cv=UserGroupKFold(3, random_state=0), scoring=srocc_scorer)
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_fit_without_groups_warns(ratings, tiny_params):
    X, y, groups = ratings
    groups = np.unique(groups, return_inverse=True)[1]  # raters 0, 1, ...
    with pytest.warns(PIAAWarning, match="no groups"):
        meta = MetaAestheticRegressor(**tiny_params).fit(X[groups != 0], y[groups != 0])
    # its one rater was 0: a held-out rater 0 was reported as a training rater
    assert meta.raters_ == ["(all ratings: fit without groups)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        personalized_srocc(meta, X[groups == 0], y[groups == 0], groups[groups == 0])


def test_grid_search_with_personalized_scorer_and_routing(ratings, tiny_params):
    X, y, groups = ratings
    scorer = PersonalizedSROCCScorer(n_support=10)
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(MetaAestheticRegressor(**tiny_params),
                              {"inner_lr": [1e-3, 1e-2], "inner_steps": [1, 3]},
                              cv=UserGroupKFold(3, random_state=0), scoring=scorer)
        search.fit(X, y, groups=groups)
        scores = cross_val_score(MetaAestheticRegressor(**tiny_params), X, y,
                                 params={"groups": groups}, cv=UserGroupKFold(3),
                                 scoring=scorer)
    assert search.cv_results_["mean_test_score"].shape == (4,)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["inner_steps"] in (1, 3)
    assert np.isfinite(scores).all()


def test_personalized_scorer_scores_a_search_and_a_pipeline(ratings, tiny_params):
    # Nested cross-validation hands the scorer a fitted search, and a pipeline a
    # Pipeline: neither has personalize, and every outer score was NaN.
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y, groups = ratings
    train = ~np.isin(groups, ["r09", "r10", "r11"])
    Xt, yt, gt = X[~train], y[~train], groups[~train]
    scorer = PersonalizedSROCCScorer(n_support=10)
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(MetaAestheticRegressor(**tiny_params), {"inner_lr": [1e-3, 1e-2]},
                              cv=UserGroupKFold(2, random_state=0), scoring=scorer)
        search.fit(X[train], y[train], groups=groups[train])
    assert scorer(search, Xt, yt, gt) == scorer(search.best_estimator_, Xt, yt, gt)
    pipe = make_pipeline(StandardScaler(), MetaAestheticRegressor(**tiny_params))
    pipe.fit(X[train], y[train], metaaestheticregressor__groups=groups[train])
    assert np.isfinite(scorer(pipe, Xt, yt, gt))
    assert scorer(pipe, Xt, yt, gt) == scorer(pipe[-1], pipe[0].transform(Xt), yt, gt)
    with pytest.raises(TypeError, match="a Ridge has no personalize"):
        scorer(Ridge().fit(X, y), Xt, yt, gt)
    for bad in (dict(n_support=-3), dict(n_support=10.0), dict(n_repeats=0)):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be a positive integer"):
            PersonalizedSROCCScorer(**bad)(pipe, Xt, yt, gt)


def test_personalized_scorer_on_a_table_through_a_pipeline_and_on_seen_raters(ratings,
                                                                              tiny_params):
    # the scorer gave a pipeline plain arrays: a step selecting columns by name failed on
    # every fold (NaN scores); and it scored training raters without a word
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y, groups = ratings
    columns = [f"c{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=columns)
    # a column of text beside them, which the pipeline leaves out: the scorer's check
    # for repeated images failed on it (np.unique of an object table)
    df["image"] = [f"img{i % 50}.jpg" for i in range(len(df))]
    pipe = make_pipeline(ColumnTransformer([("s", StandardScaler(), columns)]),
                         MetaAestheticRegressor(**tiny_params))
    scorer = PersonalizedSROCCScorer(n_support=10)
    with sklearn.config_context(enable_metadata_routing=True), warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names" either
        scores = cross_val_score(pipe, df, y, params={"groups": groups},
                                 cv=UserGroupKFold(3, random_state=0), scoring=scorer,
                                 error_score="raise")
    assert np.isfinite(scores).all()
    with sklearn.config_context(enable_metadata_routing=True):
        with pytest.warns(PIAAWarning, match="were among the prior's 12 training"):
            cross_val_score(MetaAestheticRegressor(**tiny_params), X, y,
                            params={"groups": groups}, scoring=scorer,
                            cv=KFold(3, shuffle=True, random_state=0))


def test_personalized_scorer_needs_groups(ratings, tiny_params):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="metadata routing"):
        PersonalizedSROCCScorer()(meta, X, y)
    small = groups.astype(object)
    small[:] = "all"  # no training rater's name: not a seen rater
    small[:5] = "tiny"
    with pytest.raises(ValueError, match="'tiny' \\(5\\)"):
        PersonalizedSROCCScorer(n_support=10)(meta, X, y, groups=small)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        value = PersonalizedSROCCScorer(n_support=10, too_few="skip")(meta, X, y, groups=small)
    assert np.isfinite(value)
    # the rater left out is named; 'all' is every rater of the fixture at once, so it
    # rated images several times; no other warning
    messages = sorted(str(w.message) for w in record if issubclass(w.category, PIAAWarning))
    assert len(messages) == 2 and "more than once" in messages[1]
    assert re.match(r"1 of 2 rater\(s\) .* skipped: 'tiny' \(5\)", messages[0])


def test_cross_val_score_on_one_rater_with_support_query_split(ratings, tiny_params):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    net = meta.personalize(X[:10], y[:10])
    mask = groups == "r05"
    scores = cross_val_score(net, X[mask], y[mask], cv=SupportQuerySplit(10, 3, random_state=0),
                             scoring=srocc_scorer)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    # The clones' fits are seeded by the net's random_state (they drew from torch's
    # global generator: other scores at every run, and in every worker process).
    assert net.random_state is not None
    torch.manual_seed(123)
    again = cross_val_score(net, X[mask], y[mask], cv=SupportQuerySplit(10, 3, random_state=0),
                            scoring=srocc_scorer, n_jobs=2)
    np.testing.assert_array_equal(again, scores)
    with pytest.raises(ValueError, match="random_state must be a non-negative integer"):
        clone(net).set_params(random_state=np.random.RandomState(0)).fit(X[:10], y[:10])


def test_personalization_improves_on_deviating_builtin_raters():
    data = make_aesthetic_benchmark(n_images=400, n_raters=40, images_per_rater=200,
                                    image_size=16, random_state=0)
    # The generating taste features stand in for a good embedding, which keeps this fast.
    X = data.taste_features[data.image_index].astype(np.float32)
    test_raters = data.rater_ids[np.argsort(data.rater_individuality)[-8:]]
    test = np.isin(data.groups, test_raters)
    # A small head needs a larger fine-tuning rate than the defaults tuned for (1024, 512).
    meta = MetaAestheticRegressor(backbone=None, hidden_sizes=(64, 32), n_iterations=150,
                                  outer_lr=0.1, finetune_lr=1e-4, finetune_epochs=40,
                                  finetune_batch_size=25, random_state=0)
    meta.fit(X[~test], data.y[~test], groups=data.groups[~test])
    prior, personal = [], []
    for r in test_raters:
        Xr, yr = X[data.groups == r], data.y[data.groups == r]
        net = meta.personalize(Xr[:100], yr[:100], random_state=0)
        prior.append(srocc(yr[100:], meta.predict(Xr[100:])))
        personal.append(srocc(yr[100:], net.predict(Xr[100:])))
    assert np.mean(personal) > np.mean(prior) + 0.1, (prior, personal)


def test_bad_input_errors(ratings, tiny_params):
    X, y, groups = ratings
    with pytest.raises(ValueError, match="same length"):
        MetaAestheticRegressor(**tiny_params).fit(X, y[:-1], groups=groups)
    y_nan = y.copy()
    y_nan[3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        MetaAestheticRegressor(**tiny_params).fit(X, y_nan, groups=groups)
    with pytest.raises(ValueError, match="unknown backbone|backbone"):
        MetaAestheticRegressor(**{**tiny_params, "backbone": "vgg99"}).fit(X, y, groups=groups)
    with pytest.raises(NotFittedError):
        MetaAestheticRegressor(**tiny_params).personalize(X[:10], y[:10])
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="8 features"):
        meta.predict(X[:, :5])
    with pytest.raises(ValueError, match="8 features"):
        meta.personalize(X[:10, :5], y[:10])
    with pytest.raises(ValueError, match="10 images but y has 9"):
        meta.personalize(X[:10], y[:9])
    with pytest.raises(ValueError, match="NaN"):
        meta.personalize(X[:3], [1, np.nan, 2])
    with pytest.raises(ValueError, match="score_range"):
        MetaAestheticRegressor(**{**tiny_params, "score_range": (1, 3)}).fit(X, y, groups=groups)


def test_single_image_batches_are_handled(ratings, tiny_params):
    X, y, groups = ratings
    # A 2-image rater gives 1-image support and query sets.
    groups = groups.astype(object)
    groups[:2] = "pair"
    meta = MetaAestheticRegressor(**{**tiny_params, "query_size": 1, "tasks_per_batch": 13})
    meta.fit(X, y, groups=groups)
    # 11 images in batches of 10 leave a last batch of one.
    net = meta.personalize(X[:11], y[:11], batch_size=10)
    assert np.isfinite(net.predict(X[:5])).all()
    with pytest.warns(UserWarning, match="personalize got one rated image: it says nothing"):
        one = meta.personalize(X[:1], y[:1])
    assert np.isfinite(one.predict(X[:5])).all()


def test_personalize_on_another_rating_scale(ratings, tiny_params):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    low, high = meta.score_range_
    y500 = (y[:20] - 1) * 125.0  # the same ratings on a 0-500 slider
    with pytest.raises(ValueError, match="score_range=\\(low, high\\)"):
        meta.personalize(X[:20], y500)
    # Without fine-tuning, the copy is the prior mapped linearly onto the new scale.
    net = meta.personalize(X[:20], y500, score_range=(0, 500), max_epochs=0)
    expected = (meta.predict(X[20:60]) - low) / (high - low) * 500
    np.testing.assert_allclose(net.predict(X[20:60]), expected, rtol=1e-5, atol=1e-3)
    net = meta.personalize(X[:20], y500, score_range=(0, 500))
    pred = net.predict(X[20:60])
    assert pred.min() >= 0 and pred.max() <= 500 and np.ptp(pred) > 5
    assert meta.score_range_ == (low, high)  # the prior keeps its own scale


def test_inputs_are_not_modified(ratings, tiny_params):
    X, y, groups = ratings
    copies = X.copy(), y.copy(), groups.copy()
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    meta.personalize(X[:10], y[:10])
    for a, b in zip((X, y, groups), copies):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("algorithm", ["blg", "maml", "fomaml", "reptile", "merged"])
def test_every_algorithm_meta_trains_and_personalizes(ratings, tiny_params, algorithm):
    X, y, groups = ratings
    base = MetaAestheticRegressor(**{**tiny_params, "n_iterations": 0}).fit(X, y, groups=groups)
    meta = MetaAestheticRegressor(**{**tiny_params, "algorithm": algorithm, "inner_lr": 1e-2,
                                     "outer_lr": 0.5}).fit(X, y, groups=groups)
    assert np.isfinite(meta.history_).all()
    assert not np.allclose(meta.predict(X[:30]), base.predict(X[:30]))
    assert meta.personalize(X[:10], y[:10]).predict(X[:5]).shape == (5,)


def test_baselines_average_and_none(ratings, tiny_params):
    X, y, groups = ratings
    none = MetaAestheticRegressor(**{**tiny_params, "algorithm": "none"}).fit(X, y,
                                                                              groups=groups)
    assert none.history_.shape == (0,)
    fresh = MetaAestheticRegressor(**{**tiny_params, "n_iterations": 0}).fit(X, y,
                                                                            groups=groups)
    np.testing.assert_allclose(none.predict(X[:20]), fresh.predict(X[:20]))
    avg = MetaAestheticRegressor(**{**tiny_params, "algorithm": "average", "n_iterations": 60,
                                    "inner_lr": 1e-2}).fit(X, y, groups=groups)
    # The generic prior learns the consensus: positive SROCC over all ratings.
    assert srocc(y, avg.predict(X)) > 0.2
    assert avg.personalize(X[:10], y[:10]).predict(X[:5]).shape == (5,)


def test_seeded_personalizations_in_threads_equal_sequential_ones(ratings, tiny_params):
    # torch has one global generator: two threads' seeded fine-tunings reseeded and drew
    # from each other's stream (joblib's threading backend, a thread pool).
    from concurrent.futures import ThreadPoolExecutor
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**{**tiny_params, "finetune_epochs": 20}).fit(
        X, y, groups=groups)
    jobs = [(X[groups == r][:20], y[groups == r][:20], 10 + i)
            for i, r in enumerate(np.unique(groups)[:4])]
    sequential = [meta.personalize(a, b, random_state=s).predict(X) for a, b, s in jobs]
    for _ in range(2):
        torch.manual_seed(42)
        caller = torch.random.get_rng_state()
        with ThreadPoolExecutor(2) as pool:
            nets = list(pool.map(lambda j: meta.personalize(*j[:2], random_state=j[2]), jobs))
        # each thread restored the state it found, and none found another's seed
        assert torch.equal(torch.random.get_rng_state(), caller)
        for net, expected in zip(nets, sequential):
            np.testing.assert_array_equal(net.predict(X), expected)


def test_fit_names_the_raters_whose_scores_are_all_equal(ratings, tiny_params):
    # A rater who rated every image alike (one of the liking set's rated all 55 images
    # 500) teaches nothing about ranking, and was meta-trained on without a word.
    X, y, groups = ratings
    y = y.copy()
    y[groups == "r03"], y[groups == "r07"] = 4.0, 2.0
    with pytest.warns(PIAAWarning) as record:
        MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    same = [w for w in record if "gave every image the same score" in str(w.message)]
    assert len(same) == 1 and same[0].filename == __file__
    assert re.search(r"^2 of 12 training rater\(s\) gave every image the same score: 'r03' "
                     r"\(80 images, all 4\), 'r07' \(80 images, all 2\)\. .*how people rank "
                     r"images \(their SROCC is undefined\)", str(same[0].message))
    # a long list is cut, with the count
    for i, r in enumerate(sorted(set(groups.tolist()))[:11]):
        y[groups == r] = 1 + i % 5
    with pytest.warns(PIAAWarning, match=r"^11 of 12 training rater\(s\) .*'r09' \(80 images, "
                                         r"all 5\), \.\.\. \(11 in all\)\. Their ratings"):
        MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        MetaAestheticRegressor(**tiny_params).fit(*ratings[:2], groups=groups)


def test_a_given_score_range_far_wider_than_every_rating_is_warned_of(ratings, tiny_params):
    # All raters alike on 1-5, fitted with score_range=(0, 500): no rater differs from
    # the rest, so nothing was said, and the prior's SROCC on test raters fell to zero.
    X, y, groups = ratings
    with pytest.warns(PIAAWarning) as record:
        meta = MetaAestheticRegressor(**{**tiny_params, "score_range": (0, 500)}).fit(
            X, y, groups=groups)
    wide = [w for w in record if "corner" in str(w.message)]
    assert len(wide) == 1 and wide[0].filename == __file__
    assert re.search(r"^the training ratings \(1 to 5\) span 0\.8% of score_range=\(0, 500\) "
                     r"\(--score-range 0,500 on the command line\)\. .*If these ratings use "
                     r"another scale, pass that scale as score_range, or leave score_range "
                     r"out", str(wide[0].message))
    assert not [w for w in record if "another scale than" in str(w.message)]
    # ratings of 1-10 given a percent scale: all in its lowest fifth
    with pytest.warns(PIAAWarning, match=r"^the training ratings \(1 to 10\) all lie in the "
                                         r"lowest fifth of score_range=\(0, 100\)"):
        MetaAestheticRegressor(**{**tiny_params, "score_range": (0, 100)}).fit(
            X, 1 + 9 * (y - 1) / 4, groups=groups)
    # personalizing with a given range: the rater's scores, the same rule
    with pytest.warns(PIAAWarning, match=r"^the rater's scores \(1 to 5\) span 0\.8% of "
                                         r"score_range=\(0, 500\)"):
        meta.personalize(X[groups == "r00"], y[groups == "r00"], score_range=(0, 500))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        # the scale itself, or one the ratings fill a fair part of
        MetaAestheticRegressor(**{**tiny_params, "score_range": (1, 5)}).fit(
            X, y, groups=groups)
        MetaAestheticRegressor(**{**tiny_params, "score_range": (0, 10)}).fit(
            X, y, groups=groups)
        # a rater who likes everything: all in the highest fifth of the range given
        meta.personalize(X[groups == "r00"], 100 * y[groups == "r00"], score_range=(0, 500))
    # but not all the raters: a 0-100 slider rated 90-100 throughout was not warned of
    # (prior SROCC 0.65 -> 0.10 against the range taken from the ratings, measured)
    with pytest.warns(PIAAWarning, match=r"^the training ratings \(1 to 5\) all lie in the "
                                         r"highest fifth of score_range=\(-20, 5\)"):
        MetaAestheticRegressor(**{**tiny_params, "score_range": (-20, 5)}).fit(
            X, y, groups=groups)


def test_fit_names_the_raters_whose_scores_look_like_another_scale(ratings, tiny_params):
    # Raters on 1-5 among raters on 0-500 were fitted without a word: the range taken
    # from all the ratings became (0, 500), their scores sat in under 1% of it, and the
    # loss gave them almost no weight.
    X, y, groups = ratings
    big = np.isin(groups, [f"r{u:02d}" for u in range(6, 12)])
    mixed = np.where(big, 125 * (y - 1), y)
    with pytest.warns(PIAAWarning) as record:
        meta = MetaAestheticRegressor(**tiny_params).fit(X, mixed, groups=groups)
    odd = [w for w in record if "another scale" in str(w.message)]
    assert len(odd) == 1 and odd[0].filename == __file__
    assert meta.score_range_ == (0.0, 500.0)
    assert re.search(r"^6 of 12 training rater\(s\) have scores that look like another scale "
                     r"than the other raters', within the range \(0, 500\) taken from all the "
                     r"ratings: 'r00' \(1 to 5: span 0\.8%\); 'r01' .*'r04' \(1 to 5: span "
                     r"0\.8%\); \.\.\. \(6 in all\)\. The prior maps .*weigh next to nothing "
                     r".*Rescale those raters' scores onto the others' scale before fit .*or "
                     r"leave them out", str(odd[0].message))
    with pytest.warns(PIAAWarning, match=r"^6 of 12 .*within score_range=\(0, 500\) "):
        MetaAestheticRegressor(**{**tiny_params, "score_range": (0, 500)}).fit(
            X, mixed, groups=groups)
    # one rater of 0-500 among eleven of 1-5: the eleven were named as "another scale"
    one = np.where(groups == "r11", 125 * (y - 1), y)
    with pytest.warns(PIAAWarning, match=r"^11 of 12 training rater\(s\) have scores in a "
                                         r"sliver of the range \(0, 500\) taken from all the "
                                         r"ratings, which 1 rater\(s\) on a far wider scale "
                                         r"stretched: 'r11' \(0 to 500\)\. The others: 'r00' "
                                         r".*Rescale the wider scale's scores onto the others'"):
        MetaAestheticRegressor(**tiny_params).fit(X, one, groups=groups)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        # raters who use a part of one scale: half of them 1-3, the others 3-5
        low = np.isin(groups, [f"r{u:02d}" for u in range(6)])
        MetaAestheticRegressor(**tiny_params).fit(
            X, np.where(low, (y + 1) / 2, (y + 5) / 2), groups=groups)
        # a harsh rater of the others' 1-10 scale, who gave only 1s and 2s: all in the
        # range's lowest fifth, which among test raters looks like another scale
        harsh = np.round(1 + 9 * (y - 1) / 4)
        first = groups == "r00"
        harsh[first] = 1 + np.arange(first.sum()) % 2
        MetaAestheticRegressor(**tiny_params).fit(X, harsh, groups=groups)
    # a stray code stretches the range: its own warning says so, not this one; nor
    # after score_range=(1, 99) says it is a real rating, as that warning advises
    stray = y.copy()
    stray[7] = 99.0
    with pytest.warns(PIAAWarning) as record:
        MetaAestheticRegressor(**tiny_params).fit(X, stray, groups=groups)
    assert [w for w in record if "far outside" in str(w.message)]
    assert not [w for w in record if "another scale" in str(w.message)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        MetaAestheticRegressor(**{**tiny_params, "score_range": (1, 99)}).fit(
            X, stray, groups=groups)


def test_fit_names_the_raters_who_rated_an_image_twice(ratings, tiny_params):
    # Meta-training draws a rater's support and query sets from their rows: a repeated
    # image could fall in both, as evaluate_personalization warns of its test raters.
    X, y, groups = ratings
    again = np.flatnonzero(groups == "r04")[:7]
    X2, y2 = np.concatenate([X, X[again]]), np.concatenate([y, y[again]])
    groups2 = np.concatenate([groups, groups[again]])
    with pytest.warns(PIAAWarning) as record:
        MetaAestheticRegressor(**tiny_params).fit(X2, y2, groups=groups2)
    twice = [w for w in record if "more than once" in str(w.message)]
    assert len(twice) == 1 and twice[0].filename == __file__
    assert str(twice[0].message).startswith(
        "1 of 12 training rater(s) rated an image more than once ('r04' (7) repeated rows) "
        "(rows of equal features count as one image: copies of a photo under other names "
        "too, which are best dropped): a repeat can fall in both the support and the query "
        "set of meta-training")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        # an algorithm that merges the two sets has no split for a repeat to cross
        MetaAestheticRegressor(**{**tiny_params, "algorithm": "reptile"}).fit(
            X2, y2, groups=groups2)
        # an image rated by several raters is no repeat
        MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    # features that tell no image apart are named as such, not as every row a repeat
    with pytest.warns(PIAAWarning) as record:
        MetaAestheticRegressor(**tiny_params).fit(np.zeros_like(X), y, groups=groups)
    assert [w for w in record if "every feature column is constant" in str(w.message)]
    assert not [w for w in record if "more than once" in str(w.message)]


def test_personalize_on_scores_all_equal_warns_as_on_one_image(ratings, tiny_params):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    with pytest.warns(PIAAWarning, match=r"personalize got 10 rated images, all scored 3: "
                                         r"they say nothing about how this rater ranks "
                                         r"images") as record:
        meta.personalize(X[:10], np.full(10, 3.0))
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        meta.personalize(X[:10], [3.0] * 9 + [4.0])
    # an evaluation names such raters once, by their undefined SROCC, not at every draw
    flat = np.where(groups == "r00", 3.0, y)
    with pytest.warns(PIAAWarning) as record:
        PersonalizedSROCCScorer(n_support=5, n_repeats=2)(meta, X, flat, groups)
    assert not [w for w in record if "all scored" in str(w.message)]
    assert [w for w in record if "'r00' (constant ratings)" in str(w.message)]


def test_fit_without_groups_advises_routing_for_the_call_only(ratings, tiny_params):
    # It said "call sklearn.set_config(enable_metadata_routing=True)", which the README
    # warns against: routing left on makes a later cross_val_score(groups=) fail.
    X, y, _ = ratings
    with pytest.warns(PIAAWarning, match="got no groups") as record:
        MetaAestheticRegressor(**tiny_params).fit(X, y)
    text = " ".join(str(w.message) for w in record if "got no groups" in str(w.message))
    assert "sklearn.config_context(enable_metadata_routing=True)" in text
    assert "set_config" not in text


def test_scores_outside_the_range_are_named_by_their_row_of_x_counting_from_0(
        ratings, tiny_params):
    # "row 7" read as line 7 of the user's CSV file, whose reader counts lines from 1
    X, y, groups = ratings
    bad = y.copy()
    bad[7] = 9.0
    with pytest.raises(ValueError, match=r"1 score\(s\) lie outside score_range=\(1, 5\) "
                                         r"\(--score-range 1,5 on the command line\): 9 "
                                         r"\(rater 'r00', row 7 of X, counting from 0\)\."):
        MetaAestheticRegressor(**{**tiny_params, "score_range": (1, 5)}).fit(
            X, bad, groups=groups)
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match=r"e\.g\. 9 \(row 2 of X, counting from 0\)\. If "
                                         r".*\(--score-range LOW,HIGH on the command line\)"):
        meta.personalize(X[:5], [1.0, 2.0, 9.0, 3.0, 4.0])
    # a rater of the training raters' scale who used a score none of them did (a fold of
    # a search): the advice was only for another scale; the prior's range is the cause
    same = r"If it uses the same scale, the prior's range is that of its training ratings"
    with pytest.raises(ValueError, match=same):
        meta.personalize(X[:5], [1.0, 2.0, 0.5, 3.0, 4.0])
    # not said where the prior's range was given, or the rater's is
    given = MetaAestheticRegressor(**{**tiny_params, "score_range": (1, 5)}).fit(
        X, y, groups=groups)
    for model, extra in ((given, {}), (meta, {"score_range": (1, 5)})):
        with pytest.raises(ValueError, match="lie outside") as caught:
            model.personalize(X[:5], [1.0, 2.0, 0.5, 3.0, 4.0], **extra)
        assert "same scale" not in str(caught.value)
    # a score a hair past the bound was shown as the bound itself: "outside (1, 5): 5"
    bad[7] = 5.0001
    with pytest.raises(ValueError, match=r"score_range=\(1, 5\) .*: 5\.0001 \(rater 'r00'"):
        MetaAestheticRegressor(**{**tiny_params, "score_range": (1, 5)}).fit(
            X, bad, groups=groups)
    with pytest.raises(ValueError, match=r"e\.g\. 5\.0001 \(row 2 of X"):
        meta.personalize(X[:5], [1.0, 2.0, 5.0001, 3.0, 4.0])
    bad[7] = 99.0  # a code for a missing rating
    with pytest.warns(PIAAWarning, match=r"99 \(rater 'r00', row 7 of X, counting from 0\)\. "
                                         r".*if they are real ratings, pass score_range=\(low, "
                                         r"high\) of the rating scale \(--score-range LOW,HIGH "
                                         r"on the command line\)\."):
        MetaAestheticRegressor(**tiny_params).fit(X, bad, groups=groups)


@pytest.mark.parametrize("algorithm, loss, shown", [("blg", "mse", "query_mse="),
                                                    ("blg", "rank", "query_loss="),
                                                    ("reptile", "mse", " mse=")])
def test_the_progress_bar_names_the_loss_it_shows(ratings, tiny_params, capsys, algorithm,
                                                  loss, shown):
    # "query_mse" was shown for a rank loss, and for Reptile's loss on merged sets
    X, y, groups = ratings
    MetaAestheticRegressor(**{**tiny_params, "algorithm": algorithm, "loss": loss,
                              "verbose": 1}).fit(X, y, groups=groups)
    err = capsys.readouterr().err
    assert shown in err
    others = {"query_mse=", "query_loss=", " mse="} - {shown}
    assert not [o for o in others if o in err]


@pytest.mark.parametrize("change, named", [
    (dict(finetune_lr="1e-3"), "'finetune_lr' parameter of MetaAestheticRegressor"),
    (dict(finetune_lr=float("nan")), "'finetune_lr' parameter of MetaAestheticRegressor"),
    (dict(finetune_batch_size=0), "'finetune_batch_size' parameter of MetaAestheticRegressor"),
    (dict(finetune_epochs=-1), "'finetune_epochs' parameter of MetaAestheticRegressor"),
    (dict(lr=float("nan")), "'lr' parameter of personalize"),
    (dict(lr=-1), "'lr' parameter of personalize"),
    (dict(max_epochs=-1), "'max_epochs' parameter of personalize"),
    (dict(batch_size=0), "'batch_size' parameter of personalize"),
    (dict(batch_size=True), "'batch_size' parameter of personalize must be a number, not"),
    (dict(lr=True), "'lr' parameter of personalize must be a number, not a bool"),
])
def test_fine_tuning_settings_are_checked_by_name_at_personalize(ratings, tiny_params,
                                                                  change, named):
    # set after fit (the docs' set_params(finetune_lr=...)) or given to personalize,
    # they failed inside skorch or torch: "'<=' not supported between instances of
    # 'float' and 'str'", "Invalid learning rate: nan", skorch's batch_size, max_epochs
    from sklearn.utils._param_validation import InvalidParameterError

    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    settings = {k: v for k, v in change.items() if k.startswith("finetune_")}
    overrides = {k: v for k, v in change.items() if k not in settings}
    with pytest.raises(InvalidParameterError, match=re.escape(named)):
        meta.set_params(**settings).personalize(X[:10], y[:10], **overrides)
    # skorch's "all images at once" stays a batch size personalize takes
    meta.set_params(finetune_lr=None, finetune_batch_size=None, finetune_epochs=1)
    assert meta.personalize(X[:10], y[:10], batch_size=-1).batch_size == -1


@pytest.mark.parametrize("betas", [(0.9,), (0.9, 0.99, 0.5), (0.9, float("nan"))])
def test_betas_set_after_fit_are_checked_at_personalize(ratings, tiny_params, betas):
    # fine-tuning's Adam takes them: (0.9,) failed in torch with an IndexError, and
    # three numbers fine-tuned without a word
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match=re.escape(f"betas must be two numbers in [0, 1); "
                                                   f"got {betas}")):
        meta.set_params(betas=betas).personalize(X[:10], y[:10])


def test_a_device_given_to_personalize_or_its_net_is_checked(ratings, tiny_params):
    # torch's "Invalid device string" (or, for "cuda" without a GPU, "Found no NVIDIA
    # driver") came at training or predict, and an int was taken as a CUDA index
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="device=0 is not a valid device argument"):
        meta.personalize(X[:10], y[:10], device=0)
    with pytest.raises(ValueError, match="device=' cpu' is not a valid torch device"):
        meta.personalize(X[:10], y[:10], device=" cpu")
    net = meta.personalize(X[:10], y[:10])
    with pytest.raises(ValueError, match="device=' cpu' is not a valid torch device"):
        net.set_params(device=" cpu")
    assert net.device == "cpu"
    np.testing.assert_array_equal(net.set_params(device=torch.device("cpu")).predict(X[:3]),
                                  meta.personalize(X[:10], y[:10]).predict(X[:3]))


def _numeric_params(estimator):
    from sklearn.utils._param_validation import Interval

    return [name for name, options in estimator._parameter_constraints.items()
            if any(isinstance(c, Interval) for c in options) and "boolean" not in options]


@pytest.mark.parametrize("estimator", [
    MetaAestheticRegressor(**TINY), TaskVectorRegressor(), *tiny_baselines(),
], ids=lambda e: type(e).__name__)
def test_a_bool_for_a_number_is_refused_by_name(ratings, estimator):
    # scikit-learn counts a bool as an integer: inner_steps=True ran one step, and
    # n_iterations=True failed inside NumPy ("expected a sequence of integers...")
    from sklearn.utils._param_validation import InvalidParameterError

    X, y, groups = ratings
    names, by_us = _numeric_params(estimator), 0
    assert names
    for name in names:
        with pytest.raises(InvalidParameterError, match=re.escape(
                f"The {name!r} parameter of {type(estimator).__name__} must be ")) as info:
            clone(estimator).set_params(**{name: True}).fit(X, y, groups=groups)
        # where 1 is out of range scikit-learn's own message comes first
        by_us += str(info.value).endswith("must be a number, not a bool; got True.")
    assert by_us


def test_an_unknown_fine_tuning_argument_is_named_with_the_meant_one(ratings, tiny_params):
    # skorch refused them in its own words: "__init__() got unexpected argument(s)
    # epochs. Either you made a typo, or you added new arguments in a subclass..."
    from sklearn_piaa import TaskVectorRegressor

    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    for given, named in ((dict(epochs=3), r"'epochs' \(did you mean 'max_epochs'\?\)"),
                         (dict(learning_rate=1e-3), r"'learning_rate' \(did you mean 'lr'\?\)"),
                         (dict(batch_sise=5), r"'batch_sise' \(did you mean 'batch_size'\?\)"),
                         (dict(groups=groups[:10]), r"'groups' \(personalize fits one rater"),
                         (dict(foo=1), r"'foo'\. It takes X, y, random_state, score_range")):
        with pytest.raises(TypeError, match=r"^personalize\(\) got unexpected keyword "
                                            r"argument\(s\) " + named):
            meta.personalize(X[:10], y[:10], **given)
    # what skorch takes still passes: its own names, components' parameters
    net = meta.personalize(X[:10], y[:10], max_epochs=1, lr=1e-3, verbose=0,
                           optimizer__weight_decay=1e-4, iterator_train__shuffle=False)
    assert net.max_epochs == 1 and net.optimizer__weight_decay == 1e-4
    tv = TaskVectorRegressor(meta, n_sources=2, random_state=0).fit(X, y, groups=groups)
    with pytest.raises(TypeError, match=r"'epochs' \(did you mean 'max_epochs'\?\)"):
        tv.personalize(X[:10], y[:10], epochs=3)


def test_a_setting_the_mode_has_no_use_for_is_named(ratings, tiny_params, image_files,
                                                   tmp_path):
    # a grid over inner_backbone_lr in head-only mode fitted the same prior per value
    X, y, groups = ratings
    with pytest.warns(PIAAWarning, match=r"^inner_backbone_lr=0\.01 has no effect with "
                                         r"train_backbone=False"):
        meta = MetaAestheticRegressor(**{**tiny_params, "inner_backbone_lr": 0.01}).fit(
            X, y, groups=groups)
    same = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    np.testing.assert_array_equal(meta.predict(X[:20]), same.predict(X[:20]))
    with pytest.warns(PIAAWarning, match=r"^cache_dir has no effect with train_backbone=True"):
        MetaAestheticRegressor(backbone="tiny_cnn", train_backbone=True, hidden_sizes=(4,),
                               n_iterations=1, support_size=3, query_size=2,
                               cache_dir=tmp_path / "cache", random_state=0).fit(
            image_files[:12], np.tile([1.0, 2, 3, 4, 5, 3], 2), groups=np.repeat(["a", "b"], 6))
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("algorithm", ["blg", "reptile", "merged", "average", "maml"])
@pytest.mark.parametrize("setting", [dict(inner_lr=0.0), dict(outer_lr=0.0)],
                         ids=["inner_lr", "outer_lr"])
def test_a_learning_rate_of_0_that_changes_no_weight_is_named(ratings, tiny_params,
                                                                algorithm, setting):
    X, y, groups = ratings
    params = {**tiny_params, "algorithm": algorithm, **setting}
    (name, _), = setting.items()
    # MAML learns from the query loss at the prior with inner steps of 0; "average"
    # takes no outer step
    still = algorithm != ("maml" if name == "inner_lr" else "average")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        meta = MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    said = [str(w.message) for w in record if f"{name}=0 with algorithm" in str(w.message)]
    assert len(said) == still and all("changes no weight" in m for m in said)
    start = MetaAestheticRegressor(**{**params, "n_iterations": 0}).fit(X, y, groups=groups)
    trained = meta.prior_net_.module_.state_dict()
    moved = any(not torch.equal(trained[k], v)
                for k, v in start.prior_net_.module_.named_parameters())
    assert moved != still  # warned exactly where no weight moved


@pytest.mark.parametrize("algorithm", ["blg", "reptile", "merged", "average"])
def test_inner_steps_0_that_changes_no_weight_is_named(ratings, tiny_params, algorithm):
    # The fit ran in full with a normal log and moved no weight: the prior was its
    # initial head (only BatchNorm statistics changed).
    X, y, groups = ratings
    params = {**tiny_params, "algorithm": algorithm, "inner_steps": 0}
    with pytest.warns(PIAAWarning, match=rf"inner_steps=0 with algorithm='{algorithm}'.*"
                                         "changes no weight") as record:
        meta = MetaAestheticRegressor(**params).fit(X, y, groups=groups)
    assert record[0].filename == __file__
    start = MetaAestheticRegressor(**{**params, "n_iterations": 0}).fit(X, y, groups=groups)
    trained = meta.prior_net_.module_.state_dict()
    for name, value in start.prior_net_.module_.named_parameters():
        torch.testing.assert_close(trained[name], value, rtol=0, atol=0)  # what it warns of
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        # MAML learns from the query loss at the prior itself
        MetaAestheticRegressor(**{**params, "algorithm": "maml"}).fit(X, y, groups=groups)
        MetaAestheticRegressor(**{**params, "n_iterations": 0}).fit(X, y, groups=groups)


def _far_warnings(caught):
    return [w for w in caught if "lie far outside the features" in str(w.message)]


def test_the_far_rows_bound_is_compared_in_float64():
    # A model fitted on norms above about 1.8e18 (which the head trains on) put the
    # square of its bound beyond float32: every predict warned "overflow encountered in
    # cast", and raised under warnings as errors.
    from sklearn_piaa._features import FeatureInput

    adapter = FeatureInput(4)
    adapter.largest_norm = 1.34e19
    X = np.full((3, 4), 5e18, dtype=np.float32)  # norm 1e19: near, not far
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert adapter(X).shape == (3, 4)
        assert adapter.far_rows(X) == ""
    assert "1 row(s) of X (row 0" in adapter.far_rows(X * np.float32([[1e3], [1], [1]]))


def test_features_far_outside_those_fitted_on_are_named_where_scored(ratings, tiny_params,
                                                                      tmp_path):
    # Features 1e6 times those fitted on saturate the head: the prior and every
    # personalized net scored each image 1.0 or 5.0, without a word.
    from sklearn_piaa import load_model, save_model

    X, y, groups = ratings
    meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
    net = meta.personalize(X[:20], y[:20])
    huge = X[:30] * np.float32(1e6)
    with pytest.warns(PIAAWarning, match=(
            r"^30 row\(s\) of X \(rows 0, 1, 2, 3, 4, \.\.\. \(30 in all\), counting from 0\) "
            r"lie far outside the features the model was fitted on: norms up to .*e\+06, "
            r"where the largest in fit was 4\.48\. The head saturates .*StandardScaler")):
        assert len(np.unique(meta.predict(huge))) <= 2  # saturated: the ends of 1-5
    path = tmp_path / "prior.pt"
    save_model(meta, path)
    loaded = load_model(path)
    for score in (net.predict, loaded.predict, lambda X: meta.personalize(X, y[:30]),
                  lambda X: meta.personalize(X, y[:30], max_epochs=0)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            score(huge)
        # once per call, at the caller's line (personalize reads X again as it fits),
        # and the cause of the fine-tuned net's collapse: no word of learning rates
        assert len(_far_warnings(caught)) == len(caught) == 1, [str(w.message) for w in caught]
        assert caught[0].filename == __file__
    one = X[:10].copy()
    one[4] *= 100
    with pytest.warns(PIAAWarning, match=r"^1 row\(s\) of X \(row 4, counting from 0\) lie"):
        meta.predict(one)


def test_no_far_rows_are_named_on_the_packages_own_data(ratings, tiny_params):
    X, y, groups = ratings
    data = make_aesthetic_benchmark(n_images=300, n_raters=20, images_per_rater=100,
                                    image_size=16, random_state=0)
    Xb = data.taste_features[data.image_index].astype(np.float32)
    test = np.isin(data.groups, data.rater_ids[:4])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups)
        meta.predict(np.random.RandomState(1).randn(2000, X.shape[1]).astype(np.float32))
        meta.personalize(X[:20], y[:20]).predict(X)
        bench = MetaAestheticRegressor(**tiny_params).fit(Xb[~test], data.y[~test],
                                                          groups=data.groups[~test])
        bench.personalize(Xb[test][:20], data.y[test][:20]).predict(Xb[test])
    assert not _far_warnings(caught)


def test_fine_tuning_adam_takes_the_priors_betas(ratings, tiny_params):
    # betas are "Adam betas of the inner loop and of fine-tuning": a prior fitted with
    # other betas than torch's default (0.9, 0.999) must fine-tune with them.
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**{**tiny_params, "n_iterations": 2, "finetune_epochs": 1,
                                     "betas": (0.8, 0.95)}).fit(X, y, groups=groups)
    net = meta.personalize(X[:20], y[:20])
    assert tuple(net.optimizer_.param_groups[0]["betas"]) == (0.8, 0.95)
    # the default betas, (0.9, 0.99), are not torch's either
    meta.set_params(betas=(0.9, 0.99))
    net = meta.personalize(X[:20], y[:20])
    assert tuple(net.optimizer_.param_groups[0]["betas"]) == (0.9, 0.99)


def test_a_personalized_nets_validation_share_keeps_personalizes_seed(ratings, tiny_params):
    # personalize seeds an unseeded ValidSplit(0.2) from its random_state, and the net
    # keeps that split: a clone of the net refitted with random_state=None draws the
    # same validation images, not ones from NumPy's global generator.
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**{**tiny_params, "n_iterations": 2}).fit(
        X, y, groups=groups)
    split = ValidSplit(0.2)
    net = meta.personalize(X[:60], y[:60], random_state=3, max_epochs=1, train_split=split)
    assert split.random_state is None  # the user's object is left as given
    assert net.train_split.random_state is not None
    assert net.train_split.random_state == net.random_state % 2**32


def test_personalize_takes_max_epochs_0_as_finetune_epochs_does(ratings, tiny_params):
    # finetune_epochs=0 is valid (the prior's own scores); so is the override max_epochs=0.

    X, y, groups = ratings
    meta = MetaAestheticRegressor(**{**tiny_params, "n_iterations": 2}).fit(
        X, y, groups=groups)
    net = meta.personalize(X[:20], y[:20], max_epochs=0)
    assert len(net.history) == 0
    np.testing.assert_allclose(net.predict(X[:20]), meta.predict(X[:20]), rtol=1e-6, atol=1e-6)


def test_a_given_optimizer_setting_is_kept_for_an_optimizer_other_than_adam(ratings,
                                                                            tiny_params):
    # The prior's betas are dropped for an optimizer that is not Adam; the betas a user
    # gives with such an optimizer (NAdam, RAdam, Adamax take betas) must be kept.
    import torch

    X, y, groups = ratings
    meta = MetaAestheticRegressor(**{**tiny_params, "n_iterations": 2, "finetune_epochs": 1}
                                  ).fit(X, y, groups=groups)
    net = meta.personalize(X[:20], y[:20], optimizer=torch.optim.NAdam,
                           optimizer__betas=(0.5, 0.9))
    assert tuple(net.optimizer_.param_groups[0]["betas"]) == (0.5, 0.9)
