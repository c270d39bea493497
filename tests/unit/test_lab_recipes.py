"""The lab's build recipes agree with what the lab runs: CoreDNS is built with exactly the plugins
the lab's and kubeadm's Corefiles use, the build script knows every component `k8snb lab up` asks it for."""
from __future__ import annotations

import re
import subprocess

import yaml

from k8snb.lab import binaries
from k8snb.lab.constants import FILES


def _corefile_plugins() -> set[str]:
    docs = yaml.safe_load_all((FILES / "coredns.yaml").read_text())
    corefile = next(d for d in docs if d and d["kind"] == "ConfigMap")["data"]["Corefile"]
    plugins, depth = set(), 0
    for line in corefile.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if depth == 1 and words[0] != "}":
            plugins.add(words[0])
        depth += line.count("{") - line.count("}")
    return plugins


#: What kubeadm's Corefile (kind's clusters) adds to the lab's: cmd/kubeadm/app/phases/addons/dns.
KUBEADM_EXTRA = {"loop", "forward"}


def test_coredns_is_built_with_the_corefiles_plugins_only():
    built = [p.split(":", 1)[0] for p in binaries.pinned_versions()["COREDNS_PLUGINS"].split(",")]
    assert set(built) == _corefile_plugins() | KUBEADM_EXTRA
    assert len(built) == len(set(built))


def test_build_script_knows_every_component_the_lab_asks_for():
    script = (binaries.recipes_dir() / "build.sh").read_text()
    order = re.search(r"^ORDER=\(([^)]*)\)", script, re.M).group(1).split()
    wanted = binaries.CONTROL_PLANE + binaries.KWOK + binaries.REAL_NODES + binaries.KIND
    assert set(wanted) == set(order)


def test_build_script_refuses_an_unknown_component(tmp_path):
    proc = subprocess.run(["bash", str(binaries.recipes_dir() / "build.sh"), "no-such-thing"],
                          env={"PATH": "/usr/local/go/bin:/usr/bin:/bin", "K8SNB_CACHE": str(tmp_path),
                               "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "unknown component 'no-such-thing'" in proc.stderr
