r"""Measure numbanet against its peers on the workloads of docs/performance.md.

Usage::

    python benchmarks/run.py                      # everything (several minutes)
    python benchmarks/run.py --quick              # smoke run: small data, 2 rounds
    python benchmarks/run.py --only xor,mnist64   # chosen workloads
    python benchmarks/run.py --json results.json  # also write the results as JSON

Workloads (``--only`` names): ``mnist16``, ``mnist64``, ``mnist256`` (or
``mnist`` for all three), ``xor``, ``sigmoid``, ``startup``, ``memory``.

Method.  All implementations of a workload live in this one process and run
round-robin: a warm-up round (compiles numbanet's kernels or loads them from
the cache, builds PyTorch's autograd machinery, allocates buffers), then
``rounds`` rounds in which every implementation runs once, the starting
implementation rotating from round to round.  Medians are reported; a ratio
is ``peer time / numbanet time``, so a ratio above 1 means numbanet is faster,
and it is printed next to its target (docs/performance.md) with ``meets`` or ``SHORT``.
Start-up and peak memory are measured in fresh subprocesses.

Every implementation does the same mathematics (see :mod:`peers`); each keeps
training its own model from round to round.  The data are synthetic and
MNIST-shaped (:func:`peers.mnist_like`), seeded.
"""

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import numbanet  # noqa: E402
import peers  # noqa: E402

WORKLOADS = ["mnist16", "mnist64", "mnist256", "xor", "sigmoid", "startup", "memory"]

#: docs/performance.md: numbanet must be at least this many times faster than the peer.
TARGETS = {
    ("mnist64", "torch"): 2.0,
    ("mnist64", "numpy"): 1.3,
    ("mnist64", "sklearn"): 2.5,
    ("mnist256", "torch"): 1.5,
    ("mnist256", "numpy"): 1.2,
    ("xor", "torch"): 200.0,
    ("xor", "numpy"): 20.0,
    ("sigmoid", "textbook"): 30.0,
    ("sigmoid", "numpy"): 3.0,
    ("sigmoid", "torch"): 12.0,
}
GEMM_TARGET = 0.60  # numbanet's epoch must reach 60 % of the float32 GEMM rate (batch 256)
STARTUP_TARGET = 0.5  # warm start-up under 0.5x the time of `import torch`


# ------------------------------------------------------------------ machine


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info():
    """What the numbers were measured on."""
    import numba
    import scipy

    info = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "numbanet": numbanet.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if peers.have("torch"):
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_blas"] = "MKL" if torch.backends.mkl.is_available() else "other"
    else:
        info["torch"] = None
    if peers.have("sklearn"):
        import sklearn

        info["sklearn"] = sklearn.__version__
    else:
        info["sklearn"] = None
    if peers.have("threadpoolctl"):
        import threadpoolctl

        info["threadpools"] = [
            {k: p.get(k) for k in ("user_api", "internal_api", "version", "num_threads", "architecture", "filepath")}
            for p in threadpoolctl.threadpool_info()
        ]
    return info


def limit_threads(n):
    """Limit every thread pool in this process to ``n`` threads (BLAS, OpenMP, torch)."""
    if peers.have("torch"):
        import torch

        torch.set_num_threads(n)
    if not peers.have("threadpoolctl"):
        raise SystemExit("--threads needs threadpoolctl")
    import threadpoolctl

    # Kept for the life of the process: the object is not used as a context manager.
    limit_threads.limiter = threadpoolctl.threadpool_limits(n)


