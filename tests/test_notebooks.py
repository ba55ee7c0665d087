"""The committed notebooks are their paired jupytext sources, executed.

Each ``notebooks/NAME.ipynb`` is paired with ``notebooks/NAME.py`` (jupytext
``py:percent``, configured in notebooks/jupytext.toml).  The ``.py`` is what
people edit and review; the ``.ipynb`` carries the outputs that GitHub shows.
These tests fail when one is edited without the other (bring them back
together with ``python .ci/execute-notebooks``), and when a notebook is
committed without its outputs.  The test command also executes every
``.ipynb`` (nbmake), so the outputs cannot go stale silently.
"""

import io
import pathlib
import tokenize

import pytest

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9]*.py"))
IPYNBS = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


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


def _code_without_text(source):
    """Return the tokens of ``source``, comments dropped and every string (f-strings' text too) made ``""``."""
    text_types = {tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    tokens = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL):
            continue
        tokens.append((tok.type, '""' if tok.type in text_types else tok.string))
    return tokens


@pytest.mark.parametrize("translation", sorted(NOTEBOOKS.glob("[0-9]*.*.py")), ids=lambda p: p.name)
def test_a_translation_runs_the_same_code_as_its_original(translation):
    """NAME.LANG.py differs from NAME.py in its prose, comments and printed text only: the same code and checks."""
    original = translation.with_name(translation.name.split(".")[0] + ".py")
    code = [[c.source for c in jupytext.read(path).cells if c.cell_type == "code"] for path in (original, translation)]
    assert len(code[1]) == len(code[0]), f"{translation.name} has another number of code cells than {original.name}"
    for i, (want, got) in enumerate(zip(*code)):
        assert _code_without_text(got) == _code_without_text(want), (
            f"code cell {i} of {translation.name} differs from {original.name}'s beyond its comments and strings"
        )
