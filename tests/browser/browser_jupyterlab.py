"""What a student sees, in a real browser: JupyterLab running notebook 07's demo, and build/index.html.

Run by `make browser-test` (not collected by `make test`: the file name is not test_*). Debian's chromium is
driven by Playwright (its own browser download is not used). Without a browser this fails with the reason.
"""

import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

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
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
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
        yield url, token
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_demo_generates_a_new_image_in_jupyterlab(browser, lab):
    url, token = lab
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    BUILD.mkdir(exist_ok=True)
    try:
        page.goto(f"{url}/lab/tree/demo.ipynb?token={token}", timeout=SLOW)
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=SLOW)
        page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('notebook:run-all-cells')",
                               timeout=SLOW)
        page.wait_for_timeout(2000)  # the notebook panel takes focus, so the command finds it
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        button = page.locator("button.jupyter-button", has_text="Generate")
        button.wait_for(timeout=SLOW)
        assert button.count() == 1  # the demo is shown once
        page.locator(".widget-text input").first.fill("a small blue flower with round petals")
        images = page.locator(".widget-output img")
        before = images.count()
        button.click()
        page.wait_for_function(f"document.querySelectorAll('.widget-output img').length > {before}", timeout=SLOW)
        assert "Cannot generate" not in page.locator(".widget-output").inner_text()  # the figure, not an error
        page.screenshot(path=str(BUILD / "browser-demo.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(BUILD / "browser-demo-failed.png"), full_page=True)
        raise
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
