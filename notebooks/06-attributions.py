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
# # What did the network look at? Attributions by backpropagation to the input
#
# Backpropagation gives $\partial C / \partial W$ through the deltas
# $\delta^l = \big((W^{l+1})^{\mathsf T} \delta^{l+1}\big) \odot \sigma_l'(z^l)$.
# One step further down the same recursion, past the first weight matrix, gives the
# gradient of an output with respect to the **input**:
# $\partial f / \partial x = (W^2)^{\mathsf T} \delta^2$, where $f$ is now the output we
# want to explain (the probability of a class) instead of a cost.
#
# `numbanet.explain` computes two attributions with that step:
#
# * `gradients(model, X, target)`: $\partial f / \partial x$, a **saliency map**: how much
#   a small change of each pixel would change $f$;
# * `integrated_gradients(model, X, baseline, steps, target)`: the gradient averaged
#   along the straight path from a baseline $b$ (a black image) to $x$, times $x - b$.
#   Its attributions add up to $f(x) - f(b)$ (**completeness**).
#
# This notebook trains a small network on scikit-learn's handwritten digits, draws
# both maps for one image of each class, checks completeness, and then explains a
# tabular model (a regressor on the diabetes data).  The equations, and the kernel
# that computes each, are in
# [docs/derivation.md, "The input delta and integrated gradients"](../docs/derivation.md#the-input-delta-and-integrated-gradients).

# %%
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager
from sklearn.datasets import load_diabetes, load_digits
from sklearn.model_selection import train_test_split

import numbanet
from numbanet import explain

# Plot labels in any language: add a CJK font to the fallback list when the system has one.
cjk = [f for f in font_manager.findSystemFonts() if "wqy" in f.lower() or "notosanscjk" in f.lower()]
for f in cjk:
    font_manager.fontManager.addfont(f)
plt.rcParams["font.family"] = ["DejaVu Sans"] + [font_manager.FontProperties(fname=f).get_name() for f in cjk]
np.set_printoptions(precision=4, suppress=True)


def small(error):
    """Format an error; rounding-level ones (their digits vary from machine to machine) as a bound."""
    return "below 1e-12" if error < 1e-12 else f"{error:.1e}"


# %% [markdown]
# ## A network that reads digits
#
# 8×8 images, 64 pixels in $[0, 16]$, scaled to $[0, 1]$; one hidden layer of 64 tanh
# units and a softmax over the 10 classes.  A smooth activation (tanh rather than
# ReLU) makes the integrals below accurate with few points; see the end of the
# notebook.

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
print(f"epochs: {len(history.loss)}, test accuracy: {accuracy:.3f}")

# %% [markdown]
# ## Saliency: the gradient of each class's probability
#
# For one test image of each class we take $f = p_k(x)$, the probability the network
# gives to the image's class $k$, and compute $\partial p_k / \partial x$.  Red pixels
# would raise $p_k$ if they were brighter, blue ones lower it.  (For a softmax output
# the backward pass starts from $\partial p_k / \partial z^L = p_k (e_k - p)$.)

# %%
rows = np.array([np.flatnonzero(y_test == k)[0] for k in range(10)])
images = X_test[rows]
classes = y_test[rows]
P = net.predict(images)
saliency = explain.gradients(net, images, target=classes)
print("probability of the true class:", P[np.arange(10), classes])


def show_maps(images, maps, title, classes):
    """Draw each image above its attribution map (a symmetric red-blue scale per map)."""
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


show_maps(images, saliency, "saliency ∂p/∂x (red: brighter raises the probability)", classes)

# %% [markdown]
# The gradient is local: it says what a *small* change would do, and a pixel that is
# already dark can have a large gradient without having contributed anything.
#
# ## Integrated gradients
#
# $\phi_j(x) = (x_j - b_j) \int_0^1 \partial f / \partial x_j\,\big|_{b + \alpha (x - b)}\, d\alpha$,
# with the black image $b = 0$ as the baseline (the default).  numbanet computes the
# integral with 50 Gauss–Legendre points (as captum's default does): the $10 \times 50$
# path points go through the network as one batch.  Pixels that are off get no
# attribution, since $x_j - b_j = 0$.

# %%
phi = explain.integrated_gradients(net, images, target=classes)
show_maps(images, phi, "integrated gradients (baseline: a black image)", classes)

