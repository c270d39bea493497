"""Real nodes for the lab: each node a network namespace with its own containerd, kubelet, kube-proxy.

`k8snb lab up --nodes real` (root only) calls, in this order:
  preflight(plan, state)                root, socket paths, no clash with the host's routes
  provision(components, ...) -> b       host packages (recipes/host-setup.sh), binaries, images
  prepare_host(plan, state, b)          lab bridge and node namespaces, guard rails, the registry (images pushed)
  start_nodes(plan, state, b, certs)    containerd + kubelet + kube-proxy per node, CNI once podCIDRs exist
                                        (bridge + routes, or ptp + proxy ARP: see netns)
  start_addons(plan, state, b)          CoreDNS, once kube-dns answers
and `down` calls teardown(plan, state), which removes whatever of all that exists.

The control plane stays on the host. Node processes run in their node's network namespace but in
the host's mount namespace (see processes.start), so their mounts live under the lab's state
directory, where teardown finds and removes them.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import signal
import string
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from ..errors import LabError
from . import addons, binaries, images, netns, pki, processes
from .binaries import pinned_versions
from .secure import write_private
from .plan import CLUSTER_DOMAIN, LabPlan

FILES = Path(__file__).parent / "files"
#: Tools the host must have; recipes/host-setup.sh installs the Debian packages that provide them.
HOST_TOOLS = ("runc", "iptables", "conntrack", "docker-registry", "debootstrap", "nsenter", "ip")
CNI_PLUGINS = Path("/usr/lib/cni")
#: The CNI plugins the two network models use (Debian's containernetworking-plugins has them all).
CNI_PLUGIN_NAMES = ("bridge", "ptp", "host-local", "portmap", "loopback")
#: Host-wide directories containerd and libcni write into whatever their configuration says.
SHIM_SOCKETS = Path("/run/containerd/s")
CNI_CACHE = Path("/var/lib/cni/results")
CNI_NETWORK = "k8snb"
#: Upper bound for kubelets to register and get a podCIDR from the controller-manager.
REGISTER_TIMEOUT = 60.0


def _log(msg: str) -> None:
    print(msg, flush=True)


def _node_dir(state: Path, node: str) -> Path:
    return state / "nodes" / node


def _missing_tools() -> list[str]:
    missing = [t for t in HOST_TOOLS if not shutil.which(t)]
    missing += [f"{CNI_PLUGINS}/{p}" for p in CNI_PLUGIN_NAMES if not (CNI_PLUGINS / p).exists()]
    return missing


#: The longest Unix socket path Linux accepts (sun_path), which containerd checks for its sockets.
SOCKET_PATH_MAX = 104


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


def _host_packages() -> None:
    """Install the Debian packages real nodes need (recipes/host-setup.sh) when a tool is missing."""
    if not _missing_tools():
        return
    _log(f"k8snb lab: installing host packages for real nodes ({', '.join(_missing_tools())} missing)")
    proc = subprocess.run(["bash", str(binaries.recipes_dir() / "host-setup.sh")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 or _missing_tools():
        raise LabError(f"recipes/host-setup.sh could not provide {', '.join(_missing_tools())}:\n"
                       + "\n".join(proc.stdout.splitlines()[-10:]))


def provision(components: tuple[str, ...], version: str | None, rebuild: bool) -> binaries.Binaries:
    """Everything real nodes need before the lab starts. A first run waits on the network (apt, the
    Debian archive) as much as on the CPU (Go), so the host packages and the images' Debian layers
    are fetched in a thread while the binaries compile; then the images that hold a binary."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        def host_side() -> None:
            _host_packages()
            images.build_packaged(pinned_versions()["COREDNS_VERSION"], _log)

        host = pool.submit(host_side)
        try:
            b = binaries.ensure(components, version=version, rebuild=rebuild, log=_log)
        finally:
            host.result()  # its error first: no image can be built without the host packages
    images.build_all(b, pinned_versions()["COREDNS_VERSION"], _log)
    return b


def prepare_host(plan: LabPlan, state: Path, b: binaries.Binaries) -> None:
    """Create the lab network and the registry (the images pushed, then served read-only on the
    bridge). control.up saved the plan before this, so `down` removes whatever of it exists."""
    netns.save_sysctls(state)
    netns.create(plan, state)
    addons.start_registry(state, plan.host_ip, b, _log)


def _kubeconfig(path: Path, server: str, ca: pki.Pair, cert: pki.Pair) -> Path:
    cfg = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "lab", "cluster": {"server": server, "certificate-authority": str(ca.cert)}}],
           "users": [{"name": "lab", "user": {"client-certificate": str(cert.cert), "client-key": str(cert.key)}}],
           "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}],
           "current-context": "lab"}
    write_private(path, yaml.safe_dump(cfg, sort_keys=False))
    return path


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
    registry = f"http://{plan.host_ip}:{images.REGISTRY_PORT}"
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
        "address": ip, "port": 10250, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
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
        "healthzBindAddress": f"{ip}:10256", "metricsBindAddress": "127.0.0.1:10249",
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


