"""The delivery promise: when a shipment from a location will ship and reach the customer.

Pure: no clock of its own (`now` is the network clock, passed in), no Kafka. Routing weighs it
(domain/routing.py), the order machine publishes it on every decision, the delivery-promise API
answers it before an order exists, and bench/quality.py checks it was kept.

The chain, for one shipment from one location (shared/domain-notes.md, "A promise chains"):

1. **Preparation.** The queue ahead of it (the location's open shipments) plus this one, each
   taking ``3600 / capacity_per_hour`` seconds of *preparation time*, counted only within the
   location's preparation hours (its calendar, `domain/calendar.py`; no calendar = always
   open): `ready_at = add_preparation_seconds(calendar, now, (queue + 1) * 3600 / capacity)`.
   A store closed until tomorrow starts tomorrow.
2. **Cut-off.** The first carrier cut-off at or after `ready_at`, on a pickup day of the service,
   in the location's local time (its calendar's time zone, else the carriers' `timezone`):
   that is `ship_by`.
3. **Transit.** The service's transit days for the distance band (great-circle km to the
   customer, or to the pickup store for a transfer), counted in the service's delivery days
   (no delivery on Sunday, say): `promised_delivery`, a date.
4. **Click & collect.** From the pickup store's own shelf there is no carrier: `ship_by` =
   `ready_for_pickup_by` = `ready_at`. A transfer to the pickup store ships like a home
   delivery and is ready for pickup on the arrival day at `transfer_ready_at` local time, or
   the store's next preparation time after it, plus `transfer_handling_minutes` of preparation
   time.

The carriers' table (cut-offs per service and location kind or location, transit bands,
pickup and delivery days) lives in the routing policy file, under `carriers`
(policy/routing.yaml documents each key); `Carriers.from_mapping` rejects a bad one with the
exact reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.calendar import Calendar, add_preparation_seconds, next_preparation_start
from domain.calendar import calendar_of as location_calendar
from streams.records import Location

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KINDS = ("warehouse", "store", "supplier", "marketplace")
SERVICES = ("standard", "express")
CLICK_COLLECT = "click_collect"
TRANSFER = "transfer_to_store"
DAY_S = 86400.0


# ---- the carriers' table ---------------------------------------------------------------------


@dataclass(frozen=True)
class TransitBand:
    """Up to `max_km` (None: any distance), the parcel takes `days` delivery days."""

    max_km: float | None
    days: int


@dataclass(frozen=True)
class Service:
    """One carrier service: when it collects, how long it travels, when it delivers."""

    cutoff: Mapping[str, dt.time]  # location kind -> daily local cut-off
    cutoff_by_location: Mapping[str, dt.time]  # location_id -> cut-off (overrides the kind)
    pickup_days: frozenset[int]  # weekdays (0 = Monday) the carrier collects
    transit: tuple[TransitBand, ...]  # increasing max_km, the last one open-ended
    delivery_days: frozenset[int]  # weekdays the carrier delivers

    def cutoff_of(self, loc: Location) -> dt.time:
        return self.cutoff_by_location.get(loc.location_id) or self.cutoff[loc.kind]

    def transit_days(self, km: float) -> int:
        for band in self.transit:
            if band.max_km is None or km <= band.max_km:
                return band.days
        return self.transit[-1].days  # unreachable: the last band is open-ended (validated)


@dataclass(frozen=True)
class Carriers:
    """Every service, the default time zone and the click & collect transfer timings."""

    services: Mapping[str, Service]
    timezone: str = "Europe/Paris"  # of locations with no calendar
    transfer_ready_at: dt.time = dt.time(10, 0)  # local time on a transfer's arrival day
    transfer_handling_minutes: float = 30.0  # preparation time to shelve a transfer

    @classmethod
    def from_mapping(cls, data: Any) -> Carriers:
        """Build and validate the `carriers` section; every error names the key at fault."""
        where = "carriers"
        if not isinstance(data, Mapping):
            raise ValueError(f"routing policy: {where} must be a mapping")
        _only(
            data, {"timezone", "transfer_ready_at", "transfer_handling_minutes", *SERVICES}, where
        )
        missing = [s for s in SERVICES if s not in data]
        if missing:
            raise ValueError(f"routing policy: {where} lacks the services {missing}")
        tz = data.get("timezone", "Europe/Paris")
        _zone(tz, f"{where}.timezone")
        handling = data.get("transfer_handling_minutes", 30.0)
        if isinstance(handling, bool) or not isinstance(handling, int | float) or handling < 0:
            raise ValueError(
                f"routing policy: {where}.transfer_handling_minutes must be a number >= 0"
            )
        return cls(
            services={s: _service(data[s], f"{where}.{s}") for s in SERVICES},
            timezone=tz,
            transfer_ready_at=_time(
                data.get("transfer_ready_at", "10:00"), f"{where}.transfer_ready_at"
            ),
            transfer_handling_minutes=float(handling),
        )

    @classmethod
    def default(cls) -> Carriers:
        """Equal to policy/routing.yaml's `carriers` (a unit test keeps them equal)."""
        mon_fri = frozenset(range(5))
        mon_sat = frozenset(range(6))
        return cls(
            services={
                "standard": Service(
                    cutoff={
                        "warehouse": dt.time(20, 0),
                        "store": dt.time(16, 0),
                        "supplier": dt.time(14, 0),
                        "marketplace": dt.time(14, 0),
                    },
                    cutoff_by_location={},
                    pickup_days=mon_sat,
                    transit=(TransitBand(150.0, 1), TransitBand(500.0, 2), TransitBand(None, 3)),
                    delivery_days=mon_sat,
                ),
                "express": Service(
                    cutoff={
                        "warehouse": dt.time(18, 0),
                        "store": dt.time(15, 0),
                        "supplier": dt.time(12, 0),
                        "marketplace": dt.time(12, 0),
                    },
                    cutoff_by_location={},
                    pickup_days=mon_fri,
                    transit=(TransitBand(None, 1),),
                    delivery_days=mon_sat,
                ),
            },
        )


