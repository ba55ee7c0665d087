r"""Sparse input: the first layer computed straight from the rows of a CSR matrix.

A CSR matrix reaches the kernels as the tuple ``x = (data, indices, indptr)``
(``indices`` and ``indptr`` int64): row ``r`` holds ``data[k]`` in column
``indices[k]`` for ``indptr[r] <= k < indptr[r + 1]``.  Only the first layer
reads X, so only it changes: its product and its weight gradient run over
the non-zeros of the batch's rows,

.. math::

    Z^1_{io} = \sum_{k \in \text{row } i} x_k W^1_{o, j_k}, \qquad
    \frac{\partial C}{\partial W^1_{o j}} = \sum_i \Delta^1_{io} X_{ij},

where the gradient is scattered into the columns the rows touch (zeroing the
rest first), or -- plain SGD folded into the backward pass, as the dense
loop does -- added to ``W^1`` directly, touching no other column.  Both go
through the batch's non-zeros sorted by column (:func:`batch_columns`, once
per batch): ``W^1`` is stored outputs by inputs, so a column of it is strided,
and visiting the batch's columns in increasing order for each row of ``W^1``
reads that row forward once instead of jumping about all of ``W^1`` for every
non-zero (on 30 000 columns, several times faster).  Everything
above the first layer is the dense code of :mod:`numbanet.kernels.training`:
the same forward layers, output cost and delta, backward layers and
bookkeeping (:func:`numbanet.kernels.training.finish_batch`).  A batch is the
rows ``order[start:start + m]`` of X, read where they are: nothing is
gathered, and the work buffer has no input matrix (:func:`work_spec`).

Entry points, as the dense ones with ``X`` replaced by ``x``:
:func:`sparse_predict_flat`, :func:`sparse_cost_and_gradient_flat`,
:func:`sparse_train_slice_flat`.  Non-finite values in X are refused by
Python before a call (a pass over the non-zeros only).
"""

import numpy as np

from numbanet._jit import jit, jit_inline
from numbanet.kernels.activations import bias_activate, needs_z
from numbanet.kernels.layout import (
    POS_BATCH,
    POS_BATCH_SIZE,
    POS_BUDGET,
    POS_DONE,
    POS_EPOCH,
    POS_STATUS,
    RUN_DROPOUT,
    RUN_L2,
    SPEC_LOSS,
    SPEC_TABLES,
    run_parts,
    spec_fns,
    spec_parts,
)
from numbanet.kernels.losses import is_simplified, output_cost, output_delta
from numbanet.kernels.training import (
    OK,
    _fused_sgd,
    _start_epoch,
    add_l2_gradient,
    backward_layers,
    copy_rows,
    drop_units,
    finish_batch,
    forward_batch,
    keep_z_and_activate,
    l2_penalty,
    param_views,
    work_views,
)


@jit
def work_spec(spec):
    """Return a copy of ``spec`` with no input columns: its work buffer (:func:`work_views`) has no ``A^0``.

    Only the work buffer's layout reads it; the parameters keep ``spec``'s.
    """
    wspec = spec.copy()
    wspec[SPEC_TABLES] = 0
    return wspec


@jit
def column_buffers(x, spec, batch):
    """Return ``xb``: the CSR arrays ``x`` followed by the buffers of a batch's column form (:func:`batch_columns`).

    Sized once per call for the ``batch`` rows of ``x`` holding the most
    non-zeros: a count per column of X, the batch's distinct columns and
    their starts, and each non-zero's row in the batch and value; then a
    ``(n_1, batch)`` scratch matrix, the first layer's outputs by batch rows
    (a row of it stays in the nearest cache while the columns go by).
    """
    data, indices, indptr = x
    sizes = spec_parts(spec)[0]
    n_cols = sizes[0]
    counts = indptr[1:] - indptr[:-1]
    first = max(0, counts.size - batch)
    if first > 0:
        counts = np.partition(counts, first)  # the largest `batch` counts last, in linear time
    most = 0
    for r in range(first, counts.size):
        most += counts[r]
    width = min(n_cols, most)
    colcount = np.zeros(n_cols, np.int64)
    cols, cptr = np.empty(width, np.int64), np.empty(width + 1, np.int64)
    erow, evals = np.empty(most, np.int64), np.empty(most, data.dtype)
    scratch = np.empty((sizes[1], min(batch, indptr.size - 1)), data.dtype)
    return data, indices, indptr, colcount, cols, cptr, erow, evals, np.zeros(1, np.int64), scratch


