"""Validates location master data, and tells the stock owners when a safety stock changes.

The worker's LocationsView reads the same topic. Availability is published net of each
location's safety stock, so a new safety stock changes the availability of every SKU held
there: this agent remembers each location's safety stock (`location_safety`) and, when it
changes, sends a `resync_location` message to every stock-ops partition; each stock owner then
re-publishes that location's availability, in order with its other ops (agents/stock.py).
"""

from __future__ import annotations

from domain.stock import RESYNC_LOCATION
from streams.app import Runtime
from streams.codecs import Rejected, decode
from streams.records import Location
from streams.topics import TOPICS


def register(rt: Runtime) -> None:
    safety = rt.app.Table("location_safety", default=None, partitions=TOPICS.locations.partitions)

    @rt.app.agent(rt.topic("locations"), name="locations-check", concurrency=1)
    async def check_locations(stream):  # type: ignore[no-untyped-def]
        await rt.wait_views()
        async for event in stream.events():
            if event.message.value is None:
                continue  # a tombstone deletes a location: legal on a compacted topic
            try:
                loc = decode(Location, event.message.value)
            except Rejected as exc:
                await rt.dead_letter(event, exc.reason)
                continue
            previous = rt.get(safety, loc.location_id)
            if previous == loc.safety_stock:
                continue
            if previous is not None:  # a new location holds no stock yet
                resync = {
                    "kind": RESYNC_LOCATION,
                    "location_id": loc.location_id,
                    "safety_stock": loc.safety_stock,
                }
                for partition in range(TOPICS.stock_ops.partitions):
                    await rt.send("stock_ops", loc.location_id, resync, partition)
            await rt.put(safety, loc.location_id, loc.safety_stock)
