"""The store associate app's logic: a store's queue, what to do next, and the messages to send.

Why a module apart from the pages: the Streamlit pages (dashboard/pages/) only lay things out.
What an associate sees (the queue of a store, oldest first, with the next step of each
shipment; a pick list; what an order can still return) and every message the app publishes
(`fulfilment-events`, `returns`, the `locations` record that pauses web orders) are computed
here by plain functions, unit-tested without a browser, a broker or Streamlit.

The app is the reference client of the public contract, so it reads only public topics
(through dashboard.source's `LiveFeed`): `locations`, `store-load`, `web-orders` (the order as
placed: customer, delivery, prices, payment), `routed-orders`, `order-events` (the authoritative
status of every shipment), `refunds` and `dead-letters` (why an event of ours was refused).
It never shows an optimistic copy: after an action the page waits for the order-event that
confirms it (`action_outcome`), or the dead letter that refuses it.

Messages are validated with the input models of streams/records.py before they leave, so a bad
input (a quantity above what was ordered, a return of more than was delivered, a customer giving
the wrong order id at collection) is refused here with a clear `StoreError`, not dead-lettered.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from dashboard.model import to_epoch
from domain.orders import NEXT_COLLECT, NEXT_HOME, NEXT_IN_TRANSIT
from streams.codecs import describe_validation_error
from streams.records import FulfilmentEvent, Location, Return
from streams.topics import TOPICS


class StoreError(ValueError):
    """Bad input from the associate: the page shows the message, nothing is sent."""


def _handle(name: str) -> str:
    return str(getattr(TOPICS, name).handle)


H_LOCATIONS = _handle("locations")
H_STORE_LOAD = _handle("store_load")
H_WEB_ORDERS = _handle("web_orders")
H_ROUTED = _handle("routed_orders")
H_ORDER_EVENTS = _handle("order_events")
H_REFUNDS = _handle("refunds")
H_DEAD_LETTERS = _handle("dead_letters")
H_FULFILMENT = _handle("fulfilment_events")
H_RETURNS = _handle("returns")
STORE_HANDLES: tuple[str, ...] = (
    H_LOCATIONS,
    H_STORE_LOAD,
    H_WEB_ORDERS,
    H_ROUTED,
    H_ORDER_EVENTS,
    H_REFUNDS,
    H_DEAD_LETTERS,
)
"""Every topic the store app reads, by handle."""

REJECT_REASONS: dict[str, str] = {
    "out_of_stock": "Not on the shelf (stock discrepancy)",
    "item_damaged": "Item damaged",
    "no_staff_available": "No staff available",
    "store_busy": "Store too busy (walk-in customers first)",
    "cannot_ship_today": "Cannot ship today",
}
"""The short list an associate rejects with (the `reason` of a `rejected` event)."""

PAUSE_MINUTES: tuple[int, ...] = (15, 30, 60, 120, 240)

STEP_LABELS: dict[str, str] = {
    "accepted": "Accept",
    "rejected": "Reject",
    "picked": "Pick",
    "packed": "Pack",
    "label_printed": "Print the shipping label",
    "shipped": "Hand over to the carrier",
    "ready_for_pickup": "Put on the pickup shelf",
    "collected": "Hand over to the customer",
}

# order-event `change`s that confirm each fulfilment type
CONFIRMING_CHANGES: dict[str, frozenset[str]] = {
    "accepted": frozenset({"accepted"}),
    "rejected": frozenset({"shipment_rejected"}),
    "picked": frozenset({"picked", "short_pick"}),
    "packed": frozenset({"packed"}),
    "label_printed": frozenset({"label_printed"}),
    "shipped": frozenset({"shipped"}),
    "ready_for_pickup": frozenset({"ready_for_pickup"}),
    "collected": frozenset({"collected"}),
}

# statuses in which a store still has something to do with a shipment it holds
_ACTIVE = frozenset(
    {"routed", "accepted", "picked", "packed", "label_printed", "ready_for_pickup", "in_transit"}
)
_DELIVERED = frozenset({"shipped", "collected"})
_CLOSED_ORDERS = frozenset({"cancelled", "unroutable"})


# ---- state -----------------------------------------------------------------------------------


@dataclass
class ShipmentView:
    """One shipment as the system last confirmed it (order-events win over routed-orders)."""

    shipment_id: str
    order_id: str
    location_id: str
    mode: str
    status: str
    lines: dict[str, int]
    routed_at: float
    updated_at: float
    destination_location_id: str | None = None

    @property
    def units(self) -> int:
        return sum(self.lines.values())


@dataclass
class OrderView:
    """What the store app knows of one order."""

    order_id: str
    placed: dict[str, Any] | None = None
    placed_at: float | None = None
    status: str | None = None
    status_at: float = float("-inf")
    shipments: dict[str, ShipmentView] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    returned: dict[str, dict[str, int]] = field(default_factory=dict)  # return event -> sku -> qty
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)  # return event -> refund
    seen: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Confirmation:
    seq: int
    order_id: str
    shipment_id: str | None
    change: str
    order_status: str
    detail: dict[str, Any]


class StoreState:
    """The store app's view of the network, folded from public topics; safe across threads.

    `fold_many` and `tick` are what dashboard.source's `LiveFeed` calls (its `sink`); the query
    functions of this module read it under `lock`. Bounded: an LRU of orders, a ring of
    confirmations and of dead letters."""

    def __init__(self, *, max_orders: int = 100_000, max_log: int = 20_000) -> None:
        self.lock = threading.RLock()
        self.max_orders = max_orders
        self.max_log = max_log
        self.locations: dict[str, dict[str, Any]] = {}
        self.store_load: dict[str, dict[str, Any]] = {}
        self.orders: OrderedDict[str, OrderView] = OrderedDict()
        self.confirmations: list[Confirmation] = []
        self.dead: OrderedDict[str, str] = OrderedDict()  # event_id of ours -> error
        self.seq = 0
        self.messages = 0
        self.skipped = 0
        self.last_problem: str | None = None
        self.data_time: float | None = None

    # -- the LiveFeed sink ------------------------------------------------------------------
    def fold_many(self, items: Iterable[tuple[str, Mapping[str, Any] | None, str | None]]) -> int:
        applied = 0
        with self.lock:
            for handle, value, key in items:
                applied += fold(self, handle, value, key)
        return applied

    def tick(self) -> None:
        """Nothing ages by itself here (the page computes ages from the clock)."""

    def now(self) -> datetime:
        """The network clock as the topics read here tell it (the latest decision or order
        event time), the wall clock before any: queue ages, a pause's end and the times of the
        associate's actions are network time, so under a simulator they are simulated time
        (a pause would otherwise end before the network's clock reached it)."""
        with self.lock:
            data = self.data_time
        return datetime.now(UTC) if data is None else datetime.fromtimestamp(data, UTC)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _lines(raw: object) -> dict[str, int]:
    out: dict[str, int] = {}
    if not isinstance(raw, list):
        return out
    for line in raw:
        if isinstance(line, Mapping):
            sku, qty = line.get("sku"), line.get("qty")
            if isinstance(sku, str) and isinstance(qty, int) and not isinstance(qty, bool):
                out[sku] = out.get(sku, 0) + qty
    return out


def _order(state: StoreState, order_id: str) -> OrderView:
    view = state.orders.get(order_id)
    if view is None:
        view = OrderView(order_id)
        state.orders[order_id] = view
        while len(state.orders) > state.max_orders:
            state.orders.popitem(last=False)
    else:
        state.orders.move_to_end(order_id)
    return view


def fold(
    state: StoreState, handle: str, value: Mapping[str, Any] | None, key: str | None = None
) -> bool:
    """Apply one message of a public topic; never raises on a malformed one (it is counted)."""
    with state.lock:
        state.messages += 1
        try:
            if handle == H_LOCATIONS:
                if value is None:
                    return key is not None and state.locations.pop(key, None) is not None
                loc = _str(value.get("location_id"))
                if loc is None:
                    return _skip(state, "locations: no location_id")
                state.locations[loc] = dict(value)
                return True
            if handle == H_STORE_LOAD:
                if value is None or _str(value.get("location_id")) is None:
                    return False
                state.store_load[str(value["location_id"])] = dict(value)
                return True
            if value is None:
                return False
            if handle == H_WEB_ORDERS:
                return _fold_web_order(state, value)
            if handle == H_ROUTED:
                return _fold_routed(state, value)
            if handle == H_ORDER_EVENTS:
                return _fold_order_event(state, value)
            if handle == H_REFUNDS:
                return _fold_refund(state, value)
            if handle == H_DEAD_LETTERS:
                return _fold_dead_letter(state, value)
            return _skip(state, f"topic handle {handle!r} is not read by the store app")
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            return _skip(state, f"{handle}: {type(exc).__name__}: {exc}")


def _skip(state: StoreState, why: str) -> bool:
    state.skipped += 1
    state.last_problem = why
    return False


def _fold_web_order(state: StoreState, value: Mapping[str, Any]) -> bool:
    order_id = _str(value.get("order_id"))
    if order_id is None:
        return _skip(state, "web-orders: no order_id")
    view = _order(state, order_id)
    if value.get("type") == "order_placed" and view.placed is None:
        view.placed = dict(value)
        view.placed_at = to_epoch(value.get("occurred_at"))
        return True
    return False


def _fold_routed(state: StoreState, value: Mapping[str, Any]) -> bool:
    order_id = _str(value.get("order_id"))
    decided = to_epoch(value.get("decided_at"))
    if order_id is None or decided is None:
        return _skip(state, "routed-orders: no order_id or decided_at")
    view = _order(state, order_id)
    for s in value.get("shipments") or []:
        sid = _str(s.get("shipment_id")) if isinstance(s, Mapping) else None
        if sid is None:
            continue
        known = view.shipments.get(sid)
        if known is not None:
            known.routed_at = min(known.routed_at, decided)
            continue  # its status comes from order-events
        view.shipments[sid] = ShipmentView(
            shipment_id=sid,
            order_id=order_id,
            location_id=str(s.get("location_id", "")),
            mode=str(s.get("mode", "")),
            status="routed",
            lines=_lines(s.get("lines")),
            routed_at=decided,
            updated_at=decided,
        )
    if view.status is None:
        view.status, view.status_at = str(value.get("status") or "routed"), decided
    state.data_time = max(state.data_time or decided, decided)
    return True


def _fold_order_event(state: StoreState, value: Mapping[str, Any]) -> bool:
    order_id = _str(value.get("order_id"))
    at = to_epoch(value.get("occurred_at"))
    status = _str(value.get("order_status"))
    if order_id is None or at is None or status is None:
        return _skip(state, "order-events: no order_id, occurred_at or order_status")
    view = _order(state, order_id)
    event_id = _str(value.get("event_id")) or f"{at}|{value.get('change')}"
    if event_id in view.seen:
        return False
    view.seen.add(event_id)
    if at >= view.status_at:
        view.status, view.status_at = status, at
    for s in value.get("shipments") or []:
        sid = _str(s.get("shipment_id")) if isinstance(s, Mapping) else None
        if sid is None:
            continue
        ship = view.shipments.get(sid)
        if ship is None:
            ship = ShipmentView(
                shipment_id=sid,
                order_id=order_id,
                location_id=str(s.get("location_id", "")),
                mode=str(s.get("mode", "")),
                status=str(s.get("status", "")),
                lines=_lines(s.get("lines")),
                routed_at=at,
                updated_at=at,
                destination_location_id=_str(s.get("destination_location_id")),
            )
            view.shipments[sid] = ship
        elif at >= ship.updated_at:
            ship.location_id = str(s.get("location_id", ship.location_id))
            ship.mode = str(s.get("mode", ship.mode))
            ship.status = str(s.get("status", ship.status))
            ship.lines = _lines(s.get("lines"))
            ship.updated_at = at
            ship.destination_location_id = _str(s.get("destination_location_id"))
    change = str(value.get("change", ""))
    detail = value.get("detail") if isinstance(value.get("detail"), Mapping) else {}
    assert isinstance(detail, Mapping)
    if change == "returned":
        rid = _str(detail.get("return_event_id"))
        if rid is not None:
            returned: dict[str, int] = {}
            for line in detail.get("lines") or []:
                if isinstance(line, Mapping) and isinstance(line.get("qty"), int):
                    sku = str(line.get("sku"))
                    returned[sku] = returned.get(sku, 0) + int(line["qty"])
            view.returned[rid] = returned
    view.events.append(
        {
            "time": at,
            "change": change,
            "order_status": status,
            "shipment_id": _str(value.get("shipment_id")),
            "location_id": _str(value.get("location_id")),
        }
    )
    del view.events[:-200]
    state.seq += 1
    state.confirmations.append(
        Confirmation(
            state.seq, order_id, _str(value.get("shipment_id")), change, status, dict(detail)
        )
    )
    del state.confirmations[: -state.max_log]
    state.data_time = max(state.data_time or at, at)
    return True


def _fold_refund(state: StoreState, value: Mapping[str, Any]) -> bool:
    order_id = _str(value.get("order_id"))
    rid = _str(value.get("return_event_id"))
    if order_id is None or rid is None:
        return _skip(state, "refunds: no order_id or return_event_id")
    _order(state, order_id).refunds[rid] = dict(value)
    return True


def _fold_dead_letter(state: StoreState, value: Mapping[str, Any]) -> bool:
    """Remember why an input of ours was refused: by the event_id inside its raw bytes."""
    source = value.get("source_topic")
    if source not in (TOPICS.fulfilment_events.name, TOPICS.returns.name):
        return False
    if value.get("raw_encoding", "utf-8") != "utf-8":
        return False
    try:
        raw = orjson.loads(str(value.get("raw", "")))
    except orjson.JSONDecodeError:
        return False
    event_id = _str(raw.get("event_id")) if isinstance(raw, dict) else None
    if event_id is None:
        return False
    state.dead[event_id] = str(value.get("error", "refused"))
    while len(state.dead) > state.max_log:
        state.dead.popitem(last=False)
    return True


# ---- locations and load ----------------------------------------------------------------------


def active_locations(state: StoreState) -> list[tuple[str, str]]:
    """(location_id, label) of the active locations, stores first, for the store picker."""
    with state.lock:
        rows = [
            (
                0 if loc.get("kind") == "store" else 1,
                loc_id,
                f"{loc_id} — {loc.get('name') or loc_id}",
            )
            for loc_id, loc in state.locations.items()
            if loc.get("active", True)
        ]
    return [(loc_id, label) for _, loc_id, label in sorted(rows)]


@dataclass(frozen=True)
class StoreLoadView:
    open_orders: int
    open_units: int
    capacity_per_hour: int
    max_backlog: int
    saturation: float
    backlog_saturation: float
    oldest_open_age_s: float
    paused_until: datetime | None
    paused: bool


def store_load(state: StoreState, store_id: str, now: datetime) -> StoreLoadView:
    """The store's load (store-load) and whether its web orders are paused now."""
    with state.lock:
        sl = dict(state.store_load.get(store_id) or {})
        loc = dict(state.locations.get(store_id) or {})
    since = to_epoch(sl.get("oldest_open_since"))
    open_orders = int(sl.get("open_orders") or 0)
    age = float(sl.get("oldest_open_age_s") or 0.0)
    if since is not None and open_orders > 0:
        age = max(age, now.timestamp() - since)
    until_epoch = to_epoch(loc.get("paused_until"))
    until = None if until_epoch is None else datetime.fromtimestamp(until_epoch, UTC)
    return StoreLoadView(
        open_orders=open_orders,
        open_units=int(sl.get("open_units") or 0),
        capacity_per_hour=int(sl.get("capacity_per_hour") or loc.get("capacity_per_hour") or 0),
        max_backlog=int(sl.get("max_backlog") or loc.get("max_backlog") or 0),
        saturation=float(sl.get("saturation") or 0.0),
        backlog_saturation=float(sl.get("backlog_saturation") or 0.0),
        oldest_open_age_s=round(age, 1),
        paused_until=until,
        paused=until is not None and until > now,
    )


def pause_record(
    state: StoreState, store_id: str, now: datetime, minutes: int | None
) -> dict[str, Any]:
    """The store's `locations` record with `paused_until` = now + minutes (None: resume).

    The whole record is re-published (the topic is compacted: the latest value is the
    location), validated with the `Location` model."""
    if now.tzinfo is None:
        raise StoreError("the pause needs an aware time")
    with state.lock:
        current = state.locations.get(store_id)
    if current is None:
        raise StoreError(f"unknown location {store_id!r}: no record on the locations topic")
    record = dict(current)
    if minutes is None:
        record["paused_until"] = None
    else:
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 24 * 60:
            raise StoreError("pause web orders for 1 minute to 24 hours")
        record["paused_until"] = (now + timedelta(minutes=minutes)).isoformat()
    try:
        Location.model_validate_json(orjson.dumps(record))
    except ValidationError as exc:
        raise StoreError(
            f"the location record of {store_id} is not valid: {describe_validation_error(exc)}"
        ) from None
    return record


# ---- the queue -------------------------------------------------------------------------------


def holder(ship: ShipmentView) -> str:
    """The location that acts on the shipment now (domain/orders.py's ownership rule)."""
    if ship.destination_location_id and ship.status in ("in_transit", "ready_for_pickup"):
        return ship.destination_location_id
    return ship.location_id


def next_steps(ship: ShipmentView) -> list[str]:
    """The fulfilment types the system accepts next for this shipment, main step first."""
    if ship.destination_location_id and ship.status in ("in_transit", "ready_for_pickup"):
        table = NEXT_IN_TRANSIT
    elif ship.mode == "click_collect":
        table = NEXT_COLLECT
    else:
        table = NEXT_HOME
    steps = sorted(table.get(ship.status, set()))
    if ship.status in ("routed", "accepted", "picked", "packed"):
        steps.append("rejected")
    return steps


@dataclass(frozen=True)
class QueueItem:
    order_id: str
    shipment_id: str
    mode: str
    status: str
    next_step: str
    waiting_s: float
    since: float
    units: int
    lines: str


QUEUE_COLUMNS = (
    "order_id",
    "shipment_id",
    "mode",
    "status",
    "next_step",
    "waiting_min",
    "units",
    "lines",
)


def queue(state: StoreState, store_id: str, now: datetime, search: str = "") -> list[QueueItem]:
    """The store's open shipments, oldest first (routing time), with the next step of each.

    `search` keeps the shipments whose order or shipment id contains it (case-insensitive)."""
    needle = search.strip().lower()
    t = now.timestamp()
    items: list[QueueItem] = []
    with state.lock:
        for order in state.orders.values():
            if order.status in _CLOSED_ORDERS:
                continue
            for ship in order.shipments.values():
                if ship.status not in _ACTIVE or holder(ship) != store_id:
                    continue
                if ship.status == "in_transit" and not ship.destination_location_id:
                    continue
                if needle and needle not in f"{ship.order_id} {ship.shipment_id}".lower():
                    continue
                steps = next_steps(ship)
                main = steps[0] if steps else ""
                items.append(
                    QueueItem(
                        order_id=ship.order_id,
                        shipment_id=ship.shipment_id,
                        mode=ship.mode,
                        status=ship.status,
                        next_step=STEP_LABELS.get(main, main)
                        if ship.status != "in_transit"
                        else "Receive the transfer (ready for pickup)",
                        waiting_s=max(0.0, t - ship.routed_at),
                        since=ship.routed_at,
                        units=ship.units,
                        lines=", ".join(f"{s}×{q}" for s, q in sorted(ship.lines.items())),
                    )
                )
    items.sort(key=lambda i: (i.since, i.shipment_id))
    return items


def shipment(state: StoreState, shipment_id: str) -> ShipmentView | None:
    order_id = shipment_id.rsplit("-S", 1)[0] if "-S" in shipment_id else None
    with state.lock:
        if order_id is not None and order_id in state.orders:
            found = state.orders[order_id].shipments.get(shipment_id)
            if found is not None:
                return found
        for order in state.orders.values():
            if shipment_id in order.shipments:
                return order.shipments[shipment_id]
    return None


def order(state: StoreState, order_id: str) -> OrderView | None:
    with state.lock:
        return state.orders.get(order_id.strip())


@dataclass(frozen=True)
class PickLine:
    sku: str
    qty: int
    shipments: tuple[str, ...]


def pick_list(ships: Sequence[ShipmentView]) -> list[PickLine]:
    """Units to take off the shelf, grouped by SKU across the given shipments, SKU order."""
    by_sku: dict[str, tuple[int, list[str]]] = {}
    for ship in ships:
        for sku, qty in ship.lines.items():
            total, ids = by_sku.get(sku, (0, []))
            by_sku[sku] = (total + qty, [*ids, ship.shipment_id])
    return [PickLine(sku, q, tuple(ids)) for sku, (q, ids) in sorted(by_sku.items())]


def store_pick_list(state: StoreState, store_id: str) -> list[PickLine]:
    """The store's batch pick list: every accepted shipment it holds, grouped by SKU."""
    with state.lock:
        ships = [
            s
            for o in state.orders.values()
            if o.status not in _CLOSED_ORDERS
            for s in o.shipments.values()
            if s.status == "accepted" and holder(s) == store_id
        ]
    return pick_list(ships)


# ---- the messages ----------------------------------------------------------------------------


def new_event_id(prefix: str = "store") -> str:
    return f"{prefix}-{uuid.uuid4()}"


def fulfilment_event(
    ship: ShipmentView,
    store_id: str,
    kind: str,
    now: datetime,
    *,
    reason: str | None = None,
    lines: Mapping[str, int] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A valid `fulfilment-events` message (JSON-ready), keyed by `ship.order_id`.

    Refused here (StoreError) when the store does not hold the shipment or the step is not
    the next one: the system would dead-letter it."""
    if holder(ship) != store_id:
        raise StoreError(f"{ship.shipment_id} is held by {holder(ship)}, not {store_id}")
    allowed = next_steps(ship)
    if kind not in allowed:
        raise StoreError(
            f"{STEP_LABELS.get(kind, kind)} is not possible for {ship.shipment_id} in status "
            f"{ship.status} (next: {', '.join(allowed) or 'nothing'})"
        )
    if kind == "rejected" and reason not in REJECT_REASONS:
        raise StoreError(f"choose a reason to reject: {', '.join(REJECT_REASONS)}")
    value: dict[str, Any] = {
        "event_id": event_id or new_event_id(),
        "occurred_at": now.isoformat(),
        "order_id": ship.order_id,
        "shipment_id": ship.shipment_id,
        "location_id": store_id,
        "type": kind,
    }
    if reason is not None:
        value["reason"] = reason
    if lines is not None:
        value["lines"] = [{"sku": s, "qty": q} for s, q in sorted(lines.items())]
    try:
        FulfilmentEvent.model_validate_json(orjson.dumps(value))
    except ValidationError as exc:
        raise StoreError(f"invalid fulfilment event: {describe_validation_error(exc)}") from None
    return value


def pick_event(
    ship: ShipmentView,
    store_id: str,
    found: Mapping[str, object],
    now: datetime,
) -> tuple[dict[str, Any], dict[str, int]]:
    """`picked` with the units found per SKU; returns (message, missing units per SKU).

    Fewer units than the shipment holds is a short pick: the system corrects the store's
    stock and re-routes the missing units."""
    picked: dict[str, int] = {}
    for sku, qty in ship.lines.items():
        got = found.get(sku)
        if isinstance(got, bool) or not isinstance(got, int):
            raise StoreError(f"{sku}: enter the number of units found (a whole number)")
        if got < 0 or got > qty:
            raise StoreError(f"{sku}: found must be between 0 and {qty} (the shipment holds {qty})")
        picked[sku] = got
    unknown = sorted(set(found) - set(ship.lines))
    if unknown:
        raise StoreError(f"not in {ship.shipment_id}: {', '.join(unknown)}")
    missing = {sku: qty - picked[sku] for sku, qty in ship.lines.items() if picked[sku] < qty}
    return fulfilment_event(ship, store_id, "picked", now, lines=picked), missing


def check_collection(ship: ShipmentView, given_order_id: str) -> None:
    """The customer at the counter must give the order id of the parcel handed over."""
    given = given_order_id.strip()
    if not given:
        raise StoreError("ask the customer for the order id (on their confirmation e-mail)")
    if given.upper() != ship.order_id.upper():
        raise StoreError(f"order id {given!r} does not match this parcel: do not hand it over")


@dataclass(frozen=True)
class Outcome:
    state: str  # waiting | confirmed | refused
    text: str


def action_outcome(state: StoreState, sent: Mapping[str, Any]) -> Outcome:
    """What the system said about an event this app sent: confirmed (order-events), refused
    (dead-letters, with the reason) or not yet. `sent` carries event_id, order_id,
    shipment_id, type and `seq` (the state's `seq` when it was sent)."""
    kind = str(sent["type"])
    with state.lock:
        error = state.dead.get(str(sent["event_id"]))
        if error is not None:
            return Outcome("refused", f"Refused by the system: {error}")
        wanted = CONFIRMING_CHANGES.get(kind, frozenset({kind}))
        matches = []
        for c in reversed(state.confirmations):
            if c.seq <= int(sent.get("seq", 0)):
                break
            if (
                c.order_id == sent["order_id"]
                and c.shipment_id == sent.get("shipment_id")
                and c.change in wanted
            ):
                matches.append(c)
    if matches:
        # one input can confirm with several changes (a short pick: short_pick, then picked)
        latest = matches[0]
        extra = ""
        for c in matches:
            if c.change == "short_pick":
                missing = ", ".join(
                    f"{ln.get('sku')}×{ln.get('qty')}"
                    for ln in c.detail.get("missing") or []
                    if isinstance(ln, Mapping)
                )
                extra = f" — short pick: {missing} re-routed"
        return Outcome(
            "confirmed",
            f"Confirmed: {latest.change.replace('_', ' ')} (order {latest.order_status})" + extra,
        )
    return Outcome("waiting", f"Sent {kind.replace('_', ' ')}; waiting for the system to confirm…")


# ---- returns desk ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnableLine:
    sku: str
    delivered: int
    returned: int
    returnable: int
    unit_price: float | None


def returnable(view: OrderView) -> list[ReturnableLine]:
    """Per SKU: units shipped or collected, already returned, still returnable, unit price."""
    delivered: dict[str, int] = {}
    for ship in view.shipments.values():
        if ship.status in _DELIVERED:
            for sku, qty in ship.lines.items():
                delivered[sku] = delivered.get(sku, 0) + qty
    returned: dict[str, int] = {}
    for lines in view.returned.values():
        for sku, qty in lines.items():
            returned[sku] = returned.get(sku, 0) + qty
    prices: dict[str, float] = {}
    for line in (view.placed or {}).get("lines") or []:
        if isinstance(line, Mapping) and isinstance(line.get("sku"), str):
            prices.setdefault(str(line["sku"]), float(line.get("unit_price") or 0.0))
    return [
        ReturnableLine(
            sku,
            qty,
            returned.get(sku, 0),
            max(0, qty - returned.get(sku, 0)),
            prices.get(sku),
        )
        for sku, qty in sorted(delivered.items())
    ]


def return_message(
    view: OrderView,
    store_id: str,
    chosen: Sequence[tuple[str, object, bool]],
    now: datetime,
    *,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A valid `returns` message for (sku, qty, resellable) lines; qty 0 lines are left out.

    Refused (StoreError) when nothing is chosen or more than is returnable is asked."""
    if view.status in ("cancelled", "unroutable"):
        raise StoreError(f"order {view.order_id} is {view.status}: nothing was delivered")
    left = {r.sku: r.returnable for r in returnable(view)}
    asked: dict[str, int] = {}
    lines = []
    for sku, qty, resellable in chosen:
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
            raise StoreError(f"{sku}: the quantity must be a whole number ≥ 0")
        if qty == 0:
            continue
        if sku not in left:
            raise StoreError(f"{sku} was not shipped or collected in order {view.order_id}")
        asked[sku] = asked.get(sku, 0) + qty
        if asked[sku] > left[sku]:
            raise StoreError(f"{sku}: only {left[sku]} unit(s) can still be returned")
        lines.append({"sku": sku, "qty": qty, "resellable": bool(resellable)})
    if not lines:
        raise StoreError("choose at least one unit to return")
    value = {
        "event_id": event_id or new_event_id("return"),
        "occurred_at": now.isoformat(),
        "order_id": view.order_id,
        "location_id": store_id,
        "lines": lines,
    }
    try:
        Return.model_validate_json(orjson.dumps(value))
    except ValidationError as exc:
        raise StoreError(f"invalid return: {describe_validation_error(exc)}") from None
    return value


def return_outcome(state: StoreState, order_id: str, return_event_id: str) -> Outcome:
    """The refund issued for a return of ours, the reason it was refused, or not yet."""
    with state.lock:
        error = state.dead.get(return_event_id)
        if error is not None:
            return Outcome("refused", f"Return refused: {error}")
        view = state.orders.get(order_id)
        refund = None if view is None else view.refunds.get(return_event_id)
    if refund is None:
        return Outcome("waiting", "Return sent; waiting for the refund…")
    payment = refund.get("payment") or {}
    return Outcome(
        "confirmed",
        f"Refund {refund.get('refund_id')}: {float(refund.get('amount') or 0):.2f} "
        f"{refund.get('currency')} to {payment.get('method')} {payment.get('reference')}",
    )
