"""The exercises' checks: each returns a `Verdict`, never raises on a wrong or missing answer.

A Verdict is true or false and shows itself in the notebook as one line, 'Right: ...' or
'Not yet: ...' with what to look at or try next. Checks that read the cluster judge its state
as it is now, so a learner can fix the cluster and run the check again.
"""
from __future__ import annotations

import html
import math
import time

import pandas as pd

from . import cidr
from .learner import NAMESPACE, OTHER_SERVICE
from .cluster import Cluster
from .course import CLIENT_VARIABLE, ask, client_env
from .errors import InvalidInput, K8snbError, NotFound
from .manifests import apply, load
from .probe import can_carry_traffic, curl
from .scaling import scale_and_wait
from .servicetypes import NODE_PORT_RANGE, node_port_reach
from .tables import endpoint_records, nodes as nodes_table, selector_text
from .traffic import iptables_probabilities
from .wait import pod_ready

#: Relative tolerance for numeric answers (shares, probabilities).
ANSWER_TOLERANCE = 0.01


class Verdict:
    """An exercise check's answer: true or false, shown in the notebook as one 'Right'/'Not yet' line."""

    def __init__(self, ok: bool, message: str) -> None:
        self.ok = bool(ok)
        self.message = message

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.ok else "#b35900"
        return f'<p style="color:{color};font-weight:bold">{html.escape(self.message)}</p>'


def _verdict(ok: bool, right: str, wrong: str) -> Verdict:
    return Verdict(ok, ("Right: " + right) if ok else ("Not yet: " + wrong))


def _missing(answer) -> bool:
    return answer is None or answer is ... or (isinstance(answer, str) and not answer.strip())


def _close(a: float, b: float) -> bool:
    return math.isclose(float(a), float(b), rel_tol=ANSWER_TOLERANCE, abs_tol=1e-9)


def ready_nodes(nodes: pd.DataFrame) -> list[str]:
    """The names of the nodes whose STATUS is Ready (`k8snb.nodes()`, as `kubectl get nodes` prints it;
    a cordoned node, 'Ready,SchedulingDisabled', is Ready too)."""
    return sorted(nodes.loc[nodes["status"].str.split(",").str[0] == "Ready", "name"])


def check_ready_nodes(cluster: Cluster, answer) -> Verdict:
    """Exercise 00: how many of the cluster's nodes are Ready, read by the learner with kubectl."""
    if _missing(answer):
        return _verdict(False, "", "replace None with a whole number (run `kubectl get nodes` in a terminal).")
    if isinstance(answer, bool) or not isinstance(answer, int):
        return _verdict(False, "", f"{answer!r} is not a whole number.")
    try:
        table = nodes_table(cluster)
    except K8snbError as exc:
        return _verdict(False, "", f"the check cannot list the nodes itself: {exc}")
    ready = ready_nodes(table)
    return _verdict(answer == len(ready), f"{len(ready)} of {len(table)} nodes are Ready: {', '.join(ready)}.",
                    f"{answer} is not it: count the rows whose STATUS is Ready in `kubectl get nodes`.")


def check_same_ip(prediction, change: pd.DataFrame) -> Verdict:
    """Exercise 01: did the replacement pod keep the old pod's IP? (prediction: True or False)."""
    if not isinstance(prediction, bool):
        return _verdict(False, "", "set the prediction to True or False.")
    same = change["ip"].iloc[0] == change["ip"].iloc[1]
    return _verdict(prediction == same,
                    f"the old pod had {change['ip'].iloc[0]}, the new one has {change['ip'].iloc[1]}: "
                    + ("the same address, by chance of the IP allocator." if same else
                       "a new address, which is why clients must not keep pod IPs."),
                    f"look at the 'ip' column of the before/after table: {change['ip'].iloc[0]} vs "
                    f"{change['ip'].iloc[1]}.")


