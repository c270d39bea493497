"""Waiting for pods, with a progress bar, a timeout and the cluster's own reason on failure.

A learner staring at a silent cell cannot tell "slow" from "broken". Every wait here watches the
API (no sleep loops), shows progress, stops at its timeout, and when pods do not come up raises
NotReadyInTime naming the pod, the reason the cluster gives (ErrImagePull, CrashLoopBackOff,
Unschedulable ...) and its last event.

The timeout is also the deadline of every API call the wait makes: a transient failure (the API
server restarting, a 503, a dropped watch) is retried within it, and an expired watch (410) makes
the wait list again, as client-go's informers do.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from tqdm.auto import tqdm

from .cluster import Cluster
from .learner import NAMESPACE
from .errors import Expired, NotFound, NotReadyInTime
from .names import dns_label

#: Waiting reasons that will not fix themselves within a course cell: fail at once.
FATAL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
                           "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError"})
DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class PodProblem:
    pod: str
    reason: str
    message: str
    event: str


def pod_ready(pod: dict) -> bool:
    """Ready and not being deleted: a pod a Service's ready endpoints would count."""
    return not pod["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions") or [])


def replica_failure(deploy: dict) -> str:
    """The Deployment's ReplicaFailure condition (its ReplicaSet could not create a pod: quota
    exceeded, a forbidden pod spec), or '' when there is none."""
    for cond in deploy.get("status", {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return f"{cond.get('reason', 'FailedCreate')}: {cond.get('message', '')}".rstrip(": ")
    return ""


def pod_problem(pod: dict) -> PodProblem | None:
    """Why a pod is not ready, in the cluster's words (None if nothing is reported yet)."""
    status = pod.get("status", {})
    name = pod["metadata"]["name"]
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            return PodProblem(name, waiting["reason"], waiting.get("message", ""), "")
        term = (cs.get("state") or {}).get("terminated")
        if term and term.get("exitCode", 0) != 0:
            return PodProblem(name, term.get("reason", "Error"), f"exit code {term.get('exitCode')}", "")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return PodProblem(name, cond.get("reason", "Unschedulable"), cond.get("message", ""), "")
    return None


def last_event(cluster: Cluster, namespace: str, pod: str) -> str:
    """The newest event about `pod`, as 'Reason: message' ('' when none or not allowed)."""
    try:
        events = cluster.api.list(f"/api/v1/namespaces/{namespace}/events",
                                  fieldSelector=f"involvedObject.name={pod}")
    except Exception:  # noqa: BLE001 — events are a hint; their absence must not hide the real error
        return ""
    if not events:
        return ""
    newest = max(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return f"{newest.get('reason', '')}: {newest.get('message', '')}".strip()


def _fail(cluster: Cluster, namespace: str, what: str, pods: list[dict], timeout: float | None) -> NotReadyInTime:
    problems = [p for p in (pod_problem(x) for x in pods) if p]
    if not problems and pods:
        pending = [x for x in pods if not pod_ready(x)]
        if pending:
            problems = [PodProblem(pending[0]["metadata"]["name"], pending[0].get("status", {}).get("phase", "?"),
                                   "not ready", "")]
    head = f"{what} in namespace {namespace} not ready" + (f" within {timeout:.0f} s" if timeout else "")
    if not problems:
        return NotReadyInTime(f"{head}: no pod was created (check the Deployment's events: "
                              f"kubectl -n {namespace} describe deployment)")
    p = problems[0]
    event = last_event(cluster, namespace, p.pod)
    more = f" (+{len(problems) - 1} more pods)" if len(problems) > 1 else ""
    return NotReadyInTime(f"{head}: pod {p.pod}: {p.reason}"
                          + (f": {p.message}" if p.message else "")
                          + (f"; last event: {event}" if event else "") + more)


def wait_deployment(cluster: Cluster, name: str, namespace: str = NAMESPACE,
                    timeout: float = DEFAULT_TIMEOUT, progress: bool = True) -> list[dict]:
    """Wait until Deployment `name` has all replicas updated and ready and no old pods left.

    Returns its ready pods. Raises NotReadyInTime on timeout, or at once when a pod hits a reason
    in FATAL_REASONS.
    """
    dns_label(name, "deployment name")
    dns_label(namespace, "namespace")
    dpath = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    deadline = time.monotonic() + timeout
    deploy = cluster.api.exists(dpath, deadline=deadline)
    if deploy is None:
        raise NotFound(f"Deployment {namespace}/{name} does not exist")
    labels = deploy["spec"]["selector"].get("matchLabels", {})
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    ppath = f"/api/v1/namespaces/{namespace}/pods"
    bar = tqdm(total=deploy["spec"].get("replicas", 1), desc=f"{name} ready", disable=not progress, leave=False)
    try:
        while True:
            deploy = cluster.api.get(dpath, deadline=deadline)
            want = deploy["spec"].get("replicas", 1)
            st = deploy.get("status", {})
            listed, version = cluster.api.snapshot(ppath, deadline=deadline, labelSelector=selector)
            pods = [p for p in listed if not p["metadata"].get("deletionTimestamp")]
            ready = [p for p in pods if pod_ready(p)]
            bar.total = want
            bar.n = min(len(ready), want)
            bar.refresh()
            if (st.get("observedGeneration", 0) >= deploy["metadata"].get("generation", 0)
                    and st.get("updatedReplicas", 0) == want and st.get("readyReplicas", 0) == want
                    and st.get("replicas", 0) == want and len(ready) == want and len(pods) == want):
                return ready
            fatal = [p for p in pods if (pp := pod_problem(p)) and pp.reason in FATAL_REASONS]
            if fatal:
                raise _fail(cluster, namespace, f"Deployment {name}", fatal, None)
            refused = replica_failure(deploy)
            if refused:  # e.g. a classroom's ResourceQuota: no pod will come, however long we wait
                raise NotReadyInTime(f"Deployment {namespace}/{name}: {len(ready)} of {want} pods ready, and the "
                                     f"cluster refuses to create more: {refused}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise _fail(cluster, namespace, f"Deployment {name}", pods, timeout)
            # Block until something about these pods changes (the tick re-reads the Deployment).
            _changed(cluster, ppath, min(left, 2.0), labelSelector=selector, resourceVersion=version)
    finally:
        bar.close()


def wait_endpoints(cluster: Cluster, service: str, namespace: str = NAMESPACE, count: int | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
    """Wait until Service `service` has `count` ready endpoints (any, if None); return them."""
    from .tables import endpoint_records, service_selector

    deadline = time.monotonic() + timeout
    spath = f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
    selector = f"kubernetes.io/service-name={service}"
    while True:
        # The list's resourceVersion first: any change after it wakes the watch below.
        _, version = cluster.api.snapshot(spath, deadline=deadline, labelSelector=selector)
        eps = [e for e in endpoint_records(cluster, namespace, service) if e["ready"]]
        if (count is None and eps) or (count is not None and len(eps) == count):
            return eps
        left = deadline - time.monotonic()
        if left <= 0:
            sel = service_selector(cluster, namespace, service)
            raise NotReadyInTime(f"Service {namespace}/{service}: {len(eps)} ready endpoints after {timeout:.0f} s, "
                                 f"expected {count if count is not None else 'at least 1'}"
                                 + ("" if eps else f": no ready endpoints for selector {sel}"))
        _changed(cluster, spath, min(left, 2.0), labelSelector=selector, resourceVersion=version)


def _changed(cluster: Cluster, path: str, timeout: float, **params: str) -> bool:
    """Block until the first watch event on `path` after `resourceVersion`, at most `timeout` s.

    True on an event; False when the time ran out or the resourceVersion expired (410): either
    way the caller lists again, which is exactly what a 410 asks for.
    """
    events = cluster.api.watch(path, timeout=timeout, **params)
    try:
        return next(events, None) is not None
    except Expired:
        return False
    finally:
        events.close()


#: Seconds a Service gets to answer once its endpoints are ready: kube-proxy on the client's node
#: programs a new Service within a second or two; a loaded 2-core machine was measured slower.
ANSWER_TIMEOUT = 60.0


def wait_answering(cluster: Cluster, url: str, namespace: str = NAMESPACE, from_pod: str | None = None,
                   timeout: float = ANSWER_TIMEOUT) -> None:
    """Until `url` answers from the client pod (curl, a new connection each time), at most `timeout` s.

    Ready endpoints in the API do not mean every node's kube-proxy has written the Service's rules
    yet: until it has, a request is refused at once ("Couldn't connect to server"). A course cell
    that measures right after creating a Service waits here first, so that what it measures is the
    Service, not the moment before kube-proxy caught up. Raises NotReadyInTime with curl's last error.
    """
    from .probe import curl

    deadline = time.monotonic() + timeout
    while True:
        got = curl(cluster, url, from_pod=from_pod, namespace=namespace, head=True)
        if got.ok:
            return
        if time.monotonic() > deadline:
            raise NotReadyInTime(f"{url} (from namespace {namespace}) did not answer within {timeout:.0f} s after "
                                 f"its endpoints were ready; last try: {got.error or got.status_line}")
        time.sleep(0.5)
