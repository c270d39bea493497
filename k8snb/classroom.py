"""`k8snb classroom up|down|status`: one shared cluster for a whole class, one pair of namespaces
per learner, and nothing a learner can see or break of another's.

Built from standard parts only, the way Zero to JupyterHub sets up users:
- two namespaces per learner, `k8snb-<learner>` (the article's main one) and `k8snb-<learner>-nginx`
  (the cross-namespace lesson), each labelled `k8snb.io/classroom=<learner>` and Pod Security
  `baseline` (no privileged pod, no host network: a learner's pods cannot reach into a node);
- a ServiceAccount `k8snb-learner` bound in both namespaces to the course's learner ClusterRole
  (manifests/learner-rbac.yaml), plus cluster-wide reads of nodes and the Service range only;
- a ResourceQuota and a LimitRange per namespace, sized from the course's measured needs;
- a NetworkPolicy per namespace admitting traffic only from the learner's own namespaces, and one
  admitting the hub's proxy (and nothing else) to the learner's JupyterLab port. RBAC does not stop
  one pod from calling another's Service; the policy does, where the network plugin enforces it;
- a kubeconfig per learner with a TokenRequest token (short-lived: the cluster may shorten it).
`down` deletes exactly what carries the classroom label: namespaces, ClusterRoleBindings and the
classroom's ClusterRoles; `status` says what exists, what each learner uses, and whether the
network plugin enforces the policy (measured between two learners when it can be).
"""
from __future__ import annotations

import base64
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from .cluster import Cluster
from .errors import Conflict, Forbidden, InvalidInput, K8snbError, NotReadyInTime
from .manifests import CLASSROOM, COURSE, NAMESPACE_TERMINATING_TIMEOUT, PART_OF, apply, load, ours
from .names import dns_label

LEARNER_ACCOUNT = "k8snb-learner"
#: The rules of manifests/learner-rbac.yaml's ClusterRole k8snb-learner, under a name of the classroom's
#: own: `down` deletes it without touching a single learner's setup on the same cluster.
LEARNER_ROLE = "k8snb-classroom-learner"
READ_ROLE = "k8snb-classroom-read"
NAMESPACE_PREFIX = "k8snb-"
SECOND_SUFFIX = "-nginx"
#: Longest learner name: `k8snb-<name>-nginx` must stay a 63-character DNS label.
MAX_NAME = 63 - len(NAMESPACE_PREFIX) - len(SECOND_SUFFIX)
#: Labels JupyterHub's KubeSpawner puts on a learner's server pod (the same as Zero to JupyterHub's).
SERVER_POD_LABELS = {"component": "singleuser-server"}
SERVER_PORT = 8888
#: The namespace z2jh-values.yaml's comment installs Zero to JupyterHub in, and the label the chart
#: puts on its proxy and hub pods so that its own policies admit them to the servers.
HUB_NAMESPACE = "k8snb-hub"
HUB_ACCESS_LABEL = "hub.jupyter.org/network-access-singleuser"
#: The chart's label for who may call the hub's API: its server pods carry it, and with
#: `interNamespaceAccessLabels: accept` (z2jh-values.yaml) their namespace must carry it too.
HUB_API_ACCESS_LABEL = "hub.jupyter.org/network-access-hub"
#: The chart's hub ServiceAccount (Zero to JupyterHub names it `hub`); the lab's hub uses one too.
HUB_ACCOUNT = "hub"
HUB_WATCH_ROLE = "k8snb-classroom-hub"
SPAWNER_ROLE = "k8snb-classroom-spawner"
#: The CLASSROOM label of what belongs to the whole class, not one learner (roles, the lab hub's namespace).
SHARED = "shared"
#: A token's default lifetime: one class day. The API server may shorten it
#: (--service-account-max-token-expiration); the kubeconfig says what it got.
TOKEN_SECONDS = 8 * 3600
DOWN_TIMEOUT = 180.0