def check_client_target(cluster: Cluster, expected: str = OTHER_SERVICE, namespace: str = NAMESPACE) -> Verdict:
    """Exercise 01: the client now reads `expected` from its ConfigMap and that name answers."""
    try:
        env = client_env(cluster, namespace)
    except K8snbError as exc:
        return _verdict(False, "", f"the client is not ready ({exc}); run the apply cell again.")
    value = env["value"].iloc[0]
    if value != expected:
        return _verdict(False, "", f"the client's {CLIENT_VARIABLE} is {value!r}, not {expected!r}: change "
                        "`new_target` and run the apply cell again.")
    result = ask(cluster, value, namespace)
    return _verdict(bool(result["answered"].iloc[0]),
                    f"the client's {CLIENT_VARIABLE} is {value!r} and that name answers "
                    f"({result['mode'].iloc[0]}): only the ConfigMap changed, not the client.",
                    f"{CLIENT_VARIABLE} is {value!r} but it does not answer: {result['reply'].iloc[0]}")


def check_addresses(answer, vpc_cidr: str = "10.0.0.0/20") -> Verdict:
    """Exercise 02: how many addresses a range holds."""
    if _missing(answer):
        return _verdict(False, "", "replace None with a whole number.")
    total = cidr.addresses(vpc_cidr)
    return _verdict(answer == total, f"{vpc_cidr} holds 2^(32-{vpc_cidr.split('/')[1]}) = {total} addresses.",
                    f"{answer} is not it: a /p holds 2 to the power (32 - p) addresses.")


def check_max_pods(answer, instance_type: str = "m5.large", enis: int | None = None,
                   per_eni: int | None = None) -> Verdict:
    """Exercise 02: EKS max pods for an instance type (VPC CNI, no prefix delegation). A type the
    course's table lacks (so the answer cannot be copied from it) comes with its ENI limits, as the
    question gives them; a type in the table may omit them."""
    if _missing(answer):
        return _verdict(False, "", "replace None with a whole number.")
    if enis is None or per_eni is None:
        enis, per_eni = cidr.eni_limits(instance_type)
    right = cidr.aws_max_pods(enis, per_eni)
    return _verdict(answer == right, f"{enis} x ({per_eni} - 1) + 2 = {right} pods on a {instance_type}.",
                    f"{answer} is not it: ENIs x (IPv4 per ENI - 1) + 2, with {enis} ENIs of {per_eni} addresses.")


def check_rule_probability(answer, endpoints_count: int, rule: int) -> Verdict:
    """Exercise 04: the --probability kube-proxy writes on `rule` (0-based) of a KUBE-SVC chain."""
    if _missing(answer):
        return _verdict(False, "", "replace None with a number between 0 and 1.")
    right = iptables_probabilities(endpoints_count)[rule]
    return _verdict(_close(answer, right),
                    f"rule {rule} of {endpoints_count} matches with probability 1/({endpoints_count} - {rule}) "
                    f"= {right:.4f}; reaching it takes ({endpoints_count - rule}/{endpoints_count}), so the "
                    f"endpoint still gets 1/{endpoints_count}.",
                    f"{answer} is not it: rule i of k matches with probability 1/(k - i).")


# --- break and fix: exercises that change the cluster, checked on it -------------------------------
#: Seconds a check waits for a fixed Service to answer (kube-proxy follows the API a moment later).
FIX_TIMEOUT = 30.0
EXERCISE_SERVICES = {"nginx-typo": "exercise-selector-svc", "nginx-wrongport": "exercise-targetport-svc"}
#: The Service the nodePort exercise creates with the learner's port.
PICKED_NODE_PORT_SERVICE = "nginx-pick"  # listed in course.course_plan()


def _service(cluster: Cluster, service: str, namespace: str) -> dict:
    svc = cluster.api.exists(f"/api/v1/namespaces/{namespace}/services/{service}")
    if svc is None:
        raise NotFound(f"Service {namespace}/{service} does not exist; run the exercise's first cell")
    return svc


