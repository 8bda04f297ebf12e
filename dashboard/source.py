"""Live data for the dashboard: a background Kafka reader folding output topics into a state.

Why a thread with its own consumer rather than reading inside the page: Streamlit reruns the
page script on every refresh and for every browser tab, while the network's state is built from
a long stream. One `LiveFeed` per dashboard process (held in `st.cache_resource`) keeps reading
in the background and every page run only queries the in-memory `DashboardState`.

Reading policy (no consumer group, so nothing is committed and several dashboards never steal
partitions from each other):
- compacted topics (locations, store-load, stock-availability) are read from the beginning:
  they hold the latest value per key, which is exactly what the page shows;
- append-only topics (routed-orders, order-events, dead-letters) are read from `history_hours`
  ago (looked up with offsets_for_times), but never more than `max_history` messages per topic,
  so a restart during a long peak still catches up in seconds; the dead-letters panel counts
  what was refused in that window.
The dashboard never opens a worker's RocksDB: Kafka is the only interface.

A broker that is not reachable yet (the dashboard started before Kafka, or Kafka restarts) is
normal: the feed retries every few seconds and `status()` says why it is not live, for the page.
Topics created after the dashboard started are picked up by a periodic re-discovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson

from dashboard.model import (
    DASHBOARD_HANDLES,
    H_STORE_LOAD,
    DashboardState,
    fold_many,
    tick,
    to_epoch,
)
from streams.settings import KafkaSettings
from streams.topic_reader import TopicReader
from streams.topics import TOPICS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedStatus:
    """What the page shows about the connection: live, catching up, or why not."""

    bootstrap: str
    running: bool = False
    connected: bool = False
    error: str | None = None
    attempts: int = 0
    messages: int = 0
    undecodable: int = 0
    missing_topics: tuple[str, ...] = ()
    caught_up: bool = False
    progress: float = 0.0
    last_message_at: float | None = None

    def describe(self) -> str:
        """One line for the page header."""
        if not self.connected:
            why = f": {self.error}" if self.error else ""
            return (
                f"Kafka not reachable at {self.bootstrap}{why} — retrying (attempt {self.attempts})"
            )
        if not self.caught_up:
            return f"Catching up on history from {self.bootstrap}: {self.progress:.0%}"
        return f"Live from {self.bootstrap}: {self.messages:,} messages read"


def start_offset(
    *,
    compacted: bool,
    beginning: int,
    end: int,
    by_time: int | None,
    max_messages: int,
) -> int:
    """Where to start reading one partition.

    Compacted topics: from the beginning (every key's latest value). Others: from the first
    message at or after the history start (`by_time`; None when every message is older, so
    nothing to replay), but at most `max_messages` back from the end."""
    if compacted:
        return beginning
    if by_time is None:
        return end
    return max(beginning, by_time, end - max(max_messages, 0))


def decode(raw: bytes | None) -> tuple[dict[str, Any] | None, str | None]:
    """Message bytes -> (value, problem). A tombstone (None) is a valid, empty value."""
    if raw is None:
        return None, None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(value, dict):
        return None, f"not a JSON object: {type(value).__name__}"
    return value, None


def _describe_error(exc: BaseException) -> str:
    """One short line for the page: the exception type and what went wrong, no repr noise."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "no answer (timed out)"
    name = type(exc).__name__
    text = str(exc).strip()
    if "Unable to bootstrap" in text:
        text = "unable to bootstrap (no broker answers there)"
    text = text or name
    return text if name in text else f"{name}: {text}"


Item = tuple[str, Mapping[str, Any] | None, str | None]
"""(topic handle, value, key): what `fold_many` takes."""


class Sink(Protocol):
    """Where a LiveFeed folds what it reads, instead of the planner's `DashboardState`
    (the store app's `dashboard.store.StoreState` is one)."""

    def fold_many(self, items: Iterable[Item]) -> int: ...

    def tick(self) -> None: ...


class TimeOrderedReplay:
    """Merges the replay of several partitions into one stream ordered by record time.

    Why: the backlog chart is sampled from store-load as it is folded. On a restart the
    dashboard re-reads store-load's history, and Kafka hands partitions over in chunks: one
    partition can be read to its end before another starts, which would draw a backlog that
    jumps when the lagging partitions arrive. Releasing records in `updated_at` order across
    partitions (a k-way merge) rebuilds the history as it happened. A record is released only
    when every partition still replaying has a buffered record to compare with, or is done.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, int], deque[tuple[float, int, Item]]] = {}
        self._seq = 0

    def track(self, key: tuple[str, int]) -> None:
        """Order this partition's records until it is `finished` and drained."""
        self._buffers.setdefault(key, deque())

    def __contains__(self, key: object) -> bool:
        return key in self._buffers

    def push(self, key: tuple[str, int], ts: float | None, item: Item) -> None:
        self._seq += 1
        self._buffers[key].append((float("-inf") if ts is None else ts, self._seq, item))

    def sizes(self) -> dict[tuple[str, int], int]:
        return {k: len(b) for k, b in self._buffers.items()}

    def release(self, finished: Callable[[tuple[str, int]], bool]) -> list[Item]:
        """Records that can be folded now, oldest first; drops drained, finished partitions."""
        out: list[Item] = []
        while self._buffers:
            for key in [k for k, b in self._buffers.items() if not b and finished(k)]:
                del self._buffers[key]
            if not self._buffers or any(not b for b in self._buffers.values()):
                break  # a partition still replaying has nothing buffered: its next time is unknown
            key = min(self._buffers, key=lambda k: self._buffers[k][0][:2])
            out.append(self._buffers[key].popleft()[2])
        return out


_FEEDS: weakref.WeakSet[LiveFeed] = weakref.WeakSet()


def stop_all(timeout: float = 10.0) -> None:
    """Stop every LiveFeed of this process (tests, or a host embedding the page)."""
    for feed in list(_FEEDS):
        feed.stop(timeout)


class LiveFeed:
    """Reads the dashboard's topics on a daemon thread and folds them into `state`.

    Usage: `feed = LiveFeed().start()`; read `feed.state` with the query functions of
    dashboard.model and `feed.status()` for the connection line; `feed.stop()` to end.
    Another page reads other topics with the same reader: `LiveFeed(handles=..., sink=...)`
    folds the topics of those handles into `sink` instead of `state`.
    """

    def __init__(
        self,
        settings: KafkaSettings | None = None,
        state: DashboardState | None = None,
        *,
        history_hours: float = 6.0,
        max_history: int = 200_000,
        retry_s: float = 5.0,
        rediscover_s: float = 15.0,
        connect_timeout_s: float = 20.0,
        handles: Sequence[str] = DASHBOARD_HANDLES,
        sink: Sink | None = None,
    ) -> None:
        self.settings = settings or KafkaSettings.from_env()
        self.state = state or DashboardState()
        self.sink = sink
        self.history_hours = history_hours
        self.max_history = max_history
        self.retry_s = retry_s
        self.rediscover_s = rediscover_s
        self.connect_timeout_s = connect_timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._status = FeedStatus(bootstrap=self.settings.bootstrap)
        self._handle_by_name = {getattr(TOPICS, h).name: h for h in handles}
        self._compacted = {
            getattr(TOPICS, h).name for h in handles if getattr(TOPICS, h).cleanup == "compact"
        }
        # next offset to read per (topic, partition): survives reconnects, so a broker restart
        # resumes instead of replaying (the folds are idempotent anyway)
        self._positions: dict[tuple[str, int], int] = {}
        self._targets: dict[tuple[str, int], int] = {}
        self._starts: dict[tuple[str, int], int] = {}
        self._replay = TimeOrderedReplay()
        self.replay_buffer_max = 20_000
        self._paused: set[Any] = set()
        _FEEDS.add(self)

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> LiveFeed:
        """Start the reader thread (idempotent); returns self for `st.cache_resource` chaining."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._thread_main, name="stockroute-dashboard-feed", daemon=True
            )
            self._set(running=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the reader to finish and wait for it (the consumer is closed cleanly)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set(running=False, connected=False)

    def status(self) -> FeedStatus:
        """A snapshot of the connection state, safe to call from any thread."""
        with self._lock:
            return self._status

    def wait_until(self, predicate: Any, timeout: float = 30.0, poll: float = 0.1) -> bool:
        """Poll `predicate(status)` until true or timeout; for scripts and tests."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.status()):
                return True
            time.sleep(poll)
        return bool(predicate(self.status()))

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    # ---- the reader ------------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception as exc:  # pragma: no cover - last resort, keep the page informative
            log.exception("dashboard feed stopped")
            self._set(running=False, connected=False, error=_describe_error(exc))

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._set(attempts=self.status().attempts + 1)
            try:
                await self._session()
            except Exception as exc:
                why = _describe_error(exc)
                if why != self.status().error:  # say it once, not at every retry
                    log.warning("dashboard feed (%s): %s", self.settings.bootstrap, why)
                self._set(connected=False, error=why)
            # wait before retrying, but wake up at once when asked to stop
            await asyncio.get_running_loop().run_in_executor(None, self._stop.wait, self.retry_s)

    async def _session(self) -> None:
        reader = TopicReader(
            self.settings,
            auto_offset_reset="earliest",
            client_id="stockroute-dashboard",
            request_timeout_ms=int(self.connect_timeout_s * 1000),
            retry_backoff_ms=500,
            metadata_max_age_ms=30_000,
        )
        try:
            await asyncio.wait_for(reader.start(), timeout=self.connect_timeout_s)
            self._set(connected=True, error=None)
            await asyncio.wait_for(self._assign(reader), timeout=self.connect_timeout_s * 2)
            consumer = reader.consumer
            loop = asyncio.get_running_loop()
            next_check = loop.time() + self.rediscover_s
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=5_000)
                for tp in consumer.assignment():
                    # the consumed position, which also moves past compacted gaps and control
                    # records that never show up as messages
                    self._positions[(tp.topic, tp.partition)] = await consumer.position(tp)
                self._fold(batches)
                if self.sink is None:
                    tick(self.state)
                else:
                    self.sink.tick()
                self._throttle_replay(consumer)
                if loop.time() >= next_check:
                    # also proves the broker still answers: a failure ends the session and the
                    # page shows the error while we reconnect
                    await asyncio.wait_for(self._assign(reader), timeout=self.connect_timeout_s)
                    next_check = loop.time() + self.rediscover_s
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.stop(), timeout=10)

    async def _assign(self, reader: TopicReader) -> None:
        """Assign every partition of the dashboard's topics that exist; seek new ones."""
        consumer = reader.consumer
        tps = await reader.partitions(self._handle_by_name)
        present = {tp.topic for tp in tps}
        missing = tuple(sorted(name for name in self._handle_by_name if name not in present))
        self._set(missing_topics=missing)
        if set(tps) == set(consumer.assignment()):
            self._update_progress()
            return
        # forget partitions that disappeared (a deleted topic): if it comes back, it is read
        # afresh rather than from offsets of a log that no longer exists
        current = {(tp.topic, tp.partition) for tp in tps}
        for book in (self._positions, self._targets, self._starts):
            for key in [k for k in book if k not in current]:
                del book[key]
        consumer.assign(tps)
        self._paused.clear()  # a new assignment starts unpaused
        new = [tp for tp in tps if (tp.topic, tp.partition) not in self._positions]
        for tp in tps:
            pos = self._positions.get((tp.topic, tp.partition))
            if pos is not None:
                consumer.seek(tp, pos)
        if not new:
            return
        beginning = await consumer.beginning_offsets(new)
        end = await consumer.end_offsets(new)
        since_ms = int((time.time() - self.history_hours * 3600) * 1000)
        timed = [tp for tp in new if tp.topic not in self._compacted]
        by_time = await consumer.offsets_for_times(dict.fromkeys(timed, since_ms)) if timed else {}
        per_partition: dict[str, int] = {}
        for tp in new:
            count = sum(1 for other in tps if other.topic == tp.topic)
            per_partition[tp.topic] = max(1, self.max_history // count)
        for tp in new:
            found = by_time.get(tp)
            offset = start_offset(
                compacted=tp.topic in self._compacted,
                beginning=beginning[tp],
                end=end[tp],
                by_time=None if found is None else found.offset,
                max_messages=per_partition[tp.topic],
            )
            consumer.seek(tp, offset)
            key = (tp.topic, tp.partition)
            if self._handle_by_name[tp.topic] == H_STORE_LOAD and offset < end[tp]:
                self._replay.track(key)
            self._positions[key] = offset
            self._starts[key] = offset
            self._targets[key] = end[tp]
        self._update_progress()

    def _fold(self, batches: Mapping[Any, list[Any]]) -> None:
        items: list[Item] = []
        bad = replayed = 0
        last = None
        for tp, records in batches.items():
            handle = self._handle_by_name.get(tp.topic)
            if handle is None or not records:
                continue
            where = (tp.topic, tp.partition)
            for rec in records:
                value, problem = decode(rec.value)
                if problem is not None:
                    bad += 1
                    continue
                key = rec.key.decode("utf-8", "replace") if rec.key is not None else None
                if where in self._replay:
                    ts = to_epoch(value.get("updated_at")) if value is not None else None
                    self._replay.push(where, ts, (handle, value, key))
                    replayed += 1
                else:
                    items.append((handle, value, key))
            pos = self._positions.get(where, 0)
            self._positions[where] = max(pos, records[-1].offset + 1)
            last = time.time()
        released = self._replay.release(
            lambda k: self._positions.get(k, 0) >= self._targets.get(k, 0)
        )
        if self.sink is None:
            fold_many(self.state, [*items, *released])
        else:
            self.sink.fold_many([*items, *released])
        st = self.status()
        self._set(
            messages=st.messages + len(items) + replayed,
            undecodable=st.undecodable + bad,
            last_message_at=last or st.last_message_at,
        )
        self._update_progress()

    def _throttle_replay(self, consumer: Any) -> None:
        """Pause a replaying partition that runs far ahead of the others (bounded memory)."""
        from aiokafka import TopicPartition

        paused = self._paused
        sizes = self._replay.sizes()
        for key, size in sizes.items():
            tp = TopicPartition(*key)
            if size > self.replay_buffer_max and tp not in paused:
                consumer.pause(tp)
                paused.add(tp)
            elif size < self.replay_buffer_max // 4 and tp in paused:
                consumer.resume(tp)
                paused.discard(tp)
        for tp in [tp for tp in paused if (tp.topic, tp.partition) not in sizes]:
            consumer.resume(tp)
            paused.discard(tp)

    def _update_progress(self) -> None:
        total = done = 0
        for key, target in self._targets.items():
            start = self._starts.get(key, target)
            span = max(0, target - start)
            total += span
            done += min(span, max(0, self._positions.get(key, start) - start))
        caught_up = all(self._positions.get(k, 0) >= t for k, t in self._targets.items())
        self._set(caught_up=caught_up, progress=1.0 if total == 0 else done / total)
