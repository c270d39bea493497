"""Follow a name through the pod's resolver: resolv.conf, the search list, headless Services, and
the Service variables the kubelet injects.

Where pods run (kind, minikube, k3s, EKS, the lab with real nodes) everything is read inside the
client pod with argv commands (`cat /etc/resolv.conf`, `nslookup <name>`, `env`): mode='measured'.
On simulated (kwok) nodes no process runs: the answers are computed from the API with the kubelet's
defaults (ClusterFirst DNS policy, cluster domain `probe.CLUSTER_DOMAIN` assumed, since no pod
file can be read) and say mode='modeled'.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from .cluster import Cluster
from .learner import NAMESPACE, OTHER_SERVICE
from .errors import ExecFailed, Forbidden, NotFound
from .names import dns_label, dns_subdomain
from .probe import CLUSTER_DOMAIN, TOOL_MISSING, Lookup, can_carry_traffic, exec_argv, nslookup, pod_for, resolve_modeled, \
    search_path
from .tables import endpoint_records

#: The resolver's default when resolv.conf sets no ndots option (glibc and musl).
DEFAULT_NDOTS = 1
#: The headless Service notebook 03 creates for nginx-hello's pods (manifests/headless-svc.yaml).
HEADLESS_SERVICE = "nginx-headless"
#: Seconds a headless Service's DNS answer may take to follow its EndpointSlices before it is shown.
DNS_CATCH_UP = 10.0


# --- resolv.conf -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...]
    search: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)

    @property
    def ndots(self) -> int:
        value = self.options.get("ndots", "")
        return int(value) if value.isdigit() else DEFAULT_NDOTS


def parse_resolv_conf(text: str) -> ResolvConf:
    """Read resolv.conf's nameserver lines, its search list (the last one wins) and options."""
    servers, search, options = [], [], {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        key, rest = words[0], words[1:]
        if key == "nameserver" and rest:
            servers.append(rest[0])
        elif key in ("search", "domain"):
            search = rest
        elif key == "options":
            for opt in rest:
                name, _, value = opt.partition(":")
                options[name] = value
    return ResolvConf(tuple(servers), tuple(search), options)


def domain_from_search(search: tuple[str, ...] | list[str], namespace: str) -> str | None:
    """The cluster domain in a pod's search list: what follows `<namespace>.svc.`, or None."""
    prefix = f"{namespace}.svc."
    for entry in search:
        entry = entry.rstrip(".")
        if entry.startswith(prefix) and len(entry) > len(prefix):
            return entry[len(prefix):]
    return None


def resolv_conf(cluster: Cluster, namespace: str = NAMESPACE, pod: str | None = None) -> pd.DataFrame:
    """The client pod's /etc/resolv.conf as a table (setting, value, mode).

    attrs: nameserver, kube_dns (the kube-dns Service's ClusterIP), match (bool or None), domain
    (the cluster domain read from the search list), ndots, search, mode, and 'summary', the sentence
    to print. Measured: `cat /etc/resolv.conf` in netshoot. Modeled on simulated nodes: the file the
    kubelet would write for the ClusterFirst policy, with the cluster domain assumed.
    """
    dns_label(namespace, "namespace")
    try:
        svc = cluster.api.exists("/api/v1/namespaces/kube-system/services/kube-dns")
        hidden = False
    except Forbidden:  # a classroom learner reads nothing outside their own namespaces
        svc, hidden = None, True
    kube_dns = (svc or {}).get("spec", {}).get("clusterIP")
    if can_carry_traffic(cluster):
        pod = pod or pod_for(cluster, "netshoot", namespace)
        res = exec_argv(cluster, pod, ["cat", "/etc/resolv.conf"], namespace)
        conf, mode, source = parse_resolv_conf(res.stdout), "measured", f"read in pod {namespace}/{pod}"
        frame_pod = pod
        domain = domain_from_search(conf.search, namespace)
    else:
        conf = ResolvConf((kube_dns,) if kube_dns else (), tuple(search_path(namespace)), {"ndots": "5"})
        mode, domain, frame_pod = "modeled", CLUSTER_DOMAIN, None
        source = (f"modeled: the nodes of {cluster.context} are simulated, no pod file can be read; the "
                  f"kubelet's ClusterFirst file with the cluster domain {CLUSTER_DOMAIN} assumed")
    rows = [{"setting": "nameserver", "value": s, "mode": mode} for s in conf.nameservers]
    rows += [{"setting": "search", "value": s, "mode": mode} for s in conf.search]
    rows += [{"setting": f"options {k}", "value": v or "(set)", "mode": mode} for k, v in conf.options.items()]
    frame = pd.DataFrame(rows, columns=["setting", "value", "mode"])
    server = conf.nameservers[0] if conf.nameservers else None
    match = None if not (server and kube_dns) else server == kube_dns
    if match is None:
        verdict = ("the file names no nameserver" if not server else
                   f"this account may not read the kube-dns Service in kube-system, so nameserver {server} "
                   "cannot be compared with its ClusterIP" if hidden else
                   f"the kube-dns Service was not found, so nameserver {server} cannot be compared")
    elif match:
        verdict = f"nameserver {server} is the kube-dns Service's ClusterIP {kube_dns}"
    else:
        verdict = (f"nameserver {server} is NOT the kube-dns Service's ClusterIP {kube_dns} (a node-local DNS "
                   "cache or another dnsPolicy answers this pod)")
    where = (f"cluster domain {domain} (read from the search list)" if mode == "measured" and domain else
             f"cluster domain {domain} (assumed, not read)" if domain else
             "no '<namespace>.svc.<domain>' entry in the search list (dnsPolicy is not ClusterFirst?)")
    frame.attrs.update(pod=frame_pod, nameserver=server, kube_dns=kube_dns, match=match, domain=domain, ndots=conf.ndots,
                       search=conf.search, mode=mode, source=source,
                       summary=f"resolv.conf ({source}): {verdict}; {where}; ndots:{conf.ndots} ({mode}).")
    return frame


def cluster_domain(cluster: Cluster, namespace: str = NAMESPACE) -> str:
    """The cluster domain, read from the client pod's search list where pods run; on simulated nodes
    (or a search list without it) the kubelet's default `probe.CLUSTER_DOMAIN`, assumed."""
    return resolv_conf(cluster, namespace).attrs["domain"] or CLUSTER_DOMAIN


# --- how many queries a name costs ---------------------------------------------------------------------
def candidates(name: str, search: tuple[str, ...] | list[str], ndots: int) -> list[str]:
    """The names the resolver asks, in order, for `name` (glibc/musl rules).

    A trailing dot makes the name absolute: asked once, as is. Otherwise a name with fewer than
    `ndots` dots goes through every search suffix first, then as is; a name with at least `ndots`
    dots is asked as is first, then with the suffixes.
    """
    if name.endswith("."):
        return [name]
    suffixed = [f"{name}.{s.rstrip('.')}" for s in search]
    return suffixed + [name] if name.count(".") < ndots else [name] + suffixed


def queries_until_answer(name: str, answer_fqdn: str | None, search, ndots: int) -> int:
    """How many names the resolver asks before the one that answers (all of them when none does).
    Per record type: nslookup and most clients ask A and AAAA, each walking the same list."""
    tried = candidates(name, search, ndots)
    if answer_fqdn:
        want = answer_fqdn.rstrip(".")
        for i, cand in enumerate(tried, 1):
            if cand.rstrip(".") == want:
                return i
    return len(tried)


_DIG_STATUS = re.compile(r"->>HEADER<<-.*status: ([A-Z]+)")
_DIG_QUESTION = re.compile(r"^;([^;\s]\S*)\s+IN\s+[A-Z]+\s*$")


def parse_dig_search(text: str) -> list[tuple[str, str]]:
    """The names `dig +search +showsearch +noall +comments +question <name> A` asked, in order,
    each with the status CoreDNS answered (NOERROR, NXDOMAIN, SERVFAIL ...)."""
    asked, status = [], None
    for line in text.splitlines():
        m = _DIG_STATUS.search(line)
        if m:
            status = m.group(1)
            continue
        m = _DIG_QUESTION.match(line.strip())
        if m:
            asked.append((m.group(1).rstrip(".") or ".", status or "?"))
            status = None
    return asked


def dig_search(cluster: Cluster, name: str, pod: str, namespace: str = NAMESPACE) -> list[tuple[str, str]] | None:
    """The queries the client's resolver settings make dig send for `name` (A records), measured in
    `pod`; None when the image has no dig."""
    dns_subdomain(name[:-1] if name.endswith(".") else name, "DNS name")
    try:
        res = exec_argv(cluster, pod, ["dig", "+search", "+showsearch", "+noall", "+comments", "+question",
                                       "+tries=1", "+time=3", name, "A"], namespace, timeout=30)
    except ExecFailed as exc:
        if exc.reason == TOOL_MISSING:
            return None
        raise
    return parse_dig_search(res.stdout)


COLUMNS = ["query", "answer", "address", "mode", "queries_by_rule", "queries_sent", "asked"]


def name_forms(cluster: Cluster, service: str = "nginx-svc", namespace: str = NAMESPACE,
               other: str = OTHER_SERVICE) -> pd.DataFrame:
    """One lookup per way of writing the Service's name, from the client pod: the short name, name.ns,
    name.ns.svc, the FQDN, the FQDN with a trailing dot, and `other` (a Service of another namespace).

    Columns: query, answer (the name that resolved), address, mode (of the answer: nslookup in
    netshoot, or modeled from the API on simulated nodes); queries_by_rule: how many names the
    resolver asks up to that answer, computed from the pod's search list and ndots (per record type);
    queries_sent: the same count measured with `dig +search +showsearch` in the pod (None on
    simulated nodes or without dig), and asked: those names with CoreDNS's status.
    attrs['domain'] is the cluster domain used.
    """
    dns_label(service, "service")
    dns_subdomain(other, "name")
    conf = resolv_conf(cluster, namespace)
    pod = conf.attrs.get("pod")
    domain, search, ndots = conf.attrs["domain"] or CLUSTER_DOMAIN, conf.attrs["search"], conf.attrs["ndots"]
    fqdn = f"{service}.{namespace}.svc.{domain}"
    names = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", fqdn, fqdn + ".", other]
    measured = conf.attrs["mode"] == "measured"
    rows = []
    for name in names:
        asked = None
        if measured:
            look = nslookup(cluster, name, namespace=namespace, from_pod=pod)
            asked = dig_search(cluster, name, pod, namespace)
        else:
            look = resolve_modeled(cluster, name.rstrip("."), namespace, domain)
        answer = look.name.rstrip(".") if look.name else None
        rows.append({"query": name, "answer": answer, "address": ", ".join(look.addresses) or None,
                     "mode": "measured" if measured else "modeled",
                     "queries_by_rule": queries_until_answer(name, answer, search, ndots),
                     "queries_sent": len(asked) if asked is not None else None,
                     "asked": "; ".join(f"{q} {st}" for q, st in asked) if asked is not None else
                     "not measured" + (" (simulated nodes)" if not measured else " (no dig in the image)")})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.attrs.update(domain=domain, ndots=ndots, search=search, mode=conf.attrs["mode"])
    return frame


def forms_summary(forms: pd.DataFrame) -> str:
    """One line on name_forms' table: the names asked for the short name, the FQDN without and with
    its trailing dot, by the search rule and, where measured, as dig sent them."""
    q = forms.set_index("query")
    short, fqdn = forms["query"].iloc[0], next(n for n in forms["query"] if n.endswith("."))
    bare = fqdn[:-1]
    rule = f"{q.loc[short, 'queries_by_rule']}, {q.loc[bare, 'queries_by_rule']} and {q.loc[fqdn, 'queries_by_rule']}"
    line = (f"Names asked for {short}, {bare} and {fqdn}: {rule} by the search rule (ndots:{forms.attrs['ndots']}, "
            f"per record type)")
    sent = [q.loc[n, "queries_sent"] for n in (short, bare, fqdn)]
    if all(pd.notna(v) for v in sent):
        line += f"; dig sent {int(sent[0])}, {int(sent[1])} and {int(sent[2])} (measured)."
    else:
        line += f"; nothing sent ({forms.attrs['mode']})."
    return line


# --- headless Service ----------------------------------------------------------------------------------
def headless_vs_clusterip(cluster: Cluster, headless: str = HEADLESS_SERVICE, service: str = "nginx-svc",
                          namespace: str = NAMESPACE) -> pd.DataFrame:
    """What DNS answers for the headless Service (one address per ready pod) and for the ClusterIP
    Service (one virtual address), beside the ready addresses of each one's EndpointSlices.

    Columns: service, clusterIP, dns_answer, ready_endpoints, dns_lists_ready_pods (answer == endpoints),
    mode. attrs['summary'] is the sentence to print.
    """
    measured = can_carry_traffic(cluster)
    rows = []
    for name in (headless, service):
        dns_label(name, "service")
        svc = cluster.api.exists(f"/api/v1/namespaces/{namespace}/services/{name}")
        if svc is None:
            raise NotFound(f"Service {namespace}/{name} does not exist; run the cell that applies it")
        deadline = time.monotonic() + DNS_CATCH_UP
        while True:  # CoreDNS follows the EndpointSlices a moment after they change
            look: Lookup = nslookup(cluster, name, namespace=namespace) if measured else _headless_modeled(
                cluster, name, namespace, svc)
            ready = sorted({e["address"] for e in endpoint_records(cluster, namespace, name) if e["ready"]})
            answer = sorted(look.addresses)
            headless_svc = svc["spec"].get("clusterIP") in (None, "None")
            if not headless_svc or answer == ready or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        rows.append({"service": name, "clusterIP": svc["spec"].get("clusterIP"),
                     "dns_answer": ", ".join(answer) or None, "ready_endpoints": ", ".join(ready) or None,
                     "dns_lists_ready_pods": answer == ready, "mode": "measured" if measured else "modeled"})
    frame = pd.DataFrame(rows)
    h, c = frame.iloc[0], frame.iloc[1]
    n_h = len(h["dns_answer"].split(", ")) if h["dns_answer"] else 0
    mode = h["mode"]
    frame.attrs["summary"] = (
        f"headless {headless}: DNS lists {n_h} address(es), "
        + ("the same as its EndpointSlices' ready pods" if h["dns_lists_ready_pods"] else
           f"while its EndpointSlices list {h['ready_endpoints'] or 'none'} ready (DNS caches for its TTL)")
        + f"; {service}: one address, its ClusterIP {c['clusterIP']}"
        + (" (the DNS answer matches)" if c["dns_answer"] == c["clusterIP"] else f" (DNS said {c['dns_answer']})")
        + f" ({mode}).")
    return frame


def apply_headless(cluster: Cluster, namespace: str = NAMESPACE, deployment: str = "nginx-hello") -> pd.DataFrame:
    """Apply the headless Service (manifests/headless-svc.yaml, with the course's label) and wait
    until its EndpointSlices list as many ready addresses as `deployment` has ready pods; returns
    them (`kubectl get endpointslices -l kubernetes.io/service-name=nginx-headless`)."""
    from .manifests import apply, load
    from .tables import endpoints
    from .wait import wait_deployment, wait_endpoints

    for obj in load("headless-svc", namespace):
        apply(cluster, obj)
    ready = wait_deployment(cluster, deployment, namespace)
    wait_endpoints(cluster, HEADLESS_SERVICE, namespace, count=len(ready))
    return endpoints(cluster, HEADLESS_SERVICE, namespace)


def _headless_modeled(cluster: Cluster, name: str, namespace: str, svc: dict) -> Lookup:
    """CoreDNS's answer computed from the API: ready endpoint addresses for a headless Service,
    the ClusterIP otherwise."""
    ip = svc["spec"].get("clusterIP")
    if ip and ip != "None":
        return resolve_modeled(cluster, name, namespace)
    ready = tuple(sorted({e["address"] for e in endpoint_records(cluster, namespace, name) if e["ready"]}))
    return Lookup(name, None, f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}", ready, not ready, "modeled")


# --- Service environment variables ---------------------------------------------------------------------
def env_prefix(service: str) -> str:
    """The prefix of the kubelet's variables for a Service: upper case, '-' becomes '_'."""
    return re.sub(r"[^A-Z0-9]", "_", service.upper())


def parse_env(text: str) -> dict[str, str]:
    """`env` output as a dict (lines NAME=value; a value's own newlines are not expected here)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            out[key] = value
    return out


def _when(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def service_env(cluster: Cluster, pods: list[str] | None = None, namespace: str = NAMESPACE) -> pd.DataFrame:
    """Which `<SERVICE>_SERVICE_HOST/PORT` variables each pod holds, for every Service of its namespace.

    The kubelet writes them when a container starts, for the Services that exist then in the pod's
    namespace and have a ClusterIP (headless Services get none); a Service created later never
    appears in a running pod. Columns: pod, pod_started (status.startTime), service, service_created,
    started_after (the pod started after the Service was created; None within the same second), host, port, why, mode.
    Measured: `env` in the pod. Modeled on simulated nodes: the kubelet's rule applied to the
    creation times. Default pods: netshoot.
    """
    dns_label(namespace, "namespace")
    pods = pods or [pod_for(cluster, "netshoot", namespace)]
    services = cluster.api.list(f"/api/v1/namespaces/{namespace}/services")
    measured = can_carry_traffic(cluster)
    rows = []
    for pod in pods:
        dns_subdomain(pod, "pod name")
        obj = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")
        started = obj.get("status", {}).get("startTime") or obj["metadata"].get("creationTimestamp")
        env = parse_env(exec_argv(cluster, pod, ["env"], namespace).stdout) if measured else None
        for svc in sorted(services, key=lambda s: s["metadata"]["name"]):
            name, created = svc["metadata"]["name"], svc["metadata"].get("creationTimestamp")
            p, s = _when(started), _when(created)
            after = None if not (p and s) or p == s else p > s
            prefix = env_prefix(name)
            ip = svc["spec"].get("clusterIP")
            if env is not None:
                host, port = env.get(f"{prefix}_SERVICE_HOST"), env.get(f"{prefix}_SERVICE_PORT")
            else:
                has = bool(ip and ip != "None") and after is True
                ports = svc["spec"].get("ports") or [{}]
                host, port = (ip, str(ports[0].get("port"))) if has else (None, None)
            why = ("headless (no ClusterIP): the kubelet writes no variables for it" if not ip or ip == "None"
                   else "the Service existed when the container started" if host
                   else "the pod started before the Service: variables are written only when a container starts"
                   if after is False else "not set")
            rows.append({"pod": pod, "pod_started": started, "service": name, "service_created": created,
                         "started_after": after, "host": host, "port": port, "why": why,
                         "mode": "measured" if measured else "modeled"})
    return pd.DataFrame(rows, columns=["pod", "pod_started", "service", "service_created", "started_after",
                                       "host", "port", "why", "mode"])


def env_sentence(table: pd.DataFrame, service: str) -> str:
    """One line per pod on `service`'s variables: present or not, and when the pod started."""
    lines = []
    for row in table[table["service"] == service].itertuples():
        var = f"{env_prefix(service)}_SERVICE_HOST"
        when = ("started after the Service" if row.started_after is True else
                "started before the Service" if row.started_after is False else
                "started in the same second as the Service")
        has = f"has {var}={row.host}" if isinstance(row.host, str) and row.host else f"has no {var}"
        lines.append(f"pod {row.pod} ({when}) {has} ({row.mode}).")
    return "\n".join(lines)
