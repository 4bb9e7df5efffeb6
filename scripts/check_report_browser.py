#!/usr/bin/env python3
"""Open a dlbench HTML report in headless Chromium and check that it renders.

    python scripts/check_report_browser.py results/latest/report.html [--screenshot shot.png]

Checks: the page loads with no JavaScript error and no failed resource; every ``<img>`` of the
report is present, complete and decoded (``naturalWidth`` > 0, i.e. the embedded PNG is valid);
the figure count is as expected (``--min-figures``); a screenshot is not blank. The report is
copied into a temporary folder with a small probe script appended before ``</body>`` (the report
itself has no scripts); Chromium runs with ``--dump-dom`` and a virtual-time budget so that the
probe's results, written into the DOM after the ``load`` event, come back on stdout.

Exit status 0 when every check passes, 1 otherwise (each failure printed), 2 when no Chromium
is installed (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

PROBE = """
<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target || {};
    if (t.tagName) {
      errors.push('resource failed: ' + t.tagName + ' ' + String(t.src || t.href).slice(0, 80));
    }
    else { errors.push('js error: ' + e.message); }
  }, true);
  window.addEventListener('load', function () {
    var imgs = Array.prototype.slice.call(document.images).map(function (im) {
      return {alt: im.alt, complete: im.complete, w: im.naturalWidth, h: im.naturalHeight,
              data: im.src.slice(0, 22) === 'data:image/png;base64,'};
    });
    var out = {images: imgs, figures: document.querySelectorAll('figure').length,
               tables: document.querySelectorAll('table').length, title: document.title,
               errors: errors, external: Array.prototype.slice.call(
                 document.querySelectorAll('[src],[href]')).map(function (e) {
                   return e.getAttribute('src') || e.getAttribute('href'); }).filter(function (u) {
                   return /^(https?:)?\\/\\//.test(u); })};
    var pre = document.createElement('pre');
    pre.id = 'dlbench-probe';
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  });
})();
</script>
"""


def find_chromium() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env and shutil.which(env):
        return shutil.which(env)
    for c in CANDIDATES:
        p = shutil.which(c)
        if p:
            return p
    return None


def _base_args(chrome: str, profile: str) -> list[str]:
    args = [
        chrome,
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--allow-file-access-from-files",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return args


def probe(
    html_path: str | Path,
    chrome: str | None = None,
    timeout: float = 90.0,
    screenshot: str | Path | None = None,
) -> dict:
    """Load the report in headless Chromium; return the probe's findings (see module docstring)."""
    chrome = chrome or find_chromium()
    if chrome is None:
        raise FileNotFoundError("no Chromium found (apt-get install -y chromium)")
    src = Path(html_path).read_text(encoding="utf-8")
    if "</body>" not in src:
        return {"errors": ["the report has no </body>: truncated HTML"], "images": [], "figures": 0}
    with tempfile.TemporaryDirectory() as d:
        page = Path(d) / "page.html"
        page.write_text(src.replace("</body>", PROBE + "</body>", 1), encoding="utf-8")
        profile = str(Path(d) / "profile")
        cmd = _base_args(chrome, profile) + ["--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        m = re.search(r'<pre id="dlbench-probe">(.*?)</pre>', r.stdout, re.S)
        if not m:
            return {
                "errors": [f"the probe did not run (chromium exit {r.returncode}): {r.stderr[-400:]}"],
                "images": [],
                "figures": 0,
            }
        import html as _html

        out = json.loads(_html.unescape(m.group(1)))
        out["console"] = [line for line in r.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
        if screenshot is not None:
            shot_cmd = _base_args(chrome, profile) + [
                "--hide-scrollbars",
                "--window-size=1400,2400",
                f"--screenshot={screenshot}",
                Path(html_path).resolve().as_uri(),
            ]
            subprocess.run(shot_cmd, capture_output=True, text=True, timeout=timeout)
            out["screenshot"] = str(screenshot) if Path(screenshot).exists() else ""
        return out


def screenshot_is_blank(path: str | Path) -> bool:
    """True when the PNG has (almost) a single colour."""
    try:
        from matplotlib.image import imread

        a = imread(str(path))
    except Exception:  # noqa: BLE001
        return True
    return float(a.reshape(-1, a.shape[-1]).std(axis=0).max()) < 1e-3


def check(
    html_path: str | Path,
    min_figures: int = 1,
    screenshot: str | Path | None = None,
    chrome: str | None = None,
) -> list[str]:
    """The list of failures (empty: the report renders correctly)."""
    res = probe(html_path, chrome=chrome, screenshot=screenshot)
    fails = list(res.get("errors", []))
    fails += [f"console: {c}" for c in res.get("console", []) if "error" in c.lower()]
    imgs = res.get("images", [])
    if res.get("figures", 0) < min_figures:
        fails.append(f"expected at least {min_figures} figures, found {res.get('figures', 0)}")
    if len(imgs) < res.get("figures", 0):
        fails.append(f"{res.get('figures', 0)} figures but only {len(imgs)} images")
    for i, im in enumerate(imgs):
        if not (im.get("complete") and im.get("w", 0) > 0 and im.get("h", 0) > 0):
            fails.append(f"image {i} ({im.get('alt', '')[:60]!r}) did not decode: {im}")
        if not im.get("data"):
            fails.append(f"image {i} is not an embedded PNG (the report must work offline)")
    if res.get("external"):
        fails.append(f"external references (the report must be self-contained): {res['external'][:5]}")
    if screenshot is not None:
        if not res.get("screenshot"):
            fails.append("no screenshot was written")
        elif screenshot_is_blank(res["screenshot"]):
            fails.append("the screenshot is blank")
    return fails


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report")
    ap.add_argument("--min-figures", type=int, default=1)
    ap.add_argument("--screenshot")
    args = ap.parse_args(argv)
    if find_chromium() is None:
        print("no Chromium installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    fails = check(args.report, args.min_figures, args.screenshot)
    for f in fails:
        print("FAIL:", f)
    if not fails:
        print(f"ok: {args.report} renders in headless Chromium")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
