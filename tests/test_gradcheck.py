"""numbanet.gradcheck: it passes on correct gradients and catches wrong ones.

It is also honest at ReLU kinks.  Also checks that the numbanet.testing
strategies draw valid data.

The properties pass ``eps=1e-5`` explicitly (now also gradcheck's default; it
was 1e-6).  A central
difference carries a rounding noise of about ``ε_machine · C / eps`` (larger
where a saturated sigmoid feeds ``log(1 - a)``), and with eps=1e-6 that noise
exceeds the default ``atol=1e-8`` for a few of the drawn networks whose cost
is in the hundreds: in 8000 random draws of ``network_and_batch()``, 3 correct
gradients were reported FAILED at eps=1e-6 and none at eps=1e-5.  The
truncation error at 1e-5 (``eps² f'''/6``) is still far below the tolerance,
and a planted error of 1e-3 is caught at either step.
"""

import re

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import numbanet
from numbanet.testing import (
    HIDDEN_ACTIVATIONS,
    OUTPUT_LOSS_PAIRS,
    architectures,
    batches,
    network_and_batch,
    networks,
    sample_weights,
)

EPS = 1e-5


def small_batch(net, n=5, seed=0, bound=2.0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-bound, bound, size=(n, net.sizes[0]))
    k = net.sizes[-1]
    if net.loss_name == "cross_entropy":
        Y = np.eye(k)[rng.integers(0, k, size=n)]
    elif net.loss_name == "binary_cross_entropy":
        Y = rng.integers(0, 2, size=(n, k)).astype(float)
    elif net.loss_name == "poisson":
        Y = rng.poisson(2.0, size=(n, k)).astype(float)
    else:
        Y = rng.uniform(-1, 1, size=(n, k))
    return X.astype(net.dtype), Y.astype(net.dtype)


# --- passes on correct gradients ------------------------------------------------


@given(network_and_batch())
def test_gradcheck_passes_on_random_networks(case):
    net, X, Y = case
    r = numbanet.gradcheck(net, X, Y, eps=EPS)
    assert r.passed, r.report
    assert r.n_checked + r.n_kink == net.n_params
    assert not r.failures
    assert np.isfinite(r.max_rel_error) and r.max_rel_error >= r.mean_rel_error >= 0
    assert "PASSED" in r.report


@pytest.mark.parametrize(("output", "loss"), OUTPUT_LOSS_PAIRS)
@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
def test_gradcheck_passes_for_every_activation_loss_combination(hidden, output, loss):
    net = numbanet.Network([3, 5, 4, 3], [hidden, hidden, output], loss, seed=1)
    for b in net.biases:
        b[...] = 0.1
    X, Y = small_batch(net, n=6, seed=2)
    r = numbanet.gradcheck(net, X, Y)  # default eps: these costs are small
    assert r.passed, r.report
    assert r.n_checked + r.n_kink == net.n_params
    if hidden not in ("relu", "leaky_relu"):
        assert r.n_kink == 0
        assert r.mean_rel_error < 1e-6 and r.max_abs_error < 1e-8, r.report


@given(network_and_batch(l2=st.floats(0.01, 1.0)), st.data())
def test_gradcheck_passes_with_l2_and_sample_weight(case, data):
    net, X, Y = case
    assert net.l2 > 0
    sw = data.draw(sample_weights(X.shape[0]))
    r = numbanet.gradcheck(net, X, Y, sample_weight=sw, eps=EPS)
    assert r.passed, r.report


def test_l2_and_sample_weight_change_the_gradient_being_checked():
    # guard against a check that ignores l2 / sample_weight on one side only
    net = numbanet.Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", seed=3, l2=0.5)
    X, Y = small_batch(net)
    sw = np.array([3.0, 0.0, 1.0, 0.5, 2.0])
    plain = numbanet.Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", seed=3)
    assert not np.allclose(net.gradients(X, Y)[0][0], plain.gradients(X, Y)[0][0])
    assert not np.allclose(net.gradients(X, Y, sample_weight=sw)[0][0], net.gradients(X, Y)[0][0])
    assert numbanet.gradcheck(net, X, Y, sample_weight=sw).passed


# --- catches a planted error ---------------------------------------------------------


