"""Store and warehouse staff: what happens to a routed shipment on the shop floor.

The routing engine is only as good as its behaviour when locations push back, so this model
pushes back the way stores do (domain notes): a claim within minutes, a few percent of
rejections (some naming the lines the shelf did not have), short picks, the odd shipment nobody
ever claims, and above all a finite pace. Each location starts at most `capacity_per_hour`
shipments per simulated hour (one start every 3600/capacity seconds, first come first served),
so a peak builds a backlog that drains after it, exactly the effect the dashboard has to show.

Staff work in shifts: the location's preparation hours (its calendar, domain/calendar.py; none
means around the clock). Claiming, picking, packing and labelling only happen then, so web
orders that keep arriving at night wait for the morning shift and drain when it starts; the
claim delay, the pace and the step durations are counted in preparation hours.

Pure and deterministic: no Kafka, no clock. The runner feeds it routed-orders and web-orders,
asks `due(now)` for the fulfilment events and returns to publish, and forwards the units that
left each location (`drain_consumption`) to the workload's replenishment. Every random choice
about a shipment comes from an RNG seeded by (seed, shipment_id), so a shipment's fate does not
depend on the order in which Kafka delivered other messages.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import uuid
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from domain.calendar import (
    Calendar,
    NeverPrepares,
    add_preparation_seconds,
    calendar_of,
    next_preparation_start,
)
from sim.network import nearest
from sim.workload import Emission, event_namespace, iso
from streams.records import Location
from streams.topics import TOPICS

__all__ = ["Staff", "StaffConfig"]

_REJECT_REASONS = ("no_staff_available", "cannot_ship_today", "item_damaged", "store_busy")


@dataclass(frozen=True)
class StaffConfig:
    """Behaviour knobs; ranges are uniform (lo, hi) in seconds unless named otherwise."""

    accept_delay_store_s: tuple[float, float] = (30.0, 480.0)
    pace: float = 1.0
    """The share of its declared `capacity_per_hour` a location's staff achieve: below 1 when
    walk-in customers come first at a peak, so the engine's promises (made at the declared
    capacity) slip: the stores that fall behind."""
    accept_delay_hub_s: tuple[float, float] = (5.0, 60.0)
    """Warehouses, suppliers and marketplaces claim through systems, not people."""
    reject_rate_store: float = 0.03
    reject_rate_hub: float = 0.005
    short_reject_share: float = 0.4
    """Share of rejections that list the missing lines (a stock discrepancy)."""
    short_pick_rate: float = 0.03
    timeout_rate: float = 0.01
    """Shipments never claimed: the engine's acceptance timeout must re-route them."""
    pick_store_s: tuple[float, float] = (240.0, 900.0)
    pick_hub_s: tuple[float, float] = (900.0, 2700.0)
    pack_s: tuple[float, float] = (60.0, 420.0)
    label_s: tuple[float, float] = (20.0, 180.0)
    carrier_wait_s: tuple[float, float] = (300.0, 5400.0)
    transit_s: tuple[float, float] = (2 * 3600.0, 8 * 3600.0)
    """Transfer to store: from shipped at the origin to ready at the pickup store."""
    collect_median_h: float = 3.0
    collect_max_h: float = 48.0
    return_rate: float = 0.10
    resellable_rate: float = 0.80
    return_in_store_share: float = 0.5
    """Home deliveries returned in a store near the customer rather than by post."""
    return_median_h: float = 6.0
    """Compressed from days to hours so a demo of a few hours shows returns."""
    return_max_h: float = 72.0
    backlog_reject: bool = True
    """Reject outright when the accepted-but-unpicked queue is at max_backlog."""
    max_remembered_orders: int = 500_000
    change_hold_s: float = 1800.0
    """After the customer cancels some lines, the order's shipments that have not left wait
    (as a store app would show "order changing") until the engine re-publishes the order
    with the cancellation applied (routed-orders `reasons.lines_cancelled`), at most this
    long: otherwise a pick or a shipment of units the engine just cancelled crosses the
    cancellation and is dead-lettered."""
    change_poll_s: float = 60.0


