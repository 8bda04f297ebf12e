"""The event-id dedupe window (domain.dedupe): keys sort by day, lookups cover the window."""

from __future__ import annotations

from domain.dedupe import DAY_S, day_of, first_kept, key, lookup_keys


def test_keys_sort_by_day_whatever_the_event_id() -> None:
    assert key(999, "zzz") < key(1000, "aaa") < key(1000, "b")
    assert key(day_of(2 * DAY_S - 1), "x") == "000001/x"


def test_a_lookup_covers_its_day_the_next_and_the_window_before() -> None:
    keys = lookup_keys(100, "E", 3)
    assert keys[0] == key(100, "E")
    assert sorted(keys) == [key(98, "E"), key(99, "E"), key(100, "E"), key(101, "E")]


def test_only_days_before_the_window_sort_below_the_first_kept_key() -> None:
    bound = first_kept(100, 7)
    assert key(92, "E") < bound <= key(93, "E")
    assert all(k >= bound for k in lookup_keys(100, "E", 7))
