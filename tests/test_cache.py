"""Numba's cache never serves stale kernels: an edit to a kernel reaches every cached kernel that calls it.

Numba stamps a cached kernel with its own file's time stamp only, so a kernel
calling a jitted function in another file kept the old code after that file
changed.  numbanet adds a digest of all kernel sources to the stamp
(:mod:`numbanet._jit`); this test edits a kernel in a temporary copy of the
package and runs a caller from another file in fresh processes.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # fresh Pythons that compile the kernels into an empty cache

ROOT = pathlib.Path(__file__).resolve().parents[1]

PROBE = """
import json, numpy as np, numbanet
from numbanet.kernels import activations, dense, pieces
assert numbanet.__file__.startswith({root!r}), numbanet.__file__
D = np.ones((2, 3)); W = np.ones((3, 4)); A = np.full((2, 4), 0.5); out = np.empty((2, 4))
# dense.py calls activations.backprop_inplace, which calls activations.sigmoid_slope
dense.hidden_delta(D, W, A, A, activations.SIGMOID, -1, pieces.builtin_fns(), 1.0, out)
print(json.dumps({{"value": float(out[0, 0]), "hits": sum(dense.hidden_delta.stats.cache_hits.values())}}))
"""


def _probe(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(root=str(tmp_path))],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.requires_jit
def test_edit_to_a_called_kernel_reaches_its_cached_caller(tmp_path):
    shutil.copytree(ROOT / "numbanet", tmp_path / "numbanet", ignore=shutil.ignore_patterns("__pycache__"))
    first = _probe(tmp_path)
    assert first == {"value": 0.75, "hits": 0}  # 3 * σ'(z) with σ(z) = 0.5, compiled
    again = _probe(tmp_path)
    assert again == {"value": 0.75, "hits": 1}  # unchanged sources: served from the cache

    src = tmp_path / "numbanet" / "kernels" / "activations.py"
    text = src.read_text()
    old = "return a * (1.0 - a)"
    assert text.count(old) == 1
    src.write_text(text.replace(old, "return 2.0 * a * (1.0 - a)"))
    edited = _probe(tmp_path)
    assert edited == {"value": 1.5, "hits": 0}  # dense.py did not change, yet its kernel recompiled


def _run_probe(cache):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(root=str(ROOT))], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr  # before: UnpicklingError, UnicodeDecodeError, EOFError, ...
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip3(path):
    raw = bytearray(path.read_bytes())
    for at in (len(raw) // 5, len(raw) // 2, len(raw) - 40):
        raw[at] ^= 0x5A
    path.write_bytes(bytes(raw))


DAMAGE = {
    "truncated index": ("nbi", _truncate),
    "truncated data": ("nbc", _truncate),
    "3 flipped bytes in the index": ("nbi", _flip3),
    "3 flipped bytes in the data": ("nbc", _flip3),
    "empty data": ("nbc", lambda p: p.write_bytes(b"")),
}


@pytest.fixture(scope="module")
def filled_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    assert _run_probe(cache) == {"value": 0.75, "hits": 0}
    return cache


@pytest.mark.requires_jit
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_cache_file_is_a_miss_recompiled_and_rewritten(tmp_path, filled_cache, damage):
    cache = tmp_path / "cache"
    shutil.copytree(filled_cache, cache)
    suffix, harm = DAMAGE[damage]
    files = sorted(cache.rglob(f"dense.hidden_delta-*.{suffix}"))
    assert files, sorted(p.name for p in cache.rglob("*"))
    for path in files:
        harm(path)
    assert _run_probe(cache) == {"value": 0.75, "hits": 0}  # a miss: compiled again
    assert _run_probe(cache) == {"value": 0.75, "hits": 1}  # and saved afresh
