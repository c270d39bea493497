"""Notebook 03's DNS cells on pods that carry traffic: resolv.conf, name forms, headless, env."""
from __future__ import annotations

import time

import pandas as pd
import pytest

import k8snb
from k8snb import course, dns

pytestmark = [pytest.mark.cluster, pytest.mark.realnodes]


def test_resolv_conf_names_kube_dns_and_the_domain_comes_from_the_search_list(cluster, article):
    ns, _ = article
    conf = dns.resolv_conf(cluster, ns)
    kube_dns = k8snb.services(cluster, "kube-system").set_index("name").loc["kube-dns", "cluster_ip"]
    assert conf.attrs["kube_dns"] == kube_dns and set(conf["mode"]) == {"measured"}
    # kind and the lab run without a node-local cache: the pod asks kube-dns's ClusterIP itself.
    assert conf.attrs["match"] is True and conf.attrs["nameserver"] == kube_dns
    assert conf.attrs["search"][0] == f"{ns}.svc.{conf.attrs['domain']}" and conf.attrs["ndots"] == 5
    assert "(measured)" in conf.attrs["summary"] and "read from the search list" in conf.attrs["summary"]


def test_name_forms_answer_alike_and_dig_sends_what_the_rule_says(cluster, article):
    ns, ns2 = article
    forms = dns.name_forms(cluster, namespace=ns, other=f"nginx.{ns2}").set_index("query")
    domain = forms.attrs["domain"]
    fqdn = f"nginx-svc.{ns}.svc.{domain}"
    svc_ip = k8snb.services(cluster, ns).set_index("name").loc["nginx-svc", "cluster_ip"]
    for name in ("nginx-svc", f"nginx-svc.{ns}", f"nginx-svc.{ns}.svc", fqdn, fqdn + "."):
        assert (forms.loc[name, "answer"], forms.loc[name, "address"]) == (fqdn, svc_ip), name
    assert forms["queries_by_rule"].tolist() == [1, 2, 3, 4, 1, 2]
    assert forms["queries_sent"].tolist() == forms["queries_by_rule"].tolist(), forms["asked"].tolist()
    assert forms.loc[fqdn + ".", "asked"] == f"{fqdn} NOERROR"
    assert forms.loc[f"nginx.{ns2}", "answer"] == f"nginx.{ns2}.svc.{domain}"


def test_headless_service_answers_with_every_ready_pod(cluster, article):
    ns, _ = article
    k8snb.scale_and_wait(cluster, 3, namespace=ns)
    eps = dns.apply_headless(cluster, ns)
    assert len(eps) == 3
    svc = cluster.api.get(f"/api/v1/namespaces/{ns}/services/{dns.HEADLESS_SERVICE}")
    assert svc["spec"]["clusterIP"] == "None" and svc["metadata"]["labels"][k8snb.PART_OF] == "k8snb"
    heads = dns.headless_vs_clusterip(cluster, namespace=ns).set_index("service")
    assert heads.loc[dns.HEADLESS_SERVICE, "dns_lists_ready_pods"]
    assert sorted(heads.loc[dns.HEADLESS_SERVICE, "dns_answer"].split(", ")) == sorted(eps["address"])
    assert heads.loc["nginx-svc", "dns_answer"] == heads.loc["nginx-svc", "clusterIP"]
    assert "DNS lists 3 address(es)" in heads.attrs["summary"]
    assert dns.HEADLESS_SERVICE in set(k8snb.cleanup(cluster, [ns])["name"])


def test_service_variables_only_in_pods_started_after_the_service(cluster, needs_traffic, namespace):
    # netshoot first, the Service afterwards: netshoot lacks its variables, a pod started later has them.
    for obj in k8snb.load("netshoot", namespace) + k8snb.load("nginx-deploy", namespace):
        k8snb.apply(cluster, obj)
    k8snb.wait_deployment(cluster, "netshoot", namespace, progress=False)
    early = k8snb.pod_for(cluster, "netshoot", namespace)
    # The API's timestamps have one-second resolution, and within one second service_env says "same
    # second" (None): the Service is created in a later second than netshoot's start, for certain.
    time.sleep(1.1)
    k8snb.apply(cluster, k8snb.load("clusterip-svc", namespace)[0])
    k8snb.apply(cluster, k8snb.load("headless-svc", namespace)[0])
    k8snb.apply(cluster, course.client_objects(namespace=namespace)[0])
    course.apply_client(cluster, namespace=namespace)
    late = k8snb.pod_for(cluster, course.CLIENT_DEPLOYMENT, namespace)
    table = dns.service_env(cluster, [early, late], namespace).set_index(["pod", "service"])
    svc_ip = k8snb.services(cluster, namespace).set_index("name").loc["nginx-svc", "cluster_ip"]
    started_after = table.loc[(early, "nginx-svc"), "started_after"]  # numpy's bool when no row says "same second"
    assert not pd.isna(started_after) and not started_after
    assert pd.isna(table.loc[(early, "nginx-svc"), "host"])
    assert table.loc[(late, "nginx-svc"), ["host", "port"]].tolist() == [svc_ip, "80"]
    assert pd.isna(table.loc[(late, dns.HEADLESS_SERVICE), "host"])
    text = dns.env_sentence(table.reset_index(), "nginx-svc")
    assert f"{early} (started before the Service) has no NGINX_SVC_SERVICE_HOST (measured)" in text
    assert f"NGINX_SVC_SERVICE_HOST={svc_ip} (measured)" in text


def test_forms_summary_reports_what_dig_sent(cluster, article):
    ns, ns2 = article
    forms = dns.name_forms(cluster, namespace=ns, other=f"nginx.{ns2}")
    line = dns.forms_summary(forms)
    assert ": 1, 4 and 1 by the search rule" in line and line.endswith("; dig sent 1, 4 and 1 (measured)."), line
