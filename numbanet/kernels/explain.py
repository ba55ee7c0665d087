r"""Attribution kernels: the gradient of one output with respect to the input, and integrated gradients.

The backward pass of :mod:`numbanet.kernels.training` stops at :math:`\Delta^1`
(the parameters need no more).  Taken one step further it gives the input's
gradient, :math:`\partial f / \partial X = \Delta^1 W^1`
(:func:`numbanet.kernels.dense.input_delta`), where the output delta is seeded
not with a cost's derivative but with that of the attributed output
:math:`f_i = c_i\,a^L_{i,t_i}` of each row: :math:`\partial f / \partial A^L`
is :math:`c_i` at column :math:`t_i`, zero elsewhere, and the output layer's
:func:`numbanet.kernels.activations.backprop_inplace` turns it into
:math:`\partial f / \partial Z^L` (for softmax
:math:`c_i\,p_{t}(e_{t} - p)`); ``c_i = -1`` attributes
:math:`1 - a^L` (a binary classifier's first class) up to its constant.

Python calls two entry points, on the flat arrays of
:mod:`numbanet.kernels.layout` and a work buffer of its own (as
:func:`numbanet.kernels.training.predict_flat` does):

* :func:`input_gradients_flat` -- :math:`\partial f / \partial x` for every row;
* :func:`integrated_gradients_flat` -- integrated gradients by a quadrature
  rule: the rows' interpolated points fill the work buffer's batch rows
  together (row after row, each row's points in order), so a chunk holds
  the points of several rows or part of one, and the whole computation is
  as many batched passes as the points fill buffers.  The first layer is
  linear in the path's parameter, so its two products (forward and the
  input delta) are done once per row, not once per point.

The forward pass is :func:`numbanet.kernels.training.forward_batch`, the
layers' backward steps those of training, so custom activations go through
the same dispatch.  Once the forward pass is done the input rows
``As[0]`` are read no more (no weight gradient is wanted), so the input
delta is written there.
"""

import numpy as np

from numbanet._jit import jit
from numbanet.kernels.activations import activate, backprop_inplace, needs_z
from numbanet.kernels.dense import hidden_delta, input_delta, linear, matmul_nt
from numbanet.kernels.layout import spec_fns, spec_parts
from numbanet.kernels.training import copy_rows, forward_batch, param_views, work_views


@jit
def seed_outputs(D, start, m, steps, target, coef):
    r"""Fill ``D[:m]`` with :math:`\partial f / \partial A^L`: ``coef[i]`` at column ``target[i]``, zero elsewhere.

    Batch row ``r`` belongs to data row ``i = (start + r) // steps`` (``steps``
    points per row; 1 for plain gradients).
    """
    for r in range(m):
        i = (start + r) // steps
        for j in range(D.shape[1]):
            D[r, j] = 0.0
        D[r, target[i]] = coef[i]


@jit
def forward_from(Ws, bs, acts, custom, fns, views, m, first):
    """Forward ``m`` rows from layer ``first`` on, their input in ``As[first]`` (training's ``forward_batch``)."""
    As, Zs, _, Ms, _, _ = views
    forward_batch(
        Ws[first:],
        bs[first:],
        acts[first:],
        custom[first:],
        fns,
        As[first:],
        Zs[first:],
        m,
        0.0,
        Ms[first:],
        np.zeros(1, np.uint64),
        False,
    )


@jit
def first_delta(theta, spec, views, start, m, steps, target, coef, first):
    r"""Forward ``m`` rows from layer ``first`` (input in ``As[first][:m]``), seed, return their :math:`\Delta^1`.

    :math:`\Delta^1 = \partial f / \partial Z^1`, by the hidden deltas of
    training from the seed :func:`seed_outputs` (batch row ``r`` belonging to
    data row ``(start + r) // steps``).  ``first`` is 0, or 1 when the caller
    put :math:`A^1` (and :math:`Z^1` where σ' needs it) in place itself.
    """
    _, _, _, acts, custom = spec_parts(spec)
    fns = spec_fns(spec)
    Ws, bs = param_views(theta, spec)
    As, Zs, Ds, _, _, _ = views
    L = len(Ws)
    forward_from(Ws, bs, acts, custom, fns, views, m, first)
    delta = Ds[L - 1][:m]
    seed_outputs(delta, start, m, steps, target, coef)
    A_out = As[L][:m]
    Z_out = Zs[L - 1][:m] if needs_z(acts[L - 1]) else A_out
    backprop_inplace(delta, A_out, Z_out, acts[L - 1], custom[L - 1], fns, 1.0)
    for l in range(L - 1, 0, -1):
        nxt = Ds[l - 1][:m]
        A_prev = As[l][:m]
        Z = Zs[l - 1][:m] if needs_z(acts[l - 1]) else A_prev
        hidden_delta(delta, Ws[l], A_prev, Z, acts[l - 1], custom[l - 1], fns, 1.0, nxt)
        delta = nxt
    return delta


