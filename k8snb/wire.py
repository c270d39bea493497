"""The packet's path between nodes, captured: a pod's request to a pod on another node, as tcpdump
on the receiving node sees it arrive and go on to the pod.

The article says traffic between pods on different nodes is translated at the node where pods have
a range of their own. `podnet.pod_to_pod` shows what the server pod saw; this shows the packet
itself: on the receiving node's uplink the SYN still carries the client pod's IP and the server
pod's IP (routed or flat, nothing rewrote them; an overlay such as VXLAN would show them inside an
outer header between the nodes' addresses), and the same packet leaves towards the pod on the
node's bridge or veth. The capture runs in the course's node pod (`nodeview`), started before the
request is sent: the request is sent from the capture's own exec, once tcpdump is listening.
"""
from __future__ import annotations

import re
import time

import pandas as pd

from .cluster import Cluster
from .errors import K8snbError
from .learner import NAMESPACE
from .nodeview import NODE_POD_CONTAINER, node_pod
from .podnet import REQUEST_TIMEOUT, client_and_server, url_for
from .probe import can_carry_traffic, exec_argv

#: Seconds tcpdump may listen in all (it stops earlier, after CAPTURED packets).
CAPTURE_SECONDS = 20
#: The SYN's arrival on the uplink and its way out to the pod (bridge and veth, or the veth alone).
CAPTURED = 2
#: Seconds between tcpdump's start and the request (it needs a moment to open its socket).
LISTEN_SECONDS = 1.5
#: tcpdump -i any -nn: `<time> <interface> <In|Out> IP <src>.<port> > <dst>.<port>: Flags [S] ...`
_LINE = re.compile(r"^\S+\s+(?P<interface>\S+)\s+(?P<direction>In|Out|M|P|B)\s+IP\s+"
                   r"(?P<src>\d+\.\d+\.\d+\.\d+)\.(?P<sport>\d+) > (?P<dst>\d+\.\d+\.\d+\.\d+)\.(?P<dport>\d+): "
                   r"Flags \[(?P<flags>[^\]]*)\]")
COLUMNS = ("node", "interface", "direction", "src", "dst", "dport", "flags", "line")


def parse_tcpdump(text: str, node: str) -> pd.DataFrame:
    """One row per IPv4 packet line of `tcpdump -i any -nn` output; other lines are skipped."""
    rows = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            rows.append({"node": node, "interface": m["interface"], "direction": m["direction"], "src": m["src"],
                         "dst": m["dst"], "dport": int(m["dport"]), "flags": m["flags"], "line": line.strip()})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def capture_argv(client_ip: str, server_ip: str, count: int = CAPTURED, seconds: int = CAPTURE_SECONDS) -> list[str]:
    """tcpdump for the first packets (SYNs) between the two pods, on every interface of the node."""
    bpf = f"tcp and src host {client_ip} and dst host {server_ip} and tcp[tcpflags] & tcp-syn != 0"
    return ["timeout", str(seconds), "tcpdump", "-i", "any", "-nn", "-l", "-c", str(count), bpf]


def summary(frame: pd.DataFrame, client_ip: str, server_ip: str, node: str) -> str:
    """One sentence on the capture, to print under the table."""
    if frame.empty:
        return f"Measured: tcpdump on {node} saw no packet from {client_ip} to {server_ip} within {CAPTURE_SECONDS} s."
    hops = ", ".join(f"{r.direction.lower()} on {r.interface}" for r in frame.itertuples())
    unchanged = (frame["src"] == client_ip).all() and (frame["dst"] == server_ip).all()
    verdict = ("the client's and the server's pod IPs unchanged on every hop: no NAT between the pods"
               if unchanged else "addresses rewritten on the way: see the table")
    return f"Measured on {node} with tcpdump: the request's SYN went {hops}, {verdict}."


def on_the_wire(cluster: Cluster, namespace: str = NAMESPACE) -> pd.DataFrame:
    """Capture, on the server pod's node, netshoot's request to an nginx-hello pod on another node.

    One row per packet tcpdump printed (node, interface, direction, src, dst, dport, flags, line);
    attrs: summary (one sentence), client and server (name, IP, node), routes (`ip route` on the
    server's node). Where nothing can be captured (simulated nodes, a cluster that refuses the
    course's privileged node pod) the frame is empty and the summary says why: nothing is modeled.
    """
    if not can_carry_traffic(cluster):
        return _not_captured("the nodes are simulated (kwok) and carry no packet")
    try:
        return _capture(cluster, namespace)
    except K8snbError as exc:
        return _not_captured(str(exc).rstrip("."))


def _not_captured(why: str) -> pd.DataFrame:
    frame = pd.DataFrame(columns=list(COLUMNS))
    frame.attrs.update(summary=f"Not captured: {why}.", routes="")
    return frame


def _capture(cluster: Cluster, namespace: str) -> pd.DataFrame:
    client, server, cross_node = client_and_server(cluster, namespace)
    viewer = node_pod(cluster, server.node, namespace)
    routes = exec_argv(cluster, viewer, ["ip", "route"], namespace, container=NODE_POD_CONTAINER).stdout
    started, sent = time.monotonic(), []

    def send_once_listening() -> None:
        """exec_argv's `stop` hook, called about once a second while tcpdump runs: one request once
        tcpdump has had time to listen, a second later in case the first came too early. Never stops."""
        if len(sent) < 2 and time.monotonic() - started > LISTEN_SECONDS * (1 + 2 * len(sent)):
            sent.append(exec_argv(cluster, client.name, ["curl", "-sS", "-o", "/dev/null", "--max-time",
                                                         str(REQUEST_TIMEOUT), url_for(server.ip)], namespace,
                                  timeout=REQUEST_TIMEOUT + 10))

    dump = exec_argv(cluster, viewer, capture_argv(client.ip, server.ip), namespace, container=NODE_POD_CONTAINER,
                     timeout=CAPTURE_SECONDS + 10, stop=send_once_listening)
    frame = parse_tcpdump(dump.stdout, server.node)
    frame.attrs.update(summary=summary(frame, client.ip, server.ip, server.node), routes=routes.strip(),
                       client=client, server=server, cross_node=cross_node, requests=len(sent))
    return frame
