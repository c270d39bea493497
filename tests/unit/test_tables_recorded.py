"""Table builders on API JSON recorded from the lab, checked against what kubectl printed then.

Re-record with `python tests/record_api_json.py` (lab running); AGE is left out of the comparison
because kubectl computed it at its own moment.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from k8snb import tables

DATA = Path(__file__).parent.parent / "data" / "recorded"


def raw(name: str) -> bytes:
    return (DATA / f"{name}.json").read_bytes()


def kubectl_rows(name: str) -> list[list[str]]:
    lines = (DATA / f"{name}.kubectl.txt").read_text().splitlines()
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [len(line) + 1])]
        rows.append(cells)
    return rows


def test_nodes_match_kubectl_wide():
    ours = {r["name"]: r for r in tables.node_records([raw("nodes")])}
    for name, status, roles, _age, version, internal, external, os_image, kernel, runtime in kubectl_rows("nodes"):
        r = ours[name]
        assert (r["status"], r["roles"], r["version"], r["internal_ip"], r["external_ip"], r["os_image"],
                r["kernel"], r["runtime"]) == (status, roles, version, internal, external, os_image, kernel, runtime)
        assert r["pod_cidrs"].startswith("10.244.")


def test_pods_match_kubectl_wide_and_sit_in_their_node_pod_cidr():
    node_rows = tables.node_records([raw("nodes")])
    ours = {r["name"]: r for r in tables.pod_records([raw("pods")], node_rows)}
    rows = [line.split()[:7] for line in (DATA / "pods.kubectl.txt").read_text().splitlines()[1:]]
    assert len(rows) == len(ours) == 4
    for name, ready, status, restarts, _age, ip, node in rows:
        r = ours[name]
        assert (r["ready"], r["status"], str(r["restarts"]), r["ip"], r["node"]) == (ready, status, restarts, ip, node)
        assert r["in_node_pod_cidr"] is True and r["in_node_network"] is False
        assert r["node_ip"].startswith("172.29.0.")


def test_pods_without_node_access_keep_their_own_columns():
    rows = tables.pod_records([raw("pods")], None)
    assert all(r["node_ip"] is None and r["node_pod_cidr"] is None for r in rows)
    assert all(r["ip"].startswith("10.244.") for r in rows)


def test_services_match_kubectl_wide():
    items = json.loads(raw("services"))["items"]
    ours = {s["metadata"]["name"]: s for s in items}
    for name, typ, cluster_ip, external, ports, _age, selector in kubectl_rows("services"):
        s = ours[name]
        assert s["spec"]["type"] == typ and s["spec"]["clusterIP"] == cluster_ip
        assert tables.external_ip(s) == external
        assert tables.ports_text(s["spec"]["ports"]) == ports


@pytest.mark.parametrize("seconds,text", [(5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (7199, "119m"),
                                          (3 * 3600 + 60, "3h1m"), (9 * 3600, "9h"), (50 * 3600, "2d2h"),
                                          (10 * 86400, "10d"), (800 * 86400, "2y70d")])
def test_human_duration_is_kubectls(seconds, text):
    assert tables.human_duration(seconds) == text


def test_pod_status_reasons():
    def pod(**status):
        return tables._pod_list.decode(json.dumps({"items": [{"metadata": {"name": "p"},
                                                               "spec": {"containers": [{"name": "c"}]},
                                                               "status": status}]}).encode()).items[0]
    waiting = {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
    assert tables.pod_status(pod(**waiting)) == "ImagePullBackOff"
    crash = {"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                                        "restartCount": 4}]}
    assert tables.pod_status(pod(**crash)) == "CrashLoopBackOff"
    assert tables.pod_status(pod(phase="Pending")) == "Pending"
    done = {"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}
    assert tables.pod_status(pod(**done)) == "Completed"
