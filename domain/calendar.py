"""Location calendars: when a location is open and when it prepares web orders.

A store's day is not a day of preparation: an order routed at 22:00 to a store that prepares from
09:30 cannot be touched before 09:30, so its acceptance time-out, its load and its promise count
preparation hours, not wall hours. This module is that arithmetic, pure: every datetime in and
out is timezone-aware (UTC by convention); the calendar's intervals are local wall times in its
IANA time zone, so a 09:30 start stays 09:30 across daylight-saving changes.

Intervals are `[start, end)` within one local day (`end > start`); `time.max` stands for 24:00
(the end of the day), so a night shift is written as two intervals (Mon 22:00-24:00 and
Tue 00:00-06:00) that the arithmetic joins across midnight. A weekday missing from a mapping
is closed that weekday; a closed date closes the whole local date. `Calendar.always_open()` is
the calendar of a location without one (a warehouse running around the clock): its arithmetic
is plain time arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.records import WEEKDAYS, Location, LocationCalendar, Weekday

DAY_S = 86_400.0
HORIZON_DAYS = 366
"""How far past the last closed date a search for preparation goes before concluding the
calendar never prepares (every weekday empty): a year covers every weekly pattern."""
DAY_CACHE = 4096


class NeverPrepares(ValueError):
    """The calendar has no preparation hour at all after the given instant."""


@dataclass(frozen=True)
class Interval:
    """Local wall-clock `[start, end)` within one day; `end == time.max` means 24:00."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("interval times are local wall times, without a time zone")
        if self.end <= self.start:
            raise ValueError(
                f"interval {_hhmm(self.start)}-{_hhmm(self.end)}: end must be after start"
            )

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(t: time) -> str:
    return "24:00" if t == time.max else t.strftime("%H:%M")


def _check_day(name: str, intervals: tuple[Interval, ...]) -> None:
    ordered = sorted(intervals, key=lambda iv: iv.start)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.start < before.end:
            raise ValueError(f"{name}: intervals {before} and {after} overlap")


def check_week(what: str, week: Mapping[int, tuple[Interval, ...]]) -> None:
    """Reject a week whose days have overlapping intervals or whose keys are not weekdays."""
    for weekday, intervals in week.items():
        if weekday not in range(7):
            raise ValueError(f"{what}: weekday {weekday} is not 0 (Monday) .. 6 (Sunday)")
        _check_day(f"{what}.{WEEKDAYS[weekday]}", intervals)


