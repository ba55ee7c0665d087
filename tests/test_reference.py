"""The fast Network agrees with the textbook, literally (numbanet.reference).

``numbanet.reference`` is docs/derivation.md ("The training loop") written one sample at a time
with column vectors; ``Network`` runs flat batched kernels.  In float64 they
must agree to rounding.  Differences are measured relative to the scale of
the compared quantity: ``max|net - ref| / max(1, max|ref|)``.

Largest differences observed while writing these tests (float64; the ci
profile, plus runs of the same properties over 3000-6000 random draws):

* gradients, ``net.gradients`` vs ``reference.batch_gradients``:  4.7e-15
* loss, ``net.loss`` vs ``reference.total_cost`` (relative):      1.1e-15
* one epoch of plain SGD (``fit``, shuffle=False, last batch partial) vs
  ``reference.sgd_epoch``: typically 1e-14, worst 1.0e-13.  Each single step
  agrees to 8e-16; what remains is rounding amplified by the training
  dynamics over up to 10 steps (at lr 0.3 and 2 epochs it reached 5e-13).
* float32 vs float64 gradients of the same network:               4.6e-7

Under the ci profile itself: gradients 5.9e-16, one epoch 3.3e-16, five
epochs on the gallery 2.2e-16, batch vs mean of per-sample gradients
6.3e-16, float32 vs float64 1.1e-7.

Asserted bounds: 1e-12 for every float64 comparison, 1e-5 for float32 vs
float64.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import numbanet
from numbanet import reference
from numbanet.testing import network_and_batch, sample_weights

TOL = 1e-12


def scaled_diff(actual, desired):
    """``max|actual - desired| / max(1, max|desired|)`` over lists of arrays."""
    diff = max(float(np.abs(np.asarray(a, np.float64).reshape(np.shape(d)) - d).max()) for a, d in zip(actual, desired))
    scale = max(float(np.abs(d).max()) for d in desired)
    return diff / max(1.0, scale)


def ref_gradients(net, X, Y):
    W, b, acts = reference.from_network(net)
    nw, nb = reference.batch_gradients(W, b, acts, net.loss_name, np.asarray(X, np.float64), np.asarray(Y, np.float64))
    return nw, [g.ravel() for g in nb]


# --- (a) gradients ------------------------------------------------------------


@given(network_and_batch())
def test_gradients_match_reference(case):
    net, X, Y = case
    dW, db = net.gradients(X, Y)
    nw, nb = ref_gradients(net, X, Y)
    assert scaled_diff(dW + db, nw + nb) < TOL


# A fixed gallery, so the bound is also asserted on named architectures.
GALLERY = [
    ([2, 8, 1], "sigmoid", "mse"),
    ([4, 16, 16, 3], ["relu", "relu", "softmax"], "cross_entropy"),
    ([5, 7, 2], ["tanh", "sigmoid"], "binary_cross_entropy"),
    ([3, 6, 6, 6, 2], ["leaky_relu", "tanh", "identity", "softmax"], "mse"),
    ([6, 1, 4], ["identity", "sigmoid"], "binary_cross_entropy"),
    ([1, 3, 1], ["tanh", "identity"], "mse"),
]


def gallery_case(sizes, acts, loss, n=10, seed=0):
    rng = np.random.default_rng(seed)
    net = numbanet.Network(sizes, acts, loss, seed=seed)
    for b in net.biases:
        b[...] = rng.uniform(-0.3, 0.3, size=b.shape)
    X = rng.uniform(-2, 2, size=(n, sizes[0]))
    if loss == "cross_entropy":
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], size=n)]
    elif loss == "binary_cross_entropy":
        Y = rng.integers(0, 2, size=(n, sizes[-1])).astype(float)
    else:
        Y = rng.uniform(-1, 1, size=(n, sizes[-1]))
    return net, X, Y


@pytest.mark.parametrize(("sizes", "acts", "loss"), GALLERY)
def test_gallery_gradients_loss_and_epoch_match_reference(sizes, acts, loss):
    net, X, Y = gallery_case(sizes, acts, loss)
    dW, db = net.gradients(X, Y)
    nw, nb = ref_gradients(net, X, Y)
    assert scaled_diff(dW + db, nw + nb) < TOL
    W, b, names = reference.from_network(net)
    assert abs(net.loss(X, Y) - reference.total_cost(W, b, names, loss, X, Y)) < TOL * max(1.0, net.loss(X, Y))
    # 10 samples in batches of 4: the last batch has 2
    W2, b2 = reference.sgd_epoch(W, b, names, loss, X, Y, batch_size=4, lr=0.3)
    net.fit(X, Y, epochs=1, batch_size=4, optimizer=numbanet.SGD(lr=0.3), shuffle=False, progress=False)
    assert scaled_diff(net.weights + net.biases, W2 + [v.ravel() for v in b2]) < TOL


# --- (b) loss -------------------------------------------------------------------


@given(network_and_batch())
def test_loss_matches_reference(case):
    net, X, Y = case
    W, b, acts = reference.from_network(net)
    expected = reference.total_cost(W, b, acts, net.loss_name, X, Y)
    got = net.loss(X, Y)
    assert isinstance(got, float)
    assert abs(got - expected) <= TOL * max(1.0, abs(expected))


# --- (c) a whole epoch of plain SGD ------------------------------------------------


def reference_epochs(net, X, Y, batch_size, lr, epochs):
    """Run ``epochs`` of the textbook's mini-batch SGD (None where it cannot compare).

    None is returned where the comparison would measure something other than the kernels.

    * Where plain SGD is itself unstable (a deep identity net at a large
      step), training amplifies the last-bit differences of any two correct
      implementations without bound.
    * Where a ReLU pre-activation passes (within rounding of) its kink, two
      correct implementations may take different one-sided slopes.

    Such runs are discarded; every other run must agree to rounding.
    """
    W, b, acts = reference.from_network(net)
    kinked = [i for i, a in enumerate(acts) if a in ("relu", "leaky_relu")]
    try:
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            for _ in range(epochs):
                for start in range(0, len(X), batch_size):
                    Xb, Yb = X[start : start + batch_size], Y[start : start + batch_size]
                    for x in Xb:
                        zs, _ = reference.feedforward(W, b, acts, x.reshape(-1, 1))
                        if any(np.abs(zs[i]).min() < 1e-9 for i in kinked):
                            return None
                    W, b = reference.update_mini_batch(W, b, acts, net.loss_name, Xb, Yb, lr)
    except FloatingPointError:
        return None
    if max(float(np.abs(p).max()) for p in W + b) > 100.0:
        return None
    return W, b


@given(network_and_batch(max_samples=10), st.integers(1, 10), st.sampled_from([0.01, 0.1, 0.25]))
def test_sgd_epoch_matches_reference(case, batch_size, lr):
    net, X, Y = case
    ref = reference_epochs(net, X, Y, batch_size, lr, epochs=1)
    assume(ref is not None)
    W, b = ref
    history = net.fit(
        X, Y, epochs=1, batch_size=batch_size, optimizer=numbanet.SGD(lr=lr), shuffle=False, progress=False
    )
    assert len(history.loss) == 1
    assert scaled_diff(net.weights + net.biases, W + [v.ravel() for v in b]) < TOL


@pytest.mark.parametrize(("sizes", "acts", "loss"), GALLERY)
def test_several_epochs_match_reference(sizes, acts, loss):
    net, X, Y = gallery_case(sizes, acts, loss, n=9, seed=5)
    ref = reference_epochs(net, X, Y, batch_size=4, lr=0.1, epochs=5)
    assert ref is not None
    W, b = ref
    history = net.fit(X, Y, epochs=5, batch_size=4, optimizer=numbanet.SGD(lr=0.1), shuffle=False, progress=False)
    assert len(history.loss) == 5
    assert scaled_diff(net.weights + net.biases, W + [v.ravel() for v in b]) < TOL


def test_sgd_epoch_with_partial_last_batch():
    net, X, Y = gallery_case([3, 5, 4, 2], ["tanh", "sigmoid", "softmax"], "cross_entropy", n=11, seed=3)
    W, b, acts = reference.from_network(net)
    W1, b1 = reference.sgd_epoch(W, b, acts, "cross_entropy", X, Y, batch_size=3, lr=0.5)  # 3 + 3 + 3 + 2
    # the partial batch matters: dropping it gives different weights
    W0, b0 = reference.sgd_epoch(W, b, acts, "cross_entropy", X[:9], Y[:9], batch_size=3, lr=0.5)
    assert scaled_diff(W1, W0) > 1e-6
    net.fit(X, Y, epochs=1, batch_size=3, optimizer=numbanet.SGD(lr=0.5), shuffle=False, progress=False)
    assert scaled_diff(net.weights + net.biases, W1 + [v.ravel() for v in b1]) < TOL


# --- the batch gradient is the mean of per-sample gradients ------------------------


@given(network_and_batch(l2=st.sampled_from([0.0, 0.1])))
def test_batch_gradient_is_mean_of_sample_gradients(case):
    net, X, Y = case
    dW, db = net.gradients(X, Y)
    n = X.shape[0]
    sW = [np.zeros_like(w) for w in dW]
    sb = [np.zeros_like(v) for v in db]
    for i in range(n):
        gW, gb = net.gradients(X[i : i + 1], Y[i : i + 1])
        sW = [s + g / n for s, g in zip(sW, gW)]
        sb = [s + g / n for s, g in zip(sb, gb)]
    assert scaled_diff(dW + db, sW + sb) < TOL


@given(network_and_batch(max_samples=8), st.data())
def test_weighted_gradient_is_weighted_mean_of_sample_gradients(case, data):
    net, X, Y = case
    n = X.shape[0]
    sw = data.draw(sample_weights(n))
    dW, db = net.gradients(X, Y, sample_weight=sw)
    total = sw.sum()
    sW = [np.zeros_like(w) for w in dW]
    sb = [np.zeros_like(v) for v in db]
    for i in range(n):
        gW, gb = net.gradients(X[i : i + 1], Y[i : i + 1])
        sW = [s + sw[i] / total * g for s, g in zip(sW, gW)]
        sb = [s + sw[i] / total * g for s, g in zip(sb, gb)]
    assert scaled_diff(dW + db, sW + sb) < TOL
    # integer weights are repetitions
    if np.all(sw == np.round(sw)):
        reps = sw.astype(int)
        Xr, Yr = np.repeat(X, reps, axis=0), np.repeat(Y, reps, axis=0)
        rW, rb = net.gradients(Xr, Yr)
        assert scaled_diff(dW + db, rW + rb) < TOL


# --- inputs are never mutated ---------------------------------------------------------


def _readonly(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


@pytest.mark.parametrize(
    ("sizes", "acts", "loss"),
    [
        ([3, 5, 2], ["tanh", "softmax"], "cross_entropy"),
        ([3, 4, 2], ["relu", "sigmoid"], "binary_cross_entropy"),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_method_mutates_its_inputs(sizes, acts, loss, dtype):
    net, X, Y = gallery_case(sizes, acts, loss, n=9, seed=1)
    net = net.astype(dtype)
    X, Y = X.astype(dtype), Y.astype(dtype)  # exact dtype: no defensive copy on the way in
    sw = np.linspace(0.5, 2.0, 9)
    Xv, Yv = X[:3].copy(), Y[:3].copy()
    X0, Y0, sw0, Xv0, Yv0 = X.copy(), Y.copy(), sw.copy(), Xv.copy(), Yv.copy()

    def unchanged():
        for a, a0 in [(X, X0), (Y, Y0), (sw, sw0), (Xv, Xv0), (Yv, Yv0)]:
            np.testing.assert_array_equal(a, a0)
            assert a.dtype == a0.dtype

    P = net.predict(X)
    unchanged()
    c = net.loss(X, Y, sample_weight=sw)
    unchanged()
    dW, db = net.gradients(X, Y, sample_weight=sw)
    unchanged()
    Z, A = net.forward(X)
    unchanged()
    assert not np.shares_memory(A[0], X)  # the result is the caller's to write into
    acc = net.accuracy(X, Y)
    unchanged()
    # read-only inputs work and give the same answers
    Xr, Yr, swr = _readonly(X), _readonly(Y), _readonly(sw)
    np.testing.assert_array_equal(net.predict(Xr), P)
    assert net.loss(Xr, Yr, sample_weight=swr) == c
    dWr, dbr = net.gradients(Xr, Yr, sample_weight=swr)
    for g, gr in zip(dW + db, dWr + dbr):
        np.testing.assert_array_equal(g, gr)
    Zr, Ar = net.forward(Xr)
    for u, v in zip(Z + A, Zr + Ar):
        np.testing.assert_array_equal(u, v)
    assert net.accuracy(Xr, Yr) == acc
    # fit, shuffled, with sample weights and validation data; then read-only
    other = net.copy()
    net.fit(
        X,
        Y,
        epochs=3,
        batch_size=4,
        shuffle=True,
        sample_weight=sw,
        validation_data=(Xv, Yv),
        optimizer=numbanet.SGD(lr=0.1, momentum=0.9),
        progress=False,
    )
    unchanged()
    other.fit(
        Xr,
        Yr,
        epochs=3,
        batch_size=4,
        shuffle=True,
        sample_weight=swr,
        validation_data=(_readonly(Xv), _readonly(Yv)),
        optimizer=numbanet.SGD(lr=0.1, momentum=0.9),
        progress=False,
    )
    np.testing.assert_array_equal(net.params, other.params)
    net.fit(X, Y, epochs=2, batch_size=4, validation_split=0.3, progress=False)
    unchanged()


# --- float32 agrees with float64 ------------------------------------------------------


@given(network_and_batch(dtype=np.float32))
def test_float32_gradients_close_to_float64(case):
    net32, X, Y = case
    net64 = net32.astype(np.float64)  # the same parameter values, exactly
    # A ReLU pre-activation within float32 rounding of 0 may take the other
    # one-sided slope in float32: a kink, not an error.
    Z, _ = net64.forward(X.astype(np.float64))
    assume(all(np.abs(z).min() > 1e-4 for z, a in zip(Z, net64.activations) if a in ("relu", "leaky_relu")))
    dW32, db32 = net32.gradients(X, Y)
    assert all(g.dtype == np.float32 for g in dW32 + db32)
    dW64, db64 = net64.gradients(X.astype(np.float64), Y.astype(np.float64))
    assert scaled_diff(dW32 + db32, dW64 + db64) < 1e-5
    l32, l64 = net32.loss(X, Y), net64.loss(X.astype(np.float64), Y.astype(np.float64))
    assert abs(l32 - l64) <= 1e-5 * max(1.0, abs(l64))
