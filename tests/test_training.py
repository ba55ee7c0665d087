"""Training features of :meth:`numbanet.Network.fit`: L2, dropout, schedules,
clipping, validation, early stopping, callbacks, progress, divergence,
continuation, sample weights and reproducibility.

Each test compares ``fit`` with something computed another way: a formula,
``net.gradients`` followed by a hand-written step, or a NumPy transcription.
"""

import math
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numbanet
from numbanet.kernels import rng
from numbanet import SGD, Adam, Callback, CosineLR, EarlyStopping, ExponentialLR, ReduceLROnPlateau, StepLR
from numbanet.testing import batches, networks

from helpers import flat_params

QUIET = dict(progress=False)


def grad(net, X, Y, sample_weight=None):
    return flat_params(net, *net.gradients(X, Y, sample_weight=sample_weight))


def regression(n=12, n_in=3, n_out=2, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_in)), scale * rng.normal(size=(n, n_out))


def classification(n=40, n_in=4, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    return X, np.eye(n_classes)[labels % n_classes]


def small_net(seed=0, **kw):
    kw.setdefault("activations", ["tanh", "identity"])
    return numbanet.Network([3, 5, 2], seed=seed, **kw)


class Recorder(Callback):
    """Records the parameters (and anything else asked for) after each epoch."""

    def __init__(self, extra=None):
        self.extra = extra or (lambda net, history: None)
        self.params, self.values, self.calls = [], [], []
        self.begun = self.ended = 0

    def on_train_begin(self, net):
        self.begun += 1

    def on_epoch_end(self, net, history):
        self.calls.append(len(history))
        self.params.append(net.params.copy())
        self.values.append(self.extra(net, history))
        return False

    def on_train_end(self, net, history):
        self.ended += 1


# ---------------------------------------------------------------------- L2


def test_l2_loss_and_gradient_by_formula():
    X, Y = regression()
    lam = 0.3
    plain = small_net(1)
    penalised = small_net(1, l2=lam)
    np.testing.assert_array_equal(plain.params, penalised.params)
    term = lam / 2 * sum(float(np.sum(W**2)) for W in plain.weights)
    assert term > 0
    assert penalised.loss(X, Y) == pytest.approx(plain.loss(X, Y) + term, rel=1e-13)
    dW0, db0 = plain.gradients(X, Y)
    dW, db = penalised.gradients(X, Y)
    for l in range(plain.n_layers):
        np.testing.assert_allclose(dW[l], dW0[l] + lam * plain.weights[l], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(db[l], db0[l], rtol=1e-13, atol=1e-15)  # biases are not penalised


@pytest.mark.parametrize(
    "sizes, activations, loss",
    [
        ([3, 5, 2], ["tanh", "identity"], "mse"),
        ([3, 4, 3], ["sigmoid", "softmax"], "cross_entropy"),
        ([3, 4, 4, 2], ["tanh", "sigmoid", "sigmoid"], "binary_cross_entropy"),
    ],
)
def test_gradcheck_with_l2(sizes, activations, loss):
    rng = np.random.default_rng(5)
    net = numbanet.Network(sizes, activations=activations, loss=loss, seed=2, l2=0.7)
    X = rng.normal(size=(7, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(sizes[-1], size=7)] if loss != "mse" else rng.normal(size=(7, sizes[-1]))
    result = numbanet.gradcheck(net, X, Y)
    assert result.passed, result.report
    assert result.n_checked == net.n_params


def test_fit_loss_includes_l2_but_optimizer_weight_decay_does_not():
    X, Y = regression()
    n = X.shape[0]
    penalised = small_net(2, l2=0.5)
    before = penalised.loss(X, Y)
    h = penalised.fit(X, Y, batch_size=n, shuffle=False, optimizer=SGD(lr=0.1), **QUIET)
    assert h.loss[0] == pytest.approx(before, rel=1e-12)

    decayed = small_net(2)
    before = decayed.loss(X, Y)
    manual = decayed.copy()
    h = decayed.fit(X, Y, batch_size=n, shuffle=False, optimizer=SGD(lr=0.1, weight_decay=0.5), **QUIET)
    assert h.loss[0] == pytest.approx(before, rel=1e-12)
    # The decay still acts, on weights and biases alike (torch's coupled weight decay).
    g = grad(manual, X, Y)
    np.testing.assert_allclose(decayed.params, manual.params - 0.1 * (g + 0.5 * manual.params), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ dropout


def _dropout_masks(net, n_rows):
    """The inverted-dropout scale factors that ``fit``'s first epoch draws for a
    single batch of ``n_rows`` rows with ``shuffle=False``.

    White-box: the forward pass draws one uniform from the network's in-kernel
    generator (``net._rng_state``, see numbanet.kernels.rng) per hidden unit,
    layer by layer, row by row; without shuffling nothing else draws first.
    """
    state = net._rng_state.copy()
    p = net.dropout
    masks = []
    for width in net.sizes[1:-1]:
        u = np.array([[rng.uniform(state) for _ in range(width)] for _ in range(n_rows)])
        masks.append(np.where(u < p, 0.0, 1.0 / (1.0 - p)))
    return masks


_NP_ACT = {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "identity": lambda z: z}


def _masked_mse(net, theta, X, Y, masks):
    """Mean MSE cost of ``net`` with parameters ``theta`` and fixed dropout masks, in NumPy."""
    A = X
    for l, (n_in, n_out) in enumerate(zip(net.sizes[:-1], net.sizes[1:])):
        w, b = net._w_off[l], net._b_off[l]
        W = theta[w : w + n_out * n_in].reshape(n_out, n_in)
        A = _NP_ACT[net.activations[l]](A @ W.T + theta[b : b + n_out])
        if l < net.n_layers - 1:
            A = A * masks[l]
    return float(np.mean(0.5 * np.sum((A - Y) ** 2, axis=1)))


def test_dropout_step_is_exact_gradient_of_masked_cost():
    """One SGD step with dropout moves the parameters by -lr times the gradient of
    the cost with the masks held fixed (checked by central differences)."""
    X, Y = regression(n=6)
    net = numbanet.Network([3, 5, 4, 2], activations=["tanh", "sigmoid", "identity"], seed=3, dropout=0.4)
    theta0 = net.params.copy()
    masks = _dropout_masks(net, X.shape[0])
    dropped = sum(int((m == 0).sum()) for m in masks)
    assert 0 < dropped < sum(m.size for m in masks)  # some units dropped, not all
    h = net.fit(X, Y, batch_size=X.shape[0], shuffle=False, optimizer=SGD(lr=1.0), **QUIET)
    # The reported loss is the masked cost before the step: the masks are the ones drawn.
    assert h.loss[0] == pytest.approx(_masked_mse(net, theta0, X, Y, masks), rel=1e-12)
    step = theta0 - net.params
    eps = 1e-6
    numeric = np.empty_like(theta0)
    for k in range(theta0.size):
        e = np.zeros_like(theta0)
        e[k] = eps
        numeric[k] = (_masked_mse(net, theta0 + e, X, Y, masks) - _masked_mse(net, theta0 - e, X, Y, masks)) / (2 * eps)
    np.testing.assert_allclose(step, numeric, rtol=1e-6, atol=1e-9)
    # And it is not the dropout-free gradient.
    plain = net.copy()
    plain.params[...] = theta0
    assert not np.allclose(step, grad(plain, X, Y), rtol=1e-3)


def test_dropout_zero_and_near_zero_equal_plain_step():
    X, Y = regression()
    n = X.shape[0]
    plain = small_net(4)
    g = grad(plain, X, Y)
    for p in (0.0, 1e-12):  # 1e-12 runs the dropout code path with (almost surely) no unit dropped
        net = small_net(4, dropout=p)
        theta0 = net.params.copy()
        h = net.fit(X, Y, batch_size=n, shuffle=False, optimizer=SGD(lr=0.5), **QUIET)
        np.testing.assert_allclose(net.params, theta0 - 0.5 * g, rtol=1e-10, atol=1e-12)
        assert h.loss[0] == pytest.approx(plain.loss(X, Y), rel=1e-10)


def test_inverted_dropout_preserves_expected_gradient():
    """For a linear network the output is linear in the masks, so with inverted
    scaling the expected output-bias gradient equals the dropout-free one (without
    the 1/(1-p) scaling it would be about half of it here)."""
    rng = np.random.default_rng(0)
    n, d, hidden, p = 2000, 5, 64, 0.5
    X = 1.0 + 0.3 * rng.normal(size=(n, d))
    Y = np.zeros((n, 1))
    net = numbanet.Network([d, hidden, 1], activations="identity", seed=0, dropout=p)
    plain = numbanet.Network([d, hidden, 1], activations="identity", seed=0)
    b = net._b_off[1]
    expected = grad(plain, X, Y)[b]
    theta0 = net.params.copy()
    lr = 1e-3
    steps = []
    for _ in range(30):
        net.params[...] = theta0
        net.fit(X, Y, batch_size=n, shuffle=False, optimizer=SGD(lr=lr), **QUIET)
        steps.append((theta0[b] - net.params[b]) / lr)
    steps = np.array(steps)
    assert steps.std() > 0  # the masks differ between calls
    assert abs(steps.mean() - expected) < 0.05 * abs(expected)


def test_dropout_reproducible_and_different_from_plain():
    X, Y = classification()
    kw = dict(activations=["relu", "relu", "softmax"], loss="cross_entropy", seed=7)
    a = numbanet.Network([4, 16, 8, 3], dropout=0.3, **kw)
    b = numbanet.Network([4, 16, 8, 3], dropout=0.3, **kw)
    c = numbanet.Network([4, 16, 8, 3], **kw)
    np.testing.assert_array_equal(a.params, c.params)
    for net in (a, b, c):
        net.fit(X, Y, epochs=3, batch_size=8, optimizer=Adam(lr=0.01), **QUIET)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.allclose(a.params, c.params)


def test_dropout_off_outside_training():
    X, Y = classification()
    kw = dict(activations=["tanh", "softmax"], loss="cross_entropy", seed=8)
    net = numbanet.Network([4, 16, 3], dropout=0.5, **kw)
    net.fit(X, Y, epochs=2, batch_size=8, **QUIET)
    plain = numbanet.Network([4, 16, 3], **kw)
    plain.params[...] = net.params
    np.testing.assert_array_equal(net.predict(X), net.predict(X))
    np.testing.assert_array_equal(net.predict(X), plain.predict(X))
    assert net.loss(X, Y) == net.loss(X, Y) == plain.loss(X, Y)
    for u, v in zip(net.gradients(X, Y)[0], plain.gradients(X, Y)[0]):
        np.testing.assert_array_equal(u, v)
    assert numbanet.gradcheck(net, X[:5], Y[:5]).passed


# ---------------------------------------------------------------- schedules


SCHEDULES = {
    "step": (lambda: StepLR(step_size=2, gamma=0.5), lambda e, b: b * 0.5 ** (e // 2)),
    "exponential": (lambda: ExponentialLR(0.8), lambda e, b: b * 0.8**e),
    "cosine": (
        lambda: CosineLR(T_max=5, eta_min=0.01),
        lambda e, b: 0.01 + (b - 0.01) * (1 + math.cos(math.pi * min(e, 5) / 5)) / 2,
    ),
    "callable": (lambda: (lambda epoch: 0.2 / (1 + epoch)), lambda e, b: 0.2 / (1 + e)),
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
    """torch.optim.lr_scheduler.ReduceLROnPlateau (mode 'min', relative threshold,
    no cooldown): the rate of each epoch given the losses of the previous ones."""
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
    h = net.fit(X, Y[:, :1], epochs=4, batch_size=20, shuffle=False, optimizer=SGD(lr=1e-3),
                validation_data=(Xv, Yv), lr_schedule=schedule, **QUIET)
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
    bad_schedules = (lambda: StepLR(0), lambda: ExponentialLR(0), lambda: CosineLR(0), lambda: ReduceLROnPlateau(factor=1))
    for make in bad_schedules:
        with pytest.raises(ValueError):
            make()


# ----------------------------------------------------------------- clipping


def test_clip_norm_scales_the_step():
    X, Y = regression(scale=10.0)
    n = X.shape[0]
    net = small_net(7)
    manual = net.copy()
    theta0 = net.params.copy()
    g = grad(manual, X, Y)
    norm = np.linalg.norm(g)
    clip, lr = 1e-3, 0.5
    assert norm > 100 * clip
    net.fit(X, Y, batch_size=n, shuffle=False, optimizer=SGD(lr=lr), clip_norm=clip, **QUIET)
    change = theta0 - net.params
    # torch.nn.utils.clip_grad_norm_: g * clip / (norm + 1e-6)
    np.testing.assert_allclose(change, lr * g * clip / (norm + 1e-6), rtol=1e-10, atol=1e-16)
    assert np.linalg.norm(change) == pytest.approx(lr * clip, rel=1e-5)


def test_clip_norm_above_gradient_norm_changes_nothing():
    X, Y = regression()
    n = X.shape[0]
    a = small_net(7)
    b = a.copy()
    norm = np.linalg.norm(grad(a, X, Y))
    a.fit(X, Y, batch_size=n, shuffle=False, optimizer=SGD(lr=0.5), clip_norm=2 * norm, **QUIET)
    b.fit(X, Y, batch_size=n, shuffle=False, optimizer=SGD(lr=0.5), **QUIET)
    np.testing.assert_array_equal(a.params, b.params)
    with pytest.raises(ValueError, match="clip_norm"):
        a.fit(X, Y, clip_norm=-1.0, **QUIET)


# --------------------------------------------------------------- validation


def test_validation_data_history_equals_loss_after_each_epoch():
    X, Y = classification(seed=1)
    Xv, Yv = classification(n=15, seed=2)
    net = numbanet.Network([4, 6, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=0, l2=1e-3)
    rec = Recorder(lambda net, h: (net.loss(Xv, Yv), net.accuracy(Xv, Yv)))
    h = net.fit(X, Y, epochs=5, batch_size=8, optimizer=Adam(lr=0.05), validation_data=(Xv, Yv), callbacks=rec, **QUIET)
    assert len(h.val_loss) == len(h.val_accuracy) == len(h.loss) == 5
    assert h.val_loss == [v[0] for v in rec.values]
    assert h.val_accuracy == [v[1] for v in rec.values]
    assert len(set(h.val_loss)) == 5
    assert set(h.as_dict()) == {"epoch", "loss", "val_loss", "val_accuracy", "lr"}


def test_validation_for_regression_has_no_accuracy():
    X, Y = regression()
    net = small_net(0)
    h = net.fit(X, Y, epochs=3, validation_data=(X[:4], Y[:4]), **QUIET)
    assert len(h.val_loss) == 3 and h.val_accuracy == []
    assert "val_accuracy" not in h.as_dict()
    h = net.fit(X, Y, epochs=2, **QUIET)
    assert h.val_loss == [] and "val_loss" not in h.as_dict()


def test_validation_split_holds_out_rows():
    X, Y = classification(n=50, seed=3)
    net = numbanet.Network([4, 6, 3], activations=["sigmoid", "softmax"], loss="cross_entropy", seed=11)
    twin = net.copy()
    # White-box: the held-out rows are the first round(0.2 n) of a permutation from the network's generator.
    perm = net.copy()._rng.permutation(50)
    val, tr = perm[:10], np.sort(perm[10:])
    rec = Recorder(lambda net, h: net.loss(X[val], Y[val]))
    h = net.fit(X, Y, epochs=4, batch_size=16, shuffle=False, validation_split=0.2, callbacks=rec, **QUIET)
    assert len(h.val_loss) == len(h.val_accuracy) == 4
    assert h.val_loss == rec.values
    # The training rows are exactly the others: same as passing the split by hand.
    h2 = twin.fit(X[tr], Y[tr], epochs=4, batch_size=16, shuffle=False, validation_data=(X[val], Y[val]), **QUIET)
    np.testing.assert_array_equal(net.params, twin.params)
    assert h.loss == h2.loss and h.val_loss == h2.val_loss


def test_validation_arguments_refused():
    X, Y = regression()
    net = small_net(0)
    before = net.params.copy()
    bad = [
        dict(validation_split=0.2, validation_data=(X, Y)),
        dict(validation_split=1.0),
        dict(validation_split=0.01),  # rounds to 0 of 12 rows
        dict(validation_data=X),
        dict(validation_data=(X[:, :2], Y)),
        dict(validation_data=(X, Y[:5])),
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            net.fit(X, Y, **kw, **QUIET)
    np.testing.assert_array_equal(net.params, before)
    assert net.epochs_trained == 0


# ----------------------------------------------------------- early stopping


def _overshoot_problem():
    """A 1-1 linear unit pulled from output 0 to target 1; validation wants 0.5.

    With SGD lr 0.1 the output after epoch e (0-based) is 1 - 0.8**(e+1), so the
    validation loss is smallest after epoch 2 (output 0.488) and grows after.
    """
    net = numbanet.Network([1, 1], activations="identity", seed=0)
    net.params[...] = 0.0
    X, Y = np.ones((1, 1)), np.ones((1, 1))
    return net, X, Y, (np.ones((1, 1)), np.full((1, 1), 0.5))


def test_early_stopping_restores_best_epoch():
    net, X, Y, val = _overshoot_problem()
    rec = Recorder()
    h = net.fit(X, Y, epochs=50, batch_size=1, optimizer=SGD(lr=0.1), validation_data=val,
                early_stopping=3, callbacks=rec, **QUIET)
    outputs = [float(p.sum()) for p in rec.params]
    np.testing.assert_allclose(outputs, [1 - 0.8 ** (e + 1) for e in range(len(outputs))], rtol=1e-12)
    assert int(np.argmin(h.val_loss)) == 2
    # Epochs 0-2 up to the best, then 3 (the patience) without improvement stop it.
    assert len(h) == 3 + 3
    assert h.stopped_early and h.best_epoch == 2
    np.testing.assert_array_equal(net.params, rec.params[2])
    assert not np.array_equal(net.params, rec.params[-1])
    assert net.epochs_trained == 6


def test_early_stopping_on_a_flat_training_loss():
    X, Y = regression()
    net = small_net(3)
    rec = Recorder()
    h = net.fit(X, Y, epochs=100, batch_size=4, optimizer=SGD(lr=1e-300), early_stopping=3, callbacks=rec, **QUIET)
    assert len(set(h.loss)) == 1  # parameters cannot move: the loss is exactly flat
    assert len(h) == 4 and h.stopped_early and h.best_epoch == 0
    np.testing.assert_array_equal(net.params, rec.params[0])


def test_early_stopping_object_min_delta_and_monitor():
    X, Y = regression()
    net = small_net(3)
    rec = Recorder()
    stopper = EarlyStopping(patience=2, min_delta=10.0, monitor="loss")
    h = net.fit(X, Y, epochs=30, batch_size=4, optimizer=SGD(lr=0.05), early_stopping=stopper,
                validation_data=(X, Y), callbacks=rec, **QUIET)
    assert all(a > b for a, b in zip(h.loss, h.loss[1:]))  # improving, but never by 10
    assert len(h) == 3 and h.best_epoch == 0
    np.testing.assert_array_equal(net.params, rec.params[0])
    with pytest.raises(ValueError, match="validation"):
        net.fit(X, Y, epochs=2, early_stopping=EarlyStopping(monitor="val_loss"), **QUIET)
    for bad in (0, -1, 2.5, "3"):
        with pytest.raises(ValueError):
            net.fit(X, Y, early_stopping=bad, **QUIET)
    with pytest.raises(ValueError):
        EarlyStopping(monitor="accuracy")


def test_best_epoch_counts_globally():
    net, X, Y, val = _overshoot_problem()
    net.fit(X, Y, epochs=1, batch_size=1, optimizer=SGD(lr=0.1), **QUIET)
    h = net.fit(X, Y, epochs=50, batch_size=1, validation_data=val, early_stopping=3, **QUIET)
    assert h.epoch[0] == 1 and h.best_epoch == 2


# ---------------------------------------------------------------- callbacks


def test_function_and_object_callbacks_called_once_per_epoch():
    X, Y = regression()
    net = small_net(0)
    seen = []

    def fn(n, history):
        assert n is net
        seen.append((len(history), history.epoch[-1], history.loss[-1]))

    rec = Recorder()
    h = net.fit(X, Y, epochs=4, callbacks=[fn, rec], **QUIET)
    assert [s[0] for s in seen] == [1, 2, 3, 4] == rec.calls
    assert [s[2] for s in seen] == h.loss
    assert rec.begun == rec.ended == 1
    assert not h.stopped_early and h.best_epoch is None
    # A single callback need not be in a list.
    seen.clear()
    net.fit(X, Y, epochs=2, callbacks=fn, **QUIET)
    assert [s[1] for s in seen] == [4, 5]


def test_callback_returning_true_stops():
    X, Y = regression()
    net = small_net(0)
    h = net.fit(X, Y, epochs=10, callbacks=lambda n, hist: len(hist) == 3, **QUIET)
    assert len(h) == 3 and h.stopped_early and net.epochs_trained == 3
    # Stopping on the last epoch is not stopping early.
    h = net.fit(X, Y, epochs=2, callbacks=lambda n, hist: len(hist) == 2, **QUIET)
    assert len(h) == 2 and not h.stopped_early


def test_callback_can_change_weights_and_training_continues_from_them():
    X, Y = regression()
    n = X.shape[0]
    net = small_net(0)
    manual = net.copy()

    def zero_biases(n_, history):
        for b in n_.biases:
            b[...] = 0.0

    net.fit(X, Y, epochs=3, batch_size=n, shuffle=False, optimizer=SGD(lr=0.2), callbacks=zero_biases, **QUIET)
    for _ in range(3):
        manual.params -= 0.2 * grad(manual, X, Y)
        zero_biases(manual, None)
    np.testing.assert_allclose(net.params, manual.params, rtol=1e-11, atol=1e-14)
    assert all(not b.any() for b in net.biases)


def test_invalid_callback_refused():
    X, Y = regression()
    with pytest.raises(ValueError, match="callback"):
        small_net(0).fit(X, Y, callbacks=[42], **QUIET)


# ----------------------------------------------------------------- progress


def test_progress_true_shows_a_bar(capsys):
    X, Y = regression()
    small_net(0).fit(X, Y, epochs=3, validation_data=(X, Y), progress=True)
    out, err = capsys.readouterr()
    assert "3/3" in err and "loss" in err and "val_loss" in err
    assert out == ""


def test_progress_false_and_default_are_silent(capsys):
    X, Y = regression()
    net = small_net(0)
    net.fit(X, Y, epochs=3, progress=False)
    net.fit(X, Y, epochs=3)  # pytest captures stderr: not a terminal
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_progress_without_tqdm_prints_a_line_per_epoch(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # makes "from tqdm.auto import tqdm" fail
    monkeypatch.setattr(numbanet.callbacks.Progress, "PLAIN_INTERVAL", 0.0)  # no throttling
    X, Y = classification()
    net = numbanet.Network([4, 5, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=0)
    net.fit(X, Y, epochs=4, validation_data=(X, Y), progress=True)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 4
    for k, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {k}/4") and "loss" in line and "val_acc" in line


def test_progress_without_tqdm_throttles_its_lines(capsys, monkeypatch, xor):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    X, Y = xor
    numbanet.Network([2, 3, 1], seed=0).fit(X, Y, epochs=3000, batch_size=4, progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert 1 <= len(lines) < 100  # not one per epoch
    assert lines[-1].startswith("epoch 3000/3000")


# --------------------------------------------------------------- divergence


def _diverging():
    X, Y = regression(n=20, n_out=1, scale=100.0)
    net = numbanet.Network([3, 4, 1], activations=["tanh", "identity"], seed=0)
    return net, X, Y, dict(epochs=200, batch_size=5, shuffle=False, **QUIET)


def test_divergence_raises_and_restores_start_of_epoch():
    net, X, Y, kw = _diverging()
    theta0 = net.params.copy()
    opt = SGD(lr=1e12, momentum=0.9)
    rec = Recorder(lambda n, h: opt.state.copy())
    with pytest.raises(numbanet.TrainingDivergedError) as info:
        net.fit(X, Y, optimizer=opt, callbacks=rec, **kw)
    err = info.value
    assert isinstance(err, ArithmeticError)
    E = err.epoch
    assert E >= 2 and len(rec.params) == E - 1  # diverged after some finite epochs
    msg = str(err)
    assert f"epoch {E}" in msg and f"batch {err.batch}" in msg and "lower learning rate" in msg
    assert 1 <= err.batch <= 4 and err.lr == 1e12
    assert np.all(np.isfinite(net.params)) and np.all(np.isfinite(opt.state))
    np.testing.assert_array_equal(net.params, rec.params[E - 2])
    np.testing.assert_array_equal(opt.state, rec.values[E - 2])
    assert not np.array_equal(net.params, theta0)
    assert net.epochs_trained == E - 1 and opt.t == 4 * (E - 1)

    # Without callbacks the epochs run in one jitted call: same epoch, same restored state.
    again, X, Y, kw = _diverging()
    with pytest.raises(numbanet.TrainingDivergedError) as info2:
        again.fit(X, Y, optimizer=SGD(lr=1e12, momentum=0.9), **kw)
    assert (info2.value.epoch, info2.value.batch) == (E, err.batch)
    np.testing.assert_array_equal(again.params, net.params)

    # Training can go on from the restored weights with a sane rate.
    h = net.fit(X, Y, epochs=3, optimizer=SGD(lr=1e-4), **QUIET)
    assert np.all(np.isfinite(h.loss)) and h.epoch == [E - 1, E, E + 1]


def test_divergence_in_first_epoch_restores_initial_weights():
    net, X, Y, kw = _diverging()
    theta0 = net.params.copy()
    with pytest.raises(numbanet.TrainingDivergedError, match="epoch 1,") as info:
        net.fit(X, Y, optimizer=SGD(lr=1e300), **kw)
    np.testing.assert_array_equal(net.params, theta0)
    assert net.epochs_trained == 0 and info.value.epoch == 1


# --------------------------------------------------------------- continuing


def test_fit_twice_continues():
    X, Y = regression()
    a = small_net(9)
    b = a.copy()
    a.fit(X, Y, epochs=3, batch_size=5, shuffle=False, optimizer=SGD(lr=0.1, momentum=0.9), **QUIET)
    h = a.fit(X, Y, epochs=2, batch_size=5, shuffle=False, **QUIET)
    b.fit(X, Y, epochs=5, batch_size=5, shuffle=False, optimizer=SGD(lr=0.1, momentum=0.9), **QUIET)
    np.testing.assert_array_equal(a.params, b.params)
    assert a.epochs_trained == 5 and h.epoch == [3, 4]


def test_partial_fit_is_one_step():
    X, Y = regression()
    net = small_net(10)
    manual = net.copy()
    before = net.loss(X, Y)
    loss = net.partial_fit(X, Y, optimizer=SGD(lr=0.3))
    assert loss == pytest.approx(before, rel=1e-12)
    np.testing.assert_allclose(net.params, manual.params - 0.3 * grad(manual, X, Y), rtol=1e-12, atol=1e-15)
    assert net.epochs_trained == 1


def test_partial_fit_continues_optimizer_state():
    X, Y = regression()
    w = np.linspace(0.5, 2.0, X.shape[0])
    net = small_net(10)
    manual = net.copy()
    net.partial_fit(X, Y, optimizer=Adam(lr=0.01), sample_weight=w)
    net.partial_fit(X[:5], Y[:5], sample_weight=w[:5])  # reuses the Adam state
    opt = Adam(lr=0.01)
    opt.step(manual.params, grad(manual, X, Y, w))
    opt.step(manual.params, grad(manual, X[:5], Y[:5], w[:5]))
    np.testing.assert_allclose(net.params, manual.params, rtol=1e-11, atol=1e-14)
    assert net.optimizer.t == 2


# ----------------------------------------------------------- sample weights


@st.composite
def weighted_case(draw, integer=False):
    net = draw(networks(max_depth=2, max_width=6))
    X, Y = draw(batches(net, min_samples=2, max_samples=8))
    n = X.shape[0]
    if integer:
        w = draw(hnp.arrays(np.int64, n, elements=st.integers(0, 3)))
        if w.sum() == 0:
            w[0] = 1
    else:
        w = draw(hnp.arrays(np.float64, n, elements=st.floats(0.1, 3.0)))
        drop = draw(st.integers(0, n - 1))
        w[drop] = 0.0
    return net, X, Y, w


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@given(weighted_case())
def test_zero_weight_equals_dropping_the_sample(case):
    net, X, Y, w = case
    keep = w > 0
    expected = net.loss(X[keep], Y[keep], sample_weight=w[keep])
    assert net.loss(X, Y, sample_weight=w) == pytest.approx(expected, rel=1e-10, abs=1e-13)
    _close(grad(net, X, Y, w), grad(net, X[keep], Y[keep], w[keep]))
    a, b = net.copy(), net.copy()
    ha = a.fit(X, Y, batch_size=X.shape[0], shuffle=False, sample_weight=w, optimizer=SGD(lr=0.1), **QUIET)
    hb = b.fit(X[keep], Y[keep], batch_size=int(keep.sum()), shuffle=False, sample_weight=w[keep],
               optimizer=SGD(lr=0.1), **QUIET)
    _close(a.params, b.params)
    assert ha.loss[0] == pytest.approx(hb.loss[0], rel=1e-10, abs=1e-13)


@given(weighted_case(integer=True))
def test_integer_weights_equal_repeated_rows(case):
    net, X, Y, w = case
    Xr, Yr = np.repeat(X, w, axis=0), np.repeat(Y, w, axis=0)
    assert net.loss(X, Y, sample_weight=w) == pytest.approx(net.loss(Xr, Yr), rel=1e-10, abs=1e-13)
    _close(grad(net, X, Y, w), grad(net, Xr, Yr))


@given(weighted_case())
def test_gradcheck_with_sample_weights(case):
    net, X, Y, w = case
    result = numbanet.gradcheck(net, X, Y, sample_weight=w)
    assert result.passed, result.report


def test_fit_weights_equal_repeated_rows_in_one_batch():
    X, Y = classification(n=10)
    w = np.array([1, 2, 0, 3, 1, 1, 0, 2, 1, 1])
    kw = dict(activations=["tanh", "softmax"], loss="cross_entropy", seed=1)
    a = numbanet.Network([4, 5, 3], **kw)
    b = numbanet.Network([4, 5, 3], **kw)
    a.fit(X, Y, epochs=3, batch_size=10, shuffle=False, sample_weight=w, optimizer=Adam(lr=0.01), **QUIET)
    b.fit(np.repeat(X, w, axis=0), np.repeat(Y, w, axis=0), epochs=3, batch_size=100, shuffle=False,
          optimizer=Adam(lr=0.01), **QUIET)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("scale", [5e-324, 1e-310, 1e300, 1e308])
def test_extreme_weight_scales_give_the_unweighted_result(scale):
    """Only weight ratios matter: all-equal subnormal or huge weights (whose sum
    overflows) train, score and differentiate as no weights at all."""
    X, Y = classification(n=12)
    kw = dict(activations=["tanh", "softmax"], loss="cross_entropy", seed=2)
    w = np.full(12, scale)
    a, b = numbanet.Network([4, 5, 3], **kw), numbanet.Network([4, 5, 3], **kw)
    assert a.loss(X, Y, sample_weight=w) == pytest.approx(b.loss(X, Y), rel=1e-12)
    _close(grad(a, X, Y, w), grad(b, X, Y))
    ha = a.fit(X, Y, epochs=2, batch_size=5, sample_weight=w, optimizer=SGD(lr=0.1), **QUIET)
    hb = b.fit(X, Y, epochs=2, batch_size=5, optimizer=SGD(lr=0.1), **QUIET)
    assert np.isfinite(a.params).all()
    _close(a.params, b.params)
    np.testing.assert_allclose(ha.loss, hb.loss, rtol=1e-12)


# ---------------------------------------------------------- reproducibility


def _repro_fit(seed, dtype=np.float64, **fit_kw):
    X, Y = classification(n=60, seed=4)
    net = numbanet.Network([4, 8, 3], activations=["relu", "softmax"], loss="cross_entropy", seed=seed, dtype=dtype,
                           dropout=0.2)
    net.fit(X, Y, epochs=4, batch_size=7, optimizer=Adam(lr=0.01), **QUIET, **fit_kw)
    return net


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_seed_same_weights(dtype):
    a, b = _repro_fit(3, dtype), _repro_fit(3, dtype)
    np.testing.assert_array_equal(a.params, b.params)


def test_different_seed_different_shuffling():
    a = _repro_fit(3)
    # The same initial weights with another generator: only shuffling and dropout differ.
    X, Y = classification(n=60, seed=4)
    b = numbanet.Network([4, 8, 3], activations=["relu", "softmax"], loss="cross_entropy", seed=4, dropout=0.2)
    b.params[...] = numbanet.Network([4, 8, 3], activations=["relu", "softmax"], loss="cross_entropy", seed=3).params
    b.fit(X, Y, epochs=4, batch_size=7, optimizer=Adam(lr=0.01), **QUIET)
    assert not np.allclose(a.params, b.params)


def test_weights_do_not_depend_on_observers():
    """Callbacks, validation and progress only watch: the trained weights are the
    same as without them (epochs run per call or one by one)."""
    a = _repro_fit(5)
    X, Y = classification(n=60, seed=4)
    b = _repro_fit(5, callbacks=lambda n, h: None)
    c = _repro_fit(5, validation_data=(X[:5], Y[:5]))
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.params, c.params)


# ------------------------------------------------------------------- digits


def test_digits_with_early_stopping_and_schedule(digits):
    X, Y, _ = digits
    net = numbanet.Network([64, 32, 10], activations=["relu", "softmax"], loss="cross_entropy", seed=0)
    perm = net.copy()._rng.permutation(X.shape[0])  # white-box: the rows validation_split holds out
    n_val = round(0.2 * X.shape[0])
    Xv, Yv = X[perm[:n_val]], Y[perm[:n_val]]
    h = net.fit(X, Y, epochs=60, batch_size=32, optimizer=Adam(lr=3e-3), validation_split=0.2, early_stopping=5,
                lr_schedule=CosineLR(T_max=60), **QUIET)
    assert len(h.val_loss) == len(h.val_accuracy) == len(h.loss) == len(h.lr) == len(h)
    assert h.lr[0] == 3e-3 and all(a > b for a, b in zip(h.lr, h.lr[1:]))
    assert h.loss[-1] < h.loss[0] / 5
    assert max(h.val_accuracy) > 0.9
    # The restored weights are those of the best validation epoch.
    assert h.best_epoch == int(np.argmin(h.val_loss))
    assert net.loss(Xv, Yv) == h.val_loss[h.best_epoch]
    assert net.accuracy(Xv, Yv) == h.val_accuracy[h.best_epoch] > 0.9
