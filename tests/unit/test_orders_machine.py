"""The order state machine (domain.orders): routing saga, store workflow, returns. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.orders import (
    Context,
    Deadline,
    Effect,
    LifecycleError,
    LoadEffect,
    Machine,
    OrderState,
    ReleaseEffect,
    ReserveEffect,
    StockEffect,
)
from domain.routing import LoadView, RoutingPolicy
from streams.records import (
    FulfilmentEvent,
    Location,
    OrderEvent,
    Refund,
    Return,
    RoutedOrder,
    ShipmentReservation,
    WebOrder,
)

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
PARIS = (48.8566, 2.3522)


def loc(location_id: str, kind: str = "store", km: float = 0.0, **kw: Any) -> Location:
    base: dict[str, Any] = {
        "ship_from_store": kind == "store",
        "click_collect": kind == "store",
        "capacity_per_hour": 30 if kind == "store" else 400,
        "max_backlog": 90 if kind == "store" else 5000,
    }
    base.update(kw)
    return Location(
        location_id=location_id,
        kind=kind,  # type: ignore[arg-type]
        name=location_id,
        lat=PARIS[0] + km / 111.2,
        lon=PARIS[1],
        **base,
    )


LOCS = {
    "ST-A": loc("ST-A", km=1),
    "ST-B": loc("ST-B", km=5),
    "ST-C": loc("ST-C", km=20),
    "WH-1": loc("WH-1", "warehouse", km=300),
}


class Stock:
    """sku -> location -> available; a plain dict-based StockView."""

    def __init__(self, table: dict[str, dict[str, int]]) -> None:
        self.table = table

    def stock_of(self, sku: str) -> Mapping[str, int]:
        return self.table.get(sku, {})


class World:
    """Runs inputs through fresh Machines, carrying the state across like the agent does."""

    def __init__(self, stock: dict[str, dict[str, int]], **policy: Any) -> None:
        self.stock = Stock(stock)
        self.policy = replace(RoutingPolicy.default(), **policy)
        self.locations: dict[str, Location] = dict(LOCS)
        self.loads: dict[str, LoadView] = {}
        self.state: OrderState | None = None
        self.waiting: dict[str, int] = {}  # sku -> units backordered (the backorders view)
        self.source: tuple[str, int, int, bytes] | None = None  # the input's position, bytes
        self.now = T0
        self.n = 0

    def ctx(self) -> Context:
        self.n += 1
        return Context(
            now=self.now,
            locations=self.locations,
            stock=self.stock,
            loads=self.loads,
            policy=self.policy,
            acceptance_timeout_s=self.policy.acceptance_timeout_s,
            event_prefix=f"in:{self.n}",
            waiting=self.waiting,
            source=self.source,
        )

    def run(self, method: str, *args: Any) -> list[Effect]:
        # round-trip through plain data, as the orders table does
        state = None if self.state is None else OrderState.from_dict(self.state.to_dict())
        m = Machine(state, self.ctx())
        getattr(m, method)(*args)
        self.state = m.state
        return m.effects

    def answer(
        self,
        eff: ReserveEffect,
        ok: bool = True,
        free: dict[str, int] | None = None,
        saturated: bool = False,
    ) -> list[Effect]:
        """The location owner's answer to a shipment's reservation."""
        return self.run(
            "shipment_reservation",
            ShipmentReservation(
                order_id=self.state.order_id if self.state else "?",
                shipment_id=eff.shipment_id,
                location_id=eff.location_id,
                ok=ok,
                skus=[sku for sku, _ in eff.lines],
                saturated=saturated,
                free=free or {},
            ),
        )

    def answer_all(self, effects: list[Effect]) -> list[Effect]:
        out: list[Effect] = []
        for eff in reserves(effects):
            out += self.answer(eff)
        return out

    def place_and_route(self, order: WebOrder) -> list[Effect]:
        return self.answer_all(self.run("place", order))

    def step(self, kind: str, shipment_id: str, location_id: str, **kw: Any) -> list[Effect]:
        self.n += 1
        ev = FulfilmentEvent(
            event_id=kw.pop("event_id", f"fe-{self.n}"),
            occurred_at=self.now,
            order_id=self.state.order_id if self.state else "?",
            shipment_id=shipment_id,
            location_id=location_id,
            type=kind,  # type: ignore[arg-type]
            **kw,
        )
        return self.run("fulfilment", ev)

    def shipment(self, n: int = 0) -> Any:
        assert self.state is not None
        return list(self.state.shipments.values())[n]


def order(
    order_id: str = "O-1",
    lines: list[tuple[str, int, float]] | None = None,
    pickup: str | None = None,
    event_id: str | None = None,
) -> WebOrder:
    return WebOrder.model_validate(
        {
            "event_id": event_id or f"ev-{order_id}",
            "occurred_at": T0,
            "type": "order_placed",
            "order_id": order_id,
            "customer": {"lat": PARIS[0], "lon": PARIS[1]},
            "delivery": {"mode": "click_collect", "pickup_location_id": pickup}
            if pickup
            else {"mode": "home"},
            "lines": [
                {"sku": s, "qty": q, "unit_price": p} for s, q, p in (lines or [("SKU-1", 1, 10.0)])
            ],
            "currency": "EUR",
            "payment": {"method": "card", "reference": "PAY-123"},
        }
    )


def cancellation(order_id: str = "O-1", event_id: str = "cx-1") -> WebOrder:
    return WebOrder.model_validate(
        {"event_id": event_id, "occurred_at": T0, "type": "order_cancelled", "order_id": order_id}
    )


def a_return(lines: list[tuple[str, int, bool]], location_id: str = "ST-C", eid: str = "ret-1"):
    return Return.model_validate(
        {
            "event_id": eid,
            "occurred_at": T0,
            "order_id": "O-1",
            "location_id": location_id,
            "lines": [{"sku": s, "qty": q, "resellable": r} for s, q, r in lines],
        }
    )


def reserves(effects: list[Effect]) -> list[ReserveEffect]:
    """The shipments asked of their locations' owners (slot and units, all or nothing)."""
    return [e for e in effects if isinstance(e, ReserveEffect)]


