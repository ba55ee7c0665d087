"""Export to ONNX (onnxruntime runs it), skl2onnx pipelines, PyTorch both ways, and skops files.

Each dependency is optional: a test needing one skips (importorskip) when it is
not installed.  Tolerances are those docs/export.md states: float32 within 1e-6,
float64 within 1e-12, absolute for outputs up to 1 and relative above.
"""

import math
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

import numbanet
from numbanet.kernels.activations import BUILTINS

ROOT = pathlib.Path(__file__).resolve().parents[1]
HIDDEN = sorted(name for name, b in BUILTINS.items() if not b.output_only)
TOL = {np.float32: 1e-6, np.float64: 1e-12}
DTYPES = (np.float32, np.float64)
EXPORT_MODULES = ("onnx", "onnxruntime", "skl2onnx", "torch", "skops")


def _error(got, want):
    """Largest difference, absolute where |want| <= 1 and relative above."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    return float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))))


def _net(hidden, dtype, out="identity", seed=1):
    """Return a 5-7-6-3 network with biases that are not zero (so they are tested)."""
    loss = "cross_entropy" if out == "softmax" else "mse"
    net = numbanet.Network([5, 7, 6, 3], activations=[hidden, hidden, out], loss=loss, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    for b in net.biases:
        b[...] = rng.normal(scale=0.5, size=b.shape)
    return net


def _inputs(dtype, n=300, n_features=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, n_features)).astype(dtype)


def _wide_net(act, dtype):
    """One layer whose pre-activations sweep -60..60 (saturation, overflow-prone exp, the kink at 0)."""
    loss = "cross_entropy" if act == "softmax" else "mse"
    net = numbanet.Network([1, 4], activations=act, loss=loss, dtype=dtype, seed=0)
    net.weights[0][:, 0] = [1.0, -1.0, 0.25, 3.0]
    net.biases[0][...] = [0.0, 0.5, -1e-3, 0.0]
    X = np.concatenate([np.linspace(-20, 20, 801), [-60, -40, -1e-9, 0.0, 1e-9, 40, 60]]).reshape(-1, 1)
    return net, X.astype(dtype)


def _fit_quietly(est, X, y):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


# ------------------------------------------------------------------------------------ lazy imports


@pytest.mark.slow  # a child Python
def test_importing_numbanet_imports_no_export_dependency():
    code = (
        "import sys, numbanet, numbanet.export\n"
        "numbanet.to_onnx, numbanet.to_torch, numbanet.from_torch, numbanet.register_skl2onnx\n"
        f"print(','.join(m for m in {EXPORT_MODULES!r} if m in sys.modules))\n"
        "print(numbanet.__file__)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "", f"importing numbanet imported {out[0]}"
    assert pathlib.Path(out[1]).resolve().parent == ROOT / "numbanet"


def test_export_functions_are_public():
    for name in ("to_onnx", "to_torch", "from_torch", "register_skl2onnx"):
        assert name in numbanet.__all__
        assert callable(getattr(numbanet, name))


# ------------------------------------------------------------------------------------ ONNX: networks


def _ort_run(model, X):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X}), [o.name for o in session.get_outputs()]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_onnx_network_matches_predict(hidden, dtype):
    pytest.importorskip("onnx")
    net = _net(hidden, dtype)
    X = _inputs(dtype)
    (out,), names = _ort_run(numbanet.to_onnx(net), X)
    assert names == ["output"]
    assert out.dtype == dtype
    assert _error(out, net.predict(X)) <= TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("act", HIDDEN + ["softmax"])
def test_onnx_activation_over_a_wide_range(act, dtype):
    pytest.importorskip("onnx")
    net, X = _wide_net(act, dtype)
    (out,), _ = _ort_run(numbanet.to_onnx(net), X)
    assert np.all(np.isfinite(out))
    assert _error(out, net.predict(X)) <= TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_onnx_softmax_output(dtype):
    pytest.importorskip("onnx")
    net = _net("relu", dtype, out="softmax")
    X = _inputs(dtype)
    (out,), _ = _ort_run(numbanet.to_onnx(net), X)
    assert _error(out, net.predict(X)) <= TOL[dtype]
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=0, atol=10 * TOL[dtype])


def _op_types(model):
    return [n.op_type for n in model.graph.node]


def test_onnx_graph_is_gemm_and_activation_nodes():
    pytest.importorskip("onnx")
    net = numbanet.Network([4, 6, 5, 2], activations=["tanh", "relu", "sigmoid"], seed=0)
    model = numbanet.to_onnx(net, dtype=np.float32)
    assert _op_types(model) == ["Gemm", "Tanh", "Gemm", "Relu", "Gemm", "Sigmoid", "Identity"]
    gemm = model.graph.node[0]
    assert [(a.name, a.i) for a in gemm.attribute] == [("transB", 1)]
    inits = {t.name: t for t in model.graph.initializer}
    assert list(inits[gemm.input[1]].dims) == [6, 4]  # numbanet's (n_out, n_in), transposed by Gemm
    assert model.opset_import[0].version == 18


def test_onnx_float32_ops_and_float64_compositions():
    pytest.importorskip("onnx")
    net = numbanet.Network(
        [3, 4, 4, 4, 4, 2], activations=["leaky_relu", "elu", "softplus", "gelu", "identity"], seed=0
    )
    ops32 = _op_types(numbanet.to_onnx(net, dtype=np.float32))
    assert {"LeakyRelu", "Elu", "Softplus", "Erf"} <= set(ops32)
    assert "Gelu" in _op_types(numbanet.to_onnx(net, dtype=np.float32, opset=20))
    ops64 = set(_op_types(numbanet.to_onnx(net)))
    # onnxruntime has no double Elu, Softplus, Erf or Gelu, and LeakyRelu's slope is a float32 attribute.
    assert not {"LeakyRelu", "Elu", "Softplus", "Erf", "Gelu"} & ops64


@pytest.mark.parametrize("opset", [13, 17, 20])
def test_onnx_opsets_give_the_same_predictions(opset):
    pytest.importorskip("onnx")
    net = numbanet.Network(
        [5, 8, 8, 8, 3], activations=["gelu", "silu", "elu", "softmax"], loss="cross_entropy", dtype=np.float32, seed=0
    )
    X = _inputs(np.float32)
    model = numbanet.to_onnx(net, opset=opset)
    assert model.opset_import[0].version == opset
    (out,), _ = _ort_run(model, X)
    assert _error(out, net.predict(X)) <= 1e-6


@pytest.mark.parametrize(
    ("dtype", "opset", "op"), [(np.float32, 18, "Mish"), (np.float32, 17, "Tanh"), (np.float64, 18, "Tanh")]
)
def test_onnx_mish_is_the_operator_where_onnxruntime_has_it(dtype, opset, op):
    """ONNX's Mish from opset 18 in float32; z tanh(softplus z) composed before it and in float64."""
    pytest.importorskip("onnx")
    net, X = _wide_net("mish", dtype)
    model = numbanet.to_onnx(net, opset=opset)
    assert op in _op_types(model) and ("Mish" in _op_types(model)) == (op == "Mish")
    (out,), _ = _ort_run(model, X)
    assert _error(out, net.predict(X)) <= TOL[dtype]


