"""Shared test configuration: Hypothesis profiles, small fixtures, and a compile per worker under ``-n 2``.

Profiles (chosen by the HYPOTHESIS_PROFILE environment variable):

* ``ci``  -- derandomised (the same examples every run), no deadline (JIT
  compilation makes first calls slow), 60 examples per property.
* ``dev`` -- the default: 25 examples, no deadline, quick to iterate.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=60,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session", autouse=True)
def _one_dtype_per_worker():
    """Under pytest-xdist (``-n 2``), compile float64's kernels in the first worker and float32's in the second.

    Both workers would otherwise start with float64 tests, and one would wait on
    the compile lock while the other compiles. Each then loads the other's
    kernels from Numba's cache. No test depends on it: kernels compile on
    first use, and the tests of compiling itself run in fresh processes.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker in ("gw0", "gw1"):
        import numba

        import numbanet

        if not numba.config.DISABLE_JIT:  # .ci/coverage: nothing to compile
            numbanet.compile(dtypes=[("float64", "float32")[int(worker[2:])]], progress=False)


@pytest.fixture
def xor():
    """Return the four XOR points and their labels, float64."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    Y = np.array([[0], [1], [1], [0]], dtype=np.float64)
    return X, Y


@pytest.fixture
def digits():
    """scikit-learn's 8x8 digits scaled to [0, 1], with one-hot labels (skipped without scikit-learn)."""
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    return X / 16.0, np.eye(10)[y], y
