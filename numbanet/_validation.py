"""Input checks shared by :class:`~numbanet.Network` and the estimators.

Every check raises :class:`ValueError` with the numbers involved, before any
parameter is touched, so a refused call changes nothing.
"""

import numbers

import numpy as np

from numbanet import config
from numbanet.kernels.checks import first_nonfinite_row


def as_matrix(X, name, dtype, *, n_cols=None, allow_1d=False, what="columns", check_finite=True):
    """Validate ``X`` and return it as a read-only, C-contiguous 2-D array of ``dtype``.

    Lists, integer, boolean, Fortran-ordered, strided and read-only arrays are
    accepted; they are copied once when they are not already C-contiguous and
    of ``dtype``.  An array that is (a read-only one or a memory map
    included) is used as it is, never copied; what is returned is a read-only
    view of it (see :func:`read_only`).  The input is never modified.

    Parameters
    ----------
    X : array-like
        The input.
    name : str
        Its name in error messages (``"X"``, ``"Y"``).
    dtype : numpy dtype
        float32 or float64.
    n_cols : int, optional
        The required number of columns.
    allow_1d : bool
        Accept a 1-D array as one column (for targets of single-output nets).
    what : str
        What a column is called in messages (``"features"``, ``"outputs"``).
        For ``"outputs"`` with ``n_cols > 1``, a 1-D array or a single column
        of non-negative integers is refused with a hint that it looks like
        class labels to be one-hot encoded.
    check_finite : bool
        Refuse NaN and infinity here (a pass over the data).  ``fit`` passes
        False for its training inputs: its kernel checks every row as it
        gathers it, and ``fit`` then calls this again to refuse the data.

    Raises
    ------
    ValueError
        For ``None``, strings, complex or non-numeric values, missing values
        (``None``, ``pandas.NA`` or NaN in an object array, as from a pandas
        DataFrame with nullable columns), arrays of 0 or 3+ dimensions, empty
        arrays, a wrong number of columns, NaN or infinity (also values that
        overflow ``dtype``).
    """
    if X is None:
        raise ValueError(f"{name} is None; expected an array of shape (n_samples, n_{what})")
    if isinstance(X, (str, bytes)):
        raise ValueError(f"{name} is a string; expected a numeric array of shape (n_samples, n_{what})")
    arr = np.asarray(X)
    kind = arr.dtype.kind
    if kind in "USaV":
        raise ValueError(f"{name} contains strings or non-numeric data (dtype {arr.dtype}); numbanet needs numbers")
    if kind == "c":
        raise ValueError(f"{name} contains complex numbers (dtype {arr.dtype}); numbanet needs real numbers")
    if kind == "O":
        obj = arr
        try:
            arr = obj.astype(np.float64)
        except (TypeError, ValueError):
            _refuse_missing(obj, name, allow_1d)
            raise ValueError(f"{name} contains non-numeric values (dtype object); numbanet needs numbers") from None
        if np.isnan(arr).any():  # None and NaN convert to NaN: name them as missing, like pandas.NA
            _refuse_missing(obj, name, allow_1d)
    if kind in "mM":
        raise ValueError(f"{name} contains dates or time deltas (dtype {arr.dtype}); numbanet needs numbers")
    if arr.ndim == 1 and allow_1d:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        hint = (
            " (reshape a single sample with X.reshape(1, -1), a single feature with X.reshape(-1, 1))"
            if arr.ndim == 1
            else ""
        )
        if arr.ndim == 1 and what == "outputs":
            hint = _label_hint(arr, name, n_cols) or hint
        raise ValueError(
            f"{name} must be 2-D, of shape (n_samples, n_{what}); got a {arr.ndim}-D array of shape {arr.shape}{hint}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples (shape {arr.shape})")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 {what} (shape {arr.shape})")
    if n_cols is not None and arr.shape[1] != n_cols:
        hint = _label_hint(arr[:, 0], name, n_cols) if what == "outputs" and arr.shape[1] == 1 else ""
        raise ValueError(f"{name} has {arr.shape[1]} {what}, but the network expects {n_cols}{hint}")
    with np.errstate(over="ignore"):  # a value too large for dtype becomes inf, refused just below
        out = np.ascontiguousarray(arr, dtype=dtype)  # no copy when X is already C-ordered of dtype
    out = read_only(out)  # the kernels never write to data: one specialisation, memory maps used in place
    if not check_finite:
        return out
    # One allocation-free pass (np.isfinite would build an n_samples x n_features temporary).
    row = first_nonfinite_row(out)
    if row >= 0:
        bad = (row, int(np.flatnonzero(~np.isfinite(out[row]))[0]))
        original = arr[bad[0], bad[1]]
        reason = (
            "NaN or infinity"
            if not np.isfinite(np.asarray(original, dtype=np.float64))
            else f"a value too large for {np.dtype(dtype).name}"
        )
        raise ValueError(
            f"{name} contains {reason} (first at row {bad[0]}, column {bad[1]}: {original!r}); "
            "remove or impute such values before training"
        )
    return out


def _is_missing(x):
    """Whether one element of an object array is a missing value (None, pandas.NA, NaN)."""
    if x is None or type(x).__name__ == "NAType":  # pandas.NA, recognised without importing pandas
        return True
    return isinstance(x, numbers.Real) and x != x


