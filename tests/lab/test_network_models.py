"""The lab's two network models on real nodes: where pod IPs come from, what a cross-node request
carries as its source (with kubectl and with `k8snb.pod_to_pod`), what `k8snb.network_model`
concludes, and what each node's tables show.

By default this checks the real lab that runs (found through K8SNB_STATE), whichever its model.
With K8SNB_TEST_MODELS=1 it starts each model in turn itself (`down`, then `up --network routed`,
then `up --network flat`, on K8SNB_TEST_PORT / K8SNB_TEST_ETCD_PORT, default 6543 / 12479), checks
both, and checks that `down` leaves nothing of either behind. Run as root:

    K8SNB_STATE=/tmp/k8snb-flat-state pytest tests/e2e/test_network_models.py -m realnodes -v
"""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import k8snb
from k8snb import lab as k8snb_lab
from k8snb import podnet
from k8snb.lab.plan import LabPlan, state_dir
from k8snb.traffic import parse_hello
from labtools import RunningLab, ip_json

pytestmark = pytest.mark.realnodes

SWITCH = bool(os.environ.get("K8SNB_TEST_MODELS"))
NAMESPACE = "k8snb-models"
CLIENT_NODE, SERVER_NODE = "k8snb-worker", "k8snb-worker2"
#: What the classifier, told nothing about the lab, must conclude for each model.
VERDICTS = {"routed": "separate", "flat": "flat"}


def _leftovers(plan: LabPlan) -> list[str]:
    """What of a lab would still be on the host: namespaces, links, routes into its ranges, rules, mounts."""
    found = [f"netns {n}" for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                  text=True).stdout.split() if n in plan.node_names]
    found += [f"link {link['ifname']}" for link in ip_json("link", "show")
              if link["ifname"].startswith(("k8snb", "cni0"))]
    ranges = [ipaddress.ip_network(r) for r in (plan.node_subnet, plan.pod_cidr, plan.service_cidr)]
    for route in ip_json("route", "show"):
        if route["dst"] != "default" and any(
                ipaddress.ip_network(route["dst"] if "/" in route["dst"] else route["dst"] + "/32").overlaps(r)
                for r in ranges):
            found.append(f"route {route['dst']}")
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    found += [f"rule {line}" for line in saved.splitlines() if "k8snb" in line.lower() or "KUBE-" in line]
    state = str(state_dir().resolve())
    found += [f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split()[4].startswith(state)]
    return found


def _start(model: str) -> RunningLab:
    k8snb_lab.down(quiet=True)
    k8snb_lab.up(LabPlan(nodes_mode="real", network=model,
                         api_port=int(os.environ.get("K8SNB_TEST_PORT", "6543")),
                         etcd_port=int(os.environ.get("K8SNB_TEST_ETCD_PORT", "12479"))))
    return RunningLab(state_dir())


@pytest.fixture(scope="module", params=["routed", "flat"] if SWITCH else ["running"])
def lab(request) -> RunningLab:
    """Each model in turn (K8SNB_TEST_MODELS=1), or the real lab that runs."""
    if SWITCH:
        if os.geteuid() != 0:
            pytest.skip("K8SNB_TEST_MODELS=1 starts real labs, which needs root")
        yield _start(request.param)
        k8snb_lab.down(quiet=True)
        return
    plan_file = state_dir() / "plan.json"
    if not plan_file.exists() or json.loads(plan_file.read_text())["nodes_mode"] != "real":
        reason = f"no real-nodes lab in {state_dir()} (start one, or set K8SNB_TEST_MODELS=1)"
        if os.environ.get("K8SNB_REQUIRE_REAL"):
            pytest.fail(f"K8SNB_REQUIRE_REAL is set but there is {reason}")
        pytest.skip(reason)
    yield RunningLab(state_dir())


