"""Learning-rate schedules: the learning rate of each epoch.

A schedule maps the 0-based epoch number (counting every epoch the network
has trained, across ``fit`` calls) and the optimizer's base learning rate to
the learning rate of that epoch.  Any callable ``f(epoch) -> lr`` works too.
The formulas follow ``torch.optim.lr_scheduler``.

Schedules that depend only on the epoch let :meth:`numbanet.Network.fit` run
many epochs in one jitted call; :class:`ReduceLROnPlateau` watches the loss
and so needs Python between epochs.
"""

import math


class Schedule:
    """Base class.  Subclasses implement ``__call__(epoch, base_lr) -> float``."""

    #: Whether the schedule needs the loss of each epoch (see :meth:`observe`).
    needs_loss = False

    def __call__(self, epoch, base_lr):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items() if not k.startswith('_'))})"


class ConstantLR(Schedule):
    """The base learning rate every epoch."""

    def __call__(self, epoch, base_lr):
        return base_lr


class StepLR(Schedule):
    """``base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, step_size, gamma=0.1):
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1; got {step_size}")
        self.step_size = int(step_size)
        self.gamma = float(gamma)

    def __call__(self, epoch, base_lr):
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(Schedule):
    """``base_lr * gamma ** epoch``."""

    def __init__(self, gamma):
        if not 0 < gamma:
            raise ValueError(f"gamma must be > 0; got {gamma}")
        self.gamma = float(gamma)

    def __call__(self, epoch, base_lr):
        return base_lr * self.gamma**epoch


class CosineLR(Schedule):
    """Cosine annealing from ``base_lr`` to ``eta_min`` over ``T_max`` epochs (then constant)."""

    def __init__(self, T_max, eta_min=0.0):
        if T_max < 1:
            raise ValueError(f"T_max must be >= 1; got {T_max}")
        self.T_max = int(T_max)
        self.eta_min = float(eta_min)

    def __call__(self, epoch, base_lr):
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
    """Wrap a user function ``f(epoch) -> lr``."""

    def __init__(self, fn):
        if not callable(fn):
            raise ValueError(f"a learning-rate schedule must be callable; got {fn!r}")
        self.fn = fn

    def __call__(self, epoch, base_lr):
        return float(self.fn(epoch))


def as_schedule(schedule):
    """Turn ``None``, a :class:`Schedule` or a callable of the epoch into a :class:`Schedule`."""
    if schedule is None:
        return ConstantLR()
    if isinstance(schedule, Schedule):
        return schedule
    return LambdaLR(schedule)
