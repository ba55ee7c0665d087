r"""Measure data-parallel training on Dask: the per-step cost of ``sync`` and the throughput of ``local``.

Usage::

    python benchmarks/dataparallel.py                 # everything (a few minutes on 2 cores)
    python benchmarks/dataparallel.py --quick         # smoke run: small nets and batches, few steps
    python benchmarks/dataparallel.py --json out.json # also write the results as JSON

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
sys.path.insert(0, ROOT)  # this checkout's numbanet, not an editable install's

import numbanet  # noqa: E402
from numbanet.distributed import DataParallel, worker_addresses  # noqa: E402


class Echo:
    """An actor that returns a parameter-sized array: a step's communication without its computation."""

    def __init__(self, n):
        self.out = np.zeros(n)

    def echo(self, theta):
        """Return a parameter-sized array, whatever came in."""
        return self.out.copy()


def data(n, n_in=784, n_out=10, seed=0):
    """Return synthetic MNIST-shaped inputs in [0, 1) and one-hot targets."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, n_in))
    Y = np.eye(n_out)[rng.integers(0, n_out, n)]
    return X, Y


def make_net(sizes, seed=0):
    """Return a ReLU network with a softmax output and cross-entropy."""
    acts = ["relu"] * (len(sizes) - 2) + ["softmax"]
    return numbanet.Network(sizes, activations=acts, loss="cross_entropy", seed=seed)


class StepTimer(numbanet.Callback):
    """Not a per-step timer (fit has none): the epoch times of a fit whose epochs are single steps."""

    def __init__(self):
        self.times = []

    def on_train_begin(self, net):
        """Start the clock."""
        self.last = time.perf_counter()

    def on_epoch_end(self, net, history):
        """Record the epoch's seconds."""
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now


def one_machine_step(sizes, X, Y, batch, steps):
    """Median seconds of one step of ``net.fit`` (each epoch one batch of ``batch`` rows)."""
    net = make_net(sizes)
    timer = StepTimer()
    net.fit(
        X[:batch],
        Y[:batch],
        epochs=steps + 1,
        batch_size=batch,
        optimizer=numbanet.SGD(lr=0.01),
        shuffle=False,
        progress=False,
        callbacks=timer,
    )
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
        ws, _ = net._buffers.acquire(m)
        _train.cost_and_gradient_flat(net.params, net._spec, Xb, Yb, np.ones(m), float(batch), 0.0, ws, grad, True)
        net._buffers.release(ws)
        update(opt._code, net.params, grad, opt.state, opt._hyper(), 0.01, 1)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def echo_round_trip(client, n_params, repeats, n_workers=2):
    """Median seconds of one call to ``n_workers`` Echo actors at once, ``n_params`` numbers each way."""
    workers = worker_addresses(client)[:n_workers]
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
    """Seconds and payload bytes of one DataParallel sync step, over ``steps`` steps (set-up excluded)."""
    net = make_net(sizes)
    dp = DataParallel(net, client)
    n = batch * steps
    # Shuffled, as in real use: each worker then holds about half of every batch (unshuffled, a batch
    # lies within one shard and one worker computes it all).
    dp.fit(X[:n], Y[:n], epochs=1, batch_size=batch, optimizer=numbanet.SGD(lr=0.01), shuffle=True, progress=False)
    c = dp.comm
    return c["loop_seconds"] / c["steps"], (c["bytes_to_workers"] + c["bytes_from_workers"]) / c["steps"]


