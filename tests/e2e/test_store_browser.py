"""The store app in a real browser against the live system (headless Debian Chromium).

Starts the demo (scripts/demo.sh: worker, simulator, dashboard with its Store and Returns desk
pages) with the simulator's own store staff off (`--no-staff`), so only this test's associate
acts on its orders. The test stocks two SKUs of its own at one store (a supplier receipt), so
its orders can only be served there, places a home order and a click & collect order on
`web-orders` (the customer with a name and address lines), then, in the browser:

1. walks the home order from routed to shipped through the Store page: accept, a short pick
   (1 of 2 units found), pack, print the label (the PDF is downloaded, its text extracted with
   pdftotext and its Code 128 barcode decoded back to the shipment id with zbarimg), shipped;
2. walks the click & collect order to collected (the customer's order id typed at the counter);
3. pauses web orders at the store (walk-in customers first), checks that routing then leaves
   the store out (reason `paused`) for a new order, and resumes;
4. returns the home order's picked unit through the Returns desk and waits for the refund.

Every step waits for the page to show what the system confirmed (order-events, refunds).
Screenshots of both pages (and the label) land in the test's tmp dir; with
STOCKROUTE_SCREENSHOT_DIR=docs they are also copied there (docs/store.png,
docs/returns-desk.png, docs/label.png).

Needs chromium, chromium-driver, poppler-utils and zbar-tools (`bash scripts/install-browser.sh`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.settings import KafkaSettings
from tests.e2e.conftest import Demo
from tests.e2e.test_dashboard_browser import _browser_paths

# A small, quiet retailer in real time: the simulator publishes the network, the opening
# stock and a trickle of web orders (so the queue is not empty), and no staff.
STORE_SIM_ARGS = (
    "--speed 1 --warehouses 1 --stores 4 --suppliers 1 --skus 100 "
    "--web-orders-per-hour 120 --max-rate 200 --stock-wait 45 --no-staff"
)
SKU_A, SKU_B = "E2E-SKU-A", "E2E-SKU-B"


# ---- Kafka helpers (bounded polls) -----------------------------------------------------------


async def _produce(demo: Demo, messages: list[tuple[str, str, dict[str, Any]]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**KafkaSettings.from_env().aiokafka_kwargs(), acks="all")
    await producer.start()
    try:
        for handle, key, value in messages:
            topic = getattr(demo.topics, handle).name
            await producer.send_and_wait(topic, key=key.encode(), value=orjson.dumps(value))
    finally:
        await producer.stop()


def produce(demo: Demo, *messages: tuple[str, str, dict[str, Any]]) -> None:
    asyncio.run(_produce(demo, list(messages)))


async def _read_until(
    demo: Demo, handle: str, found: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any] | None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        getattr(demo.topics, handle).name,
        **KafkaSettings.from_env().aiokafka_kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for rec in records:
                    value = orjson.loads(rec.value) if rec.value else None
                    if isinstance(value, dict) and found(value):
                        return value
        return None
    finally:
        await consumer.stop()


def read_until(
    demo: Demo, handle: str, found: Callable[[dict[str, Any]], bool], timeout: float, what: str
) -> dict[str, Any]:
    value = asyncio.run(_read_until(demo, handle, found, timeout))
    assert value is not None, f"no {what} on {handle} within {timeout}s:\n{demo.logs()}"
    return value


# ---- browser helpers -------------------------------------------------------------------------


def _driver(chromium: str, driver: str, profile: Path, downloads: Path):  # type: ignore[no-untyped-def]
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
        "--window-size=1500,2200",
    ):
        opts.add_argument(arg)
    opts.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "download.directory_upgrade": True,
            "safebrowsing.enabled": False,
        },
    )
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.set_window_size(1500, 2200)
    d.set_page_load_timeout(60)
    d.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    return d


class Page:
    """Bounded polls over a Streamlit page that re-renders under our feet every 2 s."""

    def __init__(self, d: Any, demo: Demo, shots: Path) -> None:
        self.d, self.demo, self.shots = d, demo, shots

    def text(self, key: str) -> str:
        from selenium.webdriver.common.by import By

        found = self.d.find_elements(By.CSS_SELECTOR, f".st-key-{key}")
        return " ".join((e.get_attribute("textContent") or "") for e in found)

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except Exception as exc:  # noqa: BLE001 - stale elements while Streamlit re-renders
                last = exc
            assert self.demo.proc.poll() is None, f"demo stopped:\n{self.demo.logs()}"
            time.sleep(0.5)
        shot = self.shots / f"failed-{int(time.time())}.png"
        self.d.save_screenshot(str(shot))
        raise AssertionError(
            f"timed out waiting for {what} (last error {last!r}); screenshot {shot}\n"
            f"page: {self.text('action_result')} | {self.text('shipment_panel')[:400]}\n"
            f"{self.demo.logs()}"
        )

    def wait_text(self, key: str, needle: str, timeout: float = 90.0) -> None:
        self.wait(f"{needle!r} in {key}", lambda: needle in self.text(key), timeout)

    def click(self, key: str, timeout: float = 60.0) -> None:
        from selenium.webdriver.common.by import By

        def go() -> bool:
            buttons = self.d.find_elements(By.CSS_SELECTOR, f".st-key-{key} button")
            if not buttons or not buttons[0].is_enabled():
                return False
            buttons[0].click()
            return True

        self.wait(f"button {key}", go, timeout)

    def type(self, key: str, text: str, timeout: float = 60.0) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        def go() -> bool:
            inputs = self.d.find_elements(By.CSS_SELECTOR, f".st-key-{key} input")
            if not inputs:
                return False
            box = inputs[0]
            box.click()
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(Keys.BACKSPACE)
            box.send_keys(text)
            box.send_keys(Keys.ENTER)
            return True

        self.wait(f"input {key}", go, timeout)
        self.wait(
            f"{key} = {text!r}",
            lambda: any(
                (i.get_attribute("value") or "") == text
                for i in self.d.find_elements(By.CSS_SELECTOR, f".st-key-{key} input")
            ),
            timeout,
        )

    def shot(self, name: str) -> Path:
        path = self.shots / name
        self.d.save_screenshot(str(path))
        target = os.environ.get("STOCKROUTE_SCREENSHOT_DIR")
        if target:
            shutil.copyfile(path, Path(target) / name)
        return path


def _order(
    order_id: str, store: dict[str, Any], lines: list[tuple[str, int, float]], cc: bool
) -> dict[str, Any]:
    delivery: dict[str, Any] = {"mode": "home", "service": "express"}
    if cc:
        delivery = {"mode": "click_collect", "pickup_location_id": store["location_id"]}
    return {
        "event_id": f"{order_id}-placed",
        "occurred_at": datetime.now(UTC).isoformat(),
        "type": "order_placed",
        "order_id": order_id,
        "channel": "web",
        "customer": {
            "lat": store["lat"] + 0.02,
            "lon": store["lon"] + 0.02,
            "postcode": "75004",
            "name": "Ada Lovelace",
            "address_lines": ["12 rue de Rivoli", "75004 Paris"],
        },
        "delivery": delivery,
        "lines": [{"sku": s, "qty": q, "unit_price": p} for s, q, p in lines],
        "currency": "EUR",
        "payment": {"method": "card", "reference": f"PSP-{order_id}"},
    }


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_an_associate_ships_collects_and_refunds_through_the_store_app(
    demo_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    chromium, driver = _browser_paths()
    for tool in ("pdftotext", "pdftoppm", "zbarimg"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}: run `bash scripts/install-browser.sh`")
    # the shipped policy (backorders off): the pause below must leave its order unroutable,
    # where the demo's default (backorders on for web orders) would keep it waiting
    demo = demo_factory(duration=None, sim_args=STORE_SIM_ARGS, env={"DEMO_BACKORDERS": "0"})
    demo.wait_running(timeout=300)

    # the store: one of the simulator's, shipping from store and offering click & collect
    store = read_until(
        demo,
        "locations",
        lambda v: (
            v.get("kind") == "store"
            and bool(v.get("ship_from_store"))
            and bool(v.get("click_collect"))
            and bool(v.get("active", True))
        ),
        120,
        "store location",
    )
    store_id = str(store["location_id"])
    run = uuid.uuid4().hex[:6]
    home_id, cc_id = f"E2E-{run}-HOME", f"E2E-{run}-CC"

    # stock only this store holds, then the two orders once the engine sees it
    produce(
        demo,
        (
            "supplier_feeds",
            store_id,
            {
                "event_id": f"e2e-{run}-receipt",
                "occurred_at": datetime.now(UTC).isoformat(),
                "type": "receipt",
                "location_id": store_id,
                "lines": [{"sku": SKU_A, "qty": 20}, {"sku": SKU_B, "qty": 20}],
            },
        ),
    )
    for sku in (SKU_A, SKU_B):
        read_until(
            demo,
            "stock_availability",
            lambda v, sku=sku: (
                v.get("sku") == sku
                and v.get("location_id") == store_id
                and int(v.get("available") or 0) > 0
            ),
            120,
            f"availability of {sku}",
        )
    produce(
        demo,
        ("web_orders", home_id, _order(home_id, store, [(SKU_A, 2, 19.5), (SKU_B, 1, 5.0)], False)),
        ("web_orders", cc_id, _order(cc_id, store, [(SKU_B, 1, 5.0)], True)),
    )
    for order_id in (home_id, cc_id):
        routed = read_until(
            demo, "routed_orders", lambda v, o=order_id: v.get("order_id") == o, 120, "routing"
        )
        assert routed["status"] == "routed", routed
        assert [s["location_id"] for s in routed["shipments"]] == [store_id], routed
    home_sid, cc_sid = f"{home_id}-S1", f"{cc_id}-S1"

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    shots = tmp_path / "shots"
    shots.mkdir()
    d = _driver(chromium, driver, tmp_path / "chromium-profile", downloads)
    page = Page(d, demo, shots)
    try:
        d.get(f"{demo.url}/Store?store={store_id}")
        page.wait_text("store_queue", "open shipment", timeout=180)
        page.wait_text("store_load", "Open orders")

        page.wait_text("store_queue", home_sid)
        page.shot("store.png")  # the whole queue, oldest first

        # ---- 1. home delivery: routed -> shipped, with a short pick and the label ----------
        page.type("queue_search", home_id)
        page.wait_text("shipment_panel", f"{home_sid} · ship from store · routed")
        page.click("act_accept")
        page.wait_text("action_result", "Confirmed: accepted")
        page.wait_text("shipment_panel", f"{home_sid} · ship from store · accepted")

        page.type(f"found_{home_sid}_{SKU_A}", "1")
        page.wait_text("shipment_panel", f"{SKU_A} ×1 missing")
        page.click("act_pick")
        page.wait_text("action_result", f"short pick: {SKU_A}×1 re-routed")
        page.wait_text("shipment_panel", f"{home_sid} · ship from store · picked")
        picked = read_until(
            demo,
            "order_events",
            lambda v: v.get("order_id") == home_id and v.get("change") == "short_pick",
            60,
            "short_pick order event",
        )
        assert picked["detail"]["missing"] == [{"sku": SKU_A, "qty": 1}]

        page.click("act_pack")
        page.wait_text("shipment_panel", f"{home_sid} · ship from store · packed")
        page.click("act_label")
        pdf = downloads / f"label-{home_sid}.pdf"
        page.wait("the label download", lambda: pdf.exists() and pdf.stat().st_size > 1000)
        page.wait_text("action_result", "Confirmed: label printed")
        text = subprocess.run(
            ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        for expected in ("SHIPPING LABEL", "Ada Lovelace", "12 rue de Rivoli", home_sid, "EXPRESS"):
            assert expected in text, (expected, text)
        assert str(store.get("name")) in text
        subprocess.run(
            ["pdftoppm", "-r", "200", "-png", "-singlefile", str(pdf), str(shots / "label")],
            check=True,
        )
        decoded = subprocess.run(
            ["zbarimg", "-q", "--raw", str(shots / "label.png")], capture_output=True, text=True
        )
        assert decoded.stdout.strip() == home_sid, decoded
        if os.environ.get("STOCKROUTE_SCREENSHOT_DIR"):
            shutil.copyfile(
                shots / "label.png", Path(os.environ["STOCKROUTE_SCREENSHOT_DIR"]) / "label.png"
            )

        page.wait_text("shipment_panel", f"{home_sid} · ship from store · label_printed")
        page.click("act_ship")
        page.wait_text("action_result", "Confirmed: shipped")
        shipped = read_until(
            demo,
            "order_events",
            lambda v: v.get("order_id") == home_id and v.get("change") == "shipped",
            60,
            "shipped order event",
        )
        assert {s["shipment_id"]: s["status"] for s in shipped["shipments"]}[home_sid] == "shipped"

        # ---- 2. click & collect: routed -> collected ---------------------------------------
        page.type("queue_search", cc_id)
        page.wait_text("shipment_panel", f"{cc_sid} · click collect · routed")
        for button, status in (
            ("act_accept", "accepted"),
            ("act_pick", "picked"),
            ("act_pack", "packed"),
            ("act_ready", "ready_for_pickup"),
        ):
            page.click(button)
            page.wait_text("shipment_panel", f"{cc_sid} · click collect · {status}")
        page.type("collect_order_id", cc_id)
        page.click("act_collect")
        page.wait_text("action_result", "Confirmed: collected")

        # ---- walk-in customers first: a pause keeps routing away from the store ------------
        page.click("act_pause")
        page.wait_text("store_load", "Web orders paused until")
        paused_id = f"E2E-{run}-PAUSED"
        produce(demo, ("web_orders", paused_id, _order(paused_id, store, [(SKU_B, 1, 5.0)], False)))
        decision = read_until(
            demo,
            "routed_orders",
            lambda v: v.get("order_id") == paused_id,
            120,
            "the decision on an order placed during the pause",
        )
        # only this store holds the SKU, and it is paused: nobody else can serve it
        assert decision["status"] == "unroutable", decision
        assert decision["reasons"]["ineligible"].get("paused") == [store_id], decision
        page.click("act_resume")
        page.wait_text("store_load", "Pause web orders for")

        # ---- 3. the returns desk: the home order's shipped unit back, refunded --------------
        d.get(f"{demo.url}/Returns_desk?store={store_id}")
        page.type("return_order_id", home_id)
        page.wait_text("return_order", SKU_A)
        page.type(f"ret_qty_{SKU_A}", "1")
        page.click("ret_submit")
        page.wait_text("return_result", "Refund RF-return-")
        page.wait_text("return_result", f"19.50 EUR to card PSP-{home_id}")
        page.shot("returns-desk.png")
    finally:
        d.quit()
    refund = read_until(
        demo, "refunds", lambda v: v.get("order_id") == home_id, 30, "refund message"
    )
    assert refund["amount"] == pytest.approx(19.5)
    assert refund["payment"] == {"method": "card", "reference": f"PSP-{home_id}"}
