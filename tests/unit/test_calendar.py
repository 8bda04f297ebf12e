"""Calendar arithmetic (domain/calendar.py): preparation hours, closed dates, DST, nights."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import pytest

from domain.calendar import (
    Calendar,
    Interval,
    NeverPrepares,
    add_preparation_seconds,
    next_preparation_start,
    open_at,
    preparation_deadline,
    preparation_seconds_between,
    preparing_at,
)

END = time.max  # 24:00


def iv(a: str, b: str) -> Interval:
    def t(s: str) -> time:
        return END if s == "24:00" else time.fromisoformat(s)

    return Interval(t(a), t(b))


def store(tz: str = "Europe/Paris", closed: frozenset[date] = frozenset()) -> Calendar:
    """Mon-Sat open 09:00-20:00, preparing 09:30-19:00; closed Sunday."""
    return Calendar(
        tz=tz,
        opening={d: (iv("09:00", "20:00"),) for d in range(6)},
        preparation={d: (iv("09:30", "19:00"),) for d in range(6)},
        closed_dates=closed,
    )


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


# 2026-11-30 is a Monday; Paris is UTC+1 in winter, UTC+2 in summer.


def test_preparing_inside_and_outside_hours() -> None:
    cal = store()
    assert preparing_at(cal, utc(2026, 11, 30, 8, 30))  # 09:30 local, first instant
    assert not preparing_at(cal, utc(2026, 11, 30, 8, 29))
    assert not preparing_at(cal, utc(2026, 11, 30, 18, 0))  # 19:00 local: end is exclusive
    assert open_at(cal, utc(2026, 11, 30, 18, 30))  # open until 20:00 local
    assert not preparing_at(cal, utc(2026, 12, 6, 12, 0))  # Sunday


def test_next_start_is_t_itself_when_preparing() -> None:
    cal = store()
    t = utc(2026, 11, 30, 10, 0)
    assert next_preparation_start(cal, t) == t


def test_next_start_at_night_is_next_morning_and_skips_sunday() -> None:
    cal = store()
    assert next_preparation_start(cal, utc(2026, 11, 30, 21, 0)) == utc(2026, 12, 1, 8, 30)
    # Saturday 22:00 local -> Monday 09:30 local
    assert next_preparation_start(cal, utc(2026, 12, 5, 21, 0)) == utc(2026, 12, 7, 8, 30)


def test_the_acceptance_timeout_runs_in_preparation_hours_only() -> None:
    """The issue's example: routed at 22:00 to a store preparing from 09:00, 900 s -> 09:15."""
    cal = Calendar(
        tz="Europe/Paris",
        opening={d: (iv("09:00", "20:00"),) for d in range(7)},
        preparation={d: (iv("09:00", "20:00"),) for d in range(7)},
    )
    routed = utc(2026, 11, 30, 21, 0)  # 22:00 local
    assert add_preparation_seconds(cal, routed, 900) == utc(2026, 12, 1, 8, 15)  # 09:15 local


def test_adding_spills_over_closing_and_closed_dates() -> None:
    cal = store(closed=frozenset({date(2026, 12, 1)}))
    # Monday 18:50 local + 20 min: 10 min Monday, 10 min Wednesday (Tuesday closed)
    got = add_preparation_seconds(cal, utc(2026, 11, 30, 17, 50), 1200)
    assert got == utc(2026, 12, 2, 8, 40)
    # exactly the remaining time ends at the close, not the next opening
    assert add_preparation_seconds(cal, utc(2026, 11, 30, 17, 50), 600) == utc(2026, 11, 30, 18)


def test_between_counts_preparation_hours_and_is_signed() -> None:
    cal = store()
    a, b = utc(2026, 11, 30, 17, 0), utc(2026, 12, 1, 9, 30)  # Mon 18:00 -> Tue 10:30 local
    assert preparation_seconds_between(cal, a, b) == 3600 + 3600
    assert preparation_seconds_between(cal, b, a) == -7200
    assert preparation_seconds_between(cal, a, a) == 0


def test_between_is_the_inverse_of_add() -> None:
    cal = store()
    t = utc(2026, 11, 28, 12, 34)
    for s in (1, 900, 9 * 3600, 5 * 24 * 3600):
        assert preparation_seconds_between(cal, t, add_preparation_seconds(cal, t, s)) == s


