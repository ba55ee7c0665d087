"""Safe in real use: interruption, resumption, threads, bounded memory, no copies of read-only data.

Interruption is tested deterministically with the engine's test hook
(``numbanet.engine._INTERRUPT_AFTER_STEPS = k`` raises KeyboardInterrupt
after exactly k kernel steps, as if Ctrl-C had arrived then), plus one real
SIGINT sent to a subprocess.  Concurrency is tested by threads hammering one
object and comparing with single-thread answers.  No test asserts a time.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from naive import random_classification

import numbanet
from numbanet import config, engine
from numbanet.kernels import rng as krng


def make_net(seed=0, dtype=np.float64, **kw):
    return numbanet.Network(
        [5, 8, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=seed, dtype=dtype, **kw
    )


@pytest.fixture
def interrupt_after(monkeypatch):
    """Set the engine's hook: the next fit raises KeyboardInterrupt after exactly k mini-batches."""

    def set_k(k):
        monkeypatch.setattr(engine, "_INTERRUPT_AFTER_STEPS", k)

    yield set_k


def _clear_hook():
    engine._INTERRUPT_AFTER_STEPS = None


# ----------------------------------------------------------- interruption


def _sgd_twin(net, X, Y, lr, momentum, batch_size, steps):
    """Run the first ``steps`` mini-batch SGD(momentum) steps of ``fit`` with NumPy.

    The gradients come from ``net.gradients``; each epoch's order is a fresh Fisher-Yates
    shuffle of arange(n) drawn from the network's generator, as the engine documents.
    """
    theta = net.params.copy()
    buf = np.zeros_like(theta)
    state = net._rng_state.copy()
    n = X.shape[0]
    probe = net.copy()
    done = 0
    while done < steps:
        order = np.arange(n, dtype=np.int64)
        krng.shuffle(order, state)
        for start in range(0, n, batch_size):
            if done == steps:
                break
            idx = order[start : start + batch_size]
            probe.params[...] = theta
            dW, db = probe.gradients(X[idx], Y[idx])
            g = np.zeros_like(theta)
            gW, gb = probe._unflatten(g)
            for a, b in zip(gW, dW):
                a[...] = b
            for a, b in zip(gb, db):
                a[...] = b
            buf = momentum * buf + g  # torch.optim.SGD: the first step's buffer is g itself
            theta = theta - lr * buf
            done += 1
    return theta


@pytest.mark.parametrize("k", [1, 7, 8, 19])
def test_interrupt_after_k_batches_keeps_exactly_k_steps(interrupt_after, k):
    X, Y = random_classification(n=60)  # batch 16: 4 batches per epoch
    net = make_net()
    twin = _sgd_twin(net, X, Y, lr=0.1, momentum=0.9, batch_size=16, steps=k)
    interrupt_after(k)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=10, batch_size=16, optimizer=numbanet.SGD(lr=0.1, momentum=0.9), progress=False)
    np.testing.assert_allclose(net.params, twin, rtol=0, atol=1e-12)
    assert net.optimizer.t == k
    assert net.epochs_trained == k // 4
    assert len(net.history.loss) == len(net.history.epoch) == len(net.history.lr) == k // 4
    assert net.history.steps == k and net.history.samples == sum(min(16, 60 - 16 * (i % 4)) for i in range(k))


