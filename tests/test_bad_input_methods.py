"""Bad input to the methods, the protocol and the reports: clear errors, never wrong answers."""

import re
import warnings

import numpy as np
import pytest
from conftest import HELD, TRAITS
from conftest import evaluate_sizes as _evaluate
from conftest import split_held_out as _split
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator

from sklearn_piaa import (
    ConsensusRidgeRegressor,
    MetaAestheticRegressor,
    PAIAARegressor,
    PAMRegressor,
    SupportSelector,
    TaskSet,
    TaskVectorRegressor,
    UserRidgeRegressor,
    compare_support_strategies,
    evaluate_personalization,
    gradient_map,
)
from sklearn_piaa._warnings import PIAAWarning
from sklearn_piaa.evaluation import _result
from sklearn_piaa.report import (
    METHOD_LABELS,
    compare_methods,
    format_table,
    paired_difference,
)

# -- PAM ---------------------------------------------------------------------------------


def test_pam_reads_a_boolean_mask_as_a_mask_and_refuses_fractional_columns(ratings):
    X, y, groups = ratings
    mask = np.zeros(X.shape[1], dtype=bool)
    mask[[6, 7]] = True
    by_mask = PAMRegressor(variant="attributes", attribute_columns=mask).fit(
        X, y, groups=groups)
    by_number = PAMRegressor(variant="attributes", attribute_columns=[6, 7]).fit(
        X, y, groups=groups)
    np.testing.assert_array_equal(by_mask.attribute_columns_, [6, 7])
    assert by_mask.attribute_names_ == ["x6", "x7"]
    np.testing.assert_allclose(by_mask.personalize(X[:10], y[:10]).predict(X[10:15]),
                               by_number.personalize(X[:10], y[:10]).predict(X[10:15]))
    with pytest.raises(ValueError, match="attribute_columns must be integer column numbers"):
        PAMRegressor(variant="attributes", attribute_columns=[6.7, 7.2]).fit(
            X, y, groups=groups)
    with pytest.raises(ValueError, match=r"attribute_columns as a boolean mask .* \(8\)"):
        PAMRegressor(variant="attributes", attribute_columns=mask[:5]).fit(
            X, y, groups=groups)


# -- PA_IAA personality table ------------------------------------------------------------


def _paiaa(personality):
    return PAIAARegressor(personality=personality, hidden_size=4, max_epochs=1,
                          random_state=0)


def test_paiaa_refuses_duplicated_and_non_numeric_table_rows(ratings):
    pd = pytest.importorskip("pandas")  # not in the [test] extra
    X, y, groups = ratings
    table = pd.DataFrame(TRAITS).T
    doubled = pd.concat([table, table.loc[["r03"]] * 0.5])
    with pytest.raises(ValueError, match=r"more than one row for rater\(s\) \['r03'\]"):
        _paiaa(doubled).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match=r"column\(s\) \['gender'\] are not numeric"):
        _paiaa(table.assign(gender="m")).fit(X, y, groups=groups)
    assert _paiaa(table).fit(X, y, groups=groups).n_traits_ == 5


def test_paiaa_names_the_rater_of_ragged_empty_or_text_traits(ratings):
    X, y, groups = ratings
    with pytest.raises(ValueError, match="most have 5, but 'r04' has 3"):
        _paiaa({**TRAITS, "r04": [0.1, 0.2, 0.3]}).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match=r"empty row\) for rater\(s\) \['r00'"):
        _paiaa({r: [] for r in TRAITS}).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="traits of rater 'r02' are not numbers"):
        _paiaa({**TRAITS, "r02": ["high", 0, 0, 0, 0]}).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match=r"in \[-1, 1\]; not so for rater\(s\) \['r05'\]"):
        _paiaa({**TRAITS, "r05": [np.nan, 0, 0, 0, 0]}).fit(X, y, groups=groups)


# -- baselines with constant training scores ---------------------------------------------


def test_baseline_with_constant_training_scores_refuses_a_score_range(ratings):
    X, y, groups = ratings
    prior = ConsensusRidgeRegressor().fit(X, np.full(len(y), 3.0), groups=groups)
    with pytest.raises(ValueError, match="training scores were all 3 .* no scale to map"):
        prior.personalize(X[:10], 2 * y[:10], score_range=(1, 10))
    # Without a scale to map, the rater's own ridge still fits.
    assert np.isfinite(prior.personalize(X[:10], y[:10]).predict(X[10:13])).all()


