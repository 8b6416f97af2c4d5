"""The hand-written head backward pass and the direct fused Adam step equal autograd and
``Adam.step``; the fast meta-training path gives the prior the plain path gives."""

import copy
import inspect

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_piaa.meta import ALGORITHMS
from sklearn_piaa.nn import AestheticHead, AestheticLoss, StackedHeadGradient
from sklearn_piaa.nn.adam import adam_step, reset_optimizer
from sklearn_piaa.nn.head_grad import HeadGradient


def _head(dropout=0.0, hidden=(12, 8), per_channel=False, dtype=torch.float64):
    head = AestheticHead(16, hidden, dropout=dropout, score_range=(0.0, 10.0)).to(dtype)
    with torch.no_grad():
        for m in head.modules():
            if isinstance(m, nn.BatchNorm1d):  # non-trivial affine and running statistics
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-1, 1)
        if per_channel:  # a PReLU slope per unit instead of the head's single slope
            head.layers[2] = nn.PReLU(hidden[0], init=0.1).to(dtype)
    return head.train()


def _assert_same_state(a, b):
    """Equal states, but for rounding noise in the biases that feed BatchNorm.

    Such a bias has a gradient of exactly zero (BatchNorm subtracts the batch mean), so
    each path leaves it only rounding noise -- which Adam divides by its own size and
    turns into steps of up to 1e-8 in float64 whichever way the gradient is computed.
    """
    noisy = {"layers.0.bias", "layers.4.bias", "layers.1.running_mean",
             "layers.5.running_mean"}
    for key, value in a.items():
        atol = 1e-7 if key in noisy else 1e-10
        torch.testing.assert_close(value, b[key], rtol=1e-9, atol=atol, msg=key)


def _masks_from(head_grad, monkeypatch):
    """Record the dropout masks the hand-written path draws."""
    drawn = []
    original = HeadGradient._dropout_mask

    def record(like, p):
        mask = original(like, p)
        drawn.append(mask.clone())
        return mask
    monkeypatch.setattr(HeadGradient, "_dropout_mask", staticmethod(record))
    return drawn


def _replay_dropout(modules, masks):
    """Make every Dropout in ``modules`` multiply by the next of ``masks`` (an iterator)
    in training mode (predictions, in eval mode, draw none); returns the hooks, to
    remove."""
    return [m.register_forward_hook(
        lambda mod, inp, out: inp[0] * next(masks) if mod.training else out)
        for module in modules for m in module.modules() if isinstance(m, nn.Dropout)]


def _autograd_with_masks(head, x, y, criterion, masks):
    """``criterion(head(x), y).backward()`` with each Dropout replaced by a given mask."""
    hooks = []
    for m, mask in zip([m for m in head.modules() if isinstance(m, nn.Dropout)], masks):
        hooks.append(m.register_forward_hook(lambda mod, inp, out, mask=mask: inp[0] * mask))
    try:
        head.zero_grad(set_to_none=True)
        loss = criterion(head(x), y)
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
    return loss.detach()


@pytest.mark.parametrize("kind", ["mse", "rank", "mse+rank"])
@pytest.mark.parametrize("dropout", [0.0, 0.5, 0.3])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("n", [10, 60])  # the two layouts of the products (_linear)
def test_gradients_and_statistics_equal_autograd(kind, dropout, per_channel, n, monkeypatch):
    x = torch.randn(n, 16, dtype=torch.float64)
    y = torch.rand(n, dtype=torch.float64) * 10
    criterion = AestheticLoss(kind)
    fast = _head(dropout, per_channel=per_channel)
    ref = copy.deepcopy(fast)
    masks = _masks_from(HeadGradient, monkeypatch)
    loss, pred = HeadGradient(fast).loss_backward(x, y, criterion)
    if dropout:
        assert len(masks) == 2
        kept = (masks[0] > 0).double().mean()
        assert 0.3 < float(kept) < 0.9  # a real mask, neither all kept nor all dropped
    ref_loss = _autograd_with_masks(ref, x, y, criterion, masks)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    for (name, p), q in zip(fast.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12, msg=name)
    for (name, b), c in zip(fast.named_buffers(), ref.buffers()):
        torch.testing.assert_close(b, c, rtol=1e-12, atol=1e-12, msg=name)
    assert pred.shape == (n, 1)


