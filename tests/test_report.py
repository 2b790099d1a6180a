"""The marketing report: `prospect demo` writes it, and a real headless Chromium shows every part of it.

Chromium is Debian's package (``/usr/bin/chromium``); the set-up installs it with apt-get when it is
missing. The screenshot is kept in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
SECTIONS = ("model", "drivers", "behaviour", "conversion", "quality", "tiers", "handover")
CHARTS = ("chart-families", "chart-importance", "chart-dependence-recency", "chart-dependence-repetition",
          "chart-dependence-channel-depth", "chart-origin", "chart-stage", "chart-calibration", "chart-gains",
          "chart-scores")
TABLES = ("metrics-table", "importance-table", "origin-table", "stage-table", "tier-table", "cutoff-table")


def _chromium() -> Path:
    """Debian's Chromium, installed on first use (the CI machine starts without it).

    Two test workers may ask at once: the lock lets one install while the other waits (apt holds dpkg's lock).
    """
    import fcntl

    with open(Path(tempfile.gettempdir()) / "prospect-tests-chromium.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _install_chromium()


def _install_chromium() -> Path:
    if not CHROMIUM.exists():
        apt = shutil.which("apt-get")
        if apt is None:
            pytest.fail("Chromium is missing and apt-get is not available to install it (Debian package 'chromium')")
        subprocess.run([apt, "update", "-qq"], check=False, capture_output=True, timeout=600)
        done = subprocess.run([apt, "install", "-y", "-qq", "chromium"], capture_output=True, text=True, timeout=1200,
                              env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        assert done.returncode == 0 and CHROMIUM.exists(), f"installing chromium failed:\n{done.stderr[-2000:]}"
    return CHROMIUM


def test_demo_ends_by_writing_the_report_and_printing_its_path(demo_run) -> None:  # noqa: ANN001
    home, output = demo_run
    flat = " ".join(output.split())  # rich wraps long lines
    match = re.search(r"report written to (\S+report\.html); logged to MLflow run ([0-9a-f]{32})", flat)
    assert match, output[-2000:]
    page = Path(match.group(1))
    assert page == (home / "report" / "report.html").resolve() and page.stat().st_size > 50_000
    html = page.read_text()
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)  # opens from disk, offline
    logged = list((home / "mlartifacts").rglob("report/report.html"))
    assert len(logged) == 1 and logged[0].read_text() == html


def test_the_report_renders_every_section_and_chart_in_chromium(demo_run) -> None:  # noqa: ANN001
    from playwright.sync_api import sync_playwright

    home, _ = demo_run
    page_path = home / "report" / "report.html"
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(_chromium()), args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"failed request {r.url}"))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        for section in SECTIONS:
            assert page.locator(f"section#{section}").is_visible(), section
            assert page.locator(f"section#{section} h2").inner_text().strip(), section
        for chart in CHARTS:
            svg = page.locator(f"#{chart} svg")
            assert svg.count() == 1 and svg.is_visible(), chart
            box = svg.bounding_box()
            assert box and box["width"] > 200 and box["height"] > 150, (chart, box)
        for table in TABLES:
            rows = page.locator(f"#{table} tbody tr")
            assert rows.count() >= 2 and page.locator(f"#{table}").is_visible(), table
        metrics = page.locator("#metrics-table").inner_text()
        assert all(name in metrics for name in ("LightGBM", "Rule score", "Logistic regression"))
        assert "out of time" in page.locator("section#model").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()
    assert not problems, problems
    assert (ARTIFACTS / "report.png").stat().st_size > 50_000
