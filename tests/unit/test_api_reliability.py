"""The API client under transient failures, against a scripted HTTP server on 127.0.0.1.

Each test gives the server the answers it should send, in order (status, headers, body; a body may
be cut short to break the connection mid-stream), and checks what the client did: which requests it
sent, how long it waited, what it raised (with the status and reason as attributes).
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException
from websocket import WebSocketBadStatusException

from k8snb import api as api_mod
from k8snb import probe, traffic, wait
from k8snb.api import Api, error_for
from k8snb.cluster import Cluster
from k8snb.errors import (Conflict, ExecFailed, Expired, Forbidden, K8snbError, NotFound, NotReachable,
                          SampleIncomplete)


def status(code: int, reason: str, message: str = "") -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                       "reason": reason, "message": message or reason}).encode()


def items(*names: str, version: str = "100", cont: str = "") -> bytes:
    return json.dumps({"kind": "List", "metadata": {"resourceVersion": version, "continue": cont},
                       "items": [{"metadata": {"name": n}} for n in names]}).encode()


def event(kind: str, obj: dict) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


def pod(name: str, version: str) -> dict:
    return {"metadata": {"name": name, "resourceVersion": version}}


class Script:
    """Answers handed out in order; every request is logged as (method, path, query dict)."""

    def __init__(self) -> None:
        self.answers: list = []
        self.log: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()

    def add(self, code: int = 200, body: bytes = b"{}", headers: dict | None = None, cut: bool = False,
            route: str | None = None) -> None:
        """`cut`: send the body as a chunked stream (as the API server sends a watch), one chunk per
        line, and close the connection without the final chunk: a stream broken off."""
        self.answers.append((route, code, body, headers or {}, cut))

    def next(self, path: str):
        with self.lock:
            for i, answer in enumerate(self.answers):
                if answer[0] is None or path.startswith(answer[0]):
                    return self.answers.pop(i)
        return (None, 500, status(500, "InternalError", "script exhausted"), {}, False)


@pytest.fixture
def server():
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            url = urlsplit(self.path)
            script.log.append((self.command, url.path, {k: v[0] for k, v in parse_qs(url.query).items()}))
            _, code, body, headers, cut = script.next(url.path)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            if cut:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if cut:
                for line in body.splitlines(keepends=True):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.write(b"40\r\n{\"type\": \"MODIFIED\"")  # a chunk cut short, then the socket closes
            else:
                self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    cfg = Configuration()
    cfg.host = f"http://127.0.0.1:{httpd.server_address[1]}"
    script.api = Api(ApiClient(cfg), "test")
    yield script
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fast_backoff(monkeypatch):
    monkeypatch.setattr(api_mod, "BACKOFF_BASE", 0.01)
    monkeypatch.setattr(api_mod, "BACKOFF_MAX", 0.05)


# --- errors carry status and reason ---------------------------------------------------------------
@pytest.mark.parametrize("code,reason,cls", [
    (403, "Forbidden", Forbidden), (404, "NotFound", NotFound), (409, "AlreadyExists", Conflict),
    (410, "Expired", Expired), (410, "Gone", Expired), (401, "Unauthorized", NotReachable),
    (422, "Invalid", K8snbError),
])
def test_error_for_keeps_status_and_reason(code, reason, cls):
    exc = error_for(code, status(code, reason, "the server's words"), "GET", "/api/v1/namespaces/a/pods/b")
    assert type(exc) is cls
    assert (exc.status, exc.reason) == (code, reason)
    assert "the server's words" in str(exc) and "pods a/b" in str(exc)


def test_error_for_without_a_status_body():
    exc = error_for(502, b"<html>bad gateway</html>", "GET", "/version")
    assert (exc.status, exc.reason) == (502, None)
    gone = error_for(410, b"", "GET", "/api/v1/pods")
    assert isinstance(gone, Expired) and gone.reason == "Gone"


# --- retries --------------------------------------------------------------------------------------
def test_get_retries_503_then_succeeds(server, fast_backoff):
    server.add(503, status(503, "ServiceUnavailable"))
    server.add(500, status(500, "InternalError"))
    server.add(200, b'{"gitVersion": "v1.37.2"}')
    assert server.api.get("/version") == {"gitVersion": "v1.37.2"}
    assert [m for m, _, _ in server.log] == ["GET"] * 3


def test_retry_after_is_honoured(server):
    server.add(429, status(429, "TooManyRequests"), headers={"Retry-After": "1"})
    server.add(200, b'{"ok": true}')
    started = time.monotonic()
    assert server.api.get("/version") == {"ok": True}
    assert 1.0 <= time.monotonic() - started < 2.5


def test_retry_after_beyond_the_deadline_fails_at_once(server):
    server.add(503, status(503, "ServiceUnavailable", "etcd is busy"), headers={"Retry-After": "30"})
    started = time.monotonic()
    with pytest.raises(K8snbError, match="etcd is busy") as info:
        server.api.get("/version", deadline=time.monotonic() + 5)
    assert time.monotonic() - started < 1
    assert (info.value.status, info.value.reason) == (503, "ServiceUnavailable")
    assert len(server.log) == 1


def test_deadline_bounds_the_retries(server, fast_backoff):
    for _ in range(200):
        server.add(503, status(503, "ServiceUnavailable"))
    started = time.monotonic()
    with pytest.raises(K8snbError) as info:
        server.api.get("/version", deadline=time.monotonic() + 1.0)
    assert 0.8 < time.monotonic() - started < 1.5
    assert info.value.status == 503 and len(server.log) > 3


def test_post_and_merge_patch_are_never_retried(server, fast_backoff):
    server.add(503, status(503, "ServiceUnavailable"))
    with pytest.raises(K8snbError) as info:
        server.api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "x"}})
    assert info.value.status == 503 and len(server.log) == 1
    server.add(503, status(503, "ServiceUnavailable"))
    with pytest.raises(K8snbError):
        server.api.request("PATCH", "/apis/apps/v1/namespaces/a/deployments/b/scale", body={},
                           content_type="application/merge-patch+json")
    assert len(server.log) == 2


def test_apply_and_delete_are_retried(server, fast_backoff):
    server.add(502, b"bad gateway")
    server.add(200, b'{"metadata": {"name": "b"}}')
    assert server.api.apply("/api/v1/namespaces/a/configmaps/b", {"kind": "ConfigMap"}) == {"metadata": {"name": "b"}}
    server.add(504, b"gateway timeout")
    server.add(404, status(404, "NotFound"))
    assert server.api.delete("/api/v1/namespaces/a/configmaps/b") is False
    assert [m for m, _, _ in server.log] == ["PATCH", "PATCH", "DELETE", "DELETE"]


def test_403_is_not_retried_and_says_so(server, fast_backoff):
    server.add(403, status(403, "Forbidden", 'pods is forbidden: User "x" cannot list'))
    with pytest.raises(Forbidden) as info:
        server.api.list("/api/v1/pods")
    assert (info.value.status, info.value.reason) == (403, "Forbidden") and len(server.log) == 1


def test_refused_connection_fails_within_the_default_window():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = Configuration()
    cfg.host = f"http://127.0.0.1:{port}"
    api = Api(ApiClient(cfg), "nowhere")
    started = time.monotonic()
    with pytest.raises(NotReachable, match="connection refused"):
        api.get("/version")
    elapsed = time.monotonic() - started
    # Retried (backoff), and given up within the window: no retry starts that would end after it.
    assert 0.2 < elapsed < api_mod.RETRY_WINDOW + 1.5
    started = time.monotonic()
    with pytest.raises(NotReachable):
        api.get("/version", deadline=time.monotonic() + 0.5)
    assert time.monotonic() - started < 1.5


def test_backoff_grows_with_jitter_and_stays_bounded():
    delays = [api_mod.backoff(a) for a in range(12)]
    assert all(0 < d <= api_mod.BACKOFF_MAX for d in delays)
    assert api_mod.backoff(0) <= api_mod.BACKOFF_BASE < api_mod.backoff(3)
    assert len({round(api_mod.backoff(5), 6) for _ in range(20)}) > 1, "jitter"
    assert api_mod.retry_after("3") == 3 and api_mod.retry_after(None) == 0 and api_mod.retry_after("soon") == 0


# --- pagination -----------------------------------------------------------------------------------
def test_list_falls_back_to_a_full_list_when_the_continue_token_expired(server, fast_backoff):
    server.add(200, items("a", "b", cont="tok1"))
    server.add(410, status(410, "Expired", "The provided continue parameter is too old"))
    server.add(200, items("a", "b", "c", "d", version="200"))
    found, version = server.api.snapshot("/api/v1/namespaces/x/configmaps", labelSelector="k=v")
    assert [i["metadata"]["name"] for i in found] == ["a", "b", "c", "d"] and version == "200"
    queries = [q for _, _, q in server.log]
    assert queries[0] == {"limit": "500", "labelSelector": "k=v"}
    assert queries[1] == {"limit": "500", "labelSelector": "k=v", "continue": "tok1"}
    assert queries[2] == {"labelSelector": "k=v"}, "the full list has neither limit nor continue"


def test_an_expired_first_page_is_not_hidden(server):
    server.add(410, status(410, "Expired"))
    with pytest.raises(Expired):
        server.api.list("/api/v1/pods")


# --- watches --------------------------------------------------------------------------------------
def test_watch_reconnects_from_the_last_version_after_a_dropped_stream(server, fast_backoff):
    server.add(200, event("ADDED", pod("a", "101")) + event("MODIFIED", pod("a", "102")) * 20, cut=True)
    server.add(200, event("MODIFIED", pod("b", "103")))
    seen = []
    for ev in server.api.watch("/api/v1/namespaces/x/pods", timeout=3, resourceVersion="100"):
        seen.append(ev["object"]["metadata"]["name"])
        if ev["object"]["metadata"]["name"] == "b":
            break
    assert seen[0] == "a" and seen[-1] == "b"
    first, second = server.log[0][2], server.log[1][2]
    assert first["resourceVersion"] == "100" and second["resourceVersion"] == "102"
    assert second["watch"] == "1" and int(second["timeoutSeconds"]) <= 3


def test_watch_raises_expired_on_a_410_event(server):
    server.add(200, event("ERROR", json.loads(status(410, "Expired", "too old resource version: 1 (2000)"))))
    with pytest.raises(Expired, match="too old resource version") as info:
        list(server.api.watch("/api/v1/pods", timeout=3, resourceVersion="1"))
    assert (info.value.status, info.value.reason) == (410, "Expired")


def test_watch_raises_expired_on_http_410(server):
    server.add(410, status(410, "Gone"))
    with pytest.raises(Expired):
        list(server.api.watch("/api/v1/pods", timeout=3, resourceVersion="1"))


def test_watch_rides_out_a_5xx_error_event_and_ends_at_its_timeout(server, fast_backoff):
    server.add(200, event("ERROR", json.loads(status(500, "InternalError", "etcd leader changed"))))
    for _ in range(50):
        server.add(200, b"")  # streams the server ends at once, until the time is up
    started = time.monotonic()
    assert list(server.api.watch("/api/v1/pods", timeout=1.5)) == []
    assert 1.3 < time.monotonic() - started < 3
    assert len(server.log) >= 2


def test_wait_deployment_relists_after_a_410(server, fast_backoff):
    dpath = "/apis/apps/v1/namespaces/x/deployments/web"
    ppath = "/api/v1/namespaces/x/pods"
    deploy = {"metadata": {"name": "web", "generation": 1},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}},
              "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0}}
    ready = json.loads(json.dumps(deploy))
    ready["status"]["readyReplicas"] = 1
    pending = {"metadata": {"name": "web-1"}, "status": {"phase": "Pending"}}
    running = {"metadata": {"name": "web-1"},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    server.add(200, json.dumps(deploy).encode(), route=dpath)       # exists
    server.add(200, json.dumps(deploy).encode(), route=dpath)       # first tick
    server.add(200, json.dumps({"metadata": {"resourceVersion": "5"}, "items": [pending]}).encode(), route=ppath)
    server.add(200, event("ERROR", json.loads(status(410, "Expired", "too old resource version"))), route=ppath)
    server.add(200, json.dumps(ready).encode(), route=dpath)        # second tick, after the relist
    server.add(200, json.dumps({"metadata": {"resourceVersion": "9"}, "items": [running]}).encode(), route=ppath)
    cluster = Cluster(server.api, "test", server.api.server, "v1.37.2", "other")
    started = time.monotonic()
    pods = wait.wait_deployment(cluster, "web", "x", timeout=10, progress=False)
    assert [p["metadata"]["name"] for p in pods] == ["web-1"] and time.monotonic() - started < 5
    pod_requests = [q for _, p, q in server.log if p == ppath]
    assert [q.get("watch") for q in pod_requests] == [None, "1", None], "list, watch (410), list again"


# --- exec errors ----------------------------------------------------------------------------------
def _refused_exec(code: int, reason: str) -> ApiException:
    body = status(code, reason, f'pods "c" is {reason.lower()}')
    try:
        try:
            raise WebSocketBadStatusException(f"Handshake status {code} {reason}", code, reason, {}, body)
        except Exception as exc:  # as kubernetes.stream.ws_client.websocket_call does
            raise ApiException(status=0, reason=str(exc))
    except ApiException as api_exc:
        return api_exc


@pytest.mark.parametrize("code,reason,cls", [(403, "Forbidden", Forbidden), (404, "NotFound", NotFound),
                                             (500, "InternalError", ExecFailed)])
def test_exec_refusals_carry_status_and_reason(code, reason, cls):
    exc = probe._exec_error(_refused_exec(code, reason), "x", "c")
    assert type(exc) is cls and (exc.status, exc.reason) == (code, reason)
    assert "x/c" in str(exc)


# --- sample ---------------------------------------------------------------------------------------
MARK = traffic._MARK
HELLO = "Server address: 10.244.1.5:80\nServer name: web-a\n"


def curl_output(*rows: tuple[str, str, str]) -> str:
    """curl's stdout for requests answered (code, exitcode, errormsg), as `_curl_loop_argv` asks."""
    out = []
    for code, exitcode, errormsg in rows:
        body = HELLO if code == "200" else ""
        remote = "10.96.0.20" if code != "000" else ""
        out.append(f"{body}\n{MARK}\t{code}\t0.002\t1\t{remote}\t{exitcode}\t{errormsg}\n")
    return "".join(out)


