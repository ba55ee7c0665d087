"""Data-parallel training of one :class:`~numbanet.Network` on a Dask cluster.

>>> from dask.distributed import Client, LocalCluster          # doctest: +SKIP
>>> from numbanet.distributed import DataParallel              # doctest: +SKIP
>>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
...     DataParallel(net, client).fit(X, Y, epochs=3, batch_size=256)   # doctest: +SKIP

Two strategies (see docs/distributed.md for measurements and a scaling model):

``"sync"`` (synchronous data-parallel SGD)
    The rows are split into one shard per worker (row ``i`` of a NumPy array
    to worker ``i mod W``; consecutive rows of a memory map; the chunks a
    worker holds of a Dask array), sent (or opened, or left where they are)
    once per ``fit``.  Each
    global mini-batch -- the same rows, in the same order, that
    :meth:`numbanet.Network.fit` would take, drawn from the network's own
    generator -- is split by rows across the workers that hold them.  Each
    worker computes its part of the batch's weighted mean cost and gradient
    with the jitted kernels, scaled by the *global* batch weight
    ``sum(s_i)``, so the parts only need adding.  The **client** adds them in
    a fixed order (by shard), adds the L2 term, clips, and applies one
    optimizer step to ``net`` with the same update kernel ``fit`` uses; the
    new weights go out with the next step.  The result equals ``net.fit`` on
    one machine up to the rounding of the sums (about 1e-16 per step).

    Client-side combine rather than an all-reduce among workers: the
    optimizer state stays in one place (so Ctrl-C, divergence and worker
    loss leave ``net`` consistent without any reconciliation), the sum is in
    a fixed order (deterministic, equal to one machine to rounding), and
    Dask has no collective operations to build an all-reduce from (a ring or
    tree of actor calls pays the same per-call latency).  Its cost grows
    with the worker count -- the client sends and receives ``n_params``
    numbers per worker per step, one worker after another --
    docs/distributed.md measures it and models where it stops paying (a
    handful of workers for the networks measured there).

``"local"`` (local SGD, periodic model averaging)
    Each worker trains ``sync_every`` mini-batches on its own shard with the
    full jitted training loop, then the client averages the models and the
    optimizer states (weighted by the shards' sample-weight sums) and sends
    the average back.  One epoch is ``ceil(n_batches / n_workers)`` local
    steps on every worker, so the workers together see about every sample
    once per epoch.  It is not equal to a one-machine fit; it communicates
    ``sync_every`` times less often.

Workers keep their shard and a copy of the network in a Dask actor for the
whole ``fit``; each step is one actor round trip, not a task (docs/distributed.md measures it).

Faults.  When a worker is lost during a ``fit``, the fit stops with
:class:`WorkerLostError`, naming the worker and the step; ``net`` keeps the
weights, optimizer state and counters of the last completed step (``sync``)
or of the last completed averaging round (``local``).  It does not retry on
the remaining workers: call ``fit`` again (the cluster's replacement worker
or the remaining ones take the data afresh).  A ``sync`` fit on NumPy arrays
or memory maps stopped inside an epoch -- a lost worker, Ctrl-C -- leaves the
epoch pending on the network as ``Network.fit`` does, and the next ``fit``
(either) finishes it first, so the result equals an uninterrupted run.

Importing :mod:`numbanet` never imports Dask; this package does.  Its
modules: :mod:`~numbanet.distributed.worker` (what runs on the workers: the
shards and the warm-up), :mod:`~numbanet.distributed.dataparallel` (the
client: :class:`DataParallel` and its training loops, on
:mod:`numbanet.plan` and :mod:`numbanet.engine` as ``Network.fit`` is).
"""

try:
    import distributed as _dask_distributed  # noqa: F401 - fail here, with the hint, without the extra
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "numbanet.distributed needs Dask's distributed scheduler: pip install 'dask[distributed]' "
        '(or, in a clone of numbanet, pip install -e ".[distributed]")'
    ) from exc

from numbanet.distributed.dataparallel import DataParallel, WorkerLostError, worker_addresses
from numbanet.distributed.worker import WarmUp, last_round, warm_up

__all__ = ["DataParallel", "WorkerLostError", "WarmUp", "warm_up", "last_round", "worker_addresses"]