def test_baseline_personalize_checks_random_state_as_the_meta_learner_does(ratings,
                                                                           tiny_params):
    # ignored by the baselines' deterministic user models, but a mistake all the same
    X, y, groups = ratings
    message = (r"random_state='x' cannot seed a random generator: give an int in "
               r"\[0, 2\*\*32 - 1\], a numpy.random.RandomState or None")
    for prior in (ConsensusRidgeRegressor().fit(X, y, groups=groups),
                  MetaAestheticRegressor(**{**tiny_params, "n_iterations": 2}).fit(
                      X, y, groups=groups)):
        with pytest.raises(ValueError, match=message):
            prior.personalize(X[:10], y[:10], random_state="x")


# -- task vectors ------------------------------------------------------------------------


def test_task_vectors_warn_when_a_fitted_base_is_not_frozen(ratings, tiny_params):
    X, y, groups = ratings
    prior = MetaAestheticRegressor(**{**tiny_params, "n_iterations": 2}).fit(
        X, y, groups=groups)
    sources = [prior.personalize(X[groups == "r00"], y[groups == "r00"], random_state=0)]
    with pytest.warns(PIAAWarning, match=r"not wrapped in FrozenEstimator.*FrozenEstimator\("):
        TaskVectorRegressor(prior, sources=sources, coef_steps=1).fit(X, y, groups=groups)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        tv = TaskVectorRegressor(FrozenEstimator(prior), sources=sources, coef_steps=1)
        tv.fit(X, y, groups=groups)
    np.testing.assert_allclose(tv.predict(X[:5]), prior.predict(X[:5]))


# -- the protocol ------------------------------------------------------------------------


def test_protocol_refuses_fractional_and_repeated_counts(ratings):
    train, test = _split(ratings)
    prior = ConsensusRidgeRegressor().fit(train)
    selectors = [SupportSelector("kcenter")]
    for run in (lambda **kw: evaluate_personalization(prior, test, **kw),
                lambda **kw: compare_support_strategies(prior, test, selectors, n_query=20,
                                                        **kw)):
        with pytest.raises(ValueError, match=r"n_support must be positive integers.*2\.5"):
            run(n_support=2.5, n_repeats=1)
        with pytest.raises(ValueError, match=r"n_repeats must be a positive integer; got 2\.7"):
            run(n_support=5, n_repeats=2.7)
        with pytest.raises(ValueError, match=r"support size\(s\) \[5\] more than once"):
            run(n_support=(5, 5), n_repeats=1)
        # a 0-d array is one size (was "TypeError: iteration over a 0-d array")
        got = run(n_support=np.array(5), n_repeats=1)
        for result in (got.values() if isinstance(got, dict) else [got]):
            assert sorted(result.summary) == [5]


def test_support_strategies_on_a_whole_network_prior_say_it_cannot_run(image_files):
    # "pass embeddings instead", which the prior then refused: it takes images only
    y, groups = np.tile([1.0, 2, 3, 4, 5, 3], 2), np.repeat(["a", "b"], 6)
    prior = MetaAestheticRegressor(backbone="tiny_cnn", train_backbone=True, hidden_sizes=(4,),
                                   n_iterations=1, support_size=3, query_size=2,
                                   random_state=0).fit(image_files[:12], y, groups=groups)
    test = TaskSet.from_arrays(image_files[:12], y, groups)
    with pytest.raises(ValueError, match=r"trains the whole network \(train_backbone=True\) "
                                         r"takes images only, so compare_support_strategies "
                                         r"cannot run on it"):
        compare_support_strategies(prior, test, [SupportSelector("kcenter")], n_support=2,
                                   n_query=3, n_repeats=1)


@pytest.mark.parametrize("verbose", ["x", -1, 1.5])
def test_protocol_and_reports_refuse_a_verbose_the_estimators_refuse(ratings, verbose):
    train, test = _split(ratings)
    prior = ConsensusRidgeRegressor().fit(train)
    message = re.escape(f"verbose must be a bool or an integer of at least 0; got {verbose!r}")
    with pytest.raises(ValueError, match=message):
        evaluate_personalization(prior, test, n_support=5, n_repeats=1, verbose=verbose)
    with pytest.raises(ValueError, match=message):
        compare_support_strategies(prior, test, [SupportSelector("kcenter")], n_support=5,
                                   n_query=20, n_repeats=1, verbose=verbose)
    with pytest.raises(ValueError, match=message):
        compare_methods(train, test, algorithms=("consensus_ridge",), n_support=5,
                        n_repeats=1, verbose=verbose)


