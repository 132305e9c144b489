"""What a student sees, in a real browser: JupyterLab running notebook 07's demo, and build/index.html.

Run by `make browser-test` (not collected by `make test`: the file name is not test_*). Debian's chromium is
driven by Playwright (its own browser download is not used). Without a browser this fails with the reason.

- Notebook 07's demo cells (the rest of it trains for minutes) run twice: with the kit's ipywidgets 8 in
  JupyterLab, and with a kernel at Colab's ipywidgets 7.7.1 (the venv `make widgets7` builds: that version over the
  kit's venv) in Colab's classic Notebook 6.5.7, as JupyterLab 4 renders no ipywidgets 7 widget. The first Generate
  click with the menu's default model must draw pictures, not flat squares.
- build/'s pages are opened with every request off this machine aborted: maths rendered by the local MathJax,
  the demo's last grid shown as an image.
"""

import base64
import io
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
CHROMIUM = os.environ.get("T2I_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The demo's notebook: a random smoke-preset generator and a stand-in encoder, so nothing is trained or downloaded.
DEMO_CELLS = [
    "import t2ilib\nsession = t2ilib.setup(seed=0)",
    "import numpy as np\nfrom t2ilib import models, widgets\n\n"
    "def encode(texts):\n"
    "    return np.stack([np.random.default_rng(sum(map(ord, t))).standard_normal(8) for t in texts])\n\n"
    "generator = models.build_generator(session.preset, embedding_dim=8)\n"
    "widgets.demo({'smoke': generator}, widgets.CaptionEncoder(encode), count=4)",
]
SLOW = 300_000  # ms: a kernel start and TensorFlow's import on a busy 2-core machine
NOTEBOOK_07 = ROOT / "notebooks" / "07_evaluation_and_demo.ipynb"
# The cells of notebook 07 its demo runs on, each found by a line only it has. The rest (fast mode trains two tiny
# GANs and two judges, ~4 min) is left out: its tiny models are never the menu's default.
DEMO_07_CELLS = {
    "setup": "session = t2ilib.setup(seed=0)",
    "the constants (preset)": "preset = session.preset",
    "data, embeddings, generators and their cards": 'cards["shipped GAN-CLS"] = pretrained.load_generator()',
    "the encoder and the demo": "state, box = widgets.demo(",
}
DEMO_07_TIME = 600_000  # ms: the kernel imports TensorFlow and torch, embeds the captions, loads MiniLM
# A kernel at Colab's ipywidgets (7.7.1): `make widgets7` builds it, WIDGETS7_PYTHON names its python. Made absolute
# (`make browser-test` passes .venv-widgets7/bin/python): the server starts a kernel in the notebook's folder, where a
# relative path names nothing ("No such file or directory" in the server's log, a kernel that never starts). Not
# resolved: the venv's python is a symlink to the base python, which would leave the venv.
WIDGETS7_PYTHON = os.path.abspath(os.environ.get("T2I_WIDGETS7_PYTHON", ROOT / ".venv-widgets7" / "bin" / "python"))
# Its classic Notebook (Colab's notebook 6.5.7 and its jupyter_client, `make widgets7` installs them here): JupyterLab
# 4's widget manager renders only ipywidgets 8 ("Module @jupyter-widgets/controls, version ^1.5.0 is not registered").
WIDGETS7_CLASSIC = Path(WIDGETS7_PYTHON).parents[1] / "classic"
# Each kernel in the front end that renders its widgets.
KERNELS = {"ipywidgets8": (sys.executable, "lab"), "ipywidgets7": (WIDGETS7_PYTHON, "classic")}
# A tile of a grey square has a standard deviation of about 0 (a few units from the tile's edges); a drawn
# flower on its background is tens of units. Anything under this is a flat picture.
FLAT_STD = 8.0


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.fail(f"playwright is not installed ({error}): pip install -r requirements-test.txt")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no browser at {CHROMIUM}: apt-get install chromium (or set T2I_CHROMIUM)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as error:  # the reason chromium did not start is the test's failure message
            pytest.fail(f"chromium at {CHROMIUM} did not start: {error}")
        yield chromium
        chromium.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The folder the servers show: the stand-in demo notebook and a kernelspec per ipywidgets version."""
    folder = tmp_path_factory.mktemp("lab")
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}  # no kernel dialog
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in DEMO_CELLS],
                                            metadata={"kernelspec": kernel}), folder / "demo.ipynb")
    for name, (python, _) in KERNELS.items():  # found through JUPYTER_PATH
        spec = folder / "jupyter" / "kernels" / name
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "env": {"PYTHONPATH": str(ROOT)},  # the kit's packages, not the classic server's
            "display_name": name, "language": "python"}))
    return folder


def _serve(folder: Path, what: str, argv: list, env: dict, data: tuple = ()):
    """Run a Jupyter server on 127.0.0.1 until the module's tests are done; yields its base URL and token."""
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, **env, "JUPYTER_PATH": os.pathsep.join(
        [str(folder / "jupyter"), *map(str, data), os.environ.get("JUPYTER_PATH", "")])}
    env.pop("MPLBACKEND", None)  # a student's kernel draws inline; Agg (set by conftest.py) would draw nothing
    with open(folder / f"{what}.log", "w") as log:  # the child keeps its own copy of the file
        server = subprocess.Popen(argv + ["--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
                                          f"--notebook-dir={folder}", f"--NotebookApp.token={token}",
                                          f"--IdentityProvider.token={token}"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"{what} exited: {(folder / f'{what}.log').read_text()[-2000:]}")
                time.sleep(1)
        else:
            pytest.fail(f"{what} did not answer on 127.0.0.1 within 2 minutes")
        yield url, token
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def lab(folder):
    """JupyterLab 4 with the kit's jupyterlab_widgets, its own settings and workspaces (not the user's)."""
    settings = folder / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))  # no toast
    yield from _serve(folder, "jupyter lab", [sys.executable, "-m", "jupyter", "lab",
                                              "--LabApp.expose_app_in_browser=True"],  # window.jupyterapp
                      {"JUPYTERLAB_SETTINGS_DIR": str(folder / "lab-settings"),
                       "JUPYTERLAB_WORKSPACES_DIR": str(folder / "lab-workspaces")})


