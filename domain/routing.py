"""The routing policy: where each order ships from. A pure function, no Kafka, no Faust.

`decide(request, stock, locations, loads, policy)` turns one order and a view of the network
(available stock per SKU and location, the locations, their current load) into a `Decision`:
the planned shipments, or `unroutable` with the reason. The streaming router calls it per order
(then reserves, and decides again if a reservation lost a race), the simulator and the
benchmarks call it directly. Same inputs, same decision: ties are broken by location_id.

Shape (the one shared by commercial OMS: filter, score, fall back, give up)
-----------------------------------------------------------------------------
1. **Filter** the locations holding any available unit of the order's SKUs. A location is never
   chosen when it
   - already rejected this order (`request.excluded`)             -> ``rejected_before``
   - is inactive                                                   -> ``inactive``
   - paused web orders until a time after the decision's `now`
     (``paused_until``: walk-in customers first)                   -> ``paused``
   - is a store without ``ship_from_store`` (home and transfers)   -> ``not_ship_from_store``
   - has ``capacity_per_hour == 0`` or ``max_backlog == 0``: it is
     not set up for online work at all (0 never means "no limit")  -> ``no_capacity``
   - has ``open_orders >= max_backlog``: saturated                 -> ``saturated``
   - is unknown (stock reported for a location with no record)     -> ``unknown_location``
   - has a calendar with no preparation hour left (routed with a
     `now` only: the promise needs one)                            -> ``never_prepares``
   The mode follows the kind: warehouse -> ship_from_warehouse, store -> ship_from_store,
   supplier and marketplace -> drop_ship (the partner ships to the customer).
2. **Click & collect**: the pickup store must exist, be active and offer click & collect,
   otherwise the order is unroutable. The pickup store serves the order from its own shelf (mode
   ``click_collect``, whatever its ``ship_from_store`` flag) when it holds every line and passes
   the filter above (not rejected before, not paused, configured, not saturated). Otherwise the
   lines are shipped to the pickup store from other locations (mode ``transfer_to_store``),
   scored like a home delivery whose destination is the pickup store.
3. **Score** a shipment (lower is better; every term is in currency-like units)::

       shipping   = cost_per_km * great_circle_km(location, destination)
                    * (express_multiplier if service == "express" else 1)
       shipment   = cost_per_shipment                        (so every split costs this again)
       load       = load_weight * open_orders / capacity_per_hour
                    + backlog_weight * f / (1 - f),  f = open_orders / max_backlog
                    (hours of queued work, plus a congestion term that explodes near max_backlog)
       preference = {warehouse,store,supplier,marketplace}_preference[kind]
       depth      = depth_weight * (units taken from among a *store's* last depth_target_units
                    available units, per SKU)   (walk-in customers come first)
       promise    = promise_weight * days from `now` until the customer has it (domain/promise.py:
                    the queue at the location's capacity within its preparation hours, the next
                    carrier cut-off, transit and delivery days; computed at `now` rounded up to
                    the minute; 0 when routed without a `now`)
       total      = shipping + shipment + load + preference + depth + promise

   A plan's score is the sum over its shipments.
4. **Prefer one location**: when at least one candidate holds every line, the best-scored of
   them serves the whole order, whatever a split would cost.
5. **Split** only when no single location can, with at most ``max_shipments`` shipments. The
   search works on a pool of the ``candidate_limit`` candidates with the best cost per unit they
   can cover (plus, for each SKU, the best candidate holding it, so pruning never loses
   feasibility) and keeps the cheapest of: the exact best pair; a greedy plan by cost per newly
   covered unit (weighted set cover); a greedy plan by most units covered (fewest shipments);
   and, when both greedy plans need too many shipments, an exact search of larger combinations.
   A SKU's quantity may be split between two locations.
6. **Give up**: if the order cannot be covered (not enough stock on eligible locations, or not
   within ``max_shipments``), the decision is ``unroutable`` with no shipments, every line in
   ``unroutable_lines``, and the reason.

`reasons` (JSON-serialisable, for planners and support) has these keys:
``policy`` (which router decided), ``delivery_mode``, ``service``, ``rejected_before`` (sorted
ids, when any), ``pickup_location_id`` and ``own_shelf`` (click & collect: why the pickup shelf
was not used), ``ineligible`` ({reason: [location ids]} for locations holding stock that were
filtered out), ``no_stock_count``, ``candidates`` (the best ``reasons_limit`` eligible ones:
``total`` for those able to serve the whole order, else ``why`` not), ``candidates_count``,
``rule`` (``own_shelf`` | ``single_location`` | ``split``), ``chosen`` (per shipment: location,
mode and the score breakdown), ``total``, ``split`` (why, best single coverage, shipments,
max_shipments), and for an unroutable order ``unroutable`` (``empty_order``,
``unknown_pickup_store``, ``pickup_store_inactive``, ``pickup_store_not_click_collect``,
``unknown_delivery_mode``, ``insufficient_stock``, ``needs_split``, ``too_many_shipments``) with
``unroutable_detail``.

Stock figures in the `StockView` are *available* units: already net of reservations and safety
stock. `max_attempts` and `acceptance_timeout_s` are read by the streaming router (re-routing),
not by `decide`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from domain.backorders import BackorderPolicy
from domain.calendar import NeverPrepares
from domain.geo import great_circle_km
from domain.promise import Carriers, Promise, routing_promise
from streams.records import Location

DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[1] / "policy" / "routing.yaml"

Lines = tuple[tuple[str, int], ...]

HOME = "home"
CLICK_COLLECT = "click_collect"
EXPRESS = "express"

MODE_BY_KIND: dict[str, str] = {
    "warehouse": "ship_from_warehouse",
    "store": "ship_from_store",
    "supplier": "drop_ship",
    "marketplace": "drop_ship",
}
TRANSFER = "transfer_to_store"

# Larger-combination search is exact but combinatorial: cap the combinations examined.
_MAX_COMBINATIONS = 4000


# ---- policy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingPolicy:
    """The routing knobs. Defaults equal policy/routing.yaml (which documents each one)."""

    cost_per_km: float = 0.01
    express_multiplier: float = 1.6
    cost_per_shipment: float = 6.0
    load_weight: float = 0.1
    backlog_weight: float = 0.1
    warehouse_preference: float = 0.0
    store_preference: float = 0.05
    supplier_preference: float = 0.25
    marketplace_preference: float = 3.0
    depth_weight: float = 0.0
    depth_target_units: int = 2
    max_shipments: int = 3
    candidate_limit: int = 12
    reasons_limit: int = 10
    max_attempts: int = 3
    acceptance_timeout_s: float = 900.0
    promise_weight: float = 1.0
    carriers: Carriers = field(default_factory=Carriers.default)
    # lines no location can serve wait for stock (domain/backorders.py); read by the router
    backorder: BackorderPolicy = field(default_factory=BackorderPolicy)

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in ("carriers", "backorder"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"routing policy: {f.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"routing policy: {f.name} must be finite and >= 0")
            if f.type in ("int", int) and not isinstance(value, int):
                raise ValueError(f"routing policy: {f.name} must be an integer, got {value!r}")
        if self.express_multiplier < 1:
            raise ValueError("routing policy: express_multiplier must be >= 1")
        for name in ("max_shipments", "candidate_limit", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"routing policy: {name} must be >= 1")
        if self.acceptance_timeout_s <= 0:
            raise ValueError("routing policy: acceptance_timeout_s must be > 0")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RoutingPolicy:
        """Build from a mapping; unknown keys are an error (a typo must not pass silently)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"routing policy: unknown keys {unknown}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "carriers":
                values[name] = Carriers.from_mapping(value)
                continue
            if name == "backorder":
                if not isinstance(value, Mapping):
                    raise ValueError("routing policy: backorder must be a mapping")
                values[name] = BackorderPolicy.from_mapping(value)
                continue
            # YAML writes 6 for 6.0: accept ints for float knobs, never floats for int knobs.
            is_int = isinstance(value, int) and not isinstance(value, bool)
            if known[name].type in ("float", float) and is_int:
                value = float(value)
            values[name] = value
        return cls(**values)

    @classmethod
    def load(cls, path: Path) -> RoutingPolicy:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        if not isinstance(data, Mapping):
            raise ValueError(f"routing policy {path}: expected a mapping at the top level")
        return cls.from_mapping(data)

    @classmethod
    def default(cls) -> RoutingPolicy:
        return cls()

    def preference(self, kind: str) -> float:
        if kind == "warehouse":
            return self.warehouse_preference
        if kind == "store":
            return self.store_preference
        if kind == "supplier":
            return self.supplier_preference
        return self.marketplace_preference


