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
# # 网络看的是哪里？反向传播到输入的归因
#
# 本笔记本沿用教程《全连接神经网络中反向传播算法数学推导》的记号与推导（见
# `01-backpropagation.zh.ipynb`）。反向传播通过误差
# $\delta^l = \big((W^{l+1})^{\mathsf T} \delta^{l+1}\big) \odot \sigma_l'(z^l)$ 得到 $\partial C / \partial W$。
# 沿同一个递推再往下走一步，越过第一个权重矩阵，就得到某个输出对**输入**的梯度：
# $\partial f / \partial x = (W^2)^{\mathsf T} \delta^2$，这里的 $f$ 不再是代价，而是我们想解释的那个输出
# （某一类的概率）。
#
# `numbanet.explain` 用这一步计算两种归因：
#
# * `gradients(model, X, target)`：$\partial f / \partial x$，即**显著图**（saliency map）：
#   每个像素稍微变化时 $f$ 会变化多少；
# * `integrated_gradients(model, X, baseline, steps, target)`：**积分梯度**，沿从基线 $b$
#   （一张全黑的图）到 $x$ 的直线路径对梯度求平均，再乘以 $x - b$。各特征的归因之和等于
#   $f(x) - f(b)$（**完备性**）。
#
# 本笔记本先在 scikit-learn 的手写数字数据上训练一个小网络，为每一类各画一张图的两种归因图，
# 检验完备性；然后解释一个表格数据模型（糖尿病数据上的回归器）。公式以及计算每个公式的计算核见
# [docs/derivation.md 的 “The input delta and integrated gradients” 一节](../docs/derivation.md#the-input-delta-and-integrated-gradients)。

# %%
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager
from sklearn.datasets import load_diabetes, load_digits
from sklearn.model_selection import train_test_split

import numbanet
from numbanet import explain

# 图中的中文标注需要中文字体：系统里有的话，把它加到后备字体列表中。
cjk = [f for f in font_manager.findSystemFonts() if "wqy" in f.lower() or "notosanscjk" in f.lower()]
for f in cjk:
    font_manager.fontManager.addfont(f)
plt.rcParams["font.family"] = ["DejaVu Sans"] + [font_manager.FontProperties(fname=f).get_name() for f in cjk]
np.set_printoptions(precision=4, suppress=True)


def small(error):
    """格式化误差；舍入误差量级的数值（其各位数字因机器而异）只给出上界。"""
    return "低于 1e-12" if error < 1e-12 else f"{error:.1e}"


# %% [markdown]
# ## 一个识别数字的网络
#
# 8×8 的图像，64 个像素，取值在 $[0, 16]$，缩放到 $[0, 1]$；一个含 64 个 tanh 单元的隐藏层，
# 输出层对 10 个类别做 softmax。用光滑的激活函数（tanh 而不是 ReLU），下面的积分只需不多的点就很精确；
# 见本笔记本的最后一节。

# %%
digits = load_digits()
X = digits.data / 16.0
y = digits.target
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

net = numbanet.Network([64, 64, 10], activations=["tanh", "softmax"], loss="cross_entropy", seed=0)
history = net.fit(
    X_train, np.eye(10)[y_train], epochs=40, batch_size=32, optimizer=numbanet.Adam(lr=3e-3), progress=False
)
accuracy = (net.predict(X_test).argmax(axis=1) == y_test).mean()
print(f"训练轮数：{len(history.loss)}，测试集准确率：{accuracy:.3f}")

# %% [markdown]
# ## 显著图：每一类概率的梯度
#
# 对每一类各取一张测试图像，令 $f = p_k(x)$，即网络给该图像所属类别 $k$ 的概率，计算
# $\partial p_k / \partial x$。红色的像素若更亮会提高 $p_k$，蓝色的则会降低它。（对 softmax 输出，
# 反向传播从 $\partial p_k / \partial z^L = p_k (e_k - p)$ 开始。）

# %%
rows = np.array([np.flatnonzero(y_test == k)[0] for k in range(10)])
images = X_test[rows]
classes = y_test[rows]
P = net.predict(images)
saliency = explain.gradients(net, images, target=classes)
print("真实类别的概率：", P[np.arange(10), classes])


def show_maps(images, maps, title, classes):
    """把每张图像画在其归因图上方（每张归因图用对称的红蓝色标）。"""
    fig, axes = plt.subplots(2, 10, figsize=(12, 2.9))
    for k in range(10):
        axes[0, k].imshow(images[k].reshape(8, 8), cmap="gray_r")
        axes[0, k].set_title(str(classes[k]))
        limit = np.abs(maps[k]).max()
        axes[1, k].imshow(maps[k].reshape(8, 8), cmap="RdBu_r", vmin=-limit, vmax=limit)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


show_maps(images, saliency, "显著图 ∂p/∂x（红色：更亮会提高概率）", classes)

