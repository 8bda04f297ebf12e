"""Agent tier: the real Faust agents in Faust's test context (memory store, no broker).

`Runtime.send` and `Runtime.produce` are the only ways the runtime reaches Kafka for agents, so
capturing them shows exactly what an agent would publish and write to its changelogs. Captured
sends are (topic handle, key, value as its JSON reads); each value is first encoded with its
topic's model, so a mistyped send fails the test.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from faust.types import Message

from streams.app import Runtime
from streams.records import Location
from streams.settings import WorkerSettings
from streams.topics import AnyTopic
from streams.worker import create_worker


@pytest.fixture
def rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    runtime = create_worker(
        WorkerSettings(app_id="agent-test", data_dir=tmp_path, store="memory://")
    )
    runtime.locations.by_id["ST-1"] = Location(
        location_id="ST-1",
        kind="store",
        name="s",
        lat=48.0,
        lon=2.0,
        safety_stock=2,
        capacity_per_hour=10,
        max_backlog=20,
    )
    for view in runtime.views:
        view.ready.set()
    runtime.sent = []  # type: ignore[attr-defined]

    async def capture(
        topic: AnyTopic, key: str | None, value: Any, partition: int | None = None
    ) -> None:
        data = orjson.loads(topic.encode(value))
        runtime.sent.append((topic.handle, key, data))  # type: ignore[attr-defined]
        if partition is not None:
            runtime.sent_to_partition.append((topic.handle, partition, data))  # type: ignore[attr-defined]

    async def changelog(
        topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> tuple[asyncio.Future[Any], int]:
        runtime.changelog.append((topic, key, value, partition))  # type: ignore[attr-defined]
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(offset=len(runtime.changelog) - 1))  # type: ignore[attr-defined]
        return done, 0

    runtime.changelog = []  # type: ignore[attr-defined]
    runtime.sent_to_partition = []  # type: ignore[attr-defined]
    monkeypatch.setattr(runtime, "send", capture)
    monkeypatch.setattr(runtime, "produce", changelog)
    return runtime


class Feeder:
    """Puts messages on an agent's input topics in Faust's test context, each topic partition
    with contiguous offsets (the runtime's in-order check), at a given Kafka timestamp."""

    def __init__(self, rt: Runtime, ctx: Any) -> None:
        self.rt, self.ctx = rt, ctx
        self.offsets: dict[tuple[str, int], int] = {}
        self.topic: AnyTopic | None = None
        self.partition = 0
        self.timestamp = 1.0
        self.puts = 0
        self.base = sum(rt.processed.values())
        ctx.to_message = self.to_message

    def to_message(self, key: Any, value: Any, **_: Any) -> Message:
        assert self.topic is not None
        tp = (self.topic.name, self.partition)
        offset = self.offsets.get(tp, 0)
        self.offsets[tp] = offset + 1
        return Message(
            topic=self.topic.name,
            partition=self.partition,
            offset=offset,
            timestamp=self.timestamp,
            timestamp_type=0,
            headers=None,
            key=key,
            value=value,
            checksum=b"",
            generation_id=self.rt.app.consumer_generation_id,
        )

    async def put(
        self,
        topic: AnyTopic,
        value: Any,
        key: str,
        *,
        partition: int = 0,
        timestamp: float = 1.0,
    ) -> None:
        """`value`: a dict (JSON-encoded here) or raw bytes."""
        self.topic, self.partition, self.timestamp = topic, partition, timestamp
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        await self.ctx.put(key=key.encode(), value=raw)
        self.puts += 1
        await self.settle()

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until the agent took every input put so far (a batched agent holds inputs for
        a few milliseconds before it takes them)."""
        name = self.ctx.name if hasattr(self.ctx, "name") else None
        deadline = asyncio.get_running_loop().time() + timeout_s
        while sum(self.rt.processed.values()) < self.base + self.puts:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"agent {name} took {self.rt.processed} of {self.puts} inputs")
            await asyncio.sleep(0.001)

    def sent(self, handle: str) -> list[dict[str, Any]]:
        return [v for h, _, v in self.rt.sent if h == handle]  # type: ignore[attr-defined]

    def take(self, handle: str) -> list[dict[str, Any]]:
        """What was sent to `handle` since the last take."""
        out = self.sent(handle)
        self.rt.sent[:] = [s for s in self.rt.sent if s[0] != handle]  # type: ignore[attr-defined]
        return out
