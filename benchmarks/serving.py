"""One-row prediction through the estimators: numbanet against scikit-learn's MLP, in one run.

Both classifiers are fitted on ``load_digits`` (64 features, 10 classes,
``hidden_layer_sizes=(100,)``, 20 Adam epochs), and so are both regressors
on its first 5 classes' pixel means; then ``predict`` and ``predict_proba``
of one row (a float64 ndarray) are timed, best of 7 repeats of 500 calls,
with ``net_.predict`` (numbanet's network without the estimator's checks) for
reference.  The goal is at most 100 µs per call through the estimator.

Usage::

    python benchmarks/serving.py
"""

import os
import sys
import timeit
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # this checkout's numbanet, not an installed one

GOAL_US = 100.0


def per_call(fn, number=500, repeat=7):
    """Return the best time of one call of ``fn``, in µs."""
    fn()
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main():
    """Fit the four estimators and print the one-row timings."""
    from sklearn import neural_network as sk
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning

    import numbanet

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    target = X[:, :5].mean(axis=1)
    row = X[:1].copy()
    params = dict(hidden_layer_sizes=(100,), max_iter=20, random_state=0)
    ours_c, theirs_c = numbanet.MLPClassifier(**params).fit(X, y), sk.MLPClassifier(**params).fit(X, y)
    ours_r, theirs_r = numbanet.MLPRegressor(**params).fit(X, target), sk.MLPRegressor(**params).fit(X, target)
    rows = [
        ("classifier predict", ours_c.predict, theirs_c.predict),
        ("classifier predict_proba", ours_c.predict_proba, theirs_c.predict_proba),
        ("regressor predict", ours_r.predict, theirs_r.predict),
    ]
    print(f"{'one row (64 features)':28s} {'numbanet':>10s} {'sklearn':>10s} {'speed-up':>9s}  goal <= {GOAL_US:g} us")
    for name, ours, theirs in rows:
        a, b = per_call(lambda: ours(row)), per_call(lambda: theirs(row))
        verdict = "meets" if a <= GOAL_US else "SHORT"
        print(f"{name:28s} {a:8.1f}us {b:8.1f}us {b / a:8.1f}x  {verdict}")
    print(f"{'network alone (net_.predict)':28s} {per_call(lambda: ours_c.net_.predict(row)):8.1f}us")


if __name__ == "__main__":
    main()
