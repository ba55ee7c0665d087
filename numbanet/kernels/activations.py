"""Activations and their derivatives, selected by a small integer code.

Each activation sits next to its derivative.  Kernels work on batch matrices
``Z`` of shape ``(n_samples, n_units)`` (one sample per row) and write into an
``out`` array of the same shape, which may be the input itself (in place).

Derivatives are written in terms of the activation ``A = σ(Z)`` rather than
``Z``: for every element-wise activation here σ'(z) is a function of σ(z)
alone (for ReLU-like units ``a > 0`` exactly when ``z > 0``), so the training
loop keeps one buffer per layer and never stores ``Z``.

The codes are plain integers so that kernels can branch on them; passing
jitted functions as arguments would defeat ``cache=True``.
"""

import numpy as np

from numbanet._jit import jit

IDENTITY = 0
SIGMOID = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4
SOFTMAX = 5

#: Activation names accepted by :class:`numbanet.Network`, and their codes.
CODES = {
    "identity": IDENTITY,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "softmax": SOFTMAX,
}
NAMES = {code: name for name, code in CODES.items()}

#: Slope of ``leaky_relu`` for negative inputs (PyTorch's default).
LEAKY_SLOPE = 0.01


@jit
def sigmoid_scalar(z):
    r"""Logistic function :math:`\sigma(z) = 1 / (1 + e^{-z})` for one value.

    Never overflows: for ``z < 0`` it is evaluated as :math:`e^z / (1 + e^z)`,
    so ``exp`` only ever sees a non-positive argument.
    """
    if z >= 0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@jit
def activate(Z, code, out):
    r"""Apply activation ``code`` to every row of ``Z``: ``out = σ(Z)``.

    Parameters
    ----------
    Z : array of shape (n_samples, n_units), float32 or float64
        Pre-activations, one sample per row.
    code : int
        One of the codes in :data:`CODES`.  ``SOFTMAX`` acts on each row:
        :math:`a_j = e^{z_j - m} / \sum_k e^{z_k - m}` with :math:`m = \max_k z_k`,
        so ``exp`` never overflows.
    out : array of shape (n_samples, n_units), same dtype
        Filled with the activations.  May be ``Z`` itself.
    """
    n, m = Z.shape
    if code == IDENTITY:
        for i in range(n):
            for j in range(m):
                out[i, j] = Z[i, j]
    elif code == SIGMOID:
        for i in range(n):
            for j in range(m):
                out[i, j] = sigmoid_scalar(Z[i, j])
    elif code == TANH:
        for i in range(n):
            for j in range(m):
                out[i, j] = np.tanh(Z[i, j])
    elif code == RELU:
        for i in range(n):
            for j in range(m):
                z = Z[i, j]
                out[i, j] = z if z > 0 else 0.0
    elif code == LEAKY_RELU:
        for i in range(n):
            for j in range(m):
                z = Z[i, j]
                out[i, j] = z if z > 0 else LEAKY_SLOPE * z
    elif code == SOFTMAX:
        for i in range(n):
            zmax = Z[i, 0]
            for j in range(1, m):
                if Z[i, j] > zmax:
                    zmax = Z[i, j]
            total = 0.0
            for j in range(m):
                e = np.exp(Z[i, j] - zmax)
                out[i, j] = e
                total += e
            inv = 1.0 / total
            for j in range(m):
                out[i, j] *= inv
    else:
        raise ValueError("unknown activation code")


@jit
def bias_activate(Z, b, code):
    """Fused bias and activation, in place: ``Z <- σ(Z + b)``.

    One pass over ``Z`` (two for softmax) instead of one for the bias and one
    for the activation.

    Parameters
    ----------
    Z : array of shape (n_samples, n_units)
        On entry ``A W^T``; on exit the layer's activations.
    b : array of shape (n_units,)
        Bias, added to every row.
    code : int
        Activation code.
    """
    n, m = Z.shape
    if code == IDENTITY:
        for i in range(n):
            for j in range(m):
                Z[i, j] += b[j]
    elif code == SIGMOID:
        for i in range(n):
            for j in range(m):
                Z[i, j] = sigmoid_scalar(Z[i, j] + b[j])
    elif code == TANH:
        for i in range(n):
            for j in range(m):
                Z[i, j] = np.tanh(Z[i, j] + b[j])
    elif code == RELU:
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                Z[i, j] = z if z > 0 else 0.0
    elif code == LEAKY_RELU:
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                Z[i, j] = z if z > 0 else LEAKY_SLOPE * z
    else:
        for i in range(n):
            for j in range(m):
                Z[i, j] += b[j]
        activate(Z, code, Z)