def _bad_seed_call(ratings, function):
    from sklearn_piaa import embed_images, personalized_srocc

    train, test = _split(ratings)
    if function == "embed_images":
        return lambda seed: embed_images(np.zeros((1, 16, 16, 3), np.uint8),
                                         backbone="tiny_cnn", random_state=seed)
    prior = ConsensusRidgeRegressor().fit(train)
    if function == "personalized_srocc":
        return lambda seed: personalized_srocc(prior, test.X, test.y, test.groups,
                                               n_support=5, random_state=seed)
    if function == "compare_support_strategies":
        return lambda seed: compare_support_strategies(
            prior, test, [SupportSelector("kcenter")], n_support=5, n_query=20,
            n_repeats=1, random_state=seed)
    return lambda seed: evaluate_personalization(prior, test, n_support=5, n_repeats=1,
                                                 random_state=seed)


@pytest.mark.parametrize("function", ["evaluate_personalization", "compare_support_strategies",
                                      "personalized_srocc", "embed_images"])
def test_a_bad_random_state_is_named(ratings, function):
    # scikit-learn's "'x' cannot be used to seed a numpy.random.RandomState instance"
    # named neither the argument nor what it takes
    call = _bad_seed_call(ratings, function)
    for seed in ("x", -1, 0.5):
        message = re.escape(f"random_state={seed!r} cannot seed a random generator: give "
                            "an int in [0, 2**32 - 1], a numpy.random.RandomState or None")
        with pytest.raises(ValueError, match=message):
            call(seed)


def test_support_strategies_refuse_when_every_rater_is_skipped(ratings):
    train, test = _split(ratings)
    prior = ConsensusRidgeRegressor().fit(train)
    with pytest.raises(ValueError, match=r"no test rater has enough images .*\[5\]"):
        compare_support_strategies(prior, test, [SupportSelector("kcenter")], n_support=5,
                                   n_query=79, n_repeats=1)


def test_plot_rater_srocc_refuses_an_empty_result():
    plt = pytest.importorskip("matplotlib.pyplot")
    from sklearn_piaa.plotting import plot_rater_srocc

    plt.switch_backend("Agg")
    empty = _result([], (5,), {5: [("r09", 4)]})
    with pytest.raises(ValueError, match=r"no evaluated rater.*\{5: 1\}"):
        plot_rater_srocc(empty)
    plt.close("all")


def test_gradient_map_of_an_unfitted_prior_is_not_fitted_error():
    with pytest.raises(NotFittedError, match="MetaAestheticRegressor"):
        gradient_map(MetaAestheticRegressor(backbone="tiny_cnn"),
                     np.zeros((16, 16, 3), np.uint8))


# -- reports -----------------------------------------------------------------------------


def test_reports_and_plots_name_the_wrong_container(ratings):
    # each read an attribute of what it expected, and failed with a bare AttributeError
    from sklearn_piaa.plotting import plot_rater_srocc

    train, test = _split(ratings)
    result = _evaluate(ConsensusRidgeRegressor().fit(train), test, n_support=5)
    with pytest.raises(TypeError, match=r"results must be a dict of method name -> "
                                        r"PersonalizationResult .*; got PersonalizationResult\. "
                                        r"For one result, pass \{'name': result\}"):
        format_table(result)
    with pytest.raises(TypeError, match=r"format_table needs results\['a'\] to be a "
                                        r"PersonalizationResult .*; got list"):
        format_table({"a": [result]})
    with pytest.raises(TypeError, match=r"paired_difference needs result to be a "
                                        r"PersonalizationResult .*; got dict"):
        paired_difference({}, result)
    with pytest.raises(TypeError, match=r"paired_difference needs reference to be .*; got dict"):
        paired_difference(result, {"ridge": result})
    with pytest.raises(TypeError, match=r"plot_rater_srocc needs one PersonalizationResult "
                                        r".*; got list"):
        plot_rater_srocc([result])