def print_machine(info):
    print("=" * 78)
    print("numbanet benchmarks (targets: docs/performance.md)")
    print("=" * 78)
    print(f"CPU           {info['cpu']}  ({info['logical_cpus']} logical, {info['usable_cpus']} usable)")
    print(f"Python        {info['python']}  on {info['platform']}")
    print(f"versions      numpy {info['numpy']}, scipy {info['scipy']}, numba {info['numba']}, "
          f"numbanet {info['numbanet']}, torch {info['torch']}, scikit-learn {info['sklearn']}")
    if info.get("torch"):
        print(f"torch         {info['torch_threads']} threads, BLAS {info['torch_blas']}")
    print(f"environment   OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']}  OMP_NUM_THREADS={info['OMP_NUM_THREADS']}")
    for p in info.get("threadpools", []):
        lib = os.path.basename(p["filepath"] or "")
        print(f"threadpool    {p['internal_api']} {p['version'] or ''} ({p['user_api']}, {p['num_threads']} threads"
              f"{', ' + p['architecture'] if p.get('architecture') else ''}) {lib}")
    if info.get("threads_limited_to"):
        print(f"threads       limited to {info['threads_limited_to']} in every pool (--threads)")
    if info["load_average"] is not None:
        la = info["load_average"]
        print(f"load average  {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} at start (other work on the machine skews times)")
    print()


# ------------------------------------------------------------------ timing


#: Pause before each timed unit, in seconds (``--settle``).  BLAS and OpenMP
#: worker threads busy-wait for a while after a call (OpenBLAS, libgomp); on a
#: machine with few cores the threads a peer left spinning would otherwise
#: steal the CPU from whichever implementation runs next.
SETTLE = 0.2


