"""Walk-in customers first: a location's `paused_until` makes it ineligible for web orders.

The store app publishes the location record with `paused_until` set; routing (domain.routing)
filters such a location out with the reason `paused` while the decision's time is before it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.orders import Context, Machine
from domain.routing import RoutingPolicy, decide
from streams.records import Location, WebOrder
from tests.unit.test_routing_policy import CUST, Stock, loc, req

NOW = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
POLICY = RoutingPolicy.default()


def paused(location: Location, until: datetime | None) -> Location:
    return location.model_copy(update={"paused_until": until})


def test_a_store_paused_until_later_is_ineligible_with_the_reason_paused() -> None:
    near = paused(loc("ST-1", km_north=1), NOW + timedelta(minutes=30))
    far = loc("ST-2", km_north=40)
    stock = Stock({"A": {"ST-1": 5, "ST-2": 5}})

    d = decide(req(("A", 1)), stock, {"ST-1": near, "ST-2": far}, {}, POLICY, now=NOW)

    assert d.status == "routed"
    assert [s.location_id for s in d.shipments] == ["ST-2"]
    assert d.reasons["ineligible"] == {"paused": ["ST-1"]}


def test_a_pause_that_has_ended_or_is_absent_changes_nothing() -> None:
    stock = Stock({"A": {"ST-1": 5, "ST-2": 5}})
    far = loc("ST-2", km_north=40)
    for until in (NOW - timedelta(seconds=1), NOW, None):
        near = paused(loc("ST-1", km_north=1), until)
        d = decide(req(("A", 1)), stock, {"ST-1": near, "ST-2": far}, {}, POLICY, now=NOW)
        assert [s.location_id for s in d.shipments] == ["ST-1"], until
        assert "paused" not in d.reasons["ineligible"]


def test_without_a_decision_time_pauses_are_not_checked() -> None:
    near = paused(loc("ST-1", km_north=1), NOW + timedelta(hours=1))
    d = decide(req(("A", 1)), Stock({"A": {"ST-1": 5}}), {"ST-1": near}, {}, POLICY)
    assert [s.location_id for s in d.shipments] == ["ST-1"]


def test_a_paused_pickup_store_does_not_serve_from_its_own_shelf() -> None:
    pickup = paused(loc("ST-1"), NOW + timedelta(minutes=10))
    wh = loc("WH-1", kind="warehouse", km_north=20)
    stock = Stock({"A": {"ST-1": 3, "WH-1": 3}})

    d = decide(
        req(("A", 1), mode="click_collect", pickup="ST-1"),
        stock,
        {"ST-1": pickup, "WH-1": wh},
        {},
        POLICY,
        now=NOW,
    )

    assert d.reasons["own_shelf"] == "paused"
    assert [(s.location_id, s.mode) for s in d.shipments] == [("WH-1", "transfer_to_store")]


def test_a_paused_location_on_the_wire_is_read_from_iso_text() -> None:
    raw = (
        '{"location_id": "ST-9", "kind": "store", "name": "Lyon", "lat": 45.7, "lon": 4.8,'
        ' "paused_until": "2026-11-30T17:30:00+00:00"}'
    )
    location = Location.model_validate_json(raw)
    assert location.paused_until == NOW + timedelta(minutes=30)
    # older producers do not send it: the record stays valid and unpaused
    assert (
        Location.model_validate_json(
            raw.replace(', "paused_until": "2026-11-30T17:30:00+00:00"', "")
        ).paused_until
        is None
    )


def test_the_order_machine_routes_around_a_store_paused_at_the_time_of_the_order() -> None:
    near = paused(loc("ST-1", km_north=1), NOW + timedelta(minutes=30))
    far = loc("ST-2", km_north=40)
    ctx = Context(
        now=NOW,
        locations={"ST-1": near, "ST-2": far},
        stock=Stock({"A": {"ST-1": 5, "ST-2": 5}}),
        loads={},
        policy=POLICY,
        acceptance_timeout_s=900.0,
        event_prefix="t",
    )
    order = WebOrder.model_validate(
        {
            "event_id": "e-1",
            "occurred_at": NOW,
            "type": "order_placed",
            "order_id": "O-1",
            "customer": {"lat": CUST[0], "lon": CUST[1]},
            "delivery": {"mode": "home"},
            "lines": [{"sku": "A", "qty": 1, "unit_price": 10.0}],
            "currency": "EUR",
            "payment": {"method": "card", "reference": "p-1"},
        }
    )
    m = Machine(None, ctx)
    m.place(order)

    assert m.state is not None and m.state.pending is not None
    assert [p["location_id"] for p in m.state.pending.plans] == ["ST-2"]
