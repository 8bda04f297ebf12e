"""The store-staff model: event sequences, pace, push-back, returns."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from sim.network import generate_network
from sim.staff import Staff, StaffConfig
from sim.workload import Catalogue, Emission, Workload
from streams.records import FulfilmentEvent, Location, Return
from streams.topics import TOPICS

T0 = datetime(2025, 11, 28, 9, 0, tzinfo=UTC)
CALM = StaffConfig(
    reject_rate_store=0.0,
    reject_rate_hub=0.0,
    short_pick_rate=0.0,
    timeout_rate=0.0,
    return_rate=0.0,
)


def _store(loc_id: str = "ST-T", cap: int = 10, backlog: int = 1000, **kw: Any) -> Location:
    return Location(
        location_id=loc_id,
        kind="store",
        name=loc_id,
        lat=48.85,
        lon=2.35,
        ship_from_store=True,
        click_collect=True,
        capacity_per_hour=cap,
        max_backlog=backlog,
        safety_stock=1,
        **kw,
    )


WAREHOUSE = Location(
    location_id="WH-T", kind="warehouse", name="WH", lat=47.9, lon=1.9, capacity_per_hour=400,
    max_backlog=5000,
)  # fmt: skip


def _routed(order_id: str, *shipments: tuple[str, str, str], attempt: int = 1) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "attempt": attempt,
        "status": "routed",
        "decided_at": T0.isoformat(),
        "shipments": [
            {"shipment_id": sid, "location_id": loc, "mode": mode,
             "lines": [{"sku": "SKU-1", "qty": 2}, {"sku": "SKU-2", "qty": 1}]}
            for sid, loc, mode in shipments
        ],
        "reasons": {},
    }  # fmt: skip


def _order(order_id: str, pickup: str | None = None) -> dict[str, Any]:
    mode = "click_collect" if pickup else "home"
    return {
        "type": "order_placed",
        "order_id": order_id,
        "customer": {"lat": 48.86, "lon": 2.34},
        "delivery": {"mode": mode, "pickup_location_id": pickup},
        "lines": [{"sku": "SKU-1", "qty": 2}, {"sku": "SKU-2", "qty": 1}],
    }


def _run(staff: Staff, until: datetime) -> list[Emission]:
    return staff.due(until)


def _fe(events: list[Emission]) -> list[FulfilmentEvent]:
    out = []
    for topic, key, value in events:
        assert topic is TOPICS.fulfilment_events
        ev = FulfilmentEvent.model_validate_json(orjson.dumps(value))
        assert key == ev.order_id
        out.append(ev)
    return out


def test_home_delivery_goes_accepted_picked_packed_labelled_shipped_in_time_order() -> None:
    staff = Staff([_store()], 1, config=CALM)
    staff.on_order(_order("O-1"))
    assert staff.on_routed(_routed("O-1", ("S-1", "ST-T", "ship_from_store")), T0) == 1
    events = _fe(_run(staff, T0 + timedelta(days=1)))
    assert [e.type for e in events] == ["accepted", "picked", "packed", "label_printed", "shipped"]
    times = [e.occurred_at for e in events]
    assert times == sorted(times) and times[0] > T0
    assert {(e.location_id, e.shipment_id) for e in events} == {("ST-T", "S-1")}
    assert staff.open_shipments == 0
    assert sorted(staff.drain_consumption()) == [("ST-T", "SKU-1", 2), ("ST-T", "SKU-2", 1)]


def test_click_and_collect_goes_to_ready_for_pickup_then_collected_hours_later() -> None:
    staff = Staff([_store()], 1, config=CALM)
    staff.on_order(_order("O-1", pickup="ST-T"))
    staff.on_routed(_routed("O-1", ("S-1", "ST-T", "click_collect")), T0)
    events = _fe(_run(staff, T0 + timedelta(days=3)))
    steps = ["accepted", "picked", "packed", "ready_for_pickup", "collected"]
    assert [e.type for e in events] == steps
    ready, collected = events[3].occurred_at, events[4].occurred_at
    assert collected - ready >= timedelta(minutes=15)
    assert events[0].occurred_at - T0 < timedelta(minutes=10)  # claimed within minutes


def test_a_transfer_ships_from_the_origin_and_is_collected_at_the_pickup_store() -> None:
    staff = Staff([_store(), WAREHOUSE], 1, config=CALM)
    staff.on_order(_order("O-1", pickup="ST-T"))
    staff.on_routed(_routed("O-1", ("S-1", "WH-T", "transfer_to_store")), T0)
    events = _fe(_run(staff, T0 + timedelta(days=3)))
    assert [(e.type, e.location_id) for e in events] == [
        ("accepted", "WH-T"), ("picked", "WH-T"), ("packed", "WH-T"), ("label_printed", "WH-T"),
        ("shipped", "WH-T"), ("ready_for_pickup", "ST-T"), ("collected", "ST-T"),
    ]  # fmt: skip


def test_a_store_starts_at_most_its_capacity_per_hour_so_a_backlog_builds_then_drains() -> None:
    staff = Staff([_store(cap=10)], 1, config=CALM)
    for i in range(30):
        staff.on_routed(_routed(f"O-{i}", (f"S-{i}", "ST-T", "ship_from_store")), T0)
    early = _fe(_run(staff, T0 + timedelta(hours=1)))
    assert sum(e.type == "accepted" for e in early) == 30  # claimed quickly...
    assert staff.backlog("ST-T") >= 19  # ...but prepared at the store's pace
    late = _fe(_run(staff, T0 + timedelta(hours=6)))
    assert staff.backlog("ST-T") == 0 and staff.open_shipments == 0
    picked = sorted(e.occurred_at for e in early + late if e.type == "picked")
    assert len(picked) == 30
    for i, t in enumerate(picked):
        within_hour = [p for p in picked[i:] if p < t + timedelta(hours=1)]
        assert len(within_hour) <= 10
    assert picked[-1] - picked[0] >= timedelta(hours=2, minutes=50)


def test_each_shipment_is_scheduled_once_even_when_routed_orders_repeats_it() -> None:
    staff = Staff([_store(), _store("ST-U")], 1, config=CALM)
    first = _routed("O-1", ("S-1", "ST-T", "ship_from_store"))
    assert staff.on_routed(first, T0) == 1
    assert staff.on_routed(first, T0 + timedelta(seconds=5)) == 0  # redelivered
    again = _routed(
        "O-1", ("S-1", "ST-T", "ship_from_store"), ("S-2", "ST-U", "ship_from_store"), attempt=2
    )
    assert staff.on_routed(again, T0 + timedelta(minutes=1)) == 1
    events = _fe(_run(staff, T0 + timedelta(days=1)))
    per = Counter((e.shipment_id, e.type) for e in events)
    assert set(per.values()) == {1}
    assert per[("S-1", "shipped")] == per[("S-2", "shipped")] == 1
    ids = [e.event_id for e in events]
    assert len(ids) == len(set(ids))


def test_rejections_name_the_missing_lines_when_the_shelf_was_empty() -> None:
    cfg = StaffConfig(reject_rate_store=1.0, short_reject_share=1.0, timeout_rate=0.0)
    staff = Staff([_store()], 1, config=cfg)
    staff.on_routed(_routed("O-1", ("S-1", "ST-T", "ship_from_store")), T0)
    (ev,) = _fe(_run(staff, T0 + timedelta(days=1)))
    assert ev.type == "rejected" and ev.reason == "out_of_stock"
    assert ev.lines and {(ln.sku, ln.qty) for ln in ev.lines} <= {("SKU-1", 2), ("SKU-2", 1)}
    assert staff.open_shipments == 0


def test_a_short_pick_lists_the_units_actually_picked_and_ships_only_those() -> None:
    cfg = StaffConfig(reject_rate_store=0.0, short_pick_rate=1.0, timeout_rate=0.0, return_rate=0.0)
    staff = Staff([_store()], 3, config=cfg)
    staff.on_routed(_routed("O-1", ("S-1", "ST-T", "ship_from_store")), T0)
    events = _fe(_run(staff, T0 + timedelta(days=1)))
    assert [e.type for e in events][-1] == "shipped"
    picked = next(e for e in events if e.type == "picked")
    assert picked.lines is not None
    units = sum(ln.qty for ln in picked.lines)
    assert 1 <= units < 3
    assert sum(q for _, _, q in staff.drain_consumption()) == units


def test_a_short_picked_ship_complete_shipment_is_left_to_the_engine_to_route_again() -> None:
    cfg = StaffConfig(reject_rate_store=0.0, short_pick_rate=1.0, timeout_rate=0.0, return_rate=0.0)
    staff = Staff([_store()], 3, config=cfg)
    order = _order("O-1")
    order["delivery"]["split"] = "ship_complete"
    staff.on_order(order)
    staff.on_routed(_routed("O-1", ("S-1", "ST-T", "ship_from_store")), T0)
    events = _fe(_run(staff, T0 + timedelta(days=1)))
    assert [e.type for e in events] == ["accepted", "picked"]  # given back whole: no packing
    assert staff.open_shipments == 0 and staff.backlog("ST-T") == 0


def test_a_location_that_times_out_never_says_anything() -> None:
    staff = Staff([_store()], 1, config=StaffConfig(timeout_rate=1.0))
    assert staff.on_routed(_routed("O-1", ("S-1", "ST-T", "ship_from_store")), T0) == 1
    assert _run(staff, T0 + timedelta(days=2)) == []
    assert staff.stats["timed_out"] == 1


def test_a_full_backlog_rejects_new_shipments() -> None:
    staff = Staff([_store(cap=8, backlog=3)], 1, config=CALM)
    for i in range(6):
        staff.on_routed(_routed(f"O-{i}", (f"S-{i}", "ST-T", "ship_from_store")), T0)
    events = _fe(_run(staff, T0 + timedelta(minutes=10)))
    assert sum(e.type == "accepted" for e in events) == 3
    assert [e.reason for e in events if e.type == "rejected"] == ["backlog_full"] * 3


def test_a_cancelled_order_stops_being_prepared() -> None:
    staff = Staff([_store(cap=1)], 1, config=CALM)
    staff.on_routed(_routed("O-0", ("S-0", "ST-T", "ship_from_store")), T0)
    staff.on_routed(_routed("O-1", ("S-1", "ST-T", "ship_from_store")), T0)
    _run(staff, T0 + timedelta(minutes=20))
    staff.on_order({"type": "order_cancelled", "order_id": "O-1"})
    events = _fe(_run(staff, T0 + timedelta(days=1)))
    assert not [e for e in events if e.order_id == "O-1"]
    assert staff.open_shipments == 0 and staff.backlog("ST-T") == 0


def test_returns_follow_deliveries_with_lines_from_what_was_picked() -> None:
    net = generate_network(1, stores=10)
    cfg = StaffConfig(reject_rate_store=0.0, short_pick_rate=0.0, timeout_rate=0.0, return_rate=1.0)
    staff = Staff(net, 1, config=cfg)
    stores = [loc.location_id for loc in net if loc.kind == "store"]
    for i in range(20):
        staff.on_order(_order(f"O-{i}"))
        staff.on_routed(_routed(f"O-{i}", (f"S-{i}", stores[i % 10], "ship_from_store")), T0)
    events = _run(staff, T0 + timedelta(days=5))
    returns = [(k, v) for t, k, v in events if t is TOPICS.returns]
    assert len(returns) == 20
    kinds = set()
    for key, value in returns:
        ret = Return.model_validate_json(orjson.dumps(value))
        assert key == ret.order_id
        assert {(ln.sku, ln.qty) for ln in ret.lines} <= {("SKU-1", 1), ("SKU-1", 2), ("SKU-2", 1)}
        kinds.add(ret.location_id[:2])
    assert kinds == {"ST", "WH"}  # some in a store near the customer, some by post


def test_the_workload_and_the_staff_together_emit_only_valid_events() -> None:
    """A crude router (nearest warehouse, or the pickup store) closes the loop without Kafka."""
    net, cat = generate_network(5), Catalogue(5, 1000)
    start = datetime(2025, 11, 28, 8, 0, tzinfo=UTC)
    w = Workload(net, cat, 5, start, True, 240.0, replenish="consumption")
    staff = Staff(net, 5)
    t, n = start, 0
    counts: Counter[str] = Counter()
    while t < start + timedelta(hours=4):
        nxt = t + timedelta(minutes=5)
        for topic, _, v in w.events_between(t, nxt):
            if topic is TOPICS.web_orders:
                staff.on_order(v)
                if v["type"] == "order_placed":
                    n += 1
                    d = v["delivery"]
                    loc, mode = (
                        (d["pickup_location_id"], "click_collect")
                        if d["mode"] == "click_collect"
                        else ("WH-01", "ship_from_warehouse")
                    )
                    msg = {"order_id": v["order_id"], "attempt": 1, "shipments": [
                        {"shipment_id": f"{v['order_id']}-1", "location_id": loc, "mode": mode,
                         "lines": [{"sku": ln["sku"], "qty": ln["qty"]} for ln in v["lines"]]}
                    ]}  # fmt: skip
                    staff.on_routed(msg, nxt)
        for topic, _, v in staff.due(nxt):
            model = FulfilmentEvent if topic is TOPICS.fulfilment_events else Return
            model.model_validate_json(orjson.dumps(v))
            counts[v.get("type", "return")] += 1
        for loc_id, sku, q in staff.drain_consumption():
            w.record_consumption(loc_id, sku, q)
        t = nxt
    assert n > 1000
    for kind in ("accepted", "rejected", "shipped", "ready_for_pickup", "collected", "return"):
        assert counts[kind] > 0, kind


def test_malformed_routed_messages_are_ignored_not_fatal() -> None:
    staff = Staff([_store()], 1, config=CALM)
    bad: list[dict[str, Any]] = [
        {},
        {"order_id": 5},
        {"order_id": "O-1", "shipments": "nope"},
        {"order_id": "O-1", "shipments": [None, {"shipment_id": "S-1"}]},
        {"order_id": "O-1", "shipments": [
            {"shipment_id": "S-2", "location_id": "ST-T", "lines": [{"sku": "A", "qty": "2"}]},
            {"shipment_id": "S-3", "location_id": "NOWHERE", "lines": [{"sku": "A", "qty": 1}]},
        ]},
    ]  # fmt: skip
    for msg in bad:
        assert staff.on_routed(msg, T0) == 0
    assert staff.due(T0 + timedelta(days=1)) == []


def test_staff_work_their_shifts_night_orders_wait_for_the_morning() -> None:
    """A store preparing 09:30-19:00 (UTC here): shipments routed at night are claimed and
    picked after 09:30 only, at the store's pace; a warehouse without calendar works at night."""
    hours = {d: ["09:00-20:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    prep = {d: ["09:30-19:00"] for d in hours}
    store = _store(cap=6, calendar={"tz": "UTC", "opening": hours, "preparation": prep})
    staff = Staff([store, WAREHOUSE], seed=3, config=CALM)
    night = datetime(2025, 11, 28, 22, 0, tzinfo=UTC)
    for i in range(4):
        staff.on_order(_order(f"N-{i}"))
        staff.on_routed(_routed(f"N-{i}", (f"S-{i}", "ST-T", "ship_from_store")), night)
    staff.on_order(_order("W-1"))
    staff.on_routed(_routed("W-1", ("S-W", "WH-T", "ship_from_warehouse")), night)
    morning = datetime(2025, 11, 29, 9, 30, tzinfo=UTC)
    events = _fe(_run(staff, morning))
    assert {(e.shipment_id, e.type) for e in events} >= {("S-W", "accepted")}
    assert not [e for e in events if e.location_id == "ST-T"]  # nothing done at night
    events = _fe(_run(staff, morning + timedelta(hours=2)))
    claims = [e for e in events if e.type == "accepted" and e.location_id == "ST-T"]
    assert len(claims) == 4 and all(e.occurred_at >= morning for e in claims)
    picks = sorted(e.occurred_at for e in events if e.type == "picked")
    assert len(picks) >= 3 and picks[0] > morning
    # one start every 10 min (6 an hour): picks come at the store's pace, not at once
    assert all(
        b - a >= timedelta(minutes=10) - timedelta(seconds=1)
        for a, b in zip(picks, picks[1:], strict=False)
    )


def test_work_that_runs_past_closing_resumes_with_the_next_shift() -> None:
    prep = {d: ["09:30-19:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    store = _store(cap=1, calendar={"tz": "UTC", "opening": prep, "preparation": prep})
    staff = Staff([store], seed=5, config=CALM)
    evening = datetime(2025, 11, 28, 18, 0, tzinfo=UTC)
    for i in range(3):
        staff.on_order(_order(f"E-{i}"))
        staff.on_routed(_routed(f"E-{i}", (f"S-{i}", "ST-T", "ship_from_store")), evening)
    events = _fe(_run(staff, evening + timedelta(days=1)))
    late = [e.occurred_at for e in events if e.type in ("picked", "packed", "label_printed")]
    for t in late:
        minute = t.hour * 60 + t.minute
        assert 9 * 60 + 30 <= minute <= 19 * 60, t  # only within the shift
    assert max(late).date() > evening.date()  # one hour a start: the last ones went overnight


def test_a_partial_cancellation_is_not_asked_once_the_units_left() -> None:
    """The simulator does not send a cancellation the engine must refuse (shipped units):
    before the shipment leaves it may be sent, after it it is dropped."""
    staff = Staff([_store()], 1, config=CALM)
    staff.on_order(_order("O-0"))
    staff.on_routed(_routed("O-0", ("S-0", "ST-T", "ship_from_store")), T0)
    cancel = {"type": "order_cancelled", "order_id": "O-0", "lines": [{"sku": "SKU-1", "qty": 1}]}
    assert staff.cancellable(cancel)
    events = _fe(_run(staff, T0 + timedelta(days=1)))
    assert any(e.type == "shipped" and e.order_id == "O-0" for e in events)
    assert not staff.cancellable(cancel)
    whole = {"type": "order_cancelled", "order_id": "O-0"}
    assert not staff.cancellable(whole)  # every shipment left: "it can only be returned"
    assert staff.cancellable({**cancel, "order_id": "O-unknown"})


def test_a_whole_cancellation_is_asked_only_while_no_shipment_has_left() -> None:
    """Once some units left, a whole cancellation could overtake the shipped event on its
    way to the engine (another topic) and cancel goods already gone: the rest is cancelled
    line by line instead."""
    staff = Staff([_store(), _store("ST-U")], 1, config=CALM)
    staff.on_order(_order("O-0"))
    staff.on_routed(_routed("O-0", ("S-0", "ST-T", "ship_from_store")), T0)
    whole = {"type": "order_cancelled", "order_id": "O-0"}
    assert staff.cancellable(whole)  # nothing left yet
    _run(staff, T0 + timedelta(days=1))
    assert not staff.cancellable(whole)
    staff.on_routed(_routed("O-0", ("S-1", "ST-U", "ship_from_store"), attempt=2), T0)
    assert not staff.cancellable(whole)  # a shipment still open, but one left


def _line_cancel(order_id: str, at: datetime, sku: str = "SKU-2", qty: int = 1) -> dict[str, Any]:
    return {
        "type": "order_cancelled",
        "order_id": order_id,
        "occurred_at": at.isoformat(),
        "lines": [{"sku": sku, "qty": qty}],
    }


def _picked_not_shipped(staff: Staff, order_id: str) -> datetime:
    """Run the staff until the order's shipment is picked (not shipped yet); returns when."""
    t = T0
    while True:
        t += timedelta(seconds=30)
        types = [e.type for e in _fe(_run(staff, t)) if e.order_id == order_id]
        assert "shipped" not in types
        if "picked" in types:
            return t


def test_a_line_cancellation_holds_the_work_until_the_engine_applied_it() -> None:
    """A shipment picked when the customer cancels a line: nothing more is done with it until
    the engine re-publishes the order with the cancellation applied (its pick or shipment
    would otherwise cross the cancellation: "shipped after cancellation"); the engine emptied
    it, so it is never shipped; a shrunk one goes on."""
    staff = Staff([_store()], 1, config=CALM)
    for oid in ("O-0", "O-1"):
        staff.on_order(_order(oid))
        staff.on_routed(_routed(oid, (f"S-{oid}", "ST-T", "ship_from_store")), T0)
    at = _picked_not_shipped(staff, "O-0")
    _picked_not_shipped(staff, "O-1")
    for oid in ("O-0", "O-1"):
        cancel = _line_cancel(oid, at)
        assert staff.cancellable(cancel)
        staff.on_order(cancel)
    later = at + timedelta(minutes=20)
    assert [e for e in _fe(_run(staff, later)) if e.type in ("packed", "shipped")] == []
    assert staff.stats["held_for_change"] >= 2
    emptied = {**_routed("O-0"), "shipments": [], "reasons": {"lines_cancelled": True}}
    staff.on_routed(emptied, later)
    shrunk = _routed("O-1", ("S-O-1", "ST-T", "ship_from_store"))
    shrunk["shipments"][0]["lines"] = [{"sku": "SKU-1", "qty": 2}]
    shrunk["reasons"] = {"lines_cancelled": True}
    staff.on_routed(shrunk, later)
    events = _fe(_run(staff, T0 + timedelta(days=1)))
    assert [e.type for e in events if e.order_id == "O-0"] == []
    assert ("O-1", "shipped") in {(e.order_id, e.type) for e in events}
    assert staff.stats["closed_by_engine"] == 1


def test_a_line_cancellation_the_engine_never_answers_holds_the_work_for_a_while_only() -> None:
    staff = Staff([_store()], 1, config=CALM)
    staff.on_order(_order("O-0"))
    staff.on_routed(_routed("O-0", ("S-0", "ST-T", "ship_from_store")), T0)
    at = _picked_not_shipped(staff, "O-0")
    staff.on_order(_line_cancel("O-0", at))
    hold = timedelta(seconds=CALM.change_hold_s)
    early = [e for e in _fe(_run(staff, at + hold - timedelta(seconds=1)))]
    assert early == []
    events = _fe(_run(staff, T0 + timedelta(days=1)))
    assert events and min(e.occurred_at for e in events) >= at + hold


def test_cancelling_every_line_stops_the_work_as_a_whole_cancellation() -> None:
    """The engine cancels the order when no unit is left (no routed order follows): the
    staff stop at once."""
    staff = Staff([_store()], 1, config=CALM)
    staff.on_order(_order("O-0"))
    staff.on_routed(_routed("O-0", ("S-0", "ST-T", "ship_from_store")), T0)
    staff.on_order(_line_cancel("O-0", T0, "SKU-1", 2))
    staff.on_order(_line_cancel("O-0", T0, "SKU-2", 1))
    assert _run(staff, T0 + timedelta(days=1)) == []
    assert staff.stats["cancelled_in_store"] == 1


def test_a_shipment_a_line_cancellation_shrank_is_picked_as_it_is_now() -> None:
    """The engine re-publishes the order after a line cancellation: the staff pick what the
    shipment holds now (picking the first quantity was dead-lettered: "picked more than
    shipment holds"), and stop work on a shipment it no longer lists."""
    staff = Staff([_store()], 1, config=replace(CALM, short_pick_rate=1.0))
    staff.on_order(_order("O-0"))
    staff.on_order(_order("O-1"))
    staff.on_routed(_routed("O-0", ("S-0", "ST-T", "ship_from_store")), T0)
    staff.on_routed(_routed("O-1", ("S-1", "ST-T", "ship_from_store")), T0)
    shrunk = _routed("O-0", ("S-0", "ST-T", "ship_from_store"))
    shrunk["shipments"][0]["lines"] = [{"sku": "SKU-1", "qty": 1}]  # SKU-1 2 -> 1, SKU-2 gone
    staff.on_routed(shrunk, T0)
    emptied = {**_routed("O-1"), "shipments": []}  # its only shipment was cancelled
    staff.on_routed(emptied, T0)
    events = _fe(_run(staff, T0 + timedelta(days=1)))
    assert [e.type for e in events if e.order_id == "O-1"] == []
    picked = [e for e in events if e.order_id == "O-0" and e.type == "picked"]
    assert len(picked) == 1 and picked[0].lines is None  # one unit: never short, all of it
    assert staff.stats["closed_by_engine"] == 1


def test_staff_at_half_pace_start_half_the_declared_capacity_per_hour() -> None:
    """`pace` below 1: the staff achieve only part of the capacity the engine plans with."""
    started = {}
    for pace in (1.0, 0.5):
        staff = Staff([_store(cap=10)], 1, config=replace(CALM, pace=pace))
        for i in range(40):
            staff.on_routed(_routed(f"O-{i}", (f"S-{i}", "ST-T", "ship_from_store")), T0)
        picked = [e for e in _fe(_run(staff, T0 + timedelta(hours=2))) if e.type == "picked"]
        started[pace] = len(picked)
    assert 18 <= started[1.0] <= 21 and 8 <= started[0.5] <= 11, started
