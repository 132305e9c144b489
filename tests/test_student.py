"""tools.student: every solution goes, nothing else changes."""

import ast
import importlib
import re
from pathlib import Path

import nbformat
import pytest

from tools import student

ROOT = Path(__file__).resolve().parent.parent

EXERCISE = """\
def d_loss(real, wrong, fake):
    \"\"\"The GAN-CLS discriminator loss.\"\"\"
    ### BEGIN SOLUTION
    total = real + 0.5 * (wrong + fake)
    return total
    ### END SOLUTION

print(d_loss(1, 2, 3))
"""


def test_solution_becomes_a_stub_at_its_indentation():
    out, blocks = student.strip_solutions(EXERCISE)
    assert blocks == 1
    assert out == (
        "def d_loss(real, wrong, fake):\n"
        '    """The GAN-CLS discriminator loss."""\n'
        "    # YOUR CODE HERE\n"
        "    raise NotImplementedError()\n"
        "\n"
        "print(d_loss(1, 2, 3))\n"
    )


def test_two_blocks_in_one_cell():
    src = "### BEGIN SOLUTION\na = 1\n### END SOLUTION\nb = 2\n### BEGIN SOLUTION\nc = 3\n### END SOLUTION\n"
    out, blocks = student.strip_solutions(src)
    assert blocks == 2 and "a = 1" not in out and "c = 3" not in out and "b = 2\n" in out


@pytest.mark.parametrize("src, message", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without a BEGIN"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another"),
])
def test_unbalanced_markers_name_the_place(src, message):
    with pytest.raises(student.MarkerError, match=message):
        student.strip_solutions(src, "03_lstm_gan.ipynb, cell 7")


def test_the_course_notebooks_lose_every_solution_and_nothing_else(tmp_path):
    assert student.main(["--notebooks", str(ROOT / "notebooks"), "--out", str(tmp_path)]) == 0
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        original = nbformat.read(path, as_version=4)
        stripped = nbformat.read(tmp_path / path.name, as_version=4)
        assert len(original.cells) == len(stripped.cells)
        for before, after in zip(original.cells, stripped.cells):
            if "### BEGIN SOLUTION" in before.source:
                assert "BEGIN SOLUTION" not in after.source and "raise NotImplementedError()" in after.source
                kept = [line for line in after.source.splitlines()
                        if line.strip() not in ("# YOUR CODE HERE", "raise NotImplementedError()")]
                assert all(line in before.source.splitlines() for line in kept)
            else:
                assert after.source == before.source, f"{path.name}: a cell without a solution changed"
            if after.cell_type == "code" and not after.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT"):
                assert after.outputs == []


STUB = "raise NotImplementedError()"


def _is_checker(cell) -> bool:
    return cell.cell_type == "code" and ("exercises.check_" in cell.source or "ladder.check_" in cell.source)


def _errors(nb) -> dict[int, str]:
    return {index: output["ename"] for index, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for output in cell.outputs if output.get("output_type") == "error"}


@pytest.mark.parametrize("module", ["exercises", "ladder"])
def test_every_checker_is_called_in_the_notebook_its_table_names(module):
    checks = importlib.import_module(f"t2ilib.{module}")
    table = {line.split()[0].strip("`"): line.split()[-1] for line in checks.__doc__.splitlines()
             if line.startswith("``check_")}
    assert table.keys() == {name for name in checks.__all__}
    for name, number in table.items():
        (path,) = (ROOT / "notebooks").glob(f"{number}_*.ipynb")
        calls = [cell for cell in nbformat.read(path, as_version=4).cells if f"{module}.{name}(" in cell.source]
        assert calls, f"{path.name} never calls {module}.{name}"
        assert all("### BEGIN SOLUTION" not in cell.source for cell in calls), \
            f"{path.name}: {module}.{name} is called inside a solution block, so the student version drops it"


