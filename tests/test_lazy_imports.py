"""``import numbanet`` loads what a fit and a predict need; the rest loads on first use.

Each check runs in a fresh process, since this one has long imported everything.
"""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: Submodules that neither ``import numbanet`` nor a fit and a predict may import.
LAZY = ["numbanet.io", "numbanet.estimators", "numbanet.export", "numbanet.testing", "numbanet.distributed"]


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