@jit
def batch_columns(xb, rows):
    """Put the non-zeros of the rows ``rows`` of X into ``xb``'s buffers by column, columns in increasing order.

    The batch's ``nc`` distinct columns go to ``cols[:nc]``; column ``cols[t]``
    holds the entries ``cptr[t] <= p < cptr[t + 1]``, each its row in the batch
    ``erow[p]`` and its value ``evals[p]`` (duplicates kept, in stored order);
    ``nc`` goes to ``meta[0]``.  Reading ``W^1`` by column in this order walks
    each row of ``W^1`` forward, once per batch, where the rows' own order would
    jump about all of it for every non-zero.  ``colcount`` is all zeros before
    and after (a pass over the columns of X and one over the batch's entries).
    """
    data, indices, indptr, colcount, cols, cptr, erow, evals, meta, _ = xb
    for i in range(rows.size):
        for k in range(indptr[rows[i]], indptr[rows[i] + 1]):
            colcount[indices[k]] += 1
    nc = 0
    p = 0
    for j in range(colcount.size):
        c = colcount[j]
        if c > 0:
            cols[nc] = j
            cptr[nc] = p
            colcount[j] = p  # from here on, where the column's next entry goes
            p += c
            nc += 1
    cptr[nc] = p
    for i in range(rows.size):
        for k in range(indptr[rows[i]], indptr[rows[i] + 1]):
            q = colcount[indices[k]]
            erow[q] = i
            evals[q] = data[k]
            colcount[indices[k]] = q + 1
    for t in range(nc):
        colcount[cols[t]] = 0
    meta[0] = nc


@jit
def first_product(xb, W, out):
    """``out = X[rows] @ W.T`` for the batch :func:`batch_columns` put in ``xb`` (its ``m`` rows, ``out[:m]``)."""
    _, _, _, _, cols, cptr, erow, evals, meta, scratch = xb
    m = out.shape[0]
    for o in range(W.shape[0]):
        acc = scratch[o]
        for i in range(m):
            acc[i] = 0.0
        for t in range(meta[0]):
            w = W[o, cols[t]]
            for p in range(cptr[t], cptr[t + 1]):
                acc[erow[p]] += evals[p] * w
    for i in range(m):
        for o in range(out.shape[1]):
            out[i, o] = scratch[o, i]


@jit
def first_scatter(delta, xb, M, alpha):
    """``M += alpha * delta.T @ X[rows]`` for the batch in ``xb``, touching only the batch's columns of ``M``."""
    _, _, _, _, cols, cptr, erow, evals, meta, scratch = xb
    m = delta.shape[0]
    for i in range(m):
        for o in range(delta.shape[1]):
            scratch[o, i] = delta[i, o]
    a = M.dtype.type(alpha)
    for o in range(M.shape[0]):
        d = scratch[o]
        for t in range(meta[0]):
            g = M.dtype.type(0.0)
            for p in range(cptr[t], cptr[t + 1]):
                g += d[erow[p]] * evals[p]
            M[o, cols[t]] += a * g


@jit_inline
def _first_layer_update(delta, xb, W, b, dW, db, sgd_lr):
    """Compute the first layer's gradients (``dW``, ``db``) from its delta, or plain SGD's step on ``W``, ``b``."""
    m, n_out = delta.shape
    for j in range(n_out):
        db[j] = 0.0
    for i in range(m):
        for j in range(n_out):
            db[j] += delta[i, j]
    if sgd_lr >= 0.0:
        eta = W.dtype.type(sgd_lr)
        first_scatter(delta, xb, W, -sgd_lr)
        for j in range(n_out):
            b[j] -= eta * db[j]
    else:
        for o in range(dW.shape[0]):
            for j in range(dW.shape[1]):
                dW[o, j] = 0.0
        first_scatter(delta, xb, dW, 1.0)


