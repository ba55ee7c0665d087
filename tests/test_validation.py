"""Bad input gets a clear ValueError and changes nothing; odd but valid input works (docs/derivation.md, "Inputs").

For :class:`numbanet.Network` (``fit``, ``train_on_batch``, ``predict``, ``loss``,
``gradients``) and the scikit-learn estimators.  After every refused call the
parameters are bit-identical to before (and, for ``fit``, the optimizer state
and epoch count too).  Integer, Fortran-ordered, strided, read-only and list
inputs give exactly the results of the equivalent C-ordered float array, and
no input is ever modified.
"""

import warnings

import numpy as np
import pytest
from naive import random_classification

import numbanet

# ----------------------------------------------------------------- helpers

N, D, K = 12, 4, 3


def _trained_net(dtype=np.float64):
    X, Y = random_classification(N, D, K)
    net = numbanet.Network([D, 5, K], activations=["tanh", "softmax"], loss="cross_entropy", dtype=dtype, seed=0)
    net.fit(X, Y, epochs=2, batch_size=4, optimizer=numbanet.SGD(lr=0.1, momentum=0.9), progress=False)
    return net


def _snapshot(net):
    opt = net.optimizer
    return (net.params.copy(), opt.state.copy(), opt.t, net.epochs_trained, [W.copy() for W in net.weights])


def _assert_unchanged(net, snap):
    params, state, t, epochs, weights = snap
    assert net.params.tobytes() == params.tobytes()
    assert net.optimizer.state.tobytes() == state.tobytes()
    assert net.optimizer.t == t
    assert net.epochs_trained == epochs
    for W, W0 in zip(net.weights, weights):
        assert W.tobytes() == W0.tobytes()
        assert np.shares_memory(W, net.params)


def _with(arr, idx, value):
    out = np.array(arr, dtype=np.result_type(arr, np.asarray(value)))
    out[idx] = value
    return out


X0, Y0 = random_classification(N, D, K)

#: (case id, X, Y, message fragment): every one must be refused by fit, loss and gradients.
BAD_XY = [
    ("nan-in-X", _with(X0, (2, 1), np.nan), Y0, "X contains NaN or infinity (first at row 2, column 1"),
    ("inf-in-X", _with(X0, (0, 3), np.inf), Y0, "X contains NaN or infinity"),
    ("minus-inf-in-X", _with(X0, (5, 0), -np.inf), Y0, "X contains NaN or infinity"),
    ("nan-in-Y", X0, _with(Y0, (4, 2), np.nan), "Y contains NaN or infinity"),
    ("inf-in-Y", X0, _with(Y0, (1, 0), np.inf), "Y contains NaN or infinity"),
    ("rows-mismatch", X0, Y0[:-1], f"X has {N} samples but Y has {N - 1}"),
    ("X-too-narrow", X0[:, :3], Y0, "X has 3 features, but the network expects 4"),
    ("X-too-wide", np.hstack([X0, X0]), Y0, "X has 8 features, but the network expects 4"),
    ("Y-too-narrow", X0, Y0[:, :2], "Y has 2 outputs, but the network expects 3"),
    ("X-empty", X0[:0], Y0[:0], "X is empty: it has 0 samples"),
    ("Y-empty", X0, Y0[:0], "Y is empty"),
    ("X-no-columns", X0[:, :0], Y0, "X has 0 features"),
    ("X-strings", np.full((N, D), "1.5"), Y0, "X contains strings"),
    ("X-a-string", "not an array", Y0, "X is a string"),
    ("Y-strings", X0, np.full((N, K), "a"), "Y contains strings"),
    ("X-complex", X0 + 1j, Y0, "X contains complex numbers"),
    ("Y-complex", X0, Y0 + 0j, "Y contains complex numbers"),
    ("X-3d", X0[:, :, None], Y0, "X must be 2-D"),
    ("Y-3d", X0, Y0[:, :, None], "Y must be 2-D"),
    ("X-1d", X0[0], Y0, "X must be 2-D"),
    ("X-None", None, Y0, "X is None"),
    ("X-objects", np.array([[object()] * D] * N), Y0, "X contains non-numeric values"),
    ("X-dates", np.full((N, D), np.datetime64("2020-01-01")), Y0, "dates"),
    ("Y-outside-0-1", X0, 2 * Y0, "Y must lie in [0, 1] for loss 'cross_entropy'"),
    ("Y-zero-row", X0, _with(Y0, 6, 0.0), f"Y row 6 sums to 0 (1 row of {N} does); cross_entropy needs one-hot rows"),
    ("Y-labels", X0, Y0.argmax(axis=1), "Y looks like integer class labels; one-hot encode them (e.g. np.eye(3)"),
    ("Y-label-column", X0, Y0.argmax(axis=1)[:, None], "Y has 1 outputs, but the network expects 3; Y looks like"),
    ("X-missing", _with(X0.astype(object), (3, 2), None), Y0, "X contains missing values (1 of 48; first at row 3"),
]

