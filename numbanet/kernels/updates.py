r"""In-place parameter updates on the flat parameter vector.

All parameters of a network live in one contiguous vector ``theta`` (the
weights and biases are views into it), so one call updates every parameter.
The formulas are PyTorch's (``torch.optim``), for ``g`` the gradient:

SGD (momentum μ, dampening 0, weight decay λ):
    :math:`g \leftarrow g + \lambda\theta;\ b \leftarrow \mu b + g;\
    \theta \leftarrow \theta - \eta\,(g + \mu b \text{ if Nesterov else } b)`
    (with μ = 0: :math:`\theta \leftarrow \theta - \eta g`).
Adam:
    :math:`g \leftarrow g + \lambda\theta;\ m \leftarrow \beta_1 m + (1-\beta_1) g;\
    v \leftarrow \beta_2 v + (1-\beta_2) g^2;\
    \theta \leftarrow \theta - \eta\,\hat m / (\sqrt{\hat v} + \epsilon)`
    with :math:`\hat m = m/(1-\beta_1^t)`, :math:`\hat v = v/(1-\beta_2^t)`.
AdamW:
    Adam with decoupled decay :math:`\theta \leftarrow \theta(1 - \eta\lambda)` first.
RMSprop (α, ε, momentum μ):
    :math:`g \leftarrow g + \lambda\theta;\ v \leftarrow \alpha v + (1-\alpha) g^2;\
    \theta \leftarrow \theta - \eta\, g / (\sqrt v + \epsilon)`
    (with μ > 0: :math:`b \leftarrow \mu b + g/(\sqrt v + \epsilon);\ \theta \leftarrow \theta - \eta b`).

Hyper-parameters travel in one float64 vector ``hyper`` indexed by the
``H_*`` constants; optimizer state in a ``(state_rows(code), n_params)``
array.  :func:`state_rows` is the one place that says how many rows an
optimizer keeps: the state's allocation, the training run's backup and the
distributed loops all follow from it.
"""

import numpy as np

from numbanet._jit import jit

SGD = 0
ADAM = 1
ADAMW = 2
RMSPROP = 3

H_MOMENTUM = 0
H_NESTEROV = 1
H_WEIGHT_DECAY = 2
H_BETA1 = 3
H_BETA2 = 4
H_EPS = 5
H_ALPHA = 6
N_HYPER = 7

#: Rows of optimizer state by optimizer code: the momentum buffer or first moment, and the second
#: moment.  Plain SGD uses one row but keeps two, so that its state has the shape saved and pickled
#: optimizers have always had.
STATE_ROWS = (2, 2, 2, 2)


def state_rows(code):
    """Return the rows of state the optimizer ``code`` keeps."""
    return STATE_ROWS[code]


@jit
def sgd_step(theta, grad, lr):
    r"""Plain gradient descent, :math:`\theta \leftarrow \theta - \eta\, g`, in place.

    Parameters
    ----------
    theta : array of shape (n_params,), float32 or float64
        Parameters, updated in place.
    grad : array of shape (n_params,), same dtype
        Gradient of the batch cost.
    lr : float
        Learning rate η.
    """
    eta = theta.dtype.type(lr)
    for k in range(theta.size):
        theta[k] -= eta * grad[k]


@jit
def sgd_momentum_step(theta, grad, buf, lr, mu, nesterov, wd):
    """SGD with weight decay and (Nesterov) momentum; ``buf`` is the momentum buffer."""
    f = theta.dtype.type
    eta, m, lam = f(lr), f(mu), f(wd)
    for k in range(theta.size):
        g = grad[k] + lam * theta[k]
        b = m * buf[k] + g
        buf[k] = b
        if nesterov:
            theta[k] -= eta * (g + m * b)
        else:
            theta[k] -= eta * b


@jit
def sgd_decay_step(theta, grad, lr, wd):
    """Plain SGD with coupled weight decay, ``θ <- θ - η (g + λ θ)``."""
    f = theta.dtype.type
    eta, lam = f(lr), f(wd)
    for k in range(theta.size):
        theta[k] -= eta * (grad[k] + lam * theta[k])