def _only(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"routing policy: {where}: unknown keys {unknown}")


def _zone(name: Any, where: str) -> None:
    if not isinstance(name, str):
        raise ValueError(f"routing policy: {where} must be a time zone name")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"routing policy: {where}: unknown time zone {name!r}") from None


def _time(value: Any, where: str) -> dt.time:
    """'HH:MM' text (YAML 1.1 would read an unquoted 16:00 as 960 minutes: accept that too)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return dt.time(value // 60, value % 60)
    if isinstance(value, str):
        try:
            hh, mm = value.split(":")
            return dt.time(int(hh), int(mm))
        except ValueError:
            pass
    raise ValueError(f"routing policy: {where} must be a time of day 'HH:MM', got {value!r}")


def _days(value: Any, where: str) -> frozenset[int]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"routing policy: {where} must be a non-empty list of {list(WEEKDAYS)}")
    out = set()
    for v in value:
        if v not in WEEKDAYS:
            raise ValueError(f"routing policy: {where}: unknown day {v!r} (use {list(WEEKDAYS)})")
        out.add(WEEKDAYS.index(v))
    return frozenset(out)


def _service(data: Any, where: str) -> Service:
    if not isinstance(data, Mapping):
        raise ValueError(f"routing policy: {where} must be a mapping")
    _only(data, {"cutoff", "cutoff_by_location", "pickup_days", "transit", "delivery_days"}, where)
    for key in ("cutoff", "transit", "delivery_days"):
        if key not in data:
            raise ValueError(f"routing policy: {where} lacks {key}")
    cut = data["cutoff"]
    if not isinstance(cut, Mapping):
        raise ValueError(f"routing policy: {where}.cutoff must map location kinds to 'HH:MM'")
    _only(cut, set(KINDS), f"{where}.cutoff")
    lacking = [k for k in KINDS if k not in cut]
    if lacking:
        raise ValueError(f"routing policy: {where}.cutoff lacks the kinds {lacking}")
    by_loc = data.get("cutoff_by_location") or {}
    if not isinstance(by_loc, Mapping):
        raise ValueError(f"routing policy: {where}.cutoff_by_location must map ids to 'HH:MM'")
    bands_raw = data["transit"]
    if not isinstance(bands_raw, list) or not bands_raw:
        raise ValueError(f"routing policy: {where}.transit must be a non-empty list of bands")
    bands: list[TransitBand] = []
    for i, b in enumerate(bands_raw):
        here = f"{where}.transit[{i}]"
        if not isinstance(b, Mapping) or set(b) != {"max_km", "days"}:
            raise ValueError(f"routing policy: {here} must be {{max_km: km or null, days: n}}")
        km, days = b["max_km"], b["days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 60:
            raise ValueError(f"routing policy: {here}.days must be an integer 0..60")
        if km is not None:
            if isinstance(km, bool) or not isinstance(km, int | float) or km <= 0:
                raise ValueError(f"routing policy: {here}.max_km must be a number > 0 or null")
            if bands and (bands[-1].max_km is None or km <= bands[-1].max_km):
                raise ValueError(f"routing policy: {here}.max_km must grow band after band")
        elif i != len(bands_raw) - 1:
            raise ValueError(f"routing policy: {here}: only the last band may be open (null)")
        bands.append(TransitBand(None if km is None else float(km), days))
    if bands[-1].max_km is not None:
        raise ValueError(
            f"routing policy: {where}.transit: the last band must have max_km null "
            "(every distance needs a transit time)"
        )
    return Service(
        cutoff={k: _time(v, f"{where}.cutoff.{k}") for k, v in cut.items()},
        cutoff_by_location={
            str(k): _time(v, f"{where}.cutoff_by_location.{k}") for k, v in by_loc.items()
        },
        pickup_days=_days(data.get("pickup_days", list(WEEKDAYS[:6])), f"{where}.pickup_days"),
        transit=tuple(bands),
        delivery_days=_days(data["delivery_days"], f"{where}.delivery_days"),
    )


# ---- the promise -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Promise:
    """One shipment's promise. Times are aware datetimes in the location's local time."""

    ready_at: datetime  # preparation done
    ship_by: datetime  # handed to the carrier (click & collect: ready on the shelf)
    promised_delivery: date | None = None  # home delivery and drop-ship
    ready_for_pickup_by: datetime | None = None  # click & collect (own shelf or transfer)
    detail: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def customer_date(self) -> date:
        """The date the customer is promised (delivery, or ready for pickup, local)."""
        if self.ready_for_pickup_by is not None:
            return self.ready_for_pickup_by.date()
        assert self.promised_delivery is not None
        return self.promised_delivery

    def days_after(self, now: datetime) -> float:
        """Days from `now` until the customer has it (a delivery counts at the end of its day),
        the quantity routing weighs."""
        if self.ready_for_pickup_by is not None:
            at = self.ready_for_pickup_by
        else:
            assert self.promised_delivery is not None
            tz = self.ship_by.tzinfo
            at = datetime.combine(self.promised_delivery + timedelta(days=1), dt.time(0), tz)
        return max(0.0, (at - now).total_seconds() / DAY_S)


@lru_cache(maxsize=64)
def _zoneinfo(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def calendar_of(loc: Location) -> Calendar | None:
    """The location's calendar, None without one: always open, and its cut-offs are read in
    the carriers' time zone (an always-open calendar's zone, UTC, is no one's local time)."""
    return None if loc.calendar is None else location_calendar(loc)