@pytest.fixture(scope="module")
def classic(folder):
    """Colab's classic Notebook 6.5.7 with the widgets' nbextension of ipywidgets 7.7.1's release, for its kernel."""
    if not (WIDGETS7_CLASSIC / "notebook").is_dir() or not WIDGETS7_CLASSIC.with_name("classic-nbextension").is_dir():
        pytest.fail(f"no classic Notebook in {WIDGETS7_CLASSIC}: make widgets7")
    nbextension = WIDGETS7_CLASSIC.with_name("classic-nbextension") / "share" / "jupyter"  # before the venv's 3.6.10
    yield from _serve(folder, "classic notebook", [WIDGETS7_PYTHON, "-m", "notebook"],
                      {"PYTHONPATH": str(WIDGETS7_CLASSIC)}, [nbextension])


def _names(source: str) -> tuple[set, set]:
    """The names a cell defines and the names it reads before defining them (IPython's magics made Python)."""
    import ast
    import builtins

    from IPython.core.inputtransformer2 import TransformerManager

    tree = ast.parse(TransformerManager().transform_cell(source))
    defined = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return defined, read - defined - set(dir(builtins)) - {"get_ipython"}


def demo_of_notebook_07() -> nbformat.NotebookNode:
    """Notebook 07 reduced to the cells its demo runs on (DEMO_07_CELLS), in their order, unchanged. Fails if a
    cell is not found once, or if a kept cell reads a name no earlier kept cell defines (it moved to a left-out
    cell): then DEMO_07_CELLS must follow the notebook."""
    nb = nbformat.read(NOTEBOOK_07, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    kept = []
    for what, line in DEMO_07_CELLS.items():
        found = [cell for cell in code if line in cell.source]
        assert len(found) == 1, (f"notebook 07 has {len(found)} cells with {line!r} ({what}), not one: update "
                                 "DEMO_07_CELLS in tests/browser/browser_jupyterlab.py")
        kept.append(found[0])
    kept.sort(key=code.index)
    defined = set()
    for cell in kept:
        names, read = _names(cell.source)
        missing = read - defined
        assert not missing, (f"notebook 07's demo reads {sorted(missing)} in a cell beginning "
                             f"{cell.source[:60]!r}, defined in no cell of DEMO_07_CELLS before it")
        defined |= names
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell.source) for cell in kept],
                                    metadata=nb.metadata)


