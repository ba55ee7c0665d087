r"""BLAS's matrix product, ``gemm``, called from the kernels with its ``alpha`` and ``beta``.

:func:`gemm` computes :math:`C \leftarrow \alpha\,op(A)\,op(B) + \beta C` for
C-contiguous (row-major) float32 or float64 matrices, where :math:`op(X)` is
``X`` or ``X.T``.  It is one call to the BLAS that Numba's own ``np.dot``
uses -- SciPy's, through Numba's helper ``numba_xxgemm`` (which looks the
function up in ``scipy.linalg.cython_blas`` once per process and takes the
GIL only for that look-up) -- so it is as fast as ``np.dot(a, b, out)`` and
caches like any kernel, but it exposes what ``np.dot`` hides:

* ``beta = 1`` accumulates into ``C``: plain SGD's weight update
  :math:`W \leftarrow W - \eta\,\Delta^T A` is the gradient product itself
  (``alpha = -eta``), with no gradient buffer written, zeroed or read back;
* ``beta = 0`` overwrites ``C`` (BLAS does not read it, so it may hold
  anything, NaN included), as ``np.dot(..., out)`` does.

A row-major matrix is its transpose in BLAS's column-major order, so
:math:`C = op(A)\,op(B)` is asked of BLAS as :math:`C^T = op(B)^T op(A)^T`:
the operands swap places and every leading dimension is a row length.

With ``NUMBA_DISABLE_JIT=1`` (the coverage run) :func:`gemm` is NumPy.
"""

from llvmlite import ir
from numba import config, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from numbanet._jit import jit_inline

_CHAR = ir.IntType(8)
_VOIDP = ir.IntType(8).as_pointer()
_KINDS = {types.float32: ord("s"), types.float64: ord("d")}


@intrinsic
def _xxgemm(typingctx, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """Fortran-order ``gemm`` on the data of three arrays: Numba's ``numba_xxgemm`` helper.

    ``trans_a``/``trans_b`` are the BLAS characters as integers (``ord('N')``,
    ``ord('T')``); ``alpha`` and ``beta`` are cast to the arrays' dtype.
    """
    arrays = (A, B, C)
    if not all(isinstance(a, types.Array) for a in arrays):
        raise TypingError("gemm: A, B and C must be arrays")
    dtype = C.dtype
    if dtype not in _KINDS or A.dtype != dtype or B.dtype != dtype:
        raise TypingError(f"gemm: A, B and C must all be float32 or all float64; got {A.dtype}, {B.dtype}, {dtype}")
    ints = (trans_a, trans_b, m, n, k, lda, ldb, ldc)
    if not all(isinstance(i, types.Integer) for i in ints):
        raise TypingError("gemm: the transpose flags, sizes and leading dimensions must be integers")
    if not all(isinstance(s, (types.Float, types.Integer)) for s in (alpha, beta)):
        raise TypingError("gemm: alpha and beta must be numbers")
    from numba.np.linalg import check_blas_return, ensure_blas

    ensure_blas()  # SciPy's BLAS, as np.dot needs it

    sig = types.void(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)

    def codegen(context, builder, signature, args):
        ta, tb, m_, n_, k_, al, a, lda_, b, ldb_, be, c, ldc_ = args
        tys = signature.args
        intp = cgutils.intp_t
        fnty = ir.FunctionType(
            ir.IntType(32),
            [_CHAR, _CHAR, _CHAR, intp, intp, intp, _VOIDP, _VOIDP, intp, _VOIDP, intp, _VOIDP, _VOIDP, intp],
        )
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")

        def as_intp(v, ty):
            return context.cast(builder, v, ty, types.intp)

        def as_char(v, ty):
            return builder.trunc(as_intp(v, ty), _CHAR)

        def slot(v, ty):
            return builder.bitcast(cgutils.alloca_once_value(builder, context.cast(builder, v, ty, dtype)), _VOIDP)

        def data(v, ty):
            return builder.bitcast(context.make_array(ty)(context, builder, v).data, _VOIDP)

        res = builder.call(
            fn,
            (
                ir.Constant(_CHAR, _KINDS[dtype]),
                as_char(ta, tys[0]),
                as_char(tb, tys[1]),
                as_intp(m_, tys[2]),
                as_intp(n_, tys[3]),
                as_intp(k_, tys[4]),
                slot(al, tys[5]),
                data(a, tys[6]),
                as_intp(lda_, tys[7]),
                data(b, tys[8]),
                as_intp(ldb_, tys[9]),
                slot(be, tys[10]),
                data(c, tys[11]),
                as_intp(ldc_, tys[12]),
            ),
        )
        check_blas_return(context, builder, res)
        return context.get_dummy_value()

    return sig, codegen


_N = ord("N")
_T = ord("T")


@jit_inline
def gemm(A, B, C, trans_a, trans_b, alpha, beta):
    r""":math:`C \leftarrow \alpha\,op(A)\,op(B) + \beta C`, in place, in one BLAS call.

    Parameters
    ----------
    A, B : C-contiguous arrays of one dtype (float32 or float64)
        :math:`op(A)` is ``A.T`` when ``trans_a``, else ``A``; likewise ``B``.
    C : C-contiguous array of the same dtype, shape (rows of op(A), columns of op(B))
        Updated in place; with ``beta == 0`` it is not read.
    trans_a, trans_b : bool
    alpha, beta : float
        Cast to the arrays' dtype.

    The caller guarantees the shapes agree (the kernels' buffers do by
    construction); nothing is checked here, as in BLAS.
    """
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    if m == 0 or n == 0:
        return
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
    _xxgemm(
        _T if trans_b else _N,
        _T if trans_a else _N,
        n,
        m,
        k,
        alpha,
        B,
        max(1, B.shape[1]),
        A,
        max(1, A.shape[1]),
        beta,
        C,
        max(1, n),
    )


if config.DISABLE_JIT:

    def gemm(A, B, C, trans_a, trans_b, alpha, beta):  # noqa: F811 -- NumPy stands in for BLAS
        """C <- alpha op(A) op(B) + beta C with NumPy (JIT disabled)."""
        product = (A.T if trans_a else A) @ (B.T if trans_b else B)
        dtype = C.dtype.type
        if beta == 0:
            C[...] = dtype(alpha) * product
        else:
            C[...] = dtype(alpha) * product + dtype(beta) * C
