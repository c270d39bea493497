"""The notebooks' own helpers: small steps that need a little logic, and the exercises' checks.

Notebooks keep their cells short (one to five lines of `k8snb.<name>` calls); whatever needs more
than that lives here, with a docstring, so a learner who wonders what a cell did can read it.

Every helper works on both kinds of cluster the course meets:

- pods carry traffic (the lab with real nodes, kind, EKS ...): curl and nslookup run in a client
  pod and the rows say mode='measured';
- simulated nodes (the lab's kwok nodes): pods have IPs but run nothing, so the answer is computed
  from the API (the Service, its EndpointSlices, kube-proxy's rules) and the rows say mode='modeled'.

The exercise checks (`check_*`) never raise on a wrong or missing answer: they return a `Verdict`,
true or false, that shows itself as 'Right: ...' or 'Not yet: ...' with a hint.
"""
from __future__ import annotations

import hashlib
import html
import json
import math
import os
import time
from dataclasses import dataclass

import pandas as pd
from tqdm.auto import tqdm

from . import cidr, nodeview
from .cluster import Cluster
from .cidr import article_samples, article_verdicts
from .errors import InvalidInput, K8snbError, NotFound, NotReadyInTime
from .manifests import KINDS, PART_OF, SELECTOR, apply, article, load
from .names import dns_label, dns_subdomain
from .probe import can_carry_traffic, curl, exec_argv, nslookup, pod_for, resolve_modeled
from .tables import endpoint_records, services
from .traffic import (iptables_probabilities, modeled_sample, parse_hello, parse_kube_svc_chain, sample,
                      summarize)
from .wait import wait_answering, wait_deployment

#: The NodePort range kube-apiserver allocates from unless --service-node-port-range says otherwise.
NODE_PORT_RANGE = (30000, 32767)

#: The ConfigMap-fed client of notebook 01: its ConfigMap, the variable it sets, the Deployment.
CLIENT_CONFIGMAP = "client-config"
CLIENT_VARIABLE = "NGINX_HOST"
CLIENT_DEPLOYMENT = "client"
CLIENT_IMAGE = "nicolaka/netshoot"
#: Pod-template annotation holding a hash of the client's configuration, so that a changed
#: ConfigMap rolls the client's pods (environment variables are read only when a container starts).
CONFIG_HASH_ANNOTATION = "k8snb.io/config-hash"

#: The article's Deployments: (name, namespace key) where the key picks the namespace argument.
ARTICLE_DEPLOYMENTS = (("nginx-hello", "default"), ("netshoot", "default"), ("nginx", "nginx"))

#: Who can reach each Service type, in the course's words (notebook 04's comparison table).
SERVICE_REACH = {
    "ClusterIP": "pods inside the cluster only, by DNS name or ClusterIP",
    "NodePort": "anything that reaches a node: <any node IP>:<nodePort> (plus the ClusterIP inside)",
    "LoadBalancer": "the outside world through an external load balancer (cloud or MetalLB), "
                    "plus NodePort and ClusterIP",
}

#: Relative tolerance for numeric answers (shares, probabilities) in the exercise checks.
ANSWER_TOLERANCE = 0.01


# --- measured or modeled ---------------------------------------------------------------------------
def traffic_mode(cluster: Cluster) -> str:
    """'measured' when this cluster's pods carry traffic, 'modeled' on simulated (kwok) nodes."""
    return "measured" if can_carry_traffic(cluster) else "modeled"


def traffic_statement(cluster: Cluster) -> str:
    """One sentence telling the learner whether the traffic cells measure or model, and why."""
    if can_carry_traffic(cluster):
        return (f"Pods on {cluster.context} carry traffic: curl and nslookup run inside a client pod, "
                "and every traffic result in the course is MEASURED.")
    return (f"The nodes of {cluster.context} are simulated (kwok): pods get IP addresses but run no "
            "process, so nothing can send or answer a request. Traffic results are MODELED from the "
            "API (DNS from the Services, load balancing from kube-proxy's rules) and say so.")


def mode_of(frame: pd.DataFrame) -> str:
    """The mode of a request frame or summary: its attrs['mode'], else its 'mode' column."""
    mode = frame.attrs.get("mode")
    if not mode and "mode" in frame.columns and len(frame):
        mode = str(frame["mode"].iloc[0])
    return mode or "unknown"


