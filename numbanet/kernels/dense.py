r"""Dense-layer kernels: forward step, hidden delta, parameter gradients, input delta.

In batch form (one sample per row), docs/derivation.md ("Batch form") reads

.. math::

    Z^l = A^{l-1} (W^l)^T + b^l, \qquad A^l = \sigma_l(Z^l)

    \Delta^l = (\Delta^{l+1} W^{l+1}) \odot \sigma_l'(Z^l)

    \partial C / \partial W^l = (\Delta^l)^T A^{l-1}, \qquad
    \partial C / \partial b^l = \textstyle\sum_{\text{rows}} \Delta^l

where the rows of :math:`\Delta` already carry the batch weights
:math:`w_i` (``1/n`` for the mean; see :mod:`numbanet.kernels.losses`), so the
sums above *are* the batch means :math:`(1/n)(\Delta^l)^T A^{l-1}` of the
textbook.

Matrix products go to BLAS through :func:`numbanet.kernels.blas.gemm` (SciPy's
BLAS, as Numba's ``np.dot`` uses) -- except tiny ones (at most ``SMALL`` multiply-adds), where the
fixed cost of a BLAS call (argument checks, dispatch, threading decisions)
exceeds the arithmetic, and a plain loop in the kernel is several times
faster.  Everything else is fused into single passes over the output.
"""

from numbanet._jit import jit, jit_inline
from numbanet.kernels.activations import backprop_inplace, bias_activate
from numbanet.kernels.blas import gemm

#: Products of at most this many multiply-adds are done by loops, not BLAS.
SMALL = 4096


@jit
def matmul_nt(A, B, out):
    """``out = A @ B.T`` for A (n, k), B (m, k); BLAS unless tiny."""
    n, k = A.shape
    m = B.shape[0]
    if n * k * m > SMALL:
        gemm(A, B, out, False, True, 1.0, 0.0)
        return
    for i in range(n):
        for j in range(m):
            s = 0.0
            for p in range(k):
                s += A[i, p] * B[j, p]
            out[i, j] = s


@jit
def matmul_nn(A, B, out):
    """``out = A @ B`` for A (n, k), B (k, m); BLAS unless tiny."""
    n, k = A.shape
    m = B.shape[1]
    if n * k * m > SMALL:
        gemm(A, B, out, False, False, 1.0, 0.0)
        return
    for i in range(n):
        for j in range(m):
            out[i, j] = 0.0
        for p in range(k):
            a = A[i, p]
            for j in range(m):
                out[i, j] += a * B[p, j]


@jit
def matmul_tn(A, B, out):
    """``out = A.T @ B`` for A (n, k), B (n, m); BLAS unless tiny."""
    n, k = A.shape
    m = B.shape[1]
    if n * k * m > SMALL:
        gemm(A, B, out, True, False, 1.0, 0.0)
        return
    for p in range(k):
        for j in range(m):
            out[p, j] = 0.0
    for i in range(n):
        for p in range(k):
            a = A[i, p]
            for j in range(m):
                out[p, j] += a * B[i, j]


@jit
def linear(A_prev, W, b, out):
    r"""Pre-activations :math:`Z = A W^T + b`.

    Parameters
    ----------
    A_prev : array of shape (n_samples, n_in), float32 or float64, C-contiguous
        Activations of the previous layer.
    W : array of shape (n_out, n_in), same dtype
        Weights, outputs by inputs.
    b : array of shape (n_out,), same dtype
        Bias.
    out : array of shape (n_samples, n_out), same dtype, C-contiguous
        Filled with Z.
    """
    matmul_nt(A_prev, W, out)
    n, m = out.shape
    for i in range(n):
        for j in range(m):
            out[i, j] += b[j]


@jit_inline
def forward(A_prev, W, b, act, k, fns, out):
    r"""One layer forward: :math:`A = \sigma(A_{prev} W^T + b)`.

    The product is one BLAS call; bias and activation are fused into one pass.

    Parameters
    ----------
    A_prev : array of shape (n_samples, n_in)
    W : array of shape (n_out, n_in)
    b : array of shape (n_out,)
    act : int
        Activation code.
    k : int
        The layer's index among the custom activations (``CUSTOM`` only).
    fns : tuple of 4 ints
        Addresses of the custom callbacks (:mod:`numbanet.kernels.pieces`).
    out : array of shape (n_samples, n_out)
        Filled with the layer's activations.
    """
    matmul_nt(A_prev, W, out)
    bias_activate(out, b, act, k, fns)


