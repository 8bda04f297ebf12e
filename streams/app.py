"""The Faust application: the one place that wires Kafka, tables, views and agents together.

Agents live in agents/ as thin adapters around the pure domain modules; `create_runtime` builds
an app from settings (so tests and several side-by-side workers can each have their own), then
lets each agent module register itself.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP

from domain.routing import RoutingPolicy
from streams import codecs, faust_fixes
from streams.settings import KafkaSettings, WorkerSettings
from streams.topics import TOPICS, TopicSpec
from streams.views import AvailabilityView, CompactedView, LoadsView, LocationsView

log = logging.getLogger(__name__)


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
    locations: LocationsView = field(default_factory=LocationsView)
    availability: AvailabilityView = field(default_factory=AvailabilityView)
    loads: LoadsView = field(default_factory=LoadsView)
    views: list[CompactedView] = field(default_factory=list)
    _last_offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    def topic(self, handle: str) -> faust.TopicT:
        return self.topics[handle]

    async def send(self, handle: str, key: str | None, value: Any) -> None:
        """Produce to a topic from topics.yaml; values are records or plain dicts."""
        await self.topics[handle].send(
            key=key.encode() if key is not None else None, value=codecs.dumps(value)
        )

    async def dead_letter(self, event: faust.EventT, reason: str) -> None:
        msg = event.message
        log.warning("dead-letter %s/%s@%s: %s", msg.topic, msg.partition, msg.offset, reason)
        await self.send(
            "dead_letters",
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

    def check_contiguous(self, event: faust.EventT) -> None:
        """Log when an input partition skips offsets: input topics are never compacted, so a
        jump forward means messages were not delivered to the agent (a Faust rebalance gap)."""
        msg = event.message
        key = (msg.topic, msg.partition)
        last = self._last_offsets.get(key)
        if last is not None and msg.offset > last + 1:
            log.warning(
                "input gap on %s:%s: offset %s follows %s (%s messages not seen)",
                msg.topic, msg.partition, msg.offset, last, msg.offset - last - 1,
            )
        self._last_offsets[key] = msg.offset

    def origin(self, event: faust.EventT) -> str:
        """Idempotency origin of an input: '<topic code>:<partition>' (see domain/stock.py)."""
        msg = event.message
        return f"{TOPICS.by_name[msg.topic].code}:{msg.partition}"

    async def wait_views(self) -> None:
        """Agents call this before their first event: validation and routing read the views,
        so an event processed before they caught up would be judged against a partial world
        (a known location taken for unknown)."""
        for v in self.views:
            await v.ready.wait()

    @property
    def views_ready(self) -> bool:
        return all(v.ready.is_set() for v in self.views)


def _topic(app: faust.App, spec: TopicSpec) -> faust.TopicT:
    return app.topic(
        spec.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
        internal=False,
    )


def create_runtime(settings: WorkerSettings, *, agents: bool = True) -> Runtime:
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
        # 5 ms: batches the per-event fan-out (ops, changelogs, outputs) into few requests; an
        # order crosses four producer hops, so this adds at most ~20 ms to routing latency
        # (bench/README.md: 1 ms linger made nearly every message its own produce request).
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
    for spec in TOPICS:
        rt.topics[spec.handle] = _topic(app, spec)

    kafka = settings.kafka
    rt.views = [
        CompactedView(TOPICS.locations.name, rt.locations.on_message, kafka),
        CompactedView(TOPICS.stock_availability.name, rt.availability.on_message, kafka),
        CompactedView(TOPICS.store_load.name, rt.loads.on_message, kafka),
    ]

    @app.task
    async def follow_views() -> None:
        await asyncio.gather(*(v.run() for v in rt.views))

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        state = {
            "tables_recovered": recovered,
            "views_ready": rt.views_ready,
            "rebalancing": app.rebalancing,
            "assigned": sorted(f"{tp.topic}:{tp.partition}" for tp in _assignment(app)),
        }
        ok = recovered and rt.views_ready and not app.rebalancing
        return web.json({"status": "ok" if ok else "starting", **state}, status=200 if ok else 503)

    if agents:
        from agents import register_all

        register_all(rt)
    return rt


def _assignment(app: faust.App) -> set[TP]:
    try:
        return set(app.consumer.assignment())
    except Exception:  # noqa: BLE001 - consumer not started yet
        return set()
