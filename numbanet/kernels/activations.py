r"""Activations: one registry entry each, from which every loop, table and list follows.

Every built-in activation is one entry in :data:`BUILTINS`, written next to
its two scalar functions: ``name(z)`` is σ(z) and ``name_slope(z, a)`` is
σ'(z), given both z and ``a = σ(z)`` so that each derivative is written in
its cheapest stable form (``a (1 - a)`` for the sigmoid, ``Φ(z) + z φ(z)``
for GELU).  The entry (:class:`Builtin`) also says how the layer is
initialised, whether gradient checks must avoid its kink, its PyTorch module
and its ONNX recipe.  Everything else is derived from the registry:

* the batch kernels :func:`bias_activate` and :func:`backprop_inplace` run
  one loop per activation, each calling that activation's σ or σ' by name,
  so every loop is inlined and vectorised as if written out by hand (a loop
  that branches on the code inside is neither); these loops, and the scalar dispatch on the code
  (:func:`builtin_value`, :func:`builtin_slope`), are generated from the
  registry at import, one ``if code == ...`` branch per entry
  (:func:`_generate`);
* :func:`needs_z` reads whether each σ' uses z;
* the NumPy reference (:mod:`numbanet.reference`), the ONNX and PyTorch
  export (:mod:`numbanet.export`) and the test lists read :data:`BUILTINS`.

The generated functions are module-level Numba functions of this file, so
Numba caches them and later processes load them like any other kernel.

Adding a built-in activation: write its pair and its entry (:func:`_builtin`)
in this file -- nothing else.

A derivative that needs z, not only a (GELU, SiLU, custom activations; see
:func:`needs_z`), makes the training loop keep that layer's pre-activations.

Custom activations (:class:`numbanet.Activation`) have the code ``CUSTOM``:
their σ and σ' are compiled Numba C callbacks whose addresses the kernels
receive in the tuple of integers ``fns`` (:mod:`numbanet.kernels.pieces`),
called with ``k``, the layer's index among the network's custom activations.
Since that tuple has one type whatever the callbacks, the kernels are
compiled once, cached, and shared by every custom activation.

ONNX recipes.  An entry's ``onnx`` is a function ``recipe(o, z)`` returning
the name of the graph value σ(z), built with the emitter ``o`` that
:mod:`numbanet.export` passes: ``o.op(op_type, *inputs, **attributes)``
adds a node and returns its output's name, ``o.const(value)`` a constant in
the graph's precision, ``o.erf(x)`` erf in that precision, ``o.f64`` says
whether the graph is float64 and ``o.opset`` is its opset.  onnxruntime has
no float64 kernels for several activation operators, so recipes compose the
float64 case from elementary operators.
"""

import dis
import math

import numpy as np

from numbanet._jit import jit, jit_inline
from numbanet.kernels.pieces import FN_SLOPE, FN_VALUE, activation_fn

IDENTITY = 0
SIGMOID = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4
SOFTMAX = 5
ELU = 6
GELU = 7
SILU = 8
SOFTPLUS = 9
CUSTOM = 10
MISH = 11
EXP = 12

#: Slope of ``leaky_relu`` for negative inputs (PyTorch's default).
LEAKY_SLOPE = 0.01

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _reads_z(fn):
    """Whether the scalar Python function ``fn`` reads its argument ``z``."""
    for ins in dis.get_instructions(fn):
        if ins.opname.startswith("LOAD_FAST"):
            names = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
            if "z" in names:
                return True
    return False


