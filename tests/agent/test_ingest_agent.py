"""Agent tier: the ingest agent's event-id dedupe window, in Faust's test context."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from faust.types import Message

from domain.dedupe import DAY_S
from streams.app import Runtime
from streams.topics import TOPICS

DAY = 20417  # 2025-11-25


def sale(event_id: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "occurred_at": "2025-11-25T10:00:00Z",
            "location_id": "ST-1",
            "lines": [{"sku": "A", "qty": 1}],
        }
    )


async def feed(rt: Runtime, sales: list[tuple[str, float]]) -> None:
    """Till sales on pos-sales partition 0, at the given Kafka timestamps."""
    agent = rt.app.agents["ingest-stock-events"]
    async with agent.test_context() as ctx:

        def to_message(
            key: Any, value: Any, *, offset: int = 0, timestamp: Any = None, **_: Any
        ) -> Message:
            return Message(
                topic=TOPICS.pos_sales.name,
                partition=0,
                offset=offset,
                timestamp=timestamp,
                timestamp_type=0,
                headers=None,
                key=key,
                value=value,
                checksum=b"",
                generation_id=rt.app.consumer_generation_id,
            )

        ctx.to_message = to_message  # type: ignore[method-assign]
        for event_id, ts in sales:
            await ctx.put(key=b"ST-1", value=sale(event_id), timestamp=ts)


def ops_for(rt: Runtime, event_id: str) -> int:
    sent = rt.sent  # type: ignore[attr-defined]
    return sum(1 for h, _, v in sent if h == "stock_ops" and v["event_id"] == event_id)


def test_a_repeated_event_id_counts_once_within_the_window_and_again_after_it(
    rt: Runtime,
) -> None:
    asyncio.run(
        feed(
            rt,
            [
                ("E1", DAY * DAY_S + 100),
                ("E1", (DAY + 3) * DAY_S),  # a retry three days later: dropped
                ("E1", (DAY - 1) * DAY_S),  # a sender whose clock runs a day late: dropped
                ("E1", (DAY + 9) * DAY_S),  # beyond the 7-day window: a new event
            ],
        )
    )
    assert ops_for(rt, "E1") == 2


def test_event_ids_older_than_the_window_are_pruned_with_tombstones(rt: Runtime) -> None:
    asyncio.run(
        feed(
            rt,
            [("E1", DAY * DAY_S), ("E2", DAY * DAY_S + 5), ("E3", (DAY + 8) * DAY_S)],
        )
    )
    seen = rt.app.tables["seen_events"]
    assert sorted(seen.data) == [f"{DAY + 8:06d}/E3"]
    tombstones = [
        orjson.loads(key)
        for topic, key, value, _ in rt.changelog  # type: ignore[attr-defined]
        if topic == "agent-test-seen_events-changelog" and value is None
    ]
    assert sorted(tombstones) == [f"{DAY:06d}/E1", f"{DAY:06d}/E2"]