def _tiles(png: bytes) -> list[np.ndarray]:
    """The pictures of a demo grid as drawn in its figure, cut along the white lines image_grid puts between them:
    each band of rows that are mostly ink for 16 pixels or more is a row of pictures (the title's text is too thin
    for one), cut where its columns turn white."""
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype("float32")
    ink = ~(picture > 245).all(axis=2)

    def runs(filled):  # [start, stop) of each run of filled lines at least 16 pixels long
        edges = np.flatnonzero(np.diff(np.concatenate([[0], filled.astype(int), [0]])))
        return [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= 16]

    margin = 2  # the resampled edge of a picture against the white line is not the picture
    return [picture[r0 + margin : r1 - margin, c0 + margin : c1 - margin]
            for r0, r1 in runs(ink.mean(axis=1) > 0.5) for c0, c1 in runs(ink[r0:r1].mean(axis=0) > 0.5)]


def test_tiles_tell_flat_squares_from_pictures():
    """The grid cutting the demo test relies on, on figures drawn as the demo draws them: 8 grey squares, 8 noise."""
    import matplotlib.pyplot as plt

    from t2ilib import viz

    spreads, noise = {}, np.random.default_rng(0).uniform(-1, 1, (8, 64, 64, 3))
    for name, images in (("flat", np.zeros((8, 64, 64, 3))), ("noise", noise)):
        viz.show_images(viz.image_grid(images.astype("float32"), columns=4)[None], columns=1, size=6, title=name)
        figure = io.BytesIO()
        plt.savefig(figure, format="png")
        plt.close("all")
        spreads[name] = [float(tile.std()) for tile in _tiles(figure.getvalue())]
    assert len(spreads["flat"]) == len(spreads["noise"]) == 8, spreads
    assert max(spreads["flat"]) < FLAT_STD < min(spreads["noise"]), spreads


def _data_url_png(src: str) -> bytes:
    assert src and src.startswith("data:image/png;base64,"), f"not an inline PNG: {str(src)[:60]}"
    return base64.b64decode(src.split(",", 1)[1])


# What the tests ask each front end, in JavaScript: `cells` the notebook `name`'s cells as {count, outputs} (false if
# the page shows another), `idle` its kernel connected and idle, `node` the element holding the notebook.
_LAB = ("const app = window.jupyterapp; const panel = app && app.shell.currentWidget;"
        " if (!panel || !panel.context || panel.context.path !== name) return false;"
        " const model = panel.content.model.cells; const node = panel.node;"
        " const cells = [...Array(model.length).keys()].map(i => ({count: model.get(i).executionCount,"
        " outputs: model.get(i).toJSON().outputs || []}));"
        " const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;"
        " const idle = !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';")
_CLASSIC = ("const nb = window.Jupyter && Jupyter.notebook;"
            " if (!nb || !nb.kernel || nb.notebook_path !== name) return false; const node = nb.element[0];"
            " const cells = nb.get_cells().map(c => ({count: typeof c.input_prompt_number === 'number'"
            " ? c.input_prompt_number : null, outputs: c.output_area ? c.output_area.outputs : []}));"
            " const idle = nb.kernel.is_connected()"
            " && !!document.querySelector('#kernel_indicator_icon.kernel_idle_icon');")
