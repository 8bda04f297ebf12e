"""Which event ids count as repeats, and for how long they are remembered.

A till or a supplier system that retries sends a new message with an old event_id; the ingest
agent must drop it. Remembering every id ever seen grows without bound, so ids are filed by
*period* (`window_days` long) of the Kafka record that first carried them (its timestamp: a
message re-read after a crash files under the same period), as the key "<period>/<event id>",
zero-padded so that keys sort by period. A message is looked up in its own period, the one
before and the one after (clocks of different senders disagree): three lookups, and a repeat
is recognised when it comes within `window_days` of the first copy (up to twice that,
depending on where the periods fall). Ids of periods before the previous one are pruned, so
the table holds at most three periods of ids. Default window: 7 days, the input retention.
"""

from __future__ import annotations

DAY_S = 86_400


def period_of(timestamp_s: float, window_days: int) -> int:
    return int(timestamp_s // (window_days * DAY_S))


def key(period: int, event_id: str) -> str:
    return f"{period:06d}/{event_id}"


def lookup_keys(period: int, event_id: str) -> list[str]:
    """Where a first copy of `event_id` may be filed, most likely first."""
    return [key(period, event_id), key(period - 1, event_id), key(period + 1, event_id)]


def first_kept(period: int) -> str:
    """Keys that sort below this one belong to periods no message of `period` looks up."""
    return f"{period - 1:06d}/"
