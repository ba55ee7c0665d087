"""Your own activations and losses: compiled into the kernels, exact, verified, saved, refused when wrong.

Twins: PyTorch autograd of the same network (float64, 1e-10), the textbook
reference, and a custom copy of a built-in (which must train like the
built-in).  torch is optional: those comparisons skip without it.
"""

import math
import os
import pickle
import warnings

import numba
import numpy as np
import pytest
from helpers import flat_params
from naive import log_cosh, log_cosh_derivative, regression, swish, swish_derivative

import numbanet
from numbanet import reference
from numbanet.kernels import training
from numbanet.kernels.activations import BUILTINS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SWISH = numbanet.Activation("swish", function=swish, derivative=swish_derivative)
LOG_COSH = numbanet.Loss("log_cosh", cost=log_cosh, derivative=log_cosh_derivative)
# The same pieces as written in the README, with lambdas.
SWISH_LAMBDA = numbanet.Activation(
    "swish",
    function=lambda z: z / (1.0 + math.exp(-z)),
    derivative=lambda z: (1.0 + math.exp(-z) + z * math.exp(-z)) / (1.0 + math.exp(-z)) ** 2,
)
SIGMOID_COPY = numbanet.Activation(
    "my_sigmoid",
    function=lambda z: 1.0 / (1.0 + math.exp(-z)),
    derivative=lambda z: math.exp(-z) / (1.0 + math.exp(-z)) ** 2,
)
TANH_COPY = numbanet.Activation("my_tanh", function=math.tanh, derivative=lambda z: 1.0 - math.tanh(z) ** 2)
MSE_COPY = numbanet.Loss("my_mse", cost=lambda a, y: 0.5 * (a - y) ** 2, derivative=lambda a, y: a - y)


# ------------------------------------------------------------------------ API


def test_api_as_documented():
    X, Y = regression(20, 4, 1)
    net = numbanet.Network([4, 16, 1], activations=[SWISH_LAMBDA, "identity"], loss=LOG_COSH, seed=0)
    assert net.activations[0] is SWISH_LAMBDA and net.activation_names == ("swish", "identity")
    assert net.loss_name == "log_cosh" and net.custom_loss is LOG_COSH
    assert net.custom_pieces == {"swish": SWISH_LAMBDA, "log_cosh": LOG_COSH}
    assert numbanet.gradcheck(net, X, Y).passed
    numbanet.testing.check_activation(SWISH_LAMBDA)
    numbanet.testing.check_loss(LOG_COSH)
    history = net.fit(X, Y, epochs=30, batch_size=5, progress=False)
    assert history.loss[-1] < history.loss[0]
    assert "swish" in repr(net) and repr(SWISH) == "Activation('swish')"


def _torch_net(torch, net, acts, loss):
    def act(name, z):
        if name == "swish":
            return z * torch.sigmoid(z)
        make = BUILTINS[name].torch  # the module numbanet exports the built-in as
        return z if make is None else make(torch.nn)(z)

    Ws = [torch.tensor(W, dtype=torch.float64, requires_grad=True) for W in net.weights]
    bs = [torch.tensor(b, dtype=torch.float64, requires_grad=True) for b in net.biases]

    def cost(X, Y):
        A = torch.tensor(X)
        for W, b, name in zip(Ws, bs, acts):
            A = act(name, A @ W.T + b)
        Yt = torch.tensor(Y)
        if loss == "log_cosh":
            return torch.log(torch.cosh(A - Yt)).sum(dim=1).mean()
        if loss == "huber":
            return torch.nn.functional.huber_loss(A, Yt, reduction="sum", delta=1.0) / A.shape[0]
        if loss == "cross_entropy":
            return -(Yt * torch.log(A)).sum(dim=1).mean()
        return 0.5 * ((A - Yt) ** 2).sum(dim=1).mean()

    return Ws, bs, cost


