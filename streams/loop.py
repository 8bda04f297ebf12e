"""The one processing loop: an agent is a handler, the runtime owns the per-message protocol.

An `Agent` declares its input topics (each bound to its model in the typed registry), the
table holding its state with the codec of that state, and a handler

    handle(state, message, ctx) -> (state, effects)

where `message` is the decoded input, `state` the decoded state of the message's key (None when
absent), and the effects are typed sends and writes to the agent's other tables. For every
input this module does, in this order and nowhere else:

1. wait until the local views caught up (once, before the first input);
2. the in-order check (a non-compacted input that skips offsets is not applied:
   Runtime.in_order); a tombstone on a compacted input is skipped;
3. decode to the topic's model, or dead-letter with the reason and the original bytes; the
   same for a message whose key is not the field the agent is keyed by, and for a handler that
   raises `Rejected` (nothing of that input is applied);
4. the replay check, for states that record the input offsets they applied (`Positioned`): an
   input at or below the recorded offset is handed to the agent's `replay` instead;
5. state get, the handler, state put (positions recorded), then the effects in order, each send
   validated against its topic's model; `ctx.position()` numbers the positioned ops an input
   makes;
6. the network clock (streams/clock.py): `ctx.now` is the business time of the input (the
   worker's clock including the input's own `occurred_at`), and an applied input's
   `occurred_at` advances the clock (a dead-lettered one does not).

Batches: a `batched` agent is fed batches of at most STOCKROUTE_BATCH_MAX inputs, each closed
as soon as no more input is queued for it (`EagerBatches`): a quiet stream waits for nothing, a
busy one gets full batches. Each input still goes through steps 2-5 on its own, in order; what
a handler folds across the batch it keeps in `ctx.batch.scratch` (e.g. one working set per
location) and the agent's `flush` turns that into effects once at the end of the batch: each
changed key written once, each changed record published once. Writes carry their input's
partition explicitly (never Faust's "current event", which in a batch is only the last
input's). A handler must raise `Rejected` before it changes anything in the scratch, so a
dead-lettered input leaves no trace. Once a batch has run STOCKROUTE_BATCH_BUDGET_MS (10 ms)
since the event loop last ran, the loop runs before its next input (`process_batch`): the
producer sends what the batch's handlers sent so far, the other agent and `/promise` get
their turn; the batch goes on afterwards, still flushed once and acked at its end. Between
two inputs of a batch another coroutine may see the agent's tables as they were before the
batch (its writes wait for the flush), never half an input. Nothing of a batch is committed
before all of it was handed to the producer (its events are acked after that, and the
consumer flushes the producer before it commits), so a crash mid-batch re-reads it, and
positions make that a no-op.

Bundles: what a batch sends to an internal topic marked `bundled` goes out as one record per
partition (streams/bundles.py, `Runtime.begin_batch`/`end_batch`); the loop expands such a
record into its messages, each going through steps 3-6 on its own, its position the record's
offset and its index in the record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import faust
from faust.types import TP

from domain.routing import RoutingPolicy
from streams import bundles, faust_fixes
from streams.app import Runtime
from streams.clock import NetworkClock
from streams.codecs import Rejected
from streams.faust_fixes import Expand
from streams.records import DeadLetter, Position
from streams.settings import WorkerSettings
from streams.topics import TOPICS, AnyTopic, Topic
from streams.views import AvailabilityView, BackordersView, LoadsView, LocationsView

log = logging.getLogger(__name__)

S = TypeVar("S")
M = TypeVar("M")
V = TypeVar("V")


# ---- effects -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send(Generic[V]):
    """Produce `value` to `topic` (the key's partition unless `partition` is given)."""

    topic: Topic[V]
    key: str | None
    value: V
    partition: int | None = None


@dataclass(frozen=True, slots=True)
class Put:
    """Write (None: delete) `key` of one of the agent's other tables, in the partition of the
    input being processed unless `partition` is given (a batch's flush gives it). `local`: a
    local-only key of an expanding table (Agent.local_keys), no changelog record."""

    table: str
    key: str
    value: Any | None
    partition: int | None = None
    local: bool = False


Effect = Send[Any] | Put


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()
"""Returned as the state by a handler that did not change it: no table write."""


# ---- context -----------------------------------------------------------------------------------


class Batch:
    """What handlers fold across the inputs of one batch (one input when unbatched), flushed by
    the agent's `flush` at its end; with the worker's views, which the flush may publish to."""

    __slots__ = ("availability", "clock", "locations", "policy", "scratch")

    def __init__(self, rt: Runtime) -> None:
        self.scratch: dict[Any, Any] = {}
        self.clock: NetworkClock = rt.clock
        self.locations: LocationsView = rt.locations
        self.availability: AvailabilityView = rt.availability
        self.policy: RoutingPolicy = rt.policy


class Ctx:
    """What a handler may know about the input being processed and the worker's world."""

    __slots__ = (
        "_index",
        "_rt",
        "availability",
        "backorders",
        "batch",
        "index",
        "key",
        "loads",
        "locations",
        "now",
        "offset",
        "origin",
        "partition",
        "policy",
        "raw",
        "settings",
        "timestamp",
        "topic",
    )

    def __init__(
        self, rt: Runtime, topic: AnyTopic, msg: Any, batch: Batch, index: int = 0
    ) -> None:
        self._rt = rt
        self.batch = batch
        self.index: int = index  # the message's place in its bundle record (0: a single one)
        self._index = index * bundles.ITEM_SPAN
        self.topic: AnyTopic = topic
        self.partition: int = msg.partition
        self.offset: int = msg.offset
        self.timestamp: float = msg.timestamp
        self.key: str | None = None if msg.key is None else msg.key.decode("utf-8", "replace")
        self.raw: bytes | None = msg.value  # the input's bytes (a refusal after the fact)
        self.origin: str = f"{topic.code}:{msg.partition}"
        self.locations: LocationsView = rt.locations
        self.availability: AvailabilityView = rt.availability
        self.loads: LoadsView = rt.loads
        self.backorders: BackordersView = rt.backorders
        self.policy: RoutingPolicy = rt.policy
        self.settings: WorkerSettings = rt.settings
        # business time: set by the loop once the input is decoded (its occurred_at counts)
        self.now: datetime = rt.clock.at()

    def position(self) -> Position:
        """The next position of this input's positioned ops: (offset, n), compared as a pair
        downstream, so any number of ops per input stays below the next input's (a bundle's
        message numbers its ops from index * bundles.ITEM_SPAN)."""
        pos = (self.offset, self._index)
        self._index += 1
        return pos

    def numbered_past(self, seq: Position) -> None:
        """The next positions come after `seq` (the ops an input re-sends as they were)."""
        self._index = max(self._index, seq[1] + 1)

    def owns(self, seq: Position) -> bool:
        """Whether `seq` is a position this input numbers (its offset, its bundle index)."""
        return seq[0] == self.offset and seq[1] // bundles.ITEM_SPAN == self.index

    @property
    def here(self) -> str:
        """This input's place: "<origin>:<offset>", with ".<index>" for a bundle's message
        after the first (deterministic: ids derived from it repeat when it is read again)."""
        at = f"{self.origin}:{self.offset}"
        return f"{at}.{self.index}" if self.index else at

    def committed(self, origin: str) -> int | None:
        """The offset committed for the input partition `origin` names ("<topic code>:<partition>",
        as `self.origin`): where a restarted worker or the partition's next owner reads it again
        from. None when this worker does not know it (a partition it is not assigned)."""
        code, _, partition = origin.rpartition(":")
        topic = TOPICS.by_code.get(code)
        if topic is None or not partition.isdigit():
            return None
        return faust_fixes.committed_offset(self._rt.app, TP(topic.name, int(partition)))

    def get(self, table: str, key: str) -> Any | None:
        """Read one of the agent's tables (the raw stored value; None when absent)."""
        return self._rt.get(self._rt.tables[table], key, self.partition)

    def put_local(self, table: str, key: str, value: Any | None) -> None:
        """Write (None: delete) a local-only key of an expanding table (Agent.local_keys), in
        this input's partition, now: no changelog record (recovery rebuilds it)."""
        self._rt.put_local(self._rt.tables[table], key, value, self.partition)

    def keys(self, table: str) -> Iterator[str]:
        """The keys of this input's partition of a table, in key order."""
        return self._rt.partition_keys(self._rt.tables[table], self.partition)


# ---- agents ------------------------------------------------------------------------------------


class Positioned(Protocol):
    """A state that records, per input origin, the last input offset applied to it."""

    positions: dict[str, Any]


@dataclass(frozen=True)
class StateSpec(Generic[S, M]):
    """Where an agent's state lives: a table, the key of a message's state, and its codec."""

    table: str
    key: Callable[[M], str | None]  # None: this message has no state of its own
    decode: Callable[[Any], S | None] = lambda raw: raw
    encode: Callable[[S], Any] = lambda state: state


Handler = Callable[[Any, Any, Ctx], tuple[Any, list[Effect]]]


@dataclass(frozen=True)
class Agent:
    """A handler and what the runtime needs to run it."""

    name: str
    inputs: tuple[AnyTopic, ...]
    handle: Handler
    state: StateSpec[Any, Any] | None = None
    tables: tuple[str, ...] = ()  # other tables it reads (ctx.get) and writes (Put)
    keyed_by: str | None = None  # every input's message key must equal this field
    # for Positioned states: what an input already applied (a re-read after a crash) emits
    replay: Callable[[Any, Any, Ctx], list[Effect]] | None = None
    timers: tuple[tuple[float, Callable[[Runtime], Any]], ...] = field(default=())
    # what the handlers left in ctx.batch.scratch -> effects, once per batch (or per input)
    flush: Callable[[Batch], list[Effect]] | None = None
    # take batches (at most STOCKROUTE_BATCH_MAX, EagerBatches) rather than one input at a time
    batched: bool = False
    # tables with local-only keys: name -> what keys a changelog record stands for, written
    # by table recovery (faust_fixes.expanding_table); the handler writes them with put_local
    local_keys: Mapping[str, Expand] = field(default_factory=dict)

    @property
    def partitions(self) -> int:
        counts = {t.partitions for t in self.inputs}
        if len(counts) != 1:
            raise ValueError(f"agent {self.name}: inputs are not co-partitioned: {counts}")
        return counts.pop()


def register(rt: Runtime, agent: Agent) -> None:
    """Create the agent's tables and its Faust agent (concurrency 1: one writer per key)."""
    names = ((agent.state.table,) if agent.state else ()) + agent.tables
    for name in names:
        rt.table(name, agent.partitions, agent.local_keys.get(name))
    source = rt.app.topic(
        *(t.name for t in agent.inputs),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def run(stream: faust.StreamT[bytes]) -> None:
        await rt.wait_views()
        size = rt.settings.batch_max
        if not agent.batched or size <= 1:
            async for event in stream.events():
                await process_batch(rt, agent, [event.message])
        else:
            budget = rt.settings.batch_budget_ms / 1000 or None  # 0: no budget
            await EagerBatches(rt, agent, stream, size, budget).run()

    rt.app.agent(source, name=agent.name, concurrency=1)(run)
    for interval, make in agent.timers:
        rt.timer(interval, make(rt))


HELD_CHECK_S = 0.05


class EagerBatches:
    """Feeds an agent batches of at most `size` events, each closed as soon as no more input is
    queued for it: one event at low load (no wait), full batches when input piles up.

    Faust's `take_events` waits out its `within` window at every batch (a few ms on every hop
    of an order) and fills its buffer through a stream processor per event (more CPU per event:
    docs/throughput.md). The stream's own acks are off: a batch's events are acked once its
    effects were handed to the producer (the consumer flushes the producer before it commits).
    Once the stream yields an event, whatever else is queued for the agent joins it at once
    (`faust_fixes.take_queued`) rather than one event per turn of the event loop.

    One case needs a guard: events held while the next one is awaited. The queue was not
    empty, but a rebalance that starts in between makes Faust skip what was queued (and clear
    the queue), so the wait lasts until after the rebalance, while the rebalance waits for the
    held events to be acked (`wait_empty`): a stall (seen in the scale bench). Faust can also
    drop queued messages when it resumes a partition (Runtime.stalled), and then nothing may
    come at all. So a check every HELD_CHECK_S processes held events itself when flow control
    is suspended (as Faust expects of events an agent already took; their acks during a
    rebalance do not commit, and the next owner re-reads them: streams/faust_fixes.py), or
    when the same events were already held at the previous check. A lock keeps it and the
    agent from processing at the same time; what the agent takes later is newer, so the order
    holds."""

    def __init__(
        self, rt: Runtime, agent: Agent, stream: Any, size: int, budget_s: float | None = None
    ) -> None:
        self.rt, self.agent, self.stream, self.size = rt, agent, stream, size
        self.budget_s = budget_s
        self.held: list[Any] = []
        self.lock = asyncio.Lock()

    async def run(self) -> None:
        stream = self.stream
        stream.enable_acks = False
        guard = asyncio.ensure_future(self._guard())
        try:
            async for event in stream.events():
                self.held.append(event)
                # and what else is queued now, without a loop turn each (faust_fixes.take_queued)
                self.held.extend(faust_fixes.take_queued(stream, self.size - len(self.held)))
                if len(self.held) >= self.size or stream.channel.empty():
                    await self.flush()
        finally:
            guard.cancel()

    async def flush(self) -> None:
        async with self.lock:
            events, self.held = self.held, []
            if not events:
                return
            await process_batch(self.rt, self.agent, [e.message for e in events], self.budget_s)
            for done in events:
                await self.stream.ack(done)

    async def _guard(self) -> None:
        seen: list[Any] | None = None
        while True:
            await asyncio.sleep(HELD_CHECK_S)
            held = self.held
            if held and (held is seen or faust_fixes.flow_suspended(self.rt.app)):
                await self.flush()
                seen = None
            else:
                seen = held


async def process_batch(
    rt: Runtime, agent: Agent, msgs: list[Any], budget_s: float | None = None
) -> None:
    """Every input of a batch in order, then the agent's flush of what they folded.

    With a `budget_s`, the event loop runs whenever that much wall time passed since it last
    ran (between two inputs, never inside one): a batch of hundreds of inputs would otherwise
    hold the worker's one loop for hundreds of ms, and with it the producer's sender (the
    sends made so far, e.g. reservation answers, wait in its buffer), the fetcher, the other
    agent and the web server (`/promise`). It stays one batch: flushed once, acked after."""
    batch = Batch(rt)
    ran = time.perf_counter()
    rt.begin_batch()
    try:
        for msg in msgs:
            await process(rt, agent, msg, batch)
            if budget_s is not None and time.perf_counter() - ran >= budget_s:
                await rt.emit_bundles()
                await asyncio.sleep(0)
                ran = time.perf_counter()
        rt.processed[agent.name] = rt.processed.get(agent.name, 0) + len(msgs)
        if agent.batched:
            rt.metrics.batch_size.observe(len(msgs))
        if agent.flush is not None and batch.scratch:
            await _apply_flush(rt, agent.flush(batch))
    finally:
        await rt.end_batch()
    rt.send_now()  # nothing more of this batch will join what it produced


async def process(rt: Runtime, agent: Agent, msg: Any, batch: Batch) -> None:
    """The whole protocol for one input record (see the module docstring); a bundle's
    messages one by one (streams/bundles.py)."""
    topic = TOPICS.by_name[msg.topic]
    if topic.compacted:
        if msg.value is None:
            return  # a tombstone deletes a key: legal on a compacted topic
    elif not rt.in_order(msg):
        return
    if topic.bundled and bundles.is_bundle(msg.value):
        try:
            items = bundles.items(msg)
        except Rejected as exc:
            await rt.dead_letter(msg, exc.reason)
            return
        for index, item in enumerate(items):
            await _process_message(rt, agent, topic, item, batch, index)
        return
    await _process_message(rt, agent, topic, msg, batch, 0)


async def _process_message(
    rt: Runtime, agent: Agent, topic: AnyTopic, msg: Any, batch: Batch, index: int
) -> None:
    """Steps 3-6 for one message (a record, or a bundle's message number `index`)."""
    ctx = Ctx(rt, topic, msg, batch, index)
    rt.observe(ctx)  # metrics (processed, lag, order timestamps) and the log context
    spec = agent.state
    try:
        message = topic.decode(msg.value)
        occurred_at: datetime | None = getattr(message, "occurred_at", None)
        ctx.now = rt.clock.at(occurred_at)
        if agent.keyed_by is not None:
            want = getattr(message, agent.keyed_by)
            if ctx.key != want:
                raise Rejected(f"message key must be the {agent.keyed_by} {want!r}")
        table, key, state = None, None, None
        if spec is not None:
            key = spec.key(message)
            if key is not None:
                table = rt.tables[spec.table]
                state = spec.decode(rt.get(table, key, msg.partition))
        if (
            agent.replay is not None
            and state is not None
            and bundles.applied(state.positions.get(ctx.origin), msg.offset, index)
        ):
            await _execute(rt, ctx, agent.replay(state, message, ctx))
            _observe(rt, occurred_at)
            return
        new_state, effects = agent.handle(state, message, ctx)
    except Rejected as exc:
        await rt.dead_letter(msg, exc.reason)
        return
    _observe(rt, occurred_at)
    if (
        table is not None
        and key is not None
        and spec is not None
        and new_state is not UNCHANGED
        and (new_state is not None or state is not None)
    ):
        if agent.replay is not None and new_state is not None:
            new_state.positions[ctx.origin] = bundles.position(msg.offset, index)
        value = None if new_state is None else spec.encode(new_state)
        await rt.put(table, key, value, msg.partition)
    await _execute(rt, ctx, effects)


async def _apply_flush(rt: Runtime, effects: list[Effect]) -> None:
    """A flush's effects in order, each run of writes to one table partition as one local
    write batch (Runtime.put_many): a flush writes every key its batch changed."""
    run: list[tuple[str, Any | None]] = []
    run_of: tuple[str, int, bool] | None = None

    async def write(of: tuple[str, int, bool], items: list[tuple[str, Any | None]]) -> None:
        table, partition, local = rt.tables[of[0]], of[1], of[2]
        if local:
            rt.put_local_many(table, items, partition)
        else:
            await rt.put_many(table, items, partition)

    for eff in effects:
        if isinstance(eff, Put):
            if eff.partition is None:
                raise ValueError(f"a flush's write to {eff.table} names no partition")
            if run_of != (eff.table, eff.partition, eff.local):
                if run_of is not None:
                    await write(run_of, run)
                run, run_of = [], (eff.table, eff.partition, eff.local)
            run.append((eff.key, eff.value))
            continue
        if run_of is not None:
            await write(run_of, run)
            run, run_of = [], None
        await _apply(rt, eff, None)
    if run_of is not None:
        await write(run_of, run)


def _observe(rt: Runtime, occurred_at: datetime | None) -> None:
    """An applied input's event time advances the worker's network clock."""
    if occurred_at is not None:
        rt.clock.observe(occurred_at)


async def _execute(rt: Runtime, ctx: Ctx, effects: list[Effect]) -> None:
    for eff in effects:
        await _apply(rt, eff, ctx.partition)


async def _apply(rt: Runtime, eff: Effect, partition: int | None) -> None:
    if isinstance(eff, Send):
        if isinstance(eff.value, DeadLetter):  # one a handler made itself (after the fact)
            rt.metrics.on_dead_letter(eff.value.source_topic, eff.value.error)
        await rt.send(eff.topic, eff.key, eff.value, eff.partition)
        return
    where = eff.partition if eff.partition is not None else partition
    if where is None:
        raise ValueError(f"a write to {eff.table} outside an input names no partition")
    if eff.local:
        rt.put_local(rt.tables[eff.table], eff.key, eff.value, where)
    else:
        await rt.put(rt.tables[eff.table], eff.key, eff.value, where)
