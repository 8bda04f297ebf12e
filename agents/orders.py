"""The order handler: sole writer of the orders table; routes, follows and refunds orders.

All order-keyed inputs (web orders, store fulfilment events, returns, and the internal
order-commands topic carrying reservation answers and acceptance time-outs) share one agent,
so one partition owns each order. The handler hands the input to domain.orders.Machine and maps
the machine's effects one-to-one to typed messages: stock and load effects become positioned
ops, records are published to their topics, deadlines are written to `acceptance_deadlines`.

Replays: the order state records the last offset applied per input partition (the runtime
keeps it, streams/loop.py); an input at or below it was already applied (the worker died before
committing), so the state is left alone and only the idempotent effects implied by the current
state are re-emitted (Machine.resync).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Awaitable, Callable
from typing import Any

from domain.orders import (
    BackorderEffect,
    Context,
    Deadline,
    Effect,
    LifecycleError,
    LoadEffect,
    Machine,
    OrderState,
    Refusal,
    ReleaseEffect,
    ReserveEffect,
    ShipByCheck,
    StockEffect,
)
from streams import faust_fixes
from streams.app import Runtime
from streams.codecs import Rejected, dead_letter
from streams.loop import Agent, Ctx, Put, Send, StateSpec
from streams.loop import Effect as Out
from streams.records import (
    AcceptanceTimeout,
    BackorderOp,
    BackorderRetry,
    FulfilmentEvent,
    LoadOp,
    OrderEvent,
    PreorderAccepted,
    PreorderDropped,
    PreorderRefused,
    Refund,
    ReleaseShipment,
    ReservationResult,
    ReservedLine,
    ReserveShipment,
    Return,
    RoutedOrder,
    ShipByPassed,
    ShipmentReservation,
    StockOp,
    WebOrder,
)
from streams.topics import TOPICS

TIMEOUT_RESEND_S = 10.0  # a time-out not acted upon is sent again after this long (wall clock)
RESCAN_S = 60.0  # full scan of the deadlines table (besides every assignment change)
ORDERS = "orders"
DEADLINES = "acceptance_deadlines"
SHIP_BY = "ship_by_checks"

OrderInput = (
    WebOrder
    | FulfilmentEvent
    | Return
    | ReservationResult
    | ShipmentReservation
    | AcceptanceTimeout
    | ShipByPassed
    | BackorderRetry
    | PreorderAccepted
    | PreorderRefused
    | PreorderDropped
)


def _apply(m: Machine, msg: OrderInput) -> None:
    if isinstance(msg, WebOrder):
        if msg.type == "order_placed":
            m.place(msg)
        else:
            m.cancel(msg)
    elif isinstance(msg, FulfilmentEvent):
        m.fulfilment(msg)
    elif isinstance(msg, Return):
        m.return_(msg)
    elif isinstance(msg, ShipmentReservation):
        m.shipment_reservation(msg)
    elif isinstance(msg, ReservationResult):
        m.reservation_result(msg)
    elif isinstance(msg, ShipByPassed):
        m.ship_by_passed(msg.shipment_id)
    elif isinstance(msg, BackorderRetry):
        m.backorder_retry(msg)
    elif isinstance(msg, PreorderAccepted):
        m.preorder_accepted(msg)
    elif isinstance(msg, PreorderRefused):
        m.preorder_refused(msg)
    elif isinstance(msg, PreorderDropped):
        m.preorder_dropped(msg)
    else:
        m.acceptance_timeout(msg.shipment_id)


def _context(ctx: Ctx) -> Context:
    return Context(
        now=ctx.now,
        locations=ctx.locations.by_id,
        stock=ctx.availability,
        loads=ctx.loads.by_id,
        policy=ctx.policy,
        waiting=ctx.backorders.by_sku,
        acceptance_timeout_s=ctx.policy.acceptance_timeout_s,
        event_prefix=ctx.here,
        source=(ctx.topic.name, ctx.partition, ctx.offset, ctx.raw or b""),
    )


class DueHeap:
    """(at, shipment_id, order_id) entries, soonest first, for a timer: the handler pushes every
    one it sets, the timer pops what is due, and now and then rebuilds the heap from the table
    (entries it did not set itself: a new assignment, a recovered table).

    The rebuild reads the table while the event loop goes on (Runtime.scan: a table of tens of
    thousands of open shipments, decoded in one go, held the loop ~0.3 s, and every input and
    `/promise` request behind it). Entries the handler pushes meanwhile may be missing from
    what the scan reads, so they are kept and added to the rebuilt heap. A popped entry is
    checked against the table by the timer, so entries cleared meanwhile do no harm."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, str, str]] = []
        self._meanwhile: list[tuple[float, str, str]] | None = None

    def push(self, entry: tuple[float, str, str]) -> None:
        heapq.heappush(self.heap, entry)
        if self._meanwhile is not None:
            self._meanwhile.append(entry)

    async def rebuild(self, rt: Runtime, table: Any) -> None:
        self._meanwhile = []
        try:
            found = [(d["at"], key, d["order_id"]) async for key, d in rt.scan(table) if d]
        finally:
            meanwhile, self._meanwhile = self._meanwhile, None
        found.extend(meanwhile)
        heapq.heapify(found)
        self.heap = found


