"""Real nodes for the lab: each node a network namespace with its own containerd, kubelet, kube-proxy.

`k8snb lab up --nodes real` (root only) first runs REAL.provision: root, socket paths short enough,
no clash with the host's routes (preflight), then host packages (recipes/host-setup.sh), binaries and
images. Its steps, around the control plane's (see control.lab_steps), each with what its undo removes:

  host network     lab bridge, node namespaces, guard rules;   namespaces, bridge, routes, rules;
                   the host sysctls kubelet changes, saved      the sysctls put back
  image registry   images pushed, then served read-only         the registries stopped
  node processes   containerd + kubelet + kube-proxy per node   the processes, shims and pods killed,
                                                                mounts, cgroups, host-wide leftovers
  pod network      CNI config once podCIDRs exist (bridge +     (routes go with the bridge, configs
                   routes, or ptp + proxy ARP: see netns)        with the node directories)
  CoreDNS          applied; done when kube-dns answers          (in etcd, gone with its data)

The control plane stays on the host. Node processes run in their node's network namespace but in
the host's mount namespace (see processes.start), so their mounts live under the lab's state
directory, where the node processes' undo finds and removes them.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import signal
import string
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import yaml

from ..errors import LabError
from . import addons, binaries, commands, images, kubeconfig, netns, pki, processes, wait
from .binaries import Binaries, pinned_versions
from .constants import (CLUSTER_DOMAIN, CNI_CACHE, CNI_NETWORK, CNI_PLUGINS, FILES, KUBE_PROXY_HEALTHZ_PORT,
                        KUBE_PROXY_METRICS_PORT, KUBELET_HEALTHZ_PORT, KUBELET_PORT, REGISTRY_PORT,
                        SHIM_SOCKETS, SOCKET_PATH_MAX, DEVICE_PLUGIN_SOCKET)
from .plan import LabPlan
from .steps import Context, Step, remove

#: Tools the host must have; recipes/host-setup.sh installs the Debian packages that provide them.
HOST_TOOLS = ("runc", "iptables", "conntrack", "docker-registry", "debootstrap", "nsenter", "ip")
#: The CNI plugins the two network models use (Debian's containernetworking-plugins has them all).
CNI_PLUGIN_NAMES = ("bridge", "ptp", "host-local", "portmap", "loopback")
#: Upper bounds: for containerd to open its socket, for kubelets to register and get a podCIDR, and
#: for a node's cgroups to be free once its processes were killed.
SOCKET_TIMEOUT = 30.0
REGISTER_TIMEOUT = 60.0
CGROUP_TIMEOUT = 10.0


def _node_dir(state: Path, node: str) -> Path:
    return state / "nodes" / node


def _missing_tools() -> list[str]:
    missing = [t for t in HOST_TOOLS if not shutil.which(t)]
    missing += [f"{CNI_PLUGINS}/{p}" for p in CNI_PLUGIN_NAMES if not (CNI_PLUGINS / p).exists()]
    return missing


def preflight(plan: LabPlan, state: Path) -> None:
    """Root, a state directory short enough for the nodes' sockets, and no overlap with the host's
    own network: checked before anything is built."""
    if os.geteuid() != 0:
        raise LabError("real nodes need root (network namespaces, containerd, iptables); "
                       "use `k8snb lab up --nodes kwok` for simulated nodes")
    longest = max(plan.node_names, key=len)
    socket = _node_dir(state, longest) / "containerd" / "containerd.sock.ttrpc"
    if len(str(socket)) > SOCKET_PATH_MAX:
        raise LabError(f"the state directory {state} is too deep for real nodes: containerd's socket "
                       f"{socket} would exceed {SOCKET_PATH_MAX} bytes; set K8SNB_STATE to a shorter path")
    clashes = netns.conflicts(plan)
    if clashes:
        raise LabError("real nodes cannot start: " + "; ".join(clashes))


def _host_packages(log: Callable[[str], None]) -> None:
    """Install the Debian packages real nodes need (recipes/host-setup.sh) when a tool is missing."""
    if not _missing_tools():
        return
    log(f"k8snb lab: installing host packages for real nodes ({', '.join(_missing_tools())} missing)")
    commands.run(["bash", str(binaries.recipes_dir() / "host-setup.sh")], "recipes/host-setup.sh")
    if _missing_tools():
        raise LabError(f"recipes/host-setup.sh could not provide {', '.join(_missing_tools())}")


def _provision(version: str | None, rebuild: bool, log: Callable[[str], None]) -> Binaries:
    """Everything real nodes need before the lab starts. A first run waits on the network (apt, the
    Debian archive) as much as on the CPU (Go), so the host packages and the images' Debian layers
    are fetched in a thread while the binaries compile; then the images that hold a binary."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        def host_side() -> None:
            _host_packages(log)
            images.build_packaged(pinned_versions()["COREDNS_VERSION"], log)

        host = pool.submit(host_side)
        try:
            b = binaries.ensure(binaries.CONTROL_PLANE + binaries.REAL_NODES, version=version, rebuild=rebuild,
                                log=log)
        finally:
            host.result()  # its error first: no image can be built without the host packages
    images.build_all(b, pinned_versions()["COREDNS_VERSION"], log)
    return b