# --- what the course creates -----------------------------------------------------------------------
def course_plan() -> pd.DataFrame:
    """Every object the course may create (kind, namespace, name, notebook, purpose).

    Read from the shipped manifests, the client objects below and nodeview's pod name, so the list
    cannot drift from what the notebooks really apply. The node pod exists only where the cluster
    lets the course run a privileged pod (one per node it reads, usually netshoot's).
    """
    purposes = {
        "nginx-deploy": ("01-04", "the article's web server, nginxdemos/hello"),
        "clusterip-svc": ("01-04", "the article's Service in front of it"),
        "netshoot": ("01-04", "the troubleshooting client (curl, nslookup)"),
        "nginx-namespace": ("03", "a second Service called nginx, in namespace nginx"),
        "headless-svc": ("03", "a headless Service (clusterIP: None): DNS lists nginx-hello's ready pods"),
        "nodeport-svc": ("04", "the same pods on a port of every node"),
        "loadbalancer-svc": ("04", "the same pods behind an external load balancer"),
    }
    rows = []
    for name, (notebook, purpose) in purposes.items():
        for obj in load(name):
            meta = obj["metadata"]
            rows.append({"kind": obj["kind"], "namespace": meta.get("namespace", ""), "name": meta["name"],
                         "notebook": notebook, "purpose": purpose})
    for obj in client_objects():
        meta = obj["metadata"]
        rows.append({"kind": obj["kind"], "namespace": meta["namespace"], "name": meta["name"],
                     "notebook": "01", "purpose": "a client that reads the Service name from a ConfigMap"})
    rows.append({"kind": "Pod", "namespace": "default", "name": nodeview.NODE_POD_PREFIX + "<node>",
                 "notebook": "03-04", "purpose": "privileged, on the node's network: reads kube-proxy's rules "
                                                 "and conntrack on netshoot's node (nodeview)"})
    return pd.DataFrame(rows)


def course_objects(cluster: Cluster) -> pd.DataFrame:
    """The objects labelled part-of=k8snb that exist on the cluster right now (kind, namespace, name)."""
    rows = []
    for kind in ("Namespace", "Deployment", "Service", "ConfigMap", "Pod"):
        prefix, plural, _ = KINDS[kind]
        for item in cluster.api.list(f"{prefix}/{plural}", labelSelector=SELECTOR):
            meta = item["metadata"]
            rows.append({"kind": kind, "namespace": meta.get("namespace", ""), "name": meta["name"]})
    return pd.DataFrame(rows, columns=["kind", "namespace", "name"])


def ensure_article(cluster: Cluster, replicas: int = 1, namespace: str = "default",
                   nginx_namespace: str = "nginx") -> pd.DataFrame:
    """Apply the article's objects (nginx-hello at `replicas`, nginx-svc, netshoot, nginx.nginx)
    and wait until every Deployment is ready and, where pods carry traffic, both Services answer the
    client (see wait_answering). Returns one row per Deployment with its ready pods.

    Safe to re-run: server-side apply converges, and objects deleted by hand are re-created.
    """
    article(cluster, namespace=namespace, nginx_namespace=nginx_namespace, replicas=replicas)
    rows = []
    for name, where in ARTICLE_DEPLOYMENTS:
        ns = namespace if where == "default" else nginx_namespace
        ready = wait_deployment(cluster, name, ns)
        rows.append({"deployment": name, "namespace": ns, "ready_pods": len(ready),
                     "pods": ", ".join(sorted(p["metadata"]["name"] for p in ready))})
    if can_carry_traffic(cluster):  # both Services answer the client before any cell measures them
        for url in ("nginx-svc", f"nginx.{nginx_namespace}"):
            wait_answering(cluster, url, namespace)
    return pd.DataFrame(rows)


# --- notebook 01: the ConfigMap-fed client ---------------------------------------------------------
def client_objects(target: str = "nginx-svc", namespace: str = "default") -> list[dict]:
    """A ConfigMap holding the Service name to call, and a netshoot-like client reading it.

    The client gets every key of the ConfigMap as an environment variable (`envFrom`), the way the
    article recommends: the address of a dependency lives in configuration, not in the image.
    """
    dns_subdomain(target, "target Service name")
    dns_label(namespace, "namespace")
    data = {CLIENT_VARIABLE: target}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": CLIENT_CONFIGMAP, "namespace": namespace}, "data": data}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": CLIENT_DEPLOYMENT, "namespace": namespace, "labels": {"app": CLIENT_DEPLOYMENT}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": CLIENT_DEPLOYMENT}},
            "template": {
                "metadata": {"labels": {"app": CLIENT_DEPLOYMENT},
                             "annotations": {CONFIG_HASH_ANNOTATION: digest}},
                "spec": {"containers": [{
                    "name": CLIENT_DEPLOYMENT, "image": CLIENT_IMAGE, "args": ["sleep", "infinity"],
                    "envFrom": [{"configMapRef": {"name": CLIENT_CONFIGMAP}}],
                }]},
            },
        },
    }
    return [configmap, deployment]


def apply_client(cluster: Cluster, target: str = "nginx-svc", namespace: str = "default") -> pd.DataFrame:
    """Apply `client_objects(target)` and wait for the client pod; one row per object applied.

    A new `target` changes the ConfigMap and the pod template's config hash, so the Deployment
    replaces its pod and the new pod starts with the new value.
    """
    rows = []
    for obj in client_objects(target, namespace):
        out = apply(cluster, obj)
        rows.append({"kind": obj["kind"], "namespace": namespace, "name": out["metadata"]["name"]})
    wait_deployment(cluster, CLIENT_DEPLOYMENT, namespace)
    return pd.DataFrame(rows)


