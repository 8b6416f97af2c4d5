import warnings

import numpy as np
import pytest

from sklearn_piaa import MetaAestheticRegressor, TaskSet
from sklearn_piaa.evaluation import evaluate_personalization

plt = pytest.importorskip("matplotlib.pyplot")
from sklearn_piaa.plotting import (  # noqa: E402
    plot_finetune_history,
    plot_parameter_study,
    plot_rater_srocc,
)


@pytest.fixture(autouse=True)
def _agg():
    plt.switch_backend("Agg")
    yield
    plt.close("all")


def test_rater_bars_and_history(ratings, tiny_params):
    X, y, groups = ratings
    test = np.isin(groups, ["r10", "r11"])
    meta = MetaAestheticRegressor(**tiny_params).fit(X[~test], y[~test], groups=groups[~test])
    res = evaluate_personalization(meta, TaskSet.from_arrays(X[test], y[test], groups[test]),
                                   n_support=(5, 10), n_repeats=1, random_state=0)
    ax = plot_rater_srocc(res, n_support=10)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["r10", "r11"]
    assert len(ax.patches) == 4
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("rater", "SROCC")
    with pytest.raises(ValueError, match="n_support=7"):
        plot_rater_srocc(res, n_support=7)
    # "no results at n_support=10; evaluated: [5, 10]" for the text "10"
    with pytest.raises(ValueError, match=r"n_support must be an integer, .*got '10'"):
        plot_rater_srocc(res, n_support="10")
    assert len(plot_rater_srocc(res, n_support=np.int64(10)).patches) == 4
    net = meta.personalize(X[:10], y[:10])
    ax = plot_finetune_history(net)
    assert len(ax.lines[0].get_xdata()) == tiny_params["finetune_epochs"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "train_loss")
    with pytest.raises(ValueError, match="valid_loss"):
        plot_finetune_history(net, keys=("valid_loss",))
    ax = plot_finetune_history(net, keys="train_loss")  # its letters were the keys
    assert ax.get_ylabel() == "train_loss"
    # no epochs (a loaded net, max_epochs=0): skorch's KeyError 'epoch' before
    with pytest.raises(ValueError, match="records no epoch"):
        plot_finetune_history(meta.personalize(X[:10], y[:10], max_epochs=0))


def test_undefined_srocc_is_marked_not_left_as_a_silent_gap(ratings, tiny_params):
    # a rater of constant scores has no SROCC: its bars were NaN (not drawn, reading as
    # zero) and numpy warned "Mean of empty slice"
    X, y, groups = ratings
    test = np.isin(groups, ["r10", "r11"])
    meta = MetaAestheticRegressor(**tiny_params).fit(X[~test], y[~test], groups=groups[~test])
    flat = np.where(groups[test] == "r11", 3.0, y[test])
    with pytest.warns(UserWarning, match="undefined SROCC"):
        res = evaluate_personalization(meta, TaskSet.from_arrays(X[test], flat, groups[test]),
                                       n_support=10, n_repeats=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ax = plot_rater_srocc(res)
    (marks,) = [line for line in ax.lines if line.get_label() == "undefined SROCC"]
    np.testing.assert_allclose(marks.get_xdata(), [0.8, 1.2])  # r11's two bars
    plt.close("all")


@pytest.mark.parametrize("n_raters", [1, 3])
def test_tuple_rater_ids_are_plotted_by_rater(ratings, tiny_params, n_raters):
    # rows["rater"] == ("ds", 8) compared the tuple element by element: NaN bars marked
    # undefined for one rater, a broadcasting error for three
    X, y, groups = ratings
    held = ["r09", "r10", "r11"][-n_raters:]
    test = np.isin(groups, held)
    meta = MetaAestheticRegressor(**tiny_params).fit(X[~test], y[~test], groups=groups[~test])
    ids = np.empty(test.sum(), dtype=object)
    ids[:] = [("ds", int(g[1:])) for g in groups[test]]
    res = evaluate_personalization(meta, TaskSet.from_arrays(X[test], y[test], ids),
                                   n_support=5, n_repeats=2, random_state=0)
    ax = plot_rater_srocc(res)
    heights = [p.get_height() for p in ax.patches]
    assert len(heights) == 2 * n_raters and np.isfinite(heights).all()
    first = res.table[[r == ("ds", int(held[0][1:])) for r in res.table["rater"].tolist()]]
    assert heights[0] == pytest.approx(first["srocc_prior"].mean())
    assert not [line for line in ax.lines if line.get_label() == "undefined SROCC"]
    plt.close("all")


def test_parameter_study_draws_one_panel_per_searched_parameter(ratings, tiny_params):
    import sklearn
    from sklearn.model_selection import GridSearchCV

    from sklearn_piaa import UserGroupKFold, srocc_scorer

    X, y, groups = ratings
    grid = [{"inner_steps": [0, 2, 1]}, {"tasks_per_batch": [1, 3]}]
    search = GridSearchCV(MetaAestheticRegressor(**{**tiny_params, "n_iterations": 3}), grid,
                          cv=UserGroupKFold(2, random_state=0), scoring=srocc_scorer)
    with sklearn.config_context(enable_metadata_routing=True):
        search = search.set_params(error_score="raise").fit(X, y, groups=groups)
    axes = plot_parameter_study(search)
    assert [ax.get_xlabel() for ax in axes] == ["inner_steps", "tasks_per_batch"]
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["0", "1", "2"]
    means = search.cv_results_["mean_test_score"]
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), means[3:5])
    with pytest.raises(ValueError, match="outer_lr"):
        plot_parameter_study(search, params=["outer_lr"])


