"""The event-id dedupe window (domain.dedupe): keys sort by period, three lookups cover it."""

from __future__ import annotations

from domain.dedupe import (
    DAY_S,
    chunk_key,
    first_kept,
    index_entries,
    is_chunk,
    key,
    lookup_keys,
    period_of,
)


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


def test_a_chunk_key_sorts_with_its_period_and_never_collides_with_an_id_key() -> None:
    chunk = chunk_key(2916, "ps:3", 42)
    assert chunk == "002916~ps:3:000000000042"
    assert is_chunk(chunk) and not is_chunk(key(2916, "~ps:3:000000000042"))
    assert key(2916, "zzz") < chunk < first_kept(2918)  # pruned with its period


def test_a_chunk_stands_for_the_id_keys_and_first_positions_of_its_ids() -> None:
    chunk = chunk_key(2916, "ps:3", 42)
    assert index_entries(chunk, [["E1", 42], ["E:2", 45]]) == [
        ("002916/E1", "ps:3:42"),
        ("002916/E:2", "ps:3:45"),
    ]
    assert index_entries(key(2916, "E1"), "ps:3:42") == []  # an id key of the old layout