def client_env(cluster: Cluster, namespace: str = "default") -> pd.DataFrame:
    """The client pod's CLIENT_VARIABLE: `printenv` inside the pod where pods run (measured), else
    what the pod's `envFrom` and the ConfigMap give it (modeled). One row: pod, variable, value,
    source, mode."""
    pod = pod_for(cluster, CLIENT_DEPLOYMENT, namespace)
    if can_carry_traffic(cluster):
        res = exec_argv(cluster, pod, ["printenv", CLIENT_VARIABLE], namespace)
        value = res.stdout.strip() if res.exit_code == 0 else None
        source, mode = f"printenv {CLIENT_VARIABLE} inside the pod", "measured"
    else:
        spec = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")["spec"]
        value, source = None, "not set by the pod spec"
        for container in spec.get("containers", []):
            for item in container.get("envFrom") or []:
                ref = (item.get("configMapRef") or {}).get("name")
                cm = cluster.api.exists(f"/api/v1/namespaces/{namespace}/configmaps/{ref}") if ref else None
                if cm and CLIENT_VARIABLE in (cm.get("data") or {}):
                    value = cm["data"][CLIENT_VARIABLE]
                    source = f"pod spec envFrom -> ConfigMap {ref} (the pod runs nothing to print it)"
        mode = "modeled"
    return pd.DataFrame([{"pod": pod, "variable": CLIENT_VARIABLE, "value": value, "source": source,
                          "mode": mode}])


# --- notebook 02: network model and capacity -------------------------------------------------------
def models_side_by_side(model) -> pd.DataFrame:
    """The article's two samples with their verdicts, and the learner's cluster as a third row."""
    samples = article_samples()
    verdicts = article_verdicts()
    table = samples.merge(verdicts, on="cluster")[["cluster", "pod_ip", "node_ip", "model", "reason"]]
    mine = {"cluster": "your cluster", "pod_ip": None, "node_ip": None, "model": model.model, "reason": model.reason}
    table = pd.concat([table, pd.DataFrame([mine])], ignore_index=True)
    table.attrs["closest"] = next((row.cluster for row in table.itertuples() if row.model == model.model
                                   and row.cluster != "your cluster"), None)
    return table


def eni_limits(instance_type: str) -> tuple[int, int]:
    """(ENIs, IPv4 addresses per ENI) of an instance type the course knows (cidr.AWS_ENI_LIMITS)."""
    if instance_type not in cidr.AWS_ENI_LIMITS:
        raise InvalidInput(f"unknown instance type {instance_type!r}; the course knows "
                           f"{', '.join(cidr.AWS_ENI_LIMITS)}")
    return cidr.AWS_ENI_LIMITS[instance_type]


def max_nodes(vpc_cidr: str, pods_per_node: int) -> int:
    """The most nodes whose addresses (one each plus one per pod) fit in `vpc_cidr` (a lower bound
    on usage, as in `vpc_capacity`)."""
    return cidr.addresses(vpc_cidr) // (pods_per_node + 1)


def lab_network(cluster: Cluster) -> str:
    """The lab's network mode ('routed' or 'flat'), or a note when this is not the lab."""
    if not cluster.is_lab:
        return f"not the lab ({cluster.flavor})"
    from .lab import status

    plan = status().plan or {}
    return plan.get("network", "unknown")


# --- asking a Service by name ----------------------------------------------------------------------
def _ready_endpoints(cluster: Cluster, fqdn: str | None) -> int:
    """Ready endpoints of the Service a cluster-local FQDN (name.namespace.svc.<domain>) names."""
    if not fqdn:
        return 0
    name, namespace = fqdn.split(".")[:2]
    return len({e["address"] for e in endpoint_records(cluster, namespace, name) if e["ready"]})


def ask(cluster: Cluster, names: list[str] | str, namespace: str = "default") -> pd.DataFrame:
    """Resolve each name as a pod in `namespace` would, then send `curl -I` to it.

    Measured (pods carry traffic): `nslookup` and `curl -I` from the netshoot pod. Modeled: the
    DNS answer from `resolve_modeled`, and 'answered' means the Service has ready endpoints that
    kube-proxy would forward to. One row per name: query, fqdn, address, answered, reply, mode.
    """
    names = [names] if isinstance(names, str) else list(names)
    measured = can_carry_traffic(cluster)
    rows = []
    for name in names:
        if measured:
            lookup = nslookup(cluster, name, namespace=namespace)
            if lookup.addresses:
                res = curl(cluster, name, namespace=namespace, head=True)
                answered = res.ok
                reply = (res.status_line + (f" (Server: {res.headers['Server']})" if "Server" in res.headers
                                            else "")) if res.ok else res.error
            else:
                answered, reply = False, f"curl: (6) Could not resolve host: {name}"
        else:
            lookup = resolve_modeled(cluster, name, namespace)
            ready = _ready_endpoints(cluster, lookup.name)
            answered = bool(lookup.addresses) and ready > 0
            if not lookup.addresses:
                reply = f"NXDOMAIN: curl would fail with 'Could not resolve host: {name}'"
            elif ready:
                reply = f"{ready} ready endpoint(s) behind {lookup.addresses[0]}: kube-proxy would forward"
            else:
                reply = f"{lookup.addresses[0]} has no ready endpoint: the connection would be refused"
        rows.append({"query": name, "fqdn": lookup.name, "address": ", ".join(lookup.addresses) or None,
                     "answered": answered, "reply": reply, "mode": "measured" if measured else "modeled"})
    return pd.DataFrame(rows)