@pytest.mark.parametrize(
    "opt",
    [
        lambda: numbanet.SGD(lr=0.05, momentum=0.9, nesterov=True),
        lambda: numbanet.Adam(lr=0.01),
        lambda: numbanet.RMSprop(lr=0.01),
    ],
)
@pytest.mark.parametrize("k", [3, 8, 13])
def test_interrupted_then_continued_equals_uninterrupted(interrupt_after, opt, k):
    X, Y = random_classification(n=50)  # batch 16: 4 batches per epoch, the last of 2 rows
    ref = make_net(dropout=0.2)
    ref_hist = ref.fit(X, Y, epochs=6, batch_size=16, optimizer=opt(), progress=False)

    net = make_net(dropout=0.2)
    optimizer = opt()
    interrupt_after(k)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=6, batch_size=16, optimizer=optimizer, progress=False)
    first = list(net.history.loss)
    _clear_hook()
    # Ctrl-C in epoch k // 4: the next fit finishes it, then the rest.
    net.fit(X, Y, epochs=6 - net.epochs_trained, batch_size=16, progress=False)
    np.testing.assert_array_equal(net.params, ref.params)
    np.testing.assert_array_equal(optimizer.state, ref.optimizer.state)
    assert optimizer.t == ref.optimizer.t == 6 * 4
    assert net.epochs_trained == 6
    assert first + net.history.loss == ref_hist.loss


def test_fit_in_parts_equals_one_fit_with_shuffle():
    X, Y = random_classification(n=45)
    whole = make_net(dropout=0.1)
    whole.fit(X, Y, epochs=7, batch_size=8, optimizer=numbanet.Adam(lr=0.01), progress=False)
    parts = make_net(dropout=0.1)
    parts.fit(X, Y, epochs=3, batch_size=8, optimizer=numbanet.Adam(lr=0.01), progress=False)
    parts.fit(X, Y, epochs=4, batch_size=8, progress=False)
    np.testing.assert_array_equal(parts.params, whole.params)
    assert parts.epochs_trained == whole.epochs_trained == 7


def test_interrupted_epoch_dropped_when_data_differ(interrupt_after):
    X, Y = random_classification(n=40)
    net = make_net()
    interrupt_after(2)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=3, batch_size=16, progress=False)
    _clear_hook()
    after_two = net.params.copy()
    assert net._pending is not None
    X2, Y2 = random_classification(n=40, seed=5)
    net.fit(X2, Y2, epochs=1, batch_size=16, progress=False)
    assert net._pending is None
    assert net.epochs_trained == 1 and net.optimizer.t == 2 + 3  # 2 steps kept, then a whole epoch of 3
    assert not np.array_equal(net.params, after_two)


def test_interrupted_epoch_dropped_for_another_optimizer_or_after_other_steps(interrupt_after):
    X, Y = random_classification(n=40)  # batch 16: 3 batches per epoch
    net = make_net()
    interrupt_after(2)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=3, batch_size=16, progress=False)
    _clear_hook()
    fresh = numbanet.SGD(lr=0.1)
    net.fit(X, Y, epochs=1, batch_size=16, optimizer=fresh, progress=False)
    assert fresh.t == 3 and net.epochs_trained == 1  # a whole fresh epoch, not the last batch of the old one

    net2 = make_net()
    interrupt_after(2)
    with pytest.raises(KeyboardInterrupt):
        net2.fit(X, Y, epochs=3, batch_size=16, progress=False)
    _clear_hook()
    net2.train_on_batch(X[:5], Y[:5])  # a step on other data in between
    net2.fit(X, Y, epochs=1, batch_size=16, progress=False)
    assert net2.optimizer.t == 2 + 1 + 3


def test_progress_and_validation_interrupts_are_consistent(interrupt_after):
    X, Y = random_classification(n=64)
    Xv, Yv = random_classification(n=20, seed=3)
    net = make_net()
    interrupt_after(10)  # 4 batches per epoch: 2 whole epochs and 2 batches
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=5, batch_size=16, validation_data=(Xv, Yv), progress=True)
    assert net.epochs_trained == 2 and net.optimizer.t == 10
    assert len(net.history.loss) == len(net.history.val_loss) == 2


def test_callback_exception_leaves_consistent_state():
    X, Y = random_classification(n=48)

    def boom(net, history):
        if len(history.loss) == 3:
            raise RuntimeError("callback failed")

    net = make_net()
    with pytest.raises(RuntimeError, match="callback failed"):
        net.fit(
            X,
            Y,
            epochs=10,
            batch_size=16,
            optimizer=numbanet.SGD(lr=0.1, momentum=0.5),
            callbacks=[boom],
            progress=False,
        )
    ref = make_net()
    ref.fit(X, Y, epochs=3, batch_size=16, optimizer=numbanet.SGD(lr=0.1, momentum=0.5), progress=False)
    np.testing.assert_array_equal(net.params, ref.params)
    np.testing.assert_array_equal(net.optimizer.state, ref.optimizer.state)
    assert net.epochs_trained == 3 and net.optimizer.t == 9 and len(net.history.loss) == 3


