"""scikit-learn's own MLP test file, run on numbanet's estimators.

The installed scikit-learn's ``sklearn/neural_network/tests/test_mlp.py`` is
copied with its one import of ``MLPClassifier, MLPRegressor`` pointed at
numbanet, and run by pytest in another process (with scikit-learn's conftest
as a plugin, for its fixtures).  Six tests read scikit-learn's private
attributes (``_coef_grads``, ``_optimizer``, ``_no_improvement_count``, ...)
and are left out; every other test must pass.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn")

#: Tests of scikit-learn's private attributes, which numbanet's estimators do not have.
PRIVATE = (
    "test_fit",
    "test_gradient",
    "test_learning_rate_warmstart",
    "test_adaptive_learning_rate",
    "test_n_iter_no_change",
    "test_n_iter_no_change_inf",
)
IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"


@pytest.mark.slow
def test_sklearn_test_mlp_passes_with_numbanet(tmp_path):
    source = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
    text = source.read_text()
    assert text.count(IMPORT) == 1, "scikit-learn's test file no longer imports the estimators in one line"
    (tmp_path / "test_mlp_numbanet.py").write_text(
        text.replace(IMPORT, "from numbanet import MLPClassifier, MLPRegressor")
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not numbanet's settings (doctests, nbmake, ...)
    deselect = [arg for name in PRIVATE for arg in ("--deselect", f"test_mlp_numbanet.py::{name}")]
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "pytest", "-p", "sklearn.conftest", "-p", "no:cacheprovider", "-q"]
    done = subprocess.run(
        [*command, *deselect, "test_mlp_numbanet.py"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert done.returncode == 0, f"scikit-learn's test_mlp.py on numbanet: {summary}\n{done.stdout[-6000:]}"
    assert "passed" in summary and f"{len(PRIVATE)} deselected" in summary, summary
