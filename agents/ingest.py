"""Till sales and supplier feeds -> validated stock ops keyed by SKU.

Re-keying by SKU sends every write for a SKU through one partition of the stock agent (one
writer per key). The `seen_events` table drops a repeated event_id: it remembers the position
of the first message that carried the id, so re-reading that same message after a crash still
re-emits its ops (the stock fold drops those by position) while a second message with the same
id is ignored. Ids are remembered for a window of days (domain/dedupe.py); older ones are
pruned, a partition at a time, as its events move into a new period.
"""

from __future__ import annotations

import logging
from itertools import islice, takewhile

from domain import dedupe
from domain.stock import ops_for_pos_sale, ops_for_supplier_feed
from streams.codecs import Rejected
from streams.loop import UNCHANGED, Agent, Ctx, Effect, Put, Send
from streams.records import PosSale, SupplierFeed
from streams.topics import TOPICS

log = logging.getLogger(__name__)
PRUNE_BATCH = 500  # expired ids deleted per event, so pruning never stalls the stream
SEEN = "seen_events"


def agent() -> Agent:
    pruned_through: dict[int, int] = {}  # partition -> period whose expired ids are all gone

    def handle(_state: None, event: PosSale | SupplierFeed, ctx: Ctx) -> tuple[None, list[Effect]]:
        if event.location_id not in ctx.locations.by_id:
            raise Rejected(f"unknown location_id {event.location_id!r}")
        here = f"{ctx.origin}:{ctx.offset}"
        period = dedupe.period_of(ctx.timestamp, ctx.settings.dedupe_days)
        first = next(
            (f for k in dedupe.lookup_keys(period, event.event_id) if (f := ctx.get(SEEN, k))),
            None,
        )
        if first is not None and first != here:
            log.info(
                "duplicate event_id %s at %s (first at %s): ignored", event.event_id, here, first
            )
            return UNCHANGED, []
        lines = [(ln.sku, ln.qty) for ln in event.lines]
        if isinstance(event, PosSale):
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
        effects: list[Effect] = [Send(TOPICS.stock_ops, op.sku, op) for op in ops]
        if first is None:
            effects.append(Put(SEEN, dedupe.key(period, event.event_id), here))
        if pruned_through.get(ctx.partition, -1) < period:
            bound = dedupe.first_kept(period)
            expired = list(islice(takewhile(bound.__gt__, ctx.keys(SEEN)), PRUNE_BATCH))
            effects.extend(Put(SEEN, k, None) for k in expired)
            if len(expired) < PRUNE_BATCH:
                pruned_through[ctx.partition] = period
        return UNCHANGED, effects

    return Agent(
        name="ingest-stock-events",
        inputs=(TOPICS.pos_sales, TOPICS.supplier_feeds),
        handle=handle,
        tables=(SEEN,),
    )
