"""Backorders (domain/backorders.py): the per-SKU queue and the order machine's side."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
import pytest

from domain.backorders import Accepted, BackorderPolicy, Dropped, Queue, Retry, late_after
from domain.geo import great_circle_km
from domain.orders import BackorderEffect, Deadline, LifecycleError, Refusal, ReserveEffect
from domain.promise import shipment_promise
from domain.routing import RoutingPolicy
from streams.records import (
    BackorderRetry,
    PreorderAccepted,
    PreorderDropped,
    PreorderRefused,
    WebOrder,
)
from tests.unit.test_orders_machine import (
    PARIS,
    T0,
    World,
    cancellation,
    load_ops,
    order,
    published,
    reserves,
    stock_ops,
)

ON = BackorderPolicy(enabled=True, max_wait_days=2.0)


def world(stock: dict[str, dict[str, int]], **kw: Any) -> World:
    w = World(stock, **kw)
    w.policy = replace(w.policy, backorder=kw.pop("backorder", ON))
    return w


def bo(effects: list[Any]) -> list[tuple[str, str, int]]:
    return [(e.kind, e.sku, e.qty) for e in effects if isinstance(e, BackorderEffect)]


def turn(sku: str, ticket: int = 1) -> BackorderRetry:
    return BackorderRetry(order_id="O-1", sku=sku, ticket=ticket)


def ship_complete(lines: list[tuple[str, int, float]]) -> WebOrder:
    o = order(lines=lines).model_dump(mode="json")
    o["delivery"]["split"] = "ship_complete"
    return WebOrder.model_validate_json(orjson.dumps(o))


# ---- the queue -----------------------------------------------------------------------------------


def test_the_queue_hands_one_turn_at_a_time_oldest_first() -> None:
    q = Queue(sku="A")
    assert q.wait("O-2", 1, since=20.0) == Retry("O-2", "A", 1)  # the first: a turn at once
    assert q.wait("O-1", 2, since=10.0) is None  # behind the turn in flight
    assert q.wait("O-2", 1, since=20.0) is None and q.in_flight is None  # no stock: waits
    assert q.stock_up("ST-1", 1) == Retry("O-1", "A", 2, {"ST-1": 1})  # oldest first
    assert q.stock_up("ST-2", 1) is None and q.again  # one turn in flight; remembered
    seen = {"ST-1": 1, "ST-2": 1}
    assert q.wait("O-1", 2, since=10.0) == Retry("O-1", "A", 3, seen)  # stock came: again
    assert q.wait("O-1", 2, since=10.0) is None and q.in_flight is None  # still not enough
    assert q.stock_up("ST-1", 2) == Retry("O-1", "A", 4, {**seen, "ST-1": 2})
    assert q.leave("O-1") == Retry("O-2", "A", 5, {**seen, "ST-1": 2})  # the next one's turn
    assert q.leave("O-2") is None and q.units == 0


def test_a_queue_survives_its_table_round_trip() -> None:
    q = Queue(sku="A")
    q.wait("O-1", 2, since=10.0)
    q.stock_up("ST-1", 4)
    again = Queue.from_dict(q.to_dict())
    assert again == q and again.retry() == Retry("O-1", "A", 1, {"ST-1": 4}) and again.again


def test_the_policy_reads_per_channel_rules_and_refuses_typos() -> None:
    p = BackorderPolicy.from_mapping(
        {"enabled": False, "max_wait_days": 7, "channels": {"web": {"enabled": True}}}
    )
    assert p.rule("web").enabled and p.rule("web").max_wait_days == 7.0
    assert not p.rule("store").enabled and p.anywhere
    with pytest.raises(ValueError, match="unknown keys"):
        RoutingPolicy.from_mapping({"backorder": {"enable": True}})


# ---- the order machine -------------------------------------------------------------------------


def test_without_the_policy_nothing_waits() -> None:
    w = world({}, backorder=BackorderPolicy())
    effects = w.run("place", order(lines=[("SKU-1", 1, 1.0)]))
    assert bo(effects) == [] and w.state is not None and w.state.status == "unroutable"


def test_a_line_without_stock_waits_and_routes_when_its_turn_comes() -> None:
    w = world({})
    effects = w.run("place", order(lines=[("SKU-1", 2, 1.0)]))
    assert bo(effects) == [("wait", "SKU-1", 2)]
    assert w.state is not None and w.state.status == "backordered"
    (ro,) = published(effects, "routed_orders")
    assert ro["status"] == "backordered" and ro["backordered_lines"] == [
        {"sku": "SKU-1", "qty": 2, "expected_date": None, "promised_date": None}  # no preorder
    ]
    assert [e["change"] for e in published(effects, "order_events")] == ["backordered"]
    assert Deadline("O-1#backorder", T0.timestamp() + 2 * 86400) in effects
    # no stock yet when the turn comes: waits again, no new event
    effects = w.run("backorder_retry", turn("SKU-1"))
    assert bo(effects) == [("wait", "SKU-1", 2)] and not published(effects, "order_events")
    w.stock.table["SKU-1"] = {"ST-A": 5}
    effects = w.answer_all(w.run("backorder_retry", turn("SKU-1", 2)))
    assert bo(effects) == [("leave", "SKU-1", 0)]
    changes = [e["change"] for e in published(effects, "order_events")]
    assert changes == ["routed", "backorder_routed"]
    assert Deadline("O-1#backorder", None) in effects
    assert w.state.status == "routed" and w.shipment().lines == {"SKU-1": 2}


def test_a_split_allowed_order_ships_what_is_there_and_the_rest_waits() -> None:
    w = world({"SKU-1": {"ST-A": 5}})
    effects = w.run("place", order(lines=[("SKU-1", 1, 1.0), ("SKU-2", 1, 1.0)]))
    assert bo(effects) == [("wait", "SKU-2", 1)]
    (ask,) = reserves(effects)
    assert ask.lines == (("SKU-1", 1),)
    w.answer(ask)
    assert w.state is not None and w.state.backordered == {"SKU-2": 1}


def test_a_ship_complete_order_never_splits_it_waits_whole() -> None:
    w = world({"SKU-1": {"ST-A": 5}, "SKU-2": {"ST-B": 5}})
    effects = w.run("place", ship_complete([("SKU-1", 1, 1.0), ("SKU-2", 1, 1.0)]))
    assert not reserves(effects)
    assert sorted(bo(effects)) == [("wait", "SKU-1", 1), ("wait", "SKU-2", 1)]
    w.stock.table["SKU-2"]["ST-A"] = 1
    effects = w.answer_all(w.run("backorder_retry", turn("SKU-1")))
    assert sorted(bo(effects)) == [("leave", "SKU-1", 0), ("leave", "SKU-2", 0)]
    assert w.state is not None and len(w.state.shipments) == 1
    assert w.shipment().lines == {"SKU-1": 1, "SKU-2": 1}


def test_a_backorder_past_max_wait_days_is_unroutable() -> None:
    w = world({})
    w.run("place", order(lines=[("SKU-1", 1, 1.0)]))
    w.now = T0 + timedelta(days=1)
    effects = w.run("acceptance_timeout", "O-1#backorder")
    assert bo(effects) == [] and Deadline("O-1#backorder", T0.timestamp() + 2 * 86400) in effects
    w.now = T0 + timedelta(days=2, seconds=1)
    effects = w.run("acceptance_timeout", "O-1#backorder")
    assert bo(effects) == [("leave", "SKU-1", 0)]
    (ro,) = published(effects, "routed_orders")
    assert ro["status"] == "unroutable" and ro["reasons"]["unroutable"] == "backorder_expired"
    assert w.state is not None and w.state.status == "unroutable"


def test_a_preorder_line_waits_max_wait_days_from_its_supply_date_the_others_expire() -> None:
    w = world({})
    w.run("place", order(lines=[("SKU-1", 1, 1.0), ("SKU-2", 1, 1.0)]))
    due = (T0 + timedelta(days=5)).timestamp()  # supply of SKU-1 due after max_wait_days (2)
    w.run(
        "preorder_accepted", PreorderAccepted(order_id="O-1", sku="SKU-1", qty=1, expected_date=due)
    )
    w.now = T0 + timedelta(days=2, seconds=1)
    effects = w.run("acceptance_timeout", "O-1#backorder")
    assert bo(effects) == [("leave", "SKU-2", 0)]  # the plain line expired, the preorder waits
    assert Deadline("O-1#backorder", due + 2 * 86400) in effects
    assert w.state is not None and w.state.backordered == {"SKU-1": 1}
    w.now = T0 + timedelta(days=7, seconds=1)
    effects = w.run("acceptance_timeout", "O-1#backorder")
    assert bo(effects) == [("leave", "SKU-1", 0)]
    assert w.state.status == "unroutable" and not w.state.backordered


def test_a_turn_handed_again_while_its_round_waits_asks_the_owner_again() -> None:
    """The ask or the owner's answer was lost with a dying worker: the queue's re-handed turn
    (RESEND_S) makes the order ask again what its round still awaits, the same shipment."""
    w = world({})
    w.run("place", order(lines=[("SKU-1", 1, 1.0)]))
    w.stock.table["SKU-1"] = {"ST-A": 3}
    (ask,) = reserves(w.run("backorder_retry", turn("SKU-1")))
    again = w.run("backorder_retry", turn("SKU-1"))
    assert reserves(again) == [ask] and bo(again) == []  # asked again, no stale leave
    effects = w.answer(ask)
    assert bo(effects) == [("leave", "SKU-1", 0)]
    assert w.state is not None and w.state.pending is None and w.shipment().location_id == "ST-A"
    assert w.run("backorder_retry", turn("SKU-1")) == [
        BackorderEffect("leave", "SKU-1", reason="not waiting")
    ]


def test_cancelling_a_backordered_line_leaves_its_queue() -> None:
    w = world({})
    w.run("place", order(lines=[("SKU-1", 3, 1.0), ("SKU-2", 1, 1.0)]))
    cx = {"event_id": "cx-1", "occurred_at": T0, "type": "order_cancelled", "order_id": "O-1"}
    effects = w.run(
        "cancel", WebOrder.model_validate({**cx, "lines": [{"sku": "SKU-1", "qty": 1}]})
    )
    assert bo(effects) == [("wait", "SKU-1", 2)]
    effects = w.run("cancel", WebOrder.model_validate({**cx, "event_id": "cx-2"}))
    assert sorted(bo(effects)) == [("leave", "SKU-1", 0), ("leave", "SKU-2", 0)]


def test_a_stale_turn_is_answered_with_a_leave() -> None:
    w = world({"SKU-1": {"ST-A": 5}})
    w.place_and_route(order(lines=[("SKU-1", 1, 1.0)]))
    effects = w.run("backorder_retry", turn("SKU-1"))
    assert bo(effects) == [("leave", "SKU-1", 0)] and not [
        e for e in effects if isinstance(e, ReserveEffect)
    ]


def test_a_turn_uses_the_owners_figures_where_the_view_lags() -> None:
    w = world({})
    w.run("place", order(lines=[("SKU-1", 2, 1.0)]))
    hinted = BackorderRetry(order_id="O-1", sku="SKU-1", ticket=1, available={"ST-B": 3})
    (ask,) = reserves(w.run("backorder_retry", hinted))
    assert ask.location_id == "ST-B" and ask.lines == (("SKU-1", 2),)


def test_the_head_giving_back_its_own_failed_turn_is_no_news() -> None:
    q = Queue(sku="A")
    assert q.wait("O-1", 5, since=1.0) is not None  # its first turn
    q.wait("O-2", 1, since=2.0)
    assert q.stock_up("ST-1", 3, by="O-1") is None and not q.again  # its own release
    assert q.wait("O-1", 5, since=1.0) is None  # no loop: the turn ends here
    assert q.stock_up("ST-1", 4, by="O-9") == Retry("O-1", "A", 2, {"ST-1": 4})


# ---- preorders ---------------------------------------------------------------------------------


def test_preorders_are_accepted_oldest_first_never_beyond_expected_supply() -> None:
    q = Queue(sku="A")
    q.wait("O-1", 2, since=1.0)
    assert q.claim() == []  # nothing expected yet: a plain backorder
    q.expect("ER-1", "WH-1", 3, due=100.0)
    q.expect("ER-1", "WH-1", 3, due=100.0)  # a re-read: no news
    q.expect("ER-2", "WH-1", 4, due=200.0)
    assert q.claim() == [Accepted("O-1", 2, 100.0, "WH-1")]
    q.wait("O-2", 2, since=2.0)
    q.wait("O-3", 4, since=3.0)
    q.wait("O-4", 1, since=4.0)
    assert q.claim() == [Accepted("O-2", 2, 200.0, "WH-1")]  # O-3 does not fit: nor after it
    assert sum(q.claims.values()) <= q.expected_units == 7


def test_a_short_receipt_drops_the_youngest_preorders_back_to_backorders() -> None:
    q = Queue(sku="A")
    q.expect("ER-1", "WH-1", 4, due=100.0)
    for i, since in enumerate((1.0, 2.0), start=1):
        q.wait(f"O-{i}", 2, since=since)
    q.claim()
    q.arrived("RC-1", "WH-1", 2)  # two of the four came
    q.arrived("RC-1", "WH-1", 2)  # a re-read: applied once
    assert q.expected_units == 0 and q.claims == {"O-1": 2} and q.landed == 2
    q.leave("O-1")
    assert q.claims == {} and q.landed == 0


def test_an_expected_receipt_in_the_past_is_refused() -> None:
    from streams.records import SupplierFeed

    feed = {
        "event_id": "ER-1",
        "occurred_at": "2026-01-05T10:00:00+00:00",
        "type": "expected_receipt",
        "location_id": "WH-1",
        "lines": [{"sku": "A", "qty": 3}],
    }
    with pytest.raises(ValueError, match="is in the past"):
        SupplierFeed.model_validate_json(
            orjson.dumps({**feed, "expected_date": "2026-01-04T10:00:00+00:00"})
        )
    with pytest.raises(ValueError, match="needs its expected_date"):
        SupplierFeed.model_validate_json(orjson.dumps(feed))
    ok = {**feed, "expected_date": "2026-01-09T10:00:00+00:00"}
    assert SupplierFeed.model_validate_json(orjson.dumps(ok)).expected_date is not None


def test_an_accepted_preorder_is_told_once_on_order_events() -> None:
    from streams.records import PreorderAccepted

    w = world({})
    w.run("place", order(lines=[("SKU-1", 2, 1.0)]))
    due = (T0 + timedelta(days=3)).timestamp()
    msg = PreorderAccepted(order_id="O-1", sku="SKU-1", qty=2, expected_date=due)
    (ev,) = published(w.run("preorder_accepted", msg), "order_events")
    assert ev["change"] == "preorder_accepted" and ev["order_status"] == "backordered"
    assert ev["detail"]["expected_date"] == (T0 + timedelta(days=3)).isoformat()
    assert w.run("preorder_accepted", msg) == []


def test_a_receipt_beyond_the_first_expectation_settles_the_next() -> None:
    q = Queue(sku="A")
    q.expect("ER-1", "WH-1", 3, due=100.0)
    q.expect("ER-2", "WH-1", 4, due=200.0)
    q.expect("ER-3", "ST-1", 5, due=50.0)
    q.arrived("RC-1", "WH-1", 5)
    assert q.expected_units == 2 + 5


def test_accepted_preorders_get_the_turns_first() -> None:
    q = Queue(sku="A")
    q.wait("O-old", 1, since=1.0)
    q.wait("O-old", 1, since=1.0)  # its first turn found nothing
    q.claims["O-new"] = 1  # accepted when it reached the queue, before O-old's claim could
    q.wait("O-new", 1, since=2.0)
    assert q.stock_up("WH-1", 1) == Retry("O-new", "A", 2, {"WH-1": 1})


def test_a_new_order_goes_behind_the_orders_waiting_for_its_sku() -> None:
    w = world({"SKU-1": {"ST-A": 5}, "SKU-2": {"ST-A": 5}})
    w.waiting = {"SKU-1": 3}
    effects = w.run("place", order(lines=[("SKU-1", 1, 1.0), ("SKU-2", 1, 1.0)]))
    assert bo(effects) == [("wait", "SKU-1", 1)]
    (ask,) = reserves(effects)
    assert ask.lines == (("SKU-2", 1),)


# ---- explicit preorders: asked by the order, granted or refused by the SKU's queue --------------


def preorder_order(lines: list[tuple[str, int, bool]], **delivery: Any) -> WebOrder:
    o = order(lines=[(s, q, 1.0) for s, q, _ in lines]).model_dump(mode="json")
    for ln, (_, _, pre) in zip(o["lines"], lines, strict=True):
        ln["preorder"] = pre
    o["delivery"].update(delivery)
    return WebOrder.model_validate_json(orjson.dumps(o))


def test_the_queue_grants_a_preorder_whole_on_unclaimed_supply_or_refuses_it() -> None:
    q = Queue(sku="A")
    assert q.preorder("O-1", 1, since=1.0) == 0  # nothing expected: refused, nothing joins
    q.expect("ER-1", "WH-1", 5, due=100.0)
    q.wait("O-0", 2, since=0.5)
    assert q.claim() == [Accepted("O-0", 2, 100.0, "WH-1")]  # a plain backorder claims first
    assert q.unclaimed == 3
    assert q.preorder("O-2", 4, since=2.0) == 3  # asked 4, 3 left: refused whole
    assert [e[1] for e in q.entries] == ["O-0"] and "O-2" not in q.claims
    assert q.preorder("O-2", 3, since=2.0) == Accepted("O-2", 3, 100.0, "WH-1")
    assert q.preorder("O-2", 3, since=2.0) == Accepted("O-2", 3, 100.0, "WH-1")  # re-sent ask
    assert q.unclaimed == 0 and q.units == 5 and q.in_flight == "O-0"  # joined, no new turn
    assert q.preorder("O-3", 1, since=3.0) == 0
    assert q.acceptances() == [Accepted("O-0", 2, 100.0, "WH-1"), Accepted("O-2", 3, 100.0, "WH-1")]
    assert Queue.from_dict(q.to_dict()).acceptances() == q.acceptances()
    q.leave("O-0")
    assert q.acceptances() == [Accepted("O-2", 3, 100.0, "WH-1")] and q.unclaimed == 2


def test_an_order_asking_preorders_routes_nothing_until_every_queue_answers() -> None:
    w = world({"SKU-2": {"ST-A": 5}})
    effects = w.run(
        "place", preorder_order([("SKU-1", 2, True), ("SKU-3", 1, True), ("SKU-2", 1, False)])
    )
    assert [(e.kind, e.sku, e.qty) for e in effects if isinstance(e, BackorderEffect)] == [
        ("preorder", "SKU-1", 2),
        ("preorder", "SKU-3", 1),
    ]
    assert effects == [e for e in effects if isinstance(e, BackorderEffect)]  # nothing else
    due = (T0 + timedelta(days=3)).timestamp()
    granted = PreorderAccepted(
        order_id="O-1", sku="SKU-1", qty=2, expected_date=due, location_id="WH-1"
    )
    assert w.run("preorder_accepted", granted) == []  # SKU-3 not answered yet
    effects = w.run(
        "preorder_accepted",
        PreorderAccepted(order_id="O-1", sku="SKU-3", qty=1, expected_date=due, location_id="WH-1"),
    )
    changes = [e["change"] for e in published(effects, "order_events")]
    assert changes == ["backordered", "preorder_accepted", "preorder_accepted"]
    (ask,) = reserves(effects)  # the plain line is routed now
    assert ask.lines == (("SKU-2", 1),)
    (ro,) = published(effects, "routed_orders")
    assert ro["status"] == "backordered" and [ln["sku"] for ln in ro["backordered_lines"]] == [
        "SKU-1",
        "SKU-3",
    ]
    assert w.run("preorder_accepted", granted) == []  # a repeated answer


def test_a_refused_preorder_refuses_the_order_whole_and_gives_back_the_grants() -> None:
    w = world({"SKU-2": {"ST-A": 5}})
    source = ("stockroute-web-orders", 2, 41, '{"order": "as sent"}')
    w.source = (*source[:3], source[3].encode())
    place = preorder_order([("SKU-1", 2, True), ("SKU-3", 5, True), ("SKU-2", 1, False)])
    w.run("place", place)
    w.source = None
    due = (T0 + timedelta(days=3)).timestamp()
    w.run(
        "preorder_accepted", PreorderAccepted(order_id="O-1", sku="SKU-1", qty=2, expected_date=due)
    )
    refused = PreorderRefused(order_id="O-1", sku="SKU-3", asked=5, left=3)
    effects = w.run("preorder_refused", refused)
    reason = "preorder of 5 x SKU-3 beyond expected supply: 3 expected and not yet claimed"
    assert [e for e in effects if isinstance(e, Refusal)] == [Refusal(reason, source)]
    assert bo(effects) == [("leave", "SKU-1", 0), ("leave", "SKU-3", 0)]
    assert not reserves(effects) and not published(effects, "routed_orders")
    (ev,) = published(effects, "order_events")
    assert ev["change"] == "preorder_refused" and ev["order_status"] == "unroutable"
    assert ev["detail"] == {"sku": "SKU-3", "asked": 5, "left": 3, "reason": reason}
    assert w.run("preorder_refused", refused) == []  # a repeated answer
    again = w.run("refusal_replayed", refused)  # re-read after a crash: told again, as before
    assert [e for e in again if isinstance(e, Refusal)] == [Refusal(reason, source)]
    assert (
        bo(again) == bo(effects) and published(again, "order_events")[0]["detail"] == ev["detail"]
    )
    assert (
        w.run("refusal_replayed", PreorderRefused(order_id="O-1", sku="SKU-1", asked=2, left=0))
        == []
    )
    with pytest.raises(LifecycleError, match="was refused: preorder of 5 x SKU-3"):
        w.run("cancel", cancellation())
    assert w.run("place", place) == []  # the same order_placed again: ignored


def test_a_preorder_needs_backorders_for_its_channel_and_is_never_mixed_with_a_plain_line() -> None:
    w = world({}, backorder=BackorderPolicy(enabled=False))
    with pytest.raises(LifecycleError, match="backorders are not enabled for channel web"):
        w.run("place", preorder_order([("SKU-1", 1, True)]))
    assert w.state is None
    with pytest.raises(ValueError, match="SKU-1 is both a preorder line and a plain one"):
        preorder_order([("SKU-1", 1, True), ("SKU-1", 1, False)])


def test_a_preorder_is_promised_from_its_expected_date_by_the_normal_rules() -> None:
    w = world({})
    w.run("place", preorder_order([("SKU-1", 2, True)]))
    due = T0 + timedelta(days=10)
    granted = PreorderAccepted(
        order_id="O-1", sku="SKU-1", qty=2, expected_date=due.timestamp(), location_id="WH-1"
    )
    effects = w.run("preorder_accepted", granted)
    wh = w.locations["WH-1"]
    expected = shipment_promise(
        wh,
        now=due,
        queue_ahead=0,
        service="standard",
        mode="ship_from_warehouse",
        distance_km=great_circle_km(PARIS[0], PARIS[1], wh.lat, wh.lon),
        carriers=w.policy.carriers,
    ).customer_date
    assert expected > due.date()  # preparation, cut-off and transit come on top
    (ro,) = published(effects, "routed_orders")
    assert ro["promised_date"] == expected.isoformat()
    (line,) = ro["backordered_lines"]
    assert line["expected_date"] == due.isoformat().replace("+00:00", "Z")
    assert line["promised_date"] == expected.isoformat()
    accepted = [e for e in published(effects, "order_events") if e["change"] == "preorder_accepted"]
    assert accepted[0]["detail"]["promised_date"] == expected.isoformat()


def test_a_waiting_line_accepted_later_is_promised_from_its_supply_too() -> None:
    w = world({"SKU-2": {"ST-A": 5}})
    w.place_and_route(order(lines=[("SKU-1", 1, 1.0), ("SKU-2", 1, 1.0)]))
    first = w.state.promised_date if w.state else None
    due = T0 + timedelta(days=10)
    msg = PreorderAccepted(
        order_id="O-1", sku="SKU-1", qty=1, expected_date=due.timestamp(), location_id="ST-B"
    )
    (ro,) = published(w.run("preorder_accepted", msg), "routed_orders")
    assert first is not None and ro["promised_date"] > first  # the waiting line comes later
    assert ro["backordered_lines"][0]["promised_date"] == ro["promised_date"]


# ---- changes while preorders are asked, and preorders a short receipt drops -------------------


def cancel_lines(lines: list[tuple[str, int]], event_id: str = "cx-1") -> WebOrder:
    cx = {"event_id": event_id, "occurred_at": T0, "type": "order_cancelled", "order_id": "O-1"}
    return WebOrder.model_validate({**cx, "lines": [{"sku": s, "qty": q} for s, q in lines]})


def granted(sku: str, qty: int, days: float = 3.0) -> PreorderAccepted:
    due = (T0 + timedelta(days=days)).timestamp()
    return PreorderAccepted(order_id="O-1", sku=sku, qty=qty, expected_date=due, location_id="WH-1")


def test_a_line_cancellation_while_preorder_answers_are_awaited_shrinks_or_withdraws_asks() -> None:
    w = world({"SKU-2": {"ST-A": 5}})
    w.run("place", preorder_order([("SKU-1", 3, True), ("SKU-3", 1, True), ("SKU-2", 2, False)]))
    effects = w.run("cancel", cancel_lines([("SKU-1", 1), ("SKU-3", 1), ("SKU-2", 1)]))
    # the SKU-1 ask keeps 2 units (a grant gives the third back), the SKU-3 ask is withdrawn
    assert bo(effects) == [("shrink", "SKU-1", 2), ("leave", "SKU-3", 0)]
    assert not reserves(effects) and not published(effects, "routed_orders")  # still awaited
    (ev,) = published(effects, "order_events")
    assert ev["change"] == "lines_cancelled" and ev["order_status"] == "backordered"
    assert ev["detail"]["lines"] == [
        {"sku": "SKU-1", "qty": 1},
        {"sku": "SKU-2", "qty": 1},
        {"sku": "SKU-3", "qty": 1},
    ]
    # the queue granted the ask as sent (3): the order keeps 2, the third goes back
    effects = w.run("preorder_accepted", granted("SKU-1", 3))
    assert bo(effects)[0] == ("shrink", "SKU-1", 2)
    changes = [e["change"] for e in published(effects, "order_events")]
    assert changes == ["backordered", "preorder_accepted"]  # SKU-3 no longer awaited
    accepted = published(effects, "order_events")[1]
    assert accepted["detail"]["lines"] == [{"sku": "SKU-1", "qty": 2}]
    (ro,) = published(effects, "routed_orders")
    assert [(ln["sku"], ln["qty"]) for ln in ro["backordered_lines"]] == [("SKU-1", 2)]
    (ask,) = reserves(effects)
    assert ask.lines == (("SKU-2", 1),)  # what is left of the plain line
    assert w.state is not None and w.state.backordered == {"SKU-1": 2}
    # a grant of the withdrawn SKU-3 ask (re-sent after a crash) is given back
    assert bo(w.run("preorder_accepted", granted("SKU-3", 1))) == [("leave", "SKU-3", 0)]


def test_cancelling_every_asked_preorder_routes_the_plain_lines_at_once() -> None:
    w = world({"SKU-2": {"ST-A": 5}})
    w.run("place", preorder_order([("SKU-1", 2, True), ("SKU-2", 1, False)]))
    effects = w.run("cancel", cancel_lines([("SKU-1", 2)]))
    assert bo(effects) == [("leave", "SKU-1", 0)]
    (ask,) = reserves(effects)
    assert ask.lines == (("SKU-2", 1),)
    w.answer(ask)
    assert w.state is not None and w.state.status == "routed" and not w.state.asks
    # the queue's refusal of the withdrawn ask, read later: nothing is refused
    late = PreorderRefused(order_id="O-1", sku="SKU-1", asked=2, left=0)
    assert w.run("preorder_refused", late) == [] and w.state.refused is None


def test_cancelling_the_whole_order_line_by_line_while_awaited_withdraws_every_ask() -> None:
    w = world({})
    w.run("place", preorder_order([("SKU-1", 2, True), ("SKU-3", 1, True)]))
    w.run("preorder_accepted", granted("SKU-1", 2))
    effects = w.run("cancel", cancel_lines([("SKU-1", 2), ("SKU-3", 1)]))
    assert bo(effects) == [("leave", "SKU-1", 0), ("leave", "SKU-3", 0)]
    (ev,) = published(effects, "order_events")
    assert ev["order_status"] == "cancelled" and not published(effects, "routed_orders")
    assert w.state is not None and w.state.cancelled and not w.state.asks
    with pytest.raises(LifecycleError, match="is already cancelled"):
        w.run("cancel", cancel_lines([("SKU-3", 1)], event_id="cx-2"))


def test_a_refusal_of_an_ask_shrunk_since_asks_again_for_what_is_left() -> None:
    w = world({})
    w.run("place", preorder_order([("SKU-1", 5, True)]))
    w.run("cancel", cancel_lines([("SKU-1", 2)]))
    effects = w.run(
        "preorder_refused", PreorderRefused(order_id="O-1", sku="SKU-1", asked=5, left=3)
    )
    assert bo(effects) == [("preorder", "SKU-1", 3)] and w.state is not None
    assert not w.state.refused  # judged on what the customer still wants
    effects = w.run(
        "preorder_refused", PreorderRefused(order_id="O-1", sku="SKU-1", asked=3, left=2)
    )
    reason = "preorder of 3 x SKU-1 beyond expected supply: 2 expected and not yet claimed"
    assert [e.reason for e in effects if isinstance(e, Refusal)] == [reason]


def test_the_queue_shrinks_a_claim_and_never_joins_an_order_it_does_not_hold() -> None:
    q = Queue(sku="A")
    q.expect("ER-1", "WH-1", 5, due=100.0)
    assert q.preorder("O-1", 3, since=1.0) == Accepted("O-1", 3, 100.0, "WH-1")
    q.wait("O-2", 1, since=0.5)
    q.in_flight = "O-2"
    q.shrink("O-1", 2)
    assert q.claims == {"O-1": 2} and q.units == 3 and q.unclaimed == 3
    assert q.in_flight == "O-2"  # not an answer to the turn in flight
    q.shrink("O-9", 1)  # refused or unknown: nothing joins
    assert [e[1] for e in q.entries] == ["O-2", "O-1"]


def test_a_short_receipt_tells_each_dropped_preorder_until_claimed_again_or_gone() -> None:
    q = Queue(sku="A")
    q.expect("ER-1", "WH-1", 4, due=100.0)
    for i, since in enumerate((1.0, 2.0, 3.0), start=1):
        q.wait(f"O-{i}", 1 if i < 3 else 2, since=since)
    assert [a.order_id for a in q.claim()] == ["O-1", "O-2", "O-3"]
    assert q.arrived("RC-1", "WH-1", 1) == [Dropped("O-3", 2), Dropped("O-2", 1)]
    assert q.arrived("RC-1", "WH-1", 1) == []  # a re-read: applied once
    assert q.drops() == [Dropped("O-2", 1), Dropped("O-3", 2)] and "O-3" not in q.dues
    assert Queue.from_dict(q.to_dict()).drops() == q.drops()
    q.expect("ER-2", "WH-1", 1, due=300.0)
    assert q.claim() == [Accepted("O-2", 1, 300.0, "WH-1")]  # covered again: a new date
    q.leave("O-3")
    assert q.drops() == []


def test_a_dropped_preorder_stops_claiming_its_date_and_says_so() -> None:
    w = world({"SKU-2": {"ST-A": 5}}, backorder=BackorderPolicy(enabled=True, max_wait_days=2.0))
    w.run("place", preorder_order([("SKU-1", 2, True), ("SKU-2", 1, False)]))
    w.answer_all(w.run("preorder_accepted", granted("SKU-1", 2, days=10)))
    assert w.state is not None and w.state.promised_date is not None
    with_preorder = w.state.promised_date
    shipped_by = w.shipment().promised_delivery
    assert shipped_by is not None and shipped_by < with_preorder
    drop = PreorderDropped(order_id="O-1", sku="SKU-1", qty=2, left=0)
    effects = w.run("preorder_dropped", drop)
    (ev,) = published(effects, "order_events")
    assert ev["change"] == "preorder_dropped" and ev["order_status"] == "routed"
    assert ev["detail"]["lines"] == [{"sku": "SKU-1", "qty": 2}]
    assert ev["detail"]["reason"] == "short_receipt"
    assert ev["detail"]["promised_date"] == with_preorder
    (ro,) = published(effects, "routed_orders")
    (line,) = ro["backordered_lines"]
    assert line["expected_date"] is None and line["promised_date"] is None
    assert ro["promised_date"] == shipped_by  # only what is placed has a date now
    assert w.run("preorder_dropped", drop) == []  # re-sent after a crash: told once
    # it still waits max_wait_days from the date its supply was due, not from the order
    w.now = T0 + timedelta(days=5)
    assert bo(w.run("acceptance_timeout", "O-1#backorder")) == []
    assert w.state.backordered == {"SKU-1": 2}
    # a later announced receipt covers it: promised from that one
    effects = w.run("preorder_accepted", granted("SKU-1", 2, days=20))
    (ro,) = published(effects, "routed_orders")
    assert ro["backordered_lines"][0]["expected_date"] is not None
    assert ro["promised_date"] > with_preorder


def test_a_drop_before_the_other_answers_came_refuses_the_order_whole() -> None:
    w = world({})
    w.run("place", preorder_order([("SKU-1", 2, True), ("SKU-3", 1, True)]))
    w.run("preorder_accepted", granted("SKU-1", 2))
    drop = PreorderDropped(order_id="O-1", sku="SKU-1", qty=2, left=1)
    effects = w.run("preorder_dropped", drop)
    reason = (
        "preorder of 2 x SKU-1 beyond expected supply: a short receipt left 1 expected and "
        "not yet claimed"
    )
    assert [e.reason for e in effects if isinstance(e, Refusal)] == [reason]
    assert bo(effects) == [("leave", "SKU-1", 0), ("leave", "SKU-3", 0)]
    (ev,) = published(effects, "order_events")
    assert ev["change"] == "preorder_refused" and not published(effects, "routed_orders")
    again = w.run("drop_replayed", drop)  # re-read after a crash: told again
    assert [e.reason for e in again if isinstance(e, Refusal)] == [reason]


def test_units_landed_beyond_the_claims_are_plain_stock_never_claimed() -> None:
    q = Queue(sku="A")
    q.expect("ER-1", "WH-1", 4, due=100.0)
    q.wait("O-1", 2, since=1.0)
    q.claim()
    q.arrived("RC-1", "WH-1", 4)  # all four came, two are claimed
    q.wait("O-2", 1, since=2.0)
    assert q.claim() == [] and q.unclaimed == 0  # no claim on stock, nor a due date of 0
    q.leave("O-1")
    q.expect("ER-2", "WH-1", 3, due=200.0)
    assert q.unclaimed == 3  # nothing of the first receipt counts against the next one
    q.wait("O-3", 3, since=3.0)
    assert [a.order_id for a in q.claim()] == ["O-2"] and q.unclaimed == 2


# ---- late supply: past its expected day, not in ------------------------------------------------

DAY = 86400.0
DUE = T0.timestamp()  # 2026-01-05 10:00 UTC
MIDNIGHT = (T0.replace(hour=0) + timedelta(days=1)).timestamp()  # the end of its expected day


def utc_day_end(_location_id: str, due: float) -> float:
    return late_after(due, "UTC", 0.0)


def test_supply_is_late_after_the_end_of_its_expected_day_where_it_is_due_plus_the_grace() -> None:
    assert late_after(DUE, "UTC", 0.0) == MIDNIGHT
    assert late_after(DUE, "UTC", 0.5) == MIDNIGHT + DAY / 2
    # Paris is an hour ahead in January: its day ends at 23:00 UTC
    assert late_after(DUE, "Europe/Paris", 0.0) == MIDNIGHT - 3600
    assert BackorderPolicy.from_mapping({"late_grace_days": 1}).late_grace_days == 1.0
    assert BackorderPolicy().late_grace_days == 0.0  # default: the end of the expected day
    with pytest.raises(ValueError, match="late_grace_days"):
        BackorderPolicy.from_mapping({"late_grace_days": -1})
    with pytest.raises(ValueError, match="unknown keys"):  # a property of supply, not channels
        BackorderPolicy.from_mapping({"channels": {"web": {"late_grace_days": 1}}})


def test_late_supply_drops_its_preorders_in_their_place_and_takes_no_new_one() -> None:
    q = Queue(sku="A")
    q.expect("ER-1", "WH-1", 4, due=DUE)
    q.expect("ER-2", "WH-2", 2, due=DUE + 5 * DAY)
    for i, since in enumerate((1.0, 2.0, 3.0), start=1):
        q.wait(f"O-{i}", 2, since=since)
    assert [(a.order_id, a.location_id) for a in q.claim()] == [
        ("O-1", "WH-1"),
        ("O-2", "WH-1"),
        ("O-3", "WH-2"),
    ]
    assert q.overdue(MIDNIGHT - 1, utc_day_end) == []  # still its day: not late
    # its day is over and it has not come: its own claims go, youngest first, told as late;
    # the claim on the other supply keeps its date
    assert q.overdue(MIDNIGHT, utc_day_end) == [
        Dropped("O-2", 2, "late"),
        Dropped("O-1", 2, "late"),
    ]
    assert q.claims == {"O-3": 2} and q.dues == {"O-3": [DUE + 5 * DAY, "WH-2"]}
    assert [e[1] for e in q.entries] == ["O-1", "O-2", "O-3"] and q.units == 6
    assert q.overdue(MIDNIGHT + DAY, utc_day_end) == []  # idempotent: late once
    assert q.unclaimed == 0 and q.claim() == []
    assert q.preorder("O-4", 1, since=4.0) == 0  # no preorder on late supply
    q.expect("ER-1", "WH-1", 4, due=DUE)  # the announcement read again: still late
    assert q.unclaimed == 0
    assert q.drops() == [Dropped("O-1", 2, "late"), Dropped("O-2", 2, "late")]
    again = Queue.from_dict(q.to_dict())
    assert again.drops() == q.drops() and again.late == q.late
    # the late receipt comes at last: plain stock (nothing landed for claims), no drop
    assert q.arrived("RC-1", "WH-1", 4) == [] and q.landed == 0 and q.late == {}
    assert q.claims == {"O-3": 2}
    # a later announcement covers the dropped ones again, oldest first, with its own date
    q.expect("ER-3", "WH-1", 2, due=DUE + 9 * DAY)
    assert q.claim() == [Accepted("O-1", 2, DUE + 9 * DAY, "WH-1")]
    assert q.drops() == [Dropped("O-2", 2, "late")]


def test_late_supply_keeps_the_claims_its_landed_units_already_cover() -> None:
    q = Queue(sku="A")
    q.expect("ER-1", "WH-1", 2, due=DUE - DAY)
    q.expect("ER-2", "WH-1", 4, due=DUE)
    for i, since in enumerate((1.0, 2.0, 3.0), start=1):
        q.wait(f"O-{i}", 2, since=since)
    assert [a.due for a in q.claim()] == [DUE - DAY, DUE, DUE]
    assert q.arrived("RC-1", "WH-1", 4) == []  # ER-1 whole and half of ER-2 came
    assert q.landed == 4
    # ER-2's last two units are late: O-2's units are in, O-3's are not
    assert q.overdue(MIDNIGHT, utc_day_end) == [Dropped("O-3", 2, "late")]
    assert q.claims == {"O-1": 2, "O-2": 2} and q.landed == 4
    # the rest of ER-2 comes later: plain stock for whoever's turn it is
    assert q.arrived("RC-2", "WH-1", 2) == [] and q.landed == 4


def test_a_late_receipt_is_settled_before_the_next_announcement_at_its_location() -> None:
    q = Queue(sku="A")
    q.expect("ER-1", "WH-1", 2, due=DUE)
    q.overdue(MIDNIGHT, utc_day_end)
    q.expect("ER-2", "WH-1", 2, due=DUE + 3 * DAY)
    q.wait("O-1", 2, since=1.0)
    assert [a.due for a in q.claim()] == [DUE + 3 * DAY]
    q.arrived("RC-1", "WH-1", 2)  # the late one, at last: plain stock
    assert q.late == {} and q.expected_units == 2 and q.landed == 0


def test_a_preorder_dropped_as_late_says_so_and_stops_claiming_its_date() -> None:
    w = world({})
    w.run("place", preorder_order([("SKU-1", 2, True)]))
    w.run("preorder_accepted", granted("SKU-1", 2, days=1))
    assert w.state is not None and w.state.promised_date is not None
    late = PreorderDropped(order_id="O-1", sku="SKU-1", qty=2, left=0, reason="late")
    effects = w.run("preorder_dropped", late)
    (ev,) = published(effects, "order_events")
    assert ev["change"] == "preorder_dropped" and ev["detail"]["reason"] == "late"
    assert ev["detail"]["expected_date"] is not None and ev["order_status"] == "backordered"
    (ro,) = published(effects, "routed_orders")
    assert ro["status"] == "backordered" and ro["promised_date"] is None
    assert ro["backordered_lines"] == [
        {"sku": "SKU-1", "qty": 2, "expected_date": None, "promised_date": None}
    ]
    assert w.run("preorder_dropped", late) == []  # re-sent after a crash: told once


# ---- ship_complete: a short pick never splits the order ----------------------------------------


def test_a_short_picked_ship_complete_shipment_is_given_back_and_routed_again_whole() -> None:
    w = world({"SKU-1": {"ST-A": 3, "ST-B": 3}, "SKU-2": {"ST-A": 1, "ST-B": 1}})
    w.answer_all(w.run("place", ship_complete([("SKU-1", 3, 1.0), ("SKU-2", 1, 1.0)])))
    first = w.shipment()
    assert first.location_id == "ST-A" and first.lines == {"SKU-1": 3, "SKU-2": 1}
    w.step("accepted", first.shipment_id, "ST-A")
    w.stock.table["SKU-1"]["ST-A"] = 1  # the store's corrected figure
    effects = w.step(
        "picked",
        first.shipment_id,
        "ST-A",
        lines=[{"sku": "SKU-1", "qty": 1}, {"sku": "SKU-2", "qty": 1}],
    )
    assert stock_ops(effects, "short") == [("SKU-1", "ST-A", 2)]
    # the whole shipment is given back there (picked units to stock, its slot released)
    assert sorted(stock_ops(effects, "release")) == [("SKU-1", "ST-A", 0), ("SKU-2", "ST-A", 0)]
    assert load_ops(effects, "close") == [("ST-A", first.shipment_id)]
    (ev,) = published(effects, "order_events")
    assert ev["change"] == "short_pick" and ev["order_status"] == "rerouting"
    assert ev["detail"]["missing"] == [{"sku": "SKU-1", "qty": 2}]
    assert ev["detail"]["ship_complete"] is True
    # the whole order again, as one shipment: never the missing units alone
    (ask,) = reserves(effects)
    assert ask.location_id == "ST-B" and ask.lines == (("SKU-1", 3), ("SKU-2", 1))
    (decision,) = published(w.answer(ask), "routed_orders")
    assert [s["location_id"] for s in decision["shipments"]] == ["ST-B"]
    assert w.state is not None and w.state.shipments[first.shipment_id].status == "rejected"
    with pytest.raises(LifecycleError, match="already rejected"):
        w.step("packed", first.shipment_id, "ST-A")


def test_a_ship_complete_order_short_picked_waits_whole_when_no_location_has_everything() -> None:
    w = world({"SKU-1": {"ST-A": 3, "ST-B": 3}, "SKU-2": {"ST-A": 1}})
    w.answer_all(w.run("place", ship_complete([("SKU-1", 3, 1.0), ("SKU-2", 1, 1.0)])))
    sid = w.shipment().shipment_id
    w.step("accepted", sid, "ST-A")
    w.stock.table["SKU-1"]["ST-A"] = 1
    effects = w.step(
        "picked", sid, "ST-A", lines=[{"sku": "SKU-1", "qty": 1}, {"sku": "SKU-2", "qty": 1}]
    )
    assert not reserves(effects)  # no second shipment for the missing units
    assert sorted(bo(effects)) == [("wait", "SKU-1", 3), ("wait", "SKU-2", 1)]
    (ro,) = published(effects, "routed_orders")
    assert ro["status"] == "backordered" and ro["shipments"] == []
    assert w.state is not None and w.state.backordered == {"SKU-1": 3, "SKU-2": 1}
    assert w.state.status == "backordered"


def test_a_short_pick_of_a_split_allowed_order_still_reroutes_only_the_missing_units() -> None:
    w = world({"SKU-1": {"ST-A": 3, "ST-B": 3}, "SKU-2": {"ST-A": 1}})
    w.answer_all(w.run("place", order(lines=[("SKU-1", 3, 1.0), ("SKU-2", 1, 1.0)])))
    sid = w.shipment().shipment_id
    w.step("accepted", sid, "ST-A")
    w.stock.table["SKU-1"]["ST-A"] = 1
    effects = w.step(
        "picked", sid, "ST-A", lines=[{"sku": "SKU-1", "qty": 1}, {"sku": "SKU-2", "qty": 1}]
    )
    (ask,) = reserves(effects)
    assert ask.lines == (("SKU-1", 2),) and w.shipment().status == "picked"
