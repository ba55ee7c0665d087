"""Every flat kernel against a plain NumPy twin, in float32 and float64.

The twins are written from the formulas of docs/derivation.md (σ'(z) from
``z``, the softmax Jacobian built explicitly, products with ``@``), never from
the kernels' own tricks, so an agreement means the kernel computes the
mathematics.  Tolerances: rtol 1e-5 in float32, 1e-12 in float64, with a small
absolute floor for entries that cancel to (near) zero.
"""

import numpy as np
import pytest
from helpers import flat_params
from naive import np_activate, np_prime

import numbanet
from numbanet.kernels import activations as act
from numbanet.kernels import blas, dense, layout, losses, pieces, training, updates

DTYPES = [np.float32, np.float64]
ELEMENTWISE = [name for name, b in act.BUILTINS.items() if b.value is not None]  # every built-in but softmax
ALL_ACTS = list(act.BUILTINS)
SLOPE = act.LEAKY_SLOPE
FNS = pieces.builtin_fns()  # no custom pieces: the callbacks are never called


def activate(Z, name, out):
    act.activate(Z, act.CODES[name], -1, FNS, out)


def tol(dtype):
    """(rtol, atol) suitable for ``dtype``."""
    return (1e-5, 1e-6) if np.dtype(dtype) == np.float32 else (1e-12, 1e-14)


def close(actual, desired, dtype, scale=1.0):
    rtol, atol = tol(dtype)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol * scale)


def rand(rng, shape, dtype, low=-3.0, high=3.0):
    return rng.uniform(low, high, size=shape).astype(dtype)


def softmax_jacobian_rows(Z):
    """One explicit (m, m) Jacobian ∂a/∂z per row."""
    A = np_activate(Z, "softmax")
    return [np.diag(a) - np.outer(a, a) for a in A]


def np_cost(A, Y, loss):
    A = A.astype(np.float64)
    Y = Y.astype(np.float64)
    if loss == "mse":
        return 0.5 * ((A - Y) ** 2).sum(axis=1)
    if loss == "cross_entropy":
        return -(Y * np.log(A)).sum(axis=1)
    if loss == "huber":
        d = np.abs(A - Y)
        return np.where(d <= 1, 0.5 * d * d, d - 0.5).sum(axis=1)
    if loss == "poisson":
        return (Y * np.log(np.where(Y > 0, Y, 1.0) / A) - Y + A).sum(axis=1)
    return -(Y * np.log(A) + (1 - Y) * np.log(1 - A)).sum(axis=1)


def np_cost_gradient(A, Y, loss):
    A = A.astype(np.float64)
    Y = Y.astype(np.float64)
    if loss == "mse":
        return A - Y
    if loss == "cross_entropy":
        return -Y / A
    if loss == "huber":
        return np.clip(A - Y, -1.0, 1.0)
    if loss == "poisson":
        return 1.0 - Y / A
    return -Y / A + (1 - Y) / (1 - A)


def np_targets(rng, loss, shape, dtype):
    if loss in ("mse", "huber"):
        return rand(rng, shape, dtype, -2, 2)
    if loss == "binary_cross_entropy":
        return rng.uniform(0, 1, size=shape).astype(dtype)
    if loss == "poisson":
        return rng.poisson(1.5, size=shape).astype(dtype)
    raw = rng.uniform(0.01, 1, size=shape)
    return (raw / raw.sum(axis=1, keepdims=True)).astype(dtype)


