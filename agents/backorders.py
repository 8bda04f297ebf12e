"""The backorder queues: sole writer of each SKU's queue of waiting orders (domain/backorders.py).

Keyed by SKU on the internal backorder-ops topic: orders join (`wait`) and `leave` a SKU's queue
(agents/orders.py), location owners signal the SKU's availability going up (`stock_up`,
agents/location_owner.py). One partition owns each SKU, so its queue has one writer, and only
its head holds a turn (a BackorderRetry on order-commands) at a time: first come first served
with any number of workers. Each change republishes the SKU's `backorders` record.

Replays: the queue records the last offset applied per input partition; an input at or below
it was applied before the worker died, so only the turn in flight, the preorder acceptances of
its claims, the drops of claims a short receipt ended and the record are sent again (all
idempotent: an order answers a repeated turn once and ignores an acceptance or a drop it has).
A turn whose answer never came (its order's worker died before sending it) is sent again by
the timer after RESEND_S, and at once by a worker that took the queue over (it cannot know
whether the turn reached the order).

Late supply: the same timer looks at the supply each queue expects against the worker's
network clock (never the wall clock, which only decides when it looks); supply past the end
of its expected day plus the policy's `late_grace_days` makes it send the queue an `overdue`
op stamped with that network time, and the queue decides (domain/backorders.py
Queue.overdue): a queue's input, so one writer, replayed like the others.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from domain.backorders import Accepted, Dropped, Queue, Retry, late_after
from domain.calendar import calendar_of
from domain.routing import RoutingPolicy
from streams.app import Runtime
from streams.codecs import now
from streams.loop import Agent, Ctx, Send, StateSpec
from streams.loop import Effect as Out
from streams.records import (
    BackorderOp,
    BackorderQueue,
    BackorderRetry,
    PreorderAccepted,
    PreorderDropped,
    PreorderRefused,
)
from streams.topics import TOPICS
from streams.views import LocationsView

QUEUES = "backorder_queues"
RESEND_S = 10.0  # a turn not answered after this long is handed again


def _send_turn(retry: Retry) -> Out:
    turn = BackorderRetry(
        order_id=retry.order_id,
        sku=retry.sku,
        ticket=retry.ticket,
        available=dict(retry.available),
    )
    return Send(TOPICS.order_commands, retry.order_id, turn)  # type: ignore[arg-type]


def _preorder(sku: str, a: Accepted) -> Out:
    accepted = PreorderAccepted(
        order_id=a.order_id, sku=sku, qty=a.qty, expected_date=a.due, location_id=a.location_id
    )
    return Send(TOPICS.order_commands, a.order_id, accepted)  # type: ignore[arg-type]


def _dropped(q: Queue, d: Dropped) -> Out:
    dropped = PreorderDropped(
        order_id=d.order_id,
        sku=q.sku,
        qty=d.qty,
        left=max(0, q.unclaimed),
        reason="late" if d.reason == "late" else "short_receipt",
    )
    return Send(TOPICS.order_commands, d.order_id, dropped)  # type: ignore[arg-type]


def late_at(locations: LocationsView, policy: RoutingPolicy) -> Callable[[str, float], float]:
    """When supply due at a location is late: the end of its expected day in the location's
    time zone (UTC without a calendar), plus the policy's `backorder.late_grace_days`."""
    grace = policy.backorder.late_grace_days

    def at(location_id: str, due: float) -> float:
        return late_after(due, calendar_of(locations.by_id.get(location_id)).tz, grace)

    return at


def _asked(q: Queue, msg: BackorderOp) -> Out:
    """The owner's answer to an order's preorder ask: granted whole, or refused (what was left)."""
    order_id = msg.order_id or ""
    answer = q.preorder(order_id, msg.qty, msg.since)
    if isinstance(answer, Accepted):
        return _preorder(q.sku, answer)
    return _refused(q, msg, answer)


def _refused(q: Queue, msg: BackorderOp, left: int) -> Out:
    order_id = msg.order_id or ""
    refused = PreorderRefused(order_id=order_id, sku=q.sku, asked=msg.qty, left=left)
    return Send(TOPICS.order_commands, order_id, refused)  # type: ignore[arg-type]


def _record(q: Queue) -> Out:
    since = q.oldest_since
    return Send(
        TOPICS.backorders,
        q.sku,
        BackorderQueue(
            sku=q.sku,
            backordered=q.units,
            waiting_orders=len(q.entries),
            oldest_since=None if since is None else datetime.fromtimestamp(since, UTC),
            updated_at=now(),
            preorderable=max(0, q.unclaimed),
        ),
    )