class Planted(numbanet.Network):
    """A network whose reported gradient is wrong in one entry."""

    plant = (0, "W", (0, 0))
    shift = 1e-3

    def gradients(self, X, Y, sample_weight=None):
        dW, db = super().gradients(X, Y, sample_weight)
        l, name, idx = self.plant
        (dW if name == "W" else db)[l][idx] += self.shift
        return dW, db


def planted_net(plant, dtype=np.float64, sizes=(4, 5, 3, 2), acts=("tanh", "sigmoid", "softmax"), loss="cross_entropy"):
    net = Planted(list(sizes), list(acts), loss, dtype=dtype, seed=7)
    net.plant = plant
    return net


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "plant", [(0, "W", (0, 0)), (0, "W", (4, 3)), (1, "b", (2,)), (2, "W", (1, 2)), (2, "b", (0,))]
)
def test_gradcheck_catches_a_planted_error_and_names_it(plant, dtype):
    net = planted_net(plant, dtype)
    X, Y = small_batch(net, n=6, seed=4)
    before = net.params.tobytes()
    r = numbanet.gradcheck(net, X, Y)
    assert r.passed is False
    assert len(r.failures) == 1, r.report
    bad = r.failures[0]
    l, name, idx = plant
    assert (bad.layer, bad.param, bad.index) == (l + 1, name, idx)
    assert abs((bad.analytic - bad.numeric) - 1e-3) < 1e-6
    assert r.max_abs_error >= 0.9e-3
    assert "FAILED (1 entries outside tolerance)" in r.report
    row = rf"^\s+{l + 1}\s+{name}\s+\({','.join(map(str, idx))}\)\s"
    assert re.search(row, r.report, flags=re.MULTILINE), r.report
    assert "Planted" in r.report
    assert net.params.tobytes() == before and net.dtype == dtype


@given(st.data())
def test_gradcheck_catches_a_planted_error_anywhere(data):
    sizes = data.draw(architectures(max_depth=3, max_width=6))
    hidden = data.draw(
        st.lists(st.sampled_from(["sigmoid", "tanh", "identity"]), min_size=len(sizes) - 2, max_size=len(sizes) - 2)
    )
    net = Planted(sizes, hidden + ["sigmoid"], "binary_cross_entropy", seed=data.draw(st.integers(0, 1000)))
    l = data.draw(st.integers(0, net.n_layers - 1))
    name = data.draw(st.sampled_from(["W", "b"]))
    shape = net.weights[l].shape if name == "W" else net.biases[l].shape
    idx = tuple(data.draw(st.integers(0, s - 1)) for s in shape)
    net.plant = (l, name, idx)
    X, Y = data.draw(batches(net, max_samples=6))
    r = numbanet.gradcheck(net, X, Y, eps=EPS)
    assert not r.passed
    assert [(e.layer, e.param, e.index) for e in r.failures] == [(l + 1, name, idx)], r.report


# --- float32 networks ---------------------------------------------------------------


@given(network_and_batch(dtype=np.float32))
def test_gradcheck_of_float32_network_checks_in_float64_and_leaves_it_unchanged(case):
    net, X, Y = case
    before = net.params.tobytes()
    weights_before = [w.copy() for w in net.weights]
    r = numbanet.gradcheck(net, X, Y, eps=EPS)
    assert r.passed, r.report
    assert "float64" in r.report
    assert net.dtype == np.float32 and net.params.dtype == np.float32
    assert net.params.tobytes() == before
    for w, w0 in zip(net.weights, weights_before):
        np.testing.assert_array_equal(w, w0)
        assert np.shares_memory(w, net.params)


def test_float64_network_left_bit_identical():
    net = numbanet.Network([3, 6, 2], ["relu", "softmax"], "cross_entropy", seed=2)
    X, Y = small_batch(net)
    before = net.params.tobytes()
    numbanet.gradcheck(net, X, Y)
    assert net.params.tobytes() == before


# --- kinks: ReLU-like units and the Huber loss ----------------------------------------


