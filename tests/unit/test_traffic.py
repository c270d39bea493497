"""Traffic analysis: parsing what the pods answer, modeling kube-proxy, and the even-spread test."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from k8snb import traffic
from k8snb.errors import InvalidInput, NotFound

DATA = Path(__file__).parent.parent / "data"
SEED = 20261128


def endpoints(k: int) -> list[dict]:
    return [{"address": f"10.244.{i}.5", "port": 80, "pod": f"nginx-hello-7d95c6dbcb-p{i}", "node": f"worker{i}"}
            for i in range(k)]


def measured(servers: list[str], ok: list[bool] | None = None) -> pd.DataFrame:
    """A request frame as the live sampler would return it, answered by `servers` in turn."""
    ok = ok or [True] * len(servers)
    return pd.DataFrame([
        {"request": i, "server_address": f"10.244.{server[-1]}.5:80", "server_name": server, "pod": server,
         "node": f"worker{server[-1]}", "latency_ms": 1.5, "ok": answered, "mode": "measured"}
        for i, (server, answered) in enumerate(zip(servers, ok))
    ], columns=list(traffic.REQUEST_COLUMNS))


def test_parse_hello_plain_text():
    fields = traffic.parse_hello((DATA / "hello.txt").read_text())
    assert fields == {
        "server_address": "10.244.1.5:80",
        "server_name": "nginx-hello-7d95c6dbcb-8dnbs",
        "date": "28/Nov/2026:06:40:00 +0000",
        "uri": "/",
        "request_id": "9f8e2b7c41d04a6c8a3e5f1b2c7d9e04",
        "client_address": "10.244.2.11:51724",
    }


def test_parse_hello_html_unescapes_entities():
    fields = traffic.parse_hello((DATA / "hello.html").read_text())
    assert fields == {
        "server_address": "10.244.2.7:80",
        "server_name": "nginx-hello-7d95c6dbcb-x2k9q",
        "date": "28/Nov/2026:06:41:17 +0000",
        "uri": "/?from=netshoot&try=2",
        "request_id": "3c51d0a9e6f24b7e9d18a2f4c5b6e7a8",
        "client_address": "10.244.1.12:40312",
    }


def test_parse_hello_reads_the_request_id_from_the_older_footer():
    body = ('<p><span>Server&nbsp;name:</span> <span>nginx-hello-abc</span></p>\n'
            '<div id="center" align="center">\n            Request ID: 77aa<br/>\n'
            '            &copy; NGINX, Inc. 2018\n        </div>')
    fields = traffic.parse_hello(body)
    assert (fields["server_name"], fields["request_id"], fields["server_address"]) == ("nginx-hello-abc", "77aa", None)


def test_parse_hello_on_an_error_page_gives_nothing():
    body = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
    assert set(traffic.parse_hello(body).values()) == {None}


def test_iptables_probabilities_give_every_endpoint_the_same_chance():
    probabilities = traffic.iptables_probabilities(5)
    assert probabilities == pytest.approx([1 / 5, 1 / 4, 1 / 3, 1 / 2, 1])
    reach, shares = 1.0, []
    for p in probabilities:
        shares.append(reach * p)
        reach *= 1 - p
    assert shares == pytest.approx([0.2] * 5)


def test_modeled_iptables_walk_spreads_evenly():
    requests = traffic.modeled_sample(endpoints(5), 5000, seed=SEED)
    summary = traffic.summarize(requests)
    assert len(summary) == 5
    assert summary.attrs["mode"] == "modeled"
    assert summary.attrs["p_value"] > 0.001
    assert summary["share"].between(0.17, 0.23).all()
    assert requests["latency_ms"].isna().all()


def test_modeled_iptables_walk_is_reproducible_with_a_seed():
    first = traffic.modeled_sample(endpoints(3), 50, seed=SEED)
    assert first.equals(traffic.modeled_sample(endpoints(3), 50, seed=SEED))


def test_modeled_ipvs_is_exact_round_robin():
    requests = traffic.modeled_sample(endpoints(3), 9, proxy_mode="ipvs")
    assert requests["server_address"].tolist() == ["10.244.0.5:80", "10.244.1.5:80", "10.244.2.5:80"] * 3
    assert traffic.summarize(requests).attrs["p_value"] == pytest.approx(1.0)


def test_modeled_nftables_picks_uniformly():
    summary = traffic.summarize(traffic.modeled_sample(endpoints(3), 3000, proxy_mode="nftables", seed=SEED))
    assert summary.attrs["p_value"] > 0.001
    assert summary["share"].between(0.3, 0.37).all()


def test_unknown_proxy_mode_is_refused():
    with pytest.raises(InvalidInput, match="proxy_mode"):
        traffic.modeled_sample(endpoints(3), 10, proxy_mode="userspace")


def test_client_ip_affinity_pins_every_request_to_one_pod():
    requests = traffic.modeled_sample(endpoints(4), 200, session_affinity="ClientIP", seed=SEED)
    assert requests["pod"].nunique() == 1
    summary = traffic.summarize(requests, replicas=[e["pod"] for e in endpoints(4)])
    assert sorted(summary["count"]) == [0, 0, 0, 200]
    assert summary.attrs["p_value"] < 0.001


def test_no_ready_endpoints_is_not_found():
    with pytest.raises(NotFound, match="no ready endpoints"):
        traffic.modeled_sample([], 10)


def test_summarize_shows_a_replica_that_got_nothing():
    requests = measured(["nginx-hello-1", "nginx-hello-2"] * 10)
    summary = traffic.summarize(requests, replicas=["nginx-hello-1", "nginx-hello-2", "nginx-hello-3"])
    row = summary.set_index("replica").loc["nginx-hello-3"]
    assert row["count"] == 0 and row["share"] == 0
    assert summary["expected_share"].tolist() == pytest.approx([1 / 3] * 3)
    assert summary.attrs["n"] == 20
    assert summary.attrs["p_value"] < 0.05


def test_summarize_does_not_count_failed_requests():
    requests = measured(["nginx-hello-1", "nginx-hello-2", "nginx-hello-2"], ok=[True, True, False])
    summary = traffic.summarize(requests)
    assert summary["count"].tolist() == [1, 1]
    assert summary.attrs["failed"] == 1


def test_summarize_falls_back_to_the_address_without_a_name():
    requests = measured(["nginx-hello-1", "nginx-hello-2"])
    requests.loc[1, "server_name"] = None
    assert traffic.summarize(requests)["replica"].tolist() == ["10.244.2.5:80", "nginx-hello-1"]


def test_mixing_modeled_and_measured_requests_raises():
    mixed = pd.concat([measured(["nginx-hello-1"]), traffic.modeled_sample(endpoints(2), 5, seed=SEED)],
                      ignore_index=True)
    with pytest.raises(InvalidInput, match="measured and modeled"):
        traffic.summarize(mixed)


def test_even_spread_p_value():
    assert traffic.even_spread_p_value([42]) == 1.0
    assert traffic.even_spread_p_value([100, 100, 100]) == pytest.approx(1.0)
    assert traffic.even_spread_p_value([300, 0, 0]) < 1e-6
    with pytest.raises(InvalidInput):
        traffic.even_spread_p_value([0, 0])


def test_parse_kube_svc_chain_finds_the_three_endpoints():
    table = traffic.parse_kube_svc_chain((DATA / "nat.txt").read_text(), "nginx-svc", "default")
    assert table.attrs["svc_chain"] == "KUBE-SVC-V2OKYYMBY3REGZOG"
    assert table["endpoint"].tolist() == ["10.244.1.5:80", "10.244.2.7:80", "10.244.3.9:80"]
    assert table["probability"].tolist() == pytest.approx([1 / 3, 1 / 2, 1.0])
    assert table["effective_share"].tolist() == pytest.approx([1 / 3] * 3)
    assert table["chain"].tolist() == ["KUBE-SEP-C4GGKOBHP6PJZQCQ", "KUBE-SEP-2ZRNXKBNFBE4AJAB",
                                       "KUBE-SEP-N4G2XR5TDX7PQE7P"]


def test_parse_kube_svc_chain_tells_namespaces_apart():
    table = traffic.parse_kube_svc_chain((DATA / "nat.txt").read_text(), "nginx-svc", "staging")
    assert table["endpoint"].tolist() == ["10.244.1.6:80", "10.244.2.8:80"]


def test_parse_kube_svc_chain_without_endpoint_comments_uses_the_dnat():
    """Older kube-proxy comments the KUBE-SVC rules without '-> ip:port'."""
    text = (DATA / "nat.txt").read_text()
    for ip in ("10.244.1.5", "10.244.2.7", "10.244.3.9"):
        text = text.replace(f"default/nginx-svc:tcp -> {ip}:80", "default/nginx-svc:tcp")
    table = traffic.parse_kube_svc_chain(text, "nginx-svc", "default")
    assert table["endpoint"].tolist() == ["10.244.1.5:80", "10.244.2.7:80", "10.244.3.9:80"]


def test_parse_kube_svc_chain_without_sep_chains_uses_the_comments():
    """A grep for the Service's chains alone still names the endpoints from the rule comments."""
    lines = [line for line in (DATA / "nat.txt").read_text().splitlines() if "-A KUBE-SEP-" not in line]
    table = traffic.parse_kube_svc_chain("\n".join(lines), "nginx-svc", "default")
    assert table["endpoint"].tolist() == ["10.244.1.5:80", "10.244.2.7:80", "10.244.3.9:80"]


