"""The benchmark peers compute what numbanet computes, and the benchmark runs.

A speed ratio means something only if both sides do the same mathematics:
these tests train numbanet and a peer from the same weights, on the same
rows in the same order (no shuffling), and require the same weights after the
epochs, to rounding.  They are the correctness twins of
``benchmarks/peers.py``.  The others check the workload table of
``benchmarks/run.py``, that its GEMM-only floor does numbanet's matrix
products, run every workload at a tiny size, and run the script itself in a
subprocess (ratios printed, commit and machine in the JSON); no timing is
asserted anywhere.
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


def _load_run():
    """``benchmarks/run.py`` as a module (it puts benchmarks/ and this checkout on ``sys.path``)."""
    spec = importlib.util.spec_from_file_location("numbanet_bench_run", os.path.join(BENCH, "run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run():
    return _load_run()


def test_workload_table_is_consistent(run):
    names = [w.name for w in run.WORKLOADS]
    assert len(names) == len(set(names))
    special = {"gemm_fraction", "gemm_multiple", "progress=None", "progress=True", "warm/torch", "cold/torch"}
    with open(os.path.join(ROOT, "docs", "performance.md")) as f:
        docs = f.read()
    for w in run.WORKLOADS:
        assert w.kind in run.RUNNERS, w.name
        assert f"`{w.name}`" in docs, f"docs/performance.md does not list workload {w.name}"
        assert set(w.peers) <= set(run.PEERS), w.name
        for key, (op, bound) in w.targets.items():
            assert op in (">=", "<="), (w.name, key)
            assert bound > 0
            assert key in w.peers or key in special, (w.name, key)
            if key in w.peers:
                assert op == ">=" and key != "numbanet"
        if w.kind in ("train", "progress"):
            assert len(w.activations) == len(w.sizes) - 1
            assert w.batch > 0 and w.lr > 0 and w.per in ("epoch", "step")
            assert w.peers[0] == "numbanet"
        if w.gemm:
            assert w.kind == "train" and w.dtype == "float32" and "gemm_multiple" in w.targets
    assert {"mnist64", "mnist256"} <= {w.name for w in run.WORKLOADS if w.gemm}
    assert run.parse_only("mnist,xor") == ["mnist16", "mnist64", "mnist256", "xor"]
    assert run.parse_only(None) == names


def test_gemm_floor_does_numbanets_products(run, monkeypatch):
    """Per batch: X·W1ᵀ, H·W2ᵀ forward; δ2ᵀ·H, δ2·W2, δ1ᵀ·X backward (none into the input)."""
    gemm = sys.modules["gemm"]
    n, batch, sizes = 300, 128, (784, 128, 10)
    floor = gemm.epoch_gemm_floor(n, batch, sizes, np.float32)
    calls = []
    real_dot = np.dot

    def dot(a, b, out):
        assert out.flags.c_contiguous and out.dtype == np.float32
        calls.append((a.shape, b.shape, out.shape))
        return real_dot(a, b, out=out)

    monkeypatch.setattr(gemm.np, "dot", dot)
    floor()
    want = []
    for m in (128, 128, 44):
        want += [
            ((m, 784), (784, 128), (m, 128)),
            ((m, 128), (128, 10), (m, 10)),
            ((10, m), (m, 128), (10, 128)),
            ((m, 10), (10, 128), (m, 128)),
            ((128, m), (m, 784), (128, 784)),
        ]
    assert calls == want
    assert floor.calls == len(want)
    assert gemm.epoch_flops(n, batch, sizes) == sum(2 * a[0] * a[1] * b[1] for a, b, _ in want)


TINY = {  # overrides that make each workload a smoke test (no timing is asserted)
    "train": dict(rows=(300, 300), epochs=(1, 1), subset=("textbook", 40, 40)),
    "progress": dict(epochs=(20, 20)),
    "startup": dict(rows=(64, 64), reps=(1, 1)),
    "memory": dict(rows=(500, 500)),
}


@pytest.mark.slow  # each workload trains and times its peers (startup in a child Python)
@pytest.mark.parametrize("name", ["mnist16", "mnist64", "mnist256", "xor", "progress", "sigmoid", "startup", "memory"])
def test_each_workload_runs_tiny(run, name, monkeypatch):
    import dataclasses

    w = run.BY_NAME[name]
    over = dict(TINY[w.kind])
    if w.kind == "train" and not w.subset:
        over.pop("subset")
    if w.data == "xor":
        over.update(rows=w.rows, epochs=(20, 20))
    monkeypatch.setattr(run.timing, "SETTLE", 0.0)
    r = run.RUNNERS[w.kind](dataclasses.replace(w, **over), True, 1)
    assert r["title"] and isinstance(r["extra_lines"], list)
    for c in r["checks"]:
        assert c["value"] > 0
        assert c["verdict"] in (("meets", "SHORT") if c["target"] else (None,))
    checked = {c["what"] for c in r["checks"]}
    if w.kind == "train":
        assert r["impls"]["numbanet"]["median"] > 0
        assert set(r["ratios"]) == set(r["impls"]) - {"numbanet"}
    if w.gemm:
        assert (
            r["gemm"]["multiple"] > 0
            and r["gemm"]["multiple_numpy"] > 0
            and r["gemm"]["multiple_gemms_and_gather"] > 0
            and {"gemm_multiple"} <= checked
        )
        assert any("GEMMs alone" in line for line in r["extra_lines"])
    if w.kind == "progress":
        assert checked == {"progress=None", "progress=True"}
        assert set(r["ratios_to_progress_false"]) == checked
    if w.kind == "startup":
        assert r["numbanet_warm"]["total"] > 0
    if w.kind == "memory":
        assert r["impls"]["numbanet"]["peak_kb"] > 0


@pytest.mark.slow  # a child Python runs benchmarks/run.py
def test_quick_benchmark_runs_and_prints_ratios(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(BENCH, "run.py"),
            "--quick",
            "--only",
            "xor,progress",
            "--rounds",
            "1",
            "--settle",
            "0",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "XOR" in text and "per step" in text
    assert "numpy" in text and "x  " in text
    assert "summary" in text and ">= 20x" in text and "progress=True / False" in text
    assert ("meets" in text) or ("SHORT" in text)
    assert f"from {os.path.join(ROOT, 'numbanet')}" in text  # this checkout's numbanet, not an installed one
    import json

    result = json.loads(out.read_text())
    xor = result["workloads"]["xor"]
    assert set(xor["impls"]) >= {"numbanet", "numpy"}
    assert xor["ratios"]["numpy"]["ratio"] > 0
    assert xor["ratios"]["numpy"]["target"] == 20.0
    assert set(result["workloads"]["progress"]["ratios_to_progress_false"]) == {"progress=None", "progress=True"}
    commit = result["commit"]
    assert len(commit["sha"]) == 40 and isinstance(commit["dirty"], bool)
    machine = result["machine"]
    for key in ("cpu", "logical_cpus", "physical_cores", "numpy", "numba", "scipy", "numpy_blas", "numbanet_path"):
        assert key in machine
    assert machine["numbanet_path"] == os.path.join(ROOT, "numbanet")


@pytest.mark.slow  # a child Python runs the scikit-learn comparisons
@pytest.mark.parametrize("script, args, expected", [("lbfgs.py", ["--quick"], "speed-up"), ("serving.py", [], "goal")])
def test_sklearn_comparison_benchmarks_run(script, args, expected):
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, script), *args], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout and "sklearn" in proc.stdout


@pytest.mark.slow  # a child Python runs benchmarks/explain.py
def test_explain_benchmark_runs_and_prints_ratios_and_agreement():
    pytest.importorskip("captum")
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, "explain.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    ratios = [line for line in lines if "captum / numbanet" in line]
    assert len(ratios) == 3 and all("goal >= 5x" in line for line in ratios)
    # The attributions agree (float32 workloads to float32 precision, float64 ones closely).
    diffs = [float(line.rsplit("max |diff|", 1)[1]) for line in lines if "max |diff|" in line]
    assert len(diffs) == 6 and max(diffs) < 1e-6


@pytest.mark.slow  # a child Python runs benchmarks/sparse_input.py
def test_quick_sparse_benchmark_prints_ratio_scores_and_memory():
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, "sparse_input.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "fit time ratio" in text and ("meets" in text or "SHORT" in text)
    assert "accuracy numbanet - sklearn" in text and "of a dense copy" in text
    assert "sparse.numba_backend" not in proc.stderr  # this file's name does not shadow pydata's sparse
