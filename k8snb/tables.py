"""Cluster state as pandas tables: pods, nodes, Services and endpoints.

Values are formatted the way `kubectl get ... -o wide` prints them (READY 1/1, STATUS, AGE 5m,
PORTS 80:30080/TCP, EXTERNAL-IP <pending>) so a learner can put the two side by side.

Speed on big clusters: lists are read page by page (`limit`/`continue`) as raw JSON and decoded
with msgspec into small structs that keep only the fields below; one DataFrame is built at the end.
The official client's model objects would cost seconds per thousand pods.
"""
from __future__ import annotations

import functools
import ipaddress
from datetime import datetime, timezone
from typing import Iterable

import msgspec
import pandas as pd

from .cidr import contains, node_network
from .learner import NAMESPACE, SECOND_NAMESPACE
from .cluster import Cluster
from .errors import Forbidden, NotFound
from .names import dns_label

NONE = "<none>"


# --- the fields we read, nothing more -------------------------------------------------------------
class _Meta(msgspec.Struct):
    name: str = ""
    namespace: str = ""
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None
    labels: dict[str, str] = {}


class _ContainerState(msgspec.Struct):
    waiting: dict | None = None
    running: dict | None = None
    terminated: dict | None = None


class _ContainerStatus(msgspec.Struct):
    ready: bool = False
    restartCount: int = 0
    state: _ContainerState = msgspec.field(default_factory=_ContainerState)


class _Condition(msgspec.Struct):
    type: str = ""
    status: str = ""


class _PodStatus(msgspec.Struct):
    phase: str = ""
    reason: str | None = None
    podIP: str | None = None
    hostIP: str | None = None
    conditions: list[_Condition] = []
    containerStatuses: list[_ContainerStatus] = []
    initContainerStatuses: list[_ContainerStatus] = []


class _Container(msgspec.Struct):
    name: str = ""


class _PodSpec(msgspec.Struct):
    nodeName: str | None = None
    hostNetwork: bool = False
    containers: list[_Container] = []
    initContainers: list[_Container] = []


class _Pod(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)
    spec: _PodSpec = msgspec.field(default_factory=_PodSpec)
    status: _PodStatus = msgspec.field(default_factory=_PodStatus)


class _Address(msgspec.Struct):
    type: str = ""
    address: str = ""


class _NodeInfo(msgspec.Struct):
    kubeletVersion: str = ""
    architecture: str = ""
    osImage: str = ""
    kernelVersion: str = ""
    containerRuntimeVersion: str = ""


class _NodeStatus(msgspec.Struct):
    addresses: list[_Address] = []
    conditions: list[_Condition] = []
    nodeInfo: _NodeInfo = msgspec.field(default_factory=_NodeInfo)


class _NodeSpec(msgspec.Struct):
    podCIDR: str | None = None
    podCIDRs: list[str] = []
    unschedulable: bool = False


class _Node(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)
    spec: _NodeSpec = msgspec.field(default_factory=_NodeSpec)
    status: _NodeStatus = msgspec.field(default_factory=_NodeStatus)


class _PodList(msgspec.Struct):
    items: list[_Pod] = []


class _NodeList(msgspec.Struct):
    items: list[_Node] = []


_pod_list = msgspec.json.Decoder(_PodList)
_node_list = msgspec.json.Decoder(_NodeList)


# --- kubectl's formatting -------------------------------------------------------------------------
def human_duration(seconds: float) -> str:
    """kubectl's AGE format (k8s.io/apimachinery/pkg/util/duration.HumanDuration)."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        days = h // 24
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{h // 24 // 365}y"


def _age(timestamp: str | None, now: datetime) -> str:
    if not timestamp:
        return NONE
    return human_duration((now - _parse_time(timestamp)).total_seconds())


@functools.lru_cache(maxsize=65536)
def _parse_time(timestamp: str) -> datetime:
    """Pods created together share timestamps: parse each distinct one once."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def pod_status(pod: _Pod) -> str:
    """kubectl's STATUS column for a pod (printPod in kubectl's printers)."""
    st = pod.status
    reason = st.reason or st.phase
    init_total = len(pod.spec.initContainers)
    for i, cs in enumerate(st.initContainerStatuses):
        term, wait = cs.state.terminated, cs.state.waiting
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{init_total}"
        break
    else:
        has_running = False
        for cs in reversed(st.containerStatuses):
            wait, term = cs.state.waiting, cs.state.terminated
            if wait and wait.get("reason"):
                reason = wait["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode')}"
            elif cs.ready and cs.state.running is not None:
                has_running = True
        if reason == "Completed" and has_running:
            ready = any(c.type == "Ready" and c.status == "True" for c in st.conditions)
            reason = "Running" if ready else "NotReady"
    if pod.metadata.deletionTimestamp:
        reason = "Unknown" if st.reason == "NodeLost" else "Terminating"
    return reason


def ports_text(ports: Iterable[dict]) -> str:
    """kubectl's PORT(S) column: 80/TCP, 80:30080/TCP, comma-separated."""
    out = []
    for p in ports:
        node = f":{p['nodePort']}" if p.get("nodePort") else ""
        out.append(f"{p['port']}{node}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or NONE


def external_ip(svc: dict) -> str:
    """kubectl's EXTERNAL-IP column."""
    spec, status = svc.get("spec", {}), svc.get("status", {})
    typ = spec.get("type", "ClusterIP")
    explicit = spec.get("externalIPs") or []
    if typ in ("ClusterIP", "NodePort"):
        return ",".join(explicit) if explicit else NONE
    if typ == "LoadBalancer":
        ingress = [i.get("ip") or i.get("hostname") for i in status.get("loadBalancer", {}).get("ingress") or []]
        ips = [i for i in ingress if i] + explicit
        return ",".join(ips) if ips else "<pending>"
    if typ == "ExternalName":
        return spec.get("externalName", NONE)
    return "<unknown>"


def _roles(labels: dict[str, str]) -> str:
    roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")}
                   | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()))
    return ",".join(r for r in roles if r) or NONE