def test_schedule_with_bad_rate_refused_before_training():
    X, Y = random_classification(n=30)
    net = make_net()
    net.fit(X, Y, epochs=2, batch_size=10, progress=False)
    before, t, rng_state = net.params.copy(), net.optimizer.t, net._rng_state.copy()
    for bad in (float("nan"), -0.1, float("inf")):
        with pytest.raises(ValueError, match="epoch 5"):
            net.fit(
                X, Y, epochs=6, batch_size=10, lr_schedule=lambda e, bad=bad: bad if e == 5 else 0.1, progress=False
            )
        np.testing.assert_array_equal(net.params, before)
        assert net.optimizer.t == t and net.epochs_trained == 2
        np.testing.assert_array_equal(net._rng_state, rng_state)


def test_divergence_restores_and_counts_agree():
    X, Y = random_classification(n=32)
    X = X * 1e3
    net = numbanet.Network([5, 8, 3], activations=["relu", "identity"], seed=0)
    with pytest.raises(numbanet.TrainingDivergedError) as info:
        net.fit(X, Y, epochs=50, batch_size=8, optimizer=numbanet.SGD(lr=10.0), progress=False)
    e = info.value.epoch
    assert net.epochs_trained == e == len(net.history.loss)
    assert net.optimizer.t == 4 * e
    assert np.all(np.isfinite(net.params))


@pytest.mark.requires_jit  # counts time slices of compiled speed: as Python, 5000 epochs take many more
def test_progress_bar_does_not_force_a_slice_per_epoch(monkeypatch, xor):
    X, Y = xor
    calls = []
    real = engine.TrainingRun._slice

    def counting(self, *args):
        calls.append(1)
        return real(self, *args)

    monkeypatch.setattr(engine.TrainingRun, "_slice", counting)
    net = numbanet.Network([2, 8, 1], seed=0)
    net.fit(X, Y, epochs=5000, batch_size=4, optimizer=numbanet.SGD(lr=2.0), progress=True)
    assert net.epochs_trained == 5000
    assert len(calls) < 100  # a slice per epoch would be 5000


def test_long_epoch_is_cut_into_slices(monkeypatch):
    """One epoch of many batches returns to Python several times (so Ctrl-C is served within it)."""
    monkeypatch.setattr(config, "SLICE_SECONDS", 1e-9)
    calls = []
    real = engine.TrainingRun._slice

    def counting(self, *args):
        calls.append(int(self.pos[1]))
        return real(self, *args)

    monkeypatch.setattr(engine.TrainingRun, "_slice", counting)
    X, Y = random_classification(n=400)
    net = make_net()
    net.fit(X, Y, epochs=1, batch_size=4, progress=False)
    assert len(calls) == 100 and calls[:3] == [0, 1, 2]  # one batch per slice at a tiny time budget


SIGINT_CHILD = textwrap.dedent(
    """
    import json, signal, sys
    import numpy as np
    import numbanet

    # Python's own Ctrl-C handler, as in a shell: a parent that ignores SIGINT (some test
    # runners and kernel managers do) passes that on, and Python then installs none.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 50))
    Y = np.eye(10)[rng.integers(0, 10, 2000)]
    net = numbanet.Network([50, 64, 10], activations=["relu", "softmax"], loss="cross_entropy", seed=0)
    net.fit(X[:64], Y[:64], epochs=1, batch_size=32, progress=False)  # compile or load the kernels
    net = numbanet.Network([50, 64, 10], activations=["relu", "softmax"], loss="cross_entropy", seed=0)
    print("ready", flush=True)
    try:
        net.fit(X, Y, epochs=100000, batch_size=32, optimizer=numbanet.Adam(lr=1e-3), progress=False)
        print(json.dumps({"interrupted": False}))
    except KeyboardInterrupt:
        t = net.optimizer.t
        out = {"interrupted": True, "t": t, "epochs": net.epochs_trained, "recorded": len(net.history.loss),
               "steps": net.history.steps, "finite": bool(np.all(np.isfinite(net.params)))}
        net.fit(X, Y, epochs=1, batch_size=32, progress=False)  # a later fit continues
        out["t_after"] = net.optimizer.t
        out["epochs_after"] = net.epochs_trained
        print(json.dumps(out))
    """
)


