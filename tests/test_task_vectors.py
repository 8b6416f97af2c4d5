import copy
import inspect
import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from conftest import edited_state
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator

import sklearn_piaa._task_vectors as task_vectors
from sklearn_piaa import (
    MetaAestheticRegressor,
    PersonalizedNet,
    PIAAWarning,
    TaskSet,
    TaskVectorRegressor,
    load_model,
    save_model,
    srocc,
)
from sklearn_piaa._task_vectors import _fold_batch_norm

BASE = dict(backbone=None, hidden_sizes=(16,), algorithm="average", n_iterations=40,
            support_size=20, query_size=10, finetune_epochs=5, random_state=0)


def two_tastes(n_raters=8, per_rater=120, n_images=300, random_state=0):
    """Two groups of raters: they agree on feature 1 and disagree on feature 0."""
    rng = np.random.RandomState(random_state)
    feats = rng.randn(n_images, 6).astype(np.float32)
    X, y, groups, side = [], [], [], {}
    for u in range(n_raters):
        sign = 1.0 if u % 2 else -1.0
        idx = rng.choice(n_images, per_rater, replace=False)
        latent = 1.5 * sign * feats[idx, 0] + 0.7 * feats[idx, 1] + 0.3 * rng.randn(per_rater)
        X.append(feats[idx])
        y.append(np.clip(3 + latent, 1, 5))
        groups.append(np.full(per_rater, f"r{u}"))
        side[f"r{u}"] = "plus" if sign > 0 else "minus"
    return (np.concatenate(X), np.concatenate(y).astype(np.float32), np.concatenate(groups),
            side, feats)


@pytest.fixture(scope="module")
def fitted():
    X, y, groups, side, feats = two_tastes()
    torch.manual_seed(0)
    tv = TaskVectorRegressor(MetaAestheticRegressor(**BASE), sources=side, source_epochs=20,
                             source_lr=1e-2, random_state=0).fit(X, y, groups=groups)
    return tv, feats


@pytest.mark.parametrize("frozen", [False, True])
def test_a_base_of_another_kind_is_refused_before_anything_is_fitted(frozen):
    # a baseline as base was fitted in full before "base must be a
    # MetaAestheticRegressor"; a Ridge failed in its own words
    from sklearn_piaa.baselines import UserRidgeRegressor

    class Counted(UserRidgeRegressor):
        def fit(self, *args, **kwargs):
            raise AssertionError("the base was fitted")

    rng = np.random.RandomState(0)
    X, y, users = rng.randn(40, 3), rng.rand(40) * 4 + 1, np.repeat(np.arange(4), 10)
    base = FrozenEstimator(Counted()) if frozen else Counted()
    with pytest.raises(TypeError, match="base must be a MetaAestheticRegressor .* got "
                                        "Counted"):
        TaskVectorRegressor(base, n_sources=2).fit(X, y, groups=users)


def test_recovers_the_group_a_new_rater_belongs_to(fitted):
    tv, feats = fitted
    assert tv.source_names_ == ["minus", "plus"]
    rng = np.random.RandomState(1)
    gains = []
    for sign, own in ((1.0, 1), (-1.0, 0)):
        y = np.clip(3 + 1.5 * sign * feats[:, 0] + 0.7 * feats[:, 1]
                    + 0.3 * rng.randn(len(feats)), 1, 5)
        sup, qry = np.arange(20), np.arange(20, len(feats))
        net = tv.personalize(feats[sup], y[sup], random_state=0)
        lam = net.coefficients_
        # The rater's own group's task vector gets the larger coefficient ...
        assert lam[own] > lam[1 - own] + 0.1, lam
        # ... and the combined model ranks their other images better than the base.
        gains.append(srocc(y[qry], net.predict(feats[qry]))
                     - srocc(y[qry], tv.predict(feats[qry])))
    assert min(gains) > 0.2, gains


def test_combination_is_task_arithmetic(fitted):
    tv, feats = fitted
    x = torch.as_tensor(feats[:30])
    base = tv.base_.prior_net_.module_.eval()
    with torch.no_grad():
        assert torch.allclose(tv.combine([0.0, 0.0])(x), base(x))
        # theta_0 + 1 * tau_k is the fine-tuned network k (up to float rounding); batch
        # norm variances mix geometrically.
        tuned = tv.combine([0.0, 1.0]).state_dict()
        for k, v in base.state_dict().items():
            if k not in tv.task_vectors_:
                continue
            step = tv.task_vectors_[k][1]
            expected = v * torch.exp(step) if k.endswith("running_var") else v + step
            torch.testing.assert_close(tuned[k], expected)
        # Any coefficients keep the variances positive, even far past the sources.
        wild = tv.combine([-6.0, 9.0]).state_dict()
        assert all((wild[k] > 0).all() for k in wild if k.endswith("running_var"))


