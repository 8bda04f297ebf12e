"""Agent tier: the orders handler in Faust's test context (memory store, no broker).

One order walked through the real agent: a routing round (reserve asked of the SKU's owner),
the owner's answer (decision published, load opened, deadline written), a store's rejection
(release, re-route elsewhere, status `rerouting`), a cancellation (everything released), and
the dead-letters of inputs that break the order's rules.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from agents import orders
from streams import bundles, faust_fixes
from streams.app import Runtime
from streams.records import Location
from streams.topics import TOPICS, AnyTopic
from tests.agent.conftest import Feeder

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC).isoformat()


def store(location_id: str, lat: float) -> Location:
    return Location(
        location_id=location_id,
        kind="store",
        name=location_id,
        lat=lat,
        lon=2.35,
        ship_from_store=True,
        capacity_per_hour=30,
        max_backlog=50,
    )


def placed(order_id: str = "O1") -> dict[str, Any]:
    return {
        "event_id": f"ev-{order_id}",
        "occurred_at": NOW,
        "type": "order_placed",
        "order_id": order_id,
        "customer": {"lat": 48.85, "lon": 2.35},
        "delivery": {"mode": "home"},
        "lines": [{"sku": "A", "qty": 2, "unit_price": 10.0}],
        "currency": "EUR",
        "payment": {"method": "card", "reference": "PAY-1"},
    }


class Orders(Feeder):
    """The orders agent's inputs, and the location owners' answers."""

    async def answer(self, ask: dict[str, Any], ok: bool = True, saturated: bool = False) -> None:
        await self.put(
            TOPICS.order_commands,
            {
                "type": "shipment_reservation",
                "order_id": ask["order_id"],
                "shipment_id": ask["shipment_id"],
                "location_id": ask["location_id"],
                "ok": ok,
                "skus": [ln["sku"] for ln in ask["lines"]],
                "saturated": saturated,
            },
            ask["order_id"],
        )

    async def order(self, topic: AnyTopic, value: dict[str, Any], key: str = "O1") -> None:
        await self.put(topic, value, key)

    def state(self, order_id: str = "O1") -> Any:
        return self.rt.get(self.rt.tables["orders"], order_id)


def world(rt: Runtime) -> None:
    rt.locations.by_id["ST-NEAR"] = store("ST-NEAR", 48.86)
    rt.locations.by_id["ST-FAR"] = store("ST-FAR", 48.95)
    rt.availability.set("A", "ST-NEAR", 10)
    rt.availability.set("A", "ST-FAR", 10)


def test_an_order_is_routed_rejected_rerouted_and_cancelled(rt: Runtime) -> None:
    asyncio.run(_walk(rt))


async def _walk(rt: Runtime) -> None:
    world(rt)
    async with rt.app.agents["orders"].test_context() as ctx:
        o = Orders(rt, ctx)
        # a routing round: one ask to the location's owner; nothing published until it answers
        await o.order(TOPICS.web_orders, placed())
        (ask,) = o.take("location_ops")
        assert ask["kind"] == "reserve_shipment" and ask["location_id"] == "ST-NEAR"
        assert ask["lines"] == [{"sku": "A", "qty": 2}]
        assert ask["origin"] == f"{TOPICS.web_orders.code}:0" and ask["seq"] == [0, 0]
        assert not o.sent("routed_orders") and not o.sent("order_events")

        # the owner's answer (slot and units granted): the decision, the acceptance deadline
        await o.answer(ask)
        (decision,) = o.take("routed_orders")
        assert decision["status"] == "routed" and decision["attempt"] == 1
        (shipment,) = decision["shipments"]
        sid = shipment["shipment_id"]
        assert shipment["location_id"] == "ST-NEAR"
        (event,) = o.take("order_events")
        assert (event["change"], event["order_status"]) == ("routed", "routed")
        assert not o.take("location_ops")  # the slot was taken with the units
        assert rt.get(rt.tables["acceptance_deadlines"], sid)["order_id"] == "O1"

        # the store rejects: release, re-route elsewhere, and the order is `rerouting`
        await o.order(
            TOPICS.fulfilment_events,
            {
                "event_id": "fe-1",
                "occurred_at": NOW,
                "order_id": "O1",
                "shipment_id": sid,
                "location_id": "ST-NEAR",
                "type": "rejected",
                "reason": "no staff",
            },
        )
        ops = o.take("location_ops")
        assert [(op["kind"], op["location_id"]) for op in ops] == [
            ("release_shipment", "ST-NEAR"),
            ("reserve_shipment", "ST-FAR"),
        ]
        (rejected,) = o.take("order_events")
        assert (rejected["change"], rejected["order_status"]) == ("shipment_rejected", "rerouting")
        assert rt.get(rt.tables["acceptance_deadlines"], sid) is None
        await o.answer(ops[1])
        (decision,) = o.take("routed_orders")
        assert decision["attempt"] == 2 and decision["shipments"][0]["location_id"] == "ST-FAR"
        assert "ST-NEAR" in decision["reasons"]["excluded"]
        o.take("order_events")

        # the customer cancels: the new shipment's stock and slot are given back
        await o.order(
            TOPICS.web_orders,
            {"event_id": "cx-1", "occurred_at": NOW, "type": "order_cancelled", "order_id": "O1"},
        )
        (release,) = o.take("location_ops")
        assert (release["kind"], release["location_id"]) == ("release_shipment", "ST-FAR")
        (cancelled,) = o.take("order_events")
        assert (cancelled["change"], cancelled["order_status"]) == ("cancelled", "cancelled")
        assert o.state()["cancelled"] is True
        assert not o.sent("dead_letters")


def test_inputs_that_break_the_order_rules_are_dead_lettered_and_change_nothing(
    rt: Runtime,
) -> None:
    asyncio.run(_refusals(rt))


async def _refusals(rt: Runtime) -> None:
    world(rt)
    async with rt.app.agents["orders"].test_context() as ctx:
        o = Orders(rt, ctx)
        await o.order(TOPICS.web_orders, placed("O2"), key="O1")  # wrong key
        await o.order(
            TOPICS.returns,
            {
                "event_id": "r",
                "occurred_at": NOW,
                "order_id": "O9",
                "location_id": "ST-NEAR",
                "lines": [{"sku": "A", "qty": 1, "resellable": True}],
            },
            key="O9",
        )  # never placed
        await o.order(TOPICS.order_commands, {"type": "nonsense", "order_id": "O1"})
        reasons = [d["error"] for d in o.sent("dead_letters")]
        assert reasons[0] == "message key must be the order_id 'O2'"
        assert reasons[1] == "unknown order: never placed"
        assert reasons[2].startswith("invalid OrderCommand")
        assert len(reasons) == 3
        assert o.state("O2") is None and o.state("O9") is None
        assert not o.sent("location_ops") and not o.sent("order_events")


def test_an_input_read_again_after_a_crash_re_emits_without_applying_twice(rt: Runtime) -> None:
    asyncio.run(_replay(rt))


async def _replay(rt: Runtime) -> None:
    world(rt)
    async with rt.app.agents["orders"].test_context() as ctx:
        o = Orders(rt, ctx)
        await o.order(TOPICS.web_orders, placed())
        (ask,) = o.take("location_ops")
        await o.answer(ask)
        before = o.state()
        o.take("routed_orders")
        # the worker died before committing: the same order_commands offset is read again
        rt.forget_positions()
        o.offsets[(TOPICS.order_commands.name, 0)] -= 1
        await o.answer(ask)
        assert o.state() == before  # not applied twice
        (again,) = o.take("routed_orders")  # the decision is re-published, same attempt
        assert again["attempt"] == 1 and again["reasons"]["republished"] is True


def test_a_release_lost_with_its_worker_is_sent_again_when_its_input_is_read_again(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed after it kept the order's state but before the release an input made
    was sent: the inputs are read again as replays, and each sends its very same ops again
    (same positions). Nothing in the state implies that release (an ask granted after the
    round moved on is held by no shipment), so without it the units would stay reserved for
    nobody. The local state may be ahead by several inputs: each keeps its ops until the
    input partition is committed past it."""
    asyncio.run(_lost_release(rt, monkeypatch))


