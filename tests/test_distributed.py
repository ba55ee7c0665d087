"""numbanet.distributed on a LocalCluster: sync equals one machine, local SGD learns, data stays put, faults.

Two clusters of 2 workers serve the module: one of threads (``processes=False``)
and one of processes.  Worker processes import numbanet from this checkout
(PYTHONPATH), so they run the code under test.
"""

import copy
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import numbanet

pytestmark = pytest.mark.slow  # two Dask LocalClusters (threads, processes) and worker processes


def _need(module):
    """Import ``module``: in CI (where the test extra installs it) a missing one fails; elsewhere it skips."""
    if os.environ.get("CI"):
        import importlib

        return importlib.import_module(module)
    return pytest.importorskip(module)


_need("distributed")

from dask.distributed import Client, LocalCluster  # noqa: E402
from naive import random_classification  # noqa: E402

from numbanet import engine  # noqa: E402
from numbanet.distributed import DataParallel, WarmUp, WorkerLostError, warm_up, worker_addresses  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cluster(processes):
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=":0", silence_logs=50
    )
    return cluster, Client(cluster)


@pytest.fixture(scope="module")
def threads():
    cluster, client = _cluster(False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def procs():
    cluster, client = _cluster(True)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(params=["threads", "processes"])
def client(request):
    return request.getfixturevalue("threads" if request.param == "threads" else "procs")


def _data(n=101, n_in=5, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    X, Y = random_classification(n, n_in, n_out, rng=rng)
    return X, Y, rng.uniform(0.0, 2.0, n)  # and sample weights


def _net(seed=1, l2=0.01, dtype=np.float64, dropout=0.0):
    return numbanet.Network(
        [5, 8, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=seed, l2=l2, dtype=dtype, dropout=dropout
    )


def _both(client, net, X, Y, optimizer, **kw):
    """Fit a copy on one machine and ``net`` on the cluster with the same arguments; return both histories."""
    one = net.copy()
    h1 = one.fit(X, Y, optimizer=copy.deepcopy(optimizer), progress=False, **kw)
    h2 = DataParallel(net, client).fit(X, Y, optimizer=copy.deepcopy(optimizer), progress=False, **kw)
    return one, h1, h2


def _pid_of(client, worker):
    return client.run(os.getpid, workers=[worker])[worker]


# ------------------------------------------------------------------------------------- import


def test_import_numbanet_does_not_import_dask():
    code = (
        "import sys, numbanet; bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'));"
        " print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


# ---------------------------------------------------------------------------------- sync == one machine


@pytest.mark.parametrize(
    "optimizer",
    [
        numbanet.SGD(lr=0.1),
        numbanet.SGD(lr=0.1, momentum=0.9),
        numbanet.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        numbanet.Adam(lr=0.01),
        numbanet.AdamW(lr=0.01),
        numbanet.RMSprop(lr=0.01, momentum=0.5),
    ],
    ids=["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"],
)
def test_sync_equals_one_machine_every_optimizer(threads, optimizer):
    X, Y, sw = _data()  # 101 rows: shards of 50 and 51, and batches split unevenly by the shuffle
    net = _net()
    one, h1, h2 = _both(threads, net, X, Y, optimizer, epochs=3, batch_size=16, shuffle=True, sample_weight=sw)
    assert np.abs(net.params - one.params).max() <= 1e-12
    assert np.abs(net.optimizer.state - one.optimizer.state).max() <= 1e-12
    assert net.optimizer.t == one.optimizer.t == 21
    np.testing.assert_allclose(h2.loss, h1.loss, rtol=0, atol=1e-12)
    assert (h2.epoch, h2.lr, h2.samples, h2.steps) == (h1.epoch, h1.lr, h1.samples, h1.steps)
    assert net.epochs_trained == one.epochs_trained == 3
    np.testing.assert_array_equal(net._rng_state, one._rng_state)  # the generator advanced as in fit


def test_sync_equals_one_machine_on_processes(procs):
    X, Y, sw = _data()
    net = _net()
    one, h1, h2 = _both(
        procs, net, X, Y, numbanet.Adam(lr=0.01), epochs=2, batch_size=10, sample_weight=sw, clip_norm=0.5
    )
    assert np.abs(net.params - one.params).max() <= 1e-12
    np.testing.assert_allclose(h2.loss, h1.loss, rtol=0, atol=1e-12)


def test_sync_with_custom_pieces_on_processes(procs):
    import math

    swish = numbanet.Activation(
        "swish",
        function=lambda z: z / (1.0 + math.exp(-z)),
        derivative=lambda z: (1.0 + math.exp(-z) + z * math.exp(-z)) / (1.0 + math.exp(-z)) ** 2,
    )
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    Y = np.sin(X[:, :1])
    net = numbanet.Network([4, 6, 1], activations=[swish, "identity"], seed=0)
    one, h1, h2 = _both(procs, net, X, Y, numbanet.SGD(lr=0.1), epochs=2, batch_size=8)  # pieces pickled to workers
    assert np.abs(net.params - one.params).max() <= 1e-12


def test_sync_equals_one_machine_with_validation_schedule_and_early_stopping(threads):
    X, Y, _ = _data(n=60)
    Xv, Yv, _ = _data(n=20, seed=5)
    net = _net(l2=0.0)
    kw = dict(
        epochs=6,
        batch_size=7,
        shuffle=False,
        validation_data=(Xv, Yv),
        early_stopping=2,
        lr_schedule=numbanet.StepLR(step_size=2, gamma=0.5),
    )
    one, h1, h2 = _both(threads, net, X, Y, numbanet.SGD(lr=0.5, momentum=0.9), **kw)
    assert np.abs(net.params - one.params).max() <= 1e-12
    np.testing.assert_allclose(h2.val_loss, h1.val_loss, rtol=0, atol=1e-12)
    assert h2.val_accuracy == h1.val_accuracy
    assert (h2.stopped_early, h2.best_epoch, h2.lr) == (h1.stopped_early, h1.best_epoch, h1.lr)


def test_sync_continues_like_fit_and_with_validation_split(threads):
    X, Y, _ = _data(n=50)
    net = _net()
    one = net.copy()
    opt1, opt2 = numbanet.SGD(lr=0.2, momentum=0.5), numbanet.SGD(lr=0.2, momentum=0.5)
    one.fit(X, Y, epochs=2, batch_size=8, optimizer=opt1, validation_split=0.2, progress=False)
    one.fit(X, Y, epochs=1, batch_size=8, progress=False)
    dp = DataParallel(net, threads)
    dp.fit(X, Y, epochs=2, batch_size=8, optimizer=opt2, validation_split=0.2, progress=False)
    dp.fit(X, Y, epochs=1, batch_size=8, progress=False)
    assert np.abs(net.params - one.params).max() <= 1e-12
    assert net.epochs_trained == 3 and net.optimizer is opt2 and opt2.t == one.optimizer.t


def test_sync_float32_close_to_one_machine(threads):
    X, Y, _ = _data()
    net = _net(dtype=np.float32)
    one, h1, h2 = _both(threads, net, X, Y, numbanet.SGD(lr=0.1), epochs=2, batch_size=16)
    assert net.params.dtype == np.float32
    np.testing.assert_allclose(net.params, one.params, rtol=0, atol=1e-5)


def test_sync_diverges_like_fit(threads):
    X, Y, _ = _data(n=40)
    net = numbanet.Network([5, 4, 3], activations="identity", loss="mse", seed=0)
    before = net.params.copy()
    with pytest.raises(numbanet.TrainingDivergedError) as info:
        DataParallel(net, threads).fit(
            X * 1e3, Y, epochs=3, batch_size=8, optimizer=numbanet.SGD(lr=10.0), progress=False
        )
    one = numbanet.Network([5, 4, 3], activations="identity", loss="mse", seed=0)
    with pytest.raises(numbanet.TrainingDivergedError) as info1:
        one.fit(X * 1e3, Y, epochs=3, batch_size=8, optimizer=numbanet.SGD(lr=10.0), progress=False)
    assert (info.value.epoch, info.value.batch) == (info1.value.epoch, info1.value.batch)
    np.testing.assert_array_equal(net.params, before)  # restored to the start of the diverging epoch (the first)
    assert np.all(np.isfinite(net.params)) and net.optimizer.t == 0


# ------------------------------------------------------------------------------------- data sources


def test_dask_array_chunks_stay_and_unequal_shards_match(client):
    da = _need("dask.array")
    X, Y, sw = _data(n=90)
    Xd = da.from_array(X, chunks=(30, 5)).rechunk({0: (20, 70)})  # very uneven: 20 rows and 70 rows
    Yd = da.from_array(Y, chunks=(20, 3))
    net = _net()
    one = net.copy()
    one.fit(X, Y, epochs=2, batch_size=12, optimizer=numbanet.Adam(lr=0.01), sample_weight=sw, progress=False)
    dp = DataParallel(net, client)
    dp.fit(Xd, Yd, epochs=2, batch_size=12, optimizer=numbanet.Adam(lr=0.01), sample_weight=sw, progress=False)
    assert np.abs(net.params - one.params).max() <= 1e-12


def test_dask_array_blocks_used_in_place(client):
    da = _need("dask.array")
    X, Y, _ = _data(n=80)
    Xd, Yd = da.from_array(X, chunks=(40, 5)), da.from_array(Y, chunks=(40, 3))
    Xp, Yp = client.persist([Xd, Yd])
    from distributed import wait

    wait([Xp, Yp])
    holders = client.who_has(Xp)
    dp = DataParallel(_net(), client)
    data = dp._prepare(Xp, Yp, None, 0.0)
    shards = dp._place(data, dp._workers())
    for w, ranges, _, xblocks, _ in shards:
        for (lo, hi, _), block in zip(ranges, xblocks):
            assert w in holders[block.key]  # each worker takes the block it already holds
    actors = dp._start_actors(shards, data)
    infos = [a.info().result() for _, a in actors]
    assert sorted(i[0] for i in infos) == [40, 40]
    assert all(i[3] == "block" for i in infos)  # the block itself, not a copy of the data
    dp._actors = dp._futures = []


def test_dask_chunks_all_on_one_worker_are_rebalanced(threads):
    da = _need("dask.array")
    from distributed import wait

    X, Y, _ = _data(n=90)
    first, second = worker_addresses(threads)
    Xp = threads.persist(da.from_array(X, chunks=(30, 5)), workers=[first])
    Yp = threads.persist(da.from_array(Y, chunks=(30, 3)), workers=[first])
    wait([Xp, Yp])
    dp = DataParallel(_net(), threads)
    shards = dp._place(dp._prepare(Xp, Yp, None, 0.0), [first, second])
    rows = {w: sum(hi - lo for lo, hi, _ in ranges) for w, ranges, *_ in shards}
    assert sorted(rows.values()) == [30, 60]  # all 90 rows on one worker: chunks moved
    # Only the workers named take part; a balanced placement is left as it is.
    net = _net()
    one = net.copy()
    one.fit(X, Y, epochs=1, batch_size=15, progress=False)
    DataParallel(net, threads, workers=[first]).fit(Xp, Yp, epochs=1, batch_size=15, progress=False)
    assert np.abs(net.params - one.params).max() <= 1e-12


def test_worker_addresses_are_all_workers_while_the_client_refreshes_its_cache(threads):
    # The client's periodic refresh rewrites its cached identity without the
    # workers; a fit that read that cache at the wrong moment saw none.
    refresh = getattr(threads, "_update_scheduler_info", None)
    if refresh is None:
        pytest.skip("this distributed has no cached scheduler identity to race with")
    stop = threading.Event()

    def refresh_forever():
        while not stop.is_set():
            threads.sync(refresh)

    racer = threading.Thread(target=refresh_forever)
    racer.start()
    try:
        seen = [worker_addresses(threads) for _ in range(300)]
    finally:
        stop.set()
        racer.join()
    assert all(len(w) == 2 and w == sorted(w) for w in seen)


def test_memmap_each_worker_opens_its_rows(client, tmp_path):
    X, Y, sw = _data(n=70)
    np.save(tmp_path / "X.npy", X)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    net = _net()
    one = net.copy()
    one.fit(X, Y, epochs=2, batch_size=9, optimizer=numbanet.SGD(lr=0.1, momentum=0.9), progress=False)
    dp = DataParallel(net, client)
    data = dp._prepare(Xm, Y, None, 0.0)
    assert data["xsrc"][0] == "memmap"  # the client sends a file name, not rows
    actors = dp._start_actors(dp._place(data, dp._workers()), data)
    assert [a.info().result()[3] for _, a in actors] == ["memmap", "memmap"]
    dp._actors = dp._futures = []
    dp.fit(Xm, Y, epochs=2, batch_size=9, optimizer=numbanet.SGD(lr=0.1, momentum=0.9), progress=False)
    assert np.abs(net.params - one.params).max() <= 1e-12


def test_bad_rows_in_a_memmap_are_named_by_the_worker(threads, tmp_path):
    X, Y, _ = _data(n=30)
    X[17, 2] = np.nan
    np.save(tmp_path / "X.npy", X)
    net = _net()
    before = net.params.copy()
    with pytest.raises(ValueError, match=r"rows 15 to 29 .*NaN or infinity \(first at row 17, column 2"):
        DataParallel(net, threads).fit(np.load(tmp_path / "X.npy", mmap_mode="r"), Y, progress=False)
    np.testing.assert_array_equal(net.params, before)


def test_bad_rows_in_a_dask_chunk_are_named_by_their_global_row(threads):
    da = _need("dask.array")
    X, Y, _ = _data(n=1000)
    X[437, 1] = np.nan
    net = _net()
    before = net.params.copy()
    Xd, Yd = da.from_array(X, chunks=(250, 5)), da.from_array(Y, chunks=(250, 3))
    with pytest.raises(ValueError, match=r"rows 250 to 499 .*NaN or infinity \(first at row 437, column 1"):
        DataParallel(net, threads).fit(Xd, Yd, progress=False)
    np.testing.assert_array_equal(net.params, before)


# ------------------------------------------------------------------------------------- refused input


def test_bad_arguments_are_refused_naming_the_problem(threads):
    net = _net()
    X, Y, _ = _data(n=20)
    with pytest.raises(ValueError, match="strategy must be 'sync' or 'local'; got 'async'"):
        DataParallel(net, threads, strategy="async")
    with pytest.raises(ValueError, match="sync_every"):
        DataParallel(net, threads, sync_every=0)
    with pytest.raises(ValueError, match="X has 4 features, but the network expects 5"):
        DataParallel(net, threads).fit(X[:, :4], Y)
    with pytest.raises(ValueError, match=r"dropout=0.5"):
        DataParallel(_net(dropout=0.5), threads).fit(X, Y)
    with pytest.raises(ValueError, match=r"workers \['tcp://nowhere:1'\] are not in the cluster"):
        DataParallel(net, threads, workers=["tcp://nowhere:1"]).fit(X, Y)


# ------------------------------------------------------------------------------------------ local SGD


def test_local_sgd_within_two_points_of_one_machine_on_digits(threads, digits):
    X, Y, y = digits
    Xtr, Ytr, Xte, yte = X[:1400], Y[:1400], X[1400:], y[1400:]
    kw = dict(epochs=15, batch_size=32, progress=False)
    one = numbanet.Network([64, 32, 10], activations=["relu", "softmax"], loss="cross_entropy", seed=3)
    net = one.copy()
    one.fit(Xtr, Ytr, optimizer=numbanet.SGD(lr=0.1, momentum=0.9), **kw)
    h = DataParallel(net, threads, strategy="local", sync_every=8).fit(
        Xtr, Ytr, optimizer=numbanet.SGD(lr=0.1, momentum=0.9), validation_data=(Xte, np.eye(10)[yte]), **kw
    )
    acc1 = np.mean(one.predict(Xte).argmax(1) == yte)
    acc2 = np.mean(net.predict(Xte).argmax(1) == yte)
    assert acc2 >= acc1 - 0.02, (acc1, acc2)
    # 44 global batches an epoch: 22 local steps on each of 2 workers, in rounds of 8, 8 and 6.
    assert (h.steps, h.rounds, len(h.loss), len(h.val_accuracy)) == (15 * 22, 15 * 3, 15, 15)
    assert h.samples == 15 * 2 * 700  # 22 steps of 32 rows make one pass over a shard of 700 rows
    assert net.epochs_trained == 15


def test_local_sgd_is_deterministic_across_clusters(threads, procs):
    X, Y, _ = _data(n=120)
    results = []
    for client in (threads, procs, threads):
        net = _net(dropout=0.2)
        DataParallel(net, client, strategy="local", sync_every=3).fit(
            X, Y, epochs=2, batch_size=10, optimizer=numbanet.Adam(lr=0.01), progress=False
        )
        results.append(net.params.copy())
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


# -------------------------------------------------------------------------------------- estimators


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_incremental_parallel_post_fit_and_joblib_search_on_the_cluster(threads):
    dask_ml_wrappers = _need("dask_ml.wrappers")
    da = _need("dask.array")
    joblib = _need("joblib")
    from sklearn.model_selection import GridSearchCV

    X, _, _ = _data(n=120)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    Xd, yd = da.from_array(X, chunks=40), da.from_array(y, chunks=40)
    kw = dict(hidden_layer_sizes=(6,), random_state=0)
    inc = dask_ml_wrappers.Incremental(numbanet.MLPClassifier(**kw), scoring="accuracy", shuffle_blocks=False)
    inc.fit(Xd, yd, classes=[0, 1])
    local = numbanet.MLPClassifier(**kw)
    for lo in range(0, 120, 40):
        local.partial_fit(X[lo : lo + 40], y[lo : lo + 40], classes=[0, 1])
    np.testing.assert_array_equal(inc.estimator_.net_.params, local.net_.params)

    ppf = dask_ml_wrappers.ParallelPostFit(local)
    proba = ppf.predict_proba(Xd).compute()
    np.testing.assert_array_equal(proba, local.predict_proba(X))

    grid = {"alpha": [1e-4, 1e-2], "hidden_layer_sizes": [(4,), (8,)]}
    est = numbanet.MLPClassifier(max_iter=20, random_state=0)
    with joblib.parallel_backend("dask"):
        on_dask = GridSearchCV(est, grid, cv=2).fit(X, y)
    here = GridSearchCV(est, grid, cv=2).fit(X, y)
    np.testing.assert_array_equal(on_dask.cv_results_["mean_test_score"], here.cv_results_["mean_test_score"])
    assert on_dask.best_params_ == here.best_params_


# ---------------------------------------------------------------------------------------- warm-up


@pytest.mark.requires_jit
def test_warm_up_plugin_compiles_on_every_worker_process(procs):
    procs.register_plugin(WarmUp())

    def compiled():
        from numbanet.kernels import training

        return len(training.cost_and_gradient_flat.signatures), len(training.train_slice_flat.signatures)

    for n_grad, n_train in procs.run(compiled).values():
        assert n_grad >= 2 and n_train >= 2  # float64 and float32 of each


def test_warm_up_compiles_every_entry_point_through_numbanet_compile(monkeypatch):
    from numbanet import precompile, warmup

    calls = []
    real = precompile.compile
    monkeypatch.setattr(precompile, "compile", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    warm_up(("float64",))
    assert calls == [((("float64",),), {"progress": False})]
    assert warmup.kernels_ready("float64") == "memory"


# ------------------------------------------------------------------------------------- faults, Ctrl-C


def _steps_on_one_machine(net0, X, Y, optimizer, steps, **kw):
    """Return the network after exactly ``steps`` mini-batches of fit, via the engine's interrupt hook."""
    one = net0.copy()
    engine._INTERRUPT_AFTER_STEPS = steps
    try:
        with pytest.raises(KeyboardInterrupt):
            one.fit(X, Y, optimizer=copy.deepcopy(optimizer), progress=False, **kw)
    finally:
        engine._INTERRUPT_AFTER_STEPS = None
    return one


@pytest.mark.parametrize("at_call", [1, 2, 3, 4])  # the validation loss or the predict of epoch 1 or 2
def test_ctrl_c_in_a_sync_epoch_end_is_finished_by_the_next_fit(threads, monkeypatch, at_call):
    X, Y, sw = _data(n=60)
    Xv, Yv, _ = _data(n=20, seed=3)
    kw = dict(batch_size=12, sample_weight=sw, validation_data=(Xv, Yv), progress=False)

    def fit(net, opt, sched, epochs):
        return DataParallel(net, threads).fit(X, Y, epochs=epochs, optimizer=opt, lr_schedule=sched, **kw)

    ref, ref_opt, ref_sched = _net(), numbanet.SGD(lr=0.5, momentum=0.9), numbanet.ReduceLROnPlateau(patience=0)
    ref_val = fit(ref, ref_opt, ref_sched, 3).val_loss
    net, opt, sched = _net(), numbanet.SGD(lr=0.5, momentum=0.9), numbanet.ReduceLROnPlateau(patience=0)
    calls = {"n": 0}
    for name in ("loss", "predict"):  # the validation pass: a loss, then a predict
        method = getattr(numbanet.Network, name)

        def counted(self, *args, _method=method, **kwargs):
            calls["n"] += 1
            if calls["n"] == at_call:
                raise KeyboardInterrupt
            return _method(self, *args, **kwargs)

        monkeypatch.setattr(numbanet.Network, name, counted)
    with pytest.raises(KeyboardInterrupt):
        fit(net, opt, sched, 3)
    monkeypatch.undo()
    val = list(net.history.val_loss)
    assert net.epochs_trained == (at_call + 1) // 2 and net._pending is not None
    assert not net._fit_lock.locked()
    val += fit(net, opt, sched, 3 - net.epochs_trained).val_loss  # the epoch end first, then the rest
    assert val == ref_val
    assert sched._scale == ref_sched._scale and opt.t == ref_opt.t
    np.testing.assert_array_equal(net.params, ref.params)


def test_ctrl_c_on_the_client_leaves_the_network_consistent_and_fit_finishes_the_epoch(threads):
    X, Y, sw = _data(n=60)
    net = _net()
    net0 = net.copy()
    opt = numbanet.SGD(lr=0.05, momentum=0.9)
    opt0 = copy.deepcopy(opt)
    kw = dict(epochs=300, batch_size=6, sample_weight=sw)  # 3000 steps: far more than the 0.5 s before Ctrl-C
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))

    class CtrlCSoon(numbanet.Callback):
        def on_train_begin(self, net):
            timer.start()

    with pytest.raises(KeyboardInterrupt):
        DataParallel(net, threads).fit(X, Y, optimizer=opt, progress=False, callbacks=CtrlCSoon(), **kw)
    timer.cancel()
    t = opt.t
    assert 0 < t < 3000
    one = _steps_on_one_machine(net0, X, Y, opt0, t, **kw)
    assert np.abs(net.params - one.params).max() <= 1e-12
    assert np.abs(net.optimizer.state - one.optimizer.state).max() <= 1e-12
    assert net.epochs_trained == one.epochs_trained == t // 10
    assert len(net.history.loss) == net.epochs_trained
    # net.fit on one machine finishes the interrupted epoch first: the same weights as never interrupted.
    net.fit(X, Y, epochs=300 - net.epochs_trained, batch_size=6, sample_weight=sw, progress=False)
    whole = net0.copy()
    whole.fit(X, Y, optimizer=copy.deepcopy(opt0), progress=False, **kw)
    assert np.abs(net.params - whole.params).max() <= 1e-12
    assert net.optimizer.t == whole.optimizer.t == 3000


def test_ctrl_c_stops_local_rounds_on_the_workers(procs):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32000, 10))
    Y = np.eye(3)[rng.integers(0, 3, 32000)]
    # About 50 GFLOP a worker in the one round of the epoch (1000 steps): far more than the 1.5 s before Ctrl-C.
    net = numbanet.Network([10, 512, 512, 512, 3], activations=["relu"] * 3 + ["softmax"], loss="cross_entropy", seed=0)
    before = net.params.copy()
    dp = DataParallel(net, procs, strategy="local", sync_every=10**9)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))

    class CtrlCSoon(numbanet.Callback):
        def on_train_begin(self, net):  # the workers hold their shards: the round starts next
            timer.start()

    with pytest.raises(KeyboardInterrupt):
        dp.fit(X, Y, epochs=1, batch_size=16, progress=False, callbacks=CtrlCSoon())
    timer.cancel()
    np.testing.assert_array_equal(net.params, before)  # no round completed: net unchanged
    assert net.optimizer.t == 0 and net.epochs_trained == 0
    from numbanet.distributed import last_round

    deadline = time.time() + 60
    rounds = {}
    while time.time() < deadline:
        rounds = procs.run(last_round, dp.fit_id)
        if all(r is not None for r in rounds.values()):
            break
        time.sleep(0.05)
    for done, asked in rounds.values():  # each worker stopped its round early when told to
        assert asked == 1000 and done < asked


