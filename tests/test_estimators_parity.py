"""The estimators learn as scikit-learn's do, and what they add: class_weight, dropout, a validation loss curve.

Learning parity is tested where it can be exact: from the same
``random_state`` the estimators start from scikit-learn's very weights, and
with one full batch per epoch (so that shuffling plays no part) they follow
scikit-learn's training to rounding (the Adam formulas differ only in where
``epsilon`` sits).  ``benchmarks/parity.py`` measures the general case,
shuffled mini-batches on seven data sets; its quick run is executed here.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import neural_network as sknn
from sklearn.datasets import make_classification, make_regression
from sklearn.metrics import recall_score
from sklearn.preprocessing import StandardScaler, scale
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.estimator_checks import check_classifiers_train, check_regressors_train

from numbanet import MLPClassifier, MLPRegressor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


@pytest.fixture(scope="module")
def check_data():
    """scikit-learn's own regression check data (``check_regressors_train``): 200 samples, 10 features."""
    X, y = make_regression(n_samples=200, n_features=10, n_informative=1, bias=5.0, noise=20, random_state=42)
    return StandardScaler().fit_transform(X), scale(y)


@pytest.fixture(scope="module")
def imbalanced():
    """Two overlapping classes, 90 % / 10 %."""
    return make_classification(
        n_samples=600, n_features=6, n_informative=3, weights=[0.9, 0.1], class_sep=0.6, flip_y=0, random_state=0
    )


def _params(est):
    return est.coefs_ + est.intercepts_


# ------------------------------------------------------------ initialisation


@pytest.mark.parametrize("activation", ["relu", "logistic", "tanh"])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_initial_weights_are_sklearns_for_the_same_random_state(check_data, activation, kind):
    """The same int random_state gives scikit-learn's initial weights and biases, bit for bit."""
    X, y = check_data
    if kind == "classifier":
        y, ours, theirs = (y > 0).astype(int), MLPClassifier, sknn.MLPClassifier
    else:
        ours, theirs = MLPRegressor, sknn.MLPRegressor
    # a learning rate of 1e-300 leaves the weights where they started
    kw = dict(hidden_layer_sizes=(7, 5), activation=activation, learning_rate_init=1e-300, max_iter=1, random_state=3)
    a, b = theirs(**kw).fit(X, y), ours(**kw).fit(X, y)
    for p, q in zip(_params(a), _params(b), strict=True):
        np.testing.assert_array_equal(p, q)
    bound = np.sqrt((2.0 if activation == "logistic" else 6.0) / (10 + 7))
    assert np.abs(b.coefs_[0]).max() <= bound and np.abs(b.intercepts_[0]).max() <= bound
    assert np.abs(b.intercepts_[0]).min() > 0  # biases are drawn too, not zero


def test_network_keeps_its_own_initialisation():
    """Network's documented default stays: He normal weights and zero biases for ReLU layers."""
    import numbanet

    net = numbanet.Network([10, 100, 1], activations=["relu", "identity"], seed=0)
    assert np.all(net.biases[0] == 0)
    assert net.weights[0].std() == pytest.approx(np.sqrt(2 / 10), rel=0.1)  # He normal


# ------------------------------------------------------------ learning parity


def test_regressor_follows_sklearns_training_on_its_check_data(check_data):
    """The case of the report: R² after 20/50/100 epochs was -1.14/0.15/0.70 against scikit-learn's 0.68/0.85/0.89."""
    X, y = check_data  # 200 samples: batch_size "auto" is one full batch, so shuffling plays no part
    for max_iter in (20, 50, 100):
        for seed in (0, 1):
            theirs = sknn.MLPRegressor(max_iter=max_iter, random_state=seed).fit(X, y)
            ours = MLPRegressor(max_iter=max_iter, random_state=seed).fit(X, y)
            assert ours.score(X, y) == pytest.approx(theirs.score(X, y), abs=1e-4)
            np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-4)


