"""The teacher's handouts, as a student opens them: every notebook executed and exported, each HTML
file loaded in an offline headless Chromium with no console error, plots drawn, the replica slider
rendered from the embedded widget state. Screenshots go to tests/artifacts/handouts/."""
from __future__ import annotations

import shutil
from pathlib import Path

import labtools
import playwright.sync_api as playwright
import pytest

import k8snb

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "tests" / "artifacts" / "handouts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Notebooks whose handouts must show at least one plot, and the one with the replica slider.
WITH_PLOTS = ("02_cni_and_pod_ips", "03_services_discovery_and_load_balancing")
WITH_SLIDER = "03_services_discovery_and_load_balancing"


@pytest.fixture(scope="module")
def built(cluster, executed):
    labtools.require_chromium(CHROMIUM)
    out, index, error = executed
    assert not error, error
    return out, index


def test_every_handout_loads_offline_with_plots_and_slider(built, cluster):
    out, index = built
    pages = sorted(p for p in out.glob("*.html") if p.name != "index.html")
    assert [p.stem[:3] for p in pages] == ["00_", "01_", "02_", "03_", "04_"]
    assert all(p.name in index.read_text() for p in pages)
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems: dict[str, list[str]] = {}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        for page_path in [index, *pages]:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.on("requestfailed", lambda r, errors=errors: errors.append(f"failed request {r.url}"))
            page.goto(page_path.as_uri(), wait_until="load")
            if page_path.stem == WITH_SLIDER:
                page.wait_for_selector(".widget-slider, .slider-container", timeout=30_000)
            else:
                page.wait_for_timeout(500)
            page.screenshot(path=str(SHOTS / f"{page_path.stem}.png"), full_page=True)
            if page_path.stem in WITH_PLOTS:
                drawn = page.evaluate("""() => [...document.querySelectorAll("img[src^='data:image/png']")]
                                          .filter(i => i.naturalWidth > 100 && i.naturalHeight > 100).length""")
                if not drawn:
                    errors.append("no plot rendered")
            if cluster.context not in page.content() and page_path != index:
                errors.append("header does not name the cluster context")
            if errors:
                problems[page_path.name] = errors
            page.close()
        browser.close()
    assert not problems, problems
    for shot in SHOTS.glob("*.png"):
        assert shot.stat().st_size > 20_000, f"{shot.name} looks blank"
    mode = "measured" if k8snb.can_carry_traffic(cluster) else "modeled"
    assert f"Traffic results: <strong>{mode}</strong>" in (out / f"{WITH_SLIDER}.html").read_text()
