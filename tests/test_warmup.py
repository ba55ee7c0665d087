"""numbanet.compile, the machine-wide compile lock, and honest first-run reporting."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import numbanet
from numbanet import engine, precompile, warmup
from numbanet.kernels import training


def test_compile_reports_each_dtype_and_then_has_nothing_to_do(capsys):
    first = numbanet.compile(dtypes=["float64", np.float32], progress=True)
    assert set(first) == {"float64", "float32"}
    assert all(what in ("memory", "cache", "compiled") for what, _ in first.values())
    again = numbanet.compile(progress=True)
    assert again == {"float64": ("memory", 0.0), "float32": ("memory", 0.0)}
    err = capsys.readouterr().err
    assert err.count("\n") == sum(what != "memory" for what, _ in first.values())  # one line per dtype done
    for dtype in ("float64", "float32"):
        assert warmup.kernels_ready(dtype) == "memory"
        assert all(warmup._in_memory(getattr(training, name), dtype) for name in warmup.ENTRY_POINTS)


def test_compile_refuses_an_unsupported_dtype():
    with pytest.raises(ValueError, match=r"compiled for \('float64', 'float32'\), not 'float16'"):
        numbanet.compile(dtypes=["float16"])


@pytest.fixture
def lock_folder(tmp_path, monkeypatch):
    """Give the test a lock folder of its own, for this process and the children it passes it to.

    The locks are machine-wide: in the shared cache folder, the other test worker
    (pytest -n 2) or its child Pythons may hold one at any moment, legitimately.
    """
    monkeypatch.setattr(warmup, "cache_dir", lambda: str(tmp_path))
    return str(tmp_path)


#: Makes a child Python's compile lock live in the folder given as its first argument, as ``lock_folder``.
IN_FOLDER = "import sys\nfrom numbanet import warmup\nwarmup.cache_dir = lambda: sys.argv[1]\n"


def test_the_compile_lock_is_reentrant_within_a_process(lock_folder):
    with warmup.compile_lock() as outer:
        with warmup.compile_lock() as inner:
            assert inner is True
    assert outer in (True, False)  # False only where the cache folder cannot hold a lock file


CHILD = IN_FOLDER + textwrap.dedent(
    """
    with warmup.compile_lock(timeout=0) as locked:
        print("locked" if locked else "busy")
    """
)


def _child_lock(folder):
    out = subprocess.run([sys.executable, "-c", CHILD, folder], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.slow  # child Pythons
def test_another_process_waits_for_the_compile_lock(lock_folder):
    with warmup.compile_lock() as held:
        if not held:
            pytest.skip("no file lock here (no fcntl or a read-only cache folder)")
        assert _child_lock(lock_folder) == "busy"  # timeout=0: gives up at once while this process holds it
    assert _child_lock(lock_folder) == "locked"


def _xor():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    return X, np.array([[0], [1], [1], [0]], float)


def test_fit_says_when_it_compiles_and_reports_the_time_apart(monkeypatch, capsys):
    X, Y = _xor()
    seen = []
    real = warmup.kernels_ready

    def first_run(dtype, entry_points=warmup.ENTRY_POINTS):
        seen.append(entry_points)
        return None  # as on a fresh install: nothing compiled, nothing cached

    monkeypatch.setattr(warmup, "kernels_ready", first_run)
    net = numbanet.Network([2, 4, 1], seed=0)
    history = net.fit(X, Y, epochs=3, batch_size=4, progress=True)
    assert seen and all(e == ("train_slice_flat",) for e in seen)
    assert "compiling numbanet's kernels (first run only)" in capsys.readouterr().err
    assert history.compile_seconds > 0.0
    assert len(history.loss) == 3
    quiet = numbanet.Network([2, 4, 1], seed=0).fit(X, Y, epochs=3, batch_size=4, progress=False)
    assert "compiling" not in capsys.readouterr().err
    assert quiet.loss == history.loss  # the compile step trains nothing
    monkeypatch.setattr(warmup, "kernels_ready", real)
    assert numbanet.Network([2, 4, 1], seed=0).fit(X, Y, epochs=3, batch_size=4, progress=False).compile_seconds == 0.0


def test_a_slice_of_no_batches_changes_nothing():
    X, Y = _xor()
    net = numbanet.Network([2, 4, 1], seed=0)
    calls = []
    real = engine.TrainingRun._slice

    def spy(self, work, budget, stop):
        calls.append(budget)
        before = (net.params.copy(), self.pos.copy(), self.order.copy(), net._rng_state.copy())
        real(self, work, budget, stop)
        if budget == 0:
            after = (net.params, self.pos, self.order, net._rng_state)
            for b, a in zip(before, after):
                assert np.array_equal(b, a)

    engine.TrainingRun._slice, saved = spy, real
    try:
        net.fit(X, Y, epochs=2, batch_size=4, progress=False)
    finally:
        engine.TrainingRun._slice = saved
    assert calls[0] >= 1  # kernels already in memory: no zero-batch slice
    assert 0 not in calls


def test_a_star_import_does_not_shadow_the_builtin_compile():
    namespace = {}
    exec("from numbanet import *", namespace)
    assert "compile" not in namespace
    assert numbanet.compile is precompile.compile


def test_the_compile_slice_of_no_batches_changes_nothing(monkeypatch):
    X, Y = _xor()
    net = numbanet.Network([2, 4, 1], seed=0)
    reference = net.copy().fit(X, Y, epochs=2, batch_size=4, progress=False)
    seen = []
    real = engine.TrainingRun._slice

    def spy(self, work, budget, stop):
        if budget == 0:
            before = (net.params.copy(), self.pos.copy(), self.order.copy(), net._rng_state.copy())
            real(self, work, budget, stop)
            seen.append(
                [np.array_equal(b, a) for b, a in zip(before, (net.params, self.pos, self.order, net._rng_state))]
            )
        else:
            real(self, work, budget, stop)

    monkeypatch.setattr(warmup, "kernels_ready", lambda dtype, entry_points=warmup.ENTRY_POINTS: "cache")
    monkeypatch.setattr(engine.TrainingRun, "_slice", spy)
    history = net.fit(X, Y, epochs=2, batch_size=4, progress=False)
    assert seen == [[True, True, True, True]]  # one compile slice, and it moved nothing
    assert history.loss == reference.loss  # training after it is the same as without it


def test_a_fit_with_validation_data_compiles_the_validation_kernels_before_training(monkeypatch):
    X, Y = _xor()
    calls = []

    def first_run(dtype, entry_points=warmup.ENTRY_POINTS):
        calls.append(("ready", tuple(entry_points)))
        return None  # as on a fresh install

    real_slice, real_loss = engine.TrainingRun._slice, numbanet.Network.loss

    def slice_spy(self, work, budget, stop):
        calls.append(("slice", budget))
        return real_slice(self, work, budget, stop)

    def loss_spy(self, X, Y, sample_weight=None):
        calls.append(("loss", len(X)))
        return real_loss(self, X, Y, sample_weight)

    monkeypatch.setattr(warmup, "kernels_ready", first_run)
    monkeypatch.setattr(engine.TrainingRun, "_slice", slice_spy)
    monkeypatch.setattr(numbanet.Network, "loss", loss_spy)
    history = numbanet.Network([2, 4, 1], seed=0).fit(X, Y, epochs=2, batch_size=4, validation_data=(X, Y))
    assert calls[0] == ("ready", ("train_slice_flat", "cost_and_gradient_flat", "predict_flat"))
    assert calls[1:3] == [("slice", 0), ("loss", 1)]  # before the first mini-batch: counted as compile time
    monkeypatch.undo()
    twin = numbanet.Network([2, 4, 1], seed=0).fit(X, Y, epochs=2, batch_size=4, validation_data=(X, Y))
    assert history.loss == twin.loss and history.val_loss == twin.val_loss  # the warm-up trains nothing


# ------------------------------------------- the lock guards compiling only, and never for long


def test_cached_kernels_load_without_the_compile_lock(monkeypatch, lock_folder):
    # Before, fit took the machine-wide lock for kernels in the cache too: a process whose float64 kernels
    # were cached waited 51.5 s while another compiled float32 ones.
    X, Y = _xor()
    taken = []
    real = warmup.compile_lock

    def spy(*args, **kwargs):
        taken.append(kwargs.get("dtype"))
        return real(*args, **kwargs)

    monkeypatch.setattr(warmup, "compile_lock", spy)
    monkeypatch.setattr(warmup, "kernels_ready", lambda dtype, entry_points=warmup.ENTRY_POINTS: "cache")
    history = numbanet.Network([2, 4, 1], seed=0).fit(X, Y, epochs=2, batch_size=4, progress=False)
    assert taken == [] and history.compile_wait_seconds == 0.0
    monkeypatch.setattr(warmup, "kernels_ready", lambda dtype, entry_points=warmup.ENTRY_POINTS: None)
    numbanet.Network([2, 4, 1], seed=0, dtype="float32").fit(X, Y, epochs=2, batch_size=4, progress=False)
    assert taken == ["float32"]  # a compile takes its own dtype's lock


def test_a_held_lock_is_waited_for_a_bounded_time_reported_apart(monkeypatch, lock_folder):
    import threading

    X, Y = _xor()
    monkeypatch.setattr(numbanet.config, "COMPILE_LOCK_WAIT", 0.3)
    monkeypatch.setattr(warmup, "kernels_ready", lambda dtype, entry_points=warmup.ENTRY_POINTS: None)
    holding, release = threading.Event(), threading.Event()

    def hold():
        with warmup.compile_lock(dtype="float64", timeout=float("inf")):
            holding.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        holding.wait(60)
        with warmup.compile_lock(dtype="float32", timeout=0) as other:  # another dtype: not held
            assert other in (True, False)  # False only without a lockable cache folder
        history = numbanet.Network([2, 4, 1], seed=0).fit(X, Y, epochs=2, batch_size=4, progress=False)
    finally:
        release.set()
        holder.join()
    assert history.compile_wait_seconds >= 0.3 and len(history.loss) == 2  # gave up waiting, then trained


CHILD_HOLDS = IN_FOLDER + textwrap.dedent(
    """
    with warmup.compile_lock(dtype=sys.argv[2], timeout=0) as locked:
        print("locked" if locked else "busy", flush=True)
        sys.stdin.readline()
    """
)


@pytest.mark.slow  # a child Python
def test_another_process_holding_a_dtypes_lock_delays_that_dtype_only_and_only_up_to_the_bound(lock_folder):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_HOLDS, lock_folder, "float64"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if child.stdout.readline().strip() != "locked":
            pytest.skip("no file lock here (no fcntl or a read-only cache folder)")
        with warmup.compile_lock(dtype="float32", timeout=0) as unrelated:
            assert unrelated is True
        with warmup.compile_lock(dtype="float64", timeout=0.2) as same:
            assert same is False  # the child (stopped, say) holds it: go on without, compile privately
    finally:
        child.communicate("\n", timeout=60)
    with warmup.compile_lock(dtype="float64", timeout=0) as free:
        assert free is True


# ------------------------------------------- a mini-batch in parts: its kernel only where a fit needs it

CHILD_PARTS = textwrap.dedent(
    """
    import numpy as np, numbanet
    from numbanet.kernels import training
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    Y = np.array([[0], [1], [1], [0]], float)
    net = numbanet.Network([2, 4, 1], seed=0)
    net.fit(X, Y, epochs=2, batch_size=2, progress=False)
    whole = len(training.train_part_flat.signatures)
    real, seen = training.train_slice, []

    def spy(*args):  # the part kernel's signatures as each slice of training starts (not the compile's)
        if args[-1][training.POS_BUDGET] > 0:
            seen.append(len(training.train_part_flat.signatures))
        return real(*args)

    training.train_slice = spy
    rows = net._chunk_rows() + 1
    history = net.fit(np.resize(X, (rows, 2)), np.resize(Y, (rows, 1)), epochs=1, batch_size=rows, progress=False)
    print(whole, seen[0], len(seen), len(history.loss))
    """
)


@pytest.mark.slow  # a child Python
@pytest.mark.requires_jit
def test_the_part_kernel_is_compiled_only_for_a_fit_in_parts_and_before_its_training():
    out = subprocess.run([sys.executable, "-c", CHILD_PARTS], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    # Whole batches leave it alone; a batch one row larger than a chunk has it ready (compiled or loaded in
    # the compile step, not in the training time) before its first slice, and takes two slices: two parts.
    assert out.stdout.split() == ["0", "1", "2", "1"]
