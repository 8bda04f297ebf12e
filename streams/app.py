"""The runtime: the Faust app, its producer path, tables, the local views and the input-order
guard. It knows no agent and no business rule.

`create_runtime` builds one from settings (so tests and several side-by-side workers can each
have their own); streams/loop.py runs handlers on it, and streams/worker.py (the composition
root) registers the agents of agents/.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar, cast

import faust
from aiokafka.partitioner import murmur2
from faust.types import TP

from domain.routing import RoutingPolicy
from streams import bundles, codecs, faust_fixes, logs, state_check
from streams.clock import NetworkClock
from streams.metrics import InputContext, Metrics
from streams.settings import KafkaSettings, WorkerSettings
from streams.topics import TOPICS, AnyTopic, Topic
from streams.views import (
    AvailabilityView,
    BackordersView,
    CompactedView,
    LoadsView,
    LocationsView,
)

log = logging.getLogger(__name__)
GAP_RESTART_S = 10.0
STALL_RESTART_S = 20.0
RESTART_EXIT_CODE = 75  # `stockroute worker` restarts a worker process that exits with this
V = TypeVar("V")


def broker_credentials(kafka: KafkaSettings) -> Any:
    """Faust's credentials object for the same SASL/SSL settings the raw clients use."""
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password,
            mechanism=kafka.sasl_mechanism,
            ssl_context=kafka.ssl_context(),
        )
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(kafka.ssl_context())
    return None


