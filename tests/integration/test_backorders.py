"""Backorders, line cancellations and ship_complete against a real broker, two workers.

200 orders for scarce SKUs wait as backorders, some lines are cancelled, then receipts land in
waves. The oracle is built from the test's own inputs and the public outputs only:
- first come first served per SKU: after each wave settles, the orders routed from a SKU's
  backorders are exactly the oldest waiting ones (a prefix of the SKU's queue in placement
  order), and the head still waiting cannot be served by the stock left where capacity is;
- never oversold, never over capacity: reserved == units of the open shipments, and
  reserved <= received, at every sku@location; open shipments <= max_backlog per location;
- line cancellations release exactly their units; cancelled backorders never route;
- ship_complete orders never have two shipments, nor a shipment and waiting lines;
- expiry: the lines of the channel with a short max_wait_days become unroutable;
- (chaos) a SIGKILL of a worker with input in flight loses no backorder and routes none twice.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import yaml

from streams.app import partition_of
from streams.topics import TOPICS
from tests.integration import probes
from tests.integration.harness import (
    Cluster,
    WorkerProcess,
    iso,
    latest_by_key,
    location,
    messages,
    read_raw,
    run,
    send,
    wait_for,
)
from tests.integration.test_chaos import Streamer
from tests.integration.test_routing import fulfilment, load_locations, placed, receipt

LOCATIONS = [
    location("WH-1", "warehouse", lat=48.60, lon=2.60),
    location("ST-1", lat=48.86, lon=2.34, capacity_per_hour=500, max_backlog=5000),
    location("ST-2", lat=48.83, lon=2.37, capacity_per_hour=500, max_backlog=12),
]
BACKLOG = {loc["location_id"]: loc["max_backlog"] for loc in LOCATIONS}
SCARCE = [f"BK-{i}" for i in range(5)]
COMPLETE = ["SC-A", "SC-B"]  # ship_complete orders only
EXPIRING = "EXP-1"  # never received: its app-channel orders expire
EXPIRY_S = 20.0


def use_policy(cluster: Cluster, tmp: Path) -> None:
    """Backorders on for web (14 days) and app (EXPIRY_S): the policy file of every worker."""
    policy = yaml.safe_load((Path(__file__).parents[2] / "policy" / "routing.yaml").read_text())
    policy["backorder"] = {
        "enabled": True,
        "max_wait_days": 14,
        "channels": {"app": {"max_wait_days": EXPIRY_S / 86400}},
    }
    path = tmp / "routing.yaml"
    path.write_text(yaml.safe_dump(policy))
    cluster.env["STOCKROUTE_ROUTING_POLICY"] = str(path)


def order(order_id: str, lines: dict[str, int], **delivery: Any) -> tuple[str, str, Any]:
    handle, key, value = placed(order_id, lines)
    value["delivery"].update(delivery)
    return handle, key, value


def cancel(order_id: str, n: int, lines: dict[str, int] | None = None) -> tuple[str, str, Any]:
    value: dict[str, Any] = {
        "event_id": f"cancel-{order_id}-{n}",
        "occurred_at": iso(),
        "type": "order_cancelled",
        "order_id": order_id,
    }
    if lines is not None:
        value["lines"] = [{"sku": s, "qty": q} for s, q in lines.items()]
    return "web_orders", order_id, value


class Book:
    """What the test sent: orders in placement order, cancellations, receipts."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, int]] = {}
        self.order_of: list[str] = []
        self.complete: set[str] = set()
        self.cancelled: dict[str, dict[str, int]] = defaultdict(dict)
        self.received: dict[str, int] = defaultdict(int)

    def place(self, oid: str, lines: dict[str, int], **delivery: Any) -> tuple[str, str, Any]:
        self.orders[oid] = dict(lines)
        self.order_of.append(oid)
        if delivery.get("split") == "ship_complete":
            self.complete.add(oid)
        return order(oid, lines, **delivery)

    def cancel_lines(self, oid: str, n: int, lines: dict[str, int]) -> tuple[str, str, Any]:
        for sku, qty in lines.items():
            self.cancelled[oid][sku] = self.cancelled[oid].get(sku, 0) + qty
        return cancel(oid, n, lines)

    def receive(self, eid: str, loc: str, lines: dict[str, int]) -> tuple[str, str, Any]:
        for sku, qty in lines.items():
            self.received[f"{sku}@{loc}"] += qty
        return receipt(eid, loc, lines)

    def wanted(self, oid: str) -> dict[str, int]:
        """What the order still wants after its line cancellations."""
        left = {s: q - self.cancelled[oid].get(s, 0) for s, q in self.orders[oid].items()}
        return {s: q for s, q in left.items() if q > 0}


