"""numbanet.explain: input gradients and integrated gradients, held to torch autograd, captum and finite differences.

The oracles: torch autograd on ``numbanet.to_torch(net)`` (input gradients,
1e-10 in float64), captum's ``IntegratedGradients`` with the same quadrature,
steps, baseline and target (1e-8), central finite differences of
``net.predict``, and completeness (a row's attributions sum to
``f(x) - f(baseline)``) as a Hypothesis property.
"""

import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from naive import swish, swish_derivative

import numbanet
from numbanet import config, explain
from numbanet.kernels.activations import BUILTINS

SWISH = numbanet.Activation("swish", function=swish, derivative=swish_derivative)
HIDDEN = [name for name, b in BUILTINS.items() if not b.output_only]
#: Hidden activations whose σ' is continuous: on a path through a kink the quadrature's error is not small.
SMOOTH = [name for name, b in BUILTINS.items() if not b.output_only and not b.kink]
OUTPUTS = ["softmax", "sigmoid", "identity"]


def _net(sizes, acts, seed=0, dtype=np.float64):
    loss = "cross_entropy" if acts[-1] == "softmax" else "mse"
    return numbanet.Network(sizes, activations=acts, loss=loss, seed=seed, dtype=dtype)


def _rows(n, n_in, seed=1, scale=1.0):
    return scale * np.random.default_rng(seed).normal(size=(n, n_in))


def _torch_gradients(net, X, t):
    torch = pytest.importorskip("torch")
    model = numbanet.to_torch(net).double()
    x = torch.tensor(X, requires_grad=True)
    out = model(x)
    out[torch.arange(X.shape[0]), torch.tensor(t)].sum().backward()
    return x.grad.numpy()


def _captum(net, X, baseline, steps, target):
    torch = pytest.importorskip("torch")
    attr = pytest.importorskip("captum.attr")
    ig = attr.IntegratedGradients(numbanet.to_torch(net).double())
    b = torch.zeros(1, X.shape[1], dtype=torch.float64) if baseline is None else torch.tensor(np.atleast_2d(baseline))
    t = target if np.isscalar(target) else torch.tensor(target)
    return ig.attribute(torch.tensor(X), baselines=b, target=t, n_steps=steps, method="gausslegendre").numpy()


def _close(got, want, tol):
    scale = max(1.0, float(np.abs(want).max()))
    assert np.abs(got - want).max() <= tol * scale, np.abs(got - want).max()


# ---------------------------------------------------------------- input gradients


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output", OUTPUTS)
def test_gradients_equal_torch_autograd(hidden, output):
    net = _net([6, 9, 7, 3], [hidden, "tanh", output], seed=3)
    X = _rows(11, 6)
    t = np.arange(11) % 3
    _close(explain.gradients(net, X, target=t), _torch_gradients(net, X, t), 1e-10)


def test_gradients_of_a_deep_narrow_network_and_one_layer():
    deep = _net([4, 3, 5, 2, 6, 2], ["relu", "elu", "gelu", "silu", "softmax"], seed=1)
    X = _rows(7, 4)
    _close(explain.gradients(deep, X, target=1), _torch_gradients(deep, X, [1] * 7), 1e-10)
    single = _net([5, 3], ["sigmoid"], seed=2)
    X = _rows(4, 5)
    _close(explain.gradients(single, X, target=2), _torch_gradients(single, X, [2] * 4), 1e-10)


def _finite_differences(f, X, h=1e-6):
    G = np.empty_like(X)
    for j in range(X.shape[1]):
        E = np.zeros_like(X)
        E[:, j] = h
        G[:, j] = (f(X + E) - f(X - E)) / (2 * h)
    return G


@pytest.mark.parametrize("hidden", SMOOTH + [SWISH])
def test_gradients_equal_finite_differences(hidden):
    net = _net([5, 8, 4], [hidden, "softmax"], seed=4)
    X = _rows(6, 5)
    fd = _finite_differences(lambda Z: net.predict(Z)[:, 1], X)
    _close(explain.gradients(net, X, target=1), fd, 1e-7)


def test_custom_activations_give_what_their_builtin_twin_gives():
    import math

    sig = numbanet.Activation(
        "my_sigmoid",
        function=lambda z: 1.0 / (1.0 + math.exp(-z)),
        derivative=lambda z: math.exp(-z) / (1.0 + math.exp(-z)) ** 2,
    )
    custom = _net([4, 6, 2], [SWISH, sig], seed=5)
    builtin = _net([4, 6, 2], ["silu", "sigmoid"], seed=5)
    builtin.params[:] = custom.params  # the two initialise differently
    X = _rows(9, 4)
    _close(explain.gradients(custom, X, target=1), explain.gradients(builtin, X, target=1), 1e-12)
    got = explain.integrated_gradients(custom, X, target=1, steps=9)
    _close(got, explain.integrated_gradients(builtin, X, target=1, steps=9), 1e-12)


# ----------------------------------------------------------- integrated gradients


