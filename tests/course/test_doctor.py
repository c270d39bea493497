"""`k8snb doctor`: passes on the lab; against an unreachable context exits non-zero with fixes."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.cluster


def doctor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "k8snb.cli", "doctor", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_doctor_passes_on_the_test_cluster(cluster):
    out = doctor(env=dict(os.environ))
    assert out.returncode == 0, out.stdout + out.stderr
    assert " NO " not in out.stdout
    for check in ("API reachable", "permission: create pods/exec in default", "pods carry traffic"):
        assert check in out.stdout


def test_doctor_on_an_unreachable_context_fails_with_a_fix(tmp_path):
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "c", "user": "u"}}]}))
    out = doctor(env=dict(os.environ, KUBECONFIG=str(kubeconfig)))
    assert out.returncode == 1
    assert "NO" in out.stdout and "cannot reach the Kubernetes API" in out.stdout
    assert "start the lab" in out.stdout
