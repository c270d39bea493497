"""The cluster's address plan, read live: pod ranges, service range, CNI plugin, network model.

`k8snb.cidr` holds the pure analysis; this module gathers its inputs from the API so that the
verdict (pods on the node subnet, VPC-CNI style, or pods on their own range) is computed from the
learner's own cluster, without being told which kind of cluster it is. Each answer says where it
came from: configuration the API exposes, or a derivation from what the nodes show.
"""
from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass

import yaml

from .cidr import NetworkModel, classify, guess_cni, pod_range
from .cluster import Cluster
from .errors import Forbidden, NotFound
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


#: The lab's CNI per network model: node-local configuration, no DaemonSet.
LAB_CNI = {"routed": "bridge + host-local (the lab's routed network: node-local CNI config, no DaemonSet)",
           "flat": "ptp + host-local (the lab's flat network: node-local CNI config, no DaemonSet)"}


def _daemonset_names(cluster: Cluster) -> list[str] | None:
    """DaemonSet names in every namespace where allowed (Calico's operator runs calico-node in
    calico-system), else in kube-system; None when neither may be listed."""
    names, allowed = set(), False
    for path in ("/apis/apps/v1/daemonsets", "/apis/apps/v1/namespaces/kube-system/daemonsets"):
        try:
            names |= {d["metadata"]["name"] for d in cluster.api.list(path)}
            allowed = True
        except Forbidden:
            continue
    return sorted(names) if allowed else None


def cni_plugin(cluster: Cluster) -> str:
    """The CNI plugin, guessed from DaemonSets (aws-node, calico-node, kindnet, anetd ...)."""
    if cluster.is_lab and (mode := lab_network(cluster)) in LAB_CNI:
        return LAB_CNI[mode]
    names = _daemonset_names(cluster)
    if names is None:
        return "unknown (no permission to list DaemonSets in kube-system)"
    name = guess_cni(names)
    if not name.startswith("unknown"):
        return name
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


#: Where the lab's node subnet comes from when nobody passed one.
LAB_NODE_SUBNET_SOURCE = "the lab's plan (`k8snb lab status`), where the lab put its nodes"


def _node_subnet(cluster: Cluster, node_subnet: str | None) -> tuple[str | None, str | None]:
    """(node subnet, where it came from if not from the caller). On the lab the plan knows it: the
    course does not guess a /16 around three nodes of a /24. Elsewhere nothing in the API says it."""
    if node_subnet is not None or not cluster.is_lab:
        return node_subnet, None
    from .lab import status

    known = (status().plan or {}).get("node_subnet")
    return (known, LAB_NODE_SUBNET_SOURCE) if known else (None, None)


def _model(cluster: Cluster, a: _Addresses, node_subnet: str | None) -> NetworkModel:
    subnet, source = _node_subnet(cluster, node_subnet)
    model = classify(a.node_ips, a.pod_ips, a.pod_cidrs, subnet)
    return dataclasses.replace(model, node_network_source=source) if source else model


def network_model(cluster: Cluster, node_subnet: str | None = None) -> NetworkModel:
    """Pods on the node subnet ('flat') or on their own range ('separate'), decided from nodes and pods.

    The verdict is drawn from what any cluster shows through its API, the node and pod IPs, on the
    lab as on EKS or kind. The node network they are compared with is `node_subnet` (your VPC or node
    subnet, e.g. '10.0.0.0/16'), else on the lab its plan's, else inferred from the node IPs, and the
    verdict then says it is guessing.
    """
    return _model(cluster, _addresses(cluster), node_subnet)


#: Where a configured pod range comes from, when one is found.
LAB_PLAN_SOURCE = "the lab's plan (`k8snb lab status`), which kube-controller-manager got as --cluster-cidr"
KUBEADM_SOURCE = "kubeadm's ClusterConfiguration (ConfigMap kube-system/kubeadm-config, networking.podSubnet)"
NOT_EXPOSED = "derived from the nodes' podCIDRs: the API exposes no configured pod range here"


def _cidrs(value) -> str | None:
    """`value` as a comma-separated list of CIDRs (dual stack has two), or None if it is not one."""
    try:
        return ",".join(str(ipaddress.ip_network(part.strip(), strict=False)) for part in str(value).split(","))
    except ValueError:
        return None