def reserved_lines(effects: list[Effect]) -> list[tuple[str, str, int]]:
    return sorted((sku, e.location_id, qty) for e in reserves(effects) for sku, qty in e.lines)


def stock_ops(effects: list[Effect], kind: str) -> list[tuple[str, str, int]]:
    """Stock ops of a kind; a shipment's release counts as a release of each of its SKUs."""
    out = [
        (e.sku, e.location_id, e.qty)
        for e in effects
        if isinstance(e, StockEffect) and e.kind == kind
    ]
    if kind == "release":
        out += [
            (sku, e.location_id, 0)
            for e in effects
            if isinstance(e, ReleaseEffect)
            for sku in e.skus
        ]
    return out


PUBLISHED = {"routed_orders": RoutedOrder, "order_events": OrderEvent, "refunds": Refund}


def published(effects: list[Effect], handle: str) -> list[dict[str, Any]]:
    """The records published to a topic, as their JSON reads."""
    model = PUBLISHED[handle]
    return [e.model_dump(mode="json") for e in effects if isinstance(e, model)]


def load_ops(effects: list[Effect], kind: str) -> list[tuple[str, str]]:
    """Load ops of a kind; a shipment's release gives its slot back: a close."""
    out = [
        (e.location_id, e.shipment_id)
        for e in effects
        if isinstance(e, LoadEffect) and e.kind == kind
    ]
    if kind == "close":
        out += [(e.location_id, e.shipment_id) for e in effects if isinstance(e, ReleaseEffect)]
    return out


# ---- routing saga ------------------------------------------------------------------------------


def test_placing_an_order_asks_for_reservations_and_publishes_nothing_yet() -> None:
    w = World({"SKU-1": {"ST-A": 5}, "SKU-2": {"ST-A": 5}})
    effects = w.run("place", order(lines=[("SKU-1", 2, 10.0), ("SKU-2", 1, 5.0)]))
    assert reserved_lines(effects) == [("SKU-1", "ST-A", 2), ("SKU-2", "ST-A", 1)]
    assert len(reserves(effects)) == 1  # one shipment: one atomic ask to one owner
    assert not [e for e in effects if isinstance(e, RoutedOrder | OrderEvent | Refund)]


def test_a_split_order_waits_for_every_owner_before_publishing() -> None:
    w = World({"SKU-1": {"ST-A": 5}, "SKU-2": {"ST-B": 5}})
    asks = reserves(w.run("place", order(lines=[("SKU-1", 1, 1.0), ("SKU-2", 1, 1.0)])))
    assert sorted(a.location_id for a in asks) == ["ST-A", "ST-B"]
    assert w.answer(asks[0]) == []  # still waiting for the second answer
    assert published(w.answer(asks[1]), "routed_orders")[0]["status"] == "routed"


