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
# # Your own activations and losses
#
# Besides its built-in activations and losses, numbanet trains networks with pieces
# you write yourself: a `numbanet.Activation` is a scalar function $\sigma(z)$ with its
# derivative $\sigma'(z)$, a `numbanet.Loss` a per-output cost $c(a, y)$ with its
# derivative $\partial c / \partial a$.  This notebook defines one of each, checks
# their derivatives (and watches the checks catch a planted mistake), trains with
# them, compares them with the new built-in activations, and saves and reloads a
# network that uses them.  The mathematics is in
# [docs/derivation.md, "Your own activations and losses"](../docs/derivation.md#your-own-activations-and-losses).

# %%
import math
import pickle
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import numbanet
from numbanet.kernels import activations as act
from numbanet.kernels.pieces import builtin_fns
from numbanet.testing import check_activation, check_loss

swish = numbanet.Activation(
    "swish",
    function=lambda z: z / (1.0 + math.exp(-z)),
    derivative=lambda z: (1.0 + math.exp(-z) + z * math.exp(-z)) / (1.0 + math.exp(-z)) ** 2,
)
log_cosh = numbanet.Loss(
    "log_cosh",
    cost=lambda a, y: math.log(math.cosh(a - y)),
    derivative=lambda a, y: math.tanh(a - y),
)
swish, log_cosh

# %% [markdown]
# ## The contract
#
# * **An activation** is two functions of one float returning a float: $\sigma(z)$
#   and $\sigma'(z)$.  It acts element-wise, $a_j = \sigma(z_j)$.  Unlike most
#   built-ins, whose $\sigma'$ is computed from $a = \sigma(z)$, a custom $\sigma'$ is
#   always evaluated at $z$ (numbanet cannot know how to write it in terms of
#   $a$), so training keeps that layer's pre-activations.  Layers with a custom
#   activation get Glorot-uniform initial weights.
# * **A loss** is two functions of two floats: the cost $c(a, y)$ of *one* output $a$
#   and its target $y$, and $\partial c / \partial a$.  The cost of a sample is the sum
#   over its outputs, $c = \sum_j c(a^L_j, y_j)$, and the cost of a batch the
#   (weighted) mean over samples, $C = \sum_i w_i c_i$, as for every built-in loss.
# * **The output delta** is the general chain rule,
#   $\delta^L = \nabla_{a^L} c \odot \sigma_L'(z^L)$ (for a softmax output its
#   Jacobian times $\nabla_{a^L} c$), with $\nabla_{a^L} c$ from your loss and
#   $\sigma_L'$ from the output activation.  There is no simplified form as for
#   softmax with cross-entropy, and the cost is computed from $a^L$.  Everything
#   else -- hidden deltas, parameter gradients, L2, dropout, optimizers -- is
#   unchanged.
#
# The functions are compiled by Numba when the piece is made (a function Numba
# cannot compile is refused right there, with Numba's reason), and reach the
# kernels as C callbacks in the `fns` bundle that every kernel takes
# (`numbanet.kernels.pieces`), so the kernels themselves are never recompiled.
#
# A quick look at both, through a network's forward pass and loss:

# %%
rng = np.random.default_rng(0)
X = rng.uniform(-2, 2, size=(8, 1))
Y = np.sin(2 * X)
net = numbanet.Network([1, 16, 1], activations=[swish, "identity"], loss=log_cosh, seed=0)
print(net)

Z, A = net.forward(X)
np.testing.assert_allclose(A[1], Z[0] / (1 + np.exp(-Z[0])), rtol=1e-13)  # σ(z) = z / (1 + e^-z)
np.testing.assert_allclose(net.loss(X, Y), np.mean(np.sum(np.log(np.cosh(A[2] - Y)), axis=1)), rtol=1e-13)
print(f"hidden activations follow swish, and the loss is the mean log-cosh: {net.loss(X, Y):.6f}")