TORCH_CASES = [
    ([4, 7, 1], [SWISH, "identity"], LOG_COSH, ["swish", "identity"], "log_cosh", 1),
    ([4, 6, 5, 3], ["tanh", SWISH, SWISH], LOG_COSH, ["tanh", "swish", "swish"], "log_cosh", 3),
    ([4, 6, 3], [SWISH, "softmax"], LOG_COSH, ["swish", "softmax"], "log_cosh", 3),
    ([4, 6, 3], [SWISH, "softmax"], "cross_entropy", ["swish", "softmax"], "cross_entropy", 3),
    ([4, 6, 5, 4, 2], ["elu", "gelu", "silu", "softplus"], "huber", ["elu", "gelu", "silu", "softplus"], "huber", 2),
    ([4, 6, 2], ["gelu", SWISH], "mse", ["gelu", "swish"], "mse", 2),
]


@pytest.mark.parametrize(("sizes", "acts", "loss", "names", "loss_name", "n_out"), TORCH_CASES)
def test_gradients_match_torch_autograd(sizes, acts, loss, names, loss_name, n_out):
    torch = pytest.importorskip("torch")
    X, Y = regression(n=13, n_in=4, n_out=n_out, seed=1)
    Y = Y * 3  # targets far enough to reach huber's linear part
    if loss_name == "cross_entropy":
        Y = np.eye(n_out)[np.arange(13) % n_out]
    net = numbanet.Network(sizes, activations=acts, loss=loss, seed=2)
    for b in net.biases:
        b[...] = np.linspace(-0.5, 0.5, b.size)
    Ws, bs, cost = _torch_net(torch, net, names, loss_name)
    c = cost(X, Y)
    c.backward()
    assert net.loss(X, Y) == pytest.approx(float(c.detach()), rel=1e-12, abs=1e-14)
    dW, db = net.gradients(X, Y)
    ours = flat_params(net, dW, db)
    theirs = flat_params(net, [W.grad.numpy() for W in Ws], [b.grad.numpy() for b in bs])
    scale = max(1.0, np.abs(theirs).max())
    assert np.abs(ours - theirs).max() <= 1e-10 * scale


@pytest.mark.parametrize(("sizes", "acts", "loss", "names", "loss_name", "n_out"), TORCH_CASES[:3])
def test_gradients_match_the_reference(sizes, acts, loss, names, loss_name, n_out):
    X, Y = regression(n=9, n_in=4, n_out=n_out, seed=3)
    net = numbanet.Network(sizes, activations=acts, loss=loss, seed=4)
    W, B, A = reference.from_network(net)
    ref_loss = LOG_COSH if loss is LOG_COSH else loss
    nw, nb = reference.batch_gradients(W, B, A, ref_loss, X, Y)
    dW, db = net.gradients(X, Y)
    np.testing.assert_allclose(flat_params(net, dW, db), flat_params(net, nw, nb), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("copy", "name"), [(SIGMOID_COPY, "sigmoid"), (TANH_COPY, "tanh")])
def test_custom_copy_of_a_built_in_trains_like_it(copy, name, dtype):
    """Through the custom path (callbacks, stored Z, dropout) the same mathematics as the built-in."""
    X, Y = regression(n=40, n_in=4, n_out=2, seed=5)
    nets = []
    for act, loss in ((name, "mse"), (copy, MSE_COPY)):
        net = numbanet.Network(
            [4, 8, 6, 2], activations=[act, act, "identity"], loss=loss, seed=6, dtype=dtype, dropout=0.2, l2=1e-3
        )
        net.fit(X, Y, epochs=5, batch_size=8, optimizer=numbanet.Adam(lr=0.01), progress=False)
        nets.append(net)
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(nets[1].params, nets[0].params, rtol=rtol, atol=rtol)
    assert nets[1].loss(X, Y) == pytest.approx(nets[0].loss(X, Y), rel=rtol)


def test_custom_and_built_in_activations_mix_per_layer():
    X, Y = regression(n=15, n_in=4, n_out=3, seed=7)
    Y = np.eye(3)[np.arange(15) % 3]
    net = numbanet.Network(
        [4, 5, 6, 5, 3], activations=[SWISH, "relu", TANH_COPY, "softmax"], loss="cross_entropy", seed=8
    )
    assert list(net._custom_arr) == [0, -1, 1, -1]
    result = numbanet.gradcheck(net, X, Y)
    assert result.passed, result.report


# ------------------------------------------------------------- verification


