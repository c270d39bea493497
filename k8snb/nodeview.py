"""A node's own tables, read from a pod on that node: kube-proxy's rules and the conntrack table.

A Service's load balancing happens in each node's kernel: kube-proxy writes NAT rules (iptables,
nftables or IPVS), and conntrack remembers for every connection which pod its first packet was sent
to. Neither is in the API. The course reads them the way `kubectl debug node/<node>` does: a pod
pinned to the node (`nodeName`), sharing the node's network (`hostNetwork`) and allowed to read its
netfilter tables (`privileged`), running netshoot's iptables-save, conntrack, nft and ipvsadm as argv
lists. The pod is labelled part-of=k8snb like everything the course creates, so `cleanup` removes it.

That pod is exactly what a restricted cluster refuses (PodSecurity 'baseline' or 'restricted',
GKE Autopilot, an account without 'create pods'): `node_pod` then raises one line saying who refused
and why, and the caller models instead and says so.

Pure parsers (`pick_iptables_save`, `proxy_mode_from_config`, `proxy_mode_from_rules`,
`parse_conntrack`) are unit-tested on recorded output.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

import pandas as pd
import yaml

from .cluster import Cluster
from .learner import NAMESPACE
from .errors import Conflict, ExecFailed, Forbidden, K8snbError, NotFound, NotReadyInTime
from .manifests import COURSE, PART_OF, ensure_namespace, ours
from .names import dns_label, dns_subdomain
from .probe import TOOL_MISSING, ExecResult, exec_argv
from .wait import FATAL_REASONS, _changed, last_event, pod_problem, pod_ready

NODE_POD_PREFIX = "k8snb-node-"
#: The `app` label of the node pods (never `netshoot`: the course's client is found by that label).
NODE_POD_APP = "k8snb-node-view"
NODE_POD_IMAGE = "nicolaka/netshoot"
NODE_POD_CONTAINER = "node"
#: Seconds for a node pod to become ready (the image is usually on the node already: netshoot).
NODE_POD_TIMEOUT = 90.0
#: Seconds one command in a node pod may take.
NODE_EXEC_TIMEOUT = 30.0
#: The savers tried for kube-proxy's NAT rules: the nf_tables and the legacy backend, then the
#: image's default. `-c` adds each rule's packet and byte counters.
IPTABLES_SAVERS = ("iptables-nft-save", "iptables-legacy-save", "iptables-save")
PROXY_MODES = ("iptables", "nftables", "ipvs")


# --- the node pod ----------------------------------------------------------------------------------
def node_pod_name(node: str) -> str:
    """The node pod's name: k8snb-node-<node>, or a hashed suffix when that would be too long."""
    dns_subdomain(node, "node name")
    name = NODE_POD_PREFIX + node
    if len(name) > 63:  # keep it a label too, so that it reads well in tables and errors
        name = NODE_POD_PREFIX + node[:40].rstrip("-.") + "-" + hashlib.sha256(node.encode()).hexdigest()[:8]
    return name.replace(".", "-")


def node_pod_manifest(node: str, namespace: str = NAMESPACE) -> dict:
    """The privileged, host-network pod that reads `node`'s tables (it only sleeps otherwise)."""
    dns_label(namespace, "namespace")
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": node_pod_name(node), "namespace": namespace,
                     "labels": {PART_OF: COURSE, "app": NODE_POD_APP}},
        "spec": {
            "nodeName": node,
            "hostNetwork": True,
            "dnsPolicy": "ClusterFirstWithHostNet",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,
            "restartPolicy": "Always",
            # nodeName skips the scheduler, not the taints: a control-plane node's NoSchedule taint
            # would still make the kubelet refuse the pod.
            "tolerations": [
                {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
            ],
            "containers": [{
                "name": NODE_POD_CONTAINER, "image": NODE_POD_IMAGE, "command": ["sleep", "infinity"],
                "securityContext": {"privileged": True},
            }],
        },
    }


def _refused(status: int, body: dict, where: str, node: str) -> K8snbError:
    """One line for a node pod the API server refused (PodSecurity, RBAC, a policy webhook ...)."""
    message = " ".join(str(body.get("message") or body.get("reason") or f"HTTP {status}").split())
    cls = Forbidden if status == 403 else K8snbError
    return cls(f"the cluster refused the course's privileged pod {where} on node {node} "
               f"(HTTP {status}): {message}", status=status, reason=body.get("reason"))


def _wait_gone(cluster: Cluster, path: str, deadline: float) -> None:
    while cluster.api.exists(path, deadline=deadline) is not None:
        if time.monotonic() > deadline:
            raise NotReadyInTime(f"the old node pod {path.rsplit('/', 1)[1]} is still terminating; run the cell again")
        time.sleep(0.5)


