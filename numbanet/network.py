"""The :class:`Network`: parameters, input validation, and the epoch loop.

This is the thin Python layer.  It checks every input once, keeps all
parameters in one flat vector (``net.params``) of which ``net.weights[l]`` and
``net.biases[l]`` are live views, and hands training to
:class:`numbanet.engine.TrainingRun`, which runs the jitted loop in short
slices so that Ctrl-C, progress bars and callbacks are served promptly and an
interrupted ``fit`` leaves the network consistent.

Threads: ``predict``, ``loss``, ``gradients``, ``accuracy`` and ``forward``
may be called from any number of threads at once (each call works in a
buffer of its own) and return exactly what a single thread gets.  A ``fit``
or ``train_on_batch`` while another thread is fitting the same network is
refused with :class:`RuntimeError`.

Non-goals: convolutions, recurrent layers, GPUs, automatic differentiation of
arbitrary code.  numbanet does fully-connected networks, exactly.
"""

import contextlib
import functools
import numbers
import threading
import warnings

import numpy as np

from numbanet import _csr, config, interrupts
from numbanet import _validation as check
from numbanet.callbacks import accuracy
from numbanet.engine import BadInputError, TrainingRun, WorkspacePool
from numbanet.exceptions import CustomPieceError
from numbanet.kernels import activations as _act
from numbanet.kernels import dense as _dense
from numbanet.kernels import layout as _layout
from numbanet.kernels import losses as _loss
from numbanet.kernels import sparse as _sparse
from numbanet.kernels import training as _train
from numbanet.lbfgs import LBFGSRun
from numbanet.pieces import Activation, Loss, forget_failure, network_fns, raise_failures
from numbanet.plan import FitPlan


def _loud(call, restore=False):
    """Decorate a method of Network: a custom piece's exception in it becomes one CustomPieceError.

    See :meth:`Network._loud_pieces`; ``restore`` (fit) puts the network back first.
    """

    def decorate(method):
        @functools.wraps(method)
        def loud(self, *args, **kwargs):
            if not self._fn_owners:  # no custom piece: nothing can fail this way
                return method(self, *args, **kwargs)
            with self._loud_pieces(call, restore):
                return method(self, *args, **kwargs)

        return loud

    return decorate


_LOUD = threading.local()  # .depth: the calls of this thread inside Network._loud_pieces


