"""Tests of the Table-I baselines: PAM, FPMF, USAR, PA_IAA and per-user ridge."""

import copy
import os
import pickle
import warnings

import numpy as np
import pytest
from conftest import HELD, SHARED, TINY, TRAITS, make_rating_features, tiny_baselines
from conftest import evaluate_sizes as _evaluate
from conftest import split_held_out as _split
from numpy.lib import recfunctions as rfn
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_score

from sklearn_piaa import (
    ConsensusRidgeRegressor,
    FPMFRegressor,
    MetaAestheticRegressor,
    PAIAARegressor,
    PAMRegressor,
    PIAAWarning,
    SupportQuerySplit,
    TaskSet,
    USARRegressor,
    UserRidgeRegressor,
    evaluate_personalization,
    load_model,
    save_model,
    srocc_scorer,
)
from sklearn_piaa.baselines import PersonalizedBaseline
from sklearn_piaa.baselines._base import consensus_scores
from sklearn_piaa.datasets import make_aesthetic_benchmark
from sklearn_piaa.report import compare_methods, format_table, paired_difference

ESTIMATORS = tiny_baselines()


def _ids(est):
    return type(est).__name__ + getattr(est, "variant", "")


def _truth_srocc(model, X, truth):
    return spearmanr(model.predict(X), truth)[0]


@pytest.mark.parametrize("est", ESTIMATORS, ids=_ids)
def test_api_clone_and_pickle(est, ratings):
    X, y, groups = ratings
    with pytest.raises(NotFittedError):
        clone(est).predict(X[:3])
    fitted = clone(est).fit(X, y, groups=groups)
    assert fitted.raters_ == sorted(set(groups.tolist()))
    assert fitted.predict(X[:5]).shape == (5,)
    user = fitted.personalize(X[:10], y[:10])
    pred = user.predict(X[10:20])
    assert pred.shape == (10,) and np.isfinite(pred).all()
    # The same fit on a TaskSet and on row-wise arrays.
    again = clone(est).fit(TaskSet.from_arrays(X, y, groups))
    np.testing.assert_allclose(again.predict(X[:5]), fitted.predict(X[:5]))
    assert clone(fitted).get_params().keys() == est.get_params().keys()
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(restored.predict(X[:5]), fitted.predict(X[:5]))
    restored_user = pickle.loads(pickle.dumps(user))
    np.testing.assert_allclose(restored_user.predict(X[10:20]), pred)


@pytest.mark.parametrize("est", ESTIMATORS, ids=_ids)
def test_personalized_baseline_in_cross_val_score(est, ratings):
    # cross_val_score clones the rater's model per split: the clone keeps the fitted prior.
    X, y, groups = ratings
    prior = clone(est).fit(X, y, groups=groups)
    user = prior.personalize(X[:10], y[:10])
    again = clone(user)
    assert again.prior is prior and not hasattr(again, "state_")
    np.testing.assert_allclose(again.fit(X[:10], y[:10]).predict(X[10:20]),
                               user.predict(X[10:20]))
    mask = groups == groups[0]
    scores = cross_val_score(user, X[mask], y[mask], scoring=srocc_scorer,
                             cv=SupportQuerySplit(10, 3, random_state=0), error_score="raise")
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_a_search_over_a_personalized_models_prior_settings_leaves_the_prior_alone(ratings):
    # Clones share the fitted prior: GridSearchCV over prior__alphas set the user's own
    # prior's alphas, and every later personalization used the last candidate's.
    from sklearn.model_selection import GridSearchCV

    X, y, groups = ratings
    prior = ConsensusRidgeRegressor().fit(X, y, groups=groups)
    alphas = prior.alphas
    user = prior.personalize(X[:10], y[:10])
    GridSearchCV(user, {"prior__alphas": [(1e4,), (1e5,)]}, cv=2).fit(X[:10], y[:10])
    assert prior.alphas == alphas and user.prior is prior
    user.set_params(prior__alphas=(1e5,))
    assert prior.alphas == alphas and user.prior.alphas == (1e5,)


def test_prior_settings_that_only_fit_reads_are_refused_on_a_personalized_model(ratings):
    # A search over prior__n_factors scored every candidate alike: the fitted prior is
    # personalized as it is. PAM's variant='content' on a prior fitted with
    # 'attributes' failed with a bare AttributeError.
    from sklearn.model_selection import GridSearchCV

    X, y, groups = ratings
    fpmf = FPMFRegressor(n_factors=2, n_components=4, max_iter=5, random_state=0)
    user = fpmf.fit(X, y, groups=groups).personalize(X[:12], y[:12])
    with pytest.raises(ValueError, match=r"prior__n_factors: it shapes the fitted prior.*"
                                         r"settings read when personalizing: \['alphas'\]"):
        GridSearchCV(user, {"prior__n_factors": [1, 8]}, cv=2).fit(X[:12], y[:12])
    user.set_params(**user.get_params())  # the same values, as scikit-learn sets them
    user.set_params(prior__n_factors=2, prior__alphas=(1.0,))
    assert user.prior.alphas == (1.0,) and fpmf.alphas != (1.0,)
    usar = USARRegressor(n_components=4, random_state=0).fit(X, y, groups=groups)
    pad = usar.personalize(X[:12], y[:12]).set_params(prior__variant="pad")
    assert not np.allclose(pad.fit(X[:12], y[:12]).predict(X[12:20]),
                           usar.personalize(X[:12], y[:12]).predict(X[12:20]))
    pam = PAMRegressor(variant="attributes", attribute_columns=[0, 1], random_state=0)
    user = pam.fit(X, y, groups=groups).personalize(X[:12], y[:12])
    with pytest.raises(ValueError, match="variant='content' needs content classes, which "
                                         "this prior, fitted with variant='attributes'"):
        user.set_params(prior__variant="content").fit(X[:12], y[:12])


@pytest.mark.parametrize("est", ESTIMATORS[:1], ids=_ids)
def test_feature_width_is_kept_and_checked(est, ratings, tmp_path):
    X, y, groups = ratings
    fitted = clone(est).fit(X, y, groups=groups)
    assert fitted.n_features_in_ == X.shape[1]
    name = type(est).__name__
    with pytest.raises(ValueError, match=f"but {name} is expecting {X.shape[1]} features"):
        fitted.predict(X[:3, :-1])
    save_model(fitted, tmp_path / "m.piaa")
    assert load_model(tmp_path / "m.piaa").n_features_in_ == X.shape[1]


def _planted(n_users, per, n_images, make_score, rng, features):
    """Rows of ``features`` rated by users whose scores ``make_score(u)`` gives."""
    X, y, groups, truth = [], [], [], []
    for u in range(n_users):
        score = make_score(u)
        idx = rng.choice(n_images, per, replace=False)
        X.append(features[idx])
        y.append(score[idx] + 0.1 * rng.randn(per))
        groups += [f"u{u:02d}"] * per
        truth.append(score)
    return np.vstack(X), np.concatenate(y), np.array(groups), truth


