"""What network.py reads from the API, on JSON shaped as API servers return it: CNIs that run no
DaemonSet (k3s's flannel), the configured pod range (kubeadm, kind, a static kube-controller-manager,
the lab's plan) and the address plan that says which of its ranges were inferred."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from k8snb import network
from k8snb.cluster import Cluster
from k8snb.errors import Forbidden, InvalidInput
from k8snb.network import cni_plugin


class _RecordedApi:
    """Answers list(), list_raw() and exists() from recorded objects (no behaviour of its own); an
    exception among the answers is raised, as the real client raises Forbidden."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers

    def _answer(self, path: str):
        answer = self.answers.get(path)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def list(self, path: str, **_params) -> list[dict]:
        answer = self._answer(path)
        return [] if answer is None else answer

    def list_raw(self, path: str, **params):
        yield json.dumps({"items": self.list(path, **params), "metadata": {}}).encode()

    def exists(self, path: str, deadline=None):
        return self._answer(path)


K3S_NODE = {"metadata": {"name": "k3s-server", "annotations": {
    "flannel.alpha.coreos.com/backend-type": "vxlan", "flannel.alpha.coreos.com/public-ip": "10.0.0.5",
    "k3s.io/node-args": "[\"server\"]"}}}
DAEMONSETS = "/apis/apps/v1/namespaces/kube-system/daemonsets"
KUBEADM_CONFIG = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
KUBE_SYSTEM_PODS = "/api/v1/namespaces/kube-system/pods"
#: kind's kubeadm-config, trimmed to what matters.
KIND_KUBEADM = {"metadata": {"name": "kubeadm-config", "namespace": "kube-system"}, "data": {
    "ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta4\nclusterName: kind\nkind: ClusterConfiguration\n"
                            "networking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n"
                            "  serviceSubnet: 10.96.0.0/16\n"}}
#: A kubeadm cluster's static kube-controller-manager pod, trimmed.
CONTROLLER_MANAGER = {"metadata": {"name": "kube-controller-manager-cp1", "namespace": "kube-system",
                                   "labels": {"component": "kube-controller-manager", "tier": "control-plane"}},
                      "spec": {"containers": [{"name": "kube-controller-manager", "command": [
                          "kube-controller-manager", "--allocate-node-cidrs=true",
                          "--cluster-cidr=10.233.64.0/18", "--node-cidr-mask-size=24"]}]}}


def _cluster(flavor: str, answers: dict[str, object]) -> Cluster:
    return Cluster(api=_RecordedApi(answers), context="c", server="https://10.0.0.5:6443", version="v1.34.1",
                   flavor=flavor)


def test_k3s_flannel_is_named():
    # k3s runs svclb-* DaemonSets only for LoadBalancer Services; flannel is inside the k3s binary.
    cluster = _cluster("k3s", {DAEMONSETS: [{"metadata": {"name": "svclb-traefik-1a2b"}}], "/api/v1/nodes": [K3S_NODE]})
    assert cni_plugin(cluster).startswith("flannel, built into k3s")


def test_flannel_found_by_node_annotations_elsewhere():
    assert cni_plugin(_cluster("other", {DAEMONSETS: [], "/api/v1/nodes": [K3S_NODE]})).startswith("flannel")


def test_a_daemonset_cni_wins_and_unknown_stays_unknown():
    assert "Calico" in cni_plugin(_cluster("other", {DAEMONSETS: [{"metadata": {"name": "calico-node"}}],
                                                     "/api/v1/nodes": []}))
    assert cni_plugin(_cluster("other", {DAEMONSETS: [], "/api/v1/nodes": [{"metadata": {"name": "n"}}]})
                      ).startswith("unknown")


# --- the configured pod range ------------------------------------------------------------------------
def test_kind_and_kubeadm_expose_the_pod_subnet():
    assert network.configured_pod_range(_cluster("kind", {KUBEADM_CONFIG: KIND_KUBEADM})) == (
        "10.244.0.0/16", network.KUBEADM_SOURCE)


def test_the_controller_managers_flag_is_read_when_kubeadm_says_nothing():
    cluster = _cluster("other", {KUBEADM_CONFIG: None, KUBE_SYSTEM_PODS: [CONTROLLER_MANAGER]})
    cidr, source = network.configured_pod_range(cluster)
    assert cidr == "10.233.64.0/18" and "--cluster-cidr" in source and "kube-controller-manager-cp1" in source
    assert network.cluster_cidr_flag(["kcm", "--cluster-cidr", "10.42.0.0/16,fd00:42::/56"]) == (
        "10.42.0.0/16,fd00:42::/56")
    assert network.cluster_cidr_flag(["kcm", "--cluster-cidr=garbage"]) is None


def test_kubeadm_without_a_pod_subnet_or_with_broken_yaml_exposes_nothing():
    assert network.kubeadm_pod_subnet({"data": {"ClusterConfiguration": "networking:\n  dnsDomain: x\n"}}) is None
    assert network.kubeadm_pod_subnet({"data": {"ClusterConfiguration": "{not: yaml: at all"}}) is None
    assert network.kubeadm_pod_subnet({"data": {}}) is None


