"""Routing against a real broker: many orders, two workers, scarce stock, never an oversell."""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.integration import probes
from tests.integration.harness import (
    ROOT,
    Cluster,
    iso,
    latest_by_key,
    location,
    messages,
    send,
    wait_for,
)

OPEN = {"routed", "accepted", "picked", "packed", "label_printed", "ready_for_pickup"}

# Customers sit around Paris; the ineligible locations are the nearest and best stocked, so a
# router that ignored the rules would pick them first.
LOCATIONS = [
    location("WH-1", "warehouse", lat=48.60, lon=2.60, safety_stock=0),
    location("ST-1", lat=48.86, lon=2.34, safety_stock=1),
    location("ST-2", lat=48.83, lon=2.37, safety_stock=0),
    location("ST-3", lat=48.90, lon=2.30, safety_stock=2),
    location("ST-4", lat=48.80, lon=2.25, safety_stock=0),
    location("ST-OFF", lat=48.85, lon=2.35, active=False),
    location("ST-NOSHIP", lat=48.85, lon=2.35, ship_from_store=False, click_collect=False),
    location("ST-FULL", lat=48.85, lon=2.35, max_backlog=3),
    # kept out of the flood (which saturates the busy stores) for the single scenarios
    location("ST-R1", lat=48.95, lon=2.45),
    location("ST-R2", lat=48.75, lon=2.25),
]
SPARE = {"ST-R1", "ST-R2"}
INELIGIBLE = {"ST-OFF", "ST-NOSHIP", "ST-FULL"}
SAFETY = {loc["location_id"]: loc["safety_stock"] for loc in LOCATIONS}
SKUS = [f"SKU-{i:02d}" for i in range(30)]


def load_locations(cluster: Cluster, tmp: Path, locations: list[dict[str, Any]]) -> None:
    f = tmp / "locations.json"
    f.write_text(json.dumps(locations))
    cluster.cli("locations", "load", str(f))


def receipt(event_id: str, location_id: str, lines: dict[str, int]) -> tuple[str, str, Any]:
    return (
        "supplier_feeds",
        location_id,
        {
            "event_id": event_id,
            "occurred_at": iso(),
            "type": "receipt",
            "location_id": location_id,
            "lines": [{"sku": s, "qty": q} for s, q in lines.items()],
        },
    )


def tick(event_id: str, at: float, location_id: str = "ST-1") -> tuple[str, str, Any]:
    """An input stamped `at` (a receipt of a SKU no order uses): it moves the worker's network
    clock there, as the inputs of a live network do."""
    return (
        "supplier_feeds",
        location_id,
        {
            "event_id": event_id,
            "occurred_at": iso(at),
            "type": "receipt",
            "location_id": location_id,
            "lines": [{"sku": "CLOCK-TICK", "qty": 1}],
        },
    )


def placed(
    order_id: str,
    lines: dict[str, int],
    *,
    pickup: str | None = None,
    lat: float = 48.85,
    lon: float = 2.35,
) -> tuple[str, str, Any]:
    return (
        "web_orders",
        order_id,
        {
            "event_id": f"place-{order_id}",
            "occurred_at": iso(),
            "type": "order_placed",
            "order_id": order_id,
            "customer": {"lat": lat, "lon": lon},
            "delivery": {"mode": "click_collect", "pickup_location_id": pickup}
            if pickup
            else {"mode": "home"},
            "lines": [{"sku": s, "qty": q, "unit_price": 10.0} for s, q in lines.items()],
            "currency": "EUR",
            "payment": {"method": "card", "reference": f"PAY-{order_id}"},
        },
    )


def fulfilment(order_id: str, sid: str, loc: str, kind: str, **kw: Any) -> tuple[str, str, Any]:
    return (
        "fulfilment_events",
        order_id,
        {
            "event_id": f"{kind}-{sid}-{kw.pop('n', 0)}",
            "occurred_at": iso(),
            "order_id": order_id,
            "shipment_id": sid,
            "location_id": loc,
            "type": kind,
            **kw,
        },
    )


def open_units(cluster: Cluster) -> dict[str, int]:
    """sku@location -> units in shipments still open, from each order's latest order event."""
    held: dict[str, int] = defaultdict(int)
    for ev in latest_by_key(cluster, "order_events").values():
        for s in ev["shipments"]:
            if s["status"] in OPEN:
                for ln in s["lines"]:
                    held[f"{ln['sku']}@{s['location_id']}"] += ln["qty"]
    return dict(held)


