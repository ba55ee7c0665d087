"""Reproducibility of :meth:`numbanet.Network.fit`, and an end-to-end run on digits.

The same seed gives the same weights and observers change nothing; the end-to-end
run uses scikit-learn's digits.
"""

import numpy as np
import pytest
from helpers import QUIET
from naive import classification

import numbanet
from numbanet import Adam, CosineLR

# ---------------------------------------------------------- reproducibility


def _repro_fit(seed, dtype=np.float64, **fit_kw):
    X, Y = classification(n=60, seed=4)
    net = numbanet.Network(
        [4, 8, 3], activations=["relu", "softmax"], loss="cross_entropy", seed=seed, dtype=dtype, dropout=0.2
    )
    net.fit(X, Y, epochs=4, batch_size=7, optimizer=Adam(lr=0.01), **QUIET, **fit_kw)
    return net


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_seed_same_weights(dtype):
    a, b = _repro_fit(3, dtype), _repro_fit(3, dtype)
    np.testing.assert_array_equal(a.params, b.params)


def test_different_seed_different_shuffling():
    a = _repro_fit(3)
    # The same initial weights with another generator: only shuffling and dropout differ.
    X, Y = classification(n=60, seed=4)
    b = numbanet.Network([4, 8, 3], activations=["relu", "softmax"], loss="cross_entropy", seed=4, dropout=0.2)
    b.params[...] = numbanet.Network([4, 8, 3], activations=["relu", "softmax"], loss="cross_entropy", seed=3).params
    b.fit(X, Y, epochs=4, batch_size=7, optimizer=Adam(lr=0.01), **QUIET)
    assert not np.allclose(a.params, b.params)


def test_weights_do_not_depend_on_observers():
    """Callbacks, validation and progress only watch.

    The trained weights are the same as without them (epochs run per call or one by one).
    """
    a = _repro_fit(5)
    X, Y = classification(n=60, seed=4)
    b = _repro_fit(5, callbacks=lambda n, h: None)
    c = _repro_fit(5, validation_data=(X[:5], Y[:5]))
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.params, c.params)


# ------------------------------------------------------------------- digits


def test_digits_with_early_stopping_and_schedule(digits):
    X, Y, _ = digits
    net = numbanet.Network([64, 32, 10], activations=["relu", "softmax"], loss="cross_entropy", seed=0)
    perm = net.copy()._rng.permutation(X.shape[0])  # white-box: the rows validation_split holds out
    n_val = round(0.2 * X.shape[0])
    Xv, Yv = X[perm[:n_val]], Y[perm[:n_val]]
    h = net.fit(
        X,
        Y,
        epochs=60,
        batch_size=32,
        optimizer=Adam(lr=3e-3),
        validation_split=0.2,
        early_stopping=5,
        lr_schedule=CosineLR(T_max=60),
        **QUIET,
    )
    assert len(h.val_loss) == len(h.val_accuracy) == len(h.loss) == len(h.lr) == len(h)
    assert h.lr[0] == 3e-3 and all(a > b for a, b in zip(h.lr, h.lr[1:]))
    assert h.loss[-1] < h.loss[0] / 5
    assert max(h.val_accuracy) > 0.9
    # The restored weights are those of the best validation epoch.
    assert h.best_epoch == int(np.argmin(h.val_loss))
    assert net.loss(Xv, Yv) == h.val_loss[h.best_epoch]
    assert net.accuracy(Xv, Yv) == h.val_accuracy[h.best_epoch] > 0.9
