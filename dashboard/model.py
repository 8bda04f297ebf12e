"""Data shaping for the planner dashboard: fold output-topic messages, answer planner questions.

Why this module exists apart from the page: the Streamlit code should only lay things out.
Everything a planner reads (what is late, which store is drowning, what happened to an order)
is computed here by plain functions over a `DashboardState`, so it can be unit-tested without
a browser, a broker or Streamlit. No Kafka, Faust or Streamlit import belongs here.

The state is filled by `fold()` from the output topics exactly as published (the JSON shapes
of streams/records.py): `locations`, `store-load`, `stock-availability`, `routed-orders`,
`order-events` and `dead-letters`. It is bounded (recent decisions, an LRU of orders, a capped
backlog series, the latest dead letters) so a dashboard left open through a peak does not grow
without limit, and it carries its own lock because the Kafka reader folds on a background
thread while the page reads.

Times: every timestamp is kept as float epoch seconds internally (cheap to compare) and turned
into timezone-aware pandas timestamps only in the DataFrames handed to the page. "Now" is the
network clock (`DashboardState.now`): the latest business time the topics carried (decisions,
order events, store-load and availability stamps), never the dashboard host's wall clock, so
lateness and waiting times read the same under a simulator at 60x as on the real day.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

import pandas as pd
from pydantic import ValidationError

from domain.calendar import Calendar, calendar_of, open_at, preparing_at
from streams.records import Location, OrderStatus
from streams.topics import TOPICS

# ---- vocabulary ------------------------------------------------------------------------------

LOCATION_KINDS: tuple[str, ...] = ("warehouse", "store", "supplier", "marketplace")
"""Backlog columns appear in this order (then any kind the contract adds later)."""

OPEN_SHIPMENT_STATUSES = frozenset({"routed", "accepted", "picked", "packed", "label_printed"})
"""A shipment in one of these is still waiting for its location to get it out of the door.

An allow-list on purpose: a status this dashboard does not know (say a future `in_transit`)
is not counted as waiting, so an extension of the contract cannot inflate SLA breaches."""

OPEN_ORDER_STATUSES = frozenset({"routed", "in_preparation", "partially_shipped"})
"""Order statuses that still owe the customer a dispatch (used for the late count)."""

DISPATCHED_ORDER_STATUSES = frozenset(
    {"shipped", "ready_for_pickup", "collected", "partially_returned", "returned"}
)
"""Reaching one of these means the network handed the order over (to a carrier or a pickup
shelf): the clock that makes an order late stops there."""

ORDER_STATUS_ORDER: tuple[str, ...] = get_args(OrderStatus)


def _handle(name: str) -> str:
    """Resolve a topic handle through topics.yaml so a renamed handle fails loudly at import."""
    return str(getattr(TOPICS, name).handle)


H_LOCATIONS = _handle("locations")
H_STORE_LOAD = _handle("store_load")
H_AVAILABILITY = _handle("stock_availability")
H_ROUTED = _handle("routed_orders")
H_ORDER_EVENTS = _handle("order_events")
H_DEAD_LETTERS = _handle("dead_letters")
H_BACKORDERS = _handle("backorders")
DASHBOARD_HANDLES: tuple[str, ...] = (
    H_LOCATIONS,
    H_STORE_LOAD,
    H_AVAILABILITY,
    H_ROUTED,
    H_ORDER_EVENTS,
    H_DEAD_LETTERS,
    H_BACKORDERS,
)
"""Every topic the dashboard reads, by handle (TOPICS.<handle>.name is the Kafka name)."""


# ---- time helpers ----------------------------------------------------------------------------


def to_epoch(value: object) -> float | None:
    """ISO-8601 text, datetime or number -> epoch seconds; None when absent or unreadable.

    Output records serialise datetimes as ISO-8601 (`Z` or an offset). A naive timestamp is
    read as UTC rather than local time, because the dashboard host's zone means nothing."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _epoch_of(now: datetime | float) -> float:
    if isinstance(now, datetime):
        result = to_epoch(now)
        assert result is not None
        return result
    return float(now)


def _ts_series(values: Iterable[float | None]) -> pd.Series:
    # rounded to the millisecond: float epoch seconds carry sub-microsecond noise
    return pd.to_datetime(pd.Series(list(values), dtype="float64"), unit="s", utc=True).dt.round(
        "ms"
    )


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return default


def _float(value: object, default: float = 0.0) -> float:
    if isinstance(value, bool):
        return default
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return default


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# ---- state -----------------------------------------------------------------------------------


@dataclass
class ShipmentTrack:
    """What the dashboard knows of one shipment: where it is and since when it waits."""

    shipment_id: str
    order_id: str
    location_id: str
    mode: str
    status: str
    since: float
    updated: float
    units: int = 0
    # when it must leave the location: routed-orders' `ship_by` when the decision carries it
    ship_by: float | None = None


@dataclass
class LifecycleEntry:
    """One row of an order's history, from routing decisions and workflow events alike."""

    time: float
    seq: int
    source: str
    change: str
    order_status: str
    attempt: int | None
    shipment_id: str | None
    location_id: str | None
    detail: str


@dataclass
class OrderTrack:
    """An order's current status plus its bounded history (the lifecycle search)."""

    order_id: str
    status: str | None = None
    status_at: float = float("-inf")
    routed_at: float | None = None
    dispatched_at: float | None = None
    # the earliest `ship_by` of the latest decision's shipments (None: not promised)
    ship_by: float | None = None
    events: deque[LifecycleEntry] = field(default_factory=deque)
    seen: set[str] = field(default_factory=set)
    shipments: dict[str, ShipmentTrack] = field(default_factory=dict)


@dataclass(frozen=True)
class DeadLetterRow:
    """One message a worker refused (the `dead-letters` topic, DeadLetter of streams/records.py)."""

    rejected_at: float | None
    source_topic: str
    partition: int | None
    offset: int | None
    key: str | None
    reason_class: str
    error: str
    raw: str
    raw_encoding: str


@dataclass(frozen=True)
class BacklogSample:
    """Network backlog at one instant: open orders in total and per location kind."""

    time: float
    total: int
    by_kind: tuple[tuple[str, int], ...]
    units: int


