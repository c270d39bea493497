"""Traffic sampling: how a Service spreads requests over its pods, measured or modeled.

The article curls `nginx-svc` a few times from netshoot and sees different `Server address` lines:
the Service spreads the requests "evenly". The course turns that into numbers: many requests, one
row each, a count per replica and a chi-square test against an even spread.

Request frame, one row per request (REQUEST_COLUMNS):

- `request` (int): 0..n-1, in the order sent.
- `server_address` (str): what the answering pod reports, 'ip:port' such as '10.244.1.5:80'.
- `server_name` (str): the answering pod's hostname, which is its pod name.
- `pod`, `node` (str): the pod and the node it runs on, joined from the Service's EndpointSlices.
- `latency_ms` (float): round trip as the client saw it; NaN when modeled.
- `ok` (bool): whether the request got an answer.
- `mode` (str): 'measured' (real requests) or 'modeled' (kube-proxy's rules replayed by
  `modeled_sample()` where requests cannot reach pods, e.g. a lab without real nodes).

Measured frames also carry `new_connection` (bool) and `error` (why a request failed; missing when
it got its page); see `parse_curl_loop`.

Modeled and measured rows are never mixed silently: `summarize()` refuses a frame holding both.
"""
from __future__ import annotations

import html
import math
import random
import re
import shlex
from collections.abc import Mapping, Sequence

import pandas as pd
from scipy.stats import chisquare

from .errors import ExecFailed, InvalidInput, K8snbError, NotFound, SampleIncomplete
from .learner import NAMESPACE

REQUEST_COLUMNS = ("request", "server_address", "server_name", "pod", "node", "latency_ms", "ok", "mode")
MODES = ("measured", "modeled")
PROXY_MODES = ("iptables", "ipvs", "nftables")
SESSION_AFFINITIES = ("None", "ClientIP")

# Labels of the nginxdemos/hello page (and of our stand-in image), keyed by the field name returned.
_HELLO_FIELDS = {
    "server_address": "Server address",
    "server_name": "Server name",
    "date": "Date",
    "uri": "URI",
    "request_id": "Request ID",
    "client_address": "Client address",
}
_HIDDEN_HTML = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_LINE_BREAK_TAGS = re.compile(r"<\s*(br|/p|/div|/tr|/li)\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")


def parse_hello(body: str) -> dict[str, str | None]:
    """Read the fields of an nginxdemos/hello answer, plain-text or HTML variant.

    Both variants print 'Label: value' (the HTML one as two spans, with '&nbsp;' in the label), so
    the HTML is reduced to text first. A field the page does not carry is None: a proxy's error page
    or a different image yields all None and the caller decides what that means.
    """
    text = _HIDDEN_HTML.sub("", body)
    text = _LINE_BREAK_TAGS.sub("\n", text)
    text = html.unescape(_TAG.sub("", text)).replace("\xa0", " ")
    fields: dict[str, str | None] = {}
    for key, label in _HELLO_FIELDS.items():
        match = re.search(rf"^[ \t]*{re.escape(label)}:[ \t]*(\S.*?)[ \t]*$", text, re.MULTILINE)
        fields[key] = match.group(1) if match else None
    return fields


def even_spread_p_value(counts: Sequence[int]) -> float:
    """Chi-square goodness-of-fit p-value of `counts` against an even spread (1.0 for one replica).

    A small p-value (say below 0.01) says a spread this uneven rarely happens by chance if every
    replica is equally likely; a large one says the data are consistent with an even spread.
    """
    values = list(counts)
    if any(c < 0 for c in values):
        raise InvalidInput(f"counts must not be negative, got {values}")
    if len(values) <= 1:
        return 1.0
    if sum(values) == 0:
        raise InvalidInput("every count is 0: there is no spread to test; send some requests first")
    return float(chisquare(values).pvalue)


def _single_mode(frame: pd.DataFrame, what: str) -> str:
    modes = sorted(set(frame["mode"].dropna()))
    if len(modes) > 1:
        raise InvalidInput(
            f"{what} mixes {' and '.join(modes)} rows: summarize measured and modeled requests "
            "separately, never as one sample"
        )
    if not modes or modes[0] not in MODES:
        raise InvalidInput(f"{what} has no valid mode (expected one of {MODES}), got {modes}")
    return modes[0]


