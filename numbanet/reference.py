r"""The textbook algorithm, written literally: the oracle and the teaching copy.

Column vectors, one sample at a time, plain NumPy, no cleverness.  Every
function here reads like the derivation in docs/derivation.md ("Backward equations"):

.. math::

    z^l = W^l a^{l-1} + b^l, \qquad a^l = \sigma_l(z^l), \qquad a^1 = x

    \delta^L = \partial c / \partial a^L \odot \sigma_L'(z^L)

    \delta^l = (W^{l+1})^T \delta^{l+1} \odot \sigma_l'(z^l)

    \partial c / \partial W^l = \delta^l (a^{l-1})^T, \qquad
    \partial c / \partial b^l = \delta^l

and the batch gradient is the mean of the per-sample gradients.  It is slow on
purpose; the fast kernels are tested against it.

Wherever a function here takes an activation name it also takes your own
activation: any object with scalar ``.function(z)`` and ``.derivative(z)``,
applied to every entry of a vector.  Wherever it takes a loss name it also takes
your own loss: any object with a per-output cost ``.cost(a, y)`` (summed over
the outputs) and its derivative ``.derivative(a, y)`` = ∂c/∂a.  Nothing else
changes: the output delta is still ∂c/∂a^L ⊙ σ_L'(z^L), or the softmax
Jacobian product.

Here ``weights[i]`` and ``biases[i]`` belong to the i-th weighted layer (the
textbook's layer ``i + 2``); biases are column vectors of shape ``(n, 1)``.
"""

import math

import numpy as np

from numbanet.kernels.activations import BUILTINS
from numbanet.kernels.losses import BUILTINS as LOSSES

LEAKY_SLOPE = 0.01
HUBER_DELTA = 1.0


# --- activations, each next to its derivative --------------------------------


def sigmoid(z):
    """σ(z) = 1 / (1 + e^{-z}), written so that exp never overflows."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_prime(z):
    """σ'(z) = σ(z)(1 − σ(z))."""
    s = sigmoid(z)
    return s * (1 - s)


def tanh(z):
    """tanh(z)."""
    return np.tanh(z)


def tanh_prime(z):
    """tanh'(z) = 1 − tanh²(z)."""
    return 1 - np.tanh(z) ** 2


def relu(z):
    """max(z, 0)."""
    return np.where(z > 0, z, 0.0)


def relu_prime(z):
    """1 for z > 0, else 0 (0 at the kink, as PyTorch)."""
    return np.where(z > 0, 1.0, 0.0)


def leaky_relu(z):
    """Return z for z > 0, else ``LEAKY_SLOPE`` z."""
    return np.where(z > 0, z, LEAKY_SLOPE * z)


def leaky_relu_prime(z):
    """1 for z > 0, else ``LEAKY_SLOPE`` (the slope of the left piece at the kink)."""
    return np.where(z > 0, 1.0, LEAKY_SLOPE)


def identity(z):
    """Return a copy of z."""
    return z.copy()


def identity_prime(z):
    """1 everywhere."""
    return np.ones_like(z)


def elu(z):
    """ELU with α = 1: z for z > 0, else e^z − 1 (expm1, so exact near 0)."""
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0.0)))


def elu_prime(z):
    """1 for z > 0, else e^z (which is a + 1)."""
    return np.where(z > 0, 1.0, np.exp(np.minimum(z, 0.0)))


_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def normal_cdf(z):
    """Φ(z) = ½(1 + erf(z/√2)), evaluated as ½ erfc(−z/√2) so that it keeps its digits for z ≪ 0."""
    return 0.5 * _erfc(-z / math.sqrt(2.0))


def normal_pdf(z):
    """φ(z) = e^{−z²/2} / √(2π) (|z| capped at 40, where φ is 0 in float64, so z² never overflows)."""
    t = np.minimum(np.abs(z), 40.0)
    return np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)


def gelu(z):
    """GELU, the exact (erf) form, PyTorch's default: z Φ(z) = ½ z (1 + erf(z/√2))."""
    return z * normal_cdf(z)


def gelu_prime(z):
    """gelu'(z) = Φ(z) + z φ(z)."""
    return normal_cdf(z) + z * normal_pdf(z)


def silu(z):
    """SiLU (swish): z σ(z)."""
    return z * sigmoid(z)


def silu_prime(z):
    """silu'(z) = σ(z)(1 + z(1 − σ(z))), with 1 − σ(z) evaluated as σ(−z)."""
    return sigmoid(z) * (1 + z * sigmoid(-z))


def softplus(z):
    """softplus(z) = log(1 + e^z), evaluated as max(z, 0) + log1p(e^{−|z|}) so that exp never overflows.

    This is the exact function for every z.  PyTorch's ``softplus`` (threshold
    20) returns z itself where z > 20, which is less by log1p(e^{−z}) < 2.1e-9.
    """
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def softplus_prime(z):
    """softplus'(z) = σ(z) (which is 1 − e^{−a}).  PyTorch's gradient is 1 where z > 20."""
    return sigmoid(z)


