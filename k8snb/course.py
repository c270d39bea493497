"""The course's own steps: what it creates (and the plan of it), measured or modeled, the article's
objects made ready, notebook 01's ConfigMap-fed client, asking a Service by name, keep-alive.

Notebooks keep their cells short (one to five lines of `k8snb.<name>` calls); whatever needs more
than that lives in a module named after its concept (this one, `servicetypes`, `dataplane`, `dns`,
`affinity`, `cidr`, `network`) with a docstring, so a learner who wonders what a cell did can read it.

Every helper works on both kinds of cluster the course meets:

- pods carry traffic (the lab with real nodes, kind, EKS ...): curl and nslookup run in a client
  pod and the rows say mode='measured';
- simulated nodes (the lab's kwok nodes): pods have IPs but run nothing, so the answer is computed
  from the API (the Service, its EndpointSlices, kube-proxy's rules) and the rows say mode='modeled'.

The exercises and their checks are in `k8snb.exercises`.
"""
from __future__ import annotations

import hashlib
import json

import pandas as pd

from . import nodeview
from .cluster import Cluster
from .errors import Forbidden, NotFound
from .manifests import COURSE_NAMESPACES, KINDS, SELECTOR, apply, article, labelled_namespaces, load
from .names import dns_label, dns_subdomain
from .probe import can_carry_traffic, curl, exec_argv, nslookup, pod_for, resolve_modeled
from .tables import endpoint_records
from .traffic import modeled_sample, sample, summarize
from .wait import wait_answering, wait_deployment
from .learner import NAMESPACE, SECOND_NAMESPACE

#: The ConfigMap-fed client of notebook 01: its ConfigMap, the variable it sets, the Deployment.
CLIENT_CONFIGMAP = "client-config"
CLIENT_VARIABLE = "NGINX_HOST"
CLIENT_DEPLOYMENT = "client"
CLIENT_IMAGE = "nicolaka/netshoot"
#: Pod-template annotation holding a hash of the client's configuration, so that a changed
#: ConfigMap rolls the client's pods (environment variables are read only when a container starts).
CONFIG_HASH_ANNOTATION = "k8snb.io/config-hash"

#: The article's Deployments: (name, namespace key) where the key picks the namespace argument.
ARTICLE_DEPLOYMENTS = (("nginx-hello", "main"), ("netshoot", "main"), ("nginx", "second"))


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
        # ensure_article applies it in every notebook from 01: 01's exercise and 03's lesson use it.
        "nginx-namespace": ("01-04", "a second Service called nginx, in namespace nginx (01's exercise, 03's lesson)"),
        "headless-svc": ("03", "a headless Service (clusterIP: None): DNS lists nginx-hello's ready pods"),
        "nodeport-svc": ("04", "the same pods on a port of every node"),
        "nodeport-local-svc": ("04", "the same NodePort with externalTrafficPolicy: Local (client address kept)"),
        "exercise-selector-svc": ("03", "exercise: a Service whose selector matches no pod"),
        "exercise-targetport-svc": ("03", "exercise: a Service whose targetPort matches no container port"),
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
    rows.append({"kind": "Service", "namespace": NAMESPACE, "name": "nginx-pick", "notebook": "04",
                 "purpose": "exercise: a NodePort Service on the port you pick"})
    rows.append({"kind": "Pod", "namespace": NAMESPACE, "name": nodeview.NODE_POD_PREFIX + "<node>",
                 "notebook": "03-04", "purpose": "privileged, on the node's network: reads kube-proxy's rules "
                                                 "and conntrack on netshoot's node (nodeview)"})
    return pd.DataFrame(rows)


def course_objects(cluster: Cluster) -> pd.DataFrame:
    """The objects labelled part-of=k8snb that exist on the cluster right now (kind, namespace, name)."""
    rows = []
    for kind in ("Namespace", "Deployment", "Service", "ConfigMap", "Pod"):
        prefix, plural, namespaced = KINDS[kind]
        try:
            items = cluster.api.list(f"{prefix}/{plural}", labelSelector=SELECTOR)
        except Forbidden:  # a classroom learner: their own namespaces only
            items = ([i for ns in COURSE_NAMESPACES
                      for i in cluster.api.list(f"{prefix}/namespaces/{ns}/{plural}", labelSelector=SELECTOR)]
                     if namespaced else labelled_namespaces(cluster, COURSE_NAMESPACES))
        for item in items:
            meta = item["metadata"]
            rows.append({"kind": kind, "namespace": meta.get("namespace", ""), "name": meta["name"]})
    return pd.DataFrame(rows, columns=["kind", "namespace", "name"])


