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
# # 反向传播，一步一步推导
#
# 本笔记本推导全连接网络的反向传播算法，并把**每一个公式与计算它的 numbanet 计算核（kernel）放在一起**。
# 每一步都检验两次：一次对照 `numbanet.reference`（逐字写出的教科书算法：一次一个样本，列向量），
# 一次对照代价函数的**有限差分**。这些检验都是 `np.testing` 断言，所以只要某个计算核算错，这个笔记本就会运行失败。
#
# 这是 `01-backpropagation.ipynb` 的中文版：推导与检验相同，代码也与英文版相同，只有注释、打印的文字和图中的标注
# 译成了中文（`tests/test_notebooks.py` 会检查两者除文字外的代码完全一致），所以算出的每一个数都相同。
#
# 推导的思路沿用中文教程《全连接神经网络中反向传播算法数学推导》：先逐层前向传播，再从输出层的误差出发，
# 沿着与前向相反的方向逐层求出误差 $\delta^l$，最后由误差得到每一层的梯度，并按下面的 11 步组织训练循环。
#
# **记号**（与 [docs/derivation.md](../docs/derivation.md) 相同）。网络的层编号为 $1, \dots, L$；第 1 层是输入层
# $a^1 = x$，没有参数。第 $l \ge 2$ 层有形状为 $(n_l, n_{l-1})$（输出数 × 输入数）的权重矩阵 $W^l$、
# 长度为 $n_l$ 的偏置 $b^l$ 和激活函数 $\sigma_l$。推导中，一个样本的 $x$、$y$、$z^l$、$a^l$ 和误差 $\delta^l$
# 都是**列向量**。代码中，一个*批量*（batch）是每行一个样本的矩阵，所以单个样本的列向量 $a^l$ 就是矩阵 $A^l$ 的第 $i$ 行。
# Python 列表从 0 开始计数，而且只包含有权重的层：`net.weights[0]` 是 $W^2$，`Z[0]` 是 $Z^2$，`A[0]` 是输入 $A^1 = X$。
#
# **训练循环的 11 步**（教科书的做法，一次一个样本；`numbanet.reference` 就是这样写的）：
#
# 1. 初始化每一层的 $W^l$ 和 $b^l$；选定训练轮数（epoch）、批量大小和学习率 $\eta$。
# 2. 取下一个小批量（mini-batch）的样本。
# 3. 从中取一个样本 $(x, y)$。
# 4. 前向传播：对 $l = 2, \dots, L$ 计算 $z^l$ 和 $a^l$（第 1 节）。
# 5. 计算这个样本的代价 $c$（第 2 节）。
# 6. 计算输出层的误差 $\delta^L$（第 3 节）。
# 7. 反向传播：对 $l = L-1, \dots, 2$ 依次求出 $\delta^l$（第 4 节）。
# 8. 计算每一层的 $\partial c / \partial W^l$ 和 $\partial c / \partial b^l$（第 5 节）。
# 9. 把它们累加到本批量的总和中；回到第 3 步，直到批量中的每个样本都用过（第 6 节）。
# 10. 用批量的平均梯度做一步梯度下降：$W^l \leftarrow W^l - \eta \cdot$ 平均值（第 7 节）。
# 11. 回到第 2 步，直到所有训练轮数结束。
#
# numbanet 用[批量形式](../docs/derivation.md#batch-form)完成同样的计算：第 3–9 步变成每层几次矩阵运算。

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
# 本中文版的图用中文标注：若本机装有中文（CJK）字体，就用它来绘制这些字。
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

sizes = [3, 5, 4, 2]  # n_1（输入层）, n_2, n_3, n_4 = n_L
net = numbanet.Network(sizes, activations=["tanh", "sigmoid", "sigmoid"], loss="mse", seed=0)
n = 6  # 小批量中的样本数
X = rng.normal(size=(n, sizes[0]))
Y = rng.uniform(size=(n, sizes[-1]))

L = net.n_layers  # 有权重的层数（即教科书中的 L - 1）
codes = [act.CODES[name] for name in net.activations]
fns, K = builtin_fns(), -1  # 没有自定义激活函数或损失函数：见第 1 节
weights, biases, names = ref.from_network(net)  # 教科书版本的副本：偏置为列向量
net