# ---- inputs and outputs ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadView:
    open_orders: int = 0
    open_units: int = 0


_NO_LOAD = LoadView()


@dataclass(frozen=True)
class RoutingRequest:
    order_id: str
    customer_lat: float
    customer_lon: float
    delivery_mode: str  # "home" | "click_collect"
    pickup_location_id: str | None
    service: str  # "standard" | "express"
    lines: Lines  # (sku, qty); skus unique (the caller merges duplicates)
    excluded: frozenset[str] = frozenset()  # locations that already rejected this order


class StockView(Protocol):
    def stock_of(self, sku: str) -> Mapping[str, int]:
        """location_id -> units available (net of reserved and safety stock); missing = 0."""
        ...


@dataclass(frozen=True)
class PlannedShipment:
    location_id: str
    mode: str
    lines: Lines
    # distance_km, shipping, shipment, load, preference, depth, promise, promise_days, total
    score: dict[str, float]
    promise: Promise | None = None  # None when routed without a `now` (no clock, no promise)


@dataclass(frozen=True)
class Decision:
    status: str  # "routed" | "unroutable"
    shipments: tuple[PlannedShipment, ...]
    unroutable_lines: Lines
    reasons: dict[str, object]


# ---- building blocks (shared with domain.baselines) ------------------------------------------


