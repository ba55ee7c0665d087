"""The worker side of data-parallel training: a shard of the rows in a Dask actor, and the warm-up.

A :class:`_Shard` holds a worker's rows and a copy of the network for the
whole of one ``fit``; the client calls it once per step (``sync``) or per
averaging round (``local``).  The stop flags let a client interrupted by
Ctrl-C end the workers' local rounds early.
"""

import os
import re
import threading
import time

import numpy as np
from distributed import WorkerPlugin

from numbanet import _validation as check
from numbanet import config
from numbanet.kernels import layout as _layout
from numbanet.kernels import rng as _rng
from numbanet.kernels import training as _train
from numbanet.network import Network
from numbanet.optimizers import SGD

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


def _global_rows(message, lo, step):
    """``message`` of a check of a block with each "row r" of the block renamed to its row of the whole data."""
    return re.sub(r"\brow (\d+)", lambda m: f"row {lo + step * int(m.group(1))}", message)


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
                raise ValueError(f"{which} of the training data: {_global_rows(str(exc), lo, step)}") from None
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
            budget = int(max(1, min(budget * config.SLICE_GROWTH, rate * config.LOCAL_SLICE_SECONDS)))
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
    from numbanet.precompile import compile as compile_kernels
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
