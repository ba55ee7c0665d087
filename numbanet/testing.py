"""Hypothesis strategies and derivative checks (public).

Strategies for networks and batches
-----------------------------------
Use them to property-test your own configurations::

    from hypothesis import given
    import numbanet
    from numbanet.testing import network_and_batch

    @given(network_and_batch())
    def test_my_gradients(case):
        net, X, Y = case
        assert numbanet.gradcheck(net, X, Y).passed

Every strategy draws finite, bounded data; targets are valid for the loss
(rows of probabilities for cross-entropy, values in [0, 1] for binary
cross-entropy).

Checks for user-defined activations and losses
----------------------------------------------
:func:`check_activation` and :func:`check_loss` verify a hand-written
derivative against central differences of the function it differentiates, as
a Hypothesis property over a wide range of inputs::

    import math
    from types import SimpleNamespace
    from numbanet.testing import check_activation

    swish = SimpleNamespace(
        name="swish",
        function=lambda z: z / (1.0 + math.exp(-z)),
        derivative=lambda z: (1.0 + math.exp(-z) + z * math.exp(-z)) / (1.0 + math.exp(-z)) ** 2,
    )
    check_activation(swish)   # returns None, or raises AssertionError naming z

Any object with ``name``, ``function`` and ``derivative`` (an activation) or
``name``, ``cost`` and ``derivative`` (a loss) will do, Numba dispatchers
included.  Points where a value is not finite, or where the function has a
kink (ReLU at 0, ``|a - y|`` at ``a == y``), are skipped rather than failed.
The checks are seeded, so a run is reproducible.

Needs ``hypothesis`` (``pip install hypothesis``).
"""

import math
import numbers
import sys

import hypothesis
import numpy as np
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numbanet.kernels.activations import BUILTINS as _BUILTINS
from numbanet.kernels.losses import REQUIRED_OUTPUT as _REQUIRED_OUTPUT
from numbanet.network import Network

#: Every built-in activation a hidden layer may have (all but softmax).
HIDDEN_ACTIVATIONS = tuple(name for name, b in _BUILTINS.items() if not b.output_only)

#: Outputs left out of the drawn pairs: exp grows as e^z, and on the drawn data (|x| <= 3, up to
#: 16 units) its costs reach the many thousands, where a central difference's rounding noise
#: exceeds gradcheck's tolerance; tests/test_poisson.py checks it on data of Poisson's scale.
UNBOUNDED_OUTPUTS = ("exp",)

#: Every valid (output activation, loss) pair but the unbounded outputs': mse and huber with
#: any output, the cross-entropies with their own.
OUTPUT_LOSS_PAIRS = tuple(
    [(name, loss) for loss in ("mse", "huber") for name in _BUILTINS if name not in UNBOUNDED_OUTPUTS]
    + [(out, loss) for loss, out in _REQUIRED_OUTPUT.items() if out not in UNBOUNDED_OUTPUTS]
)


@st.composite
def architectures(draw, min_depth=1, max_depth=4, min_width=1, max_width=16, min_outputs=1):
    """Layer sizes ``[n_in, hidden..., n_out]`` with ``depth`` weighted layers."""
    depth = draw(st.integers(min_depth, max_depth))
    widths = draw(st.lists(st.integers(min_width, max_width), min_size=depth + 1, max_size=depth + 1))
    widths[-1] = max(widths[-1], min_outputs)
    return widths


@st.composite
def configurations(draw, min_depth=1, max_depth=4, min_width=1, max_width=16):
    """Draw a valid ``(sizes, activations, loss)`` triple.

    Hidden activations are drawn per layer; the output activation and the
    loss are drawn as a pair that goes together.
    """
    output, loss = draw(st.sampled_from(OUTPUT_LOSS_PAIRS))
    sizes = draw(architectures(min_depth, max_depth, min_width, max_width, min_outputs=2 if output == "softmax" else 1))
    hidden = draw(st.lists(st.sampled_from(HIDDEN_ACTIVATIONS), min_size=len(sizes) - 2, max_size=len(sizes) - 2))
    return sizes, hidden + [output], loss