def test_planted_error_caught_by_check_activation_and_gradcheck():
    wrong = numbanet.Activation(
        "swish", function=swish, derivative=lambda z: 1.0 / (1.0 + math.exp(-z))
    )  # the z e^{-z} term is missing
    with pytest.raises(AssertionError, match="swish"):
        numbanet.testing.check_activation(wrong)
    X, Y = regression(20, 4, 1, seed=9)
    net = numbanet.Network([4, 6, 1], activations=[wrong, "identity"], seed=10)
    result = numbanet.gradcheck(net, X, Y)
    assert not result.passed and result.failures


def test_planted_loss_error_caught_by_check_loss_and_gradcheck():
    wrong = numbanet.Loss("log_cosh", cost=log_cosh, derivative=lambda a, y: 0.9 * math.tanh(a - y))
    with pytest.raises(AssertionError, match="log_cosh"):
        numbanet.testing.check_loss(wrong)
    X, Y = regression(20, 4, 1, seed=11)
    net = numbanet.Network([4, 6, 1], activations=["tanh", "identity"], loss=wrong, seed=12)
    assert not numbanet.gradcheck(net, X, Y).passed


# ---------------------------------------------------------------- refusals


@pytest.mark.requires_jit  # with the JIT disabled nothing is compiled, so nothing is refused
@pytest.mark.parametrize(
    "fn",
    [
        lambda z: str(z),  # a string, not a float
        lambda z: np.array([z, z]),  # not a scalar
        lambda z: {"z": z}[1],  # a dict Numba cannot type here
    ],
)
def test_functions_numba_cannot_compile_are_refused_at_construction(fn):
    with pytest.raises(ValueError, match=r"activation 'bad': Numba cannot compile its function"):
        numbanet.Activation("bad", function=fn, derivative=lambda z: 1.0)
    with pytest.raises(ValueError, match=r"loss 'bad': Numba cannot compile its derivative"):
        numbanet.Loss("bad", cost=lambda a, y: a - y, derivative=lambda a, y: fn(a))


@pytest.mark.parametrize("name", ["relu", "softmax", "gelu"])
def test_built_in_names_are_refused(name):
    with pytest.raises(ValueError, match="built-in activation"):
        numbanet.Activation(name, function=swish, derivative=swish_derivative)


@pytest.mark.parametrize("name", ["mse", "huber", "cross_entropy"])
def test_built_in_loss_names_are_refused(name):
    with pytest.raises(ValueError, match="built-in loss"):
        numbanet.Loss(name, cost=log_cosh, derivative=log_cosh_derivative)


@pytest.mark.parametrize("name", ["", "my swish", 3, None])
def test_names_must_be_identifiers(name):
    with pytest.raises(ValueError, match="identifier"):
        numbanet.Activation(name, function=swish, derivative=swish_derivative)


def test_not_callable_refused():
    with pytest.raises(ValueError, match="must be a function"):
        numbanet.Activation("swish", function=1.0, derivative=swish_derivative)


def test_two_different_activations_with_one_name_refused():
    other = numbanet.Activation("swish", function=math.tanh, derivative=lambda z: 1 - math.tanh(z) ** 2)
    with pytest.raises(ValueError, match="both named 'swish'"):
        numbanet.Network([2, 3, 3, 1], activations=[SWISH, other, "identity"])


def test_cross_entropy_still_needs_softmax_and_custom_losses_take_any_output():
    with pytest.raises(ValueError, match="needs a softmax output"):
        numbanet.Network([2, 3, 2], activations=[SWISH, SWISH], loss="cross_entropy")
    numbanet.Network([2, 3, 2], activations=[SWISH, "softmax"], loss=LOG_COSH)
    numbanet.Network([2, 3, 2], activations=[SWISH, SWISH], loss=LOG_COSH)


# ------------------------------------------------------- no recompilation


