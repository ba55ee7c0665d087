"""The bundle of custom callbacks every kernel receives: :class:`Fns`.

A network's custom activations and custom loss (:class:`numbanet.Activation`,
:class:`numbanet.Loss`) reach the kernels as four Numba C callbacks of fixed
signatures:

=================  ====================================  ===============================
field              signature                             meaning
=================  ====================================  ===============================
``value``          ``float64(int64 k, float64 z)``       σ_k(z), the k-th custom activation
``slope``          ``float64(int64 k, float64 z)``       σ_k'(z)
``cost``           ``float64(float64 a, float64 y)``     per-output cost c(a, y)
``cost_slope``     ``float64(float64 a, float64 y)``     ∂c/∂a
=================  ====================================  ===============================

Every callback of a signature has the same Numba type, so each kernel is
compiled once (and cached) for all of them: a new custom activation costs the
compilation of its own two small functions, not of the kernels.  A network
without custom pieces passes :func:`builtin_fns`, whose callbacks return NaN
(they are never called: only layers coded ``CUSTOM`` call them).
"""

from collections import namedtuple

import numpy as np
from numba import cfunc, types

#: Signature of a custom activation callback: ``(k, z) -> σ_k(z)`` (or σ_k'(z)).
ACTIVATION_SIGNATURE = types.float64(types.int64, types.float64)
#: Signature of a custom loss callback: ``(a, y) -> c(a, y)`` (or ∂c/∂a).
LOSS_SIGNATURE = types.float64(types.float64, types.float64)

Fns = namedtuple("Fns", ["value", "slope", "cost", "cost_slope"])
Fns.__doc__ = "Custom activation and loss callbacks, as the kernels receive them (see the module notes)."


def _no_activation(k, z):
    return np.nan


def _no_loss(a, y):
    return np.nan


_BUILTIN = []


def builtin_fns():
    """The :class:`Fns` of a network without custom pieces (compiled once, then cached on disk)."""
    if not _BUILTIN:
        act = cfunc(ACTIVATION_SIGNATURE, cache=True)(_no_activation)
        loss = cfunc(LOSS_SIGNATURE, cache=True)(_no_loss)
        _BUILTIN.append(Fns(act, act, loss, loss))
    return _BUILTIN[0]
