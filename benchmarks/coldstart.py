"""Cold start: what a new process pays before numbanet trains, kernel by kernel.

Runs, each in a fresh Python process:

* ``import torch`` (the yardstick, when torch is installed);
* numbanet with an **empty** Numba cache: import, build a 64-64-10 network,
  first ``fit`` (one epoch of 256 rows), ``predict``;
* the same again with the cache that run filled (warm).

For the cold run it prints the wall time of each step and the compile time
of every kernel (thread CPU time) from Numba's event API (``numba.core.event``, the
``numba:compile`` events): *self* time excludes the kernels compiled while
compiling it (its callees), *total* includes them.

    python benchmarks/coldstart.py              # the table
    python benchmarks/coldstart.py --json out.json
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


#: The network, data and fit of the child (``--net``, ``--rows``, ``--batch``, ``--dtype``).
DEFAULT_NET = {"sizes": (64, 64, 10), "rows": 256, "batch": 32, "dtype": "float64"}


def child_numbanet(
    record, sizes=DEFAULT_NET["sizes"], rows=DEFAULT_NET["rows"], batch=DEFAULT_NET["batch"], dtype=DEFAULT_NET["dtype"]
):
    """Time an import, a network build, a first fit and a predict in this process.

    The network is relu/softmax of ``sizes``; the fit is one epoch over ``rows`` random rows.
    With ``record``, every kernel's compile time is recorded too.

    ``benchmarks/run.py`` (workload ``startup``) runs this same child for its warm start-up.
    """
    t0 = time.perf_counter()
    import numba.core.event as ev

    events = []

    class Listener(ev.Listener):
        def on_start(self, event):
            events.append((time.thread_time(), "start", event.data["dispatcher"]))

        def on_end(self, event):
            events.append((time.thread_time(), "end", event.data["dispatcher"]))

    if record:
        ev.register("numba:compile", Listener())
    t1 = time.perf_counter()
    import numpy as np

    import numbanet

    t2 = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.random((rows, sizes[0])).astype(dtype)
    Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], rows)]
    acts = ["relu"] * (len(sizes) - 2) + ["softmax"]
    net = numbanet.Network(list(sizes), activations=acts, loss="cross_entropy", dtype=dtype, seed=0)
    t3 = time.perf_counter()
    net.fit(X, Y, epochs=1, batch_size=batch, progress=False)
    t4 = time.perf_counter()
    net.predict(X)
    t5 = time.perf_counter()
    out = {
        "import": t2 - t1,
        "build": t3 - t2,
        "first_fit": t4 - t3,
        "first_predict": t5 - t4,
        "total": t5 - t0,
        "cpu": _cpu(),
    }
    if record:
        out["kernels"] = _compile_breakdown(events)
    return out


def _compile_breakdown(events):
    """Self and total compile time per kernel from nested start/end events."""
    stack, rows = [], {}
    for t, kind, disp in events:
        if kind == "start":
            stack.append([disp, t, 0.0])
            continue
        d, start, child = stack.pop()
        total = t - start
        name = f"{d.py_func.__module__}.{d.py_func.__qualname__}"
        row = rows.setdefault(name, {"self": 0.0, "total": 0.0, "count": 0})
        row["self"] += total - child
        row["total"] += total
        row["count"] += 1
        if stack:
            stack[-1][2] += total
    return rows


def _cpu():
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child_torch():
    """Time ``import torch`` in this process."""
    t = time.perf_counter()
    import torch  # noqa: F401

    return {"import": time.perf_counter() - t, "cpu": _cpu()}


def byte_compile():
    """Write numbanet's ``.pyc`` files, as an installed package has them.

    ``pip install`` writes them, and Python does on the first import -- unless
    ``PYTHONDONTWRITEBYTECODE`` is set, as on some CI and development machines.
    There every child would compile numbanet's sources again (40-50 ms here)
    while ``import torch`` reads the ``.pyc`` files of its installation.
    """
    import compileall

    compileall.compile_dir(os.path.join(ROOT, "numbanet"), quiet=1)


def run_child(what, cache_dir, record=False, net=None):
    """Run ``--child what`` in a fresh process and return its JSON.

    The child gets ``NUMBA_CACHE_DIR=cache_dir`` (None: this process's environment) and a
    network ``net`` (keys of :data:`DEFAULT_NET`); the JSON gains ``process``: the whole
    process's wall time.
    """
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    cmd = [sys.executable, os.path.abspath(__file__), "--child", what] + (["--record"] if record else [])
    if net:
        net = dict(DEFAULT_NET, **net)
        cmd += [
            "--net",
            ",".join(map(str, net["sizes"])),
            "--rows",
            str(net["rows"]),
            "--batch",
            str(net["batch"]),
            "--dtype",
            net["dtype"],
        ]
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["process"] = time.perf_counter() - t
    return out


def main(argv=None):
    """Run the cold-start benchmark (or, with ``--child``, one child) from the command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", choices=["numbanet", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--record", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--net", default=",".join(map(str, DEFAULT_NET["sizes"])), help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=DEFAULT_NET["rows"], help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=DEFAULT_NET["batch"], help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default=DEFAULT_NET["dtype"], help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--top", type=int, default=15, help="kernels listed (by self time)")
    args = ap.parse_args(argv)
    if args.child:
        if args.child == "torch":
            print(json.dumps(child_torch()))
        else:
            sizes = tuple(int(s) for s in args.net.split(","))
            print(json.dumps(child_numbanet(args.record, sizes, args.rows, args.batch, args.dtype)))
        return 0

    results = {}
    byte_compile()
    try:
        import importlib.util

        if importlib.util.find_spec("torch") is not None:
            run_child("torch", tempfile.gettempdir())  # the first import also warms the OS file cache
            results["torch"] = run_child("torch", tempfile.gettempdir())
    except subprocess.CalledProcessError as e:
        print("torch import failed:", e.stderr[-500:])
    with tempfile.TemporaryDirectory(prefix="numbanet-cold-") as cache:
        results["cold"] = run_child("numbanet", cache, record=True)
        results["warm"] = run_child("numbanet", cache)

    cold, warm = results["cold"], results["warm"]
    print("numbanet cold start, 64-64-10 relu/softmax, float64 (seconds, wall)")
    print(f"{'':14}{'import':>8}{'1st fit':>9}{'predict':>9}{'process':>9}{'CPU':>7}")
    for label, r in (("empty cache", cold), ("warm cache", warm)):
        print(
            f"{label:14}{r['import']:8.2f}{r['first_fit']:9.2f}{r['first_predict']:9.2f}{r['process']:9.2f}"
            f"{r['cpu']:7.2f}"
        )
    if "torch" in results:
        tr = results["torch"]
        print(f"{'import torch':14}{tr['import']:8.2f}{'':18}{tr['process']:9.2f}{tr['cpu']:7.2f}")
        print(
            f"cold / import torch: {cold['process'] / tr['process']:.2f}x wall, {cold['cpu'] / tr['cpu']:.2f}x CPU; "
            f"warm / import torch: {warm['process'] / tr['process']:.2f}x wall, {warm['cpu'] / tr['cpu']:.2f}x CPU "
            "(whole processes; CPU time is the steadier figure on a loaded machine)"
        )
    ks = sorted(cold["kernels"].items(), key=lambda kv: -kv[1]["self"])
    compile_total = sum(r["self"] for _, r in ks)
    print(
        f"\ncompiling: {compile_total:.2f} s in {sum(r['count'] for _, r in ks)} compilations "
        f"of {len(ks)} kernels; the {args.top} costliest (self time excludes callees):"
    )
    print(f"{'kernel':58}{'self s':>8}{'total s':>9}{'n':>4}")
    for name, r in ks[: args.top]:
        print(f"{name.replace('numbanet.kernels.', ''):58}{r['self']:8.2f}{r['total']:9.2f}{r['count']:4d}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
