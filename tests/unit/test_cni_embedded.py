"""cni_plugin names CNIs that run no DaemonSet, from what k3s's API shows (JSON as k3s serves it)."""
from __future__ import annotations

from k8snb.cluster import Cluster
from k8snb.network import cni_plugin


class _RecordedApi:
    """Answers list() from JSON shaped as the API server returns it (no behaviour of its own)."""

    def __init__(self, answers: dict[str, list[dict]]) -> None:
        self.answers = answers

    def list(self, path: str, **_params) -> list[dict]:
        return self.answers[path]


K3S_NODE = {"metadata": {"name": "k3s-server", "annotations": {
    "flannel.alpha.coreos.com/backend-type": "vxlan", "flannel.alpha.coreos.com/public-ip": "10.0.0.5",
    "k3s.io/node-args": "[\"server\"]"}}}
DAEMONSETS = "/apis/apps/v1/namespaces/kube-system/daemonsets"


def _cluster(flavor: str, daemonsets: list[dict], nodes: list[dict]) -> Cluster:
    api = _RecordedApi({DAEMONSETS: daemonsets, "/api/v1/nodes": nodes})
    return Cluster(api=api, context="c", server="https://10.0.0.5:6443", version="v1.34.1+k3s1", flavor=flavor)


def test_k3s_flannel_is_named():
    # k3s runs svclb-* DaemonSets only for LoadBalancer Services; flannel is inside the k3s binary.
    assert cni_plugin(_cluster("k3s", [{"metadata": {"name": "svclb-traefik-1a2b"}}], [K3S_NODE])).startswith(
        "flannel, built into k3s")


def test_flannel_found_by_node_annotations_elsewhere():
    assert cni_plugin(_cluster("other", [], [K3S_NODE])).startswith("flannel")


def test_a_daemonset_cni_wins_and_unknown_stays_unknown():
    assert "Calico" in cni_plugin(_cluster("other", [{"metadata": {"name": "calico-node"}}], []))
    assert cni_plugin(_cluster("other", [], [{"metadata": {"name": "n"}}])).startswith("unknown")
