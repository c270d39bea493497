"""The lab's own small HTTPS client, for bringing its cluster up and judging its health.

The course's client (`k8snb.cluster`) resolves kubeconfigs and copes with any learner's cluster. The
lab needs only a few requests against the cluster it is starting, before any kubeconfig may be
trusted: so it speaks to its API server (and etcd's health endpoint) directly, with the certificates
in its state directory.
"""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from ..errors import LabError
from . import processes, wait
from .plan import LabPlan, state_dir

#: Upper bound for every node to be Ready with a podCIDR; generous for a loaded 2-core machine.
NODES_TIMEOUT = 90.0


def tls(state: Path, ca: str = "ca", client: str = "admin") -> ssl.SSLContext:
    """Trust only the lab's `ca`; present `client`'s certificate (the admin's, or the API server's to etcd)."""
    ctx = ssl.create_default_context(cafile=str(state / "pki" / f"{ca}.crt"))
    ctx.load_cert_chain(str(state / "pki" / f"{client}.crt"), str(state / "pki" / f"{client}.key"))
    return ctx


def request(plan: LabPlan, state: Path, method: str, path: str, body: dict | None = None) -> dict:
    """One request as the lab's admin; the decoded JSON. 409 (already exists) is {}: bootstrap
    requests are repeated safely. Other HTTP errors raise LabError with the server's answer."""
    req = urllib.request.Request(f"https://{plan.api_host}:{plan.api_port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10, context=tls(state)) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code == 409:
            return {}
        raise LabError(f"lab bootstrap: {method} {path} failed: HTTP {exc.code} {exc.read()[:300]!r}") from None


def wait_serving(url: str, context: ssl.SSLContext, timeout: float, state: Path, name: str) -> None:
    """Until `url` answers 200. Ends at once, quoting its log, if the process `name` exits."""
    last = [""]

    def serving() -> bool:
        processes.check_running(state, name)
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                return resp.status == 200
        except urllib.error.HTTPError as exc:
            last[0] = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last[0] = str(getattr(exc, "reason", exc))
        return False

    wait.until(serving, timeout, 0.25, lambda: f"{name} was not healthy within {timeout:.0f} s ({last[0]}); "
               f"last log lines:\n{processes.log_tail(state, name)}")


def _ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))


def wait_nodes_ready(plan: LabPlan, state: Path, node_log: Callable[[str], str]) -> None:
    """Until every node is Ready with a podCIDR and the default service account exists (pods can
    then be created). On time-out, quote the controller-manager's log and the first missing
    node's own (`node_log`: the name of the process that runs it)."""
    pending: list[str] = list(plan.node_names)

    def ready() -> bool:
        nonlocal pending
        nodes = request(plan, state, "GET", "/api/v1/nodes").get("items", [])
        pending = [n for n in plan.node_names if not any(
            item["metadata"]["name"] == n and item["spec"].get("podCIDR") and _ready(item) for item in nodes)]
        return not pending and bool(request(plan, state, "GET", "/api/v1/namespaces/default/serviceaccounts")
                                    .get("items"))

    wait.until(ready, NODES_TIMEOUT, 0.25, lambda: (
        f"nodes {', '.join(pending)} were not Ready with a podCIDR within {NODES_TIMEOUT:.0f} s; "
        f"controller-manager log:\n{processes.log_tail(state, 'kube-controller-manager')}\n"
        + (f"{node_log(pending[0])} log:\n{processes.log_tail(state, node_log(pending[0]))}" if pending else "")))


def node_pod_cidrs(plan: LabPlan) -> dict[str, str]:
    """Node name -> the podCIDR the controller-manager allocated it, read from the running lab's API."""
    try:
        nodes = request(plan, state_dir(), "GET", "/api/v1/nodes").get("items", [])
    except (urllib.error.URLError, OSError) as exc:
        raise LabError(f"the lab's API server on port {plan.api_port} does not answer "
                       f"({getattr(exc, 'reason', exc)}); see `k8snb lab status`") from None
    return {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in nodes if n["spec"].get("podCIDR")}


def unready_nodes(plan: LabPlan, state: Path) -> list[str]:
    """The lab's nodes that are not Ready, as problems for `lab status`; LabError when the API
    server itself does not answer, or answers /readyz with anything but 200."""
    try:
        with urllib.request.urlopen(f"https://{plan.api_host}:{plan.api_port}/readyz", timeout=5,
                                    context=tls(state)) as resp:
            readyz = resp.status
        nodes = request(plan, state, "GET", "/api/v1/nodes").get("items", []) if readyz == 200 else []
    except (urllib.error.URLError, OSError, LabError) as exc:
        raise LabError(f"kube-apiserver does not answer ({getattr(exc, 'reason', exc)})") from None
    if readyz != 200:
        raise LabError(f"kube-apiserver /readyz answered HTTP {readyz}")
    ready = {n["metadata"]["name"] for n in nodes if _ready(n)}
    return [f"node {n} is not Ready" for n in plan.node_names if n not in ready]
