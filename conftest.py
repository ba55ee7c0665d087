"""Collection rules for the whole repository (tests/conftest.py configures the tests themselves).

* ``notebooks/*.py`` are the notebooks' jupytext sources, not modules to import:
  tests/test_notebooks.py executes their paired ``.ipynb`` instead, and
  ``--doctest-modules`` must not import them.
* The docstring examples in ``numbanet/`` run as doctests (``--doctest-modules``
  in pyproject.toml).  An example that imports an optional package (scikit-learn,
  ONNX, PyTorch, ...) is skipped when that package is not installed, as README's
  examples are (tests/test_readme.py).
* Tests marked ``requires_jit`` (they check compilation itself) are skipped
  when ``NUMBA_DISABLE_JIT=1`` runs the kernels as plain Python (.ci/coverage).
"""

import importlib.util
import re

import numba
import pytest

collect_ignore_glob = ["notebooks/*.py"]
if importlib.util.find_spec("hypothesis") is None:  # numbanet.testing is built on Hypothesis (the test extra)
    collect_ignore_glob.append("numbanet/testing.py")

OPTIONAL = ("sklearn", "onnx", "onnxruntime", "skl2onnx", "torch", "skops", "hypothesis")
# Modules whose every example needs a package even when the example does not import it.
MODULE_NEEDS = {"numbanet.estimators": "sklearn"}
_IMPORT = re.compile(r"^\s*import\s+(.+)$|^\s*from\s+([\w.]+)\s+import\b", re.M)


def _imported(source):
    """Top-level package names that the statements in source import."""
    names = set()
    for match in _IMPORT.finditer(source):
        modules = match.group(1).split(",") if match.group(1) else [match.group(2)]
        names.update(module.split()[0].split(".")[0] for module in modules if module.strip())
    return names


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by marker (-m "not slow")
def pytest_collection_modifyitems(config, items):
    """Skip requires_jit tests when the JIT is off, and examples missing a package."""
    for item in items:
        if numba.config.DISABLE_JIT and item.get_closest_marker("requires_jit"):
            item.add_marker(pytest.mark.skip(reason="needs Numba's JIT; NUMBA_DISABLE_JIT=1 runs kernels as Python"))
        if not isinstance(item, pytest.DoctestItem):
            continue
        source = "".join(example.source for example in item.dtest.examples)
        needed = _imported(source) & set(OPTIONAL)
        needed.update(package for module, package in MODULE_NEEDS.items() if item.dtest.name.startswith(module + "."))
        missing = sorted(n for n in needed if importlib.util.find_spec(n) is None)
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"example needs {', '.join(missing)}"))
