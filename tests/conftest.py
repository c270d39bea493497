"""Shared fixtures: a real cluster for the e2e tier, a namespace per test.

The cluster is, in order: the one KUBECONFIG points at (if it answers), the running lab, or a lab
this session starts (simulated nodes unless K8SNB_LAB_NODES=real) and stops at the end. In CI
(`CI` set) a missing cluster is a failure, never a silent skip.
"""
from __future__ import annotations

import os
import uuid

import pytest

import k8snb
from k8snb import lab
from k8snb.errors import K8snbError


def _fail_or_skip(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI needs a cluster: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def cluster():
    """A connected k8snb.Cluster; starts the lab when nothing else is available."""
    started = False
    if not os.environ.get("KUBECONFIG") and not lab.status().running:
        if os.environ.get("K8SNB_NO_LAB"):
            _fail_or_skip("no cluster configured and K8SNB_NO_LAB is set")
        nodes = os.environ.get("K8SNB_LAB_NODES", "kwok")
        try:
            lab.up(lab.LabPlan(nodes_mode=nodes))
        except K8snbError as exc:
            _fail_or_skip(f"could not start the lab: {exc}")
        started = True
    if not os.environ.get("KUBECONFIG"):
        os.environ["KUBECONFIG"] = str(lab.kubeconfig_path())
    try:
        c = k8snb.connect(quiet=True)
    except K8snbError as exc:
        _fail_or_skip(str(exc))
    yield c
    if started:
        lab.down(quiet=True)


@pytest.fixture(scope="session")
def executed(cluster, tmp_path_factory):
    """Every notebook executed once per session, exported as a handout and kept as `<name>.ipynb`:
    (folder, index.html, the build's error or ''). The notebook tests read these outputs and the
    browser tests open these handouts, instead of each executing all five again."""
    from k8snb import handouts

    out = tmp_path_factory.mktemp("executed")
    try:
        return out, handouts.build_handouts(output=out, keep_executed=True), ""
    except K8snbError as exc:  # a failed notebook: its test reads the error from its outputs
        return out, out / "index.html", str(exc)


@pytest.fixture(scope="session")
def real_nodes(cluster) -> bool:
    return k8snb.can_carry_traffic(cluster)


@pytest.fixture
def needs_traffic(cluster, real_nodes):
    """Skip on simulated nodes, unless the run promised real nodes (then it is a failure)."""
    if not real_nodes:
        if os.environ.get("K8SNB_REQUIRE_REAL"):
            pytest.fail("K8SNB_REQUIRE_REAL is set but the cluster's pods cannot carry traffic")
        pytest.skip("the cluster's nodes are simulated (kwok): no packet can flow")


def _namespace(cluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    k8snb.apply(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture
def namespace(cluster):
    """A fresh namespace (labelled part-of=k8snb), deleted after the test."""
    name = _namespace(cluster, "t")
    yield name
    cluster.api.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def namespace2(cluster):
    """A second fresh namespace, for the article's `nginx` namespace in cross-namespace tests."""
    name = _namespace(cluster, "t2")
    yield name
    cluster.api.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def article(cluster, needs_traffic, namespace, namespace2):
    """The article's objects in two fresh namespaces, set up as notebook 03 does: applied, every
    Deployment ready, both Services answering the client. Returns (namespace, nginx namespace)."""
    from k8snb import course

    course.ensure_article(cluster, namespace=namespace, nginx_namespace=namespace2)
    return namespace, namespace2
