"""How a network's custom activations and loss reach the kernels: four callback addresses.

A network's custom activations and custom loss (:class:`numbanet.Activation`,
:class:`numbanet.Loss`) are compiled into Numba C callbacks of fixed
signatures, and the kernels receive their addresses in one tuple of four
integers, ``fns``:

=================  ====================================  ===============================
entry              callback signature                    meaning
=================  ====================================  ===============================
``FN_VALUE``       ``float64(int64 k, float64 z)``       σ_k(z), the k-th custom activation
``FN_SLOPE``       ``float64(int64 k, float64 z)``       σ_k'(z)
``FN_COST``        ``float64(float64 a, float64 y)``     per-output cost c(a, y)
``FN_COST_SLOPE``  ``float64(float64 a, float64 y)``     ∂c/∂a
=================  ====================================  ===============================

Inside a kernel, :func:`activation_fn` and :func:`loss_fn` turn an address
back into a callable first-class function.  The tuple has the same type
whatever the callbacks are, so every kernel is compiled once, cached, and
shared by all custom pieces: a new piece costs the compilation of its own
small functions, never of the kernels.  A tuple of integers, unlike an
array, is passed between kernels without reference counting (an array
argument costs each small kernel two atomic operations a call) and is typed
fast by Numba's dispatcher.  A network without custom pieces passes zeros
(:func:`builtin_fns`): only layers coded ``CUSTOM`` (or the loss ``CUSTOM``)
ever call a callback.  The objects that own the
compiled callbacks must outlive the calls (the network keeps them).

With ``NUMBA_DISABLE_JIT=1`` (the coverage run) the kernels run as Python,
which cannot call an intrinsic: :func:`callback` then makes ctypes callbacks
of the same signatures, and :func:`activation_fn` and :func:`loss_fn` call an
address through ctypes, so the same addresses travel the same way.
"""

import ctypes
import sys
import threading

