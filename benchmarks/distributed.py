r"""Measure data-parallel training on Dask: the per-step cost of ``sync`` and the throughput of ``local``.

Usage::

    python benchmarks/distributed.py                 # everything (a few minutes on 2 cores)
    python benchmarks/distributed.py --quick         # smoke run: small nets and batches, few steps
    python benchmarks/distributed.py --json out.json # also write the results as JSON

It starts a ``LocalCluster`` of 2 worker processes with 1 thread each and
measures, on synthetic MNIST-shaped data (float64):

``sync`` per step, for each network and global batch size
    * ``one_ms``: one optimizer step of ``net.fit`` on one machine (median
      step time of a fit);
    * ``grad_ms``: the gradient of half the batch (one worker's share) plus
      the client's update, measured in this process -- the compute a step
      of 2 workers cannot avoid;
    * ``step_ms``: one step of ``DataParallel(strategy="sync")``, measured over
      the training loop (set-up excluded);
    * ``overhead_ms = step_ms - grad_ms``: what distribution adds per step
      (actor round trips, (de)serialisation, the client's sum);
    * ``echo_ms``: one round trip to both workers carrying the parameters out
      and a parameter-sized array back, with no computation -- the floor of
      the overhead;
    * ``bytes``: payload bytes per step (parameters out, gradients back,
      summed over the workers).

``local`` throughput
    Samples per second of ``strategy="local"`` for several ``sync_every``,
    against ``net.fit`` on one machine, and the bytes per averaging round.

docs/distributed.md turns these figures into a scaling model.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# This file's folder first on sys.path would make ``import distributed`` find this very script.
sys.path[:] = [ROOT] + [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

import numbanet  # noqa: E402
from numbanet.distributed import DataParallel  # noqa: E402


class Echo:
    """An actor that returns a parameter-sized array: a step's communication without its computation."""

    def __init__(self, n):
        self.out = np.zeros(n)

    def echo(self, theta):
        return self.out.copy()


def data(n, n_in=784, n_out=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, n_in))
    Y = np.eye(n_out)[rng.integers(0, n_out, n)]
    return X, Y


def make_net(sizes, seed=0):
    acts = ["relu"] * (len(sizes) - 2) + ["softmax"]
    return numbanet.Network(sizes, activations=acts, loss="cross_entropy", seed=seed)


class StepTimer(numbanet.Callback):
    """Not a per-step timer (fit has none): the epoch times of a fit whose epochs are single steps."""

    def __init__(self):
        self.times = []

    def on_train_begin(self, net):
        self.last = time.perf_counter()

    def on_epoch_end(self, net, history):
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now


def one_machine_step(sizes, X, Y, batch, steps):
    """Median seconds of one step of ``net.fit`` (each epoch one batch of ``batch`` rows)."""
    net = make_net(sizes)
    timer = StepTimer()
    net.fit(X[:batch], Y[:batch], epochs=steps + 1, batch_size=batch, optimizer=numbanet.SGD(lr=0.01),
            shuffle=False, progress=False, callbacks=timer)
    return statistics.median(timer.times[1:])


