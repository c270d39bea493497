"""The article's objects, applied safely, and the cleanup that removes only what the course made.

Safety rules, the same on a throw-away lab and on a cluster that matters:
- every object the course creates carries `app.kubernetes.io/part-of=k8snb` (pods too, through the
  pod template), so it can be found and removed later;
- an existing object of the same name without that label belongs to somebody else: `apply` raises
  Conflict and leaves it untouched;
- a namespace that already exists is used, never labelled or deleted; one the course creates is
  labelled and is the only kind `cleanup` deletes;
- what `k8snb classroom up` made for a learner (namespaces, account, bindings, quota) also carries
  `k8snb.io/classroom`: a learner's cleanup empties their namespaces but leaves those to the teacher.
Objects are applied with server-side apply (field manager `k8snb`), so re-running a cell converges.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from importlib import resources

import pandas as pd
import yaml

from .cluster import Cluster
from .learner import NAMESPACE, SECOND_NAMESPACE
from .errors import Conflict, Forbidden, InvalidInput, K8snbError, NotFound
from .names import dns_label, dns_subdomain, replicas as check_replicas

PART_OF = "app.kubernetes.io/part-of"
COURSE = "k8snb"
SELECTOR = f"{PART_OF}={COURSE}"
#: On a namespace `k8snb classroom up` created for a learner (value: the learner): a learner's
#: cleanup empties it but leaves it to the teacher.
CLASSROOM = "k8snb.io/classroom"
#: The article's namespaces: where the course's objects live unless a caller says otherwise.
COURSE_NAMESPACES = (NAMESPACE, SECOND_NAMESPACE)
#: Seconds to wait for a namespace the course deleted to finish terminating before re-creating it.
NAMESPACE_TERMINATING_TIMEOUT = 60.0

#: kind -> (API prefix, plural, namespaced). Only the kinds the course creates.
KINDS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "Pod": ("/api/v1", "pods", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "ResourceQuota": ("/api/v1", "resourcequotas", True),
    "LimitRange": ("/api/v1", "limitranges", True),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "ValidatingAdmissionPolicy": ("/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicies", False),
    "ValidatingAdmissionPolicyBinding": ("/apis/admissionregistration.k8s.io/v1",
                                         "validatingadmissionpolicybindings", False),
}
#: Order in which cleanup deletes (workloads before the Services that front them, namespaces last).
CLEANUP_ORDER = ("Deployment", "Pod", "Service", "ConfigMap", "RoleBinding", "Role", "ServiceAccount",
                 "ClusterRoleBinding", "ClusterRole")

#: File name -> what it holds, for `load()`.
FILES = {
    "nginx-deploy": "nginx-deploy.yaml",
    "clusterip-svc": "clusterip-svc.yaml",
    "headless-svc": "headless-svc.yaml",
    "netshoot": "netshoot.yaml",
    "nginx-namespace": "nginx-namespace.yaml",
    "nodeport-svc": "nodeport-svc.yaml",
    "nodeport-local-svc": "nodeport-local-svc.yaml",
    "exercise-selector-svc": "exercise-selector-svc.yaml",
    "exercise-targetport-svc": "exercise-targetport-svc.yaml",
    "loadbalancer-svc": "loadbalancer-svc.yaml",
    "learner-rbac": "learner-rbac.yaml",
}


def load(name: str, namespace: str | None = None) -> list[dict]:
    """The objects of one shipped manifest, moved to `namespace`; by default to the learner's own
    (k8snb.learner: `default` and, for nginx-namespace, `nginx` for a learner alone, as shipped).
    learner-rbac, which spans namespaces on purpose, moves only when asked."""
    if name not in FILES:
        raise InvalidInput(f"unknown manifest {name!r}; shipped: {', '.join(FILES)}")
    if namespace is None and name != "learner-rbac":
        namespace = SECOND_NAMESPACE if name == "nginx-namespace" else NAMESPACE
    text = resources.files("k8snb").joinpath("manifests", FILES[name]).read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    if namespace:
        dns_label(namespace, "namespace")
        for d in docs:
            if d["kind"] == "Namespace":
                d["metadata"]["name"] = namespace
            elif KINDS.get(d["kind"], ("", "", False))[2]:
                d["metadata"]["namespace"] = namespace
    return docs


def object_path(obj: dict) -> str:
    """The API URL of one object (what `kubectl get <kind> <name> -n <ns>` reads)."""
    kind = obj["kind"]
    if kind not in KINDS:
        raise InvalidInput(f"the course does not manage objects of kind {kind}")
    prefix, plural, namespaced = KINDS[kind]
    name = obj["metadata"]["name"]
    if namespaced:
        return f"{prefix}/namespaces/{obj['metadata'].get('namespace', 'default')}/{plural}/{name}"
    return f"{prefix}/{plural}/{name}"


def labelled(obj: dict) -> dict:
    """A copy of `obj` carrying the course label on itself and on its pod template."""
    obj = copy.deepcopy(obj)
    obj.setdefault("metadata", {}).setdefault("labels", {})[PART_OF] = COURSE
    template = obj.get("spec", {}).get("template")
    if template is not None:
        template.setdefault("metadata", {}).setdefault("labels", {})[PART_OF] = COURSE
    return obj


def ours(obj: dict | None) -> bool:
    return bool(obj) and obj.get("metadata", {}).get("labels", {}).get(PART_OF) == COURSE


def ensure_namespace(cluster: Cluster, namespace: str) -> bool:
    """Make sure `namespace` exists; create it (labelled) only if missing. True if created."""
    dns_label(namespace, "namespace")
    path = f"/api/v1/namespaces/{namespace}"
    deadline = time.monotonic() + NAMESPACE_TERMINATING_TIMEOUT
    while True:
        existing = cluster.api.exists(path)
        if existing is None:
            cluster.api.request("POST", "/api/v1/namespaces", body=labelled(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}), ok=(409,))
            return True
        if existing.get("status", {}).get("phase") != "Terminating":
            return False
        if time.monotonic() > deadline:
            raise K8snbError(f"namespace {namespace} is still terminating after "
                             f"{NAMESPACE_TERMINATING_TIMEOUT:.0f} s; wait and re-run the cell")
        time.sleep(0.5)


def apply(cluster: Cluster, obj: dict) -> dict:
    """Server-side apply one object, refusing to touch a same-named object the course did not make."""
    obj = labelled(obj)
    kind, meta = obj["kind"], obj["metadata"]
    dns_subdomain(meta["name"], f"{kind} name")
    if kind == "Namespace":
        ensure_namespace(cluster, meta["name"])
        return cluster.api.get(object_path(obj))
    namespace = meta.get("namespace")
    if namespace:
        ensure_namespace(cluster, namespace)
    path = object_path(obj)
    existing = cluster.api.exists(path)
    if existing is not None and not ours(existing):
        where = f" in namespace {namespace}" if namespace else ""
        raise Conflict(
            f"{kind} {meta['name']}{where} already exists and was not created by the course (it lacks the "
            f"label {SELECTOR}); it was left untouched. Rename or remove it yourself, or run the course "
            "in another namespace."
        )
    return cluster.api.apply(path, obj)


def apply_all(cluster: Cluster, objs: list[dict]) -> pd.DataFrame:
    """Apply several objects in order; one row per object (kind, namespace, name, uid)."""
    rows = []
    for obj in objs:
        out = apply(cluster, obj)
        m = out.get("metadata", {})
        rows.append({"kind": obj["kind"], "namespace": m.get("namespace", ""), "name": m.get("name"),
                     "uid": m.get("uid")})
    return pd.DataFrame(rows)


def article(cluster: Cluster, namespace: str = NAMESPACE, nginx_namespace: str = SECOND_NAMESPACE,
            replicas: int = 1) -> pd.DataFrame:
    """Apply the article's objects: nginx-hello + nginx-svc + netshoot in `namespace`, and the
    `nginx` Service and Deployment in `nginx_namespace`."""
    check_replicas(replicas)
    objs = load("nginx-deploy", namespace) + load("clusterip-svc", namespace) + load("netshoot", namespace)
    objs[0]["spec"]["replicas"] = replicas
    objs += load("nginx-namespace", nginx_namespace)
    return apply_all(cluster, objs)


def scale(cluster: Cluster, deployment: str, replicas: int, namespace: str = NAMESPACE) -> dict:
    """Set a course Deployment's replica count (0..50, checked before any API call)."""
    check_replicas(replicas)
    dns_label(deployment, "deployment name")
    dns_label(namespace, "namespace")
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}"
    existing = cluster.api.exists(path)
    if existing is None:
        raise NotFound(f"Deployment {namespace}/{deployment} does not exist; apply the article's objects first "
                       "(k8snb.article(cluster))")
    if not ours(existing):
        raise Conflict(f"Deployment {namespace}/{deployment} was not created by the course; not scaling it")
    return cluster.api.request("PATCH", path + "/scale", body={"spec": {"replicas": replicas}},
                               content_type="application/merge-patch+json").json()