# --- activations --------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ALL_ACTS)
def test_activate_matches_numpy(name, dtype):
    rng = np.random.default_rng(1)
    Z = rand(rng, (7, 5), dtype, -6, 6)
    Z0 = Z.copy()
    out = np.empty_like(Z)
    activate(Z, name, out)
    assert out.dtype == dtype
    close(out, np_activate(Z, name), dtype)
    np.testing.assert_array_equal(Z, Z0)
    # in place (out is Z)
    activate(Z, name, Z)
    np.testing.assert_array_equal(Z, out)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_rows_sum_to_one_and_huge_inputs_stay_finite(dtype):
    rng = np.random.default_rng(2)
    Z = rand(rng, (6, 4), dtype, -20, 20)
    Z[0] = [1000, 1000, 999, -1000]
    Z[1] = [-1000, -1000, -1000, -1000]
    Z[2] = [1000, 0, 0, 0]
    out = np.empty_like(Z)
    activate(Z, "softmax", out)
    assert np.isfinite(out).all()
    assert (out >= 0).all()
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=rtol)
    close(out, np_activate(Z, "softmax"), dtype)
    np.testing.assert_allclose(out[1], 0.25, rtol=rtol)
    assert out[2, 0] == 1.0 and (out[2, 1:] == 0.0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_extremes_finite_with_exact_limits(dtype):
    Z = np.array([[-1000.0, -800.0, 0.0, 800.0, 1000.0]], dtype=dtype)
    out = np.empty_like(Z)
    activate(Z, "sigmoid", out)
    assert np.isfinite(out).all()
    assert out[0, 0] == 0.0 and out[0, 1] == 0.0
    assert out[0, 2] == 0.5
    assert out[0, 3] == 1.0 and out[0, 4] == 1.0
    assert act.sigmoid(-1000.0) == 0.0 and act.sigmoid(1000.0) == 1.0
    # bias_activate takes the same stable path
    b = np.zeros(5, dtype=dtype)
    Z2 = Z.copy()
    act.bias_activate(Z2, b, act.SIGMOID, -1, FNS)
    np.testing.assert_array_equal(Z2, out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ALL_ACTS)
def test_bias_activate_matches_numpy(name, dtype):
    rng = np.random.default_rng(3)
    Z = rand(rng, (6, 4), dtype)
    b = rand(rng, 4, dtype)
    expected = np_activate(Z.astype(np.float64) + b.astype(np.float64), name)
    act.bias_activate(Z, b, act.CODES[name], -1, FNS)
    close(Z, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_slope_matches_analytic_prime(name, dtype):
    rng = np.random.default_rng(4)
    Z = rand(rng, (8, 6), dtype, -4, 4)
    Z[0, :3] = 0.0  # the kink: σ'(0) is taken as 0 for relu, the slope for leaky_relu, 1 for elu
    A = np.empty_like(Z)
    activate(Z, name, A)
    code = act.CODES[name]
    scal = np.array([[act.slope(code, z, a, -1, FNS) for z, a in zip(zr, ar)] for zr, ar in zip(Z, A)])
    expected = np_prime(Z, name)
    if name == "elu":
        expected[0, :3] = 1.0  # σ(0) = 0 is not > 0: the slope is e^0 = 1 either way
    close(scal, expected, dtype)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_batch_kernels_match_torch(name):
    """bias_activate and backprop_inplace of every element-wise built-in against its registry entry's torch module.

    float64, z from -30 to 30 and near 0; values against the module, slopes against autograd.
    """
    torch = pytest.importorskip("torch")
    z = np.concatenate([np.arange(-300, 301) / 10.0, [-1e-3, -1e-8, 1e-8, 1e-3]])
    Z = z.reshape(-1, 5)
    make = act.BUILTINS[name].torch
    t = torch.tensor(Z, requires_grad=True)
    out = t if make is None else make(torch.nn)(t)
    out.sum().backward()
    A = Z.copy()
    act.bias_activate(A, np.zeros(5), act.CODES[name], -1, FNS)
    D = np.ones_like(Z)
    act.backprop_inplace(D, A, Z, act.CODES[name], -1, FNS, 1.0)
    np.testing.assert_allclose(A, out.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(D, t.grad.numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mish_matches_torch_functional(dtype):
    """Mish against torch.nn.functional.mish and autograd, -1000..1000: the batch kernels and the scalar pair."""
    torch = pytest.importorskip("torch")
    z = np.concatenate([np.arange(-400, 401) / 10.0, [-1e3, -200.0, -1e-8, 0.0, 1e-8, 200.0, 1e3]])
    t = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.mish(t)
    out.sum().backward()
    want, dwant = out.detach().numpy(), t.grad.numpy()
    Z = z.astype(dtype).reshape(1, -1)
    A = Z.copy()
    act.bias_activate(A, np.zeros(Z.shape[1], dtype), act.MISH, -1, FNS)
    D = np.ones_like(Z)
    act.backprop_inplace(D, A, Z, act.MISH, -1, FNS, 1.0)
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (2e-6, 1e-7)
    np.testing.assert_allclose(A[0], want, rtol=rtol, atol=atol)
    np.testing.assert_allclose(D[0], dwant, rtol=rtol, atol=atol)
    if dtype == np.float64:
        np.testing.assert_allclose([act.value(act.MISH, x, -1, FNS) for x in z], want, rtol=1e-12, atol=1e-14)
        slopes = [act.slope(act.MISH, x, a, -1, FNS) for x, a in zip(z, want)]
        np.testing.assert_allclose(slopes, dwant, rtol=1e-12, atol=1e-14)
        assert act.needs_z(act.MISH) and act.BUILTINS["mish"].code == 11


def test_needs_z_only_where_a_cannot_give_the_slope():
    kept = [name for name, b in act.BUILTINS.items() if act.needs_z(b.code)]
    assert kept == [name for name, b in act.BUILTINS.items() if b.needs_z]  # read from each σ' itself
    assert {"gelu", "silu"} <= set(kept)
    assert not {"identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "elu", "softplus"} & set(kept)
    assert act.needs_z(act.CUSTOM)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_backprop_elementwise_is_g_times_prime(name, dtype):
    rng = np.random.default_rng(5)
    Z = rand(rng, (7, 5), dtype, -4, 4)
    G = rand(rng, (7, 5), dtype)
    A = np.empty_like(Z)
    activate(Z, name, A)
    out = G.copy()
    act.backprop_inplace(out, A, Z, act.CODES[name], -1, FNS, 1.0)
    close(out, G.astype(np.float64) * np_prime(Z, name), dtype, scale=3)
    # with dropout's scaled activations (A / keep) and a_scale = keep: the same slope
    keep = 0.75
    scaled = G.copy()
    act.backprop_inplace(scaled, (A / keep).astype(dtype), Z, act.CODES[name], -1, FNS, keep)
    close(scaled, out, dtype, scale=3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backprop_softmax_is_jacobian_product(dtype):
    rng = np.random.default_rng(6)
    Z = rand(rng, (6, 5), dtype, -4, 4)
    G = rand(rng, (6, 5), dtype)
    A = np.empty_like(Z)
    activate(Z, "softmax", A)
    out = G.copy()
    act.backprop_inplace(out, A, Z, act.SOFTMAX, -1, FNS, 1.0)
    expected = np.array([J.T @ g for J, g in zip(softmax_jacobian_rows(Z), G.astype(np.float64))])
    close(out, expected, dtype, scale=3)


# --- losses ---------------------------------------------------------------------

LOSSES = list(losses.BUILTINS)


def outputs_for(loss, rng, shape, dtype):
    """Return valid output activations for ``loss`` (probabilities away from 0 and 1)."""
    Z = rand(rng, shape, dtype, -3, 3)
    names = {"mse": "tanh", "huber": "identity", "cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}
    name = names.get(loss) or losses.REQUIRED_OUTPUT[loss]
    A = np.empty_like(Z)
    activate(Z, name, A)
    return Z, A


def sample_costs(A, Y, code):
    """Per-sample costs through ``batch_cost`` with one row at a time."""
    return np.array(
        [losses.batch_cost(A[i : i + 1], Y[i : i + 1], code, np.ones(1, A.dtype), FNS) for i in range(A.shape[0])]
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSSES)
def test_sample_costs_and_batch_cost_match_numpy(loss, dtype):
    rng = np.random.default_rng(7)
    _, A = outputs_for(loss, rng, (9, 4), dtype)
    Y = np_targets(rng, loss, (9, 4), dtype)
    out = sample_costs(A, Y, losses.CODES[loss])
    expected = np_cost(A, Y, loss)
    close(out, expected, dtype)
    w = rng.uniform(0, 2, size=9)
    w /= w.sum()
    c = losses.batch_cost(A, Y, losses.CODES[loss], w.astype(dtype), FNS)
    assert isinstance(c, float)
    np.testing.assert_allclose(c, float(w.astype(dtype).astype(np.float64) @ expected), rtol=tol(dtype)[0])
    mean = losses.batch_cost(A, Y, losses.CODES[loss], np.full(9, 1 / 9, dtype=dtype), FNS)
    np.testing.assert_allclose(mean, expected.mean(), rtol=tol(dtype)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSSES)
def test_cost_gradient_matches_numpy(loss, dtype):
    rng = np.random.default_rng(8)
    _, A = outputs_for(loss, rng, (6, 3), dtype)
    Y = np_targets(rng, loss, (6, 3), dtype)
    out = np.empty_like(A)
    losses.cost_gradient(A, Y, losses.CODES[loss], FNS, out)
    close(out, np_cost_gradient(A, Y, loss), dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy"])
def test_logs_never_see_zero(loss, dtype):
    # a = 0 where y = 1 (and a = 1 where y = 0 for BCE): a huge but finite cost
    A = np.array([[0.0, 1.0], [0.5, 0.5]], dtype=dtype)
    Y = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    code = losses.CODES[loss]
    out = sample_costs(A, Y, code)
    assert np.isfinite(out).all()
    tiny = float(np.finfo(dtype).tiny)
    assert out[0] >= -np.log(tiny) * (1 - 1e-12)  # the clipped log is still large
    assert np.isfinite(losses.batch_cost(A, Y, code, np.full(2, 0.5, dtype=dtype), FNS))
    G = np.empty_like(A)
    losses.cost_gradient(A, Y, code, FNS, G)
    assert np.isfinite(G).all()
    # y = 0 entries contribute nothing, even where a = 0
    A0 = np.array([[0.0, 1.0]], dtype=dtype)
    Y0 = np.array([[0.0, 1.0]], dtype=dtype)
    one = sample_costs(A0, Y0, code)
    assert one[0] == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "loss"), [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy")])
def test_output_delta_chain_equals_simplified(name, loss, dtype):
    rng = np.random.default_rng(9)
    Z = rand(rng, (8, 4), dtype, -3, 3)
    A = np.empty_like(Z)
    activate(Z, name, A)
    Y = np_targets(rng, loss, (8, 4), dtype)
    if loss == "cross_entropy":
        Y[:4] = np.eye(4, dtype=dtype)  # one-hot rows as well as soft ones
    w = rng.uniform(0.1, 1, size=8)
    w = (w / w.sum()).astype(dtype)
    chain = np.empty_like(A)
    simple = np.empty_like(A)
    losses.output_delta_chain(A, Z, Y, losses.CODES[loss], act.CODES[name], -1, FNS, w, chain)
    losses.output_delta_simplified(A, Y, losses.CODES[loss], w, simple)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(chain, simple, rtol=rtol, atol=rtol * 1e-2)
    expected = w[:, None].astype(np.float64) * (A.astype(np.float64) * Y.sum(axis=1, keepdims=True) - Y)
    if loss == "binary_cross_entropy":
        expected = w[:, None].astype(np.float64) * (A.astype(np.float64) - Y)
    close(simple, expected, dtype)
    # output_delta picks the simplified form for these pairs
    picked = np.empty_like(A)
    losses.output_delta(A, Z, Y, losses.CODES[loss], act.CODES[name], -1, FNS, w, picked)
    np.testing.assert_array_equal(picked, simple)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ALL_ACTS)
def test_output_delta_chain_matches_numpy_for_mse(name, dtype):
    rng = np.random.default_rng(10)
    Z = rand(rng, (5, 3), dtype, -3, 3)
    A = np.empty_like(Z)
    activate(Z, name, A)
    Y = np_targets(rng, "mse", (5, 3), dtype)
    w = np.full(5, 0.2, dtype=dtype)
    out = np.empty_like(A)
    losses.output_delta(A, Z, Y, losses.MSE, act.CODES[name], -1, FNS, w, out)
    G = A.astype(np.float64) - Y
    if name == "softmax":
        expected = np.array([J.T @ g for J, g in zip(softmax_jacobian_rows(Z), G)])
    else:
        expected = G * np_prime(Z, name)
    close(out, 0.2 * expected, dtype)


def test_is_simplified_pairs():
    assert losses.is_simplified(losses.CROSS_ENTROPY, act.SOFTMAX)
    assert losses.is_simplified(losses.BINARY_CROSS_ENTROPY, act.SIGMOID)
    assert not losses.is_simplified(losses.MSE, act.SIGMOID)
    assert not losses.is_simplified(losses.MSE, act.SOFTMAX)


# --- dense ----------------------------------------------------------------------

# Small shapes take the kernels' own loops, large ones go to BLAS.
SHAPES = [(1, 1, 1), (5, 3, 4), (7, 16, 9), (64, 40, 30)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "n_in", "n_out"), SHAPES)
def test_linear_and_forward_match_numpy(n, n_in, n_out, dtype):
    rng = np.random.default_rng(11)
    A_prev = rand(rng, (n, n_in), dtype, -1, 1)
    W = rand(rng, (n_out, n_in), dtype, -1, 1)
    b = rand(rng, n_out, dtype, -1, 1)
    Zref = A_prev.astype(np.float64) @ W.astype(np.float64).T + b
    Z = np.empty((n, n_out), dtype=dtype)
    dense.linear(A_prev, W, b, Z)
    close(Z, Zref, dtype, scale=n_in)
    names = ALL_ACTS if n_out > 1 else ELEMENTWISE
    for name in names:
        out = np.empty((n, n_out), dtype=dtype)
        dense.forward(A_prev, W, b, act.CODES[name], -1, FNS, out)
        close(out, np_activate(Zref, name), dtype, scale=n_in)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "n_l", "n_next"), SHAPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_hidden_delta_matches_numpy(n, n_l, n_next, name, dtype):
    rng = np.random.default_rng(12)
    delta_next = rand(rng, (n, n_next), dtype, -1, 1)
    W_next = rand(rng, (n_next, n_l), dtype, -1, 1)
    Z = rand(rng, (n, n_l), dtype, -3, 3)
    A = np.empty_like(Z)
    activate(Z, name, A)
    out = np.empty((n, n_l), dtype=dtype)
    dense.hidden_delta(delta_next, W_next, A, Z, act.CODES[name], -1, FNS, 1.0, out)
    expected = (delta_next.astype(np.float64) @ W_next.astype(np.float64)) * np_prime(Z, name)
    close(out, expected, dtype, scale=n_next)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "n_in", "n_out"), SHAPES)
def test_layer_gradients_match_numpy(n, n_in, n_out, dtype):
    rng = np.random.default_rng(13)
    delta = rand(rng, (n, n_out), dtype, -1, 1)
    A_prev = rand(rng, (n, n_in), dtype, -1, 1)
    dW = np.full((n_out, n_in), np.nan, dtype=dtype)  # garbage in: must be overwritten
    db = np.full(n_out, np.nan, dtype=dtype)
    dense.layer_gradients(delta, A_prev, dW, db)
    close(dW, delta.astype(np.float64).T @ A_prev.astype(np.float64), dtype, scale=n)
    close(db, delta.astype(np.float64).sum(axis=0), dtype, scale=n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "n_in", "n_out"), SHAPES)
def test_sgd_layer_is_layer_gradients_then_sgd_step(n, n_in, n_out, dtype):
    # The fused update (the weight product into W with alpha = -lr, beta = 1) against its two steps.
    rng = np.random.default_rng(15)
    delta = rand(rng, (n, n_out), dtype, -1, 1)
    A_prev = rand(rng, (n, n_in), dtype, -1, 1)
    W, b = rand(rng, (n_out, n_in), dtype, -1, 1), rand(rng, n_out, dtype, -1, 1)
    dW, db = np.empty_like(W), np.empty_like(b)
    W2, b2 = W.copy(), b.copy()
    dense.layer_gradients(delta, A_prev, dW, db)
    theta = np.concatenate([W2.ravel(), b2])
    updates.sgd_step(theta, np.concatenate([dW.ravel(), db]), 0.3)
    dense.sgd_layer(delta, A_prev, W, b, np.empty_like(b), 0.3)
    close(W, theta[: W.size].reshape(W.shape), dtype, scale=n)
    assert b.tobytes() == theta[W.size :].tobytes()  # the bias goes the same way, bit for bit


def test_fold_rows_is_the_fewest_rows_with_every_product_in_blas():
    sizes = np.array([20, 16, 3], dtype=np.int64)  # per row: 320 and 48 multiply-adds
    assert dense.fold_rows(sizes) == 86  # 86 * 48 = 4128 > SMALL = 4096 >= 85 * 48
    assert dense.fold_rows(np.array([784, 128, 10], dtype=np.int64)) == 4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.0), (-0.25, 1.0), (2.0, -0.5)])
