"""The client side of data-parallel training: :class:`DataParallel` and its loops.

``fit`` is checked and started by :class:`numbanet.plan.FitPlan`, as
``Network.fit`` is; the ``sync`` loop shares the engine's epoch bookkeeping
(:func:`numbanet.engine.resumable`, :func:`~numbanet.engine.leave_pending`,
:func:`~numbanet.engine.record_epochs`).
"""

import math
import mmap
import os
import threading
import time
import uuid

import numpy as np

from numbanet import _validation as check
from numbanet import config, interrupts
from numbanet.distributed.worker import WarmUp, _forget_stop, _request_stop, _Shard
from numbanet.engine import EpochEnd, data_fingerprint, leave_pending, record_epochs, resumable
from numbanet.exceptions import TrainingDivergedError
from numbanet.kernels import layout as _layout
from numbanet.kernels import rng as _rng
from numbanet.kernels import training as _train
from numbanet.kernels.updates import clip_by_global_norm, update
from numbanet.network import Network
from numbanet.plan import FitPlan


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


def worker_addresses(client):
    """Return the addresses of the cluster's workers, sorted, as the scheduler knows them now.

    ``client.scheduler_info()`` returns the client's cached identity, which the
    client's periodic refresh rewrites without the workers (in the versions whose
    ``scheduler_info`` takes ``n_workers``): a refresh landing between the fetch
    and the read returns no workers at all.  So the scheduler is asked directly.
    """
    import inspect

    if "n_workers" in inspect.signature(client.scheduler_info).parameters:
        info = client.sync(client.scheduler.identity, n_workers=-1)
    else:
        info = client.scheduler_info()
    return sorted(info["workers"])


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
        :data:`numbanet.config.REBALANCE_FACTOR` times its share of the rows).

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
        with interrupts.held():  # as in Network.fit: no Ctrl-C between taking the lock and the try
            if not net._fit_lock.acquire(blocking=False):
                raise RuntimeError(
                    "this network is being trained by another fit right now; concurrent training of one network "
                    "is refused"
                )
            try:
                with interrupts.opened():  # Ctrl-C at once, but in the steps' own held sections
                    return self._fit_with_lock(
                        X,
                        Y,
                        sample_weight,
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
            finally:
                net._fit_lock.release()

    def _fit_with_lock(self, X, Y, sample_weight, **options):
        fit_id = self.fit_id = uuid.uuid4().hex
        self._actors = []
        try:
            history = self._fit(X, Y, sample_weight, **options)
        except BaseException as exc:
            # Ctrl-C or a lost worker: the workers are told, but the error reaches the caller at once.
            self._tell_workers(fit_id, stop=isinstance(exc, KeyboardInterrupt), wait=False)
            raise
        finally:
            self._actors = []
            self._futures = []  # released: the actors and their shards go away on the workers
            self._persisted = None
        self._tell_workers(fit_id, stop=False, wait=True)
        return history

    def _tell_workers(self, fit_id, stop, wait):
        """Tell every worker to stop fit ``fit_id`` (with ``stop``), then to forget it.

        ``Client.run`` waits for every worker's answer, and a stalled
        (stopped, swapping) worker never answers: the calls go on in a thread
        of their own, which a fit that ended normally waits for at most
        ``timeout`` (and CLEANUP_SECONDS), and one that failed not at all.
        """

        def tell():
            try:
                if stop:
                    self.client.run(_request_stop, fit_id, wait=False)
                self.client.run(_forget_stop, fit_id, wait=False)
            except Exception:
                pass  # a lost worker has nothing to be told

        thread = threading.Thread(target=tell, name="numbanet-tell-workers", daemon=True)
        thread.start()
        if wait:
            thread.join(config.CLEANUP_SECONDS if self.timeout is None else min(self.timeout, config.CLEANUP_SECONDS))

    def _fit(self, X, Y, sample_weight, validation_data=None, **options):
        net = self.net
        if self.strategy == "sync" and net.dropout > 0:
            raise ValueError(
                f"strategy='sync' cannot reproduce dropout (this network has dropout={net.dropout}): "
                "its masks are drawn row by row from one generator; use strategy='local' or dropout=0"
            )
        plan = FitPlan(net, validation_data=_in_memory(validation_data), **options)
        if plan.full_batch:
            raise ValueError(
                "DataParallel trains by mini-batch steps; LBFGS is a full-batch optimizer for Network.fit. "
                "Use SGD, Adam, ... here"
            )
        data = self._prepare(X, Y, sample_weight, plan.split)
        workers = self._workers()
        # Set-up on the cluster: a failure here (a bad row found by a worker, a lost worker) changes nothing.
        rng_state = net._rng.bit_generator.state
        try:
            if plan.split > 0:
                data = self._split_validation(data, plan)
            if self.warm_up:
                self._register_warm_up()
            shards = self._place(data, workers)
            self._start_actors(shards, data)
        except BaseException:
            net._rng.bit_generator.state = rng_state
            raise
        # From here on the network changes.  An epoch interrupted (by net.fit or a sync fit) on the
        # same data is finished first, as fit does.
        pending = net._pending if self.strategy == "sync" else None
        net._pending = None
        session = plan.begin(net)
        started = time.perf_counter()
        try:
            if self.strategy == "sync":
                _SyncRun(self, data, plan, session, pending).run()
            else:
                self._local_loop(data, plan, session)
        finally:
            self.comm["loop_seconds"] = time.perf_counter() - started
            session.close()
        return session.finish()

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

    def _split_validation(self, data, plan):
        """Hold out a validation fraction as ``Network.fit`` does (the same rows, from the same generator)."""
        tr = plan.hold_out(self.net._rng, data["X"], data["Y"], data["sw"])
        X, Y, sw = check.read_only(data["X"][tr]), check.read_only(data["Y"][tr]), np.ascontiguousarray(data["sw"][tr])
        return dict(data, X=X, Y=Y, sw=sw, n=X.shape[0], xsrc=None, ysrc=None)

    def _workers(self):
        alive = worker_addresses(self.client)
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
        if max(load.values()) > config.REBALANCE_FACTOR * mean and len(xkeys) > 1:
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

    def _local_loop(self, data, plan, session):
        net, opt, history, bar = self.net, plan.optimizer, session.history, session.bar
        epochs, schedule, lrs, fit_id = plan.epochs, plan.schedule, plan.lrs, self.fit_id
        batch_size = plan.batch_for(data["n"])
        actors = self._actors
        W = len(actors)
        infos = self._gather("info", (), net.epochs_trained, 0, "setup")
        shard_w = np.array([i[1] for i in infos], dtype=np.float64)
        weights = shard_w / shard_w.sum()
        seeds = [int(_rng.next_u64(net._rng_state)) for _ in actors]  # each worker its own stream, from net's
        self._gather(
            "begin_local",
            [(s, batch_size, _fresh(opt), plan.shuffle, plan.clip) for s in seeds],
            net.epochs_trained,
            0,
            "setup",
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
            _layout.backup_state(backup, state.shape[0])[:] = state
            t0, samples0, steps0 = opt.t, history.samples, history.steps
            cost = wsum = 0.0
            done = 0
            while done < steps_per_epoch:
                k = min(self.sync_every, steps_per_epoch - done)
                rnd = history.rounds + 1
                res = self._gather("local_round", (theta, state, opt.t, lr, k, fit_id), first + e, rnd, "round")
                comm["bytes_to_workers"] += W * (theta.nbytes + state.nbytes)
                if any(r[7] for r in res):
                    _restore(net, backup, opt, t0)
                    history.samples, history.steps = samples0, steps0
                    raise TrainingDivergedError(first + e, done + max(r[6] for r in res) + 1, lr)
                new_theta = np.zeros_like(theta)
                new_state = np.zeros_like(state)
                for wk, r in zip(weights, res):
                    new_theta += wk * r[0]
                    new_state += wk * r[1]
                    comm["bytes_from_workers"] += r[0].nbytes + r[1].nbytes
                if not _train._all_finite(new_theta):
                    _restore(net, backup, opt, t0)
                    history.samples, history.steps = samples0, steps0
                    raise TrainingDivergedError(first + e, done + k, lr)
                ran = min(r[6] for r in res)
                with interrupts.held():
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
            if _end_epoch(net, session, e, cost / wsum if wsum > 0 else 0.0, lr):
                break


def _end_epoch(net, session, e, loss, lr, holder=None):
    """Record epoch ``e`` of the fit as completed, run the per-epoch work; return True to stop.

    While that work is not all done, ``holder.end`` (a sync run's) is its
    :class:`~numbanet.engine.EpochEnd`, which an interruption leaves pending
    for the next fit to finish, as ``Network.fit`` does.
    """
    with interrupts.held():
        record_epochs(net, session.history, net.epochs_trained, [loss], [lr])
        end = EpochEnd(loss) if session.epoch_end is not None else None
        if holder is not None:
            holder.end = end
    return _finish_epoch_end(session, e, end, holder)


def _finish_epoch_end(session, e, end, holder=None, resumed=False):
    """Do the per-epoch work ``end`` has left (none when None); return True to stop.

    A ``resumed`` end was left by an interrupted fit: its callbacks belonged to
    that fit and are not called again.
    """
    history = session.history
    stop = bool(session.epoch_end(history, end, callbacks=not resumed)) if end is not None else False
    if holder is not None:
        holder.end = None
    session.bar.update(e + 1, history)
    if stop:
        history.stopped_early = e + 1 < session.plan.epochs
    return stop


def _restore(net, backup, opt, t0):
    """Put back the weights, optimizer state and step count of an epoch's start."""
    with interrupts.held():
        net.params[:] = backup[0]
        opt.state[:] = _layout.backup_state(backup, opt.state.shape[0])
        opt.t = t0


class _SyncRun:
    """One ``strategy="sync"`` fit: the client's loop over the global mini-batches.

    The workers compute their parts of each batch's weighted cost and
    gradient; the client adds them in shard order and takes the optimizer
    step.  The epoch bookkeeping is :class:`~numbanet.engine.TrainingRun`'s:
    a backup at each epoch's start, put back on divergence; an epoch stopped
    inside left pending on the network (:func:`~numbanet.engine.leave_pending`);
    the generator's draw for an epoch undone when it stops before the
    epoch's first step (the kernel draws the order together with that step).
    """

    def __init__(self, dp, data, plan, session, pending):
        net = self.net = dp.net
        self.dp, self.plan, self.session, self.history = dp, plan, session, session.history
        self.opt = plan.optimizer
        self.sw, self.n = data["sw"], data["n"]
        self.sw_total = float(self.sw.sum())
        self.unit = bool(np.all(self.sw == 1.0))
        self.batch_size = plan.batch_for(self.n)
        self.n_batches = -(-self.n // self.batch_size)
        self.grad = np.empty(net.n_params, dtype=net.dtype)
        self.hyper = self.opt._hyper()
        self.backup = np.empty(_layout.backup_shape(net.n_params, self.opt.state.shape[0]), dtype=net.dtype)
        self.first, self.t_start = net.epochs_trained, self.opt.t
        self.comm = dp.comm = {
            "strategy": "sync",
            "workers": len(dp._actors),
            "steps": 0,
            "bytes_to_workers": 0,
            "bytes_from_workers": 0,
        }
        # The key under which Network.fit keeps an interrupted epoch: in-memory data only.
        self.fingerprint = None
        if data["kind"] == "memory":
            self.fingerprint = data_fingerprint(data["X"], data["Y"], self.sw, self.batch_size, plan.shuffle)
        self.pending = resumable(pending, self.fingerprint, self.opt)
        self.end = None  # the last completed epoch's EpochEnd while its per-epoch work is not all done
        if self.pending is not None and self.pending.batch == 0:  # stopped in an epoch end: finish that only
            self.end, self.pending = self.pending.end, None
        self.order, self.b_next, self.acc, self.t0 = None, 0, 0.0, self.opt.t
        self.diverged = False
        self.rng_before = None  # the generator before this epoch's draw, until the epoch's first step
        self.last_bar = time.perf_counter()

    def run(self):
        """Train every epoch of the plan; leave the network consistent whatever stops it."""
        plan, opt = self.plan, self.opt
        try:
            if self.end is not None and self.session.epoch_end is not None:
                if _finish_epoch_end(self.session, -1, self.end, self, resumed=True):
                    return
            self.end = None
            for e in range(plan.epochs):
                if plan.schedule.needs_loss and np.isnan(plan.lrs[e]):
                    plan.lrs[e] = _check(plan.schedule, self.first + e, opt.lr)
                lr = float(plan.lrs[e])
                samples0 = self.history.samples
                for b in range(self._begin_epoch(e), self.n_batches):
                    self._step(e, b, lr, samples0)
                if not _train._all_finite(self.net.params):
                    self._diverge(samples0, self.first + e, self.n_batches, lr)
                self.b_next = 0
                loss = self.acc / self.sw_total if self.sw_total > 0 else 0.0
                if _end_epoch(self.net, self.session, e, loss, lr, holder=self):
                    break
        finally:
            self._leave()

    def _begin_epoch(self, e):
        """Take a backup and the epoch's row order (or the pending epoch's); return the first batch."""
        net, opt, backup = self.net, self.opt, self.backup
        if self.pending is not None:  # finish the interrupted epoch first
            p, self.pending = self.pending, None
            self.order, b_first, self.acc, self.t0 = p.order, p.batch, p.acc, p.t0
            backup[:] = p.backup[: backup.shape[0]]  # (a run in parts keeps one more row)
            call = (None, self.plan.shuffle, self.batch_size, self.order)
        else:
            backup[0] = net.params
            _layout.backup_state(backup, opt.state.shape[0])[:] = opt.state
            self.t0, b_first, self.acc = opt.t, 0, 0.0
            self.order = np.arange(self.n, dtype=np.int64)
            self.rng_before = net._rng_state.copy()  # the draw counts once the epoch's first step is taken
            if self.plan.shuffle:
                _rng.shuffle(self.order, net._rng_state)  # exactly the draw train_slice makes at an epoch's start
            call = (self.rng_before, self.plan.shuffle, self.batch_size)
        self.b_next = b_first
        self.dp._gather("begin_epoch", call, self.first + e, opt.t - self.t_start + 1, "epoch")
        return b_first

    def _step(self, e, b, lr, samples0):
        """Mini-batch ``b`` of epoch ``e``: gather its gradient parts, check the cost, take the step."""
        net, opt, history, comm = self.net, self.opt, self.history, self.comm
        theta = net.params
        start = b * self.batch_size
        m = min(self.batch_size, self.n - start)
        if self.unit:
            wsum = float(m)
        else:
            wsum = float(np.cumsum(self.sw[self.order[start : start + m]])[-1])  # summed in order, as the kernel
        c = self._gather_gradient(theta, b, wsum, self.first + e, opt.t - self.t_start + 1)
        if net.l2 != 0.0:
            c += _train.l2_penalty(theta, net._spec, float(net.l2))
        if not np.isfinite(c):
            self._diverge(samples0, self.first + e, b + 1, lr)
        with interrupts.held():
            self.acc += wsum * c
            if wsum > 0:
                if net.l2 != 0.0:
                    _train.add_l2_gradient(theta, self.grad, net._spec, float(net.l2))
                if self.plan.clip > 0.0:
                    clip_by_global_norm(self.grad, self.plan.clip)
                update(opt._code, theta, self.grad, opt.state, self.hyper, lr, opt.t + 1)
                opt.t += 1
                comm["steps"] += 1
            history.samples += m
            history.steps = opt.t - self.t_start
            self.b_next = b + 1
            self.rng_before = None
        now = time.perf_counter()
        if now - self.last_bar > 0.1:
            self.session.bar.update(e + (b + 1) / self.n_batches, history)
            self.last_bar = now

    def _gather_gradient(self, theta, b, wsum, epoch, step):
        """Add the workers' parts of batch ``b`` into ``self.grad``; return the batch's cost."""
        c = 0.0
        if wsum > 0:
            parts = self.dp._gather("gradient", (theta, b, wsum), epoch, step, "step")
            self.comm["bytes_to_workers"] += len(parts) * theta.nbytes
            self.grad[:] = 0.0
            for cost, g in parts:
                c += cost
                if g is not None:
                    self.grad += g
                    self.comm["bytes_from_workers"] += g.size * self.net.dtype.itemsize
        return c

    def _diverge(self, samples0, epoch, batch, lr):
        self.diverged = True
        _restore(self.net, self.backup, self.opt, self.t0)
        self.history.samples = samples0
        self.history.steps = self.opt.t - self.t_start
        raise TrainingDivergedError(epoch, batch, lr)

    def _leave(self):
        self.history.steps = self.opt.t - self.t_start
        if self.diverged:
            return
        if self.rng_before is not None:
            # Stopped before the epoch's first step: undraw its order, so that the next fit draws the same one.
            self.net._rng_state[:] = self.rng_before
        if self.fingerprint is None:
            return
        if 0 < self.b_next < self.n_batches or self.end is not None:
            # Stopped inside an epoch or its per-epoch work: leave it pending, as Network.fit does.
            backup = self.backup.copy()
            args = (self.order, self.b_next, self.acc, backup, self.t0, self.end)
            leave_pending(self.net, self.fingerprint, self.opt, *args)


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


def _in_memory(validation_data):
    """Compute Dask arrays in ``validation_data`` on the client (validation runs there)."""
    if validation_data is None:
        return None
    try:
        Xv, Yv = validation_data
    except (TypeError, ValueError):
        return validation_data  # FitPlan refuses it with its message
    return (Xv.compute() if _is_dask_array(Xv) else Xv, Yv.compute() if _is_dask_array(Yv) else Yv)


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
