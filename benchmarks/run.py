r"""Measure numbanet against its peers on the workloads of docs/performance.md.

Usage::

    python benchmarks/run.py                      # everything (several minutes)
    python benchmarks/run.py --quick              # smoke run: small data, 2 rounds
    python benchmarks/run.py --only xor,mnist64   # chosen workloads
    python benchmarks/run.py --json results.json  # also write the results as JSON

The workloads are the rows of :data:`WORKLOADS` (``--only`` takes their names,
and ``mnist`` for the three MNIST-shaped ones): network, dtype, batch, data
size, peers and targets.  That table drives both the runs and the summary.

Method.  All implementations of a workload live in this one process and run
round-robin: a warm-up round (compiles numbanet's kernels or loads them from
the cache, builds PyTorch's autograd machinery, allocates buffers), then
``rounds`` rounds in which every implementation runs once, the starting
implementation rotating from round to round, each after a garbage collection
and a pause (``--settle``).  Medians are reported; a peer ratio is
``peer time / numbanet time``, so a ratio above 1 means numbanet is faster,
and it is printed next to its target with ``meets`` or ``SHORT``.  Start-up
and peak memory are measured in fresh subprocesses (:mod:`coldstart`,
:mod:`_children`).

Every implementation does the same mathematics (see :mod:`peers`); each keeps
training its own model from round to round.  The data are synthetic and
MNIST-shaped (:func:`peers.mnist_like`), seeded.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
if os.path.isdir(os.path.join(ROOT, "numbanet")):
    sys.path.insert(0, ROOT)  # this checkout's numbanet, not an editable install's

import _children  # noqa: E402
import coldstart  # noqa: E402
import gemm  # noqa: E402
import numpy as np  # noqa: E402
import peers  # noqa: E402
import timing  # noqa: E402
from _machine import commit_info, limit_threads, machine_info, print_header  # noqa: E402
from timing import check, fmt_target, fmt_time, interleaved, summary  # noqa: E402

import numbanet  # noqa: E402

# ------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Workload:
    """One row of the benchmark table.

    ``kind`` picks the runner: ``train`` (the peers side by side), ``progress``
    (numbanet's fit with and without a progress bar), ``startup`` and ``memory``
    (fresh processes).  Pairs ``(full, quick)`` give the size of a normal and of
    a ``--quick`` run.  ``targets`` maps what is checked to ``(">=" or "<=",
    value)``: a peer name (peer time / numbanet time), ``gemm_fraction``
    (numbanet's epoch GFLOP/s / a float32 GEMM's), ``gemm_multiple``
    (numbanet's epoch / the same epoch's matrix products alone), ``progress=...``
    (time with that setting / time with ``progress=False``), ``warm/torch`` and
    ``cold/torch`` (start-up / ``import torch``).
    """

    name: str
    kind: str
    title: str
    sizes: tuple = ()
    activations: tuple = ()
    loss: str = ""
    dtype: str = "float32"
    batch: int = 0
    lr: float = 0.0
    data: str = "mnist"  # "mnist" (peers.mnist_like, `rows` of them) or "xor" (the 4 points)
    rows: tuple = (60000, 6000)
    epochs: tuple = (1, 1)  # epochs per timed run
    per: str = "epoch"  # times reported per "epoch" or per "step" (mini-batch)
    peers: tuple = ()
    subset: tuple = ()  # (peer, full rows, quick rows): that peer is timed on a subset and scaled
    gemm: bool = False  # also time the epoch's matrix products alone
    reps: tuple = (5, 2)  # start-up: fresh processes per measurement
    targets: dict = field(default_factory=dict)

    def size(self, pair, quick):
        """Return the quick (second) or full (first) value of ``pair``."""
        return pair[1] if quick else pair[0]


_MNIST = dict(
    kind="train",
    sizes=(784, 128, 10),
    activations=("relu", "softmax"),
    loss="cross_entropy",
    dtype="float32",
    lr=0.1,
    peers=("numbanet", "numpy", "torch", "sklearn"),
)
_XOR = dict(
    sizes=(2, 8, 1),
    activations=("sigmoid", "sigmoid"),
    loss="mse",
    dtype="float64",
    batch=4,
    lr=2.0,
    data="xor",
    rows=(4, 4),
    epochs=(20000, 500),
    per="step",
)

WORKLOADS = [
    Workload(
        "mnist16", batch=16, title="784-128-10 relu/softmax cross-entropy float32, SGD, batch 16, one epoch", **_MNIST
    ),
    Workload(
        "mnist64",
        batch=64,
        gemm=True,
        title="784-128-10 relu/softmax cross-entropy float32, SGD, batch 64, one epoch",
        targets={"torch": (">=", 2.0), "numpy": (">=", 1.3), "sklearn": (">=", 2.5), "gemm_multiple": ("<=", 1.15)},
        **_MNIST,
    ),
    Workload(
        "mnist256",
        batch=256,
        gemm=True,
        title="784-128-10 relu/softmax cross-entropy float32, SGD, batch 256, one epoch",
        targets={
            "torch": (">=", 1.5),
            "numpy": (">=", 1.2),
            "gemm_fraction": (">=", 0.60),
            "gemm_multiple": ("<=", 1.15),
        },
        **_MNIST,
    ),
    Workload(
        "xor",
        kind="train",
        peers=("numbanet", "numpy", "torch"),
        title="2-8-1 sigmoid/MSE float64 XOR, fit(X, Y, epochs, batch_size=4), SGD: per step",
        targets={"torch": (">=", 200.0), "numpy": (">=", 20.0)},
        **_XOR,
    ),
    Workload(
        "progress",
        kind="progress",
        peers=("numbanet",),
        title="the XOR fit with a progress bar: time / time with progress=False",
        targets={"progress=None": ("<=", 1.5), "progress=True": ("<=", 1.5)},
        **_XOR,
    ),
    Workload(
        "sigmoid",
        kind="train",
        sizes=(784, 30, 10),
        activations=("sigmoid", "sigmoid"),
        loss="mse",
        dtype="float64",
        batch=10,
        lr=3.0,
        peers=("numbanet", "numpy", "torch", "textbook"),
        subset=("textbook", 2000, 300),
        title="784-30-10 sigmoid/MSE float64, SGD, batch 10, one epoch",
        targets={"textbook": (">=", 30.0), "numpy": (">=", 3.0), "torch": (">=", 12.0)},
    ),
    Workload(
        "startup",
        kind="startup",
        sizes=(784, 128, 10),
        dtype="float32",
        batch=64,
        rows=(1000, 1000),
        title="start-up in fresh processes: import, build, first fit, predict, against `import torch`",
        targets={"warm/torch": ("<=", 0.5), "cold/torch": ("<=", 4.0)},
    ),
    Workload(
        "memory",
        kind="memory",
        sizes=(784, 128, 10),
        batch=64,
        peers=("numbanet", "numpy", "torch"),
        title="peak resident memory (VmHWM) of a fresh process: the data + import + one epoch at batch 64",
    ),
]
BY_NAME = {w.name: w for w in WORKLOADS}
GROUPS = {"mnist": ["mnist16", "mnist64", "mnist256"]}


def print_result(r):
    """Print one workload's result ``r``: its timings, ratios and verdicts."""
    print(f"--- {r['title']}")
    if r.get("impls") and "ratios" in r:
        print(
            f"    {'impl':<14} {'median':>11} {'min':>11} {'max':>11}   {'ratio':>8}  {'target':>8}  "
            f"verdict  (ratio of minima)"
        )
        for name, s in r["impls"].items():
            line = f"    {name:<14} {fmt_time(s['median']):>11} {fmt_time(s['min']):>11} {fmt_time(s['max']):>11}"
            q = r["ratios"].get(name)
            if q is None:
                line += f"   {'1':>7}x"
            else:
                tgt = fmt_target((">=", q["target"]) if q["target"] else None)
                line += f"   {q['ratio']:7.2f}x  {tgt:>8}  {q['verdict'] or '':<7}  ({q['ratio_of_minima']:.2f}x)"
            if s.get("note"):
                line += f"   ({s['note']})"
            print(line)
    for line in r.get("extra_lines", []):
        print("    " + line)
    print()


# ---------------------------------------------------------------- runners


XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=np.float64)


