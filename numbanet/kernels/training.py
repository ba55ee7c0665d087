r"""Whole-network kernels: forward over a data set, batch cost, gradients, the training loop.

A network reaches these kernels as named bundles of plain arrays and
numbers (Numba namedtuples, so ``l2``, ``dropout`` and ``clip`` cannot be
swapped by position):

:class:`Model`
    ``theta`` (every parameter, layer after layer: ``W^1`` row-major of shape
    ``(n_1, n_0)``, ``b^1``, ``W^2``, ...), ``sizes`` (layer widths, input
    first), ``w_off``/``b_off`` (where each ``W`` and ``b`` starts in
    ``theta``), ``acts`` (activation code of each weighted layer), ``custom``
    (each layer's index among the custom activations, -1 for built-ins),
    ``loss`` (loss code), ``l2``, and ``fns`` (the custom callbacks,
    :mod:`numbanet.kernels.pieces`).
:class:`Data`
    ``X``, ``Y``, the sample weights ``sw`` and their sum.
:class:`Work`
    A flat work buffer ``ws`` laid out by :func:`workspace_size` for ``cap``
    rows; the mini-batch loop allocates nothing.  A buffer belongs to one call
    at a time (the caller owns it), so concurrent calls never share one.
:class:`Run`
    The optimizer and options of a training run and its mutable position.

One batch step -- forward, cost, backward -- is :func:`batch_step`, shared by
:func:`cost_and_gradient` and :func:`train_slice`; one forward path,
:func:`forward_batch`, serves prediction too.

Training runs in time slices: :func:`train_slice` runs at most a given number
of mini-batches -- across epoch ends, or stopping at the next one -- and keeps
its exact position (epoch, batch, optimizer step, the epoch's row order and
running cost) in arrays it updates in place, so that the next call continues
exactly where this one stopped.  Python sees the loop between slices (signals,
progress, callbacks) and never inside one.
"""

from collections import namedtuple

import numpy as np

from numbanet._jit import jit, jit_inline
from numbanet.kernels.activations import bias_activate, needs_z
from numbanet.kernels.dense import fold_rows, forward, hidden_delta, layer_gradients, matmul_nt, sgd_layer
from numbanet.kernels.losses import is_simplified, output_cost, output_delta
from numbanet.kernels.rng import shuffle as rng_shuffle
from numbanet.kernels.rng import uniform
from numbanet.kernels.updates import H_MOMENTUM, H_WEIGHT_DECAY, SGD, clip_by_global_norm, update

Model = namedtuple("Model", ["theta", "sizes", "w_off", "b_off", "acts", "custom", "loss", "l2", "fns"])
Data = namedtuple("Data", ["X", "Y", "sw", "sw_total"])
Work = namedtuple("Work", ["ws", "cap"])
Run = namedtuple(
    "Run",
    [
        "grad",
        "state",
        "opt_code",
        "hyper",
        "lrs",
        "dropout",
        "clip",
        "order",
        "shuffle",
        "batch_size",
        "rng",
        "backup",
        "epoch_losses",
        "pos",
        "acc",
    ],
)

OK = 0
DIVERGED = 1
BAD_INPUT = 2  # a gathered row of X holds NaN or ±inf (handled as DIVERGED, but not the optimizer's doing)

