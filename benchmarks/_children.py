"""Code that ``benchmarks/run.py`` runs in fresh processes: ``python benchmarks/_children.py memory ...``.

Each child prints one JSON line (its last line of output) for the parent to read.
The start-up children live in :mod:`coldstart` (``coldstart.py --child``), which
``run.py`` calls for its ``startup`` workload.
"""

import argparse
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _peak_kb():
    """Return this process's peak resident set (VmHWM) in KiB.

    ``ru_maxrss`` would report at least the parent's size: Linux carries it over
    through fork and exec.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory(which, n):
    """Peak RSS after the ``n``x784 float32 data, after import+build, and after one epoch at batch 64."""
    import numpy as np

    sys.path.insert(0, HERE)
    import peers

    X, Y = peers.mnist_like(n, np.float32, seed=0)
    after_data = _peak_kb()
    rng = np.random.default_rng(0)
    if which == "numbanet":
        import numbanet

        net = numbanet.Network(
            [784, 128, 10], activations=["relu", "softmax"], loss="cross_entropy", dtype=np.float32, seed=0
        )
        p = peers.NumbanetMLP(net)
    else:
        W = [
            rng.normal(0, (2 / 784) ** 0.5, (128, 784)).astype(np.float32),
            rng.uniform(-0.2, 0.2, (10, 128)).astype(np.float32),
        ]
        b = [np.zeros(128, np.float32), np.zeros(10, np.float32)]
        cls = peers.TorchMLP if which == "torch" else peers.NumpyMLP
        p = cls(W, b, ["relu", "softmax"], "cross_entropy", np.float32)
    after_import = _peak_kb()
    p.epoch(p.prepare(X, Y), 64, 0.1)
    return {"after_data_kb": after_data, "after_import_kb": after_import, "peak_kb": _peak_kb()}


def run(args, env=None, timeout=900):
    """Run ``_children.py *args`` in a fresh process; its JSON, plus ``process_wall`` seconds.

    The child imports numbanet from this checkout (``PYTHONPATH``), not from
    wherever an editable install points.
    """
    import subprocess

    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, os.path.abspath(__file__), *map(str, args)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=HERE)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark subprocess {' '.join(cmd[1:])} failed:\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall"] = time.perf_counter() - t0
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory", help="peak RSS of one MNIST-shaped float32 epoch")
    m.add_argument("which", choices=["numbanet", "numpy", "torch"])
    m.add_argument("--n", type=int, default=60000)
    args = ap.parse_args(argv)
    print(json.dumps(memory(args.which, args.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
