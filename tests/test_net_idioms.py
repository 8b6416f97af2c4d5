"""skorch's own idioms on the nets ``personalize`` returns: callbacks, other optimizers
and losses, and a module changed between fits."""

import signal
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
import torch
from conftest import CtrlC
from skorch.callbacks import EarlyStopping, Freezer, LRScheduler
from skorch.dataset import ValidSplit
from torch import nn

from sklearn_piaa import MetaAestheticRegressor, load_model, save_model


@pytest.fixture(scope="module")
def prior():
    from conftest import TINY, make_rating_features

    X, y, groups, _ = make_rating_features()
    return MetaAestheticRegressor(**TINY).fit(X, y, groups=groups)


def _rater(seed=1, n=40):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 8).astype(np.float32)
    return X, np.clip(np.round(3 + X[:, 0] - 0.8 * X[:, 1] + 0.3 * rng.randn(n)), 1, 5)


def test_early_stopping_ends_personalization_as_in_skorch(prior):
    # EarlyStopping stops training by raising KeyboardInterrupt: it was taken for a
    # Ctrl-C and raised out of personalize (and of any search around it).
    X, y = _rater(n=60)
    net = prior.personalize(X, y, max_epochs=300, lr=1e-2,
                            train_split=ValidSplit(0.25, random_state=0),
                            callbacks=[EarlyStopping(patience=2)])
    assert 3 <= len(net.history) < 300
    assert np.isfinite(net.predict(X)).all()


def test_a_validation_share_is_drawn_from_personalizes_random_state(prior):
    # skorch's ValidSplit(0.2) without random_state drew from NumPy's global generator:
    # the same personalize(random_state=...) gave another net each time.
    X, y = _rater(n=60)
    split = ValidSplit(0.2)
    state = np.random.get_state()
    nets = [prior.personalize(X, y, random_state=3, max_epochs=4, train_split=split)
            for _ in range(2)]
    np.testing.assert_array_equal(nets[0].predict(X), nets[1].predict(X))
    assert ([e["valid_loss"] for e in nets[0].history]
            == [e["valid_loss"] for e in nets[1].history])
    assert split.random_state is None  # the user's object is left as given
    after = np.random.get_state()
    assert after[1].tolist() == state[1].tolist() and after[2] == state[2]
    # another seed, another validation share; a user's own random_state is kept
    other = prior.personalize(X, y, random_state=4, max_epochs=4, train_split=split)
    assert other.history[-1]["valid_loss"] != nets[0].history[-1]["valid_loss"]
    kept = prior.personalize(X, y, random_state=3, train_split=ValidSplit(0.2, random_state=7))
    assert kept.train_split.random_state == 7


def test_ctrl_c_during_personalization_still_raises(prior):
    X, y = _rater()
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        prior.personalize(X, y, max_epochs=5, callbacks=[CtrlC()])
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


@pytest.mark.usefixtures("python_sigint")
def test_a_refit_that_fails_leaves_the_personalized_net_as_it_was(prior):
    # skorch resets the net to the prior before X is checked: a refit refused for its X
    # left a net predicting as the prior, saved under the rater's name without a word
    X, y = _rater()
    net = prior.personalize(X, y)
    before = net.predict(X)
    history = [epoch["train_loss"] for epoch in net.history]
    assert not np.array_equal(before, prior.predict(X))
    bad = {"features of another width": (X[:, :3], y),
           "NaN features": (np.full_like(X, np.nan), y),
           "no rows": (X[:0], y[:0]),
           "images for a feature model": (np.array(["a.png"] * len(y)), y)}
    for name, (X_bad, y_bad) in bad.items():
        with pytest.raises(ValueError):
            net.fit(X_bad, y_bad)
        np.testing.assert_array_equal(net.predict(X), before, err_msg=name)
        assert [epoch["train_loss"] for epoch in net.history] == history, name
    with pytest.raises(KeyboardInterrupt):  # stopped in the second epoch
        net.set_params(callbacks=[CtrlC()]).fit(X, y)
    np.testing.assert_array_equal(net.predict(X), before)
    # partial_fit trains in place: interrupted or diverged, it left the net half trained
    net.set_params(callbacks=[CtrlC(at_epoch=len(history) + 2)]).initialize_callbacks()
    with pytest.raises(KeyboardInterrupt):
        net.partial_fit(X, y)
    net.set_params(callbacks=None, lr=1e30).initialize_callbacks()
    with pytest.raises(FloatingPointError, match="fine-tuning diverged"):
        net.partial_fit(X, y)
    np.testing.assert_array_equal(net.predict(X), before)
    assert [epoch["train_loss"] for epoch in net.history] == history
    net.set_params(lr=1e-3).partial_fit(X, y)  # the old optimizer goes on
    assert len(net.history) == len(history) + net.max_epochs


