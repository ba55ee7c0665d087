"""Regularisation in :meth:`numbanet.Network.fit`.

The L2 penalty, dropout and gradient-norm clipping.

Each test compares ``fit`` with something computed another way: a formula,
``net.gradients`` followed by a hand-written step, or a NumPy transcription.
"""

import numpy as np
import pytest
from helpers import QUIET, grad, small_net
from naive import classification, np_activate, regression

import numbanet
from numbanet import SGD, Adam
from numbanet.kernels import rng

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
    """Return the inverted-dropout scale factors that ``fit``'s first epoch draws.

    They are those of a single batch of ``n_rows`` rows with ``shuffle=False``.

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


def _masked_mse(net, theta, X, Y, masks):
    """Mean MSE cost of ``net`` with parameters ``theta`` and fixed dropout masks, in NumPy."""
    A = X
    for l, (n_in, n_out) in enumerate(zip(net.sizes[:-1], net.sizes[1:])):
        w, b = net._w_off[l], net._b_off[l]
        W = theta[w : w + n_out * n_in].reshape(n_out, n_in)
        A = np_activate(A @ W.T + theta[b : b + n_out], net.activations[l])
        if l < net.n_layers - 1:
            A = A * masks[l]
    return float(np.mean(0.5 * np.sum((A - Y) ** 2, axis=1)))


def test_dropout_step_is_exact_gradient_of_masked_cost():
    """One SGD step with dropout moves the parameters by -lr times the masked gradient.

    That is the gradient of the cost with the masks held fixed (checked by central
    differences).
    """
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
    """Inverted scaling keeps the expected output-bias gradient of a linear network.

    For a linear network the output is linear in the masks, so with inverted
    scaling the expected output-bias gradient equals the dropout-free one (without
    the 1/(1-p) scaling it would be about half of it here).
    """
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