@pytest.mark.slow  # a child Python
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_real_sigint_stops_fit_and_leaves_consistent_state():
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-c", SIGINT_CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        import time

        time.sleep(0.5)  # let the long fit start (no timing is asserted)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)  # uninterrupted, the fit would run for minutes
    finally:
        proc.kill()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["interrupted"], err
    per_epoch = 2000 // 32 + 1
    assert result["finite"]
    assert result["t"] == result["steps"] < 100000 * per_epoch
    assert result["recorded"] == result["epochs"]
    assert result["epochs"] * per_epoch <= result["t"] < (result["epochs"] + 1) * per_epoch
    # The next fit finished the interrupted epoch: whole epochs again.
    assert result["t_after"] == (result["epochs"] + 1) * per_epoch
    assert result["epochs_after"] == result["epochs"] + 1


# ---------------------------------------------------------------- threads


def _hammer(fn, jobs, threads=8):
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(fn, jobs))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_concurrent_predict_loss_gradients_equal_single_thread(dtype):
    X, Y = random_classification(n=300, dtype=dtype)
    net = make_net(dtype=dtype)
    net.fit(X, Y, epochs=2, batch_size=16, progress=False)
    sizes = [1 + (i * 37) % 300 for i in range(64)]
    want_p = [net.predict(X[:m]) for m in sizes]
    want_l = [net.loss(X[:m], Y[:m]) for m in sizes]
    want_g = [net.gradients(X[:m], Y[:m]) for m in sizes[:16]]
    want_a = [net.accuracy(X[:m], Y[:m]) for m in sizes]
    want_f = [net.forward(X[:m])[1][-1] for m in sizes[:16]]
    for _ in range(3):
        got_p = _hammer(lambda m: net.predict(X[:m]), sizes)
        got_l = _hammer(lambda m: net.loss(X[:m], Y[:m]), sizes)
        got_g = _hammer(lambda m: net.gradients(X[:m], Y[:m]), sizes[:16])
        got_a = _hammer(lambda m: net.accuracy(X[:m], Y[:m]), sizes)
        got_f = _hammer(lambda m: net.forward(X[:m])[1][-1], sizes[:16])
        for w, g in zip(want_p, got_p):
            np.testing.assert_array_equal(g, w)
        assert got_l == want_l and got_a == want_a
        for (wW, wb), (gW, gb) in zip(want_g, got_g):
            for a, b in zip(wW + wb, gW + gb):
                np.testing.assert_array_equal(a, b)
        for w, g in zip(want_f, got_f):
            np.testing.assert_array_equal(g, w)


def test_concurrent_predict_proba_of_classifier():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    with pytest.warns(Warning):  # ConvergenceWarning after max_iter=5
        clf = numbanet.MLPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=0).fit(X / 16, y)
    chunks = [X[i : i + 1 + i % 50] / 16 for i in range(0, 1500, 25)]
    want = [clf.predict_proba(c) for c in chunks]
    got = _hammer(clf.predict_proba, chunks)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)
        assert np.all((g >= 0) & (g <= 1))