def errors(frame: pd.DataFrame) -> list:
    return [e if isinstance(e, str) else None for e in frame["error"]]


def test_parse_curl_loop_says_why_each_request_failed():
    stdout = curl_output(("200", "0", ""), ("000", "28", "Connection timed out after 2001 milliseconds"),
                         ("503", "0", ""), ("000", "7", "")) + "Server address: 10.2"  # cut mid-answer
    frame = traffic.parse_curl_loop(stdout, [{"address": "10.244.1.5", "port": 80, "pod": "web-a", "node": "n1"}])
    assert frame["ok"].tolist() == [True, False, False, False]
    assert errors(frame) == [None, "Connection timed out after 2001 milliseconds", "HTTP 503",
                                       "curl exit code 7"]
    assert frame.loc[0, "node"] == "n1" and len(frame) == 4


def test_curl_argv_bounds_every_request():
    argv = traffic._curl_loop_argv("http://web/", 10, True)
    assert argv[argv.index("--max-time") + 1] == str(traffic.REQUEST_TIMEOUT)
    assert argv[argv.index("--connect-timeout") + 1] == str(traffic.CONNECT_TIMEOUT)
    assert argv[-1] == "http://web/?k8snb=[0-9]"


@pytest.fixture
def live_sample(monkeypatch):
    """sample() with the cluster side replaced: one endpoint, a client pod, exec scripted by the test."""
    from k8snb import tables

    monkeypatch.setattr(tables, "endpoint_records", lambda *a: [
        {"address": "10.244.1.5", "port": 80, "pod": "web-a", "node": "n1", "ready": True}])
    calls = {}

    def run(fake_exec):
        def exec_argv(cluster, pod, argv, namespace, timeout, stop, on_stdout):
            calls.update(pod=pod, argv=argv, stop=stop)
            return fake_exec(on_stdout)
        monkeypatch.setattr(probe, "exec_argv", exec_argv)
        return traffic.sample(object(), n=5, namespace="x", from_pod="client", modeled=False)

    return run, calls


