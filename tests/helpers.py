"""Helpers shared by several test modules (imported as ``from helpers import ...``;
pytest puts this folder on ``sys.path``)."""

import numpy as np


def flat_params(net, dW, db, dtype=None):
    """Per-layer arrays shaped like ``net.weights`` / ``net.biases`` as one vector in
    the layout of ``net.params``, written through the network's own views (so the
    tests do not depend on how the layers are laid out in the vector)."""
    out = np.zeros(net.n_params, dtype=net.params.dtype if dtype is None else dtype)
    views_W, views_b = net._unflatten(out)
    for v, w in zip(views_W, dW):
        v[...] = w
    for v, b in zip(views_b, db):
        v[...] = np.ravel(b)
    return out