def test_a_warm_started_refit_that_fails_leaves_the_net_as_it_was(prior):
    # with warm_start skorch trains the module and optimizer in place: the history was
    # put back and the weights and Adam's moments kept 3 epochs of the failed fit
    X, y = _rater()
    net = prior.personalize(X, y, max_epochs=5).set_params(warm_start=True)
    before, history = net.predict(X), len(net.history)
    steps = [s["step"].item() for s in net.optimizer_.state.values()]
    with pytest.raises(KeyboardInterrupt):
        # (a warm start initializes nothing: the callbacks neither)
        net.set_params(callbacks=[CtrlC(at_epoch=history + 3)]).initialize_callbacks()
        net.fit(X, y)
    np.testing.assert_array_equal(net.predict(X), before)
    assert len(net.history) == history
    assert [s["step"].item() for s in net.optimizer_.state.values()] == steps


def test_a_refit_with_its_own_validation_share_repeats_itself(prior):
    # random_state seeded only the split that personalize gave: a ValidSplit(0.25) set
    # on the net (a grid search over it) drew from NumPy's global generator
    X, y = _rater(n=60)
    net = prior.personalize(X, y, max_epochs=3).set_params(train_split=ValidSplit(0.25))
    predictions = []
    for global_seed in (1, 2):
        np.random.seed(global_seed)
        predictions.append(net.fit(X, y).predict(X))
        assert np.random.get_state()[2] == np.random.RandomState(global_seed).get_state()[2]
    np.testing.assert_array_equal(*predictions)
    assert net.train_split.random_state is None
    net.set_params(random_state=2**40).fit(X, y)  # a net's seed may pass NumPy's range


def test_module_settings_that_would_drop_the_prior_are_refused(prior):
    # skorch built a new head from the class: the prior's weights and BatchNorm
    # statistics were thrown away without a word, or the build failed on a missing one
    X, y = _rater()
    net = prior.personalize(X, y)
    before = net.predict(X)
    with pytest.raises(ValueError, match=r"\['module__dropout'\] cannot be set.*without "
                                         "the prior's weights"):
        net.set_params(module__dropout=0.0)
    np.testing.assert_array_equal(net.fit(X, y).predict(X), before)


def test_a_callback_stops_personalization_in_a_worker_thread(prior):
    # Ctrl-C raises in the main thread only: elsewhere a KeyboardInterrupt is a stop.
    X, y = _rater()
    stop = EarlyStopping(monitor="train_loss", patience=0, threshold=10.0)
    got = {}
    worker = threading.Thread(target=lambda: got.update(
        net=prior.personalize(X, y, max_epochs=50, callbacks=[stop])))
    worker.start()
    worker.join()
    assert 1 <= len(got["net"].history) < 50


@pytest.mark.parametrize("params", [
    dict(optimizer=torch.optim.SGD, optimizer__momentum=0.9, lr=1e-2),
    dict(optimizer=torch.optim.RMSprop, lr=1e-4),
    dict(criterion=nn.L1Loss),
    dict(criterion=nn.L1Loss()),
], ids=["sgd", "rmsprop", "l1-class", "l1-instance"])
def test_personalize_takes_other_optimizers_and_losses(prior, params):
    # The package's Adam and loss settings (betas, fused, kind) went to any optimizer
    # and criterion: TypeError; a criterion instance was refused by set_params.
    X, y = _rater()
    net = prior.personalize(X, y, **params)
    optimizer = params.get("optimizer", torch.optim.Adam)
    assert type(net.optimizer_) is optimizer
    # the prior's weight decay still applies wherever the optimizer has one
    assert net.optimizer_.defaults["weight_decay"] == prior.weight_decay
    if "criterion" in params:
        assert isinstance(net.criterion_, nn.L1Loss)
    assert not np.allclose(net.predict(X), prior.personalize(X, y, max_epochs=0).predict(X))