def node_pod(cluster: Cluster, node: str, namespace: str = NAMESPACE, timeout: float = NODE_POD_TIMEOUT) -> str:
    """The name of a ready node pod on `node`, created when missing. Bounded by `timeout`.

    Raises Forbidden (or K8snbError) with one line when the API server refuses the pod, NotReadyInTime
    naming the cluster's reason (ErrImagePull, CreateContainerError ...) when it does not start, and
    Conflict when a pod of that name exists without the course's label.
    """
    manifest = node_pod_manifest(node, namespace)
    name = manifest["metadata"]["name"]
    where = f"{namespace}/{name}"
    path = f"/api/v1/namespaces/{namespace}/pods/{name}"
    deadline = time.monotonic() + timeout
    existing = cluster.api.exists(path, deadline=deadline)
    if existing is not None and not ours(existing):
        raise Conflict(f"pod {where} exists and was not created by the course (it lacks the label "
                       f"{PART_OF}={COURSE}); it was left untouched")
    if existing is not None and (existing["metadata"].get("deletionTimestamp")
                                 or existing.get("status", {}).get("phase") in ("Failed", "Succeeded")):
        cluster.api.delete(path, deadline=deadline)
        _wait_gone(cluster, path, deadline)
        existing = None
    if existing is None:
        ensure_namespace(cluster, namespace)
        resp = cluster.api.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=manifest,
                                   ok=(400, 403, 409, 422), deadline=deadline)
        if resp.status != 409 and resp.status >= 400:
            raise _refused(resp.status, resp.json() or {}, where, node)
    return _wait_ready(cluster, namespace, name, deadline, timeout)


def _wait_ready(cluster: Cluster, namespace: str, name: str, deadline: float, timeout: float) -> str:
    path = f"/api/v1/namespaces/{namespace}/pods"
    while True:
        pods, version = cluster.api.snapshot(path, deadline=deadline, fieldSelector=f"metadata.name={name}")
        pod = pods[0] if pods else None
        if pod is not None and pod_ready(pod):
            return name
        problem = pod_problem(pod) if pod is not None else None
        left = deadline - time.monotonic()
        if problem is not None and (problem.reason in FATAL_REASONS or left <= 0):
            event = last_event(cluster, namespace, name)
            raise NotReadyInTime(f"node pod {namespace}/{name} did not start: {problem.reason}"
                                 + (f": {' '.join(problem.message.split())}" if problem.message else "")
                                 + (f"; last event: {event}" if event else ""))
        if left <= 0:
            state = pod.get("status", {}).get("phase", "?") if pod is not None else "missing"
            event = last_event(cluster, namespace, name)
            raise NotReadyInTime(f"node pod {namespace}/{name} not ready within {timeout:.0f} s ({state})"
                                 + (f"; last event: {event}" if event else ""))
        _changed(cluster, path, min(left, 2.0), fieldSelector=f"metadata.name={name}", resourceVersion=version)


def run_on_node(cluster: Cluster, node: str, argv: list[str], namespace: str = NAMESPACE,
                timeout: float = NODE_EXEC_TIMEOUT) -> ExecResult:
    """Run `argv` (a list, no shell) on `node`, in the node's network namespace, through its node pod."""
    pod = node_pod(cluster, node, namespace)
    return exec_argv(cluster, pod, argv, namespace, container=NODE_POD_CONTAINER, timeout=timeout)


# --- kube-proxy's rules ----------------------------------------------------------------------------
_RULE = re.compile(r"^(?:\[\d+:\d+\]\s+)?-A KUBE-", re.MULTILINE)


def pick_iptables_save(outputs: dict[str, str]) -> tuple[str, str] | None:
    """(saver, text) of the iptables backend kube-proxy writes to, from {saver: its output}.

    kube-proxy's table is the one holding KUBE-SERVICES; when several do (a node that switched
    backends keeps stale rules in the other), the one with the most KUBE- rules. None when none does.
    """
    holding = [(saver, text) for saver, text in outputs.items() if text and "KUBE-SERVICES" in text]
    if not holding:
        return None
    return max(holding, key=lambda item: len(_RULE.findall(item[1])))


@dataclass(frozen=True)
class NatRules:
    node: str
    command: str  # what printed them: `iptables-nft-save -t nat -c` ...
    text: str  # its output (with `-c`, each rule's [packets:bytes] counters)
    via: str  # how the course got onto the node: 'pod <namespace>/<name>' ...


