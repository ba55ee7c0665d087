"""``import numbanet`` survives a Numba without the private names it uses, and a machine with no writable cache.

numbanet's use of Numba's private caching code (:mod:`numbanet._numba`) is
enabled only on the Numba versions it is tested on and falls back to plain
``cache=True`` when a name is missing; with no writable cache folder at all
the kernels are compiled in memory.  Each case runs in a fresh process.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

FIT = """
import json, numpy as np, numbanet
from numbanet import _numba, warmup
from numbanet.kernels import training
assert numbanet.__file__.startswith({root!r}), numbanet.__file__
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
Y = np.array([[0], [1], [1], [0]], float)
net = numbanet.Network([2, 4, 1], seed=0)
history = net.fit(X, Y, epochs=3, batch_size=2, progress=False)
with warmup.compile_lock() as locked:
    pass
print(json.dumps({{
    "locator": _numba.KernelCacheLocator is not None,
    "tested": _numba.TESTED,
    "cache_dir": warmup.cache_dir(),
    "locked": locked,
    "loss_finite": bool(np.isfinite(history.loss).all()),
    "predict": np.asarray(net.predict(X)).shape,
    "hits": sum(training.train_slice_flat.stats.cache_hits.values()),
}}))
"""


def _run(prelude, root, env, stderr=None):
    """Run FIT after ``prelude`` in a fresh process; return what it printed (its stderr appended to ``stderr``)."""
    code = prelude + FIT.format(root=str(root))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    if stderr is not None:
        stderr.append(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


#: A Numba whose private locator base class is gone (renamed, moved).
NO_PRIVATE_LOCATOR = "import numba.core.caching as c\ndel c._CacheLocator\n"

#: A Numba version numbanet is not tested on.
UNTESTED_VERSION = "import numba\nnumba.__version__ = '0.0.1'\n"


@pytest.mark.requires_jit
def test_a_numba_without_the_private_names_caches_as_plain_numba(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    first = _run(NO_PRIVATE_LOCATOR, ROOT, env)
    assert (first["locator"], first["tested"], first["loss_finite"], first["predict"], first["hits"]) == (
        False,
        True,
        True,
        [4, 1],
        0,
    )
    assert "numbanet-" not in first["cache_dir"]  # Numba's own folder, with no digest in it
    again = _run(NO_PRIVATE_LOCATOR, ROOT, env)
    assert (again["loss_finite"], again["hits"]) == (True, 1)  # Numba's own cache=True wrote the kernel and loads it


@pytest.mark.requires_jit
def test_an_untested_numba_version_uses_only_numbas_public_caching(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    out = _run(UNTESTED_VERSION, ROOT, env)
    assert out == {
        "locator": False,
        "tested": False,
        "cache_dir": None,  # unknown without reading Numba's private attributes
        "locked": False,  # so the compile lock is this process's only
        "loss_finite": True,
        "predict": [4, 1],
        "hits": 0,
    }
    assert not any(p.name.startswith("numbanet-") for p in (tmp_path / "cache").rglob("*"))  # no digest folder


@pytest.mark.requires_jit
def test_with_no_writable_cache_folder_the_kernels_compile_in_memory(tmp_path):
    # Read-only as root too: every cache folder Numba may try lies under a regular file.
    shutil.copytree(ROOT / "numbanet", tmp_path / "numbanet", ignore=shutil.ignore_patterns("__pycache__"))
    for pkg in (tmp_path / "numbanet", tmp_path / "numbanet" / "kernels"):
        (pkg / "__pycache__").write_text("")  # the in-tree cache folder cannot be made
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(blocker / "cache"),
        "HOME": str(blocker),
        "XDG_CACHE_HOME": str(blocker / "xdg"),
        "PYTHONPATH": str(tmp_path),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    stderr = []
    out = _run("", tmp_path, env, stderr)
    assert (out["cache_dir"], out["locked"], out["loss_finite"], out["predict"], out["hits"]) == (
        None,
        False,
        True,
        [4, 1],
        0,
    )
    # Where nothing can be cached, numbanet says so once, and writes nothing.
    assert stderr[0].count("compiled in memory") == 1, stderr[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "numbanet"]