class DashboardState:
    """Everything the page shows, folded from the output topics; safe across threads.

    Bounded on purpose (see the constructor): a planner leaves the page open for a whole peak,
    and the Kafka reader must not make the process grow with every order ever placed.
    All mutation goes through `fold()`/`fold_many()`/`tick()`, all reads through the query
    functions of this module; both take `lock`.
    """

    def __init__(
        self,
        *,
        max_orders: int = 100_000,
        max_decisions: int = 2_000,
        max_routing_log: int = 200_000,
        max_events_per_order: int = 200,
        sample_every_s: float = 5.0,
        max_samples: int = 20_000,
        max_dead_letters: int = 500,
        max_dead_seen: int = 100_000,
    ) -> None:
        self.lock = threading.RLock()
        self.max_orders = max_orders
        self.max_events_per_order = max_events_per_order
        self.sample_every_s = sample_every_s
        self.locations: dict[str, dict[str, Any]] = {}
        self.store_load: dict[str, dict[str, Any]] = {}
        self.availability: dict[str, dict[str, dict[str, Any]]] = {}
        self.backorders: dict[str, dict[str, Any]] = {}  # sku -> its queue (waiting only)
        self.decisions: deque[dict[str, Any]] = deque(maxlen=max_decisions)
        # (decided_at, order_id, status, attempt), for the rates of the network overview
        self.routing_log: deque[tuple[float, str, str, int]] = deque(maxlen=max_routing_log)
        # (dispatched_at, order_id, routed_at or None, ship_by or None): shipped and late counts
        self.dispatch_log: deque[tuple[float, str, float | None, float | None]] = deque(
            maxlen=max_routing_log
        )
        self.orders: OrderedDict[str, OrderTrack] = OrderedDict()
        self.status_counts: Counter[str] = Counter()
        self.open_orders: dict[str, float | None] = {}
        self.open_shipments: dict[str, ShipmentTrack] = {}
        self.backlog: deque[BacklogSample] = deque(maxlen=max_samples)
        self.data_time: float | None = None
        # earliest routed-orders / order-events time folded: what the shipment tracking covers
        self.history_start: float | None = None
        self.load_time: float | None = None
        # dead letters: counted since the dashboard's history starts, the latest kept whole
        self.dead_letters: deque[DeadLetterRow] = deque(maxlen=max_dead_letters)
        self.dead_seen: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self.max_dead_seen = max_dead_seen
        self.dead_by_topic: Counter[str] = Counter()
        self.dead_by_reason: Counter[str] = Counter()
        self.messages = 0
        self.skipped = 0
        self.last_problem: str | None = None
        self._seq = 0

    def now(self) -> datetime:
        """The instant "now" for the page: the network clock, or the wall clock without data.

        The network clock is the latest business time folded (decided_at, occurred_at,
        updated_at: the workers stamp them with event time, streams/clock.py). It does not
        advance by itself: a quiet network's clock stands still, as the workers' do, and under
        a simulator "the last hour" and "waiting since" are the simulated ones. The page shows
        this clock next to the wall clock, so a stale feed is visible."""
        with self.lock:
            data = self.data_time
        return datetime.fromtimestamp(time.time() if data is None else data, UTC)

    def order_count(self) -> int:
        with self.lock:
            return len(self.orders)


# ---- folding ---------------------------------------------------------------------------------


def fold(
    state: DashboardState,
    topic_handle: str,
    value: Mapping[str, Any] | None,
    key: str | None = None,
) -> bool:
    """Apply one message of an output topic to the state; True when it changed something.

    Never raises on a malformed message: the dashboard must keep showing the rest of the
    network, so an unreadable message is counted in `state.skipped` with the reason kept in
    `state.last_problem`. Replaying a message (a reconnect, a re-read of a compacted topic)
    changes nothing, so the reader can rewind freely.
    """
    with state.lock:
        return _fold_locked(state, topic_handle, value, key)


def fold_many(
    state: DashboardState,
    messages: Iterable[tuple[str, Mapping[str, Any] | None, str | None]],
) -> int:
    """Fold a batch under one lock acquisition (the reader's hot path); returns how many applied."""
    applied = 0
    with state.lock:
        for handle, value, key in messages:
            applied += _fold_locked(state, handle, value, key)
    return applied


def tick(state: DashboardState) -> None:
    """Let the backlog series advance to the network clock while store-load is quiet.

    Orders may keep being decided (the clock moving) while no location's load changes: the
    chart then moves on flat rather than stopping at the last store-load."""
    with state.lock:
        if state.load_time is None or state.data_time is None:
            return
        _maybe_sample(state, max(state.load_time, state.data_time))


def _fold_locked(
    state: DashboardState, handle: str, value: Mapping[str, Any] | None, key: str | None
) -> bool:
    state.messages += 1
    try:
        if handle == H_LOCATIONS:
            return _fold_location(state, value, key)
        if handle == H_STORE_LOAD:
            return _fold_store_load(state, value, key)
        if handle == H_AVAILABILITY:
            return _fold_availability(state, value, key)
        if handle == H_ROUTED:
            return _fold_routed(state, value)
        if handle == H_ORDER_EVENTS:
            return _fold_order_event(state, value)
        if handle == H_DEAD_LETTERS:
            return _fold_dead_letter(state, value)
        if handle == H_BACKORDERS:
            return _fold_backorders(state, value, key)
        return _skip(state, f"topic handle {handle!r} is not shown by the dashboard")
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return _skip(state, f"{handle}: {type(exc).__name__}: {exc}")


def _skip(state: DashboardState, why: str) -> bool:
    state.skipped += 1
    state.last_problem = why
    return False


def _advance(state: DashboardState, t: float | None) -> None:
    if t is not None and (state.data_time is None or t > state.data_time):
        state.data_time = t


def _cover(state: DashboardState, t: float) -> None:
    if state.history_start is None or t < state.history_start:
        state.history_start = t


def _fold_location(state: DashboardState, value: Mapping[str, Any] | None, key: str | None) -> bool:
    if value is None:
        return key is not None and state.locations.pop(key, None) is not None
    loc = _str(value.get("location_id"))
    if loc is None:
        return _skip(state, "locations: message without location_id")
    state.locations[loc] = dict(value)
    return True


def _fold_store_load(
    state: DashboardState, value: Mapping[str, Any] | None, key: str | None
) -> bool:
    if value is None:
        return key is not None and state.store_load.pop(key, None) is not None
    loc = _str(value.get("location_id"))
    updated = to_epoch(value.get("updated_at"))
    if loc is None or updated is None:
        return _skip(state, "store-load: message without location_id or updated_at")
    current = state.store_load.get(loc)
    if current is not None and current["_updated"] > updated:
        return False  # an older value replayed after a newer one
    row = dict(value)
    row["_updated"] = updated
    row["_since"] = to_epoch(value.get("oldest_open_since"))
    state.store_load[loc] = row
    _advance(state, updated)
    if state.load_time is None or updated > state.load_time:
        state.load_time = updated
    _maybe_sample(state, state.load_time)
    return True


def _maybe_sample(state: DashboardState, t: float) -> None:
    last = state.backlog[-1].time if state.backlog else None
    if last is not None and t - last < state.sample_every_s:
        return
    by_kind: Counter[str] = Counter()
    units = 0
    for row in state.store_load.values():
        kind = _str(row.get("kind")) or _str(
            state.locations.get(row["location_id"], {}).get("kind")
        )
        by_kind[kind or "unknown"] += _int(row.get("open_orders"))
        units += _int(row.get("open_units"))
    state.backlog.append(
        BacklogSample(
            time=t,
            total=sum(by_kind.values()),
            by_kind=tuple(sorted(by_kind.items())),
            units=units,
        )
    )


