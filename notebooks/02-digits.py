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
# # Handwritten digits
#
# scikit-learn ships 1797 handwritten digits of 8×8 pixels (16 grey levels), a
# small cousin of MNIST.  This notebook trains a numbanet network on them, plots
# the training and validation loss, looks at the mistakes, and compares
# activation functions and optimizers.  Everything runs in a few seconds.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import numbanet

digits = load_digits()
X = digits.data / 16.0  # pixels in [0, 1]
y = digits.target
Y = np.eye(10)[y]  # one-hot targets for the softmax output

X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=0.2, stratify=y_rest, random_state=0)
Y_train, Y_val, Y_test = np.eye(10)[y_train], np.eye(10)[y_val], np.eye(10)[y_test]
print(f"train {X_train.shape}, validation {X_val.shape}, test {X_test.shape}")

fig, axes = plt.subplots(2, 10, figsize=(10, 2.3))
for ax, image, label in zip(axes.ravel(), X_train, y_train):
    ax.imshow(image.reshape(8, 8), cmap="gray_r")
    ax.set_title(label)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Training
#
# A 64–64–10 network: ReLU hidden units, a softmax output and the cross-entropy
# loss, trained with Adam on mini-batches of 32.  `validation_data` makes `fit`
# record the validation loss and accuracy after every epoch.  `progress=True`
# shows a live bar with the latest losses (a widget when ipywidgets is installed,
# as `pip install -e ".[notebooks]"` does; a text bar otherwise), and the elapsed
# time on the machine that runs the notebook.

# %%
net = numbanet.Network([64, 64, 10], activations=["relu", "softmax"], loss="cross_entropy", seed=0)
history = net.fit(
    X_train,
    Y_train,
    epochs=40,
    batch_size=32,
    optimizer=numbanet.Adam(lr=3e-3),
    validation_data=(X_val, Y_val),
    progress=True,
)
print(history)

test_pred = net.predict(X_test).argmax(axis=1)
test_accuracy = np.mean(test_pred == y_test)
print(f"test accuracy {test_accuracy:.1%}")
assert test_accuracy > 0.93

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
ax1.plot(history.epoch, history.loss, label="training")
ax1.plot(history.epoch, history.val_loss, label="validation")
ax1.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="Loss")
ax1.legend()
ax2.plot(history.epoch, history.val_accuracy, color="C2")
ax2.set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy", ylim=(0.8, 1.0))
plt.show()

# %% [markdown]
# The training loss keeps falling while the validation loss levels off: the network
# starts to memorise the training set.  `fit(..., early_stopping=5)` would stop
# there and restore the best weights.
#
# ## Confusion matrix
#
# Row = true digit, column = predicted digit, on the held-out test set.

# %%
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (y_test, test_pred), 1)
assert confusion.sum() == len(y_test) and np.trace(confusion) == np.sum(test_pred == y_test)

fig, ax = plt.subplots(figsize=(5, 4.5))
ax.imshow(confusion, cmap="Blues")
for i in range(10):
    for j in range(10):
        if confusion[i, j]:
            ax.text(
                j,
                i,
                confusion[i, j],
                ha="center",
                va="center",
                color="white" if confusion[i, j] > confusion.max() / 2 else "black",
            )
ax.set(
    xticks=range(10),
    yticks=range(10),
    xlabel="predicted",
    ylabel="true",
    title=f"Test set: {np.trace(confusion)} of {len(y_test)} right",
)
plt.show()

# %% [markdown]
# ## The mistakes

# %%
wrong = np.flatnonzero(test_pred != y_test)
probabilities = net.predict(X_test)
shown = wrong[:12]
fig, axes = plt.subplots(1, max(len(shown), 1), figsize=(1.2 * max(len(shown), 1), 1.8), squeeze=False)
for ax, i in zip(axes[0], shown):
    ax.imshow(X_test[i].reshape(8, 8), cmap="gray_r")
    ax.set_title(f"{y_test[i]}→{test_pred[i]}\n{probabilities[i, test_pred[i]]:.0%}", fontsize=9)
for ax in axes[0]:
    ax.axis("off")
fig.suptitle("misclassified test digits: true→predicted (confidence)", y=1.15)
plt.show()


# %% [markdown]
# ## Activation functions
#
# The same network and optimizer with sigmoid, tanh and ReLU hidden units
# (30 epochs each).  Initialisation follows the activation: Glorot for sigmoid and
# tanh, He for ReLU.


# %%
def run(activation="relu", optimizer=None, epochs=30, seed=0):
    model = numbanet.Network([64, 64, 10], activations=[activation, "softmax"], loss="cross_entropy", seed=seed)
    h = model.fit(
        X_train,
        Y_train,
        epochs=epochs,
        batch_size=32,
        optimizer=optimizer or numbanet.Adam(lr=3e-3),
        validation_data=(X_val, Y_val),
        progress=False,
    )
    return model, h


fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
final = {}
for activation in ["sigmoid", "tanh", "relu"]:
    model, h = run(activation)
    final[activation] = h.val_accuracy[-1]
    ax1.plot(h.val_loss, label=activation)
    ax2.plot(h.val_accuracy, label=activation)
ax1.set(xlabel="epoch", ylabel="validation loss", yscale="log", title="Adam, lr 3e-3")
ax2.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0.7, 1.0))
ax2.legend()
plt.show()
print({k: f"{v:.1%}" for k, v in final.items()})
assert min(final.values()) > 0.9

# %% [markdown]
# ## Optimizers
#
# Plain SGD, SGD with momentum 0.9, and Adam, all with ReLU hidden units.
# Momentum accumulates a velocity along consistent gradient directions; Adam also
# scales each parameter's step by a running estimate of its gradient's size.

# %%
optimizers = {
    "SGD lr=0.05": numbanet.SGD(lr=0.05),
    "SGD lr=0.05 + momentum 0.9": numbanet.SGD(lr=0.05, momentum=0.9),
    "Adam lr=3e-3": numbanet.Adam(lr=3e-3),
}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
final = {}
for name, optimizer in optimizers.items():
    model, h = run("relu", optimizer)
    final[name] = h.val_accuracy[-1]
    ax1.plot(h.loss, label=name)
    ax2.plot(h.val_loss, label=name)
ax1.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Training loss")
ax2.set(xlabel="epoch", ylabel="validation loss", yscale="log", title="Validation loss")
ax1.legend()
plt.show()
print({k: f"{v:.1%}" for k, v in final.items()})
assert final["SGD lr=0.05 + momentum 0.9"] > 0.9 and final["Adam lr=3e-3"] > 0.9
