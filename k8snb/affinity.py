"""`sessionAffinity: ClientIP`, measured: one client's new connections all land on one pod.

kube-proxy balances connections, not requests; with `sessionAffinity: ClientIP` it also remembers,
per client address, which endpoint that client's last connection went to (iptables: the `recent`
match on each KUBE-SEP chain; nftables: a set with a timeout; IPVS: persistence) and sends every
new connection from that address there for `timeoutSeconds` (3 hours by default). Notebook 03
turns it on for nginx-svc, measures, and turns it off again.
"""
from __future__ import annotations

import time

import pandas as pd

from .cluster import Cluster
from .errors import InvalidInput, NotReadyInTime
from .manifests import apply, load
from .probe import can_carry_traffic
from .tables import endpoint_records
from .traffic import sample, summarize
from .learner import NAMESPACE

#: Bound on waiting for every node's kube-proxy to apply a changed sessionAffinity.
AFFINITY_TIMEOUT = 60.0
#: New connections per probe while waiting: with k >= 2 replicas and no affinity, all of them
#: land on one pod with probability k * (1/k)^10 <= 0.2%, so "all on one pod" means affinity is on.
PROBE_CONNECTIONS = 10
SETTINGS = ("ClientIP", "None")


def set_affinity(cluster: Cluster, affinity: str, service: str = "nginx-svc", namespace: str = NAMESPACE) -> dict:
    """Server-side apply the course's Service with `spec.sessionAffinity` set (kubectl patch svc
    nginx-svc -p '{"spec":{"sessionAffinity":"ClientIP"}}'). 'None' removes the course's field, so
    the API server's default (None) is back."""
    if affinity not in SETTINGS:
        raise InvalidInput(f"sessionAffinity must be one of {SETTINGS}, got {affinity!r}")
    if service != "nginx-svc":
        raise InvalidInput("the course sets sessionAffinity only on its own nginx-svc")
    svc = load("clusterip-svc", namespace)[0]
    if affinity == "ClientIP":
        svc["spec"]["sessionAffinity"] = "ClientIP"
    return apply(cluster, svc)


def _pods_answering(frame: pd.DataFrame) -> int:
    return int(frame.loc[frame["ok"].astype(bool), "server_name"].nunique())


def _wait_applied(cluster: Cluster, affinity: str, service: str, namespace: str, timeout: float) -> float:
    """Seconds until new connections behave as `affinity` says (all on one pod, or on several),
    probing PROBE_CONNECTIONS at a time: the API has the new spec at once, every node's kube-proxy
    a moment later. NotReadyInTime, naming the Service, after `timeout`."""
    start = time.monotonic()
    while True:
        pods = _pods_answering(sample(cluster, PROBE_CONNECTIONS, service, namespace))
        if (pods == 1) == (affinity == "ClientIP"):
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise NotReadyInTime(
                f"Service {namespace}/{service}: {PROBE_CONNECTIONS} new connections still reached {pods} pod(s) "
                f"{timeout:.0f} s after sessionAffinity was set to {affinity}; is kube-proxy running on the nodes "
                "(kubectl -n kube-system get pods -o wide)?")
        time.sleep(1.0)


def affinity_compare(cluster: Cluster, n: int = 50, service: str = "nginx-svc", namespace: str = NAMESPACE,
                     timeout: float = AFFINITY_TIMEOUT, seed: int | None = None) -> pd.DataFrame:
    """`n` new connections from netshoot with sessionAffinity ClientIP, then `n` more after setting it
    back to None. One row per setting: session_affinity, connections, pods_answering, replicas,
    largest_share, mode; attrs['summaries'] holds each setting's per-replica summary (for
    plot_spread) and attrs['summary'] the sentence to print.

    Measured where pods carry traffic: each setting is measured only after probes show the nodes
    apply it (bounded by `timeout`). Modeled on simulated nodes, and labelled so. The Service is
    left at None either way, as the course ships it.
    """
    replicas = sorted({e["pod"] for e in endpoint_records(cluster, namespace, service) if e["ready"] and e["pod"]})
    if len(replicas) < 2:
        raise InvalidInput(f"Service {namespace}/{service} has {len(replicas)} ready replica(s): affinity shows only "
                           "with two or more (k8snb.scale_and_wait(cluster, 3))")
    measured = can_carry_traffic(cluster)
    rows, summaries = [], {}
    try:
        for affinity in SETTINGS:
            set_affinity(cluster, affinity, service, namespace)
            if measured:
                _wait_applied(cluster, affinity, service, namespace, timeout)
            frame = sample(cluster, n, service, namespace, seed=seed)
            summary = summarize(frame, replicas)
            summaries[affinity] = summary
            rows.append({"session_affinity": affinity, "connections": int(summary.attrs["n"]),
                         "pods_answering": int((summary["count"] > 0).sum()), "replicas": len(replicas),
                         "largest_share": float(summary["share"].max()), "mode": summary.attrs["mode"]})
    finally:
        set_affinity(cluster, "None", service, namespace)
    table = pd.DataFrame(rows)
    on, off = rows
    mode = on["mode"]
    table.attrs.update(summaries=summaries, summary=(
        f"With sessionAffinity ClientIP, {on['connections']} new connections from one client reached "
        f"{on['pods_answering']} of {len(replicas)} pods; back at None, {off['connections']} reached "
        f"{off['pods_answering']} ({mode})."))
    return table