def cleanup(cluster: Cluster, namespaces: Sequence[str] | None = COURSE_NAMESPACES,
            wait: bool = True) -> pd.DataFrame:
    """Delete every object labelled part-of=k8snb in `namespaces` (the course's, by default; None
    means the whole cluster, cluster-scoped objects included) and the namespaces the course created.

    Returns what was deleted (kind, namespace, name); an object this account may not delete is
    listed with kind suffixed ' (kept: forbidden)' instead of failing the whole cleanup.
    """
    rows = []
    for kind in CLEANUP_ORDER:
        prefix, plural, namespaced = KINDS[kind]
        scopes = [f"{prefix}/namespaces/{ns}/{plural}" for ns in namespaces] if namespaced and namespaces \
            else [f"{prefix}/{plural}"]
        if not namespaced and namespaces:
            continue
        for scope in scopes:
            try:
                items = cluster.api.list(scope, labelSelector=SELECTOR)
            except Forbidden:
                continue  # a learner account: what it may not even list, it did not create
            for item in items:
                m = item["metadata"]
                if CLASSROOM in (m.get("labels") or {}):
                    continue  # a classroom's account, binding or quota: `k8snb classroom down` removes it
                obj = {"kind": kind, "metadata": {"name": m["name"], "namespace": m.get("namespace")}}
                rows += _delete(cluster, obj, propagationPolicy="Background")
    for item in labelled_namespaces(cluster, namespaces):
        if CLASSROOM not in item["metadata"].get("labels", {}):  # the teacher's: `classroom down` removes it
            rows += _delete(cluster, {"kind": "Namespace", "metadata": {"name": item["metadata"]["name"]}})
    if wait:
        _wait_gone(cluster, namespaces)
    return pd.DataFrame(rows, columns=["kind", "namespace", "name"])