@pytest.mark.parametrize(
    "acts, baseline, steps, target",
    [
        (["tanh", "softmax"], None, 50, 2),
        (["relu", "relu", "softmax"], "row", 50, "rows"),
        (["gelu", "sigmoid"], "rows", 7, 0),
        (["elu", "identity"], "rows", 50, "rows"),
        (["softplus", "mish", "softmax"], "row", 1, "rows"),
    ],
)
def test_integrated_gradients_equal_captum(acts, baseline, steps, target):
    sizes = [6] + [8] * (len(acts) - 1) + [3]
    net = _net(sizes, acts, seed=6)
    X = _rows(10, 6)
    base = {None: None, "row": _rows(1, 6, seed=2)[0], "rows": _rows(10, 6, seed=3)}[baseline]
    t = np.arange(10) % 3 if target == "rows" else target
    got = explain.integrated_gradients(net, X, baseline=base, steps=steps, target=t)
    _close(got, _captum(net, X, base, steps, t), 1e-8)


def test_quadrature_is_captums():
    methods = pytest.importorskip("captum.attr._utils.approximation_methods")
    step_sizes, alphas = methods.approximation_parameters("gausslegendre")
    for n in (1, 2, 7, 50, 64):
        a, w = explain.quadrature(n)
        assert np.array_equal(a, np.asarray(alphas(n))) and np.array_equal(w, np.asarray(step_sizes(n)))


SMOOTH_OR_CUSTOM = st.sampled_from(SMOOTH + [SWISH])


@st.composite
def smooth_networks(draw):
    depth = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 12), min_size=depth + 1, max_size=depth + 1))
    output = draw(st.sampled_from(["softmax", "sigmoid", "identity", "tanh", SWISH]))
    if output == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    hidden = draw(st.lists(SMOOTH_OR_CUSTOM, min_size=depth - 1, max_size=depth - 1))
    return _net(sizes, hidden + [output], seed=draw(st.integers(0, 2**31 - 1)))


@given(net=smooth_networks(), data=st.data())
def test_completeness(net, data):
    n_in, n_out = net.sizes[0], net.sizes[-1]
    rows = data.draw(st.integers(1, 4))
    X = data.draw(numbanet.testing.finite_arrays((rows, n_in)))
    B = data.draw(st.one_of(st.none(), numbanet.testing.finite_arrays((rows, n_in))))
    t = data.draw(st.lists(st.integers(0, n_out - 1), min_size=rows, max_size=rows))
    phi = explain.integrated_gradients(net, X, baseline=B, target=t)
    f = net.predict(X)[np.arange(rows), t]
    f0 = net.predict(np.zeros_like(X) if B is None else B)[np.arange(rows), t]
    diff = f - f0
    assert np.all(np.abs(phi.sum(axis=1) - diff) <= 1e-3 * np.abs(diff) + 1e-9), (phi.sum(axis=1), diff)


def test_one_step_is_the_midpoint_gradient_times_the_difference():
    net = _net([3, 5, 2], ["tanh", "softmax"], seed=7)
    X, B = _rows(4, 3), _rows(4, 3, seed=9)
    mid = explain.gradients(net, B + 0.5 * (X - B), target=0)
    _close(explain.integrated_gradients(net, X, baseline=B, steps=1, target=0), mid * (X - B), 1e-15)


def test_chunks_and_threads_give_the_single_call_answer(monkeypatch):
    net = _net([8, 16, 4], ["tanh", "softmax"], seed=8)
    X, B = _rows(13, 8), _rows(1, 8, seed=4)
    want = explain.integrated_gradients(net, X, baseline=B, steps=11)
    want_g = explain.gradients(net, X)
    results = []

    def work():
        results.append((explain.integrated_gradients(net, X, baseline=B, steps=11), explain.gradients(net, X)))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(results) == 4 and all(np.array_equal(a, want) and np.array_equal(g, want_g) for a, g in results)
    monkeypatch.setattr(config, "CHUNK", 5)  # 143 points in buffers of 8 rows: chunks end inside rows
    _close(explain.integrated_gradients(net, X, baseline=B, steps=11), want, 1e-14)
    _close(explain.gradients(net, X), want_g, 1e-14)


def test_float32_runs_in_float32():
    net = _net([5, 6, 3], ["tanh", "softmax"], seed=1)
    net32 = net.astype(np.float32)
    X = _rows(4, 5)
    g, phi = explain.gradients(net32, X), explain.integrated_gradients(net32, X)
    assert g.dtype == phi.dtype == np.float32
    _close(g, explain.gradients(net, X), 1e-5)
    _close(phi, explain.integrated_gradients(net, X), 1e-5)


def test_default_target_of_a_softmax_network_is_the_predicted_class_else_output_zero():
    net = _net([4, 6, 3], ["tanh", "softmax"], seed=2)
    X = _rows(12, 4, scale=3.0)
    t = net.predict(X).argmax(axis=1)
    assert len(set(t)) > 1
    assert np.array_equal(explain.gradients(net, X), explain.gradients(net, X, target=t))
    reg = _net([4, 6, 2], ["tanh", "identity"], seed=2)
    assert np.array_equal(explain.gradients(reg, X), explain.gradients(reg, X, target=0))


