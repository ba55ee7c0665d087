"""The reference twins of the new activations and loss, and of your own activations and losses.

``numbanet.reference`` is the oracle the fast kernels are tested against, so its
new pieces are checked here against an independent implementation: PyTorch
(float64, CPU), its functions for the values and autograd for the derivatives,
and, without PyTorch, central differences of the reference's own functions.

Largest differences measured while writing these tests (float64, z on the grid
``Z`` below, from -30 to 30 with 0):

* elu:      value 0,       derivative 1.1e-16 (absolute)
* gelu:     value 8.9e-16, derivative 2.2e-16 (absolute).  Relative to PyTorch
  the values differ by up to 8.6e-5 where |gelu| > 1e-12, and by 8% at z = -8.2:
  PyTorch's ``1 + erf(z/√2)`` cancels for z ≪ 0 (it returns 0 for z ≤ -8.4), the
  reference's ``erfc(-z/√2)`` does not.  Against 50-digit mpmath the reference
  is within 1.3e-13 relative on the whole grid (gelu' 2.7e-14).
* silu:     value 3.6e-15, derivative 3.1e-15
* softplus: value 1.8e-15, derivative 1.1e-16 (z < 20 against PyTorch's default;
  every z against ``softplus(threshold=100)``, which is the exact function there)
* huber:    cost 1.4e-14 on a total of 98 over 89 outputs (summation order),
  derivative 0
* whole networks with your own swish and log-cosh, and with the new built-ins,
  against PyTorch autograd: gradients 2.2e-16, costs 1.1e-16 (both relative to
  max(1, size of the compared quantity)).

Asserted bounds: 1e-12 (relative and absolute) against PyTorch for single
functions, 1e-10 for whole networks, 1e-6 against central differences.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from naive import log_cosh, log_cosh_derivative, swish, swish_derivative

from numbanet import reference
from numbanet.kernels.activations import BUILTINS

TOL = 1e-12
NET_TOL = 1e-10
#: Every element-wise built-in, from the registry.
ELEMENTWISE = [name for name, b in BUILTINS.items() if b.value is not None]

# z from -30 to 30 in steps of 0.1 (0 and the integers exactly), and points close to 0, as a column vector
Z = np.concatenate([np.arange(-300, 301) / 10.0, [-1e-3, -1e-8, -1e-300, 1e-300, 1e-8, 1e-3]]).reshape(-1, 1)


@pytest.fixture(scope="module")
def torch():
    """PyTorch, or skip the test (the central-difference tests run without it)."""
    return pytest.importorskip("torch")


def torch_activation(torch, name):
    """PyTorch's module for a built-in activation name (acting on rows of a batch), from the registry."""
    make = BUILTINS[name].torch
    return (lambda t: t) if make is None else make(torch.nn)


def torch_value_and_grad(torch, fn, z):
    """``fn(z)`` and its element-wise derivative by autograd, as float64 arrays."""
    t = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    out = fn(t)
    out.sum().backward()
    return out.detach().numpy(), t.grad.numpy()


def close(actual, desired, tol=TOL):
    """Assert ``|actual - desired| <= tol + tol |desired|`` entry by entry."""
    np.testing.assert_allclose(actual, desired, rtol=tol, atol=tol)


def central_difference(f, z):
    """(f(z + h) − f(z − h)) / (the step actually taken), h = 1e-6 max(1, |z|)."""
    h = 1e-6 * np.maximum(1.0, np.abs(z))
    zp, zm = z + h, z - h
    return (f(zp) - f(zm)) / (zp - zm)


# --- the new activations ----------------------------------------------------------


def test_every_builtin_has_a_twin():
    """Each built-in maps to its function and its derivative: the twin written out where there is one."""
    assert list(reference.ACTIVATIONS) == list(BUILTINS)
    for name in ELEMENTWISE:
        f, fprime = reference.ACTIVATIONS[name]
        assert callable(f) and callable(fprime)
        if name in reference.WRITTEN:
            assert f is getattr(reference, name)
            assert fprime is getattr(reference, name + "_prime")


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_and_derivative_match_torch(torch, name):
    """Values against torch.nn.functional, derivatives against autograd (softplus where z < 20)."""
    f, fprime = reference.ACTIVATIONS[name]
    value, grad = torch_value_and_grad(torch, torch_activation(torch, name), Z)
    # PyTorch's softplus returns z itself above its threshold of 20; ours is the exact function
    keep = (Z < 20) if name == "softplus" else np.ones(Z.shape, bool)
    a, da = f(Z), fprime(Z)
    assert a.shape == da.shape == Z.shape
    close(a[keep], value[keep])
    close(da[keep], grad[keep])


