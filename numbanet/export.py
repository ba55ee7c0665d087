"""Export to ONNX and PyTorch, import from PyTorch.

Every function here imports its optional dependency when called, so
``import numbanet`` imports none of onnx, onnxruntime, skl2onnx, torch or
skops (``pip install 'numbanet[onnx]'`` for the ONNX tools; torch on its own).

* :func:`to_onnx` writes a :class:`numbanet.Network`, or a fitted
  :class:`numbanet.MLPClassifier` / :class:`numbanet.MLPRegressor`, as an
  ``onnx.ModelProto``: one ``Gemm`` per weighted layer followed by its
  activation.  Classifiers output ``label`` and ``probabilities`` as
  skl2onnx's classifiers do with ``zipmap=False``.
* :func:`register_skl2onnx` teaches skl2onnx the two estimators, so that
  ``skl2onnx.to_onnx(pipeline, ...)`` converts a Pipeline ending in one.
* :func:`to_torch` gives a ``torch.nn.Sequential`` of ``Linear`` and
  activation modules; :func:`from_torch` reads such a ``Sequential`` back
  into a :class:`numbanet.Network`.

Where ONNX (or onnxruntime's CPU kernels) cannot express an activation
exactly in a precision, the graph composes it from elementary operators; see
docs/export.md for the table and the measured differences.
"""

import math
import numbers

import numpy as np

from numbanet import config
from numbanet.kernels.activations import BUILTINS, LEAKY_SLOPE
from numbanet.network import Network
from numbanet.pieces import Activation

__all__ = ["to_onnx", "register_skl2onnx", "to_torch", "from_torch"]

#: The opset :func:`to_onnx` writes unless told otherwise (onnxruntime >= 1.14 runs it).
DEFAULT_OPSET = 18
#: The oldest opset :func:`to_onnx` can write (Softmax over one axis, Gather and ArgMax as used here).
MIN_OPSET = 13

_FLOAT_DTYPES = tuple(np.dtype(name) for name in config.DTYPES)

# erf(x) for 0 <= x <= _ERF_CLAMP as a Chebyshev series (evaluated by Clenshaw's recurrence): onnxruntime has
# no double-precision Erf.  Beyond the clamp, erf(x) = 1 in double precision (1 - erf(6) = 2e-17).
_ERF_CLAMP = 6.0
_ERF_DEGREE = 40
_erf_coefficients_cache = []


# ---------------------------------------------------------------------------------------------- the model


def _network_of(model, what):
    """Return ``(network, estimator or None)`` of a Network or a fitted numbanet estimator."""
    if isinstance(model, Network):
        return model, None
    estimators = _estimator_classes()
    if estimators is not None and isinstance(model, estimators):
        net = model.__dict__.get("net_")
        if net is None:
            raise ValueError(f"this {type(model).__name__} is not fitted yet; call fit before {what}")
        return net, model
    raise ValueError(
        f"{what} takes a numbanet.Network or a fitted numbanet.MLPClassifier or MLPRegressor; "
        f"got {type(model).__name__}"
    )


def _estimator_classes():
    try:
        from numbanet.estimators import MLPClassifier, MLPRegressor
    except ImportError:  # pragma: no cover - numbanet.estimators imports without scikit-learn
        return None
    return (MLPClassifier, MLPRegressor)


def _builtin_layers(net, what):
    """Return ``[(W, b, activation name), ...]``, or ValueError naming a layer with a custom activation."""
    for i, act in enumerate(net.activations):
        if isinstance(act, Activation):
            raise ValueError(
                f"layer {i + 1} has the custom activation {act.name!r}: {what} exports numbanet's built-in "
                "activations only (a numbanet.Activation is compiled Python, which it cannot translate); "
                "use a built-in activation for that layer"
            )
    return list(zip(net.weights, net.biases, net.activation_names))


# ---------------------------------------------------------------------------------------------- ONNX graphs