@dataclass(frozen=True)
class Quota:
    """What one learner may use in their main namespace.

    The pod count follows the course: notebook 03's replica slider goes to 10 nginx-hello pods
    (widgets.MAX_REPLICAS), beside netshoot, notebook 01's client and the learner's JupyterLab, plus
    one surge pod of a rolling update: 14. A learner who scales to 50 is stopped there, with the
    quota's message. CPU and memory are sized from the footprint measured on the lab (README,
    "Teaching a class"); the LimitRange gives the article's pods, which request nothing, a small
    request so that the quota can count them, and limits small enough that the slider's maximum
    fits beside the JupyterLab server (`fits_the_course`). Every countable kind has a ceiling:
    Services, ConfigMaps, ephemeral storage, one LoadBalancer.
    """

    pods: int = 14
    requests_cpu: str = "1"
    requests_memory: str = "2Gi"
    limits_cpu: str = "6"
    limits_memory: str = "4Gi"
    requests_storage: str = "2Gi"
    limits_storage: str = "16Gi"
    services: int = 10
    configmaps: int = 10
    loadbalancers: int = 1
    nodeports: int = 3
    #: LimitRange defaults for a container that says nothing (the article's manifests say nothing).
    default_request_cpu: str = "10m"
    default_request_memory: str = "32Mi"
    default_request_storage: str = "64Mi"
    default_limit_cpu: str = "300m"
    default_limit_memory: str = "128Mi"
    default_limit_storage: str = "1Gi"
    #: LimitRange maximum per container: the JupyterLab server's own limits (lab/hub.py, z2jh-values).
    max_cpu: str = "1"
    max_memory: str = "1Gi"
    max_storage: str = "2Gi"

    def hard(self) -> dict[str, str]:
        return {"pods": str(self.pods), "requests.cpu": self.requests_cpu, "requests.memory": self.requests_memory,
                "limits.cpu": self.limits_cpu, "limits.memory": self.limits_memory,
                "requests.ephemeral-storage": self.requests_storage, "limits.ephemeral-storage": self.limits_storage,
                "services": str(self.services), "configmaps": str(self.configmaps),
                "services.loadbalancers": str(self.loadbalancers), "services.nodeports": str(self.nodeports)}

    def limit_range(self) -> dict:
        return {"type": "Container",
                "defaultRequest": {"cpu": self.default_request_cpu, "memory": self.default_request_memory,
                                   "ephemeral-storage": self.default_request_storage},
                "default": {"cpu": self.default_limit_cpu, "memory": self.default_limit_memory,
                            "ephemeral-storage": self.default_limit_storage},
                "max": {"cpu": self.max_cpu, "memory": self.max_memory, "ephemeral-storage": self.max_storage}}

    def fits_the_course(self, server_cpu: float = 1.0, server_memory_mib: float = 1024.0) -> bool:
        """Whether the slider's maximum fits: every pod but the JupyterLab server at the defaults."""
        others = self.pods - 1
        return (others * _cpu(self.default_limit_cpu) + server_cpu <= _cpu(self.limits_cpu)
                and others * _mib(self.default_limit_memory) + server_memory_mib <= _mib(self.limits_memory)
                and others * _cpu(self.default_request_cpu) <= _cpu(self.requests_cpu))


#: The `-nginx` namespace holds one Deployment and its Service (the cross-namespace lesson): a
#: quota of its own, no LoadBalancer and no NodePort.
SECOND_QUOTA = Quota(pods=4, requests_cpu="250m", requests_memory="512Mi", limits_cpu="2", limits_memory="1Gi",
                     requests_storage="512Mi", limits_storage="4Gi", services=3, configmaps=5, loadbalancers=0,
                     nodeports=0)
#: Priority classes a learner's pod may not take: they would preempt other learners' servers.
CRITICAL_PRIORITIES = ("system-node-critical", "system-cluster-critical")