def merge_lines(lines: Iterable[tuple[str, int]]) -> Lines:
    """Merge duplicate SKUs (first appearance order) and drop non-positive quantities."""
    merged: dict[str, int] = {}
    for sku, qty in lines:
        if qty > 0:
            merged[sku] = merged.get(sku, 0) + qty
    return tuple(merged.items())


def load_penalty(loc: Location, load: LoadView, policy: RoutingPolicy) -> float:
    """Hours of queued work plus congestion towards max_backlog (0 for unconfigured locations).

    The congestion term f/(1-f) uses open orders capped at max_backlog - 1 so it stays finite
    for the baselines, which ignore load and may pick a saturated location.
    """
    cap = loc.capacity_per_hour
    backlog = loc.max_backlog
    if cap <= 0 or backlog <= 0:
        return 0.0
    open_orders = max(0, load.open_orders)
    f = min(open_orders, backlog - 1) / backlog
    return policy.load_weight * open_orders / cap + policy.backlog_weight * f / (1.0 - f)


def is_paused(loc: Location, now: datetime | None) -> bool:
    """The location paused web orders until after `now` (no `now`: pauses are not checked)."""
    return now is not None and loc.paused_until is not None and loc.paused_until > now


def ineligibility(
    location_id: str,
    loc: Location | None,
    request: RoutingRequest,
    load: LoadView,
    *,
    check_load: bool = True,
    now: datetime | None = None,
) -> str | None:
    """Why this location may not ship this order (None: it may). Stock is checked elsewhere."""
    if loc is None:
        return "unknown_location"
    if location_id in request.excluded:
        return "rejected_before"
    if not loc.active:
        return "inactive"
    if is_paused(loc, now):
        return "paused"
    if loc.kind == "store" and not loc.ship_from_store:
        return "not_ship_from_store"
    if loc.capacity_per_hour <= 0 or loc.max_backlog <= 0:
        return "no_capacity"
    if check_load and load.open_orders >= loc.max_backlog:
        return "saturated"
    return None