def test_dropout_mask_keeps_one_minus_p_and_rescales():
    like = torch.empty(400, 500)
    for p in (0.2, 0.5, 0.9):
        mask = HeadGradient._dropout_mask(like, p)
        values = torch.unique(mask.abs())
        torch.testing.assert_close(values, torch.tensor([0.0, 1 / (1 - p)]))
        assert float((mask != 0).float().mean()) == pytest.approx(1 - p, abs=0.005)
    assert float(HeadGradient._dropout_mask(like, 1.0).abs().sum()) == 0.0


def test_half_dropout_uses_every_bit_position_fairly():
    # p = 0.5 draws 63 coins per random int64: each of the 63 positions (a column
    # here) must be a fair coin, including the top one.
    mask = HeadGradient._dropout_mask(torch.empty(4000 * 63), 0.5).view(4000, 63)
    kept = (mask != 0).double()
    assert set(torch.unique(mask).tolist()) == {0.0, 2.0}
    assert float((kept.mean(0) - 0.5).abs().max()) < 0.04
    # neighbouring positions are independent: P(both kept) = 1/4
    assert float((kept[:, 1:] * kept[:, :-1]).mean()) == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize("unit", [1.0, 25.0, 0.25])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_squared_error_gradient_is_autograd_bit_for_bit(dtype, unit):
    from sklearn_piaa.nn.head_grad import _mse_and_gradient

    criterion = AestheticLoss("mse", unit=unit)
    for n in (1, 7, 10, 20, 80, 333):
        pred, y = torch.randn(n, 1, dtype=dtype) * 2 + 3, torch.rand(n, dtype=dtype) * 4 + 1
        leaf = pred.clone().requires_grad_(True)
        loss = criterion(leaf, y)
        (grad,) = torch.autograd.grad(loss, leaf)
        loss2, grad2 = _mse_and_gradient(pred, y, unit)
        assert torch.equal(loss, loss2) and torch.equal(grad, grad2)


def test_supports_only_the_trainable_aesthetic_head():
    head = _head()
    assert HeadGradient.supports(head)
    assert not HeadGradient.supports(nn.Sequential(nn.Linear(3, 1)))
    head.layers[0].weight.requires_grad_(False)
    assert not HeadGradient.supports(head)
    with pytest.raises(ValueError, match="AestheticHead"):
        HeadGradient(nn.Linear(3, 1))
    assert not HeadGradient.supports_batch(torch.randn(1, 16))
    assert HeadGradient.supports_batch(torch.randn(2, 16))


def test_adam_step_is_bitwise_adam_step_and_reset_is_a_fresh_adam():
    torch.manual_seed(0)
    a = [nn.Parameter(torch.randn(5, 4)), nn.Parameter(torch.randn(4))]
    b = [nn.Parameter(p.detach().clone()) for p in a]
    opt_a = torch.optim.Adam(a, lr=1e-2, betas=(0.9, 0.99), weight_decay=1e-3, fused=True)
    opt_b = torch.optim.Adam(b, lr=1e-2, betas=(0.9, 0.99), weight_decay=1e-3, fused=True)
    for task in range(2):
        for step in range(4):
            grads = [torch.randn_like(p) for p in a]
            for p, q, g in zip(a, b, grads):
                p.grad, q.grad = g.clone(), g.clone()
            adam_step(opt_a)
            opt_b.step()
            for p, q in zip(a, b):
                assert torch.equal(p, q), (task, step)
        # A new task: opt_a is reset in place, opt_b replaced by a new Adam.
        reset_optimizer(opt_a)
        opt_b = torch.optim.Adam(b, lr=1e-2, betas=(0.9, 0.99), weight_decay=1e-3, fused=True)
    assert all(float(s["step"]) == 0 for s in opt_a.state.values())


@pytest.mark.parametrize("steps_with_grad", [
    [(1, 1, 1), (1, 0, 1), (0, 1, 1), (1, 1, 1)],
    # a parameter first stepped later: no state yet when the group's counters already
    # have the right count
    [(1, 1, 0), (1, 0, 1), (1, 1, 1)],
])
def test_adam_step_leaves_the_count_of_a_parameter_without_gradient(steps_with_grad):
    # Its step counter moved with the others': from then on its bias correction was a
    # step ahead of Adam's.
    torch.manual_seed(0)
    a = [nn.Parameter(torch.randn(5, 4)), nn.Parameter(torch.randn(4)),
         nn.Parameter(torch.randn(3))]
    b = [nn.Parameter(p.detach().clone()) for p in a]
    opt_a, opt_b = (torch.optim.Adam(ps, lr=1e-2, fused=True) for ps in (a, b))
    for has in steps_with_grad:
        for p, q, on in zip(a, b, has):
            g = torch.randn_like(p)
            p.grad, q.grad = (g.clone(), g.clone()) if on else (None, None)
        adam_step(opt_a)
        opt_b.step()
    for p, q in zip(a, b):
        assert torch.equal(p, q)
        assert float(opt_a.state[p]["step"]) == float(opt_b.state[q]["step"])


