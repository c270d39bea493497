"""Notebook 04's Service types, read and measured live: NodePort's port on every node, what a
LoadBalancer Service gets on this cluster (and whether the course should create one), the three
types side by side.
"""
from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass

import pandas as pd
from tqdm.auto import tqdm

from .cidr import contains
from .learner import NAMESPACE
from .cluster import Cluster
from .errors import NotFound, NotReadyInTime
from .manifests import apply, load
from .names import dns_label
from .podnet import seen_address
from .probe import can_carry_traffic, curl
from .tables import endpoint_records, services
from .traffic import parse_hello

#: The NodePort range kube-apiserver allocates from unless --service-node-port-range says otherwise.
NODE_PORT_RANGE = (30000, 32767)

#: Who can reach each Service type, in the course's words (notebook 04's comparison table).
SERVICE_REACH = {
    "ClusterIP": "pods inside the cluster only, by DNS name or ClusterIP",
    "NodePort": "anything that reaches a node: <any node IP>:<nodePort> (plus the ClusterIP inside)",
    "LoadBalancer": "the outside world through an external load balancer (cloud or MetalLB), "
                    "plus NodePort and ClusterIP",
}

def node_port(cluster: Cluster, service: str = "nginx-nodeport", namespace: str = NAMESPACE) -> int:
    """The nodePort the API server allocated to the Service's first port."""
    svc = cluster.api.get(f"/api/v1/namespaces/{namespace}/services/{service}")
    port = (svc["spec"].get("ports") or [{}])[0].get("nodePort")
    if not port:
        raise NotFound(f"Service {namespace}/{service} has no nodePort (is it of type NodePort or LoadBalancer?)")
    return int(port)


#: Upper bound for every node to answer on a new NodePort: kube-proxy programs it on each node a
#: moment after the Service exists (its sync period), and a learner's cell must not run earlier.
NODE_PORT_TIMEOUT = 60.0


def node_port_reach(cluster: Cluster, service: str = "nginx-nodeport", namespace: str = NAMESPACE,
                    timeout: float = NODE_PORT_TIMEOUT) -> pd.DataFrame:
    """Ask every node's InternalIP at the Service's nodePort (curl -I from netshoot where pods
    carry traffic; otherwise the row says it was not measured). One row per node.

    A new NodePort opens on each node when that node's kube-proxy has programmed it, a few seconds
    after the Service exists: nodes that do not answer yet are asked again until `timeout`, with a
    progress bar. A node still silent then is an error naming it, not a row contradicting the
    sentence above the cell ("every node answers").
    """
    port = node_port(cluster, service, namespace)
    measured = can_carry_traffic(cluster)
    nodes = []
    for node in cluster.api.list("/api/v1/nodes"):
        ip = next((a["address"] for a in node.get("status", {}).get("addresses", [])
                   if a.get("type") == "InternalIP"), None)
        nodes.append((node["metadata"]["name"], ip))
    rows = {name: {"node": name, "url": f"{ip}:{port}" if ip else None} for name, ip in nodes}
    if not measured:
        for row in rows.values():
            row.update(answered=None, reply="not measured: a simulated node opens no port", mode="modeled")
        return pd.DataFrame(list(rows.values()), columns=["node", "url", "answered", "reply", "mode"])
    waiting = {name: ip for name, ip in nodes if ip}
    deadline = time.monotonic() + timeout
    with tqdm(total=len(waiting), desc=f"nodes answering on NodePort {port}", leave=False) as bar:
        while waiting:
            for name, ip in list(waiting.items()):
                res = curl(cluster, f"{ip}:{port}", namespace=namespace, head=True)
                rows[name].update(answered=res.ok, reply=res.status_line if res.ok else res.error, mode="measured")
                if res.ok:
                    del waiting[name]
                    bar.update(1)
            if waiting and time.monotonic() > deadline:
                raise NotReadyInTime(
                    f"NodePort {port} of Service {namespace}/{service}: "
                    + "; ".join(f"node {n} ({ip}) did not answer within {timeout:.0f} s: {rows[n]['reply']}"
                                for n, ip in waiting.items())
                    + ". Is kube-proxy running on those nodes (kubectl -n kube-system get pods -o wide)?")
            if waiting:
                time.sleep(1.0)
    return pd.DataFrame(list(rows.values()), columns=["node", "url", "answered", "reply", "mode"])


