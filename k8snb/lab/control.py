"""`k8snb lab up | down | status`: the offline lab cluster's life cycle.

The control plane (etcd, kube-apiserver with TLS and RBAC, kube-controller-manager allocating a
/24 per node, kube-scheduler) runs as ordinary processes on loopback. Nodes are either simulated
by kwok (no root needed, no packet flows) or real (root: see `k8snb.lab.realnodes`).
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import LabError
from . import binaries, pki, processes
from .secure import checked_dir, write_private
from .plan import CLUSTER_DOMAIN, CONTEXT, NODE_CIDR_MASK, NODE_PORT_RANGE, LabPlan, state_dir

FILES = Path(__file__).parent / "files"
#: Upper bounds for each start-up step; generous for a loaded 2-core machine, and each one ends
#: with a message naming the component and the tail of its log.
ETCD_TIMEOUT = 30.0
API_TIMEOUT = 90.0
NODES_TIMEOUT = 90.0
#: Order in which components start; they stop in reverse.
ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


@dataclass(frozen=True)
class LabStatus:
    running: bool
    plan: dict | None
    processes: list[dict]
    kubeconfig: str
    state_dir: str
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        if not self.plan:
            return [f"k8snb lab: not running (state directory {self.state_dir})"]
        problems = [f"  problem: {p}" for p in self.problems]
        p = self.plan
        out = [
            f"k8snb lab: {'running' if self.running else 'NOT healthy'}: {p['nodes_mode']} nodes, "
            f"{p['network']} network, context {p['context']}, API https://{p.get('api_host', '127.0.0.1')}:{p['api_port']}",
            f"  kubeconfig    {self.kubeconfig}",
            f"  node subnet   {p['node_subnet']}  nodes: "
            + ", ".join(f"{n} {ip}" for n, ip in p["node_ips"].items()),
            f"  pod range     {p['pod_cidr']} (a /{NODE_CIDR_MASK} per node, "
            + ("inside the node subnet: pods are addressed like nodes)" if p["network"] == "flat"
               else "apart from the node subnet: nodes route it)"),
            f"  service range {p['service_cidr']}  kubernetes API {p['api_server_ip']}  DNS {p['dns_ip']}",
            f"  NodePorts     {p['node_port_range']}   cluster domain {p['cluster_domain']}",
        ]
        for proc in self.processes:
            out.append(f"  {proc['name']:<24} pid {proc['pid']:<8} {'running' if proc['running'] else 'STOPPED'}")
        return out + problems


def kubeconfig_path() -> Path:
    return state_dir() / "kubeconfig"


def _log(msg: str) -> None:
    print(msg, flush=True)


def _kubeconfig(state: Path, user: str, cert: pki.Pair, ca: pki.Pair, plan: LabPlan) -> Path:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": f"https://{plan.api_host}:{plan.api_port}",
                                                   "certificate-authority-data": b64(ca.cert)}}],
        "users": [{"name": f"{CONTEXT}-{user}", "user": {"client-certificate-data": b64(cert.cert),
                                                         "client-key-data": b64(cert.key)}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": f"{CONTEXT}-{user}"}}],
        "current-context": CONTEXT,
    }
    path = state / ("kubeconfig" if user == "admin" else f"{user}.kubeconfig")
    write_private(path, yaml.safe_dump(cfg, sort_keys=False))
    return path


def _wait_http(url: str, timeout: float, what: str, state: Path, name: str,
               context: ssl.SSLContext | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        proc = processes.read(state, name)
        if proc is not None and not proc.running:
            raise LabError(f"{what} exited during start-up; last log lines:\n{processes.log_tail(state, name)}")
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        time.sleep(0.25)
    raise LabError(f"{what} was not healthy within {timeout:.0f} s ({last}); last log lines:\n"
                   f"{processes.log_tail(state, name)}")


def _tls_context(state: Path, ca: str = "ca", client: str = "admin") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(state / "pki" / f"{ca}.crt"))
    ctx.load_cert_chain(str(state / "pki" / f"{client}.crt"), str(state / "pki" / f"{client}.key"))
    return ctx


def _api(state: Path, method: str, path: str, body: dict | None = None, *, plan: LabPlan,
         content_type: str = "application/json") -> dict:
    req = urllib.request.Request(f"https://{plan.api_host}:{plan.api_port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": content_type, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10, context=_tls_context(state)) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code == 409:
            return {}
        raise LabError(f"lab bootstrap: {method} {path} failed: HTTP {exc.code} {exc.read()[:300]!r}") from None


def _pki(state: Path, plan: LabPlan) -> dict[str, pki.Pair]:
    """The lab's certificates, as kubeadm lays them out: one CA for Kubernetes, and etcd's own CA,
    whose client certificates (the API server's alone) are the only way into etcd."""
    d = checked_dir(state / "pki")
    ca = pki.make_ca(d)
    etcd_ca = pki.make_ca(d, "etcd-ca")
    names = ("127.0.0.1", "localhost", plan.api_server_ip, "kubernetes", "kubernetes.default",
             "kubernetes.default.svc", f"kubernetes.default.svc.{CLUSTER_DOMAIN}", plan.api_bind)
    return {
        "ca": ca,
        "etcd-ca": etcd_ca,
        # Client use too, as kubeadm issues it: etcd's own HTTP gateway dials etcd with it.
        "etcd-server": pki.issue(etcd_ca, d, "etcd-server", "k8snb-etcd", server_names=("127.0.0.1", "localhost")),
        "etcd-peer": pki.issue(etcd_ca, d, "etcd-peer", "k8snb-etcd-peer", server_names=("127.0.0.1", "localhost")),
        "apiserver-etcd-client": pki.issue(etcd_ca, d, "apiserver-etcd-client", "kube-apiserver-etcd-client"),
        "apiserver": pki.issue(ca, d, "apiserver", "kube-apiserver", server_names=names, client=False),
        "apiserver-kubelet-client": pki.issue(ca, d, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                              org="system:masters"),
        "admin": pki.issue(ca, d, "admin", "k8snb-admin", org="system:masters"),
        "controller-manager": pki.issue(ca, d, "controller-manager", "system:kube-controller-manager"),
        "scheduler": pki.issue(ca, d, "scheduler", "system:kube-scheduler"),
        "kwok": pki.issue(ca, d, "kwok", "k8snb-kwok", org="system:masters"),
        "sa": pki.service_account_keys(d),
    }


def _control_plane_argv(b: binaries.Binaries, state: Path, plan: LabPlan, certs: dict[str, pki.Pair],
                        kubeconfigs: dict[str, Path]) -> dict[str, list[str]]:
    api = [
        b["kube-apiserver"],
        f"--etcd-servers=https://127.0.0.1:{plan.etcd_port}",
        f"--etcd-cafile={certs['etcd-ca'].cert}",
        f"--etcd-certfile={certs['apiserver-etcd-client'].cert}",
        f"--etcd-keyfile={certs['apiserver-etcd-client'].key}",
        # One address, the lab's own (loopback, or the lab bridge for real nodes): never every
        # address of the machine. No anonymous requests; kubelets may only touch their own Node.
        f"--bind-address={plan.api_bind}",
        "--anonymous-auth=false",
        "--enable-admission-plugins=NodeRestriction",
        f"--secure-port={plan.api_port}",
        f"--tls-cert-file={certs['apiserver'].cert}", f"--tls-private-key-file={certs['apiserver'].key}",
        f"--client-ca-file={certs['ca'].cert}",
        f"--kubelet-client-certificate={certs['apiserver-kubelet-client'].cert}",
        f"--kubelet-client-key={certs['apiserver-kubelet-client'].key}",
        f"--kubelet-certificate-authority={certs['ca'].cert}",
        f"--service-account-key-file={certs['sa'].cert}",
        f"--service-account-signing-key-file={certs['sa'].key}",
        f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
        "--authorization-mode=Node,RBAC",
        f"--service-cluster-ip-range={plan.service_cidr}",
        f"--service-node-port-range={NODE_PORT_RANGE}",
        "--allow-privileged=true",
        "--profiling=false",
    ]
    if plan.nodes_mode == "real":
        api += [f"--advertise-address={plan.api_bind}", "--kubelet-preferred-address-types=InternalIP"]
    else:
        # The API server's own endpoint would be 127.0.0.1, which Endpoints validation rejects;
        # with simulated nodes no pod talks to it through the Service anyway.
        api += ["--advertise-address=" + plan.node_ips()[plan.node_names[0]], "--endpoint-reconciler-type=none"]
    return {
        "etcd": [
            b["etcd"], "--name=k8snb-lab", f"--data-dir={state / 'etcd'}",
            # TLS on loopback only, and only clients with a certificate from etcd's own CA.
            f"--listen-client-urls=https://127.0.0.1:{plan.etcd_port}",
            f"--advertise-client-urls=https://127.0.0.1:{plan.etcd_port}",
            f"--cert-file={certs['etcd-server'].cert}", f"--key-file={certs['etcd-server'].key}",
            "--client-cert-auth=true", f"--trusted-ca-file={certs['etcd-ca'].cert}",
            f"--listen-peer-urls=https://127.0.0.1:{plan.etcd_port + 1}",
            f"--initial-advertise-peer-urls=https://127.0.0.1:{plan.etcd_port + 1}",
            f"--initial-cluster=k8snb-lab=https://127.0.0.1:{plan.etcd_port + 1}",
            f"--peer-cert-file={certs['etcd-peer'].cert}", f"--peer-key-file={certs['etcd-peer'].key}",
            "--peer-client-cert-auth=true", f"--peer-trusted-ca-file={certs['etcd-ca'].cert}",
            "--listen-metrics-urls=", "--log-level=warn", "--unsafe-no-fsync=true",
        ],
        "kube-apiserver": api,
        "kube-controller-manager": [
            b["kube-controller-manager"],
            f"--kubeconfig={kubeconfigs['controller-manager']}",
            f"--authentication-kubeconfig={kubeconfigs['controller-manager']}",
            f"--authorization-kubeconfig={kubeconfigs['controller-manager']}",
            "--allocate-node-cidrs=true", f"--cluster-cidr={plan.pod_cidr}",
            f"--node-cidr-mask-size={NODE_CIDR_MASK}", f"--service-cluster-ip-range={plan.service_cidr}",
            "--use-service-account-credentials=true", f"--root-ca-file={certs['ca'].cert}",
            f"--service-account-private-key-file={certs['sa'].key}",
            f"--cluster-signing-cert-file={certs['ca'].cert}", f"--cluster-signing-key-file={certs['ca'].key}",
            "--leader-elect=false", "--secure-port=0", "--controllers=*,bootstrapsigner,tokencleaner",
        ],
        "kube-scheduler": [
            b["kube-scheduler"], f"--kubeconfig={kubeconfigs['scheduler']}",
            f"--authentication-kubeconfig={kubeconfigs['scheduler']}",
            f"--authorization-kubeconfig={kubeconfigs['scheduler']}",
            "--leader-elect=false", "--secure-port=0",
        ],
        "kwok": [
            b["kwok"], f"--kubeconfig={kubeconfigs['kwok']}", f"--config={FILES / 'kwok-stages.yaml'}",
            "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds=40", f"--cidr={plan.pod_cidr}",
            f"--node-ip={plan.node_ips()[plan.node_names[0]]}",
        ],
    }


def _node_manifest(plan: LabPlan, name: str, ip: str, version: str) -> dict:
    control_plane = name == plan.node_names[0]
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "type": "kwok", "app.kubernetes.io/part-of": "k8snb"}
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
        # Like kind with workers: the control-plane node takes no ordinary pods.
        "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
                 if control_plane else []},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": version,
                         "osImage": "kwok simulated node", "containerRuntimeVersion": "kwok://simulated",
                         "kernelVersion": "simulated", "architecture": "amd64", "operatingSystem": "linux",
                         "bootID": "", "machineID": "", "systemUUID": ""},
        },
    }