def test_parameter_study_of_several_metrics_and_on_one_axes(ratings, tiny_params):
    # a bare KeyError 'mean_test_score' for a search of several metrics, and a
    # TypeError for one Axes given as axes
    import matplotlib.pyplot as plt
    import sklearn
    from sklearn.model_selection import GridSearchCV

    from sklearn_piaa import UserGroupKFold, srocc_scorer

    X, y, groups = ratings
    search = GridSearchCV(MetaAestheticRegressor(**{**tiny_params, "n_iterations": 2}),
                          {"inner_steps": [1, 2]}, cv=UserGroupKFold(2, random_state=0),
                          scoring={"srocc": srocc_scorer, "mse": "neg_mean_squared_error"},
                          refit="srocc", error_score="raise")
    with sklearn.config_context(enable_metadata_routing=True):
        search.fit(X, y, groups=groups)
    (ax,) = plot_parameter_study(search)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), search.cv_results_["mean_test_srocc"])
    assert ax.get_ylabel() == "mean test srocc"
    _, one = plt.subplots()
    (ax,) = plot_parameter_study(search, axes=one, metric="mse")
    assert ax is one
    np.testing.assert_allclose(ax.lines[0].get_ydata(), search.cv_results_["mean_test_mse"])
    with pytest.raises(ValueError, match=r"no score 'r2'; it scored \['mse', 'srocc'\]"):
        plot_parameter_study(search, metric="r2")
    search.refit = False
    with pytest.raises(ValueError, match="choose one with metric="):
        plot_parameter_study(search)
    with pytest.raises(ValueError, match="params is empty"):
        plot_parameter_study(search, params=[], metric="mse")
    plt.close("all")


def test_parameter_study_of_a_full_grid_without_a_refit(ratings, tiny_params):
    # A multi-metric search with refit=False has no best_params_: every candidate of
    # the grid was drawn in every panel, zigzagging over the other parameter.
    import sklearn
    from sklearn.model_selection import GridSearchCV

    from sklearn_piaa import UserGroupKFold, srocc_scorer

    X, y, groups = ratings
    search = GridSearchCV(MetaAestheticRegressor(**{**tiny_params, "n_iterations": 2}),
                          {"inner_steps": [1, 2], "outer_lr": [0.1, 0.01]},
                          cv=UserGroupKFold(2, random_state=0),
                          scoring={"a": srocc_scorer, "b": "neg_mean_squared_error"},
                          refit=False, error_score="raise")
    with sklearn.config_context(enable_metadata_routing=True):
        search.fit(X, y, groups=groups)
    results = search.cv_results_
    best = results["params"][int(np.argmin(results["rank_test_a"]))]
    steps, lr = plot_parameter_study(search, metric="a")
    assert [t.get_text() for t in steps.get_xticklabels()] == ["1", "2"]
    assert [t.get_text() for t in lr.get_xticklabels()] == ["0.01", "0.1"]
    at_best_lr = [i for i, c in enumerate(results["params"]) if c["outer_lr"] == best["outer_lr"]]
    at_best_steps = [i for i, c in enumerate(results["params"])
                     if c["inner_steps"] == best["inner_steps"]]
    np.testing.assert_allclose(steps.lines[0].get_ydata(),
                               results["mean_test_a"][sorted(
                                   at_best_lr, key=lambda i: results["params"][i]["inner_steps"])])
    np.testing.assert_allclose(lr.lines[0].get_ydata(),
                               results["mean_test_a"][sorted(
                                   at_best_steps, key=lambda i: results["params"][i]["outer_lr"])])


