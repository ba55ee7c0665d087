"""Optimizers: each update against the PyTorch formula, ``torch.optim`` and the jitted loop.

The formula is written out in NumPy; ``torch.optim`` is used itself when installed.

The NumPy transcriptions below are written from the ``torch.optim``
documentation, independently of :mod:`numbanet.kernels.updates` (Adam, for
instance, in its textbook form with ``m_hat`` and ``v_hat``).
"""

import numpy as np
import pytest
from helpers import flat_params
from naive import regression

import numbanet
from numbanet import SGD, Adam, AdamW, RMSprop

N_PARAMS = 23
N_STEPS = 10


# --------------------------------------------------------------- references


class RefSGD:
    """torch.optim.SGD, dampening 0."""

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.lr, self.mu, self.nesterov, self.wd = lr, momentum, nesterov, weight_decay
        self.buf = None

    def step(self, p, g):
        d = g + self.wd * p
        if self.mu != 0:
            self.buf = d.copy() if self.buf is None else self.mu * self.buf + d
            d = d + self.mu * self.buf if self.nesterov else self.buf
        return p - self.lr * d


class RefAdam:
    """torch.optim.Adam (coupled weight decay) or AdamW (decoupled), textbook form."""

    def __init__(self, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
        self.lr, (self.b1, self.b2), self.eps, self.wd, self.decoupled = lr, betas, eps, weight_decay, decoupled
        self.m = self.v = 0.0
        self.t = 0

    def step(self, p, g):
        self.t += 1
        if self.decoupled:
            p = p * (1 - self.lr * self.wd)
        else:
            g = g + self.wd * p
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g**2
        m_hat = self.m / (1 - self.b1**self.t)
        v_hat = self.v / (1 - self.b2**self.t)
        return p - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class RefRMSprop:
    """torch.optim.RMSprop, not centred."""

    def __init__(self, lr, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0):
        self.lr, self.alpha, self.eps, self.mu, self.wd = lr, alpha, eps, momentum, weight_decay
        self.v = 0.0
        self.buf = 0.0

    def step(self, p, g):
        g = g + self.wd * p
        self.v = self.alpha * self.v + (1 - self.alpha) * g**2
        avg = np.sqrt(self.v) + self.eps
        if self.mu > 0:
            self.buf = self.mu * self.buf + g / avg
            return p - self.lr * self.buf
        return p - self.lr * g / avg


# name: (numbanet optimizer factory, reference factory, torch factory name and kwargs)
CASES = {
    "sgd": (lambda: SGD(lr=0.05), lambda: RefSGD(0.05), ("SGD", dict(lr=0.05))),
    "sgd_momentum": (
        lambda: SGD(lr=0.05, momentum=0.9),
        lambda: RefSGD(0.05, momentum=0.9),
        ("SGD", dict(lr=0.05, momentum=0.9)),
    ),
    "sgd_nesterov": (
        lambda: SGD(lr=0.05, momentum=0.8, nesterov=True),
        lambda: RefSGD(0.05, momentum=0.8, nesterov=True),
        ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ),
    "sgd_weight_decay": (
        lambda: SGD(lr=0.05, weight_decay=0.1),
        lambda: RefSGD(0.05, weight_decay=0.1),
        ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ),
    "sgd_momentum_weight_decay": (
        lambda: SGD(lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.1),
        lambda: RefSGD(0.05, momentum=0.5, nesterov=True, weight_decay=0.1),
        ("SGD", dict(lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.1)),
    ),
    "adam": (lambda: Adam(lr=0.01), lambda: RefAdam(0.01), ("Adam", dict(lr=0.01))),
    "adam_betas": (
        lambda: Adam(lr=0.02, betas=(0.5, 0.9), eps=1e-3),
        lambda: RefAdam(0.02, betas=(0.5, 0.9), eps=1e-3),
        ("Adam", dict(lr=0.02, betas=(0.5, 0.9), eps=1e-3)),
    ),
    "adam_weight_decay": (
        lambda: Adam(lr=0.01, weight_decay=0.1),
        lambda: RefAdam(0.01, weight_decay=0.1),
        ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ),
    "adamw": (
        lambda: AdamW(lr=0.01, weight_decay=0.1),
        lambda: RefAdam(0.01, weight_decay=0.1, decoupled=True),
        ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ),
    "adamw_default_decay": (
        lambda: AdamW(lr=0.01),
        lambda: RefAdam(0.01, weight_decay=1e-2, decoupled=True),
        ("AdamW", dict(lr=0.01)),
    ),
    "rmsprop": (lambda: RMSprop(lr=0.01), lambda: RefRMSprop(0.01), ("RMSprop", dict(lr=0.01))),
    "rmsprop_momentum": (
        lambda: RMSprop(lr=0.01, alpha=0.9, momentum=0.7),
        lambda: RefRMSprop(0.01, alpha=0.9, momentum=0.7),
        ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.7)),
    ),
    "rmsprop_weight_decay": (
        lambda: RMSprop(lr=0.01, momentum=0.5, weight_decay=0.2),
        lambda: RefRMSprop(0.01, momentum=0.5, weight_decay=0.2),
        ("RMSprop", dict(lr=0.01, momentum=0.5, weight_decay=0.2)),
    ),
}