class _Graph:
    """Nodes and initializers of a stand-alone ONNX graph under construction."""

    def __init__(self, opset):
        self.opset = opset
        self.nodes = []
        self.initializers = []
        self._count = 0

    def fresh(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def node(self, op, inputs, out=None, **attrs):
        from onnx import helper

        out = out or self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=self.fresh(op), **attrs))
        return out

    def const(self, value, hint):
        from onnx import TensorProto, helper, numpy_helper

        name = self.fresh(hint)
        value = np.asarray(value)
        if value.dtype.kind in "US":
            self.initializers.append(
                helper.make_tensor(
                    name, TensorProto.STRING, value.shape, [s.encode() for s in value.astype(str).ravel()]
                )
            )
        else:
            self.initializers.append(numpy_helper.from_array(value, name))
        return name


class _Skl2onnxGraph:
    """The same interface over skl2onnx's scope and container, for the registered converters."""

    def __init__(self, scope, container):
        self.scope = scope
        self.container = container
        self.opset = container.target_opset

    def node(self, op, inputs, out=None, **attrs):
        out = out or self.scope.get_unique_variable_name(op.lower())
        self.container.add_node(op, list(inputs), [out], name=self.scope.get_unique_operator_name(op), **attrs)
        return out

    def const(self, value, hint):
        from onnx import TensorProto, helper

        name = self.scope.get_unique_variable_name(hint)
        value = np.asarray(value)
        if value.dtype.kind in "US":
            self.container.add_initializer(
                name, TensorProto.STRING, list(value.shape), [s.encode() for s in value.astype(str).ravel()]
            )
        else:
            self.container.add_initializer(
                name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape), value.ravel().tolist()
            )
        return name


def _forward(g, x, layers, dtype):
    """Emit every layer (``Gemm`` then its activation) from input ``x``; return the output's name."""
    a = x
    for i, (W, b, act) in enumerate(layers):
        z = g.node("Gemm", [a, g.const(W.astype(dtype), f"W{i + 1}"), g.const(b.astype(dtype), f"b{i + 1}")], transB=1)
        a = _activation(g, z, act, dtype)
    return a


class _Emitter:
    """What an activation's ONNX recipe builds with (see :mod:`numbanet.kernels.activations`)."""

    def __init__(self, g, dtype):
        self.g = g
        self.dtype = np.dtype(dtype)
        self.f64 = self.dtype == np.float64
        self.opset = g.opset

    def op(self, op_type, *inputs, **attrs):
        """Add an ``op_type`` node; return its output's name."""
        return self.g.node(op_type, inputs, **attrs)

    def const(self, value):
        """Add a constant in the graph's precision; return its name."""
        return self.g.const(np.array(value, dtype=self.dtype), "c")

    def erf(self, x):
        """Emit erf(x): ``Erf`` in float32, a Chebyshev series in float64 (onnxruntime has no double Erf)."""
        return self.op("Erf", x) if not self.f64 else _erf_double(self.g, x, self.const)


def _activation(g, z, name, dtype):
    """Emit activation ``name`` of ``z`` in ``dtype`` by its registry entry's recipe; return the result's name."""
    return BUILTINS[name].onnx(_Emitter(g, dtype), z)


def _erf_coefficients():
    """Chebyshev coefficients of erf on [0, _ERF_CLAMP] (max error about 2e-14)."""
    if not _erf_coefficients_cache:
        from numpy.polynomial import chebyshev

        half = _ERF_CLAMP / 2
        coef = chebyshev.chebinterpolate(lambda t: np.array([math.erf(half * (u + 1)) for u in t]), _ERF_DEGREE)
        _erf_coefficients_cache.append(coef)
    return _erf_coefficients_cache[0]


def _erf_double(g, x, c):
    """Emit erf(x) in double precision from elementary operators: sign(x) · P(min(|x|, 6)), P a Chebyshev series."""
    coef = _erf_coefficients()
    ax = g.node("Min", [g.node("Abs", [x]), c(_ERF_CLAMP)])
    y = g.node("Sub", [g.node("Mul", [ax, c(2.0 / _ERF_CLAMP)]), c(1.0)])  # ax mapped onto [-1, 1]
    y2 = g.node("Add", [y, y])
    # Clenshaw: b_k = c_k + 2y b_{k+1} - b_{k+2};  P = c_0 + y b_1 - b_2.
    n = len(coef) - 1
    b2 = c(coef[n])
    b1 = g.node("Add", [g.node("Mul", [y2, b2]), c(coef[n - 1])])
    for k in range(n - 2, 0, -1):
        b1, b2 = g.node("Add", [g.node("Sub", [g.node("Mul", [y2, b1]), b2]), c(coef[k])]), b1
    p = g.node("Add", [g.node("Sub", [g.node("Mul", [y, b1]), b2]), c(coef[0])])
    p = g.node("Where", [g.node("Less", [ax, c(_ERF_CLAMP)]), p, c(1.0)])
    return g.node("Mul", [g.node("Sign", [x]), p])


