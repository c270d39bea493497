"""A thin JSON layer over the official client's transport.

The `kubernetes` package loads kubeconfigs, handles TLS and auth, and streams exec sessions: we use
it for exactly that. Its generated model classes are slow for big lists (one public report: 3,661
ReplicaSets in 32 s, 28 s of it deserializing), and the course only needs a few fields, so every
request here goes out through the client's REST layer and comes back as raw bytes that the caller
decodes with msgspec or json. Errors are turned into the package's own exceptions, each naming the
object and the cause.
"""
from __future__ import annotations

import datetime
import email.utils
import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import msgspec
import urllib3
from kubernetes.client import ApiClient

from .errors import Conflict, Expired, Forbidden, K8snbError, NotFound, NotReachable

#: Seconds to wait for a TCP connection to the API server: long enough for a slow VPN, short
#: enough that an unreachable cluster fails the cell within the promised 10 s.
CONNECT_TIMEOUT = 5.0
#: Seconds to wait for an ordinary (non-watch) response.
READ_TIMEOUT = 30.0
#: Page size for list calls: the API server's own default for kubectl (`--chunk-size=500`).
PAGE_SIZE = 500
#: Seconds an idempotent request without a deadline keeps retrying a transient failure. Calls
#: with a deadline (the waits) retry until it; the others (a single get in a notebook cell,
#: `connect()`) must still fail fast on a cluster that is down: `connect()` promises its
#: NotReachable within 10 s, and one attempt may already take CONNECT_TIMEOUT of them. Three
#: seconds ride out an API server restart's refused connections or a short 503 burst, no more.
RETRY_WINDOW = 3.0
#: The least time one attempt gets, even when the deadline is closer than that.
MIN_ATTEMPT = 1.0
#: Statuses that say "try again" rather than "no": too many requests, and the server or a proxy in
#: front of it failing for a moment (client-go retries the same, plus Retry-After on any status).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: First backoff delay in seconds and its ceiling (doubled on each retry, with jitter).
BACKOFF_BASE = 0.2
BACKOFF_MAX = 2.0
#: The content type of a server-side apply, the one PATCH that is idempotent.
APPLY_PATCH = "application/apply-patch+yaml"

_decoder = msgspec.json.Decoder()


@dataclass(frozen=True)
class Response:
    """An API answer: the HTTP status and the raw body (decode with `.json()`)."""

    status: int
    body: bytes

    def json(self) -> Any:
        return _decoder.decode(self.body) if self.body else None


