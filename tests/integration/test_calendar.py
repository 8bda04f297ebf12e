"""Calendars and the network clock against a real broker.

An order placed at night for a SKU only a closed store holds goes to that store and stays there
through the night: its acceptance time-out counts the store's preparation hours, so it is due at
opening + time-out. The night is simulated by inputs stamped with later `occurred_at` (the
network clock), never by sleeping. Bad calendars are refused by `stockroute locations load` and
dead-lettered on the topic.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.integration import probes
from tests.integration.harness import (
    ROOT,
    Cluster,
    latest_by_key,
    location,
    messages,
    send,
    wait_for,
)

PARIS = ZoneInfo("Europe/Paris")
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CALENDAR = {
    "tz": "Europe/Paris",
    "opening": {d: ["09:00-20:00"] for d in WEEK},
    "preparation": {d: ["09:00-19:00"] for d in WEEK},
}
EVENING = datetime(2026, 12, 1, 21, 0, tzinfo=PARIS)  # a Tuesday
NIGHT = datetime(2026, 12, 1, 22, 0, tzinfo=PARIS)
OPENS = datetime(2026, 12, 2, 9, 0, tzinfo=PARIS)
TIMEOUT = timedelta(seconds=900)  # policy/routing.yaml acceptance_timeout_s


def at(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def feed(event_id: str, t: datetime, location_id: str, sku: str, qty: int) -> tuple[str, str, Any]:
    return (
        "supplier_feeds",
        location_id,
        {
            "event_id": event_id,
            "occurred_at": at(t),
            "type": "receipt",
            "location_id": location_id,
            "lines": [{"sku": sku, "qty": qty}],
        },
    )


def tick(n: int, t: datetime) -> tuple[str, str, Any]:
    """An input stamped `t` (a receipt at the warehouse): the network clock moves to `t`."""
    return feed(f"tick-{n}", t, "WH-1", "CLOCK", 1)


def placed(order_id: str, t: datetime) -> tuple[str, str, Any]:
    return (
        "web_orders",
        order_id,
        {
            "event_id": f"place-{order_id}",
            "occurred_at": at(t),
            "type": "order_placed",
            "order_id": order_id,
            "customer": {"lat": 48.85, "lon": 2.35},
            "delivery": {"mode": "home"},
            "lines": [{"sku": "STORE-ONLY", "qty": 1, "unit_price": 10.0}],
            "currency": "EUR",
            "payment": {"method": "card", "reference": f"PAY-{order_id}"},
        },
    )


def accepted(order_id: str, sid: str, t: datetime) -> tuple[str, str, Any]:
    return (
        "fulfilment_events",
        order_id,
        {
            "event_id": f"accepted-{sid}",
            "occurred_at": at(t),
            "order_id": order_id,
            "shipment_id": sid,
            "location_id": "ST-N",
            "type": "accepted",
        },
    )


def load(cluster: Cluster, tmp: Path, rows: list[Any], check: bool = True) -> Any:
    f = tmp / "locations.json"
    f.write_text(json.dumps(rows))
    return cluster.cli("locations", "load", str(f), check=check)


def test_a_night_order_waits_for_the_store_to_open_then_times_out_on_its_hours(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path)
    cluster.create_topics()
    try:
        load(
            cluster,
            tmp_path,
            [
                location("ST-N", lat=48.86, lon=2.34, calendar=CALENDAR),
                location("WH-1", "warehouse", lat=48.60, lon=2.60),  # 24/7, without the SKU
            ],
        )
        worker = cluster.worker().start()
        send(cluster, [feed("stock", EVENING, "ST-N", "STORE-ONLY", 5)])
        wait_for(
            lambda: "STORE-ONLY@ST-N" in latest_by_key(cluster, "stock_availability"),
            what="the store's stock",
        )
        probes.wait_views(cluster)
        send(cluster, [placed("N-1", NIGHT), placed("N-2", NIGHT + timedelta(minutes=1))])

        def decision(order_id: str) -> Any:
            return latest_by_key(cluster, "routed_orders").get(order_id)

        first = {o: wait_for(lambda o=o: decision(o), what=f"{o} routed") for o in ("N-1", "N-2")}
        due = OPENS + TIMEOUT
        for d in first.values():
            (s,) = d["shipments"]
            assert s["location_id"] == "ST-N" and d["attempt"] == 1
            assert datetime.fromisoformat(s["accept_by"]) == due  # 09:15, not 22:15
            assert datetime.fromisoformat(d["decided_at"]) >= NIGHT  # network, not wall, time

        # the night passes (inputs stamped through it), and a restart on the way: no bounce
        send(cluster, [tick(1, NIGHT + timedelta(hours=1)), tick(2, NIGHT + timedelta(hours=5))])
        worker.stop()
        worker.start()
        send(cluster, [tick(3, due - timedelta(minutes=2))])
        n1 = first["N-1"]["shipments"][0]["shipment_id"]
        n2 = first["N-2"]["shipments"][0]["shipment_id"]
        send(cluster, [accepted("N-2", n2, OPENS + timedelta(minutes=5))])
        wait_for(
            lambda: any(
                s["status"] == "accepted"
                for s in latest_by_key(cluster, "order_events")["N-2"]["shipments"]
            ),
            what="N-2 accepted after opening",
        )
        probes.holds_for(
            lambda: decision("N-1")["attempt"] == 1,
            seconds=3.0,
            what="N-1 still waiting at the closed store, before its due time",
        )

        # past 09:15: N-1 times out (once), N-2 (accepted) stays
        send(cluster, [tick(4, due + timedelta(minutes=1))])
        wait_for(lambda: decision("N-1")["attempt"] == 2, what="N-1 timed out after 09:15")
        probes.holds_for(
            lambda: decision("N-1")["attempt"] == 2 and decision("N-2")["attempt"] == 1,
            seconds=3.0,
            what="one time-out, and none for the accepted order",
        )
        rejected = [
            e
            for e in messages(cluster, "order_events")
            if e["change"] == "shipment_rejected" and e.get("shipment_id") == n1
        ]
        assert len(rejected) == 1 and rejected[0]["detail"]["reason"] == "acceptance timeout"
        assert datetime.fromisoformat(rejected[0]["occurred_at"]) >= due
    finally:
        cluster.stop()


def test_bad_calendars_are_refused_by_the_cli_and_dead_lettered_on_the_topic(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path)
    cluster.create_topics()
    try:
        bad = [
            location(
                "ST-1", calendar={"tz": "Europe/Nowhere", "opening": {"mon": ["09:00-18:00"]}}
            ),
            location("ST-2", calendar={"tz": "UTC", "opening": {"mon": ["18:00-09:00"]}}),
            location(
                "ST-3",
                calendar={"tz": "UTC", "preparation": {"fri": ["09:00-13:00", "12:00-14:00"]}},
            ),
        ]
        done = load(cluster, tmp_path, [location("ST-0"), *bad], check=False)
        assert done.returncode == 2
        err = done.stderr
        assert "location #1: calendar" in err and "unknown time zone 'Europe/Nowhere'" in err
        assert "location #2" in err and "opening.mon: 18:00-09:00: end is not after start" in err
        assert "location #3" in err and "preparation.fri: intervals 09:00-13:00" in err
        assert "3 of 4 locations are invalid; nothing was published" in err
        assert messages(cluster, "locations") == []

        cluster.worker().start()
        send(cluster, [("locations", row["location_id"], row) for row in bad])
        dead = wait_for(
            lambda: len(d := messages(cluster, "dead_letters")) == 3 and d, what="3 dead letters"
        )
        by_key = {d["_key"]: d for d in dead}
        assert "unknown time zone 'Europe/Nowhere'" in by_key["ST-1"]["error"]
        assert "end is not after start" in by_key["ST-2"]["error"]
        assert "overlap" in by_key["ST-3"]["error"]
        assert all(d["source_topic"] == cluster.name("locations") for d in dead)
        assert json.loads(by_key["ST-2"]["raw"]) == bad[1]
    finally:
        cluster.stop()


def test_the_network_clock_follows_the_simulator_at_60x(tmp_path: Path) -> None:
    """The simulator stamps simulated time: run at 60x for 6 simulated minutes, the worker's
    network clock (/health) moves by those 6 minutes, in about 6 wall seconds (no less: the
    simulator cannot run faster than asked; a loaded machine may slow it, never the clock)."""
    cluster = Cluster(tmp_path)
    cluster.create_topics()
    try:
        worker = cluster.worker().start()
        # later than the default start (today 08:00), so the second run resumes from it
        start = (datetime.now(PARIS) + timedelta(days=2)).replace(
            hour=21, minute=0, second=0, microsecond=0
        )
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", "simulate", "--speed", "60",
             "--duration", "0.1", "--start", start.isoformat(), "--stores", "4",
             "--warehouses", "1", "--suppliers", "1", "--skus", "20",
             "--web-orders-per-hour", "1200", "--stock-wait", "0", "--seed", "5"],
            env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        wall = time.monotonic() - began
        assert done.returncode == 0, done.stderr
        end = start + timedelta(minutes=6)

        def network_time() -> datetime | None:
            doc = probes.health(worker) or {}
            t = doc.get("network_time")
            return datetime.fromisoformat(t) if t else None

        reached = wait_for(
            lambda: (t := network_time()) is not None and t >= end - timedelta(minutes=1) and t,
            what="the worker's network clock near the simulator's end",
        )
        assert reached <= end + timedelta(seconds=1)  # simulated time, not the wall clock
        assert wall >= 6 * 0.9  # 6 simulated minutes took at least 6 wall seconds at 60x

        # a second run without --start goes on from the network clock (store-load)
        again = subprocess.run(
            [sys.executable, "-m", "streams.cli", "simulate", "--speed", "60",
             "--duration", "0.02", "--stores", "4", "--warehouses", "1", "--suppliers", "1",
             "--skus", "20", "--stock-wait", "0", "--seed", "5", "--no-initial-stock"],
            env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        resumed = datetime.fromisoformat(again.stderr.split(", start ")[1].split(",")[0])
        assert end - timedelta(minutes=2) <= resumed <= end + timedelta(minutes=1), again.stderr
    finally:
        cluster.stop()