@pytest.mark.requires_jit
def test_a_new_custom_piece_does_not_compile_new_kernel_specialisations():
    X, Y = regression(n=10, n_in=3, n_out=2, seed=13)
    warm = numbanet.Network([3, 4, 2], activations=[SWISH, "identity"], loss=LOG_COSH, seed=0)
    warm.fit(X, Y, progress=False)
    warm.loss(X, Y)
    warm.predict(X)
    before = {
        k: len(k.signatures)
        for k in (
            training.train_slice_flat,
            training.cost_and_gradient_flat,
            training.predict_flat,
            training.batch_step,
        )
    }
    fresh = numbanet.Activation("fresh", function=lambda z: z * z * 0.1 + z, derivative=lambda z: 0.2 * z + 1.0)
    fresh_loss = numbanet.Loss("fresh_loss", cost=lambda a, y: (a - y) ** 4, derivative=lambda a, y: 4 * (a - y) ** 3)
    net = numbanet.Network([3, 4, 2], activations=[fresh, "identity"], loss=fresh_loss, seed=0)
    net.fit(X, Y, progress=False)
    net.loss(X, Y)
    net.predict(X)
    after = {k: len(k.signatures) for k in before}
    assert after == before


# ------------------------------------------------------ saving and pickling


def test_save_and_load_with_the_custom_mapping(tmp_path):
    X, Y = regression(20, 4, 1, seed=14)
    net = numbanet.Network([4, 6, 1], activations=[SWISH, "identity"], loss=LOG_COSH, seed=15)
    net.fit(X, Y, epochs=3, progress=False)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    with pytest.raises(numbanet.ModelFileError, match=r"'log_cosh', 'swish'.*custom=\{'log_cosh': ..., 'swish': ...\}"):
        numbanet.load(path)
    with pytest.raises(numbanet.ModelFileError, match="'swish'"):
        numbanet.load(path, custom={"log_cosh": LOG_COSH})
    with pytest.raises(numbanet.ModelFileError, match="must be a numbanet.Activation"):
        numbanet.load(
            path, custom={"swish": numbanet.Loss("swish", log_cosh, log_cosh_derivative), "log_cosh": LOG_COSH}
        )
    with pytest.raises(ValueError, match="names must match"):
        numbanet.load(path, custom={"swish": TANH_COPY})
    with pytest.raises(ValueError, match="custom must be a dict"):
        numbanet.load(path, custom={"swish": swish})
    loaded = numbanet.load(path, custom=net.custom_pieces)
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    assert loaded.loss(X, Y) == net.loss(X, Y)
    assert loaded.activations[0] is SWISH and loaded.custom_loss is LOG_COSH


def test_pickling_with_def_functions_and_lambdas():
    X, Y = regression(20, 4, 1, seed=16)
    net = numbanet.Network([4, 6, 1], activations=[SWISH, "identity"], loss=LOG_COSH, seed=17)
    copy = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(copy.predict(X), net.predict(X))
    assert copy.activations[0].name == "swish"
    with_lambda = numbanet.Network([4, 6, 1], activations=[SWISH_LAMBDA, "identity"], seed=17)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(with_lambda)
    cloudpickle = pytest.importorskip("cloudpickle")
    again = cloudpickle.loads(cloudpickle.dumps(with_lambda))
    np.testing.assert_array_equal(again.predict(X), with_lambda.predict(X))


def test_estimators_take_an_activation():
    pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.default_rng(18)
    X = rng.standard_normal((80, 3))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = numbanet.MLPClassifier(
            hidden_layer_sizes=(8,), activation=SWISH, max_iter=300, learning_rate_init=0.02, random_state=0
        ).fit(X, y)
    assert clf.net_.activations[0] is SWISH
    assert clf.score(X, y) > 0.8
    assert clone(clf).activation is SWISH
    reg = numbanet.MLPRegressor(hidden_layer_sizes=(8, 8), activations=["gelu", TANH_COPY], max_iter=50, random_state=0)
    with pytest.warns(Warning):
        reg.fit(X, X[:, 0])
    assert reg.net_.activation_names == ("gelu", "my_tanh", "identity")


def test_load_refuses_a_different_piece_under_the_saved_name(tmp_path):
    net = numbanet.Network([4, 6, 1], activations=[SWISH, "identity"], loss=LOG_COSH, seed=19)
    numbanet.save(net, tmp_path / "net.npz")
    impostor = numbanet.Activation("swish", function=swish, derivative=lambda z: 1.0 / (1.0 + math.exp(-z)))
    with pytest.raises(numbanet.ModelFileError, match="'swish' passed in custom computes other values"):
        numbanet.load(tmp_path / "net.npz", custom={"swish": impostor, "log_cosh": LOG_COSH})
    same_again = numbanet.Activation("swish", function=swish, derivative=swish_derivative)  # recreated, same maths
    loaded = numbanet.load(tmp_path / "net.npz", custom={"swish": same_again, "log_cosh": LOG_COSH})
    assert loaded.activations[0] is same_again


