"""Input-handling findings: each refused input names what is wrong and the numbers, and changes nothing.

1. cross_entropy targets with rows that sum to 0 (no class) are refused, in
   training and validation data alike; soft labels are still accepted.
2. Integer class labels given as Y to a multi-output net get a one-hot hint.
3. pandas nullable columns holding ``pd.NA`` are reported as missing values,
   not as non-numeric data; without missing values they work.
4. ``gradcheck(max_entries=...)`` accepts only positive integers or None, and a
   check that compared nothing (every entry on a ReLU kink) does not pass.
5. A learning-rate schedule may be ``f(epoch)`` or ``f(epoch, base_lr)``;
   other arities are refused before training starts.
"""

import functools
import math
import re

import numpy as np
import pytest
from naive import random_classification

import numbanet
from numbanet.schedules import LambdaLR, as_schedule

N, D, K = 12, 4, 3


def _net(dtype=np.float64):
    return numbanet.Network([D, 5, K], activations=["tanh", "softmax"], loss="cross_entropy", dtype=dtype, seed=0)


def _trained_net(dtype=np.float64):
    X, Y, _ = random_classification(N, D, K, with_labels=True)
    net = _net(dtype)
    net.fit(X, Y, epochs=2, batch_size=4, optimizer=numbanet.SGD(lr=0.1, momentum=0.9), progress=False)
    return net


def _snapshot(net):
    return net.params.tobytes(), net.optimizer.state.tobytes(), net.optimizer.t, net.epochs_trained


def _calls(net, X, Y):
    return {
        "fit": lambda: net.fit(X, Y, epochs=1, progress=False),
        "train_on_batch": lambda: net.train_on_batch(X, Y),
        "loss": lambda: net.loss(X, Y),
        "gradients": lambda: net.gradients(X, Y),
        "accuracy": lambda: net.accuracy(X, Y),
    }


METHODS = ["fit", "train_on_batch", "loss", "gradients", "accuracy"]


# --- 1. cross_entropy rows that sum to zero ------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", METHODS)
def test_cross_entropy_refuses_all_zero_target_rows(method, dtype):
    """Rows of zeros in cross_entropy targets are refused by every method, naming row, sum and count."""
    X, Y, _ = random_classification(N, D, K, with_labels=True)
    Y = Y.copy()
    Y[[3, 7, 8]] = 0.0
    Y_before = Y.copy()
    net = _trained_net(dtype)
    snap = _snapshot(net)
    with pytest.raises(ValueError, match=re.escape("Y row 3 sums to 0 (3 rows of 12 do); cross_entropy needs one-hot")):
        _calls(net, X, Y)[method]()
    assert _snapshot(net) == snap
    np.testing.assert_array_equal(Y, Y_before)


def test_cross_entropy_zero_row_message_counts_a_single_row():
    """One such row is counted in the singular."""
    X, Y, _ = random_classification(N, D, K, with_labels=True)
    Y[11] = 0.0
    with pytest.raises(ValueError, match=re.escape("Y row 11 sums to 0 (1 row of 12 does)")):
        _net().loss(X, Y)


def test_cross_entropy_refuses_all_zero_rows_in_validation_data():
    """Validation targets go through the same check, before anything changes."""
    X, Y, _ = random_classification(N, D, K, with_labels=True)
    Yv = Y.copy()
    Yv[5] = 0.0
    net = _trained_net()
    snap = _snapshot(net)
    with pytest.raises(ValueError, match=re.escape("validation Y row 5 sums to 0 (1 row of 12 does)")):
        net.fit(X, Y, epochs=1, validation_data=(X, Yv), progress=False)
    assert _snapshot(net) == snap


def test_cross_entropy_accepts_soft_labels_and_rows_not_summing_to_one():
    """Soft labels and positive row sums other than 1 are still accepted."""
    X, Y, _ = random_classification(N, D, K, with_labels=True)
    soft = 0.8 * Y + 0.2 / K  # label smoothing: rows sum to 1
    weighted = Y * np.linspace(0.1, 1.0, N)[:, None]  # positive sums other than 1
    net = _net()
    for target in (soft, weighted):
        history = net.fit(X, target, epochs=2, batch_size=4, progress=False)
        assert all(np.isfinite(history.loss))
        assert np.isfinite(net.loss(X, target))


