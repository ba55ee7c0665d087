r"""Per-sample costs and output deltas, selected by a small integer code.

===========================  ==================================================  ===================
code                         cost of one sample :math:`c`                          natural output
===========================  ==================================================  ===================
``MSE``                      :math:`\tfrac12 \sum_j (a_j - y_j)^2`                   any
``CROSS_ENTROPY``            :math:`-\sum_j y_j \log a_j`                           softmax
``BINARY_CROSS_ENTROPY``     :math:`-\sum_j [y_j \log a_j + (1-y_j)\log(1-a_j)]`   sigmoid
===========================  ==================================================  ===================

The cost of a batch is a weighted sum of per-sample costs,
:math:`C = \sum_i w_i c_i`; with :math:`w_i = 1/n` it is the mean that
docs/derivation.md ("Costs") defines, and with sample weights it is the weighted mean
:math:`w_i = s_i / \sum_k s_k`.  The same row weights scale the output delta,
so every gradient computed from it is already the (weighted) mean over the
batch.

Logarithms never see 0: their arguments are clipped at the smallest positive
normal number of the dtype (``TINY32`` / ``TINY64``).
"""

import numpy as np

from numbanet._jit import jit
from numbanet.kernels.activations import SIGMOID, SOFTMAX, backprop_inplace

MSE = 0
CROSS_ENTROPY = 1
BINARY_CROSS_ENTROPY = 2

#: Loss names accepted by :class:`numbanet.Network`, and their codes.
CODES = {"mse": MSE, "cross_entropy": CROSS_ENTROPY, "binary_cross_entropy": BINARY_CROSS_ENTROPY}
NAMES = {code: name for name, code in CODES.items()}

TINY64 = float(np.finfo(np.float64).tiny)
TINY32 = float(np.finfo(np.float32).tiny)


@jit
def _safe_log(x, tiny):
    return np.log(x if x > tiny else tiny)


@jit
def sample_costs(A, Y, loss, out):
    """Cost of each sample, ``out[i] = c(A[i], Y[i])``.

    Parameters
    ----------
    A : array of shape (n_samples, n_outputs), float32 or float64
        Output activations.
    Y : array of shape (n_samples, n_outputs), same dtype
        Targets.
    loss : int
        Loss code.
    out : array of shape (n_samples,), float64
        Filled with the per-sample costs (accumulated in float64).
    """
    n, m = A.shape
    tiny = TINY32 if A.itemsize == 4 else TINY64
    for i in range(n):
        c = 0.0
        if loss == MSE:
            for j in range(m):
                d = float(A[i, j]) - float(Y[i, j])
                c += 0.5 * d * d
        elif loss == CROSS_ENTROPY:
            for j in range(m):
                y = float(Y[i, j])
                if y != 0.0:
                    c -= y * _safe_log(float(A[i, j]), tiny)
        else:
            for j in range(m):
                y = float(Y[i, j])
                a = float(A[i, j])
                if y != 0.0:
                    c -= y * _safe_log(a, tiny)
                if y != 1.0:
                    c -= (1.0 - y) * _safe_log(1.0 - a, tiny)
        out[i] = c


@jit
def batch_cost(A, Y, loss, row_weight):
    r"""Weighted batch cost :math:`C = \sum_i w_i c_i`, accumulated in float64.

    Parameters
    ----------
    A, Y : arrays of shape (n_samples, n_outputs)
        Output activations and targets.
    loss : int
        Loss code.
    row_weight : array of shape (n_samples,)
        :math:`w_i`; ``1/n`` for every row gives the mean cost.

    Returns
    -------
    float
    """
    n, m = A.shape
    tiny = TINY32 if A.itemsize == 4 else TINY64
    total = 0.0
    for i in range(n):
        c = 0.0
        if loss == MSE:
            for j in range(m):
                d = float(A[i, j]) - float(Y[i, j])
                c += 0.5 * d * d
        elif loss == CROSS_ENTROPY:
            for j in range(m):
                y = float(Y[i, j])
                if y != 0.0:
                    c -= y * _safe_log(float(A[i, j]), tiny)
        else:
            for j in range(m):
                y = float(Y[i, j])
                a = float(A[i, j])
                if y != 0.0:
                    c -= y * _safe_log(a, tiny)
                if y != 1.0:
                    c -= (1.0 - y) * _safe_log(1.0 - a, tiny)
        total += float(row_weight[i]) * c
    return total


