"""The Poisson loss with its exp output: kernels against the reference, finite differences and torch.

numbanet's ``poisson`` is half the Poisson deviance per output, summed over
the outputs and averaged over the samples, as scikit-learn's MLPRegressor
computes it: ``y log(y / a) - y + a``.  torch's ``PoissonNLLLoss(log_input=True)``
is ``exp(z) - y z`` averaged over every entry: the two differ by the constant
``y log y - y`` and by the factor k (outputs), so losses are compared up to
that constant and gradients up to that factor.
"""

import numpy as np
import pytest

import numbanet
from numbanet import reference
from tests.naive import np_activate, np_prime


def _net(sizes=(4, 6, 3), hidden="tanh", seed=0, l2=0.0, dtype=np.float64):
    net = numbanet.Network(list(sizes), activations=[hidden] * (len(sizes) - 2) + ["exp"], loss="poisson", seed=seed)
    net.l2 = l2
    rng = np.random.default_rng(seed)
    for b in net.biases:
        b[...] = rng.normal(scale=0.3, size=b.shape)
    return net.astype(dtype) if dtype != np.float64 else net


def _data(net, n=20, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, net.sizes[0]))
    Y = rng.poisson(1.5, size=(n, net.sizes[-1])).astype(float)  # zeros included
    return X, Y


def test_exp_activation_is_numpys():
    z = np.linspace(-30, 30, 61).reshape(-1, 1)
    f, fprime = reference.ACTIVATIONS["exp"]
    np.testing.assert_allclose(f(z), np_activate(z, "exp"), rtol=1e-15)
    np.testing.assert_allclose(fprime(z), np_prime(z, "exp"), rtol=1e-15)


def test_loss_and_gradients_match_the_reference():
    net = _net(l2=0.1)
    X, Y = _data(net)
    weights, biases, acts = reference.from_network(net)
    cost = reference.total_cost(weights, biases, acts, "poisson", X, Y)
    l2 = 0.5 * 0.1 * sum(float(np.sum(W * W)) for W in weights)
    assert net.loss(X, Y) == pytest.approx(cost + l2, rel=1e-12, abs=1e-12)
    nw, nb = reference.batch_gradients(weights, biases, acts, "poisson", X, Y)
    dW, db = net.gradients(X, Y)
    for got, want, W in zip(dW, nw, net.weights):
        np.testing.assert_allclose(got, want + 0.1 * W, rtol=1e-12, atol=1e-12)
    for got, want in zip(db, nb):
        np.testing.assert_allclose(got, want.ravel(), rtol=1e-12, atol=1e-12)


def test_half_deviance_by_hand():
    """The cost of one sample, written out: y log(y/a) - y + a, y log y = 0 at y = 0."""
    net = numbanet.Network([1, 2], activations="exp", loss="poisson")
    net.weights[0][...] = 0.0
    net.biases[0][...] = [np.log(2.0), 0.0]  # a = (2, 1)
    Y = np.array([[3.0, 0.0]])
    want = (3 * np.log(3 / 2) - 3 + 2) + (0 - 0 + 1)
    assert net.loss(np.zeros((1, 1)), Y) == pytest.approx(want, rel=1e-14)


@pytest.mark.parametrize("hidden", ["tanh", "relu"])
def test_gradcheck(hidden):
    net = _net(hidden=hidden, l2=0.05)
    X, Y = _data(net, n=7)
    r = numbanet.gradcheck(net, X, Y, eps=1e-5)
    assert r.passed, r.report


def test_matches_torch_poisson_nll_loss():
    torch = pytest.importorskip("torch")
    net = _net((3, 5, 4, 2))
    X, Y = _data(net, n=15, seed=3)
    Ws = [torch.tensor(W, requires_grad=True) for W in net.weights]
    bs = [torch.tensor(b, requires_grad=True) for b in net.biases]
    a = torch.tensor(X)
    for i, (W, b) in enumerate(zip(Ws, bs)):
        z = a @ W.T + b
        a = torch.tanh(z) if i < len(Ws) - 1 else z  # the output's log-mean: log_input=True
    k = net.sizes[-1]
    loss = torch.nn.PoissonNLLLoss(log_input=True, full=False)(a, torch.tensor(Y))
    (loss * k).backward()  # mean over entries, times k: the sum over outputs averaged over samples
    ylogy = np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1.0)), 0.0)
    constant = float(np.mean(np.sum(ylogy - Y, axis=1)))
    assert net.loss(X, Y) == pytest.approx(k * loss.item() + constant, rel=1e-12)
    dW, db = net.gradients(X, Y)
    for got, t in zip(dW + db, Ws + bs):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-11, atol=1e-13)


