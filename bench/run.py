"""`make bench`: run every figure, print one markdown table, write bench/RESULTS.md.

Each figure is a module with `main() -> list[dict]` and runs alone too (`python bench/<name>.py`).
A figure that fails is reported as a row with its error, and the others still run. Rows are kept
per figure in bench/results.json, so `python bench/run.py sampling` re-measures one figure and
rewrites the table with the others' last results.
"""
from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

#: cold_start and lab_times last: they stop the course's real-nodes lab (only one can run) and
#: start it again. cold_start takes about 20 minutes: it builds everything from empty caches.
FIGURES = ("tables_synthetic", "tables_cluster", "sampling", "course", "classroom", "suite_times", "cold_start",
           "lab_times")
COLUMNS = ("figure", "ours_s", "alternative", "alt_s", "ratio", "target", "met", "note")


def _cell(value) -> str:
    if value is None or value == "":
        return "-"
    if value is True:
        return "yes"
    if value is False:
        return "**no**"
    return str(value).replace("|", "\\|")


def table(rows: list[dict]) -> str:
    head = "| figure | ours (s) | alternative | alternative (s) | ratio | target | met | note |"
    lines = [head, "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(names: list[str]) -> int:
    store = HERE / "results.json"
    kept = json.loads(store.read_text()) if store.exists() else {}
    for name in names or FIGURES:
        started = time.perf_counter()
        try:
            got = importlib.import_module(name).main()
        except Exception as exc:  # noqa: BLE001 — one broken figure must not hide the others
            traceback.print_exc()
            got = [{"figure": name, "note": f"failed: {type(exc).__name__}: {exc}"[:300]}]
        print(f"bench: {name} took {time.perf_counter() - started:.0f} s", file=sys.stderr)
        kept[name] = got
    store.write_text(json.dumps(kept, indent=1, default=str) + "\n")
    return write_results()


def write_results() -> int:
    """bench/RESULTS.md from every figure's last rows in bench/results.json."""
    kept = json.loads((HERE / "results.json").read_text())
    md = table([row for name in FIGURES for row in kept.get(name, [])])
    print(md)
    machine = f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"
    (HERE / "RESULTS.md").write_text(
        f"# Benchmark results\n\nWritten {dt.date.today().isoformat()} on {machine}, by bench/run.py. Each "
        f"figure's rows are from its last run (`python bench/run.py <figure>` re-measures one and keeps the "
        f"others' rows).\nRatios are ours / alternative (lower is better), measured in the same run.\n\n{md}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