def reserved_matches(cluster: Cluster, expected: dict[str, int]) -> bool:
    got = latest_by_key(cluster, "stock_availability")
    keys = set(expected) | {k for k, v in got.items() if v["reserved"]}
    return all(got.get(k, {}).get("reserved", 0) == expected.get(k, 0) for k in keys)


def decisions(cluster: Cluster) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in messages(cluster, "routed_orders"):
        out[m["order_id"]].append(m)
    return out


def test_two_thousand_competing_orders_on_two_workers_never_oversell(
    cluster: Cluster, tmp_path: Path
) -> None:
    rnd = random.Random(7)
    load_locations(cluster, tmp_path, LOCATIONS)
    cluster.worker().start()
    cluster.worker().start()
    for w in cluster.workers:
        w.wait_healthy()

    # scarce stock: each SKU at 4 of the locations, the ineligible ones best stocked
    receipts: dict[str, int] = defaultdict(int)
    feed = []
    for i, sku in enumerate(SKUS):
        holders = rnd.sample(
            [x["location_id"] for x in LOCATIONS if x["location_id"] not in SPARE], 4
        )
        for loc_id in holders:
            qty = rnd.randint(20, 40) if loc_id in INELIGIBLE else rnd.randint(15, 40)
            receipts[f"{sku}@{loc_id}"] += qty
            feed.append(receipt(f"rc-{i}-{loc_id}", loc_id, {sku: qty}))
    for sku in SKUS[:2]:  # the click & collect stores hold a little of everything early on
        for loc_id in ("ST-1", "ST-2"):
            receipts[f"{sku}@{loc_id}"] += 3
            feed.append(receipt(f"cc-{sku}-{loc_id}", loc_id, {sku: 3}))
    send(cluster, feed)
    # ST-FULL is at its max_backlog before any order arrives
    now = time.time()
    preload = [
        {
            "kind": "open",
            "location_id": "ST-FULL",
            "shipment_id": f"PRE-{i}",
            "units": 1,
            "step": None,
            "seconds": 0.0,
            "at": now,
            "origin": "test:0",
            "seq": i,
        }
        for i in range(3)
    ]
    send(cluster, [("location_ops", "ST-FULL", op) for op in preload])
    wait_for(
        lambda: (
            len(latest_by_key(cluster, "stock_availability")) == len(receipts)
            and latest_by_key(cluster, "store_load").get("ST-FULL", {}).get("open_orders") == 3
        ),
        timeout=60,
        what="receipts and the ST-FULL preload to show",
    )
    probes.wait_views(cluster)  # routing reads the workers' views of these topics

    orders: dict[str, dict[str, Any]] = {}
    batch = []
    for i in range(2000):
        oid = f"O-{i:05d}"
        lines = {s: rnd.randint(1, 2) for s in rnd.sample(SKUS, rnd.randint(1, 3))}
        pickup = rnd.choice(["ST-1", "ST-2"]) if i % 8 == 0 else None
        lat, lon = 48.85 + rnd.uniform(-0.3, 0.3), 2.35 + rnd.uniform(-0.4, 0.4)
        msg = placed(oid, lines, pickup=pickup, lat=lat, lon=lon)
        orders[oid] = msg[2]
        batch.append(msg)
    started = time.time()
    send(cluster, batch)
    wait_for(
        lambda: set(decisions(cluster)) >= set(orders),
        timeout=180,
        interval=2.0,
        what="a decision for every order",
    )
    elapsed = time.time() - started

    decided = decisions(cluster)
    assert set(decided) == set(orders)
    counts = Counter(len(v) for v in decided.values())
    assert counts == {1: len(orders)}, f"orders with several decisions: {counts}"
    statuses = Counter(v[-1]["status"] for v in decided.values())
    assert statuses["routed"] > 100 and statuses["unroutable"] > 100, statuses
    for oid, (d,) in decided.items():
        delivery = orders[oid]["delivery"]
        for s in d["shipments"]:
            assert s["location_id"] not in INELIGIBLE, (oid, s)
            if delivery["mode"] == "click_collect":
                assert s["mode"] in ("click_collect", "transfer_to_store"), (oid, s)
                assert (s["mode"] == "click_collect") == (
                    s["location_id"] == delivery["pickup_location_id"]
                ), (oid, s)
            else:
                assert s["mode"] not in ("click_collect", "transfer_to_store"), (oid, s)
        if d["status"] == "routed":
            shipped = Counter[str]()
            for s in d["shipments"]:
                for ln in s["lines"]:
                    shipped[ln["sku"]] += ln["qty"]
            assert dict(shipped) == {ln["sku"]: ln["qty"] for ln in orders[oid]["lines"]}

    # the oracle: open shipments never exceed what was received minus safety stock, and the
    # stock table holds exactly those reservations
    held = wait_for(lambda: open_units(cluster), timeout=30, what="order events")
    for key, units in held.items():
        sku, loc_id = key.split("@")
        assert units <= receipts.get(key, 0) - SAFETY[loc_id], (key, units, receipts.get(key))
    wait_for(
        lambda: reserved_matches(cluster, open_units(cluster)),
        timeout=60,
        what="stock-availability reserved to equal the open shipments",
    )
    by_loc = Counter[str]()
    for d in decided.values():
        for s in d[-1]["shipments"]:
            by_loc[s["location_id"]] += 1
    wait_for(
        lambda: all(
            latest_by_key(cluster, "store_load").get(loc_id, {}).get("open_orders") == n
            for loc_id, n in by_loc.items()
        ),
        timeout=60,
        what="store-load to count the open shipments",
    )
    assert messages(cluster, "dead_letters") == []
    print(f"routed {len(orders)} orders in {elapsed:.1f}s: {dict(statuses)}")

    # stores reject 60 routed orders at once: each is decided again, never back to the store
    rejected = {
        oid: d[0]["shipments"][0]
        for oid, d in sorted(decided.items())
        if d[0]["status"] == "routed"
    }
    rejected = dict(list(rejected.items())[:60])
    send(
        cluster,
        [
            fulfilment(oid, s["shipment_id"], s["location_id"], "rejected", reason="no staff")
            for oid, s in rejected.items()
        ],
    )

    def redecided() -> dict[str, dict[str, Any]] | None:
        latest = latest_by_key(cluster, "routed_orders")
        ok = all(latest[oid]["attempt"] == 2 for oid in rejected)
        return latest if ok else None

    latest = wait_for(redecided, timeout=60, what="the rejected orders decided again")
    for oid, s in rejected.items():
        again = latest[oid]
        assert again["status"] in ("routed", "unroutable")
        assert s["location_id"] in again["reasons"]["excluded"]
        assert s["shipment_id"] not in {x["shipment_id"] for x in again["shipments"]}
        new = set(again["reasons"]["new_shipments"])
        assert all(
            x["location_id"] != s["location_id"]
            for x in again["shipments"]
            if x["shipment_id"] in new
        )
    held = open_units(cluster)
    for key, units in held.items():
        assert units <= receipts.get(key, 0) - SAFETY[key.split("@")[1]], (key, units)
    wait_for(
        lambda: reserved_matches(cluster, open_units(cluster)),
        timeout=60,
        what="reservations to follow the re-routes",
    )

    # a rejection re-routes elsewhere and releases; a cancellation releases
    send(
        cluster,
        [
            receipt("rr-1", "ST-R1", {"RR-1": 10}),
            receipt("rr-2", "ST-R2", {"RR-1": 10}),
            receipt("cx-1", "ST-R1", {"CX-1": 10}),
        ],
    )
    wait_for(
        lambda: (
            {"RR-1@ST-R1", "RR-1@ST-R2", "CX-1@ST-R1"}
            <= set(latest_by_key(cluster, "stock_availability"))
        ),
        what="receipts",
    )
    probes.wait_views(cluster)
    send(cluster, [placed("R-1", {"RR-1": 2}), placed("C-1", {"CX-1": 3})])
    first = wait_for(lambda: latest_by_key(cluster, "routed_orders").get("R-1"), what="R-1 routed")
    (s1,) = first["shipments"]
    other = "ST-R2" if s1["location_id"] == "ST-R1" else "ST-R1"
    send(cluster, [fulfilment("R-1", s1["shipment_id"], s1["location_id"], "rejected")])
    second = wait_for(
        lambda: (
            (d := latest_by_key(cluster, "routed_orders").get("R-1")) and d["attempt"] == 2 and d
        ),
        what="R-1 re-routed",
    )
    assert [s["location_id"] for s in second["shipments"]] == [other]
    assert s1["location_id"] in second["reasons"]["excluded"]

    wait_for(lambda: latest_by_key(cluster, "routed_orders").get("C-1"), what="C-1 routed")
    wait_for(
        lambda: latest_by_key(cluster, "stock_availability")["CX-1@ST-R1"]["reserved"] == 3,
        what="C-1 reserved",
    )
    send(
        cluster,
        [
            (
                "web_orders",
                "C-1",
                {
                    "event_id": "cancel-C-1",
                    "occurred_at": iso(),
                    "type": "order_cancelled",
                    "order_id": "C-1",
                },
            )
        ],
    )

    def released() -> bool:
        sa = latest_by_key(cluster, "stock_availability")
        return (
            sa[f"RR-1@{s1['location_id']}"]["reserved"] == 0
            and sa[f"RR-1@{other}"]["reserved"] == 2
            and sa["CX-1@ST-R1"]["reserved"] == 0
            and sa["CX-1@ST-R1"]["available"] == 10
        )

    wait_for(released, what="the rejected and the cancelled shipments to be released")
    events = latest_by_key(cluster, "order_events")
    assert events["C-1"]["order_status"] == "cancelled"
    assert reserved_matches(cluster, open_units(cluster))