def worker_compute(sizes, X, Y, batch, workers, repeats):
    """Median seconds of one worker's gradient share plus the client's optimizer step, on one core.

    The BLAS runs single-threaded here, as in a Dask worker process with one thread.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _worker_compute(sizes, X, Y, batch, workers, repeats)


def _worker_compute(sizes, X, Y, batch, workers, repeats):
    from numbanet.kernels import training as _train
    from numbanet.kernels.updates import update

    net = make_net(sizes)
    m = -(-batch // workers)
    Xb, Yb = X[:m], Y[:m]
    opt = numbanet.SGD(lr=0.01)
    opt.bind(net.n_params, net.dtype)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        grad = np.empty_like(net.params)
        ws, cap = net._buffers.acquire(m)
        _train.cost_and_gradient_flat(*net._model(), Xb, Yb, np.ones(m), float(batch), ws, cap, grad, True)
        net._buffers.release(ws)
        update(opt._code, net.params, grad, opt.state, opt._hyper(), 0.01, 1)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def echo_round_trip(client, n_params, repeats, n_workers=2):
    workers = sorted(client.scheduler_info()["workers"])[:n_workers]
    actors = [client.submit(Echo, n_params, actor=True, workers=[w]).result() for w in workers]
    theta = np.zeros(n_params)
    times = []
    for _ in range(repeats + 3):
        start = time.perf_counter()
        futures = [a.echo(theta) for a in actors]
        for f in futures:
            f.result()
        times.append(time.perf_counter() - start)
    del actors
    return statistics.median(times[3:])


def sync_step(client, sizes, X, Y, batch, steps):
    net = make_net(sizes)
    dp = DataParallel(net, client)
    n = batch * steps
    dp.fit(X[:n], Y[:n], epochs=1, batch_size=batch, optimizer=numbanet.SGD(lr=0.01), shuffle=False, progress=False)
    c = dp.comm
    return c["loop_seconds"] / c["steps"], (c["bytes_to_workers"] + c["bytes_from_workers"]) / c["steps"]


def bench_sync(client, nets, batches, steps, repeats):
    rows = []
    for name, sizes in nets:
        n_params = make_net(sizes).n_params
        echo = echo_round_trip(client, n_params, repeats)
        for batch in batches:
            X, Y = data(batch * steps, sizes[0], sizes[-1])
            one = one_machine_step(sizes, X, Y, batch, steps)
            comp = worker_compute(sizes, X, Y, batch, 2, repeats)
            step, nbytes = sync_step(client, sizes, X, Y, batch, steps)
            row = {"net": name, "n_params": n_params, "batch": batch, "one_ms": one * 1e3, "grad_ms": comp * 1e3,
                   "step_ms": step * 1e3, "overhead_ms": (step - comp) * 1e3, "echo_ms": echo * 1e3,
                   "bytes": nbytes, "speedup": one / step}
            rows.append(row)
            print(f"sync {name:>16} batch {batch:5d}: one machine {row['one_ms']:8.2f} ms, worker share + update "
                  f"{row['grad_ms']:8.2f} ms, DataParallel {row['step_ms']:8.2f} ms, overhead "
                  f"{row['overhead_ms']:6.2f} ms (echo {row['echo_ms']:5.2f} ms), {nbytes / 1e6:6.2f} MB/step, "
                  f"speed-up {row['speedup']:4.2f}x", flush=True)
    return rows


def bench_local(client, sizes, batch, sync_everys, epochs, n):
    X, Y = data(n, sizes[0], sizes[-1])
    net = make_net(sizes)
    start = time.perf_counter()
    h = net.fit(X, Y, epochs=epochs, batch_size=batch, optimizer=numbanet.SGD(lr=0.01), progress=False)
    one = h.samples / (time.perf_counter() - start)
    rows = [{"sync_every": None, "samples_per_s": one, "relative": 1.0}]
    print(f"local {sizes} batch {batch}: one machine {one:10.0f} samples/s", flush=True)
    for k in sync_everys:
        net = make_net(sizes)
        dp = DataParallel(net, client, strategy="local", sync_every=k)
        h = dp.fit(X, Y, epochs=epochs, batch_size=batch, optimizer=numbanet.SGD(lr=0.01), progress=False)
        c = dp.comm
        rate = h.samples / c["loop_seconds"]
        row = {"sync_every": k, "samples_per_s": rate, "relative": rate / one, "rounds": c["rounds"],
               "round_ms": c["loop_seconds"] / c["rounds"] * 1e3,
               "bytes_per_round": (c["bytes_to_workers"] + c["bytes_from_workers"]) / c["rounds"]}
        rows.append(row)
        print(f"local sync_every {k:5d}: {rate:10.0f} samples/s ({row['relative']:4.2f}x one machine), "
              f"{c['rounds']} rounds of {row['round_ms']:7.2f} ms, {row['bytes_per_round'] / 1e6:5.2f} MB/round",
              flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small nets and batches, few steps")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    from dask.distributed import Client, LocalCluster

    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [ROOT, os.environ.get("PYTHONPATH", "")] if p)
    if args.quick:
        nets = [("64-32-10", [64, 32, 10])]
        batches, steps, repeats = [64, 256], 3, 3
        local = ([64, 32, 10], 32, [1, 10], 1, 2048)
    else:
        nets = [("784-128-10", [784, 128, 10]), ("784-512-512-10", [784, 512, 512, 10])]
        batches, steps, repeats = [256, 1024, 4096], 6, 7
        local = ([784, 128, 10], 32, [1, 10, 100, 1000], 2, 16384)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40) as cluster, Client(cluster) as client:
        DataParallel(make_net([4, 3, 2]), client).fit(*data(8, 4, 2), progress=False)  # warm-up on the workers
        latency = {"one_worker_ms": echo_round_trip(client, 1, 4 * repeats, 1) * 1e3,
                   "two_workers_ms": echo_round_trip(client, 1, 4 * repeats, 2) * 1e3}
        print(f"round trip of an empty step: 1 worker {latency['one_worker_ms']:.2f} ms, "
              f"2 workers {latency['two_workers_ms']:.2f} ms", flush=True)
        sync = bench_sync(client, nets, batches, steps, repeats)
        loc = bench_local(client, *local)
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform(), "numpy": np.__version__},
              "load_average": os.getloadavg(), "workers": 2, "threads_per_worker": 1, "latency": latency,
              "sync": sync, "local": loc}
    print(f"load average of the machine: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
