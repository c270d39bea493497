"""The package works outside its checkout: a wheel built from this tree, installed into a fresh
venv, run from an empty directory, starts the lab (simulated nodes), takes the article's objects and
stops the lab. Everything the lab reads at run time (build recipes, pinned versions, image recipes,
configuration files) must therefore be inside the wheel.

It uses the binaries already in the cache (`make test` builds kwok first) and a private lab: its own
state directory and ports, so the suite's lab is not disturbed.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
PORT, ETCD_PORT = 6743, 12679
ARTICLE = """
import k8snb
c = k8snb.connect()
print(k8snb.article(c, namespace="wheel-test", nginx_namespace="wheel-test-nginx").to_string())
k8snb.wait_deployment(c, "nginx-hello", "wheel-test", timeout=120, progress=False)
print("installed at", k8snb.__file__)
"""


def _run(argv: list, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{argv[:3]} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def test_wheel_installed_outside_the_checkout_runs_the_lab(tmp_path):
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, ROOT], timeout=300)
    wheel = next(dist.glob("k8snb-*.whl"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], timeout=120)
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], timeout=600)

    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "PYTHONPATH")}
    env["K8SNB_STATE"] = str(tmp_path / "state")
    k8snb = venv / "bin" / "k8snb"
    up = _run([k8snb, "lab", "up", "--nodes", "kwok", "--port", PORT, "--etcd-port", ETCD_PORT],
              timeout=300, cwd=empty, env=env)
    try:
        assert "Ready: 3 kwok nodes" in up.stdout
        kubeconfig = _run([k8snb, "lab", "kubeconfig"], timeout=60, cwd=empty, env=env).stdout.strip()
        applied = _run([venv / "bin" / "python", "-c", ARTICLE], timeout=300, cwd=empty,
                       env=dict(env, KUBECONFIG=kubeconfig))
        for name in ("nginx-hello", "nginx-svc", "netshoot", "wheel-test-nginx"):
            assert name in applied.stdout
        # The package the lab ran from is the installed wheel, not this checkout.
        assert f"installed at {venv}" in applied.stdout
    finally:
        down = subprocess.run([str(k8snb), "lab", "down"], cwd=empty, env=env, capture_output=True, text=True,
                              timeout=120)
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