def _fold_availability(
    state: DashboardState, value: Mapping[str, Any] | None, key: str | None
) -> bool:
    if value is None:
        if key is None or "@" not in key:
            return False
        key_sku, key_loc = key.rsplit("@", 1)
        gone = state.availability.get(key_sku)
        return gone is not None and gone.pop(key_loc, None) is not None
    sku, loc = _str(value.get("sku")), _str(value.get("location_id"))
    if sku is None or loc is None:
        return _skip(state, "stock-availability: message without sku or location_id")
    updated = to_epoch(value.get("updated_at"))
    per_loc = state.availability.setdefault(sku, {})
    current = per_loc.get(loc)
    if current is not None and updated is not None and (current["_updated"] or 0) > updated:
        return False
    row = dict(value)
    row["_updated"] = updated
    per_loc[loc] = row
    _advance(state, updated)
    return True


def _fold_backorders(
    state: DashboardState, value: Mapping[str, Any] | None, key: str | None
) -> bool:
    """A SKU's backorder queue (compacted per SKU); an empty queue leaves the table."""
    if value is None:
        return key is not None and state.backorders.pop(key, None) is not None
    sku = _str(value.get("sku"))
    if sku is None:
        return _skip(state, "backorders: message without sku")
    updated = to_epoch(value.get("updated_at"))
    current = state.backorders.get(sku)
    if current is not None and updated is not None and (current["_updated"] or 0) > updated:
        return False
    if _int(value.get("backordered")) <= 0:
        return state.backorders.pop(sku, None) is not None
    row = dict(value)
    row["_updated"] = updated
    row["_since"] = to_epoch(value.get("oldest_since"))
    state.backorders[sku] = row
    _advance(state, updated)
    return True


def backorders_table(state: DashboardState, now: datetime | float) -> pd.DataFrame:
    """Backordered units per SKU and how long the oldest has waited, oldest wait first: the
    question is "what have customers been waiting for longest"."""
    t = _epoch_of(now)
    with state.lock:
        rows = [
            {
                "sku": sku,
                "backordered": _int(r.get("backordered")),
                "waiting_orders": _int(r.get("waiting_orders")),
                "oldest_since": r.get("_since"),
                "oldest_wait_h": None
                if r.get("_since") is None
                else round(max(0.0, t - r["_since"]) / 3600.0, 1),
            }
            for sku, r in state.backorders.items()
        ]
    columns = ["sku", "backordered", "waiting_orders", "oldest_since", "oldest_wait_h"]
    df = pd.DataFrame(rows, columns=columns)
    df["oldest_since"] = _ts_series(df["oldest_since"])
    df = df.sort_values(["oldest_since", "sku"], kind="stable", na_position="last")
    return df.reset_index(drop=True)


def _order(state: DashboardState, order_id: str) -> OrderTrack:
    track = state.orders.get(order_id)
    if track is None:
        track = OrderTrack(order_id=order_id, events=deque(maxlen=state.max_events_per_order))
        state.orders[order_id] = track
        while len(state.orders) > state.max_orders:
            _, evicted = state.orders.popitem(last=False)
            _forget(state, evicted)
    else:
        state.orders.move_to_end(order_id)
    return track


def _forget(state: DashboardState, track: OrderTrack) -> None:
    if track.status is not None:
        state.status_counts[track.status] -= 1
    state.open_orders.pop(track.order_id, None)
    for sid in track.shipments:
        state.open_shipments.pop(sid, None)


def _set_status(state: DashboardState, track: OrderTrack, status: str, at: float) -> None:
    if at < track.status_at:
        return  # an older event arriving late (another partition) must not undo a newer one
    if track.status is not None:
        state.status_counts[track.status] -= 1
    state.status_counts[status] += 1
    track.status, track.status_at = status, at
    if status in OPEN_ORDER_STATUSES:
        state.open_orders[track.order_id] = track.routed_at
    else:
        state.open_orders.pop(track.order_id, None)
    if status in DISPATCHED_ORDER_STATUSES and track.dispatched_at is None:
        track.dispatched_at = at
        state.dispatch_log.append((at, track.order_id, track.routed_at, track.ship_by))


def _note_routed(state: DashboardState, track: OrderTrack, at: float) -> None:
    if track.routed_at is None or at < track.routed_at:
        track.routed_at = at
        if track.order_id in state.open_orders:
            state.open_orders[track.order_id] = at


def _upsert_shipment(
    state: DashboardState,
    track: OrderTrack,
    *,
    shipment_id: str,
    location_id: str,
    mode: str,
    status: str,
    at: float,
    units: int,
) -> None:
    # `since` is when the shipment reached its location (the store's view of waiting); the
    # routing decision and the workflow events come on different topics and may arrive in
    # either order, so the earliest sighting wins for `since`, the latest for the status.
    ship = track.shipments.get(shipment_id)
    if ship is None:
        ship = ShipmentTrack(shipment_id, track.order_id, location_id, mode, status, at, at, units)
        track.shipments[shipment_id] = ship
    else:
        ship.since = min(ship.since, at)
        if at < ship.updated:
            return
        ship.location_id, ship.mode, ship.status, ship.updated = location_id, mode, status, at
        ship.units = units or ship.units
    order_closed = track.status in ("cancelled", "unroutable")
    if ship.status in OPEN_SHIPMENT_STATUSES and not order_closed:
        state.open_shipments[shipment_id] = ship
    else:
        state.open_shipments.pop(shipment_id, None)


def _units(lines: object) -> int:
    if not isinstance(lines, list):
        return 0
    return sum(_int(line.get("qty")) for line in lines if isinstance(line, Mapping))


def _lines_text(lines: object) -> str:
    if not isinstance(lines, list):
        return ""
    return ", ".join(
        f"{line.get('sku')}×{line.get('qty')}" for line in lines if isinstance(line, Mapping)
    )


def _add_event(state: DashboardState, track: OrderTrack, **kw: Any) -> None:
    state._seq += 1
    track.events.append(LifecycleEntry(seq=state._seq, **kw))


