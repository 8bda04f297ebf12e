"""Patches to faust-streaming 0.15.3's consumer: two bugs that lose input messages, one cost.

Measured here (an `input gap` warning from Runtime.check_contiguous, and inputs committed but
never folded): when a rebalance starts, the stream skips the message it is about to hand to the
agent (flow control suspended, or the message carries the previous consumer generation) and
still *acks* it. The ack puts its offset in the consumer's committable set, so the next commit
moves past a message no agent processed, and the seek after the rebalance does not re-read it.
(Related upstream reports: faust-streaming issues #216, #221, #312.)

The guard refuses to make such a message committable: it is dropped from the unacked set (so
rebalances do not wait for it) but its offset is not committed; the post-rebalance seek to the
committed offset delivers it again. A message that *was* processed and is acked while flow is
suspended is then re-read too: the folds are idempotent (domain/stock.py), so that costs only
a replay. At-least-once is kept; nothing is skipped.

The second bug is in the commit offset itself (`Consumer._new_offset`, upstream issue #312):
it refuses to commit across a gap at the head of the acked offsets only when the gap is wider
than one message (`min(acked) - committed > 1`, where `committed` is already the *next* offset
to read), and not at all while the committed offset is 0. A single message that was never
acked (the one skipped above, for instance) is then committed over. The replacement commits
only a run of acked offsets that starts exactly at the committed offset.

The third patch is for speed: `_wait_first_eager` (see its docstring; bench/README.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from faust.stores.base import SerializedStore
from faust.stores.rocksdb import Store as RocksDBStore
from faust.transport.consumer import Consumer
from faust.types import TP
from faust.types.tuples import ack_lock
from faust.utils.functional import consecutive_numbers

_original_ack = Consumer.ack


def _ack_unless_stale(self: Consumer, message: Any) -> bool:
    app = self.app
    stale = (not app.flow_control.is_active()) or (
        message.generation_id != app.consumer_generation_id
    )
    if not stale:
        return bool(_original_ack(self, message))
    with ack_lock:
        message.acked = True
        self._unacked_messages.discard(message)
    return False


def _new_offset_without_gaps(self: Consumer, tp: TP) -> int | None:
    """Faust's own computation (including its gap intervals for compacted topics), except
    that the committed run must start at the committed offset."""
    acked = self._acked[tp]
    if not acked:
        return None
    max_offset = max(acked)
    gap_for_tp = self._gap[tp]
    if gap_for_tp:
        candidates = sorted(gap_for_tp.overlap(0, max_offset), key=lambda x: x.begin)
        if candidates:
            stuff_to_add: list[int] = []
            for entry in candidates:
                stuff_to_add.extend(range(entry.begin, entry.end))
            new_max_offset = max(stuff_to_add[-1], max_offset + 1)
            acked.extend(stuff_to_add)
            gap_for_tp.chop(0, new_max_offset)
    acked.sort()
    committed = self._committed_offset[tp]
    if committed is not None and acked[0] > committed:
        return None  # the message at `committed` has not been acked yet
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    return int(batch[-1]) + 1


class _Resume:
    """Awaitable that finishes a coroutine already stepped once by hand (what `yield from`
    does), so the stepped coroutine can still be handed to a task."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Any, first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Any:
        to_yield = self.first
        while True:
            try:
                sent = yield to_yield
            except BaseException as exc:  # noqa: BLE001 - cancellation goes to the coroutine
                try:
                    to_yield = self.coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                to_yield = self.coro.send(sent)
            except StopIteration as stop:
                return stop.value


_original_wait_first = Consumer.wait_first


async def _wait_first_eager(self: Consumer, *coros: Any, timeout: Any = None) -> Any:
    """The fetcher hands each message to the streams with `wait_first(deliver(message),
    suspend_flow.wait())`: two tasks and an asyncio.wait per message, about a third of a bare
    agent loop's CPU (bench/README.md). Delivery almost never blocks (queues have room, flow is
    active), so run it eagerly: when it completes without suspending no task is made. Only
    when it does suspend is the rest raced against a flow suspension, as Faust does."""
    if len(coros) != 2 or timeout is not None or self.suspend_flow.is_set():
        return await _original_wait_first(self, *coros, timeout=timeout)
    deliver, suspended = coros
    try:
        first = deliver.send(None)
    except StopIteration:
        suspended.close()
        return None
    return await _original_wait_first(self, _Resume(deliver, first), suspended)


def install() -> None:
    """Idempotent: patch the consumer once per process."""
    if Consumer.ack is not _ack_unless_stale:
        Consumer.ack = _ack_unless_stale  # type: ignore[method-assign]
    if Consumer._new_offset is not _new_offset_without_gaps:
        Consumer._new_offset = _new_offset_without_gaps  # type: ignore[method-assign]
    if Consumer.wait_first is not _wait_first_eager:
        Consumer.wait_first = _wait_first_eager  # type: ignore[method-assign,assignment]


# ---- accessors: the runtime's reads and writes of Faust internals, all here ------------------


def store_get(table: Any, key: str) -> Any | None:
    """One store lookup (None when absent): Faust's `table.get` looks a key up twice."""
    store = table.data
    if isinstance(store, SerializedStore):
        raw = store._get(store._encode_key(key))
        return None if raw is None else store._decode_value(raw)
    return store.get(key)


def store_set_local(table: Any, key: str, value: Any | None) -> tuple[bytes, bytes | None]:
    """Write (None: delete) a key in the local store only; returns the encoded key and value
    for the changelog record."""
    store = table.data
    kb = store._encode_key(key)
    vb = None if value is None else store._encode_value(value)
    if isinstance(store, SerializedStore):
        if vb is None:
            store._del(kb)
        else:
            store._set(kb, vb)
    elif value is None:
        store.pop(key, None)
    else:
        store[key] = value
    return kb, vb


def partition_keys(table: Any, partition: int) -> Iterator[str]:
    """The keys a partition holds, in key order (RocksDB keeps one sorted database per
    partition); the memory store (tests) has no partitions: all its keys, sorted."""
    store = table.data
    if not isinstance(store, RocksDBStore):
        yield from sorted(store)
        return
    db = store._db_for_partition(partition)
    for raw in db.keys():  # noqa: SIM118 - a RocksDB handle, iterated in key order
        if raw.startswith(b"__faust"):  # Faust's own bookkeeping (persisted offset)
            continue
        yield store._decode_key(raw)


def committed_offset(app: Any, tp: TP) -> int | None:
    """The consumer's committed offset of a partition (where Faust seeks after a rebalance)."""
    offset = app.consumer._committed_offset.get(tp)
    return None if offset is None else int(offset)


def tables_recovered(app: Any) -> bool:
    """True once Faust restored every table from its changelog."""
    return bool(app.tables.recovery.completed.is_set())
