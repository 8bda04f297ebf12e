"""Read Kafka topics outside any consumer group, through public aiokafka API only.

Why one module: the simulator, the dashboard, the benchmarks and the integration tests all ask
"what is in this topic now" (its end offsets, or every message up to them) or "follow this topic
from here". Written once, the reader never commits and never takes a partition from a consumer
group, connects with the same `KafkaSettings` as every other client (SASL, SSL), and learns a
topic's partitions from fresh cluster metadata (the admin client's `describe_topics`) rather than
the consumer's private client: a topic created after the reader started is seen at the next call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.settings import KafkaSettings

__all__ = ["TopicReader", "end_offsets", "partitions_of", "read_to_end"]

_ADMIN_OPTIONS = ("client_id", "request_timeout_ms", "retry_backoff_ms", "metadata_max_age_ms")
"""Consumer options that also apply to the reader's admin client (same timeouts, same name)."""


def partitions_of(
    described: Iterable[Mapping[str, Any]], topics: Iterable[str]
) -> list[TopicPartition]:
    """The partitions of `topics` found in `describe_topics` output, sorted.

    A topic that is missing, or that answers with an error (still being created, not
    authorised), has no partitions yet: callers treat it as empty and may ask again later."""
    wanted = set(topics)
    found = [
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t["topic"] in wanted and t["error_code"] == 0
        for p in t["partitions"]
    ]
    return sorted(found)


class TopicReader:
    """One group-less consumer plus the topic metadata to aim it; an async context manager.

    `consumer` is the started AIOKafkaConsumer for callers that keep following what they
    assigned (`getmany`, `position`, `seek`): it is created with `group_id=None` and without
    auto-commit, plus any `consumer_options` given here."""

    def __init__(self, settings: KafkaSettings, **consumer_options: Any) -> None:
        self.settings = settings
        self._options = consumer_options
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("TopicReader not started")
        return self._consumer

    async def start(self) -> None:
        kafka = self.settings.aiokafka_kwargs()
        admin_options = {k: v for k, v in self._options.items() if k in _ADMIN_OPTIONS}
        consumer = AIOKafkaConsumer(
            **{**kafka, "group_id": None, "enable_auto_commit": False, **self._options}
        )
        admin = AIOKafkaAdminClient(**kafka, **admin_options)
        try:
            await consumer.start()
            await admin.start()
        except BaseException:
            await consumer.stop()
            await admin.close()
            raise
        self._consumer, self._admin = consumer, admin

    async def stop(self) -> None:
        consumer, admin = self._consumer, self._admin
        self._consumer = self._admin = None
        try:
            if consumer is not None:
                await consumer.stop()
        finally:
            if admin is not None:
                await admin.close()

    async def __aenter__(self) -> TopicReader:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        """Every partition of those `topics` that exist now (see `partitions_of`)."""
        return partitions_of(await self._describe(), topics)

    async def end_offsets(self, topics: Iterable[str]) -> dict[TopicPartition, int]:
        """Per partition of `topics`, the offset the next message will get (0 when empty)."""
        tps = await self.partitions(topics)
        return dict(await self.consumer.end_offsets(tps)) if tps else {}

    async def assign(
        self, topics: Iterable[str], *, start: Literal["beginning", "end"]
    ) -> list[TopicPartition]:
        """Assign every partition of `topics` (replacing the assignment) from `start`.

        Positions are resolved before returning, so `start="end"` misses nothing written
        after this call (a lazily resolved "latest" would skip what arrives meanwhile)."""
        tps = await self.partitions(topics)
        self.consumer.assign(tps)
        if not tps:
            return tps
        if start == "beginning":
            await self.consumer.seek_to_beginning(*tps)
        else:
            await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)
        return tps

    async def read_to_end(
        self, topics: Iterable[str], *, timeout_s: float = 60.0
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """Every message of `topics` from the beginning up to the end offsets seen at the call,
        in offset order per partition. Positions, not message counts, say when it is done:
        compaction gaps and transaction markers never arrive as messages."""
        tps = await self.assign(topics, start="beginning")
        if not tps:
            return []
        ends = await self.consumer.end_offsets(tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(timeout_s):
            while True:
                behind = [tp for tp in tps if await self.consumer.position(tp) < ends[tp]]
                if not behind:
                    return out
                batch = await self.consumer.getmany(*behind, timeout_ms=300, max_records=10_000)
                for tp in behind:
                    out.extend(r for r in batch.get(tp, ()) if r.offset < ends[tp])

    async def _describe(self) -> list[dict[str, Any]]:
        if self._admin is None:
            raise RuntimeError("TopicReader not started")
        # every topic, not only the wanted ones: naming a missing topic in a metadata request
        # can auto-create it on a broker that allows that, and a reader must not create topics
        return list(await self._admin.describe_topics())


async def read_to_end(
    settings: KafkaSettings, topics: Iterable[str], *, timeout_s: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """One-shot `TopicReader.read_to_end` with a reader of its own."""
    async with TopicReader(settings) as reader:
        return await reader.read_to_end(topics, timeout_s=timeout_s)


async def end_offsets(settings: KafkaSettings, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """One-shot `TopicReader.end_offsets` with a reader of its own."""
    async with TopicReader(settings) as reader:
        return await reader.end_offsets(topics)