def test_onnx_dtype_casts_the_weights():
    pytest.importorskip("onnx")
    net = _net("tanh", np.float64)
    X = _inputs(np.float32)
    (out,), _ = _ort_run(numbanet.to_onnx(net, dtype="float32"), X)
    assert out.dtype == np.float32
    assert _error(out, net.astype(np.float32).predict(X)) <= 1e-6


def test_onnx_model_survives_serialisation(tmp_path):
    onnx = pytest.importorskip("onnx")
    net = _net("silu", np.float64)
    path = tmp_path / "net.onnx"
    onnx.save(numbanet.to_onnx(net, input_name="features", name="mine"), path)
    model = onnx.load(path)
    assert model.graph.name == "mine"
    assert model.graph.input[0].name == "features"
    X = _inputs(np.float64)
    (out,), _ = _ort_run(model, X)
    assert _error(out, net.predict(X)) <= 1e-12


def test_onnx_refuses_custom_activation_by_layer_and_name():
    pytest.importorskip("onnx")
    swish = numbanet.Activation(
        "swish",
        function=lambda z: z / (1.0 + math.exp(-z)),
        derivative=lambda z: 1.0 / (1.0 + math.exp(-z)) * (1.0 + z / (1.0 + math.exp(z))),
    )
    net = numbanet.Network([3, 4, 4, 1], activations=["tanh", swish, "identity"], seed=0)
    with pytest.raises(ValueError, match=r"layer 2 has the custom activation 'swish'"):
        numbanet.to_onnx(net)
    with pytest.raises(ValueError, match=r"layer 2 has the custom activation 'swish'"):
        numbanet.to_torch(net)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dtype": np.int32}, "dtype must be None, float32 or float64"),
        ({"dtype": "half"}, "dtype must be None, float32 or float64"),
        ({"opset": 12}, "opset must be an integer from 13"),
        ({"opset": 10_000}, "opset must be an integer from 13"),
        ({"opset": True}, "opset must be an integer from 13"),
        ({"input_name": ""}, "input_name must be a non-empty string"),
    ],
)
def test_onnx_refuses_bad_arguments(kwargs, match):
    pytest.importorskip("onnx")
    with pytest.raises(ValueError, match=match):
        numbanet.to_onnx(_net("relu", np.float64), **kwargs)