# ------------------------------------------------------------------- estimators


def _classifier(y_kind):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=80, n_features=5, n_informative=4, n_redundant=0, n_classes=3, random_state=0)
    if y_kind == "binary":
        y = (y > 0).astype(int)
    est = numbanet.MLPClassifier(hidden_layer_sizes=(8,), activation="tanh", max_iter=30, random_state=0)
    with pytest.warns(Warning):  # ConvergenceWarning after 30 iterations
        est.fit(X, y)
    return est, X


@pytest.mark.parametrize("y_kind", ["binary", "multiclass"])
def test_classifier_attributes_the_probability_of_the_predicted_class(y_kind):
    est, X = _classifier(y_kind)
    X = X[:10]
    P = est.predict_proba(X)
    pred = P.argmax(axis=1)
    fd = _finite_differences(lambda Z: est.predict_proba(Z)[np.arange(10), pred], X)
    _close(explain.gradients(est, X), fd, 1e-7)
    phi = explain.integrated_gradients(est, X)
    P0 = est.predict_proba(np.zeros_like(X))
    _close(phi.sum(axis=1), P[np.arange(10), pred] - P0[np.arange(10), pred], 1e-6)
    for k in range(P.shape[1]):  # every column of predict_proba as a target
        fd = _finite_differences(lambda Z, k=k: est.predict_proba(Z)[:, k], X)
        _close(explain.gradients(est, X, target=k), fd, 1e-7)


def test_regressor_and_feature_names_in_a_shap_explanation():
    pd = pytest.importorskip("pandas")
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    est = numbanet.MLPRegressor(hidden_layer_sizes=(16,), activation="tanh", max_iter=50, random_state=0)
    with pytest.warns(Warning):
        est.fit(data.data, data.target)
    X = data.data.iloc[:6]
    fd = _finite_differences(lambda Z: est.predict(pd.DataFrame(Z, columns=X.columns)), X.to_numpy())
    _close(explain.gradients(est, X), fd, 1e-6)
    pytest.importorskip("shap")
    e = explain.shap_explanation(est, X, baseline=data.data.mean().to_numpy())
    assert list(e.feature_names) == list(X.columns) and e.values.shape == (6, 10)
    _close(e.base_values + e.values.sum(axis=1), est.predict(X), 1e-6)
    _close(e.data, X.to_numpy(), 0)


def test_shap_missing_is_a_clear_import_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "shap", None)
    net = _net([2, 2], ["identity"])
    with pytest.raises(ImportError, match="pip install shap"):
        explain.shap_explanation(net, np.ones((1, 2)))


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": 3}, r"target is 3, not a class index .* in \[0, 3\)"),
        ({"target": -1}, r"target is -1"),
        ({"target": [0, 1, 5, 0]}, r"target\[2\] is 5, not a class index"),
        ({"target": [0, 1]}, r"target has 2 entries, but X has 4 rows"),
        ({"target": 1.0}, r"target must be a class index .* \(an integer\)"),
        ({"target": True}, r"target must be .* \(a bool\)"),
        ({"target": [[0], [1], [0], [1]]}, r"shape \(4, 1\)"),
        ({"baseline": np.zeros(4)}, r"baseline has 4 features, but the network expects 5"),
        ({"baseline": np.zeros((3, 5))}, r"baseline has 3 rows; give one row for every row of X, or one per row \(4\)"),
        ({"baseline": [np.nan] * 5}, r"baseline contains NaN"),
        ({"steps": 0}, r"steps must be a positive integer; got 0"),
        ({"steps": 2.5}, r"steps must be a positive integer; got 2.5"),
    ],
)
def test_bad_arguments_are_refused_and_change_nothing(kwargs, message):
    net = _net([5, 4, 3], ["tanh", "softmax"])
    before = net.params.copy()
    X = _rows(4, 5)
    with pytest.raises(ValueError, match=message):
        explain.integrated_gradients(net, X, **kwargs)
    if "target" in kwargs:
        with pytest.raises(ValueError, match=message):
            explain.gradients(net, X, **kwargs)
    assert np.array_equal(net.params, before)


def test_bad_models_and_inputs_are_refused():
    net = _net([5, 4, 1], ["tanh", "identity"])
    with pytest.raises(ValueError, match="X has 3 features, but the network expects 5"):
        explain.gradients(net, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"target is 1, not an output index in \[0, 1\)"):
        explain.gradients(net, np.ones((2, 5)), target=1)
    with pytest.raises(ValueError, match="not fitted yet"):
        explain.gradients(numbanet.MLPRegressor(), np.ones((2, 5)))
    with pytest.raises(ValueError, match="takes a numbanet.Network"):
        explain.integrated_gradients(object(), np.ones((2, 5)))