def _class_labels(classes):
    """Return the classes as ONNX labels (int64 or str, as skl2onnx writes them) and their kind."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "biu":
        return classes.astype(np.int64), "int64"
    if classes.dtype.kind == "f":
        if np.all(classes == np.round(classes)):
            return classes.astype(np.int64), "int64"
    elif all(isinstance(c, str) for c in classes.tolist()):
        return classes.astype(str), "string"
    elif all(isinstance(c, numbers.Integral) for c in classes.tolist()):
        return classes.astype(np.int64), "int64"
    raise ValueError(
        f"classes_ {classes!r} cannot be ONNX labels: like skl2onnx, to_onnx writes integer or string labels; "
        "fit the classifier on integer or string labels"
    )


def _classifier_head(g, p, est, label_out, proba_out, dtype, classes=None):
    """Emit ``label`` and ``probabilities`` from the output activations ``p`` of a fitted classifier.

    ``classes`` replaces ``est.classes_`` as the labels (skl2onnx's ``nocl`` option).
    """
    from onnx import TensorProto

    if est.out_activation_ == "logistic" and est.n_outputs_ > 1:  # multilabel: a 0/1 column per label
        g.node("Identity", [p], out=proba_out)
        g.node(
            "Cast",
            [g.node("Greater", [p, g.const(np.array(0.5, dtype=dtype), "half")])],
            out=label_out,
            to=TensorProto.INT64,
        )
        return
    labels, _ = _class_labels(est.classes_ if classes is None else classes)
    if est.n_outputs_ == 1:  # binary: P(classes_[1]) in one column
        g.node("Concat", [g.node("Sub", [g.const(np.array(1.0, dtype=dtype), "one"), p]), p], out=proba_out, axis=1)
        positive = g.node("Greater", [p, g.const(np.array(0.5, dtype=dtype), "half")])
        index = g.node(
            "Reshape",
            [g.node("Cast", [positive], to=TensorProto.INT64), g.const(np.array([-1], dtype=np.int64), "flat")],
        )
    else:
        g.node("Identity", [p], out=proba_out)
        index = g.node("ArgMax", [p], axis=1, keepdims=0)  # the first of equal maxima, as numpy
    g.node("Gather", [g.const(labels, "classes"), index], out=label_out, axis=0)


def _check_dtype(dtype, default):
    if dtype is None:
        return np.dtype(default)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be None, float32 or float64; got {dtype!r}") from None
    if dt not in _FLOAT_DTYPES:
        raise ValueError(f"dtype must be None, float32 or float64; got {dt}")
    return dt


def to_onnx(model, *, dtype=None, opset=None, input_name="X", name="numbanet"):
    """Export a network or a fitted estimator as an ONNX model.

    Parameters
    ----------
    model : Network, MLPClassifier or MLPRegressor
        A :class:`numbanet.Network`, or a fitted numbanet estimator.
    dtype : {None, numpy.float32, numpy.float64}
        Precision of the graph's input, weights and outputs; default the
        network's own.  onnxruntime runs both.
    opset : int, optional
        ONNX operator set, from 13 to the installed onnx's newest; default
        18.  From 20 on, float32 GELU is ONNX's ``Gelu`` operator.
    input_name : str, default "X"
        Name of the graph's input, of shape ``(N, n_features)``.
    name : str, default "numbanet"
        The graph's name.

    Returns
    -------
    onnx.ModelProto
        Its outputs, all with N rows:

        * Network: ``output``, the output activations, ``(N, n_outputs)``;
        * MLPRegressor: ``variable``, ``(N, n_outputs)``;
        * MLPClassifier: ``label`` (int64 or string, ``(N,)``; int64
          ``(N, n_labels)`` of 0/1 for multilabel) and ``probabilities``
          (``(N, n_classes)``), as :meth:`~numbanet.MLPClassifier.predict`
          and :meth:`~numbanet.MLPClassifier.predict_proba` give them --
          skl2onnx's classifier outputs without ZipMap.

    Raises
    ------
    ValueError
        For a layer with a custom :class:`numbanet.Activation` (named in the
        message), an unfitted estimator, classes that are neither integers
        nor strings, an unknown dtype or an opset out of range.
    ImportError
        When onnx is not installed.

    Notes
    -----
    Each layer is ``Gemm(A, W, b, transB=1)`` -- numbanet's ``W`` is already
    ``(n_out, n_in)`` -- and its activation.  Where onnxruntime has no
    double-precision kernel (ELU, softplus, erf for GELU) or ONNX's
    operator takes a float32 attribute (LeakyRelu's slope), float64 graphs
    compose the activation from elementary operators; see docs/export.md.

    Examples
    --------
    >>> import numpy as np, numbanet
    >>> import onnxruntime as ort
    >>> net = numbanet.Network([3, 8, 2], activations=["tanh", "softmax"], loss="cross_entropy", seed=0)
    >>> model = numbanet.to_onnx(net)
    >>> session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    >>> X = np.ones((4, 3))
    >>> bool(np.allclose(session.run(None, {"X": X})[0], net.predict(X), rtol=0, atol=1e-12))
    True
    """
    net, est = _network_of(model, "to_onnx")
    dt = _check_dtype(dtype, net.dtype)
    layers = _builtin_layers(net, "to_onnx")
    multilabel = est is not None and est.out_activation_ == "logistic" and est.n_outputs_ > 1
    if est is not None and est.out_activation_ != "identity" and not multilabel:
        _class_labels(est.classes_)  # refuse unusable labels before importing onnx
    import onnx
    from onnx import TensorProto, helper

    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        opset = min(DEFAULT_OPSET, newest)
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral) or not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"opset must be an integer from {MIN_OPSET} to {newest} (the installed onnx's newest); got {opset!r}"
        )
    if not isinstance(input_name, str) or not input_name:
        raise ValueError(f"input_name must be a non-empty string; got {input_name!r}")
    g = _Graph(int(opset))
    elem = TensorProto.DOUBLE if dt == np.float64 else TensorProto.FLOAT
    p = _forward(g, input_name, layers, dt)
    n_out = net.sizes[-1]
    if est is None or est.out_activation_ == "identity":
        out = "output" if est is None else "variable"
        g.node("Identity", [p], out=out)
        outputs = [helper.make_tensor_value_info(out, elem, ["N", n_out])]
    else:
        _classifier_head(g, p, est, "label", "probabilities", dt)
        if multilabel:
            label = helper.make_tensor_value_info("label", TensorProto.INT64, ["N", n_out])
        else:
            kind = _class_labels(est.classes_)[1]
            label = helper.make_tensor_value_info(
                "label", TensorProto.INT64 if kind == "int64" else TensorProto.STRING, ["N"]
            )
        n_cols = 2 if n_out == 1 else n_out
        outputs = [label, helper.make_tensor_value_info("probabilities", elem, ["N", n_cols])]
    graph = helper.make_graph(
        g.nodes,
        name,
        [helper.make_tensor_value_info(input_name, elem, ["N", net.sizes[0]])],
        outputs,
        initializer=g.initializers,
    )
    opsets = [helper.make_opsetid("", int(opset))]
    m = helper.make_model(
        graph, opset_imports=opsets, producer_name="numbanet", ir_version=helper.find_min_ir_version_for(opsets)
    )
    onnx.checker.check_model(m, full_check=True)
    return m


# ---------------------------------------------------------------------------------------------- skl2onnx


def _input_dtype(operator):
    from skl2onnx.common.data_types import DoubleTensorType

    return np.dtype(np.float64) if isinstance(operator.inputs[0].type, DoubleTensorType) else np.dtype(np.float32)


def _tensor_type(dtype):
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    return DoubleTensorType if dtype == np.float64 else FloatTensorType


def _shape_classifier(operator):
    from skl2onnx.common.data_types import Int64TensorType, StringTensorType
    from skl2onnx.common.utils_classifier import get_label_classes

    est = operator.raw_operator
    N = operator.inputs[0].get_first_dimension()
    n_out = est.n_outputs_
    if est.out_activation_ == "logistic" and n_out > 1:
        operator.outputs[0].type = Int64TensorType([N, n_out])
    else:
        kind = _class_labels(get_label_classes(operator.scope_inst, est))[1]
        operator.outputs[0].type = (Int64TensorType if kind == "int64" else StringTensorType)([N])
    operator.outputs[1].type = _tensor_type(_input_dtype(operator))([N, 2 if n_out == 1 else n_out])


def _shape_regressor(operator):
    N = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _tensor_type(_input_dtype(operator))([N, operator.raw_operator.n_outputs_])


def _converter_input(g, operator, dtype):
    """Return the operator's input in ``dtype`` (skl2onnx pipelines may hand over int64 features)."""
    from onnx import helper

    name = operator.inputs[0].full_name
    if _tensor_type(dtype) is not type(operator.inputs[0].type):
        name = g.node("Cast", [name], to=helper.np_dtype_to_tensor_dtype(dtype))
    return name


def _convert_classifier(scope, operator, container):
    from skl2onnx.common.utils_classifier import get_label_classes

    est = operator.raw_operator
    g = _Skl2onnxGraph(scope, container)
    dtype = _input_dtype(operator)
    p = _forward(g, _converter_input(g, operator, dtype), _builtin_layers(est.net_, "skl2onnx"), dtype)
    _classifier_head(
        g,
        p,
        est,
        operator.outputs[0].full_name,
        operator.outputs[1].full_name,
        dtype,
        classes=get_label_classes(scope, est),
    )


def _convert_regressor(scope, operator, container):
    est = operator.raw_operator
    g = _Skl2onnxGraph(scope, container)
    dtype = _input_dtype(operator)
    p = _forward(g, _converter_input(g, operator, dtype), _builtin_layers(est.net_, "skl2onnx"), dtype)
    g.node("Identity", [p], out=operator.outputs[0].full_name)


def register_skl2onnx():
    """Register converters for numbanet's estimators with skl2onnx.

    After this call, ``skl2onnx.to_onnx`` (and ``convert_sklearn``) convert
    a fitted :class:`numbanet.MLPClassifier` or :class:`numbanet.MLPRegressor`,
    alone or as a step of a Pipeline.  The graph is the one :func:`to_onnx`
    writes, in the precision of the input type (``FloatTensorType`` or
    ``DoubleTensorType``).  Classifiers take skl2onnx's ``zipmap`` option
    (pass ``options={"zipmap": False}`` for plain ``label`` and
    ``probabilities`` tensors, as :func:`to_onnx` writes them) and ``nocl``
    (labels are class indices).  Calling it again does no harm.

    Raises
    ------
    ImportError
        When skl2onnx is not installed.
    """
    from skl2onnx import update_registered_converter

    from numbanet.estimators import MLPClassifier, MLPRegressor

    update_registered_converter(
        MLPClassifier,
        "NumbanetMLPClassifier",
        _shape_classifier,
        _convert_classifier,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]},
    )
    update_registered_converter(MLPRegressor, "NumbanetMLPRegressor", _shape_regressor, _convert_regressor)