def _wait_nodes(state: Path, plan: LabPlan) -> None:
    deadline = time.monotonic() + NODES_TIMEOUT
    pending: list[str] = list(plan.node_names)
    while time.monotonic() < deadline:
        nodes = _api(state, "GET", "/api/v1/nodes", plan=plan).get("items", [])
        pending = [n for n in plan.node_names if not any(
            item["metadata"]["name"] == n and item["spec"].get("podCIDR") and any(
                c["type"] == "Ready" and c["status"] == "True" for c in item.get("status", {}).get("conditions", []))
            for item in nodes)]
        sa = _api(state, "GET", "/api/v1/namespaces/default/serviceaccounts", plan=plan).get("items", [])
        if not pending and sa:
            return
        time.sleep(0.25)
    raise LabError(f"nodes {', '.join(pending)} were not Ready with a podCIDR within {NODES_TIMEOUT:.0f} s; "
                   f"controller-manager log:\n{processes.log_tail(state, 'kube-controller-manager')}\n"
                   f"kwok log:\n{processes.log_tail(state, 'kwok')}")


def node_pod_cidrs(plan: LabPlan) -> dict[str, str]:
    """Node name -> the podCIDR the controller-manager allocated it, read from the running lab's API."""
    try:
        nodes = _api(state_dir(), "GET", "/api/v1/nodes", plan=plan).get("items", [])
    except (urllib.error.URLError, OSError) as exc:
        raise LabError(f"the lab's API server on port {plan.api_port} does not answer "
                       f"({getattr(exc, 'reason', exc)}); see `k8snb lab status`") from None
    return {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in nodes if n["spec"].get("podCIDR")}