import numpy as np
from llvmlite import ir
from numba import cfunc, config, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: Signature of a custom activation callback: ``(k, z) -> σ_k(z)`` (or σ_k'(z)).
ACTIVATION_SIGNATURE = types.float64(types.int64, types.float64)
#: Signature of a custom loss callback: ``(a, y) -> c(a, y)`` (or ∂c/∂a).
LOSS_SIGNATURE = types.float64(types.float64, types.float64)

FN_VALUE = 0
FN_SLOPE = 1
FN_COST = 2
FN_COST_SLOPE = 3
N_FNS = 4

_ACTIVATION_FN = types.FunctionType(ACTIVATION_SIGNATURE)
_LOSS_FN = types.FunctionType(LOSS_SIGNATURE)


def _function_from_address(fntype):
    def codegen(context, builder, signature, args):
        (addr,) = args
        fn = cgutils.create_struct_proxy(fntype)(context, builder)
        voidptr = context.get_value_type(types.voidptr)
        fn.c_addr = builder.inttoptr(addr, voidptr)  # called directly: no GIL, no Python object
        fn.py_addr = voidptr(None)
        fn.jit_addr = voidptr(None)
        return fn._getvalue()

    return codegen


@intrinsic
def activation_fn(typingctx, addr):
    """Turn the address ``addr`` of a custom activation callback into a function ``(k, z) -> float``."""
    if isinstance(addr, types.Integer):
        return _ACTIVATION_FN(addr), _function_from_address(_ACTIVATION_FN)
    return None


@intrinsic
def loss_fn(typingctx, addr):
    """Turn the address ``addr`` of a custom loss callback into a function ``(a, y) -> float``."""
    if isinstance(addr, types.Integer):
        return _LOSS_FN(addr), _function_from_address(_LOSS_FN)
    return None


# --- failure records ---------------------------------------------------------------------------
# A custom function's failure record is a table of RECORD_SLOTS rows of three uint64: the thread that
# failed (its threading.get_ident(), 0 for a free row) and the bits of the float64 inputs x and y.
# Each thread claims a row of its own (compare-and-swap), so networks that share a function and run
# in several threads at once each read their own failure, never another's.
RECORD_SLOTS = 256


def new_record():
    """Return an empty failure record (see above)."""
    return np.zeros((RECORD_SLOTS, 3), dtype=np.uint64)


def take_failure(record):
    """Return ``(x, y)`` where the calling thread's function raised, clearing its row; None if it did not."""
    rows = np.flatnonzero(record[:, 0] == threading.get_ident())
    if rows.size == 0:
        return None
    i = rows[0]
    x, y = record[i, 1:].view(np.float64)
    record[i, 1:] = 0
    record[i, 0] = 0  # last: the row is free again only once it is clear
    return float(x), float(y)


def _thread_id_function():
    """Return the address and result bits of the C function whose value ``threading.get_ident()`` returns."""
    if sys.platform == "win32":
        fn, bits = ctypes.windll.kernel32.GetCurrentThreadId, 32
    else:
        fn, bits = ctypes.CDLL(None).pthread_self, 64
    return ctypes.cast(fn, ctypes.c_void_p).value, bits


@intrinsic
def _thread_id(typingctx):
    """Return the calling thread's ``threading.get_ident()`` (the function's address is baked in: never cache)."""

    def codegen(context, builder, signature, args):
        addr, bits = _thread_id_function()
        fnty = ir.FunctionType(ir.IntType(bits), [])
        fn = builder.inttoptr(ir.Constant(ir.IntType(64), addr), fnty.as_pointer())
        value = builder.call(fn, [])
        return builder.zext(value, ir.IntType(64)) if bits < 64 else value

    return types.uint64(), codegen


@intrinsic
def _compare_and_swap(typingctx, addr, expected, new):
    """Atomically: if the uint64 at ``addr`` is ``expected``, write ``new``; return what was there."""

    def codegen(context, builder, signature, args):
        p, old, value = args
        ptr = builder.inttoptr(p, ir.IntType(64).as_pointer())
        return builder.extract_value(builder.cmpxchg(ptr, old, value, "seq_cst", "seq_cst"), 0)

    return types.uint64(types.uint64, types.uint64, types.uint64), codegen


@intrinsic
def _store_float(typingctx, addr, x):
    """Write the float64 ``x`` at ``addr``."""

    def codegen(context, builder, signature, args):
        p, value = args
        builder.store(value, builder.inttoptr(p, context.get_value_type(types.float64).as_pointer()))
        return context.get_dummy_value()

    return types.void(types.uint64, types.float64), codegen


def _record_failure(addr, slots, x, y):
    """Record in the table at ``addr`` that this thread's function raised at ``(x, y)`` (its first failure).

    Called by the guard around each custom function (:mod:`numbanet.pieces`), which returns NaN instead
    of letting the exception reach the C callback (which cannot pass it on); Python reads the record after
    the kernel returns and raises (:func:`take_failure`).
    """
    tid = _thread_id()
    for i in range(slots):
        row = addr + i * 24
        owner = _compare_and_swap(row, 0, tid)
        if owner == 0:
            _store_float(row + 8, x)
            _store_float(row + 16, y)
            return
        if owner == tid:
            return


# Compiled when the first guard is (never cached: the thread-id function's address is baked in).
record_failure = njit(cache=False, nogil=True)(_record_failure)


if config.DISABLE_JIT:
    _CTYPES = {
        ACTIVATION_SIGNATURE: ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_int64, ctypes.c_double),
        LOSS_SIGNATURE: ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double, ctypes.c_double),
    }

    # The addresses come out of the int64 spec array as NumPy integers; ctypes takes Python ints.
    def activation_fn(addr):
        """Call the custom activation callback at ``addr`` through ctypes (JIT disabled)."""
        return _CTYPES[ACTIVATION_SIGNATURE](int(addr))

    def loss_fn(addr):
        """Call the custom loss callback at ``addr`` through ctypes (JIT disabled)."""
        return _CTYPES[LOSS_SIGNATURE](int(addr))

    def record_failure(addr, slots, x, y):
        """Record this thread's failure at ``(x, y)`` in the table at ``addr`` (JIT disabled; the GIL is held)."""
        table = np.ctypeslib.as_array((ctypes.c_uint64 * (3 * int(slots))).from_address(int(addr)))
        table = table.reshape(int(slots), 3)
        tid = threading.get_ident()
        for row in table:
            if row[0] == 0:
                row[1:] = np.array([x, y], dtype=np.float64).view(np.uint64)
                row[0] = tid
                return
            if row[0] == tid:
                return

    class _PythonCallback:
        """A ctypes callback standing in for a Numba cfunc: ``address`` is what the kernels receive."""

        def __init__(self, signature, fn):
            self._fn = _CTYPES[signature](fn)  # kept alive as long as this object
            self.address = ctypes.cast(self._fn, ctypes.c_void_p).value


def callback(signature, fn):
    """Return a C callback of ``signature`` calling the scalar function ``fn``; its ``address`` goes in ``fns``.

    A Numba ``cfunc``; with the JIT disabled, a ctypes callback of the same signature.
    """
    if config.DISABLE_JIT:
        return _PythonCallback(signature, fn)
    return cfunc(signature)(fn)


def builtin_fns():
    """Return the ``fns`` of a network without custom pieces: no callbacks (never called)."""
    return (0,) * N_FNS
