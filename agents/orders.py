"""The order agent: sole writer of the orders table; routes, follows and refunds orders.

All order-keyed inputs (web orders, store fulfilment events, returns, and the internal
order-commands topic carrying reservation answers and acceptance time-outs) share one agent,
so one partition owns each order. The agent decodes, hands the input to domain.orders.Machine,
stores the new state and turns the machine's effects into messages.

Replays: the state remembers the last offset applied per input partition; an input at or below
it was already applied (the worker died before committing), so the state is left alone and only
the idempotent effects implied by the current state are re-emitted (Machine.resync).
"""

from __future__ import annotations

import heapq
import logging
import time
from typing import Any

from domain.orders import (
    Context,
    Deadline,
    Effect,
    LifecycleError,
    LoadEffect,
    Machine,
    OrderState,
    Publish,
    StockEffect,
)
from domain.stock import StockOp, sequence
from streams.app import Runtime
from streams.codecs import Rejected, decode, loads, now
from streams.records import FulfilmentEvent, Return, WebOrder
from streams.topics import TOPICS

log = logging.getLogger(__name__)
TIMEOUT_RESEND_S = 10.0  # a time-out command not acted upon is sent again after this long
RESCAN_S = 60.0  # full scan of the deadlines table (besides every assignment change)


def register(rt: Runtime) -> None:
    app = rt.app
    parts = TOPICS.web_orders.partitions
    due: list[tuple[float, str, str]] = []  # (at, shipment_id, order_id): see expire_acceptance
    orders = app.Table("orders", default=None, partitions=parts)
    deadlines = app.Table("acceptance_deadlines", default=None, partitions=parts)
    source = app.topic(
        TOPICS.web_orders.name,
        TOPICS.fulfilment_events.name,
        TOPICS.returns.name,
        TOPICS.order_commands.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    def apply_input(m: Machine, handle: str, record: Any) -> None:
        if handle == "web_orders":
            if record.type == "order_placed":
                m.place(record)
            else:
                m.cancel(record)
        elif handle == "fulfilment_events":
            m.fulfilment(record)
        elif handle == "returns":
            m.return_(record)
        elif record["type"] == "reservation_result":
            m.reservation_result(record)
        elif record["type"] == "acceptance_timeout":
            m.acceptance_timeout(record["shipment_id"])
        else:
            raise Rejected(f"unknown order command {record['type']!r}")

    def parse(handle: str, raw: bytes | None) -> tuple[str, Any]:
        if handle == "web_orders":
            order = decode(WebOrder, raw)
            return order.order_id, order
        if handle == "fulfilment_events":
            ev = decode(FulfilmentEvent, raw)
            if ev.location_id not in rt.locations.by_id:
                raise Rejected(f"unknown location_id {ev.location_id!r}")
            return ev.order_id, ev
        if handle == "returns":
            ret = decode(Return, raw)
            return ret.order_id, ret
        try:
            cmd = loads(raw or b"")
            return str(cmd["order_id"]), cmd
        except Exception as exc:  # noqa: BLE001
            raise Rejected(f"unreadable order command: {exc!r}") from None

    async def execute(effects: list[Effect], order_id: str, origin: str, offset: int) -> None:
        for i, eff in enumerate(effects):
            seq = sequence(offset, i)
            if isinstance(eff, StockEffect):
                op = StockOp(
                    kind=eff.kind,  # type: ignore[arg-type]
                    sku=eff.sku,
                    location_id=eff.location_id,
                    origin=origin,
                    seq=seq,
                    qty=eff.qty,
                    reservation_id=eff.reservation_id,
                    order_id=order_id,
                )
                if eff.kind == "reserve":
                    rt.availability.take(eff.sku, eff.location_id, eff.qty)
                await rt.send("stock_ops", eff.sku, op.to_dict())
            elif isinstance(eff, LoadEffect):
                if eff.kind == "open":
                    rt.loads.add(eff.location_id, eff.units)
                await rt.send(
                    "load_ops",
                    eff.location_id,
                    {
                        "kind": eff.kind,
                        "location_id": eff.location_id,
                        "shipment_id": eff.shipment_id,
                        "units": eff.units,
                        "step": eff.step,
                        "seconds": eff.seconds,
                        "at": time.time(),
                        "origin": origin,
                        "seq": seq,
                    },
                )
            elif isinstance(eff, Publish):
                await rt.send(eff.handle, order_id, eff.value)
            elif isinstance(eff, Deadline):
                if eff.at is None:
                    if rt.get(deadlines, eff.shipment_id) is not None:
                        await rt.put(deadlines, eff.shipment_id, None)
                else:
                    value = {"order_id": order_id, "at": eff.at}
                    await rt.put(deadlines, eff.shipment_id, value)
                    heapq.heappush(due, (eff.at, eff.shipment_id, order_id))

    @app.agent(source, name="orders", concurrency=1)
    async def run_orders(stream):  # type: ignore[no-untyped-def]
        await rt.wait_views()
        async for event in stream.events():
            if not rt.in_order(event):
                continue
            msg = event.message
            handle = TOPICS.by_name[msg.topic].handle
            origin = rt.origin(event)
            try:
                order_id, record = parse(handle, msg.value)
                if msg.key is None or msg.key.decode("utf-8", "replace") != order_id:
                    raise Rejected(f"message key must be the order_id {order_id!r}")
                raw_state = rt.get(orders, order_id)
                state = OrderState.from_dict(raw_state) if raw_state else None
                ctx = Context(
                    now=now(),
                    locations=rt.locations.by_id,
                    stock=rt.availability,
                    loads=rt.loads.by_id,
                    policy=rt.policy,
                    acceptance_timeout_s=rt.policy.acceptance_timeout_s,
                    event_prefix=f"{origin}:{msg.offset}",
                )
                m = Machine(state, ctx)
                if state is not None and state.positions.get(origin, -1) >= msg.offset:
                    m.resync()
                    await execute(m.effects, order_id, origin, msg.offset)
                    continue
                apply_input(m, handle, record)
            except (Rejected, LifecycleError) as exc:
                await rt.dead_letter(event, getattr(exc, "reason", None) or str(exc))
                continue
            if m.state is not None:
                m.state.positions[origin] = msg.offset
                await rt.put(orders, order_id, m.state.to_dict())
            await execute(m.effects, order_id, origin, msg.offset)

    # Deadlines due soonest first. Scanning the whole table every second costs one RocksDB read
    # and JSON decode per open shipment per second (tens of thousands at peak), so the timer
    # pops this heap instead: the agent pushes every deadline it sets, and the table is scanned
    # only when this worker's assignment or recovery state changes (deadlines it did not set
    # itself) and every RESCAN_S as a safety net. A popped entry is checked against the table,
    # so a cleared or replaced deadline is skipped.
    scanned: dict[str, Any] = {"at": 0.0, "key": None}

    def assignment_key() -> Any:
        try:
            assigned = frozenset(app.consumer.assignment())
        except Exception:  # noqa: BLE001 - consumer not started yet
            assigned = frozenset()
        return assigned, app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]

    @app.timer(interval=1.0)
    async def expire_acceptance() -> None:
        t = time.time()
        key = assignment_key()
        if key != scanned["key"] or t - scanned["at"] >= RESCAN_S:
            scanned["key"], scanned["at"] = key, t
            due[:] = [(d["at"], sid, d["order_id"]) for sid, d in list(deadlines.items()) if d]
            heapq.heapify(due)
        while due and due[0][0] <= t:
            _, shipment_id, order_id = heapq.heappop(due)
            d = rt.get(deadlines, shipment_id)
            if d is None or d["at"] > t:
                continue  # cleared (accepted, re-routed, cancelled) or moved later
            await rt.send(
                "order_commands",
                order_id,
                {"type": "acceptance_timeout", "order_id": order_id, "shipment_id": shipment_id},
            )
            heapq.heappush(due, (t + TIMEOUT_RESEND_S, shipment_id, order_id))