# ---------------------------------------------------------------------------------------------- PyTorch

#: The smallest Softplus threshold from_torch accepts: above it the difference e^-x is below 2.1e-9.
_MIN_SOFTPLUS_THRESHOLD = 20.0


def _torch_activation(nn, name):
    """Return the ``torch.nn`` module of the built-in activation ``name`` (its registry entry's), or None."""
    make = BUILTINS[name].torch
    return None if make is None else make(nn)


def to_torch(model):
    """Return the network as a ``torch.nn.Sequential`` of ``Linear`` and activation modules.

    Parameters
    ----------
    model : Network, MLPClassifier or MLPRegressor
        A network, or a fitted estimator (its ``net_``).

    Returns
    -------
    torch.nn.Sequential
        ``Linear(n_in, n_out)`` per layer (weights and biases copied, in the
        network's dtype) each followed by its activation module, the one
        its entry in :data:`numbanet.kernels.activations.BUILTINS` names
        (none for ``identity``): ``Sigmoid``, ``Tanh``, ``ReLU``,
        ``LeakyReLU(0.01)``, ``Softmax(dim=1)``, ``ELU(alpha=1)``, ``GELU()``
        (exact erf), ``SiLU``, ``Softplus(beta=1, threshold=40)``, ...  Its output is
        ``net.predict`` (for a classifier, the probabilities of the
        network's output units).

    Raises
    ------
    ValueError
        For a layer with a custom :class:`numbanet.Activation`.
    ImportError
        When torch is not installed.
    """
    net, _ = _network_of(model, "to_torch")
    layers = _builtin_layers(net, "to_torch")
    import torch
    from torch import nn

    tdtype = torch.float64 if net.dtype == np.float64 else torch.float32
    modules = []
    for W, b, act in layers:
        linear = nn.Linear(W.shape[1], W.shape[0], dtype=tdtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.array(W)))
            linear.bias.copy_(torch.from_numpy(np.array(b)))
        modules.append(linear)
        module = _torch_activation(nn, act)
        if module is not None:
            modules.append(module)
    return nn.Sequential(*modules)