class Builtin:
    """A built-in activation: its pair, and what the rest of numbanet derives from it.

    Attributes
    ----------
    name : str
    code : int
        Its code in the kernels and in :data:`CODES`; never changes once given.
    value, slope : Numba functions or None
        σ(z) and σ'(z, a); None for softmax, which acts on whole rows.
    init : {"he", "glorot"}
        Initialisation of a layer with this activation: He normal for
        ReLU-like units, Glorot uniform otherwise.
    kink : bool
        σ or σ' changes formula at z = 0: a finite difference straddling it
        measures an average of two slopes (relu, leaky_relu) or is only
        first-order accurate (elu, whose σ'' jumps), so gradient checks do not
        compare such entries.
    output_only : bool
        Allowed on the output layer only (softmax, exp).
    needs_z : bool
        σ' reads z, not only a: read from the slope's code, never declared.
    torch : callable or None
        ``torch(nn)`` returns the equivalent ``torch.nn`` module; None for
        identity (no module).
    onnx : callable
        ``onnx(o, z)`` emits σ(z) in an ONNX graph (see the module notes).
    """

    def __init__(self, name, code, value, slope, **options):
        self.name = name
        self.code = code
        self.value = value
        self.slope = slope
        self.init = options.pop("init", "glorot")
        self.kink = options.pop("kink", False)
        self.output_only = options.pop("output_only", False)
        self.torch = options.pop("torch")
        self.onnx = options.pop("onnx")
        if options:
            raise TypeError(f"unknown options {sorted(options)}")
        self.needs_z = slope is not None and _reads_z(slope.py_func)


#: The built-in activations by name, in the order they are registered: the one list every other module reads.
BUILTINS = {}


def _builtin(name, code, value, slope, **options):
    """Register the built-in activation ``name`` (the options are :class:`Builtin`'s attributes)."""
    if name in BUILTINS or code in (b.code for b in BUILTINS.values()) or code == CUSTOM:
        raise ValueError(f"activation {name!r} or its code {code} is taken")
    BUILTINS[name] = Builtin(name, code, value, slope, **options)


# --- the pairs and their entries ---------------------------------------------------------


@jit_inline
def identity(z):
    r""":math:`\sigma(z) = z`."""
    return z


@jit_inline
def identity_slope(z, a):
    r""":math:`\sigma'(z) = 1`."""
    return 1.0


_builtin("identity", IDENTITY, identity, identity_slope, torch=None, onnx=lambda o, z: z)


@jit_inline
def sigmoid(z):
    r""":math:`\sigma(z) = 1 / (1 + e^{-z})`, as :math:`e^z / (1 + e^z)` for z < 0 so exp never overflows."""
    if z >= 0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@jit_inline
def sigmoid_slope(z, a):
    r""":math:`\sigma'(z) = a (1 - a)`."""
    return a * (1.0 - a)


_builtin(
    "sigmoid", SIGMOID, sigmoid, sigmoid_slope, torch=lambda nn: nn.Sigmoid(), onnx=lambda o, z: o.op("Sigmoid", z)
)


@jit_inline
def tanh(z):
    r""":math:`\tanh z`."""
    return np.tanh(z)


@jit_inline
def tanh_slope(z, a):
    r""":math:`\tanh'(z) = 1 - a^2`."""
    return 1.0 - a * a


_builtin("tanh", TANH, tanh, tanh_slope, torch=lambda nn: nn.Tanh(), onnx=lambda o, z: o.op("Tanh", z))


@jit_inline
def relu(z):
    r""":math:`\max(z, 0)`."""
    return z if z > 0 else 0.0


@jit_inline
def relu_slope(z, a):
    """1 where ``a > 0`` (exactly where z > 0), else 0 (0 at the kink, as PyTorch)."""
    return 1.0 if a > 0 else 0.0


_builtin(
    "relu", RELU, relu, relu_slope, init="he", kink=True, torch=lambda nn: nn.ReLU(), onnx=lambda o, z: o.op("Relu", z)
)


@jit_inline
def leaky_relu(z):
    r""":math:`z` for z > 0, else ``LEAKY_SLOPE`` · z."""
    return z if z > 0 else LEAKY_SLOPE * z


@jit_inline
def leaky_relu_slope(z, a):
    """1 where ``a > 0``, else ``LEAKY_SLOPE``."""
    return 1.0 if a > 0 else LEAKY_SLOPE


def _onnx_leaky_relu(o, z):
    """``LeakyRelu`` in float32; max(z, 0.01 z) in float64, as the operator's slope attribute is a float32."""
    if not o.f64:
        return o.op("LeakyRelu", z, alpha=LEAKY_SLOPE)
    return o.op("Max", z, o.op("Mul", z, o.const(LEAKY_SLOPE)))


