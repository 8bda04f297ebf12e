"""Which event ids count as repeats, and for how long they are remembered.

A till or a supplier system that retries sends a new message with an old event_id; the ingest
agent must drop it. Remembering every id ever seen grows without bound, so an id is remembered
under the day of the Kafka record that first carried it (its timestamp: a message re-read after
a crash files under the same day) as the key "<day>/<event id>", day = days since the epoch,
zero-padded so that keys sort by day. A message is checked against its own day, the day after
(clocks of different senders disagree) and the days before, back to `window_days`; ids filed
before the window are pruned. A repeat that arrives more than `window_days` after the first
copy is taken for a new event (default 7 days: the retention of the input topics).
"""

from __future__ import annotations

DAY_S = 86_400


def day_of(timestamp_s: float) -> int:
    return int(timestamp_s // DAY_S)


def key(day: int, event_id: str) -> str:
    return f"{day:06d}/{event_id}"


def lookup_keys(day: int, event_id: str, window_days: int) -> list[str]:
    """Where a first copy of `event_id` may be filed, most likely first."""
    days = [day, day + 1, *range(day - 1, day - window_days, -1)]
    return [key(d, event_id) for d in days]


def first_kept(day: int, window_days: int) -> str:
    """Keys that sort below this one are older than the window (the day after a key's own
    day is also looked up, so the window is kept whole one day longer)."""
    return f"{day - window_days:06d}/"