def test_loss_curve_is_on_sklearns_scale_for_several_outputs(check_data):
    """A 3-output regressor reports scikit-learn's loss_curve_ (squared error averaged over outputs)."""
    X, y = check_data
    Y = np.column_stack([y, 2 * y + 1, -y])
    kw = dict(hidden_layer_sizes=(16,), max_iter=15, random_state=0)
    theirs = sknn.MLPRegressor(**kw).fit(X, Y)
    ours = MLPRegressor(**kw).fit(X, Y)
    # scikit-learn averages the squared error over the outputs (its gradient is the sum's)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-6)
    assert ours.loss_ == ours.loss_curve_[-1]


def test_sklearn_train_checks_pass_at_defaults_with_50_iterations():
    """scikit-learn's train checks pass at its defaults with max_iter=50 (they failed for the regressor)."""
    check_regressors_train("MLPRegressor", MLPRegressor(max_iter=50))
    check_classifiers_train("MLPClassifier", MLPClassifier(max_iter=50))


def test_parity_benchmark_quick_run_prints_its_table():
    """benchmarks/parity.py --quick prints its rows, with verdicts and an exit status that follow the figures."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "parity.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert "iris" in out.stdout and "diabetes" in out.stdout, out.stdout + out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith(("iris", "diabetes"))]
    assert len(rows) == 2 and all(len(r) >= 6 for r in rows)
    # the verdict follows the figures printed beside it
    for r in rows:
        assert (r[5] == "ok") == (float(r[3]) >= float(r[2]) - 0.01 - 1e-4)
    assert out.returncode == (0 if all(r[5] == "ok" for r in rows) else 1)


# --------------------------------------------------------------- class_weight


def test_balanced_class_weight_raises_minority_recall(imbalanced):
    """class_weight='balanced' raises the recall of a 10 % class on an overlapping set."""
    X, y = imbalanced
    kw = dict(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=100, random_state=0)
    plain = MLPClassifier(**kw).fit(X, y)
    balanced = MLPClassifier(class_weight="balanced", **kw).fit(X, y)
    r_plain = recall_score(y, plain.predict(X), pos_label=1)
    r_bal = recall_score(y, balanced.predict(X), pos_label=1)
    assert r_bal > r_plain + 0.1
    assert r_bal > 0.8


def test_dict_class_weight_equals_explicit_sample_weight_bit_for_bit(imbalanced):
    """A class_weight dict trains exactly as the same weights given as sample_weight."""
    X, y = imbalanced
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, batch_size=64, random_state=0)
    weights = {0: 1.0, 1: 7.5}
    a = MLPClassifier(class_weight=weights, **kw).fit(X, y)
    b = MLPClassifier(**kw).fit(X, y, sample_weight=np.where(y == 1, 7.5, 1.0))
    for p, q in zip(_params(a), _params(b), strict=True):
        np.testing.assert_array_equal(p, q)
    assert a.loss_curve_ == b.loss_curve_


def test_class_weight_multiplies_sample_weight(imbalanced):
    """class_weight and sample_weight combine by multiplication."""
    X, y = imbalanced
    sw = np.random.default_rng(1).uniform(0.5, 2.0, y.size)
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, batch_size=64, random_state=0)
    a = MLPClassifier(class_weight="balanced", **kw).fit(X, y, sample_weight=sw)
    b = MLPClassifier(**kw).fit(X, y, sample_weight=sw * compute_sample_weight("balanced", y))
    for p, q in zip(_params(a), _params(b), strict=True):
        np.testing.assert_array_equal(p, q)


def test_class_weight_with_string_labels_and_partial_fit(imbalanced):
    """A dict keyed by string labels works in partial_fit, as explicit weights do."""
    X, y = imbalanced
    labels = np.array(["common", "rare"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(8,), class_weight={"common": 1.0, "rare": 9.0}, random_state=0)
    ref = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    for _ in range(3):
        clf.partial_fit(X, labels, classes=["common", "rare"])
        ref.partial_fit(X, labels, classes=["common", "rare"], sample_weight=np.where(y == 1, 9.0, 1.0))
    np.testing.assert_array_equal(clf.net_.params, ref.net_.params)


def test_balanced_class_weight_for_multilabel_targets():
    """Multilabel targets take 'balanced' or one dict per label, as compute_sample_weight does."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    Y = (rng.random((200, 3)) < [0.5, 0.2, 0.1]).astype(int)
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    a = MLPClassifier(class_weight="balanced", **kw).fit(X, Y)
    b = MLPClassifier(**kw).fit(X, Y, sample_weight=compute_sample_weight("balanced", Y))
    np.testing.assert_array_equal(a.net_.params, b.net_.params)
    per_label = [{0: 1.0, 1: 2.0}, {0: 1.0, 1: 3.0}, {0: 1.0, 1: 5.0}]
    c = MLPClassifier(class_weight=per_label, **kw).fit(X, Y)
    d = MLPClassifier(**kw).fit(X, Y, sample_weight=np.prod([[2.0, 3.0, 5.0]] ** Y, axis=1))
    np.testing.assert_array_equal(c.net_.params, d.net_.params)
    with pytest.raises(ValueError, match="multilabel targets class_weight must be 'balanced' or a list of dicts"):
        MLPClassifier(class_weight={0: 1.0, 1: 2.0}, **kw).fit(X, Y)


