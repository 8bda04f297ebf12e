"""Store load: sole writer of the store_load table and of the store-load topic."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from faust.exceptions import PartitionsMismatch

from domain.load import LoadState, apply, snapshot
from streams.app import Runtime
from streams.codecs import loads
from streams.topics import TOPICS

REFRESH_S = 5.0  # ages grow while nothing happens: republish busy locations this often
log = logging.getLogger(__name__)


async def table_write(table: Any, key: str, value: Any | None) -> None:
    """Set (or, for None, delete) a table key, riding out Faust's changelog-metadata race.

    On its first write per source topic Faust checks the changelog's partition count in the
    consumer's metadata snapshot, which during a rebalance can briefly show the changelog with
    0 partitions: Faust then raises PartitionsMismatch before touching the table, and an
    uncaught exception kills the agent for good. The check is only cached once it passes, so
    waiting for the metadata and trying again is safe.
    """
    for attempt in range(100):
        try:
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
            return
        except PartitionsMismatch as exc:
            if attempt == 99:
                raise
            if attempt == 0:
                log.warning("table %s: %s; retrying", getattr(table, "name", "?"), exc)
            await asyncio.sleep(0.2)


def register(rt: Runtime) -> None:
    app = rt.app
    table = app.Table("store_load", default=None, partitions=TOPICS.load_ops.partitions)

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
                state = LoadState.from_dict(table.get(location_id))
                applied = apply(state, op)
            except Exception as exc:  # noqa: BLE001 - an unreadable internal op is still data
                await rt.dead_letter(event, f"unreadable load op: {exc!r}")
                continue
            if applied:
                await table_write(table, location_id, state.to_dict())
            await publish(location_id, state)

    @app.timer(interval=REFRESH_S)
    async def refresh_ages() -> None:
        for location_id, raw in list(table.items()):
            state = LoadState.from_dict(raw)
            if state.open:
                await publish(location_id, state)
