"""Finite-difference verification of a network's gradients (public).

:func:`gradcheck` perturbs every parameter by ``±eps``, evaluates
``net.loss`` at both points, and compares the central difference with
``net.gradients``.  It calls exactly those two methods, so a subclass that
overrides them is checked as it behaves.  Work is in float64: a float32
network is checked through a float64 copy of itself.

Kinks: a central difference across a point where some ReLU (or leaky
ReLU) pre-activation changes sign measures an average of two slopes, not the
derivative; across the origin of an ELU, whose second derivative jumps there,
it is only first-order accurate, and so is one across a Huber residual
``|a - y| = δ``, where the loss turns from quadratic to linear.  For every parameter the check runs the
forward pass at both perturbed points and, when any ReLU-like unit's sign
pattern (or, for the Huber loss, any output's side of δ) differs between
them, marks the entry as straddling a kink and leaves it out of the
comparison.  Such entries are counted and named in the report, never silently
compared.  When every probed entry straddles a kink, nothing was compared and
the check does not pass: there is no evidence either way.
"""

import numbers
from dataclasses import dataclass, field

import numpy as np

from numbanet.kernels.activations import BUILTINS as _BUILTINS
from numbanet.kernels.losses import HUBER_DELTA as _HUBER_DELTA

#: Built-in activations that change formula at z = 0 (relu, leaky_relu, elu).
_KINKED = tuple(name for name, b in _BUILTINS.items() if b.kink)


@dataclass
class Entry:
    """One compared (or skipped) parameter."""

    layer: int  # 1-based weighted layer
    param: str  # "W" or "b"
    index: tuple
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float
    kink: bool = False


@dataclass
class GradcheckResult:
    """Outcome of :func:`gradcheck`.

    Attributes
    ----------
    passed : bool
        At least one entry was compared, and every compared entry satisfies
        ``|a - n| <= atol + rtol * max(|a|, |n|)``.  False when nothing was
        compared (every probed entry straddled a kink).
    max_rel_error, mean_rel_error : float
        Over compared entries, of ``|a - n| / max(|a|, |n|)`` (0 where both
        are below ``atol``); NaN when nothing was compared.
    max_abs_error : float
        NaN when nothing was compared.
    n_checked : int
        Entries compared.
    n_kink : int
        Entries left out because their finite difference straddles a kink.
    failures : list of Entry
        Compared entries outside the tolerance.
    worst : list of Entry
        The entries with the largest relative errors.
    report : str
        A readable summary naming the worst entries.
    """

    passed: bool
    max_rel_error: float
    mean_rel_error: float
    max_abs_error: float
    n_checked: int
    n_kink: int
    eps: float
    rtol: float
    atol: float
    failures: list = field(default_factory=list)
    worst: list = field(default_factory=list)
    kinks: list = field(default_factory=list)
    report: str = ""

    def __str__(self):
        return self.report

    def __repr__(self):
        return (
            f"GradcheckResult(passed={self.passed}, max_rel_error={self.max_rel_error:.3g}, "
            f"n_checked={self.n_checked}, n_kink={self.n_kink})"
        )


def _kink_sides(net, X, Y):
    """Which side of its kink every ReLU-like pre-activation and, for the Huber loss, every residual is on."""
    Z, A = net.forward(X)
    sides = [z > 0 for z, act in zip(Z, net.activation_names) if act in _KINKED]
    if net.loss_name == "huber":
        out = A[-1]
        sides.append(np.abs(out - np.asarray(Y, dtype=out.dtype).reshape(out.shape)) > _HUBER_DELTA)
    return sides


