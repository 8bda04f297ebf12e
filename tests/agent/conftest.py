"""Agent tier: the real Faust agents in Faust's test context (memory store, no broker).

`Runtime.send` and `Runtime.produce` are the only ways agents reach Kafka, so capturing them
shows exactly what an agent would publish and write to its changelogs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from streams.app import Runtime, create_runtime
from streams.records import Location
from streams.settings import WorkerSettings


@pytest.fixture
def rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    runtime = create_runtime(
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
        handle: str, key: str | None, value: Any, partition: int | None = None
    ) -> None:
        data = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
        runtime.sent.append((handle, key, data))  # type: ignore[attr-defined]
        if partition is not None:
            runtime.sent_to_partition.append((handle, partition, data))  # type: ignore[attr-defined]

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