# %% [markdown]
# ## Checking the derivatives
#
# The derivative you give is *trusted*, not derived: if it is not the derivative of
# your function, training follows a wrong gradient and no error is raised.  So
# check it.  `numbanet.testing.check_activation` compares $\sigma'$ with central
# differences of $\sigma$ at a few hundred points of $[-20, 20]$ (a seeded
# Hypothesis property: 0, the ends, small round values and points spread across
# the range); `check_loss` does the same for $\partial c/\partial a$ over pairs
# $(a, y)$.  Each returns `None` when the derivative agrees and raises an
# `AssertionError` naming the point where it does not.  `numbanet.gradcheck`
# then checks the whole network's gradient, as in notebook 03.

# %%
check_activation(swish)
check_loss(log_cosh)
result = numbanet.gradcheck(net, X, Y)
print(result.report)
assert result.passed and result.n_checked == net.n_params

# %% [markdown]
# ### A planted mistake
#
# By the quotient rule $\sigma'(z) = \big(1 + e^{-z} + z e^{-z}\big) / (1 + e^{-z})^2$.
# Forget the $z e^{-z}$ term and the result still looks plausible -- it is the
# sigmoid, positive, 1/2 at $z = 0$ -- and a network still trains with it.
# Both checks catch it:

# %%
swish_typo = numbanet.Activation(
    "swish",
    function=lambda z: z / (1.0 + math.exp(-z)),
    derivative=lambda z: (1.0 + math.exp(-z)) / (1.0 + math.exp(-z)) ** 2,  # z·exp(-z) missing
)

caught = None
try:
    check_activation(swish_typo)
except AssertionError as error:
    caught = error
    print("check_activation:", error)
assert caught is not None, "check_activation missed the planted mistake"

typo_net = numbanet.Network([1, 16, 1], activations=[swish_typo, "identity"], loss=log_cosh, seed=0)
typo_result = numbanet.gradcheck(typo_net, X, Y)
print()
print(typo_result.report)
assert not typo_result.passed


# %% [markdown]
# ## A robust fit: log-cosh against mean squared error
#
# $\log\cosh(d)$ is $\tfrac12 d^2$ near 0 and $|d| - \log 2$ far out: like the
# built-in `huber`, quadratic for small residuals and linear for large ones, but
# smooth everywhere.  Its derivative $\tanh(d)$ never exceeds 1, so a few wild
# targets cannot pull the fit as hard as they do under the squared error, whose
# derivative $d$ grows with the residual.
#
# The data: 150 noisy samples of $f(x) = \sin(1.5x)$, 8% of them outliers shifted
# up by 3 to 6.  The same swish network (same seed, same initial weights) is
# fitted once with `log_cosh` and once with `"mse"`, and each fit is compared with
# the clean $f$ on a grid.


# %%
def f(x):
    return np.sin(1.5 * x)


rng = np.random.default_rng(0)
n = 150
x = rng.uniform(-3, 3, size=n)
y = f(x) + 0.1 * rng.normal(size=n)
outlier = rng.random(n) < 0.08
y[outlier] += rng.uniform(3, 6, size=outlier.sum())
X_reg, Y_reg = x[:, None], y[:, None]
grid = np.linspace(-3, 3, 301)[:, None]

fits, median_error = {}, {}
for loss in [log_cosh, "mse"]:
    model = numbanet.Network([1, 16, 1], activations=[swish, "identity"], loss=loss, seed=0)
    model.fit(X_reg, Y_reg, epochs=300, batch_size=16, optimizer=numbanet.Adam(lr=0.01), progress=False)
    name = model.loss_name
    fits[name] = model
    median_error[name] = float(np.median(np.abs(model.predict(grid) - f(grid))))
print(f"{outlier.sum()} outliers of {n} samples")
print("median |fit - f| on the grid:", {k: round(v, 3) for k, v in median_error.items()})

fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(x[~outlier], y[~outlier], ".", color="grey", alpha=0.6, label="data")
ax.plot(x[outlier], y[outlier], "x", color="C3", label="outliers")
ax.plot(grid, f(grid), "k:", lw=2, label="clean f(x)")
for name, model in fits.items():
    ax.plot(grid, model.predict(grid), lw=2, label=f"{name} fit (median error {median_error[name]:.3f})")