def _at_work(cal: Calendar, t: float, seconds: float = 0.0) -> float:
    """When `seconds` of work started at `t` ends, counted in the shift hours of `cal` (the
    next shift's start for 0 s); a calendar without any shift left: plain time."""
    if cal.is_always_open:
        return t + seconds
    when = datetime.fromtimestamp(t, UTC)
    try:
        if seconds <= 0:
            return next_preparation_start(cal, when).timestamp()
        return add_preparation_seconds(cal, when, seconds).timestamp()
    except NeverPrepares:
        return t + seconds


def _lines(raw: object) -> list[tuple[str, int]]:
    """Shipment lines from an untrusted message; anything malformed makes the shipment void."""
    if not isinstance(raw, list):
        return []
    out = []
    for ln in raw:
        if not isinstance(ln, Mapping):
            return []
        sku, qty = ln.get("sku"), ln.get("qty")
        if not isinstance(sku, str) or not isinstance(qty, int) or isinstance(qty, bool):
            return []
        if qty > 0:
            out.append((sku, qty))
    return out


@dataclass(slots=True)
class _Shipment:
    order_id: str
    shipment_id: str
    location_id: str
    mode: str
    lines: list[tuple[str, int]]
    rng: random.Random
    picked: list[tuple[str, int]] = field(default_factory=list)
    queued: bool = False
    """Accepted and counted in the location's backlog (not yet picked)."""
    left: bool = False
    """The goods left the location (shipped), so a cancellation no longer stops it."""
    done: bool = False


@dataclass(slots=True)
class _Order:
    lat: float | None
    lon: float | None
    pickup: str | None
    cancelled: bool = False
    complete: bool = False  # ship_complete (home): a short-picked shipment is given back whole
    gone: Counter[str] = field(default_factory=Counter)
    """Units per SKU of the order's shipments that left their location (shipped, collected)."""
    open: set[str] = field(default_factory=set)
    """Its shipments this model works on whose goods have not left yet."""
    ordered: Counter[str] = field(default_factory=Counter)
    cancelled_units: Counter[str] = field(default_factory=Counter)
    hold_until: float = 0.0
    """Simulated time until which its shipments wait for a line cancellation to be applied."""


