"""Data-parallel training of one :class:`~numbanet.Network` on a Dask cluster.

>>> from dask.distributed import Client, LocalCluster          # doctest: +SKIP
>>> from numbanet.distributed import DataParallel              # doctest: +SKIP
>>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
...     DataParallel(net, client).fit(X, Y, epochs=3, batch_size=256)   # doctest: +SKIP

Two strategies (see docs/distributed.md for measurements and a scaling model):

``"sync"`` (synchronous data-parallel SGD)
    The rows are split into one shard per worker (row ``i`` of a NumPy array
    to worker ``i mod W``; consecutive rows of a memory map; the chunks a
    worker holds of a Dask array), sent (or opened, or left where they are)
    once per ``fit``.  Each
    global mini-batch -- the same rows, in the same order, that
    :meth:`numbanet.Network.fit` would take, drawn from the network's own
    generator -- is split by rows across the workers that hold them.  Each
    worker computes its part of the batch's weighted mean cost and gradient
    with the jitted kernels, scaled by the *global* batch weight
    ``sum(s_i)``, so the parts only need adding.  The **client** adds them in
    a fixed order (by shard), adds the L2 term, clips, and applies one
    optimizer step to ``net`` with the same update kernel ``fit`` uses; the
    new weights go out with the next step.  The result equals ``net.fit`` on
    one machine up to the rounding of the sums (about 1e-16 per step).

    Client-side combine rather than an all-reduce among workers: the
    optimizer state stays in one place (so Ctrl-C, divergence and worker
    loss leave ``net`` consistent without any reconciliation), the sum is in
    a fixed order (deterministic, equal to one machine to rounding), and
    Dask has no collective operations to build an all-reduce from (a ring or
    tree of actor calls pays the same per-call latency).  Its cost grows
    with the worker count -- the client sends and receives ``n_params``
    numbers per worker per step, one worker after another --
    docs/distributed.md measures it and models where it stops paying (a
    handful of workers for the networks measured there).

``"local"`` (local SGD, periodic model averaging)
    Each worker trains ``sync_every`` mini-batches on its own shard with the
    full jitted training loop, then the client averages the models and the
    optimizer states (weighted by the shards' sample-weight sums) and sends
    the average back.  One epoch is ``ceil(n_batches / n_workers)`` local
    steps on every worker, so the workers together see about every sample
    once per epoch.  It is not equal to a one-machine fit; it communicates
    ``sync_every`` times less often.

Workers keep their shard and a copy of the network in a Dask actor for the
whole ``fit``; each step is one actor round trip (about 1.5 ms), not a task.

Faults.  When a worker is lost during a ``fit``, the fit stops with
:class:`WorkerLostError`, naming the worker and the step; ``net`` keeps the
weights, optimizer state and counters of the last completed step (``sync``)
or of the last completed averaging round (``local``).  It does not retry on
the remaining workers: call ``fit`` again (the cluster's replacement worker
or the remaining ones take the data afresh).  A ``sync`` fit on NumPy arrays
or memory maps stopped inside an epoch -- a lost worker, Ctrl-C -- leaves the
epoch pending on the network as ``Network.fit`` does, and the next ``fit``
(either) finishes it first, so the result equals an uninterrupted run.

Importing :mod:`numbanet` never imports Dask; this module does.
"""

import math
import mmap
import os
import signal
import threading
import time
import uuid

import numpy as np

from numbanet import _validation as check
from numbanet.callbacks import EarlyStopping, History, Progress, as_callbacks, default_progress
from numbanet.engine import PendingEpoch, data_fingerprint, schedule_rates
from numbanet.exceptions import TrainingDivergedError
from numbanet.kernels import layout as _layout
from numbanet.kernels import rng as _rng
from numbanet.kernels import training as _train
from numbanet.kernels.updates import clip_by_global_norm, update
from numbanet.network import Network
from numbanet.optimizers import SGD, Optimizer
from numbanet.schedules import as_schedule

try:
    from distributed import WorkerPlugin
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "numbanet.distributed needs Dask's distributed scheduler: pip install 'numbanet[distributed]' "
        "(or pip install 'dask[distributed]')"
    ) from exc

__all__ = ["DataParallel", "WorkerLostError", "WarmUp", "warm_up"]

#: A shard is "very uneven" when it holds more than this many times the mean rows per worker
#: (with 2 workers: more than 75 % of the rows); the blocks of a Dask array are then reassigned.
REBALANCE_FACTOR = 1.5

#: Seconds a worker trains between looks at the stop flag in a local-SGD round.
_LOCAL_SLICE_SECONDS = 0.05


class WorkerLostError(RuntimeError):
    """A Dask worker was lost (or stopped answering) during :meth:`DataParallel.fit`.

    The network keeps the state of the last completed step (``sync``) or
    averaging round (``local``).

    Attributes
    ----------
    worker : str
        Address of the lost worker.
    epoch : int
        0-based epoch (counting every epoch the network has trained), as in
        :attr:`numbanet.History.epoch` and :class:`numbanet.TrainingDivergedError`.
    step : int
        1-based optimizer step of the fit that was in progress (``sync``), or
        the 1-based averaging round (``local``); 0 while setting up.
    """

    def __init__(self, worker, epoch, step, what, cause):
        self.worker = worker
        self.epoch = epoch
        self.step = step
        unit = "averaging round" if what == "round" else "step"
        where = {
            "setup": "while setting up the fit",
            "epoch": f"at the start of epoch {epoch} (counted from 0), before {unit} {step}",
            "step": f"during step {step} of this fit (epoch {epoch}, counted from 0)",
            "round": f"during averaging round {step} of this fit (epoch {epoch}, counted from 0)",
        }[what]
        super().__init__(
            f"worker {worker} was lost {where}: {type(cause).__name__}: {cause}. The network holds the weights "
            f"and optimizer state of the last completed {unit} (its counters and history agree with them); "
            "call fit again to continue on the workers that remain."
        )


# ----------------------------------------------------------------------------- worker side

_STOP = {}  # fit id -> threading.Event, set by DataParallel when the client is interrupted
_STOP_LOCK = threading.Lock()


def _stop_event(fit_id):
    with _STOP_LOCK:
        return _STOP.setdefault(fit_id, threading.Event())


