r"""BLAS's matrix product, ``gemm``, called from the kernels with its ``alpha`` and ``beta``.

:func:`gemm` computes :math:`C \leftarrow \alpha\,op(A)\,op(B) + \beta C` for
C-contiguous (row-major) float32 or float64 matrices, where :math:`op(X)` is
``X`` or ``X.T``.  It is one call to the BLAS that Numba's own ``np.dot``
uses -- SciPy's, ``scipy.linalg.cython_blas``, whose function addresses Numba's
public ``get_cython_function_address`` gives and ``llvmlite`` names for the
linker -- so it is as fast as ``np.dot(a, b, out)`` and caches like any
kernel, but it exposes what ``np.dot`` hides:

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

import llvmlite.binding as llvm
from llvmlite import ir
from numba import config, types
from numba.core.errors import TypingError
from numba.extending import get_cython_function_address, intrinsic

from numbanet._jit import jit_inline

_CHAR = ir.IntType(8)
_INT = ir.IntType(32)  # Fortran INTEGER of SciPy's BLAS (LP64)
_ROUTINES = {types.float32: "sgemm", types.float64: "dgemm"}


def _register_blas():
    """Name SciPy's ``sgemm`` and ``dgemm`` for the linker, as ``numbanet_sgemm`` and ``numbanet_dgemm``.

    A kernel calls them by these names, so its cached machine code holds no
    address of this process; the names are resolved when a process compiles
    or loads it.  They are registered at import, before any kernel can be
    compiled or loaded (a kernel naming an unknown symbol cannot be linked).
    """
    for name in _ROUTINES.values():
        llvm.add_symbol(f"numbanet_{name}", get_cython_function_address("scipy.linalg.cython_blas", name))


@intrinsic
def _xxgemm(typingctx, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """Fortran-order ``gemm`` on the data of three arrays: SciPy's ``sgemm``/``dgemm``.

    ``trans_a``/``trans_b`` are the BLAS characters as integers (``ord('N')``,
    ``ord('T')``); ``alpha`` and ``beta`` are cast to the arrays' dtype.
    """
    arrays = (A, B, C)
    if not all(isinstance(a, types.Array) for a in arrays):
        raise TypingError("gemm: A, B and C must be arrays")
    dtype = C.dtype
    if dtype not in _ROUTINES or A.dtype != dtype or B.dtype != dtype:
        raise TypingError(f"gemm: A, B and C must all be float32 or all float64; got {A.dtype}, {B.dtype}, {dtype}")
    ints = (trans_a, trans_b, m, n, k, lda, ldb, ldc)
    if not all(isinstance(i, types.Integer) for i in ints):
        raise TypingError("gemm: the transpose flags, sizes and leading dimensions must be integers")
    if not all(isinstance(s, (types.Float, types.Integer)) for s in (alpha, beta)):
        raise TypingError("gemm: alpha and beta must be numbers")

    sig = types.void(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)

    def codegen(context, builder, signature, args):
        tys = signature.args
        real = context.get_value_type(dtype)

        def by_reference(value, ty, to):
            """Fortran passes every argument by reference: a stack slot holding ``value``."""
            if to is _CHAR:
                value = builder.trunc(context.cast(builder, value, ty, types.intp), _CHAR)
            elif to is _INT:
                value = builder.trunc(context.cast(builder, value, ty, types.intp), _INT)
            else:
                value = context.cast(builder, value, ty, dtype)
            with builder.goto_entry_block():
                slot = builder.alloca(to)
            builder.store(value, slot)
            return slot

        def data(value, ty):
            return builder.bitcast(context.make_array(ty)(context, builder, value).data, real.as_pointer())

        kinds = (_CHAR, _CHAR, _INT, _INT, _INT, real, None, _INT, None, _INT, real, None, _INT)
        operands = [data(v, ty) if to is None else by_reference(v, ty, to) for v, ty, to in zip(args, tys, kinds)]
        fnty = ir.FunctionType(ir.VoidType(), [o.type for o in operands])
        symbol = f"numbanet_{_ROUTINES[dtype]}"
        fn = builder.module.globals.get(symbol) or ir.Function(builder.module, fnty, symbol)
        builder.call(fn, operands)
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

    def gemm(A, B, C, trans_a, trans_b, alpha, beta):
        """C <- alpha op(A) op(B) + beta C with NumPy (JIT disabled)."""
        product = (A.T if trans_a else A) @ (B.T if trans_b else B)
        dtype = C.dtype.type
        if beta == 0:
            C[...] = dtype(alpha) * product
        else:
            C[...] = dtype(alpha) * product + dtype(beta) * C
else:
    _register_blas()