def test_overnight_shift_joins_across_midnight() -> None:
    """A warehouse working 22:00-06:00 writes two intervals; the night is one window."""
    night = (iv("00:00", "06:00"), iv("22:00", "24:00"))
    cal = Calendar(
        tz="UTC", opening={d: night for d in range(7)}, preparation={d: night for d in range(7)}
    )
    assert preparing_at(cal, utc(2026, 11, 30, 23, 59))
    assert preparing_at(cal, utc(2026, 12, 1, 0, 0))
    assert next_preparation_start(cal, utc(2026, 12, 1, 3, 0)) == utc(2026, 12, 1, 3, 0)
    # 23:00 + 2 h crosses midnight without a gap
    assert add_preparation_seconds(cal, utc(2026, 11, 30, 23), 7200) == utc(2026, 12, 1, 1)
    # 05:00 + 2 h: 1 h until 06:00, then 1 h from 22:00
    assert add_preparation_seconds(cal, utc(2026, 12, 1, 5), 7200) == utc(2026, 12, 1, 23)


def test_local_hours_hold_across_daylight_saving_changes() -> None:
    cal = store()
    # Paris leaves summer time on Sunday 2026-10-25: 09:30 local is 07:30 UTC on Saturday
    # and 08:30 UTC on Monday.
    assert next_preparation_start(cal, utc(2026, 10, 24, 0)) == utc(2026, 10, 24, 7, 30)
    assert next_preparation_start(cal, utc(2026, 10, 24, 18)) == utc(2026, 10, 26, 8, 30)
    # Saturday 18:00 local (16:00 UTC) -> Monday 10:00 local: 1 h + 30 min of preparation
    sat, mon = utc(2026, 10, 24, 16), utc(2026, 10, 26, 9)
    assert preparation_seconds_between(cal, sat, mon) == 5400


def test_a_whole_day_is_23_or_25_hours_on_dst_days() -> None:
    whole = {d: (iv("00:00", "24:00"),) for d in range(7)}
    cal = Calendar(
        tz="Europe/Paris",
        opening=whole,
        preparation=whole,
        closed_dates=frozenset({date(2000, 1, 1)}),
    )  # not the always-open shortcut
    spring = preparation_seconds_between(cal, utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    autumn = preparation_seconds_between(cal, utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert (spring, autumn) == (23 * 3600, 25 * 3600)


def test_an_interval_in_the_spring_forward_gap_still_starts_after_it() -> None:
    """02:00-03:00 does not exist in Paris on 2026-03-29: 02:00-04:00 prepares 1 h."""
    week = {6: (iv("02:00", "04:00"),)}
    cal = Calendar(tz="Europe/Paris", opening=week, preparation=week)
    day_start = utc(2026, 3, 28, 12)
    assert next_preparation_start(cal, day_start) == utc(2026, 3, 29, 1)  # 03:00 CEST
    assert preparation_seconds_between(cal, day_start, utc(2026, 3, 29, 12)) == 3600


def test_always_open_is_plain_time() -> None:
    cal = Calendar.always_open()
    t = utc(2026, 11, 30, 3)
    assert preparing_at(cal, t) and next_preparation_start(cal, t) == t
    assert add_preparation_seconds(cal, t, 900) == t + timedelta(seconds=900)
    assert preparation_seconds_between(cal, t, t + timedelta(hours=5)) == 5 * 3600


def test_a_calendar_that_never_prepares_says_so() -> None:
    cal = Calendar(tz="UTC", opening={}, preparation={})
    assert not preparing_at(cal, utc(2026, 1, 1))
    with pytest.raises(NeverPrepares):
        next_preparation_start(cal, utc(2026, 1, 1))
    with pytest.raises(NeverPrepares):
        add_preparation_seconds(cal, utc(2026, 1, 1), 1)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: Interval(time(10), time(9)), "end must be after start"),
        (lambda: Calendar(tz="Mars/Olympus", opening={}, preparation={}), "unknown time zone"),
        (lambda: Calendar(tz="Europe", opening={}, preparation={}), "unknown time zone 'Europe'"),
        (
            lambda: Calendar(
                tz="UTC", opening={0: (iv("09:00", "12:00"), iv("11:00", "13:00"))}, preparation={}
            ),
            "opening.mon: intervals 09:00-12:00 and 11:00-13:00 overlap",
        ),
        (lambda: Calendar(tz="UTC", opening={7: ()}, preparation={}), "weekday 7"),
    ],
)
def test_bad_calendars_are_rejected_with_a_reason(make: Callable[[], object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        make()


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        preparing_at(store(), datetime(2026, 1, 1))


def test_a_deadline_falls_back_to_plain_time_when_the_calendar_never_prepares() -> None:
    """An acceptance time-out must still run out at a location that never prepares again."""
    t = utc(2026, 1, 1)
    assert preparation_deadline(Calendar(tz="UTC", opening={}, preparation={}), t, 900) == t + (
        timedelta(seconds=900)
    )
    assert preparation_deadline(store(), utc(2026, 11, 30, 21), 900) == utc(2026, 12, 1, 8, 45)
