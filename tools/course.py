"""`make course`: prepare the default dataset, execute every notebook, write build/ with an index.

    python -m tools.course --notebooks notebooks --out build

Executed copies go to build/notebooks/ (.ipynb and .html); build/index.html links them with status and time.
A failing notebook is recorded and the rest still run; the exit status is non-zero if any failed.

The pages read offline: MathJax is copied into build/mathjax/ from the jupyter-server-mathjax package (nbconvert
would load it from a CDN), and a widget output (notebook 07's demo) is shown as what its Output widgets held when
the notebook ran, e.g. the demo's last grid as a PNG, instead of live widgets that need a CDN's widget manager.
The .ipynb copies keep the widget state, for JupyterLab.
"""

from __future__ import annotations

import argparse
import copy
import html
import os
import shutil
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
        cmd += ["--num-images", str(config.PRESETS["smoke"].size.num_images), "--sizes", "32", "64", "128"]
    print("preparing the default dataset:", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# MathJax 2.7's files inside build/, relative to build/notebooks/*.html; the package ships only the
# TeX-AMS-MML_HTMLorMML config and STIX-Web fonts, so local/t2i.js tells MathJax to use those fonts.
MATHJAX_URL = "../mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe,local/t2i"
MATHJAX_LOCAL_CONFIG = """MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web",
  imageFont: null}});
MathJax.Ajax.loadComplete("[MathJax]/config/local/t2i.js");
"""


def copy_mathjax(out: Path) -> Path:
    """MathJax 2.7 from the jupyter-server-mathjax package into ``out``/mathjax (skipped when already there)."""
    import jupyter_server_mathjax

    target = out / "mathjax"
    if not (target / "MathJax.js").is_file():
        shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", target, dirs_exist_ok=True)
    (target / "config" / "local").mkdir(parents=True, exist_ok=True)
    (target / "config" / "local" / "t2i.js").write_text(MATHJAX_LOCAL_CONFIG, encoding="utf-8")
    return target


def _widget_outputs(model_id: str, state: dict, seen: set) -> list:
    """The outputs held by the Output widgets in the tree under ``model_id``, in display order."""
    if model_id in seen or model_id not in state:
        return []
    seen.add(model_id)
    model = state[model_id].get("state", {})
    outputs = list(model.get("outputs", [])) if model.get("_model_name") == "OutputModel" else []
    for child in model.get("children", []):
        outputs += _widget_outputs(str(child).removeprefix("IPY_MODEL_"), state, seen)
    return outputs


def static_widgets(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose widget outputs are replaced by what their Output widgets held when it ran (the
    demo's grid as a PNG), with a line saying the controls need a running notebook; no widget state is left, so
    the page loads no widget manager."""
    nb = copy.deepcopy(nb)
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    note = ("<p><em>Interactive widgets: open the notebook in JupyterLab or Colab to use them. Shown below: "
            "what they displayed when this page was made.</em></p>")
    for cell in nb.cells:
        outputs = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(output)
                continue
            held = _widget_outputs(view.get("model_id", ""), state, set())
            outputs.append(nbformat.v4.new_output("display_data", {"text/html": note}))
            outputs += [nbformat.from_dict(o) for o in held]
        if "outputs" in cell:
            cell.outputs = outputs
    return nb


def to_html(nb: nbformat.NotebookNode) -> str:
    """The page of an executed notebook that needs no network: local MathJax, widgets as static outputs."""
    # require.js is only for live widgets (gone here); an empty src makes the browser fetch nothing
    exporter = HTMLExporter(mathjax_url=MATHJAX_URL, require_js_url="")
    body, _ = exporter.from_notebook_node(static_widgets(nb))
    return body


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
    body = to_html(nb)
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
    copy_mathjax(args.out)
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