async def _lost_release(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    world(rt)
    commands = (TOPICS.order_commands.name, 0)
    async with rt.app.agents["orders"].test_context() as ctx:
        o = Orders(rt, ctx)
        await o.order(TOPICS.web_orders, placed())
        (first,) = o.take("location_ops")
        assert first["location_id"] == "ST-NEAR"
        # refused (no slot left there): the order plans again, elsewhere
        await o.answer(first, ok=False, saturated=True)
        (second,) = o.take("location_ops")
        assert second["location_id"] == "ST-FAR" and second["shipment_id"] != first["shipment_id"]
        # the first ask, asked again (a turn handed again), was granted after all: held by
        # nobody, given back
        await o.answer(first)
        (release,) = o.take("location_ops")
        assert release["kind"] == "release_shipment"
        assert (release["shipment_id"], release["location_id"]) == (first["shipment_id"], "ST-NEAR")
        await o.answer(second)  # the round holds: routed at ST-FAR
        assert not o.take("location_ops")
        kept = o.state()

        # the worker died with its state kept and neither input's outputs sent: both read again
        rt.forget_positions()
        o.offsets[commands] -= 2
        await o.answer(first)
        assert [op for op in o.take("location_ops") if op["kind"] == "release_shipment"] == [
            release  # the same op, same position: an owner that applied it drops it
        ]
        await o.answer(second)
        assert not [op for op in o.take("location_ops") if op["kind"] == "release_shipment"]
        assert o.state() == kept  # replays: nothing applied twice

        # once the partition is committed past an input, it is never read again: its ops go
        monkeypatch.setattr(faust_fixes, "committed_offset", lambda app, tp: o.offsets[commands])
        await o.answer(second)  # a repeated answer, applied: the kept ops are pruned
        assert o.state()["sent_ops"] == []


def test_business_time_is_the_network_clock_and_timeouts_fire_on_it(rt: Runtime) -> None:
    """Stamps, load times and deadlines come from the inputs' occurred_at, not the wall clock;
    the timer fires a deadline only once an input moved the network clock past it."""
    asyncio.run(_network_time(rt))


async def _network_time(rt: Runtime) -> None:
    world(rt)
    night = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
    async with rt.app.agents["orders"].test_context() as ctx:
        o = Orders(rt, ctx)
        await o.order(TOPICS.web_orders, {**placed(), "occurred_at": night.isoformat()})
        assert rt.clock.now() == night
        (ask,) = o.take("location_ops")
        assert ask["at"] == night.timestamp()
        await o.answer(ask)  # an internal answer: no occurred_at, stamped at the clock
        (decision,) = o.take("routed_orders")
        assert datetime.fromisoformat(decision["decided_at"]) == night
        sid = decision["shipments"][0]["shipment_id"]
        timeout = rt.policy.acceptance_timeout_s
        deadline = rt.get(rt.tables["acceptance_deadlines"], sid)["at"]
        assert deadline == night.timestamp() + timeout  # ST-NEAR has no calendar: always open

        expire = orders.agent().timers[0][1](rt)
        await expire()
        assert not o.take("order_commands")  # the clock has not reached the deadline
        later = {**placed("O2"), "event_id": "ev-late", "occurred_at": night.isoformat()}
        later["occurred_at"] = datetime.fromtimestamp(deadline + 1, UTC).isoformat()
        await o.order(TOPICS.web_orders, later, key="O2")
        await expire()
        (fired,) = o.take("order_commands")
        assert fired == {"type": "acceptance_timeout", "order_id": "O1", "shipment_id": sid}


def test_answers_bundled_in_one_record_are_each_applied_once(rt: Runtime) -> None:
    """The owners' answers to two shipments of one order come in one bundle record
    (streams/bundles.py): both are applied, in order, as inputs of their own; the record read
    again after a crash applies neither twice."""
    asyncio.run(_bundled_answers(rt))


async def _bundled_answers(rt: Runtime) -> None:
    rt.locations.by_id["ST-NEAR"] = store("ST-NEAR", 48.86)
    rt.locations.by_id["ST-FAR"] = store("ST-FAR", 48.95)
    rt.availability.set("A", "ST-NEAR", 10)
    rt.availability.set("B", "ST-FAR", 10)
    order = placed()
    order["lines"].append({"sku": "B", "qty": 1, "unit_price": 5.0})
    async with rt.app.agents["orders"].test_context() as ctx:
        o = Orders(rt, ctx)
        await o.order(TOPICS.web_orders, order)
        asks = o.take("location_ops")
        assert sorted(a["location_id"] for a in asks) == ["ST-FAR", "ST-NEAR"]

        def reply(ask: dict[str, Any]) -> tuple[bytes, bytes]:
            value = {
                "type": "shipment_reservation",
                "order_id": "O1",
                "shipment_id": ask["shipment_id"],
                "location_id": ask["location_id"],
                "ok": True,
                "skus": [ln["sku"] for ln in ask["lines"]],
            }
            return b"O1", orjson.dumps(value)

        bundle = bundles.join([reply(a) for a in asks])
        await o.put(TOPICS.order_commands, bundle, "ignored")
        (routed,) = o.take("routed_orders")
        assert routed["status"] == "routed" and len(routed["shipments"]) == 2
        state = o.state()
        assert state["positions"]["oc:0"] == [0, 1]  # the record's offset, its second message
        events = [e["event_id"] for e in o.take("order_events")]
        assert len(events) == len(set(events))  # ids of the two messages never collide

        # the worker died before committing: the bundle is read again
        rt.forget_positions()
        o.offsets[(TOPICS.order_commands.name, 0)] -= 1
        await o.put(TOPICS.order_commands, bundle, "ignored")
        assert o.state() == state  # neither applied twice
        again = o.take("routed_orders")  # each message re-publishes what its state implies
        assert [r["attempt"] for r in again] == [routed["attempt"]] * 2
        assert all(r["reasons"]["republished"] for r in again)
