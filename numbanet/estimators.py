"""scikit-learn compatible estimators: :class:`MLPClassifier` and :class:`MLPRegressor`.

They wrap a :class:`numbanet.Network` (the fitted network is ``net_``) behind
scikit-learn's parameter names, so they drop into ``Pipeline``,
``GridSearchCV``, ``cross_val_score`` and ``clone`` where
``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` would go.  The
epoch loop is :meth:`numbanet.Network.fit`; scikit-learn's convergence rule
(``tol`` / ``n_iter_no_change``, or a validation score with
``early_stopping``) runs as a per-epoch callback.

scikit-learn is optional for numbanet and needed only here.  It is imported
when this module is first used (``import numbanet`` does not import it:
importing scikit-learn costs more than all of numbanet).  Without it (or with
a version older than 1.6) this module still imports, and constructing an
estimator raises :class:`ImportError` saying how to install it.

They learn as scikit-learn's do, per iteration: the initialisation is
scikit-learn's (Glorot uniform with factor 6, or 2 for logistic layers, for
weights *and* biases), drawn from ``random_state`` in scikit-learn's order, so
an integer ``random_state`` starts from exactly the weights scikit-learn's
estimator starts from; the cost, its L2 term ``alpha / (2 n_batch) ‖W‖²``,
``batch_size="auto"``, Adam's and SGD's defaults and the convergence rule are
scikit-learn's; and ``loss_curve_`` is on scikit-learn's scale.  Training then
differs only in the order of shuffled mini-batches (numbanet's own generator)
and in where Adam's ``epsilon`` sits.  ``benchmarks/parity.py`` measures it.
(:class:`numbanet.Network` keeps its own initialisation: He normal for ReLU
layers, zero biases.)

Beyond scikit-learn's MLP: ``class_weight`` (classifier), ``dropout``,
``validation_loss_curve_`` with ``early_stopping``, per-layer
``activations``, numbanet's activation names, float32 training.

Differences from scikit-learn's MLP, on purpose:

* the update formulas are PyTorch's (see :mod:`numbanet.optimizers`), which
  equal scikit-learn's for SGD with (Nesterov) momentum at a constant rate
  and differ from its Adam only in where ``epsilon`` sits (with a changing
  rate, ``"invscaling"`` or ``"adaptive"``, PyTorch's momentum buffer holds
  gradients where scikit-learn's holds steps);
* ``solver="lbfgs"`` (:mod:`numbanet.lbfgs`) minimises the same cost with
  the same L-BFGS-B; for several regression outputs it minimises the sum of
  the outputs' squared errors, whose gradient scikit-learn uses too (its
  reported loss is the mean); ``loss_curve_`` is filled for it too, and
  ``early_stopping`` works with it (scikit-learn ignores it there);
* numbanet's L2 strength is constant over an epoch, ``alpha / batch_size``
  (scaled by the mean sample weight), where scikit-learn divides by each
  batch's own weight sum: the two differ in the last, smaller batch of an
  epoch and for unevenly weighted batches;
* ``activation`` also accepts numbanet's names (``"sigmoid"``,
  ``"leaky_relu"``), and ``activations`` sets each hidden layer separately;
Sparse ``X`` (SciPy CSR or CSC, matrix or array) is trained as sparse, never
densified: see :mod:`numbanet.kernels.sparse`.
"""

import numbers
import warnings

import numpy as np

from numbanet import _validation as check
from numbanet.callbacks import Callback, History
from numbanet.exceptions import TrainingDivergedError
from numbanet.kernels.activations import BUILTINS as _BUILTINS
from numbanet.lbfgs import LBFGS
from numbanet.network import Network
from numbanet.optimizers import SGD, Adam
from numbanet.pieces import Activation
from numbanet.schedules import LambdaLR, Schedule

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.class_weight import compute_sample_weight
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data  # validate_data: >= 1.6
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    _SKLEARN_MISSING = exc

    class BaseEstimator:  # noqa: D101 - stand-in so that this module imports without scikit-learn
        pass

    class ClassifierMixin:  # noqa: D101
        pass

    class RegressorMixin:  # noqa: D101
        pass

    def available_if(check):  # noqa: D103
        return lambda method: method

else:
    _SKLEARN_MISSING = None


def _require_sklearn(name):
    if _SKLEARN_MISSING is not None:
        raise ImportError(
            f"numbanet.{name} needs scikit-learn >= 1.6 ({_SKLEARN_MISSING}). "
            "Install it with `pip install scikit-learn` (or `pip install -e '.[sklearn]'` in a clone of numbanet); "
            "numbanet.Network works without it."
        )


#: Activation names accepted for hidden layers: numbanet's, plus scikit-learn's "logistic".
_HIDDEN_ACTIVATIONS = {name: name for name, b in _BUILTINS.items() if not b.output_only}
_HIDDEN_ACTIVATIONS["logistic"] = "sigmoid"

#: numbanet's output activation -> scikit-learn's name for out_activation_.
_SKLEARN_OUT_NAME = {"sigmoid": "logistic", "softmax": "softmax", "identity": "identity", "exp": "exp"}