def test_custom_activation_initialisation():
    he = numbanet.Activation(
        "my_relu", function=lambda z: max(z, 0.0), derivative=lambda z: 1.0 if z > 0 else 0.0, init="he"
    )
    a = numbanet.Network([200, 300, 1], activations=[he, "identity"], seed=0)
    b = numbanet.Network([200, 300, 1], activations=["relu", "identity"], seed=0)
    np.testing.assert_array_equal(a.weights[0], b.weights[0])  # He normal, as for relu
    g = numbanet.Network([200, 300, 1], activations=[SWISH, "identity"], seed=0)
    assert np.abs(g.weights[0]).max() <= np.sqrt(6 / 500)  # Glorot uniform by default
    with pytest.raises(ValueError, match="init must be"):
        numbanet.Activation("x", function=swish, derivative=swish_derivative, init="zeros")


@pytest.mark.requires_jit  # Python's float division raises ZeroDivisionError
def test_errors_inside_custom_pieces_follow_numpy_arithmetic():
    inv = numbanet.Activation("inv", function=lambda z: 1.0 / z, derivative=lambda z: -1.0 / (z * z))
    f, d = inv._compiled
    assert f(0.0) == math.inf and d(0.0) == -math.inf  # not a swallowed ZeroDivisionError returning 0


@pytest.mark.parametrize(("cls", "name"), [(numbanet.Loss, "relu"), (numbanet.Activation, "mse")])
def test_names_of_built_ins_of_the_other_kind_are_refused(cls, name):
    args = (log_cosh, log_cosh_derivative) if cls is numbanet.Loss else (swish, swish_derivative)
    with pytest.raises(ValueError, match="built-in activation or loss"):
        cls(name, *args)


# ------------------------------------------------- custom code that fails, fails loudly


def _picky(z):
    if z > 1.0:
        raise ValueError("z is too large")
    return math.tanh(z)


def _picky_slope(z):
    return 1.0 - math.tanh(z) ** 2


PICKY = numbanet.Activation("picky", function=_picky, derivative=_picky_slope)


def _state(net):
    opt = net.optimizer
    return (
        net.params.copy(),
        net.epochs_trained,
        net.history,
        net._rng_state.copy(),
        opt,
        None if opt is None else (opt.state.copy(), opt.t),
    )


def _assert_same_state(net, before):
    after = _state(net)
    np.testing.assert_array_equal(after[0], before[0])
    assert after[1:3] == before[1:3] and after[4] is before[4]
    np.testing.assert_array_equal(after[3], before[3])
    if before[5] is not None:
        np.testing.assert_array_equal(after[5][0], before[5][0])
        assert after[5][1] == before[5][1]


@pytest.mark.parametrize("call", ["fit", "predict", "loss", "gradients"])
def test_an_exception_in_a_custom_activation_stops_the_call_with_one_error(call, capfd):
    # Before: finite results (each failing call counted as 0), no exception, and stderr flooded with
    # "Exception ignored in: CPUContext" (68 148 lines for one fit).
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2)) * 0.1
    Y = X[:, :1] * 0.5
    net = numbanet.Network([2, 4, 1], activations=[PICKY, "identity"], seed=0)
    net.fit(X, Y, epochs=2, optimizer=numbanet.Adam(lr=0.01), progress=False)  # small inputs: all is well
    before = _state(net)
    X_big = X * 100
    args = {"fit": (X_big, Y), "predict": (X_big,), "loss": (X_big, Y), "gradients": (X_big, Y)}[call]
    kwargs = {"epochs": 3, "progress": False} if call == "fit" else {}
    with pytest.raises(
        ValueError,
        match=rf"custom activation 'picky': its function raised an exception at z = \S+ "
        rf"\(ValueError: z is too large\); {call} stopped",
    ) as info:
        getattr(net, call)(*args, **kwargs)
    assert isinstance(info.value, numbanet.exceptions.CustomPieceError)
    assert float(str(info.value).split("z = ")[1].split(" ")[0]) > 1.0  # the input named is one that raises
    assert isinstance(info.value.__cause__, ValueError)
    _assert_same_state(net, before)
    assert "Exception ignored" not in capfd.readouterr().err
    np.testing.assert_array_equal(net.predict(X), net.predict(X))  # and it works again on good inputs