def test_a_net_that_only_predicts_makes_no_optimizer(tmp_path):
    # A process's first optimizer imports torch._dynamo (1.5-3 s on 2 cores): every
    # load_model and `sklearn-piaa predict` paid it, for an optimizer never used.
    from conftest import TINY, make_rating_features

    Xs, ys, groups, _ = make_rating_features()
    prior = MetaAestheticRegressor(**TINY).fit(Xs, ys, groups=groups)
    X, y = _rater()
    net = prior.personalize(X, y, random_state=0)
    save_model(prior, tmp_path / "prior.pt")
    save_model(net, tmp_path / "net.pt")
    loaded, loaded_net = load_model(tmp_path / "prior.pt"), load_model(tmp_path / "net.pt")
    for only_predicts in (prior.prior_net_, loaded.prior_net_, loaded_net):
        only_predicts.predict(X)
        assert "optimizer_" not in vars(only_predicts)
    # made when first asked for: skorch's, with the net's settings, over module_
    optimizer = loaded.prior_net_.optimizer_
    assert type(optimizer) is torch.optim.Adam and optimizer.defaults["fused"]
    assert optimizer.defaults["lr"] == loaded.prior_net_.lr
    assert optimizer.defaults["betas"] == tuple(prior.betas)
    assert optimizer.defaults["weight_decay"] == prior.weight_decay
    assert [id(p) for p in optimizer.param_groups[0]["params"]] == \
        [id(p) for p in loaded.prior_net_.module_.parameters()]
    assert loaded.prior_net_.optimizer_ is optimizer
    # set_params reaches an optimizer not made yet, as skorch's own
    loaded_net.set_params(lr=0.25)
    assert loaded_net.optimizer_.param_groups[0]["lr"] == 0.25
    # fits make theirs as before: the same nets
    np.testing.assert_array_equal(loaded.personalize(X, y, random_state=0).predict(X),
                                  net.predict(X))
    again = load_model(tmp_path / "net.pt")
    assert not np.allclose(again.partial_fit(X, y).predict(X), net.predict(X))
    assert type(again.optimizer_) is torch.optim.Adam
    with pytest.raises(AttributeError, match="no attribute 'optimizer_x'"):
        loaded_net.optimizer_x


