"""Run a command inside a pod (argv, never a shell string) and read curl and nslookup answers.

This is `kubectl exec -it <netshoot-pod> -- curl -I nginx-svc` from the article, as a function that
returns data. On clusters whose pods cannot run anything (the lab's simulated kwok nodes), the
`resolve()` answer is modeled from the API with the resolver's search path, and says so.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml
from kubernetes import client as kclient
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from websocket import WebSocketBadStatusException, WebSocketException

from .cluster import Cluster
from .learner import NAMESPACE
from .errors import ExecFailed, Forbidden, InvalidInput, K8snbError, NotFound, NotReadyInTime
from .names import dns_label, dns_subdomain
from .wait import pod_ready

#: Seconds an exec may take before it is abandoned (a curl loop of 1,000 requests takes ~5 s).
EXEC_TIMEOUT = 60.0
#: The `reason` of the ExecFailed raised when the pod's image lacks the program (exit 126 or 127).
TOOL_MISSING = "ToolMissing"
#: Seconds between two calls of exec_argv's `stop` check (and the longest it blocks on the socket).
STOP_CHECK_INTERVAL = 1.0
CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class ExecResult:
    pod: str
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    seconds: float


def can_carry_traffic(cluster: Cluster) -> bool:
    """False when the cluster's nodes are simulated (kwok): pods there run nothing."""
    cached = cluster._cache.get("real_nodes")
    if cached is None:
        try:
            nodes = cluster.api.list("/api/v1/nodes")
            cached = bool(nodes) and not any(
                n["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake"
                or n["metadata"].get("labels", {}).get("type") == "kwok" for n in nodes)
        except Forbidden:
            cached = True  # a learner who may not list nodes is on a real cluster
        cluster._cache["real_nodes"] = cached
    return cached


def pod_for(cluster: Cluster, app: str, namespace: str = NAMESPACE) -> str:
    """The name of a Running, Ready pod labelled app=<app> (e.g. the netshoot client)."""
    dns_label(app, "app label")
    dns_label(namespace, "namespace")
    pods = cluster.api.list(f"/api/v1/namespaces/{namespace}/pods", labelSelector=f"app={app}")
    ready = [p for p in pods if pod_ready(p)]
    if not ready:
        raise NotReadyInTime(f"no ready pod with label app={app} in namespace {namespace}; "
                             "apply the article's objects and wait for them (k8snb.article, k8snb.wait_deployment)")
    return sorted(ready, key=lambda p: p["metadata"]["name"])[0]["metadata"]["name"]


#: Tries to open an exec session when the API server fails to dial the kubelet (before anything runs).
DIAL_ATTEMPTS = 3


def exec_argv(cluster: Cluster, pod: str, argv: list[str], namespace: str = NAMESPACE,
              container: str | None = None, timeout: float = EXEC_TIMEOUT,
              stop: Callable[[], str | None] | None = None,
              on_stdout: Callable[[str], None] | None = None) -> ExecResult:
    """Run `argv` in `pod` and return its exit code and output. `argv` is a list: no shell parses it.

    `stop`, when given, is called about once a second while the command runs; a non-empty answer
    (the reason) ends the exec at once with ExecFailed. Whatever ends the exec early (`stop`, the
    timeout, a dropped connection, KeyboardInterrupt) closes its websocket, and the container
    runtime then kills the command; an ExecFailed carries the output printed so far in `stdout`
    and `stderr`. A program the image lacks raises ExecFailed with reason TOOL_MISSING. `on_stdout`
    receives each piece of stdout as it arrives (so a caller keeps it even when a KeyboardInterrupt
    ends the exec).
    """
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        raise InvalidInput("the command must be a non-empty list of strings (argv), not a shell string")
    dns_subdomain(pod, "pod name")
    dns_label(namespace, "namespace")
    core = kclient.CoreV1Api(cluster.api.client)
    started = time.monotonic()
    for attempt in range(DIAL_ATTEMPTS):
        try:
            resp = stream(core.connect_get_namespaced_pod_exec, pod, namespace, command=list(argv),
                          container=container, stderr=True, stdin=False, stdout=True, tty=False,
                          _preload_content=False, _request_timeout=timeout)
            break
        except ApiException as exc:
            error = _exec_error(exc, namespace, pod)
            # The API server could not open its connection to the node's kubelet (a reset or a
            # timeout under load): nothing ran in the pod, so asking again is safe.
            if (error.status == 500 and "error dialing backend" in str(error)
                    and attempt + 1 < DIAL_ATTEMPTS and time.monotonic() - started < timeout / 2):
                time.sleep(0.5 * (attempt + 1))
                continue
            raise error from None
        except Exception as exc:  # noqa: BLE001 — the client's own failures come in many types; keep the words
            raise ExecFailed(f"exec into pod {namespace}/{pod} failed: {exc}") from None
    out, err = [], []
    deadline = started + timeout
    next_check = started + STOP_CHECK_INTERVAL

    def failed(message: str) -> ExecFailed:
        return ExecFailed(message, stdout="".join(out), stderr="".join(err))

    try:
        while resp.is_open():
            now = time.monotonic()
            if now >= deadline:
                raise failed(f"{argv[0]} in pod {namespace}/{pod} did not finish within {timeout:.0f} s; "
                             "it was stopped")
            if stop is not None and now >= next_check:
                reason = stop()
                if reason:
                    raise failed(f"{argv[0]} in pod {namespace}/{pod} was stopped: {reason}")
                next_check = time.monotonic() + STOP_CHECK_INTERVAL
            try:
                resp.update(timeout=min(deadline - now, STOP_CHECK_INTERVAL))
            except (WebSocketException, OSError) as exc:
                raise failed(f"the exec session with pod {namespace}/{pod} broke off: {exc or type(exc).__name__}"
                             ) from None
            if resp.peek_stdout():
                out.append(resp.read_stdout())
                if on_stdout is not None:
                    on_stdout(out[-1])
            if resp.peek_stderr():
                err.append(resp.read_stderr())
        try:
            code = resp.returncode
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, yaml.YAMLError) as exc:
            # The runtime could not start the command at all, or the session ended without a
            # status (the pod went away): the status, if any, says why in prose.
            text = str(exc)
            err.append(text)
            # "failed to start exec ... OCI runtime exec failed: ... executable file not found"
            # (the client cuts the message): the program could not be started in the container.
            code = 127 if "failed to start exec" in text or "not found" in text else -1
    finally:
        resp.close()
    stderr = "".join(err)
    if code is None or code == -1:
        raise ExecFailed(f"{argv[0]} in pod {namespace}/{pod} ended without an exit status "
                         f"(was the pod deleted?): {stderr[-300:]}", stdout="".join(out), stderr=stderr)
    if code in (126, 127) or "executable file not found" in stderr or "no such file or directory" in stderr.lower():
        raise ExecFailed(f"pod {namespace}/{pod} has no '{argv[0]}' (exit {code}); use a client image that "
                         "ships it, such as the article's nicolaka/netshoot", reason=TOOL_MISSING,
                         stdout="".join(out), stderr=stderr)
    return ExecResult(pod, tuple(argv), code, "".join(out), stderr, time.monotonic() - started)


