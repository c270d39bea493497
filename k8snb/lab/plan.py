"""The lab's address plan and file layout, as plain data.

Everything the lab starts is derived from one `LabPlan`, so `k8snb lab status`, the course and the
tests all read the same numbers the processes were started with.

Two network models, the two clusters of the article's section 2:
  routed  pods on a range of their own (10.244.0.0/16, like kind or kubespray); nodes route each
          other's podCIDRs. Node subnet 172.29.0.0/24.
  flat    pods take addresses from the node subnet itself, like the AWS VPC CNI: node subnet
          172.29.0.0/16 (nodes at .0.2-.0.4), pods from its upper half 172.29.128.0/17.
"""
from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType

from ..errors import InvalidInput, LabError
from .constants import CLUSTER_DOMAIN, CONTEXT, NODE_NAMES
from .secure import read_private, write_private

#: kind's default, so that what learners see on the lab matches what they see on kind.
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
#: Network model -> (node subnet, pod range). The node subnet is private and unused by kind
#: (172.18/16), Docker (172.17/16) or podman (10.88/16); nothing routes it off the machine (in kwok
#: mode no interface carries it at all). Routed: kind's pod range, apart from the nodes. Flat: a
#: VPC-sized /16 (the article advises at least a /20) whose upper half is handed out to pods, as the
#: VPC CNI hands out the VPC's own addresses; the nodes keep the lower half.
NETWORK_DEFAULTS = MappingProxyType({
    "routed": ("172.29.0.0/24", "10.244.0.0/16"),
    "flat": ("172.29.0.0/16", "172.29.128.0/17"),
})
#: One /24 per node, like kind and kubeadm: 254 pod addresses per node.
NODE_CIDR_MASK = 24
NODE_PORT_RANGE = "30000-32767"
API_PORT = 6443
#: etcd listens on loopback on ports away from a system etcd's 2379/2380 (peer: client + 1).
ETCD_PORT = 12379


def state_dir() -> Path:
    """Where a running lab keeps its certificates, kubeconfig, data and logs."""
    base = os.environ.get("K8SNB_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "k8snb"
    )
    return Path(base) / "lab"


def cache_dir() -> Path:
    """Where built or downloaded binaries are kept, keyed by version (outside any checkout)."""
    return Path(os.environ.get("K8SNB_CACHE") or os.path.expanduser("~/.cache/k8snb"))