def test_softplus_is_the_exact_function_above_torch_threshold(torch):
    """Softplus is log(1 + e^z) for every z; PyTorch's default switches to z above 20."""
    F = torch.nn.functional
    # with threshold 100, PyTorch computes log1p(exp(z)) on the whole grid: the exact form
    value, grad = torch_value_and_grad(torch, lambda t: F.softplus(t, threshold=100.0), Z)
    close(reference.softplus(Z), value)
    close(reference.softplus_prime(Z), grad)
    close(reference.softplus(Z), torch.logaddexp(torch.tensor(Z), torch.zeros(1, dtype=torch.float64)).numpy())
    # above 20 the reference exceeds PyTorch's default by exactly log1p(e^{-z}) (< 2.1e-9)
    above = Z[Z > 20]
    default = F.softplus(torch.tensor(above)).numpy()
    np.testing.assert_array_equal(default, above)
    close(reference.softplus(above) - above, np.log1p(np.exp(-above)), tol=1e-6)
    assert np.all(reference.softplus(above) > default)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_matches_central_differences(name):
    """σ' against central differences of σ (elu's σ'' jumps at 0, where the error is h/4).

    Where σ' itself jumps at 0 (relu, leaky_relu) a difference straddling 0 measures the mean of two slopes:
    those points are left out.
    """
    f, fprime = reference.ACTIVATIONS[name]
    keep = np.ones(Z.shape, bool)
    if BUILTINS[name].kink and name != "elu":
        keep = np.abs(Z) > 1e-6 * np.maximum(1.0, np.abs(Z))
    close(fprime(Z)[keep], central_difference(f, Z)[keep], tol=1e-6)


