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

from numba import cfunc, config, types
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

    class _PythonCallback:
        """A ctypes callback standing in for a Numba cfunc: ``address`` is what the kernels receive."""

        def __init__(self, signature, fn):
            self._fn = _CTYPES[signature](fn)  # kept alive as long as this object
            self.address = ctypes.cast(self._fn, ctypes.c_void_p).value


def callback(signature, fn, cache=False):
    """Return a C callback of ``signature`` calling the scalar function ``fn``; its ``address`` goes in ``fns``.

    A Numba ``cfunc`` (cached on disk with ``cache``); with the JIT disabled, a
    ctypes callback of the same signature.
    """
    if config.DISABLE_JIT:
        return _PythonCallback(signature, fn)
    return cfunc(signature, cache=cache)(fn)


def builtin_fns():
    """Return the ``fns`` of a network without custom pieces: no callbacks (never called)."""
    return (0,) * N_FNS
