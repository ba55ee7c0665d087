r"""Activations, each one σ/σ′ pair in one place, selected by a small integer code.

Every activation is two scalar functions side by side: ``name(z)`` is σ(z)
and ``name_slope(z, a)`` is σ'(z), given both z and ``a = σ(z)`` so that each
derivative is written in its cheapest stable form (``a (1 - a)`` for the
sigmoid, ``Φ(z) + z φ(z)`` for GELU).  :func:`builtin_value` and
:func:`builtin_slope` dispatch on the code, one value at a time; the batch
kernels below apply the pairs to whole matrices ``Z`` of shape
``(n_samples, n_units)`` (one sample per row) with one loop per activation,
because a loop that branches on the code inside is
neither inlined nor vectorised (measured 20x slower for relu).

Adding a built-in activation: its pair, a code, a line in
:func:`builtin_value` and in :func:`builtin_slope`, a loop in :func:`_apply_more`
and in :func:`_backprop_more`, and an entry in :data:`BUILTINS` -- all in
this file.

A derivative that needs z, not only a (GELU, SiLU, custom activations; see
:func:`needs_z`), makes the training loop keep that layer's pre-activations.

Custom activations (:class:`numbanet.Activation`) have the code ``CUSTOM``:
their σ and σ' are compiled Numba C callbacks whose addresses the kernels
receive in the tuple of integers ``fns`` (:mod:`numbanet.kernels.pieces`),
called with ``k``, the layer's index among the network's custom activations.
Since that tuple has one type whatever the callbacks, the kernels are
compiled once, cached, and shared by every custom activation.
"""

import math

import numpy as np

from numbanet._jit import jit, jit_inline
from numbanet.kernels.pieces import FN_SLOPE, FN_VALUE, activation_fn

IDENTITY = 0
SIGMOID = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4
SOFTMAX = 5
ELU = 6
GELU = 7
SILU = 8
SOFTPLUS = 9
CUSTOM = 10

#: Slope of ``leaky_relu`` for negative inputs (PyTorch's default).
LEAKY_SLOPE = 0.01

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class Builtin:
    """What the Python layer needs to know about a built-in activation.

    Attributes
    ----------
    code : int
    init : {"he", "glorot"}
        Initialisation of a layer with this activation: He normal for
        ReLU-like units, Glorot uniform otherwise.
    kink : bool
        σ or σ' changes formula at z = 0: a finite difference straddling it
        measures an average of two slopes (relu, leaky_relu) or is only
        first-order accurate (elu, whose σ'' jumps), so gradient checks do not
        compare such entries.
    output_only : bool
        Allowed on the output layer only (softmax).
    """

    def __init__(self, code, init="glorot", kink=False, output_only=False):
        self.code = code
        self.init = init
        self.kink = kink
        self.output_only = output_only


#: The built-in activations by name: the one list every other module reads.
BUILTINS = {
    "identity": Builtin(IDENTITY),
    "sigmoid": Builtin(SIGMOID),
    "tanh": Builtin(TANH),
    "relu": Builtin(RELU, init="he", kink=True),
    "leaky_relu": Builtin(LEAKY_RELU, init="he", kink=True),
    "softmax": Builtin(SOFTMAX, output_only=True),
    "elu": Builtin(ELU, init="he", kink=True),
    "gelu": Builtin(GELU, init="he"),
    "silu": Builtin(SILU, init="he"),
    "softplus": Builtin(SOFTPLUS),
}

#: Activation names and their codes.
CODES = {name: b.code for name, b in BUILTINS.items()}


# --- the pairs: σ(z) and σ'(z) ----------------------------------------------------


@jit_inline
def identity(z):
    r""":math:`\sigma(z) = z`."""
    return z


@jit_inline
def identity_slope(z, a):
    r""":math:`\sigma'(z) = 1`."""
    return 1.0


@jit_inline
def sigmoid(z):
    r""":math:`\sigma(z) = 1 / (1 + e^{-z})`, as :math:`e^z / (1 + e^z)` for z < 0 so exp never overflows."""
    if z >= 0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@jit_inline
def sigmoid_slope(z, a):
    r""":math:`\sigma'(z) = a (1 - a)`."""
    return a * (1.0 - a)


