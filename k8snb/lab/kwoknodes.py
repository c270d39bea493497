"""Simulated nodes (`k8snb lab up --nodes kwok`): no root, no packet flows.

kwok runs beside the control plane and plays kubelet for the Node objects the lab registers through
the API: their pods get an address from the node's podCIDR and become Ready. Everything lives in
etcd or in the kwok process, so undoing it is stopping kwok (and, with the control plane, etcd).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import api, binaries, commands
from .addons import coredns_manifest
from .binaries import Binaries
from .constants import FILES
from .kubeconfig import user_path
from .plan import LabPlan
from .steps import Context, Step, process_step


def node_manifest(plan: LabPlan, name: str, ip: str, version: str) -> dict:
    """A Node object kwok will manage (its annotation), labelled and tainted as kind's nodes are."""
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


def _kwok(ctx: Context) -> list[str]:
    """kwok, managing only the nodes annotated as the lab's, handing out pod IPs from the pod range."""
    return [
        ctx.b["kwok"], f"--kubeconfig={user_path(ctx.state, 'kwok')}", f"--config={FILES / 'kwok-stages.yaml'}",
        "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--node-lease-duration-seconds=40", f"--cidr={ctx.plan.pod_cidr}",
        f"--node-ip={ctx.plan.node_ips()[ctx.plan.node_names[0]]}",
    ]


def _register_nodes(ctx: Context) -> None:
    for name, ip in ctx.plan.node_ips().items():
        api.request(ctx.plan, ctx.state, "POST", "/api/v1/nodes", node_manifest(ctx.plan, name, ip, ctx.b.version))


def _coredns(ctx: Context) -> None:
    """The same kube-dns Service and CoreDNS Deployment as on real nodes (its pods are simulated),
    so that the objects a learner lists match kind's and EKS's."""
    commands.kubectl(ctx.b, ctx.state, "apply", "-f", "-", stdin=coredns_manifest(ctx.plan))


class KwokNodes:
    """The simulated-nodes backend (see nodes.NodeBackend)."""

    mode = "kwok"
    prepares = "binaries"

    def provision(self, plan: LabPlan, state: Path, version: str | None, rebuild: bool,
                  log: Callable[[str], None]) -> Binaries:
        return binaries.ensure(binaries.CONTROL_PLANE + binaries.KWOK, version=version, rebuild=rebuild, log=log)

    def apiserver_flags(self, plan: LabPlan) -> list[str]:
        # The API server's own endpoint would be 127.0.0.1, which Endpoints validation rejects;
        # with simulated nodes no pod talks to it through the Service anyway.
        return ["--advertise-address=" + plan.node_ips()[plan.node_names[0]], "--endpoint-reconciler-type=none"]

    def host_steps(self) -> list[Step]:
        return []

    def node_steps(self) -> list[Step]:
        return [process_step("kwok", _kwok), Step("simulated nodes registered", _register_nodes)]

    def node_log(self, node: str) -> str:
        return "kwok"

    def addon_steps(self) -> list[Step]:
        return [Step("CoreDNS objects (simulated pods)", _coredns)]

    def health(self, plan: LabPlan, state: Path) -> list[str]:
        return []


KWOK = KwokNodes()
