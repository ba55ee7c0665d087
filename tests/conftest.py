"""Shared test configuration: Hypothesis profiles and small fixtures.

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