# Entries of the int64 position array ``Run.pos`` of :func:`train_slice`.
POS_EPOCH = 0  # epochs of the run completed
POS_BATCH = 1  # next mini-batch of the current epoch (0: the epoch has not started)
POS_T = 2  # optimizer steps taken in total
POS_T0 = 3  # optimizer steps at the start of the current epoch
POS_STATUS = 4  # OK, DIVERGED or BAD_INPUT
POS_BAD_EPOCH = 5  # on divergence or bad input: the run's epoch ...
POS_BAD_BATCH = 6  # ... and the batch where it happened
POS_SAMPLES = 7  # rows processed by the run (every mini-batch, the partial epoch included)
POS_DONE = 8  # mini-batches run by the last call
POS_SAMPLES0 = 9  # rows processed at the start of the current epoch
POS_BAD_ROW = 10  # on bad input: the row of X
N_POS = 11


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
    (``A^0`` is the gathered input batch), every weighted layer's
    pre-activations ``Z^1 .. Z^L`` (written only where they are needed), the
    target batch, the row weights, two delta buffers as wide as the widest
    weighted layer (used alternately going backwards) and the dropout masks
    of the hidden layers.
    """
    L = sizes.size - 1
    total = 0
    for l in range(L + 1):
        total += cap * sizes[l]  # A^l
        if l > 0:
            total += cap * sizes[l]  # Z^l
        if 0 < l < L:
            total += cap * sizes[l]  # dropout mask
    return total + cap * sizes[L] + cap + 2 * cap * _widest_delta(sizes)


@jit
def param_views(theta, sizes, w_off, b_off):
    """Return lists of ``W^l`` (shape ``(sizes[l+1], sizes[l])``) and ``b^l`` views into ``theta``."""
    L = sizes.size - 1
    Ws = [matrix(theta, w_off[0], sizes[1], sizes[0])]
    bs = [theta[b_off[0] : b_off[0] + sizes[1]]]
    for l in range(1, L):
        Ws.append(matrix(theta, w_off[l], sizes[l + 1], sizes[l]))
        bs.append(theta[b_off[l] : b_off[l] + sizes[l + 1]])
    return Ws, bs


@jit
def work_views(ws, sizes, cap):
    """Return views into the work buffer laid out as :func:`workspace_size` describes.

    Returns
    -------
    As : list of L + 1 matrices (cap, sizes[l])
        Activations; ``As[0]`` receives the input batch.
    Zs : list of L matrices (cap, sizes[l+1])
        Pre-activations of the weighted layers.
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
    widest = _widest_delta(sizes)
    pos = 0
    As = [matrix(ws, pos, cap, sizes[0])]
    pos += cap * sizes[0]
    for l in range(1, L + 1):
        As.append(matrix(ws, pos, cap, sizes[l]))
        pos += cap * sizes[l]
    Zs = [matrix(ws, pos, cap, sizes[1])]
    pos += cap * sizes[1]
    for l in range(2, L + 1):
        Zs.append(matrix(ws, pos, cap, sizes[l]))
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
    return As, Zs, Ds, Ms, Yb, rw


@jit_inline
def forward_batch(Ws, bs, acts, custom, fns, As, Zs, m, dropout, Ms, rng, keep_logits):
    """Forward pass of the first ``m`` rows, whose input is already in ``As[0]``.

    A layer whose σ' needs z (:func:`numbanet.kernels.activations.needs_z`)
    keeps its pre-activations in ``Zs``, and so does the output layer when
    ``keep_logits`` (the cost of a natural pair is computed from them);
    otherwise bias and activation are fused into one pass over ``As``.

    With ``dropout > 0`` (training only) each hidden activation is zeroed with
    probability ``dropout`` and the survivors scaled by ``1 / (1 - dropout)``
    (inverted dropout); the factors (0 or ``1/(1-p)``) are kept in ``Ms`` for
    the backward pass.  One uniform is drawn from ``rng`` (see
    :mod:`numbanet.kernels.rng`) per hidden unit, layer by layer, row by row.
    """
    L = len(Ws)
    for l in range(L):
        A = As[l + 1][:m]
        if needs_z(acts[l]) or (keep_logits and l == L - 1):
            # Z = A_prev W^T + b kept, then A = σ(Z) in place: the same two passes, no allocation.
            b = bs[l]
            Z = Zs[l][:m]
            matmul_nt(As[l][:m], Ws[l], A)
            for i in range(m):
                for j in range(A.shape[1]):
                    Z[i, j] = A[i, j] + b[j]
            bias_activate(A, b, acts[l], custom[l], fns)
        else:
            forward(As[l][:m], Ws[l], bs[l], acts[l], custom[l], fns, A)
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


