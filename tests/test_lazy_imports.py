"""``import numbanet`` loads what a fit and a predict need; the rest loads on first use.

Each check runs in a fresh process, since this one has long imported everything.
"""

import pathlib
import subprocess
import sys

import pytest

import numbanet.warmup

pytestmark = pytest.mark.slow  # every test starts a fresh Python

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: Submodules that neither ``import numbanet`` nor a fit and a predict may import.
LAZY = [
    "numbanet.io",
    "numbanet.estimators",
    "numbanet.export",
    "numbanet.testing",
    "numbanet.distributed",
    "numbanet.explain",
]


def _run(code):
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()


def test_import_fit_and_predict_leave_the_lazy_modules_unloaded():
    code = f"""
import sys
import numpy as np
import numbanet
def loaded():
    return ",".join(m for m in {LAZY!r} if m in sys.modules) or "-"
print(loaded())
net = numbanet.Network([2, 3, 1], seed=0)
net.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=1, progress=False)
net.predict(np.zeros((4, 2)))
print(loaded())
"""
    assert _run(code) == ["-", "-"]


def test_lazy_names_work_as_before():
    code = """
import sys, numbanet
assert "numbanet.io" not in sys.modules
assert {"save", "load", "io"} <= set(dir(numbanet)), dir(numbanet)
assert {"save", "load"} <= set(numbanet.__all__)
from numbanet import load, save
import numbanet.io
assert numbanet.io is sys.modules["numbanet.io"]
assert (save, load) == (numbanet.io.save, numbanet.io.load)
assert (numbanet.save, numbanet.load) == (save, load)
ns = {}
exec("from numbanet import *", ns)
assert (ns["save"], ns["load"]) == (save, load)
print("ok")
"""
    assert _run(code) == ["ok"]


def test_attribute_access_alone_loads_io():
    code = """
import sys, numbanet
f = numbanet.save
print("numbanet.io" in sys.modules, f is sys.modules["numbanet.io"].save, numbanet.io.load is numbanet.load)
"""
    assert _run(code) == ["True True True"]


def test_building_copying_and_unpickling_a_network_load_no_kernel():
    # The first kernel a process loads costs it Numba's own set-up; a network that is only built,
    # copied or unpickled (a client that ships it to workers) never needs one.
    code = """
import pickle, sys
import numbanet
from numba.core.registry import CPUDispatcher
net = numbanet.Network([3, 4, 2], activations=["relu", "softmax"], loss="cross_entropy", seed=0)
pickle.loads(pickle.dumps(net)).copy()
loaded = [
    f"{name}.{attr}"
    for name, module in list(sys.modules.items())
    if name.startswith("numbanet.")
    for attr, value in vars(module).items()
    if isinstance(value, CPUDispatcher) and value.signatures
]
print(",".join(loaded) or "-")
"""
    assert _run(code) == ["-"]


LOAD_PROBE = """
import json, sys
import numpy as np
if sys.argv[1] == "refresh":  # Numba's own way: the registry refresh before the first load
    from numba.core.registry import cpu_target
    cpu_target.target_context.refresh()
import numbanet
out = {}
for dtype in ("float64", "float32"):
    rng = np.random.default_rng(0)
    X = rng.random((40, 5)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 40)]
    net = numbanet.Network([5, 7, 3], activations=["tanh", "softmax"], loss="cross_entropy", dtype=dtype, seed=0)
    h = net.fit(X, Y, epochs=2, batch_size=8, optimizer=numbanet.Adam(lr=0.01), progress=False)
    Z, A = net.forward(X[:3])
    dW, db = net.gradients(X, Y)
    out[dtype] = [h.loss, net.predict(X).tolist(), net.loss(X, Y), A[-1].tolist(), dW[0].tolist(), db[1].tolist()]
out["registries"] = "numba.np.arraymath" in sys.modules
print(json.dumps(out))
"""


def _probe(mode):
    r = subprocess.run([sys.executable, "-c", LOAD_PROBE, mode], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    import json

    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.requires_jit
def test_cached_kernels_load_without_numbas_registry_refresh_and_compute_the_same():
    _probe("load")  # compiles into the cache when it is empty
    loaded, refreshed = _probe("load"), _probe("refresh")
    # every kernel came from the cache, with no refresh (on the Numba versions it is enabled for)
    assert loaded.pop("registries") is (not numbanet.warmup.FAST_LOAD)
    assert refreshed.pop("registries") is True
    assert loaded == refreshed


COMPILE_AFTER_LOAD = """
import sys
import numpy as np
import numbanet
rng = np.random.default_rng(0)
X, Y = rng.random((40, 5)), np.eye(3)[rng.integers(0, 3, 40)]
numbanet.Network([5, 7, 3], activations=["tanh", "softmax"], seed=0).fit(X, Y, epochs=2, progress=False)
loaded_only = "numba.np.arraymath" not in sys.modules
swish = numbanet.Activation(
    "swish", function=lambda z: z / (1 + np.exp(-z)),
    derivative=lambda z: (1 + np.exp(-z) + z * np.exp(-z)) / (1 + np.exp(-z)) ** 2,
)
net = numbanet.Network([5, 7, 3], activations=[swish, "softmax"], seed=0)
h = net.fit(X, Y, epochs=3, progress=False)
print(loaded_only, bool(np.isfinite(h.loss).all()), bool(np.allclose(net.predict(X).sum(axis=1), 1.0)))
"""


@pytest.mark.requires_jit
def test_a_custom_piece_compiles_after_kernels_loaded_without_the_refresh():
    # Compiling still sets Numba's registries up itself (a custom piece's callbacks are compiled).
    _probe("load")  # the cache holds the built-in kernels
    r = subprocess.run(
        [sys.executable, "-c", COMPILE_AFTER_LOAD], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(numbanet.warmup.FAST_LOAD), "True", "True"]
