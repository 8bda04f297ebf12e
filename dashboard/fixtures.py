"""Fixture data for the dashboard: a few hours of a peak, as the output topics would carry it.

Why: the page must be testable (Streamlit AppTest) and demonstrable (offline screenshots)
without a broker, a worker and a simulator. Rather than filling a `DashboardState` by hand,
this module runs a small deterministic discrete-event simulation of the network (routing with a
weighted score, store queues with capacity per hour, rejections and re-routes, cancellations,
click & collect and transfers to store) and emits the messages the real system publishes, built
with the output models of streams/records.py so their JSON shapes are exactly the contract.
Those messages are then folded through `dashboard.model.fold`, the same path live data takes.

Same seed and same `now` give the same messages. `FIXTURE_ORDER_ID` is an order that always
goes through its whole lifecycle (routed, accepted, picked, packed, label printed, shipped)
and `FIXTURE_SKU` a SKU held at every location, for tests and for the page's search hints.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dashboard.model import (
    H_AVAILABILITY,
    H_DEAD_LETTERS,
    H_LOCATIONS,
    H_ORDER_EVENTS,
    H_ROUTED,
    H_STORE_LOAD,
    DashboardState,
    fold_many,
)
from streams.records import (
    DeadLetter,
    Location,
    OrderEvent,
    RoutedOrder,
    RoutedShipment,
    ShipmentLine,
    ShipmentState,
    StockAvailability,
    StoreLoad,
)
from streams.topics import TOPICS

FIXTURE_SEED = 7
FIXTURE_ORDER_ID = "ORD-100001"
FIXTURE_SKU = "SKU-0001"
N_SKUS = 40

Message = tuple[str, dict[str, Any], str]
"""(topic handle, value as published, key)."""

# location_id, kind, name, lat, lon, capacity_per_hour, max_backlog, safety_stock
_LOCATIONS: tuple[tuple[str, str, str, float, float, int, int, int], ...] = (
    ("W-NORTH", "warehouse", "DC Hamburg-Allermöhe", 53.485, 10.125, 600, 4000, 0),
    ("W-SOUTH", "warehouse", "DC Munich-Eching", 48.300, 11.620, 500, 3500, 0),
    ("S-BER-01", "store", "Berlin Alexanderplatz", 52.521, 13.411, 20, 40, 1),
    ("S-BER-02", "store", "Berlin Spandau", 52.536, 13.203, 14, 30, 1),
    ("S-HAM-01", "store", "Hamburg Mönckebergstraße", 53.551, 9.998, 18, 40, 1),
    ("S-MUC-01", "store", "Munich Kaufingerstraße", 48.137, 11.572, 20, 40, 1),
    ("S-MUC-02", "store", "Munich Pasing", 48.149, 11.461, 12, 25, 1),
    ("S-CGN-01", "store", "Cologne Schildergasse", 50.937, 6.955, 16, 35, 1),
    ("S-FRA-01", "store", "Frankfurt Zeil", 50.114, 8.684, 18, 35, 1),
    ("S-STR-01", "store", "Stuttgart Königstraße", 48.777, 9.178, 12, 25, 1),
    ("S-DUS-01", "store", "Düsseldorf Kö-Bogen", 51.227, 6.778, 14, 30, 1),
    ("S-LEI-01", "store", "Leipzig Petersstraße", 51.338, 12.374, 10, 20, 1),
    ("S-NUE-01", "store", "Nuremberg Breite Gasse", 49.451, 11.072, 12, 25, 1),
    ("SUP-ACME", "supplier", "Acme Outdoor (drop ship)", 51.960, 7.626, 200, 2000, 0),
    ("MKT-PARTNER", "marketplace", "Partner marketplace hub", 52.390, 13.060, 300, 3000, 0),
)

# city centre, share of customers
_CITIES: tuple[tuple[float, float, float], ...] = (
    (52.52, 13.40, 0.30),  # Berlin
    (53.55, 10.00, 0.11),  # Hamburg
    (48.14, 11.57, 0.18),  # Munich
    (50.94, 6.96, 0.10),  # Cologne
    (50.11, 8.68, 0.09),  # Frankfurt
    (48.78, 9.18, 0.06),  # Stuttgart
    (51.23, 6.78, 0.06),  # Düsseldorf
    (51.34, 12.37, 0.05),  # Leipzig
    (49.45, 11.08, 0.05),  # Nuremberg
)

_MODE_BY_KIND = {
    "warehouse": "ship_from_warehouse",
    "store": "ship_from_store",
    "supplier": "drop_ship",
    "marketplace": "drop_ship",
}
_KIND_PREFERENCE = {"warehouse": 0.8, "store": 0.0, "supplier": 2.5, "marketplace": 2.0}
_HOME_STEPS = ("picked", "packed", "label_printed")
# shipment statuses that still hold work at a location (as domain/orders.py OPEN)
_OPEN = frozenset({"routed", "accepted", "picked", "packed", "label_printed", "ready_for_pickup"})
_PICKUP_STEPS = ("picked", "packed", "ready_for_pickup")


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@dataclass(frozen=True)
class _Loc:
    kind: str
    name: str
    lat: float
    lon: float
    cap: int
    max_backlog: int
    safety: int


@dataclass
class _Shipment:
    shipment_id: str
    location_id: str
    mode: str
    lines: list[tuple[str, int]]
    status: str = "routed"
    destination: str | None = None

    def state(self) -> ShipmentState:
        return ShipmentState(
            shipment_id=self.shipment_id,
            location_id=self.location_id,
            mode=self.mode,  # type: ignore[arg-type]
            status=self.status,
            lines=[ShipmentLine(sku=s, qty=q) for s, q in self.lines],
            destination_location_id=self.destination,
        )


@dataclass
class _Order:
    order_id: str
    placed_at: float
    lat: float
    lon: float
    click_collect: str | None
    lines: list[tuple[str, int]]
    reject_first: bool
    cancel_at: float | None
    attempt: int = 0
    shipments: list[_Shipment] = field(default_factory=list)
    rejected_at: set[str] = field(default_factory=set)
    cancelled: bool = False
    unroutable: bool = False


class _Simulation:
    """A tiny network: weighted routing, FIFO store queues at capacity_per_hour, a carrier."""

    def __init__(self, seed: int, as_of: float, hours: float, n_orders: int) -> None:
        self.rng = random.Random(seed)
        self.as_of = as_of
        self.t0 = as_of - hours * 3600.0
        self.n_orders = n_orders
        self.locs = {
            lid: _Loc(kind, name, lat, lon, cap, mb, safety)
            for lid, kind, name, lat, lon, cap, mb, safety in _LOCATIONS
        }
        self.stock: dict[tuple[str, str], list[int]] = {}
        self.open: dict[str, dict[str, tuple[str, float, int]]] = {lid: {} for lid in self.locs}
        self.free_at: dict[str, float] = dict.fromkeys(self.locs, self.t0)
        self.prep: dict[str, dict[str, list[float]]] = {lid: {} for lid in self.locs}
        self.step_started: dict[str, float] = {}
        self.orders: dict[str, _Order] = {}
        self.out: list[tuple[float, int, Message]] = []
        self.queue: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self.seq = 0
        self.shipment_seq = 0
        self.event_seq = 0

    # ---- emission ----------------------------------------------------------------------------

    def _emit(self, t: float, handle: str, value: dict[str, Any], key: str) -> None:
        self.seq += 1
        self.out.append((t, self.seq, (handle, value, key)))

    def _available(self, sku: str, loc: str) -> int:
        on_hand, reserved = self.stock.get((sku, loc), (0, 0))
        return max(0, on_hand - reserved - self.locs[loc].safety)

    def _emit_stock(self, t: float, sku: str, loc: str) -> None:
        on_hand, reserved = self.stock[(sku, loc)]
        rec = StockAvailability(
            sku=sku,
            location_id=loc,
            on_hand=on_hand,
            reserved=reserved,
            available=self._available(sku, loc),
            updated_at=_dt(t),
        )
        self._emit(t, H_AVAILABILITY, rec.model_dump(mode="json"), f"{sku}@{loc}")

    def _emit_load(self, t: float, loc: str) -> None:
        meta = self.locs[loc]
        open_ships = self.open[loc]
        orders = {order_id for order_id, _, _ in open_ships.values()}
        since = min((s for _, s, _ in open_ships.values()), default=None)
        cap, mb = meta.cap, meta.max_backlog
        rec = StoreLoad(
            location_id=loc,
            kind=meta.kind,
            open_orders=len(orders),
            open_units=sum(u for _, _, u in open_ships.values()),
            capacity_per_hour=cap,
            max_backlog=mb,
            saturation=round(len(orders) / cap, 4) if cap else 0.0,
            backlog_saturation=round(len(orders) / mb, 4) if mb else 0.0,
            oldest_open_age_s=round(t - since, 1) if since is not None else 0.0,
            oldest_open_since=_dt(since) if since is not None else None,
            prep_time_s={k: round(v[0] / v[1], 1) for k, v in self.prep[loc].items() if v[1]},
            updated_at=_dt(t),
        )
        self._emit(t, H_STORE_LOAD, rec.model_dump(mode="json"), loc)

    def _overall(self, order: _Order) -> str:
        """The order's overall status, by the rules of domain/orders.py `derive_status`."""
        handed = ("shipped", "collected", "in_transit")
        if order.cancelled and not any(s.status in handed for s in order.shipments):
            return "cancelled"
        live = [s for s in order.shipments if s.status not in ("rejected", "cancelled")]
        if not live:
            return "unroutable" if order.unroutable else "routed"
        done = [s for s in live if s.status in ("shipped", "collected")]
        if len(done) == len(live):
            return "collected" if all(s.status == "collected" for s in live) else "shipped"
        if done:
            return "partially_shipped"
        if all(s.status == "ready_for_pickup" for s in live):
            return "ready_for_pickup"
        if any(s.status != "routed" for s in live):
            return "in_preparation"
        return "routed"

    def _emit_order_event(
        self,
        t: float,
        order: _Order,
        change: str,
        ship: _Shipment | None = None,
        detail: dict[str, object] | None = None,
        *,
        location_id: str | None = None,
    ) -> None:
        self.event_seq += 1
        rec = OrderEvent(
            event_id=f"oe-{self.event_seq:07d}",
            order_id=order.order_id,
            occurred_at=_dt(t),
            change=change,
            order_status=self._overall(order),  # type: ignore[arg-type]
            shipment_id=ship.shipment_id if ship else None,
            location_id=location_id or (ship.location_id if ship else None),
            shipments=[s.state() for s in order.shipments],
            detail=detail or {},
        )
        self._emit(t, H_ORDER_EVENTS, rec.model_dump(mode="json"), order.order_id)

    # ---- scheduling --------------------------------------------------------------------------

    def _at(self, t: float, action: str, *args: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (t, self.seq, action, args))

    def run(self) -> list[Message]:
        self._setup()
        self._place_orders()
        while self.queue:
            t, _, action, args = heapq.heappop(self.queue)
            if t > self.as_of:
                break
            getattr(self, f"_do_{action}")(t, *args)
        self._dead_letters()
        self.out.sort(key=lambda item: (item[0], item[1]))
        return [m for _, _, m in self.out]

    def _dead_letters(self) -> None:
        """Inputs a worker would refuse, spread over the window (their own random stream, so
        the network above is the same with or without them)."""
        rng = random.Random(f"dead-letters-{self.rng.random()}")
        span = self.as_of - self.t0
        samples: list[tuple[str, str | None, str, str]] = [
            (
                "web_orders",
                "ORD-900001",
                '{"order_id": "ORD-900001", "lines": [{"sku": "SKU-0004", "qty": 2}',
                "malformed JSON: EOF while parsing a list at line 1 column 63",
            ),
            (
                "web_orders",
                "ORD-900002",
                '{"order_id": "ORD-900002", "lines": [{"sku": "SKU-0007", "qty": 0}]}',
                "invalid WebOrder: lines.0.qty: Input should be greater than 0; "
                "customer: Field required",
            ),
            (
                "pos_sales",
                None,
                '{"event_id": "pos-77", "location_id": "ST-999", "sku": "SKU-0002", "qty": 1}',
                "unknown location_id 'ST-999'",
            ),
            (
                "fulfilment_events",
                "ORD-100002",
                '{"event_id": "fe-31", "order_id": "ORD-100003", "type": "accepted"}',
                "message key must be the order_id 'ORD-100003'",
            ),
            (
                "web_orders",
                "ORD-900003",
                "order ORD-900003, 2 x SKU-0001",
                "malformed JSON: expected value at line 1 column 1",
            ),
        ]
        for i in range(12):
            handle, key, raw, error = samples[i % len(samples)] if i < 5 else rng.choice(samples)
            t = self.t0 + span * (i + rng.random()) / 12
            rec = DeadLetter(
                source_topic=getattr(TOPICS, handle).name,
                partition=rng.randrange(4),
                offset=1000 + i * 37,
                key=key,
                raw=raw,
                error=error,
                rejected_at=_dt(t),
            )
            self._emit(t, H_DEAD_LETTERS, rec.model_dump(mode="json"), key or "")

    def _setup(self) -> None:
        rng = self.rng
        start = self.t0 - 120
        for lid, kind, name, lat, lon, cap, mb, safety in _LOCATIONS:
            rec = Location(
                location_id=lid,
                kind=kind,  # type: ignore[arg-type]
                name=name,
                lat=lat,
                lon=lon,
                ship_from_store=kind == "store",
                click_collect=kind == "store",
                capacity_per_hour=cap,
                max_backlog=mb,
                safety_stock=safety,
                active=True,
            )
            self._emit(start, H_LOCATIONS, rec.model_dump(mode="json"), lid)
        for i in range(1, N_SKUS + 1):
            sku = f"SKU-{i:04d}"
            for lid, meta in self.locs.items():
                kind = meta.kind
                if kind == "warehouse":
                    qty = rng.randint(40, 220) if i < N_SKUS - 2 else rng.randint(0, 2)
                elif kind == "store":
                    if i != 1 and (i > N_SKUS - 2 or rng.random() > 0.75):
                        continue
                    qty = rng.randint(4, 30)
                elif kind == "supplier":
                    if (i % 3 != 0 and i != 1) or i > N_SKUS - 2:
                        continue
                    qty = 500
                else:
                    if (i % 2 != 0 and i != 1) or i > N_SKUS - 2:
                        continue
                    qty = rng.randint(20, 120)
                self.stock[(sku, lid)] = [qty, 0]
                self._emit_stock(start + 30, sku, lid)
        for lid in self.locs:
            self._emit_load(self.t0, lid)

    def _place_orders(self) -> None:
        rng = self.rng
        span = self.as_of - self.t0
        times = sorted(self.t0 + span * rng.betavariate(2.2, 1.6) for _ in range(self.n_orders))
        weights = [1.0 / (i + 1) ** 0.8 for i in range(N_SKUS)]
        skus = [f"SKU-{i:04d}" for i in range(1, N_SKUS + 1)]
        store_ids = [lid for lid, m in self.locs.items() if m.kind == "store"]
        for n, placed in enumerate(times, start=1):
            order_id = f"ORD-{100000 + n}"
            if n == 1:  # the known order: an early, quiet-time home delivery near Hamburg
                order = _Order(
                    order_id, self.t0 + 300, 53.56, 10.01, None, [(skus[0], 1)], False, None
                )
            else:
                lat, lon, _ = rng.choices(_CITIES, weights=[c[2] for c in _CITIES])[0]
                lat += rng.uniform(-0.15, 0.15)
                lon += rng.uniform(-0.2, 0.2)
                picked = rng.choices(skus, weights=weights, k=rng.choice((1, 1, 1, 2, 2, 3)))
                if rng.random() < 0.025:  # a scarce article: few units left network-wide
                    picked.append(skus[rng.choice((-1, -2))])
                lines = [(s, rng.choice((1, 1, 1, 2))) for s in dict.fromkeys(picked)]
                pickup = None
                if rng.random() < 0.2:
                    pickup = min(
                        store_ids,
                        key=lambda s: _km(lat, lon, self.locs[s].lat, self.locs[s].lon),
                    )
                cancel_at = placed + rng.uniform(60, 900) if rng.random() < 0.03 else None
                order = _Order(
                    order_id, placed, lat, lon, pickup, lines, rng.random() < 0.07, cancel_at
                )
            self.orders[order_id] = order
            self._at(order.placed_at + rng.uniform(0.02, 0.2), "route", order_id)
            if order.cancel_at is not None:
                self._at(order.cancel_at, "cancel", order_id)

    # ---- routing -----------------------------------------------------------------------------

    def _score(self, order: _Order, loc: str, lines: list[tuple[str, int]]) -> dict[str, float]:
        meta = self.locs[loc]
        km = _km(order.lat, order.lon, meta.lat, meta.lon)
        open_orders = len({o for o, _, _ in self.open[loc].values()})
        depth = 0.0
        if meta.kind == "store":
            depth = sum(1.0 for s, q in lines if self._available(s, loc) - q < 2)
        breakdown = {
            "distance_km": round(km, 1),
            "shipping_cost": round(0.02 * km, 3),
            "per_shipment": 1.5,
            "load": round(3.0 * open_orders / meta.cap, 3) if meta.cap else 0.0,
            "kind_preference": _KIND_PREFERENCE[meta.kind],
            "stock_depth": depth,
        }
        breakdown["total"] = round(sum(v for k, v in breakdown.items() if k != "distance_km"), 3)
        return breakdown

    def _eligible(self, order: _Order, loc: str) -> bool:
        meta = self.locs[loc]
        if loc in order.rejected_at:
            return False
        open_orders = len({o for o, _, _ in self.open[loc].values()})
        return not (meta.max_backlog and open_orders >= meta.max_backlog)

    def _serves(self, loc: str, lines: list[tuple[str, int]]) -> bool:
        return all(self._available(s, loc) >= q for s, q in lines)

    def _do_route(
        self, t: float, order_id: str, lines: list[tuple[str, int]] | None = None
    ) -> None:
        order = self.orders[order_id]
        if order.cancelled:
            return
        lines = lines or order.lines
        order.attempt += 1
        plan: list[tuple[str, str, list[tuple[str, int]], str | None]] = []
        # `reasons` in the shape domain/routing.py documents (a subset of its keys)
        reasons: dict[str, object] = {
            "policy": "weighted_score",
            "delivery_mode": "click_collect" if order.click_collect else "home",
            "service": "standard",
        }
        if order.rejected_at:
            reasons["rejected_before"] = sorted(order.rejected_at)
        if (
            order.click_collect
            and self._serves(order.click_collect, lines)
            and self._eligible(order, order.click_collect)
        ):
            plan = [(order.click_collect, "click_collect", lines, None)]
            reasons["pickup_location_id"] = order.click_collect
            reasons["rule"] = "own_shelf"
        else:
            scored = sorted(
                (self._score(order, loc, lines)["total"], loc)
                for loc in self.locs
                if self._eligible(order, loc) and self._serves(loc, lines)
            )
            reasons["candidates"] = [
                {
                    "location_id": loc,
                    "mode": _MODE_BY_KIND[self.locs[loc].kind],
                    "distance_km": self._score(order, loc, lines)["distance_km"],
                    "total": total,
                }
                for total, loc in scored[:5]
            ]
            reasons["candidates_count"] = len(scored)
            if scored:
                loc = scored[0][1]
                mode = (
                    "transfer_to_store"
                    if order.click_collect
                    else _MODE_BY_KIND[self.locs[loc].kind]
                )
                plan = [(loc, mode, lines, order.click_collect)]
                reasons["rule"] = "single_location"
            else:
                plan = self._split(order, lines)
                if plan:
                    reasons["rule"] = "split"
        if plan:
            reasons["chosen"] = [
                {"location_id": loc, "mode": mode, **self._score(order, loc, ls)}
                for loc, mode, ls, _ in plan
            ]
            reasons["total"] = round(
                sum(self._score(order, loc, ls)["total"] for loc, _, ls, _ in plan), 4
            )
        if order.attempt > 3 or not plan:
            order.unroutable = True
            reasons["unroutable"] = (
                "too_many_attempts" if order.attempt > 3 else "insufficient_stock"
            )
            rec = RoutedOrder(
                order_id=order_id,
                attempt=order.attempt,
                status="unroutable",
                decided_at=_dt(t),
                shipments=[],
                reasons={**reasons, "new_shipments": [], "excluded": sorted(order.rejected_at)},
                unroutable_lines=[ShipmentLine(sku=s, qty=q) for s, q in lines],
            )
            self._emit(t, H_ROUTED, rec.model_dump(mode="json"), order_id)
            self._emit_order_event(
                t,
                order,
                "unroutable",
                detail={
                    "lines": [{"sku": s, "qty": q} for s, q in lines],
                    "reasons": {"unroutable": reasons["unroutable"]},
                },
            )
            return
        new: list[_Shipment] = []
        for loc, mode, ship_lines, destination in plan:
            self.shipment_seq += 1
            ship = _Shipment(
                f"SH-{self.shipment_seq:06d}", loc, mode, ship_lines, "routed", destination
            )
            new.append(ship)
            order.shipments.append(ship)
            for sku, qty in ship_lines:
                self.stock[(sku, loc)][1] += qty
                self._emit_stock(t, sku, loc)
            self.open[loc][ship.shipment_id] = (order_id, t, sum(q for _, q in ship_lines))
            self.step_started[ship.shipment_id] = t
            self._emit_load(t, loc)
        rec = RoutedOrder(
            order_id=order_id,
            attempt=order.attempt,
            status="routed",
            decided_at=_dt(t),
            # like the worker: every shipment still open, the new ones named in the reasons
            shipments=[
                RoutedShipment(
                    shipment_id=s.shipment_id,
                    location_id=s.location_id,
                    mode=s.mode,  # type: ignore[arg-type]
                    lines=[ShipmentLine(sku=k, qty=q) for k, q in s.lines],
                )
                for s in order.shipments
                if s.status in _OPEN or s.status == "in_transit"
            ],
            reasons={
                **reasons,
                "new_shipments": [s.shipment_id for s in new],
                "excluded": sorted(order.rejected_at),
            },
        )
        self._emit(t, H_ROUTED, rec.model_dump(mode="json"), order_id)
        self._emit_order_event(
            t + 0.05,
            order,
            "routed",
            detail={"attempt": order.attempt, "shipments": [s.shipment_id for s in new]},
        )
        for ship in new:
            kind = self.locs[ship.location_id].kind
            delay = {"store": 90.0, "warehouse": 30.0}.get(kind, 420.0)
            accept_at = t + self.rng.expovariate(1.0 / delay)
            if order.reject_first and order.attempt == 1 and kind == "store":
                self._at(accept_at, "reject", order_id, ship.shipment_id)
            else:
                self._at(accept_at, "accept", order_id, ship.shipment_id)

    def _split(
        self, order: _Order, lines: list[tuple[str, int]]
    ) -> list[tuple[str, str, list[tuple[str, int]], str | None]]:
        groups: dict[str, list[tuple[str, int]]] = {}
        for sku, qty in lines:
            options = sorted(
                (self._score(order, loc, [(sku, qty)])["total"], loc)
                for loc in self.locs
                if self._eligible(order, loc) and self._serves(loc, [(sku, qty)])
            )
            if not options:
                return []
            groups.setdefault(options[0][1], []).append((sku, qty))
        if len(groups) > 2:
            return []
        return [
            (
                loc,
                "transfer_to_store" if order.click_collect else _MODE_BY_KIND[self.locs[loc].kind],
                ls,
                order.click_collect,
            )
            for loc, ls in groups.items()
        ]

    # ---- the workflow ------------------------------------------------------------------------

    def _ship(self, order_id: str, shipment_id: str) -> tuple[_Order, _Shipment] | None:
        order = self.orders[order_id]
        if order.cancelled:
            return None
        for ship in order.shipments:
            if ship.shipment_id == shipment_id:
                return order, ship
        return None

    def _record_step(self, t: float, ship: _Shipment, step: str, at: str | None = None) -> None:
        """Preparation time per step, keyed "<from>-><to>" like the worker's store-load."""
        started = self.step_started.get(ship.shipment_id, t)
        where = at or ship.location_id
        acc = self.prep[where].setdefault(f"{ship.status}->{step}", [0.0, 0])
        acc[0] += t - started
        acc[1] += 1
        self.step_started[ship.shipment_id] = t

    def _close(self, t: float, ship: _Shipment, at: str | None = None) -> None:
        where = at or ship.location_id
        if self.open[where].pop(ship.shipment_id, None) is not None:
            self._emit_load(t, where)

    def _release(self, t: float, ship: _Shipment) -> None:
        for sku, qty in ship.lines:
            self.stock[(sku, ship.location_id)][1] -= qty
            self._emit_stock(t, sku, ship.location_id)

    def _consume(self, t: float, ship: _Shipment) -> None:
        for sku, qty in ship.lines:
            cell = self.stock[(sku, ship.location_id)]
            cell[0] -= qty
            cell[1] -= qty
            self._emit_stock(t, sku, ship.location_id)

    def _do_reject(self, t: float, order_id: str, shipment_id: str) -> None:
        found = self._ship(order_id, shipment_id)
        if found is None or found[1].status != "routed":
            return
        order, ship = found
        ship.status = "rejected"
        order.rejected_at.add(ship.location_id)
        self._release(t, ship)
        self._close(t, ship)
        self._emit_order_event(
            t, order, "shipment_rejected", ship, {"reason": "item not found", "short": {}}
        )
        self._at(t + 0.5, "route", order_id, ship.lines)

    def _do_accept(self, t: float, order_id: str, shipment_id: str) -> None:
        found = self._ship(order_id, shipment_id)
        if found is None or found[1].status != "routed":
            return
        order, ship = found
        self._record_step(t, ship, "accepted")
        ship.status = "accepted"
        self._emit_order_event(t, order, "accepted", ship)
        meta = self.locs[ship.location_id]
        start = max(t, self.free_at[ship.location_id])
        duration = 3600.0 / meta.cap * self.rng.uniform(0.6, 1.4)
        if meta.kind in ("supplier", "marketplace"):
            duration += self.rng.uniform(1200, 3600)
        self.free_at[ship.location_id] = start + (3600.0 / meta.cap)
        steps = _PICKUP_STEPS if ship.mode == "click_collect" else _HOME_STEPS
        for share, step in zip((0.45, 0.75, 1.0), steps, strict=True):
            self._at(start + share * duration, "step", order_id, shipment_id, step)

    def _do_step(self, t: float, order_id: str, shipment_id: str, step: str) -> None:
        found = self._ship(order_id, shipment_id)
        if found is None or found[1].status in ("rejected", "cancelled"):
            return
        order, ship = found
        self._record_step(t, ship, step)
        ship.status = step
        if step == "ready_for_pickup":  # stays open at the store until collected
            self._at(t + self.rng.uniform(900, 7200), "collect", order_id, shipment_id)
        elif step == "label_printed":
            self._at(t + self.rng.uniform(120, 600), "carrier", order_id, shipment_id)
        self._emit_order_event(t, order, step, ship)

    def _do_carrier(self, t: float, order_id: str, shipment_id: str) -> None:
        found = self._ship(order_id, shipment_id)
        if found is None:
            return
        order, ship = found
        self._record_step(t, ship, "shipped")
        ship.status = "shipped"
        self._consume(t, ship)
        self._close(t, ship)
        if ship.destination is not None:  # a transfer: in transit to the pickup store
            ship.status = "in_transit"
            units = sum(q for _, q in ship.lines)
            self.open[ship.destination][ship.shipment_id] = (order_id, t, units)
            self._emit_load(t, ship.destination)
            self._at(t + self.rng.uniform(2400, 5400), "arrive", order_id, shipment_id)
        self._emit_order_event(t, order, "shipped", ship)

    def _do_arrive(self, t: float, order_id: str, shipment_id: str) -> None:
        found = self._ship(order_id, shipment_id)
        if found is None or ship_destination(found[1]) is None:
            return
        order, ship = found
        self._record_step(t, ship, "ready_for_pickup", at=ship.destination)
        ship.status = "ready_for_pickup"
        self._emit_order_event(t, order, "ready_for_pickup", ship, location_id=ship.destination)
        self._at(t + self.rng.uniform(900, 7200), "collect", order_id, shipment_id)

    def _do_collect(self, t: float, order_id: str, shipment_id: str) -> None:
        found = self._ship(order_id, shipment_id)
        if found is None:
            return
        order, ship = found
        where = ship.destination or ship.location_id
        if ship.mode == "click_collect":
            self._consume(t, ship)
        self._record_step(t, ship, "collected", at=where)
        ship.status = "collected"
        self._close(t, ship, at=where)
        self._emit_order_event(t, order, "collected", ship, location_id=where)

    def _do_cancel(self, t: float, order_id: str) -> None:
        order = self.orders[order_id]
        if order.unroutable or order.cancelled:
            return
        live = [s for s in order.shipments if s.status not in ("rejected", "cancelled")]
        if any(
            s.status in ("shipped", "in_transit", "ready_for_pickup", "collected") for s in live
        ):
            return  # too late to cancel: already handed over
        released = []
        for ship in live:
            ship.status = "cancelled"
            self._release(t, ship)
            self._close(t, ship)
            released.append(ship.shipment_id)
        order.cancelled = True
        self._emit_order_event(t, order, "cancelled", detail={"released_shipments": released})