MANIFEST = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}, labels: {{app.kubernetes.io/part-of: k8snb}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: server, namespace: {NAMESPACE}, labels: {{app.kubernetes.io/part-of: k8snb, app: nginx}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {SERVER_NODE}}}
  containers: [{{name: hello, image: nginxdemos/hello, ports: [{{containerPort: 80}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {NAMESPACE}, labels: {{app.kubernetes.io/part-of: k8snb, app: netshoot}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {CLIENT_NODE}}}
  containers: [{{name: netshoot, image: nicolaka/netshoot, command: [sleep, infinity]}}]
"""


@pytest.fixture(scope="module")
def pair(lab: RunningLab):
    """A hello server on one worker and a netshoot client on the other: (client pod, server pod)."""
    lab.kubectl("apply", "-f", "-", stdin=MANIFEST)
    lab.kubectl("wait", "--for=condition=Ready", "pod", "--all", "-n", NAMESPACE, "--timeout=150s")
    pods = {p["metadata"]["name"]: p for p in lab.pods("-n", NAMESPACE)}
    yield pods["client"], pods["server"]
    if (lab.state / "kubeconfig").exists():  # not when a test stopped the lab
        lab.kubectl("delete", "namespace", NAMESPACE, "--wait=false", "--ignore-not-found")


def test_pod_ips_lie_in_the_node_subnet_only_when_flat(lab: RunningLab, pair):
    subnet = ipaddress.ip_network(lab.plan.node_subnet)
    pods = [p for p in lab.pods("--all-namespaces") if not p["spec"].get("hostNetwork") and p["status"].get("podIP")]
    assert len(pods) >= 3, "CoreDNS and the two test pods at least"
    inside = {p["metadata"]["name"]: ipaddress.ip_address(p["status"]["podIP"]) in subnet for p in pods}
    print(f"{lab.plan.network}: node subnet {subnet}, pod IPs "
          + ", ".join(f"{p['metadata']['name']}={p['status']['podIP']}" for p in pods))
    assert all(inside.values()) if lab.plan.network == "flat" else not any(inside.values()), inside


def test_cross_node_request_arrives_from_the_client_pod_ip(lab: RunningLab, pair):
    client, server = pair
    assert client["spec"]["nodeName"] != server["spec"]["nodeName"]
    body = lab.kubectl("exec", "-n", NAMESPACE, "client", "--", "curl", "-sS", "--max-time", "5",
                       f"http://{server['status']['podIP']}/plain").stdout
    seen = parse_hello(body)["client_address"]
    print(f"{lab.plan.network}: {client['status']['podIP']} on {client['spec']['nodeName']} -> "
          f"{server['status']['podIP']} on {server['spec']['nodeName']}: server saw {seen}")
    assert seen and seen.rsplit(":", 1)[0] == client["status"]["podIP"], body


def test_pod_to_pod_keeps_the_client_pod_ip_across_nodes(lab: RunningLab, pair, monkeypatch):
    """The notebook's measurement (netshoot -> an app=nginx pod on another node) in both models."""
    client, server = pair
    monkeypatch.setenv("KUBECONFIG", str(lab.state / "kubeconfig"))
    frame = podnet.pod_to_pod(k8snb.connect(quiet=True), NAMESPACE)
    row = frame.iloc[0]
    print(f"{lab.plan.network}: {frame.attrs['summary']}")
    assert (row["mode"], bool(row["cross_node"])) == ("measured", True), row["note"]
    assert (row["client_ip"], row["server_ip"]) == (client["status"]["podIP"], server["status"]["podIP"])
    assert row["seen"] == client["status"]["podIP"] and bool(row["kept"]), row["note"]


def test_network_model_is_inferred_from_the_cluster_alone(lab: RunningLab, pair, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(lab.state / "kubeconfig"))
    verdict = k8snb.network_model(k8snb.connect(quiet=True))
    print(f"{lab.plan.network}: {verdict.model}: {verdict.reason}")
    assert verdict.model == VERDICTS[lab.plan.network], verdict.reason


def test_address_plan_matches_the_nodes(lab: RunningLab):
    plan = k8snb_lab.address_plan()
    assert plan["network"] == lab.plan.network and set(plan["node_pod_cidrs"]) == set(lab.plan.node_names)
    subnet, pods = ipaddress.ip_network(plan["node_subnet"]), ipaddress.ip_network(plan["pod_range"])
    assert plan["pods_inside_node_subnet"] is (lab.plan.network == "flat") is pods.subnet_of(subnet)
    assert all(ipaddress.ip_network(c).subnet_of(pods) for c in plan["node_pod_cidrs"].values())


def test_node_tables_show_the_data_path(lab: RunningLab, pair):
    """Routed: a bridge, and a route per other node's podCIDR via that node. Flat: a /32 per local
    pod, no pod routes via other nodes, and eth0 answering ARP for its pods."""
    client, server = pair
    cidrs = k8snb_lab.address_plan()["node_pod_cidrs"]
    ips = lab.plan.node_ips()
    routes = k8snb_lab.node_routes(SERVER_NODE)
    links = k8snb_lab.node_links(SERVER_NODE).set_index("ifname")
    via = {r.dst: r.gateway for r in routes.itertuples()}
    assert "KUBE-SERVICES" in k8snb_lab.node_iptables(SERVER_NODE)
    if lab.plan.network == "routed":
        assert via[cidrs[CLIENT_NODE]] == ips[CLIENT_NODE]
        assert links.loc["cni0", "kind"] == "bridge"
        return
    assert cidrs[CLIENT_NODE] not in via and "cni0" not in links.index
    local = routes.set_index("dst").loc[server["status"]["podIP"]]
    assert local["scope"] == "host" and links.loc[local["dev"], "kind"] == "veth"
    prefix = ipaddress.ip_network(lab.plan.node_subnet).prefixlen
    assert links.loc["eth0", "addresses"] == [f"{ips[SERVER_NODE]}/{prefix}"]
    # The host, on the same bridge with no route for the pod, reaches it by ARP: the server node
    # answers with its own eth0 MAC (proxy ARP), as the VPC fabric delivers a secondary IP to its ENI.
    with urllib.request.urlopen(f"http://{server['status']['podIP']}/plain", timeout=5) as resp:
        assert parse_hello(resp.read().decode())["server_name"] == "server"
    neigh = ip_json("neigh", "show", server["status"]["podIP"], "dev", "k8snb0")
    assert neigh and neigh[0]["lladdr"] == links.loc["eth0", "mac"], neigh


@pytest.mark.optin("K8SNB_TEST_MODELS")  # starts and stops the labs
def test_down_leaves_nothing_of_the_model(lab: RunningLab, pair):
    k8snb_lab.down(quiet=True)
    deadline = time.monotonic() + 10
    while _leftovers(lab.plan) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _leftovers(lab.plan)
