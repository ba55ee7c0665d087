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

Fresh caches.  Numba checks a cached kernel against the time stamp of its own
file only, but a kernel that calls a jitted function in another file has that
function's code compiled into it: after an edit to ``activations.py``, the
cached ``training.py`` kernels would go on running the old activation.  So
numbanet's kernels are cached in a folder named after a digest of every
kernel source file (:data:`SOURCES_DIGEST`), ``numbanet-<digest>`` inside the
folder Numba would have used, and stamped with it too: an edit to any of them
(or an upgrade of numbanet) makes every kernel recompile once, for developers
and users alike, and a cache written by other sources is never even read
(Numba fails, rather than recompiles, on an index that names a type the code
no longer has).  This is done by :class:`KernelCacheLocator`, which wraps the
locator Numba would have chosen, for files of this package only, and changes
nothing for any other code in the process.  Folders of earlier sources stay
behind; they are small and may be deleted.
"""

import functools
import hashlib
import os
import tempfile

import numpy as np
from numba import config, njit
from numba.core import caching

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_KERNELS = os.path.join(_PACKAGE, "kernels")


def _sources_digest():
    """SHA-256 of the jitted source files: ``kernels/*.py`` and this module."""
    h = hashlib.sha256()
    files = sorted(f for f in os.listdir(_KERNELS) if f.endswith(".py"))
    for path in [os.path.join(_KERNELS, f) for f in files] + [os.path.abspath(__file__)]:
        h.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


#: Digest of every kernel source file; part of each numbanet kernel's cache stamp.
SOURCES_DIGEST = _sources_digest()


class KernelCacheLocator(caching._CacheLocator):
    """Numba's own cache locator for a numbanet kernel, with :data:`SOURCES_DIGEST` in its stamp."""

    def __init__(self, inner):
        self._inner = inner

    def ensure_cache_path(self):
        path = self.get_cache_path()
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()  # writable, as Numba's own locators check

    def get_cache_path(self):
        return os.path.join(self._inner.get_cache_path(), f"numbanet-{SOURCES_DIGEST[:16]}")

    def get_source_stamp(self):
        return (self._inner.get_source_stamp(), SOURCES_DIGEST)

    def get_disambiguator(self):
        return self._inner.get_disambiguator()

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) not in (_PACKAGE, _KERNELS):
            return None  # not numbanet's: Numba's locators decide as usual
        for other in caching.CacheImpl._locator_classes:
            if other is not cls:
                inner = other.from_function(py_func, py_file)
                if inner is not None:
                    return cls(inner)
        return None


if KernelCacheLocator not in caching.CacheImpl._locator_classes:
    caching.CacheImpl._locator_classes.insert(0, KernelCacheLocator)

jit = njit(cache=True, nogil=True, error_model="numpy")

#: For thin kernels that only call two others: inlined into the caller by Numba, so a
#: call from the training loop does not pay a function call and a reference-count
#: increment and decrement for every array argument.
jit_inline = njit(cache=True, nogil=True, error_model="numpy", inline="always")


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