def _from_torch_activation(nn, module, index):
    """Return numbanet's name for an activation module, or raise ValueError naming the module and its index."""

    def refuse(why):
        raise ValueError(f"module {index} of the Sequential, {module!r}, {why}")

    if type(module) is nn.LeakyReLU:
        if module.negative_slope != LEAKY_SLOPE:
            refuse(f"has negative_slope={module.negative_slope}; numbanet's leaky_relu has slope {LEAKY_SLOPE}")
        return "leaky_relu"
    if type(module) is nn.ELU:
        if module.alpha != 1.0:
            refuse(f"has alpha={module.alpha}; numbanet's elu has alpha 1")
        return "elu"
    if type(module) is nn.GELU:
        if module.approximate != "none":
            refuse(
                f"uses approximate={module.approximate!r}; numbanet's gelu is the exact erf form (approximate='none')"
            )
        return "gelu"
    if type(module) is nn.Softplus:
        if module.beta != 1 or module.threshold < _MIN_SOFTPLUS_THRESHOLD:
            refuse(
                f"has beta={module.beta}, threshold={module.threshold}; numbanet's softplus is beta=1 "
                f"(threshold {_MIN_SOFTPLUS_THRESHOLD:g} or more)"
            )
        return "softplus"
    if type(module) is nn.Softmax:
        if module.dim not in (1, -1):
            refuse(f"normalises over dim={module.dim}; numbanet's softmax is over the units (dim=1 or -1)")
        return "softmax"
    ours = {name: b.torch(nn) for name, b in BUILTINS.items() if b.torch is not None}
    for name, m in ours.items():
        if type(module) is type(m):
            if _settings(module) != _settings(m):
                refuse(f"has settings {_settings(module)}; numbanet's {name} is {m!r}")
            return name
    refuse(
        "is not a layer numbanet has: from_torch reads Linear layers, each followed by at most one of "
        f"{', '.join(repr(m) for m in ours.values())}, or Identity"
    )


