"""kind's offline recipes agree with what kind and the lab do: the cluster config, the pod network
kind applies from the node image, and the node image's binaries (no cluster needed)."""
from __future__ import annotations

import yaml

from k8snb.lab import binaries, images, kind, kindnode

RECIPES = binaries.recipes_dir() / "kind"


def test_cluster_config_adds_only_what_offline_needs(monkeypatch):
    monkeypatch.setattr(kind, "_cgroup_v1", lambda: True)
    config = kind.cluster_config()
    assert config["name"] == "k8snb"
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker", "worker"]
    assert all(n["extraMounts"][0]["containerPath"] == "/etc/containerd/certs.d" for n in config["nodes"])
    assert "disableDefaultCNI" not in config["networking"]  # kind applies the node image's default CNI
    patches = [yaml.safe_load(p) for p in config["kubeadmConfigPatches"]]
    assert {"kind": "ClusterConfiguration", "dns": {"imageTag": binaries.pinned_versions()["COREDNS_VERSION"]}} in patches
    assert {"kind": "KubeletConfiguration", "failCgroupV1": False} in patches
    monkeypatch.setattr(kind, "_cgroup_v1", lambda: False)
    assert all("failCgroupV1" not in p for p in kind.cluster_config()["kubeadmConfigPatches"])


def test_the_pod_network_runs_everywhere_from_an_image_the_lab_builds():
    docs = [d for d in yaml.safe_load_all((RECIPES / "default-cni.yaml").read_text()) if d]
    # The cluster's own network, not the course's objects: a course cleanup must never remove it.
    assert all(d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "k8snb" for d in docs)
    assert not any("app.kubernetes.io/part-of" in d["metadata"]["labels"] for d in docs)
    ds = next(d for d in docs if d["kind"] == "DaemonSet")["spec"]["template"]["spec"]
    assert ds["hostNetwork"] is True and ds["tolerations"] == [{"operator": "Exists"}]
    built = {f"docker.io/{r.repository}:{r.tag}" for r in images.recipes("v0")}
    assert ds["containers"][0]["image"] in built
    # kind templates the file only when it carries its magic phrase; braces must stay literal anyway.
    assert "{{" not in (RECIPES / "default-cni.yaml").read_text()


def test_the_node_image_carries_binaries_kind_up_builds():
    outputs = {o for c in binaries.KIND for o in binaries.outputs(c)}
    assert set(kindnode.PLACES) <= outputs
    assert {"kubeadm", "kubelet", "kubectl", "containerd", "runc", "crictl"} <= set(kindnode.PLACES)


def test_kubeadms_images_are_the_ones_the_lab_builds():
    versions = binaries.pinned_versions()
    names = {f"{r.repository}:{r.tag}" for r in images.kind_recipes(versions)}
    k8s = versions["K8S_VERSION"]
    assert names == {f"kube-apiserver:{k8s}", f"kube-controller-manager:{k8s}", f"kube-scheduler:{k8s}",
                     f"kube-proxy:{k8s}", f"etcd:{versions['ETCD_VERSION'].removeprefix('v')}-0"}