@pytest.mark.parametrize(
    "class_weight, match",
    [
        ("auto", "class_weight must be None, 'balanced' or a dict"),
        (3.0, "class_weight must be None, 'balanced' or a dict"),
        ({0: 1.0, 7: 2.0}, r"class_weight=\{0: 1.0, 7: 2.0\} does not fit the classes \[0 1\]"),
        ({0: -1.0, 1: 1.0}, "finite non-negative weights"),
        ({0: 0.0, 1: 0.0}, "every sample has weight 0"),
    ],
)
def test_bad_class_weight_is_refused(imbalanced, class_weight, match):
    """An unusable class_weight is a ValueError naming it, and leaves the estimator unfitted."""
    X, y = imbalanced
    clf = MLPClassifier(class_weight=class_weight, max_iter=1)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "net_")


def test_balanced_class_weight_is_refused_by_partial_fit(imbalanced):
    """partial_fit refuses 'balanced': one batch does not show the class frequencies."""
    X, y = imbalanced
    with pytest.raises(ValueError, match="'balanced' is not supported by partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1])


# -------------------------------------------------------------------- dropout


def test_dropout_is_reproducible_with_random_state_and_changes_training(check_data):
    """Dropout masks come from random_state: equal fits are identical, and differ from dropout=0."""
    X, y = check_data
    kw = dict(hidden_layer_sizes=(32,), max_iter=5, batch_size=32, random_state=0)
    a = MLPRegressor(dropout=0.3, **kw).fit(X, y)
    b = MLPRegressor(dropout=0.3, **kw).fit(X, y)
    c = MLPRegressor(**kw).fit(X, y)
    np.testing.assert_array_equal(a.net_.params, b.net_.params)
    assert not np.array_equal(a.net_.params, c.net_.params)
    assert a.net_.dropout == 0.3 and c.net_.dropout == 0.0
    # prediction does not drop units
    np.testing.assert_array_equal(a.predict(X), a.predict(X))


def test_dropout_trains_a_classifier(imbalanced):
    """A classifier with dropout=0.5 still learns its training set."""
    X, y = imbalanced
    clf = MLPClassifier(
        hidden_layer_sizes=(64,), dropout=0.5, learning_rate_init=0.01, max_iter=60, random_state=0
    ).fit(X, y)
    assert clf.score(X, y) > 0.9


@pytest.mark.parametrize("dropout", [1.0, -0.1, 1.5, "half"])
def test_bad_dropout_is_refused(check_data, dropout):
    """A dropout outside [0, 1) is a ValueError, and nothing is fitted."""
    X, y = check_data
    reg = MLPRegressor(dropout=dropout, max_iter=1)
    with pytest.raises(ValueError, match="dropout must be"):
        reg.fit(X, y)
    assert not hasattr(reg, "net_")


# ------------------------------------------------------- validation loss curve


def test_validation_loss_curve_beside_validation_scores(check_data):
    """validation_loss_curve_ has one entry per epoch, and its minimum is the best R²'s epoch."""
    X, y = check_data
    reg = MLPRegressor(
        hidden_layer_sizes=(16,), early_stopping=True, alpha=0.0, learning_rate_init=0.01, max_iter=300, random_state=0
    ).fit(X, y)
    assert len(reg.validation_loss_curve_) == len(reg.validation_scores_) == reg.n_iter_ == len(reg.loss_curve_)
    assert all(np.isfinite(reg.validation_loss_curve_))
    # R² = 1 - SSE / SST on the same validation samples: the best score is the lowest squared error
    assert np.argmax(reg.validation_scores_) == np.argmin(reg.validation_loss_curve_)
    assert reg.validation_loss_curve_[-1] < reg.validation_loss_curve_[0]


def test_validation_loss_curve_of_a_classifier_and_warm_start(imbalanced):
    """A classifier's validation loss falls; warm_start extends the curves; without early_stopping it is None."""
    X, y = imbalanced
    clf = MLPClassifier(
        hidden_layer_sizes=(8,), early_stopping=True, max_iter=8, n_iter_no_change=50, warm_start=True, random_state=0
    )
    clf.fit(X, y)
    assert len(clf.validation_loss_curve_) == clf.n_iter_ == 8
    assert clf.validation_loss_curve_[-1] < clf.validation_loss_curve_[0]
    clf.fit(X, y)  # warm start continues the curves
    assert len(clf.validation_loss_curve_) == len(clf.validation_scores_) == len(clf.loss_curve_) == 16
    plain = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)
    assert plain.validation_loss_curve_ is None and plain.validation_scores_ is None


