"""The location owner: sole writer of a location's stock, its capacity and its load, and of
stock-availability and store-load.

Everything that changes a location arrives keyed by location_id on one partition: till sales
and supplier feeds straight from their topics (the fold is one hop), and the internal
location-ops topic (shipments reserved and released, stock ops of the store workflow and
returns, load steps, a safety-stock resync). So one agent applies them in order, and giving a
shipment to a location (a slot of its max_backlog and every line's units) is atomic here:
domain/location.py. A repeated event_id on the inputs is dropped by the `seen_events` table,
which remembers the position of the first message that carried the id for a window of days
(domain/dedupe.py); re-reading that same message after a crash still re-applies it, and the
positions make that a no-op. The ids are local keys; the changelog gets one chunk of ids per
batch, input origin and period, from which recovery rebuilds them (domain/dedupe.py says why
nothing is lost).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from itertools import islice, takewhile
from typing import Any, Literal

from domain import dedupe
from domain.load import LoadState, Shipment, snapshot
from domain.location import (
    Working,
    apply_load,
    apply_stock,
    given_back_by,
    release_shipment,
    reserve_shipment,
    stock_came_back,
)
from domain.stock import StockState, ops_for_pos_sale, ops_for_supplier_feed, stock_key
from streams.app import Runtime
from streams.codecs import Rejected
from streams.loop import UNCHANGED, Agent, Batch, Ctx, Effect, Put, Send
from streams.records import (
    BackorderOp,
    LoadOp,
    PosSale,
    ReleaseShipment,
    ReservationResult,
    ReserveShipment,
    ResyncLocation,
    ShipmentReservation,
    StockAvailability,
    StockOp,
    SupplierFeed,
)
from streams.topics import TOPICS

log = logging.getLogger(__name__)
PRUNE_BATCH = 500  # expired ids deleted per event, so pruning never stalls the stream
REFRESH_S = 5.0  # ages grow while nothing happens: republish busy locations this often
STOCK = "location_stock"
SEEN = "seen_events"
LOAD = "location_load"
SHIPMENTS = "load_shipments"

OwnerInput = (
    PosSale | SupplierFeed | StockOp | ResyncLocation | ReserveShipment | ReleaseShipment | LoadOp
)


def _working(ctx: Ctx, location_id: str) -> Working:
    """The location's working set for this batch: made at its first input, then shared by the
    batch's later inputs for it (all on one partition: inputs are keyed by location)."""
    w: Working | None = ctx.batch.scratch.get(location_id)
    if w is not None:
        return w

    def read_stock(sku: str) -> StockState | None:
        raw = ctx.get(STOCK, stock_key(sku, location_id))
        return None if raw is None else StockState.from_dict(raw)

    w = ctx.batch.scratch[location_id] = Working(
        location_id=location_id,
        partition=ctx.partition,
        safety=ctx.locations.safety_stock(location_id),
        read_stock=read_stock,
        read_load=lambda: LoadState.from_dict(ctx.get(LOAD, location_id)),
        read_shipment=lambda sid: Shipment.from_list(ctx.get(SHIPMENTS, f"{sid}@{location_id}")),
    )
    return w


@dataclass
class _SeenChunk:
    """The event ids a batch saw first, of one input origin and period: one changelog record."""

    key: str
    period: int
    partition: int
    ids: list[list[Any]] = field(default_factory=list)  # [event_id, offset]


@dataclass
class _NewIds:
    """The event ids a batch saw first in one partition: local keys (id key -> first
    position), looked up by the batch's later inputs here before the store, and written by
    the flush as one write batch (a RocksDB put each cost ~8 % of the fold)."""

    partition: int
    ids: dict[str, str] = field(default_factory=dict)


def _new_ids(ctx: Ctx) -> _NewIds:
    new: _NewIds | None = ctx.batch.scratch.get((SEEN, ctx.partition))
    if new is None:
        new = ctx.batch.scratch[(SEEN, ctx.partition)] = _NewIds(ctx.partition)
    return new


def _seen_chunk(ctx: Ctx, period: int) -> _SeenChunk:
    chunk: _SeenChunk | None = ctx.batch.scratch.get((SEEN, period, ctx.origin))
    if chunk is None:
        key = dedupe.chunk_key(period, ctx.origin, ctx.offset)
        chunk = _SeenChunk(key, period, ctx.partition)
        ctx.batch.scratch[(SEEN, period, ctx.origin)] = chunk
    return chunk


