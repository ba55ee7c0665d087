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
# # Backpropagation, step by step
#
# This notebook derives backpropagation for a fully-connected network and puts
# **each equation next to the numbanet kernel that computes it**.  Every step is
# then checked twice: against `numbanet.reference` (the textbook algorithm written
# literally, one sample at a time, column vectors) and against **finite
# differences** of the cost.  The checks are `np.testing` assertions, so if a
# kernel were wrong this notebook would fail.
#
# **Notation** (as in [docs/derivation.md](../docs/derivation.md)).  Layers are numbered $1, \dots, L$; layer 1 is
# the input $a^1 = x$ and has no parameters.  Layer $l \ge 2$ has weights $W^l$ of
# shape $(n_l, n_{l-1})$ (outputs by inputs), a bias $b^l$ of length $n_l$ and an
# activation $\sigma_l$.  In code a *batch* is a matrix with one sample per row,
# so the per-sample column vector $a^l$ becomes row $i$ of the matrix $A^l$.
# Python lists are 0-based and hold only the weighted layers: `net.weights[0]` is
# $W^2$, `Z[0]` is $Z^2$, and `A[0]` is the input $A^1 = X$.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager

import numbanet
from numbanet import reference as ref
from numbanet.kernels import activations as act
from numbanet.kernels import dense, losses, updates
from numbanet.kernels.pieces import builtin_fns

np.set_printoptions(precision=5, suppress=True)
# The Chinese translation (.zh) labels its plots in Chinese: a CJK font draws those glyphs where one is installed.
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
)
installed = {font.name for font in font_manager.fontManager.ttflist}
plt.rcParams["font.family"] = ["DejaVu Sans", *(name for name in CJK_FONTS if name in installed)]
rng = np.random.default_rng(0)

sizes = [3, 5, 4, 2]  # n_1 (input), n_2, n_3, n_4 = n_L
net = numbanet.Network(sizes, activations=["tanh", "sigmoid", "sigmoid"], loss="mse", seed=0)
n = 6  # samples in the mini-batch
X = rng.normal(size=(n, sizes[0]))
Y = rng.uniform(size=(n, sizes[-1]))

L = net.n_layers  # weighted layers (the textbook's L - 1)
codes = [act.CODES[name] for name in net.activations]
fns, K = builtin_fns(), -1  # no custom activations or loss: see section 1
weights, biases, names = ref.from_network(net)  # the textbook's copy: column-vector biases
net


# %%
def numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar f(x) with respect to every entry of x (restored after)."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = f(x)
        x[idx] = old - eps
        minus = f(x)
        x[idx] = old
        g[idx] = (plus - minus) / (2 * eps)
    return g


def column(v):
    return np.asarray(v, dtype=float).reshape(-1, 1)


# %% [markdown]
# ## 1. Forward pass
#
# For one sample, each layer takes a weighted sum of the previous layer's
# activations and applies its activation function:
#
# $$ z^l = W^l a^{l-1} + b^l, \qquad a^l = \sigma_l(z^l), \qquad a^1 = x. $$
#
# With the samples as the rows of $A^{l-1}$ the same equations read
#
# $$ Z^l = A^{l-1} (W^l)^{\mathsf T} + \mathbf 1\, (b^l)^{\mathsf T}, \qquad A^l = \sigma_l(Z^l). $$
#
# | equation | kernel |
# | --- | --- |
# | $Z^l = A^{l-1} (W^l)^{\mathsf T} + b^l$ | `dense.linear(A_prev, W, b, out)` (one BLAS call plus the bias) |
# | $A^l = \sigma_l(Z^l)$ | `activations.activate(Z, code, k, fns, out)` |
# | both, fused in one pass | `dense.forward(A_prev, W, b, code, k, fns, out)` (what training uses) |
#
# Every kernel that applies an activation or a loss element by element also takes
# `k` and `fns`: `fns` is the bundle of compiled callbacks for the network's *custom*
# activations and loss (`numbanet.kernels.pieces`, notebook 05), and `k` is the
# layer's index among its custom activations.  This network uses only built-in
# pieces, so it passes `k = -1` and `fns = builtin_fns()`, whose callbacks are never
# called.

