"""ONNX graphs of a network or a fitted estimator: :func:`to_onnx`."""

import math
import numbers

import numpy as np

from numbanet import _validation as check
from numbanet.export._model import _builtin_layers, _network_of
from numbanet.kernels.activations import BUILTINS

#: The opset :func:`to_onnx` writes unless told otherwise (onnxruntime >= 1.14 runs it).
DEFAULT_OPSET = 18
#: The oldest opset :func:`to_onnx` can write (Softmax over one axis, Gather and ArgMax as used here).
MIN_OPSET = 13


# erf(x) for 0 <= x <= _ERF_CLAMP as a Chebyshev series (evaluated by Clenshaw's recurrence): onnxruntime has
# no double-precision Erf.  Beyond the clamp, erf(x) = 1 in double precision (1 - erf(6) = 2e-17).
_ERF_CLAMP = 6.0
_ERF_DEGREE = 40
_erf_coefficients_cache = []


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
    dt = check.float_dtype(dtype, allow_none=True)
    return np.dtype(default) if dt is None else dt


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
