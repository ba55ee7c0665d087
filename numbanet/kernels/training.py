r"""Whole-network kernels: forward over a data set, batch cost, gradients, the training loop.

Python calls three entry points, each with a few flat arrays laid out as
:mod:`numbanet.kernels.layout` describes -- ``theta`` (the parameters) and
``spec`` (the network) first, then the data, the work buffer ``ws`` and, for
training, the optimizer state and the run's ``backup``, ``run`` (floats),
``order`` (rows), ``rng`` and ``pos`` (integers):

* :func:`predict_flat` -- the outputs for every row of ``X``;
* :func:`cost_and_gradient_flat` -- the weighted mean cost of a data set and its gradient;
* :func:`train_slice_flat` -- a slice of a training run.

Plain arrays and numbers go through Numba's C fast path for typing
arguments, so a call from Python costs a few microseconds (a namedtuple
argument costs far more, per field).  A work buffer belongs to one call at a time
(the caller owns it), so concurrent calls never share one; the mini-batch
loop allocates nothing.

One batch step -- forward, cost, backward -- is :func:`batch_step`, a kernel
of its own called by both :func:`cost_and_gradient_flat` and
:func:`train_slice_flat`, so the backward pass is compiled once; one forward
path, :func:`forward_batch`, also a kernel of its own, serves prediction too.

Training runs in time slices: :func:`train_slice_flat` runs at most a given
number of mini-batches -- across epoch ends, or stopping at the next one --
and keeps its exact position (epoch, batch, optimizer step, the epoch's row
order and running cost) in arrays it updates in place, so that the next call
continues exactly where this one stopped.  Python sees the loop between
slices (signals, progress, callbacks) and never inside one.
"""

import numba
import numpy as np

from numbanet._jit import jit, jit_inline
from numbanet.kernels.activations import bias_activate, needs_z
from numbanet.kernels.dense import fold_rows, forward, hidden_delta, layer_gradients, matmul_nt, sgd_layer
from numbanet.kernels.layout import (
    POS_BAD_BATCH,
    POS_BAD_EPOCH,
    POS_BAD_ROW,
    POS_BATCH,
    POS_BATCH_SIZE,
    POS_BUDGET,
    POS_DONE,
    POS_EPOCH,
    POS_OPTIMIZER,
    POS_PART,
    POS_RNG_BATCH,
    POS_SAMPLES,
    POS_SAMPLES0,
    POS_SHUFFLE,
    POS_STATUS,
    POS_STOP_AT_EPOCH_END,
    POS_T,
    POS_T0,
    RUN_ACC,
    RUN_BATCH_WSUM,
    RUN_CLIP,
    RUN_DROPOUT,
    RUN_L2,
    RUN_PART_COST,
    RUN_SW_TOTAL,
    SPEC_LOSS,
    WORK_A,
    WORK_D0,
    WORK_D1,
    WORK_END,
    WORK_GRAD,
    WORK_M,
    WORK_RW,
    WORK_Y,
    WORK_Z,
    layer_offset,
    run_parts,
    spec_fns,
    spec_parts,
    tail_offset,
    work_capacity,
    work_offsets,
)
from numbanet.kernels.losses import is_simplified, output_cost, output_delta
from numbanet.kernels.rng import shuffle as rng_shuffle
from numbanet.kernels.rng import uniform
from numbanet.kernels.updates import H_MOMENTUM, H_WEIGHT_DECAY, SGD, clip_by_global_norm, update

OK = 0
DIVERGED = 1
BAD_INPUT = 2  # a gathered row of X holds NaN or ±inf (handled as DIVERGED, but not the optimizer's doing)
PART = 3  # the slice stopped at a mini-batch larger than the work buffer: train_part_flat computes its next part


@jit
def matrix(flat, off, rows, cols):
    """View ``flat[off : off + rows * cols]`` as a C-ordered ``(rows, cols)`` matrix."""
    return flat[off : off + rows * cols].reshape((rows, cols))


