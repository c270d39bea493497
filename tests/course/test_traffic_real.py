"""The package on pods that carry traffic: probes, measured sampling, the scale sweep, failures."""
from __future__ import annotations


import pytest

import k8snb
from k8snb.errors import ExecFailed, NotReadyInTime

pytestmark = [pytest.mark.cluster, pytest.mark.realnodes]


def test_curl_and_nslookup_from_netshoot(cluster, article):
    ns, ns2 = article
    head = k8snb.curl(cluster, "nginx-svc", namespace=ns, head=True)
    assert head.status_line.startswith("HTTP/1.1 200") and head.headers["Server"].startswith("nginx/")
    svc_ip = k8snb.services(cluster, ns).set_index("name").loc["nginx-svc", "cluster_ip"]
    dns_ip = k8snb.services(cluster, "kube-system").set_index("name").loc["kube-dns", "cluster_ip"]
    look = k8snb.nslookup(cluster, "nginx-svc", namespace=ns)
    domain = k8snb.dns.cluster_domain(cluster, ns)  # read from netshoot's search list, not assumed
    assert (look.name, look.addresses, look.server) == (f"nginx-svc.{ns}.svc.{domain}", (svc_ip,), dns_ip)
    assert k8snb.curl(cluster, f"nginx.{ns2}", namespace=ns).ok
    short = k8snb.curl(cluster, "nginx", namespace=ns)
    assert not short.ok and "Could not resolve host" in short.error
    assert k8snb.nslookup(cluster, "nginx", namespace=ns).nxdomain


def test_sample_measures_each_request_on_a_new_connection(cluster, article):
    ns, _ = article
    eps = k8snb.scale_and_wait(cluster, 5, namespace=ns)
    frame = k8snb.sample(cluster, 500, namespace=ns)
    assert len(frame) == 500 and frame["ok"].all() and frame["new_connection"].all()
    assert set(frame["mode"]) == {"measured"}
    summary = k8snb.summarize(frame, list(eps["pod"]))
    assert len(summary) == 5 and summary["count"].min() >= 50, summary
    assert set(frame["node"]) == set(eps["node"]) and frame["node"].nunique() >= 2
    kept = k8snb.sample(cluster, 100, namespace=ns, fresh_connections=False)
    assert kept["server_name"].nunique() == 1, "one kept-alive connection stays on one pod"


def test_sweep_scaling_down_to_one_lists_exactly_one_replica(cluster, article):
    """Pods still terminating from 5 replicas are not replicas of the 1-replica step: one row, p = 1.0."""
    ns, _ = article
    k8snb.scale_and_wait(cluster, 5, namespace=ns)
    sweep = k8snb.sweep(cluster, [1], n=100, namespace=ns)
    assert len(sweep) == 1, sweep
    assert sweep["count"].tolist() == [100] and sweep["p_value"].tolist() == [1.0]


def test_the_explorer_after_a_scale_down_plots_the_slider_s_replicas(cluster, article):
    """The handout's explorer once plotted 5 bars (2 empty, p = 7e-28) under '3 replicas': the two
    pods still terminating from 5 were counted as replicas."""
    ns, _ = article
    k8snb.scale_and_wait(cluster, 5, namespace=ns)
    eps = k8snb.scale_and_wait(cluster, 3, namespace=ns)
    assert len(eps) == 3 and eps["ready"].all() and eps["pod"].nunique() == 3, eps
    box = k8snb.replica_explorer(cluster, replicas=3, n=150, namespace=ns)
    status = box.children[1].value
    assert status.startswith("150 requests over 3 replicas (measured)"), status
    assert float(status.rsplit("= ", 1)[1]) > 1e-4, status  # three even replicas, not two empty bars


def test_sweep_one_to_five_writes_a_plot(cluster, article, tmp_path):
    ns, _ = article
    sweep = k8snb.sweep(cluster, range(1, 6), n=100, namespace=ns)
    assert sorted(sweep["replicas"].unique()) == [1, 2, 3, 4, 5]
    assert sweep.groupby("replicas")["replica"].nunique().tolist() == [1, 2, 3, 4, 5]
    fig = k8snb.plot_sweep(sweep)
    out = tmp_path / "sweep.png"
    fig.savefig(out)
    assert out.stat().st_size > 10_000


def test_replaced_pod_gets_a_new_ip(cluster, article):
    ns, _ = article
    k8snb.scale_and_wait(cluster, 2, namespace=ns)
    result = k8snb.replace_pod(cluster, namespace=ns).set_index("phase")
    assert result.loc["before", "ip"] != result.loc["after", "ip"]
    assert result.loc["before", "pod"] != result.loc["after", "pod"]
    # While the old pod stops, a request can still reach it until every node's kube-proxy has
    # dropped its endpoint (about a second): some fail, but the other replica keeps answering.
    assert result.loc["after", "answered_while_replacing"] > 0
    after = k8snb.sample(cluster, 50, namespace=ns)
    assert after["ok"].all()


def test_exec_without_the_tool_is_a_clear_error(cluster, article):
    ns, _ = article
    netshoot = k8snb.pod_for(cluster, "netshoot", ns)
    with pytest.raises(ExecFailed, match=r"has no 'no-such-tool'"):
        k8snb.exec_argv(cluster, netshoot, ["no-such-tool", "--version"], ns)


def test_unpullable_image_fails_within_the_timeout_naming_pod_and_reason(cluster, needs_traffic, namespace):
    deploy = k8snb.load("nginx-deploy", namespace)[0]
    deploy["spec"]["template"]["spec"]["containers"][0]["image"] = "k8snb.invalid/no-such-image:1"
    k8snb.apply(cluster, deploy)
    with pytest.raises(NotReadyInTime) as err:
        k8snb.wait_deployment(cluster, "nginx-hello", namespace, timeout=90, progress=False)
    text = str(err.value)
    assert "pod nginx-hello-" in text
    assert "ErrImagePull" in text or "ImagePullBackOff" in text