def test_predict_during_fit_does_not_change_the_training_result():
    X, Y = random_classification(n=600)
    ref = make_net()
    ref.fit(X, Y, epochs=15, batch_size=8, progress=False)
    net = make_net()
    done = threading.Event()
    seen = []

    def predictor():
        while not done.is_set():
            seen.append(net.predict(X[: 1 + len(seen) % 500]).shape[0])
            net.loss(X[:50], Y[:50])

    threads = [threading.Thread(target=predictor) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        net.fit(X, Y, epochs=15, batch_size=8, progress=False)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert len(seen) > 0
    np.testing.assert_array_equal(net.params, ref.params)


def test_second_concurrent_fit_is_refused():
    X, Y = random_classification(n=40)
    net = make_net()
    inside, release = threading.Event(), threading.Event()

    def wait(n, history):
        inside.set()
        release.wait(30)

    errors = []

    def first():
        try:
            net.fit(X, Y, epochs=1, batch_size=8, callbacks=[wait], progress=False)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=first)
    t.start()
    assert inside.wait(60)
    before = net.params.copy()
    with pytest.raises(RuntimeError, match="another fit"):
        net.fit(X, Y, epochs=1, progress=False)
    with pytest.raises(RuntimeError, match="another fit"):
        net.train_on_batch(X, Y)
    np.testing.assert_array_equal(net.params, before)
    release.set()
    t.join()
    assert not errors
    assert net.epochs_trained == 1
    net.fit(X, Y, epochs=1, progress=False)  # free again afterwards
    assert net.epochs_trained == 2


def test_fit_from_its_own_callback_is_refused():
    X, Y = random_classification(n=20)
    net = make_net()
    seen = []

    def nested(n, history):
        with pytest.raises(RuntimeError):
            n.fit(X, Y, epochs=1, progress=False)
        seen.append(True)

    net.fit(X, Y, epochs=2, callbacks=[nested], progress=False)
    assert seen == [True, True]


# ----------------------------------------------------------------- memory


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow  # measures RSS over many requests
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")
def test_memory_stays_flat_under_varying_request_sizes():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1200, 300))
    Y = np.eye(10)[rng.integers(0, 10, 1200)]
    net = numbanet.Network([300, 200, 10], activations=["relu", "softmax"], loss="cross_entropy", seed=0)
    for m in (1, 1200):  # warm up: kernels, allocator
        net.predict(X[:m])
        net.loss(X[:m], Y[:m])
    base = _rss()
    for m in range(1, 1201, 3):  # 400 distinct row counts
        net.predict(X[:m])
        net.loss(X[:m], Y[:m])
    for m in range(50, 1200, 40):  # 29 distinct chunk lengths
        net.train_on_batch(X[:m], Y[:m])
    grown = _rss() - base
    # One buffer kept per row count would be several hundred MiB here.
    assert grown < 40 * 2**20, f"RSS grew by {grown / 2**20:.0f} MiB"
    assert len(net._buffers._free) <= net._buffers.keep


def test_buffer_pool_bounds_and_capacities():
    net = make_net()
    pool = net._buffers
    held = [pool.acquire(m) for m in (1, 3, 5, 100, 4000, 5000)]
    assert [cap for _, cap in held] == [1, 4, 8, 128, 4096, 5000]
    assert len({id(ws) for ws, _ in held}) == 6
    for ws, _ in held:
        pool.release(ws)
    assert len(pool._free) == pool.keep
    assert all(cap <= config.CHUNK for cap, _ in pool._free)  # more than CHUNK rows: never kept
    ws, cap = pool.acquire(3000)  # the most recently released fitting buffer is reused
    assert ws is held[-2][0] and cap == 4096


def _read_only_memmap(tmp_path, X):
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    mm[...] = X
    mm.flush()
    del mm
    return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)


