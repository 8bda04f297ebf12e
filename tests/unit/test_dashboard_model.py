"""Unit tests of the dashboard's data shaping (dashboard.model), fixtures, and pure helpers.

Messages are built with the output models of streams/records.py, so the tests fold exactly
the JSON shapes the workers publish.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel

from dashboard import charts, fixtures, model, serve, source
from dashboard.model import DashboardState, fold
from streams.records import (
    DeadLetter,
    Location,
    OrderEvent,
    RoutedOrder,
    RoutedShipment,
    ShipmentLine,
    ShipmentState,
    StockAvailability,
    StoreLoad,
)
from streams.topics import TOPICS

T0 = datetime(2025, 11, 28, 12, 0, tzinfo=UTC)
LOAD = TOPICS.store_load.handle
ROUTED = TOPICS.routed_orders.handle
EVENTS = TOPICS.order_events.handle
AVAIL = TOPICS.stock_availability.handle
LOCS = TOPICS.locations.handle
DEAD = TOPICS.dead_letters.handle


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def location(loc: str, kind: str = "store", lat: float = 52.5, lon: float = 13.4) -> dict[str, Any]:
    return Location(
        location_id=loc,
        kind=kind,  # type: ignore[arg-type]
        name=f"{loc} name",
        lat=lat,
        lon=lon,
        capacity_per_hour=10,
    ).model_dump(mode="json")


def load(
    loc: str,
    open_orders: int,
    capacity: int,
    *,
    kind: str = "store",
    max_backlog: int = 100,
    since: datetime | None = None,
    updated: datetime = T0,
    units: int | None = None,
) -> dict[str, Any]:
    return StoreLoad(
        location_id=loc,
        kind=kind,
        open_orders=open_orders,
        open_units=open_orders * 2 if units is None else units,
        capacity_per_hour=capacity,
        max_backlog=max_backlog,
        saturation=open_orders / capacity if capacity else 0.0,
        backlog_saturation=open_orders / max_backlog if max_backlog else 0.0,
        oldest_open_age_s=(updated - since).total_seconds() if since else 0.0,
        oldest_open_since=since,
        prep_time_s={"accepted": 60.0, "picked": 120.0},
        updated_at=updated,
    ).model_dump(mode="json")


Ship = tuple[str, str, str, list[tuple[str, int]]]


def routed(
    order_id: str,
    decided: datetime,
    shipments: list[Ship],
    *,
    attempt: int = 1,
    status: str = "routed",
    reasons: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    return RoutedOrder(
        order_id=order_id,
        attempt=attempt,
        status=status,  # type: ignore[arg-type]
        decided_at=decided,
        shipments=[
            RoutedShipment(
                shipment_id=sid,
                location_id=loc,
                mode=mode,  # type: ignore[arg-type]
                lines=[ShipmentLine(sku=s, qty=q) for s, q in lines],
            )
            for sid, loc, mode, lines in shipments
        ],
        reasons=dict(reasons)
        if reasons
        else {"chosen": {"location_id": shipments[0][1] if shipments else None}},
    ).model_dump(mode="json")


def event(
    event_id: str,
    order_id: str,
    occurred: datetime,
    change: str,
    order_status: str,
    shipments: list[tuple[str, str, str]],
    *,
    shipment_id: str | None = None,
) -> dict[str, Any]:
    """shipments: (shipment_id, location_id, status)."""
    return OrderEvent(
        event_id=event_id,
        order_id=order_id,
        occurred_at=occurred,
        change=change,
        order_status=order_status,  # type: ignore[arg-type]
        shipment_id=shipment_id,
        location_id=next((loc for sid, loc, _ in shipments if sid == shipment_id), None),
        shipments=[
            ShipmentState(
                shipment_id=sid,
                location_id=loc,
                mode="ship_from_store",
                status=status,
                lines=[ShipmentLine(sku="SKU-1", qty=1)],
            )
            for sid, loc, status in shipments
        ],
    ).model_dump(mode="json")


def avail(sku: str, loc: str, on_hand: int, reserved: int, available: int) -> dict[str, Any]:
    return StockAvailability(
        sku=sku,
        location_id=loc,
        on_hand=on_hand,
        reserved=reserved,
        available=available,
        updated_at=T0,
    ).model_dump(mode="json")


def walk_home_delivery(state: DashboardState, order_id: str, loc: str, start: float) -> None:
    """Route an order to `loc` at minute `start` and take it through to shipped."""
    sid = f"{order_id}-S1"
    fold(state, ROUTED, routed(order_id, at(start), [(sid, loc, "ship_from_store", [("A", 1)])]))
    steps = [
        ("routed", "routed", "routed"),
        ("accepted", "in_preparation", "accepted"),
        ("picked", "in_preparation", "picked"),
        ("packed", "in_preparation", "packed"),
        ("label_printed", "in_preparation", "label_printed"),
        ("shipped", "shipped", "shipped"),
    ]
    for i, (change, status, ship_status) in enumerate(steps):
        fold(
            state,
            EVENTS,
            event(
                f"{order_id}-e{i}",
                order_id,
                at(start + i * 5),
                change,
                status,
                [(sid, loc, ship_status)],
                shipment_id=sid,
            ),
        )


# ---- store load ------------------------------------------------------------------------------


def test_store_load_table_puts_the_most_saturated_location_first() -> None:
    state = DashboardState()
    fold(state, LOAD, load("S-CALM", 2, 20))
    fold(state, LOAD, load("S-DROWNING", 30, 15))
    fold(state, LOAD, load("W-BIG", 300, 600, kind="warehouse"))
    fold(state, LOAD, load("S-BUSY", 10, 10))

    table = model.store_load_table(state)

    assert table["location_id"].tolist() == ["S-DROWNING", "S-BUSY", "W-BIG", "S-CALM"]
    assert table.loc[0, "saturation"] == pytest.approx(2.0)
    assert table.loc[0, "open_orders"] == 30
    assert table.loc[0, "open_units"] == 60
    assert table.loc[0, "capacity_per_hour"] == 15
    assert table.loc[0, "prep_time_s"] == pytest.approx(180.0)
    assert list(table.columns[:3]) == ["location_id", "name", "kind"]
    for column in ("backlog_saturation", "oldest_open_age_s"):
        assert column in table.columns


def test_store_load_table_ages_the_oldest_open_shipment_to_now() -> None:
    state = DashboardState()
    fold(state, LOAD, load("S-1", 3, 10, since=at(0), updated=at(10)))
    fold(state, LOAD, load("S-IDLE", 0, 10, updated=at(10)))

    published = model.store_load_table(state).set_index("location_id")
    now = model.store_load_table(state, at(45)).set_index("location_id")

    assert published.loc["S-1", "oldest_open_age_s"] == pytest.approx(600.0)
    assert now.loc["S-1", "oldest_open_age_s"] == pytest.approx(45 * 60.0)
    assert now.loc["S-IDLE", "oldest_open_age_s"] == 0.0


def test_fold_keeps_the_latest_store_load_and_ignores_an_older_replay() -> None:
    state = DashboardState()
    assert fold(state, LOAD, load("S-1", 5, 10, updated=at(5)))
    assert not fold(state, LOAD, load("S-1", 9, 10, updated=at(1)))

    assert model.store_load_table(state).loc[0, "open_orders"] == 5


def test_a_store_load_tombstone_removes_the_location() -> None:
    state = DashboardState()
    fold(state, LOAD, load("S-1", 5, 10))
    fold(state, LOAD, load("S-2", 1, 10))

    assert fold(state, LOAD, None, key="S-1")

    assert model.store_load_table(state)["location_id"].tolist() == ["S-2"]


def test_store_load_table_takes_names_and_coordinates_from_the_locations_topic() -> None:
    state = DashboardState()
    fold(state, LOCS, location("S-1", lat=48.1, lon=11.5))
    fold(state, LOAD, load("S-1", 4, 8))
    fold(state, LOAD, load("S-NOWHERE", 1, 8))

    table = model.store_load_table(state).set_index("location_id")
    points = model.map_points(table.reset_index())

    assert table.loc["S-1", "name"] == "S-1 name"
    assert (table.loc["S-1", "lat"], table.loc["S-1", "lon"]) == (48.1, 11.5)
    assert [p["location_id"] for p in points] == ["S-1"]  # no coordinates, no dot on the map


def test_saturated_locations_are_red_on_the_map_and_idle_ones_green() -> None:
    def hue(s: float) -> tuple[int, int, int]:
        return model.saturation_rgb(s)

    idle, low, half, full, over = (hue(s) for s in (0.0, 0.09, 0.5, 1.0, 3.0))
    assert idle[1] > idle[0] + 60 and low[1] > low[0] + 60  # 0.09 is green, not red
    assert half[0] > 200 and 100 < half[1] < 200  # amber
    assert full[0] > 200 and full[1] < 60 and over == full  # red from one hour queued on
    # continuous and ever redder: red minus green grows with saturation
    redness = [hue(i / 20)[0] - hue(i / 20)[1] for i in range(21)]
    assert redness == sorted(redness) and len(set(redness)) == len(redness)
    assert model.saturation_colour(0.09).startswith("#") and len(model.saturation_colour(0)) == 7
    assert "background-color: rgba(" in model.saturation_cell_style(0.09)


# ---- backlog ---------------------------------------------------------------------------------


def test_backlog_series_by_kind_sums_to_the_total() -> None:
    state = DashboardState(sample_every_s=5)
    fold(state, LOAD, load("S-1", 4, 10, updated=at(0)))
    fold(state, LOAD, load("W-1", 10, 500, kind="warehouse", updated=at(1)))
    fold(state, LOAD, load("SUP-1", 3, 100, kind="supplier", updated=at(2)))
    fold(state, LOAD, load("S-2", 6, 10, updated=at(3)))

    series = model.backlog_series(state)

    assert series["total"].tolist() == [4, 14, 17, 23]
    assert series["store"].tolist() == [4, 4, 4, 10]
    assert series["warehouse"].tolist() == [0, 10, 10, 10]
    kinds = series[list(model.LOCATION_KINDS)]
    assert (kinds.sum(axis=1) == series["total"]).all()
    assert series["time"].iloc[-1] == pd.Timestamp(at(3))


def test_the_fixture_backlog_by_kind_sums_to_its_total_and_builds_up_a_peak() -> None:
    fx = fixtures.build_fixture(now=T0)
    series = model.backlog_series(fx.state)

    kinds = [c for c in series.columns if c not in ("time", "total", "units")]
    assert (series[kinds].sum(axis=1) == series["total"]).all()
    assert series["total"].iloc[0] == 0
    assert series["total"].max() > 20
    assert series["time"].is_monotonic_increasing


def test_backlog_is_sampled_no_more_often_than_the_sampling_interval() -> None:
    state = DashboardState(sample_every_s=60)
    for second in range(0, 300, 10):
        fold(state, LOAD, load("S-1", second, 1000, updated=T0 + timedelta(seconds=second)))

    series = model.backlog_series(state)

    assert series["total"].tolist() == [0, 60, 120, 180, 240]


def test_tick_extends_a_quiet_backlog_to_the_network_clock() -> None:
    """Store-load quiet while decisions keep coming: the chart moves on flat, in network time
    (the decisions' clock), never by the dashboard's wall clock."""
    state = DashboardState(sample_every_s=5)
    fold(state, LOAD, load("S-1", 7, 10, updated=at(0)))
    model.tick(state)  # the clock has not moved
    fold(state, ROUTED, routed("O-1", at(0.05), [("A1", "S-1", "ship_from_store", [("A", 1)])]))
    model.tick(state)  # 3 s later: not yet due
    fold(state, ROUTED, routed("O-2", at(0.1), [("A2", "S-1", "ship_from_store", [("A", 1)])]))
    model.tick(state)

    series = model.backlog_series(state)
    assert series["total"].tolist() == [7, 7]
    assert series["time"].iloc[1] == pd.Timestamp(at(0.1))


def test_now_is_the_network_clock_not_the_wall_clock() -> None:
    """A simulated day far from today: "now" is the latest business time folded, and it does
    not run on between messages."""
    state = DashboardState()
    before = datetime.now(UTC)
    assert before <= state.now() <= datetime.now(UTC)  # no data: the wall clock
    fold(state, ROUTED, routed("O-1", at(0), [("A1", "S-1", "ship_from_store", [("A", 1)])]))
    fold(state, LOAD, load("S-1", 1, 10, updated=at(-5)))  # an older stamp: no step back
    assert state.now() == at(0)
    fold(
        state,
        EVENTS,
        event("e-1", "O-1", at(90), "accepted", "in_preparation", [("A1", "S-1", "accepted")]),
    )
    assert state.now() == at(90)
    assert model.network_overview(state, state.now(), late_after_s=3600).late == 1


def _promised(order_id: str, sid: str, decided: datetime, ship_by: datetime) -> dict[str, Any]:
    value = routed(order_id, decided, [(sid, "S-1", "ship_from_store", [("A", 1)])])
    value["shipments"][0]["ship_by"] = ship_by.isoformat()  # the promise branch's field
    return value


def test_late_is_against_ship_by_when_the_decision_carries_it() -> None:
    state = DashboardState()
    # promised far out: 2 h after routing is not late, although past the 1 h SLA
    fold(state, ROUTED, _promised("O-P", "P1", at(0), ship_by=at(240)))
    # promised soon: late 30 min after routing, although within the SLA
    fold(state, ROUTED, _promised("O-Q", "Q1", at(0), ship_by=at(20)))
    # no promise: the SLA after routing decides
    fold(state, ROUTED, routed("O-R", at(0), [("R1", "S-1", "ship_from_store", [("A", 1)])]))
    assert model.network_overview(state, at(30), late_after_s=3600).late == 1  # O-Q
    assert model.network_overview(state, at(120), late_after_s=3600).late == 2  # O-Q, O-R
    breaches = model.sla_breaches(state, at(30), threshold_s=3600)
    assert breaches["late_shipments"].tolist() == [1]
    # handed over after its promise: counted late within the window
    fold(
        state, EVENTS, event("q-1", "O-Q", at(25), "shipped", "shipped", [("Q1", "S-1", "shipped")])
    )
    assert model.network_overview(state, at(30), late_after_s=3600).late == 1


def test_each_location_says_whether_it_prepares_now_from_its_calendar() -> None:
    state = DashboardState()
    store = location("S-1")
    store["calendar"] = {
        "tz": "UTC",
        "opening": {"fri": ["09:00-20:00"]},
        "preparation": {"fri": ["09:30-19:00"]},
    }
    fold(state, LOCS, store, "S-1")
    fold(state, LOCS, location("W-1", "warehouse"), "W-1")  # no calendar: around the clock
    for loc in ("S-1", "W-1"):
        fold(state, LOAD, load(loc, 1, 10, updated=T0))

    # T0 is Friday 12:00 UTC
    def now_of(t: datetime) -> dict[str, str]:
        df = model.store_load_table(state, t)
        return dict(zip(df["location_id"], df["now"], strict=True))

    assert now_of(T0) == {"S-1": "preparing", "W-1": "preparing"}
    assert now_of(T0.replace(hour=19, minute=30)) == {"S-1": "open", "W-1": "preparing"}
    assert now_of(T0.replace(hour=22)) == {"S-1": "closed", "W-1": "preparing"}


def test_backlog_long_has_the_total_and_only_kinds_that_ever_had_a_backlog() -> None:
    state = DashboardState()
    fold(state, LOAD, load("S-1", 4, 10))

    long = model.backlog_long(model.backlog_series(state))

    assert sorted(long["series"].unique()) == ["store", "total"]


# ---- network overview ------------------------------------------------------------------------


def test_network_overview_counts_a_rerouted_order_once_and_its_reroute_rate() -> None:
    state = DashboardState()
    fold(state, ROUTED, routed("O-1", at(0), [("S1", "S-1", "ship_from_store", [("A", 1)])]))
    fold(
        state,
        ROUTED,
        routed("O-1", at(5), [("S2", "S-2", "ship_from_store", [("A", 1)])], attempt=2),
    )
    fold(state, ROUTED, routed("O-2", at(6), [("S3", "W-1", "ship_from_warehouse", [("B", 2)])]))
    fold(state, ROUTED, routed("O-3", at(7), [], status="unroutable"))

    ov = model.network_overview(state, at(10))

    assert ov.orders_routed == 2
    assert ov.decisions == 4
    assert ov.reroute_rate == pytest.approx(1 / 4)
    assert ov.unroutable_rate == pytest.approx(1 / 4)
    assert ov.routing_rate_per_min == pytest.approx(3 / 5)  # 3 decisions in the last 5 minutes


def test_network_overview_ignores_decisions_older_than_the_window() -> None:
    state = DashboardState()
    fold(state, ROUTED, routed("O-OLD", at(0), [("S1", "S-1", "ship_from_store", [("A", 1)])]))
    fold(state, ROUTED, routed("O-NEW", at(70), [("S2", "S-1", "ship_from_store", [("A", 1)])]))

    ov = model.network_overview(state, at(90))

    assert ov.orders_routed == 1
    assert ov.decisions == 1


def test_network_overview_counts_late_orders_still_open_and_shipped_late() -> None:
    state = DashboardState()
    walk_home_delivery(state, "O-FAST", "S-1", start=30)  # shipped 25 min after routing
    walk_home_delivery(state, "O-SLOW", "S-1", start=0)  # shipped 25 min after routing too
    # routed 80 minutes ago, only accepted since: late now
    fold(state, ROUTED, routed("O-STUCK", at(0), [("X1", "S-2", "ship_from_store", [("A", 1)])]))
    fold(
        state,
        EVENTS,
        event(
            "x-1",
            "O-STUCK",
            at(3),
            "accepted",
            "in_preparation",
            [("X1", "S-2", "accepted")],
        ),
    )
    # routed 10 minutes ago: open but not late
    fold(state, ROUTED, routed("O-NEW", at(70), [("N1", "S-2", "ship_from_store", [("A", 1)])]))

    ov = model.network_overview(state, at(80), late_after_s=20 * 60)

    assert ov.shipped == 2
    assert ov.late == 3  # both shipped after 25 min > 20 min, plus O-STUCK
    assert ov.in_preparation == 1
    assert ov.open_orders == 2
    relaxed = model.network_overview(state, at(80), late_after_s=60 * 60)
    assert relaxed.late == 1


def test_an_order_event_arriving_after_a_newer_one_does_not_undo_its_status() -> None:
    state = DashboardState()
    ships = [("S1", "S-1", "shipped")]
    fold(state, EVENTS, event("e2", "O-1", at(10), "shipped", "shipped", ships))
    fold(state, EVENTS, event("e1", "O-1", at(5), "shipment_packed", "in_preparation", ships))

    assert model.order_status(state, "O-1") == "shipped"
    assert model.network_overview(state, at(20)).in_preparation == 0


def test_replaying_every_message_changes_nothing() -> None:
    fx = fixtures.build_fixture(now=T0, n_orders=120)
    before = (
        model.network_overview(fx.state, T0),
        model.store_load_table(fx.state, T0),
        model.order_lifecycle(fx.state, fixtures.FIXTURE_ORDER_ID),
        len(fx.state.decisions),
    )

    applied = model.fold_many(fx.state, fx.messages)

    assert applied < len(fx.messages) // 2  # only identical latest values re-apply
    assert model.network_overview(fx.state, T0) == before[0]
    pd.testing.assert_frame_equal(model.store_load_table(fx.state, T0), before[1])
    pd.testing.assert_frame_equal(
        model.order_lifecycle(fx.state, fixtures.FIXTURE_ORDER_ID), before[2]
    )
    assert len(fx.state.decisions) == before[3]


# ---- order flow ------------------------------------------------------------------------------


def test_latest_decisions_are_newest_first_with_reasons_as_text() -> None:
    state = DashboardState()
    reasons = {
        "candidates": [
            {"location_id": "S-1", "score": 1.23456},
            {"location_id": "W-1", "score": 7},
        ],
        "chosen": {"location_id": "S-1", "breakdown": {"distance_km": 3.5, "load": 0.25}},
    }
    fold(
        state,
        ROUTED,
        routed("O-1", at(0), [("S1", "S-1", "ship_from_store", [("A", 2)])], reasons=reasons),
    )
    fold(
        state, ROUTED, routed("O-2", at(1), [], status="unroutable", reasons={"error": "no stock"})
    )

    df = model.latest_decisions(state, 10)

    assert df["order_id"].tolist() == ["O-2", "O-1"]
    first = df.iloc[1]
    assert first["locations"] == "S-1"
    assert first["lines"] == "A×2"
    assert first["reasons"] == (  # the choice first, then the candidates
        "chosen.location_id=S-1; chosen.breakdown.distance_km=3.5; chosen.breakdown.load=0.25; "
        "candidates=[(location_id=S-1, score=1.235) | (location_id=W-1, score=7)]"
    )
    assert df.iloc[0]["reasons"] == "error=no stock"
    assert len(model.latest_decisions(state, 1)) == 1


def test_flatten_reasons_shortens_long_lists_and_long_text() -> None:
    text = model.flatten_reasons({"c": list(range(9))}, max_items=3)
    assert text == "c=[0 | 1 | 2 | +6 more]"
    long = model.flatten_reasons({"x": "y" * 1000}, limit=50)
    assert len(long) == 50 and long.endswith("…")


def test_order_lifecycle_lists_routing_and_workflow_events_in_time_order() -> None:
    state = DashboardState()
    walk_home_delivery(state, "O-1", "S-1", start=0)

    df = model.order_lifecycle(state, " O-1 ")

    assert df["change"].tolist() == [
        "routed",
        "routed",
        "accepted",
        "picked",
        "packed",
        "label_printed",
        "shipped",
    ]
    assert df["source"].tolist()[:2] == ["routing", "workflow"]
    assert df["time"].is_monotonic_increasing
    assert df["order_status"].iloc[-1] == "shipped"
    assert df["attempt"].iloc[0] == 1
    assert "O-1-S1 @ S-1 (ship_from_store): A×1" in df["detail"].iloc[0]


def test_order_lifecycle_of_an_unknown_order_is_empty() -> None:
    df = model.order_lifecycle(DashboardState(), "NOPE")
    assert df.empty
    assert list(df.columns) == list(model.LIFECYCLE_COLUMNS)


def test_the_fixture_order_goes_through_its_whole_lifecycle() -> None:
    fx = fixtures.build_fixture(now=T0)
    df = model.order_lifecycle(fx.state, fixtures.FIXTURE_ORDER_ID)

    assert df["change"].iloc[0] == "routed"
    assert df["change"].iloc[-1] == "shipped"
    assert df["change"].tolist()[2:] == ["accepted", "picked", "packed", "label_printed", "shipped"]
    assert model.order_status(fx.state, fixtures.FIXTURE_ORDER_ID) == "shipped"


def test_the_order_cache_forgets_the_least_recently_seen_order() -> None:
    state = DashboardState(max_orders=2)
    for n in range(3):
        fold(state, ROUTED, routed(f"O-{n}", at(n), [(f"S{n}", "S-1", "ship_from_store", [])]))

    assert list(state.orders) == ["O-1", "O-2"]
    assert model.order_lifecycle(state, "O-0").empty
    assert "S0" not in state.open_shipments
    assert sum(state.status_counts.values()) == 2


# ---- stock -----------------------------------------------------------------------------------


def test_sku_stock_lists_every_location_with_the_most_available_first() -> None:
    state = DashboardState()
    fold(state, LOCS, location("W-1", kind="warehouse"))
    fold(state, AVAIL, avail("SKU-9", "S-1", 5, 1, 3))
    fold(state, AVAIL, avail("SKU-9", "W-1", 120, 20, 100))
    fold(state, AVAIL, avail("SKU-9", "S-2", -2, 0, 0))
    fold(state, AVAIL, avail("OTHER", "S-1", 1, 0, 1))

    df = model.sku_stock(state, "SKU-9")

    assert df["location_id"].tolist() == ["W-1", "S-1", "S-2"]
    assert df[["on_hand", "reserved", "available"]].values.tolist() == [
        [120, 20, 100],
        [5, 1, 3],
        [-2, 0, 0],
    ]
    assert df.loc[0, "kind"] == "warehouse"
    assert model.sku_stock(state, "MISSING").empty


def test_a_stock_availability_tombstone_removes_that_location_row() -> None:
    state = DashboardState()
    fold(state, AVAIL, avail("SKU@ODD", "S-1", 5, 0, 5))
    fold(state, AVAIL, avail("SKU@ODD", "S-2", 5, 0, 5))

    fold(state, AVAIL, None, key="SKU@ODD@S-1")

    assert model.sku_stock(state, "SKU@ODD")["location_id"].tolist() == ["S-2"]


# ---- SLA -------------------------------------------------------------------------------------


def test_sla_breaches_count_shipments_waiting_longer_than_the_threshold_per_store() -> None:
    state = DashboardState()
    fold(state, LOCS, location("S-1"))
    for n, minute in enumerate((0, 10, 50)):
        fold(
            state,
            ROUTED,
            routed(f"O-{n}", at(minute), [(f"SH-{n}", "S-1", "ship_from_store", [("A", 2)])]),
        )
    fold(state, ROUTED, routed("O-9", at(0), [("SH-9", "S-2", "ship_from_store", [("A", 1)])]))
    fold(
        state,
        EVENTS,
        event("e9", "O-9", at(20), "shipped", "shipped", [("SH-9", "S-2", "shipped")]),
    )

    df = model.sla_breaches(state, at(60), threshold_s=30 * 60)

    assert df["location_id"].tolist() == ["S-1"]
    row = df.iloc[0]
    assert row["waiting_shipments"] == 2
    assert row["waiting_units"] == 4
    assert row["oldest_wait_s"] == pytest.approx(3600.0)
    assert row["oldest_shipment_id"] == "SH-0"
    assert row["name"] == "S-1 name"


def test_sla_breaches_fall_back_to_the_store_load_oldest_open_age() -> None:
    state = DashboardState()
    fold(state, LOAD, load("S-OLD", 4, 10, since=at(0), updated=at(5)))
    fold(state, LOAD, load("S-FRESH", 4, 10, since=at(50), updated=at(55)))

    df = model.sla_breaches(state, at(60), threshold_s=30 * 60)

    assert df["location_id"].tolist() == ["S-OLD"]
    assert df.iloc[0]["waiting_shipments"] == 0
    assert df.iloc[0]["oldest_wait_s"] == pytest.approx(3600.0)
    assert df.iloc[0]["open_orders"] == 4


def test_sla_ignores_store_load_age_inside_the_followed_history() -> None:
    # store-load also counts a parcel waiting on the pickup shelf; the followed shipments know
    # it is ready, so inside the history the store is not breaching
    state = DashboardState()
    fold(state, ROUTED, routed("O-1", at(0), [("SH-1", "S-1", "click_collect", [("A", 1)])]))
    fold(
        state,
        EVENTS,
        event(
            "r",
            "O-1",
            at(20),
            "ready_for_pickup",
            "ready_for_pickup",
            [("SH-1", "S-1", "ready_for_pickup")],
        ),
    )
    fold(state, LOAD, load("S-1", 1, 10, since=at(0), updated=at(20)))
    # a shipment opened before the dashboard's history began: only store-load knows it
    fold(state, LOAD, load("S-2", 1, 10, since=at(-30), updated=at(20)))

    df = model.sla_breaches(state, at(60), threshold_s=30 * 60)

    assert df["location_id"].tolist() == ["S-2"]
    assert df.iloc[0]["source"] == "store-load"
    assert df.iloc[0]["oldest_wait_s"] == pytest.approx(90 * 60.0)


def test_a_reroute_listing_older_shipments_does_not_reset_their_status() -> None:
    state = DashboardState()
    fold(state, ROUTED, routed("O-1", at(0), [("A1", "S-1", "ship_from_store", [("A", 1)])]))
    fold(
        state,
        EVENTS,
        event("s", "O-1", at(5), "shipped", "partially_shipped", [("A1", "S-1", "shipped")]),
    )
    both = [
        ("A1", "S-1", "ship_from_store", [("A", 1)]),
        ("B1", "S-2", "ship_from_store", [("B", 1)]),
    ]
    reroute = routed("O-1", at(10), both, attempt=2)
    reroute["reasons"]["new_shipments"] = ["B1"]
    fold(state, ROUTED, reroute)

    assert set(state.open_shipments) == {"B1"}
    assert model.order_status(state, "O-1") == "partially_shipped"
    last = model.order_lifecycle(state, "O-1").iloc[-1]
    assert last["location_id"] == "S-2"
    assert last["detail"] == "B1 @ S-2 (ship_from_store): B×1"


def test_preparation_time_leaves_out_waiting_for_the_customer_and_transit() -> None:
    prep = {
        "routed->accepted": 60.0,
        "accepted->picked": 120.0,
        "packed->ready_for_pickup": 30.0,
        "ready_for_pickup->collected": 5000.0,
        "in_transit->ready_for_pickup": 7000.0,
    }
    assert model.prep_total(prep) == 210.0
    assert model.prep_total(None) == 0.0


def test_a_cancelled_order_has_no_shipment_waiting() -> None:
    state = DashboardState()
    fold(state, ROUTED, routed("O-1", at(0), [("SH-1", "S-1", "ship_from_store", [("A", 1)])]))
    fold(
        state,
        EVENTS,
        event("c", "O-1", at(1), "order_cancelled", "cancelled", [("SH-1", "S-1", "cancelled")]),
    )

    assert model.sla_breaches(state, at(60), threshold_s=60).empty
    assert model.network_overview(state, at(60), late_after_s=60).late == 0


# ---- robustness ------------------------------------------------------------------------------


def test_malformed_messages_are_counted_and_skipped_not_raised() -> None:
    state = DashboardState()
    assert not fold(state, LOAD, {"kind": "store"})
    assert not fold(state, ROUTED, {"order_id": "O-1", "decided_at": "yesterday"})
    assert not fold(state, EVENTS, {"order_id": "O-1", "occurred_at": T0.isoformat()})
    assert not fold(state, AVAIL, {"sku": 5})
    assert not fold(state, "not-a-handle", {"x": 1})

    assert state.skipped == 5
    assert state.last_problem is not None and "not-a-handle" in state.last_problem
    assert model.store_load_table(state).empty
    assert model.backlog_series(state).empty


def test_every_fixture_message_validates_against_its_output_model() -> None:
    models: dict[str, type[BaseModel]] = {
        LOAD: StoreLoad,
        ROUTED: RoutedOrder,
        EVENTS: OrderEvent,
        AVAIL: StockAvailability,
        LOCS: Location,
        DEAD: DeadLetter,
    }
    messages = fixtures.build_messages(now=T0, n_orders=150)

    for handle, value, _ in messages:
        models[handle].model_validate(value)
    assert {h for h, _, _ in messages} == set(models)


def test_the_fixture_is_deterministic_for_a_seed_and_an_instant() -> None:
    a = fixtures.build_messages(seed=3, now=T0, n_orders=100)
    b = fixtures.build_messages(seed=3, now=T0, n_orders=100)
    c = fixtures.build_messages(seed=4, now=T0, n_orders=100)
    assert a == b
    assert a != c


def test_the_fixture_has_a_drowning_store_on_top_and_sla_breaches() -> None:
    fx = fixtures.build_fixture(now=T0)
    table = model.store_load_table(fx.state, T0)

    assert 10 <= len(table) <= 20
    assert table.loc[0, "kind"] == "store"
    assert table.loc[0, "saturation"] > 0.5
    assert not model.sla_breaches(fx.state, T0, 30 * 60).empty
    assert fixtures.FIXTURE_SKU in model.known_skus(fx.state, 100)
    assert len(model.sku_stock(fx.state, fixtures.FIXTURE_SKU)) == len(table)


# ---- the Kafka reader's and launcher's pure parts --------------------------------------------


def test_compacted_topics_are_read_from_the_beginning() -> None:
    offset = source.start_offset(compacted=True, beginning=3, end=900, by_time=800, max_messages=10)
    assert offset == 3


def test_order_topics_start_at_the_history_window_bounded_by_a_message_count() -> None:
    def start(by_time: int | None, max_messages: int) -> int:
        return source.start_offset(
            compacted=False, beginning=100, end=1000, by_time=by_time, max_messages=max_messages
        )

    assert start(by_time=400, max_messages=10_000) == 400
    assert start(by_time=400, max_messages=50) == 950
    assert start(by_time=None, max_messages=10_000) == 1000  # everything older than the window
    assert start(by_time=0, max_messages=10_000) == 100


def test_decode_accepts_objects_and_tombstones_and_rejects_the_rest() -> None:
    assert source.decode(b'{"a": 1}') == ({"a": 1}, None)
    assert source.decode(None) == (None, None)
    assert source.decode(b"[1]")[1] == "not a JSON object: list"
    value, problem = source.decode(b"{nope")
    assert value is None and problem is not None and problem.startswith("not JSON")


def test_a_feed_without_a_broker_says_so_instead_of_raising() -> None:
    status = source.FeedStatus(bootstrap="127.0.0.1:1", error="KafkaConnectionError: refused")
    assert status.describe().startswith("Kafka not reachable at 127.0.0.1:1")


def test_the_dashboard_binds_loopback_headless_by_default() -> None:
    cmd = serve.build_command(python="python")
    assert cmd[:4] == ["python", "-m", "streamlit", "run"]
    assert cmd[4].endswith("dashboard/app.py")
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8501"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    custom = serve.build_command("0.0.0.0", 9000, python="python")
    assert custom[custom.index("--server.address") + 1] == "0.0.0.0"
    assert custom[custom.index("--server.port") + 1] == "9000"


def test_store_load_replay_is_released_in_time_order_across_partitions() -> None:
    replay = source.TimeOrderedReplay()
    a, b = ("store-load", 0), ("store-load", 1)
    replay.track(a)
    replay.track(b)
    done: set[tuple[str, int]] = set()
    for ts in (1.0, 3.0, 5.0):
        replay.push(a, ts, (LOAD, {"t": ts}, "A"))

    assert replay.release(lambda k: k in done) == []  # b's next time is still unknown

    for ts in (2.0, 4.0):
        replay.push(b, ts, (LOAD, {"t": ts}, "B"))
    first = replay.release(lambda k: k in done)
    done.add(b)
    rest = replay.release(lambda k: k in done)

    assert [item[1]["t"] for item in first] == [1.0, 2.0, 3.0, 4.0]  # type: ignore[index]
    assert [item[1]["t"] for item in rest] == [5.0]  # type: ignore[index]
    assert b not in replay and a in replay  # a is not finished yet
    done.add(a)
    assert replay.release(lambda k: k in done) == [] and a not in replay


# ---- dead letters ----------------------------------------------------------------------------


def dead_letter(
    error: str,
    *,
    topic: str = "web-orders",
    offset: int = 1,
    key: str | None = "ORD-1",
    raw: str = "{nope",
    minute: float = 0,
) -> dict[str, Any]:
    return DeadLetter(
        source_topic=topic,
        partition=0,
        offset=offset,
        key=key,
        raw=raw,
        error=error,
        rejected_at=at(minute),
    ).model_dump(mode="json")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("malformed JSON: EOF while parsing a value at line 1 column 5", "malformed JSON"),
        ("invalid WebOrder: lines.0.qty: Input should be greater than 0", "invalid WebOrder"),
        ("invalid FulfilmentEvent: type: Input should be 'accepted'", "invalid FulfilmentEvent"),
        ("unknown location_id 'ST-999'", "unknown location_id"),
        ("message key must be the order_id 'ORD-7'", "message key must be"),
        ("empty message (tombstone or null value)", "empty message"),
        ("not a JSON object", "not a JSON object"),
        ("unknown shipment 'S-1' for order ORD-1", "unknown shipment"),
        ("order ORD-1 was already placed", "order was already placed"),
        ("cannot reject shipment S-9 once packed", "cannot reject shipment once"),
        ("", "(no reason)"),
    ],
)
def test_a_dead_letter_reason_is_classed_by_its_first_words_without_ids(
    error: str, expected: str
) -> None:
    assert model.reason_class(error) == expected


def test_dead_letters_are_counted_by_source_topic_and_reason_class() -> None:
    state = DashboardState()
    fold(state, DEAD, dead_letter("malformed JSON: EOF at column 5", offset=1))
    fold(state, DEAD, dead_letter("malformed JSON: expected value", offset=2))
    fold(state, DEAD, dead_letter("unknown location_id 'ST-9'", topic="pos-sales", offset=1))
    fold(state, DEAD, dead_letter("invalid WebOrder: lines: Field required", offset=3))

    by_topic = model.dead_letters_by_topic(state)
    by_reason = model.dead_letters_by_reason(state)

    assert by_topic.to_dict("records") == [
        {"source_topic": "web-orders", "dead_letters": 3},
        {"source_topic": "pos-sales", "dead_letters": 1},
    ]
    assert by_reason.to_dict("records") == [
        {"reason_class": "malformed JSON", "dead_letters": 2},
        {"reason_class": "invalid WebOrder", "dead_letters": 1},
        {"reason_class": "unknown location_id", "dead_letters": 1},
    ]
    assert model.dead_letter_total(state) == 4


def test_a_dead_letter_read_twice_is_counted_once() -> None:
    state = DashboardState()
    letter = dead_letter("malformed JSON: x", offset=5)
    assert fold(state, DEAD, letter)
    assert not fold(state, DEAD, letter)  # a re-read of the topic
    assert model.dead_letter_total(state) == 1
    assert len(model.latest_dead_letters(state)) == 1


def test_latest_dead_letters_are_newest_first_with_their_raw_payload() -> None:
    state = DashboardState(max_dead_letters=3)
    for i in range(5):
        fold(state, DEAD, dead_letter(f"malformed JSON: {i}", offset=i, raw=f"raw-{i}", minute=i))
    fold(state, DEAD, dead_letter("unknown location_id 'X'", offset=9, key=None, minute=9))
    binary = dead_letter("malformed JSON: bad utf-8", offset=10, raw="/w==", minute=10)
    binary["raw_encoding"] = "base64"
    fold(state, DEAD, binary)

    latest = model.latest_dead_letters(state, 10)

    assert list(latest.columns) == list(model.DEAD_LETTER_COLUMNS)
    assert latest["raw"].tolist() == ["base64:/w==", "{nope", "raw-4"]  # bounded, newest first
    assert latest["rejected_at"].iloc[0] == pd.Timestamp(at(10))
    assert pd.isna(latest["key"].iloc[1])
    assert model.dead_letter_total(state) == 7  # counts are not bounded by the kept rows
    shown = model.for_display(latest)
    assert shown["key"].iloc[1] == model.PLACEHOLDER


def test_a_dead_letter_without_source_topic_or_error_is_skipped() -> None:
    state = DashboardState()
    assert not fold(state, DEAD, {"raw": "x"})
    assert state.skipped == 1 and model.dead_letter_total(state) == 0


def test_the_live_feed_follows_the_dead_letters_topic() -> None:
    import inspect

    assert TOPICS.dead_letters.handle in model.DASHBOARD_HANDLES
    default = inspect.signature(source.LiveFeed).parameters["handles"].default
    assert TOPICS.dead_letters.handle in default


def test_the_fixture_has_dead_letters_of_every_reason_class() -> None:
    state = fixtures.build_state(now=T0)
    reasons = set(model.dead_letters_by_reason(state)["reason_class"])
    assert {"malformed JSON", "invalid WebOrder", "unknown location_id"} <= reasons
    assert "message key must be" in reasons


# ---- display helpers -------------------------------------------------------------------------


def test_for_display_leaves_no_missing_cell() -> None:
    df = pd.DataFrame(
        {
            "text": ["a", None],
            "count": pd.array([1, None], dtype="Int64"),
            "ratio": [0.5, float("nan")],
            "when": pd.to_datetime([T0, None], utc=True),
            "full": [1, 2],
            "stamp": pd.to_datetime([T0, T0], utc=True),
        }
    )

    shown = model.for_display(df)

    assert not shown.isna().any().any()
    assert shown["text"].tolist() == ["a", "–"]
    assert shown["count"].tolist() == ["1", "–"]
    assert shown["ratio"].tolist() == ["0.5", "–"]
    assert shown["when"].tolist() == ["2025-11-28 12:00:00", "–"]
    # columns without gaps keep their type (and so the page's number and time formats)
    assert shown["full"].dtype == "int64"
    assert pd.api.types.is_datetime64_any_dtype(shown["stamp"])
    assert pd.isna(df["text"].iloc[1])  # the input is not changed


def test_no_fixture_table_has_a_missing_cell_once_displayed() -> None:
    fx = fixtures.build_fixture(now=T0)
    state, now = fx.state, fx.as_of
    frames = [
        model.store_load_table(state, now),
        model.latest_decisions(state, 50),
        model.order_lifecycle(state, fixtures.FIXTURE_ORDER_ID),
        model.sku_stock(state, fixtures.FIXTURE_SKU),
        model.sla_breaches(state, now, 60),
        model.status_breakdown(state),
        model.latest_dead_letters(state),
        model.dead_letters_by_topic(state),
    ]
    assert model.order_lifecycle(state, fixtures.FIXTURE_ORDER_ID)["attempt"].isna().any()
    for frame in frames:
        shown = model.for_display(frame)
        assert not shown.isna().any().any()
        assert not shown.astype(str).isin(["None", "nan", "NaT", "<NA>"]).any().any()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (7, "7"),
        (1.84, "1.8"),
        (99.95, "100"),
        (322.6, "323"),
        (9999, "9,999"),
        (12_345, "12.3k"),
        (1_234_567, "1.2M"),
        (999_999, "1M"),
        (999_949, "999.9k"),
        (2.5e12, "2500G"),
        (-5.25, "-5.2"),
        (float("nan"), "–"),
    ],
)
def test_compact_number_keeps_metric_values_short(value: float, text: str) -> None:
    assert model.compact_number(value) == text


def test_overview_metrics_carry_units_in_labels_and_short_values() -> None:
    ov = model.NetworkOverview(
        orders_routed=123_456,
        in_preparation=9_876,
        shipped=54_321,
        late=1_234,
        routing_rate_per_min=322.6,
        unroutable_rate=0.1234,
        reroute_rate=1.0,
        decisions=200_000,
        open_orders=12_000,
    )

    tiles = model.overview_metrics(ov, 30)

    labels = [t.label for t in tiles]
    assert "Routing rate (/min)" in labels
    values = {t.label: t.value for t in tiles}
    assert values["Routing rate (/min)"] == "323"
    assert values["Orders routed (1 h)"] == "123.5k"
    assert values["Re-routed (1 h)"] == "100.0%"
    assert all(len(t.value) <= model.METRIC_VALUE_MAX_CHARS for t in tiles), values
    assert "30 min" in tiles[3].help


# ---- charts ----------------------------------------------------------------------------------


def test_the_map_is_plotly_geo_with_country_outlines_and_no_tiles() -> None:
    state = DashboardState()
    fold(state, LOCS, location("S-1", lat=48.85, lon=2.35))
    fold(state, LOCS, location("S-2", lat=43.3, lon=5.4))
    fold(state, LOAD, load("S-1", 4, 8))
    fold(state, LOAD, load("S-2", 12, 8))
    points = model.map_points(model.store_load_table(state))

    fig = charts.store_map(points).to_plotly_json()

    (trace,) = fig["data"]
    geo = fig["layout"]["geo"]
    assert trace["type"] == "scattergeo"
    assert "mapbox" not in fig["layout"] and "map" not in fig["layout"]
    assert geo["showcountries"] and geo["showland"] and geo["showcoastlines"]
    assert (geo["scope"], geo["resolution"]) == ("europe", 50)
    assert list(trace["text"]) == ["S-1 name", "S-2 name"]  # least saturated drawn first
    assert list(trace["marker"]["color"]) == [0.5, 1.5]
    assert trace["marker"]["cmax"] == model.SATURATION_RED_AT


def test_the_map_outlines_ship_with_the_dashboard_and_plotly_is_pointed_at_them() -> None:
    assert charts.geo_scope([{"lat": 48.8, "lon": 2.3}]) == ("europe", 50)
    assert charts.geo_scope([{"lat": 40.7, "lon": -74.0}]) == ("world", 110)
    assert charts.geo_scope([]) == ("world", 110)
    for scope, resolution in (("europe", 50), ("world", 110)):
        topo = json.loads(charts.topojson_file(scope, resolution).read_text())
        assert {"countries", "land", "coastlines", "ocean"} <= set(topo["objects"])
    assert charts.plotly_config()["topojsonURL"] == "/app/static/"
    assert charts.plotly_config("/sr/")["topojsonURL"] == "/sr/app/static/"
    cmd = serve.build_command(python="python")
    assert cmd[cmd.index("--server.enableStaticServing") + 1] == "true"
    assert serve.APP.parent / "static" == charts.STATIC_DIR  # Streamlit serves <app dir>/static


def test_backlog_tick_labels_never_repeat_whatever_the_tick_spacing() -> None:
    fig = charts.backlog_chart(
        pd.DataFrame(
            {
                "time": pd.date_range("2025-11-28 12:00", periods=4, freq="10s"),
                "series": "total",
                "open_orders": [1, 2, 3, 2],
            }
        ),
        {"total": "#000000"},
    ).to_plotly_json()
    xaxis = fig["layout"]["xaxis"]
    assert xaxis["type"] == "date"
    stops = [(s["dtickrange"], s["value"]) for s in xaxis["tickformatstops"]]

    def fmt(dtick_ms: int) -> str:
        for (lo, hi), value in stops:
            if (lo is None or dtick_ms >= lo) and (hi is None or dtick_ms < hi):
                return value.replace("%L", "%f")
        raise AssertionError(dtick_ms)

    start = datetime(2025, 11, 28, 11, 58, 40)
    for dtick_ms in (
        500,
        5_000,
        10_000,
        30_000,
        60_000,
        300_000,
        1_800_000,
        7_200_000,
        6 * 3_600_000,
        43_200_000,
        86_400_000,
        7 * 86_400_000,
    ):
        ticks = [start + timedelta(milliseconds=dtick_ms * i) for i in range(12)]
        labels = [t.strftime(fmt(dtick_ms)) for t in ticks]
        assert len(set(labels)) == len(labels), (dtick_ms, labels)


# ---- pages -----------------------------------------------------------------------------------


def test_the_sidebar_names_the_pages_planner_store_and_returns_desk() -> None:
    assert [p.title for p in serve.PAGES] == ["Planner", "Store", "Returns desk"]
    assert serve.PAGES[0].file is None  # the planner is app.py's own page, the default one
    for page in serve.PAGES[1:]:
        assert page.file is not None and (serve.APP.parent / page.file).is_file()
    # the store app's links keep working: /Store?store=<id>, /Returns_desk
    assert [p.url_path for p in serve.PAGES[1:]] == ["Store", "Returns_desk"]


def test_the_map_frames_every_location_and_fills_its_frame() -> None:
    points = [{"lat": 43.1, "lon": -1.5}, {"lat": 50.6, "lon": 7.7}, {"lat": 48.8, "lon": 2.3}]
    ranges = charts.map_ranges(points)
    assert ranges is not None
    (lon0, lon1), (lat0, lat1) = ranges
    assert all(lon0 < p["lon"] < lon1 and lat0 < p["lat"] < lat1 for p in points)
    # as wide as the frame (Mercator: a degree of latitude is sec(lat) degrees of longitude)
    stretch = 1 / math.cos(math.radians((lat0 + lat1) / 2))
    assert (lon1 - lon0) / ((lat1 - lat0) * stretch) == pytest.approx(charts.MAP_ASPECT, 0.01)
    assert charts.map_ranges([]) is None
    geo = charts.store_map(
        [
            {**p, "location_id": f"L{i}", "name": f"L{i}", "kind": "store", "open_orders": 1}
            | {"saturation": 0.1, "size": 8}
            for i, p in enumerate(points)
        ]
    ).to_plotly_json()["layout"]["geo"]
    assert list(geo["lonaxis"]["range"]) == [lon0, lon1]


def test_backorders_fold_per_sku_oldest_wait_first() -> None:
    from dashboard.model import DashboardState, backorders_table, fold

    state = DashboardState()
    t = "2026-11-27T10:00:00+00:00"
    for sku, units, since in (
        ("A", 3, "2026-11-27T08:00:00+00:00"),
        ("B", 1, "2026-11-27T06:00:00+00:00"),
    ):
        fold(
            state,
            TOPICS.backorders.handle,
            {
                "sku": sku,
                "backordered": units,
                "waiting_orders": 1,
                "oldest_since": since,
                "updated_at": t,
            },
            sku,
        )
    table = backorders_table(state, datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
    assert list(table["sku"]) == ["B", "A"] and list(table["oldest_wait_h"]) == [4.0, 2.0]
    done = {
        "sku": "B",
        "backordered": 0,
        "waiting_orders": 0,
        "oldest_since": None,
        "updated_at": "2026-11-27T10:01:00+00:00",
    }
    fold(state, TOPICS.backorders.handle, done, "B")
    assert list(backorders_table(state, 0.0)["sku"]) == ["A"]
