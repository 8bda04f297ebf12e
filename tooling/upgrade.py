"""`stockroute upgrade`: from stock partitioned by SKU (before 2026-11) to the location owner.

Before, stock lived in the `stock` table, written by a stock agent fed by
`stockroute-stock-ops` keyed by SKU, and store load in tables fed by `stockroute-load-ops`. Now
one location owner holds both, partitioned by location (`location_stock`,
`stockroute-location-ops`). The load tables keep their keys and partitions (they were keyed by
location already); the stock table's keys move to their location's partition. Run this once,
with every worker stopped and after `stockroute topics` created the new topics:

1. every stock record of the old `stock` changelog (its latest value per key) is written to the
   `location_stock` changelog, in the partition of its location, where the owner's recovery
   reads it;
2. every op the old agents had not consumed yet (after the group's committed offsets on
   `stockroute-stock-ops` and `stockroute-load-ops`) is sent again to `stockroute-location-ops`,
   keyed by its location: the owner applies it once (positions and reservation ids make a
   repeat a no-op; integer positions of the old format are read as `divmod(n, 1000)`).

It refuses to write into a `location_stock` changelog that already holds records (an upgrade
done, or workers already running the new layout), so running it twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from streams.codecs import Rejected
from streams.settings import KafkaSettings
from streams.topic_reader import TopicReader
from streams.topics import TOPIC_PREFIX, TOPICS

OLD_STOCK_OPS = "stockroute-stock-ops"
OLD_LOAD_OPS = "stockroute-load-ops"


class UpgradeRefused(Exception):
    """The upgrade cannot run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Report:
    stock_records: int
    ops_resent: int
    ops_unreadable: int

    def __str__(self) -> str:
        return (
            f"upgraded: {self.stock_records} stock records moved to their location's partition, "
            f"{self.ops_resent} unconsumed ops re-sent to {TOPICS.location_ops.name}"
            + (f", {self.ops_unreadable} unreadable ops skipped" if self.ops_unreadable else "")
        )


def partition_of(location_id: str, partitions: int) -> int:
    """The partition the producer gives a message keyed by `location_id` (murmur2, as Faust,
    aiokafka and the Java clients do)."""
    return (murmur2(location_id.encode()) & 0x7FFFFFFF) % partitions


async def upgrade(kafka: KafkaSettings, app_id: str, *, dry_run: bool = False) -> Report:
    old_changelog = f"{app_id}-stock-changelog"
    new_changelog = f"{app_id}-location_stock-changelog"
    old_ops = [TOPIC_PREFIX + OLD_STOCK_OPS, TOPIC_PREFIX + OLD_LOAD_OPS]
    parts = TOPICS.location_ops.partitions
    async with TopicReader(kafka, group_id=app_id) as reader:
        ends = await reader.end_offsets([new_changelog])
        if not ends:
            raise UpgradeRefused(f"{new_changelog} does not exist: run `stockroute topics` first")
        if any(ends.values()):
            raise UpgradeRefused(
                f"{new_changelog} already holds records: already upgraded (nothing to do)"
            )
        latest: dict[bytes, bytes | None] = {}
        for rec in await reader.read_to_end([old_changelog]):
            if rec.key is not None:
                latest[rec.key] = rec.value
        stock = {k: v for k, v in latest.items() if v is not None}
        pending: list[tuple[str, bytes]] = []
        unreadable = 0
        tps = await reader.partitions(old_ops)
        if tps:
            reader.consumer.assign(tps)
            committed = {tp: await reader.consumer.committed(tp) for tp in tps}
            ends_old = await reader.consumer.end_offsets(tps)
            for tp in tps:
                start = committed[tp] or 0
                if start >= ends_old[tp]:
                    continue
                reader.consumer.seek(tp, start)
                while await reader.consumer.position(tp) < ends_old[tp]:
                    batch = await reader.consumer.getmany(tp, timeout_ms=500, max_records=5000)
                    for rec in batch.get(tp, []):
                        if rec.offset >= ends_old[tp]:
                            break
                        try:
                            op = TOPICS.location_ops.decode(rec.value)
                        except Rejected:
                            unreadable += 1
                            continue
                        pending.append((op.location_id, TOPICS.location_ops.encode(op)))
    if dry_run:
        return Report(len(stock), len(pending), unreadable)
    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in stock.items():
            location_id = str(orjson.loads(key)).rsplit("@", 1)[1]
            await producer.send(
                new_changelog, value, key=key, partition=partition_of(location_id, parts)
            )
        for location_id, value in pending:
            await producer.send(TOPICS.location_ops.name, value, key=location_id.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return Report(len(stock), len(pending), unreadable)


__all__ = ["Report", "UpgradeRefused", "partition_of", "upgrade"]
