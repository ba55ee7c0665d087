r"""The competitors numbanet is measured against, all doing the same mathematics.

Every peer trains a fully-connected network by plain mini-batch gradient
descent exactly as docs/derivation.md ("The training loop") defines it and as
:meth:`numbanet.Network.fit` does with ``SGD(lr)``:

* each epoch visits every sample once, in mini-batches of ``batch_size``;
  the order is reshuffled every epoch (when ``shuffle``), and the last,
  smaller batch is used too;
* the gradient of a batch is the mean of its per-sample gradients;
* ``W <- W - lr * dC/dW``, ``b <- b - lr * dC/db``; no momentum, no decay;
* the batch cost is computed every step (numbanet records it per epoch).

The peers:

:class:`NumbanetMLP`
    numbanet itself, through the public API (``Network.fit``), so the times
    include everything a user pays: input validation, the Python layer, the
    jitted epoch loop.
:class:`NumpyMLP`
    A hand-vectorised NumPy MLP in matrix form (``Z = A W^T + b``), written as
    an expert would: preallocated buffers per batch size, ``np.dot(..., out=)``,
    ``np.take(..., out=)`` gathers, in-place element-wise work, the factor
    ``lr / m`` folded into the output delta so that the weight gradients come
    out already scaled.
:class:`TorchMLP`
    PyTorch on the CPU: ``nn.Sequential`` of ``nn.Linear`` and activations,
    ``torch.optim.SGD``, batches gathered with index tensors (no
    ``DataLoader``); ``torch.set_num_threads`` is left at its default.  For a
    softmax output with cross-entropy the model ends in logits and the loss is
    ``F.cross_entropy`` with class indices -- the idiomatic (and fastest)
    PyTorch spelling of the same mathematics.
:class:`SklearnMLP`
    scikit-learn's ``MLPClassifier`` with ``solver='sgd'`` and everything that
    would change the mathematics switched off (momentum, L2, early stopping,
    tolerance); one ``fit`` with ``warm_start=True, max_iter=1`` is one epoch.
    scikit-learn keeps float32 input in float32 (checked in :meth:`dtype`).
:class:`ReferenceMLP`
    The per-sample textbook loop :func:`numbanet.reference.sgd_epoch` (column
    vectors, one sample at a time): slow on purpose, timed on a subset.

:func:`mnist_like` makes the synthetic MNIST-shaped data set.  numbanet is
imported lazily, so a process that measures only PyTorch's memory does not
load it.

Non-goals: this module is not a framework.  It implements only the
activations and losses the benchmark workloads use (relu/sigmoid hidden
layers; softmax + cross-entropy or sigmoid + MSE outputs).
"""

import importlib.util
import warnings

import numpy as np

TINY32 = float(np.finfo(np.float32).tiny)
TINY64 = float(np.finfo(np.float64).tiny)


