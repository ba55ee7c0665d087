"""The training engine: one ``fit`` as a run of short jitted slices.

:meth:`numbanet.Network.fit` validates its arguments and hands a
:class:`TrainingRun` the network, the data, the optimizer and the options.
The run owns its work buffers and its exact position -- epoch, batch within
the epoch, the epoch's row order and running cost, the optimizer step -- and
calls the jitted slice kernel :func:`numbanet.kernels.training.train_slice_flat`
in a loop.  Each slice runs as many mini-batches as fit in about
:data:`numbanet.config.SLICE_SECONDS` (measured on the fly), across epoch ends when Python has
nothing to do there, so a 20 000-epoch XOR fit still costs a handful of Python
round trips while a long epoch is cut into many slices.

After every slice the run *commits*: completed epochs go into the history,
``epochs_trained`` and ``optimizer.t`` are set from the kernel's position.
The weights and the optimizer state are updated in place by the kernel, so
whenever this thread sees them between slices, they agree with those
counters.  (Another thread calling ``predict`` during a fit reads weights
that the kernel is updating: a mix of two consecutive mini-batches, never a
change to the training.)
Between slices Python checks signals (Ctrl-C raises ``KeyboardInterrupt``
there, within one slice), updates the progress bar, and at epoch ends runs
validation, schedules that watch the loss, callbacks and early stopping.

Whatever ends a run -- its last epoch, a callback, ``KeyboardInterrupt``, an
exception from a callback or a schedule, divergence -- it commits first, so
the network is left consistent:

* the weights are those after the last completed mini-batch (after
  divergence: those at the start of the diverging epoch, the last state known
  to be finite);
* ``optimizer.t`` and the optimizer state belong to those weights;
* ``epochs_trained`` counts completed epochs, and ``net.history`` holds the
  losses of the epochs completed so far.

Ctrl-C cannot land anywhere else: the whole fit runs with it held
(:mod:`numbanet.interrupts`), delivered between slices, between the chunks
of a validation pass, and inside callbacks.

A run stopped in the middle of an epoch leaves that epoch pending on the
network (its row order, the next batch, its running cost, its start-of-epoch
backup); one stopped after an epoch's last mini-batch but before the end of
its per-epoch work (validation, a loss-watching schedule's step) leaves that
work pending (:class:`EpochEnd`).  The next ``fit`` on the same data with
the same batch size, shuffle setting and optimizer finishes that epoch (or
that epoch end) first, so an interrupted fit continued later computes
exactly what the uninterrupted fit would have; any other ``fit`` drops the
pending epoch (its batches stay in the weights).
"""

import contextlib
import threading
import time
import zlib

import numpy as np

from numbanet import config, interrupts, warmup
from numbanet._csr import CSRRows
from numbanet.exceptions import TrainingDivergedError
from numbanet.kernels import layout as _layout
from numbanet.kernels import sparse as _sparse
from numbanet.kernels import training as _train
from numbanet.schedules import ConstantLR

#: Test hook: when set to k, a run raises KeyboardInterrupt after exactly k
#: kernel steps (mini-batches, or parts of one larger than the work buffer),
#: as if Ctrl-C had arrived right then.
_INTERRUPT_AFTER_STEPS = None


def data_fingerprint(X, Y, sw, batch_size, shuffle, train_rows=None):
    """Return a cheap identity of the training data and batching, to match a pending epoch.

    Shapes, batch size, shuffling, the sample-weight sum, a CRC of eight
    rows of ``X`` and ``Y`` spread over the data, and of the rows trained
    on when they are not all of them.
    """
    n = X.shape[0]
    rows = np.unique(np.linspace(0, n - 1, 8).astype(np.int64))
    sparse = isinstance(X, CSRRows)
    crc = X.crc(rows) if sparse else zlib.crc32(np.ascontiguousarray(X[rows]).tobytes())
    crc = zlib.crc32(np.ascontiguousarray(Y[rows]).tobytes(), crc)
    if train_rows is not None:
        crc = zlib.crc32(train_rows.tobytes(), crc)
    return (X.shape, Y.shape, X.dtype.str, sparse, int(batch_size), bool(shuffle), float(sw.sum()), crc)


