"""Binder, simulated here: binder/postBuild and binder/start run as a non-root user in a fresh
virtual environment, downloading the lab's binaries from a loopback mirror (what public
mybinder.org gets from the official release URLs). JupyterLab must start and notebook 00 connect.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import pwd
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from k8snb.lab import binaries

pytestmark = pytest.mark.binder

ROOT = Path(__file__).resolve().parents[2]
USER = "nobody"
JUPYTER_PORT, API_PORT, ETCD_PORT = 18888, 6943, 12879
#: A Python the non-root user can run (the test's own may live under /root). Binder brings its own.
BASE_PYTHON = "/usr/bin/python3"


@pytest.fixture
def mirror(tmp_path):
    """Loopback HTTP mirror of the kwok-mode binaries: <name> and <name>.sha256."""
    version = binaries.pinned_versions()["K8S_VERSION"]
    names = binaries.CONTROL_PLANE + binaries.KWOK
    if binaries.check_cached(version, names):
        pytest.fail("the lab's binaries are not built: run `make lab` first")
    root = tmp_path / "mirror"
    root.mkdir()
    for name in names:
        src = binaries.bin_dir(version) / name
        shutil.copy(src, root / name)
        (root / f"{name}.sha256").write_text(hashlib.sha256(src.read_bytes()).hexdigest() + "\n")
    root.chmod(0o755)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def binder_home(tmp_path):
    """A home directory for the non-root user holding a copy of the repository (as Binder has)."""
    if os.geteuid() != 0:
        pytest.skip("simulating Binder's non-root user needs root to switch users")
    home = Path(f"/tmp/k8snb-binder-{os.getpid()}")
    shutil.rmtree(home, ignore_errors=True)
    repo = home / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".venv", ".git", "handouts", "__pycache__",
                                                             "*.egg-info", ".ipynb_checkpoints"))
    pw = pwd.getpwnam(USER)
    for path in [home, *home.rglob("*")]:
        os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def as_user(argv, env, **kw):
    return subprocess.run(argv, env=env, user=USER, group="nogroup", extra_groups=[], capture_output=True,
                          text=True, **kw)


def test_postbuild_and_start_as_non_root(binder_home, mirror):
    repo = binder_home / "repo"
    venv = binder_home / "venv"
    env = {"HOME": str(binder_home), "PATH": f"{venv}/bin:{binder_home}/.local/bin:/usr/bin:/bin",
           "LANG": "C.UTF-8", "K8SNB_DOWNLOAD_BASE": mirror, "K8SNB_KIND_URL": f"{mirror}/kind-not-here",
           "K8SNB_LAB_ARGS": f"--port {API_PORT} --etcd-port {ETCD_PORT}"}
    made = as_user([BASE_PYTHON, "-m", "venv", str(venv)], env, timeout=120)
    assert made.returncode == 0, made.stderr
    post = as_user(["bash", str(repo / "binder" / "postBuild")], env, cwd=repo, timeout=900)
    assert post.returncode == 0, post.stdout[-2000:] + post.stderr[-2000:]
    assert "downloaded kube-apiserver" in post.stdout and "sha256 ok" in post.stdout
    assert "kind could not be downloaded" in post.stdout
    assert (binder_home / ".local" / "bin" / "kubectl").exists()

    jupyter = subprocess.Popen(
        ["bash", str(repo / "binder" / "start"), "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
         f"--port={JUPYTER_PORT}", "--ServerApp.token=k8snb", f"--ServerApp.root_dir={repo}"],
        env=env, user=USER, group="nogroup", extra_groups=[], cwd=repo,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    kubeconfig = binder_home / ".local" / "state" / "k8snb" / "lab" / "kubeconfig"
    try:
        deadline = time.monotonic() + 240
        status = None
        while time.monotonic() < deadline and status != 200:
            assert jupyter.poll() is None, jupyter.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{JUPYTER_PORT}/api/status?token=k8snb",
                                            timeout=2) as resp:
                    status = resp.status
            except OSError:
                time.sleep(1)
        assert status == 200, "JupyterLab did not answer within 240 s"
        with urllib.request.urlopen(f"http://127.0.0.1:{JUPYTER_PORT}/lab?token=k8snb", timeout=10) as resp:
            assert resp.status == 200 and b"JupyterLab" in resp.read()

        run_env = dict(env, KUBECONFIG=str(kubeconfig))
        out = binder_home / "00_setup.out.ipynb"
        executed = as_user([str(venv / "bin" / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
                            "--ExecutePreprocessor.timeout=300", f"--output={out}",
                            str(repo / "notebooks" / "00_setup.ipynb")], run_env, cwd=repo / "notebooks",
                           timeout=600)
        assert executed.returncode == 0, executed.stderr[-3000:]
        text = json.dumps(json.loads(out.read_text())["cells"])
        assert "connected to context 'k8snb-lab'" in text
        assert "simulated" in text
    finally:
        jupyter.terminate()
        try:
            jupyter.wait(timeout=30)
        except subprocess.TimeoutExpired:
            jupyter.kill()
        down = as_user([str(venv / "bin" / "k8snb"), "lab", "down"], env, timeout=120)
        assert down.returncode == 0, down.stderr