def flush(batch: Batch, pruned: Mapping[int, int] | None = None) -> list[Effect]:
    """Per location of the batch: each changed record written once, each changed availability
    and the location's load published once; the batch's new event ids as one record per input
    origin and period, unless a later input of the batch already pruned that period (`pruned`:
    partition -> period pruned for; its ids' local keys went with it)."""
    out: list[Effect] = []
    for w in batch.scratch.values():
        if isinstance(w, _SeenChunk):
            if w.period >= (pruned or {}).get(w.partition, -1) - 1:
                out.append(Put(SEEN, w.key, w.ids, w.partition))
        elif isinstance(w, _NewIds):  # but not those of a period pruned meanwhile
            since = (pruned or {}).get(w.partition)
            bound = "" if since is None else dedupe.first_kept(since)
            out.extend(
                Put(SEEN, k, here, w.partition, local=True)
                for k, here in w.ids.items()
                if k >= bound
            )
        else:
            out.extend(_flush(w, batch))
    return out


def _flush(w: Working, batch: Batch) -> list[Effect]:
    loc, part = w.location_id, w.partition
    out: list[Effect] = []
    for sku in sorted(w.changed_stock):
        out.append(Put(STOCK, stock_key(sku, loc), w.stocks[sku].to_dict(), part))
    if w.load_changed:  # before the shipment records: it holds the positions (domain/load.py)
        out.append(Put(LOAD, loc, w.load.to_dict(), part))
    for sid in sorted(w.changed_shipments):
        record = w.shipments[sid]
        if record is not None:
            out.append(Put(SHIPMENTS, f"{sid}@{loc}", record.to_list(), part))
    at = batch.clock.at()  # network time: the batch's inputs are observed by now
    signal = batch.policy.backorder.anywhere
    for sku in sorted(w.published):
        st = w.stocks[sku]
        available = st.available(w.safety)
        batch.availability.set(sku, loc, available)
        if signal and stock_came_back(w, sku, available):
            # a receipt, count, return or release made units available: the SKU's backorder
            # queue hands the next waiting order its turn (domain/backorders.py)
            up = BackorderOp(
                kind="stock_up",
                sku=sku,
                location_id=loc,
                qty=available,
                order_id=given_back_by(w, sku),
            )
            out.append(Send(TOPICS.backorder_ops, sku, up))
        out.append(
            Send(
                TOPICS.stock_availability,
                stock_key(sku, loc),
                StockAvailability(
                    sku=sku,
                    location_id=loc,
                    on_hand=st.on_hand,
                    reserved=st.reserved,
                    available=available,
                    updated_at=at,
                ),
            )
        )
    if w.load_touched:
        load = snapshot(loc, w.load, batch.locations.by_id.get(loc), at.timestamp())
        out.append(Send(TOPICS.store_load, loc, load))
    return out