def test_zero_rows_are_fine_for_other_losses():
    """Only cross_entropy needs a class per row."""
    X, Y, _ = random_classification(N, D, K, with_labels=True)
    Y[0] = 0.0
    for acts, loss in ((["tanh", "sigmoid"], "binary_cross_entropy"), (["tanh", "identity"], "mse")):
        net = numbanet.Network([D, 5, K], activations=acts, loss=loss, seed=0)
        assert np.isfinite(net.loss(X, Y))


# --- 2. integer class labels as Y ------------------------------------------------------------


HINT = "Y looks like integer class labels; one-hot encode them"


@pytest.mark.parametrize(
    "make, example",
    [
        (lambda y: y, "np.eye(3)[y]"),  # 1-D int64
        (lambda y: y.tolist(), "np.eye(3)[y]"),  # a list
        (lambda y: y.astype(np.uint8), "np.eye(3)[y]"),
        (lambda y: y[:, None], "np.eye(3)[y]"),  # one column of integers
        (lambda y: y.astype(float), "np.eye(3)[y.astype(int)]"),  # integral floats
        (lambda y: y.astype(float)[:, None], "np.eye(3)[y.astype(int)]"),
    ],
    ids=["1d-int", "list", "1d-uint8", "column-int", "1d-float", "column-float"],
)
@pytest.mark.parametrize("method", ["fit", "loss", "gradients"])
def test_integer_labels_as_targets_get_a_one_hot_hint(make, example, method):
    """A label vector (or one column of labels) for a 3-output net gets a one-hot hint."""
    X, _, labels = random_classification(N, D, K, with_labels=True)
    net = _trained_net()
    snap = _snapshot(net)
    with pytest.raises(ValueError) as info:
        _calls(net, X, make(labels))[method]()
    message = str(info.value)
    assert HINT in message
    assert f"(e.g. {example})" in message
    assert "or use numbanet.MLPClassifier" in message
    assert _snapshot(net) == snap


def test_integer_label_hint_keeps_the_shape_message():
    """The hint is added to the shape message, not instead of it."""
    X, _, labels = random_classification(N, D, K, with_labels=True)
    net = _net()
    with pytest.raises(ValueError, match=re.escape("Y must be 2-D, of shape (n_samples, n_outputs); got a 1-D array")):
        net.fit(X, labels, progress=False)
    with pytest.raises(ValueError, match=re.escape("Y has 1 outputs, but the network expects 3; " + HINT)):
        net.fit(X, labels[:, None], progress=False)


def test_integer_label_hint_names_labels_beyond_the_outputs():
    """Labels beyond the outputs are named, without a wrong np.eye example."""
    X, _, labels = random_classification(N, D, K, with_labels=True)
    with pytest.raises(ValueError) as info:
        _net().fit(X, labels + 3, progress=False)
    message = str(info.value)
    assert HINT in message
    assert "np.eye(n_classes)[y]; the labels go up to 5 but the network has 3 outputs" in message


def test_integer_label_hint_for_validation_targets():
    """Validation targets get the hint under their own name."""
    X, Y, labels = random_classification(N, D, K, with_labels=True)
    with pytest.raises(ValueError, match="validation Y looks like integer class labels"):
        _net().fit(X, Y, validation_data=(X, labels), progress=False)


@pytest.mark.parametrize(
    "make",
    [
        lambda y: y - 1,  # negative values: not labels
        lambda y: y + 0.5,  # not integral
        lambda y: y == 1,  # booleans: np.eye(k)[mask] would be boolean indexing
    ],
    ids=["negative", "fractional", "bool"],
)
def test_no_label_hint_when_targets_do_not_look_like_labels(make):
    """Negative, fractional and boolean targets get no label hint."""
    X, _, labels = random_classification(N, D, K, with_labels=True)
    with pytest.raises(ValueError, match="Y must be 2-D") as info:
        _net().fit(X, make(labels), progress=False)
    assert "class labels" not in str(info.value)