@st.composite
def networks(draw, dtype=np.float64, min_depth=1, max_depth=4, min_width=1, max_width=16, l2=None):
    """Draw a seeded :class:`numbanet.Network` of a valid configuration.

    ``l2=None`` draws no penalty; pass ``st.floats(...)`` to draw one.
    """
    sizes, activations, loss = draw(configurations(min_depth, max_depth, min_width, max_width))
    seed = draw(st.integers(0, 2**31 - 1))
    penalty = draw(l2) if l2 is not None else 0.0
    return Network(sizes, activations=activations, loss=loss, dtype=dtype, seed=seed, l2=penalty)


def finite_arrays(shape, bound=3.0, dtype=np.float64):
    """Arrays of ``shape`` with finite values in ``[-bound, bound]``."""
    return hnp.arrays(
        dtype,
        shape,
        elements=st.floats(
            -bound, bound, allow_nan=False, allow_infinity=False, width=64 if dtype == np.float64 else 32
        ),
    )


@st.composite
def targets(draw, loss, n_samples, n_outputs, dtype=np.float64):
    """Draw targets valid for ``loss``.

    Any bounded values for MSE and Huber, probability rows (one-hot or soft)
    for cross-entropy, values in [0, 1] for binary cross-entropy, in [0, 5]
    for Poisson.
    """
    if loss in ("mse", "huber"):
        return draw(finite_arrays((n_samples, n_outputs), 2.0, dtype))
    if loss == "binary_cross_entropy":
        return draw(
            hnp.arrays(dtype, (n_samples, n_outputs), elements=st.floats(0, 1, width=64 if dtype == np.float64 else 32))
        )
    if loss == "poisson":
        return draw(
            hnp.arrays(dtype, (n_samples, n_outputs), elements=st.floats(0, 5, width=64 if dtype == np.float64 else 32))
        )
    if draw(st.booleans()):
        labels = draw(hnp.arrays(np.int64, n_samples, elements=st.integers(0, n_outputs - 1)))
        return np.eye(n_outputs, dtype=dtype)[labels]
    # Drawn in float64 (0.01 is not a float32) and cast after normalising.
    raw = draw(hnp.arrays(np.float64, (n_samples, n_outputs), elements=st.floats(0.01, 1)))
    return (raw / raw.sum(axis=1, keepdims=True)).astype(dtype)


@st.composite
def batches(draw, net, min_samples=1, max_samples=12, bound=3.0):
    """Draw a batch ``(X, Y)`` of finite, bounded data that fits ``net`` (batch size 1 included)."""
    n = draw(st.integers(min_samples, max_samples))
    X = draw(finite_arrays((n, net.sizes[0]), bound, net.dtype))
    Y = draw(targets(net.loss_name, n, net.sizes[-1], net.dtype))
    return X, Y


@st.composite
def network_and_batch(draw, dtype=np.float64, min_depth=1, max_depth=4, max_width=16, max_samples=12, l2=None):
    """``(net, X, Y)``: a network and a batch that fits it."""
    net = draw(networks(dtype, min_depth, max_depth, 1, max_width, l2=l2))
    X, Y = draw(batches(net, 1, max_samples))
    return net, X, Y


@st.composite
def sample_weights(draw, n_samples, allow_zero=True):
    """Non-negative sample weights with a positive sum."""
    lo = 0.0 if allow_zero else 0.1
    w = draw(hnp.arrays(np.float64, n_samples, elements=st.floats(lo, 3.0)))
    if w.sum() <= 0:
        w[draw(st.integers(0, n_samples - 1))] = 1.0
    return w


# ---------------------------------------------------------------------------
# Derivative checks for user-defined activations and losses
# ---------------------------------------------------------------------------

