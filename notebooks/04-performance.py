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
# # Performance
#
# How long does an epoch take, and how does that depend on the batch size?  If
# `benchmarks/results.json` exists (written by `python benchmarks/run.py --json
# benchmarks/results.json`), this notebook plots it: time per epoch against batch
# size for numbanet, hand-vectorised NumPy and PyTorch, as measured on the
# machine and at the commit that the file names (printed below).  The outputs
# committed with this notebook are those of the committed `results.json`, so they
# agree with [docs/performance.md](../docs/performance.md).  Without the file it
# runs a small timing of its own -- numbanet against a plain NumPy MLP on the
# digits -- on the machine that runs the notebook.  Timings depend on the machine;
# the ratios are what matter.

# %%
# %matplotlib inline
import json
import re
import time
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import numbanet

candidates = [Path("benchmarks/results.json"), Path("../benchmarks/results.json")]
results_path = next((p for p in candidates if p.is_file()), None)
print("benchmark results:", results_path or "none found; timing in this notebook")


# %% [markdown]
# ## Reading `benchmarks/results.json`
#
# `benchmarks/run.py --json` writes `{"machine": ..., "workloads": {name: {"title",
# "batch", "impls": {library: {"median": seconds, ...}}}}}`.  The workloads timed
# per epoch at several batch sizes (`mnist16`, `mnist64`, `mnist256`: a
# 784-128-10 network on MNIST-shaped data) become one curve per library.
# Anything the reader cannot use is reported, and the notebook falls back to its
# own timing.


