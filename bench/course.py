"""Figure 5: the whole course: time to execute every notebook on the current cluster (the lab) and
export the handouts, as `make handouts` does."""
from __future__ import annotations

import json
import tempfile
import time

import k8snb
from k8snb.handouts import build_handouts


def main() -> list[dict]:
    cluster = k8snb.connect(quiet=True)
    mode = "measured" if k8snb.can_carry_traffic(cluster) else "modeled"
    with tempfile.TemporaryDirectory(prefix="k8snb-bench-handouts-") as out:
        t = time.perf_counter()
        build_handouts(output=out)
        seconds = time.perf_counter() - t
    return [{"figure": f"execute all notebooks and export handouts ({cluster.flavor}, traffic {mode})",
             "ours_s": round(seconds, 1), "alternative": "-", "alt_s": None, "ratio": None, "target": "-",
             "met": None, "note": "per-notebook times are printed by the handouts builder"}]


if __name__ == "__main__":
    for row in main():
        print(json.dumps(row))