def test_forbidden_or_managed_control_planes_fall_back_to_the_nodes():
    denied = Forbidden("configmaps is forbidden", status=403)
    cluster = _cluster("eks", {KUBEADM_CONFIG: denied, KUBE_SYSTEM_PODS: denied})
    assert network.configured_pod_range(cluster) == (None, network.NOT_EXPOSED)
    assert network.configured_pod_range(_cluster("eks", {})) == (None, network.NOT_EXPOSED)


def test_the_lab_reads_its_own_plan(monkeypatch):
    import k8snb.lab

    monkeypatch.setattr(k8snb.lab, "status", lambda: SimpleNamespace(plan={"pod_cidr": "172.29.128.0/17"}))
    assert network.configured_pod_range(_cluster("lab (kwok)", {})) == ("172.29.128.0/17", network.LAB_PLAN_SOURCE)


# --- the network model and the address plan, with what they inferred ------------------------------------
def _node(name: str, ip: str, pod_cidr: str | None) -> dict:
    spec = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]} if pod_cidr else {}
    return {"metadata": {"name": name}, "spec": spec,
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def _pod(name: str, ip: str, node: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {"nodeName": node},
            "status": {"phase": "Running", "podIP": ip}}


#: EKS with the VPC CNI: nodes without podCIDRs, pods on VPC addresses, no kubeadm, no visible control plane.
EKS = {
    "/api/v1/nodes": [_node("ip-10-110-24-222", "10.110.24.222", None)],
    "/api/v1/pods": [_pod("nginx-hello-7d95c6dbcb-8dnbs", "10.110.23.249", "ip-10-110-24-222")],
    "/api/v1/services": [{"metadata": {"name": "kubernetes", "namespace": "default"},
                          "spec": {"clusterIP": "172.20.0.1", "ports": []}}],
    "/api/v1/namespaces/default/services/kubernetes": {"spec": {"clusterIP": "172.20.0.1"}},
}


def test_eks_address_plan_labels_what_it_inferred():
    plan = network.address_plan(_cluster("eks", EKS))
    assert (plan["model"], plan["node_network"], plan["node_network_inferred"]) == ("flat", "10.110.0.0/16", True)
    assert plan["node_network_source"].startswith("inferred from the node IPs")
    assert plan["pod_range"] is None and plan["pod_range_source"].startswith("unknown")
    assert (plan["service_range"], plan["service_range_inferred"]) == ("172.20.0.0/16", True)


def test_the_learners_vpc_cidr_is_used_and_checked():
    cluster = _cluster("eks", EKS)
    given = network.network_model(cluster, "10.110.0.0/16")
    assert (given.model, given.guessing, given.evidence) == ("flat", False, "the IPs of 1 pod not on the host network")
    assert network.address_plan(cluster, "10.110.0.0/16")["node_network_inferred"] is False
    with pytest.raises(InvalidInput, match="prefix length"):
        network.network_model(cluster, "10.110.0.0")


def test_kind_address_plan_takes_the_configured_pod_range():
    kind = {"/api/v1/nodes": [_node("kind-control-plane", "172.18.0.2", "10.244.0.0/24"),
                              _node("kind-worker", "172.18.0.3", "10.244.1.0/24")],
            "/api/v1/pods": [_pod("nginx-hello-1", "10.244.1.5", "kind-worker")],
            KUBEADM_CONFIG: KIND_KUBEADM}
    plan = network.address_plan(_cluster("kind", kind))
    assert (plan["model"], plan["pod_range"], plan["pod_range_source"]) == (
        "separate", "10.244.0.0/16", network.KUBEADM_SOURCE)
    without_config = network.address_plan(_cluster("other", {k: v for k, v in kind.items() if k != KUBEADM_CONFIG}))
    assert without_config["pod_range"] == "10.244.0.0/23"
    assert without_config["pod_range_source"].startswith("derived from node podCIDRs")


def test_a_cni_outside_kube_system_is_named():
    """Calico installed by its operator runs calico-node in calico-system; GKE Dataplane V2 runs anetd."""
    calico = {"metadata": {"name": "calico-node", "namespace": "calico-system"}}
    assert cni_plugin(_cluster("other", {"/apis/apps/v1/daemonsets": [calico], DAEMONSETS: []})) == "Calico"
    anetd = {"metadata": {"name": "anetd", "namespace": "kube-system"}}
    assert cni_plugin(_cluster("gke", {DAEMONSETS: [anetd]})).startswith("GKE Dataplane V2")
    # A learner who may list only kube-system still gets the answer from there.
    assert cni_plugin(_cluster("other", {"/apis/apps/v1/daemonsets": Forbidden("no"),
                                         DAEMONSETS: [{"metadata": {"name": "cilium"}}]})) == "Cilium"