def ensure_article(cluster: Cluster, replicas: int = 1, namespace: str = NAMESPACE,
                   nginx_namespace: str = SECOND_NAMESPACE) -> pd.DataFrame:
    """Apply the article's objects (nginx-hello at `replicas`, nginx-svc, netshoot; nginx in
    `nginx_namespace`) and wait until every Deployment is ready and, where pods carry traffic, both Services answer the
    client (see wait_answering). Returns one row per Deployment with its ready pods.

    Safe to re-run: server-side apply converges, and objects deleted by hand are re-created.
    """
    article(cluster, namespace=namespace, nginx_namespace=nginx_namespace, replicas=replicas)
    rows = []
    for name, where in ARTICLE_DEPLOYMENTS:
        ns = namespace if where == "main" else nginx_namespace
        ready = wait_deployment(cluster, name, ns)
        rows.append({"deployment": name, "namespace": ns, "ready_pods": len(ready),
                     "pods": ", ".join(sorted(p["metadata"]["name"] for p in ready))})
    if can_carry_traffic(cluster):  # both Services answer the client before any cell measures them
        for url in ("nginx-svc", f"nginx.{nginx_namespace}"):
            wait_answering(cluster, url, namespace)
    return pd.DataFrame(rows)


# --- notebook 01: the ConfigMap-fed client ---------------------------------------------------------
def client_objects(target: str = "nginx-svc", namespace: str = NAMESPACE) -> list[dict]:
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
                # `sleep` as PID 1 ignores SIGTERM: without a short grace every delete waits 30 s.
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": CLIENT_DEPLOYMENT, "image": CLIENT_IMAGE, "args": ["sleep", "infinity"],
                    "envFrom": [{"configMapRef": {"name": CLIENT_CONFIGMAP}}],
                }]},
            },
        },
    }
    return [configmap, deployment]


def apply_client(cluster: Cluster, target: str = "nginx-svc", namespace: str = NAMESPACE) -> pd.DataFrame:
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


def client_env(cluster: Cluster, namespace: str = NAMESPACE) -> pd.DataFrame:
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


# --- asking a Service by name ----------------------------------------------------------------------
def _ready_endpoints(cluster: Cluster, fqdn: str | None) -> int:
    """Ready endpoints of the Service a cluster-local FQDN (name.namespace.svc.<domain>) names."""
    if not fqdn:
        return 0
    name, namespace = fqdn.split(".")[:2]
    return len({e["address"] for e in endpoint_records(cluster, namespace, name) if e["ready"]})


def ask(cluster: Cluster, names: list[str] | str, namespace: str = NAMESPACE, client: str = "netshoot") -> pd.DataFrame:
    """Resolve each name as a pod in `namespace` would, then send `curl -I` to it.

    Measured (pods carry traffic): `nslookup` and `curl -I` from the pod labelled app=`client`
    (netshoot; notebook 01 asks from its ConfigMap-fed client itself). Modeled: the
    DNS answer from `resolve_modeled`, and 'answered' means the Service has ready endpoints that
    kube-proxy would forward to. One row per name: query, fqdn, address, answered, reply, mode.
    """
    names = [names] if isinstance(names, str) else list(names)
    measured = can_carry_traffic(cluster)
    rows = []
    pod = pod_for(cluster, client, namespace) if measured else None
    for name in names:
        if measured:
            # curl runs even when nslookup found nothing: the reply is always what curl printed
            # (its own resolver's error included), never a message the course made up for it.
            lookup = nslookup(cluster, name, from_pod=pod, namespace=namespace)
            res = curl(cluster, name, from_pod=pod, namespace=namespace, head=True)
            answered = res.ok
            reply = (res.status_line + (f" (Server: {res.headers['Server']})" if "Server" in res.headers
                                        else "")) if res.ok else res.error
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


def ip_path(cluster: Cluster, service: str = "nginx-svc", namespace: str = NAMESPACE) -> pd.DataFrame:
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
def keepalive(cluster: Cluster, n: int = 100, service: str = "nginx-svc", namespace: str = NAMESPACE,
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
