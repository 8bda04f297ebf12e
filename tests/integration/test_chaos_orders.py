"""Orders under chaos: SIGKILL the worker three times while orders and stock stream in.

Each kill must hit the running worker process while input is in flight, and a new process
must take over (test_chaos.sigkill_mid_stream). At the end no order is lost (each has a
decision), none is routed twice to conflicting places (a shipment id always names one
location), and no reservation leaks: for every sku@location, reserved units equal the units of
the open shipments, never above what was received."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.integration.harness import Cluster, latest_by_key, location, messages, wait_for
from tests.integration.test_chaos import Streamer, sigkill_mid_stream
from tests.integration.test_routing import load_locations, placed, receipt

LOCATIONS = [
    location("WH-1", "warehouse", lat=48.60, lon=2.60),
    location("ST-1", lat=48.86, lon=2.34, capacity_per_hour=500, max_backlog=5000),
    location("ST-2", lat=48.83, lon=2.37, capacity_per_hour=500, max_backlog=5000),
]
SKUS = [f"SKU-{i:02d}" for i in range(20)]


def workload(n_orders: int, seed: int) -> tuple[list[Any], dict[str, int]]:
    rnd = random.Random(seed)
    received: dict[str, int] = defaultdict(int)
    stock: list[Any] = []
    for loc in LOCATIONS:
        lines = {sku: rnd.randint(5, 25) for sku in SKUS}
        for sku, qty in lines.items():
            received[f"{sku}@{loc['location_id']}"] += qty
        stock.append(receipt(f"rc-{loc['location_id']}", loc["location_id"], lines))
    orders = [
        placed(
            f"O-{i:04d}", {sku: rnd.randint(1, 2) for sku in rnd.sample(SKUS, rnd.randint(1, 2))}
        )
        for i in range(n_orders)
    ]
    return stock + orders, dict(received)


def settled(cluster: Cluster, order_ids: set[str]) -> bool:
    latest = latest_by_key(cluster, "routed_orders")
    missing = order_ids - set(latest)
    if missing:
        return False
    held: dict[str, int] = defaultdict(int)
    for d in latest.values():
        for s in d["shipments"]:
            for ln in s["lines"]:
                held[f"{ln['sku']}@{s['location_id']}"] += ln["qty"]
    avail = latest_by_key(cluster, "stock_availability")
    keys = set(held) | {k for k, v in avail.items() if v["reserved"]}
    return all(avail.get(k, {}).get("reserved", 0) == held.get(k, 0) for k in keys)


def test_orders_survive_three_sigkills_without_loss_conflict_or_leak(
    cluster: Cluster, tmp_path: Path
) -> None:
    load_locations(cluster, tmp_path, LOCATIONS)
    worker = cluster.worker().start()
    events, received = workload(900, seed=5)
    quarter = len(events) // 4  # a portion per incarnation: ~11 chunks, several seconds
    streamer = Streamer(
        cluster, events, chunk=20, pause=0.2, holds=(quarter, 2 * quarter, 3 * quarter)
    ).start()
    sigkill_mid_stream(worker, streamer, ("supplier_feeds", "web_orders"), random.Random(11))
    streamer.join()
    order_ids = {e[1] for e in events if e[0] == "web_orders"}
    wait_for(
        lambda: settled(cluster, order_ids),
        timeout=240,
        what="a decision for every order and reserved == open shipments",
    )
    # no conflicting routing: a shipment id names one location and one set of lines, always
    seen: dict[str, tuple[str, str]] = {}
    for d in messages(cluster, "routed_orders"):
        for s in d["shipments"]:
            lines = repr(sorted((ln["sku"], ln["qty"]) for ln in s["lines"]))
            assert seen.setdefault(s["shipment_id"], (s["location_id"], lines)) == (
                s["location_id"],
                lines,
            ), s["shipment_id"]
    # never more reserved than received at any key
    for key, rec in latest_by_key(cluster, "stock_availability").items():
        assert rec["reserved"] <= received.get(key, 0), key
        assert rec["on_hand"] == received.get(key, 0), key  # nothing shipped in this test
    latest = latest_by_key(cluster, "routed_orders")
    assert sum(1 for d in latest.values() if d["status"] == "routed") > len(order_ids) // 3