def local_zone(loc: Location, carriers: Carriers) -> ZoneInfo:
    """The zone a location's cut-offs are read in: its calendar's, else the carriers'."""
    return _zoneinfo(loc.calendar.tz if loc.calendar is not None else carriers.timezone)


def preparation_done(
    loc: Location, calendar: Calendar | None, now: datetime, queue_ahead: int
) -> datetime:
    """When a shipment given now finishes preparation: the queue ahead and itself, each
    3600 / capacity_per_hour seconds, within the location's preparation hours (raises
    calendar.NeverPrepares for a calendar with none left)."""
    per = 3600.0 / loc.capacity_per_hour if loc.capacity_per_hour > 0 else 3600.0
    work = (max(0, queue_ahead) + 1) * per
    if calendar is None:
        return now + timedelta(seconds=work)
    return add_preparation_seconds(calendar, now, work)


def next_cutoff(service: Service, cut: dt.time, zone: ZoneInfo, t: datetime) -> datetime:
    """The first cut-off at or after `t` on a pickup day, local to `zone` (a cut-off in a DST
    gap is read on the day's UTC offset before the change, as zoneinfo does)."""
    day = t.astimezone(zone).date()
    for _ in range(15):
        if day.weekday() in service.pickup_days:
            at = datetime.combine(day, cut, zone)
            at = at.astimezone(dt.UTC).astimezone(zone)  # normalise a non-existent local time
            if at >= t:
                return at
        day += timedelta(days=1)
    raise ValueError("no pickup day within two weeks")  # unreachable: pickup_days non-empty


def delivery_date(service: Service, shipped: date, transit_days: int) -> date:
    """`transit_days` delivery days after the shipping date (0: the shipping date itself if
    the carrier delivers on it); days the carrier does not deliver do not count."""
    day = shipped
    if transit_days == 0:
        while day.weekday() not in service.delivery_days:
            day += timedelta(days=1)
        return day
    for _ in range(transit_days):
        day += timedelta(days=1)
        while day.weekday() not in service.delivery_days:
            day += timedelta(days=1)
    return day


