"""Binder, simulated here: the Binder environment's pip section, binder/postBuild and binder/start run
as a non-root user in a fresh virtual environment. postBuild downloads from a loopback mirror laid
out exactly like the upstream release pages (dl.k8s.io, etcd's and kwok's GitHub releases: the same
paths and asset names, and nothing else: no checksum file for kwok, no kind), filled from the
binaries built here. JupyterLab must answer within 5 s of `start`; notebook 00 then waits for the lab
and connects to it (simulated nodes).
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import pwd
import re
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.request
from pathlib import Path

import labtools
import pytest
import yaml

from k8snb.lab import binaries

pytestmark = pytest.mark.binder

ROOT = Path(__file__).resolve().parents[2]
USER = "nobody"
JUPYTER_PORT, API_PORT, ETCD_PORT = 18888, 6943, 12879
#: A Python the non-root user can run (the test's own may live under /root). Binder brings its own.
BASE_PYTHON = "/usr/bin/python3"
#: repo2docker's budget for `start` is seconds; JupyterHub's spawn timeout is 30 s.
START_BUDGET = 5.0
#: pip's cache for the non-root user, kept between runs so that the test does not download every
#: wheel again (the pip section still installs as written).
PIP_CACHE = Path("/tmp/k8snb-binder-pip-cache")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_release_mirror(root: Path, pins: Path) -> set[str]:
    """The upstream release layout for the kwok lab, from the cached binaries; returns its paths.

    Kubernetes: dl.k8s.io/release/<v>/bin/linux/amd64/<name> and <name>.sha256 (the bare digest).
    etcd: github.com/etcd-io/etcd/releases/download/<v>/etcd-<v>-linux-amd64.tar.gz (a directory
    etcd-<v>-linux-amd64/ inside) and SHA256SUMS (`<digest>  <asset>` lines).
    kwok: github.com/kubernetes-sigs/kwok/releases/download/<v>/kwok-linux-amd64 only; its digest
    goes into `pins`, the test's stand-in for recipes/release-sums.txt (the kwok built here is not
    the official binary, so the official pin would refuse it, as it must).
    """
    v = binaries.pinned_versions()
    k8s, etcd, kwok = v["K8S_VERSION"], v["ETCD_VERSION"], v["KWOK_VERSION"]
    cached = binaries.bin_dir(k8s)
    k8s_dir = root / "release" / k8s / "bin" / "linux" / "amd64"
    k8s_dir.mkdir(parents=True)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"):
        data = (cached / name).read_bytes()
        (k8s_dir / name).write_bytes(data)
        (k8s_dir / f"{name}.sha256").write_text(_sha(data))
    etcd_dir = root / "etcd-io" / "etcd" / "releases" / "download" / etcd
    etcd_dir.mkdir(parents=True)
    asset = f"etcd-{etcd}-linux-amd64.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        tar.add(cached / "etcd", arcname=f"etcd-{etcd}-linux-amd64/etcd")
    (etcd_dir / asset).write_bytes(buf.getvalue())
    (etcd_dir / "SHA256SUMS").write_text(f"{_sha(buf.getvalue())}  {asset}\n")
    kwok_dir = root / "kubernetes-sigs" / "kwok" / "releases" / "download" / kwok
    kwok_dir.mkdir(parents=True)
    data = (cached / "kwok").read_bytes()
    (kwok_dir / "kwok-linux-amd64").write_bytes(data)
    pins.write_text(f"{_sha(data)}  kubernetes-sigs/kwok/releases/download/{kwok}/kwok-linux-amd64\n")
    return {"/" + str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def mirror(tmp_path):
    """Serve the release layout on loopback; yields (base URL, served paths, request log)."""
    version = binaries.pinned_versions()["K8S_VERSION"]
    if binaries.check_cached(version, binaries.CONTROL_PLANE + binaries.KWOK):
        pytest.fail("the lab's binaries (with kwok) are not built: run `make lab` and "
                    "`bash k8snb/lab/recipes/build.sh kwok` first")
    root = tmp_path / "upstream"
    pins = Path(f"/tmp/k8snb-binder-pins-{os.getpid()}.txt")
    paths = build_release_mirror(root, pins)
    pins.chmod(0o644)
    requests: list[tuple[str, int]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_request(self, code="-", size="-"):
            requests.append((self.path, int(code) if str(code).isdigit() else 0))

        def log_message(self, *a, **k):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", paths, requests, pins
    server.shutdown()
    server.server_close()
    pins.unlink(missing_ok=True)


@pytest.fixture
def binder_home():
    """A home directory for the non-root user holding a copy of the repository (as Binder has)."""
    if os.geteuid() != 0:
        pytest.skip("simulating Binder's non-root user needs root to switch users")
    home = Path(f"/tmp/k8snb-binder-{os.getpid()}")
    shutil.rmtree(home, ignore_errors=True)
    repo = home / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".venv", ".git", "handouts", "__pycache__", "build",
                                                             "*.egg-info", ".ipynb_checkpoints"))
    pw = pwd.getpwnam(USER)
    PIP_CACHE.mkdir(exist_ok=True)
    for path in [home, *home.rglob("*"), PIP_CACHE]:
        os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def as_user(argv, env, **kw):
    return subprocess.run(argv, env=env, user=USER, group="nogroup", extra_groups=[], capture_output=True,
                          text=True, **kw)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_postbuild_and_start_as_non_root(binder_home, mirror):
    base, served, requests, pins = mirror
    repo, venv = binder_home / "repo", binder_home / "venv"
    env = {"HOME": str(binder_home), "PATH": f"{venv}/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "PIP_CACHE_DIR": str(PIP_CACHE), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "K8SNB_RELEASE_BASE": f"{base}/release", "K8SNB_GITHUB_BASE": base,
           "K8SNB_PINNED_SUMS": str(pins),
           "K8SNB_LAB_ARGS": f"--port {API_PORT} --etcd-port {ETCD_PORT}"}
    made = as_user([BASE_PYTHON, "-m", "venv", str(venv)], env, timeout=120)
    assert made.returncode == 0, made.stderr
    # What repo2docker does with binder/environment.yml's pip section: install it as written.
    spec = yaml.safe_load((repo / "binder" / "environment.yml").read_text())
    pip_lines = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    pip = as_user([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *pip_lines], env, timeout=1800)
    assert pip.returncode == 0, pip.stderr[-3000:]
    probe = as_user([str(venv / "bin" / "python"), "-c",
                     "import kubernetes, pandas, scipy, msgspec, yaml, tqdm, cryptography, ipywidgets, "
                     "matplotlib, jupyterlab; print(kubernetes.__version__)"], env, timeout=300)
    assert probe.returncode == 0 and probe.stdout.strip().split(".")[0] == "37", probe.stdout + probe.stderr

    post = as_user(["bash", str(repo / "binder" / "postBuild")], env, cwd=repo, timeout=900)
    assert post.returncode == 0, post.stdout[-2000:] + post.stderr[-2000:]
    for name in binaries.CONTROL_PLANE + binaries.KWOK:
        assert f"downloaded {name} (" in post.stdout and "sha256 ok" in post.stdout, post.stdout
    assert (binder_home / ".local" / "bin" / "kubectl").exists()
    # Every asset came from its upstream path, and nothing else was asked for.
    got = {path for path, code in requests if code == 200}
    assert got == served, f"not fetched: {served - got}, unexpected: {got - served}"
    assert all(code == 200 for path, code in requests), requests

    t0 = time.monotonic()
    jupyter = subprocess.Popen(
        ["bash", str(repo / "binder" / "start"), "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
         f"--port={JUPYTER_PORT}", "--ServerApp.token=k8snb", f"--ServerApp.root_dir={repo}"],
        env=env, user=USER, group="nogroup", extra_groups=[], cwd=repo,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = binder_home / "k8snb-lab.log"
    try:
        status, answered = None, None
        while time.monotonic() - t0 < 60 and status != 200:
            assert jupyter.poll() is None, jupyter.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{JUPYTER_PORT}/api/status?token=k8snb",
                                            timeout=1) as resp:
                    status, answered = resp.status, time.monotonic() - t0
            except OSError:
                time.sleep(0.1)
        assert status == 200, "JupyterLab did not answer within 60 s"
        print(f"\nbinder: start -> JupyterLab answering: {answered:.2f} s")
        assert answered <= START_BUDGET, f"JupyterLab answered {answered:.1f} s after start (budget {START_BUDGET} s)"
        with urllib.request.urlopen(f"http://127.0.0.1:{JUPYTER_PORT}/lab?token=k8snb", timeout=10) as resp:
            assert resp.status == 200 and b"JupyterLab" in resp.read()

        # The kernel JupyterLab starts inherits the server's environment: run notebook 00 with it.
        server_env = _environ(jupyter.pid)
        assert server_env["K8SNB_LAB_LOG"] == str(log)
        assert server_env["KUBECONFIG"] == str(binder_home / ".local" / "state" / "k8snb" / "lab" / "kubeconfig")
        run_env = dict(env, KUBECONFIG=server_env["KUBECONFIG"], K8SNB_LAB_LOG=server_env["K8SNB_LAB_LOG"])
        out = binder_home / "00_setup.out.ipynb"
        labtools.count_notebook_run("00_setup")
        executed = as_user([str(venv / "bin" / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
                            "--ExecutePreprocessor.timeout=400", f"--output={out}",
                            str(repo / "notebooks" / "00_setup.ipynb")], run_env, cwd=repo / "notebooks",
                           timeout=900)
        assert executed.returncode == 0, executed.stderr[-3000:] + "\nlab log:\n" + log.read_text()[-2000:]
        text = json.dumps(json.loads(out.read_text())["cells"])
        assert "Ready after waiting" in text and "simulated nodes" in text and "MODELED" in text
        assert "connected to context 'k8snb-lab'" in text
        lab_log = log.read_text()
        assert lab_log.rstrip().endswith("k8snb-lab-exit 0"), lab_log
        ready = re.search(r"start to Ready ([\d.]+) s", lab_log)
        print(f"binder: lab (kwok) start to Ready: {ready.group(1) if ready else '?'} s")
    finally:
        jupyter.terminate()
        try:
            jupyter.wait(timeout=30)
        except subprocess.TimeoutExpired:
            jupyter.kill()
        # The lab starts in the background: let `lab up` finish (it holds the lab's lock) before `down`.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and "k8snb-lab-exit" not in (log.read_text() if log.exists() else "x"):
            time.sleep(0.5)
        down = as_user([str(venv / "bin" / "k8snb"), "lab", "down"], env, timeout=120)
        assert down.returncode == 0, down.stderr