def _tiny_image_prior(rng):
    """24 random images and a tiny_cnn prior fitted on them (3 raters of 8)."""
    imgs = rng.randint(0, 256, (24, 36, 36, 3)).astype(np.uint8)
    y = np.clip(1 + imgs.mean((1, 2, 3)) / 64, 1, 5)
    meta = MetaAestheticRegressor(backbone="tiny_cnn", hidden_sizes=(4,), n_iterations=2,
                                  support_size=4, query_size=2, random_state=0)
    return imgs, meta.fit(imgs, y, groups=np.repeat(np.arange(3), 8))


def test_gradient_map_plot_overlays_the_map():
    from sklearn_piaa.plotting import plot_gradient_map

    rng = np.random.RandomState(0)
    imgs, meta = _tiny_image_prior(rng)
    ax = plot_gradient_map(meta, imgs[0], title="prior")
    assert len(ax.images) == 2 and ax.get_title() == "prior"
    assert ax.images[1].get_array().shape == (32, 32)


def test_gradient_map_plot_shows_a_non_square_photo_at_its_own_aspect():
    # The photo was squashed to the network's square input (and resized bicubic, where
    # the network resizes bilinear); the map is stretched back onto the photo instead.
    from sklearn_piaa.plotting import plot_gradient_map

    rng = np.random.RandomState(0)
    imgs, meta = _tiny_image_prior(rng)
    wide = rng.randint(0, 256, (30, 75, 3)).astype(np.uint8)
    ax = plot_gradient_map(meta, wide)
    photo, shown = ax.images
    np.testing.assert_array_equal(photo.get_array(), wide)  # its own pixels, unresized
    assert shown.get_array().shape == (32, 32)  # the square view the network sees...
    assert shown.get_extent() == photo.get_extent()  # ...stretched over the photo
    assert shown.get_interpolation() == "bilinear"
    ax.figure.canvas.draw()
    box = ax.get_window_extent()
    assert box.width / box.height == pytest.approx(75 / 30, rel=0.02)


def test_parameter_study_of_none_and_tuple_values():
    # the package's own settings take None (finetune_lr) and tuples (hidden_sizes)
    from sklearn.model_selection import GridSearchCV
    from sklearn.neural_network import MLPRegressor
    from sklearn.tree import DecisionTreeRegressor
    rng = np.random.RandomState(0)
    X = rng.randn(60, 3)
    y = X[:, 0] + 0.1 * rng.randn(60)
    for est, grid, ticks in [
            (DecisionTreeRegressor(random_state=0), {"max_depth": [4, None, 2]},
             ["2", "4", "None"]),
            (MLPRegressor(max_iter=5, random_state=0),
             {"hidden_layer_sizes": [(8,), (16,), (4, 4)]}, ["(8,)", "(16,)", "(4, 4)"])]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLPRegressor's ConvergenceWarning
            search = GridSearchCV(est, grid, cv=3).fit(X, y)
        (ax,) = plot_parameter_study(search)
        assert [t.get_text() for t in ax.get_xticklabels()] == ticks
    plt.close("all")


def test_parameter_study_of_a_sub_grid_of_two_parameters_beside_another():
    # the best candidate in the other sub-grid lacked max_depth and min_samples_leaf, so
    # every candidate of the first sub-grid "matched" it: one line zigzagged over all
    # four, ticks 1, 1, 8, 8
    from sklearn.exceptions import NotFittedError
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.RandomState(0)
    X = rng.randn(90, 3)
    y = X[:, 0] + 0.5 * rng.randn(90)
    search = GridSearchCV(DecisionTreeRegressor(random_state=0),
                          [{"max_depth": [1, 8], "min_samples_leaf": [1, 30]},
                           {"min_samples_split": [2, 10]}], cv=3)
    with pytest.raises(NotFittedError, match="GridSearchCV is not fitted yet"):
        plot_parameter_study(search)
    search.fit(X, y)
    results, (depth,) = search.cv_results_, plot_parameter_study(search, params="max_depth")
    first = [i for i, c in enumerate(results["params"]) if "max_depth" in c]
    anchor = results["params"][min(first, key=lambda i: results["rank_test_score"][i])]
    rows = [i for i in first if results["params"][i]["min_samples_leaf"]
            == anchor["min_samples_leaf"]]
    assert [t.get_text() for t in depth.get_xticklabels()] == ["1", "8"]
    np.testing.assert_allclose(depth.lines[0].get_ydata(), results["mean_test_score"][
        sorted(rows, key=lambda i: results["params"][i]["max_depth"])])
    plt.close("all")


