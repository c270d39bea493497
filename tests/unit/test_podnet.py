"""No NAT between pods: the server chosen across nodes, and the row built from a recorded hello page."""
from __future__ import annotations

from pathlib import Path

import pytest

from k8snb import podnet
from k8snb.errors import NotReadyInTime
from k8snb.probe import ExecResult

DATA = Path(__file__).resolve().parents[1] / "data"
#: The client of tests/data/hello.txt, whose 'Client address' is 10.244.2.11:51724.
CLIENT = podnet.PodAddress("netshoot-796845c847-t888l", "10.244.2.11", "k8snb-worker2")


def pod(name: str, ip: str | None, node: str, ready: bool = True, **extra) -> dict:
    """A pod object as the API returns it, trimmed to the fields read."""
    return {"metadata": {"name": name, "namespace": "default", "labels": {"app": extra.get("app", "nginx")},
                         **({"deletionTimestamp": "2026-11-30T04:30:00Z"} if extra.get("deleting") else {})},
            "spec": {"nodeName": node, **({"hostNetwork": True} if extra.get("host_network") else {})},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


SERVERS = [
    pod("nginx-hello-a", "10.244.2.5", "k8snb-worker2"),
    pod("nginx-hello-b", "10.244.1.7", "k8snb-worker"),
    pod("nginx-hello-c", "10.244.0.9", "k8snb-control-plane"),
]


def test_a_server_on_another_node_is_preferred_and_the_choice_is_stable():
    server, cross = podnet.choose_server(SERVERS, "k8snb-worker2")
    assert (server.name, server.ip, server.node, cross) == ("nginx-hello-b", "10.244.1.7", "k8snb-worker", True)
    assert podnet.choose_server(list(reversed(SERVERS)), "k8snb-worker2")[0] == server


def test_a_same_node_server_is_the_fallback_and_says_so():
    server, cross = podnet.choose_server(SERVERS[:1], "k8snb-worker2")
    assert (server.name, cross) == ("nginx-hello-a", False)
    row = podnet.pod_to_pod_row(CLIENT, server, cross, "10.244.2.11", "measured")
    assert not row["cross_node"] and "both pods run on k8snb-worker2" in row["note"]
    assert "on the same node" in podnet.summary(row)


@pytest.mark.parametrize("unfit", [
    pod("nginx-hello-x", "10.244.1.7", "k8snb-worker", ready=False),
    pod("nginx-hello-x", None, "k8snb-worker"),
    pod("nginx-hello-x", "10.244.1.7", "k8snb-worker", deleting=True),
    pod("nginx-hello-x", "172.29.0.3", "k8snb-worker", host_network=True),
])
def test_pods_that_cannot_show_a_pod_to_pod_call_are_skipped(unfit):
    assert podnet.choose_server([unfit, SERVERS[0]], "k8snb-worker2")[0].name == "nginx-hello-a"
    with pytest.raises(NotReadyInTime, match="app=nginx"):
        podnet.choose_server([unfit], "k8snb-worker2")


@pytest.mark.parametrize("page", ["hello.txt", "hello.html"])
def test_the_client_address_is_read_without_its_port(page):
    seen = podnet.seen_address((DATA / page).read_text())
    assert seen == {"hello.txt": "10.244.2.11", "hello.html": "10.244.1.12"}[page]
    assert podnet.seen_address("Client address: fd00:10:244:1::5:40312\n") == "fd00:10:244:1::5"
    assert podnet.seen_address("<html>502 Bad Gateway</html>") is None


def test_a_recorded_page_with_the_clients_pod_ip_is_kept():
    server = podnet.PodAddress("nginx-hello-7d95c6dbcb-8dnbs", "10.244.1.5", "k8snb-worker")
    row = podnet.pod_to_pod_row(CLIENT, server, True, podnet.seen_address((DATA / "hello.txt").read_text()),
                                "measured")
    assert (row["seen"], row["kept"], row["mode"]) == ("10.244.2.11", True, "measured")
    assert podnet.summary(row).startswith("Measured:") and "no NAT between the pods" in podnet.summary(row)


def test_a_rewritten_source_is_reported_and_no_answer_is_not_a_verdict():
    server = podnet.PodAddress("nginx-hello-b", "10.244.1.7", "k8snb-worker")
    snat = podnet.pod_to_pod_row(CLIENT, server, True, "172.29.0.4", "measured")
    assert snat["kept"] is False and "172.29.0.4" in snat["note"] and "translated" in podnet.summary(snat)
    silent = podnet.pod_to_pod_row(CLIENT, server, True, None, "measured", "curl: (28) Connection timed out")
    assert silent["kept"] is None and "Connection timed out" in podnet.summary(silent)


def test_modeled_rows_never_claim_a_measurement():
    server = podnet.PodAddress("nginx-hello-b", "10.244.1.7", "k8snb-worker")
    row = podnet.pod_to_pod_row(CLIENT, server, True, CLIENT.ip, "modeled")
    assert row["mode"] == "modeled" and row["note"].startswith("modeled")
    assert podnet.summary(row).startswith("Modeled, not measured") and "Measured" not in podnet.summary(row)


def test_ipv6_pod_ips_are_bracketed_in_the_url():
    assert podnet.url_for("10.244.1.7") == "http://10.244.1.7/"
    assert podnet.url_for("fd00:10:244:1::7") == "http://[fd00:10:244:1::7]/"


# --- the whole call, on a recorded API and a recorded exec ---------------------------------------------
class RecordedApi:
    def __init__(self, pods: list[dict]) -> None:
        self.pods = pods

    def list(self, path, labelSelector="", **_params):
        app = labelSelector.split("=", 1)[1]
        return [p for p in self.pods if p["metadata"]["labels"]["app"] == app]

    def get(self, path, deadline=None):
        return next(p for p in self.pods if path.endswith("/" + p["metadata"]["name"]))


class FakeCluster:
    def __init__(self, pods: list[dict], real_nodes: bool) -> None:
        self.api = RecordedApi(pods)
        self._cache = {"real_nodes": real_nodes}


NETSHOOT = pod(CLIENT.name, CLIENT.ip, CLIENT.node, app="netshoot")


def test_pod_to_pod_curls_the_other_nodes_pod_by_its_ip(monkeypatch):
    calls = []

    def exec_argv(cluster, pod_name, argv, namespace="default", timeout=0):
        calls.append((pod_name, argv, namespace))
        return ExecResult(pod_name, tuple(argv), 0, (DATA / "hello.txt").read_text(), "", 0.01)

    monkeypatch.setattr(podnet, "exec_argv", exec_argv)
    frame = podnet.pod_to_pod(FakeCluster([NETSHOOT, *SERVERS], real_nodes=True))
    assert calls == [(CLIENT.name, ["curl", "-sS", "--max-time", str(podnet.REQUEST_TIMEOUT),
                                    "http://10.244.1.7/"], "default")]
    assert list(frame.columns) == list(podnet.COLUMNS) and len(frame) == 1
    row = frame.iloc[0]
    assert (row["server_pod"], row["server_node"], row["seen"], row["mode"]) == (
        "nginx-hello-b", "k8snb-worker", "10.244.2.11", "measured")
    assert bool(row["kept"]) and frame.attrs["summary"].startswith("Measured:")


def test_pod_to_pod_on_simulated_nodes_is_modeled_without_exec(monkeypatch):
    monkeypatch.setattr(podnet, "exec_argv", lambda *a, **k: pytest.fail("simulated nodes run nothing"))
    frame = podnet.pod_to_pod(FakeCluster([NETSHOOT, *SERVERS], real_nodes=False))
    assert frame.iloc[0]["mode"] == "modeled" and frame.iloc[0]["seen"] == CLIENT.ip
    assert frame.attrs["summary"].startswith("Modeled, not measured")


# --- the packet on the wire (k8snb.wire), on tcpdump's own output -----------------------------------
TCPDUMP = """tcpdump: data link type LINUX_SLL2
listening on any, link-type LINUX_SLL2 (Linux cooked v2), snapshot length 262144 bytes
10:02:11.123456 eth0  In  IP 10.244.1.7.41234 > 10.244.2.5.80: Flags [S], seq 1, win 64240, length 0
10:02:11.123501 cni0  Out IP 10.244.1.7.41234 > 10.244.2.5.80: Flags [S], seq 1, win 64240, length 0
2 packets captured
"""


def test_tcpdump_lines_become_rows_and_one_sentence():
    from k8snb import wire

    frame = wire.parse_tcpdump(TCPDUMP, "k8snb-worker2")
    assert list(frame["interface"]) == ["eth0", "cni0"] and list(frame["direction"]) == ["In", "Out"]
    assert set(frame["src"]) == {"10.244.1.7"} and set(frame["dst"]) == {"10.244.2.5"} and frame["flags"][0] == "S"
    said = wire.summary(frame, "10.244.1.7", "10.244.2.5", "k8snb-worker2")
    assert said.startswith("Measured on k8snb-worker2") and "in on eth0, out on cni0" in said and "no NAT" in said
    assert "saw no packet" in wire.summary(frame.iloc[0:0], "10.244.1.7", "10.244.2.5", "n")
    argv = wire.capture_argv("10.244.1.7", "10.244.2.5")
    assert argv[:3] == ["timeout", str(wire.CAPTURE_SECONDS), "tcpdump"] and "src host 10.244.1.7" in argv[-1]