def _cpu(value: str) -> float:
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def _mib(value: str) -> float:
    units = {"Mi": 1.0, "Gi": 1024.0, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    unit = next(u for u in units if value.endswith(u))
    return float(value[:-len(unit)]) * units[unit]


@dataclass(frozen=True)
class Learner:
    name: str

    @property
    def namespace(self) -> str:
        return f"{NAMESPACE_PREFIX}{self.name}"

    @property
    def second_namespace(self) -> str:
        return f"{NAMESPACE_PREFIX}{self.name}{SECOND_SUFFIX}"

    @property
    def namespaces(self) -> tuple[str, str]:
        return self.namespace, self.second_namespace

    def environment(self) -> dict[str, str]:
        """What the learner's kernel needs in its environment (k8snb.learner reads it)."""
        return {"K8SNB_NAMESPACE": self.namespace, "K8SNB_SECOND_NAMESPACE": self.second_namespace}


def learners(names: list[str] | None = None, count: int | None = None) -> list[Learner]:
    """Learners from explicit names (a file's lines) or `count` numbered ones (learner-01 ...)."""
    if names is None:
        if not count or count < 1:
            raise InvalidInput("give --learners N (N >= 1) or --names FILE")
        width = max(2, len(str(count)))
        names = [f"learner-{i:0{width}d}" for i in range(1, count + 1)]
    result = []
    for raw in names:
        name = dns_label(raw.strip(), "learner name")
        if len(name) > MAX_NAME:
            raise InvalidInput(f"learner name {name!r} is longer than {MAX_NAME} characters "
                               f"(its namespace {NAMESPACE_PREFIX}{name}{SECOND_SUFFIX} must fit in 63)")
        result.append(Learner(name))
    if not result:
        raise InvalidInput("no learners: the names file lists none")
    if len({x.name for x in result}) != len(result):
        raise InvalidInput("learner names repeat: each learner needs a name of their own")
    if SHARED in {x.name for x in result}:
        raise InvalidInput(f"{SHARED!r} is the classroom's label for what belongs to the whole class; "
                           "pick another learner name")
    taken: dict[str, str] = {HUB_NAMESPACE: "the classroom's hub"}
    for x in result:
        for ns in x.namespaces:
            if ns in taken:
                raise InvalidInput(f"learner {x.name}'s namespace {ns} is also {taken[ns]}'s; rename one of them")
            taken[ns] = f"learner {x.name}"
    return result


def names_from_file(path: str | Path) -> list[str]:
    """One learner name per line; blank lines and # comments are skipped."""
    lines = Path(path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _labels(learner: Learner) -> dict:
    return {PART_OF: COURSE, CLASSROOM: learner.name}


def _shared_labels() -> dict:
    """The labels of what `up` makes for the whole class (roles, the lab hub's namespace and account)."""
    return {PART_OF: COURSE, CLASSROOM: SHARED}


def _meta(name: str, learner: Learner, namespace: str | None = None) -> dict:
    meta = {"name": name, "labels": _labels(learner)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def read_role() -> dict:
    """The classroom's only cluster-wide reads: nodes (the tables' node IPs and podCIDRs) and the
    Service range. Not namespaces, not DaemonSets: those would list other learners' names."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": READ_ROLE, "labels": _shared_labels()},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
                      {"apiGroups": ["networking.k8s.io"], "resources": ["servicecidrs"], "verbs": ["get", "list"]}]}


def hub_roles() -> list[dict]:
    """What KubeSpawner needs with `enable_user_namespaces`, and no more. Cluster-wide: watch pods
    and events (its reflectors then list every namespace) and create namespaces (it always asks to
    create the learner's; an existing one answers 409, which it accepts). In each learner's main
    namespace only (a RoleBinding per learner): create and delete the server pod. So the hub, which
    learners' pods can reach, holds neither the teacher's rights nor any other namespace's pods."""
    shared = _shared_labels()
    subject = {"kind": "ServiceAccount", "name": HUB_ACCOUNT, "namespace": HUB_NAMESPACE}
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": HUB_WATCH_ROLE, "labels": shared},
         "rules": [{"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["get", "list", "watch"]},
                   {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": HUB_WATCH_ROLE, "labels": shared},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": HUB_WATCH_ROLE},
         "subjects": [subject]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": SPAWNER_ROLE, "labels": shared},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "create", "delete"]}]},
    ]


def learner_role() -> dict:
    """The course's learner ClusterRole (manifests/learner-rbac.yaml), renamed for the classroom."""
    role = next(d for d in load("learner-rbac") if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "k8snb-learner")
    role["metadata"] = {"name": LEARNER_ROLE, "labels": _shared_labels()}
    return role


def network_policy(learner: Learner, namespace: str) -> dict:
    """Ingress to every pod of the namespace only from the learner's own two namespaces, matched by
    name (`kubernetes.io/metadata.name`, which the API server sets and nobody can change): a label
    of our own could be put on any namespace by whoever may label one."""
    names = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(learner.namespaces)}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta("k8snb-own-namespaces", learner, namespace),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [
                {"from": [{"namespaceSelector": {"matchExpressions": [names]}}]}]}}


#: The ValidatingAdmissionPolicy (and its binding) `up` applies on any cluster: no Service in a
#: classroom namespace may claim externalIPs (CVE-2020-8554: it would draw that address's traffic,
#: another learner's or the hub's). The lab's API server also refuses them for everybody.
EXTERNAL_IPS_POLICY = "k8snb-classroom-no-external-ips"


def external_ips_policy() -> list[dict]:
    shared = _shared_labels()
    api = "admissionregistration.k8s.io/v1"
    return [
        {"apiVersion": api, "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": EXTERNAL_IPS_POLICY, "labels": shared},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                          "operations": ["CREATE", "UPDATE"],
                                                          "resources": ["services"]}]},
                  "validations": [{"expression": "!has(object.spec.externalIPs) || size(object.spec.externalIPs) == 0",
                                   "message": "externalIPs are not allowed in a classroom namespace "
                                              "(CVE-2020-8554: they would take other learners' traffic)"}]}},
        {"apiVersion": api, "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": EXTERNAL_IPS_POLICY, "labels": shared},
         "spec": {"policyName": EXTERNAL_IPS_POLICY, "validationActions": ["Deny"],
                  "matchResources": {"namespaceSelector": {"matchExpressions": [
                      {"key": CLASSROOM, "operator": "Exists"}]}}}},
    ]