def _fold_routed(state: DashboardState, value: Mapping[str, Any] | None) -> bool:
    if value is None:
        return False
    order_id = _str(value.get("order_id"))
    decided = to_epoch(value.get("decided_at"))
    if order_id is None or decided is None:
        return _skip(state, "routed-orders: message without order_id or decided_at")
    status = _str(value.get("status")) or "routed"
    attempt = _int(value.get("attempt"), 1)
    track = _order(state, order_id)
    dedupe = f"ro|{attempt}|{decided}|{status}"
    if dedupe in track.seen:
        return False
    track.seen.add(dedupe)
    _cover(state, decided)
    state.decisions.append(dict(value))
    state.routing_log.append((decided, order_id, status, attempt))
    _advance(state, decided)
    shipments = value.get("shipments") or []
    if status == "routed":
        _note_routed(state, track, decided)
    promised = [
        due
        for sh in shipments
        if isinstance(sh, Mapping) and (due := to_epoch(sh.get("ship_by"))) is not None
    ]
    track.ship_by = min(promised) if promised else None  # a re-route recomputes the promise
    if track.status is None:
        # order-events carry the authoritative overall status; until one arrives, a partly
        # unroutable decision that still has shipments is an order in the works
        _set_status(state, track, "routed" if shipments else status, decided)
    for s in shipments:
        if not isinstance(s, Mapping) or _str(s.get("shipment_id")) is None:
            continue
        known = track.shipments.get(str(s["shipment_id"]))
        if known is not None:
            # a re-route lists every shipment still open, not only the new ones: their status
            # comes from order-events, the decision can only tell when they were first routed
            known.since = min(known.since, decided)
            known.ship_by = to_epoch(s.get("ship_by"))
            continue
        _upsert_shipment(
            state,
            track,
            shipment_id=str(s["shipment_id"]),
            location_id=str(s.get("location_id", "")),
            mode=str(s.get("mode", "")),
            status="routed",
            at=decided,
            units=_units(s.get("lines")),
        )
        track.shipments[str(s["shipment_id"])].ship_by = to_epoch(s.get("ship_by"))
    reasons = value.get("reasons")
    new = reasons.get("new_shipments") if isinstance(reasons, Mapping) else None
    shown = [
        s
        for s in shipments
        if isinstance(s, Mapping) and (not isinstance(new, list) or s.get("shipment_id") in new)
    ]
    summary = "; ".join(
        f"{s.get('shipment_id')} @ {s.get('location_id')} ({s.get('mode')}): "
        f"{_lines_text(s.get('lines'))}"
        for s in shown
    )
    missing = _lines_text(value.get("unroutable_lines"))
    detail = summary + (f"; unroutable: {missing}" if missing else "")
    if status == "unroutable" and isinstance(reasons, Mapping):
        detail = (detail + "; " if detail else "") + flatten_reasons(reasons, limit=240)
    _add_event(
        state,
        track,
        time=decided,
        source="routing",
        change="routed" if status == "routed" else "unroutable",
        order_status=status,
        attempt=attempt,
        shipment_id=None,
        location_id=", ".join(str(s.get("location_id")) for s in shown) or None,
        detail=detail,
    )
    return True


def _fold_order_event(state: DashboardState, value: Mapping[str, Any] | None) -> bool:
    if value is None:
        return False
    order_id = _str(value.get("order_id"))
    at = to_epoch(value.get("occurred_at"))
    status = _str(value.get("order_status"))
    if order_id is None or at is None or status is None:
        return _skip(state, "order-events: message without order_id, occurred_at or order_status")
    event_id = _str(value.get("event_id")) or f"{at}|{value.get('change')}|{status}"
    track = _order(state, order_id)
    if f"oe|{event_id}" in track.seen:
        return False
    track.seen.add(f"oe|{event_id}")
    _advance(state, at)
    _cover(state, at)
    if status == "routed":
        _note_routed(state, track, at)
    _set_status(state, track, status, at)
    for s in value.get("shipments") or []:
        if not isinstance(s, Mapping) or _str(s.get("shipment_id")) is None:
            continue
        _upsert_shipment(
            state,
            track,
            shipment_id=str(s["shipment_id"]),
            location_id=str(s.get("location_id", "")),
            mode=str(s.get("mode", "")),
            status=str(s.get("status", "")),
            at=at,
            units=_units(s.get("lines")),
        )
    if status in ("cancelled", "unroutable"):
        for sid in track.shipments:
            state.open_shipments.pop(sid, None)
    detail = value.get("detail")
    _add_event(
        state,
        track,
        time=at,
        source="workflow",
        change=str(value.get("change", "")),
        order_status=status,
        attempt=None,
        shipment_id=_str(value.get("shipment_id")),
        location_id=_str(value.get("location_id")),
        detail=flatten_reasons(detail, limit=240) if isinstance(detail, Mapping) else "",
    )
    return True


# ---- dead letters ----------------------------------------------------------------------------

KNOWN_REASON_CLASSES: tuple[str, ...] = (
    "malformed JSON",
    "not a JSON object",
    "empty message",
    "message key must be",
    "unknown location_id",
    "unknown pickup_location_id",
    "unknown shipment",
    "unknown order",
)
"""Reason prefixes of the runtime (streams/topics.py, streams/loop.py) and of the agents: a
reason starting with one of them is counted under it, whatever ids or details follow."""

_INVALID_MODEL = re.compile(r"^invalid [A-Za-z_][A-Za-z0-9_]*")
_REASON_CUT = re.compile(r"[:(\[{'\"]")
_HAS_DIGIT = re.compile(r"\d")
REASON_CLASS_WORDS = 4


def reason_class(error: object) -> str:
    """The first words of a dead letter's reason, without the ids and details that follow.

    "malformed JSON: EOF while parsing" -> "malformed JSON"; "invalid WebOrder: lines.0.qty:
    ..." -> "invalid WebOrder"; "unknown location_id 'ST-9'" -> "unknown location_id";
    "message key must be the sku 'X'" -> "message key must be". A reason of no known shape is
    cut at the first colon, quote or bracket, words with digits (order and shipment ids) are
    dropped and at most `REASON_CLASS_WORDS` words kept, so counts group by what went wrong
    rather than by which message."""
    text = " ".join(str(error or "").split())
    if not text:
        return "(no reason)"
    for known in KNOWN_REASON_CLASSES:
        if text == known or text.startswith(known + " ") or text.startswith(known + ":"):
            return known
    model = _INVALID_MODEL.match(text)
    if model:
        return model.group(0)
    head = _REASON_CUT.split(text, maxsplit=1)[0]
    words = [w for w in head.split() if not _HAS_DIGIT.search(w)]
    return " ".join(words[:REASON_CLASS_WORDS]) or text.split()[0]


def _fold_dead_letter(state: DashboardState, value: Mapping[str, Any] | None) -> bool:
    if value is None:
        return False
    topic = _str(value.get("source_topic"))
    error = value.get("error")
    if topic is None or not isinstance(error, str):
        return _skip(state, "dead-letters: message without source_topic or error")
    partition = value.get("partition")
    offset = value.get("offset")
    rejected = to_epoch(value.get("rejected_at"))
    raw = value.get("raw")
    raw_text = raw if isinstance(raw, str) else ""
    if isinstance(partition, int) and isinstance(offset, int):
        seen: tuple[object, ...] = (topic, partition, offset)
    else:
        seen = (topic, rejected, raw_text, error)
    if seen in state.dead_seen:
        return False  # the same refused input (a re-read, or a worker re-reading it)
    state.dead_seen[seen] = None
    while len(state.dead_seen) > state.max_dead_seen:
        state.dead_seen.popitem(last=False)
    cls = reason_class(error)
    state.dead_by_topic[topic] += 1
    state.dead_by_reason[cls] += 1
    key = value.get("key")
    state.dead_letters.append(
        DeadLetterRow(
            rejected_at=rejected,
            source_topic=topic,
            partition=partition if isinstance(partition, int) else None,
            offset=offset if isinstance(offset, int) else None,
            key=key if isinstance(key, str) else None,
            reason_class=cls,
            error=error,
            raw=raw_text,
            raw_encoding=_str(value.get("raw_encoding")) or "utf-8",
        )
    )
    # not `_advance`: rejected_at is the worker's wall clock, which under a simulator is not
    # the network's clock the rest of the page is measured in
    return True