def bench_sync(client, nets, batches, steps, repeats):
    """Measure and print the sync table."""
    rows = []
    for name, sizes in nets:
        n_params = make_net(sizes).n_params
        echo = echo_round_trip(client, n_params, repeats)
        for batch in batches:
            X, Y = data(batch * steps, sizes[0], sizes[-1])
            one = one_machine_step(sizes, X, Y, batch, steps)
            comp = worker_compute(sizes, X, Y, batch, 2, repeats)
            step, nbytes = sync_step(client, sizes, X, Y, batch, steps)
            row = {
                "net": name,
                "n_params": n_params,
                "batch": batch,
                "one_ms": one * 1e3,
                "grad_ms": comp * 1e3,
                "step_ms": step * 1e3,
                "overhead_ms": (step - comp) * 1e3,
                "echo_ms": echo * 1e3,
                "bytes": nbytes,
                "speedup": one / step,
            }
            rows.append(row)
            print(
                f"sync {name:>16} batch {batch:5d}: one machine {row['one_ms']:8.2f} ms, worker share + update "
                f"{row['grad_ms']:8.2f} ms, DataParallel {row['step_ms']:8.2f} ms, overhead "
                f"{row['overhead_ms']:6.2f} ms (echo {row['echo_ms']:5.2f} ms), {nbytes / 1e6:6.2f} MB/step, "
                f"speed-up {row['speedup']:4.2f}x",
                flush=True,
            )
    return rows


def bench_local(client, sizes, batch, sync_everys, epochs, n):
    """Measure and print local-SGD throughput against one machine."""
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
        row = {
            "sync_every": k,
            "samples_per_s": rate,
            "relative": rate / one,
            "rounds": c["rounds"],
            "round_ms": c["loop_seconds"] / c["rounds"] * 1e3,
            "bytes_per_round": (c["bytes_to_workers"] + c["bytes_from_workers"]) / c["rounds"],
        }
        rows.append(row)
        print(
            f"local sync_every {k:5d}: {rate:10.0f} samples/s ({row['relative']:4.2f}x one machine), "
            f"{c['rounds']} rounds of {row['round_ms']:7.2f} ms, {row['bytes_per_round'] / 1e6:5.2f} MB/round",
            flush=True,
        )
    return rows


#: Assumed bandwidth of the client's network link for the modelled clusters (10 Gbit/s Ethernet), bytes/s.
#: Not measured: on one machine the "network" is a loopback copy.
ASSUMED_BANDWIDTH = 1.25e9

#: Cores of the modelled clusters.
MODEL_CORES = (8, 64, 512)


def flops_per_sample(sizes):
    """Count the floating-point operations of one sample's step.

    2 n_in n_out for each layer's forward product, for its weight gradient, and for the delta passed back
    to the layer below (not below the first).
    """
    pairs = list(zip(sizes[:-1], sizes[1:]))
    return sum(6 * a * b for a, b in pairs) - 2 * pairs[0][0] * pairs[0][1]


def remodel(path):
    """Recompute and print the model from a JSON file this script wrote (``--remodel out.json``)."""
    with open(path) as f:
        result = json.load(f)
    nets = sorted({(r["net"], tuple(int(x) for x in r["net"].split("-"))) for r in result["sync"]}, key=lambda t: t[1])
    result["model"] = model(result, nets, result["local_sizes"], result["local_batch"])
    print_model(result["model"])
    with open(path, "w") as f:
        json.dump(result, f, indent=1)