@jit_inline
def hidden_delta(delta_next, W_next, A, Z, act, k, fns, a_scale, out):
    r"""Hidden delta :math:`\Delta^l = (\Delta^{l+1} W^{l+1}) \odot \sigma_l'(Z^l)`.

    Parameters
    ----------
    delta_next : array of shape (n_samples, n_next)
        :math:`\Delta^{l+1}`.
    W_next : array of shape (n_next, n_l)
        :math:`W^{l+1}`.
    A : array of shape (n_samples, n_l)
        :math:`A^l = \sigma_l(Z^l)` (times ``1 / a_scale``).
    Z : array of shape (n_samples, n_l)
        :math:`Z^l`, read only when σ' needs it (pass ``A`` otherwise).
    act, k, fns
        Activation code of layer l (element-wise; softmax is output-only),
        its custom index, the custom callbacks.
    a_scale : float
        1, or ``1 - p`` when ``A`` holds inverted dropout's scaled activations.
    out : array of shape (n_samples, n_l)
        Filled with :math:`\Delta^l` (before any dropout mask).
    """
    matmul_nn(delta_next, W_next, out)
    backprop_inplace(out, A, Z, act, k, fns, a_scale)


@jit_inline
def input_delta(delta1, W1, out):
    r"""Gradient with respect to the input: :math:`\Delta^0 = \Delta^1 W^1`.

    The hidden-delta recursion taken one step further, to the input layer,
    which has no activation (so no :math:`\odot \sigma'`); row i is
    :math:`(W^1)^T \delta^1_i = \partial f / \partial x_i` when
    :math:`\Delta^1` holds :math:`\partial f / \partial Z^1`
    (:mod:`numbanet.kernels.explain`).

    Parameters
    ----------
    delta1 : array of shape (n_samples, n_1)
        :math:`\Delta^1`.
    W1 : array of shape (n_1, n_0)
        :math:`W^1`.
    out : array of shape (n_samples, n_0)
        Filled with :math:`\Delta^0`.
    """
    matmul_nn(delta1, W1, out)


@jit_inline
def layer_gradients(delta, A_prev, dW, db):
    r"""Parameter gradients of one layer from its delta.

    :math:`dW = \Delta^T A_{prev}` (one BLAS call) and :math:`db = \sum_{rows} \Delta`.
    The rows of ``delta`` carry the batch weights, so these are batch means.

    Parameters
    ----------
    delta : array of shape (n_samples, n_out)
    A_prev : array of shape (n_samples, n_in)
    dW : array of shape (n_out, n_in)
        Filled with the weight gradient.
    db : array of shape (n_out,)
        Filled with the bias gradient.
    """
    matmul_tn(delta, A_prev, dW)
    n, m = delta.shape
    for j in range(m):
        db[j] = 0.0
    for i in range(n):
        for j in range(m):
            db[j] += delta[i, j]


@jit
def sgd_layer(delta, A_prev, W, b, db, lr):
    r"""Plain SGD's step on one layer straight from its delta, the weight product folded in.

    With ``eta = lr`` in the parameters' dtype this is :func:`layer_gradients`
    followed by :func:`numbanet.kernels.updates.sgd_step` on the layer,
    :math:`W \leftarrow W - \eta\,\Delta^T A_{prev}`, :math:`b \leftarrow b - \eta\,db`,
    but the weight gradient is never stored: one BLAS call with ``alpha = -eta``
    and ``beta = 1`` adds :math:`-\eta\,\Delta^T A_{prev}` to ``W`` (BLAS rounds
    once where the two steps round twice).  The bias goes through ``db`` and
    the same ``theta -= eta * g`` as ``sgd_step``, bit for bit.

    The training loop folds the step only when every layer's product is above
    ``SMALL``; tiny products are faster as loops followed by the update kernel.
    Not inlined: a copy of it in the training loop's code would lengthen the
    time LLVM spends optimising that loop.

    Parameters
    ----------
    delta : array of shape (n_samples, n_out)
    A_prev : array of shape (n_samples, n_in)
    W : array of shape (n_out, n_in)
        Updated in place.
    b : array of shape (n_out,)
        Updated in place.
    db : array of shape (n_out,)
        Filled with the bias gradient.
    lr : float
        Learning rate.
    """
    eta = W.dtype.type(lr)
    gemm(delta, A_prev, W, True, False, -eta, 1.0)
    n, m = delta.shape
    for j in range(m):
        db[j] = 0.0
    for i in range(n):
        for j in range(m):
            db[j] += delta[i, j]
    for j in range(m):
        b[j] -= eta * db[j]


@jit
def fold_rows(sizes):
    """Return the fewest rows of a batch for which every layer's weight product is above ``SMALL``."""
    most = 0
    for l in range(sizes.size - 1):
        most = max(most, SMALL // (sizes[l] * sizes[l + 1]) + 1)
    return most
