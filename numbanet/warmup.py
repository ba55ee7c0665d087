"""Where the kernels are, and a lock for compiling them once per machine.

numbanet's kernels are compiled by Numba the first time a process needs them
and kept in Numba's on-disk cache, so only the first run of an installation
(or of a new numbanet version) pays for the compile; later processes load the
machine code in a fraction of a second.  This module holds what the training
engine needs to make that first compile safe to share and honest to report
(:func:`numbanet.compile`, in :mod:`numbanet.precompile`, builds on it):

* a file lock per dtype in the cache folder makes processes that start at the
  same time (Dask or loky workers on one machine) wait for the one that
  compiles, then load its result, instead of all compiling at once; it is
  taken only to compile (kernels in the cache load without it), and a wait
  is bounded (:data:`numbanet.config.COMPILE_LOCK_WAIT`; past it a process
  compiles on its own);
* :func:`kernels_ready` says whether a dtype's kernels are already compiled
  in this process or waiting in the cache, so ``fit`` can say "compiling
  kernels (first run only)" and report training time without the compile.
"""

import contextlib
import math
import os
import threading
import time

import numpy as np

from numbanet import _numba, config
from numbanet.kernels import sparse as _sparse
from numbanet.kernels import training as _train

#: Whether numbanet's kernels load without Numba's registry refresh in this process
#: (on the Numba versions :data:`numbanet._numba.TESTED_NUMBA`; others load as Numba always does).
FAST_LOAD = _numba.FAST_LOAD

#: The kernels Python calls: training (and a mini-batch in parts), prediction, cost and gradient.
ENTRY_POINTS = ("train_slice_flat", "train_part_flat", "predict_flat", "cost_and_gradient_flat")

#: dtypes the kernels are compiled for.
DTYPES = ("float64", "float32")


def _dtype_name(dtype):
    name = np.dtype(dtype).name
    if name not in DTYPES:
        raise ValueError(f"numbanet's kernels are compiled for {DTYPES}, not {name!r}")
    return name


def _dispatchers(entry_points):
    return [getattr(_sparse if name.startswith("sparse_") else _train, name) for name in entry_points]


def _in_memory(dispatcher, dtype):
    if not hasattr(dispatcher, "signatures"):  # NUMBA_DISABLE_JIT=1: plain Python, nothing to compile
        return True
    return any(str(sig[0]).startswith(f"array({dtype},") for sig in dispatcher.signatures)


def _on_disk(dispatcher, dtype):
    """Whether Numba's cache holds a current entry of ``dispatcher`` for ``dtype``."""
    return any(str(args[0]).startswith(f"array({dtype},") for args in _numba.cached_signatures(dispatcher))


def kernels_ready(dtype, entry_points=ENTRY_POINTS):
    """Where the kernels for ``dtype`` are: ``"memory"``, ``"cache"``, or ``None`` (to compile).

    Parameters
    ----------
    dtype : str or numpy dtype
        ``"float64"`` or ``"float32"``.
    entry_points : sequence of str
        Names of kernels in :mod:`numbanet.kernels.training` (``sparse_*``:
        :mod:`numbanet.kernels.sparse`) to check.

    Returns
    -------
    str or None
        ``"memory"`` when this process has compiled or loaded all of them,
        ``"cache"`` when Numba's on-disk cache holds the rest, ``None`` when
        at least one must be compiled.
    """
    dtype = _dtype_name(dtype)
    where = "memory"
    for d in _dispatchers(entry_points):
        if _in_memory(d, dtype):
            continue
        if not _on_disk(d, dtype):
            return None
        where = "cache"
    return where


def cache_dir():
    """Return the folder of numbanet's compiled kernels (Numba's cache, one folder per kernel-source digest).

    None where the kernels are compiled in memory (no writable cache folder, or
    ``NUMBA_DISABLE_JIT=1``) or Numba's caching is not one numbanet is tested on.
    """
    return _numba.cache_path(_train.train_slice_flat)


# Per lock name: an in-process lock (re-entrant within a thread; other threads wait here) and its depth.
_LOCALS = {}
_LOCALS_GUARD = threading.Lock()


@contextlib.contextmanager
def compile_lock(timeout=None, dtype=None):
    """Hold an exclusive file lock in :func:`cache_dir` while compiling.

    Processes that need the same kernels at the same time take turns: the
    first compiles and writes the cache, the others then find it and only
    load.  Take it only to compile: kernels in the cache load without it.
    Compiles of different dtypes take different locks, so they do not wait
    for each other.  Re-entrant within a process.  Without ``fcntl``
    (Windows) or a writable cache folder, only the in-process lock is taken.

    Parameters
    ----------
    timeout : float, optional
        Seconds to wait for another process (or thread) before going on
        without the lock, compiling privately: a stopped or stuck process
        must not block training.  Default :data:`numbanet.config.COMPILE_LOCK_WAIT`;
        ``math.inf`` waits as long as it takes.
    dtype : str, optional
        The dtype whose kernels are compiled (its own lock); None for all.

    Yields
    ------
    bool
        Whether the lock is held (always ``True`` when nested).
    """
    timeout = config.COMPILE_LOCK_WAIT if timeout is None else timeout
    name = "compile" if dtype is None else f"compile-{_dtype_name(dtype)}"
    with _LOCALS_GUARD:
        local = _LOCALS.setdefault(name, [threading.RLock(), 0])
    deadline = time.monotonic() + timeout
    if not local[0].acquire(timeout=-1 if math.isinf(timeout) else max(0.0, timeout)):
        yield False  # another thread of this process holds it past the bound: compile privately
        return
    try:
        local[1] += 1
        if local[1] > 1:
            yield True
        else:
            with _file_lock(name, deadline) as locked:
                yield locked
    finally:
        local[1] -= 1
        local[0].release()


@contextlib.contextmanager
def _file_lock(name, deadline):
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield False
        return
    path = cache_dir()
    try:
        if path is None:
            raise OSError("no cache folder")
        os.makedirs(path, exist_ok=True)
        fh = open(os.path.join(path, f"{name}.lock"), "a+")
    except OSError:
        yield False
        return
    try:
        locked = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break  # compile anyway: a stopped or stuck process must not block training
                time.sleep(0.05)
        yield locked
    finally:
        fh.close()  # releases the lock