@jit
def input_gradients_flat(theta, spec, X, target, coef, ws, out):
    r"""Fill ``out`` with :math:`\partial f_i / \partial x_i` for every row, in chunks of the work buffer's rows.

    Parameters
    ----------
    theta, spec : arrays
        The network (:mod:`numbanet.kernels.layout`).
    X : array of shape (n_samples, n_features)
    target : int64 array of shape (n_samples,)
        The output attributed in each row.
    coef : array of shape (n_samples,), the network's dtype
        Its factor: :math:`f_i = \text{coef}_i\,a^L_{i,\text{target}_i}` (+ a constant).
    ws : array
        A work buffer (:func:`numbanet.kernels.layout.work_size`).
    out : array of shape (n_samples, n_features)
        Filled with the gradients.
    """
    cap, views, _ = work_views(ws, spec)
    A0 = views[0][0]
    W1 = param_views(theta, spec)[0][0]
    n = X.shape[0]
    for start in range(0, n, cap):
        m = min(cap, n - start)
        copy_rows(X, start, m, A0, 0)
        delta1 = first_delta(theta, spec, views, start, m, 1, target, coef, 0)
        input_delta(delta1, W1, A0[:m])  # the rows of X are read no more: the gradients go there
        copy_rows(A0, 0, m, out, start)


@jit
def path_pre_activations(U, V, alphas, start, m, Z):
    r"""Fill ``Z[:m]`` with :math:`Z^1` at the path points: :math:`u_i + \alpha_s v_i`.

    Batch row ``r`` is point ``(i, s) = divmod(start + r, steps)``; ``U`` has
    one row (a baseline shared by every row) or one per row.
    """
    steps = alphas.size
    for r in range(m):
        i = (start + r) // steps
        a = alphas[start + r - i * steps]
        ui = i if U.shape[0] > 1 else 0
        for j in range(Z.shape[1]):
            Z[r, j] = U[ui, j] + a * V[i, j]


@jit
def add_weighted(G, start, m, weights, out):
    """``out[i] += weights[s] * G[r]`` for each batch row ``r``, point ``(i, s) = divmod(start + r, steps)``."""
    steps = weights.size
    for r in range(m):
        i = (start + r) // steps
        w = weights[start + r - i * steps]
        for j in range(G.shape[1]):
            out[i, j] += w * G[r, j]


@jit
def path_ends(X, B, W1, b1, diff):
    r"""Fill ``diff`` with :math:`x_i - b_i`; return :math:`U = B (W^1)^T + b^1`, :math:`V = \text{diff}\,(W^1)^T`."""
    n, n_in = X.shape
    for i in range(n):
        bi = i if B.shape[0] > 1 else 0
        for j in range(n_in):
            diff[i, j] = X[i, j] - B[bi, j]
    Bc = np.empty((B.shape[0], n_in), X.dtype)  # a writeable copy: one BLAS specialisation
    copy_rows(B, 0, B.shape[0], Bc, 0)
    U = np.empty((B.shape[0], W1.shape[0]), X.dtype)
    linear(Bc, W1, b1, U)
    V = np.empty((n, W1.shape[0]), X.dtype)
    matmul_nt(diff, W1, V)
    return U, V


@jit
def integrated_gradients_flat(theta, spec, X, B, target, coef, alphas, weights, ws, out):
    r"""Fill ``out`` with the integrated gradients of every row by the quadrature rule ``(alphas, weights)``.

    :math:`\phi_i = (x_i - b_i) \odot \sum_s w_s\, \nabla f_i(b_i + \alpha_s (x_i - b_i))`.
    The first layer is linear in α, so neither of its products is done per
    point: the pre-activations of the path are
    :math:`Z^1 = u_i + \alpha_s v_i` with :math:`u_i = W^1 b_i + b^1`,
    :math:`v_i = W^1 (x_i - b_i)` (two products per row), and the weighted
    sum of the points' input gradients is :math:`(\sum_s w_s \delta^1_s) W^1`
    (:func:`numbanet.kernels.dense.input_delta` once per row).  The
    ``n_samples * steps`` points go through the other layers in batches of the
    work buffer's rows.

    Parameters
    ----------
    theta, spec, X, target, coef, ws
        As for :func:`input_gradients_flat`.
    B : array of shape (1, n_features) or (n_samples, n_features)
        The baseline: one for every row, or one per row.
    alphas, weights : arrays of shape (steps,), the network's dtype
        The points in [0, 1] and the weights of the quadrature rule.
    out : array of shape (n_samples, n_features)
        Filled with the attributions.
    """
    _, _, _, acts, custom = spec_parts(spec)
    fns = spec_fns(spec)
    Ws, bs = param_views(theta, spec)
    cap, views, _ = work_views(ws, spec)
    As, Zs, _, _, _, _ = views
    n = X.shape[0]
    U, V = path_ends(X, B, Ws[0], bs[0], out)  # out holds x - b until the end
    G = np.zeros_like(V)  # row i: sum over its points of w_s delta^1
    total = n * alphas.size
    for start in range(0, total, cap):
        m = min(cap, total - start)
        Z = Zs[0][:m] if needs_z(acts[0]) else As[1][:m]
        path_pre_activations(U, V, alphas, start, m, Z)
        activate(Z, acts[0], custom[0], fns, As[1][:m])
        delta1 = first_delta(theta, spec, views, start, m, alphas.size, target, coef, 1)
        add_weighted(delta1, start, m, weights, G)
    A0 = As[0]
    for start in range(0, n, cap):
        m = min(cap, n - start)
        input_delta(G[start : start + m], Ws[0], A0[:m])
        for r in range(m):
            for j in range(X.shape[1]):
                out[start + r, j] *= A0[r, j]
