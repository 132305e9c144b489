"""What a student sees, in a real browser: JupyterLab running notebook 07's demo, and build/index.html.

Run by `make browser-test` (not collected by `make test`: the file name is not test_*). Debian's chromium is
driven by Playwright (its own browser download is not used). Without a browser this fails with the reason.

- Notebook 07's demo runs in JupyterLab twice: with the kit's ipywidgets 8 and with a kernel at Colab's ipywidgets
  7.7.1 (the venv `make widgets7` builds: that version over the kit's venv). The first Generate click with the
  menu's default model must draw pictures, not flat squares.
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
NOTEBOOK_07_TIME = 900_000  # ms: notebook 07 in fast mode trains two tiny GANs and two judges before its demo
# A kernel at Colab's ipywidgets (7.7.1): `make widgets7` builds it, WIDGETS7_PYTHON names its python.
WIDGETS7_PYTHON = os.environ.get("T2I_WIDGETS7_PYTHON", str(ROOT / ".venv-widgets7" / "bin" / "python"))
KERNELS = {"ipywidgets8": sys.executable, "ipywidgets7": WIDGETS7_PYTHON}
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
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 serving a folder with the demo notebook; yields its base URL and token."""
    folder = tmp_path_factory.mktemp("lab")
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}  # no kernel dialog
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in DEMO_CELLS],
                                            metadata={"kernelspec": kernel}), folder / "demo.ipynb")
    for name, python in KERNELS.items():  # one kernelspec per ipywidgets version, found through JUPYTER_PATH
        spec = folder / "jupyter" / "kernels" / name
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": name, "language": "python"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "JUPYTER_PATH": os.pathsep.join([str(folder / "jupyter"), os.environ.get("JUPYTER_PATH", "")])}
    env.pop("MPLBACKEND", None)  # a student's kernel draws inline; Agg (set by conftest.py) would draw nothing
    with open(folder / "server.log", "w") as log:  # the child keeps its own copy of the file
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
             f"--port={port}", f"--ServerApp.root_dir={folder}", f"--IdentityProvider.token={token}",
             "--LabApp.expose_app_in_browser=True"],  # window.jupyterapp: run cells by command, not by menu
            env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"jupyter lab exited: {(folder / 'server.log').read_text()[-2000:]}")
                time.sleep(1)
        else:
            pytest.fail("jupyter lab did not answer on 127.0.0.1 within 2 minutes")
        yield url, token, folder
    finally:
        server.terminate()
        server.wait(timeout=30)


def _tiles(png: bytes) -> list[np.ndarray]:
    """The pictures of a demo grid as drawn in its figure: the grid is the block of mostly non-white rows and
    columns (the title's text covers less), cut along the white lines image_grid puts between its pictures."""
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype("float32")
    ink = ~(picture > 245).all(axis=2)
    rows = np.flatnonzero(ink.mean(axis=1) > 0.5)
    assert rows.size, "the figure holds no grid"
    block = ink[rows[0] : rows[-1] + 1]
    cols = np.flatnonzero(block.mean(axis=0) > 0.5)
    block = block[:, cols[0] : cols[-1] + 1]
    pixels = picture[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    def runs(filled):  # [start, stop) of each run of filled lines at least 8 pixels long
        edges = np.flatnonzero(np.diff(np.concatenate([[0], filled.astype(int), [0]])))
        return [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= 8]

    margin = 2  # the resampled edge of a picture against the white line is not the picture
    return [pixels[r0 + margin : r1 - margin, c0 + margin : c1 - margin]
            for r0, r1 in runs(block.mean(axis=1) > 0.9) for c0, c1 in runs(block.mean(axis=0) > 0.9)]


def _data_url_png(src: str) -> bytes:
    assert src and src.startswith("data:image/png;base64,"), f"not an inline PNG: {str(src)[:60]}"
    return base64.b64decode(src.split(",", 1)[1])


def _run_all_cells(page, url: str, token: str, name: str) -> None:
    page.goto(f"{url}/lab/tree/{name}?token={token}", timeout=SLOW)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=SLOW)
    page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('notebook:run-all-cells')",
                           timeout=SLOW)
    page.wait_for_timeout(2000)  # the notebook panel takes focus, so the command finds it
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")


def _shut_down_kernels(url: str, token: str) -> None:
    """The kernels this test's own server started: one notebook 07 at a time in memory."""
    with urllib.request.urlopen(f"{url}/api/kernels?token={token}", timeout=30) as answer:
        kernels = json.load(answer)
    for kernel in kernels:
        request = urllib.request.Request(f"{url}/api/kernels/{kernel['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(request, timeout=60).close()


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_notebook_07_demo_draws_pictures_with_its_default_model(browser, lab, kernel):
    url, token, folder = lab
    if not Path(KERNELS[kernel]).is_file():
        pytest.fail(f"no python at {KERNELS[kernel]} for the {kernel} kernel: make widgets7")
    nb = nbformat.read(NOTEBOOK_07, as_version=4)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    name = f"07_{kernel}.ipynb"  # a copy: JupyterLab saves what it runs, and notebooks/ stays without outputs
    nbformat.write(nb, folder / name)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    BUILD.mkdir(exist_ok=True)
    try:
        _run_all_cells(page, url, token, name)
        button = page.locator("button.jupyter-button", has_text="Generate")
        button.wait_for(timeout=NOTEBOOK_07_TIME)
        assert button.count() == 1  # the demo is shown once
        default = page.locator(".widget-dropdown select").first.input_value()
        output = page.locator(".widget-output").first
        output.locator("img").first.wait_for(timeout=SLOW)  # the demo opens on a grid, never blank
        output.locator("img").evaluate_all("images => images.forEach(image => image.dataset.before = '1')")
        button.click()
        page.wait_for_function(
            "() => { const out = document.querySelector('.widget-output');"
            " return [...out.querySelectorAll('img')].some(image => !image.dataset.before)"
            " || out.innerText.includes('Cannot generate'); }", timeout=SLOW)
        assert "Cannot generate" not in output.inner_text(), f"{default}: {output.inner_text()}"
        png = _data_url_png(output.locator("img:not([data-before])").last.get_attribute("src"))
        (BUILD / f"browser-demo-{kernel}.png").write_bytes(png)
        spreads = [round(float(tile.std()), 1) for tile in _tiles(png)]
        assert len(spreads) >= 2, f"the grid of {default!r} was not cut into its pictures: {spreads}"
        assert min(spreads) > FLAT_STD, (f"the default model {default!r} draws flat pictures: pixel standard "
                                         f"deviations {spreads}, a grey square's is about 0, expected > {FLAT_STD}")
        page.screenshot(path=str(BUILD / f"browser-demo-{kernel}.png".replace(".png", "-page.png")), full_page=True)
    except Exception:
        page.screenshot(path=str(BUILD / f"browser-demo-{kernel}-failed.png"), full_page=True)
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