def zone(tz: str) -> ZoneInfo:
    """The IANA zone named `tz`, or ValueError naming it (a typo must not mean UTC)."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:  # OSError: "Europe" is a folder
        raise ValueError(f"unknown time zone {tz!r}") from e


@dataclass(frozen=True)
class Calendar:
    """A location's week: opening hours, preparation hours (web orders), closed dates."""

    tz: str
    opening: Mapping[int, tuple[Interval, ...]]
    preparation: Mapping[int, tuple[Interval, ...]]
    closed_dates: frozenset[date] = frozenset()
    # resolved once: the zone (validates `tz`), whether plain time arithmetic applies, the
    # last closed date, and each local day's UTC windows as they are asked for (routing and
    # deadlines ask about the same few days over and over)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    is_always_open: bool = field(init=False, repr=False, compare=False)
    _last_closed: date | None = field(init=False, repr=False, compare=False)
    _days: dict[tuple[bool, date], tuple[tuple[datetime, datetime], ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", zone(self.tz))
        object.__setattr__(self, "_last_closed", max(self.closed_dates, default=None))
        object.__setattr__(self, "_days", {})
        check_week("opening", self.opening)
        check_week("preparation", self.preparation)
        whole = (Interval(time(0), time.max),)
        always = not self.closed_dates and all(self.preparation.get(d) == whole for d in range(7))
        object.__setattr__(self, "is_always_open", always)

    @classmethod
    def always_open(cls) -> Calendar:
        """Open and preparing every hour of every day (a location without a calendar)."""
        whole = (Interval(time(0), time.max),)
        week = {d: whole for d in range(7)}
        return cls(tz="UTC", opening=week, preparation=week)


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("calendar arithmetic needs timezone-aware datetimes")
    return t.astimezone(UTC)


def _local_instant(zone_: ZoneInfo, day: date, t: time) -> datetime:
    """The UTC instant of local wall time `t` on `day` (24:00 is the next day's midnight).

    A wall time skipped by a spring-forward change maps to the instant just after the gap
    (fold=0 uses the offset before the change), an ambiguous one to its first occurrence."""
    if t == time.max:
        day, t = day + timedelta(days=1), time(0)
    return datetime.combine(day, t, tzinfo=zone_).astimezone(UTC)


def _day_windows(
    cal: Calendar, preparation: bool, day: date
) -> tuple[tuple[datetime, datetime], ...]:
    """One local day's `[start, end)` UTC windows (opening or preparation), in order; none on a
    closed date. Cached on the calendar (at most DAY_CACHE days, then started again)."""
    key = (preparation, day)
    hit = cal._days.get(key)
    if hit is not None:
        return hit
    out: list[tuple[datetime, datetime]] = []
    if day not in cal.closed_dates:
        week = cal.preparation if preparation else cal.opening
        for iv in sorted(week.get(day.weekday(), ()), key=lambda iv: iv.start):
            start = _local_instant(cal._zone, day, iv.start)
            end = _local_instant(cal._zone, day, iv.end)
            if end > start:  # not a window swallowed by a daylight-saving gap
                out.append((start, end))
    if len(cal._days) >= DAY_CACHE:
        cal._days.clear()
    cal._days[key] = windows = tuple(out)
    return windows


def _windows(
    cal: Calendar, preparation: bool, since: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """The calendar's `[start, end)` UTC windows that end after `since`, in order, windows that
    touch (a night shift across midnight) joined. Stops when none is left within the horizon."""
    day = since.astimezone(cal._zone).date() - timedelta(days=1)
    give_up = max(day, cal._last_closed or day) + timedelta(days=HORIZON_DAYS)
    pending: tuple[datetime, datetime] | None = None
    while day <= give_up:
        for start, end in _day_windows(cal, preparation, day):
            if pending is not None and start <= pending[1]:
                pending = (pending[0], max(pending[1], end))
                continue
            if pending is not None and pending[1] > since:
                yield pending
                give_up = day + timedelta(days=HORIZON_DAYS)
            pending = (start, end)
        day += timedelta(days=1)
    if pending is not None and pending[1] > since:
        yield pending


def preparing_at(cal: Calendar, t: datetime) -> bool:
    """Whether the location prepares web orders at instant `t`."""
    t = _aware(t)
    if cal.is_always_open:
        return True
    for start, end in _windows(cal, True, t):
        return start <= t < end
    return False


def open_at(cal: Calendar, t: datetime) -> bool:
    """Whether the location is open (to walk-in customers) at instant `t`."""
    t = _aware(t)
    for start, end in _windows(cal, False, t):
        return start <= t < end
    return False


def next_preparation_start(cal: Calendar, t: datetime) -> datetime:
    """The first instant at or after `t` when the location prepares (`t` itself when it
    prepares at `t`): the earliest an order routed at `t` can be touched there."""
    t = _aware(t)
    if cal.is_always_open:
        return t
    for start, _end in _windows(cal, True, t):
        return max(start, t)
    raise NeverPrepares(f"no preparation hours after {t.isoformat()}")


def add_preparation_seconds(cal: Calendar, t: datetime, seconds: float) -> datetime:
    """The earliest instant `u >= t` with `seconds` preparation seconds between `t` and `u`:
    a time-out of 900 s started at 22:00 at a store preparing from 09:00 ends at 09:15.
    Ending exactly at a window's close gives that close, not the next opening."""
    t = _aware(t)
    if seconds <= 0:
        return t
    if cal.is_always_open:
        return t + timedelta(seconds=seconds)
    left = seconds
    for start, end in _windows(cal, True, t):
        start = max(start, t)
        span = (end - start).total_seconds()
        if left <= span:
            return start + timedelta(seconds=left)
        left -= span
    raise NeverPrepares(f"fewer than {seconds:g} preparation seconds after {t.isoformat()}")


def preparation_deadline(cal: Calendar, t: datetime, seconds: float) -> datetime:
    """When a time-limit of `seconds` preparation seconds started at `t` runs out (an
    acceptance time-out): `add_preparation_seconds`, or plain time for a calendar without any
    preparation hour left, so whatever waits on the deadline still moves on."""
    try:
        return add_preparation_seconds(cal, t, seconds)
    except NeverPrepares:
        return _aware(t) + timedelta(seconds=seconds)


def preparation_seconds_between(cal: Calendar, a: datetime, b: datetime) -> float:
    """Preparation seconds in `[a, b)`; negative (the same amount) when `b` is before `a`, so
    an age and a lateness read the same way."""
    a, b = _aware(a), _aware(b)
    if b < a:
        return -preparation_seconds_between(cal, b, a)
    if cal.is_always_open:
        return (b - a).total_seconds()
    total = 0.0
    for start, end in _windows(cal, True, a):
        if start >= b:
            break
        total += (min(end, b) - max(start, a)).total_seconds()
    return total


ALWAYS_OPEN = Calendar.always_open()
_BY_WIRE: dict[int, tuple[LocationCalendar, Calendar]] = {}


def calendar_of(loc: Location | None) -> Calendar:
    """The calendar of a location as published on `locations` (always open without one, or
    for an unknown location). Converted once per published record: routing and deadlines ask
    for it on every order."""
    wire = loc.calendar if loc is not None else None
    if wire is None:
        return ALWAYS_OPEN
    hit = _BY_WIRE.get(id(wire))
    if hit is not None and hit[0] is wire:
        return hit[1]
    cal = from_wire(wire)
    if len(_BY_WIRE) > 100_000:  # records replaced many times over: start again
        _BY_WIRE.clear()
    _BY_WIRE[id(wire)] = (wire, cal)
    return cal


def from_wire(wire: LocationCalendar) -> Calendar:
    """The domain calendar of a `locations` record's calendar (validated by its model)."""

    def week(hours: Mapping[Weekday, list[str]]) -> dict[int, tuple[Interval, ...]]:
        return {
            WEEKDAYS.index(day): tuple(
                sorted((_interval(text) for text in spans), key=lambda iv: iv.start)
            )
            for day, spans in hours.items()
            if spans
        }

    opening = week(wire.opening)
    return Calendar(
        tz=wire.tz,
        opening=opening,
        preparation=opening if wire.preparation is None else week(wire.preparation),
        closed_dates=frozenset(wire.closed_dates),
    )


def _interval(text: str) -> Interval:
    a, b = text.split("-")
    return Interval(time.fromisoformat(a), time.max if b == "24:00" else time.fromisoformat(b))