def test_all_reservations_ok_publishes_the_decision_and_sets_deadlines() -> None:
    w = World({"SKU-1": {"ST-A": 5}, "SKU-2": {"ST-A": 5}})
    effects = w.place_and_route(order(lines=[("SKU-1", 2, 10.0), ("SKU-2", 1, 5.0)]))
    (decision,) = published(effects, "routed_orders")
    assert decision["status"] == "routed" and decision["attempt"] == 1
    (shipment,) = decision["shipments"]
    assert shipment["location_id"] == "ST-A" and shipment["mode"] == "ship_from_store"
    assert shipment["lines"] == [{"sku": "SKU-1", "qty": 2}, {"sku": "SKU-2", "qty": 1}]
    assert "candidates" in decision["reasons"]
    assert load_ops(effects, "open") == []  # the slot was taken with the reservation
    deadlines = [e for e in effects if isinstance(e, Deadline)]
    assert [d.at for d in deadlines] == [T0.timestamp() + w.policy.acceptance_timeout_s]
    (event,) = published(effects, "order_events")
    assert event["change"] == "routed" and event["order_status"] == "routed"


def test_the_acceptance_deadline_counts_the_stores_preparation_hours_only() -> None:
    """Routed at 22:00 (Paris) to a store preparing 09:00-20:00: 900 s fall due at 09:15 the
    next morning, published as `accept_by`; before that a time-out is not due."""
    w = World({"SKU-1": {"ST-A": 5}})
    hours = {d: ["09:00-20:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    w.locations["ST-A"] = loc("ST-A", km=1, calendar={"tz": "Europe/Paris", "opening": hours})
    w.now = datetime(2026, 1, 5, 21, 0, tzinfo=UTC)  # Monday 22:00 in Paris
    effects = w.place_and_route(order(lines=[("SKU-1", 1, 10.0)]))
    due = datetime(2026, 1, 6, 8, 15, tzinfo=UTC)  # Tuesday 09:15 in Paris
    assert [d.at for d in effects if isinstance(d, Deadline)] == [due.timestamp()]
    (decision,) = published(effects, "routed_orders")
    assert decision["shipments"][0]["accept_by"] == due.isoformat().replace("+00:00", "Z")
    # accepted: the next decision no longer shows an acceptance deadline for it
    sid = decision["shipments"][0]["shipment_id"]
    w.now = due - timedelta(minutes=5)
    w.step("accepted", sid, "ST-A")
    assert w.state is not None and w.state.shipments[sid].status == "accepted"


def test_a_warehouse_without_calendar_keeps_the_plain_time_out() -> None:
    w = World({"SKU-1": {"WH-1": 5}})
    w.now = datetime(2026, 1, 5, 21, 0, tzinfo=UTC)
    effects = w.place_and_route(order(lines=[("SKU-1", 1, 10.0)]))
    (deadline,) = [d.at for d in effects if isinstance(d, Deadline)]
    assert deadline == w.now.timestamp() + w.policy.acceptance_timeout_s


def test_one_failed_reservation_releases_the_others_and_replans_with_the_owners_figure() -> None:
    w = World({"SKU-1": {"ST-A": 5}, "SKU-2": {"ST-A": 5, "ST-B": 5, "ST-C": 5}})
    (ask,) = reserves(w.run("place", order(lines=[("SKU-1", 1, 1.0), ("SKU-2", 1, 1.0)])))
    assert ask.location_id == "ST-A"  # the one holding both
    effects = w.answer(ask, ok=False, free={"SKU-2": 0})
    assert not [e for e in effects if isinstance(e, ReleaseEffect)]  # nothing was granted
    again = reserves(effects)
    assert reserved_lines(effects) == [("SKU-1", "ST-A", 1), ("SKU-2", "ST-B", 1)]
    ok = next(a for a in again if a.location_id == "ST-A")
    bad = next(a for a in again if a.location_id == "ST-B")
    assert w.answer(ok) == []
    effects = w.answer(bad, ok=False, free={"SKU-2": 0})
    assert [
        (e.shipment_id, e.location_id, e.skus) for e in effects if isinstance(e, ReleaseEffect)
    ] == [(ok.shipment_id, "ST-A", ("SKU-1",))]
    assert reserved_lines(effects) == [("SKU-1", "ST-A", 1), ("SKU-2", "ST-C", 1)]
    assert not published(effects, "routed_orders")
    done = w.answer_all(effects)
    (decision,) = published(done, "routed_orders")
    assert decision["status"] == "routed" and decision["attempt"] == 1
    assert [s["location_id"] for s in decision["shipments"]] == ["ST-A", "ST-C"]


def test_an_owner_without_a_free_slot_is_left_out_of_the_next_round() -> None:
    """Capacity is reserved at the owner: a saturated answer re-plans without that location,
    whatever the lagging store-load view says."""
    w = World({"SKU-1": {"ST-A": 5, "ST-B": 5}})
    (ask,) = reserves(w.run("place", order()))
    assert ask.location_id == "ST-A"
    effects = w.answer(ask, ok=False, saturated=True)
    (again,) = reserves(effects)
    assert again.location_id == "ST-B"
    (decision,) = published(w.answer(again), "routed_orders")
    assert [s["location_id"] for s in decision["shipments"]] == ["ST-B"]
    assert w.state is not None and w.state.pending is None


def test_when_every_owner_is_full_the_order_is_unroutable_as_saturated() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    (ask,) = reserves(w.run("place", order()))
    (decision,) = published(w.answer(ask, ok=False, saturated=True), "routed_orders")
    assert decision["status"] == "unroutable"
    assert "ST-A" in decision["reasons"]["ineligible"]["saturated"]


def test_a_repeated_ok_answer_for_the_round_in_progress_does_not_release_it() -> None:
    w = World({"SKU-1": {"ST-A": 5}, "SKU-2": {"ST-B": 5}})
    asks = reserves(w.run("place", order(lines=[("SKU-1", 1, 1.0), ("SKU-2", 1, 1.0)])))
    w.answer(asks[0])
    assert w.answer(asks[0]) == []
    assert published(w.answer(asks[1]), "routed_orders")[0]["status"] == "routed"


def test_an_ok_answer_for_an_abandoned_round_is_released() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    asks = reserves(w.run("place", order()))
    w.run("cancel", cancellation())
    effects = w.answer(asks[0])
    assert stock_ops(effects, "release") == [("SKU-1", "ST-A", 0)]
    assert load_ops(effects, "close") == [("ST-A", asks[0].shipment_id)]  # the slot too


def test_a_grant_from_a_location_the_decision_moved_away_from_is_given_back() -> None:
    """A worker asked ST-A for the shipment and died before its decision was kept; the input,
    decided again on a newer view, asks ST-B under the same shipment id. ST-A's grant is a
    reservation nobody holds: given back there, and not taken for ST-B's answer."""
    w = World({"SKU-1": {"ST-A": 5}})
    (first,) = reserves(w.run("place", order()))
    w.state = None  # the decision was not kept: the order_placed is read again
    w.stock.table["SKU-1"] = {"ST-B": 5}
    (again,) = reserves(w.run("place", order()))
    assert (again.shipment_id, again.location_id) == (first.shipment_id, "ST-B")
    effects = w.answer(first)
    assert stock_ops(effects, "release") == [("SKU-1", "ST-A", 0)]
    assert load_ops(effects, "close") == [("ST-A", first.shipment_id)]
    assert w.state is not None and w.state.pending is not None  # still awaiting ST-B
    w.answer(again)
    assert w.shipment().location_id == "ST-B" and w.state.pending is None
    assert stock_ops(w.answer(first), "release") == [("SKU-1", "ST-A", 0)]  # a repeat: again


def test_a_grant_for_an_order_whose_state_was_lost_is_given_back() -> None:
    """The answer came before the placement was read again (another topic): nobody holds it."""
    w = World({"SKU-1": {"ST-A": 5}})
    (ask,) = reserves(w.run("place", order()))
    w.state = None
    effects = w.answer(ask)
    assert stock_ops(effects, "release") == [("SKU-1", "ST-A", 0)] and w.state is None
    assert w.answer(ask, ok=False) == []


def test_an_order_without_stock_anywhere_is_published_unroutable() -> None:
    w = World({"SKU-1": {}})
    effects = w.run("place", order())
    (decision,) = published(effects, "routed_orders")
    assert decision["status"] == "unroutable"
    assert decision["unroutable_lines"] == [{"sku": "SKU-1", "qty": 1}]
    assert w.state is not None and w.state.derive_status() == "unroutable"


def test_click_and_collect_is_served_from_the_pickup_store_shelf() -> None:
    w = World({"SKU-1": {"ST-A": 5, "ST-C": 2}})
    effects = w.place_and_route(order(pickup="ST-C"))
    (decision,) = published(effects, "routed_orders")
    assert [(s["location_id"], s["mode"]) for s in decision["shipments"]] == [
        ("ST-C", "click_collect")
    ]


def test_click_and_collect_without_shelf_stock_is_a_transfer_to_the_pickup_store() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    effects = w.place_and_route(order(pickup="ST-C"))
    (decision,) = published(effects, "routed_orders")
    assert [(s["location_id"], s["mode"]) for s in decision["shipments"]] == [
        ("ST-A", "transfer_to_store")
    ]
    assert w.shipment().destination_location_id == "ST-C"


def test_click_and_collect_at_an_unknown_store_is_refused() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    with pytest.raises(LifecycleError, match="pickup_location_id"):
        w.run("place", order(pickup="NOPE"))


# ---- re-routing ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["rejected", "timeout", "short_pick"])
def test_an_order_being_rerouted_is_rerouting_never_cancelled(how: str) -> None:
    """Nobody cancelled it: `cancelled` is only order_cancelled (README lifecycle)."""
    w = World({"SKU-1": {"ST-A": 5, "ST-B": 5}})
    w.place_and_route(order(lines=[("SKU-1", 2, 1.0)]))
    first = w.shipment()
    if how == "rejected":
        effects = w.step("rejected", first.shipment_id, "ST-A", reason="no staff")
    elif how == "timeout":
        effects = w.run("acceptance_timeout", first.shipment_id)
    else:
        w.step("accepted", first.shipment_id, "ST-A")
        effects = w.step("picked", first.shipment_id, "ST-A", lines=[{"sku": "SKU-1", "qty": 0}])
    statuses = [e["order_status"] for e in published(effects, "order_events")]
    assert statuses == ["rerouting"]
    assert w.state is not None and w.state.status == "rerouting"
    routed = published(w.answer_all(effects), "order_events")
    assert [(e["change"], e["order_status"]) for e in routed] == [("routed", "routed")]


def test_a_rejection_releases_and_reroutes_never_back_to_the_rejecting_location() -> None:
    w = World({"SKU-1": {"ST-A": 5, "ST-B": 5}})
    w.place_and_route(order(lines=[("SKU-1", 2, 1.0)]))
    first = w.shipment()
    assert first.location_id == "ST-A"
    effects = w.step("rejected", first.shipment_id, "ST-A", reason="no staff")
    assert stock_ops(effects, "release") == [("SKU-1", "ST-A", 0)]
    assert load_ops(effects, "close") == [("ST-A", first.shipment_id)]
    assert Deadline(first.shipment_id, None) in effects
    assert len(reserves(effects)) == 1
    assert [(loc, qty) for _, loc, qty in reserved_lines(effects)] == [("ST-B", 2)]
    (decision,) = published(w.answer_all(effects), "routed_orders")
    assert decision["attempt"] == 2
    assert [s["location_id"] for s in decision["shipments"]] == ["ST-B"]
    assert "ST-A" in decision["reasons"]["excluded"]


def test_rerouting_gives_up_after_max_attempts() -> None:
    w = World({"SKU-1": {"ST-A": 5, "ST-B": 5, "ST-C": 5}}, max_attempts=2)
    w.place_and_route(order())
    w.answer_all(w.step("rejected", w.shipment(0).shipment_id, w.shipment(0).location_id))
    effects = w.step("rejected", w.shipment(1).shipment_id, w.shipment(1).location_id)
    assert not reserves(effects)
    (decision,) = published(effects, "routed_orders")
    assert decision["status"] == "unroutable"
    assert "gave up after 2 attempts" in decision["reasons"]["why"]
    assert w.state is not None and w.state.derive_status() == "unroutable"


def test_an_acceptance_timeout_reroutes_but_not_once_accepted() -> None:
    w = World({"SKU-1": {"ST-A": 5, "ST-B": 5}})
    w.place_and_route(order())
    sid = w.shipment().shipment_id
    effects = w.run("acceptance_timeout", sid)
    assert stock_ops(effects, "release") == [("SKU-1", "ST-A", 0)]
    assert [a.location_id for a in reserves(effects)] == ["ST-B"]
    w.answer_all(effects)
    second = w.shipment(1)
    w.step("accepted", second.shipment_id, "ST-B")
    assert w.run("acceptance_timeout", second.shipment_id) == []


def test_a_short_pick_corrects_stock_and_reroutes_only_the_missing_units() -> None:
    w = World({"SKU-1": {"ST-A": 5, "ST-B": 5}, "SKU-2": {"ST-A": 5}})
    w.place_and_route(order(lines=[("SKU-1", 3, 1.0), ("SKU-2", 1, 1.0)]))
    sid = w.shipment().shipment_id
    w.step("accepted", sid, "ST-A")
    effects = w.step(
        "picked", sid, "ST-A", lines=[{"sku": "SKU-1", "qty": 1}, {"sku": "SKU-2", "qty": 1}]
    )
    assert stock_ops(effects, "short") == [("SKU-1", "ST-A", 2)]
    assert [(sku, qty) for sku, _, qty in reserved_lines(effects)] == [("SKU-1", 2)]
    assert w.shipment().lines == {"SKU-1": 1, "SKU-2": 1}
    assert w.shipment().status == "picked"
    assert any(e["change"] == "short_pick" for e in published(effects, "order_events"))
    (decision,) = published(w.answer_all(effects), "routed_orders")
    assert decision["attempt"] == 2


def test_a_rejection_with_lines_is_a_short_pick_of_those_lines() -> None:
    w = World({"SKU-1": {"ST-A": 5, "ST-B": 5}})
    w.place_and_route(order(lines=[("SKU-1", 3, 1.0)]))
    sid = w.shipment().shipment_id
    effects = w.step("rejected", sid, "ST-A", lines=[{"sku": "SKU-1", "qty": 2}])
    assert stock_ops(effects, "short") == [("SKU-1", "ST-A", 2)]
    assert stock_ops(effects, "release") == [("SKU-1", "ST-A", 0)]
    short_at = next(i for i, e in enumerate(effects) if getattr(e, "kind", "") == "short")
    release_at = next(i for i, e in enumerate(effects) if isinstance(e, ReleaseEffect))
    assert short_at < release_at
    assert [(loc, qty) for _, loc, qty in reserved_lines(effects)] == [("ST-B", 3)]


def test_picking_more_than_the_shipment_holds_is_refused() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    w.place_and_route(order())
    sid = w.shipment().shipment_id
    w.step("accepted", sid, "ST-A")
    with pytest.raises(LifecycleError, match="picked more"):
        w.step("picked", sid, "ST-A", lines=[{"sku": "SKU-1", "qty": 2}])


# ---- workflow --------------------------------------------------------------------------------


def test_home_delivery_walks_to_shipped_and_consumes_the_stock() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    w.place_and_route(order(lines=[("SKU-1", 2, 1.0)]))
    sid = w.shipment().shipment_id
    statuses = []
    for step in ("accepted", "picked", "packed", "label_printed"):
        w.now += timedelta(seconds=60)
        effects = w.step(step, sid, "ST-A")
        statuses.append(published(effects, "order_events")[0]["order_status"])
        (load_step,) = [e for e in effects if isinstance(e, LoadEffect) and e.kind == "step"]
        assert load_step.seconds == 60.0 and load_step.location_id == "ST-A"
    assert statuses == ["in_preparation"] * 4
    effects = w.step("shipped", sid, "ST-A")
    assert [(e.sku, e.reservation_id) for e in effects if isinstance(e, StockEffect)] == [
        ("SKU-1", f"{sid}/SKU-1")
    ]
    assert stock_ops(effects, "consume") == [("SKU-1", "ST-A", 0)]
    assert load_ops(effects, "close") == [("ST-A", sid)]
    assert published(effects, "order_events")[0]["order_status"] == "shipped"
    assert w.state is not None and w.state.delivered == {"SKU-1": 2}


def test_click_and_collect_walks_to_collected() -> None:
    w = World({"SKU-1": {"ST-C": 5}})
    w.place_and_route(order(pickup="ST-C"))
    sid = w.shipment().shipment_id
    for step in ("accepted", "picked", "packed"):
        w.step(step, sid, "ST-C")
    effects = w.step("ready_for_pickup", sid, "ST-C")
    assert published(effects, "order_events")[0]["order_status"] == "ready_for_pickup"
    with pytest.raises(LifecycleError, match="not a valid step"):
        w.step("shipped", sid, "ST-C")
    effects = w.step("collected", sid, "ST-C")
    assert stock_ops(effects, "consume") == [("SKU-1", "ST-C", 0)]
    assert published(effects, "order_events")[0]["order_status"] == "collected"


def test_a_transfer_ships_at_the_source_then_is_collected_at_the_destination() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    w.place_and_route(order(pickup="ST-C"))
    sid = w.shipment().shipment_id
    for step in ("accepted", "picked", "packed", "label_printed"):
        w.step(step, sid, "ST-A")
    effects = w.step("shipped", sid, "ST-A")
    assert stock_ops(effects, "consume") == [("SKU-1", "ST-A", 0)]
    assert load_ops(effects, "close") == [("ST-A", sid)]
    assert load_ops(effects, "open") == [("ST-C", sid)]
    assert w.shipment().status == "in_transit"
    with pytest.raises(LifecycleError, match="does not own"):
        w.step("ready_for_pickup", sid, "ST-A")
    effects = w.step("ready_for_pickup", sid, "ST-C")
    assert [e.location_id for e in effects if isinstance(e, LoadEffect)] == ["ST-C"]
    effects = w.step("collected", sid, "ST-C")
    assert stock_ops(effects, "consume") == []
    assert load_ops(effects, "close") == [("ST-C", sid)]
    assert published(effects, "order_events")[0]["order_status"] == "collected"


def test_shipping_what_was_never_accepted_is_refused() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    w.place_and_route(order())
    with pytest.raises(LifecycleError, match="not a valid step"):
        w.step("shipped", w.shipment().shipment_id, "ST-A")


def test_an_unknown_shipment_or_a_foreign_location_is_refused() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    w.place_and_route(order())
    with pytest.raises(LifecycleError, match="unknown shipment"):
        w.step("accepted", "O-1-S99", "ST-A")
    with pytest.raises(LifecycleError, match="does not own"):
        w.step("accepted", w.shipment().shipment_id, "ST-B")


def test_a_step_after_cancellation_is_refused() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    w.place_and_route(order())
    w.run("cancel", cancellation())
    with pytest.raises(LifecycleError, match="cancellation"):
        w.step("accepted", w.shipment().shipment_id, "ST-A")


def test_a_repeated_event_id_is_ignored() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    w.place_and_route(order())
    sid = w.shipment().shipment_id
    assert w.step("accepted", sid, "ST-A", event_id="same")
    assert w.step("accepted", sid, "ST-A", event_id="same") == []
    assert w.run("place", order()) == []  # the same order_placed again
    with pytest.raises(LifecycleError, match="already placed"):
        w.run("place", order(event_id="other"))


def test_cancellation_releases_everything_still_reserved() -> None:
    w = World({"SKU-1": {"ST-A": 5}, "SKU-2": {"ST-B": 5}})
    w.place_and_route(order(lines=[("SKU-1", 1, 1.0), ("SKU-2", 1, 1.0)]))
    assert len(w.state.shipments) == 2 if w.state else False
    effects = w.run("cancel", cancellation())
    assert sorted(stock_ops(effects, "release")) == [("SKU-1", "ST-A", 0), ("SKU-2", "ST-B", 0)]
    assert len(load_ops(effects, "close")) == 2
    (event,) = published(effects, "order_events")
    assert event["change"] == "cancelled" and event["order_status"] == "cancelled"
    assert w.run("cancel", cancellation()) == []  # same event again
    with pytest.raises(LifecycleError, match="already cancelled"):
        w.run("cancel", cancellation(event_id="cx-2"))


def test_cancellation_during_a_reservation_round_releases_the_answers_received() -> None:
    w = World({"SKU-1": {"ST-A": 5}, "SKU-2": {"ST-B": 5}})
    asks = reserves(w.run("place", order(lines=[("SKU-1", 1, 1.0), ("SKU-2", 1, 1.0)])))
    w.answer(asks[0])
    effects = w.run("cancel", cancellation())
    assert stock_ops(effects, "release") == [(asks[0].lines[0][0], asks[0].location_id, 0)]
    assert published(w.answer(asks[1]), "routed_orders") == []


def test_a_shipped_order_cannot_be_cancelled() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    w.place_and_route(order())
    sid = w.shipment().shipment_id
    for step in ("accepted", "picked", "packed", "label_printed", "shipped"):
        w.step(step, sid, "ST-A")
    with pytest.raises(LifecycleError, match="only be returned"):
        w.run("cancel", cancellation())


# ---- returns ---------------------------------------------------------------------------------


def shipped_world() -> World:
    w = World({"SKU-1": {"ST-A": 5}, "SKU-2": {"ST-A": 5}})
    w.place_and_route(order(lines=[("SKU-1", 2, 19.99), ("SKU-2", 1, 5.5)]))
    sid = w.shipment().shipment_id
    for step in ("accepted", "picked", "packed", "label_printed", "shipped"):
        w.step(step, sid, "ST-A")
    return w


def test_a_resellable_return_restocks_the_return_store_and_refunds_the_payment() -> None:
    w = shipped_world()
    effects = w.run("return_", a_return([("SKU-1", 2, True)], location_id="ST-C"))
    assert stock_ops(effects, "adjust") == [("SKU-1", "ST-C", 2)]
    (refund,) = published(effects, "refunds")
    assert refund["amount"] == 39.98 and refund["currency"] == "EUR"
    assert refund["payment"] == {"method": "card", "reference": "PAY-123"}
    assert refund["order_id"] == "O-1" and refund["return_event_id"] == "ret-1"
    assert refund["lines"] == [{"sku": "SKU-1", "qty": 2, "unit_price": 19.99, "amount": 39.98}]
    assert published(effects, "order_events")[0]["order_status"] == "partially_returned"


def test_a_damaged_return_refunds_but_does_not_restock() -> None:
    w = shipped_world()
    effects = w.run("return_", a_return([("SKU-2", 1, False)]))
    assert stock_ops(effects, "adjust") == []
    assert published(effects, "refunds")[0]["amount"] == 5.5


def test_returning_everything_makes_the_order_returned() -> None:
    w = shipped_world()
    w.run("return_", a_return([("SKU-1", 1, True)], eid="r1"))
    effects = w.run("return_", a_return([("SKU-1", 1, False), ("SKU-2", 1, True)], eid="r2"))
    assert published(effects, "order_events")[0]["order_status"] == "returned"
    assert w.run("return_", a_return([("SKU-1", 1, False)], eid="r2")) == []  # repeated


def test_an_over_return_is_refused() -> None:
    w = shipped_world()
    w.run("return_", a_return([("SKU-1", 1, True)], eid="r1"))
    with pytest.raises(LifecycleError, match="over-return"):
        w.run("return_", a_return([("SKU-1", 2, True)], eid="r2"))
    with pytest.raises(LifecycleError, match="over-return"):
        w.run("return_", a_return([("SKU-9", 1, True)], eid="r3"))


def test_a_return_of_goods_never_shipped_is_an_over_return() -> None:
    w = World({"SKU-1": {"ST-A": 5}})
    w.place_and_route(order())
    with pytest.raises(LifecycleError, match="over-return"):
        w.run("return_", a_return([("SKU-1", 1, True)]))


def test_a_return_for_an_unknown_order_is_refused() -> None:
    w = World({})
    with pytest.raises(LifecycleError, match="unknown order"):
        w.run("return_", a_return([("SKU-1", 1, True)]))


# ---- status and state --------------------------------------------------------------------------


def test_order_status_follows_a_split_order_through_partial_shipment() -> None:
    w = World({"SKU-1": {"ST-A": 5}, "SKU-2": {"ST-B": 5}})
    w.place_and_route(order(lines=[("SKU-1", 1, 1.0), ("SKU-2", 1, 1.0)]))
    assert w.state is not None and w.state.derive_status() == "routed"
    first, second = w.shipment(0), w.shipment(1)
    for step in ("accepted", "picked", "packed", "label_printed"):
        w.step(step, first.shipment_id, first.location_id)
    assert w.state.derive_status() == "in_preparation"
    w.step("shipped", first.shipment_id, first.location_id)
    assert w.state.derive_status() == "partially_shipped"
    for step in ("accepted", "picked", "packed", "label_printed", "shipped"):
        w.step(step, second.shipment_id, second.location_id)
    assert w.state.derive_status() == "shipped"


def test_order_state_survives_a_round_trip_through_plain_data() -> None:
    w = World({"SKU-1": {"ST-A": 5}, "SKU-2": {"ST-A": 5}})
    w.run("place", order(lines=[("SKU-1", 1, 1.0), ("SKU-2", 1, 1.0)]))
    assert w.state is not None
    again = OrderState.from_dict(w.state.to_dict())
    assert again.to_dict() == w.state.to_dict()
    again.pending.lines["SKU-1"] = 99  # type: ignore[union-attr]
    assert w.state.pending is not None and w.state.pending.lines["SKU-1"] == 1


def test_a_replayed_input_after_a_decision_publishes_the_current_decision_again() -> None:
    """A worker killed after storing the order but before flushing its decision must not leave
    downstream without one: resync re-publishes it (same attempt)."""
    w = World({"SKU-1": {"ST-A": 5}})
    w.place_and_route(order())
    assert w.state is not None and w.state.shipments
    decisions = published(w.run("resync"), "routed_orders")
    assert len(decisions) == 1
    assert decisions[0]["attempt"] == w.state.attempt
    assert decisions[0]["status"] == "routed" and decisions[0]["shipments"]