_EPS = sys.float_info.epsilon
#: Base step of the central difference, relative to max(1, |x|): eps ** (1/3)
#: balances the O(h^2) truncation error against the O(eps / h) rounding error.
_STEP = _EPS ** (1.0 / 3.0)
#: Fractions of the base step tried in turn; a point passes at the first step
#: that agrees.  The smaller steps only help next to a kink (a step shorter than
#: the distance to the kink no longer straddles it); for a smooth function they
#: are at least as accurate as the base step, so they never hide a wrong value.
_LADDER = (1.0, 1.0 / 8.0, 1.0 / 64.0)
#: Error allowed in each evaluation of the function, in units of eps * |value|.
_ROUNDING_ULPS = 4
#: Points always drawn when they lie in the range (besides its two ends).
#: Simplest first: Hypothesis shrinks a failure towards the front of this list.
_SPECIAL_POINTS = (0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 5.0, -5.0, 1e-3, -1e-3, 1e-6, -1e-6)


class _DerivativeMismatchError(AssertionError):
    """Raised inside the property; re-raised as a plain AssertionError."""


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _interval(value, what, *, strict=True):
    """Validate ``(lo, hi)``: two finite reals with lo < hi (lo <= hi unless strict)."""
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a (lo, hi) pair of finite numbers, got {value!r}") from None
    if not (_is_real(lo) and _is_real(hi)) or not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{what} must be a (lo, hi) pair of finite numbers, got {value!r}")
    lo, hi = float(lo), float(hi)
    if lo > hi or (strict and lo == hi):
        raise ValueError(f"{what} must have lo {'<' if strict else '<='} hi, got {value!r}")
    return lo, hi


def _validate_common(max_examples, rtol, atol, seed):
    if not isinstance(max_examples, numbers.Integral) or isinstance(max_examples, bool) or max_examples < 1:
        raise ValueError(f"max_examples must be an integer >= 1, got {max_examples!r}")
    for label, tol in (("rtol", rtol), ("atol", atol)):
        if not _is_real(tol) or not math.isfinite(tol) or tol < 0:
            raise ValueError(f"{label} must be a finite number >= 0, got {tol!r}")
    if seed is not None and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")


def _require_callables(obj, kind, attributes):
    missing = [attr for attr in attributes if not callable(getattr(obj, attr, None))]
    if missing:
        raise ValueError(
            f"{kind} object {obj!r} needs callable attribute(s) {', '.join(attributes)}; "
            f"missing or not callable: {', '.join(missing)}"
        )
    return str(getattr(obj, "name", repr(obj)))


def _points(lo, hi):
    """Floats in [lo, hi], mixed with 0, the ends and small round values inside."""
    special = []
    for p in (*_SPECIAL_POINTS, lo, hi, 0.5 * (lo + hi)):
        if lo <= p <= hi and p not in special:
            special.append(p)
    # sampled_from first: Hypothesis shrinks a failure towards these simple values.
    return st.one_of(st.sampled_from(special), st.floats(lo, hi))


def _evaluate(fn, *args):
    """``float(fn(*args))``, NaN where Python's math raises instead of returning inf/NaN.

    ``math.exp(1000)`` raises OverflowError and ``math.log(0)`` raises
    ValueError("math domain error") where IEEE arithmetic (NumPy, Numba) gives
    inf or NaN; both are "not finite" here.  NumPy's floating-point warnings are
    silenced for the same reason.  Any other exception is a bug in ``fn`` and
    propagates.
    """
    with np.errstate(all="ignore"):
        try:
            return float(fn(*args))
        except (OverflowError, ZeroDivisionError, FloatingPointError):
            return math.nan
        except ValueError as exc:
            if "math domain error" in str(exc):
                return math.nan
            raise