def test_changed_inner_settings_reach_the_kept_optimizers():
    # The fast paths keep one optimizer across tasks and refreshed only its rates: a
    # weight decay or betas changed between steps went on unchanged.
    g = torch.Generator().manual_seed(1)
    batches = [[((torch.randn(11, 16, generator=g).double(),
                  torch.rand(11, generator=g).double() * 10),
                 (torch.randn(7, 16, generator=g).double(),
                  torch.rand(7, generator=g).double() * 10)) for _ in range(3)]
               for _ in range(3)]
    head, priors = _head(), []
    for fused, stacked in ((False, 1), (True, 1), (True, 2)):
        prior, learner = copy.deepcopy(head), copy.deepcopy(head)
        algo = ALGORITHMS["blg"](inner_lr=1e-2, inner_steps=3, outer_lr=0.3)
        algo.fused_head, algo.max_stacked = fused, stacked
        for i, batch in enumerate(batches):
            if i == 1:
                algo.weight_decay, algo.betas = 0.1, (0.5, 0.9)
            algo.step(prior, learner, batch)
        priors.append(prior.state_dict())
    for other in priors[1:]:
        for key in priors[0]:
            torch.testing.assert_close(other[key], priors[0][key], rtol=1e-8, atol=1e-9,
                                       msg=key)


