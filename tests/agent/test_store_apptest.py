"""Streamlit AppTest of the store app's pages (Store, Returns desk) on fixture data.

In fixture mode the pages read a `StoreState` built by dashboard.store_fixtures and record what
they would publish in a `RecordingPublisher`; both are `st.cache_resource`s of this process,
reached through `dashboard.store_ui.fixture_store()`. A test plays the system's part by
folding the order-event or refund that confirms an action, then reruns the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import store, store_ui
from dashboard.publish import RecordingPublisher
from dashboard.store_fixtures import FIXTURE_RETURN_ORDER, FIXTURE_STORE
from streams.records import FulfilmentEvent, Location, Return
from streams.topics import TOPICS

PAGES = Path(__file__).resolve().parents[2] / "dashboard" / "pages"
STORE_PAGE = PAGES / "1_Store.py"
RETURNS_PAGE = PAGES / "2_Returns_desk.py"


@pytest.fixture
def fixture_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("STOCKROUTE_DASHBOARD_FIXTURES", "1")
    st.cache_resource.clear()  # a fresh fixture state and recorder for each test
    yield
    st.cache_resource.clear()


def run(page: Path) -> AppTest:
    at = AppTest.from_file(str(page), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def world() -> tuple[store.StoreState, RecordingPublisher]:
    return store_ui.fixture_store()


def open_shipment(at: AppTest, shipment_id: str) -> AppTest:
    at.selectbox(key="shipment_id").set_value(shipment_id).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def confirm(
    shipment_id: str, change: str, status: str, order_status: str, **detail: object
) -> None:
    """Play the worker: fold the order-event that confirms a step."""
    state, _ = world()
    s = store.shipment(state, shipment_id)
    assert s is not None
    store.fold(
        state,
        store.H_ORDER_EVENTS,
        {
            "event_id": f"confirm/{shipment_id}/{change}",
            "order_id": s.order_id,
            "occurred_at": datetime.now(UTC).isoformat(),
            "change": change,
            "order_status": order_status,
            "shipment_id": shipment_id,
            "location_id": s.location_id,
            "shipments": [
                {
                    "shipment_id": shipment_id,
                    "location_id": s.location_id,
                    "mode": s.mode,
                    "status": status,
                    "lines": [{"sku": k, "qty": v} for k, v in s.lines.items()],
                    "destination_location_id": s.destination_location_id,
                }
            ],
            "detail": detail,
        },
    )


def last_sent() -> dict:  # type: ignore[type-arg]
    _, recorder = world()
    assert recorder.sent, "nothing was published"
    return recorder.sent[-1].value


# ---- Store page --------------------------------------------------------------------------------


def test_the_store_page_shows_load_queue_and_the_oldest_shipment(fixture_mode: None) -> None:
    at = run(STORE_PAGE)

    assert at.title[0].value == "Stockroute — store"
    assert [h.value for h in at.header] == ["Walk-in customers first", "Queue"]
    assert at.selectbox(key="store_id").value == FIXTURE_STORE
    metrics = {m.label: m.value for m in at.container(key="store_load").metric}
    assert metrics["Open orders"] == "9" and metrics["Saturation"] == "0.75"
    table = at.container(key="store_queue").dataframe[0].value
    assert list(table.columns) == list(store.QUEUE_COLUMNS)
    assert len(table) == 9
    assert table["waiting_min"].is_monotonic_decreasing  # oldest first
    assert table["next_step"].iloc[1] == "Accept"
    assert at.selectbox(key="shipment_id").value == table["shipment_id"].iloc[0]
    assert not at.warning


def test_accepting_publishes_the_event_and_shows_the_confirmation_only_once_confirmed(
    fixture_mode: None,
) -> None:
    at = open_shipment(run(STORE_PAGE), "O-FIX-01-S1")
    at.button(key="act_accept").click().run()

    sent = last_sent()
    ev = FulfilmentEvent.model_validate_json(orjson.dumps(sent))
    assert (ev.type, ev.shipment_id, ev.location_id) == ("accepted", "O-FIX-01-S1", FIXTURE_STORE)
    assert world()[1].sent[-1].key == "O-FIX-01"
    assert world()[1].sent[-1].topic == TOPICS.fulfilment_events.name
    result = at.container(key="action_result")
    assert "waiting for the system to confirm" in result.info[0].value
    assert at.selectbox(key="shipment_id").value == "O-FIX-01-S1"
    # still routed: the page shows no optimistic copy
    assert "routed" in at.container(key="shipment_panel").subheader[0].value

    confirm("O-FIX-01-S1", "accepted", "accepted", "in_preparation")
    at.run()

    assert "Confirmed: accepted" in at.container(key="action_result").success[0].value
    assert "accepted" in at.container(key="shipment_panel").subheader[0].value
    assert at.button(key="act_pick") is not None


def test_a_short_pick_sends_the_units_found(fixture_mode: None) -> None:
    at = open_shipment(run(STORE_PAGE), "O-FIX-02-S1")
    at.number_input(key="found_O-FIX-02-S1_SKU-0031").set_value(1).run()

    assert "SKU-0031 ×2 missing" in at.container(key="shipment_panel").warning[0].value
    at.button(key="act_pick").click().run()

    sent = last_sent()
    assert sent["type"] == "picked"
    assert sent["lines"] == [{"sku": "SKU-0007", "qty": 1}, {"sku": "SKU-0031", "qty": 1}]
    confirm(
        "O-FIX-02-S1",
        "short_pick",
        "accepted",
        "in_preparation",
        missing=[{"sku": "SKU-0031", "qty": 2}],
    )
    at.run()
    assert "short pick: SKU-0031×2" in at.container(key="action_result").success[0].value


def test_rejecting_needs_a_reason_from_the_list(fixture_mode: None) -> None:
    at = open_shipment(run(STORE_PAGE), "O-FIX-03-S1")
    at.selectbox(key="reject_reason").set_value("item_damaged").run()
    at.button(key="act_reject").click().run()

    sent = last_sent()
    assert (sent["type"], sent["reason"]) == ("rejected", "item_damaged")


def test_a_packed_home_shipment_offers_the_label_download(fixture_mode: None) -> None:
    at = open_shipment(run(STORE_PAGE), "O-FIX-04-S1")
    downloads = at.get("download_button")
    assert len(downloads) == 1
    assert "Print the shipping label" in downloads[0].proto.label
    # a click & collect parcel has no label: it goes on the pickup shelf
    at = open_shipment(at, "O-FIX-05-S1")
    assert not at.get("download_button")
    at.button(key="act_ready").click().run()
    assert last_sent()["type"] == "ready_for_pickup"


def test_shipping_and_packing_publish_their_steps(fixture_mode: None) -> None:
    at = open_shipment(run(STORE_PAGE), "O-FIX-07-S1")
    at.button(key="act_ship").click().run()
    assert last_sent()["type"] == "shipped"
    at = open_shipment(at, "O-FIX-03-S1")
    at.button(key="act_pack").click().run()
    assert last_sent()["type"] == "packed"


def test_collection_checks_the_order_id_before_publishing(fixture_mode: None) -> None:
    at = open_shipment(run(STORE_PAGE), "O-FIX-06-S1")
    at.text_input(key="collect_order_id").input("O-FIX-05").run()
    at.button(key="act_collect").click().run()

    assert "does not match this parcel" in at.container(key="action_result").error[0].value
    assert not world()[1].sent

    at.text_input(key="collect_order_id").input("O-FIX-06").run()
    at.button(key="act_collect").click().run()
    assert last_sent()["type"] == "collected"


def test_a_transfer_arriving_is_put_on_the_pickup_shelf_by_the_pickup_store(
    fixture_mode: None,
) -> None:
    at = open_shipment(run(STORE_PAGE), "O-FIX-08-S1")
    at.button(key="act_ready").click().run()
    sent = last_sent()
    assert (sent["type"], sent["location_id"]) == ("ready_for_pickup", FIXTURE_STORE)


def test_pausing_web_orders_publishes_the_location_with_paused_until(fixture_mode: None) -> None:
    at = run(STORE_PAGE)
    at.selectbox(key="pause_minutes").set_value(60).run()
    at.button(key="act_pause").click().run()

    _, recorder = world()
    assert recorder.sent[-1].topic == TOPICS.locations.name
    assert recorder.sent[-1].key == FIXTURE_STORE
    loc = Location.model_validate_json(orjson.dumps(recorder.sent[-1].value))
    assert loc.paused_until is not None
    # an hour of network time (the latest time the store app read), not of the wall clock
    assert (loc.paused_until - world()[0].now()).total_seconds() == pytest.approx(3600, abs=60)

    # once the locations topic carries it, the page says so and offers to resume
    store.fold(world()[0], store.H_LOCATIONS, recorder.sent[-1].value, FIXTURE_STORE)
    at.run()
    assert "Web orders paused until" in at.container(key="store_load").warning[0].value
    at.button(key="act_resume").click().run()
    assert recorder.sent[-1].value["paused_until"] is None


def test_searching_the_queue_narrows_it_to_the_order(fixture_mode: None) -> None:
    at = run(STORE_PAGE)
    at.text_input(key="queue_search").input("O-FIX-07").run()
    table = at.container(key="store_queue").dataframe[0].value
    assert table["order_id"].tolist() == ["O-FIX-07"]
    at.text_input(key="queue_search").input("NOPE").run()
    assert "No open shipment matching 'NOPE'" in at.container(key="store_queue").info[0].value


def test_an_instance_limited_to_some_stores_offers_only_those(
    fixture_mode: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STOCKROUTE_STORE_IDS", "ST-FIX-02, ST-ELSEWHERE")
    at = run(STORE_PAGE)
    assert at.selectbox(key="store_id").options == ["ST-FIX-02 — Lyon Part-Dieu"]
    assert at.selectbox(key="store_id").value == "ST-FIX-02"

    monkeypatch.setenv("STOCKROUTE_STORE_IDS", "ST-ELSEWHERE")
    at = run(STORE_PAGE)
    assert any("None of the stores this app serves" in i.value for i in at.info)
    assert not at.get("selectbox")


# ---- Returns desk ----------------------------------------------------------------------------


def test_the_returns_desk_returns_chosen_lines_and_shows_the_refund(fixture_mode: None) -> None:
    at = run(RETURNS_PAGE)
    assert at.title[0].value == "Stockroute — returns desk"
    at.text_input(key="return_order_id").input(FIXTURE_RETURN_ORDER).run()
    table = at.container(key="return_order").dataframe[0].value
    assert table.set_index("sku")["returnable"].to_dict() == {"SKU-0007": 1, "SKU-0080": 1}

    at.number_input(key="ret_qty_SKU-0080").set_value(1).run()
    at.selectbox(key="ret_cond_SKU-0080").set_value("damaged").run()
    assert any("45.00 EUR" in c.value for c in at.caption)
    at.button(key="ret_submit").click().run()

    _, recorder = world()
    assert recorder.sent[-1].topic == TOPICS.returns.name
    ret = Return.model_validate_json(orjson.dumps(recorder.sent[-1].value))
    assert [(ln.sku, ln.qty, ln.resellable) for ln in ret.lines] == [("SKU-0080", 1, False)]
    assert "waiting for the refund" in at.container(key="return_result").info[0].value

    store.fold(
        world()[0],
        store.H_REFUNDS,
        {
            "refund_id": f"RF-{ret.event_id}",
            "order_id": FIXTURE_RETURN_ORDER,
            "return_event_id": ret.event_id,
            "amount": 45.0,
            "currency": "EUR",
            "payment": {"method": "card", "reference": f"PSP-{FIXTURE_RETURN_ORDER}"},
            "lines": [{"sku": "SKU-0080", "qty": 1, "unit_price": 45.0, "amount": 45.0}],
            "issued_at": datetime.now(UTC).isoformat(),
        },
    )
    at.run()
    refund = at.container(key="return_result").success[0].value
    assert f"Refund RF-{ret.event_id}: 45.00 EUR to card PSP-{FIXTURE_RETURN_ORDER}" in refund


def test_the_returns_desk_shows_a_refusal_from_dead_letters(fixture_mode: None) -> None:
    at = run(RETURNS_PAGE)
    at.text_input(key="return_order_id").input(FIXTURE_RETURN_ORDER).run()
    at.number_input(key="ret_qty_SKU-0007").set_value(1).run()
    at.button(key="ret_submit").click().run()
    sent = last_sent()
    store.fold(
        world()[0],
        store.H_DEAD_LETTERS,
        {
            "source_topic": TOPICS.returns.name,
            "partition": 0,
            "offset": 3,
            "key": FIXTURE_RETURN_ORDER,
            "raw": orjson.dumps(sent).decode(),
            "raw_encoding": "utf-8",
            "error": "return of SKU-0007 exceeds what was delivered",
            "rejected_at": datetime.now(UTC).isoformat(),
        },
    )
    at.run()
    assert "exceeds what was delivered" in at.container(key="return_result").error[0].value


def test_the_returns_desk_refuses_an_empty_return_and_says_when_an_order_is_unknown(
    fixture_mode: None,
) -> None:
    at = run(RETURNS_PAGE)
    at.text_input(key="return_order_id").input(FIXTURE_RETURN_ORDER).run()
    at.button(key="ret_submit").click().run()
    assert "choose at least one unit" in at.container(key="return_result").error[0].value
    assert not world()[1].sent

    at.text_input(key="return_order_id").input("O-NOPE").run()
    assert any("No order O-NOPE known here" in i.value for i in at.info)
    at.text_input(key="return_order_id").input("O-FIX-01").run()
    assert any("nothing to return" in i.value for i in at.info)


def test_without_a_reachable_broker_the_store_page_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dashboard import source

    monkeypatch.delenv("STOCKROUTE_DASHBOARD_FIXTURES", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:1")
    st.cache_resource.clear()
    try:
        at = run(STORE_PAGE)
        assert any("No active location known yet" in i.value for i in at.info)
        at.run()  # a later refresh: the reader has tried the broker by now
        assert not at.exception
    finally:
        source.stop_all()
        st.cache_resource.clear()
