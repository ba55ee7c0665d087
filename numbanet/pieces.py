"""Your own activations and losses: :class:`Activation` and :class:`Loss`.

A custom activation is a scalar function σ(z) and its derivative σ'(z); a
custom loss is a per-output cost c(a, y), summed over the outputs of a
sample, and its derivative ∂c/∂a.  Each is written as plain Python on floats
(a ``lambda``, a ``def``, or an ``@njit`` function) that Numba can compile::

    import math, numbanet

    swish = numbanet.Activation(
        "swish",
        function=lambda z: z / (1.0 + math.exp(-z)),
        derivative=lambda z: (1.0 + math.exp(-z) + z * math.exp(-z)) / (1.0 + math.exp(-z)) ** 2,
    )
    log_cosh = numbanet.Loss("log_cosh", cost=lambda a, y: math.log(math.cosh(a - y)),
                             derivative=lambda a, y: math.tanh(a - y))
    net = numbanet.Network([4, 16, 1], activations=[swish, "identity"], loss=log_cosh)

The functions are compiled when the piece is made, so a function Numba
cannot compile is refused there, with Numba's reason.  Inside the training
kernels they are called through C callbacks of fixed signatures, whose
addresses the kernels receive in one tuple (:mod:`numbanet.kernels.pieces`):
the kernels are compiled once, for all custom pieces together, and a new
piece costs only the compilation of its own small functions (a fraction of a
second), never of the kernels.

Errors inside the functions: a division by zero gives inf or NaN, as in the
kernels (and NaN stops training with :class:`numbanet.TrainingDivergedError`);
any other exception cannot cross the compiled callback: Numba prints it and
the callback returns 0, so keep the functions total over the values they
will see.

The network's gradients are then exact for the σ' and ∂c/∂a you wrote --
whether *those* are right is what :func:`numbanet.testing.check_activation`,
:func:`numbanet.testing.check_loss` and :func:`numbanet.gradcheck` verify.

Saving and pickling: :func:`numbanet.save` stores a custom piece's name;
``numbanet.load(path, custom={"swish": swish})`` puts it back.  Networks with
custom pieces pickle when their functions do: module-level ``def`` functions
pickle by reference; ``lambda`` functions do not pickle with :mod:`pickle`
(:class:`pickle.PicklingError`), but do with ``cloudpickle``, which Dask,
joblib's loky and multiprocessing-based tools use.
"""

import types as pytypes

import numba
import numpy as np
from numba import njit, types

from numbanet import config
from numbanet.kernels.activations import BUILTINS as _BUILTIN_ACTIVATIONS
from numbanet.kernels.losses import CODES as _BUILTIN_LOSSES
from numbanet.kernels.pieces import (
    ACTIVATION_SIGNATURE,
    FN_COST,
    FN_COST_SLOPE,
    FN_SLOPE,
    FN_VALUE,
    LOSS_SIGNATURE,
    builtin_fns,
    callback,
)

_F64 = types.float64
# Where fingerprints evaluate a piece (odd values, clear of kinks at 0 and +-1).
_PROBE_Z = (-2.7, -0.61, 0.13, 0.77, 3.1)
_PROBE_AY = ((-1.3, 0.4), (0.27, 0.9), (0.6, 0.35), (2.2, -0.7))


def _compile(what, name, role, fn, signature):
    """``fn`` compiled by Numba for ``signature``, or ValueError naming the piece and Numba's reason."""
    if not callable(fn):
        raise ValueError(f"{what} {name!r}: {role} must be a function; got {fn!r}")
    target = fn.py_func if isinstance(fn, numba.core.dispatcher.Dispatcher) else fn
    if not isinstance(target, pytypes.FunctionType):  # a builtin such as math.tanh: call it from a function
        target = _wrap(fn, len(signature.args))
    try:
        # error_model="numpy": 1/0 gives inf as in the kernels.  Any other exception raised inside a
        # compiled callback cannot propagate: Numba prints it and the callback returns 0.
        return njit(signature, cache=False, error_model="numpy")(target)
    except Exception as e:  # numba.core.errors.TypingError, UnsupportedError, ...
        reason = str(e).strip().splitlines()
        short = " ".join(line.strip() for line in reason[:6] if line.strip())
        raise ValueError(
            f"{what} {name!r}: Numba cannot compile its {role} as a function of "
            f"{'one float' if len(signature.args) == 1 else 'two floats'} returning a float: {short}"
        ) from None


def _wrap(fn, n_args):
    if n_args == 1:
        return lambda z: fn(z)
    return lambda a, y: fn(a, y)


def _check_name(what, name, builtins):
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a custom {what} needs a name that is an identifier (like 'swish'); got {name!r}")
    if name in builtins:
        raise ValueError(f"{name!r} is a built-in {what} of numbanet; give the custom {what} another name")
    if name in _BUILTIN_ACTIVATIONS or name in _BUILTIN_LOSSES:  # a saved model names both kinds in one list
        raise ValueError(
            f"{name!r} is the name of a built-in activation or loss of numbanet; give the custom {what} another name"
        )