def test_a_hooked_loss_is_not_taken_for_plain_squared_error():
    head = _head()
    x, y = torch.randn(10, 16).double(), torch.rand(10, 1).double() * 10
    criterion = AestheticLoss()
    criterion.register_forward_hook(lambda module, args, out: out * 10)
    plain = copy.deepcopy(head)
    HeadGradient(head).loss_backward(x, y, criterion)
    criterion(plain(x), y).backward()
    for p, q in zip(head.parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_adam_step_falls_back_to_the_optimizer_for_other_settings():
    p = nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    for opt in (torch.optim.SGD([p], lr=0.1), torch.optim.Adam([p], lr=0.1),
                torch.optim.Adam([p], lr=0.1, amsgrad=True, fused=True)):
        before = p.detach().clone()
        adam_step(opt)
        assert not torch.equal(before, p)
    sgd = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    sgd.step()
    reset_optimizer(sgd)
    assert len(sgd.state) == 0


@pytest.mark.parametrize("name", ["blg", "merged", "reptile", "average"])
@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_fast_and_plain_meta_training_give_the_same_prior(name, dropout, monkeypatch):
    # float64: see test_stacked -- a bias feeding BatchNorm has a zero gradient up to
    # rounding, which Adam scales to a full step, so float32 runs differ by rounding.
    head = _head(dropout)
    g = torch.Generator().manual_seed(1)
    batches = [[((torch.randn(n, 16, generator=g).double(),
                  torch.rand(n, generator=g).double() * 10),
                 (torch.randn(5, 16, generator=g).double(),
                  torch.rand(5, generator=g).double() * 10)) for n in (12, 9, 7)]
               for _ in range(3)]
    masks = _masks_from(HeadGradient, monkeypatch)
    priors, losses = [], []
    for fused in (True, False):
        prior, learner = copy.deepcopy(head), copy.deepcopy(head)
        algo = ALGORITHMS[name](inner_lr=1e-2, inner_steps=3, outer_lr=0.3)
        algo.fused_head = fused
        hooks, replay = [], iter(masks)
        if not fused and dropout:  # the plain path replays the fast path's dropout masks, in order
            hooks = _replay_dropout((prior, learner), replay)
        for i, batch in enumerate(batches):
            loss = algo.step(prior, learner, batch, lr_scale=0.9 if i else 1.0)
        for h in hooks:
            h.remove()
        priors.append(prior.state_dict())
        losses.append(loss)
    if dropout:
        assert len(masks) > 0 and next(replay, None) is None  # every mask used, once
    _assert_same_state(priors[0], priors[1])
    moved = 0.0
    for key in priors[0]:
        if priors[0][key].is_floating_point():
            moved = max(moved, float((priors[0][key] - head.state_dict()[key]).abs().max()))
    assert moved > 1e-3  # training moved the prior: the comparison is not vacuous
    assert losses[0] == pytest.approx(losses[1], rel=1e-9)


def test_batches_of_one_and_frozen_heads_take_the_autograd_path():
    head = _head()
    algo = ALGORITHMS["blg"](inner_lr=1e-2, inner_steps=2, outer_lr=0.5)
    task = ((torch.randn(1, 16).double(), torch.rand(1).double() * 10),
            (torch.randn(4, 16).double(), torch.rand(4).double() * 10))
    prior, learner = copy.deepcopy(head), copy.deepcopy(head)
    algo.step(prior, learner, [task])
    plain = ALGORITHMS["blg"](inner_lr=1e-2, inner_steps=2, outer_lr=0.5)
    plain.fused_head = False
    prior2, learner2 = copy.deepcopy(head), copy.deepcopy(head)
    plain.step(prior2, learner2, [task])
    _assert_same_state(prior.state_dict(), prior2.state_dict())


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_personalized_net_fast_and_plain_steps_fit_the_same_weights(dropout, monkeypatch):
    from sklearn_piaa._personalize import PersonalizedNet

    head = _head(dropout)
    X = torch.randn(30, 16, dtype=torch.float64).numpy()
    y = (torch.rand(30, dtype=torch.float64) * 10).numpy()
    masks = _masks_from(HeadGradient, monkeypatch)
    fitted = []
    for fused in (True, False):
        net = PersonalizedNet(head, criterion=AestheticLoss, optimizer=torch.optim.Adam,
                              optimizer__fused=True, lr=1e-2, max_epochs=3, batch_size=8,
                              iterator_train__shuffle=True, train_split=None, verbose=0,
                              # its own generator: the two paths draw different amounts
                              # from the global one (nn.Dropout draws its unused mask too)
                              iterator_train__generator=torch.Generator().manual_seed(1))
        monkeypatch.setattr(PersonalizedNet, "fused_head", fused)
        hooks, replay = [], iter(list(masks))
        if not fused and dropout:
            net.initialize()
            hooks = _replay_dropout([net.module_], replay)
        torch.manual_seed(3)
        net.partial_fit(X, y) if hooks else net.fit(X, y)
        if fused:
            assert net.__dict__["_head_grad_"][1] is not None  # the fast path ran
            assert not [k for k in net.get_params(deep=False) if "head_grad" in k]
        fitted.append((net.module_.state_dict(), net.history[:, "train_loss"]))
    _assert_same_state(fitted[0][0], fitted[1][0])
    np.testing.assert_allclose(fitted[0][1], fitted[1][1], rtol=1e-9)
    assert not torch.equal(fitted[0][0]["layers.0.weight"], head.state_dict()["layers.0.weight"])


def test_personalized_net_fast_path_around_a_batch_of_one_and_predictions(monkeypatch):
    # 25 rows in batches of 8: the last batch (one row) takes autograd, which must not
    # add to the gradients the fast path left; a callback predicting after each epoch
    # switches the modules to eval mode, and training must switch them back.
    from skorch.callbacks import Callback

    from sklearn_piaa._personalize import PersonalizedNet

    class Watch(Callback):
        def on_grad_computed(self, net, named_parameters, **kwargs):
            modes.append(net.module_.training)

        def on_epoch_end(self, net, **kwargs):
            net.predict(X[:3])

    head = _head(0.0)
    X = torch.randn(25, 16, dtype=torch.float64).numpy()
    y = (torch.rand(25, dtype=torch.float64) * 10).numpy()
    fitted = []
    for fused in (True, False):
        modes = []
        monkeypatch.setattr(PersonalizedNet, "fused_head", fused)
        net = PersonalizedNet(head, criterion=AestheticLoss, optimizer=torch.optim.Adam,
                              optimizer__fused=True, lr=1e-2, max_epochs=3, batch_size=8,
                              train_split=None, verbose=0, callbacks=[Watch()]).fit(X, y)
        assert modes == [True] * 12
        fitted.append(net.module_.state_dict())
    _assert_same_state(fitted[0], fitted[1])


def _adam_run(settings, fast):
    torch.manual_seed(0)
    ps = [nn.Parameter(torch.randn(5, 4)), nn.Parameter(torch.randn(4))]
    opt = torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-2, fused=True, **settings)
    g = torch.Generator().manual_seed(1)
    for step in range(4):
        for p in ps:
            # shrinking gradients: amsgrad's running max then differs from exp_avg_sq
            p.grad = torch.randn(p.shape, generator=g) * (3.0 if step == 0 else 0.1)
        adam_step(opt) if fast else opt.step()
    return [p.detach().clone() for p in ps]