def dead_letter_total(state: DashboardState) -> int:
    """Dead letters read since the dashboard's history starts (each refused input once)."""
    with state.lock:
        return sum(state.dead_by_topic.values())


def _counts_frame(counts: Counter[str], label: str) -> pd.DataFrame:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return pd.DataFrame(
        {
            label: [k for k, _ in items],
            "dead_letters": pd.Series([v for _, v in items], dtype="int64"),
        }
    )


def dead_letters_by_topic(state: DashboardState) -> pd.DataFrame:
    """(source_topic, dead_letters), the most first: which input is being refused."""
    with state.lock:
        return _counts_frame(Counter(state.dead_by_topic), "source_topic")


def dead_letters_by_reason(state: DashboardState) -> pd.DataFrame:
    """(reason_class, dead_letters), the most first: what is wrong with the refused inputs."""
    with state.lock:
        return _counts_frame(Counter(state.dead_by_reason), "reason_class")


DEAD_LETTER_COLUMNS = (
    "rejected_at",
    "source_topic",
    "reason_class",
    "raw",
    "error",
    "key",
    "partition",
    "offset",
)
"""The raw payload before the full reason: both are long, and the payload is what to fix."""


def latest_dead_letters(state: DashboardState, n: int = 20, raw_limit: int = 2000) -> pd.DataFrame:
    """The `n` most recent dead letters, newest first, with the refused message's raw payload.

    A payload that was not UTF-8 is kept base64-encoded by the worker and shown with a
    `base64:` prefix; a long one is cut at `raw_limit` characters."""
    with state.lock:
        recent = list(state.dead_letters)[-n:] if n > 0 else []
    rows = []
    for d in reversed(recent):
        raw = d.raw if d.raw_encoding == "utf-8" else f"base64:{d.raw}"
        if len(raw) > raw_limit:
            raw = raw[: raw_limit - 1] + "…"
        rows.append(
            {
                "rejected_at": d.rejected_at,
                "source_topic": d.source_topic,
                "reason_class": d.reason_class,
                "error": d.error,
                "key": d.key,
                "partition": d.partition,
                "offset": d.offset,
                "raw": raw,
            }
        )
    df = pd.DataFrame(rows, columns=list(DEAD_LETTER_COLUMNS))
    df["rejected_at"] = _ts_series(df["rejected_at"])
    df["partition"] = df["partition"].astype("Int64")
    df["offset"] = df["offset"].astype("Int64")
    return df


# ---- display helpers ---------------------------------------------------------------------------

PLACEHOLDER = "–"
"""What an empty cell shows: never "None" (Streamlit's rendering of a missing value)."""


def for_display(df: pd.DataFrame, placeholder: str = PLACEHOLDER) -> pd.DataFrame:
    """A copy of `df` where no cell is missing, so no table shows "None", "nan" or "NaT".

    Only columns that have a missing value change: text gets `placeholder`; numbers become
    text (integers without a decimal point) with `placeholder` where missing; timestamps
    become "YYYY-MM-DD HH:MM:SS" text (UTC) with `placeholder`. Columns without gaps keep their
    type, so the page's number and time formats still apply to them."""
    out = df.copy()
    for col in out.columns:
        series = out[col]
        missing = series.isna()
        if not missing.any():
            continue
        if pd.api.types.is_datetime64_any_dtype(series):
            text = series.dt.strftime("%Y-%m-%d %H:%M:%S")
        elif pd.api.types.is_bool_dtype(series):
            text = series.map(lambda v: "" if v is pd.NA else str(bool(v)))
        elif pd.api.types.is_integer_dtype(series) or pd.api.types.is_float_dtype(series):
            text = series.map(_number_text)
        else:
            text = series.map(lambda v: v if isinstance(v, str) else ("" if v is None else v))
        out[col] = text.astype(object).where(~missing, placeholder)
    return out


def _number_text(v: object) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def compact_number(value: float, decimals: int = 1) -> str:
    """A figure short enough for a metric tile: 950 -> "950", 9 999 -> "9,999", 12 345 ->
    "12.3k", 1 234 567 -> "1.2M"; below 100, `decimals` decimals are kept when not whole."""
    v = float(value)
    if not math.isfinite(v):
        return PLACEHOLDER
    sign = "-" if v < 0 else ""
    a = abs(v)
    if a >= 1e4:
        for unit, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G")):
            shown = round(a / unit, decimals)
            if shown < 1000 or suffix == "G":  # else 999 999 would read "1000k": next unit
                text = f"{shown:.{decimals}f}".rstrip("0").rstrip(".")
                return f"{sign}{text}{suffix}"
    if round(a, decimals) >= 100 or a.is_integer():
        return f"{sign}{a:,.0f}"
    return f"{sign}{a:.{decimals}f}"


@dataclass(frozen=True)
class Metric:
    """One tile of the network overview: label (with its unit), short value, help text."""

    label: str
    value: str
    help: str


METRIC_VALUE_MAX_CHARS = 7
"""The longest value a metric tile shows: what fits a quarter of a narrow page unclipped."""


def overview_metrics(ov: NetworkOverview, late_after_min: int) -> list[Metric]:
    """The network overview as metric tiles, units in the labels so values stay short."""
    return [
        Metric("Orders routed (1 h)", compact_number(ov.orders_routed), "distinct orders routed"),
        Metric("In preparation", compact_number(ov.in_preparation), "orders being prepared now"),
        Metric(
            "Shipped (1 h)",
            compact_number(ov.shipped),
            "orders handed over in the last hour (shipped or ready for pickup)",
        ),
        Metric(
            "Late",
            compact_number(ov.late),
            f"not handed over by their promise (ship_by), or without one within "
            f"{late_after_min} min of routing (the SLA threshold below); network time",
        ),
        Metric(
            "Routing rate (/min)",
            compact_number(ov.routing_rate_per_min),
            "routing decisions per minute, last 5 minutes",
        ),
        Metric("Unroutable (1 h)", f"{ov.unroutable_rate:.1%}", "share of decisions (1 h)"),
        Metric("Re-routed (1 h)", f"{ov.reroute_rate:.1%}", "decisions with attempt > 1 (1 h)"),
    ]


# ---- queries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkOverview:
    """The metric row: what a planner checks first during a peak."""

    orders_routed: int
    in_preparation: int
    shipped: int
    late: int
    routing_rate_per_min: float
    unroutable_rate: float
    reroute_rate: float
    decisions: int
    open_orders: int