def have(module):
    """Whether ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


def mnist_like(n, dtype=np.float32, seed=0):
    """Synthetic MNIST-shaped data: ``n`` images of 784 pixels in [0, 1], 10 classes.

    The labels come from a random linear teacher, so the task is learnable
    (training behaves as on real data: no divergence, no saturation).

    Returns
    -------
    X : array of shape (n, 784), ``dtype``
    Y : array of shape (n, 10), ``dtype``, one-hot
    """
    rng = np.random.default_rng(seed)
    X = rng.random((n, 784), dtype=np.float32)
    teacher = rng.standard_normal((784, 10)).astype(np.float32)
    labels = np.empty(n, dtype=np.int64)
    for s in range(0, n, 4096):  # argmax((X - 0.5) @ teacher) in chunks: no temporary as large as X
        labels[s : s + 4096] = np.argmax((X[s : s + 4096] - 0.5) @ teacher, axis=1)
    Y = np.eye(10, dtype=dtype)[labels]
    return X.astype(dtype, copy=False), Y


def _check_spec(activations, loss):
    hidden, out = activations[:-1], activations[-1]
    if any(a not in ("relu", "sigmoid") for a in hidden):
        raise ValueError(f"peers implement relu/sigmoid hidden layers only; got {hidden}")
    if (out, loss) not in (("softmax", "cross_entropy"), ("sigmoid", "mse")):
        raise ValueError(f"peers implement softmax+cross_entropy and sigmoid+mse outputs only; got {out}+{loss}")


# ----------------------------------------------------------------- numbanet


class NumbanetMLP:
    """numbanet through its public API: one ``Network.fit`` call per epoch (or per ``train``)."""

    name = "numbanet"

    def __init__(self, net, shuffle=True):
        self.net = net
        self.shuffle = shuffle
        self._opt = None

    @classmethod
    def from_network(cls, net, shuffle=True, seed=0):
        """Build this peer from a numbanet ``Network`` (a copy of it)."""
        return cls(net.copy(), shuffle=shuffle)

    def prepare(self, X, Y):
        """Return the data as this peer trains on it (unchanged)."""
        return X, Y

    def _optimizer(self, lr):
        import numbanet

        if self._opt is None or self._opt.lr != lr:
            self._opt = numbanet.SGD(lr=lr)
        return self._opt

    def train(self, data, epochs, batch_size, lr):
        """Train ``epochs`` epochs of mini-batch SGD over ``data = (X, Y)`` in one ``fit`` call."""
        X, Y = data
        self.net.fit(
            X,
            Y,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=self._optimizer(lr),
            shuffle=self.shuffle,
            progress=False,
        )

    def epoch(self, data, batch_size, lr):
        """Train one epoch of mini-batch SGD over ``data``."""
        self.train(data, 1, batch_size, lr)

    def params(self):
        """Return copies of the weights and biases."""
        return [np.array(W) for W in self.net.weights], [np.array(b) for b in self.net.biases]


# -------------------------------------------------------------------- NumPy


class NumpyMLP:
    """Hand-vectorised NumPy MLP, matrix form, one sample per row.

    Parameters
    ----------
    weights : list of arrays of shape (n_out, n_in)
    biases : list of arrays of shape (n_out,)
    activations : list of str
        ``"relu"`` or ``"sigmoid"`` for hidden layers; ``"softmax"`` (with
        ``loss="cross_entropy"``) or ``"sigmoid"`` (with ``loss="mse"``) last.
    loss : str
    dtype : numpy dtype
    shuffle : bool
    seed : int
        Seeds this peer's own shuffling generator.
    """

    name = "numpy"

    def __init__(self, weights, biases, activations, loss, dtype=np.float64, shuffle=True, seed=0):
        _check_spec(list(activations), loss)
        self.dtype = np.dtype(dtype)
        self.W = [np.array(W, dtype=self.dtype, order="C") for W in weights]
        self.b = [np.array(b, dtype=self.dtype).reshape(-1) for b in biases]
        self.activations = list(activations)
        self.loss = loss
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self.sizes = [self.W[0].shape[1]] + [W.shape[0] for W in self.W]
        self._buffers = {}
        self.last_epoch_loss = float("nan")

    @classmethod
    def from_network(cls, net, shuffle=True, seed=0):
        """Build this peer with the parameters, activations and loss of a numbanet ``Network``."""
        return cls(net.weights, net.biases, net.activations, net.loss_name, net.dtype, shuffle, seed)

    def prepare(self, X, Y):
        """Return ``X`` and ``Y`` as contiguous arrays of this peer's dtype."""
        return np.ascontiguousarray(X, dtype=self.dtype), np.ascontiguousarray(Y, dtype=self.dtype)

    def params(self):
        """Return copies of the weights and biases."""
        return [W.copy() for W in self.W], [b.copy() for b in self.b]

    def _bufs(self, cap):
        """Per batch size: activations A^0..A^L, deltas, relu masks, target batch, scratch."""
        buf = self._buffers.get(cap)
        if buf is None:
            dt = self.dtype
            A = [np.empty((cap, s), dt) for s in self.sizes]
            D = [np.empty((cap, s), dt) for s in self.sizes[1:]]
            masks = [np.empty((cap, s), bool) for s in self.sizes[1:-1]]
            dW = [np.empty_like(W) for W in self.W]
            Yb = np.empty((cap, self.sizes[-1]), dt)
            T = {s: np.empty((cap, s), dt) for s in self.sizes[1:]}  # scratch, one per width
            buf = self._buffers[cap] = (A, D, masks, dW, Yb, T)
        return buf

    def _activate(self, Z, act):
        """In place ``Z <- σ(Z)`` (Z already holds A W^T + b)."""
        if act == "relu":
            np.maximum(Z, 0, out=Z)
        elif act == "sigmoid":
            # 1 / (1 + e^{-z}): e^{-z} may overflow to inf for z < -88 (float32) and the
            # result is then exactly 0; over='ignore' is set once per call of train().
            np.negative(Z, out=Z)
            np.exp(Z, out=Z)
            Z += 1
            np.reciprocal(Z, out=Z)
        else:  # softmax, row-wise, subtracting the row maximum
            Z -= Z.max(axis=1, keepdims=True)
            np.exp(Z, out=Z)
            Z /= Z.sum(axis=1, keepdims=True)

    def _step(self, X, Y, idx, lr, buf):
        """One mini-batch step on rows ``idx``; returns the batch's mean cost."""
        A, D, masks, dW, Yb, T = buf
        m = idx.shape[0]
        L = len(self.W)
        A0 = A[0][:m]
        Ym = Yb[:m]
        np.take(X, idx, axis=0, out=A0, mode="clip")
        np.take(Y, idx, axis=0, out=Ym, mode="clip")
        # forward: Z = A W^T + b, then the activation, in place
        for l in range(L):
            Z = A[l + 1][:m]
            np.dot(A[l][:m], self.W[l].T, out=Z)
            Z += self.b[l]
            self._activate(Z, self.activations[l])
        AL = A[L][:m]
        delta = D[L - 1][:m]
        Tm = T[self.sizes[L]][:m]
        if self.loss == "cross_entropy":
            np.maximum(AL, TINY32 if self.dtype == np.float32 else TINY64, out=Tm)
            np.log(Tm, out=Tm)
            cost = -float(np.vdot(Ym, Tm)) / m
            # softmax + cross-entropy: δ = A − Y (one-hot rows), times lr/m
            np.subtract(AL, Ym, out=delta)
            delta *= lr / m
        else:  # mse with sigmoid output: δ = (A − Y) ⊙ A(1 − A), times lr/m
            np.subtract(AL, Ym, out=delta)
            cost = 0.5 * float(np.vdot(delta, delta)) / m
            np.subtract(1, AL, out=Tm)
            Tm *= AL
            Tm *= lr / m
            delta *= Tm
        # backward: the deltas already carry lr/m, so dW, db are the steps themselves
        for l in range(L - 1, -1, -1):
            A_prev = A[l][:m]
            if l > 0:
                nxt = D[l - 1][:m]
                np.dot(delta, self.W[l], out=nxt)  # before W[l] changes
                if self.activations[l - 1] == "relu":
                    mask = masks[l - 1][:m]
                    np.greater(A_prev, 0, out=mask)
                    nxt *= mask
                else:  # sigmoid: σ' = a(1 − a)
                    Th = T[self.sizes[l]][:m]
                    np.subtract(1, A_prev, out=Th)
                    Th *= A_prev
                    nxt *= Th
            np.dot(delta.T, A_prev, out=dW[l])
            self.W[l] -= dW[l]
            self.b[l] -= delta.sum(axis=0)
            if l > 0:
                delta = nxt
        return cost

    def train(self, data, epochs, batch_size, lr):
        """``epochs`` epochs of mini-batch SGD over ``data = (X, Y)``."""
        X, Y = data
        n = X.shape[0]
        batch_size = min(batch_size, n)
        buf = self._bufs(batch_size)
        # One batch covering everything: the order cannot change the mean gradient,
        # so the peer skips the shuffle (the cheapest honest choice for it).
        shuffle = self.shuffle and batch_size < n
        order = np.arange(n)
        with np.errstate(over="ignore"):
            for _ in range(epochs):
                if shuffle:
                    self.rng.shuffle(order)
                total = 0.0
                for start in range(0, n, batch_size):
                    idx = order[start : start + batch_size]
                    total += self._step(X, Y, idx, lr, buf) * idx.shape[0]
                self.last_epoch_loss = total / n

    def epoch(self, data, batch_size, lr):
        """Train one epoch of mini-batch SGD over ``data``."""
        self.train(data, 1, batch_size, lr)