def _health(plan: LabPlan, state: Path) -> list[str]:
    """What a working lab must have, checked on the lab itself (not PIDs alone): the API ready,
    every node Ready; with real nodes also the registry serving and CoreDNS answering."""
    try:
        with urllib.request.urlopen(f"https://{plan.api_host}:{plan.api_port}/readyz", timeout=5,
                                    context=_tls_context(state)) as resp:
            if resp.status != 200:
                return [f"kube-apiserver /readyz answered HTTP {resp.status}"]
        nodes = _api(state, "GET", "/api/v1/nodes", plan=plan).get("items", [])
    except (urllib.error.URLError, OSError, LabError) as exc:
        return [f"kube-apiserver does not answer ({getattr(exc, 'reason', exc)})"]
    ready = {n["metadata"]["name"] for n in nodes if any(
        c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))}
    problems = [f"node {n} is not Ready" for n in plan.node_names if n not in ready]
    if plan.nodes_mode == "real":
        from . import addons, images

        try:
            images.wait_registry(plan.host_ip, timeout=2)
        except LabError:
            problems.append(f"the registry on {plan.host_ip}:{images.REGISTRY_PORT} does not answer")
        if plan.api_server_ip not in addons.dns_answer(plan):
            problems.append(f"CoreDNS at {plan.dns_ip} does not answer")
    return problems


