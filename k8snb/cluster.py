"""Connect to the learner's cluster the way kubectl would, and say which one it is.

Resolution mirrors kubectl: an explicit `context=` wins; otherwise `KUBECONFIG` (a colon-separated
list), then `~/.kube/config`, then the in-cluster service account. When none of these exists and
the offline lab is running, the course uses the lab: a learner who ran `make lab` needs nothing else.
A pod without a usable service account (mybinder.org sets KUBERNETES_SERVICE_HOST but mounts no
token) gets the running lab, or one NotReachable line saying what is missing.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.config.config_exception import ConfigException

from .api import Api
from .errors import NotReachable
from .learner import NAMESPACE, NAMESPACE_ENV, SECOND_NAMESPACE, SECOND_NAMESPACE_ENV

#: The promised bound for "unreachable API": one clear error within this many seconds.
CONNECT_BUDGET = 10.0
#: Where a pod's service account is mounted (what the in-cluster configuration reads).
SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SA_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

_announced: set[tuple[str, str]] = set()


@dataclass
class Cluster:
    """One connection: the JSON API, where it points, and what kind of cluster it looks like."""

    api: Api
    context: str
    server: str
    version: str
    flavor: str
    kubeconfig: str | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def is_lab(self) -> bool:
        return self.flavor.startswith("lab")

    def describe(self) -> str:
        return f"context {self.context!r} at {self.server}: Kubernetes {self.version} ({self.flavor})"


def _kubeconfig_files() -> list[str]:
    env = os.environ.get("KUBECONFIG")
    if env:
        return [p for p in env.split(os.pathsep) if p and os.path.exists(os.path.expanduser(p))]
    default = os.path.expanduser("~/.kube/config")
    return [default] if os.path.exists(default) else []


def _lab_kubeconfig() -> str | None:
    from .lab import kubeconfig_path

    path = kubeconfig_path()
    return str(path) if path.exists() else None


def _running_lab_kubeconfig() -> str | None:
    """The lab's kubeconfig when the lab is running (its processes alive, its API ready)."""
    lab = _lab_kubeconfig()
    if not lab:
        return None
    from .lab import status

    return lab if status().running else None


def _missing_kubeconfig_note() -> str:
    env = os.environ.get("KUBECONFIG")
    if not env:
        return ""
    note = f" KUBECONFIG={env} names no existing file"
    log = os.environ.get("K8SNB_LAB_LOG")
    if log:
        note += f" (the lab may still be starting or have failed: see {log}, or run k8snb.wait_for_cluster())"
    return note + "."


def _in_cluster() -> tuple[ApiClient, str, None]:
    """The pod's service account, or NotReachable saying what is missing (one line, no traceback)."""
    cfg = Configuration()
    try:
        kube_config.load_incluster_config(client_configuration=cfg)
    except ConfigException as exc:
        text = str(exc).rstrip(".")
        what = {
            "Service token file does not exist": f"the service-account token {SA_TOKEN} does not exist "
                                                 "(the pod was started without one)",
            "Token file exists but empty": f"the service-account token {SA_TOKEN} is empty",
            "Service certification file does not exist": f"the service-account CA {SA_CA} does not exist",
            "Cert file exists but empty": f"the service-account CA {SA_CA} is empty",
        }.get(text, text)
        raise NotReachable(
            f"KUBERNETES_SERVICE_HOST is set, so this looks like a pod, but {what}: no in-cluster access."
            f"{_missing_kubeconfig_note()} Start the course's lab (`k8snb lab up`) or point KUBECONFIG at "
            "a cluster's kubeconfig."
        ) from None
    return ApiClient(cfg), "in-cluster", None


