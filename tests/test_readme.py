"""README.md cannot rot: its Python examples run, and its test command is CI's.

Blocks fenced as ```python are executed in order, each in a fresh namespace;
blocks fenced as ```py are signatures for reading, not programs.  The same holds
for docs/guide.md, which carries the examples that did not fit in the README.
Each ```python block is also run as a user pastes it: saved as a script and
run by a new Python in an empty folder (``__main__``, so a Dask example without
its ``if __name__ == "__main__":`` guard fails there), with no warning printed.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
GUIDE = (ROOT / "docs" / "guide.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
GUIDE_BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE, flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 4


def _skip_without_extras(code):
    for module in ("sklearn", "onnx", "onnxruntime", "skl2onnx", "torch", "skops", "dask"):  # optional extras
        if module in code:
            pytest.importorskip(module)


def _run(code, name):
    _skip_without_extras(code)
    exec(compile(code, name, "exec"), {"__name__": name})


def _run_as_script(code, folder):
    _skip_without_extras(code)
    script = folder / "example.py"
    script.write_text(code)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
    _run(BLOCKS[index], f"README.md[python block {index}]")


@pytest.mark.parametrize("index", range(len(GUIDE_BLOCKS)))
def test_guide_example_runs(index, capsys):
    _run(GUIDE_BLOCKS[index], f"docs/guide.md[python block {index}]")


@pytest.mark.slow  # a new Python for each block
@pytest.mark.parametrize(
    "doc, index",
    [("README.md", i) for i in range(len(BLOCKS))] + [("docs/guide.md", i) for i in range(len(GUIDE_BLOCKS))],
)
def test_example_runs_as_a_pasted_script(doc, index, tmp_path):
    _run_as_script((BLOCKS if doc == "README.md" else GUIDE_BLOCKS)[index], tmp_path)


def _commands(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command():
    readme_cmds = [c.strip() for c in _commands(README)]
    test_cmd = next(c for c in readme_cmds if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines(), f"README's test command is not a line of .ci/run: {test_cmd!r}"


def test_readme_demo_command_runs_the_module():
    readme_cmds = [c.strip() for c in _commands(README)]
    assert any(c.endswith("-m numbanet") for c in readme_cmds)