def test_validation_loss_is_the_loss_of_the_held_out_samples():
    """Identical samples make the held-out loss computable: it is scikit-learn's half squared error."""
    X = np.tile([[0.5, -1.0, 2.0]], (50, 1))
    y = np.tile([1.0, -2.0], (50, 1))
    reg = MLPRegressor(
        hidden_layer_sizes=(4,), early_stopping=True, max_iter=3, alpha=0.0, shuffle=False, random_state=0
    ).fit(X, y)
    P = reg.predict(X)  # with the weights of the best validation score, which are kept
    half_mse = 0.5 * np.mean((P - y) ** 2)  # scikit-learn's squared loss, averaged over the two outputs
    best = int(np.argmax(reg.validation_scores_))
    assert reg.validation_loss_curve_[best] == pytest.approx(half_mse, rel=1e-12)


def test_per_layer_activations_use_their_own_glorot_factor(check_data):
    """With activations=[...], each layer's Glorot bound follows its own activation."""
    X, y = check_data
    reg = MLPRegressor(
        hidden_layer_sizes=(6, 5),
        activations=["logistic", "relu"],
        learning_rate_init=1e-300,
        max_iter=1,
        random_state=0,
    ).fit(X, y)
    bounds = [np.sqrt(2 / 16), np.sqrt(6 / 11), np.sqrt(6 / 6)]  # logistic layer 2; relu and output layers 6
    for W, b, r in zip(reg.coefs_, reg.intercepts_, bounds, strict=True):
        assert max(np.abs(W).max(), np.abs(b).max()) <= r
        assert np.abs(W).max() > 0.8 * r  # drawn over the whole interval (dozens of draws)
