"""Validates location master data, and tells the stock owners when a safety stock changes.

The worker's LocationsView reads the same topic. Availability is published net of each
location's safety stock, so a new safety stock changes the availability of every SKU held
there: this handler remembers each location's safety stock (`location_safety`) and, when it
changes, sends a `resync_location` message to that location's owner, which re-publishes its
availability in order with its other ops (agents/location_owner.py).
"""

from __future__ import annotations

from streams.loop import UNCHANGED, Agent, Ctx, Effect, Send, StateSpec
from streams.records import Location, ResyncLocation
from streams.topics import TOPICS


def handle(previous: int | None, loc: Location, ctx: Ctx) -> tuple[int, list[Effect]]:
    if previous == loc.safety_stock:
        return UNCHANGED, []
    effects: list[Effect] = []
    if previous is not None:  # a new location holds no stock yet
        resync = ResyncLocation(
            kind="resync_location", location_id=loc.location_id, safety_stock=loc.safety_stock
        )
        effects = [Send(TOPICS.location_ops, loc.location_id, resync)]
    return loc.safety_stock, effects


def agent() -> Agent:
    return Agent(
        name="locations-check",
        inputs=(TOPICS.locations,),
        handle=handle,
        state=StateSpec("location_safety", key=lambda loc: loc.location_id),
    )