def describe(path: str) -> str:
    """Turn an API path into 'kind namespace/name' words for error messages."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if "namespaces" in parts:
        i = parts.index("namespaces")
        ns = parts[i + 1] if i + 1 < len(parts) else ""
        rest = parts[i + 2 :]
        if len(rest) >= 2:
            return f"{rest[0]} {ns}/{rest[1]}"
        if len(rest) == 1:
            return f"{rest[0]} in namespace {ns}"
        return f"namespace {ns}"
    return " ".join(parts[-2:]) if parts else path


class Api:
    """JSON requests against one cluster, through one official `ApiClient`."""

    def __init__(self, client: ApiClient, context: str = "") -> None:
        self.client = client
        self.context = context
        self.server = client.configuration.host

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        stream: bool = False,
        ok: tuple[int, ...] = (),
        deadline: float | None = None,
    ) -> Response | urllib3.BaseHTTPResponse:
        """Send one request; raise a K8snbError for any status outside 2xx (and `ok`).

        Idempotent requests (GET, DELETE, server-side apply) are retried on connection errors and on
        RETRY_STATUSES, with exponential backoff and jitter, honouring the server's Retry-After,
        until `deadline` (a `time.monotonic()` value; default: RETRY_WINDOW seconds from now).
        Anything else (POST, merge patches, exec) is sent exactly once.
        """
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url_path = path + ("?" + urlencode(query, doseq=True) if query else "")
        payload = body if body is None or isinstance(body, (str, bytes)) else json.dumps(body)
        retry = idempotent(method, content_type)
        first_try = time.monotonic()
        end = deadline if deadline is not None else first_try + RETRY_WINDOW
        attempt = 0
        while True:
            now = time.monotonic()
            # The first attempt of a call without a deadline gets the full timeouts (a slow VPN);
            # every later one, and every one under a deadline, only what is left (at least a second).
            left = max(end - now, MIN_ATTEMPT)
            first = attempt == 0 and deadline is None
            connect = CONNECT_TIMEOUT if first else min(CONNECT_TIMEOUT, left)
            read = (timeout or READ_TIMEOUT) if first or stream else min(timeout or READ_TIMEOUT, left)
            try:
                raw = self._send(method, url_path, payload, content_type, connect, read, stream)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                error: K8snbError = NotReachable(
                    f"cannot reach the Kubernetes API at {self.server} (context {self.context or '?'}): "
                    f"{_root_cause(exc)}. Check that the cluster is running (`k8snb lab status` for the lab) "
                    "and that your kubeconfig points at it."
                )
                wait = backoff(attempt)
            else:
                if stream and 200 <= raw.status < 300:
                    return raw
                try:
                    data = raw.data if not stream else raw.read()
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    data = str(exc).encode()
                finally:
                    if stream:
                        raw.release_conn()
                if 200 <= raw.status < 300 or raw.status in ok:
                    return Response(raw.status, data)
                error = error_for(raw.status, data, method, path)
                if raw.status not in RETRY_STATUSES:
                    raise error
                wait = max(backoff(attempt), retry_after(raw.headers.get("Retry-After")))
            if not retry or time.monotonic() + wait >= end:
                raise error
            time.sleep(wait)
            attempt += 1

    def _send(self, method: str, url_path: str, payload: Any, content_type: str, connect: float,
              read: float, stream: bool) -> urllib3.BaseHTTPResponse:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        # The client builds the URL and the auth headers (token, exec plugins); the body is ours.
        method_, url, headers, _, _ = self.client.param_serialize(
            method=method,
            resource_path=url_path,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        return self.client.rest_client.pool_manager.request(
            method_,
            url,
            body=payload,
            headers=headers,
            timeout=urllib3.Timeout(connect=connect, read=read),
            preload_content=not stream,
            retries=False,
        )

    def get(self, path: str, deadline: float | None = None, **params: Any) -> Any:
        return self.request("GET", path, params=params, deadline=deadline).json()

    def exists(self, path: str, deadline: float | None = None) -> Any | None:
        """The object at `path`, or None when it does not exist."""
        resp = self.request("GET", path, ok=(404,), deadline=deadline)
        return None if resp.status == 404 else resp.json()

    def list_raw(self, path: str, deadline: float | None = None, **params: Any) -> Iterator[bytes]:
        """Yield each page of a list as raw JSON bytes, following `continue` tokens.

        The pages are read in full before the first is yielded, so that they all belong to one
        consistent list: when a continue token expires half-way (HTTP 410, etcd compacted its
        revision), the pages read so far are dropped and the list is read again in one request
        without `limit`, as client-go's pager does (FullListIfExpired).
        """
        params = {"limit": PAGE_SIZE, **params}
        pages: list[bytes] = []
        while True:
            try:
                resp = self.request("GET", path, params=params, deadline=deadline)
            except Expired:
                if "continue" not in params:
                    raise
                params = {k: v for k, v in params.items() if k not in ("continue", "limit")}
                pages = []
                continue
            pages.append(resp.body)
            token = _continue_token(resp.body)
            if not token:
                break
            params["continue"] = token
        yield from pages

    def list(self, path: str, deadline: float | None = None, **params: Any) -> list[dict]:
        """All items of a list (decoded generically: use `list_raw` for big lists)."""
        return self.snapshot(path, deadline=deadline, **params)[0]

    def snapshot(self, path: str, deadline: float | None = None, **params: Any) -> tuple[list[dict], str]:
        """All items of a list and the list's resourceVersion (to watch for changes after it)."""
        items: list[dict] = []
        version = ""
        for page in self.list_raw(path, deadline=deadline, **params):
            doc = _decoder.decode(page)
            items.extend(doc.get("items") or [])
            version = version or doc.get("metadata", {}).get("resourceVersion", "")
        return items, version

    def watch(self, path: str, timeout: float, deadline: float | None = None, **params: Any) -> Iterator[dict]:
        """Yield watch events ({'type', 'object'}) on a collection for at most `timeout` seconds.

        A dropped connection (or a stream the server ends early) is reopened from the last
        resourceVersion seen, until the time is up. An expired resourceVersion (HTTP 410, or an
        ERROR event with code 410 in the stream) raises `Expired`: the caller lists again and
        watches from the new list's resourceVersion. Other ERROR events raise their K8snbError.
        `deadline` (monotonic seconds) shortens `timeout` when it comes first.
        """
        end = time.monotonic() + timeout
        if deadline is not None:
            end = min(end, deadline)
        attempt = 0
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            query = {**params, "watch": "1", "timeoutSeconds": max(1, math.ceil(left)),
                     "allowWatchBookmarks": "false"}
            try:
                raw = self.request("GET", path, params=query, stream=True, timeout=left + READ_TIMEOUT,
                                   deadline=end)
            except K8snbError as exc:
                # `request` retried a transient failure (unreachable, 5xx, 429) until the watch's
                # end: a window without events. The caller's next list says if it is still down.
                if isinstance(exc, NotReachable) or exc.status in RETRY_STATUSES:
                    return
                raise
            got_any = reopen = False
            try:
                buf = b""
                for chunk in raw.stream(4096, decode_content=True):
                    buf += chunk
                    while b"\n" in buf and not reopen:
                        line, buf = buf.split(b"\n", 1)
                        if not line.strip():
                            continue
                        event = _decoder.decode(line)
                        if event.get("type") == "ERROR":
                            error = _watch_error(event.get("object") or {}, path)
                            if error.status not in RETRY_STATUSES:
                                raise error
                            reopen = True  # the server gave up on this stream (5xx): open another
                            break
                        got_any = True
                        version = (event.get("object") or {}).get("metadata", {}).get("resourceVersion")
                        if version:
                            params["resourceVersion"] = version
                        yield event
                    if reopen:
                        break
            except (urllib3.exceptions.HTTPError, OSError):
                pass  # the connection dropped: reopen from the last resourceVersion below
            finally:
                raw.release_conn()
            attempt = 0 if got_any else attempt + 1
            wait = backoff(attempt) if attempt else 0.0
            if time.monotonic() + wait >= end:
                return
            time.sleep(wait)

    def apply(self, path: str, manifest: dict, force: bool = True, deadline: float | None = None) -> dict:
        """Server-side apply `manifest` at `path` (the object's own URL) as field manager `k8snb`."""
        resp = self.request(
            "PATCH",
            path,
            params={"fieldManager": "k8snb", "force": "true" if force else None},
            body=json.dumps(manifest),
            content_type=APPLY_PATCH,
            deadline=deadline,
        )
        return resp.json()

    def delete(self, path: str, deadline: float | None = None, **params: Any) -> bool:
        """Delete the object at `path`; False when it was already gone."""
        resp = self.request("DELETE", path, params=params, ok=(404,), deadline=deadline)
        return resp.status != 404


