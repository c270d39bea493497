"""The offline lab cluster: Kubernetes built from source, started on this machine.

`up()` starts it (simulated nodes by kwok, or real nodes as root; a routed or flat network), `down()`
stops it and removes its state, `status()` says what runs; `kubeconfig_path()` is where its
kubeconfig is written. `address_plan()` gives its addresses, and `node_routes()`, `node_links()` and
`node_iptables()` show a real node's data path from inside its network namespace.
"""
from .control import LabStatus, down, status, up
from .inspect import address_plan, node_iptables, node_links, node_routes
from .kubeconfig import kubeconfig_path
from .plan import LabPlan

__all__ = ["LabPlan", "LabStatus", "address_plan", "down", "kubeconfig_path", "node_iptables", "node_links",
           "node_routes", "status", "up"]