def network_overview(
    state: DashboardState,
    now: datetime | float,
    *,
    window_s: float = 3600.0,
    late_after_s: float = 3600.0,
    rate_window_s: float = 300.0,
) -> NetworkOverview:
    """Headline numbers over the last `window_s` (an hour by default).

    - orders_routed: distinct orders with a `routed` decision in the window (re-routes of the
      same order count once);
    - in_preparation: orders whose current status is `in_preparation`;
    - shipped: orders handed over in the window (reached shipped, ready_for_pickup or later);
    - late: orders not handed over by their promise (`ship_by` of the routed-orders
      shipments, when the decision carries one), else within `late_after_s` of their first
      routing: those still open past that now, plus those handed over late within the window
      (all in network time: `now` is the network clock);
    - routing_rate_per_min: decisions per minute over the last `rate_window_s` (the current
      pace, which an hourly average would hide at the start of a peak);
    - unroutable_rate / reroute_rate: shares of the window's decisions that were unroutable /
      had attempt > 1.
    """
    t = _epoch_of(now)
    start, rate_start = t - window_s, t - rate_window_s
    with state.lock:
        routed: set[str] = set()
        decisions = unroutable = reroutes = recent = 0
        for decided, order_id, status, attempt in state.routing_log:
            if decided > t:
                continue
            if decided >= rate_start:
                recent += 1
            if decided < start:
                continue
            decisions += 1
            if status == "routed":
                routed.add(order_id)
            elif status == "unroutable":
                unroutable += 1
            if attempt > 1:
                reroutes += 1
        shipped = late_dispatched = 0
        for dispatched, _, routed_at, ship_by in state.dispatch_log:
            if start <= dispatched <= t:
                shipped += 1
                if _late(dispatched, routed_at, ship_by, late_after_s):
                    late_dispatched += 1
        late_open = 0
        for order_id, routed_at in state.open_orders.items():
            track = state.orders.get(order_id)
            if _late(t, routed_at, track.ship_by if track else None, late_after_s):
                late_open += 1
        return NetworkOverview(
            orders_routed=len(routed),
            in_preparation=max(0, state.status_counts.get("in_preparation", 0)),
            shipped=shipped,
            late=late_open + late_dispatched,
            routing_rate_per_min=recent / (rate_window_s / 60.0) if rate_window_s > 0 else 0.0,
            unroutable_rate=unroutable / decisions if decisions else 0.0,
            reroute_rate=reroutes / decisions if decisions else 0.0,
            decisions=decisions,
            open_orders=len(state.open_orders),
        )


def _late(at: float, routed_at: float | None, ship_by: float | None, late_after_s: float) -> bool:
    """Late at `at`: past the promise when there is one, else past the SLA after routing."""
    if ship_by is not None:
        return at > ship_by
    return routed_at is not None and at - routed_at > late_after_s


_CALENDARS: dict[int, tuple[Mapping[str, Any], Calendar]] = {}


def location_calendar(meta: Mapping[str, Any]) -> Calendar:
    """The calendar of a folded `locations` record (always open without a valid one), made
    once per record: the page asks for every location at every refresh."""
    hit = _CALENDARS.get(id(meta))
    if hit is not None and hit[0] is meta:
        return hit[1]
    try:
        cal = calendar_of(Location.model_validate(meta)) if meta.get("calendar") else None
    except ValidationError:
        cal = None  # the worker dead-letters it; shown as always open, as the worker sees it
    cal = cal or calendar_of(None)
    if len(_CALENDARS) > 10_000:
        _CALENDARS.clear()
    _CALENDARS[id(meta)] = (meta, cal)
    return cal


def open_now(meta: Mapping[str, Any], t: float | None) -> str:
    """ "preparing" (web orders are prepared now), "open" (to walk-in customers only) or
    "closed", at network time `t`; "" when the time is unknown."""
    if t is None:
        return ""
    cal = location_calendar(meta)
    when = datetime.fromtimestamp(t, UTC)
    if preparing_at(cal, when):
        return "preparing"
    return "open" if open_at(cal, when) else "closed"


STORE_LOAD_COLUMNS: tuple[str, ...] = (
    "location_id",
    "name",
    "kind",
    "now",
    "open_orders",
    "open_units",
    "capacity_per_hour",
    "max_backlog",
    "saturation",
    "backlog_saturation",
    "oldest_open_age_s",
    "oldest_open_since",
    "prep_time_s",
    "lat",
    "lon",
    "updated_at",
)


def _aged(row: Mapping[str, Any], t: float | None) -> float:
    """The oldest open shipment's age now, not when store-load was last published.

    A store that publishes nothing because it is stuck is exactly the one whose oldest order
    keeps ageing, so the age is advanced to `t` from `oldest_open_since` (or, lacking it, from
    the published age plus the time since publication)."""
    age = _float(row.get("oldest_open_age_s"))
    if t is None or _int(row.get("open_orders")) <= 0:
        return age
    since = row.get("_since")
    if since is not None:
        return max(age, t - since)
    if age > 0:
        return age + max(0.0, t - row["_updated"])
    return age


def prep_total(prep: object) -> float:
    """Typical seconds from routing to hand-over: the sum of the mean step times.

    store-load's `prep_time_s` maps steps ("routed->accepted", "packed->label_printed", ...) to
    mean seconds. Waiting for the customer ("...->collected") and a transfer's journey
    ("in_transit->...") are not the location's preparation work, so they are left out."""
    if not isinstance(prep, Mapping):
        return 0.0
    total = 0.0
    for step, seconds in prep.items():
        source, _, target = str(step).rpartition("->")
        if target == "collected" or source == "in_transit":
            continue
        total += _float(seconds)
    return round(total, 1)


def store_load_table(state: DashboardState, now: datetime | float | None = None) -> pd.DataFrame:
    """Per location load, the most saturated on top; ages advanced to `now` when given.

    Saturation (open orders / capacity per hour) sorts first because it says how many hours
    of work a location has queued; backlog saturation (against max_backlog) and the absolute
    number of open orders break ties. `prep_time_s` is `prep_total()` of the published mean
    step times: how long a shipment typically takes from routing to leaving the location."""
    t = None if now is None else _epoch_of(now)
    with state.lock:
        rows = []
        for loc, sl in state.store_load.items():
            meta = state.locations.get(loc, {})
            prep = sl.get("prep_time_s")
            rows.append(
                {
                    "location_id": loc,
                    "name": str(meta.get("name", "")),
                    "kind": _str(sl.get("kind")) or _str(meta.get("kind")) or "unknown",
                    "now": open_now(meta, t),
                    "open_orders": _int(sl.get("open_orders")),
                    "open_units": _int(sl.get("open_units")),
                    "capacity_per_hour": _int(sl.get("capacity_per_hour")),
                    "max_backlog": _int(sl.get("max_backlog")),
                    "saturation": _float(sl.get("saturation")),
                    "backlog_saturation": _float(sl.get("backlog_saturation")),
                    "oldest_open_age_s": round(_aged(sl, t), 1),
                    "oldest_open_since": sl.get("_since"),
                    "prep_time_s": prep_total(prep),
                    "lat": _float(meta.get("lat"), math.nan),
                    "lon": _float(meta.get("lon"), math.nan),
                    "updated_at": sl["_updated"],
                }
            )
    df = pd.DataFrame(rows, columns=list(STORE_LOAD_COLUMNS))
    df["oldest_open_since"] = _ts_series(df["oldest_open_since"])
    df["updated_at"] = _ts_series(df["updated_at"])
    df = df.sort_values(
        ["saturation", "backlog_saturation", "open_orders", "location_id"],
        ascending=[False, False, False, True],
        kind="stable",
    )
    return df.reset_index(drop=True)


