"""The drill's HTML report in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``make setup``) through selenium renders it with its phase
timeline and history charts, without a console error and without fetching anything.

Missing Chromium or selenium fails this test (never skips it): ``make setup`` installs them.
``UPDATE_DOCS_SCREENSHOT=1`` also writes the screenshot to ``docs/dr-drill-report.png``."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.drill.conftest import DrillDeployment

DOCS_PNG = Path(__file__).resolve().parents[2] / "docs" / "dr-drill-report.png"


def _browser() -> webdriver.Chrome:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    assert chromium and driver, "chromium and chromium-driver are missing: run `make setup` (Debian packages)"
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,2300", "--disable-background-networking"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_report_renders_in_chromium_without_console_errors(dd: DrillDeployment, tmp_path: Path) -> None:
    dd.backup_set()
    report = tmp_path / "drill.html"
    rc, _, err, out = dd.cli("admin", "drill", "--latest", "--tier", "team", "--report", str(report), "--json")
    assert rc == 0, err
    text = report.read_text()
    # self-contained: nothing to fetch (no src/href/url() to the network), no script
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//""", text)
    assert "<script" not in text and "<link" not in text
    browser = _browser()
    try:
        browser.get(report.as_uri())
        assert browser.find_element(By.ID, "verdict").text == "PASS"
        bars = browser.find_elements(By.CSS_SELECTOR, "svg#timeline rect.bar")
        assert len(bars) == len(out["phases"])
        for chart in ("chart-rto", "chart-rpo", "chart-size"):
            svg = browser.find_element(By.ID, chart)
            assert svg.size["width"] > 100 and svg.size["height"] > 100
            assert len(svg.find_elements(By.CSS_SELECTOR, "rect.bar")) == 1  # the history: this drill
        assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
        errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
        assert errors == [], errors
        png = tmp_path / "report.png"
        assert browser.save_screenshot(str(png)) and png.stat().st_size > 10_000
        if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
            shutil.copyfile(png, DOCS_PNG)
    finally:
        browser.quit()
