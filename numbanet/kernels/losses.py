r"""Costs and output deltas, each loss one pair -- cost and its derivative -- in one place.

Every loss is a per-output cost :math:`c(a, y)` summed over the outputs of a
sample, next to its derivative :math:`\partial c / \partial a`:

===========================  ==================================================  ===================
code                         cost of one sample :math:`c`                          natural output
===========================  ==================================================  ===================
``MSE``                      :math:`\tfrac12 \sum_j (a_j - y_j)^2`                   any
``CROSS_ENTROPY``            :math:`-\sum_j y_j \log a_j`                           softmax
``BINARY_CROSS_ENTROPY``     :math:`-\sum_j [y_j \log a_j + (1-y_j)\log(1-a_j)]`   sigmoid
``HUBER``                    :math:`\sum_j h(a_j - y_j)`, :math:`h(d) = \tfrac12 d^2`  any
                             for :math:`|d| \le 1`, else :math:`|d| - \tfrac12`
``POISSON``                  :math:`\sum_j [y_j \log(y_j / a_j) - y_j + a_j]`        exp
                             (half the Poisson deviance, scikit-learn's)
``CUSTOM``                   :math:`\sum_j c(a_j, y_j)` of a :class:`numbanet.Loss`  any
===========================  ==================================================  ===================

The cost of a batch is a weighted sum of per-sample costs,
:math:`C = \sum_i w_i c_i`; with :math:`w_i = 1/n` it is the mean that
docs/derivation.md ("Costs") defines, and with sample weights it is the weighted mean
:math:`w_i = s_i / \sum_k s_k`.  The same row weights scale the output delta,
so every gradient computed from it is already the (weighted) mean over the
batch.

Each built-in loss is one entry (:func:`_builtin`) next to its pair: its
code and the output activation it requires, if any.  :data:`CODES`,
:data:`REQUIRED_OUTPUT` and the dispatch on the code (:func:`builtin_cost`,
:func:`builtin_cost_slope`, generated from the registry as the activations'
are, :func:`numbanet.kernels.activations._generate`) follow from the
registry, and so do :mod:`numbanet.reference`'s costs.  Adding a built-in
loss: write its pair and its entry in this file.

For the natural pairs (softmax with cross-entropy, sigmoid with binary
cross-entropy, exp with Poisson) the output delta is :math:`a - y` and the cost is computed
from the logits (:func:`batch_cost_logits`); otherwise the delta is the chain
rule :math:`\partial c/\partial a \odot \sigma'(z)`.  Logarithms of
activations never see 0: their arguments are clipped at the smallest positive
normal number of the dtype (``TINY32`` / ``TINY64``).
"""

import numpy as np

from numbanet._jit import jit, jit_inline
from numbanet.kernels.activations import EXP, SIGMOID, SOFTMAX, _generate, backprop_inplace
from numbanet.kernels.pieces import FN_COST, FN_COST_SLOPE, loss_fn

MSE = 0
CROSS_ENTROPY = 1
BINARY_CROSS_ENTROPY = 2
HUBER = 3
CUSTOM = 4
POISSON = 5

TINY64 = float(np.finfo(np.float64).tiny)
TINY32 = float(np.finfo(np.float32).tiny)


@jit_inline
def _safe_log(x, tiny):
    return np.log(x if x > tiny else tiny)


class BuiltinLoss:
    """A built-in loss: its pair, and what the rest of numbanet derives from it.

    Attributes
    ----------
    name : str
    code : int
        Its code in the kernels and in :data:`CODES`; never changes once given.
    cost, slope : Numba functions
        ``c(a, y, tiny)`` and ``∂c/∂a (a, y, tiny)`` of one output.
    output : str or None
        The output activation the loss requires, if any.
    """

    def __init__(self, name, code, cost, slope, output=None):
        self.name = name
        self.code = code
        self.cost = cost
        self.slope = slope
        self.output = output


#: The built-in losses by name, in the order they are registered: the one list every other module reads.
BUILTINS = {}


def _builtin(name, code, cost, slope, output=None):
    """Register the built-in loss ``name``: its code, its pair and the output activation it requires."""
    if name in BUILTINS or code in (b.code for b in BUILTINS.values()) or code == CUSTOM:
        raise ValueError(f"loss {name!r} or its code {code} is taken")
    BUILTINS[name] = BuiltinLoss(name, code, cost, slope, output)


