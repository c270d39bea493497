"""The cluster's address plan, read live: pod ranges, service range, CNI plugin, network model.

`k8snb.cidr` holds the pure analysis; this module gathers its inputs from the API so that the
verdict (flat VPC-CNI style vs a separate pod range) is computed from the learner's own cluster,
without being told which kind of cluster it is.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .cidr import NetworkModel, classify, guess_cni, pod_range
from .cluster import Cluster
from .errors import Forbidden
from .tables import NONE, nodes as nodes_table, pods as pods_table, services as services_table


def service_range(cluster: Cluster) -> str | None:
    """The Service IP range: from ServiceCIDR objects where the API has them (1.33+), else a
    lower bound guessed from the `kubernetes` Service's ClusterIP (the first address of the range)."""
    try:
        items = cluster.api.list("/apis/networking.k8s.io/v1/servicecidrs")
        cidrs = [c for item in items for c in item.get("spec", {}).get("cidrs", [])]
        if cidrs:
            return ",".join(cidrs)
    except Exception:  # noqa: BLE001 — older clusters or no permission: fall back below
        pass
    svc = cluster.api.exists("/api/v1/namespaces/default/services/kubernetes")
    if not svc:
        return None
    ip = ipaddress.ip_address(svc["spec"]["clusterIP"])
    # The first usable address is .1 of the range; a /16 around it is the common default (kind,
    # kubeadm: 10.96.0.0/12 or /16; EKS: 172.20.0.0/16). Say it is a guess.
    return f"{ipaddress.ip_network(f'{ip}/16', strict=False)} (guessed from the kubernetes Service)"


def cni_plugin(cluster: Cluster) -> str:
    """The CNI plugin, guessed from kube-system DaemonSets (aws-node, calico-node, kindnet ...)."""
    try:
        ds = cluster.api.list("/apis/apps/v1/namespaces/kube-system/daemonsets")
    except Forbidden:
        return "unknown (no permission to list DaemonSets in kube-system)"
    name = guess_cni(d["metadata"]["name"] for d in ds)
    if not name.startswith("unknown"):
        return name
    if cluster.is_lab:
        return "bridge (routed) or ptp (flat) + host-local: the lab's node-local CNI config, no DaemonSet"
    # CNIs built into the node agent run no DaemonSet: k3s embeds flannel, which still annotates
    # every node it manages (flannel.alpha.coreos.com/...).
    try:
        annotated = any(k.startswith("flannel.alpha.coreos.com/")
                        for n in cluster.api.list("/api/v1/nodes")
                        for k in (n["metadata"].get("annotations") or {}))
    except Forbidden:
        annotated = False
    if cluster.flavor == "k3s":
        return "flannel, built into k3s (VXLAN by default; no DaemonSet)"
    if annotated:
        return "flannel, run outside kube-system DaemonSets (its node annotations say so)"
    return name


@dataclass(frozen=True)
class _Addresses:
    """Node IPs, pod IPs (not on the host network) and node podCIDRs, read once from the tables."""

    node_ips: list[str]
    pod_ips: list[str]
    pod_cidrs: list[str]


def _addresses(cluster: Cluster) -> _Addresses:
    nodes = nodes_table(cluster)
    pods = pods_table(cluster)
    return _Addresses(
        node_ips=[ip.split(",")[0] for ip in nodes["internal_ip"] if ip != NONE],
        pod_ips=[ip for ip, host in zip(pods["ip"], pods["host_network"]) if ip != NONE and not host],
        pod_cidrs=[c for v in nodes["pod_cidrs"] if v != NONE for c in v.split(",")],
    )


def network_model(cluster: Cluster) -> NetworkModel:
    """Flat (pods on the node network) or separate pod range, decided from nodes and pods.

    Only what any cluster shows through its API: the lab is judged like EKS or kind, from its node
    and pod IPs (the node network inferred by `cidr.node_network`), never from its own plan.
    """
    a = _addresses(cluster)
    return classify(a.node_ips, a.pod_ips, a.pod_cidrs)


def address_plan(cluster: Cluster) -> dict:
    """Everything `plots.plot_address_space` draws: ranges and the addresses inside them."""
    a = _addresses(cluster)
    model = classify(a.node_ips, a.pod_ips, a.pod_cidrs)
    svc_range = service_range(cluster)
    overall = pod_range(a.pod_cidrs)
    return {
        "model": model.model,
        "node_network": model.node_network,
        "pod_ranges": a.pod_cidrs,
        "pod_range": str(overall) if overall else None,
        "service_range": svc_range.split(" ")[0] if svc_range else None,
        "node_ips": a.node_ips,
        "pod_ips": a.pod_ips,
        "service_ips": [ip for ip in services_table(cluster)["cluster_ip"] if ip not in (NONE, "None")],
    }