def external_ip(cluster: Cluster, service: str = "nginx-lb", namespace: str = NAMESPACE,
                seconds: float = 10.0) -> str:
    """Watch a LoadBalancer Service for up to `seconds` and return its EXTERNAL-IP column
    ('<pending>' while no provider fills status.loadBalancer)."""
    dns_label(service, "service")
    path = f"/api/v1/namespaces/{namespace}/services"
    deadline = time.monotonic() + seconds
    with tqdm(total=int(seconds), desc=f"waiting for {service}'s external IP", leave=False) as bar:
        while True:
            row = services(cluster, namespace)
            row = row[row["name"] == service]
            if row.empty:
                raise NotFound(f"Service {namespace}/{service} does not exist")
            value = row["external_ip"].iloc[0]
            left = deadline - time.monotonic()
            bar.n = min(int(seconds), int(seconds - max(left, 0)))
            bar.refresh()
            if value != "<pending>" or left <= 0:
                return value
            for _ in cluster.api.watch(path, timeout=min(left, 2.0), fieldSelector=f"metadata.name={service}"):
                break


#: Clusters where a LoadBalancer Service makes the cloud provision a real, billed and often
#: internet-facing load balancer: the course creates one there only when the learner opts in.
CLOUD_FLAVORS = frozenset({"EKS", "GKE", "AKS"})
#: What a LoadBalancer Service gets elsewhere, in the course's words.
LOAD_BALANCER_ELSEWHERE = {
    "kind": "kind has no load-balancer provider of its own: EXTERNAL-IP stays <pending> unless "
            "cloud-provider-kind runs beside it, which then gives the Service an address on kind's network.",
    "minikube": "minikube fills EXTERNAL-IP only while `minikube tunnel` runs; without it, <pending>.",
    "k3s": "k3s's built-in ServiceLB (klipper-lb) answers: EXTERNAL-IP shows the nodes' own addresses.",
}


@dataclass(frozen=True)
class LoadBalancerDecision:
    create: bool
    reason: str


def load_balancer_decision(cluster: Cluster, opt_in: bool = False) -> LoadBalancerDecision:
    """Whether notebook 04 creates its LoadBalancer Service on this cluster, and why. On a cloud
    cluster (EKS, GKE, AKS) that provisions a billed, often internet-facing load balancer, so only
    when the learner opts in; elsewhere it costs nothing and shows what the cluster's provider does."""
    if cluster.flavor in CLOUD_FLAVORS and not opt_in:
        return LoadBalancerDecision(False, (
            f"Not created: on {cluster.flavor} a LoadBalancer Service makes the cloud provision a real load "
            "balancer, billed by the hour and often reachable from the internet. To see it, set "
            "CREATE_LOAD_BALANCER = True above and run the cell again; the clean-up cell deletes it."))
    if cluster.flavor in CLOUD_FLAVORS:
        return LoadBalancerDecision(True, (
            f"Created on {cluster.flavor} because you opted in: the cloud provisions a load balancer and "
            "EXTERNAL-IP may be a hostname; the clean-up cell deletes it (and the cloud its load balancer)."))
    for flavor, words in LOAD_BALANCER_ELSEWHERE.items():
        if cluster.flavor.startswith(flavor):
            return LoadBalancerDecision(True, words)
    return LoadBalancerDecision(True, "No load-balancer provider is known on this cluster: EXTERNAL-IP "
                                      "stays <pending> unless one (a cloud, MetalLB ...) fills it.")


def service_types(cluster: Cluster, names: tuple[str, ...] = ("nginx-svc", "nginx-nodeport", "nginx-lb"),
                  namespace: str = NAMESPACE) -> pd.DataFrame:
    """The course's three Services side by side, read live: type, ClusterIP, PORT(S), EXTERNAL-IP
    and who can reach them."""
    table = services(cluster, namespace)
    table = table[table["name"].isin(names)].copy()
    table["reachable_from"] = table["type"].map(SERVICE_REACH)
    order = {name: i for i, name in enumerate(names)}
    table = table.sort_values("name", key=lambda s: s.map(order))
    return table[["name", "type", "cluster_ip", "ports", "external_ip", "reachable_from"]].reset_index(drop=True)