# ------------------------------------------------------------------ PyTorch


class TorchMLP:
    """PyTorch CPU peer: ``nn.Sequential``, ``torch.optim.SGD``, index-tensor batches."""

    name = "torch"

    def __init__(self, weights, biases, activations, loss, dtype=np.float64, shuffle=True, seed=0):
        import torch
        from torch import nn

        _check_spec(list(activations), loss)
        self.torch = torch
        self.dtype = np.dtype(dtype)
        tdtype = torch.float32 if self.dtype == np.float32 else torch.float64
        layers = []
        for l, (W, b, act) in enumerate(zip(weights, biases, activations)):
            n_out, n_in = np.shape(W)
            lin = nn.Linear(n_in, n_out).to(tdtype)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.array(W, dtype=self.dtype)))
                lin.bias.copy_(torch.from_numpy(np.array(b, dtype=self.dtype).reshape(-1)))
            layers.append(lin)
            if act == "relu":
                layers.append(nn.ReLU())
            elif act == "sigmoid":
                layers.append(nn.Sigmoid())
            # softmax: folded into F.cross_entropy below (the model emits logits)
        self.model = nn.Sequential(*layers)
        self.loss = loss
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.opt = None
        self.last_epoch_loss = float("nan")

    @classmethod
    def from_network(cls, net, shuffle=True, seed=0):
        """Build this peer with the parameters, activations and loss of a numbanet ``Network``."""
        return cls(net.weights, net.biases, net.activations, net.loss_name, net.dtype, shuffle, seed)

    def prepare(self, X, Y):
        """Tensors sharing memory with X; class indices for cross-entropy targets."""
        torch = self.torch
        Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=self.dtype))
        if self.loss == "cross_entropy":
            Yt = torch.from_numpy(np.argmax(Y, axis=1).astype(np.int64))
        else:
            Yt = torch.from_numpy(np.ascontiguousarray(Y, dtype=self.dtype))
        return Xt, Yt

    def params(self):
        """Return copies of the weights and biases as NumPy arrays."""
        lins = [m for m in self.model if isinstance(m, self.torch.nn.Linear)]
        return ([m.weight.detach().numpy().copy() for m in lins], [m.bias.detach().numpy().copy() for m in lins])

    def _optimizer(self, lr):
        if self.opt is None:
            self.opt = self.torch.optim.SGD(self.model.parameters(), lr=lr)
        for g in self.opt.param_groups:
            g["lr"] = lr
        return self.opt

    def train(self, data, epochs, batch_size, lr):
        """Train ``epochs`` epochs of mini-batch SGD over ``data = (X, Y)``."""
        torch = self.torch
        F = torch.nn.functional
        X, Y = data
        n = X.shape[0]
        batch_size = min(batch_size, n)
        opt = self._optimizer(lr)
        model = self.model
        ce = self.loss == "cross_entropy"
        shuffle = self.shuffle and batch_size < n  # one full batch: order is irrelevant
        order = torch.arange(n)
        for _ in range(epochs):
            if shuffle:
                order = torch.randperm(n, generator=self.generator)
            total = 0.0
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                xb = X.index_select(0, idx)
                yb = Y.index_select(0, idx)
                out = model(xb)
                if ce:
                    loss = F.cross_entropy(out, yb)
                else:  # mean over samples of ½‖a − y‖²
                    loss = 0.5 * F.mse_loss(out, yb, reduction="sum") / idx.shape[0]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * idx.shape[0]
            self.last_epoch_loss = total / n

    def epoch(self, data, batch_size, lr):
        """Train one epoch of mini-batch SGD over ``data``."""
        self.train(data, 1, batch_size, lr)


