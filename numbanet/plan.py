"""One fit's options, checked once, and the start and end every fit shares.

:class:`FitPlan` turns ``fit``'s keyword arguments into checked values before
anything changes -- for :meth:`numbanet.Network.fit`, for the estimators
(which call it) and for :meth:`numbanet.distributed.DataParallel.fit` -- so a
new ``fit`` option is added here, once.  :meth:`FitPlan.begin` then makes
the first change to the network (binding the optimizer, a new history) and
returns a :class:`FitSession`: the history, the progress bar, the per-epoch
work (validation, schedules that watch the loss, callbacks) and the
callbacks' start and end.
"""

import numpy as np

from numbanet import _validation as check
from numbanet import interrupts
from numbanet._csr import CSRRows
from numbanet.callbacks import EarlyStopping, History, accuracy, as_callbacks
from numbanet.engine import EpochEnd, schedule_rates
from numbanet.lbfgs import LBFGS, refuse_options
from numbanet.optimizers import SGD, Optimizer
from numbanet.progress import Progress, default_progress
from numbanet.schedules import as_schedule


class FitPlan:
    """``fit``'s options for one network, checked; nothing is changed by building one.

    Parameters are those of :meth:`numbanet.Network.fit` (the data aside).
    ``validation_data`` must already be in memory (NumPy-like).

    Attributes
    ----------
    epochs, batch_size : int
        ``batch_size`` as asked (32 when None); :meth:`batch_for` caps it at the training rows.
    optimizer : Optimizer or LBFGS
        The one given, else the network's previous one, else ``SGD(lr=0.1)``.
    shuffle : bool
    split : float
        The validation fraction (0: none).
    validation : tuple (Xv, Yv) or None
        Checked validation data (set by :meth:`hold_out` for a split).
    schedule : Schedule
    lrs : float64 array of shape (epochs,)
        Each epoch's rate, checked (NaN for schedules that watch the loss).
    clip : float
        0 for no clipping.
    callbacks : list of Callback
        Early stopping included.
    progress : bool
    """

    def __init__(
        self,
        net,
        epochs=1,
        batch_size=None,
        optimizer=None,
        shuffle=True,
        validation_data=None,
        validation_split=0.0,
        progress=None,
        callbacks=None,
        early_stopping=None,
        lr_schedule=None,
        clip_norm=None,
    ):
        self.epochs = check.positive_int(epochs, "epochs")
        self.batch_size = 32 if batch_size is None else check.positive_int(batch_size, "batch_size")
        self.split = check.non_negative_float(validation_split, "validation_split", upper=1.0, upper_open=True)
        if self.split > 0 and validation_data is not None:
            raise ValueError("give either validation_data or validation_split, not both")
        if optimizer is None:
            optimizer = net.optimizer if net.optimizer is not None else SGD(lr=0.1)
        if not isinstance(optimizer, (Optimizer, LBFGS)):
            raise ValueError(f"optimizer must be a numbanet optimizer (SGD, Adam, LBFGS, ...); got {optimizer!r}")
        optimizer._validate()
        #: Whether the optimizer takes the whole data at once (LBFGS): no batches, no learning rate.
        self.full_batch = isinstance(optimizer, LBFGS)
        if self.full_batch:
            refuse_options(net, batch_size, lr_schedule, clip_norm)
        self.optimizer = optimizer
        self.shuffle = bool(shuffle)
        self.schedule = as_schedule(lr_schedule)
        self.clip = 0.0 if clip_norm is None else check.non_negative_float(clip_norm, "clip_norm")
        if clip_norm is not None and self.clip == 0:  # the kernels read 0 as "no clipping": say what was meant
            raise ValueError(f"clip_norm must be > 0 (or None for no clipping); got {clip_norm!r}")
        self.callbacks = _with_early_stopping(as_callbacks(callbacks), early_stopping)
        self.validation = None if validation_data is None else _checked_pair(net, validation_data)
        # Every epoch's rate up front, so that a bad schedule is refused before any training.
        self.lrs = schedule_rates(self.schedule, net.epochs_trained, self.epochs, optimizer.lr)
        self.progress = default_progress() if progress is None else progress

    def n_validation(self, n):
        """Rows ``validation_split`` holds out of ``n``; ValueError unless both parts keep one."""
        n_val = int(round(self.split * n))
        if n_val < 1 or n_val >= n:
            raise ValueError(
                f"validation_split={self.split} of {n} samples leaves "
                f"{n_val} for validation and {n - n_val} for training; both need at least 1"
            )
        return n_val

    def hold_out(self, rng, X, Y, sw, rows=None):
        """Split off the validation rows (a draw from ``rng``); return the training rows, ascending.

        The training rows stay where they are (the training kernel indexes
        ``X``); the validation rows become :attr:`validation`, read-only
        copies (the predict and loss kernels take whole matrices).  ``rows``:
        split those rows of ``X`` (ascending), not all of them.
        """
        n = X.shape[0] if rows is None else rows.size
        n_val = self.n_validation(n)
        perm = rng.permutation(n) if rows is None else rows[rng.permutation(n)]
        val, tr = perm[:n_val], np.sort(perm[n_val:])
        if sw[tr].sum() <= 0:
            raise ValueError("after validation_split every training sample has weight 0")
        self.validation = (_rows(X, val), check.read_only(Y[val]))
        return tr

    def batch_for(self, n):
        """Return the batch size for ``n`` training rows: as asked, at most ``n``."""
        return min(self.batch_size, n)

    def begin(self, net):
        """Make the fit's first change to ``net``; return the :class:`FitSession`."""
        return FitSession(net, self)