@dataclass(frozen=True)
class HubSource:
    """Where the hub's proxy calls a learner's JupyterLab from. On a real cluster: Zero to
    JupyterHub's proxy and hub pods, which carry HUB_ACCESS_LABEL, in the chart's namespace (a
    learner cannot make a pod there). On the lab: the host, at its address on the lab bridge."""

    namespace: str = HUB_NAMESPACE
    address: str | None = None


def hub_source(cluster: Cluster) -> HubSource:
    """The lab's hub runs on the host (k8snb/lab/hub.py); elsewhere the chart's pods call in."""
    if not cluster.is_lab:
        return HubSource()
    from .lab.inspect import current_plan

    try:
        return HubSource(address=current_plan().host_ip)
    except K8snbError:  # a lab context without this machine's lab state: nobody here runs its hub
        return HubSource()


def server_policy(learner: Learner, hub: HubSource) -> dict:
    """Port 8888 of the learner's JupyterLab pod, from the hub's proxy only. Another learner's pod
    is not admitted: the server's login is the hub's, and the policy keeps it that way."""
    sources: list[dict] = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": hub.namespace}},
                            "podSelector": {"matchLabels": {HUB_ACCESS_LABEL: "true"}}}]
    if hub.address:
        sources.append({"ipBlock": {"cidr": f"{hub.address}/32"}})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta("k8snb-hub-to-server", learner, learner.namespace),
            "spec": {"podSelector": {"matchLabels": dict(SERVER_POD_LABELS)}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": sources, "ports": [{"port": SERVER_PORT, "protocol": "TCP"}]}]}}


def learner_objects(learner: Learner, quota: Quota = Quota(), hub: HubSource = HubSource(),
                    second_quota: Quota = SECOND_QUOTA) -> list[dict]:
    """Everything `up` creates for one learner, namespaces first."""
    objs: list[dict] = []
    for ns in learner.namespaces:
        hub_access = {HUB_API_ACCESS_LABEL: "true"} if ns == learner.namespace else {}
        objs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": ns, "labels": {**_labels(learner), "pod-security.kubernetes.io/enforce": "baseline", **hub_access}}})
    objs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(LEARNER_ACCOUNT, learner, learner.namespace)})
    subject = {"kind": "ServiceAccount", "name": LEARNER_ACCOUNT, "namespace": learner.namespace}
    for ns in learner.namespaces:
        objs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "metadata": _meta(LEARNER_ROLE, learner, ns),
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": LEARNER_ROLE},
                     "subjects": [subject]})
        mine = quota if ns == learner.namespace else second_quota
        objs.append({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta("k8snb-learner", learner, ns),
                     "spec": {"hard": mine.hard()}})
        objs.append({"apiVersion": "v1", "kind": "ResourceQuota",
                     "metadata": _meta("k8snb-no-critical-priority", learner, ns),
                     "spec": {"hard": {"pods": "0"}, "scopeSelector": {"matchExpressions": [
                         {"scopeName": "PriorityClass", "operator": "In", "values": list(CRITICAL_PRIORITIES)}]}}})
        objs.append({"apiVersion": "v1", "kind": "LimitRange", "metadata": _meta("k8snb-learner", learner, ns),
                     "spec": {"limits": [mine.limit_range()]}})
        objs.append(network_policy(learner, ns))
    objs.append(server_policy(learner, hub))
    objs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": _meta(SPAWNER_ROLE, learner, learner.namespace),
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": SPAWNER_ROLE},
                 "subjects": [{"kind": "ServiceAccount", "name": HUB_ACCOUNT, "namespace": HUB_NAMESPACE}]})
    objs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                 "metadata": _meta(f"{READ_ROLE}-{learner.name}", learner),
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": READ_ROLE},
                 "subjects": [subject]})
    return objs