def exp(z):
    """e^z, the Poisson output."""
    return np.exp(z)


def exp_prime(z):
    """exp'(z) = e^z."""
    return np.exp(z)


def softmax(z):
    """Softmax of a column vector, subtracting the maximum first."""
    e = np.exp(z - z.max())
    return e / e.sum()


def softmax_jacobian(z):
    """∂a_i/∂z_j = a_i (δ_ij − a_j)."""
    a = softmax(z)
    return np.diagflat(a) - a @ a.T


#: The twins written out above, by name.
WRITTEN = {
    "sigmoid": (sigmoid, sigmoid_prime),
    "tanh": (tanh, tanh_prime),
    "relu": (relu, relu_prime),
    "leaky_relu": (leaky_relu, leaky_relu_prime),
    "identity": (identity, identity_prime),
    "elu": (elu, elu_prime),
    "gelu": (gelu, gelu_prime),
    "silu": (silu, silu_prime),
    "softplus": (softplus, softplus_prime),
    "exp": (exp, exp_prime),
    "softmax": (softmax, None),
}


def elementwise(f):
    """Vectorise a scalar Python function ``f``: applied to every entry of its array arguments, in float64."""
    return np.vectorize(f, otypes=[np.float64])


def _kernel_pair(builtin):
    """``(σ, σ')`` of a built-in activation from its kernel's scalar pair, as plain Python on float64 entries."""
    value, slope = builtin.value.py_func, builtin.slope.py_func

    def derivative(z):
        return slope(z, value(z))

    return elementwise(value), elementwise(derivative)


#: ``(σ, σ')`` of every built-in activation (σ' is None for softmax, whose Jacobian is used instead): its
#: twin in :data:`WRITTEN`, or, for a built-in without one, its kernel's own scalar pair applied entry by
#: entry (then the check against the kernels is of the batch loops, not of the formula).
ACTIVATIONS = {name: WRITTEN.get(name) or _kernel_pair(b) for name, b in BUILTINS.items()}


def activation(spec):
    """``(σ, σ')`` of an activation: a name in ``ACTIVATIONS``, or your own.

    Your own activation is any object with scalar ``.function(z)`` and
    ``.derivative(z)``; both are applied to every entry of ``z``.
    """
    if hasattr(spec, "function"):
        return elementwise(spec.function), elementwise(spec.derivative)
    return ACTIVATIONS[spec]


# --- costs of one sample, and their gradient with respect to a^L ------------


def cost(loss, a, y):
    """Cost c of one sample (column vectors ``a`` and ``y``).

    ``loss`` is a name, or your own loss: any object with a per-output
    ``.cost(a, y)``, summed here over the outputs.
    """
    if hasattr(loss, "cost"):
        return float(np.sum(elementwise(loss.cost)(a, y)))
    if loss == "mse":
        return 0.5 * float(np.sum((a - y) ** 2))
    if loss == "cross_entropy":
        return -float(np.sum(y * np.log(a)))
    if loss == "binary_cross_entropy":
        return -float(np.sum(y * np.log(a) + (1 - y) * np.log(1 - a)))
    if loss == "huber":
        # ½ d² where |d| ≤ δ, else δ(|d| − ½δ): quadratic near 0, linear beyond δ
        d = a - y
        linear = HUBER_DELTA * (np.abs(d) - 0.5 * HUBER_DELTA)
        return float(np.sum(np.where(np.abs(d) <= HUBER_DELTA, 0.5 * d**2, linear)))
    if loss == "poisson":
        # half the Poisson deviance, y log(y/a) - y + a, with y log y = 0 at y = 0
        ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)
        return float(np.sum(ylogy - y * np.log(a) - y + a))
    if loss in LOSSES:  # a built-in without a twin written here: its kernel's own per-output cost
        return float(np.sum(_kernel_loss(loss)[0](a, y)))
    raise ValueError(f"unknown loss {loss!r}")


def cost_derivative(loss, a, y):
    """∂c/∂a^L for one sample.

    For your own loss, its ``.derivative(a, y)`` applied to every output.
    """
    if hasattr(loss, "cost"):
        return elementwise(loss.derivative)(a, y)
    if loss == "mse":
        return a - y
    if loss == "cross_entropy":
        return -y / a
    if loss == "binary_cross_entropy":
        return -y / a + (1 - y) / (1 - a)
    if loss == "huber":
        # d where |d| ≤ δ, else δ sign(d)
        d = a - y
        return np.where(np.abs(d) <= HUBER_DELTA, d, HUBER_DELTA * np.sign(d))
    if loss == "poisson":
        return 1 - y / a
    if loss in LOSSES:
        return _kernel_loss(loss)[1](a, y)
    raise ValueError(f"unknown loss {loss!r}")


