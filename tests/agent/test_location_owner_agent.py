"""Agent tier: the location owner in Faust's test context (memory store, no broker).

Till sales and supplier feeds are folded straight from their topics (one hop); shipments are
granted a slot and their units in one message, or nothing; availability and store-load are
published from the same place."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from streams import bundles
from streams.app import Runtime
from streams.records import Location
from streams.topics import TOPICS
from tests.agent.conftest import Feeder

NOW = "2026-11-30T10:00:00Z"


def sale(event_id: str, qty: int = 1, sku: str = "A", location_id: str = "ST-1") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "occurred_at": NOW,
        "location_id": location_id,
        "lines": [{"sku": sku, "qty": qty}],
    }


def receipt(event_id: str, qty: int, sku: str = "A", location_id: str = "ST-1") -> dict[str, Any]:
    return {**sale(event_id, qty, sku, location_id), "type": "receipt"}


def reserve(sid: str, lines: dict[str, int], offset: int) -> dict[str, Any]:
    return {
        "kind": "reserve_shipment",
        "order_id": sid.split("-")[0],
        "shipment_id": sid,
        "location_id": "ST-1",
        "lines": [{"sku": k, "qty": v} for k, v in lines.items()],
        "origin": "wo:0",
        "seq": [offset, 0],
        "at": 1000.0,
    }


def owner(rt: Runtime) -> Any:
    return rt.app.agents["location-owner"]


def test_a_receipt_and_a_sale_are_folded_in_one_hop_and_published(rt: Runtime) -> None:
    asyncio.run(_fold(rt))


async def _fold(rt: Runtime) -> None:
    async with owner(rt).test_context() as ctx:
        f = Feeder(rt, ctx)
        await f.put(TOPICS.supplier_feeds, receipt("R1", 10), "ST-1")
        await f.put(TOPICS.pos_sales, sale("P1", 3), "ST-1")
        await f.put(TOPICS.pos_sales, sale("P1", 3), "ST-1")  # the same event_id again
    avail = f.sent("stock_availability")
    assert avail[-1]["on_hand"] == 7 and avail[-1]["available"] == 5  # safety stock 2
    assert not f.sent("location_ops")  # no re-keyed hop
    assert rt.get(rt.tables["location_stock"], "A@ST-1")["on_hand"] == 7


def test_a_message_keyed_by_anything_but_its_location_is_dead_lettered(rt: Runtime) -> None:
    asyncio.run(_mis_keyed(rt))


async def _mis_keyed(rt: Runtime) -> None:
    async with owner(rt).test_context() as ctx:
        f = Feeder(rt, ctx)
        await f.put(TOPICS.pos_sales, sale("P1"), "A")
        await f.put(TOPICS.location_ops, b"{broken", "ST-1")
        await f.put(TOPICS.pos_sales, sale("P2", location_id="NOPE"), "NOPE")
    reasons = [d["error"] for d in f.sent("dead_letters")]
    assert reasons[0] == "message key must be the location_id 'ST-1'"
    assert reasons[1].startswith("malformed JSON")
    assert reasons[2] == "unknown location_id 'NOPE'"
    assert rt.get(rt.tables["location_stock"], "A@ST-1") is None


def test_shipments_beyond_max_backlog_are_refused_by_the_owner_in_a_burst(rt: Runtime) -> None:
    """20 shipments at once for a store with max_backlog 5 and plenty of stock: 5 granted."""
    asyncio.run(_burst(rt))


async def _burst(rt: Runtime) -> None:
    rt.locations.by_id["ST-1"] = rt.locations.by_id["ST-1"].model_copy(update={"max_backlog": 5})
    async with owner(rt).test_context() as ctx:
        f = Feeder(rt, ctx)
        await f.put(TOPICS.supplier_feeds, receipt("R1", 100), "ST-1")
        for i in range(20):
            await f.put(TOPICS.location_ops, reserve(f"O{i}-S1", {"A": 1}, i), "ST-1")
        answers = f.take("order_commands")
        assert [a["ok"] for a in answers] == [True] * 5 + [False] * 15
        assert all(a["saturated"] and a["free"] == {} for a in answers[5:])
        assert f.sent("store_load")[-1]["open_orders"] == 5
        # a release gives the slot and the units back; the next shipment gets them
        release = {
            "kind": "release_shipment",
            "order_id": "O0",
            "shipment_id": "O0-S1",
            "location_id": "ST-1",
            "skus": ["A"],
            "origin": "fe:0",
            "seq": [0, 0],
        }
        await f.put(TOPICS.location_ops, release, "ST-1")
        await f.put(TOPICS.location_ops, reserve("O99-S1", {"A": 1}, 99), "ST-1")
        (late,) = f.take("order_commands")
        assert late["ok"] is True
    stock = rt.get(rt.tables["location_stock"], "A@ST-1")
    assert sorted(stock["reservations"]) == [f"O{i}-S1/A" for i in range(1, 5)] + ["O99-S1/A"]


def test_a_new_safety_stock_re_publishes_the_availability_of_that_location(rt: Runtime) -> None:
    asyncio.run(_resync(rt))


async def _resync(rt: Runtime) -> None:
    rt.locations.by_id["WH-1"] = Location(
        location_id="WH-1", kind="warehouse", name="w", lat=48.0, lon=2.0
    )
    async with owner(rt).test_context() as ctx:
        f = Feeder(rt, ctx)
        await f.put(TOPICS.supplier_feeds, receipt("R1", 10), "ST-1")
        await f.put(TOPICS.supplier_feeds, receipt("R2", 4, "B", "WH-1"), "WH-1", partition=1)
        f.take("stock_availability")
        resync = {"kind": "resync_location", "location_id": "ST-1", "safety_stock": 5}
        await f.put(TOPICS.location_ops, resync, "ST-1")
    avail = f.sent("stock_availability")
    assert [(v["sku"], v["location_id"], v["on_hand"], v["available"]) for v in avail] == [
        ("A", "ST-1", 10, 5)
    ]


def test_every_write_goes_to_the_changelog_partition_of_the_input(rt: Runtime) -> None:
    asyncio.run(_partition(rt))


async def _partition(rt: Runtime) -> None:
    async with owner(rt).test_context() as ctx:
        f = Feeder(rt, ctx)
        await f.put(TOPICS.supplier_feeds, receipt("R1", 5), "ST-1", partition=3)
    writes = [c for c in rt.changelog if c[0] == "agent-test-location_stock-changelog"]  # type: ignore[attr-defined]
    assert len(writes) == 1
    _, key, value, partition = writes[0]
    assert partition == 3 and orjson.loads(key) == "A@ST-1"
    assert orjson.loads(value)["on_hand"] == 5


def test_a_line_cancellation_lowers_the_open_units_of_store_load(rt: Runtime) -> None:
    asyncio.run(_shrink(rt))


async def _shrink(rt: Runtime) -> None:
    def op(kind: str, seq: int, **kw: Any) -> dict[str, Any]:
        return {
            "kind": kind,
            "location_id": "ST-1",
            "shipment_id": "O1-S1",
            "origin": "wo:0",
            "seq": [seq, 0],
            "at": 1000.0,
            **kw,
        }

    async with owner(rt).test_context() as ctx:
        f = Feeder(rt, ctx)
        await f.put(TOPICS.supplier_feeds, receipt("R1", 20), "ST-1")
        await f.put(TOPICS.location_ops, reserve("O1-S1", {"A": 5}, 1), "ST-1")
        assert f.sent("store_load")[-1]["open_units"] == 5
        partial = {
            "kind": "release",
            "sku": "A",
            "location_id": "ST-1",
            "origin": "wo:0",
            "seq": [2, 0],
            "qty": 2,
            "reservation_id": "O1-S1/A",
            "order_id": "O1",
        }
        await f.put(TOPICS.location_ops, partial, "ST-1")
        await f.put(TOPICS.location_ops, op("shrink", 2, units=3.0) | {"seq": [2, 1]}, "ST-1")
        load = f.sent("store_load")[-1]
        assert (load["open_orders"], load["open_units"]) == (1, 3)
        await f.put(TOPICS.location_ops, op("shrink", 3, units=3.0), "ST-1")  # seen: no change
        await f.put(TOPICS.location_ops, op("close", 4), "ST-1")
        load = f.sent("store_load")[-1]
        assert (load["open_orders"], load["open_units"]) == (0, 0)
    assert rt.get(rt.tables["location_stock"], "A@ST-1")["reservations"] == {"O1-S1/A": 3}


def test_asks_bundled_in_one_record_are_granted_in_order_and_a_bad_one_dead_lettered(
    rt: Runtime,
) -> None:
    """A bundle record of asks (streams/bundles.py) is granted message by message, in order,
    up to max_backlog; a message of it keyed by another location is dead-lettered alone, with
    its own bytes; the answers go out one per order."""
    asyncio.run(_bundled_asks(rt))


async def _bundled_asks(rt: Runtime) -> None:
    rt.locations.by_id["ST-1"] = rt.locations.by_id["ST-1"].model_copy(update={"max_backlog": 3})
    asks = [reserve(f"O{i}-S1", {"A": 1}, i) for i in range(5)]
    items = [(b"ST-1", orjson.dumps(a)) for a in asks]
    items.insert(2, (b"ST-9", orjson.dumps(reserve("O9-S1", {"A": 1}, 9))))
    async with owner(rt).test_context() as ctx:
        f = Feeder(rt, ctx)
        await f.put(TOPICS.supplier_feeds, receipt("R1", 100), "ST-1")
        await f.put(TOPICS.location_ops, bundles.join(items), "ignored")
    answers = f.take("order_commands")
    assert [(a["order_id"], a["ok"]) for a in answers] == [
        ("O0", True),
        ("O1", True),
        ("O2", True),
        ("O3", False),
        ("O4", False),
    ]
    (dead,) = f.sent("dead_letters")
    assert dead["error"] == "message key must be the location_id 'ST-1'"
    assert orjson.loads(dead["raw"])["shipment_id"] == "O9-S1"
    stock = rt.get(rt.tables["location_stock"], "A@ST-1")
    assert sorted(stock["reservations"]) == ["O0-S1/A", "O1-S1/A", "O2-S1/A"]
