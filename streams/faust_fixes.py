"""Patches to faust-streaming 0.15.3's consumer: two bugs that lose input messages, one cost.

Measured here (an `input gap` warning from Runtime.in_order, and inputs committed but
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

The fourth pair of patches closes a race between the fetcher and a seek (`perform_seek`, at
every rebalance's recovery and whenever a fetch returns while flow is stopped). Faust checks
the consumer generation only after a fetch returns, so a fetch that was in flight while the
partitions were sought back to their committed offsets still hands its records (read from the
old position, ahead of the committed offset) to the streams, and the fetcher records each one
as read; the records the seek re-fetches, from the committed offset, are then dropped as
already read. A delivery blocked across the seek (its stream was suspended) does the same when
it completes. Seen: a worker restarted after a SIGKILL got `input gap ... got offset 184,
expected 102` on every partition at once, and only a process restart re-read the gap. Now a
seek is recorded (`_perform_seek_recorded`), and `_getmany_after_seeks` drops the records of
a fetch that started before a seek of their partition, and after a delivery that was under
way during such a seek puts the partition back where the seek put it (seek again there, which
also resets the read offset). Seeking to the committed offset again only re-reads.

The fifth pair (`_resume_streams_suspended`, `_on_recovery_completed_suspended`) closes the
other end of that seek: the table recovery resumes the input partitions and seeks them while
the streams' flow control is active, then resumes flow control, which clears the streams'
queues. Records fetched in between are queued, recorded as read and cleared, never delivered
(seen: a worker restarted after a SIGKILL on held input delivered nothing for 20 s, until the
stall watchdog restarted it). The flow is now suspended before the partitions are resumed.

Where the guard applies: the pure-Python stream iterator acks through `Consumer.ack`, and so do
`Stream.ack`/`Event.ack`; Faust's compiled (Cython) stream iterator, used when its extension
is importable, inlines the ack and never reaches the guard. It does not ack the skipped message
at all (it returns before tracking it), so there the second patch is what keeps the commit from
moving past it (tests/unit/test_faust_fixes.py runs both iterators).

This module is also the one place the rest of the code base reaches private Faust/aiokafka
attributes (the accessors at the end): all of them are tied to the exact versions in
TESTED_VERSIONS, which `install()` checks at start-up, so an upgrade fails loudly at start-up
instead of silently changing what the patches and accessors do
(tests/unit/test_faust_fixes.py scans the code base for private accesses elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, TypeAlias, cast

import faust
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import PrometheusMonitor
from faust.stores.base import SerializedStore
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.types import TP, AppT, Message
from faust.types.tuples import ack_lock
from faust.utils import json as faust_json
from faust.utils.functional import consecutive_numbers
from mode.services import WaitResults
from mode.utils.compat import want_bytes
from mode.utils.futures import notify
from rocksdict import WriteBatch

#: The versions every patch and accessor below was written against and tested with (the pins
#: in pyproject.toml). Private attributes change without notice between releases. mode is
#: Faust's service library: the eager wait_first delegates to its `Service.wait_first` and
#: reads its private stopped/crashed events.
TESTED_VERSIONS: dict[str, str] = {
    "faust-streaming": "0.15.3",
    "aiokafka": "0.14.0",
    "mode-streaming": "0.7.1",
}


def _installed_version(package: str) -> str | None:
    """The installed distribution's version, None when it is not installed (a seam for tests)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_versions() -> None:
    """Refuse to start on a Faust, aiokafka or mode other than the one this module was
    verified on.

    The patches replace private consumer methods wholesale and the accessors read private
    attributes; on another release either can silently stop doing what it says (a guard that
    no longer guards loses input messages), so an unknown version is an error, not a warning.
    """
    for package, expected in TESTED_VERSIONS.items():
        found = _installed_version(package)
        if found != expected:
            raise RuntimeError(
                f"{package} {found or '(not installed)'} found, but streams/faust_fixes.py was "
                f"written and tested against {package}=={expected}: it patches and reads private "
                f"internals of that exact version. Re-verify each patch and accessor against "
                f"{package} {found or '(not installed)'} (tests/unit/test_faust_fixes.py must "
                f"still fail without each patch; re-run the benchmarks in bench/README.md), "
                f"then update TESTED_VERSIONS and the pin in pyproject.toml; or install "
                f"{package}=={expected}."
            )


