"""Bundles: the messages a batch sends to one partition of an internal topic, as one record.

At saturation a batch of the orders agent sends hundreds of asks to the location owners, and
a batch of the owner hundreds of answers back: one record each made every ask and every answer
a Faust delivery of its own at the other end (~50-100 us each here), a record appended to the
producer and a record the broker stores. A topic marked `bundled: true` in topics.yaml (only
internal topics: the public contract is one message per record) carries, besides single
messages, records whose value is a JSON array of `[key, message]` pairs, in the order they
were sent: `Runtime.send` collects them while a batch runs and produces each partition's
bundle when the batch yields or ends (a bundle of one goes out as a plain record, so a quiet
worker's records look as before). The loop (streams/loop.py) expands a bundle into its
messages, each processed as an input of its own: in order, dead-lettered alone, its position
`(record offset, item index)`.

Upgrade: a worker of an earlier version cannot read a bundle (it would dead-letter it), so all
workers of a deployment move to this version together (stop, upgrade, start); single records
stay valid forever, so the other direction needs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from faust.types import TP

from streams.codecs import Rejected

MAX_BYTES = 256 * 1024  # a partition's bundle is produced once it holds this much
ITEM_SPAN = 1 << 20
"""Positions of the ops an input makes are (record offset, item index * ITEM_SPAN + n): the
ops of a bundle's later message stay above an earlier one's, those of a single record (item
0) are numbered as before."""


def is_bundle(raw: bytes | None) -> bool:
    """A bundle's value is a JSON array; a single message is a JSON object."""
    return raw is not None and raw[:1] == b"["


def join(items: list[tuple[bytes, bytes]]) -> bytes:
    """The bundle record's value: `[[key, message], ...]`, each message's bytes as they are."""
    return (
        b"[" + b",".join(b"[" + orjson.dumps(k.decode()) + b"," + v + b"]" for k, v in items) + b"]"
    )


def split(raw: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, message bytes) of each message of a bundle, in order; Rejected with the
    reason when the record is not a well-formed bundle."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejected(f"malformed JSON bundle: {exc}") from None
    out: list[tuple[bytes, bytes]] = []
    for i, entry in enumerate(parsed):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise Rejected(f"bundle item {i} is not a [key, message] pair")
        out.append((entry[0].encode(), orjson.dumps(entry[1])))
    return out


@dataclass(frozen=True, slots=True)
class Item:
    """One message of a bundle record, shaped as the record itself for the loop and for
    dead-letters (topic, partition, offset, timestamp, key, value)."""

    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes
    value: bytes

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


def items(msg: Any) -> list[Item]:
    """The messages of a bundle record (`msg`: a Faust message), in order: a message's index
    in the record is its place in this list."""
    return [
        Item(msg.topic, msg.partition, msg.offset, msg.timestamp, key, value)
        for key, value in split(msg.value)
    ]


def applied(recorded: int | list[int] | None, offset: int, index: int) -> bool:
    """Whether the input at (offset, index) is at or before a state's recorded position for
    its origin: an int is a single record's offset (index 0; every position recorded before
    bundles), a pair a bundle item's."""
    if recorded is None:
        return False
    if isinstance(recorded, int):
        return (offset, index) <= (recorded, 0)
    return (offset, index) <= (recorded[0], recorded[1])


def position(offset: int, index: int) -> int | list[int]:
    """What a state records for the input at (offset, index): see `applied`."""
    return offset if index == 0 else [offset, index]