def _state() -> Path:
    """The lab's state directory, and its parent, checked (see secure.checked_dir): the state
    steers root (PIDs to signal, paths to unmount), so no other user may own or write either."""
    checked_dir(state_dir().parent)
    return checked_dir(state_dir())


def _read_plan(state: Path) -> LabPlan | None:
    plan_file = state / "plan.json"
    return LabPlan.load(plan_file) if os.path.lexists(plan_file) else None


def status() -> LabStatus:
    """The lab's health, judged on what it must have. LabError in one line for corrupt state."""
    state = _state()
    plan = _read_plan(state)
    procs = [{"name": p.name, "pid": p.pid, "running": p.running} for p in processes.recorded(state)]
    problems: list[str] = []
    if plan:
        problems = [f"{p['name']} (pid {p['pid']}) is not running" for p in procs if not p["running"]]
        if not procs:
            problems.append("no lab process is running (a start was interrupted?)")
        problems = problems or _health(plan, state)
    return LabStatus(bool(plan) and not problems, plan.as_dict() if plan else None, procs,
                     str(kubeconfig_path()), str(state), problems)


@contextlib.contextmanager
def _exclusive(what: str) -> Iterator[None]:
    """One `lab up` or `lab down` at a time: a second one refuses with one line, naming the first."""
    base = checked_dir(state_dir().parent)
    fd = os.open(base / "lab.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise LabError(f"another `k8snb lab` command (pid {holder}) is changing the lab; "
                           f"wait for it to finish, then run `k8snb lab {what}` again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def up(plan: LabPlan | None = None, version: str | None = None, rebuild: bool = False,
       merge_kubeconfig: bool = False) -> LabStatus:
    """Start the lab (or find it running); return its status. Nothing is left half-started."""
    with _exclusive("up"):
        return _up(plan or LabPlan(), version, rebuild, merge_kubeconfig)


