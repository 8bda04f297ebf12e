"""CompactedView shares the worker's event loop with the agents: it applies at most VIEW_CHUNK
records per turn of the loop, even when every record is already fetched."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams import views
from streams.settings import KafkaSettings

TP0 = TopicPartition("t", 0)
TOTAL = 1000


@dataclass
class Rec:
    offset: int
    key: bytes | None = b"k"
    value: bytes | None = b"v"


class Fetched:
    """A consumer whose records are all fetched already: getmany returns without suspending."""

    def __init__(self, *topics: str, **kw: Any) -> None:
        self.pos = 0

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        n = min(max_records or TOTAL, TOTAL - self.pos)
        if n == 0:
            await asyncio.sleep(3600)  # nothing more: a real consumer waits for more
        recs = [Rec(o) for o in range(self.pos, self.pos + n)]
        self.pos += n
        return {TP0: recs}

    def assignment(self) -> set[TopicPartition]:
        return {TP0}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {TP0: TOTAL}

    async def position(self, tp: TopicPartition) -> int:
        return self.pos


def test_a_view_lets_the_agents_run_between_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "AIOKafkaConsumer", Fetched)
    applied: list[int] = []
    seen_by_agent: list[int] = []

    async def agent() -> None:
        while len(applied) < TOTAL:
            seen_by_agent.append(len(applied))
            await asyncio.sleep(0)

    async def go() -> None:
        view = views.CompactedView("t", lambda k, v: applied.append(1), KafkaSettings())
        follow = asyncio.create_task(view.run())
        await agent()
        await asyncio.wait_for(view.ready.wait(), 5)
        follow.cancel()

    asyncio.run(go())
    assert len(applied) == TOTAL
    # the agent ran between the view's chunks, each at most VIEW_CHUNK records apart
    between = sorted(set(seen_by_agent))
    assert 0 < views.VIEW_CHUNK < TOTAL and len(between) >= TOTAL // views.VIEW_CHUNK
    assert all(b - a <= views.VIEW_CHUNK for a, b in zip(between, between[1:], strict=False))
