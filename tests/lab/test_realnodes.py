"""Acceptance of the lab's real nodes, against a running `k8snb lab up --nodes real`.

The lab is found through K8SNB_STATE (its plan.json and kubeconfig); the article's manifests are
applied unchanged, and every check runs from inside the netshoot pod with `kubectl exec`, as a
learner would, except the NodePort and host-network checks, which run from the host.

Run (as root, lab started with the same K8SNB_STATE):
    K8SNB_STATE=/tmp/k8snb-real-state pytest tests/e2e/test_realnodes.py -m realnodes -v
K8SNB_TEST_LAB_DOWN=1 adds the last check: `down` leaves nothing of the lab on the host.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from k8snb.lab.plan import state_dir
from k8snb.traffic import parse_hello
from labtools import RunningLab, ip_json, leftovers

pytestmark = pytest.mark.realnodes

MANIFESTS = Path(__file__).resolve().parents[2] / "k8snb" / "manifests"
APPLIED = ("nginx-deploy", "clusterip-svc", "netshoot", "nginx-namespace", "nodeport-svc")
REQUESTS = 500
REPLICAS = 5


class Lab(RunningLab):
    """The running real lab, with the article's client and server pods at hand."""

    def netshoot(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run argv in the netshoot pod."""
        return self.kubectl("exec", "deploy/netshoot", "--", *argv, check=check)

    def nginx_pods(self) -> list[dict]:
        return [p for p in self.pods("-l", "app=nginx") if p["metadata"].get("deletionTimestamp") is None]


@pytest.fixture(scope="module")
def lab() -> Lab:
    state = state_dir()
    plan_file = state / "plan.json"
    if not plan_file.exists() or json.loads(plan_file.read_text())["nodes_mode"] != "real":
        reason = f"no real-nodes lab in {state} (start one: k8snb lab up --nodes real)"
        if os.environ.get("K8SNB_REQUIRE_REAL"):
            pytest.fail(f"K8SNB_REQUIRE_REAL is set but there is {reason}")
        pytest.skip(reason)
    return Lab(state)


@pytest.fixture(scope="module")
def workload(lab: Lab):
    """The article's Deployments and Services, applied unchanged; removed afterwards."""
    files = [f"--filename={MANIFESTS / name}.yaml" for name in APPLIED]
    lab.kubectl("apply", *files)
    for namespace in ("default", "nginx"):  # only the article's: other tests' namespaces may be going away
        lab.kubectl("wait", "--for=condition=Available", "deployment", "--all", "-n", namespace, "--timeout=180s",
                    timeout=200)
    # Ready endpoints reach kube-proxy's rules a moment later (its sync period): wait for answers.
    for service in ("nginx-svc", "nginx.nginx"):
        deadline = time.monotonic() + 30
        while lab.netshoot("curl", "-sS", "-o", "/dev/null", "--max-time", "2", service, check=False).returncode:
            assert time.monotonic() < deadline, f"{service} did not answer within 30 s of its pods being Available"
            time.sleep(0.5)
    yield lab
    if (lab.state / "kubeconfig").exists():  # not when the last test stopped the lab
        lab.kubectl("delete", "--ignore-not-found", "--wait=false", *files)


def _rollout(lab: Lab) -> None:
    lab.kubectl("rollout", "status", "deployment/nginx-hello", "--timeout=120s", timeout=150)


def test_curl_head_nginx_svc(workload: Lab):
    head = workload.netshoot("curl", "-sSI", "nginx-svc").stdout
    assert head.splitlines()[0].strip() == "HTTP/1.1 200 OK"
    assert re.search(r"^Server: nginx/\d", head, re.MULTILINE), head


def test_nslookup_names_the_service(workload: Lab):
    cluster_ip = workload.json("get", "service", "nginx-svc")["spec"]["clusterIP"]
    out = workload.netshoot("nslookup", "nginx-svc").stdout
    assert re.search(rf"^Server:\s+{re.escape(workload.plan.dns_ip)}$", out, re.MULTILINE), out
    assert re.search(r"^Name:\s+nginx-svc\.default\.svc\.cluster\.local$", out, re.MULTILINE), out
    assert re.search(rf"^Address:\s+{re.escape(cluster_ip)}$", out, re.MULTILINE), out


def test_short_names_resolve_only_in_their_namespace(workload: Lab):
    fields = parse_hello(workload.netshoot("curl", "-sS", "http://nginx.nginx/plain").stdout)
    assert fields["server_address"] and fields["server_address"].endswith(":80")
    failed = workload.netshoot("curl", "-sS", "http://nginx", check=False)
    assert failed.returncode != 0
    assert "Could not resolve host" in failed.stderr


def test_names_outside_the_cluster_do_not_resolve(workload: Lab):
    """No upstream DNS: CoreDNS answers SERVFAIL at once instead of forwarding off the machine."""
    out = workload.netshoot("dig", "+tries=1", "+time=3", "example.com", check=False).stdout
    assert "status: SERVFAIL" in out


def test_both_page_variants_parse(workload: Lab):
    html = parse_hello(workload.netshoot("curl", "-sS", "http://nginx-svc/").stdout)
    plain = parse_hello(workload.netshoot("curl", "-sS", "http://nginx-svc/?plain").stdout)
    netshoot_ip = workload.json("get", "pods", "-l", "app=netshoot")["items"][0]["status"]["podIP"]
    for fields in (html, plain):
        assert all(fields[k] for k in ("server_address", "server_name", "date", "uri", "request_id"))
        assert fields["client_address"].split(":")[0] == netshoot_ip
    assert plain["uri"] == "/?plain"


def _answers(lab: Lab, requests: int) -> list[dict]:
    """`requests` answers through nginx-svc. curl's URL range makes the requests; `Connection:
    close` gives each its own connection, so kube-proxy picks a backend for every one of them."""
    body = lab.netshoot("curl", "-sS", "-H", "Connection: close", f"http://nginx-svc/plain?[1-{requests}]").stdout
    return [parse_hello("Server address:" + part) for part in body.split("Server address:")[1:]]


def _wait_programmed(lab: Lab, names: set[str], timeout: float = 30) -> None:
    """Ready pods reach kube-proxy's rules a moment later (EndpointSlice, then an iptables sync):
    wait until every replica has answered once before measuring."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not names <= seen:
        seen |= {a["server_name"] for a in _answers(lab, 20)}
    assert names <= seen, f"replicas never answered through the Service: {names - seen}"


def test_scaled_replicas_share_new_connections(workload: Lab):
    workload.kubectl("scale", "deployment/nginx-hello", f"--replicas={REPLICAS}")
    try:
        _rollout(workload)
        pods = workload.nginx_pods()
        assert len(pods) == REPLICAS
        assert len({p["spec"]["nodeName"] for p in pods}) > 1, "all replicas landed on one node"
        _wait_programmed(workload, {p["metadata"]["name"] for p in pods})
        counts = Counter(a["server_name"] for a in _answers(workload, REQUESTS))
        print(f"{REQUESTS} requests over {REPLICAS} replicas: {dict(counts)}")
        assert sum(counts.values()) == REQUESTS
        assert set(counts) == {p["metadata"]["name"] for p in pods}, counts
        assert min(counts.values()) >= 50, counts
    finally:
        workload.kubectl("scale", "deployment/nginx-hello", "--replicas=1")


def test_replaced_pod_gets_a_new_ip_and_service_keeps_answering(workload: Lab):
    _rollout(workload)
    old = workload.nginx_pods()[0]
    workload.kubectl("delete", "pod", old["metadata"]["name"], "--wait=false")
    deadline = time.monotonic() + 90
    new: list[dict] = []
    while time.monotonic() < deadline:
        new = [p for p in workload.nginx_pods() if p["metadata"]["name"] != old["metadata"]["name"]
               and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
        if new:
            break
        time.sleep(1)
    assert new, "no replacement pod became Ready"
    assert new[0]["status"]["podIP"] != old["status"]["podIP"]
    _wait_programmed(workload, {new[0]["metadata"]["name"]})


def _get_from_host(url: str, timeout: float = 30) -> tuple[int, str]:
    """GET `url` from the host, retrying refused connections for up to `timeout` s: each node's
    kube-proxy follows endpoint changes (the tests before this one replace and scale pods) on its
    own sync, and until then a NodePort whose endpoints just changed may be rejected on that node."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_nodeport_answers_on_every_node_from_the_host(workload: Lab):
    port = workload.json("get", "service", "nginx-nodeport")["spec"]["ports"][0]["nodePort"]
    for node, ip in workload.plan.node_ips().items():
        status, body = _get_from_host(f"http://{ip}:{port}/plain")
        assert status == 200, node
        assert parse_hello(body)["server_address"], node


def test_nodes_are_real_and_ready(lab: Lab):
    nodes = {n["metadata"]["name"]: n for n in lab.json("get", "nodes")["items"]}
    assert set(nodes) == set(lab.plan.node_names)
    for name, ip in lab.plan.node_ips().items():
        status = nodes[name]["status"]
        assert status["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://2.")
        assert {"type": "InternalIP", "address": ip} in status["addresses"]
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])


