"""The network clock (streams/clock.py): a watermark of event times that never goes back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from streams.clock import NetworkClock

T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)


def test_unknown_before_any_input() -> None:
    clock = NetworkClock()
    assert clock.now() is None and clock.timestamp() is None


def test_it_is_the_latest_time_seen_and_never_goes_back() -> None:
    clock = NetworkClock()
    clock.observe(T0)
    clock.observe(T0 + timedelta(minutes=5))
    clock.observe(T0 - timedelta(hours=1))  # a late event (a till that was offline)
    assert clock.now() == T0 + timedelta(minutes=5)
    assert clock.timestamp() == (T0 + timedelta(minutes=5)).timestamp()


def test_times_are_normalised_to_utc_and_naive_ones_refused() -> None:
    clock = NetworkClock()
    clock.observe(datetime(2026, 11, 30, 23, 30, tzinfo=timezone(timedelta(hours=1))))
    assert clock.now() == datetime(2026, 11, 30, 22, 30, tzinfo=UTC)
    assert clock.now().tzinfo is UTC  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.observe(datetime(2026, 11, 30, 22, 0))


def test_an_inputs_business_time_includes_its_own_event_time_without_observing_it() -> None:
    clock = NetworkClock()
    clock.observe(T0)
    assert clock.at(T0 + timedelta(seconds=30)) == T0 + timedelta(seconds=30)
    assert clock.at(T0 - timedelta(days=1)) == T0  # a late input is stamped at the clock
    assert clock.at() == T0
    assert clock.now() == T0  # `at` does not advance the clock


def test_a_fresh_network_falls_back_to_the_inputs_time_then_the_wall_clock() -> None:
    clock = NetworkClock()
    assert clock.at(T0) == T0
    before = datetime.now(UTC)
    assert before <= clock.at() <= datetime.now(UTC)
