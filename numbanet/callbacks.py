"""Training history, callbacks and early stopping.

The callback protocol is one method: ``on_epoch_end(net, history)`` is called
after every epoch; returning ``True`` stops training.  A plain function
``f(net, history)`` is accepted as a callback too.  ``on_train_begin(net)`` and
``on_train_end(net, history)`` are optional.
"""

import math

import numpy as np


class History:
    """Per-epoch record of a :meth:`numbanet.Network.fit` call.

    Attributes
    ----------
    epoch : list of int
        0-based global epoch numbers (continuing across ``fit`` calls).
    loss : list of float
        Training loss of each epoch: the mean over samples of the cost of each
        sample's mini-batch, measured before that batch's update (dropout on),
        plus the L2 term.
    val_loss : list of float
        Validation loss after each epoch (empty without validation data).
    val_accuracy : list of float
        Validation accuracy after each epoch, for classification losses.
    lr : list of float
        Learning rate used in each epoch.
    stopped_early : bool
        Whether a callback or early stopping ended training.
    best_epoch : int or None
        Epoch whose weights early stopping restored.
    steps : int
        Optimizer steps (mini-batches with a positive weight) this ``fit``
        took, an interrupted epoch's included.
    samples : int
        Rows processed by this ``fit``, summed over its mini-batches.
    compile_seconds : float
        Seconds this ``fit`` spent compiling the training kernel, or loading
        it from Numba's cache, before training (0 once the process has it).
        Waiting for another process that compiles the same kernels is not included.
    compile_wait_seconds : float
        Seconds this ``fit`` waited for another process compiling the same
        kernels (the compile lock), before compiling or loading them.
    """

    compile_seconds = 0.0  # class defaults, so histories pickled before they existed have them
    compile_wait_seconds = 0.0

    def __init__(self):
        self.epoch = []
        self.loss = []
        self.val_loss = []
        self.val_accuracy = []
        self.lr = []
        self.stopped_early = False
        self.best_epoch = None
        self.steps = 0
        self.samples = 0

    def as_dict(self):
        """Return the per-epoch lists keyed by name (non-empty ones only)."""
        keys = ("epoch", "loss", "val_loss", "val_accuracy", "lr")
        return {k: list(getattr(self, k)) for k in keys if getattr(self, k)}

    def __getitem__(self, key):
        return self.as_dict()[key]

    def __len__(self):
        return len(self.loss)

    def __repr__(self):
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.as_dict().items() if k != "epoch")
        return f"History({len(self)} epochs{', ' + last if last else ''})"


class Callback:
    """Base class for callbacks; override what you need."""

    def on_train_begin(self, net):
        """Run before the first epoch of a ``fit``."""

    def on_epoch_end(self, net, history):
        """Run after each epoch; return True to stop training."""
        return False

    def on_train_end(self, net, history):
        """Run once the ``fit`` has ended, however it ended."""


class _FunctionCallback(Callback):
    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, net, history):
        return self.fn(net, history)


def as_callbacks(callbacks):
    """Return ``callbacks`` (None, one, or a list of callbacks or functions) as a list of :class:`Callback`."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or callable(callbacks):
        callbacks = [callbacks]
    out = []
    for cb in callbacks:
        if isinstance(cb, Callback):
            out.append(cb)
        elif callable(cb):
            out.append(_FunctionCallback(cb))
        else:
            raise ValueError(f"a callback must be a numbanet.Callback or a callable f(net, history); got {cb!r}")
    return out


class EarlyStopping(Callback):
    """Stop when the monitored loss has not improved for ``patience`` epochs.

    Parameters
    ----------
    patience : int, default 10
        Training stops after this many consecutive epochs without improvement
        (as Keras' ``EarlyStopping``; 0 stops at the first such epoch).
    min_delta : float, default 0
        Smallest decrease that counts as an improvement.
    monitor : {"auto", "val_loss", "loss"}
        ``"auto"`` monitors the validation loss when there is validation data,
        the training loss otherwise.
    restore_best : bool, default True
        At the end of training, put back the weights of the best epoch.
    """

    def __init__(self, patience=10, min_delta=0.0, monitor="auto", restore_best=True):
        if patience < 0:
            raise ValueError(f"patience must be >= 0; got {patience}")
        if monitor not in ("auto", "val_loss", "loss"):
            raise ValueError(f"monitor must be 'auto', 'val_loss' or 'loss'; got {monitor!r}")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.monitor = monitor
        self.restore_best = restore_best

    def on_train_begin(self, net):
        """Forget the best value of an earlier ``fit``."""
        self._best = math.inf
        self._best_params = None
        self._best_epoch = None
        self._bad = 0

    def _value(self, history):
        key = self.monitor
        if key == "auto":
            key = "val_loss" if history.val_loss else "loss"
        values = getattr(history, key)
        if not values:
            raise ValueError("EarlyStopping(monitor='val_loss') needs validation_data or validation_split")
        return values[-1]

    def on_epoch_end(self, net, history):
        """Keep the best weights so far; return True after ``patience`` epochs without improvement."""
        value = self._value(history)
        if value < self._best - self.min_delta:
            self._best = value
            self._best_epoch = history.epoch[-1]
            self._bad = 0
            if self.restore_best:
                self._best_params = net.params.copy()
            return False
        self._bad += 1
        return self._bad >= self.patience

    def on_train_end(self, net, history):
        """Restore the best epoch's weights (with ``restore_best``) and record that epoch."""
        if self.restore_best and self._best_params is not None:
            net.params[...] = self._best_params
            history.best_epoch = self._best_epoch


def accuracy(loss_name, P, Y):
    """Accuracy of predictions ``P`` against targets ``Y`` for a classification loss.

    Cross-entropy: arg-max agreement per row.  Binary cross-entropy: agreement
    of ``P > 0.5`` with ``Y > 0.5``, averaged over every output.  ``None`` for MSE.
    """
    if loss_name == "cross_entropy":
        return float(np.mean(P.argmax(axis=1) == Y.argmax(axis=1)))
    if loss_name == "binary_cross_entropy":
        return float(np.mean((P > 0.5) == (Y > 0.5)))
    return None
