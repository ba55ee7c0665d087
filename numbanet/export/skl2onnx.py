"""skl2onnx converters for the estimators: :func:`register_skl2onnx`."""

import numpy as np

from numbanet.export._model import _builtin_layers
from numbanet.export.onnx import _class_labels, _classifier_head, _forward, _Skl2onnxGraph


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
