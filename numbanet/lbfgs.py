"""Full-batch L-BFGS: :class:`LBFGS` for :meth:`numbanet.Network.fit`, and the run that drives it.

L-BFGS minimises the network's whole-data cost (the weighted mean cost plus
the L2 term, :meth:`numbanet.Network.loss`) as a function of the flat
parameter vector.  Each evaluation is one call of the fused kernel
:func:`numbanet.kernels.training.cost_and_gradient_flat`, which returns the
cost and writes the exact gradient; SciPy's L-BFGS-B
(:func:`scipy.optimize.minimize`) chooses the steps.  The scikit-learn
estimators' ``solver="lbfgs"`` is this same run.

One L-BFGS iteration is one epoch of the fit's contract: ``epochs`` bounds
the iterations; after each one the history records the cost at the accepted
iterate, and validation, callbacks and early stopping run as after an epoch
(a callback returning True stops the run).  Whatever ends the run
(convergence, ``max_fun``, a callback, Ctrl-C, an exception) the network holds
the last accepted iterate, which the history's last entry describes.  Ctrl-C,
held by ``fit`` (:mod:`numbanet.interrupts`), is delivered after each
iteration's record and before each evaluation.

L-BFGS-B's own work is on vectors of the parameters' length, through BLAS;
a multi-threaded BLAS wakes its threads for each of those small calls, and
on a busy machine that waiting costs far more than the arithmetic.  So the
run holds the BLAS thread pools at one thread (through threadpoolctl, when
it is installed; it comes with scikit-learn).  Only evaluations large
enough (:data:`numbanet.config.LBFGS_THREADED_WORK` rows × parameters) get
the threads back for their matrix products.
"""

import math

import numpy as np

from numbanet import _validation as check
from numbanet import config, interrupts
from numbanet.engine import record_epochs
from numbanet.exceptions import TrainingDivergedError


class LBFGS:
    """Full-batch L-BFGS (SciPy's L-BFGS-B) as an optimizer for :meth:`numbanet.Network.fit`.

    ``fit(X, Y, epochs=n, optimizer=LBFGS())`` runs at most ``n``
    iterations on all of ``(X, Y)`` at once.  Options that belong to
    mini-batch training are refused with it: ``batch_size``,
    ``lr_schedule``, ``clip_norm``, dropout in the network, and
    ``train_on_batch``.

    Parameters
    ----------
    max_fun : int, default 15000
        At most this many cost-and-gradient evaluations (SciPy's ``maxfun``).
    tol : float, default 1e-5
        Stop when the largest gradient entry is at most ``tol`` (SciPy's ``gtol``).
    ftol : float, default 2.220446049250313e-09
        Stop when the relative decrease of the cost is at most ``ftol`` (SciPy's).
    history_size : int, default 10
        Correction pairs kept (SciPy's ``maxcor``).

    Attributes
    ----------
    result_ : dict or None
        The last run's outcome, from SciPy's result: ``status`` (0 converged,
        1 ``max_fun`` or ``epochs`` reached, 2 stopped in a line search, 99 a
        callback stopped it), ``message``, ``nit``, ``nfev``, ``fun``; None
        before a run ends normally.  (Plain Python values, so that a fitted
        estimator saves with skops.)
    """

    _param_names = ("max_fun", "tol", "ftol", "history_size")
    lr = 1.0  # no learning rate; a number so that the fit's shared bookkeeping can record one
    t = 0
    state = None

    def __init__(self, max_fun=15000, tol=1e-5, ftol=2.220446049250313e-09, history_size=10):
        self.max_fun = max_fun
        self.tol = tol
        self.ftol = ftol
        self.history_size = history_size
        self.result_ = None
        self._validate()

    def _validate(self):
        check.positive_int(self.max_fun, "max_fun")
        check.non_negative_float(self.tol, "tol")
        check.non_negative_float(self.ftol, "ftol")
        check.positive_int(self.history_size, "history_size")

    def bind(self, n_params, dtype):
        """L-BFGS keeps no state between fits: each ``fit`` starts a fresh run."""
        self._validate()

    def get_params(self):
        """Hyper-parameters as a dict (the constructor's arguments)."""
        return {k: getattr(self, k) for k in self._param_names}

    def __repr__(self):
        return f"LBFGS({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"


def refuse_options(net, batch_size, lr_schedule, clip_norm):
    """ValueError when a mini-batch option is given with :class:`LBFGS` (nothing has changed yet)."""
    given = {
        name: value
        for name, value in (("batch_size", batch_size), ("lr_schedule", lr_schedule), ("clip_norm", clip_norm))
        if value is not None
    }
    if given:
        raise ValueError(
            f"LBFGS trains on the whole data at once without a learning rate, so {', '.join(given)} "
            f"cannot apply (got {', '.join(f'{n}={v!r}' for n, v in given.items())}); "
            "leave it out, or use a mini-batch optimizer (SGD, Adam, ...). train_on_batch, one mini-batch step, "
            "is refused with LBFGS for the same reason"
        )
    if net.dropout > 0:
        raise ValueError(
            f"LBFGS needs a deterministic cost, but the network has dropout={net.dropout}; "
            "set net.dropout = 0 or use a mini-batch optimizer"
        )