def _kernel_loss(name):
    """``(c, ∂c/∂a)`` of the built-in loss ``name`` from its kernel's pair, as plain Python on float64 entries."""
    b = LOSSES[name]
    tiny = float(np.finfo(np.float64).tiny)
    cost_py, slope_py = b.cost.py_func, b.slope.py_func
    return elementwise(lambda a, y: cost_py(a, y, tiny)), elementwise(lambda a, y: slope_py(a, y, tiny))


# --- the algorithm ------------------------------------------------------------


def feedforward(weights, biases, activations, x):
    """Forward pass of one sample.

    Returns the lists ``zs`` (one per weighted layer) and ``as_`` (``as_[0]``
    is ``x``), column vectors.
    """
    a = x
    zs, as_ = [], [x]
    for W, b, name in zip(weights, biases, activations):
        z = W @ a + b
        a = activation(name)[0](z)
        zs.append(z)
        as_.append(a)
    return zs, as_


def backprop(weights, biases, activations, loss, x, y):
    """Gradient of the cost of one sample (x, y column vectors).

    Returns ``nabla_w``, ``nabla_b`` shaped like ``weights`` and ``biases``.
    """
    zs, as_ = feedforward(weights, biases, activations, x)
    # Output delta: δ^L = ∂c/∂a^L ⊙ σ'(z^L); for softmax the Jacobian replaces ⊙.
    grad_a = cost_derivative(loss, as_[-1], y)
    if activations[-1] == "softmax":
        delta = softmax_jacobian(zs[-1]).T @ grad_a
    else:
        delta = grad_a * activation(activations[-1])[1](zs[-1])
    nabla_w = [None] * len(weights)
    nabla_b = [None] * len(weights)
    nabla_w[-1] = delta @ as_[-2].T
    nabla_b[-1] = delta
    # Backward recursion: δ^l = (W^{l+1})ᵀ δ^{l+1} ⊙ σ'(z^l).
    for l in range(len(weights) - 2, -1, -1):
        delta = (weights[l + 1].T @ delta) * activation(activations[l])[1](zs[l])
        nabla_w[l] = delta @ as_[l].T
        nabla_b[l] = delta
    return nabla_w, nabla_b


def total_cost(weights, biases, activations, loss, X, Y):
    """Mean per-sample cost over rows of X, Y (2-D, one sample per row)."""
    costs = []
    for x, y in zip(X, Y):
        a = feedforward(weights, biases, activations, x.reshape(-1, 1))[1][-1]
        costs.append(cost(loss, a, y.reshape(-1, 1)))
    return sum(costs) / len(costs)


def batch_gradients(weights, biases, activations, loss, X, Y):
    """Mean of the per-sample gradients over the rows of X, Y.

    Returns ``nabla_w``, ``nabla_b``; biases' gradients are column vectors.
    """
    nabla_w = [np.zeros_like(W) for W in weights]
    nabla_b = [np.zeros_like(b) for b in biases]
    for x, y in zip(X, Y):
        dnw, dnb = backprop(weights, biases, activations, loss, x.reshape(-1, 1), y.reshape(-1, 1))
        nabla_w = [nw + d for nw, d in zip(nabla_w, dnw)]
        nabla_b = [nb + d for nb, d in zip(nabla_b, dnb)]
    n = len(X)
    return [nw / n for nw in nabla_w], [nb / n for nb in nabla_b]


def update_mini_batch(weights, biases, activations, loss, X, Y, lr):
    """One step of gradient descent on one mini-batch; returns new weights and biases."""
    nabla_w, nabla_b = batch_gradients(weights, biases, activations, loss, X, Y)
    weights = [W - lr * nw for W, nw in zip(weights, nabla_w)]
    biases = [b - lr * nb for b, nb in zip(biases, nabla_b)]
    return weights, biases


def sgd_epoch(weights, biases, activations, loss, X, Y, batch_size, lr):
    """One epoch of mini-batch gradient descent over X, Y in their given order.

    The last batch may be smaller; it is used too.
    """
    for start in range(0, len(X), batch_size):
        weights, biases = update_mini_batch(
            weights, biases, activations, loss, X[start : start + batch_size], Y[start : start + batch_size], lr
        )
    return weights, biases


def from_network(net):
    """Return copies of a :class:`numbanet.Network`'s parameters in this module's form.

    Returns ``weights``, ``biases`` (column vectors) and ``activations``, in
    float64.
    """
    weights = [np.array(W, dtype=np.float64) for W in net.weights]
    biases = [np.array(b, dtype=np.float64).reshape(-1, 1) for b in net.biases]
    return weights, biases, list(net.activations)