# --- NodePort and the client's address: externalTrafficPolicy Cluster vs Local -------------------
#: Seconds one request from this machine to a node may take: a node that drops the connection
#: (Local policy without a local replica) is "not answering" after this.
HOST_REQUEST_TIMEOUT = 3.0
POLICY_SERVICES = (("Cluster", "nginx-nodeport", "nodeport-svc"), ("Local", "nginx-nodeport-local", "nodeport-local-svc"))
SOURCE_COLUMNS = ["policy", "node", "replica_on_node", "url", "answered", "sent_from", "client_address",
                  "who", "kept", "mode"]


@dataclass(frozen=True)
class HostAnswer:
    """One HTTP GET from this machine: our socket's source address and what the page says."""

    ok: bool
    sent_from: str | None
    client_address: str | None  # the page's Client address, without its port
    server_name: str | None
    error: str | None
    unreachable: bool  # no route or no answer at all (vs refused): the machine cannot reach the node


def get_from_here(ip: str, port: int, timeout: float = HOST_REQUEST_TIMEOUT) -> HostAnswer:
    """GET http://ip:port/ from the machine running the notebook, reading the source address the
    kernel picked for the connection (what the server would see without any translation)."""
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.connect()
        sent_from = conn.sock.getsockname()[0]
        conn.request("GET", "/")
        body = conn.getresponse().read().decode(errors="replace")
        return HostAnswer(True, sent_from, seen_address(body), parse_hello(body)["server_name"], None, False)
    except ConnectionRefusedError:
        return HostAnswer(False, None, None, None, "connection refused", False)
    except (TimeoutError, socket.timeout):
        return HostAnswer(False, None, None, None, f"timed out after {timeout:.0f} s", True)
    except OSError as exc:
        return HostAnswer(False, None, None, None, exc.strerror or str(exc), True)
    finally:
        conn.close()


def _node_addresses(cluster: Cluster) -> list[tuple[str, str | None, list[str]]]:
    """(name, InternalIP, podCIDRs) of every node."""
    rows = []
    for node in cluster.api.list("/api/v1/nodes"):
        ip = next((a["address"] for a in node.get("status", {}).get("addresses", [])
                   if a.get("type") == "InternalIP"), None)
        cidrs = node.get("spec", {}).get("podCIDRs") or []
        rows.append((node["metadata"]["name"], ip, cidrs))
    return rows


def _whose(address: str | None, sent_from: str | None, nodes: list[tuple[str, str | None, list[str]]]) -> str:
    if address is None:
        return ""
    if address == sent_from:
        return "your address: kept"
    for name, ip, cidrs in nodes:
        if address == ip:
            return f"node {name}'s address (SNAT)"
        if any(contains(c, address) for c in cidrs):
            return f"node {name}'s address on its pod network (SNAT)"
    return "rewritten (SNAT)"


