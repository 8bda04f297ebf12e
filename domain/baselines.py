"""Simple routing rules to compare the policy against (benchmarks, simulator).

Each baseline has `decide`'s signature and returns the same `Decision`, so a benchmark can swap
them freely. They share the policy's hard rules: never a location that rejected the order, an
inactive one, a store without ship_from_store, one not configured for online work
(capacity_per_hour or max_backlog 0), nor more units than available; click & collect is served
from the pickup store's shelf when it holds every line, else transferred there. They ignore the
*dynamic* load (open orders, so they may pick a saturated location) and store stock depth, and
they never weigh cost: that is what they are here to show. They respect `max_shipments` like
the policy (an order that needs more is unroutable). Shipments still carry the policy's score
breakdown, so a benchmark can read shipping cost and load from any decision.

* ``nearest_store_with_stock``: the nearest location (any kind able to fulfil) holding every
  line; otherwise take from the nearest locations outwards until covered.
* ``warehouse_first``: warehouses first, then stores, suppliers, marketplaces, nearest first
  within a kind; the first holding every line, otherwise fill in that order.
* ``most_stock_first``: Saleor's "prioritize high stock" strategy at order level: locations
  ranked by how many of the order's units they hold (then distance); the first holding every
  line, otherwise fill in that order.
* ``round_robin``: a stateful rotation over locations (sorted by id): each order goes to the
  next location after the last one used that holds every line; otherwise fill from there on.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence

from domain.routing import (
    Candidate,
    Decision,
    Lines,
    LoadView,
    Prepared,
    RoutingPolicy,
    RoutingRequest,
    StockView,
    prepare,
    routed,
    shortfall,
    unroutable,
)
from streams.records import Location

DecideFn = Callable[
    [RoutingRequest, StockView, Mapping[str, Location], Mapping[str, LoadView], RoutingPolicy],
    Decision,
]

KIND_RANK = {"warehouse": 0, "store": 1, "supplier": 2, "marketplace": 3}


def _route_in_order(prep: Prepared, order: Sequence[Candidate], policy: RoutingPolicy) -> Decision:
    """First candidate in `order` holding every line; else fill along `order` (max_shipments)."""
    lines, reasons = prep.lines, prep.reasons
    reasons["candidates"] = [c.location_id for c in order[: policy.reasons_limit]]
    reasons["candidates_count"] = len(order)
    for c in order:
        if c.covers_all:
            reasons["rule"] = "single_location"
            return routed([(c, lines)], policy, reasons)
    missing = shortfall(lines, order)
    if missing:
        return unroutable(lines, reasons, "insufficient_stock", short=missing)
    remaining = dict(lines)
    left = prep.units
    plan: list[tuple[Candidate, Lines]] = []
    for c in order:
        take = c.take_of(remaining.items())
        if not take:
            continue
        if len(plan) == policy.max_shipments:
            return unroutable(
                lines,
                reasons,
                "too_many_shipments",
                max_shipments=policy.max_shipments,
            )
        plan.append((c, take))
        for sku, qty in take:
            remaining[sku] -= qty
            left -= qty
        if left == 0:
            break
    reasons["rule"] = "split"
    reasons["split"] = {"shipments": len(plan), "max_shipments": policy.max_shipments}
    return routed(plan, policy, reasons)


def nearest_store_with_stock(
    request: RoutingRequest,
    stock: StockView,
    locations: Mapping[str, Location],
    loads: Mapping[str, LoadView],
    policy: RoutingPolicy,
) -> Decision:
    prep = prepare(
        request, stock, locations, loads, policy, name="nearest_store_with_stock", check_load=False
    )
    if isinstance(prep, Decision):
        return prep
    order = sorted(prep.candidates, key=lambda c: (c.distance_km, c.location_id))
    return _route_in_order(prep, order, policy)


def warehouse_first(
    request: RoutingRequest,
    stock: StockView,
    locations: Mapping[str, Location],
    loads: Mapping[str, LoadView],
    policy: RoutingPolicy,
) -> Decision:
    prep = prepare(
        request, stock, locations, loads, policy, name="warehouse_first", check_load=False
    )
    if isinstance(prep, Decision):
        return prep
    order = sorted(
        prep.candidates,
        key=lambda c: (KIND_RANK.get(c.kind, 9), c.distance_km, c.location_id),
    )
    return _route_in_order(prep, order, policy)


def most_stock_first(
    request: RoutingRequest,
    stock: StockView,
    locations: Mapping[str, Location],
    loads: Mapping[str, LoadView],
    policy: RoutingPolicy,
) -> Decision:
    prep = prepare(
        request, stock, locations, loads, policy, name="most_stock_first", check_load=False
    )
    if isinstance(prep, Decision):
        return prep
    skus = [sku for sku, _ in prep.lines]

    def held(c: Candidate) -> int:
        return sum(c.avail.get(sku, 0) for sku in skus)

    order = sorted(prep.candidates, key=lambda c: (-held(c), c.distance_km, c.location_id))
    return _route_in_order(prep, order, policy)


class RoundRobin:
    """Rotate over locations by id; state: the last location used (one instance per run)."""

    name = "round_robin"

    def __init__(self) -> None:
        self.last: str | None = None

    def __call__(
        self,
        request: RoutingRequest,
        stock: StockView,
        locations: Mapping[str, Location],
        loads: Mapping[str, LoadView],
        policy: RoutingPolicy,
    ) -> Decision:
        prep = prepare(request, stock, locations, loads, policy, name=self.name, check_load=False)
        if isinstance(prep, Decision):
            return prep
        ring = sorted(prep.candidates, key=lambda c: c.location_id)
        start = 0
        if self.last is not None:
            start = bisect.bisect_right([c.location_id for c in ring], self.last)
        order = ring[start:] + ring[:start]
        decision = _route_in_order(prep, order, policy)
        if decision.shipments:
            self.last = decision.shipments[-1].location_id
        return decision

    def reset(self) -> None:
        self.last = None


def round_robin() -> RoundRobin:
    """A fresh round-robin router (its rotation starts at the first location by id)."""
    return RoundRobin()


def make_baselines() -> dict[str, DecideFn]:
    """A fresh set of baselines (a new round-robin rotation): one per simulated run."""
    return {
        "nearest_store_with_stock": nearest_store_with_stock,
        "warehouse_first": warehouse_first,
        "most_stock_first": most_stock_first,
        "round_robin": RoundRobin(),
    }


BASELINES: dict[str, DecideFn] = make_baselines()
"""Name -> decide-compatible router. round_robin is a stateful `RoundRobin` instance shared by
whoever uses this dict; call `make_baselines()` (or `.reset()`) for a fresh rotation per run."""
