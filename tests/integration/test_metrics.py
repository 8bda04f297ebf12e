"""`GET /metrics` on a real worker: the counters move with this test's own events, and the
worker's JSON log stays quiet (no WARNING/ERROR of a normal start and stop) while its
dead-letter warnings name the message they are about."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import Cluster, iso, latest_by_key, location, send, wait_for

LOCATIONS = [
    location("ST-1", lat=48.86, lon=2.34, max_backlog=40),
    location("ST-2", lat=48.70, lon=2.10, max_backlog=40),
]


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """sample name -> [(labels, value)] of one scrape (Prometheus text format); each family
    also as `family:<name>`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        out.setdefault(f"family:{family.name}", [])  # declared, maybe without samples yet
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(metrics: dict[str, Any], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    return sum(
        v for lab, v in metrics.get(name, []) if all(lab.get(k) == x for k, x in labels.items())
    )


def placed(order_id: str, sku: str, qty: int = 1) -> tuple[str, str, Any]:
    return (
        "web_orders",
        order_id,
        {
            "event_id": f"place-{order_id}",
            "occurred_at": iso(),
            "type": "order_placed",
            "order_id": order_id,
            "customer": {"lat": 48.85, "lon": 2.35},
            "delivery": {"mode": "home"},
            "lines": [{"sku": sku, "qty": qty, "unit_price": 5.0}],
            "currency": "EUR",
            "payment": {"method": "card", "reference": f"PAY-{order_id}"},
        },
    )


def log_records(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return records


def loud(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["level"] in ("WARNING", "ERROR", "CRITICAL")]


def test_metrics_move_with_the_test_events_and_logs_are_json(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.env["STOCKROUTE_LOG_FORMAT"] = "json"
    f = tmp_path / "locations.json"
    f.write_text(json.dumps(LOCATIONS))
    cluster.cli("locations", "load", str(f))
    w = cluster.worker().start()

    before = scrape(w.port)
    # Faust's own sensor and ours, in one scrape
    assert "stockroute_faust_messages_received_total" in before
    for family in (
        "messages_processed",
        "consumer_lag",
        "dead_letters",
        "routing_decisions",
        "routing_decision_latency_seconds",
        "reservations_refused",
        "reroutes",
        "order_events",
        "location_open_orders",
        "location_saturation",
        "batch_size",
    ):
        assert f"family:stockroute_{family}" in before, family
    assert value(before, "stockroute_routing_decisions_total") == 0
    # a normal start: nothing at WARNING or above in the worker's log
    assert loud(log_records(w.log)) == []

    stock = [
        (
            "supplier_feeds",
            loc,
            {
                "event_id": f"r-{loc}",
                "occurred_at": iso(),
                "type": "receipt",
                "location_id": loc,
                "lines": [{"sku": "M-1", "qty": 3}],
            },
        )
        for loc in ("ST-1", "ST-2")
    ]
    send(cluster, stock)
    wait_for(lambda: len(latest_by_key(cluster, "stock_availability")) == 2, what="stock folded")
    orders = [placed("MO-1", "M-1"), placed("MO-2", "M-1"), placed("MO-U", "NO-SUCH-SKU")]
    bad = [
        ("web_orders", "MO-B1", b"{not json"),
        ("web_orders", "MO-B2", {"event_id": "x", "type": "order_placed"}),
        (
            "fulfilment_events",
            "MO-1",
            {
                "event_id": "f-bad",
                "occurred_at": iso(),
                "order_id": "MO-1",
                "shipment_id": "MO-1-S1",
                "location_id": "NOWHERE-9",
                "type": "accepted",
            },
        ),
    ]
    send(cluster, orders + bad)

    def decided() -> dict[str, Any] | None:
        m = scrape(w.port)
        ok = (
            value(m, "stockroute_routing_decisions_total", status="routed") >= 2
            and value(m, "stockroute_routing_decisions_total", status="unroutable") >= 1
            and value(m, "stockroute_dead_letters_total") >= 3
        )
        return m if ok else None

    m = wait_for(decided, timeout=60, what="3 decisions and 3 dead letters in /metrics")
    assert value(m, "stockroute_routing_decisions_total", status="routed") == 2
    assert value(m, "stockroute_routing_decisions_total", status="unroutable") == 1
    web = cluster.name("web_orders")
    assert value(m, "stockroute_messages_processed_total", topic=web) == 5
    assert (
        value(m, "stockroute_messages_processed_total", topic=cluster.name("supplier_feeds")) == 2
    )
    # every first decision has its latency from the order's Kafka timestamp
    assert value(m, "stockroute_routing_decision_latency_seconds_count") == 3
    assert 0 < value(m, "stockroute_routing_decision_latency_seconds_sum") < 60
    dl = "stockroute_dead_letters_total"
    assert value(m, dl, source_topic=web, reason="malformed JSON") == 1
    assert value(m, dl, source_topic=web, reason="invalid WebOrder") == 1
    fe = cluster.name("fulfilment_events")
    assert value(m, dl, source_topic=fe, reason="unknown location_id") == 1
    assert value(m, "stockroute_order_events_total", change="routed") >= 2

    # the store-load records of the routed orders: one open order at each location or two at one
    def loads() -> dict[str, Any] | None:
        m = scrape(w.port)
        total = value(m, "stockroute_location_open_orders")
        return m if total == 2 else None

    m = wait_for(loads, timeout=30, what="open orders per location")
    by_loc = {lab["location_id"]: v for lab, v in m["stockroute_location_open_orders"]}
    assert set(by_loc) <= {"ST-1", "ST-2"} and sum(by_loc.values()) == 2
    assert all(
        v > 0 for lab, v in m["stockroute_location_saturation"] if by_loc.get(lab["location_id"])
    )

    # a store rejects MO-1: a re-route and a shipment_rejected order event
    routed = latest_by_key(cluster, "routed_orders")["MO-1"]["shipments"][0]
    send(
        cluster,
        [
            (
                "fulfilment_events",
                "MO-1",
                {
                    "event_id": "f-rej",
                    "occurred_at": iso(),
                    "order_id": "MO-1",
                    "shipment_id": routed["shipment_id"],
                    "location_id": routed["location_id"],
                    "type": "rejected",
                    "reason": "no staff",
                },
            )
        ],
    )
    m = wait_for(
        lambda: (lambda m: m if value(m, "stockroute_reroutes_total") >= 1 else None)(
            scrape(w.port)
        ),
        timeout=60,
        what="a re-route in /metrics",
    )
    assert value(m, "stockroute_reroutes_total") == 1
    assert value(m, "stockroute_order_events_total", change="shipment_rejected") == 1
    assert value(m, "stockroute_routing_decisions_total") == 4
    # a re-route is not a first decision: the latency histogram did not move
    assert value(m, "stockroute_routing_decision_latency_seconds_count") == 3

    # lag: every assigned input partition reported, drained to 0 now that nothing is sent
    def drained() -> dict[str, Any] | None:
        m = scrape(w.port)
        lags = [(lab, v) for lab, v in m.get("stockroute_consumer_lag", [])]
        web_lags = [v for lab, v in lags if lab["topic"] == web]
        return m if len(web_lags) == 4 and all(v == 0 for v in web_lags) else None

    wait_for(drained, timeout=30, what="web-orders lag reported and 0 on every partition")

    w.stop()
    records = log_records(w.log)
    warnings = loud(records)
    # the only warnings are the three dead letters, each naming its message
    assert len(warnings) == 3, warnings
    for r in warnings:
        assert r["message"].startswith("dead-letter"), r
        assert r["topic"] in (web, fe) and isinstance(r["offset"], int), r
        assert {"timestamp", "level", "logger", "partition"} <= set(r), r
    assert {r.get("order_id") for r in warnings} == {"MO-B1", "MO-B2", "MO-1"}
