"""Optimizer configurations and their state.

An optimizer object holds hyper-parameters and, once used, its state (the
momentum buffer or Adam's moments, and the step count); the arithmetic is the
flat kernel :func:`numbanet.kernels.updates.update`, which updates every
parameter of a network in one call.  Formulas are PyTorch's
(``torch.optim``); see :mod:`numbanet.kernels.updates`.

Passing the same optimizer object to repeated ``fit`` calls continues from its
state; its state is reset when it meets a network of another size or dtype.
"""

import numpy as np

from numbanet._validation import non_negative_float
from numbanet.kernels import updates as _u


class Optimizer:
    """Base class: hyper-parameters, state, and the code of the update kernel."""

    _code = -1

    def __init__(self, lr, weight_decay=0.0):
        self.lr = lr
        self.weight_decay = weight_decay
        self.state = None
        self.t = 0
        self._validate()

    def _validate(self):
        if non_negative_float(self.lr, "lr") <= 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")
        non_negative_float(self.weight_decay, "weight_decay")

    def _hyper(self):
        h = np.zeros(_u.N_HYPER, dtype=np.float64)
        h[_u.H_WEIGHT_DECAY] = self.weight_decay
        return h

    def bind(self, n_params, dtype):
        """Make sure the state matches a parameter vector of ``n_params`` of ``dtype``.

        Returns the ``(rows, n_params)`` state array (zeros for a fresh optimizer), ``rows`` as
        :func:`numbanet.kernels.updates.state_rows` says.
        """
        self._validate()
        shape = (_u.state_rows(self._code), n_params)
        if self.state is None or self.state.shape != shape or self.state.dtype != dtype:
            self.state = np.zeros(shape, dtype=dtype)
            self.t = 0
        return self.state

    def reset(self):
        """Forget the state: the next step is a first step."""
        self.state = None
        self.t = 0

    def step(self, params, grad, lr=None):
        """Apply one update to the flat ``params`` in place, given ``grad``.

        Parameters
        ----------
        params : array of shape (n_params,), float32 or float64
            Updated in place (for example ``net.params``).
        grad : array of shape (n_params,), same dtype
        lr : float, optional
            Learning rate for this step; ``self.lr`` by default.
        """
        state = self.bind(params.size, params.dtype)
        self.t += 1
        _u.update(
            self._code,
            params,
            np.ascontiguousarray(grad, dtype=params.dtype),
            state,
            self._hyper(),
            float(self.lr if lr is None else lr),
            self.t,
        )

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def get_params(self):
        """Hyper-parameters as a dict (the constructor's arguments)."""
        return {k: getattr(self, k) for k in self._param_names}


class SGD(Optimizer):
    """Mini-batch gradient descent, with optional (Nesterov) momentum and weight decay.

    Parameters
    ----------
    lr : float, default 0.1
        Learning rate η.
    momentum : float, default 0
        μ in ``b <- μ b + g``.
    nesterov : bool, default False
        Step along ``g + μ b`` instead of ``b``.
    weight_decay : float, default 0
        λ added as ``λ θ`` to the gradient (coupled, as in ``torch.optim.SGD``).
    """

    _code = _u.SGD
    _param_names = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(self, lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.momentum = momentum
        self.nesterov = nesterov
        super().__init__(lr, weight_decay)

    def _validate(self):
        super()._validate()
        non_negative_float(self.momentum, "momentum", upper=1.0, upper_open=True)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")

    def _hyper(self):
        h = super()._hyper()
        h[_u.H_MOMENTUM] = self.momentum
        h[_u.H_NESTEROV] = 1.0 if self.nesterov else 0.0
        return h


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba), PyTorch's formula.

    Parameters
    ----------
    lr : float, default 1e-3
    betas : tuple of two floats, default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
        Coupled L2: ``λ θ`` is added to the gradient.  See :class:`AdamW`.
    """

    _code = _u.ADAM
    _param_names = ("lr", "betas", "eps", "weight_decay")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.betas = tuple(betas)
        self.eps = eps
        super().__init__(lr, weight_decay)

    def _validate(self):
        super()._validate()
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers; got {self.betas!r}")
        for i, beta in enumerate(self.betas):
            non_negative_float(beta, f"betas[{i}]", upper=1.0, upper_open=True)
        if non_negative_float(self.eps, "eps") <= 0:
            raise ValueError(f"eps must be > 0; got {self.eps}")

    def _hyper(self):
        h = super()._hyper()
        h[_u.H_BETA1], h[_u.H_BETA2] = self.betas
        h[_u.H_EPS] = self.eps
        return h


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``θ <- θ (1 - η λ)``.

    Parameters are those of :class:`Adam`; ``weight_decay`` defaults to 1e-2
    as in PyTorch.
    """

    _code = _u.ADAMW

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """RMSprop, PyTorch's formula (not centred).

    Parameters
    ----------
    lr : float, default 1e-2
    alpha : float, default 0.99
        Smoothing constant of the squared-gradient average.
    eps : float, default 1e-8
    momentum : float, default 0
    weight_decay : float, default 0
    """

    _code = _u.RMSPROP
    _param_names = ("lr", "alpha", "eps", "momentum", "weight_decay")

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0):
        self.alpha = alpha
        self.eps = eps
        self.momentum = momentum
        super().__init__(lr, weight_decay)

    def _validate(self):
        super()._validate()
        non_negative_float(self.alpha, "alpha", upper=1.0)
        non_negative_float(self.momentum, "momentum", upper=1.0, upper_open=True)
        if non_negative_float(self.eps, "eps") <= 0:
            raise ValueError(f"eps must be > 0; got {self.eps}")

    def _hyper(self):
        h = super()._hyper()
        h[_u.H_ALPHA] = self.alpha
        h[_u.H_EPS] = self.eps
        h[_u.H_MOMENTUM] = self.momentum
        return h
