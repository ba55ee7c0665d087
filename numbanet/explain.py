r"""Attributions: which inputs made a network give the output it gave.

The derivation's backward recursion, taken one step past the first layer,
gives the gradient of an output with respect to the input,
:math:`\partial f / \partial x = (W^1)^T \delta^1` (docs/derivation.md,
"The input delta and integrated gradients"); the kernels are in
:mod:`numbanet.kernels.explain`.

* :func:`gradients` -- :math:`\partial f / \partial x` for each row (a saliency map);
* :func:`integrated_gradients` -- Sundararajan, Taly and Yan (2017): the
  gradient averaged along the straight path from a baseline to the row, times
  the difference, by Gauss--Legendre quadrature (captum's default method);
  the attributions of a row sum to :math:`f(x) - f(\text{baseline})`;
* :func:`shap_explanation` -- the same as a ``shap.Explanation`` (needs shap),
  for ``shap.plots``.

``model`` is a :class:`numbanet.Network` or a fitted
:class:`numbanet.MLPClassifier` / :class:`numbanet.MLPRegressor`.  ``f`` is
the output attributed: for a classifier (an ``MLPClassifier``, or a network
with a softmax output) the probability of one class -- by default the
predicted class of each row -- and otherwise one output, by default output 0.
``target`` chooses it: an index (a column of ``predict_proba`` for a
classifier, of ``predict`` otherwise), or one per row.

Everything runs in the network's dtype, in chunks of at most
:data:`numbanet.config.CHUNK` rows or path points (memory stays bounded), each
call in a work buffer of its own, so calls from many threads at once are
safe, as ``predict`` is.
"""

import numbers

import numpy as np

from numbanet import _validation as check
from numbanet import config
from numbanet._numba import load_kernels_without_refresh
from numbanet.export._model import _network_of
from numbanet.kernels import explain as _kernels

# This module loads after ``import numbanet`` made the kernels it imported load without Numba's refresh.
load_kernels_without_refresh()

#: The number of interpolation points ``integrated_gradients`` uses by default, as captum does.
DEFAULT_STEPS = 50


def quadrature(steps):
    """Return the Gauss--Legendre points and weights on [0, 1] for ``steps`` points, as captum's ``"gausslegendre"``.

    Examples
    --------
    >>> alphas, weights = quadrature(3)
    >>> bool(abs(weights.sum() - 1.0) < 1e-15 and abs((weights * alphas**2).sum() - 1 / 3) < 1e-15)
    True
    """
    x, w = np.polynomial.legendre.leggauss(steps)
    return 0.5 * (1.0 + x), 0.5 * w


def gradients(model, X, target=None):
    r"""Return the gradient of the attributed output with respect to the input, for every row.

    Parameters
    ----------
    model : Network, MLPClassifier or MLPRegressor (fitted)
    X : array-like of shape (n_samples, n_features)
    target : int or array-like of int of shape (n_samples,), optional
        The output attributed in every row, or in each row (see the module
        docstring); by default the predicted class of a classifier, else 0.

    Returns
    -------
    ndarray of shape (n_samples, n_features), the network's dtype
        :math:`\partial f_{\text{target}} / \partial x` at each row.

    Examples
    --------
    >>> import numpy as np, numbanet
    >>> net = numbanet.Network([3, 2], activations="identity", seed=0)  # f = W x + b: the gradient is a row of W
    >>> g = numbanet.explain.gradients(net, np.ones((5, 3)), target=1)
    >>> bool(np.all(g == net.weights[0][1]))
    True
    """
    net, est = _network_of(model, "gradients")
    X = _inputs(net, est, X)
    t, coef = _targets(net, est, X, target)
    out = np.empty(X.shape, dtype=net.dtype)
    _call(net, X.shape[0], _kernels.input_gradients_flat, (X, t, coef), out)
    return out


