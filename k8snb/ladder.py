"""The debugging ladder for a Service that does not answer: the checks an engineer makes in order,
each one a command the learner can type too, each answered by the cluster.

1. the name resolves (DNS), 2. the Service's selector matches ready pods, 3. the EndpointSlices list
them, 4. the node's rules send connections to them (kube-proxy), 5. a request answers. The first
rung that fails is where to look; the rungs above it hold. Each row says whether it was measured
(a command ran in a pod or on a node) or modeled (simulated nodes, or rules the course may not read).
"""
from __future__ import annotations

import pandas as pd

from .cluster import Cluster
from .dataplane import kube_proxy_chain
from .errors import NotFound
from .learner import NAMESPACE
from .names import dns_label
from .probe import can_carry_traffic, nslookup, resolve_modeled
from .tables import endpoint_records, selector_text
from .wait import pod_ready

COLUMNS = ("rung", "kubectl", "found", "ok", "mode")


def _row(rung: str, kubectl: str, found: str, ok: bool, mode: str) -> dict:
    return {"rung": rung, "kubectl": kubectl, "found": found, "ok": ok, "mode": mode}


def debug_ladder(cluster: Cluster, service: str, namespace: str = NAMESPACE) -> pd.DataFrame:
    """The five rungs for `service`, one row each (rung, kubectl, found, ok, mode); attrs['summary']
    names the first rung that fails. The request is the exercises' `symptom` (it waits for
    kube-proxy's rules to be written before it trusts a timeout)."""
    from .exercises import symptom  # the exercises build on the ladder's rungs, not the reverse

    dns_label(service, "Service name")
    svc = cluster.api.exists(f"/api/v1/namespaces/{namespace}/services/{service}")
    if svc is None:
        raise NotFound(f"Service {namespace}/{service} does not exist")
    measured = can_carry_traffic(cluster)
    mode = "measured" if measured else "modeled"
    rows = []

    lookup = nslookup(cluster, service, namespace=namespace) if measured else resolve_modeled(cluster, service,
                                                                                              namespace)
    rows.append(_row("1. the name resolves", f"kubectl exec deploy/netshoot -- nslookup {service}",
                     f"{lookup.name} -> {', '.join(lookup.addresses)}" if lookup.addresses else "no address (NXDOMAIN)",
                     bool(lookup.addresses), mode))

    selector = selector_text(svc)
    pods = cluster.api.list(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector) if selector else []
    ready_pods = [p for p in pods if pod_ready(p)]
    leaving = sum(1 for p in pods if p["metadata"].get("deletionTimestamp"))
    rows.append(_row("2. the selector matches ready pods", f"kubectl get pods -l {selector or '<none>'}",
                     f"selector {selector or '(none)'} matches {len(pods)} pod(s), {len(ready_pods)} ready"
                     + (f", {leaving} terminating" if leaving else ""), bool(ready_pods), "measured"))

    ready = [e for e in endpoint_records(cluster, namespace, service) if e["ready"]]
    endpoints = sorted(f"{e['address']}:{e['port']}" for e in ready)
    rows.append(_row("3. the endpoints list them",
                     f"kubectl get endpointslices -l kubernetes.io/service-name={service}",
                     f"{len(endpoints)} ready endpoint(s): {', '.join(endpoints)}" if endpoints
                     else "no ready endpoint", bool(endpoints), "measured"))

    rules = ("kubectl debug node/<node> -it --image=nicolaka/netshoot -- iptables-save -t nat  "
             f"(the chain of {namespace}/{service})")
    if not endpoints:  # kube-proxy writes no chain for it, only a rule that rejects its connections
        rows.append(_row("4. the node's rules send to them", rules,
                         "not read: with no ready endpoint there is nothing to send to (kube-proxy rejects "
                         "the ClusterIP's connections)", False, "-"))
    else:
        chain = kube_proxy_chain(cluster, service, namespace)
        programmed = sorted(chain["endpoint"].dropna())
        read = len(chain) > 0 and chain["mode"].iloc[0] == "measured"
        found = (f"node {chain.attrs.get('node')}: {len(programmed)} rule(s) to {', '.join(programmed)}" if read
                 else f"not read: {chain.attrs.get('how', '')}")
        rows.append(_row("4. the node's rules send to them", rules, found, read and programmed == endpoints,
                         "measured" if read else "modeled"))

    answer = symptom(cluster, service, namespace).iloc[0]
    rows.append(_row("5. a request answers", f"kubectl exec deploy/netshoot -- curl -sI {service}",
                     str(answer["reply"]), bool(answer["answered"]), str(answer["mode"])))

    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    failed = frame[~frame["ok"]]
    frame.attrs["summary"] = (f"{service}: every rung holds, the Service answers." if failed.empty else
                              f"{service}: the first rung that fails is '{failed['rung'].iloc[0]}' "
                              f"({failed['found'].iloc[0]}); look there first.")
    return frame
