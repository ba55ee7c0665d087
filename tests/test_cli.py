"""The ``python -m numbanet`` demo: options, output, exit statuses."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn.datasets")

from numbanet.__main__ import MISSING_SKLEARN, build_parser, main, split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _accuracy(text):
    match = re.search(r"test accuracy (\d+\.\d)% \((\d+)/(\d+)\)", text)
    assert match, text
    return float(match.group(1)), int(match.group(2)), int(match.group(3))


def test_split_is_per_class_disjoint_and_seeded():
    y = np.repeat(np.arange(4), [10, 20, 5, 15])
    train, test = split(y, 0.2, seed=3)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(y.size))
    assert [int(np.sum(y[test] == c)) for c in range(4)] == [2, 4, 1, 3]
    again = split(y, 0.2, seed=3)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)
    assert not np.array_equal(split(y, 0.2, seed=4)[1], test)


def test_defaults():
    args = build_parser().parse_args([])
    assert (args.epochs, args.hidden, args.activation, args.optimizer) == (30, [64], "relu", "adam")
    assert (args.batch_size, args.seed, args.dtype, args.no_progress) == (32, 0, "float64", False)
    assert build_parser().parse_args(["--hidden", "64", "32"]).hidden == [64, 32]
    assert build_parser().parse_args(["--hidden"]).hidden == []


def test_main_in_process_learns(capsys):
    assert main(["--epochs", "5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    percent, correct, total = _accuracy(out)
    assert total == 359  # 20 % of each of the 10 classes of 1797 images
    assert correct / total > 0.85
    assert re.search(r"training time \d+\.\d\d s", out)
    assert "network [64, 64, 10]" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--hidden", "16", "8", "--activation", "tanh", "--optimizer", "sgd", "--lr", "0.2", "--dtype", "float32"],
        ["--hidden", "--batch-size", "64"],
    ],
)
def test_main_options(capsys, argv):
    assert main(["--epochs", "3", "--no-progress", "--seed", "1", *argv]) == 0
    out = capsys.readouterr().out
    assert _accuracy(out)[0] > 50.0


def test_progress_does_not_change_the_result(capsys):
    argv = ["--epochs", "3", "--hidden", "16", "--seed", "2"]
    assert main([*argv, "--no-progress"]) == 0
    quiet = capsys.readouterr()
    assert main(argv) == 0
    shown = capsys.readouterr()
    assert _accuracy(quiet.out) == _accuracy(shown.out)
    assert quiet.err == ""
    assert "3/3" in shown.err  # the bar (tqdm or the plain fallback) reached the last epoch


@pytest.mark.parametrize(
    "argv",
    [
        ["--epochs", "0"],
        ["--epochs", "many"],
        ["--hidden", "0"],
        ["--batch-size", "-1"],
        ["--activation", "softmax"],
        ["--optimizer", "rmsprop"],
        ["--dtype", "float16"],
        ["--seed", "-1"],
        ["--no-such-option"],
    ],
)
def test_invalid_options_are_argparse_errors(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--lr", "-1"], ["--lr", "nan"], ["--optimizer", "sgd", "--momentum", "1.5"]])
def test_values_refused_by_numbanet_exit_2(capsys, argv):
    assert main(["--epochs", "1", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m numbanet: error: ")


def test_divergence_exits_1(capsys):
    assert main(["--epochs", "2", "--no-progress", "--optimizer", "sgd", "--lr", "1e300", "--momentum", "0"]) == 1
    err = capsys.readouterr().err
    assert "training diverged" in err


def test_missing_sklearn(capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert main(["--epochs", "1", "--no-progress"]) == 1
    assert capsys.readouterr().err.strip() == MISSING_SKLEARN


@pytest.mark.slow  # child Pythons
def test_python_dash_m():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "numbanet", "--epochs", "2", "--no-progress"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert _accuracy(proc.stdout)[0] > 50.0
    bad = subprocess.run(
        [sys.executable, "-m", "numbanet", "--epochs", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert "--epochs" in bad.stderr and "positive integer" in bad.stderr


def test_the_compile_is_reported_apart_from_the_training_time(capsys, monkeypatch):
    import time

    from numbanet import engine

    def first_run(self, stop_at_epoch_end):
        time.sleep(0.6)  # stands for compiling the kernel on a fresh install
        return 0.6, self.net._buffers.acquire(self.batch_size)[0]

    monkeypatch.setattr(engine.TrainingRun, "_prepare", first_run)
    start = time.perf_counter()
    assert main(["--epochs", "2", "--no-progress"]) == 0
    whole = time.perf_counter() - start
    out = capsys.readouterr().out
    assert "compiling the kernels took 0.6 s more (first run only" in out
    seconds = float(out.split("training time ")[1].split(" s")[0])
    assert seconds <= whole - 0.6 + 0.005  # the compile is taken out (a bound by construction, not a speed)


def test_no_compile_line_once_the_kernels_are_loaded(capsys):
    assert main(["--epochs", "1", "--no-progress"]) == 0
    assert "compiling" not in capsys.readouterr().out
