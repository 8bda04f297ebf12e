"""The planner dashboard in a real browser: headless Debian Chromium driven by selenium.

Starts the whole demo (scripts/demo.sh: worker, simulator, dashboard on the test broker),
opens the page with the system chromedriver (no browser download), waits until the store-load
table and the backlog chart show live numbers, saves a screenshot, then stops the demo with
SIGINT (what Ctrl-C sends) and checks it stopped everything.

Needs `chromium` and `chromium-driver` (Debian): `bash scripts/install-browser.sh` installs
them; without them the test skips and says so. STOCKROUTE_SCREENSHOT=path also writes the
screenshot there, STOCKROUTE_SCREENSHOT_DELAY=seconds waits that long first (docs/dashboard.png:
STOCKROUTE_SCREENSHOT=docs/dashboard.png STOCKROUTE_SCREENSHOT_DELAY=60).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import http_status, port_open

LOCATION_ID = re.compile(r"^(ST|WH|SUP|MP)-\d+$")


def _browser_paths() -> tuple[str, str]:
    chromium = next(
        (p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
    )
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    if chromium is None or driver is None:
        pytest.skip(
            "headless browser test needs Debian's chromium and chromium-driver: "
            "run `bash scripts/install-browser.sh` (apt-get install -y chromium chromium-driver)"
        )
    return chromium, driver


def _driver(chromium: str, driver: str, profile: Path):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1600,2400",
    ):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.set_window_size(1600, 2400)
    d.set_page_load_timeout(60)
    return d


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").strip())
    except ValueError:
        return None


def _page_state(d) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What the page shows now: headers, store-load rows, routed metric, chart size."""
    from selenium.webdriver.common.by import By

    state: dict[str, object] = {}
    state["headers"] = [h.text for h in d.find_elements(By.CSS_SELECTOR, "h1, h2, h3")]
    tables = d.find_elements(By.CSS_SELECTOR, ".st-key-store_load_table")
    rows: list[dict[str, str]] = []
    if tables:
        # st.dataframe draws on a canvas; its accessible table mirror holds the cell text
        heads = [
            th.get_attribute("textContent") or ""
            for th in tables[0].find_elements(By.CSS_SELECTOR, "th")
        ]
        cells = [
            td.get_attribute("textContent") or ""
            for td in tables[0].find_elements(By.CSS_SELECTOR, "td")
        ]
        if heads:
            rows = [
                dict(zip(heads, cells[i : i + len(heads)], strict=False))
                for i in range(0, len(cells) - len(heads) + 1, len(heads))
            ]
    state["store_rows"] = rows
    metrics = d.find_elements(By.CSS_SELECTOR, ".st-key-network_overview [data-testid=stMetric]")
    state["metrics"] = {
        (m.find_element(By.CSS_SELECTOR, "[data-testid=stMetricLabel]").text.strip()): (
            m.find_element(By.CSS_SELECTOR, "[data-testid=stMetricValue]").text.strip()
        )
        for m in metrics
        if m.find_elements(By.CSS_SELECTOR, "[data-testid=stMetricValue]")
    }
    charts = d.find_elements(By.CSS_SELECTOR, ".st-key-backlog_chart")
    state["chart"] = None
    if charts:
        svgs = charts[0].find_elements(By.CSS_SELECTOR, "svg.marks, canvas.marks, svg, canvas")
        big = [s for s in svgs if s.size["height"] > 100 and s.size["width"] > 200]
        state["chart"] = big[0].size if big else None
        state["chart_text"] = charts[0].get_attribute("textContent") or ""
    return state


def _live(state: dict[str, object]) -> bool:
    headers = " ".join(state["headers"])  # type: ignore[arg-type]
    rows = state["store_rows"]
    assert isinstance(rows, list)
    located = [r for r in rows if LOCATION_ID.match(r.get("location", "").strip())]
    busy = [r for r in located if (_number(r.get("open orders", "")) or 0) > 0]
    metrics = state["metrics"]
    assert isinstance(metrics, dict)
    routed = _number(metrics.get("Orders routed (1 h)", ""))
    return (
        "Store load" in headers
        and "Backlog over time" in headers
        and bool(located)
        and (bool(busy) or (routed or 0) > 0)
        and state["chart"] is not None
    )


@pytest.mark.e2e
@pytest.mark.timeout(480)
def test_dashboard_shows_live_store_load_and_backlog(demo_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    chromium, driver = _browser_paths()
    demo = demo_factory(duration=None)
    demo.wait_running(timeout=240)
    assert http_status(demo.url) == 200

    d = _driver(chromium, driver, tmp_path / "chromium-profile")
    shot = tmp_path / "dashboard.png"
    try:
        d.get(demo.url)
        deadline = time.monotonic() + 180
        state: dict[str, object] = {}
        while time.monotonic() < deadline:
            try:
                state = _page_state(d)
            except Exception as exc:  # noqa: BLE001 - Streamlit re-renders under our feet
                state = {"error": repr(exc)}
            if "error" not in state and _live(state):
                break
            assert demo.proc.poll() is None, f"demo stopped early:\n{demo.logs()}"
            time.sleep(2)
        else:
            d.save_screenshot(str(shot))
            raise AssertionError(f"no live numbers on the page: {state}\n{demo.logs()}")
        # one more refresh so the chart has a few points (longer for a docs screenshot)
        time.sleep(float(os.environ.get("STOCKROUTE_SCREENSHOT_DELAY", "4")))
        d.save_screenshot(str(shot))
        if os.environ.get("STOCKROUTE_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["STOCKROUTE_SCREENSHOT"])
    finally:
        d.quit()

    rows = state["store_rows"]
    assert isinstance(rows, list)
    print(
        f"store-load rows {len(rows)}, metrics {state['metrics']}, chart {state['chart']}, "
        f"screenshot {shot}"
    )
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one

    # Ctrl-C: demo.sh stops everything it started
    rc = demo.stop(signal.SIGINT)
    assert rc == 130, f"demo.sh exit {rc}\n{demo.logs()}"
    assert "stopped." in demo.output()
    assert not port_open(demo.worker_port)
    assert not port_open(demo.dash_port)
