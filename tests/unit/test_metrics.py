"""streams/metrics.py: what each hook counts, the dead-letter reason classes (bounded label
values), and the runtime wiring (Runtime.send, dead_letter, observe; Faust's sensor in the same
registry)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.sensors.prometheus import PrometheusMonitor
from faust.types import TP
from prometheus_client import generate_latest

from streams import logs
from streams.metrics import REASON_CLASSES, Metrics, reason_class
from streams.records import OrderEvent, ReservationResult, RoutedOrder, StoreLoad
from streams.topics import TOPICS, AnyTopic

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def sample(m: Metrics, name: str, **labels: str) -> float:
    v = m.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


def ctx(topic: AnyTopic, partition: int, offset: int, key: str | None, ts: float) -> Any:
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, key=key, timestamp=ts)


def routed(order_id: str, attempt: int = 1, status: str = "routed") -> RoutedOrder:
    return RoutedOrder(
        order_id=order_id,
        attempt=attempt,
        status=status,  # type: ignore[arg-type]
        decided_at=NOW,
        shipments=[],
        reasons={},
    )


def load(location_id: str, open_orders: int, saturation: float) -> StoreLoad:
    return StoreLoad(
        location_id=location_id,
        kind="store",
        open_orders=open_orders,
        open_units=open_orders,
        capacity_per_hour=10,
        max_backlog=20,
        saturation=saturation,
        backlog_saturation=open_orders / 20,
        oldest_open_age_s=0.0,
        oldest_open_since=None,
        updated_at=NOW,
    )


@pytest.mark.parametrize(
    ("reason", "cls"),
    [
        ("malformed JSON: Expecting value: line 1 column 2 (char 1)", "malformed JSON"),
        ("invalid WebOrder: lines.0.qty: Input should be greater than 0", "invalid WebOrder"),
        ("invalid location: lat: Input should be less than or equal to 90", "invalid location"),
        ("unknown location_id 'NOWHERE-9'", "unknown location_id"),
        ("message key must be the order_id 'O-12'", "message key must be the order_id"),
        ("order O-17 was already placed", "order <id> was already placed"),
        ("order ABC-x is already cancelled", "order <id> is already cancelled"),
        ("unknown shipment 'O-1-S9' for order O-1", "unknown shipment <id> for order"),
        ("empty message (tombstone or null value)", "empty message (tombstone or null value)"),
        ("unknown order: never placed", "unknown order"),
        ("", "other"),
    ],
)
def test_a_reason_class_keeps_the_kind_and_drops_the_particulars(reason: str, cls: str) -> None:
    assert reason_class(reason) == cls


def test_dead_letters_count_by_topic_and_class_with_a_bounded_number_of_classes() -> None:
    m = Metrics()
    m.on_dead_letter("web-orders", "malformed JSON: x")
    m.on_dead_letter("web-orders", "malformed JSON: y")
    m.on_dead_letter("returns", "unknown location_id 'A1'")
    assert (
        sample(
            m, "stockroute_dead_letters_total", source_topic="web-orders", reason="malformed JSON"
        )
        == 2
    )
    assert (
        sample(
            m, "stockroute_dead_letters_total", source_topic="returns", reason="unknown location_id"
        )
        == 1
    )
    for i in range(REASON_CLASSES + 10):
        m.on_dead_letter("web-orders", f"novel failure kind{'x' * i}")
    assert (
        sample(m, "stockroute_dead_letters_total", source_topic="web-orders", reason="other") == 12
    )  # 2 classes known before, cap reached 10 + 2 later


def test_processed_counts_per_topic_and_partition() -> None:
    m = Metrics()
    for off in range(3):
        m.on_input(ctx(TOPICS.pos_sales, 2, off, "ST-1", 1.0))
    m.on_input(ctx(TOPICS.pos_sales, 0, 0, "ST-2", 1.0))
    name = TOPICS.pos_sales.name
    assert sample(m, "stockroute_messages_processed_total", topic=name, partition="2") == 3
    assert sample(m, "stockroute_messages_processed_total", topic=name, partition="0") == 1


def test_decision_latency_runs_from_the_orders_kafka_timestamp_to_its_first_decision() -> None:
    m = Metrics()
    produced = time.time() - 0.2  # the order was produced 200 ms ago
    m.on_input(ctx(TOPICS.web_orders, 1, 5, "O-1", produced))
    m.on_send(routed("O-1"))
    assert sample(m, "stockroute_routing_decision_latency_seconds_count") == 1
    latency = sample(m, "stockroute_routing_decision_latency_seconds_sum")
    assert 0.2 <= latency < 5.0
    assert sample(m, "stockroute_routing_decisions_total", status="routed") == 1
    # a re-route counts as a decision and a re-route, not as another first-decision latency
    m.on_send(routed("O-1", attempt=2, status="unroutable"))
    assert sample(m, "stockroute_routing_decision_latency_seconds_count") == 1
    assert sample(m, "stockroute_reroutes_total") == 1
    assert sample(m, "stockroute_routing_decisions_total", status="unroutable") == 1
    # a decision for an order this worker did not see placed: counted, no latency
    m.on_send(routed("O-2"))
    assert sample(m, "stockroute_routing_decision_latency_seconds_count") == 1
    assert sample(m, "stockroute_routing_decisions_total", status="routed") == 2


def test_refusals_order_events_and_location_load() -> None:
    m = Metrics()
    answer = dict(order_id="O", reservation_id="R", sku="S", location_id="ST-1", qty=1)
    m.on_send(ReservationResult(ok=True, **answer))
    m.on_send(ReservationResult(ok=False, **answer))
    assert sample(m, "stockroute_reservations_refused_total") == 1
    m.on_send(
        OrderEvent(
            event_id="e",
            order_id="O",
            occurred_at=NOW,
            change="shipment_rejected",
            order_status="rerouting",
        )
    )
    assert sample(m, "stockroute_order_events_total", change="shipment_rejected") == 1
    m.on_send(load("ST-1", 4, 0.4))
    m.on_send(load("ST-1", 3, 0.3))  # the latest record wins
    m.on_send(load("ST-2", 9, 1.2))
    assert sample(m, "stockroute_location_open_orders", location_id="ST-1") == 3
    assert sample(m, "stockroute_location_saturation", location_id="ST-1") == 0.3
    assert sample(m, "stockroute_location_saturation", location_id="ST-2") == 1.2
    assert sample(m, "stockroute_location_backlog_saturation", location_id="ST-2") == 9 / 20


def test_batch_sizes_are_a_histogram_the_loop_can_fill() -> None:
    m = Metrics()
    m.batch_size.observe(40)
    assert sample(m, "stockroute_batch_size_count") == 1
    assert sample(m, "stockroute_batch_size_bucket", le="50.0") == 1
    assert sample(m, "stockroute_batch_size_bucket", le="20.0") == 0


# ---- the runtime wiring --------------------------------------------------------------------


@pytest.fixture
def rt(tmp_path: Path) -> Any:
    from streams.settings import WorkerSettings
    from streams.worker import create_worker

    runtime = create_worker(
        WorkerSettings(app_id="metrics-test", data_dir=tmp_path, store="memory://")
    )
    produced: list[tuple[str, Any]] = []

    async def produce(topic: str, key: Any, value: Any, partition: Any = None) -> Any:
        produced.append((topic, value))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(SimpleNamespace(offset=0))
        return fut

    runtime.produce = produce  # type: ignore[method-assign]
    runtime.produced = produced
    return runtime


def test_the_runtime_counts_what_it_sends_and_dead_letters(rt: Any) -> None:
    async def go() -> None:
        await rt.send(TOPICS.routed_orders, "O-1", routed("O-1"))
        msg = SimpleNamespace(
            topic=TOPICS.returns.name, partition=0, offset=3, key=b"O-1", value=b"{"
        )
        await rt.dead_letter(msg, "malformed JSON: Expecting property name")

    asyncio.run(go())
    m = rt.metrics
    assert sample(m, "stockroute_routing_decisions_total", status="routed") == 1
    assert (
        sample(
            m,
            "stockroute_dead_letters_total",
            source_topic=TOPICS.returns.name,
            reason="malformed JSON",
        )
        == 1
    )
    assert [t for t, _ in rt.produced] == [TOPICS.routed_orders.name, TOPICS.dead_letters.name]


def test_observe_counts_the_input_and_sets_the_log_context(rt: Any) -> None:
    async def go() -> dict[str, Any] | None:
        rt.observe(ctx(TOPICS.fulfilment_events, 3, 11, "O-5", 1.0))
        return logs.current_message()

    seen = asyncio.run(go())
    assert seen == {
        "topic": TOPICS.fulfilment_events.name,
        "partition": 3,
        "offset": 11,
        "order_id": "O-5",
    }
    assert (
        sample(
            rt.metrics,
            "stockroute_messages_processed_total",
            topic=TOPICS.fulfilment_events.name,
            partition="3",
        )
        == 1
    )

    async def stock() -> dict[str, Any] | None:
        rt.observe(ctx(TOPICS.pos_sales, 0, 1, "ST-1", 1.0))
        return logs.current_message()

    assert asyncio.run(stock())["order_id"] is None  # type: ignore[index]


def test_fausts_sensor_and_ours_share_one_registry_and_the_metrics_page(rt: Any) -> None:
    text = generate_latest(rt.metrics.registry).decode()
    assert "stockroute_faust_messages_received_total" in text
    assert "stockroute_routing_decisions_total" in text or "stockroute_routing_decisions" in text
    assert "stockroute_consumer_lag" in text
    # Faust's own Prometheus monitor, its label children cached (faust_fixes)
    assert isinstance(rt.app.monitor, PrometheusMonitor)
    paths = [getattr(route, "resource", None) for route in rt.app.web.web_app.router.routes()]
    assert any(r is not None and r.canonical == "/metrics" for r in paths)


def test_a_rebalance_makes_the_lag_count_from_the_committed_offsets_again(rt: Any) -> None:
    """After partitions are assigned again they restart from their committed offsets: the
    lag must not keep measuring from where this worker last processed (a revoked partition
    processed further by another worker would show a stale lag when it comes back)."""

    async def go() -> None:
        rt.observe(ctx(TOPICS.pos_sales, 0, 41, "ST-1", 1.0))

    asyncio.run(go())
    assert rt.metrics._next == {TP(TOPICS.pos_sales.name, 0): 42}
    rt.forget_positions()
    assert rt.metrics._next == {}