def _names(source):
    """(stored, loaded, modules) names of a cell, anywhere in it: bound, imported, defined, assigned into (x[i] = ...,
    x.a = ...) or called a method on (x.fit(...), unless x is a module), and read. An IPython %magic or !shell line
    is not Python: every word in it counts as read."""
    magic = [line for line in source.splitlines() if line.lstrip().startswith(("%", "!"))]
    lines = [line[: len(line) - len(line.lstrip())] + "pass" if line in magic else line for line in source.splitlines()]
    stored, loaded, modules = set(), set(re.findall(r"[A-Za-z_]\w*", "\n".join(magic))), set()

    def base(node):
        while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
            node = node.func if isinstance(node, ast.Call) else node.value
        return node.id if isinstance(node, ast.Name) else None

    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else stored).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stored.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = {(alias.asname or alias.name).split(".")[0] for alias in node.names}
            stored |= names
            modules |= names
        elif isinstance(node, (ast.Attribute, ast.Subscript)) and not isinstance(node.ctx, ast.Load):
            stored.add(base(node))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            stored.add(base(node.func))
    return stored - {None}, loaded, modules


def cells_the_exercises_need(nb):
    """Indices of the code cells a student version must run: the setup cell, every cell from the first stub on, and
    each earlier cell that stores a name a kept later cell reads (conservatively: any store counts, none is killed).
    The earlier cells are the course notebook's own, unchanged (test above), and nbval runs them all; a student
    version's exercise cells read little (their solutions are gone), so most notebooks keep only a few cells."""
    code = [index for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    first = min((index for index in code if STUB in nb.cells[index].source), default=len(nb.cells))
    names = {index: _names(nb.cells[index].source) for index in code}
    modules = set().union(*(found[2] for found in names.values()))
    keep, needed = set(), set()
    for index in reversed(code):
        stored, loaded, _ = names[index]
        if index == code[0] or index >= first or (stored - modules) & needed or stored & needed & modules:
            keep.add(index)
            needed |= loaded
    return keep


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_the_student_version_runs_and_fails_only_at_its_exercises(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    nb, blocks = student.student_version(nbformat.read(path, as_version=4), path.name)
    if not blocks:
        pytest.skip("no solution blocks: the student version is the notebook itself, which nbval runs")
    # Only the cells the exercises depend on (the others are the notebook's own, which nbval runs): emptied, so
    # the indices below stay those of the notebook.
    keep = cells_the_exercises_need(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and index not in keep:
            cell.source = ""
    monkeypatch.setenv("T2I_FAST", "1")
    monkeypatch.setenv("T2I_RUNS_DIR", str(tmp_path / "runs"))  # a fresh run, not a finished checkpoint
    NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = _errors(nb)
    exercise = {index for index, cell in enumerate(nb.cells) if STUB in cell.source or _is_checker(cell)}
    outside = {index: name for index, name in errors.items() if index not in exercise}
    assert not outside, f"{path.name}: cells outside the exercises failed: {outside}"
    unexpected = {index: name for index, name in errors.items() if name not in ("NotImplementedError", "NameError")}
    assert not unexpected, f"{path.name}: exercise cells failed with something other than a stub: {unexpected}"
    # A stub inside a function fails when its checker calls it; a stub at the top level fails where it stands.
    for index, cell in enumerate(nb.cells):
        if STUB in cell.source.splitlines():
            assert errors.get(index) == "NotImplementedError", f"{path.name}, cell {index}: the stub did not raise"
        if _is_checker(cell):
            assert index in errors, f"{path.name}, cell {index}: a checker passed on the unsolved stub"
    assert errors, f"{path.name}: {blocks} solution(s) removed, yet no exercise cell failed"


def test_a_student_run_keeps_the_cells_its_exercises_read_and_drops_the_rest():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in (
        "import t2ilib\nsession = t2ilib.setup(seed=0)",   # 0: the setup cell, always
        "import numpy as np\ndata = np.ones(3)",           # 1: data and np are read by 4
        "model = train(data)",                             # 2: read by nothing after it
        "history = {}\nhistory['a'] = 1",                  # 3: assigned into; 5 reads it
        f"def mean(x):\n    # YOUR CODE HERE\n    {STUB}\nmean(data)",
        "%time print(history)",                            # 5: after the first stub, so always
    )])
    assert cells_the_exercises_need(nb) == {0, 1, 3, 4, 5}
