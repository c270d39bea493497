"""The notebooks' helpers that need no cluster: exercise checks, the course plan, handout cleanup."""
from __future__ import annotations

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from k8snb import cidr, course, exercises, handouts, servicetypes
from k8snb.errors import InvalidInput


def test_checks_say_not_yet_for_a_missing_answer_and_never_raise():
    for verdict in (exercises.check_ready_nodes(None, None), exercises.check_addresses(None), exercises.check_max_pods(""),
                    exercises.check_rule_probability(None, 4, 1), exercises.check_node_port(None, None),
                    exercises.check_prediction(None, 3, "x", "y")):
        assert not verdict and repr(verdict).startswith("Not yet:")


@pytest.mark.parametrize("check, right, wrong", [
    (lambda a: exercises.check_addresses(a, "10.0.0.0/22"), 1024, 1022),
    (lambda a: exercises.check_max_pods(a, "m5.xlarge"), 58, 60),
    (lambda a: exercises.check_max_pods(a, "t3.small", enis=3, per_eni=4), 11, 12),
    (lambda a: exercises.check_prediction(a, 3, "addresses", "why"), 3, 5),
    (lambda a: exercises.check_rule_probability(a, 4, 1), 1 / 3, 0.25),
])
def test_checks_tell_right_from_wrong(check, right, wrong):
    assert check(right) and repr(check(right)).startswith("Right:")
    assert not check(wrong)


def test_same_ip_check_compares_with_the_measured_change():
    change = pd.DataFrame({"phase": ["before", "after"], "ip": ["10.244.0.2", "10.244.1.9"]})
    assert exercises.check_same_ip(False, change) and not exercises.check_same_ip(True, change)
    assert not exercises.check_same_ip(None, change)


def test_client_objects_roll_the_pod_when_the_target_changes():
    cm, deploy = course.client_objects("nginx-svc")
    assert cm["data"] == {course.CLIENT_VARIABLE: "nginx-svc"}
    assert deploy["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"] == cm["metadata"]["name"]
    hash_of = lambda d: d["spec"]["template"]["metadata"]["annotations"][course.CONFIG_HASH_ANNOTATION]  # noqa: E731
    assert hash_of(deploy) != hash_of(course.client_objects("nginx.nginx")[1])
    with pytest.raises(InvalidInput):
        course.client_objects("nginx; rm -rf /")


def test_course_plan_lists_every_shipped_object_in_the_course_namespaces():
    plan = course.course_plan()
    assert {"nginx-hello", "nginx-svc", "netshoot", "nginx-nodeport", "nginx-lb", "client-config"} <= set(plan["name"])
    assert set(plan["namespace"]) <= {"", "default", "nginx"}


def test_capacity_helpers():
    assert cidr.max_nodes("10.0.0.0/20", 3, 10) == (4096 - 5) // 30
    assert cidr.eni_limits("m5.large") == (3, 10)
    with pytest.raises(InvalidInput):
        cidr.eni_limits("x9.huge")


def test_closed_progress_bars_are_dropped_from_handouts():
    view = "application/vnd.jupyter.widget-view+json"
    nb = new_notebook(cells=[new_code_cell("x", outputs=[
        new_output("display_data", data={view: {"model_id": "bar", "version_major": 2}}),
        new_output("display_data", data={view: {"model_id": "slider", "version_major": 2}}),
        new_output("display_data", data={view: {"model_id": "gone", "version_major": 2}}),
        new_output("stream", name="stdout", text="hi\n"),
    ])])
    nb.metadata["widgets"] = {handouts.WIDGET_STATE: {"state": {
        "bar": {"model_name": "HBoxModel", "state": {"layout": "IPY_MODEL_barlayout"}},
        "barlayout": {"model_name": "LayoutModel", "state": {"visibility": "hidden"}},
        "slider": {"model_name": "IntSliderModel", "state": {"layout": "IPY_MODEL_sl"}},
        "sl": {"model_name": "LayoutModel", "state": {}},
    }}}
    assert handouts.drop_closed_widgets(nb) == 2
    kept = nb.cells[0].outputs
    assert [o.get("data", {}).get(view, {}).get("model_id") for o in kept] == ["slider", None]
    nbformat.validate(nb)


@pytest.mark.parametrize("flavor", ["EKS", "GKE", "AKS"])
def test_no_load_balancer_on_a_cloud_cluster_unless_the_learner_opts_in(flavor):
    from k8snb.cluster import Cluster

    cluster = Cluster(api=None, context="c", server="https://example.invalid", version="v1.37.2", flavor=flavor)
    decision = servicetypes.load_balancer_decision(cluster)
    assert not decision.create and "billed" in decision.reason and "CREATE_LOAD_BALANCER = True" in decision.reason
    assert servicetypes.load_balancer_decision(cluster, opt_in=True).create


@pytest.mark.parametrize("flavor,words", [("kind", "cloud-provider-kind"), ("minikube", "minikube tunnel"),
                                          ("k3s", "ServiceLB"), ("lab (real nodes)", "<pending>"),
                                          ("other", "<pending>")])
def test_load_balancer_elsewhere_is_created_and_described(flavor, words):
    from k8snb.cluster import Cluster

    cluster = Cluster(api=None, context="c", server="https://example.invalid", version="v1.37.2", flavor=flavor)
    decision = servicetypes.load_balancer_decision(cluster)
    assert decision.create and words in decision.reason


def test_the_course_never_writes_a_tools_output_for_it():
    """A reply shown as measured is what the tool printed: no curl or nslookup message is composed
    by the course (a 'curl: (6) Could not resolve host' once was, where curl never ran)."""
    import re
    from pathlib import Path

    import k8snb

    made_up = re.compile(r"""f?["']curl: \(\d""")
    for path in Path(k8snb.__file__).parent.rglob("*.py"):
        assert not made_up.search(path.read_text()), f"{path} writes a curl error itself"


def test_the_plan_puts_the_nginx_namespace_under_every_notebook_that_makes_it():
    plan = course.course_plan()
    nginx = plan[(plan["kind"] == "Namespace") | (plan["name"] == "nginx")]
    assert set(nginx["notebook"]) == {"01-04"}, nginx