def _up(plan: LabPlan, version: str | None, rebuild: bool, merge_kubeconfig: bool) -> LabStatus:
    state = _state()
    try:
        current = status()
    except LabError as exc:
        _log(f"k8snb lab: {exc}; cleaning up before starting")
        _down(quiet=True)
        current = status()
    if current.running:
        wanted = plan.as_dict()
        differs = [k for k in ("nodes_mode", "pod_cidr", "service_cidr", "network", "api_port", "etcd_port")
                   if current.plan.get(k) != wanted[k]]
        if differs:
            raise LabError("the lab is already running with other settings ("
                           + ", ".join(f"{k}={current.plan[k]}" for k in differs)
                           + "); run `k8snb lab down` first")
        _log("k8snb lab: already running; nothing to do")
        return current
    if current.plan or current.processes:
        _log("k8snb lab: found a half-started or broken lab (" + "; ".join(current.problems or ["no plan"])
             + "); removing it before starting")
        _down(quiet=True)
    ports = {plan.api_port: "kube-apiserver", plan.etcd_port: "etcd", plan.etcd_port + 1: "etcd peer"}
    processes.require_ports(ports)

    started = time.monotonic()
    if plan.nodes_mode == "real":
        from . import realnodes

        realnodes.preflight(plan, state)
        b = realnodes.provision(binaries.CONTROL_PLANE + binaries.REAL_NODES, version, rebuild)
    else:
        b = binaries.ensure(binaries.CONTROL_PLANE + binaries.KWOK, version=version, rebuild=rebuild, log=_log)
    prepared = time.monotonic() - started

    t0 = time.monotonic()
    try:
        # The plan first: whatever happens next (an error, Ctrl-C, SIGTERM, kill -9), `down` finds
        # in it everything this start may have created on the host.
        plan.save(state / "plan.json")
        if plan.nodes_mode == "real":
            realnodes.prepare_host(plan, state, b)
        certs = _pki(state, plan)
        kubeconfigs = {u: _kubeconfig(state, u, certs[u], certs["ca"], plan)
                       for u in ("admin", "controller-manager", "scheduler", "kwok")}
        argv = _control_plane_argv(b, state, plan, certs, kubeconfigs)
        processes.start(state, "etcd", argv["etcd"])
        _wait_http(f"https://127.0.0.1:{plan.etcd_port}/health", ETCD_TIMEOUT, "etcd", state, "etcd",
                   context=_tls_context(state, "etcd-ca", "apiserver-etcd-client"))
        processes.start(state, "kube-apiserver", argv["kube-apiserver"])
        _wait_http(f"https://{plan.api_host}:{plan.api_port}/readyz", API_TIMEOUT, "kube-apiserver", state,
                   "kube-apiserver", context=_tls_context(state))
        processes.start(state, "kube-controller-manager", argv["kube-controller-manager"])
        processes.start(state, "kube-scheduler", argv["kube-scheduler"])
        if plan.nodes_mode == "kwok":
            processes.start(state, "kwok", argv["kwok"])
            for name, ip in plan.node_ips().items():
                _api(state, "POST", "/api/v1/nodes", _node_manifest(plan, name, ip, b.version), plan=plan)
        else:
            realnodes.start_nodes(plan, state, b, certs)
        _wait_nodes(state, plan)
        if plan.nodes_mode == "real":
            realnodes.start_addons(plan, state, b)
        else:
            # The same kube-dns Service and CoreDNS Deployment as on real nodes (its pods are
            # simulated), so that the objects a learner lists match kind's and EKS's.
            from . import addons
            from .realnodes import kubectl

            kubectl(b, state, "apply", "-f", "-", stdin=addons.coredns_manifest(plan))
    except BaseException:
        _down(quiet=True)
        raise
    if merge_kubeconfig:
        merge_into_default(b)
    ready = time.monotonic() - t0
    _log(f"k8snb lab: Ready: {len(plan.node_names)} {plan.nodes_mode} nodes, Kubernetes {b.version}; "
         f"start to Ready {ready:.1f} s (before that, binaries"
         + (", host packages and images" if plan.nodes_mode == "real" else "") + f": {prepared:.1f} s)")
    _log(f"k8snb lab: kubeconfig {kubeconfig_path()} (context {CONTEXT}); try: "
         f"KUBECONFIG={kubeconfig_path()} kubectl get nodes -o wide")
    return status()


