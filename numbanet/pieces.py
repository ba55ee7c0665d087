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
kernels (and NaN stops training with :class:`numbanet.TrainingDivergedError`).
Any other exception (``raise ValueError(...)`` in the function) stops the
``fit``, ``predict``, ``loss`` or ``gradients`` call that met it with one
:class:`ValueError` naming the piece, the function (or derivative) and the
input, the Python exception chained; the network is left as it was before
the call.  (A compiled callback cannot pass an exception on: each function
runs inside a guard that records the input, in a row of the calling
thread's own, and returns NaN; Python raises once the kernel returns, for
the failures of its own thread only.)  A function that calls itself, directly or
through other functions it names, is refused when the piece is made: deep
recursion in compiled code overflows the stack and kills the process.

Compiled once: a function is compiled once per process, whatever piece,
network or unpickled copy uses it -- "the same function" is the same code
with the same constants, globals and closure values -- so building networks
with custom pieces in a loop, or unpickling them (joblib, Dask), takes memory
for each distinct function only.  And on disk: the compiled guards and
callbacks are cached like the kernels (:mod:`numbanet.piece_code`), lambdas
and notebook functions included, so another process -- a joblib or Dask
worker, a restarted service -- loads them instead of compiling.  A function
that names an array or another object (not a number, a string, a module or
another function) is compiled in memory, once per process.

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
from numba import types

from numbanet.exceptions import CustomPieceError
from numbanet.kernels.activations import BUILTINS as _BUILTIN_ACTIVATIONS
from numbanet.kernels.failures import take_failure
from numbanet.kernels.losses import CODES as _BUILTIN_LOSSES
from numbanet.kernels.pieces import FN_COST, FN_COST_SLOPE, FN_SLOPE, FN_VALUE, builtin_fns
from numbanet.piece_code import activation_callback, guard, loss_callback

_F64 = types.float64
# Where files of format 1 written before numbanet sampled densely hold a piece's values (odd values, clear
# of kinks at 0 and +-1); load compares a piece against whichever points its file holds.
_OLD_PROBE_Z = (-2.7, -0.61, 0.13, 0.77, 3.1)
_OLD_PROBE_AY = ((-1.3, 0.4), (0.27, 0.9), (0.6, 0.35), (2.2, -0.7))


def _probe_points():
    """Where fingerprints evaluate a piece: dense on [-10, 10], then out to +-1000; off the usual kinks."""
    near = np.linspace(-10.0, 10.0, 161) + 0.0137
    far = np.geomspace(10.3, 1000.0, 24)
    return np.concatenate([-far[::-1], near, far])


#: The inputs z of an activation's fingerprint (σ and σ' at each).
PROBE_Z = tuple(float(v) for v in _probe_points())
#: The (a, y) pairs of a loss's fingerprint: outputs a over PROBE_Z's spread and (0, 1), targets y alike.
PROBE_AY = [
    (float(a), y)
    for a in np.concatenate([PROBE_Z[::8], np.linspace(0.0137, 0.9863, 13)])
    for y in (-3.1, -0.45, 0.0, 0.3, 0.5, 0.77, 1.0, 2.6)
]


def _compile(what, name, role, fn, signature):
    """Return the :class:`numbanet.piece_code.Guard` of ``fn`` for ``signature``, or raise ValueError naming the piece.

    The guard returns NaN where ``fn`` raises, and records the calling thread's
    input (:mod:`numbanet.kernels.failures`) under the guard's ``fid``.
    """
    if not callable(fn):
        raise ValueError(f"{what} {name!r}: {role} must be a function; got {fn!r}")
    target = fn.py_func if isinstance(fn, numba.core.dispatcher.Dispatcher) else fn
    if not isinstance(target, pytypes.FunctionType):  # a builtin such as math.tanh: call it from a function
        target = _wrap(fn, len(signature.args))
    if _calls_itself(target):
        raise ValueError(
            f"{what} {name!r}: its {role} calls itself (recursion); numbanet refuses recursive functions, "
            "which can overflow the stack of compiled code and kill the process. Write it as a loop"
        )
    try:
        return guard(target, signature, _function_key(target))
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


def _python_function(value):
    """Return the Python function behind ``value`` (a function or a Numba dispatcher), else None."""
    if isinstance(value, numba.core.dispatcher.Dispatcher):
        value = value.py_func
    return value if isinstance(value, pytypes.FunctionType) else None


def _named(fn):
    """Return the values ``fn``'s code names: its globals (nested code included) and its closure cells."""
    codes, names = [fn.__code__], set()
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if isinstance(c, pytypes.CodeType))
    values = [fn.__globals__[n] for n in sorted(names) if n in fn.__globals__]
    for cell in fn.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    return values


def _calls_itself(fn):
    """Whether ``fn`` calls itself, or calls a function that does (a cycle among the functions named)."""
    done, path = set(), set()

    def visit(f, depth):
        if id(f) in path or depth > 64:
            return True
        if id(f) in done:
            return False
        path.add(id(f))
        found = any(visit(g, depth + 1) for g in map(_python_function, _named(f)) if g is not None)
        path.discard(id(f))
        done.add(id(f))
        return found

    return visit(fn, 0)