def ship_destination(ship: _Shipment) -> str | None:
    return ship.destination if ship.status == "in_transit" else None


@dataclass(frozen=True)
class Fixture:
    """A folded fixture: the state to show, the instant it represents, and its messages."""

    state: DashboardState
    as_of: datetime
    messages: list[Message]
    order_ids: list[str]


def build_messages(
    seed: int = FIXTURE_SEED,
    now: datetime | None = None,
    *,
    hours: float = 3.0,
    n_orders: int = 480,
) -> list[Message]:
    """The messages of `hours` of peak ending at `now`, in publication order.

    Useful beyond the dashboard tests: publishing them to a scratch set of topics exercises
    the Kafka reader with realistic shapes."""
    as_of = (now or datetime.now(UTC)).timestamp()
    return _Simulation(seed, as_of, hours, n_orders).run()


def build_fixture(
    seed: int = FIXTURE_SEED,
    now: datetime | None = None,
    *,
    hours: float = 3.0,
    n_orders: int = 480,
    sample_every_s: float = 30.0,
) -> Fixture:
    """Simulate, then fold every message into a fresh state, exactly as the live feed would."""
    as_of = now or datetime.now(UTC).replace(microsecond=0)
    messages = build_messages(seed, as_of, hours=hours, n_orders=n_orders)
    state = DashboardState(sample_every_s=sample_every_s)
    fold_many(state, ((h, v, k) for h, v, k in messages))
    order_ids = sorted({v["order_id"] for h, v, _ in messages if h == H_ROUTED})
    return Fixture(state=state, as_of=as_of, messages=messages, order_ids=order_ids)


def build_state(seed: int = FIXTURE_SEED, now: datetime | None = None) -> DashboardState:
    """Just the folded state (see `build_fixture` for the instant and the messages)."""
    return build_fixture(seed, now).state