def _kernel(info: _NodeInfo) -> str:
    """kubectl's KERNEL-VERSION column: the kernel, then the architecture in parentheses."""
    return f"{info.kernelVersion} ({info.architecture})" if info.architecture else info.kernelVersion


def _node_status(node: _Node) -> str:
    ready = next((c.status for c in node.status.conditions if c.type == "Ready"), None)
    text = "Ready" if ready == "True" else ("NotReady" if ready is not None else "Unknown")
    return text + (",SchedulingDisabled" if node.spec.unschedulable else "")


# --- tables ------------------------------------------------------------------------------------
#: Where a cluster-wide list falls back to when the account may only read the course's namespaces.
COURSE_NAMESPACES = (NAMESPACE, SECOND_NAMESPACE)


def _scope(path: str, namespace: str | None) -> str:
    if namespace is None:
        return path
    dns_label(namespace, "namespace")
    prefix, plural = path.rsplit("/", 1)
    return f"{prefix}/namespaces/{namespace}/{plural}"


def _pages(cluster: Cluster, path: str, namespace: str | None, **params) -> tuple[list[bytes], str]:
    """Raw list pages for `namespace` (all namespaces when None). A learner account that may not
    list cluster-wide gets the course's namespaces instead, and a note saying so."""
    if namespace is not None:
        return list(cluster.api.list_raw(_scope(path, namespace), **params)), ""
    try:
        return list(cluster.api.list_raw(path, **params)), ""
    except Forbidden:
        pages = []
        for ns in COURSE_NAMESPACES:
            try:
                pages += cluster.api.list_raw(_scope(path, ns), **params)
            except Forbidden:
                continue
        note = (f"this account may not list {path.rsplit('/', 1)[1]} in all namespaces; "
                f"showing {', '.join(COURSE_NAMESPACES)} only")
        print(f"k8snb: {note}")
        return pages, note


def node_records(pages: Iterable[bytes], now: datetime | None = None) -> list[dict]:
    now = now or datetime.now(timezone.utc)
    rows = []
    for page in pages:
        for n in _node_list.decode(page).items:
            addrs = n.status.addresses
            internal = [a.address for a in addrs if a.type == "InternalIP"]
            external = [a.address for a in addrs if a.type == "ExternalIP"]
            cidrs = n.spec.podCIDRs or ([n.spec.podCIDR] if n.spec.podCIDR else [])
            rows.append({
                "name": n.metadata.name, "status": _node_status(n), "roles": _roles(n.metadata.labels),
                "age": _age(n.metadata.creationTimestamp, now), "version": n.status.nodeInfo.kubeletVersion,
                "internal_ip": ",".join(internal) or NONE, "external_ip": ",".join(external) or NONE,
                "pod_cidrs": ",".join(cidrs) or NONE, "os_image": n.status.nodeInfo.osImage,
                "kernel": _kernel(n.status.nodeInfo), "runtime": n.status.nodeInfo.containerRuntimeVersion,
            })
    return rows


NODE_COLUMNS = ["name", "status", "roles", "age", "version", "internal_ip", "external_ip", "pod_cidrs",
                "os_image", "kernel", "runtime"]
POD_COLUMNS = ["namespace", "name", "ready", "status", "restarts", "age", "ip", "node", "node_ip",
               "node_pod_cidr", "in_node_pod_cidr", "in_node_network", "host_network"]


def nodes(cluster: Cluster) -> pd.DataFrame:
    """`kubectl get nodes -o wide` as a DataFrame (plus podCIDRs)."""
    return pd.DataFrame(node_records(cluster.api.list_raw("/api/v1/nodes")), columns=NODE_COLUMNS)


