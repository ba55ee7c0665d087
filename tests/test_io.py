"""numbanet.save / numbanet.load: exact round trips, atomic writes, and refusing damaged files."""

import json
import os
import warnings

import numpy as np
import pytest

import numbanet
from numbanet import ModelFileError
from numbanet.io import FORMAT_VERSION


def _fitted_net(dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40, 5))
    Y = np.eye(3)[rng.integers(0, 3, 40)]
    net = numbanet.Network([5, 7, 6, 3], activations=["tanh", "relu", "softmax"], loss="cross_entropy",
                           dtype=dtype, seed=seed, l2=1e-3, dropout=0.1)
    net.fit(X, Y, epochs=3, batch_size=8, optimizer=numbanet.SGD(lr=0.05, momentum=0.9), progress=False)
    return net, X, Y


def _files(folder):
    return sorted(os.listdir(folder))


# ------------------------------------------------------------------ Network


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_network_round_trip_is_exact(tmp_path, dtype):
    net, X, Y = _fitted_net(dtype)
    path = tmp_path / "net.npz"
    assert numbanet.save(net, path) == str(path)
    loaded = numbanet.load(path)
    assert isinstance(loaded, numbanet.Network)
    assert loaded.sizes == net.sizes and loaded.activations == net.activations and loaded.loss_name == net.loss_name
    assert loaded.dtype == net.dtype == np.dtype(dtype)
    assert loaded.l2 == net.l2 and loaded.dropout == net.dropout
    assert loaded.epochs_trained == net.epochs_trained == 3
    assert loaded.params.dtype == net.params.dtype
    np.testing.assert_array_equal(loaded.params, net.params)
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))  # bit for bit
    assert loaded.loss(X, Y) == net.loss(X, Y)
    assert all(np.shares_memory(W, loaded.params) for W in loaded.weights)


def test_file_layout_is_plain_typed_arrays(tmp_path):
    net, _, _ = _fitted_net(np.float32)
    numbanet.save(net, tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    assert str(arrays["format"]) == "numbanet"
    assert arrays["format_version"].dtype.kind == "i" and int(arrays["format_version"]) == FORMAT_VERSION == 1
    assert str(arrays["kind"]) == "Network"
    assert arrays["sizes"].tolist() == [5, 7, 6, 3]
    assert arrays["activations"].tolist() == ["tanh", "relu", "softmax"]
    assert str(arrays["loss"]) == "cross_entropy" and str(arrays["dtype"]) == "float32"
    assert arrays["params"].dtype == np.float32 and arrays["params"].shape == (net.n_params,)
    assert all(a.dtype.kind != "O" for a in arrays.values())


def test_loaded_network_continues_training(tmp_path):
    net, X, Y = _fitted_net(np.float64)
    numbanet.save(net, tmp_path / "net.npz")
    loaded = numbanet.load(tmp_path / "net.npz")
    before = loaded.loss(X, Y)
    history = loaded.fit(X, Y, epochs=30, batch_size=8, optimizer=numbanet.SGD(lr=0.05), progress=False)
    assert loaded.loss(X, Y) < before
    assert history.epoch[0] == 3  # epoch numbering continues
    assert loaded.epochs_trained == 33


def test_save_writes_the_exact_path_and_overwrites(tmp_path):
    net, _, _ = _fitted_net(np.float64)
    numbanet.save(net, str(tmp_path / "model"))  # no suffix is added
    assert _files(tmp_path) == ["model"]
    other, _, _ = _fitted_net(np.float64, seed=1)
    numbanet.save(other, tmp_path / "model")
    assert _files(tmp_path) == ["model"]
    np.testing.assert_array_equal(numbanet.load(tmp_path / "model").params, other.params)


def test_save_refuses_other_objects(tmp_path):
    with pytest.raises(TypeError, match="numbanet.Network, MLPClassifier or MLPRegressor"):
        numbanet.save({"not": "a model"}, tmp_path / "x.npz")
    assert _files(tmp_path) == []


# ------------------------------------------------------------ atomic writes


@pytest.mark.parametrize("where", ["savez", "fsync", "replace"])
def test_failed_save_leaves_no_partial_file_and_the_old_file_intact(tmp_path, monkeypatch, where):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    old_bytes = path.read_bytes()
    other, _, _ = _fitted_net(np.float64, seed=1)

    def boom(*args, **kwargs):
        if where == "savez":  # fail half way through writing
            args[0].write(b"PK\x03\x04 partial")
        raise OSError(f"simulated failure in {where}")

    target = {"savez": (numbanet.io.np, "savez"), "fsync": (numbanet.io.os, "fsync"),
              "replace": (numbanet.io.os, "replace")}[where]
    monkeypatch.setattr(*target, boom)
    with pytest.raises(OSError, match="simulated failure"):
        numbanet.save(other, path)
    monkeypatch.undo()
    assert _files(tmp_path) == ["net.npz"]  # no temporary file left behind
    assert path.read_bytes() == old_bytes
    np.testing.assert_array_equal(numbanet.load(path).params, net.params)


def test_failed_first_save_creates_nothing(tmp_path, monkeypatch):
    net, _, _ = _fitted_net(np.float64)

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(numbanet.io.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        numbanet.save(net, tmp_path / "net.npz")
    assert _files(tmp_path) == []


# ------------------------------------------------------------ damaged files


def _assert_refused(path, *fragments):
    with pytest.raises(ModelFileError) as info:
        numbanet.load(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path):
    _assert_refused(tmp_path / "nothing.npz", "no such file")


def test_folder_instead_of_file(tmp_path):
    _assert_refused(tmp_path, "is a folder")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    _assert_refused(path, "empty")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, keep):
    net, _, _ = _fitted_net(np.float64)
    good = tmp_path / "good.npz"
    numbanet.save(net, good)
    data = good.read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: int(len(data) * keep)])
    _assert_refused(path, "damaged or truncated")