async def _request_stop(fit_id):
    """Run on every worker (``client.run``) when the client is interrupted: local rounds stop early."""
    _stop_event(fit_id).set()
    return True


async def _forget_stop(fit_id):
    with _STOP_LOCK:
        _STOP.pop(fit_id, None)
    return True


_LAST_ROUNDS = {}  # fit id -> (steps run, steps asked) of its latest local round on this worker; 16 kept


def _note_round(fit_id, done, k):
    with _STOP_LOCK:
        _LAST_ROUNDS.pop(fit_id, None)
        _LAST_ROUNDS[fit_id] = (done, k)
        while len(_LAST_ROUNDS) > 16:
            del _LAST_ROUNDS[next(iter(_LAST_ROUNDS))]


def last_round(fit_id):
    """Return ``(steps run, steps asked)`` of the latest local-SGD round of a fit on this worker, or None."""
    with _STOP_LOCK:
        return _LAST_ROUNDS.get(fit_id)


def _open_rows(desc, lo, hi):
    """Rows ``lo:hi`` of the array a source description names, without reading the others."""
    kind = desc[0]
    if kind == "memmap":
        _, filename, dtype, shape, offset, order = desc
        full = np.memmap(filename, dtype=np.dtype(dtype), mode="r", shape=tuple(shape), offset=offset, order=order)
        return full[lo:hi]
    raise ValueError(f"unknown data source {kind!r}")


