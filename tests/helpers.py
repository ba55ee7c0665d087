"""Helpers shared by several test modules.

Imported as ``from helpers import ...``; pytest puts this folder on ``sys.path``.
"""

import numpy as np


def flat_params(net, dW, db, dtype=None):
    """Return per-layer arrays shaped like ``net.weights`` / ``net.biases`` as one vector.

    The vector has the layout of ``net.params`` and is written through the network's
    own views (so the tests do not depend on how the layers are laid out in it).
    """
    out = np.zeros(net.n_params, dtype=net.params.dtype if dtype is None else dtype)
    views_W, views_b = net._unflatten(out)
    for v, w in zip(views_W, dW):
        v[...] = w
    for v, b in zip(views_b, db):
        v[...] = np.ravel(b)
    return out


QUIET = dict(progress=False)


def grad(net, X, Y, sample_weight=None):
    """``net.gradients`` as one vector in the layout of ``net.params``."""
    return flat_params(net, *net.gradients(X, Y, sample_weight=sample_weight))


def small_net(seed=0, **kw):
    """Build a 3-5-2 tanh/identity network for the ``regression()`` data."""
    import numbanet

    kw.setdefault("activations", ["tanh", "identity"])
    return numbanet.Network([3, 5, 2], seed=seed, **kw)