def _ensure_classroom_namespace(cluster: Cluster, obj: dict, timeout: float = NAMESPACE_TERMINATING_TIMEOUT) -> None:
    """Create a learner's namespace, or accept it if a previous `up` made it for the same learner;
    one still being deleted (a recent `down`) is waited for, then made again. A namespace of that
    name made by anybody else is refused, never adopted."""
    name = obj["metadata"]["name"]
    deadline = time.monotonic() + timeout
    while (existing := cluster.api.exists(f"/api/v1/namespaces/{name}")) is not None \
            and existing.get("status", {}).get("phase") == "Terminating":
        if time.monotonic() > deadline:
            raise K8snbError(f"namespace {name} is still being deleted after {timeout:.0f} s; run up again later")
        time.sleep(1.0)
    if existing is None:
        cluster.api.request("POST", "/api/v1/namespaces", body=obj)
        return
    labels = existing["metadata"].get("labels") or {}
    owner = obj["metadata"]["labels"][CLASSROOM]
    if not ours(existing) or labels.get(CLASSROOM) != owner:
        who, fix = (("the class's hub", "Remove it yourself if it is not needed") if owner == SHARED else
                    (f"learner {owner}", "Pick another learner name, or remove the namespace yourself"))
        raise Conflict(f"namespace {name} already exists and was not created by `k8snb classroom up` for "
                       f"{who}; it was left untouched. {fix}.")


def _up_one(cluster: Cluster, learner: Learner, quota: Quota, hub: HubSource) -> None:
    for obj in learner_objects(learner, quota, hub):
        if obj["kind"] == "Namespace":
            _ensure_classroom_namespace(cluster, obj)
        else:
            apply(cluster, obj)


def up(cluster: Cluster, group: list[Learner], quota: Quota = Quota(), workers: int = 8,
       hub: HubSource | None = None) -> pd.DataFrame:
    """Create (or converge) every learner's namespaces, account, bindings, quota and policies
    (`hub`: where the hub's proxy calls from; hub_source(cluster) unless given).
    One row per learner: namespaces and seconds taken. Safe to re-run."""
    hub = hub or hub_source(cluster)
    for role in (learner_role(), read_role(), *hub_roles(), *external_ips_policy()):
        apply(cluster, role)

    def one(learner: Learner) -> dict:
        started = time.monotonic()
        _up_one(cluster, learner, quota, hub)
        return {"learner": learner.name, "namespace": learner.namespace,
                "second_namespace": learner.second_namespace, "seconds": round(time.monotonic() - started, 2)}

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(pool.map(one, group))
    return pd.DataFrame(rows)


