"""The running real-nodes lab cannot be taken over by another local user, nor by a pod.

Issue 12's first acceptance, checked on the lab the suite uses: as user `nobody`, etcd refuses
(TLS with client certificates from its own CA), no lab listener is bound to every address, and a
push to the registry is refused; from a pod, a push is refused too, and a listener this test opens
on the host's 0.0.0.0 cannot be reached. Traffic goes only to loopback and the lab's own addresses.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import threading

import pytest

from k8snb.lab.plan import LabPlan, state_dir
from labtools import RunningLab

pytestmark = pytest.mark.realnodes


@pytest.fixture(scope="module")
def lab() -> RunningLab:
    plan_file = state_dir() / "plan.json"
    if os.geteuid() != 0 or not plan_file.exists() or LabPlan.load(plan_file).nodes_mode != "real":
        reason = "needs root and a running real-nodes lab"
        if os.environ.get("K8SNB_REQUIRE_REAL"):
            pytest.fail(f"K8SNB_REQUIRE_REAL is set: {reason}")
        pytest.skip(reason)
    return RunningLab(state_dir())


@pytest.fixture(scope="module")
def pod(lab):
    """A netshoot pod in a namespace of its own, to send requests from; removed afterwards."""
    ns = "k8snb-security-probe"
    lab.kubectl("apply", "-f", "-", stdin=f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}, labels: {{app.kubernetes.io/part-of: k8snb}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: probe, namespace: {ns}, labels: {{app.kubernetes.io/part-of: k8snb}}}}
spec:
  containers: [{{name: probe, image: nicolaka/netshoot, command: [sleep, "3600"]}}]
""")
    lab.kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/probe", "--timeout=120s", timeout=150)
    yield lambda *argv: lab.kubectl("exec", "-n", ns, "probe", "--", *argv, check=False, timeout=60)
    lab.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def as_nobody(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *argv],
                          capture_output=True, text=True, timeout=30)


def test_etcd_refuses_a_local_user_without_its_client_certificate(lab):
    url = f"127.0.0.1:{lab.plan.etcd_port}/v3/kv/range"
    body = '{"key": "L3JlZ2lzdHJ5L3NlY3JldHM="}'  # /registry/secrets
    plain = as_nobody("curl", "-sS", "-m", "5", "-X", "POST", f"http://{url}", "-d", body)
    tls = as_nobody("curl", "-sS", "-k", "-m", "5", "-X", "POST", f"https://{url}", "-d", body)
    for proc in (plain, tls):
        assert proc.returncode != 0, proc.stdout
        assert "kvs" not in proc.stdout


def test_no_lab_listener_on_every_address(lab):
    listeners = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    ours = ("kube-apiserver", "etcd", "docker-registry", "kube-controller", "kube-scheduler", "kwok", "containerd",
            "kubelet", "kube-proxy", "coredns")
    wide = [line for line in listeners.splitlines()
            if re.search(r"\s(\*|0\.0\.0\.0|\[::\]):\d+\s", line) and any(f'"{n}' in line for n in ours)]
    assert not wide, wide
    assert f"{lab.plan.host_ip}:{lab.plan.api_port}" in listeners


def test_registry_push_is_refused_from_a_local_user_and_from_a_pod(lab, pod):
    push = ["curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
            f"http://{lab.plan.host_ip}:5000/v2/k8snb-test/blobs/uploads/"]
    host = as_nobody(*push)
    assert host.stdout.strip() not in ("202", "000"), host.stdout + host.stderr
    from_pod = pod(*push)
    assert from_pod.stdout.strip() in ("405", "403"), from_pod.stdout + from_pod.stderr
    pull = pod("curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", f"http://{lab.plan.host_ip}:5000/v2/")
    assert pull.stdout.strip() == "200", pull.stdout + pull.stderr


def test_pods_cannot_reach_a_host_listener_on_every_address(lab, pod):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted: list[str] = []

    def serve() -> None:
        server.settimeout(40)
        try:
            conn, addr = server.accept()
            accepted.append(addr[0])
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        probe = pod("curl", "-sS", "-m", "4", f"http://{lab.plan.host_ip}:{port}/")
    finally:
        server.close()
        thread.join(5)
    assert not accepted, f"a pod reached the host's port {port} from {accepted}"
    assert probe.returncode != 0 and "timed out" in probe.stderr, probe.stderr


def test_a_service_claiming_an_external_ip_is_refused(lab):
    """CVE-2020-8554: whoever may create Services could draw any address's traffic (another
    learner's, the hub's API on the lab bridge) with `externalIPs`; the lab's API server refuses
    them (DenyServiceExternalIPs). Dry-run on the server: admission runs, nothing is stored."""
    proc = lab.kubectl("create", "--dry-run=server", "-f", "-", check=False, stdin="""
apiVersion: v1
kind: Service
metadata: {name: k8snb-external-ip-probe, namespace: default}
spec:
  selector: {app: nobody}
  ports: [{port: 18081}]
  externalIPs: [172.29.0.1]
""")
    assert proc.returncode != 0 and "externalIPs" in proc.stderr and "denied" in proc.stderr, proc.stderr