def _network(value: str, what: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise InvalidInput(f"invalid {what} {value!r}: {exc}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise InvalidInput(f"invalid {what} {value!r}: the lab is IPv4-only")
    return net


@dataclass(frozen=True)
class LabPlan:
    """Addresses and names of one lab cluster."""

    nodes_mode: str = "kwok"
    pod_cidr: str = ""  # empty: the network model's default (NETWORK_DEFAULTS)
    service_cidr: str = DEFAULT_SERVICE_CIDR
    node_subnet: str = ""  # empty: the network model's default
    node_names: tuple[str, ...] = NODE_NAMES
    api_port: int = API_PORT
    etcd_port: int = ETCD_PORT
    network: str = "routed"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.network not in NETWORK_DEFAULTS:
            raise InvalidInput(f"unknown network model {self.network!r}: use 'routed' or 'flat'")
        default_nodes, default_pods = NETWORK_DEFAULTS[self.network]
        object.__setattr__(self, "node_subnet", self.node_subnet or default_nodes)
        object.__setattr__(self, "pod_cidr", self.pod_cidr or default_pods)
        pods = _network(self.pod_cidr, "pod CIDR")
        services = _network(self.service_cidr, "service CIDR")
        nodes = _network(self.node_subnet, "node subnet")
        if pods.prefixlen > NODE_CIDR_MASK - 2:
            raise InvalidInput(
                f"pod CIDR {self.pod_cidr} is too small: each node takes a /{NODE_CIDR_MASK}, "
                f"so use a /{NODE_CIDR_MASK - 2} or wider"
            )
        if services.prefixlen > 28 or services.prefixlen < 12:
            raise InvalidInput(f"service CIDR {self.service_cidr} must be between /12 and /28 (API server limits)")
        pairs = [(pods, services, "pod", "service"), (services, nodes, "service", "node")]
        if self.network == "routed":
            pairs.append((pods, nodes, "pod", "node"))
        for a, b, an, bn in pairs:
            if a.overlaps(b):
                raise InvalidInput(f"the {an} range {a} overlaps the {bn} range {b}; pick disjoint ranges")
        if self.network == "flat":
            self._check_flat(pods, nodes)
        if self.nodes_mode not in ("kwok", "real"):
            raise InvalidInput(f"unknown nodes mode {self.nodes_mode!r}: use 'kwok' or 'real'")
        if not 1024 <= self.api_port <= 65535:
            raise InvalidInput(f"API port {self.api_port} must be between 1024 and 65535")

    def _check_flat(self, pods: ipaddress.IPv4Network, nodes: ipaddress.IPv4Network) -> None:
        """Flat: pods come from inside the node subnet, but never take the host's or a node's address."""
        if not pods.subnet_of(nodes) or pods == nodes:
            raise InvalidInput(f"with --network flat the pod range {pods} must be a part of the node subnet "
                               f"{nodes} (default {NETWORK_DEFAULTS['flat'][1]})")
        taken = [ip for ip in (self.host_ip, *self.node_ips().values()) if ipaddress.ip_address(ip) in pods]
        if taken:
            raise InvalidInput(f"the pod range {pods} holds the lab's own addresses {', '.join(taken)} "
                               f"(host .1, nodes .2 up); pick a range after them")

    @property
    def host_ip(self) -> str:
        """The host's address on the lab bridge: .1 of the node subnet."""
        return str(next(ipaddress.ip_network(self.node_subnet).hosts()))

    @property
    def api_bind(self) -> str:
        """Where kube-apiserver listens, and the only address: loopback for simulated nodes; the
        lab bridge's host address for real nodes, whose kubelets reach it from their namespaces.
        Never every address of the machine."""
        return self.host_ip if self.nodes_mode == "real" else "127.0.0.1"

    @property
    def api_host(self) -> str:
        """The address the host's own clients (kubeconfig, the lab's checks) use: always loopback.
        With real nodes a rule the lab adds in the nat table's OUTPUT chain sends it on to the bridge
        address; once the lab is down, a stale client is refused on loopback, and no request for the
        bridge address, which no longer exists, can leave the machine by the default route."""
        return "127.0.0.1"

    @property
    def api_server_ip(self) -> str:
        """The `kubernetes` Service's ClusterIP: the first address of the service range."""
        return str(next(ipaddress.ip_network(self.service_cidr).hosts()))

    @property
    def dns_ip(self) -> str:
        """kube-dns's ClusterIP: the 10th address of the service range, as kubeadm and kind use."""
        return str(ipaddress.ip_network(self.service_cidr).network_address + 10)

    def node_ips(self) -> dict[str, str]:
        """Node name -> InternalIP: .2, .3, ... of the node subnet (.1 is the host side)."""
        base = ipaddress.ip_network(self.node_subnet).network_address
        return {name: str(base + 2 + i) for i, name in enumerate(self.node_names)}

    def as_dict(self) -> dict:
        """The plan as the course reads it: ranges, node IPs, DNS and API addresses."""
        d = asdict(self)
        d.update(api_server_ip=self.api_server_ip, dns_ip=self.dns_ip, host_ip=self.host_ip,
                 api_host=self.api_host, api_bind=self.api_bind,
                 node_ips=self.node_ips(), cluster_domain=CLUSTER_DOMAIN, node_port_range=NODE_PORT_RANGE,
                 context=CONTEXT)
        return d

    def save(self, path: Path) -> None:
        write_private(path, json.dumps(self.as_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "LabPlan":
        """The plan a lab was started with; LabError in one line when the file is empty or corrupt."""
        try:
            d = json.loads(read_private(path))
            return cls(nodes_mode=d["nodes_mode"], pod_cidr=d["pod_cidr"], service_cidr=d["service_cidr"],
                       node_subnet=d["node_subnet"], node_names=tuple(d["node_names"]),
                       api_port=d["api_port"], etcd_port=d.get("etcd_port", ETCD_PORT),
                       network=d.get("network", "routed"))
        except (ValueError, KeyError, TypeError, InvalidInput) as exc:
            raise LabError(f"the lab's plan {path} is corrupt ({type(exc).__name__}: {exc}); "
                           "`k8snb lab down` still removes the lab by its names") from None
