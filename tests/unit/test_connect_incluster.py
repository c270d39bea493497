"""connect() in a pod without a usable service account (what mybinder.org gives: KUBERNETES_SERVICE_HOST
set, no token mounted): one NotReachable line, or the lab when it runs."""
from __future__ import annotations

import pytest

import k8snb
from k8snb import cluster as cluster_mod
from k8snb.errors import K8snbError, NotReachable
from k8snb.lab import LabStatus

LAB_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: k8snb-lab
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: "t"}
contexts:
- name: k8snb-lab
  context: {cluster: k8snb-lab, user: admin}
current-context: k8snb-lab
"""


@pytest.fixture
def fake_pod(tmp_path, monkeypatch):
    """A fake pod: service host and port set, no service-account token, no kubeconfig anywhere."""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("K8SNB_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("K8SNB_LAB_LOG", raising=False)
    return tmp_path


def test_no_token_gives_one_line_saying_what_is_missing(fake_pod):
    with pytest.raises(NotReachable) as exc:
        k8snb.connect()
    text = str(exc.value)
    assert isinstance(exc.value, K8snbError)
    assert "\n" not in text
    assert "KUBERNETES_SERVICE_HOST is set" in text
    assert "/var/run/secrets/kubernetes.io/serviceaccount/token does not exist" in text
    assert "k8snb lab up" in text


def test_the_message_names_a_missing_kubeconfig_and_the_start_log(fake_pod, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(fake_pod / "state" / "lab" / "kubeconfig"))
    monkeypatch.setenv("K8SNB_LAB_LOG", str(fake_pod / "k8snb-lab.log"))
    with pytest.raises(NotReachable, match=r"KUBECONFIG=.*names no existing file.*k8snb-lab\.log") as exc:
        k8snb.connect()
    assert "\n" not in str(exc.value)


def test_a_running_lab_wins_over_the_broken_in_cluster_config(fake_pod, monkeypatch):
    lab = fake_pod / "state" / "lab"
    lab.mkdir(parents=True)
    (lab / "kubeconfig").write_text(LAB_KUBECONFIG)
    monkeypatch.setattr(k8snb.lab, "status", lambda: LabStatus(True, {}, [], str(lab / "kubeconfig"), str(lab)))
    client, name, path = cluster_mod._load(None)
    assert name == "k8snb-lab" and path == str(lab / "kubeconfig")
    assert client.configuration.host == "https://127.0.0.1:1"


def test_a_stopped_lab_does_not_hide_the_in_cluster_error(fake_pod, monkeypatch):
    lab = fake_pod / "state" / "lab"
    lab.mkdir(parents=True)
    (lab / "kubeconfig").write_text(LAB_KUBECONFIG)
    monkeypatch.setattr(k8snb.lab, "status", lambda: LabStatus(False, None, [], str(lab / "kubeconfig"), str(lab)))
    with pytest.raises(NotReachable, match="service-account token"):
        cluster_mod._load(None)


def test_an_explicit_kubeconfig_that_does_not_exist_is_one_clear_error(tmp_path):
    missing = tmp_path / "learner-01.kubeconfig"
    with pytest.raises(NotReachable, match=f"no kubeconfig at {missing}"):
        k8snb.connect(kubeconfig=str(missing))