class BadInputError(Exception):
    """Raised by :meth:`TrainingRun.run` when the kernel gathered a row of X holding NaN or infinity.

    Internal: ``fit`` turns it into the ``ValueError`` of the up-front check.
    The kernel has restored the weights and the optimizer state to the start
    of the epoch, ``epoch`` (of the run); ``row`` is the offending row.
    """

    def __init__(self, epoch, row):
        super().__init__(f"row {row} of X holds NaN or infinity (epoch {epoch} of the run)")
        self.epoch = epoch
        self.row = row


class PendingEpoch:
    """An epoch a run stopped in the middle of, kept on the network to be finished later.

    ``key`` is ``(data fingerprint, id of the optimizer, its step count at the
    stop)``: the next run resumes the epoch only when all three match.  With
    ``batch == 0`` the epoch's mini-batches are all done and ``end`` (an
    :class:`EpochEnd`) says how far its per-epoch work got.
    """

    def __init__(self, key, order, batch, acc, backup, t0, end=None):
        self.key = key
        self.order = order
        self.batch = batch
        self.acc = acc
        self.backup = backup
        self.t0 = t0
        self.end = end


class EpochEnd:
    """The per-epoch work of one completed epoch, as far as it got.

    ``stage`` counts the steps done (:meth:`numbanet.plan.FitSession.epoch_end`
    says which); each step is done whole or not at all, and this is advanced
    after it, so an interrupted epoch end is finished by the next fit without
    doing a step twice.  ``loss`` is the loss a schedule watches: the epoch's
    training loss, replaced by its validation loss once that is known;
    ``stop`` whether a callback asked to stop.
    """

    __slots__ = ("loss", "stage", "stop")

    def __init__(self, loss):
        self.loss = loss
        self.stage = 0
        self.stop = False


def resumable(pending, fingerprint, optimizer):
    """Return ``pending`` if a fit on data ``fingerprint`` with ``optimizer`` continues it, else None.

    It does when the data and batching are the same, the optimizer is the
    same object, and it has taken no step since the interruption.
    """
    if pending is None or fingerprint is None or pending.key != (fingerprint, id(optimizer), optimizer.t):
        return None
    return pending


def leave_pending(net, fingerprint, optimizer, order, batch, acc, backup, t0, end=None):
    """Keep an epoch stopped before batch ``batch`` on ``net`` (``batch == 0``: stopped in its ``end``)."""
    net._pending = PendingEpoch((fingerprint, id(optimizer), optimizer.t), order, batch, acc, backup, t0, end)


def record_epochs(net, history, first, losses, lrs, at=None):
    """Record completed epochs ``first, first + 1, ...`` in ``history`` and count them on ``net``.

    ``at`` is where in the history's lists they go (default: appended).  The
    writes are by position, so a record interrupted half-way and done again
    writes the same lists, never twice.
    """
    at = len(history.loss) if at is None else at
    history.epoch[at:] = range(first, first + len(losses))
    history.loss[at:] = [float(v) for v in losses]
    history.lr[at:] = [float(v) for v in lrs]
    net.epochs_trained = first + len(losses)