# ---------------------------------------------------------------------------------------------
# Patches


def _ack_unless_stale(self: Consumer, message: Any) -> bool:
    """`Consumer.ack`, except that a message of an older consumer generation, or one acked
    while flow control is suspended (a rebalance started), is not made committable: it is
    only dropped from the unacked set, so the rebalance does not wait for it (and a rebalance
    already waiting for acks is woken, as Faust's ack does, rather than polling a second)."""
    app = self.app
    stale = (not app.flow_control.is_active()) or (
        message.generation_id != app.consumer_generation_id
    )
    if not stale:
        return bool(_ORIGINALS["ack"](self, message))
    with ack_lock:
        message.acked = True
        self._unacked_messages.discard(message)
        notify(self._waiting_for_ack)
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


async def _wait_first_eager(self: Consumer, *coros: Any, timeout: Any = None) -> Any:
    """The fetcher hands each message to the streams with `wait_first(deliver(message),
    suspend_flow.wait())`: two tasks and an asyncio.wait per message, about a third of a bare
    agent loop's CPU (bench/README.md). Delivery almost never blocks (queues have room, flow is
    active), so run it eagerly: when it completes without suspending no task is made. Only
    when it does suspend is the rest raced against a flow suspension, as Faust does.

    The result is what Faust's `wait_first` returns in the same case (the fetcher ignores it,
    other callers may not). A stopped or crashed consumer, a flow already suspended, a timeout
    or any other call shape goes to Faust's own implementation unchanged."""
    original = _ORIGINALS["wait_first"]
    if (
        len(coros) != 2
        or timeout is not None
        or self.suspend_flow.is_set()
        or self._stopped.is_set()
        or self._crashed.is_set()
    ):
        return await original(self, *coros, timeout=timeout)
    deliver, suspended = coros
    try:
        first = deliver.send(None)
    except StopIteration as stop:
        suspended.close()
        return WaitResults([deliver], [stop.value], False)
    except BaseException:
        suspended.close()
        raise
    resume = _Resume(deliver, first)
    res = await original(self, resume, suspended)
    return WaitResults([deliver if c is resume else c for c in res.done], res.results, res.stopped)


log = logging.getLogger(__name__)


@dataclass
class _Seeks:
    """The seeks a consumer made: `count` of them so far, and per partition the count when it
    was last sought and the offset it was sought to."""

    count: int = 0
    last: dict[TP, tuple[int, int]] = field(default_factory=dict)


def _seeks(consumer: Consumer) -> _Seeks:
    seeks: _Seeks | None = consumer.__dict__.get("_stockroute_seeks")
    if seeks is None:
        seeks = consumer.__dict__["_stockroute_seeks"] = _Seeks()
    return seeks


async def _perform_seek_recorded(self: Consumer) -> None:
    """Faust's `perform_seek` (seek every assigned partition to its committed offset, reset the
    read offsets to it), which also records, for `_getmany_after_seeks`, the partitions it
    moved: aiokafka seeks only those with a committed offset above 0."""
    read_offset = self._read_offset
    committed = await self.seek_to_committed()
    read_offset.update(
        {
            tp: offset if offset is not None and offset >= 0 else None
            for tp, offset in committed.items()
        }
    )
    self._committed_offset.update(
        {
            TP(tp.topic, tp.partition): offset if offset else None
            for tp, offset in committed.items()
            if offset is not None
        }
    )
    seeks = _seeks(self)
    seeks.count += 1
    for tp, offset in committed.items():
        if offset is not None and offset > 0:
            seeks.last[TP(tp.topic, tp.partition)] = (seeks.count, offset)


