"""The package's API client under real faults (issue 12, acceptance 7), each bounded in time.

A PRIVATE kwok lab (own state directory, ports 6843/12779) takes the faults, so the lab the rest of
the suite uses is never stopped or compacted:

- kube-apiserver SIGSTOPped for 8 s while `wait_deployment` waits: it must still return the ready pods;
- a watch from a resourceVersion etcd has compacted: the API server answers 410, the client raises
  Expired (status 410) and a relist-and-watch carries on;
- a paginated list whose continue token expires half-way (etcd compacted past its revision): the
  list falls back to one full list, as client-go's pager does.

Events are the resource for the two 410 tests: the API server serves them from etcd (no watch
cache), so compacting etcd expires their tokens at once, as it does for any resource on a busy
cluster. etcd is compacted through its gRPC API (hand-written below; its HTTP gateway refuses the
lab's client certificate layout), with the API server's etcd client certificate from the state dir.

The last test needs real nodes: `sample()` whose client pod is deleted mid-run. It uses the course
lab when it runs with real nodes (KUBECONFIG=$(k8snb lab kubeconfig)), in a namespace of its own,
and leaves the lab running.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import k8snb
from k8snb import api as api_mod
from k8snb import lab, probe, traffic, wait
from k8snb.errors import Expired, SampleIncomplete
from k8snb.lab import processes
from k8snb.manifests import apply_all, load

pytestmark = pytest.mark.cluster

PORT, ETCD_PORT = 6843, 12779


# --- etcd's gRPC API, just enough to read the revision and compact ---------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _fields(buf: bytes) -> dict[int, int | bytes]:
    """The fields of a protobuf message (varints and length-delimited only)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        if key & 7 == 0:
            out[key >> 3], i = _read_varint(buf, i)
        elif key & 7 == 2:
            n, i = _read_varint(buf, i)
            out[key >> 3], i = buf[i:i + n], i + n
        else:
            raise ValueError(f"unexpected wire type {key & 7}")
    return out


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _hpack(name: str, value: str) -> bytes:
    """A header as 'literal without indexing, new name' (names and values below 127 bytes)."""
    n, v = name.encode(), value.encode()
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def etcd_call(pki: Path, method: str, message: bytes, timeout: float = 10.0) -> bytes:
    """One unary gRPC call to the lab's etcd over HTTP/2 + TLS with the API server's client cert."""
    ctx = ssl.create_default_context(cafile=str(pki / "etcd-ca.crt"))
    ctx.load_cert_chain(str(pki / "apiserver-etcd-client.crt"), str(pki / "apiserver-etcd-client.key"))
    ctx.set_alpn_protocols(["h2"])
    headers = b"".join(_hpack(k, v) for k, v in (
        (":method", "POST"), (":scheme", "https"), (":path", method), (":authority", f"127.0.0.1:{ETCD_PORT}"),
        ("content-type", "application/grpc"), ("te", "trailers")))
    with socket.create_connection(("127.0.0.1", ETCD_PORT), timeout=timeout) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0) + _h2_frame(1, 4, 1, headers)
                  + _h2_frame(0, 1, 1, b"\x00" + struct.pack(">I", len(message)) + message))
        buf, data = b"", b""
        while True:
            while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("etcd closed the connection")
                buf += chunk
            n = int.from_bytes(buf[:3], "big")
            kind, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            payload, buf = buf[9:9 + n], buf[9 + n:]
            if kind == 4 and not flags & 1:          # SETTINGS: acknowledge
                s.sendall(_h2_frame(4, 1, 0))
            elif kind == 0 and stream == 1:          # DATA
                data += payload
            elif kind == 1 and stream == 1 and flags & 1:  # trailers: the call is over
                break
            elif kind in (3, 7):                     # RST_STREAM, GOAWAY
                raise ConnectionError(f"etcd ended the call (HTTP/2 frame type {kind})")
    if len(data) < 5:
        raise RuntimeError(f"etcd {method} failed: no answer message")
    return data[5:5 + int.from_bytes(data[1:5], "big")]


def etcd_revision(pki: Path) -> int:
    header = _fields(etcd_call(pki, "/etcdserverpb.KV/Range", b"\x0a\x01\x00"))[1]  # any key: the header
    return _fields(header)[3]


def etcd_compact(pki: Path) -> int:
    """Compact etcd (physically) at its current revision; return that revision."""
    rev = etcd_revision(pki)
    etcd_call(pki, "/etcdserverpb.KV/Compact", b"\x08" + _varint(rev) + b"\x10\x01")
    return rev


