"""`stockroute upgrade`: state of the SKU-partitioned layout (before 2026-11) moves to the
location owner, with the ops the old agents had not consumed, once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.topic_reader import read_to_end
from tests.integration.harness import Cluster, location, messages, run
from tests.integration.test_routing import load_locations
from tooling.upgrade import partition_of


async def old_layout(cluster: Cluster) -> None:
    """What a worker of the old layout left: its stock changelog, and one op it never read."""
    old_ops = cluster.prefix + "stockroute-stock-ops"
    changelog = f"{cluster.app_id}-stock-changelog"
    admin = AIOKafkaAdminClient(**cluster.kafka.aiokafka_kwargs())
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(old_ops, 4, 1),
                NewTopic(changelog, 4, 1, topic_configs={"cleanup.policy": "compact"}),
            ]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**cluster.kafka.aiokafka_kwargs(), acks="all")
    await producer.start()
    try:
        state = {"on_hand": 10, "reservations": {"O1-S1/A": 2}, "positions": {"ps:0": 5001}}
        key = orjson.dumps("A@ST-1")
        # the old stock agent's partition of SKU A (keyed by SKU), not ST-1's
        await producer.send(changelog, orjson.dumps({"on_hand": 1}), key=key, partition=3)
        await producer.send(changelog, orjson.dumps(state), key=key, partition=3)  # latest
        await producer.send(changelog, orjson.dumps({"on_hand": 4}), key=orjson.dumps("B@ST-1"))
        await producer.send(changelog, None, key=orjson.dumps("B@ST-1"))  # deleted since
        unread = {
            "kind": "adjust", "sku": "A", "location_id": "ST-1", "origin": "ps:1",
            "seq": 7000, "qty": -1, "event_id": "e-unread",
        }  # fmt: skip
        await producer.send(old_ops, orjson.dumps(unread), key=b"A")
        await producer.flush()
    finally:
        await producer.stop()


def test_upgrade_moves_stock_to_its_location_owner_once(cluster: Cluster, tmp_path: Path) -> None:
    load_locations(cluster, tmp_path, [location("ST-1", safety_stock=0)])
    asyncio.run(old_layout(cluster))
    dry = cluster.cli("upgrade", "--dry-run")
    assert "1 stock records" in dry.stdout and "1 unconsumed ops" in dry.stdout, dry.stdout
    done = cluster.cli("upgrade")
    assert "upgraded: 1 stock records" in done.stdout, done.stdout
    again = cluster.cli("upgrade", check=False)
    assert again.returncode == 2 and "already upgraded" in again.stderr

    # the stock record sits in its location's partition of the new changelog, as the owner's
    # recovery reads it (the old one was in SKU A's partition 3)
    records = run(read_to_end(cluster.kafka, [f"{cluster.app_id}-location_stock-changelog"]))
    assert [(r.key, r.partition) for r in records] == [
        (orjson.dumps("A@ST-1"), partition_of("ST-1", 4))
    ]
    assert orjson.loads(records[0].value)["reservations"] == {"O1-S1/A": 2}
    # the op the old agent never read is on location-ops, keyed by its location, once
    (op,) = messages(cluster, "location_ops")
    assert (op["_key"], op["kind"], op["qty"], op["seq"]) == ("ST-1", "adjust", -1, [7, 0])
