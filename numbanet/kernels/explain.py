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
  as many batched passes as the points fill buffers.

The forward pass is :func:`numbanet.kernels.training.forward_batch`, the
layers' backward steps those of training, so custom activations go through
the same dispatch.  Once the forward pass is done the input rows
``As[0]`` are read no more (no weight gradient is wanted), so the input
delta is written there.
"""

import numpy as np

from numbanet._jit import jit
from numbanet.kernels.activations import backprop_inplace, needs_z
from numbanet.kernels.dense import hidden_delta, input_delta
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
def backward_to_input(Ws, acts, custom, fns, views, m):
    r"""Put :math:`\partial f / \partial X` of ``m`` rows in ``As[0][:m]``.

    The seed :math:`\partial f / \partial A^L` must be in ``Ds[L-1][:m]`` and
    the forward pass of the rows in ``views`` (without dropout).
    """
    As, Zs, Ds, _, _, _ = views
    L = len(Ws)
    delta = Ds[L - 1][:m]
    A_out = As[L][:m]
    Z_out = Zs[L - 1][:m] if needs_z(acts[L - 1]) else A_out
    backprop_inplace(delta, A_out, Z_out, acts[L - 1], custom[L - 1], fns, 1.0)
    for l in range(L - 1, 0, -1):
        nxt = Ds[l - 1][:m]
        A_prev = As[l][:m]
        Z = Zs[l - 1][:m] if needs_z(acts[l - 1]) else A_prev
        hidden_delta(delta, Ws[l], A_prev, Z, acts[l - 1], custom[l - 1], fns, 1.0, nxt)
        delta = nxt
    input_delta(delta, Ws[0], As[0][:m])


@jit
def chunk_gradients(theta, spec, views, start, m, steps, target, coef):
    """Forward the ``m`` input rows in ``As[0]``, then put their gradients ∂f/∂x in ``As[0][:m]``."""
    _, _, _, acts, custom = spec_parts(spec)
    fns = spec_fns(spec)
    Ws, bs = param_views(theta, spec)
    As, Zs, Ds, Ms, _, _ = views
    L = len(Ws)
    forward_batch(Ws, bs, acts, custom, fns, As, Zs, m, 0.0, Ms, np.zeros(1, np.uint64), False)
    seed_outputs(Ds[L - 1], start, m, steps, target, coef)
    backward_to_input(Ws, acts, custom, fns, views, m)


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
    n = X.shape[0]
    for start in range(0, n, cap):
        m = min(cap, n - start)
        copy_rows(X, start, m, A0, 0)
        chunk_gradients(theta, spec, views, start, m, 1, target, coef)
        copy_rows(A0, 0, m, out, start)


@jit
def path_points(X, B, alphas, start, m, A0):
    r"""Fill ``A0[:m]`` with the path points :math:`b_i + \alpha_s (x_i - b_i)`.

    Batch row ``r`` is point ``(i, s) = divmod(start + r, steps)``.  ``B``
    has one row (shared by every row of ``X``) or one per row.
    """
    steps = alphas.size
    for r in range(m):
        i = (start + r) // steps
        a = alphas[start + r - i * steps]
        bi = i if B.shape[0] > 1 else 0
        for j in range(X.shape[1]):
            A0[r, j] = B[bi, j] + a * (X[i, j] - B[bi, j])


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
def integrated_gradients_flat(theta, spec, X, B, target, coef, alphas, weights, ws, out):
    r"""Fill ``out`` with the integrated gradients of every row by the quadrature rule ``(alphas, weights)``.

    :math:`\phi_{ij} = (x_{ij} - b_{ij}) \sum_s w_s\, \partial f_i / \partial x_j
    \,\big|_{b_i + \alpha_s (x_i - b_i)}`.  The ``n_samples * steps`` points go
    through :func:`chunk_gradients` in batches of the work buffer's rows.

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
    cap, views, _ = work_views(ws, spec)
    A0 = views[0][0]
    n, n_in = X.shape
    for i in range(n):
        for j in range(n_in):
            out[i, j] = 0.0
    total = n * alphas.size
    for start in range(0, total, cap):
        m = min(cap, total - start)
        path_points(X, B, alphas, start, m, A0)
        chunk_gradients(theta, spec, views, start, m, alphas.size, target, coef)
        add_weighted(A0, start, m, weights, out)
    for i in range(n):
        bi = i if B.shape[0] > 1 else 0
        for j in range(n_in):
            out[i, j] *= X[i, j] - B[bi, j]