@jit_inline
def tanh(z):
    r""":math:`\tanh z`."""
    return np.tanh(z)


@jit_inline
def tanh_slope(z, a):
    r""":math:`\tanh'(z) = 1 - a^2`."""
    return 1.0 - a * a


@jit_inline
def relu(z):
    r""":math:`\max(z, 0)`."""
    return z if z > 0 else 0.0


@jit_inline
def relu_slope(z, a):
    """1 where ``a > 0`` (exactly where z > 0), else 0 (0 at the kink, as PyTorch)."""
    return 1.0 if a > 0 else 0.0


@jit_inline
def leaky_relu(z):
    r""":math:`z` for z > 0, else ``LEAKY_SLOPE`` · z."""
    return z if z > 0 else LEAKY_SLOPE * z


@jit_inline
def leaky_relu_slope(z, a):
    """1 where ``a > 0``, else ``LEAKY_SLOPE``."""
    return 1.0 if a > 0 else LEAKY_SLOPE


@jit_inline
def elu(z):
    r""":math:`z` for z > 0, else :math:`e^z - 1` (α = 1, PyTorch's default)."""
    return z if z > 0 else np.expm1(z)


@jit_inline
def elu_slope(z, a):
    r"""1 where ``a > 0``, else :math:`e^z = a + 1`."""
    return 1.0 if a > 0 else a + 1.0


@jit_inline
def gelu(z):
    r""":math:`z \Phi(z) = \tfrac12 z (1 + \operatorname{erf}(z / \sqrt 2))` (exact, PyTorch's default)."""
    return 0.5 * z * (1.0 + math.erf(z * _INV_SQRT2))


@jit_inline
def gelu_slope(z, a):
    r""":math:`\Phi(z) + z \varphi(z)`, :math:`\varphi(z) = e^{-z^2/2} / \sqrt{2\pi}`."""
    return 0.5 * (1.0 + math.erf(z * _INV_SQRT2)) + z * np.exp(-0.5 * z * z) * _INV_SQRT_2PI


@jit_inline
def silu(z):
    r""":math:`z \, s(z)` with the logistic :math:`s` (also called swish)."""
    return z * sigmoid(z)


@jit_inline
def silu_slope(z, a):
    r""":math:`s(z) (1 + z (1 - s(z)))`."""
    s = sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


@jit_inline
def softplus(z):
    r""":math:`\log(1 + e^z)`, as :math:`\max(z, 0) + \log(1 + e^{-|z|})` so exp never overflows."""
    return (z if z > 0 else 0.0) + np.log1p(np.exp(-abs(z)))


@jit_inline
def softplus_slope(z, a):
    r""":math:`s(z) = 1 - e^{-a}`, computed as ``-expm1(-a)`` (exact for tiny a)."""
    return -np.expm1(-a)


# --- dispatch -------------------------------------------------------------------------


@jit
def builtin_value(code, z):
    """σ(z) of the built-in activation ``code`` (softmax excluded: it acts on whole rows)."""
    if code == RELU:
        return relu(z)
    if code == SIGMOID:
        return sigmoid(z)
    if code == TANH:
        return tanh(z)
    if code == LEAKY_RELU:
        return leaky_relu(z)
    if code == ELU:
        return elu(z)
    if code == GELU:
        return gelu(z)
    if code == SILU:
        return silu(z)
    if code == SOFTPLUS:
        return softplus(z)
    return identity(z)


@jit
def builtin_slope(code, z, a):
    """σ'(z) of the built-in activation ``code``, given z and ``a = σ(z)`` (softmax excluded)."""
    if code == RELU:
        return relu_slope(z, a)
    if code == SIGMOID:
        return sigmoid_slope(z, a)
    if code == TANH:
        return tanh_slope(z, a)
    if code == LEAKY_RELU:
        return leaky_relu_slope(z, a)
    if code == ELU:
        return elu_slope(z, a)
    if code == GELU:
        return gelu_slope(z, a)
    if code == SILU:
        return silu_slope(z, a)
    if code == SOFTPLUS:
        return softplus_slope(z, a)
    return identity_slope(z, a)


