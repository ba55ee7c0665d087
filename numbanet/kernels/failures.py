"""Where a custom function's exception waits, per thread, for Python to raise it once the kernel returns.

A Numba C callback cannot pass an exception on, so each custom function runs
inside a guard (:mod:`numbanet.pieces`) that catches it, calls
:func:`record_failure` with the function's id and the input, and returns NaN.
The record is one table for the process, of :data:`SLOTS` rows ``(thread,
function id, x, y)`` (uint64; ``x`` and ``y`` as the bits of their float64):
a thread claims a free row with an atomic compare-and-swap and keeps its
first failure there, and Python reads and frees the calling thread's row
after the call (:func:`take_failure`).  So calls in several threads, even of
networks that share a function, each report their own failure only (up to
:data:`SLOTS` threads failing at once).

The table and the thread-id function reach compiled code by name -- symbols
given to LLVM at import, in every process (``llvmlite.binding.add_symbol``)
-- never as addresses written into the code, so the guards can be cached on
disk like the kernels.  The thread id is what ``threading.get_ident()``
returns: ``pthread_self`` (POSIX) or ``GetCurrentThreadId`` (Windows).
"""

import ctypes
import sys
import threading

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import config, types
from numba.core import cgutils
from numba.extending import intrinsic

from numbanet._jit import jit

SLOTS = 256
_TABLE = np.zeros((SLOTS, 4), dtype=np.uint64)
_ROW_BYTES = _TABLE.strides[0]
_TABLE_SYMBOL = "numbanet_failure_table"
_THREAD_SYMBOL = "numbanet_thread_id"


def _thread_id_function():
    """Return the address and result bits of the C function whose value ``threading.get_ident()`` returns."""
    if sys.platform == "win32":
        fn, bits = ctypes.windll.kernel32.GetCurrentThreadId, 32
    else:
        fn, bits = ctypes.CDLL(None).pthread_self, 64
    return ctypes.cast(fn, ctypes.c_void_p).value, bits


_THREAD_FN, _THREAD_BITS = _thread_id_function()
llvm.add_symbol(_TABLE_SYMBOL, _TABLE.ctypes.data)
llvm.add_symbol(_THREAD_SYMBOL, _THREAD_FN)


def take_failure():
    """Return ``(function id, x, y)`` of the calling thread's recorded failure, freeing its row; None if none."""
    rows = np.flatnonzero(_TABLE[:, 0] == threading.get_ident())
    if rows.size == 0:
        return None
    row = _TABLE[rows[0]]
    fid = int(row[1])
    x, y = row[2:].view(np.float64)
    row[1:] = 0
    row[0] = 0  # last: the row is free again only once it is clear
    return fid, float(x), float(y)


@intrinsic
def _thread_id(typingctx):
    """Return the calling thread's ``threading.get_ident()``."""

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(_THREAD_BITS), [])
        value = builder.call(cgutils.get_or_insert_function(builder.module, fnty, _THREAD_SYMBOL), [])
        return builder.zext(value, ir.IntType(64)) if _THREAD_BITS < 64 else value

    return types.uint64(), codegen


@intrinsic
def _table(typingctx):
    """Return the address of the failure table."""

    def codegen(context, builder, signature, args):
        table = builder.module.globals.get(_TABLE_SYMBOL)
        if table is None:
            table = ir.GlobalVariable(builder.module, ir.IntType(64), _TABLE_SYMBOL)  # external: a declaration
        return builder.ptrtoint(table, ir.IntType(64))

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
def _store(typingctx, addr, x):
    """Write the uint64 or float64 ``x`` at ``addr``."""
    if not isinstance(x, (types.Float, types.Integer)):
        return None
    kind = types.float64 if isinstance(x, types.Float) else types.uint64

    def codegen(context, builder, signature, args):
        p, value = args
        builder.store(value, builder.inttoptr(p, context.get_value_type(kind).as_pointer()))
        return context.get_dummy_value()

    return types.void(types.uint64, kind), codegen


@jit
def record_failure(fid, x, y):
    """Record that the function ``fid`` raised at ``(x, y)`` in the calling thread (its first failure only)."""
    tid = _thread_id()
    row = _table()
    step = np.uint64(_ROW_BYTES)
    word = np.uint64(8)
    for _ in range(SLOTS):
        owner = _compare_and_swap(row, np.uint64(0), tid)
        if owner == 0:
            _store(row + word, np.uint64(fid))
            _store(row + word + word, np.float64(x))
            _store(row + word + word + word, np.float64(y))
            return
        if owner == tid:
            return
        row += step


if config.DISABLE_JIT:

    def record_failure(fid, x, y):
        """Record that the function ``fid`` raised at ``(x, y)`` in the calling thread (JIT disabled)."""
        tid = threading.get_ident()
        for row in _TABLE:
            if row[0] == 0:
                row[1] = fid
                row[2:] = np.array([x, y], dtype=np.float64).view(np.uint64)
                row[0] = tid
                return
            if row[0] == tid:
                return