def client_address_by_policy(cluster: Cluster, namespace: str = NAMESPACE,
                             timeout: float = NODE_PORT_TIMEOUT) -> pd.DataFrame:
    """Request every node's NodePort from this machine (outside the pod network), once for
    `externalTrafficPolicy: Cluster` (nginx-nodeport) and once for `Local` (nginx-nodeport-local), and
    read the client address the answering pod saw. One row per (policy, node): see SOURCE_COLUMNS.

    Cluster: every node answers and forwards to any replica, masquerading the client (the pod sees
    a node's address). Local: only a node with a replica answers, and the pod sees the client's own
    address. Waits (bounded, with a progress bar) until every node that must answer does; nodes
    without a replica get one request each under Local. Where this machine cannot reach the nodes'
    addresses (a cloud cluster's private network) or pods run nothing (simulated nodes), the rows are
    modeled and attrs['summary'] says why.
    """
    for _, _, manifest in POLICY_SERVICES:
        for obj in load(manifest, namespace):
            apply(cluster, obj)
    nodes = _node_addresses(cluster)
    with_replica = {e["node"] for e in endpoint_records(cluster, namespace, "nginx-svc") if e["ready"]}
    ports = {policy: node_port(cluster, service, namespace) for policy, service, _ in POLICY_SERVICES}
    why_modeled = None
    if not can_carry_traffic(cluster):
        why_modeled = f"the nodes of {cluster.context} are simulated (kwok) and open no port"
    elif not any(ip for _, ip, _ in nodes):
        why_modeled = "the nodes list no InternalIP"
    answers: dict[tuple[str, str], HostAnswer] = {}
    if why_modeled is None:
        must = [(p, name, ip) for p, _, _ in POLICY_SERVICES for name, ip, _ in nodes
                if ip and (p == "Cluster" or name in with_replica)]
        deadline = time.monotonic() + timeout
        with tqdm(total=len(must), desc="nodes answering from this machine", leave=False) as bar:
            while must:
                for policy, name, ip in list(must):
                    got = get_from_here(ip, ports[policy])
                    answers[policy, name] = got
                    if got.ok:
                        must.remove((policy, name, ip))
                        bar.update(1)
                if must and all(answers[p, n].unreachable for p, n, _ in must) and len(must) == bar.total:
                    why_modeled = (f"this machine cannot reach the nodes' addresses ({answers[must[0][0], must[0][1]].error} "
                                   f"from {must[0][2]}): on a cloud cluster they are private to its network")
                    break
                if must and time.monotonic() > deadline:
                    raise NotReadyInTime("; ".join(
                        f"node {n} ({ip}) did not answer on the {p} NodePort {ports[p]} within {timeout:.0f} s: "
                        f"{answers[p, n].error}" for p, n, ip in must) + ". Is kube-proxy running on those nodes?")
                if must:
                    time.sleep(1.0)
    rows = []
    for policy, _, _ in POLICY_SERVICES:
        for name, ip, _ in nodes:
            local = name in with_replica
            url = f"{ip}:{ports[policy]}" if ip else None
            if why_modeled is not None:
                answered = policy == "Cluster" or local
                rows.append({"policy": policy, "node": name, "replica_on_node": local, "url": url,
                             "answered": answered, "sent_from": None, "client_address": None,
                             "who": ("" if not answered else "your address: kept" if policy == "Local"
                                     else "a node's address (SNAT)"),
                             "kept": (policy == "Local") if answered else None, "mode": "modeled"})
                continue
            got = answers.get((policy, name)) or (get_from_here(ip, ports[policy]) if ip else None)
            ok = bool(got and got.ok)
            rows.append({"policy": policy, "node": name, "replica_on_node": local, "url": url, "answered": ok,
                         "sent_from": got.sent_from if got else None,
                         "client_address": got.client_address if ok else None,
                         "who": _whose(got.client_address, got.sent_from, nodes) if ok else
                         f"did not answer ({got.error if got else 'the node lists no InternalIP'})",
                         "kept": (got.client_address == got.sent_from) if ok else None, "mode": "measured"})
    table = pd.DataFrame(rows, columns=SOURCE_COLUMNS)
    table.attrs["summary"] = _policy_summary(table, why_modeled)
    return table


def _policy_summary(table: pd.DataFrame, why_modeled: str | None) -> str:
    cluster_rows = table[table["policy"] == "Cluster"]
    local_rows = table[table["policy"] == "Local"]
    local_with = local_rows[local_rows["replica_on_node"]]
    local_without = local_rows[~local_rows["replica_on_node"]]
    if why_modeled:
        return (f"Modeled, not measured: {why_modeled}. Under Cluster every node would answer and the pod would "
                "see a node's address; under Local only the nodes with a replica "
                f"({len(local_with)} of {len(local_rows)}) would answer, and the pod would see the client's own.")
    sent = next((s for s in table["sent_from"] if s), "?")
    kept_cluster = int(cluster_rows["kept"].fillna(False).astype(bool).sum())
    kept_local = int(local_with["kept"].fillna(False).astype(bool).sum())
    return (f"From this machine ({sent}), measured. Cluster: {int(cluster_rows['answered'].sum())} of {len(cluster_rows)} "
            f"nodes answered and the pod saw your address on {kept_cluster} of them (the rest: a node's address, "
            f"SNAT). Local: {int(local_with['answered'].sum())} of the {len(local_with)} node(s) with a replica "
            f"answered, with your address kept on {kept_local}; {int(local_without['answered'].sum())} of the "
            f"{len(local_without)} node(s) without a replica answered.")
