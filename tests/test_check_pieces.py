"""Tests for numbanet.testing.check_activation and check_loss.

The activations and losses are duck-typed SimpleNamespace stand-ins: the
checks only need ``name`` and the two callables.
"""

import math
import re
from types import SimpleNamespace

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive import log_cosh, log_cosh_derivative, sigmoid, swish, swish_derivative

from numbanet.testing import check_activation, check_loss

N = 60  # examples per check: enough to find the planted errors, quick to run


def activation(name, function, derivative):
    """Duck-typed activation stand-in."""
    return SimpleNamespace(name=name, function=function, derivative=derivative)


def loss(name, cost, derivative):
    """Duck-typed loss stand-in."""
    return SimpleNamespace(name=name, cost=cost, derivative=derivative)


def _huber_cost(a, y):
    d = a - y
    return 0.5 * d * d if abs(d) <= 1.0 else abs(d) - 0.5


def _huber_derivative(a, y):
    d = a - y
    return d if abs(d) <= 1.0 else math.copysign(1.0, d)


SWISH = activation("swish", swish, swish_derivative)
SIGMOID = activation("sigmoid", sigmoid, lambda z: sigmoid(z) * (1.0 - sigmoid(z)))
TANH = activation("tanh", math.tanh, lambda z: 1.0 - math.tanh(z) ** 2)
SOFTPLUS = activation("softplus", lambda z: math.log1p(math.exp(z)), sigmoid)
RELU = activation("relu", lambda z: max(z, 0.0), lambda z: 1.0 if z > 0 else 0.0)
LOG_COSH = loss("log_cosh", log_cosh, log_cosh_derivative)
HUBER = loss("huber", _huber_cost, _huber_derivative)


def _parse(message, variables):
    """Return the point and the (analytic, numeric) pair named in a failure message."""
    at = re.search(r"at (.*?): derivative", message).group(1)
    point = {k: float(v) for k, v in re.findall(r"(\w+) = ([-+0-9.e]+|nan|inf)", at)}
    assert sorted(point) == sorted(variables), message
    analytic = float(re.search(r"derivative\([a-z, ]+\) = (\S+),", message).group(1))
    numeric = float(re.search(r"gives (\S+) \(", message).group(1))
    return point, analytic, numeric


# --- correct definitions pass ------------------------------------------------


@pytest.mark.parametrize("act", [SWISH, SIGMOID, TANH, SOFTPLUS], ids=lambda a: a.name)
def test_correct_activations_pass(act):
    """Correct float64 derivatives pass and the check returns None."""
    assert check_activation(act, max_examples=N) is None


def test_numba_compiled_activation_passes():
    """Numba dispatchers are called from Python like any callable."""

    @numba.njit
    def swish(z):
        return z / (1.0 + math.exp(-z))

    @numba.njit
    def swish_derivative(z):
        e = math.exp(-z)
        return (1.0 + e + z * e) / (1.0 + e) ** 2

    check_activation(activation("swish_numba", swish, swish_derivative), max_examples=N)


def test_relu_kink_at_zero_is_skipped_not_failed():
    """ReLU at 0 straddles its kink: visited, skipped, not failed."""
    seen = []

    def relu(z):
        seen.append(z)
        return max(z, 0.0)

    check_activation(activation("relu", relu, RELU.derivative), domain=(-1.0, 1.0), max_examples=N)
    assert 0.0 in seen  # the kink itself was visited, and skipped


def test_relu_derivative_outside_the_one_sided_slopes_at_the_kink_is_caught():
    """A kink excuses a subgradient, not any value: relu'(0) = 5 fails."""

    def derivative(z):
        return 5.0 if z == 0 else (1.0 if z > 0 else 0.0)

    with pytest.raises(AssertionError, match=r"'relu'.*at z = 0\.0: derivative\(z\) = 5\.0"):
        check_activation(activation("relu", RELU.function, derivative), max_examples=N)


def test_overflowing_activation_skips_points_and_passes():
    """Non-finite values (exceptions or inf) are skipped, the rest is checked."""
    # math.exp raises OverflowError beyond z ~ 709.8; those points are skipped.
    check_activation(activation("exp", math.exp, math.exp), domain=(-1000.0, 1000.0), max_examples=N)
    # NumPy returns inf with a RuntimeWarning (an error under this suite's filterwarnings).
    check_activation(activation("np_exp", np.exp, np.exp), domain=(-1000.0, 1000.0), max_examples=N)