# --- the pairs: c(a, y) and ∂c/∂a, per output, and their entries ----------------------------


@jit_inline
def mse(a, y, tiny):
    r""":math:`\tfrac12 (a - y)^2`."""
    d = a - y
    return 0.5 * d * d


@jit_inline
def mse_slope(a, y, tiny):
    r""":math:`a - y`."""
    return a - y


_builtin("mse", MSE, mse, mse_slope)


@jit_inline
def cross_entropy(a, y, tiny):
    r""":math:`-y \log a` (0 where y = 0)."""
    return -y * _safe_log(a, tiny) if y != 0.0 else 0.0


@jit_inline
def cross_entropy_slope(a, y, tiny):
    r""":math:`-y / a`."""
    return -y / (a if a > tiny else tiny)


_builtin("cross_entropy", CROSS_ENTROPY, cross_entropy, cross_entropy_slope, output="softmax")


@jit_inline
def binary_cross_entropy(a, y, tiny):
    r""":math:`-[y \log a + (1 - y) \log(1 - a)]`."""
    c = 0.0
    if y != 0.0:
        c -= y * _safe_log(a, tiny)
    if y != 1.0:
        c -= (1.0 - y) * _safe_log(1.0 - a, tiny)
    return c


@jit_inline
def binary_cross_entropy_slope(a, y, tiny):
    r""":math:`-y / a + (1 - y) / (1 - a)`."""
    p = a if a > tiny else tiny
    q = 1.0 - a
    q = q if q > tiny else tiny
    return -y / p + (1.0 - y) / q


_builtin(
    "binary_cross_entropy", BINARY_CROSS_ENTROPY, binary_cross_entropy, binary_cross_entropy_slope, output="sigmoid"
)


#: Huber's δ: the loss is quadratic for residuals ``|a - y| <= HUBER_DELTA`` and linear beyond (a kink of c'').
HUBER_DELTA = 1.0


@jit_inline
def huber(a, y, tiny):
    r""":math:`\tfrac12 d^2` for :math:`|d| \le \delta`, else :math:`\delta(|d| - \tfrac12\delta)`, with d = a - y."""
    d = abs(a - y)
    return 0.5 * d * d if d <= HUBER_DELTA else HUBER_DELTA * (d - 0.5 * HUBER_DELTA)


@jit_inline
def huber_slope(a, y, tiny):
    """``d`` for ``|d| <= δ``, else ``δ sign(d)``."""
    d = a - y
    if d > HUBER_DELTA:
        return HUBER_DELTA
    if d < -HUBER_DELTA:
        return -HUBER_DELTA
    return d


_builtin("huber", HUBER, huber, huber_slope)


@jit_inline
def poisson(a, y, tiny):
    r""":math:`y \log(y / a) - y + a` (:math:`y \log y` is 0 at y = 0): half the Poisson deviance."""
    c = a - y
    if y != 0.0:
        c += y * (_safe_log(y, tiny) - _safe_log(a, tiny))
    return c


@jit_inline
def poisson_slope(a, y, tiny):
    r""":math:`1 - y / a`."""
    return 1.0 - y / (a if a > tiny else tiny)


_builtin("poisson", POISSON, poisson, poisson_slope, output="exp")

#: The built-in losses' names and codes.
CODES = {name: b.code for name, b in BUILTINS.items()}

#: The output activation each loss requires, if any.
REQUIRED_OUTPUT = {name: b.output for name, b in BUILTINS.items() if b.output is not None}


# --- dispatch ----------------------------------------------------------------------------


_CASES = [(b.code, b.name, {"cost": b.cost.__name__, "slope": b.slope.__name__}) for b in BUILTINS.values()]
for _b in BUILTINS.values():  # the generated code names each pair by its functions' names in this module
    assert globals()[_b.cost.__name__] is _b.cost and globals()[_b.slope.__name__] is _b.slope

builtin_cost = _generate(
    '''def builtin_cost(loss, a, y, tiny):
    """Cost of one output of a built-in loss, ``c(a, y)``, in float64."""
    a = float(a)
    y = float(y)
    code = loss''',
    "return {cost}(a, y, tiny)",
    "return 0.0",
    cases=_CASES,
    where=globals(),
)

builtin_cost_slope = _generate(
    '''def builtin_cost_slope(loss, a, y, tiny):
    """Return ``∂c/∂a`` of one output of a built-in loss."""
    code = loss''',
    "return {slope}(a, y, tiny)",
    "return 0.0",
    cases=_CASES,
    where=globals(),
)