_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class _Monitor(Callback):
    """scikit-learn's convergence rule, evaluated after every epoch of ``Network.fit``.

    Without early stopping: an epoch counts as "no improvement" when its
    training loss is above ``best_loss - tol``.  With early stopping: when the
    validation score is below ``best_score + tol``; the parameters of the best
    validation score are kept.  Training stops once more than
    ``n_iter_no_change`` consecutive epochs did not improve -- unless
    ``learning_rate="adaptive"`` (SGD), which divides the rate by 5 instead
    while it is above 1e-6 (scikit-learn's rule).  With L-BFGS an epoch is an
    iteration, and without early stopping SciPy's own criteria end the run.
    """

    def __init__(self, est, state, validation, optimizer):
        self.est = est
        self.state = state  # dict holding best_loss, validation_scores, ... (updated in place)
        self.validation = validation  # (Xv, Yv, swv) or None
        self.optimizer = optimizer
        self.adaptive = est.solver == "sgd" and est.learning_rate == "adaptive"
        self.watch = validation is not None or est.solver != "lbfgs"
        self.count = 0
        self.converged = False
        self.best_params = None
        self.curve = []  # this fit's training losses on scikit-learn's scale, one per epoch seen

    def on_epoch_end(self, net, history):
        est, s = self.est, self.state
        loss = est._reported_loss(net, history.loss[-1])
        self.curve.append(loss)
        if est.verbose:
            print(f"Iteration {len(s['loss_curve']) + len(history.loss)}, loss = {loss:.8f}")
        tol = float(est.tol)
        if self.validation is not None:
            Xv, Yv, swv = self.validation
            s["validation_loss_curve"].append(est._reported_loss(net, net.loss(Xv, Yv, swv)))
            score = est._net_score(net, Xv, Yv, swv)
            s["validation_scores"].append(score)
            if est.verbose:
                print(f"Validation score: {score:f}")
            if score < s["best_validation_score"] + tol:
                self.count += 1
            else:
                self.count = 0
            if score > s["best_validation_score"]:
                s["best_validation_score"] = score
                self.best_params = net.params.copy()
        else:
            if loss > s["best_loss"] - tol:
                self.count += 1
            else:
                self.count = 0
            if loss < s["best_loss"]:
                s["best_loss"] = loss
        if self.count > est.n_iter_no_change and self.watch:
            return self._no_improvement(tol)
        return False

    def _no_improvement(self, tol):
        """Stop (return True), or with ``learning_rate="adaptive"`` divide the rate by 5 and go on."""
        est = self.est
        what = "Validation score" if self.validation is not None else "Training loss"
        msg = f"{what} did not improve more than tol={tol:f} for {est.n_iter_no_change} consecutive epochs."
        if self.adaptive and self.optimizer.lr > 1e-6:
            self.optimizer.lr /= 5.0  # the next epoch's rate (_Adaptive reads it); partial_fit keeps it
            self.count = 0
            if est.verbose:
                print(f"{msg} Setting learning rate to {self.optimizer.lr:f}")
            return False
        self.converged = True
        if est.verbose:
            print(f"{msg} {'Learning rate too small. ' if self.adaptive else ''}Stopping.")
        return True


class _Adaptive(Schedule):
    """The optimizer's current rate, read at each epoch's start: ``learning_rate="adaptive"``.

    :class:`_Monitor` divides the optimizer's rate by 5 when the loss stops
    improving; this schedule passes that rate on (it watches the loss so that
    the rate is read epoch by epoch, after the monitor has run).
    """

    needs_loss = True

    def __call__(self, epoch, base_lr):
        """Return ``base_lr``, the optimizer's rate as the monitor left it."""
        return base_lr

    def observe(self, value, base_lr):
        """Nothing: the monitor decides (its rule is also the stopping rule)."""


def _invscaling(first_epoch, t0, n_samples, power_t, fresh):
    """scikit-learn's ``learning_rate="invscaling"`` as a schedule of ``Network.fit``.

    scikit-learn sets ``eta = learning_rate_init / (t + 1) ** power_t`` at
    each epoch's end, ``t`` the training samples seen so far (``t_``); a
    fresh optimizer starts at ``learning_rate_init``.  So the fit's epoch
    ``k`` (counted from 0) uses ``init / (t0 + k * n_samples + 1) ** power_t``,
    except the first epoch of a fresh optimizer.
    """

    def rate(epoch, base_lr):
        k = epoch - first_epoch
        if k == 0 and fresh:
            return base_lr
        return base_lr / (t0 + k * n_samples + 1) ** power_t

    return LambdaLR(rate)


def _stochastic_solver(est):
    """``partial_fit`` exists for the mini-batch solvers only (scikit-learn's ``available_if`` rule)."""
    if est.solver not in ("sgd", "adam"):
        raise AttributeError(
            f"partial_fit is only available for stochastic optimizers. {est.solver} is not stochastic."
        )
    return True


def _sklearn_init(rs, sizes, factors):
    """scikit-learn's MLP initialisation: Glorot uniform for weights *and* biases.

    Layer ``l`` draws its ``(n_in, n_out)`` weight matrix, then its bias, from
    ``U(-r, r)`` with ``r = sqrt(factors[l] / (n_in + n_out))``, in float64 from
    the RandomState ``rs`` (scikit-learn's ``_init_coef``).  Returns a list of
    ``(coef, intercept)`` pairs in scikit-learn's orientation.
    """
    layers = []
    for n_in, n_out, factor in zip(sizes[:-1], sizes[1:], factors):
        bound = np.sqrt(factor / (n_in + n_out))
        coef = rs.uniform(-bound, bound, (n_in, n_out))
        intercept = rs.uniform(-bound, bound, n_out)
        layers.append((coef, intercept))
    return layers