@jit_inline
def batch_step(
    Ws, bs, dWs, dbs, acts, custom, fns, loss, As, Zs, Ds, Ms, Yb, rw, m, dropout, rng, keep_logits, want_grad, sgd_lr
):
    """Forward, weighted mean cost and (with ``want_grad``) backward of ``m`` rows in the work buffers.

    The input rows are in ``As[0]``, the targets in ``Yb``, the row weights in
    ``rw``.  The backward pass fills ``dWs``, ``dbs``: the output delta carries
    the row weights, so the gradients are the weighted mean over the batch;
    every hidden delta is :func:`numbanet.kernels.dense.hidden_delta`, under
    dropout then multiplied by the layer's mask (σ' computed from the unscaled
    activation).  It is skipped when the cost is not finite.

    With ``sgd_lr >= 0`` the backward pass is also plain SGD's step at that
    learning rate: each layer's weights and bias are updated as soon as its
    delta has gone down to the layer below
    (:func:`numbanet.kernels.dense.sgd_layer`, the weight gradient folded into
    the update's matrix product), and ``dWs`` holds nothing of use.  Pass -1
    for the gradient alone.

    Returns
    -------
    float
        The weighted cost of the batch (without the L2 term).
    """
    L = len(Ws)
    forward_batch(Ws, bs, acts, custom, fns, As, Zs, m, dropout, Ms, rng, keep_logits)
    A_out = As[L][:m]
    Y_b = Yb[:m]
    w_b = rw[:m]
    Z_out = Zs[L - 1][:m] if keep_logits or needs_z(acts[L - 1]) else A_out
    c = output_cost(Z_out, A_out, Y_b, loss, acts[L - 1], w_b, fns)
    if not (want_grad and np.isfinite(c)):
        return c
    # The backward pass, written out here rather than in a function of its own: one call layer
    # (and a dozen reference-counted list arguments) fewer on every mini-batch.
    delta = Ds[L - 1][:m]
    output_delta(A_out, Z_out, Y_b, loss, acts[L - 1], custom[L - 1], fns, w_b, delta)
    a_scale = 1.0 - dropout
    for l in range(L - 1, -1, -1):
        A_prev = As[l][:m]
        if l > 0:  # the delta below first: it needs this layer's weights before any update
            nxt = Ds[l - 1][:m]
            Z = Zs[l - 1][:m] if needs_z(acts[l - 1]) else A_prev
            hidden_delta(delta, Ws[l], A_prev, Z, acts[l - 1], custom[l - 1], fns, a_scale, nxt)
            if dropout > 0.0:
                M = Ms[l - 1][:m]
                for i in range(m):
                    for j in range(nxt.shape[1]):
                        nxt[i, j] *= M[i, j]
        if sgd_lr >= 0.0:
            sgd_layer(delta, A_prev, Ws[l], bs[l], dbs[l], sgd_lr)
        else:
            layer_gradients(delta, A_prev, dWs[l], dbs[l])
        if l == 0:
            break
        delta = nxt
    return c


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
    r"""Return the L2 term :math:`\tfrac{\lambda}{2} \sum_l \|W^l\|_F^2` (biases excluded)."""
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
def copy_rows(src, src_start, m, dst, dst_start):
    """``dst[dst_start:dst_start + m] = src[src_start:src_start + m]``, as a loop.

    Numba's slice assignment compiles a shape-mismatch error message built
    with string formatting (about 5 s of compile time); this loop does not.
    """
    for i in range(m):
        for j in range(src.shape[1]):
            dst[dst_start + i, j] = src[src_start + i, j]


@jit
def _gather(X, Y, sw, idx, start, m, A0, Yb, rw):
    """Copy rows ``idx[start:start+m]`` of X and Y into the batch buffers; return ``(sum(sw) over them, bad)``.

    The row weights ``rw`` are set to ``sw_i / sum(sw)``.  ``bad`` is -1, or
    the index of a row of ``X`` holding NaN or ±inf (then nothing else is
    done).  Checking while copying costs next to nothing -- the copy waits
    on memory, and ``v - v`` is 0 for every finite ``v`` and NaN otherwise,
    a branch-free test that vectorises with it -- and it spares ``fit`` a
    separate pass over the whole of ``X``: every epoch gathers every row.
    """
    n_in = X.shape[1]
    n_out = Y.shape[1]
    total = 0.0
    for i in range(m):
        r = idx[start + i]
        ok = True
        for j in range(n_in):
            v = X[r, j]
            ok &= (v - v) == 0
            A0[i, j] = v
        if not ok:
            return 0.0, r
        for j in range(n_out):
            Yb[i, j] = Y[r, j]
        total += sw[r]
    # Divide, not multiply by 1/total: 1/total overflows for subnormal totals.
    for i in range(m):
        rw[i] = sw[idx[start + i]] / total if total > 0 else 0.0
    return total, -1