def agent() -> Agent:
    pruned_through: dict[int, int] = {}  # partition -> period whose expired ids are all gone

    def ingest(event: PosSale | SupplierFeed, ctx: Ctx) -> list[Effect]:
        """A till sale or supplier feed: dropped when its event_id was seen before, else folded."""
        if event.location_id not in ctx.locations.by_id:
            raise Rejected(f"unknown location_id {event.location_id!r}")
        w = _working(ctx, event.location_id)
        here = ctx.here
        period = dedupe.period_of(ctx.timestamp, ctx.settings.dedupe_days)
        new = _new_ids(ctx)
        first = next(
            (
                f
                for k in dedupe.lookup_keys(period, event.event_id)
                if (f := new.ids.get(k) or ctx.get(SEEN, k))
            ),
            None,
        )
        if first is not None and first != here:
            log.info(
                "duplicate event_id %s at %s (first at %s): ignored", event.event_id, here, first
            )
            return []
        lines = [(ln.sku, ln.qty) for ln in event.lines]
        effects: list[Effect] = []
        if isinstance(event, SupplierFeed) and ctx.policy.backorder.anywhere:
            effects.extend(_supply_news(event))
        if isinstance(event, SupplierFeed) and event.type == "expected_receipt":
            ops: list[StockOp] = []  # announced, not there: no stock change
        elif isinstance(event, PosSale):
            ops = ops_for_pos_sale(
                lines=lines,
                location_id=event.location_id,
                origin=ctx.origin,
                position=ctx.position,
                event_id=event.event_id,
            )
        else:
            ops = ops_for_supplier_feed(
                feed_type=event.type,
                lines=lines,
                location_id=event.location_id,
                origin=ctx.origin,
                position=ctx.position,
                event_id=event.event_id,
            )
        for op in ops:
            apply_stock(w, op, w.safety)
        if first is None:  # a local key (a repeat later in this batch sees it), chunked
            new.ids[dedupe.key(period, event.event_id)] = here
            _seen_chunk(ctx, period).ids.append([event.event_id, ctx.offset])
        if pruned_through.get(ctx.partition, -1) < period:
            bound = dedupe.first_kept(period)
            expired = list(islice(takewhile(bound.__gt__, ctx.keys(SEEN)), PRUNE_BATCH))
            for k in expired:
                if dedupe.is_chunk(k):  # a changelogged record: a tombstone
                    effects.append(Put(SEEN, k, None))
                else:  # an id key: local (ids changelogged one by one before chunks stay
                    ctx.put_local(SEEN, k, None)  # in the changelog, and are pruned again)
            if len(expired) < PRUNE_BATCH:
                pruned_through[ctx.partition] = period
        return effects

    def resync(w: Working, msg: ResyncLocation, ctx: Ctx) -> None:
        """A location's safety stock changed (agents/locations.py): its availability changed
        for every SKU it holds; re-published between this location's ops, so it can never
        overtake a newer value."""
        suffix = "@" + msg.location_id
        w.safety = msg.safety_stock
        w.published.update(w.stocks)  # those this batch touched may not be stored yet
        for key in ctx.keys(STOCK):
            if key.endswith(suffix):
                w.stock(key[: -len(suffix)])
                w.published.add(key[: -len(suffix)])

    def handle(_state: None, msg: OwnerInput, ctx: Ctx) -> tuple[None, list[Effect]]:
        """Fold the input into its location's working set (flushed once per batch); effects now
        only for what is not a record of the location (answers, dedupe ids)."""
        if isinstance(msg, PosSale | SupplierFeed):
            return UNCHANGED, ingest(msg, ctx)
        loc = msg.location_id
        w = _working(ctx, loc)
        effects: list[Effect] = []
        if isinstance(msg, StockOp):
            outcome = apply_stock(w, msg, w.safety)
            if msg.kind == "reserve" and msg.order_id and msg.reservation_id:  # before 2026-11
                answer = ReservationResult(
                    order_id=msg.order_id,
                    reservation_id=msg.reservation_id,
                    sku=msg.sku,
                    location_id=loc,
                    qty=msg.qty,
                    ok=bool(outcome.reserved_ok),
                    free_after=outcome.free_after,
                )
                effects.append(Send(TOPICS.order_commands, msg.order_id, answer))
        elif isinstance(msg, ReserveShipment):
            known = ctx.locations.by_id.get(loc)
            granted = reserve_shipment(w, msg, known.max_backlog if known else 0, w.safety)
            reply = ShipmentReservation(
                order_id=msg.order_id,
                shipment_id=msg.shipment_id,
                location_id=loc,
                ok=granted.ok,
                skus=[ln.sku for ln in msg.lines],
                saturated=granted.saturated,
                free=granted.free,
            )
            effects.append(Send(TOPICS.order_commands, msg.order_id, reply))
        elif isinstance(msg, ReleaseShipment):
            release_shipment(w, msg, w.safety)
        elif isinstance(msg, LoadOp):
            apply_load(w, msg)
        else:
            resync(w, msg, ctx)
        return UNCHANGED, effects

    return Agent(
        name="location-owner",
        inputs=(TOPICS.pos_sales, TOPICS.supplier_feeds, TOPICS.location_ops),
        handle=handle,
        tables=(STOCK, SEEN, LOAD, SHIPMENTS),
        keyed_by="location_id",
        timers=((REFRESH_S, _refresher),),
        flush=partial(flush, pruned=pruned_through),
        batched=True,
        local_keys={SEEN: dedupe.index_entries},
    )


def _supply_news(feed: SupplierFeed) -> list[Effect]:
    """To each SKU's backorder queue: supply announced (preorders are accepted on it) or
    received (it settles what was announced there), domain/backorders.py."""
    if feed.type == "stock_count":
        return []
    due = feed.expected_date.timestamp() if feed.expected_date else 0.0
    kind: Literal["expect", "arrived"] = "expect" if feed.type == "expected_receipt" else "arrived"
    return [
        Send(
            TOPICS.backorder_ops,
            ln.sku,
            BackorderOp(
                kind=kind,
                sku=ln.sku,
                location_id=feed.location_id,
                qty=ln.qty,
                since=due,
                ref=feed.event_id,
            ),
        )
        for ln in feed.lines
    ]


def _refresher(rt: Runtime) -> Callable[[], Awaitable[None]]:
    async def refresh_ages() -> None:
        now = rt.clock.timestamp()
        if now is None:
            return  # no network time yet: ages cannot be told
        for location_id, raw in list(rt.tables[LOAD].items()):
            state = LoadState.from_dict(raw)
            if state.open_orders:
                loc = rt.locations.by_id.get(location_id)
                record = snapshot(location_id, state, loc, now)
                await rt.send(TOPICS.store_load, location_id, record)

    return refresh_ages
