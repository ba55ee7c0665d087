"""numbanet's epoch against its own matrix products (for ``benchmarks/run.py``).

:func:`epoch_gemm_floor` does, as bare BLAS calls, exactly the matrix products of one
numbanet training epoch; the benchmark times it in the same interleaved rounds as
numbanet and reports numbanet's epoch time as a multiple of it (the 1.15x target of
docs/performance.md), and numbanet's GFLOP/s as a fraction of a plain float32 GEMM's.
"""

import statistics

import numpy as np
from timing import check, fmt_target, fmt_time

#: The reference GEMM whose rate numbanet's epoch is compared with: (256x784)·(784x128) float32.
RATE_SHAPE, RATE_REPS = (256, 784, 128), 300


def _buffers(n, batch, sizes, dtype):
    rng = np.random.default_rng(0)
    A = [rng.random((batch, s)).astype(dtype) for s in sizes]  # A[0]: the gathered batch
    D = [rng.random((batch, s)).astype(dtype) for s in sizes[1:]]  # D[l]: the delta of layer l
    W = [rng.random((o, i)).astype(dtype) for i, o in zip(sizes[:-1], sizes[1:])]
    dW = [np.empty_like(w) for w in W]
    batches = [min(batch, n - s) for s in range(0, n, batch)]
    return A, D, W, dW, batches


def epoch_gemm_floor(n, batch, sizes, dtype):
    """Build a unit that runs exactly the matrix products of one numbanet epoch.

    The products are bare ``np.dot(..., out=)`` calls on preallocated buffers, and
    nothing else runs.

    Per mini-batch of ``m`` rows (the last one smaller), as in
    ``numbanet.kernels.training.batch_step``: forward ``A^l = A^{l-1} W^T`` for
    every layer (``dense.forward``); backward, from the last layer down, the
    weight gradient ``dW = Δ^T A^{l-1}`` (``dense.layer_gradients``) and, except
    for the first layer (no delta goes into the input), ``Δ^{l-1} = Δ W``
    (``dense.hidden_delta``).  numbanet does products of at most
    ``dense.SMALL`` multiply-adds in loops instead; none is that small for the
    MNIST-shaped workloads.
    """
    A, D, W, dW, batches = _buffers(n, batch, sizes, dtype)
    L = len(W)

    def run():
        for m in batches:
            for l in range(L):
                np.dot(A[l][:m], W[l].T, out=A[l + 1][:m])
            for l in range(L - 1, -1, -1):
                np.dot(D[l][:m].T, A[l][:m], out=dW[l])
                if l > 0:
                    np.dot(D[l][:m], W[l], out=D[l - 1][:m])

    run.calls = len(batches) * (3 * L - 1)
    return run


def _jitted_epoch():
    import numba

    @numba.njit(cache=True)
    def epoch(batches, A, D, W, dW):
        L = len(W)
        for m in batches:
            for l in range(L):
                np.dot(A[l][:m], W[l].T, A[l + 1][:m])
            for l in range(L - 1, -1, -1):
                np.dot(D[l][:m].T, A[l][:m], dW[l])
                if l > 0:
                    np.dot(D[l][:m], W[l], D[l - 1][:m])

    return epoch


def epoch_gemm_floor_numba(n, batch, sizes, dtype):
    """Build a unit that runs the products of :func:`epoch_gemm_floor` from one Numba kernel.

    ``np.dot`` there calls SciPy's BLAS, as numbanet's kernels do, with no Python
    dispatch per call.
    """
    from numba.typed import List

    A, D, W, dW, batches = _buffers(n, batch, sizes, dtype)
    epoch = _jitted_epoch()
    args = (np.array(batches, dtype=np.int64), List(A), List(D), List(W), List(dW))
    epoch(*args)  # compile (or load from the cache) now, not in the warm-up round

    def run():
        epoch(*args)

    return run


def _jitted_gather():
    import numba

    @numba.njit(cache=True)
    def gather(X, order, batch, A0):
        n, d = X.shape
        for start in range(0, n, batch):
            m = min(batch, n - start)
            for i in range(m):
                r = order[start + i]
                for j in range(d):
                    A0[i, j] = X[r, j]

    return gather


def epoch_gather(n, batch, sizes, dtype):
    """Build a unit that gathers one epoch's shuffled mini-batches of an (n, sizes[0]) array into a buffer.

    The data read every epoch needs and the GEMM floor leaves out (its
    products reuse one batch): numbanet copies each shuffled batch of rows
    into its work buffer before the products.
    """
    rng = np.random.default_rng(2)
    X = rng.random((n, sizes[0]), dtype=dtype)  # float32 or float64, drawn in place: no float64 copy
    order = rng.permutation(n).astype(np.int64)
    A0 = np.empty((batch, sizes[0]), dtype=dtype)
    gather = _jitted_gather()
    gather(X, order, batch, A0)  # compile (or load) now

    def run():
        gather(X, order, batch, A0)

    return run


def dispatch_only(calls, dtype):
    """Build a unit making ``calls`` 1x1 ``np.dot(..., out=)`` calls.

    It measures the Python and NumPy dispatch that :func:`epoch_gemm_floor` pays on top
    of BLAS (numbanet's kernels do not).
    """
    a, b, out = np.ones((1, 1), dtype), np.ones((1, 1), dtype), np.empty((1, 1), dtype)

    def run():
        for _ in range(calls):
            np.dot(a, b, out=out)

    return run


def gemm_rate(A, B, reps):
    """Build a unit making ``reps`` calls ``np.dot(A, B, out)`` (the reference GEMM)."""
    out = np.empty((A.shape[0], B.shape[1]), dtype=A.dtype)

    def run():
        for _ in range(reps):
            np.dot(A, B, out=out)

    run.reps = reps
    return run


