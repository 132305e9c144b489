"""Notebooks live in git without outputs, except the `# NBVAL_CHECK_OUTPUT` cells nbval compares."""

import json
from pathlib import Path

import pytest

from tools import nbstore, publish

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ is empty"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = []
    for number, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if source.lstrip().startswith(nbstore.MARKER):
            continue  # kept on purpose: nbval compares these
        if cell.get("execution_count") is not None or cell.get("outputs"):
            dirty.append(number)
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or counts; run python -m tools.nbstore {path}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checked_cells_have_the_outputs_nbval_compares(path):
    cells = json.loads(path.read_text())["cells"]
    empty = [i for i, c in enumerate(cells) if c["cell_type"] == "code"
             and "".join(c["source"]).lstrip().startswith(nbstore.MARKER) and not c.get("outputs")]
    assert not empty, f"{path.name}: marked cells {empty} have no stored output to compare"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_badge_and_setup_cell(path):
    cells = json.loads(path.read_text())["cells"]
    repository, ref = publish.course_source()
    first_markdown = "".join(cells[0]["source"])
    assert publish.colab_prefix(repository, ref) + path.name in first_markdown, "Colab badge missing or stale"
    setup = next(("".join(c["source"]) for c in cells if c["cell_type"] == "code"), "")
    assert publish.install_spec(repository, ref) in setup and "t2ilib.setup(" in setup, \
        "the first code cell must be the shared setup cell (see 00_setup)"


def test_every_link_points_at_the_repository_in_pyproject():
    assert publish.stale() == []


def test_publish_rewrites_a_fork(tmp_path):
    text = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            "(https://colab.research.google.com/github/a/b/blob/main/notebooks/01_x.ipynb)\n"
            '%pip install -q "t2i-course[colab] @ git+https://github.com/a/b@main"')
    out = publish.rewrite(text, "https://github.com/me/fork", "v2")
    assert "github/me/fork/blob/v2/notebooks/01_x.ipynb" in out
    assert "git+https://github.com/me/fork@v2" in out