def test_pod_and_service_ranges_stay_in_the_lab(lab: Lab):
    """Host routes for pod/service ranges point into the lab or nowhere; nothing leaves the bridge.

    Routed: the pod range is a blackhole but for per-node /24s via node IPs. Flat: no route of its
    own; the pods are part of the bridge's connected subnet, reached by (proxy) ARP on k8snb0 only.
    """
    plan = lab.plan
    node_ips = set(plan.node_ips().values())
    routes = ip_json("route", "show")
    pods = ipaddress.ip_network(plan.pod_cidr)
    covering = [r for r in routes if r["dst"] != "default"
                and pods.overlaps(ipaddress.ip_network(r["dst"] if "/" in r["dst"] else r["dst"] + "/32"))]
    if plan.network == "routed":
        assert any(r["dst"] == plan.pod_cidr and r.get("type") == "blackhole" for r in covering)
        for r in covering:
            if r.get("type") != "blackhole":
                assert r.get("gateway") in node_ips and r.get("dev") == "k8snb0", r
    else:
        assert covering == [r for r in routes if r["dst"] == plan.node_subnet], covering
        assert all(r.get("dev") == "k8snb0" and "gateway" not in r for r in covering), covering
    service = [r for r in routes if r["dst"] == plan.service_cidr]
    assert service and all(r.get("gateway") in node_ips for r in service)
    for node in plan.node_names:
        assert not [r for r in ip_json("-n", node, "route", "show") if r["dst"] == "default"], node
    rules = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^-A FORWARD -i k8snb0 ! -o k8snb0 .*-j DROP$", rules, re.MULTILINE), rules
    assert f"-A INPUT -d {plan.node_subnet} " in rules, "the guard chain must cover the whole node subnet"
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
    assert "MASQUERADE" not in "\n".join(line for line in nat.splitlines() if "k8snb0" in line or plan.pod_cidr in line)


@pytest.mark.optin("K8SNB_TEST_LAB_DOWN")  # stops the lab
def test_down_leaves_nothing(lab: Lab):
    from k8snb.lab import down

    down()
    assert leftovers(lab.state, lab.plan.node_names) == []
