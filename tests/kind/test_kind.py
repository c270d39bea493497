"""Acceptance of `k8snb kind up`: the offline kind cluster, against the one `make kind` started.

What is checked here is what only kind has (its nodes are Docker containers on kind's network);
the course itself runs on it through tests/e2e/test_notebooks.py and test_traffic_real.py
(`make kind-test`). K8SNB_TEST_KIND_DOWN=1 adds the last check: `k8snb kind down` leaves no
container, network or process of the cluster (the engine's image cache may stay).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from k8snb.lab import dockerd, kind, processes
from k8snb.lab.binaries import bin_dir, pinned_versions
from k8snb.manifests import apply_all, load

pytestmark = pytest.mark.realnodes


def kubectl(*args: str, stdin: str | None = None) -> str:
    kubectl_bin = bin_dir(pinned_versions()["K8S_VERSION"]) / "kubectl"
    proc = subprocess.run([str(kubectl_bin), "--kubeconfig", str(kind.kubeconfig_path()), *args], input=stdin,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def engine() -> dockerd.Engine:
    found = dockerd.running()
    if found is None or not kind.status(found).running:
        reason = "no k8snb kind cluster runs (start one: make kind)"
        if os.environ.get("K8SNB_REQUIRE_KIND"):  # make kind-test: the cluster must be there
            pytest.fail(f"K8SNB_REQUIRE_KIND is set but {reason}")
        pytest.skip(reason)
    return found


def test_three_nodes_ready_with_the_pod_network_and_coredns_running(engine):
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["k8snb-control-plane", "k8snb-worker", "k8snb-worker2"]
    for n in nodes:
        ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", n["metadata"]["name"]
        assert n["spec"]["providerID"].startswith("kind://docker/k8snb/")
    pods = json.loads(kubectl("get", "pods", "-n", "kube-system", "-o", "json"))["items"]
    phases = {(p["metadata"]["labels"].get("app") or p["metadata"]["labels"].get("k8s-app")): [] for p in pods}
    for p in pods:
        key = p["metadata"]["labels"].get("app") or p["metadata"]["labels"].get("k8s-app")
        phases[key].append(p["status"]["phase"])
    assert phases["k8snb-routes"] == ["Running"] * 3, phases
    assert phases["kube-dns"] and set(phases["kube-dns"]) == {"Running"}, phases
    # The pod network is the cluster's, not the course's: a course cleanup (label part-of=k8snb,
    # even cluster-wide) never selects any of its objects.
    selected = kubectl("get", "daemonsets,serviceaccounts,configmaps,clusterroles,clusterrolebindings", "-A",
                       "-l", "app.kubernetes.io/part-of=k8snb", "-o", "name")
    assert "k8snb-routes" not in selected, selected


def test_kube_proxy_programs_iptables_on_the_node(engine):
    """The rules the course reads are there, on the node's own iptables (the backend kind chose)."""
    out = subprocess.run([dockerd.docker_cli(), "exec", "k8snb-worker", "iptables-save", "-t", "nat"],
                         env=engine.env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "-A KUBE-SERVICES" in out.stdout and "default/kubernetes:https cluster IP" in out.stdout


def test_nodeport_answers_from_the_host_on_every_node_address(engine, cluster, namespace):
    apply_all(cluster, load("nginx-deploy", namespace) + load("nodeport-svc", namespace))
    kubectl("-n", namespace, "rollout", "status", "deployment/nginx-hello", "--timeout=120s")
    svc = json.loads(kubectl("-n", namespace, "get", "svc", "-o", "json"))["items"]
    port = next(p["nodePort"] for s in svc if s["spec"]["type"] == "NodePort" for p in s["spec"]["ports"])
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    addresses = [a["address"] for n in nodes for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
    # kube-proxy programs a new NodePort within seconds of the endpoints being ready (bounded here).
    deadline = time.monotonic() + 30
    answered: dict[str, bool] = {}
    while len(answered) < len(addresses) and time.monotonic() < deadline:
        for ip in addresses:  # kind's network: the host's own bridge, on this machine only
            if ip not in answered:
                try:
                    with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=5) as resp:
                        answered[ip] = resp.status == 200
                except OSError:
                    time.sleep(0.5)
    assert answered == {ip: True for ip in addresses}


def test_the_registry_serves_only_kinds_network(engine):
    """The nodes' registry listens on the kind network's gateway, not on every address."""
    out = subprocess.run(["ss", "-ltnH", "sport = :5000"], capture_output=True, text=True).stdout
    listeners = [line.split()[3] for line in out.splitlines()]
    assert listeners and all(not a.startswith(("*", "0.0.0.0", "[::]")) for a in listeners), listeners


@pytest.mark.optin("K8SNB_TEST_KIND_DOWN")  # destroys the cluster
def test_down_leaves_nothing(engine):
    bridge = "br-" + kind._network(engine)["Id"][:12]
    exported = Path(kind._record()["exported_to"])
    kind.down()
    merged = yaml.safe_load(exported.read_text()) if exported.exists() else {}
    assert "kind-k8snb" not in [c["name"] for c in (merged or {}).get("contexts") or []], exported
    cli = dockerd.docker_cli()
    if engine.ours:  # stopped with the cluster: its socket is gone, nothing of it runs
        assert dockerd.running() is None or not dockerd.running().ours, "our Docker engine still runs"
        assert not Path(engine.host.removeprefix("unix://")).exists()
    else:  # the user's engine keeps running: none of the cluster's containers or its network are left in it
        left = subprocess.run([cli, "ps", "-a", "--filter", "label=io.x-k8s.kind.cluster=k8snb", "--format", "{{.Names}}"],
                              env=engine.env(), capture_output=True, text=True).stdout.split()
        nets = subprocess.run([cli, "network", "ls", "--filter", f"name={kind.NETWORK}", "--format", "{{.Name}}"],
                              env=engine.env(), capture_output=True, text=True).stdout.split()
        assert left == [] and nets == []
    links = subprocess.run(["ip", "-o", "link", "show", bridge], capture_output=True, text=True)
    assert links.returncode != 0, f"kind's bridge {bridge} is still there"
    assert processes.read(kind.kind_dir(), "registry") is None
    assert not kind.kubeconfig_path().exists()
    assert kind.status().running is False