def test_cost_from_logits_never_clips():
    """Large negative logits with y > 0: the cost grows as -y z, never stopping at a clipped log."""
    net = numbanet.Network([1, 1], activations="exp", loss="poisson")
    net.weights[0][...] = 1.0
    X = np.array([[-800.0]])
    assert net.loss(X, np.array([[2.0]])) == pytest.approx(2 * np.log(2) + 2 * 800 - 2, rel=1e-12)


def test_refusals():
    with pytest.raises(ValueError, match="loss 'poisson' needs a exp output"):
        numbanet.Network([2, 3, 1], activations=["tanh", "identity"], loss="poisson")
    with pytest.raises(ValueError, match="exp is only allowed on the output layer"):
        numbanet.Network([2, 3, 1], activations=["exp", "exp"], loss="poisson")
    net = _net((2, 3, 1))
    before = net.params.copy()
    with pytest.raises(ValueError, match=r"Y must be >= 0 for loss 'poisson'.*-1"):
        net.fit(np.zeros((3, 2)), np.array([[1.0], [-1.0], [0.0]]))
    np.testing.assert_array_equal(net.params, before)


def test_fit_learns_a_rate():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(400, 2))
    rate = np.exp(0.5 + X[:, :1] - 0.5 * X[:, 1:])
    Y = rng.poisson(rate).astype(float)
    net = numbanet.Network([2, 1], activations="exp", loss="poisson", seed=0)
    net.fit(X, Y, epochs=60, batch_size=20, optimizer=numbanet.Adam(lr=0.05))
    np.testing.assert_allclose(net.weights[0][0], [1.0, -0.5], atol=0.2)
    assert net.biases[0][0] == pytest.approx(0.5, abs=0.2)


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_export_of_an_exp_output(dtype):
    net = _net(dtype=dtype)
    X = np.random.default_rng(0).normal(size=(50, net.sizes[0])).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    torch = pytest.importorskip("torch")
    module = numbanet.to_torch(net)
    with torch.no_grad():
        out = module(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(out, net.predict(X), rtol=tol)
    back = numbanet.from_torch(module)
    assert back.activation_names == net.activation_names and back.loss_name == "poisson"
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = numbanet.to_onnx(net)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: X})
    np.testing.assert_allclose(got, net.predict(X), rtol=tol)


def test_torch_exp_module_pickles():
    torch = pytest.importorskip("torch")
    import pickle

    module = numbanet.to_torch(_net())
    again = pickle.loads(pickle.dumps(module))
    x = torch.zeros(1, 4, dtype=torch.float64)
    assert torch.equal(again(x), module(x))


# --------------------------------------------------------------------------- the estimator


def _counts(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, size=(n, 2))
    y = rng.poisson(np.exp(1.0 + X[:, 0] - X[:, 1])).astype(float)
    return X, y


def test_regressor_poisson_is_scikit_learns():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import PoissonRegressor
    from sklearn.neural_network._base import poisson_loss

    X, y = _counts()
    reg = numbanet.MLPRegressor(
        loss="poisson", hidden_layer_sizes=(1,), activation="identity", alpha=0.0, solver="adam",
        learning_rate_init=0.02, max_iter=400, tol=1e-9, n_iter_no_change=400, random_state=0,
    )  # fmt: skip
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.fit(X, y)
    assert reg.out_activation_ == "exp" and reg.net_.loss_name == "poisson"
    glm = PoissonRegressor(alpha=0, tol=1e-8).fit(X, y)
    np.testing.assert_allclose(reg.predict(X), glm.predict(X), rtol=5e-2)
    # numbanet's loss is scikit-learn's poisson_loss (alpha = 0: no penalty)
    assert reg.net_.loss(X, y) == pytest.approx(poisson_loss(y.reshape(-1, 1), reg.predict(X).reshape(-1, 1)))


def test_regressor_poisson_refuses_negative_targets():
    pytest.importorskip("sklearn")
    X, y = _counts(20)
    y[3] = -2.0
    with pytest.raises(ValueError, match=r"y must be >= 0 for loss='poisson'.*-2"):
        numbanet.MLPRegressor(loss="poisson").fit(X, y)