def _problem(seed=0):
    """Return initial parameters and N_STEPS gradients, of mixed signs and scales."""
    rng = np.random.default_rng(seed)
    p0 = rng.normal(size=N_PARAMS)
    grads = rng.normal(size=(N_STEPS, N_PARAMS)) * rng.choice([1e-3, 1.0, 10.0], size=(N_STEPS, N_PARAMS))
    grads[:, 0] = 0.0  # a parameter that never gets a gradient (weight decay still moves it)
    return p0, grads


# ---------------------------------------------------------- formula checks


@pytest.mark.parametrize("name", sorted(CASES))
def test_step_matches_reference_float64(name):
    make, make_ref, _ = CASES[name]
    p0, grads = _problem()
    opt, ref = make(), make_ref()
    p, q = p0.copy(), p0.copy()
    for k, g in enumerate(grads):
        opt.step(p, g)
        q = ref.step(q, g)
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14, err_msg=f"{name}, step {k + 1}")
    assert opt.t == N_STEPS
    assert not np.array_equal(p, p0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_step_matches_reference_float32(name):
    make, make_ref, _ = CASES[name]
    p0, grads = _problem(1)
    opt, ref = make(), make_ref()
    p = p0.astype(np.float32)
    q = p.astype(np.float64)
    for k, g in enumerate(grads):
        g32 = g.astype(np.float32)
        opt.step(p, g32)
        q = ref.step(q, g32.astype(np.float64))
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, q, rtol=2e-5, atol=2e-5, err_msg=f"{name}, step {k + 1}")
    assert opt.state.dtype == np.float32


def test_step_lr_argument_overrides_for_one_step():
    p0, grads = _problem()
    p, q = p0.copy(), p0.copy()
    SGD(lr=0.1).step(p, grads[0], lr=0.025)
    SGD(lr=0.025).step(q, grads[0])
    np.testing.assert_array_equal(p, q)


def test_first_sgd_momentum_step_is_plain_step():
    # torch initialises the buffer with the first gradient: the first step is plain SGD.
    p0, grads = _problem()
    p, q = p0.copy(), p0.copy()
    SGD(lr=0.1, momentum=0.9).step(p, grads[1])
    SGD(lr=0.1).step(q, grads[1])
    np.testing.assert_allclose(p, q, rtol=1e-15)


