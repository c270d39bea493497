"""What a node's data plane did with the learner's packets (notebooks 03 and 04): kube-proxy's
KUBE-SVC chain for a Service with its counters, and the conntrack entry of one request.

Read on a real node through the course's node pod (`nodeview`), or on the lab through its own
network namespaces; computed from the Service's ready endpoints, and labelled modeled, wherever
the node cannot be read.
"""
from __future__ import annotations

import os
import time

import pandas as pd

from . import nodeview
from .cluster import Cluster
from .errors import InvalidInput, K8snbError, NotFound, NotReadyInTime
from .names import dns_label
from .probe import can_carry_traffic, exec_argv, pod_for
from .tables import endpoint_records
from .traffic import iptables_probabilities, parse_hello, parse_kube_svc_chain
from .learner import NAMESPACE


def expected_kube_svc_rules(cluster: Cluster, service: str = "nginx-svc", namespace: str = NAMESPACE) -> pd.DataFrame:
    """The KUBE-SVC chain kube-proxy (iptables mode) writes for the Service's ready endpoints,
    computed: rule, probability, effective_share, endpoint. mode='modeled'."""
    eps = [e for e in endpoint_records(cluster, namespace, service) if e["ready"]]
    if not eps:
        raise NotFound(f"Service {namespace}/{service} has no ready endpoints, so kube-proxy writes no rules")
    rows, reach = [], 1.0
    for i, (e, p) in enumerate(zip(eps, iptables_probabilities(len(eps)))):
        rows.append({"rule": i, "probability": p, "effective_share": reach * p,
                     "endpoint": f"{e['address']}:{e['port']}", "mode": "modeled"})
        reach *= 1 - p
    return pd.DataFrame(rows)


#: Seconds to wait for the node's kube-proxy to write the chain for the Service's current endpoints.
CHAIN_TIMEOUT = 20.0


def _view_node(cluster: Cluster, namespace: str) -> tuple[str, dict | None]:
    """The node whose tables the course reads, and the client pod on it: netshoot's node (its
    conntrack entries live there; every node holds the same kube-proxy rules)."""
    try:
        pod = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods/{pod_for(cluster, 'netshoot', namespace)}")
        return pod["spec"]["nodeName"], pod
    except NotReadyInTime:
        nodes = sorted(n["metadata"]["name"] for n in cluster.api.list("/api/v1/nodes"))
        if not nodes:
            raise NotFound("the cluster lists no node") from None
        return nodes[0], None


def _lab_nat(cluster: Cluster, node: str) -> nodeview.NatRules | None:
    """The lab's own way onto a real node (nsenter into its network namespace, as root), used when
    the node pod cannot run there; None elsewhere."""
    from . import lab

    reader = getattr(lab, "node_iptables", None)
    if not (cluster.is_lab and reader and os.geteuid() == 0):
        return None
    try:
        text = reader(node, "nat")
    except K8snbError:
        return None
    return nodeview.NatRules(node, "iptables-save -t nat", text, "nsenter into the lab node's network namespace")


def _modeled_chain(table: pd.DataFrame, why: str) -> pd.DataFrame:
    table.attrs.update(how=f"Modeled, not read from a node: {why}. The table is the chain kube-proxy in "
                           f"iptables mode writes for the Service's {len(table)} ready endpoint(s).",
                       proxy_mode=table.attrs.get("proxy_mode"))
    return table


