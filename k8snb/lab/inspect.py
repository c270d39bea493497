"""A real node's network seen from inside: its routes, interfaces and NAT rules, and the address plan.

The course explains each network model's data path (routed: a bridge and a route per other node's
podCIDR; flat: a veth and /32 route per pod, and proxy ARP) with the node's own tables rather than a
diagram: `ip -j route`, `ip -j -d addr` and `iptables-save` run inside the node's network namespace
through nsenter (argv lists, no shell; root only, like the real lab itself). Simulated (kwok) nodes
have no namespace, so these raise LabError there; `address_plan()` works with both.
"""
from __future__ import annotations

import ipaddress
import json
import os

import pandas as pd

from ..errors import InvalidInput, LabError
from .api import node_pod_cidrs
from .commands import run
from .constants import CLUSTER_DOMAIN, NETNS_DIR
from .plan import LabPlan, state_dir

ROUTE_COLUMNS = ["dst", "gateway", "dev", "scope", "protocol", "prefsrc", "type"]
LINK_COLUMNS = ["ifname", "kind", "master", "state", "mac", "mtu", "addresses"]
IPTABLES_TABLES = ("nat", "filter", "mangle", "raw")


def current_plan() -> LabPlan:
    """The running lab's plan, read from its state directory (LabError when none runs there)."""
    path = state_dir() / "plan.json"
    if not path.exists():
        raise LabError(f"no lab runs with state directory {path.parent}; start one with `k8snb lab up`")
    return LabPlan.load(path)


def _in_node(node: str, argv: list[str]) -> str:
    """argv's output inside `node`'s network namespace (nsenter, network namespace only)."""
    plan = current_plan()
    if node not in plan.node_names:
        raise InvalidInput(f"unknown lab node {node!r}; the lab's nodes are {', '.join(plan.node_names)}")
    if plan.nodes_mode != "real":
        raise LabError(f"node {node} is simulated (kwok): simulated nodes have no network namespace; "
                       "start the lab with `k8snb lab up --nodes real` (as root) to look inside one")
    if os.geteuid() != 0:
        raise LabError(f"entering node {node}'s network namespace needs root (nsenter), like the real lab")
    pin = NETNS_DIR / node
    if not pin.exists():
        raise LabError(f"node {node} has no network namespace at {pin}: is the real lab running?")
    return run(["nsenter", f"--net={pin}", "--", *argv], f"`{' '.join(argv)}` in node {node}").stdout


def routes_frame(ip_json: str) -> pd.DataFrame:
    """`ip -j route` output as a table, one row per route (type 'unicast' when ip leaves it out)."""
    rows = [{**{c: r.get(c) for c in ROUTE_COLUMNS}, "type": r.get("type", "unicast")}
            for r in json.loads(ip_json or "[]")]
    return pd.DataFrame(rows, columns=ROUTE_COLUMNS)


def links_frame(ip_json: str) -> pd.DataFrame:
    """`ip -j -d addr` output as a table: each interface, its kind (veth, bridge ...), the bridge
    it is a port of, and its IPv4 addresses as 'address/prefix'."""
    rows = [{
        "ifname": link["ifname"],
        "kind": link.get("linkinfo", {}).get("info_kind") or link.get("link_type"),
        "master": link.get("master"),
        "state": link.get("operstate"),
        "mac": link.get("address"),
        "mtu": link.get("mtu"),
        "addresses": [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("family") == "inet"],
    } for link in json.loads(ip_json or "[]")]
    return pd.DataFrame(rows, columns=LINK_COLUMNS)


def node_routes(node: str) -> pd.DataFrame:
    """The node's main routing table: which next hop a packet for each range takes."""
    return routes_frame(_in_node(node, ["ip", "-j", "route", "show"]))


def node_links(node: str) -> pd.DataFrame:
    """The node's interfaces: eth0 on the lab bridge, and the pods' veths (and cni0 when routed)."""
    return links_frame(_in_node(node, ["ip", "-j", "-d", "addr", "show"]))


def node_iptables(node: str, table: str = "nat") -> str:
    """`iptables-save -t <table>` in the node: with 'nat', kube-proxy's Service DNAT and masquerade rules."""
    if table not in IPTABLES_TABLES:
        raise InvalidInput(f"unknown iptables table {table!r}; use one of {', '.join(IPTABLES_TABLES)}")
    return _in_node(node, ["iptables-save", "-t", table])


def address_plan() -> dict:
    """The running lab's addresses by network model: the node subnet, the pod range and each node's
    podCIDR (from the API), the service range and DNS address. Works with kwok and real nodes."""
    plan = current_plan()
    return {
        "network": plan.network,
        "nodes_mode": plan.nodes_mode,
        "node_subnet": plan.node_subnet,
        "host_ip": plan.host_ip,
        "node_ips": plan.node_ips(),
        "pod_range": plan.pod_cidr,
        "node_pod_cidrs": node_pod_cidrs(plan),
        "pods_inside_node_subnet": ipaddress.ip_network(plan.pod_cidr).subnet_of(
            ipaddress.ip_network(plan.node_subnet)),
        "service_range": plan.service_cidr,
        "api_server_ip": plan.api_server_ip,
        "dns_ip": plan.dns_ip,
        "cluster_domain": CLUSTER_DOMAIN,
    }
