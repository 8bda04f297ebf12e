"""A worker's Prometheus metrics, served at `GET /metrics` on its web port.

Faust's own Prometheus sensor (`faust.sensors.prometheus`: messages received and sent per
topic, commit and send latencies, rebalances, end and committed offsets per partition, named
`stockroute_faust_*`) and Stockroute's (`stockroute_*`) share one registry per runtime, so one
scrape returns both and several runtimes in one process (the tests) do not collide.

Stockroute's metrics are fed from two places only: the processing loop reports every input it
processes (`on_input`), and `Runtime.send`, which every typed record an agent produces goes
through, reports it (`on_send`): decisions by status, the decision latency (order produced ->
first decision sent), refused reservations, re-routes, order events by change, each
location's open orders and saturation from the store-load records. Dead letters are counted by
`Runtime.dead_letter`; consumer lag is computed at scrape time from the consumer's high-water
marks and the next offset the loop will process. `batch_size` is observed by the loop per batch,
`bundle_messages` by `Runtime` per bundle record it produces (streams/bundles.py).

Useful queries: events/s of the fold
`sum(rate(stockroute_messages_processed_total{topic=~".*(pos-sales|supplier-feeds)"}[1m]))`; routing
p99 `histogram_quantile(0.99, rate(stockroute_routing_decision_latency_seconds_bucket[5m]))`.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Protocol

from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import TP
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from streams import faust_fixes
from streams.records import OrderEvent, ReservationResult, RoutedOrder, StoreLoad
from streams.topics import TOPICS, AnyTopic

__all__ = ["Metrics", "reason_class"]

PLACED_TRACKED = 100_000  # orders awaiting their first decision whose produce time is kept
REASON_CLASSES = 64  # distinct dead-letter reason classes before the rest count as "other"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)

_ID = re.compile(r"""^['"].*|.*\d.*""")
_ID_AFTER = {"order", "shipment", "location", "sku", "reservation"}


def reason_class(reason: str) -> str:
    """A dead-letter reason without its particulars, for a label of bounded cardinality: the
    text before the first colon, identifiers (quoted words, words with digits, the word after
    `order`/`shipment`/...) replaced by `<id>`, trailing ones dropped, at most 6 words.

    "malformed JSON: Expecting value" -> "malformed JSON"; "invalid WebOrder: lines.0.qty ..."
    -> "invalid WebOrder"; "unknown location_id 'XX-9'" -> "unknown location_id";
    "order O-17 was already placed" -> "order <id> was already placed".
    """
    head = reason.split(":", 1)[0]
    words: list[str] = []
    prev = ""
    for word in head.split():
        is_id = bool(_ID.match(word)) or prev.lower() in _ID_AFTER and not word.islower()
        words.append("<id>" if is_id else word)
        prev = word
    while words and words[-1] == "<id>":
        words.pop()
    return " ".join(words[:6]) or "other"


class InputContext(Protocol):
    """What the loop knows of an input (streams.loop.Ctx)."""

    topic: AnyTopic
    partition: int
    offset: int
    timestamp: float
    key: str | None


class Metrics:
    """Stockroute's metrics in their own registry (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        r = self.registry
        self.processed = Counter(
            "stockroute_messages_processed",
            "Input messages handed to an agent (after the in-order check), per topic/partition",
            ["topic", "partition"],
            registry=r,
        )
        self.dead_letters = Counter(
            "stockroute_dead_letters",
            "Inputs sent to dead-letters, by source topic and reason class",
            ["source_topic", "reason"],
            registry=r,
        )
        self.decisions = Counter(
            "stockroute_routing_decisions",
            "Routing decisions published (routed-orders), by status",
            ["status"],
            registry=r,
        )
        self.decision_latency = Histogram(
            "stockroute_routing_decision_latency_seconds",
            "Order produced (its Kafka timestamp) to its first routing decision sent",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reservations_refused = Counter(
            "stockroute_reservations_refused",
            "Shipments a location's owner refused (no slot left, or stock taken meanwhile)",
            registry=r,
        )
        self.reroutes = Counter(
            "stockroute_reroutes",
            "Routing decisions after the first one of an order (rejection, time-out, short pick)",
            registry=r,
        )
        self.order_events = Counter(
            "stockroute_order_events",
            "Order events published, by change (routed, shipment_rejected, short_pick, ...)",
            ["change"],
            registry=r,
        )
        self.open_orders = Gauge(
            "stockroute_location_open_orders",
            "Open orders of a location (its latest store-load record from this worker)",
            ["location_id"],
            registry=r,
        )
        self.saturation = Gauge(
            "stockroute_location_saturation",
            "Saturation of a location: open work over capacity (store-load record)",
            ["location_id"],
            registry=r,
        )
        self.backlog_saturation = Gauge(
            "stockroute_location_backlog_saturation",
            "Open orders over max_backlog of a location (store-load record)",
            ["location_id"],
            registry=r,
        )
        self.batch_size = Histogram(
            "stockroute_batch_size",
            "Input messages processed per batch by the processing loop",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.bundle_messages = Histogram(
            "stockroute_bundle_messages",
            "Messages per record produced to a bundled internal topic (streams/bundles.py)",
            ["topic"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self._processed: dict[tuple[str, int], Any] = {}
        self._next: dict[TP, int] = {}
        self._placed: OrderedDict[str, float] = OrderedDict()
        self._reasons: set[str] = set()
        self._app: Any = None

    # ---- wiring ----------------------------------------------------------------------------

    def install(self, app: Any) -> None:
        """Faust's Prometheus sensor on `app` in this registry, `GET /metrics` on its web
        server, and the consumer-lag collector."""
        setup_prometheus_sensors(
            app, pattern="/metrics", registry=self.registry, name_prefix="stockroute_faust"
        )
        faust_fixes.cached_prometheus_labels(app)  # same metrics, cheaper per message
        self._app = app
        self.registry.register(_LagCollector(self))

    # ---- hooks -----------------------------------------------------------------------------

    def on_input(self, ctx: InputContext) -> None:
        """An input the loop is about to process (past the in-order check)."""
        name, partition = ctx.topic.name, ctx.partition
        child = self._processed.get((name, partition))
        if child is None:
            child = self._processed[(name, partition)] = self.processed.labels(name, str(partition))
        child.inc()
        self._next[TP(name, partition)] = ctx.offset + 1
        if ctx.topic is TOPICS.web_orders and ctx.key is not None and ctx.key not in self._placed:
            self._placed[ctx.key] = ctx.timestamp
            if len(self._placed) > PLACED_TRACKED:
                self._placed.popitem(last=False)

    def on_send(self, value: Any) -> None:
        """A typed record an agent produced (Runtime.send)."""
        if type(value) not in _COUNTED:
            return  # most sends (availability, stock and load ops) count nothing here
        if isinstance(value, StoreLoad):
            loc = value.location_id
            self.open_orders.labels(loc).set(value.open_orders)
            self.saturation.labels(loc).set(value.saturation)
            self.backlog_saturation.labels(loc).set(value.backlog_saturation)
        elif isinstance(value, ReservationResult):
            if not value.ok:
                self.reservations_refused.inc()
        elif isinstance(value, RoutedOrder):
            self.decisions.labels(value.status).inc()
            produced = self._placed.pop(value.order_id, None)
            if value.attempt > 1:
                self.reroutes.inc()
            elif produced is not None:
                self.decision_latency.observe(max(0.0, time.time() - produced))
        elif isinstance(value, OrderEvent):
            self.order_events.labels(value.change).inc()

    def on_dead_letter(self, source_topic: str, reason: str) -> None:
        cls = reason_class(reason)
        if cls not in self._reasons:
            if len(self._reasons) >= REASON_CLASSES:
                cls = "other"
            else:
                self._reasons.add(cls)
        self.dead_letters.labels(source_topic, cls).inc()

    def forget_positions(self) -> None:
        """After a rebalance: partitions restart from their committed offsets."""
        self._next.clear()

    # ---- lag -------------------------------------------------------------------------------

    def lag(self) -> Iterator[tuple[TP, int]]:
        """(partition, messages not yet processed) for each input partition this worker is
        assigned: the high-water mark minus the next offset the loop processes (the
        committed offset before it processed any). Table changelogs are not listed (their
        catching up is recovery, which /health reports)."""
        app = self._app
        if app is None:
            return
        try:
            consumer = app.consumer
            assigned = sorted(consumer.assignment())
        except Exception:  # noqa: BLE001 - consumer not started yet
            return
        for tp in assigned:
            if tp.topic not in TOPICS.by_name:
                continue  # changelogs: table recovery, not processing
            try:
                high = consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - partition not fetched yet
                continue
            if high is None:
                continue
            pos = self._next.get(tp)
            if pos is None:
                # nothing processed since the assignment: from the committed offset (none yet:
                # from offset 0, an upper bound once retention deleted the oldest messages)
                pos = faust_fixes.committed_offset(app, tp) or 0
            yield tp, max(0, int(high) - int(pos))


_COUNTED = frozenset({StoreLoad, ReservationResult, RoutedOrder, OrderEvent})


class _LagCollector:
    """`stockroute_consumer_lag{topic, partition}`, computed when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        g = GaugeMetricFamily(
            "stockroute_consumer_lag",
            "Messages of an assigned input partition not processed yet (high-water - next)",
            labels=["topic", "partition"],
        )
        for tp, lag in self.metrics.lag():
            g.add_metric([tp.topic, str(tp.partition)], lag)
        yield g