def _compare(f, d, x, rtol, atol):
    """Check ``d(x)`` against central differences of ``f`` around ``x``.

    Returns ``("ok", None)``, ``("skip", reason)`` or ``("fail", (analytic,
    numeric, step, tolerance))``.
    """
    fx, dx = _evaluate(f, x), _evaluate(d, x)
    if not (math.isfinite(fx) and math.isfinite(dx)):
        return "skip", "non-finite value or derivative"
    scale = max(1.0, abs(x))
    first = None
    for fraction in _LADDER:
        xp, xm = x + _STEP * scale * fraction, x - _STEP * scale * fraction
        if not (math.isfinite(xp) and math.isfinite(xm)):  # x within a step of the float range's end
            return "skip", "step leaves the float range"
        fp, fm = _evaluate(f, xp), _evaluate(f, xm)
        if not (math.isfinite(fp) and math.isfinite(fm)):
            return "skip", "non-finite value next to the point"
        h = 0.5 * (xp - xm)  # the step actually taken, after rounding x +- h
        numeric = (fp - fm) / (xp - xm)
        noise = _ROUNDING_ULPS * _EPS * max(abs(fp), abs(fx), abs(fm)) / h
        tol = atol + rtol * max(abs(dx), abs(numeric)) + noise
        if abs(dx - numeric) <= tol:
            return "ok", None
        if first is None:
            first = (dx, numeric, h, tol)
    # Every step disagrees: either the derivative is wrong, or even the smallest
    # stencil straddles a kink.  Across a kink the one-sided slopes differ by a
    # jump that does not shrink with the step, and a correct derivative lies
    # between them (one of them, or a convention such as relu'(0) = 0.5).  For a
    # smooth function they differ by only about h * f'' at the smallest step,
    # under twice the tolerance, so a wrong smooth derivative is never excused.
    # (A straddled kink whose slopes differ by less than that passed above: the
    # central difference is their mean.)
    left, right = (fx - fm) / (x - xm), (fp - fx) / (xp - x)
    tol = atol + rtol * max(abs(dx), abs(left), abs(right)) + 2.0 * noise
    if abs(right - left) > 2.0 * tol and min(left, right) - tol <= dx <= max(left, right) + tol:
        return "skip", "kink"
    return "fail", first


def _run_property(strategy, always, check, message, describe, max_examples, seed):
    """Run ``check(point)`` as a seeded Hypothesis property over ``strategy``, then at ``always``."""
    counts = {"ok": 0, "skip": 0}

    def derivative_matches(point):
        status, info = check(point)
        if status == "fail":
            raise _DerivativeMismatchError(message(point, info))
        counts[status] += 1

    test = given(point=strategy)(derivative_matches)
    test = hypothesis.settings(
        max_examples=max_examples,
        derandomize=False,
        database=None,
        deadline=None,
        phases=(Phase.generate, Phase.shrink),
        report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow],
    )(test)
    if seed is not None:
        test = hypothesis.seed(seed)(test)
    try:
        test()
    except _DerivativeMismatchError as exc:
        # Hypothesis re-raises the shrunk failure with its own notes; hand back
        # one plain AssertionError that carries only our message.
        raise AssertionError(str(exc)) from None
    # The points that must always be checked run after the search rather than as
    # @example: a failure found by the search is shrunk to the simplest one,
    # while an explicit example would be reported as it stands (a domain end).
    for point in always:
        try:
            derivative_matches(point)
        except _DerivativeMismatchError as exc:
            raise AssertionError(str(exc)) from None
    if counts["ok"] == 0:
        raise AssertionError(
            f"{describe}: no point could be checked; all {counts['skip']} drawn points were skipped "
            "(non-finite value or derivative, or a kink), so there is no evidence either way"
        )