def test_killed_workers_fail_the_fit_naming_them_and_the_step_and_fit_continues_exactly():
    cluster, client = _cluster(True)
    try:
        X, Y, _ = _data(n=60)
        net = _net()
        net0 = net.copy()
        opt = numbanet.SGD(lr=0.05, momentum=0.9)
        opt0 = copy.deepcopy(opt)
        kw = dict(epochs=100, batch_size=6)  # 10 steps an epoch

        def victim_and_pid():
            deadline = time.time() + 60
            while len(worker_addresses(client)) < 2 and time.time() < deadline:
                time.sleep(0.05)  # the nanny restarts a killed worker
            victim = worker_addresses(client)[1]
            return victim, _pid_of(client, victim)

        def gone(victim):
            deadline = time.time() + 60
            while victim in worker_addresses(client) and time.time() < deadline:
                time.sleep(0.05)

        # 1. Killed between epochs: the fit fails at the start of epoch 2 (the third), after 20 steps.
        victim, pid = victim_and_pid()

        def kill_now(net, history):
            if len(history.loss) == 2:
                os.kill(pid, signal.SIGKILL)
                gone(victim)

        lost_at = r"at the start of epoch 2 \(counted from 0\), before step 21"
        with pytest.raises(WorkerLostError, match=lost_at) as info:
            DataParallel(net, client).fit(X, Y, optimizer=opt, callbacks=kill_now, progress=False, **kw)
        assert info.value.worker == victim and victim in str(info.value)
        assert opt.t == 20 and net.epochs_trained == 2 and len(net.history.loss) == 2
        assert np.abs(net.params - _steps_on_one_machine(net0, X, Y, opt0, 20, **kw).params).max() <= 1e-12

        # 2. Fit again; killed inside an epoch: the error names the step that was lost.
        victim, pid = victim_and_pid()

        def kill_soon(net, history):
            if len(history.loss) == 1:
                threading.Timer(0.2, os.kill, (pid, signal.SIGKILL)).start()

        with pytest.raises(WorkerLostError) as info:
            DataParallel(net, client).fit(X, Y, epochs=98, batch_size=6, callbacks=kill_soon, progress=False)
        err = info.value
        assert err.worker == victim and victim in str(err) and f"step {err.step}" in str(err)
        t = opt.t
        assert err.step == t - 20 + 1 and 30 <= t < 1000  # the step lost, after the completed ones of this fit
        assert np.abs(net.params - _steps_on_one_machine(net0, X, Y, opt0, t, **kw).params).max() <= 1e-12
        assert net.epochs_trained == t // 10 and net.optimizer.t == t

        # 3. Fit again on the workers there are now: an interrupted epoch is finished first.
        gone(victim)
        DataParallel(net, client).fit(X, Y, epochs=100 - net.epochs_trained, batch_size=6, progress=False)
        whole = net0.copy()
        whole.fit(X, Y, optimizer=copy.deepcopy(opt0), progress=False, **kw)
        assert np.abs(net.params - whole.params).max() <= 1e-12
        assert net.optimizer.t == 1000 and net.epochs_trained == 100
    finally:
        client.close()
        cluster.close()


