"""The estimators' scikit-learn options: solver="lbfgs", learning_rate / power_t, defaults and messages.

Each is checked against scikit-learn's own MLP on the same data and seeds.
"""

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn import neural_network as sk  # noqa: E402
from sklearn.datasets import load_digits, load_iris, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, StandardScaler, scale  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from numbanet import MLPClassifier, MLPRegressor  # noqa: E402


def _digits():
    X, y = load_digits(n_class=3, return_X_y=True)
    return MinMaxScaler().fit_transform(X[:200]), y[:200]


def _iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _regression():
    X, y = make_regression(n_samples=200, n_features=10, bias=20.0, noise=100.0, random_state=7)
    return X, scale(y)


DATA = {"digits": (_digits, "C"), "iris": (_iris, "C"), "regression": (_regression, "R")}


def _pair(kind, **kw):
    if kind == "C":
        return sk.MLPClassifier(**kw), MLPClassifier(**kw)
    return sk.MLPRegressor(**kw), MLPRegressor(**kw)


def _fit_both(kind, X, y, **kw):
    theirs, ours = _pair(kind, **kw)
    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.fit(X, y)
        ours.fit(X, y)
    return theirs, ours


# ------------------------------------------------------------------ lbfgs


@pytest.mark.parametrize("name", list(DATA))
def test_lbfgs_learns_as_sklearn_does(name):
    make, kind = DATA[name]
    X, y = make()
    theirs, ours = _fit_both(kind, X, y, solver="lbfgs", hidden_layer_sizes=(20,), max_iter=50, random_state=0)
    assert abs(ours.score(X, y) - theirs.score(X, y)) <= 0.01
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DATA))
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_lbfgs_scores_match_sklearn_across_seeds(name, activation):
    make, kind = DATA[name]
    X, y = make()
    for seed in range(3):
        theirs, ours = _fit_both(
            kind, X, y, solver="lbfgs", hidden_layer_sizes=(50,), activation=activation, max_iter=100, random_state=seed
        )
        assert abs(ours.score(X, y) - theirs.score(X, y)) <= 0.01, (seed, ours.score(X, y), theirs.score(X, y))


def test_lbfgs_penalty_is_alpha_over_the_sample_count():
    X, y = _regression()
    reg = MLPRegressor(solver="lbfgs", hidden_layer_sizes=(5,), alpha=0.3, max_iter=5, random_state=0)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge after 5 iteration"):
        reg.fit(X, y)
    assert reg.net_.l2 == pytest.approx(0.3 / 200)
    w = np.full(200, 2.0)
    with pytest.warns(ConvergenceWarning):
        reg.fit(X, y, sample_weight=w)
    assert reg.net_.l2 == pytest.approx(0.3 / 400)


def test_lbfgs_max_fun_and_no_partial_fit():
    X, y = _digits()
    clf = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(10,), max_fun=5, random_state=0)
    with pytest.warns(ConvergenceWarning, match="EVALUATIONS EXCEEDS LIMIT"):
        clf.fit(X, y)
    assert clf.n_iter_ <= 5
    assert not hasattr(clf, "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'"):
        clf.partial_fit(X, y)
    assert hasattr(MLPClassifier(solver="sgd"), "partial_fit")


def test_lbfgs_early_stopping_keeps_the_best_validation_score():
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, (120, 1))
    y = np.sin(2 * X[:, 0]) + 0.4 * rng.standard_normal(120)
    reg = MLPRegressor(
        solver="lbfgs", hidden_layer_sizes=(60,), early_stopping=True, n_iter_no_change=5, max_iter=2000, random_state=0
    )
    reg.fit(X, y)
    assert len(reg.validation_scores_) == reg.n_iter_ < 2000
    assert reg.best_validation_score_ == max(reg.validation_scores_)
    # The weights kept are those of the best score: re-score the held-out rows the same way.
    from sklearn.model_selection import train_test_split

    rs = np.random.RandomState(0)
    sizes = [1, 60, 1]
    for a, b in zip(sizes[:-1], sizes[1:]):  # the initial draws that precede the split
        rs.uniform(size=(a, b))
        rs.uniform(size=b)
    rs.randint(np.iinfo(np.int32).max)
    _, va = train_test_split(np.arange(120), test_size=0.1, random_state=rs)
    assert reg.score(X[va], y[va]) == pytest.approx(reg.best_validation_score_, rel=1e-9)


# ---------------------------------------------------------- learning_rate


def _sgd(kind, **kw):
    base = dict(solver="sgd", hidden_layer_sizes=(8,), random_state=0, momentum=0.0, learning_rate_init=0.05)
    base.update(kw)
    return _pair(kind, **base)


