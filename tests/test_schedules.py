"""Learning-rate schedules in :meth:`numbanet.Network.fit`.

The rate of each epoch against its formula (and torch's ``ReduceLROnPlateau``),
across repeated fits.
"""

import math

import numpy as np
import pytest
from helpers import QUIET, grad, small_net
from naive import regression

import numbanet
from numbanet import SGD, CosineLR, ExponentialLR, ReduceLROnPlateau, StepLR

# ---------------------------------------------------------------- schedules


SCHEDULES = {
    "step": (lambda: StepLR(step_size=2, gamma=0.5), lambda e, b: b * 0.5 ** (e // 2)),
    "exponential": (lambda: ExponentialLR(0.8), lambda e, b: b * 0.8**e),
    "cosine": (
        lambda: CosineLR(T_max=5, eta_min=0.01),
        lambda e, b: 0.01 + (b - 0.01) * (1 + math.cos(math.pi * min(e, 5) / 5)) / 2,
    ),
    "callable": (lambda: lambda epoch: 0.2 / (1 + epoch), lambda e, b: 0.2 / (1 + e)),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_rates_per_epoch_continue_across_fits(name):
    make, formula = SCHEDULES[name]
    X, Y = regression()
    n = X.shape[0]
    base = 0.3
    net = small_net(5)
    manual = net.copy()
    schedule = make()
    h1 = net.fit(X, Y, epochs=3, batch_size=n, shuffle=False, optimizer=SGD(lr=base), lr_schedule=schedule, **QUIET)
    h2 = net.fit(X, Y, epochs=4, batch_size=n, shuffle=False, lr_schedule=schedule, **QUIET)
    assert h1.epoch == [0, 1, 2] and h2.epoch == [3, 4, 5, 6]
    expected = [formula(e, base) for e in range(7)]
    np.testing.assert_allclose(h1.lr + h2.lr, expected, rtol=1e-15)
    assert len(set(np.round(expected, 12))) > 1
    # The rates are the ones used: full-batch SGD steps with them.
    for lr in expected:
        manual.params -= lr * grad(manual, X, Y)
    np.testing.assert_allclose(net.params, manual.params, rtol=1e-11, atol=1e-13)


def test_cosine_reaches_eta_min_and_stays():
    s = CosineLR(T_max=4, eta_min=0.05)
    assert s(0, 1.0) == 1.0
    assert s(2, 1.0) == pytest.approx(0.525)
    assert s(4, 1.0) == pytest.approx(0.05) and s(9, 1.0) == pytest.approx(0.05)


def _plateau_rates(losses, base, factor, patience, threshold, min_lr):
    """Return the rate of each epoch given the losses of the previous ones.

    The rates are those of torch.optim.lr_scheduler.ReduceLROnPlateau (mode 'min',
    relative threshold, no cooldown).
    """
    best, bad, lr, out = math.inf, 0, base, []
    for v in losses:
        out.append(lr)
        if v < best * (1 - threshold):
            best, bad = v, 0
        else:
            bad += 1
            if bad > patience:
                lr, bad = max(lr * factor, min_lr), 0
    return out


def _plateau_fit(base=1e-300):
    # lr so small that the parameters cannot move: the loss is exactly flat.
    X, Y = regression()
    net = small_net(6)
    schedule = ReduceLROnPlateau(factor=0.5, patience=1)
    h1 = net.fit(X, Y, epochs=4, batch_size=4, optimizer=SGD(lr=base), lr_schedule=schedule, **QUIET)
    h2 = net.fit(X, Y, epochs=5, batch_size=4, lr_schedule=schedule, **QUIET)
    return h1.loss + h2.loss, h1.lr + h2.lr, base


def test_reduce_on_plateau_rates():
    losses, lrs, base = _plateau_fit()
    expected = _plateau_rates(losses, base, 0.5, 1, 1e-4, 0.0)
    np.testing.assert_allclose(lrs, expected, rtol=1e-15)
    assert lrs[0] == base and lrs[-1] <= base / 8  # at least three reductions


def test_reduce_on_plateau_rates_match_torch():
    torch = pytest.importorskip("torch")
    losses, lrs, base = _plateau_fit()
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=base)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=1e-4, eps=0.0)
    torch_lrs = []
    for v in losses:
        torch_lrs.append(opt.param_groups[0]["lr"])
        sched.step(v)
    np.testing.assert_allclose(lrs, torch_lrs, rtol=1e-15)


def test_reduce_on_plateau_monitors_validation_loss():
    # Training loss falls every epoch, the validation loss (of a constant-output problem) does not change.
    X, Y = regression(n=20)
    net = numbanet.Network([3, 1], activations="identity", seed=0)
    Xv = np.zeros((4, 3))  # output = bias only
    Yv = np.zeros((4, 1))
    schedule = ReduceLROnPlateau(factor=0.5, patience=0)
    h = net.fit(
        X,
        Y[:, :1],
        epochs=4,
        batch_size=20,
        shuffle=False,
        optimizer=SGD(lr=1e-3),
        validation_data=(Xv, Yv),
        lr_schedule=schedule,
        **QUIET,
    )
    assert all(a > b for a, b in zip(h.loss, h.loss[1:]))
    expected = _plateau_rates(h.val_loss, 1e-3, 0.5, 0, 1e-4, 0.0)
    assert h.lr == pytest.approx(expected, rel=1e-15)


def test_invalid_schedules_refused_without_change():
    X, Y = regression()
    net = small_net(0)
    before = net.params.copy()
    for bad in (lambda e: -1.0, lambda e: float("nan")):
        with pytest.raises(ValueError, match="rate"):
            net.fit(X, Y, lr_schedule=bad, **QUIET)
        np.testing.assert_array_equal(net.params, before)
    bad_schedules = (
        lambda: StepLR(0),
        lambda: ExponentialLR(0),
        lambda: CosineLR(0),
        lambda: ReduceLROnPlateau(factor=1),
    )
    for make in bad_schedules:
        with pytest.raises(ValueError):
            make()