def interleaved(units, rounds):
    """Run every ``units[name]()`` once to warm up, then ``rounds`` round-robin rounds.

    Each timed run starts after a garbage collection and a pause of
    :data:`SETTLE` seconds, so that it does not share the CPU with the worker
    threads the previous implementation left spinning.

    Returns
    -------
    dict name -> list of seconds (one per round)
    """
    names = list(units)
    for name in names:
        units[name]()
    times = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            gc.collect()
            if SETTLE > 0:
                time.sleep(SETTLE)
            t0 = time.perf_counter()
            units[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def summary(ts, scale=1.0):
    s = [t * scale for t in ts]
    return {"median": statistics.median(s), "min": min(s), "max": max(s), "runs": s}


def fmt_time(t):
    if t >= 1.0:
        return f"{t:8.3f} s "
    if t >= 1e-3:
        return f"{t * 1e3:8.2f} ms"
    return f"{t * 1e6:8.2f} us"


def verdict(ratio, target):
    if target is None:
        return ""
    return "meets" if ratio >= target else "SHORT"


def print_table(title, result, unit_label):
    print(f"--- {title}")
    print(f"    {'impl':<10} {'median ' + unit_label:>14} {'min':>11} {'max':>11}   {'ratio':>8}  {'target':>7}  "
          f"verdict  {'(ratio of minima)'}")
    base = result["impls"]["numbanet"]["median"]
    for name, r in result["impls"].items():
        ratio = r["median"] / base
        target = result["targets"].get(name)
        line = f"    {name:<10} {fmt_time(r['median']):>14} {fmt_time(r['min']):>11} {fmt_time(r['max']):>11}"
        if name == "numbanet":
            line += f"   {'1':>7}x"
        else:
            rmin = r["min"] / result["impls"]["numbanet"]["min"]
            line += (f"   {ratio:7.2f}x  {('>= %gx' % target) if target else '-':>7}  {verdict(ratio, target):<7}"
                     f"  ({rmin:.2f}x)")
        if r.get("note"):
            line += f"   ({r['note']})"
        print(line)
    for line in result.get("extra_lines", []):
        print("    " + line)
    print()


def ratios_of(result):
    base = result["impls"]["numbanet"]["median"]
    out = {}
    for name, r in result["impls"].items():
        if name != "numbanet":
            target = result["targets"].get(name)
            ratio = r["median"] / base
            out[name] = {"ratio": ratio, "ratio_of_minima": r["min"] / result["impls"]["numbanet"]["min"],
                         "target": target, "verdict": verdict(ratio, target) or None}
    result["ratios"] = out
    return result


# ---------------------------------------------------------------- workloads


def _mnist_net(dtype=np.float32):
    return numbanet.Network([784, 128, 10], activations=["relu", "softmax"], loss="cross_entropy",
                            dtype=dtype, seed=0)


def gemm_rate(A, B, reps):
    """Seconds per ``np.dot(A, B, out)`` over ``reps`` calls."""
    out = np.empty((A.shape[0], B.shape[1]), dtype=A.dtype)
    np.dot(A, B, out=out)
    t0 = time.perf_counter()
    for _ in range(reps):
        np.dot(A, B, out=out)
    return (time.perf_counter() - t0) / reps


def epoch_gemm_floor(n, batch, sizes, dtype):
    """A unit that runs, with np.dot, exactly the GEMMs of one numbanet epoch (no other work)."""
    rng = np.random.default_rng(0)
    A = [rng.random((batch, s)).astype(dtype) for s in sizes]
    D = [rng.random((batch, s)).astype(dtype) for s in sizes[1:]]
    W = [rng.random((o, i)).astype(dtype) for i, o in zip(sizes[:-1], sizes[1:])]
    dW = [np.empty_like(w) for w in W]
    L = len(W)
    batches = [min(batch, n - s) for s in range(0, n, batch)]

    def run():
        for m in batches:
            for l in range(L):
                np.dot(A[l][:m], W[l].T, out=A[l + 1][:m])
            for l in range(L - 1, -1, -1):
                np.dot(D[l][:m].T, A[l][:m], out=dW[l])
                if l > 0:
                    np.dot(D[l][:m], W[l], out=D[l - 1][:m])

    return run


def epoch_flops(n, batch, sizes):
    """Flops of one epoch's GEMMs: forward, delta propagation (not into the input), weight gradient."""
    total = 0
    for start in range(0, n, batch):
        m = min(batch, n - start)
        for l, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
            gemms = 3 if l > 0 else 2
            total += gemms * 2 * m * i * o
    return total


def _peers(net, sklearn=False):
    """numbanet, NumPy, and (when importable) PyTorch and scikit-learn, each starting from
    ``net``'s weights; returns ``(impls, notes)`` with a note for every peer skipped."""
    impls = {"numbanet": peers.NumbanetMLP.from_network(net), "numpy": peers.NumpyMLP.from_network(net, seed=1)}
    notes = {}
    if peers.have("torch"):
        impls["torch"] = peers.TorchMLP.from_network(net, seed=2)
    else:
        notes["torch"] = "skipped: torch not importable"
    if sklearn:
        if peers.have("sklearn"):
            impls["sklearn"] = peers.SklearnMLP.from_network(net, seed=3)
        else:
            notes["sklearn"] = "skipped: scikit-learn not importable"
    return impls, notes


def bench_mnist(batch, n, rounds, with_gemm):
    """784-128-10 ReLU/softmax, cross-entropy, float32, SGD lr 0.1: one epoch."""
    X, Y = peers.mnist_like(n, np.float32, seed=0)
    lr = 0.1
    net = _mnist_net()
    impls, notes = _peers(net, sklearn=True)
    data = {name: p.prepare(X, Y) for name, p in impls.items()}
    units = {name: (lambda p=p, d=data[name]: p.epoch(d, batch, lr)) for name, p in impls.items()}
    sizes = [784, 128, 10]
    gemm_reps = 0
    if with_gemm:
        rng = np.random.default_rng(1)
        Ag = rng.random((256, 784), dtype=np.float32)
        Bg = rng.random((784, 128), dtype=np.float32)
        gemm_reps = 300
        units["_gemm"] = lambda: gemm_rate(Ag, Bg, gemm_reps)
        units["_gemm_epoch"] = epoch_gemm_floor(n, batch, sizes, np.float32)
    times = interleaved(units, rounds)
    result = {
        "title": f"784-128-10 relu/softmax cross-entropy float32, SGD lr {lr}, batch {batch}, one epoch of {n}",
        "n": n, "batch": batch, "rounds": rounds,
        "impls": {name: summary(times[name]) for name in impls},
        "targets": {name: TARGETS.get((f"mnist{batch}", name)) for name in impls},
        "skipped": notes,
    }
    if "sklearn" in impls:
        result["impls"]["sklearn"]["note"] = f"trains in {impls['sklearn'].dtype_kept()}"
    lines = []
    if with_gemm:
        flops = epoch_flops(n, batch, sizes)
        gemm_s = [t / gemm_reps for t in times["_gemm"]]
        gflops_ref = 2 * 256 * 784 * 128 / statistics.median(gemm_s) / 1e9
        gflops_nb = flops / result["impls"]["numbanet"]["median"] / 1e9
        floor = statistics.median(times["_gemm_epoch"])
        pct = gflops_nb / gflops_ref
        result["gemm"] = {
            "epoch_gflop": flops / 1e9,
            "numbanet_gflops": gflops_nb,
            "reference_gemm": "np.dot (256x784)·(784x128) float32",
            "reference_gflops": gflops_ref,
            "fraction": pct,
            "target": GEMM_TARGET,
            "verdict": verdict(pct, GEMM_TARGET),
            "epoch_gemms_only_s": floor,
            "epoch_gemms_only_gflops": flops / floor / 1e9,
        }
        lines.append(f"GEMM: the epoch's matrix products are {flops / 1e9:.2f} GFLOP "
                     f"(3 GEMMs per layer per batch, 2 for the first layer)")
        lines.append(f"      numbanet epoch {gflops_nb:6.2f} GFLOP/s; float32 np.dot (256x784)·(784x128) "
                     f"{gflops_ref:6.2f} GFLOP/s -> {100 * pct:5.1f} %  (target >= {100 * GEMM_TARGET:.0f} %)  "
                     f"{verdict(pct, GEMM_TARGET)}")
        lines.append(f"      the same epoch's GEMMs alone (np.dot, same shapes): {fmt_time(floor).strip()} "
                     f"= {flops / floor / 1e9:.2f} GFLOP/s; numbanet epoch / GEMMs alone = "
                     f"{result['impls']['numbanet']['median'] / floor:.2f}")
    for name, why in notes.items():
        lines.append(f"{name}: {why}")
    result["extra_lines"] = lines
    return ratios_of(result)


def bench_xor(epochs, rounds):
    """2-8-1 sigmoid/MSE XOR, fit(X, Y, epochs, batch_size=4): time per step."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    Y = np.array([[0], [1], [1], [0]], dtype=np.float64)
    lr = 2.0
    net = numbanet.Network([2, 8, 1], activations="sigmoid", loss="mse", seed=0)
    impls, notes = _peers(net)
    data = {name: p.prepare(X, Y) for name, p in impls.items()}
    units = {name: (lambda p=p, d=data[name]: p.train(d, epochs, 4, lr)) for name, p in impls.items()}
    times = interleaved(units, rounds)
    result = {
        "title": f"2-8-1 sigmoid/MSE float64 XOR, fit(X, Y, epochs={epochs}, batch_size=4), lr {lr}: per step",
        "epochs": epochs, "rounds": rounds,
        "impls": {name: summary(times[name], 1.0 / epochs) for name in impls},
        "targets": {name: TARGETS.get(("xor", name)) for name in impls},
        "skipped": notes,
        "extra_lines": [f"{k}: {v}" for k, v in notes.items()],
    }
    return ratios_of(result)


def bench_sigmoid(n, n_textbook, rounds):
    """784-30-10 sigmoid/MSE float64, batch 10, lr 3.0: one epoch of n (textbook: scaled from a subset)."""
    X, Y = peers.mnist_like(n, np.float64, seed=0)
    lr, batch = 3.0, 10
    net = numbanet.Network([784, 30, 10], activations="sigmoid", loss="mse", dtype=np.float64, seed=0)
    impls, notes = _peers(net)
    impls["textbook"] = peers.ReferenceMLP.from_network(net, seed=4)
    data = {name: p.prepare(X, Y) for name, p in impls.items()}
    data["textbook"] = (X[:n_textbook], Y[:n_textbook])
    units = {name: (lambda p=p, d=data[name]: p.epoch(d, batch, lr)) for name, p in impls.items()}
    times = interleaved(units, rounds)
    scale = {name: 1.0 for name in impls}
    scale["textbook"] = n / n_textbook
    result = {
        "title": f"784-30-10 sigmoid/MSE float64, SGD lr {lr}, batch {batch}, one epoch of {n}",
        "n": n, "n_textbook": n_textbook, "rounds": rounds,
        "impls": {name: summary(times[name], scale[name]) for name in impls},
        "targets": {name: TARGETS.get(("sigmoid", name)) for name in impls},
        "skipped": notes,
        "extra_lines": [f"{k}: {v}" for k, v in notes.items()],
    }
    result["impls"]["textbook"]["note"] = f"timed on {n_textbook} samples, scaled x{n / n_textbook:g}"
    return ratios_of(result)


# --------------------------------------------------------- subprocess checks

STARTUP_NUMBANET = r"""
import time
t0 = time.perf_counter()
import numpy as np
import numbanet
t1 = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.random((1000, 784), dtype=np.float32)
Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 1000)]
net = numbanet.Network([784, 128, 10], activations=["relu", "softmax"], loss="cross_entropy",
                       dtype=np.float32, seed=0)