def test_compare_methods_refuses_keys_that_name_no_method(ratings):
    train, test = _split(ratings)
    kw = dict(n_support=(5,), n_repeats=1, backbone=None)
    with pytest.raises(ValueError, match=r"method_params has key\(s\) \['fpfm'\] .*"
                                         r"being run are \['fpmf'\]"):
        compare_methods(train, test, algorithms=("fpmf",),
                        method_params={"fpfm": {"n_factors": 2}}, **kw)
    with pytest.raises(ValueError, match=r"method_tasks has key\(s\) \['ridg'\]"):
        compare_methods(train, test, algorithms=("ridge",),
                        method_tasks={"ridg": (train, test)}, **kw)
    # a misspelt shared setting: dropped by the baselines, refused by blg only in its turn
    for algorithms in (("ridge", "fpmf"), ("ridge", "blg")):
        with pytest.raises(ValueError, match=r"unknown setting\(s\) \['n_iteration'\]"):
            compare_methods(train, test, algorithms=algorithms, n_iteration=5, **kw)
    with pytest.raises(ValueError, match=r"algorithms lists \['ridge'\] more than once"):
        compare_methods(train, test, algorithms=("ridge", "fpmf", "ridge"), **kw)
    # Unpaired draws: each method would get its own support sets.
    for seed in (None, np.random.RandomState(0), 1.5):
        with pytest.raises(ValueError, match="random_state must be an integer"):
            compare_methods(train, test, algorithms=("ridge",), random_state=seed, **kw)
    # A string is one method, not its letters; settings of a method not run are allowed.
    results = compare_methods(train, test, algorithms="ridge",
                              method_params={"pam": {"attribute_columns": [6]}}, **kw)
    assert list(results) == ["ridge"]


def test_compare_methods_refuses_other_test_raters_in_method_tasks(ratings):
    train, test = _split(ratings)
    _, fewer = _split(ratings, held=HELD[1:])
    kw = dict(algorithms=("ridge", "consensus_ridge"), n_support=(5,), n_repeats=1,
              backbone=None)
    with pytest.raises(ValueError, match=r"method_tasks\['ridge'\] has other test raters "
                                         r"than test_tasks \(only in test_tasks: \['r09'\]"):
        compare_methods(train, test, method_tasks={"ridge": (train, fewer)}, **kw)
    X, y, groups = ratings
    held = np.isin(groups, HELD)
    shuffled = TaskSet.from_arrays(X[held][::-1], y[held][::-1], groups[held][::-1])
    with pytest.raises(ValueError, match=r"rater\(s\) \['r09', 'r10', 'r11'\] other ratings"):
        compare_methods(train, test, method_tasks={"ridge": (train, shuffled)}, **kw)
    # Other features of the same ratings (as PAM's appended attributes) stay paired.
    scaled = TaskSet.from_arrays(2 * X[held], y[held], groups[held])
    results = compare_methods(train, test, method_tasks={"ridge": (train, scaled)}, **kw)
    assert "vs consensus_ridge @5" in format_table(results, reference="consensus_ridge")


def test_paired_difference_refuses_results_of_other_draws(ratings):
    train, test = _split(ratings)
    _, fewer = _split(ratings, held=HELD[1:])
    ridge, consensus = UserRidgeRegressor().fit(train), ConsensusRidgeRegressor().fit(train)
    a = _evaluate(ridge, test)
    with pytest.raises(ValueError, match=r"raters only in result: \['r09'\]"):
        paired_difference(a, _evaluate(consensus, fewer))
    with pytest.raises(ValueError, match=r"support sizes only in result: \[20\]"):
        paired_difference(a, _evaluate(consensus, test, n_support=5))
    with pytest.raises(ValueError, match=r"repeats only in result: \[1\]"):
        paired_difference(a, _evaluate(consensus, test, n_repeats=1))
    with pytest.raises(ValueError, match=r"'ridge' and 'consensus_ridge' were not evaluated "
                                         r"on the same draws \(raters only in 'ridge'"):
        format_table({"ridge": a, "consensus_ridge": _evaluate(consensus, fewer)},
                     reference="consensus_ridge")
    same = paired_difference(a, _evaluate(consensus, test))
    assert sorted(same) == [5, 20] and same[5][2] == 3