def token(cluster: Cluster, learner: Learner, seconds: int = TOKEN_SECONDS) -> tuple[str, str]:
    """A TokenRequest token for the learner's account: (token, expirationTimestamp)."""
    return _token(cluster, learner.namespace, LEARNER_ACCOUNT, seconds)


def _token(cluster: Cluster, namespace: str, account: str, seconds: int) -> tuple[str, str]:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": int(seconds)}}
    got = cluster.api.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
                              body=body).json()
    return got["status"]["token"], got["status"]["expirationTimestamp"]


def _ca_data(cluster: Cluster) -> str | None:
    cfg = cluster.api.client.configuration
    if cfg.ssl_ca_cert and Path(cfg.ssl_ca_cert).exists():
        return base64.b64encode(Path(cfg.ssl_ca_cert).read_bytes()).decode()
    return None


def kubeconfig(cluster: Cluster, learner: Learner, bearer: str, server: str | None = None) -> dict:
    """A kubeconfig for one learner: the teacher's API server and CA, the learner's token, and the
    learner's main namespace as the context's default (so kubectl's commands in the notebooks work)."""
    return account_kubeconfig(cluster, f"k8snb-{learner.name}", learner.namespace, bearer, server)


def account_kubeconfig(cluster: Cluster, name: str, namespace: str, bearer: str, server: str | None = None) -> dict:
    """A kubeconfig for a ServiceAccount's token: `cluster`'s API server and CA, context `name`
    with `namespace` as its default."""
    entry: dict = {"server": server or cluster.server}
    ca = _ca_data(cluster)
    if ca:
        entry["certificate-authority-data"] = ca
    return {"apiVersion": "v1", "kind": "Config", "current-context": name,
            "clusters": [{"name": cluster.context or "k8snb", "cluster": entry}],
            "users": [{"name": name, "user": {"token": bearer}}],
            "contexts": [{"name": name, "context": {"cluster": cluster.context or "k8snb", "user": name,
                                                    "namespace": namespace}}]}


def lab_hub_kubeconfig(cluster: Cluster, seconds: int) -> dict:
    """The lab's hub runs on the host, not as the chart's pod: it gets the chart's account all the
    same (`hub` in k8snb-hub, made here and labelled for the whole class, so `down` removes it) and
    a kubeconfig with a token for it, so that it spawns with hub_roles()' rights, not the teacher's."""
    _ensure_classroom_namespace(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": HUB_NAMESPACE, "labels": _shared_labels()}})
    apply(cluster, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
        "name": HUB_ACCOUNT, "namespace": HUB_NAMESPACE, "labels": _shared_labels()}})
    bearer, _ = _token(cluster, HUB_NAMESPACE, HUB_ACCOUNT, seconds)
    return account_kubeconfig(cluster, "k8snb-hub", HUB_NAMESPACE, bearer)