def test_sample_keeps_the_rows_when_the_client_pod_goes_away(live_sample):
    run, _ = live_sample

    def fake(on_stdout):
        done = curl_output(("200", "0", ""), ("200", "0", ""))
        on_stdout(done)
        raise ExecFailed("curl in pod x/client was stopped: the client pod x/client is being deleted",
                         stdout=done)

    with pytest.raises(SampleIncomplete, match=r"x/client is being deleted .* 2 of 5 requests") as info:
        run(fake)
    rows = info.value.rows
    assert isinstance(rows, pd.DataFrame) and rows["ok"].tolist() == [True, True]
    assert rows.attrs["incomplete"].startswith("curl in pod x/client was stopped")


def test_sample_keeps_the_rows_on_ctrl_c(live_sample):
    run, _ = live_sample

    def fake(on_stdout):
        on_stdout(curl_output(("200", "0", "")))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        run(fake)
    assert len(info.value.rows) == 1 and "1 of 5 requests" in info.value.__notes__[0]


def test_sample_reports_failed_requests(live_sample):
    run, _ = live_sample

    def fake(on_stdout):
        out = curl_output(("200", "0", ""), ("000", "6", "Could not resolve host: web"))
        on_stdout(out)
        return probe.ExecResult("client", ("curl",), 6, out, "", 0.1)

    frame = run(fake)
    assert frame.attrs["failed"] == 1 and frame.attrs["requested"] == 5
    assert errors(frame) == [None, "Could not resolve host: web"]


def test_sample_stops_when_the_client_pod_is_being_deleted():
    class FakeApi:
        def __init__(self, obj):
            self.obj = obj

        def exists(self, path):
            return self.obj

    cluster = Cluster(FakeApi({"metadata": {"name": "c", "deletionTimestamp": "2026-11-30T00:00:00Z"}}),
                      "t", "s", "v", "other")
    assert "being deleted" in traffic._client_gone(cluster, "x", "c")
    assert "was deleted" in traffic._client_gone(Cluster(FakeApi(None), "t", "s", "v", "other"), "x", "c")
    assert traffic._client_gone(Cluster(FakeApi({"metadata": {}}), "t", "s", "v", "other"), "x", "c") is None


def test_watch_through_an_outage_ends_at_its_timeout_without_error(server, fast_backoff):
    for _ in range(200):
        server.add(503, status(503, "ServiceUnavailable"))
    started = time.monotonic()
    assert list(server.api.watch("/api/v1/pods", timeout=1.0)) == []
    assert 0.8 < time.monotonic() - started < 2
