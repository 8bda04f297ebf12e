"""Real-broker test harness: isolated topic sets, worker processes, produce and read helpers.

Each test gets its own topic prefix and app id, so its workers never see another test's
messages or state, on one shared broker (KAFKA_BOOTSTRAP, started by scripts/with-kafka.sh).
The cluster and worker launcher are tooling/cluster.py, re-exported here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.topic_reader import read_to_end
from tooling.cluster import ROOT, Cluster, WorkerProcess, bootstrap, free_port
from tooling.fixtures import iso, location

# the launcher and the record builders live in tooling/ (shared with bench/); tests import
# them from here as before
__all__ = [
    "ROOT",
    "Cluster",
    "WorkerProcess",
    "bootstrap",
    "free_port",
    "iso",
    "latest_by_key",
    "location",
    "messages",
    "produce",
    "read_all",
    "read_raw",
    "run",
    "send",
    "wait_for",
]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def produce(cluster: Cluster, messages: Iterable[tuple[Any, ...]]) -> int:
    """Send (topic handle, key, value[, timestamp ms]); a bytes value is sent as it is (bad
    input); without a timestamp the producer stamps the message."""
    producer = AIOKafkaProducer(**cluster.kafka.aiokafka_kwargs(), acks="all", linger_ms=5)
    await producer.start()
    n = 0
    try:
        for handle, key, value, *stamp in messages:
            raw = value if isinstance(value, bytes) else orjson.dumps(value)
            await producer.send(
                cluster.name(handle),
                key=key.encode() if key else None,
                value=raw,
                timestamp_ms=stamp[0] if stamp else None,
            )
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n


def send(cluster: Cluster, messages: Iterable[tuple[Any, ...]]) -> int:
    return int(run(produce(cluster, messages)))


async def read_raw(cluster: Cluster, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) currently in a topic (a full topic name: changelogs too), in order."""
    return [(r.key, r.value) for r in await read_to_end(cluster.kafka, [topic])]


async def read_all(cluster: Cluster, handle: str) -> list[dict[str, Any]]:
    """Every message currently in a topic, decoded, with its key as `_key` (a bundle record
    of an internal topic, streams/bundles.py, gives each of its messages)."""
    out: list[dict[str, Any]] = []
    for key, raw in await read_raw(cluster, cluster.name(handle)):
        value = orjson.loads(raw) if raw is not None else None
        pairs = value if isinstance(value, list) else [[key.decode() if key else None, value]]
        for k, v in pairs:
            if isinstance(v, dict):
                v["_key"] = k
                out.append(v)
    return out


def messages(cluster: Cluster, handle: str) -> list[dict[str, Any]]:
    return list(run(read_all(cluster, handle)))


def latest_by_key(cluster: Cluster, handle: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for m in messages(cluster, handle):
        latest[m["_key"]] = m
    return latest


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.5, what: str = "") -> Any:
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
