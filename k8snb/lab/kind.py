"""`k8snb kind up|down`: the course's second cluster, kind, built and run offline.

kind normally pulls its node image and its images from registries; here everything is built from
source and Debian packages (k8snb.lab.kindnode), and the nodes pull from the lab's own registry,
served read-only on the cluster's Docker network only. kind's default CNI (kindnet) is an image
from a registry too; the node image carries ours instead (recipes/kind/default-cni.yaml, the
DaemonSet `k8snb-routes`), which kind applies as usual: the CNI reference plugins' ptp +
host-local config for each node's pod range, and a route to every other node's range via that
node's address. Pod IPs are routed between nodes without NAT, as with kindnet.

What `up` creates is recorded (the node containers' IDs, the network): `down` deletes only that,
and a kind cluster or network of the same name that k8snb did not create is refused, not touched.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from ..errors import LabError
from . import addons, binaries, commands, dockerd, images, kindnode
from .binaries import Binaries, pinned_versions, recipes_dir
from .plan import state_dir
from .secure import checked_dir, read_private, write_private

CLUSTER = "k8snb"
NETWORK = "k8snb-kind"
PART_OF = "app.kubernetes.io/part-of=k8snb"
#: The record while `kind create` runs: containers found then are ours, half made.
CREATING = "creating"
#: kind's own wait for the control plane, then ours for every node Ready and CoreDNS (measured: ~60 s).
READY_TIMEOUT = 300.0
FILES = Path(__file__).parent / "files"


@dataclass(frozen=True)
class KindStatus:
    running: bool
    nodes: list[str]
    kubeconfig: Path
    engine: str

    def lines(self) -> list[str]:
        if not self.running:
            return ["k8snb kind: no cluster (make kind, or k8snb kind up)"]
        return [f"k8snb kind: cluster {CLUSTER}: {len(self.nodes)} nodes ({', '.join(self.nodes)})",
                f"  Docker engine: {self.engine}",
                f"  kubeconfig:    {self.kubeconfig} (also merged into your default kubeconfig as kind-{CLUSTER})"]


def kind_dir() -> Path:
    return state_dir().parent / "kind"


def kubeconfig_path() -> Path:
    return kind_dir() / "kubeconfig"


def default_kubeconfig() -> Path:
    """The file kubectl (and kind) write to: the first of KUBECONFIG's list, else ~/.kube/config."""
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first) if first else Path.home() / ".kube" / "config"