_POOLS = []  # the BLAS libraries' thread pools, found once per process (threadpoolctl's scan takes milliseconds)


def _blas_pools():
    """Return each loaded BLAS thread pool with its thread count now; empty without threadpoolctl."""
    if not _POOLS:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            return []
        _POOLS.extend(ThreadpoolController().select(user_api="blas").lib_controllers)
    # Read now, not cached: the caller may hold a threadpool_limits of its own, which the run restores.
    return [(lib, lib.num_threads) for lib in _POOLS]


def _set_threads(pools, one):
    for lib, n in pools:
        lib.set_num_threads(1 if one else n)


class LBFGSRun:
    """One ``fit`` with :class:`LBFGS`: SciPy's iterations, recorded as epochs.

    Parameters are those of :class:`numbanet.engine.TrainingRun`: checked
    ``X, Y`` (finite), ``sw`` (float64), the plan and its session, and the
    training rows of a validation split (None: all).  Those rows are gathered
    once: every evaluation takes all of them, and the full-batch kernel takes
    whole matrices.
    """

    def __init__(self, net, X, Y, sw, plan, session, rows=None):
        if rows is not None:
            X, Y, sw = X[rows], Y[rows], np.ascontiguousarray(sw[rows])
        self.net = net
        self.X, self.Y, self.sw = X, Y, sw
        self.plan = plan
        self.optimizer = plan.optimizer
        self.history = session.history
        self.epoch_end = session.epoch_end
        self.bar = session.bar
        self.grad = np.empty_like(net.params)
        self.accepted = net.params.astype(np.float64)  # the iterate the history's last entry describes
        self.nfev = 0
        self.pools = self.threaded = []  # the BLAS pools; those that get their threads back for an evaluation

    def cost(self, x):
        """Cost and gradient at ``x`` (float64), evaluated by the kernel on the network's parameters."""
        interrupts.poll()  # a held Ctrl-C: the run's finally puts back the accepted iterate
        net = self.net
        net.params[...] = x
        _set_threads(self.threaded, one=False)
        try:
            value = float(net._cost(self.X, self.Y, self.sw, self.grad))
        finally:
            _set_threads(self.threaded, one=True)
        self.nfev += 1
        self.history.samples += self.X.shape[0]
        if not math.isfinite(value):
            return math.inf, np.zeros(x.shape)  # L-BFGS-B's line search backs off from it
        return value, self.grad.astype(np.float64)

    def iteration(self, intermediate_result):
        """SciPy's per-iteration callback: record the accepted iterate as an epoch; StopIteration to stop."""
        net, history = self.net, self.history
        self.accepted = np.array(intermediate_result.x, dtype=np.float64)
        net.params[...] = self.accepted
        record_epochs(net, history, net.epochs_trained, [intermediate_result.fun], [math.nan])
        history.steps += 1
        interrupts.poll()  # the iterate and its record agree: a held Ctrl-C is delivered here
        stop = bool(self.epoch_end(history)) if self.epoch_end is not None else False
        self.bar.update(float(len(history.loss)), history)
        if stop:
            history.stopped_early = len(history.loss) < self.plan.epochs
            raise StopIteration

    def run(self):
        """Minimise; leave the network at the last accepted iterate whatever ends the run.

        Raises
        ------
        TrainingDivergedError
            When the cost at the starting point is not finite (the weights are left as they were).
        """
        from scipy.optimize import minimize  # SciPy's optimize module is large; only L-BFGS fits need it

        net, opt = self.net, self.optimizer
        net._pending = None  # an interrupted mini-batch epoch cannot be finished by L-BFGS: dropped
        opt.result_ = None
        x0 = self.accepted.copy()
        options = {
            "maxiter": self.plan.epochs,
            "maxfun": int(opt.max_fun),
            "gtol": float(opt.tol),
            "ftol": float(opt.ftol),
            "maxcor": int(opt.history_size),
        }
        self.pools = _blas_pools()
        if self.X.shape[0] * net.n_params >= config.LBFGS_THREADED_WORK:
            self.threaded = self.pools
        _set_threads(self.pools, one=True)
        try:
            result = minimize(self.cost, x0, jac=True, method="L-BFGS-B", callback=self.iteration, options=options)
        finally:
            _set_threads(self.pools, one=False)
            net.params[...] = self.accepted  # also after Ctrl-C or a failing callback
        # The network keeps the last accepted iterate even where SciPy's result is a later trial point
        # (a run stopped by max_fun inside a line search), so that the history describes its weights.
        if not self.history.loss and not math.isfinite(result.fun):
            raise TrainingDivergedError(net.epochs_trained, 1, math.nan)  # not even the start was finite
        opt.result_ = {
            "status": int(result.status),
            "message": str(result.message),
            "nit": int(result.nit),
            "nfev": int(result.nfev),
            "fun": float(result.fun),
        }
        return self.history
