"""Agent tier: the locations agent tells a location's owner when its safety stock changes."""

from __future__ import annotations

import asyncio

import orjson

from streams.app import Runtime


def location(safety_stock: int, name: str = "Store 9") -> bytes:
    return orjson.dumps(
        {
            "location_id": "ST-9",
            "kind": "store",
            "name": name,
            "lat": 48.0,
            "lon": 2.0,
            "safety_stock": safety_stock,
            "capacity_per_hour": 10,
            "max_backlog": 20,
        }
    )


def test_only_a_changed_safety_stock_resyncs_the_location_owner(rt: Runtime) -> None:
    asyncio.run(_feed(rt, [location(1), location(1, name="renamed"), location(3)]))
    resyncs = [(k, v) for h, k, v in rt.sent if h == "location_ops"]  # type: ignore[attr-defined]
    assert resyncs == [
        ("ST-9", {"kind": "resync_location", "location_id": "ST-9", "safety_stock": 3})
    ]


async def _feed(rt: Runtime, values: list[bytes]) -> None:
    agent = rt.app.agents["locations-check"]
    async with agent.test_context() as ctx:
        for value in values:
            await ctx.put(key=b"ST-9", value=value)


def test_a_bad_calendar_on_the_topic_is_dead_lettered_with_its_reason(rt: Runtime) -> None:
    good = orjson.loads(location(1))
    bad = {**good, "calendar": {"tz": "UTC", "opening": {"mon": ["09:00-12:00", "11:00-13:00"]}}}
    asyncio.run(_feed(rt, [orjson.dumps(bad)]))
    (dead,) = [v for h, _, v in rt.sent if h == "dead_letters"]  # type: ignore[attr-defined]
    assert dead["source_topic"] == "locations"
    assert "opening.mon: intervals 09:00-12:00 and 11:00-13:00 overlap" in dead["error"]
    assert orjson.loads(dead["raw"]) == bad
    assert rt.get(rt.tables["location_safety"], "ST-9") is None  # nothing applied