def summarize(requests: pd.DataFrame, replicas: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per replica: replica, pod, node, count, share, expected_share.

    The replica is the answering pod's name (server_name), or its address when the page gave no
    name. Names in `replicas` that got no request still get a row with count 0: a replica that
    never answers is exactly what the learner should see. Failed requests (ok False) are not
    counted. `attrs` carries `p_value` (even_spread_p_value), `mode`, `n` (requests counted) and
    `failed`.
    """
    missing = [c for c in REQUEST_COLUMNS if c not in requests.columns]
    if missing:
        raise InvalidInput(f"the request frame lacks the columns {missing} (see traffic.REQUEST_COLUMNS)")
    if requests.empty:
        raise InvalidInput("there are no requests to summarize: send some first")
    mode = _single_mode(requests, "the request frame")
    answered = requests[requests["ok"].astype(bool)]
    replica = answered["server_name"].where(answered["server_name"].notna(), answered["server_address"])
    answered = answered.assign(replica=replica).dropna(subset=["replica"])
    if answered.empty:
        raise InvalidInput(f"none of the {len(requests)} requests got an answer naming a pod")
    grouped = answered.groupby("replica", sort=True).agg(
        pod=("pod", "first"), node=("node", "first"), count=("request", "size"))
    unseen = [name for name in dict.fromkeys(replicas or ()) if name not in grouped.index]
    silent = pd.DataFrame({"pod": unseen, "node": None, "count": 0}, index=pd.Index(unseen, name="replica"))
    summary = pd.concat([grouped, silent]).sort_index().reset_index()
    summary["count"] = summary["count"].astype(int)
    total = int(summary["count"].sum())
    summary["share"] = summary["count"] / total
    summary["expected_share"] = 1 / len(summary)
    summary.attrs.update(p_value=even_spread_p_value(summary["count"].tolist()), mode=mode,
                         n=total, failed=int((~requests["ok"].astype(bool)).sum()))
    return summary


def iptables_probabilities(k: int) -> list[float]:
    """The probability on each of the k rules kube-proxy writes in a KUBE-SVC chain.

    Rule i (0-based) matches with probability 1/(k-i): 1/k, 1/(k-1), ..., 1/2, 1. A connection that
    reaches rule i matched none before it, so every endpoint ends up with the same 1/k.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"the number of endpoints must be a whole number of at least 1, got {k!r}")
    return [1 / (k - i) for i in range(k)]


def _endpoint_row(endpoint: Mapping, request: int) -> dict:
    try:
        address, port, pod, node = (endpoint[key] for key in ("address", "port", "pod", "node"))
    except KeyError as missing:
        raise InvalidInput(f"endpoint {endpoint!r} lacks the key {missing} (address, port, pod, node)") from None
    host = f"[{address}]" if ":" in str(address) else address
    return {"request": request, "server_address": f"{host}:{port}", "server_name": pod, "pod": pod,
            "node": node, "latency_ms": math.nan, "ok": True, "mode": "modeled"}


def modeled_sample(
    endpoints: Sequence[Mapping],
    n: int,
    proxy_mode: str = "iptables",
    session_affinity: str = "None",
    seed: int | None = None,
) -> pd.DataFrame:
    """Replay kube-proxy's choice of endpoint for n new connections, as a request frame.

    `endpoints` are the Service's ready endpoints (dicts with address, port, pod, node) in
    EndpointSlice order. iptables mode walks the KUBE-SVC chain: rule i matches with probability
    1/(k-i), the last always. nftables mode picks uniformly at random (a numgen vmap). ipvs mode
    uses its default round-robin scheduler, in endpoint order. With sessionAffinity ClientIP one
    client always lands where its first request went. Rows are marked mode='modeled' with NaN
    latency: they show what the rules do, not what the network did.
    """
    if not endpoints:
        raise NotFound("no ready endpoints to model: the Service selects no ready pod; "
                       "check the selector and the pods' readiness")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInput(f"n must be a whole number of requests of at least 1, got {n!r}")
    if proxy_mode not in PROXY_MODES:
        raise InvalidInput(f"proxy_mode must be one of {PROXY_MODES}, got {proxy_mode!r}")
    if session_affinity not in SESSION_AFFINITIES:
        raise InvalidInput(f"session_affinity must be one of {SESSION_AFFINITIES}, got {session_affinity!r}")
    rng = random.Random(seed)
    k = len(endpoints)
    probabilities = iptables_probabilities(k)

    def pick(request: int) -> int:
        if proxy_mode == "ipvs":
            return request % k
        if proxy_mode == "nftables":
            return rng.randrange(k)
        return next(i for i, p in enumerate(probabilities) if i == k - 1 or rng.random() < p)

    choices = [pick(0)] * n if session_affinity == "ClientIP" else [pick(r) for r in range(n)]
    frame = pd.DataFrame([_endpoint_row(endpoints[c], r) for r, c in enumerate(choices)],
                         columns=list(REQUEST_COLUMNS))
    frame.attrs.update(mode="modeled", proxy_mode=proxy_mode, session_affinity=session_affinity)
    return frame