def _data(w, quick):
    if w.data == "xor":
        return XOR_X.astype(w.dtype), XOR_Y.astype(w.dtype)
    return peers.mnist_like(w.size(w.rows, quick), np.dtype(w.dtype), seed=0)


def _network(w):
    return numbanet.Network(
        list(w.sizes), activations=list(w.activations), loss=w.loss, dtype=np.dtype(w.dtype), seed=0
    )


PEERS = {  # name -> (module that must be importable or None, factory from a numbanet.Network)
    "numbanet": (None, lambda net: peers.NumbanetMLP.from_network(net)),
    "numpy": (None, lambda net: peers.NumpyMLP.from_network(net, seed=1)),
    "torch": ("torch", lambda net: peers.TorchMLP.from_network(net, seed=2)),
    "sklearn": ("sklearn", lambda net: peers.SklearnMLP.from_network(net, seed=3)),
    "textbook": (None, lambda net: peers.ReferenceMLP.from_network(net, seed=4)),
}


def _ratios(result, targets):
    base = result["impls"]["numbanet"]
    out = {}
    for name, s in result["impls"].items():
        if name != "numbanet":
            c = check(name, s["median"] / base["median"], targets.get(name))
            out[name] = {
                "ratio": c["value"],
                "ratio_of_minima": s["min"] / base["min"],
                "target": c["target"][1] if c["target"] else None,
                "verdict": c["verdict"],
            }
            result["checks"].append(c)
    result["ratios"] = out