def kink_net(act, offset):
    """[2, 3, 1]: hidden unit 0 has pre-activation exactly ``offset`` on sample 0."""
    net = numbanet.Network([2, 3, 1], [act, "identity"], "mse", seed=0)
    net.weights[0][...] = [[1.0, -1.0], [0.5, 0.5], [1.0, 1.0]]
    net.biases[0][...] = [offset, 0.2, -0.1]
    net.weights[1][...] = [[0.7, -0.4, 0.9]]
    net.biases[1][...] = [0.05]
    X = np.array([[1.0, 1.0], [2.0, -1.0], [-0.5, 1.5]])
    Y = np.array([[0.3], [-0.2], [1.0]])
    return net, X, Y


@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
@pytest.mark.parametrize("offset", [0.0, 4e-7, -4e-7])
def test_relu_kink_is_flagged_not_failed(act, offset):
    net, X, Y = kink_net(act, offset)
    Z, _ = net.forward(X)
    assert abs(Z[0][0, 0] - offset) < 1e-15  # the planted kink (within eps=1e-6 of 0)
    r = numbanet.gradcheck(net, X, Y, eps=1e-6)
    assert r.passed, r.report
    assert r.n_kink > 0
    assert r.n_checked + r.n_kink == net.n_params
    flagged = {(e.layer, e.param, e.index) for e in r.kinks}
    # every parameter feeding hidden unit 0 straddles the kink on sample 0
    assert {(1, "b", (0,)), (1, "W", (0, 0)), (1, "W", (0, 1))} <= flagged
    assert all(e.kink for e in r.kinks)
    assert "kink" in r.report
    # had they been compared, the one-sided slopes would have failed
    b0 = next(e for e in r.kinks if (e.layer, e.param, e.index) == (1, "b", (0,)))
    assert abs(b0.analytic - b0.numeric) > 1e-8 + 1e-5 * max(abs(b0.analytic), abs(b0.numeric))


def test_no_kink_flagged_away_from_zero():
    net, X, Y = kink_net("relu", 0.3)
    Z, _ = net.forward(X)
    assert min(np.abs(z).min() for z in Z) > 1e-3
    r = numbanet.gradcheck(net, X, Y)
    assert r.passed and r.n_kink == 0 and r.n_checked == net.n_params


@pytest.mark.parametrize(
    "targets, weights",
    [([1.0, -2.0], None), ([1.0, -2.0, 1.0], [0.0, 1.0, 1.0])],  # the second as Hypothesis found it
)
def test_a_huber_residual_on_its_kink_is_flagged_not_failed(targets, weights):
    # The output is the bias, 0: the residual -1 sits where Huber turns from quadratic to linear, and the
    # gradient is 0, so the central difference's error of eps / 8 there is all there is.
    net = numbanet.Network([1, 1], ["identity"], "huber", seed=0)
    net.weights[0][...] = 0.0
    net.biases[0][...] = 0.0
    X, Y = np.zeros((len(targets), 1)), np.array(targets)[:, None]
    r = numbanet.gradcheck(net, X, Y, sample_weight=weights)
    assert r.passed, r.report
    assert [(e.layer, e.param, e.index) for e in r.kinks] == [(1, "b", (0,))]
    assert "Huber residual" in r.report
    # Compared, the bias's one-sided curvature would have failed it.
    b = r.kinks[0]
    assert abs(b.analytic - b.numeric) > 1e-8 + 1e-5 * max(abs(b.analytic), abs(b.numeric))
    # The targets as a vector (one output) are read as the column they stand for.
    flat = numbanet.gradcheck(net, X, Y.ravel(), sample_weight=weights)
    assert flat.passed and [(e.layer, e.param, e.index) for e in flat.kinks] == [(1, "b", (0,))]


def test_no_huber_kink_flagged_away_from_it():
    net = numbanet.Network([1, 1], ["identity"], "huber", seed=0)
    net.weights[0][...] = 0.0
    net.biases[0][...] = 0.25
    r = numbanet.gradcheck(net, np.zeros((3, 1)), np.array([[1.0], [-2.0], [0.5]]))
    assert r.passed and r.n_kink == 0 and r.n_checked == net.n_params


# --- max_entries -------------------------------------------------------------------------


