"""What controls a :meth:`numbanet.Network.fit` run.

Validation data and split, early stopping, callbacks, the progress display,
divergence, and continuing training with ``fit`` and ``train_on_batch``.
"""

import sys
import time

import numpy as np
import pytest
from helpers import QUIET, grad, small_net
from naive import classification, regression

import numbanet
from numbanet import SGD, Adam, Callback, EarlyStopping


class Recorder(Callback):
    """Records the parameters (and anything else asked for) after each epoch."""

    def __init__(self, extra=None):
        self.extra = extra or (lambda net, history: None)
        self.params, self.values, self.calls = [], [], []
        self.begun = self.ended = 0

    def on_train_begin(self, net):
        self.begun += 1

    def on_epoch_end(self, net, history):
        self.calls.append(len(history))
        self.params.append(net.params.copy())
        self.values.append(self.extra(net, history))
        return False

    def on_train_end(self, net, history):
        self.ended += 1


# --------------------------------------------------------------- validation


def test_validation_data_history_equals_loss_after_each_epoch():
    X, Y = classification(seed=1)
    Xv, Yv = classification(n=15, seed=2)
    net = numbanet.Network([4, 6, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=0, l2=1e-3)
    rec = Recorder(lambda net, h: (net.loss(Xv, Yv), net.accuracy(Xv, Yv)))
    h = net.fit(X, Y, epochs=5, batch_size=8, optimizer=Adam(lr=0.05), validation_data=(Xv, Yv), callbacks=rec, **QUIET)
    assert len(h.val_loss) == len(h.val_accuracy) == len(h.loss) == 5
    assert h.val_loss == [v[0] for v in rec.values]
    assert h.val_accuracy == [v[1] for v in rec.values]
    assert len(set(h.val_loss)) == 5
    assert set(h.as_dict()) == {"epoch", "loss", "val_loss", "val_accuracy", "lr"}


def test_validation_for_regression_has_no_accuracy():
    X, Y = regression()
    net = small_net(0)
    h = net.fit(X, Y, epochs=3, validation_data=(X[:4], Y[:4]), **QUIET)
    assert len(h.val_loss) == 3 and h.val_accuracy == []
    assert "val_accuracy" not in h.as_dict()
    h = net.fit(X, Y, epochs=2, **QUIET)
    assert h.val_loss == [] and "val_loss" not in h.as_dict()


def test_validation_split_holds_out_rows():
    X, Y = classification(n=50, seed=3)
    net = numbanet.Network([4, 6, 3], activations=["sigmoid", "softmax"], loss="cross_entropy", seed=11)
    twin = net.copy()
    # White-box: the held-out rows are the first round(0.2 n) of a permutation from the network's generator.
    perm = net.copy()._rng.permutation(50)
    val, tr = perm[:10], np.sort(perm[10:])
    rec = Recorder(lambda net, h: net.loss(X[val], Y[val]))
    h = net.fit(X, Y, epochs=4, batch_size=16, shuffle=False, validation_split=0.2, callbacks=rec, **QUIET)
    assert len(h.val_loss) == len(h.val_accuracy) == 4
    assert h.val_loss == rec.values
    # The training rows are exactly the others: same as passing the split by hand.
    h2 = twin.fit(X[tr], Y[tr], epochs=4, batch_size=16, shuffle=False, validation_data=(X[val], Y[val]), **QUIET)
    np.testing.assert_array_equal(net.params, twin.params)
    assert h.loss == h2.loss and h.val_loss == h2.val_loss


def test_validation_arguments_refused():
    X, Y = regression()
    net = small_net(0)
    before = net.params.copy()
    bad = [
        dict(validation_split=0.2, validation_data=(X, Y)),
        dict(validation_split=1.0),
        dict(validation_split=0.01),  # rounds to 0 of 12 rows
        dict(validation_data=X),
        dict(validation_data=(X[:, :2], Y)),
        dict(validation_data=(X, Y[:5])),
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            net.fit(X, Y, **kw, **QUIET)
    np.testing.assert_array_equal(net.params, before)
    assert net.epochs_trained == 0


# ----------------------------------------------------------- early stopping


def _overshoot_problem():
    """Build a 1-1 linear unit pulled from output 0 to target 1; validation wants 0.5.

    With SGD lr 0.1 the output after epoch e (0-based) is 1 - 0.8**(e+1), so the
    validation loss is smallest after epoch 2 (output 0.488) and grows after.
    """
    net = numbanet.Network([1, 1], activations="identity", seed=0)
    net.params[...] = 0.0
    X, Y = np.ones((1, 1)), np.ones((1, 1))
    return net, X, Y, (np.ones((1, 1)), np.full((1, 1), 0.5))


def test_early_stopping_restores_best_epoch():
    net, X, Y, val = _overshoot_problem()
    rec = Recorder()
    h = net.fit(
        X,
        Y,
        epochs=50,
        batch_size=1,
        optimizer=SGD(lr=0.1),
        validation_data=val,
        early_stopping=3,
        callbacks=rec,
        **QUIET,
    )
    outputs = [float(p.sum()) for p in rec.params]
    np.testing.assert_allclose(outputs, [1 - 0.8 ** (e + 1) for e in range(len(outputs))], rtol=1e-12)
    assert int(np.argmin(h.val_loss)) == 2
    # Epochs 0-2 up to the best, then 3 (the patience) without improvement stop it.
    assert len(h) == 3 + 3
    assert h.stopped_early and h.best_epoch == 2
    np.testing.assert_array_equal(net.params, rec.params[2])
    assert not np.array_equal(net.params, rec.params[-1])
    assert net.epochs_trained == 6


def test_early_stopping_on_a_flat_training_loss():
    X, Y = regression()
    net = small_net(3)
    rec = Recorder()
    h = net.fit(X, Y, epochs=100, batch_size=4, optimizer=SGD(lr=1e-300), early_stopping=3, callbacks=rec, **QUIET)
    assert len(set(h.loss)) == 1  # parameters cannot move: the loss is exactly flat
    assert len(h) == 4 and h.stopped_early and h.best_epoch == 0
    np.testing.assert_array_equal(net.params, rec.params[0])


def test_early_stopping_object_min_delta_and_monitor():
    X, Y = regression()
    net = small_net(3)
    rec = Recorder()
    stopper = EarlyStopping(patience=2, min_delta=10.0, monitor="loss")
    h = net.fit(
        X,
        Y,
        epochs=30,
        batch_size=4,
        optimizer=SGD(lr=0.05),
        early_stopping=stopper,
        validation_data=(X, Y),
        callbacks=rec,
        **QUIET,
    )
    assert all(a > b for a, b in zip(h.loss, h.loss[1:]))  # improving, but never by 10
    assert len(h) == 3 and h.best_epoch == 0
    np.testing.assert_array_equal(net.params, rec.params[0])
    with pytest.raises(ValueError, match="validation"):
        net.fit(X, Y, epochs=2, early_stopping=EarlyStopping(monitor="val_loss"), **QUIET)
    for bad in (0, -1, 2.5, "3"):
        with pytest.raises(ValueError):
            net.fit(X, Y, early_stopping=bad, **QUIET)
    with pytest.raises(ValueError):
        EarlyStopping(monitor="accuracy")


def test_best_epoch_counts_globally():
    net, X, Y, val = _overshoot_problem()
    net.fit(X, Y, epochs=1, batch_size=1, optimizer=SGD(lr=0.1), **QUIET)
    h = net.fit(X, Y, epochs=50, batch_size=1, validation_data=val, early_stopping=3, **QUIET)
    assert h.epoch[0] == 1 and h.best_epoch == 2


# ---------------------------------------------------------------- callbacks


def test_function_and_object_callbacks_called_once_per_epoch():
    X, Y = regression()
    net = small_net(0)
    seen = []

    def fn(n, history):
        assert n is net
        seen.append((len(history), history.epoch[-1], history.loss[-1]))

    rec = Recorder()
    h = net.fit(X, Y, epochs=4, callbacks=[fn, rec], **QUIET)
    assert [s[0] for s in seen] == [1, 2, 3, 4] == rec.calls
    assert [s[2] for s in seen] == h.loss
    assert rec.begun == rec.ended == 1
    assert not h.stopped_early and h.best_epoch is None
    # A single callback need not be in a list.
    seen.clear()
    net.fit(X, Y, epochs=2, callbacks=fn, **QUIET)
    assert [s[1] for s in seen] == [4, 5]


def test_callback_returning_true_stops():
    X, Y = regression()
    net = small_net(0)
    h = net.fit(X, Y, epochs=10, callbacks=lambda n, hist: len(hist) == 3, **QUIET)
    assert len(h) == 3 and h.stopped_early and net.epochs_trained == 3
    # Stopping on the last epoch is not stopping early.
    h = net.fit(X, Y, epochs=2, callbacks=lambda n, hist: len(hist) == 2, **QUIET)
    assert len(h) == 2 and not h.stopped_early


def test_callback_can_change_weights_and_training_continues_from_them():
    X, Y = regression()
    n = X.shape[0]
    net = small_net(0)
    manual = net.copy()

    def zero_biases(n_, history):
        for b in n_.biases:
            b[...] = 0.0

    net.fit(X, Y, epochs=3, batch_size=n, shuffle=False, optimizer=SGD(lr=0.2), callbacks=zero_biases, **QUIET)
    for _ in range(3):
        manual.params -= 0.2 * grad(manual, X, Y)
        zero_biases(manual, None)
    np.testing.assert_allclose(net.params, manual.params, rtol=1e-11, atol=1e-14)
    assert all(not b.any() for b in net.biases)


def test_invalid_callback_refused():
    X, Y = regression()
    with pytest.raises(ValueError, match="callback"):
        small_net(0).fit(X, Y, callbacks=[42], **QUIET)


# ----------------------------------------------------------------- progress


def test_progress_true_shows_a_bar(capsys):
    X, Y = regression()
    small_net(0).fit(X, Y, epochs=3, validation_data=(X, Y), progress=True)
    out, err = capsys.readouterr()
    assert "3/3" in err and "loss" in err and "val_loss" in err
    assert out == ""


def test_progress_false_and_default_are_silent(capsys):
    X, Y = regression()
    net = small_net(0)
    net.fit(X, Y, epochs=3, progress=False)
    net.fit(X, Y, epochs=3)  # pytest captures stderr: not a terminal
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_progress_without_tqdm_prints_a_line_per_epoch(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes "from tqdm import std" fail
    monkeypatch.setattr(numbanet.progress.Progress, "PLAIN_INTERVAL", 0.0)  # no throttling
    X, Y = classification()
    net = numbanet.Network([4, 5, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=0)
    net.fit(X, Y, epochs=4, validation_data=(X, Y), progress=True)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 4
    for k, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {k}/4") and "loss" in line and "val_acc" in line


def test_progress_without_tqdm_throttles_its_lines(capsys, monkeypatch, xor):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    X, Y = xor
    numbanet.Network([2, 3, 1], seed=0).fit(X, Y, epochs=3000, batch_size=4, progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert 1 <= len(lines) < 100  # not one per epoch
    assert lines[-1].startswith("epoch 3000/3000")


# --------------------------------------------------------------- divergence


def _diverging():
    X, Y = regression(n=20, n_out=1, scale=100.0)
    net = numbanet.Network([3, 4, 1], activations=["tanh", "identity"], seed=0)
    return net, X, Y, dict(epochs=200, batch_size=5, shuffle=False, **QUIET)


def test_divergence_raises_and_restores_start_of_epoch():
    net, X, Y, kw = _diverging()
    theta0 = net.params.copy()
    opt = SGD(lr=1e12, momentum=0.9)
    rec = Recorder(lambda n, h: opt.state.copy())
    with pytest.raises(numbanet.TrainingDivergedError) as info:
        net.fit(X, Y, optimizer=opt, callbacks=rec, **kw)
    err = info.value
    assert isinstance(err, ArithmeticError)
    E = err.epoch  # 0-based, as History.epoch
    assert E >= 1 and len(rec.params) == E  # diverged after some finite epochs
    msg = str(err)
    assert f"epoch {E}" in msg and f"batch {err.batch}" in msg and "lower learning rate" in msg
    assert 1 <= err.batch <= 4 and err.lr == 1e12
    assert np.all(np.isfinite(net.params)) and np.all(np.isfinite(opt.state))
    np.testing.assert_array_equal(net.params, rec.params[E - 1])
    np.testing.assert_array_equal(opt.state, rec.values[E - 1])
    assert not np.array_equal(net.params, theta0)
    assert net.epochs_trained == E and opt.t == 4 * E

    # Without callbacks the epochs run in one jitted call: same epoch, same restored state.
    again, X, Y, kw = _diverging()
    with pytest.raises(numbanet.TrainingDivergedError) as info2:
        again.fit(X, Y, optimizer=SGD(lr=1e12, momentum=0.9), **kw)
    assert (info2.value.epoch, info2.value.batch) == (E, err.batch)
    np.testing.assert_array_equal(again.params, net.params)

    # Training can go on from the restored weights with a sane rate; the epoch
    # that diverged is run again under the same number.
    h = net.fit(X, Y, epochs=3, optimizer=SGD(lr=1e-4), **QUIET)
    assert np.all(np.isfinite(h.loss)) and h.epoch == [E, E + 1, E + 2]


def test_divergence_in_first_epoch_restores_initial_weights():
    net, X, Y, kw = _diverging()
    theta0 = net.params.copy()
    with pytest.raises(numbanet.TrainingDivergedError, match=r"epoch 0 \(counted from 0") as info:
        net.fit(X, Y, optimizer=SGD(lr=1e300), **kw)
    np.testing.assert_array_equal(net.params, theta0)
    assert net.epochs_trained == 0 and info.value.epoch == 0


# --------------------------------------------------------------- continuing


def test_fit_twice_continues():
    X, Y = regression()
    a = small_net(9)
    b = a.copy()
    a.fit(X, Y, epochs=3, batch_size=5, shuffle=False, optimizer=SGD(lr=0.1, momentum=0.9), **QUIET)
    h = a.fit(X, Y, epochs=2, batch_size=5, shuffle=False, **QUIET)
    b.fit(X, Y, epochs=5, batch_size=5, shuffle=False, optimizer=SGD(lr=0.1, momentum=0.9), **QUIET)
    np.testing.assert_array_equal(a.params, b.params)
    assert a.epochs_trained == 5 and h.epoch == [3, 4]


def test_train_on_batch_is_one_step():
    X, Y = regression()
    net = small_net(10)
    manual = net.copy()
    before = net.loss(X, Y)
    loss = net.train_on_batch(X, Y, optimizer=SGD(lr=0.3))
    assert loss == pytest.approx(before, rel=1e-12)
    np.testing.assert_allclose(net.params, manual.params - 0.3 * grad(manual, X, Y), rtol=1e-12, atol=1e-15)
    assert net.epochs_trained == 1


def test_train_on_batch_continues_optimizer_state():
    X, Y = regression()
    w = np.linspace(0.5, 2.0, X.shape[0])
    net = small_net(10)
    manual = net.copy()
    net.train_on_batch(X, Y, optimizer=Adam(lr=0.01), sample_weight=w)
    net.train_on_batch(X[:5], Y[:5], sample_weight=w[:5])  # reuses the Adam state
    opt = Adam(lr=0.01)
    opt.step(manual.params, grad(manual, X, Y, w))
    opt.step(manual.params, grad(manual, X[:5], Y[:5], w[:5]))
    np.testing.assert_allclose(net.params, manual.params, rtol=1e-11, atol=1e-14)
    assert net.optimizer.t == 2


def test_partial_fit_is_the_deprecated_name_of_train_on_batch():
    X, Y = regression()
    net, twin = small_net(10), small_net(10)
    with pytest.warns(DeprecationWarning, match="train_on_batch"):
        loss = net.partial_fit(X, Y, optimizer=SGD(lr=0.3), sample_weight=np.linspace(0.5, 2.0, X.shape[0]))
    assert loss == twin.train_on_batch(X, Y, optimizer=SGD(lr=0.3), sample_weight=np.linspace(0.5, 2.0, X.shape[0]))
    np.testing.assert_array_equal(net.params, twin.params)


def test_the_compile_indicator_shows_the_seconds_passing(capsys, monkeypatch):
    import numbanet.progress as progress

    monkeypatch.setattr(progress.Progress, "TICK", 0.01)
    bar = progress.Progress(3, True)
    with bar.compiling():
        time.sleep(0.2)  # the kernels compiling, holding this thread
    bar.close()
    err = capsys.readouterr().err
    assert "compiling numbanet's kernels (first run only)..." in err
    assert "compiling numbanet's kernels (first run only): 0 s" in err  # redrawn while the block ran
    assert "compiling numbanet's kernels (first run only): done in 0." in err


def test_the_compile_indicator_is_silent_when_progress_is_off(capsys):
    import numbanet.progress as progress

    with progress.Progress(3, False).compiling():
        pass
    assert capsys.readouterr().err == ""


def test_a_notebook_without_ipywidgets_gets_the_text_bar_without_a_warning(monkeypatch):
    import importlib.util

    from tqdm import std

    import numbanet.progress as progress

    real = importlib.util.find_spec
    monkeypatch.setattr(progress, "_in_notebook", lambda: True)
    monkeypatch.setattr(progress.importlib.util, "find_spec", lambda name: None if name == "ipywidgets" else real(name))
    assert progress._tqdm_class() is std.tqdm
    monkeypatch.setattr(progress, "_in_notebook", lambda: False)
    assert progress._tqdm_class() is std.tqdm


def _split_net(n_in):
    return numbanet.Network([n_in, 6, 2], activations=["tanh", "sigmoid"], loss="binary_cross_entropy", seed=0)


@pytest.mark.parametrize("shuffle", [True, False])
def test_validation_split_trains_on_the_rows_in_place_exactly_as_on_a_copy(shuffle):
    # More training and more validation rows than a predict chunk (config.CHUNK), reshuffled over two epochs.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3 * numbanet.config.CHUNK, 40))
    Y = (X[:, :2] > 0).astype(float)
    kw = dict(epochs=2, batch_size=64, shuffle=shuffle, **QUIET)
    net = _split_net(40)
    twin = net.copy()
    perm = twin._rng.permutation(X.shape[0])  # the draw validation_split makes, from the same generator
    n_val = X.shape[0] // 2
    val, tr = perm[:n_val], np.sort(perm[n_val:])
    h = net.fit(X, Y, validation_split=0.5, optimizer=numbanet.Adam(lr=0.01), **kw)
    ref = twin.fit(X[tr], Y[tr], validation_data=(X[val], Y[val]), optimizer=numbanet.Adam(lr=0.01), **kw)
    np.testing.assert_array_equal(net.params, twin.params)
    assert h.loss == ref.loss and h.val_loss == ref.val_loss


def test_validation_split_does_not_copy_the_training_rows():
    # A copy of the training rows (7.3 MiB) would exceed the bound below; a copy of the validation rows is
    # expected.  Wide rows: many bytes in few rows keep the fit short, also with the JIT off (.ci/coverage).
    import tracemalloc

    rng = np.random.default_rng(3)
    X = rng.standard_normal((2_000, 640))
    Y = (X[:, :2] > 0).astype(float)
    kw = dict(epochs=1, batch_size=64, **QUIET)
    _split_net(640).fit(X[:50], Y[:50], validation_split=0.2, **kw)  # compiled before measuring
    net = _split_net(640)
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        net.fit(X, Y, validation_split=0.25, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    val = X[: X.shape[0] // 4]
    # The validation rows' copy and the predict/loss work buffer (config.CHUNK rows), not the training rows.
    assert peak < val.nbytes + 2 * val.shape[0] * 8 + 4 * 2**20, f"{peak / 2**20:.1f} MiB"
