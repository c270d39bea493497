"""A learner's JupyterLab, in a real browser: notebook 03 Run All to its last cell as the
ServiceAccount bound only to the shipped learner RBAC, in Debian's Chromium; an action outside that
RBAC fails with a message that says what is missing.

Starts `jupyter lab` headless on loopback with the learner's kubeconfig, opens notebook 03 through
Playwright, runs all cells from the Run menu as a learner clicks, and waits until the last code cell
has its execution count. Screenshots are kept in tests/artifacts/ for a person to look at.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import labtools
import playwright.sync_api as playwright
import pytest
import yaml

import k8snb
from k8snb import classroom
from k8snb.errors import Forbidden

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
NOTEBOOK = "03_services_discovery_and_load_balancing.ipynb"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Flags for a headless Chromium on a machine without internet (see the machine's notes).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Every cell in the page (JupyterLab 4 otherwise renders only the cells near the viewport), so that
#: the prompts can be read down to the last one.
SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"}}
#: The prompts of the code cells: '[*]' queued or running, '[n]' done, '[ ]' never run.
PROMPTS = "() => Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')).map(e => e.textContent)"
TRACEBACK = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] :text('Traceback')"
#: Notebook 03 takes about 3 minutes on the lab; Run All must reach its last cell well within this.
RUN_ALL_TIMEOUT = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def learner_kubeconfig(cluster, tmp_path):
    """A kubeconfig for the ServiceAccount the shipped learner RBAC binds (TokenRequest, 1 hour)."""
    objs = k8snb.load("learner-rbac")
    for obj in objs:
        k8snb.apply(cluster, obj)
    req = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}
    token = cluster.api.request("POST", "/api/v1/namespaces/default/serviceaccounts/k8snb-learner/token",
                                body=req).json()["status"]["token"]
    path = tmp_path / "learner.kubeconfig"
    path.write_text(yaml.safe_dump(classroom.account_kubeconfig(cluster, "learner", "default", token)))
    yield path
    for obj in reversed(objs):
        if obj["kind"] != "Namespace":
            cluster.api.delete(k8snb.manifests.object_path(obj))


@pytest.fixture
def jupyter(learner_kubeconfig, tmp_path):
    """JupyterLab on loopback whose kernels talk to the cluster as the learner."""
    labtools.require_chromium(CHROMIUM)
    work = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", work)
    settings = tmp_path / "settings"
    for name, values in SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    port = _free_port()
    env = dict(os.environ, KUBECONFIG=str(learner_kubeconfig), JUPYTERLAB_SETTINGS_DIR=str(settings))
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                             f"--port={port}", "--ServerApp.token=k8snb", f"--ServerApp.root_dir={work}",
                             "--allow-root"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def test_the_learner_account_is_refused_outside_its_rbac(learner_kubeconfig, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(learner_kubeconfig))
    limited = k8snb.connect(quiet=True)
    assert limited.context == "learner"
    with pytest.raises(Forbidden, match=r"forbidden: .*kube-system.*learner RBAC"):
        k8snb.apply(limited, k8snb.load("clusterip-svc", "kube-system")[0])


def _run_all(page) -> list[str]:
    """Run All from the Run menu, as a learner clicks it; the code cells' prompts once the last one
    has run (or once a cell failed: Run All stops there)."""
    page.click(".lm-MenuBar-itemLabel:text-is('Run')", timeout=10_000)
    page.click(".lm-Menu-item[data-command='runmenu:run-all']", timeout=10_000)
    deadline = time.monotonic() + RUN_ALL_TIMEOUT
    while True:
        prompts = page.evaluate(PROMPTS)
        if page.locator(TRACEBACK).count():
            return prompts
        if prompts and all("*" not in x for x in prompts) and any(c.isdigit() for c in prompts[-1]):
            return prompts
        assert time.monotonic() < deadline, f"Run All did not reach the last cell in {RUN_ALL_TIMEOUT} s: {prompts[-3:]}"
        time.sleep(2)


def test_notebook_03_run_all_as_the_learner_in_chromium(jupyter):
    ARTIFACTS.mkdir(exist_ok=True)
    labtools.count_notebook_run(NOTEBOOK)
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
        try:
            prompts = _run_all(page)
        finally:
            page.screenshot(path=str(ARTIFACTS / "notebook03-learner-last.png"))
        errors = page.locator(TRACEBACK).all_inner_texts()
        images = page.locator(".jp-OutputArea-output img[src^='data:image/png']").count()
        sliders = page.locator(".jp-OutputArea-output .widget-slider, .jp-OutputArea-output .slider-container")
        slider_count = sliders.count()
        if slider_count:
            sliders.first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "notebook03-learner-slider.png"))
        browser.close()
    assert not errors, errors[0][-2000:]
    assert not [x for x in prompts if "[ ]" in x], "some code cells never ran"
    assert images >= 1 and slider_count >= 1, (images, slider_count)