def agent() -> Agent:
    # Deadlines due soonest first, for the timers below.
    due = DueHeap()  # acceptance deadlines
    ship_by = DueHeap()  # ship_by checks (late shipments)

    def out(effects: list[Effect], order_id: str, ctx: Ctx) -> list[Out]:
        """The machine's effects as messages and table writes, in order."""
        msgs: list[Out] = []
        for eff in effects:
            if isinstance(eff, ReserveEffect):
                for sku, qty in eff.lines:
                    ctx.availability.take(sku, eff.location_id, qty)
                ctx.loads.add(eff.location_id, sum(qty for _, qty in eff.lines))
                ask = ReserveShipment(
                    order_id=order_id,
                    shipment_id=eff.shipment_id,
                    location_id=eff.location_id,
                    lines=[ReservedLine(sku=sku, qty=qty) for sku, qty in eff.lines],
                    origin=ctx.origin,
                    seq=ctx.position(),
                    at=ctx.now.timestamp(),
                    due=eff.due,
                )
                msgs.append(Send(TOPICS.location_ops, eff.location_id, ask))
            elif isinstance(eff, ReleaseEffect):
                release = ReleaseShipment(
                    order_id=order_id,
                    shipment_id=eff.shipment_id,
                    location_id=eff.location_id,
                    skus=list(eff.skus),
                    origin=ctx.origin,
                    seq=ctx.position(),
                )
                msgs.append(Send(TOPICS.location_ops, eff.location_id, release))
            elif isinstance(eff, StockEffect):
                op = StockOp(
                    kind=eff.kind,  # type: ignore[arg-type]
                    sku=eff.sku,
                    location_id=eff.location_id,
                    origin=ctx.origin,
                    seq=ctx.position(),
                    qty=eff.qty,
                    reservation_id=eff.reservation_id,
                    order_id=order_id,
                )
                if eff.kind == "reserve":
                    ctx.availability.take(eff.sku, eff.location_id, eff.qty)
                msgs.append(Send(TOPICS.location_ops, eff.location_id, op))
            elif isinstance(eff, LoadEffect):
                if eff.kind == "open":
                    ctx.loads.add(eff.location_id, eff.units)
                load = LoadOp(
                    kind=eff.kind,  # type: ignore[arg-type]
                    location_id=eff.location_id,
                    shipment_id=eff.shipment_id,
                    origin=ctx.origin,
                    seq=ctx.position(),
                    at=ctx.now.timestamp(),
                    units=float(eff.units),
                    step=eff.step,
                    seconds=eff.seconds,
                )
                msgs.append(Send(TOPICS.location_ops, eff.location_id, load))
            elif isinstance(eff, Deadline):
                if eff.at is None:
                    if ctx.get(DEADLINES, eff.shipment_id) is not None:
                        msgs.append(Put(DEADLINES, eff.shipment_id, None))
                else:
                    value = {"order_id": order_id, "at": eff.at}
                    msgs.append(Put(DEADLINES, eff.shipment_id, value))
                    due.push((eff.at, eff.shipment_id, order_id))
            elif isinstance(eff, ShipByCheck):
                msgs.append(Put(SHIP_BY, eff.shipment_id, {"order_id": order_id, "at": eff.at}))
                ship_by.push((eff.at, eff.shipment_id, order_id))
            elif isinstance(eff, BackorderEffect):
                turn = BackorderOp(
                    kind=eff.kind,  # type: ignore[arg-type]
                    sku=eff.sku,
                    order_id=order_id,
                    qty=eff.qty,
                    since=eff.since,
                    reason=eff.reason,
                )
                msgs.append(Send(TOPICS.backorder_ops, eff.sku, turn))
            elif isinstance(eff, RoutedOrder):
                msgs.append(Send(TOPICS.routed_orders, order_id, eff))
            elif isinstance(eff, OrderEvent):
                msgs.append(Send(TOPICS.order_events, order_id, eff))
            elif isinstance(eff, Refund):
                msgs.append(Send(TOPICS.refunds, order_id, eff))
            elif isinstance(eff, Refusal):
                msgs.append(Send(TOPICS.dead_letters, order_id, _refused(order_id, eff)))
        return msgs

    def handle(
        state: OrderState | None, msg: OrderInput, ctx: Ctx
    ) -> tuple[OrderState | None, list[Out]]:
        if isinstance(msg, FulfilmentEvent) and msg.location_id not in ctx.locations.by_id:
            raise Rejected(f"unknown location_id {msg.location_id!r}")
        m = Machine(state, _context(ctx))
        try:
            _apply(m, msg)
        except LifecycleError as exc:
            raise Rejected(str(exc)) from None
        msgs = out(m.effects, msg.order_id, ctx)
        if isinstance(msg, ShipByPassed) and ctx.get(SHIP_BY, msg.shipment_id) is not None:
            msgs.append(Put(SHIP_BY, msg.shipment_id, None))  # checked: once is enough
        if m.state is not None:
            sent = [_dump(s.value) for s in msgs if _unimplied(s)]
            m.state.sent_ops = _uncommitted(m.state.sent_ops, ctx) + sent
        return m.state, msgs

    def replay(state: OrderState, msg: OrderInput, ctx: Ctx) -> list[Out]:
        """An input read again after its worker died with the state kept: what it sent may
        be lost. Its ops the state does not imply (a release: the units granted to a round
        abandoned, or to an ask granted after the order moved on, are held by no shipment
        of the state) are sent again as they were, positions included, so an owner that
        applied them drops them and one that never saw them applies them once; then what
        the state implies (Machine.resync), numbered after them as it was the first time
        (an ask planned after a release)."""
        again = _sent_again(state, ctx)
        m = Machine(state, _context(ctx))
        if isinstance(msg, PreorderRefused):
            m.refusal_replayed(msg)
        elif isinstance(msg, PreorderDropped):
            m.drop_replayed(msg)
        else:
            m.resync()
        return again + out(m.effects, msg.order_id, ctx)

    def expirer(rt: Runtime) -> Callable[[], Awaitable[None]]:
        """Deadlines are network times (business hours of the location, domain/orders.py): a
        tick fires those at or before the worker's network clock, never the wall clock, which
        only decides when ticks run. Before the clock knows any time nothing fires.

        Scanning the whole deadlines table every second costs one RocksDB read and JSON
        decode per open shipment per second (tens of thousands at peak), so the timer pops the
        heap instead; the table is scanned only when this worker's assignment or recovery
        state changes (deadlines it did not set itself) and every RESCAN_S as a safety net. A
        popped entry is checked against the table, so a cleared or replaced deadline is
        skipped. A time-out sent but not yet acted upon is sent again TIMEOUT_RESEND_S
        wall-clock seconds later (the machine ignores a repeated one)."""
        scanned: dict[str, Any] = {"at": 0.0, "key": None}
        resend: list[tuple[float, str, str]] = []  # (wall time, shipment_id, order_id)
        deadlines = rt.tables[DEADLINES]

        def assignment_key() -> Any:
            try:
                assigned = frozenset(rt.app.consumer.assignment())
            except Exception:  # noqa: BLE001 - consumer not started yet
                assigned = frozenset()
            return assigned, faust_fixes.tables_recovered(rt.app)

        async def fire(shipment_id: str, order_id: str, wall: float) -> None:
            timeout = AcceptanceTimeout(order_id=order_id, shipment_id=shipment_id)
            await rt.send(TOPICS.order_commands, order_id, timeout)
            heapq.heappush(resend, (wall + TIMEOUT_RESEND_S, shipment_id, order_id))

        async def expire_acceptance() -> None:
            wall = time.monotonic()
            key = assignment_key()
            if key != scanned["key"] or wall - scanned["at"] >= RESCAN_S:
                scanned["key"], scanned["at"] = key, wall
                await due.rebuild(rt, deadlines)
            t = rt.clock.timestamp()
            if t is None:
                return
            while due.heap and due.heap[0][0] <= t:
                _, shipment_id, order_id = heapq.heappop(due.heap)
                d = rt.get(deadlines, shipment_id)
                if d is None or d["at"] > t:
                    continue  # cleared (accepted, re-routed, cancelled) or moved later
                await fire(shipment_id, order_id, wall)
            while resend and resend[0][0] <= wall:
                _, shipment_id, order_id = heapq.heappop(resend)
                d = rt.get(deadlines, shipment_id)
                if d is not None and d["at"] <= t:
                    await fire(shipment_id, order_id, wall)

        return expire_acceptance

    def late_checker(rt: Runtime) -> Callable[[], Awaitable[None]]:
        """Ship-by checks fire when the network clock (never the wall clock) passes a
        shipment's ship_by: the order machine reports it `late` once if it is still being
        prepared. The heap is rebuilt from the table like the acceptance deadlines'; a check
        already sent may be sent again after a rescan, which the machine ignores."""
        scanned: dict[str, Any] = {"at": 0.0, "key": None}
        checks = rt.tables[SHIP_BY]

        async def check_ship_by() -> None:
            wall = time.monotonic()
            key = (frozenset(_assigned(rt)), faust_fixes.tables_recovered(rt.app))
            if key != scanned["key"] or wall - scanned["at"] >= RESCAN_S:
                scanned["key"], scanned["at"] = key, wall
                await ship_by.rebuild(rt, checks)
            t = rt.clock.timestamp()
            if t is None:
                return
            while ship_by.heap and ship_by.heap[0][0] <= t:
                _, shipment_id, order_id = heapq.heappop(ship_by.heap)
                if rt.get(checks, shipment_id) is None:
                    continue  # checked already
                passed = ShipByPassed(order_id=order_id, shipment_id=shipment_id)
                await rt.send(TOPICS.order_commands, order_id, passed)

        return check_ship_by

    return Agent(
        name="orders",
        inputs=(TOPICS.web_orders, TOPICS.fulfilment_events, TOPICS.returns, TOPICS.order_commands),
        handle=handle,
        state=StateSpec(
            ORDERS,
            key=lambda msg: msg.order_id,
            decode=lambda raw: OrderState.from_dict(raw) if raw else None,
            encode=OrderState.to_dict,
        ),
        tables=(DEADLINES, SHIP_BY),
        keyed_by="order_id",
        replay=replay,
        timers=((1.0, expirer), (1.0, late_checker)),
        batched=True,  # eager batches (streams/loop.py): no wait at low load
    )