def model(result, nets, local_sizes, local_batch):
    """Compute the scaling model of docs/distributed.md from this run's measurements; return its tables.

    sync, W workers of one core each, global batch B, P parameters, f flops a sample:
        T_step(W) = B f / (W R) + a W + 16 W P / bw
    R: one core's rate (measured, worker share + update at the largest batch), a: the client's latency
    per worker and step (measured: empty round trip to 2 workers / 2), bw: ASSUMED_BANDWIDTH.
    Speed-up S(W) = T_step(1 core, no communication) / T_step(W).

    local SGD, W workers, k local steps a round, t: one local step (measured, one machine):
        round communication C(W) = a W + 48 W P / bw   (weights and two state rows, out and back)
        efficiency k t / (k t + C(W)) >= 0.9  <=>  k >= 9 C(W) / t
    """
    a = result["latency"]["two_workers_ms"] / 2 / 1e3
    out = {"assumed_bandwidth": ASSUMED_BANDWIDTH, "latency_per_worker_s": a, "sync": [], "local": []}
    for name, sizes in nets:
        rows = [r for r in result["sync"] if r["net"] == name]
        big = max(rows, key=lambda r: r["batch"])
        f = flops_per_sample(sizes)
        P = big["n_params"]
        R = (big["batch"] / 2) * f / (big["grad_ms"] / 1e3)
        comm = lambda W: a * W + 16 * W * P / ASSUMED_BANDWIDTH  # noqa: E731
        # The smallest batch at which 2 workers beat one core: B f / R (1 - 1/2) > comm(2).
        break_even = comm(2) * R / (f * 0.5)
        for B in (256, 1024, 4096, 16384):
            for W in MODEL_CORES:
                t1 = B * f / R
                tW = B * f / (W * R) + comm(W)
                best = max(range(1, W + 1), key=lambda w: t1 / (B * f / (w * R) + comm(w)))
                out["sync"].append(
                    {
                        "net": name,
                        "batch": B,
                        "cores": W,
                        "speedup": t1 / tW,
                        "efficiency": t1 / tW / W,
                        "best_workers": best,
                        "best_speedup": t1 / (B * f / (best * R) + comm(best)),
                        "core_gflops": R / 1e9,
                        "break_even_batch_2_workers": break_even,
                    }
                )
    one = next(r for r in result["local"] if r["sync_every"] is None)
    t = local_batch / one["samples_per_s"]
    P = sum(a_ * b + b for a_, b in zip(local_sizes[:-1], local_sizes[1:]))
    for W in MODEL_CORES:
        C = a * W + 48 * W * P / ASSUMED_BANDWIDTH
        out["local"].append({"cores": W, "round_comm_s": C, "step_s": t, "sync_every_for_90": 9 * C / t})
    return out


def print_model(m):
    """Print the modelled tables, labelled as modelled."""
    print(
        f"\nMODELLED (not measured): latency {m['latency_per_worker_s'] * 1e3:.2f} ms per worker and step, "
        f"client bandwidth assumed {m['assumed_bandwidth'] / 1e9:.2f} GB/s"
    )
    for r in m["sync"]:
        print(
            f"sync {r['net']:>16} batch {r['batch']:5d} on {r['cores']:3d} one-core workers: speed-up "
            f"{r['speedup']:6.2f}x (efficiency {r['efficiency']:5.1%}); best with {r['best_workers']:3d} workers: "
            f"{r['best_speedup']:6.2f}x  [core {r['core_gflops']:.1f} GFLOP/s, 2 workers pay from batch "
            f"{r['break_even_batch_2_workers']:.0f}]"
        )
    for r in m["local"]:
        print(
            f"local on {r['cores']:3d} workers: round communication {r['round_comm_s'] * 1e3:8.1f} ms, step "
            f"{r['step_s'] * 1e3:.3f} ms -> sync_every >= {r['sync_every_for_90']:.0f} for 90% efficiency"
        )


def main(argv=None):
    """Run the benchmark; return the results as a dict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small nets and batches, few steps")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--remodel", metavar="JSON", help="only recompute the model from an earlier --json file")
    args = parser.parse_args(argv)
    if args.remodel:
        return remodel(args.remodel)

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
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        ) as cluster,
        Client(cluster) as client,
    ):
        DataParallel(make_net([4, 3, 2]), client).fit(*data(8, 4, 2), progress=False)  # warm-up on the workers
        latency = {
            "one_worker_ms": echo_round_trip(client, 1, 4 * repeats, 1) * 1e3,
            "two_workers_ms": echo_round_trip(client, 1, 4 * repeats, 2) * 1e3,
        }
        print(
            f"round trip of an empty step: 1 worker {latency['one_worker_ms']:.2f} ms, "
            f"2 workers {latency['two_workers_ms']:.2f} ms",
            flush=True,
        )
        sync = bench_sync(client, nets, batches, steps, repeats)
        loc = bench_local(client, *local)
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "numpy": np.__version__,
        },
        "load_average": os.getloadavg(),
        "workers": 2,
        "threads_per_worker": 1,
        "latency": latency,
        "sync": sync,
        "local": loc,
        "local_sizes": local[0],
        "local_batch": local[1],
    }
    print(f"load average of the machine: {os.getloadavg()}")
    result["model"] = model(result, nets, local[0], local[1])
    print_model(result["model"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