@jit
def param_views(theta, spec):
    """Return lists of ``W^l`` (shape ``(sizes[l+1], sizes[l])``) and ``b^l`` views into ``theta``."""
    sizes, w_off, b_off, _, _ = spec_parts(spec)
    L = sizes.size - 1
    Ws = [matrix(theta, w_off[0], sizes[1], sizes[0])]
    bs = [theta[b_off[0] : b_off[0] + sizes[1]]]
    for l in range(1, L):
        Ws.append(matrix(theta, w_off[l], sizes[l + 1], sizes[l]))
        bs.append(theta[b_off[l] : b_off[l] + sizes[l + 1]])
    return Ws, bs


@jit
def work_views(ws, spec):
    """Return views into the work buffer ``ws``, laid out by :func:`numbanet.kernels.layout.work_offsets`.

    Returns
    -------
    cap : int
        The rows the buffer holds.
    views : tuple
        ``(As, Zs, Ds, Ms, Yb, rw)``: ``As``, L + 1 activation matrices
        ``(cap, sizes[l])``, ``As[0]`` receiving the input batch; ``Zs``, the
        L pre-activations of the weighted layers; ``Ds``, their L deltas,
        consecutive layers alternating between two buffers; ``Ms``, the
        dropout masks of the hidden layers (the output layer's entry is an
        empty matrix); ``Yb``, the target batch; ``rw``, the row weights.
    grad : vector (n_params,)
        Gradient buffer.

    Slicing rows (``As[l][:m]``) gives the views of a smaller batch, still
    C-contiguous; building views costs a reshape, so it happens once per call.
    """
    sizes = spec_parts(spec)[0]
    L = sizes.size - 1
    cap = work_capacity(spec, ws.size)
    off = work_offsets(spec, cap)
    As = [matrix(ws, layer_offset(off, 0, WORK_A), cap, sizes[0])]
    Zs = [matrix(ws, layer_offset(off, 1, WORK_Z), cap, sizes[1])]
    Ms = [matrix(ws, layer_offset(off, 1, WORK_M), cap if L > 1 else 0, sizes[1])]
    for l in range(1, L + 1):
        As.append(matrix(ws, layer_offset(off, l, WORK_A), cap, sizes[l]))
        if l > 1:
            Zs.append(matrix(ws, layer_offset(off, l, WORK_Z), cap, sizes[l]))
            Ms.append(matrix(ws, layer_offset(off, l, WORK_M), cap if l < L else 0, sizes[l]))
    Yb = matrix(ws, tail_offset(off, WORK_Y), cap, sizes[L])
    rw = ws[tail_offset(off, WORK_RW) : tail_offset(off, WORK_RW) + cap]
    d0, d1 = tail_offset(off, WORK_D0), tail_offset(off, WORK_D1)
    Ds = [matrix(ws, d0, cap, sizes[1])]
    for l in range(1, L):
        Ds.append(matrix(ws, d0 if (L - 1 - l) % 2 == 0 else d1, cap, sizes[l + 1]))
    if (L - 1) % 2 != 0:
        Ds[0] = matrix(ws, d1, cap, sizes[1])
    grad = ws[tail_offset(off, WORK_GRAD) : tail_offset(off, WORK_END)]
    return cap, (As, Zs, Ds, Ms, Yb, rw), grad


@jit
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
            matmul_nt(As[l][:m], Ws[l], A)
            keep_z_and_activate(A, Zs[l][:m], bs[l], acts[l], custom[l], fns)
        else:
            forward(As[l][:m], Ws[l], bs[l], acts[l], custom[l], fns, A)
        if dropout > 0.0 and l < L - 1:
            drop_units(A, Ms[l][:m], dropout, rng)


@jit_inline
def keep_z_and_activate(A, Z, b, act, k, fns):
    """Keep ``Z = A + b``, then ``A = σ(Z)`` in place, ``A`` holding a layer's product: two passes, no allocation."""
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            Z[i, j] = A[i, j] + b[j]
    bias_activate(A, b, act, k, fns)


