import numpy as np
import pytest

from sklearn_piaa import MetaAestheticRegressor, TaskSet
from sklearn_piaa.evaluation import evaluate_personalization

plt = pytest.importorskip("matplotlib.pyplot")
from sklearn_piaa.plotting import plot_finetune_history, plot_rater_srocc  # noqa: E402


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
    with pytest.raises(ValueError, match="n_support=7"):
        plot_rater_srocc(res, n_support=7)
    net = meta.personalize(X[:10], y[:10])
    ax = plot_finetune_history(net)
    assert len(ax.lines[0].get_xdata()) == tiny_params["finetune_epochs"]
    with pytest.raises(ValueError, match="valid_loss"):
        plot_finetune_history(net, keys=("valid_loss",))
