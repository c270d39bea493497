"""The notebooks are committed clean: no outputs, no execution counts (executed copies are handouts)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_notebooks_exist():
    assert len(NOTEBOOKS) == 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code cells"
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count") is not None]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs or execution counts; clear them before committing"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name} carries saved widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_ends_with_cleanup_and_has_a_summary(path):
    nb = json.loads(path.read_text())
    sources = ["".join(c["source"]) for c in nb["cells"]]
    assert "k8snb.cleanup(cluster)" in sources[-1], f"{path.name} does not end with the cleanup cell"
    assert any(s.startswith("## What this run shows") for s in sources), f"{path.name} has no summary"
    # A modeled run must not be called measured: no heading claims either for the whole notebook.
    assert not any(s.startswith("## What you measured") for s in sources)
    assert any("exercises.check_" in s for s in sources), f"{path.name} has no exercise check"
