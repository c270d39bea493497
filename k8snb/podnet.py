"""No NAT between pods, measured: what address a server pod sees when a pod on another node calls it.

Kubernetes asks every network model to let pods reach each other without NAT: the VPC CNI (pods on
the node subnet) and Calico, Flannel or kind (pods on their own range) all keep the sender's pod IP.
The article's netshoot calls an nginx-hello pod by its pod IP, not through a Service (a Service
would add a DNAT of its own), and the hello page prints the 'Client address' nginx saw. If it is
netshoot's pod IP, nothing on the way rewrote the source.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .cluster import Cluster
from .learner import NAMESPACE
from .errors import NotReadyInTime
from .probe import can_carry_traffic, exec_argv, pod_for
from .traffic import parse_hello
from .wait import pod_ready

CLIENT_APP = "netshoot"
SERVER_APP = "nginx"
#: Seconds curl may take for the one request.
REQUEST_TIMEOUT = 5
COLUMNS = ("client_pod", "client_ip", "client_node", "server_pod", "server_ip", "server_node", "cross_node",
           "seen", "kept", "mode", "note")


@dataclass(frozen=True)
class PodAddress:
    """A pod as this check needs it: its name, its pod IP and the node it runs on."""

    name: str
    ip: str
    node: str


def pod_address(pod: dict) -> PodAddress:
    """The name, pod IP and node of a pod object (as the API returns it)."""
    return PodAddress(pod["metadata"]["name"], pod.get("status", {}).get("podIP") or "",
                      pod.get("spec", {}).get("nodeName") or "")


def _serving(pod: dict) -> bool:
    return bool(pod.get("status", {}).get("podIP")) and not pod.get("spec", {}).get("hostNetwork") and pod_ready(pod)


def choose_server(pods: list[dict], client_node: str) -> tuple[PodAddress, bool]:
    """(server, cross_node): a ready pod with its own pod IP on another node than `client_node` when
    there is one, else one on the same node. The first by name, so every run picks the same pod.

    Host-network pods are skipped: they answer from the node's address, which says nothing about pods.
    """
    ready = sorted((pod_address(p) for p in pods if _serving(p)), key=lambda p: p.name)
    if not ready:
        raise NotReadyInTime(f"no ready pod labelled app={SERVER_APP} with a pod IP; apply the article's objects "
                             "and wait for them (k8snb.ensure_article(cluster))")
    elsewhere = [p for p in ready if p.node != client_node]
    return (elsewhere[0], True) if elsewhere else (ready[0], False)


def client_and_server(cluster: Cluster, namespace: str = NAMESPACE) -> tuple[PodAddress, PodAddress, bool]:
    """(netshoot, an nginx-hello pod on another node when there is one, whether it is on another
    node): the two ends of a pod-to-pod call, the same for `pod_to_pod` and `wire.on_the_wire`."""
    name = pod_for(cluster, CLIENT_APP, namespace)  # checks the namespace's spelling too
    client = pod_address(cluster.api.get(f"/api/v1/namespaces/{namespace}/pods/{name}"))
    pods = cluster.api.list(f"/api/v1/namespaces/{namespace}/pods", labelSelector=f"app={SERVER_APP}")
    server, cross_node = choose_server(pods, client.node)
    return client, server, cross_node


def url_for(ip: str) -> str:
    """The URL of the hello page at a pod IP (brackets around an IPv6 address)."""
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}/"


def seen_address(body: str) -> str | None:
    """The client IP the hello page reports (its 'Client address' without the port), or None."""
    address = parse_hello(body)["client_address"]
    return address.rsplit(":", 1)[0].strip("[]") if address else None


def pod_to_pod_row(client: PodAddress, server: PodAddress, cross_node: bool, seen: str | None,
                   mode: str, error: str = "") -> dict:
    """One row of `pod_to_pod`: who called whom, what the server saw, and whether the pod IP was kept.

    `kept` is None when there is no answer to judge (curl failed), never a guess either way."""
    kept = None if seen is None else seen == client.ip
    if mode == "modeled":
        note = ("modeled: simulated nodes carry no packet; with no NAT between pods the server would see the "
                "client's pod IP")
    elif seen is None:
        note = f"no answer to read: {error or 'the page carried no Client address'}"
    elif kept:
        note = "the client's pod IP arrived unchanged"
    else:
        note = f"the source was rewritten: the server saw {seen}, not the client's pod IP {client.ip}"
    if not cross_node:
        note += (f"; both pods run on {client.node}: no app={SERVER_APP} pod runs on another node (scale "
                 "nginx-hello to place one there)")
    return {"client_pod": client.name, "client_ip": client.ip, "client_node": client.node,
            "server_pod": server.name, "server_ip": server.ip, "server_node": server.node,
            "cross_node": cross_node, "seen": seen, "kept": kept, "mode": mode, "note": note}


def summary(row: dict) -> str:
    """One sentence on the row, to print under the table."""
    where = "on another node" if row["cross_node"] else "on the same node"
    call = (f"{row['client_pod']} ({row['client_ip']}, {row['client_node']}) called {row['server_pod']} "
            f"({row['server_ip']}, {where}) by its pod IP")
    if row["mode"] == "modeled":
        return f"Modeled, not measured: {call}; on real nodes the server would see {row['seen']}."
    if row["kept"] is None:
        return f"Measured: {call}, but there was {row['note']}."
    if row["kept"]:
        return f"Measured: {call}; the server saw {row['seen']}, the client's own pod IP: no NAT between the pods."
    return f"Measured: {call}; the server saw {row['seen']}, not {row['client_ip']}: the source was translated."


def pod_to_pod(cluster: Cluster, namespace: str = NAMESPACE) -> pd.DataFrame:
    """netshoot calls an nginx-hello pod on another node by its pod IP; one row with what the server saw.

    `kubectl exec deploy/netshoot -- curl -s http://<nginx pod IP>/` and the page's 'Client address'.
    On simulated nodes (no packet flows) the row is modeled, says so, and reports the client's own
    IP as what a cluster without NAT between pods delivers. attrs['summary'] is one sentence.
    """
    client, server, cross_node = client_and_server(cluster, namespace)
    if not can_carry_traffic(cluster):
        row = pod_to_pod_row(client, server, cross_node, client.ip, "modeled")
    else:
        argv = ["curl", "-sS", "--max-time", str(REQUEST_TIMEOUT), url_for(server.ip)]
        result = exec_argv(cluster, client.name, argv, namespace, timeout=REQUEST_TIMEOUT + 10)
        seen = seen_address(result.stdout) if result.exit_code == 0 else None
        row = pod_to_pod_row(client, server, cross_node, seen, "measured", result.stderr.strip())
    frame = pd.DataFrame([row], columns=list(COLUMNS))
    frame.attrs["summary"] = summary(row)
    return frame