#: The cases that are wrong in X alone (refused by predict too).
BAD_X = [case for case in BAD_XY if "X" in case[0].split("-")]


def _ids(cases):
    return [c[0] for c in cases]


# ---------------------------------------------------------- refused: Network


@pytest.mark.parametrize("case, X, Y, match", BAD_XY, ids=_ids(BAD_XY))
@pytest.mark.parametrize("method", ["fit", "train_on_batch", "loss", "gradients"])
def test_network_refuses_bad_x_or_y_and_changes_nothing(case, X, Y, match, method):
    net = _trained_net()
    snap = _snapshot(net)
    X_before = None if X is None or isinstance(X, str) else np.array(X, copy=True)
    call = {
        "fit": lambda: net.fit(X, Y, epochs=1, progress=False),
        "train_on_batch": lambda: net.train_on_batch(X, Y),
        "loss": lambda: net.loss(X, Y),
        "gradients": lambda: net.gradients(X, Y),
    }[method]
    with pytest.raises(ValueError, match=_re(match)):
        call()
    _assert_unchanged(net, snap)
    if X_before is not None:
        np.testing.assert_array_equal(X, X_before)


@pytest.mark.parametrize("case, X, Y, match", BAD_X, ids=_ids(BAD_X))
@pytest.mark.parametrize("method", ["predict", "forward"])
def test_network_predict_refuses_bad_x(case, X, Y, match, method):
    net = _trained_net()
    snap = _snapshot(net)
    with pytest.raises(ValueError, match=_re(match)):
        getattr(net, method)(X)
    _assert_unchanged(net, snap)


def test_float32_network_refuses_values_too_large_for_float32():
    net = _trained_net(np.float32)
    snap = _snapshot(net)
    with pytest.raises(ValueError, match="a value too large for float32"):
        net.predict(_with(X0, (1, 1), 1e39))
    with pytest.raises(ValueError, match="a value too large for float32"):
        net.fit(_with(X0, (1, 1), 1e39), Y0, progress=False)
    for method in ("loss", "gradients"):  # as predict and fit (issue 22 found predict returning NaN rows)
        with pytest.raises(ValueError, match="a value too large for float32"):
            getattr(net, method)(_with(X0, (2, 0), -1e39), Y0)
    _assert_unchanged(net, snap)


