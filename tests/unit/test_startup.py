"""k8snb.wait_for_cluster: waits on the start log binder/start writes, bounded, with clear failures."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from k8snb import startup, wait_for_cluster
from k8snb.errors import LabError, NotReadyInTime

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: k8snb-lab
  cluster: {{server: "https://127.0.0.1:{port}"}}
"""


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    def accept():
        while True:
            try:
                sock.accept()[0].close()
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield sock.getsockname()[1]
    sock.close()


def test_without_a_start_log_it_returns_at_once(monkeypatch):
    monkeypatch.delenv("K8SNB_LAB_LOG", raising=False)
    started = time.monotonic()
    assert wait_for_cluster() == ""
    assert time.monotonic() - started < 0.5


def test_a_failed_start_is_one_error_naming_the_log(tmp_path):
    log = tmp_path / "k8snb-lab.log"
    log.write_text("k8snb binder: starting the course's lab with simulated nodes\n"
                   "k8snb: port 6443 on 127.0.0.1 is already in use\nk8snb-lab-exit 1\n")
    started = time.monotonic()
    with pytest.raises(LabError) as exc:
        wait_for_cluster(log=str(log), kubeconfig=str(tmp_path / "none"), progress=False)
    assert time.monotonic() - started < 2
    text = str(exc.value)
    assert "exit 1" in text and "port 6443 on 127.0.0.1 is already in use" in text and str(log) in text
    assert "\n" not in text


def test_it_follows_the_stages_and_says_which_cluster(tmp_path, listener, capsys):
    log, kubeconfig = tmp_path / "k8snb-lab.log", tmp_path / "kubeconfig"
    log.write_text("k8snb binder: 2026-01-01T00:00:00Z starting the course's lab with simulated nodes "
                   "(no Docker here, so no kind: traffic is modeled)\n")
    seen = []

    def lab():
        time.sleep(0.3)
        seen.append(startup._stage(startup.read_start_log(log), str(kubeconfig)))
        kubeconfig.write_text(KUBECONFIG.format(port=listener))
        time.sleep(0.3)
        seen.append(startup._stage(startup.read_start_log(log), str(kubeconfig)))
        with log.open("a") as f:
            f.write("k8snb lab: Ready: 3 kwok nodes, Kubernetes v1.37.2; binaries 0.0 s, start to Ready 9.9 s\n"
                    "k8snb-lab-exit 0\n")

    t = threading.Thread(target=lab)
    t.start()
    message = wait_for_cluster(log=str(log), kubeconfig=str(kubeconfig), poll=0.05, timeout=10)
    t.join()
    assert seen == [1, 3]
    assert "simulated nodes" in message and "MODELED" in message and "start to Ready 9.9 s" in message
    assert str(log) in message
    assert message in capsys.readouterr().out


def test_not_ready_in_time_names_the_log_and_the_last_step(tmp_path, listener):
    log, kubeconfig = tmp_path / "k8snb-lab.log", tmp_path / "kubeconfig"
    log.write_text("k8snb binder: starting the course's lab with simulated nodes\n")
    kubeconfig.write_text(KUBECONFIG.format(port=listener))
    with pytest.raises(NotReadyInTime, match=r"not Ready within 1 s \(last step done: API server listening.*"
                                             + str(log)):
        wait_for_cluster(log=str(log), kubeconfig=str(kubeconfig), timeout=1, poll=0.05, progress=False)


def test_no_start_log_at_all_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(startup, "LOG_GRACE", 0.2)
    with pytest.raises(LabError, match="no start log at .*nothing is starting a cluster"):
        wait_for_cluster(log=str(tmp_path / "absent.log"), timeout=5, poll=0.05, progress=False)


def test_kind_is_described_as_measured(tmp_path):
    log = tmp_path / "k8snb-lab.log"
    log.write_text("k8snb binder: starting a kind cluster (real nodes: traffic is measured)\nk8snb-lab-exit 0\n")
    message = wait_for_cluster(log=str(log), kubeconfig=str(tmp_path / "k"), progress=False)
    assert "kind cluster" in message and "MEASURED" in message