@jit_inline
def drop_units(A, M, dropout, rng):
    """Inverted dropout on the activations ``A``: each zeroed with probability ``dropout``, its factor kept in ``M``."""
    scale = A.dtype.type(1.0 / (1.0 - dropout))
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            if uniform(rng) < dropout:
                M[i, j] = 0.0
                A[i, j] = 0.0
            else:
                M[i, j] = scale
                A[i, j] *= scale


@jit
def batch_step(spec, Ws, bs, dWs, dbs, views, m, dropout, rng, want_grad, sgd_lr):
    """Forward, weighted mean cost and (with ``want_grad``) backward of ``m`` rows in the work buffers.

    ``views`` are the work buffer's (:func:`work_views`): the input rows are
    in ``As[0]``, the targets in ``Yb``, the row weights in ``rw``.  The
    backward pass fills ``dWs``, ``dbs``: the output delta carries the row
    weights, so the gradients are the weighted mean over the batch; every
    hidden delta is :func:`numbanet.kernels.dense.hidden_delta`, under dropout
    then multiplied by the layer's mask (σ' computed from the unscaled
    activation).  It is skipped when the cost is not finite.

    With ``sgd_lr >= 0`` the backward pass is also plain SGD's step at that
    learning rate: each layer's weights and bias are updated as soon as its
    delta has gone down to the layer below
    (:func:`numbanet.kernels.dense.sgd_layer`, the weight gradient folded into
    the update's matrix product), and ``dWs`` holds nothing of use.  Pass -1
    for the gradient alone.

    A kernel of its own, not inlined: the training loop and
    :func:`cost_and_gradient_flat` share one compiled backward pass.

    Returns
    -------
    float
        The weighted cost of the batch (without the L2 term).
    """
    As, Zs, Ds, Ms, Yb, rw = views
    _, _, _, acts, custom = spec_parts(spec)
    fns = spec_fns(spec)
    loss = spec[SPEC_LOSS]
    L = len(Ws)
    keep_logits = is_simplified(loss, acts[L - 1])  # the cost of a natural pair is computed from the logits
    forward_batch(Ws, bs, acts, custom, fns, As, Zs, m, dropout, Ms, rng, keep_logits)
    A_out = As[L][:m]
    Y_b = Yb[:m]
    w_b = rw[:m]
    Z_out = Zs[L - 1][:m] if keep_logits or needs_z(acts[L - 1]) else A_out
    c = output_cost(Z_out, A_out, Y_b, loss, acts[L - 1], w_b, fns)
    if not (want_grad and np.isfinite(c)):
        return c
    output_delta(A_out, Z_out, Y_b, loss, acts[L - 1], custom[L - 1], fns, w_b, Ds[L - 1][:m])
    backward_layers(spec, Ws, bs, dWs, dbs, views, m, dropout, sgd_lr, 0)
    return c


@jit_inline
def backward_layers(spec, Ws, bs, dWs, dbs, views, m, dropout, sgd_lr, lowest):
    """Run the backward pass from the output delta (in ``Ds[L - 1]``) down to layer ``lowest``.

    Each layer ``l >= lowest`` from the top: the delta below first (it needs
    this layer's weights before any update), then the layer's gradients, or
    plain SGD's step with ``sgd_lr >= 0``.  With ``lowest = 1`` the delta of
    the first layer is left in ``Ds[0]`` and its parameters untouched (the
    sparse step does them from the sparse rows).  Inlined: one call layer,
    and a dozen reference-counted list arguments, fewer on every mini-batch.
    """
    As, Zs, Ds, Ms, _, _ = views
    _, _, _, acts, custom = spec_parts(spec)
    fns = spec_fns(spec)
    L = len(Ws)
    delta = Ds[L - 1][:m]
    a_scale = 1.0 - dropout
    for l in range(L - 1, lowest - 1, -1):
        A_prev = As[l][:m]
        if l > 0:
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
        if l > 0:
            delta = nxt


