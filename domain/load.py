"""Per-location store load: open shipments, their units and age, and preparation times.

Folded from load ops (keyed by location) emitted by the order agent, into two records so that
an op costs the same whatever the backlog. (Holding every open shipment in the location's
value made each op rewrite and re-send the whole backlog to the changelog: quadratic, and the
largest cost of routing at peak, when warehouses hold thousands of open shipments.)

* the location's `LoadState`: open count and units, open shipments per minute of opening (the
  oldest open age, to the minute), preparation-time sums, and the positions of applied ops;
* one `Shipment` record per shipment at the location (a transfer is open at its origin, then
  at the pickup store), kept (closed) after it closes, so opening or closing a shipment twice,
  from two different inputs, changes nothing. A line cancellation shrinks it (`shrink`, the
  units it still holds), so `open_units` counts what remains to prepare.

The two writes are not atomic, so the location record is written first and carries the
position (origin/sequence, as in domain/stock.py) of the op: an op re-read after a crash is
recognised by its position and only its shipment write is redone (`Outcome.shipment`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.records import LoadOp, Location, Position, StoreLoad, as_position

MINUTE = 60.0


@dataclass
class Shipment:
    units: float
    opened_at: float
    closed: bool = False
    due: float | None = None  # its ship_by while still to ship (None: none, or ready for pickup)

    def to_list(self) -> list[Any]:
        return [self.units, self.opened_at, self.closed, self.due]

    @classmethod
    def from_list(cls, v: list[Any] | None) -> Shipment | None:
        if v is None:
            return None
        due = v[3] if len(v) > 3 else None  # records from before ship_by have three items
        return cls(float(v[0]), float(v[1]), bool(v[2]), None if due is None else float(due))


@dataclass
class LoadState:
    open_orders: int = 0
    open_units: float = 0.0
    # minute of opening -> [open shipments opened in it, earliest opening time seen in it]
    by_minute: dict[str, list[float]] = field(default_factory=dict)
    prep: dict[str, list[float]] = field(default_factory=dict)  # "a->b" -> [count, total s]
    positions: dict[str, Position] = field(default_factory=dict)
    # minute of ship_by -> open shipments still to ship due in it (late once it is past)
    by_due: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "open_orders": self.open_orders,
            "open_units": self.open_units,
            "by_minute": self.by_minute,
            "prep": self.prep,
            "positions": self.positions,
            "by_due": self.by_due,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> LoadState:
        if not d:
            return cls()
        return cls(
            int(d["open_orders"]),
            float(d["open_units"]),
            dict(d["by_minute"]),
            dict(d["prep"]),
            {o: as_position(p) for o, p in d["positions"].items()},
            dict(d.get("by_due") or {}),
        )

    def oldest_open(self) -> float | None:
        return min((b[1] for b in self.by_minute.values()), default=None)

    def late(self, now: float) -> int:
        """Open shipments still to ship whose ship_by minute is over at `now`."""
        return sum(n for m, n in self.by_due.items() if (int(m) + 1) * MINUTE <= now)

    def _due(self, due: float | None, delta: int) -> None:
        if due is None:
            return
        key = _minute(due)
        n = self.by_due.get(key, 0) + delta
        if n > 0:
            self.by_due[key] = n
        else:
            self.by_due.pop(key, None)


@dataclass(frozen=True)
class Outcome:
    """`changed`: the location record must be written. `shipment`: the shipment record to
    write after it (None: no write)."""

    changed: bool
    shipment: Shipment | None = None


def apply(state: LoadState, op: LoadOp, shipment: Shipment | None) -> Outcome:
    """Apply a load op to the location's state in place, given the op's shipment record."""
    kind = op.kind
    origin, seq = op.origin, op.seq
    last = state.positions.get(origin)
    if last is not None and seq <= last:
        return Outcome(False, _redo(op, shipment))
    if kind == "open":
        if shipment is not None:
            return Outcome(False)  # opened (or even closed) already, by another input
        opened = Shipment(op.units, op.at, due=op.due)
        state._due(op.due, +1)
        state.open_orders += 1
        state.open_units += opened.units
        bucket = state.by_minute.setdefault(_minute(opened.opened_at), [0, opened.opened_at])
        bucket[0] += 1
        bucket[1] = min(bucket[1], opened.opened_at)
        state.positions[origin] = seq
        return Outcome(True, opened)
    if kind == "close":
        if shipment is None or shipment.closed:
            return Outcome(False)
        state.open_orders -= 1
        state.open_units -= shipment.units
        state._due(shipment.due, -1)
        key = _minute(shipment.opened_at)
        held = state.by_minute.get(key)
        if held is not None:
            held[0] -= 1
            if held[0] <= 0:
                del state.by_minute[key]
        state.positions[origin] = seq
        return Outcome(True, Shipment(shipment.units, shipment.opened_at, closed=True))
    if kind == "shrink":
        return _shrink(state, op, shipment)
    step = op.step or "?"
    n, total = state.prep.get(step, [0.0, 0.0])
    state.prep[step] = [n + 1, total + op.seconds]
    state.positions[origin] = seq
    if shipment is not None and shipment.due is not None and not shipment.closed:
        # on the pickup shelf: no longer due (store-load counts only shipments still to ship)
        state._due(shipment.due, -1)
        return Outcome(True, Shipment(shipment.units, shipment.opened_at, False, None))
    return Outcome(True)


def _shrink(state: LoadState, op: LoadOp, shipment: Shipment | None) -> Outcome:
    """A line cancellation took units out of a shipment that goes on: `op.units` is what it
    still holds (a value, not a delta: a shrink seen twice, or after the close, is no change)."""
    if shipment is None or shipment.closed or op.units >= shipment.units:
        return Outcome(False)
    state.open_units -= shipment.units - op.units
    state.positions[op.origin] = op.seq
    return Outcome(True, Shipment(op.units, shipment.opened_at, False, shipment.due))


def _redo(op: LoadOp, shipment: Shipment | None) -> Shipment | None:
    """The shipment write of an op already applied to the location: missing only when the
    worker stopped between the two writes."""
    if op.kind == "open" and shipment is None:
        return Shipment(op.units, op.at, due=op.due)
    if op.kind == "close" and shipment is not None and not shipment.closed:
        return Shipment(shipment.units, shipment.opened_at, closed=True)
    if op.kind == "shrink" and shipment is not None and not shipment.closed:
        if op.units < shipment.units:
            return Shipment(op.units, shipment.opened_at, False, shipment.due)
        return None
    if op.kind == "step" and shipment is not None and shipment.due is not None:
        return Shipment(shipment.units, shipment.opened_at, shipment.closed, None)
    return None


def _minute(t: float) -> str:
    return str(int(t // MINUTE))


def snapshot(location_id: str, state: LoadState, loc: Location | None, now: float) -> StoreLoad:
    """The public store-load record; saturation is open orders per hour of capacity."""
    cap = loc.capacity_per_hour if loc else 0
    backlog = loc.max_backlog if loc else 0
    n = state.open_orders
    oldest = state.oldest_open()
    return StoreLoad(
        location_id=location_id,
        kind=loc.kind if loc else "unknown",
        open_orders=n,
        open_units=int(state.open_units),
        capacity_per_hour=cap,
        max_backlog=backlog,
        saturation=round(n / cap, 4) if cap else float(n),
        backlog_saturation=round(n / backlog, 4) if backlog else float(n),
        oldest_open_age_s=round(max(0.0, now - oldest), 1) if oldest is not None else 0.0,
        oldest_open_since=datetime.fromtimestamp(oldest, UTC) if oldest is not None else None,
        prep_time_s={k: round(t / c, 1) for k, (c, t) in state.prep.items() if c},
        updated_at=datetime.fromtimestamp(now, UTC),
        late_shipments=state.late(now),
    )