def check_activation(act, *, domain=(-20.0, 20.0), max_examples=200, rtol=1e-5, atol=1e-7, seed=0):
    """Check ``act.derivative`` against central differences of ``act.function``.

    A Hypothesis property over ``z`` in ``domain``: floats across the whole
    range mixed with 0, the two ends and small round values (±1e-6, ±1e-3,
    ±0.5, ±1, ...); 0 and both ends are always checked.  At each ``z`` the
    central difference ``(f(z + h) - f(z - h)) / 2h`` with
    ``h = eps**(1/3) * max(1, |z|)`` (about ``6e-6 * max(1, |z|)``) must satisfy::

        |d - num| <= atol + rtol * max(|d|, |num|) + 4 * eps * max|f| / h

    where ``d = act.derivative(z)``.  The last term is the rounding error of
    the difference itself and matters only when ``|f|`` is huge next to
    ``|f'|``.  Where the base step fails, steps ``h/8`` and ``h/64`` are
    tried (they only help next to a kink).

    Points are **skipped**, not failed, where ``f(z)``, ``f(z ± h)`` or
    ``d(z)`` is not finite (an OverflowError or "math domain error" from
    :mod:`math` counts as not finite), and where ``f`` has a kink: the left
    and right one-sided differences disagree by more than twice the tolerance
    while ``d`` lies between them (ReLU at 0).  A derivative outside the
    one-sided slopes at a kink still fails.

    Parameters
    ----------
    act : object
        Has ``name`` (str), and ``function(z)`` and ``derivative(z)``
        callables taking and returning a float (Numba dispatchers work).
    domain : (float, float), default (-20.0, 20.0)
        Finite ``(lo, hi)`` with ``lo < hi``.
    max_examples : int, default 200
        Generated points, besides the always-checked ones.
    rtol, atol : float, default 1e-5, 1e-7
        With ``h`` as above, the truncation error (``h**2 |f'''| / 6``,
        about ``6e-12 max(1, |z|)**2 |f'''|``) and the rounding error
        (about ``4e-11 |f| / max(1, |z|)``) of a float64 central difference
        are near 1e-10 for activations of moderate size, so ``rtol = 1e-5``
        leaves five orders of magnitude of margin for correct derivatives
        while a genuine mistake (a missing term, a wrong factor, a sign) is
        off by far more.  ``atol = 1e-7`` covers derivatives that are nearly
        0, where a relative comparison means nothing (sigmoid' is 2e-9 at
        ``z = 20``).
    seed : int or None, default 0
        Seeds Hypothesis, so the same call checks the same points and reports
        the same failure.  ``None`` draws fresh points on every call.

    Notes
    -----
    The check runs its own ``@given`` property with its own settings (no
    example database, no deadline), whatever Hypothesis profile is loaded.
    Called from inside another ``@given`` test, it needs
    ``@settings(suppress_health_check=[HealthCheck.nested_given])`` on that
    outer test, as any nested ``@given`` does.

    Raises
    ------
    AssertionError
        When the derivative is wrong somewhere: the message names the
        activation, the (shrunk) falsifying ``z``, the analytic and numerical
        derivatives.  Also when every point was skipped (no evidence).
    ValueError
        For a bad ``domain``, ``max_examples``, tolerance or ``seed``, or an
        ``act`` without callable ``function`` and ``derivative``.

    Examples
    --------
    >>> import math
    >>> from types import SimpleNamespace
    >>> softplus = SimpleNamespace(
    ...     name="softplus",
    ...     function=lambda z: math.log1p(math.exp(z)),
    ...     derivative=lambda z: 1.0 / (1.0 + math.exp(-z)),
    ... )
    >>> check_activation(softplus, max_examples=50)
    >>> softplus.derivative = lambda z: 1.0 / (1.0 + math.exp(z))  # sign error
    >>> check_activation(softplus, max_examples=50)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: activation 'softplus': wrong derivative at z = ...
    """
    name = _require_callables(act, "activation", ("function", "derivative"))
    lo, hi = _interval(domain, "domain")
    _validate_common(max_examples, rtol, atol, seed)
    describe = f"activation {name!r}"

    def check(point):
        return _compare(act.function, act.derivative, point[0], rtol, atol)

    def message(point, info):
        analytic, numeric, h, tol = info
        return (
            f"{describe}: wrong derivative at z = {point[0]!r}: derivative(z) = {analytic!r}, "
            f"but the central difference of function gives {numeric!r} "
            f"(|difference| {abs(analytic - numeric):.3g} > tolerance {tol:.3g}, step h = {h:.3g})"
        )

    always = [(z,) for z in dict.fromkeys(p for p in (0.0, lo, hi) if lo <= p <= hi)]
    _run_property(st.tuples(_points(lo, hi)), always, check, message, describe, max_examples, seed)