class Activation:
    """A custom activation: σ(z) and σ'(z) as scalar functions.

    Parameters
    ----------
    name : str
        An identifier, not the name of a built-in activation; saved with the
        network and used by ``numbanet.load(path, custom=...)``.
    function : callable ``float -> float``
        σ(z), compilable by Numba (``math`` functions, arithmetic, branches).
    derivative : callable ``float -> float``
        σ'(z).
    init : {"glorot", "he"}, default "glorot"
        Initialisation of layers with this activation: Glorot uniform (as for
        sigmoid and tanh) or He normal (as for ReLU-like units).

    Raises
    ------
    ValueError
        For a name that is not an identifier or is a built-in's, and for a
        function Numba cannot compile for a float argument and a float result
        (the message names the activation and gives Numba's reason).

    Notes
    -----
    Layers with a custom activation keep their pre-activations during
    training, so σ' is evaluated at z.
    """

    def __init__(self, name, function, derivative, init="glorot"):
        _check_name("activation", name, _BUILTIN_ACTIVATIONS)
        if init not in ("glorot", "he"):
            raise ValueError(f"activation {name!r}: init must be 'glorot' or 'he'; got {init!r}")
        self.name = name
        self.function = function
        self.derivative = derivative
        self.init = init
        self._compiled = (
            _compile("activation", name, "function", function, _F64(_F64)),
            _compile("activation", name, "derivative", derivative, _F64(_F64)),
        )

    def fingerprint(self):
        """Return σ and σ' at a few fixed points (saved with a model: ``load`` tells a different piece of that name)."""
        f, d = self._compiled
        return np.array([g(z) for g in (f, d) for z in _PROBE_Z], dtype=np.float64)

    def __reduce__(self):
        return (Activation, (self.name, self.function, self.derivative, self.init))

    def __repr__(self):
        return f"Activation({self.name!r})"

    def __copy__(self):
        return self  # immutable: copies (scikit-learn's clone deep-copies parameters) need not recompile

    def __deepcopy__(self, memo):
        return self


class Loss:
    """A custom loss: a per-output cost c(a, y), summed over outputs, and ∂c/∂a.

    Parameters
    ----------
    name : str
        An identifier, not the name of a built-in loss.
    cost : callable ``(float, float) -> float``
        c(a, y) of one output ``a`` and its target ``y``.
    derivative : callable ``(float, float) -> float``
        ∂c/∂a.

    Raises
    ------
    ValueError
        As for :class:`Activation`.

    Notes
    -----
    A custom loss pairs with any output activation: the output delta is
    ∂c/∂a ⊙ σ'(z) (for softmax, its Jacobian times ∂c/∂a).  Targets may be any
    finite numbers.
    """

    def __init__(self, name, cost, derivative):
        _check_name("loss", name, _BUILTIN_LOSSES)
        self.name = name
        self.cost = cost
        self.derivative = derivative
        sig = _F64(_F64, _F64)
        c = _compile("loss", name, "cost", cost, sig)
        d = _compile("loss", name, "derivative", derivative, sig)
        self._compiled = (c, d)
        self._callbacks = (callback(LOSS_SIGNATURE, c), callback(LOSS_SIGNATURE, d))

    def fingerprint(self):
        """Return c and ∂c/∂a at a few fixed points (see :meth:`Activation.fingerprint`)."""
        c, d = self._compiled
        return np.array([g(a, y) for g in (c, d) for a, y in _PROBE_AY], dtype=np.float64)

    def __reduce__(self):
        return (Loss, (self.name, self.cost, self.derivative))

    def __repr__(self):
        return f"Loss({self.name!r})"

    def __copy__(self):
        return self  # immutable: copies (scikit-learn's clone deep-copies parameters) need not recompile

    def __deepcopy__(self, memo):
        return self


def _dispatch(functions):
    """One ``(k, z) -> f_k(z)`` function over the compiled scalar ``functions``: a chain of tests of k."""
    fn = _first(functions[0])
    for index, g in enumerate(functions[1:], start=1):
        fn = _chain(fn, g, index)
    return fn


def _first(f):
    def first(k, z):
        return f(z)

    return njit(first)


def _chain(prev, g, index):
    def step(k, z):
        return g(z) if k == index else prev(k, z)

    return njit(step)


_CACHE = {}


def network_fns(activations, loss):
    """Return the callback addresses of a network's custom pieces, as the kernels take them.

    Parameters
    ----------
    activations : sequence of Activation
        The network's distinct custom activations, in the order of their
        index ``k`` (empty for none).
    loss : Loss or None
        The network's custom loss.

    Returns
    -------
    fns : tuple of 4 ints
        Addresses (see :mod:`numbanet.kernels.pieces`); zeros where there is
        no custom piece.
    owners : tuple
        The compiled callbacks; keep them alive as long as ``fns`` is used.
        Memoised: networks with the same custom pieces share them.
    """
    fns = list(builtin_fns())
    if not activations and loss is None:
        return tuple(fns), ()
    key = (tuple(id(a) for a in activations), id(loss) if loss is not None else None)
    hit = _CACHE.get(key)
    if hit is None or hit[0] != (tuple(activations), loss):
        owners = ()
        if activations:
            owners = (
                callback(ACTIVATION_SIGNATURE, _dispatch([a._compiled[0] for a in activations])),
                callback(ACTIVATION_SIGNATURE, _dispatch([a._compiled[1] for a in activations])),
            )
        hit = ((tuple(activations), loss), owners)
        _CACHE[key] = hit
        while len(_CACHE) > config.CUSTOM_CACHE_SIZE:
            del _CACHE[next(iter(_CACHE))]
    owners = hit[1]
    if activations:
        fns[FN_VALUE], fns[FN_SLOPE] = owners[0].address, owners[1].address
    if loss is not None:
        fns[FN_COST], fns[FN_COST_SLOPE] = loss._callbacks[0].address, loss._callbacks[1].address
        owners = owners + loss._callbacks
    return tuple(fns), owners