def _exec_error(exc: ApiException, namespace: str, pod: str) -> K8snbError:
    """The exception for an exec the API server refused, from the status of its answer.

    The websocket client reports a refused handshake as ApiException(status=0) raised while
    handling websocket's own exception, which keeps the real status and the API Status body.
    """
    status, reason, message = exc.status or None, None, exc.reason or str(exc)
    cause = exc.__context__
    if isinstance(cause, WebSocketBadStatusException):
        status = cause.status_code
        reason = cause.status_message
        try:
            body = json.loads(cause.resp_body or b"")
            reason, message = body.get("reason") or reason, body.get("message") or message
        except (ValueError, AttributeError):
            pass
    elif exc.body:
        try:
            body = json.loads(exc.body)
            reason, message = body.get("reason") or exc.reason, body.get("message") or message
        except (ValueError, AttributeError, TypeError):
            pass
    tags = {"status": status, "reason": reason}
    if status == 403:
        return Forbidden(f"exec into pod {namespace}/{pod} is forbidden: the account lacks 'create' on "
                         f"pods/exec in this namespace ({message})", **tags)
    if status == 404:
        return NotFound(f"pod {namespace}/{pod} does not exist", **tags)
    return ExecFailed(f"exec into pod {namespace}/{pod} failed: {message}", **tags)


# --- curl ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CurlResult:
    url: str
    ok: bool
    status: int | None
    status_line: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error: str = ""


_CURL_ERROR = re.compile(r"curl: \(\d+\) (.*)")


def parse_curl(url: str, exit_code: int, stdout: str, stderr: str) -> CurlResult:
    """Split `curl -i`/`curl -I` output into status line, headers and body (curl's error if any)."""
    if exit_code != 0:
        m = _CURL_ERROR.search(stderr)
        return CurlResult(url, False, None, "", error=(m.group(0) if m else stderr.strip() or f"exit {exit_code}"))
    head, _, body = stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    status_line = lines[0] if lines else ""
    parts = status_line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip()] = v.strip()
    return CurlResult(url, status is not None and status < 400, status, status_line, headers, body)


