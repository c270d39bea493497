"""The DNS cells of notebook 03 on text recorded in a netshoot pod on kind (CoreDNS 1.x, musl-free
Alpine netshoot): resolv.conf, nslookup of a headless Service, dig's search walk, env."""
from __future__ import annotations

import pandas as pd
import pytest

from k8snb import dns
from k8snb.probe import parse_nslookup

RESOLV = "search dnsx.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
# A cluster whose domain is not cluster.local, with a comment and a second options line.
RESOLV_CORP = ("# written by kubelet\nnameserver 169.254.20.10\nsearch shop.svc.k8s.corp svc.k8s.corp k8s.corp "
               "ec2.internal\noptions ndots:5\noptions timeout:2 edns0\n")

HEADLESS = (";; Got recursion not available from 10.96.0.10\nServer:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n"
            "Name:\tnginx-headless.dnsx.svc.cluster.local\nAddress: 10.244.2.2\n"
            "Name:\tnginx-headless.dnsx.svc.cluster.local\nAddress: 10.244.1.4\n"
            "Name:\tnginx-headless.dnsx.svc.cluster.local\nAddress: 10.244.2.3\n"
            ";; Got recursion not available from 10.96.0.10\n\n")

DIG = """
;; Got answer:
;; WARNING: .local is reserved for Multicast DNS
;; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 11141
;; flags: qr aa rd; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 1

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
; COOKIE: a63b6dc33c2bd31d (echoed)
;; QUESTION SECTION:
;nginx-svc.dnsx.dnsx.svc.cluster.local. IN A

;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 42515
;; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1

; COOKIE: a63b6dc33c2bd31d (echoed)
;; QUESTION SECTION:
;nginx-svc.dnsx.svc.cluster.local. IN\tA

"""

ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nHOSTNAME=netshoot-7655b578c4-ptl4f\n"
       "NGINX_SVC_SERVICE_PORT_TCP=80\nNGINX_SVC_PORT=tcp://10.96.66.104:80\nKUBERNETES_SERVICE_HOST=10.96.0.1\n"
       "NGINX_SVC_SERVICE_HOST=10.96.66.104\nNGINX_SVC_SERVICE_PORT=80\nHOME=/root\n")


def test_resolv_conf_parses_nameserver_search_and_ndots():
    conf = dns.parse_resolv_conf(RESOLV)
    assert conf.nameservers == ("10.96.0.10",)
    assert conf.search == ("dnsx.svc.cluster.local", "svc.cluster.local", "cluster.local")
    assert conf.ndots == 5
    corp = dns.parse_resolv_conf(RESOLV_CORP)
    assert corp.nameservers == ("169.254.20.10",) and corp.options == {"ndots": "5", "timeout": "2", "edns0": ""}
    assert dns.parse_resolv_conf("nameserver 1.1.1.1\n").ndots == dns.DEFAULT_NDOTS == 1


def test_cluster_domain_is_read_from_the_search_list_not_assumed():
    assert dns.domain_from_search(dns.parse_resolv_conf(RESOLV).search, "dnsx") == "cluster.local"
    assert dns.domain_from_search(dns.parse_resolv_conf(RESOLV_CORP).search, "shop") == "k8s.corp"
    assert dns.domain_from_search(["ec2.internal"], "shop") is None
    assert dns.domain_from_search(dns.parse_resolv_conf(RESOLV).search, "other") is None


@pytest.mark.parametrize("name, answer, expected", [
    ("nginx-svc", "nginx-svc.default.svc.k8s.corp", 1),
    ("nginx-svc.default", "nginx-svc.default.svc.k8s.corp", 2),
    ("nginx-svc.default.svc", "nginx-svc.default.svc.k8s.corp", 3),
    ("nginx-svc.default.svc.k8s.corp", "nginx-svc.default.svc.k8s.corp", 4),  # 4 dots < ndots 5
    ("nginx-svc.default.svc.k8s.corp.", "nginx-svc.default.svc.k8s.corp", 1),  # absolute: asked once
    ("nginx.nginx", "nginx.nginx.svc.k8s.corp", 2),
    ("nginx", None, 4),  # every suffix, then the bare name: all fail
])
def test_queries_follow_ndots_and_the_search_list(name, answer, expected):
    search = ("default.svc.k8s.corp", "svc.k8s.corp", "k8s.corp")
    assert dns.queries_until_answer(name, answer, search, 5) == expected


def test_a_name_with_enough_dots_is_asked_as_is_first():
    assert dns.candidates("a.b.c", ("x",), ndots=2) == ["a.b.c", "a.b.c.x"]
    assert dns.candidates("a.b.c.", ("x",), ndots=2) == ["a.b.c."]


def test_dig_search_walk_is_read_in_order_with_each_status():
    assert dns.parse_dig_search(DIG) == [("nginx-svc.dnsx.dnsx.svc.cluster.local", "NXDOMAIN"),
                                         ("nginx-svc.dnsx.svc.cluster.local", "NOERROR")]
    assert dns.parse_dig_search("") == []


def test_headless_answer_lists_every_pod():
    look = parse_nslookup("nginx-headless", HEADLESS)
    assert look.addresses == ("10.244.2.2", "10.244.1.4", "10.244.2.3") and not look.nxdomain
    assert look.name == "nginx-headless.dnsx.svc.cluster.local"


