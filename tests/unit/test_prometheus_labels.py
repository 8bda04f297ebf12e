"""faust_fixes.cached_prometheus_labels: Faust's Prometheus monitor with its label children
cached gives exactly the samples the stock monitor gives, for the same messages and events."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams import faust_fixes


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


class _Task:
    pass


class _Stream:
    def __init__(self, label: str, task: _Task) -> None:
        self.shortlabel, self.task_owner = label, task


def _feed(monitor: Any) -> None:
    task = _Task()
    streams = [_Stream(f"Stream: Topic: orders-{i}", task) for i in (1, 2)]
    for n in range(40):
        tp = TP(f"topic-{n % 3}", n % 4)
        monitor.on_message_in(tp, n, SimpleNamespace())
        monitor.on_stream_event_in(tp, n, streams[n % 2], None)


def test_cached_labels_give_the_stock_monitors_samples() -> None:
    stock_registry, cached_registry = CollectorRegistry(), CollectorRegistry()
    stock = PrometheusMonitor(metrics=FaustMetrics.create(stock_registry, "t"))
    app: Any = SimpleNamespace(
        monitor=PrometheusMonitor(metrics=FaustMetrics.create(cached_registry, "t"))
    )
    faust_fixes.cached_prometheus_labels(app)
    assert type(app.monitor) is not PrometheusMonitor
    _feed(stock)
    _feed(app.monitor)
    want = _samples(stock_registry)
    assert want == _samples(cached_registry)
    # the labelled series are there, with the counts of the messages fed
    assert want[("t_messages_received_per_topic_total", (("topic", "topic-0"),))] == 14
    offsets = "t_messages_received_per_topics_partition"
    # the last offset fed to topic-1 partition 3: n = 31 (n % 3 == 1, n % 4 == 3)
    assert want[(offsets, (("partition", "3"), ("topic", "topic-1")))] == 31
    assert stock.events_total == app.monitor.events_total == 40
