"""Figure 1: tables at scale on a real API server: a private lab with simulated nodes holding
1,000 nodes and 30,000 pods (kwok's documented comfort zone: 1k nodes, 100k pods).

Contenders, each in its own process so that time and peak memory (max RSS) are its own:
  k8snb     `k8snb.pods(cluster)` + `k8snb.nodes(cluster)` (raw JSON pages, msgspec, one DataFrame)
  kubectl   `kubectl get pods -A -o wide` (text to /dev/null)
  client    the official client's `list_pod_for_all_namespaces()` with model objects

Run alone: `python bench/tables_cluster.py [nodes] [pods]`. It starts and stops its own lab (own
state directory and ports), so it never touches the course's lab.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

NODES, PODS = 1_000, 30_000
PORT, ETCD_PORT = 6843, 12779
#: Parallel POSTs while filling the cluster: enough to keep the API server busy on 2 cores.
WRITERS = 8

CONTENDERS = {
    "k8snb": "import k8snb; c = k8snb.connect(quiet=True); p = k8snb.pods(c); n = k8snb.nodes(c); print(len(p))",
    "client": ("from kubernetes import client, config; config.load_kube_config(); "
               "print(len(client.CoreV1Api().list_pod_for_all_namespaces(_request_timeout=600).items))"),
}


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall time (s), peak RSS (MiB) and stdout of one child process."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    out = proc.stdout.read()
    err = proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {err[-500:]}")
    return elapsed, usage.ru_maxrss / 1024, out


def fill(cluster, nodes: int, pods: int) -> float:
    """Create simulated nodes and bare pods bound to them; return pods created per second."""
    from k8snb.lab.control import _node_manifest
    from k8snb.lab.plan import LabPlan

    plan = LabPlan()
    version = cluster.version

    def make_node(i: int) -> None:
        name = f"bench-node-{i:04d}"
        ip = f"172.30.{i // 250}.{2 + i % 250}"
        body = _node_manifest(plan, name, ip, version)
        body["spec"] = {}
        cluster.api.request("POST", "/api/v1/nodes", body=body, ok=(409,))

    def make_pod(i: int) -> None:
        ns = f"bench-{i % 10}"
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"pod-{i:05d}", "namespace": ns, "labels": {"app": f"app-{i % 100}"}},
                "spec": {"nodeName": f"bench-node-{i % nodes:04d}",
                         "containers": [{"name": "app", "image": "nginxdemos/hello"}]}}
        cluster.api.request("POST", f"/api/v1/namespaces/{ns}/pods", body=body, ok=(409,))

    for k in range(10):
        cluster.api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": f"bench-{k}"}}, ok=(409,))
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(make_node, range(nodes)))
        t = time.perf_counter()
        list(pool.map(make_pod, range(pods)))
    return pods / (time.perf_counter() - t)


def main(nodes: int = NODES, pods: int = PODS) -> list[dict]:
    import k8snb
    from k8snb.lab.binaries import bin_dir, pinned_versions

    state = tempfile.mkdtemp(prefix="k8snb-bench-")
    env = dict(os.environ, K8SNB_STATE=state)
    cli = [sys.executable, "-m", "k8snb.cli", "lab"]
    subprocess.run([*cli, "up", "--nodes", "kwok", "--port", str(PORT), "--etcd-port", str(ETCD_PORT)],
                   env=env, check=True, capture_output=True, timeout=300)
    try:
        env["KUBECONFIG"] = str(Path(state) / "lab" / "kubeconfig")
        os.environ["KUBECONFIG"] = env["KUBECONFIG"]
        cluster = k8snb.connect(quiet=True)
        rate = fill(cluster, nodes, pods)
        kubectl = str(bin_dir(pinned_versions()["K8S_VERSION"]) / "kubectl")
        results = {name: run_measured([sys.executable, "-c", code], env) for name, code in CONTENDERS.items()}
        results["kubectl"] = run_measured([kubectl, "get", "pods", "-A", "-o", "wide"], env)
        counted = int(results["k8snb"][2].strip())
    finally:
        subprocess.run([*cli, "down"], env=env, capture_output=True, timeout=120)
    ours_s, ours_mb, _ = results["k8snb"]
    rows = []
    for alt, label in (("kubectl", "kubectl get pods -A -o wide"), ("client", "official client, model objects")):
        s, mb, _ = results[alt]
        rows.append({"figure": f"pods+nodes tables, lab with {nodes:,} nodes and {counted:,} pods "
                               f"(filled at {rate:.0f} pods/s)",
                     "ours_s": round(ours_s, 2), "alternative": label, "alt_s": round(s, 2),
                     "ratio": round(ours_s / s, 2), "target": "< 1", "met": ours_s < s,
                     "note": f"peak RSS {ours_mb:.0f} MiB vs {mb:.0f} MiB"})
    return rows


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    for row in main(*args):
        print(json.dumps(row))