def test_fpmf_recovers_a_low_rank_rater_structure():
    rng = np.random.RandomState(0)
    F = rng.randn(300, 16)
    V = rng.randn(16, 2)
    P = rng.randn(50, 2)  # 40 training raters, 10 new ones, all in a 2-d taste space
    X, y, groups, truth = _planted(50, 100, 300, lambda u: F @ V @ P[u], rng, F)
    train = np.isin(groups, [f"u{u:02d}" for u in range(40)])
    fpmf = FPMFRegressor(n_factors=2, n_components=16, random_state=0)
    fpmf.fit(X[train], y[train], groups=groups[train])
    ridge = ConsensusRidgeRegressor().fit(X[train], y[train], groups=groups[train])
    got, base = [], []
    for u in range(40, 50):
        rows = np.flatnonzero(groups == f"u{u:02d}")[:10]
        got.append(_truth_srocc(fpmf.personalize(X[rows], y[rows]), F, truth[u]))
        base.append(_truth_srocc(ridge.personalize(X[rows], y[rows]), F, truth[u]))
    # Ten ratings pin down a new rater's two factors once the item map is known.
    assert np.mean(got) > 0.95
    assert np.mean(got) > np.mean(base) + 0.2


def test_pam_recovers_a_residual_linear_in_the_attributes():
    rng = np.random.RandomState(1)
    content, attrs = rng.randn(300, 12), rng.randn(300, 4)
    F = np.hstack([content, attrs])
    generic = content @ rng.randn(12)
    W = 1.5 * rng.randn(40, 4)
    X, y, groups, truth = _planted(40, 120, 300, lambda u: generic + attrs @ W[u], rng, F)
    train = np.isin(groups, [f"u{u:02d}" for u in range(30)])
    cols = [12, 13, 14, 15]
    scores = {}
    for variant in ("attributes", "content"):
        pam = PAMRegressor(variant=variant, attribute_columns=cols, n_content_classes=8,
                           random_state=0).fit(X[train], y[train], groups=groups[train])
        scores[variant] = []
        for u in range(30, 40):
            rows = np.flatnonzero(groups == f"u{u:02d}")[:20]
            scores[variant].append(_truth_srocc(pam.personalize(X[rows], y[rows]), F, truth[u]))
        prior = [_truth_srocc(pam, F, truth[u]) for u in range(30, 40)]
    assert np.mean(scores["attributes"]) > 0.9
    assert np.mean(scores["attributes"]) > np.mean(scores["content"]) + 0.1
    assert np.mean(scores["attributes"]) > np.mean(prior) + 0.1


def test_usar_ppr_recovers_a_taste_for_images_like_a_favourite():
    rng = np.random.RandomState(2)
    F = rng.randn(300, 10)
    unit = F / np.linalg.norm(F, axis=1, keepdims=True)
    protos = rng.randn(30, 10)
    X, y, groups, truth = _planted(30, 100, 300, lambda u: 2 * unit @ protos[u]
                                   / np.linalg.norm(protos[u]), rng, F)
    train = np.isin(groups, [f"u{u:02d}" for u in range(20)])
    usar = USARRegressor(variant="ppr", n_components=10, random_state=0)
    usar.fit(X[train], y[train], groups=groups[train])
    got, prior = [], []
    for u in range(20, 30):
        rows = np.flatnonzero(groups == f"u{u:02d}")[:30]
        got.append(_truth_srocc(usar.personalize(X[rows], y[rows]), F, truth[u]))
        prior.append(_truth_srocc(usar, F, truth[u]))
    assert np.mean(got) > 0.7
    assert np.mean(got) > np.mean(prior) + 0.4


def test_ridge_baselines_recover_a_linear_taste(ratings):
    X, y, groups = ratings
    rng = np.random.RandomState(3)
    w = rng.randn(X.shape[1])
    Xu = rng.randn(80, X.shape[1]).astype(np.float32)
    yu = Xu @ w + 0.1 * rng.randn(80)
    for cls in (UserRidgeRegressor, ConsensusRidgeRegressor):
        user = cls().fit(X, y, groups=groups).personalize(Xu[:40], yu[:40])
        assert spearmanr(user.predict(Xu[40:]), yu[40:])[0] > 0.9
    # Without any own rating, the own-ratings ridge has no ranking at all.
    assert np.ptp(UserRidgeRegressor().fit(X, y, groups=groups).predict(Xu)) == 0


@pytest.fixture(scope="module")
def personality_data():
    data = make_aesthetic_benchmark(n_images=300, n_raters=60, images_per_rater=100,
                                    image_size=16, consensus_weight=0.3, noise=0.2,
                                    personality=True, personality_weight=1.0, random_state=0)
    X = data.taste_features[data.image_index]
    train = np.isin(data.groups, data.rater_ids[:48])
    tasks = [TaskSet.from_arrays(X[m], data.y[m], data.groups[m]) for m in (train, ~train)]
    return data, tasks[0], tasks[1]


def test_pa_iaa_uses_a_personality_driven_taste(personality_data):
    data, train, test = personality_data
    shuffled = dict(zip(data.personality, np.random.RandomState(0).permutation(
        list(data.personality.values()))))
    means = {}
    for name, table in (("true", data.personality), ("shuffled", shuffled)):
        model = PAIAARegressor(personality=table, random_state=0).fit(train)
        res = evaluate_personalization(model, test, n_support=10, n_repeats=3, random_state=0)
        means[name] = res.summary[10]
    # Ten ratings fit five trait weights: far beyond the generic prior.
    assert means["true"]["personalized"].mean > means["true"]["prior"].mean + 0.2
    # Traits that belong to other raters carry no such signal.
    assert means["true"]["personalized"].mean > means["shuffled"]["personalized"].mean + 0.1


def test_personality_option_of_the_benchmark(personality_data):
    data = personality_data[0]
    assert list(data.personality) == data.rater_ids.tolist()
    traits = np.array(list(data.personality.values()))
    assert traits.shape == (60, 5) and np.abs(traits).max() < 1
    assert data.trait_names[0] == "openness"
    # With personality_weight=1 each rater's deviation from the consensus is driven by
    # their traits alone: it lies in the 5-d span of the trait loadings.
    deviation = data.rater_weights - data.consensus_weight * data.consensus_weights
    coef = np.linalg.lstsq(data.trait_loadings.T, deviation.T, rcond=None)[0]
    np.testing.assert_allclose(data.trait_loadings.T @ coef, deviation.T, atol=1e-8)
    plain = make_aesthetic_benchmark(n_images=30, n_raters=4, images_per_rater=12,
                                     image_size=16, random_state=0)
    assert "personality" not in plain and "rater_traits" not in plain
    with pytest.raises(ValueError, match="personality_weight"):
        make_aesthetic_benchmark(n_images=30, n_raters=4, images_per_rater=12,
                                 image_size=16, personality=True, personality_weight=2.0)


