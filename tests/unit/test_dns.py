"""The DNS cells of notebook 03 on text recorded in a netshoot pod on kind (CoreDNS 1.x, musl-free
Alpine netshoot): resolv.conf, nslookup of a headless Service, dig's search walk, env."""
from __future__ import annotations

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
