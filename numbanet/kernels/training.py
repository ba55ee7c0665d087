r"""Whole-network kernels: forward over a data set, batch cost, gradients, and
the jitted training loop.

A network is described to these kernels by plain arrays, never by objects:

``theta`` : array of shape (n_params,)
    Every parameter, layer after layer: ``W^1`` (row-major, shape
    ``(n_1, n_0)``), ``b^1``, ``W^2``, ``b^2``, ...
``sizes`` : int64 array of shape (L + 1,)
    Layer widths, input first.
``w_off``, ``b_off`` : int64 arrays of shape (L,)
    Where each ``W`` and ``b`` starts in ``theta``.
``acts`` : int64 array of shape (L,)
    Activation code of each weighted layer.

Work buffers live in one flat array ``ws`` laid out by :func:`workspace_size`
for a given batch capacity; the mini-batch loop allocates nothing.

The loop over every mini-batch of an epoch -- and over many epochs when Python
needs no say between them -- runs in :func:`train_epochs`, one jitted call.
"""

import numpy as np

from numbanet._jit import jit
from numbanet.kernels.activations import derivative_scalar
from numbanet.kernels.dense import forward, hidden_delta, layer_gradients, matmul_nn
from numbanet.kernels.losses import batch_cost, output_delta
from numbanet.kernels.rng import shuffle as rng_shuffle
from numbanet.kernels.rng import uniform
from numbanet.kernels.updates import clip_by_global_norm, update

OK = 0
DIVERGED = 1


@jit
def matrix(flat, off, rows, cols):
    """View ``flat[off : off + rows * cols]`` as a C-ordered ``(rows, cols)`` matrix."""
    return flat[off : off + rows * cols].reshape((rows, cols))


@jit
def workspace_size(sizes, cap):
    """Length of the flat work buffer for batches of at most ``cap`` rows.

    It holds, for ``cap`` rows: every layer's activations ``A^0 .. A^L``
    (``A^0`` is the gathered input batch), the target batch, the row weights,
    two delta buffers as wide as the widest layer (used alternately going
    backwards) and the dropout masks of the hidden layers.
    """
    L = sizes.size - 1
    widest = 0
    total = 0
    for l in range(L + 1):
        total += cap * sizes[l]
        if sizes[l] > widest:
            widest = sizes[l]
        if 0 < l < L:
            total += cap * sizes[l]  # dropout mask
    return total + cap * sizes[L] + cap + 2 * cap * widest


@jit
def param_views(theta, sizes, w_off, b_off):
    """Lists of ``W^l`` (shape ``(sizes[l+1], sizes[l])``) and ``b^l`` views into ``theta``."""
    L = sizes.size - 1
    Ws = [matrix(theta, w_off[0], sizes[1], sizes[0])]
    bs = [theta[b_off[0] : b_off[0] + sizes[1]]]
    for l in range(1, L):
        Ws.append(matrix(theta, w_off[l], sizes[l + 1], sizes[l]))
        bs.append(theta[b_off[l] : b_off[l] + sizes[l + 1]])
    return Ws, bs


@jit
def work_views(ws, sizes, cap):
    """Views into the work buffer laid out as :func:`workspace_size` describes.

    Returns
    -------
    As : list of L + 1 matrices (cap, sizes[l])
        Activations; ``As[0]`` receives the input batch.
    Ds : list of L matrices (cap, sizes[l+1])
        Deltas; consecutive layers alternate between two buffers.
    Ms : list of L matrices
        Dropout masks of hidden layers ``Ms[l]`` for l < L - 1 (the entry for
        the output layer is unused).
    Yb : matrix (cap, sizes[L])
        Target batch.
    rw : vector (cap,)
        Row weights.

    Slicing rows (``As[l][:m]``) gives the views of a smaller batch, still
    C-contiguous; building views costs a reshape, so it happens once per call.
    """
    L = sizes.size - 1
    widest = 0
    for l in range(L + 1):
        if sizes[l] > widest:
            widest = sizes[l]
    pos = 0
    As = [matrix(ws, pos, cap, sizes[0])]
    pos += cap * sizes[0]
    for l in range(1, L + 1):
        As.append(matrix(ws, pos, cap, sizes[l]))
        pos += cap * sizes[l]
    Ms = [matrix(ws, pos, cap, sizes[1])]
    pos += cap * sizes[1] if L > 1 else 0
    for l in range(1, L):
        if l < L - 1:
            Ms.append(matrix(ws, pos, cap, sizes[l + 1]))
            pos += cap * sizes[l + 1]
        else:
            Ms.append(Ms[0])
    Yb = matrix(ws, pos, cap, sizes[L])
    pos += cap * sizes[L]
    rw = ws[pos : pos + cap]
    pos += cap
    d0 = pos
    d1 = pos + cap * widest
    Ds = [matrix(ws, d0, cap, sizes[1])]
    for l in range(1, L):
        Ds.append(matrix(ws, d0 if (L - 1 - l) % 2 == 0 else d1, cap, sizes[l + 1]))
    if (L - 1) % 2 != 0:
        Ds[0] = matrix(ws, d1, cap, sizes[1])
    return As, Ds, Ms, Yb, rw


