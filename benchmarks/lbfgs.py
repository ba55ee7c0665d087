"""solver="lbfgs": numbanet's estimators against scikit-learn's MLP, wall time and scores, in one run.

For each data set (scikit-learn's small ones: the first 200 three-class
``load_digits`` rows scaled to [0, 1], standardised ``load_iris``, the
``make_regression`` set of scikit-learn's MLP tests, standardised
``load_diabetes``) and each seed, both estimators are built with
``solver="lbfgs", hidden_layer_sizes=(50,), max_iter=100`` and fitted on the
whole set; the fits alternate (:func:`timing.interleaved`).  scikit-learn runs
twice: as installed (its BLAS with every thread) and under
``threadpool_limits(1)`` (numbanet holds BLAS at one thread while SciPy's
L-BFGS-B works, so this is the fairer peer on a busy machine).  Printed: the
median fit times, numbanet's speed-up over each, and the training scores
(accuracy or R²) with their largest difference over the seeds.

Usage::

    python benchmarks/lbfgs.py            # 4 data sets, 3 seeds, 3 rounds
    python benchmarks/lbfgs.py --quick    # 2 data sets, 1 seed, 1 round
"""

import argparse
import os
import statistics
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)  # this checkout's numbanet, not an installed one

from timing import fmt_time, interleaved  # noqa: E402


def datasets():
    """Name -> ``(X, y, kind)``, kind "C" (classification) or "R" (regression)."""
    from sklearn import datasets as ds
    from sklearn.preprocessing import MinMaxScaler, StandardScaler, scale

    X, y = ds.load_digits(n_class=3, return_X_y=True)
    Xi, yi = ds.load_iris(return_X_y=True)
    Xr, yr = ds.make_regression(n_samples=200, n_features=10, bias=20.0, noise=100.0, random_state=7)
    Xd, yd = ds.load_diabetes(return_X_y=True)
    return {
        "digits (200x64, 3 classes)": (MinMaxScaler().fit_transform(X[:200]), y[:200], "C"),
        "iris (150x4, 3 classes)": (StandardScaler().fit_transform(Xi), yi, "C"),
        "make_regression (200x10)": (Xr, scale(yr), "R"),
        "diabetes (442x10)": (StandardScaler().fit_transform(Xd), scale(yd), "R"),
    }


def fits(X, y, kind, seed):
    """Return the three timed fits of one data set and seed, and the dict their estimators go into."""
    from sklearn import neural_network as sk
    from threadpoolctl import threadpool_limits

    import numbanet

    params = dict(solver="lbfgs", hidden_layer_sizes=(50,), max_iter=100, random_state=seed)
    cls = {"C": (numbanet.MLPClassifier, sk.MLPClassifier), "R": (numbanet.MLPRegressor, sk.MLPRegressor)}[kind]
    models = {}

    def ours():
        models["numbanet"] = cls[0](**params).fit(X, y)

    def theirs():
        models["sklearn"] = cls[1](**params).fit(X, y)

    def theirs_one_thread():
        with threadpool_limits(1, user_api="blas"):
            models["sklearn 1 thread"] = cls[1](**params).fit(X, y)

    return {"numbanet": ours, "sklearn": theirs, "sklearn 1 thread": theirs_one_thread}, models


def main(argv=None):
    """Print the table; ``--quick`` for a short run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 data sets, 1 seed, 1 round")
    args = parser.parse_args(argv)
    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    sets = datasets()
    if args.quick:
        sets = dict(list(sets.items())[:2])
    seeds, rounds = ((0,), 1) if args.quick else ((0, 1, 2), 3)
    print(
        f"{'data set':28s} {'numbanet':>11s} {'sklearn':>11s} {'sk 1 thr':>11s} {'speed-up':>8s} {'vs 1 thr':>8s}"
        f"  {'score nb / sk':>15s} {'max |diff|':>10s}"
    )
    ratios = []
    for name, (X, y, kind) in sets.items():
        times = {"numbanet": [], "sklearn": [], "sklearn 1 thread": []}
        diffs, scores = [], []
        for seed in seeds:
            units, models = fits(X, y, kind, seed)
            for unit, ts in interleaved(units, rounds).items():
                times[unit] += ts
            nb, sk = models["numbanet"].score(X, y), models["sklearn"].score(X, y)
            diffs.append(abs(nb - sk))
            scores.append((nb, sk))
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio, ratio1 = med["sklearn"] / med["numbanet"], med["sklearn 1 thread"] / med["numbanet"]
        ratios.append(ratio1)
        nb_mean = statistics.mean(s[0] for s in scores)
        sk_mean = statistics.mean(s[1] for s in scores)
        print(
            f"{name:28s} {fmt_time(med['numbanet'])} {fmt_time(med['sklearn'])} {fmt_time(med['sklearn 1 thread'])} "
            f"{ratio:7.1f}x {ratio1:7.1f}x  {nb_mean:7.4f}/{sk_mean:7.4f} {max(diffs):10.4f}"
        )
    print(f"smallest speed-up against scikit-learn at one BLAS thread: {min(ratios):.1f}x (goal >= 2x)")


if __name__ == "__main__":
    main()