def test_paired_difference_refuses_draws_of_another_protocol_or_query_size(ratings):
    # a seed draws other images in evaluate_personalization (support first) than in
    # compare_support_strategies (a query set of n_query first), and over another
    # n_query: such results, of the same keys and seeds, were paired without a word
    train, test = _split(ratings)
    prior = ConsensusRidgeRegressor().fit(train)
    selectors = [SupportSelector("kcenter")]

    def compare(n_query):
        return compare_support_strategies(prior, test, selectors, n_support=5, n_query=n_query,
                                          n_repeats=2, random_state=0)["random"]

    evaluated = evaluate_personalization(prior, test, n_support=5, n_repeats=2,
                                         random_state=0)
    assert evaluated.protocol == "evaluate_personalization"
    with pytest.raises(ValueError, match=r"come from other protocols "
                                         r"\(compare_support_strategies and "
                                         r"evaluate_personalization\)"):
        paired_difference(compare(20), evaluated)
    with pytest.raises(ValueError, match=r"'a' and 'b' come from other protocols"):
        format_table({"a": compare(20), "b": evaluated}, reference="b")
    with pytest.raises(ValueError, match=r"query sets of other sizes: 6 of 6 draws \(e\.g\. "
                                         r"rater 'r09', repeat 0, n_support=5: 20 and 30 query"):
        paired_difference(compare(20), compare(30))
    assert paired_difference(compare(20), compare(20))[5][2] == 3


def test_paired_difference_refuses_the_same_rows_of_other_random_states(ratings):
    # The (rater, repeat, n_support) rows are the same whatever random_state was: two
    # runs with other (or no) seeds were "paired" silently, with a wrong standard error.
    train, test = _split(ratings)
    ridge, consensus = UserRidgeRegressor().fit(train), ConsensusRidgeRegressor().fit(train)
    # Two calls with random_state=None (the default) draw anew each time.
    unseeded = [_evaluate(m, test, random_state=None) for m in (ridge, consensus)]
    seeded = [_evaluate(ridge, test), _evaluate(consensus, test, random_state=1)]
    for result, reference in (seeded, unseeded):
        with pytest.raises(ValueError, match=r"other support draws: 12 of 12 \(rater, repeat, "
                                             r"n_support\) draws .* same integer random_state"):
            paired_difference(result, reference)
        with pytest.raises(ValueError, match="'ridge' and 'consensus_ridge' were evaluated on "
                                             "other support draws"):
            format_table({"ridge": result, "consensus_ridge": reference},
                         reference="consensus_ridge")
    # The same random_state gives the same draws, which pair (compare_methods: below).
    assert paired_difference(_evaluate(ridge, test), _evaluate(consensus, test))[5][2] == 3
    results = compare_methods(train, test, algorithms=("ridge", "consensus_ridge"),
                              n_support=(5,), n_repeats=2, backbone=None)
    np.testing.assert_array_equal(results["ridge"].table["seed"],
                                  results["consensus_ridge"].table["seed"])
    assert "vs consensus_ridge @5" in format_table(results, reference="consensus_ridge")
    with pytest.raises(ValueError, match="results is empty"):  # a header "@None" before
        format_table({})


def test_compare_methods_refuses_test_raters_it_trains_on(ratings):
    X, y, groups = ratings
    train, test = _split(ratings)
    everyone = TaskSet.from_arrays(X, y, groups)
    kw = dict(algorithms=("ridge",), n_support=(5,), n_repeats=1, backbone=None)
    with pytest.raises(ValueError, match=r"3 rater\(s\) are both training and test raters "
                                         r"of 'ridge': \['r09', 'r10', 'r11'\]; the test "
                                         "raters must be held out"):
        compare_methods(everyone, test, **kw)
    with pytest.raises(ValueError, match="both training and test raters of 'ridge'"):
        compare_methods(train, test, method_tasks={"ridge": (everyone, test)}, **kw)


def test_evaluation_warns_when_test_raters_were_training_raters(ratings):
    X, y, groups = ratings
    train, test = _split(ratings)
    everyone = TaskSet.from_arrays(X, y, groups)
    prior = ConsensusRidgeRegressor().fit(train)
    with pytest.warns(PIAAWarning, match=r"9 of the 12 test rater\(s\) were among the prior's "
                                         r"9 training raters \('r00', 'r01', 'r02', 'r03', "
                                         r"'r04' \.\.\.\).* not held-out figures"):
        _evaluate(prior, everyone, n_support=5, n_repeats=1)
    with pytest.warns(PIAAWarning, match="1 of the 3 test rater"):
        _evaluate(ConsensusRidgeRegressor().fit(everyone.subset(["r09"] + list(train.raters))),
                  test, n_support=5, n_repeats=1)
    with pytest.warns(PIAAWarning, match="9 of the 12 test rater"):
        compare_support_strategies(prior, everyone, [SupportSelector()], n_support=5,
                                   n_query=20, n_repeats=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)
        _evaluate(prior, test, n_support=5, n_repeats=1)  # held out: no warning