def test_adam_first_step_has_size_lr():
    # Bias correction makes the first Adam step -lr * sign(g) (up to eps).
    p0, grads = _problem()
    g = grads[2]
    p = p0.copy()
    Adam(lr=0.01, eps=1e-12).step(p, g)
    moved = g != 0
    np.testing.assert_allclose((p - p0)[moved], -0.01 * np.sign(g[moved]), rtol=1e-8)
    np.testing.assert_array_equal(p[~moved], p0[~moved])


def test_reset_forgets_state():
    p0, grads = _problem()
    opt = Adam(lr=0.01)
    p = p0.copy()
    for g in grads[:3]:
        opt.step(p, g)
    opt.reset()
    assert opt.t == 0 and opt.state is None
    q = p.copy()
    opt.step(p, grads[3])
    Adam(lr=0.01).step(q, grads[3])
    np.testing.assert_array_equal(p, q)


def test_step_does_not_modify_gradient():
    p0, grads = _problem()
    g = grads[0].copy()
    SGD(lr=0.1, momentum=0.9, weight_decay=0.5).step(p0.copy(), g)
    RMSprop(weight_decay=0.5).step(p0.copy(), g)
    np.testing.assert_array_equal(g, grads[0])


# ------------------------------------------------------- against torch.optim


@pytest.mark.parametrize("name", sorted(CASES))
def test_step_matches_torch(name):
    torch = pytest.importorskip("torch")
    make, _, (cls, kwargs) = CASES[name]
    p0, grads = _problem(2)
    opt = make()
    p = p0.copy()
    tp = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    topt = getattr(torch.optim, cls)([tp], **kwargs)
    for k, g in enumerate(grads):
        opt.step(p, g)
        tp.grad = torch.tensor(g, dtype=torch.float64)
        topt.step()
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-13, err_msg=f"{name}, step {k + 1}")