def ip_path(cluster: Cluster, service: str = "nginx-svc", namespace: str = "default") -> pd.DataFrame:
    """The ClusterIP path step by step: name -> DNS -> ClusterIP -> curl to the IP itself.

    One row per step (step, detail, mode). Measured with nslookup and `curl -I <ClusterIP>` from
    netshoot; modeled from the Service, the kube-dns Service and the EndpointSlices.
    """
    measured = can_carry_traffic(cluster)
    mode = "measured" if measured else "modeled"
    lookup = nslookup(cluster, service, namespace=namespace) if measured else \
        resolve_modeled(cluster, service, namespace)
    if not lookup.addresses:
        raise NotFound(f"{service} does not resolve from namespace {namespace}; apply the article's objects first")
    ip = lookup.addresses[0]
    rows = [{"step": "1. DNS server asked", "detail": lookup.server or "none (the cluster runs no DNS Service)",
             "mode": mode},
            {"step": "2. name resolved", "detail": f"{service} -> {lookup.name}", "mode": mode},
            {"step": "3. ClusterIP", "detail": ip, "mode": mode}]
    if measured:
        res = curl(cluster, ip, namespace=namespace, head=True)
        detail = res.status_line if res.ok else res.error
    else:
        ready = _ready_endpoints(cluster, lookup.name)
        detail = f"kube-proxy would DNAT {ip}:80 to one of {ready} ready endpoint(s)"
    rows.append({"step": f"4. curl -I {ip}", "detail": detail, "mode": mode})
    return pd.DataFrame(rows)


# --- notebook 03: keep-alive -----------------------------------------------------------------------
def keepalive(cluster: Cluster, n: int = 100, service: str = "nginx-svc", namespace: str = "default",
              seed: int | None = None) -> pd.DataFrame:
    """The spread of `n` requests sent over ONE kept-alive connection (summary per replica).

    Measured: `sample(..., fresh_connections=False)`, curl reusing its connection. Modeled: kube-
    proxy decides once per connection, so one connection behaves like sessionAffinity ClientIP for
    one client; the rows are replayed that way and attrs['note'] says so.
    """
    eps = [e for e in endpoint_records(cluster, namespace, service) if e["ready"]]
    replicas = sorted({e["pod"] for e in eps if e["pod"]})
    if can_carry_traffic(cluster):
        frame = sample(cluster, n, service, namespace, fresh_connections=False)
        note = "measured: one curl process, one kept-alive TCP connection"
    else:
        frame = modeled_sample(eps, n, session_affinity="ClientIP", seed=seed)
        note = ("modeled: kube-proxy picks an endpoint once per connection, replayed as one "
                "client whose every request follows the first")
    summary = summarize(frame, replicas)
    summary.attrs["note"] = note
    return summary


# --- notebook 04: NodePort, LoadBalancer, kube-proxy's rules ---------------------------------------
def node_port(cluster: Cluster, service: str = "nginx-nodeport", namespace: str = "default") -> int:
    """The nodePort the API server allocated to the Service's first port."""
    svc = cluster.api.get(f"/api/v1/namespaces/{namespace}/services/{service}")
    port = (svc["spec"].get("ports") or [{}])[0].get("nodePort")
    if not port:
        raise NotFound(f"Service {namespace}/{service} has no nodePort (is it of type NodePort or LoadBalancer?)")
    return int(port)


#: Upper bound for every node to answer on a new NodePort: kube-proxy programs it on each node a
#: moment after the Service exists (its sync period), and a learner's cell must not run earlier.
NODE_PORT_TIMEOUT = 60.0