FRONT_ENDS = {"lab": _LAB, "classic": _CLASSIC}
# Ready for Run All: the kernel connected and idle (TensorFlow not yet imported).
_KERNEL_IDLE = "name => { %s return idle; }"
# ipywidgets 7's classic front end is ready for Run All once its widget manager has had its first answer from the
# kernel: when that answer comes, the manager re-renders every cell showing a widget, and the re-render draws nothing
# where a live widget was (removing the view blanks the model id of the very output it re-renders from;
# jupyter-widgets/ipywidgets#3770). A fresh kernel refuses the manager's control comm (ipywidgets not imported yet),
# so the manager then asks for comm_info; asked after Run All's cells, it is answered after them, and the demo drawn
# by then leaves the page. Ready: the control comm is gone (answered or refused) and a comm_info request of the
# test's own, sent after the manager's, has its answer (false if not within 30 s; the caller asks again).
_WIDGET_MANAGER_LOADED = (
    "async name => { %s const kernel = nb.kernel, manager = kernel.widget_manager; if (!idle || !manager) return false;"
    " const comms = await Promise.all(Object.values(kernel.comm_manager.comms));"
    " if (comms.some(comm => comm && comm.target_name === 'jupyter.widget.control')) return false;"
    " return await new Promise(done => { kernel.comm_info('jupyter.widget', () => done(true));"
    " setTimeout(() => done(false), 30000); }); }")
# Run All reached the kernel: the first cell's prompt left '[ ]' for '[*]' or its number.
_RUNNING = ("name => { %s const prompt = node.querySelector('.jp-InputPrompt, .input_prompt');"
            r" return !!prompt && /\[(\*|\d+)\]/.test(prompt.innerText); }")
# Done: the Generate button is drawn, a cell's output is an error (its traceback at once, not at a timeout), or
# every cell ran and the kernel is idle (then the widgets have a moment to render).
_DEMO_OR_ERROR = ("name => { %s for (const [i, cell] of cells.entries()) { for (const output of cell.outputs)"
                  " { if (output.output_type === 'error') return 'error in cell ' + (i + 1) + ': ' + output.ename"
                  " + ': ' + output.evalue; } }"
                  " if ([...node.querySelectorAll('button')].some(b => b.innerText.trim() === 'Generate'))"
                  " return 'demo'; return cells.every(cell => cell.count) && idle ? 'ran' : false; }")
# What the notebook's cells printed, all in one text.
_PRINTED = ("name => { %s return cells.flatMap(cell => cell.outputs).filter(o => o.output_type === 'stream')"
            ".map(o => [].concat(o.text).join('')).join(''); }")


# Each front end's server log (in the folder it serves): why a kernel did not start.
SERVER_LOGS = {"lab": "jupyter lab.log", "classic": "classic notebook.log"}


def _wait_for_kernel_idle(page, js: str, name: str, log: Path) -> None:
    """Wait until the page shows the notebook's kernel idle; fail at once, with the server's words, if the server
    could not start the kernel, and with the end of its log at the time limit."""
    start = log.stat().st_size if log.is_file() else 0  # what this test's kernel wrote, not an earlier one's
    deadline = time.monotonic() + SLOW / 1000
    while not page.evaluate(_KERNEL_IDLE % js, name):
        with open(log, errors="replace") as file:
            file.seek(start)
            text = file.read()
        failed = text.find("Failed to run command")  # jupyter_client's launcher: the kernel's process did not start
        if failed >= 0:
            pytest.fail(f"the server could not start {name}'s kernel: {text[failed:failed + 1500]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{name}'s kernel was not idle within {SLOW // 1000} s; the server's log ends: {text[-1500:]}")
        page.wait_for_timeout(500)