def _modeled_reply(cluster: Cluster, svc: dict, ready: list[dict], namespace: str) -> tuple[bool, str]:
    """Whether kube-proxy's DNAT would reach a listening port, from the API: ready endpoints whose
    port one of the selected pods declares (simulated pods run nothing to refuse a connection, so
    the model has only `containerPort` to go by, which on real pods is documentation only)."""
    if not ready:
        return False, "no ready endpoint: kube-proxy would reject the connection"
    selector = selector_text(svc)
    declared = {p.get("containerPort") for pod in cluster.api.list(f"/api/v1/namespaces/{namespace}/pods",
                                                                   labelSelector=selector)
                for c in pod["spec"].get("containers", []) for p in c.get("ports") or []}
    ports = {e["port"] for e in ready}
    if ports & declared:
        return True, f"endpoint port {sorted(ports)} is a declared container port (modeled: containerPort taken as listening)"
    return False, (f"endpoint port {sorted(ports)} is no declared container port {sorted(declared)}: "
                   "the connection would be refused (modeled: containerPort taken as listening)")


def _settled_endpoints(cluster: Cluster, svc: dict, namespace: str) -> list[dict]:
    """The Service's ready endpoints once the EndpointSlice controller has caught up with its selector
    (one per ready pod it matches), at most FIX_TIMEOUT: a Service created or changed a moment ago
    has no endpoints yet, and that moment is not the symptom the exercise is about."""
    service = svc["metadata"]["name"]
    selector = selector_text(svc)
    deadline = time.monotonic() + FIX_TIMEOUT
    while True:
        pods = {p["metadata"]["name"] for p in cluster.api.list(f"/api/v1/namespaces/{namespace}/pods",
                                                                 labelSelector=selector) if pod_ready(p)}
        ready = [e for e in endpoint_records(cluster, namespace, service) if e["ready"]]
        if {e["pod"] for e in ready} == pods or time.monotonic() > deadline:
            return ready
        time.sleep(0.5)


#: How long a symptom waits for kube-proxy to write a new Service's rules (it syncs within a
#: second or two of a change), and how long each try may take.
PROGRAMMED_WAIT, TRY_SECONDS = 20.0, 3.0


def _curl_once_programmed(cluster: Cluster, service: str, namespace: str):
    """`curl -I` the Service once kube-proxy has written its rules. Until it has, the ClusterIP
    leads nowhere and curl times out, whatever is broken; once it has, a Service without endpoints
    is rejected and a wrong targetPort refused at the pod, at once. So a timeout is tried again
    (within PROGRAMMED_WAIT) and the reply shown is always what curl printed on its last try."""
    deadline = time.monotonic() + PROGRAMMED_WAIT
    while True:
        res = curl(cluster, service, namespace=namespace, head=True, timeout=TRY_SECONDS)
        if res.ok or "(28)" not in res.error or time.monotonic() > deadline:
            return res


def symptom(cluster: Cluster, service: str, namespace: str = NAMESPACE) -> pd.DataFrame:
    """What a learner sees of a Service, in one row: selector, targetPort, ready endpoints (address:port),
    whether a request answers and its reply, mode (`kubectl get svc,endpointslices`; curl from netshoot)."""
    svc = _service(cluster, service, namespace)
    ready = _settled_endpoints(cluster, svc, namespace)
    port = (svc["spec"].get("ports") or [{}])[0]
    if can_carry_traffic(cluster):
        res = _curl_once_programmed(cluster, service, namespace)
        answered, reply, mode = res.ok, res.status_line if res.ok else res.error, "measured"
    else:
        answered, reply = _modeled_reply(cluster, svc, ready, namespace)
        mode = "modeled"
    selector = selector_text(svc)
    return pd.DataFrame([{"service": service, "selector": selector, "port": port.get("port"),
                          "targetPort": port.get("targetPort"), "ready_endpoints": len(ready),
                          "endpoints": ", ".join(f"{e['address']}:{e['port']}" for e in ready) or None,
                          "answered": answered, "reply": reply, "mode": mode}])


def break_service(cluster: Cluster, service: str, namespace: str = NAMESPACE) -> pd.DataFrame:
    """Create one of the exercise's broken Services (nginx-typo: a selector matching no pod;
    nginx-wrongport: a targetPort no container listens on) as shipped, and show its symptom."""
    if service not in EXERCISE_SERVICES:
        raise InvalidInput(f"the exercises break only {', '.join(EXERCISE_SERVICES)}, not {service!r}")
    for obj in load(EXERCISE_SERVICES[service], namespace):
        apply(cluster, obj)
    return symptom(cluster, service, namespace)


