"""Figure 1: tables at scale on a real API server: a private lab with simulated nodes holding
1,000 nodes and 30,000 pods (kwok's documented comfort zone: 1k nodes, 100k pods).

Contenders, each in its own process so that time and peak memory (max RSS) are its own:
  k8snb     `k8snb.pods(cluster)` + `k8snb.nodes(cluster)` (raw JSON pages, msgspec, one DataFrame),
            timed inside an interpreter that has imported k8snb (as in a notebook)
  kubectl   `kubectl get pods -A -o wide` (text to /dev/null), the whole process
  client    the official client's `list_pod_for_all_namespaces()` + `list_node()` with model objects

Run alone: `python bench/tables_cluster.py [nodes] [pods]`. It starts and stops its own lab (own
state directory and ports), so it never touches the course's lab.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from private_lab import private_lab

NODES, PODS = 1_000, 30_000
PORT, ETCD_PORT = 6843, 12779
#: Parallel POSTs while filling the cluster: enough to keep the API server busy on 2 cores.
WRITERS = 8

#: Python contenders time their own calls (a notebook has already imported everything) and report
#: their peak RSS (imports included); each line prints {"seconds", "rss_mb", "count"}.
#: VmHWM, not ru_maxrss: the latter would carry over the parent's peak through fork().
_REPORT = ("import json; hwm = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]); "
           "print(json.dumps({'seconds': time.perf_counter() - t, 'count': n, 'rss_mb': hwm / 1024}))")
CONTENDERS = {
    "k8snb": ("import time, k8snb; c = k8snb.connect(quiet=True); t = time.perf_counter(); "
              "n = len(k8snb.pods(c)); k8snb.nodes(c); " + _REPORT),
    "client": ("import time; from kubernetes import client, config; config.load_kube_config(); "
               "api = client.CoreV1Api(); t = time.perf_counter(); "
               "n = len(api.list_pod_for_all_namespaces(_request_timeout=600).items); "
               "api.list_node(_request_timeout=600); " + _REPORT),
}


def run_python(code: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1200)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-500:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_kubectl(argv: list[str], env: dict[str, str]) -> dict:
    """Wall time and peak RSS of kubectl. The peak is read from /proc/<pid>/status (VmHWM, the
    high-water mark of its own address space) while it runs: rusage from wait4 would also count
    this process's RSS, which the child inherits until exec."""
    peak = 0
    t = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak = max(peak, int(status.split("VmHWM:")[1].split()[0]))
        except (OSError, IndexError, ValueError):
            pass
        time.sleep(0.01)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {proc.stderr.read()[-300:]}")
    return {"seconds": seconds, "rss_mb": peak / 1024}


def fill(cluster, nodes: int, pods: int) -> float:
    """Create simulated nodes and bare pods bound to them; return pods created per second."""
    from k8snb.lab.kwoknodes import node_manifest
    from k8snb.lab.plan import LabPlan

    plan = LabPlan()
    version = cluster.version

    def make_node(i: int) -> None:
        name = f"bench-node-{i:04d}"
        ip = f"172.30.{i // 250}.{2 + i % 250}"
        body = node_manifest(plan, name, ip, version)
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

    with private_lab(PORT, ETCD_PORT, "k8snb-bench-") as lab:
        cluster = k8snb.connect(quiet=True, kubeconfig=lab.kubeconfig)
        rate = fill(cluster, nodes, pods)
        kubectl = str(bin_dir(pinned_versions()["K8S_VERSION"]) / "kubectl")
        results = {name: run_python(code, lab.env) for name, code in CONTENDERS.items()}
        results["kubectl"] = run_kubectl([kubectl, "get", "pods", "-A", "-o", "wide"], lab.env)
        counted = results["k8snb"]["count"]
    ours_s, ours_mb = results["k8snb"]["seconds"], results["k8snb"]["rss_mb"]
    rows = []
    for alt, label in (("kubectl", "kubectl get pods -A -o wide (pods only)"),
                       ("client", "official client, model objects (pods + nodes)")):
        s, mb = results[alt]["seconds"], results[alt]["rss_mb"]
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