def test_no_label_hint_for_a_wrong_number_of_columns_other_than_one():
    """Two columns for three outputs are not labels."""
    X, Y, _ = random_classification(N, D, K, with_labels=True)
    with pytest.raises(ValueError, match="Y has 2 outputs, but the network expects 3") as info:
        _net().fit(X, Y[:, :2], progress=False)
    assert "class labels" not in str(info.value)


def test_single_output_net_still_takes_a_1d_integer_target():
    """A 1-D integer target still fits a single-output net."""
    X, _, labels = random_classification(N, D, K, with_labels=True)
    y = (labels > 0).astype(int)
    net = numbanet.Network([D, 3, 1], activations=["tanh", "sigmoid"], loss="binary_cross_entropy", seed=0)
    history = net.fit(X, y, epochs=2, progress=False)
    assert len(history.loss) == 2


# --- 3. pandas nullable columns with missing values ------------------------------------------


def _nullable_frame(pd, X):
    return pd.DataFrame(
        {
            "f": pd.array(X[:, 0], dtype="Float64"),
            "i": pd.array(np.round(3 * X[:, 1]).astype(int), dtype="Int64"),
            "b": pd.array(X[:, 2] > 0, dtype="boolean"),
            "x": X[:, 3],
        }
    )


@pytest.mark.parametrize("column", ["f", "i", "b"])
@pytest.mark.parametrize("method", ["fit", "loss", "predict"])
def test_pandas_nullable_missing_values_are_named_as_missing(column, method):
    """pd.NA in nullable Float64 / Int64 / boolean columns is reported as missing, at its place."""
    pd = pytest.importorskip("pandas")
    X, Y, _ = random_classification(N, D, K, with_labels=True)
    df = _nullable_frame(pd, X)
    df.loc[4, column] = pd.NA
    df.loc[9, "i"] = pd.NA
    before = df.copy()
    net = _trained_net()
    snap = _snapshot(net)
    first = f"first at row 4, column {list(df.columns).index(column)}: <NA>"  # the other one is at row 9
    call = {
        "fit": lambda: net.fit(df, Y, epochs=1, progress=False),
        "loss": lambda: net.loss(df, Y),
        "predict": lambda: net.predict(df),
    }[method]
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"X contains missing values (2 of {N * D}; {first})")
    assert message.endswith("remove or impute them")
    assert "non-numeric" not in message
    assert _snapshot(net) == snap
    pd.testing.assert_frame_equal(df, before)


def test_pandas_missing_values_in_targets_and_sample_weight():
    """Targets and sample weights with pd.NA are reported as missing too."""
    pd = pytest.importorskip("pandas")
    X, Y, _ = random_classification(N, D, K, with_labels=True)
    net = _trained_net()
    snap = _snapshot(net)
    # Int64 and Float64 columns together convert to an object array holding pd.NA.
    dfY = pd.DataFrame(
        {
            0: pd.array(Y[:, 0].astype(int), dtype="Int64"),
            1: pd.array(Y[:, 1], dtype="Float64"),
            2: pd.array(Y[:, 2].astype(int), dtype="Int64"),
        }
    )
    dfY.loc[2, 1] = pd.NA
    message = "Y contains missing values (1 of 36; first at row 2, column 1: <NA>)"
    with pytest.raises(ValueError, match=re.escape(message)):
        net.fit(X, dfY, progress=False)
    weights = pd.Series([1.0] * N, dtype=object)
    weights[6] = pd.NA
    with pytest.raises(ValueError, match=re.escape("sample_weight contains missing values (1 of 12; first at row 6")):
        net.fit(X, Y, sample_weight=weights, progress=False)
    assert _snapshot(net) == snap


def test_pandas_all_int64_frame_with_missing_values_is_refused_as_missing():
    """A frame of several Int64 columns converts to objects: pd.NA is reported as missing."""
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({c: pd.array(np.arange(N) + c, dtype="Int64") for c in range(D)})
    df.loc[7, 2] = pd.NA
    message = "X contains missing values (1 of 48; first at row 7, column 2: <NA>)"
    with pytest.raises(ValueError, match=re.escape(message)):
        _net().predict(df)


