"""Helpers for writing course notebooks with nbformat: the shared header, badge and setup cell.

    from tools.nbauthor import md, code, write_notebook
    write_notebook("notebooks/03_lstm_gan.ipynb", title=..., learn=[...], prerequisites=..., runtime=..., cells=[...])

Then `python -m tools.nbstore --execute notebooks/03_lstm_gan.ipynb` runs it and keeps the marked outputs.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tools import nbstore, publish


def badge(notebook_name: str) -> str:
    repository, ref = publish.course_source()
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({publish.colab_prefix(repository, ref)}{notebook_name})")


def setup_source(seed: int = 0, extra: str = "") -> str:
    repository, ref = publish.course_source()
    return (
        "# Setup: the same in every notebook (see 00_setup). On Colab it installs the kit;\n"
        "# TensorFlow, Keras and torch are already there and are not reinstalled.\n"
        "import sys\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "t2i-course[colab] @ {publish.install_spec(repository, ref)}"\n'
        "\n"
        "import t2ilib\n"
        f"session = t2ilib.setup(seed={seed})\n" + extra
    )


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


def write_notebook(path, *, title: str, learn: list[str], prerequisites: str, runtime: str, cells: list,
                   setup_extra: str = "") -> Path:
    path = Path(path)
    header = (f"# {title}\n\n{badge(path.name)}\n\n**What you will learn**\n\n"
              + "\n".join(f"- {item}" for item in learn)
              + f"\n\n**Prerequisites:** {prerequisites}\n\n**Expected runtime:** {runtime}\n")
    nb = new_notebook(cells=[md(header), code(setup_source(extra=setup_extra)), *cells])
    nbformat.write(nbstore.clean(nb), path)
    return path