def fix_service(cluster: Cluster, service: str, selector: dict | None = None, target_port: int | str | None = None,
                namespace: str = NAMESPACE) -> pd.DataFrame:
    """Apply the exercise's Service with the learner's selector and/or targetPort
    (`kubectl edit svc <service>`), and show its symptom again."""
    if service not in EXERCISE_SERVICES:
        raise InvalidInput(f"the exercises fix only {', '.join(EXERCISE_SERVICES)}, not {service!r}")
    obj = load(EXERCISE_SERVICES[service], namespace)[0]
    if selector is not None:
        if not isinstance(selector, dict) or not selector or not all(isinstance(k, str) and isinstance(v, str)
                                                                       for k, v in selector.items()):
            raise InvalidInput(f"the selector must be a dict of label keys to values, like {{'app': 'web'}}, "
                               f"got {selector!r}")
        obj["spec"]["selector"] = selector
    if target_port is not None:
        valid = (isinstance(target_port, int) and not isinstance(target_port, bool) and 1 <= target_port <= 65535) \
            or (isinstance(target_port, str) and target_port.strip() != "")
        if not valid:
            raise InvalidInput(f"targetPort must be a port number 1-65535 or a container port's name, got "
                               f"{target_port!r}")
        obj["spec"]["ports"][0]["targetPort"] = target_port
    apply(cluster, obj)
    return symptom(cluster, service, namespace)


def _wait_fixed(cluster: Cluster, service: str, namespace: str) -> pd.DataFrame:
    """The Service's symptom, waiting up to FIX_TIMEOUT for it to answer when the API says it should
    (ready endpoints on a port a selected container declares): kube-proxy's rules follow a changed
    Service a moment after the API has it. A Service the API already shows broken is not waited for."""
    deadline = time.monotonic() + FIX_TIMEOUT
    while True:
        row = symptom(cluster, service, namespace)
        if bool(row["answered"].iloc[0]) or time.monotonic() > deadline:
            return row
        svc = _service(cluster, service, namespace)
        ready = [e for e in endpoint_records(cluster, namespace, service) if e["ready"]]
        if not _modeled_reply(cluster, svc, ready, namespace)[0]:
            return row
        time.sleep(1.0)


def check_service_fixed(cluster: Cluster, service: str, namespace: str = NAMESPACE) -> Verdict:
    """Exercise 03: the broken Service now has ready endpoints and answers a request."""
    try:
        row = _wait_fixed(cluster, service, namespace).iloc[0]
    except K8snbError as exc:
        return _verdict(False, "", str(exc))
    if row["answered"]:
        return _verdict(True, f"{service} selects {row['selector']}, has {row['ready_endpoints']} ready endpoint(s) "
                              f"({row['endpoints']}) and answers: {row['reply']} ({row['mode']}).", "")
    if not row["ready_endpoints"]:
        labels = sorted({f"{k}={v}" for p in cluster.api.list(f"/api/v1/namespaces/{namespace}/pods")
                         for k, v in (p["metadata"].get("labels") or {}).items() if k != "pod-template-hash"})
        return _verdict(False, "", f"{service} selects {row['selector'] or 'nothing'}, which matches no ready pod, so "
                                   f"it has no endpoints and the request fails ({row['reply']}; {row['mode']}). Labels the pods of "
                                   f"{namespace} carry: {', '.join(labels)}. Compare with `kubectl get pods "
                                   "--show-labels`, set the selector and run the fix cell again.")
    return _verdict(False, "", f"{service} has {row['ready_endpoints']} ready endpoint(s) ({row['endpoints']}) but the "
                               f"request fails: {row['reply']} ({row['mode']}). The endpoints' port is the Service's "
                               "targetPort: does the pods' server listen there? A pod's `containerPort` is "
                               "documentation only (nothing checks it); ask a pod directly: `kubectl get pods -l "
                               "app=nginx -o wide`, then `kubectl exec deploy/netshoot -- curl -sI <pod IP>:<port>` "
                               "for the targetPort and for 80. Set the targetPort that answers and run the fix cell "
                               "again.")