def test_onnx_refuses_other_objects():
    pytest.importorskip("onnx")
    with pytest.raises(ValueError, match="takes a numbanet.Network or a fitted"):
        numbanet.to_onnx(object())
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match="MLPClassifier is not fitted yet"):
        numbanet.to_onnx(numbanet.MLPClassifier())


# ------------------------------------------------------------------------------------ ONNX: estimators


@pytest.fixture(scope="module")
def iris():
    datasets = pytest.importorskip("sklearn.datasets")
    return datasets.load_iris(return_X_y=True)


LABELINGS = {
    "int": lambda y: y,
    "str": lambda y: np.array(["setosa", "versicolor", "virginica"])[y],
    "binary-int": lambda y: np.where(y == 1, 7, -3),
    "binary-str": lambda y: np.array(["no", "yes"])[(y == 1).astype(int)],
    "bool": lambda y: y == 1,
    "integral-float": lambda y: y.astype(float) + 1.0,
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("labeling", sorted(LABELINGS))
def test_onnx_classifier_labels_and_probabilities(iris, labeling, dtype):
    pytest.importorskip("onnx")
    X, y = iris
    labels = LABELINGS[labeling](y)
    clf = _fit_quietly(
        numbanet.MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0, dtype=dtype), X, labels
    )
    (label, proba), names = _ort_run(numbanet.to_onnx(clf), X.astype(dtype))
    assert names == ["label", "probabilities"]
    assert label.shape == (X.shape[0],)
    want = clf.predict(X)
    if labeling in ("str", "binary-str"):
        assert label.dtype == object
        np.testing.assert_array_equal(label, want)
    else:
        assert label.dtype == np.int64  # skl2onnx's convention for numeric classes
        np.testing.assert_array_equal(label, want.astype(np.int64))
    assert proba.dtype == dtype
    assert _error(proba, clf.predict_proba(X)) <= TOL[dtype]


def test_onnx_binary_labels_follow_the_half_threshold(iris):
    pytest.importorskip("onnx")
    X, y = iris
    clf = _fit_quietly(numbanet.MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0), X, y == 2)
    clf.net_.weights[-1][...] = 0.0
    clf.net_.biases[-1][...] = 0.0  # every probability exactly 0.5: predict says False
    (label, proba), _ = _ort_run(numbanet.to_onnx(clf), X)
    np.testing.assert_array_equal(proba, 0.5)
    np.testing.assert_array_equal(label, clf.predict(X).astype(np.int64))
    assert not label.any()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_onnx_multilabel_classifier(iris, dtype):
    pytest.importorskip("onnx")
    X, y = iris
    Y = np.stack([y == 0, y == 2, X[:, 0] > 5.8], axis=1).astype(int)
    clf = _fit_quietly(numbanet.MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0, dtype=dtype), X, Y)
    (label, proba), _ = _ort_run(numbanet.to_onnx(clf), X.astype(dtype))
    assert label.dtype == np.int64 and label.shape == Y.shape
    np.testing.assert_array_equal(label, clf.predict(X))
    assert _error(proba, clf.predict_proba(X)) <= TOL[dtype]


def test_onnx_labels_are_integers_or_strings():
    # scikit-learn refuses fractional class labels when fitting, but a classes_ set by hand could hold any.
    from numbanet.export.onnx import _class_labels

    assert _class_labels(np.array([2.0, 5.0]))[1] == "int64"
    assert _class_labels(np.array(["a", "b"], dtype=object))[1] == "string"
    with pytest.raises(ValueError, match="cannot be ONNX labels"):
        _class_labels(np.array([0.5, 1.5]))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n_targets", [1, 2])
