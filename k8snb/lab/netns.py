"""The real nodes' network: one network namespace per node on a lab bridge, and host guard rails.

Layout (defaults; the routed model's node subnet is a /24, the flat model's a /16):

    host  k8snb0 172.29.0.1 ── k8snb-veth0 ══ eth0 172.29.0.2  netns k8snb-control-plane
                            ── k8snb-veth1 ══ eth0 172.29.0.3  netns k8snb-worker
                            ── k8snb-veth2 ══ eth0 172.29.0.4  netns k8snb-worker2

How a pod reaches a pod on another node depends on the network model (`LabPlan.network`):

- routed: pods hang off the CNI bridge `cni0` with addresses from the node's podCIDR (10.244.x.0/24),
  and each node routes every other node's podCIDR via that node's IP (`route_pods`), as kube-router
  or Calico without encapsulation do. The pod range is separate from the node subnet.
- flat: pods get addresses from the node subnet itself (podCIDRs are /24s of 172.29.128.0/17, inside
  172.29.0.0/16), as the AWS VPC CNI gives pods VPC addresses. The CNI is `ptp`: a veth per pod and
  a /32 route to it in the node's namespace. Every node's eth0 sits on the /16, so a node sends a
  packet for another node's pod straight onto the shared segment and asks by ARP who has it; the
  node holding the pod's /32 answers for it (proxy_arp on its eth0), as the VPC fabric knows which
  ENI holds each secondary IP. No per-node routes, no encapsulation, no NAT.

Either way pod traffic between nodes stays on the lab bridge and never needs the host to forward.
The host itself only originates or receives lab traffic (kubectl exec, NodePorts, the API server
and registry), so its ip_forward is left alone.

Safety: on the host, the routed pod range is a blackhole except the per-node /24s that point into
the lab (the flat pod range is part of the bridge's own subnet, reached by ARP on the bridge only);
the service range points at the control-plane node (whose kube-proxy answers it); FORWARD drops
anything crossing between the lab bridge and another interface; and a guard chain drops packets for
the lab subnet or the API port that arrive on any interface but loopback and the lab bridge.
"""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path

from .commands import run
from .constants import (ALIAS_PREFIX, BRIDGE, BRIDGE_CHAIN, COMMENT, GUARD_CHAIN, NETNS_DIR, NODE_NAMES,
                        REGISTRY_PORT, VETH_PREFIX)
from .plan import LabPlan
from .secure import read_private, write_private

#: Host-wide sysctls kubelet sets at start (KernelTunableModify; there is no warn-only mode). The
#: lab records their values before the nodes start and puts them back at `down`.
KUBELET_SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
                   "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes")


def veth(index: int) -> str:
    return f"{VETH_PREFIX}{index}"


def in_netns(netns: str, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["ip", "netns", "exec", netns, *argv], check=check)


def _guard_rules(plan: LabPlan) -> list[tuple[str, list[str]]]:
    """(chain, rule) pairs the lab adds to the host's filter table, in insertion order."""
    tag = ["-m", "comment", "--comment", COMMENT]
    return [
        # Frames between the nodes' ports of the lab bridge pass the host's FORWARD chain when
        # br_netfilter is loaded (kube-proxy needs it in the nodes): accept them, so that a host
        # whose FORWARD policy is DROP (any Docker engine sets it) still carries pod traffic.
        ("FORWARD", ["-i", BRIDGE, "-o", BRIDGE, *tag, "-j", "ACCEPT"]),
        ("FORWARD", ["-i", BRIDGE, "!", "-o", BRIDGE, *tag, "-j", "DROP"]),
        ("FORWARD", ["!", "-i", BRIDGE, "-o", BRIDGE, *tag, "-j", "DROP"]),
        ("INPUT", ["-d", plan.node_subnet, *tag, "-j", GUARD_CHAIN]),
        ("INPUT", ["-p", "tcp", "--dport", str(plan.api_port), *tag, "-j", GUARD_CHAIN]),
        ("INPUT", ["-i", BRIDGE, *tag, "-j", BRIDGE_CHAIN]),
    ]


def _bridge_chain_rules(plan: LabPlan) -> list[list[str]]:
    """BRIDGE_CHAIN: allowed traffic returns to INPUT (the host's own rules still apply to it);
    everything else from the lab, pods and nodes alike, is dropped: no host service bound to
    0.0.0.0 is reachable from a pod."""
    return [
        ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
        ["-p", "tcp", "-d", plan.host_ip, "--dport", str(plan.api_port), "-j", "RETURN"],
        ["-p", "tcp", "-d", plan.host_ip, "--dport", str(REGISTRY_PORT), "-j", "RETURN"],
        ["-j", "DROP"],
    ]


