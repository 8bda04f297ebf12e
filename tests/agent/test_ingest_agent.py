"""Agent tier: the location owner's event-id dedupe window, in Faust's test context."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
from faust.types import Message

from agents import location_owner
from domain.dedupe import DAY_S
from streams import loop
from streams.app import Runtime
from streams.topics import TOPICS

PERIOD_S = 7 * DAY_S  # the default window
T0 = 2916 * PERIOD_S + 100  # early in a period (2025-11-20)


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
    agent = rt.app.agents["location-owner"]
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


def sold(rt: Runtime) -> int:
    """Units the owner took off on_hand: one per till sale it counted."""
    return -int(rt.get(rt.tables["location_stock"], "A@ST-1")["on_hand"])


def test_a_repeated_event_id_counts_once_within_the_window_and_again_after_it(
    rt: Runtime,
) -> None:
    asyncio.run(
        feed(
            rt,
            [
                ("E1", T0),
                ("E1", T0 + 3 * DAY_S),  # a retry three days later: dropped
                ("E1", T0 - DAY_S),  # a sender whose clock runs a day late: dropped
                ("E1", T0 + 7 * DAY_S),  # a week later, in the next period: dropped
                ("E1", T0 + 15 * DAY_S),  # two periods on: a new event
            ],
        )
    )
    assert sold(rt) == 2


def test_event_ids_older_than_the_window_are_pruned_with_tombstones(rt: Runtime) -> None:
    asyncio.run(
        feed(
            rt,
            [("E1", T0), ("E2", T0 + 5), ("E3", T0 + 7 * DAY_S), ("E4", T0 + 14 * DAY_S)],
        )
    )
    seen = rt.app.tables["seen_events"]
    # at E4 (period 2918) the ids of period 2916 are pruned; 2917 is still looked up. The id
    # keys are local; the changelog holds chunks of ids (one per batch, origin and period)
    ids = sorted(k for k in seen.data if "/" in k)
    assert ids == ["002917/E3", "002918/E4"]
    assert sorted(k[:6] for k in seen.data if "~" in k) == ["002917", "002918"]
    changelog: dict[str, Any] = {}
    for topic, key, value, _ in rt.changelog:  # type: ignore[attr-defined]
        if topic == "agent-test-seen_events-changelog":
            changelog[orjson.loads(key)] = None if value is None else orjson.loads(value)
    live = {k: v for k, v in changelog.items() if v is not None}
    assert all("~" in k for k in changelog)  # no record per id
    assert sorted(k[:6] for k in live) == ["002917", "002918"]  # 2916's chunk: never or a tombstone
    assert sorted(i for v in live.values() for i, _ in v) == ["E3", "E4"]


def test_recovery_rebuilds_the_id_keys_from_the_chunks(rt: Runtime) -> None:
    """What table recovery applies (the changelog records) gives the id keys back, before
    Faust's own apply: a repeat is still dropped by a worker that recovered the table."""
    asyncio.run(feed(rt, [("E1", T0), ("E2", T0 + 5)]))
    seen = rt.app.tables["seen_events"]
    records = [
        (key, value)
        for topic, key, value, _ in rt.changelog  # type: ignore[attr-defined]
        if topic == "agent-test-seen_events-changelog"
    ]
    for key in list(seen.data):
        seen.data.pop(key)
    events = [
        SimpleNamespace(
            message=SimpleNamespace(
                key=key, value=value, partition=0, offset=i, tp=("seen-changelog", 0)
            ),
            key=orjson.loads(key),
            value=None if value is None else orjson.loads(value),
        )
        for i, (key, value) in enumerate(records)
    ]
    seen.apply_changelog_batch(events)
    assert sorted(k for k in seen.data if "/" in k) == ["002916/E1", "002916/E2"]
    assert seen.data["002916/E1"] == f"{TOPICS.pos_sales.code}:0:0"
    before = sold(rt)
    asyncio.run(feed(rt, [("E1", T0 + 60)]))  # a repeat on a later offset
    assert sold(rt) == before


def test_a_repeat_within_one_batch_is_dropped_and_the_batch_files_its_ids_once(
    rt: Runtime,
) -> None:
    """The ids a batch sees first are kept in the batch (its later inputs look them up there)
    and written at its flush as local keys: a repeat inside the batch is still dropped."""
    owner = location_owner.agent()

    def message(offset: int, event_id: str) -> Message:
        return Message(
            topic=TOPICS.pos_sales.name,
            partition=0,
            offset=offset,
            timestamp=T0 + offset,
            timestamp_type=0,
            headers=None,
            key=b"ST-1",
            value=sale(event_id),
            checksum=b"",
            generation_id=rt.app.consumer_generation_id,
        )

    batch = [message(0, "E1"), message(1, "E1"), message(2, "E2")]
    seen = rt.app.tables["seen_events"]
    asyncio.run(loop.process_batch(rt, owner, batch))
    assert sold(rt) == 2
    assert sorted(k for k in seen.data if "/" in k) == ["002916/E1", "002916/E2"]
    assert seen.data["002916/E1"] == f"{TOPICS.pos_sales.code}:0:0"  # the first copy's place
    chunks = [v for k, v in seen.data.items() if "~" in k]
    assert chunks == [[["E1", 0], ["E2", 2]]]