def test_onnx_regressor(iris, n_targets, dtype):
    pytest.importorskip("onnx")
    X, _ = iris
    y = X[:, 3] if n_targets == 1 else X[:, 2:]
    reg = _fit_quietly(
        numbanet.MLPRegressor(hidden_layer_sizes=(8,), activation="gelu", max_iter=30, random_state=0, dtype=dtype),
        X[:, :2],
        y,
    )
    (out,), names = _ort_run(numbanet.to_onnx(reg), X[:, :2].astype(dtype))
    assert names == ["variable"]
    assert out.shape == (X.shape[0], n_targets)
    assert _error(out, reg.predict(X[:, :2]).reshape(-1, n_targets)) <= TOL[dtype]


# ------------------------------------------------------------------------------------ skl2onnx


@pytest.fixture(scope="module")
def skl2onnx():
    module = pytest.importorskip("skl2onnx")
    numbanet.register_skl2onnx()
    numbanet.register_skl2onnx()  # twice does no harm
    return module


def _pipeline(est, X, y):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return _fit_quietly(make_pipeline(StandardScaler(), est), X, y)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_skl2onnx_pipeline_classifier(skl2onnx, iris, dtype):
    X, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    pipe = _pipeline(
        numbanet.MLPClassifier(hidden_layer_sizes=(8,), activation="elu", max_iter=30, random_state=0), X, labels
    )
    model = skl2onnx.to_onnx(pipe, X[:1].astype(dtype), options={"zipmap": False})
    (label, proba), names = _ort_run(model, X.astype(dtype))
    assert names == ["label", "probabilities"]
    np.testing.assert_array_equal(label, pipe.predict(X))
    # float32: the scaler too runs in float32 in ONNX, which rounds the features the network sees.
    assert _error(proba, pipe.predict_proba(X)) <= (1e-12 if dtype == np.float64 else 1e-5)


def test_skl2onnx_pipeline_with_zipmap_and_nocl(skl2onnx, iris):
    X, y = iris
    pipe = _pipeline(numbanet.MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0), X, y + 10)
    X32 = X.astype(np.float32)  # ZipMap takes float32 only
    (label, maps), names = _ort_run(skl2onnx.to_onnx(pipe, X32[:1]), X32)
    assert names == ["output_label", "output_probability"]
    np.testing.assert_array_equal(label, pipe.predict(X))
    assert sorted(maps[0]) == [10, 11, 12]
    np.testing.assert_allclose([maps[0][c] for c in (10, 11, 12)], pipe.predict_proba(X[:1])[0], rtol=0, atol=1e-5)
    (label, _), _ = _ort_run(skl2onnx.to_onnx(pipe, X[:1], options={"zipmap": False, "nocl": True}), X)
    np.testing.assert_array_equal(label, pipe.predict(X) - 10)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_skl2onnx_pipeline_regressor(skl2onnx, iris, dtype):
    X, _ = iris
    pipe = _pipeline(
        numbanet.MLPRegressor(hidden_layer_sizes=(8,), activation="softplus", max_iter=30, random_state=0),
        X[:, :3],
        X[:, 3],
    )
    (out,), _ = _ort_run(skl2onnx.to_onnx(pipe, X[:1, :3].astype(dtype)), X[:, :3].astype(dtype))
    assert out.shape == (X.shape[0], 1)
    assert _error(out[:, 0], pipe.predict(X[:, :3])) <= (1e-12 if dtype == np.float64 else 1e-5)


def test_skl2onnx_estimator_alone_matches_to_onnx(skl2onnx, iris):
    X, y = iris
    clf = _fit_quietly(numbanet.MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0), X, y)
    (label, proba), _ = _ort_run(skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False}), X)
    (label2, proba2), _ = _ort_run(numbanet.to_onnx(clf), X)
    np.testing.assert_array_equal(label, label2)
    np.testing.assert_array_equal(proba, proba2)


# ------------------------------------------------------------------------------------ PyTorch


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("act", HIDDEN + ["softmax"])
def test_torch_export_and_round_trip(act, dtype):
    torch = pytest.importorskip("torch")
    net = _net("tanh", dtype, out="softmax") if act == "softmax" else _net(act, dtype)
    X = _inputs(dtype)
    module = numbanet.to_torch(net)
    assert isinstance(module, torch.nn.Sequential)
    assert sum(isinstance(m, torch.nn.Linear) for m in module) == 3
    with torch.no_grad():
        out = module(torch.from_numpy(X)).numpy()
    assert out.dtype == dtype
    assert _error(out, net.predict(X)) <= TOL[dtype]
    back = numbanet.from_torch(module)
    assert back.sizes == net.sizes and back.activation_names == net.activation_names and back.dtype == dtype
    for a, b in zip(back.params, net.params):
        assert a == b  # bit for bit
    np.testing.assert_array_equal(back.predict(X), net.predict(X))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("act", HIDDEN)
