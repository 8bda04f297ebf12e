"""Faust agents: thin adapters between topics and the pure domain modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.app import Runtime


def register_all(rt: Runtime) -> None:
    from agents import ingest, load, locations, orders, stock

    locations.register(rt)
    ingest.register(rt)
    stock.register(rt)
    orders.register(rt)
    load.register(rt)