def test_pandas_single_nullable_column_with_missing_values_is_refused():
    """A single nullable column with NA is refused at the NA's place."""
    # pandas turns a single Int64 / Float64 column with NA into float64 with NaN: refused as NaN, at its place.
    pd = pytest.importorskip("pandas")
    net = numbanet.Network([1, 3, 1], activations=["tanh", "identity"], loss="mse", seed=0)
    for dtype in ("Int64", "Float64"):
        df = pd.DataFrame({"a": pd.array(np.arange(N), dtype=dtype)})
        df.loc[7, "a"] = pd.NA
        pattern = r"X contains (NaN or infinity|missing values) .*row 7, column 0: .*remove or impute"
        with pytest.raises(ValueError, match=pattern):
            net.predict(df)


def test_pandas_nullable_frame_without_missing_values_works():
    """Nullable columns without missing values train exactly like the float array."""
    pd = pytest.importorskip("pandas")
    X, Y, _ = random_classification(N, D, K, with_labels=True)
    df = _nullable_frame(pd, X)
    plain = df.astype(float).to_numpy()
    dfY = pd.DataFrame({k: pd.array(Y[:, k].astype(int), dtype="Int64") for k in range(K)})
    a, b = _net(), _net()
    ha = a.fit(df, dfY, epochs=3, batch_size=4, progress=False)
    hb = b.fit(plain, Y, epochs=3, batch_size=4, progress=False)
    assert ha.loss == hb.loss
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.predict(df), b.predict(plain))


@pytest.mark.parametrize(
    "value", [None, np.nan, float("nan"), np.float32("nan")], ids=["None", "np.nan", "float-nan", "float32-nan"]
)
def test_missing_values_in_object_arrays(value):
    """None and NaN in object arrays are reported as missing values."""
    X, _, _ = random_classification(N, D, K, with_labels=True)
    obj = X.astype(object)
    obj[3, 2] = value
    message = f"X contains missing values (1 of 48; first at row 3, column 2: {value!r})"
    with pytest.raises(ValueError, match=re.escape(message)):
        _net().predict(obj)


def test_object_arrays_of_non_numbers_are_still_non_numeric():
    """Text stays non-numeric and infinity stays non-finite."""
    X, _, _ = random_classification(N, D, K, with_labels=True)
    obj = X.astype(object)
    obj[1, 1] = "text"
    with pytest.raises(ValueError, match="X contains non-numeric values"):
        _net().predict(obj)
    obj = X.astype(object)
    obj[0, 0] = np.inf  # not missing: an infinity is refused as before
    with pytest.raises(ValueError, match=re.escape("X contains NaN or infinity (first at row 0, column 0")):
        _net().predict(obj)


def test_object_array_without_missing_values_works():
    """An object array of numbers is accepted."""
    X, _, _ = random_classification(N, D, K, with_labels=True)
    net = _net()
    np.testing.assert_array_equal(net.predict(X.astype(object)), net.predict(X))


# --- 4. gradcheck max_entries and nothing compared -------------------------------------------


@pytest.mark.parametrize("max_entries", [0, -1, -10, 2.0, 0.5, True, False, "3", np.float64(4)])
def test_gradcheck_refuses_bad_max_entries(max_entries):
    """max_entries of 0, negatives, non-integers and bools is refused, naming the value."""
    X, Y, _ = random_classification(N, D, K, with_labels=True)
    net = _net()
    before = net.params.tobytes()
    message = f"max_entries must be a positive integer or None; got {max_entries!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        numbanet.gradcheck(net, X, Y, max_entries=max_entries)
    assert net.params.tobytes() == before


@pytest.mark.parametrize("max_entries", [1, np.int64(3), np.int32(5), None])
def test_gradcheck_accepts_positive_integers_and_none(max_entries):
    """Positive Python and NumPy integers and None are accepted."""
    X, Y, _ = random_classification(N, D, K, with_labels=True)
    net = _net()
    r = numbanet.gradcheck(net, X, Y, max_entries=max_entries)
    assert r.passed, r.report
    assert r.n_checked == (net.n_params if max_entries is None else int(max_entries))


