"""Input checks done in one pass over the data, without temporaries."""

from numbanet._jit import jit


@jit
def first_nonfinite_row(X):
    """Index of the first row of ``X`` holding NaN or ±inf, or -1 if none does.

    Equivalent to ``np.flatnonzero(~np.isfinite(X).all(axis=1))[:1]`` but it
    reads ``X`` once and allocates nothing: ``v - v`` is 0 for every finite
    ``v`` and NaN otherwise, and the per-row AND of the comparisons is
    branch-free, so the inner loop vectorises.

    Parameters
    ----------
    X : array of shape (n_rows, n_cols), float32 or float64, C-contiguous
    """
    n, d = X.shape
    for i in range(n):
        ok = True
        for j in range(d):
            v = X[i, j]
            ok &= (v - v) == 0
        if not ok:
            return i
    return -1
