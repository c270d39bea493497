"""Address analysis: which network model a cluster uses, and how many addresses it needs.

Section 2 of the article contrasts two clusters. On EKS the AWS VPC CNI gives pods addresses from the
nodes' own VPC subnets (pod 10.110.23.249 on node 10.110.24.222): pods on the node subnet. On a
native kubespray cluster pods live in a range of their own (pod 10.233.104.127 on node
192.168.1.101), carried between nodes by the nodes' routes, an overlay or the underlying network.
Either way pods reach each other without NAT.
The code keeps the short keys 'flat' and 'separate' for the two (the lab's `--network flat|routed`
matches them); a learner reads the words of MODEL_LABELS. Everything here is pure: plain strings in,
a frozen dataclass or a DataFrame out, so the notebooks can reason about a live cluster and the
tests can check the reasoning without one.
"""
from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import pandas as pd

from .errors import InvalidInput

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# A VPC, a LAN or a Docker network is at least a /16 in practice (AWS allows /16 as the largest
# VPC, Docker and kind default to /16, home and office LANs sit inside 192.168.0.0/16). Three nodes
# at .2, .3 and .4 share a /29, but that /29 is not "the node network": pods elsewhere in the /16
# are still on it. So the inferred IPv4 node network is never narrower than this.
IPV4_NODE_NETWORK_PREFIX = 16
# An IPv6 LAN segment is a /64 (RFC 4291 interface identifiers, SLAAC): the same reasoning.
IPV6_NODE_NETWORK_PREFIX = 64

# Share of pod IPs inside the node network above which the model is flat, and below which it is
# separate. The margins tolerate a few outliers (a host-network pod the caller did not filter,
# a pod on a secondary range with EKS custom networking) without hiding a real mix.
FLAT_MIN_SHARE = 0.9
SEPARATE_MAX_SHARE = 0.1

# What a learner reads for each model key. The parentheses keep the key's own word ('flat',
# 'separate pod range') so the words can be matched to the code, the lab's flags and older notes.
MODEL_LABELS = MappingProxyType({
    # "Flat" is kept for the article's sense (every pod reaches every pod directly), which every
    # model meets; the verdicts say where the pods' addresses come from instead.
    "flat": "pods on the node subnet (like the AWS VPC CNI)",
    "separate": "pods on their own range (like kind, Flannel, or kubespray with Calico)",
    "mixed": "mixed (some pods on the node subnet, some on their own range)",
    "unknown": "unknown (no pod IPs or podCIDRs to compare with the node subnet)",
})
# Where the node network of a verdict came from (NetworkModel.node_network_source).
NODE_NETWORK_GIVEN = "given by you"

# kube-system DaemonSet name prefixes of common CNI plugins, in the order they are tried. aws-node
# comes first because on EKS it keeps the address management even when Calico (policy only) or
# Cilium (chaining mode) run beside it; Canal is Calico plus Flannel under its own name.
CNI_DAEMONSETS: tuple[tuple[str, str], ...] = (
    ("aws-node", "AWS VPC CNI"),
    ("canal", "Canal"),
    ("calico-node", "Calico"),
    ("kube-flannel", "Flannel"),
    ("cilium", "Cilium"),
    ("kindnet", "kindnet"),
    ("weave-net", "Weave Net"),
    ("kube-router", "kube-router"),
    ("antrea-agent", "Antrea"),
    ("ovnkube-node", "OVN-Kubernetes"),
    ("anetd", "GKE Dataplane V2 (Cilium, run by GKE as anetd)"),
    ("azure-cns", "Azure CNI"),
    ("k8snb-routes", "k8snb-routes (the course's offline kind network: ptp and routes, as kindnet without its image)"),
)
UNKNOWN_CNI = "unknown (no known CNI DaemonSet)"

