"""The delivery promise against a real broker, on network time (inputs' occurred_at; the test
moves the clock with them, never sleeps): a closed store against an open warehouse, a late
shipment reported, /promise answers equal to the decision the order then gets, 400s."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from domain.postcode import geocode
from tests.integration import probes
from tests.integration.harness import Cluster, latest_by_key, location, messages, send, wait_for

PARIS = ZoneInfo("Europe/Paris")
KM = 1 / 111.2  # degrees of latitude per km
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat")
STORE_HOURS = {"tz": "Europe/Paris", "opening": {d: ["09:00-19:00"] for d in WEEKDAYS}}

LOCATIONS = [
    # a store at the customer's door, preparing 09:00-19:00 (closed on Sunday)
    location("ST-N", lat=48.85, lon=2.35, capacity_per_hour=10, calendar=STORE_HOURS),
    # an open warehouse 60 km away (ships today until its 20:00 cut-off, next day delivery)
    location("WH-O", "warehouse", lat=48.85 + 60 * KM, lon=2.35),
    # a warehouse 600 km away (three transit days)
    location("WH-FAR", "warehouse", lat=48.85 - 600 * KM, lon=2.35),
]


def paris(d: int, hh: int, mm: int = 0) -> str:
    """ISO time of 2026-12-<d> hh:mm in Paris (Tuesday 1 December 2026 is d=1)."""
    return datetime(2026, 12, d, hh, mm, tzinfo=PARIS).astimezone(UTC).isoformat()


def receipt(eid: str, loc: str, lines: dict[str, int], at: str) -> tuple[str, str, Any]:
    return (
        "supplier_feeds",
        loc,
        {
            "event_id": eid,
            "occurred_at": at,
            "type": "receipt",
            "location_id": loc,
            "lines": [{"sku": s, "qty": q} for s, q in lines.items()],
        },
    )


def placed(oid: str, lines: dict[str, int], at: str, **delivery: Any) -> tuple[str, str, Any]:
    return (
        "web_orders",
        oid,
        {
            "event_id": f"place-{oid}",
            "occurred_at": at,
            "type": "order_placed",
            "order_id": oid,
            "customer": {"lat": 48.85, "lon": 2.35, "postcode": "75001"},
            "delivery": {"mode": "home", **delivery},
            "lines": [{"sku": s, "qty": q, "unit_price": 10.0} for s, q in lines.items()],
            "currency": "EUR",
            "payment": {"method": "card", "reference": f"PAY-{oid}"},
        },
    )


def start(cluster: Cluster, tmp: Path, stock: list[tuple[str, str, Any]]) -> Any:
    f = tmp / "locations.json"
    f.write_text(json.dumps(LOCATIONS))
    cluster.cli("locations", "load", str(f))
    worker = cluster.worker().start()
    send(cluster, stock)
    keys = sum(len(value["lines"]) for _, _, value in stock)
    wait_for(
        lambda: len(latest_by_key(cluster, "stock_availability")) == keys,
        what="the receipts' availability",
    )
    probes.wait_views(cluster)
    return worker


def decision(cluster: Cluster, oid: str) -> dict[str, Any]:
    return wait_for(
        lambda: next((m for m in messages(cluster, "routed_orders") if m["order_id"] == oid), None),
        what=f"the decision of {oid}",
    )


def http(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_closed_store_loses_to_an_open_warehouse_with_a_better_promise_and_wins_otherwise(
    cluster: Cluster, tmp_path: Path
) -> None:
    # Tuesday 19:30: the store closed at 19:00 and prepares again tomorrow at 09:00 (ships at
    # its 16:00 cut-off, delivered Thursday); the warehouse ships tonight at 20:00
    at = paris(1, 19, 30)
    start(
        cluster,
        tmp_path,
        [
            receipt("r1", "ST-N", {"NEAR-WH": 5, "FAR-WH": 5}, at),
            receipt("r2", "WH-O", {"NEAR-WH": 5}, at),
            receipt("r3", "WH-FAR", {"FAR-WH": 5}, at),
        ],
    )
    send(cluster, [placed("O-1", {"NEAR-WH": 1}, at), placed("O-2", {"FAR-WH": 1}, at)])

    lost = decision(cluster, "O-1")
    [s] = lost["shipments"]
    assert s["location_id"] == "WH-O"
    assert datetime.fromisoformat(s["ship_by"]) == datetime.fromisoformat(paris(1, 20))
    assert s["promised_delivery"] == "2026-12-02"
    assert lost["promised_date"] == "2026-12-02"
    promised = {c["location_id"]: c["promised"] for c in lost["reasons"]["candidates"]}
    assert promised == {"WH-O": "2026-12-02", "ST-N": "2026-12-03"}

    won = decision(cluster, "O-2")
    [s] = won["shipments"]
    assert s["location_id"] == "ST-N"
    assert datetime.fromisoformat(s["ship_by"]) == datetime.fromisoformat(paris(2, 16))
    assert s["promised_delivery"] == "2026-12-03"
    # the store is closed: its acceptance time-out counts from its opening
    assert datetime.fromisoformat(s["accept_by"]) == datetime.fromisoformat(paris(2, 9, 15))


def test_a_shipment_not_shipped_by_its_ship_by_is_reported_late(
    cluster: Cluster, tmp_path: Path
) -> None:
    at = paris(1, 10)  # Tuesday 10:00: the store's cut-off is 16:00
    start(cluster, tmp_path, [receipt("r1", "ST-N", {"SKU": 5}, at)])
    send(cluster, [placed("O-L", {"SKU": 1}, at)])
    [s] = decision(cluster, "O-L")["shipments"]
    assert s["location_id"] == "ST-N"
    assert datetime.fromisoformat(s["ship_by"]) == datetime.fromisoformat(paris(1, 16))
    sid = s["shipment_id"]
    send(
        cluster,
        [
            (
                "fulfilment_events",
                "O-L",
                {
                    "event_id": "acc-1",
                    "occurred_at": paris(1, 10, 5),
                    "order_id": "O-L",
                    "shipment_id": sid,
                    "location_id": "ST-N",
                    "type": "accepted",
                },
            )
        ],
    )
    wait_for(
        lambda: any(e["change"] == "accepted" for e in messages(cluster, "order_events")),
        what="the acceptance",
    )

    def late_events() -> list[dict[str, Any]]:
        return [e for e in messages(cluster, "order_events") if e["change"] == "late"]

    assert late_events() == []  # 10:05: nothing is late yet
    # the network clock moves past 16:00 with an unrelated input (a receipt at 16:05)
    send(cluster, [receipt("r2", "WH-O", {"OTHER": 1}, paris(1, 16, 5))])
    [late] = wait_for(late_events, what="the late order event")
    assert late["shipment_id"] == sid and late["location_id"] == "ST-N"
    assert [x["late"] for x in late["shipments"]] == [True]
    wait_for(
        lambda: latest_by_key(cluster, "store_load").get("ST-N", {}).get("late_shipments") == 1,
        what="store-load's late count",
    )
    # reported once, even as the clock moves on
    send(cluster, [receipt("r3", "WH-O", {"OTHER": 1}, paris(1, 17))])
    wait_for(
        lambda: (
            "OTHER@WH-O" in latest_by_key(cluster, "stock_availability")
            and latest_by_key(cluster, "stock_availability")["OTHER@WH-O"]["on_hand"] == 2
        ),
        what="the second receipt",
    )
    probes.holds_for(lambda: len(late_events()) == 1, 3.0, "one late event only")


def test_promise_answers_match_the_decision_the_order_then_gets(
    cluster: Cluster, tmp_path: Path
) -> None:
    at = paris(1, 18)
    worker = start(
        cluster,
        tmp_path,
        [
            receipt("r1", "ST-N", {"A": 5, "B": 1}, at),
            receipt("r2", "WH-O", {"A": 5}, at),
            receipt("r3", "WH-FAR", {"B": 5, "C": 3}, at),
        ],
    )
    basket = {"lines": [{"sku": "A", "qty": 1}, {"sku": "C", "qty": 1}]}
    body = {**basket, "customer": {"lat": 48.85, "lon": 2.35, "postcode": "75001"}}
    status, got = http(worker.port, "POST", "/promise", body)
    assert status == 200, got
    assert got["postcode"] == "75001"
    options = {(o["option"], o.get("pickup_location_id")): o for o in got["options"]}
    home = options[("home_standard", None)]
    assert home["split"] is True  # C is only at WH-FAR, A is nearer
    assert ("home_express", None) in options and ("click_collect", "ST-N") in options

    send(cluster, [placed("O-P", {"A": 1, "C": 1}, got["now"])])
    d = decision(cluster, "O-P")
    assert d["status"] == "routed"

    def shape(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(
            (
                r["location_id"],
                r["mode"],
                tuple(sorted((ln["sku"], ln["qty"]) for ln in r["lines"])),
                datetime.fromisoformat(r["ship_by"]),
                r.get("promised_delivery"),
            )
            for r in rows
        )

    assert shape(home["shipments"]) == shape(d["shipments"])
    assert home["promised_date"] == d["promised_date"]

    # availability: network-wide and per location; nothing was reserved by /promise, the
    # order's reservation shows
    status, a = http(worker.port, "GET", "/availability/C")
    assert status == 200
    assert a["sku"] == "C" and a["available"] in (2, 3)
    wait_for(
        lambda: http(worker.port, "GET", "/availability/C")[1]["available"] == 2,
        what="the order's reservation in the worker's availability view",
    )
    status, none = http(worker.port, "GET", "/availability/NOT-A-SKU")
    assert (status, none) == (200, {"sku": "NOT-A-SKU", "available": 0, "locations": []})


def test_bad_promise_requests_get_400_with_the_reason(cluster: Cluster, tmp_path: Path) -> None:
    worker = start(cluster, tmp_path, [receipt("r1", "ST-N", {"A": 5}, paris(1, 10))])
    port = worker.port
    cases = [
        (b"not json", "body is not JSON"),
        ({"customer": {"lat": 48.85, "lon": 2.35}}, "lines: Field required"),
        (
            {"lines": [{"sku": "A", "qty": -1}], "customer": {"lat": 48.85, "lon": 2.35}},
            "lines.0.qty",
        ),
        (
            {"lines": [{"sku": "A", "qty": 1}], "customer": {"postcode": "96000"}},
            "customer.postcode: postcode 96000: no département 96",
        ),
        (
            {"lines": [{"sku": "A", "qty": 1}], "customer": {"postcode": "75O01"}},
            "customer.postcode: '75O01' is not a French postcode",
        ),
        ({"lines": [{"sku": "A", "qty": 1}], "customer": {}}, "customer: a position is required"),
        (
            {"lines": [{"sku": "A", "qty": 1}], "customer": {"lat": 1, "lon": 2}, "modes": ["x"]},
            "modes.0",
        ),
    ]
    for body, reason in cases:
        status, got = http(port, "POST", "/promise", body)
        assert status == 400, (body, got)
        assert reason in got["error"], (body, got)
    # an unknown SKU is not an error: nothing is available
    status, got = http(
        port,
        "POST",
        "/promise",
        {"lines": [{"sku": "NOPE", "qty": 1}], "customer": {"lat": 48.85, "lon": 2.35}},
    )
    assert status == 200 and got["options"] == []
    assert {u["reason"] for u in got["unavailable"]} == {"insufficient_stock"}


def test_a_postcode_alone_is_answered_like_its_point_and_the_description_is_served(
    cluster: Cluster, tmp_path: Path
) -> None:
    at = paris(1, 10)
    worker = start(
        cluster,
        tmp_path,
        [receipt("r1", "ST-N", {"A": 5}, at), receipt("r2", "WH-FAR", {"A": 5, "B": 2}, at)],
    )
    basket = {"lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}]}
    place = geocode("75001")
    status, by_postcode = http(
        worker.port, "POST", "/promise", {**basket, "customer": {"postcode": "75001"}}
    )
    assert status == 200, by_postcode
    status, by_point = http(
        worker.port,
        "POST",
        "/promise",
        {**basket, "customer": {"lat": place.lat, "lon": place.lon}},
    )
    assert status == 200, by_point
    assert by_postcode["position"] == {
        "lat": place.lat,
        "lon": place.lon,
        "source": "postcode",
        "departement": "75",
        "precision_km": place.radius_km,
    }
    assert by_point["position"]["source"] == "lat_lon"
    assert by_postcode["now"] == by_point["now"]  # no input in between: the same network time
    assert by_postcode["options"] == by_point["options"]
    assert by_postcode["unavailable"] == by_point["unavailable"]
    home = next(o for o in by_postcode["options"] if o["option"] == "home_standard")
    assert "WH-FAR" in {s["location_id"] for s in home["shipments"]}  # B is only there
    assert ("click_collect", "ST-N") in {
        (o["option"], o.get("pickup_location_id")) for o in by_postcode["options"]
    }

    # the OpenAPI description, as YAML and as JSON: the same document, listing the API
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/openapi.yaml", timeout=10) as r:
        assert r.status == 200 and r.headers["content-type"].startswith("application/yaml")
        as_yaml = yaml.safe_load(r.read())
    status, as_json = http(worker.port, "GET", "/openapi.json")
    assert status == 200 and as_json == as_yaml
    assert {"/promise", "/availability/{sku}"} <= set(as_json["paths"])
    customer = as_json["components"]["schemas"]["PromiseRequest"]["properties"]["customer"]
    assert {"lat", "lon", "postcode"} == set(customer["properties"])