class Staff:
    """The people of every location, as a discrete-event model over simulated time."""

    def __init__(
        self,
        network: Sequence[Location],
        seed: int,
        *,
        config: StaffConfig | None = None,
        run_id: str = "",
    ) -> None:
        self.cfg = config or StaffConfig()
        self.seed = seed
        self.locations: dict[str, Location] = {loc.location_id: loc for loc in network}
        self._shifts: dict[str, Calendar] = {k: calendar_of(v) for k, v in self.locations.items()}
        self._stores = [loc for loc in network if loc.kind == "store" and loc.active]
        self._warehouses = [loc for loc in network if loc.kind == "warehouse" and loc.active]
        self._ids = event_namespace(seed, run_id, "staff")
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = itertools.count()
        self._shipments: dict[str, _Shipment] = {}
        self._seen: set[str] = set()
        self._orders: OrderedDict[str, _Order] = OrderedDict()
        self._next_start: dict[str, float] = {}
        self._backlog: Counter[str] = Counter()
        self._consumed: list[tuple[str, str, int]] = []
        self.stats: Counter[str] = Counter()

    # ---- inputs ------------------------------------------------------------------------------

    def on_order(self, msg: Mapping[str, Any]) -> None:
        """Remember where the customer is (for returns) and stop work on cancelled orders."""
        order_id = msg.get("order_id")
        if not isinstance(order_id, str):
            return
        if msg.get("type") == "order_cancelled":
            o = self._orders.get(order_id)
            if msg.get("lines"):
                if o is not None:
                    self._cancel_lines(o, msg)
                return
            if o is None:
                o = self._remember(order_id, _Order(None, None, None))
            o.cancelled = True
            return
        customer = msg.get("customer") or {}
        delivery = msg.get("delivery") or {}
        complete = delivery.get("split") == "ship_complete" and delivery.get("mode") != (
            "click_collect"
        )
        self._remember(
            order_id,
            _Order(
                customer.get("lat"),
                customer.get("lon"),
                delivery.get("pickup_location_id"),
                complete=complete,
                ordered=Counter(dict(_lines(msg.get("lines")))),
            ),
        )

    def _cancel_lines(self, o: _Order, msg: Mapping[str, Any]) -> None:
        """Some lines cancelled: every unit cancelled is a whole cancellation (the engine
        publishes no routed order then); otherwise the order's work waits for the engine's
        re-published order (`change_hold_s`)."""
        for sku, qty in _lines(msg.get("lines")):
            o.cancelled_units[sku] += qty
        if o.ordered and all(o.cancelled_units[k] >= q for k, q in o.ordered.items()):
            o.cancelled = True
            return
        try:
            t = datetime.fromisoformat(str(msg.get("occurred_at"))).timestamp()
        except ValueError:
            return
        o.hold_until = max(o.hold_until, t + self.cfg.change_hold_s)

    def on_routed(self, msg: Mapping[str, Any], now: datetime) -> int:
        """Take the shipments of a routed-orders message; returns how many were new.

        A re-route re-publishes the order with a higher attempt and possibly shipments seen
        before: each shipment_id is scheduled once, whatever the attempt.
        """
        order_id = msg.get("order_id")
        if not isinstance(order_id, str):
            return 0
        order = self._orders.get(order_id)
        if order is not None and order.cancelled:
            return 0
        t = now.timestamp()
        if order is not None:
            self._follow(order, msg)
            reasons = msg.get("reasons")
            if isinstance(reasons, Mapping) and reasons.get("lines_cancelled"):
                order.hold_until = 0.0  # the cancellation is applied: work goes on
        new = 0
        for s in msg.get("shipments") or ():
            if not isinstance(s, Mapping):
                continue
            sid, loc_id = s.get("shipment_id"), s.get("location_id")
            if not isinstance(sid, str) or sid in self._seen or loc_id not in self.locations:
                continue
            lines = _lines(s.get("lines"))
            if not lines:
                continue
            self._seen.add(sid)
            new += 1
            sh = _Shipment(
                order_id=order_id,
                shipment_id=sid,
                location_id=loc_id,
                mode=str(s.get("mode", "ship_from_store")),
                lines=lines,
                rng=random.Random(f"stockroute-staff:{self.seed}:{sid}"),
            )
            self.stats["shipments"] += 1
            if sh.rng.random() < self.cfg.timeout_rate:
                self.stats["timed_out"] += 1  # never claimed: the engine's timeout re-routes it
                continue
            self._shipments[sid] = sh
            if order is not None:
                order.open.add(sid)
            lo, hi = (
                self.cfg.accept_delay_store_s
                if self.locations[loc_id].kind == "store"
                else self.cfg.accept_delay_hub_s
            )
            self._at(_at_work(self._shifts[loc_id], t, sh.rng.uniform(lo, hi)), sid, "claim")
        return new

    def _follow(self, order: _Order, msg: Mapping[str, Any]) -> None:
        """A routed-orders record lists every open shipment of the order with what it holds
        now: a shipment this model works on that a line cancellation shrank is prepared as it
        is now (not as first routed; once picked, the cancelled units go back on the shelf),
        and one the engine no longer lists (emptied by a line cancellation, timed out) is not
        worked on further."""
        listed: dict[str, list[tuple[str, int]]] = {}
        for s in msg.get("shipments") or ():
            if isinstance(s, Mapping) and isinstance(s.get("shipment_id"), str):
                listed[s["shipment_id"]] = _lines(s.get("lines"))
        for sid in sorted(order.open):
            sh = self._shipments.get(sid)
            if sh is None or sh.left:
                continue
            lines = listed.get(sid)
            if not lines:
                self.stats["closed_by_engine"] += 1
                self._close(sh)
                continue
            sh.lines = lines
            if sh.picked:
                now = dict(lines)
                sh.picked = [(k, min(q, now.get(k, 0))) for k, q in sh.picked if now.get(k)]

    def cancellable(self, msg: Mapping[str, Any]) -> bool:
        """Whether the customer can still ask this (a customer service desk checks first; the
        engine would dead-letter the request): a cancellation of some lines is not sent for a
        SKU of which a shipment already left, nor a whole cancellation once any shipment left
        (the rest is cancelled line by line; all of it: "it can only be returned"). Anything
        else: True."""
        if msg.get("type") != "order_cancelled":
            return True
        o = self._orders.get(str(msg.get("order_id")))
        if o is None:
            return True
        if not msg.get("lines"):
            # once some units left, the rest is cancelled line by line: a whole cancellation
            # could cross the shipped event on its way and cancel what already left
            return not o.gone
        return not any(o.gone[str(ln.get("sku"))] for ln in msg["lines"] if isinstance(ln, Mapping))

    # ---- outputs -----------------------------------------------------------------------------

    def due(self, now: datetime) -> list[Emission]:
        """Every event whose simulated time is <= now, in time order (occurred_at = its time)."""
        limit = now.timestamp()
        out: list[Emission] = []
        heap = self._heap
        while heap and heap[0][0] <= limit:
            t, _, sid, step = heapq.heappop(heap)
            self._step(t, sid, step, out)
        return out

    def drain_consumption(self) -> list[tuple[str, str, int]]:
        """(location_id, sku, qty) that left locations since the last call, for replenishment."""
        out, self._consumed = self._consumed, []
        return out

    def next_due(self) -> datetime | None:
        """When the next step happens, so a benchmark can jump the clock straight to it."""
        return datetime.fromtimestamp(self._heap[0][0], UTC) if self._heap else None

    @property
    def open_shipments(self) -> int:
        """Shipments claimed or awaiting a claim that have not reached their last step."""
        return len(self._shipments)

    def backlog(self, location_id: str) -> int:
        """Shipments accepted at a location and not picked yet (the queue the pace drains)."""
        return self._backlog[location_id]

    # ---- the model ---------------------------------------------------------------------------

    def _remember(self, order_id: str, o: _Order) -> _Order:
        self._orders[order_id] = o
        self._orders.move_to_end(order_id)
        while len(self._orders) > self.cfg.max_remembered_orders:
            self._orders.popitem(last=False)
        return o

    def _at(self, t: float, sid: str, step: str) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), sid, step))

    def _emit(
        self,
        out: list[Emission],
        t: float,
        sh: _Shipment,
        kind: str,
        *,
        location_id: str | None = None,
        reason: str | None = None,
        lines: list[tuple[str, int]] | None = None,
    ) -> None:
        value: dict[str, Any] = {
            "event_id": str(uuid.uuid5(self._ids, f"{sh.shipment_id}:{kind}")),
            "occurred_at": iso(t),
            "order_id": sh.order_id,
            "shipment_id": sh.shipment_id,
            "location_id": location_id or sh.location_id,
            "type": kind,
        }
        if reason is not None:
            value["reason"] = reason
        if lines is not None:
            value["lines"] = [{"sku": s, "qty": q} for s, q in lines]
        out.append((TOPICS.fulfilment_events, sh.order_id, value))
        self.stats[kind] += 1

    def _close(self, sh: _Shipment) -> None:
        if sh.queued:
            self._backlog[sh.location_id] -= 1
            sh.queued = False
        sh.done = True
        self._shipments.pop(sh.shipment_id, None)
        order = self._orders.get(sh.order_id)
        if order is not None and not sh.left:
            order.open.discard(sh.shipment_id)  # given back, rejected, cancelled: not open

    def _step(self, t: float, sid: str, step: str, out: list[Emission]) -> None:
        sh = self._shipments.get(sid)
        if sh is None:
            return
        if step == "return":
            self._return(t, sh, out)
            return
        order = self._orders.get(sh.order_id)
        if order is not None and order.cancelled and not sh.left:
            self.stats["cancelled_in_store"] += 1
            self._close(sh)
            return
        if order is not None and t < order.hold_until and not sh.left:
            self.stats["held_for_change"] += 1
            self._at(min(order.hold_until, t + self.cfg.change_poll_s), sid, step)
            return
        rng, cfg = sh.rng, self.cfg
        loc = self.locations[sh.location_id]
        shift = self._shifts[sh.location_id]
        pickup = sh.mode in ("click_collect",)
        if step == "claim":
            self._claim(t, sh, loc, out)
        elif step == "picked":
            self._backlog[sh.location_id] -= 1
            sh.queued = False
            sh.picked = list(sh.lines)
            short = None
            units = sum(q for _, q in sh.lines)
            if units > 1 and rng.random() < cfg.short_pick_rate:
                k = rng.randrange(len(sh.lines))
                sku, q = sh.lines[k]
                missing = rng.randint(1, q if units - q > 0 else q - 1)
                sh.picked[k] = (sku, q - missing)
                sh.picked = [(s, n) for s, n in sh.picked if n > 0]
                short = sh.picked
                self.stats["short_picks"] += 1
            self._emit(out, t, sh, "picked", lines=short)
            if short is not None and order is not None and order.complete:
                # the engine gives a ship_complete shipment back whole and routes the order
                # again (a new shipment, taken from routed-orders): nothing more to do here
                self._close(sh)
                return
            self._at(_at_work(shift, t, rng.uniform(*cfg.pack_s)), sid, "packed")
        elif step == "packed":
            self._emit(out, t, sh, "packed")
            if pickup:
                self._at(_at_work(shift, t, rng.uniform(60.0, 300.0)), sid, "ready_for_pickup")
            else:
                self._at(_at_work(shift, t, rng.uniform(*cfg.label_s)), sid, "label_printed")
        elif step == "label_printed":
            self._emit(out, t, sh, "label_printed")
            self._at(t + rng.uniform(*cfg.carrier_wait_s), sid, "shipped")
        elif step == "shipped":
            self._emit(out, t, sh, "shipped")
            sh.left = True
            self._gone(sh, order)
            self._consume(sh.location_id, sh.picked)
            if sh.mode == "transfer_to_store":
                if order is not None and order.pickup in self.locations:
                    self._at(t + rng.uniform(*cfg.transit_s), sid, "ready_for_pickup")
                else:
                    self._close(sh)  # destination unknown: nothing more this model can say
            else:
                self._finish(t, sh)
        elif step == "ready_for_pickup":
            where = self._pickup_location(sh, order)
            self._emit(out, t, sh, "ready_for_pickup", location_id=where)
            delay_h = min(cfg.collect_max_h, rng.lognormvariate(math.log(cfg.collect_median_h), 1))
            self._at(t + max(0.25, delay_h) * 3600.0, sid, "collected")
        elif step == "collected":
            where = self._pickup_location(sh, order)
            self._emit(out, t, sh, "collected", location_id=where)
            if sh.mode == "click_collect":
                self._consume(sh.location_id, sh.picked)
            sh.left = True
            self._gone(sh, order)
            self._finish(t, sh)

    @staticmethod
    def _gone(sh: _Shipment, order: _Order | None) -> None:
        """The shipment's units left (a transfer counts when shipped and again when collected:
        only whether any left matters)."""
        if order is not None:
            order.open.discard(sh.shipment_id)
            for sku, qty in sh.lines:
                order.gone[sku] += qty

    def _claim(self, t: float, sh: _Shipment, loc: Location, out: list[Emission]) -> None:
        rng, cfg = sh.rng, self.cfg
        rate = cfg.reject_rate_store if loc.kind == "store" else cfg.reject_rate_hub
        full = cfg.backlog_reject and 0 < loc.max_backlog <= self._backlog[loc.location_id]
        if full or rng.random() < rate:
            if full:
                self._emit(out, t, sh, "rejected", reason="backlog_full")
            elif rng.random() < cfg.short_reject_share:
                n = rng.randint(1, len(sh.lines))
                missing = rng.sample(sh.lines, n)
                self._emit(out, t, sh, "rejected", reason="out_of_stock", lines=missing)
            else:
                self._emit(out, t, sh, "rejected", reason=rng.choice(_REJECT_REASONS))
            self._close(sh)
            return
        self._emit(out, t, sh, "accepted")
        sh.queued = True
        self._backlog[loc.location_id] += 1
        # The pace: one start every 3600/capacity s of shift time, first come first served;
        # 0 = no limit.
        shift = self._shifts[loc.location_id]
        cap = loc.capacity_per_hour * cfg.pace
        start = _at_work(shift, max(t, self._next_start.get(loc.location_id, -math.inf)))
        if cap > 0:
            self._next_start[loc.location_id] = _at_work(shift, start, 3600.0 / cap)
        lo, hi = cfg.pick_store_s if loc.kind == "store" else cfg.pick_hub_s
        # Pick duration is the location's own constant, so picks keep the start order and the
        # picked events per hour never exceed the capacity.
        pick = random.Random(f"stockroute-pace:{self.seed}:{loc.location_id}").uniform(lo, hi)
        self._at(_at_work(shift, start, pick), sh.shipment_id, "picked")

    def _pickup_location(self, sh: _Shipment, order: _Order | None) -> str:
        if sh.mode == "transfer_to_store" and order is not None and order.pickup:
            return order.pickup
        return sh.location_id

    def _consume(self, location_id: str, lines: list[tuple[str, int]]) -> None:
        for sku, q in lines:
            self._consumed.append((location_id, sku, q))

    def _finish(self, t: float, sh: _Shipment) -> None:
        """Delivered or collected: maybe a return later, else the shipment is done."""
        rng, cfg = sh.rng, self.cfg
        if sh.picked and rng.random() < cfg.return_rate:
            delay_h = min(cfg.return_max_h, rng.lognormvariate(math.log(cfg.return_median_h), 1))
            self._at(t + max(0.5, delay_h) * 3600.0, sh.shipment_id, "return")
            return
        self._close(sh)

    def _return(self, t: float, sh: _Shipment, out: list[Emission]) -> None:
        rng, cfg = sh.rng, self.cfg
        order = self._orders.get(sh.order_id)
        where = self._return_location(sh, order)
        n = rng.randint(1, len(sh.picked))
        lines = [
            {"sku": sku, "qty": rng.randint(1, q), "resellable": rng.random() < cfg.resellable_rate}
            for sku, q in rng.sample(sh.picked, n)
        ]
        value = {
            "event_id": str(uuid.uuid5(self._ids, f"{sh.shipment_id}:return")),
            "occurred_at": iso(t),
            "order_id": sh.order_id,
            "location_id": where,
            "lines": lines,
        }
        out.append((TOPICS.returns, sh.order_id, value))
        self.stats["returns"] += 1
        self._close(sh)

    def _return_location(self, sh: _Shipment, order: _Order | None) -> str:
        """Where the customer brings it back: the pickup store, a store nearby, or by post."""
        rng = sh.rng
        if sh.mode in ("click_collect", "transfer_to_store"):
            home = self._pickup_location(sh, order)
            if rng.random() < 0.7 or home not in self.locations:
                return home
            ref = self.locations[home]
            near = [s for s in nearest(ref.lat, ref.lon, self._stores, 3) if s.location_id != home]
            return near[0].location_id if near else home
        if order is not None and order.lat is not None and order.lon is not None:
            if self._stores and rng.random() < self.cfg.return_in_store_share:
                near = nearest(order.lat, order.lon, self._stores, 3)
                return near[rng.randrange(len(near))].location_id
            if self._warehouses:
                return nearest(order.lat, order.lon, self._warehouses, 1)[0].location_id
        if self._warehouses:
            return self._warehouses[0].location_id
        return sh.location_id
