"""numbanet.compile: every kernel compiled (or loaded) ahead of the first ``fit``.

It builds and trains a tiny :class:`~numbanet.network.Network` per dtype, so it
sits above the network; the lock and the cache check it uses are in
:mod:`numbanet.warmup`, below the training engine.
"""

import sys
import time

import numpy as np

from numbanet import warmup
from numbanet.network import Network


def compile(dtypes=warmup.DTYPES, progress=True, file=None):
    """Compile (or load from the cache) every numbanet kernel, ahead of the first ``fit``.

    Run it once at the start of a notebook, a server or a worker: the first
    ``fit`` and ``predict`` then start at once.  Kernels already compiled in
    this process are skipped; kernels in Numba's on-disk cache are only
    loaded.  Processes calling it at the same time on one machine take turns
    through a file lock, so one compiles and the others load its result.

    Parameters
    ----------
    dtypes : sequence of str or numpy dtypes, default ("float64", "float32")
        The dtypes of the networks that will be used.
    progress : bool, default True
        Print a line per dtype to ``file``: what happened and how long it took.
    file : file-like, default sys.stderr

    Returns
    -------
    dict
        ``{dtype: (what, seconds)}`` with ``what`` one of ``"memory"``
        (nothing to do), ``"cache"`` (loaded) or ``"compiled"``.

    Examples
    --------
    >>> import numbanet
    >>> report = numbanet.compile(dtypes=["float64"], progress=False)
    >>> report["float64"][0] in ("memory", "cache", "compiled")
    True
    """
    names = [warmup._dtype_name(d) for d in dtypes]
    out = sys.stderr if file is None else file
    report = {}
    for name in names:
        where = warmup.kernels_ready(name)
        if where == "memory":
            report[name] = ("memory", 0.0)
            continue
        if progress:
            doing = (
                "loading numbanet's kernels" if where == "cache" else "compiling numbanet's kernels (first run only)"
            )
            print(f"{doing} for {name}...", end="", file=out, flush=True)
        start = time.perf_counter()
        with warmup.compile_lock(dtype=name):
            where = warmup.kernels_ready(name) or "compiled"  # another process may have compiled them meanwhile
            _exercise(name)
        seconds = time.perf_counter() - start
        report[name] = ("cache" if where == "cache" else "compiled", seconds)
        if progress:
            print(f" {seconds:.1f} s", file=out, flush=True)
    return report


def _exercise(dtype):
    """Call every entry point once for ``dtype`` on a tiny network, with the argument types real calls use."""
    rng = np.random.default_rng(0)
    X = rng.random((4, 2)).astype(dtype)
    Y = np.eye(2, dtype=dtype)[[0, 1, 1, 0]]
    net = Network([2, 3, 2], activations=["relu", "softmax"], loss="cross_entropy", dtype=dtype, seed=0)
    net.fit(X, Y, epochs=1, batch_size=2, progress=False)
    net.predict(X)
    net.loss(X, Y)
    # A mini-batch larger than the work buffer, computed in parts (train_part_flat).
    rows = net._chunk_rows() + 1
    net.fit(np.resize(X, (rows, 2)), np.resize(Y, (rows, 2)), epochs=1, batch_size=rows, progress=False)