def _guard6_rules() -> list[tuple[str, list[str]]]:
    """The lab is IPv4-only: no IPv6 packet enters or crosses the host from the lab bridge."""
    tag = ["-m", "comment", "--comment", COMMENT]
    return [
        ("INPUT", ["-i", BRIDGE, *tag, "-j", "DROP"]),
        ("FORWARD", ["-i", BRIDGE, *tag, "-j", "DROP"]),
        ("FORWARD", ["-o", BRIDGE, *tag, "-j", "DROP"]),
    ]


def conflicts(plan: LabPlan) -> list[str]:
    """Host routes or leftovers that overlap the lab's ranges; the lab refuses to start over them."""
    found = []
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        found.append(f"interface {BRIDGE} exists (left by a lab whose state is gone? `ip link del {BRIDGE}`)")
    existing = set(run(["ip", "netns", "list"]).stdout.split())
    found += [f"network namespace {n} exists (`ip netns del {n}`)" for n in plan.node_names if n in existing]
    ranges = [ipaddress.ip_network(r) for r in (plan.node_subnet, plan.pod_cidr, plan.service_cidr)]
    for route in json.loads(run(["ip", "-j", "route", "show"]).stdout or "[]"):
        dst = route.get("dst", "")
        if dst in ("default", ""):
            continue
        net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        if any(net.overlaps(r) for r in ranges):
            found.append(f"host route {dst} dev {route.get('dev', '?')} overlaps the lab's ranges")
    return found


def owner(bridge: str = BRIDGE) -> Path | None:
    """The state directory of the lab that made the bridge, from its alias (None if unknown)."""
    try:
        alias = Path(f"/sys/class/net/{bridge}/ifalias").read_text().strip()
    except OSError:
        return None
    return Path(alias.removeprefix(ALIAS_PREFIX)) if alias.startswith(ALIAS_PREFIX) else None


def leftovers_by_name(state: Path) -> list[str]:
    """The lab's host objects found by their fixed names (the bridge, node namespaces, guard
    chains), when they belong to the lab of `state` or to a lab whose state is gone; none when
    the bridge says another lab, whose plan still exists, made them."""
    made_by = owner()
    if made_by is not None and made_by != state and (made_by / "plan.json").exists():
        return []
    found = [BRIDGE] if Path(f"/sys/class/net/{BRIDGE}").exists() else []
    netns = set(run(["ip", "netns", "list"], check=False).stdout.split())
    found += sorted(n for n in netns if n in NODE_NAMES)
    chains = run(["iptables", "-w", "-S"], check=False).stdout
    found += [c for c in (GUARD_CHAIN, BRIDGE_CHAIN) if f"-N {c}" in chains]
    return found


