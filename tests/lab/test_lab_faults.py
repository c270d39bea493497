"""`k8snb lab up` interrupted at any stage leaves nothing that `lab down` does not remove.

Issue 12's second and fifth acceptance, on real nodes: `lab up` is killed (SIGKILL, then SIGTERM)
once the bridge exists, once the first control-plane process runs, once the first kubelet runs and
once CoreDNS is applied; `lab down` must then leave no namespace, link, route, iptables or
ip6tables rule, mount, process or cgroup, and a final `lab up` gives a working lab. `lab down`
after the state directory was deleted still removes the lab by its names. A state directory owned
by another user is refused before anything is signalled.

These tests start and stop real labs under the default names, so they cannot run beside the
suite's lab: opt in with K8SNB_TEST_FAULTS=1 (as root, no lab running; `.ci/run` runs them after
the suite's lab is down). Each start is bounded in time.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from labtools import leftovers

#: Root, no lab running: it interrupts real labs under the default names.
pytestmark = [pytest.mark.realnodes, pytest.mark.optin("K8SNB_TEST_FAULTS")]

NODES = ("k8snb-control-plane", "k8snb-worker", "k8snb-worker2")
UP_TIMEOUT = 300


@pytest.fixture
def state() -> Path:
    """A short state path: containerd's sockets live below it, and a Unix socket path has at most
    104 bytes (pytest's tmp_path is too deep)."""
    if os.geteuid() != 0:
        pytest.fail("K8SNB_TEST_FAULTS needs root")
    base = Path(tempfile.mkdtemp(prefix="k8snb-f-", dir="/tmp"))
    yield base / "state"
    shutil.rmtree(base, ignore_errors=True)


def _cli(state: Path, *args: str, timeout: float = UP_TIMEOUT) -> subprocess.CompletedProcess:
    env = dict(os.environ, K8SNB_STATE=str(state))
    env.pop("KUBECONFIG", None)
    return subprocess.run([sys.executable, "-m", "k8snb.cli", "lab", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _coredns_applied(lab: Path) -> bool:
    kubeconfig = lab / "kubeconfig"
    if not kubeconfig.exists() or not (lab / "run" / "kubelet-k8snb-worker2.pid").exists():
        return False
    kubectl = next(Path.home().glob(".cache/k8snb/*/bin/kubectl"), None) if not os.environ.get("K8SNB_CACHE") \
        else next(Path(os.environ["K8SNB_CACHE"]).glob("*/bin/kubectl"), None)
    proc = subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", "-n", "kube-system", "get",
                           "deployment", "coredns"], capture_output=True, timeout=10)
    return proc.returncode == 0


STAGES = {
    "bridge": lambda lab: Path("/sys/class/net/k8snb0").exists(),
    "control-plane": lambda lab: (lab / "run" / "etcd.pid").exists(),
    "kubelet": lambda lab: any((lab / "run").glob("kubelet-*.pid")),
    "coredns": _coredns_applied,
}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
@pytest.mark.parametrize("stage", list(STAGES))
def test_interrupted_up_then_down_leaves_nothing(state, stage, sig):
    lab = state / "lab"
    env = dict(os.environ, K8SNB_STATE=str(state))
    env.pop("KUBECONFIG", None)
    up = subprocess.Popen([sys.executable, "-m", "k8snb.cli", "lab", "up", "--nodes", "real"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + UP_TIMEOUT
    try:
        while not STAGES[stage](lab):
            assert up.poll() is None, f"lab up ended before stage {stage}: {up.stdout.read()[-2000:]}"
            assert time.monotonic() < deadline, f"stage {stage} not reached within {UP_TIMEOUT} s"
            time.sleep(0.05)
        up.send_signal(sig)
        up.wait(timeout=120)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    down = _cli(state, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(lab, NODES) == []


def test_down_after_the_state_directory_was_deleted_removes_the_lab_by_name(state):
    up = _cli(state, "up", "--nodes", "real")
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    shutil.rmtree(state / "lab", ignore_errors=True)  # what a user's `rm -rf ~/.local/state/k8snb` does
    down = _cli(state, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "removing them by name" in down.stdout, down.stdout
    assert leftovers(state / "lab", NODES) == []


def test_up_after_the_interruptions_gives_a_working_lab(state):
    up = _cli(state, "up", "--nodes", "real")
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        status = _cli(state, "status", timeout=60)
        assert status.returncode == 0 and "running" in status.stdout, status.stdout
    finally:
        down = _cli(state, "down")
    assert down.returncode == 0
    assert leftovers(state / "lab", NODES) == []


def test_a_state_directory_owned_by_another_user_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("K8SNB_TEST_FAULTS needs root")
    state = tmp_path / "planted"
    victim = subprocess.Popen(["sleep", "60"])
    try:
        # A state directory another user made, with a pidfile naming a process root must not signal.
        (state / "lab" / "run").mkdir(parents=True)
        pidfile = state / "lab" / "run" / "etcd.pid"
        pidfile.write_text(f"{victim.pid} 0 /usr/bin/sleep\n")
        for path in (state, state / "lab", state / "lab" / "run", pidfile):
            os.chown(path, 65534, 65534)
        for action in ("down", "status", "up"):
            proc = _cli(state, action, "--nodes", "kwok") if action == "up" else _cli(state, action)
            assert proc.returncode == 1, proc.stdout + proc.stderr
            assert "refusing to use" in proc.stderr and "belongs to uid 65534" in proc.stderr, proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1
        assert victim.poll() is None, "the planted PID was signalled"
    finally:
        victim.kill()
        victim.wait()