class _Shard:
    """A worker's part of a data-parallel fit: its rows and a copy of the network.

    Created on the worker as a Dask actor.  ``parts`` are the shard's arrays
    (NumPy shards sent once, the worker's own blocks of a Dask array, or a
    memory map opened here), each a ``(X, Y)`` block of consecutive global
    rows ``ranges[i] = (lo, hi, step)``: global rows ``lo, lo + step, ...`` below ``hi``.
    """

    def __init__(self, net, ranges, sw, n_global, sources, *blocks):
        self.net = net.copy()  # in a threaded cluster the argument may be the client's own object
        self.ranges = [(int(lo), int(hi), int(step)) for lo, hi, step in ranges]
        self.n_global = int(n_global)
        xs, ys = [], []
        k = 0
        for (lo, hi, step), (xsrc, ysrc) in zip(self.ranges, sources):
            if xsrc is None:
                x = blocks[k]
                k += 1
            else:
                x = _open_rows(xsrc, lo, hi)
            if ysrc is None:
                y = blocks[k]
                k += 1
            else:
                y = _open_rows(ysrc, lo, hi)
            try:
                x = self.net._checked_inputs(x)
                y = self.net._checked_targets(y)
                check.check_rows(x, y)
            except ValueError as exc:
                which = f"rows {lo} to {hi - 1}" if step == 1 else f"every {step}th row from {lo}"
                raise ValueError(f"{which} of the training data: {exc}") from None
            xs.append(x)
            ys.append(y)
        # One block: used in place (a memory map or the worker's own chunk, no copy); several: joined once.
        self.joined = len(xs) > 1
        self.X = xs[0] if len(xs) == 1 else check.read_only(np.concatenate(xs))
        self.Y = ys[0] if len(ys) == 1 else check.read_only(np.concatenate(ys))
        self.sw = np.ascontiguousarray(sw, dtype=np.float64)
        self.sw_total = float(self.sw.sum())
        self.rows = self.X.shape[0]
        #: Global row number of each local row.
        self.global_rows = np.concatenate([np.arange(lo, hi, step, dtype=np.int64) for lo, hi, step in self.ranges])
        self.grad = np.empty(self.net.n_params, dtype=self.net.dtype)
        self.ws = None  # the work buffer of gradient(), from the first begin_epoch on
        self.local = None

    def info(self):
        """Rows held, their weight sum, this worker's process id, and whether X is used in place.

        ``in_place`` is ``"memmap"`` when X is a view of a memory map opened here, ``"block"`` when it is
        the worker's own block of the data itself, ``"joined"`` when several blocks were joined into one.
        """
        base = self.X
        while base is not None and not isinstance(base, np.memmap):
            base = base.base if isinstance(base, np.ndarray) else None
        how = "memmap" if base is not None else ("joined" if self.joined else "block")
        return self.rows, self.sw_total, os.getpid(), how

    # -- sync --------------------------------------------------------------------------------

    def begin_epoch(self, rng_state, shuffle, batch_size, order=None):
        """Compute the global row order of an epoch as ``fit`` draws it, and this shard's rows per batch.

        ``order``, when given, is the order of an interrupted epoch being finished.
        """
        n = self.n_global
        if order is not None:
            order = np.asarray(order, dtype=np.int64)
        else:
            order = np.arange(n, dtype=np.int64)
            if shuffle:
                _rng.shuffle(order, np.array(rng_state, dtype=np.uint64).copy())
        local_of = np.full(n, -1, dtype=np.int64)  # global row -> local row, -1 where not held here
        local_of[self.global_rows] = np.arange(self.global_rows.size, dtype=np.int64)
        in_order = local_of[order]
        pos = np.flatnonzero(in_order >= 0)  # positions in the epoch's order of the rows held here
        local = in_order[pos]
        n_batches = -(-n // batch_size)
        self.ep_rows = local
        self.ep_bounds = np.searchsorted(pos // batch_size, np.arange(n_batches + 1), side="left")
        if self.ws is None:
            self.ws, self.ws_cap = self.net._buffers.acquire(min(batch_size, max(1, self.rows)))
        return True

    def gradient(self, theta, b, wsum):
        """Return this shard's part of batch ``b``: ``(sum_i s_i c_i / wsum, its gradient)``, or ``(0.0, None)``.

        ``wsum`` is the sample-weight sum of the whole global batch, so the
        parts of all shards add up to the batch's weighted mean cost and its
        gradient.
        """
        rows = self.ep_rows[self.ep_bounds[b] : self.ep_bounds[b + 1]]
        if rows.size == 0:
            return 0.0, None
        np.copyto(self.net.params, theta)
        Xb = check.read_only(self.X[rows])
        Yb = check.read_only(self.Y[rows])
        swb = self.sw[rows]
        grad = np.empty(self.net.n_params, dtype=self.net.dtype)
        cap = self.ws_cap
        if rows.size > cap:
            self.net._buffers.release(self.ws)
            self.ws, cap = self.net._buffers.acquire(rows.size)
            self.ws_cap = cap
        # l2 0: the client adds the L2 term once.
        net = self.net
        c = _train.cost_and_gradient_flat(net.params, net._spec, Xb, Yb, swb, float(wsum), 0.0, self.ws, grad, True)
        return float(c), grad

    # -- local SGD ---------------------------------------------------------------------------

    def begin_local(self, seed, batch_size, optimizer, shuffle, clip):
        """Set up this worker's own jitted training run over its shard."""
        net = self.net
        P = net.n_params
        bs = min(batch_size, self.rows)
        net._rng_state[0] = np.uint64(seed)
        opt = optimizer
        opt.bind(P, net.dtype)
        self.opt = opt
        self.local_bs = bs
        self.local_batches = -(-self.rows // bs)
        self.local_work, _ = net._buffers.acquire(bs)
        self.order = np.arange(self.rows, dtype=np.int64)
        self.pos = np.zeros(_layout.N_POS, dtype=np.int64)
        self.pos[_layout.POS_OPTIMIZER] = opt._code
        self.pos[_layout.POS_SHUFFLE] = bool(shuffle)
        self.pos[_layout.POS_BATCH_SIZE] = bs
        self.pos[_layout.POS_STOP_AT_EPOCH_END] = True
        # One epoch: a pass over the shard (local_round starts another when it ends).
        self.run = _layout.run_floats(
            float(net.l2), float(net.dropout), float(clip), self.sw_total, opt._hyper(), np.zeros(1)
        )
        self.acc = self.run[_layout.RUN_ACC : _layout.RUN_ACC + 1]
        self.lrs = _layout.run_parts.py_func(self.run)[1]
        self.backup = np.empty(_layout.backup_shape(P, opt.state.shape[0]), dtype=net.dtype)
        return True

    def local_round(self, theta, state, t, lr, k, fit_id):
        """Train ``k`` mini-batches from ``(theta, state, t)`` at rate ``lr``.

        Returns ``(theta, state, t, weighted cost sum, weight sum, rows, steps run, diverged)``.
        """
        net, pos, acc = self.net, self.pos, self.acc
        np.copyto(net.params, theta)
        np.copyto(self.opt.state, state)
        pos[_train.POS_T] = t
        self.lrs[0] = lr
        stop = _stop_event(fit_id)
        cost = wsum = 0.0
        rows = done = 0
        budget = 1
        bs, n = self.local_bs, self.rows
        while done < k and not stop.is_set():
            b0 = int(pos[_train.POS_BATCH])
            acc0 = float(acc[0]) if b0 > 0 else 0.0
            start = time.perf_counter()
            pos[_layout.POS_BUDGET] = min(budget, k - done)
            _train.train_slice_flat(
                net.params,
                net._spec,
                self.X,
                self.Y,
                self.sw,
                self.local_work,
                self.opt.state,
                self.backup,
                self.run,
                self.order,
                net._rng_state,
                pos,
            )
            elapsed = time.perf_counter() - start
            d = int(pos[_train.POS_DONE])
            if pos[_train.POS_STATUS] != _train.OK:
                _note_round(fit_id, done, k)
                return None, None, int(pos[_train.POS_T]), cost, wsum, rows, done, True
            done += d
            if pos[_train.POS_EPOCH] == 1:  # the pass over the shard ended: start another
                b1 = self.local_batches
                pos[_train.POS_EPOCH] = 0
            else:
                b1 = int(pos[_train.POS_BATCH])
            cost += float(acc[0]) - acc0
            seg = self.order[b0 * bs : min(b1 * bs, n)]
            wsum += float(self.sw[seg].sum())
            rows += seg.size
            rate = d / elapsed if elapsed > 0 else float("inf")
            budget = int(max(1, min(budget * 8, rate * _LOCAL_SLICE_SECONDS)))
        _note_round(fit_id, done, k)
        return (net.params.copy(), self.opt.state.copy(), int(pos[_train.POS_T]), cost, wsum, rows, done, False)


# ----------------------------------------------------------------------------- warm-up


def warm_up(dtypes=("float64", "float32")):
    """Compile (or load from Numba's cache) the kernels a data-parallel fit runs, once per process.

    :func:`numbanet.compile` compiles every entry point (under its machine-wide
    lock, so workers starting together compile once); then one data-parallel
    gradient and one local round of a tiny network per dtype compile the
    specialisations for a worker's own arrays.
    """
    from numbanet.warmup import compile as compile_kernels
    from numbanet.warmup import compile_lock

    compile_kernels(dtypes, progress=False)
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    with compile_lock():
        for dt in dtypes:
            net = Network([2, 3, 2], activations=["tanh", "softmax"], loss="cross_entropy", dtype=dt, seed=0)
            Xd, Yd = X.astype(dt), Y.astype(dt)
            shard = _Shard(net, [(0, 4, 1)], np.ones(4), 4, [(None, None)], Xd, Yd)
            shard.begin_epoch(net._rng_state.copy(), True, 2)
            shard.gradient(net.params.copy(), 0, 2.0)
            shard.begin_local(1, 2, SGD(lr=0.1), True, 0.0)
            shard.local_round(net.params.copy(), shard.opt.state.copy(), 0, 0.1, 2, "warm-up")
    with _STOP_LOCK:
        _STOP.pop("warm-up", None)
    return True


class WarmUp(WorkerPlugin):
    """A Dask ``WorkerPlugin`` that compiles numbanet's kernels on every worker as it starts.

    Register it once per cluster (``client.register_plugin(WarmUp())``);
    :class:`DataParallel` does so on its first ``fit``.  Workers that join
    later warm up as they start.  With a shared Numba cache
    (``NUMBA_CACHE_DIR``) only the first worker of a machine compiles; the
    others load the cached code.
    """

    name = "numbanet-warm-up"
    idempotent = True

    def __init__(self, dtypes=("float64", "float32")):
        self.dtypes = tuple(dtypes)

    def setup(self, worker):
        """Warm up the kernels in this worker's process."""
        warm_up(self.dtypes)


# ----------------------------------------------------------------------------- client side


class _NoInterrupt:
    """Hold Ctrl-C back for a few statements (an optimizer step and its counter), then deliver it."""

    def __enter__(self):
        self.pending = False
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            self.old = signal.getsignal(signal.SIGINT)
            if self.old is signal.default_int_handler:
                signal.signal(signal.SIGINT, self._hold)
            else:  # someone else's handler: leave it alone
                self.active = False
        return self

    def _hold(self, signum, frame):
        self.pending = True

    def __exit__(self, *exc):
        if self.active:
            signal.signal(signal.SIGINT, self.old)
            if self.pending:
                raise KeyboardInterrupt
        return False


def _is_dask_array(a):
    return type(a).__module__.split(".")[0] == "dask" and hasattr(a, "chunks") and hasattr(a, "__dask_graph__")


def _memmap_source(a):
    """Describe a memory map of a whole file region so that workers can open it; None for other arrays."""
    if not isinstance(a, np.memmap) or not isinstance(getattr(a, "base", None), mmap.mmap):
        return None
    if a.filename is None or a.ndim not in (1, 2):
        return None
    order = "C" if a.flags.c_contiguous else ("F" if a.flags.f_contiguous else None)
    if order is None:
        return None
    return ("memmap", os.fspath(a.filename), a.dtype.str, tuple(a.shape), int(a.offset), order)


class DataParallel:
    """Train one network on the workers of a Dask cluster, each on its share of the rows.

    Parameters
    ----------
    net : Network
        Trained in place: after :meth:`fit` it holds the result, as after
        ``net.fit``.
    client : distributed.Client
        A client of the cluster to use.
    strategy : {"sync", "local"}, default "sync"
        ``"sync"``: one optimizer step per global mini-batch, equal to
        ``net.fit`` on one machine up to rounding.  ``"local"``: local SGD,
        each worker takes ``sync_every`` steps on its shard between model
        averages.
    sync_every : int, default 100
        Local steps per averaging round (``strategy="local"`` only).
    workers : list of str, optional
        Worker addresses to use; all workers of the cluster by default.
    timeout : float, optional
        Seconds to wait for a worker's answer to one step (or round) before
        treating it as lost; no limit by default.
    warm_up : bool, default True
        Register :class:`WarmUp` on the cluster before the first fit, so that
        every worker compiles the kernels before the first step.
    """

    def __init__(self, net, client, strategy="sync", sync_every=100, workers=None, timeout=None, warm_up=True):
        from numbanet.network import Network

        if not isinstance(net, Network):
            raise ValueError(f"net must be a numbanet.Network; got {type(net).__name__}")
        if strategy not in ("sync", "local"):
            raise ValueError(f"strategy must be 'sync' or 'local'; got {strategy!r}")
        self.net = net
        self.client = client
        self.strategy = strategy
        self.sync_every = check.positive_int(sync_every, "sync_every")
        self.workers = None if workers is None else [str(w) for w in workers]
        if timeout is not None and (not np.isfinite(float(timeout)) or float(timeout) <= 0):
            raise ValueError(f"timeout must be a positive number of seconds or None; got {timeout!r}")
        self.timeout = None if timeout is None else float(timeout)
        self.warm_up = bool(warm_up)
        #: Record of the last fit: strategy, workers, steps (and rounds), bytes of parameters, gradients
        #: and optimizer state sent to and received from the workers, and the seconds of the training
        #: loop (set-up excluded).  benchmarks/dataparallel.py reads it.
        self.comm = {}
        #: Identity of the last fit on the workers (see :func:`last_round`).
        self.fit_id = None

    def __repr__(self):
        return f"DataParallel({self.net!r}, strategy={self.strategy!r}, sync_every={self.sync_every})"

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        X,
        Y,
        epochs=1,
        batch_size=32,
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
        """Train ``net`` on the cluster; the arguments and the result are those of :meth:`numbanet.Network.fit`.

        ``X`` and ``Y`` may be NumPy arrays (sent to the workers once),
        memory maps (each worker opens the file and reads only its rows; the
        file must be reachable from the workers at the same path) or Dask
        arrays (each worker takes the chunks it already holds; they are
        reassigned only when a worker would hold more than
        :data:`REBALANCE_FACTOR` times its share of the rows).

        ``strategy="sync"`` gives the weights ``net.fit`` gives with the same
        arguments (to about 1e-12 in float64), for every optimizer, L2,
        sample weights, clipping, schedules and shuffling; it refuses
        ``dropout > 0`` (the masks are drawn from the network's generator row
        by row, which a split batch does not reproduce) -- use
        ``strategy="local"`` for networks with dropout.

        ``strategy="local"`` records in the history also ``rounds``
        (averaging rounds run) and ``steps`` (local steps per worker).

        ``validation_data`` is evaluated on the client (Dask arrays are
        computed there).  An interrupted ``fit`` leaves ``net`` consistent
        (the weights of the last completed step or round, with their
        optimizer state and counters).  As with ``Network.fit``, an epoch
        that a ``sync`` fit on NumPy arrays or memory maps stopped in the
        middle of is finished first by the next ``fit`` -- this one's or
        ``net.fit`` -- on the same data with the same batch size, shuffle
        setting and optimizer, so the result equals an uninterrupted run.

        Returns
        -------
        History

        Raises
        ------
        ValueError
            For invalid input; nothing is changed.
        RuntimeError
            When the network is being trained by another fit right now.
        TrainingDivergedError
            As ``Network.fit``: the weights and optimizer state are restored
            to the start of the epoch in which the loss stopped being finite.
        WorkerLostError
            When a worker is lost; ``net`` holds the last consistent state.
        """
        net = self.net
        if not net._fit_lock.acquire(blocking=False):
            raise RuntimeError(
                "this network is being trained by another fit right now; concurrent training of one network is refused"
            )
        fit_id = self.fit_id = uuid.uuid4().hex
        self._actors = []
        try:
            return self._fit(
                X,
                Y,
                epochs,
                batch_size,
                optimizer,
                shuffle,
                validation_data,
                validation_split,
                progress,
                sample_weight,
                callbacks,
                early_stopping,
                lr_schedule,
                clip_norm,
                fit_id,
            )
        except KeyboardInterrupt:
            try:
                self.client.run(_request_stop, fit_id, wait=False)
            except Exception:  # noqa: S110 - the workers are released below either way
                pass
            raise
        finally:
            self._actors = []
            self._futures = []  # released: the actors and their shards go away on the workers
            self._persisted = None
            try:
                self.client.run(_forget_stop, fit_id, wait=False)
            except Exception:  # noqa: S110 - a closed client, a lost worker: nothing left to clean
                pass
            net._fit_lock.release()

    def _fit(
        self,
        X,
        Y,
        epochs,
        batch_size,
        optimizer,
        shuffle,
        validation_data,
        validation_split,
        progress,
        sample_weight,
        callbacks,
        early_stopping,
        lr_schedule,
        clip_norm,
        fit_id,
    ):
        net = self.net
        epochs = check.positive_int(epochs, "epochs")
        batch_size = check.positive_int(batch_size, "batch_size")
        if self.strategy == "sync" and net.dropout > 0:
            raise ValueError(
                f"strategy='sync' cannot reproduce dropout (this network has dropout={net.dropout}): "
                "its masks are drawn row by row from one generator; use strategy='local' or dropout=0"
            )
        split = check.non_negative_float(validation_split, "validation_split", upper=1.0, upper_open=True)
        if optimizer is None:
            optimizer = net.optimizer if net.optimizer is not None else SGD(lr=0.1)
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"optimizer must be a numbanet optimizer (SGD, Adam, ...); got {optimizer!r}")
        schedule = as_schedule(lr_schedule)
        clip = 0.0 if clip_norm is None else check.non_negative_float(clip_norm, "clip_norm")
        optimizer._validate()
        cbs = as_callbacks(callbacks)
        if early_stopping is not None and early_stopping is not False:
            if isinstance(early_stopping, EarlyStopping):
                cbs.append(early_stopping)
            else:
                cbs.append(EarlyStopping(patience=check.positive_int(early_stopping, "early_stopping")))
        if split > 0 and validation_data is not None:
            raise ValueError("give either validation_data or validation_split, not both")
        data = self._prepare(X, Y, sample_weight, split)
        Xv = Yv = None
        if validation_data is not None:
            try:
                Xv, Yv = validation_data
            except (TypeError, ValueError):
                raise ValueError("validation_data must be a pair (X_val, Y_val)") from None
            if _is_dask_array(Xv):
                Xv = Xv.compute()
            if _is_dask_array(Yv):
                Yv = Yv.compute()
            Xv = net._checked_inputs(Xv, "validation X")
            Yv = net._checked_targets(Yv, "validation Y")
            check.check_rows(Xv, Yv, "validation X", "validation Y")
        first = net.epochs_trained
        lrs = schedule_rates(schedule, first, epochs, optimizer.lr)
        workers = self._workers()
        # Set-up on the cluster: a failure here (a bad row found by a worker, a lost worker) changes nothing.
        rng_state = net._rng.bit_generator.state
        try:
            if split > 0:
                data = self._split_validation(data, split)
                Xv, Yv = data.pop("val")
            if self.warm_up:
                self._register_warm_up()
            shards = self._place(data, workers)
            self._start_actors(shards, data)
        except BaseException:
            net._rng.bit_generator.state = rng_state
            raise
        # From here on the network changes.
        if progress is None:
            progress = default_progress()
        optimizer.bind(net.n_params, net.dtype)
        net.optimizer = optimizer
        # An epoch interrupted (by net.fit or a sync fit) on the same data is finished first, as fit does.
        self._pending_in = net._pending if self.strategy == "sync" else None
        net._pending = None
        history = History()
        net.history = history
        epoch_end = None
        if cbs or Xv is not None or schedule.needs_loss:
            epoch_end = net._epoch_end_work(history, cbs, Xv, Yv, schedule, optimizer)
        bar = Progress(epochs, progress)
        for cb in cbs:
            cb.on_train_begin(net)
        loop = self._sync_loop if self.strategy == "sync" else self._local_loop
        started = time.perf_counter()
        try:
            loop(
                data,
                epochs,
                min(batch_size, data["n"]),
                shuffle,
                optimizer,
                schedule,
                lrs,
                clip,
                history,
                bar,
                epoch_end,
                fit_id,
            )
        finally:
            self.comm["loop_seconds"] = time.perf_counter() - started
            bar.close()
        for cb in cbs:
            cb.on_train_end(net, history)
        return history

    # ----------------------------------------------------------------- data

    def _prepare(self, X, Y, sample_weight, split):
        """Check the data's shapes and types; return a description of where its rows are."""
        net = self.net
        if _is_dask_array(X) or _is_dask_array(Y):
            if split > 0:
                raise ValueError("validation_split needs in-memory data; with Dask arrays pass validation_data")
            return self._prepare_dask(X, Y, sample_weight)
        xsrc, ysrc = _memmap_source(X), _memmap_source(Y)
        if xsrc is not None and split == 0:
            Xs = self._check_shape(X, "X", net.sizes[0], "features")
        else:
            xsrc = None
            Xs = net._checked_inputs(X)
        if ysrc is not None and split == 0:
            Ys = self._check_shape(Y, "Y", net.sizes[-1], "outputs")
            if ysrc[3] != Ys.shape:  # a 1-D memory map read as one column
                ysrc = None
                Ys = net._checked_targets(Y)
        else:
            ysrc = None
            Ys = net._checked_targets(Y)
        check.check_rows(Xs, Ys)
        n = Xs.shape[0]
        sw = check.sample_weights(sample_weight, n)
        return {"kind": "memory", "X": Xs, "Y": Ys, "xsrc": xsrc, "ysrc": ysrc, "sw": sw, "n": n}

    def _check_shape(self, a, name, n_cols, what):
        """Shape checks of a memory map that the client does not read (the workers check the values)."""
        if a.ndim == 1 and what == "outputs" and n_cols == 1:
            a = a.reshape(-1, 1)
        if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] != n_cols:
            raise ValueError(f"{name} has shape {a.shape}, but the network expects (n_samples, {n_cols}) {what}")
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{name} has dtype {a.dtype}; numbanet needs numbers")
        return a

    def _prepare_dask(self, X, Y, sample_weight):
        import dask.array as da

        net = self.net
        X = X if _is_dask_array(X) else da.from_array(np.asarray(X), chunks=(-1, -1))
        Y = Y if _is_dask_array(Y) else da.from_array(np.asarray(Y), chunks=-1)
        if Y.ndim == 1 and net.sizes[-1] == 1:
            Y = Y.reshape(-1, 1)
        for a, name, cols, what in ((X, "X", net.sizes[0], "features"), (Y, "Y", net.sizes[-1], "outputs")):
            if a.ndim != 2 or a.shape[1] != cols:
                raise ValueError(f"{name} has shape {a.shape}, but the network expects (n_samples, {cols}) {what}")
            if math.isnan(a.shape[0]):
                raise ValueError(f"{name} has an unknown number of rows; call {name}.compute_chunk_sizes() first")
            if a.dtype.kind not in "biuf":
                raise ValueError(f"{name} has dtype {a.dtype}; numbanet needs numbers")
        if X.shape[0] != Y.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but Y has {Y.shape[0]}")
        n = int(X.shape[0])
        if n == 0:
            raise ValueError("X is empty: it has 0 samples")
        X = X.rechunk({1: -1})
        Y = Y.rechunk({0: X.chunks[0], 1: -1})
        if _is_dask_array(sample_weight):
            sample_weight = sample_weight.compute()
        sw = check.sample_weights(sample_weight, n)
        return {"kind": "dask", "X": X, "Y": Y, "sw": sw, "n": n}

    def _split_validation(self, data, split):
        """Hold out a validation fraction as ``Network.fit`` does (the same rows, from the same generator)."""
        net = self.net
        X, Y, sw = data["X"], data["Y"], data["sw"]
        n_val = int(round(split * X.shape[0]))
        if n_val < 1 or n_val >= X.shape[0]:
            raise ValueError(
                f"validation_split={split} of {X.shape[0]} samples leaves {n_val} for validation and "
                f"{X.shape[0] - n_val} for training; both need at least 1"
            )
        perm = net._rng.permutation(X.shape[0])
        val, tr = perm[:n_val], np.sort(perm[n_val:])
        out = dict(
            data,
            X=check.read_only(X[tr]),
            Y=check.read_only(Y[tr]),
            sw=np.ascontiguousarray(sw[tr]),
            n=tr.size,
            xsrc=None,
            ysrc=None,
        )
        if out["sw"].sum() <= 0:
            raise ValueError("after validation_split every training sample has weight 0")
        out["val"] = (check.read_only(X[val]), check.read_only(Y[val]))
        return out

    def _workers(self):
        info = self.client.scheduler_info(n_workers=-1) if self._takes_n_workers() else self.client.scheduler_info()
        alive = sorted(info["workers"])
        if self.workers is None:
            workers = alive
        else:
            missing = [w for w in self.workers if w not in alive]
            if missing:
                raise ValueError(f"workers {missing} are not in the cluster (it has {alive})")
            workers = list(self.workers)
        if not workers:
            raise ValueError("the cluster has no workers")
        return workers

    def _takes_n_workers(self):
        import inspect

        try:
            return "n_workers" in inspect.signature(self.client.scheduler_info).parameters
        except (TypeError, ValueError):
            return False

    def _register_warm_up(self):
        plugins = getattr(self.client, "_numbanet_warm_up", False)
        if plugins:
            return
        self.client.register_plugin(WarmUp())
        self.client._numbanet_warm_up = True

    def _place(self, data, workers):
        """Decide which worker holds which rows.

        Returns ``[(worker, ranges, sources, X blocks, Y blocks)]`` in a fixed order (by first row), the
        order in which the client adds the workers' results.
        """
        n = data["n"]
        if data["kind"] == "dask":
            return self._place_dask(data, workers)
        W = min(len(workers), n)
        if data["xsrc"] is None and data["ysrc"] is None:
            # In memory: row i goes to shard i mod W, so that every batch, shuffled or not, is spread
            # over all workers (the shard is copied once, as sending it copies it anyway).
            return [
                (
                    workers[k],
                    [(k, n, W)],
                    [(None, None)],
                    [np.ascontiguousarray(data["X"][k::W])],
                    [np.ascontiguousarray(data["Y"][k::W])],
                )
                for k in range(W)
            ]
        # A memory map: consecutive rows, so that each worker reads one stretch of the file.
        bounds = np.linspace(0, n, W + 1).round().astype(np.int64)
        shards = []
        for k in range(W):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            shards.append(
                (
                    workers[k],
                    [(lo, hi, 1)],
                    [(data["xsrc"], data["ysrc"])],
                    [data["X"][lo:hi]] if data["xsrc"] is None else [],
                    [data["Y"][lo:hi]] if data["ysrc"] is None else [],
                )
            )
        return shards

    def _place_dask(self, data, workers):
        from distributed import futures_of, wait

        client = self.client
        X, Y = client.persist([data["X"], data["Y"]])  # already persisted arrays stay where they are
        xf = {f.key: f for f in futures_of(X)}
        yf = {f.key: f for f in futures_of(Y)}
        wait(list(xf.values()) + list(yf.values()), timeout=self.timeout)  # to know where each block is
        xkeys = [k[0] for k in X.__dask_keys__()]
        ykeys = [k[0] for k in Y.__dask_keys__()]
        starts = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(np.int64)
        who = client.who_has([xf[k] for k in xkeys])
        load = {w: 0 for w in workers}
        owner = []
        for i, key in enumerate(xkeys):
            holders = [w for w in who.get(key, ()) if w in load]
            owner.append(holders[0] if holders else min(load, key=load.get))
            load[owner[-1]] += int(starts[i + 1] - starts[i])
        mean = data["n"] / len(workers)
        if max(load.values()) > REBALANCE_FACTOR * mean and len(xkeys) > 1:
            # Very uneven: give blocks, largest first, to the least-loaded worker (they move once).
            load = {w: 0 for w in workers}
            owner = [None] * len(xkeys)
            for i in sorted(range(len(xkeys)), key=lambda i: -(starts[i + 1] - starts[i])):
                w = min(load, key=lambda w: (load[w], workers.index(w)))
                owner[i] = w
                load[w] += int(starts[i + 1] - starts[i])
        shards = []
        for w in workers:
            mine = [i for i in range(len(xkeys)) if owner[i] == w and starts[i + 1] > starts[i]]
            if not mine:
                continue
            ranges = [(int(starts[i]), int(starts[i + 1]), 1) for i in mine]
            shards.append(
                (w, ranges, [(None, None)] * len(mine), [xf[xkeys[i]] for i in mine], [yf[ykeys[i]] for i in mine])
            )
        shards.sort(key=lambda s: s[1][0][0])
        self._persisted = (X, Y)
        return shards

    def _start_actors(self, shards, data):
        """Send each worker its rows and create its actor; keep the futures alive for the fit."""
        client, net, sw, n = self.client, self.net, data["sw"], data["n"]
        self._futures = []
        pending = []
        for w, ranges, sources, xblocks, yblocks in shards:
            it_x, it_y = iter(xblocks), iter(yblocks)
            blocks = []
            for xs, ys in sources:
                if xs is None:
                    blocks.append(next(it_x))
                if ys is None:
                    blocks.append(next(it_y))
            blocks = [
                b if hasattr(b, "key") else client.scatter(b, workers=[w], direct=False, hash=False) for b in blocks
            ]
            swk = np.concatenate([sw[lo:hi:step] for lo, hi, step in ranges])
            fut = client.submit(
                _Shard,
                net,
                ranges,
                swk,
                n,
                sources,
                *blocks,
                actor=True,
                workers=[w],
                allow_other_workers=False,
                pure=False,
            )
            self._futures += [fut, *blocks]
            pending.append((w, fut))
        self._actors = []
        for w, fut in pending:
            try:
                actor = fut.result(timeout=self.timeout)
            except ValueError:
                raise
            except Exception as exc:
                if _is_lost(exc):
                    raise WorkerLostError(w, self.net.epochs_trained, 0, "setup", exc) from exc
                raise
            self._actors.append((w, actor))
        return self._actors

    # ----------------------------------------------------------------- steps

    def _gather(self, method, args, epoch, step, what):
        """Call ``method`` on every worker's actor at once and return the answers in shard order.

        ``args`` is one tuple of arguments for all, or a list of one tuple per actor.
        """
        calls = []
        for i, (w, actor) in enumerate(self._actors):
            try:
                calls.append((w, getattr(actor, method)(*(args[i] if isinstance(args, list) else args))))
            except Exception as exc:
                if _is_lost(exc):
                    raise WorkerLostError(w, epoch, step, what, exc) from exc
                raise
        out = []
        for w, fut in calls:
            try:
                out.append(fut.result(timeout=self.timeout))
            except Exception as exc:
                if _is_lost(exc):
                    raise WorkerLostError(w, epoch, step, what, exc) from exc
                raise
        return out

    def _sync_loop(self, data, epochs, batch_size, shuffle, opt, schedule, lrs, clip, history, bar, epoch_end, fit_id):
        net = self.net
        theta, state = net.params, opt.state
        spec, l2 = net._spec, float(net.l2)
        sw, n = data["sw"], data["n"]
        sw_total = float(sw.sum())
        unit = bool(np.all(sw == 1.0))
        n_batches = -(-n // batch_size)
        hyper, code = opt._hyper(), opt._code
        grad = np.empty(net.n_params, dtype=net.dtype)
        backup = np.empty(_layout.backup_shape(net.n_params, state.shape[0]), dtype=net.dtype)
        first = net.epochs_trained
        t_start = opt.t
        actors = self._actors
        comm = {"strategy": "sync", "workers": len(actors), "steps": 0, "bytes_to_workers": 0, "bytes_from_workers": 0}
        self.comm = comm
        itemsize = net.dtype.itemsize
        last_bar = time.perf_counter()
        # The key under which Network.fit keeps an interrupted epoch (engine.PendingEpoch), for in-memory data.
        fingerprint = None
        if data["kind"] == "memory":
            fingerprint = data_fingerprint(data["X"], data["Y"], sw, batch_size, shuffle)
        pending = self._pending_in
        self._pending_in = None
        if pending is None or fingerprint is None or pending.key != (fingerprint, id(opt), opt.t):
            pending = None
        order, b_next, acc, t0 = None, 0, 0.0, opt.t
        diverged = False
        rng_before = None  # the generator before this epoch's draw, until the epoch's first step
        try:
            for e in range(epochs):
                if schedule.needs_loss and np.isnan(lrs[e]):
                    lrs[e] = _check(schedule, first + e, opt.lr)
                lr = float(lrs[e])
                samples0 = history.samples
                if pending is not None:  # finish the interrupted epoch first
                    order, b_first, acc, t0 = pending.order, pending.batch, pending.acc, pending.t0
                    backup[:] = pending.backup.reshape(backup.shape)
                    call = (None, shuffle, batch_size, order)
                    pending = None
                else:
                    backup[0] = theta
                    backup[1:] = state
                    t0, b_first, acc = opt.t, 0, 0.0
                    order = np.arange(n, dtype=np.int64)
                    rng_before = net._rng_state.copy()  # the draw counts once the epoch's first step is taken
                    if shuffle:
                        _rng.shuffle(order, net._rng_state)  # exactly the draw train_slice makes at an epoch's start
                    call = (rng_before, shuffle, batch_size)
                b_next = b_first
                self._gather("begin_epoch", call, first + e, opt.t - t_start + 1, "epoch")
                for b in range(b_first, n_batches):
                    start = b * batch_size
                    m = min(batch_size, n - start)
                    if unit:
                        wsum = float(m)
                    else:
                        wsum = float(np.cumsum(sw[order[start : start + m]])[-1])  # summed in order, as the kernel
                    step = opt.t - t_start + 1
                    c = 0.0
                    if wsum > 0:
                        parts = self._gather("gradient", (theta, b, wsum), first + e, step, "step")
                        comm["bytes_to_workers"] += len(actors) * theta.nbytes
                        grad[:] = 0.0
                        for cost, g in parts:
                            c += cost
                            if g is not None:
                                grad += g
                                comm["bytes_from_workers"] += g.size * itemsize
                    if l2 != 0.0:
                        c += _train.l2_penalty(theta, spec, l2)
                    if not np.isfinite(c):
                        diverged = True
                        self._restore(backup, opt, t0)
                        history.samples = samples0
                        raise TrainingDivergedError(first + e, b + 1, lr)
                    with _NoInterrupt():
                        acc += wsum * c
                        if wsum > 0:
                            if l2 != 0.0:
                                _train.add_l2_gradient(theta, grad, spec, l2)
                            if clip > 0.0:
                                clip_by_global_norm(grad, clip)
                            update(code, theta, grad, state, hyper, lr, opt.t + 1)
                            opt.t += 1
                            comm["steps"] += 1
                        history.samples += m
                        history.steps = opt.t - t_start
                        b_next = b + 1
                        rng_before = None
                    now = time.perf_counter()
                    if now - last_bar > 0.1:
                        bar.update(e + (b + 1) / n_batches, history)
                        last_bar = now
                if not _train._all_finite(theta):
                    diverged = True
                    self._restore(backup, opt, t0)
                    history.samples = samples0
                    history.steps = opt.t - t_start
                    raise TrainingDivergedError(first + e, n_batches, lr)
                b_next = 0
                if self._end_epoch(
                    history, first + e, acc / sw_total if sw_total > 0 else 0.0, lr, epochs, e, bar, epoch_end
                ):
                    break
        finally:
            history.steps = opt.t - t_start
            if rng_before is not None and not diverged:
                # Stopped before the epoch's first step: undraw its order, as the kernel draws it together
                # with that step, so that the next fit draws the same one.
                net._rng_state[:] = rng_before
            if 0 < b_next < n_batches and not diverged and fingerprint is not None:
                # Stopped inside an epoch: leave it pending, as Network.fit does, for this or a later fit.
                net._pending = PendingEpoch((fingerprint, id(opt), opt.t), order, b_next, acc, backup.copy(), t0)

    def _local_loop(self, data, epochs, batch_size, shuffle, opt, schedule, lrs, clip, history, bar, epoch_end, fit_id):
        net = self.net
        actors = self._actors
        W = len(actors)
        infos = self._gather("info", (), net.epochs_trained, 0, "setup")
        shard_w = np.array([i[1] for i in infos], dtype=np.float64)
        weights = shard_w / shard_w.sum()
        seeds = [int(_rng.next_u64(net._rng_state)) for _ in actors]  # each worker its own stream, from net's
        self._gather(
            "begin_local", [(s, batch_size, _fresh(opt), shuffle, clip) for s in seeds], net.epochs_trained, 0, "setup"
        )
        n = data["n"]
        steps_per_epoch = -(-(-(-n // batch_size)) // W)
        theta, state = net.params, opt.state
        backup = np.empty(_layout.backup_shape(net.n_params, state.shape[0]), dtype=net.dtype)
        first = net.epochs_trained
        history.rounds = 0
        history.steps = 0
        comm = {
            "strategy": "local",
            "workers": W,
            "rounds": 0,
            "steps": 0,
            "bytes_to_workers": 0,
            "bytes_from_workers": 0,
        }
        self.comm = comm
        for e in range(epochs):
            if schedule.needs_loss and np.isnan(lrs[e]):
                lrs[e] = _check(schedule, first + e, opt.lr)
            lr = float(lrs[e])
            backup[0] = theta
            backup[1:] = state
            t0, samples0, steps0 = opt.t, history.samples, history.steps
            cost = wsum = 0.0
            done = 0
            while done < steps_per_epoch:
                k = min(self.sync_every, steps_per_epoch - done)
                rnd = history.rounds + 1
                res = self._gather("local_round", (theta, state, opt.t, lr, k, fit_id), first + e, rnd, "round")
                comm["bytes_to_workers"] += W * (theta.nbytes + state.nbytes)
                if any(r[7] for r in res):
                    self._restore(backup, opt, t0)
                    history.samples, history.steps = samples0, steps0
                    raise TrainingDivergedError(first + e, done + max(r[6] for r in res) + 1, lr)
                new_theta = np.zeros_like(theta)
                new_state = np.zeros_like(state)
                for wk, r in zip(weights, res):
                    new_theta += wk * r[0]
                    new_state += wk * r[1]
                    comm["bytes_from_workers"] += r[0].nbytes + r[1].nbytes
                if not _train._all_finite(new_theta):
                    self._restore(backup, opt, t0)
                    history.samples, history.steps = samples0, steps0
                    raise TrainingDivergedError(first + e, done + k, lr)
                ran = min(r[6] for r in res)
                with _NoInterrupt():
                    theta[:] = new_theta
                    state[:] = new_state
                    opt.t = max(r[2] for r in res)
                    cost += sum(r[3] for r in res)
                    wsum += sum(r[4] for r in res)
                    history.samples += sum(r[5] for r in res)
                    history.steps += ran
                    history.rounds += 1
                    comm["rounds"] += 1
                    comm["steps"] += ran
                done += k
                if ran < k:  # the workers were told to stop (Ctrl-C on the client)
                    raise KeyboardInterrupt
                bar.update(e + done / steps_per_epoch, history)
            if self._end_epoch(history, first + e, cost / wsum if wsum > 0 else 0.0, lr, epochs, e, bar, epoch_end):
                break

    def _end_epoch(self, history, epoch, loss, lr, epochs, e, bar, epoch_end):
        """Record a completed epoch, run the per-epoch work; return True to stop."""
        with _NoInterrupt():
            history.epoch.append(epoch)
            history.loss.append(float(loss))
            history.lr.append(lr)
            self.net.epochs_trained += 1
        stop = bool(epoch_end(history)) if epoch_end is not None else False
        bar.update(e + 1, history)
        if stop:
            history.stopped_early = e + 1 < epochs
        return stop

    def _restore(self, backup, opt, t0):
        with _NoInterrupt():
            self.net.params[:] = backup[0]
            opt.state[:] = backup[1:]
            opt.t = t0


def _fresh(opt):
    """Copy the optimizer's hyper-parameters without its state (each worker gets the state per round)."""
    import copy

    clone = copy.copy(opt)
    clone.state = None
    clone.t = 0
    return clone


def _check(schedule, epoch, base_lr):
    from numbanet.engine import check_rate

    return check_rate(schedule(epoch, base_lr), epoch)


def _is_lost(exc):
    """Whether an exception from an actor call means its worker is gone (not an error in the call)."""
    import asyncio
    from concurrent.futures import CancelledError

    from distributed import TimeoutError as DaskTimeout

    if isinstance(exc, (OSError, CancelledError, asyncio.TimeoutError, DaskTimeout, TimeoutError)):
        return True
    if isinstance(exc, RuntimeError) and "Worker holding Actor was lost" in str(exc):
        return True  # distributed.actor: the actor's worker died with the call pending
    try:
        from distributed.client import FutureCancelledError
        from distributed.comm.core import CommClosedError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (CommClosedError, FutureCancelledError))