def test_loading_a_model_and_predicting_imports_no_compiler(tmp_path):
    # What the test above saves a new process: torch._dynamo's import; and loading the
    # shipped backbone imported torch's symbolic shapes and sympy (0.5 s) through
    # nn.utils.skip_init. Checked in a process of its own, where nothing ran before.
    from conftest import TINY, make_rating_features

    Xs, ys, groups, _ = make_rating_features()
    save_model(MetaAestheticRegressor(**TINY).fit(Xs, ys, groups=groups),
               tmp_path / "prior.pt")
    modules = ("torch._dynamo", "torch.fx.experimental.symbolic_shapes")
    code = ("import sys, numpy, torch\n"
            f"modules = {modules!r}\n"
            "print(*(m in sys.modules for m in modules))\n"
            "from sklearn_piaa import load_model\n"
            "from sklearn_piaa.nn import load_backbone\n"
            "model = load_model(sys.argv[1])\n"
            "model.predict(numpy.zeros((3, 8), numpy.float32))\n"
            "load_backbone('efficientnet_lite0')\n"
            "print(*(m in sys.modules for m in modules))\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "prior.pt")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    before, after = (line.split() for line in done.stdout.splitlines())
    if "True" in before:
        pytest.skip(f"this torch imports {modules} with torch itself: {before}")
    assert after == ["False", "False"], modules


def test_a_layer_frozen_after_personalization_stays_frozen(prior):
    # The hand-written step kept the head it first parsed: frozen layers moved.
    X, y = _rater()
    net = prior.personalize(X, y, random_state=0)
    net.callbacks = [Freezer("layers.0.*", at=lambda net: True)]
    net.initialize_callbacks()
    before = net.module_.layers[0].weight.detach().clone()
    net.partial_fit(*_rater(seed=2))
    assert torch.equal(before, net.module_.layers[0].weight)
    assert not torch.equal(before, prior.personalize(X, y, random_state=0)
                           .partial_fit(*_rater(seed=2)).module_.layers[0].weight)


def test_a_replaced_layer_is_trained(prior):
    net = prior.personalize(*_rater(), random_state=0)
    net.module_.layers[-1] = new = nn.Linear(16, 1)
    start = new.weight.detach().clone()
    net.initialize_optimizer()
    net.partial_fit(*_rater(seed=2))
    assert not torch.equal(start, new.weight)


def test_a_changed_dropout_rate_is_used(prior):
    # With dropout off and one batch per epoch, training draws nothing but the order of
    # the rows: two seeds agree to rounding (the old rate kept: 2e-3 apart).
    X, y = _rater(seed=2)
    preds = []
    for seed in (1, 2):
        net = prior.personalize(*_rater(), random_state=0)
        for layer in net.module_.layers:
            if isinstance(layer, nn.Dropout):
                layer.p = 0.0
        net.set_params(batch_size=-1, random_state=seed)
        preds.append(net.partial_fit(X, y).predict(X))
    np.testing.assert_allclose(*preds, rtol=0, atol=1e-5)


def test_a_learning_rate_schedule_sees_every_optimizer_step(prior):
    # The direct fused Adam call skipped optimizer.step(): torch warned that the
    # scheduler stepped first, and step hooks never ran.
    X, y = _rater()
    net = prior.personalize(X, y, max_epochs=0)
    steps = []
    net.set_params(max_epochs=4, batch_size=10,
                   callbacks=[LRScheduler(policy="StepLR", step_size=1, gamma=0.5)])
    net.initialize()
    net.optimizer_.register_step_post_hook(lambda *args: steps.append(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.partial_fit(X, y)
    assert len(steps) == 4 * 4
    assert net.optimizer_.param_groups[0]["lr"] == pytest.approx(net.lr * 0.5 ** 4)


def test_a_misspelled_setting_is_refused(prior):
    # skorch's own check of its arguments was handed the prior's list of names.
    with pytest.raises(TypeError, match="unexpected keyword argument.*'learning_rate'"):
        prior.personalize(*_rater(), learning_rate=3)


def test_a_refit_of_a_personalized_net_starts_from_the_prior_again(prior):
    # fit starts from the prior's weights every time, so a re-fit never compounds
    X, y = _rater()
    net = prior.personalize(X[:20], y[:20], random_state=0)
    first = net.predict(X)
    net.fit(X[:20], y[:20])
    np.testing.assert_array_equal(net.predict(X), first)


def test_fine_tuning_on_another_scale_measures_the_loss_in_its_unit(prior):
    # the loss unit is a quarter of the score range: 25 on a 0-100 scale, 1 on 1-5
    X, y = _rater()
    assert tuple(prior.score_range_) == (1.0, 5.0)
    net = prior.personalize(X[:20], (y[:20] - 1) * 25, score_range=(0, 100))
    assert net.criterion_.unit == pytest.approx(25.0)
    assert prior.personalize(X[:20], y[:20]).criterion_.unit == pytest.approx(1.0)


def test_a_net_refuses_to_fit_scores_its_head_cannot_reach(prior):
    # the head spans (1, 5): a direct fit on 6, or on 5 + 5% of the span, is refused,
    # not trained towards an output the sigmoid never gives
    X, y = _rater()
    net = prior.personalize(X[:20], y[:20])
    for high in (6.0, 5.2):
        with pytest.raises(ValueError, match="outside the network's output range"):
            net.fit(X[:3], np.array([1.0, 3.0, high], dtype=np.float32))


@pytest.fixture
def net_and_rater(ratings, tiny_params):
    X, y, groups = ratings
    meta = MetaAestheticRegressor(**{**tiny_params, "n_iterations": 2, "finetune_epochs": 1}
                                  ).fit(X, y, groups=groups)
    return meta.personalize(X[:20], y[:20]), X[:20], y[:20]


def test_a_nets_own_fit_refuses_a_negative_epoch_count(net_and_rater):
    # skorch runs no epoch for a negative count: the "personalized" net would be the prior.
    net, X, y = net_and_rater
    net.set_params(max_epochs=-1)
    with pytest.raises(ValueError, match="max_epochs must be a non-negative integer"):
        net.fit(X, y)


@pytest.mark.parametrize("seed", [-1, np.random.RandomState(0)])
def test_a_nets_own_fit_refuses_a_seed_that_is_no_non_negative_int(net_and_rater, seed):
    net, X, y = net_and_rater
    net.set_params(random_state=seed)
    with pytest.raises(ValueError, match="random_state must be a non-negative integer or None"):
        net.fit(X, y)