def test_evaluation_names_raters_scored_on_few_query_images(ratings):
    # SROCC on 2-9 query images is coarse but weighed like any other rater's.
    train, test = _split(ratings)
    prior = ConsensusRidgeRegressor().fit(train)
    X9, y9 = test["r09"]
    small = TaskSet.from_mapping({"r09": (X9[:12], y9[:12]), "r10": test["r10"]})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = _evaluate(prior, small, n_support=(5, 9), n_repeats=3)
    few = [str(w.message) for w in record if "query images" in str(w.message)]
    assert len(few) == 1  # one warning per call, not per draw or size
    assert few[0].startswith("1 rater(s) are scored on fewer than 10 query images: 'r09' "
                             "(3 at n_support=9).")
    assert "fewest query images of a rater: 7 at 5, 3 at 9" in str(result)
    # printed only when some rater has fewer than 10
    big = _evaluate(prior, TaskSet.from_mapping({"r10": test["r10"]}), n_support=5,
                    n_repeats=1)
    assert "fewest" not in str(big)
    with pytest.warns(PIAAWarning, match=r"2 rater\(s\) are scored on fewer than 10 query "
                                         r"images: 'r09' \(6 at n_support=5\), 'r10' "
                                         r"\(6 at n_support=5\)\."):
        compare_support_strategies(prior, small, [SupportSelector()], n_support=5,
                                   n_query=6, n_repeats=1, random_state=0)


def test_format_table_shows_missing_sizes_as_na_and_separates_long_headers(ratings):
    train, test = _split(ratings)
    results = {"ridge": _evaluate(UserRidgeRegressor().fit(train), test),
               "consensus_ridge": _evaluate(ConsensusRidgeRegressor().fit(train), test,
                                            n_support=5)}
    lines = format_table(results, reference="consensus_ridge").splitlines()
    header, ridge, consensus = lines[0], lines[2], lines[3]
    assert re.search(r"prior only @5\s{2,}vs consensus_ridge @5\s{2,}vs consensus_ridge "
                     r"@20$", header)
    # Columns line up: a full row is as wide as the header.
    assert len(ridge) == len(header)
    # the paired cells are mean ± standard error, the others mean ± std: said so
    assert lines[-1] == ("(vs consensus_ridge: mean paired difference ± its standard error "
                         "over raters)")
    # The paired difference exists at 5 images only; consensus has no 20-image cell.
    assert ridge.split()[-4:] == [ridge.split()[-4], "±", ridge.split()[-2], "n/a"]
    assert consensus.split()[4] == "n/a"  # after the key, as given, and the 5-image cell
    direct = paired_difference(_evaluate(UserRidgeRegressor().fit(train), test, n_support=5),
                               results["consensus_ridge"])
    assert float(ridge.split()[-4]) == pytest.approx(direct[5][0], abs=5e-4)


def test_format_table_compares_priors_on_one_support_size(ratings):
    # Each method's prior was shown at its own smallest size: other query sets.
    train, test = _split(ratings)
    ridge = ConsensusRidgeRegressor().fit(train)
    results = {"early": _evaluate(ridge, test), "late": _evaluate(ridge, test, n_support=20)}
    lines = format_table(results, reference="early").splitlines()
    early, late = lines[2].split(), lines[3].split()
    assert "prior only @5" in lines[0]
    assert early[7] == f"{results['early'].summary[5]['prior'].mean:.3f}"
    assert late[1:4] == ["n/a", f"{results['late'].summary[20]['personalized'].mean:.3f}", "±"]
    assert late[5] == "n/a"  # not its prior at 20 images
    # one test rater has no standard error: "n/a", not "nan"
    one = TaskSet.from_mapping({"r10": test["r10"]})
    text = format_table({"a": _evaluate(ridge, one), "b": _evaluate(ridge, one)},
                        reference="a")
    assert "± nan" not in text and text.splitlines()[3].endswith("±   n/a")


