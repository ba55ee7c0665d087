"""How long Ctrl-C takes to stop fit, a validation pass, predict and loss.

A timer thread sends this process SIGINT a while after the call starts; the
figure is the time from the signal to ``KeyboardInterrupt`` reaching the
caller (the median of a few tries).  A Numba kernel cannot be interrupted,
so the latency is at most one kernel call: a training slice (about
``config.SLICE_SECONDS``), one mini-batch when a mini-batch is longer than
that, or one row chunk of predict / loss / validation (at most
``config.CHUNK_WORK`` multiply-adds).

Run: ``python benchmarks/interrupt_latency.py`` (``--quick`` for smaller cases).
"""

import argparse
import os
import signal
import statistics
import threading
import time

import numpy as np

import numbanet


def _latency(call, delay):
    sent = []

    def fire():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(delay, fire)
    start = time.perf_counter()
    timer.start()
    try:
        call()
    except KeyboardInterrupt:
        return time.perf_counter() - sent[0]
    finally:
        timer.cancel()
    raise RuntimeError(f"the call ended after {time.perf_counter() - start:.2f} s, before Ctrl-C; make it longer")


def _case(name, call, delay, tries):
    call_once = [_latency(call, delay) for _ in range(tries)]
    print(f"{name:<62} {1000 * statistics.median(call_once):8.1f} ms  (max {1000 * max(call_once):.1f})", flush=True)


def main():
    """Print the latency of each case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = 20_000 if not args.quick else 4_000
    X = rng.normal(size=(n, 784))
    Y = np.eye(10)[rng.integers(0, 10, n)]
    small = numbanet.Network([784, 128, 10], activations=["relu", "softmax"], loss="cross_entropy", seed=0)
    acts = ["relu", "relu", "softmax"]
    wide = numbanet.Network([784, 1024, 1024, 10], activations=acts, loss="cross_entropy", seed=0)
    for net in (small, wide):  # compile or load the kernels first
        net.fit(X[:64], Y[:64], epochs=1, batch_size=32, validation_data=(X[:8], Y[:8]), progress=False)
    print(f"{'case':<62} {'latency':>11}")
    for batch in (64, 1024, n):
        _case(
            f"fit 784-128-10 float64, batch {batch}",
            lambda b=batch: small.fit(X, Y, epochs=1000, batch_size=b, progress=False),
            0.3,
            args.tries,
        )
    for batch in (256, 2000):
        _case(
            f"fit 784-1024-1024-10 float64, batch {batch}",
            lambda b=batch: wide.fit(X, Y, epochs=1000, batch_size=b, progress=False),
            0.5,
            args.tries,
        )
    Xv, Yv = X, Y
    _case(
        f"fit 784-1024-1024-10, in the validation of {n} rows",
        lambda: wide.fit(X[:32], Y[:32], epochs=1000, batch_size=32, validation_data=(Xv, Yv), progress=False),
        0.5,
        args.tries,
    )
    big = np.concatenate([X] * (10 if not args.quick else 5))
    rows = big.shape[0]
    _case(f"predict 784-128-10 of {rows} rows", lambda: [small.predict(big) for _ in range(100)], 0.3, args.tries)
    _case(f"predict 784-1024-1024-10 of {n} rows", lambda: [wide.predict(X) for _ in range(100)], 0.3, args.tries)
    _case(f"loss 784-1024-1024-10 of {n} rows", lambda: [wide.loss(X, Y) for _ in range(100)], 0.3, args.tries)


if __name__ == "__main__":
    main()