def integrated_gradients(model, X, baseline=None, steps=DEFAULT_STEPS, target=None):
    r"""Return the integrated gradients of every row, by Gauss--Legendre quadrature.

    :math:`\phi_j(x) = (x_j - b_j) \int_0^1 \partial f / \partial x_j \,\big|_{b + \alpha (x - b)}\, d\alpha`,
    the integral approximated with ``steps`` Gauss--Legendre points on [0, 1]
    (:func:`quadrature`; captum's ``IntegratedGradients`` with
    ``method="gausslegendre"``, its default).  The row's attributions sum to
    :math:`f(x) - f(b)` up to the quadrature's error (completeness).

    Parameters
    ----------
    model : Network, MLPClassifier or MLPRegressor (fitted)
    X : array-like of shape (n_samples, n_features)
    baseline : None, array-like of shape (n_features,), (1, n_features) or (n_samples, n_features)
        The starting point of each path: zeros by default, one row for every
        row of ``X``, or one per row.
    steps : int, default 50
        Interpolation points per row.
    target : int or array-like of int of shape (n_samples,), optional
        As for :func:`gradients`.

    Returns
    -------
    ndarray of shape (n_samples, n_features), the network's dtype

    Examples
    --------
    >>> import numpy as np, numbanet
    >>> net = numbanet.Network([3, 8, 1], activations=["tanh", "sigmoid"], seed=0)
    >>> x = np.array([[0.5, -1.0, 2.0]])
    >>> phi = numbanet.explain.integrated_gradients(net, x)
    >>> bool(abs(phi.sum() - (net.predict(x) - net.predict(np.zeros((1, 3))))[0, 0]) < 1e-6)
    True
    """
    net, est = _network_of(model, "integrated_gradients")
    X = _inputs(net, est, X)
    t, coef = _targets(net, est, X, target)
    B = _baseline(net, X, baseline)
    return _integrated(net, X, B, _steps(steps), t, coef)


def shap_explanation(model, X, baseline=None, steps=DEFAULT_STEPS, target=None):
    """Return integrated gradients as a ``shap.Explanation``, for ``shap.plots`` (needs the optional package shap).

    ``values`` are :func:`integrated_gradients` (same arguments), ``base_values``
    the attributed output at each row's baseline -- so ``base_values +
    values.sum(1)`` is the output at the row, up to the quadrature's error, as
    SHAP's additivity asks -- ``data`` the rows, and ``feature_names`` the
    estimator's ``feature_names_in_`` when it was fitted on named columns.

    Raises
    ------
    ImportError
        When shap is not installed.
    """
    try:
        import shap
    except ImportError:
        raise ImportError(
            "shap_explanation needs the optional package shap (pip install shap); "
            "numbanet.explain.gradients and integrated_gradients work without it"
        ) from None
    net, est = _network_of(model, "shap_explanation")
    X = _inputs(net, est, X)
    t, coef = _targets(net, est, X, target)
    B = _baseline(net, X, baseline)
    values = _integrated(net, X, B, _steps(steps), t, coef)
    at_baseline = _attributed(net, np.broadcast_to(B, X.shape), t, coef)
    names = getattr(est, "feature_names_in_", None)
    return shap.Explanation(
        values=values,
        base_values=at_baseline,
        data=np.array(X),
        feature_names=None if names is None else list(names),
    )


# ------------------------------------------------------------------------ helpers


def _call(net, rows, kernel, args, out):
    """Run ``kernel(theta, spec, *args, ws, out)`` in a work buffer lent by the network's pool (as ``predict``)."""
    ws, _ = net._buffers.acquire(min(config.CHUNK, rows))
    try:
        with net._loud_pieces("explain"):  # a custom piece that raises: one CustomPieceError, as in predict
            kernel(net.params, net._spec, *args, ws, out)
    finally:
        net._buffers.release(ws)


def _integrated(net, X, B, steps, t, coef):
    alphas, weights = (a.astype(net.dtype) for a in quadrature(steps))
    out = np.empty(X.shape, dtype=net.dtype)
    _call(net, X.shape[0] * steps, _kernels.integrated_gradients_flat, (X, B, t, coef, alphas, weights), out)
    return out