def kube_proxy_chain(cluster: Cluster, service: str = "nginx-svc", namespace: str = NAMESPACE,
                     timeout: float = CHAIN_TIMEOUT, connections: int = 0) -> pd.DataFrame:
    """kube-proxy's KUBE-SVC chain for `service`, read on a node where the course may run its node
    pod (`nodeview`): one row per rule (rule, chain, probability, effective_share, endpoint,
    connections, mode='measured'). `connections` is the rule's packet counter: new connections
    through that node that took the rule. With `connections=n`, netshoot (on that node) opens n new
    connections to the Service between two readings, and the column holds what each rule counted of
    them: enough connections for the counters to show the 1/k shares beside them (a handful since
    the chain was written can read "2, 0, 0" under shares of 1/3).

    Where the chain cannot be read (simulated nodes, a cluster refusing privileged pods, kube-proxy
    in nftables or IPVS mode, no kube-proxy) the rows are the chain iptables mode would write for
    the ready endpoints, mode='modeled'. Either way `attrs['how']` is the sentence to print: the
    mode kube-proxy runs in and how that was found, where the rules were read, or why they were not.
    """
    modeled = expected_kube_svc_rules(cluster, service, namespace)
    if not can_carry_traffic(cluster):
        return _modeled_chain(modeled, f"the nodes of {cluster.context} are simulated (kwok) and have no "
                                       "kernel tables")
    node, _ = _view_node(cluster, namespace)
    try:
        nat = nodeview.read_nat(cluster, node, namespace)
    except K8snbError as exc:
        nat = _lab_nat(cluster, node)
        if nat is None:
            return _modeled_chain(modeled, str(exc).rstrip("."))
    try:
        mode, found = nodeview.kube_proxy_mode(cluster, node, namespace, nat)
    except K8snbError as exc:
        return _modeled_chain(modeled, f"kube-proxy's mode could not be read on node {node}: {str(exc).rstrip('.')}")
    modeled.attrs["proxy_mode"] = mode
    if mode != "iptables":
        words = f"kube-proxy runs in {mode} mode" if mode else "no kube-proxy rules were found"
        return _modeled_chain(modeled, f"{words} ({found}), so this cluster has no KUBE-SVC chain to read")
    if nat is None:
        return _modeled_chain(modeled, f"kube-proxy's mode is iptables ({found}), but node {node} holds no "
                                       "KUBE-SERVICES chain in either iptables backend")
    wanted = set(modeled["endpoint"])
    deadline = time.monotonic() + timeout
    while True:
        try:
            table = parse_kube_svc_chain(nat.text, service, namespace)
        except NotFound:
            table = None
        got = set(table["endpoint"].dropna()) if table is not None else set()
        if got == wanted or time.monotonic() > deadline:
            break
        time.sleep(1.0)  # kube-proxy writes new endpoints a moment after they are ready
        nat = nodeview.read_nat(cluster, node, namespace) if nat.via.startswith("pod ") else _lab_nat(cluster, node)
        if nat is None:
            return _modeled_chain(modeled, f"node {node}'s KUBE-SERVICES chain disappeared while it was read")
    if table is None:
        return _modeled_chain(modeled, f"node {node} has no KUBE-SVC chain for {namespace}/{service} after "
                                       f"{timeout:.0f} s (read with `{nat.command}`)")
    table["mode"] = "measured"
    if connections and got == wanted and table["connections"].notna().all():
        via_pod = nat.via.startswith("pod ")
        table = _counted(cluster, table, node, service, namespace, connections, lambda: (
            nodeview.read_nat(cluster, node, namespace) if via_pod else _lab_nat(cluster, node)))
    lag = "" if got == wanted else (f" The node's chain lists {len(got)} endpoint(s), the EndpointSlices "
                                    f"{len(wanted)} ready: its kube-proxy has not caught up.")
    table.attrs.update(node=node, proxy_mode=mode, command=nat.command, how=(
        f"kube-proxy mode: iptables ({found}). Read on node {node} with `{nat.command}` ({nat.via}): chain "
        f"{table.attrs['svc_chain']}, {len(table)} rule(s) (measured)." + lag))
    return table


def _counted(cluster: Cluster, table: pd.DataFrame, node: str, service: str, namespace: str,
             n: int, read_nat) -> pd.DataFrame:
    """`table` with `connections` replaced by what each rule counted of n new connections sent now
    from netshoot, on `node`: the difference between two readings of the counters (`read_nat`
    reads them again the way they were read first)."""
    from .traffic import sample

    sample(cluster, n, service, namespace)
    nat = read_nat()
    after = parse_kube_svc_chain(nat.text, service, namespace) if nat is not None else None
    if after is None or list(after["endpoint"]) != list(table["endpoint"]):
        raise K8snbError(f"node {node}'s chain for {namespace}/{service} changed while its counters were read; "
                         "run the cell again")
    counted = table.copy()
    counted["connections"] = after["connections"].to_numpy() - table["connections"].to_numpy()
    counted.attrs.update(table.attrs, sent=n)
    return counted


def _who(cluster: Cluster, namespace: str, service: str, cluster_ip: str) -> dict[str, str]:
    """Address -> what it is (a pod of `namespace`, the Service's ClusterIP, a node)."""
    names = {cluster_ip: f"Service {service} (ClusterIP)"}
    for pod in cluster.api.list(f"/api/v1/namespaces/{namespace}/pods"):
        ip = pod.get("status", {}).get("podIP")
        if ip and not pod.get("spec", {}).get("hostNetwork"):
            names.setdefault(ip, f"pod {pod['metadata']['name']}")
    try:
        for node in cluster.api.list("/api/v1/nodes"):
            for address in node.get("status", {}).get("addresses") or []:
                names.setdefault(address["address"], f"node {node['metadata']['name']}")
    except K8snbError:
        pass  # an account that may not list nodes: addresses stay unnamed
    return names


def _pin_modeled(why: str, client_ip: str | None, client: str, cluster_ip: str, port: int,
                 endpoints: list[str], service: str) -> pd.DataFrame:
    src = f"{client_ip or '<client IP>'}:<ephemeral port>"
    rows = [{"direction": "original", "src": src, "dst": f"{cluster_ip}:{port}",
             "who": f"pod {client} -> Service {service} (ClusterIP)", "mode": "modeled"},
            {"direction": "reply", "src": "one of " + ", ".join(endpoints), "dst": src,
             "who": "the pod kube-proxy's DNAT picks -> " + f"pod {client}", "mode": "modeled"}]
    frame = pd.DataFrame(rows, columns=PIN_COLUMNS)
    frame.attrs.update(how=f"Modeled, not read from a node: {why}. The rows are the entry conntrack would hold "
                           "for one connection from the client to the Service (without masquerading).",
                       summary="conntrack entry: modeled, not read from a node (the conntrack cell says why).")
    return frame