_PLAIN = (bool, int, float, complex, str, bytes, type(None))


def _function_key(fn, depth=0):
    """Return what ``fn`` computes as a hashable key: its code, constants, defaults and the values it names.

    Functions it names enter by their own key, modules by name, plain values by type and value;
    None (not memoised) where it names anything else (an array, an object) or nests too deep.
    """
    if depth > 8:
        return None
    parts = []
    for value in _named(fn) + list(fn.__defaults__ or ()):
        callee = _python_function(value)
        if callee is not None:
            sub = _function_key(callee, depth + 1)
            if sub is None:
                return None
            parts.append(("function", sub))
        elif isinstance(value, pytypes.ModuleType):
            parts.append(("module", value.__name__))
        elif isinstance(value, (pytypes.BuiltinFunctionType, np.ufunc)):  # math.tanh, np.exp
            parts.append(("builtin", getattr(value, "__module__", None), value.__name__))
        elif isinstance(value, _PLAIN) or isinstance(value, np.generic):
            parts.append((type(value).__name__, value.item() if isinstance(value, np.generic) else value))
        else:
            return None
    code = fn.__code__
    return (code.co_code, _consts(code), code.co_names, code.co_varnames, tuple(parts))


def _consts(code):
    return tuple(_consts(c) if isinstance(c, pytypes.CodeType) else (type(c).__name__, repr(c)) for c in code.co_consts)


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
        f, d = (
            _compile("activation", name, "function", function, _F64(_F64)),
            _compile("activation", name, "derivative", derivative, _F64(_F64)),
        )
        self._guards = (f, d)
        self._compiled = (f.compiled, d.compiled)
        self._roles = ((f.fid, "function", function), (d.fid, "derivative", derivative))

    def fingerprint(self, points=None):
        """Return σ and σ' at :data:`PROBE_Z` (saved with a model: ``load`` tells a different piece of that name).

        ``points``: other inputs z (``load`` passes those of an older file).
        """
        f, d = self._compiled
        z = PROBE_Z if points is None else points
        values = np.array([g(x) for g in (f, d) for x in z], dtype=np.float64)
        forget_failure()  # a point where the function raises gives NaN here, and no error in the next call
        return values

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
        c, d = (
            _compile("loss", name, "cost", cost, sig),
            _compile("loss", name, "derivative", derivative, sig),
        )
        self._compiled = (c.compiled, d.compiled)
        self._roles = ((c.fid, "cost", cost), (d.fid, "derivative", derivative))
        self._callbacks = (loss_callback(c), loss_callback(d))

    def fingerprint(self, points=None):
        """Return c and ∂c/∂a at :data:`PROBE_AY` (see :meth:`Activation.fingerprint`)."""
        c, d = self._compiled
        ay = PROBE_AY if points is None else points
        values = np.array([g(a, y) for g in (c, d) for a, y in ay], dtype=np.float64)
        forget_failure()
        return values

    def __reduce__(self):
        return (Loss, (self.name, self.cost, self.derivative))

    def __repr__(self):
        return f"Loss({self.name!r})"

    def __copy__(self):
        return self  # immutable: copies (scikit-learn's clone deep-copies parameters) need not recompile

    def __deepcopy__(self, memo):
        return self


def forget_failure():
    """Forget the calling thread's recorded failure (another thread's is its own to read)."""
    take_failure()


def raise_failures(pieces, call):
    """Raise :class:`~numbanet.exceptions.CustomPieceError` if one of ``pieces`` raised in the call just made.

    The calling thread's failure record is cleared (another thread's call reads its own).
    ``call`` names what stopped (``"predict"``, ``"fit"``, ...).  The message
    names the piece, its function and the input; the Python exception the function raises there is chained.
    """
    where = take_failure()  # this thread's only: a call in another thread reads its own
    if where is None:
        return
    fid, x, y = where
    failed = next(((p, role, fn) for p in pieces for f, role, fn in p._roles if f == fid), None)
    if failed is None:
        return  # a function this call does not use
    piece, role, fn = failed
    loss = isinstance(piece, Loss)
    where = f"a = {x!r}, y = {y!r}" if loss else f"z = {x!r}"
    try:
        fn(x, y) if loss else fn(x)
        cause = None
    except Exception as e:  # the function's own exception, run as Python, to chain it
        cause = e
    raise CustomPieceError(
        f"custom {'loss' if loss else 'activation'} {piece.name!r}: its {role} raised an exception at {where}"
        f"{f' ({type(cause).__name__}: {cause})' if cause is not None else ''}; {call} stopped and the network "
        "is as it was before the call"
    ) from cause


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
    owners = ()
    if activations:
        guards = tuple(g for a in activations for g in a._guards)
        owners = (activation_callback(guards[0::2]), activation_callback(guards[1::2]))
        fns[FN_VALUE], fns[FN_SLOPE] = owners[0].address, owners[1].address
    if loss is not None:
        fns[FN_COST], fns[FN_COST_SLOPE] = loss._callbacks[0].address, loss._callbacks[1].address
        owners = owners + loss._callbacks
    return tuple(fns), owners