def _wait_socket(state: Path, name: str, sock: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.exists():
            return
        proc = processes.read(state, name)
        if proc is not None and not proc.running:
            break
        time.sleep(0.1)
    raise LabError(f"{name} did not open {sock}; last log lines:\n{processes.log_tail(state, name)}")


def kubectl(b: binaries.Binaries, state: Path, *args: str, stdin: str | None = None) -> str:
    """Run kubectl as the lab admin; raise LabError with its message on failure."""
    proc = subprocess.run([b["kubectl"], f"--kubeconfig={state / 'kubeconfig'}", *args],
                          input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"kubectl {' '.join(args[:3])} failed: {proc.stderr.strip()}")
    return proc.stdout


def _pod_cidrs(plan: LabPlan, state: Path, b: binaries.Binaries) -> dict[str, str]:
    """Wait until every node registered and got its podCIDR from the controller-manager."""
    deadline = time.monotonic() + REGISTER_TIMEOUT
    cidrs: dict[str, str] = {}
    while time.monotonic() < deadline:
        items = json.loads(kubectl(b, state, "get", "nodes", "-o", "json"))["items"]
        cidrs = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in items if n["spec"].get("podCIDR")}
        if all(n in cidrs for n in plan.node_names):
            return cidrs
        for node in plan.node_names:
            proc = processes.read(state, f"kubelet-{node}")
            if proc is not None and not proc.running:
                raise LabError(f"kubelet on {node} exited; last log lines:\n"
                               f"{processes.log_tail(state, f'kubelet-{node}', 15)}")
        time.sleep(0.5)
    missing = [n for n in plan.node_names if n not in cidrs]
    raise LabError(f"nodes {', '.join(missing)} did not register with a podCIDR within {REGISTER_TIMEOUT:.0f} s; "
                   f"kubelet log:\n{processes.log_tail(state, f'kubelet-{missing[0]}', 15)}")


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


def start_nodes(plan: LabPlan, state: Path, b: binaries.Binaries, certs: dict[str, pki.Pair]) -> None:
    """containerd, kubelet and kube-proxy in each node's namespace; pod networking once podCIDRs exist."""
    ca = certs["ca"]
    server = f"https://{plan.host_ip}:{plan.api_port}"
    proxy_kubeconfig = _kubeconfig(state / "kube-proxy.kubeconfig", server, ca,
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
        processes.start(state, f"kubelet-{node}", [
            b["kubelet"], f"--config={_kubelet_config(plan, d, node, ip, serving, ca)}",
            f"--kubeconfig={_kubeconfig(d / 'kubelet.kubeconfig', server, ca, client)}",
            f"--root-dir={d / 'kubelet'}", f"--hostname-override={node}", f"--node-ip={ip}",
        ], env=env, netns=node)
        processes.start(state, f"kube-proxy-{node}", [
            b["kube-proxy"], f"--config={_kube_proxy_config(plan, d, node, ip, proxy_kubeconfig)}",
        ], env=env, netns=node)
    cidrs = _pod_cidrs(plan, state, b)
    for node, cidr in cidrs.items():
        _write_cni(plan, _node_dir(state, node), cidr)
    if plan.network == "routed":  # flat: the nodes' proxy ARP replaces routes (see netns)
        netns.route_pods(plan, cidrs)
    kubectl(b, state, "label", "node", plan.node_names[0], "node-role.kubernetes.io/control-plane=", "--overwrite")


def start_addons(plan: LabPlan, state: Path, b: binaries.Binaries) -> None:
    """CoreDNS behind kube-dns; returns when DNS answers."""
    addons.start_coredns(plan, state, b, kubectl)


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

    found = members()
    deadline = time.monotonic() + 10
    pids = found
    while pids and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
        pids = members()
    return bool(found)


def _unmount_under(state: Path) -> bool:
    """Unmount, deepest first, what containerd and kubelet mounted below the state directory."""
    root = str(state.resolve())
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == root or point.startswith(root + "/"):
            mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
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


def teardown(plan: LabPlan, state: Path, log=_log) -> bool:
    """Remove everything real nodes made (after control.down stopped the recorded processes). Each
    step runs whatever the previous ones met; what could not be undone is reported, not fatal."""
    found = _kill_in_namespaces(netns.namespace_inodes(plan, state))
    found |= _remove_host_leftovers(state)
    found |= _unmount_under(state)
    found |= netns.destroy(plan)
    for node in plan.node_names:
        try:
            found |= _remove_cgroup_root(node)
        except OSError as exc:
            log(f"k8snb lab: could not remove the cgroups of {node}: {exc.strerror} (still in use?)")
    try:
        found |= netns.restore_sysctls(state)
    except (OSError, ValueError) as exc:
        log(f"k8snb lab: could not restore the host's sysctls from {state / 'host-sysctls.json'}: {exc}")
    for leftover in ("kube-proxy.kubeconfig", "registry.yml", "registry-push.yml"):
        (state / leftover).unlink(missing_ok=True)
    return found
