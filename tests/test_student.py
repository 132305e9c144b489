"""tools.student: every solution goes, nothing else changes."""

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