def check_node_port(cluster: Cluster, answer, namespace: str = NAMESPACE) -> Verdict:
    """Exercise 04: create a NodePort Service on the learner's port (`nodePort: <answer>`); right
    when the API accepts it and a node answers on it. A port the API refuses (outside the NodePort
    range, or already allocated) is 'Not yet' with the API's own words."""
    if _missing(answer):
        return _verdict(False, "", "replace None with a port number, for example the article's 30080.")
    if isinstance(answer, bool) or not isinstance(answer, int):
        return _verdict(False, "", f"{answer!r} is not a port number: write it without quotes, like 30080.")
    obj = load("nodeport-svc", namespace)[0]
    obj["metadata"]["name"] = PICKED_NODE_PORT_SERVICE
    obj["spec"]["ports"][0]["nodePort"] = answer
    try:
        apply(cluster, obj)
    except K8snbError as exc:
        if getattr(exc, "status", None) != 422:
            return _verdict(False, "", str(exc))
        words = str(exc).split("failed with HTTP 422: ", 1)[-1].rstrip(".") + "."
        low, high = NODE_PORT_RANGE
        return _verdict(False, "", f"the API server refused nodePort {answer}: {words} NodePorts come from "
                                   f"--service-node-port-range ({low}-{high} unless the cluster says otherwise).")
    try:
        reach = node_port_reach(cluster, PICKED_NODE_PORT_SERVICE, namespace)
    except K8snbError as exc:
        return _verdict(False, "", f"the API accepted nodePort {answer}, but: {exc}")
    answered = reach["answered"].dropna()
    if reach["mode"].iloc[0] == "modeled":
        return _verdict(True, f"the API accepted nodePort {answer}: every node would open it (modeled: simulated "
                              "nodes open no port).", "")
    return _verdict(bool(answered.all()) and len(answered) > 0,
                    f"nodePort {answer} answered on {int(answered.sum())} of {len(reach)} nodes (measured): "
                    f"curl <any node IP>:{answer}.",
                    f"nodePort {answer}: {int(answered.sum())} of {len(reach)} nodes answered.")


def check_prediction(answer, measured: int, what: str, why: str) -> Verdict:
    """Exercises 03: a whole-number prediction against what the cell below it measured."""
    if _missing(answer):
        return _verdict(False, "", "replace None with a whole number, then run the measuring cell again.")
    if isinstance(answer, bool) or not isinstance(answer, int):
        return _verdict(False, "", f"{answer!r} is not a whole number.")
    return _verdict(answer == measured, f"{what}: {measured}, as you predicted. {why}",
                    f"you predicted {answer}, the cluster gave {measured} ({what}). {why}")


def check_affinity_prediction(answer, compare: pd.DataFrame) -> Verdict:
    """Exercise 03: how many pods answered the new connections with sessionAffinity ClientIP."""
    on = compare[compare["session_affinity"] == "ClientIP"].iloc[0]
    return check_prediction(answer, int(on["pods_answering"]),
                            f"pods answering {on['connections']} new connections from one client with ClientIP "
                            f"affinity ({on['mode']})",
                            "kube-proxy remembers each client address's endpoint and sends its every new connection "
                            "there (for 3 hours by default).")


def check_headless_prediction(cluster: Cluster, answer, replicas: int = 3, namespace: str = NAMESPACE) -> Verdict:
    """Exercise 03: scale nginx-hello to `replicas`, apply the headless Service and wait for its
    endpoints, then count the addresses DNS returns for it, against the learner's prediction."""
    if _missing(answer):
        return _verdict(False, "", "replace None with a whole number.")
    from .dns import HEADLESS_SERVICE, apply_headless, headless_vs_clusterip

    scale_and_wait(cluster, replicas, namespace=namespace)
    apply_headless(cluster, namespace)  # applied earlier in notebook 03; again here, so the check stands alone
    frame = headless_vs_clusterip(cluster, namespace=namespace)
    row = frame[frame["service"] == HEADLESS_SERVICE].iloc[0]
    got = len(row["dns_answer"].split(", ")) if row["dns_answer"] else 0
    return check_prediction(answer, got, f"addresses DNS returned for {HEADLESS_SERVICE} at {replicas} replicas "
                                         f"({row['mode']}: {row['dns_answer']})",
                            "A headless Service has no ClusterIP: DNS answers with every ready pod's address.")