# host-local IPAM (used by kindnet, Flannel and the bridge plugin) never hands out the network
# address nor the gateway (the first address, given to the node's bridge), nor on IPv4 the
# broadcast address.
HOST_LOCAL_RESERVED_IPV4 = 3
HOST_LOCAL_RESERVED_IPV6 = 2

# Instance type -> (ENIs, IPv4 addresses per ENI), from AWS's "IP addresses per network interface
# per instance type" table; a handful of types the course's examples use. Exercise 2 of notebook 02
# asks about a type that is NOT here, so that its answer cannot be copied from the printed table.
AWS_ENI_LIMITS = MappingProxyType({
    "t3.medium": (3, 6),
    "t3.large": (3, 12),
    "m5.large": (3, 10),
    "m5.xlarge": (4, 15),
    "c5.xlarge": (4, 15),
    "m5.4xlarge": (8, 30),
})
# Pods on the host network (aws-node and kube-proxy) use the node's primary address, so the
# max-pods formula adds them on top of the ENI secondary addresses.
AWS_HOST_NETWORK_PODS = 2
# AWS keeps five addresses of every subnet: the network address, the VPC router (+1), DNS (+2),
# one for future use (+3) and the last one.
AWS_RESERVED_PER_SUBNET = 5
# The widest and narrowest IPv4 blocks AWS allows for a VPC or a subnet.
AWS_WIDEST_SUBNET = 16
AWS_NARROWEST_SUBNET = 28

PERCENT = 100


def _address(value: str) -> Address:
    try:
        return ipaddress.ip_address(value.strip())
    except (AttributeError, ValueError):
        raise InvalidInput(f"{value!r} is not an IP address (expected e.g. '10.244.1.5')") from None


def _network(value: str) -> Network:
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except (AttributeError, ValueError):
        raise InvalidInput(f"{value!r} is not a CIDR range (expected e.g. '10.244.0.0/16')") from None


def _same_family(items: Sequence) -> list:
    """Keep the items of the first item's family: dual-stack nodes list an IPv4 and an IPv6 entry."""
    return [item for item in items if item.version == items[0].version]


def _common_network(first: int, last: int, version: int, max_prefix: int) -> Network:
    """The smallest network holding the integer addresses first..last, at most `max_prefix` long."""
    bits = ipaddress.IPV4LENGTH if version == 4 else ipaddress.IPV6LENGTH
    prefix = min(bits - (first ^ last).bit_length(), max_prefix)
    return ipaddress.ip_network((first, prefix), strict=False)


def node_network(node_ips: list[str], widest_prefix: int = IPV4_NODE_NETWORK_PREFIX) -> Network | None:
    """The network the nodes sit on, as far as their addresses tell: None without node IPs.

    It is the smallest network holding every node IP, widened to at least `widest_prefix` (/64 for
    IPv6) because a real node network is never as narrow as the few addresses a small cluster uses.
    When the cluster knows better (the lab's subnet, the VPC's CIDR) pass that to `classify()`.
    """
    addresses = _same_family([_address(ip) for ip in node_ips])
    if not addresses:
        return None
    max_prefix = widest_prefix if addresses[0].version == 4 else IPV6_NODE_NETWORK_PREFIX
    values = [int(a) for a in addresses]
    return _common_network(min(values), max(values), addresses[0].version, max_prefix)


def pod_range(pod_cidrs: list[str]) -> Network | None:
    """The smallest range holding every node's podCIDR: None without podCIDRs.

    This is what the cluster's pod range spans at least; the configured range (kube-controller-
    manager's --cluster-cidr) may be wider, since nodes not created yet get podCIDRs from it too.
    """
    networks = _same_family([_network(cidr) for cidr in pod_cidrs])
    if not networks:
        return None
    first = min(int(n.network_address) for n in networks)
    last = max(int(n.broadcast_address) for n in networks)
    widest = min(n.prefixlen for n in networks)
    return _common_network(first, last, networks[0].version, widest)


