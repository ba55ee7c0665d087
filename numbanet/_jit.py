"""One place for the Numba decorator every kernel uses, and for how its cache stays fresh.

Every kernel in :mod:`numbanet.kernels` is compiled with the same flags so the
policy is visible at a glance (the numba-stats ``_util.py`` pattern):

* ``cache=True`` -- compiled machine code is kept in ``__pycache__`` (or under
  ``NUMBA_CACHE_DIR``) and reused by later processes, so only the first run of
  a fresh install compiles.
* ``nogil=True`` -- kernels release the GIL; several networks can train in
  threads at once.
* ``error_model="numpy"`` -- division by zero gives inf/nan as in NumPy instead
  of raising, which keeps the hot loops free of Python exception checks.
* no ``fastmath``: with ``nnan``/``ninf`` LLVM may delete the NaN/inf checks
  that divergence detection relies on.
* no ``parallel=True``: results must not depend on thread timing.

Fresh caches.  Numba checks a cached kernel against its own file only, but a
kernel that calls a jitted function in another file has that function's code
compiled into it; numbanet's kernels are therefore cached by a digest of all
their sources (:mod:`numbanet._numba`, the one module that touches Numba's
private machinery, on the Numba versions it is tested on; other versions
cache as plain ``cache=True`` does).  Where no cache folder is writable (a
read-only container), the kernels are compiled in memory, in every process.
"""

import functools
import sys

import numpy as np
from numba import config, njit

from numbanet import _numba

#: The digest of the kernel sources that keys numbanet's kernel cache (see :mod:`numbanet._numba`).
SOURCES_DIGEST = _numba.SOURCES_DIGEST

_FLAGS = {"nogil": True, "error_model": "numpy"}


_SAID = []


def _say_in_memory():
    """Say once per process that the kernels are compiled in memory (a stderr line, not a warning: never an error)."""
    if not _SAID:
        _SAID.append(True)
        print(
            "numbanet: no writable folder for Numba's cache (set NUMBA_CACHE_DIR to one); "
            "its kernels are compiled in memory, in every process",
            file=sys.stderr,
        )


def _cached(**flags):
    """Return Numba's decorator with ``cache=True``, or without a cache where no folder is writable."""
    cached, in_memory = njit(cache=True, **_FLAGS, **flags), njit(**_FLAGS, **flags)

    def decorate(fn):
        try:
            return cached(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available": no writable folder
            _say_in_memory()
            return in_memory(fn)

    return decorate


jit = _cached()

#: For thin kernels that only call two others: inlined into the caller by Numba, so a
#: call from the training loop does not pay a function call and a reference-count
#: increment and decrement for every array argument.
jit_inline = _cached(inline="always")


def _as_python(fn):
    """Wrap a kernel run as Python (``NUMBA_DISABLE_JIT=1``, the coverage run) to turn NumPy's warnings off.

    Compiled with ``error_model="numpy"``, a kernel's overflow, division by zero
    and invalid operations give inf or NaN silently, and uint64 arithmetic wraps
    silently (:mod:`numbanet.kernels.rng`); as Python the same operations on
    NumPy scalars and arrays would warn.
    """

    @functools.wraps(fn)
    def kernel(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    kernel.py_func = fn
    return kernel


if config.DISABLE_JIT:
    jit = jit_inline = _as_python