def _all_kinked():
    """[2, 1] relu net with all parameters 0: every ±eps probe flips the sign of the pre-activation."""
    net = numbanet.Network([2, 1], activations="relu", loss="mse", seed=0)
    net.params[...] = 0.0
    X = np.array([[1.0, 2.0], [0.5, 0.25]])
    Y = np.array([[1.0], [0.0]])
    return net, X, Y


def test_gradcheck_that_compared_nothing_does_not_pass():
    """When every entry straddles a kink nothing is compared, and the check does not pass."""
    net, X, Y = _all_kinked()
    r = numbanet.gradcheck(net, X, Y)
    assert r.n_checked == 0 and r.n_kink == net.n_params == 3
    assert not r.passed
    assert not r.failures and not r.worst
    assert math.isnan(r.max_rel_error) and math.isnan(r.mean_rel_error) and math.isnan(r.max_abs_error)
    assert r.report.startswith("gradcheck FAILED (nothing compared: all 3 probed entries straddle a ReLU kink)")
    assert "compared 0 of 3 entries: nothing was verified" in r.report
    assert "probe more entries" not in r.report  # every entry was probed
    assert "3 entries were not compared" in r.report
    assert "n_checked=0" in repr(r)


def test_gradcheck_that_compared_nothing_in_a_sample_suggests_more_entries():
    """A subsample that compared nothing suggests probing more entries."""
    net, X, Y = _all_kinked()
    r = numbanet.gradcheck(net, X, Y, max_entries=2)
    assert r.n_checked == 0 and r.n_kink == 2 and not r.passed
    assert "compared 0 of 2 entries" in r.report
    assert "probe more entries (max_entries)" in r.report


def test_gradcheck_away_from_the_kink_compares_every_entry():
    """The same network away from the kink passes with every entry compared."""
    net, X, Y = _all_kinked()
    net.biases[0][...] = 1.0  # away from the kink: every entry is compared
    r = numbanet.gradcheck(net, X, Y)
    assert r.passed and r.n_checked == 3 and r.n_kink == 0
    assert r.report.startswith("gradcheck PASSED")


# --- 5. schedules f(epoch) and f(epoch, base_lr) ----------------------------------------------


XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=np.float64)


def _xor_net():
    return numbanet.Network([2, 4, 1], activations="sigmoid", loss="mse", seed=0)


def test_two_argument_schedule_gets_the_base_learning_rate():
    """f(epoch, base_lr) gets the optimizer's rate; its rates land in history.lr."""
    net = _xor_net()
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return lr * 0.5**epoch

    history = net.fit(
        XOR_X, XOR_Y, epochs=4, batch_size=4, optimizer=numbanet.SGD(lr=0.8), lr_schedule=schedule, progress=False
    )
    assert history.lr == [0.8, 0.4, 0.2, 0.1]
    assert seen == [(0, 0.8), (1, 0.8), (2, 0.8), (3, 0.8)]
    # a second fit continues the epoch count
    history = net.fit(
        XOR_X, XOR_Y, epochs=2, batch_size=4, lr_schedule=lambda epoch, lr: lr / (1 + epoch), progress=False
    )
    assert history.epoch == [4, 5]
    assert history.lr == pytest.approx([0.8 / 5, 0.8 / 6], rel=0, abs=1e-15)


def test_two_argument_schedule_trains_like_the_equivalent_one_argument_schedule():
    """Both forms giving the same rates train identically."""
    a, b = _xor_net(), _xor_net()
    kw = dict(epochs=5, batch_size=2, optimizer=numbanet.SGD(lr=0.5), progress=False)
    ha = a.fit(XOR_X, XOR_Y, lr_schedule=lambda epoch, lr: lr * 0.9**epoch, **kw)
    kw["optimizer"] = numbanet.SGD(lr=0.5)
    hb = b.fit(XOR_X, XOR_Y, lr_schedule=lambda epoch: 0.5 * 0.9**epoch, **kw)
    assert ha.lr == hb.lr and ha.loss == hb.loss
    np.testing.assert_array_equal(a.params, b.params)


def test_one_argument_schedules_still_work():
    """f(epoch) is called with the epoch alone, as before."""
    net = _xor_net()
    history = net.fit(XOR_X, XOR_Y, epochs=3, batch_size=4, lr_schedule=lambda epoch: 0.1 * (epoch + 1), progress=False)
    assert history.lr == pytest.approx([0.1, 0.2, 0.3], rel=0, abs=1e-15)