def test_corrupted_bytes_are_refused_or_harmless(tmp_path):
    # Flip every 7th byte of a small model file in turn (the sweep over every byte passes too, in 9 s;
    # this keeps the test quick and still hits every header and member): either load() refuses it with a
    # ModelFileError, or the byte was one zip ignores (a local header's timestamp, ...) and the
    # model comes back exactly.  Never a different model, never another exception.
    net = numbanet.Network([3, 4, 2], activations=["relu", "sigmoid"], loss="binary_cross_entropy", seed=0)
    good = tmp_path / "good.npz"
    numbanet.save(net, good)
    data = good.read_bytes()
    path = tmp_path / "bad.npz"
    refused = 0
    for pos in range(0, len(data), 7):
        damaged = bytearray(data)
        damaged[pos] ^= 0x5A
        path.write_bytes(bytes(damaged))
        try:
            loaded = numbanet.load(path)
        except ModelFileError as e:
            assert str(path) in str(e)
            refused += 1
            continue
        assert isinstance(loaded, numbanet.Network)
        assert (loaded.sizes, loaded.activations, loaded.loss_name) == (net.sizes, net.activations, net.loss_name)
        assert loaded.dtype == net.dtype and loaded.l2 == net.l2 and loaded.epochs_trained == net.epochs_trained
        np.testing.assert_array_equal(loaded.params, net.params)
    assert refused > 0.5 * len(range(0, len(data), 7))


def test_corrupted_parameter_bytes(tmp_path):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    data = bytearray(path.read_bytes())
    start = data.index(net.params[:4].tobytes())  # the raw parameter values inside the archive
    data[start + 3] ^= 0x01
    path.write_bytes(bytes(data))
    _assert_refused(path, "damaged", "CRC")


def test_foreign_npz_without_format_key(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, weights=np.ones(3), bias=np.zeros(1))
    _assert_refused(path, "not a numbanet model file", "'format'")


def test_other_format_name(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, format=np.array("keras"), format_version=np.array(1))
    _assert_refused(path, "not a numbanet model file", "keras")


def test_object_array_file_is_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, format=np.array("numbanet"), format_version=np.array(1), kind=np.array(["Network"], dtype=object))
    _assert_refused(path, "object arrays")


def test_plain_npy_and_text_files_are_refused(tmp_path):
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.arange(3))
    _assert_refused(npy, "not a numbanet model file")
    text = tmp_path / "notes.npz"
    text.write_text("hello, I am not a model\n")
    _assert_refused(text, "not a numbanet model file")


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    np.savez(path, **arrays)


def test_newer_format_version_is_refused_with_a_clear_message(tmp_path):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "future.npz"
    numbanet.save(net, path)
    _rewrite(path, format_version=np.array(2))
    _assert_refused(path, "written by a newer numbanet (format version 2); this numbanet reads version 1")


@pytest.mark.parametrize(
    "changes, fragment",
    [
        (dict(params=None), "missing params"),
        (dict(params=np.zeros(5)), "params has shape (5,)"),
        (dict(params=np.zeros(100, dtype=np.float32)), "params has shape"),
        (dict(activations=np.array(["relu", "swish", "softmax"])), "invalid architecture"),
        (dict(sizes=np.array([5.0, 7.0, 6.0, 3.0])), "wrong type"),
        (dict(loss=np.array(3)), "'loss' should be a text scalar"),
        (dict(kind=np.array("Transformer")), "unknown model kind"),
        (dict(format_version=np.array("1")), "'format_version' should be an integer"),
        (dict(format_version=np.array(0)), "format version 0"),
    ],
)
def test_inconsistent_contents_are_refused(tmp_path, changes, fragment):
    net, _, _ = _fitted_net(np.float64)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    _rewrite(path, **changes)
    _assert_refused(path, "damaged", fragment)


# -------------------------------------------------------------- estimators
# (these need scikit-learn; the Network tests above run without it)


@pytest.fixture(scope="module")
def data():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    return X, y


