"""tools.student: every solution goes, nothing else changes."""

import importlib
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


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_the_student_version_runs_and_fails_only_at_its_exercises(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    nb, blocks = student.student_version(nbformat.read(path, as_version=4), path.name)
    if not blocks:
        pytest.skip("no solution blocks: the student version is the notebook itself, which nbval runs")
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