class _BaseMLP(BaseEstimator):
    """Shared parameters, validation and the training routine of the two estimators."""

    _out_task = None  # set by subclasses

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dropout=0.0,
        activations=None,
        loss=None,
        dtype=None,
    ):
        _require_sklearn(type(self).__name__)
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.activations = activations
        self.loss = loss
        self.dtype = dtype

    # ------------------------------------------------------------ parameters

    def _hidden(self):
        """Return the validated hidden layer widths and their numbanet activation names."""
        sizes = self.hidden_layer_sizes
        if _is_int(sizes):
            sizes = [sizes]
        elif isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise ValueError(f"hidden_layer_sizes must be an int or a sequence of ints; got {sizes!r}")
        sizes = list(sizes)
        for i, s in enumerate(sizes):
            if not _is_int(s) or s < 1:
                raise ValueError(f"hidden_layer_sizes must be positive integers; entry {i} is {s!r}")
        if self.activations is None:
            names = [self.activation] * len(sizes)
            what = "activation"
        else:
            if isinstance(self.activations, str) or not hasattr(self.activations, "__iter__"):
                raise ValueError(f"activations must be a list of names, one per hidden layer; got {self.activations!r}")
            names = list(self.activations)
            what = "activations"
            if len(names) != len(sizes):
                raise ValueError(
                    f"activations has {len(names)} names but hidden_layer_sizes has {len(sizes)} layers; "
                    "give one name per hidden layer"
                )
        acts = []
        for name in names:
            if isinstance(name, Activation):
                acts.append(name)
                continue
            if not isinstance(name, str) or name not in _HIDDEN_ACTIVATIONS:
                raise ValueError(
                    f"unknown {what} {name!r} for a hidden layer; choose from {sorted(_HIDDEN_ACTIVATIONS)} "
                    "or pass a numbanet.Activation"
                )
            acts.append(_HIDDEN_ACTIVATIONS[name])
        return [int(s) for s in sizes], acts

    def _settings(self):
        """Validate the hyper-parameters that do not depend on the data."""
        hidden, acts = self._hidden()
        if self.solver not in ("sgd", "adam", "lbfgs"):
            raise ValueError(f"solver must be 'lbfgs', 'sgd' or 'adam'; got {self.solver!r}")
        if self.learning_rate not in ("constant", "invscaling", "adaptive"):
            raise ValueError(
                f"learning_rate must be 'constant', 'invscaling' or 'adaptive'; got {self.learning_rate!r}"
            )
        check.non_negative_float(self.power_t, "power_t")
        check.positive_int(self.max_fun, "max_fun")
        check.non_negative_float(self.alpha, "alpha")
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            if not _is_int(self.batch_size) or self.batch_size < 1:
                raise ValueError(f"batch_size must be 'auto' or a positive integer; got {self.batch_size!r}")
        if check.non_negative_float(self.learning_rate_init, "learning_rate_init") <= 0:
            raise ValueError(f"learning_rate_init must be > 0; got {self.learning_rate_init}")
        check.positive_int(self.max_iter, "max_iter")
        check.non_negative_float(self.tol, "tol")
        if not (isinstance(self.n_iter_no_change, float) and self.n_iter_no_change == np.inf):
            check.positive_int(self.n_iter_no_change, "n_iter_no_change")  # or np.inf: never stop on it
        if self.early_stopping:
            fraction = check.non_negative_float(
                self.validation_fraction, "validation_fraction", upper=1.0, upper_open=True
            )
            if fraction <= 0:
                raise ValueError(f"validation_fraction must be in (0, 1) with early_stopping; got {fraction}")
        if check.non_negative_float(self.dropout, "dropout", upper=1.0, upper_open=True) > 0 and self.solver == "lbfgs":
            raise ValueError(f"solver='lbfgs' needs a deterministic cost; dropout={self.dropout} must be 0 with it")
        if self.solver == "sgd":
            check.non_negative_float(self.momentum, "momentum", upper=1.0, upper_open=True)
        else:
            check.non_negative_float(self.beta_1, "beta_1", upper=1.0, upper_open=True)
            check.non_negative_float(self.beta_2, "beta_2", upper=1.0, upper_open=True)
            if check.non_negative_float(self.epsilon, "epsilon") <= 0:
                raise ValueError(f"epsilon must be > 0; got {self.epsilon}")
        check.float_dtype(self.dtype, allow_none=True)
        return hidden, acts

    def _reported_loss(self, net, cost):
        """Convert numbanet's cost (per-sample loss plus L2) to scikit-learn's scale, as ``loss_curve_`` reports it.

        scikit-learn's squared error is ``0.5 * mean over samples and outputs``
        while its gradient is that of the sum over outputs (numbanet's ``mse``);
        so for a regressor with k > 1 outputs the data term is divided by k.
        Its Poisson loss is summed over the outputs, as numbanet's is.
        The L2 term, taken at ``net``'s current weights, is left as it is.
        """
        k = net.sizes[-1] if net.loss_name == "mse" and self._out_task == "regression" else 1
        if k == 1:
            return float(cost)
        penalty = 0.5 * net.l2 * sum(float(np.dot(W.ravel(), W.ravel())) for W in net.weights)
        return float((cost - penalty) / k + penalty)

    def _init_factors(self, acts):
        """Return the Glorot factor of every weighted layer: 2 for logistic layers, else 6 (scikit-learn's).

        scikit-learn uses factor 2 in every layer, the output layer included,
        when ``activation="logistic"`` (numbanet's "sigmoid" alike).  With
        ``activations`` (one per hidden layer) a hidden layer uses 2 when it
        is logistic, and the output layer uses 2 when every hidden layer is.
        """
        if self.activations is None:
            logistic = isinstance(self.activation, str) and self.activation in ("logistic", "sigmoid")
            return [2.0 if logistic else 6.0] * (len(acts) + 1)
        logistic = [isinstance(a, str) and a == "sigmoid" for a in acts]
        return [2.0 if lg else 6.0 for lg in logistic] + [2.0 if all(logistic) else 6.0]

    def _with_class_weight(self, sw, encoded, incremental):
        """``sample_weight`` (None or validated) times the class weights of the targets (classifier only)."""
        return sw

    def _make_optimizer(self):
        if self.solver == "lbfgs":
            return LBFGS(max_fun=int(self.max_fun), tol=float(self.tol))
        if self.solver == "sgd":
            momentum = float(self.momentum)
            return SGD(
                lr=float(self.learning_rate_init),
                momentum=momentum,
                nesterov=bool(self.nesterovs_momentum) and momentum > 0,
            )
        return Adam(
            lr=float(self.learning_rate_init), betas=(float(self.beta_1), float(self.beta_2)), eps=float(self.epsilon)
        )

    # -------------------------------------------------------------- training

    def fit(self, X, y, sample_weight=None):
        """Train on ``(X, y)`` for at most ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classifier; a 2-D 0/1 indicator matrix for
            multilabel) or real targets (regressor).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; each mini-batch minimises the weighted mean cost.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For invalid input or hyper-parameters; the estimator is left as it was.

        Notes
        -----
        Once training has started, an interruption (Ctrl-C) or an error
        (divergence, a failing callback) leaves a consistent fitted
        estimator: ``net_`` holds the weights after the last completed
        mini-batch (after divergence, those of the last finite epoch), and
        ``loss_curve_``, ``n_iter_`` and ``t_`` describe the epochs and
        samples that produced them; ``validation_scores_`` covers the epochs
        whose end-of-epoch check ran.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        saved = dict(self.__dict__)
        net = saved.get("net_")
        saved_l2 = None if net is None else net.l2
        training = []  # set once training starts: from then on the estimator keeps its progress
        try:
            return self._fit_inner(X, y, sample_weight, incremental, classes, training)
        except BaseException:
            if not training:
                # A refused call changes nothing: put back every attribute (and the net's l2).
                self.__dict__.clear()
                self.__dict__.update(saved)
                if net is not None:
                    net.l2 = saved_l2
            raise

    def _fit_inner(self, X, y, sample_weight, incremental, classes, training):
        hidden, acts = self._settings()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        fitted = hasattr(self, "net_")
        first = not fitted or not (self.warm_start or incremental)
        X, y = validate_data(
            self,
            X,
            y,
            reset=first,
            accept_sparse=["csr", "csc"],
            dtype=(np.float64, np.float32),
            multi_output=True,
            y_numeric=self._out_task == "regression",
        )
        Y, encoded = self._encode_targets(y, first, incremental, classes)
        sw = None if sample_weight is None else check.sample_weights(sample_weight, X.shape[0])
        sw = self._with_class_weight(sw, encoded, incremental)
        out_act, loss = self._output_layer(encoded)
        rs = check_random_state(self.random_state)
        if first:
            net = self._new_network(X.shape[1], hidden, acts, out_act, loss, Y.shape[1], X.dtype, rs)
            state = self._fresh_state()
        else:
            net = self._continued_network(X.shape[1], hidden, acts, out_act, loss, Y.shape[1], incremental)
            state = self._continued_state()
        rows, validation = self._hold_out(X, Y, sw, encoded, rs)
        n_train = X.shape[0] if rows is None else rows.size
        batch_size, net.l2 = self._batch_and_l2(n_train, sw if rows is None or sw is None else sw[rows])
        net.dropout = float(self.dropout)
        fresh = not (incremental and fitted and getattr(self, "_optimizer", None) is not None)
        if not fresh:
            optimizer = self._optimizer
            if optimizer.state is not None and not optimizer.state.flags.writeable:
                optimizer.state = optimizer.state.copy()  # e.g. unpickled from a read-only memory map
        else:
            optimizer = self._make_optimizer()
        options = {"optimizer": optimizer, "callbacks": [_Monitor(self, state, validation, optimizer)]}
        if self.solver != "lbfgs":
            options.update(batch_size=batch_size, shuffle=bool(self.shuffle))
            options["lr_schedule"] = self._schedule(net, state["t"], n_train, fresh)
        stored = (optimizer, state, options["callbacks"][0], Y.shape[1], out_act, encoded)
        data = (X, Y, sw, rows)
        history = self._train(net, data, 1 if incremental else int(self.max_iter), options, stored, training)
        self._finish(net, history, validation, stored, incremental)
        return self

    def _schedule(self, net, t0, n_train, fresh):
        """Return the ``lr_schedule`` of ``learning_rate`` (SGD only, as in scikit-learn); None for constant."""
        if self.solver != "sgd" or self.learning_rate == "constant":
            return None
        if self.learning_rate == "adaptive":
            return _Adaptive()
        return _invscaling(net.epochs_trained, t0, n_train, float(self.power_t), fresh)

    def _finish(self, net, history, validation, stored, incremental):
        """Keep the best weights of early stopping, store the fitted attributes, warn when not converged."""
        optimizer, monitor = stored[0], stored[2]
        if validation is not None and monitor.best_params is not None:
            net.params[...] = monitor.best_params
        self._store_fitted(net, *stored[:2], history, *stored[2:])
        if incremental or monitor.converged:
            return
        name = type(self).__name__
        if isinstance(optimizer, LBFGS):
            result = optimizer.result_
            if result is not None and result["status"] != 0:
                message = f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status={result['status']}):\n"
                message += f"{result['message']}\n"
                if self.n_iter_ >= self.max_iter:
                    message += f"Increase the number of iterations (max_iter={self.max_iter}) or scale the data."
                warnings.warn(f"{name}: {message}", ConvergenceWarning, stacklevel=5)
        elif len(history.loss) == self.max_iter:
            warnings.warn(
                f"{name}: maximum iterations ({self.max_iter}) reached and the optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=5,  # the caller of fit
            )

    def _new_network(self, n_in, hidden, acts, out_act, loss, n_out, x_dtype, rs):
        """Build the network of a first fit, with scikit-learn's initial weights."""
        dtype = np.dtype(self.dtype) if self.dtype is not None else x_dtype
        sizes = [n_in, *hidden, n_out]
        # scikit-learn's initialisation, drawn first from the same generator in the same
        # order as scikit-learn's MLP draws it, so an int random_state starts from the very
        # weights scikit-learn's estimator starts from.
        initial = _sklearn_init(rs, sizes, self._init_factors(acts))
        seed = int(rs.randint(np.iinfo(np.int32).max))
        net = Network(
            sizes, activations=[*acts, out_act], loss=loss, dtype=dtype, seed=seed, dropout=float(self.dropout)
        )
        for W, b, (coef, intercept) in zip(net.weights, net.biases, initial):
            W[...] = coef.T
            b[...] = intercept
        return net

    def _continued_network(self, n_in, hidden, acts, out_act, loss, n_out, incremental):
        """Return the fitted network that ``warm_start`` or ``partial_fit`` continues, if the parameters allow."""
        net = self.net_
        wanted = (n_in, *hidden, n_out)
        if net.sizes != wanted or net.activations != (*acts, out_act) or net.loss_name != loss:
            raise ValueError(
                f"{'partial_fit' if incremental else 'warm_start'} continues the fitted network "
                f"{list(net.sizes)} {list(net.activations)} {net.loss_name!r}, but the parameters now ask for "
                f"{list(wanted)} {[*acts, out_act]} {loss!r}; refit with warm_start=False"
            )
        return net

    def _fresh_state(self):
        """Return the curves and best scores of a first fit (scikit-learn's starting values)."""
        return {
            "loss_curve": [],
            "t": 0,
            "best_loss": None if self.early_stopping else np.inf,
            "validation_scores": [] if self.early_stopping else None,
            "validation_loss_curve": [] if self.early_stopping else None,
            "best_validation_score": -np.inf if self.early_stopping else None,
        }

    def _continued_state(self):
        """Return the curves and best scores a continued fit starts from, reset where early_stopping changed."""
        state = {
            "loss_curve": list(self.loss_curve_),
            "t": self.t_,
            "best_loss": self.best_loss_,
            "validation_scores": None if self.validation_scores_ is None else list(self.validation_scores_),
            "validation_loss_curve": (
                None if getattr(self, "validation_loss_curve_", None) is None else list(self.validation_loss_curve_)
            ),
            "best_validation_score": self.best_validation_score_,
        }
        if self.early_stopping and state["validation_scores"] is None:
            state.update(validation_scores=[], validation_loss_curve=[], best_validation_score=-np.inf, best_loss=None)
        elif not self.early_stopping and state["best_loss"] is None:
            state.update(
                best_loss=np.inf, validation_scores=None, validation_loss_curve=None, best_validation_score=None
            )
        return state

    def _hold_out(self, X, Y, sw, encoded, rs):
        """Split off ``validation_fraction`` for early stopping (stratified for classifiers).

        Returns the training rows (ascending; the fit indexes ``X`` in place)
        and ``(X_val, Y_val, sw_val)``, or None and None without early stopping.
        """
        if not self.early_stopping:
            return None, None
        n = X.shape[0]
        # scikit-learn stratifies by its binarised targets (booleans); so do we, for the same split rule.
        stratify = None
        if encoded.get("labels") is not None:
            stratify = Y.astype(bool)
        try:
            tr, va = train_test_split(
                np.arange(n), test_size=self.validation_fraction, random_state=rs, stratify=stratify
            )
        except ValueError as e:
            raise ValueError(
                f"{e} (early_stopping holds out validation_fraction={self.validation_fraction} of {n} samples"
                f"{self._few_members(encoded)})"
            ) from None
        if va.size < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size of your dataset. "
                f"(early_stopping needs at least 2 validation samples, but validation_fraction="
                f"{self.validation_fraction} of {n} samples gives {va.size})"
            )
        tr.sort()
        va.sort()
        return tr.astype(np.int64), (X[va], Y[va], None if sw is None else sw[va])

    @staticmethod
    def _few_members(encoded):
        """``"; classes of y with one sample: [...]"`` in the user's labels, for the stratification message."""
        if encoded.get("labels") is None:
            return ""
        counts = np.bincount(encoded["labels"], minlength=encoded["classes"].size)
        few = encoded["classes"][counts < 2]
        return f"; classes of y with fewer than 2 samples: {few.tolist()}" if few.size else ""

    def _batch_and_l2(self, n_train, swt):
        """Return the batch size and the network's l2 that give scikit-learn's ``alpha`` penalty."""
        if self.solver == "lbfgs":
            batch_size = n_train  # full batch: the penalty is alpha / (2 * sum of all weights) * ||W||^2
        elif isinstance(self.batch_size, str):
            batch_size = min(200, n_train)
        else:
            batch_size = min(int(self.batch_size), n_train)
        # scikit-learn adds alpha / (2 * sum of the batch's sample weights) * ||W||^2 to each
        # batch's mean loss; numbanet's l2 is lambda / 2 * ||W||^2, so lambda = alpha / (batch
        # weight sum), with the batch weight sum estimated as batch_size * mean weight.
        mean_w = 1.0 if swt is None else float(np.mean(swt))
        l2 = float(self.alpha) / (batch_size * mean_w) if mean_w > 0 else float(self.alpha) / batch_size
        return batch_size, l2

    def _train(self, net, data, epochs, options, stored, training):
        """Fit the network on ``data``, ``(X, Y, sw, training rows or None)``; store what a failed fit reached.

        Divergence (non-finite weights or loss) raises scikit-learn's
        ``ValueError``, except with early stopping, which keeps the best
        weights seen (the diverged epoch's validation score is NaN), as
        scikit-learn's MLP does.
        """
        state, monitor = stored[1], stored[2]
        before = net.history
        try:
            history = net._fit_rows(*data, epochs=epochs, progress=False, **options)
            training.append(True)  # from here on, whatever happens, the attributes follow the trained network
        except BaseException as exc:
            if net.history is before:  # refused before training started
                raise
            # Interrupted (Ctrl-C), diverged or a failing callback: the network keeps the weights
            # of its last completed mini-batch (or last finite epoch); the attributes describe them.
            training.append(True)
            if isinstance(exc, TrainingDivergedError) and monitor.best_params is not None:
                state["validation_scores"].append(float("nan"))
                state["validation_loss_curve"].append(float("nan"))
                monitor.converged = True
                return net.history
            self._store_fitted(net, *stored[:2], net.history, *stored[2:])
            if isinstance(exc, TrainingDivergedError):
                raise ValueError(
                    "Solver produced non-finite parameter weights. The input data may contain large values and "
                    f"need to be preprocessed. ({exc})"
                ) from exc
            raise
        return history

    def _store_fitted(self, net, optimizer, state, history, monitor, n_outputs, out_act, encoded):
        """Set the fitted attributes from the network and this fit's history, so they agree."""
        self.net_ = net
        self._optimizer = optimizer
        self.n_outputs_ = n_outputs
        self.out_activation_ = _SKLEARN_OUT_NAME[out_act]
        # Epochs that ended without the monitor (an interrupted epoch end) are converted here.
        unseen = [self._reported_loss(net, h) for h in history.loss[len(monitor.curve) :]]
        self.loss_curve_ = state["loss_curve"] + monitor.curve[: len(history.loss)] + unseen
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else None
        self.best_loss_ = state["best_loss"]
        self.validation_scores_ = state["validation_scores"]
        self.validation_loss_curve_ = state["validation_loss_curve"]
        self.best_validation_score_ = state["best_validation_score"]
        self.n_iter_ = len(history.loss)
        self.t_ = state["t"] + history.samples
        self._store_encoding(encoded)

    # ------------------------------------------------------------ prediction

    def _checked_inputs(self, X, accept_sparse=False):
        """Return ``X`` validated against the fitted estimator (features, their names), as prediction takes it.

        With ``accept_sparse`` a CSR or CSC ``X`` stays sparse (prediction trains nothing dense from it).
        """
        check_is_fitted(self, "net_")
        sparse = ["csr", "csc"] if accept_sparse else False
        return validate_data(self, X, reset=False, accept_sparse=sparse, dtype=(np.float64, np.float32))

    def _raw(self, X):
        """Return the fitted network's outputs for the validated ``X``: shape (n_samples, n_outputs_).

        A float NumPy matrix with the fitted number of columns, given to an
        estimator fitted without feature names, goes straight to the network,
        whose own check refuses NaN and infinity: the checks scikit-learn's
        ``validate_data`` makes, at a fraction of its cost (which is ten times
        the network's for one row).  Anything else, and anything the network
        refuses, takes ``validate_data``, whose messages are scikit-learn's.
        """
        net = self.__dict__.get("net_")
        if (
            net is not None
            and type(X) is np.ndarray
            and X.ndim == 2
            and X.dtype in _FLOATS
            and X.shape[1] == self.n_features_in_
            and "feature_names_in_" not in self.__dict__
        ):
            try:
                return net.predict(X)
            except ValueError:
                pass  # NaN, infinity or no rows: scikit-learn's message below
        X = self._checked_inputs(X, accept_sparse=True)  # raises NotFittedError, and scikit-learn's messages
        return self.net_.predict(X)

    # ---------------------------------------------------- fitted attributes

    @property
    def coefs_(self):
        """Weight matrices in scikit-learn's orientation, ``(n_in, n_out)`` (views of ``net_.weights``, transposed).

        Assigning a list of matrices of the same shapes copies them into ``net_``.
        """
        if "net_" not in self.__dict__:
            raise AttributeError("coefs_ exists after fit")
        return [W.T for W in self.net_.weights]

    @coefs_.setter
    def coefs_(self, values):
        self._assign("coefs_", values, [W.T for W in self.net_.weights] if "net_" in self.__dict__ else None)

    @property
    def intercepts_(self):
        """Bias vectors (views of ``net_.biases``); assigning copies them into ``net_``."""
        if "net_" not in self.__dict__:
            raise AttributeError("intercepts_ exists after fit")
        return list(self.net_.biases)

    @intercepts_.setter
    def intercepts_(self, values):
        self._assign("intercepts_", values, list(self.net_.biases) if "net_" in self.__dict__ else None)

    def _assign(self, name, values, targets):
        """Copy ``values`` into the network's views ``targets``, all checked first (ValueError, nothing changed)."""
        if targets is None:
            raise AttributeError(f"{name} can be assigned after fit, which builds the network")
        values = list(values)
        if len(values) != len(targets):
            raise ValueError(f"{name} needs {len(targets)} arrays (one per layer); got {len(values)}")
        arrays = [np.asarray(v, dtype=np.float64) for v in values]
        for i, (a, t) in enumerate(zip(arrays, targets)):
            if a.shape != t.shape:
                raise ValueError(f"{name}[{i}] must have shape {t.shape}; got {a.shape}")
        for a, t in zip(arrays, targets):
            t[...] = a

    @property
    def n_layers_(self):
        """Number of layers, input and output included (scikit-learn's count)."""
        if "net_" not in self.__dict__:
            raise AttributeError("n_layers_ exists after fit")
        return len(self.net_.sizes)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multilayer perceptron classifier on a :class:`numbanet.Network`, scikit-learn compatible.

    Binary targets train one sigmoid output with ``binary_cross_entropy``;
    more than two classes a softmax output with ``cross_entropy``; a 2-D 0/1
    indicator ``y`` (multilabel) one sigmoid output per label with
    ``binary_cross_entropy``.  Labels may be of any type (ints, strings, ...).

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default (100,)
        Widths of the hidden layers.
    activation : str or Activation, default "relu"
        Activation of every hidden layer: scikit-learn's "relu", "tanh",
        "logistic" (numbanet's "sigmoid") or "identity", numbanet's
        "leaky_relu", "elu", "gelu", "silu", "softplus" or "mish", or a custom
        :class:`numbanet.Activation`.
    solver : {"adam", "sgd", "lbfgs"}, default "adam"
        ``"lbfgs"``: full-batch L-BFGS (:class:`numbanet.LBFGS`, SciPy's
        L-BFGS-B on numbanet's cost kernel), for small data sets; ``max_iter``
        bounds its iterations and ``max_fun`` its evaluations, ``tol`` is its
        gradient tolerance, and ``partial_fit`` does not exist with it.
    alpha : float, default 1e-4
        L2 penalty strength, with scikit-learn's meaning: each mini-batch adds
        ``alpha / (2 * sum of its sample weights) * sum_l ||W^l||^2`` to its
        mean loss.  The network gets ``l2 = alpha / (batch_size * mean weight)``
        (numbanet's ``l2`` is λ in ``λ/2 · Σ‖W‖²``), which is scikit-learn's
        penalty exactly for every full-size batch of unweighted data (the
        last, smaller batch of an epoch gets the same λ).
    batch_size : int or "auto", default "auto"
        ``"auto"`` is ``min(200, n_samples)``; larger values are capped at ``n_samples``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        SGD's rate schedule, scikit-learn's: ``"invscaling"`` uses
        ``learning_rate_init / (t + 1) ** power_t`` with ``t`` the samples seen
        before the epoch (the first epoch of a fit uses ``learning_rate_init``);
        ``"adaptive"`` divides the rate by 5 each time the convergence rule
        (``tol``, ``n_iter_no_change``) would stop, and stops once the rate is
        at most 1e-6.  Ignored by Adam and L-BFGS.
    learning_rate_init : float, default 1e-3
        The initial learning rate (SGD, Adam).
    power_t : float, default 0.5
        The exponent of ``"invscaling"``.
    max_iter : int, default 200
        Maximum number of epochs (L-BFGS: iterations); a
        :class:`sklearn.exceptions.ConvergenceWarning` is issued when it is
        reached without convergence, warm-started fits included.
    shuffle : bool, default True
        Reshuffle the samples every epoch.
    random_state : int, RandomState or None
        Seeds initialisation (scikit-learn's draws: an int gives scikit-learn's
        initial weights), shuffling, dropout and the early-stopping split.
    tol : float, default 1e-4
        Convergence: training stops when the training loss (or, with
        ``early_stopping``, the validation score) has not improved by at least
        ``tol`` for more than ``n_iter_no_change`` consecutive epochs.
    verbose : bool, default False
        Print the loss of every epoch.
    warm_start : bool, default False
        ``fit`` continues from the fitted weights (with a fresh optimizer).
    momentum : float in [0, 1), default 0.9
        SGD momentum.
    nesterovs_momentum : bool, default True
        Nesterov momentum for SGD (when ``momentum > 0``).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the data (stratified) and stop on
        its accuracy; the weights of the best epoch are kept.  With L-BFGS
        too (scikit-learn ignores it there): validated after every iteration.
    validation_fraction : float, default 0.1
    beta_1, beta_2, epsilon : float
        Adam's hyper-parameters.
    n_iter_no_change : int or np.inf, default 10
        ``np.inf`` never stops on it (``max_iter`` ends the fit).
    max_fun : int, default 15000
        L-BFGS: at most this many cost-and-gradient evaluations.
    class_weight : None, "balanced", dict or list of dicts, default None
        Weights of the classes, as in scikit-learn's classifiers: each
        sample's weight is multiplied by its class's
        (:func:`sklearn.utils.class_weight.compute_sample_weight`), and by
        ``sample_weight`` when that is given too.  ``"balanced"`` weighs a
        class by ``n_samples / (n_classes * its count)`` in the data passed
        to ``fit`` (refused by ``partial_fit``, where one batch does not show
        the class frequencies: pass the dict instead).  A dict maps labels to
        weights (missing labels weigh 1); multilabel targets take
        ``"balanced"`` or one dict per label.  With ``early_stopping`` the
        validation score is weighted the same way.
    dropout : float in [0, 1), default 0
        Inverted-dropout probability of every hidden unit during training
        (:class:`numbanet.Network`'s ``dropout``); prediction uses every
        unit.  Its masks are drawn from ``random_state``, so a fit is
        reproducible.
    activations : list of str or Activation, optional
        One activation per hidden layer, overriding ``activation``.
    loss : {None, "log_loss", "cross_entropy", "binary_cross_entropy", "mse"}, default None
        None or "log_loss": the natural loss of the task (above).  "mse"
        trains the same outputs with squared error.
    dtype : {None, "float32", "float64"}, default None
        Precision of the network; None follows ``X`` (float32 stays float32,
        everything else becomes float64).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (for multilabel: ``arange(n_labels)``).
    net_ : numbanet.Network
        The trained network.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names (a DataFrame).
    n_outputs_ : int
        Output units: 1 for binary, n_classes for multiclass, n_labels for multilabel.
    out_activation_ : {"logistic", "softmax"}
        scikit-learn's name of the output activation.
    loss_curve_ : list of float
        Training loss of every epoch, as scikit-learn reports it: the mean
        per-sample loss over the epoch's mini-batches (each measured before
        its update) plus the L2 term.
    loss_ : float
        The last entry of ``loss_curve_``.
    best_loss_ : float or None
        Lowest training loss (None with ``early_stopping``).
    validation_scores_ : list of float or None
        Validation accuracy of every epoch (with ``early_stopping``).
    validation_loss_curve_ : list of float or None
        With ``early_stopping``: the loss of the held-out samples after every
        epoch, on the scale of ``loss_curve_`` (L2 term included), one entry
        per entry of ``validation_scores_``; None otherwise.
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
    t_ : int
        Training samples seen, summed over epochs.
    coefs_, intercepts_ : list of ndarray
        Weights as ``(n_in, n_out)`` and biases: views of ``net_``'s parameters; assigning
        a list of arrays of the same shapes copies them in.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from numbanet import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=1000,
    ...                     random_state=0).fit(X / 8, y)
    >>> bool(clf.score(X / 8, y) > 0.9)
    True
    """

    _out_task = "classification"

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        class_weight=None,
        dropout=0.0,
        activations=None,
        loss=None,
        dtype=None,
    ):
        super().__init__(
            hidden_layer_sizes,
            activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            dropout=dropout,
            activations=activations,
            loss=loss,
            dtype=dtype,
        )
        self.class_weight = class_weight

    def _with_class_weight(self, sw, encoded, incremental):
        """Multiply ``sw`` by the weight of each sample's class (``class_weight``); None stays None without it."""
        cw = self.class_weight
        if cw is None:
            return sw
        if isinstance(cw, str):
            if cw != "balanced":
                raise ValueError(f"class_weight must be None, 'balanced' or a dict {{class: weight}}; got {cw!r}")
            if incremental:
                raise ValueError(
                    "class_weight='balanced' is not supported by partial_fit: one batch does not show the class "
                    "frequencies. Compute them once on all the data with "
                    "sklearn.utils.class_weight.compute_class_weight('balanced', classes=..., y=...) and pass "
                    "the resulting dict as class_weight"
                )
        elif encoded["multilabel"]:
            if not isinstance(cw, (list, tuple)) or not all(isinstance(d, dict) for d in cw):
                raise ValueError(
                    "for multilabel targets class_weight must be 'balanced' or a list of dicts, one "
                    f"per label ({encoded['classes'].size}); got {cw!r}"
                )
        elif not isinstance(cw, dict):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict {{class: weight}}; got {cw!r}")
        try:
            weights = compute_sample_weight(cw, encoded["y"])
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise ValueError(f"class_weight={cw!r} does not fit the classes {encoded['classes']}: {e}") from None
        weights = np.asarray(weights, dtype=np.float64)
        if not np.all(np.isfinite(weights)) or (weights < 0).any():
            raise ValueError(f"class_weight must give finite non-negative weights; got {cw!r}")
        if sw is not None:
            weights = sw * weights
        if not (weights > 0).any():
            raise ValueError(
                f"every sample has weight 0 under class_weight={cw!r}" + ("" if sw is None else " times sample_weight")
            )
        return check.sample_weights(weights, weights.shape[0])

    def _encode_targets(self, y, first, incremental, classes):
        """Check class labels and encode them as the network's target matrix."""
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        kind = type_of_target(y)
        multilabel = kind == "multilabel-indicator"
        if y.ndim == 2 and not multilabel:
            raise ValueError(
                f"{type(self).__name__} supports 1-D class labels and 2-D 0/1 multilabel indicators; "
                f"got a 2-D target of type {kind!r}"
            )
        name = type(self).__name__
        if first and incremental and classes is None and not multilabel:
            raise ValueError(
                "classes must be passed on the first call to partial_fit "
                "(all labels that can occur, e.g. np.unique(y_all))"
            )
        if first:
            if multilabel:
                cls = np.arange(y.shape[1])
            else:
                cls = unique_labels(classes) if incremental else unique_labels(y)
                if cls.size < 1:
                    raise ValueError(f"{name} needs at least 1 class; got none")
        else:
            cls = self.classes_
            was_multilabel = self.out_activation_ == "logistic" and self.n_outputs_ > 1
            if multilabel != was_multilabel:
                raise ValueError(
                    f"{name} was fitted on {'multilabel' if was_multilabel else 'single-label'} targets; "
                    f"this y is {'multilabel' if multilabel else 'single-label'}"
                )
            if multilabel:
                if y.shape[1] != cls.size:
                    raise ValueError(f"y has {y.shape[1]} labels, but {name} was fitted with {cls.size}")
            else:
                if classes is not None and not np.array_equal(unique_labels(classes), cls):
                    raise ValueError(f"classes={classes!r} is not the same as on the first call: {cls!r}")
                labels = unique_labels(y)
                if not incremental and set(labels) != set(cls):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the previous call to "
                        f"fit. Previously got {cls}, `y` has {labels}"
                    )
                if np.setdiff1d(labels, cls).size:
                    raise ValueError(f"y has classes {np.setdiff1d(labels, cls)} not in classes_ {cls}")
        if multilabel:
            Y = np.asarray(y, dtype=np.float64)
            labels = None
        else:
            pos = np.searchsorted(cls, y)
            pos = np.clip(pos, 0, cls.size - 1)
            if not np.all(cls[pos] == y):
                raise ValueError(f"y has labels not in classes {cls}")
            if cls.size <= 2:  # one class (as scikit-learn allows): one output, always 0, as for the first of two
                Y = pos.reshape(-1, 1).astype(np.float64)
            else:
                Y = np.zeros((y.shape[0], cls.size))
                Y[np.arange(y.shape[0]), pos] = 1.0
            labels = pos
        return Y, {"classes": cls, "multilabel": multilabel, "labels": labels, "y": y}

    def _output_layer(self, encoded):
        n_classes = encoded["classes"].size
        binary = encoded["multilabel"] or n_classes <= 2
        natural = "binary_cross_entropy" if binary else "cross_entropy"
        out = "sigmoid" if binary else "softmax"
        loss = self.loss
        if loss is None or loss == "log_loss":
            loss = natural
        elif loss not in ("mse", "cross_entropy", "binary_cross_entropy"):
            raise ValueError(
                f"unknown loss {loss!r}; choose from None, 'log_loss', 'cross_entropy', 'binary_cross_entropy', 'mse'"
            )
        elif loss != "mse" and loss != natural:
            task = "multilabel" if encoded["multilabel"] else f"{n_classes}-class"
            raise ValueError(f"loss {loss!r} does not fit a {task} target, which trains with {natural!r}")
        return out, loss

    def _store_encoding(self, encoded):
        self.classes_ = encoded["classes"]

    def _net_score(self, net, X, Y, sw):
        """Accuracy (exact match of every output) of ``net`` on encoded targets ``Y``."""
        P = net.predict(X)
        if P.shape[1] > 1 and net.activations[-1] == "softmax":
            correct = P.argmax(axis=1) == Y.argmax(axis=1)
        else:
            correct = np.all((P > 0.5) == (Y > 0.5), axis=1)
        return float(np.average(correct, weights=sw))

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of mini-batches over ``(X, y)``, continuing from the current weights and optimizer.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like of shape (n_classes,), optional
            Every class that can occur; required on the first call (unless
            ``y`` is a multilabel indicator), when ``y`` need not contain them all.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict(self, X):
        """Predicted labels: array of shape (n_samples,), or (n_samples, n_labels) of 0/1 for multilabel."""
        P = self._raw(X)
        if self.n_outputs_ == 1:
            return self.classes_[np.minimum(P[:, 0] > 0.5, self.classes_.size - 1).astype(np.intp)]
        if self.out_activation_ == "softmax":
            return self.classes_[P.argmax(axis=1)]
        return (P > 0.5).astype(int)

    def predict_proba(self, X):
        """Class probabilities, array of shape (n_samples, n_classes) (n_labels for multilabel)."""
        P = self._raw(X)
        if self.n_outputs_ == 1:
            return np.hstack([1.0 - P, P])
        return P

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multilayer perceptron regressor on a :class:`numbanet.Network`, scikit-learn compatible.

    Identity output units trained on the squared error, whose gradient is
    that of ½‖a − y‖² per sample (numbanet's ``mse``, scikit-learn's
    gradient too).  ``y`` may be 1-D (``predict`` returns 1-D) or 2-D for
    several outputs.  Parameters and attributes are those of
    :class:`MLPClassifier` without the class handling (no
    ``class_weight``); ``loss`` (the first parameter, as in scikit-learn) is
    ``"squared_error"`` (the default), ``"mse"`` or None, all the same, or
    ``"poisson"`` (exp output units, half the Poisson deviance, y >= 0, as
    scikit-learn's); ``out_activation_`` is ``"identity"`` (``"exp"`` for
    Poisson), and ``validation_scores_`` holds
    R² scores.  ``loss_curve_`` and ``validation_loss_curve_`` report
    scikit-learn's value, ``0.5 * mean over samples and outputs of (a − y)²``
    plus the L2 term: for k > 1 outputs, 1/k of the squared-error term that
    is minimised (the L2 term of each epoch's entry taken at the weights of
    the epoch's end).

    Examples
    --------
    >>> import numpy as np
    >>> from numbanet import MLPRegressor
    >>> X = np.linspace(-1, 1, 200).reshape(-1, 1)
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), activation="tanh", learning_rate_init=0.01,
    ...                    batch_size=20, max_iter=1000, random_state=0).fit(X, X[:, 0] ** 2)
    >>> bool(reg.score(X, X[:, 0] ** 2) > 0.9)
    True
    """

    _out_task = "regression"

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dropout=0.0,
        activations=None,
        dtype=None,
    ):
        super().__init__(
            hidden_layer_sizes,
            activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            dropout=dropout,
            activations=activations,
            loss=loss,
            dtype=dtype,
        )

    def _encode_targets(self, y, first, incremental, classes):
        if y.dtype.kind not in "biuf":
            raise ValueError(f"{type(self).__name__} needs numeric targets; y has dtype {y.dtype}")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        if self.loss == "poisson" and Y.min() < 0:
            raise ValueError(f"y must be >= 0 for loss='poisson' (counts or rates); the smallest value is {Y.min():g}")
        if not first and Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} outputs, but {type(self).__name__} was fitted with {self.n_outputs_}")
        return Y, {"labels": None}

    def _output_layer(self, encoded):
        if self.loss == "poisson":
            return "exp", "poisson"
        if self.loss not in (None, "squared_error", "mse"):
            raise ValueError(f"unknown loss {self.loss!r}; choose from None, 'squared_error', 'mse', 'poisson'")
        return "identity", "mse"

    def _store_encoding(self, encoded):
        pass

    def _net_score(self, net, X, Y, sw):
        P = net.predict(X)
        if not np.isfinite(P).all():  # diverging weights: no score (scikit-learn's NaN), not an error
            return float("nan")
        return float(r2_score(Y, P, sample_weight=sw))

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch of mini-batches over ``(X, y)``, continuing from the current weights and optimizer.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predictions: array of shape (n_samples,) for a single output, else (n_samples, n_outputs)."""
        P = self._raw(X)
        return P[:, 0].copy() if self.n_outputs_ == 1 else P

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _type_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


#: The type names ``skops.io.load(path, trusted=...)`` must be given to load a fitted
#: :class:`MLPClassifier` or :class:`MLPRegressor` with any solver, alone or in a Pipeline of
#: scikit-learn's own steps (docs/export.md).  Taken from the classes that a fitted estimator holds:
#: itself, its network, the network's history, the solvers' optimizers, and the network's dtype
#: (which skops files as ``numpy.dtype``).
SKOPS_TRUSTED = sorted(
    [_type_name(c) for c in (MLPClassifier, MLPRegressor, Network, History, SGD, Adam, LBFGS)] + ["numpy.dtype"]
)