def test_parameter_study_draws_the_sweep_of_a_grid_that_varies_the_parameter():
    # a sub-grid fixing alpha held the best candidate: the alpha panel showed its one
    # point and hid the other sub-grid's sweep of alpha; four Axes given for one
    # parameter came back four
    from sklearn.linear_model import ElasticNet
    from sklearn.model_selection import GridSearchCV

    rng = np.random.RandomState(0)
    X = rng.randn(90, 3)
    y = X[:, 0] + 0.3 * rng.randn(90)
    search = GridSearchCV(ElasticNet(), [{"alpha": [0.01], "l1_ratio": [0.1, 0.5, 0.9]},
                                         {"alpha": [0.01, 0.1, 1.0, 10.0]}], cv=3).fit(X, y)
    assert "l1_ratio" in search.best_params_
    _, panels = plt.subplots(1, 4)
    (alpha,) = plot_parameter_study(search, params="alpha", axes=panels)
    results = search.cv_results_
    sweep = [i for i, c in enumerate(results["params"]) if c.keys() == {"alpha"}]
    # equal values of two types (np.logspace's and a list's) are one sweep, as == says
    mixed = GridSearchCV(ElasticNet(), [{"alpha": [0.01], "l1_ratio": [0.1, 0.5, 0.9]},
                                        {"alpha": [np.float64(0.01)], "l1_ratio": [0.3]}],
                         cv=3).fit(X, y)
    (ratio,) = plot_parameter_study(mixed, params="l1_ratio")
    assert [t.get_text() for t in ratio.get_xticklabels()] == ["0.1", "0.3", "0.5", "0.9"]
    assert [t.get_text() for t in alpha.get_xticklabels()] == ["0.01", "0.1", "1", "10"]
    np.testing.assert_allclose(alpha.lines[0].get_ydata(), results["mean_test_score"][sweep])
    plt.close("all")


def test_parameter_study_of_a_successive_halving_search():
    # each round scored the candidates again, on more samples: ticks 0.01 four times,
    # one line over scores of different budgets
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.linear_model import ElasticNet
    from sklearn.model_selection import HalvingGridSearchCV

    rng = np.random.RandomState(0)
    X = rng.randn(300, 3)
    y = X[:, 0] + 0.3 * rng.randn(300)
    search = HalvingGridSearchCV(ElasticNet(), {"alpha": [0.01, 0.1, 1.0, 10.0],
                                                "l1_ratio": [0.1, 0.9]}, cv=3,
                                 min_resources=30, random_state=0).fit(X, y)
    results = search.cv_results_
    assert results["iter"].max() >= 1
    (alpha,) = plot_parameter_study(search, params="alpha")
    assert [t.get_text() for t in alpha.get_xticklabels()] == ["0.01", "0.1", "1", "10"]
    best = search.best_params_
    last = {}
    for i, c in enumerate(results["params"]):
        if c["l1_ratio"] == best["l1_ratio"]:
            last[c["alpha"]] = i  # the last round each reached
    np.testing.assert_allclose(alpha.lines[0].get_ydata(),
                               results["mean_test_score"][[last[a] for a in sorted(last)]])
    plt.close("all")


def test_finetune_history_refuses_before_drawing(ratings, tiny_params):
    X, y, groups = ratings
    net = MetaAestheticRegressor(**tiny_params).fit(X, y, groups=groups).personalize(
        X[:10], y[:10])
    plt.close("all")
    for keys, message in [(("nope",), "no 'nope'"), ((), "keys is empty")]:
        with pytest.raises(ValueError, match=message):
            plot_finetune_history(net, keys=keys)
    assert not plt.get_fignums()  # a refused call left a figure open
    # a prior has no fine-tuning epochs: was "net.history records no epoch"
    with pytest.raises(TypeError, match="needs a PersonalizedNet .* got "
                                        "MetaAestheticRegressor"):
        plot_finetune_history(MetaAestheticRegressor())