# %%
def numeric_grad(f, x, eps=1e-6):
    """标量 f(x) 对 x 每个元素的中心差分（之后把 x 恢复原样）。"""
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
# ## 1. 前向传播（第 4 步）
#
# 对一个样本，每一层先对上一层的激活值做加权求和，再施加本层的激活函数：
#
# $$ z^l = W^l a^{l-1} + b^l, \qquad a^l = \sigma_l(z^l), \qquad a^1 = x. $$
#
# 把各个样本作为 $A^{l-1}$ 的行，同样的公式写成
#
# $$ Z^l = A^{l-1} (W^l)^{\mathsf T} + \mathbf 1\, (b^l)^{\mathsf T}, \qquad A^l = \sigma_l(Z^l). $$
#
# | 公式 | 计算核 |
# | --- | --- |
# | $Z^l = A^{l-1} (W^l)^{\mathsf T} + b^l$ | `dense.linear(A_prev, W, b, out)`（一次 BLAS 调用，再加上偏置） |
# | $A^l = \sigma_l(Z^l)$ | `activations.activate(Z, code, k, fns, out)` |
# | 两者合并为一次遍历 | `dense.forward(A_prev, W, b, code, k, fns, out)`（训练时用的就是它） |
#
# 每个逐元素施加激活函数或损失函数的计算核还接受 `k` 和 `fns` 两个参数：`fns` 是网络中*自定义*激活函数和损失函数的
# 已编译回调函数集合（`numbanet.kernels.pieces`，见笔记本 05），`k` 是该层在自定义激活函数中的序号。
# 这个网络只用内置的激活函数和损失函数，所以传入 `k = -1` 和 `fns = builtin_fns()`，其中的回调函数永远不会被调用。

# %%
Z, A = [], [X]
for l in range(L):
    z = np.empty((n, sizes[l + 1]))
    dense.linear(A[l], net.weights[l], net.biases[l], z)  # Z = A_prev W^T + b（上一层的激活乘以 W 的转置，再加偏置）
    a = np.empty_like(z)
    act.activate(z, codes[l], K, fns, a)  # A = σ(Z)：逐元素施加激活函数
    Z.append(z)
    A.append(a)

