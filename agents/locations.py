"""Validates location master data; the worker's LocationsView reads the same topic."""

from __future__ import annotations

from streams.app import Runtime
from streams.codecs import Rejected, decode
from streams.records import Location


def register(rt: Runtime) -> None:
    @rt.app.agent(rt.topic("locations"), name="locations-check", concurrency=1)
    async def check_locations(stream):  # type: ignore[no-untyped-def]
        await rt.wait_views()
        async for event in stream.events():
            if event.message.value is None:
                continue  # a tombstone deletes a location: legal on a compacted topic
            try:
                decode(Location, event.message.value)
            except Rejected as exc:
                await rt.dead_letter(event, exc.reason)
