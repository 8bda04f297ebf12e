"""Agent tier: the stock agent in Faust's test context (memory store, no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from streams.app import Runtime
from streams.topics import TOPICS


def op(kind: str, qty: int, seq: int, **kw: Any) -> bytes:
    return orjson.dumps(
        {
            "kind": kind,
            "sku": "A",
            "location_id": "ST-1",
            "origin": "ps:0",
            "seq": seq,
            "qty": qty,
            **kw,
        }
    )


def test_every_table_the_agents_use_is_declared_in_topics_yaml(rt: Runtime) -> None:
    assert set(rt.app.tables.keys()) == set(TOPICS.tables)


def test_the_stock_agent_publishes_availability_net_of_safety_stock(rt: Runtime) -> None:
    asyncio.run(_publishes_availability(rt))


async def _publishes_availability(rt: Runtime) -> None:
    agent = rt.app.agents["stock"]
    async with agent.test_context() as ctx:
        await ctx.put(key=b"A", value=op("adjust", 10, 1))
        await ctx.put(key=b"A", value=op("adjust", -3, 2))
        await ctx.put(key=b"A", value=op("adjust", -3, 2))  # a replay
    avail = [v for h, _, v in rt.sent if h == "stock_availability"]  # type: ignore[attr-defined]
    assert avail[-1]["on_hand"] == 7 and avail[-1]["available"] == 5
    assert avail[-1]["sku"] == "A" and avail[-1]["location_id"] == "ST-1"


def test_the_stock_agent_answers_reservations_to_the_order_that_asked(rt: Runtime) -> None:
    asyncio.run(_answers_reservations(rt))


async def _answers_reservations(rt: Runtime) -> None:
    agent = rt.app.agents["stock"]
    async with agent.test_context() as ctx:
        await ctx.put(key=b"A", value=op("adjust", 5, 1))
        await ctx.put(key=b"A", value=op("reserve", 3, 2, reservation_id="O1-S1/A", order_id="O1"))
        await ctx.put(key=b"A", value=op("reserve", 1, 3, reservation_id="O2-S1/A", order_id="O2"))
    answers = {k: v for h, k, v in rt.sent if h == "order_commands"}  # type: ignore[attr-defined]
    assert answers["O1"]["ok"] is True
    assert answers["O2"]["ok"] is False and answers["O2"]["free_after"] == 0


def test_an_unreadable_stock_op_goes_to_dead_letters(rt: Runtime) -> None:
    asyncio.run(_unreadable_op(rt))


async def _unreadable_op(rt: Runtime) -> None:
    agent = rt.app.agents["stock"]
    async with agent.test_context() as ctx:
        await ctx.put(key=b"A", value=b"{broken")
    letters = [v for h, _, v in rt.sent if h == "dead_letters"]  # type: ignore[attr-defined]
    assert len(letters) == 1 and letters[0]["error"].startswith("malformed JSON")
    assert letters[0]["raw"] == "{broken"


def test_a_stock_write_goes_to_the_changelog_partition_of_the_op_that_caused_it(
    rt: Runtime,
) -> None:
    asyncio.run(_changelog_partition(rt))


async def _changelog_partition(rt: Runtime) -> None:
    agent = rt.app.agents["stock"]
    async with agent.test_context() as ctx:
        await ctx.put(key=b"A", value=op("adjust", 5, 1), partition=3)
        await ctx.put(key=b"A", value=op("adjust", 5, 1), partition=3)  # a replay: no write
    writes = [c for c in rt.changelog if c[0] == "agent-test-stock-changelog"]  # type: ignore[attr-defined]
    assert len(writes) == 1
    _, key, value, partition = writes[0]
    assert partition == 3 and orjson.loads(key) == "A@ST-1"
    assert orjson.loads(value)["on_hand"] == 5
    assert rt.get(rt.app.tables["stock"], "A@ST-1")["on_hand"] == 5


def test_a_new_safety_stock_re_publishes_the_availability_of_that_location_only(
    rt: Runtime,
) -> None:
    asyncio.run(_resync(rt))


async def _resync(rt: Runtime) -> None:
    agent = rt.app.agents["stock"]
    async with agent.test_context() as ctx:
        await ctx.put(key=b"A", value=op("adjust", 10, 1))
        await ctx.put(key=b"B", value=op("adjust", 4, 2, sku="B", location_id="WH-1"))
        rt.sent.clear()  # type: ignore[attr-defined]
        resync = {"kind": "resync_location", "location_id": "ST-1", "safety_stock": 5}
        await ctx.put(key=b"ST-1", value=orjson.dumps(resync))
    avail = [v for h, _, v in rt.sent if h == "stock_availability"]  # type: ignore[attr-defined]
    assert [(v["sku"], v["location_id"], v["on_hand"], v["available"]) for v in avail] == [
        ("A", "ST-1", 10, 5)
    ]