def test_an_exception_in_a_custom_loss_names_both_inputs():
    def cost(a, y):
        if y > 2.0:
            raise ArithmeticError("targets above 2 are not allowed")
        return 0.5 * (a - y) ** 2

    loss = numbanet.Loss("picky_cost", cost=cost, derivative=lambda a, y: a - y)
    net = numbanet.Network([2, 3, 1], activations=["tanh", "identity"], loss=loss, seed=0)
    X, Y = np.ones((4, 2)), np.array([[0.0], [1.0], [3.0], [0.5]])
    before = net.params.copy()
    with pytest.raises(
        ValueError,
        match=r"custom loss 'picky_cost': its cost raised an exception at a = \S+, y = 3.0 "
        r"\(ArithmeticError: targets above 2",
    ):
        net.fit(X, Y, epochs=2, progress=False)
    np.testing.assert_array_equal(net.params, before)
    assert net.epochs_trained == 0 and net.optimizer is None


def _countdown(z):
    return z if z < 0.0 else _countdown(z - 1.0)


def _ping(z):
    return z if z < 0.0 else _pong(z - 1.0)


def _pong(z):
    return _ping(z * 0.5)


@pytest.mark.parametrize("fn", [_countdown, _ping], ids=["direct", "mutual"])
def test_recursive_functions_are_refused_at_construction(fn):
    # Before, a deeply recursive (valid) custom function killed the process with a segfault at predict.
    with pytest.raises(ValueError, match=r"activation 'deep': its function calls itself \(recursion\)"):
        numbanet.Activation("deep", function=fn, derivative=lambda z: 1.0)
    with pytest.raises(ValueError, match=r"loss 'deep': its derivative calls itself"):
        numbanet.Loss("deep", cost=lambda a, y: a - y, derivative=lambda a, y: fn(a))


# ------------------------------------------------- compiled custom pieces are reused


def _scaled(c):
    return numbanet.Activation("scaled", function=lambda z: c * z, derivative=lambda z: c)


def test_the_same_function_compiles_once_and_rebuilt_networks_share_their_callbacks():
    # Before, each new Activation + network compiled again (0.51 s, +2.53 MiB each, kept forever).
    pieces = [_scaled(2.0) for _ in range(3)]  # a new lambda each time: same code, same constants
    assert all(p._compiled[0] is pieces[0]._compiled[0] and p._compiled[1] is pieces[0]._compiled[1] for p in pieces)
    other = _scaled(3.0)  # another closure value: another function
    assert other._compiled[0] is not pieces[0]._compiled[0]
    assert other._compiled[0](1.5) == 4.5 and pieces[0]._compiled[0](1.5) == 3.0
    nets = [numbanet.Network([2, 3, 1], activations=[p, "identity"], seed=0) for p in pieces]
    assert len({n._fns for n in nets}) == 1  # one pair of callbacks for all
    rebuilt = numbanet.Activation("swish", function=swish, derivative=swish_derivative)
    assert rebuilt._compiled[0] is SWISH._compiled[0]


def test_unpickling_does_not_recompile():
    net = numbanet.Network([4, 6, 1], activations=[SWISH, "identity"], loss=LOG_COSH, seed=17)
    copy = pickle.loads(pickle.dumps(net))
    assert copy.activations[0] is not SWISH and copy._fns == net._fns
    assert copy.custom_loss._callbacks[0] is LOG_COSH._callbacks[0]


def test_functions_naming_other_values_are_different_functions():
    a = numbanet.Activation("a", function=lambda z: z * np.float64(2.0), derivative=lambda z: 2.0)
    b = numbanet.Activation("b", function=lambda z: z * np.float64(3.0), derivative=lambda z: 3.0)
    assert a._compiled[0](1.0) == 2.0 and b._compiled[0](1.0) == 3.0
    table = np.array([1.0, 2.0])  # an array it names: not keyed, compiled on its own
    c = numbanet.Activation("c", function=lambda z: z * table[1], derivative=lambda z: table[1])
    assert c._compiled[0](1.0) == 2.0


