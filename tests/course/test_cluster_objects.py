"""The article's objects on a real API server: what kubectl would show a learner (lab part 1)."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess

import pytest

import k8snb
from k8snb.lab.binaries import bin_dir, pinned_versions

pytestmark = pytest.mark.cluster


def kubectl(*args: str) -> str:
    exe = bin_dir(pinned_versions()["K8S_VERSION"]) / "kubectl"
    return subprocess.run([str(exe), *args], check=True, capture_output=True, text=True,
                          env=dict(os.environ), timeout=60).stdout


def pod_range(cluster) -> ipaddress.IPv4Network | None:
    st = k8snb.lab.status()
    return ipaddress.ip_network(st.plan["pod_cidr"]) if st.plan and cluster.is_lab else None


def test_nodes_ready_with_pod_cidrs_inside_the_pod_range(cluster):
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    assert len(nodes) >= 1
    rng = pod_range(cluster)
    for n in nodes:
        ready = {c["type"]: c["status"] for c in n["status"]["conditions"]}["Ready"]
        assert ready == "True", n["metadata"]["name"]
        if rng is not None:
            assert ipaddress.ip_network(n["spec"]["podCIDR"]).subnet_of(rng)
    if cluster.is_lab:
        assert len(nodes) == 3
        assert sorted(n["metadata"]["name"] for n in nodes) == ["k8snb-control-plane", "k8snb-worker",
                                                                 "k8snb-worker2"]


def test_article_objects_get_addresses_from_their_ranges(cluster, namespace, namespace2):
    k8snb.article(cluster, namespace=namespace, nginx_namespace=namespace2)
    pods = k8snb.wait_deployment(cluster, "nginx-hello", namespace, progress=False)
    k8snb.wait_deployment(cluster, "netshoot", namespace, progress=False)
    table = k8snb.pods(cluster, namespace)
    assert set(table["status"]) == {"Running"}
    assert table["in_node_pod_cidr"].all(), table[["name", "ip", "node_pod_cidr"]]
    svc = k8snb.services(cluster, namespace).set_index("name").loc["nginx-svc"]
    assert svc["type"] == "ClusterIP" and svc["ports"] == "80/TCP"
    st = k8snb.lab.status()
    if cluster.is_lab:
        assert ipaddress.ip_address(svc["cluster_ip"]) in ipaddress.ip_network(st.plan["service_cidr"])
    eps = k8snb.wait_endpoints(cluster, "nginx-svc", namespace, count=1)
    assert [(e["address"], e["port"]) for e in eps] == [(pods[0]["status"]["podIP"], 80)]


def test_scale_to_five_gives_five_ready_endpoints(cluster, namespace, namespace2):
    k8snb.article(cluster, namespace=namespace, nginx_namespace=namespace2)
    eps = k8snb.scale_and_wait(cluster, 5, namespace=namespace, timeout=120)
    assert len(eps) == 5 and eps["ready"].all()
    assert eps["pod"].nunique() == 5
    assert eps["node"].nunique() >= (2 if cluster.is_lab else 1), "replicas should land on more than one node"


def test_nodeport_in_range_and_loadbalancer_pending(cluster, namespace):
    k8snb.apply(cluster, k8snb.load("nodeport-svc", namespace)[0])
    k8snb.apply(cluster, k8snb.load("loadbalancer-svc", namespace)[0])
    table = k8snb.services(cluster, namespace).set_index("name")
    node_port = int(table.loc["nginx-nodeport", "ports"].split(":")[1].split("/")[0])
    assert 30000 <= node_port <= 32767
    if cluster.is_lab:
        assert table.loc["nginx-lb", "external_ip"] == "<pending>"


def test_tables_match_kubectl_wide(cluster, namespace, namespace2):
    k8snb.article(cluster, namespace=namespace, nginx_namespace=namespace2)
    k8snb.wait_deployment(cluster, "nginx-hello", namespace, progress=False)
    k8snb.wait_deployment(cluster, "netshoot", namespace, progress=False)
    ours = k8snb.pods(cluster, namespace).set_index("name")
    for line in kubectl("get", "pods", "-n", namespace, "-o", "wide", "--no-headers").splitlines():
        name, ready, status, restarts, _age, ip, node = line.split()[:7]
        row = ours.loc[name]
        assert (row["ready"], row["status"], str(row["restarts"]), row["ip"], row["node"]) == \
            (ready, status, restarts, ip, node)
    nodes = k8snb.nodes(cluster).set_index("name")
    for line in kubectl("get", "nodes", "-o", "wide", "--no-headers").splitlines():
        name, status, roles, _age, version, internal, external = line.split()[:7]
        row = nodes.loc[name]
        assert (row["status"], row["roles"], row["version"], row["internal_ip"], row["external_ip"]) == \
            (status, roles, version, internal, external)
    k8snb.apply(cluster, k8snb.load("nodeport-svc", namespace)[0])
    svcs = k8snb.services(cluster, namespace).set_index("name")
    for line in kubectl("get", "svc", "-n", namespace, "-o", "wide", "--no-headers").splitlines():
        name, typ, cip, eip, ports = line.split()[:5]
        row = svcs.loc[name]
        assert (row["type"], row["cluster_ip"], row["external_ip"], row["ports"]) == (typ, cip, eip, ports)
