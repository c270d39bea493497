"""All of the lab's kubeconfig handling: write them, merge the admin's into ~/.kube/config on request,
remove them at `down`.

Two kinds. The admin's and the control plane's (`write`) embed their certificates and name the
context `k8snb-lab`, so the admin's file can be handed to any kubectl, notebook or learner as it is.
The nodes' (`write_node`: kubelets, kube-proxy) point at certificate files under the state directory,
where those components' own certificates live and are removed with the node.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Callable

import yaml

from . import commands
from .constants import CONTEXT
from .pki import Pair
from .plan import state_dir
from .secure import write_private


def user_path(state: Path, user: str = "admin") -> Path:
    """Where `user`'s kubeconfig is kept: `kubeconfig` for the admin, `<user>.kubeconfig` otherwise."""
    return state / ("kubeconfig" if user == "admin" else f"{user}.kubeconfig")


def kubeconfig_path() -> Path:
    """The admin kubeconfig of the lab in the current state directory (`k8snb lab kubeconfig`)."""
    return user_path(state_dir())


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write(state: Path, user: str, cert: Pair, ca: Pair, server: str) -> Path:
    """`user`'s kubeconfig with its certificate embedded, context `k8snb-lab`; written 0600."""
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority-data": _b64(ca.cert)}}],
        "users": [{"name": f"{CONTEXT}-{user}", "user": {"client-certificate-data": _b64(cert.cert),
                                                         "client-key-data": _b64(cert.key)}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": f"{CONTEXT}-{user}"}}],
        "current-context": CONTEXT,
    }
    path = user_path(state, user)
    write_private(path, yaml.safe_dump(cfg, sort_keys=False))
    return path


def write_node(path: Path, server: str, ca: Pair, cert: Pair) -> Path:
    """A node component's kubeconfig at `path`, naming its certificate files; written 0600."""
    cfg = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "lab", "cluster": {"server": server, "certificate-authority": str(ca.cert)}}],
           "users": [{"name": "lab", "user": {"client-certificate": str(cert.cert), "client-key": str(cert.key)}}],
           "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}],
           "current-context": "lab"}
    write_private(path, yaml.safe_dump(cfg, sort_keys=False))
    return path


def remove(state: Path) -> None:
    """Every kubeconfig the lab wrote in `state` (the admin's, the control plane's, kube-proxy's)."""
    for path in (user_path(state), *state.glob("*.kubeconfig")):
        path.unlink(missing_ok=True)


def merge_into_default(kubectl: str, log: Callable[[str], None]) -> Path:
    """Add the lab's context to ~/.kube/config (only when asked: --merge-kubeconfig), through
    kubectl's own merge, replaced atomically and 0600 from its first byte. `down` leaves it there."""
    target = Path(os.path.expanduser("~/.kube/config"))
    target.parent.mkdir(parents=True, exist_ok=True)
    ours = kubeconfig_path()
    env = dict(os.environ, KUBECONFIG=f"{target}:{ours}" if target.exists() else str(ours))
    merged = commands.run([kubectl, "config", "view", "--flatten"], "merging the lab's kubeconfig", env=env).stdout
    write_private(target, merged)
    log(f"k8snb lab: merged context {CONTEXT} into {target}")
    return target
