"""The benchmark peers compute what numbanet computes, and the benchmark runs.

A speed ratio means something only if both sides do the same mathematics:
these tests train numbanet and a peer from the same weights, on the same
rows in the same order (no shuffling), and require the same weights after the
epochs, to rounding.  They are the correctness twins of
``benchmarks/peers.py``.  The last test runs ``benchmarks/run.py --quick
--only xor`` in a subprocess and checks that it prints its ratios; no timing
is asserted anywhere.
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import numbanet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


def _load_peers():
    spec = importlib.util.spec_from_file_location("numbanet_bench_peers", os.path.join(BENCH, "peers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


peers = _load_peers()

# (sizes, activations, loss, dtype); 23 rows in batches of 5 leave a last batch of 3.
CASES = [
    ([7, 5, 3], ["relu", "softmax"], "cross_entropy", np.float64),
    ([7, 5, 3], ["sigmoid", "sigmoid"], "mse", np.float64),
    ([7, 6, 5, 3], ["relu", "relu", "softmax"], "cross_entropy", np.float32),
    ([7, 6, 4, 3], ["sigmoid", "sigmoid", "sigmoid"], "mse", np.float32),
]
N, BATCH, EPOCHS, LR = 23, 5, 3, 0.5


def _data(loss, dtype, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.random((N, 7)).astype(dtype)
    if loss == "cross_entropy":
        Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, N)]
    else:
        Y = rng.random((N, 3)).astype(dtype)
    return X, Y


def _trained_numbanet(net, X, Y):
    nb = peers.NumbanetMLP.from_network(net, shuffle=False)
    nb.train(nb.prepare(X, Y), EPOCHS, BATCH, LR)
    return nb.params()


def _assert_same(got, want, dtype):
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("sizes, activations, loss, dtype", CASES)
def test_numpy_peer_matches_numbanet(sizes, activations, loss, dtype):
    X, Y = _data(loss, dtype)
    net = numbanet.Network(sizes, activations=activations, loss=loss, dtype=dtype, seed=0)
    want = _trained_numbanet(net, X, Y)
    peer = peers.NumpyMLP.from_network(net, shuffle=False)
    peer.train(peer.prepare(X, Y), EPOCHS, BATCH, LR)
    got = peer.params()
    assert got[0][0].dtype == dtype
    _assert_same(got, want, dtype)
    # the peer really trained: the weights moved away from the start
    assert not np.allclose(got[0][0], net.weights[0])


def test_numpy_peer_cost_is_the_network_loss():
    """With lr = 0 the peer's epoch loss is numbanet's mean per-sample cost."""
    X, Y = _data("cross_entropy", np.float64)
    net = numbanet.Network([7, 5, 3], activations=["relu", "softmax"], loss="cross_entropy", seed=0)
    peer = peers.NumpyMLP.from_network(net, shuffle=False)
    peer.train(peer.prepare(X, Y), 1, BATCH, 0.0)
    assert peer.last_epoch_loss == pytest.approx(net.loss(X, Y), rel=1e-12)


def test_textbook_peer_matches_numbanet():
    X, Y = _data("mse", np.float64)
    net = numbanet.Network([7, 5, 3], activations="sigmoid", loss="mse", seed=0)
    want = _trained_numbanet(net, X, Y)
    peer = peers.ReferenceMLP.from_network(net, shuffle=False)
    peer.train(peer.prepare(X, Y), EPOCHS, BATCH, LR)
    _assert_same(peer.params(), want, np.float64)


@pytest.mark.parametrize("sizes, activations, loss, dtype", [CASES[0], CASES[1], CASES[2]])
def test_torch_peer_matches_numbanet(sizes, activations, loss, dtype):
    pytest.importorskip("torch")
    X, Y = _data(loss, dtype)
    net = numbanet.Network(sizes, activations=activations, loss=loss, dtype=dtype, seed=0)
    want = _trained_numbanet(net, X, Y)
    peer = peers.TorchMLP.from_network(net, shuffle=False)
    peer.train(peer.prepare(X, Y), EPOCHS, BATCH, LR)
    _assert_same(peer.params(), want, dtype)


def test_sklearn_peer_matches_numbanet():
    pytest.importorskip("sklearn")
    X, Y = _data("cross_entropy", np.float64)
    net = numbanet.Network([7, 5, 3], activations=["relu", "softmax"], loss="cross_entropy", seed=0)
    want = _trained_numbanet(net, X, Y)
    peer = peers.SklearnMLP.from_network(net, shuffle=False)
    data = peer.prepare(X, Y)
    peer.set_params_from(net.weights, net.biases, data)
    peer.train(data, EPOCHS, BATCH, LR)
    _assert_same(peer.params(), want, np.float64)


def test_sklearn_keeps_float32():
    pytest.importorskip("sklearn")
    X, Y = _data("cross_entropy", np.float32)
    net = numbanet.Network([7, 5, 3], activations=["relu", "softmax"], loss="cross_entropy", dtype=np.float32)
    peer = peers.SklearnMLP.from_network(net)
    peer.epoch(peer.prepare(X, Y), BATCH, LR)
    assert peer.dtype_kept() == np.float32


def test_mnist_like_data():
    X, Y = peers.mnist_like(50, np.float32, seed=3)
    assert X.shape == (50, 784) and Y.shape == (50, 10)
    assert X.dtype == Y.dtype == np.float32
    assert X.min() >= 0 and X.max() <= 1
    np.testing.assert_array_equal(Y.sum(axis=1), 1)
    X2, Y2 = peers.mnist_like(50, np.float32, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(Y, Y2)


def test_quick_xor_benchmark_runs_and_prints_ratios(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, "run.py"), "--quick", "--only", "xor", "--rounds", "1",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "XOR" in text and "per step" in text
    assert "numpy" in text and "x  " in text
    assert "summary" in text and ">= 20x" in text
    assert ("meets" in text) or ("SHORT" in text)
    import json

    result = json.loads(out.read_text())
    xor = result["workloads"]["xor"]
    assert set(xor["impls"]) >= {"numbanet", "numpy"}
    assert xor["ratios"]["numpy"]["ratio"] > 0
    assert xor["ratios"]["numpy"]["target"] == 20.0
