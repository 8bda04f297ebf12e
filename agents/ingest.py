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
from streams.app import Runtime
from streams.codecs import Rejected, decode
from streams.records import PosSale, SupplierFeed
from streams.topics import TOPICS

log = logging.getLogger(__name__)
PRUNE_BATCH = 500  # expired ids deleted per event, so pruning never stalls the stream


def register(rt: Runtime) -> None:
    app = rt.app
    seen = app.Table("seen_events", default=None, partitions=TOPICS.pos_sales.partitions)
    window = rt.settings.dedupe_days
    pruned_through: dict[int, int] = {}  # partition -> period whose expired ids are all gone
    source = app.topic(
        TOPICS.pos_sales.name,
        TOPICS.supplier_feeds.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(source, name="ingest-stock-events", concurrency=1)
    async def ingest(stream):  # type: ignore[no-untyped-def]
        await rt.wait_views()
        async for event in stream.events():
            if not rt.in_order(event):
                continue
            msg = event.message
            spec = TOPICS.by_name[msg.topic]
            try:
                if spec.handle == "pos_sales":
                    sale = decode(PosSale, msg.value)
                    location_id, event_id = sale.location_id, sale.event_id
                else:
                    feed = decode(SupplierFeed, msg.value)
                    location_id, event_id = feed.location_id, feed.event_id
                if location_id not in rt.locations.by_id:
                    raise Rejected(f"unknown location_id {location_id!r}")
            except Rejected as exc:
                await rt.dead_letter(event, exc.reason)
                continue

            here = f"{spec.code}:{msg.partition}:{msg.offset}"
            period = dedupe.period_of(msg.timestamp, window)
            first = next(
                (f for k in dedupe.lookup_keys(period, event_id) if (f := rt.get(seen, k))), None
            )
            if first is not None and first != here:
                log.info(
                    "duplicate event_id %s at %s (first at %s): ignored", event_id, here, first
                )
                continue
            origin = rt.origin(event)
            if spec.handle == "pos_sales":
                ops = ops_for_pos_sale(
                    lines=[(ln.sku, ln.qty) for ln in sale.lines],
                    location_id=location_id,
                    origin=origin,
                    offset=msg.offset,
                    event_id=event_id,
                )
            else:
                ops = ops_for_supplier_feed(
                    feed_type=feed.type,
                    lines=[(ln.sku, ln.qty) for ln in feed.lines],
                    location_id=location_id,
                    origin=origin,
                    offset=msg.offset,
                    event_id=event_id,
                )
            for op in ops:
                await rt.send("stock_ops", op.sku, op.to_dict())
            if first is None:
                await rt.put(seen, dedupe.key(period, event_id), here)
            if pruned_through.get(msg.partition, -1) < period:
                bound = dedupe.first_kept(period)
                expired = list(
                    islice(takewhile(bound.__gt__, rt.partition_keys(seen)), PRUNE_BATCH)
                )
                for k in expired:
                    await rt.put(seen, k, None)
                if len(expired) < PRUNE_BATCH:
                    pruned_through[msg.partition] = period
