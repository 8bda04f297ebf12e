"""Small record builders shared by the integration tests and the benchmarks."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any


def iso(ts: float | None = None) -> str:
    """An aware ISO-8601 UTC timestamp, now unless `ts` (epoch seconds) is given."""
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC).isoformat()


def location(location_id: str, kind: str = "store", **kw: Any) -> dict[str, Any]:
    """A valid `locations` record with plain defaults; keyword arguments override fields."""
    base = {
        "location_id": location_id,
        "kind": kind,
        "name": location_id,
        "lat": 48.85,
        "lon": 2.35,
        "ship_from_store": kind == "store",
        "click_collect": kind == "store",
        "capacity_per_hour": 30 if kind == "store" else 500,
        "max_backlog": 100 if kind == "store" else 5000,
        "safety_stock": 0,
        "active": True,
    }
    base.update(kw)
    return base
