"""The stock table: sole writer of per-SKU-per-location stock, and of stock-availability.

Consumes the SKU-keyed stock ops (from ingest, routing, the store workflow and returns), applies
them with domain.stock.apply and publishes availability. Reservation requests are answered on
the order-commands topic, keyed by order id, so the order agent that asked gets the answer.
A `resync_location` message (from agents/locations.py, one per partition) re-publishes the
availability of a location whose safety stock changed.
"""

from __future__ import annotations

from domain.stock import StockState, apply, stock_key
from streams.codecs import now
from streams.loop import UNCHANGED, Agent, Ctx, Effect, Send, StateSpec
from streams.records import ReservationResult, ResyncLocation, StockAvailability, StockOp
from streams.topics import TOPICS

STOCK = "stock"


def _publish(ctx: Ctx, sku: str, location_id: str, state: StockState, safety: int) -> Effect:
    available = state.available(safety)
    ctx.availability.set(sku, location_id, available)
    return Send(
        TOPICS.stock_availability,
        stock_key(sku, location_id),
        StockAvailability(
            sku=sku,
            location_id=location_id,
            on_hand=state.on_hand,
            reserved=state.reserved,
            available=available,
            updated_at=now(),
        ),
    )


def _republish_location(ctx: Ctx, msg: ResyncLocation) -> list[Effect]:
    """A location's safety stock changed (agents/locations.py): its availability changed for
    every SKU it holds. Done here, between this partition's ops, so a re-published value can
    never overtake a newer one."""
    suffix = "@" + msg.location_id
    return [
        _publish(
            ctx,
            key[: -len(suffix)],
            msg.location_id,
            StockState.from_dict(ctx.get(STOCK, key)),
            msg.safety_stock,
        )
        for key in ctx.keys(STOCK)
        if key.endswith(suffix)
    ]


def handle(
    previous: StockState | None, op: StockOp | ResyncLocation, ctx: Ctx
) -> tuple[StockState, list[Effect]]:
    if isinstance(op, ResyncLocation):
        return UNCHANGED, _republish_location(ctx, op)
    safety = ctx.locations.safety_stock(op.location_id)
    state = previous if previous is not None else StockState()
    outcome = apply(state, op, safety)
    effects: list[Effect] = []
    # a first count of 0 is news too: the article now exists at that location
    if outcome.changed or outcome.replay or previous is None:
        effects.append(_publish(ctx, op.sku, op.location_id, state, safety))
    if op.kind == "reserve" and op.order_id is not None and op.reservation_id is not None:
        answer = ReservationResult(
            order_id=op.order_id,
            reservation_id=op.reservation_id,
            sku=op.sku,
            location_id=op.location_id,
            qty=op.qty,
            ok=bool(outcome.reserved_ok),
            free_after=outcome.free_after,
        )
        effects.append(Send(TOPICS.order_commands, op.order_id, answer))
    return (UNCHANGED if outcome.replay else state), effects


def agent() -> Agent:
    return Agent(
        name="stock",
        inputs=(TOPICS.stock_ops,),
        handle=handle,
        state=StateSpec(
            STOCK,
            key=lambda op: op.key if isinstance(op, StockOp) else None,
            decode=lambda raw: None if raw is None else StockState.from_dict(raw),
            encode=StockState.to_dict,
        ),
    )