_COUNTERS = re.compile(r"^\[(\d+):(\d+)\]\s+")


def _rule_options(line: str) -> tuple[str, dict[str, str]] | None:
    """Chain and options ('--comment', '-j', ...) of one '-A CHAIN ...' line of iptables-save.

    With `iptables-save -c` the line starts with the rule's '[packets:bytes]': its packet counter
    is kept as the option '[packets]'."""
    counters = _COUNTERS.match(line)
    if counters:
        line = line[counters.end():]
    if not line.startswith("-A "):
        return None
    tokens = shlex.split(line)
    options = {flag: value for flag, value in zip(tokens[2:], tokens[3:]) if flag.startswith("-")}
    if counters:
        options["[packets]"] = counters.group(1)
    return tokens[1], options


def _service_chain(rules: list[tuple[str, dict[str, str]]], namespace: str, service: str,
                   port_name: str | None) -> str:
    # kube-proxy comments the ClusterIP rule "namespace/service:port cluster IP"; the ':port' part
    # is absent (or empty, in old versions) for an unnamed port.
    wanted = re.compile(rf"^{re.escape(namespace)}/{re.escape(service)}(?::(?P<port>\S*))? cluster IP$")
    chains: dict[str, str] = {}
    for chain, options in rules:
        match = wanted.match(options.get("--comment", ""))
        target = options.get("-j", "")
        if chain == "KUBE-SERVICES" and match and target.startswith(("KUBE-SVC-", "KUBE-SVL-")):
            chains.setdefault(match.group("port") or "", target)
    if port_name is not None:
        chains = {port: chain for port, chain in chains.items() if port == port_name}
    if not chains:
        port = f" port {port_name!r}" if port_name is not None else ""
        raise NotFound(f"no KUBE-SVC chain for {namespace}/{service}{port} in this iptables-save output: "
                       "is kube-proxy in iptables mode, and does the Service have ready endpoints?")
    if len(chains) > 1:
        raise InvalidInput(f"{namespace}/{service} has several ports {sorted(chains)}: pass port_name=")
    return next(iter(chains.values()))


def parse_kube_svc_chain(iptables_save: str, service: str, namespace: str,
                         port_name: str | None = None) -> pd.DataFrame:
    """The load-balancing rules kube-proxy wrote for a Service, from `iptables-save -t nat`.

    One row per rule of the Service's KUBE-SVC chain: rule (0-based), chain (the KUBE-SEP chain it
    jumps to), probability (as written; the last rule has none and always matches: 1.0),
    effective_share (the chance a new connection reaches the rule times its probability: about 1/k
    each) and endpoint ('ip:port', from the KUBE-SEP chain's DNAT, else from the rule's
    '-> ip:port' comment). `attrs['svc_chain']` names the KUBE-SVC chain. `port_name` picks one port
    of a multi-port Service.

    With counters (`iptables-save -c`) the column `connections` holds each rule's packet counter:
    the nat table sees only the first packet of a connection, so it counts the new connections
    through this node that took the rule since kube-proxy last wrote the chain. Without counters it
    is None.
    """
    # Lines kube-proxy did not write may hold quoting shlex rejects; none of ours is among them.
    rules = []
    for line in iptables_save.splitlines():
        try:
            parsed = _rule_options(line.strip())
        except ValueError:
            continue
        if parsed:
            rules.append(parsed)
    svc_chain = _service_chain(rules, namespace, service, port_name)
    dnat = {chain: options["--to-destination"] for chain, options in rules
            if chain.startswith("KUBE-SEP-") and options.get("-j") == "DNAT" and "--to-destination" in options}
    rows, reach = [], 1.0
    for chain, options in rules:
        target = options.get("-j", "")
        if chain != svc_chain or not target.startswith("KUBE-SEP-"):
            continue
        probability = float(options.get("--probability", 1.0))
        comment = options.get("--comment", "")
        endpoint = dnat.get(target) or (comment.split(" -> ", 1)[1] if " -> " in comment else None)
        packets = options.get("[packets]")
        rows.append({"rule": len(rows), "chain": target, "probability": probability,
                     "effective_share": reach * probability, "endpoint": endpoint,
                     "connections": int(packets) if packets is not None else None})
        reach *= 1 - probability
    table = pd.DataFrame(rows, columns=["rule", "chain", "probability", "effective_share", "endpoint",
                                        "connections"])
    table.attrs["svc_chain"] = svc_chain
    return table


