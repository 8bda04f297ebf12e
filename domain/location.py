"""A location's owner: its stock per SKU and its capacity, changed together, atomically.

Stock and capacity are partitioned by location (stockroute-location-ops, keyed by location_id),
so one owner (one partition, one agent) holds every SKU of a location *and* its `max_backlog`
slots. Giving a shipment to a location is then one message to one owner, which grants all of
it or nothing: a slot (open shipments < max_backlog) and every line's units (free >= qty). A
limit is a reservation, not a reading: the `store-load` view that routing scores with may lag,
the owner never does.

`Working` is the set of records one input (or a batch of inputs) touches: read once from the
tables, changed in place by the pure functions here, and written back once per changed key.
Idempotency is the stock fold's (positions per origin, reservation ids) and the load fold's
(positions, one record per shipment): see domain/stock.py and domain/load.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from domain import load, stock
from domain.load import LoadState, Shipment
from domain.stock import StockState
from streams.records import LoadOp, ReleaseShipment, ReserveShipment, StockOp


@dataclass
class Working:
    """The records of one location that an input reads and changes; loaded lazily."""

    location_id: str
    partition: int  # of the inputs that carry this location: where its records are written
    safety: int  # the location's safety stock (availability is net of it)
    read_stock: Callable[[str], StockState | None]  # sku -> state (None: never seen)
    read_load: Callable[[], LoadState]
    read_shipment: Callable[[str], Shipment | None]  # shipment_id -> record
    stocks: dict[str, StockState] = field(default_factory=dict)
    before: dict[str, int] = field(default_factory=dict)  # available when first read
    supplied: set[str] = field(default_factory=set)  # SKUs counted, received or returned
    released_by: dict[str, set[str]] = field(default_factory=dict)  # SKU -> releasing orders
    new_skus: set[str] = field(default_factory=set)  # first seen here: published even if 0
    changed_stock: set[str] = field(default_factory=set)  # to write
    resupplied: set[str] = field(default_factory=set)  # supply ops re-read (see stock_came_back)
    published: set[str] = field(default_factory=set)  # availability to publish
    _load: LoadState | None = None
    load_changed: bool = False  # the location record is to write
    load_touched: bool = False  # store-load is to publish
    shipments: dict[str, Shipment | None] = field(default_factory=dict)
    changed_shipments: set[str] = field(default_factory=set)

    def stock(self, sku: str) -> StockState:
        st = self.stocks.get(sku)
        if st is None:
            found = self.read_stock(sku)
            if found is None:
                found = StockState()
                self.new_skus.add(sku)
            st = self.stocks[sku] = found
            self.before[sku] = found.available(self.safety)
        return st

    @property
    def load(self) -> LoadState:
        if self._load is None:
            self._load = self.read_load()
        return self._load

    def shipment(self, shipment_id: str) -> Shipment | None:
        if shipment_id not in self.shipments:
            self.shipments[shipment_id] = self.read_shipment(shipment_id)
        return self.shipments[shipment_id]


@dataclass(frozen=True)
class Answer:
    """The owner's answer to a ReserveShipment."""

    ok: bool
    saturated: bool = False
    free: dict[str, int] = field(default_factory=dict)  # short lines -> units still reservable


def apply_stock(w: Working, op: StockOp, safety: int) -> stock.Outcome:
    """One stock op on the location's SKU (the stock fold), noting what to write and publish."""
    st = w.stock(op.sku)
    outcome = stock.apply(st, op, safety)
    if outcome.changed and op.kind in ("adjust", "set"):
        w.supplied.add(op.sku)
    elif outcome.changed and op.kind == "release":
        w.released_by.setdefault(op.sku, set()).add(op.order_id or "")
    if not outcome.replay:
        w.changed_stock.add(op.sku)
    elif op.kind in ("set", "release") or (op.kind == "adjust" and op.qty > 0):
        w.resupplied.add(op.sku)  # re-read after a crash: its signal may be lost
        if op.kind == "release":
            w.released_by.setdefault(op.sku, set()).add(op.order_id or "")
        else:
            w.supplied.add(op.sku)
    if outcome.changed or outcome.replay or op.sku in w.new_skus:
        w.published.add(op.sku)
    return outcome


