"""JupyterLab in a real browser: notebook 03 run by a learner's clicks, in Debian's Chromium.

Starts `jupyter lab` headless on loopback against the test cluster, opens notebook 03 through
Playwright, runs all cells from the Run menu, and checks that the request-spread plot and the
replica slider appear. The screenshot is kept in tests/artifacts/ for a person to look at.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import labtools
import pytest

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
NOTEBOOK = "03_services_discovery_and_load_balancing.ipynb"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Flags for a headless Chromium on a machine without internet (see the machine's notes).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyter(cluster, tmp_path):
    labtools.require_chromium(CHROMIUM)
    work = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", work)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                             f"--port={port}", "--ServerApp.token=k8snb", f"--ServerApp.root_dir={work}",
                             "--allow-root"], env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token=k8snb", timeout=2):
                break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "JupyterLab did not start"
            time.sleep(0.5)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_notebook_03_runs_in_chromium_with_plot_and_slider(jupyter):
    playwright = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{jupyter}/lab/tree/{NOTEBOOK}?token=k8snb", timeout=60_000)
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], "
                               ".jp-Toolbar-kernelStatus, .jp-KernelStatus", timeout=60_000)
        # A fresh JupyterLab may ask to confirm the notebook's kernel (Python 3): accept it, as a
        # learner would.
        try:
            page.click(".jp-Dialog .jp-mod-accept", timeout=15_000)
        except playwright.TimeoutError:
            pass
        page.click(".lm-MenuBar-itemLabel:text-is('Run')", timeout=10_000)
        page.click(".lm-Menu-item[data-command='runmenu:run-all']", timeout=10_000)
        # The slider is drawn by the widget manager once the explorer cell has run.
        try:
            page.wait_for_selector(".jp-OutputArea-output .widget-slider, .jp-OutputArea-output .slider-container",
                                   timeout=420_000)
        finally:
            page.screenshot(path=str(ARTIFACTS / "notebook03-last.png"))
        page.wait_for_selector(".jp-OutputArea-output img[src^='data:image/png']", timeout=60_000)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] "
                              ":text('Traceback')").count()
        slider = page.locator(".widget-slider, .slider-container").first
        slider.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "notebook03-slider.png"))
        images = page.locator(".jp-OutputArea-output img[src^='data:image/png']").count()
        browser.close()
    assert errors == 0
    assert images >= 1