@jit
def batch_cost_logits(Z, Y, loss, row_weight):
    r"""Weighted batch cost of a natural pair, computed from the output logits.

    For softmax with cross-entropy,
    :math:`c = \sum_j y_j (\operatorname{lse}(z) - z_j)` with
    :math:`\operatorname{lse}(z) = m + \log \sum_k e^{z_k - m}`, :math:`m = \max_k z_k`;
    for sigmoid with binary cross-entropy,
    :math:`c = \sum_j [\max(z_j, 0) - y_j z_j + \log(1 + e^{-|z_j|})]`.
    Both equal :func:`batch_cost` of :math:`a = \sigma(z)` wherever that is
    representable, but they never clip: logits of ±1e4 give costs near 1e4,
    not the ``-log(tiny)`` (708 in float64, 87 in float32) at which a cost
    computed from saturated activations stops.  Accumulated in float64.

    Parameters
    ----------
    Z : array of shape (n_samples, n_outputs)
        Output pre-activations :math:`Z^L`.
    Y : array of shape (n_samples, n_outputs)
        Targets.
    loss : int
        ``CROSS_ENTROPY`` (softmax outputs) or ``BINARY_CROSS_ENTROPY``
        (sigmoid outputs).
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
        else:
            for j in range(m):
                z = float(Z[i, j])
                y = float(Y[i, j])
                c += (z if z > 0.0 else 0.0) - y * z + np.log1p(np.exp(-abs(z)))
        total += float(row_weight[i]) * c
    return total


@jit
def output_cost(Z, A, Y, loss, act, row_weight):
    """Weighted batch cost: from the logits ``Z`` for a natural pair, from ``A`` otherwise.

    Parameters are those of :func:`batch_cost` and :func:`batch_cost_logits`;
    ``act`` is the output activation code.
    """
    if is_simplified(loss, act):
        return batch_cost_logits(Z, Y, loss, row_weight)
    return batch_cost(A, Y, loss, row_weight)


@jit
def cost_gradient(A, Y, loss, out):
    r"""Gradient of the per-sample cost with respect to the output, ``∂c/∂a``.

    ===========================  =======================================
    ``MSE``                      :math:`a - y`
    ``CROSS_ENTROPY``            :math:`-y / a`
    ``BINARY_CROSS_ENTROPY``     :math:`-y / a + (1 - y) / (1 - a)`
    ===========================  =======================================

    Denominators are clipped at the dtype's smallest normal number.

    Parameters
    ----------
    A, Y : arrays of shape (n_samples, n_outputs)
    loss : int
    out : array of shape (n_samples, n_outputs)
    """
    n, m = A.shape
    tiny = TINY32 if A.itemsize == 4 else TINY64
    for i in range(n):
        for j in range(m):
            a = A[i, j]
            y = Y[i, j]
            if loss == MSE:
                out[i, j] = a - y
            elif loss == CROSS_ENTROPY:
                out[i, j] = -y / (a if a > tiny else tiny)
            else:
                p = a if a > tiny else tiny
                q = 1.0 - a
                q = q if q > tiny else tiny
                out[i, j] = -y / p + (1.0 - y) / q


@jit
def output_delta_chain(A, Y, loss, act, row_weight, out):
    r"""Output delta by the general chain rule, rows scaled by ``row_weight``.

    :math:`\delta^L_i = w_i \, (\partial c/\partial a^L) \odot \sigma_L'(z^L)`
    (for softmax, the Jacobian-vector product instead of ⊙).

    Parameters
    ----------
    A, Y : arrays of shape (n_samples, n_outputs)
        Output activations and targets.
    loss, act : int
        Loss code and output activation code.
    row_weight : array of shape (n_samples,)
        :math:`w_i` (``1/n`` for a plain batch mean).
    out : array of shape (n_samples, n_outputs)
        Filled with the scaled output delta.
    """
    cost_gradient(A, Y, loss, out)
    backprop_inplace(out, A, act)
    n, m = A.shape
    for i in range(n):
        w = row_weight[i]
        for j in range(m):
            out[i, j] *= w


@jit
def output_delta_simplified(A, Y, loss, row_weight, out):
    r"""Output delta in the simplified form :math:`\delta^L_i = w_i (a^L_i - y_i)`.

    Exact for sigmoid with binary cross-entropy.  For softmax with
    cross-entropy the exact delta is :math:`w_i (a^L_i \sum_k y_{ik} - y_i)`,
    which is :math:`w_i (a^L_i - y_i)` whenever the target row sums to 1 (one-hot
    labels); the row sum is kept so that soft or unnormalised targets still get
    the exact gradient.  This is also the numerically stable way: no division
    by an activation.

    Parameters
    ----------
    A, Y : arrays of shape (n_samples, n_outputs)
    loss : int
        ``CROSS_ENTROPY`` or ``BINARY_CROSS_ENTROPY``.
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


@jit
def is_simplified(loss, act):
    """Whether ``(loss, act)`` is a pair whose output delta is ``A - Y``."""
    return (loss == CROSS_ENTROPY and act == SOFTMAX) or (
        loss == BINARY_CROSS_ENTROPY and act == SIGMOID
    )


@jit
def output_delta(A, Y, loss, act, row_weight, out):
    """Output delta, simplified where the pair allows it, chain rule otherwise.

    Parameters are those of :func:`output_delta_chain`.
    """
    if is_simplified(loss, act):
        output_delta_simplified(A, Y, loss, row_weight, out)
    else:
        output_delta_chain(A, Y, loss, act, row_weight, out)