def test_torch_activation_over_a_wide_range(act, dtype):
    torch = pytest.importorskip("torch")
    net, X = _wide_net(act, dtype)
    with torch.no_grad():
        out = numbanet.to_torch(net)(torch.from_numpy(X)).numpy()
    assert _error(out, net.predict(X)) <= TOL[dtype]


def test_torch_modules_are_the_expected_ones():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    net = numbanet.Network(
        [2, 3, 3, 3, 2], activations=["leaky_relu", "gelu", "identity", "softmax"], loss="cross_entropy", seed=0
    )
    module = numbanet.to_torch(net)
    kinds = [type(m) for m in module]
    assert kinds == [nn.Linear, nn.LeakyReLU, nn.Linear, nn.GELU, nn.Linear, nn.Linear, nn.Softmax]
    assert module[1].negative_slope == 0.01 and module[3].approximate == "none" and module[6].dim == 1
    np.testing.assert_array_equal(module[0].weight.detach().numpy(), net.weights[0])
    assert module[0].weight.dtype == torch.float64


def test_from_torch_reads_a_hand_built_model():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(4, 16),
        nn.ReLU(),
        nn.Identity(),
        nn.Linear(16, 8, bias=False),
        nn.SiLU(),
        nn.Linear(8, 3),
        nn.Softmax(dim=-1),
    )
    net = numbanet.from_torch(module, seed=3)
    assert net.sizes == (4, 16, 8, 3)
    assert net.activation_names == ("relu", "silu", "softmax")
    assert net.loss_name == "cross_entropy" and net.dtype == np.float32
    np.testing.assert_array_equal(net.biases[1], 0.0)
    X = _inputs(np.float32, n_features=4)
    with torch.no_grad():
        want = module(torch.from_numpy(X)).numpy()
    assert _error(net.predict(X), want) <= 1e-6
    # It trains like any network.
    Y = np.eye(3)[np.arange(X.shape[0]) % 3]
    history = net.fit(X, Y, epochs=2, optimizer=numbanet.Adam(lr=1e-3), progress=False)
    assert len(history.loss) == 2


def test_from_torch_default_losses_and_override():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    assert numbanet.from_torch(nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())).loss_name == "binary_cross_entropy"
    assert numbanet.from_torch(nn.Sequential(nn.Linear(2, 1))).loss_name == "mse"
    assert numbanet.from_torch(nn.Sequential(nn.Linear(2, 1), nn.Sigmoid()), loss="mse").loss_name == "mse"


def _refused():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    return [
        (nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 1)), r"module 1 of the Sequential, Dropout"),
        (nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.2), nn.Linear(4, 1)), r"module 1 .*negative_slope=0.2"),
        (nn.Sequential(nn.Linear(3, 4), nn.GELU(approximate="tanh")), r"module 1 .*approximate='tanh'"),
        (nn.Sequential(nn.Linear(3, 4), nn.ELU(alpha=0.5)), r"module 1 .*alpha=0.5"),
        (nn.Sequential(nn.Linear(3, 4), nn.Softplus(beta=2.0)), r"module 1 .*beta=2.0"),
        (nn.Sequential(nn.Linear(3, 4), nn.Softplus(threshold=5.0)), r"module 1 .*threshold=5.0"),
        (nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=0)), r"module 1 .*dim=0"),
        (nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=1), nn.Linear(4, 2)), r"module 1 .*softmax before the end"),
        (nn.Sequential(nn.ReLU(), nn.Linear(3, 4)), r"module 0 .*comes before any Linear"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Tanh()), r"module 2 .*follows another activation"),
        (nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 1)), r"module 1 .*takes 5 inputs but the Linear before"),
        (nn.Sequential(nn.Linear(3, 4).half()), r"module 0 .*dtype torch.float16"),
        (nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1).double()), r"mix dtypes"),
        (nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU())), r"module 1 of the Sequential, Sequential"),
        (nn.Sequential(), r"no Linear layer"),
        (nn.Linear(3, 4), r"takes a torch.nn.Sequential"),
    ]


@pytest.mark.parametrize("case", range(16))
def test_from_torch_refuses_by_name_and_index(case):
    module, match = _refused()[case]
    with pytest.raises(ValueError, match=match):
        numbanet.from_torch(module)


