"""The store app's pure logic (dashboard.store) and its shipping label (dashboard.label)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from dashboard import store
from dashboard.label import WEIGHT_PLACEHOLDER, label_data, label_pdf
from dashboard.store import StoreError
from dashboard.store_fixtures import (
    FIXTURE_ORDERS,
    FIXTURE_OTHER_STORE,
    FIXTURE_RETURN_ORDER,
    FIXTURE_STORE,
    build_store_state,
)
from streams.records import FulfilmentEvent, Location, Return
from streams.topics import TOPICS

NOW = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)


@pytest.fixture
def state() -> store.StoreState:
    return build_store_state(NOW)


def ship(state: store.StoreState, order_id: str) -> store.ShipmentView:
    found = store.shipment(state, f"{order_id}-S1")
    assert found is not None
    return found


def order_event(order_id: str, change: str, status: str, shipments: list[dict], **kw) -> dict:  # type: ignore[type-arg]
    return {
        "event_id": f"t/{order_id}/{change}/{kw.pop('n', 0)}",
        "order_id": order_id,
        "occurred_at": (NOW + timedelta(seconds=kw.pop("after", 1))).isoformat(),
        "change": change,
        "order_status": status,
        "shipment_id": kw.pop("shipment_id", f"{order_id}-S1"),
        "location_id": FIXTURE_STORE,
        "shipments": shipments,
        "detail": kw.pop("detail", {}),
    }


# ---- the queue -------------------------------------------------------------------------------


def test_the_queue_lists_the_stores_open_shipments_oldest_first_with_the_next_step(
    state: store.StoreState,
) -> None:
    items = store.queue(state, FIXTURE_STORE, NOW)

    open_here = {o for o, v in FIXTURE_ORDERS.items() if v[1] != "shipped"}
    assert {i.order_id for i in items} == open_here
    assert [i.since for i in items] == sorted(i.since for i in items)
    steps = {i.order_id: i.next_step for i in items}
    assert steps["O-FIX-01"] == "Accept"
    assert steps["O-FIX-02"] == "Pick"
    assert steps["O-FIX-03"] == "Pack"
    assert steps["O-FIX-04"] == "Print the shipping label"
    assert steps["O-FIX-05"] == "Put on the pickup shelf"
    assert steps["O-FIX-06"] == "Hand over to the customer"
    assert steps["O-FIX-07"] == "Hand over to the carrier"
    assert steps["O-FIX-08"].startswith("Receive the transfer")
    assert items[0].waiting_s == pytest.approx(140 * 60)  # the transfer, routed 140 min ago


def test_the_queue_of_another_store_and_a_search_narrow_it(state: store.StoreState) -> None:
    assert store.queue(state, FIXTURE_OTHER_STORE, NOW) == []
    found = store.queue(state, FIXTURE_STORE, NOW, search="fix-04")
    assert [i.shipment_id for i in found] == ["O-FIX-04-S1"]


def test_a_shipment_confirmed_by_order_events_moves_on_and_a_shipped_one_leaves_the_queue(
    state: store.StoreState,
) -> None:
    s = ship(state, "O-FIX-07")
    shipped = [{**_ship_dict(s), "status": "shipped"}]
    store.fold(state, store.H_ORDER_EVENTS, order_event("O-FIX-07", "shipped", "shipped", shipped))

    assert ship(state, "O-FIX-07").status == "shipped"
    assert "O-FIX-07" not in {i.order_id for i in store.queue(state, FIXTURE_STORE, NOW)}


def test_a_cancelled_order_leaves_the_queue(state: store.StoreState) -> None:
    s = ship(state, "O-FIX-01")
    cancelled = [{**_ship_dict(s), "status": "cancelled"}]
    ev = order_event("O-FIX-01", "cancelled", "cancelled", cancelled, shipment_id=None)
    store.fold(state, store.H_ORDER_EVENTS, ev)
    assert "O-FIX-01" not in {i.order_id for i in store.queue(state, FIXTURE_STORE, NOW)}


def test_malformed_messages_are_counted_not_raised(state: store.StoreState) -> None:
    before = state.skipped
    store.fold(state, store.H_ORDER_EVENTS, {"order_id": "X"})
    store.fold(state, store.H_ROUTED, {"order_id": 5})
    store.fold(state, store.H_WEB_ORDERS, {"type": "order_placed"})
    assert state.skipped == before + 3


def _ship_dict(s: store.ShipmentView) -> dict:  # type: ignore[type-arg]
    return {
        "shipment_id": s.shipment_id,
        "location_id": s.location_id,
        "mode": s.mode,
        "status": s.status,
        "lines": [{"sku": k, "qty": v} for k, v in s.lines.items()],
        "destination_location_id": s.destination_location_id,
    }


# ---- next steps and events -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_id", "steps"),
    [
        ("O-FIX-01", ["accepted", "rejected"]),
        ("O-FIX-02", ["picked", "rejected"]),
        ("O-FIX-03", ["packed", "rejected"]),
        ("O-FIX-04", ["label_printed", "rejected"]),
        ("O-FIX-05", ["ready_for_pickup", "rejected"]),
        ("O-FIX-06", ["collected"]),
        ("O-FIX-07", ["shipped"]),
        ("O-FIX-08", ["ready_for_pickup"]),
    ],
)
def test_next_steps_follow_the_domain_workflow(
    state: store.StoreState, order_id: str, steps: list[str]
) -> None:
    assert store.next_steps(ship(state, order_id)) == steps


def test_every_event_is_a_valid_fulfilment_event_with_a_fresh_id(state: store.StoreState) -> None:
    s = ship(state, "O-FIX-01")
    a = store.fulfilment_event(s, FIXTURE_STORE, "accepted", NOW)
    b = store.fulfilment_event(s, FIXTURE_STORE, "accepted", NOW)

    ev = FulfilmentEvent.model_validate_json(orjson.dumps(a))
    assert ev.order_id == "O-FIX-01" and ev.shipment_id == "O-FIX-01-S1"
    assert ev.location_id == FIXTURE_STORE and ev.type == "accepted"
    assert ev.occurred_at.tzinfo is not None
    assert a["event_id"] != b["event_id"]


def test_a_step_out_of_order_or_at_the_wrong_store_is_refused(state: store.StoreState) -> None:
    s = ship(state, "O-FIX-01")
    with pytest.raises(StoreError, match="not possible"):
        store.fulfilment_event(s, FIXTURE_STORE, "shipped", NOW)
    with pytest.raises(StoreError, match="held by ST-FIX-01"):
        store.fulfilment_event(s, FIXTURE_OTHER_STORE, "accepted", NOW)
    with pytest.raises(StoreError, match="reason"):
        store.fulfilment_event(s, FIXTURE_STORE, "rejected", NOW, reason="because")
    ok = store.fulfilment_event(s, FIXTURE_STORE, "rejected", NOW, reason="out_of_stock")
    assert ok["reason"] == "out_of_stock"


def test_a_full_pick_sends_every_line_and_a_short_pick_the_units_found(
    state: store.StoreState,
) -> None:
    s = ship(state, "O-FIX-02")  # SKU-0007 x1, SKU-0031 x3
    full, missing = store.pick_event(s, FIXTURE_STORE, {"SKU-0007": 1, "SKU-0031": 3}, NOW)
    assert missing == {}
    assert full["type"] == "picked"
    assert full["lines"] == [{"sku": "SKU-0007", "qty": 1}, {"sku": "SKU-0031", "qty": 3}]

    short, missing = store.pick_event(s, FIXTURE_STORE, {"SKU-0007": 1, "SKU-0031": 1}, NOW)
    assert missing == {"SKU-0031": 2}
    assert short["lines"] == [{"sku": "SKU-0007", "qty": 1}, {"sku": "SKU-0031", "qty": 1}]
    FulfilmentEvent.model_validate_json(orjson.dumps(short))


@pytest.mark.parametrize(
    ("found", "error"),
    [
        ({"SKU-0007": 2, "SKU-0031": 3}, "between 0 and 1"),
        ({"SKU-0007": -1, "SKU-0031": 3}, "between 0 and 1"),
        ({"SKU-0007": "1", "SKU-0031": 3}, "whole number"),
        ({"SKU-0031": 3}, "SKU-0007: enter"),
        ({"SKU-0007": 1, "SKU-0031": 3, "SKU-9": 1}, "not in O-FIX-02-S1: SKU-9"),
    ],
)
def test_a_bad_pick_is_refused_with_a_clear_error(
    state: store.StoreState,
    found: dict,
    error: str,  # type: ignore[type-arg]
) -> None:
    with pytest.raises(StoreError, match=error):
        store.pick_event(ship(state, "O-FIX-02"), FIXTURE_STORE, found, NOW)


def test_collection_checks_the_order_id_the_customer_gives(state: store.StoreState) -> None:
    s = ship(state, "O-FIX-06")
    store.check_collection(s, " o-fix-06 ")
    with pytest.raises(StoreError, match="does not match"):
        store.check_collection(s, "O-FIX-05")
    with pytest.raises(StoreError, match="ask the customer"):
        store.check_collection(s, "  ")


def test_the_pick_list_groups_the_stores_accepted_shipments_by_sku(
    state: store.StoreState,
) -> None:
    lines = store.store_pick_list(state, FIXTURE_STORE)
    assert [(ln.sku, ln.qty) for ln in lines] == [("SKU-0007", 1), ("SKU-0031", 5), ("SKU-0044", 1)]
    assert lines[1].shipments == ("O-FIX-02-S1", "O-FIX-10-S1")


def test_an_action_is_waiting_then_confirmed_by_order_events(state: store.StoreState) -> None:
    s = ship(state, "O-FIX-02")
    sent, _ = store.pick_event(s, FIXTURE_STORE, {"SKU-0007": 1, "SKU-0031": 1}, NOW)
    record = {**{k: sent[k] for k in ("event_id", "order_id", "shipment_id", "type")}}
    record["seq"] = state.seq
    assert store.action_outcome(state, record).state == "waiting"

    picked = [
        {
            **_ship_dict(s),
            "status": "picked",
            "lines": [{"sku": "SKU-0007", "qty": 1}, {"sku": "SKU-0031", "qty": 1}],
        }
    ]
    ev = order_event(
        "O-FIX-02",
        "short_pick",
        "in_preparation",
        picked,
        detail={"missing": [{"sku": "SKU-0031", "qty": 2}]},
    )
    store.fold(state, store.H_ORDER_EVENTS, ev)

    outcome = store.action_outcome(state, record)
    assert outcome.state == "confirmed"
    assert "SKU-0031×2" in outcome.text
    # the same input then confirms `picked` too: the short pick stays visible
    store.fold(
        state,
        store.H_ORDER_EVENTS,
        order_event("O-FIX-02", "picked", "in_preparation", picked, n=1),
    )
    outcome = store.action_outcome(state, record)
    assert outcome.text.startswith("Confirmed: picked") and "short pick: SKU-0031×2" in outcome.text
    assert ship(state, "O-FIX-02").lines == {"SKU-0007": 1, "SKU-0031": 1}


def test_an_action_refused_by_the_system_shows_the_dead_letter_reason(
    state: store.StoreState,
) -> None:
    sent = store.fulfilment_event(ship(state, "O-FIX-01"), FIXTURE_STORE, "accepted", NOW)
    record = {**sent, "seq": state.seq}
    store.fold(
        state,
        store.H_DEAD_LETTERS,
        {
            "source_topic": TOPICS.fulfilment_events.name,
            "partition": 0,
            "offset": 1,
            "key": "O-FIX-01",
            "raw": orjson.dumps(sent).decode(),
            "raw_encoding": "utf-8",
            "error": "accepted is not a valid step",
            "rejected_at": NOW.isoformat(),
        },
    )
    outcome = store.action_outcome(state, record)
    assert outcome.state == "refused" and "accepted is not a valid step" in outcome.text


# ---- walk-in first -----------------------------------------------------------------------------


def test_the_stores_load_comes_from_store_load(state: store.StoreState) -> None:
    load = store.store_load(state, FIXTURE_STORE, NOW)
    assert load.open_orders == 9 and load.capacity_per_hour == 12
    assert load.saturation == pytest.approx(0.75)
    assert load.oldest_open_age_s == pytest.approx(55 * 60)
    assert not load.paused


def test_pausing_publishes_the_whole_location_record_with_paused_until(
    state: store.StoreState,
) -> None:
    record = store.pause_record(state, FIXTURE_STORE, NOW, 30)
    loc = Location.model_validate_json(orjson.dumps(record))
    assert loc.paused_until == NOW + timedelta(minutes=30)
    assert loc.name == "Paris Rivoli" and loc.capacity_per_hour == 12

    store.fold(state, store.H_LOCATIONS, record, FIXTURE_STORE)
    load = store.store_load(state, FIXTURE_STORE, NOW)
    assert load.paused and load.paused_until == NOW + timedelta(minutes=30)
    assert not store.store_load(state, FIXTURE_STORE, NOW + timedelta(minutes=31)).paused

    resumed = store.pause_record(state, FIXTURE_STORE, NOW, None)
    assert Location.model_validate_json(orjson.dumps(resumed)).paused_until is None


def test_a_bad_pause_is_refused(state: store.StoreState) -> None:
    with pytest.raises(StoreError, match="unknown location"):
        store.pause_record(state, "ST-NOPE", NOW, 30)
    with pytest.raises(StoreError, match="1 minute to 24 hours"):
        store.pause_record(state, FIXTURE_STORE, NOW, 0)
    with pytest.raises(StoreError, match="aware"):
        store.pause_record(state, FIXTURE_STORE, NOW.replace(tzinfo=None), 30)


def test_only_active_locations_are_offered_stores_first(state: store.StoreState) -> None:
    ids = [i for i, _ in store.active_locations(state)]
    assert ids[:2] == [FIXTURE_STORE, FIXTURE_OTHER_STORE] and ids[-1].startswith("WH-")
    inactive = {**state.locations[FIXTURE_OTHER_STORE], "active": False}
    store.fold(state, store.H_LOCATIONS, inactive, FIXTURE_OTHER_STORE)
    assert FIXTURE_OTHER_STORE not in [i for i, _ in store.active_locations(state)]


# ---- returns ---------------------------------------------------------------------------------


def test_returnable_lines_are_delivered_minus_returned_with_prices(
    state: store.StoreState,
) -> None:
    view = store.order(state, FIXTURE_RETURN_ORDER)
    assert view is not None
    lines = {ln.sku: ln for ln in store.returnable(view)}
    assert (lines["SKU-0007"].delivered, lines["SKU-0007"].returned) == (2, 1)
    assert lines["SKU-0007"].returnable == 1 and lines["SKU-0007"].unit_price == 19.99
    assert lines["SKU-0080"].returnable == 1


def test_a_return_message_is_valid_and_bounded_by_what_is_returnable(
    state: store.StoreState,
) -> None:
    view = store.order(state, FIXTURE_RETURN_ORDER)
    assert view is not None
    value = store.return_message(
        view, FIXTURE_OTHER_STORE, [("SKU-0007", 1, True), ("SKU-0080", 1, False)], NOW
    )
    ret = Return.model_validate_json(orjson.dumps(value))
    assert ret.location_id == FIXTURE_OTHER_STORE
    assert [(ln.sku, ln.qty, ln.resellable) for ln in ret.lines] == [
        ("SKU-0007", 1, True),
        ("SKU-0080", 1, False),
    ]
    with pytest.raises(StoreError, match="only 1 unit"):
        store.return_message(view, FIXTURE_STORE, [("SKU-0007", 2, True)], NOW)
    with pytest.raises(StoreError, match="at least one unit"):
        store.return_message(view, FIXTURE_STORE, [("SKU-0007", 0, True)], NOW)
    with pytest.raises(StoreError, match="was not shipped"):
        store.return_message(view, FIXTURE_STORE, [("SKU-9", 1, True)], NOW)


def test_a_return_shows_the_refund_once_issued(state: store.StoreState) -> None:
    assert store.return_outcome(state, FIXTURE_RETURN_ORDER, "r-2").state == "waiting"
    store.fold(
        state,
        store.H_REFUNDS,
        {
            "refund_id": "RF-r-2",
            "order_id": FIXTURE_RETURN_ORDER,
            "return_event_id": "r-2",
            "amount": 45.0,
            "currency": "EUR",
            "payment": {"method": "card", "reference": "PSP-1"},
            "lines": [{"sku": "SKU-0080", "qty": 1, "unit_price": 45.0, "amount": 45.0}],
            "issued_at": NOW.isoformat(),
        },
    )
    outcome = store.return_outcome(state, FIXTURE_RETURN_ORDER, "r-2")
    assert outcome.state == "confirmed"
    assert outcome.text == "Refund RF-r-2: 45.00 EUR to card PSP-1"


# ---- the label -------------------------------------------------------------------------------


def test_the_label_addresses_the_customer_and_refuses_click_and_collect(
    state: store.StoreState,
) -> None:
    s = ship(state, "O-FIX-04")
    view = store.order(state, "O-FIX-04")
    assert view is not None
    data = label_data(s, view.placed, state.locations[FIXTURE_STORE], None, NOW)
    assert data.sender[0] == "Paris Rivoli"
    assert data.destination[0] == "Ada Lovelace"
    assert "12 rue de Rivoli" in data.destination
    with pytest.raises(StoreError, match="no shipping label"):
        label_data(ship(state, "O-FIX-05"), view.placed, None, None, NOW)
    with pytest.raises(StoreError, match="as placed is not known"):
        label_data(s, None, None, None, NOW)


def test_a_label_without_address_lines_falls_back_to_postcode_and_coordinates(
    state: store.StoreState,
) -> None:
    s = ship(state, "O-FIX-04")
    placed = {"customer": {"lat": 48.85, "lon": 2.35, "postcode": "75001"}, "delivery": {}}
    data = label_data(s, placed, None, None, NOW)
    assert data.destination == ("Customer", "75001", "(48.8500, 2.3500)")
    assert data.service == "standard"


@pytest.mark.skipif(
    not (shutil.which("pdftotext") and shutil.which("zbarimg") and shutil.which("pdftoppm")),
    reason="needs poppler-utils and zbar-tools: bash scripts/install-browser.sh",
)
def test_the_label_pdf_is_a6_with_the_text_and_a_code128_barcode(
    state: store.StoreState, tmp_path: Path
) -> None:
    s = ship(state, "O-FIX-04")
    view = store.order(state, "O-FIX-04")
    assert view is not None
    pdf = tmp_path / "label.pdf"
    pdf.write_bytes(
        label_pdf(label_data(s, view.placed, state.locations[FIXTURE_STORE], None, NOW))
    )

    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    assert "297.638 x 419.528 pts" in info.stdout  # A6: 105 x 148 mm
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for expected in (
        "SHIPPING LABEL",
        "Paris Rivoli",
        "Ada Lovelace",
        "O-FIX-04-S1",
        WEIGHT_PLACEHOLDER,
    ):
        assert expected in text, expected
    subprocess.run(
        ["pdftoppm", "-r", "200", "-png", "-singlefile", str(pdf), str(tmp_path / "label")],
        check=True,
    )
    decoded = subprocess.run(
        ["zbarimg", "-q", "--raw", "-Scode128.enable", str(tmp_path / "label.png")],
        capture_output=True,
        text=True,
    )
    assert decoded.stdout.strip() == "O-FIX-04-S1", decoded
