"""The simple routing rules the benchmarks compare the policy against."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.baselines import (
    BASELINES,
    RoundRobin,
    make_baselines,
    most_stock_first,
    nearest_store_with_stock,
    round_robin,
    warehouse_first,
)
from domain.routing import Decision, LoadView, RoutingPolicy, RoutingRequest
from streams.records import Location

# Helpers are repeated from test_routing_policy on purpose: test modules stay importable on
# their own whatever pytest's import mode.
CUST = (48.8566, 2.3522)
POLICY = RoutingPolicy.default()
KINDS = ["warehouse", "store", "supplier", "marketplace"]


def loc(location_id: str, kind: str = "store", km_north: float = 0.0, **kw: Any) -> Location:
    defaults: dict[str, Any] = {
        "ship_from_store": kind == "store",
        "click_collect": kind == "store",
        "capacity_per_hour": 30 if kind == "store" else 400,
        "max_backlog": 90 if kind == "store" else 5000,
    }
    defaults.update(kw)
    return Location(
        location_id=location_id,
        kind=kind,  # type: ignore[arg-type]
        name=location_id,
        lat=CUST[0] + km_north / 111.2,
        lon=CUST[1],
        **defaults,
    )


class Stock:
    def __init__(self, table: Mapping[str, Mapping[str, int]]) -> None:
        self.table = table

    def stock_of(self, sku: str) -> Mapping[str, int]:
        return self.table.get(sku, {})


def req(
    *lines: tuple[str, int],
    mode: str = "home",
    pickup: str | None = None,
    excluded: frozenset[str] = frozenset(),
) -> RoutingRequest:
    return RoutingRequest("o-1", CUST[0], CUST[1], mode, pickup, "standard", lines, excluded)


ALL = sorted(BASELINES)


def run(
    fn: object,
    request: RoutingRequest,
    locations: list[Location],
    stock: Mapping[str, Mapping[str, int]],
    loads: Mapping[str, LoadView] | None = None,
    policy: RoutingPolicy = POLICY,
) -> Decision:
    assert callable(fn)
    d: Decision = fn(
        request, Stock(stock), {x.location_id: x for x in locations}, loads or {}, policy
    )
    json.dumps(d.reasons)
    return d


def chosen(d: Decision) -> list[str]:
    return [s.location_id for s in d.shipments]


def test_the_four_baselines_are_exposed_by_name() -> None:
    assert ALL == ["most_stock_first", "nearest_store_with_stock", "round_robin", "warehouse_first"]
    assert isinstance(BASELINES["round_robin"], RoundRobin)
    fresh = make_baselines()
    assert fresh["round_robin"] is not BASELINES["round_robin"]
    assert isinstance(round_robin(), RoundRobin)


def test_nearest_picks_the_nearest_location_holding_everything_whatever_its_kind() -> None:
    locations = [loc("ST-1", "store", 50), loc("WH-1", "warehouse", 10), loc("ST-2", "store", 1)]
    stock = {"A": {"ST-1": 5, "WH-1": 5, "ST-2": 5}, "B": {"ST-1": 5, "WH-1": 5}}
    d = run(nearest_store_with_stock, req(("A", 1), ("B", 1)), locations, stock)
    assert chosen(d) == ["WH-1"]
    assert d.reasons["policy"] == "nearest_store_with_stock"


def test_nearest_splits_from_the_nearest_outwards_when_no_location_holds_everything() -> None:
    locations = [loc("ST-1", "store", 1), loc("ST-2", "store", 2), loc("ST-3", "store", 3)]
    stock = {"A": {"ST-1": 1, "ST-3": 5}, "B": {"ST-2": 5}}
    d = run(nearest_store_with_stock, req(("A", 2), ("B", 1)), locations, stock)
    assert [(s.location_id, s.lines) for s in d.shipments] == [
        ("ST-1", (("A", 1),)),
        ("ST-2", (("B", 1),)),
        ("ST-3", (("A", 1),)),
    ]
    too_many = run(
        nearest_store_with_stock,
        req(("A", 2), ("B", 1)),
        locations,
        stock,
        policy=replace(POLICY, max_shipments=2),
    )
    assert too_many.status == "unroutable"
    assert too_many.reasons["unroutable"] == "too_many_shipments"


def test_warehouse_first_prefers_a_far_warehouse_to_a_near_store() -> None:
    locations = [loc("ST-1", "store", 1), loc("WH-1", "warehouse", 400)]
    d = run(warehouse_first, req(("A", 1)), locations, {"A": {"ST-1": 5, "WH-1": 5}})
    assert chosen(d) == ["WH-1"]
    d = run(warehouse_first, req(("A", 1)), locations, {"A": {"ST-1": 5}})
    assert chosen(d) == ["ST-1"]


def test_most_stock_first_takes_the_location_holding_the_most_units() -> None:
    locations = [loc("ST-1", "store", 1), loc("ST-2", "store", 300), loc("WH-1", "warehouse", 5)]
    stock = {"A": {"ST-1": 3, "ST-2": 40, "WH-1": 10}}
    d = run(most_stock_first, req(("A", 2)), locations, stock)
    assert chosen(d) == ["ST-2"]


def test_round_robin_rotates_over_the_capable_locations() -> None:
    locations = [loc(f"ST-{i}", "store", i) for i in range(3)]
    stock = {"A": {"ST-0": 9, "ST-1": 9, "ST-2": 9}}
    rr = RoundRobin()
    picks = [chosen(run(rr, req(("A", 1)), locations, stock))[0] for _ in range(4)]
    assert picks == ["ST-0", "ST-1", "ST-2", "ST-0"]
    # Only capable locations take a turn.
    rr = RoundRobin()
    stock = {"A": {"ST-0": 9, "ST-2": 9}}
    picks = [chosen(run(rr, req(("A", 1)), locations, stock))[0] for _ in range(3)]
    assert picks == ["ST-0", "ST-2", "ST-0"]
    rr.reset()
    assert chosen(run(rr, req(("A", 1)), locations, stock)) == ["ST-0"]


@pytest.mark.parametrize("name", ALL)
def test_a_baseline_never_uses_a_rejecting_inactive_or_non_ship_from_store_location(
    name: str,
) -> None:
    locations = [
        loc("A-rejected", "store", 1),
        loc("B-inactive", "warehouse", 1, active=False),
        loc("C-no-sfs", "store", 1, ship_from_store=False),
        loc("D-no-capacity", "store", 1, capacity_per_hour=0),
        loc("Z-ok", "warehouse", 900),
    ]
    stock = {"A": {x.location_id: 100 for x in locations}}
    fn = make_baselines()[name]
    d = run(fn, req(("A", 1), excluded=frozenset({"A-rejected"})), locations, stock)
    assert chosen(d) == ["Z-ok"]


@pytest.mark.parametrize("name", ALL)
def test_a_baseline_ignores_load_and_may_pick_a_saturated_store(name: str) -> None:
    locations = [loc("ST-1", "store", 1, max_backlog=10)]
    fn = make_baselines()[name]
    d = run(fn, req(("A", 1)), locations, {"A": {"ST-1": 3}}, {"ST-1": LoadView(open_orders=50)})
    assert chosen(d) == ["ST-1"]


@pytest.mark.parametrize("name", ALL)
def test_a_baseline_serves_click_and_collect_from_the_shelf_else_by_transfer(name: str) -> None:
    locations = [loc("ST-P", "store", 10, ship_from_store=False), loc("WH-1", "warehouse", 50)]
    fn = make_baselines()[name]
    r = req(("A", 2), mode="click_collect", pickup="ST-P")
    shelf = run(fn, r, locations, {"A": {"ST-P": 2, "WH-1": 50}})
    assert [(s.location_id, s.mode) for s in shelf.shipments] == [("ST-P", "click_collect")]
    transfer = run(fn, r, locations, {"A": {"ST-P": 1, "WH-1": 50}})
    assert [(s.location_id, s.mode) for s in transfer.shipments] == [("WH-1", "transfer_to_store")]
    unknown = run(fn, req(("A", 1), mode="click_collect", pickup="NOPE"), locations, {})
    assert unknown.status == "unroutable"
    assert unknown.reasons["unroutable"] == "unknown_pickup_store"


@pytest.mark.parametrize("name", ALL)
def test_a_baseline_reports_missing_stock_as_unroutable(name: str) -> None:
    fn = make_baselines()[name]
    d = run(fn, req(("A", 5)), [loc("ST-1", "store", 1)], {"A": {"ST-1": 2}})
    assert d.status == "unroutable"
    assert d.unroutable_lines == (("A", 5),)
    assert d.reasons["unroutable"] == "insufficient_stock"


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[RoutingRequest, list[Location], dict, dict]:
    n = draw(st.integers(1, 10))
    locations = [
        Location(
            location_id=f"L{i:02d}",
            kind=draw(st.sampled_from(KINDS)),
            name=f"L{i}",
            lat=draw(st.floats(43, 51)),
            lon=draw(st.floats(-4, 8)),
            ship_from_store=draw(st.booleans()),
            click_collect=draw(st.booleans()),
            capacity_per_hour=draw(st.integers(0, 40)),
            max_backlog=draw(st.integers(0, 80)),
            active=draw(st.booleans()),
        )
        for i in range(n)
    ]
    ids = [x.location_id for x in locations]
    skus = [f"S{j}" for j in range(draw(st.integers(1, 5)))]
    stock = {
        s: draw(st.dictionaries(st.sampled_from(ids), st.integers(-2, 8), max_size=n)) for s in skus
    }
    loads = draw(st.dictionaries(st.sampled_from(ids), st.builds(LoadView, st.integers(0, 90))))
    chosen_skus = draw(st.lists(st.sampled_from(skus), min_size=1, max_size=len(skus), unique=True))
    cc = draw(st.booleans())
    request = RoutingRequest(
        order_id="o",
        customer_lat=draw(st.floats(43, 51)),
        customer_lon=draw(st.floats(-4, 8)),
        delivery_mode="click_collect" if cc else "home",
        pickup_location_id=draw(st.sampled_from(ids)) if cc else None,
        service="standard",
        lines=tuple((s, draw(st.integers(1, 6))) for s in chosen_skus),
        excluded=frozenset(draw(st.lists(st.sampled_from(ids), max_size=3))),
    )
    return request, locations, stock, loads


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_baseline_respects_stock_and_covers_exactly_the_order(
    scenario: tuple[RoutingRequest, list[Location], dict, dict],
) -> None:
    request, locations, stock, loads = scenario
    by_id = {x.location_id: x for x in locations}
    for fn in make_baselines().values():
        d = run(fn, request, locations, stock, loads)
        if d.status == "unroutable":
            assert d.shipments == ()
            assert d.unroutable_lines == request.lines
            continue
        assert 1 <= len(d.shipments) <= POLICY.max_shipments
        given_: dict[str, int] = {}
        for s in d.shipments:
            where = by_id[s.location_id]
            assert s.location_id not in request.excluded
            assert where.active and where.capacity_per_hour > 0 and where.max_backlog > 0
            if s.mode == "click_collect":
                assert s.location_id == request.pickup_location_id and where.click_collect
            else:
                assert where.kind != "store" or where.ship_from_store
            for sku, qty in s.lines:
                assert 0 < qty <= stock[sku].get(s.location_id, 0)
                given_[sku] = given_.get(sku, 0) + qty
        assert given_ == dict(request.lines)