@jit
def layers_above(Ws, bs, views):
    """Return ``(Ws, bs, As, Zs, Ms)`` from the second layer up: the dense part of the network.

    Built once per call (slicing a list allocates), not once per mini-batch.
    """
    As, Zs, _, Ms, _, _ = views
    return Ws[1:], bs[1:], As[1:], Zs[1:], Ms[1:]


@jit
def sparse_forward(spec, Ws, bs, views, above, xb, rows, dropout, rng, keep_logits):
    """Forward pass of the rows ``rows`` of X: the first layer from the sparse rows, the rest dense (``above``).

    Leaves the batch's column form in ``xb`` (:func:`batch_columns`) for the backward pass.
    """
    As, Zs, _, Ms, _, _ = views
    _, _, _, acts, custom = spec_parts(spec)
    fns = spec_fns(spec)
    L = len(Ws)
    m = rows.size
    A = As[1][:m]
    batch_columns(xb, rows)
    first_product(xb, Ws[0], A)
    if needs_z(acts[0]) or (keep_logits and L == 1):
        keep_z_and_activate(A, Zs[0][:m], bs[0], acts[0], custom[0], fns)
    else:
        bias_activate(A, bs[0], acts[0], custom[0], fns)
    if dropout > 0.0 and L > 1:
        drop_units(A, Ms[0][:m], dropout, rng)
    W_up, b_up, A_up, Z_up, M_up = above
    forward_batch(W_up, b_up, acts[1:], custom[1:], fns, A_up, Z_up, m, dropout, M_up, rng, keep_logits)


@jit
def sparse_batch_step(spec, Ws, bs, grads, views, above, xb, rows, dropout, rng, want_grad, sgd_lr):
    """:func:`numbanet.kernels.training.batch_step` for the rows ``rows`` of the CSR matrix in ``xb``.

    ``grads`` is ``(dWs, dbs)``, ``above`` is :func:`layers_above`'s, ``xb``
    :func:`column_buffers`' (for batches of at least ``rows.size`` rows).  The
    targets and row weights are in the work buffer's ``Yb`` and ``rw``, as
    for the dense step; returns the weighted cost of the batch.
    """
    dWs, dbs = grads
    As, Zs, Ds, _, Yb, rw = views
    _, _, _, acts, custom = spec_parts(spec)
    fns = spec_fns(spec)
    loss = spec[SPEC_LOSS]
    L = len(Ws)
    m = rows.size
    keep_logits = is_simplified(loss, acts[L - 1])
    sparse_forward(spec, Ws, bs, views, above, xb, rows, dropout, rng, keep_logits)
    A_out = As[L][:m]
    Z_out = Zs[L - 1][:m] if keep_logits or needs_z(acts[L - 1]) else A_out
    c = output_cost(Z_out, A_out, Yb[:m], loss, acts[L - 1], rw[:m], fns)
    if not (want_grad and np.isfinite(c)):
        return c
    output_delta(A_out, Z_out, Yb[:m], loss, acts[L - 1], custom[L - 1], fns, rw[:m], Ds[L - 1][:m])
    backward_layers(spec, Ws, bs, dWs, dbs, views, m, dropout, sgd_lr, 1)
    _first_layer_update(Ds[0][:m], xb, Ws[0], bs[0], dWs[0], dbs[0], sgd_lr)
    return c


@jit
def _batch_targets(Y, sw, rows, sw_total, Yb, rw):
    """Copy the targets of ``rows`` into ``Yb`` and set ``rw`` to ``sw / sw_total``; return the batch's ``sum(sw)``.

    ``sw_total <= 0`` divides by the batch's own sum (as the dense gather does).
    """
    total = 0.0
    for i in range(rows.size):
        r = rows[i]
        for j in range(Y.shape[1]):
            Yb[i, j] = Y[r, j]
        total += sw[r]
    div = sw_total if sw_total > 0 else total
    for i in range(rows.size):
        rw[i] = sw[rows[i]] / div if div > 0 else 0.0
    return total