def test_gemm_matches_numpy(trans_a, trans_b, alpha, beta, dtype):
    rng = np.random.default_rng(16)
    m, k, n = 37, 53, 29
    A = rand(rng, (k, m) if trans_a else (m, k), dtype, -1, 1)
    B = rand(rng, (n, k) if trans_b else (k, n), dtype, -1, 1)
    C0 = rand(rng, (m + 3, n), dtype, -1, 1)  # the product goes into the first m rows of a bigger buffer
    if beta == 0.0:
        C0[:m] = np.nan  # not read
    C = C0.copy()
    blas.gemm(A, B, C[:m], trans_a, trans_b, alpha, beta)
    a, b_ = (A.T if trans_a else A).astype(np.float64), (B.T if trans_b else B).astype(np.float64)
    expected = alpha * (a @ b_) + (beta * C0[:m].astype(np.float64) if beta != 0.0 else 0.0)
    close(C[:m], expected, dtype, scale=k)
    assert C[m:].tobytes() == C0[m:].tobytes()  # rows past the view untouched


# --- updates --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_step_matches_numpy(dtype):
    rng = np.random.default_rng(14)
    theta = rand(rng, 50, dtype)
    grad = rand(rng, 50, dtype)
    grad0 = grad.copy()
    expected = theta.astype(np.float64) - 0.3 * grad.astype(np.float64)
    updates.sgd_step(theta, grad, 0.3)
    close(theta, expected, dtype)
    np.testing.assert_array_equal(grad, grad0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_plain_sgd_update_is_sgd_step(dtype):
    rng = np.random.default_rng(15)
    theta = rand(rng, 30, dtype)
    grad = rand(rng, 30, dtype)
    other = theta.copy()
    hyper = numbanet.SGD(lr=0.25)._hyper()
    updates.update(updates.SGD, theta, grad, np.zeros((2, 30), dtype=dtype), hyper, 0.25, 1)
    updates.sgd_step(other, grad, 0.25)
    np.testing.assert_array_equal(theta, other)


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_by_global_norm_matches_numpy(dtype):
    rng = np.random.default_rng(16)
    grad = rand(rng, 40, dtype)
    norm = float(np.linalg.norm(grad.astype(np.float64)))
    # below the limit: untouched, norm returned
    g = grad.copy()
    rtol = tol(dtype)[0]
    assert np.isclose(updates.clip_by_global_norm(g, norm * 2), norm, rtol=rtol)
    np.testing.assert_array_equal(g, grad)
    # above the limit: scaled as torch.nn.utils.clip_grad_norm_
    g = grad.copy()
    returned = updates.clip_by_global_norm(g, 1.0)
    assert np.isclose(returned, norm, rtol=rtol)
    close(g, grad.astype(np.float64) * (1.0 / (norm + 1e-6)), dtype)
    assert np.linalg.norm(g.astype(np.float64)) <= 1.0 + tol(dtype)[0]


# --- training: whole-network kernels ------------------------------------------


def np_forward(net, X):
    A = X.astype(np.float64)
    for W, b, name in zip(net.weights, net.biases, net.activations):
        A = np_activate(A @ W.astype(np.float64).T + b.astype(np.float64), name)
    return A


NETS = [
    ([3, 5, 2], ["tanh", "softmax"], "cross_entropy"),
    ([4, 6, 5, 3], ["relu", "leaky_relu", "sigmoid"], "binary_cross_entropy"),
    ([2, 7, 1], ["sigmoid", "identity"], "mse"),
    ([5, 3, 3, 3, 2], ["sigmoid", "tanh", "identity", "softmax"], "mse"),
    ([4, 6, 5, 4, 2], ["elu", "gelu", "silu", "softplus"], "huber"),
    ([3, 6, 3], ["gelu", "softmax"], "cross_entropy"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("sizes", "acts", "loss"), NETS)
@pytest.mark.parametrize("cap", [1, 4, 50])
def test_training_predict_matches_numpy(sizes, acts, loss, cap, dtype):
    rng = np.random.default_rng(17)
    net = numbanet.Network(sizes, acts, loss, dtype=dtype, seed=3)
    for b in net.biases:
        b[...] = rng.uniform(-0.5, 0.5, size=b.shape)
    X = rand(rng, (11, sizes[0]), dtype)
    X.flags.writeable = False  # as the Network passes it: the entry point and types predict compiles, no others
    ws = np.empty(layout.work_size(net._spec, cap), dtype=dtype)
    out = np.empty((11, sizes[-1]), dtype=dtype)
    training.predict_flat(net.params, net._spec, X, ws, out)
    expected = np_forward(net, X)
    close(out, expected, dtype, scale=10)
    close(net.predict(X), expected, dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("sizes", "acts", "loss"), NETS)
@pytest.mark.parametrize("cap", [1, 4, 50])
def test_training_cost_and_gradient_match_reference(sizes, acts, loss, cap, dtype):
    from numbanet import reference

    rng = np.random.default_rng(18)
    net = numbanet.Network(sizes, acts, loss, dtype=dtype, seed=4, l2=0.05)
    for b in net.biases:
        b[...] = rng.uniform(-0.5, 0.5, size=b.shape)
    X = rand(rng, (11, sizes[0]), dtype)
    Y = np_targets(rng, loss, (11, sizes[-1]), dtype)
    sw = rng.uniform(0.0, 2.0, size=11)
    X.flags.writeable = Y.flags.writeable = False  # as the Network passes them: no specialisation of the tests' own
    ws = np.empty(layout.work_size(net._spec, cap), dtype=dtype)
    grad = np.full(net.n_params, np.nan, dtype=dtype)
    args = (net.params, net._spec, X, Y, sw, float(sw.sum()), net.l2, ws)
    cost = training.cost_and_gradient_flat(*args, grad, True)
    cost_only = training.cost_and_gradient_flat(*args, np.empty(0, dtype=dtype), False)
    assert cost == cost_only

    # Reference: the weighted mean of per-sample costs and gradients, plus L2.
    W, B, A = reference.from_network(net)
    Xd, Yd = X.astype(np.float64), Y.astype(np.float64)
    costs = np.array([reference.total_cost(W, B, A, loss, Xd[i : i + 1], Yd[i : i + 1]) for i in range(11)])
    l2_term = 0.5 * net.l2 * sum(float((w**2).sum()) for w in W)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(cost, sw @ costs / sw.sum() + l2_term, rtol=rtol)
    ref = np.zeros(net.n_params)
    for i in range(11):
        nw, nb = reference.batch_gradients(W, B, A, loss, Xd[i : i + 1], Yd[i : i + 1])
        ref += sw[i] / sw.sum() * flat_params(net, nw, nb, np.float64)
    ref += flat_params(net, [net.l2 * w for w in W], [np.zeros_like(b) for b in B], np.float64)
    scale = max(np.abs(ref).max(), 1.0)
    assert np.abs(grad.astype(np.float64) - ref).max() <= (1e-5 if dtype == np.float32 else 1e-12) * scale
    # via the Network API
    dW, db = net.gradients(X, Y, sample_weight=sw)
    close(flat_params(net, dW, db, np.float64), grad, dtype, scale=scale)
    np.testing.assert_allclose(net.loss(X, Y, sample_weight=sw), cost, rtol=tol(dtype)[0])


def test_layout_is_the_one_the_network_and_its_work_buffers_use():
    """The spec's offsets are where the network's weights live; a work buffer's capacity follows from its length."""
    net = numbanet.Network([5, 3, 3, 3, 2], ["sigmoid", "tanh", "identity", "softmax"], "mse", seed=0)
    sizes, w_off, b_off, acts, custom = layout.spec_parts(net._spec)
    assert list(sizes) == list(net.sizes) and net._spec[layout.SPEC_PARAMS] == net.n_params
    assert list(acts) == [act.CODES[a] for a in net.activation_names] and list(custom) == [-1] * 4
    for W, b, w, o in zip(net.weights, net.biases, w_off, b_off):
        assert np.shares_memory(W, net.params[w : w + W.size]) and W.ctypes.data == net.params[w:].ctypes.data
        assert b.ctypes.data == net.params[o:].ctypes.data
    for cap in (1, 3, 64):
        assert layout.work_capacity(net._spec, layout.work_size(net._spec, cap)) == cap