def node_port_reach(cluster: Cluster, service: str = "nginx-nodeport", namespace: str = "default",
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


def external_ip(cluster: Cluster, service: str = "nginx-lb", namespace: str = "default",
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
                  namespace: str = "default") -> pd.DataFrame:
    """The course's three Services side by side, read live: type, ClusterIP, PORT(S), EXTERNAL-IP
    and who can reach them."""
    table = services(cluster, namespace)
    table = table[table["name"].isin(names)].copy()
    table["reachable_from"] = table["type"].map(SERVICE_REACH)
    order = {name: i for i, name in enumerate(names)}
    table = table.sort_values("name", key=lambda s: s.map(order))
    return table[["name", "type", "cluster_ip", "ports", "external_ip", "reachable_from"]].reset_index(drop=True)


def expected_kube_svc_rules(cluster: Cluster, service: str = "nginx-svc", namespace: str = "default") -> pd.DataFrame:
    """The KUBE-SVC chain kube-proxy (iptables mode) writes for the Service's ready endpoints,
    computed: rule, probability, effective_share, endpoint. mode='modeled'."""
    eps = [e for e in endpoint_records(cluster, namespace, service) if e["ready"]]
    if not eps:
        raise NotFound(f"Service {namespace}/{service} has no ready endpoints, so kube-proxy writes no rules")
    rows, reach = [], 1.0
    for i, (e, p) in enumerate(zip(eps, iptables_probabilities(len(eps)))):
        rows.append({"rule": i, "probability": p, "effective_share": reach * p,
                     "endpoint": f"{e['address']}:{e['port']}", "mode": "modeled"})
        reach *= 1 - p
    return pd.DataFrame(rows)


# --- a node's own tables: kube-proxy's chain and the conntrack entry (notebooks 03 and 04) ----------
#: Seconds to wait for the node's kube-proxy to write the chain for the Service's current endpoints.
CHAIN_TIMEOUT = 20.0


def _view_node(cluster: Cluster, namespace: str) -> tuple[str, dict | None]:
    """The node whose tables the course reads, and the client pod on it: netshoot's node (its
    conntrack entries live there; every node holds the same kube-proxy rules)."""
    try:
        pod = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods/{pod_for(cluster, 'netshoot', namespace)}")
        return pod["spec"]["nodeName"], pod
    except NotReadyInTime:
        nodes = sorted(n["metadata"]["name"] for n in cluster.api.list("/api/v1/nodes"))
        if not nodes:
            raise NotFound("the cluster lists no node") from None
        return nodes[0], None


def _lab_nat(cluster: Cluster, node: str) -> nodeview.NatRules | None:
    """The lab's own way onto a real node (nsenter into its network namespace, as root), used when
    the node pod cannot run there; None elsewhere."""
    from . import lab

    reader = getattr(lab, "node_iptables", None)
    if not (cluster.is_lab and reader and os.geteuid() == 0):
        return None
    try:
        text = reader(node, "nat")
    except K8snbError:
        return None
    return nodeview.NatRules(node, "iptables-save -t nat", text, "nsenter into the lab node's network namespace")


def _modeled_chain(table: pd.DataFrame, why: str) -> pd.DataFrame:
    table.attrs.update(how=f"Modeled, not read from a node: {why}. The table is the chain kube-proxy in "
                           f"iptables mode writes for the Service's {len(table)} ready endpoint(s).",
                       proxy_mode=table.attrs.get("proxy_mode"))
    return table


def kube_proxy_chain(cluster: Cluster, service: str = "nginx-svc", namespace: str = "default",
                     timeout: float = CHAIN_TIMEOUT) -> pd.DataFrame:
    """kube-proxy's KUBE-SVC chain for `service`, read on a node where the course may run its node
    pod (`nodeview`): one row per rule (rule, chain, probability, effective_share, endpoint,
    connections, mode='measured'). `connections` is the rule's packet counter: new connections
    through that node that took the rule.

    Where the chain cannot be read (simulated nodes, a cluster refusing privileged pods, kube-proxy
    in nftables or IPVS mode, no kube-proxy) the rows are the chain iptables mode would write for
    the ready endpoints, mode='modeled'. Either way `attrs['how']` is the sentence to print: the
    mode kube-proxy runs in and how that was found, where the rules were read, or why they were not.
    """
    modeled = expected_kube_svc_rules(cluster, service, namespace)
    if not can_carry_traffic(cluster):
        return _modeled_chain(modeled, f"the nodes of {cluster.context} are simulated (kwok) and have no "
                                       "kernel tables")
    node, _ = _view_node(cluster, namespace)
    try:
        nat = nodeview.read_nat(cluster, node, namespace)
    except K8snbError as exc:
        nat = _lab_nat(cluster, node)
        if nat is None:
            return _modeled_chain(modeled, str(exc).rstrip("."))
    try:
        mode, found = nodeview.kube_proxy_mode(cluster, node, namespace, nat)
    except K8snbError as exc:
        return _modeled_chain(modeled, f"kube-proxy's mode could not be read on node {node}: {str(exc).rstrip('.')}")
    modeled.attrs["proxy_mode"] = mode
    if mode != "iptables":
        words = f"kube-proxy runs in {mode} mode" if mode else "no kube-proxy rules were found"
        return _modeled_chain(modeled, f"{words} ({found}), so this cluster has no KUBE-SVC chain to read")
    if nat is None:
        return _modeled_chain(modeled, f"kube-proxy's mode is iptables ({found}), but node {node} holds no "
                                       "KUBE-SERVICES chain in either iptables backend")
    wanted = set(modeled["endpoint"])
    deadline = time.monotonic() + timeout
    while True:
        try:
            table = parse_kube_svc_chain(nat.text, service, namespace)
        except NotFound:
            table = None
        got = set(table["endpoint"].dropna()) if table is not None else set()
        if got == wanted or time.monotonic() > deadline:
            break
        time.sleep(1.0)  # kube-proxy writes new endpoints a moment after they are ready
        nat = nodeview.read_nat(cluster, node, namespace) if nat.via.startswith("pod ") else _lab_nat(cluster, node)
        if nat is None:
            return _modeled_chain(modeled, f"node {node}'s KUBE-SERVICES chain disappeared while it was read")
    if table is None:
        return _modeled_chain(modeled, f"node {node} has no KUBE-SVC chain for {namespace}/{service} after "
                                       f"{timeout:.0f} s (read with `{nat.command}`)")
    table["mode"] = "measured"
    lag = "" if got == wanted else (f" The node's chain lists {len(got)} endpoint(s), the EndpointSlices "
                                    f"{len(wanted)} ready: its kube-proxy has not caught up.")
    table.attrs.update(node=node, proxy_mode=mode, command=nat.command, how=(
        f"kube-proxy mode: iptables ({found}). Read on node {node} with `{nat.command}` ({nat.via}): chain "
        f"{table.attrs['svc_chain']}, {len(table)} rule(s) (measured)." + lag))
    return table


def _who(cluster: Cluster, namespace: str, service: str, cluster_ip: str) -> dict[str, str]:
    """Address -> what it is (a pod of `namespace`, the Service's ClusterIP, a node)."""
    names = {cluster_ip: f"Service {service} (ClusterIP)"}
    for pod in cluster.api.list(f"/api/v1/namespaces/{namespace}/pods"):
        ip = pod.get("status", {}).get("podIP")
        if ip and not pod.get("spec", {}).get("hostNetwork"):
            names.setdefault(ip, f"pod {pod['metadata']['name']}")
    try:
        for node in cluster.api.list("/api/v1/nodes"):
            for address in node.get("status", {}).get("addresses") or []:
                names.setdefault(address["address"], f"node {node['metadata']['name']}")
    except K8snbError:
        pass  # an account that may not list nodes: addresses stay unnamed
    return names


def _pin_modeled(why: str, client_ip: str | None, client: str, cluster_ip: str, port: int,
                 endpoints: list[str], service: str) -> pd.DataFrame:
    src = f"{client_ip or '<client IP>'}:<ephemeral port>"
    rows = [{"direction": "original", "src": src, "dst": f"{cluster_ip}:{port}",
             "who": f"pod {client} -> Service {service} (ClusterIP)", "mode": "modeled"},
            {"direction": "reply", "src": "one of " + ", ".join(endpoints), "dst": src,
             "who": "the pod kube-proxy's DNAT picks -> " + f"pod {client}", "mode": "modeled"}]
    frame = pd.DataFrame(rows, columns=PIN_COLUMNS)
    frame.attrs.update(how=f"Modeled, not read from a node: {why}. The rows are the entry conntrack would hold "
                           "for one connection from the client to the Service (without masquerading).",
                       summary="conntrack entry: modeled, not read from a node (the conntrack cell says why).")
    return frame


PIN_COLUMNS = ["direction", "src", "dst", "who", "mode"]


def conntrack_entry(cluster: Cluster, service: str = "nginx-svc", namespace: str = "default") -> pd.DataFrame:
    """Send one request from netshoot to `service` on a new connection, then read that connection's
    conntrack entry on netshoot's node (`conntrack -L` in the course's node pod, filtered by the
    ClusterIP, the Service port and the client's own source port).

    Two rows (direction 'original' and 'reply'; src, dst as ip:port, who, mode): the original tuple is
    what netshoot sent (to the ClusterIP), the reply tuple what the kernel expects back, from the pod
    kube-proxy's DNAT chose. Where the node cannot be read the rows are modeled and `attrs['how']`
    says why; it always holds the sentence to print, `attrs['summary']` a one-line recap.
    """
    dns_label(service, "service")
    svc = cluster.api.get(f"/api/v1/namespaces/{namespace}/services/{service}")
    cluster_ip = svc["spec"].get("clusterIP")
    if not cluster_ip or cluster_ip == "None":
        raise InvalidInput(f"Service {namespace}/{service} has no ClusterIP (headless): kube-proxy does not DNAT it")
    port = int((svc["spec"].get("ports") or [{}])[0].get("port") or 80)
    ready = sorted({f"{e['address']}:{e['port']}" for e in endpoint_records(cluster, namespace, service) if e["ready"]})
    if not ready:
        raise NotFound(f"Service {namespace}/{service} has no ready endpoints: no connection would be answered")
    node, client_pod = _view_node(cluster, namespace)
    if client_pod is None:
        raise NotReadyInTime(f"no ready netshoot pod in namespace {namespace}; apply the article's objects first")
    client, client_ip = client_pod["metadata"]["name"], client_pod.get("status", {}).get("podIP")
    if not can_carry_traffic(cluster):
        return _pin_modeled(f"the nodes of {cluster.context} are simulated (kwok): no connection is opened",
                            client_ip, client, cluster_ip, port, ready, service)
    try:
        via = nodeview.node_pod(cluster, node, namespace)
    except K8snbError as exc:
        return _pin_modeled(str(exc).rstrip("."), client_ip, client, cluster_ip, port, ready, service)
    url = f"http://{service}" + ("" if port == 80 else f":{port}") + "/"
    res = exec_argv(cluster, client, nodeview.one_request_argv(url), namespace, timeout=20)
    conn = nodeview.parse_one_request(res.stdout)
    server = parse_hello(conn.body)["server_address"]
    try:
        entries = nodeview.read_conntrack(cluster, node, cluster_ip, port, conn.local_ip, conn.local_port, namespace)
    except K8snbError as exc:
        return _pin_modeled(str(exc).rstrip("."), client_ip, client, cluster_ip, port, ready, service)
    who = _who(cluster, namespace, service, cluster_ip)
    rows = []
    for e in entries.itertuples():
        src, dst = f"{e.orig_src}:{e.orig_sport}", f"{e.orig_dst}:{e.orig_dport}"
        rsrc, rdst = f"{e.reply_src}:{e.reply_sport}", f"{e.reply_dst}:{e.reply_dport}"
        rows += [{"direction": "original", "src": src, "dst": dst, "mode": "measured",
                  "who": f"{who.get(e.orig_src, e.orig_src)} -> {who.get(e.orig_dst, e.orig_dst)}"},
                 {"direction": "reply", "src": rsrc, "dst": rdst, "mode": "measured",
                  "who": f"{who.get(e.reply_src, e.reply_src)} -> {who.get(e.reply_dst, e.reply_dst)}"}]
    frame = pd.DataFrame(rows, columns=PIN_COLUMNS)
    where = f"`conntrack -L` on node {node} (pod {namespace}/{via})"
    conn_words = f"{conn.local_ip}:{conn.local_port} -> {conn.remote_ip}:{conn.remote_port}"
    if entries.empty:
        frame.attrs.update(how=f"{where} holds no entry for the connection {conn_words} that curl just opened "
                               "(measured): netfilter did not translate it on that node (a kube-proxy "
                               "replacement such as Cilium may translate it in the socket), or the entry "
                               "already expired.",
                           summary=f"conntrack entry: none found on node {node} (measured).")
        return frame
    e = entries.iloc[0]
    backend = f"{e['reply_src']}:{e['reply_sport']}"
    page = (f"; the page names Server address {server}, the same pod" if server == backend else
            f"; the page names Server address {server}" if server else "")
    frame.attrs.update(
        node=node, state=e["state"],
        how=(f"{where}, for the connection curl just opened ({conn_words}, state {e['state']}): the original "
             f"tuple goes to the ClusterIP, the reply comes from {who.get(e['reply_src'], 'address')} {backend}: "
             f"the destination the node's NAT rules chose for the first packet, which conntrack applies to every "
             f"later packet of the connection{page} (measured)."),
        summary=(f"conntrack on node {node}: {conn_words} is answered by {backend} "
                 f"({who.get(e['reply_src'], 'not a pod of ' + namespace)}) (measured)."))
    return frame


# --- exercise checks -------------------------------------------------------------------------------
class Verdict:
    """An exercise check's answer: true or false, shown in the notebook as one 'Right'/'Not yet' line."""

    def __init__(self, ok: bool, message: str) -> None:
        self.ok = bool(ok)
        self.message = message

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.ok else "#b35900"
        return f'<p style="color:{color};font-weight:bold">{html.escape(self.message)}</p>'


def _verdict(ok: bool, right: str, wrong: str) -> Verdict:
    return Verdict(ok, ("Right: " + right) if ok else ("Not yet: " + wrong))


def _missing(answer) -> bool:
    return answer is None or answer is ... or (isinstance(answer, str) and not answer.strip())


def _close(a: float, b: float) -> bool:
    return math.isclose(float(a), float(b), rel_tol=ANSWER_TOLERANCE, abs_tol=1e-9)


def check_selector(answer) -> Verdict:
    """Exercise 00: the label selector that finds everything the course created."""
    if _missing(answer):
        return _verdict(False, "", "replace None with a label selector string such as 'key=value'.")
    normalized = str(answer).replace(" ", "")
    return _verdict(normalized == SELECTOR,
                    f"`kubectl get deploy,svc,cm -A -l {SELECTOR}` lists what the course made.",
                    f"{answer!r} is not the course's label; look at the 'kind/namespace/name' table's "
                    f"heading and at k8snb.PART_OF ({PART_OF!r}).")


def check_same_ip(prediction, change: pd.DataFrame) -> Verdict:
    """Exercise 01: did the replacement pod keep the old pod's IP? (prediction: True or False)."""
    if not isinstance(prediction, bool):
        return _verdict(False, "", "set the prediction to True or False.")
    same = change["ip"].iloc[0] == change["ip"].iloc[1]
    return _verdict(prediction == same,
                    f"the old pod had {change['ip'].iloc[0]}, the new one has {change['ip'].iloc[1]}: "
                    + ("the same address, by chance of the IP allocator." if same else
                       "a new address, which is why clients must not keep pod IPs."),
                    f"look at the 'ip' column of the before/after table: {change['ip'].iloc[0]} vs "
                    f"{change['ip'].iloc[1]}.")


def check_client_target(cluster: Cluster, expected: str = "nginx.nginx", namespace: str = "default") -> Verdict:
    """Exercise 01: the client now reads `expected` from its ConfigMap and that name answers."""
    try:
        env = client_env(cluster, namespace)
    except K8snbError as exc:
        return _verdict(False, "", f"the client is not ready ({exc}); run the apply cell again.")
    value = env["value"].iloc[0]
    if value != expected:
        return _verdict(False, "", f"the client's {CLIENT_VARIABLE} is {value!r}, not {expected!r}: change "
                        "`new_target` and run the apply cell again.")
    result = ask(cluster, value, namespace)
    return _verdict(bool(result["answered"].iloc[0]),
                    f"the client's {CLIENT_VARIABLE} is {value!r} and that name answers "
                    f"({result['mode'].iloc[0]}): only the ConfigMap changed, not the client.",
                    f"{CLIENT_VARIABLE} is {value!r} but it does not answer: {result['reply'].iloc[0]}")


def check_addresses(answer, vpc_cidr: str = "10.0.0.0/20") -> Verdict:
    """Exercise 02: how many addresses a range holds."""
    if _missing(answer):
        return _verdict(False, "", "replace None with a whole number.")
    total = cidr.addresses(vpc_cidr)
    return _verdict(answer == total, f"{vpc_cidr} holds 2^(32-{vpc_cidr.split('/')[1]}) = {total} addresses.",
                    f"{answer} is not it: a /p holds 2 to the power (32 - p) addresses.")


def check_max_pods(answer, instance_type: str = "m5.large") -> Verdict:
    """Exercise 02: EKS max pods for an instance type (VPC CNI, no prefix delegation)."""
    if _missing(answer):
        return _verdict(False, "", "replace None with a whole number.")
    enis, per_eni = cidr.AWS_ENI_LIMITS[instance_type]
    right = cidr.aws_max_pods(enis, per_eni)
    return _verdict(answer == right, f"{enis} x ({per_eni} - 1) + 2 = {right} pods on a {instance_type}.",
                    f"{answer} is not it: ENIs x (IPv4 per ENI - 1) + 2, with {enis} ENIs of {per_eni} addresses.")


def check_model(answer, model) -> Verdict:
    """Exercise 02: the learner's verdict ('flat' or 'separate') against the computed one."""
    if _missing(answer):
        return _verdict(False, "", "replace None with 'flat' or 'separate'.")
    return _verdict(str(answer).strip().lower() == model.model,
                    f"{model.model}: {model.reason}",
                    f"compare the pod IPs with the node network {model.node_network} in the tables above.")


def check_share(answer, replicas: int) -> Verdict:
    """Exercise 03: the share of new connections each of `replicas` endpoints gets."""
    if _missing(answer):
        return _verdict(False, "", "replace None with a number between 0 and 1.")
    return _verdict(_close(answer, 1 / replicas),
                    f"each of {replicas} replicas gets 1/{replicas} = {1 / replicas:.3f} of new connections.",
                    f"{answer} is not it: kube-proxy gives every ready endpoint the same chance.")


def _cluster_domain(cluster: Cluster, namespace: str) -> str:
    from . import dns

    try:
        return dns.cluster_domain(cluster, namespace)
    except K8snbError:
        return dns.CLUSTER_DOMAIN  # no client pod to read it in: the kubelet's default, assumed


def check_dns_name(cluster: Cluster, answer, service: str = "nginx", service_namespace: str = "nginx",
                   from_namespace: str = "default") -> Verdict:
    """Exercise 03: a name that reaches `service` in `service_namespace` from `from_namespace`."""
    if _missing(answer):
        return _verdict(False, "", "replace None with a DNS name, as a string.")
    target = cluster.api.exists(f"/api/v1/namespaces/{service_namespace}/services/{service}")
    if target is None:
        return _verdict(False, "", f"Service {service_namespace}/{service} is missing; run the apply cell again.")
    try:
        # The cluster domain the pod's search list names (read in netshoot where pods run).
        domain = _cluster_domain(cluster, from_namespace)
        lookup = resolve_modeled(cluster, str(answer), from_namespace, domain)
    except K8snbError as exc:
        return _verdict(False, "", str(exc))
    ok = lookup.addresses == (target["spec"]["clusterIP"],)
    return _verdict(ok, f"{answer!r} resolves from {from_namespace} to {lookup.name} "
                    f"({target['spec']['clusterIP']}).",
                    f"{answer!r} resolves to {lookup.name or 'nothing'}: try {{service}}.{{namespace}}.")


def check_rule_probability(answer, endpoints_count: int, rule: int) -> Verdict:
    """Exercise 04: the --probability kube-proxy writes on `rule` (0-based) of a KUBE-SVC chain."""
    if _missing(answer):
        return _verdict(False, "", "replace None with a number between 0 and 1.")
    right = iptables_probabilities(endpoints_count)[rule]
    return _verdict(_close(answer, right),
                    f"rule {rule} of {endpoints_count} matches with probability 1/({endpoints_count} - {rule}) "
                    f"= {right:.4f}; reaching it takes ({endpoints_count - rule}/{endpoints_count}), so the "
                    f"endpoint still gets 1/{endpoints_count}.",
                    f"{answer} is not it: rule i of k matches with probability 1/(k - i).")


def check_service_type(answer) -> Verdict:
    """Exercise 04: the type that opens a port on every node without any cloud provider."""
    if _missing(answer):
        return _verdict(False, "", "replace None with one of 'ClusterIP', 'NodePort', 'LoadBalancer'.")
    return _verdict(str(answer).strip().lower() == "nodeport",
                    "NodePort: every node opens the same port, no provider needed.",
                    f"{answer!r} is not it: ClusterIP stays inside the cluster, LoadBalancer needs a provider "
                    "(or MetalLB) to get its address.")