@jit
def sparse_predict_flat(theta, spec, x, ws, out):
    """Fill ``out`` with the outputs for every row of the CSR matrix ``x`` (work buffer of :func:`work_spec`)."""
    Ws, bs = param_views(theta, spec)
    cap, views, _ = work_views(ws, work_spec(spec))
    above = layers_above(Ws, bs, views)
    xb = column_buffers(x, spec, cap)
    no_logits = np.bool_(False)  # not the literal, for which sparse_forward would be compiled once more
    n = out.shape[0]
    L = len(Ws)
    no_rng = np.zeros(1, np.uint64)
    for start in range(0, n, cap):
        m = min(cap, n - start)
        rows = np.arange(start, start + m)
        sparse_forward(spec, Ws, bs, views, above, xb, rows, 0.0, no_rng, no_logits)
        copy_rows(views[0][L], 0, m, out, start)


@jit
def sparse_cost_and_gradient_flat(theta, spec, x, Y, sw, sw_total, l2, ws, grad, want_grad):
    """:func:`numbanet.kernels.training.cost_and_gradient_flat` for the CSR matrix ``x``."""
    Ws, bs = param_views(theta, spec)
    cap, views, part = work_views(ws, work_spec(spec))
    Yb, rw = views[4], views[5]
    grads = param_views(part, spec)
    above = layers_above(Ws, bs, views)
    xb = column_buffers(x, spec, cap)
    n = Y.shape[0]
    no_rng = np.zeros(1, np.uint64)
    cost = 0.0
    if want_grad:
        for k in range(grad.size):
            grad[k] = 0.0
    for start in range(0, n, cap):
        rows = np.arange(start, min(cap, n - start) + start)
        _batch_targets(Y, sw, rows, sw_total, Yb, rw)
        cost += sparse_batch_step(spec, Ws, bs, grads, views, above, xb, rows, 0.0, no_rng, want_grad, -1.0)
        if want_grad:
            for k in range(grad.size):
                grad[k] += part[k]
    if l2 != 0.0:
        cost += l2_penalty(theta, spec, l2)
        if want_grad:
            add_l2_gradient(theta, grad, spec, l2)
    return cost


@jit
def sparse_train_slice_flat(theta, spec, x, Y, sw, ws, state, backup, run, order, rng, pos):
    """:func:`numbanet.kernels.training.train_slice_flat` for the CSR matrix ``x`` (no bad rows: checked before).

    A mini-batch is the rows ``order[start:start + m]`` of ``x``, read in
    place; the plain-SGD fold applies to every batch (the first layer's step
    touches only the batch's columns, whatever its size).
    """
    Ws, bs = param_views(theta, spec)
    _, views, grad = work_views(ws, work_spec(spec))
    Yb, rw = views[4], views[5]
    grads = param_views(grad, spec)
    above = layers_above(Ws, bs, views)
    lrs = run_parts(run)[1]
    xb = column_buffers(x, spec, pos[POS_BATCH_SIZE])
    no_bad_row = np.int64(-1)  # X was checked; an int64, not a literal (one compiled finish_batch)
    l2, dropout = run[RUN_L2], run[RUN_DROPOUT]
    n = order.size  # the training rows: all of X, or those a validation split leaves
    batch_size = pos[POS_BATCH_SIZE]
    fused = _fused_sgd(run, pos)
    pos[POS_STATUS] = OK
    done = 0
    while pos[POS_EPOCH] < lrs.size and done < pos[POS_BUDGET]:
        if pos[POS_BATCH] == 0:
            _start_epoch(theta, state, backup, run, order, Y.shape[0], rng, pos)
        start = pos[POS_BATCH] * batch_size
        rows = order[start : min(start + batch_size, n)]
        wsum = _batch_targets(Y, sw, rows, 0.0, Yb, rw)
        sgd_lr = lrs[pos[POS_EPOCH]] if fused else -1.0
        c = sparse_batch_step(spec, Ws, bs, grads, views, above, xb, rows, dropout, rng, wsum > 0, sgd_lr)
        if l2 != 0.0:
            c += l2_penalty(theta, spec, l2)
        go_on = finish_batch(theta, spec, grad, state, backup, run, pos, n, c, wsum, sgd_lr, no_bad_row)
        if pos[POS_STATUS] == OK:
            done += 1
        if not go_on:
            break
    pos[POS_DONE] = done
