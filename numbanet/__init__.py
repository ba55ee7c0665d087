"""numbanet: fully-connected neural networks trained by backpropagation.

Every hot step is a flat Numba kernel.

>>> import numpy as np, numbanet
>>> X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
>>> Y = np.array([[0], [1], [1], [0]], dtype=float)
>>> net = numbanet.Network([2, 8, 1], activations="sigmoid", loss="mse", seed=0)
>>> history = net.fit(X, Y, epochs=5000, batch_size=4, optimizer=numbanet.SGD(lr=2.0), progress=False)
>>> bool(np.all((net.predict(X) > 0.5) == Y))
True
"""

from numbanet._numba import load_kernels_without_refresh as _load_kernels_without_refresh
from numbanet.callbacks import Callback, EarlyStopping, History
from numbanet.exceptions import ModelFileError, TrainingDivergedError
from numbanet.gradcheck import GradcheckResult, gradcheck
from numbanet.network import Network
from numbanet.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from numbanet.pieces import Activation, Loss

# numbanet.compile, as torch.compile; kept out of __all__ so that `from numbanet import *` cannot shadow the built-in.
from numbanet.precompile import compile as compile
from numbanet.schedules import ConstantLR, CosineLR, ExponentialLR, ReduceLROnPlateau, StepLR

__version__ = "0.1.0"

# Every kernel module is imported by now (network and engine import them all).
_load_kernels_without_refresh()
del _load_kernels_without_refresh

__all__ = [
    "Network",
    "Activation",
    "Loss",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Optimizer",
    "gradcheck",
    "GradcheckResult",
    "History",
    "Callback",
    "EarlyStopping",
    "ConstantLR",
    "StepLR",
    "ExponentialLR",
    "CosineLR",
    "ReduceLROnPlateau",
    "TrainingDivergedError",
    "ModelFileError",
    "save",
    "load",
    "MLPClassifier",
    "MLPRegressor",
    "SKOPS_TRUSTED",
    "to_onnx",
    "register_skl2onnx",
    "to_torch",
    "from_torch",
]

_LAZY = {
    # Saving and loading: numbanet.io is as large as the network module and no fit or predict needs it.
    "save": "numbanet.io",
    "load": "numbanet.io",
    "MLPClassifier": "numbanet.estimators",
    "MLPRegressor": "numbanet.estimators",
    "SKOPS_TRUSTED": "numbanet.estimators",  # for skops.io.load and MLflow's skops format
    # Export and import: numbanet.export imports onnx, skl2onnx and torch only inside these functions.
    "to_onnx": "numbanet.export",
    "register_skl2onnx": "numbanet.export",
    "to_torch": "numbanet.export",
    "from_torch": "numbanet.export",
}


#: Submodules loaded on first use: numbanet.testing imports Hypothesis (a test dependency); numbanet.io, as above;
#: numbanet.explain (attributions), which no fit or predict needs.
_LAZY_MODULES = ("testing", "io", "explain")


def __getattr__(name):
    # The estimators import scikit-learn, which takes longer than all of numbanet: load them on first use;
    # so too the modules that an import, a fit and a predict do not need (a shorter start).
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _LAZY_MODULES:
        value = importlib.import_module(f"numbanet.{name}")
    else:
        raise AttributeError(f"module 'numbanet' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_MODULES))
