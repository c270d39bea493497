"""The offline lab cluster: Kubernetes built from source, started on this machine.

`up()` starts it (simulated nodes by kwok, or real nodes as root), `down()` stops it and removes
its state, `status()` says what runs; `kubeconfig_path()` is where its kubeconfig is written.
"""
from .control import LabStatus, down, kubeconfig_path, status, up
from .plan import LabPlan

__all__ = ["LabPlan", "LabStatus", "down", "kubeconfig_path", "status", "up"]
