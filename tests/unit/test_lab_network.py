"""The lab's two network models as data: address plans, CNI chains, node sysctls, and the node
inspection helpers' parsing and refusals (no lab, no root or namespace needed)."""
from __future__ import annotations

import ipaddress
import json

import pytest

from k8snb.errors import InvalidInput, LabError
from k8snb.lab import inspect, netns, realnodes
from k8snb.lab.plan import NETWORK_DEFAULTS, LabPlan


def test_routed_keeps_pods_apart_from_the_nodes():
    plan = LabPlan(network="routed")
    assert (plan.node_subnet, plan.pod_cidr) == ("172.29.0.0/24", "10.244.0.0/16")
    assert not ipaddress.ip_network(plan.pod_cidr).overlaps(ipaddress.ip_network(plan.node_subnet))


def test_flat_hands_out_part_of_the_node_subnet():
    plan = LabPlan(network="flat")
    nodes, pods = ipaddress.ip_network(plan.node_subnet), ipaddress.ip_network(plan.pod_cidr)
    assert (str(nodes), str(pods)) == NETWORK_DEFAULTS["flat"]
    assert pods.subnet_of(nodes)
    assert not any(ipaddress.ip_address(ip) in pods for ip in (plan.host_ip, *plan.node_ips().values()))
    assert plan.node_ips()["k8snb-worker"] == "172.29.0.3" and plan.host_ip == "172.29.0.1"
    d = plan.as_dict()
    assert (d["network"], d["node_subnet"], d["pod_cidr"]) == ("flat", "172.29.0.0/16", "172.29.128.0/17")


def test_plan_round_trips_through_its_file(tmp_path):
    for network in NETWORK_DEFAULTS:
        LabPlan(network=network, nodes_mode="real").save(tmp_path / "plan.json")
        assert LabPlan.load(tmp_path / "plan.json") == LabPlan(network=network, nodes_mode="real")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"network": "flat", "pod_cidr": "10.244.0.0/16"}, "must be a part of the node subnet"),
    ({"network": "flat", "pod_cidr": "172.29.0.0/17"}, "holds the lab's own addresses 172.29.0.1"),
    ({"network": "routed", "pod_cidr": "172.29.0.0/16"}, "overlaps the node range"),
    ({"network": "overlay"}, "unknown network model 'overlay'"),
])
def test_incoherent_plans_are_refused(kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        LabPlan(**kwargs)


def test_routed_cni_is_a_bridge_and_flat_cni_a_veth_per_pod(tmp_path):
    routed = realnodes._cni_config(LabPlan(network="routed"), tmp_path, "10.244.1.0/24")["plugins"]
    flat = realnodes._cni_config(LabPlan(network="flat"), tmp_path, "172.29.129.0/24")["plugins"]
    assert [p["type"] for p in routed] == ["bridge", "portmap"] and routed[0]["bridge"] == "cni0"
    assert [p["type"] for p in flat] == ["ptp", "portmap"]
    for chain, cidr, gateway in ((routed, "10.244.1.0/24", "10.244.1.1"), (flat, "172.29.129.0/24", "172.29.129.1")):
        assert chain[0]["ipMasq"] is False  # no NAT between pods in either model
        assert chain[0]["ipam"]["ranges"] == [[{"subnet": cidr, "gateway": gateway}]]


def test_only_flat_nodes_answer_arp_for_their_pods():
    flat = netns._node_sysctls(LabPlan(network="flat"))
    assert "net.ipv4.conf.eth0.proxy_arp=1" in flat and "net.ipv4.neigh.eth0.proxy_delay=0" in flat
    assert not any("proxy_arp" in s for s in netns._node_sysctls(LabPlan(network="routed")))


ROUTES = json.dumps([
    {"dst": "default", "gateway": "172.29.0.1", "dev": "eth0", "flags": []},
    {"dst": "172.29.0.0/16", "dev": "eth0", "protocol": "kernel", "scope": "link", "prefsrc": "172.29.0.3",
     "flags": []},
    {"dst": "172.29.129.2", "dev": "veth1a2b3c4d", "scope": "host", "flags": []},
    {"type": "blackhole", "dst": "10.244.0.0/16", "flags": []},
])
LINKS = json.dumps([
    {"ifindex": 1, "ifname": "lo", "mtu": 65536, "operstate": "UNKNOWN", "link_type": "loopback",
     "address": "00:00:00:00:00:00", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8},
                                                   {"family": "inet6", "local": "::1", "prefixlen": 128}]},
    {"ifindex": 5, "ifname": "veth1a2b3c4d", "mtu": 1500, "operstate": "UP", "link_type": "ether",
     "address": "aa:bb:cc:dd:ee:ff", "master": "cni0", "linkinfo": {"info_kind": "veth"},
     "addr_info": [{"family": "inet", "local": "172.29.129.1", "prefixlen": 32}]},
])


def test_routes_parse_into_a_table():
    frame = inspect.routes_frame(ROUTES)
    assert list(frame.columns) == inspect.ROUTE_COLUMNS
    assert frame["type"].tolist() == ["unicast", "unicast", "unicast", "blackhole"]
    assert frame.set_index("dst").loc["172.29.129.2", "dev"] == "veth1a2b3c4d"
    assert inspect.routes_frame("").empty


def test_links_parse_into_a_table():
    frame = inspect.links_frame(LINKS).set_index("ifname")
    assert frame.loc["lo", "addresses"] == ["127.0.0.1/8"]
    assert frame.loc["veth1a2b3c4d", ["kind", "master", "addresses"]].tolist() == ["veth", "cni0", ["172.29.129.1/32"]]


def test_simulated_nodes_have_no_namespace_to_inspect(tmp_path, monkeypatch):
    monkeypatch.setenv("K8SNB_STATE", str(tmp_path))
    with pytest.raises(LabError, match="no lab runs"):
        inspect.node_routes("k8snb-worker")
    (tmp_path / "lab").mkdir()
    LabPlan(nodes_mode="kwok", network="flat").save(tmp_path / "lab" / "plan.json")
    for call in (inspect.node_routes, inspect.node_links, inspect.node_iptables):
        with pytest.raises(LabError, match="simulated nodes have no network namespace"):
            call("k8snb-worker")
    with pytest.raises(InvalidInput, match="unknown lab node 'worker9'"):
        inspect.node_routes("worker9")
    with pytest.raises(InvalidInput, match="unknown iptables table"):
        inspect.node_iptables("k8snb-worker", "nat; reboot")