@jit_inline
def predict(model, X, work, out):
    """Output activations for every row of ``X``, in chunks of ``work.cap`` rows.

    Parameters
    ----------
    model : Model
    X : array of shape (n_samples, n_features)
    work : Work
    out : array of shape (n_samples, n_outputs)
        Filled with the network's outputs.
    """
    sizes = model.sizes
    Ws, bs = param_views(model.theta, sizes, model.w_off, model.b_off)
    As, Zs, Ds, Ms, Yb, rw = work_views(work.ws, sizes, work.cap)
    n = X.shape[0]
    L = sizes.size - 1
    no_rng = np.zeros(1, np.uint64)
    cap = work.cap
    for start in range(0, n, cap):
        m = min(cap, n - start)
        copy_rows(X, start, m, As[0], 0)
        forward_batch(Ws, bs, model.acts, model.custom, model.fns, As, Zs, m, 0.0, Ms, no_rng, False)
        copy_rows(As[L], 0, m, out, start)


@jit_inline
def cost_and_gradient(model, data, work, grad, want_grad):
    r"""Weighted mean cost of the whole data set and, optionally, its exact gradient.

    :math:`C = \sum_i s_i c_i / \sum_i s_i + \tfrac{\lambda}{2}\sum_l \|W^l\|^2`,
    processed in chunks of ``work.cap`` rows by :func:`batch_step`; the
    gradient of ``C`` is accumulated into ``grad`` (length n_params) when
    ``want_grad``.  Dropout is off.

    Returns
    -------
    float
        The cost.
    """
    theta, sizes = model.theta, model.sizes
    Ws, bs = param_views(theta, sizes, model.w_off, model.b_off)
    cap = work.cap
    As, Zs, Ds, Ms, Yb, rw = work_views(work.ws, sizes, cap)
    X, Y, sw = data.X, data.Y, data.sw
    n = X.shape[0]
    L = sizes.size - 1
    n_params = theta.size
    no_rng = np.zeros(1, np.uint64)
    acts, custom, fns, loss = model.acts, model.custom, model.fns, model.loss
    logits = is_simplified(loss, acts[L - 1])
    swsum = data.sw_total
    cost = 0.0
    part = np.empty(n_params if want_grad else 0, dtype=theta.dtype)
    if want_grad:
        for k in range(n_params):
            grad[k] = 0.0
    dWs, dbs = param_views(part if want_grad else theta, sizes, model.w_off, model.b_off)
    for start in range(0, n, cap):
        m = min(cap, n - start)
        copy_rows(X, start, m, As[0], 0)
        copy_rows(Y, start, m, Yb, 0)
        for i in range(m):
            rw[i] = sw[start + i] / swsum if swsum > 0 else 0.0
        cost += batch_step(
            Ws, bs, dWs, dbs, acts, custom, fns, loss, As, Zs, Ds, Ms, Yb, rw, m, 0.0, no_rng, logits, want_grad, -1.0
        )
        if want_grad:
            for k in range(n_params):
                grad[k] += part[k]
    if model.l2 != 0.0:
        cost += l2_penalty(theta, sizes, model.w_off, model.l2)
        if want_grad:
            add_l2_gradient(theta, grad, sizes, model.w_off, model.l2)
    return cost


@jit
def _all_finite(v):
    for k in range(v.size):
        if not np.isfinite(v[k]):
            return False
    return True


@jit
def _restore(theta, state, backup, pos):
    """Put ``theta``, the optimizer state and the position back to the start of the current epoch."""
    P = theta.size
    for k in range(P):
        theta[k] = backup[k]
        state[0, k] = backup[P + k]
        state[1, k] = backup[2 * P + k]
    pos[POS_T] = pos[POS_T0]
    pos[POS_SAMPLES] = pos[POS_SAMPLES0]
    pos[POS_BATCH] = 0