def epoch_flops(n, batch, sizes):
    """Flops of one epoch's matrix products (those of :func:`epoch_gemm_floor`)."""
    total = 0
    for start in range(0, n, batch):
        m = min(batch, n - start)
        for l, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
            total += (3 if l > 0 else 2) * 2 * m * i * o
    return total


def units(n, batch, sizes, dtype, quick=False):
    """Return the timed units of a workload with ``gemm=True``.

    They are the epoch's products alone, their Python dispatch alone, the same products
    from a Numba kernel, the epoch's gather of shuffled rows alone, and the reference GEMM
    (``RATE_REPS`` calls, a tenth with ``quick``).
    """
    floor = epoch_gemm_floor(n, batch, sizes, dtype)
    rng = np.random.default_rng(1)
    p, k, q = RATE_SHAPE
    A, B = rng.random((p, k), dtype=np.float32), rng.random((k, q), dtype=np.float32)
    return {
        "_gemm_epoch": floor,
        "_gemm_epoch_numba": epoch_gemm_floor_numba(n, batch, sizes, dtype),
        "_dispatch": dispatch_only(floor.calls, dtype),
        "_gather": epoch_gather(n, batch, sizes, dtype),
        "_gemm_rate": gemm_rate(A, B, RATE_REPS // 10 if quick else RATE_REPS),
    }


def report(w, n, units, times, result):
    """Compare the epoch against its matrix products and return the lines to print.

    ``units`` come from :func:`units`, timed in ``times``; the GEMM-only multiple and the
    GFLOP/s fraction go into ``result``.  The multiple with a verdict is against the
    products from a Numba kernel: the same BLAS as numbanet's (SciPy's) with no dispatch
    per call.  The multiples against the ``np.dot`` floor (NumPy's BLAS, from Python) and
    against the products plus the epoch's gather of shuffled rows are printed beside it.
    """
    flops = epoch_flops(n, w.batch, w.sizes)
    nb = result["impls"]["numbanet"]["median"]
    floor = statistics.median(times["_gemm_epoch"])
    dispatch = statistics.median(times["_dispatch"])
    jitted = statistics.median(times["_gemm_epoch_numba"])
    gather = statistics.median(times["_gather"])
    rate = 2 * np.prod(RATE_SHAPE) / statistics.median(times["_gemm_rate"]) * units["_gemm_rate"].reps
    fraction = flops / nb / rate
    multiple = nb / jitted
    multiple_min = result["impls"]["numbanet"]["min"] / min(times["_gemm_epoch_numba"])  # steadier when loaded
    fc = check("gemm_fraction", fraction, w.targets.get("gemm_fraction"))
    mc = check("gemm_multiple", multiple, w.targets.get("gemm_multiple"))
    result["checks"] += [fc, mc]
    result["gemm"] = {
        "epoch_gflop": flops / 1e9,
        "numbanet_gflops": flops / nb / 1e9,
        "reference_gemm": "np.dot (256x784)·(784x128) float32",
        "reference_gflops": rate / 1e9,
        "fraction": fraction,
        "fraction_target": fc["target"],
        "fraction_verdict": fc["verdict"],
        "gemm_calls": units["_gemm_epoch"].calls,
        "epoch_gemms_numba_s": jitted,
        "epoch_gemms_numba_gflops": flops / jitted / 1e9,
        "multiple": multiple,
        "multiple_target": mc["target"],
        "multiple_verdict": mc["verdict"],
        "multiple_of_minima": multiple_min,
        "epoch_gemms_numpy_s": floor,
        "dispatch_only_s": dispatch,
        "multiple_numpy": nb / floor,
        "multiple_numpy_without_dispatch": nb / max(floor - dispatch, 1e-12),
        "epoch_gather_s": gather,
        "multiple_gemms_and_gather": nb / (jitted + gather),
    }
    g = result["gemm"]
    return [
        f"GEMM: the epoch's matrix products are {flops / 1e9:.2f} GFLOP in {g['gemm_calls']} calls (per batch: "
        f"X·W1ᵀ, H·W2ᵀ, δ2ᵀ·H, δ2·W2, δ1ᵀ·X; none into the input)",
        f"      the same products alone, from a Numba kernel (SciPy's BLAS, as numbanet's; no dispatch): "
        f"{fmt_time(jitted).strip()} ({flops / jitted / 1e9:.1f} GFLOP/s)",
        f"      numbanet epoch / GEMMs alone = {multiple:.2f}x  (target {fmt_target(mc['target'])})  "
        f"{mc['verdict'] or ''}   (ratio of minima {multiple_min:.2f}x)",
        f"      the epoch's gather of shuffled rows alone (every epoch reads its data; the products above "
        f"reuse one batch): {fmt_time(gather).strip()}; numbanet epoch / (GEMMs + gather) = "
        f"{g['multiple_gemms_and_gather']:.2f}x",
        f"      the same products as bare np.dot(out=) from Python (NumPy's BLAS): {fmt_time(floor).strip()}; "
        f"numbanet epoch / that = {g['multiple_numpy']:.2f}x ({g['multiple_numpy_without_dispatch']:.2f}x "
        f"without the {fmt_time(dispatch).strip()} of Python dispatch)",
        f"      numbanet epoch {flops / nb / 1e9:.1f} GFLOP/s = {100 * fraction:.1f} % of a float32 np.dot "
        f"(256x784)·(784x128) at {rate / 1e9:.1f} GFLOP/s"
        + (f"  (target {fc['target'][0]} {100 * fc['target'][1]:.0f} %)  {fc['verdict']}" if fc["target"] else ""),
    ]