@jit
def adam_step(theta, grad, m, v, lr, beta1, beta2, eps, wd, decoupled, t):
    """Adam (``decoupled=False``) or AdamW (``decoupled=True``); ``m``, ``v`` are the moments."""
    # Scalars are formed in float64, then cast once to the parameters' dtype,
    # so a float32 loop stays in float32 (as torch.optim does).
    f = theta.dtype.type
    bc1 = 1.0 - beta1**t
    bc2 = 1.0 - beta2**t
    step = f(lr / bc1)
    sbc2 = f(np.sqrt(bc2))
    decay = f(1.0 - lr * wd)
    lam = f(wd)
    b1, c1, b2, c2, e = f(beta1), f(1.0 - beta1), f(beta2), f(1.0 - beta2), f(eps)
    for k in range(theta.size):
        g = grad[k]
        if decoupled:
            theta[k] *= decay
        else:
            g += lam * theta[k]
        mk = b1 * m[k] + c1 * g
        vk = b2 * v[k] + c2 * g * g
        m[k] = mk
        v[k] = vk
        theta[k] -= step * mk / (np.sqrt(vk) / sbc2 + e)


@jit
def rmsprop_step(theta, grad, v, buf, lr, alpha, eps, mu, wd):
    """RMSprop (not centred); ``v`` is the squared-gradient average, ``buf`` the momentum buffer."""
    f = theta.dtype.type
    eta, a, c, e, m, lam = f(lr), f(alpha), f(1.0 - alpha), f(eps), f(mu), f(wd)
    for k in range(theta.size):
        g = grad[k] + lam * theta[k]
        vk = a * v[k] + c * g * g
        v[k] = vk
        if mu == 0.0:
            theta[k] -= eta * g / (np.sqrt(vk) + e)
        else:
            b = m * buf[k] + g / (np.sqrt(vk) + e)
            buf[k] = b
            theta[k] -= eta * b


@jit
def update(code, theta, grad, state, hyper, lr, t):
    """Apply one optimizer step to ``theta`` in place.

    Parameters
    ----------
    code : int
        ``SGD``, ``ADAM``, ``ADAMW`` or ``RMSPROP``.
    theta : array of shape (n_params,)
        Parameters, updated in place.
    grad : array of shape (n_params,)
        Gradient; not modified.
    state : array of shape (state_rows(code), n_params), same dtype as ``theta``
        Optimizer state (momentum buffer / first moment, second moment),
        updated in place; zeros before the first step.
    hyper : array of shape (N_HYPER,), float64
        Hyper-parameters indexed by the ``H_*`` constants.
    lr : float
        Learning rate for this step (schedules change it between epochs).
    t : int
        1-based number of this step (Adam's bias correction).
    """
    mu = hyper[H_MOMENTUM]
    wd = hyper[H_WEIGHT_DECAY]
    if code == SGD:
        if mu != 0.0:
            sgd_momentum_step(theta, grad, state[0], lr, mu, hyper[H_NESTEROV] != 0.0, wd)
        elif wd != 0.0:
            sgd_decay_step(theta, grad, lr, wd)
        else:
            sgd_step(theta, grad, lr)
    elif code == ADAM or code == ADAMW:
        adam_step(
            theta, grad, state[0], state[1], lr, hyper[H_BETA1], hyper[H_BETA2], hyper[H_EPS], wd, code == ADAMW, t
        )
    elif code == RMSPROP:
        rmsprop_step(theta, grad, state[0], state[1], lr, hyper[H_ALPHA], hyper[H_EPS], mu, wd)
    else:
        raise ValueError("unknown optimizer code")


@jit
def clip_by_global_norm(grad, max_norm):
    r"""Scale ``grad`` in place so that :math:`\|g\|_2 \le` ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: when the norm exceeds ``max_norm``
    the gradient is multiplied by ``max_norm / (norm + 1e-6)``.

    Returns
    -------
    float
        The norm before clipping.
    """
    s = 0.0
    for k in range(grad.size):
        g = float(grad[k])
        s += g * g
    norm = np.sqrt(s)
    if norm > max_norm:
        scale = grad.dtype.type(max_norm / (norm + 1e-6))
        for k in range(grad.size):
            grad[k] *= scale
    return norm