def test_bad_input_is_named(ratings):
    X, y, groups = ratings
    with pytest.raises(ValueError, match="personality=None: PAIAARegressor needs Big-Five"):
        PAIAARegressor().fit(X, y, groups=groups)
    partial = {r: t for r, t in TRAITS.items() if r not in ("r03", "r07")}
    with pytest.raises(ValueError, match=r"no traits for 2 training rater\(s\): \['r03', 'r07'\]"):
        PAIAARegressor(personality=partial).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        PAIAARegressor(personality={r: 3 * t for r, t in TRAITS.items()}).fit(
            X, y, groups=groups)
    with pytest.raises(ValueError, match="needs attribute_columns"):
        PAMRegressor(variant="attributes").fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="attribute_columns must index"):
        PAMRegressor(attribute_columns=[99]).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="'variant' parameter of PAMRegressor"):
        PAMRegressor(variant="colour").fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="alphas must be positive"):
        UserRidgeRegressor(alphas=(0.0, 1.0)).fit(X, y, groups=groups)
    model = ConsensusRidgeRegressor().fit(X, y, groups=groups)
    # read again at personalization, they were not checked there: NaN predicted NaN,
    # 0 fitted plain least squares
    for bad in [(float("nan"),), (), (0.0,)]:
        with pytest.raises(ValueError, match="alphas must be positive"):
            clone(model).fit(X, y, groups=groups).set_params(alphas=bad).personalize(
                X[:12], y[:12])
        with pytest.raises(ValueError, match="alphas must be positive"):
            model.personalize(X[:12], y[:12]).set_params(prior__alphas=bad).fit(
                X[:12], y[:12])
    content = PAMRegressor(variant="content", n_content_classes=3, random_state=0).fit(
        X, y, groups=groups)
    with pytest.raises(ValueError, match="needs attribute columns, which this prior"):
        content.personalize(X[:12], y[:12]).set_params(prior__variant="attributes").fit(
            X[:12], y[:12])
    with pytest.raises(ValueError, match="expecting 8 features"):
        model.predict(X[:, :3])
    with pytest.raises(ValueError, match="3 images but y has 2"):
        model.personalize(X[:3], y[:2])
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['pamm'\]"):
        compare_methods(TaskSet.from_arrays(X, y, groups), TaskSet.from_arrays(X, y, groups),
                        algorithms=["pamm"])


def test_compare_methods_with_baselines_gives_paired_differences(ratings, tiny_params):
    X, y, groups = ratings
    held = np.isin(groups, ["r09", "r10", "r11"])
    train = TaskSet.from_arrays(X[~held], y[~held], groups[~held])
    test = TaskSet.from_arrays(X[held], y[held], groups[held])
    methods = ["blg", "consensus_ridge", "ridge", "fpmf", "pam", "pa_iaa"]
    params = {"pam": {"attribute_columns": [6, 7], "n_content_classes": 5},
              "fpmf": {"n_components": 8, "max_iter": 5},
              "pa_iaa": {"personality": TRAITS, "max_epochs": 3}}
    results = compare_methods(train, test, algorithms=methods, n_support=(5, 20),
                              n_repeats=2, method_params=params, **tiny_params)
    assert list(results) == methods
    # Identical support and query draws for every method: paired comparisons.
    for res in results.values():
        np.testing.assert_array_equal(res.table["n_query"], results["blg"].table["n_query"])
        np.testing.assert_array_equal(res.table["rater"], results["blg"].table["rater"])
    diff = paired_difference(results["ridge"], results["blg"])
    a, b = results["ridge"].table, results["blg"].table
    sel = a["n_support"] == 20
    by_rater = [np.mean((a["srocc_personalized"] - b["srocc_personalized"])[
        sel & (a["rater"] == r)]) for r in ("r09", "r10", "r11")]
    assert diff[20][0] == pytest.approx(np.mean(by_rater))
    assert diff[20][1] == pytest.approx(np.std(by_rater, ddof=1) / np.sqrt(3))
    text = format_table(results)
    assert "vs blg @5" in text and "vs blg @20" in text
    for label in ("BLG-PIAA", "consensus + residual ridge", "per-user ridge (own)", "FPMF",
                  "PAM (attributes + content)", "PA_IAA"):
        assert label in text
    # The own-ratings ridge has no zero-shot ranking: its prior is reported as n/a.
    own = next(line for line in text.splitlines() if line.startswith("per-user ridge"))
    assert own.split()[-7] == "n/a"  # the prior column, before two paired differences


def test_pam_on_images_measures_attributes_and_embeds(image_files):
    paths = image_files * 3
    groups = np.repeat(["a", "b", "c"], 12)
    y = np.tile(np.arange(12) % 5 + 1.0, 3)
    pam = PAMRegressor(backbone="tiny_cnn", n_content_classes=3, random_state=0)
    pam.fit(paths, y, groups=groups)
    assert pam.attribute_names_[0] == "brightness" and len(pam.attribute_columns_) == 10
    assert pam.predict(image_files[:4]).shape == (4,)
    user = pam.personalize(image_files[:6], y[:6])
    assert np.isfinite(user.predict(image_files[6:])).all()


def test_pam_reads_images_as_the_other_baselines_do(image_files, tmp_path):
    # An array of paths failed PAM's predict and personalize ("images must be a list");
    # an unreadable file under --on-error skip failed predict (the attributes measured
    # it) and, as every baseline, personalize (RidgeCV refused the NaN embedding).
    from sklearn_piaa._features import image_reader

    paths = np.array(image_files * 3)
    groups = np.repeat(["a", "b", "c"], 12)
    y = np.tile(np.arange(12) % 5 + 1.0, 3)
    pam = PAMRegressor(backbone="tiny_cnn", n_content_classes=3, random_state=0)
    pam.fit(paths, y, groups=groups)
    np.testing.assert_allclose(pam.predict(paths[:4]), pam.predict(image_files[:4]))
    user = pam.personalize(paths[:6], y[:6])
    np.testing.assert_allclose(user.predict(paths[6:12]), pam.personalize(
        image_files[:6], y[:6]).predict(image_files[6:12]))
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    image_reader(pam).on_error = "skip"  # as the command line's --on-error skip sets it
    with pytest.warns(PIAAWarning, match="bad.jpg"):
        scores = pam.predict([*image_files[:3], str(bad)])
    assert np.isfinite(scores[:3]).all() and np.isnan(scores[3])
    with pytest.warns(PIAAWarning, match="bad.jpg"):
        skipped = pam.personalize([*image_files[:6], str(bad)], [*y[:6], 5.0])
    np.testing.assert_allclose(skipped.predict(image_files[6:12]),
                               user.predict(paths[6:12]))


