"""The lab's fixed names, ports and paths: what stays the same whatever `LabPlan` says.

They are fixed on purpose. `lab down` finds what a lab made on the host by these names even when
its state directory, and with it the plan, is gone; the README's tables quote them; and a learner
sees the same context and node names on every lab, as on every kind cluster.
"""
from __future__ import annotations

from pathlib import Path

#: Templates shipped inside the package: containerd's configuration, CoreDNS, kwok's stages.
FILES = Path(__file__).parent / "files"

# Kubernetes names, the same on every lab (kind's where kind has one).
CONTEXT = "k8snb-lab"
CLUSTER_DOMAIN = "cluster.local"
NODE_NAMES = ("k8snb-control-plane", "k8snb-worker", "k8snb-worker2")

# What real nodes make on the host, found again by these names.
BRIDGE = "k8snb0"
#: Host side of node i's veth pair: k8snb-veth0, k8snb-veth1 ...
VETH_PREFIX = "k8snb-veth"
#: The bridge's alias records which state directory's lab made it ("k8snb-lab:<state dir>").
ALIAS_PREFIX = "k8snb-lab:"
#: Drops packets for the lab's subnet or API port arriving on any interface but loopback and the bridge.
GUARD_CHAIN = "K8SNB-LAB-GUARD"
#: What nodes and pods may reach on the host, from the lab bridge: the API server and the
#: registry's pull side; replies to connections the host opened (kubectl exec, NodePort requests).
BRIDGE_CHAIN = "K8SNB-LAB-FROM-BRIDGE"
#: The comment on every iptables rule the lab inserts into the host's own chains.
COMMENT = "k8snb-lab"
#: Where `ip netns` pins named network namespaces (the nodes'); nsenter enters them from there.
NETNS_DIR = Path("/run/netns")
#: The CNI network's name in each node; libcni names its cache files after it.
CNI_NETWORK = "k8snb"

# Ports inside the lab (the API server's and etcd's are the plan's: --port, --etcd-port).
#: The image registry, on the lab bridge's host address.
REGISTRY_PORT = 5000
#: kubelet's API on the node's address, its healthz on the node's loopback.
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
#: kube-proxy's health on the node's address, its metrics on the node's loopback.
KUBE_PROXY_HEALTHZ_PORT = 10256
KUBE_PROXY_METRICS_PORT = 10249

# Host paths real nodes use or write into.
#: Debian's docker-registry serves the lab's images.
DOCKER_REGISTRY = Path("/usr/bin/docker-registry")
#: Debian's containernetworking-plugins.
CNI_PLUGINS = Path("/usr/lib/cni")
#: Host-wide directories containerd and libcni write into whatever their configuration says.
SHIM_SOCKETS = Path("/run/containerd/s")
#: kubelet's device-plugin registry socket: a fixed path whatever --root-dir says, so the three
#: kubelets (one mount namespace) take turns binding it; see realnodes._start_kubelet.
DEVICE_PLUGIN_SOCKET = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
CNI_CACHE = Path("/var/lib/cni/results")
#: The longest Unix socket path Linux accepts (sun_path), which containerd checks for its sockets.
SOCKET_PATH_MAX = 104