class Candidate:
    """An eligible location holding some of the order's stock, with its fixed score terms."""

    __slots__ = (
        "location_id",
        "kind",
        "mode",
        "distance_km",
        "avail",
        "units",
        "covers_all",
        "shipping",
        "shipment",
        "load",
        "preference",
        "promise",
        "promise_days",
        "promise_cost",
        "fixed",
    )

    def __init__(
        self,
        location_id: str,
        loc: Location,
        mode: str,
        distance_km: float,
        avail: dict[str, int],
        need: Lines,
        load: LoadView,
        policy: RoutingPolicy,
        express: bool,
        promise: Promise | None = None,
        promise_days: float = 0.0,
    ) -> None:
        self.location_id = location_id
        self.kind = loc.kind
        self.mode = mode
        self.distance_km = distance_km
        self.avail = avail
        units = 0
        covers = True
        for sku, qty in need:
            a = avail.get(sku, 0)
            if a >= qty:
                units += qty
            else:
                units += a
                covers = False
        self.units = units  # units of the order it can cover on its own
        self.covers_all = covers
        shipping = policy.cost_per_km * distance_km
        if express:
            shipping *= policy.express_multiplier
        self.shipping = shipping
        self.shipment = policy.cost_per_shipment
        self.load = load_penalty(loc, load, policy)
        self.preference = policy.preference(loc.kind)
        self.promise = promise
        self.promise_days = promise_days
        self.promise_cost = policy.promise_weight * promise_days if promise is not None else 0.0
        self.fixed = shipping + self.shipment + self.load + self.preference + self.promise_cost

    def take_of(self, remaining: Iterable[tuple[str, int]]) -> Lines:
        """What this candidate can take of the remaining lines (request order kept)."""
        avail = self.avail
        out = []
        for sku, qty in remaining:
            a = avail.get(sku, 0)
            if a > 0 and qty > 0:
                out.append((sku, qty if qty < a else a))
        return tuple(out)

    def depth(self, take: Lines, policy: RoutingPolicy) -> float:
        """depth_weight per unit taken from among a store's last depth_target_units units."""
        if self.kind != "store":
            return 0.0
        target = policy.depth_target_units
        if target <= 0 or policy.depth_weight == 0:
            return 0.0
        units = 0
        avail = self.avail
        for sku, qty in take:
            band = target - (avail.get(sku, 0) - qty)
            if band > 0:
                units += qty if qty < band else band
        return policy.depth_weight * units

    def cost(self, take: Lines, policy: RoutingPolicy) -> float:
        return self.fixed + self.depth(take, policy)

    def breakdown(self, take: Lines, policy: RoutingPolicy) -> dict[str, float]:
        depth = self.depth(take, policy)
        return {
            "distance_km": round(self.distance_km, 3),
            "shipping": round(self.shipping, 4),
            "shipment": round(self.shipment, 4),
            "load": round(self.load, 4),
            "preference": round(self.preference, 4),
            "depth": round(depth, 4),
            "promise": round(self.promise_cost, 4),
            "promise_days": round(self.promise_days, 3),
            "total": round(self.fixed + depth, 4),
        }


@dataclass
class Prepared:
    """Everything a strategy needs once the order is validated and candidates are filtered."""

    lines: Lines
    units: int
    candidates: list[Candidate]
    excluded: dict[str, list[str]]
    no_stock: int
    reasons: dict[str, object]


def unroutable(lines: Lines, reasons: dict[str, object], why: str, **detail: object) -> Decision:
    reasons["unroutable"] = why
    if detail:
        reasons["unroutable_detail"] = dict(detail)
    return Decision("unroutable", (), lines, reasons)


def routed(
    plan: Sequence[tuple[Candidate, Lines]], policy: RoutingPolicy, reasons: dict[str, object]
) -> Decision:
    shipments = tuple(
        PlannedShipment(c.location_id, c.mode, take, c.breakdown(take, policy), c.promise)
        for c, take in plan
    )
    reasons["chosen"] = [
        {"location_id": s.location_id, "mode": s.mode, **s.score} for s in shipments
    ]
    reasons["total"] = round(sum(c.cost(take, policy) for c, take in plan), 4)
    return Decision("routed", shipments, (), reasons)