@jit
def forward_batch(Ws, bs, acts, As, m, dropout, Ms, rng):
    """Forward pass of the first ``m`` rows, whose input is already in ``As[0]``.

    With ``dropout > 0`` (training only) each hidden activation is zeroed with
    probability ``dropout`` and the survivors scaled by ``1 / (1 - dropout)``
    (inverted dropout); the factors (0 or ``1/(1-p)``) are kept in ``Ms`` for
    the backward pass.  One uniform is drawn from ``rng`` (see
    :mod:`numbanet.kernels.rng`) per hidden unit, layer by layer, row by row.
    """
    L = len(Ws)
    for l in range(L):
        A = As[l + 1][:m]
        forward(As[l][:m], Ws[l], bs[l], acts[l], A)
        if dropout > 0.0 and l < L - 1:
            M = Ms[l][:m]
            scale = A.dtype.type(1.0 / (1.0 - dropout))
            n_out = A.shape[1]
            for i in range(m):
                for j in range(n_out):
                    if uniform(rng) < dropout:
                        M[i, j] = 0.0
                        A[i, j] = 0.0
                    else:
                        M[i, j] = scale
                        A[i, j] *= scale


@jit
def backward_batch(Ws, dWs, dbs, acts, loss, As, Ds, Yb, rw, m, dropout, Ms):
    """Backward pass of ``m`` rows after :func:`forward_batch`; fills ``dWs``, ``dbs``.

    The output delta carries the row weights ``rw``, so the gradients are the
    weighted mean over the batch.
    """
    L = len(Ws)
    delta = Ds[L - 1][:m]
    output_delta(As[L][:m], Yb[:m], loss, acts[L - 1], rw[:m], delta)
    for l in range(L - 1, -1, -1):
        A_prev = As[l][:m]
        layer_gradients(delta, A_prev, dWs[l], dbs[l])
        if l == 0:
            break
        nxt = Ds[l - 1][:m]
        if dropout > 0.0:
            M = Ms[l - 1][:m]
            matmul_nn(delta, Ws[l], nxt)
            keep = 1.0 - dropout
            code = acts[l - 1]
            n_in = nxt.shape[1]
            for i in range(m):
                for j in range(n_in):
                    s = M[i, j]
                    if s == 0.0:
                        nxt[i, j] = 0.0
                    else:
                        # A holds s * σ(z); σ'(z) is a function of σ(z) = A * keep.
                        nxt[i, j] *= s * derivative_scalar(A_prev[i, j] * keep, code)
        else:
            hidden_delta(delta, Ws[l], A_prev, acts[l - 1], nxt)
        delta = nxt


@jit
def add_l2_gradient(theta, grad, sizes, w_off, l2):
    """``grad += l2 * W`` for every weight (not the biases)."""
    L = sizes.size - 1
    lam = theta.dtype.type(l2)
    for l in range(L):
        start = w_off[l]
        for k in range(start, start + sizes[l + 1] * sizes[l]):
            grad[k] += lam * theta[k]


@jit
def l2_penalty(theta, sizes, w_off, l2):
    r"""The L2 term :math:`\tfrac{\lambda}{2} \sum_l \|W^l\|_F^2` (biases excluded)."""
    if l2 == 0.0:
        return 0.0
    L = sizes.size - 1
    s = 0.0
    for l in range(L):
        start = w_off[l]
        for k in range(start, start + sizes[l + 1] * sizes[l]):
            t = float(theta[k])
            s += t * t
    return 0.5 * l2 * s


