"""Re-record the API JSON the unit tests read: `python tests/record_api_json.py` with a lab running.

Applies the article's objects in two scratch namespaces, waits for them, saves the raw list
responses (pods, nodes, services, EndpointSlices) and what `kubectl get -o wide` printed for the
same objects at the same moment, then deletes the namespaces.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import k8snb
from k8snb.lab.binaries import bin_dir, pinned_versions

OUT = Path(__file__).parent / "data" / "recorded"
NS, NS2 = "rec", "rec-nginx"


def main() -> None:
    os.environ.setdefault("KUBECONFIG", str(k8snb.lab.kubeconfig_path()))
    cluster = k8snb.connect()
    kubectl = str(bin_dir(pinned_versions()["K8S_VERSION"]) / "kubectl")
    try:
        k8snb.article(cluster, namespace=NS, nginx_namespace=NS2, replicas=3)
        k8snb.apply(cluster, k8snb.load("nodeport-svc", NS)[0])
        k8snb.apply(cluster, k8snb.load("loadbalancer-svc", NS)[0])
        for name in ("nginx-hello", "netshoot"):
            k8snb.wait_deployment(cluster, name, NS, progress=False)
        k8snb.wait_endpoints(cluster, "nginx-svc", NS, count=3)
        OUT.mkdir(parents=True, exist_ok=True)
        paths = {"pods": f"/api/v1/namespaces/{NS}/pods", "nodes": "/api/v1/nodes",
                 "services": f"/api/v1/namespaces/{NS}/services",
                 "endpointslices": f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"}
        for name, path in paths.items():
            data = json.loads(cluster.api.request("GET", path).body)
            (OUT / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        for name, args in {"pods": ["get", "pods", "-n", NS], "nodes": ["get", "nodes"],
                           "services": ["get", "svc", "-n", NS]}.items():
            text = subprocess.run([kubectl, *args, "-o", "wide"], check=True, capture_output=True, text=True).stdout
            (OUT / f"{name}.kubectl.txt").write_text(text)
    finally:
        k8snb.cleanup(cluster, namespaces=[NS, NS2])
    print(f"recorded into {OUT}")


if __name__ == "__main__":
    main()
