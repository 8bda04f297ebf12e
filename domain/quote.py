"""Delivery options for a basket before it is ordered: the delivery-promise API's rule.

For a basket (SKU lines), a customer position and the wanted modes, every option is decided by
the very routing function an order placed now would get (`domain.routing.decide`, same views,
same policy, same `now`), so an option is what the order would be given, not an estimate;
nothing is reserved. Options:

- ``home_standard``, ``home_express``: home delivery with that carrier service;
- ``click_collect``: one option per pickup store, the `pickup_stores` nearest active stores
  offering click & collect (from the shelf, or transferred there).

Each feasible option lists its shipments (location, mode, lines, ship_by, promised dates), the
promised date (the latest of its shipments'), the cost (shipping plus the per-shipment cost of
the policy, currency-like units) and whether the order would be split. An infeasible one is
listed under `unavailable` with the routing's reason (e.g. ``insufficient_stock``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.geo import great_circle_km
from domain.routing import (
    CLICK_COLLECT,
    EXPRESS,
    HOME,
    Decision,
    LoadView,
    RoutingPolicy,
    RoutingRequest,
    StockView,
    decide,
    merge_lines,
)
from streams.records import Location

MODES = ("home_standard", "home_express", "click_collect")


@dataclass(frozen=True)
class Basket:
    """What a quote is asked for (validated by the caller)."""

    lines: tuple[tuple[str, int], ...]
    lat: float
    lon: float
    modes: tuple[str, ...] = MODES
    pickup_stores: int = 3


def nearest_pickup_stores(
    locations: Mapping[str, Location], lat: float, lon: float, n: int
) -> list[tuple[float, Location]]:
    """The n nearest active stores offering click & collect (distance km, location)."""
    stores = [
        (great_circle_km(lat, lon, loc.lat, loc.lon), loc)
        for loc in locations.values()
        if loc.kind == "store" and loc.active and loc.click_collect
    ]
    stores.sort(key=lambda s: (s[0], s[1].location_id))
    return stores[:n]


def requests(basket: Basket, locations: Mapping[str, Location]) -> Iterable[RoutingRequest]:
    """The routing request of every option asked for, in the order they are answered."""
    lines = merge_lines(basket.lines)
    for mode in basket.modes:
        if mode in ("home_standard", "home_express"):
            service = EXPRESS if mode == "home_express" else "standard"
            yield RoutingRequest("quote", basket.lat, basket.lon, HOME, None, service, lines)
        elif mode == CLICK_COLLECT:
            for _km, store in nearest_pickup_stores(
                locations, basket.lat, basket.lon, basket.pickup_stores
            ):
                yield RoutingRequest(
                    "quote",
                    basket.lat,
                    basket.lon,
                    CLICK_COLLECT,
                    store.location_id,
                    "standard",
                    lines,
                )


def option(request: RoutingRequest, decision: Decision) -> dict[str, Any]:
    """One option as JSON-ready data (feasible or not)."""
    name = (
        CLICK_COLLECT
        if request.delivery_mode == CLICK_COLLECT
        else ("home_express" if request.service == EXPRESS else "home_standard")
    )
    out: dict[str, Any] = {"option": name, "service": request.service}
    if request.pickup_location_id is not None:
        out["pickup_location_id"] = request.pickup_location_id
    if decision.status != "routed":
        out["reason"] = decision.reasons.get("unroutable")
        detail = decision.reasons.get("unroutable_detail")
        if detail:
            out["detail"] = detail
        return out
    shipments: list[dict[str, Any]] = []
    dates = []
    for s in decision.shipments:
        row: dict[str, Any] = {
            "location_id": s.location_id,
            "mode": s.mode,
            "lines": [{"sku": sku, "qty": qty} for sku, qty in s.lines],
        }
        p = s.promise
        if p is not None:
            row["ship_by"] = p.ship_by.isoformat()
            if p.promised_delivery is not None:
                row["promised_delivery"] = p.promised_delivery.isoformat()
            if p.ready_for_pickup_by is not None:
                row["ready_for_pickup_by"] = p.ready_for_pickup_by.isoformat()
            dates.append(p.customer_date)
        shipments.append(row)
    out["shipments"] = shipments
    out["promised_date"] = max(dates).isoformat() if dates else None
    out["cost"] = round(
        sum(s.score["shipping"] + s.score["shipment"] for s in decision.shipments), 2
    )
    out["split"] = len(decision.shipments) > 1
    return out


def quote(
    basket: Basket,
    stock: StockView,
    locations: Mapping[str, Location],
    loads: Mapping[str, LoadView],
    policy: RoutingPolicy,
    now: datetime,
) -> dict[str, list[dict[str, Any]]]:
    """Every option asked for, decided as an order placed at `now` would be: the feasible
    ones (`options`) and the others with the routing's reason (`unavailable`)."""
    feasible: list[dict[str, Any]] = []
    unavailable: list[dict[str, Any]] = []
    for request in requests(basket, locations):
        decision = decide(request, stock, locations, loads, policy, now=now)
        (feasible if decision.status == "routed" else unavailable).append(option(request, decision))
    return {"options": feasible, "unavailable": unavailable}


def availability(sku: str, stock: StockView, locations: Mapping[str, Location]) -> dict[str, Any]:
    """A SKU's available units network-wide and per location (largest first); an unknown SKU
    has none (not an error)."""
    per: Sequence[tuple[str, int]] = sorted(
        ((loc_id, units) for loc_id, units in stock.stock_of(sku).items() if units > 0),
        key=lambda x: (-x[1], x[0]),
    )
    rows = []
    for loc_id, units in per:
        loc = locations.get(loc_id)
        rows.append(
            {
                "location_id": loc_id,
                "kind": loc.kind if loc else None,
                "name": loc.name if loc else None,
                "active": loc.active if loc else False,
                "available": units,
            }
        )
    return {"sku": sku, "available": sum(u for _, u in per), "locations": rows}
