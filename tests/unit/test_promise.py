"""The delivery promise (domain/promise.py): cut-off edges, weekends, DST, closed dates, and
routing weighing it (a closed store against an open warehouse)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from domain.calendar import Calendar, Interval
from domain.promise import Carriers, delivery_date, shipment_promise
from domain.routing import LoadView, RoutingPolicy, RoutingRequest, decide
from streams.records import Location, LocationCalendar

PARIS = ZoneInfo("Europe/Paris")
CARRIERS = Carriers.default()
STD = CARRIERS.services["standard"]


def paris(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=PARIS).astimezone(UTC)


def loc(location_id: str = "ST-1", kind: str = "store", cap: int = 10, **kw: Any) -> Location:
    return Location(
        location_id=location_id,
        kind=kind,  # type: ignore[arg-type]
        name=location_id,
        lat=kw.pop("lat", 48.85),
        lon=kw.pop("lon", 2.35),
        ship_from_store=True,
        click_collect=True,
        capacity_per_hour=cap,
        max_backlog=100,
        **kw,
    )


def store_hours(closed: frozenset[date] = frozenset()) -> Calendar:
    """Prepares Mon-Sat 09:00-19:00 Paris time, closed on Sunday."""
    day = (Interval(dt.time(9), dt.time(19)),)
    week = {d: day for d in range(6)}
    return Calendar(tz="Europe/Paris", opening=week, preparation=week, closed_dates=closed)


def promise(now: datetime, *, cal: Calendar | None = None, queue: int = 0, **kw: Any) -> Any:
    args: dict[str, Any] = {"service": "standard", "mode": "ship_from_store", "distance_km": 10.0}
    args.update(kw)
    return shipment_promise(
        kw.pop("location", loc()),
        now=now,
        queue_ahead=queue,
        carriers=CARRIERS,
        calendar=cal,
        **{k: v for k, v in args.items() if k != "location"},
    )


# ---- cut-offs --------------------------------------------------------------------------------


def test_ready_before_the_cutoff_ships_that_day_and_arrives_the_next() -> None:
    # Tuesday 2026-12-01 10:00, 10 per hour, nothing queued: ready 10:06, cut-off 16:00
    p = promise(paris(2026, 12, 1, 10))
    assert p.ready_at == paris(2026, 12, 1, 10, 6)
    assert p.ship_by == paris(2026, 12, 1, 16)
    assert p.promised_delivery == date(2026, 12, 2)
    assert p.ready_for_pickup_by is None


def test_ready_exactly_at_the_cutoff_still_makes_it_one_minute_later_does_not() -> None:
    # 60 queued at 10/h = 6 h of work, plus its own 6 min: 09:54 + 6h06 = 16:00 exactly
    on_time = promise(paris(2026, 12, 1, 9, 54), queue=60)
    assert on_time.ready_at == paris(2026, 12, 1, 16)
    assert on_time.ship_by == paris(2026, 12, 1, 16)
    late = promise(paris(2026, 12, 1, 9, 55), queue=60)
    assert late.ship_by == paris(2026, 12, 2, 16)
    assert late.promised_delivery == date(2026, 12, 3)


def test_the_queue_counts_only_preparation_hours() -> None:
    # 40 queued at 10/h = 4 h + 6 min; from Tuesday 17:00 the store prepares 2 h that day
    # (to 19:00) and the rest Wednesday from 09:00: ready 11:06, ships Wednesday 16:00
    p = promise(paris(2026, 12, 1, 17), cal=store_hours(), queue=40)
    assert p.ready_at == paris(2026, 12, 2, 11, 6)
    assert p.ship_by == paris(2026, 12, 2, 16)
    assert p.promised_delivery == date(2026, 12, 3)


def test_a_location_cutoff_overrides_its_kind() -> None:
    late_store = replace(STD, cutoff_by_location={"ST-1": dt.time(18, 30)})
    carriers = replace(CARRIERS, services={**CARRIERS.services, "standard": late_store})
    p = shipment_promise(
        loc(),
        now=paris(2026, 12, 1, 17),
        queue_ahead=0,
        service="standard",
        mode="ship_from_store",
        distance_km=10.0,
        carriers=carriers,
    )
    assert p.ship_by == paris(2026, 12, 1, 18, 30)


# ---- weekends, transit, delivery days -------------------------------------------------------


def test_saturday_evening_order_waits_for_monday_and_sunday_is_not_a_delivery_day() -> None:
    # Saturday 2026-12-05 18:00 at a store closed on Sunday: prepared Monday 09:06, ships
    # Monday 16:00, delivered Tuesday
    p = promise(paris(2026, 12, 5, 18), cal=store_hours())
    assert p.ship_by == paris(2026, 12, 7, 16)
    assert p.promised_delivery == date(2026, 12, 8)
    # shipped Saturday with one transit day: Sunday does not deliver, so Monday
    assert delivery_date(STD, date(2026, 12, 5), 1) == date(2026, 12, 7)
    assert delivery_date(STD, date(2026, 12, 5), 0) == date(2026, 12, 5)
    assert delivery_date(STD, date(2026, 12, 6), 0) == date(2026, 12, 7)


def test_express_is_not_collected_on_saturday() -> None:
    p = promise(paris(2026, 12, 5, 10), service="express")
    assert p.ship_by == paris(2026, 12, 7, 15)
    assert p.promised_delivery == date(2026, 12, 8)


@pytest.mark.parametrize(("km", "days"), [(0.0, 1), (150.0, 1), (150.1, 2), (500.0, 2), (900, 3)])
def test_transit_follows_the_distance_bands(km: float, days: int) -> None:
    p = promise(paris(2026, 12, 1, 10), distance_km=km)  # ships Tuesday
    assert p.promised_delivery == date(2026, 12, 1) + dt.timedelta(days=days)


# ---- closed dates and DST --------------------------------------------------------------------


def test_a_closed_date_pushes_preparation_and_shipping_to_the_next_open_day() -> None:
    cal = store_hours(closed=frozenset({date(2026, 12, 2)}))
    p = promise(paris(2026, 12, 1, 20), cal=cal)  # after hours Tuesday; Wednesday is closed
    assert p.ready_at == paris(2026, 12, 3, 9, 6)
    assert p.ship_by == paris(2026, 12, 3, 16)
    assert p.promised_delivery == date(2026, 12, 4)


def test_cutoff_stays_at_local_wall_time_across_the_dst_change() -> None:
    # Europe/Paris goes from UTC+2 to UTC+1 on Sunday 2026-10-25
    before = promise(paris(2026, 10, 24, 10))  # Saturday, summer time
    assert before.ship_by.astimezone(UTC).hour == 14  # 16:00 CEST
    # Saturday after hours at a store closed on Sunday: Monday's 16:00 is now CET (UTC+1)
    after = promise(paris(2026, 10, 24, 20), cal=store_hours())
    assert after.ship_by == paris(2026, 10, 26, 16)
    assert after.ship_by.astimezone(UTC).hour == 15
    # spring forward (2026-03-29): a 02:30 cut-off does not exist that Sunday night
    night = replace(
        STD, cutoff={**STD.cutoff, "warehouse": dt.time(2, 30)}, pickup_days=frozenset(range(7))
    )
    carriers = replace(CARRIERS, services={**CARRIERS.services, "standard": night})
    p = shipment_promise(
        loc("WH-1", "warehouse", cap=1000),
        now=paris(2026, 3, 29, 1),
        queue_ahead=0,
        service="standard",
        mode="ship_from_warehouse",
        distance_km=10.0,
        carriers=carriers,
    )
    assert p.ship_by.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST


# ---- click & collect -------------------------------------------------------------------------


def test_click_and_collect_from_the_shelf_is_ready_when_prepared() -> None:
    p = promise(paris(2026, 12, 1, 21), cal=store_hours(), mode="click_collect")
    assert p.ready_for_pickup_by == paris(2026, 12, 2, 9, 6)
    assert p.ship_by == p.ready_for_pickup_by
    assert p.promised_delivery is None
    assert p.customer_date == date(2026, 12, 2)


def test_a_transfer_is_ready_on_its_arrival_day_at_the_pickup_stores_hours() -> None:
    # ships Tuesday 20:00 from the warehouse, arrives Wednesday, on the shelf at 10:30
    p = shipment_promise(
        loc("WH-1", "warehouse", cap=1000),
        now=paris(2026, 12, 1, 10),
        queue_ahead=0,
        service="standard",
        mode="transfer_to_store",
        distance_km=100.0,
        carriers=CARRIERS,
        pickup=loc("ST-9"),
        pickup_calendar=store_hours(),
    )
    assert p.ship_by == paris(2026, 12, 1, 20)
    assert p.promised_delivery is None
    assert p.ready_for_pickup_by == paris(2026, 12, 2, 10, 30)


# ---- the policy file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"overnight": {}}, "unknown keys ['overnight']"),
        ({"standard": None}, "carriers.standard must be a mapping"),
        ({"express": {"cutoff": {}}}, "carriers.express lacks transit"),
        ({"standard.cutoff.store": "25:00"}, "carriers.standard.cutoff.store must be a time"),
        ({"standard.delivery_days": ["mon", "funday"]}, "unknown day 'funday'"),
        ({"standard.transit": [{"max_km": 100, "days": 1}]}, "the last band must have max_km null"),
        (
            {"standard.transit": [{"max_km": 300, "days": 1}, {"max_km": 200, "days": 2}]},
            "must grow band after band",
        ),
        ({"standard.transit": [{"max_km": None, "days": -1}]}, "days must be an integer"),
    ],
)
def test_a_bad_carriers_section_is_refused_with_its_reason(
    patch: dict[str, Any], reason: str
) -> None:
    import yaml

    from domain.routing import DEFAULT_POLICY_PATH

    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())["carriers"]
    for key, value in patch.items():
        parts = key.split(".")
        target = data
        for part in parts[:-1]:
            target = target[part]
        if parts[-1] == "cutoff" and value == {}:
            target[parts[-1]] = {}
            target.pop("transit", None)
        else:
            target[parts[-1]] = value
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        RoutingPolicy.from_mapping({"carriers": data})


# ---- routing weighs the promise --------------------------------------------------------------


class Stock:
    def __init__(self, by_sku: dict[str, dict[str, int]]) -> None:
        self.by_sku = by_sku

    def stock_of(self, sku: str) -> dict[str, int]:
        return self.by_sku.get(sku, {})


def _route(locations: list[Location], now: datetime) -> Any:
    by_id = {x.location_id: x for x in locations}
    stock = Stock({"A": {x.location_id: 5 for x in locations}})
    req = RoutingRequest("O-1", 48.85, 2.35, "home", None, "standard", (("A", 1),))
    loads = {x.location_id: LoadView() for x in locations}
    return decide(req, stock, by_id, loads, RoutingPolicy.default(), now=now)


def test_a_store_that_prepares_tomorrow_loses_to_an_open_warehouse_that_ships_today() -> None:
    # Tuesday 18:00: the store next door prepares again tomorrow 09:00 (delivered Thursday);
    # the warehouse 60 km away ships tonight at 20:00 (delivered Wednesday)
    hours = {d: ["09:00-19:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}
    cal = LocationCalendar.model_validate({"tz": "Europe/Paris", "opening": hours})
    store = loc("ST-1", lat=48.851).model_copy(update={"calendar": cal})
    wh = loc("WH-1", "warehouse", cap=1000, lat=48.85 + 60 / 111.2)
    now = paris(2026, 12, 1, 18)
    d = _route([store, wh], now)
    assert d.shipments[0].location_id == "WH-1"
    assert d.shipments[0].promise.promised_delivery == date(2026, 12, 2)
    promised = {c["location_id"]: c["promised"] for c in d.reasons["candidates"]}
    assert promised == {"WH-1": "2026-12-02", "ST-1": "2026-12-03"}
    # the same store against a warehouse 600 km away (3 transit days) still wins
    far = loc("WH-2", "warehouse", cap=1000, lat=48.85 + 600 / 111.2)
    d = _route([store, far], now)
    assert d.shipments[0].location_id == "ST-1"
    assert d.shipments[0].promise.ship_by == paris(2026, 12, 2, 16)