# %% [markdown]
# 梯度是局部的：它只说明*微小*变化的效果；一个本来就是暗的像素，梯度可能很大，却对结果毫无贡献。
#
# ## 积分梯度
#
# $\phi_j(x) = (x_j - b_j) \int_0^1 \partial f / \partial x_j\,\big|_{b + \alpha (x - b)}\, d\alpha$，
# 以全黑图像 $b = 0$ 为基线（默认值）。numbanet 用 50 个 Gauss–Legendre 点计算这个积分（与 captum 的默认方法相同）：
# $10 \times 50$ 个路径上的点作为一个批量一起通过网络。没有点亮的像素归因为零，因为 $x_j - b_j = 0$。

# %%
phi = explain.integrated_gradients(net, images, target=classes)
show_maps(images, phi, "积分梯度（基线：全黑图像）", classes)

# %% [markdown]
# **完备性。** 每张图像的归因之和等于概率从基线到该图像的变化，$\sum_j \phi_j = p_k(x) - p_k(0)$，
# 误差只来自数值积分：

# %%
change = P[np.arange(10), classes] - net.predict(np.zeros_like(images))[np.arange(10), classes]
print("归因之和：          ", phi.sum(axis=1))
print("p(x) - p(基线)：    ", change)
print("最大差值：", small(np.abs(phi.sum(axis=1) - change).max()))

# %% [markdown]
# ## 平均而言，每一类看重哪些像素
#
# 对某一类的全部测试图像（各以自己的类别为目标）求积分梯度的平均：是哪些笔画让 0 成为 0，
# 又是哪些空白把它和 8 区分开。

# %%
phi_all = explain.integrated_gradients(net, X_test, target=y_test)
mean_maps = np.array([phi_all[y_test == k].mean(axis=0) for k in range(10)])
mean_images = np.array([X_test[y_test == k].mean(axis=0) for k in range(10)])
show_maps(mean_images, mean_maps, "每一类的平均积分梯度", np.arange(10))

# %% [markdown]
# ## 表格数据模型：是哪些列决定了这个预测？
#
# 同样的函数也接受训练好的 `MLPRegressor`（或 `MLPClassifier`，此时 $f$ 是预测类别的概率）。
# 这里用一个回归器，根据 scikit-learn 糖尿病数据中的十项测量值预测病情进展。基线取平均病人，
# 所以每个归因说明某一列把这位病人的预测从平均预测推开了多少。

# %%
data = load_diabetes(as_frame=True)
Xd, yd = data.data, data.target
reg = numbanet.MLPRegressor(
    hidden_layer_sizes=(32,), activation="tanh", learning_rate_init=0.01, max_iter=2000, random_state=0
).fit(Xd, yd)
print(f"训练数据上的 R²：{reg.score(Xd, yd):.3f}")

average = Xd.mean().to_frame().T  # 平均病人，一行的表格
phi_d = explain.integrated_gradients(reg, Xd, baseline=average)
completeness = phi_d.sum(axis=1) - (reg.predict(Xd) - reg.predict(average))
print(f"完备性，{len(Xd)} 位病人中的最大差值：", small(np.abs(completeness).max()))

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
names = list(Xd.columns)
ax1.barh(names, np.abs(phi_d).mean(axis=0), color="tab:blue")
ax1.invert_yaxis()
ax1.set(title="所有病人的平均 |归因|", xlabel="病情进展（单位）")
patient = 0
colors = ["tab:red" if v > 0 else "tab:blue" for v in phi_d[patient]]
ax2.barh(names, phi_d[patient], color=colors)
ax2.invert_yaxis()
ax2.axvline(0, color="black", lw=0.8)
ax2.set(title=f"病人 {patient}：预测 − 平均预测", xlabel="病情进展（单位）")
fig.tight_layout()
plt.show()

# %% [markdown]
# 如果安装了 shap，`explain.shap_explanation(reg, Xd, baseline=average)` 会把同样的归因作为
# `shap.Explanation`（带列名）返回，可直接用于 `shap.plots.waterfall`、`shap.plots.beeswarm` 等。
#
# ## 光滑的与带折点的激活函数
#
# 对积分本身，完备性是精确的；剩下的误差来自数值积分。激活函数光滑时，被积函数也光滑，
# 50 个 Gauss–Legendre 点留下的误差比变化量小许多个数量级，如上所示。ReLU 网络的梯度在路径
# 穿过折点的地方会跳变，误差随点数增加而下降得很慢：

# %%
relu_net = numbanet.Network([64, 64, 10], activations=["relu", "softmax"], loss="cross_entropy", seed=0)
relu_net.fit(X_train, np.eye(10)[y_train], epochs=40, batch_size=32, optimizer=numbanet.Adam(lr=3e-3), progress=False)
at_zero = relu_net.predict(np.zeros_like(images))[np.arange(10), classes]
relu_change = relu_net.predict(images)[np.arange(10), classes] - at_zero
for steps in (10, 50, 200):
    for name, model, target_change in (("tanh", net, change), ("relu", relu_net, relu_change)):
        total = explain.integrated_gradients(model, images, steps=steps, target=classes).sum(axis=1)
        error = np.abs(total - target_change).max() / np.abs(target_change).max()
        print(f"{steps:4d} 个点，{name}：最大误差 / 最大变化：{small(error)}")