def run_train(w, quick, rounds):
    """Time the peers of ``w`` side by side, each training its own copy of one network."""
    X, Y = _data(w, quick)
    n, epochs = X.shape[0], w.size(w.epochs, quick)
    net = _network(w)
    impls, skipped = {}, {}
    for name in w.peers:
        module, make = PEERS[name]
        if module and not peers.have(module):
            skipped[name] = f"skipped: {module} not importable"
        else:
            impls[name] = make(net)
    data = {name: p.prepare(X, Y) for name, p in impls.items()}
    scale = {name: 1.0 / epochs for name in impls}
    if w.per == "step":
        scale = {name: s / -(-n // w.batch) for name, s in scale.items()}
    notes = {}
    if w.subset and w.subset[0] in impls:
        k = min(n, w.size(w.subset[1:], quick))
        data[w.subset[0]] = tuple(a[:k] for a in data[w.subset[0]])
        scale[w.subset[0]] *= n / k
        notes[w.subset[0]] = f"timed on {k} samples, scaled x{n / k:g}"
    units = {name: (lambda p=p, d=data[name]: p.train(d, epochs, w.batch, w.lr)) for name, p in impls.items()}
    if w.gemm:
        gemm_units = gemm.units(n, w.batch, w.sizes, np.dtype(w.dtype), quick)
        units.update(gemm_units)
    times = interleaved(units, rounds)
    result = {
        "title": f"{w.title}" + (f" of {n}" if w.per == "epoch" else f", epochs={epochs}") + f", lr {w.lr}",
        "kind": w.kind,
        "n": n,
        "batch": w.batch,
        "epochs": epochs,
        "per": w.per,
        "rounds": rounds,
        "impls": {name: summary(times[name], scale[name]) for name in impls},
        "targets": {name: (w.targets[name][1] if name in w.targets else None) for name in impls},
        "skipped": skipped,
        "checks": [],
    }
    if "sklearn" in impls:
        notes["sklearn"] = f"trains in {impls['sklearn'].dtype_kept()}"
    for name, note in notes.items():
        result["impls"][name]["note"] = note
    _ratios(result, w.targets)
    lines = [f"{k}: {v}" for k, v in skipped.items()]
    if w.gemm:
        lines += gemm.report(w, n, gemm_units, times, result)
    result["extra_lines"] = lines
    return result


def run_progress(w, quick, rounds):
    """Numbanet's XOR fit with ``progress=None`` and ``progress=True`` against ``progress=False``."""
    from numbanet.progress import default_progress

    X, Y = _data(w, quick)
    epochs = w.size(w.epochs, quick)
    base = _network(w)
    sink = open(os.devnull, "w")

    def unit(mode):
        net = base.copy()
        opt = numbanet.SGD(lr=w.lr)

        def fit():
            if mode is True:  # the bar's output is discarded: its cost in this process is timed, not the terminal's
                with contextlib.redirect_stderr(sink):
                    net.fit(X, Y, epochs=epochs, batch_size=w.batch, optimizer=opt, progress=True)
            else:
                net.fit(X, Y, epochs=epochs, batch_size=w.batch, optimizer=opt, progress=mode)

        return fit

    modes = {"progress=False": False, "progress=None": None, "progress=True": True}
    try:
        times = interleaved({k: unit(m) for k, m in modes.items()}, rounds)
    finally:
        sink.close()
    resolved = default_progress()
    steps = epochs * -(-X.shape[0] // w.batch)
    result = {
        "title": f"{w.title}, epochs={epochs}: per step",
        "kind": w.kind,
        "epochs": epochs,
        "rounds": rounds,
        "impls": {k: summary(t, 1.0 / steps) for k, t in times.items()},
        "progress_none_resolves_to": resolved,
        "checks": [],
    }
    base_t = result["impls"]["progress=False"]
    lines = [
        f"progress=None resolves here to {resolved} (True in a terminal or a notebook, False in a pipe or a "
        f"log); progress=True writes its bar to {os.devnull}."
    ]
    for k in ("progress=None", "progress=True"):
        c = check(k, result["impls"][k]["median"] / base_t["median"], w.targets.get(k))
        result["checks"].append(c)
        lines.append(
            f"{k:<15} {fmt_time(result['impls'][k]['median']).strip():>10} per step = {c['value']:.2f}x "
            f"progress=False ({fmt_time(base_t['median']).strip()})  (target {fmt_target(c['target'])})  "
            f"{c['verdict'] or ''}"
        )
    result["ratios_to_progress_false"] = {c["what"]: c["value"] for c in result["checks"]}
    result["extra_lines"] = lines
    return result


def run_startup(w, quick, rounds):
    """Time numbanet's start-up in fresh processes (``coldstart.py --child``) against ``import torch``.

    numbanet's import+build+fit+predict runs with a warm cache (``w``'s network) and with
    an empty one (coldstart's 64-64-10).
    """
    net = {"sizes": w.sizes, "rows": w.size(w.rows, quick), "batch": w.batch, "dtype": w.dtype}
    reps = w.size(w.reps, quick)
    has_torch = peers.have("torch")
    coldstart.byte_compile()  # numbanet's .pyc files, as torch has its own
    coldstart.run_child("numbanet", None, net=net)  # fill the cache
    if has_torch:
        coldstart.run_child("torch", None)  # and the file system cache
    warm, tor = [], []
    for _ in range(reps):
        warm.append(coldstart.run_child("numbanet", None, net=net))
        if has_torch:
            tor.append(coldstart.run_child("torch", None))

    def med(runs):
        return {k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], float)}

    result = {"title": w.title, "kind": w.kind, "reps": reps, "net": net, "numbanet_warm": med(warm), "checks": []}
    wm = result["numbanet_warm"]
    lines = [
        f"numbanet {'-'.join(map(str, w.sizes))} {w.dtype}, warm cache: import {fmt_time(wm['import']).strip()}, "
        f"import+build+fit {net['rows']}+predict {fmt_time(wm['total']).strip()} "
        f"(whole process {fmt_time(wm['process']).strip()})"
    ]
    if has_torch:
        ti = result["torch_import"] = med(tor)
        lines.append(
            f"import torch: {fmt_time(ti['import']).strip()} (whole process {fmt_time(ti['process']).strip()})"
        )
        c = check("warm/torch", wm["total"] / ti["import"], w.targets.get("warm/torch"))
        result["checks"].append(c)
        result["fraction_of_torch_import"] = c["value"]
        lines.append(
            f"numbanet warm start = {c['value']:.2f}x import torch  (target {fmt_target(c['target'])})  {c['verdict']}"
        )
    else:
        lines.append("import torch: skipped, torch not importable")
    if quick:
        lines.append("numbanet, empty cache: skipped in --quick mode (python benchmarks/coldstart.py breaks it down)")
    else:
        with tempfile.TemporaryDirectory(prefix="numbanet-cold-cache-") as d:
            cold = result["numbanet_cold"] = coldstart.run_child("numbanet", d)
        sizes = "-".join(map(str, coldstart.DEFAULT_NET["sizes"]))
        lines.append(
            f"numbanet {sizes}, empty cache (compiles everything): import {fmt_time(cold['import']).strip()}, "
            f"first fit {fmt_time(cold['first_fit']).strip()}, predict "
            f"{fmt_time(cold['first_predict']).strip()}, total {fmt_time(cold['total']).strip()}"
        )
        if has_torch:
            c = check("cold/torch", cold["total"] / result["torch_import"]["import"], w.targets.get("cold/torch"))
            result["checks"].append(c)
            lines.append(
                f"numbanet cold start = {c['value']:.2f}x import torch  (target {fmt_target(c['target'])})"
                f"  {c['verdict']}"
            )
    result["extra_lines"] = lines
    return result


def run_memory(w, quick, rounds):
    """Peak RSS (VmHWM) of one float32 epoch at batch 64, each implementation in its own process."""
    n = w.size(w.rows, quick)
    result = {"title": w.title, "kind": w.kind, "n": n, "impls": {}, "checks": []}
    lines = [f"data: {n}x784 float32 = {n * 784 * 4 / 2**20:.0f} MiB"]
    for which in w.peers:
        if which == "torch" and not peers.have("torch"):
            lines.append("torch: skipped, torch not importable")
            continue
        r = result["impls"][which] = _children.run(["memory", which, "--n", n])
        lines.append(
            f"{which:<9} after data {r['after_data_kb'] / 1024:7.1f} MiB, after import+build "
            f"{r['after_import_kb'] / 1024:7.1f} MiB, peak {r['peak_kb'] / 1024:7.1f} MiB "
            f"(+{(r['peak_kb'] - r['after_data_kb']) / 1024:.1f} MiB over the data)"
        )
    if {"numbanet", "torch"} <= set(result["impls"]):
        lines.append(
            f"torch peak / numbanet peak = "
            f"{result['impls']['torch']['peak_kb'] / result['impls']['numbanet']['peak_kb']:.2f}"
        )
    result["extra_lines"] = lines
    return result


RUNNERS = {"train": run_train, "progress": run_progress, "startup": run_startup, "memory": run_memory}


# --------------------------------------------------------------------- main


def parse_only(text):
    """Return the names of the workloads that ``--only text`` chooses (all when empty)."""
    if not text:
        return [w.name for w in WORKLOADS]
    chosen = set()
    for name in (s.strip() for s in text.split(",")):
        if name in GROUPS:
            chosen.update(GROUPS[name])
        elif name in BY_NAME:
            chosen.add(name)
        else:
            raise SystemExit(f"unknown workload {name!r}; choose from {', '.join(BY_NAME)} (or 'mnist')")
    return [w.name for w in WORKLOADS if w.name in chosen]


LABELS = {
    "gemm_fraction": "% of float32 GEMM rate",
    "gemm_multiple": "epoch / its GEMMs alone",
    "warm/torch": "warm start / import torch",
    "cold/torch": "cold start / import torch",
}


def print_summary(results):
    """Print every workload's checks against their targets as one table."""
    print("=" * 78)
    print("summary: peer ratio = peer time / numbanet time (> 1: numbanet faster); targets from docs/performance.md")
    print(f"    {'workload':<10} {'check':<26} {'value':>8}  {'target':>9}  verdict")
    for name, r in results["workloads"].items():
        for c in r["checks"]:
            pct = c["what"] == "gemm_fraction"
            value = f"{100 * c['value']:7.1f}%" if pct else f"{c['value']:7.2f}x"
            target = (
                (f"{c['target'][0]} {100 * c['target'][1]:g}%" if pct else fmt_target(c["target"]))
                if c["target"]
                else "-"
            )
            label = LABELS.get(c["what"]) or (
                f"{c['what']} / False" if c["what"].startswith("progress") else f"vs {c['what']}"
            )
            print(f"    {name:<10} {label:<26} {value:>8}  {target:>9}  {c['verdict'] or ''}")


def main(argv=None):
    """Run the benchmark workloads from the command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: small data, 2 rounds, no cold start")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--only", metavar="NAMES", help=f"comma-separated workloads: {', '.join(BY_NAME)}, mnist")
    ap.add_argument("--rounds", type=int, help="timed rounds (default 5, or 2 with --quick)")
    ap.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="limit every BLAS and OpenMP pool (threadpoolctl) and torch to N threads; "
        "default: leave every library at its own default",
    )
    ap.add_argument(
        "--settle",
        type=float,
        default=timing.SETTLE,
        metavar="SECONDS",
        help=f"pause before each timed run so other libraries' spinning threads go idle "
        f"(default {timing.SETTLE}; 0 disables)",
    )
    args = ap.parse_args(argv)
    timing.SETTLE = args.settle
    chosen = parse_only(args.only)
    rounds = args.rounds or (2 if args.quick else 5)
    commit = commit_info()
    info = machine_info()
    if args.threads:
        limit_threads(args.threads)
        info["threads_limited_to"] = args.threads
    print_header(info, commit)
    print(
        f"mode: {'quick' if args.quick else 'full'}; {rounds} timed rounds after a warm-up round; "
        f"settle {timing.SETTLE} s\n"
    )
    results = {
        "commit": commit,
        "machine": info,
        "quick": args.quick,
        "rounds": rounds,
        "settle_s": timing.SETTLE,
        "workloads": {},
    }
    t_start = time.perf_counter()
    for name in chosen:
        w = BY_NAME[name]
        r = results["workloads"][name] = RUNNERS[w.kind](w, args.quick, rounds)
        print_result(r)
        sys.stdout.flush()
    print_summary(results)
    la = os.getloadavg() if hasattr(os, "getloadavg") else None
    results["load_average_end"] = la
    results["elapsed_s"] = time.perf_counter() - t_start
    print(
        f"\nelapsed {results['elapsed_s']:.0f} s; load average at end "
        f"{' '.join(f'{v:.2f}' for v in la) if la else 'n/a'}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
        print(f"results written to {args.json}")
    return results


if __name__ == "__main__":
    main()