@jit
def add_l2_gradient(theta, grad, spec, l2):
    """``grad += l2 * W`` for every weight (not the biases)."""
    sizes, w_off, _, _, _ = spec_parts(spec)
    lam = theta.dtype.type(l2)
    for l in range(sizes.size - 1):
        start = w_off[l]
        for k in range(start, start + sizes[l + 1] * sizes[l]):
            grad[k] += lam * theta[k]


@jit
def l2_penalty(theta, spec, l2):
    r"""Return the L2 term :math:`\tfrac{\lambda}{2} \sum_l \|W^l\|_F^2` (biases excluded)."""
    if l2 == 0.0:
        return 0.0
    sizes, w_off, _, _, _ = spec_parts(spec)
    s = 0.0
    for l in range(sizes.size - 1):
        start = w_off[l]
        for k in range(start, start + sizes[l + 1] * sizes[l]):
            t = float(theta[k])
            s += t * t
    return 0.5 * l2 * s


@jit
def copy_rows(src, src_start, m, dst, dst_start):
    """``dst[dst_start:dst_start + m] = src[src_start:src_start + m]``, as a loop.

    Numba's slice assignment compiles a shape-mismatch error message built
    with string formatting, seconds of compile time; this loop does not.
    """
    for i in range(m):
        for j in range(src.shape[1]):
            dst[dst_start + i, j] = src[src_start + i, j]


