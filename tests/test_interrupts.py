"""Ctrl-C at every instant of a fit, and exceptions anywhere in it.

A tracer (``sys.settrace``) counts the Python events -- calls and lines -- of
numbanet's own modules during a run of fits, and at event k does what a
Ctrl-C does: it calls SIGINT's current handler in that frame (Python's
default raises ``KeyboardInterrupt`` there; inside a held section numbanet's
notes it).  For every location in the code (and a stride of every k) the
interrupted run is then continued as a user would -- ``fit`` again for the
epochs left -- and must end exactly where the uninterrupted run ends:
weights, optimizer state and step, ``epochs_trained``, the histories laid end
to end, the schedule's state, and no lock left held.  Validation data and
``ReduceLROnPlateau`` are on, so an interrupted epoch end must be finished,
not skipped.  A second Ctrl-C during the first one's clean-up, and an
exception from any call of a numbanet function, are tried too.  A real SIGINT storm runs in
a subprocess (slow).
"""

import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from naive import random_classification

import numbanet
from numbanet import config, engine
from numbanet import interrupts as ctrl_c

HERE = os.path.dirname(numbanet.__file__)
EPOCHS = 3  # then two more fits of 1 epoch


class Tracer:
    """Count numbanet's Python events; at the chosen ones, act as Ctrl-C (or raise ``error``)."""

    def __init__(self, at=(), error=None):
        self.at = set(at)
        self.error = error
        self.count = 0
        self.first = {}  # (file, line, event) -> the first event number there
        self.calls = set()  # the event numbers of calls outside the interrupt machinery
        self.hits = []  # where the chosen events came, for the failure message
        self._pending = False  # an error waits for the next call event

    def _global(self, frame, event, arg):
        if not frame.f_code.co_filename.startswith(HERE):
            return None
        if not frame.f_code.co_flags & inspect.CO_GENERATOR:  # a generator's "call" may be its close, in a finaliser
            self._event(frame, event)
        return self._local

    def _local(self, frame, event, arg):
        if event == "line":
            self._event(frame, event)
        return self._local

    def _event(self, frame, event):
        self.count += 1
        self.first.setdefault((frame.f_code.co_filename, frame.f_lineno, event), self.count)
        if event == "call" and os.path.basename(frame.f_code.co_filename) != "interrupts.py":
            self.calls.add(self.count)
        if self.count in self.at or (self._pending and event == "call"):
            if self.error is not None and event != "call":
                # An error is raised as a function starts: at the next call.  (Raised from a trace
                # function at the line event of a with statement's exit, it would skip __exit__ --
                # a place no real exception can come from.)
                self._pending = True
                return
            self._pending = False
            where = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} {event}"
            self.hits.append(f"{where} ({signal.getsignal(signal.SIGINT).__name__})")
            if self.error is not None:
                raise self.error("injected")
            signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)

    def __enter__(self):
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc):
        sys.settrace(None)
        return False


def _data():
    X, Y = random_classification(n=24, seed=1)
    Xv, Yv = random_classification(n=6, seed=2)
    return X, Y, Xv, Yv


