"""The event-id dedupe window (domain.dedupe): keys sort by period, three lookups cover it."""

from __future__ import annotations

from domain.dedupe import DAY_S, first_kept, key, lookup_keys, period_of


def test_keys_sort_by_period_whatever_the_event_id() -> None:
    assert key(999, "zzz") < key(1000, "aaa") < key(1000, "b")
    assert period_of(7 * DAY_S - 1, 7) == 0 and period_of(7 * DAY_S, 7) == 1


def test_a_repeat_within_the_window_is_looked_up_where_its_first_copy_was_filed() -> None:
    for first_s in (0.0, 3.5 * DAY_S, 7 * DAY_S - 1):  # anywhere in a period
        first = key(period_of(first_s, 7), "E")
        for later_s in (first_s + 1, first_s + 7 * DAY_S, first_s - DAY_S):
            assert first in lookup_keys(period_of(later_s, 7), "E")


def test_only_periods_no_lookup_reaches_sort_below_the_first_kept_key() -> None:
    bound = first_kept(100)
    assert key(98, "E") < bound <= key(99, "E")
    assert all(k >= bound for k in lookup_keys(100, "E"))
