"""Store load fold (domain.load): idempotent open/close, positional steps, crash windows,
the snapshot."""

from __future__ import annotations

from typing import Any

import pytest

from domain.load import LoadState, Shipment, apply, snapshot
from streams.records import LoadOp, Location

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


def op(kind: str, seq: int, sid: str = "S1", origin: str = "wo:0", **kw: Any) -> LoadOp:
    kw.setdefault("at", 0.0)
    return LoadOp(
        kind=kind,  # type: ignore[arg-type]
        location_id="ST-1",
        shipment_id=sid,
        origin=origin,
        seq=(seq, 0),
        **kw,
    )


class Fold:
    """The two records the load agent keeps: the location's state and shipments by id."""

    def __init__(self) -> None:
        self.state = LoadState()
        self.shipments: dict[str, Shipment] = {}

    def apply(self, o: LoadOp) -> bool:
        out = apply(self.state, o, self.shipments.get(o.shipment_id))
        if out.shipment is not None:
            self.shipments[o.shipment_id] = out.shipment
        return out.changed


def test_opening_and_closing_a_shipment_twice_counts_it_once() -> None:
    f = Fold()
    assert f.apply(op("open", 1, units=3, at=100.0))
    assert not f.apply(op("open", 2, units=3, at=200.0))
    assert (f.state.open_orders, f.state.open_units) == (1, 3.0)
    assert f.apply(op("close", 3))
    assert not f.apply(op("close", 4))
    assert (f.state.open_orders, f.state.open_units, f.state.by_minute) == (0, 0.0, {})


def test_a_closed_shipment_is_not_opened_again_by_a_late_duplicate() -> None:
    f = Fold()
    f.apply(op("open", 1, units=1, at=100.0))
    f.apply(op("close", 2))
    assert not f.apply(op("open", 3, units=1, at=100.0))
    assert f.state.open_orders == 0


def test_a_replayed_op_changes_nothing() -> None:
    f = Fold()
    f.apply(op("step", 5, step="routed->accepted", seconds=10.0))
    assert not f.apply(op("step", 5, step="routed->accepted", seconds=10.0))
    assert not f.apply(op("open", 3, sid="S9", units=1, at=1.0))
    assert f.state.prep == {"routed->accepted": [1, 10.0]}
    assert f.state.open_orders == 0
    # another origin has its own positions
    assert f.apply(op("step", 1, origin="fe:2", step="routed->accepted", seconds=30.0))
    assert f.state.prep == {"routed->accepted": [2, 40.0]}


def test_an_op_re_read_after_a_crash_between_the_two_writes_redoes_only_the_shipment() -> None:
    state = LoadState()
    first = apply(state, op("open", 1, units=2, at=50.0), None)
    assert first.changed and first.shipment == Shipment(2.0, 50.0)
    # the location record was written, the shipment record was not: the op is read again
    again = apply(state, op("open", 1, units=2, at=50.0), None)
    assert not again.changed and again.shipment == Shipment(2.0, 50.0)
    assert state.open_orders == 1
    closing = apply(state, op("close", 2), Shipment(2.0, 50.0))
    assert closing.changed and state.open_orders == 0
    redo = apply(state, op("close", 2), Shipment(2.0, 50.0))
    assert not redo.changed and redo.shipment == Shipment(2.0, 50.0, closed=True)
    assert apply(state, op("close", 2), redo.shipment).shipment is None


def test_an_unknown_op_kind_cannot_even_be_built() -> None:
    """The load-ops topic's model refuses it: such a message is dead-lettered, never applied."""
    with pytest.raises(ValueError, match="Input should be 'open', 'close', 'step' or 'shrink'"):
        op("explode", 1)


def test_the_snapshot_reports_open_work_age_saturation_and_preparation_times() -> None:
    f = Fold()
    f.apply(op("open", 1, sid="S1", units=2, at=1000.0))
    f.apply(op("open", 2, sid="S2", units=5, at=1030.0))
    f.apply(op("step", 3, step="accepted->picked", seconds=20.0))
    f.apply(op("step", 4, step="accepted->picked", seconds=40.0))
    rec = snapshot("ST-1", f.state, STORE, now=1100.0)
    assert rec.open_orders == 2 and rec.open_units == 7
    assert rec.saturation == 0.1 and rec.backlog_saturation == 0.05
    assert rec.oldest_open_age_s == 100.0
    assert rec.prep_time_s == {"accepted->picked": 30.0}
    assert rec.kind == "store" and rec.capacity_per_hour == 20 and rec.max_backlog == 40


def test_the_oldest_open_age_follows_closes_to_the_minute() -> None:
    f = Fold()
    f.apply(op("open", 1, sid="S1", units=1, at=600.0))
    f.apply(op("open", 2, sid="S2", units=1, at=630.0))  # same minute as S1
    f.apply(op("open", 3, sid="S3", units=1, at=1300.0))
    f.apply(op("close", 4, sid="S1"))
    # S2 still holds S1's minute open: its age is counted from that minute's earliest opening
    assert snapshot("ST-1", f.state, STORE, now=2000.0).oldest_open_age_s == 1400.0
    f.apply(op("close", 5, sid="S2"))
    assert snapshot("ST-1", f.state, STORE, now=2000.0).oldest_open_age_s == 700.0


def test_a_location_record_stays_small_however_many_shipments_are_open() -> None:
    f = Fold()
    for i in range(5000):
        f.apply(op("open", i + 1, sid=f"S{i}", units=1, at=1000.0 + i))
    assert f.state.open_orders == 5000
    assert len(f.state.by_minute) <= 5000 // 60 + 2


def test_the_state_round_trips_through_plain_data() -> None:
    f = Fold()
    f.apply(op("open", 1, units=2, at=5.0))
    again = LoadState.from_dict(f.state.to_dict())
    assert again == f.state
    assert LoadState.from_dict(None) == LoadState()
    assert Shipment.from_list(Shipment(2.0, 5.0, True).to_list()) == Shipment(2.0, 5.0, True)


def test_an_empty_store_has_no_oldest_shipment() -> None:
    rec = snapshot("ST-1", LoadState(), None, now=10.0)
    assert rec.open_orders == 0 and rec.oldest_open_since is None and rec.kind == "unknown"


def test_a_line_cancellation_shrinks_a_shipment_once_and_the_close_counts_the_rest() -> None:
    f = Fold()
    f.apply(op("open", 1, units=5, at=100.0))
    f.apply(op("open", 2, sid="S2", units=1, at=100.0))
    assert f.apply(op("shrink", 3, units=3))  # 2 of its 5 units cancelled
    assert f.state.open_units == 4.0 and f.shipments["S1"].units == 3.0
    assert not f.apply(op("shrink", 4, units=3))  # the same shrink from another input
    assert not f.apply(op("shrink", 3, units=3))  # a replayed position
    assert f.state.open_units == 4.0
    f.apply(op("close", 5))
    assert (f.state.open_orders, f.state.open_units) == (1, 1.0)
    assert not f.apply(op("shrink", 6, units=1))  # closed: nothing left to shrink


def test_a_shrink_re_read_after_the_location_write_redoes_only_the_shipment_write() -> None:
    f = Fold()
    f.apply(op("open", 1, units=5, at=100.0))
    before = f.shipments["S1"]
    assert f.apply(op("shrink", 2, units=2))
    f.shipments["S1"] = before  # the worker stopped before the shipment write
    out = apply(f.state, op("shrink", 2, units=2), before)
    assert not out.changed and out.shipment is not None and out.shipment.units == 2.0
    assert f.state.open_units == 2.0