def test_overflowing_numba_activation_passes():
    """Numba returns inf instead of raising; those points are skipped too."""

    @numba.njit
    def cosh(z):
        return math.cosh(z)  # inf beyond |z| ~ 710, no exception

    @numba.njit
    def sinh(z):
        return math.sinh(z)

    check_activation(activation("cosh", cosh, sinh), domain=(-2000.0, 2000.0), max_examples=N)


def test_every_point_skipped_is_no_evidence():
    """When nothing could be compared the check does not pass silently."""
    with pytest.raises(AssertionError, match=r"'exp': no point could be checked"):
        check_activation(activation("exp", math.exp, math.exp), domain=(800.0, 1000.0), max_examples=20)


def test_math_domain_errors_are_skipped():
    """ValueError('math domain error') counts as a non-finite value."""
    sqrt = activation("sqrt", math.sqrt, lambda z: 0.5 / math.sqrt(z))
    check_activation(sqrt, domain=(0.0, 4.0), max_examples=N)  # sqrt(0 - h) and 1/sqrt(0) skipped


# --- planted errors are caught -------------------------------------------------


def test_swish_missing_term_is_caught_with_the_numbers():
    """The planted swish error is reported with z and both derivatives."""

    def wrong(z):  # (1 + e^-z + z e^-z) / (1 + e^-z)^2 without the z e^-z term
        e = math.exp(-z)
        return (1.0 + e) / (1.0 + e) ** 2

    with pytest.raises(AssertionError, match="swish") as info:
        check_activation(activation("swish", SWISH.function, wrong), max_examples=N)
    message = str(info.value)
    point, analytic, numeric = _parse(message, ["z"])
    z = point["z"]
    assert repr(wrong(z)) in message and analytic == wrong(z)
    assert numeric == pytest.approx(SWISH.derivative(z), rel=1e-8)
    assert abs(z) <= 5.0  # shrunk to a simple point, not left at a random float


def test_activation_sign_error_is_caught():
    """A sign error in tanh' is caught."""
    wrong = activation("tanh", math.tanh, lambda z: math.tanh(z) ** 2 - 1.0)
    with pytest.raises(AssertionError, match="'tanh'") as info:
        check_activation(wrong, max_examples=N)
    point, analytic, numeric = _parse(str(info.value), ["z"])
    assert analytic == pytest.approx(-numeric, rel=1e-6)


def test_log_cosh_scaled_derivative_is_caught_with_the_numbers():
    """A 10% error in log_cosh' is reported with a, y and both derivatives."""
    wrong = loss("log_cosh", LOG_COSH.cost, lambda a, y: 0.9 * math.tanh(a - y))
    with pytest.raises(AssertionError, match="log_cosh") as info:
        check_loss(wrong, max_examples=N)
    message = str(info.value)
    point, analytic, numeric = _parse(message, ["a", "y"])
    a, y = point["a"], point["y"]
    assert a != y
    assert repr(0.9 * math.tanh(a - y)) in message and analytic == 0.9 * math.tanh(a - y)
    assert numeric == pytest.approx(math.tanh(a - y), rel=1e-8)


def test_loss_sign_error_is_caught():
    """A sign error in the MSE derivative is caught."""
    wrong = loss("mse", lambda a, y: 0.5 * (a - y) ** 2, lambda a, y: y - a)
    with pytest.raises(AssertionError, match=r"loss 'mse': wrong derivative at a = .*, y = "):
        check_loss(wrong, max_examples=N)


def test_huber_without_clipping_is_caught():
    """Huber's derivative must clip at |a - y| = 1."""
    wrong = loss("huber", _huber_cost, lambda a, y: a - y)
    with pytest.raises(AssertionError, match="huber") as info:
        check_loss(wrong, max_examples=N)
    point, _, _ = _parse(str(info.value), ["a", "y"])
    assert abs(point["a"] - point["y"]) > 1.0


# --- correct losses pass -------------------------------------------------------


@pytest.mark.parametrize("lo", [LOG_COSH, HUBER], ids=lambda lo: lo.name)
def test_correct_losses_pass(lo):
    """Correct loss derivatives pass and the check returns None."""
    assert check_loss(lo, max_examples=N) is None


def test_huber_switch_points_are_checked():
    """The switch points |a - y| = 1 are evaluated and pass."""
    seen = []

    def cost(a, y):
        seen.append((a, y))
        return _huber_cost(a, y)

    # The domain ends +-1 are always checked against the target nearest 0, here 0.
    check_loss(loss("huber", cost, _huber_derivative), domain=(-1.0, 1.0), max_examples=N)
    assert (1.0, 0.0) in seen and (-1.0, 0.0) in seen