class _Halving:
    def __call__(self, epoch, base_lr):
        return base_lr / 2**epoch


def _two(epoch, base_lr, floor=0.0):
    return max(base_lr / (epoch + 1), floor)


@pytest.mark.parametrize(
    "fn, expected",
    [
        (lambda epoch: 0.25, [0.25, 0.25]),
        (lambda epoch, lr: lr, [0.5, 0.5]),
        (lambda epoch, scale=2.0: 0.1 * scale, [0.2, 0.2]),  # 1 required, 1 optional: f(epoch)
        (_two, [0.5, 0.25]),
        (functools.partial(_two, floor=0.3), [0.5, 0.3]),
        (_Halving(), [0.5, 0.25]),
        (lambda *args: 0.1 * len(args), [0.1, 0.1]),  # no readable arity: f(epoch)
        (math.sqrt, [0.0, 1.0]),  # a builtin taking one argument
    ],
    ids=["one", "two", "one-with-default", "two-with-default", "partial", "callable-object", "varargs", "builtin"],
)
def test_schedule_arity_is_read_from_the_signature(fn, expected):
    """The number of required positional parameters picks the form."""
    net = _xor_net()
    history = net.fit(
        XOR_X, XOR_Y, epochs=2, batch_size=4, optimizer=numbanet.SGD(lr=0.5), lr_schedule=fn, progress=False
    )
    assert history.lr == pytest.approx(expected, rel=0, abs=1e-15)


def test_schedule_without_a_readable_signature_is_called_with_the_epoch(monkeypatch):
    """A callable whose signature cannot be read is called as f(epoch)."""
    import inspect

    def unreadable(fn):
        raise ValueError("no signature found")

    monkeypatch.setattr(inspect, "signature", unreadable)
    sched = as_schedule(lambda epoch, lr: 0.5)  # would need two, but cannot be read: called as f(epoch)
    assert sched._n_args == 1
    sched = as_schedule(lambda epoch: 0.1 * epoch)
    assert sched(3, 0.5) == pytest.approx(0.3)


@pytest.mark.parametrize(
    "fn, match",
    [
        (lambda: 0.1, "takes no positional arguments"),
        (lambda a, b, c: 0.1, "requires 3 positional arguments (a, b, c)"),
        (lambda epoch, lr, momentum, extra: 0.1, "requires 4 positional arguments"),
        (lambda epoch, *, scale: 0.1 * scale, "requires the keyword-only argument(s) scale"),
        (lambda **kw: 0.1, "takes no positional arguments"),
    ],
    ids=["zero", "three", "four", "keyword-only", "kwargs-only"],
)
def test_schedule_of_another_arity_is_refused_before_training(fn, match):
    """Other arities are refused by as_schedule, LambdaLR and fit, which changes nothing."""
    with pytest.raises(ValueError, match=re.escape(match)):
        as_schedule(fn)
    with pytest.raises(ValueError, match=re.escape("called as f(epoch) or f(epoch, base_lr)")):
        LambdaLR(fn)
    net = _xor_net()
    net.fit(XOR_X, XOR_Y, epochs=1, batch_size=4, progress=False)
    snap = _snapshot(net)
    rng_state = net._rng_state.copy()
    with pytest.raises(ValueError, match=re.escape(match)):
        net.fit(XOR_X, XOR_Y, epochs=3, batch_size=4, lr_schedule=fn, progress=False)
    assert _snapshot(net) == snap
    np.testing.assert_array_equal(net._rng_state, rng_state)


def test_non_callable_schedule_is_still_refused():
    """A number is not a schedule."""
    with pytest.raises(ValueError, match="must be callable; got 0.1"):
        as_schedule(0.1)


def test_schedule_docs_name_both_forms():
    """The module and LambdaLR docstrings document both forms."""
    import numbanet.schedules as schedules

    for doc in (schedules.__doc__, LambdaLR.__doc__):
        assert "f(epoch) -> lr" in doc and "f(epoch, base_lr) -> lr" in doc
