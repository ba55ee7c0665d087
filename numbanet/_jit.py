"""One place for the Numba decorator every kernel uses.

Every kernel in :mod:`numbanet.kernels` is compiled with the same flags so the
policy is visible at a glance (the numba-stats ``_util.py`` pattern):

* ``cache=True`` -- compiled machine code is kept in ``__pycache__`` and reused
  by later processes, so only the first run of a fresh install compiles.
* ``nogil=True`` -- kernels release the GIL; several networks can train in
  threads at once.
* ``error_model="numpy"`` -- division by zero gives inf/nan as in NumPy instead
  of raising, which keeps the hot loops free of Python exception checks.
* no ``fastmath``: with ``nnan``/``ninf`` LLVM may delete the NaN/inf checks
  that divergence detection relies on.
* no ``parallel=True``: results must not depend on thread timing.
"""

from numba import njit

jit = njit(cache=True, nogil=True, error_model="numpy")