ax.set(xlabel="x", ylabel="y", title="Swish network, fitted with log-cosh and with MSE")
ax.legend(fontsize=8)
plt.show()

# With this seed: log_cosh about 0.04, mse about 0.26.  Across other data seeds the
# log-cosh error stayed below 0.5x the MSE error; the asserts leave that margin.
assert median_error["log_cosh"] < 0.5 * median_error["mse"]
assert median_error["log_cosh"] < 0.1

# %% [markdown]
# ## The new built-in activations
#
# `elu`, `gelu`, `silu` and `softplus` are built in, with PyTorch's definitions
# (the formulas are in docs/derivation.md, "Activations").  Each is a pair of
# scalar functions in `numbanet.kernels.activations` -- `gelu(z)` and
# `gelu_slope(z, a)`, and so on -- and `activations.value(code, z, k, fns)` and
# `activations.slope(code, z, a, k, fns)` dispatch on the code (for a built-in,
# `k = -1` and `fns = builtin_fns()`).  ELU and softplus compute $\sigma'$ from
# $a$; GELU and SiLU need $z$ itself.
#
# The swish defined above is the built-in `silu`, written by hand.  Below, each
# $\sigma'$ is also compared with the central difference
# $\big(\sigma(z+h) - \sigma(z-h)\big)/2h$, $h = 10^{-6}$, at every plotted point.

# %%
fns = builtin_fns()
z = np.linspace(-4, 4, 321)
h = 1e-6
NEW = ["elu", "gelu", "silu", "softplus"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
for name in NEW:
    code = act.CODES[name]
    a = np.array([act.value(code, zi, -1, fns) for zi in z])
    d = np.array([act.slope(code, zi, ai, -1, fns) for zi, ai in zip(z, a)])
    central = np.array([(act.value(code, zi + h, -1, fns) - act.value(code, zi - h, -1, fns)) / (2 * h) for zi in z])
    np.testing.assert_allclose(d, central, rtol=1e-6, atol=1e-6)  # σ' is the slope of σ
    ax1.plot(z, a, label=name)
    ax2.plot(z, d, label=name)
ax1.set(xlabel="z", ylabel="σ(z)", title="activation", ylim=(-1.5, 4))
ax2.set(xlabel="z", ylabel="σ'(z)", title="derivative")
ax1.legend()
for ax in (ax1, ax2):
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
plt.show()

# Hand-written swish and built-in silu agree to rounding.
silu = act.CODES["silu"]
np.testing.assert_allclose(
    [swish.function(zi) for zi in z], [act.value(silu, zi, -1, fns) for zi in z], rtol=1e-13, atol=1e-15
)
np.testing.assert_allclose(
    [swish.derivative(zi) for zi in z], [act.slope(silu, zi, act.silu(zi), -1, fns) for zi in z], rtol=1e-12, atol=1e-15
)
print("swish == silu, and its derivative == silu's")

# %% [markdown]
# ### On the digits
#
# The 64–32–10 network of notebook 02 (softmax output, cross-entropy, Adam,
# 10 epochs) with ReLU, GELU, the built-in SiLU and the hand-written swish as
# hidden units.  swish and silu are the same function; they differ only in the
# initialisation (He normal for the built-in, Glorot uniform for every custom
# activation), and a custom activation, called through its callback, trains about
# as fast as the built-in.  On a data set this small the differences in accuracy
# are within the noise of one seed.

# %%
from IPython.display import Markdown, display
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

X_all, y_all = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X_all / 16.0, y_all, test_size=0.25, stratify=y_all, random_state=0)
Y_train = np.eye(10)[y_train]

rows = []
for hidden in ["relu", "gelu", "silu", swish]:
    model = numbanet.Network([64, 32, 10], activations=[hidden, "softmax"], loss="cross_entropy", seed=0)
    model.fit(X_train, Y_train, epochs=10, batch_size=32, optimizer=numbanet.Adam(lr=3e-3), progress=False)
    accuracy = np.mean(model.predict(X_test).argmax(axis=1) == y_test)
    rows.append((model.activation_names[0], "built-in" if isinstance(hidden, str) else "custom", accuracy))

