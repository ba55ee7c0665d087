"""Sparse input trained as sparse: the kernels against NumPy twins, and every result equal to the dense one.

In float64 a sparse fit, prediction, loss and gradient equal the dense ones
to 1e-12 (they differ only in the order of the first layer's sums); X is
never densified (a matrix whose dense copy would take gigabytes trains in
megabytes).
"""

import copy
import tracemalloc
import warnings

import numpy as np
import pytest

import numbanet
from numbanet import _csr
from numbanet.kernels import sparse as ks
from tests.naive import np_first_product, np_first_scatter

sp = pytest.importorskip("scipy.sparse")

TOL = 1e-12
FORMATS = ["csr_matrix", "csr_array", "csc_matrix", "csc_array"]


def _sparse(n=60, d=45, density=0.1, seed=0, fmt="csr_matrix"):
    X = sp.random(n, d, density=density, format="csr", random_state=seed, dtype=np.float64)
    X.data -= 0.5
    X = X.tolil()
    X[3, :] = 0.0  # an empty row
    return getattr(sp, fmt)(X.tocsr())


def _onehot(n, k=3, seed=1):
    return np.eye(k)[np.random.default_rng(seed).integers(0, k, n)]


def _close(a, b, tol=TOL):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# --------------------------------------------------------------------------- kernels