def kubeadm_pod_subnet(configmap: dict) -> str | None:
    """networking.podSubnet of the ClusterConfiguration in kubeadm's ConfigMap (kind uses kubeadm
    too); None when the key is missing (kubeadm init without --pod-network-cidr) or unreadable."""
    try:
        config = yaml.safe_load((configmap.get("data") or {}).get("ClusterConfiguration") or "")
    except yaml.YAMLError:
        return None
    subnet = ((config or {}).get("networking") or {}).get("podSubnet") if isinstance(config, dict) else None
    return _cidrs(subnet) if subnet else None


def cluster_cidr_flag(argv: list[str]) -> str | None:
    """The value of --cluster-cidr in a kube-controller-manager command line (`--flag=value` or
    `--flag value`), or None."""
    for i, arg in enumerate(argv):
        if arg.startswith("--cluster-cidr="):
            return _cidrs(arg.split("=", 1)[1])
        if arg == "--cluster-cidr" and i + 1 < len(argv):
            return _cidrs(argv[i + 1])
    return None


def configured_pod_range(cluster: Cluster) -> tuple[str | None, str]:
    """(pod range, where it was read) from configuration, where the cluster exposes it.

    Tried in order: the lab's plan; kubeadm's ClusterConfiguration (kubeadm, kind, kubespray's
    kubeadm mode); the --cluster-cidr flag of a kube-controller-manager pod (static pods of a
    kubeadm-style control plane). Managed control planes (EKS, GKE ...) and k3s expose none of
    these, and an account without access to kube-system reads none: then (None, NOT_EXPOSED),
    and the pod range is what the nodes' podCIDRs span.
    """
    if cluster.is_lab:
        from .lab import status

        pod_cidr = (status().plan or {}).get("pod_cidr")
        if pod_cidr:
            return pod_cidr, LAB_PLAN_SOURCE
    try:
        configmap = cluster.api.exists("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    except (Forbidden, NotFound):
        configmap = None
    subnet = kubeadm_pod_subnet(configmap) if configmap else None
    if subnet:
        return subnet, KUBEADM_SOURCE
    try:
        pods = cluster.api.list("/api/v1/namespaces/kube-system/pods", labelSelector="component=kube-controller-manager")
    except (Forbidden, NotFound):
        pods = []
    for pod in pods:
        for container in pod.get("spec", {}).get("containers") or []:
            flag = cluster_cidr_flag(list(container.get("command") or []) + list(container.get("args") or []))
            if flag:
                return flag, f"kube-controller-manager's --cluster-cidr flag (pod kube-system/{pod['metadata']['name']})"
    return None, NOT_EXPOSED


def address_plan(cluster: Cluster, node_subnet: str | None = None) -> dict:
    """Everything `plots.plot_address_space` draws: ranges and the addresses inside them, and where
    the node network and the pod range come from (given, configured, or inferred and said so)."""
    a = _addresses(cluster)
    model = _model(cluster, a, node_subnet)
    svc_range = service_range(cluster)
    configured, source = configured_pod_range(cluster)
    derived = pod_range(a.pod_cidrs)
    if configured is None:
        configured = str(derived) if derived else None
        source = ("derived from node podCIDRs (the smallest range holding them all; the configured range may be "
                  "wider)" if derived else "unknown: no configured pod range is exposed and no node has a podCIDR")
    return {
        "model": model.model,
        "node_network": model.node_network,
        "node_network_source": model.node_network_source,
        "node_network_inferred": model.guessing,
        "pod_ranges": a.pod_cidrs,
        "pod_range": configured,
        "pod_range_source": source,
        "service_range": svc_range.split(" ")[0] if svc_range else None,
        "service_range_inferred": bool(svc_range) and " " in svc_range,
        "node_ips": a.node_ips,
        "pod_ips": a.pod_ips,
        "service_ips": [ip for ip in services_table(cluster)["cluster_ip"] if ip not in (NONE, "None")],
    }


def lab_network(cluster: Cluster) -> str:
    """The lab's network mode ('routed' or 'flat'), or a note when this is not the lab."""
    if not cluster.is_lab:
        return f"not the lab ({cluster.flavor})"
    from .lab import status

    plan = status().plan or {}
    return plan.get("network", "unknown")
