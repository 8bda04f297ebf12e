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

What is written per event: the id's key above is a *local* key (no changelog record). What
the changelog gets, once per batch per input origin and period, is a *chunk*: the key
"<period>~<origin>:<first offset>" ('~' where an id key has '/', so the two never collide and
a chunk sorts with its period) holding the [event id, offset] pairs the batch saw first. Table
recovery turns every chunk back into its id keys (`index_entries`) before it moves the
persisted offset past it (streams/faust_fixes.expanding_table), so a worker that recovers the
table from its changelog knows every id whose chunk was delivered. An id whose chunk was not
delivered belongs to an input that was not committed either (a batch's inputs are committed
only after everything it produced was delivered): that input is read again and files its id
again. So a producer's repeat is dropped exactly as with one changelog record per id, and a
re-read of the same message is recognised by its position (and made a no-op by the stock
positions), at one changelog record per batch instead of one per event.
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


def chunk_key(period: int, origin: str, offset: int) -> str:
    """The changelogged record of the ids a batch saw first on `origin` from `offset` on."""
    return f"{period:06d}~{origin}:{offset:012d}"


def is_chunk(key: str) -> bool:
    return key[6:7] == "~"


def index_entries(record_key: str, value: object) -> list[tuple[str, str]]:
    """The id keys (and their first positions) a chunk record stands for; none for any other
    key (an id key of the layout before chunks, changelogged on its own)."""
    if not is_chunk(record_key) or not isinstance(value, list):
        return []
    period = int(record_key[:6])
    origin = record_key[7:].rsplit(":", 1)[0]
    return [(key(period, event_id), f"{origin}:{offset}") for event_id, offset in value]