@jit
def derivative(A, code, out):
    r"""Element-wise derivative σ'(z), computed from the activation ``A = σ(Z)``.

    ================  =====================================
    sigmoid           :math:`\sigma'(z) = a (1 - a)`
    tanh              :math:`\tanh'(z) = 1 - a^2`
    relu              :math:`1` if :math:`a > 0` else :math:`0` (0 at the kink)
    leaky_relu        :math:`1` if :math:`a > 0` else ``LEAKY_SLOPE``
    identity          :math:`1`
    ================  =====================================

    Softmax has no element-wise derivative (its Jacobian couples a row); use
    :func:`backprop` for it.

    Parameters
    ----------
    A : array of shape (n_samples, n_units)
        Activations of the layer.
    code : int
        Activation code, not ``SOFTMAX``.
    out : array of shape (n_samples, n_units)
        Filled with σ'(Z).  May be ``A`` itself.
    """
    n, m = A.shape
    if code == SOFTMAX:
        raise ValueError("softmax has no element-wise derivative; use backprop")
    for i in range(n):
        for j in range(m):
            a = A[i, j]
            if code == SIGMOID:
                out[i, j] = a * (1.0 - a)
            elif code == TANH:
                out[i, j] = 1.0 - a * a
            elif code == RELU:
                out[i, j] = 1.0 if a > 0 else 0.0
            elif code == LEAKY_RELU:
                out[i, j] = 1.0 if a > 0 else LEAKY_SLOPE
            else:
                out[i, j] = 1.0


@jit
def backprop_inplace(D, A, code):
    r"""Chain rule through the activation, in place: ``D <- ∂c/∂Z`` given ``D = ∂c/∂A``.

    For element-wise activations this is :math:`D \odot \sigma'(Z)`, with
    σ' computed from ``A``; for softmax it is the Jacobian-vector product of
    each row, :math:`\delta_j = a_j (g_j - \sum_k g_k a_k)`.

    One array is read and written and one only read, so the loops vectorise;
    with separate input and output arguments that may alias, LLVM's aliasing
    checks fail for in-place calls and the loop runs many times slower.

    Parameters
    ----------
    D : array of shape (n_samples, n_units)
        On entry the gradient with respect to the activations, on exit the
        gradient with respect to the pre-activations.
    A : array of shape (n_samples, n_units)
        Activations of the layer.
    code : int
        Activation code.
    """
    n, m = A.shape
    if code == SOFTMAX:
        for i in range(n):
            s = 0.0
            for j in range(m):
                s += D[i, j] * A[i, j]
            for j in range(m):
                D[i, j] = A[i, j] * (D[i, j] - s)
    elif code == IDENTITY:
        pass
    elif code == SIGMOID:
        for i in range(n):
            for j in range(m):
                a = A[i, j]
                D[i, j] *= a * (1.0 - a)
    elif code == TANH:
        for i in range(n):
            for j in range(m):
                a = A[i, j]
                D[i, j] *= 1.0 - a * a
    elif code == RELU:
        for i in range(n):
            for j in range(m):
                if not A[i, j] > 0:
                    D[i, j] = 0.0
    elif code == LEAKY_RELU:
        for i in range(n):
            for j in range(m):
                if not A[i, j] > 0:
                    D[i, j] *= LEAKY_SLOPE
    else:
        raise ValueError("unknown activation code")


@jit
def backprop(G, A, code, out):
    r"""Chain rule through the activation: ``out = ∂c/∂Z`` given ``G = ∂c/∂A``.

    :func:`backprop_inplace` applied to a copy of ``G`` in ``out`` (which may
    be ``G`` itself).

    Parameters
    ----------
    G : array of shape (n_samples, n_units)
        Gradient of the cost with respect to the activations.
    A : array of shape (n_samples, n_units)
        Activations of the layer.
    code : int
        Activation code.
    out : array of shape (n_samples, n_units)
        Filled with the gradient with respect to the pre-activations.
    """
    out[:, :] = G
    backprop_inplace(out, A, code)


@jit
def derivative_scalar(a, code):
    """σ'(z) for one unit, from its activation ``a = σ(z)`` (element-wise codes)."""
    if code == SIGMOID:
        return a * (1.0 - a)
    if code == TANH:
        return 1.0 - a * a
    if code == RELU:
        return 1.0 if a > 0 else 0.0
    if code == LEAKY_RELU:
        return 1.0 if a > 0 else LEAKY_SLOPE
    return 1.0