def test_format_table_prints_a_users_keys_as_given_and_refuses_a_reference_it_lacks(
        ratings):
    # {"ridge": result} of a user's ConsensusRidgeRegressor was printed as "per-user
    # ridge (own)", another method's label; reference="blg" beside the user's key "BLG"
    # left the paired columns out without a word.
    train, test = _split(ratings)
    own = _evaluate(UserRidgeRegressor().fit(train), test, n_support=(5,))
    consensus = _evaluate(ConsensusRidgeRegressor().fit(train), test, n_support=(5,))
    users = {"BLG": own, "ridge": consensus}
    lines = format_table(users).splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["BLG", "ridge"]
    assert "per-user ridge" not in "\n".join(lines) and "vs " not in lines[0]
    with pytest.raises(ValueError, match=r"^reference='blg' is not a key of results \['BLG', "
                                         r"'ridge'\]: give the key .*, or None for no paired"):
        format_table(users, reference="blg")
    text = format_table(users, labels={"ridge": "consensus ridge"}, reference="BLG")
    assert "consensus ridge " in text and "vs BLG @5" in text
    # the package's own runs of its methods keep the methods' labels...
    results = compare_methods(train, test, algorithms=("ridge", "consensus_ridge"),
                              n_support=(5,), n_repeats=1, backbone=None)
    assert results["ridge"].method == "ridge" and own.method is None
    text = format_table(results, reference=None)
    assert "per-user ridge (own)" in text and "consensus + residual ridge" in text
    assert "vs " not in text
    # ...under their own key only; labels=METHOD_LABELS takes any key for its method
    assert "per-user ridge" not in format_table({"mine": results["ridge"]})
    assert "per-user ridge (own)" in format_table({"ridge": own}, labels=METHOD_LABELS)


def test_compare_methods_names_the_method_of_each_warning(ratings):
    X, y, groups = ratings
    y = y.copy()
    y[groups == "r10"] = 3.0  # a constant rater: undefined SROCC for every method
    train, test = _split((X, y, groups))
    with pytest.warns(PIAAWarning) as record:
        compare_methods(train, test, algorithms=("ridge", "consensus_ridge"),
                        n_support=(5,), n_repeats=1, backbone=None)
    undefined = [str(w.message) for w in record if "undefined SROCC" in str(w.message)]
    assert [m.split(":")[0] for m in undefined] == ["ridge", "consensus_ridge"]
    # the warning keeps its class (and what filters match on)
    assert all(issubclass(w.category, PIAAWarning) for w in record)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIAAWarning)  # the caller's filters still act
        with pytest.raises(PIAAWarning, match="undefined SROCC"):
            compare_methods(train, test, algorithms=("ridge",), n_support=(5,),
                            n_repeats=1, backbone=None)


def test_compare_methods_gives_baselines_the_meta_learners_default_settings(ratings):
    # a baseline's own default (backbone=None) failed on the images the meta-learners
    # embed by default, after they had trained; on_error and mixed_precision were
    # dropped by the baselines without a word
    from sklearn_piaa.report import _make_method

    beside_blg = {"backbone": MetaAestheticRegressor().backbone}  # as compare_methods sets
    assert _make_method("ridge", 0, {}, {}, beside_blg).backbone == "efficientnet_lite0"
    assert _make_method("ridge", 0, {}, {"backbone": None}).backbone is None
    # a baseline's own settings of a shared name stay its own (PA_IAA's dropout 0.2)
    pa_iaa = _make_method("pa_iaa", 0, {}, {"backbone": None}, beside_blg)
    assert (pa_iaa.dropout, pa_iaa.weight_decay) == (0.2, 1e-4)
    train, test = _split(ratings)
    # baselines alone on features need no backbone=None; their own settings are shared
    results = compare_methods(train, test, algorithms=("ridge", "consensus_ridge"),
                              n_support=(5,), n_repeats=1, alphas=(1.0,))
    assert set(results) == {"ridge", "consensus_ridge"}
    with pytest.warns(PIAAWarning, match=r"on_error='skip' applies to the meta-learners "
                                         r"only: the baselines \['ridge'\] have no such "
                                         "setting"):
        compare_methods(train, test, algorithms=("ridge",), n_support=(5,), n_repeats=1,
                        backbone=None, on_error="skip")
