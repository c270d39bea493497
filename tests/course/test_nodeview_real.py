"""A node's own tables on a live cluster: kube-proxy's chain and the conntrack entry of one request.

Needs pods that carry traffic and a cluster that lets the course run a privileged pod on a node
(kind, minikube, k3s, the lab with real nodes); the last test checks the refusal path on the same
cluster, with a namespace that enforces the PodSecurity 'baseline' policy.
"""
from __future__ import annotations

import pytest

import k8snb
from k8snb import dataplane, nodeview
from k8snb.manifests import PART_OF
from k8snb.wait import wait_answering

pytestmark = [pytest.mark.cluster, pytest.mark.realnodes]


def _article(cluster, namespace, namespace2, replicas=3):
    k8snb.article(cluster, namespace=namespace, nginx_namespace=namespace2, replicas=replicas)
    for name in ("nginx-hello", "netshoot"):
        k8snb.wait_deployment(cluster, name, namespace, progress=False)
    ready = {f"{e['address']}:{e['port']}" for e in k8snb.wait_endpoints(cluster, "nginx-svc", namespace,
                                                                          count=replicas, timeout=60)}
    wait_answering(cluster, "nginx-svc", namespace)  # kube-proxy has written the Service's rules
    return ready


def test_chain_is_read_on_a_node_with_one_sep_rule_per_ready_endpoint(cluster, needs_traffic, namespace, namespace2):
    ready = _article(cluster, namespace, namespace2)
    rules = dataplane.kube_proxy_chain(cluster, namespace=namespace)
    how = rules.attrs["how"]
    assert set(rules["mode"]) == {"measured"}, how
    assert how.startswith("kube-proxy mode: iptables") and "(measured)" in how, how
    assert sorted(rules["endpoint"]) == sorted(ready), how
    assert rules["chain"].str.startswith("KUBE-SEP-").all() and rules["chain"].nunique() == len(ready)
    assert rules["probability"].tolist() == pytest.approx(k8snb.iptables_probabilities(len(ready)), abs=1e-6)
    assert (rules["connections"] >= 0).all()
    pod = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods/{nodeview.node_pod_name(rules.attrs['node'])}")
    assert pod["metadata"]["labels"][PART_OF] == "k8snb" and pod["spec"]["hostNetwork"] is True


def test_conntrack_entry_shows_the_client_pod_and_a_backend_pod(cluster, needs_traffic, namespace, namespace2):
    ready = _article(cluster, namespace, namespace2)
    client = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods/{k8snb.pod_for(cluster, 'netshoot', namespace)}")
    cluster_ip = cluster.api.get(f"/api/v1/namespaces/{namespace}/services/nginx-svc")["spec"]["clusterIP"]
    pin = dataplane.conntrack_entry(cluster, namespace=namespace).set_index("direction")
    how = pin.attrs["how"]
    assert set(pin["mode"]) == {"measured"} and "(measured)" in how, how
    original, reply = pin.loc["original"], pin.loc["reply"]
    assert original["src"].rsplit(":", 1)[0] == client["status"]["podIP"], how
    assert original["dst"] == f"{cluster_ip}:80"
    assert reply["src"] in ready, f"{reply['src']} is not a ready endpoint {sorted(ready)}"
    assert "pod nginx-hello-" in reply["who"]
    assert client["spec"]["nodeName"] in how


def test_a_cluster_refusing_privileged_pods_gets_the_modeled_chain_and_the_reason(cluster, needs_traffic, namespace,
                                                                                 namespace2):
    cluster.api.request("PATCH", f"/api/v1/namespaces/{namespace}", content_type="application/merge-patch+json",
                        body={"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}})
    _article(cluster, namespace, namespace2, replicas=2)
    rules = dataplane.kube_proxy_chain(cluster, namespace=namespace)
    how = rules.attrs["how"]
    if cluster.is_lab:  # the lab's own way onto its nodes (nsenter, as root) needs no pod: still measured
        assert set(rules["mode"]) == {"measured"} and "nsenter" in how, how
    else:
        assert set(rules["mode"]) == {"modeled"} and len(rules) == 2, how
        assert how.startswith("Modeled, not read from a node: the cluster refused the course's privileged pod"), how
        assert "PodSecurity" in how and "\n" not in how
    pin = dataplane.conntrack_entry(cluster, namespace=namespace)
    assert set(pin["mode"]) == {"modeled"} and "PodSecurity" in pin.attrs["how"]