def shipment_promise(
    loc: Location,
    *,
    now: datetime,
    queue_ahead: int,
    service: str,
    mode: str,
    distance_km: float,
    carriers: Carriers,
    calendar: Calendar | None = None,
    pickup: Location | None = None,
    pickup_calendar: Calendar | None = None,
) -> Promise:
    """The promise of one shipment from `loc` decided at `now` (see the module docstring).

    `queue_ahead`: the location's open shipments; `distance_km`: to the customer, or to the
    pickup store for a transfer; `calendar`: the location's (None: always open, cut-offs in
    the carriers' time zone); `pickup`, `pickup_calendar`: the pickup store of a transfer.
    Raises calendar.NeverPrepares when a calendar has no preparation hour left."""
    zone = _zoneinfo(calendar.tz if calendar is not None else carriers.timezone)
    ready = preparation_done(loc, calendar, now, queue_ahead).astimezone(zone)
    if mode == CLICK_COLLECT:
        return Promise(ready, ready, None, ready, {"queue_ahead": queue_ahead})
    svc = carriers.services.get(service) or carriers.services["standard"]
    ship_by = next_cutoff(svc, svc.cutoff_of(loc), zone, ready)
    days = svc.transit_days(distance_km)
    arrives = delivery_date(svc, ship_by.date(), days)
    detail = {"queue_ahead": queue_ahead, "transit_days": days}
    if mode != TRANSFER or pickup is None:
        return Promise(ready, ship_by, arrives, None, detail)
    pzone = _zoneinfo(pickup_calendar.tz if pickup_calendar is not None else carriers.timezone)
    arrival = datetime.combine(arrives, carriers.transfer_ready_at, pzone)
    handling = carriers.transfer_handling_minutes * 60.0
    if pickup_calendar is None:
        on_shelf = arrival + timedelta(seconds=handling)
    else:
        start = next_preparation_start(pickup_calendar, arrival)
        on_shelf = add_preparation_seconds(pickup_calendar, start, handling)
    return Promise(ready, ship_by, None, on_shelf.astimezone(pzone), detail)


def preorder_promise(
    loc: Location,
    *,
    arrives: datetime,
    service: str,
    mode: str,
    distance_km: float,
    carriers: Carriers,
    pickup: Location | None = None,
) -> Promise:
    """The promise of a preorder line: its supply lands at `loc` at `arrives` (the expected
    receipt's date), then the shipment is prepared, handed to the carrier and carried by the
    same rules as one routed then. The queue ahead that day is not known: counted empty."""
    return _at_locations(
        loc,
        now=arrives,
        queue_ahead=0,
        service=service,
        mode=mode,
        distance_km=distance_km,
        carriers=carriers,
        pickup=pickup,
    )


def _at_locations(
    loc: Location,
    *,
    now: datetime,
    queue_ahead: int,
    service: str,
    mode: str,
    distance_km: float,
    carriers: Carriers,
    pickup: Location | None,
) -> Promise:
    """`shipment_promise` with the calendars of the location and the pickup store."""
    return shipment_promise(
        loc,
        now=now,
        queue_ahead=queue_ahead,
        service=service,
        mode=mode,
        distance_km=distance_km,
        carriers=carriers,
        calendar=calendar_of(loc),
        pickup=pickup,
        pickup_calendar=calendar_of(pickup) if pickup is not None else None,
    )


def decision_minute(now: datetime) -> datetime:
    """`now` rounded up to the whole minute: the instant routing computes promises at."""
    floor = now.replace(second=0, microsecond=0)
    return floor if floor == now else floor + timedelta(minutes=1)


class _Memo:
    """Promises of the current decision minute, by location, queue, service, mode, transit
    days and pickup store: every order routed within a minute meets the same few (a promise
    with a calendar costs ~0.25 ms, and an order weighs ~30 candidates). A hit is checked to be
    for the very same location, pickup and carriers records (a replaced record is a miss)."""

    def __init__(self) -> None:
        self.minute: datetime | None = None
        self.entries: dict[tuple[Any, ...], tuple[Any, Any, Any, Promise, float]] = {}

    def get(
        self,
        loc: Location,
        *,
        now: datetime,
        queue_ahead: int,
        service: str,
        mode: str,
        distance_km: float,
        carriers: Carriers,
        pickup: Location | None,
    ) -> tuple[Promise, float]:
        at = decision_minute(now)
        if at != self.minute or len(self.entries) > 100_000:
            self.minute, self.entries = at, {}
        svc = carriers.services.get(service) or carriers.services["standard"]
        days = 0 if mode == CLICK_COLLECT else svc.transit_days(distance_km)
        pid = pickup.location_id if pickup is not None else None
        key = (loc.location_id, queue_ahead, service, mode, days, pid)
        hit = self.entries.get(key)
        if hit is not None and hit[0] is loc and hit[1] is pickup and hit[2] is carriers:
            return hit[3], hit[4]
        p = _at_locations(
            loc,
            now=at,
            queue_ahead=queue_ahead,
            service=service,
            mode=mode,
            distance_km=distance_km,
            carriers=carriers,
            pickup=pickup,
        )
        days_after = p.days_after(at)
        self.entries[key] = (loc, pickup, carriers, p, days_after)
        return p, days_after


routing_promise = _Memo().get
"""The promise routing weighs: `shipment_promise` at the decision's minute (rounded up, so
never earlier than the decision), memoised within that minute; with its days from then."""


def order_promised_date(dates: list[date]) -> date | None:
    """The order's promised date: the latest of its shipments' (None without shipments)."""
    return max(dates) if dates else None
