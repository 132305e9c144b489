"""`make course`: prepare the default dataset, execute every notebook, write build/ with an index.

    python -m tools.course --notebooks notebooks --out build

Executed copies go to build/notebooks/ (.ipynb and .html); build/index.html links them with status and time.
A failing notebook is recorded and the rest still run; the exit status is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import html
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

from t2ilib import config


def prepare_default_dataset() -> None:
    fast = config.is_fast()
    # No --out: data_prep picks <data dir>/synthetic_flowers for 10,000 images, synthetic_flowers_<N> otherwise,
    # the directories the notebooks' data_prep.synthetic.ensure() looks in (sizes never overwrite each other).
    cmd = [sys.executable, "-m", "data_prep", "synthetic_flowers"]
    if fast:
        cmd += ["--num-images", str(config.PRESETS["smoke"].num_images), "--sizes", "32", "64", "128"]
    print("preparing the default dataset:", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def run_notebook(src: Path, out_dir: Path, timeout: int) -> tuple[bool, float, str]:
    nb = nbformat.read(src, as_version=4)
    start = time.perf_counter()
    error = ""
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(src.parent.resolve())}}).execute()
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
    seconds = time.perf_counter() - start
    nbformat.write(nb, out_dir / src.name)
    body, _ = HTMLExporter().from_notebook_node(nb)
    (out_dir / src.with_suffix(".html").name).write_text(body, encoding="utf-8")
    return not error, seconds, error


def write_index(rows, out: Path, fast: bool) -> Path:
    items = "\n".join(
        f"<tr><td><a href='notebooks/{html.escape(name)}.html'>{html.escape(name)}</a></td>"
        f"<td>{'ok' if ok else 'FAILED: ' + html.escape(err)}</td><td>{secs:.0f} s</td>"
        f"<td><a href='notebooks/{html.escape(name)}.ipynb'>.ipynb</a></td></tr>"
        for name, ok, secs, err in rows
    )
    page = (
        "<!doctype html><meta charset='utf-8'><title>t2i-course: executed notebooks</title>"
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}td{padding:.3em 1em}</style>"
        f"<h1>t2i-course</h1><p>Executed {time.strftime('%Y-%m-%d %H:%M')} in "
        f"{'fast' if fast else 'full'} mode.</p><table><tr><th>notebook</th><th>status</th><th>time</th>"
        f"<th>download</th></tr>{items}</table>"
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"),
                        help="a folder of notebooks, or one notebook")
    parser.add_argument("--out", type=Path, default=Path("build"))
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    args = parser.parse_args(argv)

    fast = config.is_fast()
    os.environ["T2I_FAST"] = "1" if fast else "0"  # the kernels inherit the resolved mode
    prepare_default_dataset()
    out_dir = args.out / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [args.notebooks] if args.notebooks.is_file() else sorted(args.notebooks.glob("[0-9]*.ipynb"))
    rows = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        ok, secs, err = run_notebook(path, out_dir, args.timeout)
        print(f"  {'ok' if ok else 'FAILED'} in {secs:.0f} s {err}", flush=True)
        rows.append((path.stem, ok, secs, err))
    index = write_index(rows, args.out, fast)
    failed = [name for name, ok, _, _ in rows if not ok]
    print(f"\nResults: {index.resolve()} ({len(rows) - len(failed)}/{len(rows)} notebooks ran)")
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
