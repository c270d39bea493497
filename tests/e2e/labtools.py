"""Shared by the real-node tests: the running lab, driven with its own kubectl as a learner would."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from k8snb.lab import binaries
from k8snb.lab.plan import LabPlan


class RunningLab:
    """The real lab under test: its plan, and kubectl with its admin kubeconfig."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.plan = LabPlan.load(state / "plan.json")
        cached = binaries.bin_dir(binaries.pinned_versions()["K8S_VERSION"]) / "kubectl"
        self.kubectl_bin = os.environ.get("KUBECTL") or (str(cached) if cached.exists() else shutil.which("kubectl"))

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True,
                timeout: float = 200) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.kubectl_bin, f"--kubeconfig={self.state / 'kubeconfig'}", *args],
                              input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    def json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def pods(self, *args: str) -> list[dict]:
        return self.json("get", "pods", *args)["items"]


def ip_json(*args: str) -> list[dict]:
    """`ip -j ...` on the host, parsed."""
    return json.loads(subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout or "[]")


def require_chromium(path: str) -> None:
    """The browser tests need Debian's Chromium, which `make test` installs. Missing, they fail
    (never a silent skip), unless the run opted out with K8SNB_SKIP_BROWSER=1."""
    import pytest

    if Path(path).exists():
        return
    if os.environ.get("K8SNB_SKIP_BROWSER"):
        pytest.skip("K8SNB_SKIP_BROWSER is set: browser tests left out")
    pytest.fail("Chromium is missing: `make test` installs Debian's chromium (apt-get install chromium); "
                "set K8SNB_SKIP_BROWSER=1 to leave the browser tests out")