def test_read_only_memmap_is_not_copied_by_fit_and_predict(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40000, 100)).astype(np.float32)  # 16 MB
    Y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 40000)]
    Xm = _read_only_memmap(tmp_path, X)
    Ym = Y.copy()
    Ym.flags.writeable = False
    net = numbanet.Network(
        [100, 16, 4], activations=["relu", "softmax"], loss="cross_entropy", dtype=np.float32, seed=0
    )
    net.fit(Xm[:64], Ym[:64], epochs=1, progress=False)  # compile outside the measurement
    net.predict(Xm[:64])
    tracemalloc.start()
    try:
        net.fit(Xm, Ym, epochs=1, batch_size=256, progress=False)
        net.predict(Xm)
        net.loss(Xm, Ym)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A copy of X alone would be 16 MB; predict's output is 40000 x 4 floats (640 kB), its work
    # buffer of 4096 rows 2.6 MB.
    assert peak < X.nbytes / 2, f"peak {peak / 2**20:.1f} MiB"
    ref = numbanet.Network(
        [100, 16, 4], activations=["relu", "softmax"], loss="cross_entropy", dtype=np.float32, seed=0
    )
    ref.fit(X[:64], Y[:64], epochs=1, progress=False)
    ref.fit(X, Y, epochs=1, batch_size=256, progress=False)
    np.testing.assert_array_equal(net.params, ref.params)


def test_estimator_uses_read_only_data_in_place(tmp_path):
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 100))  # 16 MB
    y = rng.integers(0, 3, 20000)
    Xm = _read_only_memmap(tmp_path, X)
    clf = numbanet.MLPClassifier(hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    with pytest.warns(Warning):  # ConvergenceWarning after max_iter=1
        clf.fit(Xm[:100], y[:100])
    tracemalloc.start()
    try:
        with pytest.warns(Warning):  # ConvergenceWarning after max_iter=1
            clf.fit(Xm, y)
        clf.predict_proba(Xm)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A copy of X would be 16 MB; predict_proba's work buffer of 4096 rows is 4.5 MB.
    assert peak < X.nbytes / 2, f"peak {peak / 2**20:.1f} MiB"


def test_estimator_early_stopping_trains_on_its_rows_in_place(tmp_path):
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 100))  # 16 MB
    y = rng.integers(0, 3, 20000)
    Xm = _read_only_memmap(tmp_path, X)
    kw = dict(hidden_layer_sizes=(8,), max_iter=2, early_stopping=True, n_iter_no_change=5, random_state=0)
    with pytest.warns(Warning):  # ConvergenceWarning after max_iter=2
        numbanet.MLPClassifier(**kw).fit(Xm[:100], y[:100])  # compile outside the measurement
    clf = numbanet.MLPClassifier(**kw)
    tracemalloc.start()
    try:
        with pytest.warns(Warning):  # ConvergenceWarning after max_iter=2
            clf.fit(Xm, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The held-out 10 % is copied (1.6 MB); a copy of the training rows would be 14.4 MB.
    assert peak < X.nbytes / 2, f"peak {peak / 2**20:.1f} MiB"
    ref = numbanet.MLPClassifier(**kw)
    with pytest.warns(Warning):
        ref.fit(X.copy(), y)
    for a, b in zip(clf.coefs_, ref.coefs_):
        np.testing.assert_array_equal(a, b)
    assert clf.validation_scores_ == ref.validation_scores_


# ------------------------------------------------------------- estimators


def test_interrupted_estimator_fit_is_consistent(interrupt_after):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16
    clf = numbanet.MLPClassifier(hidden_layer_sizes=(16,), batch_size=100, max_iter=50, random_state=0)
    interrupt_after(40)  # 1797 rows in batches of 100: 18 per epoch -> 2 epochs and 4 batches
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    assert clf.n_iter_ == len(clf.loss_curve_) == clf.net_.epochs_trained == 2
    assert clf.t_ == 2 * 1797 + 4 * 100
    assert clf.net_.optimizer.t == 40
    assert clf.predict(X).shape == (1797,)

    # warm_start continuation, interrupted: the attributes extend, never roll back.
    _clear_hook()
    clf.set_params(warm_start=True, max_iter=3)
    with pytest.warns(Warning):
        clf.fit(X, y)
    curve = list(clf.loss_curve_)
    interrupt_after(20)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    assert clf.loss_curve_ == curve + clf.net_.history.loss and clf.n_iter_ == 1
    assert clf.net_.optimizer.t == 20


def test_refused_estimator_fit_changes_nothing():
    pytest.importorskip("sklearn")
    X, y = np.random.default_rng(0).standard_normal((50, 4)), np.arange(50) % 2
    clf = numbanet.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0, warm_start=True)
    with pytest.warns(Warning):
        clf.fit(X, y)
    state = {k: v for k, v in clf.__dict__.items()}
    params = clf.net_.params.copy()
    with pytest.raises(ValueError):
        clf.fit(X[:, :3], y)
    assert clf.__dict__.keys() == state.keys() and clf.n_iter_ == state["n_iter_"]
    np.testing.assert_array_equal(clf.net_.params, params)


