"""Store load: sole writer of the location_load and load_shipments tables and of the
store-load topic (domain/load.py)."""

from __future__ import annotations

import logging
import time

from domain.load import LoadState, Shipment, apply, snapshot
from streams.app import Runtime
from streams.codecs import loads
from streams.topics import TOPICS

REFRESH_S = 5.0  # ages grow while nothing happens: republish busy locations this often
log = logging.getLogger(__name__)


def register(rt: Runtime) -> None:
    app = rt.app
    table = app.Table("location_load", default=None, partitions=TOPICS.load_ops.partitions)
    shipments = app.Table("load_shipments", default=None, partitions=TOPICS.load_ops.partitions)

    async def publish(location_id: str, state: LoadState) -> None:
        rec = snapshot(location_id, state, rt.locations.by_id.get(location_id), time.time())
        await rt.send("store_load", location_id, rec)

    @app.agent(rt.topic("load_ops"), name="store-load", concurrency=1)
    async def fold_load(stream):  # type: ignore[no-untyped-def]
        await rt.wait_views()
        async for event in stream.events():
            if not rt.in_order(event):
                continue
            try:
                op = loads(event.message.value)
                location_id = op["location_id"]
                # a transfer is open at its origin, then at the pickup store: one record each
                shipment_key = f"{op['shipment_id']}@{location_id}"
                state = LoadState.from_dict(rt.get(table, location_id))
                shipment = (
                    None
                    if op["kind"] == "step"
                    else Shipment.from_list(rt.get(shipments, shipment_key))
                )
                outcome = apply(state, op, shipment)
            except Exception as exc:  # noqa: BLE001 - an unreadable internal op is still data
                await rt.dead_letter(event, f"unreadable load op: {exc!r}")
                continue
            if outcome.changed:  # first: it records the op's position (domain/load.py)
                await rt.put(table, location_id, state.to_dict())
            if outcome.shipment is not None:
                await rt.put(shipments, shipment_key, outcome.shipment.to_list())
            await publish(location_id, state)

    @app.timer(interval=REFRESH_S)
    async def refresh_ages() -> None:
        for location_id, raw in list(table.items()):
            state = LoadState.from_dict(raw)
            if state.open_orders:
                await publish(location_id, state)
