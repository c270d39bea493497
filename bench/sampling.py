"""Figure 3: requests per second through a Service on the lab (real nodes), fresh connection each:
`k8snb.sample` (all requests in one exec) vs one `kubectl exec ... curl` per request, as the article
does; and k8snb's per-request overhead beside curl's own `time_total`.

Uses the cluster KUBECONFIG points at (make bench: the lab); its objects live in namespace
k8snb-bench and are removed afterwards.
"""
from __future__ import annotations

import json
import os
import subprocess
import time

import k8snb
from k8snb.lab.binaries import bin_dir, pinned_versions

NS, NS2 = "k8snb-bench", "k8snb-bench-nginx"
REQUESTS = 2000
KUBECTL_REQUESTS = 30  # one process and one API round trip each: a few seconds apiece on 2 cores


def main() -> list[dict]:
    cluster = k8snb.connect(quiet=True)
    if not k8snb.can_carry_traffic(cluster):
        return [{"figure": "sampling through a Service", "note": "skipped: this cluster's nodes are simulated"}]
    try:
        k8snb.article(cluster, namespace=NS, nginx_namespace=NS2)
        k8snb.wait_deployment(cluster, "netshoot", NS, progress=False)
        k8snb.scale_and_wait(cluster, 5, namespace=NS)
        k8snb.sample(cluster, 50, namespace=NS)  # warm-up: kube-proxy rules, DNS cache
        t = time.perf_counter()
        frame = k8snb.sample(cluster, REQUESTS, namespace=NS)
        ours = time.perf_counter() - t
        assert frame["ok"].all() and frame["new_connection"].all()
        pod = k8snb.pod_for(cluster, "netshoot", NS)
        kubectl = str(bin_dir(pinned_versions()["K8S_VERSION"]) / "kubectl")
        t = time.perf_counter()
        failed = sum(
            subprocess.run([kubectl, "exec", "-n", NS, pod, "--", "curl", "-s", "-o", "/dev/null", "nginx-svc"],
                           capture_output=True, env=dict(os.environ), timeout=60).returncode != 0
            for _ in range(KUBECTL_REQUESTS))
        theirs = time.perf_counter() - t
    finally:
        k8snb.cleanup(cluster, namespaces=[NS, NS2])
    ours_rps, their_rps = REQUESTS / ours, KUBECTL_REQUESTS / theirs
    per_request_ms = ours / REQUESTS * 1000
    curl_ms = float(frame["latency_ms"].median())
    return [
        {"figure": f"requests/s through nginx-svc, 5 replicas, new connection each ({REQUESTS} requests)",
         "ours_s": round(ours, 2), "alternative": f"kubectl exec + curl per request ({KUBECTL_REQUESTS} requests)",
         "alt_s": round(theirs, 2), "ratio": round(their_rps / ours_rps, 4), "target": ">= 100x faster",
         "met": ours_rps >= 100 * their_rps,
         "note": f"{ours_rps:.0f} req/s vs {their_rps:.1f} req/s = {ours_rps / their_rps:.0f}x"
                 + (f"; {failed} kubectl requests failed" if failed else "")},
        {"figure": "per-request cost of k8snb.sample vs curl's own time_total",
         "ours_s": round(per_request_ms / 1000, 5), "alternative": "curl time_total (median)",
         "alt_s": round(curl_ms / 1000, 5), "ratio": round(per_request_ms / curl_ms, 2), "target": "-", "met": None,
         "note": f"{per_request_ms:.2f} ms per request in k8snb vs {curl_ms:.2f} ms inside curl"},
    ]


if __name__ == "__main__":
    for row in main():
        print(json.dumps(row))