_builtin(
    "leaky_relu",
    LEAKY_RELU,
    leaky_relu,
    leaky_relu_slope,
    init="he",
    kink=True,
    torch=lambda nn: nn.LeakyReLU(LEAKY_SLOPE),
    onnx=_onnx_leaky_relu,
)
_builtin(
    "softmax",
    SOFTMAX,
    None,  # acts on whole rows: _softmax_rows, and its own Jacobian product in backprop_inplace
    None,
    output_only=True,
    torch=lambda nn: nn.Softmax(dim=1),
    onnx=lambda o, z: o.op("Softmax", z, axis=1),
)


@jit_inline
def elu(z):
    r""":math:`z` for z > 0, else :math:`e^z - 1` (α = 1, PyTorch's default)."""
    return z if z > 0 else np.expm1(z)


@jit_inline
def elu_slope(z, a):
    r"""1 where ``a > 0``, else :math:`e^z = a + 1`."""
    return 1.0 if a > 0 else a + 1.0


def _onnx_elu(o, z):
    """``Elu`` in float32; z > 0 ? z : exp(min(z, 0)) - 1 in float64 (onnxruntime has no double Elu)."""
    if not o.f64:
        return o.op("Elu", z, alpha=1.0)
    neg = o.op("Sub", o.op("Exp", o.op("Min", z, o.const(0.0))), o.const(1.0))
    return o.op("Where", o.op("Greater", z, o.const(0.0)), z, neg)


_builtin("elu", ELU, elu, elu_slope, init="he", kink=True, torch=lambda nn: nn.ELU(alpha=1.0), onnx=_onnx_elu)


@jit_inline
def gelu(z):
    r""":math:`z \Phi(z) = \tfrac12 z (1 + \operatorname{erf}(z / \sqrt 2))` (exact, PyTorch's default)."""
    return 0.5 * z * (1.0 + math.erf(z * _INV_SQRT2))


@jit_inline
def gelu_slope(z, a):
    r""":math:`\Phi(z) + z \varphi(z)`, :math:`\varphi(z) = e^{-z^2/2} / \sqrt{2\pi}`."""
    return 0.5 * (1.0 + math.erf(z * _INV_SQRT2)) + z * np.exp(-0.5 * z * z) * _INV_SQRT_2PI


def _onnx_gelu(o, z):
    """``Gelu`` in float32 from opset 20; else 0.5 z (1 + erf(z / sqrt 2))."""
    if not o.f64 and o.opset >= 20:
        return o.op("Gelu", z)
    erf = o.erf(o.op("Mul", z, o.const(_INV_SQRT2)))
    return o.op("Mul", o.op("Mul", z, o.const(0.5)), o.op("Add", o.const(1.0), erf))


_builtin("gelu", GELU, gelu, gelu_slope, init="he", torch=lambda nn: nn.GELU(approximate="none"), onnx=_onnx_gelu)


@jit_inline
def silu(z):
    r""":math:`z \, s(z)` with the logistic :math:`s` (also called swish)."""
    return z * sigmoid(z)


@jit_inline
def silu_slope(z, a):
    r""":math:`s(z) (1 + z (1 - s(z)))`."""
    s = sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def _onnx_silu(o, z):
    """Emit z / (1 + exp(-z)).

    Not z Sigmoid(z): onnxruntime's float32 Sigmoid is accurate to about 1e-7 absolute, not relative, which
    the product would multiply by |z| (1.4e-6 at z = -17).
    """
    return o.op("Div", z, o.op("Add", o.const(1.0), o.op("Exp", o.op("Neg", z))))


_builtin("silu", SILU, silu, silu_slope, init="he", torch=lambda nn: nn.SiLU(), onnx=_onnx_silu)


@jit_inline
def softplus(z):
    r""":math:`\log(1 + e^z)`, as :math:`\max(z, 0) + \log(1 + e^{-|z|})` so exp never overflows."""
    return (z if z > 0 else 0.0) + np.log1p(np.exp(-abs(z)))


@jit_inline
def softplus_slope(z, a):
    r""":math:`s(z) = 1 - e^{-a}`, computed as ``-expm1(-a)`` (exact for tiny a)."""
    return -np.expm1(-a)