def _fit(est, X, y):
    with warnings.catch_warnings():
        from sklearn.exceptions import ConvergenceWarning

        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def _estimators(X, y):
    from numbanet import MLPClassifier, MLPRegressor

    kw = dict(hidden_layer_sizes=(6, 5), max_iter=20, learning_rate_init=0.01, random_state=0)
    names = np.array(["low", "mid", "high"])
    multilabel = np.column_stack([y == 0, y == 2, X[:, 3] > 0]).astype(int)
    return {
        "multiclass-int": (MLPClassifier(**kw), y),
        "binary-int64": (MLPClassifier(**kw), (y > 0).astype(np.int64) * 7 - 3),
        "strings": (MLPClassifier(**kw), names[y]),
        "multilabel": (MLPClassifier(**kw), multilabel),
        "float32-sgd": (MLPClassifier(solver="sgd", dtype="float32", **kw), y),
        "early-stopping": (MLPClassifier(early_stopping=True, **kw), y),
        "regressor-1d": (MLPRegressor(activations=["tanh", "logistic"], **kw), X @ [1.0, -2.0, 0.5, 0.0]),
        "regressor-2d": (MLPRegressor(dtype=np.float32, **kw), X[:, :2] ** 2),
    }


@pytest.mark.parametrize("case", ["multiclass-int", "binary-int64", "strings", "multilabel", "float32-sgd",
                                  "early-stopping", "regressor-1d", "regressor-2d"])
def test_estimator_round_trip_is_exact(tmp_path, data, case):
    X, y = data
    est, target = _estimators(X, y)[case]
    _fit(est, X, target)
    path = tmp_path / "est.npz"
    numbanet.save(est, path)
    loaded = numbanet.load(path)
    assert type(loaded) is type(est)
    params, loaded_params = est.get_params(), loaded.get_params()
    if not isinstance(params["dtype"], (str, type(None))):
        assert loaded_params.pop("dtype") == np.dtype(params.pop("dtype")).name
    assert loaded_params == params
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    if hasattr(est, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
        assert loaded.classes_.dtype.kind == est.classes_.dtype.kind or est.classes_.dtype.kind == "O"
        np.testing.assert_array_equal(loaded.classes_, est.classes_)
    assert loaded.score(X, target) == est.score(X, target)
    for attr in ("n_features_in_", "n_outputs_", "out_activation_", "loss_", "loss_curve_", "best_loss_",
                 "validation_scores_", "best_validation_score_", "n_iter_", "t_"):
        assert getattr(loaded, attr) == getattr(est, attr), attr
    assert loaded.net_.dtype == est.net_.dtype and loaded.net_.l2 == est.net_.l2
    # and it can continue training (with a fresh optimizer)
    if case != "early-stopping":
        loaded.partial_fit(X, target)
        assert len(loaded.loss_curve_) == len(est.loss_curve_) + 1


def test_estimator_file_holds_params_as_json_and_typed_classes(tmp_path, data):
    X, y = data
    est, target = _estimators(X, y)["strings"]
    _fit(est, X, target)
    numbanet.save(est, tmp_path / "clf.npz")
    with np.load(tmp_path / "clf.npz", allow_pickle=False) as f:
        assert str(f["kind"]) == "MLPClassifier"
        params = f["estimator_params"]
        assert params.shape == () and params.dtype.kind == "U"
        assert json.loads(str(params))["hidden_layer_sizes"] == [6, 5]
        assert f["classes_"].dtype.kind == "U" and f["classes_"].tolist() == ["high", "low", "mid"]
        assert f["loss_curve_"].dtype == np.float64


def test_unfitted_estimator_is_not_saved(tmp_path):
    pytest.importorskip("sklearn")
    from numbanet import MLPRegressor

    with pytest.raises(ValueError, match="not fitted"):
        numbanet.save(MLPRegressor(), tmp_path / "reg.npz")
    assert _files(tmp_path) == []


def test_damaged_estimator_metadata_is_refused(tmp_path, data):
    X, y = data
    est, target = _estimators(X, y)["multiclass-int"]
    _fit(est, X, target)
    path = tmp_path / "clf.npz"
    numbanet.save(est, path)
    _rewrite(path, estimator_params=np.array("{not json"))
    _assert_refused(path, "unreadable JSON")
    numbanet.save(est, path)
    _rewrite(path, classes_=None)
    _assert_refused(path, "missing classes_")


def test_network_unpickled_from_a_read_only_memory_map_can_train(tmp_path):
    # joblib (GridSearchCV, Parallel) may unpickle large arrays as read-only memory maps.
    joblib = pytest.importorskip("joblib")
    net, X, Y = _fitted_net(np.float64)
    joblib.dump(net, tmp_path / "net.joblib")
    copy = joblib.load(tmp_path / "net.joblib", mmap_mode="r")
    np.testing.assert_array_equal(copy.predict(X), net.predict(X))
    copy.fit(X, Y, epochs=2, progress=False)  # continues with the unpickled SGD momentum state
    net.fit(X, Y, epochs=2, progress=False)
    np.testing.assert_array_equal(copy.params, net.params)