class Network:
    """A fully-connected network trained by backpropagation.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first: ``[n_features, hidden..., n_outputs]``; at
        least two entries.
    activations : str, Activation, or a sequence of them, default "sigmoid"
        One for every weighted layer, or one per weighted layer
        (``len(sizes) - 1``).  Names: ``"sigmoid"``, ``"tanh"``, ``"relu"``,
        ``"leaky_relu"`` (slope 0.01), ``"elu"`` (α = 1), ``"gelu"`` (exact
        erf form), ``"silu"``, ``"softplus"``, ``"identity"``, and
        ``"softmax"`` (output layer only, at least 2 outputs), ``"exp"``
        (output layer only); or a custom
        :class:`numbanet.Activation`.  Custom and built-in activations mix
        freely.
    loss : str or Loss, default "mse"
        Per-sample cost (docs/derivation.md, "Costs"): ``"mse"``,
        ``"huber"`` (δ = 1), ``"cross_entropy"`` (needs a softmax output),
        ``"binary_cross_entropy"`` (needs a sigmoid output), ``"poisson"``
        (half the Poisson deviance, targets >= 0; needs an exp output), or a custom
        :class:`numbanet.Loss`, which pairs with any output activation.
    dtype : {numpy.float64, numpy.float32}, default float64
        Precision of parameters and computation.
    seed : int or None
        Seeds initialisation, shuffling and dropout: the same seed and data on
        the same machine give identical weights.
    l2 : float, default 0
        L2 penalty λ: the cost is ``mean per-sample cost + λ/2 · Σ_l ‖W^l‖²``
        (weights only, not biases).  It is part of :meth:`loss` and
        :meth:`gradients`, so gradient checks cover it.
    dropout : float in [0, 1), default 0
        Inverted-dropout probability on hidden layers, used only by
        :meth:`fit` / :meth:`train_on_batch`; :meth:`predict`, :meth:`loss` and
        :meth:`gradients` are deterministic.

    Attributes
    ----------
    activations : tuple
        Each weighted layer's activation as given: a name, or an Activation.
    activation_names : tuple of str
        Their names.
    loss_name : str
        The loss's name (a custom loss's own name).
    custom_loss : Loss or None
    params : ndarray of shape (n_params,)
        Every parameter in one vector: ``W^1`` (row-major), ``b^1``, ``W^2``, ...
    weights : list of ndarray
        ``weights[l]`` has shape ``(sizes[l+1], sizes[l])`` (outputs by inputs)
        and is a view into ``params``: writing into it changes the network.
    biases : list of ndarray
        ``biases[l]`` has shape ``(sizes[l+1],)``, also views.
    optimizer : Optimizer or None
        The optimizer of the last ``fit``; ``fit`` without ``optimizer=``
        continues with it.
    epochs_trained : int
        Epochs trained so far (schedules count from it); completed epochs
        only, also after an interrupted ``fit``.
    history : History or None
        The history of the latest ``fit``, filled as epochs complete, so it is
        reachable after an interrupted or failed ``fit`` too (as Keras keeps
        ``model.history``).

    Notes
    -----
    Initialisation (biases are zero):

    * sigmoid, tanh, identity, softplus, softmax layers: Glorot/Xavier
      uniform, ``U(-r, r)`` with ``r = sqrt(6 / (n_in + n_out))``;
    * relu, leaky_relu, elu, gelu and silu layers: He normal, ``N(0, 2 / n_in)``;
    * custom activations: as their ``init`` says (Glorot by default).
    """

    def __init__(self, sizes, activations="sigmoid", loss="mse", dtype=np.float64, seed=None, l2=0.0, dropout=0.0):
        sizes = self._check_sizes(sizes)
        L = len(sizes) - 1
        if isinstance(activations, (str, Activation)):
            activations = [activations] * L
        else:
            try:
                activations = list(activations)
            except TypeError:
                raise ValueError(
                    f"activations must be a name, an Activation, or a list of them; got {activations!r}"
                ) from None
        if len(activations) != L:
            raise ValueError(
                f"activations has {len(activations)} names but the network has {L} weighted layers "
                f"(sizes {sizes}); give one name or {L}"
            )
        names = []
        for i, act in enumerate(activations):
            if isinstance(act, Activation):
                names.append(act.name)
                continue
            if not isinstance(act, str) or act not in _act.BUILTINS:
                raise ValueError(
                    f"unknown activation {act!r} for layer {i + 1}; choose from "
                    f"{sorted(_act.BUILTINS)} or pass a numbanet.Activation"
                )
            if _act.BUILTINS[act].output_only and i != L - 1:
                raise ValueError(f"{act} is only allowed on the output layer, not on hidden layer {i + 1}")
            names.append(act)
        custom = {}
        for act in activations:
            if isinstance(act, Activation):
                other = custom.setdefault(act.name, act)
                if other is not act:
                    raise ValueError(
                        f"two different custom activations are both named {act.name!r}; give each its own name"
                    )
        if names[-1] == "softmax" and sizes[-1] < 2:
            raise ValueError(f"a softmax output needs at least 2 units; the output layer has {sizes[-1]}")
        if isinstance(loss, Loss):
            if loss.name in custom:
                raise ValueError(f"the custom loss and a custom activation are both named {loss.name!r}")
        elif not isinstance(loss, str) or loss not in _loss.CODES:
            raise ValueError(f"unknown loss {loss!r}; choose from {sorted(_loss.CODES)} or pass a numbanet.Loss")
        elif loss in _loss.REQUIRED_OUTPUT and names[-1] != _loss.REQUIRED_OUTPUT[loss]:
            raise ValueError(
                f"loss {loss!r} needs a {_loss.REQUIRED_OUTPUT[loss]} output layer; the output "
                f"activation is {names[-1]!r}"
            )
        dt = check.float_dtype(dtype)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise ValueError(f"seed must be an integer or None; got {seed!r}")
        self.sizes = tuple(sizes)
        self.activations = tuple(activations)
        self.activation_names = tuple(names)
        self.loss_name = loss.name if isinstance(loss, Loss) else loss
        self.custom_loss = loss if isinstance(loss, Loss) else None
        self.dtype = dt
        self.seed = seed
        self.l2 = check.non_negative_float(l2, "l2")
        self.dropout = check.non_negative_float(dropout, "dropout", upper=1.0, upper_open=True)
        self.optimizer = None
        self.epochs_trained = 0
        self.history = None
        self._pending = None
        self._fit_lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self._setup(np.empty(_layout.param_offsets(self.sizes)[2], dtype=dt))
        self._initialise()
        # State of the in-kernel generator for shuffling and dropout (numbanet.kernels.rng).
        self._rng_state = np.array([self._rng.integers(2**63)], dtype=np.uint64)

    # ------------------------------------------------------------------ set-up

    @staticmethod
    def _check_sizes(sizes):
        if isinstance(sizes, (str, bytes)):
            raise ValueError(f"sizes must be a list of layer widths; got {sizes!r}")
        try:
            sizes = list(sizes)
        except TypeError:
            raise ValueError(f"sizes must be a list of layer widths; got {sizes!r}") from None
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least 2 entries (input and output widths); got {sizes}")
        for i, s in enumerate(sizes):
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
                raise ValueError(f"layer widths must be positive integers; sizes[{i}] is {s!r}")
        return [int(s) for s in sizes]

    def _setup(self, params):
        """Attach the flat parameter vector and build the per-layer views."""
        customs = []  # the distinct custom activations, in the order of their index k
        for act in self.activations:
            if isinstance(act, Activation) and all(act is not c for c in customs):
                customs.append(act)
        acts = [_act.CUSTOM if isinstance(a, Activation) else _act.CODES[a] for a in self.activations]
        custom = [
            next(k for k, c in enumerate(customs) if c is a) if isinstance(a, Activation) else -1
            for a in self.activations
        ]
        self._loss_code = _loss.CUSTOM if self.custom_loss is not None else _loss.CODES[self.loss_name]
        self._fns, self._fn_owners = network_fns(customs, self.custom_loss)
        self._spec = _layout.network_spec(self.sizes, acts, custom, self._loss_code, self._fns)
        # Views of the spec: the one parameter layout, as the kernels read it.
        parts = _layout.spec_parts.py_func(self._spec)
        self._sizes_arr, self._w_off, self._b_off, self._acts_arr, self._custom_arr = parts
        w_off, b_off = self._w_off, self._b_off
        self.params = params
        self.weights = [params[w : w + o * i].reshape(o, i) for w, i, o in zip(w_off, self.sizes[:-1], self.sizes[1:])]
        self.biases = [params[b : b + o] for b, o in zip(b_off, self.sizes[1:])]
        self._buffers = WorkspacePool(self._spec, self.dtype)
        self._sparse_buffers = WorkspacePool(_sparse.work_spec.py_func(self._spec), self.dtype)  # no input matrix

    def _initialise(self):
        for W, b, act in zip(self.weights, self.biases, self.activations):
            n_out, n_in = W.shape
            init = act.init if isinstance(act, Activation) else _act.BUILTINS[act].init
            # Drawn 2**17 values at a time, in the order one draw of W's shape takes them (the same
            # values): a temporary of 1 MiB, not of the layer's size, so a large network takes its own size.
            flat = W.reshape(-1)
            for i in range(0, flat.size, 2**17):
                part = flat[i : i + 2**17]
                if init == "he":
                    part[...] = self._rng.normal(0.0, np.sqrt(2.0 / n_in), size=part.size)
                else:
                    r = np.sqrt(6.0 / (n_in + n_out))
                    part[...] = self._rng.uniform(-r, r, size=part.size)
            b[...] = 0.0

    # ------------------------------------------------------------ properties

    @property
    def n_params(self):
        """Number of parameters (weights and biases)."""
        return self.params.size

    @property
    def n_layers(self):
        """Number of weighted layers, L - 1 in the textbook's numbering."""
        return len(self.sizes) - 1

    @property
    def custom_pieces(self):
        """The network's custom activations and loss by name, as ``numbanet.load(..., custom=)`` takes them."""
        pieces = {a.name: a for a in self.activations if isinstance(a, Activation)}
        if self.custom_loss is not None:
            pieces[self.custom_loss.name] = self.custom_loss
        return pieces

    def __repr__(self):
        names = self.activation_names
        acts = names[0] if len(set(names)) == 1 else list(names)
        return (
            f"Network({list(self.sizes)}, activations={acts!r}, loss={self.loss_name!r}, "
            f"dtype={self.dtype.name}, seed={self.seed!r})"
        )

    # ------------------------------------------------------ pickling / copies

    def __getstate__(self):
        state = self.__dict__.copy()
        for key in (
            "weights",
            "biases",
            "_buffers",
            "_sparse_buffers",
            "_w_off",
            "_b_off",
            "_spec",
            "_sizes_arr",
            "_acts_arr",
            "_fit_lock",
            "_pending",
            "_custom_arr",
            "_fns",
            "_fn_owners",
        ):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        params = np.ascontiguousarray(state.pop("params"))
        if not params.flags.writeable:  # e.g. joblib unpickling from a read-only memory map
            params = params.copy()
        opt = state.get("optimizer")
        if opt is not None and getattr(opt, "state", None) is not None and not opt.state.flags.writeable:
            opt.state = opt.state.copy()
        self.__dict__.update(state)
        self._rng_state = np.array(self._rng_state, dtype=np.uint64)  # writeable, even from a memory map
        self._pending = None
        self._fit_lock = threading.Lock()
        self._setup(params)

    def copy(self):
        """Return an independent deep copy (parameters, optimizer state, random state)."""
        import copy

        return copy.deepcopy(self)

    def astype(self, dtype):
        """Return a copy of this network (same class) with parameters cast to ``dtype``."""
        dt = check.float_dtype(dtype)
        net = self.copy()
        net.dtype = dt
        net._setup(self.params.astype(net.dtype))
        net.optimizer = None
        return net

    # --------------------------------------------------------------- checks

    def _checked_inputs(self, X, name="X", check_finite=True):
        """``X`` as a read-only C-contiguous matrix of ``self.dtype``, one column per input; else ValueError.

        A SciPy sparse ``X`` becomes a :class:`numbanet._csr.CSRRows` instead (never a dense matrix).
        """
        if isinstance(X, _csr.CSRRows) or _csr.is_sparse(X):
            return _csr.as_csr(X, name, self.dtype, n_cols=self.sizes[0])
        return check.as_matrix(X, name, self.dtype, n_cols=self.sizes[0], what="features", check_finite=check_finite)

    def _checked_targets(self, Y, name="Y"):
        """``Y`` as such a matrix, one column per output, with values valid for the loss; else ValueError."""
        Y = check.as_matrix(Y, name, self.dtype, n_cols=self.sizes[-1], allow_1d=self.sizes[-1] == 1, what="outputs")
        if self.loss_name in ("cross_entropy", "binary_cross_entropy"):
            lo, hi = Y.min(), Y.max()
            if lo < 0 or hi > 1:
                raise ValueError(
                    f"{name} must lie in [0, 1] for loss {self.loss_name!r} (one-hot labels or probabilities); "
                    f"found values from {lo:g} to {hi:g}"
                )
        elif self.loss_name == "poisson" and Y.min() < 0:
            raise ValueError(
                f"{name} must be >= 0 for loss 'poisson' (counts or rates); the smallest value is {Y.min():g}"
            )
        check.check_target_rows(Y, name, self.loss_name)
        return Y

    def _checked_data(self, X, Y, sample_weight=None, check_finite=True):
        """``(X, Y, sample_weight)`` checked alike and against each other (same number of rows).

        With ``check_finite=False`` NaN and infinity in ``X`` are left to the
        training kernel (see ``_fit``).
        """
        X = self._checked_inputs(X, check_finite=check_finite)
        Y = self._checked_targets(Y)
        check.check_rows(X, Y)
        sw = check.sample_weights(sample_weight, X.shape[0])
        return X, Y, sw

    # ----------------------------------------------------- evaluation methods

    @_loud("forward")
    def forward(self, X):
        """Every layer's pre-activations and activations, for teaching and checks.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        Z : list of ndarray
            ``Z[l]`` of shape (n_samples, sizes[l+1]): pre-activations of weighted layer l.
        A : list of ndarray
            ``A[0]`` is a copy of X in the network's dtype (never X itself, so
            writing into the result cannot change the caller's data);
            ``A[l+1] = σ(Z[l])``.
        """
        if _csr.is_sparse(X):
            raise ValueError(
                "forward takes a dense X (it returns every layer's activations, A[0] = X, as dense "
                "arrays); pass X.toarray() for a few rows, or use predict, which takes sparse X"
            )
        A = [np.array(self._checked_inputs(X))]  # a writeable copy: never the caller's array
        Z = []
        for W, b, code, k in zip(self.weights, self.biases, self._acts_arr, self._custom_arr):
            z = np.empty((A[-1].shape[0], W.shape[0]), dtype=self.dtype)
            _dense.linear(A[-1], W, b, z)
            a = np.empty_like(z)
            _act.activate(z, code, k, self._fns, a)
            Z.append(z)
            A.append(a)
        return Z, A

    @_loud("predict")
    def predict(self, X):
        """Output activations.

        Parameters
        ----------
        X : array-like or SciPy sparse matrix of shape (n_samples, n_features)
            A sparse X (CSR, CSC, matrix or array) is used as sparse, never densified.

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), the network's dtype
        """
        X = self._checked_inputs(X)
        n = X.shape[0]
        out = np.empty((n, self.sizes[-1]), dtype=self.dtype)
        rows = self._chunk_rows()
        sparse = isinstance(X, _csr.CSRRows)
        pool = self._sparse_buffers if sparse else self._buffers
        ws, cap = pool.acquire(min(rows, n))
        try:
            for start in range(0, n, rows):
                stop = min(n, start + rows)
                if sparse:
                    _sparse.sparse_predict_flat(self.params, self._spec, X[start:stop].arrays, ws, out[start:stop])
                else:
                    _train.predict_flat(self.params, self._spec, X[start:stop], ws, out[start:stop])
                interrupts.poll()  # within a fit's validation; elsewhere Ctrl-C is raised here anyway
        finally:
            pool.release(ws)
        return out

    def _chunk_rows(self):
        """Rows of one kernel call of predict / loss / gradients: a power of two, at most CHUNK, at most CHUNK_WORK.

        Training computes a larger mini-batch in parts of these many rows too.
        """
        rows = max(1, min(config.CHUNK, config.CHUNK_WORK // self.n_params))
        return 1 << (rows.bit_length() - 1)

    def _cost(self, X, Y, sw, grad):
        """Return the weighted mean cost of ``(X, Y)`` (its gradient into ``grad``), a kernel call per chunk of rows.

        Each call's chunk is one of the kernel's own (the buffer holds exactly
        ``rows``), so the sums are added in the order one call would add them;
        the L2 term comes with the last chunk.
        """
        n, rows = X.shape[0], self._chunk_rows()
        sw_total = float(sw.sum())
        part = None if grad is None else (grad if n <= rows else np.empty_like(grad))
        sparse = isinstance(X, _csr.CSRRows)
        pool = self._sparse_buffers if sparse else self._buffers
        kernel = _sparse.sparse_cost_and_gradient_flat if sparse else _train.cost_and_gradient_flat
        ws, cap = pool.acquire(min(rows, n))
        cost = 0.0
        try:
            for start in range(0, n, rows):
                stop = min(n, start + rows)
                cost += kernel(
                    self.params,
                    self._spec,
                    X[start:stop].arrays if sparse else X[start:stop],
                    Y[start:stop],
                    sw[start:stop],
                    sw_total,
                    float(self.l2) if stop == n else 0.0,
                    ws,
                    part if part is not None else np.empty(0, dtype=self.dtype),
                    part is not None,
                )
                if part is not None and part is not grad:
                    if start == 0:
                        grad[...] = part
                    else:
                        grad += part
                interrupts.poll()
        finally:
            pool.release(ws)
        return cost

    @contextlib.contextmanager
    def _loud_pieces(self, call, restore=False):
        """Turn a custom piece's exception during the kernel call inside into one ValueError naming it.

        With ``restore`` (fit), the network is first put back as it was on entry.
        """
        # The failure record keeps one row per thread, its first failure: this call reads (and clears)
        # its own thread's only.  The outermost call forgets a failure left unread before it (a compiled
        # function called directly), which would hide this call's own.
        pieces = list(self.custom_pieces.values())
        saved = self._state() if restore else None
        depth = getattr(_LOUD, "depth", 0)
        if depth == 0:
            forget_failure()
        _LOUD.depth = depth + 1
        try:
            yield
        except CustomPieceError:  # from a call nested inside (a validation loss in fit)
            if saved is not None:
                self._set_state(saved)
            raise
        except Exception:
            self._raise_failure(pieces, call, saved)  # a failed piece's NaN may surface as a divergence first
            raise
        finally:
            _LOUD.depth = depth
        self._raise_failure(pieces, call, saved)

    def _raise_failure(self, pieces, call, saved):
        try:
            raise_failures(pieces, call)
        except CustomPieceError:
            if saved is not None:
                self._set_state(saved)
            raise

    def _state(self):
        opt = self.optimizer
        opt_state = None if opt is None or opt.state is None else (opt.state.copy(), opt.t)
        return (
            self.params.copy(),
            opt,
            opt_state,
            self.history,
            self.epochs_trained,
            self._rng_state.copy(),
            self._pending,
        )

    def _set_state(self, saved):
        params, opt, opt_state, self.history, self.epochs_trained, rng, self._pending = saved
        self.params[...] = params
        self._rng_state[...] = rng
        self.optimizer = opt
        if opt_state is not None:
            opt.state, opt.t = opt_state

    @_loud("loss")
    def loss(self, X, Y, sample_weight=None):
        """Mean per-sample cost (weighted mean with ``sample_weight``), plus the L2 term.

        Parameters
        ----------
        X : array-like or SciPy sparse matrix of shape (n_samples, n_features)
        Y : array-like of shape (n_samples, n_outputs)
            (1-D accepted for a single output).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; the cost is ``Σ s_i c_i / Σ s_i``.

        Returns
        -------
        float
        """
        X, Y, sw = self._checked_data(X, Y, sample_weight)
        return float(self._cost(X, Y, sw, None))

    @_loud("gradients")
    def gradients(self, X, Y, sample_weight=None):
        """Exact gradient of :meth:`loss` with respect to every weight and bias.

        Parameters are those of :meth:`loss`.

        Returns
        -------
        dW : list of ndarray
            ``dW[l]`` shaped like ``weights[l]``.
        db : list of ndarray
            ``db[l]`` shaped like ``biases[l]``.
        """
        X, Y, sw = self._checked_data(X, Y, sample_weight)
        grad = np.empty_like(self.params)
        self._cost(X, Y, sw, grad)
        return self._unflatten(grad)

    def _unflatten(self, flat):
        dW = [flat[w : w + W.size].reshape(W.shape) for w, W in zip(self._w_off, self.weights)]
        db = [flat[b : b + bb.size] for b, bb in zip(self._b_off, self.biases)]
        return dW, db

    def accuracy(self, X, Y):
        """Fraction of correct predictions, for classification losses.

        ``cross_entropy``: arg-max of the output equals arg-max of ``Y``.
        ``binary_cross_entropy``: ``output > 0.5`` equals ``Y > 0.5``, over all outputs.
        """
        if self.loss_name not in ("cross_entropy", "binary_cross_entropy"):
            raise ValueError(f"accuracy is defined for classification losses; this network uses {self.loss_name!r}")
        X = self._checked_inputs(X)
        Y = self._checked_targets(Y)
        check.check_rows(X, Y)
        return accuracy(self.loss_name, self.predict(X), Y)

    # -------------------------------------------------------------- training

    def fit(
        self,
        X,
        Y,
        epochs=1,
        batch_size=None,
        optimizer=None,
        shuffle=True,
        validation_data=None,
        validation_split=0.0,
        progress=None,
        sample_weight=None,
        callbacks=None,
        early_stopping=None,
        lr_schedule=None,
        clip_norm=None,
    ):
        """Train by mini-batch gradient descent (or another optimizer).

        Each epoch visits every sample once, in mini-batches of ``batch_size``
        (the last batch may be smaller and is used too), reshuffled each epoch
        when ``shuffle``.  The gradient of a batch is the mean of its
        per-sample gradients.  Calling ``fit`` again continues from the
        current weights, optimizer state and random stream:
        ``fit(epochs=a)`` then ``fit(epochs=b)`` gives the same weights as
        ``fit(epochs=a + b)``.

        Interrupting (Ctrl-C, or any exception escaping ``fit``) loses no
        work and leaves the network consistent: the weights are those after
        the last completed mini-batch, ``optimizer.t`` and the optimizer state
        belong to them, ``epochs_trained`` counts the completed epochs, and
        ``net.history`` holds the epochs recorded so far.  ``KeyboardInterrupt``
        surfaces within about 0.05 s of training (the jitted loop returns to
        Python that often), or after the current part of a large mini-batch
        (computed in parts of at most ``config.CHUNK`` rows and
        ``config.CHUNK_WORK`` multiply-adds a pass, and dropped, whole, when
        stopped between them); it is held back wherever it would split the bookkeeping
        (:mod:`numbanet.interrupts`), so no instant is unsafe.  A later ``fit`` on the same data with the same
        ``batch_size``, ``shuffle`` and optimizer first finishes the
        interrupted epoch, so the result equals an uninterrupted run.

        Parameters
        ----------
        X : array-like or SciPy sparse matrix of shape (n_samples, n_features)
        Y : array-like of shape (n_samples, n_outputs)
        epochs : int, default 1
        batch_size : int, optional
            32 when not given; capped at the number of training samples.
            Refused with :class:`numbanet.LBFGS`, which takes all samples at once.
        optimizer : Optimizer or LBFGS, optional
            Default: the optimizer of the previous ``fit``, else ``SGD(lr=0.1)``.
            With :class:`numbanet.LBFGS` (full batch), ``epochs`` bounds its
            iterations; each iteration is recorded, validated and passed to
            the callbacks as an epoch (see :mod:`numbanet.lbfgs`).
        shuffle : bool, default True
        validation_data : tuple (X_val, Y_val), optional
            Evaluated after every epoch: ``history.val_loss`` (and
            ``val_accuracy`` for classification losses).
        validation_split : float in [0, 1), default 0
            Hold out this fraction of the samples (a seeded random choice) as
            validation data instead.
        progress : bool or None
            Show a bar over epochs (advancing within long epochs too) with the
            latest losses; None shows it in terminals and notebooks and stays
            silent otherwise.  It costs nothing measurable: it is updated
            between slices of the jitted loop, not after every epoch.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; each batch minimises ``Σ s_i c_i / Σ s_i``.
        callbacks : callable or list, optional
            ``f(net, history)`` or :class:`numbanet.Callback` objects, called
            after each epoch; returning True stops training.
        early_stopping : int or EarlyStopping, optional
            Patience in epochs (monitoring the validation loss when there is
            validation data), or a configured :class:`EarlyStopping`.  The
            best weights are restored at the end.
        lr_schedule : Schedule or callable, optional
            Learning rate per epoch (see :mod:`numbanet.schedules`).
        clip_norm : float, optional
            Clip each batch gradient to this global L2 norm (> 0; None: no clipping).

        Returns
        -------
        History

        Raises
        ------
        ValueError
            For invalid input, including a learning-rate schedule that gives a
            non-finite or negative rate for any epoch of this fit (checked
            before training); nothing is changed.  NaN or infinity in ``X``
            is found as the first epoch gathers each row (no separate pass
            over ``X``); the weights, optimizer and history are then put back
            as they were before the call.
        RuntimeError
            When another thread is fitting this network right now.
        TrainingDivergedError
            When the loss becomes NaN or infinite; the weights and optimizer
            state are restored to the start of that epoch.
        """
        return self._fit_rows(
            X,
            Y,
            sample_weight,
            None,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=optimizer,
            shuffle=shuffle,
            validation_data=validation_data,
            validation_split=validation_split,
            progress=progress,
            callbacks=callbacks,
            early_stopping=early_stopping,
            lr_schedule=lr_schedule,
            clip_norm=clip_norm,
        )

    def _fit_rows(self, X, Y, sample_weight, rows, **options):
        """:meth:`fit` on the rows ``rows`` of ``X`` (an ascending int64 array; None: all), indexed in place.

        The estimators' early stopping trains on the rows it does not hold out
        this way, without a copy of them.
        """
        # Ctrl-C held from before the lock is taken to after it is given back: delivered only
        # inside the try, where everything is consistent (numbanet.interrupts).
        with interrupts.held():
            if not self._fit_lock.acquire(blocking=False):
                raise RuntimeError(
                    "this network is being trained by another fit or train_on_batch (in another thread, or from a "
                    "callback of that fit); concurrent training of one network is refused. Wait for it to finish, "
                    "or train another network (a copy made when no fit is running: net.copy())"
                )
            try:
                return self._fit(X, Y, sample_weight, rows, **options)
            finally:
                self._fit_lock.release()

    @_loud("fit", restore=True)
    def _fit(self, X, Y, sample_weight, rows, **options):
        with interrupts.opened():  # checks only: Ctrl-C here changes nothing
            plan = FitPlan(self, **options)
            X_given = X
            # NaN and infinity in X: the training kernel checks every row as it gathers it (a pass over
            # X the fit does anyway), stops, and puts back what the run changed (see below).  Checked
            # here instead when some rows would not be gathered first (a validation split) or when an
            # interrupted epoch may be finished first (it gathers only its remaining rows).
            defer = plan.split == 0 and rows is None and self._pending is None and not plan.full_batch
            X, Y, sw = self._checked_data(X, Y, sample_weight, check_finite=not defer)
            if plan.split > 0:
                plan.n_validation(X.shape[0] if rows is None else rows.size)
        # Everything is checked: from here on the network changes.
        if plan.split > 0:
            rows = plan.hold_out(self._rng, X, Y, sw, rows)
        before = (self.optimizer, self.history, self._rng_state.copy())
        session = plan.begin(self)
        run = (LBFGSRun if plan.full_batch else TrainingRun)(self, X, Y, sw, plan, session, rows)
        try:
            run.run()
        except BadInputError as exc:
            # The kernel met NaN or infinity in X and restored the weights and the optimizer state
            # to the start of that epoch.  In the run's first epoch (always, unless X changed while
            # training) that is the start of this call: put back the rest too, and refuse X as the
            # up-front check would have.
            if exc.epoch == 0:
                self.optimizer, self.history = before[0], before[1]
                self._rng_state[:] = before[2]
            self._checked_inputs(X_given)
            raise ValueError("X changed during fit: a row held NaN or infinity when it was used") from None
        finally:
            session.close()
        return session.finish()

    def train_on_batch(self, X, Y, optimizer=None, sample_weight=None):
        """One optimizer step on the whole of ``(X, Y)`` as a single mini-batch.

        Parameters are those of :meth:`fit`.  Returns the batch loss measured
        before the step.  (Keras's name; the estimators' ``partial_fit`` runs
        an epoch, as scikit-learn's does.)
        """
        history = self.fit(
            X,
            Y,
            epochs=1,
            batch_size=max(1, np.shape(X)[0] if np.ndim(X) else 1),
            optimizer=optimizer,
            shuffle=False,
            progress=False,
            sample_weight=sample_weight,
        )
        return history.loss[-1]

    def partial_fit(self, X, Y, optimizer=None, sample_weight=None):
        """Take one step, as :meth:`train_on_batch` does (deprecated: that is its name now)."""
        warnings.warn(
            "Network.partial_fit is deprecated: it takes one optimizer step on one batch, which "
            "Network.train_on_batch now names (the estimators' partial_fit runs an epoch); call "
            "net.train_on_batch(X, Y, optimizer=..., sample_weight=...) instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.train_on_batch(X, Y, optimizer=optimizer, sample_weight=sample_weight)
