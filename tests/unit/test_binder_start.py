"""binder/start returns at once: it launches the cluster in the background (stubbed here), exports
KUBECONFIG to the lab's kubeconfig path as k8snb computes it, and execs the given command."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from k8snb.lab import kubeconfig_path

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "binder" / "start"


def _stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _run_start(tmp_path: Path, extra_env: dict[str, str], docker_ok: bool = False):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    record = tmp_path / "argv"
    _stub(stubs, "k8snb", f'echo "$@" > {record}\necho "k8snb lab: Ready: 3 kwok nodes"\n')
    # A Docker daemon that answers changes nothing: Binder always starts the lab.
    _stub(stubs, "kind", f'echo "kind $@" >> {record}\n')
    _stub(stubs, "docker", "exit 0\n" if docker_ok else "exit 1\n")
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": f"{stubs}:/usr/bin:/bin", "LANG": "C.UTF-8", **extra_env}
    started = time.monotonic()
    out = subprocess.run(["bash", str(START), "bash", "-c", 'echo "KUBECONFIG=$KUBECONFIG LOG=$K8SNB_LAB_LOG"'],
                         env=env, capture_output=True, text=True, timeout=30)
    took = time.monotonic() - started
    log = home / "k8snb-lab.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "k8snb-lab-exit" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.05)
    return out, took, env, record, log


@pytest.mark.parametrize("extra", [{}, {"XDG_STATE_HOME": "/tmp/xdg-state"}, {"K8SNB_STATE": "/tmp/k8snb-st"}],
                         ids=["default", "xdg", "k8snb-state"])
def test_start_exports_the_labs_kubeconfig_and_returns_at_once(tmp_path, monkeypatch, extra):
    out, took, env, record, log = _run_start(tmp_path, extra)
    assert out.returncode == 0, out.stderr
    assert took < 5, f"binder/start took {took:.1f} s"
    for key in ("HOME", "XDG_STATE_HOME", "K8SNB_STATE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert f"KUBECONFIG={kubeconfig_path()} LOG={env['HOME']}/k8snb-lab.log" in out.stdout
    assert record.read_text().split() == ["lab", "up", "--nodes", "kwok"]
    text = log.read_text()
    assert "simulated nodes" in text.splitlines()[0]
    assert text.rstrip().endswith("k8snb-lab-exit 0")


def test_start_never_creates_a_kind_cluster_even_with_docker(tmp_path):
    out, _, _, record, _ = _run_start(tmp_path, {}, docker_ok=True)
    assert record.read_text().split() == ["lab", "up", "--nodes", "kwok"]


def test_start_passes_the_labs_extra_arguments(tmp_path):
    out, _, _, record, _ = _run_start(tmp_path, {"K8SNB_LAB_ARGS": "--port 6944 --etcd-port 12880"})
    assert record.read_text().split() == ["lab", "up", "--nodes", "kwok", "--port", "6944", "--etcd-port", "12880"]


def test_postbuild_and_start_are_executable():
    for script in ("postBuild", "start"):
        assert os.access(ROOT / "binder" / script, os.X_OK)