def idempotent(method: str, content_type: str = "application/json") -> bool:
    """Whether sending the request twice does no more than sending it once (so it may be retried).

    GET and DELETE are; a server-side apply (PATCH with the apply content type) is too: the same
    manifest applied twice gives the same object. POST and other patches are not.
    """
    method = method.upper()
    return method in ("GET", "HEAD", "DELETE") or (method == "PATCH" and content_type == APPLY_PATCH)


def backoff(attempt: int) -> float:
    """Seconds to wait before retry number `attempt + 1`: exponential (BACKOFF_BASE doubled each
    time, at most BACKOFF_MAX) with full jitter in its upper half, so that many clients retrying
    the same outage do not come back in lockstep."""
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * (2 ** attempt))
    return ceiling * (0.5 + random.random() / 2)


def retry_after(value: str | None) -> float:
    """The server's Retry-After header in seconds (delta-seconds or an HTTP date; 0 when absent)."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if when is None:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())


def _watch_error(status: dict, path: str) -> K8snbError:
    """The exception for an ERROR event of a watch (its object is a metav1.Status)."""
    code = status.get("code") or 500
    return error_for(int(code), json.dumps(status).encode(), "WATCH", path)


def error_for(status: int, body: bytes, method: str, path: str) -> K8snbError:
    """Map an API error status to the package's exception, keeping the server's message.

    The exception carries `status` (the HTTP status) and `reason` (the API Status' reason, such
    as 'Forbidden', 'NotFound', 'Expired' or 'Gone'; None when the body is not a Status).
    """
    reason = None
    try:
        doc = json.loads(body)
        message = doc.get("message") or body.decode(errors="replace")
        reason = doc.get("reason") or None
    except (ValueError, AttributeError):
        message = body.decode(errors="replace")[:300]
    what = describe(path)
    tags = {"status": status, "reason": reason}
    if status == 403:
        return Forbidden(
            f"forbidden: {method} {what}: {message}. Ask the cluster's admin for this permission "
            "(the course's learner RBAC is in k8snb/manifests/learner-rbac.yaml).", **tags
        )
    if status == 404:
        return NotFound(f"not found: {what}: {message}", **tags)
    if status == 409:
        return Conflict(f"conflict on {what}: {message}", **tags)
    if status == 410:
        return Expired(f"expired: {method} {what}: {message}. List again and watch from the new "
                       "resourceVersion.", status=status, reason=reason or "Gone")
    if status == 401:
        return NotReachable(f"unauthorized at the API server ({what}): {message}. Refresh your credentials.",
                            **tags)
    return K8snbError(f"{method} {what} failed with HTTP {status}: {message}", **tags)


def _continue_token(page: bytes) -> str | None:
    meta = msgspec.json.decode(page, type=_ListMeta)
    return meta.metadata.continue_ or None


class _Meta(msgspec.Struct):
    continue_: str | None = msgspec.field(default=None, name="continue")


class _ListMeta(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a urllib3 error ('Connection refused', 'timed out' ...)."""
    reason = getattr(exc, "reason", None)
    while reason is not None and getattr(reason, "reason", None) is not None:
        reason = reason.reason
    text = str(reason or exc)
    for marker in ("Connection refused", "timed out", "Name or service not known", "No route to host",
                   "certificate verify failed"):
        if marker in text:
            return marker.lower()
    return text
