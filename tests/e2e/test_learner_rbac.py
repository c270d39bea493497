"""A classroom account: notebook 03 runs as the ServiceAccount bound only to the shipped learner
RBAC, and an action outside it fails with a message that says what is missing."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import k8snb
from k8snb.errors import Forbidden

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.cluster

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "03_services_discovery_and_load_balancing.ipynb"


@pytest.fixture
def learner_kubeconfig(cluster, tmp_path):
    objs = k8snb.load("learner-rbac")
    for obj in objs:
        k8snb.apply(cluster, obj)
    req = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}
    token = cluster.api.request("POST", "/api/v1/namespaces/default/serviceaccounts/k8snb-learner/token",
                                body=req).json()["status"]["token"]
    admin = yaml.safe_load(Path(cluster.kubeconfig.split(":")[0]).read_text())
    entry = next(c["cluster"] for c in admin["clusters"])
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "learner",
           "clusters": [{"name": "c", "cluster": {"server": cluster.server,
                                                  **({"certificate-authority-data": entry["certificate-authority-data"]}
                                                     if "certificate-authority-data" in entry else
                                                     {"insecure-skip-tls-verify": True})}}],
           "users": [{"name": "learner", "user": {"token": token}}],
           "contexts": [{"name": "learner", "context": {"cluster": "c", "user": "learner"}}]}
    path = tmp_path / "learner.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    yield path
    for obj in reversed(objs):
        if obj["kind"] != "Namespace":
            cluster.api.delete(k8snb.manifests.object_path(obj))


def test_notebook_03_as_least_privilege_learner(learner_kubeconfig, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(learner_kubeconfig))
    limited = k8snb.connect(quiet=True)
    assert limited.context == "learner"
    with pytest.raises(Forbidden, match=r"forbidden: .*kube-system.*learner RBAC"):
        k8snb.apply(limited, k8snb.load("clusterip-svc", "kube-system")[0])
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{errors[0]['ename']}: {errors[0]['evalue']}"
