"""Timing and verdicts for ``benchmarks/run.py``: interleaved rounds with a settle pause."""

import gc
import statistics
import time

#: Pause before each timed unit, in seconds (``--settle``).  BLAS and OpenMP
#: worker threads busy-wait for a while after a call (OpenBLAS, libgomp); on a
#: machine with few cores the threads a peer left spinning would otherwise
#: steal the CPU from whichever implementation runs next.
SETTLE = 0.2


def interleaved(units, rounds):
    """Run every ``units[name]()`` once to warm up, then ``rounds`` round-robin rounds.

    Each timed run starts after a garbage collection and a pause of
    :data:`SETTLE` seconds, so that it does not share the CPU with the worker
    threads the previous implementation left spinning.

    Returns
    -------
    dict name -> list of seconds (one per round)
    """
    names = list(units)
    for name in names:
        units[name]()
    times = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            gc.collect()
            if SETTLE > 0:
                time.sleep(SETTLE)
            t0 = time.perf_counter()
            units[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def summary(ts, scale=1.0):
    """Return the median, minimum, maximum and all of the times ``ts``, each times ``scale``."""
    s = [t * scale for t in ts]
    return {"median": statistics.median(s), "min": min(s), "max": max(s), "runs": s}


def fmt_time(t):
    """Format ``t`` seconds in s, ms or us."""
    if t >= 1.0:
        return f"{t:8.3f} s "
    if t >= 1e-3:
        return f"{t * 1e3:8.2f} ms"
    return f"{t * 1e6:8.2f} us"


def fmt_target(target, unit="x"):
    """Format ``target = (op, bound)`` with ``unit`` ("-" when None)."""
    return f"{target[0]} {target[1]:g}{unit}" if target else "-"


def check(what, value, target):
    """Return a summary row: ``value`` against ``target = (op, bound)`` (or None)."""
    verdict = None
    if target is not None:
        op, bound = target
        verdict = "meets" if (value >= bound if op == ">=" else value <= bound) else "SHORT"
    return {"what": what, "value": value, "target": list(target) if target else None, "verdict": verdict}