def test_absolute_error_kink_at_a_equals_y_is_skipped():
    """|a - y| has a kink at a == y: visited, skipped, not failed."""
    seen = []

    def cost(a, y):
        seen.append(a == y)
        return abs(a - y)

    def derivative(a, y):
        return math.copysign(1.0, a - y) if a != y else 0.0

    check_loss(loss("l1", cost, derivative), max_examples=N)
    assert any(seen)  # a == y (e.g. 0, 0) was visited


def test_binary_cross_entropy_with_targets():
    """Targets as a range, a strategy and one fixed value."""
    bce = loss(
        "bce",
        lambda a, y: -(y * math.log(a) + (1.0 - y) * math.log(1.0 - a)),
        lambda a, y: (a - y) / (a * (1.0 - a)),
    )
    check_loss(bce, domain=(0.01, 0.99), targets=(0.0, 1.0), max_examples=N)
    check_loss(bce, domain=(0.01, 0.99), targets=st.sampled_from([0.0, 1.0]), max_examples=N)
    check_loss(bce, domain=(0.01, 0.99), targets=(1.0, 1.0), max_examples=N)  # one fixed target


def test_targets_strategy_is_used():
    """A targets strategy is where y comes from."""
    seen = set()

    def derivative(a, y):
        seen.add(y)
        return math.tanh(a - y)

    check_loss(loss("log_cosh", LOG_COSH.cost, derivative), targets=st.just(0.25), max_examples=20)
    assert seen == {0.25}


# --- reproducibility, nesting, errors ------------------------------------------


def test_failure_is_reproducible():
    """Seeded: the same call reports the same failure."""
    wrong = activation("sigmoid", sigmoid, lambda z: sigmoid(z) * 1.001)
    messages = []
    for _ in range(2):
        with pytest.raises(AssertionError) as info:
            check_activation(wrong, max_examples=N)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_can_run_inside_a_hypothesis_test():
    """The check can run inside an outer @given test."""

    # Hypothesis asks the outer test to allow nesting; the inner run is the check's own.
    @settings(max_examples=3, database=None, deadline=None, suppress_health_check=[HealthCheck.nested_given])
    @given(st.floats(0.5, 2.0))
    def scaled_tanh_is_right(k):
        check_activation(
            activation("scaled_tanh", lambda z: math.tanh(k * z), lambda z: k * (1.0 - math.tanh(k * z) ** 2)),
            max_examples=10,
        )

    scaled_tanh_is_right()


def test_exception_in_user_code_propagates():
    """Exceptions other than overflow or domain errors are bugs and propagate."""

    def broken(z):
        raise TypeError("not a float")

    with pytest.raises(TypeError, match="not a float"):
        check_activation(activation("broken", math.tanh, broken), max_examples=5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"domain": (1.0, -1.0)},
        {"domain": (1.0, 1.0)},
        {"domain": (0.0, math.inf)},
        {"domain": (math.nan, 1.0)},
        {"domain": (0.0, 1.0, 2.0)},
        {"domain": "ab"},
        {"domain": 3.0},
        {"domain": (False, True)},
        {"max_examples": 0},
        {"max_examples": 1.5},
        {"rtol": -1e-5},
        {"atol": math.nan},
        {"seed": "zero"},
    ],
    ids=repr,
)
def test_bad_arguments_raise_value_error(kwargs):
    """Bad domain, max_examples, tolerances or seed raise ValueError."""
    with pytest.raises(ValueError):
        check_activation(TANH, **kwargs)
    with pytest.raises(ValueError):
        check_loss(LOG_COSH, **kwargs)


@pytest.mark.parametrize("targets", [(1.0, 0.0), (0.0, math.inf), "y", 0.5])
def test_bad_targets_raise_value_error(targets):
    """Bad targets raise ValueError naming targets."""
    with pytest.raises(ValueError, match="targets"):
        check_loss(LOG_COSH, targets=targets)


def test_objects_without_the_callables_raise_value_error():
    """Objects lacking the callables raise ValueError naming them."""
    with pytest.raises(ValueError, match="derivative"):
        check_activation(SimpleNamespace(name="half", function=math.tanh))
    with pytest.raises(ValueError, match="function"):
        check_activation(SimpleNamespace(name="nonfn", function=1.0, derivative=math.tanh))
    with pytest.raises(ValueError, match="cost"):
        check_loss(TANH)  # an activation is not a loss
    with pytest.raises(ValueError, match="derivative"):
        check_loss(SimpleNamespace(name="half", cost=lambda a, y: 0.0))