def _onnx_softplus(o, z):
    """``Softplus`` in float32; max(z, 0) + log(1 + exp(-|z|)) in float64 (onnxruntime has no double Softplus)."""
    if not o.f64:
        return o.op("Softplus", z)
    tail = o.op("Log", o.op("Add", o.const(1.0), o.op("Exp", o.op("Neg", o.op("Abs", z)))))
    return o.op("Add", o.op("Relu", z), tail)


_builtin(
    "softplus",
    SOFTPLUS,
    softplus,
    softplus_slope,
    # torch's Softplus returns x itself above threshold; at 40 that is exact in double precision too
    torch=lambda nn: nn.Softplus(beta=1.0, threshold=40.0),
    onnx=_onnx_softplus,
)


@jit_inline
def mish(z):
    r""":math:`z \tanh(\operatorname{softplus} z)`, with the stable :func:`softplus`."""
    return z * np.tanh(softplus(z))


@jit_inline
def mish_slope(z, a):
    r""":math:`t + z (1 - t^2) s(z)`, :math:`t = \tanh(\operatorname{softplus} z)`, :math:`s` the logistic."""
    t = np.tanh(softplus(z))
    return t + z * (1.0 - t * t) * sigmoid(z)


def _onnx_mish(o, z):
    """``Mish`` in float32 from opset 18; else z tanh(softplus z), with the float64 softplus composed."""
    if not o.f64 and o.opset >= 18:
        return o.op("Mish", z)
    return o.op("Mul", z, o.op("Tanh", _onnx_softplus(o, z)))


_builtin("mish", MISH, mish, mish_slope, init="he", torch=lambda nn: nn.Mish(), onnx=_onnx_mish)


@jit_inline
def exp(z):
    r""":math:`e^z`: the output of a Poisson regression (the mean of a count), as scikit-learn's ``"exp"``."""
    return np.exp(z)


@jit_inline
def exp_slope(z, a):
    r""":math:`\sigma'(z) = a`."""
    return a


_TORCH_EXP = []  # the torch module class, made on first use: torch is optional and has no Exp module


def _torch_exp(nn):
    """Return an ``nn.Module`` computing ``exp`` (its class is ``numbanet.kernels.activations.Exp``)."""
    if not _TORCH_EXP:

        class Exp(nn.Module):
            """exp(x), element-wise."""

            def forward(self, x):
                return x.exp()

        Exp.__module__, Exp.__qualname__ = __name__, "Exp"
        _TORCH_EXP.append(Exp)
    return _TORCH_EXP[0]()


def __getattr__(name):
    """``Exp``, the torch module class, for pickle (made on first use, importing torch)."""
    if name == "Exp":
        from torch import nn

        return type(_torch_exp(nn))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Output only, as scikit-learn's: a hidden exp layer overflows easily and has no use numbanet knows of.
_builtin("exp", EXP, exp, exp_slope, output_only=True, torch=_torch_exp, onnx=lambda o, z: o.op("Exp", z))


#: Activation names and their codes.
CODES = {name: b.code for name, b in BUILTINS.items()}


# --- what the registry makes: the loops and the dispatch on the code ---------------------


