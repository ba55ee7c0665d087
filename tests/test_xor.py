"""XOR, learned by the textbook set-up.

2-8-1, sigmoid everywhere, mean squared error, plain full-batch SGD.

Settings measured while writing this test: with lr in {2, 3, 5} and 5000,
10000 or 20000 epochs, seeds 0..19 all learned XOR in float64 and in float32
(final training loss at most 3e-4).  The test uses lr=3, 10000 epochs.
"""

import numpy as np
import pytest

import numbanet

SEEDS = [0, 1, 2, 3, 4]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", SEEDS)
def test_xor_is_learned(xor, seed, dtype):
    X, Y = xor
    net = numbanet.Network([2, 8, 1], activations="sigmoid", loss="mse", dtype=dtype, seed=seed)
    start = net.loss(X, Y)
    assert start > 0.05  # untrained, it has not solved the problem
    history = net.fit(X, Y, epochs=10_000, batch_size=4, optimizer=numbanet.SGD(lr=3.0), progress=False)
    assert len(history.loss) == 10_000
    assert history.loss[-1] < 1e-2 < start
    P = net.predict(X)
    assert P.shape == (4, 1) and P.dtype == dtype
    np.testing.assert_array_equal((P > 0.5).astype(float), Y)
    assert np.abs(P - Y).max() < 0.2  # not just barely on the right side
    assert net.loss(X, Y) < 1e-2


def test_xor_float32_and_float64_learn_alike(xor):
    # Same seed, same initial weights up to rounding: same solution up to float32 precision.
    X, Y = xor
    nets = [numbanet.Network([2, 8, 1], dtype=dt, seed=0) for dt in (np.float64, np.float32)]
    for net in nets:
        net.fit(X, Y, epochs=5000, batch_size=4, optimizer=numbanet.SGD(lr=3.0), progress=False)
    p64, p32 = (net.predict(X).astype(np.float64) for net in nets)
    np.testing.assert_array_equal(p64 > 0.5, p32 > 0.5)
    np.testing.assert_allclose(p32, p64, atol=1e-3)