def placed_orders(rnd: random.Random, book: Book, n: int) -> list[Any]:
    """n orders: single lines of scarce SKUs (most), ship_complete pairs, expiring app orders."""
    out: list[Any] = []
    for i in range(n):
        oid = f"O-{i:04d}"
        if i % 10 == 3:
            out.append(book.place(oid, {COMPLETE[0]: 1, COMPLETE[1]: 1}, split="ship_complete"))
        elif i % 25 == 7:
            _, key, value = book.place(oid, {EXPIRING: 1})
            value["channel"] = "app"
            out.append(("web_orders", key, value))
        else:
            out.append(book.place(oid, {rnd.choice(SCARCE): rnd.randint(1, 2)}))
    return out


# ---- the oracle ----------------------------------------------------------------------------------


def snapshot(cluster: Cluster) -> tuple[dict[str, Any], dict[str, Any]]:
    return latest_by_key(cluster, "routed_orders"), latest_by_key(cluster, "stock_availability")


def held(latest: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for d in latest.values():
        for s in d["shipments"]:
            for ln in s["lines"]:
                out[f"{ln['sku']}@{s['location_id']}"] += ln["qty"]
    return out


class Settled:
    """Every order decided, reserved == open shipments everywhere, and the outputs the same
    over STABLE_POLLS consecutive polls with the worker group drained at each (every input
    and internal message committed: nothing moving any more). Stable outputs alone are not
    enough: a worker waiting out an input gap before it restarts (streams/app.py, 10 s) and
    recovering leaves the outputs still for longer than the polls; and an unanswered turn is
    handed again after agents/backorders.py RESEND_S, which the polls outlast."""

    STABLE_POLLS = 12

    def __init__(self, cluster: Cluster, book: Book, offsets: probes.OffsetReader) -> None:
        self.cluster, self.book, self.offsets = cluster, book, offsets
        self.last: Any = None
        self.same = 0

    def __call__(self) -> Any:
        now = snapshot(self.cluster), len(messages(self.cluster, "order_events"))
        quiet = now == self.last and self.offsets.drained()
        self.same = self.same + 1 if quiet else 0
        self.last = now
        latest, avail = now[0]
        if set(self.book.orders) - set(latest):
            return None
        hold = held(latest)
        keys = set(hold) | {k for k, v in avail.items() if v["reserved"]}
        if any(avail.get(k, {}).get("reserved", 0) != hold.get(k, 0) for k in keys):
            return None
        return now[0] if self.same >= self.STABLE_POLLS else None


def settle(cluster: Cluster, book: Book, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with probes.OffsetReader(cluster) as offsets:
        settled = Settled(cluster, book, offsets)
        try:
            return wait_for(settled, timeout=240, interval=1.0, what=what)  # type: ignore[no-any-return]
        except AssertionError:
            pass
        latest, avail = snapshot(cluster)
        hold = held(latest)
        keys = set(hold) | {k for k, v in avail.items() if v["reserved"]}
        off = {
            k: (avail.get(k, {}).get("reserved", 0), hold.get(k, 0))
            for k in keys
            if avail.get(k, {}).get("reserved", 0) != hold.get(k, 0)
        }
        pending = offsets.uncommitted(probes.consumed_handles(cluster))
        raise AssertionError(
            f"{what}: undecided {sorted(set(book.orders) - set(latest))[:10]}, "
            f"reserved != held {off}, stable polls {settled.same}, "
            f"uncommitted { ({tp: n for tp, n in pending.items() if n}) }\n"
            f"{trail(cluster, set(off))}"
        ) from None


def trail(cluster: Cluster, keys: set[str]) -> str:
    """For each sku@location whose reserved units no open shipment holds: the reservations the
    owner's changelog holds there, and for each order holding one, its asks and releases
    (location-ops), the owner's answers, its order events and its routed-orders records:
    which round or turn took the units and what became of them."""
    raw = run(read_raw(cluster, f"{cluster.app_id}-location_stock-changelog"))
    stock = {k.decode().strip('"'): v for k, v in raw if k is not None}
    out: list[str] = []
    holders: set[str] = set()
    for key in sorted(keys):
        rec = orjson.loads(stock[key]) if stock.get(key) else {}
        rids = rec.get("reservations", {})
        out.append(f"  {key}: reservations {rids}, positions {rec.get('positions')}")
        holders |= {rid.split("/")[0].rsplit("-S", 1)[0] for rid in rids}
    if not holders:
        return "\n".join(out)

    def mine(handle: str) -> list[dict[str, Any]]:
        return [m for m in messages(cluster, handle) if m.get("order_id") in holders]

    for m in mine("location_ops"):
        if m.get("kind") in ("reserve_shipment", "release_shipment"):
            out.append(
                f"  location-ops {m['kind']} {m['shipment_id']}@{m['location_id']} "
                f"seq {m['seq']} {m.get('lines') or m.get('skus')}"
            )
    for m in mine("order_commands"):
        what = {k: v for k, v in m.items() if k not in ("order_id", "_key")}
        out.append(f"  order-commands {m['order_id']}: {what}")
    for m in mine("order_events"):
        out.append(f"  order-events {m['order_id']} {m['change']} {m.get('detail')}")
    for m in mine("routed_orders"):
        ships = [(s["shipment_id"], s["location_id"], s["lines"]) for s in m["shipments"]]
        out.append(
            f"  routed-orders {m['order_id']} attempt {m.get('attempt')} {m['status']} "
            f"shipments {ships} backordered {m['backordered_lines']}"
        )
    raw = run(read_raw(cluster, f"{cluster.app_id}-orders-changelog"))
    states = {k.decode().strip('"'): v for k, v in raw if k is not None}
    for oid in sorted(holders):
        out.append(f"  order state {oid}: {states.get(oid)!r}")
    return "\n".join(out)


def check(cluster: Cluster, book: Book) -> dict[str, Any]:
    """The invariants that hold at any settled point."""
    latest, avail = settle(cluster, book, "every order decided, reservations == shipments")
    for key, rec in avail.items():
        assert rec["reserved"] <= book.received.get(key, 0), key  # never oversold
    open_at: dict[str, int] = defaultdict(int)
    for d in latest.values():
        for s in d["shipments"]:
            open_at[s["location_id"]] += 1
    for loc, n in open_at.items():
        assert n <= BACKLOG[loc], f"{loc}: {n} open shipments > max_backlog"
    for oid, d in latest.items():
        if oid not in book.orders or not book.wanted(oid):
            continue  # fully cancelled: the order events say so
        got: dict[str, int] = defaultdict(int)
        for s in d["shipments"]:
            for ln in s["lines"]:
                got[ln["sku"]] += ln["qty"]
        for ln in d["backordered_lines"] + d["unroutable_lines"]:
            got[ln["sku"]] += ln["qty"]
        # no unit lost nor routed twice: placed minus cancelled, exactly
        assert dict(got) == book.wanted(oid), (oid, dict(got), book.wanted(oid))
        if oid in book.complete:
            assert len(d["shipments"]) <= 1, oid
            assert not (d["shipments"] and d["backordered_lines"]), oid
    try:
        first_come_first_served(latest, avail, book)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{queues(cluster)}") from None
    return latest


def queues(cluster: Cluster) -> str:
    """The scarce SKUs' queue records as the changelog holds them (in flight, ticket, entries,
    last signalled availability): what a failure needs to be understood."""
    raw = run(read_raw(cluster, f"{cluster.app_id}-backorder_queues-changelog"))
    latest = {k.decode().strip('"'): v for k, v in raw if k is not None}
    out = []
    for sku in SCARCE:
        v = latest.get(sku)
        q = orjson.loads(v) if v else None
        if q:
            q["entries"] = q["entries"][:5]
        out.append(f"  {sku}: {q}")
    return f"queues (changelog, {len(raw)} records, keys {sorted(latest)[:8]}):\n" + "\n".join(out)


def first_come_first_served(latest: dict[str, Any], avail: dict[str, Any], book: Book) -> None:
    """Per scarce SKU: the routed backorders are the oldest ones (strict head of line), and
    the oldest still waiting cannot be served by what is available where there is room."""
    open_at: dict[str, int] = defaultdict(int)
    for d in latest.values():
        for s in d["shipments"]:
            open_at[s["location_id"]] += 1
    for sku in SCARCE:
        queue = [
            oid
            for oid in book.order_of
            if sku in book.orders[oid] and book.wanted(oid) and oid in latest
        ]
        waiting = [
            oid for oid in queue if any(ln["sku"] == sku for ln in latest[oid]["backordered_lines"])
        ]
        if waiting:
            head = queue.index(waiting[0])
            assert queue[head:] == waiting, (
                f"{sku}: a younger order was routed while {waiting[0]} waits"
            )
            room = sum(
                v["available"]
                for k, v in avail.items()
                if v["sku"] == sku and open_at[v["location_id"]] < BACKLOG[v["location_id"]]
            )
            assert room < book.wanted(waiting[0])[sku], f"{sku}: {waiting[0]} starves"


def start_workers(cluster: Cluster, tmp: Path) -> list[WorkerProcess]:
    use_policy(cluster, tmp)
    load_locations(cluster, tmp, LOCATIONS)
    workers = [cluster.worker().start(), cluster.worker().start()]
    probes.wait_views(cluster, workers)
    return workers


def waves(book: Book, rnd: random.Random, n: int) -> list[list[Any]]:
    """n waves of receipts of the scarce SKUs over the locations (less than demanded)."""
    out = []
    for w in range(n):
        wave = []
        for loc in ("WH-1", "ST-1", "ST-2"):
            lines = {sku: rnd.randint(1, 6) for sku in SCARCE}
            wave.append(book.receive(f"rc-{w}-{loc}", loc, lines))
        out.append(wave)
    return out


# ---- tests ---------------------------------------------------------------------------------------


def test_backorders_route_first_come_first_served_as_stock_arrives(
    cluster: Cluster, tmp_path: Path
) -> None:
    start_workers(cluster, tmp_path)
    rnd = random.Random(15)
    book = Book()
    send(cluster, [book.receive("rc-0", "ST-1", {"RT-1": 10})])
    send(cluster, placed_orders(rnd, book, 200))
    send(cluster, [book.place("R-1", {"RT-1": 5, "BK-0": 1})])  # RT-1 ships now, BK-0 waits
    latest = check(cluster, book)
    assert sum(1 for d in latest.values() if d["status"] == "backordered") > 150
    assert latest["R-1"]["shipments"] and latest["R-1"]["backordered_lines"]

    # line cancellations: part of a shipped-from-stock line, part and all of backordered lines
    reserved_before = latest_by_key(cluster, "stock_availability")["RT-1@ST-1"]["reserved"]
    units_before = latest_by_key(cluster, "store_load")["ST-1"]["open_units"]
    singles = [o for o in book.order_of if set(book.orders[o]) <= set(SCARCE)]
    twos = [o for o in singles if sum(book.orders[o].values()) == 2][:10]
    ones = [o for o in singles if sum(book.orders[o].values()) == 1][:10]
    cancels = [book.cancel_lines("R-1", 1, {"RT-1": 2})]
    cancels += [book.cancel_lines(o, 1, {next(iter(book.orders[o])): 1}) for o in twos + ones]
    cancels += [cancel("R-1", 2, {"RT-1": 9})]  # more than ordered: dead-lettered
    send(cluster, cancels)
    latest = check(cluster, book)
    reserved = latest_by_key(cluster, "stock_availability")["RT-1@ST-1"]["reserved"]
    assert reserved_before - reserved == 2  # exactly the cancelled units
    wait_for(  # R-1's shipment goes on with 3 units: store-load counts what remains
        lambda: latest_by_key(cluster, "store_load")["ST-1"]["open_units"] == units_before - 2,
        what="ST-1's open_units lowered by the 2 units cancelled",
    )
    dead = wait_for(
        lambda: [d for d in messages(cluster, "dead_letters") if d["key"] == "R-1"],
        what="the over-cancellation dead-lettered",
    )
    assert "exceeds the 3 ordered and not yet cancelled" in dead[0]["error"]

    for n, wave in enumerate(waves(book, rnd, 4)):
        # new orders for the scarce SKUs right before the stock: they queue behind the others
        late = [book.place(f"L-{n}-{i}", {rnd.choice(SCARCE): 1}) for i in range(5)]
        send(cluster, late)
        send(cluster, wave)
        if n == 1:
            send(cluster, [book.receive("rc-sc", "ST-1", {COMPLETE[0]: 30, COMPLETE[1]: 30})])
        latest = check(cluster, book)
    routed_from_backorder = {
        e["order_id"]
        for e in messages(cluster, "order_events")
        if e["change"] == "backorder_routed"
    }
    assert len(routed_from_backorder) > 50
    for oid in ones:  # fully cancelled before any stock: never routed
        assert oid not in routed_from_backorder and not latest[oid]["shipments"]
    complete = [o for o in book.complete if latest[o]["shipments"]]
    assert complete and all(len(latest[o]["shipments"]) == 1 for o in complete)

    expiring = [o for o in book.orders if EXPIRING in book.orders[o]]
    wait_for(
        lambda: all(
            latest_by_key(cluster, "routed_orders")[o]["status"] == "unroutable" for o in expiring
        ),
        timeout=EXPIRY_S + 60,
        what="the app orders' backorders expired",
    )
    expired = latest_by_key(cluster, "routed_orders")[expiring[0]]
    assert expired["reasons"]["unroutable"] == "backorder_expired"
    queues = latest_by_key(cluster, "backorders")
    assert queues[EXPIRING]["backordered"] == 0
    waiting = sum(  # a wholly cancelled order is told on order-events, as before
        ln["qty"]
        for oid, d in latest_by_key(cluster, "routed_orders").items()
        for ln in d["backordered_lines"]
        if ln["sku"] in SCARCE and book.wanted(oid)
    )
    assert sum(queues[s]["backordered"] for s in SCARCE) == waiting


def test_a_sigkill_mid_stream_loses_no_backorder_and_routes_none_twice(
    cluster: Cluster, tmp_path: Path
) -> None:
    workers = start_workers(cluster, tmp_path)
    rnd = random.Random(16)
    book = Book()
    send(cluster, placed_orders(rnd, book, 200))
    check(cluster, book)
    inputs = ("supplier_feeds", "location_ops", "backorder_ops", "order_commands")
    events = [e for wave in waves(book, rnd, 12) for e in wave]
    streamer = Streamer(cluster, events, chunk=3, pause=0.3).start()
    victim = workers[0]
    with probes.OffsetReader(cluster) as offsets:
        wait_for(
            lambda: offsets.progressed(inputs, {}),
            timeout=60,
            what="the workers to commit backorder traffic",
        )
        mine = probes.assigned(victim, inputs)
        assert mine, "the victim owns none of the traffic's partitions"
        streamer.next_chunk()
        kill = probes.sigkill(victim, inputs, offsets)
        hit = {tp: n for tp, n in kill.in_flight.items() if tp in mine}
        assert hit, f"the kill hit no input in flight on {sorted(mine)}: {kill.in_flight}"
    victim.start()
    streamer.join()
    latest = check(cluster, book)  # nothing lost, nothing routed twice, first come first served
    shipments: dict[str, set[str]] = defaultdict(set)
    for e in messages(cluster, "order_events"):
        if e["change"] == "backorder_routed":
            shipments[e["order_id"]].add(repr(sorted(e["detail"]["shipments"])))
    assert shipments and all(len(s) == 1 for s in shipments.values()), "a backorder routed twice"
    assert sum(1 for d in latest.values() if d["shipments"]) > 50


def expected_receipt(eid: str, loc: str, lines: dict[str, int], days: float) -> Any:
    handle, key, value = receipt(eid, loc, lines)
    value["type"] = "expected_receipt"
    value["expected_date"] = iso(time.time() + days * 86400)
    return handle, key, value


def test_preorders_on_expected_supply_then_a_short_receipt(
    cluster: Cluster, tmp_path: Path
) -> None:
    start_workers(cluster, tmp_path)
    book = Book()
    send(cluster, [expected_receipt("ER-1", "WH-1", {"PRE-1": 10}, days=3)])
    send(cluster, [expected_receipt("ER-old", "WH-1", {"PRE-1": 5}, days=-1)])
    send(cluster, [book.place(f"P-{i:02d}", {"PRE-1": 1}) for i in range(15)])
    check(cluster, book)
    preorders = wait_for(
        lambda: (
            found
            if len(
                found := [
                    e["order_id"]
                    for e in messages(cluster, "order_events")
                    if e["change"] == "preorder_accepted"
                ]
            )
            >= 10
            else None
        ),
        what="ten preorders accepted",
    )
    assert len(set(preorders)) == len(preorders) == 10  # never beyond the supply expected
    dead = [d for d in messages(cluster, "dead_letters") if d["key"] == "WH-1"]
    assert dead and "is in the past" in dead[0]["error"]
    send(cluster, [book.receive("RC-1", "WH-1", {"PRE-1": 8})])  # short of the 10 announced
    latest = check(cluster, book)
    routed = [o for o in book.order_of if latest[o]["shipments"]]
    # accepted preorders first (oldest first): a short receipt leaves the youngest of them
    assert routed == [o for o in book.order_of if o in preorders][:8]
    queue = latest_by_key(cluster, "backorders")["PRE-1"]
    assert queue["backordered"] == 7 and queue["waiting_orders"] == 7


def preorder(oid: str, pre: dict[str, int], plain: dict[str, int]) -> tuple[str, str, Any]:
    """An order asking `pre` as preorder lines (units announced by an expected_receipt)."""
    handle, key, value = placed(oid, {**pre, **plain})
    for ln in value["lines"]:
        ln["preorder"] = ln["sku"] in pre
    return handle, key, value


def answered(cluster: Cluster, oid: str) -> str | None:
    """The change that answered the order's preorder (accepted or refused), once it did."""
    changes = [
        e["change"]
        for e in messages(cluster, "order_events")
        if e["order_id"] == oid and e["change"] in ("preorder_accepted", "preorder_refused")
    ]
    return changes[0] if changes else None


def test_preorders_asked_by_orders_are_granted_on_unclaimed_supply_or_refused_whole(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Each SKU's queue grants a preorder whole on the units announced and not yet claimed, or
    refuses it: the order is then dead-lettered whole, nothing reserved nor queued. A granted
    preorder is promised from the expected date (routed-orders) and routed when it lands."""
    start_workers(cluster, tmp_path)
    book = Book()
    send(cluster, [book.receive("rc-now", "ST-1", {"RT-2": 5})])
    send(cluster, [expected_receipt("ER-2", "WH-1", {"PRE-2": 6}, days=3)])
    wait_for(
        lambda: latest_by_key(cluster, "backorders").get("PRE-2", {}).get("preorderable") == 6,
        what="the announced supply on the SKU's queue",
    )
    asks = [("E-1", {"PRE-2": 4}, {"RT-2": 1}), ("E-2", {"PRE-2": 3}, {"RT-2": 1})]
    asks += [("E-3", {"PRE-2": 2}, {})]
    for oid, pre, plain in asks:  # one at a time: the queue sees them in this order
        send(cluster, [preorder(oid, pre, plain)])
        if oid != "E-2":
            book.orders[oid] = {**pre, **plain}
            book.order_of.append(oid)
        wait_for(lambda oid=oid: answered(cluster, oid), what=f"{oid}'s preorder answered")
    assert [answered(cluster, oid) for oid, _, _ in asks] == [
        "preorder_accepted",
        "preorder_refused",
        "preorder_accepted",
    ]
    latest = check(cluster, book)
    dead = [d for d in messages(cluster, "dead_letters") if d["key"] == "E-2"]
    assert [d["error"] for d in dead] == [
        "preorder of 3 x PRE-2 beyond expected supply: 2 expected and not yet claimed"
    ]
    assert dead[0]["source_topic"].endswith("web-orders")
    assert json.loads(dead[0]["raw"])["lines"][0]["preorder"] is True  # its own bytes
    assert "E-2" not in latest  # never decided: nothing reserved, routed nor queued
    assert latest_by_key(cluster, "stock_availability")["RT-2@ST-1"]["reserved"] == 1  # E-1's
    queue = latest_by_key(cluster, "backorders")["PRE-2"]
    assert (queue["backordered"], queue["waiting_orders"], queue["preorderable"]) == (6, 2, 0)

    # promised from the expected date: preparation, cut-off and transit on top of it
    expected = time.time() + 3 * 86400
    for oid in ("E-1", "E-3"):
        (line,) = latest[oid]["backordered_lines"]
        assert line["expected_date"] and line["promised_date"] == latest[oid]["promised_date"]
        assert line["promised_date"] > time.strftime("%Y-%m-%d", time.gmtime(expected - 600))
    assert latest["E-1"]["shipments"]  # its plain line was routed at once

    send(cluster, [book.receive("RC-2", "WH-1", {"PRE-2": 6})])  # the announced receipt
    latest = check(cluster, book)
    for oid in ("E-1", "E-3"):
        pre = [ln for s in latest[oid]["shipments"] for ln in s["lines"] if ln["sku"] == "PRE-2"]
        assert sum(ln["qty"] for ln in pre) == book.orders[oid]["PRE-2"], oid
        assert not latest[oid]["backordered_lines"]
    assert latest_by_key(cluster, "backorders")["PRE-2"]["backordered"] == 0


def test_lines_cancelled_while_a_preorder_is_awaited_then_a_short_receipt_drops_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A line cancellation read right behind its order_placed (the preorder answer cannot be
    in yet) is applied, not dead-lettered: the ask shrinks, the granted claim keeps only what is
    left, the plain line routes what is left. A short receipt then drops the preorder back to
    a plain backorder: told on order-events, and routed-orders no longer promises its date."""
    start_workers(cluster, tmp_path)
    book = Book()
    send(cluster, [book.receive("rc-rt3", "ST-1", {"RT-3": 5})])
    send(cluster, [expected_receipt("ER-3", "WH-1", {"PRE-3": 5}, days=3)])
    wait_for(
        lambda: latest_by_key(cluster, "backorders").get("PRE-3", {}).get("preorderable") == 5,
        what="the announced supply on the SKU's queue",
    )
    book.orders["F-1"] = {"PRE-3": 4, "RT-3": 2}
    book.order_of.append("F-1")
    send(
        cluster,
        [
            preorder("F-1", {"PRE-3": 4}, {"RT-3": 2}),
            book.cancel_lines("F-1", 1, {"PRE-3": 1, "RT-3": 1}),
        ],
    )
    wait_for(lambda: answered(cluster, "F-1"), what="F-1's preorder answered")
    assert answered(cluster, "F-1") == "preorder_accepted"
    latest = check(cluster, book)
    assert not [d for d in messages(cluster, "dead_letters") if d["key"] == "F-1"]
    changes = [e["change"] for e in messages(cluster, "order_events") if e["order_id"] == "F-1"]
    assert changes[0] == "lines_cancelled" and "preorder_accepted" in changes
    (line,) = latest["F-1"]["backordered_lines"]
    assert (line["sku"], line["qty"]) == ("PRE-3", 3) and line["expected_date"]
    assert [ln for s in latest["F-1"]["shipments"] for ln in s["lines"]] == [
        {"sku": "RT-3", "qty": 1}
    ]
    queue = latest_by_key(cluster, "backorders")["PRE-3"]
    assert (queue["backordered"], queue["preorderable"]) == (3, 2)  # the cancelled unit is free

    send(cluster, [book.receive("RC-3", "WH-1", {"PRE-3": 2})])  # short of the 3 claimed
    wait_for(
        lambda: [
            e
            for e in messages(cluster, "order_events")
            if e["order_id"] == "F-1" and e["change"] == "preorder_dropped"
        ],
        what="F-1's preorder dropped",
    )
    latest = check(cluster, book)
    (line,) = latest["F-1"]["backordered_lines"]
    assert (line["qty"], line["expected_date"], line["promised_date"]) == (3, None, None)
    placed_date = [s.get("promised_delivery") for s in latest["F-1"]["shipments"]]
    assert latest["F-1"]["promised_date"] == max(d for d in placed_date if d)


def test_a_short_pick_of_a_ship_complete_order_routes_it_again_whole(
    cluster: Cluster, tmp_path: Path
) -> None:
    """ship_complete never splits, also after a short pick: the shipment is given back whole
    where it was picked short (the picked units return to stock, its slot is released) and
    the whole order is routed again as one shipment, where everything is."""
    start_workers(cluster, tmp_path)
    book = Book()
    send(
        cluster,
        [
            book.receive("rc-q1", "ST-1", {"SQ-1": 2, "SQ-2": 1}),
            book.receive("rc-q2", "WH-1", {"SQ-1": 2, "SQ-2": 1}),
        ],
    )
    wait_for(
        lambda: len([k for k in latest_by_key(cluster, "stock_availability") if "SQ-" in k]) == 4,
        what="the receipts",
    )
    probes.wait_views(cluster)
    send(cluster, [book.place("Q-1", {"SQ-1": 2, "SQ-2": 1}, split="ship_complete")])
    latest = check(cluster, book)
    (first,) = latest["Q-1"]["shipments"]
    short_at = first["location_id"]
    other = "WH-1" if short_at == "ST-1" else "ST-1"
    sid = first["shipment_id"]
    picked = [{"sku": "SQ-1", "qty": 1}, {"sku": "SQ-2", "qty": 1}]
    send(
        cluster,
        [
            fulfilment("Q-1", sid, short_at, "accepted"),
            fulfilment("Q-1", sid, short_at, "picked", lines=picked),
        ],
    )
    wait_for(
        lambda: latest_by_key(cluster, "routed_orders")["Q-1"]["attempt"] >= 2,
        what="Q-1 routed again after its short pick",
    )
    latest = check(cluster, book)  # ship_complete: one shipment, no waiting line beside it
    (again,) = latest["Q-1"]["shipments"]
    assert again["location_id"] == other and again["shipment_id"] != sid
    assert sorted((ln["sku"], ln["qty"]) for ln in again["lines"]) == [("SQ-1", 2), ("SQ-2", 1)]
    (short,) = [
        e
        for e in messages(cluster, "order_events")
        if e["order_id"] == "Q-1" and e["change"] == "short_pick"
    ]
    assert short["detail"]["ship_complete"] is True
    assert short["detail"]["missing"] == [{"sku": "SQ-1", "qty": 1}]

    def given_back() -> bool:
        sa = latest_by_key(cluster, "stock_availability")
        there = (sa[f"SQ-1@{short_at}"], sa[f"SQ-2@{short_at}"])
        return [(r["on_hand"], r["reserved"]) for r in there] == [(1, 0), (1, 0)]

    wait_for(given_back, what="the picked units back in stock, the missing one written off")
    wait_for(
        lambda: latest_by_key(cluster, "store_load")[short_at]["open_orders"] == 0,
        what="the short-picked shipment's slot released",
    )


def test_late_supply_drops_its_preorders_and_lands_as_plain_stock(
    cluster: Cluster, tmp_path: Path
) -> None:
    """An announced receipt not in by the end of its expected day (network time) drops the
    preorders it covered back to plain backorders (preorder_dropped, reason late; no dates on
    routed-orders), takes no new preorder, and when it comes at last its units are plain
    stock, routed to the waiting orders oldest first."""
    # receipts stamped later at locations on every supplier-feeds partition move every
    # worker's network clock (each applies the partitions it owns)
    parts = TOPICS.supplier_feeds.partitions
    clocks = [loc["location_id"] for loc in LOCATIONS]
    n = 0
    while {partition_of(c.encode(), parts) for c in clocks} != set(range(parts)):
        clocks.append(f"CK-{n}")
        n += 1
    extra = [location(c, "warehouse", lat=47.0, lon=1.0) for c in clocks[len(LOCATIONS) :]]
    use_policy(cluster, tmp_path)
    load_locations(cluster, tmp_path, LOCATIONS + extra)
    workers = [cluster.worker().start(), cluster.worker().start()]
    probes.wait_views(cluster, workers)
    book = Book()
    due = time.time() + 60
    send(cluster, [expected_receipt("ER-4", "WH-1", {"PRE-4": 4}, days=60 / 86400)])
    wait_for(
        lambda: latest_by_key(cluster, "backorders").get("PRE-4", {}).get("preorderable") == 4,
        what="the announced supply on the SKU's queue",
    )
    send(cluster, [book.place("G-1", {"PRE-4": 2})])
    send(cluster, [book.place("G-2", {"PRE-4": 2})])
    check(cluster, book)
    wait_for(
        lambda: all(
            latest_by_key(cluster, "routed_orders")[o]["backordered_lines"][0]["expected_date"]
            for o in ("G-1", "G-2")
        ),
        what="both waiting lines accepted as preorders on the supply",
    )
    later = iso(due + 2 * 86400)  # past the end of the expected day, wherever
    ticks = []
    for c in clocks:
        _, key, value = receipt(f"tick-{c}", c, {"CLK-1": 1})
        ticks.append(("supplier_feeds", key, {**value, "occurred_at": later}))
    send(cluster, ticks)

    def dropped() -> list[Any]:
        return [
            e
            for e in messages(cluster, "order_events")
            if e["change"] == "preorder_dropped" and e["order_id"] in ("G-1", "G-2")
        ]

    drops = wait_for(lambda: len(dropped()) >= 2 and dropped(), what="both preorders dropped")
    assert sorted(e["order_id"] for e in drops) == ["G-1", "G-2"]  # each told once
    assert all(e["detail"]["reason"] == "late" for e in drops)
    latest = check(cluster, book)
    for oid in ("G-1", "G-2"):
        (line,) = latest[oid]["backordered_lines"]
        assert (line["qty"], line["expected_date"], line["promised_date"]) == (2, None, None)
        assert latest[oid]["promised_date"] is None
    queue = latest_by_key(cluster, "backorders")["PRE-4"]
    assert (queue["backordered"], queue["waiting_orders"], queue["preorderable"]) == (4, 2, 0)

    send(cluster, [book.receive("RC-4", "WH-1", {"PRE-4": 3})])  # at last, and short
    latest = check(cluster, book)
    assert [ln["qty"] for s in latest["G-1"]["shipments"] for ln in s["lines"]] == [2]
    assert not latest["G-2"]["shipments"]  # the oldest first: G-2 waits for the last unit
    assert [ln["qty"] for ln in latest["G-2"]["backordered_lines"]] == [2]
    assert len(dropped()) == 2  # no drop when the late receipt lands
