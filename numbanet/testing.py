"""Hypothesis strategies for networks and batches (public).

Use them to property-test your own configurations::

    from hypothesis import given
    import numbanet
    from numbanet.testing import network_and_batch

    @given(network_and_batch())
    def test_my_gradients(case):
        net, X, Y = case
        assert numbanet.gradcheck(net, X, Y).passed

Needs ``hypothesis`` (``pip install numbanet[test]``).  Every strategy draws
finite, bounded data; targets are valid for the loss (rows of probabilities
for cross-entropy, values in [0, 1] for binary cross-entropy).
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numbanet.network import Network

HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "identity")

#: Every valid (output activation, loss) pair.
OUTPUT_LOSS_PAIRS = (
    ("sigmoid", "mse"),
    ("tanh", "mse"),
    ("relu", "mse"),
    ("leaky_relu", "mse"),
    ("identity", "mse"),
    ("softmax", "mse"),
    ("softmax", "cross_entropy"),
    ("sigmoid", "binary_cross_entropy"),
)


@st.composite
def architectures(draw, min_depth=1, max_depth=4, min_width=1, max_width=16, min_outputs=1):
    """Layer sizes ``[n_in, hidden..., n_out]`` with ``depth`` weighted layers."""
    depth = draw(st.integers(min_depth, max_depth))
    widths = draw(st.lists(st.integers(min_width, max_width), min_size=depth + 1, max_size=depth + 1))
    widths[-1] = max(widths[-1], min_outputs)
    return widths


@st.composite
def configurations(draw, min_depth=1, max_depth=4, min_width=1, max_width=16):
    """A valid ``(sizes, activations, loss)`` triple: hidden activations drawn per
    layer, and an output activation and loss that go together."""
    output, loss = draw(st.sampled_from(OUTPUT_LOSS_PAIRS))
    sizes = draw(
        architectures(min_depth, max_depth, min_width, max_width, min_outputs=2 if output == "softmax" else 1)
    )
    hidden = draw(st.lists(st.sampled_from(HIDDEN_ACTIVATIONS), min_size=len(sizes) - 2, max_size=len(sizes) - 2))
    return sizes, hidden + [output], loss


@st.composite
def networks(draw, dtype=np.float64, min_depth=1, max_depth=4, min_width=1, max_width=16, l2=None):
    """A seeded :class:`numbanet.Network` of a valid configuration.

    ``l2=None`` draws no penalty; pass ``st.floats(...)`` to draw one.
    """
    sizes, activations, loss = draw(configurations(min_depth, max_depth, min_width, max_width))
    seed = draw(st.integers(0, 2**31 - 1))
    penalty = draw(l2) if l2 is not None else 0.0
    return Network(sizes, activations=activations, loss=loss, dtype=dtype, seed=seed, l2=penalty)


def finite_arrays(shape, bound=3.0, dtype=np.float64):
    """Arrays of ``shape`` with finite values in ``[-bound, bound]``."""
    return hnp.arrays(dtype, shape, elements=st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=64 if dtype == np.float64 else 32))


@st.composite
def targets(draw, loss, n_samples, n_outputs, dtype=np.float64):
    """Targets valid for ``loss``: any bounded values for MSE, probability rows
    (one-hot or soft) for cross-entropy, values in [0, 1] for binary cross-entropy."""
    if loss == "mse":
        return draw(finite_arrays((n_samples, n_outputs), 2.0, dtype))
    if loss == "binary_cross_entropy":
        return draw(hnp.arrays(dtype, (n_samples, n_outputs), elements=st.floats(0, 1, width=64 if dtype == np.float64 else 32)))
    if draw(st.booleans()):
        labels = draw(hnp.arrays(np.int64, n_samples, elements=st.integers(0, n_outputs - 1)))
        return np.eye(n_outputs, dtype=dtype)[labels]
    # Drawn in float64 (0.01 is not a float32) and cast after normalising.
    raw = draw(hnp.arrays(np.float64, (n_samples, n_outputs), elements=st.floats(0.01, 1)))
    return (raw / raw.sum(axis=1, keepdims=True)).astype(dtype)


@st.composite
def batches(draw, net, min_samples=1, max_samples=12, bound=3.0):
    """A batch ``(X, Y)`` of finite, bounded data that fits ``net`` (batch size 1 included)."""
    n = draw(st.integers(min_samples, max_samples))
    X = draw(finite_arrays((n, net.sizes[0]), bound, net.dtype))
    Y = draw(targets(net.loss_name, n, net.sizes[-1], net.dtype))
    return X, Y


@st.composite
def network_and_batch(draw, dtype=np.float64, min_depth=1, max_depth=4, max_width=16, max_samples=12, l2=None):
    """``(net, X, Y)``: a network and a batch that fits it."""
    net = draw(networks(dtype, min_depth, max_depth, 1, max_width, l2=l2))
    X, Y = draw(batches(net, 1, max_samples))
    return net, X, Y


@st.composite
def sample_weights(draw, n_samples, allow_zero=True):
    """Non-negative sample weights with a positive sum."""
    lo = 0.0 if allow_zero else 0.1
    w = draw(hnp.arrays(np.float64, n_samples, elements=st.floats(lo, 3.0)))
    if w.sum() <= 0:
        w[draw(st.integers(0, n_samples - 1))] = 1.0
    return w
