"""The committed notebooks are their paired jupytext sources, executed.

Each ``notebooks/NAME.ipynb`` is paired with ``notebooks/NAME.py`` (jupytext
``py:percent``, configured in notebooks/jupytext.toml).  The ``.py`` is what
people edit and review; the ``.ipynb`` carries the outputs that GitHub shows.
These tests fail when one is edited without the other (bring them back
together with ``python .ci/execute-notebooks``), and when a notebook is
committed without its outputs.

The committed outputs come from the committed code: a slow test executes each
``.ipynb`` afresh and compares what every code cell printed to stdout and
returned as text with what the committed notebook shows.  Left out of the
comparison: stderr (progress bars, compile notes and warnings that depend on
the machine), images and widgets, and every output of a cell tagged
``nondeterministic`` (a cell that times something on the machine running the
notebook; jupytext writes the tag as ``# %% tags=["nondeterministic"]``).
"""

import ast
import os
import pathlib
import re

import pytest

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9]*.py"))
IPYNBS = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
#: A code cell with this tag may print something else on every run (a timing on this machine): not compared.
UNCOMPARED = "nondeterministic"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # reprs such as <matplotlib.legend.Legend at 0x7f...>


def _cells(nb):
    return [(cell.cell_type, cell.source) for cell in nb.cells]


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert SOURCES, "no notebook sources found"
    assert [p.with_suffix("") for p in SOURCES] == [p.with_suffix("") for p in IPYNBS]


@pytest.mark.parametrize("path", IPYNBS, ids=lambda p: p.name)
def test_jupytext_pairs_each_notebook_with_its_py_percent_source(path):
    config = jupytext.config.load_jupytext_config(str(path))
    assert config is not None, "notebooks/jupytext.toml is not found"
    assert set(config.default_formats(str(path)).split(",")) == {"ipynb", "py:percent"}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_ipynb_cells_are_its_py_source(source):
    paired = jupytext.read(source)
    committed = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    expected, actual = _cells(paired), _cells(committed)
    for i, (want, got) in enumerate(zip(expected, actual)):
        assert got == want, f"cell {i} of {source.with_suffix('.ipynb').name} differs from {source.name}"
    assert len(actual) == len(expected), f"{source.name} has {len(expected)} cells, its .ipynb {len(actual)}"


@pytest.mark.parametrize("path", IPYNBS, ids=lambda p: p.name)
def test_ipynb_is_committed_executed_with_its_plots(path):
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count is not None for cell in code), f"{path.name} is not executed"
    outputs = [output for cell in code for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"], f"{path.name} was committed with an error"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no plot"
    # Executed in order, top to bottom, in one kernel.
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))


def _code_and_text(source):
    """Split a code cell into its code (an AST dump with every string emptied) and its strings, in order.

    Comments are dropped; an f-string's text becomes one string (its ``{...}`` fields stay in the code).
    """
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("%"))  # IPython magics
    strings = []

    class TakeText(ast.NodeTransformer):
        def visit_JoinedStr(self, node):
            strings.append("{}".join(v.value for v in node.values if isinstance(v, ast.Constant)))
            node.values = [self.visit(v) for v in node.values if not isinstance(v, ast.Constant)]
            return node

        def visit_Constant(self, node):
            if isinstance(node.value, str):
                strings.append(node.value)
                node.value = ""
            return node

    return ast.dump(TakeText().visit(ast.parse(code))), strings


_HAN = re.compile("[\u4e00-\u9fff]")  # the translations so far are Chinese


@pytest.mark.parametrize("translation", sorted(NOTEBOOKS.glob("[0-9]*.*.py")), ids=lambda p: p.name)
def test_a_translation_runs_the_same_code_as_its_original(translation):
    """NAME.LANG.py differs from NAME.py in its words only: the same code, so the same checks and numbers.

    Comments, printed text and plot labels are translated; any other string (an activation's name, a
    line style) stays as it is: a string that differs must be in the translation's language.
    """
    original = translation.with_name(translation.name.split(".")[0] + ".py")
    cells = [[c.source for c in jupytext.read(path).cells if c.cell_type == "code"] for path in (original, translation)]
    assert len(cells[1]) == len(cells[0]), f"{translation.name} has another number of code cells than {original.name}"
    for i, (mine, theirs) in enumerate(zip(*cells)):
        (code, text), (translated_code, translated_text) = _code_and_text(mine), _code_and_text(theirs)
        assert translated_code == code, f"code cell {i} of {translation.name} differs from {original.name}'s"
        for word, translated in zip(text, translated_text):
            assert translated == word or _HAN.search(translated), (
                f"code cell {i} of {translation.name} changes the string {word!r} to {translated!r}"
            )


