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
    ) -> asyncio.Future[Any]:
        runtime.changelog.append((topic, key, value, partition))  # type: ignore[attr-defined]
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(offset=len(runtime.changelog) - 1))  # type: ignore[attr-defined]
        return done

    runtime.changelog = []  # type: ignore[attr-defined]
    runtime.sent_to_partition = []  # type: ignore[attr-defined]
    monkeypatch.setattr(runtime, "send", capture)
    monkeypatch.setattr(runtime, "produce", changelog)
    return runtime