@dataclass(frozen=True)
class NetworkModel:
    """The verdict on a cluster's network model, with the numbers and the evidence behind it.

    A verdict is only as good as the node network it compares with. Given by the learner (the VPC
    or node subnet), it is a fact; inferred from a few node IPs it is a guess, and `guessing` and
    `reason` say so, so that no learner takes a /16 drawn around three nodes for their VPC.
    """

    model: str
    node_network: str | None
    pod_range: str | None
    pods_in_node_network: int
    pods_considered: int
    reason: str
    evidence: str
    node_network_source: str
    guessing: bool

    @property
    def label(self) -> str:
        """The model in words a learner can match to the article (pods on the node subnet, like EKS,
        or on their own range, like kubespray)."""
        return MODEL_LABELS[self.model]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _inferred_source(net: Network) -> str:
    widest = IPV4_NODE_NETWORK_PREFIX if net.version == 4 else IPV6_NODE_NETWORK_PREFIX
    return (f"inferred from the node IPs (a guess: {net}, the smallest range holding them all, "
            f"widened to at least a /{widest})")


def check_node_subnet(value: str, node_ips: Sequence[str] = ()) -> Network:
    """The node subnet (or VPC range) a learner gives, checked: a CIDR with its prefix length that
    holds at least one of `node_ips` of its family. A bare address or a range beside the nodes is
    almost always a typo, and a verdict on it would be confidently wrong, so both are refused."""
    if not isinstance(value, str) or "/" not in value:
        raise InvalidInput(f"node subnet {value!r} is not a CIDR range with its prefix length "
                           "(expected your VPC or node subnet, e.g. '10.0.0.0/16')")
    net = _network(value)
    family = [ip for ip in map(_address, node_ips) if ip.version == net.version]
    if family and not any(ip in net for ip in family):
        raise InvalidInput(f"none of the node IPs ({', '.join(map(str, family))}) lie in the node subnet {net} "
                           "you gave; give the range the nodes' InternalIPs come from (your VPC's CIDR)")
    return net


def _verdict_from_pod_ips(node_net: Network, pods: list[Address], pod_net: Network | None) -> tuple[str, int, str]:
    inside = sum(ip in node_net for ip in pods)
    own_range = f" ({pod_net} at least)" if pod_net else ""
    share = inside / len(pods)
    counted = f"{inside} of {len(pods)} pod IPs ({share:.0%}) lie inside the node network {node_net}"
    if share >= FLAT_MIN_SHARE:
        return "flat", inside, f"{counted}, so pods take their addresses from the nodes' own range."
    if share <= SEPARATE_MAX_SHARE:
        return "separate", inside, (
            f"{counted}, so pods use a range of their own{own_range}, carried between nodes by the nodes' "
            "routes, an overlay, or the underlying network (GKE VPC-native, AKS kubenet): the addresses alone "
            "do not tell which (still without NAT between pods)."
        )
    return "mixed", inside, f"{counted}: some pods use node addresses and others a separate range."


def _verdict_from_pod_cidrs(node_net: Network, pods: Network) -> tuple[str, str]:
    where = f"The nodes' podCIDRs span {pods} and the node network is {node_net}"
    if pods.version == node_net.version and pods.subnet_of(node_net):
        return "flat", f"{where}: pod addresses come from the node network (no pod IPs to count yet)."
    if pods.version != node_net.version or not pods.overlaps(node_net):
        return "separate", f"{where}: pods get a range of their own (no pod IPs to count yet)."
    return "mixed", f"{where}: the two ranges overlap only in part (no pod IPs to count yet)."