def _host_network(ctx: Context) -> None:
    """The bridge, one namespace per node, routes and guard rules (see netns); the host sysctls
    kubelet will change are saved first, for `down` to put back."""
    netns.save_sysctls(ctx.state)
    netns.create(ctx.plan, ctx.state)


def _remove_host_network(ctx: Context) -> bool:
    found = netns.destroy(ctx.plan)
    try:
        found |= netns.restore_sysctls(ctx.state)
    except (OSError, ValueError) as exc:
        ctx.log(f"k8snb lab: could not restore the host's sysctls from {ctx.state / 'host-sysctls.json'}: {exc}")
    return found


def _registry(ctx: Context) -> None:
    addons.start_registry(ctx.state, ctx.plan.host_ip, ctx.b, ctx.log)


def _stop_registry(ctx: Context) -> bool:
    return addons.stop_registry(ctx.state)


def _cgroup_mounts(types: tuple[str, ...] = ("cgroup",)) -> list[Path]:
    """The host's cgroup hierarchies: v1 ones (kubelet wants its cgroupRoot to exist in each), and
    with ("cgroup", "cgroup2") also the hybrid layout's unified one, where runc creates cgroups too."""
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] in types:
            out.append(Path(fields[1]))
    return out


def _make_cgroup_root(node: str) -> None:
    for mount in _cgroup_mounts():
        path = mount / node
        path.mkdir(exist_ok=True)
        for key in ("cpuset.cpus", "cpuset.mems"):  # an empty cpuset cannot hold tasks
            if (mount / key).exists() and not (path / key).read_text().strip():
                (path / key).write_text((mount / key).read_text())


def _remove_cgroup_root(node: str) -> bool:
    found = False
    for mount in _cgroup_mounts(("cgroup", "cgroup2")):
        root = mount / node
        if not root.exists():
            continue
        found = True
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            d.rmdir()
        root.rmdir()
    return found