SATURATION_SCALE: tuple[tuple[float, str], ...] = (
    (0.0, "#16a34a"),
    (0.25, "#84cc16"),
    (0.5, "#f59e0b"),
    (0.75, "#ea580c"),
    (1.0, "#dc2626"),
)
"""Green (idle) through amber (half an hour of work queued) to red (an hour or more): one
continuous scale for the map's dots, its colour bar and the table's saturation cells."""

SATURATION_RED_AT = 1.0
"""Saturation (hours of work queued) that reads fully red; anything above is clipped to it."""


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def saturation_rgb(saturation: float) -> tuple[int, int, int]:
    """The colour of `saturation` on `SATURATION_SCALE`, linearly interpolated (RGB)."""
    s = _float(saturation) / SATURATION_RED_AT
    s = min(max(s, 0.0), 1.0)
    for (lo, lo_c), (hi, hi_c) in zip(SATURATION_SCALE, SATURATION_SCALE[1:], strict=False):
        if s <= hi:
            f = 0.0 if hi == lo else (s - lo) / (hi - lo)
            a, b = _rgb(lo_c), _rgb(hi_c)
            return (
                round(a[0] + (b[0] - a[0]) * f),
                round(a[1] + (b[1] - a[1]) * f),
                round(a[2] + (b[2] - a[2]) * f),
            )
    return _rgb(SATURATION_SCALE[-1][1])


def saturation_colour(saturation: float) -> str:
    """`saturation_rgb` as "#rrggbb" (0.09 is green, 0.5 amber, 1 and more red)."""
    r, g, b = saturation_rgb(saturation)
    return f"#{r:02x}{g:02x}{b:02x}"


def saturation_cell_style(saturation: object) -> str:
    """CSS for a saturation cell of a table: the scale's colour, pale, with readable text."""
    r, g, b = saturation_rgb(_float(saturation))
    return f"background-color: rgba({r}, {g}, {b}, 0.55); color: #111827"