def _inputs(net, est, X):
    """``X`` checked as the estimator's ``predict`` checks it (feature names too), in the network's dtype."""
    if type(X).__module__.startswith("scipy.sparse"):
        raise ValueError("explain takes a dense X (its attributions are dense, one per feature); pass X.toarray()")
    if est is not None:
        X = est._checked_inputs(X)
    return net._checked_inputs(X)


def _steps(steps):
    return check.positive_int(steps, "steps")


def _kind(net, est):
    """``"binary"`` (one sigmoid output, two classes), ``"classes"`` (one output per class) or ``"outputs"``."""
    if est is not None:
        from numbanet.estimators import MLPClassifier  # loaded already: est is one of the estimators

        if isinstance(est, MLPClassifier):
            return "binary" if est.n_outputs_ == 1 else "classes"
        return "outputs"
    return "classes" if net.activation_names[-1] == "softmax" else "outputs"


def _targets(net, est, X, target):
    """Return ``(t, coef)``: each row's output column (int64) and its factor, +1, or -1 for a binary first class."""
    kind = _kind(net, est)
    n = X.shape[0]
    n_targets = 2 if kind == "binary" else net.sizes[-1]
    if target is not None:
        t = _checked_target(target, n, n_targets, "outputs" if kind == "outputs" else "classes")
    elif kind == "outputs":
        t = np.zeros(n, dtype=np.int64)
    else:
        P = net.predict(X)
        t = (P[:, 0] > 0.5).astype(np.int64) if kind == "binary" else P.argmax(axis=1).astype(np.int64)
    if kind == "binary":  # one output p = P(second class); the first class's probability is 1 - p
        return np.zeros(n, dtype=np.int64), np.where(t == 1, 1.0, -1.0).astype(net.dtype)
    return t, np.ones(n, dtype=net.dtype)


def _checked_target(target, n, n_targets, kind):
    what = "a class index (a column of predict_proba)" if kind == "classes" else "an output index"
    scalar = isinstance(target, numbers.Integral) and not isinstance(target, bool)
    if scalar:
        t = np.full(n, int(target), dtype=np.int64)
    else:
        arr = np.asarray(target)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise ValueError(
                f"target must be {what} (an integer), or a 1-D integer array with one per row of X ({n}); "
                f"got {_describe(target, arr)}"
            )
        if arr.shape[0] != n:
            raise ValueError(f"target has {arr.shape[0]} entries, but X has {n} rows; give one per row")
        t = arr.astype(np.int64)
    bad = np.flatnonzero((t < 0) | (t >= n_targets))
    if bad.size:
        where = "" if scalar else f"[{bad[0]}]"
        raise ValueError(f"target{where} is {t[bad[0]]}, not {what} in [0, {n_targets})")
    return t


def _describe(value, arr):
    if isinstance(value, (bool, np.bool_)):
        return f"{value!r} (a bool)"
    return f"{value!r}" if arr.ndim == 0 else f"an array of dtype {arr.dtype} and shape {arr.shape}"


def _baseline(net, X, baseline):
    """Return the baseline as a ``(1, n_features)`` or ``(n_samples, n_features)`` matrix of the network's dtype."""
    if baseline is None:
        return np.zeros((1, X.shape[1]), dtype=net.dtype)
    arr = baseline
    if not isinstance(baseline, (str, bytes)) and np.ndim(baseline) == 1:
        arr = np.asarray(baseline).reshape(1, -1)
    B = net._checked_inputs(arr, name="baseline")
    if B.shape[0] not in (1, X.shape[0]):
        raise ValueError(
            f"baseline has {B.shape[0]} rows; give one row for every row of X, or one per row ({X.shape[0]})"
        )
    return B


def _attributed(net, X, t, coef):
    """Return the attributed output ``f`` at each row: ``a^L[t]``, or ``1 - a^L[t]`` where ``coef`` is -1."""
    v = net.predict(X)[np.arange(X.shape[0]), t]
    return np.where(coef < 0, 1.0 - v, v)