# %% [markdown]
# **Completeness.** The attributions of each image add up to the change of the
# probability from the baseline to the image, $\sum_j \phi_j = p_k(x) - p_k(0)$, up to
# the quadrature's error:

# %%
change = P[np.arange(10), classes] - net.predict(np.zeros_like(images))[np.arange(10), classes]
print("sum of the attributions:", phi.sum(axis=1))
print("p(x) - p(baseline):     ", change)
print("largest difference:", small(np.abs(phi.sum(axis=1) - change).max()))

# %% [markdown]
# ## Which pixels matter for each class, on average
#
# The mean of the integrated gradients over every test image of a class (each with its
# own class as the target): the strokes that make a 0 a 0, and the gaps that
# distinguish it from an 8.

# %%
phi_all = explain.integrated_gradients(net, X_test, target=y_test)
mean_maps = np.array([phi_all[y_test == k].mean(axis=0) for k in range(10)])
mean_images = np.array([X_test[y_test == k].mean(axis=0) for k in range(10)])
show_maps(mean_images, mean_maps, "mean integrated gradients per class", np.arange(10))

# %% [markdown]
# ## A tabular model: which columns drove this prediction?
#
# The same functions take a fitted `MLPRegressor` (or `MLPClassifier`, where $f$ is
# the probability of the predicted class).  Here a regressor predicts disease
# progression from ten measurements of scikit-learn's diabetes data.  The baseline is
# the average patient, so each attribution says how much a column moved this
# patient's prediction away from the average prediction.

# %%
data = load_diabetes(as_frame=True)
Xd, yd = data.data, data.target
reg = numbanet.MLPRegressor(
    hidden_layer_sizes=(32,), activation="tanh", learning_rate_init=0.01, max_iter=2000, random_state=0
).fit(Xd, yd)
print(f"R² on the training data: {reg.score(Xd, yd):.3f}")

average = Xd.mean().to_frame().T  # the average patient, as a one-row table
phi_d = explain.integrated_gradients(reg, Xd, baseline=average)
completeness = phi_d.sum(axis=1) - (reg.predict(Xd) - reg.predict(average))
print(f"completeness, largest difference over {len(Xd)} patients:", small(np.abs(completeness).max()))

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
names = list(Xd.columns)
ax1.barh(names, np.abs(phi_d).mean(axis=0), color="tab:blue")
ax1.invert_yaxis()
ax1.set(title="mean |attribution| over all patients", xlabel="progression units")
patient = 0
colors = ["tab:red" if v > 0 else "tab:blue" for v in phi_d[patient]]
ax2.barh(names, phi_d[patient], color=colors)
ax2.invert_yaxis()
ax2.axvline(0, color="black", lw=0.8)
ax2.set(title=f"patient {patient}: prediction − average prediction", xlabel="progression units")
fig.tight_layout()
plt.show()

# %% [markdown]
# With shap installed, `explain.shap_explanation(reg, Xd, baseline=average)` returns
# the same attributions as a `shap.Explanation` (with the column names), for
# `shap.plots.waterfall`, `shap.plots.beeswarm` and the rest.
#
# ## Smooth and kinked activations
#
# Completeness is exact for the integral; the error left is the quadrature's.  With a
# smooth activation the integrand is smooth and 50 Gauss–Legendre points leave an
# error many orders of magnitude below the change, as above.  A ReLU network's
# gradient jumps wherever the path crosses a kink, and the error shrinks slowly with
# the number of points:

# %%
relu_net = numbanet.Network([64, 64, 10], activations=["relu", "softmax"], loss="cross_entropy", seed=0)
relu_net.fit(X_train, np.eye(10)[y_train], epochs=40, batch_size=32, optimizer=numbanet.Adam(lr=3e-3), progress=False)
at_zero = relu_net.predict(np.zeros_like(images))[np.arange(10), classes]
relu_change = relu_net.predict(images)[np.arange(10), classes] - at_zero
for steps in (10, 50, 200):
    for name, model, target_change in (("tanh", net, change), ("relu", relu_net, relu_change)):
        total = explain.integrated_gradients(model, images, steps=steps, target=classes).sum(axis=1)
        error = np.abs(total - target_change).max() / np.abs(target_change).max()
        print(f"{steps:4d} steps, {name}: largest error / largest change: {small(error)}")