def create(plan: LabPlan, state: Path) -> None:
    """Bridge (its alias naming `state`), one namespace + veth per node, host routes and guard rules."""
    gw = plan.host_ip
    prefix = ipaddress.ip_network(plan.node_subnet).prefixlen
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "link", "set", BRIDGE, "alias", f"{ALIAS_PREFIX}{state}"])
    _disable_ipv6(BRIDGE)
    run(["ip", "addr", "add", f"{gw}/{prefix}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    for i, (name, ip) in enumerate(plan.node_ips().items()):
        run(["ip", "netns", "add", name])
        run(["ip", "link", "add", veth(i), "type", "veth", "peer", "name", "eth0", "netns", name])
        _disable_ipv6(veth(i))
        run(["ip", "link", "set", veth(i), "master", BRIDGE, "up"])
        run(["ip", "-n", name, "addr", "add", f"{ip}/{prefix}", "dev", "eth0"])
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        run(["ip", "-n", name, "link", "set", "eth0", "up"])
        # No default route: what is not the lab has no way out. Service IPs need a route so that
        # connect() reaches the nat table, where kube-proxy rewrites them.
        run(["ip", "-n", name, "route", "add", plan.service_cidr, "via", gw])
        in_netns(name, ["sysctl", "-qw", *_node_sysctls(plan)])
        in_netns(name, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
                 check=False)
    if plan.network == "routed":
        run(["ip", "route", "add", "blackhole", plan.pod_cidr])
    run(["ip", "route", "add", plan.service_cidr, "via", plan.node_ips()[plan.node_names[0]]])
    run(["iptables", "-w", "-N", GUARD_CHAIN])
    for rule in (["-i", "lo", "-j", "RETURN"], ["-i", BRIDGE, "-j", "RETURN"], ["-j", "DROP"]):
        run(["iptables", "-w", "-A", GUARD_CHAIN, *rule])
    run(["iptables", "-w", "-N", BRIDGE_CHAIN])
    for rule in _bridge_chain_rules(plan):
        run(["iptables", "-w", "-A", BRIDGE_CHAIN, *rule])
    for chain, rule in _guard_rules(plan):
        run(["iptables", "-w", "-I", chain, "1", *rule])
    for chain, rule in _guard6_rules():
        run(["ip6tables", "-w", "-I", chain, "1", *rule])
    run(["iptables", "-w", "-t", "nat", "-I", "OUTPUT", "1", *_api_dnat(plan)])


def _api_dnat(plan: LabPlan) -> list[str]:
    """The host's own clients ask 127.0.0.1 (plan.api_host); the API server listens on the bridge
    address only (plan.api_bind): this nat OUTPUT rule joins the two, for local connections only."""
    return ["-d", "127.0.0.1/32", "-p", "tcp", "--dport", str(plan.api_port), "-m", "comment", "--comment",
            COMMENT, "-j", "DNAT", "--to-destination", f"{plan.api_bind}:{plan.api_port}"]


def _disable_ipv6(link: str) -> None:
    """No IPv6 address (not even link-local) on the lab's host-side links; gone with the link."""
    path = Path("/proc/sys/net/ipv6/conf", link, "disable_ipv6")
    if path.exists():
        path.write_text("1")


def _node_sysctls(plan: LabPlan) -> list[str]:
    """Per node namespace. Both models: routing between the node's pods and the lab bridge. Routed:
    bridged pod traffic through iptables, so that kube-proxy's DNAT is undone on same-node replies.
    Flat: answer ARP on eth0 for the node's pods (their /32 routes lead elsewhere than eth0), at once
    rather than after proxy_delay's random wait of up to 0.8 s."""
    if plan.network == "flat":
        return ["net.ipv4.ip_forward=1", "net.ipv4.conf.eth0.proxy_arp=1", "net.ipv4.neigh.eth0.proxy_delay=0"]
    return ["net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"]


def route_pods(plan: LabPlan, pod_cidrs: dict[str, str]) -> None:
    """Routed model: each node (and the host) routes every other node's podCIDR via that node's IP."""
    ips = plan.node_ips()
    for node, cidr in pod_cidrs.items():
        run(["ip", "route", "replace", cidr, "via", ips[node]])
        for other in plan.node_names:
            if other != node:
                run(["ip", "-n", other, "route", "replace", cidr, "via", ips[node]])


def save_sysctls(state: Path) -> None:
    path = state / "host-sysctls.json"
    if not path.exists():
        write_private(path, json.dumps({k: Path("/proc/sys", k).read_text().strip() for k in KUBELET_SYSCTLS}))


def restore_sysctls(state: Path) -> bool:
    """Put back the host sysctls saved before kubelet changed them (only the known keys)."""
    path = state / "host-sysctls.json"
    if not os.path.lexists(path):
        return False
    saved = json.loads(read_private(path))
    for key in KUBELET_SYSCTLS:
        if key in saved:
            Path("/proc/sys", key).write_text(str(saved[key]))
    path.unlink()
    return True


def namespace_inodes(plan: LabPlan, state: Path) -> set[int]:
    """Network namespaces the lab made: the nodes' and the pods' (containerd pins those in its state)."""
    pins = [NETNS_DIR / n for n in plan.node_names]
    nodes = state / "nodes"
    if nodes.exists():
        pins += [p for p in nodes.glob("*/containerd/state/**/netns/*") if p.is_file()]
    inodes = set()
    for pin in pins:
        try:
            inodes.add(os.stat(pin).st_ino)
        except OSError:
            pass
    return inodes


def destroy(plan: LabPlan) -> bool:
    """Remove what `create` and `route_pods` made; True if anything was there. Each step tolerates absence."""
    found = False
    existing = set(run(["ip", "netns", "list"], check=False).stdout.split())
    for name in plan.node_names:
        if name in existing:
            run(["ip", "netns", "del", name], check=False)  # takes its veth, cni0 and iptables with it
            found = True
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        run(["ip", "link", "del", BRIDGE], check=False)  # and the routes via node IPs
        found = True
    routes = [[plan.service_cidr]] + ([["blackhole", plan.pod_cidr]] if plan.network == "routed" else [])
    for route in routes:
        found |= run(["ip", "route", "del", *route], check=False).returncode == 0
    for chain, rule in _guard_rules(plan):
        while run(["iptables", "-w", "-D", chain, *rule], check=False).returncode == 0:
            found = True
    for chain, rule in _guard6_rules():
        while run(["ip6tables", "-w", "-D", chain, *rule], check=False).returncode == 0:
            found = True
    while run(["iptables", "-w", "-t", "nat", "-D", "OUTPUT", *_api_dnat(plan)], check=False).returncode == 0:
        found = True
    for chain in (GUARD_CHAIN, BRIDGE_CHAIN):
        if run(["iptables", "-w", "-F", chain], check=False).returncode == 0:
            run(["iptables", "-w", "-X", chain], check=False)
            found = True
    return found
