"""The planner dashboard in a real browser: headless Debian Chromium driven by selenium.

Starts the whole demo (scripts/demo.sh: worker, simulator, dashboard on the test broker),
opens the page with the system chromedriver (no browser download), waits until the store-load
table and the backlog chart show live numbers, then:
- sends one malformed message of its own to `web-orders` and waits until the dead-letters
  panel counts it (source topic, reason class "malformed JSON") and shows its raw payload;
- checks the map drew country outlines, the backlog axis has no two identical labels, no
  metric value is clipped, no table cell reads "None", and the sidebar names the pages
  "Planner", "Store" and "Returns desk";
- checks from Chromium's network log that the page fetched nothing but from the dashboard
  itself (no tile server, no CDN: the machines here have no internet);
saves screenshots, then stops the demo with SIGINT (what Ctrl-C sends) and checks it stopped
everything.

Needs `chromium` and `chromium-driver` (Debian): `bash scripts/install-browser.sh` installs
them; without them the test skips and says so. The screenshot lands in the test's tmp dir; with
STOCKROUTE_SCREENSHOT_DIR=docs they are also copied there (docs/dashboard.png, the top of the
page, and docs/dashboard-dead-letters.png, the dead-letters panel), after
STOCKROUTE_SCREENSHOT_DELAY more seconds of the peak when set (docs: 60).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from streams.settings import KafkaSettings
from tests.e2e.conftest import E2E_SIM_ARGS, Demo, http_status, port_open

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
    # every request the page makes, to prove nothing is fetched from outside
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.set_window_size(1600, 2400)
    d.set_page_load_timeout(60)
    return d


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").strip())
    except ValueError:
        return None


_PAGE_STATE = """
const text = (e) => (e ? e.innerText || "" : "").trim();
const headers = [...document.querySelectorAll("h1, h2, h3")].map((h) => h.innerText);
const table = document.querySelector(".st-key-store_load_table");
let rows = [];
if (table) {
  // st.dataframe draws on a canvas; its accessible table mirror holds the cell text
  const heads = [...table.querySelectorAll("th")].map((th) => th.textContent || "");
  const cells = [...table.querySelectorAll("td")].map((td) => td.textContent || "");
  if (heads.length) {
    for (let i = 0; i + heads.length <= cells.length; i += heads.length) {
      const row = {};
      heads.forEach((h, j) => { row[h] = cells[i + j]; });
      rows.push(row);
    }
  }
}
const metrics = {};
for (const m of document.querySelectorAll(".st-key-network_overview [data-testid=stMetric]")) {
  const value = m.querySelector("[data-testid=stMetricValue]");
  if (value) metrics[text(m.querySelector("[data-testid=stMetricLabel]"))] = text(value);
}
const chart = document.querySelector(".st-key-backlog_chart");
let size = null, chartText = "";
if (chart) {
  for (const el of chart.querySelectorAll("svg.marks, canvas.marks, svg, canvas")) {
    const r = el.getBoundingClientRect();
    if (r.height > 100 && r.width > 200) { size = {height: r.height, width: r.width}; break; }
  }
  chartText = chart.textContent || "";
}
return {headers: headers, store_rows: rows, metrics: metrics, chart: size, chart_text: chartText};
"""


def _page_state(d) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What the page shows now: headers, store-load rows, the metrics, chart size. Read in one
    script, at one instant of the page: element by element (a WebDriver round trip each), a
    busy page re-rendered every 2 s under the reads and every read ended stale."""
    state = d.execute_script(_PAGE_STATE)
    assert isinstance(state, dict)
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


def _positive(text: str) -> bool:
    """A metric tile's value above zero ("12", "1.2k", "3M")."""
    t = text.strip().replace(",", "")
    return bool(t) and t not in ("0", "—", "-") and not t.startswith("0 ")


