# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Verifying gradients
#
# A backpropagation bug rarely crashes: the network still trains, only worse.  The
# reliable way to find one is to compare the analytic gradient with finite
# differences of the loss.  numbanet makes that a one-liner
# (`numbanet.gradcheck`) and ships Hypothesis strategies
# (`numbanet.testing`) to run it on many random networks and batches.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import numbanet
from numbanet.testing import batches, configurations, network_and_batch

rng = np.random.default_rng(0)

# %% [markdown]
# ## `gradcheck`
#
# `gradcheck(net, X, Y)` perturbs every parameter by ±ε, evaluates `net.loss` at
# both points and compares the central difference with `net.gradients`.  The
# result has `.passed`, error statistics, and a readable `.report`.

# %%
net = numbanet.Network([4, 6, 5, 3], activations=["tanh", "sigmoid", "softmax"], loss="cross_entropy", seed=0)
X = rng.normal(size=(8, 4))
Y = np.eye(3)[rng.integers(0, 3, size=8)]
result = numbanet.gradcheck(net, X, Y)
print(result.report)
assert result.passed and result.n_checked == net.n_params and result.n_kink == 0

# %% [markdown]
# It covers everything that is part of the loss: sample weights and the L2 penalty
# too.  A float32 network is checked through a float64 copy of itself (finite
# differences in float32 would drown in rounding error).

# %%
weighted = numbanet.Network(
    [4, 7, 2], activations=["leaky_relu", "sigmoid"], loss="binary_cross_entropy", seed=3, l2=0.01, dtype=np.float32
)
Yb = rng.uniform(size=(8, 2))
s = rng.uniform(0, 2, size=8)
r = numbanet.gradcheck(weighted, X, Yb, sample_weight=s)
print(r)
assert r.passed

# %% [markdown]
# ## Property-based testing with `numbanet.testing`
#
# One network is one example.  `numbanet.testing.network_and_batch()` is a
# [Hypothesis](https://hypothesis.readthedocs.io) strategy that draws a valid
# network (depth, widths, a hidden activation per layer, an output activation and
# a loss that go together, a seed) and a batch of finite, bounded data that fits
# it, with targets valid for the loss.  Below the property "gradients match
# finite differences" is checked on 20 drawn cases, exactly as it would be inside
# a pytest test file.  (`derandomize=True` and `database=None` make every run of the
# notebook draw the same cases and keep no failing examples between runs.)

# %%
seen = []


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(network_and_batch(max_depth=3, max_width=6, max_samples=6))
def test_gradients_match_finite_differences(case):
    net, X, Y = case
    seen.append((list(net.sizes), net.activations, net.loss_name, X.shape[0]))
    result = numbanet.gradcheck(net, X, Y)
    assert result.passed, result.report


test_gradients_match_finite_differences()
print(f"{len(seen)} cases passed, for example:")
for sizes, activations, loss, rows in seen[:8]:
    print(f"  {str(sizes):<16} {', '.join(activations):<36} {loss:<22} {rows} rows")
assert len(seen) >= 20


# %% [markdown]
# ## A planted bug
#
# Suppose a change to the backward pass corrupted a single gradient entry.
# Training would still converge, more or less.  `gradcheck` calls the network's
# own `gradients` and `loss` methods, so a subclass with the bug is checked as it
# behaves:


# %%
class ShiftedGradient(numbanet.Network):
    """A network whose gradient has one wrong entry: dW of layer 2, row 1, column 3."""

    def gradients(self, X, Y, sample_weight=None):
        """Return the exact gradients, one entry shifted by 1e-3."""
        dW, db = super().gradients(X, Y, sample_weight)
        dW[1][1, 3] += 1e-3
        return dW, db


buggy = ShiftedGradient([4, 6, 5, 3], activations=["tanh", "sigmoid", "softmax"], loss="cross_entropy", seed=0)
r = numbanet.gradcheck(buggy, X, Y)
print(r.report)
assert not r.passed
assert [(e.layer, e.param, e.index) for e in r.failures] == [(2, "W", (1, 3))]


# %% [markdown]
# A subtler bug: summing the per-sample gradients instead of averaging them.
# With a batch of one sample the two agree, so a single hand-written test with one
# sample would miss it.  Hypothesis finds a failing case and *shrinks* it to a
# minimal one (two samples):


# %%
class SumNotMean(numbanet.Network):
    """Forgets to divide by the batch size."""

    def gradients(self, X, Y, sample_weight=None):
        """Return the batch sums of the per-sample gradients, not their means."""
        dW, db = super().gradients(X, Y, sample_weight)
        rows = np.shape(X)[0]
        return [rows * g for g in dW], [rows * g for g in db]