# ------------------------------------------------- the load-time check samples densely


def test_load_refuses_a_function_that_agrees_at_the_old_five_points(tmp_path):
    from numbanet.pieces import _OLD_PROBE_Z

    def impostor(z):  # swish plus a bump that vanishes exactly at the five old probe points
        bump = 1.0
        for p in _OLD_PROBE_Z:
            bump *= z - p
        return z / (1.0 + math.exp(-z)) + 0.01 * bump

    fake = numbanet.Activation("swish", function=impostor, derivative=SWISH_LAMBDA.derivative)
    assert np.array_equal(fake.fingerprint(_OLD_PROBE_Z), SWISH_LAMBDA.fingerprint(_OLD_PROBE_Z))
    net = numbanet.Network([4, 6, 1], activations=[SWISH_LAMBDA, "identity"], loss=LOG_COSH, seed=19)
    numbanet.save(net, tmp_path / "net.npz")
    with pytest.raises(
        numbanet.ModelFileError, match=r"'swish' passed in custom computes other values.*its function at"
    ):
        numbanet.load(tmp_path / "net.npz", custom={"swish": fake, "log_cosh": LOG_COSH})
    slope_only = numbanet.Activation(
        "swish",
        function=SWISH_LAMBDA.function,
        derivative=lambda z: (1.0 + math.exp(-z) + z * math.exp(-z)) / (1.0 + math.exp(-z)) ** 2 if z < 900 else 0.0,
    )
    with pytest.raises(numbanet.ModelFileError, match=r"its derivative at"):  # differs only far out
        numbanet.load(tmp_path / "net.npz", custom={"swish": slope_only, "log_cosh": LOG_COSH})


def test_files_with_the_old_five_point_fingerprint_still_load(tmp_path):
    from numbanet.pieces import _OLD_PROBE_AY, _OLD_PROBE_Z

    net = numbanet.Network([4, 6, 1], activations=[SWISH, "identity"], loss=LOG_COSH, seed=19)
    path = tmp_path / "net.npz"
    numbanet.save(net, path)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["custom_fingerprint_swish"] = SWISH.fingerprint(_OLD_PROBE_Z)
    arrays["custom_fingerprint_log_cosh"] = LOG_COSH.fingerprint(_OLD_PROBE_AY)
    np.savez(path, **arrays)
    loaded = numbanet.load(path, custom=net.custom_pieces)
    np.testing.assert_array_equal(loaded.params, net.params)


def test_a_fingerprint_through_raising_points_leaves_no_error_behind(tmp_path):
    net = numbanet.Network([2, 3, 1], activations=[PICKY, "identity"], seed=0)
    numbanet.save(net, tmp_path / "picky.npz")  # the fingerprint evaluates the function where it raises
    assert np.isnan(PICKY.fingerprint()).any()
    net.predict(np.zeros((2, 2)))  # no stale error
    loaded = numbanet.load(tmp_path / "picky.npz", custom={"picky": PICKY})
    np.testing.assert_array_equal(loaded.params, net.params)


def test_explain_stops_on_a_custom_function_that_raises_and_leaves_no_stale_error():
    net = numbanet.Network([2, 3, 1], activations=[PICKY, "identity"], seed=0)
    with pytest.raises(ValueError, match=r"custom activation 'picky': its function raised .* explain stopped"):
        numbanet.explain.gradients(net, np.full((2, 2), 50.0))
    net.predict(np.zeros((2, 2)))  # the record was read and cleared