@pytest.mark.parametrize("est", [e for e in ESTIMATORS if not isinstance(e, PAMRegressor)],
                         ids=_ids)
@pytest.mark.parametrize("seed", ["int", "RandomState"])
def test_a_baseline_fitted_on_images_is_the_one_fitted_on_their_embeddings(est, seed,
                                                                             image_files):
    # (PAM measures attributes of images, which embeddings lack.) The image fit took its
    # distinct images first-seen, the feature fit sorted: PA_IAA's predictions differed by
    # 0.005 on this 1-5 scale; and building the backbone advanced a RandomState instance,
    # so that FPMF's and PA_IAA's draws differed (by 0.2-0.5).
    rng = np.random.RandomState(0)
    rows = np.concatenate([rng.choice(len(image_files), 8, replace=False) for _ in TRAITS])
    X = [image_files[i] for i in rows]
    y = rng.randint(1, 6, len(rows)).astype(float)
    groups = np.repeat(sorted(TRAITS), 8)

    def fit(**params):
        if "random_state" in est.get_params():
            state = 0 if seed == "int" else np.random.RandomState(5)
            params["random_state"] = state
        return clone(est).set_params(**params).fit(X if params["backbone"] else F, y,
                                                   groups=groups)

    F = None
    on_images = fit(backbone="tiny_cnn")
    F = on_images.input_.transform(X)
    on_features = fit(backbone=None)
    np.testing.assert_allclose(on_images.predict(image_files),
                               on_features.predict(on_images.input_.transform(image_files)),
                               rtol=1e-6, atol=1e-9)
    user = on_images.personalize(X[:8], y[:8], random_state=2)
    same = on_features.personalize(F[:8], y[:8], random_state=2)
    np.testing.assert_allclose(user.predict(X[8:16]), same.predict(F[8:16]), rtol=1e-6,
                               atol=1e-9)


def test_failed_refit_keeps_the_previous_fit(ratings, monkeypatch):
    from sklearn_piaa import ConsensusRidgeRegressor

    X, y, groups = ratings
    model = ConsensusRidgeRegressor().fit(X, y, groups=groups)
    before = model.predict(X[:5])

    def fails(*args, **kwargs):
        raise MemoryError("out of memory half-way")

    # Fails after the new input adapter and scaler were made, on 3-column features.
    monkeypatch.setattr(ConsensusRidgeRegressor, "_fit_prior", fails)
    with pytest.raises(MemoryError):
        model.fit(X[:, :3], y, groups=groups)
    np.testing.assert_array_equal(model.predict(X[:5]), before)


def test_a_refit_keeps_nothing_of_the_previous_fit(ratings):
    # PAM's content classes, fitted for variant="both" on 8 columns, outlived a refit
    # with variant="attributes" on 4.
    X, y, groups = ratings
    pam = PAMRegressor(variant="both", attribute_columns=[6, 7], n_content_classes=5,
                       random_state=0).fit(X, y, groups=groups)
    pam.set_params(variant="attributes", attribute_columns=[0, 1]).fit(X[:, :4], y,
                                                                       groups=groups)
    fresh = clone(pam).fit(X[:, :4], y, groups=groups)
    fitted = sorted(k for k in vars(pam) if k.endswith("_") and not k.startswith("_"))
    assert fitted == sorted(k for k in vars(fresh) if k.endswith("_") and not k.startswith("_"))
    assert not hasattr(pam, "content_classes_")


def test_a_rater_model_keeps_the_scale_it_was_fitted_on(tmp_path):
    # set_params(score_range=...) after fit mixed the old ridge with the new scale
    from sklearn_piaa import load_model, save_model
    rng = np.random.RandomState(0)
    X = rng.randn(120, 4)
    y = np.clip(3 + X[:, 0] + 0.2 * rng.randn(120), 1, 5)
    prior = ConsensusRidgeRegressor().fit(X, y, groups=np.repeat([0, 1, 2], 40))
    Xs = rng.randn(10, 4)
    user = prior.personalize(Xs, 3 + Xs[:, 0])
    before = user.predict(Xs)
    user.set_params(score_range=(0, 100))
    np.testing.assert_array_equal(user.predict(Xs), before)
    save_model(user, tmp_path / "u.pt")
    np.testing.assert_allclose(load_model(tmp_path / "u.pt").predict(Xs), before, rtol=1e-6)
    assert user.fit(Xs, 50 + 10 * Xs[:, 0]).predict(Xs).mean() > 20  # a refit takes it


@pytest.mark.parametrize("name", ["FPMFRegressor", "USARRegressor"])
def test_identical_training_features_are_refused(name):
    # FPMF divided by their zero variance: a "fitted" model of NaN weights, NaN scores
    from sklearn_piaa import baselines

    X = np.ones((30, 6))
    y = np.tile(np.linspace(1, 5, 10), 3)
    with pytest.raises(ValueError, match="features .* are all the same"):
        getattr(baselines, name)(backbone=None).fit(X, y, groups=np.repeat([0, 1, 2], 10))