@jit
def _gather(X, Y, sw, idx, start, m, A0, Yb, rw):
    """Copy rows ``idx[start:start+m]`` of X and Y into the batch buffers and
    set the row weights to ``sw_i / sum(sw)``.  Returns ``sum(sw)``."""
    n_in = X.shape[1]
    n_out = Y.shape[1]
    total = 0.0
    for i in range(m):
        r = idx[start + i]
        for j in range(n_in):
            A0[i, j] = X[r, j]
        for j in range(n_out):
            Yb[i, j] = Y[r, j]
        total += sw[r]
    # Divide, not multiply by 1/total: 1/total overflows for subnormal totals.
    for i in range(m):
        rw[i] = sw[idx[start + i]] / total if total > 0 else 0.0
    return total


@jit
def predict(theta, sizes, w_off, b_off, acts, X, ws, cap, out):
    """Output activations for every row of ``X``, in chunks of ``cap`` rows.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    ws : work buffer of length ``workspace_size(sizes, cap)``
    out : array of shape (n_samples, n_outputs)
        Filled with the network's outputs.
    """
    Ws, bs = param_views(theta, sizes, w_off, b_off)
    As, Ds, Ms, Yb, rw = work_views(ws, sizes, cap)
    n = X.shape[0]
    L = sizes.size - 1
    for start in range(0, n, cap):
        m = min(cap, n - start)
        As[0][:m] = X[start : start + m]
        forward_batch(Ws, bs, acts, As, m, 0.0, Ms, np.zeros(1, np.uint64))
        out[start : start + m] = As[L][:m]


@jit
def cost_and_gradient(theta, sizes, w_off, b_off, acts, loss, l2, X, Y, sw, ws, cap, grad, want_grad):
    r"""Weighted mean cost of the whole data set and, optionally, its exact gradient.

    :math:`C = \sum_i s_i c_i / \sum_i s_i + \tfrac{\lambda}{2}\sum_l \|W^l\|^2`,
    processed in chunks of ``cap`` rows; the gradient of ``C`` is accumulated
    into ``grad`` (length n_params) when ``want_grad``.  Dropout is off.

    Returns
    -------
    float
        The cost.
    """
    Ws, bs = param_views(theta, sizes, w_off, b_off)
    As, Ds, Ms, Yb, rw = work_views(ws, sizes, cap)
    n = X.shape[0]
    L = sizes.size - 1
    n_params = theta.size
    swsum = 0.0
    for i in range(n):
        swsum += sw[i]
    cost = 0.0
    part = np.empty(n_params if want_grad else 0, dtype=theta.dtype)
    if want_grad:
        for k in range(n_params):
            grad[k] = 0.0
        dWs, dbs = param_views(part, sizes, w_off, b_off)
    for start in range(0, n, cap):
        m = min(cap, n - start)
        As[0][:m] = X[start : start + m]
        Yb[:m] = Y[start : start + m]
        for i in range(m):
            rw[i] = sw[start + i] / swsum if swsum > 0 else 0.0
        forward_batch(Ws, bs, acts, As, m, 0.0, Ms, np.zeros(1, np.uint64))
        cost += batch_cost(As[L][:m], Yb[:m], loss, rw[:m])
        if want_grad:
            backward_batch(Ws, dWs, dbs, acts, loss, As, Ds, Yb, rw, m, 0.0, Ms)
            for k in range(n_params):
                grad[k] += part[k]
    if l2 != 0.0:
        cost += l2_penalty(theta, sizes, w_off, l2)
        if want_grad:
            add_l2_gradient(theta, grad, sizes, w_off, l2)
    return cost


@jit
def _all_finite(v):
    for k in range(v.size):
        if not np.isfinite(v[k]):
            return False
    return True