def test_new_activations_are_stable_far_out():
    """No overflow, no warning and no NaN for |z| up to 1e300."""
    z = np.array([[-1e300], [-1e5], [-800.0], [800.0], [1e5], [1e300]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        for name in ELEMENTWISE:
            if name == "exp":  # e^z overflows by definition: the Poisson output, tested in test_poisson.py
                continue
            f, fprime = reference.ACTIVATIONS[name]
            assert np.all(np.isfinite(f(z))) and np.all(np.isfinite(fprime(z)))
    np.testing.assert_array_equal(reference.elu(z), np.where(z > 0, z, -1.0))
    np.testing.assert_array_equal(reference.softplus(z)[3:], z[3:])
    np.testing.assert_array_equal(reference.gelu_prime(z), np.where(z > 0, 1.0, 0.0))


def test_derivatives_from_activations():
    """The forms computed from a = σ(z) (docs/derivation.md, Activations): elu a + 1, softplus 1 − e^{−a}."""
    neg = Z[Z <= 0]
    close(reference.elu_prime(neg), reference.elu(neg) + 1)
    close(reference.softplus_prime(Z), -np.expm1(-reference.softplus(Z)))


# --- huber ----------------------------------------------------------------------------


def huber_case():
    """Column vectors a, y with a - y exactly on a grid from -3 to 3 through ±1 and 0, and random ones."""
    rng = np.random.default_rng(0)
    d = np.concatenate([np.arange(-24, 25) / 8.0, rng.uniform(-3, 3, size=40)])
    y = rng.integers(-8, 9, size=d.shape) / 8.0
    return (y + d).reshape(-1, 1), y.reshape(-1, 1)


def test_huber_matches_torch(torch):
    """Cost against huber_loss(reduction='sum', delta=1), ∂c/∂a against autograd."""
    a, y = huber_case()
    F = torch.nn.functional
    t = torch.tensor(a, requires_grad=True)
    c = F.huber_loss(t, torch.tensor(y), reduction="sum", delta=1.0)
    c.backward()
    close(reference.cost("huber", a, y), c.item())
    close(reference.cost_derivative("huber", a, y), t.grad.numpy())


def test_huber_per_output_and_central_differences():
    """The cost is the sum of the per-output costs; ∂c/∂a_j against central differences."""
    a, y = huber_case()
    per_output = np.array([reference.cost("huber", a[j : j + 1], y[j : j + 1]) for j in range(len(a))])
    close(reference.cost("huber", a, y), per_output.sum())
    d = a - y
    np.testing.assert_array_equal(per_output.reshape(-1, 1), np.where(np.abs(d) <= 1, 0.5 * d**2, np.abs(d) - 0.5))
    grad = reference.cost_derivative("huber", a, y)
    np.testing.assert_array_equal(grad, np.clip(d, -1.0, 1.0))
    numeric = [
        central_difference(lambda v, j=j: reference.cost("huber", v, y[j : j + 1]), a[j : j + 1]) for j in range(len(a))
    ]
    close(grad, np.concatenate(numeric), tol=1e-6)


# --- your own activations and losses, in whole networks -------------------------------------


SWISH = SimpleNamespace(function=swish, derivative=swish_derivative)
LOG_COSH = SimpleNamespace(cost=log_cosh, derivative=log_cosh_derivative)


def torch_piece(torch, spec):
    """PyTorch's version of an activation (name or SWISH) or of a per-output cost (name or LOG_COSH)."""
    F = torch.nn.functional
    if spec is SWISH:
        return F.silu
    if spec is LOG_COSH:
        return lambda A, Y: torch.log(torch.cosh(A - Y))
    if spec == "huber":
        return lambda A, Y: F.huber_loss(A, Y, reduction="none", delta=1.0)
    if spec == "mse":
        return lambda A, Y: 0.5 * (A - Y) ** 2
    return torch_activation(torch, spec)


def random_network(sizes, seed):
    """Weights (n_out, n_in) and column-vector biases as the reference takes them, and a batch X, Y."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0.0, 1.0 / math.sqrt(m), size=(n, m)) for m, n in zip(sizes[:-1], sizes[1:])]
    biases = [rng.uniform(-0.5, 0.5, size=(n, 1)) for n in sizes[1:]]
    X = rng.uniform(-2, 2, size=(7, sizes[0]))
    Y = rng.uniform(-1, 1, size=(7, sizes[-1]))
    return weights, biases, X, Y


def torch_cost_and_gradients(torch, weights, biases, activations, loss, X, Y):
    """Mean over rows of the per-sample cost (summed over outputs), and its gradients by autograd."""
    Ws = [torch.tensor(W, requires_grad=True) for W in weights]
    bs = [torch.tensor(b.ravel(), requires_grad=True) for b in biases]
    A = torch.tensor(X)
    for W, b, act in zip(Ws, bs, activations):
        A = torch_piece(torch, act)(A @ W.T + b)
    C = torch_piece(torch, loss)(A, torch.tensor(Y)).sum(dim=1).mean()
    C.backward()
    return C.item(), [W.grad.numpy() for W in Ws], [b.grad.numpy().reshape(-1, 1) for b in bs]


NETWORKS = [
    ([3, 5, 4, 2], [SWISH, "tanh", "identity"], LOG_COSH),  # your own activation in a hidden layer
    ([3, 6, 2], ["gelu", SWISH], LOG_COSH),  # ... on the output, with your own loss
    ([4, 5, 3], [SWISH, "softmax"], LOG_COSH),  # your own loss through the softmax Jacobian
    ([2, 4, 3, 1], ["elu", "softplus", "silu"], "huber"),  # the new built-ins
    ([3, 4, 4, 2], ["gelu", SWISH, "sigmoid"], "mse"),
    ([3, 5, 2], ["silu", "identity"], LOG_COSH),
]


@pytest.mark.parametrize(("sizes", "activations", "loss"), NETWORKS)
def test_network_gradients_match_torch_autograd(torch, sizes, activations, loss):
    """batch_gradients, backprop and total_cost against autograd of the same network, in float64."""
    weights, biases, X, Y = random_network(sizes, seed=len(sizes) + sizes[0])
    c, gW, gb = torch_cost_and_gradients(torch, weights, biases, activations, loss, X, Y)
    nw, nb = reference.batch_gradients(weights, biases, activations, loss, X, Y)
    for got, want in zip(nw + nb, gW + gb):
        assert got.shape == want.shape
        close(got, want, tol=NET_TOL)
    close(reference.total_cost(weights, biases, activations, loss, X, Y), c, tol=NET_TOL)
    # one sample: backprop itself
    c1, gW1, gb1 = torch_cost_and_gradients(torch, weights, biases, activations, loss, X[:1], Y[:1])
    nw1, nb1 = reference.backprop(weights, biases, activations, loss, X[:1].T, Y[:1].T)
    for got, want in zip(nw1 + nb1, gW1 + gb1):
        close(got, want, tol=NET_TOL)


@pytest.mark.parametrize(("sizes", "activations", "loss"), NETWORKS)
def test_network_gradients_match_central_differences(sizes, activations, loss):
    """Every parameter's gradient against central differences of total_cost (no PyTorch)."""
    weights, biases, X, Y = random_network(sizes, seed=len(sizes) + sizes[0])
    nw, nb = reference.batch_gradients(weights, biases, activations, loss, X, Y)
    for params, grads in [(weights, nw), (biases, nb)]:
        for p, g in zip(params, grads):
            numeric = np.zeros_like(p)
            for idx in np.ndindex(p.shape):
                old = p[idx]
                p[idx] = old + 1e-6
                up = reference.total_cost(weights, biases, activations, loss, X, Y)
                p[idx] = old - 1e-6
                down = reference.total_cost(weights, biases, activations, loss, X, Y)
                p[idx] = old
                numeric[idx] = (up - down) / 2e-6
            close(g, numeric, tol=1e-6)


def as_custom(name):
    """Rewrite a built-in activation as your own (scalar Python on floats)."""
    f, fprime = reference.ACTIVATIONS[name]
    return SimpleNamespace(
        function=lambda z: float(f(np.float64(z))), derivative=lambda z: float(fprime(np.float64(z)))
    )


MSE = SimpleNamespace(cost=lambda a, y: 0.5 * (a - y) ** 2, derivative=lambda a, y: a - y)


def test_your_own_copies_of_built_ins_give_the_built_in_results():
    """Your own tanh, gelu and mse give what the names give, in gradients, cost and a whole SGD epoch."""
    weights, biases, X, Y = random_network([3, 5, 4, 2], seed=11)
    named = (["tanh", "gelu", "identity"], "mse")
    custom = ([as_custom("tanh"), as_custom("gelu"), "identity"], MSE)
    nW, nb = reference.batch_gradients(weights, biases, *named, X, Y)
    cW, cb = reference.batch_gradients(weights, biases, *custom, X, Y)
    for p, q in zip(nW + nb, cW + cb):
        close(q, p, tol=1e-15)
    close(
        reference.total_cost(weights, biases, *custom, X, Y),
        reference.total_cost(weights, biases, *named, X, Y),
        tol=1e-15,
    )
    nW, nb = reference.sgd_epoch(weights, biases, *named, X, Y, batch_size=3, lr=0.2)
    cW, cb = reference.sgd_epoch(weights, biases, *custom, X, Y, batch_size=3, lr=0.2)
    for p, q in zip(nW + nb, cW + cb):
        close(q, p, tol=1e-15)


def test_your_own_pieces_are_recognised_by_their_methods():
    """Duck typing: any object with .function/.derivative, or .cost/.derivative; names still work."""
    z = np.array([[-1.0], [0.5]])

    class Cube:
        def function(self, z):
            """z³."""
            return z**3

        def derivative(self, z):
            """3z²."""
            return 3 * z**2

    sigma, sigma_prime = reference.activation(Cube())
    np.testing.assert_array_equal(sigma(z), z**3)
    np.testing.assert_array_equal(sigma_prime(z), 3 * z**2)
    assert sigma(z).dtype == np.float64
    assert reference.activation("tanh") == reference.ACTIVATIONS["tanh"]
    y = np.array([[0.0], [1.0]])
    assert reference.cost(LOG_COSH, z, y) == pytest.approx(math.log(math.cosh(-1.0)) + math.log(math.cosh(-0.5)))
    np.testing.assert_allclose(reference.cost_derivative(LOG_COSH, z, y), np.tanh(z - y), rtol=1e-15)
    with pytest.raises(ValueError, match="unknown loss"):
        reference.cost("hubber", z, y)


def test_every_builtin_loss_has_a_reference_and_the_kernel_pair_agrees_with_it():
    """The kernel's own pair (the reference's fallback for a loss without a written twin) agrees with each twin."""
    from numbanet.kernels.losses import BUILTINS as LOSSES

    rng = np.random.default_rng(1)
    a = rng.uniform(0.05, 0.95, size=(6, 1))
    y = np.array([[0.0], [1.0], [0.3], [0.7], [1.0], [0.0]])
    for name in LOSSES:
        c, dc = reference._kernel_loss(name)
        close(float(np.sum(c(a, y))), reference.cost(name, a, y))
        close(dc(a, y), reference.cost_derivative(name, a, y))
