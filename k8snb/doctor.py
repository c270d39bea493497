"""`k8snb doctor`: can this cluster run the course? One table, one fix per failed check.

Read-only: every check asks the API (SelfSubjectAccessReview for permissions) and changes nothing.
"""
from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass

import pandas as pd

from .errors import K8snbError
from .learner import NAMESPACE, OTHER_SERVICE, SECOND_NAMESPACE

#: (verb, group, resource, subresource, namespace or None for cluster scope, why the course needs it)
PERMISSIONS = (
    ("create", "apps", "deployments", "", NAMESPACE, "apply nginx-hello and netshoot"),
    ("patch", "apps", "deployments", "scale", NAMESPACE, "scale nginx-hello"),
    ("create", "", "services", "", NAMESPACE, "apply nginx-svc"),
    ("list", "", "pods", "", NAMESPACE, "the pods table"),
    ("delete", "", "pods", "", NAMESPACE, "replace a pod and watch its IP change"),
    ("create", "", "pods", "exec", NAMESPACE, "curl and nslookup from netshoot"),
    ("list", "discovery.k8s.io", "endpointslices", "", NAMESPACE, "the endpoints table"),
    ("create", "", "configmaps", "", NAMESPACE, "the ConfigMap-fed client of notebook 01"),
    ("create", "apps", "deployments", "", SECOND_NAMESPACE, f"the Service {OTHER_SERVICE}"),
    ("list", "", "nodes", "", None, "node IPs and podCIDRs (tables still work without it)"),
)
#: Permissions whose absence degrades a table but does not stop the course.
OPTIONAL = {("list", "", "nodes")}
REQUIRED_PACKAGES = ("kubernetes", "pandas", "matplotlib", "ipywidgets", "jupyterlab")
IMAGES = ("nginxdemos/hello", "nicolaka/netshoot")


@dataclass(frozen=True)
class Check:
    check: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _packages() -> list[Check]:
    out = []
    for name in REQUIRED_PACKAGES:
        try:
            out.append(Check(f"package {name}", True, md.version(name)))
        except md.PackageNotFoundError:
            out.append(Check(f"package {name}", False, "not installed", f"pip install {name} (or `make venv`)"))
    return out


def _can(cluster, verb: str, group: str, resource: str, sub: str, namespace: str | None) -> tuple[bool, str]:
    attrs = {"verb": verb, "group": group, "resource": resource}
    if sub:
        attrs["subresource"] = sub
    if namespace:
        attrs["namespace"] = namespace
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": attrs}}
    resp = cluster.api.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=review).json()
    st = resp.get("status", {})
    return bool(st.get("allowed")), st.get("reason", "")


def doctor(context: str | None = None) -> pd.DataFrame:
    """Run every check; the frame's attrs['can_run'] says whether the course can run."""
    from .cluster import connect
    from .probe import can_carry_traffic

    checks = _packages()
    try:
        cluster = connect(context, quiet=True)
    except K8snbError as exc:
        checks.append(Check("kubeconfig, context and API", False, str(exc),
                            "start the lab (`make lab`) or fix KUBECONFIG / --context"))
        return _frame(checks)
    checks.append(Check("kubeconfig and context", True, f"{cluster.context} ({cluster.kubeconfig or 'in-cluster'})"))
    checks.append(Check("API reachable", True, cluster.server))
    minor = int("".join(ch for ch in cluster.version.split(".")[1] if ch.isdigit()) or 0) \
        if cluster.version.count(".") >= 1 else 0
    checks.append(Check("Kubernetes version", minor >= 29, f"{cluster.version} ({cluster.flavor})",
                        "the course needs Kubernetes 1.29 or newer (EndpointSlices v1, ServiceCIDR later)"))
    for verb, group, resource, sub, ns, why in PERMISSIONS:
        allowed, reason = _can(cluster, verb, group, resource, sub, ns)
        what = f"{verb} {resource}{'/' + sub if sub else ''}" + (f" in {ns}" if ns else " (cluster)")
        required = (verb, group, resource) not in OPTIONAL
        checks.append(Check(f"permission: {what}", allowed, why + (f"; {reason}" if reason else ""),
                            "" if allowed else "bind the learner RBAC (k8snb/manifests/learner-rbac.yaml) "
                            "or ask the cluster admin", required))
    real = can_carry_traffic(cluster)
    checks.append(Check("pods carry traffic", True,
                        "real nodes: traffic cells are measured" if real else
                        "simulated nodes (kwok): traffic cells run in modeled mode", "", False))
    checks.append(_images(cluster, real))
    return _frame(checks)


def _images(cluster, real: bool) -> Check:
    if not real:
        return Check("images", True, "not needed: simulated nodes pull nothing", required=False)
    try:
        nodes = cluster.api.list("/api/v1/nodes")
    except K8snbError:
        return Check("images", True, "unknown (cannot list nodes); they are pulled on first use", required=False)
    cached = {name for n in nodes for img in n.get("status", {}).get("images") or [] for name in img.get("names", [])}
    missing = [i for i in IMAGES if not any(i in name for name in cached)]
    if not missing:
        return Check("images", True, "nginxdemos/hello and nicolaka/netshoot are on the nodes", required=False)
    return Check("images", True, f"{', '.join(missing)} not on any node yet: pulled on first use "
                 "(needs access to Docker Hub, or the lab's local registry)", required=False)


def _frame(checks: list[Check]) -> pd.DataFrame:
    df = pd.DataFrame([{"check": c.check, "ok": "yes" if c.ok else "NO", "detail": c.detail,
                        "fix": "" if c.ok else c.fix} for c in checks])
    df.attrs["can_run"] = all(c.ok for c in checks if c.required)
    return df