# %%
def read_results(path):
    """{workload: {library: [(batch_size, seconds_per_epoch), ...]}}, or None if unusable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        print(f"cannot read {path}: {error}")
        return None
    workloads = data.get("workloads") if isinstance(data, dict) else None
    if not isinstance(workloads, dict):
        print(f"{path}: no 'workloads' table")
        return None
    table = defaultdict(lambda: defaultdict(list))
    for w in workloads.values():
        if not (isinstance(w, dict) and isinstance(w.get("batch"), int) and isinstance(w.get("impls"), dict)):
            continue  # start-up, memory: not per epoch
        if "epoch" not in w.get("title", ""):
            continue  # XOR is timed per step
        group = re.sub(r",? batch \d+", "", w["title"])  # the same workload at another batch size
        for library, timing in w["impls"].items():
            if isinstance(timing, dict) and isinstance(timing.get("median"), (int, float)):
                table[group][library].append((w["batch"], float(timing["median"])))
    table = {g: dict(libs) for g, libs in table.items() if any(len(v) > 1 for v in libs.values())}
    if not table:
        print(f"{path}: no workload timed per epoch at two or more batch sizes")
        return None
    machine, commit = data.get("machine", {}), data.get("commit", {})
    print(
        f"{path}: measured by benchmarks/run.py at commit {str(commit.get('sha', '?'))[:7]} on "
        f"{machine.get('cpu', '?')}, {machine.get('logical_cpus', '?')} logical CPUs, "
        f"{'quick' if data.get('quick') else 'full'} run"
    )
    return table


results = read_results(results_path) if results_path else None

# %% [markdown]
# ## Timing in the notebook (when there are no benchmark results)
#
# The workload: a 64–128–10 ReLU/softmax network on the 1797 digits, float32,
# plain SGD, one epoch.  The NumPy version is the usual hand-vectorised MLP: one
# matrix product per layer and direction, the bias and activation as array
# expressions.  First we make sure both compute the *same* epoch -- a timing
# comparison of different algorithms would be meaningless.

# %%
from sklearn.datasets import load_digits

X_all, y_all = load_digits(return_X_y=True)
X_digits = (X_all / 16.0).astype(np.float32)
Y_digits = np.eye(10, dtype=np.float32)[y_all]


def numpy_epoch(W1, b1, W2, b2, X, Y, batch_size, lr):
    """One epoch of mini-batch SGD for a ReLU/softmax MLP, in place, rows in order."""
    for start in range(0, X.shape[0], batch_size):
        x, y = X[start : start + batch_size], Y[start : start + batch_size]
        z1 = x @ W1.T + b1
        a1 = np.maximum(z1, 0)
        z2 = a1 @ W2.T + b2
        e = np.exp(z2 - z2.max(axis=1, keepdims=True))
        a2 = e / e.sum(axis=1, keepdims=True)
        d2 = (a2 - y) / x.shape[0]
        d1 = (d2 @ W2) * (z1 > 0)
        W2 -= lr * (d2.T @ a1)
        b2 -= lr * d2.sum(axis=0)
        W1 -= lr * (d1.T @ x)
        b1 -= lr * d1.sum(axis=0)


def make_net(dtype):
    return numbanet.Network([64, 128, 10], activations=["relu", "softmax"], loss="cross_entropy", dtype=dtype, seed=0)


# The same epoch, in float64 so that the comparison can be strict.
check = make_net(np.float64)
W1, b1, W2, b2 = (p.copy() for p in (check.weights[0], check.biases[0], check.weights[1], check.biases[1]))
X64, Y64 = X_digits.astype(np.float64), Y_digits.astype(np.float64)
check.fit(X64, Y64, epochs=1, batch_size=32, optimizer=numbanet.SGD(lr=0.1), shuffle=False, progress=False)
numpy_epoch(W1, b1, W2, b2, X64, Y64, 32, 0.1)
for mine, theirs in zip((W1, b1, W2, b2), (check.weights[0], check.biases[0], check.weights[1], check.biases[1])):
    np.testing.assert_allclose(theirs, mine, rtol=1e-9, atol=1e-12)
print("numbanet and the NumPy MLP take identical SGD epochs")


# %%
def best_time(fn, repeat=5):
    fn()  # warm-up (and JIT compilation for numbanet)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def time_here(batch_sizes=(8, 32, 128, 512), epochs=2):
    table = {"numbanet": [], "NumPy": []}
    for bs in batch_sizes:
        net = make_net(np.float32)
        sgd = numbanet.SGD(lr=0.01)
        t = best_time(
            lambda: net.fit(
                X_digits, Y_digits, epochs=epochs, batch_size=bs, optimizer=sgd, shuffle=False, progress=False
            )
        )
        table["numbanet"].append((bs, t / epochs))
        params = [p.copy() for p in (net.weights[0], net.biases[0], net.weights[1], net.biases[1])]

        def numpy_run():
            for _ in range(epochs):
                numpy_epoch(*params, X_digits, Y_digits, bs, 0.01)

        table["NumPy"].append((bs, best_time(numpy_run) / epochs))
    return {"64-128-10 ReLU/softmax on 1797 digits, float32, SGD (on the machine that ran this notebook)": table}


if results is None:
    results = time_here()
for workload, libraries in results.items():
    print(workload)
    for library, rows in libraries.items():
        print(f"  {library:<12}", "  ".join(f"batch {b}: {1e3 * s:.2f} ms" for b, s in sorted(rows)))

# %% [markdown]
# ## Time per epoch against batch size

# %%
from matplotlib.ticker import NullFormatter

LABELS = {"numpy": "NumPy", "torch": "PyTorch", "sklearn": "scikit-learn"}
n_plots = len(results)
fig, axes = plt.subplots(1, n_plots, figsize=(6 * n_plots, 4), squeeze=False)
for ax, (workload, libraries) in zip(axes[0], results.items()):
    for library, rows in sorted(libraries.items()):
        batch, seconds = zip(*sorted(rows))
        ax.loglog(batch, np.array(seconds) * 1e3, "o-", label=LABELS.get(library, library))
    sizes = sorted({b for rows in libraries.values() for b, _ in rows})
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="batch size", ylabel="time per epoch (ms)", title=workload)
    ax.title.set_fontsize(9)
    ax.legend()
plt.show()

# Speed-up of numbanet over each other library at each batch size.
for workload, libraries in results.items():
    mine = {b: s for b, s in libraries.get("numbanet", [])}
    for library, rows in libraries.items():
        if library == "numbanet" or not mine:
            continue
        ratios = {b: s / mine[b] for b, s in rows if b in mine}
        print(
            f"{workload}: numbanet vs {library}:", "  ".join(f"batch {b}: {r:.1f}x" for b, r in sorted(ratios.items()))
        )
assert all(s > 0 and np.isfinite(s) for libs in results.values() for rows in libs.values() for _, s in rows)

# %% [markdown]
# What to look for: a framework pays a fixed cost per operation (argument checks,
# dispatch, temporary arrays), and the smaller the batch, the larger that
# overhead's share of an epoch.  numbanet runs its mini-batches inside compiled
# calls (`numbanet.kernels.training.train_slice`: many mini-batches per call,
# returning to Python about every 50 ms), fusing the bias, activation and
# derivative into single passes and writing into preallocated buffers.  With large batches the matrix products dominate and
# every library ends up waiting on a BLAS, so the curves draw together.  On a
# busy machine the numbers jump around; `benchmarks/run.py` interleaves its
# rounds and reports medians to cope with that.
