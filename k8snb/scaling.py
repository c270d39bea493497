"""Experiments that change the cluster and measure what follows: scale sweeps and pod replacement.

These are the article's "scale to 5 and curl again" and "pods come and go, the Service stays",
turned into functions that return DataFrames the notebooks plot.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable

import pandas as pd

from .cluster import Cluster
from .learner import NAMESPACE
from .errors import InvalidInput, LabError, NotFound, NotReadyInTime
from .manifests import apply, load, scale
from .names import dns_label, replicas as check_replicas
from .probe import can_carry_traffic, pod_for
from .tables import endpoints
from .traffic import parse_kube_svc_chain, sample, sweep_frame
from .wait import wait_deployment, wait_endpoints


def scale_and_wait(cluster: Cluster, replicas: int, deployment: str = "nginx-hello", service: str = "nginx-svc",
                   namespace: str = NAMESPACE, timeout: float = 120.0) -> pd.DataFrame:
    """Scale, wait until the Service lists exactly `replicas` ready endpoints; return those: the
    replicas. After a scale-down, pods still terminating linger in the EndpointSlice (ready False)
    for a while; they are not replicas any more, and a spread over them would plot empty bars."""
    check_replicas(replicas)
    scale(cluster, deployment, replicas, namespace)
    wait_deployment(cluster, deployment, namespace, timeout=timeout)
    if replicas:
        wait_endpoints(cluster, service, namespace, count=_endpoint_count(cluster, service, namespace, replicas),
                       timeout=timeout)
    eps = endpoints(cluster, service, namespace)
    eps = eps[eps["ready"].astype(bool)].reset_index(drop=True)
    if replicas and can_carry_traffic(cluster):
        _wait_programmed(cluster, service, namespace, set(eps["pod"].dropna()))
    return eps


#: Requests per round while waiting for kube-proxy, per replica: enough that each replica is hit
#: with near certainty (5 tries at 1/k each miss with probability (1 - 1/k)^(5k) < 0.7%).
PROBES_PER_REPLICA = 5
#: Probes per round at least: with one replica left after a scale-down, 20 connections all miss
#: 4 stale endpoints of 5 with probability (1/5)^20.
MIN_PROBES = 20
REACHABLE_TIMEOUT = 30.0


def _wait_reachable(cluster: Cluster, service: str, namespace: str, pods: set[str]) -> None:
    """Ready endpoints reach every node's kube-proxy rules a moment later, and removed ones leave them
    a moment later. Wait until new connections through the Service reach every ready pod and only
    them, without a failure, so that a sample taken next measures the new set of replicas."""
    try:
        pod_for(cluster, "netshoot", namespace)
    except NotReadyInTime:
        return  # no client pod to send from: nothing to wait for
    seen: set[str] = set()
    deadline = time.monotonic() + REACHABLE_TIMEOUT
    while True:
        frame = sample(cluster, max(PROBES_PER_REPLICA * len(pods), MIN_PROBES), service, namespace)
        answered = set(frame.loc[frame["ok"], "server_name"].dropna())
        seen |= answered & pods
        # Done when every ready pod answered and no probe failed or reached a pod going away: after
        # a scale-down the client's node may still send some connections to the removed endpoints.
        if pods <= seen and frame["ok"].all() and answered <= pods:
            return
        if time.monotonic() > deadline:
            raise NotReadyInTime(f"Service {namespace}/{service}: new connections do not reach exactly the ready pods "
                                 f"({', '.join(sorted(pods))}) after {REACHABLE_TIMEOUT:.0f} s: reached "
                                 f"{', '.join(sorted(answered)) or 'none'}, {int((~frame['ok']).sum())} failed "
                                 "(kube-proxy?)")


def programmed_endpoints(cluster: Cluster, service: str, namespace: str) -> dict[str, set[str]] | None:
    """Node -> the 'ip:port' endpoints kube-proxy has written for `service` in that node's iptables,
    read from each node's network namespace; None where they cannot be read (another cluster than
    the lab with real nodes, or no root).

    This runs in a polling loop over every node, so it keeps the lab's nsenter (milliseconds, no
    pod) rather than `nodeview`'s node pods: those would mean a privileged pod per node created in
    the middle of a scale, and an exec through the API server per node and poll. Elsewhere the
    caller sends requests until they reach every ready pod instead."""
    if not (cluster.is_lab and os.geteuid() == 0):
        return None
    from .lab.inspect import current_plan, node_iptables

    try:
        plan = current_plan()  # the plan file only: this runs in a polling loop
    except LabError:
        return None
    if plan.nodes_mode != "real":
        return None
    out = {}
    for node in plan.node_names:
        try:
            rules = parse_kube_svc_chain(node_iptables(node, "nat"), service, namespace)
        except NotFound:  # no chain (yet, or any more): no endpoint programmed
            out[node] = set()
            continue
        out[node] = set(rules["endpoint"].dropna())
    return out


#: Upper bound for every node's kube-proxy to program a changed set of endpoints (its minSyncPeriod
#: is 1 s on the lab and kind; a loaded 2-core machine needs a few more).
PROGRAMMED_TIMEOUT = 30.0


def _wait_programmed(cluster: Cluster, service: str, namespace: str, pods: set[str]) -> None:
    """Return once every node's kube-proxy sends the Service's new connections to exactly the ready
    endpoints `pods` (none to a pod that is going away). Read from the nodes' rules where the
    course can (the lab's real nodes); elsewhere, until requests reach every ready pod."""
    eps = endpoints(cluster, service, namespace)
    ready = eps[eps["ready"].astype(bool) & eps["pod"].isin(pods)]
    wanted = {f"{ip}:{port}" for ip, port in zip(ready["address"], ready["port"])}
    deadline = time.monotonic() + PROGRAMMED_TIMEOUT
    while True:
        programmed = programmed_endpoints(cluster, service, namespace)
        if programmed is None:
            _wait_reachable(cluster, service, namespace, pods)
            return
        behind = {node: sorted(got ^ wanted) for node, got in programmed.items() if got != wanted}
        if not behind:
            return
        if time.monotonic() > deadline:
            raise NotReadyInTime(
                f"Service {namespace}/{service}: kube-proxy has not programmed the ready endpoints within "
                f"{PROGRAMMED_TIMEOUT:.0f} s; differing on " + "; ".join(f"{n}: {d}" for n, d in behind.items()))
        time.sleep(0.2)


def _endpoint_count(cluster: Cluster, service: str, namespace: str, replicas: int) -> int:
    """Endpoint rows expected for `replicas` pods: one per pod and Service port."""
    svc = cluster.api.get(f"/api/v1/namespaces/{namespace}/services/{service}")
    return replicas * max(1, len(svc["spec"].get("ports") or []))


def sweep(cluster: Cluster, replica_counts: Iterable[int] = range(1, 6), n: int = 200,
          deployment: str = "nginx-hello", service: str = "nginx-svc", namespace: str = NAMESPACE,
          seed: int | None = None) -> pd.DataFrame:
    """For each replica count: scale, wait for the endpoints, send `n` requests; one long frame
    (replicas, replica, count, share, p_value, mode) ready for `plot_sweep`."""
    counts = list(replica_counts)
    if not counts:
        raise InvalidInput("replica_counts is empty")
    for k in counts:
        check_replicas(k)
        if k == 0:
            raise InvalidInput("a sweep needs at least one replica at every step (0 has nobody to answer)")
    results, expected = {}, {}
    for k in counts:
        eps = scale_and_wait(cluster, k, deployment, service, namespace)  # the ready ones: this step's replicas
        expected[k] = sorted(set(eps["pod"].dropna()))
        results[k] = sample(cluster, n, service, namespace, seed=None if seed is None else seed + k)
    return sweep_frame(results, expected)


def with_prestop(cluster: Cluster, seconds: int, namespace: str = NAMESPACE, service: str = "nginx-svc") -> None:
    """The article's nginx-hello Deployment applied again, at its current replica count, with a
    preStop `sleep <seconds>` on its container (none with 0: the article's manifest as shipped), and
    rolled out. The delay keeps a deleted pod serving while every node's kube-proxy drops it."""
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 <= seconds <= 30:
        raise InvalidInput(f"the preStop delay must be 0 to 30 seconds, got {seconds!r}")
    deployment = load("nginx-deploy", namespace)[0]
    current = cluster.api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment['metadata']['name']}")
    deployment["spec"]["replicas"] = current["spec"]["replicas"]
    if seconds:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(seconds)]}}}
    apply(cluster, deployment)
    ready = wait_deployment(cluster, deployment["metadata"]["name"], namespace, progress=False)
    # The rollout replaced every pod: wait until the nodes' rules hold only the new ones, or the
    # next measurement would count the rollout's own gap.
    _wait_programmed(cluster, service, namespace, {p["metadata"]["name"] for p in ready})