@jit
def value(code, z, k, fns):
    """σ(z) of activation ``code``, custom ones included (for one value; the batch kernels loop themselves)."""
    if code == CUSTOM:
        return activation_fn(fns[FN_VALUE])(k, float(z))
    return builtin_value(code, z)


@jit
def slope(code, z, a, k, fns):
    """σ'(z) of activation ``code``, custom ones included, given z and ``a = σ(z)``."""
    if code == CUSTOM:
        return activation_fn(fns[FN_SLOPE])(k, float(z))
    return builtin_slope(code, z, a)


@jit_inline
def needs_z(code):
    """Whether σ'(z) needs z itself, not only ``a = σ(z)``: then the pre-activations are kept."""
    return code == GELU or code == SILU or code == CUSTOM


# --- batch kernels ----------------------------------------------------------------------


@jit
def _softmax_rows(Z, out):
    n, m = Z.shape
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


@jit
def _apply_more(Z, b, code, k, fns):
    """:func:`bias_activate` for ELU, GELU, SiLU, softplus and custom activations, apart so its own loops stay small."""
    n, m = Z.shape
    if code == ELU:
        for i in range(n):
            for j in range(m):
                Z[i, j] = elu(Z[i, j] + b[j])
    elif code == GELU:
        for i in range(n):
            for j in range(m):
                Z[i, j] = gelu(Z[i, j] + b[j])
    elif code == SILU:
        for i in range(n):
            for j in range(m):
                Z[i, j] = silu(Z[i, j] + b[j])
    elif code == SOFTPLUS:
        for i in range(n):
            for j in range(m):
                Z[i, j] = softplus(Z[i, j] + b[j])
    elif code == CUSTOM:
        f = activation_fn(fns[FN_VALUE])
        for i in range(n):
            for j in range(m):
                Z[i, j] = f(k, float(Z[i, j] + b[j]))


@jit
def activate(Z, code, k, fns, out):
    r"""Apply activation ``code`` to every row of ``Z``: ``out = σ(Z)``.

    Parameters
    ----------
    Z : array of shape (n_samples, n_units), float32 or float64
        Pre-activations, one sample per row.
    code : int
        Activation code.  ``SOFTMAX`` acts on each row:
        :math:`a_j = e^{z_j - m} / \sum_k e^{z_k - m}` with :math:`m = \max_k z_k`,
        so ``exp`` never overflows.
    k : int
        The layer's index among the network's custom activations (``CUSTOM`` only).
    fns : tuple of 4 ints
        Addresses of the custom callbacks (:mod:`numbanet.kernels.pieces`).
    out : array of shape (n_samples, n_units), same dtype
        Filled with the activations.  May be ``Z`` itself.
    """
    if code == SOFTMAX:
        _softmax_rows(Z, out)
        return
    if out is not Z:
        for i in range(Z.shape[0]):  # a loop: slice assignment compiles a formatted error message
            for j in range(Z.shape[1]):
                out[i, j] = Z[i, j]
    bias_activate(out, np.zeros(Z.shape[1], Z.dtype), code, k, fns)


@jit
def bias_activate(Z, b, code, k, fns):
    """Fused bias and activation, in place: ``Z <- σ(Z + b)``, one pass over ``Z``.

    One loop per activation, each calling its scalar σ, over one array read
    and written: LLVM inlines and vectorises such a loop.  A loop over a
    runtime choice of activations it does not (measured 20x slower for relu),
    nor one reading one array and writing another that may alias it (4x).
    ReLU, sigmoid, tanh, leaky ReLU, identity and softmax have their loops
    here; ELU, GELU, SiLU, softplus and custom activations have theirs in
    :func:`_apply_more`, which keeps this function small enough to stay fast
    for tiny layers.

    Parameters
    ----------
    Z : array of shape (n_samples, n_units)
        On entry ``A W^T``; on exit the layer's activations.
    b : array of shape (n_units,)
        Bias, added to every row.
    code, k, fns
        As for :func:`activate`.
    """
    if code == SOFTMAX:
        n, m = Z.shape
        for i in range(n):
            for j in range(m):
                Z[i, j] += b[j]
        _softmax_rows(Z, Z)
        return
    n, m = Z.shape
    if code == RELU:
        for i in range(n):
            for j in range(m):
                Z[i, j] = relu(Z[i, j] + b[j])
    elif code == SIGMOID:
        for i in range(n):
            for j in range(m):
                Z[i, j] = sigmoid(Z[i, j] + b[j])
    elif code == TANH:
        for i in range(n):
            for j in range(m):
                Z[i, j] = tanh(Z[i, j] + b[j])
    elif code == LEAKY_RELU:
        for i in range(n):
            for j in range(m):
                Z[i, j] = leaky_relu(Z[i, j] + b[j])
    elif code == IDENTITY:
        for i in range(n):
            for j in range(m):
                Z[i, j] = identity(Z[i, j] + b[j])
    else:
        _apply_more(Z, b, code, k, fns)


