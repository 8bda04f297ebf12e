"""streams/topic_reader.py on the real broker: what the private metadata calls used to be for.

A reader that started before a topic existed still finds its partitions and reads it to the end
(the dashboard's re-discovery, the simulator's watch), through public aiokafka API only.
"""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.settings import KafkaSettings
from streams.topic_reader import TopicReader, read_to_end
from tests.integration.harness import bootstrap


async def _create(settings: KafkaSettings, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def _produce(settings: KafkaSettings, name: str, n: int) -> None:
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs(), acks="all")
    await producer.start()
    try:
        for i in range(n):
            await producer.send(name, key=f"k{i}".encode(), value=f"v{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()


def test_a_topic_created_after_the_reader_started_is_found_and_read_to_its_end() -> None:
    bootstrap()  # a clear error without a broker
    settings = KafkaSettings.from_env()
    name = f"reader-{uuid.uuid4().hex[:10]}"

    async def go() -> None:
        async with TopicReader(settings) as reader:
            assert await reader.partitions([name]) == []
            assert await reader.read_to_end([name]) == []
            await _create(settings, name, partitions=3)
            await _produce(settings, name, 30)
            async with asyncio.timeout(30):  # metadata of a new topic settles within seconds
                while len(await reader.partitions([name])) < 3:
                    await asyncio.sleep(0.2)
            assert await reader.partitions([name]) == [TopicPartition(name, p) for p in range(3)]
            assert sum((await reader.end_offsets([name])).values()) == 30
            records = await reader.read_to_end([name])
            assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(30))
        # and one-shot, as the harness reads
        assert len(await read_to_end(settings, [name])) == 30

    asyncio.run(go())
