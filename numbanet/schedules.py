"""Learning-rate schedules: the learning rate of each epoch.

A schedule maps the 0-based epoch number (counting every epoch the network
has trained, across ``fit`` calls) and the optimizer's base learning rate to
the learning rate of that epoch.  A plain callable works too, in either form:

* ``f(epoch) -> lr``, e.g. ``lambda epoch: 0.1 * 0.9 ** epoch``;
* ``f(epoch, base_lr) -> lr``, e.g. ``lambda epoch, lr: lr * 0.9 ** epoch``.

The form is read from the number of required positional parameters
(:func:`inspect.signature`); a callable whose signature cannot be read is
called as ``f(epoch)``.  One that requires no argument, three or more, or a
keyword-only argument is refused by :func:`as_schedule` (and so by
:meth:`numbanet.Network.fit` before anything changes).  The formulas of the
classes follow ``torch.optim.lr_scheduler``.

Schedules that depend only on the epoch let :meth:`numbanet.Network.fit` run
many epochs in one jitted call; :class:`ReduceLROnPlateau` watches the loss
and so needs Python between epochs.
"""

import inspect
import math


class Schedule:
    """Base class.  Subclasses implement ``__call__(epoch, base_lr) -> float``."""

    #: Whether the schedule needs the loss of each epoch (see :meth:`observe`).
    needs_loss = False

    def __call__(self, epoch, base_lr):
        """Return the learning rate of ``epoch`` (0-based) given the optimizer's ``base_lr``."""
        raise NotImplementedError

    def __repr__(self):
        return (
            f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items() if not k.startswith('_'))})"
        )


class ConstantLR(Schedule):
    """The base learning rate every epoch."""

    def __call__(self, epoch, base_lr):
        """Return the learning rate of ``epoch`` (0-based) given the optimizer's ``base_lr``."""
        return base_lr


class StepLR(Schedule):
    """``base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, step_size, gamma=0.1):
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1; got {step_size}")
        self.step_size = int(step_size)
        self.gamma = float(gamma)

    def __call__(self, epoch, base_lr):
        """Return the learning rate of ``epoch`` (0-based) given the optimizer's ``base_lr``."""
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(Schedule):
    """``base_lr * gamma ** epoch``."""

    def __init__(self, gamma):
        if not 0 < gamma:
            raise ValueError(f"gamma must be > 0; got {gamma}")
        self.gamma = float(gamma)

    def __call__(self, epoch, base_lr):
        """Return the learning rate of ``epoch`` (0-based) given the optimizer's ``base_lr``."""
        return base_lr * self.gamma**epoch


class CosineLR(Schedule):
    """Cosine annealing from ``base_lr`` to ``eta_min`` over ``T_max`` epochs (then constant)."""

    def __init__(self, T_max, eta_min=0.0):
        if T_max < 1:
            raise ValueError(f"T_max must be >= 1; got {T_max}")
        self.T_max = int(T_max)
        self.eta_min = float(eta_min)

    def __call__(self, epoch, base_lr):
        """Return the learning rate of ``epoch`` (0-based) given the optimizer's ``base_lr``."""
        e = min(epoch, self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2


class ReduceLROnPlateau(Schedule):
    """Multiply the learning rate by ``factor`` when the monitored loss stops improving.

    The validation loss is monitored when there is validation data, the
    training loss otherwise.  After ``patience`` epochs without an improvement
    of more than ``threshold`` (relative), the rate is reduced, never below
    ``min_lr``.
    """

    needs_loss = True

    def __init__(self, factor=0.1, patience=10, threshold=1e-4, min_lr=0.0):
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1); got {factor}")
        self.factor = float(factor)
        self.patience = int(patience)
        self.threshold = float(threshold)
        self.min_lr = float(min_lr)
        self._scale = 1.0
        self._best = math.inf
        self._bad = 0

    def __call__(self, epoch, base_lr):
        """Return the learning rate of ``epoch`` (0-based) given the optimizer's ``base_lr``."""
        return max(base_lr * self._scale, self.min_lr)

    def observe(self, value, base_lr):
        """Record the monitored loss at the end of an epoch."""
        if value < self._best * (1 - self.threshold):
            self._best = value
            self._bad = 0
        else:
            self._bad += 1
            if self._bad > self.patience:
                if base_lr * self._scale * self.factor >= self.min_lr or base_lr * self._scale > self.min_lr:
                    self._scale *= self.factor
                self._bad = 0


class LambdaLR(Schedule):
    """Wrap a user function ``f(epoch) -> lr`` or ``f(epoch, base_lr) -> lr``.

    Parameters
    ----------
    fn : callable
        Called with the 0-based epoch, and also with the optimizer's base
        learning rate when it has two required positional parameters.  With
        one (or none required but optional ones, or ``*args``) it is called
        as ``fn(epoch)``, as it is when its signature cannot be read.

    Raises
    ------
    ValueError
        When ``fn`` is not callable, accepts no positional argument, requires
        three or more positional arguments, or requires a keyword-only one.
    """

    def __init__(self, fn):
        if not callable(fn):
            raise ValueError(f"a learning-rate schedule must be callable; got {fn!r}")
        self._n_args = _schedule_arity(fn)
        self.fn = fn

    def __call__(self, epoch, base_lr):
        """Return ``fn(epoch)`` or ``fn(epoch, base_lr)`` as a float."""
        if self._n_args == 2:
            return float(self.fn(epoch, base_lr))
        return float(self.fn(epoch))


def _schedule_arity(fn):
    """How many arguments (1 or 2) to call the schedule function ``fn`` with."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # some builtins and extension callables have no readable signature
        return 1
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    keyword_only = [p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    takes_more = any(p.kind == p.VAR_POSITIONAL for p in params) or len(positional) > len(required)
    if keyword_only:
        raise ValueError(
            f"a learning-rate schedule function is called as f(epoch) or f(epoch, base_lr); "
            f"{fn!r} requires the keyword-only argument(s) {', '.join(keyword_only)}"
        )
    if len(required) > 2:
        raise ValueError(
            f"a learning-rate schedule function is called as f(epoch) or f(epoch, base_lr); "
            f"{fn!r} requires {len(required)} positional arguments ({', '.join(p.name for p in required)})"
        )
    if not required and not takes_more:
        raise ValueError(
            f"a learning-rate schedule function is called as f(epoch) or f(epoch, base_lr); "
            f"{fn!r} takes no positional arguments"
        )
    return max(len(required), 1)


def as_schedule(schedule):
    """Turn ``None``, a :class:`Schedule` or a callable into a :class:`Schedule`.

    Parameters
    ----------
    schedule : None, Schedule or callable
        None gives :class:`ConstantLR`; a callable ``f(epoch)`` or
        ``f(epoch, base_lr)`` is wrapped in :class:`LambdaLR`.

    Returns
    -------
    Schedule

    Raises
    ------
    ValueError
        For anything else, and for callables of another arity (see :class:`LambdaLR`).
    """
    if schedule is None:
        return ConstantLR()
    if isinstance(schedule, Schedule):
        return schedule
    return LambdaLR(schedule)