@pytest.mark.parametrize("settings", [{"amsgrad": True}, {"maximize": True}] + (
    # decoupled_weight_decay is an Adam argument from torch 2.6 on
    [{"decoupled_weight_decay": True}]
    if "decoupled_weight_decay" in inspect.signature(torch.optim.Adam).parameters else []))
def test_adam_step_equals_adam_for_other_settings(settings):
    for a, b in zip(_adam_run(settings, True), _adam_run(settings, False)):
        assert torch.equal(a, b), settings


def _ranged_head():
    torch.manual_seed(0)
    return AestheticHead(16, (12, 8), dropout=0.0, score_range=(0.0, 10.0)).double().train()


def _fast_and_autograd_grads(criterion):
    head = _ranged_head()
    plain = copy.deepcopy(head)
    x, y = torch.randn(10, 16).double(), torch.rand(10).double() * 10
    HeadGradient(head).loss_backward(x, y, criterion)
    criterion(plain(x), y).backward()
    for p, q in zip(head.parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_a_global_forward_hook_on_the_loss_is_honoured():
    from torch.nn.modules.module import register_module_forward_hook

    criterion = AestheticLoss()
    handle = register_module_forward_hook(
        lambda module, args, out: out * 10 if isinstance(module, AestheticLoss) else None)
    try:
        _fast_and_autograd_grads(criterion)
    finally:
        handle.remove()


def test_a_subclass_with_its_own_forward_is_not_plain_squared_error():
    class Weighted(AestheticLoss):
        def forward(self, pred, y):
            return 3.0 * super().forward(pred, y)

    _fast_and_autograd_grads(Weighted("mse"))



@pytest.mark.parametrize("change", ["cumulative_bn", "relu", "prelu_subclass"])
def test_heads_it_cannot_compute_are_left_to_autograd(change):
    head = _ranged_head()
    if change == "cumulative_bn":  # BatchNorm's cumulative average (momentum=None)
        head.layers[1].momentum = None
    elif change == "relu":
        head.layers[2] = nn.ReLU()
    else:
        class LeakyPReLU(nn.PReLU):
            def forward(self, x):
                return super().forward(x) * 2
        head.layers[2] = LeakyPReLU()
    assert not HeadGradient.supports(head)
    assert HeadGradient.for_module(head) is None


def test_a_kept_head_gradient_follows_the_head_to_another_dtype():
    head = _ranged_head().float()
    fast = HeadGradient(head)
    x, y = torch.randn(10, 16), torch.rand(10) * 10
    fast.loss_backward(x, y, AestheticLoss())
    head.zero_grad(set_to_none=True)  # as an optimizer's zero_grad leaves them
    head.double()  # the same parameters, now float64: the float32 buffers cannot serve
    plain = copy.deepcopy(head)
    fast.loss_backward(x.double(), y.double(), AestheticLoss())
    AestheticLoss()(plain(x.double()), y.double()).backward()
    for p, q in zip(head.parameters(), plain.parameters()):
        assert p.grad.dtype == torch.float64
        torch.testing.assert_close(p.grad, q.grad)


def test_stacked_copies_use_the_heads_own_batchnorm_eps_and_momentum():
    head = _ranged_head()
    for m in head.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.eps, m.momentum = 0.5, 0.3
    stacked = StackedHeadGradient(head, 2)
    stacked.load(dict(head.named_parameters(), **dict(head.named_buffers())))
    xs = [torch.randn(6, 16).double() for _ in range(2)]
    y = torch.rand(2, 6).double() * 10
    stacked.loss_backward(StackedHeadGradient.stack_inputs(xs), y, AestheticLoss())
    state = stacked.state()
    for i in range(2):
        ref = copy.deepcopy(head)
        AestheticLoss()(ref(xs[i]), y[i]).backward()
        for name, p in ref.named_parameters():
            torch.testing.assert_close(state[name].grad[i], p.grad, msg=name)
        for name, b in ref.named_buffers():
            if b.is_floating_point():
                torch.testing.assert_close(state[name][i], b, msg=name)
