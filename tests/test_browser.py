"""The HTML report in a real browser: headless Chromium loads it with no error, and every figure
is present and decoded (``naturalWidth`` > 0), with a non-blank screenshot.

Needs Chromium (Debian: ``apt-get install -y chromium``; CI installs it in .ci/run); skipped with
that reason elsewhere, except where ``DLBENCH_REQUIRE_BROWSER=1`` (CI) makes a missing Chromium an
error. The probe lives in scripts/check_report_browser.py (usable on any report).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from test_report_data import MACHINE, convergence_run, throughput_run

import dlbench as db

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "check_report_browser", ROOT / "scripts" / "check_report_browser.py"
)
checker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checker)

NO_CHROMIUM = "headless Chromium not installed (Debian: apt-get install -y chromium)"
if checker.find_chromium() is None and os.environ.get("DLBENCH_REQUIRE_BROWSER"):
    raise RuntimeError(f"DLBENCH_REQUIRE_BROWSER is set but {NO_CHROMIUM}")  # CI: never skip silently
pytestmark = [pytest.mark.browser, pytest.mark.skipif(checker.find_chromium() is None, reason=NO_CHROMIUM)]


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    """A report with every kind of section: two throughput runs side by side and a convergence run."""
    d = tmp_path_factory.mktemp("browser")
    a = throughput_run(d / "runA", "runA")
    b = throughput_run(d / "runB", "runB", scale=1.4, seed=2, machine={**MACHINE, "hostname": "otherbox"})
    c = convergence_run(d / "conv")
    path = db.report([a, b, c], format="html", path=d / "report.html")
    n_fig = path.read_text().count("<figure")
    return path, n_fig


def test_report_renders_in_chromium(report_html, tmp_path):
    path, n_fig = report_html
    assert n_fig >= 8  # roofline, bars, 2 curves, 2 sensitivity, budget, profiles
    res = checker.probe(path, screenshot=tmp_path / "shot.png")
    assert res["errors"] == [], res["errors"]
    assert res["figures"] == n_fig and len(res["images"]) == n_fig
    for im in res["images"]:
        assert im["complete"] and im["w"] > 100 and im["h"] > 100 and im["data"], im
    assert res["tables"] >= 10 and res["external"] == []
    assert res["title"].startswith("dlbench report")
    assert res.get("screenshot") and not checker.screenshot_is_blank(res["screenshot"])


def test_checker_catches_a_broken_figure(report_html, tmp_path):
    path, n_fig = report_html
    bad = tmp_path / "bad.html"
    bad.write_text(path.read_text().replace("base64,iVBOR", "base64,AAAAiVBOR", 1))
    fails = checker.check(bad, min_figures=n_fig)
    assert any("did not decode" in f for f in fails), fails
