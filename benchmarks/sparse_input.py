"""Sparse input: numbanet's MLPClassifier against scikit-learn's on TF-IDF-like data, in the same run.

Data: a seeded bag of words, ``n`` documents over a vocabulary of ``d``
words, about ``nnz`` distinct words per document (``d = 30 000``, ``nnz =
90``: 0.3 % non-zeros), four classes each with its own 2 000 topic words
(a tenth of a document's words, the rest drawn from the whole vocabulary),
weighted by ``TfidfTransformer`` into a CSR matrix; a seeded 75/25 split.

Both estimators get scikit-learn's defaults (one hidden layer of 100 ReLU
units, Adam at 1e-3, ``alpha=1e-4``, batches of 200) and ``max_iter`` epochs
with ``n_iter_no_change=max_iter`` (every fit runs its epochs), the CSR
matrix as it is.  Reported, per seed: fit time (round-robin rounds, after a
warm-up fit, median), held-out accuracy, and the peak of memory allocated
during one fit (``tracemalloc``, which sees NumPy's and SciPy's
allocations), against the size of a dense float64 copy of X.  A ratio is
``scikit-learn / numbanet``: above 1, numbanet is faster.

Usage::

    python benchmarks/sparse_input.py            # n = 4000, 10 epochs, seeds 0-2, 3 rounds
    python benchmarks/sparse_input.py --quick    # small: a smoke run
"""

import argparse
import os
import statistics
import sys
import time
import tracemalloc
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
if os.path.isdir(os.path.join(ROOT, "numbanet")):
    sys.path.insert(0, ROOT)  # this checkout's numbanet

import numpy as np  # noqa: E402
from timing import interleaved  # noqa: E402

# This file's folder off the path again: Numba's extension entry points import a package named
# "sparse" (pydata's), which this file's name would shadow.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

import numbanet  # noqa: E402

#: Goal of the issue: numbanet's fit at least this many times faster than scikit-learn's.
SPEED_GOAL = 2.0
#: Largest accuracy shortfall against scikit-learn counted as "learns as scikit-learn does".
ACCURACY_TOLERANCE = 0.01


def tfidf_like(n, d, nnz, n_classes=4, topic_words=None, seed=0):
    """Return ``(X, y)``: a TF-IDF weighted CSR matrix of ``n`` bag-of-words rows and their classes."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfTransformer

    rng = np.random.default_rng(seed)
    topic_words = topic_words or min(2000, d // n_classes)
    y = rng.integers(0, n_classes, n)
    topics = rng.permutation(d)[: n_classes * topic_words].reshape(n_classes, topic_words)
    n_topic = max(1, nnz // 10)
    cols = np.concatenate([rng.choice(topics[y[i]], n_topic, replace=False) for i in range(n)]).reshape(n, n_topic)
    cols = np.hstack([cols, rng.integers(0, d, size=(n, nnz - n_topic))])
    counts = rng.integers(1, 4, size=cols.shape).astype(np.float64)
    rows = np.repeat(np.arange(n), nnz)
    X = sp.csr_matrix((counts.ravel(), (rows, cols.ravel())), shape=(n, d))  # duplicates summed
    X.sum_duplicates()
    return TfidfTransformer().fit_transform(X).tocsr(), y


def estimators(seed, max_iter):
    """Return ``{name: unfitted estimator}`` for numbanet and scikit-learn, same settings."""
    from sklearn.neural_network import MLPClassifier

    kw = dict(max_iter=max_iter, n_iter_no_change=max_iter, random_state=seed)
    return {"numbanet": numbanet.MLPClassifier(**kw), "sklearn": MLPClassifier(**kw)}


def quiet_fit(est, X, y):
    """Fit ``est`` without its ConvergenceWarning (every fit runs its ``max_iter`` epochs on purpose)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def peak_bytes(fit):
    """Peak of the memory allocated while ``fit()`` runs, by tracemalloc."""
    tracemalloc.start()
    try:
        fit()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(X, y, seeds, max_iter, rounds):
    """Return a row per seed: fit times, accuracies and peaks of both estimators."""
    from sklearn.model_selection import train_test_split

    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    rows = []
    for seed in seeds:
        units = {name: (lambda e=e: quiet_fit(e, Xtr, ytr)) for name, e in estimators(seed, max_iter).items()}
        times = interleaved(units, rounds)
        fitted = {name: quiet_fit(e, Xtr, ytr) for name, e in estimators(seed, max_iter).items()}
        peaks = {name: peak_bytes(lambda e=e: quiet_fit(e, Xtr, ytr)) for name, e in estimators(seed, max_iter).items()}
        rows.append(
            {
                "seed": seed,
                "time": {name: statistics.median(ts) for name, ts in times.items()},
                "accuracy": {name: float(est.score(Xte, yte)) for name, est in fitted.items()},
                "peak": peaks,
            }
        )
        print(f"seed {seed} measured: {rows[-1]}", flush=True)
    return rows


def report(X, rows):
    """Print the table and the verdicts; return the median time ratio and accuracy difference."""
    dense = X.shape[0] * X.shape[1] * 8
    print(
        f"X: {X.shape[0]} x {X.shape[1]}, {X.nnz} non-zeros ({100 * X.nnz / (X.shape[0] * X.shape[1]):.2f} %), "
        f"CSR {(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20:.1f} MiB, dense float64 copy "
        f"{dense / 2**20:.0f} MiB"
    )
    print(f"{'seed':>4} {'fit numbanet':>13} {'fit sklearn':>12} {'ratio':>6}  {'acc numbanet':>12} {'acc sklearn':>11}"
          f"  {'peak numbanet':>13} {'peak sklearn':>12}")  # fmt: skip
    for r in rows:
        t, a, p = r["time"], r["accuracy"], r["peak"]
        print(
            f"{r['seed']:>4} {t['numbanet']:>12.2f}s {t['sklearn']:>11.2f}s {t['sklearn'] / t['numbanet']:>6.2f}"
            f"  {a['numbanet']:>12.4f} {a['sklearn']:>11.4f}  {p['numbanet'] / 2**20:>9.1f} MiB"
            f" {p['sklearn'] / 2**20:>8.1f} MiB"
        )
    ratio = statistics.median(r["time"]["sklearn"] / r["time"]["numbanet"] for r in rows)
    gap = statistics.median(r["accuracy"]["numbanet"] - r["accuracy"]["sklearn"] for r in rows)
    peak = max(r["peak"]["numbanet"] for r in rows)
    print(f"fit time ratio (median over seeds): {ratio:.2f}x, goal >= {SPEED_GOAL:g}x: "
          f"{'meets' if ratio >= SPEED_GOAL else 'SHORT'}")  # fmt: skip
    print(f"accuracy numbanet - sklearn (median): {gap:+.4f}, "
          f"{'ok' if gap >= -ACCURACY_TOLERANCE else 'SHORT'} (tolerance {ACCURACY_TOLERANCE})")  # fmt: skip
    print(f"numbanet's peak: {peak / 2**20:.1f} MiB, {peak / dense:.3f} of a dense copy")
    return ratio, gap


def main(argv=None):
    """Run the benchmark (``--quick``: a smoke run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        n, d, nnz, seeds, max_iter, rounds = 400, 3000, 30, (0,), 2, 1
    else:
        n, d, nnz, seeds, max_iter, rounds = 4000, 30000, 90, (0, 1, 2), 10, 3
    start = time.perf_counter()
    X, y = tfidf_like(n, d, nnz)
    rows = measure(X, y, seeds, max_iter, rounds)
    report(X, rows)
    print(f"(whole run {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
