"""The tests' plain twins, in one place.

Random data for a network, and the activations, their derivatives and the losses
written in NumPy (arrays) or in scalar Python (for your-own pieces), from the
textbook formulas rather than the kernels' tricks.  Imported as ``from naive import ...`` (pytest puts this folder
on ``sys.path``).
"""

import math

import numpy as np
from scipy.special import erf

from numbanet.kernels.activations import LEAKY_SLOPE

# --- data ----------------------------------------------------------------------


def regression(n=12, n_in=3, n_out=2, seed=0, scale=1.0):
    """``n`` rows of standard-normal inputs and ``scale`` times standard-normal targets."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_in)), scale * rng.normal(size=(n, n_out))


def classification(n=40, n_in=4, n_classes=3, seed=0):
    """Return standard-normal inputs with one-hot classes.

    The classes depend on the first two inputs (learnable, unlike
    :func:`random_classification`).
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    return X, np.eye(n_classes)[labels % n_classes]


def random_classification(n=60, n_in=5, n_classes=3, seed=0, dtype=np.float64, rng=None, with_labels=False):
    """Standard-normal inputs and one-hot targets of uniformly random classes.

    Draws from ``rng`` when given (so that the caller can go on drawing from it),
    else from a generator seeded with ``seed``. Returns ``(X, Y)``, or
    ``(X, Y, labels)`` with ``with_labels``.
    """
    rng = np.random.default_rng(seed) if rng is None else rng
    X = rng.standard_normal((n, n_in)).astype(dtype)
    labels = rng.integers(0, n_classes, n)
    Y = np.eye(n_classes, dtype=dtype)[labels]
    return (X, Y, labels) if with_labels else (X, Y)


# --- activations on arrays (float64, from Z) -------------------------------------


def np_activate(Z, name):
    """Apply the built-in activation ``name`` to ``Z`` (rows are examples)."""
    Z = Z.astype(np.float64)
    if name == "identity":
        return Z.copy()
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * Z))  # an independent stable form
    if name == "tanh":
        return np.tanh(Z)
    if name == "relu":
        return np.maximum(Z, 0.0)
    if name == "leaky_relu":
        return np.where(Z > 0, Z, LEAKY_SLOPE * Z)
    if name == "elu":
        return np.where(Z > 0, Z, np.expm1(np.minimum(Z, 0)))
    if name == "gelu":
        return 0.5 * Z * (1 + erf(Z / np.sqrt(2)))
    if name == "silu":
        return Z * 0.5 * (1.0 + np.tanh(0.5 * Z))
    if name == "softplus":
        return np.logaddexp(0.0, Z)
    if name == "mish":
        return Z * np.tanh(np.logaddexp(0.0, Z))
    if name == "exp":
        return np.exp(Z)
    if name == "softmax":
        e = np.exp(Z - Z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise AssertionError(name)


def np_prime(Z, name):
    """Analytic σ'(Z) computed from Z (elementwise activations)."""
    Z = Z.astype(np.float64)
    if name == "identity":
        return np.ones_like(Z)
    if name == "sigmoid":
        return 1.0 / (2.0 + 2.0 * np.cosh(Z))  # e^{-z}/(1+e^{-z})^2
    if name == "tanh":
        return 1.0 / np.cosh(Z) ** 2
    if name == "relu":
        return (Z > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(Z > 0, 1.0, LEAKY_SLOPE)
    if name == "elu":
        return np.where(Z > 0, 1.0, np.exp(np.minimum(Z, 0)))
    if name == "gelu":
        return 0.5 * (1 + erf(Z / np.sqrt(2))) + Z * np.exp(-Z * Z / 2) / np.sqrt(2 * np.pi)
    if name == "silu":
        s = 0.5 * (1.0 + np.tanh(0.5 * Z))
        return s + Z * s * (1 - s)
    if name == "softplus":
        return 0.5 * (1.0 + np.tanh(0.5 * Z))
    if name == "mish":  # tanh(sp) + z sech²(sp) σ(z), sp = softplus(z)
        sp = np.logaddexp(0.0, Z)
        return np.tanh(sp) + Z * 0.5 * (1.0 + np.tanh(0.5 * Z)) / np.cosh(sp) ** 2
    if name == "exp":
        return np.exp(Z)
    raise AssertionError(name)


# --- scalar pieces (plain Python on floats; also compile as your own pieces) ------


def sigmoid(z):
    """1 / (1 + e^-z), without overflow for large |z|."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def swish(z):
    """Z σ(z) (torch's silu), self-contained so that it compiles as your own activation."""
    if z >= 0:
        return z / (1.0 + math.exp(-z))
    e = math.exp(z)
    return z * e / (1.0 + e)


def swish_derivative(z):
    """σ(z) (1 + z (1 - σ(z)))."""
    if z >= 0:
        s = 1.0 / (1.0 + math.exp(-z))
    else:
        e = math.exp(z)
        s = e / (1.0 + e)
    return s * (1.0 + z * (1.0 - s))


def log_cosh(a, y):
    """Return the per-output log-cosh cost."""
    return math.log(math.cosh(a - y))


def log_cosh_derivative(a, y):
    """∂ log cosh(a - y) / ∂a."""
    return math.tanh(a - y)


# --- sparse input: the first layer from CSR rows ----------------------------------


def np_csr_dense_rows(data, indices, indptr, rows, n_cols):
    """Return the dense rows ``rows`` of a CSR matrix given by its arrays (duplicates summed), by NumPy."""
    out = np.zeros((len(rows), n_cols))
    for i, r in enumerate(rows):
        np.add.at(out[i], indices[indptr[r] : indptr[r + 1]], data[indptr[r] : indptr[r + 1]])
    return out


def np_first_product(data, indices, indptr, rows, W):
    """``X[rows] @ W.T`` for the CSR matrix ``(data, indices, indptr)``."""
    return np_csr_dense_rows(data, indices, indptr, rows, W.shape[1]) @ W.T


def np_first_scatter(delta, data, indices, indptr, rows, n_cols):
    """``delta.T @ X[rows]`` for the CSR matrix ``(data, indices, indptr)``."""
    return delta.T @ np_csr_dense_rows(data, indices, indptr, rows, n_cols)