def test_parse_kube_svc_chain_for_a_missing_service_says_what_to_check():
    with pytest.raises(NotFound, match="default/nginx-missing"):
        traffic.parse_kube_svc_chain((DATA / "nat.txt").read_text(), "nginx-missing", "default")


def test_sweep_frame_has_one_row_per_replica_and_count():
    results = {k: traffic.modeled_sample(endpoints(k), 100 * k, seed=SEED + k) for k in (1, 3, 5)}
    sweep = traffic.sweep_frame(results)
    assert list(sweep.columns) == ["replicas", "replica", "count", "share", "p_value", "mode"]
    assert sweep.groupby("replicas").size().to_dict() == {1: 1, 3: 3, 5: 5}
    assert sweep.groupby("replicas")["share"].sum().tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert sweep.attrs["mode"] == "modeled"
    assert math.isclose(sweep.loc[sweep["replicas"] == 1, "p_value"].iloc[0], 1.0)


def test_sweep_frame_refuses_a_half_modeled_sweep():
    results = {1: measured(["nginx-hello-1"] * 3), 2: traffic.modeled_sample(endpoints(2), 10, seed=SEED)}
    with pytest.raises(InvalidInput, match="measured and modeled"):
        traffic.sweep_frame(results)


def test_nslookup_answers_parse():
    from k8snb.probe import parse_nslookup

    ok = parse_nslookup("nginx-svc", "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\nName:\tnginx-svc.default.svc."
                                      "cluster.local\nAddress: 10.96.12.3\n\n")
    assert (ok.server, ok.name, ok.addresses, ok.nxdomain) == ("10.96.0.10", "nginx-svc.default.svc.cluster.local",
                                                               ("10.96.12.3",), False)
    for text in ("** server can't find nginx: NXDOMAIN\n", "*** Can't find nginx.svc.cluster.local: No answer\n",
                 ";; Got SERVFAIL reply from 10.96.0.10\n** server can't find nginx: SERVFAIL\n"):
        missing = parse_nslookup("nginx", "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n" + text)
        assert missing.nxdomain and missing.addresses == () and missing.server == "10.96.0.10"
