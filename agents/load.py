"""Store load: sole writer of the location_load and load_shipments tables and of the
store-load topic (domain/load.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from domain.load import LoadState, Shipment, apply, snapshot
from streams.app import Runtime
from streams.loop import UNCHANGED, Agent, Ctx, Effect, Put, Send, StateSpec
from streams.records import LoadOp
from streams.topics import TOPICS

REFRESH_S = 5.0  # ages grow while nothing happens: republish busy locations this often
LOAD = "location_load"
SHIPMENTS = "load_shipments"


def handle(state: LoadState, op: LoadOp, ctx: Ctx) -> tuple[LoadState, list[Effect]]:
    # a transfer is open at its origin, then at the pickup store: one record each
    shipment_key = f"{op.shipment_id}@{op.location_id}"
    shipment = None if op.kind == "step" else Shipment.from_list(ctx.get(SHIPMENTS, shipment_key))
    outcome = apply(state, op, shipment)
    effects: list[Effect] = []
    if outcome.shipment is not None:  # after the location record, which holds the position
        effects.append(Put(SHIPMENTS, shipment_key, outcome.shipment.to_list()))
    loc = ctx.locations.by_id.get(op.location_id)
    record = snapshot(op.location_id, state, loc, time.time())
    effects.append(Send(TOPICS.store_load, op.location_id, record))
    return (state if outcome.changed else UNCHANGED), effects


def _refresher(rt: Runtime) -> Callable[[], Awaitable[None]]:
    async def refresh_ages() -> None:
        for location_id, raw in list(rt.tables[LOAD].items()):
            state = LoadState.from_dict(raw)
            if state.open_orders:
                loc = rt.locations.by_id.get(location_id)
                record = snapshot(location_id, state, loc, time.time())
                await rt.send(TOPICS.store_load, location_id, record)

    return refresh_ages


def agent() -> Agent:
    return Agent(
        name="store-load",
        inputs=(TOPICS.load_ops,),
        handle=handle,
        state=StateSpec(
            LOAD,
            key=lambda op: op.location_id,
            decode=LoadState.from_dict,
            encode=LoadState.to_dict,
        ),
        tables=(SHIPMENTS,),
        timers=((REFRESH_S, _refresher),),
    )