def _unimplied(eff: Out) -> bool:
    """An op to a location owner that the order's state does not imply once the input is
    applied: anything but an ask (Machine.resync asks again for the round under way)."""
    if not isinstance(eff, Send) or eff.topic is not TOPICS.location_ops:
        return False
    op = eff.value
    return not isinstance(op, ReserveShipment) and not (
        isinstance(op, StockOp) and op.kind == "reserve"
    )


def _dump(op: Any) -> dict[str, Any]:
    return dict(op.model_dump(mode="json"))


def _uncommitted(ops: list[dict[str, Any]], ctx: Ctx) -> list[dict[str, Any]]:
    """The kept ops whose inputs may still be read again: not yet committed, or not known to
    be. A worker's local state may be ahead of what it delivered by several inputs (its
    store is written at once, the changelog and the ops when the producer sends), so the ops
    of every input since the commit are kept, not only the last one's."""
    return [
        op for op in ops if (done := ctx.committed(op["origin"])) is None or op["seq"][0] >= done
    ]


def _sent_again(state: OrderState, ctx: Ctx) -> list[Out]:
    """The ops the input being read again sent the first time, unchanged; its next positions
    are numbered after them. Only that input's: each input read again sends its own, in
    input order, as the owners saw them the first time (an op of a later input sent early
    would make the ops of the inputs in between look like replays there)."""
    ops = [
        op
        for d in state.sent_ops
        if d["origin"] == ctx.origin and ctx.owns((d["seq"][0], d["seq"][1]))
        if isinstance(
            op := TOPICS.location_ops.adapter.validate_python(d), StockOp | ReleaseShipment | LoadOp
        )
    ]
    for op in ops:
        ctx.numbered_past(op.seq)
    return [Send(TOPICS.location_ops, op.location_id, op) for op in ops]


def _refused(order_id: str, eff: Refusal) -> Any:
    """The order_placed refused after the fact, as its dead letter (its position and bytes)."""
    topic, partition, offset, text = eff.source or (TOPICS.web_orders.name, -1, -1, "")
    return dead_letter(
        topic=topic,
        partition=partition,
        offset=offset,
        key=order_id.encode(),
        raw=text.encode("utf-8"),
        error=eff.reason,
    )


def _assigned(rt: Runtime) -> set[Any]:
    try:
        return set(rt.app.consumer.assignment())
    except Exception:  # noqa: BLE001 - consumer not started yet
        return set()
