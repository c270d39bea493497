"""What a real-nodes lab runs besides the nodes: the local image registry and CoreDNS.

The registry (Debian's docker-registry) is a lab process on the host, listening on the lab bridge
only; every node's containerd uses it for docker.io and registry.k8s.io. CoreDNS is an ordinary
Deployment behind the `kube-dns` Service, so learners see the same objects as on kind or EKS.
"""
from __future__ import annotations

import random
import socket
import string
import struct
from pathlib import Path
from typing import Callable

from . import commands, images, processes, wait
from .binaries import Binaries, pinned_versions
from .constants import CLUSTER_DOMAIN, DOCKER_REGISTRY, FILES, REGISTRY_PORT
from .plan import LabPlan

#: Upper bound for CoreDNS to answer once applied (its image pulled, its pod started).
DNS_TIMEOUT = 90.0


def start_registry(state: Path, address: str, b: Binaries, log: Callable[[str], None],
                   extra: list[images.Recipe] | None = None) -> None:
    """Publish the lab's images (and `extra`: kind's kubeadm images), then serve them read-only on
    `address` (the lab bridge, or kind's network gateway). Pushes go to a
    short-lived second registry listening on a Unix socket in the lab's private state directory:
    only the lab (root, on the host) can push; pods and the host's other users can only pull."""
    push_cfg = images.registry_config(state, push_socket(state), read_only=False)
    # Blobs only earlier image recipes used are dropped first (tags are overwritten by each
    # rebuild, so old manifests are untagged); safe while no registry serves the storage.
    commands.run([str(DOCKER_REGISTRY), "garbage-collect", "--delete-untagged", str(push_cfg)], check=False)
    publish(state, images.build_all(b, pinned_versions()["COREDNS_VERSION"], log, extra=extra), push_cfg)
    serve_cfg = images.registry_config(state, f"{address}:{REGISTRY_PORT}", read_only=True)
    processes.start(state, "registry", [str(DOCKER_REGISTRY), "serve", str(serve_cfg)])
    images.wait_registry(address)


def publish(state: Path, built: list[images.BuiltImage], push_cfg: Path | None = None) -> None:
    """Push images through a short-lived registry on the lab's private Unix socket (the served
    registry is read-only); used at `up`, and by the classroom for its single-user image."""
    push_cfg = push_cfg or images.registry_config(state, push_socket(state), read_only=False)
    processes.start(state, "registry-push", [str(DOCKER_REGISTRY), "serve", str(push_cfg)])
    try:
        images.wait_registry(push_socket(state))
        for image in built:
            images.push(image, push_socket(state))
    finally:
        processes.stop(state, "registry-push")
        push_socket(state).unlink(missing_ok=True)


def stop_registry(state: Path) -> bool:
    """Stop both registries (the push one too: a start may have been killed while pushing) and
    remove their configurations and socket; the storage, in the cache, stays for the next lab."""
    found = processes.stop(state, "registry")
    found |= processes.stop(state, "registry-push")
    push_socket(state).unlink(missing_ok=True)
    for config in ("registry.yml", "registry-push.yml"):
        (state / config).unlink(missing_ok=True)
    return found


def push_socket(state: Path) -> Path:
    return state / "run" / "registry-push.sock"


def dns_answer(plan: LabPlan) -> list[str]:
    """What kube-dns answers for the `kubernetes` Service, asked from the host."""
    return _dns_query(plan.dns_ip, f"kubernetes.default.svc.{CLUSTER_DOMAIN}")


def _dns_query(server: str, name: str, timeout: float = 1.0) -> list[str]:
    """A minimal DNS A query over UDP: the addresses in the answer (empty on error or no answer)."""
    qid = random.randrange(1 << 16)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, (server, 53))
            data = s.recv(4096)
        except OSError:
            return []
    rid, flags, _qd, an, _ns, _ar = struct.unpack("!HHHHHH", data[:12])
    if rid != qid or flags & 0x000F:
        return []
    pos = 12 + len(question) + 4
    out = []
    for _ in range(an):
        while data[pos] and data[pos] < 0xC0:  # the owner name: labels, or a pointer
            pos += data[pos] + 1
        pos += 2 if data[pos] >= 0xC0 else 1
        rtype, _cls, _ttl, length = struct.unpack("!HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == 1 and length == 4:
            out.append(socket.inet_ntoa(data[pos:pos + 4]))
        pos += length
    return out


def coredns_manifest(plan: LabPlan) -> str:
    """CoreDNS's objects for this lab: Deployment, Corefile, RBAC, the kube-dns Service."""
    return string.Template((FILES / "coredns.yaml").read_text()).substitute(
        dns_ip=plan.dns_ip, domain=CLUSTER_DOMAIN,
        image=images.coredns_image(pinned_versions()["COREDNS_VERSION"]))


def start_coredns(plan: LabPlan, state: Path, b: Binaries) -> None:
    """Apply CoreDNS and wait until kube-dns resolves the `kubernetes` Service from the host."""
    commands.kubectl(b, state, "apply", "-f", "-", stdin=coredns_manifest(plan))
    wait.until(lambda: plan.api_server_ip in dns_answer(plan), DNS_TIMEOUT, 0.5, lambda: (
        f"CoreDNS did not answer kubernetes.default.svc.{CLUSTER_DOMAIN} at {plan.dns_ip} within "
        f"{DNS_TIMEOUT:.0f} s:\n{commands.kubectl(b, state, 'get', 'pods', '-n', 'kube-system', '-o', 'wide')}"))