async def _getmany_after_seeks(self: Consumer, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
    """Faust's `getmany`, without the records a seek made stale (see the module docstring).

    A record of a partition sought after this fetch started is dropped, with the rest of the
    fetch's records of that partition, and the partition is sought again to where that seek
    put it: the fetch may have been answered at either position, and a second seek to the
    committed offset loses nothing. When a seek of the partition completed while a yielded
    record was being delivered, the fetcher has just recorded that record as read, over the
    seek's read offset: seeking again restores both."""
    seeks = _seeks(self)
    started = seeks.count
    stale: set[TP] = set()
    async for tp, message in _ORIGINALS["getmany"](self, timeout):
        if tp in stale:
            continue
        last = seeks.last.get(tp)
        if last is not None and last[0] > started:
            stale.add(tp)
            log.info(
                "records fetched before %s:%s was sought to %s: re-read from there",
                tp.topic,
                tp.partition,
                last[1],
            )
            await self.seek(tp, last[1])
            continue
        before = seeks.count
        yield tp, message
        last = seeks.last.get(tp)
        if last is not None and last[0] > before:
            stale.add(tp)
            log.info(
                "offset %s of %s:%s delivered across a seek to %s: re-read from there",
                message.offset,
                tp.topic,
                tp.partition,
                last[1],
            )
            await self.seek(tp, last[1])


async def _resume_streams_suspended(self: Recovery, generation_id: int = 0) -> None:
    """Faust's `Recovery._resume_streams`, with the streams' flow suspended from its start.

    Faust resumes fetching the input partitions, awaits the seek to the committed offsets,
    and only then resumes flow control, which clears every stream's queue. Flow control is
    already active there (the changelog recovery resumed it), so records the fetcher hands
    over between the resume of the partitions and that clear (during the seek's awaits, or
    in the task switch after it) are queued, recorded as read, and then cleared: they are
    never delivered, and nothing behind them shows a gap when the input is idle. Seen on CI
    (tests/integration/test_chaos.py): a worker restarted after a SIGKILL, on held input,
    delivered nothing on 7 of its 8 partitions until the stall watchdog restarted it. With
    flow suspended, such a delivery waits in the conductor (`flow_control.acquire`) until
    the resume, which clears the queues first and then lets it through; a delivery that
    started before the seek is sought again by `_getmany_after_seeks`."""
    self.app.flow_control.suspend()
    await _RECOVERY_ORIGINALS["_resume_streams"](self, generation_id)


async def _on_recovery_completed_suspended(self: Recovery, generation_id: int = 0) -> None:
    """Faust's `Recovery.on_recovery_completed` (the same resume, seek and clear as
    `_resume_streams`, after a recovery that read changelogs), with the flow suspended from
    its start for the same reason."""
    self.app.flow_control.suspend()
    await _RECOVERY_ORIGINALS["on_recovery_completed"](self, generation_id)


#: Faust's own implementations, kept to delegate to and for the tests to restore.
_ORIGINALS: dict[str, Callable[..., Any]] = {
    "ack": Consumer.ack,
    "_new_offset": Consumer._new_offset,
    "wait_first": Consumer.wait_first,
    "perform_seek": Consumer.perform_seek,
    "getmany": Consumer.getmany,
}

#: Consumer attribute -> its replacement.
PATCHES: dict[str, Callable[..., Any]] = {
    "ack": _ack_unless_stale,
    "_new_offset": _new_offset_without_gaps,
    "wait_first": _wait_first_eager,
    "perform_seek": _perform_seek_recorded,
    "getmany": _getmany_after_seeks,
}


_RECOVERY_ORIGINALS: dict[str, Callable[..., Any]] = {
    "_resume_streams": Recovery._resume_streams,
    "on_recovery_completed": Recovery.on_recovery_completed,
}

#: Recovery attribute -> its replacement.
RECOVERY_PATCHES: dict[str, Callable[..., Any]] = {
    "_resume_streams": _resume_streams_suspended,
    "on_recovery_completed": _on_recovery_completed_suspended,
}


def install() -> None:
    """Check the installed versions, then patch the consumer and the table recovery
    (idempotent: once per process)."""
    check_versions()
    for cls, patches in ((Consumer, PATCHES), (Recovery, RECOVERY_PATCHES)):
        for name, replacement in patches.items():
            if getattr(cls, name) is not replacement:
                setattr(cls, name, replacement)


# ---------------------------------------------------------------------------------------------
# Accessors: the private Faust internals the runtime reads, behind public names.


@dataclass(frozen=True)
class _StoreCodec:
    """How a store encodes keys and values, resolved once per store."""

    encode_key: Callable[[Any], bytes]
    encode_value: Callable[[Any], bytes | None]
    decode_value: Callable[[bytes], Any]


_CODEC_ATTR = "_stockroute_codec"


def _codec(store: Any) -> _StoreCodec:
    """The store's key and value codecs as direct calls, when its serializers are `json`
    without model types (our tables'); else the store's own methods.

    Why: Faust's `_encode_key` / `_encode_value` / `_decode_value` go through the serializer
    registry on every call (serializer resolution, the codec lookup and chain, the model
    checks): ~4 us of pure Python per call here, and a stock event makes about six (its key,
    the event id looked up in three dedupe periods and filed, the record written), more than
    the RocksDB reads and writes themselves. The direct calls are the very functions the
    codec ends in (Faust's `json.dumps` / `json.loads`), so the bytes are the
    same (tests/unit/test_faust_fixes.py compares them); what the shortcut skips is only the
    dispatch, and anything but a plain str, dict or list still goes through Faust."""
    codec: _StoreCodec | None = store.__dict__.get(_CODEC_ATTR)
    if codec is not None:
        return codec
    reg = store.app.serializers
    key_ser = reg._serializer(store.key_type, store.key_serializer, reg.key_serializer)
    value_ser = reg._serializer(store.value_type, store.value_serializer, reg.value_serializer)
    encode_key: Callable[[Any], bytes] = store._encode_key
    encode_value: Callable[[Any], bytes | None] = store._encode_value
    decode_value: Callable[[bytes], Any] = store._decode_value
    if key_ser == "json" and store.key_type is None:
        encode_key = _json_dumps(store._encode_key)  # type: ignore[assignment]
    if value_ser == "json" and store.value_type is None:
        encode_value = _json_dumps(store._encode_value)
        decode_value = _json_loads(store._decode_value)
    codec = _StoreCodec(encode_key, encode_value, decode_value)
    store.__dict__[_CODEC_ATTR] = codec
    return codec


def _json_dumps(fallback: Callable[[Any], bytes | None]) -> Callable[[Any], bytes | None]:
    def encode(value: Any) -> bytes | None:
        t = type(value)
        if t is str or t is dict or t is list:
            return want_bytes(faust_json.dumps(value))
        return fallback(value)

    return encode


def _json_loads(fallback: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode(raw: bytes) -> Any:
        try:
            value = faust_json.loads(raw)  # type: ignore[arg-type]  # bytes: orjson, json take them
        except ValueError:
            return fallback(raw)  # Faust's error (ValueDecodeError) for what is not JSON
        if type(value) is dict and "__faust" in value:
            return fallback(raw)  # a Faust model's payload: Faust rebuilds the model
        return value

    return decode


def store_get(table: Any, key: str, partition: int | None = None) -> Any | None:
    """A table key's value, None when absent, with one store lookup: Faust's `table.get` looks
    a key up twice (contains, then get) and runs its sensors on each call. With `partition`, a
    RocksDB store reads that partition's database (the caller's input carries it, so a batch of
    inputs reads right); without, the current event's (any opened one outside an event)."""
    store = table.data
    if isinstance(store, RocksDBStore) and partition is not None:
        codec = _codec(store)
        raw = store._db_for_partition(partition).get(codec.encode_key(key))
        return None if raw is None else codec.decode_value(raw)
    if isinstance(store, SerializedStore):
        codec = _codec(store)
        raw = store._get(codec.encode_key(key))
        return None if raw is None else codec.decode_value(raw)
    return store.get(key)


def store_set_local(
    table: Any, key: str, value: Any | None, partition: int | None = None
) -> tuple[bytes, bytes | None]:
    """Write (None: delete) a key in the local store only, and return the encoded key and value
    (None for a delete, a changelog tombstone) for the caller to send to the changelog itself:
    Faust's `table[key] = value` builds a FutureMessage and a buffered send per write.

    A RocksDB store writes into the database of `partition` (Faust's own `_set` takes the
    partition from the current event, which in a batch of inputs is not the writer's); without
    `partition`, the current event's, so call it from an agent's event only. Such a write does
    not file the key in Faust's key -> partition index (`_key_index`, a locked LRU cache: ~2 %
    of the fold's CPU): our reads name their partition, and a read that does not (a timer's)
    looks the key up in each partition's database, then files it; a delete still unfiles it."""
    store = table.data
    codec = _codec(store)
    kb = codec.encode_key(key)
    vb = None if value is None else codec.encode_value(value)
    if isinstance(store, RocksDBStore) and partition is not None:
        db = store._db_for_partition(partition)
        if vb is None:
            db.delete(kb)
            store._key_index.pop(kb, None)
        else:
            db.put(kb, vb)
    elif isinstance(store, SerializedStore):
        if vb is None:
            store._del(kb)
        else:
            store._set(kb, vb)
    elif value is None:
        store.pop(key, None)
    else:
        store[key] = value
    return kb, vb


def store_write_local(
    table: Any, items: list[tuple[str, Any | None]], partition: int
) -> list[tuple[bytes, bytes | None]]:
    """Write (None: delete) several keys of one partition in the local store only, in order,
    as one RocksDB `WriteBatch`, and return each encoded (key, value) for the caller's
    changelog records; other stores take them one by one (`store_set_local`).

    Why: a batch's flush writes every key it changed (a stock event's record, a shipment's);
    one `WriteBatch` costs ~1.4 us per key against ~4.5 us for a `put` each (RocksDB's
    write path, the write-ahead log included, once per batch instead of once per key). The
    key index as in `store_set_local`."""
    store = table.data
    if not isinstance(store, RocksDBStore):
        return [store_set_local(table, key, value, partition) for key, value in items]
    codec = _codec(store)
    batch = WriteBatch(raw_mode=True)
    index = store._key_index
    out: list[tuple[bytes, bytes | None]] = []
    for key, value in items:
        kb = codec.encode_key(key)
        vb = None if value is None else codec.encode_value(value)
        if vb is None:
            batch.delete(kb)
            index.pop(kb, None)
        else:
            batch.put(kb, vb)
        out.append((kb, vb))
    store._db_for_partition(partition).write(batch)
    return out


Expand = Callable[[str, Any], Iterable[tuple[str, Any]]]


class _ExpandingTable(faust.Table):  # type: ignore[misc]
    """A table some of whose changelog records stand for more local keys than their own."""

    expand: Expand

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        events = list(batch)
        store = self.data
        for event in events:
            msg = event.message
            if msg.value is None:
                continue
            key = store._decode_key(msg.key)  # type: ignore[attr-defined]
            value = store._decode_value(msg.value)  # type: ignore[attr-defined]
            for local_key, local_value in self.expand(key, value):
                store_set_local(self, local_key, local_value, msg.partition)
        # the persisted offset moves (in Faust's apply) only after the local keys are written
        super().apply_changelog_batch(events)


def expanding_table(app: AppT, name: str, partitions: int, expand: Expand) -> Any:
    """`app.Table(name, default=None, partitions=...)`, except that table recovery also writes
    the local keys `expand(key, value)` gives for every changelog record it applies, before
    the record itself (so before the persisted offset passes it). For tables that keep a
    local-only index of what their changelogged records hold: one changelog record per batch
    instead of one per indexed key (agents/location_owner.py, the dedupe ids). Faust's
    recovery calls the table's `apply_changelog_batch`, which is Faust internals."""
    table = _ExpandingTable(
        app, name=name, default=None, beacon=app.tables.beacon, partitions=partitions
    )
    table.expand = expand
    return app.tables.add(table)


def partition_keys(table: Any, partition: int) -> Iterator[str]:
    """The keys stored for one partition, in key order: for agents that prune or re-publish what
    they own (RocksDB keeps one sorted database per partition, and Faust's own iteration walks
    every partition). The memory store (tests) has no partitions: all its keys, sorted."""
    store = table.data
    if not isinstance(store, RocksDBStore):
        yield from sorted(store)
        return
    db = store._db_for_partition(partition)
    for raw in db.keys():  # noqa: SIM118 - a RocksDB handle, iterated in key order
        if raw.startswith(b"__faust"):  # Faust's own bookkeeping (the persisted offset)
            continue
        yield store._decode_key(raw)


SCAN_PAUSE_S = 0.005


async def scan_items(
    table: Any, every: int = 256, pause: float = SCAN_PAUSE_S
) -> AsyncIterator[tuple[str, Any]]:
    """Every (key, value) of a table, pausing `pause` seconds after every `every` items: a
    full scan of a large table (tens of thousands of keys, each decoded) would otherwise hold
    the worker's one event loop for hundreds of ms, and every input and `/promise` request
    behind it. A pause rather than a bare yield: with a yield only, every step of an order's
    way through the loop (fetch, agent, send) still waits for a chunk of the scan, and two
    timers scanning at once still kept decisions ~250 ms late (docs/throughput.md); a scan is
    a timer's safety net, so spreading it (20k keys: ~0.4 s longer) delays nothing urgent.

    A RocksDB store is read partition by partition (the active ones, as Faust's own
    iteration), each through a RocksDB iterator, which sees the database as it was when its
    read began (writes made meanwhile are not seen and do not disturb it; a partition revoked
    meanwhile is read to the end from the iterator's own handle). The memory store (tests)
    has no such iterator: its items are copied first."""
    store = table.data
    n = 0
    if not isinstance(store, RocksDBStore):
        for key, value in list(table.items()):
            yield key, value
            n += 1
            if n % every == 0:
                await asyncio.sleep(pause)
        return
    # the partitions Faust's own iteration reads (active ones), without its offset key
    decode_value = _codec(store).decode_value
    for db in list(store._dbs_for_actives()):
        for raw_key, raw_value in store._visible_items(db):
            yield store._decode_key(raw_key), decode_value(raw_value)
            n += 1
            if n % every == 0:
                await asyncio.sleep(pause)


def send_now(app: AppT) -> None:
    """Send what the producer holds now instead of when its linger runs out: end the linger of
    its open record batches and wake its sender (aiokafka's `flush_for_commit` wakes it the
    same way), without waiting for the delivery.

    Why: an agent's batch ends when no more input is queued (streams/loop.py), so nothing more
    of it will join those batches; waiting out the linger (5 ms, which groups what a busy
    batch produces into few requests) only delays each hop of an order. The batches are not
    closed: a closed batch makes the next message to its partition wait until the sender took
    it (aiokafka appends only to a partition's last batch), which would tie the agent to every
    produce round trip. Left open, they keep taking messages until the sender takes them, at
    once or, while a request to the broker is in flight, when it completes. aiokafka has no
    public call for it (`flush` waits for the delivery); these are its accumulator's internals.
    A threaded or not-yet-started producer is left alone."""
    producer = getattr(app.producer, "_producer", None)
    acc = getattr(producer, "_message_accumulator", None)
    if acc is None:
        return
    for batches in acc._batches.values():
        for batch in batches:
            batch._linger_time = 0.0
    waiter = acc._waiter_future
    if not waiter.done():
        waiter.set_result(None)


Delivery: TypeAlias = tuple["asyncio.Future[Any]", int]
"""Where a produced record's delivery is told: the future resolves with record metadata whose
`offset` plus the int is the record's offset (None when the producer does not wait for
acks), or fails when the record was not delivered."""

_WATCHED = "_stockroute_watched"


def append_record(
    app: AppT,
    topic: str,
    partition: int,
    key: bytes | None,
    value: bytes | None,
    watch: Callable[[asyncio.Future[Any]], None],
) -> Delivery | None:
    """Append a record to the producer's open record batch of (topic, partition) at once; None
    when there is no open batch with room for it (the caller then sends it as usual, which
    opens a batch or waits for room). The delivery is the batch's own future and the record's
    offset in the batch; `watch` is called once per batch when it is done (delivered or
    failed), however many of our records it holds.

    Why: aiokafka's `send` costs several times the append for every record: it awaits a
    metadata check that builds a set of the topic's partitions, runs the serialisers and the
    partitioner, awaits the accumulator, and Faust's wrapper fires its `on_produce_message`
    signal (no receivers here): ~15 % of the fold's worker CPU, on records whose topic and
    partition are known. And aiokafka's own append makes a future per record, which the
    broker's answer resolves one by one, each done callback a turn of the event loop: ~10 %
    of routing's worker CPU, for records that share their batch's fate anyway (a batch is
    delivered or fails whole). An open batch of the partition means a `send` checked the
    topic's metadata and the sender knows it; the record joins it exactly as `send` would
    have appended it (the partition's last batch, so the partition's order holds), and the
    accumulator's flush, which the consumer awaits before each commit, waits for the batch's
    future. A producer not started, closed or failed is left to `send`, which raises."""
    producer = getattr(app.producer, "_producer", None)
    acc = getattr(producer, "_message_accumulator", None)
    if acc is None or acc._closed or acc._exception is not None:
        return None
    batches = acc._batches.get((topic, partition))  # keyed by TopicPartition, a named tuple
    if not batches:
        return None
    batch = batches[-1]
    metadata = batch._builder.append(timestamp=None, key=key, value=value, headers=[])
    if metadata is None:  # full (the builder closed itself) or closed
        return None
    future: asyncio.Future[Any] = batch.future
    if _WATCHED not in batch.__dict__:
        batch.__dict__[_WATCHED] = True
        future.add_done_callback(watch)
    return future, metadata.offset


def take_queued(stream: Any, limit: int) -> list[Any]:
    """Up to `limit` events already queued for `stream`, each taken as Faust's stream iterator
    takes the one it yields (tracked as unacked, the stream sensors told, counted) but
    without a turn of the event loop each; the caller acks them (its stream's acks are off).

    Why: the iterator awaits `sleep(0)` and a queue `get` before every event and hands it up
    through two async generators, so an agent collects one event per loop turn; while the
    worker's other agent runs a batch, each of those turns also waits for a slice of it, and
    events sat queued for tens of ms (docs/throughput.md). An event of a stale consumer
    generation, or taken while a rebalance suspended the flow, is dropped as the compiled
    iterator drops it (neither yielded nor acked: the seek after the rebalance reads it
    again) and ends the take; so does an error queued for the stream, which the iterator
    raises next."""
    queue = stream.channel.queue
    app = stream.app
    acking = app.topics._acking_topics
    unacked = app.consumer._unacked_messages
    on_message_in = stream._on_message_in
    on_event_in = stream._on_stream_event_in
    taken: list[Any] = []
    while len(taken) < limit and not queue.empty() and not queue._errors:
        event = queue.get_nowait()
        message = event.message
        if not app.flow_control.is_active() or message.generation_id != app.consumer_generation_id:
            break
        if message.topic in acking and not message.tracked:
            message.tracked = True
            unacked.add(message)
            on_message_in(message.tp, message.offset, message)
        on_event_in(message.tp, message.offset, stream, event)
        taken.append(event)
    stream.events_total += len(taken)
    return taken


class _CachedLabelsMonitor(PrometheusMonitor):  # type: ignore[misc]
    """Faust's Prometheus monitor with the same metrics and the same values, its label
    children looked up once per topic, partition and stream instead of per message: for
    every message the stock monitor called `labels()` three times (keyword checks, a locked
    dict lookup) and ran the stream's label through a regex, ~5 % of the fold's worker CPU
    (py-spy, docs/throughput.md). The base Monitor's own counting is kept as it is."""

    def __init__(self, metrics: Any) -> None:
        super().__init__(metrics=metrics)
        self._received_by_topic: dict[str, Any] = {}
        self._offset_by_tp: dict[TP, Any] = {}
        self._events_by_stream: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_in(self, tp, offset, message)
        m = self._metrics
        m.messages_received.inc()
        m.active_messages.inc()
        by_topic = self._received_by_topic.get(tp.topic)
        if by_topic is None:
            by_topic = m.messages_received_per_topics.labels(topic=tp.topic)
            self._received_by_topic[tp.topic] = by_topic
        by_topic.inc()
        at = self._offset_by_tp.get(tp)
        if at is None:
            at = m.messages_received_per_topics_partition.labels(
                topic=tp.topic, partition=tp.partition
            )
            self._offset_by_tp[tp] = at
        at.set(offset)

    def on_stream_event_in(self, tp: TP, offset: int, stream: Any, event: Any) -> Any:
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        m = self._metrics
        m.total_events.inc()
        m.total_active_events.inc()
        child = self._events_by_stream.get(stream)
        if child is None:
            label = f"stream.{self._stream_label(stream)}.events"
            child = self._events_by_stream[stream] = m.total_events_per_stream.labels(stream=label)
        child.inc()
        return state


def cached_prometheus_labels(app: AppT) -> None:
    """Replace the Prometheus monitor `setup_prometheus_sensors` gave `app` by one that feeds
    the same metrics with its label children cached (`_CachedLabelsMonitor`)."""
    stock = cast(PrometheusMonitor, app.monitor)
    app.monitor = _CachedLabelsMonitor(metrics=stock._metrics)


def committed_offset(app: AppT, tp: TP) -> int | None:
    """The offset the consumer last committed (or found committed) for `tp`: the next offset
    it reads after a rebalance, which Faust keeps but does not expose. None when unknown."""
    offset: int | None = app.consumer._committed_offset.get(tp)  # type: ignore[attr-defined]
    return offset


def flow_suspended(app: AppT) -> bool:
    """Whether a rebalance suspended the streams' flow (Faust then skips queued events and
    waits for the ones agents already took to be acked)."""
    return not app.flow_control.is_active()


def tables_recovered(app: AppT) -> bool:
    """Whether table recovery from the changelogs completed (for /health and for agents that
    must not act on half-recovered tables); Faust exposes no public flag for it."""
    return bool(app.tables.recovery.completed.is_set())  # type: ignore[attr-defined]


def delivery_state(app: AppT, tps: Iterable[TP]) -> dict[str, Any]:
    """What decides whether the fetcher hands `tps` to the streams, for the stall watchdog's
    log line: a stall has several possible causes inside Faust (flow control left suspended,
    a partition left paused or out of the fetched set, a read offset recorded past what was
    delivered) and one line should tell them apart."""
    consumer: Any = app.consumer
    active = consumer._active_partitions or set()
    fetcher: Any = app._fetcher  # type: ignore[attr-defined]
    return {
        "flow_control_active": app.flow_control.is_active(),
        "consumer_flow_active": consumer.flow_active,
        "suspend_flow": consumer.suspend_flow.is_set(),
        "generation": app.consumer_generation_id,
        "fetcher_running": bool(fetcher._started.is_set() and not fetcher._stopped.is_set()),
        "in_recovery": app.in_recovery,
        "partitions": {
            f"{tp.topic}:{tp.partition}": {
                "active": tp in active,
                "paused": tp in consumer._paused_partitions,
                "buffered": tp in consumer._buffered_partitions,
                "read_offset": consumer._read_offset.get(tp),
            }
            for tp in tps
        },
    }