def down(quiet: bool = False) -> bool:
    """Stop every process the lab started (by PID) and remove what it made; True if anything ran."""
    with _exclusive("down"):
        return _down(quiet)


def _down(quiet: bool = False) -> bool:
    state = _state()
    try:
        plan = _read_plan(state)
    except LabError as exc:
        # A corrupt plan: what this lab made on the host is found below by its fixed names, if the
        # bridge says this lab made it (never another lab's).
        _log(f"k8snb lab: {exc}")
        plan = None
    for name in processes.forget_corrupt(state):
        _log(f"k8snb lab: the pidfile of {name} was corrupt: removed (its process cannot be identified, "
             "so it was not signalled)")
    recorded = [p.name for p in processes.recorded(state)]
    # Node processes (kubelet, containerd, kube-proxy ...) first, then the control plane in reverse.
    order = [n for n in recorded if n not in ORDER] + [n for n in reversed(ORDER) if n in recorded]
    ran = False
    for name in order:
        ran |= processes.stop(state, name)
    # Started but never recorded (a start killed at that instant), or recorded in a corrupt pidfile.
    for proc in processes.strays(state, (binaries.cache_dir().resolve(), Path("/usr/bin/docker-registry"))):
        _log(f"k8snb lab: stopping {proc.name} (pid {proc.pid}), which had no readable pidfile")
        processes.stop_proc(proc)
        ran = True
    if plan is None and os.geteuid() == 0:
        from . import netns

        if netns.leftovers_by_name(state):
            # No plan (state deleted, or a reboot lost /run but not the host's rules): the lab's
            # host objects have fixed names, so remove them by those names.
            _log("k8snb lab: no readable plan, but this lab's bridge or namespaces exist; removing them by name")
            plan = LabPlan(nodes_mode="real")
    if plan is not None and plan.nodes_mode == "real":
        from . import realnodes

        ran |= realnodes.teardown(plan, state, _log)
    for child in ("etcd", "pki", "run", "nodes", "plan.json", "kubeconfig", "controller-manager.kubeconfig",
                  "scheduler.kubeconfig", "kwok.kubeconfig"):
        path = state / child
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            path.unlink()
            ran |= child == "plan.json"
    if not quiet:
        _log("k8snb lab: stopped" if ran else "k8snb lab: was not running")
    return ran


def merge_into_default(b: binaries.Binaries) -> None:
    """Add the lab's context to ~/.kube/config (only when asked: --merge-kubeconfig)."""
    import subprocess

    target = Path(os.path.expanduser("~/.kube/config"))
    target.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, KUBECONFIG=f"{target}:{kubeconfig_path()}" if target.exists() else str(kubeconfig_path()))
    merged = subprocess.run([b["kubectl"], "config", "view", "--flatten"], env=env, check=True,
                            capture_output=True, text=True).stdout
    tmp = target.with_suffix(".k8snb.tmp")
    tmp.write_text(merged)
    tmp.chmod(0o600)
    tmp.replace(target)
    _log(f"k8snb lab: merged context {CONTEXT} into {target}")
