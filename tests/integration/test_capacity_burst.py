"""Store capacity holds at the peak: a burst of orders, two workers, one SIGKILLed mid-burst.

Each location's owner grants max_backlog slots and no more, whatever the lagging store-load view
says and whichever worker routed the order. Checked from the published decisions against an
oracle built from this test's own events: no shipment is ever accepted, shipped or rejected
here, so every routed shipment is still open, and per location they must not exceed its
max_backlog; reserved units must not exceed what was received (no oversell).
"""

from __future__ import annotations

import json
import random
import signal
import urllib.request
from collections import Counter
from pathlib import Path

from tests.integration.harness import Cluster, latest_by_key, location, send, wait_for
from tests.integration.test_routing import decisions, load_locations, placed, receipt

STORES = {"ST-A": 3, "ST-B": 5, "ST-C": 8, "ST-D": 4, "ST-E": 2, "ST-F": 6}
LOCATIONS = [
    location(sid, lat=48.80 + 0.02 * i, lon=2.30 + 0.02 * i, safety_stock=0, max_backlog=cap)
    for i, (sid, cap) in enumerate(STORES.items())
]
SKUS = [f"SKU-{i}" for i in range(4)]
ORDERS = 2000


def assigned(port: int) -> list[str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return list(json.loads(r.read())["assigned"])
    except Exception:  # noqa: BLE001 - 503 while starting carries the same body
        return []


def test_a_burst_never_puts_more_open_shipments_at_a_location_than_its_max_backlog(
    cluster: Cluster, tmp_path: Path
) -> None:
    rnd = random.Random(13)
    load_locations(cluster, tmp_path, LOCATIONS)
    first = cluster.worker().start()
    second = cluster.worker().start(timeout=120)
    wait_for(
        lambda: assigned(first.port) and assigned(second.port),
        timeout=120,
        what="both workers owning partitions",
    )
    received = {f"{sku}@{loc}": 100 for sku in SKUS for loc in STORES}
    send(
        cluster,
        [receipt(f"rc-{loc}", loc, {sku: 100 for sku in SKUS}) for loc in STORES],
    )
    wait_for(
        lambda: len(latest_by_key(cluster, "stock_availability")) == len(received),
        timeout=60,
        what="the receipts folded",
    )
    wait_for(lambda: first.healthy() and second.healthy(), timeout=60, what="views caught up")

    orders = {}
    burst = []
    for i in range(ORDERS):
        oid = f"B-{i:05d}"
        lines = {s: 1 for s in rnd.sample(SKUS, rnd.randint(1, 2))}
        msg = placed(oid, lines, lat=48.85 + rnd.uniform(-0.1, 0.1), lon=2.35)
        orders[oid] = msg[2]
        burst.append(msg)
    send(cluster, burst[: ORDERS // 2])
    # the kill lands with part of the burst decided and part still in flight
    decided_at_kill = wait_for(
        lambda: (n := len(decisions(cluster))) >= 50 and n,
        timeout=120,
        what="the first decisions",
    )
    owned_at_kill = assigned(second.port)
    second.kill(signal.SIGKILL)
    send(cluster, burst[ORDERS // 2 :])
    assert owned_at_kill, "the killed worker owned no partition"
    assert decided_at_kill < ORDERS, "nothing was in flight at the kill"
    second.start(timeout=120)

    wait_for(
        lambda: set(decisions(cluster)) >= set(orders),
        timeout=300,
        what="a decision for every order of the burst",
    )
    latest = {oid: ds[-1] for oid, ds in decisions(cluster).items() if oid in orders}
    open_at: Counter[str] = Counter()
    reserved: Counter[str] = Counter()
    for d in latest.values():
        for s in d["shipments"]:
            open_at[s["location_id"]] += 1
            for ln in s["lines"]:
                reserved[f"{ln['sku']}@{s['location_id']}"] += ln["qty"]
    over = {loc: n for loc, n in open_at.items() if n > STORES[loc]}
    assert not over, f"locations over max_backlog: {over}"
    assert sum(open_at.values()) == sum(STORES.values())  # every slot taken, none twice
    assert all(reserved[k] <= received[k] for k in reserved)
    unroutable = [d for d in latest.values() if d["status"] == "unroutable"]
    assert len(unroutable) == ORDERS - sum(STORES.values())
    wait_for(
        lambda: all(
            latest_by_key(cluster, "store_load").get(loc, {}).get("open_orders") == cap
            for loc, cap in STORES.items()
        ),
        timeout=60,
        what="store-load showing every store exactly full",
    )