def test_an_acceptance_timeout_reroutes_and_releases(tmp_path: Path) -> None:
    policy = tmp_path / "routing.yaml"
    text = (ROOT / "policy" / "routing.yaml").read_text()
    policy.write_text(text.replace("acceptance_timeout_s: 900.0", "acceptance_timeout_s: 3.0"))
    cluster = Cluster(tmp_path, policy=policy)
    cluster.create_topics()
    try:
        load_locations(
            cluster,
            tmp_path,
            [location("ST-1", lat=48.86, lon=2.34), location("ST-2", lat=48.70, lon=2.20)],
        )
        cluster.worker().start()
        send(
            cluster,
            [receipt("a", "ST-1", {"TT-1": 5}), receipt("b", "ST-2", {"TT-1": 5})],
        )
        wait_for(lambda: len(latest_by_key(cluster, "stock_availability")) == 2, what="receipts")
        probes.wait_views(cluster)
        send(cluster, [placed("T-1", {"TT-1": 2})])
        first = wait_for(
            lambda: latest_by_key(cluster, "routed_orders").get("T-1"), what="T-1 routed"
        )
        assert [s["location_id"] for s in first["shipments"]] == ["ST-1"]
        # deadlines run on the network clock: an input stamped past the deadline moves it
        due1 = datetime.fromisoformat(first["shipments"][0]["accept_by"]).timestamp()
        send(cluster, [tick("t1", due1 + 1)])
        second = wait_for(
            lambda: (
                (d := latest_by_key(cluster, "routed_orders").get("T-1"))
                and d["attempt"] == 2
                and d
            ),
            timeout=30,
            what="T-1 re-routed after the timeout",
        )
        (s2,) = second["shipments"]
        assert s2["location_id"] == "ST-2"
        send(cluster, [fulfilment("T-1", s2["shipment_id"], "ST-2", "accepted")])
        wait_for(
            lambda: (
                (sa := latest_by_key(cluster, "stock_availability"))["TT-1@ST-1"]["reserved"] == 0
                and sa["TT-1@ST-2"]["reserved"] == 2
            ),
            what="ST-1 released, ST-2 reserved",
        )
        events = [m for m in messages(cluster, "order_events") if m["order_id"] == "T-1"]
        rejected = [e for e in events if e["change"] == "shipment_rejected"]
        assert rejected and rejected[0]["detail"]["reason"] == "acceptance timeout"
        wait_for(
            lambda: any(
                s["shipment_id"] == s2["shipment_id"] and s["status"] == "accepted"
                for s in latest_by_key(cluster, "order_events")["T-1"]["shipments"]
            ),
            what="the acceptance applied",
        )
        # accepted in time: no further re-route, with the clock past the deadline and timer
        # ticks after it
        due2 = datetime.fromisoformat(s2["accept_by"]).timestamp()
        send(cluster, [tick("t2", due2 + 1)])
        probes.holds_for(
            lambda: (
                latest_by_key(cluster, "routed_orders")["T-1"]["attempt"] == 2
                and latest_by_key(cluster, "stock_availability")["TT-1@ST-2"]["reserved"] == 2
            ),
            seconds=3.0,
            what="no re-route after an acceptance in time",
        )
    finally:
        cluster.stop()