def _log(msg: str) -> None:
    print(msg, flush=True)


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    d = checked_dir(kind_dir())
    fd = os.open(d / "kind.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(f"another `k8snb kind` command is running (lock {d / 'kind.lock'}); wait for it") from None
        yield
    finally:
        os.close(fd)


def _docker(engine: dockerd.Engine, *args: str, timeout: float = 120) -> str:
    return commands.run([dockerd.docker_cli(), *args], f"docker {' '.join(args[:3])}", env=engine.env(),
                        timeout=timeout).stdout


def _kind(b: Binaries, engine: dockerd.Engine, *args: str, timeout: float = 600) -> str:
    env = {**engine.env(), "KIND_EXPERIMENTAL_DOCKER_NETWORK": NETWORK}
    return commands.run([b["kind"], *args], f"kind {' '.join(args[:2])}", env=env, timeout=timeout).stdout


def _kubectl(b: Binaries, *args: str, timeout: float = 120) -> str:
    return commands.run([b["kubectl"], "--kubeconfig", str(kubeconfig_path()), *args],
                        f"kubectl {' '.join(args[:3])} on the kind cluster", timeout=timeout).stdout


def _record() -> dict:
    path = kind_dir() / "cluster.json"
    if not path.exists():
        return {}
    try:
        return json.loads(read_private(path))
    except json.JSONDecodeError:
        raise LabError(f"{path} is corrupt; check `docker ps -a --filter label=io.x-k8s.kind.cluster={CLUSTER}` "
                       "and delete what k8snb made by hand") from None


def _node_containers(engine: dockerd.Engine) -> list[str]:
    out = _docker(engine, "ps", "-a", "--no-trunc", "--filter", f"label=io.x-k8s.kind.cluster={CLUSTER}",
                  "--format", "{{.ID}}")
    return sorted(out.split())


def _network(engine: dockerd.Engine) -> dict | None:
    out = _docker(engine, "network", "ls", "--no-trunc", "--filter", f"name=^{NETWORK}$", "--format", "{{.ID}}")
    if not out.strip():
        return None
    return json.loads(_docker(engine, "network", "inspect", out.split()[0]))[0]


def _ensure_network(engine: dockerd.Engine) -> str:
    """kind's Docker network, ours (labelled), IPv4 only like the lab; its gateway's address."""
    net = _network(engine)
    if net is None:
        _docker(engine, "network", "create", "--driver", "bridge", "--label", PART_OF,
                "--opt", "com.docker.network.bridge.enable_ip_masquerade=true", NETWORK)
        net = _network(engine)
        assert net is not None
    elif net.get("Labels", {}).get("app.kubernetes.io/part-of") != "k8snb":
        raise LabError(f"a Docker network named {NETWORK} exists that k8snb did not create (no {PART_OF} label); "
                       "remove or rename it, k8snb will not use or delete it")
    return net["IPAM"]["Config"][0]["Gateway"]


def _serve_registry(b: Binaries, gateway: str, log) -> None:
    """The lab's images (and kubeadm's) pushed through a root-only Unix socket, then served
    read-only on the kind network's gateway, where only the nodes (and the host) reach it."""
    state = kind_dir()
    addons.stop_registry(state)  # an earlier `up`'s, serving an older gateway
    addons.start_registry(state, gateway, b, log, extra=images.kind_recipes(pinned_versions()))
    hosts = (FILES / "hosts.toml").read_text()
    for name in ("docker.io", "registry.k8s.io"):
        d = checked_dir(state / "certs.d" / name)
        (d / "hosts.toml").write_text(hosts.replace("$registry", name).replace(
            "$mirror", f"http://{gateway}:{images.REGISTRY_PORT}"))
        (d / "hosts.toml").chmod(0o644)


def _cgroup_v1() -> bool:
    return not Path("/sys/fs/cgroup/cgroup.controllers").exists()


def cluster_config() -> dict:
    """recipes/kind-config.yaml (what a learner with internet gives kind) plus what offline needs:
    CoreDNS at the tag the lab builds, the registry mirror mounted into every node, and on a
    cgroup v1 host the kubelet told to start anyway (it refuses v1 since Kubernetes 1.35)."""
    config = yaml.safe_load((recipes_dir() / "kind-config.yaml").read_text())
    config["name"] = CLUSTER
    mount = {"hostPath": str(kind_dir() / "certs.d"), "containerPath": "/etc/containerd/certs.d", "readOnly": True}
    for node in config["nodes"]:
        node["extraMounts"] = [mount]
    patches = [f"kind: ClusterConfiguration\ndns:\n  imageTag: {pinned_versions()['COREDNS_VERSION']}\n"]
    if _cgroup_v1():
        patches.append("kind: KubeletConfiguration\nfailCgroupV1: false\n")
    config["kubeadmConfigPatches"] = patches
    return config


def _wait_ready(b: Binaries) -> None:
    """Every node Ready (the pod network configured), then the network's DaemonSet and CoreDNS."""
    for args in (["wait", "--for=condition=Ready", "nodes", "--all"],
                 ["-n", "kube-system", "rollout", "status", "daemonset/k8snb-routes"],
                 ["-n", "kube-system", "rollout", "status", "deployment/coredns"]):
        _kubectl(b, *args, f"--timeout={READY_TIMEOUT:.0f}s", timeout=READY_TIMEOUT + 30)


def up(log=_log) -> KindStatus:
    """Create the kind cluster `k8snb` (1 control plane, 2 workers), offline; idempotent."""
    with _exclusive():
        started = time.monotonic()
        # gcc and libseccomp-dev for runc, the registry and debootstrap for the images (quick when present)
        commands.run(["bash", str(recipes_dir() / "host-setup.sh"), "kind"], "recipes/host-setup.sh kind")
        b = binaries.ensure(binaries.KIND, log=log)
        engine = dockerd.ensure(b, log)
        existing = _node_containers(engine)
        recorded = _record().get("containers")
        if existing and recorded == CREATING:  # an earlier `up` stopped halfway: start over
            _kind(b, engine, "delete", "cluster", "--name", CLUSTER)
            existing = []
        if existing and existing != recorded:
            raise LabError(f"a kind cluster named {CLUSTER} exists that k8snb did not create (or changed since); "
                           f"k8snb will not use or delete it: `kind delete cluster --name {CLUSTER}` if it is yours to remove")
        image = kindnode.ensure(b, engine, log)
        gateway = _ensure_network(engine)
        _serve_registry(b, gateway, log)
        if not existing:
            config = kind_dir() / "cluster.yaml"
            write_private(config, yaml.safe_dump(cluster_config(), sort_keys=False))
            write_private(kind_dir() / "cluster.json", json.dumps({"containers": CREATING}))
            log(f"k8snb kind: kind create cluster --name {CLUSTER} --image {image} (3 nodes)")
            _kind(b, engine, "create", "cluster", "--name", CLUSTER, "--image", image, "--config", str(config),
                  "--kubeconfig", str(kubeconfig_path()))
            write_private(kind_dir() / "cluster.json", json.dumps(
                {"containers": _node_containers(engine), "engine": engine.host, "network": NETWORK}))
        _wait_ready(b)
        # Also into the learner's default kubeconfig (as `kind create` does), recorded so that
        # `down` removes the context from that same file whatever KUBECONFIG says then.
        default = default_kubeconfig()
        _kind(b, engine, "export", "kubeconfig", "--name", CLUSTER, "--kubeconfig", str(default))
        write_private(kind_dir() / "cluster.json", json.dumps({**_record(), "exported_to": str(default)}))
        st = status(engine)
        log(f"k8snb kind: {len(st.nodes)} nodes Ready, pod network and CoreDNS running "
            f"({time.monotonic() - started:.0f} s)")
        return st


def status(engine: dockerd.Engine | None = None) -> KindStatus:
    engine = engine or dockerd.running()
    names: list[str] = []
    if engine is not None and _record():
        names = sorted(_docker(engine, "ps", "--filter", f"label=io.x-k8s.kind.cluster={CLUSTER}",
                               "--format", "{{.Names}}").split())
    return KindStatus(bool(names), names, kubeconfig_path(), engine.host if engine else "none running")


def down(log=_log) -> bool:
    """Delete what `up` made: the cluster (if ours), the registry, the network, our engine."""
    if not kind_dir().exists():
        log("k8snb kind: nothing to remove")
        return False
    with _exclusive():
        engine = dockerd.running()
        version = pinned_versions()["K8S_VERSION"]
        if engine is None and _record().get("engine") == dockerd.ours_host():
            # Our engine stopped (a reboot, a kill) with the cluster in it: start it to delete the cluster.
            engine = dockerd.ensure(binaries.Binaries(version, binaries.bin_dir(version)), log)
        removed = False
        if engine is not None:
            existing = _node_containers(engine)
            if existing and _record().get("containers") not in (existing, CREATING):
                raise LabError(f"the kind cluster {CLUSTER} on {engine.host} was not created by k8snb; not deleting it")
            if existing:
                b = binaries.Binaries(version, binaries.bin_dir(version))
                _kind(b, engine, "delete", "cluster", "--name", CLUSTER, "--kubeconfig", str(kubeconfig_path()))
                exported = _record().get("exported_to")
                if exported and Path(exported).exists():  # the context `up` merged into that file
                    _kind(b, engine, "delete", "cluster", "--name", CLUSTER, "--kubeconfig", exported)
                removed = True
            net = _network(engine)
            if net is not None and net.get("Labels", {}).get("app.kubernetes.io/part-of") == "k8snb":
                _docker(engine, "network", "rm", NETWORK)
        removed |= addons.stop_registry(kind_dir())
        kubeconfig_path().unlink(missing_ok=True)
        (kind_dir() / "cluster.json").unlink(missing_ok=True)
        if dockerd.stop():
            log("k8snb kind: stopped our Docker engine (its images stay cached)")
        log("k8snb kind: removed" if removed else "k8snb kind: nothing was running")
        return removed