# %%
Z, A = [], [X]
for l in range(L):
    z = np.empty((n, sizes[l + 1]))
    dense.linear(A[l], net.weights[l], net.biases[l], z)  # Z = A_prev W^T + b
    a = np.empty_like(z)
    act.activate(z, codes[l], K, fns, a)  # A = σ(Z)
    Z.append(z)
    A.append(a)

# The textbook, one sample (a column vector) at a time:
for i in range(n):
    zs, as_ = ref.feedforward(weights, biases, names, column(X[i]))
    for l in range(L):
        np.testing.assert_allclose(Z[l][i], zs[l].ravel(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(A[l + 1][i], as_[l + 1].ravel(), rtol=1e-12, atol=1e-15)

# The fused kernel and the Network method agree too.
for l in range(L):
    fused = np.empty_like(A[l + 1])
    dense.forward(A[l], net.weights[l], net.biases[l], codes[l], K, fns, fused)
    np.testing.assert_allclose(fused, A[l + 1], rtol=1e-12, atol=1e-15)
Z_net, A_net = net.forward(X)
np.testing.assert_allclose(A_net[-1], A[-1], rtol=1e-12)
print("output activations A^L:")
print(A[-1])

# %% [markdown]
# ## 2. Cost
#
# The cost of one sample with the mean squared error is
# $c = \tfrac12 \sum_j (a^L_j - y_j)^2$, and the cost of a batch is the mean of the
# per-sample costs,
#
# $$ C = \frac1n \sum_{i=1}^n c_i . $$
#
# numbanet writes the batch cost as a weighted sum $C = \sum_i w_i c_i$ with *row
# weights* $w_i$: $w_i = 1/n$ gives the mean.  (With sample weights $s_i$ it is
# $w_i = s_i / \sum_k s_k$; section 6 comes back to this.)
#
# | equation | kernel |
# | --- | --- |
# | $C = \sum_i w_i c_i$ | `losses.batch_cost(A, Y, loss, row_weight, fns)` |
# | $c_i$ of one row | the same kernel on that row with weight 1: `losses.batch_cost(A[i:i+1], Y[i:i+1], loss, np.ones(1), fns)` |
#
# For MSE the per-sample costs are also one line of NumPy,
# `0.5 * ((A - Y) ** 2).sum(axis=1)`; the kernel computes the same sum row by row,
# accumulating in float64.

# %%
one = np.ones(1)
c = np.array([losses.batch_cost(A[-1][i : i + 1], Y[i : i + 1], losses.MSE, one, fns) for i in range(n)])
w = np.full(n, 1.0 / n)  # row weights of a plain mean
C = losses.batch_cost(A[-1], Y, losses.MSE, w, fns)

np.testing.assert_allclose(c, 0.5 * ((A[-1] - Y) ** 2).sum(axis=1), rtol=1e-12)  # the NumPy formula

c_textbook = [ref.cost("mse", column(A[-1][i]), column(Y[i])) for i in range(n)]
np.testing.assert_allclose(c, c_textbook, rtol=1e-12)
np.testing.assert_allclose(C, np.mean(c), rtol=1e-12)
np.testing.assert_allclose(C, ref.total_cost(weights, biases, names, "mse", X, Y), rtol=1e-12)
np.testing.assert_allclose(C, net.loss(X, Y), rtol=1e-12)
print(f"per-sample costs {c}\nbatch cost C = {C:.6f}")

# %% [markdown]
# ## 3. Output delta
#
# Define the *error* of layer $l$ as the derivative of the cost with respect to
# the layer's pre-activations, $\delta^l = \partial c / \partial z^l$.  At the
# output $a^L = \sigma_L(z^L)$ and each $a^L_j$ depends only on $z^L_j$ (for an
# element-wise activation), so the chain rule gives
#
# $$ \delta^L = \nabla_{a^L} c \odot \sigma_L'(z^L), \qquad
#    \nabla_{a^L} c = a^L - y \ \text{(MSE)}, \qquad \sigma'(z) = \sigma(z)\,(1 - \sigma(z)) \ \text{(sigmoid)}. $$
#
# Every activation is a pair of scalar functions side by side in
# `numbanet.kernels.activations`: `sigmoid(z)` is $\sigma(z)$ and `sigmoid_slope(z, a)`
# is $\sigma'(z)$, given both $z$ and $a = \sigma(z)$ so that each derivative is
# written in its cheapest stable form.  For sigmoid, tanh, the ReLUs, ELU and softplus
# that form uses only $a$ (here $\sigma'(z) = a(1-a)$), so for those hidden layers
# training does not store $Z$; GELU, SiLU and custom activations need $z$ itself
# (`activations.needs_z(code)`), and for those layers the training loop keeps $Z$.
# In batch form each row is scaled by its row weight: row $i$ of
# $\Delta^L$ is $w_i\,\delta^L_i$, which is exactly $\partial C / \partial Z^L$.
#
# | equation | kernel |
# | --- | --- |
# | $\nabla_{a} c$ | `losses.cost_gradient(A, Y, loss, fns, out)` |
# | $\sigma(z)$, $\sigma'(z)$ of one value | `activations.sigmoid(z)`, `activations.sigmoid_slope(z, a)` (any code: `activations.value(code, z, k, fns)`, `activations.slope(code, z, a, k, fns)`) |
# | $D \leftarrow D \odot \sigma'(Z)$ | `activations.backprop_inplace(D, A, Z, code, k, fns, a_scale)` (`a_scale = 1`; pass `Z = A` when $\sigma'$ comes from $a$) |
# | $\Delta^L = \operatorname{diag}(w)\,(\nabla_a c \odot \sigma'(Z^L))$ | `losses.output_delta(A, Z, Y, loss, code, k, fns, row_weight, out)` |

# %%
grad_a = np.empty_like(A[-1])
losses.cost_gradient(A[-1], Y, losses.MSE, fns, grad_a)  # ∂c/∂a = a - y
delta_L = grad_a.copy()
act.backprop_inplace(delta_L, A[-1], Z[-1], codes[-1], K, fns, 1.0)  # ∂c/∂a ⊙ σ'(z), one row per sample

# The sigmoid's scalar pair, element by element: σ(z) = a and σ'(z) = a (1 - a).
np.testing.assert_allclose(np.vectorize(act.sigmoid)(Z[-1]), A[-1], rtol=1e-15)
sigma_prime = np.vectorize(act.sigmoid_slope)(Z[-1], A[-1])
np.testing.assert_allclose(sigma_prime, A[-1] * (1 - A[-1]), rtol=1e-15)
np.testing.assert_allclose(delta_L, grad_a * sigma_prime, rtol=1e-15)

Delta_L = np.empty_like(A[-1])
losses.output_delta(A[-1], Z[-1], Y, losses.MSE, codes[-1], K, fns, w, Delta_L)
np.testing.assert_allclose(Delta_L, delta_L / n, rtol=1e-12)

# Textbook, per sample: δ^L = ∂c/∂a ⊙ σ'(z^L)
for i in range(n):
    zs, as_ = ref.feedforward(weights, biases, names, column(X[i]))
    d = ref.cost_derivative("mse", as_[-1], column(Y[i])) * ref.sigmoid_prime(zs[-1])
    np.testing.assert_allclose(delta_L[i], d.ravel(), rtol=1e-10)


# Finite differences: Δ^L is the derivative of the batch cost C with respect to Z^L.
def cost_of_output_z(ZL):
    return np.mean([ref.cost("mse", column(ref.sigmoid(ZL[i])), column(Y[i])) for i in range(n)])


numeric = numeric_grad(cost_of_output_z, Z[-1].copy())
np.testing.assert_allclose(Delta_L, numeric, rtol=1e-6, atol=1e-10)
print("Δ^L (rows already carry 1/n):")
print(Delta_L)

# %% [markdown]
# ## 4. Backward recursion
#
# $z^{l+1} = W^{l+1} a^l + b^{l+1}$ depends on $z^l$ only through $a^l = \sigma_l(z^l)$,
# so $\partial z^{l+1}_k / \partial z^l_j = W^{l+1}_{kj}\,\sigma_l'(z^l_j)$ and the
# chain rule, summed over the units $k$ of layer $l+1$, gives
#
# $$ \delta^l = \big( (W^{l+1})^{\mathsf T} \delta^{l+1} \big) \odot \sigma_l'(z^l),
#    \qquad l = L-1, \dots, 2 . $$
#
# In batch form (rows are samples, so the transpose moves):
# $\Delta^l = (\Delta^{l+1} W^{l+1}) \odot \sigma_l'(Z^l)$.  The row weights ride along
# unchanged, because the recursion is linear in $\Delta^{l+1}$.
#
# | equation | kernel |
# | --- | --- |
# | $\Delta^l = (\Delta^{l+1} W^{l+1}) \odot \sigma_l'(Z^l)$ | `dense.hidden_delta(Delta_next, W_next, A, Z, code, k, fns, a_scale, out)` |
#
# `a_scale` is 1 here; with dropout, training stores the activations times
# $1/(1-p)$ and passes `a_scale` $= 1 - p$ to undo that inside $\sigma'$.
#
# For a single sample the bias gradient *is* the delta ($\partial c/\partial b^l = \delta^l$),
# so `ref.backprop`'s bias gradients give the textbook deltas to compare with.

# %%
Delta = [None] * L
Delta[-1] = Delta_L
for l in range(L - 2, -1, -1):
    Delta[l] = np.empty_like(A[l + 1])
    dense.hidden_delta(Delta[l + 1], net.weights[l + 1], A[l + 1], Z[l], codes[l], K, fns, 1.0, Delta[l])

# Textbook deltas, one sample at a time (rows of Δ carry 1/n).
for i in range(n):
    _, nabla_b = ref.backprop(weights, biases, names, "mse", column(X[i]), column(Y[i]))
    for l in range(L):
        np.testing.assert_allclose(n * Delta[l][i], nabla_b[l].ravel(), rtol=1e-10, atol=1e-15)


# Finite differences: Δ^l = ∂C/∂Z^l, perturbing Z^l and running the rest of the network.
def cost_from(l, Zl):
    a = ref.ACTIVATIONS[names[l]][0](Zl)
    for k in range(l + 1, L):
        a = ref.ACTIVATIONS[names[k]][0](a @ net.weights[k].T + net.biases[k])
    return np.mean([ref.cost("mse", column(a[i]), column(Y[i])) for i in range(n)])


for l in range(L):
    numeric = numeric_grad(lambda Zl: cost_from(l, Zl), Z[l].copy())
    np.testing.assert_allclose(Delta[l], numeric, rtol=1e-6, atol=1e-10)
    print(f"layer {l + 2}: |Δ - numeric| <= {np.abs(Delta[l] - numeric).max():.1e}")

# %% [markdown]
# ## 5. Parameter gradients
#
# $z^l_j = \sum_k W^l_{jk} a^{l-1}_k + b^l_j$, so $\partial z^l_j / \partial W^l_{jk} = a^{l-1}_k$
# and $\partial z^l_j / \partial b^l_j = 1$:
#
# $$ \frac{\partial c}{\partial W^l} = \delta^l (a^{l-1})^{\mathsf T}, \qquad
#    \frac{\partial c}{\partial b^l} = \delta^l . $$
#
# Summed over the rows of a batch whose deltas carry the weights $w_i = 1/n$ these
# become the batch means
#
# $$ \frac{\partial C}{\partial W^l} = (\Delta^l)^{\mathsf T} A^{l-1}, \qquad
#    \frac{\partial C}{\partial b^l} = \textstyle\sum_{\text{rows}} \Delta^l
#    \qquad\Big(= \tfrac1n \sum_i \delta^l_i (a^{l-1}_i)^{\mathsf T} \text{ and } \tfrac1n \sum_i \delta^l_i\Big). $$
#
# | equation | kernel |
# | --- | --- |
# | $dW = \Delta^{\mathsf T} A_{prev}$, $db = \sum_{rows} \Delta$ | `dense.layer_gradients(Delta, A_prev, dW, db)` |

# %%
dW = [np.empty_like(W) for W in net.weights]
db = [np.empty_like(b) for b in net.biases]
for l in range(L):
    dense.layer_gradients(Delta[l], A[l], dW[l], db[l])

nabla_w, nabla_b = ref.batch_gradients(weights, biases, names, "mse", X, Y)  # mean of per-sample gradients
dW_net, db_net = net.gradients(X, Y)  # the training loop's kernels
for l in range(L):
    np.testing.assert_allclose(dW[l], nabla_w[l], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(db[l], nabla_b[l].ravel(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(dW_net[l], dW[l], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(db_net[l], db[l], rtol=1e-12, atol=1e-15)

# Finite differences of net.loss, perturbing the network's live weight and bias arrays in place.
for l in range(L):
    num_W = numeric_grad(lambda _: net.loss(X, Y), net.weights[l])
    num_b = numeric_grad(lambda _: net.loss(X, Y), net.biases[l])
    np.testing.assert_allclose(dW[l], num_W, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(db[l], num_b, rtol=1e-6, atol=1e-10)
# numeric_grad put every entry back exactly: the network still equals its textbook copy.
np.testing.assert_array_equal(
    net.params, np.concatenate([np.concatenate([W.ravel(), b.ravel()]) for W, b in zip(weights, biases)])
)
print("∂C/∂W for the output layer:")
print(dW[-1])


# %% [markdown]
# ## 6. Averaging over the mini-batch
#
# The gradient of a batch is the **mean of the per-sample gradients**: each sample
# contributes the outer product $\delta_i (a_i)^{\mathsf T}$, and the kernels get the
# mean for free because the $1/n$ sits in the rows of $\Delta^L$ and is carried
# linearly through the recursion.  The same mechanism gives weighted means: with
# sample weights $s_i$ the rows carry $w_i = s_i / \sum_k s_k$ and the kernels need
# no other change.  A sample of weight 2 then counts exactly like a sample that
# appears twice.
#
# Below, the whole backward pass is assembled from the kernels once more, as a
# function of the row weights.


# %%
def kernel_gradients(Z, A, Y, row_weight):
    """Every layer's (dW, db) from the forward pass (Z, A), using only numbanet kernels."""
    Delta = [np.empty_like(a) for a in A[1:]]
    losses.output_delta(A[-1], Z[-1], Y, losses.MSE, codes[-1], K, fns, row_weight, Delta[-1])
    for l in range(L - 2, -1, -1):
        dense.hidden_delta(Delta[l + 1], net.weights[l + 1], A[l + 1], Z[l], codes[l], K, fns, 1.0, Delta[l])
    dW = [np.empty_like(W) for W in net.weights]
    db = [np.empty_like(b) for b in net.biases]
    for l in range(L):
        dense.layer_gradients(Delta[l], A[l], dW[l], db[l])
    return dW, db


per_sample = [ref.backprop(weights, biases, names, "mse", column(X[i]), column(Y[i])) for i in range(n)]

# Plain mean: w_i = 1/n.
dW_mean, db_mean = kernel_gradients(Z, A, Y, np.full(n, 1.0 / n))
for l in range(L):
    np.testing.assert_allclose(dW_mean[l], np.mean([g[0][l] for g in per_sample], axis=0), rtol=1e-10)

# Weighted mean: w_i = s_i / Σ s.
s = np.array([1.0, 2.0, 0.0, 0.5, 1.0, 3.0])
dW_s, db_s = kernel_gradients(Z, A, Y, s / s.sum())
dW_net, db_net = net.gradients(X, Y, sample_weight=s)
for l in range(L):
    expected = sum(s[i] * per_sample[i][0][l] for i in range(n)) / s.sum()
    np.testing.assert_allclose(dW_s[l], expected, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(dW_net[l], dW_s[l], rtol=1e-10, atol=1e-15)

# Weight 2 is the same as repeating the sample; weight 0 the same as leaving it out.
s_int = np.array([1.0, 2.0, 0.0, 1.0, 1.0, 3.0])
rows = np.repeat(np.arange(n), s_int.astype(int))  # [0, 1, 1, 3, 4, 5, 5, 5]
dW_rep, _ = net.gradients(X[rows], Y[rows])
dW_w, _ = net.gradients(X, Y, sample_weight=s_int)
for l in range(L):
    np.testing.assert_allclose(dW_w[l], dW_rep[l], rtol=1e-10, atol=1e-15)
print("mean, weighted mean and repetition all agree")

# %% [markdown]
# ## 7. The gradient-descent step
#
# Plain mini-batch gradient descent moves every parameter against its gradient,
#
# $$ W^l \leftarrow W^l - \eta\, \frac{\partial C}{\partial W^l}, \qquad
#    b^l \leftarrow b^l - \eta\, \frac{\partial C}{\partial b^l} . $$
#
# All of a network's parameters live in one flat vector `net.params` ($W^2$ row by
# row, then $b^2$, then $W^3$, ...), of which `net.weights[l]` and `net.biases[l]`
# are views; so one kernel call updates every parameter.
#
# | equation | kernel |
# | --- | --- |
# | $\theta \leftarrow \theta - \eta\, g$ | `updates.sgd_step(theta, grad, lr)` |
# | momentum, Nesterov, Adam, AdamW, RMSprop | `updates.update(code, theta, grad, state, hyper, lr, t)` |
#
# To first order the step lowers the cost by $\eta \lVert g \rVert^2$.

# %%
eta = 0.5
flat_grad = np.concatenate([np.concatenate([dW[l].ravel(), db[l]]) for l in range(L)])
theta = net.params.copy()
updates.sgd_step(theta, flat_grad, eta)

new_w, new_b = ref.update_mini_batch(weights, biases, names, "mse", X, Y, eta)
np.testing.assert_allclose(
    theta, np.concatenate([np.concatenate([W.ravel(), b.ravel()]) for W, b in zip(new_w, new_b)]), rtol=1e-12
)

# Network.train_on_batch takes exactly this step (one SGD step on the whole batch).
stepped = net.copy()
stepped.train_on_batch(X, Y, optimizer=numbanet.SGD(lr=eta))
np.testing.assert_allclose(stepped.params, theta, rtol=1e-12)

# First-order decrease for a small step.
small = net.copy()
small.params[...] -= 1e-4 * flat_grad
predicted = 1e-4 * flat_grad @ flat_grad
actual = net.loss(X, Y) - small.loss(X, Y)
np.testing.assert_allclose(actual, predicted, rtol=1e-3)
print(f"C before {net.loss(X, Y):.6f}, after one step of η={eta}: {stepped.loss(X, Y):.6f}")

# %% [markdown]
# Putting the pieces together gives the training loop.  Below, 60 steps of gradient
# descent (η = 2) on the batch are taken twice: with the kernels above, and with
# the textbook's `update_mini_batch`.  The two loss curves coincide.
#
# Like the training loop, this one uses the fused `dense.forward`, which keeps only
# the activations.  That is enough here because tanh and sigmoid take $\sigma'$ from
# $a$: where a kernel asks for `Z` it is given `A`, which it does not read.

# %%
eta = 2.0
assert not any(act.needs_z(code) for code in codes)  # σ' from a alone: Z need not be kept
trained = net.copy()
wt, bt = weights, biases
kernel_curve, textbook_curve = [], []
for step in range(60):
    As = [X]
    for l in range(L):
        out = np.empty((n, sizes[l + 1]))
        dense.forward(As[l], trained.weights[l], trained.biases[l], codes[l], K, fns, out)
        As.append(out)
    kernel_curve.append(losses.batch_cost(As[-1], Y, losses.MSE, w, fns))
    Delta = [np.empty_like(a) for a in As[1:]]
    losses.output_delta(As[-1], As[-1], Y, losses.MSE, codes[-1], K, fns, w, Delta[-1])  # Z = A
    for l in range(L - 2, -1, -1):
        dense.hidden_delta(
            Delta[l + 1], trained.weights[l + 1], As[l + 1], As[l + 1], codes[l], K, fns, 1.0, Delta[l]
        )  # Z = A
    grad = np.empty_like(trained.params)
    pos = 0
    for l in range(L):
        dWl = grad[pos : pos + trained.weights[l].size].reshape(trained.weights[l].shape)
        pos += dWl.size
        dbl = grad[pos : pos + trained.biases[l].size]
        pos += dbl.size
        dense.layer_gradients(Delta[l], As[l], dWl, dbl)
    updates.sgd_step(trained.params, grad, eta)

    textbook_curve.append(ref.total_cost(wt, bt, names, "mse", X, Y))
    wt, bt = ref.update_mini_batch(wt, bt, names, "mse", X, Y, eta)

np.testing.assert_allclose(kernel_curve, textbook_curve, rtol=1e-9)
assert kernel_curve[-1] < 0.5 * kernel_curve[0]

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(textbook_curve, lw=4, alpha=0.4, label="textbook (numbanet.reference)")
ax.plot(kernel_curve, "k--", lw=1.5, label="numbanet kernels")
ax.set(xlabel="gradient-descent step", ylabel="batch cost C", title="The same descent, twice")
ax.legend()
plt.show()

# %% [markdown]
# ## 8. Softmax with cross-entropy: the simplified output delta
#
# A softmax output couples a row: $a_j = e^{z_j} / \sum_k e^{z_k}$ has the Jacobian
# $\partial a_j / \partial z_k = a_j(\mathbb 1_{jk} - a_k)$.  With the cross-entropy
# $c = -\sum_j y_j \log a_j$ the chain rule $\delta = J^{\mathsf T} \nabla_a c$ collapses:
#
# $$ \delta_k = \sum_j a_j(\mathbb 1_{jk} - a_k)\Big(-\frac{y_j}{a_j}\Big)
#             = a_k \sum_j y_j - y_k = a_k - y_k \quad\text{when } \textstyle\sum_j y_j = 1. $$
#
# numbanet computes it in this simplified form (`losses.output_delta_simplified`,
# chosen by `losses.output_delta` for this pair and for sigmoid with binary
# cross-entropy).  It is not only shorter; it is the *stable* way: the chain form
# divides by $a_j$, which can underflow to 0.
#
# For the same two pairs the *cost* is computed from the logits $z$ rather than
# from $a$.  For softmax with cross-entropy it is
# $c = \sum_j y_j\,(\operatorname{lse}(z) - z_j)$ with
# $\operatorname{lse}(z) = \log \sum_k e^{z_k}$ (computed with the row maximum
# subtracted), which never takes the logarithm of an underflowed probability;
# sigmoid with binary cross-entropy has a similar form.
#
# | equation | kernel |
# | --- | --- |
# | $\Delta^L = \operatorname{diag}(w)(A^L - Y)$ | `losses.output_delta_simplified(A, Y, loss, row_weight, out)` |
# | the general chain rule | `losses.output_delta_chain(A, Z, Y, loss, code, k, fns, row_weight, out)` |
# | $C$ from the logits | `losses.batch_cost_logits(Z, Y, loss, row_weight)` |

# %%
ce = numbanet.Network([3, 5, 3], activations=["tanh", "softmax"], loss="cross_entropy", seed=1)
Yc = np.eye(3)[rng.integers(0, 3, size=n)]
Zc, Ac = ce.forward(X)
SOFTMAX = act.CODES["softmax"]

simplified = np.empty_like(Ac[-1])
losses.output_delta_simplified(Ac[-1], Yc, losses.CROSS_ENTROPY, w, simplified)
chain = np.empty_like(Ac[-1])
losses.output_delta_chain(Ac[-1], Zc[-1], Yc, losses.CROSS_ENTROPY, SOFTMAX, K, fns, w, chain)
np.testing.assert_allclose(simplified, w[:, None] * (Ac[-1] - Yc), rtol=1e-12)
np.testing.assert_allclose(chain, simplified, rtol=1e-9, atol=1e-15)


# Both are ∂C/∂Z^L (finite differences through the textbook softmax and cost).
def ce_cost_of_z(ZL):
    return np.mean([ref.cost("cross_entropy", ref.softmax(column(ZL[i])), column(Yc[i])) for i in range(n)])


np.testing.assert_allclose(simplified, numeric_grad(ce_cost_of_z, Zc[-1].copy()), rtol=1e-6, atol=1e-10)

# The cost from the logits is the cost from the probabilities, and what Network.loss reports.
C_ce = losses.batch_cost_logits(Zc[-1], Yc, losses.CROSS_ENTROPY, w)
np.testing.assert_allclose(C_ce, losses.batch_cost(Ac[-1], Yc, losses.CROSS_ENTROPY, w, fns), rtol=1e-12)
np.testing.assert_allclose(C_ce, ce.loss(X, Yc), rtol=1e-12)

# A confident wrong answer: the true class has probability e^-800, which underflows to 0.
Z_bad = np.array([[800.0, 0.0, 0.0]])
A_bad = np.empty_like(Z_bad)
act.activate(Z_bad, SOFTMAX, K, fns, A_bad)
np.testing.assert_array_equal(A_bad, [[1.0, 0.0, 0.0]])
Y_bad = np.array([[0.0, 1.0, 0.0]])
one = np.ones(1)
stable, unstable = np.empty((1, 3)), np.empty((1, 3))
losses.output_delta_simplified(A_bad, Y_bad, losses.CROSS_ENTROPY, one, stable)
losses.output_delta_chain(A_bad, Z_bad, Y_bad, losses.CROSS_ENTROPY, SOFTMAX, K, fns, one, unstable)
print("exact a - y :", stable.ravel())
print("chain rule  :", unstable.ravel(), " <- the gradient vanished")
np.testing.assert_array_equal(stable, A_bad - Y_bad)
assert not np.allclose(unstable, A_bad - Y_bad)

# The same for the cost: log(a) stops at log of the smallest normal float, the logits do not.
from_a = losses.batch_cost(A_bad, Y_bad, losses.CROSS_ENTROPY, one, fns)
from_z = losses.batch_cost_logits(Z_bad, Y_bad, losses.CROSS_ENTROPY, one)
print(f"cost from a: {from_a:.2f} (clipped),  from the logits: {from_z:.2f} (exact)")
np.testing.assert_allclose(from_z, 800.0, rtol=1e-12)
assert from_a < 710

# %% [markdown]
# ## 9. How small should the finite-difference step be?
#
# Every check above used central differences with $\varepsilon = 10^{-6}$.  The
# central difference $\big(C(\theta+\varepsilon) - C(\theta-\varepsilon)\big) / 2\varepsilon$
# has a truncation error of order $\varepsilon^2$ and a rounding error of order
# $u/\varepsilon$ ($u \approx 10^{-16}$ in float64); the one-sided difference has
# truncation error of order $\varepsilon$.  Their sum is smallest near
# $\varepsilon \approx u^{1/3} \approx 10^{-5}$ for the central difference, which is
# why `numbanet.gradcheck` uses $10^{-5}$ and float64.

# %%
l, j, k = 0, 1, 2
exact = dW[l][j, k]
W0 = net.weights[l]
original = W0[j, k]
epsilons = np.logspace(-12, -1, 45)
central, forward_err = [], []
base = net.loss(X, Y)
for eps in epsilons:
    W0[j, k] = original + eps
    plus = net.loss(X, Y)
    W0[j, k] = original - eps
    minus = net.loss(X, Y)
    W0[j, k] = original
    central.append(abs((plus - minus) / (2 * eps) - exact))
    forward_err.append(abs((plus - base) / eps - exact))
assert W0[j, k] == original
central, forward_err = np.maximum(central, 1e-17), np.maximum(forward_err, 1e-17)
assert central[np.argmin(np.abs(epsilons - 1e-5))] < 1e-8 * max(1.0, abs(exact))

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(epsilons, central, "o-", ms=3, label="central difference")
ax.loglog(epsilons, forward_err, "s-", ms=3, label="forward difference")
ax.axvline(1e-5, color="grey", ls=":", label="gradcheck's default ε")
ax.set(xlabel="ε", ylabel="|numeric − analytic|", title=f"Error of ∂C/∂W[{l}][{j},{k}]")
ax.legend()
plt.show()

# %% [markdown]
# ## Summary
#
# Forward pass, cost, output delta, backward recursion, gradients and update: each
# step above has its row in the table in
# [docs/derivation.md, "Equations and kernels"](../docs/derivation.md#equations-and-kernels),
# which maps every equation to its kernel and to its textbook copy in `numbanet.reference`.
#
# `numbanet.kernels.training.train_slice(model, data, work, run, max_batches, stop_at_epoch_end)`
# runs exactly these kernels for every mini-batch (the network, data, work buffer
# and training run travel as named bundles: `Model`, `Data`, `Work`, `Run`), many
# mini-batches (and epochs) per compiled call, returning to Python about every 50 ms
# so that Ctrl-C and progress bars are served.