def agent() -> Agent:
    sent_at: dict[str, tuple[int, float]] = {}  # sku -> (ticket, wall time the turn was sent)

    def handle(state: Queue | None, msg: BackorderOp, ctx: Ctx) -> tuple[Queue, list[Out]]:
        q = state or Queue(sku=msg.sku)
        retry = None
        effects: list[Out] = []
        if msg.kind == "preorder":
            effects.append(_asked(q, msg))
        elif msg.kind == "stock_up":
            retry = q.stock_up(msg.location_id or "", msg.qty, by=msg.order_id)
        elif msg.kind == "expect":
            q.expect(msg.ref or "", msg.location_id or "", msg.qty, msg.since)
        elif msg.kind == "arrived":
            dropped = q.arrived(msg.ref or "", msg.location_id or "", msg.qty)
            effects.extend(_dropped(q, d) for d in dropped)
        elif msg.kind == "overdue":
            dropped = q.overdue(msg.since, late_at(ctx.locations, ctx.policy))
            effects.extend(_dropped(q, d) for d in dropped)
        elif msg.order_id is None:
            pass  # an order op always names its order (agents/orders.py)
        elif msg.kind == "shrink":
            q.shrink(msg.order_id, msg.qty)
        elif msg.kind == "wait":
            retry = q.wait(msg.order_id, msg.qty, msg.since)
        else:
            retry = q.leave(msg.order_id)
        effects.extend(_preorder(q.sku, accepted) for accepted in q.claim())
        if retry is not None:
            sent_at[q.sku] = (retry.ticket, time.time())
            effects.append(_send_turn(retry))
        if msg.kind != "stock_up" or retry is not None:
            effects.append(_record(q))
        return q, effects

    def replay(state: Queue, msg: BackorderOp, _ctx: Ctx) -> list[Out]:
        retry = state.retry()
        effects = [_send_turn(retry)] if retry else []
        # the acceptances the dead worker may not have flushed: every claim's, as told (an
        # order ignores one it has); a re-read ask is answered again (granted if it holds its
        # claim, else refused with what is left now, the queue unchanged: the order takes the
        # first answer it gets)
        effects.extend(_dropped(state, d) for d in state.drops())
        effects.extend(_preorder(state.sku, a) for a in state.acceptances())
        if msg.kind == "preorder" and msg.order_id not in state.claims:
            effects.append(_refused(state, msg, max(0, state.unclaimed)))
        return [*effects, _record(state)]

    overdue_at: dict[str, float] = {}  # sku -> wall time its `overdue` op was last sent

    def resender(rt: Runtime) -> Callable[[], Awaitable[None]]:
        async def resend_turns() -> None:
            t = time.time()
            network = rt.clock.timestamp()
            late = late_at(rt.locations, rt.policy)
            for sku, raw in list(rt.tables[QUEUES].items()):
                q = Queue.from_dict(raw) if raw else None
                if q is None:
                    continue
                if (
                    network is not None
                    and any(late(str(v[0]), float(v[2])) <= network for v in q.expected.values())
                    and t - overdue_at.get(sku, 0.0) >= RESEND_S
                ):
                    # supply past its day: the queue decides on this network time (sent
                    # again while it still expects it: the op may be lost with a worker)
                    overdue_at[sku] = t
                    check = BackorderOp(kind="overdue", sku=sku, since=network)
                    await rt.send(TOPICS.backorder_ops, sku, check)
                retry = q.retry()
                if retry is None:
                    continue
                ticket, at = sent_at.get(sku, (-1, 0.0))
                # a turn this worker did not hand (it took the queue over from a dead one)
                # goes again at once; one it handed, when its answer is overdue
                if ticket != retry.ticket or t - at >= RESEND_S:
                    sent_at[sku] = (retry.ticket, t)
                    send = _send_turn(retry)
                    await rt.send(send.topic, send.key, send.value)  # type: ignore[union-attr]

        return resend_turns

    return Agent(
        name="backorders",
        inputs=(TOPICS.backorder_ops,),
        handle=handle,
        state=StateSpec(
            QUEUES,
            key=lambda msg: msg.sku,
            decode=lambda raw: Queue.from_dict(raw) if raw else None,
            encode=Queue.to_dict,
        ),
        keyed_by="sku",
        replay=replay,
        timers=((2.0, resender),),
    )