# 教科书的做法，一次一个样本（列向量）：
for i in range(n):
    zs, as_ = ref.feedforward(weights, biases, names, column(X[i]))
    for l in range(L):
        np.testing.assert_allclose(Z[l][i], zs[l].ravel(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(A[l + 1][i], as_[l + 1].ravel(), rtol=1e-12, atol=1e-15)

# 融合的计算核与 Network 的方法结果也一致。
for l in range(L):
    fused = np.empty_like(A[l + 1])
    dense.forward(A[l], net.weights[l], net.biases[l], codes[l], K, fns, fused)
    np.testing.assert_allclose(fused, A[l + 1], rtol=1e-12, atol=1e-15)
Z_net, A_net = net.forward(X)
np.testing.assert_allclose(A_net[-1], A[-1], rtol=1e-12)
print("输出层的激活 A^L：")
print(A[-1])

# %% [markdown]
# ## 2. 代价（第 5 步）
#
# 使用均方误差（MSE）时，一个样本的代价是 $c = \tfrac12 \sum_j (a^L_j - y_j)^2 = \tfrac12 \lVert a^L - y \rVert_2^2$，
# 一个批量的代价是各样本代价的平均值，
#
# $$ C = \frac1n \sum_{i=1}^n c_i . $$
#
# numbanet 把批量代价写成加权和 $C = \sum_i w_i c_i$，其中 $w_i$ 是*行权重*：$w_i = 1/n$ 就是平均值。
# （有样本权重 $s_i$ 时 $w_i = s_i / \sum_k s_k$；第 6 节会再讲到。）
#
# | 公式 | 计算核 |
# | --- | --- |
# | $C = \sum_i w_i c_i$ | `losses.batch_cost(A, Y, loss, row_weight, fns)` |
# | 一行的 $c_i$ | 同一个计算核，只用这一行，权重为 1：`losses.batch_cost(A[i:i+1], Y[i:i+1], loss, np.ones(1), fns)` |
#
# 对 MSE，各样本的代价也可以用一行 NumPy 写出：`0.5 * ((A - Y) ** 2).sum(axis=1)`；
# 计算核逐行计算同样的和，并用 float64 累加。

# %%
one = np.ones(1)
c = np.array([losses.batch_cost(A[-1][i : i + 1], Y[i : i + 1], losses.MSE, one, fns) for i in range(n)])
w = np.full(n, 1.0 / n)  # 普通平均的行权重
C = losses.batch_cost(A[-1], Y, losses.MSE, w, fns)

np.testing.assert_allclose(c, 0.5 * ((A[-1] - Y) ** 2).sum(axis=1), rtol=1e-12)  # NumPy 公式

c_textbook = [ref.cost("mse", column(A[-1][i]), column(Y[i])) for i in range(n)]
np.testing.assert_allclose(c, c_textbook, rtol=1e-12)
np.testing.assert_allclose(C, np.mean(c), rtol=1e-12)
np.testing.assert_allclose(C, ref.total_cost(weights, biases, names, "mse", X, Y), rtol=1e-12)
np.testing.assert_allclose(C, net.loss(X, Y), rtol=1e-12)
print(f"各样本的代价 {c}\n批量代价 C = {C:.6f}")

# %% [markdown]
# ## 3. 输出层误差 $\delta^L$（第 6 步）
#
# 把第 $l$ 层的*误差*定义为代价对该层线性输出（激活前的值）的导数，$\delta^l = \partial c / \partial z^l$。
# 在输出层 $a^L = \sigma_L(z^L)$，而且（对逐元素的激活函数）每个 $a^L_j$ 只依赖于 $z^L_j$，所以由链式法则得
#
# $$ \delta^L = \nabla_{a^L} c \odot \sigma_L'(z^L), \qquad
#    \nabla_{a^L} c = a^L - y \ \text{(MSE)}, \qquad \sigma'(z) = \sigma(z)\,(1 - \sigma(z)) \ \text{(sigmoid)}. $$
#
# 每个激活函数都是 `numbanet.kernels.activations` 中并排的一对标量函数：`sigmoid(z)` 是 $\sigma(z)$，
# `sigmoid_slope(z, a)` 是 $\sigma'(z)$。后者同时拿到 $z$ 和 $a = \sigma(z)$，这样每个导数都能写成计算量最小且数值稳定的形式。
# 对 sigmoid、tanh、各种 ReLU、ELU 和 softplus，这个形式只用到 $a$（这里 $\sigma'(z) = a(1-a)$），
# 所以对这些隐藏层，训练时不保存 $Z$；GELU、SiLU 和自定义激活函数需要 $z$ 本身（`activations.needs_z(code)`），
# 对这些层，训练循环会保存 $Z$。批量形式中每一行都乘以它的行权重：$\Delta^L$ 的第 $i$ 行是 $w_i\,\delta^L_i$，
# 恰好就是 $\partial C / \partial Z^L$。
#
# | 公式 | 计算核 |
# | --- | --- |
# | $\nabla_{a} c$ | `losses.cost_gradient(A, Y, loss, fns, out)` |
# | 一个值的 $\sigma(z)$、$\sigma'(z)$ | `activations.sigmoid(z)`、`activations.sigmoid_slope(z, a)`（任意激活函数：`activations.value(code, z, k, fns)`、`activations.slope(code, z, a, k, fns)`） |
# | $D \leftarrow D \odot \sigma'(Z)$ | `activations.backprop_inplace(D, A, Z, code, k, fns, a_scale)`（`a_scale = 1`；$\sigma'$ 由 $a$ 求得时传入 `Z = A`） |
# | $\Delta^L = \operatorname{diag}(w)\,(\nabla_a c \odot \sigma'(Z^L))$ | `losses.output_delta(A, Z, Y, loss, code, k, fns, row_weight, out)` |

# %%
grad_a = np.empty_like(A[-1])
losses.cost_gradient(A[-1], Y, losses.MSE, fns, grad_a)  # ∂c/∂a = a - y（均方误差的导数）
delta_L = grad_a.copy()
act.backprop_inplace(delta_L, A[-1], Z[-1], codes[-1], K, fns, 1.0)  # ∂c/∂a ⊙ σ'(z)，每个样本一行

# sigmoid 的标量函数对，逐元素：σ(z) = a，σ'(z) = a (1 - a)。
np.testing.assert_allclose(np.vectorize(act.sigmoid)(Z[-1]), A[-1], rtol=1e-15)
sigma_prime = np.vectorize(act.sigmoid_slope)(Z[-1], A[-1])
np.testing.assert_allclose(sigma_prime, A[-1] * (1 - A[-1]), rtol=1e-15)
np.testing.assert_allclose(delta_L, grad_a * sigma_prime, rtol=1e-15)

Delta_L = np.empty_like(A[-1])
losses.output_delta(A[-1], Z[-1], Y, losses.MSE, codes[-1], K, fns, w, Delta_L)
np.testing.assert_allclose(Delta_L, delta_L / n, rtol=1e-12)

# 教科书，逐个样本：δ^L = ∂c/∂a ⊙ σ'(z^L)
for i in range(n):
    zs, as_ = ref.feedforward(weights, biases, names, column(X[i]))
    d = ref.cost_derivative("mse", as_[-1], column(Y[i])) * ref.sigmoid_prime(zs[-1])
    np.testing.assert_allclose(delta_L[i], d.ravel(), rtol=1e-10)


# 有限差分：Δ^L 是批量代价 C 对 Z^L 的导数。
def cost_of_output_z(ZL):
    return np.mean([ref.cost("mse", column(ref.sigmoid(ZL[i])), column(Y[i])) for i in range(n)])


numeric = numeric_grad(cost_of_output_z, Z[-1].copy())
np.testing.assert_allclose(Delta_L, numeric, rtol=1e-6, atol=1e-10)
print("Δ^L（每行已含因子 1/n）：")
print(Delta_L)

# %% [markdown]
# ## 4. 反向递推（第 7 步）
#
# $z^{l+1} = W^{l+1} a^l + b^{l+1}$ 只通过 $a^l = \sigma_l(z^l)$ 依赖于 $z^l$，所以
# $\partial z^{l+1}_k / \partial z^l_j = W^{l+1}_{kj}\,\sigma_l'(z^l_j)$；对第 $l+1$ 层的所有单元 $k$ 求和，由链式法则得
#
# $$ \delta^l = \big( (W^{l+1})^{\mathsf T} \delta^{l+1} \big) \odot \sigma_l'(z^l),
#    \qquad l = L-1, \dots, 2 . $$
#
# 在批量形式中（行是样本，所以转置的位置变了）：$\Delta^l = (\Delta^{l+1} W^{l+1}) \odot \sigma_l'(Z^l)$。
# 行权重原样传递下去，因为这个递推对 $\Delta^{l+1}$ 是线性的。
#
# | 公式 | 计算核 |
# | --- | --- |
# | $\Delta^l = (\Delta^{l+1} W^{l+1}) \odot \sigma_l'(Z^l)$ | `dense.hidden_delta(Delta_next, W_next, A, Z, code, k, fns, a_scale, out)` |
#
# 这里 `a_scale` 为 1；使用 dropout 时，训练保存的是乘以 $1/(1-p)$ 之后的激活值，并传入 `a_scale` $= 1 - p$，
# 在 $\sigma'$ 内部抵消这个缩放。
#
# 对单个样本，偏置的梯度*就是*误差（$\partial c/\partial b^l = \delta^l$），所以 `ref.backprop` 返回的偏置梯度
# 就是可以拿来比较的教科书中的 $\delta^l$。

# %%
Delta = [None] * L
Delta[-1] = Delta_L
for l in range(L - 2, -1, -1):
    Delta[l] = np.empty_like(A[l + 1])
    dense.hidden_delta(Delta[l + 1], net.weights[l + 1], A[l + 1], Z[l], codes[l], K, fns, 1.0, Delta[l])

# 教科书的误差 δ，一次一个样本（Δ 的每行含因子 1/n）。
for i in range(n):
    _, nabla_b = ref.backprop(weights, biases, names, "mse", column(X[i]), column(Y[i]))
    for l in range(L):
        np.testing.assert_allclose(n * Delta[l][i], nabla_b[l].ravel(), rtol=1e-10, atol=1e-15)


# 有限差分：Δ^l = ∂C/∂Z^l，扰动 Z^l 并运行网络的其余部分。
def cost_from(l, Zl):
    a = ref.ACTIVATIONS[names[l]][0](Zl)
    for k in range(l + 1, L):
        a = ref.ACTIVATIONS[names[k]][0](a @ net.weights[k].T + net.biases[k])
    return np.mean([ref.cost("mse", column(a[i]), column(Y[i])) for i in range(n)])


for l in range(L):
    numeric = numeric_grad(lambda Zl: cost_from(l, Zl), Z[l].copy())
    np.testing.assert_allclose(Delta[l], numeric, rtol=1e-6, atol=1e-10)
    print(f"第 {l + 2} 层：|Δ - 数值导数| <= {np.abs(Delta[l] - numeric).max():.1e}")

# %% [markdown]
# ## 5. 参数的梯度（第 8 步）
#
# $z^l_j = \sum_k W^l_{jk} a^{l-1}_k + b^l_j$，所以 $\partial z^l_j / \partial W^l_{jk} = a^{l-1}_k$，
# $\partial z^l_j / \partial b^l_j = 1$：
#
# $$ \frac{\partial c}{\partial W^l} = \delta^l (a^{l-1})^{\mathsf T}, \qquad
#    \frac{\partial c}{\partial b^l} = \delta^l . $$
#
# 对一个批量的各行求和（各行的误差已经带上了权重 $w_i = 1/n$），就得到批量平均
#
# $$ \frac{\partial C}{\partial W^l} = (\Delta^l)^{\mathsf T} A^{l-1}, \qquad
#    \frac{\partial C}{\partial b^l} = \textstyle\sum_{\text{rows}} \Delta^l
#    \qquad\Big(= \tfrac1n \sum_i \delta^l_i (a^{l-1}_i)^{\mathsf T} \text{ 和 } \tfrac1n \sum_i \delta^l_i\Big). $$
#
# | 公式 | 计算核 |
# | --- | --- |
# | $dW = \Delta^{\mathsf T} A_{prev}$，$db = \sum_{rows} \Delta$ | `dense.layer_gradients(Delta, A_prev, dW, db)` |

# %%
dW = [np.empty_like(W) for W in net.weights]
db = [np.empty_like(b) for b in net.biases]
for l in range(L):
    dense.layer_gradients(Delta[l], A[l], dW[l], db[l])

nabla_w, nabla_b = ref.batch_gradients(weights, biases, names, "mse", X, Y)  # 各样本梯度的平均值
dW_net, db_net = net.gradients(X, Y)  # 训练循环所用的计算核
for l in range(L):
    np.testing.assert_allclose(dW[l], nabla_w[l], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(db[l], nabla_b[l].ravel(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(dW_net[l], dW[l], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(db_net[l], db[l], rtol=1e-12, atol=1e-15)

# 对 net.loss 做有限差分，原地扰动网络的权重和偏置数组（它们是 net.params 的视图）。
for l in range(L):
    num_W = numeric_grad(lambda _: net.loss(X, Y), net.weights[l])
    num_b = numeric_grad(lambda _: net.loss(X, Y), net.biases[l])
    np.testing.assert_allclose(dW[l], num_W, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(db[l], num_b, rtol=1e-6, atol=1e-10)
# numeric_grad 把每个元素都精确地恢复了：网络仍与它的教科书副本相同。
np.testing.assert_array_equal(
    net.params, np.concatenate([np.concatenate([W.ravel(), b.ravel()]) for W, b in zip(weights, biases)])
)
print("输出层的 ∂C/∂W：")
print(dW[-1])


# %% [markdown]
# ## 6. 对小批量求平均（第 9 步）
#
# 一个批量的梯度是**各样本梯度的平均值**：每个样本贡献外积 $\delta_i (a_i)^{\mathsf T}$。计算核不需要额外计算就得到平均值，
# 因为 $1/n$ 已经在 $\Delta^L$ 的各行中，并沿着递推线性地传递下去。同样的机制也给出加权平均：有样本权重 $s_i$ 时，
# 各行带上 $w_i = s_i / \sum_k s_k$，计算核无需其他任何改动。于是权重为 2 的样本与出现两次的样本效果完全相同。
#
# 下面把整个反向传播再用计算核组装一次，写成行权重的函数。


# %%
def kernel_gradients(Z, A, Y, row_weight):
    """由前向传播的 (Z, A) 求每一层的 (dW, db)，只用 numbanet 的计算核。"""
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

# 普通平均：w_i = 1/n。
dW_mean, db_mean = kernel_gradients(Z, A, Y, np.full(n, 1.0 / n))
for l in range(L):
    np.testing.assert_allclose(dW_mean[l], np.mean([g[0][l] for g in per_sample], axis=0), rtol=1e-10)

# 加权平均：w_i = s_i / Σ s。
s = np.array([1.0, 2.0, 0.0, 0.5, 1.0, 3.0])
dW_s, db_s = kernel_gradients(Z, A, Y, s / s.sum())
dW_net, db_net = net.gradients(X, Y, sample_weight=s)
for l in range(L):
    expected = sum(s[i] * per_sample[i][0][l] for i in range(n)) / s.sum()
    np.testing.assert_allclose(dW_s[l], expected, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(dW_net[l], dW_s[l], rtol=1e-10, atol=1e-15)

# 权重为 2 等同于把样本重复一次；权重为 0 等同于去掉该样本。
s_int = np.array([1.0, 2.0, 0.0, 1.0, 1.0, 3.0])
rows = np.repeat(np.arange(n), s_int.astype(int))  # [0, 1, 1, 3, 4, 5, 5, 5]
dW_rep, _ = net.gradients(X[rows], Y[rows])
dW_w, _ = net.gradients(X, Y, sample_weight=s_int)
for l in range(L):
    np.testing.assert_allclose(dW_w[l], dW_rep[l], rtol=1e-10, atol=1e-15)
print("普通平均、加权平均与重复样本三者一致")

# %% [markdown]
# ## 7. 梯度下降的一步（第 10 步）
#
# 最简单的小批量梯度下降让每个参数沿梯度的反方向移动，
#
# $$ W^l \leftarrow W^l - \eta\, \frac{\partial C}{\partial W^l}, \qquad
#    b^l \leftarrow b^l - \eta\, \frac{\partial C}{\partial b^l} . $$
#
# 网络的全部参数存放在一个扁平向量 `net.params` 中（先是逐行排列的 $W^2$，然后是 $b^2$，再是 $W^3$，……），
# `net.weights[l]` 和 `net.biases[l]` 都是它的视图（view）；所以一次计算核调用就能更新所有参数。
#
# | 公式 | 计算核 |
# | --- | --- |
# | $\theta \leftarrow \theta - \eta\, g$ | `updates.sgd_step(theta, grad, lr)` |
# | 动量（momentum）、Nesterov、Adam、AdamW、RMSprop | `updates.update(code, theta, grad, state, hyper, lr, t)` |
#
# 在一阶近似下，这一步使代价下降 $\eta \lVert g \rVert^2$。

# %%
eta = 0.5
flat_grad = np.concatenate([np.concatenate([dW[l].ravel(), db[l]]) for l in range(L)])
theta = net.params.copy()
updates.sgd_step(theta, flat_grad, eta)

new_w, new_b = ref.update_mini_batch(weights, biases, names, "mse", X, Y, eta)
np.testing.assert_allclose(
    theta, np.concatenate([np.concatenate([W.ravel(), b.ravel()]) for W, b in zip(new_w, new_b)]), rtol=1e-12
)

# Network.train_on_batch 走的正是这一步（在整个批量上做一步 SGD）。
stepped = net.copy()
stepped.train_on_batch(X, Y, optimizer=numbanet.SGD(lr=eta))
np.testing.assert_allclose(stepped.params, theta, rtol=1e-12)

# 步长很小时，代价按一阶近似下降。
small = net.copy()
small.params[...] -= 1e-4 * flat_grad
predicted = 1e-4 * flat_grad @ flat_grad
actual = net.loss(X, Y) - small.loss(X, Y)
np.testing.assert_allclose(actual, predicted, rtol=1e-3)
print(f"更新前 C = {net.loss(X, Y):.6f}，以 η={eta} 更新一步后：{stepped.loss(X, Y):.6f}")

# %% [markdown]
# 把这些部分合在一起就是训练循环（第 2–11 步）。下面在这个批量上做 60 步梯度下降（η = 2），做两遍：
# 一遍用上面的计算核，一遍用教科书的 `update_mini_batch`。两条代价曲线完全重合。
#
# 和真正的训练循环一样，这里用合并的 `dense.forward`，它只保存激活值。在这里这样就够了，因为 tanh 和 sigmoid
# 由 $a$ 求 $\sigma'$：凡是计算核要 `Z` 的地方都传入 `A`，而计算核并不会读取它。

# %%
eta = 2.0
assert not any(act.needs_z(code) for code in codes)  # σ' 只需由 a 求得：不必保存 Z
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
    losses.output_delta(As[-1], As[-1], Y, losses.MSE, codes[-1], K, fns, w, Delta[-1])  # 以 A 代替 Z
    for l in range(L - 2, -1, -1):
        dense.hidden_delta(
            Delta[l + 1], trained.weights[l + 1], As[l + 1], As[l + 1], codes[l], K, fns, 1.0, Delta[l]
        )  # 以 A 代替 Z
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
ax.plot(textbook_curve, lw=4, alpha=0.4, label="教科书（numbanet.reference）")
ax.plot(kernel_curve, "k--", lw=1.5, label="numbanet 计算核")
ax.set(xlabel="梯度下降步数", ylabel="批量代价 C", title="同一条下降曲线，算了两遍")
ax.legend()
plt.show()

# %% [markdown]
# ## 8. Softmax 与交叉熵：简化的输出层误差
#
# softmax 输出把一行耦合在一起：$a_j = e^{z_j} / \sum_k e^{z_k}$ 的雅可比矩阵是
# $\partial a_j / \partial z_k = a_j(\mathbb 1_{jk} - a_k)$。配合交叉熵 $c = -\sum_j y_j \log a_j$，
# 链式法则 $\delta = J^{\mathsf T} \nabla_a c$ 化简为
#
# $$ \delta_k = \sum_j a_j(\mathbb 1_{jk} - a_k)\Big(-\frac{y_j}{a_j}\Big)
#             = a_k \sum_j y_j - y_k = a_k - y_k \quad\text{（当 } \textstyle\sum_j y_j = 1\text{ 时）}. $$
#
# numbanet 按这个简化形式计算（`losses.output_delta_simplified`；对这一组合，以及 sigmoid 配二元交叉熵，
# `losses.output_delta` 都会选用它）。它不只是更短，也是*数值稳定*的算法：链式形式要除以 $a_j$，而 $a_j$ 可能下溢为 0。
#
# 对同样这两种组合，*代价*也由 logits $z$ 而不是由 $a$ 计算。softmax 配交叉熵时代价为
# $c = \sum_j y_j\,(\operatorname{lse}(z) - z_j)$，其中 $\operatorname{lse}(z) = \log \sum_k e^{z_k}$
# （计算时先减去该行的最大值），所以永远不会对一个已经下溢的概率取对数；sigmoid 配二元交叉熵也有类似的形式。
#
# | 公式 | 计算核 |
# | --- | --- |
# | $\Delta^L = \operatorname{diag}(w)(A^L - Y)$ | `losses.output_delta_simplified(A, Y, loss, row_weight, out)` |
# | 一般的链式法则 | `losses.output_delta_chain(A, Z, Y, loss, code, k, fns, row_weight, out)` |
# | 由 logits 计算 $C$ | `losses.batch_cost_logits(Z, Y, loss, row_weight)` |

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


# 两者都是 ∂C/∂Z^L（经由教科书的 softmax 和代价函数做有限差分）。
def ce_cost_of_z(ZL):
    return np.mean([ref.cost("cross_entropy", ref.softmax(column(ZL[i])), column(Yc[i])) for i in range(n)])


np.testing.assert_allclose(simplified, numeric_grad(ce_cost_of_z, Zc[-1].copy()), rtol=1e-6, atol=1e-10)

# 由 logits 算出的代价等于由概率算出的代价，也就是 Network.loss 报告的值。
C_ce = losses.batch_cost_logits(Zc[-1], Yc, losses.CROSS_ENTROPY, w)
np.testing.assert_allclose(C_ce, losses.batch_cost(Ac[-1], Yc, losses.CROSS_ENTROPY, w, fns), rtol=1e-12)
np.testing.assert_allclose(C_ce, ce.loss(X, Yc), rtol=1e-12)

# 一个很有把握的错误答案：正确类别的概率为 e^-800，下溢为 0。
Z_bad = np.array([[800.0, 0.0, 0.0]])
A_bad = np.empty_like(Z_bad)
act.activate(Z_bad, SOFTMAX, K, fns, A_bad)
np.testing.assert_array_equal(A_bad, [[1.0, 0.0, 0.0]])
Y_bad = np.array([[0.0, 1.0, 0.0]])
one = np.ones(1)
stable, unstable = np.empty((1, 3)), np.empty((1, 3))
losses.output_delta_simplified(A_bad, Y_bad, losses.CROSS_ENTROPY, one, stable)
losses.output_delta_chain(A_bad, Z_bad, Y_bad, losses.CROSS_ENTROPY, SOFTMAX, K, fns, one, unstable)
print("精确的 a - y：", stable.ravel())
print("链式法则   ：", unstable.ravel(), " <- 梯度消失了")
np.testing.assert_array_equal(stable, A_bad - Y_bad)
assert not np.allclose(unstable, A_bad - Y_bad)

# 代价也一样：log(a) 止步于最小正规浮点数的对数，而由 logits 计算则不会。
from_a = losses.batch_cost(A_bad, Y_bad, losses.CROSS_ENTROPY, one, fns)
from_z = losses.batch_cost_logits(Z_bad, Y_bad, losses.CROSS_ENTROPY, one)
print(f"由 a 计算的代价：{from_a:.2f}（被截断），由 logits 计算：{from_z:.2f}（精确）")
np.testing.assert_allclose(from_z, 800.0, rtol=1e-12)
assert from_a < 710

# %% [markdown]
# ## 9. 有限差分的步长应该取多小？
#
# 上面的每个检验都用 $\varepsilon = 10^{-6}$ 的中心差分。中心差分
# $\big(C(\theta+\varepsilon) - C(\theta-\varepsilon)\big) / 2\varepsilon$ 的截断误差是 $\varepsilon^2$ 阶，
# 舍入误差是 $u/\varepsilon$ 阶（float64 中 $u \approx 10^{-16}$）；单侧（前向）差分的截断误差是 $\varepsilon$ 阶。
# 对中心差分，两者之和在 $\varepsilon \approx u^{1/3} \approx 10^{-5}$ 附近最小，
# 这就是 `numbanet.gradcheck` 使用 $10^{-5}$ 和 float64 的原因。

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
ax.loglog(epsilons, central, "o-", ms=3, label="中心差分")
ax.loglog(epsilons, forward_err, "s-", ms=3, label="前向差分")
ax.axvline(1e-5, color="grey", ls=":", label="gradcheck 的默认 ε")
ax.set(xlabel="ε", ylabel="|数值导数 − 解析导数|", title=f"∂C/∂W[{l}][{j},{k}] 的误差")
ax.legend()
plt.show()

# %% [markdown]
# ## 小结
#
# 前向传播、代价、输出层误差、反向递推、梯度和更新：以上每一步在
# [docs/derivation.md 中 “Equations and kernels” 一节](../docs/derivation.md#equations-and-kernels)的表格中都有对应的一行，
# 该表列出每个公式对应的计算核，以及它在 `numbanet.reference` 中的教科书版本。
#
# `numbanet.kernels.training.train_slice(model, data, work, run, max_batches, stop_at_epoch_end)`
# 对每个小批量运行的正是这些计算核（网络、数据、工作缓冲区和本次训练的状态以具名的组合传递：`Model`、`Data`、`Work`、`Run`）。
# 一次编译后的调用处理许多个小批量（以及多个训练轮），大约每 50 ms 返回 Python 一次，以便响应 Ctrl-C 和刷新进度条。
