"""Every tunable of numbanet, in one place.

Modules read these as ``config.NAME`` when they use them, so a test (or a
user who knows why) can change one with ``monkeypatch.setattr(config, ...)``.
"""

#: dtypes the kernels are compiled for and networks may have, by NumPy name.
DTYPES = ("float64", "float32")

#: Rows processed at once by predict / loss / gradients; bounds their work buffers.
CHUNK = 4096

#: Most multiply-adds (rows times parameters) in one kernel call of predict / loss / gradients, which
#: cuts wide networks' chunks below CHUNK rows: Python sees Ctrl-C between calls, never inside one.
CHUNK_WORK = 2**30

#: Free work buffers a network keeps for reuse (the most recently used).
POOL_KEEP = 2

#: Target duration of one jitted training slice, in seconds: how often Python sees the loop
#: (Ctrl-C, progress, callbacks) during a fit.
SLICE_SECONDS = 0.05

#: A slice runs at most this many times more batches than the one before.
SLICE_GROWTH = 8

#: Data-parallel: a worker holding more than this many times the mean rows per worker (with 2
#: workers: more than 75 % of the rows) has the blocks of a Dask array reassigned.
REBALANCE_FACTOR = 1.5

#: Data-parallel: the most seconds a fit's clean-up waits for the workers to take a message (stop, forget).
CLEANUP_SECONDS = 5.0

#: Data-parallel, local SGD: seconds a worker trains between looks at the stop flag.
LOCAL_SLICE_SECONDS = 0.05

#: save: a temporary file of a killed save is removed once it is this many seconds old (and unlocked).
STALE_AFTER = 60

#: load: the most parameters a model file may declare (``load(..., max_params=)`` lowers it for one call).
MAX_PARAMS = 2**40

#: load: the most bytes a model file's entries other than ``params`` may unpack to, together.
MAX_METADATA_BYTES = 2**24

#: load: bytes of ``params`` inflated at a time, straight into the network's parameter vector.
LOAD_CHUNK_BYTES = 2**20

#: load: the deepest nesting of the JSON metadata of an estimator's file.
MAX_JSON_DEPTH = 32

#: Distinct sets of custom pieces whose compiled callbacks are kept (networks keep their own).
CUSTOM_CACHE_SIZE = 32

#: Seconds a process waits for another one compiling the same kernels before it compiles them itself.
COMPILE_LOCK_WAIT = 60.0