def _settings(module):
    """Return a module's settings that change what it computes (not ``inplace``, not ``training``)."""
    return {k: v for k, v in vars(module).items() if not k.startswith("_") and k not in ("inplace", "training")}


def from_torch(module, loss=None, seed=None):
    """Read a ``torch.nn.Sequential`` of ``Linear`` and activation modules into a Network.

    Parameters
    ----------
    module : torch.nn.Sequential
        ``Linear`` layers, each followed by at most one supported activation
        (no activation: ``identity``); ``nn.Identity`` modules are skipped.
        Supported: each built-in activation's module (:func:`to_torch`'s),
        ``Softplus(beta=1)`` with a threshold of 20 or more, and
        ``Softmax(dim=1)`` (or ``dim=-1``) after the last ``Linear``.  A
        ``Linear`` without bias gets zero biases.
    loss : str or Loss, optional
        The network's loss; default ``"cross_entropy"`` after a softmax,
        ``"binary_cross_entropy"`` after a sigmoid, else ``"mse"``.
    seed : int, optional
        Seed of the network's random stream (shuffling and dropout in later
        training).

    Returns
    -------
    Network
        In the modules' dtype (float32 or float64), with their weights;
        ``predict`` gives the Sequential's output.

    Raises
    ------
    ValueError
        For anything else: the message names the offending module and its
        index in the Sequential (another module type, an activation with
        other settings, an activation without a Linear before it, a softmax
        before the last Linear, a dtype other than float32 or float64, or
        Linear layers whose widths do not chain).

    Examples
    --------
    >>> import numpy as np, numbanet, torch
    >>> net = numbanet.Network([4, 8, 1], activations=["elu", "sigmoid"], loss="binary_cross_entropy", seed=0)
    >>> module = numbanet.to_torch(net)
    >>> module
    Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): ELU(alpha=1.0)
      (2): Linear(in_features=8, out_features=1, bias=True)
      (3): Sigmoid()
    )
    >>> back = numbanet.from_torch(module)
    >>> back.activation_names, back.loss_name, bool(np.array_equal(back.params, net.params))
    (('elu', 'sigmoid'), 'binary_cross_entropy', True)
    """
    import torch
    from torch import nn

    if not isinstance(module, nn.Sequential):
        raise ValueError(
            f"from_torch takes a torch.nn.Sequential of Linear and activation modules; got {type(module).__name__}"
        )
    linears, acts, dtypes = [], [], set()
    for index, m in enumerate(module):
        if isinstance(m, nn.Identity):
            continue
        if type(m) is nn.Linear:
            if linears and m.in_features != linears[-1][1].out_features:
                raise ValueError(
                    f"module {index} of the Sequential, {m!r}, takes {m.in_features} inputs but "
                    f"the Linear before it gives {linears[-1][1].out_features}"
                )
            if m.weight.dtype not in (torch.float32, torch.float64) or (
                m.bias is not None and m.bias.dtype != m.weight.dtype
            ):
                raise ValueError(
                    f"module {index} of the Sequential, {m!r}, has dtype {m.weight.dtype}; "
                    "numbanet takes float32 or float64"
                )
            dtypes.add(m.weight.dtype)
            linears.append((index, m))
            acts.append(None)
            continue
        name = _from_torch_activation(nn, m, index)
        if not linears:
            raise ValueError(
                f"module {index} of the Sequential, {m!r}, comes before any Linear layer; "
                "numbanet networks start with a weighted layer"
            )
        if acts[-1] is not None:
            raise ValueError(
                f"module {index} of the Sequential, {m!r}, follows another activation; numbanet "
                "layers have one activation each"
            )
        if name == "softmax" and index != max(i for i, mm in enumerate(module) if not isinstance(mm, nn.Identity)):
            raise ValueError(
                f"module {index} of the Sequential, {m!r}, is a softmax before the end; numbanet "
                "allows softmax on the output layer only"
            )
        acts[-1] = name
    if not linears:
        raise ValueError("the Sequential has no Linear layer")
    if len(dtypes) > 1:
        raise ValueError(f"the Linear layers mix dtypes {sorted(str(d) for d in dtypes)}; give them one dtype")
    acts = [a or "identity" for a in acts]
    if loss is None:
        loss = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}.get(acts[-1], "mse")
    dtype = np.float64 if dtypes.pop() == torch.float64 else np.float32
    sizes = [linears[0][1].in_features] + [m.out_features for _, m in linears]
    net = Network(sizes, activations=acts, loss=loss, dtype=dtype, seed=seed)
    for (_, m), W, b in zip(linears, net.weights, net.biases):
        W[...] = m.weight.detach().cpu().numpy()
        b[...] = 0.0 if m.bias is None else m.bias.detach().cpu().numpy()
    return net