def _shown(cell):
    """Return what a code cell printed to stdout and returned as text, with object addresses blanked."""
    printed, results = [], []
    for output in cell.outputs:
        if output.output_type == "stream" and output.name == "stdout":
            printed.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            data = output.get("data", {})
            if "text/plain" in data and "application/vnd.jupyter.widget-view+json" not in data:
                results.append(data["text/plain"])
        elif output.output_type == "error":
            results.append(f"{output.ename}: {output.evalue}")
    return _ADDRESS.sub(" at 0x...", "".join(printed)), [_ADDRESS.sub(" at 0x...", r) for r in results]


def _stderr(nb):
    return "".join(o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("name") == "stderr")


def _execute(path, monkeypatch):
    """Run the notebook at ``path`` afresh, as .ci/execute-notebooks does: its folder, this checkout's numbanet."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    pythonpath = [str(NOTEBOOKS.parent), os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, pythonpath)))  # the kernel inherits it
    resources = {"metadata": {"path": str(path.parent)}}  # the kernel's working directory
    NotebookClient(nb, timeout=600, kernel_name="python3", resources=resources).execute()
    return nb


def _differing_cells(committed, fresh):
    """Return the indices of the code cells (counted among code cells) whose compared text differs."""
    code = [(old, new) for old, new in zip(committed.cells, fresh.cells) if old.cell_type == "code"]
    return [
        i
        for i, (old, new) in enumerate(code)
        if UNCOMPARED not in old.metadata.get("tags", []) and _shown(new) != _shown(old)
    ]


def test_the_comparison_sees_printed_text_and_skips_what_it_should():
    v4 = nbformat.v4

    def notebook(number, seconds, address):
        cells = [v4.new_code_cell("print(n)"), v4.new_code_cell("time it"), v4.new_code_cell("plot")]
        cells[0].outputs = [v4.new_output("stream", name="stdout", text=f"{number}\n")]
        cells[1].metadata["tags"] = [UNCOMPARED]
        cells[1].outputs = [v4.new_output("stream", name="stdout", text=f"{seconds} s on this machine\n")]
        cells[2].outputs = [
            v4.new_output("stream", name="stderr", text=f"100%|##| 40/40 [{seconds}s]"),
            v4.new_output("execute_result", data={"text/plain": f"<Legend at {address}>"}, execution_count=3),
            v4.new_output("display_data", data={"image/png": address, "text/plain": "<Figure size 640x480>"}),
        ]
        return v4.new_notebook(cells=cells)

    committed = notebook(1, 0.5, "0x7f00aa")
    assert _differing_cells(committed, notebook(1, 0.7, "0x7f11bb")) == []  # tagged, stderr, address, image
    assert _differing_cells(committed, notebook(2, 0.5, "0x7f00aa")) == [0]  # printed text


@pytest.mark.slow  # executes a whole notebook in a new kernel
@pytest.mark.parametrize("path", IPYNBS, ids=lambda p: p.name)
def test_a_fresh_run_shows_the_committed_outputs(path, monkeypatch):
    """Each notebook runs without error and prints what its committed copy shows (bar the tagged cells)."""
    committed = nbformat.read(path, as_version=4)
    fresh = _execute(path, monkeypatch)
    assert len(committed.cells) == len(fresh.cells)
    differing = _differing_cells(committed, fresh)
    code = [[c for c in nb.cells if c.cell_type == "code"] for nb in (committed, fresh)]
    first = (_shown(code[0][differing[0]]), _shown(code[1][differing[0]])) if differing else None
    assert not differing, (
        f"code cells {differing} of {path.name} show other text than their committed outputs: re-execute it "
        f"(python .ci/execute-notebooks notebooks/{path.stem}.py), or tag a cell {UNCOMPARED!r} if its "
        f"output depends on the machine. Cell {differing[0]}, committed then fresh: {first}"
    )
    # Without ipywidgets the progress bar is tqdm's text bar, without tqdm.auto's "IProgress not found".
    assert "TqdmWarning" not in _stderr(fresh) and "IProgress" not in _stderr(fresh)
