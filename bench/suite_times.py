"""The test suite's own figures: README's `make test` with the lab up and caches warm, `make check`
warm, and `.ci/run` from a fresh clone with every cache empty, each with its 15 slowest tests.

    python bench/suite_times.py test       # make test here, the lab running (about 6 minutes)
    python bench/suite_times.py check      # make check here (CI=true; about 40 minutes)
    python bench/suite_times.py ci-cold    # .ci/run in a fresh clone, empty caches (about an hour)

`ci-cold` empties what bench/cold_start.py empties (K8SNB_CACHE, the lab's state, Go's, pip's and
npm's caches, all in a new directory) and stops a running course lab first (one real lab per
machine). With K8SNB_BENCH_NO_TOOLS=1 it also removes Debian's chromium and docker.io first, as on
a machine that never ran the course: `make test` and `.ci/check` install them again. Each figure
keeps the rows of the others in bench/results.json (`python bench/run.py suite_times` runs `test`).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cold_start import ROOT, cold_env

#: Issue 22's targets: `make test` on 2 cores with the lab up, `.ci/run` cold and warm.
TARGETS = {"test": 480, "check": 30 * 60, "ci-cold": 45 * 60}
LABELS = {"test": "`make test`, lab up, caches warm (README's test command)",
          "check": "`make check`, lab up, caches warm (CI=true)",
          "ci-cold": "`.ci/run` from a fresh clone, every cache empty (CI=true)"}
_SLOW = re.compile(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)$", re.MULTILINE)


def _short(test: str) -> str:
    """tests/course/test_x.py::test_y[a/b] -> test_x.py::test_y[a/b] (ids may hold slashes too)."""
    path, _, name = test.partition("::")
    return f"{path.rsplit('/', 1)[-1]}::{name}"


def slowest(log: str, n: int = 15) -> list[tuple[float, str]]:
    """The slowest test phases pytest printed (--durations), over every pytest run in `log`."""
    found = [(float(s), f"{phase} {_short(test)}") for s, phase, test in _SLOW.findall(log)]
    return sorted(found, reverse=True)[:n]


def facts(log: str) -> str:
    """Each pytest run's summary line, the notebook executions it counted, and .ci/run's step times."""
    parts = re.findall(r"^=* ?(\d+ passed[^\n=]*)", log, re.MULTILINE)
    runs = re.findall(r"^notebook executions in this run: (.*)$", log, re.MULTILINE)
    steps = re.findall(r"^=== (.+) \((\d+)s\)$", log, re.MULTILINE)
    out = [f"pytest: {'; '.join(parts)}"] if parts else []
    if runs:
        out.append(f"notebook executions, first run: {runs[0]}")
    if steps:
        out.append("steps started at: " + "; ".join(f"{name[:40]} {s}s" for name, s in steps))
    return ". ".join(out)


def _run(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, str, int]:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=2 * 3600)
    seconds = time.perf_counter() - started
    log.write_text(proc.stdout)
    return seconds, proc.stdout, proc.returncode


def measure(kind: str) -> dict:
    env = dict(os.environ, CI=os.environ.get("CI", "true") if kind != "test" else os.environ.get("CI", ""))
    if kind == "ci-cold":
        subprocess.run(["make", "lab-down"], cwd=ROOT, capture_output=True, timeout=300)
        if os.environ.get("K8SNB_BENCH_NO_TOOLS"):
            subprocess.run(["apt-get", "remove", "-y", "-qq", "chromium", "docker.io"], capture_output=True,
                           timeout=600)
        base = Path(tempfile.mkdtemp(prefix="k8snb-cold-ci-"))
        subprocess.run(["git", "clone", "-q", str(ROOT), str(base / "k8snb")], check=True)
        env = {**cold_env(base), "CI": "true"}
        cwd, argv = base / "k8snb", [".ci/run"]
    else:
        base, cwd, argv = Path(tempfile.mkdtemp(prefix="k8snb-suite-")), ROOT, ["make", kind]
    log = base / f"{kind}.log"
    seconds, out, code = _run(argv, cwd, env, log)
    print(out[-4000:], file=sys.stderr)
    slow = "; ".join(f"{s:.0f} s {name}" for s, name in slowest(out))
    note = f"{'passed' if code == 0 else f'FAILED (exit {code}), log {log}'}. {facts(out)}. 15 slowest: {slow}"
    if kind == "ci-cold" and code == 0 and not os.environ.get("K8SNB_BENCH_KEEP"):
        shutil.rmtree(base, ignore_errors=True)
    return {"figure": LABELS[kind], "ours_s": round(seconds, 1), "target": f"<= {TARGETS[kind]} s",
            "met": code == 0 and seconds <= TARGETS[kind], "note": note}


def main(kinds: list[str] | None = None) -> list[dict]:
    """Measure `kinds` (default: test) and return them with the other kinds' last rows."""
    store = Path(__file__).with_name("results.json")
    kept = {row["figure"]: row for row in json.loads(store.read_text()).get("suite_times", [])} \
        if store.exists() else {}
    for kind in kinds or ["test"]:
        row = measure(kind)
        kept[row["figure"]] = row
    return [kept[LABELS[k]] for k in LABELS if LABELS[k] in kept]


if __name__ == "__main__":
    import run  # the table: RESULTS.md with this figure's rows beside the others' last ones

    rows = main(sys.argv[1:])
    store = Path(__file__).with_name("results.json")
    stored = json.loads(store.read_text()) if store.exists() else {}
    stored["suite_times"] = rows
    store.write_text(json.dumps(stored, indent=1, default=str) + "\n")
    sys.exit(run.write_results())