@jit_inline
def train_slice(model, data, work, run, max_batches, stop_at_epoch_end):
    """Run at most ``max_batches`` mini-batches of a training run, from the position in ``run.pos``.

    A run is ``run.lrs.size`` epochs.  An epoch starts (``pos[POS_BATCH] == 0``)
    by saving ``theta`` and the optimizer state into ``run.backup`` and, when
    ``run.shuffle``, drawing a fresh permutation of ``arange(n)`` into
    ``run.order`` from ``run.rng`` (so an epoch's order depends only on the
    generator, never on earlier epochs); then every mini-batch (the last may
    be smaller): gather the rows, :func:`batch_step`, add the L2 gradient,
    clip by global norm (``run.clip > 0``), and one optimizer step.  The call
    returns after ``max_batches`` mini-batches, at the end of the run, or --
    with ``stop_at_epoch_end`` -- at the end of the current epoch, whichever
    comes first; calling it again with the same bundles continues exactly, so
    a run split into slices computes bit for bit what one call would.

    Parameters
    ----------
    model : Model
        ``model.theta`` is updated in place.
    data : Data
    work : Work
        ``work.cap`` is at least ``run.batch_size``.
    run : Run
        ``grad``: gradient buffer (n_params,); ``state``: optimizer state
        (2, n_params), updated in place; ``opt_code`` and ``hyper``: the
        optimizer (:mod:`numbanet.kernels.updates`); ``lrs``: float64
        learning rate of each epoch; ``dropout`` and ``clip`` (0 disables);
        ``order``: int64 row order of the current epoch (``arange(n)``
        without shuffling); ``shuffle``; ``batch_size``; ``rng``: uint64
        state (1,) of the generator for shuffling and dropout masks, advanced
        in place; ``backup``: (3 * n_params,) start-of-epoch copy of ``theta``
        and ``state`` for divergence recovery; ``epoch_losses``: float64
        (n_epochs,), filled as each epoch ends with its training cost (the
        weighted mean, over the samples, of the cost of each sample's batch
        measured before that batch's update, plus the L2 term); ``pos``: int64
        (N_POS,), the run's position (the ``POS_*`` entries), read and updated
        in place -- on divergence ``pos[POS_STATUS]`` is ``DIVERGED``,
        ``POS_BAD_EPOCH`` and ``POS_BAD_BATCH`` say where the cost or the
        parameters stopped being finite, and ``theta``, ``state``,
        ``pos[POS_T]`` and ``pos[POS_SAMPLES]`` are restored to the start of
        that epoch (``pos[POS_BATCH]`` is 0 again); a gathered row of ``X``
        holding NaN or ±inf stops the call the same way, with status
        ``BAD_INPUT`` and the row in ``POS_BAD_ROW``; ``acc``: float64 (1,),
        the running weighted cost of the current epoch.
    max_batches : int
        The most mini-batches this call runs; 0 runs none (a call that only
        compiles or loads the kernel).
    stop_at_epoch_end : bool
        Return once an epoch ends, so Python can do per-epoch work.
    """
    theta, sizes = model.theta, model.sizes
    grad, state, pos, acc, backup, order = run.grad, run.state, run.pos, run.acc, run.backup, run.order
    Ws, bs = param_views(theta, sizes, model.w_off, model.b_off)
    dWs, dbs = param_views(grad, sizes, model.w_off, model.b_off)
    As, Zs, Ds, Ms, Yb, rw = work_views(work.ws, sizes, work.cap)
    X, Y, sw = data.X, data.Y, data.sw
    n = X.shape[0]
    L = sizes.size - 1
    P = theta.size
    batch_size = run.batch_size
    n_batches = (n + batch_size - 1) // batch_size
    acts, custom, fns, loss, w_off = model.acts, model.custom, model.fns, model.loss, model.w_off
    logits = is_simplified(loss, acts[L - 1])
    l2, clip, dropout, rng, lrs = model.l2, run.clip, run.dropout, run.rng, run.lrs
    opt_code, hyper, shuffle = run.opt_code, run.hyper, run.shuffle
    epoch_losses, sw_total = run.epoch_losses, data.sw_total
    # Plain SGD without L2 or clipping can update each layer inside the backward pass (batch_step).
    fused = opt_code == SGD and hyper[H_MOMENTUM] == 0.0 and hyper[H_WEIGHT_DECAY] == 0.0 and l2 == 0.0 and clip == 0.0
    min_fold_rows = fold_rows(sizes)  # ... in batches of at least this many rows (every product in BLAS)
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
        wsum, bad_row = _gather(X, Y, sw, order, start, m, As[0], Yb, rw)
        # Plain SGD's step folded into the backward pass when every product goes to BLAS.
        sgd_lr = lrs[e] if fused and m >= min_fold_rows else -1.0
        c = np.nan  # a bad row of X ends the slice below, as a divergence does
        if bad_row < 0:
            c = batch_step(
                Ws,
                bs,
                dWs,
                dbs,
                acts,
                custom,
                fns,
                loss,
                As,
                Zs,
                Ds,
                Ms,
                Yb,
                rw,
                m,
                dropout,
                rng,
                logits,
                wsum > 0,
                sgd_lr,
            )
            if l2 != 0.0:
                c += l2_penalty(theta, sizes, w_off, l2)
        ok = np.isfinite(c)
        if ok:
            acc[0] += wsum * c
            if wsum > 0:
                pos[POS_T] += 1
                if sgd_lr < 0.0:
                    if l2 != 0.0:
                        add_l2_gradient(theta, grad, sizes, w_off, l2)
                    if clip > 0.0:
                        clip_by_global_norm(grad, clip)
                    update(opt_code, theta, grad, state, hyper, lrs[e], pos[POS_T])
            pos[POS_SAMPLES] += m
            done += 1
            if b + 1 == n_batches:
                ok = _all_finite(theta)
        if not ok:
            _restore(theta, state, backup, pos)
            # Python finds the first bad value of X and refuses X; or reports the divergence.
            pos[POS_STATUS] = DIVERGED if bad_row < 0 else BAD_INPUT
            pos[POS_BAD_ROW] = bad_row
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


