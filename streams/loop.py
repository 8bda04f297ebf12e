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
   makes.

Writes carry the input's partition and offset explicitly (never Faust's "current event"), so
the same code serves a batch of inputs at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import faust

from domain.routing import RoutingPolicy
from streams.app import Runtime
from streams.codecs import Rejected
from streams.records import Position
from streams.settings import WorkerSettings
from streams.topics import TOPICS, AnyTopic, Topic
from streams.views import AvailabilityView, LoadsView, LocationsView

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
    """Write (None: delete) `key` of one of the agent's other tables."""

    table: str
    key: str
    value: Any | None


Effect = Send[Any] | Put


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()
"""Returned as the state by a handler that did not change it: no table write."""


# ---- context -----------------------------------------------------------------------------------


class Ctx:
    """What a handler may know about the input being processed and the worker's world."""

    __slots__ = (
        "_index",
        "_rt",
        "availability",
        "key",
        "loads",
        "locations",
        "offset",
        "origin",
        "partition",
        "policy",
        "settings",
        "timestamp",
        "topic",
    )

    def __init__(self, rt: Runtime, topic: AnyTopic, msg: Any) -> None:
        self._rt = rt
        self._index = 0
        self.topic: AnyTopic = topic
        self.partition: int = msg.partition
        self.offset: int = msg.offset
        self.timestamp: float = msg.timestamp
        self.key: str | None = None if msg.key is None else msg.key.decode("utf-8", "replace")
        self.origin: str = f"{topic.code}:{msg.partition}"
        self.locations: LocationsView = rt.locations
        self.availability: AvailabilityView = rt.availability
        self.loads: LoadsView = rt.loads
        self.policy: RoutingPolicy = rt.policy
        self.settings: WorkerSettings = rt.settings

    def position(self) -> Position:
        """The next position of this input's positioned ops: (offset, index), compared as a
        pair downstream, so any number of ops per input stays below the next input's."""
        pos = (self.offset, self._index)
        self._index += 1
        return pos

    def get(self, table: str, key: str) -> Any | None:
        """Read one of the agent's tables (the raw stored value; None when absent)."""
        return self._rt.get(self._rt.tables[table], key)

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
        rt.table(name, agent.partitions)
    source = rt.app.topic(
        *(t.name for t in agent.inputs),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def run(stream: faust.StreamT[bytes]) -> None:
        await rt.wait_views()
        async for event in stream.events():
            await process(rt, agent, event.message)

    rt.app.agent(source, name=agent.name, concurrency=1)(run)
    for interval, make in agent.timers:
        rt.timer(interval, make(rt))


async def process(rt: Runtime, agent: Agent, msg: Any) -> None:
    """The whole protocol for one input message (see the module docstring)."""
    topic = TOPICS.by_name[msg.topic]
    if topic.compacted:
        if msg.value is None:
            return  # a tombstone deletes a key: legal on a compacted topic
    elif not rt.in_order(msg):
        return
    ctx = Ctx(rt, topic, msg)
    rt.observe(ctx)  # metrics (processed, lag, order timestamps) and the log context
    spec = agent.state
    try:
        message = topic.decode(msg.value)
        if agent.keyed_by is not None:
            want = getattr(message, agent.keyed_by)
            if ctx.key != want:
                raise Rejected(f"message key must be the {agent.keyed_by} {want!r}")
        table, key, state = None, None, None
        if spec is not None:
            key = spec.key(message)
            if key is not None:
                table = rt.tables[spec.table]
                state = spec.decode(rt.get(table, key))
        if (
            agent.replay is not None
            and state is not None
            and state.positions.get(ctx.origin, -1) >= msg.offset
        ):
            await _execute(rt, ctx, agent.replay(state, message, ctx))
            return
        new_state, effects = agent.handle(state, message, ctx)
    except Rejected as exc:
        await rt.dead_letter(msg, exc.reason)
        return
    if (
        table is not None
        and key is not None
        and spec is not None
        and new_state is not UNCHANGED
        and (new_state is not None or state is not None)
    ):
        if agent.replay is not None and new_state is not None:
            new_state.positions[ctx.origin] = msg.offset
        value = None if new_state is None else spec.encode(new_state)
        await rt.put(table, key, value, msg.partition)
    await _execute(rt, ctx, effects)


async def _execute(rt: Runtime, ctx: Ctx, effects: list[Effect]) -> None:
    for eff in effects:
        if isinstance(eff, Send):
            await rt.send(eff.topic, eff.key, eff.value, eff.partition)
        else:
            await rt.put(rt.tables[eff.table], eff.key, eff.value, ctx.partition)
