"""What a benchmark run measured: the commit and the machine (for ``benchmarks/run.py``)."""

import os
import platform
import subprocess

import numpy as np
import peers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cpu():
    """Return the CPU model and the number of physical cores (distinct physical id, core id pairs)."""
    model, cores = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            phys = None
            for line in f:
                key, _, val = line.partition(":")
                key, val = key.strip(), val.strip()
                if key == "model name":
                    model = val
                elif key == "physical id":
                    phys = val
                elif key == "core id":
                    cores.add((phys, val))
    except OSError:
        pass
    return model, (len(cores) or None)


def commit_info():
    """Return the commit measured: ``git rev-parse HEAD`` and whether the work tree differs from it."""

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    sha = git("rev-parse", "HEAD")
    if not sha:
        return {"sha": None, "dirty": None, "branch": None}
    return {
        "sha": sha,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD") or None,
    }


def machine_info():
    """Describe what the numbers were measured on: CPU, cores, library versions, BLAS and thread pools."""
    import numba
    import scipy

    import numbanet

    model, physical = _cpu()
    info = {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical,
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "numbanet": numbanet.__version__,
        "numbanet_path": os.path.dirname(numbanet.__file__),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no mode="dicts"
        info["numpy_blas"] = None
    for mod in ("torch", "sklearn"):
        info[mod] = __import__(mod).__version__ if peers.have(mod) else None
    if info["torch"]:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch_blas"] = "MKL" if torch.backends.mkl.is_available() else "other"
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
    # threadpoolctl limits only the libraries already loaded. numbanet's kernels call
    # SciPy's BLAS (a different OpenBLAS from NumPy's), which Numba loads on the first
    # compile or cache load; load it now or it keeps its default thread count.
    import scipy.linalg  # noqa: F401
    import threadpoolctl

    # Kept for the life of the process: the object is not used as a context manager.
    limit_threads.limiter = threadpoolctl.threadpool_limits(n)


def print_header(info, commit):
    print("=" * 78)
    print("numbanet benchmarks (targets: docs/performance.md)")
    print("=" * 78)
    dirty = " + uncommitted changes" if commit["dirty"] else ""
    print(f"commit        {commit['sha'] or 'unknown'} ({commit['branch']}){dirty}")
    print(f"numbanet      {info['numbanet']} from {info['numbanet_path']}")
    print(
        f"CPU           {info['cpu']}  ({info['logical_cpus']} logical, {info['physical_cores']} physical cores, "
        f"{info['usable_cpus']} usable)"
    )
    print(f"Python        {info['python']}  on {info['platform']}")
    print(
        f"versions      numpy {info['numpy']} (BLAS {info['numpy_blas']}), scipy {info['scipy']}, "
        f"numba {info['numba']}, numbanet {info['numbanet']}, torch {info['torch']}, scikit-learn {info['sklearn']}"
    )
    if info.get("torch"):
        print(f"torch         {info['torch_threads']} threads, BLAS {info['torch_blas']}")
    print(f"environment   OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']}  OMP_NUM_THREADS={info['OMP_NUM_THREADS']}")
    for p in info.get("threadpools", []):
        lib = os.path.basename(p["filepath"] or "")
        print(
            f"threadpool    {p['internal_api']} {p['version'] or ''} ({p['user_api']}, {p['num_threads']} threads"
            f"{', ' + p['architecture'] if p.get('architecture') else ''}) {lib}"
        )
    if info.get("threads_limited_to"):
        print(f"threads       limited to {info['threads_limited_to']} in every pool (--threads)")
    if info["load_average"] is not None:
        la = info["load_average"]
        print(f"load average  {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} at start (other work on the machine skews times)")
    print()
