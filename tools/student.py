"""`make student`: write student versions of the notebooks, with every solution taken out.

    python -m tools.student --notebooks notebooks --out build/student

Solutions sit in code cells between `### BEGIN SOLUTION` and `### END SOLUTION` lines (nbgrader's convention, so
nbgrader can use the notebooks as they are). Each such block becomes `# YOUR CODE HERE` and
`raise NotImplementedError()` at the block's indentation; everything else is copied unchanged, outputs stripped.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from tools import nbstore

BEGIN = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")


class MarkerError(ValueError):
    pass


def strip_solutions(source: str, where: str = "cell") -> tuple[str, int]:
    """Return the source with each solution block replaced, and how many blocks there were."""
    out, indent, blocks = [], None, 0
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if indent is not None:
                raise MarkerError(f"{where}, line {number}: BEGIN SOLUTION inside another solution")
            indent, blocks = begin.group(1), blocks + 1
            out.append(f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()\n")
        elif end:
            if indent is None:
                raise MarkerError(f"{where}, line {number}: END SOLUTION without a BEGIN SOLUTION")
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise MarkerError(f"{where}: BEGIN SOLUTION is never closed by END SOLUTION")
    return "".join(out), blocks


def student_version(nb, name: str = "notebook"):
    blocks = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source, found = strip_solutions(cell.source, f"{name}, cell {index}")
            blocks += found
    return nbstore.clean(nb), blocks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    parser.add_argument("--out", type=Path, default=Path("build/student"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.notebooks.glob("*.ipynb")):
        nb, blocks = student_version(nbformat.read(path, as_version=4), path.name)
        nbformat.write(nb, args.out / path.name)
        print(f"{path.name}: {blocks} solution(s) removed")
    print(f"student versions in {args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