def test_folded_batch_norm_computes_the_same_network(fitted):
    tv, feats = fitted
    x = torch.as_tensor(feats[:40])
    module = tv.base_.prior_net_.module_
    lam = torch.tensor([0.7, -0.4])
    weights = tv._combined(lam, module)
    buffers = dict(module.named_buffers())
    folded = torch.func.functional_call(module.eval(), {**buffers,
                                                        **_fold_batch_norm(module, weights)},
                                        (x,))
    with torch.no_grad():
        torch.testing.assert_close(folded, tv.combine(lam.numpy())(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("coefficients", ["global", "layer"])
def test_kept_first_layer_products_fit_the_same_coefficients(fitted, monkeypatch,
                                                             coefficients):
    tv, feats = fitted
    tv = copy.copy(tv)
    tv.coefficients = coefficients
    x = torch.as_tensor(feats[:6])  # as many images as features: the products are kept
    y = np.clip(3 + 1.5 * feats[:6, 0], 1, 5)
    module = tv.base_.prior_net_.module_
    assert task_vectors._keeps_first_layer(module, x)
    assert not task_vectors._keeps_first_layer(module, torch.as_tensor(feats[:7]))
    made = []
    init = task_vectors._FirstLayer.__init__
    monkeypatch.setattr(task_vectors._FirstLayer, "__init__",
                        lambda self, *a: made.append(1) or init(self, *a))
    kept = tv._fit_coefficients(x, y, seed=0)
    assert made  # the products were kept
    monkeypatch.setattr(task_vectors, "_keeps_first_layer", lambda module, x: False)
    combined = tv._fit_coefficients(x, y, seed=0)
    assert len(made) == 1
    assert kept.abs().max() > 0.05  # the fit moved: the two paths are compared on something
    torch.testing.assert_close(kept, combined, rtol=1e-4, atol=1e-5)
    assert isinstance(module.layers[0], torch.nn.Linear)  # replaced in a copy only


def test_ratings_without_an_ordered_pair_are_announced(fitted):
    tv, feats = fitted
    for y in (np.full(8, 4.0), [3.0]):
        with pytest.warns(PIAAWarning, match="ratings are all equal") as caught:
            net = tv.personalize(feats[:len(y)], y, random_state=0)
        assert len(caught) == 1  # one cause, one warning: the rank loss's own
        assert caught[0].filename == __file__  # shown at the user's line
        np.testing.assert_array_equal(net.coefficients_, 0.0)
    # Fitted to the level, the coefficients move all the same (legitimately), yet equal
    # scores say nothing of the rater's ranking: named as the meta-learner names them.
    mse = clone(tv).set_params(loss="mse")
    mse.__dict__.update({k: v for k, v in vars(tv).items() if k.endswith("_")})
    for y, words in ((np.full(8, 4.0), r"personalize got 8 rated images, all scored 4: "
                                       r"they say nothing about how this rater ranks"),
                     ([3.0], r"personalize got one rated image: it says nothing")):
        with pytest.warns(PIAAWarning, match=words) as caught:
            net = mse.personalize(feats[:len(y)], y)
        assert len(caught) == 1 and caught[0].filename == __file__
    assert np.abs(net.coefficients_).max() > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        mse.personalize(feats[:8], [4.0] * 7 + [3.0])


def test_features_far_outside_the_bases_are_named_with_the_coefficients_left_at_0(fitted):
    # On features 1e6 times the base's its output saturates: the coefficients got no
    # gradient, stayed 0, and personalize returned the base's network without a word.
    tv, feats = fitted
    y = np.clip(3 + 1.5 * feats[:20, 0], 1, 5)
    huge = feats[:20] * np.float32(1e6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = tv.personalize(huge, y, random_state=0)
    np.testing.assert_array_equal(net.coefficients_, 0.0)
    assert len(caught) == 1 and caught[0].filename == __file__, [str(w.message) for w in caught]
    assert re.match(r"20 row\(s\) of X \(rows 0, 1, .*\) lie far outside the features the "
                    r"model was fitted on: norms up to .*e\+06, .* The base's output "
                    r"saturates on them, so fitting the rater's coefficients moved nothing: "
                    r"they stayed 0 \(the base's network\)\. Scale them",
                    str(caught[0].message))
    # A base that recorded no norm (saved by an earlier version) cannot name the rows,
    # but coefficients that stayed 0 are still said.
    old = copy.deepcopy(tv)
    old.base_.input_.largest_norm = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # and the fine-tuned net's collapse, named too
        old.personalize(huge, y, random_state=0)
    assert any(re.match(r"the rater's coefficients stayed 0 \(the base's network\): the "
                        r"loss did not change with them on the rater's 20 image\(s\)\. The "
                        r"base's output is saturated", str(w.message)) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        assert np.abs(tv.personalize(feats[:20], y, random_state=0).coefficients_).max() > 0


def test_fit_on_a_fitted_base_names_raters_whose_scores_are_all_equal(fitted):
    # The base's fit names them; a base kept as fitted did not, and the sources were
    # fine-tuned on them without a word.
    tv, _ = fitted
    X, y, groups, side, _ = two_tastes(n_raters=4, per_rater=40)
    y[groups == "r1"] = 4.0
    kept = FrozenEstimator(tv.base_)
    with pytest.warns(PIAAWarning, match=r"^1 of 4 training rater\(s\) gave every image the "
                                         r"same score: 'r1' \(40 images, all 4\)") as caught:
        TaskVectorRegressor(kept, sources=side, source_epochs=1, random_state=0).fit(
            X, y, groups=groups)
    assert len(caught) == 1 and caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        TaskVectorRegressor(kept, sources=side, source_epochs=1, random_state=0).fit(
            *two_tastes(n_raters=4, per_rater=40)[:3])


def test_fit_on_a_fitted_base_names_raters_of_another_scale(fitted):
    # The base's fit names them; a base kept as fitted fine-tuned the sources on them
    # without a word, or failed naming rows of one group of raters.
    tv, _ = fitted
    X, y, groups, side, _ = two_tastes(n_raters=4, per_rater=40)
    low, high = tv.base_.score_range_
    narrow = y.copy()
    narrow[groups == "r1"] = low + (narrow[groups == "r1"] - low) * 0.02
    kept = FrozenEstimator(tv.base_)
    with pytest.warns(PIAAWarning, match=r"^1 of 4 training rater\(s\) have scores that look "
                                         r"like another scale .* within the base's range "
                                         r".*: 'r1' \(") as caught:
        TaskVectorRegressor(kept, sources=side, source_epochs=1, random_state=0).fit(
            X, narrow, groups=groups)
    assert len(caught) == 1
    # every rater on another scale than the base's: named once, not group by group with
    # personalize's advice of a score_range that fit does not take
    every = low + (y - low) * 0.02
    with pytest.warns(PIAAWarning, match=r"^4 of 4 training rater\(s\) have scores that look "
                                         r"like another scale than that range's") as caught:
        TaskVectorRegressor(kept, sources=side, source_epochs=1, random_state=0).fit(
            X, every, groups=groups)
    assert len(caught) == 1, [str(w.message) for w in caught]
    wide = y.copy()
    wide[groups == "r2"] *= 20
    with pytest.raises(ValueError, match=r"^40 score\(s\) lie outside the base's range .*"
                                         r"\(rater 'r2', row 80 of X"):
        TaskVectorRegressor(kept, sources=side, source_epochs=1, random_state=0).fit(
            X, wide, groups=groups)


def test_personalize_returns_a_fitted_skorch_net_that_saves(fitted, tmp_path):
    tv, feats = fitted
    y = np.clip(3 + feats[:15, 0], 1, 5)
    net = tv.personalize(feats[:15], y, random_state=0)
    assert isinstance(net, PersonalizedNet)
    assert net.prior_.prior_net_ is tv.base_.prior_net_ and net.coefficients_.shape == (2,)
    assert len(net.history) == 0  # finetune_epochs=0: the combination as it is
    with pytest.raises(TypeError, match="cannot be cloned"):  # it would keep coefficients_
        clone(net)
    tuned = clone(tv).set_params(finetune_epochs=3)
    tuned.__dict__.update({k: v for k, v in tv.__dict__.items() if k.endswith("_")})
    net3 = tuned.personalize(feats[:15], y, random_state=0)
    assert len(net3.history) == 3
    np.testing.assert_allclose(net3.coefficients_, net.coefficients_)
    assert not np.allclose(net3.predict(feats[20:30]), net.predict(feats[20:30]))
    save_model(net, tmp_path / "me.pt")
    loaded = load_model(tmp_path / "me.pt")
    np.testing.assert_allclose(loaded.predict(feats[20:30]), net.predict(feats[20:30]),
                               rtol=1e-6)
    # the rater's coefficients were lost, and with them the refusal to be cloned
    np.testing.assert_array_equal(loaded.coefficients_, net.coefficients_)
    with pytest.raises(TypeError, match="cannot be cloned"):
        clone(loaded)


def test_layer_coefficients_and_another_scale(fitted):
    tv, feats = fitted
    layer = clone(tv).set_params(coefficients="layer", loss="mse+rank")
    layer.__dict__.update({k: v for k, v in tv.__dict__.items() if k.endswith("_")})
    y = np.clip(50 + 100 * feats[:20, 0], 0, 500)  # a 0-500 slider
    net = layer.personalize(feats[:20], y, score_range=(0, 500), random_state=0)
    assert net.coefficients_.shape == (2, len(tv.task_vectors_))
    pred = net.predict(feats[20:60])
    assert pred.min() >= 0 and pred.max() <= 500 and pred.std() > 1
    assert tv.base_.score_range_ == pytest.approx((1.0, 5.0), abs=0.01)  # base unchanged


def test_frozen_base_and_given_sources_need_no_data(fitted):
    tv, feats = fitted
    base = tv.base_
    before = {k: v.clone() for k, v in base.prior_net_.module_.state_dict().items()}
    sources = [tv.combine([1.0, 0.0]), tv.combine([0.0, 1.0])]
    given = TaskVectorRegressor(FrozenEstimator(base), sources=sources).fit()
    assert given.n_features_in_ == base.n_features_in_ == feats.shape[1]
    for k, v in base.prior_net_.module_.state_dict().items():
        assert torch.equal(v, before[k])
    for k in tv.task_vectors_:
        torch.testing.assert_close(given.task_vectors_[k], tv.task_vectors_[k],
                                   rtol=1e-5, atol=1e-4)


def test_a_float64_source_is_combined_in_the_bases_dtype(fitted):
    # a source fine-tuned under a float64 default dtype fitted, then combine and
    # personalize failed in torch ("both inputs should have same dtype")
    tv, feats = fitted
    sources = [copy.deepcopy(tv.combine([1.0, 0.0])).double(), tv.combine([0.0, 1.0])]
    given = TaskVectorRegressor(FrozenEstimator(tv.base_), sources=sources, coef_steps=3,
                                random_state=0).fit()
    assert all(t.dtype == torch.float32 for t in given.task_vectors_.values())
    np.testing.assert_allclose(given.combine([1.0, 0.0])(torch.from_numpy(feats))
                               .detach().numpy(),
                               tv.combine([1.0, 0.0])(torch.from_numpy(feats)).detach().numpy(),
                               rtol=1e-4, atol=1e-4)
    X, y, *_ = two_tastes(n_raters=2, per_rater=12, random_state=3)
    assert np.isfinite(given.personalize(X[:8], y[:8], random_state=0).predict(X)).all()


def test_a_clone_keeps_the_given_fitted_sources(fitted):
    # cross_val_score and GridSearchCV clone the estimator: fitted models given as
    # sources must come through fitted, or the clone cannot be fitted at all.
    tv, feats = fitted
    X, y, groups, _, _ = two_tastes(n_raters=4, per_rater=40, random_state=1)
    nets = [tv.base_.personalize(X[groups == g], y[groups == g], random_state=0)
            for g in ("r0", "r1")]
    given = TaskVectorRegressor(FrozenEstimator(tv.base_), sources=nets, coef_steps=3)
    twin = clone(given)
    assert twin.sources is not given.sources
    assert all(a is b for a, b in zip(twin.sources, given.sources))
    given.fit()
    twin.fit()
    for k in given.task_vectors_:
        assert torch.equal(twin.task_vectors_[k], given.task_vectors_[k])
    # the base inside a FrozenEstimator as a source, too
    frozen = TaskVectorRegressor(FrozenEstimator(tv.base_),
                                 sources=[FrozenEstimator(tv.base_), nets[0]]).fit()
    assert all(float(t[0].abs().max()) == 0.0 for t in frozen.task_vectors_.values())
    with pytest.raises(NotFittedError, match=r"sources\[1\] is a PersonalizedNet that is "
                                             "not fitted"):
        TaskVectorRegressor(FrozenEstimator(tv.base_),
                            sources=[nets[0], clone(nets[1])]).fit()


def test_clusters_sources_and_pickle(ratings):
    X, y, groups = ratings
    tv = TaskVectorRegressor(MetaAestheticRegressor(**BASE), n_sources=3, source_epochs=2,
                             coef_steps=5, random_state=0).fit(X, y, groups=groups)
    assert len(tv.source_names_) == 3 and tv.n_features_in_ == X.shape[1]
    assert sorted(r for m in tv.source_raters_.values() for r in m) == sorted(set(groups))
    again = pickle.loads(pickle.dumps(tv))
    a = tv.personalize(X[:10], y[:10], random_state=0).predict(X[10:20])
    b = again.personalize(X[:10], y[:10], random_state=0).predict(X[10:20])
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert clone(tv).get_params()["base__algorithm"] == "average"


def test_bad_input_is_named(fitted, ratings):
    tv, feats = fitted
    X, y, groups = ratings
    base = MetaAestheticRegressor(**BASE)
    with pytest.raises(ValueError, match=r"no group label for 11 training rater\(s\): "
                                         r"'r01', .* \(11 in all\)\.$"):
        TaskVectorRegressor(base, sources={"r00": "a"}).fit(X, y, groups=groups)
    codes = np.unique(groups, return_inverse=True)[1].ravel()  # int ids, labelled as text
    with pytest.raises(ValueError, match="keys spell these raters' ids with another type"):
        TaskVectorRegressor(base, sources={str(i): "a" for i in range(12)}).fit(
            X, y, groups=codes)
    with pytest.raises(ValueError, match="needs the training raters"):
        TaskVectorRegressor(base, sources=[tv.combine([0, 0])]).fit()
    with pytest.raises(ValueError, match="empty list"):
        TaskVectorRegressor(base, sources=[]).fit(X, y, groups=groups)
    other = torch.nn.Sequential(torch.nn.Linear(6, 3))
    with pytest.raises(ValueError, match="source 0 does not have the base's architecture"):
        TaskVectorRegressor(FrozenEstimator(tv.base_), sources=[other]).fit()
    with pytest.raises(TypeError, match=r"sources\[0\] must be"):
        TaskVectorRegressor(FrozenEstimator(tv.base_), sources=["model.pt"]).fit()
    with pytest.raises(ValueError, match="coefficients must have shape"):
        tv.combine([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="outside the range"):
        tv.personalize(feats[:5], [1, 2, 3, 4, 9])
    with pytest.warns(UserWarning, match="only 12 training raters"):
        TaskVectorRegressor(base, n_sources=20, source_epochs=1).fit(
            TaskSet.from_arrays(X, y, groups))


def test_whole_network_base_fits_coefficients_on_normalized_pixels():
    # The coefficient fit fed the network raw 0-255 pixels (the datasets yield bytes
    # that PersonalizedNet.infer normalizes): a saturated, near-constant network.

    from sklearn_piaa import _task_vectors
    rng = np.random.RandomState(0)
    X = (rng.rand(24, 24, 24, 3) * 255).astype(np.uint8)
    y = np.clip(1 + 4 * X.mean(axis=(1, 2, 3)) / 255 + rng.rand(24), 1, 5)
    base = MetaAestheticRegressor(backbone="tiny_cnn", train_backbone=True, hidden_sizes=(8,),
                                  n_iterations=2, support_size=6, query_size=3,
                                  tasks_per_batch=2, finetune_epochs=1, random_state=0)
    base.fit(X, y, groups=np.repeat(np.arange(2), 12))
    x = _task_vectors._as_inputs(base.input_, X[:6], base.prior_net_.device)
    with torch.no_grad():
        direct = base.prior_net_.module_.eval()(x).reshape(-1).numpy()
    np.testing.assert_allclose(direct, base.predict(X[:6]), rtol=1e-5)


def test_divergence_names_the_task_vector_settings(fitted):
    X, y, groups, side, feats = two_tastes(n_raters=4, per_rater=40)
    small = dict(BASE, n_iterations=2)
    with pytest.raises(FloatingPointError, match="source_lr=1e\\+30"):
        TaskVectorRegressor(MetaAestheticRegressor(**small), sources=side, source_epochs=2,
                            source_lr=1e30, random_state=0).fit(X, y, groups=groups)
    tv, feats = fitted
    wild = clone(tv).set_params(coef_lr=1e30)
    wild.__dict__.update({k: v for k, v in tv.__dict__.items() if k.endswith("_")})
    with pytest.raises(FloatingPointError, match="rater's coefficients diverged.*coef_lr"):
        wild.personalize(feats[:15], np.clip(3 + feats[:15, 0], 1, 5), random_state=0)


def test_feature_names_reach_the_base(fitted):
    pd = pytest.importorskip("pandas")  # not in the [test] extra
    X, y, groups, side, _ = two_tastes(n_raters=4, per_rater=40)
    df = pd.DataFrame(X, columns=list("abcdef"))
    tv = TaskVectorRegressor(MetaAestheticRegressor(**dict(BASE, n_iterations=2)),
                             sources=side, source_epochs=2, random_state=0)
    tv.fit(df, y, groups=groups)
    assert list(tv.base_.feature_names_in_) == list("abcdef")
    assert list(tv.feature_names_in_) == list("abcdef")
    # refused under this class's name, not the base's
    with pytest.raises(ValueError, match="when TaskVectorRegressor was fitted.*same order"):
        tv.predict(df[list("fedcba")])
    with pytest.raises(ValueError, match="when TaskVectorRegressor was fitted.*same order"):
        tv.personalize(df[list("fedcba")][:15], y[:15])


def test_an_unseeded_base_is_seeded_from_random_state():
    # A base without its own random_state was fitted unseeded: two fits with
    # random_state=0 differed.
    X, y, groups, side, feats = two_tastes(n_raters=4, per_rater=40)
    base = MetaAestheticRegressor(**dict(BASE, n_iterations=5, random_state=None))
    fits = [TaskVectorRegressor(base, sources=side, source_epochs=2, random_state=seed)
            .fit(X, y, groups=groups) for seed in (0, 0, np.random.RandomState(0))]
    assert base.random_state is None  # the user's base is left as it is
    first = fits[0].base_.predict(feats[:20])
    for tv in fits[1:]:
        assert tv.base_.random_state == fits[0].base_.random_state
        np.testing.assert_allclose(tv.base_.predict(feats[:20]), first, rtol=1e-6)
        for k in tv.task_vectors_:
            torch.testing.assert_close(tv.task_vectors_[k], fits[0].task_vectors_[k])
    seeded = TaskVectorRegressor(MetaAestheticRegressor(**dict(BASE, n_iterations=5)),
                                 sources=side, source_epochs=2, random_state=1)
    assert seeded.fit(X, y, groups=groups).base_.random_state == 0  # its own seed is kept


def test_the_default_base_is_seeded_from_random_state(monkeypatch):
    # The default base (EfficientNet, 1000 iterations) is seen only up to its fit.
    class Stop(Exception):
        pass

    seeds = []

    def stop(self, *args, **kwargs):
        seeds.append(self.random_state)
        raise Stop

    monkeypatch.setattr(MetaAestheticRegressor, "fit", stop)
    X = (np.random.RandomState(0).rand(12, 16, 16, 3) * 255).astype(np.uint8)
    y, groups = np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 3.0], 2), np.repeat(["a", "b"], 6)
    for seed in (0, 0, 1):
        with pytest.raises(Stop):
            TaskVectorRegressor(random_state=seed).fit(X, y, groups=groups)
    assert isinstance(seeds[0], int) and seeds[0] == seeds[1] != seeds[2]


def test_features_of_another_width_are_refused_under_its_own_name(fitted):
    tv, feats = fitted
    wide = np.hstack([feats[:5], feats[:5, :1]])
    y = np.full(5, 3.0)
    with pytest.raises(ValueError, match="but TaskVectorRegressor is expecting"):
        tv.predict(wide)
    with pytest.raises(ValueError, match="but TaskVectorRegressor is expecting"):
        tv.personalize(wide, y)


def test_a_personalized_net_names_the_task_vector_model_on_another_width(fitted):
    # the net's input adapter was the base's, which named MetaAestheticRegressor
    tv, feats = fitted
    net = tv.personalize(feats[:10], np.linspace(1, 5, 10), random_state=0)
    wide = np.hstack([feats[:5], feats[:5, :1]])
    with pytest.raises(ValueError, match="X has 7 features, but TaskVectorRegressor is "
                                         "expecting 6 features"):
        net.predict(wide)
    # the base keeps its own name
    with pytest.raises(ValueError, match="but MetaAestheticRegressor is expecting"):
        tv.base_.predict(wide)


def test_personalize_asks_for_scores_and_takes_an_array_like_without_len(fitted):
    from sklearn.utils.estimator_checks import _NotAnArray

    tv, feats = fitted
    with pytest.raises(ValueError, match=r"the rater's scores are required \(y=None given\)"):
        tv.personalize(feats[:10], None)
    y = np.linspace(1, 5, 10)
    expected = tv.personalize(feats[:10], y, random_state=0).predict(feats[10:20])
    net = tv.personalize(_NotAnArray(feats[:10]), y, random_state=0)
    np.testing.assert_array_equal(net.predict(feats[10:20]), expected)


def test_predictions_are_float32_as_documented_and_nets_know_their_width(fitted):
    tv, feats = fitted
    net = tv.personalize(feats[:10], np.linspace(1, 5, 10), random_state=0)
    assert net.n_features_in_ == tv.n_features_in_ == feats.shape[1]
    assert not hasattr(net, "feature_names_in_")
    for model in (tv, net):
        assert model.predict(feats[:5]).dtype == np.float32
        returns = inspect.getdoc(type(model).predict).split("Returns\n-------\n")[1]
        assert returns.startswith("ndarray of shape (n_samples,), float32\n")


def test_a_fitted_model_saves_and_loads_as_it_was(fitted, tmp_path):
    from sklearn_piaa import PIAAWarning

    tv, feats = fitted
    y = np.clip(3 + feats[:15, 0], 1, 5)
    save_model(tv, tmp_path / "tv.pt")
    loaded = load_model(tmp_path / "tv.pt")
    assert isinstance(loaded, TaskVectorRegressor)
    np.testing.assert_array_equal(loaded.predict(feats[20:40]), tv.predict(feats[20:40]))
    a = tv.personalize(feats[:15], y, random_state=0)
    b = loaded.personalize(feats[:15], y, random_state=0)
    np.testing.assert_array_equal(b.coefficients_, a.coefficients_)
    np.testing.assert_array_equal(b.predict(feats[20:40]), a.predict(feats[20:40]))
    assert loaded.source_names_ == tv.source_names_
    assert loaded.source_raters_ == tv.source_raters_
    assert loaded.n_features_in_ == tv.n_features_in_
    # its settings, sources (a dict of labels) and base estimator included: a clone refits
    assert loaded.get_params(deep=False)["sources"] == tv.sources
    def settings(est):
        return {k: v for k, v in clone(est).get_params().items() if k != "base"}

    assert settings(loaded) == settings(tv)  # base__... included
    with pytest.raises(ValueError, match="not fitted"):
        save_model(clone(tv), tmp_path / "unfitted.pt")

    # a frozen base stays frozen; given source models are not stored, and it says so
    sources = [tv.combine([1.0, 0.0]), tv.combine([0.0, 1.0])]
    given = TaskVectorRegressor(FrozenEstimator(tv.base_), sources=sources).fit()
    with pytest.warns(PIAAWarning, match="sources are fitted models"):
        save_model(given, tmp_path / "given.pt")
    again = load_model(tmp_path / "given.pt")
    assert isinstance(again.base, FrozenEstimator) and again.sources is None
    for k in given.task_vectors_:
        assert torch.equal(again.task_vectors_[k], given.task_vectors_[k])
    np.testing.assert_array_equal(
        again.personalize(feats[:15], y, random_state=0).predict(feats[20:40]),
        given.personalize(feats[:15], y, random_state=0).predict(feats[20:40]))
    # its refit asks for the sources again (was scikit-learn's "Got None instead")
    with pytest.raises(ValueError, match=r"sources is None, as in .* loaded from a file .* "
                                         r"set_params\(sources=\[\.\.\.\]\)"):
        clone(again).fit()


def test_a_damaged_task_vector_file_is_named(fitted, tmp_path):
    tv, _ = fitted
    save_model(tv, tmp_path / "tv.pt")
    state = edited_state(tmp_path / "tv.pt")
    first = next(iter(state["fitted"]["task_vectors"]))
    state["fitted"]["task_vectors"][first] = state["fitted"]["task_vectors"][first][:1]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt: the saved task vectors do not fit"):
        load_model(tmp_path / "bad.pt")
    del state["fitted"]
    torch.save(state, tmp_path / "worse.pt")
    with pytest.raises(ValueError, match="worse.pt.*entry 'fitted' is missing"):
        load_model(tmp_path / "worse.pt")


def test_numpy_labels_are_stored_as_plain_ones(fitted, tmp_path):
    # np.str_ is a str: stored as it was, the file held NumPy objects that loading refuses
    tv, feats = fitted
    numpy_labels = clone(tv).set_params(
        sources={np.str_(r): np.str_(g) for r, g in tv.sources.items()})
    numpy_labels.__dict__.update({k: v for k, v in tv.__dict__.items() if k.endswith("_")})
    numpy_labels.source_names_ = [np.str_(n) for n in tv.source_names_]
    save_model(numpy_labels, tmp_path / "tv.pt")
    loaded = load_model(tmp_path / "tv.pt")
    assert loaded.sources == tv.sources and loaded.source_names_ == tv.source_names_
    assert all(type(n) is str for n in loaded.source_names_)


def test_a_loaded_models_base_setting_is_placed_as_its_base(fitted, tmp_path):
    tv, _ = fitted
    save_model(tv, tmp_path / "tv.pt")
    state = edited_state(tmp_path / "tv.pt")
    # as a file saved on a GPU machine reads
    state["base"]["params"]["device"] = state["given_base"]["params"]["device"] = "cuda"
    torch.save(state, tmp_path / "gpu.pt")
    loaded = load_model(tmp_path / "gpu.pt", device="cpu")
    assert loaded.base_.device == "cpu" and loaded.base.device == "cpu"  # a clone refits here

    other = FrozenEstimator(clone(tv.base_))
    frozen_elsewhere = clone(tv).set_params(base=other)
    frozen_elsewhere.__dict__.update({k: v for k, v in tv.__dict__.items() if k.endswith("_")})
    with pytest.raises(ValueError, match="FrozenEstimator of another model"):
        save_model(frozen_elsewhere, tmp_path / "other.pt")
    assert not (tmp_path / "other.pt").exists()


def test_settings_the_net_would_ignore_are_refused(fitted):
    # Passed to personalize they were kept on the net as attributes that changed nothing.
    tv, feats = fitted
    y = np.clip(3 + feats[:10, 0], 1, 5)
    with pytest.raises(TypeError, match="coef_steps: setting.*set_params"):
        tv.personalize(feats[:10], y, coef_steps=1000)
    with pytest.raises(TypeError, match="unexpected keyword argument.*'learning_rate'"):
        tv.personalize(feats[:10], y, max_epochs=1, learning_rate=3)
    assert tv.personalize(feats[:10], y, verbose=0).verbose == 0  # a name both have


def test_raters_off_the_scale_are_refused_up_front_in_an_evaluation(fitted):
    # The check ran only where a draw put such a score in the support set: the run
    # failed or not by the seed, naming no rater.
    from sklearn_piaa import TaskSet, evaluate_personalization

    tv, feats = fitted
    rng = np.random.RandomState(0)
    y = np.clip(3 + feats[:40, 0] + 0.3 * rng.randn(40), 1, 5)
    y[7] = 7.0  # one score off the base's 1-5
    tasks = TaskSet.from_arrays(feats[:40], y, np.repeat(["t0"], 40))
    for seed in (0, 3):
        with pytest.raises(ValueError, match="'t0'"):
            evaluate_personalization(tv, tasks, n_support=(5,), n_repeats=1,
                                     random_state=seed)


def test_partial_fit_of_a_task_vector_net_fine_tunes(fitted):
    # Without fine-tuning in personalize (finetune_epochs=0), the net kept max_epochs=0:
    # partial_fit with more of the rater's ratings ran no epoch and changed nothing.
    tv, feats = fitted
    y = np.clip(3 + feats[:30, 0], 1, 5)
    net = tv.personalize(feats[:10], y[:10], random_state=0)
    before = net.predict(feats)
    net.partial_fit(feats[:30], y)
    assert not np.allclose(net.predict(feats), before)


def test_personalize_checks_the_fine_tuning_settings_by_name(fitted):
    # it fine-tuned through the base without the base's checks: "Invalid learning rate:
    # nan", skorch's batch_size, "'<=' not supported between 'float' and 'str'"
    from sklearn.utils._param_validation import InvalidParameterError

    tv, feats = fitted
    y = np.linspace(1, 5, 20)
    for overrides, named in ((dict(lr=float("nan")), "'lr' parameter of personalize"),
                             (dict(batch_size=0), "'batch_size' parameter of personalize")):
        with pytest.raises(InvalidParameterError, match=re.escape(named)):
            tv.personalize(feats[:20], y, **overrides)
    changed = copy.deepcopy(tv)
    changed.base_.set_params(finetune_lr="1e-3")
    with pytest.raises(InvalidParameterError, match="'finetune_lr' parameter of "
                                                    "MetaAestheticRegressor"):
        changed.personalize(feats[:20], y)


def _with(tv, **params):
    """The fitted model under other coefficient-fit settings (no refit)."""
    other = clone(tv).set_params(**params)
    other.__dict__.update({k: v for k, v in tv.__dict__.items() if k.endswith("_")})
    return other


def test_the_coefficient_penalty_is_per_rating(fitted):
    # Documented: penalty coef_l2 / n * sum(lambda ** 2) against the mean loss. The same
    # ratings given twice leave the mean loss as it was and halve the penalty: doubling
    # coef_l2 there gives back the coefficients of the ratings given once.
    tv, feats = fitted
    Xs = feats[:20]
    ys = np.clip(3 + 1.5 * feats[:20, 0], 1, 5)
    once = _with(tv, loss="mse", coef_l2=5.0).personalize(Xs, ys, random_state=0)
    twice = _with(tv, loss="mse", coef_l2=10.0).personalize(
        np.concatenate([Xs, Xs]), np.concatenate([ys, ys]), random_state=0)
    assert np.abs(once.coefficients_).max() > 0.05  # the fit moved them
    np.testing.assert_allclose(twice.coefficients_, once.coefficients_, rtol=1e-3, atol=1e-4)


def test_a_rater_on_another_scale_gets_the_coefficients_of_the_same_ratings_on_the_bases(
        fitted):
    # score_range maps the rater's scores onto the base's scale before the coefficient
    # fit: 0-500 scores with score_range=(0, 500) fit the same coefficients as the same
    # ratings expressed on the base's 1-5 scale.
    tv, feats = fitted
    Xs = feats[:20]
    y5 = np.clip(3 + 1.5 * feats[:20, 0], 1, 5)
    y500 = (y5 - 1) / 4 * 500
    model = _with(tv, loss="mse", coef_l2=1.0)
    on_base = model.personalize(Xs, y5, random_state=0).coefficients_
    on_other = model.personalize(Xs, y500, score_range=(0, 500), random_state=0).coefficients_
    assert np.abs(on_base).max() > 0.05
    np.testing.assert_allclose(on_other, on_base, rtol=1e-3, atol=1e-4)


def test_mse_coefficients_minimize_the_documented_objective_in_quarters_of_the_range(
        fitted):
    # The coefficient fit minimizes mean(((pred - y) / unit) ** 2) + coef_l2 / n *
    # sum(lambda ** 2), with unit a quarter of the base's score range (AestheticLoss as
    # the package gives it): 1 on the base's 1-5 scale. At the fitted coefficients the
    # objective's gradient (by finite differences through combine) is about 0.
    tv, feats = fitted
    assert tuple(tv.base_.score_range_) == (1.0, 5.0)
    Xs = feats[:20]
    ys = np.clip(3 + 1.5 * feats[:20, 0], 1, 5).astype(np.float32)
    n, coef_l2 = len(ys), 20.0
    model = _with(tv, loss="mse", coef_l2=coef_l2, coef_steps=600, coef_lr=0.02)
    lam = np.asarray(model.personalize(Xs, ys, random_state=0).coefficients_, dtype=float)
    assert np.abs(lam).max() > 0.05  # the fit moved them
    x, t = torch.as_tensor(Xs), torch.as_tensor(ys, dtype=torch.float64)

    def objective(c):
        with torch.no_grad():
            pred = tv.combine(np.asarray(c, dtype=np.float32))(x).reshape(-1).double()
        return float(torch.mean((pred - t) ** 2)) + coef_l2 / n * float(np.sum(c ** 2))

    h = 1e-2
    grad = np.array([(objective(lam + h * e) - objective(lam - h * e)) / (2 * h)
                     for e in np.eye(len(lam))])
    penalty_grad = 2 * coef_l2 / n * lam
    # stationary: far below the penalty's own pull (a unit twice as large leaves the
    # gradient at about 3 times the penalty's pull)
    assert np.abs(grad).max() < 0.3 * np.abs(penalty_grad).max(), (grad, penalty_grad)