@pytest.mark.parametrize("make", [
    lambda: PAIAARegressor(personality=TRAITS, hidden_size=8, max_epochs=5, random_state=0),
    lambda: FPMFRegressor(n_factors=3, n_components=6, max_iter=5, random_state=0),
], ids=["pa_iaa", "fpmf"])
def test_a_baseline_gives_the_same_ranking_whatever_the_scales_units(ratings, make):
    # PA_IAA's generic head regressed raw scores: on the same ratings x 100 its SROCC
    # fell from 0.35 to 0.11 (squared error in the thousands, the trait loss drowned);
    # FPMF's penalties on both factors of a product weighed otherwise (0.525 -> 0.503)
    X, y, groups = ratings
    train = ~np.isin(groups, ["r10", "r11"])
    test = ~train
    preds = []
    for scale in (1.0, 100.0):
        model = make().fit(X[train], y[train] * scale, groups=groups[train])
        preds.append((model.predict(X[test]),
                      model.personalize(X[test][:10], y[test][:10] * scale).predict(X[test])))
    np.testing.assert_allclose(preds[1][0], preds[0][0] * 100, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(preds[1][1], preds[0][1] * 100, rtol=1e-3, atol=1e-3)


def test_pam_content_probabilities_stay_soft_with_few_images_per_class():
    # 25 images in 20 classes: most alone in theirs, the median distance 0, the
    # temperature clamped to 1e-12 and every image's probabilities one-hot
    rng = np.random.RandomState(0)
    F = rng.randn(25, 6)
    images = np.concatenate([rng.choice(25, 20, replace=False) for _ in range(3)])
    X, groups = F[images], np.repeat(np.arange(3), 20)
    y = 3 + X[:, 0] + 0.3 * rng.randn(len(X))
    pam = PAMRegressor(variant="content", random_state=0).fit(X, y, groups=groups)
    assert pam.content_classes_.n_clusters == 20 and pam.temperature_ > 1e-3
    probs = pam._user_features(pam._transform(rng.randn(4, 6)))
    assert (probs.max(axis=1) < 0.999).all()


def test_pam_content_probabilities_stay_soft_with_every_image_alone_in_its_class():
    # 12 images in 12 classes: each image's distance to its own centre is round-off
    # (1e-30 here, not always 0), which once set the temperature to 1e-12: one-hot
    rng = np.random.RandomState(0)
    F = rng.randn(12, 6)
    images = np.tile(np.arange(12), 3)
    X, groups = F[images], np.repeat(np.arange(3), 12)
    y = 3 + X[:, 0] + 0.3 * rng.randn(len(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # more classes than images: said elsewhere
        pam = PAMRegressor(variant="content", n_content_classes=12, random_state=0).fit(
            X, y, groups=groups)
    assert pam.temperature_ > 1e-3
    probs = pam._user_features(pam._transform(F[:4] + 0.5 * rng.randn(4, 6)))
    assert (probs.max(axis=1) < 0.999).all()


def test_pam_says_when_it_has_fewer_images_than_content_classes():
    rng = np.random.RandomState(0)
    F = rng.randn(12, 6)
    X, groups = F[np.tile(np.arange(12), 3)], np.repeat(np.arange(3), 12)
    y = 3 + X[:, 0] + 0.3 * rng.randn(len(X))
    with pytest.warns(PIAAWarning, match="n_content_classes=20 is more than the 12 distinct"):
        pam = PAMRegressor(variant="content", random_state=0).fit(X, y, groups=groups)
    assert pam.content_classes_.n_clusters == 12
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        PAMRegressor(variant="content", n_content_classes=12, random_state=0).fit(
            X, y, groups=groups)


@pytest.mark.parametrize("scale", [0.2, 0.1, 0.7, 2500.0])
def test_pa_iaa_likes_do_not_depend_on_the_units(scale):
    # A rating equal to its rater's mean (3 of 1-5) was "liked" on 0.2-1.0 or 0.1-0.5,
    # where the mean's rounding fell below it, and not on 1-5.
    from sklearn_piaa.baselines.pa_iaa import liked_image_traits

    y = np.tile(np.array([1, 2, 3, 4, 5, 3, 2, 4], float), 3)
    groups, inverse = np.repeat(np.array(["a", "b", "c"]), 8), np.tile(np.arange(8), 3)
    traits, raters = np.arange(9.0).reshape(3, 3), ["a", "b", "c"]
    on_1_5 = liked_image_traits(y.astype(np.float32), groups, inverse, 8, traits, raters)
    other = liked_image_traits((scale * y).astype(np.float32), groups, inverse, 8, traits,
                               raters)
    np.testing.assert_array_equal(other[1], on_1_5[1])
    np.testing.assert_allclose(other[0], on_1_5[0])
    assert on_1_5[1].tolist() == [False, False, False, True, True, False, False, True]


def test_fpmf_sweeps_are_the_plain_alternating_ridges():
    # The sweeps run on each rater's sums; the plain way builds the design matrices
    # from every rating (n x k*r for the item map).
    from sklearn_piaa.baselines.fpmf import _alternate, _solve

    rng = np.random.RandomState(0)
    n_users, k, r, lam = 7, 3, 5, 0.01
    user = rng.permutation(np.repeat(np.arange(n_users), rng.randint(2, 30, n_users)))
    F, yc = rng.randn(len(user), r), rng.randn(len(user))
    P0, b0, W0 = 0.1 * rng.randn(n_users, k), np.zeros(n_users), 0.1 * rng.randn(r, k)
    P, b, W = P0.copy(), b0.copy(), W0.copy()
    counts = np.bincount(user)
    for _ in range(3):
        Q = np.hstack([F @ W, np.ones((len(F), 1))])
        for u in range(n_users):
            Qu = Q[user == u]
            sol = _solve(Qu.T @ Qu, Qu.T @ yc[user == u],
                         np.r_[np.full(k, lam * counts[u]), 1e-8])
            P[u], b[u] = sol[:k], sol[k]
        D = (P[user][:, :, None] * F[:, None, :]).reshape(len(F), k * r)
        W = _solve(D.T @ D, D.T @ (yc - b[user]), np.full(k * r, lam * len(F))).reshape(k, r).T
    fast = _alternate(F, yc, user, P0, b0, W0, lam, 3)
    for got, want in zip(fast, (P, b, W)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_a_rater_on_another_scale_is_named(ratings):
    # A baseline fits any scale, silently: a 0-100 rater against a 1-5 prior gave FPMF
    # 0.54 SROCC where the rater's own scale gave 0.61.
    X, y, groups = ratings
    train = ~np.isin(groups, ["r10", "r11"])
    model = ConsensusRidgeRegressor().fit(X[train], y[train], groups=groups[train])
    y100 = (y[~train] - 1) * 25
    with pytest.warns(UserWarning, match=r"lie outside the range .*score_range="):
        model.personalize(X[~train][:10], y100[:10])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.personalize(X[~train][:10], y100[:10], score_range=(0, 100))
    # a given scale the scores leave is refused, as the meta-learned prior refuses it
    with pytest.raises(ValueError, match=r"8 score\(s\) lie outside score_range=\(0, 10\) "
                                         r"\(--score-range 0,10 on the command line\), "
                                         r"e.g. 50 \(row 0 of X, counting from 0\)"):
        model.personalize(X[~train][:10], y100[:10], score_range=(0, 10))
    tasks = TaskSet.from_arrays(X[~train], y100, groups[~train])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate_personalization(model, tasks, n_support=(10,), n_repeats=2, random_state=0)
    named = [w for w in caught if "outside the range" in str(w.message)]
    assert len(named) == 1 and "'r10'" in str(named[0].message)  # once, not per draw


@pytest.mark.parametrize("est", ESTIMATORS, ids=_ids)
def test_raters_of_another_scale_are_named_at_fit_as_the_meta_learner_names_them(
        est, ratings):
    # The consensus averaged 1-5 ratings with 0-500 ones as on one scale, silently.
    X, y, groups = ratings
    big = np.isin(groups, [f"r{u:02d}" for u in range(3, 12)])
    with pytest.warns(PIAAWarning) as record:
        clone(est).fit(X, np.where(big, 125 * (y - 1), y), groups=groups)
    odd = [w for w in record if "another scale" in str(w.message)]
    assert len(odd) == 1 and odd[0].filename == __file__
    assert str(odd[0].message).startswith(
        "3 of 12 training rater(s) have scores that look like another scale than the other "
        "raters', within the range (0, 500) taken from all the ratings: 'r00' (1 to 5: span "
        "0.8%); 'r01' (1 to 5: span 0.8%); 'r02' (1 to 5: span 0.8%). The consensus ")


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED, "data", "liking")),
                    reason="../shared/data/liking not available")
def test_real_raters_on_one_slider_are_not_taken_for_another_scale():
    # The liking set's 100 raters use different parts of its 0-500 slider (one 433-499.5,
    # one 262-382.5, one all 500): one scale, and nothing to say of it.
    import csv  # not pandas: the README's test environment has none

    with open(os.path.join(SHARED, "data", "liking", "ratings.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    image = np.unique([r["image"] for r in rows], return_inverse=True)[1]
    X = np.random.RandomState(0).randn(image.max() + 1, 4)[image]
    scores = np.array([float(r["score"]) for r in rows])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ConsensusRidgeRegressor().fit(X, scores, groups=np.array([r["rater"] for r in rows]))
    assert not [w for w in record if "another scale" in str(w.message)]
    assert [w for w in record if "same score" in str(w.message)]  # the rater of all 500s


def test_the_built_in_benchmark_is_one_scale():
    data = make_aesthetic_benchmark(n_images=120, n_raters=40, images_per_rater=60,
                                    image_size=16, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        ConsensusRidgeRegressor().fit(data.attributes[data.image_index], data.y,
                                      groups=data.groups)


@pytest.fixture(scope="module")
def meta_learner_words():
    """What the meta-learner says of constant raters at fit and of equal scores."""
    X, y, groups, _ = make_rating_features()
    y = y.copy()
    y[groups == "r03"], y[groups == "r07"] = 4.0, 2.0
    with warnings.catch_warnings(record=True) as fitting:
        warnings.simplefilter("always")
        meta = MetaAestheticRegressor(**TINY).fit(X, y, groups=groups)
    with warnings.catch_warnings(record=True) as personalizing:
        warnings.simplefilter("always")
        meta.personalize(X[:10], np.full(10, 3.0))
        meta.personalize(X[:1], [3.0])
    return ([str(w.message) for w in fitting if "same score" in str(w.message)],
            [str(w.message) for w in personalizing])


@pytest.mark.parametrize("est", ESTIMATORS, ids=_ids)
def test_constant_raters_and_equal_scores_are_named_as_the_meta_learner_names_them(
        est, ratings, meta_learner_words):
    # A rater who scored every image alike (one of the liking set's rated all 55 images
    # 500) was taken silently by the baselines, where the meta-learner named it.
    fitting, personalizing = meta_learner_words
    X, y, groups = ratings
    y = y.copy()
    y[groups == "r03"], y[groups == "r07"] = 4.0, 2.0
    with pytest.warns(PIAAWarning) as record:
        prior = clone(est).fit(X, y, groups=groups)
    same = [w for w in record if "same score" in str(w.message)]
    assert [str(w.message) for w in same] == fitting and same[0].filename == __file__
    assert fitting[0].startswith("2 of 12 training rater(s) gave every image the same "
                                 "score: 'r03' (80 images, all 4), 'r07' (80 images, all 2).")
    for Xs, ys, words in ((X[:10], np.full(10, 3.0), personalizing[0]),
                          (X[:1], [3.0], personalizing[1])):
        with pytest.warns(PIAAWarning) as record:
            prior.personalize(Xs, ys)
        assert [str(w.message) for w in record] == [words]
        assert record[0].filename == __file__
        with pytest.warns(PIAAWarning) as record:
            PersonalizedBaseline(prior).fit(Xs, ys)
        assert [str(w.message) for w in record] == [words]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        prior.personalize(X[:10], [3.0] * 9 + [4.0])
        clone(est).fit(*ratings[:2], groups=groups)


def test_scale_advice_names_what_the_model_takes(ratings, tiny_params):
    # "set score_range=(low, high) ... on the estimator" to a baseline, which has no
    # score_range (and to a pipeline, whose step takes it under its own name)
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn_piaa import personalized_srocc

    X, y, groups = ratings
    test = np.isin(groups, ["r10", "r11"])
    wide = y[test] * 20  # 1-5 ratings read as 20-100
    ridge = ConsensusRidgeRegressor().fit(X[~test], y[~test], groups=groups[~test])
    with pytest.warns(PIAAWarning, match=r"rescale their scores onto the training raters' "
                                         r"scale \(this model takes no score_range\)"):
        personalized_srocc(ridge, X[test], wide, groups[test], n_support=5)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("meta", MetaAestheticRegressor(**tiny_params))])
    pipe.fit(X[~test], y[~test], meta__groups=groups[~test])
    with pytest.raises(ValueError, match=r"give the estimator meta__score_range=\(low, "
                                         r"high\) of the rating scale"):
        personalized_srocc(pipe, X[test], wide, groups[test], n_support=5)


def test_consensus_is_the_plain_mean_of_each_images_ratings():
    # image 0 rated twice, image 1 once, image 2 never
    y = np.array([1.0, 3.0, 5.0])
    got = consensus_scores(y, np.array([0, 0, 1]), 3)
    np.testing.assert_allclose(got, [2.0, 5.0, 0.0])


def _user(ratings, seed=3, n=20):
    X, y, groups = ratings
    rng = np.random.RandomState(seed)
    Xu = rng.randn(40, X.shape[1]).astype(np.float32)
    yu = Xu @ rng.randn(X.shape[1]) + 0.1 * rng.randn(40)
    return Xu[:n], yu[:n], Xu[n:]


@pytest.mark.parametrize("alphas, n_support, alpha", [
    ((3.0,), 20, 3.0),  # the penalty per feature, times the width
    ((0.001, 1000.0), 2, 1000.0),  # two support images: the largest penalty
])
def test_residual_ridge_penalty_is_per_feature_times_the_width(ratings, alphas, n_support,
                                                               alpha):
    X, y, groups = ratings
    prior = UserRidgeRegressor(alphas=alphas).fit(X, y, groups=groups)
    Xs, ys, Xq = _user(ratings, n=n_support)
    user = prior.personalize(Xs, ys)
    Z = prior.scaler_.transform(Xs.astype(np.float64))
    ref = Ridge(alpha=alpha * X.shape[1]).fit(Z, ys - prior.mean_score_)
    want = prior.mean_score_ + ref.predict(prior.scaler_.transform(Xq.astype(np.float64)))
    np.testing.assert_allclose(user.predict(Xq), want, rtol=1e-6, atol=1e-8)


def test_residual_is_taken_against_the_prior_mapped_onto_the_raters_scale(ratings):
    from sklearn_piaa.baselines import ConsensusRidgeRegressor

    X, y, groups = ratings  # 1-5 scores
    prior = ConsensusRidgeRegressor(alphas=(3.0,)).fit(X, y, groups=groups)
    Xs, ys, Xq = _user(ratings)
    ys = np.clip(50 + 10 * ys, 0, 100)  # a rater on 0-100
    user = prior.personalize(Xs, ys, score_range=(0, 100))
    lo, hi = prior.score_range_

    def mapped(A):
        return (prior.predict(A) - lo) * 100 / (hi - lo)

    Z = prior.scaler_.transform(Xs.astype(np.float64))
    ref = Ridge(alpha=3.0 * X.shape[1]).fit(Z, ys - mapped(Xs))
    want = mapped(Xq) + ref.predict(prior.scaler_.transform(Xq.astype(np.float64)))
    np.testing.assert_allclose(user.predict(Xq), want, rtol=1e-6, atol=1e-6)


def _data(seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(300, 6)
    y = np.clip(np.round(3 + X[:, 0] + 0.5 * rng.randn(300)), 1, 5)
    return X, y, np.repeat([0, 1, 2], 100)


def test_levels_are_the_distinct_scores_of_a_five_point_scale():
    X, y, g = _data()
    usar = USARRegressor(n_components=4, random_state=0).fit(X, y, groups=g)
    np.testing.assert_allclose(usar.levels_, [1, 2, 3, 4, 5])
    np.testing.assert_allclose(usar.bin_edges_, [1.5, 2.5, 3.5, 4.5])


def test_ppr_is_the_standardized_similarity_to_the_favourites_minus_to_all():
    X, y, g = _data(1)
    usar = USARRegressor(variant="ppr", top_fraction=0.3, n_components=4,
                         random_state=0).fit(X, y, groups=g)
    rng = np.random.RandomState(2)
    Xs, Xq = rng.randn(10, 6), rng.randn(15, 6)
    ys = 10 * rng.randn(10)  # spread far from 1
    user = usar.personalize(Xs, ys)

    def unit(A):
        P = usar.pca_.transform(usar.scaler_.transform(A))
        return P / np.linalg.norm(P, axis=1, keepdims=True)

    Us = unit(Xs)
    top = Us[np.argsort(-ys)[:3]].mean(0)
    ppr_s = Us @ top - Us @ Us.mean(0)
    ppr_q = unit(Xq) @ top - unit(Xq) @ Us.mean(0)
    want = ys.mean() + (ppr_q - ppr_s.mean()) / ppr_s.std() * ys.std()
    np.testing.assert_allclose(user.predict(Xq), want, rtol=1e-6, atol=1e-8)


def test_both_with_ppr_weight_zero_is_pad():
    X, y, g = _data(2)
    rng = np.random.RandomState(3)
    Xs, ys, Xq = rng.randn(12, 6), rng.randint(1, 6, 12).astype(float), rng.randn(10, 6)
    both = USARRegressor(variant="both", ppr_weight=0.0, n_components=4,
                         random_state=0).fit(X, y, groups=g)
    pad = USARRegressor(variant="pad", n_components=4, random_state=0).fit(X, y, groups=g)
    np.testing.assert_allclose(both.personalize(Xs, ys).predict(Xq),
                               pad.personalize(Xs, ys).predict(Xq), rtol=1e-9)


def _shared_taste(n_images=200, n_raters=6, random_state=0):
    """Raters who all score consensus + their own offset, on strongly correlated features
    (a first principal component far above the others)."""
    rng = np.random.RandomState(random_state)
    common = rng.randn(n_images, 1)
    feats = (common + 0.3 * rng.randn(n_images, 8)).astype(np.float32)
    consensus = 3 + 0.8 * common[:, 0] + 0.3 * (feats[:, 1] - feats[:, 2])
    X, y, groups = [], [], []
    for u in range(n_raters):
        X.append(feats)
        y.append(consensus + 0.2 * (u - n_raters / 2))
        groups.append(np.full(n_images, u))
    return np.concatenate(X), np.concatenate(y), np.concatenate(groups), feats, consensus


def test_zero_shot_prediction_is_the_mean_training_raters_fit():
    # Every training rater is the consensus plus an offset: the mean training rater
    # (the zero-shot prediction) reproduces the consensus, in its units (slope 1), on
    # the very images fitted. The item factors must be built the same way in fit and
    # in predict for that.
    X, y, groups, feats, consensus = _shared_taste()
    fpmf = FPMFRegressor(n_factors=2, n_components=4, max_iter=30, random_state=0)
    fpmf.fit(X, y, groups=groups)
    pred = fpmf.predict(feats)
    slope = np.polyfit(consensus, pred, 1)[0]
    assert 0.8 < slope < 1.2, slope
    assert np.abs(pred - consensus).mean() < 0.25 * consensus.std()


def test_zero_shot_prediction_is_the_unweighted_mean_rater():
    # "the zero-shot prediction is the mean rater's": the mean of the raters, not of the
    # ratings. A rater with 200 ratings at consensus + 1 and one with 50 at consensus - 1:
    # the mean rater is the consensus itself (the mean rating is 0.6 above it).
    rng = np.random.RandomState(0)
    feats = rng.randn(200, 6).astype(np.float32)
    consensus = 3 + 0.5 * feats[:, 0]
    X = np.concatenate([feats, feats[:50]])
    y = np.concatenate([consensus + 1, consensus[:50] - 1])
    groups = np.repeat(["a", "b"], [200, 50])
    fpmf = FPMFRegressor(n_factors=2, n_components=4, max_iter=30, random_state=0)
    pred = fpmf.fit(X, y, groups=groups).predict(feats)
    assert abs((pred - consensus).mean()) < 0.2, (pred - consensus).mean()


def test_negative_attribute_columns_are_refused(ratings):
    # -1 would silently take the last column (np.delete, X[:, -1]) as an attribute.
    X, y, groups = ratings
    with pytest.raises(ValueError, match="attribute_columns must index"):
        PAMRegressor(variant="both", attribute_columns=[-1, 6], n_content_classes=5,
                     random_state=0).fit(X, y, groups=groups)


def _with_column_changed(result, column, row, delta):
    other = copy.copy(result)
    other.table = result.table.copy()
    other.table[column][row] += delta
    return other


def test_paired_difference_refuses_a_single_draw_of_another_seed_or_query_size(ratings):
    # One unpaired draw among many is as wrong as all of them: it must be refused.
    train, test = _split(ratings)
    a = _evaluate(UserRidgeRegressor().fit(train), test)
    b = _evaluate(ConsensusRidgeRegressor().fit(train), test)
    paired_difference(a, b)  # paired
    with pytest.raises(ValueError, match=r"other support draws: 1 of 12"):
        paired_difference(a, _with_column_changed(b, "seed", 0, 1))
    with pytest.raises(ValueError, match=r"query sets of other sizes: 1 of 12"):
        paired_difference(a, _with_column_changed(b, "n_query", 0, 1))


def test_format_table_cells_are_the_summary_std_and_the_paired_standard_error(ratings):
    train, test = _split(ratings)
    results = {"consensus_ridge": _evaluate(ConsensusRidgeRegressor().fit(train), test),
               "ridge": _evaluate(UserRidgeRegressor().fit(train), test)}
    lines = format_table(results, reference="ridge").splitlines()
    header, consensus, ridge = lines[0], lines[2], lines[3]
    cells = consensus.split()[1:]  # after the key
    s = results["consensus_ridge"].summary
    # 5 images, 20 images, prior only @5: "mean ± std", the std to 3 decimals
    assert cells[0:3] == [f"{s[5]['personalized'].mean:.3f}", "±",
                          f"{s[5]['personalized'].std:.3f}"]
    assert cells[3:6] == [f"{s[20]['personalized'].mean:.3f}", "±",
                          f"{s[20]['personalized'].std:.3f}"]
    assert cells[6:9] == [f"{s[5]['prior'].mean:.3f}", "±", f"{s[5]['prior'].std:.3f}"]
    # the paired cells: a signed mean difference ± its standard error over raters
    diff = paired_difference(results["consensus_ridge"], results["ridge"])
    for i, k in zip((9, 12), (5, 20)):
        assert cells[i:i + 3] == [f"{diff[k][0]:+.3f}", "±", f"{diff[k][1]:.3f}"]
        assert cells[i][0] in "+-"
    # the reference's own row has no paired cells (a difference to itself): its two
    # cells and its prior, n/a (the per-user ridge has no zero-shot ranking)
    assert len(ridge.split()) == 1 + 6 + 1 and len(ridge) < len(header)


def test_paired_difference_leaves_out_draws_undefined_in_the_reference(ratings):
    # An undefined (nan) SROCC in either result drops that pair only; the rater's
    # difference is averaged over the repeats both define.
    train, test = _split(ratings)
    a = _evaluate(UserRidgeRegressor().fit(train), test, n_support=(5,))
    b = _evaluate(ConsensusRidgeRegressor().fit(train), test, n_support=(5,))
    ta, tb = a.table, b.table.copy()
    row = 0  # rater r09, repeat 0
    tb["srocc_personalized"][row] = np.nan
    holed = copy.copy(b)
    holed.table = tb
    mean, se, n = paired_difference(a, holed)[5]
    per_rater = []
    for r in HELD:
        sel = (ta["rater"] == r) & np.isfinite(tb["srocc_personalized"])
        per_rater.append(np.mean(ta["srocc_personalized"][sel] - tb["srocc_personalized"][sel]))
    assert n == 3 and np.isfinite(mean)
    assert mean == pytest.approx(np.mean(per_rater))
    assert se == pytest.approx(np.std(per_rater, ddof=1) / np.sqrt(3))


def test_compare_methods_scores_test_raters_of_another_scale_with_score_range(
        ratings, tiny_params):
    # Table IV: test raters on a 10x scale, their range given. Without score_range reaching
    # evaluate_personalization the meta-learner refuses their scores.
    from sklearn_piaa.report import compare_methods
    X, y, groups = ratings
    held = np.isin(groups, HELD)
    train = TaskSet.from_arrays(X[~held], y[~held], groups[~held])
    test = TaskSet.from_arrays(X[held], 10 * y[held], groups[held])
    lo, hi = float(10 * y[held].min()), float(10 * y[held].max())
    results = compare_methods(train, test, algorithms=("blg",), n_support=(5,),
                              n_repeats=1, score_range=(lo, hi), **tiny_params)
    assert len(results["blg"].table) == 3


def test_compare_methods_seeds_the_meta_learners_training(ratings, tiny_params):
    # random_state reaches the MetaAestheticRegressor compare_methods builds: its
    # row is that of the same estimator seeded by hand, and the same on a second call.
    train, test = _split(ratings)
    params = {k: v for k, v in tiny_params.items() if k != "random_state"}
    kw = dict(n_support=(5,), n_repeats=2)
    first = compare_methods(train, test, algorithms=("blg",), random_state=3, **kw, **params)
    second = compare_methods(train, test, algorithms=("blg",), random_state=3, **kw, **params)
    by_hand = evaluate_personalization(
        MetaAestheticRegressor(algorithm="blg", random_state=3, **params).fit(train), test,
        random_state=3, **kw)
    np.testing.assert_array_equal(first["blg"].table["srocc_personalized"],
                                  second["blg"].table["srocc_personalized"])
    np.testing.assert_array_equal(first["blg"].table["srocc_personalized"],
                                  by_hand.table["srocc_personalized"])


def test_compare_methods_evaluates_a_method_on_its_method_tasks(ratings):
    # method_tasks' features are those the method is fitted and evaluated on.
    train, test = _split(ratings)
    train3, test3 = _split(ratings, cols=slice(0, 3))  # other features, same ratings
    kw = dict(algorithms=("ridge",), n_support=(5, 20), n_repeats=2)
    given = compare_methods(train, test, method_tasks={"ridge": (train3, test3)}, **kw)
    on_three = compare_methods(train3, test3, **kw)
    on_all = compare_methods(train, test, **kw)
    assert not np.array_equal(on_three["ridge"].table["srocc_personalized"],
                              on_all["ridge"].table["srocc_personalized"])
    np.testing.assert_array_equal(given["ridge"].table["srocc_personalized"],
                                  on_three["ridge"].table["srocc_personalized"])


def test_paired_difference_accepts_a_reference_table_built_without_seeds(ratings):
    # a table without a seed column (built by hand) on either side is paired on its
    # keys alone; one side's seeds are not compared to the other's missing ones.
    train, test = _split(ratings)
    a = evaluate_personalization(UserRidgeRegressor().fit(train), test, n_support=(5,),
                                 n_repeats=2, random_state=0)
    b = evaluate_personalization(ConsensusRidgeRegressor().fit(train), test,
                                 n_support=(5,), n_repeats=2, random_state=0)
    seedless = copy.copy(b)
    seedless.table = rfn.drop_fields(b.table, "seed", usemask=False)
    assert "seed" not in seedless.table.dtype.names
    expected = paired_difference(a, b)
    assert paired_difference(a, seedless) == expected
    back = paired_difference(seedless, a)
    assert back[5][0] == pytest.approx(-expected[5][0])