def classify(
    node_ips: list[str],
    pod_ips: list[str],
    pod_cidrs: Sequence[str] = (),
    node_subnet: str | None = None,
) -> NetworkModel:
    """Decide whether pods sit on the node subnet ('flat') or on a range of their own ('separate').

    `pod_ips` are the IPs of pods NOT on the host network (those share the node's address and would
    make any cluster look flat); the caller filters them. The node network is `node_subnet` when
    given (checked by `check_node_subnet()`), else inferred from the node IPs by `node_network()`, and
    the verdict then says it is guessing: nodes spread over distant addresses infer a wide network,
    and three nodes in a big VPC infer a /16 the VPC may not be. The verdict counts the pod IPs of
    the node network's family (a dual-stack pod's other address says nothing about it); with none
    yet it compares the nodes' podCIDRs to the node network.
    """
    if node_subnet is not None:
        node_net, source = check_node_subnet(node_subnet, node_ips), NODE_NETWORK_GIVEN
    else:
        node_net = node_network(node_ips)
        source = _inferred_source(node_net) if node_net else "none: no node IP and no node subnet was given"
    guessing = node_net is not None and node_subnet is None
    pods = [ip for ip in map(_address, pod_ips) if node_net is None or ip.version == node_net.version]
    pod_net = pod_range(list(pod_cidrs))
    node_text = str(node_net) if node_net else None
    pod_text = str(pod_net) if pod_net else None
    if pods:
        evidence = f"the IPs of {_plural(len(pods), 'pod')} not on the host network"
    elif pod_net is not None:
        evidence = "the nodes' podCIDRs (no pod IPs yet)"
    else:
        evidence = "none: no pod IPs and no podCIDRs"
    known = {"evidence": evidence, "node_network_source": source, "guessing": guessing}
    caveat = (f" The node network {node_net} is a guess from the node IPs; pass the real node subnet or VPC "
              "range as node_subnet=... to be sure." if guessing else "")
    if node_net is None:
        return NetworkModel("unknown", None, pod_text, 0, len(pods),
                            "No node IP or node subnet was given, so there is no node network to compare with.",
                            **known)
    if pods:
        model, inside, reason = _verdict_from_pod_ips(node_net, pods, pod_net)
        return NetworkModel(model, node_text, pod_text, inside, len(pods), reason + caveat, **known)
    if pod_net is not None:
        model, reason = _verdict_from_pod_cidrs(node_net, pod_net)
        return NetworkModel(model, node_text, pod_text, 0, 0, reason + caveat, **known)
    return NetworkModel("unknown", node_text, None, 0, 0,
                        f"No pod IPs and no podCIDRs were given to compare with the node network {node_net}.",
                        **known)


def article_samples() -> pd.DataFrame:
    """The two `kubectl get pod -o wide` samples of the article's section 2, as data."""
    return pd.DataFrame([
        {"cluster": "EKS (AWS VPC CNI)", "pod": "nginx-hello-7d95c6dbcb-8dnbs", "pod_ip": "10.110.23.249",
         "node": "ip-10-110-24-222.ap-southeast-1.compute.internal", "node_ip": "10.110.24.222"},
        {"cluster": "native (kubespray)", "pod": "netshoot-796845c847-t888l", "pod_ip": "10.233.104.127",
         "node": "master1", "node_ip": "192.168.1.101"},
    ])


def article_verdicts() -> pd.DataFrame:
    """`classify()` applied to each article sample: what the learner's own cluster is compared to.

    One node IP per sample, so the node network is inferred (a /16) and each reason says so."""
    rows = []
    for sample in article_samples().itertuples(index=False):
        verdict = classify([sample.node_ip], [sample.pod_ip])
        rows.append({"cluster": sample.cluster, "model": verdict.model, "verdict": verdict.label,
                     "reason": verdict.reason})
    return pd.DataFrame(rows)


def guess_cni(daemonset_names: Iterable[str]) -> str:
    """Name the CNI plugin from DaemonSet names (first match in CNI_DAEMONSETS).

    The table's order, not the API's listing order, decides between several matches, so the answer
    is the same on every run.
    """
    names = list(daemonset_names)
    for prefix, plugin in CNI_DAEMONSETS:
        if any(name.startswith(prefix) for name in names):
            return plugin
    return UNKNOWN_CNI