def _run_all_cells(page, url: str, token: str, name: str, front_end: str, log: Path) -> None:
    """Open the notebook (in JupyterLab in a workspace of its own: no tab of an earlier run), wait for its kernel
    to be idle (and in the classic Notebook for its widget manager to load), then Run All; returns once its first
    cell has started."""
    js = FRONT_ENDS[front_end]
    if front_end == "lab":
        page.goto(f"{url}/lab/workspaces/{Path(name).stem}/tree/{name}?reset&token={token}", timeout=SLOW)
    else:
        page.goto(f"{url}/notebooks/{name}?token={token}", timeout=SLOW)
    _wait_for_kernel_idle(page, js, name, log)
    if front_end == "lab":
        page.evaluate(f"name => {{ {js} app.shell.activateById(panel.id);"
                      " app.commands.execute('notebook:run-all-cells'); }", name)
    else:
        # evaluate, not wait_for_function: that would take the predicate's promise for true at once
        deadline = time.monotonic() + SLOW / 1000
        while not page.evaluate(_WIDGET_MANAGER_LOADED % js, name):
            if time.monotonic() > deadline:
                pytest.fail(f"ipywidgets 7's widget manager had no answer from the kernel within {SLOW // 1000} s")
            page.wait_for_timeout(200)
        page.evaluate("() => Jupyter.notebook.execute_all_cells()")
    page.wait_for_function(_RUNNING % js, arg=name, timeout=SLOW)


