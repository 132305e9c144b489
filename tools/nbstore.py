"""Store notebooks the way git keeps them: no outputs, no execution counts, except `# NBVAL_CHECK_OUTPUT` cells.

    python -m tools.nbstore notebooks/03_lstm_gan.ipynb           # strip in place
    python -m tools.nbstore --execute notebooks/03_lstm_gan.ipynb # run in fast mode first, keep marked outputs

Marked cells keep their outputs so that `pytest --nbval` compares them: they are the notebook's doctests.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import nbformat

MARKER = "# NBVAL_CHECK_OUTPUT"
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(MARKER)


def clean(nb):
    """Strip outputs and counts from every code cell but the marked ones.

    Marked cells keep their outputs and get counts 1, 2, ...: nbval treats a cell without a count as never run
    and refuses to compare it.
    """
    checked = 0
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if is_checked(cell):
            checked += 1
            cell.execution_count = checked
            for output in cell.outputs:
                if "execution_count" in output:
                    output["execution_count"] = checked
        else:
            cell.execution_count = None
            cell.outputs = []
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def execute(nb, path: Path, timeout: int = 900):
    from nbclient import NotebookClient

    os.environ.setdefault("T2I_FAST", "1")
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--execute", action="store_true", help="run the notebook (fast mode) before storing it")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        if args.execute:
            execute(nb, path)
        nbformat.write(clean(nb), path)
        print(f"stored {path}")


if __name__ == "__main__":
    main()