def prepare(
    request: RoutingRequest,
    stock: StockView,
    locations: Mapping[str, Location],
    loads: Mapping[str, LoadView],
    policy: RoutingPolicy,
    *,
    name: str,
    check_load: bool = True,
    now: datetime | None = None,
) -> Prepared | Decision:
    """Validate the order, serve click & collect from the pickup shelf when it can, else filter.

    Returns a final `Decision` (unroutable order, or click & collect from the pickup store's own
    shelf) or the `Prepared` candidates for the strategy to choose among.
    """
    lines = merge_lines(request.lines)
    express = request.service == EXPRESS
    reasons: dict[str, object] = {
        "policy": name,
        "delivery_mode": request.delivery_mode,
        "service": request.service,
    }
    if request.excluded:
        reasons["rejected_before"] = sorted(request.excluded)
    if not lines:
        return unroutable(lines, reasons, "empty_order")

    # Stock of the order's skus per location (only positive availability matters).
    held: dict[str, dict[str, int]] = {}
    for sku, _qty in lines:
        for location_id, units in stock.stock_of(sku).items():
            if units > 0:
                per = held.get(location_id)
                if per is None:
                    held[location_id] = {sku: units}
                else:
                    per[sku] = units

    dest_lat, dest_lon = request.customer_lat, request.customer_lon
    pickup_id: str | None = None
    if request.delivery_mode == CLICK_COLLECT:
        pickup_id = request.pickup_location_id
        pickup = locations.get(pickup_id) if pickup_id else None
        reasons["pickup_location_id"] = pickup_id
        if pickup is None:
            return unroutable(lines, reasons, "unknown_pickup_store")
        if not pickup.active:
            return unroutable(lines, reasons, "pickup_store_inactive")
        if not pickup.click_collect:
            return unroutable(lines, reasons, "pickup_store_not_click_collect")
        assert pickup_id is not None
        shelf = held.get(pickup_id, {})
        load = loads.get(pickup_id, _NO_LOAD)
        why_not: str | None
        if pickup_id in request.excluded:
            why_not = "rejected_before"
        elif is_paused(pickup, now):
            why_not = "paused"
        elif pickup.capacity_per_hour <= 0 or pickup.max_backlog <= 0:
            why_not = "no_capacity"
        elif check_load and load.open_orders >= pickup.max_backlog:
            why_not = "saturated"
        elif any(shelf.get(sku, 0) < qty for sku, qty in lines):
            why_not = "missing_stock"
        else:
            why_not = None
        promised: tuple[Promise | None, float] = (None, 0.0)
        if why_not is None:
            try:
                promised = promise_of(pickup, CLICK_COLLECT, 0.0, load, request, policy, now, None)
            except NeverPrepares:
                why_not = "never_prepares"
        if why_not is None:
            own = Candidate(
                pickup_id, pickup, CLICK_COLLECT, 0.0, shelf, lines, load, policy, False, *promised
            )
            reasons["rule"] = "own_shelf"
            return routed([(own, lines)], policy, reasons)
        reasons["own_shelf"] = why_not
        dest_lat, dest_lon = pickup.lat, pickup.lon
    elif request.delivery_mode != HOME:
        return unroutable(lines, reasons, "unknown_delivery_mode")

    excluded: dict[str, list[str]] = {}
    candidates: list[Candidate] = []
    for location_id, avail in held.items():
        loc = locations.get(location_id)
        if location_id == pickup_id:
            why: str | None = "pickup_store"
        else:
            why = ineligibility(
                location_id,
                loc,
                request,
                loads.get(location_id, _NO_LOAD),
                check_load=check_load,
                now=now,
            )
        if why is not None:
            excluded.setdefault(why, []).append(location_id)
            continue
        assert loc is not None
        mode = TRANSFER if pickup_id is not None else MODE_BY_KIND[loc.kind]
        km = great_circle_km(dest_lat, dest_lon, loc.lat, loc.lon)
        load = loads.get(location_id, _NO_LOAD)
        pickup_loc = locations.get(pickup_id) if pickup_id is not None else None
        try:
            promised = promise_of(loc, mode, km, load, request, policy, now, pickup_loc)
        except NeverPrepares:
            excluded.setdefault("never_prepares", []).append(location_id)
            continue
        candidates.append(
            Candidate(location_id, loc, mode, km, avail, lines, load, policy, express, *promised)
        )
    for ids in excluded.values():
        ids.sort()
    no_stock = sum(1 for location_id in locations if location_id not in held)
    reasons["ineligible"] = excluded
    reasons["no_stock_count"] = no_stock
    return Prepared(lines, sum(q for _, q in lines), candidates, excluded, no_stock, reasons)


def promise_of(
    loc: Location,
    mode: str,
    km: float,
    load: LoadView,
    request: RoutingRequest,
    policy: RoutingPolicy,
    now: datetime | None,
    pickup: Location | None,
) -> tuple[Promise | None, float]:
    """The candidate's promise and its days from `now` (None, 0 without a `now`)."""
    if now is None:
        return None, 0.0
    return routing_promise(
        loc,
        now=now,
        queue_ahead=load.open_orders,
        service=request.service,
        mode=mode,
        distance_km=km,
        carriers=policy.carriers,
        pickup=pickup,
    )