class TrainingRun:
    """One ``fit``: its buffers, its position, and the loop over slices.

    Parameters
    ----------
    net : Network
    X, Y : arrays of shape (n_samples, n_features), (n_samples, n_outputs)
        Validated, C-contiguous, of the network's dtype (read-only is fine);
        X may be a :class:`numbanet._csr.CSRRows` (trained by the sparse kernels).
    sw : float64 array of shape (n_samples,)
        Sample weights.
    plan : numbanet.plan.FitPlan
        The fit's checked options; its optimizer is bound to the network.
    session : numbanet.plan.FitSession
        The fit's history, progress bar and per-epoch work
        (``epoch_end(history) -> bool``, None when there is none).
    rows : int64 array, optional
        The rows of ``X`` to train on, ascending (a validation split's
        training rows); default all.
    """

    def __init__(self, net, X, Y, sw, plan, session, rows=None):
        self.net = net
        self.X, self.Y, self.sw = X, Y, sw
        self.sparse = isinstance(X, CSRRows)  # the sparse kernels, with their own work buffers
        self.pool = net._sparse_buffers if self.sparse else net._buffers
        # rows: the training rows of X when a validation split holds some out (indexed, not copied).
        n = X.shape[0] if rows is None else rows.size
        self.sw_total = float(sw.sum() if rows is None else sw[rows].sum())
        self.epochs = plan.epochs
        self.batch_size = batch_size = plan.batch_for(n)
        # A larger mini-batch is computed in parts of these many rows, so Ctrl-C is seen between them.
        self.part_rows = batch_size if self.sparse else min(batch_size, net._chunk_rows())
        self.shuffle = shuffle = plan.shuffle
        self.optimizer = optimizer = plan.optimizer
        self.schedule = plan.schedule
        self.lrs = plan.lrs
        self.clip = plan.clip
        self.history = session.history
        self.bar = session.bar
        self.epoch_end = session.epoch_end
        self.validation = plan.validation
        epochs = self.epochs
        self.first_epoch = net.epochs_trained
        P = net.n_params
        self.n_batches = -(-n // batch_size)
        self.epoch_losses = np.zeros(epochs, dtype=np.float64)
        self.pos = np.zeros(_layout.N_POS, dtype=np.int64)
        self.pos[_train.POS_T] = optimizer.t
        self.t_start = optimizer.t
        self.acc = np.zeros(1, dtype=np.float64)
        self.recorded = 0  # epochs of this run already committed
        self.fingerprint = data_fingerprint(X, Y, sw, batch_size, shuffle, rows)
        self.end = None  # the EpochEnd of the last completed epoch while its per-epoch work is not all done
        pending = resumable(net._pending, self.fingerprint, optimizer)  # taken over (and cleared) by run()
        shape = _layout.backup_shape(P, optimizer.state.shape[0], in_parts=self.part_rows < batch_size)
        if pending is not None and pending.batch > 0:
            self.order, self.backup = pending.order, _fit_backup(pending.backup, shape)
            self.pos[_train.POS_BATCH] = pending.batch
            self.pos[_train.POS_T0] = pending.t0
            self.acc[0] = pending.acc
        else:
            if pending is not None and self.epoch_end is not None:
                self.end = pending.end  # an epoch end to finish before the first epoch
            self.order = np.arange(n, dtype=np.int64) if rows is None else rows.astype(np.int64)
            self.backup = np.empty(shape, dtype=net.dtype)

    # ------------------------------------------------------------------ loop

    def run(self):
        """Train until the run ends; commit after every slice, whatever happens.

        Called with Ctrl-C held (:func:`numbanet.interrupts.held`): it is
        delivered only where everything is committed -- between slices, and
        between the chunks of a validation pass -- or during compiling and
        callbacks, which change nothing of the run's.
        """
        pos = self.pos
        needs_loss = self.schedule.needs_loss
        stop_at_epoch_end = self.epoch_end is not None
        budget = 1
        limit = _INTERRUPT_AFTER_STEPS
        total = 0
        work = None
        try:
            self._start()
            self.history.compile_seconds, work = self._prepare(stop_at_epoch_end)
            if self.end is not None and self._end_epoch(resumed=True):
                return self.history
            while pos[_train.POS_EPOCH] < self.epochs:
                interrupts.poll()  # Ctrl-C: everything is committed here
                e = int(pos[_train.POS_EPOCH])
                if needs_loss and np.isnan(self.lrs[e]):  # at each epoch's start, a resumed one's too
                    self.lrs[e] = self._rate(self.first_epoch + e)
                if limit is not None:
                    budget = min(budget, limit - total)
                start = time.perf_counter()
                self._slice(work, budget, stop_at_epoch_end)
                elapsed = time.perf_counter() - start
                done = int(pos[_train.POS_DONE])
                total += done
                self.commit()
                if pos[_train.POS_STATUS] == _train.BAD_INPUT:
                    raise BadInputError(int(pos[_train.POS_BAD_EPOCH]), int(pos[_train.POS_BAD_ROW]))
                if pos[_train.POS_STATUS] != _train.OK:
                    self._diverged()
                if limit is not None and total >= limit:
                    raise KeyboardInterrupt(f"test hook: stopped after {total} steps")
                # The next slice aims at SLICE_SECONDS, growing at most SLICE_GROWTH-fold.
                rate = done / elapsed if elapsed > 0 else float("inf")
                budget = int(max(1, min(budget * config.SLICE_GROWTH, rate * config.SLICE_SECONDS)))
                if self.end is not None and self._end_epoch():
                    break
                self.bar.update(self.progress(), self.history)
        finally:
            self._drop_part()
            self.commit()
            self._leave_pending()
            if work is not None:
                self.pool.release(work)
        return self.history

    def _start(self):
        """Take the network's pending epoch over, and lay out the kernel's ``run`` and ``pos`` settings."""
        self.net._pending = None  # resumed by this run, or dropped; _leave_pending sets a new one
        opt, pos = self.optimizer, self.pos
        # The kernel's run array holds the epochs' rates and costs and the running cost: from here on
        # self.lrs, self.epoch_losses and self.acc are views of it.
        run_floats = _layout.run_floats(
            float(self.net.l2), float(self.net.dropout), float(self.clip), self.sw_total, opt._hyper(), self.lrs
        )
        run_floats[_layout.RUN_ACC] = self.acc[0]
        self.run_floats = run_floats
        _, self.lrs, self.epoch_losses = _layout.run_parts.py_func(run_floats)
        self.acc = run_floats[_layout.RUN_ACC : _layout.RUN_ACC + 1]
        pos[_layout.POS_OPTIMIZER] = opt._code
        pos[_layout.POS_SHUFFLE] = self.shuffle
        pos[_layout.POS_BATCH_SIZE] = self.batch_size

    def _end_epoch(self, resumed=False):
        """Finish the per-epoch work of the epoch just completed; return True to stop the run.

        An epoch end left by an interrupted run (``resumed``) does what that
        run had not done yet; its callbacks belonged to that run and are not
        called again.
        """
        end = self.end
        self.epoch_end(self.history, end, callbacks=not resumed)
        self.end = None
        if end.stop:
            self.bar.update(self.progress(), self.history)
            self.history.stopped_early = self.pos[_train.POS_EPOCH] < self.epochs
        return end.stop

    def _prepare(self, stop_at_epoch_end):
        """Take the run's work buffer and compile or load its kernels; return the seconds that took and the buffer.

        Sizing the buffer is a kernel too (:func:`numbanet.kernels.layout.work_size`).
        A slice of no mini-batches compiles the training kernel, and with
        validation data a loss and a prediction of one validation row for the
        kernels the epoch ends call -- to compile them, under the machine-wide
        compile lock (:func:`numbanet.warmup.compile_lock`) -- so the progress bar can say
        "compiling kernels (first run only)" and its clock, like the training
        time, leaves the compile out.  Compiling is open to Ctrl-C (nothing of the run has
        changed yet); taking a buffer of the pool is not (its lock must not be left held).
        """
        entry_points = ("sparse_train_slice_flat",) if self.sparse else ("train_slice_flat",)
        if self.validation is not None:
            entry_points += ("cost_and_gradient_flat", "predict_flat")
            if isinstance(self.validation[0], CSRRows):
                entry_points = tuple(f"sparse_{name}" for name in entry_points[-2:]) + entry_points[:-2]
        in_parts = self.part_rows < self.batch_size
        if in_parts:
            entry_points += ("train_part_flat",)
        where = warmup.kernels_ready(self.net.dtype.name, entry_points)
        if where == "memory":
            return 0.0, self.pool.acquire(self.part_rows)[0]
        # Only a compile takes the lock: cached kernels load at once.  The wait is not compile time.
        lock = warmup.compile_lock(dtype=self.net.dtype.name) if where is None else contextlib.nullcontext()
        compiling = self.bar.compiling() if where is None else contextlib.nullcontext()
        asked = time.perf_counter()
        with interrupts.opened(), compiling, lock:
            start = time.perf_counter()
            if where is None:
                self.history.compile_wait_seconds = start - asked
            work = self.pool.acquire(self.part_rows)[0]
            self._slice(work, 0, stop_at_epoch_end)
            if in_parts:
                _train.compile_part(self._kernel_args(work))
            if self.validation is not None:
                Xv, Yv = self.validation
                self.net.loss(Xv[:1], Yv[:1])
                self.net.predict(Xv[:1])
        self.bar.restart()
        return time.perf_counter() - start, work

    def _slice(self, work, budget, stop_at_epoch_end):
        pos = self.pos
        pos[_layout.POS_BUDGET] = budget
        pos[_layout.POS_STOP_AT_EPOCH_END] = stop_at_epoch_end
        kernel = _sparse.sparse_train_slice_flat if self.sparse else _train.train_slice
        kernel(*self._kernel_args(work))

    def _kernel_args(self, work):
        """Return the training kernels' arguments (:func:`numbanet.kernels.training.train_slice_flat`)."""
        net, X = self.net, (self.X.arrays if self.sparse else self.X)
        data = (X, self.Y, self.sw, work, self.optimizer.state, self.backup, self.run_floats, self.order)
        return (net.params, net._spec, *data, net._rng_state, self.pos)

    def _rate(self, epoch):
        lr = self.schedule(epoch, self.optimizer.lr)
        return check_rate(lr, epoch)

    # --------------------------------------------------------------- commits

    def commit(self):
        """Make the counters and the history agree with the weights (idempotent)."""
        pos, net, history = self.pos, self.net, self.history
        e = int(pos[_train.POS_EPOCH])
        if e > self.recorded:
            done = self.recorded
            record_epochs(net, history, self.first_epoch + done, self.epoch_losses[done:e], self.lrs[done:e], at=done)
            self.recorded = e  # last: a commit stopped before it is done again, to the same effect
            if self.epoch_end is not None and pos[_train.POS_BATCH] == 0 and pos[_train.POS_STATUS] == _train.OK:
                self.end = EpochEnd(float(self.epoch_losses[e - 1]))
        self.optimizer.t = int(pos[_train.POS_T])
        history.samples = int(pos[_train.POS_SAMPLES])
        history.steps = int(pos[_train.POS_T]) - self.t_start

    def progress(self):
        """Epochs done in this run, with the fraction of the current one."""
        return int(self.pos[_train.POS_EPOCH]) + int(self.pos[_train.POS_BATCH]) / self.n_batches

    def _drop_part(self):
        """Abandon a mini-batch stopped between its parts: the generator goes back to where the batch found it.

        Nothing else of the batch has changed the network (its optimizer step
        comes after its last part), so the batch is done again, whole, by the
        next call or the next fit -- as if it had never started.
        """
        pos = self.pos
        if pos[_layout.POS_PART] > 0:
            self.net._rng_state[0] = pos[_layout.POS_RNG_BATCH : _layout.POS_RNG_BATCH + 1].view(np.uint64)[0]
            pos[_layout.POS_PART] = 0

    def _leave_pending(self):
        batch = int(self.pos[_train.POS_BATCH])
        if self.pos[_train.POS_STATUS] != _train.OK or (batch == 0 and self.end is None):
            return
        acc, t0 = float(self.acc[0]), int(self.pos[_train.POS_T0])
        end = self.end if batch == 0 else None
        leave_pending(self.net, self.fingerprint, self.optimizer, self.order, batch, acc, self.backup, t0, end)

    def _diverged(self):
        e = int(self.pos[_train.POS_BAD_EPOCH])
        raise TrainingDivergedError(self.first_epoch + e, int(self.pos[_train.POS_BAD_BATCH]) + 1, float(self.lrs[e]))


class WorkspacePool:
    """Work buffers of one network, each lent to one call at a time.

    ``acquire`` hands a caller a buffer of its own -- a free one of the right
    capacity, or a new one -- and ``release`` takes it back.  So concurrent
    calls (``predict`` from many threads, a ``predict`` during a ``fit``)
    never share a buffer, and memory stays bounded: capacities are rounded up
    to a power of two (up to :data:`numbanet.config.CHUNK` rows), and at most ``keep`` free
    buffers are kept, the most recently used.

    Parameters
    ----------
    spec : int64 array
        The network's layout (:mod:`numbanet.kernels.layout`).
    dtype : numpy dtype
    keep : int
        Free buffers kept for reuse.
    """

    def __init__(self, spec, dtype, keep=None):
        self.spec = spec
        self.dtype = dtype
        self.keep = config.POOL_KEEP if keep is None else keep
        self._free = []  # (cap, buffer), most recently released last
        self._lengths, self._caps = {}, {}  # buffer length by cap, and cap by length
        self._lock = threading.Lock()

    @staticmethod
    def capacity(rows):
        """Return the rows a buffer for ``rows`` rows holds: the next power of two up to CHUNK, else ``rows``."""
        if rows > config.CHUNK:
            return rows
        return 1 << max(0, int(rows - 1).bit_length())

    def acquire(self, rows):
        """Lend a buffer for batches of up to ``rows`` rows; return ``(buffer, cap)``."""
        cap = self.capacity(rows)
        with self._lock:
            for i in range(len(self._free) - 1, -1, -1):
                if self._free[i][0] == cap:
                    return self._free.pop(i)[1], cap
        return np.empty(self._length(cap), dtype=self.dtype), cap

    def _length(self, cap):
        # Asked of the kernel on first use, not when the network is built: building, copying or
        # unpickling a network then loads no kernel (the first kernel a process loads costs it Numba's
        # own set-up, a few tenths of a second).  Remembered both ways, so release knows a buffer's cap.
        length = self._lengths.get(cap)
        if length is None:
            length = int(_layout.work_size(self.spec, cap))
            self._caps[length] = cap  # first: a buffer of this length may be released only once this is known
            self._lengths[cap] = length
        return length

    def release(self, buffer):
        """Give ``buffer`` back for reuse."""
        cap = self._caps[buffer.size]
        if cap > config.CHUNK:
            return  # a whole-data batch: not kept, so memory stays bounded
        with self._lock:
            self._free.append((cap, buffer))
            del self._free[: -self.keep]

    def clear(self):
        """Drop every free buffer."""
        with self._lock:
            self._free.clear()


def _fit_backup(backup, shape):
    """Return ``backup`` with ``shape``'s rows: a run that computes its batches in parts needs one more."""
    if backup.shape == shape:
        return backup
    fitted = np.empty(shape, dtype=backup.dtype)
    rows = min(shape[0], backup.shape[0])
    fitted[:rows] = backup[:rows]
    return fitted


def schedule_rates(schedule, first, epochs, base_lr):
    """Learning rates of epochs ``first .. first + epochs - 1``, checked, as a float64 array.

    A schedule that watches the loss gets NaN placeholders (its rates are asked
    epoch by epoch, and checked then).

    Raises
    ------
    ValueError
        Naming the first epoch whose rate is not a finite number >= 0.
    """
    if schedule.needs_loss:
        return np.full(epochs, np.nan)
    if isinstance(schedule, ConstantLR):
        return np.full(epochs, check_rate(base_lr, first))
    rates = [schedule(first + e, base_lr) for e in range(epochs)]
    try:
        lrs = np.array(rates, dtype=np.float64)
    except (TypeError, ValueError):
        lrs = None
    if lrs is None or lrs.shape != (epochs,) or not np.all(np.isfinite(lrs) & (lrs >= 0)):
        for e, lr in enumerate(rates):  # find and name the first bad one
            check_rate(lr, first + e)
    return lrs


def check_rate(lr, epoch):
    """``lr`` as a float, or ValueError naming the epoch when it is not a finite number >= 0."""
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"the learning-rate schedule gave {lr!r} for epoch {epoch}; it must return a number") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(
            f"the learning-rate schedule gave an invalid rate {value} for epoch {epoch}; rates must be finite and >= 0"
        )
    return value
