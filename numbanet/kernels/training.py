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
for a given batch capacity; the mini-batch loop allocates nothing.  A buffer
belongs to one call at a time (the caller owns it), so concurrent calls never
share one.

Training runs in time slices: :func:`train_slice` runs at most a given number
of mini-batches -- across epoch ends, or stopping at the next one -- and keeps
its exact position (epoch, batch, optimizer step, the epoch's row order and
running cost) in arrays it updates in place, so that the next call continues
exactly where this one stopped.  Python sees the loop between slices (signals,
progress, callbacks) and never inside one.
"""

import numpy as np

from numbanet._jit import jit
from numbanet.kernels.activations import activate, derivative_scalar
from numbanet.kernels.dense import forward, hidden_delta, layer_gradients, linear, matmul_nn
from numbanet.kernels.losses import is_simplified, output_cost, output_delta
from numbanet.kernels.rng import shuffle as rng_shuffle
from numbanet.kernels.rng import uniform
from numbanet.kernels.updates import clip_by_global_norm, update

OK = 0
DIVERGED = 1

# Entries of the int64 position array ``pos`` of :func:`train_slice`.
POS_EPOCH = 0  # epochs of the run completed
POS_BATCH = 1  # next mini-batch of the current epoch (0: the epoch has not started)
POS_T = 2  # optimizer steps taken in total
POS_T0 = 3  # optimizer steps at the start of the current epoch
POS_STATUS = 4  # OK or DIVERGED
POS_BAD_EPOCH = 5  # on divergence: the run's epoch ...
POS_BAD_BATCH = 6  # ... and the batch where it happened
POS_SAMPLES = 7  # rows processed by the run (every mini-batch, the partial epoch included)
POS_DONE = 8  # mini-batches run by the last call
POS_SAMPLES0 = 9  # rows processed at the start of the current epoch
N_POS = 10


@jit
def matrix(flat, off, rows, cols):
    """View ``flat[off : off + rows * cols]`` as a C-ordered ``(rows, cols)`` matrix."""
    return flat[off : off + rows * cols].reshape((rows, cols))


@jit
def _widest_delta(sizes):
    """Width of the widest weighted layer (deltas never reach the input layer)."""
    widest = 0
    for l in range(1, sizes.size):
        if sizes[l] > widest:
            widest = sizes[l]
    return widest


@jit
def workspace_size(sizes, cap):
    """Length of the flat work buffer for batches of at most ``cap`` rows.

    It holds, for ``cap`` rows: every layer's activations ``A^0 .. A^L``
    (``A^0`` is the gathered input batch), the output pre-activations ``Z^L``,
    the target batch, the row weights, two delta buffers as wide as the widest
    weighted layer (used alternately going backwards) and the dropout masks of
    the hidden layers.
    """
    L = sizes.size - 1
    total = 0
    for l in range(L + 1):
        total += cap * sizes[l]
        if 0 < l < L:
            total += cap * sizes[l]  # dropout mask
    return total + 2 * cap * sizes[L] + cap + 2 * cap * _widest_delta(sizes)


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
    ZL : matrix (cap, sizes[L])
        Output pre-activations (the cost of softmax and sigmoid outputs is
        computed from them).

    Slicing rows (``As[l][:m]``) gives the views of a smaller batch, still
    C-contiguous; building views costs a reshape, so it happens once per call.
    """
    L = sizes.size - 1
    widest = _widest_delta(sizes)
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
    ZL = matrix(ws, pos, cap, sizes[L])
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
    return As, Ds, Ms, Yb, rw, ZL


