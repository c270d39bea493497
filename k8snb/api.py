"""A thin JSON layer over the official client's transport.

The `kubernetes` package loads kubeconfigs, handles TLS and auth, and streams exec sessions: we use
it for exactly that. Its generated model classes are slow for big lists (one public report: 3,661
ReplicaSets in 32 s, 28 s of it deserializing), and the course only needs a few fields, so every
request here goes out through the client's REST layer and comes back as raw bytes that the caller
decodes with msgspec or json. Errors are turned into the package's own exceptions, each naming the
object and the cause.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import msgspec
import urllib3
from kubernetes.client import ApiClient

from .errors import Conflict, Forbidden, K8snbError, NotFound, NotReachable

#: Seconds to wait for a TCP connection to the API server: long enough for a slow VPN, short
#: enough that an unreachable cluster fails the cell within the promised 10 s.
CONNECT_TIMEOUT = 5.0
#: Seconds to wait for an ordinary (non-watch) response.
READ_TIMEOUT = 30.0
#: Page size for list calls: the API server's own default for kubectl (`--chunk-size=500`).
PAGE_SIZE = 500

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
    ) -> Response | urllib3.BaseHTTPResponse:
        """Send one request; raise a K8snbError for any status outside 2xx (and `ok`)."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url_path = path + ("?" + urlencode(query, doseq=True) if query else "")
        headers = {"Accept": "application/json", "Content-Type": content_type}
        # The client builds the URL and the auth headers (token, exec plugins); the body is ours.
        method_, url, headers, _, _ = self.client.param_serialize(
            method=method,
            resource_path=url_path,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        payload = body if body is None or isinstance(body, (str, bytes)) else json.dumps(body)
        try:
            raw = self.client.rest_client.pool_manager.request(
                method_,
                url,
                body=payload,
                headers=headers,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=timeout or READ_TIMEOUT),
                preload_content=not stream,
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise NotReachable(
                f"cannot reach the Kubernetes API at {self.server} (context {self.context or '?'}): "
                f"{_root_cause(exc)}. Check that the cluster is running (`k8snb lab status` for the lab) "
                "and that your kubeconfig points at it."
            ) from None
        if stream and 200 <= raw.status < 300:
            return raw
        data = raw.data if not stream else raw.read()
        if 200 <= raw.status < 300 or raw.status in ok:
            return Response(raw.status, data)
        raise error_for(raw.status, data, method, path)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    def exists(self, path: str) -> Any | None:
        """The object at `path`, or None when it does not exist."""
        resp = self.request("GET", path, ok=(404,))
        return None if resp.status == 404 else resp.json()

    def list_raw(self, path: str, **params: Any) -> Iterator[bytes]:
        """Yield each page of a list as raw JSON bytes, following `continue` tokens."""
        params = {"limit": PAGE_SIZE, **params}
        while True:
            resp = self.request("GET", path, params=params)
            yield resp.body
            token = _continue_token(resp.body)
            if not token:
                return
            params["continue"] = token

    def list(self, path: str, **params: Any) -> list[dict]:
        """All items of a list (decoded generically: use `list_raw` for big lists)."""
        return self.snapshot(path, **params)[0]

    def snapshot(self, path: str, **params: Any) -> tuple[list[dict], str]:
        """All items of a list and the list's resourceVersion (to watch for changes after it)."""
        items: list[dict] = []
        version = ""
        for page in self.list_raw(path, **params):
            doc = _decoder.decode(page)
            items.extend(doc.get("items") or [])
            version = version or doc.get("metadata", {}).get("resourceVersion", "")
        return items, version

    def watch(self, path: str, timeout: float, **params: Any) -> Iterator[dict]:
        """Yield watch events ({'type', 'object'}) on a collection for at most `timeout` seconds."""
        params = {**params, "watch": "1", "timeoutSeconds": max(1, int(timeout)),
                  "allowWatchBookmarks": "false"}
        raw = self.request("GET", path, params=params, stream=True, timeout=timeout + READ_TIMEOUT)
        try:
            buf = b""
            for chunk in raw.stream(4096, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield _decoder.decode(line)
        except (urllib3.exceptions.HTTPError, OSError):
            return
        finally:
            raw.release_conn()

    def apply(self, path: str, manifest: dict, force: bool = True) -> dict:
        """Server-side apply `manifest` at `path` (the object's own URL) as field manager `k8snb`."""
        resp = self.request(
            "PATCH",
            path,
            params={"fieldManager": "k8snb", "force": "true" if force else None},
            body=json.dumps(manifest),
            content_type="application/apply-patch+yaml",
        )
        return resp.json()

    def delete(self, path: str, **params: Any) -> bool:
        """Delete the object at `path`; False when it was already gone."""
        resp = self.request("DELETE", path, params=params, ok=(404,))
        return resp.status != 404


def error_for(status: int, body: bytes, method: str, path: str) -> K8snbError:
    """Map an API error status to the package's exception, keeping the server's message."""
    try:
        message = json.loads(body).get("message") or body.decode(errors="replace")
    except (ValueError, AttributeError):
        message = body.decode(errors="replace")[:300]
    what = describe(path)
    if status == 403:
        return Forbidden(
            f"forbidden: {method} {what}: {message}. Ask the cluster's admin for this permission "
            "(the course's learner RBAC is in k8snb/manifests/learner-rbac.yaml)."
        )
    if status == 404:
        return NotFound(f"not found: {what}: {message}")
    if status == 409:
        return Conflict(f"conflict on {what}: {message}")
    if status == 401:
        return NotReachable(f"unauthorized at the API server ({what}): {message}. Refresh your credentials.")
    return K8snbError(f"{method} {what} failed with HTTP {status}: {message}")


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
