"""Promised dates through the order machine (domain/orders.py) and lateness in the load fold
(domain/load.py): ship_by on every decision, the order's promised date, a re-route that slips
it, the `late` event once, and store-load's late count."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from domain.load import LoadState, apply, snapshot
from domain.orders import ShipByCheck
from streams.records import LoadOp, OrderEvent, RoutedOrder
from tests.unit.test_orders_machine import LOCS, T0, World, order, reserves

# T0 is Monday 2026-01-05 10:00 UTC (11:00 in Paris): a store ships by 16:00 Paris time


def decisions(effects: Sequence[object]) -> list[RoutedOrder]:
    return [e for e in effects if isinstance(e, RoutedOrder)]


def events(effects: Sequence[object], change: str) -> list[OrderEvent]:
    return [e for e in effects if isinstance(e, OrderEvent) and e.change == change]


def test_every_decision_carries_ship_by_and_the_promised_dates() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    effects = w.place_and_route(order())
    [d] = decisions(effects)
    [s] = d.shipments
    assert s.ship_by == datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # 16:00 CET
    assert s.promised_delivery == date(2026, 1, 6)
    assert s.ready_for_pickup_by is None
    assert d.promised_date == date(2026, 1, 6) and d.promise_slipped is False
    checks = [e for e in effects if isinstance(e, ShipByCheck)]
    assert [c.at for c in checks] == [s.ship_by.timestamp()]


def test_the_owner_is_told_the_ship_by_with_the_reservation() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    [ask] = reserves(w.run("place", order()))
    assert ask.due == datetime(2026, 1, 5, 15, 0, tzinfo=UTC).timestamp()


def test_click_and_collect_promises_a_pickup_time() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    [d] = decisions(w.place_and_route(order(pickup="ST-A")))
    [s] = d.shipments
    assert s.mode == "click_collect"
    assert s.promised_delivery is None
    assert s.ready_for_pickup_by is not None and s.ship_by == s.ready_for_pickup_by
    assert s.ready_for_pickup_by.astimezone(UTC) == T0 + timedelta(seconds=120)  # 30/h
    assert d.promised_date == date(2026, 1, 5)


def test_a_reroute_recomputes_the_promise_and_says_it_slipped() -> None:
    w = World({"SKU-1": {"ST-A": 1, "WH-1": 5}})
    [first] = decisions(w.place_and_route(order()))
    assert first.shipments[0].location_id == "ST-A"
    assert first.promised_date == date(2026, 1, 6)
    w.now = T0 + timedelta(hours=6)  # 17:00 Paris: the warehouse 300 km away ships at 20:00
    effects = w.step("rejected", first.shipments[0].shipment_id, "ST-A", reason="damaged")
    [second] = decisions(w.answer_all(effects))
    assert second.shipments[0].location_id == "WH-1"
    assert second.promised_date == date(2026, 1, 7)  # 2 transit days
    assert second.promise_slipped is True
    assert second.previous_promised_date == date(2026, 1, 6)


def test_a_shipment_still_in_preparation_at_ship_by_is_reported_late_once() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    [d] = decisions(w.place_and_route(order()))
    sid = d.shipments[0].shipment_id
    w.step("accepted", sid, "ST-A")
    [late] = events(w.run("ship_by_passed", sid), "late")
    assert late.shipment_id == sid and late.location_id == "ST-A"
    assert late.detail["status"] == "accepted"
    assert [s.late for s in late.shipments] == [True]
    assert w.run("ship_by_passed", sid) == []  # once


def test_a_shipment_shipped_or_shelved_in_time_is_not_late() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    [d] = decisions(w.place_and_route(order(pickup="ST-A")))
    sid = d.shipments[0].shipment_id
    for step in ("accepted", "picked", "packed", "ready_for_pickup"):
        w.step(step, sid, "ST-A")
    assert w.run("ship_by_passed", sid) == []


def _op(kind: str, sid: str, n: int, **kw: object) -> LoadOp:
    return LoadOp(
        kind=kind,  # type: ignore[arg-type]
        location_id="ST-A",
        shipment_id=sid,
        origin="wo:0",
        seq=(n, 0),
        at=T0.timestamp(),
        **kw,  # type: ignore[arg-type]
    )


def test_store_load_counts_shipments_late_against_ship_by() -> None:
    st = LoadState.from_dict(None)
    due = (T0 + timedelta(hours=1)).timestamp()
    records = {}
    for i, sid in enumerate(("S1", "S2", "S3")):
        out = apply(st, _op("open", sid, i, units=1.0, due=due), None)
        records[sid] = out.shipment
    before, after = T0.timestamp() + 1800, due + 60
    assert snapshot("ST-A", st, LOCS["ST-A"], before).late_shipments == 0
    assert snapshot("ST-A", st, LOCS["ST-A"], after).late_shipments == 3
    apply(st, _op("close", "S1", 10), records["S1"])  # shipped
    shelved = apply(st, _op("step", "S2", 11, step="packed->ready_for_pickup"), records["S2"])
    assert shelved.shipment is not None and shelved.shipment.due is None
    assert snapshot("ST-A", st, LOCS["ST-A"], after).late_shipments == 1
    # a record from before ship_by (three items) reads back without a due time
    assert LoadState.from_dict(st.to_dict()).by_due == st.by_due
