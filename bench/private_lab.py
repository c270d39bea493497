"""A simulated lab of a figure's own (own state directory and ports), so that a benchmark never
touches the course's lab; stopped and removed afterwards, whatever happened."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PrivateLab:
    state: Path
    kubeconfig: str
    env: dict[str, str]  # K8SNB_STATE and KUBECONFIG set: for subprocesses that talk to this lab


@contextmanager
def private_lab(port: int, etcd_port: int, prefix: str) -> Iterator[PrivateLab]:
    state = Path(tempfile.mkdtemp(prefix=prefix))
    env = dict(os.environ, K8SNB_STATE=str(state))
    cli = [sys.executable, "-m", "k8snb.cli", "lab"]
    try:
        subprocess.run([*cli, "up", "--nodes", "kwok", "--port", str(port), "--etcd-port", str(etcd_port)],
                       env=env, check=True, capture_output=True, timeout=300)
        kubeconfig = str(state / "lab" / "kubeconfig")
        yield PrivateLab(state, kubeconfig, dict(env, KUBECONFIG=kubeconfig))
    finally:
        subprocess.run([*cli, "down"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)