def pod_records(pages: Iterable[bytes], node_rows: list[dict] | None, now: datetime | None = None) -> list[dict]:
    """Pod rows joined with their node's IP and podCIDR (node columns None when nodes are unknown)."""
    now = now or datetime.now(timezone.utc)
    by_node = {r["name"]: r for r in node_rows or []}
    node_ips = [r["internal_ip"].split(",")[0] for r in node_rows or [] if r["internal_ip"] != NONE]
    network = node_network(node_ips) if node_ips else None
    network_text = str(network) if network else None
    rows = []
    for page in pages:
        for p in _pod_list.decode(page).items:
            statuses = p.status.containerStatuses
            total = len(p.spec.containers)
            node = by_node.get(p.spec.nodeName or "")
            cidr = node["pod_cidrs"].split(",")[0] if node and node["pod_cidrs"] != NONE else None
            ip = p.status.podIP
            rows.append({
                "namespace": p.metadata.namespace, "name": p.metadata.name,
                "ready": f"{sum(1 for c in statuses if c.ready)}/{total}",
                "status": pod_status(p), "restarts": sum(c.restartCount for c in statuses),
                "age": _age(p.metadata.creationTimestamp, now), "ip": ip or NONE,
                "node": p.spec.nodeName or NONE,
                "node_ip": (node["internal_ip"] if node else None) if node_rows is not None else None,
                "node_pod_cidr": cidr,
                "in_node_pod_cidr": contains(cidr, ip) if not p.spec.hostNetwork else None,
                "in_node_network": contains(network_text, ip) if network_text else None,
                "host_network": p.spec.hostNetwork,
            })
    return rows


def pods(cluster: Cluster, namespace: str | None = None, selector: str | None = None) -> pd.DataFrame:
    """`kubectl get pods -o wide` as a DataFrame, with each pod's node IP and podCIDR beside it.

    Without permission to list nodes the table still comes back: the node columns are empty and
    `df.attrs['note']` says why.
    """
    note = ""
    try:
        node_rows: list[dict] | None = node_records(cluster.api.list_raw("/api/v1/nodes"))
    except Forbidden as exc:
        node_rows, note = None, f"node columns are empty: this account may not list nodes ({exc})"
        print(f"k8snb: {note}")
    params = {"labelSelector": selector} if selector else {}
    pages, scope_note = _pages(cluster, "/api/v1/pods", namespace, **params)
    df = pd.DataFrame(pod_records(pages, node_rows), columns=POD_COLUMNS)
    df.attrs["note"] = "; ".join(n for n in (note, scope_note) if n)
    return df


def services(cluster: Cluster, namespace: str | None = None) -> pd.DataFrame:
    """`kubectl get svc -o wide` as a DataFrame."""
    now = datetime.now(timezone.utc)
    rows = []
    pages, note = _pages(cluster, "/api/v1/services", namespace)
    for s in (item for page in pages for item in msgspec.json.decode(page).get("items") or []):
        spec = s.get("spec", {})
        sel = spec.get("selector") or {}
        rows.append({
            "namespace": s["metadata"]["namespace"], "name": s["metadata"]["name"],
            "type": spec.get("type", "ClusterIP"), "cluster_ip": spec.get("clusterIP") or NONE,
            "external_ip": external_ip(s), "ports": ports_text(spec.get("ports") or []),
            "age": _age(s["metadata"].get("creationTimestamp"), now),
            "selector": ",".join(f"{k}={v}" for k, v in sel.items()) or NONE,
        })
    df = pd.DataFrame(rows, columns=["namespace", "name", "type", "cluster_ip", "external_ip", "ports",
                                     "age", "selector"])
    df.attrs["note"] = note
    return df


def selector_text(svc: dict) -> str:
    """A Service object's selector as kubectl writes it (app=nginx), '' when it has none."""
    return ",".join(f"{k}={v}" for k, v in (svc["spec"].get("selector") or {}).items())


def service_selector(cluster: Cluster, namespace: str, service: str) -> str:
    """The Service's selector as kubectl writes it (app=nginx); NotFound when the Service is missing.
    Used to say which pods a Service without ready endpoints is waiting for."""
    svc = cluster.api.exists(f"/api/v1/namespaces/{namespace}/services/{service}")
    if svc is None:
        raise NotFound(f"Service {namespace}/{service} does not exist")
    return selector_text(svc)


def endpoint_records(cluster: Cluster, namespace: str, service: str) -> list[dict]:
    """One dict per endpoint address of `service`, from its EndpointSlices."""
    dns_label(namespace, "namespace")
    dns_label(service, "service")
    slices = cluster.api.list(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                              labelSelector=f"kubernetes.io/service-name={service}")
    rows = []
    for sl in slices:
        ports = sl.get("ports") or [{}]
        for ep in sl.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            target = ep.get("targetRef") or {}
            for addr in ep.get("addresses") or []:
                for port in ports:
                    rows.append({"service": service, "namespace": namespace, "address": addr,
                                 "port": port.get("port"), "port_name": port.get("name") or "",
                                 "ready": cond.get("ready") is not False,
                                 "pod": target.get("name") if target.get("kind") == "Pod" else None,
                                 "node": ep.get("nodeName")})
    return sorted(rows, key=lambda r: (ipaddress.ip_address(r["address"]), r["port"] or 0))


def endpoints(cluster: Cluster, service: str, namespace: str = NAMESPACE) -> pd.DataFrame:
    """The endpoints behind `service` (service, address, port, ready, pod, node), from EndpointSlices."""
    return pd.DataFrame(endpoint_records(cluster, namespace, service),
                        columns=["service", "namespace", "address", "port", "port_name", "ready", "pod", "node"])