def _containerd_config(plan: LabPlan, d: Path, node: str) -> Path:
    registry = f"http://{plan.host_ip}:{REGISTRY_PORT}"
    certs_d = d / "containerd" / "certs.d"
    hosts = string.Template((FILES / "hosts.toml").read_text())
    for name in ("docker.io", "registry.k8s.io"):
        (certs_d / name).mkdir(parents=True, exist_ok=True)
        (certs_d / name / "hosts.toml").write_text(hosts.substitute(registry=name, mirror=registry))
    (d / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
    cfg = string.Template((FILES / "containerd.toml").read_text()).substitute(
        node=node, root=d / "containerd" / "root", state=d / "containerd" / "state",
        socket=d / "containerd" / "containerd.sock", pause_image=images.PAUSE_IMAGE,
        certs_d=certs_d, runc=shutil.which("runc"), cni_conf_dir=d / "cni" / "net.d")
    path = d / "containerd" / "config.toml"
    path.write_text(cfg)
    return path


def _kubelet_config(plan: LabPlan, d: Path, node: str, ip: str, serving: pki.Pair, ca: pki.Pair) -> Path:
    resolv = d / "resolv.conf"
    # The lab has no upstream DNS: kubelet takes no search domains or nameservers from the host.
    resolv.write_text("# k8snb lab: no upstream resolver\n")
    control_plane = node == plan.node_names[0]
    cfg = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": ip, "port": KUBELET_PORT, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": KUBELET_HEALTHZ_PORT,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca.cert)}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(serving.cert), "tlsPrivateKeyFile": str(serving.key),
        # This host runs cgroup v1; three kubelets share it, each under its own cgroup root.
        "failCgroupV1": False, "cgroupDriver": "cgroupfs", "cgroupRoot": f"/{node}",
        "containerRuntimeEndpoint": f"unix://{d / 'containerd' / 'containerd.sock'}",
        "clusterDNS": [plan.dns_ip], "clusterDomain": CLUSTER_DOMAIN, "resolvConf": str(resolv),
        "podLogsDir": str(d / "pod-logs"),
        "failSwapOn": False, "serializeImagePulls": False, "oomScoreAdj": 0,
        # One disk for three nodes: evict only when it is really full.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "registerWithTaints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
        if control_plane else [],
    }
    path = d / "kubelet.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _kube_proxy_config(plan: LabPlan, d: Path, node: str, ip: str, kubeconfig: Path) -> Path:
    cfg = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "mode": "iptables", "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node, "bindAddress": ip,
        "healthzBindAddress": f"{ip}:{KUBE_PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": f"127.0.0.1:{KUBE_PROXY_METRICS_PORT}",
        "clusterCIDR": plan.pod_cidr,
        # NodePorts on the node's lab IP only (not 127.0.0.1, which would need route_localnet).
        "nodePortAddresses": [f"{ip}/32"],
        "iptables": {"localhostNodePorts": False, "minSyncPeriod": "1s", "syncPeriod": "30s"},
        # 0 = leave as is: nf_conntrack_max is host-wide, and the lab must not change host settings.
        "oomScoreAdj": 0,  # not -999: lowering it needs CAP_SYS_RESOURCE, and the lab is not critical
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    path = d / "kube-proxy.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _wait_socket(state: Path, name: str, sock: Path) -> None:
    """Until the process `name` opened its socket `sock` (kubelet needs containerd's)."""
    def opened() -> bool:
        if sock.exists():
            return True
        processes.check_running(state, name)
        return False

    wait.until(opened, SOCKET_TIMEOUT, 0.1, lambda: f"{name} did not open {sock} within {SOCKET_TIMEOUT:.0f} s; "
               f"last log lines:\n{processes.log_tail(state, name)}")


def _pod_cidrs(plan: LabPlan, state: Path, b: Binaries) -> dict[str, str]:
    """Wait until every node registered and got its podCIDR from the controller-manager."""
    cidrs: dict[str, str] = {}

    def allocated() -> bool:
        nonlocal cidrs
        items = json.loads(commands.kubectl(b, state, "get", "nodes", "-o", "json"))["items"]
        cidrs = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in items if n["spec"].get("podCIDR")}
        if all(n in cidrs for n in plan.node_names):
            return True
        for node in plan.node_names:
            processes.check_running(state, f"kubelet-{node}", 15)
        return False

    def missing() -> str:
        late = [n for n in plan.node_names if n not in cidrs]
        return (f"nodes {', '.join(late)} did not register with a podCIDR within {REGISTER_TIMEOUT:.0f} s; "
                f"kubelet log:\n{processes.log_tail(state, f'kubelet-{late[0]}', 15)}")

    wait.until(allocated, REGISTER_TIMEOUT, 0.5, missing)
    return cidrs


