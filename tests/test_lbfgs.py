"""numbanet.LBFGS in Network.fit: the iterates of a textbook twin, the fit contract, the refusals."""

import numpy as np
import pytest
from helpers import QUIET, small_net
from scipy.optimize import minimize

import numbanet
from numbanet import reference as ref


def regression(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    Y = np.column_stack([np.sin(X[:, 0]) + X[:, 1] * X[:, 2], X[:, 0] ** 2 - X[:, 2]])
    return X, Y


def _textbook_lbfgs(net, X, Y, l2, iterations):
    """SciPy's L-BFGS-B on numbanet.reference's cost and gradient (per sample, column vectors)."""
    weights, biases, acts = ref.from_network(net)
    shapes = [W.shape for W in weights] + [b.shape for b in biases]
    sizes = [int(np.prod(s)) for s in shapes]

    def unpack(theta):
        parts = np.split(theta, np.cumsum(sizes)[:-1])
        arrays = [p.reshape(s) for p, s in zip(parts, shapes)]
        return arrays[: len(weights)], arrays[len(weights) :]

    def fun(theta):
        Ws, bs = unpack(theta)
        cost = ref.total_cost(Ws, bs, acts, net.loss_name, X, Y) + 0.5 * l2 * sum(np.sum(W * W) for W in Ws)
        gW, gb = ref.batch_gradients(Ws, bs, acts, net.loss_name, X, Y)
        gW = [g + l2 * W for g, W in zip(gW, Ws)]
        return cost, np.concatenate([g.ravel() for g in gW + gb])

    theta0 = np.concatenate([a.ravel() for a in weights + biases])
    result = minimize(fun, theta0, jac=True, method="L-BFGS-B", options={"maxiter": iterations, "gtol": 1e-5})
    Ws, bs = unpack(result.x)
    return Ws, [b.ravel() for b in bs], result


def test_lbfgs_takes_the_iterates_of_the_textbook_cost_and_gradient():
    X, Y = regression()
    net = small_net(seed=1, l2=0.01)
    Ws, bs, result = _textbook_lbfgs(net, X, Y, 0.01, iterations=15)
    history = net.fit(X, Y, epochs=15, optimizer=numbanet.LBFGS(), **QUIET)
    assert len(history.loss) == result.nit == 15
    for W, W_ref in zip(net.weights, Ws):
        np.testing.assert_allclose(W, W_ref, rtol=1e-7, atol=1e-9)
    for b, b_ref in zip(net.biases, bs):
        np.testing.assert_allclose(b, b_ref, rtol=1e-7, atol=1e-9)
    assert history.loss[-1] == pytest.approx(result.fun, rel=1e-10)
    assert net.loss(X, Y) == pytest.approx(history.loss[-1], rel=1e-12)


def test_each_iteration_is_an_epoch_of_the_history():
    X, Y = regression()
    net = small_net()
    seen = []
    history = net.fit(
        X, Y, epochs=12, optimizer=numbanet.LBFGS(), callbacks=lambda n, h: seen.append(n.loss(X, Y)), **QUIET
    )
    assert history.epoch == list(range(12)) and net.epochs_trained == 12 and history.steps == 12
    np.testing.assert_allclose(seen, history.loss, rtol=1e-12)  # the callback sees the accepted iterate
    assert all(b <= a for a, b in zip(history.loss, history.loss[1:]))  # L-BFGS-B never accepts an increase
    assert history.samples == net.optimizer.result_["nfev"] * X.shape[0]
    # A second fit continues the epoch count from the current weights.
    again = net.fit(X, Y, epochs=3, **QUIET)
    assert again.epoch == [12, 13, 14] and again.loss[0] <= history.loss[-1]


def test_float32_network_trains_and_stays_float32():
    X, Y = regression()
    net = small_net(dtype=np.float32)
    history = net.fit(X, Y, epochs=20, optimizer=numbanet.LBFGS(), **QUIET)
    assert net.params.dtype == np.float32 and history.loss[-1] < history.loss[0] / 2


def test_max_fun_bounds_the_evaluations():
    X, Y = regression()
    net = small_net()
    opt = numbanet.LBFGS(max_fun=7)
    net.fit(X, Y, epochs=100, optimizer=opt, **QUIET)
    assert opt.result_["nfev"] <= 8 and opt.result_["status"] == 1  # SciPy may finish the evaluation it is in


def test_a_callback_stop_and_ctrl_c_leave_the_last_accepted_iterate():
    X, Y = regression()
    net = small_net()
    history = net.fit(X, Y, epochs=50, optimizer=numbanet.LBFGS(), callbacks=lambda n, h: len(h.loss) == 4, **QUIET)
    assert len(history.loss) == 4 and history.stopped_early
    assert net.loss(X, Y) == pytest.approx(history.loss[-1], rel=1e-12)

    def interrupt(n, h):
        if len(h.loss) == 3:
            raise KeyboardInterrupt

    net = small_net()
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=50, optimizer=numbanet.LBFGS(), callbacks=interrupt, **QUIET)
    assert len(net.history.loss) == 3 and net.epochs_trained == 3
    assert net.loss(X, Y) == pytest.approx(net.history.loss[-1], rel=1e-12)