def shortfall(lines: Lines, candidates: Iterable[Candidate]) -> dict[str, int]:
    """Units per SKU that all candidates together cannot supply."""
    total: dict[str, int] = {}
    for c in candidates:
        for sku, a in c.avail.items():
            total[sku] = total.get(sku, 0) + a
    return {sku: qty - total.get(sku, 0) for sku, qty in lines if total.get(sku, 0) < qty}


# ---- the policy ------------------------------------------------------------------------------

Plan = list[tuple[Candidate, Lines]]


def _plan_cost(plan: Plan, policy: RoutingPolicy) -> float:
    return sum(c.cost(take, policy) for c, take in plan)


def _plan_key(plan: Plan, policy: RoutingPolicy) -> tuple[float, int, tuple[str, ...]]:
    return (
        round(_plan_cost(plan, policy), 9),
        len(plan),
        tuple(sorted(c.location_id for c, _ in plan)),
    )


def _fill(order: Sequence[Candidate], lines: Lines) -> Plan | None:
    """Take what each candidate can, in this order, until covered (None if not covered)."""
    remaining = dict(lines)
    left = sum(remaining.values())
    plan: Plan = []
    for c in order:
        take = c.take_of(remaining.items())
        if not take:
            continue
        for sku, qty in take:
            remaining[sku] -= qty
            left -= qty
        plan.append((c, take))
        if left == 0:
            return plan
    return None


def _greedy(
    pool: Sequence[Candidate], lines: Lines, policy: RoutingPolicy, by_coverage: bool
) -> Plan | None:
    """Greedy set cover: cost per newly covered unit, or most units covered first."""
    remaining = dict(lines)
    left = sum(remaining.values())
    used: set[str] = set()
    plan: Plan = []
    while left > 0 and len(plan) < policy.max_shipments:
        best: tuple[Any, ...] | None = None
        best_pick: tuple[Candidate, Lines] | None = None
        for c in pool:
            if c.location_id in used:
                continue
            take = c.take_of(remaining.items())
            if not take:
                continue
            units = sum(q for _, q in take)
            per_unit = c.cost(take, policy) / units
            key = (
                (-units, per_unit, c.location_id)
                if by_coverage
                else (per_unit, -units, c.location_id)
            )
            if best is None or key < best:
                best, best_pick = key, (c, take)
        if best_pick is None:
            return None
        c, take = best_pick
        used.add(c.location_id)
        plan.append(best_pick)
        for sku, qty in take:
            remaining[sku] -= qty
            left -= qty
    return plan if left == 0 else None


def _covers(combo: Sequence[Candidate], lines: Lines) -> bool:
    for sku, qty in lines:
        total = 0
        for c in combo:
            total += c.avail.get(sku, 0)
        if total < qty:
            return False
    return True


def _best_pair(pool: Sequence[Candidate], lines: Lines, policy: RoutingPolicy) -> Plan | None:
    best: Plan | None = None
    best_key: tuple[float, int, tuple[str, ...]] | None = None
    for a, b in itertools.combinations(pool, 2):
        if not _covers((a, b), lines):
            continue
        for order in ((a, b), (b, a)):
            plan = _fill(order, lines)
            if plan is None:
                continue
            key = _plan_key(plan, policy)
            if best_key is None or key < best_key:
                best, best_key = plan, key
    return best


def _best_combination(
    pool: Sequence[Candidate], lines: Lines, policy: RoutingPolicy
) -> Plan | None:
    """Exact search over combinations of 3..max_shipments (bounded), cheapest first fills."""
    best: Plan | None = None
    best_key: tuple[float, int, tuple[str, ...]] | None = None
    examined = 0
    for k in range(3, min(policy.max_shipments, len(pool)) + 1):
        if math.comb(len(pool), k) + examined > _MAX_COMBINATIONS:
            break
        for combo in itertools.combinations(pool, k):
            examined += 1
            if not _covers(combo, lines):
                continue
            plan = _fill(sorted(combo, key=lambda c: (c.fixed, c.location_id)), lines)
            if plan is None:
                continue
            key = _plan_key(plan, policy)
            if best_key is None or key < best_key:
                best, best_key = plan, key
        if best is not None:
            break  # fewest shipments first: a larger k is only tried when k found nothing
    return best