def check_loss(loss, *, domain=(-10.0, 10.0), targets=None, max_examples=200, rtol=1e-5, atol=1e-7, seed=0):
    """Check ``loss.derivative`` (∂c/∂a) against central differences of ``loss.cost`` in ``a``.

    The same property as :func:`check_activation`, over pairs ``(a, y)``:
    ``a`` in ``domain`` (mixed with 0, the ends and small round values), ``y``
    from ``targets``.  Only ``a`` is perturbed: ``h = eps**(1/3) * max(1, |a|)``
    and ``(c(a + h, y) - c(a - h, y)) / 2h`` is compared with
    ``loss.derivative(a, y)`` under the same tolerance.  Points where a cost or
    the derivative is not finite, and kinks in ``a`` (``|a - y|`` at
    ``a == y``), are skipped.  ``(0, y0)``, ``(lo, y0)`` and ``(hi, y0)`` are
    always checked, ``y0`` being the target nearest 0, unless ``targets`` is a
    strategy.

    Parameters
    ----------
    loss : object
        Has ``name`` (str), and ``cost(a, y)`` and ``derivative(a, y)``
        callables on floats, the derivative being ∂c/∂a for one output.
    domain : (float, float), default (-10.0, 10.0)
        Finite ``(lo, hi)`` with ``lo < hi``, the range of ``a``.
    targets : None, (float, float) or hypothesis strategy, default None
        Where ``y`` comes from: ``None`` for the same range as ``a``; a finite
        ``(lo, hi)`` with ``lo <= hi`` (equal for one fixed target, e.g.
        ``(0.0, 1.0)`` for binary cross-entropy); or any strategy of floats,
        such as ``st.sampled_from([0.0, 1.0])``.
    max_examples : int, default 200
        Generated pairs, besides the always-checked ones.
    rtol, atol : float, default 1e-5, 1e-7
        As for :func:`check_activation`, with the same justification.
    seed : int or None, default 0
        Seeds Hypothesis; ``None`` draws fresh pairs on every call.

    Raises
    ------
    AssertionError
        When the derivative is wrong somewhere: the message names the loss,
        the (shrunk) falsifying ``a`` and ``y``, the analytic and numerical
        derivatives.  Also when every pair was skipped.
    ValueError
        For a bad ``domain``, ``targets``, ``max_examples``, tolerance or
        ``seed``, or a ``loss`` without callable ``cost`` and ``derivative``.

    Examples
    --------
    >>> import math
    >>> from types import SimpleNamespace
    >>> log_cosh = SimpleNamespace(
    ...     name="log_cosh",
    ...     cost=lambda a, y: math.log(math.cosh(a - y)),
    ...     derivative=lambda a, y: math.tanh(a - y),
    ... )
    >>> check_loss(log_cosh, max_examples=50)
    >>> check_loss(log_cosh, targets=(0.0, 1.0), max_examples=50)
    """
    name = _require_callables(loss, "loss", ("cost", "derivative"))
    lo, hi = _interval(domain, "domain")
    _validate_common(max_examples, rtol, atol, seed)
    if targets is None:
        y_lo, y_hi = lo, hi
    elif isinstance(targets, st.SearchStrategy):
        y_lo = y_hi = None
    else:
        y_lo, y_hi = _interval(targets, "targets", strict=False)
    y_strategy = targets if y_lo is None else _points(y_lo, y_hi)
    describe = f"loss {name!r}"

    def check(point):
        a, y = point
        return _compare(lambda x: loss.cost(x, y), lambda x: loss.derivative(x, y), a, rtol, atol)

    def message(point, info):
        a, y = point
        analytic, numeric, h, tol = info
        return (
            f"{describe}: wrong derivative at a = {a!r}, y = {y!r}: derivative(a, y) = {analytic!r}, "
            f"but the central difference of cost in a gives {numeric!r} "
            f"(|difference| {abs(analytic - numeric):.3g} > tolerance {tol:.3g}, step h = {h:.3g})"
        )

    always = []
    if y_lo is not None:
        y0 = min(max(0.0, y_lo), y_hi)
        always = [(a, y0) for a in dict.fromkeys(p for p in (0.0, lo, hi) if lo <= p <= hi)]
    _run_property(st.tuples(_points(lo, hi), y_strategy), always, check, message, describe, max_examples, seed)