def _generate(head, branch, end="", first="if", cases=None, where=None):
    """Define a Numba function with one branch per built-in, on its code (by default, per activation here).

    Parameters
    ----------
    head : str
        The function's source up to its branches: its ``def`` line, its
        docstring and any set-up or earlier branches, at their indentation.
    branch : str
        The body of the branch of one built-in (unindented), under
        ``if code == <its code>:``; ``{value}`` and ``{slope}`` in it name
        that built-in's σ and σ'.  So each branch calls its own scalar
        function, a compile-time constant that Numba inlines, and each loop
        is vectorised as if written out by hand.
    end : str, optional
        The function's last lines (unindented), for any other code.
    first : {"if", "elif"}
        ``elif`` where ``head`` ends in a branch that the built-ins' continue.
    cases : list of (code, name, fields), optional
        The branches, for another registry: ``branch`` formatted with the
        dict ``fields``, under ``if code == <code>:  # <name>``; default one
        per element-wise activation, with ``value`` and ``slope``.
    where : dict, optional
        The globals of the module to define the function in (its
        ``__file__`` is the function's file); default this module's.

    Returns
    -------
    numba dispatcher
        The function, compiled with :func:`numbanet._jit.jit`.

    Notes
    -----
    The source is compiled as part of the defining module's file (its
    ``co_filename``) into that module's namespace: a module-level function
    like any other, which Numba caches under its name, keyed by its
    bytecode, and later processes load.  A loop factory closing over the
    scalar functions would not do: Numba keys a closure's cache entries by
    its pickled cells, and a Numba function pickles with a random id, so the
    entry would never be found again.  Nor would one small Numba function per
    activation and loop: Numba compiles each with a fixed cost, and these few
    functions compile in about the time the hand-written loops did.
    """
    if cases is None:
        cases = [(b.code, b.name, {"value": b.value.__name__, "slope": b.slope.__name__}) for b in _ELEMENTWISE]
    where = globals() if where is None else where
    lines = head.splitlines()
    for i, (code, name, fields) in enumerate(cases):
        lines.append(f"    {first if i == 0 else 'elif'} code == {code}:  # {name}")
        lines += ["        " + line for line in branch.format(**fields).splitlines()]
    lines += ["    " + line for line in end.splitlines()]
    namespace = {}
    exec(compile("\n".join(lines) + "\n", where["__file__"], "exec"), where, namespace)
    (fn,) = namespace.values()
    return jit(fn)


_ELEMENTWISE = [b for b in BUILTINS.values() if b.value is not None]
for _b in _ELEMENTWISE:  # the generated code names each pair by its functions' names in this module
    assert globals()[_b.value.__name__] is _b.value and globals()[_b.slope.__name__] is _b.slope

#: ``_NEEDS_Z[code]``: whether σ' of the activation ``code`` reads z (custom activations: always).
_NEEDS_Z = np.zeros(max(CUSTOM, *CODES.values()) + 1, dtype=np.bool_)
_NEEDS_Z[[b.code for b in BUILTINS.values() if b.needs_z] + [CUSTOM]] = True


@jit_inline
def needs_z(code):
    """Whether σ'(z) needs z itself, not only ``a = σ(z)``: then the pre-activations are kept."""
    return code < _NEEDS_Z.size and _NEEDS_Z[code]


# --- scalar dispatch ----------------------------------------------------------------------

builtin_value = _generate(
    '''def builtin_value(code, z):
    """σ(z) of the built-in activation ``code`` (softmax excluded: it acts on whole rows)."""''',
    "return {value}(z)",
    "return z",
)

builtin_slope = _generate(
    '''def builtin_slope(code, z, a):
    """σ'(z) of the built-in activation ``code``, given z and ``a = σ(z)`` (softmax excluded)."""''',
    "return {slope}(z, a)",
    "return 1.0",
)


@jit
def value(code, z, k, fns):
    """σ(z) of activation ``code``, custom ones included (for one value; the batch kernels loop themselves)."""
    if code == CUSTOM:
        return activation_fn(fns[FN_VALUE])(k, float(z))
    return builtin_value(code, z)


@jit
def slope(code, z, a, k, fns):
    """σ'(z) of activation ``code``, custom ones included, given z and ``a = σ(z)``."""
    if code == CUSTOM:
        return activation_fn(fns[FN_SLOPE])(k, float(z))
    return builtin_slope(code, z, a)


# --- batch kernels ----------------------------------------------------------------------


@jit
def _softmax_rows(Z, out):
    n, m = Z.shape
    for i in range(n):
        zmax = Z[i, 0]
        for j in range(1, m):
            if Z[i, j] > zmax:
                zmax = Z[i, j]
        total = 0.0
        for j in range(m):
            e = np.exp(Z[i, j] - zmax)
            out[i, j] = e
            total += e
        inv = 1.0 / total
        for j in range(m):
            out[i, j] *= inv


@jit
def _apply_custom(Z, b, k, fns):
    """:func:`bias_activate` for the ``k``-th custom activation."""
    f = activation_fn(fns[FN_VALUE])
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            Z[i, j] = f(k, float(Z[i, j] + b[j]))


@jit
def _backprop_custom(D, Z, k, fns):
    """:func:`backprop_inplace` for the ``k``-th custom activation."""
    f = activation_fn(fns[FN_SLOPE])
    for i in range(D.shape[0]):
        for j in range(D.shape[1]):
            D[i, j] *= f(k, float(Z[i, j]))