def _cni_config(plan: LabPlan, d: Path, pod_cidr: str) -> dict:
    """The node's CNI chain: host-local IPAM over the node's podCIDR (its first address is the pods'
    gateway, kept on the node side), then portmap. Routed: the `bridge` plugin, every pod on `cni0`.
    Flat: the `ptp` plugin, a veth and a /32 host route per pod and no bridge, so the node's eth0
    can answer ARP for exactly its own pods (see netns)."""
    gateway = str(next(ipaddress.ip_network(pod_cidr).hosts()))
    ipam = {"type": "host-local", "ranges": [[{"subnet": pod_cidr, "gateway": gateway}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(d / "cni" / "ipam")}
    if plan.network == "flat":
        main = {"type": "ptp", "ipMasq": False, "ipam": ipam}
    else:
        main = {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
                "ipam": ipam}
    return {"cniVersion": "1.0.0", "name": CNI_NETWORK,
            "plugins": [main, {"type": "portmap", "capabilities": {"portMappings": True}}]}


def _write_cni(plan: LabPlan, d: Path, pod_cidr: str) -> None:
    """Written in place, not renamed into place: containerd reloads on write events and ignores creates."""
    (d / "cni" / "net.d" / "10-k8snb.conflist").write_text(json.dumps(_cni_config(plan, d, pod_cidr), indent=2))


def _node_processes(node: str) -> tuple[str, ...]:
    """The names a node's processes are recorded under, in the order they start."""
    return (f"containerd-{node}", f"kubelet-{node}", f"kube-proxy-{node}")


def _start_node_processes(ctx: Context) -> None:
    """containerd, kubelet and kube-proxy in each node's namespace, with their certificates and
    kubeconfigs; the kubelets register their nodes."""
    plan, state, b = ctx.plan, ctx.state, ctx.b
    ca = ctx.certs["ca"]
    server = f"https://{plan.host_ip}:{plan.api_port}"
    proxy_kubeconfig = kubeconfig.write_node(kubeconfig.user_path(state, "kube-proxy"), server, ca,
                                             pki.issue(ca, state / "pki", "kube-proxy", "system:kube-proxy"))
    # containerd finds its shim on PATH; runc and the CNI plugins come from Debian.
    env = {"PATH": f"{b.directory}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    for node in plan.node_names:
        d = _node_dir(state, node)
        (d / "pki").mkdir(parents=True, exist_ok=True)
        processes.start(state, f"containerd-{node}",
                        [b["containerd"], f"--config={_containerd_config(plan, d, node)}"], env=env, netns=node)
    for node, ip in plan.node_ips().items():
        d = _node_dir(state, node)
        _wait_socket(state, f"containerd-{node}", d / "containerd" / "containerd.sock")
        client = pki.issue(ca, d / "pki", "kubelet-client", f"system:node:{node}", org="system:nodes")
        serving = pki.issue(ca, d / "pki", "kubelet-serving", f"system:node:{node}",
                            server_names=(ip, node), client=False)
        _make_cgroup_root(node)
        _start_kubelet(state, node, [
            b["kubelet"], f"--config={_kubelet_config(plan, d, node, ip, serving, ca)}",
            f"--kubeconfig={kubeconfig.write_node(d / 'kubelet.kubeconfig', server, ca, client)}",
            f"--root-dir={d / 'kubelet'}", f"--hostname-override={node}", f"--node-ip={ip}",
        ], env)
        processes.start(state, f"kube-proxy-{node}", [
            b["kube-proxy"], f"--config={_kube_proxy_config(plan, d, node, ip, proxy_kubeconfig)}",
        ], env=env, netns=node)


def _socket_inode() -> tuple[int, int] | None:
    """The socket file's identity: inode and change time (an inode number alone may be reused)."""
    try:
        st = DEVICE_PLUGIN_SOCKET.stat()
    except OSError:
        return None
    return st.st_ino, st.st_ctime_ns


def _start_kubelet(state: Path, node: str, argv: list[str], env: dict[str, str]) -> None:
    """Start one kubelet, then wait until it has bound the device-plugin socket before the next
    starts. kubelet removes that socket and binds it again at start-up, at the same fixed path for
    every kubelet: started together, one of them can meet another's fresh socket between its
    remove and its bind ("address already in use") and exit. Measured: about 0.1 s per kubelet."""
    before = _socket_inode()
    processes.start(state, f"kubelet-{node}", argv, env=env, netns=node)

    def bound() -> bool:
        now = _socket_inode()
        if now is not None and now != before:
            return True
        processes.check_running(state, f"kubelet-{node}", 15)
        return False

    wait.until(bound, SOCKET_TIMEOUT, 0.05, lambda: f"kubelet-{node} did not bind {DEVICE_PLUGIN_SOCKET} within "
               f"{SOCKET_TIMEOUT:.0f} s; last log lines:\n{processes.log_tail(state, f'kubelet-{node}', 15)}")


def _remove_nodes(ctx: Context) -> bool:
    """Stop the node processes (by PID), then remove what they leave: shims and pods (killed by
    network namespace), host-wide sockets and CNI cache entries, mounts under the state directory,
    the nodes' cgroups, and the node directories. Each part runs whatever the previous ones met;
    what could not be undone is reported, not fatal."""
    plan, state = ctx.plan, ctx.state
    found = False
    for node in reversed(plan.node_names):
        for name in reversed(_node_processes(node)):
            found |= processes.stop(state, name)
    found |= _kill_in_namespaces(netns.namespace_inodes(plan, state))
    found |= _remove_host_leftovers(state)
    found |= _unmount_under(state)
    for node in plan.node_names:
        found |= _remove_cgroups(node, ctx.log)
    remove(state, "nodes")
    return found


def _remove_cgroups(node: str, log: Callable[[str], None]) -> bool:
    """The node's cgroups, tried again for CGROUP_TIMEOUT while busy: a killed process leaves its
    network namespace (which `_kill_in_namespaces` watches) a moment before its cgroup."""
    found, busy = False, ""

    def removed() -> bool:
        nonlocal found, busy
        try:
            found |= _remove_cgroup_root(node)
        except OSError as exc:
            busy = exc.strerror
            return False
        return True

    if not wait.until(removed, CGROUP_TIMEOUT, 0.2):
        log(f"k8snb lab: could not remove the cgroups of {node}: {busy} (still in use?)")
    return found


def _pod_network(ctx: Context) -> None:
    """Once each node has its podCIDR: its CNI configuration and, routed, the routes to the other
    nodes' pods; then the control-plane node's role label (kubelets may not set it themselves)."""
    plan, state, b = ctx.plan, ctx.state, ctx.b
    cidrs = _pod_cidrs(plan, state, b)
    for node, cidr in cidrs.items():
        _write_cni(plan, _node_dir(state, node), cidr)
    if plan.network == "routed":  # flat: the nodes' proxy ARP replaces routes (see netns)
        netns.route_pods(plan, cidrs)
    commands.kubectl(b, state, "label", "node", plan.node_names[0], "node-role.kubernetes.io/control-plane=",
                     "--overwrite")


def _coredns(ctx: Context) -> None:
    """CoreDNS behind kube-dns; done when DNS answers."""
    addons.start_coredns(ctx.plan, ctx.state, ctx.b)


def _kill_in_namespaces(inodes: set[int]) -> bool:
    """SIGKILL every process in the lab's network namespaces: shims and pod processes the lab's
    containerds started, which outlive containerd by design. Selected by PID and namespace only."""
    def members() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                link = os.readlink(entry / "ns" / "net")
            except OSError:
                continue
            if int(link.split("[", 1)[1].rstrip("]")) in inodes:
                pids.append(int(entry.name))
        return pids

    def gone() -> bool:
        pids = members()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return not pids

    found = bool(members())
    wait.until(gone, 10, 0.2)  # best effort: a survivor shows in the leftovers tests look for
    return found


def _unmount_under(state: Path) -> bool:
    """Unmount, deepest first, what containerd and kubelet mounted below the state directory."""
    root = str(state.resolve())
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == root or point.startswith(root + "/"):
            mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        if commands.run(["umount", point], check=False).returncode != 0:
            commands.run(["umount", "-l", point], check=False)
    return bool(mounts)


def _tasks(state: Path) -> list[tuple[Path, str, str]]:
    """(containerd socket, namespace, task id) of every task the nodes' containerds ran."""
    out = []
    for tasks in (state / "nodes").glob("*/containerd/state/io.containerd.runtime.v2.task"):
        address = tasks.parents[1] / "containerd.sock"
        out += [(address, task.parent.name, task.name) for task in tasks.glob("*/*")]
    return out


def _remove_host_leftovers(state: Path) -> bool:
    """What killed shims and sandboxes leave in host-wide directories whatever the configuration:
    shim sockets in /run/containerd/s (named, as in containerd's pkg/shim SocketAddress, by sha256
    of <containerd socket>/<namespace>/<task id>) and libcni's result cache per sandbox; then those
    directories, when nothing else uses them."""
    leftovers = []
    for address, namespace, task in _tasks(state):
        for path in (f"{address}/{namespace}/{task}", f"{address}/{namespace}/{task}/debug"):
            leftovers.append(SHIM_SOCKETS / hashlib.sha256(path.encode()).hexdigest())
        leftovers += [CNI_CACHE / f"{CNI_NETWORK}-{task}-eth0", CNI_CACHE / f"cni-loopback-{task}-lo"]
    found = False
    for path in leftovers:
        if path.exists() or path.is_symlink():
            path.unlink()
            found = True
    for directory in (SHIM_SOCKETS, SHIM_SOCKETS.parent, CNI_CACHE, CNI_CACHE.parent):
        try:
            directory.rmdir()  # only when empty
        except OSError:
            pass
    return found


class RealNodes:
    """The real-nodes backend (see nodes.NodeBackend)."""

    mode = "real"
    prepares = "binaries, host packages and images"

    def provision(self, plan: LabPlan, state: Path, version: str | None, rebuild: bool,
                  log: Callable[[str], None]) -> Binaries:
        preflight(plan, state)
        return _provision(version, rebuild, log)

    def apiserver_flags(self, plan: LabPlan) -> list[str]:
        return [f"--advertise-address={plan.api_bind}", "--kubelet-preferred-address-types=InternalIP"]

    def host_steps(self) -> list[Step]:
        return [Step("host network (bridge, node namespaces, guard rules)", _host_network, _remove_host_network),
                Step("image registry", _registry, _stop_registry)]

    def node_steps(self) -> list[Step]:
        return [Step("node processes (containerd, kubelet, kube-proxy)", _start_node_processes, _remove_nodes),
                Step("pod network", _pod_network)]

    def node_log(self, node: str) -> str:
        return f"kubelet-{node}"

    def addon_steps(self) -> list[Step]:
        return [Step("CoreDNS", _coredns)]

    def health(self, plan: LabPlan, state: Path) -> list[str]:
        """The registry serving and CoreDNS answering, as pods need them."""
        problems = []
        try:
            images.wait_registry(plan.host_ip, timeout=2)
        except LabError:
            problems.append(f"the registry on {plan.host_ip}:{REGISTRY_PORT} does not answer")
        if plan.api_server_ip not in addons.dns_answer(plan):
            problems.append(f"CoreDNS at {plan.dns_ip} does not answer")
        return problems


REAL = RealNodes()
