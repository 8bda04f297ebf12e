"""streams/topic_reader.py against in-memory stand-ins for aiokafka's consumer and admin client.

The real broker path is covered by every integration test that reads a topic (harness.read_raw);
these pin what the broker alone cannot show quickly: the connection options reach both clients,
missing and errored topics read as empty, and "the end" is the end seen at the call, reached by
position even when compaction left the last offsets without messages.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams import topic_reader
from streams.settings import KafkaSettings
from streams.topic_reader import TopicReader, partitions_of

TP0, TP1 = TopicPartition("t", 0), TopicPartition("t", 1)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None


class FakeLog:
    """Per partition: the offsets that still hold a message, and the end offset."""

    def __init__(self) -> None:
        self.offsets: dict[TopicPartition, list[int]] = {}
        self.ends: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, offsets: list[int], end: int | None = None) -> None:
        self.offsets[tp] = offsets
        self.ends[tp] = end if end is not None else (offsets[-1] + 1 if offsets else 0)

    def described(self) -> list[dict[str, Any]]:
        topics: dict[str, list[int]] = {}
        for tp in self.offsets:
            topics.setdefault(tp.topic, []).append(tp.partition)
        return [
            {"topic": t, "error_code": 0, "partitions": [{"partition": p} for p in ps]}
            for t, ps in topics.items()
        ]


LOG = FakeLog()
CREATED: list[tuple[str, dict[str, Any]]] = []


class FakeConsumer:
    def __init__(self, **kw: Any) -> None:
        CREATED.append(("consumer", kw))
        self.assigned: list[TopicPartition] = []
        self.pos: dict[TopicPartition, int] = {}
        self.stopped = False

    async def start(self) -> None: ...

    async def stop(self) -> None:
        self.stopped = True

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = list(tps)

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.pos[tp] = 0

    async def seek_to_end(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.pos[tp] = LOG.ends[tp]

    async def position(self, tp: TopicPartition) -> int:
        return self.pos[tp]

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: LOG.ends[tp] for tp in tps}

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Rec]]:
        out: dict[TopicPartition, list[Rec]] = {}
        for tp in tps or self.assigned:
            recs = [Rec(tp.topic, tp.partition, o) for o in LOG.offsets[tp] if o >= self.pos[tp]]
            recs = recs[:2]  # small fetches: the reader must loop
            if recs:
                out[tp] = recs
                self.pos[tp] = recs[-1].offset + 1
            else:
                self.pos[tp] = LOG.ends[tp]  # the fetch moves past a compacted tail
        return out


class FakeAdmin:
    def __init__(self, **kw: Any) -> None:
        CREATED.append(("admin", kw))

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def describe_topics(self, topics: list[str] | None = None) -> list[dict[str, Any]]:
        assert topics is None, "naming a topic in a metadata request may auto-create it"
        return LOG.described()


@pytest.fixture(autouse=True)
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    global LOG
    LOG = FakeLog()
    CREATED.clear()
    monkeypatch.setattr(topic_reader, "AIOKafkaConsumer", FakeConsumer)
    monkeypatch.setattr(topic_reader, "AIOKafkaAdminClient", FakeAdmin)


def read(topics: list[str], **kw: Any) -> list[Any]:
    return asyncio.run(topic_reader.read_to_end(KafkaSettings(), topics, **kw))


def test_partitions_of_skips_missing_and_errored_topics_and_sorts() -> None:
    described = [
        {"topic": "b", "error_code": 0, "partitions": [{"partition": 1}, {"partition": 0}]},
        {"topic": "a", "error_code": 0, "partitions": [{"partition": 0}]},
        {"topic": "creating", "error_code": 5, "partitions": []},
        {"topic": "other", "error_code": 0, "partitions": [{"partition": 0}]},
    ]
    got = partitions_of(described, ["b", "a", "creating", "missing"])
    assert got == [TopicPartition("a", 0), TopicPartition("b", 0), TopicPartition("b", 1)]


def test_consumer_and_admin_connect_with_the_settings_and_the_consumer_joins_no_group() -> None:
    settings = KafkaSettings(
        bootstrap="h:1",
        security_protocol="SASL_PLAINTEXT",
        sasl_username="u",
        sasl_password="p",
    )

    async def go() -> None:
        async with TopicReader(settings, client_id="me", max_poll_records=7):
            pass

    asyncio.run(go())
    (_, consumer), (_, admin) = CREATED
    for kw in (consumer, admin):
        assert kw["bootstrap_servers"] == "h:1" and kw["security_protocol"] == "SASL_PLAINTEXT"
        assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("u", "p")
        assert kw["client_id"] == "me"
    assert consumer["group_id"] is None and consumer["enable_auto_commit"] is False
    assert consumer["max_poll_records"] == 7 and "max_poll_records" not in admin


def test_read_to_end_reads_every_partition_in_order_through_a_compacted_tail() -> None:
    LOG.add(TP0, [0, 1, 2, 3, 4])
    LOG.add(TP1, [0, 2, 5], end=9)  # compacted: no message at 6..8, the end is still 9
    recs = read(["t"])
    assert sorted((r.partition, r.offset) for r in recs) == [
        *((0, o) for o in (0, 1, 2, 3, 4)),
        *((1, o) for o in (0, 2, 5)),
    ]
    for p in (0, 1):
        offsets = [r.offset for r in recs if r.partition == p]
        assert offsets == sorted(offsets)


def test_read_to_end_stops_at_the_end_seen_at_the_call() -> None:
    LOG.add(TP0, [0, 1, 2])

    async def go() -> list[Any]:
        async with TopicReader(KafkaSettings()) as reader:
            real = reader.consumer.end_offsets

            async def ends_then_more(tps: list[TopicPartition]) -> dict[TopicPartition, int]:
                got = await real(tps)
                LOG.add(TP0, [0, 1, 2, 3, 4])  # written after the reader looked at the end
                return got

            reader.consumer.end_offsets = ends_then_more  # type: ignore[method-assign]
            return await reader.read_to_end(["t"])

    assert [r.offset for r in asyncio.run(go())] == [0, 1, 2]


def test_missing_and_empty_topics_read_as_empty() -> None:
    LOG.add(TopicPartition("empty", 0), [])
    assert read(["missing"]) == []
    assert read(["empty"]) == []


def test_a_partition_that_never_reaches_its_end_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    LOG.add(TP0, [0, 1], end=5)

    async def stuck(self: FakeConsumer, *tps: TopicPartition, **kw: Any) -> dict[Any, Any]:
        await asyncio.sleep(0.01)
        return {}  # a broker that stopped answering fetches

    monkeypatch.setattr(FakeConsumer, "getmany", stuck)
    with pytest.raises(TimeoutError):
        read(["t"], timeout_s=0.2)


def test_assign_from_the_end_resolves_positions_before_returning() -> None:
    LOG.add(TP0, [0, 1, 2])
    LOG.add(TP1, [0])

    async def go() -> tuple[list[TopicPartition], list[int]]:
        async with TopicReader(KafkaSettings()) as reader:
            tps = await reader.assign(["t", "missing"], start="end")
            return tps, [reader.consumer.pos[tp] for tp in tps]

    assert asyncio.run(go()) == ([TP0, TP1], [3, 1])