def test_threads_sharing_a_function_each_read_their_own_failure():
    # Two networks share PICKY's compiled function; one thread's inputs make it raise, the other's
    # never do. Each call must report exactly its own failure, whatever the other thread does.
    import threading

    bad_net = numbanet.Network([4, 64, 2], activations=[PICKY, "identity"], seed=0)
    good_net = numbanet.Network([4, 64, 2], activations=[PICKY, "identity"], seed=0)
    rng = np.random.default_rng(0)
    rows = 40 if numba.config.DISABLE_JIT else 2000  # kernels run as Python in the coverage run: slow
    bad, good = rng.normal(size=(rows, 4)) * 1000, rng.normal(size=(rows, 4)) * 0.001
    expected = good_net.predict(good)
    seen = {"bad raised": 0, "bad silent": 0, "good raised": 0, "good differs": 0}
    start = threading.Barrier(2)

    def hammer(net, X, n=150):
        start.wait()
        for _ in range(n):
            try:
                out = net.predict(X)
            except numbanet.exceptions.CustomPieceError:
                seen["bad raised" if X is bad else "good raised"] += 1
            else:
                if X is bad:
                    seen["bad silent"] += 1
                elif not np.array_equal(out, expected):
                    seen["good differs"] += 1

    threads = [threading.Thread(target=hammer, args=a) for a in ((bad_net, bad), (good_net, good))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"bad raised": 150, "bad silent": 0, "good raised": 0, "good differs": 0}


DISK_CHILD = """
import json, math, sys
import numpy as np
import numbanet

C = float(sys.argv[1])


def f(z):
    return math.tanh(z) * C


def df(z):
    return (1.0 - math.tanh(z) ** 2) * C


act = numbanet.Activation("scaled", f, df)
loss = numbanet.Loss("half_square", lambda a, y: 0.5 * C * (a - y) ** 2, lambda a, y: C * (a - y))
net = numbanet.Network([3, 5, 1], activations=[act, "identity"], loss=loss, seed=0)
X, Y = np.linspace(-1, 1, 6).reshape(2, 3), np.ones((2, 1))
guards = [g.compiled for g in act._guards]
callbacks = list(net._fn_owners)
print(json.dumps({
    "out": net.predict(X).ravel().tolist(), "loss": net.loss(X, Y),
    "guard_hits": sum(sum(g.stats.cache_hits.values()) for g in guards),
    "guard_misses": sum(sum(g.stats.cache_misses.values()) for g in guards),
    "callback_hits": sum(cb.cache_hits for cb in callbacks), "callbacks": len(callbacks),
}))
"""


@pytest.mark.slow  # three child Pythons
@pytest.mark.requires_jit  # nothing is compiled, or cached, with the JIT disabled
def test_custom_pieces_compiled_in_one_process_are_loaded_from_disk_by_the_next():
    import json
    import subprocess
    import sys

    def child(c):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run([sys.executable, "-c", DISK_CHILD, repr(c)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.splitlines()[-1])

    c = 1.0 + np.random.default_rng().uniform()  # a function no earlier run has cached
    first, second, other = child(c), child(c), child(c + 1.0)
    assert first["guard_misses"] == 2 and first["callback_hits"] == 0  # compiled, and written
    assert second["guard_misses"] == 0 and second["guard_hits"] == 2  # loaded: nothing compiled
    assert second["callback_hits"] == second["callbacks"] == 4
    assert second["out"] == first["out"] and second["loss"] == first["loss"]
    assert other["guard_misses"] == 2 and other["out"] != first["out"]  # another function: its own code


PIECE_SOURCE = """
import math
import numpy as np
import numbanet

TILT = {tilt}


def tilted(z):
    return math.tanh(z) + TILT * z


def tilted_slope(z):
    return 1.0 - math.tanh(z) ** 2 + TILT


act = numbanet.Activation("tilted", tilted, tilted_slope)
out = numbanet.Network([2, 3, 1], activations=[act, "identity"], seed=0).predict(np.ones((1, 2)))
print(float(out[0, 0]))
"""


@pytest.mark.slow  # two child Pythons
@pytest.mark.requires_jit
def test_a_function_like_one_of_a_module_the_next_process_cannot_import_is_compiled_again(tmp_path):
    # Numba's cache imports the module a function was compiled from when it loads it: the same code
    # in another module (here __main__) must not be served the first one's guard.
    import subprocess
    import sys

    source = PIECE_SOURCE.format(tilt=repr(float(np.random.default_rng().uniform(0.1, 0.2))))
    (tmp_path / "only_here.py").write_text(source)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    run = dict(env=env, capture_output=True, text=True)
    first = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import only_here"], **run
    )
    second = subprocess.run([sys.executable, "-c", source], **run)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.stdout == second.stdout