async def _send_raw(demo: Demo, handle: str, key: bytes, raw: bytes) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**KafkaSettings.from_env().aiokafka_kwargs(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(getattr(demo.topics, handle).name, key=key, value=raw)
    finally:
        await producer.stop()


def _text(d: Any, key: str) -> str:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    return " ".join(
        (e.get_attribute("textContent") or "")
        for e in d.find_elements(By.CSS_SELECTOR, f".st-key-{key}")
    )


def _poll(demo: Demo, d: Any, what: str, check: Callable[[], bool], timeout: float) -> None:
    """Bounded poll of the page (Streamlit re-renders under our feet every 2 s)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - stale elements while Streamlit re-renders
            last = exc
        assert demo.proc.poll() is None, f"demo stopped early:\n{demo.logs()}"
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last error {last!r})\n{demo.logs()}")


# what the page shows, read by script (st.dataframe draws on a canvas: the accessible table
# mirror holds the cell text; Plotly draws SVG)
_CLIPPED_METRICS = """
return Array.from(document.querySelectorAll('[data-testid=stMetricValue]')).flatMap(
  el => [el, ...el.querySelectorAll('*')]).filter(
  el => el.scrollWidth > el.clientWidth + 1).map(el => el.textContent);
"""
_NONE_CELLS = """
return Array.from(document.querySelectorAll('[data-testid=stDataFrame] td, [role=gridcell]'))
  .map(td => td.textContent.trim()).filter(t => t === 'None' || t === 'nan' || t === 'NaT');
"""
_OUTLINES = """
const map = document.querySelector('.st-key-store_load_map');
if (!map) return 0;
return Array.from(map.querySelectorAll('.countries path, .coastlines path, .land path'))
  .filter(p => (p.getAttribute('d') || '').length > 100).length;
"""
_X_TICKS = """
return Array.from(document.querySelectorAll('.st-key-backlog_chart .js-plotly-plot'))
  .map(p => Array.from(p.querySelectorAll('.xtick text')).map(t => t.textContent));
"""
"""The tick labels of each backlog plot on the page: while Streamlit swaps a re-rendered chart in,
the old plot and the new one can both be in the container for a moment."""
_NAV = """
return Array.from(document.querySelectorAll('[data-testid=stSidebarNav] a'))
  .map(a => a.textContent.trim());
"""


def _requested_urls(d: Any) -> list[str]:  # type: ignore[no-untyped-def]
    urls = []
    for entry in d.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            params = message["params"]
            url = params.get("request", {}).get("url") or params.get("url") or ""
            urls.append(url)
    return urls


@pytest.mark.e2e
@pytest.mark.timeout(600)
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
        urls = _requested_urls(d)

        # a dead letter of our own: malformed JSON on web-orders, refused by the worker
        marker = f"E2E-DL-{uuid.uuid4().hex[:8]}"
        raw = f'{{"order_id": "{marker}", "lines": [{{"sku": '.encode()
        asyncio.run(_send_raw(demo, "web_orders", marker.encode(), raw))
        source_topic = demo.topics.web_orders.name
        _poll(
            demo,
            d,
            f"the dead letter {marker} in the dead-letters panel",
            lambda: (
                marker in _text(d, "dead_letters_latest")
                and "malformed JSON" in _text(d, "dead_letters_latest")
            ),
            timeout=90,
        )
        latest = _text(d, "dead_letters_latest")
        assert raw.decode() in latest  # the raw payload, as sent
        assert source_topic in _text(d, "dead_letters_by_topic")
        assert "malformed JSON" in _text(d, "dead_letters_by_reason")

        # the map's country outlines, drawn from the dashboard's own static files
        _poll(demo, d, "country outlines on the map", lambda: d.execute_script(_OUTLINES) > 0, 60)
        # a readable time axis: no two tick labels alike
        plots = d.execute_script(_X_TICKS)
        assert plots, "no backlog plot on the page"
        for ticks in plots:
            assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), ticks
        assert d.execute_script(_CLIPPED_METRICS) == []  # every metric value fully shown
        assert d.execute_script(_NONE_CELLS) == []
        nav = d.execute_script(_NAV)  # link text is the icon then the title
        assert len(nav) == 3, nav
        for link, title in zip(nav, ("Planner", "Store", "Returns desk"), strict=True):
            assert link.endswith(title), nav

        delay = float(os.environ.get("STOCKROUTE_SCREENSHOT_DELAY", "0"))
        if delay > 0:  # docs only: let the peak build up before the picture
            time.sleep(delay)
        d.save_screenshot(str(shot))
        # the dead-letters panel, scrolled into view, with the test's own dead letter
        dead_shot = tmp_path / "dashboard-dead-letters.png"
        d.execute_script(
            "document.querySelector('.st-key-dead_letters')"
            ".scrollIntoView({block: 'start', behavior: 'instant'})"
        )
        _poll(
            demo,
            d,
            "the dead-letters panel in view",
            lambda: d.execute_script(
                "const r = document.querySelector('.st-key-dead_letters')"
                ".getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight"
            ),
            timeout=10,
        )
        d.save_screenshot(str(dead_shot))
        if os.environ.get("STOCKROUTE_SCREENSHOT_DIR"):
            for picture in (shot, dead_shot):
                shutil.copyfile(
                    picture, Path(os.environ["STOCKROUTE_SCREENSHOT_DIR"]) / picture.name
                )

        # nothing but the dashboard itself was asked for anything: no tiles, no CDN
        urls += _requested_urls(d)
        assert any("/app/static/" in u and u.endswith(".json") for u in urls), urls
        outside = {
            u
            for u in urls
            if urlparse(u).scheme in ("http", "https", "ws", "wss")
            and urlparse(u).hostname not in ("127.0.0.1", "localhost")
        }
        assert not outside, f"the page fetched from outside: {sorted(outside)}"
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


# An evening peak: the simulated day starts when the stores stop preparing web orders, with
# web orders at three times the normal rate, so the stores' shipments wait for the morning.
# A peak afternoon into the evening, staff at half their declared pace: the promises (made at
# the declared capacity) slip, and shipments still in preparation at their carrier cut-off
# (stores 16:00, warehouses 20:00) are late against ship_by; by 19:00-20:00 stores close.
PEAK_EVENING_ARGS = E2E_SIM_ARGS + " --peak --peak-factor 3 --start 14:00 --staff-pace 0.5"


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_a_peak_where_stores_fall_behind_shows_late_orders_in_network_time(  # type: ignore[no-untyped-def]
    demo_factory, tmp_path: Path
) -> None:
    """Lateness is measured on the network clock (the simulator's 120x day), not the wall
    clock: within a few wall minutes the simulated hours pass, the carrier cut-offs go by and
    the shipments the slowed staff did not prepare by their ship_by count as late; the
    store-load table says which stores are closed now."""
    chromium, driver = _browser_paths()
    demo = demo_factory(duration=None, sim_args=PEAK_EVENING_ARGS)
    demo.wait_running(timeout=240)
    d = _driver(chromium, driver, tmp_path / "chromium-profile")
    shot = tmp_path / "dashboard-late.png"
    state: dict[str, object] = {}
    try:
        d.get(demo.url)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                state = _page_state(d)
            except Exception as exc:  # noqa: BLE001 - Streamlit re-renders under our feet
                state = {"error": repr(exc)}
            metrics, rows = state.get("metrics"), state.get("store_rows")
            late = isinstance(metrics, dict) and _positive(str(metrics.get("Late", "")))
            nows = {r.get("now", "").strip() for r in rows} if isinstance(rows, list) else set()
            # the evening: stores have stopped preparing (the table renders after the tiles)
            if late and "closed" in nows:
                break
            assert demo.proc.poll() is None, f"demo stopped early:\n{demo.logs()}"
            time.sleep(2)
        else:
            d.save_screenshot(str(shot))
            raise AssertionError(
                f"no late orders or no closed store on the page: {state}\n{demo.logs()}"
            )
        d.save_screenshot(str(shot))
        print(f"metrics {state['metrics']}, now {sorted(nows)}, screenshot {shot}")
    finally:
        d.quit()
    rc = demo.stop(signal.SIGINT)
    assert rc == 130, f"demo.sh exit {rc}\n{demo.logs()}"