@st.composite
def buggy_cases(draw):
    sizes, activations, loss = draw(configurations(max_depth=2, max_width=4))
    model = SumNotMean(sizes, activations=activations, loss=loss, seed=draw(st.integers(0, 1000)))
    X, Y = draw(batches(model, max_samples=6))
    return model, X, Y


failing = []


@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(buggy_cases())
def test_sum_not_mean(case):
    model, X, Y = case
    result = numbanet.gradcheck(model, X, Y)
    if not result.passed:
        failing.append(X.shape[0])
    assert result.passed, result.report


try:
    test_sum_not_mean()
except AssertionError as error:
    print("Hypothesis found the bug; the shrunk failing case's report:\n")
    print(str(error).splitlines()[0])
    print("...")
else:
    raise AssertionError("the planted bug was not found")
print(f"\nbatch sizes of the failing cases it saw: {sorted(set(failing))}; the shrunk case has {failing[-1]} rows")
assert failing[-1] == 2  # Hypothesis re-runs the minimal failing case last

# %% [markdown]
# ## The ReLU kink
#
# Finite differences assume the loss is smooth within ±ε.  A ReLU is not smooth at
# 0: if a pre-activation sits exactly on the kink, the central difference averages
# the slopes on the two sides, while the analytic gradient uses one side
# (numbanet, like PyTorch, takes $\mathrm{relu}'(0) = 0$).  Neither is wrong, they
# just measure different things, so the comparison is meaningless there.
#
# Here is a 2–2–1 ReLU network whose first hidden unit receives exactly
# $z = 1 \cdot 1 + (-1) \cdot 1 + 0 = 0$ for the input $x = (1, 1)$:

# %%
kinked = numbanet.Network([2, 2, 1], activations=["relu", "identity"], loss="mse", seed=0)
kinked.weights[0][...] = [[1.0, -1.0], [0.5, 0.25]]
kinked.biases[0][...] = [0.0, 0.1]
kinked.weights[1][...] = [[2.0, -1.0]]
kinked.biases[1][...] = [0.3]
Xk = np.array([[1.0, 1.0]])
Yk = np.array([[-1.0]])
Z, A = kinked.forward(Xk)
print("hidden pre-activations:", Z[0])
assert Z[0][0, 0] == 0.0

dW, db = kinked.gradients(Xk, Yk)
eps = 1e-6
b = kinked.biases[0]
b[0] = eps
plus = kinked.loss(Xk, Yk)
b[0] = -eps
minus = kinked.loss(Xk, Yk)
b[0] = 0.0
numeric = (plus - minus) / (2 * eps)
print(f"∂C/∂b[0]: analytic {db[0][0]:+.6f}, central difference {numeric:+.6f}")
assert db[0][0] == 0.0 and abs(numeric) > 0.1  # they disagree

# The loss as a function of that bias: a corner at 0.
t = np.linspace(-0.5, 0.5, 201)
curve = []
for value in t:
    b[0] = value
    curve.append(kinked.loss(Xk, Yk))
b[0] = 0.0
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(t, curve)
ax.plot([0], [kinked.loss(Xk, Yk)], "ko")
ax.set(xlabel="b[0] of the hidden layer", ylabel="C", title="A corner at the ReLU kink")
plt.show()

# %% [markdown]
# `gradcheck` watches for exactly this: for every probe it runs the forward pass at
# both perturbed points, and when any ReLU-like unit changes sign between them it
# marks the entry as straddling a kink and leaves it out of the comparison -- and
# says so in the report, rather than silently passing or failing.

# %%
r = numbanet.gradcheck(kinked, Xk, Yk)
print(r.report)
assert r.passed and r.n_kink == 3
assert sorted((e.layer, e.param, e.index) for e in r.kinks) == [(1, "W", (0, 0)), (1, "W", (0, 1)), (1, "b", (0,))]

# Moved off the kink by much more than ε, every entry is compared again.
kinked.biases[0][0] = 1e-3
r = numbanet.gradcheck(kinked, Xk, Yk)
assert r.passed and r.n_kink == 0 and r.n_checked == kinked.n_params
print("\nwith b[0] = 1e-3:", repr(r))

# %% [markdown]
# In property tests, keep pre-activations away from 0 for ReLU networks (or accept
# `n_kink > 0`): left alone, Hypothesis is very good at shrinking inputs to
# exactly 0, which is exactly the kink.
