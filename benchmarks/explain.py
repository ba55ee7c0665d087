"""Attributions: numbanet.explain against captum on the same network and the same rows.

Each workload builds one network, copies it to PyTorch (``numbanet.to_torch``)
and times, in interleaved rounds (:func:`timing.interleaved`):

* integrated gradients of ``rows`` rows at ``steps`` Gauss--Legendre points,
  zero baseline, each row's predicted class as the target --
  ``numbanet.explain.integrated_gradients`` against captum's
  ``IntegratedGradients.attribute(..., method="gausslegendre")``, which
  batches all ``rows * steps`` points in one forward and backward pass;
* input gradients of the same rows (a saliency map) --
  ``numbanet.explain.gradients`` against one torch autograd pass.

It prints each time, the ratio captum / numbanet (the goal for integrated
gradients is at least 5x) and the largest difference between the two answers.

Run: ``python benchmarks/explain.py`` (needs torch and captum; ``--rounds``,
``--threads N`` to limit every thread pool, ``--quick`` for a smoke run).
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
if os.path.isdir(os.path.join(ROOT, "numbanet")):
    sys.path.insert(0, ROOT)  # this checkout's numbanet, not an editable install's

import numpy as np  # noqa: E402
from _machine import limit_threads  # noqa: E402
from peers import mnist_like  # noqa: E402
from timing import fmt_time, interleaved, summary  # noqa: E402

import numbanet  # noqa: E402

#: (name, sizes, activations, dtype): the digits network of notebook 06 and an MNIST-shaped one.
WORKLOADS = [
    ("digits 64-64-10 tanh/softmax, float64", [64, 64, 10], ["tanh", "softmax"], np.float64),
    ("784-128-10 relu/softmax, float32", [784, 128, 10], ["relu", "softmax"], np.float32),
    ("784-128-10 relu/softmax, float64", [784, 128, 10], ["relu", "softmax"], np.float64),
]


def _rows(n_in, rows, dtype):
    if n_in == 784:
        return mnist_like(rows, dtype=dtype)[0]
    from sklearn.datasets import load_digits

    return (load_digits().data[:rows] / 16.0).astype(dtype)


def _units(net, X, steps):
    import torch
    from captum.attr import IntegratedGradients

    model = numbanet.to_torch(net)
    target = net.predict(X).argmax(axis=1)
    x, t = torch.tensor(X), torch.tensor(target)
    ig = IntegratedGradients(model)
    out = {}

    def captum_ig():
        out["captum_ig"] = ig.attribute(x, target=t, n_steps=steps, method="gausslegendre").numpy()

    def numbanet_ig():
        out["numbanet_ig"] = numbanet.explain.integrated_gradients(net, X, steps=steps, target=target)

    def torch_grad():
        xg = x.clone().requires_grad_(True)
        model(xg)[torch.arange(X.shape[0]), t].sum().backward()
        out["torch_grad"] = xg.grad.numpy()

    def numbanet_grad():
        out["numbanet_grad"] = numbanet.explain.gradients(net, X, target=target)

    units = {"captum_ig": captum_ig, "numbanet_ig": numbanet_ig, "torch_grad": torch_grad}
    units["numbanet_grad"] = numbanet_grad
    return units, out


def run(rows, steps, rounds):
    """Time every workload; print and return ``[(name, median seconds by unit, IG diff, gradient diff)]``."""
    results = []
    for name, sizes, acts, dtype in WORKLOADS:
        net = numbanet.Network(sizes, activations=acts, loss="cross_entropy", dtype=dtype, seed=0)
        X = _rows(sizes[0], rows, dtype)
        units, out = _units(net, X, steps)
        med = {k: summary(v)["median"] for k, v in interleaved(units, rounds).items()}
        ig_diff = float(np.abs(out["captum_ig"] - out["numbanet_ig"]).max())
        grad_diff = float(np.abs(out["torch_grad"] - out["numbanet_grad"]).max())
        print(f"\n{name}: {rows} rows, integrated gradients at {steps} steps")
        c, nb, t, ng = (med[k] for k in ("captum_ig", "numbanet_ig", "torch_grad", "numbanet_grad"))
        print(f"  integrated gradients  captum {fmt_time(c)}   numbanet {fmt_time(nb)}")
        print(f"      captum / numbanet {c / nb:6.1f}x (goal >= 5x), max |diff| {ig_diff:.1e}")
        print(f"  input gradients       torch  {fmt_time(t)}   numbanet {fmt_time(ng)}")
        print(f"       torch / numbanet {t / ng:6.1f}x, max |diff| {grad_diff:.1e}")
        results.append((name, med, ig_diff, grad_diff))
    return results


def main(argv=None):
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 rows, 8 steps, 1 round")
    parser.add_argument("--threads", type=int, default=0, help="limit BLAS, OpenMP and torch to N threads")
    args = parser.parse_args(argv)
    if args.threads:
        limit_threads(args.threads)
    if args.quick:
        args.rows, args.steps, args.rounds = 20, 8, 1
    import torch

    print(f"numbanet {numbanet.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    return run(args.rows, args.steps, args.rounds)


if __name__ == "__main__":
    main()
