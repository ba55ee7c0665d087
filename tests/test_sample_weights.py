"""``sample_weight`` in loss, gradients and ``fit``.

Zero weights drop rows, integer weights repeat them, and only weight ratios matter.
"""

import numpy as np
import pytest
from helpers import QUIET, grad
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from naive import classification

import numbanet
from numbanet import SGD, Adam
from numbanet.testing import batches, networks

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
    hb = b.fit(
        X[keep],
        Y[keep],
        batch_size=int(keep.sum()),
        shuffle=False,
        sample_weight=w[keep],
        optimizer=SGD(lr=0.1),
        **QUIET,
    )
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
    b.fit(
        np.repeat(X, w, axis=0),
        np.repeat(Y, w, axis=0),
        epochs=3,
        batch_size=100,
        shuffle=False,
        optimizer=Adam(lr=0.01),
        **QUIET,
    )
    np.testing.assert_allclose(a.params, b.params, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("scale", [5e-324, 1e-310, 1e300, 1e308])
def test_extreme_weight_scales_give_the_unweighted_result(scale):
    """Only weight ratios matter, even for subnormal or huge weights.

    All-equal subnormal or huge weights (whose sum overflows) train, score and
    differentiate as no weights at all.
    """
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
