"""Safe on anyone's cluster, clear failures: each bad input gives one readable error, nothing changes."""
from __future__ import annotations

import base64
import os
import socket
import time

import pytest
import yaml

import k8snb
from k8snb.errors import Conflict, Forbidden, InvalidInput, NotFound, NotReachable, NotReadyInTime

pytestmark = pytest.mark.cluster


def test_existing_unlabelled_object_is_never_overwritten(cluster, namespace):
    foreign = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "nginx-hello", "namespace": namespace, "labels": {"owner": "someone"}},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "theirs"}},
                        "template": {"metadata": {"labels": {"app": "theirs"}},
                                     "spec": {"containers": [{"name": "c", "image": "their/image:1"}]}}}}
    cluster.api.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body=foreign)
    before = cluster.api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/nginx-hello")
    with pytest.raises(Conflict, match=r"Deployment nginx-hello in namespace .* not created by the course"):
        k8snb.article(cluster, namespace=namespace)
    with pytest.raises(Conflict):
        k8snb.scale(cluster, "nginx-hello", 3, namespace)
    after = cluster.api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/nginx-hello")
    # The controller may update status; spec (generation), labels and managers stay as they were.
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["metadata"]["labels"] == {"owner": "someone"}
    assert "k8snb" not in {m["manager"] for m in after["metadata"]["managedFields"]}
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "their/image:1"


def test_cleanup_deletes_only_labelled_objects(cluster, namespace):
    k8snb.apply(cluster, k8snb.load("clusterip-svc", namespace)[0])
    foreign = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep-me", "namespace": namespace}}
    cluster.api.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=foreign)
    removed = k8snb.cleanup(cluster, namespaces=[namespace])
    assert ("Service", "nginx-svc") in set(zip(removed["kind"], removed["name"]))
    assert cluster.api.exists(f"/api/v1/namespaces/{namespace}/configmaps/keep-me") is not None
    assert cluster.api.exists(f"/api/v1/namespaces/{namespace}/services/nginx-svc") is None


def test_existing_namespace_is_used_but_never_deleted(cluster):
    name = "t-foreign-ns"
    cluster.api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}}, ok=(409,))
    try:
        k8snb.apply(cluster, k8snb.load("clusterip-svc", name)[0])
        k8snb.cleanup(cluster, namespaces=[name])
        ns = cluster.api.exists(f"/api/v1/namespaces/{name}")
        assert ns is not None and ns["status"]["phase"] == "Active"
        assert k8snb.PART_OF not in (ns["metadata"].get("labels") or {})
    finally:
        cluster.api.delete(f"/api/v1/namespaces/{name}")


@pytest.mark.parametrize("replicas", [-1, 51, 2.5, "3"])
def test_replicas_out_of_range_refused_before_any_call(replicas):
    class NoApi:
        def __getattr__(self, name):
            raise AssertionError("the API must not be called")

    fake = k8snb.Cluster(api=NoApi(), context="x", server="x", version="v1", flavor="other")
    with pytest.raises(InvalidInput, match="replicas must be a whole number from 0 to 50"):
        k8snb.scale(fake, "nginx-hello", replicas)
    with pytest.raises(InvalidInput):
        k8snb.article(fake, replicas=replicas)


def test_invalid_names_refused():
    with pytest.raises(InvalidInput, match="DNS-1123"):
        k8snb.load("nginx-deploy", "Bad_Namespace")
    with pytest.raises(InvalidInput, match="argv"):
        k8snb.exec_argv(None, "pod", "curl -I nginx-svc")


def test_unknown_namespace(cluster):
    with pytest.raises(NotFound, match="Deployment no-such-ns/nginx-hello does not exist"):
        k8snb.scale(cluster, "nginx-hello", 2, "no-such-ns")


def test_service_without_ready_endpoints(cluster, namespace):
    k8snb.apply(cluster, k8snb.load("clusterip-svc", namespace)[0])
    with pytest.raises(NotFound, match="no ready endpoints for selector app=nginx"):
        k8snb.sample(cluster, 10, "nginx-svc", namespace)
    with pytest.raises(NotReadyInTime, match="no ready endpoints for selector app=nginx"):
        k8snb.wait_endpoints(cluster, "nginx-svc", namespace, timeout=2)


def test_no_kubeconfig_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("K8SNB_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(NotReachable, match="no kubeconfig found"):
        k8snb.connect()


def _kubeconfig(path, server: str, token: str = "x", ca: bytes | None = None, context: str = "t") -> str:
    cluster = {"server": server}
    if ca:
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    else:
        cluster["insecure-skip-tls-verify"] = True
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c", "cluster": cluster}], "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}]}))
    return str(path)


def test_unreachable_server_fails_within_ten_seconds(monkeypatch, tmp_path):
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("KUBECONFIG", _kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{port}"))
    started = time.monotonic()
    with pytest.raises(NotReachable, match=r"cannot reach the Kubernetes API .*connection refused"):
        k8snb.connect()
    assert time.monotonic() - started < 10


def test_unknown_context(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", _kubeconfig(tmp_path / "kc", "https://127.0.0.1:1"))
    with pytest.raises(NotReachable, match="unknown context 'nope'"):
        k8snb.connect("nope")


def _token_for(cluster, namespace: str, sa: str) -> str:
    req = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}}
    out = cluster.api.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token", body=req).json()
    return out["status"]["token"]


def test_forbidden_nodes_still_gives_a_pod_table(cluster, namespace, monkeypatch, tmp_path):
    """403 on listing nodes: the pods table comes back without node columns and says why."""
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader", "namespace": namespace}}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "pod-reader", "namespace": namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
               "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]}
    for obj in (sa, role, binding):
        k8snb.apply(cluster, obj)
    k8snb.apply(cluster, k8snb.load("netshoot", namespace)[0])
    k8snb.wait_deployment(cluster, "netshoot", namespace, progress=False)
    ca = base64.b64decode(yaml.safe_load(open(cluster.kubeconfig.split(os.pathsep)[0]))["clusters"][0]["cluster"]
                          ["certificate-authority-data"]) if cluster.is_lab else None
    monkeypatch.setenv("KUBECONFIG", _kubeconfig(tmp_path / "kc", cluster.server, _token_for(cluster, namespace, "reader"), ca))
    limited = k8snb.connect(quiet=True)
    table = k8snb.pods(limited, namespace)
    assert len(table) == 1 and table["ip"].iloc[0] != "<none>"
    assert table["node_ip"].isna().all()
    assert "may not list nodes" in table.attrs["note"]
    with pytest.raises(Forbidden, match="forbidden"):
        k8snb.nodes(limited)
    with pytest.raises(Forbidden, match="learner RBAC"):
        k8snb.scale(limited, "netshoot", 2, namespace)