def write_kubeconfigs(cluster: Cluster, group: list[Learner], directory: str | Path,
                      seconds: int = TOKEN_SECONDS) -> pd.DataFrame:
    """One `<learner>.kubeconfig` (mode 0600, in a 0700 directory) and one `<learner>.env` (the
    namespaces for the kernel) per learner. Rows: learner, file, token expiry."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    rows = []
    for learner in group:
        bearer, expires = token(cluster, learner, seconds)
        path = out / f"{learner.name}.kubeconfig"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(kubeconfig(cluster, learner, bearer), f, sort_keys=False)
        env = out / f"{learner.name}.env"
        env.write_text("".join(f"{k}={v}\n" for k, v in learner.environment().items()))
        rows.append({"learner": learner.name, "kubeconfig": str(path), "expires": expires})
    return pd.DataFrame(rows)


def classroom_namespaces(cluster: Cluster, learners_only: bool = True) -> list[dict]:
    """The namespaces `up` created for learners, by label (with learners_only=False, also the lab
    hub's namespace, made for the whole class)."""
    selector = f"{PART_OF}={COURSE},{CLASSROOM}" + ("" if not learners_only else f",{CLASSROOM}!={SHARED}")
    return cluster.api.list("/api/v1/namespaces", labelSelector=selector)


#: What `up` makes outside any namespace, in the order `down` deletes it.
CLUSTER_WIDE = (("/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings",
                 "ValidatingAdmissionPolicyBinding"),
                ("/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy"),
                ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding"),
                ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole"))


def down(cluster: Cluster, timeout: float = DOWN_TIMEOUT) -> pd.DataFrame:
    """Delete every learner's namespaces (and so everything in them), the lab hub's namespace if
    `up --hub` made it, the classroom's ClusterRoleBindings and ClusterRoles; wait until the
    namespaces are gone. Rows: what was deleted."""
    selector = f"{PART_OF}={COURSE},{CLASSROOM}"
    rows = []
    for ns in classroom_namespaces(cluster, learners_only=False):
        name = ns["metadata"]["name"]
        if cluster.api.delete(f"/api/v1/namespaces/{name}"):
            rows.append({"kind": "Namespace", "name": name})
    for prefix, plural, kind in CLUSTER_WIDE:
        path = f"{prefix}/{plural}"
        for item in cluster.api.list(path, labelSelector=selector):
            if cluster.api.delete(f"{path}/{item['metadata']['name']}"):
                rows.append({"kind": kind, "name": item["metadata"]["name"]})
    deadline = time.monotonic() + timeout
    while (left := classroom_namespaces(cluster, learners_only=False)):
        if time.monotonic() > deadline:
            raise NotReadyInTime(f"{len(left)} classroom namespace(s) still terminating after {timeout:.0f} s "
                                 f"(first: {left[0]['metadata']['name']}); run `k8snb classroom down` again later")
        time.sleep(1.0)
    return pd.DataFrame(rows, columns=["kind", "name"])


def status(cluster: Cluster) -> pd.DataFrame:
    """One row per learner: namespaces present, pods, quota used of hard, policy present."""
    by_learner: dict[str, list[dict]] = {}
    for ns in classroom_namespaces(cluster):
        by_learner.setdefault(ns["metadata"]["labels"][CLASSROOM], []).append(ns)
    rows = []
    for name in sorted(by_learner):
        learner = Learner(name)
        used = hard = 0
        policies = 0
        for ns in learner.namespaces:
            try:
                quota = cluster.api.exists(f"/api/v1/namespaces/{ns}/resourcequotas/k8snb-learner") or {}
                policies += bool(cluster.api.exists(
                    f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/k8snb-own-namespaces"))
            except Forbidden:
                quota = {}
            used += int(quota.get("status", {}).get("used", {}).get("pods", 0) or 0)
            hard += int(quota.get("spec", {}).get("hard", {}).get("pods", 0) or 0)
        rows.append({"learner": name, "namespaces": ", ".join(sorted(n["metadata"]["name"] for n in by_learner[name])),
                     "pods": used, "pods_quota": hard, "network_policies": policies})
    return pd.DataFrame(rows, columns=["learner", "namespaces", "pods", "pods_quota", "network_policies"])


# --- what a class costs, and whether the policy holds -----------------------------------------------
def footprint(cluster: Cluster, namespaces: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Pods, CPU and memory in `namespaces` right now, from each node's kubelet (the Summary API
    behind `kubectl top`: GET /api/v1/nodes/<node>/proxy/stats/summary). One row per namespace:
    pods, cpu_millicores, memory_mib. Needs the teacher's rights (nodes/proxy); nodes that do not
    answer (simulated ones) are listed in attrs['missing']."""
    wanted = set(namespaces)
    totals = {ns: {"namespace": ns, "pods": 0, "cpu_millicores": 0.0, "memory_mib": 0.0} for ns in namespaces}
    missing = []
    for node in cluster.api.list("/api/v1/nodes"):
        name = node["metadata"]["name"]
        try:
            summary = cluster.api.get(f"/api/v1/nodes/{name}/proxy/stats/summary", deadline=time.monotonic() + 15)
        except K8snbError:
            missing.append(name)
            continue
        for pod in summary.get("pods") or []:
            ns = pod.get("podRef", {}).get("namespace")
            if ns not in wanted:
                continue
            row = totals[ns]
            row["pods"] += 1
            row["cpu_millicores"] += ((pod.get("cpu") or {}).get("usageNanoCores") or 0) / 1e6
            row["memory_mib"] += ((pod.get("memory") or {}).get("workingSetBytes") or 0) / 2**20
    frame = pd.DataFrame(list(totals.values()), columns=["namespace", "pods", "cpu_millicores", "memory_mib"])
    frame.attrs["missing"] = missing
    return frame


def capacity(peak_cpu_millicores: float, peak_memory_mib: float, node_cpu_cores: float, node_memory_gib: float,
             reserved: float = 0.25) -> int:
    """Learners per node from one learner's measured peak: the node's CPU and memory, less a share
    `reserved` for the system and the kubelet, divided by the peak; whichever runs out first."""
    usable = 1.0 - reserved
    by_cpu = node_cpu_cores * 1000 * usable / max(peak_cpu_millicores, 1.0)
    by_memory = node_memory_gib * 1024 * usable / max(peak_memory_mib, 1.0)
    return int(min(by_cpu, by_memory))


def policy_enforced(cluster: Cluster, source: Learner, target: Learner) -> tuple[bool, str]:
    """Measure whether the network plugin enforces the classroom's NetworkPolicy: from `source`'s
    netshoot, request `target`'s nginx-svc (both must have the article's objects). (enforced, sentence)."""
    from .probe import curl

    url = f"nginx-svc.{target.namespace}"
    own = curl(cluster, "nginx-svc", namespace=target.namespace, head=True, timeout=5)
    if not own.ok:  # otherwise a refusal below would say nothing about the policy
        raise K8snbError(f"{target.name}'s nginx-svc does not answer even in its own namespace "
                         f"({own.error or own.status_line}); apply the article there first")
    got = curl(cluster, url, namespace=source.namespace, head=True, timeout=5)
    if got.ok:
        return False, (f"not enforced (measured): {source.name}'s pod reached {url} ({got.status_line}); this "
                       "cluster's network plugin ignores NetworkPolicy, so only RBAC separates the learners")
    return True, (f"enforced (measured): {source.name}'s pod could not reach {url} "
                  f"({got.error or got.status_line}); each learner's Services answer only their own namespaces")


#: What the common network plugins do with a NetworkPolicy (when the classroom cannot measure it).
POLICY_SUPPORT = {
    "k8snb-routes": "NOT enforced (the course's offline kind network has no policy engine; kind's own kindnet "
                    "enforces it since kind v0.24)",
    "kindnet": "enforced (kind v0.24 and later: kube-network-policies in kindnetd)",
    "calico": "enforced", "cilium": "enforced", "antrea": "enforced", "weave": "enforced",
    "flannel": "NOT enforced (flannel has no policy engine; add Calico, as Canal does)",
    "aws-node": "enforced only with the VPC CNI's network policy agent on (enableNetworkPolicy=true)",
    "bridge": "NOT enforced (the lab's bridge plugin has no policy engine)",
}


def policy_line(cluster: Cluster, names: list[str] | None = None) -> str:
    """Whether the NetworkPolicy holds here: measured between two learners that have the article's
    objects, otherwise what the cluster's network plugin is known to do (said as such). `names`:
    the learners, when the caller has listed them already (status's table)."""
    from .network import cni_plugin
    from .probe import can_carry_traffic

    if names is None:
        names = [ns["metadata"]["labels"][CLASSROOM] for ns in classroom_namespaces(cluster)]
    ready = []
    for name in sorted(set(names)):
        learner = Learner(name)
        if cluster.api.exists(f"/api/v1/namespaces/{learner.namespace}/services/nginx-svc") and \
                cluster.api.list(f"/api/v1/namespaces/{learner.namespace}/pods", labelSelector="app=netshoot"):
            ready.append(learner)
    if len(ready) >= 2 and can_carry_traffic(cluster):
        return "NetworkPolicy: " + policy_enforced(cluster, ready[0], ready[1])[1]
    cni = cni_plugin(cluster)
    known = next((v for k, v in POLICY_SUPPORT.items() if k in cni.lower()), "unknown for this network plugin")
    return (f"NetworkPolicy: {known} (network plugin: {cni}; not measured: that needs two learners with the "
            "article's objects)")