table = "| hidden activation | kind | test accuracy |\n| --- | --- | --- |\n"
table += "\n".join(f"| `{name}` | {kind} | {acc:.1%} |" for name, kind, acc in rows)
display(Markdown(table))
assert all(acc > 0.93 for _, _, acc in rows)

# %% [markdown]
# ## Saving and loading
#
# `numbanet.save` writes the parameters and the *names* of the custom pieces -- not
# their code.  `numbanet.load` needs the pieces back, by name, in `custom=`
# (Keras' `custom_objects` convention); `net.custom_pieces` gives the mapping of a
# network at hand.  Without it, `load` raises `numbanet.ModelFileError` and says
# what is missing.

# %%
robust = fits["log_cosh"]
print("custom pieces:", robust.custom_pieces)

with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "robust.npz"
    numbanet.save(robust, path)
    restored = numbanet.load(path, custom={"swish": swish, "log_cosh": log_cosh})
    np.testing.assert_array_equal(restored.predict(grid), robust.predict(grid))
    assert restored.loss(X_reg, Y_reg) == robust.loss(X_reg, Y_reg)
    print("reloaded: identical predictions")

    missing = None
    try:
        numbanet.load(path)
    except numbanet.ModelFileError as error:
        missing = error
        print("\nwithout custom=:", str(error).replace(folder, "<temporary folder>"))  # the same every run
    assert missing is not None and "swish" in str(missing) and "log_cosh" in str(missing)

# %% [markdown]
# ## Pickling
#
# A network with custom pieces pickles when their functions do.  Functions defined
# with `def` at the top level of a module pickle *by reference* (the loading process
# imports them from that module, so put them in one of yours, not in a notebook);
# `lambda`s cannot be pickled by reference at all, so the standard `pickle`
# refuses them with a `PicklingError`.  `cloudpickle` -- which Dask, joblib's loky
# and other multiprocessing tools use -- pickles lambdas by value.

# %%
refused = None
try:
    pickle.dumps(robust)
except pickle.PicklingError as error:
    refused = error
    print("pickle with lambdas:", type(error).__name__, "-", error)
assert refused is not None

try:
    import cloudpickle
except ImportError:  # scikit-learn's joblib ships a copy
    from joblib.externals import cloudpickle
clone = pickle.loads(cloudpickle.dumps(robust))
np.testing.assert_array_equal(clone.predict(grid), robust.predict(grid))
print("cloudpickle with lambdas: identical predictions")


def swish_value(z):
    return z / (1.0 + math.exp(-z))


def swish_slope(z):
    s = 1.0 / (1.0 + math.exp(-z))
    return s * (1.0 + z * (1.0 - s))


swish_def = numbanet.Activation("swish", swish_value, swish_slope)
check_activation(swish_def)
by_reference = numbanet.Network([1, 16, 1], activations=[swish_def, "identity"], loss="mse", seed=0)
copy = pickle.loads(pickle.dumps(by_reference))
np.testing.assert_array_equal(copy.predict(grid), by_reference.predict(grid))
print("pickle with def functions: identical predictions")

# %% [markdown]
# ## Summary
#
# | task | how |
# | --- | --- |
# | your own activation | `numbanet.Activation(name, function=σ, derivative=σ')`, scalar floats, Numba-compilable |
# | your own loss | `numbanet.Loss(name, cost=c(a, y), derivative=∂c/∂a)`, per output, summed over outputs |
# | check a derivative | `numbanet.testing.check_activation(act)`, `check_loss(loss)` |
# | check the network's gradient | `numbanet.gradcheck(net, X, Y)` |
# | save / load | `numbanet.save(net, path)`, `numbanet.load(path, custom=net.custom_pieces)` |
# | pickle | `def` functions in a module: `pickle`; lambdas: `cloudpickle` |