def curl(cluster: Cluster, url: str, from_pod: str | None = None, namespace: str = NAMESPACE,
         head: bool = False, timeout: float = 10.0) -> CurlResult:
    """`curl -i` (or `-I`) `url` from a client pod (default: the netshoot pod in `namespace`)."""
    _check_url(url)
    pod = from_pod or pod_for(cluster, "netshoot", namespace)
    argv = ["curl", "-sS", "-I" if head else "-i", "--max-time", str(int(timeout)), url]
    res = exec_argv(cluster, pod, argv, namespace, timeout=timeout + 10)
    return parse_curl(url, res.exit_code, res.stdout, res.stderr)


_URL = re.compile(r"^(https?://)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:\d{1,5})?(/[-A-Za-z0-9._~/?=&%\[\]]*)?$")


def _check_url(url: str) -> None:
    if not isinstance(url, str) or not _URL.match(url):
        raise InvalidInput(f"{url!r} is not a URL the course sends (host[:port][/path], lower-case host)")


# --- DNS -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lookup:
    query: str
    server: str | None
    name: str | None
    addresses: tuple[str, ...]
    nxdomain: bool
    mode: str = "measured"
    raw: str = ""


def parse_nslookup(query: str, stdout: str, stderr: str = "") -> Lookup:
    """Read nslookup's answer: the server it asked, the canonical name, the addresses, or NXDOMAIN."""
    server = name = None
    addresses: list[str] = []
    answer = False
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("Server:"):
            server = line.split(":", 1)[1].strip()
        elif line.startswith("Name:"):
            name, answer = line.split(":", 1)[1].strip(), True
        elif line.startswith("Address:") and answer:
            addresses.append(line.split(":", 1)[1].strip())
    text = stdout + stderr
    # CoreDNS says NXDOMAIN for a missing cluster name, NODATA ("*** Can't find ...: No answer")
    # where a search-path candidate names a namespace, and, without upstream forwarding (the lab),
    # SERVFAIL outside the cluster. nslookup prints "can't find" for all: the name did not resolve.
    return Lookup(query, server, name, tuple(addresses), not addresses and "can't find" in text.lower(), raw=text)


def nslookup(cluster: Cluster, name: str, from_pod: str | None = None, namespace: str = NAMESPACE,
             timeout: float = 15.0) -> Lookup:
    """`nslookup <name>` inside a client pod: which DNS server answered and what it said.

    A trailing dot (`nginx-svc.default.svc.cluster.local.`) makes the name absolute: the resolver
    asks it as is, without the search list."""
    dns_subdomain(name[:-1] if name.endswith(".") else name, "DNS name")
    pod = from_pod or pod_for(cluster, "netshoot", namespace)
    res = exec_argv(cluster, pod, ["nslookup", name], namespace, timeout=timeout)
    return parse_nslookup(name, res.stdout, res.stderr)


def search_path(namespace: str, domain: str = CLUSTER_DOMAIN) -> list[str]:
    """The resolv.conf search list kubelet gives a pod in `namespace` (ClusterFirst DNS policy)."""
    return [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]


def resolve_modeled(cluster: Cluster, name: str, namespace: str = NAMESPACE,
                    domain: str = CLUSTER_DOMAIN) -> Lookup:
    """What CoreDNS would answer a pod in `namespace` for `name`, computed from the API.

    Follows the pod's search path (ndots:5): `nginx-svc` from `default` becomes
    nginx-svc.default.svc.cluster.local; `nginx.nginx` becomes nginx.nginx.svc.cluster.local.
    Used where pods cannot run nslookup (simulated nodes); the result says mode='modeled'.
    """
    dns_subdomain(name, "DNS name")
    dns_ip = None
    kube_dns = cluster.api.exists("/api/v1/namespaces/kube-system/services/kube-dns")
    if kube_dns:
        dns_ip = kube_dns["spec"].get("clusterIP")
    candidates = [f"{name}.{s}" for s in search_path(namespace, domain)] if name.count(".") < 5 else []
    candidates.append(name)
    suffix = f".svc.{domain}"
    for fqdn in candidates:
        if not fqdn.endswith(suffix):
            continue
        labels = fqdn[: -len(suffix)].split(".")
        if len(labels) != 2:
            continue
        svc_name, svc_ns = labels
        svc = cluster.api.exists(f"/api/v1/namespaces/{svc_ns}/services/{svc_name}")
        if svc:
            ip = svc["spec"].get("clusterIP")
            return Lookup(name, dns_ip, fqdn, (ip,) if ip and ip != "None" else (), False, "modeled")
    return Lookup(name, dns_ip, None, (), True, "modeled")