def _shut_down_kernels(url: str, token: str) -> None:
    """The kernels this test's own server started: one notebook 07 at a time in memory."""
    with urllib.request.urlopen(f"{url}/api/kernels?token={token}", timeout=30) as answer:
        kernels = json.load(answer)
    for kernel in kernels:
        request = urllib.request.Request(f"{url}/api/kernels/{kernel['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(request, timeout=60).close()


CLICK_TIME = 30_000  # ms: the default model draws its eight pictures in seconds


# The ipywidgets 7 case was an expected failure twice over, each time for the test's own fault, not the kit's: its
# Run All raced ipywidgets 7's widget manager (jupyter-widgets/ipywidgets#3770; _WIDGET_MANAGER_LOADED waits it out),
# and under `make browser-test` its kernel's python was a relative path that names nothing where the classic server
# starts kernels (WIDGETS7_PYTHON). See docs/results.md for the runs since.
@pytest.mark.parametrize("kernel", ["ipywidgets8", "ipywidgets7"])
def test_notebook_07_demo_draws_pictures_with_its_default_model(browser, folder, request, kernel):
    python, front_end = KERNELS[kernel]
    if not Path(python).is_file():
        pytest.fail(f"no python at {python} for the {kernel} kernel: make widgets7")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    nb = demo_of_notebook_07()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    name = f"07_demo_{kernel}.ipynb"  # a copy: the front end saves what it runs, and notebooks/ stays without outputs
    nbformat.write(nb, folder / name)
    url, token = request.getfixturevalue(front_end)  # the server starts when its first kernel needs it
    js = FRONT_ENDS[front_end]
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    console = []  # the page's errors: why a widget is not drawn
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console.append(str(error)))
    BUILD.mkdir(exist_ok=True)
    try:
        started = time.monotonic()
        _run_all_cells(page, url, token, name, front_end, folder / SERVER_LOGS[front_end])
        notebook = page.locator(".jp-NotebookPanel:visible, #notebook-container").first
        done = page.wait_for_function(_DEMO_OR_ERROR % js, arg=name, timeout=DEMO_07_TIME).json_value()
        button = notebook.locator("button", has_text=re.compile(r"^\s*Generate\s*$"))
        if done == "ran":
            try:
                button.first.wait_for(timeout=60_000)
                done = "demo"
            except PlaywrightTimeout:  # what the demo cell shows instead: an unrendered widget says why
                last = notebook.locator(".jp-Cell, .cell").last
                last.scroll_into_view_if_needed()
                for error in last.locator(".jupyter-widgets-error-widget").all():
                    error.click()  # the widget manager's error message, in place of the widget
                done = (f"every cell ran but no Generate button is drawn; the demo cell shows {last.inner_text()!r};"
                        f" the page's errors: {console[-5:]}")
        assert done == "demo", f"notebook 07's demo cells failed under {kernel}: {done}"
        print(f"{kernel} in {front_end}: the demo drawn {time.monotonic() - started:.0f} s after opening the notebook")
        assert button.count() == 1, (f"{button.count()} Generate buttons: the demo is shown once (none: its widgets "
                                     f"left the page after they were drawn; the page's errors: {console[-5:]})")
        default = notebook.locator(".widget-dropdown select").first.input_value()
        chosen = re.search(r"the Model menu opens on: (.*)", page.evaluate(_PRINTED % js, name))
        assert chosen and chosen.group(1).strip() == default, \
            f"the menu opens on {default!r}, widgets.default_model chose {chosen and chosen.group(1)!r}"
        # ipywidgets 8's Output view is .widget-output; 7's in the classic Notebook is .jupyter-widgets-output-area
        output = notebook.locator(".widget-output, .jupyter-widgets-output-area").first
        # The demo opens on a grid, never blank, in its Output widget (not the cell's own output below it)
        output.locator("img").first.wait_for(timeout=60_000)
        output.locator("img").evaluate_all("images => images.forEach(image => image.dataset.before = '1')")
        button.click()
        output.locator("img:not([data-before]), :text('Cannot generate')").first.wait_for(timeout=CLICK_TIME)
        assert "Cannot generate" not in output.inner_text(), f"{default}: {output.inner_text()}"
        png = _data_url_png(output.locator("img:not([data-before])").last.get_attribute("src"))
        (BUILD / f"browser-demo-{kernel}.png").write_bytes(png)
        spreads = [round(float(tile.std()), 1) for tile in _tiles(png)]
        assert len(spreads) >= 2, f"the grid of {default!r} was not cut into its pictures: {spreads}"
        assert min(spreads) > FLAT_STD, (f"the default model {default!r} draws flat pictures: pixel standard "
                                         f"deviations {spreads}, a grey square's is about 0, expected > {FLAT_STD}")
        print(f"{kernel}: {default!r} drew {len(spreads)} pictures, pixel standard deviations {spreads}, "
              f"{time.monotonic() - started:.0f} s in all")
        button.scroll_into_view_if_needed()  # JupyterLab scrolls inside the page: a full-page shot shows no more
        page.screenshot(path=str(BUILD / f"browser-demo-{kernel}-page.png"))
    except Exception:
        page.screenshot(path=str(BUILD / f"browser-demo-{kernel}-failed.png"))
        raise
    finally:
        page.close()
        _shut_down_kernels(url, token)


def _offline_page(browser) -> tuple:
    """A page whose every request off this machine is aborted; returns it and the list of scripts, styles, fonts
    and data it tried to fetch from elsewhere."""
    page = browser.new_page()
    tried = []

    def route(request_route):
        address = urllib.parse.urlsplit(request_route.request.url)
        if address.scheme in ("file", "data", "blob") or address.hostname in ("127.0.0.1", "localhost"):
            request_route.continue_()
        else:  # what the page needs to render: the Colab badge (an image link, its alt text offline) is not
            if request_route.request.resource_type in ("script", "stylesheet", "font", "xhr", "fetch"):
                tried.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    return page, tried