class FitSession:
    """What every fit does around its training loop, from its first change to the network.

    Binds the plan's optimizer to the network and gives the network a new
    history; builds the per-epoch work and the progress bar; calls the
    callbacks' ``on_train_begin``.  :meth:`finish` calls their
    ``on_train_end``; :meth:`close` closes the bar (whatever happened).
    """

    def __init__(self, net, plan):
        self.net = net
        self.plan = plan
        optimizer = plan.optimizer
        optimizer.bind(net.n_params, net.dtype)
        net.optimizer = optimizer
        self.history = History()
        net.history = self.history
        self.epoch_end = None
        if plan.callbacks or plan.validation is not None or plan.schedule.needs_loss:
            self.epoch_end = self._epoch_end
        self.bar = Progress(plan.epochs, plan.progress)
        for cb in plan.callbacks:
            cb.on_train_begin(net)

    def _epoch_end(self, history, end=None, callbacks=True):
        """Run the per-epoch work of the epoch just completed; return True to stop.

        Three steps, each done whole before ``end.stage`` (an
        :class:`numbanet.engine.EpochEnd`) moves past it: the validation pass
        (its values recorded only once both are computed; the pass itself
        stops between row chunks at a Ctrl-C), a loss-watching schedule's
        ``observe``, and each callback in turn (Ctrl-C delivered inside it at
        once).  Called again with the same ``end`` after an interruption, it
        goes on from the step that was stopped.
        """
        net, plan = self.net, self.plan
        if end is None:
            end = EpochEnd(history.loss[-1])
        if end.stage == 0:
            if plan.validation is not None:
                Xv, Yv = plan.validation
                val_loss = float(net.loss(Xv, Yv))
                acc = accuracy(net.loss_name, net.predict(Xv), Yv)
                history.val_loss.append(val_loss)
                if acc is not None:
                    history.val_accuracy.append(acc)
                end.loss = val_loss  # the loss a schedule watches
            end.stage = 1
        if end.stage == 1:
            if plan.schedule.needs_loss:
                plan.schedule.observe(end.loss, plan.optimizer.lr)
            end.stage = 2
        while callbacks and end.stage - 2 < len(plan.callbacks):
            with interrupts.opened():
                stop = bool(plan.callbacks[end.stage - 2].on_epoch_end(net, history))
            end.stop = end.stop or stop
            end.stage += 1
        return end.stop

    def finish(self):
        """Call the callbacks' ``on_train_end``; return the history."""
        for cb in self.plan.callbacks:
            cb.on_train_end(self.net, self.history)
        return self.history

    def close(self):
        """Close the progress bar."""
        self.bar.close()


def _with_early_stopping(cbs, early_stopping):
    if early_stopping is not None and early_stopping is not False:
        if isinstance(early_stopping, EarlyStopping):
            cbs.append(early_stopping)
        else:
            cbs.append(EarlyStopping(patience=check.positive_int(early_stopping, "early_stopping")))
    return cbs


def _rows(X, idx):
    """Return the rows ``idx`` of a checked X, dense (a read-only copy) or sparse (a sparse copy)."""
    return X.take(idx) if isinstance(X, CSRRows) else check.read_only(X[idx])


def _checked_pair(net, validation_data):
    try:
        Xv, Yv = validation_data
    except (TypeError, ValueError):
        raise ValueError("validation_data must be a pair (X_val, Y_val)") from None
    Xv = net._checked_inputs(Xv, "validation X")
    Yv = net._checked_targets(Yv, "validation Y")
    check.check_rows(Xv, Yv, "validation X", "validation Y")
    return Xv, Yv
