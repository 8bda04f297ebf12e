"""The agents: one handler per input (streams/loop.py runs them), no Kafka plumbing of their own."""

from __future__ import annotations

from streams.loop import Agent


def all_agents() -> list[Agent]:
    """Every agent of a worker, fresh (each holds per-worker scratch state, e.g. timer heaps)."""
    from agents import backorders, location_owner, locations, orders

    return [locations.agent(), location_owner.agent(), orders.agent(), backorders.agent()]
