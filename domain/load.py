"""Per-location store load: open shipments, their units and age, and preparation times.

Folded from load ops emitted by the order agent. Open shipments are held by id, so opening or
closing one twice changes nothing; preparation-time sums are positional (origin/sequence, as in
domain/stock.py) so a replayed step is not counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.records import Location, StoreLoad


@dataclass
class LoadState:
    open: dict[str, list[float]] = field(default_factory=dict)  # shipment_id -> [units, opened_at]
    prep: dict[str, list[float]] = field(default_factory=dict)  # "a->b" -> [count, total seconds]
    positions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"open": self.open, "prep": self.prep, "positions": self.positions}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> LoadState:
        if not d:
            return cls()
        return cls(dict(d["open"]), dict(d["prep"]), dict(d["positions"]))


def apply(state: LoadState, op: dict[str, Any]) -> bool:
    """Apply a load op in place; False when it is a replay."""
    origin, seq = op["origin"], op["seq"]
    last = state.positions.get(origin)
    if last is not None and seq <= last:
        return False
    state.positions[origin] = seq
    kind, sid = op["kind"], op["shipment_id"]
    if kind == "open":
        state.open.setdefault(sid, [float(op.get("units", 0)), float(op["at"])])
    elif kind == "close":
        state.open.pop(sid, None)
    elif kind == "step":
        n, total = state.prep.get(op["step"], [0.0, 0.0])
        state.prep[op["step"]] = [n + 1, total + float(op.get("seconds", 0.0))]
    else:
        raise ValueError(f"unknown load op kind {kind!r}")
    return True


def snapshot(location_id: str, state: LoadState, loc: Location | None, now: float) -> StoreLoad:
    """The public store-load record; saturation is open orders per hour of capacity."""
    cap = loc.capacity_per_hour if loc else 0
    backlog = loc.max_backlog if loc else 0
    n = len(state.open)
    oldest = min((v[1] for v in state.open.values()), default=None)
    return StoreLoad(
        location_id=location_id,
        kind=loc.kind if loc else "unknown",
        open_orders=n,
        open_units=int(sum(v[0] for v in state.open.values())),
        capacity_per_hour=cap,
        max_backlog=backlog,
        saturation=round(n / cap, 4) if cap else float(n),
        backlog_saturation=round(n / backlog, 4) if backlog else float(n),
        oldest_open_age_s=round(max(0.0, now - oldest), 1) if oldest is not None else 0.0,
        oldest_open_since=datetime.fromtimestamp(oldest, UTC) if oldest is not None else None,
        prep_time_s={k: round(t / c, 1) for k, (c, t) in state.prep.items() if c},
        updated_at=datetime.fromtimestamp(now, UTC),
    )
