"""Exercise checks and the new measured cells' pure parts: verdicts, validation, summaries."""
from __future__ import annotations

import pandas as pd
import pytest

from k8snb import affinity, exercises, servicetypes
from k8snb.errors import InvalidInput

NODES = [("k8snb-control-plane", "172.30.0.2", ["10.244.0.0/24"]),
         ("k8snb-worker", "172.30.0.3", ["10.244.1.0/24"])]


def test_whose_names_the_address_a_pod_saw():
    assert servicetypes._whose("172.30.0.1", "172.30.0.1", NODES) == "your address: kept"
    assert servicetypes._whose("172.30.0.3", "172.30.0.1", NODES) == "node k8snb-worker's address (SNAT)"
    assert servicetypes._whose("10.244.0.1", "172.30.0.1", NODES) == \
        "node k8snb-control-plane's address on its pod network (SNAT)"
    assert servicetypes._whose("192.0.2.9", "172.30.0.1", NODES) == "rewritten (SNAT)"


def _row(policy, node, local, answered, kept, mode="measured"):
    return {"policy": policy, "node": node, "replica_on_node": local, "url": None, "answered": answered,
            "sent_from": "172.30.0.1" if mode == "measured" else None, "client_address": None, "who": "",
            "kept": kept, "mode": mode}


def test_policy_summary_counts_what_was_measured():
    table = pd.DataFrame([_row("Cluster", "a", True, True, False), _row("Cluster", "b", False, True, False),
                          _row("Local", "a", True, True, True), _row("Local", "b", False, False, None)])
    line = servicetypes._policy_summary(table, None)
    assert line == ("From this machine (172.30.0.1), measured. Cluster: 2 of 2 nodes answered and the pod saw your "
                    "address on 0 of them (the rest: a node's address, SNAT). Local: 1 of the 1 node(s) with a "
                    "replica answered, with your address kept on 1; 0 of the 1 node(s) without a replica answered.")


def test_policy_summary_says_modeled_and_why():
    table = pd.DataFrame([_row("Cluster", "a", True, True, False, "modeled"),
                          _row("Local", "a", True, True, True, "modeled")])
    line = servicetypes._policy_summary(table, "the nodes are simulated")
    assert line.startswith("Modeled, not measured: the nodes are simulated.") and "measured." not in line[20:]


def test_prediction_check_compares_with_the_measurement():
    assert exercises.check_prediction(1, 1, "pods", "why")
    wrong = exercises.check_prediction(3, 1, "pods", "why")
    assert not wrong and "you predicted 3, the cluster gave 1" in repr(wrong)
    assert not exercises.check_prediction("1", 1, "pods", "why")
    assert not exercises.check_prediction(True, 1, "pods", "why")


def test_affinity_prediction_reads_the_client_ip_row():
    compare = pd.DataFrame([{"session_affinity": "ClientIP", "connections": 50, "pods_answering": 1, "replicas": 5,
                             "largest_share": 1.0, "mode": "measured"},
                            {"session_affinity": "None", "connections": 50, "pods_answering": 5, "replicas": 5,
                             "largest_share": 0.3, "mode": "measured"}])
    assert exercises.check_affinity_prediction(1, compare)
    assert not exercises.check_affinity_prediction(5, compare)


@pytest.mark.parametrize("kwargs", [{"selector": {}}, {"selector": "app=nginx"}, {"selector": {"app": 1}},
                                    {"target_port": 0}, {"target_port": 70000}, {"target_port": True},
                                    {"target_port": " "}])
def test_fix_service_refuses_a_malformed_fix_before_any_api_call(kwargs):
    with pytest.raises(InvalidInput):
        exercises.fix_service(None, "nginx-typo", **kwargs)


def test_exercises_touch_only_their_own_services():
    with pytest.raises(InvalidInput):
        exercises.break_service(None, "nginx-svc")
    with pytest.raises(InvalidInput):
        exercises.fix_service(None, "kubernetes", selector={"app": "x"})


def test_node_port_check_wants_a_number():
    assert not exercises.check_node_port(None, None)
    assert "without quotes" in repr(exercises.check_node_port(None, "30080"))


def test_affinity_is_set_only_to_known_values_on_the_course_service():
    with pytest.raises(InvalidInput):
        affinity.set_affinity(None, "Cookie")
    with pytest.raises(InvalidInput):
        affinity.set_affinity(None, "ClientIP", service="kubernetes")


def test_ready_nodes_counts_the_status_column():
    table = pd.DataFrame({"name": ["a", "b", "c"], "status": ["Ready", "NotReady", "Ready,SchedulingDisabled"]})
    assert exercises.ready_nodes(table) == ["a", "c"]
    assert not exercises.check_ready_nodes(None, None) and not exercises.check_ready_nodes(None, "3")