def test_interrupt_inside_an_evaluation_restores_the_accepted_iterate(monkeypatch):
    X, Y = regression()
    net = small_net()
    real = net._cost
    calls = []

    def cost(*args):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(net, "_cost", cost)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=50, optimizer=numbanet.LBFGS(), **QUIET)
    monkeypatch.undo()
    assert net.history.loss  # some iterations were accepted before the interruption
    assert net.loss(X, Y) == pytest.approx(net.history.loss[-1], rel=1e-12)


def test_early_stopping_with_validation_restores_the_best_iterate():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 3))
    Y = np.column_stack([X[:, 0] + 0.5 * rng.standard_normal(60), X[:, 1]])
    net = numbanet.Network([3, 40, 2], activations=["tanh", "identity"], seed=0)
    history = net.fit(X, Y, epochs=300, optimizer=numbanet.LBFGS(), validation_split=0.3, early_stopping=5, **QUIET)
    assert history.stopped_early and len(history.val_loss) == len(history.loss)
    best = int(np.argmin(history.val_loss))
    assert history.best_epoch == history.epoch[best]


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(batch_size=8), "batch_size cannot apply"),
        (dict(lr_schedule=lambda e: 0.1), "lr_schedule cannot apply"),
        (dict(clip_norm=1.0), "clip_norm cannot apply"),
    ],
)
def test_mini_batch_options_are_refused_and_nothing_changes(options, match):
    X, Y = regression()
    net = small_net()
    before = net.params.copy()
    with pytest.raises(ValueError, match=match):
        net.fit(X, Y, optimizer=numbanet.LBFGS(), **options, **QUIET)
    np.testing.assert_array_equal(net.params, before)
    assert net.optimizer is None and net.epochs_trained == 0


def test_dropout_partial_fit_and_bad_settings_are_refused():
    X, Y = regression()
    net = small_net(dropout=0.2)
    with pytest.raises(ValueError, match="dropout=0.2"):
        net.fit(X, Y, optimizer=numbanet.LBFGS(), **QUIET)
    net = small_net()
    net.fit(X, Y, epochs=2, optimizer=numbanet.LBFGS(), **QUIET)
    before = net.params.copy()
    with pytest.raises(ValueError, match="train_on_batch"):
        net.train_on_batch(X, Y)
    np.testing.assert_array_equal(net.params, before)
    with pytest.raises(ValueError, match="max_fun must be a positive integer; got 0"):
        numbanet.LBFGS(max_fun=0)
    with pytest.raises(ValueError, match="tol must be a finite number >= 0; got -1"):
        numbanet.LBFGS(tol=-1)


def test_a_start_without_a_finite_cost_is_divergence_and_changes_no_weight():
    X, Y = regression()
    net = small_net(activations=["identity", "identity"])  # outputs near 1e300: their square overflows
    before = net.params.copy()
    with pytest.raises(numbanet.TrainingDivergedError):
        net.fit(X * 1e300, Y, epochs=5, optimizer=numbanet.LBFGS(), **QUIET)
    np.testing.assert_array_equal(net.params, before)
    assert net.history.loss == []


def test_blas_threads_are_given_back_as_the_caller_had_them():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    X, Y = regression()
    before = {
        lib["filepath"]: lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"
    }
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        small_net().fit(X, Y, epochs=3, optimizer=numbanet.LBFGS(), **QUIET)
        inside = {lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"}
    small_net().fit(X, Y, epochs=3, optimizer=numbanet.LBFGS(), **QUIET)
    after = {
        lib["filepath"]: lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"
    }
    assert inside == {1} and after == before


def test_a_real_ctrl_c_during_an_evaluation_is_delivered_with_the_accepted_iterate(monkeypatch):
    import os
    import signal

    X, Y = regression()
    net = small_net()
    real = net._cost
    calls = []

    def cost(*args):
        calls.append(1)
        if len(calls) == 6:
            os.kill(os.getpid(), signal.SIGINT)  # held by fit: noted here, delivered at the next poll
        return real(*args)

    monkeypatch.setattr(net, "_cost", cost)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=50, optimizer=numbanet.LBFGS(), **QUIET)
    monkeypatch.undo()
    assert 6 <= len(calls) <= 7 and net.history.loss
    assert net.loss(X, Y) == pytest.approx(net.history.loss[-1], rel=1e-12)
    assert net.epochs_trained == len(net.history.loss)