def test_step_with_changing_lr_matches_torch_scheduler():
    # A per-step lr (as schedules pass it) matches torch with a scheduler changing lr.
    torch = pytest.importorskip("torch")
    p0, grads = _problem(3)
    opt = Adam(lr=0.01)
    p = p0.copy()
    tp = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    topt = torch.optim.Adam([tp], lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(topt, step_size=3, gamma=0.5)
    for k, g in enumerate(grads):
        opt.step(p, g, lr=0.01 * 0.5 ** (k // 3))
        tp.grad = torch.tensor(g, dtype=torch.float64)
        topt.step()
        sched.step()
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-13, err_msg=f"step {k + 1}")


# ------------------------------------------------------- inside the fit loop


def test_flat_helper_matches_parameter_layout():
    net = numbanet.Network([3, 4, 2], seed=0)
    np.testing.assert_array_equal(flat_params(net, net.weights, net.biases), net.params)


@pytest.mark.parametrize("name", ["sgd_nesterov", "adam_weight_decay", "adamw", "rmsprop_momentum"])
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_fit_full_batch_equals_manual_steps(name, l2):
    """Fit with batch_size=n and shuffle=False is a sequence of opt.step(params, gradients)."""
    make, _, _ = CASES[name]
    X, Y = regression(6)
    net = numbanet.Network([3, 5, 2], activations=["tanh", "identity"], seed=1, l2=l2)
    manual = net.copy()
    history = net.fit(X, Y, epochs=N_STEPS, batch_size=X.shape[0], optimizer=make(), shuffle=False, progress=False)
    opt = make()
    losses = []
    for _ in range(N_STEPS):
        losses.append(manual.loss(X, Y))
        opt.step(manual.params, flat_params(manual, *manual.gradients(X, Y)))
    np.testing.assert_allclose(net.params, manual.params, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-12)
    assert net.optimizer.t == N_STEPS


def test_fit_float32_equals_manual_steps():
    X, Y = regression(6)
    net = numbanet.Network([3, 5, 2], activations=["sigmoid", "identity"], seed=1, dtype=np.float32)
    manual = net.copy()
    net.fit(X, Y, epochs=N_STEPS, batch_size=X.shape[0], optimizer=Adam(lr=0.01), shuffle=False, progress=False)
    opt = Adam(lr=0.01)
    for _ in range(N_STEPS):
        opt.step(manual.params, flat_params(manual, *manual.gradients(X, Y)))
    assert net.params.dtype == np.float32
    np.testing.assert_allclose(net.params, manual.params, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["sgd_momentum", "adam", "rmsprop_momentum"])
def test_state_continues_across_fit_calls(name):
    make, _, _ = CASES[name]
    X, Y = regression(10)
    a = numbanet.Network([3, 4, 2], activations=["tanh", "identity"], seed=2)
    b = a.copy()
    opt_a = make()
    a.fit(X, Y, epochs=1, batch_size=3, optimizer=opt_a, shuffle=False, progress=False)
    assert opt_a.t == 4  # batches of 3, 3, 3, 1
    a.fit(X, Y, epochs=1, batch_size=3, shuffle=False, progress=False)  # continues with a.optimizer
    assert a.optimizer is opt_a and opt_a.t == 8
    b.fit(X, Y, epochs=2, batch_size=3, optimizer=make(), shuffle=False, progress=False)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(opt_a.state, b.optimizer.state)
    # A fresh optimizer for the second call would not give the same result (the state matters).
    c = numbanet.Network([3, 4, 2], activations=["tanh", "identity"], seed=2)
    c.fit(X, Y, epochs=1, batch_size=3, optimizer=make(), shuffle=False, progress=False)
    c.fit(X, Y, epochs=1, batch_size=3, optimizer=make(), shuffle=False, progress=False)
    assert not np.array_equal(c.params, b.params)


def test_state_reset_for_other_size_or_dtype():
    X, Y = regression(6)
    opt = Adam(lr=0.01)
    small = numbanet.Network([3, 4, 2], seed=3)
    small.fit(X, Y, epochs=3, batch_size=2, optimizer=opt, shuffle=False, progress=False)
    assert opt.t == 9
    # Another size: the state starts afresh, as with a new optimizer.
    big = numbanet.Network([3, 7, 2], seed=3)
    fresh = big.copy()
    big.fit(X, Y, epochs=2, batch_size=6, optimizer=opt, shuffle=False, progress=False)
    fresh.fit(X, Y, epochs=2, batch_size=6, optimizer=Adam(lr=0.01), shuffle=False, progress=False)
    assert opt.state.shape == (2, big.n_params) and opt.t == 2
    np.testing.assert_array_equal(big.params, fresh.params)
    # Same size, another dtype: reset too.
    big32 = numbanet.Network([3, 7, 2], seed=3, dtype=np.float32)
    fresh32 = big32.copy()
    big32.fit(X, Y, epochs=2, batch_size=6, optimizer=opt, shuffle=False, progress=False)
    fresh32.fit(X, Y, epochs=2, batch_size=6, optimizer=Adam(lr=0.01), shuffle=False, progress=False)
    assert opt.state.dtype == np.float32 and opt.t == 2
    np.testing.assert_array_equal(big32.params, fresh32.params)


def test_same_size_and_dtype_keeps_state():
    # The documented converse: a network of the same size and dtype continues the state.
    X, Y = regression(6)
    opt = SGD(lr=0.1, momentum=0.9)
    a = numbanet.Network([3, 4, 2], seed=4)
    a.fit(X, Y, epochs=1, batch_size=6, optimizer=opt, shuffle=False, progress=False)
    buf = opt.state.copy()
    b = numbanet.Network([3, 4, 2], seed=5)
    manual = b.copy()
    b.fit(X, Y, epochs=1, batch_size=6, optimizer=opt, shuffle=False, progress=False)
    g = flat_params(manual, *manual.gradients(X, Y))
    np.testing.assert_allclose(b.params, manual.params - 0.1 * (0.9 * buf[0] + g), rtol=1e-12, atol=1e-14)
    assert opt.t == 2


# ----------------------------------------------------------- hyper-parameters


@pytest.mark.parametrize(
    "make",
    [
        lambda: SGD(lr=0),
        lambda: SGD(lr=-0.1),
        lambda: SGD(lr=float("nan")),
        lambda: SGD(lr="0.1"),
        lambda: SGD(momentum=1.0),
        lambda: SGD(momentum=1.5),
        lambda: SGD(momentum=-0.1),
        lambda: SGD(nesterov=True),
        lambda: SGD(weight_decay=-1e-3),
        lambda: Adam(lr=0),
        lambda: Adam(betas=(1.0, 0.999)),
        lambda: Adam(betas=(0.9, 1.0)),
        lambda: Adam(betas=(-0.1, 0.999)),
        lambda: Adam(betas=(0.9,)),
        lambda: Adam(betas=(0.9, 0.99, 0.9)),
        lambda: Adam(eps=0),
        lambda: Adam(eps=-1e-8),
        lambda: AdamW(weight_decay=-0.1),
        lambda: RMSprop(lr=-1),
        lambda: RMSprop(alpha=1.5),
        lambda: RMSprop(alpha=-0.5),
        lambda: RMSprop(momentum=1.0),
        lambda: RMSprop(eps=0),
    ],
)
def test_invalid_hyper_parameters_raise(make):
    with pytest.raises(ValueError):
        make()


def test_invalid_hyper_parameter_set_later_refused_by_fit_without_change():
    X, Y = regression(6)
    net = numbanet.Network([3, 4, 2], seed=0)
    before = net.params.copy()
    opt = SGD(lr=0.1)
    opt.lr = -1.0
    with pytest.raises(ValueError, match="lr"):
        net.fit(X, Y, optimizer=opt, progress=False)
    np.testing.assert_array_equal(net.params, before)
    assert net.epochs_trained == 0
    with pytest.raises(ValueError, match="optimizer"):
        net.fit(X, Y, optimizer="adam", progress=False)
    np.testing.assert_array_equal(net.params, before)


def test_valid_edge_hyper_parameters_accepted():
    SGD(lr=1e-12, momentum=0.0)
    SGD(momentum=0.999, nesterov=True)
    Adam(betas=(0.0, 0.0))
    RMSprop(alpha=1.0)
    RMSprop(alpha=0.0)


def test_repr_and_get_params():
    opt = SGD(lr=0.5, momentum=0.9, nesterov=True)
    assert opt.get_params() == {"lr": 0.5, "momentum": 0.9, "nesterov": True, "weight_decay": 0.0}
    assert repr(opt) == "SGD(lr=0.5, momentum=0.9, nesterov=True, weight_decay=0.0)"
    assert AdamW().get_params()["weight_decay"] == 1e-2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_plain_sgd_folded_into_the_backward_pass_equals_the_separate_update(dtype, dropout):
    # Plain SGD (no momentum, decay, L2 or clipping) updates each layer inside the backward pass,
    # its weight product straight into W (BLAS alpha = -lr, beta = 1).  A clip_norm too large to
    # ever clip takes the other path -- gradient buffer, then the update kernel -- to the same numbers.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 40)).astype(dtype)
    Y = np.eye(5, dtype=dtype)[rng.integers(0, 5, 300)]
    nets = []
    for clip in (None, 1e30):
        net = numbanet.Network([40, 64, 32, 5], activations=["relu", "tanh", "softmax"], dtype=dtype, seed=4)
        net.dropout = dropout
        net.fit(X, Y, epochs=3, batch_size=32, optimizer=numbanet.SGD(lr=0.05), clip_norm=clip, progress=False)
        nets.append(net)
    fused, separate = nets
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fused.params, separate.params, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(fused.history.loss, separate.history.loss, rtol=rtol)
    assert fused.optimizer.t == separate.optimizer.t == 3 * 10