def _refuse_missing(obj, name, allow_1d):
    """Raise if the object array ``obj`` holds missing values, naming the first and their count."""
    flat = [i for i, x in enumerate(obj.flat) if _is_missing(x)]
    if not flat:
        return
    idx = np.unravel_index(flat[0], obj.shape)
    if obj.ndim == 2:
        where = f"row {idx[0]}, column {idx[1]}"
    elif obj.ndim == 1 and allow_1d:
        where = f"row {idx[0]}, column 0"
    else:
        where = f"index {tuple(int(i) for i in idx)}"
    raise ValueError(
        f"{name} contains missing values ({len(flat)} of {obj.size}; first at {where}: {obj[idx]!r}); "
        "remove or impute them"
    )


def _label_hint(y, name, n_cols):
    """Return a hint when targets ``y`` (1-D) look like integer class labels for an ``n_cols``-output net.

    Returns ``""`` when the hint does not apply: ``n_cols`` is unknown or 1, or
    ``y`` holds booleans, negative or non-integral values.
    """
    if n_cols is None or n_cols < 2 or y.dtype.kind not in "iuf" or y.size == 0:
        return ""
    if y.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            if not (np.isfinite(y).all() and (y == np.floor(y)).all()):
                return ""
    lo, hi = y.min(), y.max()
    if lo < 0:
        return ""
    labels = "y" if y.dtype.kind in "iu" else "y.astype(int)"
    if hi < n_cols:
        example = f"np.eye({n_cols})[{labels}]"
    else:
        example = f"np.eye(n_classes)[{labels}]; the labels go up to {hi:g} but the network has {n_cols} outputs"
    return (
        f"; {name} looks like integer class labels; one-hot encode them (e.g. {example}) or use numbanet.MLPClassifier"
    )


def check_target_rows(Y, name, loss):
    """Refuse, for loss ``"cross_entropy"``, rows of ``Y`` that do not sum to a positive value.

    A row of zeros has no class: its cross-entropy term and gradient are zero,
    so it would be trained on silently as if absent.  Rows summing to positive
    values other than 1 (soft labels, per-row weights) are allowed.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_outputs)
        Targets already checked by :func:`as_matrix`.
    name : str
        Its name in error messages.
    loss : str
        The network's loss; other losses are not checked.

    Raises
    ------
    ValueError
        Naming the first such row, its sum and how many rows there are.
    """
    if loss != "cross_entropy":
        return
    sums = Y.sum(axis=1, dtype=np.float64)
    bad = np.flatnonzero(~(sums > 0))
    if bad.size:
        r = int(bad[0])
        many = f"{bad.size} rows of {Y.shape[0]} do" if bad.size > 1 else f"1 row of {Y.shape[0]} does"
        raise ValueError(
            f"{name} row {r} sums to {sums[r]:g} ({many}); "
            "cross_entropy needs one-hot rows or class probabilities that sum to 1"
        )


def check_rows(X, Y, xname="X", yname="Y"):
    """Refuse X and Y with different numbers of rows."""
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"{xname} has {X.shape[0]} samples but {yname} has {Y.shape[0]}; they must match")


def sample_weights(sample_weight, n):
    """Validate ``sample_weight`` and return it as a float64 vector (ones if None).

    Weights whose sum overflows, or is subnormal, are rescaled to a largest
    weight of 1, which changes nothing but the rounding: only their ratios matter.
    """
    if sample_weight is None:
        return np.ones(n, dtype=np.float64)
    w = as_matrix(sample_weight, "sample_weight", np.float64, allow_1d=True, what="weights")
    if w.shape[1] != 1:
        raise ValueError(f"sample_weight must be 1-D of length n_samples; got shape {np.shape(sample_weight)}")
    w = np.array(w[:, 0])  # a writeable copy of its own (n floats), whatever the input was
    if w.shape[0] != n:
        raise ValueError(f"sample_weight has {w.shape[0]} entries but there are {n} samples")
    if (w < 0).any():
        raise ValueError(f"sample_weight must be non-negative; found {w.min():g}")
    top = w.max()
    if top <= 0:
        raise ValueError(
            "sample_weight sums to 0 (every weight is zero); at least one sample must have a positive weight"
        )
    with np.errstate(over="ignore"):
        total = w.sum()
    if not np.isfinite(total) or total < np.finfo(np.float64).tiny:
        # Only ratios matter (the cost is sum(s_i c_i) / sum(s_i)); scaling to a largest
        # weight of 1 keeps the sum finite for huge weights and normal for subnormal ones.
        w = w / top
    return w


def positive_int(value, name):
    """Return ``value`` as an int, refusing non-integers and values below 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value}")
    return int(value)


def non_negative_float(value, name, *, upper=None, upper_open=False):
    """Return ``value`` as a float, refusing negative, non-finite and too large values."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value}")
    if upper is not None and (v > upper or (upper_open and v == upper)):
        raise ValueError(f"{name} must be {'<' if upper_open else '<='} {upper}; got {value}")
    return v


def read_only(a):
    """Return a read-only view of the array ``a`` (``a`` itself when it is read-only already).

    The kernels receive all data this way, whether or not the caller's array
    was writeable: they never write to it, read-only input (memory maps,
    joblib's shared arrays) is used in place without a copy, and Numba
    compiles one specialisation instead of two.
    """
    if not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view


def float_dtype(dtype, allow_none=False):
    """``dtype`` as a NumPy dtype numbanet computes in (``config.DTYPES``), or ValueError naming it.

    With ``allow_none``, None passes through (the caller then picks a default).
    """
    if dtype is None and allow_none:
        return None
    wanted = "None, float32 or float64" if allow_none else "float32 or float64"
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be {wanted}; got {dtype!r}") from None
    if dt.name not in config.DTYPES:
        raise ValueError(f"dtype must be {wanted}; got {dt}")
    return dt