def _re(text):
    import re

    return re.escape(text)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), "batch_size must be a positive integer; got 0"),
        (dict(batch_size=-4), "batch_size must be a positive integer; got -4"),
        (dict(batch_size=2.5), "batch_size must be a positive integer; got 2.5"),
        (dict(batch_size=True), "batch_size must be a positive integer; got True"),
        (dict(batch_size="32"), "batch_size must be a positive integer; got '32'"),
        (dict(epochs=0), "epochs must be a positive integer; got 0"),
        (dict(epochs=-1), "epochs must be a positive integer; got -1"),
        (dict(validation_split=1.0), "validation_split must be < 1"),
        (dict(validation_split=-0.5), "validation_split must be a finite number >= 0"),
        (dict(validation_split=0.01), "leaves 0 for validation"),
        (dict(validation_data=(X0[:, :3], Y0)), "validation X has 3 features, but the network expects 4"),
        (dict(validation_data=(X0, Y0[:5])), "validation X has 12 samples but validation Y has 5"),
        (dict(validation_data=(_with(X0, (0, 0), np.nan), Y0)), "validation X contains NaN"),
        (dict(validation_data=X0), "validation_data must be a pair"),
        (dict(validation_data=(X0, Y0), validation_split=0.2), "either validation_data or validation_split"),
        (dict(sample_weight=-np.ones(N)), "sample_weight must be non-negative"),
        (dict(sample_weight=np.ones(N - 1)), f"sample_weight has {N - 1} entries but there are {N} samples"),
        (dict(sample_weight=_with(np.ones(N), 3, np.nan)), "sample_weight contains NaN"),
        (dict(sample_weight=np.zeros(N)), "sample_weight sums to 0"),
        (dict(sample_weight=np.ones((N, 2))), "sample_weight must be 1-D"),
        (dict(optimizer="adam"), "optimizer must be a numbanet optimizer"),
        (dict(optimizer=numbanet.SGD(lr=0.1, momentum=0.5, nesterov=True)), None),  # valid: control case
        (dict(clip_norm=-1.0), "clip_norm must be a finite number >= 0"),
        (dict(clip_norm=0), "clip_norm must be > 0 (or None for no clipping); got 0"),
        (dict(clip_norm=0.0), "clip_norm must be > 0"),
        (dict(callbacks=[42]), "a callback must be"),
        (dict(early_stopping=0), "early_stopping must be a positive integer"),
    ],
)
def test_network_fit_refuses_bad_arguments_and_changes_nothing(kwargs, match):
    net = _trained_net()
    snap = _snapshot(net)
    if match is None:
        net.fit(X0, Y0, progress=False, **kwargs)
        assert net.params.tobytes() != snap[0].tobytes()
        return
    with pytest.raises(ValueError, match=_re(match)):
        net.fit(X0, Y0, progress=False, **kwargs)
    _assert_unchanged(net, snap)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(activations="swish"), "unknown activation 'swish' for layer 1"),
        (dict(activations=["relu", "softmaxx"]), "unknown activation 'softmaxx' for layer 2"),
        (dict(activations=["softmax", "softmax"]), "softmax is only allowed on the output layer"),
        (dict(activations=["relu"]), "activations has 1 names but the network has 2 weighted layers"),
        (dict(loss="hinge"), "unknown loss 'hinge'"),
        (dict(loss="cross_entropy"), "needs a softmax output layer"),
        (dict(loss="binary_cross_entropy", activations="relu"), "needs a sigmoid output layer"),
        (dict(sizes=[4]), "sizes needs at least 2 entries"),
        (dict(sizes=[4, 0, 3]), "sizes[1] is 0"),
        (dict(sizes=[4, 2.5, 3]), "sizes[1] is 2.5"),
        (dict(sizes="4,3"), "sizes must be a list of layer widths"),
        (dict(dtype=np.int32), "dtype must be float32 or float64"),
        (dict(dtype=np.float16), "dtype must be float32 or float64"),
        (dict(seed=1.5), "seed must be an integer or None"),
        (dict(l2=-1.0), "l2 must be a finite number >= 0"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_network_constructor_refuses_bad_architecture(kwargs, match):
    kwargs = {"sizes": [4, 5, 3], **kwargs}
    with pytest.raises(ValueError, match=_re(match)):
        numbanet.Network(**kwargs)


# ------------------------------------------------------- accepted: Network


def _variants(A):
    """Ways to write the same matrix ``A`` (a float64 C array of small integers)."""
    big = np.zeros((2 * A.shape[0], 2 * A.shape[1]))
    big[::2, ::2] = A
    ro = A.copy()
    ro.flags.writeable = False
    return {
        "int64": A.astype(np.int64),
        "int8": A.astype(np.int8),
        "fortran": np.asfortranarray(A),
        "strided": big[::2, ::2],
        "read-only": ro,
        "list": A.tolist(),
        "tuple-of-lists": tuple(map(list, A)),
        "float32": A.astype(np.float32),
        "bool-if-binary": A.astype(bool) if set(np.unique(A)) <= {0, 1} else A,
    }


def _int_data():
    rng = np.random.default_rng(2)
    X = rng.integers(-3, 4, (N, D)).astype(np.float64)
    Y = np.eye(K)[rng.integers(0, K, N)]
    return X, Y


VARIANTS = list(_variants(_int_data()[0]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_network_accepts_equivalent_inputs(variant):
    X, Y = _int_data()
    Xv, Yv = _variants(X)[variant], _variants(Y)[variant]
    before = [np.array(v, copy=True) for v in (Xv, Yv)]
    net = _trained_net()
    np.testing.assert_array_equal(net.predict(Xv), net.predict(X))
    assert net.loss(Xv, Yv) == net.loss(X, Y)
    for got, want in zip(net.gradients(Xv, Yv), net.gradients(X, Y)):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    a, b = _trained_net(), _trained_net()
    ha = a.fit(Xv, Yv, epochs=3, batch_size=5, progress=False)
    hb = b.fit(X, Y, epochs=3, batch_size=5, progress=False)
    assert ha.loss == hb.loss
    np.testing.assert_array_equal(a.params, b.params)
    a.train_on_batch(Xv, Yv)
    b.train_on_batch(X, Y)
    np.testing.assert_array_equal(a.params, b.params)
    for v, v0 in zip((Xv, Yv), before):
        np.testing.assert_array_equal(np.asarray(v), v0)


def test_network_accepts_1d_targets_for_one_output():
    X, _ = _int_data()
    y = (X[:, 0] > 0).astype(float)
    net = numbanet.Network([D, 3, 1], activations=["relu", "sigmoid"], loss="binary_cross_entropy", seed=0)
    assert net.loss(X, y) == net.loss(X, y[:, None])
    assert net.loss(X, list(y.astype(int))) == net.loss(X, y[:, None])


def test_network_never_modifies_its_inputs():
    X, Y = random_classification(N, D, K)
    sw = np.linspace(0.5, 2.0, N)
    Xv, Yv = X[:6], Y[:6]
    copies = [a.copy() for a in (X, Y, sw, Xv, Yv)]
    net = _trained_net()
    net.fit(X, Y, epochs=3, batch_size=5, sample_weight=sw, validation_data=(Xv, Yv), progress=False)
    net.fit(X, Y, epochs=2, validation_split=0.25, progress=False)
    net.train_on_batch(X, Y, sample_weight=sw)
    net.predict(X)
    net.forward(X)
    net.loss(X, Y, sample_weight=sw)
    net.gradients(X, Y, sample_weight=sw)
    numbanet.gradcheck(net, X[:3], Y[:3])
    for a, a0 in zip((X, Y, sw, Xv, Yv), copies):
        assert a.tobytes() == a0.tobytes()


# ----------------------------------------------------------- the estimators

# These need scikit-learn; the Network tests above run without it.
try:
    from sklearn.exceptions import ConvergenceWarning
except ImportError:
    ConvergenceWarning = None
needs_sklearn = pytest.mark.skipif(ConvergenceWarning is None, reason="needs scikit-learn")

from numbanet import MLPClassifier, MLPRegressor  # noqa: E402  (importable without scikit-learn)

KW = dict(hidden_layer_sizes=(5,), max_iter=5, learning_rate_init=0.01, random_state=0, solver="sgd")


def _fitted(kind):
    X, Y = random_classification(N, D, K)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if kind == "classifier":
            est = MLPClassifier(**KW).fit(X, Y.argmax(axis=1))
        else:
            est = MLPRegressor(**KW).fit(X, X @ np.arange(1.0, D + 1))
        est.partial_fit(X, est.predict(X))  # so that an optimizer state exists
    return est


def _fitted_state(est):
    """Every attribute fit sets (not the constructor parameters), as text."""
    skip = {"net_", "_optimizer", *est.get_params()}
    return repr({k: v for k, v in est.__dict__.items() if k not in skip})


def _est_snapshot(est):
    opt = est._optimizer
    return (est.net_.params.copy(), est.net_.l2, opt.state.copy(), opt.t, _fitted_state(est), est.net_)


def _assert_est_unchanged(est, snap):
    params, l2, opt_state, t, state, net = snap
    assert est.net_ is net
    assert est.net_.params.tobytes() == params.tobytes()
    assert est.net_.l2 == l2
    assert est._optimizer.state.tobytes() == opt_state.tobytes() and est._optimizer.t == t
    assert _fitted_state(est) == state


def _targets(kind, n=N):
    return (np.arange(n) % K) if kind == "classifier" else np.linspace(-1, 1, n)


#: (case id, X, message fragment): refused by fit, partial_fit, predict and score.
BAD_EST_X = [
    ("nan-in-X", _with(X0, (2, 1), np.nan), "Input X contains NaN"),
    ("inf-in-X", _with(X0, (0, 0), np.inf), "Input X contains infinity"),
    ("X-empty", X0[:0], "0 sample(s)"),
    ("X-no-columns", X0[:, :0], "0 feature(s)"),
    ("X-strings", np.full((N, D), "a"), "could not convert string to float"),
    ("X-complex", X0 + 1j, "Complex data not supported"),
    ("X-3d", X0[:, :, None], "Found array with dim 3"),
    ("X-1d", X0[:, 0], "Expected 2D array, got 1D array instead"),
    ("X-too-narrow", X0[:, :3], "X has 3 features, but {name} is expecting 4 features as input"),
]
#: Refused by fit, partial_fit and score only.
BAD_EST_XY = [("rows-mismatch", X0[:-1], "inconsistent numbers of samples")]


@needs_sklearn
@pytest.mark.parametrize(
    "case, X, match, method",
    [(*c, m) for c in BAD_EST_X for m in ("fit-warm", "partial_fit", "predict", "score")]
    + [(*c, m) for c in BAD_EST_XY for m in ("fit-warm", "fit-cold", "partial_fit", "score")],
    ids=[f"{c[0]}-{m}" for c in BAD_EST_X for m in ("fit-warm", "partial_fit", "predict", "score")]
    + [f"{c[0]}-{m}" for c in BAD_EST_XY for m in ("fit-warm", "fit-cold", "partial_fit", "score")],
)
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_estimators_refuse_bad_x_and_change_nothing(kind, case, X, match, method):
    est = _fitted(kind)
    est.set_params(warm_start=method == "fit-warm")
    snap = _est_snapshot(est)
    y = _targets(kind, len(X0))
    call = {
        "fit-cold": lambda: est.fit(X, y),
        "fit-warm": lambda: est.fit(X, y),
        "partial_fit": lambda: est.partial_fit(X, y),
        "predict": lambda: est.predict(X),
        "score": lambda: est.score(X, y),
    }[method]
    with pytest.raises(ValueError, match=_re(match.format(name=type(est).__name__))):
        call()
    _assert_est_unchanged(est, snap)


ALL_FITS = ("fit-warm", "fit-cold", "partial_fit")

#: (kind, y, message fragment, the fitting methods that must refuse it)
BAD_Y = [
    ("regressor", _with(np.linspace(-1, 1, N), 3, np.nan), "Input y contains NaN", ALL_FITS),
    ("regressor", _with(np.linspace(-1, 1, N), 3, np.inf), "Input y contains infinity", ALL_FITS),
    ("regressor", np.full(N, "a"), "MLPRegressor needs numeric targets; y has dtype <U1", ALL_FITS),
    ("regressor", np.linspace(-1, 1, N)[:-2], "inconsistent numbers of samples", ALL_FITS),
    ("regressor", np.zeros((N, 2, 2)), "Found array with dim 3", ALL_FITS),
    ("regressor", np.zeros((N, 2)), "y has 2 outputs, but MLPRegressor was fitted with 1", ("fit-warm", "partial_fit")),
    ("classifier", _with(np.arange(N) % K * 1.0, 3, np.nan), "Input y contains NaN", ALL_FITS),
    ("classifier", np.linspace(0, 1, N), "Unknown label type", ALL_FITS),
    ("classifier", np.zeros((N, 2, 2)), "Found array with dim 3", ALL_FITS),
    ("classifier", np.arange(N) % 2 * 3, "warm_start can only be used where `y` has the same classes", ("fit-warm",)),
    ("classifier", np.arange(N) % K + 5, "not in classes_", ("partial_fit",)),
    ("classifier", np.zeros(N), "at least 2 classes; got 1 class", ("fit-cold",)),
]


@needs_sklearn
@pytest.mark.parametrize(
    "kind, y, match, method",
    [(kind, y, match, m) for kind, y, match, methods in BAD_Y for m in methods],
    ids=[f"{kind}-{m}-{match[:24]}" for kind, y, match, methods in BAD_Y for m in methods],
)
def test_estimators_refuse_bad_y_and_change_nothing(kind, y, match, method):
    est = _fitted(kind)
    est.set_params(warm_start=method == "fit-warm")
    snap = _est_snapshot(est)
    call = est.partial_fit if method == "partial_fit" else est.fit
    with pytest.raises(ValueError, match=_re(match)):
        call(X0, y)
    _assert_est_unchanged(est, snap)


@needs_sklearn
@pytest.mark.parametrize(
    "params, match",
    [
        (dict(batch_size=0), "batch_size must be 'auto' or a positive integer; got 0"),
        (dict(batch_size=-1), "batch_size must be 'auto' or a positive integer; got -1"),
        (dict(activation="swish"), "unknown activation 'swish'"),
        (dict(activations=["relu", "tanh"]), "activations has 2 names"),
        (dict(loss="hinge"), "unknown loss 'hinge'"),
        (dict(hidden_layer_sizes=(7,)), "refit with warm_start=False"),
    ],
)
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("method", ["fit-cold", "fit-warm", "partial_fit"])
def test_estimators_refuse_bad_parameters_and_change_nothing(kind, params, match, method):
    if method == "fit-cold" and "warm_start" in match:
        return  # a cold fit may change the architecture: nothing to refuse
    est = _fitted(kind)
    snap = _est_snapshot(est)
    est.set_params(warm_start=method == "fit-warm", **params)
    call = est.partial_fit if method == "partial_fit" else est.fit
    with pytest.raises(ValueError, match=_re(match)):
        call(X0, _targets(kind))
    est.set_params(warm_start=False)
    _assert_est_unchanged(est, snap)


@needs_sklearn
@pytest.mark.parametrize(
    "sample_weight, match",
    [
        (-np.ones(N), "sample_weight must be non-negative"),
        (np.ones(N - 1), f"sample_weight has {N - 1} entries but there are {N} samples"),
        (_with(np.ones(N), 0, np.nan), "sample_weight contains NaN"),
        (np.zeros(N), "sample_weight sums to 0"),
    ],
)
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("method", ALL_FITS)
def test_estimators_refuse_bad_sample_weight_and_change_nothing(kind, sample_weight, match, method):
    est = _fitted(kind)
    est.set_params(warm_start=method == "fit-warm")
    snap = _est_snapshot(est)
    call = est.partial_fit if method == "partial_fit" else est.fit
    with pytest.raises(ValueError, match=_re(match)):
        call(X0, _targets(kind), sample_weight=sample_weight)
    _assert_est_unchanged(est, snap)


@needs_sklearn
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_estimators_accept_equivalent_inputs(kind, variant):
    X, _ = _int_data()
    Xv = _variants(X)[variant]
    y = _targets(kind)
    before = np.array(Xv, copy=True)
    make = MLPClassifier if kind == "classifier" else MLPRegressor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = make(**KW).fit(Xv, y)
        b = make(**KW).fit(X.astype(np.asarray(Xv).dtype if variant == "float32" else np.float64), y)
    np.testing.assert_array_equal(a.net_.params, b.net_.params)
    np.testing.assert_array_equal(a.predict(Xv), b.predict(X))
    np.testing.assert_array_equal(np.asarray(Xv), before)


@needs_sklearn
def test_estimators_never_modify_their_inputs():
    X, Y = random_classification(N, D, K)
    y = Y.argmax(axis=1)
    yr = X @ np.arange(1.0, D + 1)
    sw = np.linspace(0.5, 2.0, N)
    copies = [a.copy() for a in (X, y, yr, sw)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(**KW).fit(X, y, sample_weight=sw)
        clf.partial_fit(X, y, sample_weight=sw)
        clf.predict_proba(X)
        clf.score(X, y, sample_weight=sw)
        reg = MLPRegressor(early_stopping=True, validation_fraction=0.25, **KW).fit(X, yr, sample_weight=sw)
        reg.predict(X)
    for a, a0 in zip((X, y, yr, sw), copies):
        assert a.tobytes() == a0.tobytes()


# ------------------------------------- NaN in X found by the training kernel


def _fit_state(net):
    return (
        net.params.tobytes(),
        net.optimizer,
        None if net.optimizer is None else net.optimizer.state.tobytes(),
        None if net.optimizer is None else net.optimizer.t,
        net.history,
        net._rng_state.tobytes(),
        net.epochs_trained,
    )


@pytest.mark.parametrize("rows", [(0,), (N - 1,), (9, 3)], ids=["first-row", "last-row", "two-rows"])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("fresh_optimizer", [False, True])
def test_fit_refuses_x_the_kernel_finds_nonfinite_and_changes_nothing(rows, shuffle, fresh_optimizer):
    # fit does not scan X up front: its kernel checks each row as it gathers it, restores the
    # epoch's start, and fit puts back the optimizer, the history and the generator.  The refusal
    # is the up-front check's, naming the first bad value in row order whatever the kernel met first.
    net = _trained_net()
    net.dropout = 0.2  # the generator also draws dropout masks
    before = _fit_state(net)
    X = X0.copy()
    for r in rows:
        X[r, 1] = np.nan
    opt = numbanet.Adam(lr=0.01) if fresh_optimizer else None
    first = min(rows)
    with pytest.raises(ValueError, match=_re(f"X contains NaN or infinity (first at row {first}, column 1")):
        net.fit(X, Y0, epochs=3, batch_size=2, shuffle=shuffle, optimizer=opt, progress=False)
    after = _fit_state(net)
    assert after[0] == before[0] and after[2:4] == before[2:4] and after[5:] == before[5:]
    assert after[1] is before[1] and after[4] is before[4]
    # Nothing of the refused call survives: training on from here equals training a twin.
    twin = _trained_net()
    twin.dropout = 0.2
    for n in (net, twin):
        n.fit(X0, Y0, epochs=2, batch_size=2, shuffle=shuffle, progress=False)
    assert net.params.tobytes() == twin.params.tobytes()
    assert net.history.loss == twin.history.loss


def test_fit_checks_x_only_once_per_call(monkeypatch):
    # The up-front scan is skipped when the kernel will see every row...
    import numbanet._validation as validation

    calls = []
    real = validation.first_nonfinite_row
    monkeypatch.setattr(validation, "first_nonfinite_row", lambda A: calls.append(A.shape) or real(A))
    net = _trained_net()
    net.fit(X0, Y0, epochs=2, batch_size=4, progress=False)
    assert (N, D) not in calls
    # ...and done when some rows are not trained on (a validation split), where the kernel would
    # never see a NaN in the held-out rows.
    X = _with(X0, (5, 2), np.inf)
    snap = _snapshot(net)
    for split in (0.25, 0.5):
        with pytest.raises(ValueError, match=_re("X contains NaN or infinity (first at row 5, column 2")):
            net.fit(X, Y0, epochs=1, validation_split=split, progress=False)
    _assert_unchanged(net, snap)
    assert (N, D) in calls