PIN_COLUMNS = ["direction", "src", "dst", "who", "mode"]


def conntrack_entry(cluster: Cluster, service: str = "nginx-svc", namespace: str = NAMESPACE) -> pd.DataFrame:
    """Send one request from netshoot to `service` on a new connection, then read that connection's
    conntrack entry on netshoot's node (`conntrack -L` in the course's node pod, filtered by the
    ClusterIP, the Service port and the client's own source port).

    Two rows (direction 'original' and 'reply'; src, dst as ip:port, who, mode): the original tuple is
    what netshoot sent (to the ClusterIP), the reply tuple what the kernel expects back, from the pod
    kube-proxy's DNAT chose. Where the node cannot be read the rows are modeled and `attrs['how']`
    says why; it always holds the sentence to print, `attrs['summary']` a one-line recap.
    """
    dns_label(service, "service")
    svc = cluster.api.get(f"/api/v1/namespaces/{namespace}/services/{service}")
    cluster_ip = svc["spec"].get("clusterIP")
    if not cluster_ip or cluster_ip == "None":
        raise InvalidInput(f"Service {namespace}/{service} has no ClusterIP (headless): kube-proxy does not DNAT it")
    port = int((svc["spec"].get("ports") or [{}])[0].get("port") or 80)
    ready = sorted({f"{e['address']}:{e['port']}" for e in endpoint_records(cluster, namespace, service) if e["ready"]})
    if not ready:
        raise NotFound(f"Service {namespace}/{service} has no ready endpoints: no connection would be answered")
    node, client_pod = _view_node(cluster, namespace)
    if client_pod is None:
        raise NotReadyInTime(f"no ready netshoot pod in namespace {namespace}; apply the article's objects first")
    client, client_ip = client_pod["metadata"]["name"], client_pod.get("status", {}).get("podIP")
    if not can_carry_traffic(cluster):
        return _pin_modeled(f"the nodes of {cluster.context} are simulated (kwok): no connection is opened",
                            client_ip, client, cluster_ip, port, ready, service)
    try:
        via = nodeview.node_pod(cluster, node, namespace)
    except K8snbError as exc:
        return _pin_modeled(str(exc).rstrip("."), client_ip, client, cluster_ip, port, ready, service)
    url = f"http://{service}" + ("" if port == 80 else f":{port}") + "/"
    res = exec_argv(cluster, client, nodeview.one_request_argv(url), namespace, timeout=20)
    conn = nodeview.parse_one_request(res.stdout)
    server = parse_hello(conn.body)["server_address"]
    try:
        entries = nodeview.read_conntrack(cluster, node, cluster_ip, port, conn.local_ip, conn.local_port, namespace)
    except K8snbError as exc:
        return _pin_modeled(str(exc).rstrip("."), client_ip, client, cluster_ip, port, ready, service)
    who = _who(cluster, namespace, service, cluster_ip)
    rows = []
    for e in entries.itertuples():
        src, dst = f"{e.orig_src}:{e.orig_sport}", f"{e.orig_dst}:{e.orig_dport}"
        rsrc, rdst = f"{e.reply_src}:{e.reply_sport}", f"{e.reply_dst}:{e.reply_dport}"
        rows += [{"direction": "original", "src": src, "dst": dst, "mode": "measured",
                  "who": f"{who.get(e.orig_src, e.orig_src)} -> {who.get(e.orig_dst, e.orig_dst)}"},
                 {"direction": "reply", "src": rsrc, "dst": rdst, "mode": "measured",
                  "who": f"{who.get(e.reply_src, e.reply_src)} -> {who.get(e.reply_dst, e.reply_dst)}"}]
    frame = pd.DataFrame(rows, columns=PIN_COLUMNS)
    where = f"`conntrack -L` on node {node} (pod {namespace}/{via})"
    conn_words = f"{conn.local_ip}:{conn.local_port} -> {conn.remote_ip}:{conn.remote_port}"
    if entries.empty:
        frame.attrs.update(how=f"{where} holds no entry for the connection {conn_words} that curl just opened "
                               "(measured): netfilter did not translate it on that node (a kube-proxy "
                               "replacement such as Cilium may translate it in the socket), or the entry "
                               "already expired.",
                           summary=f"conntrack entry: none found on node {node} (measured).")
        return frame
    e = entries.iloc[0]
    backend = f"{e['reply_src']}:{e['reply_sport']}"
    page = (f"; the page names Server address {server}, the same pod" if server == backend else
            f"; the page names Server address {server}" if server else "")
    frame.attrs.update(
        node=node, state=e["state"],
        how=(f"{where}, for the connection curl just opened ({conn_words}, state {e['state']}): the original "
             f"tuple goes to the ClusterIP, the reply comes from {who.get(e['reply_src'], 'address')} {backend}: "
             f"the destination the node's NAT rules chose for the first packet, which conntrack applies to every "
             f"later packet of the connection{page} (measured)."),
        summary=(f"conntrack on node {node}: {conn_words} is answered by {backend} "
                 f"({who.get(e['reply_src'], 'not a pod of ' + namespace)}) (measured)."))
    return frame