@jit
def train_epochs(
    theta,
    grad,
    state,
    opt_code,
    hyper,
    t,
    lrs,
    sizes,
    w_off,
    b_off,
    acts,
    loss,
    l2,
    dropout,
    clip,
    X,
    Y,
    sw,
    order,
    shuffle,
    batch_size,
    rng,
    ws,
    backup,
    epoch_losses,
    info,
):
    """Run ``lrs.size`` epochs of mini-batch training in one call.

    Each epoch optionally shuffles ``order`` (in place, from Numba's generator
    drawn from ``rng``), then for every mini-batch
    (the last one may be smaller): gather the rows, forward, weighted mean
    cost, backward, add the L2 gradient, clip by global norm (``clip > 0``),
    and one optimizer step.

    Parameters
    ----------
    theta, grad : arrays of shape (n_params,)
        Parameters (updated in place) and gradient buffer.
    state : array of shape (2, n_params)
        Optimizer state, updated in place.
    opt_code : int
        Optimizer code (:mod:`numbanet.kernels.updates`).
    hyper : float64 array of shape (N_HYPER,)
        Optimizer hyper-parameters.
    t : int
        Number of optimizer steps taken before this call.
    lrs : float64 array of shape (n_epochs,)
        Learning rate of each epoch of this call.
    sizes, w_off, b_off, acts : int64 arrays
        The network's layout.
    loss : int
        Loss code.
    l2, dropout, clip : float
        L2 coefficient, dropout probability on hidden layers, clipping norm
        (0 disables).
    X : array of shape (n_samples, n_features)
    Y : array of shape (n_samples, n_outputs)
    sw : float64 array of shape (n_samples,)
        Sample weights (ones for unweighted training).
    order : int64 array of shape (n_samples,)
        Row order, shuffled in place each epoch when ``shuffle``.
    shuffle : bool
    batch_size : int
    rng : uint64 array of shape (1,)
        State of the generator for shuffling and dropout masks
        (:mod:`numbanet.kernels.rng`), advanced in place, so that a run split
        into several calls draws the same numbers as one call.
    ws : array
        Work buffer of length ``workspace_size(sizes, batch_size)``.
    backup : array of shape (3 * n_params,)
        Start-of-epoch copy of ``theta`` and ``state`` for divergence recovery.
    epoch_losses : float64 array of shape (n_epochs,)
        Filled with each epoch's training cost: the weighted mean, over the
        samples, of the cost of each sample's batch measured before that
        batch's update (plus the L2 term).
    info : int64 array of shape (3,)
        On return ``[status, epoch, batch]``: ``status`` is ``OK`` or
        ``DIVERGED``; on divergence, the 0-based epoch (within this call) and
        batch where the cost or the parameters stopped being finite.
        ``theta`` and ``state`` are then restored to the start of that epoch.

    Returns
    -------
    int
        The number of optimizer steps taken in total (``t`` plus this call's;
        after divergence, the count at the start of the restored epoch).
    """
    Ws, bs = param_views(theta, sizes, w_off, b_off)
    dWs, dbs = param_views(grad, sizes, w_off, b_off)
    As, Ds, Ms, Yb, rw = work_views(ws, sizes, batch_size)
    n = X.shape[0]
    L = sizes.size - 1
    P = theta.size
    swtotal = 0.0
    for i in range(n):
        swtotal += sw[i]
    info[0] = OK
    info[1] = 0
    info[2] = 0
    for e in range(lrs.size):
        lr = lrs[e]
        t_start = t
        for k in range(P):
            backup[k] = theta[k]
            backup[P + k] = state[0, k]
            backup[2 * P + k] = state[1, k]
        if shuffle:
            rng_shuffle(order, rng)
        acc = 0.0
        batch = 0
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            wsum = _gather(X, Y, sw, order, start, m, As[0], Yb, rw)
            forward_batch(Ws, bs, acts, As, m, dropout, Ms, rng)
            c = batch_cost(As[L][:m], Yb[:m], loss, rw[:m])
            if l2 != 0.0:
                c += l2_penalty(theta, sizes, w_off, l2)
            if not np.isfinite(c):
                info[0] = DIVERGED
                info[1] = e
                info[2] = batch
                break
            acc += wsum * c
            if wsum > 0:
                backward_batch(Ws, dWs, dbs, acts, loss, As, Ds, Yb, rw, m, dropout, Ms)
                if l2 != 0.0:
                    add_l2_gradient(theta, grad, sizes, w_off, l2)
                if clip > 0.0:
                    clip_by_global_norm(grad, clip)
                t += 1
                update(opt_code, theta, grad, state, hyper, lr, t)
            batch += 1
        if info[0] == OK and not _all_finite(theta):
            info[0] = DIVERGED
            info[1] = e
            info[2] = batch - 1
        if info[0] != OK:
            for k in range(P):
                theta[k] = backup[k]
                state[0, k] = backup[P + k]
                state[1, k] = backup[2 * P + k]
            return t_start
        epoch_losses[e] = acc / swtotal if swtotal > 0 else 0.0
    return t