def labelled_namespaces(cluster: Cluster, namespaces: Sequence[str] | None) -> list[dict]:
    """The labelled namespaces among `namespaces` (all of the cluster's when None). Each is read by
    name: a classroom learner may read their own namespaces but not list everybody's."""
    if not namespaces:
        return cluster.api.list("/api/v1/namespaces", labelSelector=SELECTOR)
    found = []
    for name in namespaces:
        try:
            item = cluster.api.exists(f"/api/v1/namespaces/{dns_label(name, 'namespace')}")
        except Forbidden:
            continue
        if ours(item):
            found.append(item)
    return found


def _delete(cluster: Cluster, obj: dict, **params) -> list[dict]:
    m = obj["metadata"]
    row = {"kind": obj["kind"], "namespace": m.get("namespace") or "", "name": m["name"]}
    try:
        return [row] if cluster.api.delete(object_path(obj), **params) else []
    except Forbidden:
        return [{**row, "kind": f"{obj['kind']} (kept: forbidden)"}]


def _wait_gone(cluster: Cluster, namespaces: Sequence[str] | None, timeout: float = 90.0) -> None:
    """Wait until no labelled pod remains, so that a re-run starts from a clean slate."""
    deadline = time.monotonic() + timeout
    scopes = [f"/api/v1/namespaces/{ns}/pods" for ns in namespaces] if namespaces else ["/api/v1/pods"]
    while time.monotonic() < deadline:
        left = sum(len(cluster.api.list(s, labelSelector=SELECTOR)) for s in scopes)
        if not left:
            return
        time.sleep(0.5)
    raise K8snbError(f"course pods were still terminating after {timeout:.0f} s; run cleanup again later")