# --- the private lab ------------------------------------------------------------------------------
def _lab(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "k8snb.cli", "lab", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


class PrivateLab:
    def __init__(self, root: Path) -> None:
        self.env = dict(os.environ, K8SNB_STATE=str(root))
        self.env.pop("KUBECONFIG", None)
        self.state = root / "lab"
        self.pki = self.state / "pki"
        self.cluster = None

    def connect(self):
        saved = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = str(self.state / "kubeconfig")
        try:
            self.cluster = k8snb.connect(quiet=True)
        finally:
            if saved is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = saved
        return self.cluster

    def apiserver_pid(self) -> int:
        proc = processes.read(self.state, "kube-apiserver")
        assert proc is not None and proc.running, "the private lab's kube-apiserver is not running"
        return proc.pid


@pytest.fixture(scope="module")
def private_lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability") / "state"
    plab = PrivateLab(root)
    up = _lab("up", "--nodes", "kwok", "--port", str(PORT), "--etcd-port", str(ETCD_PORT), env=plab.env)
    try:
        assert up.returncode == 0, up.stderr
        plab.connect()
        yield plab
    finally:
        down = _lab("down", env=plab.env)
        assert down.returncode == 0, down.stderr


@pytest.fixture
def private_ns(private_lab):
    name = f"rel-{uuid.uuid4().hex[:6]}"
    k8snb.apply(private_lab.cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    private_lab.cluster.api.delete(f"/api/v1/namespaces/{name}")


def _event(namespace: str, name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"kind": "Pod", "name": "k8snb-test", "namespace": namespace}, "reason": "K8snbTest",
            "message": "issue 12 reliability test", "type": "Normal"}


def _post_events(cluster, namespace: str, names) -> None:
    for name in names:
        cluster.api.request("POST", f"/api/v1/namespaces/{namespace}/events", body=_event(namespace, name))


# --- acceptance 7 ---------------------------------------------------------------------------------
def test_wait_deployment_survives_an_8s_sigstop_of_the_apiserver(private_lab, private_ns, monkeypatch):
    # Short read timeouts: every request in flight during the stop times out and must be retried
    # (or its watch reopened) within the wait's deadline, instead of merely sitting out the stop.
    monkeypatch.setattr(api_mod, "READ_TIMEOUT", 3.0)
    cluster = private_lab.cluster
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": private_ns},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "web", "image": "nginxdemos/hello:plain-text"}]}}}}
    pid = private_lab.apiserver_pid()
    k8snb.apply(cluster, deploy)
    os.kill(pid, signal.SIGSTOP)
    resumed = threading.Timer(8.0, os.kill, (pid, signal.SIGCONT))
    resumed.start()
    started = time.monotonic()
    try:
        ready = wait.wait_deployment(cluster, "web", private_ns, timeout=60, progress=False)
        elapsed = time.monotonic() - started
    finally:
        resumed.cancel()
        os.kill(pid, signal.SIGCONT)
    assert len(ready) == 3
    assert 7.5 <= elapsed < 60, f"wait_deployment returned after {elapsed:.1f} s"


def test_a_watch_survives_a_410(private_lab, private_ns):
    cluster = private_lab.cluster
    path = f"/api/v1/namespaces/{private_ns}/events"
    _post_events(cluster, private_ns, ["before-1", "before-2"])
    _, stale = cluster.api.snapshot(path)
    # Writes after the snapshot, then a compaction at the newest revision: the watch would have to
    # start at stale+1, which etcd no longer has.
    _post_events(cluster, private_ns, ["after-1", "after-2", "after-3"])
    assert etcd_compact(private_lab.pki) > int(stale) + 1
    started = time.monotonic()
    with pytest.raises(Expired) as info:
        list(cluster.api.watch(path, timeout=10, resourceVersion=stale))
    assert info.value.status == 410 and info.value.reason in ("Expired", "Gone")
    assert time.monotonic() - started < 5, "a 410 must be reported at once, not at the watch's timeout"
    # The waits treat it as "list again": a fresh snapshot, and the watch from it sees what follows.
    assert wait._changed(cluster, path, 5, resourceVersion=stale) is False
    _, fresh = cluster.api.snapshot(path)
    seen = []

    def post_later():
        time.sleep(0.5)
        _post_events(cluster, private_ns, ["after-relist"])

    poster = threading.Thread(target=post_later)
    poster.start()
    for ev in cluster.api.watch(path, timeout=10, resourceVersion=fresh):
        seen.append(ev["object"]["metadata"]["name"])
        if "after-relist" in seen:
            break
    poster.join()
    assert "after-relist" in seen


def test_a_list_survives_an_expired_continue_token(private_lab, private_ns, monkeypatch):
    cluster = private_lab.cluster
    path = f"/api/v1/namespaces/{private_ns}/events"
    names = [f"e{i}" for i in range(7)]
    _post_events(cluster, private_ns, names)
    monkeypatch.setattr(api_mod, "PAGE_SIZE", 2)
    sent: list[dict] = []
    real_request = cluster.api.request

    def request(method, p, **kwargs):
        if method != "GET":
            return real_request(method, p, **kwargs)
        sent.append(dict(kwargs.get("params") or {}))
        resp = real_request(method, p, **kwargs)
        if len(sent) == 1:
            # After the first page: one more write, then etcd forgets every revision before it.
            _post_events(cluster, private_ns, ["late"])
            etcd_compact(private_lab.pki)
        return resp

    monkeypatch.setattr(cluster.api, "request", request)
    started = time.monotonic()
    found = cluster.api.list(path)
    assert time.monotonic() - started < 20
    assert sorted(e["metadata"]["name"] for e in found) == sorted([*names, "late"])
    assert sent[0].get("limit") == 2 and "continue" not in sent[0]
    assert "continue" in sent[1], "the second page was asked with the (now expired) token"
    assert "continue" not in sent[-1] and "limit" not in sent[-1], "then one full list"
    assert len(sent) == 3


# --- sample() with its client pod deleted mid-run (real nodes) -----------------------------------
@pytest.fixture(scope="module")
def real_cluster():
    kubeconfig = os.environ.get("KUBECONFIG") or str(lab.kubeconfig_path())
    st = lab.status()
    if not os.environ.get("KUBECONFIG") and not (st.running and (st.plan or {}).get("nodes_mode") == "real"):
        _skip_unless_required("needs the course lab running with real nodes (k8snb lab up --nodes real)")
    saved = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = kubeconfig
    try:
        cluster = k8snb.connect(quiet=True)
    finally:
        if saved is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = saved
    if not k8snb.can_carry_traffic(cluster):
        _skip_unless_required("the cluster's nodes are simulated (kwok): no curl can run")
    return cluster


def _skip_unless_required(reason: str) -> None:
    """As conftest's needs_traffic: a skip, unless the run promised real nodes (then a failure)."""
    if os.environ.get("K8SNB_REQUIRE_REAL"):
        pytest.fail(f"K8SNB_REQUIRE_REAL is set but {reason}")
    pytest.skip(reason)


@pytest.fixture
def real_ns(real_cluster):
    name = f"rel-{uuid.uuid4().hex[:6]}"
    k8snb.apply(real_cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    real_cluster.api.delete(f"/api/v1/namespaces/{name}")


def _curl_processes(cluster, namespace: str, pod: str) -> list[str]:
    """The curl processes running in `pod`, from `ps` run there (argv, no shell)."""
    res = probe.exec_argv(cluster, pod, ["ps", "-eo", "pid,args"], namespace, timeout=20)
    return [line for line in res.stdout.splitlines()[1:] if line.split(None, 1)[1:] and
            line.split(None, 1)[1].startswith("curl")]


def _once_rows_arrive(monkeypatch, action) -> dict:
    """Make `action` happen once the sample's first answered response has reached the client, from
    inside the exec loop (the callback sample() gives exec_argv): the real exec, curl and cluster,
    with the moment fixed by the data rather than by a timer that a loaded machine outruns."""
    real = probe.exec_argv
    state = {"acted_at": None}

    def exec_argv(*args, **kwargs):
        inner = kwargs.get("on_stdout")
        seen = []

        def on_stdout(chunk: str) -> None:
            if inner is not None:
                inner(chunk)
            seen.append(chunk)
            # The first answered request (HTTP 2xx): a request sent before kube-proxy programmed
            # the new Service may fail, and the test needs a row that was answered.
            if state["acted_at"] is None and re.search(rf"{traffic._MARK}\s2\d\d\s", "".join(seen)):
                state["acted_at"] = time.monotonic()
                action()

        kwargs["on_stdout"] = on_stdout
        return real(*args, **kwargs)

    monkeypatch.setattr(probe, "exec_argv", exec_argv)
    return state


@pytest.mark.realnodes
def test_sample_with_its_client_pod_deleted_mid_run(real_cluster, real_ns, monkeypatch):
    cluster = real_cluster
    objs = load("nginx-deploy", real_ns) + load("clusterip-svc", real_ns) + load("netshoot", real_ns)
    objs[0]["spec"]["replicas"] = 2
    # The article's 30 s grace (the course's copy has 1 s): the deleted client lingers, terminating,
    # long enough for `ps` to look inside it below.
    objs[2]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    apply_all(cluster, objs)
    wait.wait_deployment(cluster, "nginx-hello", real_ns, timeout=120, progress=False)
    wait.wait_deployment(cluster, "netshoot", real_ns, timeout=120, progress=False)
    wait.wait_endpoints(cluster, "nginx-svc", real_ns, count=2, timeout=60)
    client = probe.pod_for(cluster, "netshoot", real_ns)
    # The longest run sample() allows (MAX_REQUESTS requests, each on a new connection) lasts well
    # beyond the deletion, made as soon as the first answer is in.
    deleter = _once_rows_arrive(monkeypatch, lambda: cluster.api.delete(f"/api/v1/namespaces/{real_ns}/pods/{client}"))
    with pytest.raises(SampleIncomplete) as info:
        traffic.sample(cluster, n=traffic.MAX_REQUESTS, namespace=real_ns, from_pod=client, modeled=False)
    assert deleter["acted_at"] is not None, "the sample ended before the pod was deleted"
    took = time.monotonic() - deleter["acted_at"]
    assert took < 5, f"the deletion was noticed only after {took:.1f} s"
    exc = info.value
    assert client in str(exc) and "deleted" in str(exc)
    rows = exc.rows
    assert len(rows) > 0 and rows["ok"].any(), "the rows answered before the deletion are kept"
    assert len(rows) < traffic.MAX_REQUESTS
    # No curl keeps running. The client pod is still terminating (its `sleep infinity` ignores
    # SIGTERM for the 30 s grace period set above), so `ps` can still look inside it; the replacement client
    # the Deployment starts and the nginx pods never ran the sample's curl, but are checked too.
    deadline = time.monotonic() + 5
    while (left := _curl_processes(cluster, real_ns, client)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == [], f"curl still runs in the deleted client pod {client}: {left}"
    for pod in cluster.api.list(f"/api/v1/namespaces/{real_ns}/pods", labelSelector="app=netshoot"):
        if pod.get("status", {}).get("phase") == "Running" and pod["metadata"]["name"] != client:
            assert _curl_processes(cluster, real_ns, pod["metadata"]["name"]) == []


@pytest.mark.realnodes
def test_sample_interrupted_stops_curl_and_keeps_the_rows(real_cluster, real_ns, monkeypatch):
    """Ctrl-C in the middle of a sample: the interrupt goes on, with the rows so far; curl is gone."""
    cluster = real_cluster
    objs = load("nginx-deploy", real_ns) + load("clusterip-svc", real_ns) + load("netshoot", real_ns)
    apply_all(cluster, objs)
    wait.wait_deployment(cluster, "nginx-hello", real_ns, timeout=120, progress=False)
    wait.wait_deployment(cluster, "netshoot", real_ns, timeout=120, progress=False)
    wait.wait_endpoints(cluster, "nginx-svc", real_ns, count=1, timeout=60)
    client = probe.pod_for(cluster, "netshoot", real_ns)
    def ctrl_c() -> None:
        raise KeyboardInterrupt

    interrupter = _once_rows_arrive(monkeypatch, ctrl_c)
    with pytest.raises(KeyboardInterrupt) as info:
        traffic.sample(cluster, n=traffic.MAX_REQUESTS, namespace=real_ns, from_pod=client, modeled=False)
    assert interrupter["acted_at"] is not None, "the sample ended before the interrupt"
    assert time.monotonic() - interrupter["acted_at"] < 3
    rows = info.value.rows
    assert 0 < len(rows) < traffic.MAX_REQUESTS and rows["ok"].any()
    assert any("interrupted" in note for note in info.value.__notes__)
    deadline = time.monotonic() + 5
    while (left := _curl_processes(cluster, real_ns, client)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == [], f"curl still runs in {client} after the interrupt: {left}"