def read_nat(cluster: Cluster, node: str, namespace: str = NAMESPACE) -> NatRules | None:
    """kube-proxy's NAT rules on `node` (`iptables-*-save -t nat -c`), from the backend holding
    KUBE-SERVICES; None when no backend holds any (kube-proxy in nftables mode, or no kube-proxy).

    The nf_tables backend is read first and the legacy one only when it holds no KUBE-SERVICES:
    reading legacy tables makes the kernel create them (and every later iptables-nft-save warns
    that legacy tables are present), so a node that does not use them is left as it was."""
    pod = node_pod(cluster, node, namespace)
    outputs = {}
    ran = set()
    for saver in IPTABLES_SAVERS:
        if saver == "iptables-save" and len(ran) == 2:
            break  # the plain saver is one of the two backends already tried
        argv = [saver, "-t", "nat", "-c"]
        try:
            res = exec_argv(cluster, pod, argv, namespace, container=NODE_POD_CONTAINER, timeout=NODE_EXEC_TIMEOUT)
        except ExecFailed as exc:
            if exc.reason != TOOL_MISSING:
                raise
            continue  # this image has no such saver: try the next
        ran.add(saver)
        if res.exit_code == 0:  # a backend whose tables the kernel lacks exits non-zero: nothing there
            outputs[" ".join(argv)] = res.stdout
            if "KUBE-SERVICES" in res.stdout:
                break
    picked = pick_iptables_save(outputs)
    return NatRules(node, picked[0], picked[1], f"pod {namespace}/{pod}") if picked else None


def proxy_mode_from_config(configmap: dict) -> tuple[str, str] | None:
    """(mode, how) from the kube-proxy ConfigMap of kube-system (kubeadm's, kind's, minikube's):
    its `config.conf` (a KubeProxyConfiguration) says `mode:`; an empty mode is kube-proxy's
    default on Linux, iptables. None when the ConfigMap holds no such configuration."""
    for key, text in (configmap.get("data") or {}).items():
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "KubeProxyConfiguration":
            mode = str(doc.get("mode") or "").strip().lower()
            if mode:
                return mode, f"`mode: {mode}` in ConfigMap kube-system/kube-proxy"
            return "iptables", "ConfigMap kube-system/kube-proxy leaves `mode` empty: kube-proxy's default, iptables"
    return None


def proxy_mode_from_rules(iptables_save: str | None, nft_table: str | None, ipvs_list: str | None) -> str | None:
    """kube-proxy's mode from what a node holds: KUBE-SVC chains (iptables), the `kube-proxy` table of
    `nft list table ip kube-proxy` (nftables), virtual servers in `ipvsadm -Ln` (ipvs). IPVS mode
    also writes a KUBE-SERVICES chain, but no KUBE-SVC chain. None when none of them is there."""
    if iptables_save and re.search(r"^(?:\[\d+:\d+\]\s+)?-A KUBE-SVC-", iptables_save, re.MULTILINE):
        return "iptables"
    if nft_table and re.search(r"^\s*table ip kube-proxy\b", nft_table, re.MULTILINE):
        return "nftables"
    if ipvs_list and re.search(r"^(TCP|UDP|SCTP)\s+\S+", ipvs_list, re.MULTILINE):
        return "ipvs"
    return None


def _look(cluster: Cluster, node: str, argv: list[str], namespace: str) -> str | None:
    """stdout of argv on the node; '' when it fails (no such table, no kernel module: nothing
    there); None when the node pod's image lacks the program (nothing could be checked)."""
    try:
        res = run_on_node(cluster, node, argv, namespace)
    except ExecFailed as exc:
        if exc.reason != TOOL_MISSING:
            raise
        return None
    return res.stdout if res.exit_code == 0 else ""


def kube_proxy_mode(cluster: Cluster, node: str | None = None, namespace: str = NAMESPACE,
                    nat: NatRules | None = None) -> tuple[str | None, str]:
    """(mode, how it was found): from the kube-proxy ConfigMap when readable, else from the rules on
    `node` (read through its node pod; `nat` is what `read_nat` found there). Mode None when neither
    tells: the cluster may route Services without kube-proxy (Cilium, Calico eBPF ...)."""
    try:
        cm = cluster.api.exists("/api/v1/namespaces/kube-system/configmaps/kube-proxy")
    except K8snbError:  # not allowed to read kube-system (a learner's account), or the API faltered
        cm = None
    found = proxy_mode_from_config(cm) if cm else None
    if found:
        return found
    if node is None:
        return None, "no kube-proxy ConfigMap could be read, and no node was looked at"
    if nat is not None and proxy_mode_from_rules(nat.text, None, None):
        return "iptables", f"KUBE-SVC chains in `{nat.command}` on node {node}"
    nft = _look(cluster, node, ["nft", "list", "table", "ip", "kube-proxy"], namespace)
    if proxy_mode_from_rules(None, nft, None):
        return "nftables", f"table ip kube-proxy in `nft list table ip kube-proxy` on node {node}"
    ipvs = _look(cluster, node, ["ipvsadm", "-Ln"], namespace)
    if proxy_mode_from_rules(None, None, ipvs):
        return "ipvs", f"IPVS virtual servers in `ipvsadm -Ln` on node {node}"
    missing = [tool for tool, out in (("nft", nft), ("ipvsadm", ipvs)) if out is None]
    checked = ["KUBE-SVC chains (iptables)"] + [what for what, out in (
        ("table ip kube-proxy (nftables)", nft), ("IPVS virtual servers (ipvs)", ipvs)) if out is not None]
    return None, (f"no kube-proxy ConfigMap, and none of {', '.join(checked)} on node {node}"
                  + (f" ({' and '.join(missing)} not in the node pod's image: not checked)" if missing else ""))


