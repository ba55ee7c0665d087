"""Export to ONNX and PyTorch, import from PyTorch.

Every function here imports its optional dependency when called, so
``import numbanet`` imports none of onnx, onnxruntime, skl2onnx, torch or
skops (``pip install onnx onnxruntime skl2onnx`` for the ONNX tools, or
``pip install -e ".[onnx]"`` in a clone; torch on its own).

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

One module a target: :mod:`~numbanet.export.onnx`,
:mod:`~numbanet.export.skl2onnx` and :mod:`~numbanet.export.torch`, on
:mod:`~numbanet.export._model` (the layers of a network or estimator).
"""

from numbanet.export.onnx import DEFAULT_OPSET, MIN_OPSET, to_onnx
from numbanet.export.skl2onnx import register_skl2onnx
from numbanet.export.torch import from_torch, to_torch

__all__ = ["to_onnx", "register_skl2onnx", "to_torch", "from_torch", "DEFAULT_OPSET", "MIN_OPSET"]