@dataclass
class Runtime:
    """Everything an agent needs: the app, topic handles, tables and the local views."""

    app: faust.App
    settings: WorkerSettings
    policy: RoutingPolicy
    topics: dict[str, faust.TopicT] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)
    processed: dict[str, int] = field(default_factory=dict)  # agent -> inputs taken (counted)
    locations: LocationsView = field(default_factory=LocationsView)
    availability: AvailabilityView = field(default_factory=AvailabilityView)
    loads: LoadsView = field(default_factory=LoadsView)
    backorders: BackordersView = field(default_factory=BackordersView)
    views: list[CompactedView] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    # business time (event time) of this worker: fed by the loop and the store-load view
    clock: NetworkClock = field(default_factory=NetworkClock)
    _expected: dict[TP, int] = field(default_factory=dict)
    _gaps: dict[TP, float] = field(default_factory=dict)
    _waiting: dict[TP, tuple[int, float]] = field(default_factory=dict)
    _last_put: dict[TP, faust_fixes.Delivery] = field(default_factory=dict)
    # bundled topics' messages sent while a batch runs, per (topic, partition): (key, value)s
    # and their size
    _bundles: dict[tuple[AnyTopic, int], tuple[list[tuple[bytes, bytes]], int]] = field(
        default_factory=dict
    )
    _batches: int = 0  # batches running (between their `begin_batch` and `end_batch`)

    def __post_init__(self) -> None:
        # the network times other workers published resume the clock after a restart
        self.loads.clock = self.clock

    def table(self, name: str, partitions: int, expand: faust_fixes.Expand | None = None) -> Any:
        """The worker's table `name` (declared in topics.yaml), made on first use. `expand`:
        the table keeps local-only keys (`put_local`) that its changelogged records stand for;
        recovery writes them from each record (faust_fixes.expanding_table)."""
        if name not in self.tables:
            if name not in TOPICS.tables:
                raise KeyError(f"table {name!r} is not declared in topics.yaml")
            if expand is None:
                self.tables[name] = self.app.Table(name, default=None, partitions=partitions)
            else:
                self.tables[name] = faust_fixes.expanding_table(self.app, name, partitions, expand)
        return self.tables[name]

    async def send(
        self, topic: Topic[V], key: str | None, value: V, partition: int | None = None
    ) -> None:
        """Produce a value of the topic's type (anything else is refused: Topic.encode). The
        key's partition unless `partition` is given."""
        self.metrics.on_send(value)
        kb = key.encode() if key is not None else None
        if partition is None and kb is not None:
            partition = partition_of(kb, topic.partitions)
        vb = topic.encode(value)
        if topic.bundled and self._batches and kb is not None and partition is not None:
            items, size = self._bundles.get((topic, partition)) or ([], 0)
            items.append((kb, vb))
            self._bundles[(topic, partition)] = (items, size := size + len(kb) + len(vb))
            if size >= bundles.MAX_BYTES:
                await self._produce_bundle(topic, partition)
            return
        await self.produce(topic.name, kb, vb, partition)

    def begin_batch(self) -> None:
        """A batch starts: what it sends to a bundled topic is collected per partition
        (streams/bundles.py) until `emit_bundles`."""
        self._batches += 1

    async def end_batch(self) -> None:
        """A batch ends: its bundles are produced (and those of any batch still running,
        which keeps each partition's messages in the order they were sent)."""
        try:
            await self.emit_bundles()
        finally:
            self._batches -= 1  # nothing awaited since the last bundle went: none is left behind

    async def emit_bundles(self) -> None:
        """Produce every collected bundle: before a batch lets the event loop run (the
        producer then sends what it has) and at its end."""
        while self._bundles:
            topic, partition = next(iter(self._bundles))
            await self._produce_bundle(topic, partition)

    async def _produce_bundle(self, topic: AnyTopic, partition: int) -> None:
        items, _ = self._bundles.pop((topic, partition))
        self.metrics.bundle_messages.labels(topic.name).observe(len(items))
        if len(items) == 1:  # a plain record, as without bundles
            await self.produce(topic.name, items[0][0], items[0][1], partition)
        else:
            await self.produce(topic.name, None, bundles.join(items), partition)

    async def produce(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> faust_fixes.Delivery:
        """The one path every agent output and table write takes to Kafka.

        It hands the message straight to Faust's producer, which the consumer flushes before
        each offset commit, so at-least-once holds as with `Topic.send`; it skips Topic.send's
        per-message FutureMessage, channel and callback machinery, which cost more than the
        rest of a stock event (bench/README.md: 1.75x on a send-per-event agent). A record
        whose partition has an open batch joins it at once, without a future of its own
        (faust_fixes.append_record says why). Without a partition the producer's partitioner
        picks one (murmur2 of the key); `send` passes it. A record the producer gave up on
        exits the worker (`_fail_fast`).
        """
        if partition is not None:  # at once into the partition's open batch, if it has one
            delivery = faust_fixes.append_record(self.app, topic, partition, key, value, _fail_fast)
            if delivery is not None:
                return delivery
        fut = cast(
            "asyncio.Future[Any]",
            await self.app.producer.send(topic, key, value, partition, None, None),
        )
        fut.add_done_callback(_fail_fast)
        return fut, 0

    def send_now(self) -> None:
        """Hand what was produced so far to the broker now rather than after the producer's
        linger: called at the end of every batch (faust_fixes.send_now says why)."""
        faust_fixes.send_now(self.app)

    def get(self, table: Any, key: str, partition: int | None = None) -> Any | None:
        """Read a table key (None when absent) with one store lookup: Faust's `table.get`
        looks a missing-or-present key up twice (contains, then get) and runs its sensors.
        `partition`: the reading input's (a handler's reads), else wherever the key is."""
        return faust_fixes.store_get(table, key, partition)

    def partition_keys(self, table: Any, partition: int) -> Iterator[str]:
        """The keys of one partition of a table, in key order: for handlers that prune or
        re-publish what they own."""
        return faust_fixes.partition_keys(table, partition)

    def scan(self, table: Any) -> AsyncIterator[tuple[str, Any]]:
        """Every (key, value) of a table, yielding to the event loop as it goes: for timers
        that rebuild what is due from a whole table (faust_fixes.scan_items)."""
        return faust_fixes.scan_items(table)

    async def put(self, table: Any, key: str, value: Any | None, partition: int) -> None:
        """Write (or, for None, delete) a table key: the local store plus its changelog.

        What Faust's `table[key] = value` does, through `produce`: the changelog record goes
        to `partition`, the partition of the input being processed (carried explicitly, not
        Faust's current event, so a batch of inputs can be written too; the re-keyed streams
        make it the key's own partition), and its offset becomes the store's persisted offset
        once delivered, so a restart recovers only newer changelog records. Faust's own path
        builds a FutureMessage and a buffered send per write, the largest cost in the fold.
        """
        kb, vb = faust_fixes.store_set_local(table, key, value, partition)
        tp = TP(table.changelog_topic.get_topic_name(), partition)
        self._persist_after(table.data, tp, await self.produce(tp.topic, kb, vb, partition))

    async def put_many(
        self, table: Any, items: list[tuple[str, Any | None]], partition: int
    ) -> None:
        """`put` for several keys of one partition, in order: the local writes as one RocksDB
        write batch (faust_fixes.store_write_local), then their changelog records."""
        tp = TP(table.changelog_topic.get_topic_name(), partition)
        delivery = None
        for kb, vb in faust_fixes.store_write_local(table, items, partition):
            delivery = await self.produce(tp.topic, kb, vb, partition)
        if delivery is not None:  # the last record's offset covers the earlier ones
            self._persist_after(table.data, tp, delivery)

    def put_local(self, table: Any, key: str, value: Any | None, partition: int) -> None:
        """Write (None: delete) a key of the local store only, no changelog record: for the
        local-only keys of an expanding table (`table`), which recovery rebuilds."""
        faust_fixes.store_set_local(table, key, value, partition)

    def put_local_many(
        self, table: Any, items: list[tuple[str, Any | None]], partition: int
    ) -> None:
        """`put_local` for several keys of one partition, in order, as one write batch."""
        faust_fixes.store_write_local(table, items, partition)

    def _persist_after(self, store: Any, tp: TP, delivery: faust_fixes.Delivery) -> None:
        """Once the changelog partition's last record in flight is delivered, its offset
        becomes the store's persisted offset (a RocksDB write: once per partition per produce
        round; it covers the earlier records, and a lagging persisted offset only means a
        longer recovery, never a skipped record). Records that share a producer batch share
        its future: one callback per batch, which reads the last of them."""
        last = self._last_put.get(tp)
        self._last_put[tp] = delivery
        if last is None or last[0] is not delivery[0]:
            delivery[0].add_done_callback(lambda f: self._persisted(store, tp, f))

    def _persisted(self, store: Any, tp: TP, fut: asyncio.Future[Any]) -> None:
        last = self._last_put.get(tp)
        if last is None or last[0] is not fut:
            return  # a later write of this partition is in flight: it records its offset
        del self._last_put[tp]
        if not fut.cancelled() and fut.exception() is None and fut.result() is not None:
            store.set_persisted_offset(tp, fut.result().offset + last[1])

    async def dead_letter(self, msg: Any, reason: str) -> None:
        """Park an input that cannot be applied, with the reason and its original bytes."""
        log.warning("dead-letter %s/%s@%s: %s", msg.topic, msg.partition, msg.offset, reason)
        self.metrics.on_dead_letter(msg.topic, reason)
        await self.send(
            TOPICS.dead_letters,
            None if msg.key is None else msg.key.decode("utf-8", "backslashreplace"),
            codecs.dead_letter(
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                key=msg.key,
                raw=msg.value,
                error=reason,
            ),
        )

    def in_order(self, msg: Any) -> bool:
        """False for an event that skips offsets of its partition: the agent must not apply it.

        Input and internal topics are never compacted and carry no transaction markers, so
        offsets are contiguous; a jump means Faust dropped messages around a rebalance
        (docs/reliability.md). Applying the later event first would break per-key order (and the
        positional idempotency would then drop the earlier ones), so it is skipped; its offset
        cannot be committed past the missing ones (streams/faust_fixes.py). If the missing
        offset has not arrived within GAP_RESTART_S, the process exits with RESTART_EXIT_CODE
        and `stockroute worker` restarts it: a new process re-reads from the committed offset,
        in order. After a rebalance the expected offset is the committed one, where Faust seeks.
        """
        tp = msg.tp
        expected = self._expected.get(tp)
        if expected is None:
            committed = faust_fixes.committed_offset(self.app, tp)
            expected = committed if committed is not None else msg.offset
            self._expected[tp] = expected
        if msg.offset > expected:
            self._gaps.setdefault(tp, time.monotonic())
            log.warning(
                "input gap on %s:%s: got offset %s, expected %s; not applied",
                msg.topic,
                msg.partition,
                msg.offset,
                expected,
            )
            self.restart_if_stuck()
            return False
        self._gaps.pop(tp, None)
        self._expected[tp] = max(expected, msg.offset + 1)
        return True

    def restart_if_stuck(self) -> None:
        """Exit for a restart when a gap stayed open GAP_RESTART_S (checked per event and by a
        timer, since the stream may be idle after the gap)."""
        now_s = time.monotonic()
        stuck = {
            tp: self._expected.get(tp) for tp, t in self._gaps.items() if now_s - t > GAP_RESTART_S
        }
        if stuck:
            log.error(
                "input gaps not refilled in %ss, restarting to re-read: %s",
                GAP_RESTART_S,
                {f"{tp.topic}:{tp.partition}": off for tp, off in stuck.items()},
            )
            logging.shutdown()
            os._exit(RESTART_EXIT_CODE)
        stalled = self.stalled(now_s)
        if stalled:
            log.error(
                "input waiting but not delivered for %ss, restarting to re-read: %s; %s",
                STALL_RESTART_S,
                {
                    f"{tp.topic}:{tp.partition}": f"next {e}, high-water {h}"
                    for tp, (e, h) in stalled.items()
                },
                faust_fixes.delivery_state(self.app, stalled),
            )
            logging.shutdown()
            os._exit(RESTART_EXIT_CODE)

    def forget_positions(self) -> None:
        """After a rebalance partitions restart from their committed offsets."""
        self._expected.clear()
        self._gaps.clear()
        self._waiting.clear()
        self.metrics.forget_positions()

    def stalled(self, now_s: float) -> dict[TP, tuple[int, int]]:
        """Input partitions where messages wait (high-water mark above the next offset to
        process) and nothing was delivered for STALL_RESTART_S, while the worker is ready.

        Faust resumed a partition's fetching before it resumed its flow control, which clears
        the streams' queues: a message fetched in between was dropped from the queue after its
        read offset was recorded, so it was never delivered again (seen: a worker started on
        pending input). faust_fixes now suspends the flow across that window; this is the
        backstop for a delivery lost some other way inside Faust: a gap behind it shows up as
        an input gap, but with nothing behind it the partition would wait forever. Checked by
        the timer; a restart re-reads from the committed offsets, and the log line carries
        the consumer's delivery state to tell the causes apart.
        Returns {tp: (next offset, high-water mark)}."""
        app = self.app
        if app.rebalancing or not faust_fixes.tables_recovered(app) or not self.views_ready:
            self._waiting.clear()
            return {}
        out: dict[TP, tuple[int, int]] = {}
        for tp in _assignment(app):
            spec = TOPICS.by_name.get(tp.topic)
            if spec is None or spec.compacted:
                continue  # changelogs, Faust's own topics, compacted inputs (no in-order check)
            expected = self._expected.get(tp)
            if expected is None:
                expected = faust_fixes.committed_offset(app, tp) or 0
            high = app.consumer.highwater(tp)
            if high is None or high <= expected:
                self._waiting.pop(tp, None)
                continue
            first, since = self._waiting.get(tp, (expected, now_s))
            if first != expected:
                first, since = expected, now_s
            self._waiting[tp] = (first, since)
            if now_s - since > STALL_RESTART_S:
                out[tp] = (expected, int(high))
        return out

    def observe(self, ctx: InputContext) -> None:
        """The loop is about to process this input: count it (metrics), and make it the
        context of what this task logs (topic, partition, offset, order_id)."""
        self.metrics.on_input(ctx)
        order_id = ctx.key if ctx.topic.key == "order_id" else None
        logs.set_message(ctx.topic.name, ctx.partition, ctx.offset, order_id)

    def timer(self, interval: float, fn: Callable[[], Awaitable[None]]) -> None:
        """Run `fn` every `interval` wall-clock seconds (timers schedule checks only: what is
        due is judged against the network clock, `self.clock`)."""
        self.app.timer(interval=interval, name=fn.__qualname__)(fn)

    async def wait_views(self) -> None:
        """Agents call this before their first event: validation and routing read the views,
        so an event processed before they caught up would be judged against a partial world
        (a known location taken for unknown)."""
        for v in self.views:
            await v.ready.wait()

    @property
    def views_ready(self) -> bool:
        return all(v.ready.is_set() for v in self.views)


@lru_cache(maxsize=65536)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` (murmur2, as the Java clients,
    Faust and aiokafka do), passed explicitly by `Runtime.send`: aiokafka's murmur2 is pure
    Python, and the same keys (sku@location, order ids, location ids) come back again and
    again, so it is computed once per key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def _fail_fast(fut: asyncio.Future[Any]) -> None:
    """A message the producer gave up on (after its retries) must not let the input that
    caused it be committed: exit, and `stockroute worker` restarts from the committed offset."""
    if fut.cancelled() or fut.exception() is None:
        return
    log.error("produce failed, restarting to re-read uncommitted input: %r", fut.exception())
    logging.shutdown()
    os._exit(RESTART_EXIT_CODE)


def _topic(app: faust.App, spec: AnyTopic) -> faust.TopicT:
    return app.topic(
        spec.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
        internal=False,
    )


def create_runtime(settings: WorkerSettings) -> Runtime:
    """The runtime without agents (streams/worker.py registers them)."""
    faust_fixes.install()
    # debug records that nothing prints still cost ~4 % CPU (bench profile)
    for name in ("aiokafka", "faust", "mode"):
        logging.getLogger(name).setLevel(logging.WARNING)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{h}" for h in settings.kafka.bootstrap.split(",")],
        broker_credentials=broker_credentials(settings.kafka),
        store=settings.store,
        datadir=str(settings.data_dir),
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_tables_enabled=settings.table_browsing,
        web_router_enabled=settings.table_browsing,
        topic_partitions=4,
        topic_replication_factor=TOPICS.replication_factor,
        table_standby_replicas=0,
        topic_allow_declare=True,
        # 5 ms: what a timer, a view or the web server produces outside a batch is grouped
        # into few requests; an agent's batch sends what it produced when it ends
        # (Runtime.send_now), so an order's hops do not wait it out.
        producer_linger=0.005,
        producer_max_batch_size=262144,
        producer_acks=-1,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=16384,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
        web_in_thread=False,
    )
    rt = Runtime(app=app, settings=settings, policy=RoutingPolicy.load(settings.routing_policy))
    rt.metrics.install(app)  # Faust's Prometheus sensor + ours, GET /metrics
    for spec in TOPICS:
        rt.topics[spec.handle] = _topic(app, spec)

    kafka = settings.kafka
    rt.views = [
        CompactedView(TOPICS.locations.name, rt.locations.on_message, kafka),
        CompactedView(TOPICS.stock_availability.name, rt.availability.on_message, kafka),
        CompactedView(TOPICS.store_load.name, rt.loads.on_message, kafka),
        CompactedView(TOPICS.backorders.name, rt.backorders.on_message, kafka),
    ]

    @app.task
    async def follow_views() -> None:
        await asyncio.gather(*(v.run() for v in rt.views))

    @app.timer(interval=2.0)
    async def restart_if_stuck() -> None:
        rt.restart_if_stuck()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _forget_positions(sender: Any, *args: Any, signal: Any = None, **kw: Any) -> None:
        rt.forget_positions()

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        recovered = faust_fixes.tables_recovered(app)
        state = {
            "tables_recovered": recovered,
            "views_ready": rt.views_ready,
            "rebalancing": app.rebalancing,
            "assigned": sorted(f"{tp.topic}:{tp.partition}" for tp in _assignment(app)),
            "views": {v.topic: {str(p): o for p, o in v.positions.items()} for v in rt.views},
            # the worker's network clock (streams/clock.py): business time, None before input
            "network_time": None if (t := rt.clock.now()) is None else t.isoformat(),
        }
        ok = recovered and rt.views_ready and not app.rebalancing
        # "recovering": this process moved a foreign local state aside and rebuilds it
        waiting = "recovering" if state_check.rebuilding() and not recovered else "starting"
        return web.json({"status": "ok" if ok else waiting, **state}, status=200 if ok else 503)

    return rt


def _assignment(app: faust.App) -> set[TP]:
    try:
        return set(app.consumer.assignment())
    except Exception:  # noqa: BLE001 - consumer not started yet
        return set()