def _split_pool(
    candidates: Sequence[Candidate], lines: Lines, policy: RoutingPolicy
) -> list[Candidate]:
    """The candidate_limit best by cost per coverable unit, plus the best holder of each SKU."""
    ranked: list[tuple[float, str, Candidate]] = []
    for c in candidates:
        take = c.take_of(lines)
        units = sum(q for _, q in take)
        if units:
            ranked.append((c.cost(take, policy) / units, c.location_id, c))
    ranked.sort(key=lambda r: (r[0], r[1]))
    pool = [r[2] for r in ranked[: policy.candidate_limit]]
    chosen = {c.location_id for c in pool}
    for sku, _qty in lines:
        if any(sku in c.avail for c in pool):
            continue
        for _, location_id, c in ranked:
            if sku in c.avail and location_id not in chosen:
                pool.append(c)
                chosen.add(location_id)
                break
    return pool


def _candidate_reasons(
    singles: Sequence[tuple[float, Candidate]],
    partials: Sequence[Candidate],
    units: int,
    limit: int,
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for total, c in singles[:limit]:
        row: dict[str, object] = {
            "location_id": c.location_id,
            "mode": c.mode,
            "distance_km": round(c.distance_km, 3),
            "total": round(total, 4),
        }
        if c.promise is not None:
            row["promised"] = c.promise.customer_date.isoformat()
        out.append(row)
    room = limit - len(out)
    if room > 0:
        for c in sorted(partials, key=lambda c: (-c.units, c.location_id))[:room]:
            out.append(
                {
                    "location_id": c.location_id,
                    "mode": c.mode,
                    "distance_km": round(c.distance_km, 3),
                    "why": f"holds {c.units} of {units} units",
                }
            )
    return out


def decide(
    request: RoutingRequest,
    stock: StockView,
    locations: Mapping[str, Location],
    loads: Mapping[str, LoadView],
    policy: RoutingPolicy,
    *,
    now: datetime | None = None,
) -> Decision:
    """Route one order (see the module docstring for the rules and the score).

    `now` is the decision's time: a location paused until later is ineligible (``paused``)."""
    prep = prepare(request, stock, locations, loads, policy, name="weighted_score", now=now)
    if isinstance(prep, Decision):
        return prep
    lines, reasons, cands = prep.lines, prep.reasons, prep.candidates

    singles: list[tuple[float, Candidate]] = []
    partials: list[Candidate] = []
    for c in cands:
        if c.covers_all:
            singles.append((c.cost(lines, policy), c))
        else:
            partials.append(c)
    singles.sort(key=lambda s: (s[0], s[1].location_id))
    reasons["candidates"] = _candidate_reasons(singles, partials, prep.units, policy.reasons_limit)
    reasons["candidates_count"] = len(cands)

    if singles:
        reasons["rule"] = "single_location"
        return routed([(singles[0][1], lines)], policy, reasons)

    missing = shortfall(lines, cands)
    if missing:
        return unroutable(lines, reasons, "insufficient_stock", short=missing)
    if policy.max_shipments < 2:
        return unroutable(
            lines,
            reasons,
            "needs_split",
            max_shipments=policy.max_shipments,
            explanation="no single eligible location holds every line",
        )

    pool = _split_pool(cands, lines, policy)
    plans: list[Plan] = []
    for plan in (
        _best_pair(pool, lines, policy),
        _greedy(pool, lines, policy, by_coverage=False),
        _greedy(pool, lines, policy, by_coverage=True),
    ):
        if plan is not None and len(plan) <= policy.max_shipments:
            plans.append(plan)
    if not plans and policy.max_shipments >= 3:
        plan = _best_combination(pool, lines, policy)
        if plan is not None:
            plans.append(plan)
    if not plans:
        return unroutable(
            lines,
            reasons,
            "too_many_shipments",
            max_shipments=policy.max_shipments,
            explanation="the eligible stock cannot cover the order within max_shipments",
        )
    best = min(plans, key=lambda p: _plan_key(p, policy))
    best_single = min(cands, key=lambda c: (-c.units, c.location_id))
    reasons["rule"] = "split"
    reasons["split"] = {
        "why": "no single eligible location holds every line",
        "best_single_coverage": {
            "location_id": best_single.location_id,
            "units": best_single.units,
            "of": prep.units,
        },
        "shipments": len(best),
        "max_shipments": policy.max_shipments,
        "pool": len(pool),
    }
    return routed(best, policy, reasons)
