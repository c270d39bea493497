"""What `up` asks of a kind of node, so that it never branches on which kind it starts.

Two backends implement `NodeBackend`: `kwoknodes.KWOK` (simulated nodes, no root) and
`realnodes.REAL` (network namespaces with containerd, kubelet and kube-proxy, as root). Each adds
its own named steps around the shared control plane, and `down` undoes the same steps.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from . import kwoknodes, realnodes
from .binaries import Binaries
from .plan import LabPlan
from .steps import Step


class NodeBackend(Protocol):
    #: LabPlan.nodes_mode
    mode: str
    #: What `provision` made ready, for the Ready line's "before that, ...".
    prepares: str

    def provision(self, plan: LabPlan, state: Path, version: str | None, rebuild: bool,
                  log: Callable[[str], None]) -> Binaries:
        """Check the host and make every binary (and image) ready; nothing on the host changes yet."""

    def apiserver_flags(self, plan: LabPlan) -> list[str]:
        """kube-apiserver's flags that depend on the nodes: the address it advertises."""

    def host_steps(self) -> list[Step]:
        """Before the control plane: what the nodes need on the host (a network, a registry)."""

    def node_steps(self) -> list[Step]:
        """Once the API serves: the nodes, registered and given their pod network."""

    def node_log(self, node: str) -> str:
        """The process whose log tells why `node` is not Ready."""

    def addon_steps(self) -> list[Step]:
        """Once the nodes are Ready: CoreDNS."""

    def health(self, plan: LabPlan, state: Path) -> list[str]:
        """Problems beyond the API's own view (the registry, DNS), for `lab status`."""


def backend(mode: str) -> NodeBackend:
    """The backend for LabPlan.nodes_mode ('kwok' or 'real')."""
    return {"kwok": kwoknodes.KWOK, "real": realnodes.REAL}[mode]
