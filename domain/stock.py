"""The per-SKU-per-location stock fold, and why it is safe to apply twice.

Every change to stock is a *stock op* on the internal topic keyed by SKU, so one partition (and
one agent, concurrency 1) owns all writes for a SKU: reservations are atomic per SKU without
locks. Delivery is at-least-once, so each op is made idempotent in one of two ways:

* every op carries its origin (topic code + partition of the input that caused it) and a
  position that only grows along that origin ((input offset, index of the op among that
  input's effects), compared as a pair, streams/records.py Position). The
  state remembers the last sequence applied per origin; an op at or below it is a replay and
  changes nothing. A worker killed after writing the table but before committing its input
  offsets re-reads those inputs and re-emits the same ops with the same sequences, and a stock
  worker re-reading its own ops finds them all at or below the recorded positions.
* reservation ops (reserve, release, consume) also name a reservation id (a release with a
  qty gives back only that many of its units: a line cancellation); the state holds the
  open reservations, so reserving an id twice, or releasing/consuming one that is gone, is a
  no-op even when a new input asks for it again.

`reserved` is derived from the open reservations, never counted separately, so it cannot leak
away from them. on_hand may go negative (the till sold what the records said was not there):
the truth is kept and only `available` is clamped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.records import Position, StockOp, StockOpKind, as_position


def stock_key(sku: str, location_id: str) -> str:
    return f"{sku}@{location_id}"


@dataclass
class StockState:
    on_hand: int = 0
    reservations: dict[str, int] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)

    @property
    def reserved(self) -> int:
        return sum(self.reservations.values())

    def available(self, safety_stock: int) -> int:
        return max(0, self.on_hand - self.reserved - safety_stock)

    def free(self, safety_stock: int) -> int:
        """Units that may still be reserved: the oversell guard."""
        return self.on_hand - self.reserved - safety_stock

    def to_dict(self) -> dict[str, Any]:
        return {
            "on_hand": self.on_hand,
            "reservations": self.reservations,
            "positions": self.positions,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> StockState:
        if not d:
            return cls()
        positions = {o: as_position(p) for o, p in d["positions"].items()}
        return cls(d["on_hand"], dict(d["reservations"]), positions)


@dataclass(frozen=True)
class Outcome:
    """What applying an op did. `replay` means the op had been applied before (nothing changed)."""

    changed: bool
    replay: bool = False
    reserved_ok: bool | None = None  # reserve ops only
    free_after: int | None = None  # reserve ops only: units still reservable after the op


def apply(state: StockState, op: StockOp, safety_stock: int) -> Outcome:
    """Apply one op in place. Deterministic: the same state and op always give the same result."""
    last = state.positions.get(op.origin)
    if last is not None and op.seq <= last:  # a pair: (input offset, effect index)
        was_held = op.reservation_id in state.reservations if op.kind == "reserve" else None
        return Outcome(
            changed=False,
            replay=True,
            reserved_ok=was_held,
            free_after=max(0, state.free(safety_stock)) if op.kind == "reserve" else None,
        )
    state.positions[op.origin] = op.seq

    if op.kind == "adjust":
        state.on_hand += op.qty
        return Outcome(changed=op.qty != 0)
    if op.kind == "set":
        changed = state.on_hand != op.qty
        state.on_hand = op.qty
        return Outcome(changed=changed)
    if op.kind == "short":
        short_rid = op.reservation_id or ""
        held = state.reservations.get(short_rid, 0)
        take = min(held, op.qty)
        if take:
            if held - take:
                state.reservations[short_rid] = held - take
            else:
                del state.reservations[short_rid]
        state.on_hand -= op.qty
        return Outcome(changed=op.qty != 0)

    rid = op.reservation_id
    if rid is None:
        raise ValueError(f"{op.kind} op without reservation_id")
    if op.kind == "reserve":
        if rid in state.reservations:
            return Outcome(
                changed=False, replay=True, reserved_ok=True, free_after=state.free(safety_stock)
            )
        if op.qty <= state.free(safety_stock):
            state.reservations[rid] = op.qty
            return Outcome(changed=True, reserved_ok=True, free_after=state.free(safety_stock))
        return Outcome(
            changed=False, reserved_ok=False, free_after=max(0, state.free(safety_stock))
        )
    if op.kind == "release":
        if rid not in state.reservations:
            return Outcome(changed=False)
        held = state.reservations[rid]
        if 0 < op.qty < held:  # a partial release: a line cancellation of some of its units
            state.reservations[rid] = held - op.qty
        else:
            del state.reservations[rid]
        return Outcome(changed=True)
    if op.kind == "consume":
        qty = state.reservations.pop(rid, None)
        if qty is None:
            return Outcome(changed=False)
        state.on_hand -= qty
        return Outcome(changed=True)
    raise ValueError(f"unknown stock op kind {op.kind!r}")


def ops_for_pos_sale(
    *,
    lines: list[tuple[str, int]],
    location_id: str,
    origin: str,
    position: Callable[[], Position],
    event_id: str,
) -> list[StockOp]:
    """A till sale takes its units off on_hand, one op per line; `position` numbers them
    (the runtime's, streams/loop.py Ctx.position)."""
    return [
        StockOp(
            kind="adjust",
            sku=sku,
            location_id=location_id,
            origin=origin,
            seq=position(),
            qty=-qty,
            event_id=event_id,
        )
        for sku, qty in lines
    ]


def ops_for_supplier_feed(
    *,
    feed_type: str,
    lines: list[tuple[str, int]],
    location_id: str,
    origin: str,
    position: Callable[[], Position],
    event_id: str,
) -> list[StockOp]:
    """A receipt adds to on_hand; a stock count sets it."""
    kind: StockOpKind = "set" if feed_type == "stock_count" else "adjust"
    return [
        StockOp(
            kind=kind,
            sku=sku,
            location_id=location_id,
            origin=origin,
            seq=position(),
            qty=qty,
            event_id=event_id,
        )
        for sku, qty in lines
    ]
