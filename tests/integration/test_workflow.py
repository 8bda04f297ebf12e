"""Store workflow, order lifecycle and returns against a real broker (one worker, one scene)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration import probes
from tests.integration.harness import (
    Cluster,
    iso,
    latest_by_key,
    location,
    messages,
    send,
    wait_for,
)
from tests.integration.test_routing import fulfilment, load_locations, placed, receipt

LOCATIONS = [
    location("ST-1", lat=48.86, lon=2.34),
    location("ST-2", lat=48.84, lon=2.36),
    location("ST-3", lat=48.70, lon=2.10),
]
HOME_WALK = ["accepted", "picked", "packed", "label_printed", "shipped"]
COLLECT_WALK = ["accepted", "picked", "packed", "ready_for_pickup", "collected"]


def routed(cluster: Cluster, order_id: str, attempt: int = 1) -> dict[str, Any] | None:
    d = latest_by_key(cluster, "routed_orders").get(order_id)
    return d if d and d["attempt"] >= attempt else None


def walk(order_id: str, s: dict[str, Any], steps: list[str], at: str | None = None) -> list[Any]:
    return [fulfilment(order_id, s["shipment_id"], at or s["location_id"], k) for k in steps]


def status(cluster: Cluster, order_id: str) -> str | None:
    ev = latest_by_key(cluster, "order_events").get(order_id)
    return ev["order_status"] if ev else None


def a_return(eid: str, order_id: str, loc: str, lines: list[tuple[str, int, bool]]) -> Any:
    return (
        "returns",
        order_id,
        {
            "event_id": eid,
            "occurred_at": iso(),
            "order_id": order_id,
            "location_id": loc,
            "lines": [{"sku": s, "qty": q, "resellable": r} for s, q, r in lines],
        },
    )


def test_orders_walk_the_whole_lifecycle_with_short_pick_cancellation_and_returns(
    cluster: Cluster, tmp_path: Path
) -> None:
    load_locations(cluster, tmp_path, LOCATIONS)
    cluster.worker().start()
    send(
        cluster,
        [
            receipt("r1", "ST-1", {"HD-1": 10, "TR-1": 4, "SP-1": 3}),
            receipt("r2", "ST-2", {"CC-1": 5, "SP-1": 3, "CN-1": 4}),
        ],
    )
    wait_for(lambda: len(latest_by_key(cluster, "stock_availability")) == 6, what="receipts")
    probes.wait_views(cluster)  # routing reads the worker's view of stock-availability

    send(
        cluster,
        [
            placed("H-1", {"HD-1": 2}),  # home delivery from ST-1
            placed("K-1", {"CC-1": 1}, pickup="ST-2"),  # click & collect from ST-2's shelf
            placed("X-1", {"TR-1": 1}, pickup="ST-3"),  # transfer ST-1 -> ST-3
            placed("P-1", {"SP-1": 3}),  # will be short-picked
            placed("N-1", {"CN-1": 2}),  # will be cancelled
        ],
    )
    wait_for(
        lambda: all(routed(cluster, o) for o in ("H-1", "K-1", "X-1", "P-1", "N-1")),
        what="five orders routed",
    )
    dec = latest_by_key(cluster, "routed_orders")
    (h,), (k,), (x,), (p,), (n,) = (
        dec[o]["shipments"] for o in ("H-1", "K-1", "X-1", "P-1", "N-1")
    )
    assert (h["location_id"], h["mode"]) == ("ST-1", "ship_from_store")
    assert (k["location_id"], k["mode"]) == ("ST-2", "click_collect")
    assert (x["location_id"], x["mode"]) == ("ST-1", "transfer_to_store")
    short_at = p["location_id"]
    other = "ST-2" if short_at == "ST-1" else "ST-1"

    events = [
        *walk("H-1", h, ["accepted"]),
        *walk("H-1", h, ["accepted"]),  # the same event again: ignored
        fulfilment("H-1", "H-1-S99", "ST-1", "picked"),  # unknown shipment
        *walk("H-1", h, HOME_WALK[1:]),
        fulfilment("K-1", k["shipment_id"], "ST-2", "shipped", n=1),  # never accepted
        fulfilment("K-1", k["shipment_id"], "ST-3", "accepted", n=2),  # not its location
        *walk("K-1", k, COLLECT_WALK),
        *walk("X-1", x, HOME_WALK),
        *walk("X-1", x, ["ready_for_pickup", "collected"], at="ST-3"),
        *walk("P-1", p, ["accepted"]),
        fulfilment("P-1", p["shipment_id"], short_at, "picked", lines=[{"sku": "SP-1", "qty": 1}]),
    ]
    send(cluster, events)
    send(
        cluster,
        [
            (
                "web_orders",
                "N-1",
                {
                    "event_id": "cancel-N-1",
                    "occurred_at": iso(),
                    "type": "order_cancelled",
                    "order_id": "N-1",
                },
            )
        ],
    )
    wait_for(
        lambda: (
            status(cluster, "H-1") == "shipped"
            and status(cluster, "K-1") == "collected"
            and status(cluster, "X-1") == "collected"
            and status(cluster, "N-1") == "cancelled"
            and routed(cluster, "P-1", attempt=2)
        ),
        timeout=60,
        what="the walks, the short pick re-route and the cancellation",
    )
    send(cluster, walk("N-1", n, ["accepted"]))  # a step after cancellation

    def stock_settled() -> bool:
        sa = latest_by_key(cluster, "stock_availability")
        want = {
            "HD-1@ST-1": (8, 0),  # shipped: consumed
            "CC-1@ST-2": (4, 0),  # collected: consumed
            "TR-1@ST-1": (3, 0),  # transferred out of ST-1
            f"SP-1@{short_at}": (1, 1),  # 2 units missing at the pick: on_hand corrected
            f"SP-1@{other}": (3, 2),  # the missing units re-routed here
            "CN-1@ST-2": (4, 0),  # cancelled: released
        }
        return all((sa[k]["on_hand"], sa[k]["reserved"]) == v for k, v in want.items())

    wait_for(stock_settled, timeout=30, what="stock after the lifecycle")
    p2 = latest_by_key(cluster, "routed_orders")["P-1"]
    assert sorted((s["location_id"], s["lines"][0]["qty"]) for s in p2["shipments"]) == sorted(
        [(short_at, 1), (other, 2)]
    )
    x_changes = [e["change"] for e in messages(cluster, "order_events") if e["order_id"] == "X-1"]
    assert x_changes[-3:] == ["shipped", "ready_for_pickup", "collected"]
    p_changes = [e["change"] for e in messages(cluster, "order_events") if e["order_id"] == "P-1"]
    assert "short_pick" in p_changes

    # returns: H-1 (2 x HD-1 at 10.0) returned at ST-3, one resellable, one damaged
    send(
        cluster,
        [
            a_return("ret-1", "H-1", "ST-3", [("HD-1", 1, True)]),
            a_return("ret-2", "H-1", "ST-3", [("HD-1", 1, False)]),
            a_return("ret-3", "H-1", "ST-3", [("HD-1", 1, True)]),  # over-return
            a_return("ret-4", "NEVER-SEEN", "ST-3", [("HD-1", 1, True)]),  # unknown order
        ],
    )
    wait_for(lambda: status(cluster, "H-1") == "returned", what="H-1 returned")
    refunds = {r["return_event_id"]: r for r in messages(cluster, "refunds")}
    assert set(refunds) == {"ret-1", "ret-2"}
    for r in refunds.values():
        assert r["order_id"] == "H-1" and r["amount"] == 10.0 and r["currency"] == "EUR"
        assert r["payment"] == {"method": "card", "reference": "PAY-H-1"}
        assert r["lines"] == [{"sku": "HD-1", "qty": 1, "unit_price": 10.0, "amount": 10.0}]
    sa = wait_for(
        lambda: (sa := latest_by_key(cluster, "stock_availability")).get("HD-1@ST-3") and sa,
        what="the resellable return restocked at ST-3",
    )
    assert sa["HD-1@ST-3"]["on_hand"] == 1  # the damaged unit was not restocked
    assert sa["HD-1@ST-1"]["on_hand"] == 8

    def dead() -> list[str]:
        return sorted(d["error"] for d in messages(cluster, "dead_letters"))

    errors = wait_for(lambda: len(dead()) >= 6 and dead(), what="six dead letters")
    joined = "\n".join(errors)
    assert len(errors) == 6, joined
    for phrase in (
        "unknown shipment 'H-1-S99'",
        "shipped is not a valid step",
        "'ST-3' does not own",
        "after cancellation",
        "over-return of HD-1",
        "unknown order",
    ):
        assert phrase in joined, (phrase, joined)

    # store load followed the steps: the transfer was open at ST-3 (its step time there) and
    # everything there closed. store-load is published once per location per batch of the
    # owner, so an open and close in one batch need not show the intermediate count.
    final = latest_by_key(cluster, "store_load")
    assert final["ST-3"]["open_orders"] == 0
    assert final["ST-3"]["prep_time_s"].keys() >= {"in_transit->ready_for_pickup"}
    assert final["ST-1"]["prep_time_s"].keys() >= {
        "routed->accepted",
        "accepted->picked",
        "label_printed->shipped",
    }
    open_at = {s: final[s]["open_orders"] for s in ("ST-1", "ST-2")}
    assert open_at[short_at] == 1 and open_at[other] == 1  # P-1's two shipments
