"""``python -m numbanet``: train a network on real handwritten digits.

The demo loads scikit-learn's 8x8 digits (1797 images, 10 classes, pixel
values scaled to [0, 1]), holds out a seeded, per-class 20 % test split, trains
a ReLU/softmax network with cross-entropy, and prints the held-out accuracy
and the training time.  The first run of a fresh install also compiles the
kernels; the demo says so and reports that time apart from the training
time::

    python -m numbanet
    python -m numbanet --hidden 128 64 --optimizer sgd --lr 0.1 --epochs 50
    python -m numbanet --dtype float32 --no-progress

scikit-learn is needed only for the data (``pip install -e ".[demo]"`` in a clone);
the split is done with NumPy.  The test set plays no part in training: it is
scored once, at the end.

Exit status: 0 on success, 1 when scikit-learn is missing or training
diverges, 2 for invalid options (argparse's convention, also used when
numbanet refuses a value with a ``ValueError``).
"""

import argparse
import sys
import time

import numpy as np

from numbanet.kernels.activations import BUILTINS as _ACTIVATIONS

#: Hidden-layer activations the demo offers (softmax is the output layer's).
HIDDEN_ACTIVATIONS = sorted(a for a, b in _ACTIVATIONS.items() if not b.output_only)

#: Default learning rate of each optimizer.
DEFAULT_LR = {"adam": 3e-3, "sgd": 0.1}

MISSING_SKLEARN = (
    "numbanet's demo needs scikit-learn for the digits data: pip install scikit-learn "
    '(or, in a clone of numbanet, pip install -e ".[demo]")'
)


def _int_at_least(low, what):
    """Return an argparse type: an integer >= ``low``, refused with a message naming ``what`` it must be."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "positive")
_non_negative_int = _int_at_least(0, "non-negative")


def build_parser():
    """Return the demo's command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m numbanet",
        description="Train a numbanet network on scikit-learn's 8x8 handwritten digits and report "
        "the held-out test accuracy and the training time.",
    )
    parser.add_argument("--epochs", type=_positive_int, default=30, help="training epochs (default: %(default)s)")
    parser.add_argument(
        "--hidden",
        type=_positive_int,
        nargs="*",
        default=[64],
        metavar="N",
        help="hidden layer widths, e.g. --hidden 64 32; none for softmax regression (default: 64)",
    )
    parser.add_argument(
        "--activation",
        choices=HIDDEN_ACTIVATIONS,
        default="relu",
        help="activation of the hidden layers (default: %(default)s)",
    )
    parser.add_argument(
        "--optimizer",
        choices=("sgd", "adam"),
        default="adam",
        help="adam, or sgd with --momentum (default: %(default)s)",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"learning rate (default: {DEFAULT_LR['adam']:g} for adam, {DEFAULT_LR['sgd']:g} for sgd)",
    )
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: %(default)s)")
    parser.add_argument("--batch-size", type=_positive_int, default=32, help="mini-batch size (default: %(default)s)")
    parser.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        help="seeds the split, the initialisation and the shuffling (default: %(default)s)",
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="(default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def load_digits():
    """scikit-learn's digits: ``X`` of shape (1797, 64) in [0, 1] and integer labels ``y``.

    Raises ImportError when scikit-learn is not installed.
    """
    from sklearn.datasets import load_digits as _load

    X, y = _load(return_X_y=True)
    return X / 16.0, y


def split(y, test_fraction=0.2, seed=0):
    """Seeded per-class split: ``test_fraction`` of every class goes to the test set.

    Parameters
    ----------
    y : array of shape (n_samples,)
        Class labels.
    test_fraction : float in (0, 1)
    seed : int

    Returns
    -------
    train, test : int arrays of sorted row indices
        Disjoint, together every row.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        k = int(round(test_fraction * rows.size))
        test.append(rows[:k])
        train.append(rows[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def run(args, out=None):
    """Train and evaluate as ``args`` (parsed by :func:`build_parser`) say; returns the test accuracy.

    Reports go to ``out`` (``sys.stdout`` by default), the progress bar to ``sys.stderr``.
    """
    import numbanet

    out = sys.stdout if out is None else out
    X, y = load_digits()
    train, test = split(y, 0.2, args.seed)
    Y = np.eye(10)[y]
    sizes = [X.shape[1], *args.hidden, 10]
    net = numbanet.Network(
        sizes,
        activations=[args.activation] * len(args.hidden) + ["softmax"],
        loss="cross_entropy",
        dtype=np.dtype(args.dtype),
        seed=args.seed,
    )
    lr = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
    if args.optimizer == "adam":
        optimizer = numbanet.Adam(lr=lr)
    else:
        optimizer = numbanet.SGD(lr=lr, momentum=args.momentum)
    print(
        f"numbanet {numbanet.__version__}: scikit-learn digits, {X.shape[0]} images of 8x8 pixels, "
        f"{train.size} for training, {test.size} held out",
        file=out,
    )
    print(
        f"network {sizes} ({args.activation} hidden, softmax output, cross-entropy), {args.dtype}, "
        f"{optimizer!r}, batch size {args.batch_size}, {args.epochs} epochs, seed {args.seed}",
        file=out,
    )
    out.flush()
    # The test set stays out of training entirely: it is only scored at the end.
    start = time.perf_counter()
    history = net.fit(
        X[train],
        Y[train],
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=optimizer,
        progress=not args.no_progress,
    )
    # The first run of an installation compiles the kernels: that is not training time.
    seconds = time.perf_counter() - start - history.compile_seconds
    predicted = net.predict(X[test]).argmax(axis=1)
    correct = int(np.sum(predicted == y[test]))
    accuracy = correct / test.size
    print(f"training loss {history.loss[-1]:.4f}, test loss {net.loss(X[test], Y[test]):.4f}", file=out)
    print(f"test accuracy {100 * accuracy:.1f}% ({correct}/{test.size})", file=out)
    print(
        f"training time {seconds:.2f} s ({1000 * seconds / args.epochs:.1f} ms per epoch)",
        file=out,
    )
    if history.compile_seconds >= 0.5:
        print(
            f"compiling the kernels took {history.compile_seconds:.1f} s more (first run only: Numba caches them)",
            file=out,
        )
    return accuracy


def main(argv=None):
    """Run the demo with command-line arguments ``argv`` (``sys.argv[1:]`` by default).

    Returns
    -------
    int
        The exit status: 0 on success, 1 when scikit-learn is missing or
        training diverged, 2 when numbanet refused an option's value.
        Invalid options make argparse exit with status 2 (SystemExit).
    """
    from numbanet.exceptions import TrainingDivergedError

    args = build_parser().parse_args(argv)
    try:
        run(args)
    except ImportError as exc:
        if (getattr(exc, "name", None) or "").split(".")[0] != "sklearn":
            raise
        print(MISSING_SKLEARN, file=sys.stderr)
        return 1
    except TrainingDivergedError as exc:
        print(f"python -m numbanet: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"python -m numbanet: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