def addresses(cidr: str) -> int:
    """Total addresses in a range: a /20 holds 4096 (the article's minimum VPC advice for EKS)."""
    return _network(cidr).num_addresses


def usable_pod_ips(cidr: str) -> int:
    """Pod addresses one node's podCIDR provides with host-local IPAM: 253 on a /24.

    Assumes the bridge/ptp plugins with host-local IPAM (kindnet, Flannel, kubenet): it skips the
    network address, the gateway (the first address, kept for the node side) and, on IPv4, the
    broadcast address. Calico's block IPAM and the AWS VPC CNI's ENI slots count differently.
    """
    network = _network(cidr)
    reserved = HOST_LOCAL_RESERVED_IPV4 if network.version == 4 else HOST_LOCAL_RESERVED_IPV6
    return max(network.num_addresses - reserved, 0)


def _whole(name: str, value: int, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidInput(f"{name} must be a whole number of at least {least}, got {value!r}")


def aws_max_pods(enis: int, ipv4_per_eni: int) -> int:
    """EKS max pods per node with the VPC CNI, without prefix delegation.

    AWS's formula: each ENI's primary address is the ENI's own, the others go to pods, and two
    host-network pods (aws-node, kube-proxy) come on top: enis * (ipv4_per_eni - 1) + 2.
    """
    _whole("enis", enis, 1)
    _whole("ipv4_per_eni", ipv4_per_eni, 1)
    return enis * (ipv4_per_eni - 1) + AWS_HOST_NETWORK_PODS


def node_vpc_addresses(enis: int, ipv4_per_eni: int) -> int:
    """VPC addresses a full node holds with the VPC CNI (no prefix delegation): every address of
    every ENI, each ENI's primary included, enis * ipv4_per_eni.

    Not one per pod: with the default warm pool (WARM_ENI_TARGET=1) the CNI fills each ENI it
    attaches with secondary addresses whether pods use them yet or not, and a node at max pods has
    all its ENIs attached. An m5.large (3 ENIs x 10) holds 30 addresses for its 29 max pods, two of
    which (aws-node, kube-proxy) run on the node's own address.
    """
    _whole("enis", enis, 1)
    _whole("ipv4_per_eni", ipv4_per_eni, 1)
    return enis * ipv4_per_eni


def aws_max_pods_table() -> pd.DataFrame:
    """`aws_max_pods()` for the instance types in AWS_ENI_LIMITS (instance_type, enis, ...)."""
    return pd.DataFrame([
        {"instance_type": kind, "enis": enis, "ipv4_per_eni": per_eni, "max_pods": aws_max_pods(enis, per_eni)}
        for kind, (enis, per_eni) in AWS_ENI_LIMITS.items()
    ])


@dataclass(frozen=True)
class VpcCapacity:
    """Whether a subnet holds a number of full VPC-CNI nodes, with the numbers behind the answer."""

    cidr: str
    addresses: int
    usable: int
    nodes: int
    addresses_per_node: int
    max_pods_per_node: int
    used: int
    share: float
    fits: bool
    max_nodes: int
    summary: str


def _aws_subnet(cidr: str) -> ipaddress.IPv4Network:
    network = _network(cidr)
    if network.version != 4 or not AWS_WIDEST_SUBNET <= network.prefixlen <= AWS_NARROWEST_SUBNET:
        raise InvalidInput(f"{cidr!r} is not an IPv4 range AWS allows for a VPC or subnet "
                           f"(/{AWS_WIDEST_SUBNET} to /{AWS_NARROWEST_SUBNET}, e.g. '10.0.0.0/20')")
    return network


def max_nodes(vpc_cidr: str, enis: int, ipv4_per_eni: int) -> int:
    """The most full nodes (every ENI attached, see `node_vpc_addresses`) that fit in `vpc_cidr`
    taken as one subnet, after AWS's 5 reserved addresses."""
    usable = _aws_subnet(vpc_cidr).num_addresses - AWS_RESERVED_PER_SUBNET
    return usable // node_vpc_addresses(enis, ipv4_per_eni)


def vpc_capacity(vpc_cidr: str, nodes: int, enis: int, ipv4_per_eni: int) -> VpcCapacity:
    """Whether `nodes` full nodes of an instance type (`enis` ENIs of `ipv4_per_eni` IPv4 addresses)
    fit in `vpc_cidr`, taken as one subnet.

    Counts what a full node consumes from the subnet, every address of every attached ENI
    (`node_vpc_addresses`), not one per pod, and takes off the 5 addresses AWS reserves in every
    subnet (a VPC split into several subnets loses 5 in each). Nodes with fewer pods than their
    maximum may hold fewer ENIs, so this is the worst case a cluster must be sized for.
    """
    _whole("nodes", nodes, 0)
    network = _aws_subnet(vpc_cidr)
    usable = network.num_addresses - AWS_RESERVED_PER_SUBNET
    per_node = node_vpc_addresses(enis, ipv4_per_eni)
    used = nodes * per_node
    share = used / usable
    fits = used <= usable
    most = max_nodes(vpc_cidr, enis, ipv4_per_eni)
    summary = (
        f"/{network.prefixlen} = {network.num_addresses} addresses, {usable} after the {AWS_RESERVED_PER_SUBNET} "
        f"AWS reserves; a full node ({enis} ENIs x {ipv4_per_eni} addresses, all attached) holds {per_node}: "
        f"{nodes} nodes use {used} ({share * PERCENT:.0f}%), " + ("fits" if fits else "does not fit")
        + f"; at most {most} full nodes fit"
    )
    return VpcCapacity(str(network), network.num_addresses, usable, nodes, per_node, aws_max_pods(enis, ipv4_per_eni),
                       used, share, fits, most, summary)


def contains(cidr: str | None, ip: str | None) -> bool | None:
    """Whether `ip` lies in `cidr`; None when either is missing (an unknown, not a no).

    Called once per pod when building tables of 100,000+ pods, so it avoids `ipaddress` objects
    (several microseconds each): addresses become integers through the C-level inet_pton, and each
    distinct CIDR is parsed once.
    """
    if not cidr or not ip:
        return None
    version, first, last = _bounds(cidr)
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    try:
        value = int.from_bytes(socket.inet_pton(family, ip), "big")
    except OSError:
        return False  # the other address family, or not an address: not inside
    return first <= value <= last


@functools.lru_cache(maxsize=4096)
def _bounds(cidr: str) -> tuple[int, int, int]:
    net = _network(cidr)
    return net.version, int(net.network_address), int(net.broadcast_address)


def models_side_by_side(model: NetworkModel) -> pd.DataFrame:
    """The article's two samples with their verdicts, and the learner's cluster as a third row.

    attrs['closest'] names the article's cluster with the same verdict, or None."""
    table = article_samples().merge(article_verdicts(), on="cluster")
    mine = {"cluster": "your cluster", "pod_ip": None, "node_ip": None, "model": model.model,
            "verdict": model.label, "reason": model.reason}
    table = pd.concat([table, pd.DataFrame([mine])], ignore_index=True)
    closest = table[(table["model"] == model.model) & (table["cluster"] != "your cluster")]["cluster"]
    table = table[["cluster", "pod_ip", "node_ip", "verdict", "reason"]]
    table.attrs["closest"] = closest.iloc[0] if len(closest) else None
    return table


def eni_limits(instance_type: str) -> tuple[int, int]:
    """(ENIs, IPv4 addresses per ENI) of an instance type the course knows (AWS_ENI_LIMITS)."""
    if instance_type not in AWS_ENI_LIMITS:
        raise InvalidInput(f"unknown instance type {instance_type!r}; the course knows "
                           f"{', '.join(AWS_ENI_LIMITS)}")
    return AWS_ENI_LIMITS[instance_type]