def test_max_entries_subsamples_reproducibly():
    net = numbanet.Network([5, 8, 6, 3], ["tanh", "sigmoid", "identity"], "mse", seed=5)
    X, Y = small_batch(net, n=4)
    assert net.n_params == 5 * 8 + 8 + 8 * 6 + 6 + 6 * 3 + 3
    r = numbanet.gradcheck(net, X, Y, max_entries=10, n_worst=10)
    assert r.passed and r.n_checked == 10 and r.n_kink == 0
    assert "compared 10 of 10 entries" in r.report
    picked = [(e.layer, e.param, e.index) for e in r.worst]
    assert len(set(picked)) == 10
    again = numbanet.gradcheck(net, X, Y, max_entries=10, n_worst=10)
    assert {(e.layer, e.param, e.index) for e in again.worst} == set(picked)
    other = numbanet.gradcheck(net, X, Y, max_entries=10, n_worst=10, seed=1)
    assert {(e.layer, e.param, e.index) for e in other.worst} != set(picked)
    everything = numbanet.gradcheck(net, X, Y, max_entries=10_000)
    assert everything.n_checked == net.n_params


def test_max_entries_still_sees_a_planted_error_it_samples():
    net = planted_net((1, "W", (1, 1)))
    X, Y = small_batch(net)
    full = numbanet.gradcheck(net, X, Y)
    hits = 0
    for seed in range(12):
        r = numbanet.gradcheck(net, X, Y, max_entries=net.n_params // 2, seed=seed)
        assert r.n_checked == net.n_params // 2
        if not r.passed:
            hits += 1
            assert [(e.layer, e.param, e.index) for e in r.failures] == [(2, "W", (1, 1))]
    assert not full.passed
    assert 0 < hits < 12  # some subsets contain the bad entry, some do not


# --- numbanet.testing draws valid data ------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(data=st.data())
def test_strategies_draw_valid_networks_and_batches(dtype, data):
    net, X, Y = data.draw(network_and_batch(dtype=dtype))
    assert (net.activations[-1], net.loss_name) in OUTPUT_LOSS_PAIRS
    assert all(a in HIDDEN_ACTIVATIONS for a in net.activations[:-1])
    assert 1 <= net.n_layers <= 4 and all(1 <= s <= 16 for s in net.sizes)
    if net.activations[-1] == "softmax":
        assert net.sizes[-1] >= 2
    assert net.dtype == dtype and X.dtype == dtype and Y.dtype == dtype
    assert 1 <= X.shape[0] <= 12 and X.shape == (Y.shape[0], net.sizes[0]) and Y.shape[1] == net.sizes[-1]
    assert np.isfinite(X).all() and np.abs(X).max() <= 3.0
    assert np.isfinite(Y).all()
    if net.loss_name in ("mse", "huber"):
        assert np.abs(Y).max() <= 2.0
    elif net.loss_name == "binary_cross_entropy":
        assert Y.min() >= 0 and Y.max() <= 1
    else:
        assert Y.min() >= 0
        np.testing.assert_allclose(Y.sum(axis=1), 1.0, rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert np.isfinite(net.params).all()
    assert np.isfinite(net.loss(X, Y))  # the network accepts the batch


@given(st.integers(1, 20).flatmap(lambda n: st.tuples(st.just(n), sample_weights(n))))
def test_sample_weights_strategy(case):
    n, w = case
    assert w.shape == (n,) and w.dtype == np.float64
    assert np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0


@given(networks(l2=st.floats(0.0, 1.0), min_depth=2, max_depth=3, max_width=5))
def test_networks_strategy_respects_bounds(net):
    assert 2 <= net.n_layers <= 3
    assert all(s <= 5 for s in net.sizes)
    assert 0.0 <= net.l2 <= 1.0


@given(st.data())
def test_kink_free_draws_are_not_required(data):
    # The properties above must cope with inputs that sit exactly on a kink
    # (all-zero rows with zero biases): gradcheck flags them instead of failing.
    net = data.draw(networks(min_depth=2, max_depth=3))
    assume(any(a in ("relu", "leaky_relu") for a in net.activations))
    # Not Huber: with all-zero inputs the output can be exactly 0, and a whole-number target then
    # puts the residual on Huber's own kink (|a - y| = delta), which central differences miss by O(eps).
    assume(net.loss != "huber")
    X = np.zeros((2, net.sizes[0]))
    _, Y = data.draw(batches(net, 2, 2))
    r = numbanet.gradcheck(net, X, Y.astype(np.float64), eps=EPS)
    assert r.passed, r.report