@jit
def _gather(X, Y, sw, idx, start, m, A0, Yb, rw, batch_wsum):
    """Copy rows ``idx[start:start+m]`` of X and Y into the batch buffers; return ``(sum(sw) over them, bad)``.

    The row weights ``rw`` are set to ``sw_i / W``, ``W`` the sum of the
    gathered rows' weights, or ``batch_wsum`` when that is not negative (the
    rows are a part of a larger mini-batch of that weight).  ``bad`` is -1, or
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
    norm = total if batch_wsum < 0.0 else batch_wsum
    # Divide, not multiply by 1/norm: 1/norm overflows for subnormal sums.
    for i in range(m):
        rw[i] = sw[idx[start + i]] / norm if norm > 0 else 0.0
    return total, -1


@jit
def predict_flat(theta, spec, X, ws, out):
    """Fill ``out`` with the output activations for every row of ``X``, in chunks of the work buffer's rows.

    Parameters
    ----------
    theta, spec : arrays
        The network (:mod:`numbanet.kernels.layout`).
    X : array of shape (n_samples, n_features)
    ws : array
        A work buffer (:func:`numbanet.kernels.layout.work_size`).
    out : array of shape (n_samples, n_outputs)
        Filled with the network's outputs.
    """
    _, _, _, acts, custom = spec_parts(spec)
    fns = spec_fns(spec)
    Ws, bs = param_views(theta, spec)
    cap, views, _ = work_views(ws, spec)
    As, Zs, _, Ms, _, _ = views
    n = X.shape[0]
    L = len(Ws)
    no_rng = np.zeros(1, np.uint64)
    for start in range(0, n, cap):
        m = min(cap, n - start)
        copy_rows(X, start, m, As[0], 0)
        # np.bool_(False) is typed bool, not a literal: so this is the forward pass compiled for the batch step.
        forward_batch(Ws, bs, acts, custom, fns, As, Zs, m, 0.0, Ms, no_rng, np.bool_(False))
        copy_rows(As[L], 0, m, out, start)


@jit
def cost_and_gradient_flat(theta, spec, X, Y, sw, sw_total, l2, ws, grad, want_grad):
    r"""Return the weighted mean cost of a data set and, with ``want_grad``, put its exact gradient in ``grad``.

    :math:`C = \sum_i s_i c_i / S + \tfrac{\lambda}{2}\sum_l \|W^l\|^2` for the
    sample weights ``sw`` and ``S = sw_total`` (their sum, or the sum over a
    larger batch this is a part of), processed in chunks of the work
    buffer's rows by :func:`batch_step`; the gradient of ``C`` is
    accumulated into ``grad`` (length n_params; unused without
    ``want_grad``).  Dropout is off.
    """
    Ws, bs = param_views(theta, spec)
    cap, views, part = work_views(ws, spec)
    As, _, _, _, Yb, rw = views
    dWs, dbs = param_views(part, spec)
    n = X.shape[0]
    n_params = theta.size
    no_rng = np.zeros(1, np.uint64)
    cost = 0.0
    if want_grad:
        for k in range(n_params):
            grad[k] = 0.0
    for start in range(0, n, cap):
        m = min(cap, n - start)
        copy_rows(X, start, m, As[0], 0)
        copy_rows(Y, start, m, Yb, 0)
        for i in range(m):
            rw[i] = sw[start + i] / sw_total if sw_total > 0 else 0.0
        cost += batch_step(spec, Ws, bs, dWs, dbs, views, m, 0.0, no_rng, want_grad, -1.0)
        if want_grad:
            for k in range(n_params):
                grad[k] += part[k]
    if l2 != 0.0:
        cost += l2_penalty(theta, spec, l2)
        if want_grad:
            add_l2_gradient(theta, grad, spec, l2)
    return cost


@jit
def _all_finite(v):
    for k in range(v.size):
        if not np.isfinite(v[k]):
            return False
    return True


@jit
def _start_epoch(theta, state, backup, run, order, n_all, rng, pos):
    """Save ``theta`` and the optimizer state into ``backup``, mark the epoch's start, draw its row order.

    ``order`` holds the training rows of the ``n_all`` rows of the data (all of them, or those a
    validation split leaves, ascending at the run's start): the draw permutes them in ascending order.
    """
    for k in range(theta.size):
        backup[0, k] = theta[k]
    for r in range(state.shape[0]):
        for k in range(theta.size):
            backup[1 + r, k] = state[r, k]
    pos[POS_T0] = pos[POS_T]
    pos[POS_SAMPLES0] = pos[POS_SAMPLES]
    run[RUN_ACC] = 0.0
    if pos[POS_SHUFFLE]:
        if order.size == n_all:
            for i in range(order.size):
                order[i] = i
        else:  # distinct rows of range(n_all): ascending by marking them, without compiling a sort
            kept = np.zeros(n_all, np.bool_)
            for i in range(order.size):
                kept[order[i]] = True
            j = 0
            for r in range(n_all):
                if kept[r]:
                    order[j] = r
                    j += 1
        rng_shuffle(order, rng)


@jit
def _restore(theta, state, backup, pos):
    """Put ``theta``, the optimizer state and the position back to the start of the current epoch."""
    for k in range(theta.size):
        theta[k] = backup[0, k]
    for r in range(state.shape[0]):
        for k in range(theta.size):
            state[r, k] = backup[1 + r, k]
    pos[POS_T] = pos[POS_T0]
    pos[POS_SAMPLES] = pos[POS_SAMPLES0]
    pos[POS_BATCH] = 0


@jit
def _fused_sgd(run, pos):
    """Whether plain SGD's step can be folded into the backward pass: no momentum, decay, L2 or clipping."""
    hyper = run_parts(run)[0]
    return (
        pos[POS_OPTIMIZER] == SGD
        and hyper[H_MOMENTUM] == 0.0
        and hyper[H_WEIGHT_DECAY] == 0.0
        and run[RUN_L2] == 0.0
        and run[RUN_CLIP] == 0.0
    )


@jit
def train_slice_flat(theta, spec, X, Y, sw, ws, state, backup, run, order, rng, pos):
    """Run at most ``pos[POS_BUDGET]`` steps of a training run, from the position in ``pos``.

    A run is as many epochs as ``run`` has learning rates.  An epoch starts
    (``pos[POS_BATCH] == 0``) by saving ``theta`` and the optimizer state into
    ``backup`` and, with ``pos[POS_SHUFFLE]``, drawing a fresh permutation of
    ``arange(n)`` into ``order`` from ``rng`` (so an epoch's order depends only
    on the generator, never on earlier epochs); then every mini-batch (the last
    may be smaller): gather the rows, :func:`batch_step`, add the L2 gradient,
    clip by global norm (``run[RUN_CLIP] > 0``), and one optimizer step.  A
    step is a mini-batch, or a part of one that the work buffer cannot hold
    at once: at such a batch the call returns with status ``PART``, and
    :func:`train_part_flat` computes the next part (:func:`train_slice` makes
    both calls; the optimizer steps after the last part).  The call returns
    after ``pos[POS_BUDGET]`` steps, at the end of the run, or -- with
    ``pos[POS_STOP_AT_EPOCH_END]`` -- at the end of the current epoch,
    whichever comes first; calling it again with the same arrays continues
    exactly, so a run split into slices computes bit for bit what one call
    would.

    Parameters
    ----------
    theta, spec : arrays
        The network (:mod:`numbanet.kernels.layout`); ``theta`` is updated in place.
    X, Y, sw : arrays
        The data and the sample weights.
    ws : array
        A work buffer; larger mini-batches than it holds are computed in parts.
    state : array of shape (rows, n_params)
        Optimizer state, updated in place.
    backup : array of shape (1 + rows, n_params), or (2 + rows, n_params)
        Start-of-epoch copy of ``theta`` and ``state`` for divergence recovery,
        then -- needed when mini-batches are larger than ``ws`` holds -- the
        running gradient of a mini-batch computed in parts.
    run : float64 array
        The run's hyper-parameters, running cost, per-epoch learning rates and
        -- filled as each epoch ends -- training costs (the weighted mean,
        over the samples, of the cost of each sample's batch measured before
        that batch's update, plus the L2 term).
    order : int64 array
        Row order of the current epoch: the rows of ``X`` trained on, ascending at the start (all of
        them, ``arange(n)``, or those a validation split leaves: the data is indexed, never copied).
    rng : uint64 array of shape (1,)
        State of the generator for shuffling and dropout masks, advanced in place.
    pos : int64 array of shape (N_POS,)
        Settings, budget and position, read and updated in place: on
        divergence ``pos[POS_STATUS]`` is ``DIVERGED``, ``POS_BAD_EPOCH`` and
        ``POS_BAD_BATCH`` say where the cost or the parameters stopped being
        finite, and ``theta``, ``state``, ``pos[POS_T]`` and
        ``pos[POS_SAMPLES]`` are restored to the start of that epoch
        (``pos[POS_BATCH]`` is 0 again); a gathered row of ``X`` holding NaN or
        ±inf stops the call the same way, with status ``BAD_INPUT`` and the row
        in ``POS_BAD_ROW``.
    """
    Ws, bs = param_views(theta, spec)
    cap, views, grad = work_views(ws, spec)
    As, _, _, _, Yb, rw = views
    dWs, dbs = param_views(grad, spec)
    lrs = run_parts(run)[1]
    l2, dropout = run[RUN_L2], run[RUN_DROPOUT]
    n = order.size  # the training rows: all of X, or those a validation split leaves
    batch_size = pos[POS_BATCH_SIZE]
    fused = _fused_sgd(run, pos)  # plain SGD without L2 or clipping: updates inside batch_step ...
    min_fold_rows = fold_rows(spec_parts(spec)[0])  # ... in batches of at least this many rows (all in BLAS)
    pos[POS_STATUS] = OK
    done = 0
    while pos[POS_EPOCH] < lrs.size and done < pos[POS_BUDGET]:
        e = pos[POS_EPOCH]
        b = pos[POS_BATCH]
        if pos[POS_PART] == 0:
            # The generator as the batch finds it, before an epoch's shuffle: Python puts it back
            # when it abandons a batch computed in parts, which then leaves no trace.
            pos[POS_RNG_BATCH] = np.int64(rng[0])
            if b == 0:
                _start_epoch(theta, state, backup, run, order, X.shape[0], rng, pos)
        start = b * batch_size
        m = min(batch_size, n - start)
        if m > cap:
            pos[POS_STATUS] = PART  # Python goes on with train_part_flat, which only such fits compile
            break
        wsum, bad_row = _gather(X, Y, sw, order, start, m, As[0], Yb, rw, -1.0)
        sgd_lr = lrs[e] if fused and m >= min_fold_rows else -1.0
        c = np.nan  # a bad row of X ends the slice below, as a divergence does
        if bad_row < 0:
            c = batch_step(spec, Ws, bs, dWs, dbs, views, m, dropout, rng, wsum > 0, sgd_lr)
            if l2 != 0.0:
                c += l2_penalty(theta, spec, l2)
        go_on = finish_batch(theta, spec, grad, state, backup, run, pos, n, c, wsum, sgd_lr, bad_row)
        if pos[POS_STATUS] == OK:
            done += 1
        if not go_on:
            break
    pos[POS_DONE] = done


@jit
def train_part_flat(theta, spec, X, Y, sw, ws, state, backup, run, order, rng, pos):
    """Compute the next part of the mini-batch :func:`train_slice_flat` stopped at (status ``PART``): one step.

    After the batch's last part, its optimizer step and position, as
    :func:`train_slice_flat` does after a whole batch; ``pos[POS_DONE]`` counts
    the part.  A kernel of its own, so that only fits whose mini-batches
    outgrow the work buffer compile it.  Same arguments as
    :func:`train_slice_flat`.
    """
    grad = work_views(ws, spec)[2]
    pos[POS_STATUS] = OK
    c, wsum, bad_row, whole = batch_part(theta, spec, X, Y, sw, ws, backup, run, order, rng, pos)
    if whole:
        finish_batch(theta, spec, grad, state, backup, run, pos, order.size, c, wsum, -1.0, bad_row)
    if pos[POS_STATUS] == OK:
        pos[POS_DONE] += 1


def compile_part(args):
    """Compile (or load from the cache) :func:`train_part_flat` for the arguments ``args``, without running it."""
    if hasattr(train_part_flat, "compile"):  # NUMBA_DISABLE_JIT=1: plain Python, nothing to compile
        train_part_flat.compile(tuple(numba.typeof(a) for a in args))


def train_slice(theta, spec, X, Y, sw, ws, state, backup, run, order, rng, pos):
    """:func:`train_slice_flat`, then the next part of the mini-batch it stopped at, if any (Python, not jitted)."""
    train_slice_flat(theta, spec, X, Y, sw, ws, state, backup, run, order, rng, pos)
    if pos[POS_STATUS] == PART:
        train_part_flat(theta, spec, X, Y, sw, ws, state, backup, run, order, rng, pos)


@jit
def batch_part(theta, spec, X, Y, sw, ws, backup, run, order, rng, pos):
    """Compute the next part of a mini-batch larger than the work buffer; return ``(c, wsum, bad_row, whole)``.

    Each part is as many of the batch's rows as the buffer holds, their row
    weights divided by the whole batch's weight sum (``run[RUN_BATCH_WSUM]``,
    taken at the first part), so the parts' costs and gradients add up to the
    batch's; the running cost is ``run[RUN_PART_COST]``, the running gradient
    the last row of ``backup``, the rows done ``pos[POS_PART]``.  ``whole`` is
    True once the batch is complete -- ``c`` its cost with the L2 term, the
    gradient in the work buffer's, for :func:`finish_batch` -- or has failed
    (``c`` not finite, or ``bad_row >= 0``); either way ``pos[POS_PART]`` is 0
    again.  One part is one step of :func:`train_slice_flat`'s budget, so
    Python sees the loop between parts.
    """
    Ws, bs = param_views(theta, spec)
    cap, views, grad = work_views(ws, spec)
    As, _, _, _, Yb, rw = views
    dWs, dbs = param_views(grad, spec)
    acc = backup[backup.shape[0] - 1]
    batch_size = pos[POS_BATCH_SIZE]
    start = pos[POS_BATCH] * batch_size
    m = min(batch_size, order.size - start)
    done = pos[POS_PART]
    if done == 0:
        total = 0.0
        for i in range(start, start + m):
            total += sw[order[i]]
        run[RUN_BATCH_WSUM] = total
        run[RUN_PART_COST] = 0.0
    wsum = run[RUN_BATCH_WSUM]
    k = min(cap, m - done)
    _, bad_row = _gather(X, Y, sw, order, start + done, k, As[0], Yb, rw, wsum)
    c = np.nan
    if bad_row < 0:
        c = batch_step(spec, Ws, bs, dWs, dbs, views, k, run[RUN_DROPOUT], rng, wsum > 0, -1.0)
    if not np.isfinite(c):
        pos[POS_PART] = 0
        return c, wsum, bad_row, True
    run[RUN_PART_COST] += c
    last = done + k == m
    if wsum > 0:
        for j in range(grad.size):
            if done == 0:
                acc[j] = grad[j]
            elif last:
                grad[j] += acc[j]
            else:
                acc[j] += grad[j]
    if not last:
        pos[POS_PART] = done + k
        return c, wsum, bad_row, False
    pos[POS_PART] = 0
    c = run[RUN_PART_COST]
    if run[RUN_L2] != 0.0:
        c += l2_penalty(theta, spec, run[RUN_L2])
    return c, wsum, bad_row, True


@jit
def finish_batch(theta, spec, grad, state, backup, run, pos, n, c, wsum, sgd_lr, bad_row):
    """After a batch step of a training loop: the optimizer step and the position; whether the loop goes on.

    ``c`` is the batch's cost (NaN for a bad row of X, ``bad_row >= 0``),
    ``wsum`` its sum of sample weights, ``sgd_lr >= 0`` when the step was
    folded into the backward pass.  A finite cost is accumulated and the
    optimizer steps (L2 gradient, clipping, update), unless folded; at an
    epoch's end the parameters are checked and the epoch's cost recorded.
    A cost or parameters that are not finite restore the start of the epoch
    and set the status (:func:`train_slice_flat`).  Returns False when the
    loop stops here: a failure, or an epoch's end with
    ``pos[POS_STOP_AT_EPOCH_END]``.  Shared by the dense and the sparse loop.
    """
    hyper, lrs, epoch_losses = run_parts(run)
    l2, clip = run[RUN_L2], run[RUN_CLIP]
    e = pos[POS_EPOCH]
    b = pos[POS_BATCH]
    batch_size = pos[POS_BATCH_SIZE]
    last = b + 1 == (n + batch_size - 1) // batch_size
    ok = np.isfinite(c)
    if ok:
        run[RUN_ACC] += wsum * c
        if wsum > 0:
            pos[POS_T] += 1
            if sgd_lr < 0.0:
                if l2 != 0.0:
                    add_l2_gradient(theta, grad, spec, l2)
                if clip > 0.0:
                    clip_by_global_norm(grad, clip)
                update(pos[POS_OPTIMIZER], theta, grad, state, hyper, lrs[e], pos[POS_T])
        pos[POS_SAMPLES] += min(batch_size, n - b * batch_size)
        if last:
            ok = _all_finite(theta)
    if not ok:
        _restore(theta, state, backup, pos)
        # Python finds the first bad value of X and refuses X; or reports the divergence.
        pos[POS_STATUS] = DIVERGED if bad_row < 0 else BAD_INPUT
        pos[POS_BAD_ROW] = bad_row
        pos[POS_BAD_EPOCH] = e
        pos[POS_BAD_BATCH] = b
        return False
    if last:
        sw_total = run[RUN_SW_TOTAL]
        epoch_losses[e] = run[RUN_ACC] / sw_total if sw_total > 0 else 0.0
        pos[POS_EPOCH] = e + 1
        pos[POS_BATCH] = 0
        return not pos[POS_STOP_AT_EPOCH_END]
    pos[POS_BATCH] = b + 1
    return True
