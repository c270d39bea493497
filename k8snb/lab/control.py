"""`k8snb lab up | down | status`: the offline lab cluster's life cycle.

`up` is a list of named steps (`lab_steps`), each with its undo; `down` runs the undos of the same
list, last first. The control plane (etcd, kube-apiserver with TLS and RBAC, kube-controller-manager
allocating a /24 per node, kube-scheduler: see `components`) runs as ordinary processes on the host.
The nodes come from a backend (`nodes.NodeBackend`): simulated by kwok (no root needed, no packet
flows; `kwoknodes`) or real (root; `realnodes`), which adds its own steps around the control plane's.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LabError
from . import api, components, kubeconfig, netns, nodes, pki, processes, steps
from .constants import CONTEXT, DOCKER_REGISTRY
from .kubeconfig import kubeconfig_path
from .nodes import NodeBackend
from .plan import NODE_CIDR_MASK, LabPlan, cache_dir, state_dir
from .secure import checked_dir
from .steps import Context, Step, process_step

#: The control plane's kubeconfigs, written by the certificates step (kwok's is used by kwok only).
CONTROL_PLANE_USERS = ("admin", "controller-manager", "scheduler", "kwok")


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


def _log(msg: str) -> None:
    print(msg, flush=True)


def lab_steps(backend: NodeBackend) -> list[Step]:
    """Everything `up` does, in order. `down` undoes the same list, last step first."""
    return [
        Step("plan saved", _save_plan, _remove_plan),
        *backend.host_steps(),
        Step("certificates and kubeconfigs", _certificates, _remove_certificates),
        process_step("etcd", components.etcd, components.etcd_serving, data=("etcd",)),
        process_step("kube-apiserver", lambda ctx: components.kube_apiserver(ctx, backend.apiserver_flags(ctx.plan)),
                     components.kube_apiserver_serving),
        process_step("kube-controller-manager", components.kube_controller_manager),
        process_step("kube-scheduler", components.kube_scheduler),
        *backend.node_steps(),
        Step("nodes Ready", lambda ctx: api.wait_nodes_ready(ctx.plan, ctx.state, backend.node_log)),
        *backend.addon_steps(),
    ]


def _save_plan(ctx: Context) -> None:
    """The plan first: whatever happens next (an error, Ctrl-C, SIGTERM, kill -9), `down` finds in
    it which steps this start may have taken, and so everything it may have created on the host."""
    ctx.plan.save(ctx.state / "plan.json")


def _remove_plan(ctx: Context) -> bool:
    return steps.remove(ctx.state, "plan.json")


def _certificates(ctx: Context) -> None:
    ctx.certs = pki.lab_certificates(ctx.state, ctx.plan)
    server = f"https://{ctx.plan.api_host}:{ctx.plan.api_port}"
    for user in CONTROL_PLANE_USERS:
        kubeconfig.write(ctx.state, user, ctx.certs[user], ctx.certs["ca"], server)


def _remove_certificates(ctx: Context) -> bool:
    """Every certificate and kubeconfig, the ones later steps issued included (kube-proxy's)."""
    steps.remove(ctx.state, "pki")
    kubeconfig.remove(ctx.state)
    return False


def _health(plan: LabPlan, state: Path) -> list[str]:
    """What a working lab must have, checked on the lab itself (not PIDs alone): the API ready,
    every node Ready, and what the node backend needs (with real nodes the registry and CoreDNS)."""
    try:
        problems = api.unready_nodes(plan, state)
    except LabError as exc:
        return [str(exc)]
    return problems + nodes.backend(plan.nodes_mode).health(plan, state)


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

    backend = nodes.backend(plan.nodes_mode)
    started = time.monotonic()
    b = backend.provision(plan, state, version, rebuild, _log)
    prepared = time.monotonic() - started

    t0 = time.monotonic()
    try:
        steps.run(lab_steps(backend), Context(plan, state, _log, binaries=b))
    except BaseException:
        _down(quiet=True)
        raise
    if merge_kubeconfig:
        kubeconfig.merge_into_default(b["kubectl"], _log)
    ready = time.monotonic() - t0
    _log(f"k8snb lab: Ready: {len(plan.node_names)} {plan.nodes_mode} nodes, Kubernetes {b.version}; "
         f"start to Ready {ready:.1f} s (before that, {backend.prepares}: {prepared:.1f} s)")
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
    if plan is None and os.geteuid() == 0 and netns.leftovers_by_name(state):
        # No plan (state deleted, or a reboot lost /run but not the host's rules): the lab's
        # host objects have fixed names, so remove them by those names.
        _log("k8snb lab: no readable plan, but this lab's bridge or namespaces exist; removing them by name")
        plan = LabPlan(nodes_mode="real")
    # Without a plan, the control plane's steps: kwok's backend adds nothing on the host.
    plan = plan or LabPlan()
    ran = steps.undo(lab_steps(nodes.backend(plan.nodes_mode)), Context(plan, state, _log))
    # Recorded under a name the plan's steps do not start (a plan that no longer says what ran).
    for proc in processes.recorded(state):
        ran |= processes.stop(state, proc.name)
    # Started but never recorded (a start killed at that instant), or recorded in a corrupt pidfile.
    for proc in processes.strays(state, (cache_dir().resolve(), DOCKER_REGISTRY)):
        _log(f"k8snb lab: stopping {proc.name} (pid {proc.pid}), which had no readable pidfile")
        processes.stop_proc(proc)
        ran = True
    # "hub": a classroom's JupyterHub database and secrets (its processes were stopped above).
    steps.remove(state, "run", "hub")
    if not quiet:
        _log("k8snb lab: stopped" if ran else "k8snb lab: was not running")
    return ran