# --- conntrack -------------------------------------------------------------------------------------
CONNTRACK_COLUMNS = ["protocol", "state", "orig_src", "orig_sport", "orig_dst", "orig_dport",
                     "reply_src", "reply_sport", "reply_dst", "reply_dport", "assured", "seconds_left"]


def parse_conntrack(text: str) -> pd.DataFrame:
    """`conntrack -L` output as a table, one row per entry (CONNTRACK_COLUMNS).

    Each entry carries two tuples: the original direction (what the client sent: to the ClusterIP)
    and the reply direction (what the kernel expects back: from the pod kube-proxy's DNAT chose).
    Lines that are not entries (conntrack's '... flow entries have been shown.') are skipped.
    """
    rows = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 4 or words[0] not in ("tcp", "udp", "sctp", "icmp", "icmpv6", "udplite", "dccp"):
            continue
        pairs = [w.split("=", 1) for w in words if "=" in w]
        tuples: dict[str, list[str]] = {}
        for key, value in pairs:
            tuples.setdefault(key, []).append(value)
        if len(tuples.get("src", [])) < 2 or len(tuples.get("dst", [])) < 2:
            continue
        state = next((w for w in words[3:] if w.isupper() and "=" not in w and not w.startswith("[")), None)
        sports, dports = tuples.get("sport", [None, None]), tuples.get("dport", [None, None])
        rows.append({
            "protocol": words[0], "state": state,
            "orig_src": tuples["src"][0], "orig_sport": _port(sports[0]),
            "orig_dst": tuples["dst"][0], "orig_dport": _port(dports[0]),
            "reply_src": tuples["src"][1], "reply_sport": _port(sports[1] if len(sports) > 1 else None),
            "reply_dst": tuples["dst"][1], "reply_dport": _port(dports[1] if len(dports) > 1 else None),
            "assured": "[ASSURED]" in words,
            "seconds_left": int(words[2]) if words[2].isdigit() else None,
        })
    return pd.DataFrame(rows, columns=CONNTRACK_COLUMNS)


def _port(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def conntrack_argv(dst: str, dport: int, src: str | None = None, sport: int | None = None) -> list[str]:
    """`conntrack -L` for TCP entries whose original direction went to dst:dport (from src:sport)."""
    argv = ["conntrack", "-L", "-p", "tcp", "--orig-dst", dst, "--dport", str(int(dport))]
    if src:
        argv += ["--orig-src", src]
    if sport is not None:
        argv += ["--sport", str(int(sport))]
    return argv


def read_conntrack(cluster: Cluster, node: str, dst: str, dport: int, src: str | None = None,
                   sport: int | None = None, namespace: str = NAMESPACE) -> pd.DataFrame:
    """The conntrack entries on `node` for TCP connections to dst:dport (from src:sport when given)."""
    res = run_on_node(cluster, node, conntrack_argv(dst, dport, src, sport), namespace)
    if res.exit_code != 0:
        raise ExecFailed(f"conntrack -L on node {node} exited {res.exit_code}: {' '.join(res.stderr.split())[:300]}",
                         stdout=res.stdout, stderr=res.stderr)
    return parse_conntrack(res.stdout)


# --- one request of the learner's, and its entry ---------------------------------------------------
_WRITE_OUT = "__k8snb_conn__"


def one_request_argv(url: str) -> list[str]:
    """curl sending one request on a new connection, then printing the connection's own addresses."""
    return ["curl", "-sS", "--max-time", "5", "-H", "Connection: close", "-w",
            f"\n{_WRITE_OUT} %{{local_ip}} %{{local_port}} %{{remote_ip}} %{{remote_port}} %{{http_code}}\n", url]


@dataclass(frozen=True)
class Connection:
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    http_code: str
    body: str


def parse_one_request(stdout: str) -> Connection:
    """The addresses curl printed after `one_request_argv`'s request (and the page it got)."""
    body, _, tail = stdout.rpartition(_WRITE_OUT)
    words = tail.split()
    if len(words) < 5 or not words[1].isdigit() or not words[3].isdigit():
        raise NotFound(f"curl printed no connection addresses: {' '.join(stdout.split())[-200:]!r}")
    return Connection(words[0], int(words[1]), words[2], int(words[3]), words[4], body)
