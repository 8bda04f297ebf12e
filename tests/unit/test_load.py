"""Store load fold (domain.load): idempotent open/close, positional steps, the snapshot."""

from __future__ import annotations

from typing import Any

import pytest

from domain.load import LoadState, apply, snapshot
from streams.records import Location

STORE = Location(
    location_id="ST-1",
    kind="store",
    name="ST-1",
    lat=48.8,
    lon=2.3,
    ship_from_store=True,
    capacity_per_hour=20,
    max_backlog=40,
)


def op(kind: str, seq: int, sid: str = "S1", origin: str = "wo:0", **kw: Any) -> dict[str, Any]:
    return {"kind": kind, "shipment_id": sid, "origin": origin, "seq": seq, **kw}


def test_opening_and_closing_a_shipment_twice_counts_it_once() -> None:
    st = LoadState()
    assert apply(st, op("open", 1, units=3, at=100.0))
    assert apply(st, op("open", 2, units=3, at=200.0))
    assert st.open == {"S1": [3.0, 100.0]}
    assert apply(st, op("close", 3))
    assert apply(st, op("close", 4))
    assert st.open == {}


def test_a_replayed_op_changes_nothing() -> None:
    st = LoadState()
    apply(st, op("step", 5, step="routed->accepted", seconds=10.0))
    assert not apply(st, op("step", 5, step="routed->accepted", seconds=10.0))
    assert not apply(st, op("open", 3, units=1, at=1.0))
    assert st.prep == {"routed->accepted": [1, 10.0]}
    assert st.open == {}
    # another origin has its own positions
    assert apply(st, op("step", 1, origin="fe:2", step="routed->accepted", seconds=30.0))
    assert st.prep == {"routed->accepted": [2, 40.0]}


def test_an_unknown_op_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown load op"):
        apply(LoadState(), op("explode", 1))


def test_the_snapshot_reports_open_work_age_saturation_and_preparation_times() -> None:
    st = LoadState()
    apply(st, op("open", 1, sid="S1", units=2, at=1000.0))
    apply(st, op("open", 2, sid="S2", units=5, at=1030.0))
    apply(st, op("step", 3, step="accepted->picked", seconds=20.0))
    apply(st, op("step", 4, step="accepted->picked", seconds=40.0))
    rec = snapshot("ST-1", st, STORE, now=1100.0)
    assert rec.open_orders == 2 and rec.open_units == 7
    assert rec.saturation == 0.1 and rec.backlog_saturation == 0.05
    assert rec.oldest_open_age_s == 100.0
    assert rec.prep_time_s == {"accepted->picked": 30.0}
    assert rec.kind == "store" and rec.capacity_per_hour == 20 and rec.max_backlog == 40


def test_the_state_round_trips_through_plain_data() -> None:
    st = LoadState()
    apply(st, op("open", 1, units=2, at=5.0))
    again = LoadState.from_dict(st.to_dict())
    assert again == st
    assert LoadState.from_dict(None) == LoadState()


def test_an_empty_store_has_no_oldest_shipment() -> None:
    rec = snapshot("ST-1", LoadState(), None, now=10.0)
    assert rec.open_orders == 0 and rec.oldest_open_since is None and rec.kind == "unknown"
