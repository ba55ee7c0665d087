"""Every use numbanet makes of Numba's private machinery, behind one version gate.

Numba's public API compiles and caches numbanet's kernels; three refinements
need Numba's private caching and runtime code, and live here and nowhere else:

* :class:`KernelCacheLocator` keys the on-disk cache of numbanet's kernels by a
  digest of their sources (:data:`SOURCES_DIGEST`), so an edit to one kernel
  file reaches the cached kernels of the other files that call it;
* a cached kernel loads without Numba's registry refresh
  (:func:`load_kernels_without_refresh`), which a loaded kernel does not need,
  and a damaged cache file (truncated, flipped bytes: each data file carries
  its SHA-256) is a cache miss, recompiled, never a crash;
* :func:`cache_path` and :func:`cached_signatures` read where, and for which
  types, a kernel is cached (for the compile lock and the "compiling" message).

All of it is enabled only on the Numba versions in :data:`TESTED_NUMBA`.  On
any other version, or when a private name it needs is missing or its set-up
fails, numbanet caches its kernels as plain ``cache=True`` does, loads them as
Numba always does, takes the compile lock within the process only, and does
not tell a cached kernel from one to compile: ``import numbanet`` never fails
because Numba changed.
"""

import hashlib
import os
import pickle
import re
import sys
import tempfile

import numba

#: Numba versions (major, minor) numbanet's use of Numba's private code is tested on: every
#: one that pyproject.toml allows (.ci/run tests the oldest and the newest).  Add a version
#: once tests/test_cache.py, tests/test_lazy_imports.py and tests/test_numba_fallback.py pass on it.
TESTED_NUMBA = ((0, 61), (0, 62), (0, 63), (0, 64), (0, 65), (0, 66), (0, 67), (0, 68))


def _numba_version():
    match = re.match(r"(\d+)\.(\d+)", numba.__version__)
    return (int(match.group(1)), int(match.group(2))) if match else None


#: Whether this process's Numba is one of :data:`TESTED_NUMBA`.
TESTED = _numba_version() in TESTED_NUMBA

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_KERNELS = os.path.join(_PACKAGE, "kernels")


def _sources_digest():
    """SHA-256 of the jitted sources: ``kernels/*.py``, the decorator policy in ``_jit.py``, and this module."""
    h = hashlib.sha256()
    files = sorted(f for f in os.listdir(_KERNELS) if f.endswith(".py"))
    paths = [os.path.join(_KERNELS, f) for f in files] + [os.path.join(_PACKAGE, "_jit.py"), os.path.abspath(__file__)]
    for path in paths:
        h.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


#: Digest of every kernel source file; part of each numbanet kernel's cache stamp.
SOURCES_DIGEST = _sources_digest()


def _locator_class(caching):
    """Build the locator class on Numba's private base class (only called on a tested Numba)."""

    class KernelCacheLocator(caching._CacheLocator):
        """Numba's own cache locator for a numbanet kernel, in a folder and with a stamp of :data:`SOURCES_DIGEST`.

        Numba checks a cached kernel against its own file only, but a kernel that
        calls a jitted function in another file has that function's code compiled
        into it.  So numbanet's kernels are cached in ``numbanet-<digest>`` inside
        the folder Numba would have used, stamped with the digest too: an edit to
        any kernel file (or an upgrade) recompiles every kernel once, and a cache
        written by other sources is never read (Numba fails, rather than
        recompiles, on an index that names a type the code no longer has).
        Functions of other packages are left to Numba's own locators.
        """

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
                if other is cls:
                    continue
                inner = other.from_function(py_func, py_file)
                if inner is None:
                    continue
                locator = cls(inner)
                try:
                    locator.ensure_cache_path()
                except OSError:
                    continue  # the digest's folder cannot be made here: the next of Numba's folders
                return locator
            return None  # no writable folder: Numba finds none either, and numbanet compiles in memory

    return KernelCacheLocator


def _install_locator():
    """Put :class:`KernelCacheLocator` first among Numba's locators; return it, or None where not tested or failing."""
    if not TESTED:
        return None
    try:
        from numba.core import caching

        cls = _locator_class(caching)
        classes = caching.CacheImpl._locator_classes
        classes[:] = [c for c in classes if c.__qualname__ != cls.__qualname__ or c.__module__ != __name__]
        classes.insert(0, cls)
        return cls
    except Exception:  # a private name moved or changed: plain cache=True
        return None


#: The locator keying numbanet's kernel cache by its sources, or None where Numba's own locators are used.
KernelCacheLocator = _install_locator()