def _check_offline_page(page, tried: list, html: Path) -> None:
    """Maths typeset by the local MathJax, no raw TeX left, no request off the machine; widget outputs shown as
    what they displayed (an image that is not blank)."""
    page.goto(html.as_uri())
    assert page.evaluate("() => !!(window.MathJax && window.MathJax.Hub)"), f"{html.name}: MathJax did not load"
    page.evaluate("() => new Promise(done => MathJax.Hub.Queue(() => done(true)))")  # after the typesetting
    notebook = nbformat.read(html.with_suffix(".ipynb"), as_version=4)
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    text = "\n".join(page.locator(".jp-RenderedMarkdown").all_inner_texts())
    assert "Math Processing Error" not in text, f"{html.name}: MathJax failed on some maths"
    if re.search(r"\$[^$]+\$", markdown):
        assert page.locator(".MathJax, .MathJax_Display").count() > 0, f"{html.name}: its maths was not typeset"
    raw = re.findall(r"\$\$|\$[^$\n]*[\\^_][^$\n]*\$", text)
    assert not raw, f"{html.name} shows raw TeX: {raw[:3]}"
    assert not tried, f"{html.name} asked for {tried[:3]} (blocked: no CDN)"
    for cell in page.locator(".jp-Cell", has_text="Interactive widgets").all():
        images = cell.locator("img")
        assert images.count() > 0, f"{html.name}: a widget output shows no image"
        picture = np.asarray(Image.open(io.BytesIO(_data_url_png(images.last.get_attribute("src")))).convert("L"))
        assert (picture < 245).mean() > 0.2, f"{html.name}: the widget output's image is blank"


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory):
    """The stand-in demo notebook with some maths, executed and written by `make course`'s own code."""
    from tools import course

    out = tmp_path_factory.mktemp("course")
    (out / "notebooks").mkdir()
    course.copy_mathjax(out)
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("A loss $\\log D(x) + \\log(1 - D(G(z)))$ and $$x^2_{i}$$")]
        + [nbformat.v4.new_code_cell(c) for c in DEMO_CELLS],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, out / "demo.ipynb")
    backend = os.environ.pop("MPLBACKEND", None)  # as in the lab: Agg (conftest.py) would draw nothing
    try:
        ok, _, error = course.run_notebook(out / "demo.ipynb", out / "notebooks", timeout=600)
    finally:
        if backend is not None:
            os.environ["MPLBACKEND"] = backend
    assert ok, error
    return out / "notebooks" / "demo.html"


def test_pages_read_offline(browser, demo_page):
    """build/'s pages, and the demo's page made the same way, with every request off this machine aborted."""
    index = BUILD / "index.html"
    if not index.is_file():
        pytest.fail(f"{index} is missing: run `make course` first")
    pages = [demo_page] + sorted((BUILD / "notebooks").glob("*.html"))
    for html in pages:
        page, tried = _offline_page(browser)
        try:
            _check_offline_page(page, tried, html)
            if html == demo_page:
                assert page.locator(".jp-Cell", has_text="Interactive widgets").count() == 1, \
                    "the demo's page does not show its widgets' output"
                page.screenshot(path=str(BUILD / "browser-offline-demo.png"), full_page=True)
        finally:
            page.close()


def test_course_index_links_every_notebook(browser):
    index = BUILD / "index.html"
    if not index.is_file():
        pytest.fail(f"{index} is missing: run `make course` first")
    page = browser.new_page()
    page.goto(index.as_uri())
    links = page.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    pages = [link for link in links if link.endswith(".html")]
    assert pages, "build/index.html links no notebook"
    rows = page.locator("tr").count() - 1
    assert len(pages) == rows, f"{rows} notebooks listed but {len(pages)} page links"
    failed = page.locator("td", has_text=re.compile("^FAILED")).all_inner_texts()
    assert not failed, f"build/index.html lists failed notebooks: {failed}"
    for link in links:
        target = (BUILD / link).resolve()
        assert target.is_file(), f"build/index.html links {link}, which does not exist"
        if link.endswith(".html"):
            page.goto(target.as_uri())
            assert page.locator(".jp-Cell").count() > 0, f"{link} shows no notebook cells"
    page.goto(index.as_uri())
    page.screenshot(path=str(BUILD / "browser-index.png"), full_page=True)
    page.close()
