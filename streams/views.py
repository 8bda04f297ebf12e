"""Local, read-only copies of small compacted topics that every worker needs in full.

Routing needs every location, a recent availability figure for every SKU at every location and
every location's load; validation needs to know which locations exist. These are small, read far
more often than written, and owned by another agent (one writer per topic), so each worker
follows them from the beginning with a plain consumer outside any consumer group. A view is
*ready* once it has caught up with the end offsets seen at start: /health waits for that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from domain.routing import LoadView
from streams.clock import NetworkClock
from streams.records import Location
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)

#: Records a view applies per turn of the worker's event loop. The views share the loop with
#: the agents, and a `getmany` served from the records already fetched returns without
#: yielding: at routing saturation, chunks of 5,000 availability records held the loop long
#: enough that agents left events queued for 50 ms and more (their held-events guard then
#: processed them, docs/throughput.md). 200 records are a few ms.
VIEW_CHUNK = 200


@dataclass
class CompactedView:
    topic: str
    on_message: Callable[[bytes | None, bytes | None], None]
    kafka: KafkaSettings

    def __post_init__(self) -> None:
        self.ready = asyncio.Event()
        # partition -> offset after the last record applied: /health shows it, so a caller can
        # tell when this worker's copy holds what was produced to the topic up to some point
        self.positions: dict[int, int] = {}

    async def run(self) -> None:
        """Follow the topic until cancelled; reconnects after broker errors."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep following through broker outages
                log.warning("view %s: %s; retrying in 1 s", self.topic, exc)
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            **self.kafka.aiokafka_kwargs(),
            group_id=None,  # no group: every worker reads every partition
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        self.positions = {}  # re-read from the beginning
        try:
            ends: dict[TopicPartition, int] | None = None
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=VIEW_CHUNK)
                for tp, records in batch.items():
                    for rec in records:
                        try:
                            self.on_message(rec.key, rec.value)
                        except Exception as exc:  # noqa: BLE001 - a bad record must not stop the view
                            log.warning(
                                "view %s: skipped record at %s: %s", self.topic, rec.offset, exc
                            )
                    if records:
                        self.positions[tp.partition] = records[-1].offset + 1
                await asyncio.sleep(0)  # the agents' turn (VIEW_CHUNK)
                if self.ready.is_set():
                    continue
                tps = consumer.assignment()
                if not tps:
                    continue
                if ends is None:
                    ends = await consumer.end_offsets(list(tps))
                behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
                if not behind:
                    self.ready.set()
        finally:
            await consumer.stop()


class LocationsView:
    """location_id -> Location; invalid records are skipped here (dead-lettered by its agent)."""

    def __init__(self) -> None:
        self.by_id: dict[str, Location] = {}

    def on_message(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            if key is not None:
                self.by_id.pop(key.decode(), None)
            return
        loc = Location.model_validate_json(value)
        self.by_id[loc.location_id] = loc

    def safety_stock(self, location_id: str) -> int:
        loc = self.by_id.get(location_id)
        return loc.safety_stock if loc else 0


class AvailabilityView:
    """sku -> {location_id: available}: a recent view, corrected by the owner at reservation."""

    def __init__(self) -> None:
        self.by_sku: dict[str, dict[str, int]] = {}

    def on_message(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        d = orjson.loads(value)
        self.set(d["sku"], d["location_id"], d["available"])

    def set(self, sku: str, location_id: str, available: int) -> None:
        self.by_sku.setdefault(sku, {})[location_id] = available

    def take(self, sku: str, location_id: str, qty: int) -> None:
        """Optimistically lower a figure we just reserved, before the owner's update arrives."""
        locs = self.by_sku.setdefault(sku, {})
        locs[location_id] = max(0, locs.get(location_id, 0) - qty)

    def stock_of(self, sku: str) -> dict[str, int]:
        return self.by_sku.get(sku, {})


class BackordersView:
    """sku -> units waiting as backorders (the `backorders` topic): a new order's line for a
    SKU with waiting orders goes behind them (domain/backorders.py)."""

    def __init__(self) -> None:
        self.by_sku: dict[str, int] = {}

    def on_message(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            if key is not None:
                self.by_sku.pop(key.decode(), None)
            return
        d = orjson.loads(value)
        if d["backordered"] > 0:
            self.by_sku[d["sku"]] = d["backordered"]
        else:
            self.by_sku.pop(d["sku"], None)


class LoadsView:
    """location_id -> LoadView from store-load, plus the shipments this worker just routed.
    Each record's `updated_at` (the network time of its owner) feeds `clock` when set."""

    def __init__(self, clock: NetworkClock | None = None) -> None:
        self.by_id: dict[str, LoadView] = {}
        self.clock = clock

    def on_message(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        d = orjson.loads(value)
        self.by_id[d["location_id"]] = LoadView(d["open_orders"], d["open_units"])
        if self.clock is not None and d.get("updated_at"):
            self.clock.observe(datetime.fromisoformat(d["updated_at"]))

    def add(self, location_id: str, units: int) -> None:
        cur = self.by_id.get(location_id, LoadView())
        self.by_id[location_id] = LoadView(cur.open_orders + 1, cur.open_units + units)
