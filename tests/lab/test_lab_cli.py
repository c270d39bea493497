"""`k8snb lab` as a learner runs it: idempotent up, honest status, clean down, one-line errors.

These tests start a second, private lab (own state directory, own ports) so they never disturb the
lab the rest of the suite uses.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from k8snb.lab.binaries import bin_dir, pinned_versions

pytestmark = pytest.mark.cluster

PORT, ETCD_PORT = 6643, 12579


def lab(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "k8snb.cli", "lab", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def private_env(tmp_path):
    env = dict(os.environ, K8SNB_STATE=str(tmp_path / "state"))
    env.pop("KUBECONFIG", None)
    return env


def _running(pid: int) -> bool:
    """True while `pid` is a live process (an exited one awaiting its parent's wait() is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_up_twice_status_and_down_leave_nothing(private_env, tmp_path):
    args = ("--nodes", "kwok", "--port", str(PORT), "--etcd-port", str(ETCD_PORT))
    first = lab("up", *args, env=private_env)
    assert first.returncode == 0, first.stderr
    assert "start to Ready" in first.stdout
    try:
        second = lab("up", *args, env=private_env)
        assert second.returncode == 0 and "already running" in second.stdout
        status = lab("status", env=private_env)
        assert status.returncode == 0
        for word in ("running", "kube-apiserver", "etcd", "kwok", "10.244.0.0/16", "10.96.0.0/16", "10.96.0.10"):
            assert word in status.stdout
        pids = [int(line.split("pid")[1].split()[0]) for line in status.stdout.splitlines() if " pid " in line]
        assert len(pids) == 5
    finally:
        down = lab("down", env=private_env)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not any(_running(pid) for pid in pids)
    assert not _listening(PORT) and not _listening(ETCD_PORT) and not _listening(ETCD_PORT + 1)
    state = tmp_path / "state" / "lab"
    assert {p.name for p in state.iterdir()} <= {"logs"}, "down keeps nothing but the logs"
    assert lab("status", env=private_env).returncode == 3


def _lab_processes(state: Path) -> list[int]:
    """PIDs whose command line names this lab's state directory."""
    marker = str(state) + "/"
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


@pytest.mark.parametrize("damaged", ["plan.json", "run/etcd.pid"])
@pytest.mark.parametrize("content", ["", "{not json"])
def test_corrupt_state_is_one_line_and_down_still_cleans(private_env, tmp_path, damaged, content):
    args = ("--nodes", "kwok", "--port", str(PORT), "--etcd-port", str(ETCD_PORT))
    state = tmp_path / "state" / "lab"
    up = lab("up", *args, env=private_env)
    assert up.returncode == 0, up.stderr
    (state / damaged).write_text(content)
    status = lab("status", env=private_env)
    assert status.returncode == 1
    assert len(status.stderr.strip().splitlines()) == 1 and "corrupt" in status.stderr, status.stderr
    down = lab("down", env=private_env)
    assert down.returncode == 0, down.stderr
    assert _lab_processes(state) == []
    assert not _listening(PORT) and not _listening(ETCD_PORT)


def test_a_second_up_while_one_runs_refuses_and_the_first_completes(private_env):
    args = ("up", "--nodes", "kwok", "--port", str(PORT), "--etcd-port", str(ETCD_PORT))
    first = subprocess.Popen([sys.executable, "-m", "k8snb.cli", "lab", *args], env=private_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = Path(private_env["K8SNB_STATE"]) / "lab.lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert time.monotonic() < deadline and first.poll() is None, "the first up never took the lock"
            time.sleep(0.05)
        second = lab(*args, env=private_env)
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"k8snb: another `k8snb lab` command (pid {first.pid}) is changing the lab; wait for it to "
            "finish, then run `k8snb lab up` again"]
        out, err = first.communicate(timeout=180)
        assert first.returncode == 0, err
        assert "Ready: 3 kwok nodes" in out
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        assert lab("down", env=private_env).returncode == 0


def test_port_taken_is_one_line_and_starts_nothing(private_env, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        out = lab("up", "--nodes", "kwok", "--port", str(taken), "--etcd-port", str(ETCD_PORT), env=private_env)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"k8snb: port {taken} on 127.0.0.1 is already in use (needed for the lab's kube-apiserver); stop whatever "
        f"listens there (`ss -ltnp 'sport = :{taken}'`) or pick another port with --port"]
    assert not (tmp_path / "state" / "lab" / "run").exists()


@pytest.mark.parametrize("flag,value,message", [
    ("--pod-cidr", "10.244.0.0/33", "invalid pod CIDR '10.244.0.0/33'"),
    ("--service-cidr", "10.244.0.0/16", "overlaps"),
    ("--version", "v1.99.0", "unknown Kubernetes version v1.99.0"),
    ("--version", "latest", "unknown Kubernetes version 'latest'"),
])
def test_bad_input_is_one_clear_line(private_env, flag, value, message):
    out = lab("up", "--nodes", "kwok", "--port", str(PORT), "--etcd-port", str(ETCD_PORT), flag, value,
              env=private_env)
    assert out.returncode == 1
    assert message in out.stderr
    assert out.stderr.count("k8snb:") == 1
    assert not _listening(PORT)


def _cache_with(tmp_path, damage: str | None) -> Path:
    """A copy of the binary cache (links), with one binary truncated when `damage` names it."""
    version = pinned_versions()["K8S_VERSION"]
    src, dst = bin_dir(version), tmp_path / "cache" / version / "bin"
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.name == damage:
            (dst / f.name).write_bytes(f.read_bytes()[: 1 << 20])
        else:
            (dst / f.name).symlink_to(f)
    return tmp_path / "cache"


def test_truncated_cached_binary_is_reported(private_env, tmp_path):
    env = dict(private_env, K8SNB_CACHE=str(_cache_with(tmp_path, "kube-scheduler")))
    out = lab("up", "--nodes", "kwok", "--port", str(PORT), "--etcd-port", str(ETCD_PORT), env=env)
    assert out.returncode == 1
    assert "the cached kube-scheduler" in out.stderr and "fails its sha256 check" in out.stderr
    assert not _listening(PORT)


def test_go_missing_with_nothing_cached(private_env, tmp_path):
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    bare_path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                if not (Path(p) / "go").exists())
    env = dict(private_env, K8SNB_CACHE=str(empty), PATH=bare_path,
               K8SNB_DOWNLOAD_BASE="http://127.0.0.1:9/")  # nothing listens on the discard port
    assert shutil.which("go", path=bare_path) is None
    out = lab("up", "--nodes", "kwok", "--port", str(PORT), "--etcd-port", str(ETCD_PORT), env=env)
    assert out.returncode == 1
    assert "Go is not installed" in out.stderr
