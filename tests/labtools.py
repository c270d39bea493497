"""Shared by the tests: the running lab, driven with its own kubectl as a learner would, and the
count of notebook executions the suite prints at its end."""
from __future__ import annotations

import collections
import functools
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from k8snb.lab import binaries
from k8snb.lab.plan import LabPlan


#: Notebook name -> executions in this pytest run (the suite prints it; `make test` allows one each).
NOTEBOOK_RUNS: collections.Counter[str] = collections.Counter()


def count_notebook_run(path: Path | str, times: int = 1) -> None:
    """Record executions made outside this process (in a pod, by nbconvert, in a browser)."""
    NOTEBOOK_RUNS[Path(path).stem] += times


def count_notebook_runs() -> None:
    """Count every in-process execution: they all go through the course's one runner."""
    from k8snb import handouts

    if getattr(handouts.run_notebook, "counted", False):
        return
    run = handouts.run_notebook

    @functools.wraps(run)
    def counted(nb, path, *args, **kwargs):
        count_notebook_run(path)
        return run(nb, path, *args, **kwargs)

    counted.counted = True
    handouts.run_notebook = counted


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


def leftovers(state: Path, node_names: tuple[str, ...]) -> list[str]:
    """What of a real-nodes lab is still on the host: namespaces, links, routes, iptables and
    ip6tables rules, mounts, processes and cgroups. Empty when `lab down` removed everything."""
    found = []
    netns = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    found += [f"netns {n}" for n in sorted(set(node_names) & netns)]
    found += [f"link {link['ifname']}" for link in ip_json("link", "show")
              if link["ifname"].startswith(("k8snb", "cni0"))]
    found += [f"route {r.get('dst')} via {r.get('gateway', r.get('type', '?'))}" for r in ip_json("route", "show")
              if r.get("dev", "").startswith("k8snb") or r.get("dst", "").startswith(("10.244.", "10.96.", "172.29."))]
    for tool in ("iptables-save", "ip6tables-save"):
        saved = subprocess.run([tool], capture_output=True, text=True, check=True).stdout
        found += [f"{tool}: {line}" for line in saved.splitlines() if "k8snb" in line.lower() or "KUBE-" in line]
    found += [f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if str(state) in line]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(state) in cmdline:
                found.append(f"process {proc.name}: {cmdline[:120]}")
    found += [f"cgroup {p}" for node in node_names for p in Path("/sys/fs/cgroup").glob(f"*/{node}")]
    return found


BUILTIN_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})


def firewall_rules() -> dict[tuple[str, str], list[str]]:
    """(tool, table) -> the '-A' rules and ':chain' names of iptables-save and ip6tables-save."""
    found: dict[tuple[str, str], list[str]] = {}
    for tool in ("iptables", "ip6tables"):
        table = ""
        for line in subprocess.run([f"{tool}-save"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith("-A "):
                found.setdefault((tool, table), []).append(line)
            elif line.startswith(":"):
                found.setdefault((tool, table), []).append(":" + line[1:].split()[0])
    return found


def remove_rules_added_since(before: dict[tuple[str, str], list[str]]) -> list[str]:
    """Delete the rules, then the chains, that appeared since `before` (a Docker engine a test started
    leaves its MASQUERADE and FORWARD rules when it stops; they would rewrite the next test's
    traffic). Returns what was removed."""
    removed = []
    for (tool, table), lines in firewall_rules().items():
        old = set(before.get((tool, table), []))
        for rule in reversed([line for line in lines if line.startswith("-A ") and line not in old]):
            subprocess.run([tool, "-t", table, "-D", *shlex.split(rule[3:])], check=False)
            removed.append(f"{tool} -t {table} {rule}")
        for chain in [line[1:] for line in lines if line.startswith(":") and line not in old]:
            if chain not in BUILTIN_CHAINS:
                subprocess.run([tool, "-t", table, "-F", chain], check=False)
                subprocess.run([tool, "-t", table, "-X", chain], check=False)
                removed.append(f"{tool} -t {table} chain {chain}")
    return removed