def stock_came_back(w: Working, sku: str, available: int) -> bool:
    """Whether the SKU's backorder queue is told that units are available (domain/backorders.py).

    When availability went up in this batch; and when an op that can make units available was
    re-read after a crash (a replay: it changes nothing now, but the worker that applied it may
    have died before its signal was flushed, and a queue that never hears of the units leaves its
    orders waiting with the stock on the shelf). A signal too many only hands the head of the
    queue a turn it answers with `wait`."""
    return available > w.before.get(sku, 0) or (sku in w.resupplied and available > 0)


def given_back_by(w: Working, sku: str) -> str | None:
    """The one order whose released reservations are the only cause of the SKU's availability
    going up in this batch (None: a receipt, count or return, or several orders): a backorder
    turn's own give-back must not hand the same order its turn again (domain/backorders.py)."""
    by = w.released_by.get(sku, set())
    if sku in w.supplied or len(by) != 1:
        return None
    return next(iter(by)) or None


def apply_load(w: Working, op: LoadOp) -> None:
    """One load op (domain/load.py), noting the records to write."""
    # a step reads its shipment only when it puts it on the pickup shelf (no longer due)
    shelved = op.kind == "step" and (op.step or "").endswith("->ready_for_pickup")
    shipment = w.shipment(op.shipment_id) if op.kind != "step" or shelved else None
    outcome = load.apply(w.load, op, shipment)
    if outcome.changed:
        w.load_changed = True
    if outcome.shipment is not None:
        w.shipments[op.shipment_id] = outcome.shipment
        w.changed_shipments.add(op.shipment_id)
    w.load_touched = True


def reserve_shipment(w: Working, op: ReserveShipment, max_backlog: int, safety: int) -> Answer:
    """Grant the shipment a slot and every line's units, or nothing.

    Re-reading an op already granted (a crash before the commit) answers ok again without
    taking anything twice: its slot is its shipment record, its units its reservation ids."""
    holder = w.shipment(op.shipment_id)
    has_slot = holder is not None and not holder.closed
    last = w.load.positions.get(op.origin)
    replayed_slot = last is not None and op.seq <= last
    held = has_slot and all(
        _rid(op.shipment_id, line.sku) in w.stock(line.sku).reservations for line in op.lines
    )
    if replayed_slot and not held:
        # a re-read of an ask this owner does not hold now (refused then, or granted and given
        # back since: its order decided again elsewhere after a crash). Its position says it
        # was applied, so "granting" it would take nothing: answer no, with what is free, and
        # the order plans again under a new shipment id (and position).
        return Answer(
            ok=False, free={ln.sku: max(0, w.stock(ln.sku).free(safety)) for ln in op.lines}
        )
    saturated = not has_slot and w.load.open_orders >= max_backlog  # (a replay holds its slot)
    free: dict[str, int] = {}
    for line in op.lines:
        st = w.stock(line.sku)
        rid = _rid(op.shipment_id, line.sku)
        if rid not in st.reservations and st.free(safety) < line.qty:
            free[line.sku] = max(0, st.free(safety))
    if saturated or free:
        return Answer(ok=False, saturated=saturated, free=free)
    for line in op.lines:
        apply_stock(
            w,
            StockOp(
                kind="reserve",
                sku=line.sku,
                location_id=op.location_id,
                origin=op.origin,
                seq=op.seq,
                qty=line.qty,
                reservation_id=_rid(op.shipment_id, line.sku),
                order_id=op.order_id,
            ),
            safety,
        )
    units = float(sum(line.qty for line in op.lines))
    apply_load(
        w,
        LoadOp(
            kind="open",
            location_id=op.location_id,
            shipment_id=op.shipment_id,
            origin=op.origin,
            seq=op.seq,
            at=op.at,
            units=units,
            due=op.due,
        ),
    )
    return Answer(ok=True)


def release_shipment(w: Working, op: ReleaseShipment, safety: int) -> None:
    """Give back a shipment's units and its slot (idempotent: ids and the shipment record)."""
    for sku in op.skus:
        apply_stock(
            w,
            StockOp(
                kind="release",
                sku=sku,
                location_id=op.location_id,
                origin=op.origin,
                seq=op.seq,
                reservation_id=_rid(op.shipment_id, sku),
                order_id=op.order_id,
            ),
            safety,
        )
    apply_load(
        w,
        LoadOp(
            kind="close",
            location_id=op.location_id,
            shipment_id=op.shipment_id,
            origin=op.origin,
            seq=op.seq,
            at=0.0,
        ),
    )


def _rid(shipment_id: str, sku: str) -> str:
    """A shipment's reservation of one SKU (domain/orders.py Shipment.rid)."""
    return f"{shipment_id}/{sku}"