# ------------------------------------------------------------- scikit-learn


class SklearnMLP:
    """scikit-learn ``MLPClassifier`` doing one plain-SGD epoch per :meth:`epoch`.

    Only classification with a softmax output (scikit-learn picks it for more
    than two classes) and ReLU or sigmoid ("logistic") hidden layers.
    """

    name = "sklearn"

    def __init__(self, hidden, activation, dtype=np.float32, shuffle=True, seed=0):
        from sklearn.neural_network import MLPClassifier

        self.dtype = np.dtype(dtype)
        self.clf = MLPClassifier(
            hidden_layer_sizes=tuple(hidden),
            activation={"relu": "relu", "sigmoid": "logistic"}[activation],
            solver="sgd",
            learning_rate="constant",
            learning_rate_init=0.1,
            momentum=0.0,
            nesterovs_momentum=False,
            alpha=0.0,
            batch_size=32,
            max_iter=1,
            shuffle=shuffle,
            tol=0.0,
            n_iter_no_change=10**9,
            early_stopping=False,
            warm_start=True,
            random_state=seed,
        )

    @classmethod
    def from_network(cls, net, shuffle=True, seed=0):
        """Build this peer with the hidden sizes and activation of a softmax/cross-entropy ``Network``."""
        if net.loss_name != "cross_entropy":
            raise ValueError("the scikit-learn peer is a classifier: softmax + cross_entropy only")
        acts = set(net.activations[:-1])
        if len(acts) != 1:
            raise ValueError("scikit-learn uses one activation for every hidden layer")
        return cls(net.sizes[1:-1], acts.pop(), net.dtype, shuffle, seed)

    def prepare(self, X, Y):
        """Return ``X`` in this peer's dtype and ``Y`` as class indices."""
        return np.ascontiguousarray(X, dtype=self.dtype), np.argmax(Y, axis=1)

    def set_params_from(self, weights, biases, data):
        """Initialise with one epoch, then overwrite the parameters (for the twin test)."""
        self.epoch(data, 1, 1e-3)
        for c, W in zip(self.clf.coefs_, weights):
            c[...] = np.asarray(W).T
        for c, b in zip(self.clf.intercepts_, biases):
            c[...] = np.asarray(b).reshape(-1)

    def params(self):
        """Return copies of the weights (as numbanet lays them out) and biases."""
        return [c.T.copy() for c in self.clf.coefs_], [c.copy() for c in self.clf.intercepts_]

    def dtype_kept(self):
        """Return the dtype scikit-learn actually trains in (it keeps float32 input as float32)."""
        return self.clf.coefs_[0].dtype

    def epoch(self, data, batch_size, lr):
        """Train one plain-SGD epoch over ``data`` with a single ``MLPClassifier.fit`` call."""
        from sklearn.exceptions import ConvergenceWarning

        X, y = data
        self.clf.set_params(batch_size=batch_size, learning_rate_init=lr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.clf.fit(X, y)
        self.last_epoch_loss = self.clf.loss_

    def train(self, data, epochs, batch_size, lr):
        """Train ``epochs`` epochs, one :meth:`epoch` call each."""
        for _ in range(epochs):
            self.epoch(data, batch_size, lr)


# ------------------------------------------------------- per-sample textbook


class ReferenceMLP:
    """The textbook per-sample loop, :func:`numbanet.reference.sgd_epoch` (float64)."""

    name = "textbook"

    def __init__(self, weights, biases, activations, loss, shuffle=True, seed=0):
        self.weights = [np.array(W, dtype=np.float64) for W in weights]
        self.biases = [np.array(b, dtype=np.float64).reshape(-1, 1) for b in biases]
        self.activations = list(activations)
        self.loss = loss
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_network(cls, net, shuffle=True, seed=0):
        """Build this peer with the parameters, activations and loss of a numbanet ``Network``."""
        return cls(net.weights, net.biases, net.activations, net.loss_name, shuffle, seed)

    def prepare(self, X, Y):
        """Return ``X`` and ``Y`` as float64 arrays."""
        return np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)

    def params(self):
        """Return copies of the weights and biases (biases flat)."""
        return [W.copy() for W in self.weights], [b.reshape(-1).copy() for b in self.biases]

    def epoch(self, data, batch_size, lr):
        """Train one epoch over ``data`` with :func:`numbanet.reference.sgd_epoch`."""
        from numbanet import reference

        X, Y = data
        if self.shuffle:
            perm = self.rng.permutation(X.shape[0])
            X, Y = X[perm], Y[perm]
        self.weights, self.biases = reference.sgd_epoch(
            self.weights, self.biases, self.activations, self.loss, X, Y, batch_size, lr
        )

    def train(self, data, epochs, batch_size, lr):
        """Train ``epochs`` epochs, one :meth:`epoch` call each."""
        for _ in range(epochs):
            self.epoch(data, batch_size, lr)