def test_from_torch_refuses_meta_device_and_non_finite_weights():
    # Before, NaN weights were read into the network and a meta-device module raised torch's NotImplementedError.
    torch = pytest.importorskip("torch")
    nn = torch.nn
    with torch.device("meta"):
        meta = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"module 0 .*weight on the meta device"):
        numbanet.from_torch(meta)
    for what, value in (("weight", float("nan")), ("bias", float("inf"))):
        module = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
        with torch.no_grad():
            getattr(module[2], what).view(-1)[0] = value
        with pytest.raises(ValueError, match=rf"module 2 .*has 1 NaN or infinite values in its {what}"):
            numbanet.from_torch(module)


def test_to_torch_of_a_fitted_estimator(iris):
    torch = pytest.importorskip("torch")
    X, y = iris
    clf = _fit_quietly(numbanet.MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0), X, y)
    with torch.no_grad():
        out = numbanet.to_torch(clf)(torch.from_numpy(X)).numpy()
    assert _error(out, clf.predict_proba(X)) <= 1e-12


# ------------------------------------------------------------------------------------ skops


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
def test_skops_round_trip_with_skops_trusted(iris, kind, solver, tmp_path):
    sio = pytest.importorskip("skops.io")
    X, y = iris
    est = getattr(numbanet, kind)(hidden_layer_sizes=(8,), max_iter=10, solver=solver, random_state=0)
    est = _fit_quietly(est, X, y if kind == "MLPClassifier" else X[:, 0])
    path = tmp_path / "model.skops"
    sio.dump(est, path)
    untrusted = set(sio.get_untrusted_types(file=path))
    other = {"MLPClassifier": "MLPRegressor", "MLPRegressor": "MLPClassifier"}[kind]
    other_solver = {"adam": "SGD", "sgd": "Adam"}[solver]
    # What this file needs is the list less the other estimator and the other solver's optimizer.
    not_needed = {f"numbanet.estimators.{other}", f"numbanet.optimizers.{other_solver}"}
    assert untrusted == set(numbanet.SKOPS_TRUSTED) - not_needed
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.load(path)
    loaded = sio.load(path, trusted=numbanet.SKOPS_TRUSTED)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    np.testing.assert_array_equal(loaded.net_.params, est.net_.params)
    # It keeps training where the original would.
    _fit_quietly(loaded.set_params(warm_start=True, max_iter=2), X, y if kind == "MLPClassifier" else X[:, 0])


def test_skops_trusted_loads_a_pipeline(iris, tmp_path):
    sio = pytest.importorskip("skops.io")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris
    model = _fit_quietly(make_pipeline(StandardScaler(), numbanet.MLPClassifier(max_iter=5, random_state=0)), X, y)
    sio.dump(model, tmp_path / "pipe.skops")
    assert set(sio.get_untrusted_types(file=tmp_path / "pipe.skops")) <= set(numbanet.SKOPS_TRUSTED)
    loaded = sio.load(tmp_path / "pipe.skops", trusted=numbanet.SKOPS_TRUSTED)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_skl2onnx_casts_integer_features(skl2onnx, iris):
    from skl2onnx.common.data_types import Int64TensorType

    X, y = iris
    Xi = np.round(X * 10).astype(np.int64)
    clf = _fit_quietly(numbanet.MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0), Xi, y)
    model = skl2onnx.to_onnx(clf, initial_types=[("X", Int64TensorType([None, 4]))], options={"zipmap": False})
    (label, proba), _ = _ort_run(model, Xi)
    assert proba.dtype == np.float32
    np.testing.assert_array_equal(label, clf.predict(Xi))
    assert _error(proba, clf.net_.astype(np.float32).predict(Xi.astype(np.float32))) <= 1e-6  # a float32 graph


def test_skl2onnx_refuses_custom_activation(skl2onnx, iris):
    X, y = iris
    swish = numbanet.Activation(
        "swish2", function=lambda z: z / (1.0 + math.exp(-z)), derivative=lambda z: 1.0 / (1.0 + math.exp(-z))
    )
    clf = _fit_quietly(numbanet.MLPClassifier(hidden_layer_sizes=(4,), activations=[swish], max_iter=5), X, y)
    with pytest.raises(ValueError, match="layer 1 has the custom activation 'swish2'"):
        skl2onnx.to_onnx(clf, X[:1].astype(np.float32), options={"zipmap": False})
