"""Agent tier: preorders between the SKU's backorder queue and the order (Faust's test context).

The queue owner grants an order's preorder whole on the supply expected and not yet claimed, or
refuses it; a refused order goes to dead-letters with its own bytes. An acceptance lost with a
worker killed before it was flushed is sent again when the input is re-read (the replay)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from agents import backorders
from domain.backorders import BackorderPolicy
from streams.app import Runtime
from streams.metrics import reason_class
from streams.topics import TOPICS
from tests.agent.conftest import Feeder
from tests.agent.test_orders_agent import Orders, placed, world

DUE = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def op(kind: str, sku: str = "P", **kw: Any) -> dict[str, Any]:
    return {"kind": kind, "sku": sku, **kw}


def expect(qty: int) -> dict[str, Any]:
    return op("expect", location_id="ST-NEAR", qty=qty, since=DUE.timestamp(), ref="ER-1")


def test_the_queue_grants_or_refuses_a_preorder_and_re_sends_its_acceptances_on_replay(
    rt: Runtime,
) -> None:
    asyncio.run(_queue(rt))


async def _queue(rt: Runtime) -> None:
    async with rt.app.agents["backorders"].test_context() as ctx:
        f = Feeder(rt, ctx)
        await f.put(TOPICS.backorder_ops, expect(5), "P")
        await f.put(TOPICS.backorder_ops, op("preorder", order_id="O1", qty=3, since=1.0), "P")
        await f.put(TOPICS.backorder_ops, op("preorder", order_id="O2", qty=3, since=2.0), "P")
        granted, refused = f.take("order_commands")
        assert granted == {
            "type": "preorder_accepted",
            "order_id": "O1",
            "sku": "P",
            "qty": 3,
            "expected_date": DUE.timestamp(),
            "location_id": "ST-NEAR",
        }
        assert refused == {
            "type": "preorder_refused",
            "order_id": "O2",
            "sku": "P",
            "asked": 3,
            "left": 2,
        }
        record = f.take("backorders")[-1]
        assert (record["backordered"], record["waiting_orders"], record["preorderable"]) == (
            3,
            1,
            2,
        )

        # the worker died after its table write, before the acceptance was flushed: the
        # input is read again, the queue is not changed twice, the acceptance goes again
        rt.forget_positions()
        f.offsets[(TOPICS.backorder_ops.name, 0)] = 1
        await f.put(TOPICS.backorder_ops, op("preorder", order_id="O1", qty=3, since=1.0), "P")
        assert f.take("order_commands") == [granted]
        await f.put(TOPICS.backorder_ops, op("preorder", order_id="O2", qty=3, since=2.0), "P")
        assert f.take("order_commands") == [granted, refused]  # re-read refusal, answered again
        assert f.take("backorders")[-1]["preorderable"] == 2
    queue = rt.get(rt.tables["backorder_queues"], "P")
    assert queue["claims"] == {"O1": 3} and [e[1] for e in queue["entries"]] == ["O1"]


def preorder_placed(qty: int) -> dict[str, Any]:
    order = placed()
    order["lines"] = [
        {"sku": "P", "qty": qty, "unit_price": 5.0, "preorder": True},
        {"sku": "A", "qty": 1, "unit_price": 10.0},
    ]
    return order


def test_a_refused_preorder_dead_letters_the_order_with_its_bytes(rt: Runtime) -> None:
    asyncio.run(_refused(rt))


async def _refused(rt: Runtime) -> None:
    world(rt)
    rt.policy = replace(rt.policy, backorder=BackorderPolicy(enabled=True))
    raw = orjson.dumps(preorder_placed(4))
    async with rt.app.agents["orders"].test_context() as ctx:
        o = Orders(rt, ctx)
        await o.order(TOPICS.web_orders, raw)  # type: ignore[arg-type]
        (ask,) = o.take("backorder_ops")
        assert (ask["kind"], ask["sku"], ask["qty"]) == ("preorder", "P", 4)
        assert not o.sent("location_ops") and not o.sent("routed_orders")
        refused = {"type": "preorder_refused", "order_id": "O1", "sku": "P", "asked": 4, "left": 1}
        await o.put(TOPICS.order_commands, refused, "O1")
        reason = "preorder of 4 x P beyond expected supply: 1 expected and not yet claimed"
        (dead,) = o.take("dead_letters")
        assert dead["error"] == reason and dead["key"] == "O1"
        assert (dead["source_topic"], dead["offset"]) == (TOPICS.web_orders.name, 0)
        assert dead["raw"].encode() == raw  # the order_placed as it was sent
        counted = rt.metrics.registry.get_sample_value(
            "stockroute_dead_letters_total",
            {"source_topic": TOPICS.web_orders.name, "reason": reason_class(reason)},
        )
        assert counted == 1  # counted like the dead letters the loop makes
        (ev,) = o.take("order_events")
        assert ev["change"] == "preorder_refused" and ev["order_status"] == "unroutable"
        (leave,) = o.take("backorder_ops")
        assert (leave["kind"], leave["sku"]) == ("leave", "P")
        assert not o.sent("location_ops") and not o.sent("routed_orders")  # nothing half-applied
        await o.put(TOPICS.order_commands, refused, "O1")  # a repeated answer: nothing
        assert not o.take("dead_letters") and not o.take("order_events")
        # the worker died before flushing the refusal: re-read, it is told again, the same
        rt.forget_positions()
        o.offsets[(TOPICS.order_commands.name, 0)] = 0
        await o.put(TOPICS.order_commands, refused, "O1")
        assert [d["error"] for d in o.take("dead_letters")] == [reason]
        assert [e["event_id"] for e in o.take("order_events")] == [ev["event_id"]]


def test_a_granted_preorder_is_promised_from_its_expected_date(rt: Runtime) -> None:
    asyncio.run(_granted(rt))


async def _granted(rt: Runtime) -> None:
    world(rt)
    rt.policy = replace(rt.policy, backorder=BackorderPolicy(enabled=True, max_wait_days=30))
    async with rt.app.agents["orders"].test_context() as ctx:
        o = Orders(rt, ctx)
        await o.order(TOPICS.web_orders, preorder_placed(2))
        accepted = {
            "type": "preorder_accepted",
            "order_id": "O1",
            "sku": "P",
            "qty": 2,
            "expected_date": DUE.timestamp(),
            "location_id": "ST-NEAR",
        }
        await o.put(TOPICS.order_commands, accepted, "O1")
        (ro,) = o.take("routed_orders")
        (line,) = ro["backordered_lines"]
        promised = datetime.fromisoformat(ro["promised_date"]).date()
        assert line["promised_date"] == ro["promised_date"]
        assert DUE.date() < promised <= (DUE + timedelta(days=7)).date()
        (ask,) = o.take("location_ops")  # the plain line is routed as usual
        assert [ln["sku"] for ln in ask["lines"]] == ["A"]


async def _two_claims(f: Feeder) -> None:
    """4 units announced at ST-NEAR, two preorders of 2 (O1 then O2), both accepted on them."""
    await f.put(TOPICS.backorder_ops, expect(4), "P")
    await f.put(TOPICS.backorder_ops, op("preorder", order_id="O1", qty=2, since=1.0), "P")
    await f.put(TOPICS.backorder_ops, op("preorder", order_id="O2", qty=2, since=2.0), "P")
    assert [c["type"] for c in f.take("order_commands")] == ["preorder_accepted"] * 2


def test_a_short_receipt_tells_the_dropped_preorder_and_again_on_replay(rt: Runtime) -> None:
    asyncio.run(_short(rt))


async def _short(rt: Runtime) -> None:
    async with rt.app.agents["backorders"].test_context() as ctx:
        f = Feeder(rt, ctx)
        await _two_claims(f)
        arrived = op("arrived", location_id="ST-NEAR", qty=3, ref="RC-1")
        await f.put(TOPICS.backorder_ops, arrived, "P")
        drop = {
            "type": "preorder_dropped",
            "order_id": "O2",
            "sku": "P",
            "qty": 2,
            "left": 0,
            "reason": "short_receipt",
        }
        assert f.take("order_commands") == [drop]
        assert f.take("backorders")[-1]["backordered"] == 4  # O2 waits on, in its place
        # the worker died before the drop was flushed: re-read, it is told again
        rt.forget_positions()
        f.offsets[(TOPICS.backorder_ops.name, 0)] = 3
        await f.put(TOPICS.backorder_ops, arrived, "P")
        assert drop in f.take("order_commands")
        # an order's asked preorder cancelled in part: the claim shrinks, the rest is free
        await f.put(TOPICS.backorder_ops, op("shrink", order_id="O1", qty=1), "P")
        assert f.take("backorders")[-1]["backordered"] == 3
    queue = rt.get(rt.tables["backorder_queues"], "P")
    assert queue["claims"] == {"O1": 1} and queue["dropped"] == {"O2": 2}


def test_late_supply_drops_its_preorders_on_the_network_clock_and_again_on_replay(
    rt: Runtime,
) -> None:
    asyncio.run(_late(rt))


async def _late(rt: Runtime) -> None:
    async with rt.app.agents["backorders"].test_context() as ctx:
        f = Feeder(rt, ctx)
        await _two_claims(f)
        look = backorders.agent().timers[0][1](rt)
        # the timer looks by wall clock, judges by the network clock: still the expected day
        rt.clock.observe(DUE.replace(hour=23, minute=59))
        await look()
        assert f.take("backorder_ops") == []
        midnight = DUE.replace(hour=0) + timedelta(days=1)
        rt.clock.observe(midnight)
        await look()
        (check,) = f.take("backorder_ops")
        assert (check["kind"], check["sku"], check["since"]) == (
            "overdue",
            "P",
            midnight.timestamp(),
        )
        await f.put(TOPICS.backorder_ops, check, "P")
        drops = f.take("order_commands")
        assert [(d["type"], d["order_id"], d["qty"], d["reason"]) for d in drops] == [
            ("preorder_dropped", "O2", 2, "late"),
            ("preorder_dropped", "O1", 2, "late"),
        ]
        record = f.take("backorders")[-1]
        assert (record["backordered"], record["waiting_orders"], record["preorderable"]) == (
            4,
            2,
            0,
        )
        # the worker died before the drops were flushed: re-read, they are told again
        rt.forget_positions()
        f.offsets[(TOPICS.backorder_ops.name, 0)] = 3
        await f.put(TOPICS.backorder_ops, check, "P")
        assert sorted(d["order_id"] for d in f.take("order_commands")) == ["O1", "O2"]
        await backorders.agent().timers[0][1](rt)()  # nothing expected any more: no check
        assert f.take("backorder_ops") == []
        # a preorder asked now is refused: the late supply is counted on no more
        await f.put(TOPICS.backorder_ops, op("preorder", order_id="O3", qty=1, since=3.0), "P")
        (refused,) = f.take("order_commands")
        assert (refused["type"], refused["left"]) == ("preorder_refused", 0)
        # the late receipt comes: plain stock, nothing dropped nor claimed
        arrived = op("arrived", location_id="ST-NEAR", qty=4, ref="RC-1")
        await f.put(TOPICS.backorder_ops, arrived, "P")
        assert f.take("order_commands") == []
    queue = rt.get(rt.tables["backorder_queues"], "P")
    assert queue["claims"] == {} and queue["late"] == {} and queue["landed"] == 0
    assert queue["dropped"] == {"O1": 2, "O2": 2} and sorted(queue["dropped_late"]) == ["O1", "O2"]
    assert [e[1] for e in queue["entries"]] == ["O1", "O2"]


def test_lines_cancelled_while_the_preorder_is_awaited_are_applied(rt: Runtime) -> None:
    asyncio.run(_cancel_awaited(rt))


async def _cancel_awaited(rt: Runtime) -> None:
    world(rt)
    rt.policy = replace(rt.policy, backorder=BackorderPolicy(enabled=True, max_wait_days=30))
    async with rt.app.agents["orders"].test_context() as ctx:
        o = Orders(rt, ctx)
        await o.order(TOPICS.web_orders, preorder_placed(3))
        o.take("backorder_ops")
        cx = {
            "event_id": "cx-1",
            "occurred_at": placed()["occurred_at"],
            "type": "order_cancelled",
            "order_id": "O1",
            "lines": [{"sku": "P", "qty": 1}],
        }
        await o.order(TOPICS.web_orders, cx)
        assert not o.take("dead_letters")
        (shrink,) = o.take("backorder_ops")
        assert (shrink["kind"], shrink["sku"], shrink["qty"]) == ("shrink", "P", 2)
        (ev,) = o.take("order_events")
        assert ev["change"] == "lines_cancelled"
        accepted = {
            "type": "preorder_accepted",
            "order_id": "O1",
            "sku": "P",
            "qty": 3,
            "expected_date": DUE.timestamp(),
            "location_id": "ST-NEAR",
        }
        await o.put(TOPICS.order_commands, accepted, "O1")
        (ro,) = o.take("routed_orders")
        assert [(ln["sku"], ln["qty"]) for ln in ro["backordered_lines"]] == [("P", 2)]
        drop = {"type": "preorder_dropped", "order_id": "O1", "sku": "P", "qty": 2, "left": 0}
        await o.put(TOPICS.order_commands, drop, "O1")
        (ro,) = o.take("routed_orders")
        assert ro["backordered_lines"][0]["expected_date"] is None
        assert [e["change"] for e in o.take("order_events")][-1] == "preorder_dropped"