def _load(context: str | None, kubeconfig: str | None = None) -> tuple[ApiClient, str, str | None]:
    if kubeconfig and not os.path.exists(kubeconfig):
        raise NotReachable(f"no kubeconfig at {kubeconfig}")
    files = [kubeconfig] if kubeconfig else _kubeconfig_files()
    if not files and not context and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            return _in_cluster()
        except NotReachable:
            # A pod without a usable service account (mybinder.org): the lab, when it runs, wins.
            lab = _running_lab_kubeconfig()
            if not lab:
                raise
            files = [lab]
    if not files:
        lab = _lab_kubeconfig()
        if lab:
            files = [lab]
    if not files:
        raise NotReachable(
            "no kubeconfig found: KUBECONFIG is unset and ~/.kube/config does not exist, and this is not a "
            "pod. Start the course's lab with `make lab` (or `k8snb lab up`), or point KUBECONFIG at your "
            "cluster's kubeconfig (kind, minikube and `aws eks update-kubeconfig` write one)."
            if not os.environ.get("KUBECONFIG") else
            f"no kubeconfig found:{_missing_kubeconfig_note()} Start the course's lab with `k8snb lab up`, "
            "or point KUBECONFIG at your cluster's kubeconfig."
        )
    path = os.pathsep.join(files)
    cfg = Configuration()
    try:
        kube_config.load_kube_config(config_file=files[0] if len(files) == 1 else None, context=context,
                                     client_configuration=cfg, persist_config=False)
    except ConfigException as exc:
        text = str(exc)
        if context and ("context" in text.lower()):
            raise NotReachable(f"unknown context {context!r} in {path}: {text}. "
                               "List contexts with `kubectl config get-contexts`.") from None
        raise NotReachable(f"cannot load the kubeconfig {path}: {text}") from None
    try:
        _, active = kube_config.list_kube_config_contexts(config_file=files[0] if len(files) == 1 else None)
        name = context or active["name"]
    except (ConfigException, KeyError, TypeError):
        name = context or "?"
    return ApiClient(cfg), name, path


def _flavor(context: str, server: str, version: dict, node_hints: dict) -> str:
    git = version.get("gitVersion", "")
    if context == "k8snb-lab":
        return "lab (" + ("real nodes" if node_hints.get("real") else "simulated kwok nodes") + ")"
    if "+k3s" in git:
        return "k3s"
    if "-eks-" in git or ".eks.amazonaws.com" in server:
        return "EKS"
    if context.startswith("kind-") or node_hints.get("provider", "").startswith("kind://"):
        return "kind"
    if context == "minikube" or node_hints.get("minikube"):
        return "minikube"
    if "-gke." in git:
        return "GKE"
    if ".azmk8s.io" in server or node_hints.get("provider", "").startswith("azure://"):
        return "AKS"
    return "other"


def connect(context: str | None = None, quiet: bool = False, kubeconfig: str | None = None) -> Cluster:
    """Connect to `context` (or the current one); print once which cluster the course talks to.
    `kubeconfig` reads that file instead of KUBECONFIG's (a classroom learner's, for the teacher).

    Raises NotReachable within CONNECT_BUDGET seconds when there is no kubeconfig, the context is
    unknown, or the API server does not answer, each with the fix in the message.
    """
    started = time.monotonic()
    client, name, path = _load(context, kubeconfig)
    api = Api(client, name)
    version = api.get("/version")
    hints: dict = {}
    try:
        nodes = api.get("/api/v1/nodes", limit=1).get("items") or []
        if nodes:
            labels = nodes[0]["metadata"].get("labels", {})
            hints["provider"] = nodes[0].get("spec", {}).get("providerID", "")
            hints["minikube"] = any(k.startswith("minikube.k8s.io/") for k in labels)
            hints["real"] = labels.get("type") != "kwok"
    except Exception:  # noqa: BLE001 — a learner without node access still connects
        pass
    cluster = Cluster(api, name, api.server, version.get("gitVersion", "?"),
                      _flavor(name, api.server, version, hints), path)
    if time.monotonic() - started > CONNECT_BUDGET:
        raise NotReachable(f"the API server at {api.server} answered, but took more than {CONNECT_BUDGET:.0f} s")
    key = (cluster.context, cluster.server)
    if not quiet and key not in _announced:
        _announced.add(key)
        print(f"k8snb: connected to {cluster.describe()}")
        print(f"k8snb: your namespaces: {NAMESPACE} and {SECOND_NAMESPACE} "
              f"(from {NAMESPACE_ENV} and {SECOND_NAMESPACE_ENV}; unset: default and nginx)")
    return cluster
