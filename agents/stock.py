"""The stock table: sole writer of per-SKU-per-location stock, and of stock-availability.

Consumes the SKU-keyed stock ops (from ingest, routing, the store workflow and returns), applies
them with domain.stock.apply and publishes availability. Reservation requests are answered on
the order-commands topic, keyed by order id, so the order agent that asked gets the answer.
A `resync_location` message (from agents/locations.py, one per partition) re-publishes the
availability of a location whose safety stock changed.
"""

from __future__ import annotations

import logging

from domain.stock import RESYNC_LOCATION, StockOp, StockState, apply, stock_key
from streams.app import Runtime
from streams.codecs import loads, now
from streams.records import StockAvailability
from streams.topics import TOPICS

log = logging.getLogger(__name__)


def register(rt: Runtime) -> None:
    app = rt.app
    stock = app.Table("stock", default=None, partitions=TOPICS.stock_ops.partitions)

    async def publish(sku: str, location_id: str, state: StockState, safety: int) -> None:
        available = state.available(safety)
        rt.availability.set(sku, location_id, available)
        await rt.send(
            "stock_availability",
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

    async def republish_location(location_id: str, safety: int) -> None:
        """A location's safety stock changed (agents/locations.py): its availability changed
        for every SKU it holds. Done here, between this partition's ops, so a re-published
        value can never overtake a newer one."""
        suffix = "@" + location_id
        for key in rt.partition_keys(stock):
            if key.endswith(suffix):
                state = StockState.from_dict(rt.get(stock, key))
                await publish(key[: -len(suffix)], location_id, state, safety)

    @app.agent(rt.topic("stock_ops"), name="stock", concurrency=1)
    async def fold_stock(stream):  # type: ignore[no-untyped-def]
        await rt.wait_views()
        async for event in stream.events():
            if not rt.in_order(event):
                continue
            try:
                raw = loads(event.message.value)
                if raw.get("kind") == RESYNC_LOCATION:
                    await republish_location(raw["location_id"], int(raw["safety_stock"]))
                    continue
                op = StockOp.from_dict(raw)
            except Exception as exc:  # noqa: BLE001 - an unreadable internal op is still data
                await rt.dead_letter(event, f"unreadable stock op: {exc!r}")
                continue
            safety = rt.locations.safety_stock(op.location_id)
            previous = rt.get(stock, op.key)
            state = StockState.from_dict(previous)
            outcome = apply(state, op, safety)
            if not outcome.replay:
                await rt.put(stock, op.key, state.to_dict())
            # a first count of 0 is news too: the article now exists at that location
            if outcome.changed or outcome.replay or previous is None:
                await publish(op.sku, op.location_id, state, safety)
            if op.kind == "reserve" and op.order_id is not None:
                await rt.send(
                    "order_commands",
                    op.order_id,
                    {
                        "type": "reservation_result",
                        "order_id": op.order_id,
                        "reservation_id": op.reservation_id,
                        "sku": op.sku,
                        "location_id": op.location_id,
                        "qty": op.qty,
                        "ok": bool(outcome.reserved_ok),
                        "free_after": outcome.free_after,
                    },
                )