def map_points(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of `store_load_table` with coordinates, ready for the map.

    Size grows with open orders so a drowning store is both red and big."""
    points = []
    for row in table.itertuples(index=False):
        if math.isnan(row.lat) or math.isnan(row.lon):
            continue
        points.append(
            {
                "location_id": row.location_id,
                "name": row.name or row.location_id,
                "kind": row.kind,
                "lat": float(row.lat),
                "lon": float(row.lon),
                "open_orders": int(row.open_orders),
                "saturation": round(float(row.saturation), 2),
                "colour": saturation_colour(float(row.saturation)),
                "size": round(7 + 2.2 * math.sqrt(max(int(row.open_orders), 0)), 1),
            }
        )
    return points


def backlog_series(state: DashboardState) -> pd.DataFrame:
    """The backlog over time, wide: `time`, `total`, `units`, then one column per location kind.

    Kinds are columns (not rows) so `total` is visibly their sum; `backlog_long()` reshapes it
    for a chart."""
    with state.lock:
        samples = list(state.backlog)
    kinds = list(LOCATION_KINDS)
    for s in samples:
        for kind, _ in s.by_kind:
            if kind not in kinds:
                kinds.append(kind)
    data: dict[str, Any] = {
        "time": _ts_series(s.time for s in samples),
        "total": pd.Series([s.total for s in samples], dtype="int64"),
        "units": pd.Series([s.units for s in samples], dtype="int64"),
    }
    for kind in kinds:
        data[kind] = pd.Series([dict(s.by_kind).get(kind, 0) for s in samples], dtype="int64")
    return pd.DataFrame(data)


def backlog_long(series: pd.DataFrame) -> pd.DataFrame:
    """`backlog_series` as (time, series, open_orders) rows: total plus each non-empty kind."""
    if series.empty:
        return pd.DataFrame({"time": [], "series": [], "open_orders": []})
    cols = ["total"] + [
        c for c in series.columns if c not in ("time", "total", "units") and series[c].any()
    ]
    long = series.melt(
        id_vars=["time"], value_vars=cols, var_name="series", value_name="open_orders"
    )
    return long


REASON_KEYS_FIRST = (
    "unroutable",
    "unroutable_detail",
    "error",
    "rule",
    "chosen",
    "total",
    "split",
    "own_shelf",
    "rejected_before",
)
"""Top-level `reasons` keys a planner reads first (domain/routing.py's vocabulary): why it went
where it went, before the list of candidates."""


def flatten_reasons(reasons: object, *, limit: int = 600, max_items: int = 5) -> str:
    """A routing decision's `reasons` as one line of text a planner can scan in a table.

    `reasons` is free-form JSON by contract (candidates considered, the score breakdown of
    the chosen one). Nested objects become dotted keys, lists of objects become `(k=v, ...)`
    items separated by `|` (the first `max_items`), numbers keep 4 significant digits, and the
    keys of `REASON_KEYS_FIRST` come first."""

    def scalar(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    def render(v: object, prefix: str, out: list[str]) -> None:
        if isinstance(v, Mapping):
            for k, sub in v.items():
                render(sub, f"{prefix}.{k}" if prefix else str(k), out)
        elif isinstance(v, list):
            items = []
            for item in v[:max_items]:
                if isinstance(item, Mapping):
                    inner: list[str] = []
                    render(item, "", inner)
                    items.append("(" + ", ".join(inner) + ")")
                else:
                    items.append(scalar(item))
            more = f" | +{len(v) - max_items} more" if len(v) > max_items else ""
            out.append(f"{prefix}=[" + " | ".join(items) + more + "]")
        else:
            out.append(f"{prefix}={scalar(v)}" if prefix else scalar(v))

    parts: list[str] = []
    if isinstance(reasons, Mapping):
        first = [k for k in REASON_KEYS_FIRST if k in reasons]
        ordered = {k: reasons[k] for k in first} | {
            k: v for k, v in reasons.items() if k not in first
        }
        render(ordered, "", parts)
    else:
        render(reasons, "", parts)
    text = "; ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def latest_decisions(state: DashboardState, n: int = 50) -> pd.DataFrame:
    """The `n` most recent routing decisions, newest first, with reasons as text."""
    with state.lock:
        recent = list(state.decisions)[-n:] if n > 0 else []
    rows = []
    for d in reversed(recent):
        shipments = [s for s in d.get("shipments") or [] if isinstance(s, Mapping)]
        rows.append(
            {
                "decided_at": to_epoch(d.get("decided_at")),
                "order_id": d.get("order_id"),
                "attempt": _int(d.get("attempt"), 1),
                "status": d.get("status"),
                "shipments": len(shipments),
                "locations": ", ".join(str(s.get("location_id")) for s in shipments),
                "modes": ", ".join(sorted({str(s.get("mode")) for s in shipments})),
                "lines": "; ".join(_lines_text(s.get("lines")) for s in shipments),
                "unroutable_lines": _lines_text(d.get("unroutable_lines")),
                "reasons": flatten_reasons(d.get("reasons") or {}),
            }
        )
    columns = [
        "decided_at",
        "order_id",
        "attempt",
        "status",
        "shipments",
        "locations",
        "modes",
        "lines",
        "unroutable_lines",
        "reasons",
    ]
    df = pd.DataFrame(rows, columns=columns)
    df["decided_at"] = _ts_series(df["decided_at"])
    return df


LIFECYCLE_COLUMNS = (
    "time",
    "source",
    "change",
    "order_status",
    "attempt",
    "shipment_id",
    "location_id",
    "detail",
)


def order_lifecycle(state: DashboardState, order_id: str) -> pd.DataFrame:
    """Everything known of one order in time order: routing decisions and workflow events.

    Ties keep arrival order, so a decision and the `routed` event it caused stay in sequence.
    An unknown order gives an empty frame (the page says so rather than failing)."""
    with state.lock:
        track = state.orders.get(order_id.strip())
        entries = sorted(track.events, key=lambda e: (e.time, e.seq)) if track else []
    df = pd.DataFrame(
        [
            {
                "time": e.time,
                "source": e.source,
                "change": e.change,
                "order_status": e.order_status,
                "attempt": e.attempt,
                "shipment_id": e.shipment_id,
                "location_id": e.location_id,
                "detail": e.detail,
            }
            for e in entries
        ],
        columns=list(LIFECYCLE_COLUMNS),
    )
    df["time"] = _ts_series(df["time"])
    df["attempt"] = df["attempt"].astype("Int64")
    return df


def order_status(state: DashboardState, order_id: str) -> str | None:
    """The order's current overall status, None when the dashboard never saw it."""
    with state.lock:
        track = state.orders.get(order_id.strip())
        return None if track is None else track.status


def sku_stock(state: DashboardState, sku: str) -> pd.DataFrame:
    """on_hand, reserved and available of one SKU at every location that holds a record of it.

    Sorted by available, most first: the question is usually "who can still serve this"."""
    with state.lock:
        per_loc = dict(state.availability.get(sku.strip(), {}))
        rows = [
            {
                "location_id": loc,
                "name": str(state.locations.get(loc, {}).get("name", "")),
                "kind": str(state.locations.get(loc, {}).get("kind", "")),
                "on_hand": _int(r.get("on_hand")),
                "reserved": _int(r.get("reserved")),
                "available": _int(r.get("available")),
                "updated_at": r.get("_updated"),
            }
            for loc, r in per_loc.items()
        ]
    columns = ["location_id", "name", "kind", "on_hand", "reserved", "available", "updated_at"]
    df = pd.DataFrame(rows, columns=columns)
    df["updated_at"] = _ts_series(df["updated_at"])
    df = df.sort_values(["available", "location_id"], ascending=[False, True], kind="stable")
    return df.reset_index(drop=True)


def known_skus(state: DashboardState, limit: int = 20) -> list[str]:
    """A few SKUs that have stock records, to hint the search box."""
    with state.lock:
        return sorted(state.availability)[:limit]


SLA_COLUMNS = (
    "location_id",
    "name",
    "kind",
    "now",
    "late_shipments",
    "waiting_shipments",
    "waiting_units",
    "oldest_wait_s",
    "oldest_shipment_id",
    "source",
    "open_orders",
    "store_load_oldest_age_s",
)


def sla_breaches(state: DashboardState, now: datetime | float, threshold_s: float) -> pd.DataFrame:
    """Per location, shipments waiting longer than `threshold_s` to leave; the worst first.

    Two sources, because either may be missing:
    - the shipments this dashboard follows from routed-orders and order-events that are not
      yet shipped or ready for pickup, counted one by one (`source` "shipments");
    - store-load's oldest open shipment aged to `now` (`source` "store-load"), but only where
      the followed shipments cannot answer: when it was opened before the dashboard's history
      starts (or no order history was read at all). Inside the history the followed shipments
      are the better answer, because store-load also counts parcels waiting on the pickup
      shelf for their customer and transfers on their way, which are not late preparation.
    `oldest_wait_s` is the larger wait of the sources that apply; `store_load_oldest_age_s`
    is shown for context either way. `late_shipments`: followed shipments past their promise
    (`ship_by`, when the decisions carry one); `now`: whether the location prepares web orders
    now (its calendar at the network clock): a closed store's night backlog is not neglect."""
    t = _epoch_of(now)
    per_loc: dict[str, dict[str, Any]] = {}

    def entry(loc: str) -> dict[str, Any]:
        meta = state.locations.get(loc, {})
        sl = state.store_load.get(loc, {})
        return per_loc.setdefault(
            loc,
            {
                "location_id": loc,
                "name": str(meta.get("name", "")),
                "kind": _str(sl.get("kind")) or str(meta.get("kind", "")),
                "now": open_now(meta, t),
                "late_shipments": 0,
                "waiting_shipments": 0,
                "waiting_units": 0,
                "oldest_wait_s": 0.0,
                "oldest_shipment_id": None,
                "source": "",
                "open_orders": _int(sl.get("open_orders")),
                "store_load_oldest_age_s": round(_aged(sl, t), 1) if sl else 0.0,
            },
        )

    with state.lock:
        for ship in state.open_shipments.values():
            wait = t - ship.since
            if ship.ship_by is not None and t > ship.ship_by:
                entry(ship.location_id)["late_shipments"] += 1
            if wait <= threshold_s:
                continue
            e = entry(ship.location_id)
            e["waiting_shipments"] += 1
            e["waiting_units"] += ship.units
            e["source"] = "shipments"
            if wait > e["oldest_wait_s"]:
                e["oldest_wait_s"], e["oldest_shipment_id"] = round(wait, 1), ship.shipment_id
        start = state.history_start
        for loc, sl in state.store_load.items():
            age = _aged(sl, t)
            since = sl.get("_since")
            before_history = start is None or since is None or since < start
            if age > threshold_s and before_history:
                e = entry(loc)
                e["source"] = "shipments, store-load" if e["source"] else "store-load"
                e["oldest_wait_s"] = max(e["oldest_wait_s"], round(age, 1))
    df = pd.DataFrame(list(per_loc.values()), columns=list(SLA_COLUMNS))
    df = df.sort_values(
        ["oldest_wait_s", "waiting_shipments", "location_id"],
        ascending=[False, False, True],
        kind="stable",
    )
    return df.reset_index(drop=True)


def status_breakdown(state: DashboardState) -> pd.DataFrame:
    """How many followed orders are in each overall status (a quick sanity view)."""
    with state.lock:
        counts = {k: v for k, v in state.status_counts.items() if v > 0}
    order = [s for s in ORDER_STATUS_ORDER if s in counts] + sorted(
        s for s in counts if s not in ORDER_STATUS_ORDER
    )
    return pd.DataFrame({"order_status": order, "orders": [counts[s] for s in order]})
