"""Figure 4: the lab's own times: the cold build (recorded by lab/build.sh when it happened), and a
warm `k8snb lab up` to Ready and `k8snb lab down`, for simulated and (as root) real nodes.

Runs its own lab in a private state directory and ports; with real nodes it needs that no other
real lab runs (the lab's bridge and namespaces have fixed names), and says so instead of waiting.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from k8snb.lab.binaries import cache_dir, pinned_versions

PORT, ETCD_PORT = 6843, 12779
#: Targets from the issues: a warm lab is Ready in under 30 s (kwok) / 60 s (real nodes, CoreDNS).
TARGETS = {"kwok": 30.0, "real": 60.0}


def cold_build() -> dict | None:
    """The build times lab/build.sh recorded (seconds per component)."""
    path = cache_dir() / pinned_versions()["K8S_VERSION"] / "build-times.tsv"
    if not path.exists():
        return None
    latest: dict[str, int] = {}
    for line in path.read_text().splitlines():
        name, seconds, *_ = line.split("\t")
        latest[name] = int(seconds)
    return latest


def up_down(nodes: str, state: str | None = None) -> tuple[float, float, float]:
    """Wall time of `lab up` (process), its own 'start to Ready' figure, and `lab down`.

    With `state`, the lab there (already running) is stopped first and left running afterwards:
    that is how a real-nodes lab is timed while it is the course's lab (only one can run).
    """
    own = state is None
    state = state or tempfile.mkdtemp(prefix="k8snb-bench-lab-")
    env = dict(os.environ, K8SNB_STATE=state)
    env.pop("KUBECONFIG", None)
    cli = [sys.executable, "-m", "k8snb.cli", "lab"]
    ports = ["--port", str(PORT), "--etcd-port", str(ETCD_PORT)] if own else []

    def down() -> float:
        t = time.perf_counter()
        subprocess.run([*cli, "down"], env=env, capture_output=True, timeout=300)
        return time.perf_counter() - t

    stopped = None if own else down()
    t = time.perf_counter()
    up = subprocess.run([*cli, "up", "--nodes", nodes, *ports], env=env, capture_output=True, text=True,
                        timeout=600)
    wall = time.perf_counter() - t
    try:
        if up.returncode != 0:
            raise RuntimeError(up.stderr.strip()[-300:])
        ready = float(up.stdout.split("start to Ready")[1].split("s")[0])
    finally:
        if own:
            stopped = down()
    return wall, ready, stopped


def main() -> list[dict]:
    rows = []
    build = cold_build()
    if build:
        rows.append({"figure": f"cold build of {len(build)} components from source ({os.cpu_count()} cores)",
                     "ours_s": sum(build.values()), "alternative": "-", "alt_s": None, "ratio": None,
                     "target": "fits CI's 90 min", "met": sum(build.values()) < 90 * 60,
                     "note": ", ".join(f"{k} {v}s" for k, v in build.items())})
    modes = ["kwok"] + (["real"] if os.geteuid() == 0 else [])
    for nodes in modes:
        state = None
        if nodes == "real" and Path("/run/netns/k8snb-control-plane").exists():
            from k8snb.lab import status

            st = status()
            if not (st.running and st.plan["nodes_mode"] == "real"):
                rows.append({"figure": "warm lab up, real nodes", "note": "skipped: a real lab of another "
                             "state directory runs (only one can)"})
                continue
            state = str(Path(st.state_dir).parent)
        wall, ready, down = up_down(nodes, state)
        rows.append({"figure": f"warm `k8snb lab up --nodes {nodes}` to Ready", "ours_s": round(ready, 1),
                     "alternative": "-", "alt_s": None, "ratio": None, "target": f"< {TARGETS[nodes]:.0f}",
                     "met": ready < TARGETS[nodes],
                     "note": f"whole command {wall:.1f} s; `lab down` {down:.1f} s"})
    return rows


if __name__ == "__main__":
    for row in main():
        print(json.dumps(row))