@jit
def activate(Z, code, k, fns, out):
    r"""Apply activation ``code`` to every row of ``Z``: ``out = σ(Z)``.

    Parameters
    ----------
    Z : array of shape (n_samples, n_units), float32 or float64
        Pre-activations, one sample per row.
    code : int
        Activation code.  ``SOFTMAX`` acts on each row:
        :math:`a_j = e^{z_j - m} / \sum_k e^{z_k - m}` with :math:`m = \max_k z_k`,
        so ``exp`` never overflows.
    k : int
        The layer's index among the network's custom activations (``CUSTOM`` only).
    fns : tuple of 4 ints
        Addresses of the custom callbacks (:mod:`numbanet.kernels.pieces`).
    out : array of shape (n_samples, n_units), same dtype
        Filled with the activations.  May be ``Z`` itself.
    """
    if code == SOFTMAX:
        _softmax_rows(Z, out)
        return
    if out is not Z:
        for i in range(Z.shape[0]):  # a loop: slice assignment compiles a formatted error message
            for j in range(Z.shape[1]):
                out[i, j] = Z[i, j]
    bias_activate(out, np.zeros(Z.shape[1], Z.dtype), code, k, fns)


bias_activate = _generate(
    '''def bias_activate(Z, b, code, k, fns):
    """Fused bias and activation, in place: ``Z <- σ(Z + b)``, one pass over ``Z``.

    One loop per activation (generated from the registry, one branch per
    entry), each calling its scalar σ, over one array read and written: LLVM
    inlines and vectorises such a loop.  A loop over a runtime choice of
    activations it does not, nor one reading one array and writing another
    that may alias it.

    Parameters
    ----------
    Z : array of shape (n_samples, n_units)
        On entry ``A W^T``; on exit the layer's activations.
    b : array of shape (n_units,)
        Bias, added to every row.
    code, k, fns
        As for :func:`activate`.
    """
    n, m = Z.shape
    if code == SOFTMAX:
        for i in range(n):
            for j in range(m):
                Z[i, j] += b[j]
        _softmax_rows(Z, Z)
    elif code == CUSTOM:
        _apply_custom(Z, b, k, fns)''',
    """for i in range(n):
    for j in range(m):
        Z[i, j] = {value}(Z[i, j] + b[j])""",
    first="elif",
)

backprop_inplace = _generate(
    r'''def backprop_inplace(D, A, Z, code, k, fns, a_scale):
    r"""Chain rule through the activation, in place: ``D <- ∂c/∂Z`` given ``D = ∂c/∂A``.

    For element-wise activations this is :math:`D \odot \sigma'(Z)`, one loop
    per activation (generated from the registry, as in
    :func:`bias_activate`); for softmax the Jacobian-vector product of each
    row, :math:`\delta_j = a_j (g_j - \sum_k g_k a_k)`.

    Parameters
    ----------
    D : array of shape (n_samples, n_units)
        On entry the gradient with respect to the activations, on exit the
        gradient with respect to the pre-activations.
    A : array of shape (n_samples, n_units)
        Activations of the layer, times ``1 / a_scale``.
    Z : array of shape (n_samples, n_units)
        Pre-activations of the layer; read only where :func:`needs_z` (pass
        ``A`` otherwise).
    code, k, fns
        As for :func:`activate`.
    a_scale : float
        ``A * a_scale`` is σ(Z): 1, or ``1 - p`` for a layer whose stored
        activations carry inverted dropout's ``1 / (1 - p)``.
    """
    n, m = A.shape
    a_scale = A.dtype.type(a_scale)  # keep the loops in the array's precision
    if code == IDENTITY:
        return
    if code == SOFTMAX:
        for i in range(n):
            s = 0.0
            for j in range(m):
                s += D[i, j] * A[i, j]
            for j in range(m):
                D[i, j] = A[i, j] * (D[i, j] - s)
    elif code == CUSTOM:
        _backprop_custom(D, Z, k, fns)''',
    """for i in range(n):
    for j in range(m):
        D[i, j] *= {slope}(Z[i, j], A[i, j] * a_scale)""",
    first="elif",
)