def test_a_stopped_worker_is_a_lost_worker_within_the_timeout_and_the_network_stays_usable():
    cluster, client = _cluster(True)
    victim = pid = None
    try:
        X, Y, _ = _data(n=60)
        net = _net()
        opt = numbanet.SGD(lr=0.05, momentum=0.9)
        victim = worker_addresses(client)[1]
        pid = _pid_of(client, victim)
        stopped = []

        def stop_now(net, history):
            if len(history.loss) == 2 and not stopped:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(time.perf_counter())

        dp = DataParallel(net, client, timeout=5)
        with pytest.raises(WorkerLostError) as info:
            dp.fit(X, Y, epochs=100, batch_size=6, optimizer=opt, callbacks=stop_now, progress=False)
        waited = time.perf_counter() - stopped[0]
        assert info.value.worker == victim
        print(f"stopped worker: WorkerLostError {waited:.1f} s after SIGSTOP (timeout=5)")
        assert not net._fit_lock.locked()
        assert opt.t == 20 and net.epochs_trained == 2 and len(net.history.loss) == 2
        net.fit(X, Y, epochs=1, batch_size=6, progress=False)  # not refused, continues on one machine
        assert opt.t == 30
        # Without a timeout the next fit waits on the stopped worker (at its set-up): Ctrl-C ends it.
        timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        sent = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            DataParallel(net, client).fit(X, Y, epochs=100, batch_size=6, progress=False)
        print(f"stopped worker: KeyboardInterrupt {time.perf_counter() - sent - 2.0:.2f} s after Ctrl-C")
        timer.cancel()
        assert not net._fit_lock.locked() and opt.t == 30
        net.fit(X, Y, epochs=1, batch_size=6, progress=False)
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        client.close()
        cluster.close()


# ------------------------------------------------------------------------------------------ benchmark


def test_benchmark_model_recomputes_from_the_committed_results(tmp_path):
    import json
    import shutil

    path = tmp_path / "results.json"
    shutil.copy(os.path.join(ROOT, "benchmarks", "dataparallel_results.json"), path)
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "dataparallel.py"), "--remodel", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "MODELLED (not measured)" in out.stdout
    model = json.loads(path.read_text())["model"]
    assert sorted({r["cores"] for r in model["sync"]}) == [8, 64, 512]
    assert [r["cores"] for r in model["local"]] == [8, 64, 512]
    for r in model["sync"]:  # more cores never help beyond the best number of workers
        assert r["speedup"] <= r["best_speedup"] + 1e-12