# --- batch kernels -------------------------------------------------------------------------


@jit
def batch_cost(A, Y, loss, row_weight, fns):
    r"""Weighted batch cost :math:`C = \sum_i w_i \sum_j c(a_{ij}, y_{ij})`, accumulated in float64.

    Parameters
    ----------
    A, Y : arrays of shape (n_samples, n_outputs)
        Output activations and targets.
    loss : int
        Loss code.
    row_weight : array of shape (n_samples,)
        :math:`w_i`; ``1/n`` for every row gives the mean cost.
    fns : tuple of 4 ints
        Addresses of the custom callbacks (:mod:`numbanet.kernels.pieces`); used for ``CUSTOM``.

    Returns
    -------
    float
    """
    n, m = A.shape
    tiny = TINY32 if A.itemsize == 4 else TINY64
    total = 0.0
    if loss == CUSTOM:
        f = loss_fn(fns[FN_COST])
        for i in range(n):
            c = 0.0
            for j in range(m):
                c += f(float(A[i, j]), float(Y[i, j]))
            total += float(row_weight[i]) * c
        return total
    for i in range(n):
        c = 0.0
        for j in range(m):
            c += builtin_cost(loss, A[i, j], Y[i, j], tiny)
        total += float(row_weight[i]) * c
    return total


@jit
def batch_cost_logits(Z, Y, loss, row_weight):
    r"""Weighted batch cost of a natural pair, computed from the output logits.

    For softmax with cross-entropy,
    :math:`c = \sum_j y_j (\operatorname{lse}(z) - z_j)` with
    :math:`\operatorname{lse}(z) = m + \log \sum_k e^{z_k - m}`, :math:`m = \max_k z_k`;
    for sigmoid with binary cross-entropy,
    :math:`c = \sum_j [\max(z_j, 0) - y_j z_j + \log(1 + e^{-|z_j|})]`;
    for exp with Poisson, :math:`c = \sum_j [e^{z_j} - y_j z_j + y_j \log y_j - y_j]`.
    Both equal :func:`batch_cost` of :math:`a = \sigma(z)` wherever that is
    representable, but they never clip: logits of ±1e4 give costs near 1e4,
    not the ``-log(tiny)`` (708 in float64, 87 in float32) at which a cost
    computed from saturated activations stops (for Poisson, :math:`\log a` is
    :math:`z` itself, never a clipped logarithm).  Accumulated in float64.

    Parameters
    ----------
    Z : array of shape (n_samples, n_outputs)
        Output pre-activations :math:`Z^L`.
    Y : array of shape (n_samples, n_outputs)
        Targets.
    loss : int
        ``CROSS_ENTROPY`` (softmax outputs), ``BINARY_CROSS_ENTROPY``
        (sigmoid outputs) or ``POISSON`` (exp outputs).
    row_weight : array of shape (n_samples,)

    Returns
    -------
    float
    """
    n, m = Z.shape
    total = 0.0
    for i in range(n):
        c = 0.0
        if loss == CROSS_ENTROPY:
            zmax = float(Z[i, 0])
            for j in range(1, m):
                if Z[i, j] > zmax:
                    zmax = float(Z[i, j])
            s = 0.0
            for j in range(m):
                s += np.exp(float(Z[i, j]) - zmax)
            lse = zmax + np.log(s)
            for j in range(m):
                y = float(Y[i, j])
                if y != 0.0:
                    c += y * (lse - float(Z[i, j]))
        elif loss == BINARY_CROSS_ENTROPY:
            for j in range(m):
                z = float(Z[i, j])
                y = float(Y[i, j])
                c += (z if z > 0.0 else 0.0) - y * z + np.log1p(np.exp(-abs(z)))
        elif loss == POISSON:
            for j in range(m):
                z = float(Z[i, j])
                y = float(Y[i, j])
                c += np.exp(z) - y * z - y
                if y > 0.0:
                    c += y * np.log(y)
        else:
            raise ValueError("batch_cost_logits takes CROSS_ENTROPY, BINARY_CROSS_ENTROPY or POISSON")
        total += float(row_weight[i]) * c
    return total