# --- entry points from Python --------------------------------------------------------------
#
# Numba types a namedtuple argument in Python code, at ~10 us a field (a Model alone took
# 100-300 us a call), but plain arrays and numbers through its C fast path.  So Python calls
# these entry points with the bundles' fields spread out, ``predict_flat(*model, X, *work,
# out)``, and they rebuild the bundles here.  Their parameters are the bundles' fields in
# order -- tests/test_kernels.py checks that they stay so -- so nothing can be swapped.


@jit
def predict_flat(theta, sizes, w_off, b_off, acts, custom, loss, l2, fns, X, ws, cap, out):
    """:func:`predict` with the :class:`Model` and :class:`Work` fields spread out."""
    predict(Model(theta, sizes, w_off, b_off, acts, custom, loss, l2, fns), X, Work(ws, cap), out)


@jit
def cost_and_gradient_flat(
    theta, sizes, w_off, b_off, acts, custom, loss, l2, fns, X, Y, sw, sw_total, ws, cap, grad, want_grad
):
    """:func:`cost_and_gradient` with the :class:`Model`, :class:`Data` and :class:`Work` fields spread out."""
    return cost_and_gradient(
        Model(theta, sizes, w_off, b_off, acts, custom, loss, l2, fns),
        Data(X, Y, sw, sw_total),
        Work(ws, cap),
        grad,
        want_grad,
    )


@jit
def train_slice_flat(
    theta,
    sizes,
    w_off,
    b_off,
    acts,
    custom,
    loss,
    l2,
    fns,
    X,
    Y,
    sw,
    sw_total,
    ws,
    cap,
    grad,
    state,
    opt_code,
    hyper,
    lrs,
    dropout,
    clip,
    order,
    shuffle,
    batch_size,
    rng,
    backup,
    epoch_losses,
    pos,
    acc,
    max_batches,
    stop_at_epoch_end,
):
    """:func:`train_slice` with the :class:`Model`, :class:`Data`, :class:`Work` and :class:`Run` fields spread out."""
    train_slice(
        Model(theta, sizes, w_off, b_off, acts, custom, loss, l2, fns),
        Data(X, Y, sw, sw_total),
        Work(ws, cap),
        Run(
            grad,
            state,
            opt_code,
            hyper,
            lrs,
            dropout,
            clip,
            order,
            shuffle,
            batch_size,
            rng,
            backup,
            epoch_losses,
            pos,
            acc,
        ),
        max_batches,
        stop_at_epoch_end,
    )
