"""The real-nodes lab beside a running Docker engine (Debian's docker.io), as on many learners' machines.

A Docker engine loads br_netfilter, sets the FORWARD policy to DROP and adds its own chains; the
lab must still carry traffic (its rules accept its bridge's traffic explicitly), and `lab down`
must leave Docker's chains exactly as they were. Opt-in (it starts an engine and a lab):
K8SNB_TEST_DOCKER=1, as root, with no lab running; `.ci/run` runs it after installing docker.io
(`k8snb/lab/recipes/host-setup.sh docker.io`). An engine that already answers on the default socket
is used as it is and never stopped; otherwise the test starts Debian's dockerd with its own
socket, pidfile, exec and data roots in a temporary directory, and stops it by PID.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from k8snb import lab
from k8snb.lab import processes
from k8snb.lab import wait as lab_wait
from k8snb.lab.plan import LabPlan
from labtools import firewall_rules, remove_rules_added_since

#: It starts a Docker engine and a lab.
pytestmark = [pytest.mark.realnodes, pytest.mark.optin("K8SNB_TEST_DOCKER")]

DEBIAN_DOCKERD = Path("/usr/sbin/dockerd")
ROOT = Path(__file__).resolve().parents[2]


def _answers(host: str) -> bool:
    proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True,
                          env={**os.environ, "DOCKER_HOST": host}, timeout=15)
    return proc.returncode == 0


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def _forward_policy() -> str:
    rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True).stdout
    return rules.splitlines()[0].split()[2]  # "-P FORWARD ACCEPT"


def docker_rules() -> dict[str, list[str]]:
    """Docker's part of the host firewall: its chains' rules, the jumps into them, FORWARD's policy."""
    out = {}
    for tool in ("iptables-save", "ip6tables-save"):
        text = subprocess.run([tool], capture_output=True, text=True, check=True).stdout
        out[tool] = [line.split(" [")[0] for line in text.splitlines()  # chain lines without counters
                     if "DOCKER" in line or line.startswith(":FORWARD") or line.startswith("*")]
    return out


@pytest.fixture(scope="module")
def engine():
    if _answers("unix:///var/run/docker.sock"):
        yield "unix:///var/run/docker.sock"  # the user's: used as it is, never stopped
        return
    if not DEBIAN_DOCKERD.exists():
        pytest.fail("Debian's docker.io is not installed: bash k8snb/lab/recipes/host-setup.sh docker.io")
    d = Path("/tmp") / f"k8snb-dk-{os.getpid()}"  # short: containerd's sockets live under the exec root
    d.mkdir(mode=0o700)
    had_bridge = _link_exists("docker0")
    firewall = firewall_rules()
    host = f"unix://{d / 'docker.sock'}"
    processes.start(d, "dockerd", [str(DEBIAN_DOCKERD), "--host", host, "--data-root", str(d / "data"),
                                   "--exec-root", str(d / "exec"), "--pidfile", str(d / "dockerd.pid")])
    try:
        lab_wait.until(lambda: _answers(host), timeout=60, interval=0.5,
                       failure=lambda: f"Debian's dockerd did not answer:\n{processes.log_tail(d, 'dockerd')}")
        yield host
    finally:
        processes.stop(d, "dockerd")
        if not had_bridge and _link_exists("docker0"):  # Docker leaves its bridge; this engine was ours
            subprocess.run(["ip", "link", "delete", "docker0"], check=False)
        remove_rules_added_since(firewall)  # and its rules (MASQUERADE from 172.17.0.0/16, FORWARD's docker0 rules)


@pytest.fixture(scope="module")
def lab_beside_docker(engine):
    if lab.status().running:
        pytest.fail("a lab already runs: this test starts its own (k8snb lab down first)")
    # Docker sets FORWARD's policy to DROP when it turns IP forwarding on itself; where forwarding
    # was on already (an earlier engine, kind) it leaves the policy alone. The lab must work with
    # DROP, so the test sets it as Docker would have, and puts the policy back afterwards.
    policy = _forward_policy()
    subprocess.run(["iptables", "-P", "FORWARD", "DROP"], check=True)
    before = docker_rules()
    try:
        lab.up(LabPlan(nodes_mode="real"))
        try:
            yield before
        finally:
            lab.down(quiet=True)
    finally:
        subprocess.run(["iptables", "-P", "FORWARD", policy], check=True)


def test_the_lab_carries_traffic_beside_docker(lab_beside_docker):
    """The lab's own acceptance and traffic tests, unchanged, with Docker's rules in place."""
    env = {**os.environ, "KUBECONFIG": str(lab.kubeconfig_path()), "K8SNB_REQUIRE_REAL": "1"}
    env.pop("K8SNB_TEST_LAB_DOWN", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/lab/test_realnodes.py", "tests/course/test_traffic_real.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_lab_down_leaves_dockers_chains_as_they_were(lab_beside_docker, engine):
    before = lab_beside_docker
    lab.down(quiet=True)
    assert docker_rules() == before
    assert _answers(engine), "the Docker engine stopped answering"
