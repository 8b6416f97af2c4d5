import pytest
from conftest import tiny_baselines
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_piaa import MetaAestheticRegressor

# Checks that cannot pass for a meta-learner over raters, each with its reason.
EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data": "fit takes no sample_weight",
}


def _tiny(**kw):
    return MetaAestheticRegressor(backbone=None, hidden_sizes=(8,), n_iterations=3,
                                  support_size=8, query_size=4, finetune_epochs=2,
                                  random_state=0, **kw)


@pytest.mark.filterwarnings("ignore::sklearn_piaa.PIAAWarning")
@parametrize_with_checks([_tiny()], expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# PAM with attribute columns and PA_IAA need their own data (attribute columns of X, a
# personality table naming every rater), which the generic checks' X cannot carry.
BASELINES = [est for est in tiny_baselines()
             if getattr(est, "variant", None) != "both" or type(est).__name__ == "USARRegressor"
             if type(est).__name__ != "PAIAARegressor"]


@pytest.mark.filterwarnings("ignore::sklearn_piaa.PIAAWarning")
@parametrize_with_checks(BASELINES, expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_baselines_sklearn_compatible(estimator, check):
    check(estimator)


def _tiny_task_vectors():
    from sklearn_piaa import TaskVectorRegressor

    return TaskVectorRegressor(_tiny(), n_sources=2, source_epochs=1, coef_steps=3,
                               random_state=0)


@pytest.mark.filterwarnings("ignore::sklearn_piaa.PIAAWarning")
@parametrize_with_checks([_tiny_task_vectors()],
                         expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_task_vectors_sklearn_compatible(estimator, check):
    # an array-like X that is not an ndarray once failed its width check
    check(estimator)