@jit_inline
def output_cost(Z, A, Y, loss, act, row_weight, fns):
    """Weighted batch cost: from the logits ``Z`` for a natural pair, from ``A`` otherwise.

    Parameters are those of :func:`batch_cost` and :func:`batch_cost_logits`;
    ``act`` is the output activation code.
    """
    if is_simplified(loss, act):
        return batch_cost_logits(Z, Y, loss, row_weight)
    return batch_cost(A, Y, loss, row_weight, fns)


@jit
def cost_gradient(A, Y, loss, fns, out):
    r"""Gradient of the per-sample cost with respect to the output, ``out = ∂c/∂a``.

    Parameters
    ----------
    A, Y : arrays of shape (n_samples, n_outputs)
    loss : int
    fns : tuple of 4 ints
    out : array of shape (n_samples, n_outputs)
    """
    n, m = A.shape
    tiny = TINY32 if A.itemsize == 4 else TINY64
    if loss == CUSTOM:
        f = loss_fn(fns[FN_COST_SLOPE])
        for i in range(n):
            for j in range(m):
                out[i, j] = f(float(A[i, j]), float(Y[i, j]))
        return
    for i in range(n):
        for j in range(m):
            out[i, j] = builtin_cost_slope(loss, A[i, j], Y[i, j], tiny)


@jit
def output_delta_chain(A, Z, Y, loss, act, k, fns, row_weight, out):
    r"""Output delta by the general chain rule, rows scaled by ``row_weight``.

    :math:`\delta^L_i = w_i \, (\partial c/\partial a^L) \odot \sigma_L'(z^L)`
    (for softmax, the Jacobian-vector product instead of ⊙).

    Parameters
    ----------
    A, Z, Y : arrays of shape (n_samples, n_outputs)
        Output activations, pre-activations (read only when the output
        activation needs them) and targets.
    loss, act : int
        Loss code and output activation code.
    k : int
        The output layer's index among the custom activations.
    fns : tuple of 4 ints
    row_weight : array of shape (n_samples,)
        :math:`w_i` (``1/n`` for a plain batch mean).
    out : array of shape (n_samples, n_outputs)
        Filled with the scaled output delta.
    """
    cost_gradient(A, Y, loss, fns, out)
    backprop_inplace(out, A, Z, act, k, fns, 1.0)
    n, m = A.shape
    for i in range(n):
        w = row_weight[i]
        for j in range(m):
            out[i, j] *= w


@jit
def output_delta_simplified(A, Y, loss, row_weight, out):
    r"""Output delta in the simplified form :math:`\delta^L_i = w_i (a^L_i - y_i)`.

    Exact for sigmoid with binary cross-entropy and for exp with Poisson
    (:math:`(1 - y/a)\,a`).  For softmax with
    cross-entropy the exact delta is :math:`w_i (a^L_i \sum_k y_{ik} - y_i)`,
    which is :math:`w_i (a^L_i - y_i)` whenever the target row sums to 1 (one-hot
    labels); the row sum is kept so that soft or unnormalised targets still get
    the exact gradient.  This is also the numerically stable way: no division
    by an activation.

    Parameters
    ----------
    A, Y : arrays of shape (n_samples, n_outputs)
    loss : int
        ``CROSS_ENTROPY``, ``BINARY_CROSS_ENTROPY`` or ``POISSON``.
    row_weight : array of shape (n_samples,)
    out : array of shape (n_samples, n_outputs)
    """
    n, m = A.shape
    for i in range(n):
        w = row_weight[i]
        s = 1.0
        if loss == CROSS_ENTROPY:
            s = 0.0
            for j in range(m):
                s += Y[i, j]
        for j in range(m):
            out[i, j] = w * (A[i, j] * s - Y[i, j])


@jit_inline
def is_simplified(loss, act):
    """Whether ``(loss, act)`` is a pair whose output delta is ``A - Y``."""
    return (
        (loss == CROSS_ENTROPY and act == SOFTMAX)
        or (loss == BINARY_CROSS_ENTROPY and act == SIGMOID)
        or (loss == POISSON and act == EXP)
    )


@jit_inline
def output_delta(A, Z, Y, loss, act, k, fns, row_weight, out):
    """Output delta, simplified where the pair allows it, chain rule otherwise.

    Parameters are those of :func:`output_delta_chain`.
    """
    if is_simplified(loss, act):
        output_delta_simplified(A, Y, loss, row_weight, out)
    else:
        output_delta_chain(A, Z, Y, loss, act, k, fns, row_weight, out)