def test_service_variables_from_env():
    env = dns.parse_env(ENV)
    prefix = dns.env_prefix("nginx-svc")
    assert prefix == "NGINX_SVC"
    assert (env[f"{prefix}_SERVICE_HOST"], env[f"{prefix}_SERVICE_PORT"]) == ("10.96.66.104", "80")
    assert f"{dns.env_prefix('nginx-headless')}_SERVICE_HOST" not in env


def test_env_sentence_says_before_after_and_mode():
    import pandas as pd

    table = pd.DataFrame([
        {"pod": "netshoot-1", "service": "nginx-svc", "started_after": False, "host": None, "mode": "measured"},
        {"pod": "client-2", "service": "nginx-svc", "started_after": True, "host": "10.96.66.104",
         "mode": "measured"}])
    text = dns.env_sentence(table, "nginx-svc")
    assert "netshoot-1 (started before the Service) has no NGINX_SVC_SERVICE_HOST (measured)" in text
    assert "client-2 (started after the Service) has NGINX_SVC_SERVICE_HOST=10.96.66.104 (measured)" in text


# --- simulated nodes: every answer is modeled from the API and says so ---------------------------------
class FakeApi:
    """The API of a kwok cluster with the article's objects and the headless Service (2 ready pods)."""

    SERVICES = {
        ("kube-system", "kube-dns"): {"clusterIP": "10.96.0.10", "created": "2026-01-01T00:00:00Z"},
        ("default", "nginx-svc"): {"clusterIP": "10.96.12.3", "created": "2026-01-01T10:00:00Z"},
        ("default", "nginx-headless"): {"clusterIP": "None", "created": "2026-01-01T10:05:00Z"},
        ("nginx", "nginx"): {"clusterIP": "10.96.40.4", "created": "2026-01-01T10:00:00Z"},
    }
    PODS = {"netshoot-early": "2026-01-01T09:00:00Z", "client-late": "2026-01-01T11:00:00Z"}

    def _svc(self, ns, name):
        spec = self.SERVICES[(ns, name)]
        return {"metadata": {"name": name, "namespace": ns, "creationTimestamp": spec["created"]},
                "spec": {"clusterIP": spec["clusterIP"], "ports": [{"port": 80}]}}

    def exists(self, path, deadline=None):
        parts = path.strip("/").split("/")
        if parts[-2] == "services" and (parts[3], parts[-1]) in self.SERVICES:
            return self._svc(parts[3], parts[-1])
        return None

    def get(self, path, deadline=None):
        name = path.rsplit("/", 1)[1]
        return {"metadata": {"name": name, "creationTimestamp": self.PODS[name]},
                "status": {"startTime": self.PODS[name]}}

    def list(self, path, labelSelector=None, **kwargs):
        if path.endswith("/services"):
            ns = path.split("/")[4]
            return [self._svc(n, s) for (n, s) in self.SERVICES if n == ns]
        if path.endswith("/endpointslices") and labelSelector.endswith(("nginx-headless", "nginx-svc")):
            return [{"ports": [{"port": 80, "name": "tcp"}], "endpoints": [
                {"addresses": ["10.244.1.5"], "conditions": {"ready": True}},
                {"addresses": ["10.244.2.6"], "conditions": {"ready": True}},
                {"addresses": ["10.244.2.7"], "conditions": {"ready": False}}]}]
        return []


class KwokCluster:
    def __init__(self):
        self.api = FakeApi()
        self.context = "k8snb-lab"
        self._cache = {"real_nodes": False}
        self.is_lab = True


def test_resolv_conf_on_simulated_nodes_is_modeled_and_says_the_domain_is_assumed():
    conf = dns.resolv_conf(KwokCluster())
    assert set(conf["mode"]) == {"modeled"} and conf.attrs["match"] is True
    assert conf.attrs["search"][0] == "default.svc.cluster.local"
    assert "assumed, not read" in conf.attrs["summary"] and conf.attrs["summary"].endswith("(modeled).")


def test_name_forms_on_simulated_nodes_send_nothing():
    forms = dns.name_forms(KwokCluster())
    assert set(forms["mode"]) == {"modeled"} and forms["queries_sent"].isna().all()
    assert forms["address"].tolist() == ["10.96.12.3"] * 5 + ["10.96.40.4"]
    assert forms["queries_by_rule"].tolist() == [1, 2, 3, 4, 1, 2]
    assert dns.forms_summary(forms).endswith("nothing sent (modeled).")


def test_headless_on_simulated_nodes_lists_the_ready_pods_modeled():
    heads = dns.headless_vs_clusterip(KwokCluster()).set_index("service")
    assert heads.loc["nginx-headless", "dns_answer"] == "10.244.1.5, 10.244.2.6"
    assert heads.loc["nginx-svc", "dns_answer"] == "10.96.12.3"
    assert set(heads["mode"]) == {"modeled"}


def test_service_env_on_simulated_nodes_applies_the_kubelets_rule():
    table = dns.service_env(KwokCluster(), ["netshoot-early", "client-late"]).set_index(["pod", "service"])
    assert pd.isna(table.loc[("netshoot-early", "nginx-svc"), "host"])
    assert "started before the Service" in table.loc[("netshoot-early", "nginx-svc"), "why"]
    assert table.loc[("client-late", "nginx-svc"), "host"] == "10.96.12.3"
    assert pd.isna(table.loc[("client-late", "nginx-headless"), "host"])
    assert set(table["mode"]) == {"modeled"}
