"""Learning parity: numbanet's estimators against scikit-learn's MLP at equal settings.

For every data set and iteration budget, both ``numbanet.MLPClassifier`` /
``MLPRegressor`` and ``sklearn.neural_network.MLPClassifier`` /
``MLPRegressor`` are built with scikit-learn's defaults (``hidden_layer_sizes=
(100,)``, ReLU, Adam at 1e-3, ``alpha=1e-4``, ``batch_size="auto"``, shuffling,
``tol=1e-4``, ``n_iter_no_change=10``) and ``max_iter`` set to the budget,
trained on the same training split with ``random_state`` = 0, 1, 2, 3, 4, and
scored (accuracy or R²) on the same held-out quarter of the data.  The table
gives the median over the seeds of each, their difference (numbanet minus
scikit-learn) and the verdict: ``ok`` when numbanet is no worse than
scikit-learn by more than 0.01.

Data: ``load_digits``, ``load_iris``, ``load_wine``, ``load_breast_cancer``,
``load_diabetes``, ``make_regression(n_samples=500, n_features=20,
noise=10)`` and ``make_classification(n_samples=500, n_features=20)``, each
split 75/25 (stratified for classes) with ``random_state=0``; the features
are standardised with the training split's mean and deviation, and so are
regression targets (R² does not change when targets and predictions are
shifted and scaled alike, so the scores are those of the original units).

Usage::

    python benchmarks/parity.py            # the full table (a few minutes)
    python benchmarks/parity.py --quick    # two data sets, 20 iterations, 2 seeds
    python benchmarks/parity.py --json out.json

The exit status is 0 when every row is ``ok``, else 1.
"""

import argparse
import json
import sys
import warnings

import numpy as np

ITERATIONS = (20, 50, 200)
SEEDS = (0, 1, 2, 3, 4)
TOLERANCE = 0.01


def datasets():
    """Name -> loader returning ``(X, y, task)`` with task "classification" or "regression"."""
    from sklearn import datasets as ds

    return {
        "digits": lambda: (*ds.load_digits(return_X_y=True), "classification"),
        "iris": lambda: (*ds.load_iris(return_X_y=True), "classification"),
        "wine": lambda: (*ds.load_wine(return_X_y=True), "classification"),
        "breast_cancer": lambda: (*ds.load_breast_cancer(return_X_y=True), "classification"),
        "diabetes": lambda: (*ds.load_diabetes(return_X_y=True), "regression"),
        "make_regression": lambda: (
            *ds.make_regression(n_samples=500, n_features=20, noise=10.0, random_state=0),
            "regression",
        ),
        "make_classification": lambda: (
            *ds.make_classification(n_samples=500, n_features=20, random_state=0),
            "classification",
        ),
    }


def split(name):
    """Return the fixed, standardised 75/25 split of data set ``name``: ``(Xtr, Xte, ytr, yte, task)``."""
    from sklearn.model_selection import train_test_split

    X, y, task = datasets()[name]()
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y if task == "classification" else None
    )
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
    sd[sd == 0] = 1.0
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    if task == "regression":
        ym, ys = ytr.mean(), ytr.std()
        ytr, yte = (ytr - ym) / ys, (yte - ym) / ys
    return Xtr, Xte, ytr, yte, task


def score(library, task, max_iter, seed, data):
    """Held-out score of one estimator of ``library`` ("sklearn" or "numbanet") trained for ``max_iter``."""
    Xtr, Xte, ytr, yte = data
    if library == "sklearn":
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    else:
        from numbanet import MLPClassifier, MLPRegressor
    cls = MLPClassifier if task == "classification" else MLPRegressor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at small budgets, on both sides
        est = cls(max_iter=max_iter, random_state=seed).fit(Xtr, ytr)
    return float(est.score(Xte, yte))


def table(names, iterations, seeds):
    """Rows ``{dataset, iterations, sklearn, numbanet, difference, ok, scores}`` (medians over ``seeds``)."""
    rows = []
    for name in names:
        Xtr, Xte, ytr, yte, task = split(name)
        for it in iterations:
            scores = {
                lib: [score(lib, task, it, s, (Xtr, Xte, ytr, yte)) for s in seeds] for lib in ("sklearn", "numbanet")
            }
            sk, nb = float(np.median(scores["sklearn"])), float(np.median(scores["numbanet"]))
            rows.append(
                {
                    "dataset": name,
                    "iterations": it,
                    "sklearn": sk,
                    "numbanet": nb,
                    "difference": nb - sk,
                    "ok": nb >= sk - TOLERANCE,
                    "scores": scores,
                }
            )
            print(_line(rows[-1]), flush=True)
    return rows


def _line(row):
    verdict = "ok" if row["ok"] else f"WORSE by more than {TOLERANCE}"
    return (
        f"{row['dataset']:<20} {row['iterations']:>5} {row['sklearn']:>9.4f} {row['numbanet']:>9.4f} "
        f"{row['difference']:>+9.4f}  {verdict}"
    )


def main(argv=None):
    """Print the table for the data sets and budgets asked for; return 0 when every row is ``ok``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="iris and diabetes, 20 iterations, 2 seeds")
    parser.add_argument("--only", nargs="+", choices=sorted(datasets()), help="these data sets only")
    parser.add_argument("--json", help="also write the rows (with every seed's score) to this file")
    args = parser.parse_args(argv)
    names = args.only or (["iris", "diabetes"] if args.quick else list(datasets()))
    iterations = (20,) if args.quick else ITERATIONS
    seeds = SEEDS[:2] if args.quick else SEEDS
    import sklearn

    import numbanet

    print(
        f"numbanet {numbanet.__version__} against scikit-learn {sklearn.__version__}: held-out score "
        f"(accuracy or R²), median over random_state {list(seeds)}"
    )
    print(f"{'data set':<20} {'iter':>5} {'sklearn':>9} {'numbanet':>9} {'diff':>9}  verdict")
    rows = table(names, iterations, seeds)
    bad = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(bad)} of {len(rows)} rows within {TOLERANCE} of scikit-learn or better")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "numbanet": numbanet.__version__,
                    "sklearn": sklearn.__version__,
                    "seeds": list(seeds),
                    "tolerance": TOLERANCE,
                    "rows": rows,
                },
                f,
                indent=1,
            )
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