def _fits(tracer=None):
    """Fit EPOCHS epochs, then 1 more, continuing after every interruption; return what to compare."""
    X, Y, Xv, Yv = _data()
    net = numbanet.Network([5, 4, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=0)
    opt = numbanet.SGD(lr=0.2, momentum=0.9)
    sched = numbanet.ReduceLROnPlateau(factor=0.5, patience=0)
    histories, interrupts = [], 0
    for total in (EPOCHS, EPOCHS + 1):
        while net.epochs_trained < total:
            try:
                if tracer is not None:
                    with tracer:
                        net.fit(X, Y, epochs=total - net.epochs_trained, batch_size=8, optimizer=opt,
                                validation_data=(Xv, Yv), lr_schedule=sched, progress=False)  # fmt: skip
                else:
                    net.fit(X, Y, epochs=total - net.epochs_trained, batch_size=8, optimizer=opt,
                            validation_data=(Xv, Yv), lr_schedule=sched, progress=False)  # fmt: skip
            except KeyboardInterrupt:
                interrupts += 1
            assert not net._fit_lock.locked()
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is Ctrl-C again
            assert (ctrl_c._depth, ctrl_c._open) == (0, False)  # (a stale _caught is reset by the next fit)
            if net.history is not None and all(h is not net.history for h in histories):
                histories.append(net.history)
            assert interrupts < 20
    # An epoch end interrupted in the last fit is left pending; the next fit finishes it first.
    net.fit(X, Y, epochs=1, batch_size=8, validation_data=(Xv, Yv), lr_schedule=sched, progress=False)
    histories.append(net.history)
    lists = {k: sum((getattr(h, k) for h in histories), []) for k in ("epoch", "loss", "val_loss", "lr")}
    return net, opt, sched, lists, interrupts


def _assert_same(run, ref):
    net, opt, sched, lists, _ = run
    rnet, ropt, rsched, rlists, _ = ref
    np.testing.assert_array_equal(net.params, rnet.params)
    np.testing.assert_array_equal(opt.state, ropt.state)
    np.testing.assert_array_equal(net._rng_state, rnet._rng_state)
    assert opt.t == ropt.t
    assert net.epochs_trained == rnet.epochs_trained == EPOCHS + 2
    assert lists == rlists
    assert (sched._scale, sched._best, sched._bad) == (rsched._scale, rsched._best, rsched._bad)


@pytest.fixture(scope="module", autouse=True)
def one_batch_a_slice():
    """Slices of one mini-batch: the most Python events, and the same events in every run (not timed)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "SLICE_SECONDS", 0.0)
        yield


@pytest.fixture(scope="module")
def reference():
    _fits()  # compile (or load) every kernel first, so that the counted run is the one replayed
    ref = _fits()
    counter = Tracer()
    counted = _fits(counter)
    _assert_same(counted, ref)  # tracing changes nothing
    return ref, counter


def _every_location(counter, stride):
    """One event at each distinct (file, line, event) of the run, and every ``stride``-th event."""
    return sorted(set(counter.first.values()) | set(range(1, counter.count + 1, stride)))


def _sample(ks, full, size=150):
    """All of ``ks`` (the slow lane), or a seeded sample with the first and the last."""
    if full or len(ks) <= size:
        return ks
    picked = np.random.default_rng(len(ks)).choice(ks[1:-1], size=size - 2, replace=False)
    return [ks[0], *sorted(int(k) for k in picked), ks[-1]]


FULL = [pytest.param(False, id="sample"), pytest.param(True, id="all", marks=pytest.mark.slow)]


@pytest.mark.parametrize("full", FULL)
def test_ctrl_c_at_any_event_then_continuing_equals_the_uninterrupted_run(reference, full):
    ref, counter = reference
    ks = _every_location(counter, stride=7)
    assert len({event for _, _, event in counter.first}) == 2 and len(ks) > 100
    for k in _sample(ks, full):
        tracer = Tracer(at=[k])
        run = _fits(tracer)
        try:
            _assert_same(run, ref)
        except AssertionError as exc:
            raise AssertionError(f"Ctrl-C at event {k} of {counter.count}, {tracer.hits}: {exc}") from None


@pytest.mark.parametrize("full", FULL)
def test_a_second_ctrl_c_during_the_first_ones_clean_up(reference, full):
    ref, counter = reference
    rng = np.random.default_rng(0)
    firsts = rng.choice(np.arange(1, counter.count), size=200 if full else 20, replace=False)
    for k in firsts:
        for gap in (1, 2, 3, 5, 8, 13, 40):
            tracer = Tracer(at=[int(k), int(k) + gap])
            run = _fits(tracer)
            try:
                _assert_same(run, ref)
            except AssertionError as exc:
                raise AssertionError(f"Ctrl-C at events {k} and {k + gap}, {tracer.hits}: {exc}") from None


@pytest.mark.parametrize("full", FULL)
@pytest.mark.parametrize("error", [RuntimeError, MemoryError])
def test_an_exception_from_any_call_leaves_no_lock_and_consistent_counters(reference, error, full):
    ref, counter = reference
    # Every call of a numbanet function (but the interrupt machinery's own) raising as it starts.
    firsts = counter.first.items()
    calls = [k for (path, _, event), k in firsts if event == "call" and os.path.basename(path) != "interrupts.py"]
    calls += [k for k in range(1, counter.count + 1, 11) if k in counter.calls]
    for k in _sample(sorted(set(calls)), full, size=100):
        tracer = Tracer(at=[k], error=error)
        X, Y, Xv, Yv = _data()
        net = numbanet.Network([5, 4, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=0)
        opt = numbanet.SGD(lr=0.2, momentum=0.9)
        try:
            with tracer:
                net.fit(X, Y, epochs=EPOCHS, batch_size=8, optimizer=opt, validation_data=(Xv, Yv), progress=False)
        except error:
            pass
        assert not net._fit_lock.locked(), k
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, k
        if net.history is not None and net.optimizer is opt:
            assert opt.t == net.history.steps, k
            assert net.epochs_trained == len(net.history.loss) == len(net.history.epoch), k
        net.fit(X, Y, epochs=1, batch_size=8, progress=False)  # not refused
        assert np.all(np.isfinite(net.params))


# ------------------------------------------------------------- chunked work


def _ctrl_c_after_chunks(monkeypatch, k):
    """Make the k-th kernel call of predict / loss / gradients be followed by a real SIGINT."""
    from numbanet.kernels import training as train

    calls = {"n": 0}
    for name in ("predict_flat", "cost_and_gradient_flat"):
        kernel = getattr(train, name)

        def counted(*args, _kernel=kernel):
            out = _kernel(*args)
            calls["n"] += 1
            if calls["n"] == k:
                signal.raise_signal(signal.SIGINT)
            return out

        monkeypatch.setattr(train, name, counted)
    return calls


@pytest.mark.parametrize("method", ["predict", "loss", "gradients"])
def test_predict_loss_and_gradients_stop_between_chunks(monkeypatch, method):
    X, Y = random_classification(n=1000)
    net = numbanet.Network([5, 8, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=0)
    monkeypatch.setattr(config, "CHUNK", 64)  # 16 chunks
    calls = _ctrl_c_after_chunks(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        net.predict(X) if method == "predict" else getattr(net, method)(X, Y)
    assert calls["n"] == 3  # stopped right after the chunk in which Ctrl-C came


def test_chunks_follow_the_network_size(monkeypatch):
    wide = numbanet.Network([784, 1024, 1024, 10], seed=0)
    small = numbanet.Network([5, 8, 3], seed=0)
    assert small._chunk_rows() == config.CHUNK
    assert wide._chunk_rows() * wide.n_params <= config.CHUNK_WORK < 2 * wide._chunk_rows() * wide.n_params
    monkeypatch.setattr(config, "CHUNK_WORK", 1)
    assert small._chunk_rows() == 1


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_chunked_loss_and_gradients_equal_one_call(monkeypatch, l2):
    X, Y = random_classification(n=1000)
    sw = np.random.default_rng(0).uniform(0, 2, size=1000)
    net = numbanet.Network([5, 8, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=0, l2=l2)
    whole = net.loss(X, Y, sw), net.gradients(X, Y, sw), net.predict(X)
    monkeypatch.setattr(config, "CHUNK_WORK", 60 * net.n_params)  # chunks of 32 rows
    assert net._chunk_rows() == 32
    chunked = net.loss(X, Y, sw), net.gradients(X, Y, sw), net.predict(X)
    assert chunked[0] == pytest.approx(whole[0], rel=1e-12, abs=0)
    for a, b in zip(chunked[1][0] + chunked[1][1], whole[1][0] + whole[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(chunked[2], whole[2], rtol=1e-12, atol=1e-15)  # BLAS may block 32 rows otherwise


def test_ctrl_c_during_validation_is_delivered_between_chunks_and_leaves_no_trace(monkeypatch):
    X, Y, _, _ = _data()
    Xv, Yv = random_classification(n=500, seed=4)
    ref = numbanet.Network([5, 4, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=0)
    ref.fit(X, Y, epochs=2, batch_size=8, validation_data=(Xv, Yv), progress=False)
    net = numbanet.Network([5, 4, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=0)
    monkeypatch.setattr(config, "CHUNK", 64)
    # 2 calls to compile or load the validation kernels, then 8 chunks of loss and 8 of predict an epoch:
    # Ctrl-C in the second epoch's validation loss.
    calls = _ctrl_c_after_chunks(monkeypatch, 2 + 16 + 3)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=2, batch_size=8, validation_data=(Xv, Yv), progress=False)
    assert calls["n"] == 2 + 16 + 3
    assert net.epochs_trained == 2 and len(net.history.val_loss) == 1  # the second epoch's: not recorded
    net.fit(X, Y, epochs=1, batch_size=8, validation_data=(Xv, Yv), progress=False)  # does it, then one more
    assert net.history.val_loss[0] == ref.history.val_loss[1]


# ------------------------------------------------- a mini-batch in parts

PART = 8  # rows of a part: the kernel computes a 40-row mini-batch in 5 parts


def _parts_of(monkeypatch, net, rows=PART):
    """Make training compute mini-batches larger than ``rows`` in parts of ``rows`` rows."""
    monkeypatch.setattr(config, "CHUNK_WORK", net.n_params * rows)
    assert net._chunk_rows() == rows


def _deep(dropout=0.0, l2=0.0):
    return numbanet.Network(
        [5, 6, 4, 3], activations=["tanh", "relu", "softmax"], loss="cross_entropy", seed=3, dropout=dropout, l2=l2
    )


@pytest.mark.parametrize(
    "make_opt, l2, clip",
    [
        (lambda: numbanet.SGD(lr=0.2), 0.0, 0.0),  # the whole batch folds SGD's step into its backward pass
        (lambda: numbanet.SGD(lr=0.1, momentum=0.9), 0.01, 0.5),
        (lambda: numbanet.Adam(lr=0.01), 0.0, 0.0),
    ],
)
def test_a_mini_batch_in_parts_equals_the_whole_batch(monkeypatch, make_opt, l2, clip):
    X, Y = random_classification(n=100, seed=5)
    sw = np.random.default_rng(1).uniform(0.0, 2.0, 100)
    sw[:30] = 0.0
    kw = dict(epochs=3, batch_size=40, sample_weight=sw, clip_norm=clip or None, progress=False)
    whole = _deep(l2=l2)
    hw = whole.fit(X, Y, optimizer=make_opt(), **kw)
    net = _deep(l2=l2)
    _parts_of(monkeypatch, net)
    hp = net.fit(X, Y, optimizer=make_opt(), **kw)
    np.testing.assert_allclose(net.params, whole.params, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hp.loss, hw.loss, rtol=1e-12)
    assert hp.steps == hw.steps == 9 and hp.samples == hw.samples == 300


def test_ctrl_c_between_the_parts_of_a_mini_batch_leaves_no_trace_and_continuing_equals_one_fit(monkeypatch):
    X, Y = random_classification(n=100, seed=5)
    Xv, Yv = random_classification(n=20, seed=6)
    net0 = _deep(dropout=0.3)  # two hidden layers with dropout: the masks are drawn part by part
    _parts_of(monkeypatch, net0)

    def fit(net, opt, sched, epochs):
        return net.fit(X, Y, epochs=epochs, batch_size=40, optimizer=opt, validation_data=(Xv, Yv),
                       lr_schedule=sched, progress=False)  # fmt: skip

    ref, ref_opt, ref_sched = net0.copy(), numbanet.Adam(lr=0.01), numbanet.ReduceLROnPlateau(patience=0)
    fit(ref, ref_opt, ref_sched, 2)
    per_epoch = 5 + 5 + 3  # steps: two batches of 40 rows in 5 parts, the last of 20 rows in 3
    for k in range(1, 2 * per_epoch):
        net, opt, sched = net0.copy(), numbanet.Adam(lr=0.01), numbanet.ReduceLROnPlateau(patience=0)
        rng0 = net._rng_state.copy()
        monkeypatch.setattr(engine, "_INTERRUPT_AFTER_STEPS", k)
        with pytest.raises(KeyboardInterrupt):
            fit(net, opt, sched, 2)
        monkeypatch.setattr(engine, "_INTERRUPT_AFTER_STEPS", None)
        epoch, step = divmod(k, per_epoch)
        batches = epoch * 3 + (step >= 5) + (step >= 10)
        assert opt.t == batches, k  # a batch stopped between its parts is not a step
        if batches == 0:
            np.testing.assert_array_equal(net.params, net0.params)
            np.testing.assert_array_equal(net._rng_state, rng0)  # its dropout masks are drawn again
        assert not net._fit_lock.locked()
        fit(net, opt, sched, 2 - net.epochs_trained)
        np.testing.assert_array_equal(net.params, ref.params, err_msg=f"stopped after {k} steps")
        np.testing.assert_array_equal(opt.state, ref_opt.state)
        np.testing.assert_array_equal(net._rng_state, ref._rng_state)
        assert (opt.t, net.epochs_trained, sched._scale) == (ref_opt.t, 2, ref_sched._scale)


def test_an_epoch_left_by_whole_batches_is_finished_in_parts(monkeypatch):
    X, Y = random_classification(n=100, seed=5)
    ref, net = _deep(), _deep()
    ref.fit(X, Y, epochs=2, batch_size=40, optimizer=numbanet.Adam(lr=0.01), progress=False)
    opt = numbanet.Adam(lr=0.01)
    monkeypatch.setattr(engine, "_INTERRUPT_AFTER_STEPS", 4)  # whole batches: in the second epoch
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=2, batch_size=40, optimizer=opt, progress=False)
    monkeypatch.setattr(engine, "_INTERRUPT_AFTER_STEPS", None)
    assert net._pending is not None and net._pending.backup.shape[0] == 1 + opt.state.shape[0]
    _parts_of(monkeypatch, net)  # the continuing run needs a row for its batches' running gradient
    net.fit(X, Y, epochs=1, batch_size=40, optimizer=opt, progress=False)
    assert opt.t == 6 and net.epochs_trained == 2
    np.testing.assert_allclose(net.params, ref.params, rtol=1e-12, atol=1e-14)


def test_a_bad_row_or_a_divergence_in_a_later_part_puts_everything_back(monkeypatch):
    X, Y = random_classification(n=100, seed=5)
    net = _deep()
    _parts_of(monkeypatch, net)
    before, rng0 = net.params.copy(), net._rng_state.copy()
    X[77, 2] = np.nan  # unshuffled: the second batch (rows 40 to 79), its fifth part
    with pytest.raises(ValueError, match=r"NaN or infinity \(first at row 77, column 2"):
        net.fit(X, Y, epochs=1, batch_size=40, shuffle=False, optimizer=numbanet.Adam(lr=0.01), progress=False)
    np.testing.assert_array_equal(net.params, before)
    np.testing.assert_array_equal(net._rng_state, rng0)
    assert net.epochs_trained == 0 and net.optimizer is None
    X[77, 2] = 0.0
    with pytest.raises(numbanet.TrainingDivergedError, match=r"epoch 0 \(counted from 0"):
        net.fit(X, Y, epochs=1, batch_size=40, optimizer=numbanet.SGD(lr=1e300), progress=False)
    np.testing.assert_array_equal(net.params, before)


def test_a_batch_in_parts_with_weightless_parts_and_a_weightless_batch(monkeypatch):
    X, Y = random_classification(n=80, seed=5)
    sw = np.ones(80)
    sw[:40] = 0.0  # unshuffled: the first batch has no weight, the second's first parts none either
    sw[40:56] = 0.0
    kw = dict(epochs=2, batch_size=40, shuffle=False, sample_weight=sw, progress=False)
    whole = _deep()
    hw = whole.fit(X, Y, optimizer=numbanet.Adam(lr=0.01), **kw)
    net = _deep()
    _parts_of(monkeypatch, net)
    hp = net.fit(X, Y, optimizer=numbanet.Adam(lr=0.01), **kw)
    assert hp.steps == hw.steps == 2  # a batch of weight 0 takes no step
    np.testing.assert_allclose(net.params, whole.params, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hp.loss, hw.loss, rtol=1e-12)


def test_a_real_ctrl_c_is_delivered_between_the_parts_of_a_mini_batch(monkeypatch):
    from numbanet.kernels import training as train

    X, Y = random_classification(n=100, seed=5)
    net = _deep()
    _parts_of(monkeypatch, net)
    kernel, calls = train.train_slice_flat, {"n": 0}

    def counted(*args):
        kernel(*args)
        calls["n"] += 1
        if calls["n"] == 1 + 3:  # the first call only compiles or loads; then one part a call
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(train, "train_slice_flat", counted)
    opt = numbanet.SGD(lr=0.1)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=1, batch_size=100, optimizer=opt, progress=False)  # one batch, 13 parts
    assert calls["n"] == 4 and opt.t == 0
    np.testing.assert_array_equal(net.params, _deep().params)


# ------------------------------------------------------------ a real storm

STORM_CHILD = textwrap.dedent(
    """
    import json, signal, sys, numpy as np, numbanet
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 10)); Y = np.eye(3)[rng.integers(0, 3, 3000)]
    Xv = rng.normal(size=(300, 10)); Yv = np.eye(3)[rng.integers(0, 3, 300)]
    EPOCHS = int(sys.argv[1])

    def run():  # SIGINT is ignored here but for the fit calls: the storm reaches numbanet only
        net = numbanet.Network([10, 32, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=0)
        opt = numbanet.Adam(lr=0.01); sched = numbanet.ReduceLROnPlateau(factor=0.5, patience=0)
        histories, n = [], 0
        while net.epochs_trained < EPOCHS:
            try:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                net.fit(X, Y, epochs=EPOCHS - net.epochs_trained, batch_size=16, optimizer=opt,
                        validation_data=(Xv, Yv), lr_schedule=sched, progress=False)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            except KeyboardInterrupt:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                n += 1
            if net.history is not None and all(h is not net.history for h in histories):
                histories.append(net.history)
        # One more epoch, without signals: it finishes an epoch end the storm left pending.
        histories.append(net.fit(X, Y, epochs=1, batch_size=16, validation_data=(Xv, Yv), lr_schedule=sched,
                                 progress=False))
        lists = [sum((getattr(h, k) for h in histories), []) for k in ("loss", "val_loss", "lr")]
        return net, opt, sched, lists, n

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    net, opt, sched, lists, _ = run()  # the reference, before the storm
    print("ready", flush=True)
    net2, opt2, sched2, lists2, n = run()
    same = bool(np.array_equal(net.params, net2.params) and np.array_equal(opt.state, opt2.state))
    diff = [(k, len(a), len(b), next((i for i, (u, v) in enumerate(zip(a, b)) if u != v), None))
            for k, a, b in zip(("loss", "val_loss", "lr"), lists, lists2) if a != b]
    print(json.dumps({"same": same, "t": [opt.t, opt2.t], "lists": lists == lists2, "interrupts": n, "diff": diff,
                      "scale": [sched._scale, sched2._scale], "locked": net2._fit_lock.locked()}))
    """
)


@pytest.mark.slow  # a child Python, a few seconds of signals
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_a_storm_of_real_sigints_changes_nothing():
    import time

    proc = subprocess.Popen(
        [sys.executable, "-c", STORM_CHILD, "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        rng = np.random.default_rng(1)
        while proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # until it exits: it ignores SIGINT outside its fits
            time.sleep(rng.uniform(0.001, 0.03))  # no timing is asserted
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["interrupts"] > 5, err
    assert result["same"] and result["lists"] and not result["locked"], json.dumps(result)
    assert result["t"][0] == result["t"][1] and result["scale"][0] == result["scale"][1]
