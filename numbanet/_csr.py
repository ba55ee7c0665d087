"""Sparse input: SciPy sparse matrices checked once and held as the CSR arrays the sparse kernels take.

:func:`as_csr` turns a ``scipy.sparse`` matrix or array of any format into a
:class:`CSRRows`: CSR as it is (its data cast to the network's dtype when it
is not already, its indices to int64 when they are not already), any other
format converted to CSR once -- a sparse copy, never a dense one.  The
kernels (:mod:`numbanet.kernels.sparse`) read the rows in place.

SciPy is imported only when a sparse matrix is given: :func:`is_sparse`
recognises one by its class's module.
"""

import zlib

import numpy as np

from numbanet._validation import read_only


def is_sparse(X):
    """Whether ``X`` is a SciPy sparse matrix or array (without importing SciPy)."""
    return type(X).__module__.startswith("scipy.sparse") and hasattr(X, "tocsr")


class CSRRows:
    """A checked sparse matrix: ``data`` (the network's dtype), ``indices`` and ``indptr`` (int64), ``shape``.

    Row ``r`` holds ``data[k]`` in column ``indices[k]`` for
    ``indptr[r] <= k < indptr[r + 1]``.
    """

    def __init__(self, data, indices, indptr, shape):
        # Read-only, as dense data reaches the kernels: one specialisation of each kernel.
        self.data, self.indices, self.indptr = read_only(data), read_only(indices), read_only(indptr)
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = data.dtype

    def __getitem__(self, rows):
        """Return the rows ``start:stop`` (a slice, step 1) as a CSRRows sharing this one's arrays (no copy)."""
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("CSRRows takes a slice of rows, start:stop; use take for other rows")
        start, stop, _ = rows.indices(self.shape[0])
        stop = max(start, stop)
        return CSRRows(self.data, self.indices, self.indptr[start : stop + 1], (stop - start, self.shape[1]))

    @property
    def arrays(self):
        """``(data, indices, indptr)``, the tuple the sparse kernels take."""
        return self.data, self.indices, self.indptr

    def take(self, rows):
        """Return the rows ``rows`` (an integer array) as a new CSRRows."""
        rows = np.asarray(rows, dtype=np.int64)
        counts = self.indptr[rows + 1] - self.indptr[rows]
        indptr = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        pick = np.concatenate([np.arange(self.indptr[r], self.indptr[r + 1]) for r in rows]) if rows.size else []
        pick = np.asarray(pick, dtype=np.int64)
        return CSRRows(self.data[pick], self.indices[pick], indptr, (rows.size, self.shape[1]))

    def crc(self, rows):
        """Return a CRC of the rows ``rows`` (their columns and values), to recognise the same data cheaply."""
        crc = zlib.crc32(np.ascontiguousarray(self.indptr[rows + 1] - self.indptr[rows]).tobytes())
        for r in rows:
            lo, hi = self.indptr[r], self.indptr[r + 1]
            crc = zlib.crc32(self.indices[lo:hi].tobytes(), crc)
            crc = zlib.crc32(self.data[lo:hi].tobytes(), crc)
        return crc

    def toarray(self):
        """Return the dense matrix (for tests and small data)."""
        out = np.zeros(self.shape, dtype=self.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        np.add.at(out, (rows, self.indices), self.data)
        return out


def as_csr(X, name, dtype, *, n_cols=None):
    """Check a sparse ``X`` and return it as a :class:`CSRRows` of ``dtype`` (a CSRRows is returned as it is).

    Raises
    ------
    ValueError
        For a matrix that is not 2-D, has no rows or columns, the wrong
        number of columns, values that are not real numbers, or NaN or
        infinity among its stored values (naming the first, its row and
        column).
    """
    if isinstance(X, CSRRows):
        if n_cols is not None and X.shape[1] != n_cols:
            raise ValueError(f"{name} has {X.shape[1]} features, but the network expects {n_cols}")
        return X
    if len(X.shape) != 2:
        raise ValueError(f"{name} must be 2-D, of shape (n_samples, n_features); got shape {X.shape}")
    n, d = X.shape
    if n == 0:
        raise ValueError(f"{name} is empty: it has 0 samples (shape {X.shape})")
    if d == 0:
        raise ValueError(f"{name} has 0 features (shape {X.shape})")
    if n_cols is not None and d != n_cols:
        raise ValueError(f"{name} has {d} features, but the network expects {n_cols}")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} is a sparse matrix of {X.dtype}; numbanet needs real numbers")
    csr = X if X.format == "csr" else X.tocsr()  # CSC, COO, ...: one sparse copy
    with np.errstate(over="ignore"):  # a value too large for dtype becomes inf, refused below
        data = np.ascontiguousarray(csr.data, dtype=dtype)
    bad = np.flatnonzero(~np.isfinite(data))
    if bad.size:
        k = int(bad[0])
        row = int(np.searchsorted(csr.indptr, k, side="right") - 1)
        raise ValueError(
            f"{name} contains NaN or infinity (first at row {row}, column {int(csr.indices[k])}: {csr.data[k]!r}); "
            "remove or impute such values before training"
        )
    indices = np.ascontiguousarray(csr.indices, dtype=np.int64)
    indptr = np.ascontiguousarray(csr.indptr, dtype=np.int64)
    return CSRRows(data, indices, indptr, (n, d))