@jit
def backprop_inplace(D, A, Z, code, k, fns, a_scale):
    r"""Chain rule through the activation, in place: ``D <- ∂c/∂Z`` given ``D = ∂c/∂A``.

    For element-wise activations this is :math:`D \odot \sigma'(Z)`; for
    softmax the Jacobian-vector product of each row,
    :math:`\delta_j = a_j (g_j - \sum_k g_k a_k)`.

    Parameters
    ----------
    D : array of shape (n_samples, n_units)
        On entry the gradient with respect to the activations, on exit the
        gradient with respect to the pre-activations.
    A : array of shape (n_samples, n_units)
        Activations of the layer, times ``1 / a_scale``.
    Z : array of shape (n_samples, n_units)
        Pre-activations of the layer; read only where :func:`needs_z` (pass
        ``A`` otherwise).
    code, k, fns
        As for :func:`activate`.
    a_scale : float
        ``A * a_scale`` is σ(Z): 1, or ``1 - p`` for a layer whose stored
        activations carry inverted dropout's ``1 / (1 - p)``.
    """
    n, m = A.shape
    a_scale = A.dtype.type(a_scale)  # keep the loops in the array's precision
    if code == IDENTITY:
        return
    if code == SOFTMAX:
        for i in range(n):
            s = 0.0
            for j in range(m):
                s += D[i, j] * A[i, j]
            for j in range(m):
                D[i, j] = A[i, j] * (D[i, j] - s)
    elif code == RELU:
        for i in range(n):
            for j in range(m):
                D[i, j] *= relu_slope(Z[i, j], A[i, j] * a_scale)
    elif code == SIGMOID:
        for i in range(n):
            for j in range(m):
                D[i, j] *= sigmoid_slope(Z[i, j], A[i, j] * a_scale)
    elif code == TANH:
        for i in range(n):
            for j in range(m):
                D[i, j] *= tanh_slope(Z[i, j], A[i, j] * a_scale)
    elif code == LEAKY_RELU:
        for i in range(n):
            for j in range(m):
                D[i, j] *= leaky_relu_slope(Z[i, j], A[i, j] * a_scale)
    else:
        _backprop_more(D, A, Z, code, k, fns, a_scale)


@jit
def _backprop_more(D, A, Z, code, k, fns, a_scale):
    """:func:`backprop_inplace` for ELU, GELU, SiLU, softplus and custom activations (see :func:`_apply_more`)."""
    n, m = A.shape
    if code == ELU:
        for i in range(n):
            for j in range(m):
                D[i, j] *= elu_slope(Z[i, j], A[i, j] * a_scale)
    elif code == GELU:
        for i in range(n):
            for j in range(m):
                D[i, j] *= gelu_slope(Z[i, j], A[i, j] * a_scale)
    elif code == SILU:
        for i in range(n):
            for j in range(m):
                D[i, j] *= silu_slope(Z[i, j], A[i, j] * a_scale)
    elif code == SOFTPLUS:
        for i in range(n):
            for j in range(m):
                D[i, j] *= softplus_slope(Z[i, j], A[i, j] * a_scale)
    elif code == CUSTOM:
        f = activation_fn(fns[FN_SLOPE])
        for i in range(n):
            for j in range(m):
                D[i, j] *= f(k, float(Z[i, j]))