@jit
def forward_batch(Ws, bs, acts, As, ZL, m, dropout, Ms, rng, keep_logits):
    """Forward pass of the first ``m`` rows, whose input is already in ``As[0]``.

    With ``keep_logits`` the output layer's pre-activations are kept in ``ZL``
    (the cost of a natural pair is computed from them); otherwise bias and
    activation are fused into the output buffer in one pass.

    With ``dropout > 0`` (training only) each hidden activation is zeroed with
    probability ``dropout`` and the survivors scaled by ``1 / (1 - dropout)``
    (inverted dropout); the factors (0 or ``1/(1-p)``) are kept in ``Ms`` for
    the backward pass.  One uniform is drawn from ``rng`` (see
    :mod:`numbanet.kernels.rng`) per hidden unit, layer by layer, row by row.
    """
    L = len(Ws)
    for l in range(L - 1):
        A = As[l + 1][:m]
        forward(As[l][:m], Ws[l], bs[l], acts[l], A)
        if dropout > 0.0:
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
    if keep_logits:
        Z = ZL[:m]
        linear(As[L - 1][:m], Ws[L - 1], bs[L - 1], Z)
        activate(Z, acts[L - 1], As[L][:m])
    else:
        forward(As[L - 1][:m], Ws[L - 1], bs[L - 1], acts[L - 1], As[L][:m])


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
    As, Ds, Ms, Yb, rw, ZL = work_views(ws, sizes, cap)
    n = X.shape[0]
    L = sizes.size - 1
    no_rng = np.zeros(1, np.uint64)
    for start in range(0, n, cap):
        m = min(cap, n - start)
        As[0][:m] = X[start : start + m]
        forward_batch(Ws, bs, acts, As, ZL, m, 0.0, Ms, no_rng, False)
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
    As, Ds, Ms, Yb, rw, ZL = work_views(ws, sizes, cap)
    n = X.shape[0]
    L = sizes.size - 1
    n_params = theta.size
    no_rng = np.zeros(1, np.uint64)
    logits = is_simplified(loss, acts[L - 1])
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
        forward_batch(Ws, bs, acts, As, ZL, m, 0.0, Ms, no_rng, logits)
        cost += output_cost(ZL[:m], As[L][:m], Yb[:m], loss, acts[L - 1], rw[:m])
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
def train_slice(
    theta,
    grad,
    state,
    opt_code,
    hyper,
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
    sw_total,
    order,
    shuffle,
    batch_size,
    rng,
    ws,
    cap,
    backup,
    epoch_losses,
    pos,
    acc,
    max_batches,
    stop_at_epoch_end,
):
    """Run at most ``max_batches`` mini-batches of a training run, from the position in ``pos``.

    A run is ``lrs.size`` epochs.  An epoch starts (``pos[POS_BATCH] == 0``) by
    saving ``theta`` and ``state`` into ``backup`` and, when ``shuffle``,
    drawing a fresh permutation of ``arange(n)`` into ``order`` from ``rng``
    (so an epoch's order depends only on the generator, never on earlier
    epochs); then every mini-batch (the last may be smaller): gather the
    rows, forward, weighted mean cost, backward, add the L2 gradient, clip by
    global norm (``clip > 0``), and one optimizer step.  The call returns
    after ``max_batches`` mini-batches, at the end of the run, or -- with
    ``stop_at_epoch_end`` -- at the end of the current epoch, whichever comes
    first; calling it again with the same arrays continues exactly, so a run
    split into slices computes bit for bit what one call would.

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
    lrs : float64 array of shape (n_epochs,)
        Learning rate of each epoch of the run.
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
    sw_total : float
        ``sw.sum()``.
    order : int64 array of shape (n_samples,)
        Row order of the current epoch (``arange(n)`` without shuffling).
    shuffle : bool
    batch_size : int
    rng : uint64 array of shape (1,)
        State of the generator for shuffling and dropout masks
        (:mod:`numbanet.kernels.rng`), advanced in place.
    ws : array
        Work buffer of length ``workspace_size(sizes, cap)``.
    cap : int
        Rows the work buffer holds; at least ``batch_size``.
    backup : array of shape (3 * n_params,)
        Start-of-epoch copy of ``theta`` and ``state`` for divergence recovery.
    epoch_losses : float64 array of shape (n_epochs,)
        Filled, as each epoch ends, with its training cost: the weighted mean,
        over the samples, of the cost of each sample's batch measured before
        that batch's update (plus the L2 term).
    pos : int64 array of shape (N_POS,)
        The run's position, read and updated in place (the ``POS_*`` entries).
        On divergence ``pos[POS_STATUS]`` is ``DIVERGED``, ``POS_BAD_EPOCH``
        and ``POS_BAD_BATCH`` say where the cost or the parameters stopped
        being finite, and ``theta``, ``state``, ``pos[POS_T]`` and
        ``pos[POS_SAMPLES]`` are restored to the start of that epoch (``pos[POS_BATCH]`` is 0 again).
    acc : float64 array of shape (1,)
        Running weighted cost of the current epoch.
    max_batches : int
        The most mini-batches this call runs (at least 1).
    stop_at_epoch_end : bool
        Return once an epoch ends, so Python can do per-epoch work.
    """
    Ws, bs = param_views(theta, sizes, w_off, b_off)
    dWs, dbs = param_views(grad, sizes, w_off, b_off)
    As, Ds, Ms, Yb, rw, ZL = work_views(ws, sizes, cap)
    n = X.shape[0]
    L = sizes.size - 1
    P = theta.size
    n_batches = (n + batch_size - 1) // batch_size
    logits = is_simplified(loss, acts[L - 1])
    pos[POS_STATUS] = OK
    done = 0
    while pos[POS_EPOCH] < lrs.size and done < max_batches:
        e = pos[POS_EPOCH]
        b = pos[POS_BATCH]
        if b == 0:
            for k in range(P):
                backup[k] = theta[k]
                backup[P + k] = state[0, k]
                backup[2 * P + k] = state[1, k]
            pos[POS_T0] = pos[POS_T]
            pos[POS_SAMPLES0] = pos[POS_SAMPLES]
            acc[0] = 0.0
            if shuffle:
                for i in range(n):
                    order[i] = i
                rng_shuffle(order, rng)
        start = b * batch_size
        m = min(batch_size, n - start)
        wsum = _gather(X, Y, sw, order, start, m, As[0], Yb, rw)
        forward_batch(Ws, bs, acts, As, ZL, m, dropout, Ms, rng, logits)
        c = output_cost(ZL[:m], As[L][:m], Yb[:m], loss, acts[L - 1], rw[:m])
        if l2 != 0.0:
            c += l2_penalty(theta, sizes, w_off, l2)
        ok = np.isfinite(c)
        if ok:
            acc[0] += wsum * c
            if wsum > 0:
                backward_batch(Ws, dWs, dbs, acts, loss, As, Ds, Yb, rw, m, dropout, Ms)
                if l2 != 0.0:
                    add_l2_gradient(theta, grad, sizes, w_off, l2)
                if clip > 0.0:
                    clip_by_global_norm(grad, clip)
                pos[POS_T] += 1
                update(opt_code, theta, grad, state, hyper, lrs[e], pos[POS_T])
            pos[POS_SAMPLES] += m
            done += 1
            if b + 1 == n_batches:
                ok = _all_finite(theta)
        if not ok:
            for k in range(P):
                theta[k] = backup[k]
                state[0, k] = backup[P + k]
                state[1, k] = backup[2 * P + k]
            pos[POS_T] = pos[POS_T0]
            pos[POS_SAMPLES] = pos[POS_SAMPLES0]
            pos[POS_BATCH] = 0
            pos[POS_STATUS] = DIVERGED
            pos[POS_BAD_EPOCH] = e
            pos[POS_BAD_BATCH] = b
            break
        if b + 1 == n_batches:
            epoch_losses[e] = acc[0] / sw_total if sw_total > 0 else 0.0
            pos[POS_EPOCH] = e + 1
            pos[POS_BATCH] = 0
            if stop_at_epoch_end:
                break
        else:
            pos[POS_BATCH] = b + 1
    pos[POS_DONE] = done