def sweep_frame(results: Mapping[int, pd.DataFrame],
                replicas: Mapping[int, Sequence[str]] | None = None) -> pd.DataFrame:
    """One long frame (replicas, replica, count, share, p_value, mode) from {replicas: requests}.

    Each request frame is summarized (with `replicas[k]`, the pod names expected at k replicas,
    when given); all must share one mode, since a sweep half modeled is no measurement.
    """
    parts = []
    for k in sorted(results):
        summary = summarize(results[k], (replicas or {}).get(k))
        parts.append(summary.assign(replicas=k, p_value=summary.attrs["p_value"], mode=summary.attrs["mode"]))
    if not parts:
        raise InvalidInput("the sweep holds no results: run at least one replica count")
    sweep = pd.concat(parts, ignore_index=True)[["replicas", "replica", "count", "share", "p_value", "mode"]]
    sweep.attrs = {"mode": _single_mode(sweep, "the sweep")}
    return sweep


# The live half (sending requests from a client pod) follows below.

#: Marker curl prints after each response body (`-w`), so one exec can carry many requests.
_MARK = "__k8snb__"
#: Requests per exec call: curl's URL glob expands [0-N] into N+1 transfers in a single process.
MAX_REQUESTS = 5000
#: Seconds one request may take (curl's --max-time) and may spend connecting (--connect-timeout):
#: a replica that does not answer costs one row marked failed, never the whole sample.
REQUEST_TIMEOUT = 5
CONNECT_TIMEOUT = 2


def _curl_loop_argv(url: str, n: int, fresh: bool) -> list[str]:
    """curl fetching `url` n times in one process; 'Connection: close' forces a new TCP connection
    (and so a new kube-proxy decision) for every request.

    After each transfer curl prints one tab-separated marker line: HTTP code, total seconds, new
    connections, the remote IP, curl's exit code for that transfer and its error message (the
    last two exist since curl 7.75; an older curl leaves them empty)."""
    sep = "&" if "?" in url else "?"
    fields = "\t".join(("%{http_code}", "%{time_total}", "%{num_connects}", "%{remote_ip}",
                        "%{exitcode}", "%{errormsg}"))
    argv = ["curl", "-sS", "--max-time", str(REQUEST_TIMEOUT), "--connect-timeout", str(CONNECT_TIMEOUT),
            "-w", f"\n{_MARK}\t{fields}\n", f"{url}{sep}k8snb=[0-{n - 1}]"]
    if fresh:
        argv[1:1] = ["-H", "Connection: close"]
    return argv


def parse_curl_loop(stdout: str, endpoints: Sequence[Mapping] = ()) -> pd.DataFrame:
    """Turn the output of `_curl_loop_argv` into the request frame (one row per request).

    Besides REQUEST_COLUMNS the frame has `new_connection` (bool) and `error` (str; missing, as
    None or NaN, when the request got its page): curl's message ('Connection timed out ...'), 'HTTP 503', or 'no hello
    page' when something answered that is not the demo page. Output cut off in the middle of a
    request (an interrupted sample) yields no row for that request.
    """
    by_address = {f"{e['address']}:{e['port']}": e for e in endpoints}
    by_pod = {e.get("pod"): e for e in endpoints if e.get("pod")}
    rows, body = [], []
    for line in stdout.splitlines():
        if not line.startswith(_MARK):
            body.append(line)
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        code, total, connects = (parts[1:4] + ["", "", ""])[:3]
        exitcode, errormsg = (parts[5:7] + ["", ""])[:2]
        fields = parse_hello("\n".join(body))
        body = []
        ep = by_address.get(fields["server_address"] or "") or by_pod.get(fields["server_name"]) or {}
        answered = code.startswith("2")
        if exitcode not in ("", "0"):
            error = errormsg.strip() or f"curl exit code {exitcode}"
        elif not answered:
            error = f"HTTP {code}" if code and code != "000" else (errormsg.strip() or "no answer")
        elif fields["server_address"] is None:
            error = "no hello page in the answer"
        else:
            error = None
        try:
            latency = float(total) * 1000.0
        except ValueError:
            latency = math.nan
        rows.append({"request": len(rows), "server_address": fields["server_address"],
                     "server_name": fields["server_name"], "pod": ep.get("pod") or fields["server_name"],
                     "node": ep.get("node"), "latency_ms": latency, "ok": error is None,
                     "mode": "measured", "new_connection": connects not in ("0", ""), "error": error})
    return pd.DataFrame(rows, columns=[*REQUEST_COLUMNS, "new_connection", "error"])