# ------------------------------------------------------------- exact costs


def _lse_cross_entropy(Z, Y):
    m = Z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(Z - m).sum(axis=1))
    return float(np.mean((Y * (lse[:, None] - Z)).sum(axis=1)))


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_cross_entropy_of_huge_logits_is_not_capped(dtype, rtol):
    net = numbanet.Network([2, 3], activations="softmax", loss="cross_entropy", dtype=dtype, seed=0)
    net.weights[0][...] = [[1e4, 0], [-1e4, 0], [0, 3e4]]
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=dtype)
    Y = np.array([[0, 1, 0], [1, 0, 0], [0, 1, 0]], dtype=dtype)
    Z = X.astype(np.float64) @ net.weights[0].T.astype(np.float64)
    want = _lse_cross_entropy(Z, Y)
    assert want > 1e4
    assert net.loss(X, Y) == pytest.approx(want, rel=rtol)


def test_binary_cross_entropy_of_saturated_sigmoid_is_exact_and_gradchecks():
    rng = np.random.default_rng(0)
    net = numbanet.Network([3, 4, 2], activations=["tanh", "sigmoid"], loss="binary_cross_entropy", seed=0)
    net.weights[1][...] *= 30
    net.biases[1][...] = [40.0, -40.0]
    X = rng.standard_normal((6, 3))
    Y = rng.integers(0, 2, (6, 2)).astype(float)
    Z, A = net.forward(X)
    z = Z[-1]
    want = np.mean(np.sum(np.maximum(z, 0) - Y * z + np.log1p(np.exp(-np.abs(z))), axis=1))
    assert net.loss(X, Y) == pytest.approx(want, rel=1e-12)
    assert numbanet.gradcheck(net, X, Y).passed


def test_interrupted_epoch_resumes_with_a_loss_watching_schedule(interrupt_after):
    X, Y = random_classification(n=48)
    sched = lambda: numbanet.ReduceLROnPlateau(factor=0.5, patience=0)  # noqa: E731
    ref = make_net()
    ref.fit(X, Y, epochs=4, batch_size=16, lr_schedule=sched(), progress=False)
    net = make_net()
    schedule = sched()
    interrupt_after(5)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=4, batch_size=16, lr_schedule=schedule, progress=False)
    _clear_hook()
    net.fit(X, Y, epochs=4 - net.epochs_trained, batch_size=16, lr_schedule=schedule, progress=False)
    np.testing.assert_array_equal(net.params, ref.params)


def test_estimator_attributes_follow_the_network_when_the_convergence_warning_raises():
    pytest.importorskip("sklearn")
    import warnings

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 3)), np.arange(60) % 2
    clf = numbanet.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, warm_start=True, random_state=0)
    with pytest.warns(Warning):
        clf.fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Warning):
            clf.fit(X, y)
    assert clf.net_.epochs_trained == 6 and clf.n_iter_ == 3 and len(clf.loss_curve_) == 6


def test_a_whole_data_batch_leaves_no_large_buffer_behind():
    X, Y = random_classification(n=5000)
    net = make_net()
    net.train_on_batch(X, Y)  # one batch of 5000 rows (> 4096)
    assert all(cap <= config.CHUNK for cap, _ in net._buffers._free)