def test_invscaling_uses_sklearns_rate_of_every_epoch():
    X, y = _iris()
    theirs, ours = _sgd("C", learning_rate="invscaling", power_t=0.4, max_iter=6, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    n = X.shape[0]
    expected = [0.05] + [0.05 / (k * n + 1) ** 0.4 for k in range(1, 6)]
    np.testing.assert_allclose(ours.net_.history.lr, expected, rtol=1e-12)
    # scikit-learn's optimizer holds the rate of the next epoch, after t_ samples.
    assert theirs._optimizer.learning_rate == pytest.approx(0.05 / (ours.t_ + 1) ** 0.4, rel=1e-12)
    assert ours.t_ == theirs.t_ == 6 * n


def test_invscaling_continues_across_partial_fit():
    X, y = _iris()
    reg = MLPClassifier(solver="sgd", learning_rate="invscaling", learning_rate_init=0.05, random_state=0)
    reg.partial_fit(X, y, classes=[0, 1, 2])
    reg.partial_fit(X, y)
    assert reg.net_.history.lr == [pytest.approx(0.05 / (150 + 1) ** 0.5, rel=1e-12)]


def test_adaptive_divides_by_five_and_stops_as_sklearn_does():
    X, y = _iris()
    # tol too large to be met: every epoch counts as no improvement.
    theirs, ours = _sgd("C", learning_rate="adaptive", tol=10.0, n_iter_no_change=2, max_iter=200)
    ours.fit(X, y)
    theirs.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours._optimizer.lr == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    lrs = ours.net_.history.lr
    # The first epoch sets the best loss; three more without improvement (> n_iter_no_change) divide the rate.
    assert lrs[:4] == [0.05] * 4 and lrs[4] == pytest.approx(0.01) and min(lrs) == pytest.approx(lrs[-1])


def test_learning_rate_is_refused_when_unknown():
    with pytest.raises(ValueError, match="learning_rate must be 'constant', 'invscaling' or 'adaptive'; got 'cyclic'"):
        MLPClassifier(learning_rate="cyclic").fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(ValueError, match="power_t must be"):
        MLPClassifier(power_t=-1.0).fit([[0.0], [1.0]], [0, 1])


# ------------------------------------------------- parameters and messages


@pytest.mark.parametrize("ours, theirs", [(MLPClassifier, sk.MLPClassifier), (MLPRegressor, sk.MLPRegressor)])
def test_sklearns_parameters_have_its_defaults_and_order(ours, theirs):
    import inspect

    mine = ours().get_params()
    for key, value in theirs().get_params().items():
        assert key in mine and mine[key] == value, key
    order = [p for p in inspect.signature(ours).parameters]
    theirs_order = [p for p in inspect.signature(theirs).parameters]
    assert order[: len(theirs_order)] == theirs_order
    ours(**theirs().get_params())  # every scikit-learn parameter is accepted


def test_regressor_loss_is_its_first_parameter():
    assert MLPRegressor().get_params()["loss"] == "squared_error"
    assert MLPRegressor("squared_error", (5,)).hidden_layer_sizes == (5,)


def test_n_iter_no_change_inf_runs_max_iter_and_warns_on_warm_start():
    X, y = _iris()
    clf = MLPClassifier(solver="sgd", warm_start=True, n_iter_no_change=np.inf, max_iter=5, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.n_iter_ == 5 and len(clf.loss_curve_) == 10


def test_coefs_and_intercepts_can_be_assigned():
    X, y = _iris()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    coefs = [np.zeros_like(c) for c in clf.coefs_]
    clf.coefs_ = coefs
    clf.intercepts_ = [np.arange(i.size, dtype=float) for i in clf.intercepts_]
    assert all(np.all(c == 0) for c in clf.coefs_)
    np.testing.assert_allclose(clf.predict_proba(X[:1])[0], np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum())
    before = [c.copy() for c in clf.coefs_]
    with pytest.raises(ValueError, match=r"coefs_\[1\] must have shape \(4, 3\); got \(4, 2\)"):
        clf.coefs_ = [np.ones((4, 4)), np.ones((4, 2))]
    assert all(np.array_equal(a, b) for a, b in zip(before, clf.coefs_))


def test_divergence_is_sklearns_value_error():
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    y = rng.standard_normal(10)
    with warnings.catch_warnings(), pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        warnings.simplefilter("ignore", RuntimeWarning)
        MLPRegressor().fit(X, y)


def test_one_class_fits_and_predicts_it():
    X = np.random.RandomState(0).standard_normal((10, 2))
    clf = MLPClassifier(max_iter=5, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, np.full(10, "only"))
    assert list(clf.predict(X)) == ["only"] * 10 and clf.classes_.tolist() == ["only"]


def test_stratification_message_names_the_users_labels():
    with pytest.raises(
        ValueError, match=r"Classes with too few members are: \['True'\].*fewer than 2 samples: \['b'\]"
    ):
        MLPClassifier(early_stopping=True).fit([[1, 2], [2, 3], [3, 4], [4, 5]], ["a", "a", "a", "b"])


# ------------------------------------------------------ one-row prediction


def test_small_dense_predictions_keep_every_check():
    X, y = _iris()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    row = X[:1]
    assert clf.predict(row).tolist() == clf.predict(row.tolist()).tolist()  # the fast path and validate_data's
    row32 = row.astype(np.float32)
    np.testing.assert_array_equal(clf.predict_proba(row32), clf.predict_proba(row32.tolist()))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.predict(np.array([[np.nan, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="Input X contains infinity"):
        clf.predict_proba(np.array([[np.inf, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4 features"):
        clf.predict(row[:, :3])
    with pytest.raises(ValueError, match="0 sample"):
        clf.predict(row[:0])


def test_small_dense_predictions_warn_about_missing_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = _iris()
    frame = pd.DataFrame(X, columns=list("abcd"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(frame, y)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        clf.predict(X[:1])
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame[list("dcba")].iloc[:1])