net.fit(X, Y, epochs=1, batch_size=64, optimizer=numbanet.SGD(lr=0.1), progress=False)
P = net.predict(X)
t2 = time.perf_counter()
import json
print(json.dumps({"import": t1 - t0, "total": t2 - t0}))
"""

STARTUP_TORCH = r"""
import time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import json
print(json.dumps({"import": t1 - t0, "total": t1 - t0}))
"""


def _child(code, env=None, timeout=900):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=HERE)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall"] = wall
    return out


def bench_startup(reps, cold):
    """Fresh processes: numbanet import+build+fit+predict (warm and cold cache) vs `import torch`."""
    env = dict(os.environ)
    _child(STARTUP_NUMBANET, env)  # make sure the cache is warm
    has_torch = peers.have("torch")
    if has_torch:
        _child(STARTUP_TORCH, env)  # and the file system cache
    warm, torch_runs = [], []
    for _ in range(reps):
        warm.append(_child(STARTUP_NUMBANET, env))
        if has_torch:
            torch_runs.append(_child(STARTUP_TORCH, env))
    result = {"reps": reps}

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    result["numbanet_warm"] = {k: med(warm, k) for k in ("import", "total", "process_wall")}
    lines = [f"numbanet, warm cache: import {fmt_time(result['numbanet_warm']['import']).strip()}, "
             f"import+build+fit 1000+predict {fmt_time(result['numbanet_warm']['total']).strip()} "
             f"(whole process {fmt_time(result['numbanet_warm']['process_wall']).strip()})"]
    if has_torch:
        result["torch_import"] = {k: med(torch_runs, k) for k in ("import", "process_wall")}
        frac = result["numbanet_warm"]["total"] / result["torch_import"]["import"]
        result["fraction_of_torch_import"] = frac
        result["target"] = STARTUP_TARGET
        result["verdict"] = "meets" if frac < STARTUP_TARGET else "SHORT"
        lines.append(f"import torch: {fmt_time(result['torch_import']['import']).strip()} "
                     f"(whole process {fmt_time(result['torch_import']['process_wall']).strip()})")
        lines.append(f"numbanet warm start = {frac:.2f}x import torch  (target < {STARTUP_TARGET}x)  {result['verdict']}")
    else:
        lines.append("import torch: skipped, torch not importable")
    if cold:
        with tempfile.TemporaryDirectory(prefix="numbanet-cold-cache-") as d:
            cenv = dict(env, NUMBA_CACHE_DIR=d)
            c = _child(STARTUP_NUMBANET, cenv)
        result["numbanet_cold"] = c
        lines.append(f"numbanet, cold cache (empty NUMBA_CACHE_DIR, compiles everything): import "
                     f"{fmt_time(c['import']).strip()}, total {fmt_time(c['total']).strip()} "
                     f"(whole process {fmt_time(c['process_wall']).strip()})")
    else:
        lines.append("numbanet, cold cache: skipped in --quick mode")
    result["extra_lines"] = lines
    return result


MEMORY_CHILD = r"""
import json, resource, sys
import numpy as np
sys.path.insert(0, {here!r})
import peers
X, Y = peers.mnist_like({n}, np.float32, seed=0)
def kb():
    # VmHWM: this process's peak resident set.  (ru_maxrss would report at least the
    # parent's size: Linux carries it over through fork and exec.)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
