"""The course's new measured cells and break-and-fix exercises, on a cluster whose pods carry traffic.

Every exercise check is run on a wrong state (it must say 'Not yet' with a hint) and on the right
one (it must say 'Right'), against the cluster; the measured cells' facts are asserted as the
notebooks state them: one pod under ClientIP affinity, SNAT under externalTrafficPolicy Cluster,
the client's own address under Local, and no answer from a node without a replica under Local.
"""
from __future__ import annotations

import pytest

import k8snb
from k8snb import exercises

pytestmark = [pytest.mark.cluster, pytest.mark.realnodes]


def test_a_selector_matching_nothing_is_found_and_fixed(cluster, article):
    ns, _ = article
    broken = exercises.break_service(cluster, "nginx-typo", ns).iloc[0]
    assert broken["ready_endpoints"] == 0 and not broken["answered"] and broken["mode"] == "measured"
    exercises.fix_service(cluster, "nginx-typo", selector={"app": "ngnix"}, namespace=ns)
    wrong = exercises.check_service_fixed(cluster, "nginx-typo", ns)
    assert not wrong and "matches no ready pod" in repr(wrong) and "app=nginx" in repr(wrong), repr(wrong)
    exercises.fix_service(cluster, "nginx-typo", selector={"app": "nginx"}, namespace=ns)
    right = exercises.check_service_fixed(cluster, "nginx-typo", ns)
    assert right and "(measured)" in repr(right), repr(right)


def test_a_target_port_nobody_listens_on_is_found_and_fixed(cluster, article):
    ns, _ = article
    broken = exercises.break_service(cluster, "nginx-wrongport", ns).iloc[0]
    assert broken["ready_endpoints"] >= 1 and not broken["answered"], broken.to_dict()
    assert broken["endpoints"].endswith(":8080")
    exercises.fix_service(cluster, "nginx-wrongport", target_port=8080, namespace=ns)
    wrong = exercises.check_service_fixed(cluster, "nginx-wrongport", ns)
    assert not wrong and "targetPort" in repr(wrong), repr(wrong)
    exercises.fix_service(cluster, "nginx-wrongport", target_port=80, namespace=ns)
    assert exercises.check_service_fixed(cluster, "nginx-wrongport", ns)


def test_node_port_exercise_shows_the_api_refusal_then_answers(cluster, article):
    ns, _ = article
    refused = exercises.check_node_port(cluster, 8080, ns)
    assert not refused and "refused nodePort 8080" in repr(refused) and "valid range" in repr(refused), repr(refused)
    right = exercises.check_node_port(cluster, 30080, ns)
    assert right and "(measured)" in repr(right), repr(right)
    cluster.api.delete(f"/api/v1/namespaces/{ns}/services/{exercises.PICKED_NODE_PORT_SERVICE}")


def test_headless_prediction_is_checked_against_dns(cluster, article):
    ns, _ = article
    assert not exercises.check_headless_prediction(cluster, 1, replicas=3, namespace=ns)
    right = exercises.check_headless_prediction(cluster, 3, replicas=3, namespace=ns)
    assert right and "measured" in repr(right), repr(right)


def test_client_ip_affinity_keeps_one_client_on_one_pod_then_goes_back(cluster, article):
    ns, _ = article
    k8snb.scale_and_wait(cluster, 3, namespace=ns)
    compare = k8snb.affinity_compare(cluster, 40, namespace=ns).set_index("session_affinity")
    assert (compare["mode"] == "measured").all()
    assert compare.loc["ClientIP", "pods_answering"] == 1
    assert compare.loc["ClientIP", "largest_share"] == 1.0
    assert compare.loc["None", "pods_answering"] >= 2
    svc = cluster.api.get(f"/api/v1/namespaces/{ns}/services/nginx-svc")
    assert svc["spec"].get("sessionAffinity", "None") == "None"
    table = compare.reset_index()
    assert exercises.check_affinity_prediction(1, table) and not exercises.check_affinity_prediction(3, table)


def test_node_port_snat_under_cluster_and_the_client_address_kept_under_local(cluster, article):
    ns, _ = article
    k8snb.scale_and_wait(cluster, 1, namespace=ns)
    table = k8snb.client_address_by_policy(cluster, ns)
    assert (table["mode"] == "measured").all(), table.attrs["summary"]
    by = {p: table[table["policy"] == p] for p in ("Cluster", "Local")}
    assert by["Cluster"]["answered"].all(), by["Cluster"].to_dict("records")
    assert not by["Cluster"]["kept"].astype(bool).any(), by["Cluster"].to_dict("records")
    with_replica = by["Local"][by["Local"]["replica_on_node"]]
    without = by["Local"][~by["Local"]["replica_on_node"]]
    assert len(with_replica) == 1 and with_replica["answered"].all() and with_replica["kept"].astype(bool).all(), \
        with_replica.to_dict("records")
    assert len(without) >= 1 and not without["answered"].any(), without.to_dict("records")
    assert "From this machine" in table.attrs["summary"]


def test_ready_nodes_exercise_reads_the_cluster(cluster):
    ready = exercises.ready_nodes(k8snb.nodes(cluster))
    assert ready and exercises.check_ready_nodes(cluster, len(ready))
    assert not exercises.check_ready_nodes(cluster, len(ready) + 1)