def gradcheck(net, X, Y, sample_weight=None, eps=1e-5, rtol=1e-5, atol=1e-8, max_entries=None, seed=0, n_worst=5):
    """Compare ``net.gradients`` with central differences of ``net.loss``.

    Parameters
    ----------
    net : Network
        Left unchanged (parameters are restored exactly after each probe).
    X : array-like of shape (n_samples, n_features)
    Y : array-like of shape (n_samples, n_outputs)
    sample_weight : array-like of shape (n_samples,), optional
        Passed to both ``loss`` and ``gradients``.
    eps : float, default 1e-5
        Perturbation of each parameter.  The central difference has a
        truncation error of order ``eps**2`` and a rounding error of order
        ``1e-16 / eps`` relative to the cost; ``1e-5`` (about the cube root of
        float64's rounding unit) balances the two; a smaller ``eps`` lets the
        rounding term fail random property tests spuriously.
    rtol, atol : float
        An entry passes when ``|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)``.
    max_entries : int, optional
        Check a random subset of this many parameters (seeded by ``seed``)
        instead of all of them, for large networks.  A positive integer;
        None (the default) checks every parameter.
    n_worst : int, default 5
        How many of the worst entries the report lists.

    Returns
    -------
    GradcheckResult
        ``passed`` is False when no entry could be compared (all probed
        entries straddle a kink); the report says so.

    Raises
    ------
    ValueError
        For ``eps <= 0``, or ``max_entries`` that is not a positive integer or
        None (0, negative, a float or a bool); nothing is evaluated.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0; got {eps}")
    if max_entries is not None and (
        isinstance(max_entries, bool) or not isinstance(max_entries, numbers.Integral) or max_entries < 1
    ):
        raise ValueError(f"max_entries must be a positive integer or None; got {max_entries!r}")
    work = net if net.dtype == np.float64 else net.astype(np.float64)
    kw = {} if sample_weight is None else {"sample_weight": sample_weight}
    dW, db = work.gradients(X, Y, **kw)
    kinked = work.loss_name == "huber" or any(act in _KINKED for act in work.activation_names)

    targets = []
    for l, (W, b) in enumerate(zip(work.weights, work.biases)):
        targets += [(l, "W", idx) for idx in np.ndindex(W.shape)]
        targets += [(l, "b", idx) for idx in np.ndindex(b.shape)]
    if max_entries is not None and max_entries < len(targets):
        pick = np.random.default_rng(seed).choice(len(targets), size=int(max_entries), replace=False)
        targets = [targets[i] for i in sorted(pick)]

    entries = []
    for l, name, idx in targets:
        arr = work.weights[l] if name == "W" else work.biases[l]
        analytic = float((dW if name == "W" else db)[l][idx])
        original = arr[idx]
        try:
            arr[idx] = original + eps
            plus = work.loss(X, Y, **kw)
            signs_plus = _kink_sides(work, X, Y) if kinked else None
            arr[idx] = original - eps
            minus = work.loss(X, Y, **kw)
            signs_minus = _kink_sides(work, X, Y) if kinked else None
        finally:
            arr[idx] = original
        numeric = (plus - minus) / (2 * eps)
        kink = kinked and any(not np.array_equal(p, m) for p, m in zip(signs_plus, signs_minus))
        err = abs(analytic - numeric)
        scale = max(abs(analytic), abs(numeric))
        rel = err / scale if scale > atol else 0.0
        entries.append(Entry(l + 1, name, tuple(int(i) for i in idx), analytic, numeric, err, rel, kink))

    compared = [e for e in entries if not e.kink]
    kinks = [e for e in entries if e.kink]
    failures = [e for e in compared if not e.abs_error <= atol + rtol * max(abs(e.analytic), abs(e.numeric))]
    # Over no compared entry the errors are undefined (NaN), and nothing has passed.
    rels = np.array([e.rel_error for e in compared]) if compared else np.full(1, np.nan)
    worst = sorted(compared, key=lambda e: (e.rel_error, e.abs_error), reverse=True)[:n_worst]
    result = GradcheckResult(
        passed=bool(compared) and not failures,
        max_rel_error=float(rels.max()),
        mean_rel_error=float(rels.mean()),
        max_abs_error=max((e.abs_error for e in compared), default=float("nan")),
        n_checked=len(compared),
        n_kink=len(kinks),
        eps=eps,
        rtol=rtol,
        atol=atol,
        failures=failures,
        worst=worst,
        kinks=kinks,
    )
    result.report = _report(result, net, len(targets))
    return result


def _fmt(e):
    idx = ",".join(map(str, e.index))
    where = f"  {e.layer:>5}  {e.param:>5}  {'(' + idx + ')':<10}"
    return f"{where} {e.analytic:>+15.8e} {e.numeric:>+15.8e} {e.rel_error:>10.2e}"


def _kink_words(net):
    """How the report names the kinks ``net`` has, and what straddling one means."""
    if net.loss_name == "huber":
        return "a kink", "a ReLU-like pre-activation changes sign, or a Huber residual crosses ±δ, within ±eps"
    return "a ReLU kink", "a pre-activation changes sign within ±eps"


def _report(r, net, n_targets):
    kink, straddling = _kink_words(net)
    if r.n_checked == 0:
        verdict = f"FAILED (nothing compared: all {n_targets} probed entries straddle {kink})"
    elif r.passed:
        verdict = "PASSED"
    else:
        verdict = f"FAILED ({len(r.failures)} entries outside tolerance)"
    if r.n_checked:
        summary = (
            f"compared {r.n_checked} of {n_targets} entries; max relative error {r.max_rel_error:.3e}, "
            f"mean {r.mean_rel_error:.3e}, max absolute error {r.max_abs_error:.3e}"
        )
    else:
        more = ", or probe more entries (max_entries)" if n_targets < net.n_params else ""
        summary = (
            f"compared 0 of {n_targets} entries: nothing was verified; move X or the parameters away "
            f"from the kinks or use a smaller eps{more}"
        )
    lines = [
        f"gradcheck {verdict}: {type(net).__name__} {list(net.sizes)}, loss {net.loss_name!r}, "
        f"checked in float64 with eps={r.eps:g}, rtol={r.rtol:g}, atol={r.atol:g}",
        summary,
    ]
    if r.n_kink:
        lines.append(
            f"{r.n_kink} entries were not compared: their finite difference straddles {kink} "
            f"({straddling}), e.g. " + ", ".join(f"layer {e.layer} {e.param}{e.index}" for e in r.kinks[:3])
        )
    header = f"  {'layer':>5}  {'param':>5}  {'index':<10} {'analytic':>15} {'numeric':>15} {'rel.error':>10}"
    if r.failures:
        lines.append("entries outside tolerance (worst first):")
        lines.append(header)
        lines += [_fmt(e) for e in sorted(r.failures, key=lambda e: e.rel_error, reverse=True)[: len(r.worst) or 5]]
    elif r.worst:
        lines.append("worst entries:")
        lines.append(header)
        lines += [_fmt(e) for e in r.worst]
    return "\n".join(lines)