def _fast_cache_class():
    """Build the cache classes numbanet's kernels use (only called on a tested Numba)."""
    from numba.core.caching import FunctionCache, IndexDataCacheFile
    from numba.core.runtime.nrt import rtsys

    class CheckedCacheFile(IndexDataCacheFile):
        """Numba's index and data files of one kernel, each data file ending with the SHA-256 of the rest.

        A data file truncated or with flipped bytes fails the check (or, in the
        index, unpickling) and is a cache miss, never machine code loaded from
        damaged bytes.
        """

        def _save_data(self, name, data):
            payload = self._dump(data)
            with self._open_for_write(self._data_path(name)) as f:
                f.write(payload + hashlib.sha256(payload).digest())

        def _load_data(self, name):
            with open(self._data_path(name), "rb") as f:
                raw = f.read()
            payload, digest = raw[:-32], raw[-32:]
            if len(raw) < 32 or hashlib.sha256(payload).digest() != digest:
                raise ValueError(f"damaged cache file {name}")
            return pickle.loads(payload)

    class KernelCache(FunctionCache):
        """Numba's on-disk cache of one numbanet kernel: loads without the registry refresh, survives damage.

        Before every cache load Numba refreshes its target context: it imports and installs
        every typing and lowering registry (and with them SciPy's linalg), the first
        time in a process.  Those registries serve compiling; a loaded kernel is machine
        code that needs the runtime (NRT) and the C helpers, which the context sets up when it
        is created.  So a process that only loads numbanet's kernels skips the refresh; the
        first compile in it (a new dtype, a custom piece) still refreshes, as Numba's compiler
        does that itself.

        A damaged index or data file (truncated, flipped bytes: Numba raises
        UnpicklingError, UnicodeDecodeError, EOFError, ...) is a cache miss: the
        kernel's index is dropped, the kernel compiled and saved afresh.
        """

        def load_overload(self, sig, target_context):
            try:
                guard, load = self._guard_against_spurious_io_errors, self._load_overload
            except AttributeError:  # pragma: no cover - Numba's caching changed: its own way
                return super().load_overload(sig, target_context)
            rtsys.initialize(target_context)  # what the refresh does first, and what loaded code needs
            try:
                with guard():
                    return load(sig, target_context)
            except Exception:
                self._drop_index()
                return None

        def save_overload(self, sig, data):
            try:
                return super().save_overload(sig, data)
            except Exception:  # an unreadable index: start it afresh; failing that, the kernel stays in memory
                self._drop_index()
                try:
                    return super().save_overload(sig, data)
                except Exception:
                    return None

        def _drop_index(self):
            try:
                os.unlink(self._cache_file._index_path)
            except (OSError, AttributeError):
                pass

    return FunctionCache, KernelCache, IndexDataCacheFile, CheckedCacheFile


def _install_fast_cache():
    if not TESTED or numba.config.DISABLE_JIT:
        return None, None, None, None
    try:
        return _fast_cache_class()
    except Exception:  # pragma: no cover - another Numba layout: its own loading, unchanged
        return None, None, None, None


_FunctionCache, _KernelCache, _CacheFile, _CheckedCacheFile = _install_fast_cache()

#: Whether numbanet's kernels load without Numba's registry refresh in this process.
FAST_LOAD = _KernelCache is not None


def load_kernels_without_refresh():
    """Make every numbanet kernel imported so far load from the cache without Numba's refresh, checking its files."""
    if not FAST_LOAD:
        return
    for name, module in list(sys.modules.items()):
        if name.startswith("numbanet.kernels.") and module is not None:
            for value in vars(module).values():
                cache = getattr(value, "_cache", None)
                if type(cache) is _FunctionCache:
                    cache.__class__ = _KernelCache
                    if type(getattr(cache, "_cache_file", None)) is _CacheFile:
                        cache._cache_file.__class__ = _CheckedCacheFile


def cache_path(dispatcher):
    """Return the folder Numba caches ``dispatcher`` in, or None (no cache, or an untested Numba)."""
    if not TESTED:
        return None
    path = getattr(getattr(dispatcher, "_cache", None), "_cache_path", None)
    return path if isinstance(path, str) else None


def cached_signatures(dispatcher):
    """Return the argument types of every current entry of ``dispatcher`` in Numba's on-disk cache.

    Entries for another machine or Numba (another magic tuple) are left out.
    An empty list where there is no cache, where reading it fails, or on an
    untested Numba.
    """
    if not TESTED:
        return []
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is None:
        return []
    try:
        index = cache_file._load_index()  # {} when missing, stale or from another Numba
        magic = dispatcher.targetctx.codegen().magic_tuple()
        return [key[0] for key in index if key[1] == magic]
    except Exception:  # a private API: never let it break training
        return []