def sample(cluster, n: int = 100, service: str = "nginx-svc", namespace: str = NAMESPACE,
           from_pod: str | None = None, port: int = 80, fresh_connections: bool = True,
           modeled: bool | None = None, seed: int | None = None) -> pd.DataFrame:
    """Send `n` requests to `service` from a client pod and return one row per request.

    All requests run in ONE exec (curl with a URL range), each on a fresh TCP connection unless
    `fresh_connections=False`. That matters: kube-proxy balances connections, not requests, so
    requests on one kept-alive connection all land on the same pod.

    On clusters whose pods cannot carry traffic (simulated nodes) — or with `modeled=True` — the
    rows are produced by `modeled_sample()` from the real EndpointSlices, marked mode='modeled'.

    A request that fails is a row with ok False and its reason in `error`; `attrs['failed']`
    counts them. Each request is bounded (REQUEST_TIMEOUT s) and so is the whole run (30 s plus
    50 ms per request). When the run cannot finish — the client pod is deleted (noticed within
    about a second), the time is up, the session breaks — SampleIncomplete says why, naming the
    pod, and its `rows` hold the requests that did complete. On Ctrl-C (KeyboardInterrupt) the
    interrupt goes on, with those rows in its `rows` attribute. Either way the exec session is
    closed, and the container runtime stops curl in the pod.
    """
    from .names import dns_label
    from .probe import can_carry_traffic, exec_argv, pod_for
    from .tables import endpoint_records, service_selector

    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_REQUESTS:
        raise InvalidInput(f"n must be a whole number from 1 to {MAX_REQUESTS}, got {n!r}")
    dns_label(service, "service")
    dns_label(namespace, "namespace")
    ready = [e for e in endpoint_records(cluster, namespace, service) if e["ready"]]
    endpoints = [e for e in ready if e["port"] == port] or ready
    if not endpoints:
        raise NotFound(f"Service {namespace}/{service}: no ready endpoints for selector "
                       f"{service_selector(cluster, namespace, service)}")
    if modeled is None:
        modeled = not can_carry_traffic(cluster)
    if modeled:
        svc = cluster.api.get(f"/api/v1/namespaces/{namespace}/services/{service}")
        affinity = svc["spec"].get("sessionAffinity", "None")
        return modeled_sample(endpoints, n, proxy_mode="iptables", session_affinity=affinity, seed=seed)
    pod = from_pod or pod_for(cluster, "netshoot", namespace)
    url = f"http://{service}" + ("" if port == 80 else f":{port}") + "/"
    received: list[str] = []

    def frame_so_far(**attrs) -> pd.DataFrame:  # noqa: ANN003
        frame = parse_curl_loop("".join(received), endpoints)
        frame.attrs.update(mode="measured", client_pod=pod, fresh_connections=fresh_connections, requested=n,
                           failed=int((~frame["ok"].astype(bool)).sum()), **attrs)
        return frame

    try:
        res = exec_argv(cluster, pod, _curl_loop_argv(url, n, fresh_connections), namespace,
                        timeout=30 + n * 0.05, stop=lambda: _client_gone(cluster, namespace, pod),
                        on_stdout=received.append)
    except ExecFailed as exc:
        rows = frame_so_far(incomplete=str(exc))
        raise SampleIncomplete(f"{exc} — {len(rows)} of {n} requests completed (their rows are in the "
                               "exception's `rows`)", rows=rows, status=exc.status, reason=exc.reason,
                               stdout=exc.stdout, stderr=exc.stderr) from None
    except KeyboardInterrupt as exc:
        rows = frame_so_far(incomplete="interrupted")
        exc.rows = rows
        exc.add_note(f"k8snb: sample interrupted after {len(rows)} of {n} requests; curl in pod {namespace}/{pod} "
                     "was stopped; the rows are in this exception's `rows` (sys.last_value.rows)")
        raise
    frame = frame_so_far(seconds=res.seconds)
    return frame


def _client_gone(cluster, namespace: str, pod: str) -> str | None:  # noqa: ANN001
    """Why the client pod can no longer run the sample (deleted or being deleted), else None."""
    try:
        obj = cluster.api.exists(f"/api/v1/namespaces/{namespace}/pods/{pod}")
    except K8snbError:
        return None  # cannot tell (not allowed to get pods, API flaky): the exec's own bounds still hold
    if obj is None:
        return f"the client pod {namespace}/{pod} was deleted"
    if obj["metadata"].get("deletionTimestamp"):
        return f"the client pod {namespace}/{pod} is being deleted"
    return None