def _csr_with_duplicates(seed=0):
    """Return a CSR matrix's arrays with unsorted and duplicate column indices, and an empty row."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 6, size=9)
    counts[4] = 0
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = rng.integers(0, 7, size=indptr[-1]).astype(np.int64)
    data = rng.normal(size=indptr[-1])
    return data, indices, indptr


def _column_form(x, rows, batch, n_out=5):
    spec = numbanet.Network([7, n_out], "identity")._spec
    xb = ks.column_buffers(x, spec, batch)
    ks.batch_columns(xb, rows)
    return xb


def test_batch_columns_sorts_the_batch_by_column():
    data, indices, indptr = _csr_with_duplicates()
    rows = np.array([4, 0, 8, 2, 2], dtype=np.int64)
    xb = _column_form((data, indices, indptr), rows, 5)
    _, _, _, colcount, cols, cptr, erow, evals, meta, _ = xb
    nc = meta[0]
    assert not colcount.any()  # left as it was found
    want = sorted({int(j) for r in rows for j in indices[indptr[r] : indptr[r + 1]]})
    assert cols[:nc].tolist() == want
    spans = [(i, k) for i, r in enumerate(rows) for k in range(indptr[r], indptr[r + 1])]
    entries = [(int(indices[k]), i, float(data[k])) for i, k in spans]
    for t in range(nc):  # each column's entries: (row in batch, value), in stored order
        got = [(int(erow[p]), float(evals[p])) for p in range(cptr[t], cptr[t + 1])]
        assert got == [(i, v) for j, i, v in entries if j == cols[t]]
    assert len(evals) >= cptr[nc] and len(evals) <= np.sort(np.diff(indptr))[-5:].sum()


def test_first_product_matches_numpy():
    data, indices, indptr = _csr_with_duplicates()
    W = np.random.default_rng(1).normal(size=(5, 7))
    rows = np.array([4, 0, 8, 2, 2], dtype=np.int64)
    out = np.full((5, 5), np.nan)
    ks.first_product(_column_form((data, indices, indptr), rows, 5), W, out)
    _close(out, np_first_product(data, indices, indptr, rows, W))


@pytest.mark.parametrize("alpha", [1.0, -0.3])
def test_first_scatter_matches_numpy(alpha):
    data, indices, indptr = _csr_with_duplicates(2)
    rows = np.array([1, 4, 7, 3], dtype=np.int64)
    delta = np.random.default_rng(3).normal(size=(4, 5))
    M0 = np.random.default_rng(4).normal(size=(5, 7))
    M = M0.copy()
    ks.first_scatter(delta, _column_form((data, indices, indptr), rows, 6), M, alpha)
    _close(M, M0 + alpha * np_first_scatter(delta, data, indices, indptr, rows, 7))
    touched = np.zeros(7, bool)
    touched[[j for r in rows for j in indices[indptr[r] : indptr[r + 1]]]] = True
    np.testing.assert_array_equal(M[:, ~touched], M0[:, ~touched])  # other columns untouched, bit for bit


# --------------------------------------------------------------------------- Network


def _net(sizes=(45, 8, 6, 3), acts=("relu", "tanh", "softmax"), loss="cross_entropy", **kw):
    net = numbanet.Network(list(sizes), list(acts), loss, seed=0, **kw)
    for b in net.biases:
        b[...] = np.random.default_rng(5).normal(scale=0.2, size=b.shape)
    return net


NETS = [
    ((45, 8, 6, 3), ("relu", "tanh", "softmax"), "cross_entropy"),
    ((45, 3), ("softmax",), "cross_entropy"),  # the first layer is the output layer
    ((45, 5, 2), ("gelu", "identity"), "mse"),  # a first layer that keeps z
    ((45, 4, 1), ("tanh", "exp"), "poisson"),
]


def _targets(loss, n, k):
    if loss == "cross_entropy":
        return _onehot(n, k)
    if loss == "poisson":
        return np.random.default_rng(2).poisson(1.0, size=(n, k)).astype(float)
    return np.random.default_rng(2).normal(size=(n, k))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("sizes", "acts", "loss"), NETS)
def test_predict_loss_gradients_equal_dense(sizes, acts, loss, fmt):
    X = _sparse(fmt=fmt)
    Xd = X.toarray()
    Y = _targets(loss, X.shape[0], sizes[-1])
    sw = np.random.default_rng(3).uniform(0, 2, X.shape[0])
    net = _net(sizes, acts, loss, l2=0.05)
    _close(net.predict(X), net.predict(Xd))
    assert net.loss(X, Y, sw) == pytest.approx(net.loss(Xd, Y, sw), rel=TOL, abs=TOL)
    (dW, db), (dWd, dbd) = net.gradients(X, Y, sw), net.gradients(Xd, Y, sw)
    for got, want in zip(dW + db, dWd + dbd):
        _close(got, want)


FITS = [
    dict(optimizer=numbanet.SGD(lr=0.1), l2=0.0),  # the first layer's step folded into the backward pass
    dict(optimizer=numbanet.SGD(lr=0.05, momentum=0.9, nesterov=True), clip_norm=1.0, l2=0.01),
    dict(optimizer=numbanet.Adam(lr=0.01), validation_split=0.25, shuffle=True, l2=0.01),
    dict(optimizer=numbanet.Adam(lr=0.01), shuffle=False, early_stopping=2, validation_split=0.2, l2=0.0),
]


@pytest.mark.parametrize("options", FITS, ids=["sgd", "momentum-clip", "adam-split", "adam-early"])
@pytest.mark.parametrize(("sizes", "acts", "loss"), NETS[:2] + NETS[3:])
def test_fit_gives_the_dense_weights(sizes, acts, loss, options):
    X = _sparse()
    Y = _targets(loss, X.shape[0], sizes[-1])
    rest = dict(options)
    opt, l2 = rest.pop("optimizer"), rest.pop("l2")
    sparse_net = _net(sizes, acts, loss, l2=l2, dropout=0.2 if len(sizes) > 2 else 0.0)
    dense_net = sparse_net.copy()
    h1 = sparse_net.fit(X, Y, epochs=4, batch_size=7, optimizer=copy.deepcopy(opt), progress=False, **rest)
    h2 = dense_net.fit(X.toarray(), Y, epochs=4, batch_size=7, optimizer=copy.deepcopy(opt), progress=False, **rest)
    _close(sparse_net.params, dense_net.params)
    _close(h1.loss, h2.loss)
    _close(h1.val_loss, h2.val_loss)


def test_validation_data_may_be_sparse():
    X, Y = _sparse(), _onehot(60)
    net, dense = _net(), _net()
    net.fit(X[:40], Y[:40], epochs=2, validation_data=(X[40:], Y[40:]), progress=False)
    dense.fit(X[:40].toarray(), Y[:40], epochs=2, validation_data=(X[40:].toarray(), Y[40:]), progress=False)
    _close(net.history.val_loss, dense.history.val_loss)
    _close(net.params, dense.params)


def test_an_interrupted_sparse_fit_finishes_its_epoch():
    from numbanet import engine

    X, Y = _sparse(), _onehot(60)
    whole, parts = _net(), _net()
    whole.fit(X, Y, epochs=2, batch_size=8, optimizer=numbanet.Adam(lr=0.01), progress=False)
    opt = numbanet.Adam(lr=0.01)
    engine._INTERRUPT_AFTER_STEPS = 3
    try:
        with pytest.raises(KeyboardInterrupt):
            parts.fit(X, Y, epochs=2, batch_size=8, optimizer=opt, progress=False)
    finally:
        engine._INTERRUPT_AFTER_STEPS = None
    assert parts._pending is not None
    parts.fit(X, Y, epochs=2, batch_size=8, optimizer=opt, progress=False)
    _close(parts.params, whole.params)


def test_float32():
    X = _sparse()
    Y = _onehot(60)
    net = _net().astype(np.float32)
    dense = net.copy()
    np.testing.assert_allclose(net.predict(X), dense.predict(X.toarray()), rtol=1e-5, atol=1e-6)
    net.fit(X, Y, epochs=2, optimizer=numbanet.Adam(lr=0.01), progress=False)
    dense.fit(X.toarray().astype(np.float32), Y, epochs=2, optimizer=numbanet.Adam(lr=0.01), progress=False)
    assert net.params.dtype == np.float32
    np.testing.assert_allclose(net.params, dense.params, rtol=1e-4, atol=1e-5)


def test_refusals_name_the_problem_and_change_nothing():
    net = _net()
    before = net.params.copy()
    X = _sparse()
    with pytest.raises(ValueError, match="X has 44 features, but the network expects 45"):
        net.fit(X[:, :44], _onehot(60))
    bad = X.copy()
    bad.data[5] = np.nan
    row = int(np.searchsorted(bad.indptr, 5, side="right") - 1)
    with pytest.raises(ValueError, match=f"NaN or infinity \\(first at row {row}, column {bad.indices[5]}"):
        net.fit(bad, _onehot(60))
    with pytest.raises(ValueError, match="needs real numbers"):
        net.predict(X.astype(np.complex128))
    with pytest.raises(ValueError, match="X has 60 samples but Y has 59"):
        net.fit(X, _onehot(59))
    with pytest.raises(ValueError, match="forward takes a dense X"):
        net.forward(X)
    np.testing.assert_array_equal(net.params, before)


def test_csr_rows_take_and_toarray():
    X = _sparse()
    rows = _csr.as_csr(X, "X", np.float64)
    idx = np.array([5, 3, 0, 59])
    np.testing.assert_array_equal(rows.take(idx).toarray(), X.toarray()[idx])
    assert rows.take(np.array([], dtype=np.int64)).shape == (0, 45)
    coo = _csr.as_csr(X.tocoo(), "X", np.float32)  # other formats: converted to CSR once
    np.testing.assert_array_equal(coo.toarray(), X.toarray().astype(np.float32))
    assert not rows.data.flags.writeable and rows.indices.dtype == np.int64


@pytest.mark.requires_jit  # without the JIT (.ci/coverage) its loops over 4 million parameters run as Python
def test_never_densified():
    """A 300 x 2 000 000 matrix (4.8 GB dense) trains and predicts in a few parameter vectors' worth of memory."""
    n, d = 300, 2_000_000
    rng = np.random.default_rng(0)
    per_row = 40
    indices = rng.integers(0, d, size=n * per_row)
    X = sp.csr_matrix((rng.uniform(size=n * per_row), indices, np.arange(0, n * per_row + 1, per_row)), shape=(n, d))
    Y = _onehot(n, 2)
    net = numbanet.Network([d, 2], "softmax", "cross_entropy", seed=0)
    net.fit(X[:8], Y[:8], epochs=1, progress=False)  # compile outside the measurement
    tracemalloc.start()
    try:
        net.fit(X, Y, epochs=2, batch_size=50, progress=False)
        net.predict(X)
        net.loss(X, Y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    dense = n * d * 8
    # the fit's own vectors of n_params (gradient buffer, start-of-epoch backup, ...), the CSR copy, little else
    assert peak < 5 * net.params.nbytes + 10 * X.data.nbytes + 2**21, (peak, dense)
    assert peak < dense / 25


# --------------------------------------------------------------------------- estimators


def _fit(est, X, y):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


@pytest.mark.parametrize("fmt", ["csr_matrix", "csc_array"])
def test_classifier_sparse_equals_dense(fmt):
    pytest.importorskip("sklearn")
    X = _sparse(fmt=fmt)
    y = np.random.default_rng(0).integers(0, 3, X.shape[0])
    kw = dict(hidden_layer_sizes=(7,), max_iter=5, random_state=0, early_stopping=True, n_iter_no_change=50)
    a = _fit(numbanet.MLPClassifier(**kw), X, y)
    b = _fit(numbanet.MLPClassifier(**kw), X.toarray(), y)
    _close(a.net_.params, b.net_.params)
    _close(a.predict_proba(X), b.predict_proba(X.toarray()))
    np.testing.assert_array_equal(a.predict(X), b.predict(X.toarray()))
    assert a.score(X, y) == b.score(X.toarray(), y)
    a.set_params(early_stopping=False).partial_fit(X, y)
    b.set_params(early_stopping=False).partial_fit(X.toarray(), y)
    _close(a.net_.params, b.net_.params)
    assert a.__sklearn_tags__().input_tags.sparse


def test_regressor_sparse_equals_dense():
    pytest.importorskip("sklearn")
    X = _sparse(fmt="csr_array")
    y = np.random.default_rng(0).normal(size=X.shape[0])
    kw = dict(hidden_layer_sizes=(6,), max_iter=4, random_state=0, solver="sgd")
    a = _fit(numbanet.MLPRegressor(**kw), X, y)
    b = _fit(numbanet.MLPRegressor(**kw), X.toarray(), y)
    _close(a.predict(X), b.predict(X.toarray()))
    assert a.score(X, y) == pytest.approx(b.score(X.toarray(), y), rel=TOL)


def test_tfidf_pipeline():
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    topics = [words[:100], words[100:200], words[200:]]
    y = rng.integers(0, 3, 240)
    docs = [" ".join(rng.choice(topics[k], 12)) + " " + " ".join(rng.choice(words, 4)) for k in y]
    pipe = make_pipeline(TfidfVectorizer(), numbanet.MLPClassifier(hidden_layer_sizes=(16,), random_state=0))
    _fit(pipe, docs[:180], y[:180])
    assert pipe.score(docs[180:], y[180:]) > 0.9
    assert pipe.predict_proba(docs[:2]).shape == (2, 3)