after_data = kb()
which = {which!r}
rng = np.random.default_rng(0)
if which == "numbanet":
    import numbanet
    net = numbanet.Network([784, 128, 10], activations=["relu", "softmax"], loss="cross_entropy",
                           dtype=np.float32, seed=0)
    p = peers.NumbanetMLP(net)
else:
    W = [rng.normal(0, (2 / 784) ** 0.5, (128, 784)).astype(np.float32),
         rng.uniform(-0.2, 0.2, (10, 128)).astype(np.float32)]
    b = [np.zeros(128, np.float32), np.zeros(10, np.float32)]
    cls = peers.TorchMLP if which == "torch" else peers.NumpyMLP
    p = cls(W, b, ["relu", "softmax"], "cross_entropy", np.float32)
after_import = kb()
p.epoch(p.prepare(X, Y), 64, 0.1)
print(json.dumps({{"after_data_kb": after_data, "after_import_kb": after_import, "peak_kb": kb()}}))
"""


def bench_memory(n):
    """Peak resident set size (VmHWM) of one float32 epoch (batch 64) of the MNIST-shaped workload, each in its own process."""
    result = {"n": n, "impls": {}}
    lines = [f"peak RSS (VmHWM) of a fresh process: data ({n}x784 float32 = {n * 784 * 4 / 2**20:.0f} MiB) + import + "
             f"one epoch at batch 64"]
    for which in ("numbanet", "numpy", "torch"):
        if which == "torch" and not peers.have("torch"):
            lines.append("torch: skipped, torch not importable")
            continue
        r = _child(MEMORY_CHILD.format(here=HERE, n=n, which=which))
        result["impls"][which] = r
        lines.append(f"{which:<9} after data {r['after_data_kb'] / 1024:7.1f} MiB, after import+build "
                     f"{r['after_import_kb'] / 1024:7.1f} MiB, peak {r['peak_kb'] / 1024:7.1f} MiB "
                     f"(+{(r['peak_kb'] - r['after_data_kb']) / 1024:.1f} MiB over the data)")
    if "torch" in result["impls"]:
        nb, tc = result["impls"]["numbanet"]["peak_kb"], result["impls"]["torch"]["peak_kb"]
        lines.append(f"torch peak / numbanet peak = {tc / nb:.2f}")
    result["extra_lines"] = lines
    return result


# --------------------------------------------------------------------- main


def parse_only(text):
    if not text:
        return list(WORKLOADS)
    chosen = []
    for name in text.split(","):
        name = name.strip()
        if name == "mnist":
            chosen += ["mnist16", "mnist64", "mnist256"]
        elif name in WORKLOADS:
            chosen.append(name)
        else:
            raise SystemExit(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)} (or 'mnist')")
    return [w for w in WORKLOADS if w in chosen]


def main(argv=None):
    global SETTLE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: small data, 2 rounds, no cold start")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--only", metavar="NAMES", help=f"comma-separated workloads: {', '.join(WORKLOADS)}, mnist")
    ap.add_argument("--rounds", type=int, help="timed rounds (default 5, or 2 with --quick)")
    ap.add_argument("--threads", type=int, metavar="N",
                    help="limit every BLAS and OpenMP pool (threadpoolctl) and torch to N threads; "
                         "default: leave every library at its own default")
    ap.add_argument("--settle", type=float, default=SETTLE, metavar="SECONDS",
                    help=f"pause before each timed run so other libraries' spinning threads go idle "
                         f"(default {SETTLE}; 0 disables)")
    args = ap.parse_args(argv)
    SETTLE = args.settle
    chosen = parse_only(args.only)
    quick = args.quick
    rounds = args.rounds or (2 if quick else 5)
    n = 6000 if quick else 60000
    info = machine_info()
    if args.threads:
        limit_threads(args.threads)
        info["threads_limited_to"] = args.threads
    print_machine(info)
    print(f"mode: {'quick' if quick else 'full'}; {rounds} timed rounds after a warm-up round; "
          f"ratio = peer time / numbanet time (> 1: numbanet faster)\n")
    results = {"machine": info, "quick": quick, "rounds": rounds, "workloads": {}}
    t_start = time.perf_counter()
    for w in chosen:
        if w.startswith("mnist"):
            batch = int(w[5:])
            r = bench_mnist(batch, n, rounds, with_gemm=batch == 256)
            print_table(r["title"], r, "epoch")
        elif w == "xor":
            r = bench_xor(500 if quick else 20000, rounds)
            print_table(r["title"], r, "step")
        elif w == "sigmoid":
            r = bench_sigmoid(n, 300 if quick else 2000, rounds)
            print_table(r["title"], r, "epoch")
        elif w == "startup":
            r = bench_startup(2 if quick else 5, cold=not quick)
            print("--- start-up in fresh processes")
            for line in r["extra_lines"]:
                print("    " + line)
            print()
        else:
            r = bench_memory(n)
            print("--- memory")
            for line in r["extra_lines"]:
                print("    " + line)
            print()
        results["workloads"][w] = r
        sys.stdout.flush()
    # summary against the targets
    print("=" * 78)
    print("summary: ratio = peer time / numbanet time; target from docs/performance.md")
    print(f"    {'workload':<10} {'versus':<26} {'ratio':>8}  {'target':>8}  verdict")
    for w, r in results["workloads"].items():
        for name, q in r.get("ratios", {}).items():
            tgt = f">= {q['target']:g}x" if q["target"] else "-"
            print(f"    {w:<10} {name:<26} {q['ratio']:7.2f}x  {tgt:>8}  {q['verdict'] or ''}")
        if "gemm" in r:
            g = r["gemm"]
            print(f"    {w:<10} {'% of float32 GEMM rate':<26} {100 * g['fraction']:7.1f}%  "
                  f"{'>= %d%%' % (100 * g['target']):>8}  {g['verdict']}")
        if "fraction_of_torch_import" in r:
            print(f"    {w:<10} {'start-up / import torch':<26} {r['fraction_of_torch_import']:7.2f}x  "
                  f"{'< %gx' % r['target']:>8}  {r['verdict']}")
    la = os.getloadavg() if hasattr(os, "getloadavg") else None
    results["load_average_end"] = la
    results["elapsed_s"] = time.perf_counter() - t_start
    print(f"\nelapsed {results['elapsed_s']:.0f} s; load average at end "
          f"{' '.join(f'{v:.2f}' for v in la) if la else 'n/a'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
        print(f"results written to {args.json}")
    return results


if __name__ == "__main__":
    main()