def replace_pod(cluster: Cluster, app: str = "nginx", namespace: str = NAMESPACE, service: str = "nginx-svc",
                probes: int = 20, timeout: float = 120.0, prestop_seconds: int = 0) -> pd.DataFrame:
    """Delete one pod behind `service`, keep requesting through the Service while the Deployment
    replaces it, and report old and new pod IPs and how many requests were answered.

    Returns one row per phase ('before', 'after') with pod and IP; the 'after' row holds the share
    of the probes sent while the replacement started that were answered. With `prestop_seconds`,
    nginx-hello gets a preStop delay first (`with_prestop`), and the article's manifest back after.
    """
    if prestop_seconds:
        with_prestop(cluster, prestop_seconds, namespace, service)
        try:
            out = replace_pod(cluster, app, namespace, service, probes, timeout)
        finally:
            with_prestop(cluster, 0, namespace, service)
        out["prestop_seconds"] = prestop_seconds
        return out
    dns_label(app, "app label")
    before = endpoints(cluster, service, namespace)
    # Only ready endpoints count: a pod still terminating from an earlier replacement may linger
    # in the EndpointSlice (ready False) and must be neither the victim nor counted as capacity.
    before = before[before["ready"].astype(bool)]
    if before.empty:
        raise NotReadyInTime(f"Service {namespace}/{service} has no endpoints to replace")
    victim = before.iloc[0]
    cluster.api.delete(f"/api/v1/namespaces/{namespace}/pods/{victim['pod']}")
    try:
        during = sample(cluster, probes, service, namespace)
        answered, mode = float(during["ok"].mean()), during.attrs.get("mode", "measured")
    except NotFound:
        # The only replica is gone and its successor not ready yet: nobody answers, which is
        # exactly what a single replica means for availability.
        answered, mode = 0.0, "measured" if can_carry_traffic(cluster) else "modeled"
    deadline = time.monotonic() + timeout
    while True:
        after = endpoints(cluster, service, namespace)
        fresh = after[~after["pod"].isin(before["pod"]) & after["ready"]]
        if len(fresh) and len(after[after["ready"]]) >= len(before):
            break
        if time.monotonic() > deadline:
            raise NotReadyInTime(f"no replacement pod for {victim['pod']} became ready within {timeout:.0f} s")
        wait_endpoints(cluster, service, namespace, count=len(before), timeout=max(1.0, deadline - time.monotonic()))
    new = fresh.iloc[0]
    if mode == "measured":
        # Returned only when every node's kube-proxy sends new connections to the new set of
        # endpoints: a request made next cannot reach the pod that was deleted.
        ready = after[after["ready"].astype(bool)]
        _wait_programmed(cluster, service, namespace, set(ready["pod"].dropna()))
    # `replicas`: the ready replicas when the pod was deleted, the k of "about one request in k fails".
    out = pd.DataFrame([
        {"phase": "before", "pod": victim["pod"], "ip": victim["address"], "node": victim["node"],
         "replicas": len(before), "answered_while_replacing": None},
        {"phase": "after", "pod": new["pod"], "ip": new["address"], "node": new["node"],
         "replicas": len(before), "answered_while_replacing": answered},
    ])
    out["prestop_seconds"] = 0
    out.attrs["mode"] = mode
    out.attrs["probes"] = probes
    return out
