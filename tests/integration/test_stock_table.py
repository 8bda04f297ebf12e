"""The stock table against a real broker: oracle fold, duplicates, bad input, SIGKILL."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

from domain.dedupe import DAY_S
from tests.integration import probes
from tests.integration.harness import (
    Cluster,
    iso,
    latest_by_key,
    location,
    messages,
    read_raw,
    send,
    wait_for,
)

LOCATIONS = [
    location("WH-1", "warehouse", safety_stock=0),
    location("ST-1", safety_stock=2),
    location("ST-2", safety_stock=1),
    location("ST-3", safety_stock=0),
    location("SUP-1", "supplier", safety_stock=0),
    location("ST-4", safety_stock=3),
]


def load_locations(cluster: Cluster, tmp: Path) -> None:
    f = tmp / "locations.json"
    f.write_text(json.dumps(LOCATIONS))
    cluster.cli("locations", "load", str(f))


def stock_events(n: int, seed: int) -> list[tuple[str, str, dict[str, Any]]]:
    rnd = random.Random(seed)
    skus = [f"SKU-{i:03d}" for i in range(40)]
    out = []
    for i in range(n):
        loc = rnd.choice(LOCATIONS)["location_id"]
        r = rnd.random()
        # Sales and receipts commute; a stock count does not, and pos-sales and supplier-feeds
        # are two topics with no order between them. Counts go to the supplier, which has no
        # till: its feed is one ordered stream (a drop-ship stock level, as in the contract).
        if loc == "SUP-1":
            r = max(r, 0.5)
        lines = [{"sku": s, "qty": rnd.randint(1, 6)} for s in rnd.sample(skus, rnd.randint(1, 4))]
        eid = f"ev-{seed}-{i}"
        if r < 0.45:
            msg = {"event_id": eid, "occurred_at": iso(), "location_id": loc, "lines": lines}
            out.append(("pos_sales", loc, msg))
        else:
            kind = "stock_count" if loc == "SUP-1" and r > 0.8 else "receipt"
            if kind == "stock_count":
                lines = [{"sku": ln["sku"], "qty": rnd.randint(0, 20)} for ln in lines]
            msg = {
                "event_id": eid,
                "occurred_at": iso(),
                "type": kind,
                "location_id": loc,
                "lines": lines,
            }
            out.append(("supplier_feeds", loc, msg))
    return out


def oracle(events: list[tuple[str, str, dict[str, Any]]]) -> dict[str, int]:
    """What each sku@location must show: applied once each, in order per location."""
    on_hand: dict[str, int] = {}
    seen: set[str] = set()
    for handle, _, msg in events:
        if msg["event_id"] in seen:
            continue
        seen.add(msg["event_id"])
        for ln in msg["lines"]:
            key = f"{ln['sku']}@{msg['location_id']}"
            if handle == "pos_sales":
                on_hand[key] = on_hand.get(key, 0) - ln["qty"]
            elif msg["type"] == "receipt":
                on_hand[key] = on_hand.get(key, 0) + ln["qty"]
            else:
                on_hand[key] = ln["qty"]
    return on_hand


def matches(cluster: Cluster, expected: dict[str, int]) -> bool:
    safety = {loc["location_id"]: loc["safety_stock"] for loc in LOCATIONS}
    got = latest_by_key(cluster, "stock_availability")
    for key, on_hand in expected.items():
        rec = got.get(key)
        if rec is None or rec["on_hand"] != on_hand:
            return False
        loc = key.split("@")[1]
        if rec["available"] != max(0, on_hand - safety[loc]) or rec["reserved"] != 0:
            return False
    return set(got) == set(expected)


def diff(cluster: Cluster, expected: dict[str, int]) -> list[str]:
    got = latest_by_key(cluster, "stock_availability")
    return [
        f"{k}: expected {v}, got {got.get(k, {}).get('on_hand')}"
        for k, v in expected.items()
        if got.get(k, {}).get("on_hand") != v
    ][:10]


def test_thousands_of_stock_events_fold_to_exactly_the_oracle(
    cluster: Cluster, tmp_path: Path
) -> None:
    load_locations(cluster, tmp_path)
    cluster.worker().start()
    events = stock_events(3000, seed=1)
    send(cluster, events)
    expected = oracle(events)
    try:
        wait_for(lambda: matches(cluster, expected), timeout=120, what="stock to match the oracle")
    except AssertionError:
        raise AssertionError(f"mismatch: {diff(cluster, expected)}") from None
    assert any(v < 0 for v in expected.values()), "the workload should drive some on_hand negative"


def test_a_repeated_event_id_changes_nothing(cluster: Cluster, tmp_path: Path) -> None:
    load_locations(cluster, tmp_path)
    cluster.worker().start()
    events = stock_events(400, seed=2)
    send(cluster, events)
    expected = oracle(events)
    wait_for(lambda: matches(cluster, expected), timeout=90, what="first pass")
    rnd = random.Random(7)
    again = rnd.sample(events, 150)
    marker = (
        "supplier_feeds",
        "ST-3",
        {
            "event_id": "marker",
            "occurred_at": iso(),
            "type": "receipt",
            "location_id": "ST-3",
            "lines": [{"sku": "MARK", "qty": 1}],
        },
    )
    send(cluster, [*again, marker])
    expected["MARK@ST-3"] = 1
    wait_for(lambda: "MARK@ST-3" in latest_by_key(cluster, "stock_availability"), timeout=60)
    probes.wait_drained(cluster)  # the re-sends on other partitions too: nothing more to come
    assert matches(cluster, expected), diff(cluster, expected)


BAD_INPUTS: list[tuple[str, str | None, bytes, str]] = [
    ("pos_sales", "ST-1", b"{not json", "malformed JSON"),
    ("pos_sales", "ST-1", b"[1, 2, 3]", "not a JSON object"),
    ("pos_sales", "ST-1", b"\xff\xfe\x00binary", "malformed JSON"),
    (
        "pos_sales",
        "ST-1",
        json.dumps(
            {
                "event_id": "b1",
                "occurred_at": iso(),
                "location_id": "ST-1",
                "lines": [{"sku": "A", "qty": 0}],
            }
        ).encode(),
        "lines.0.qty",
    ),
    (
        "pos_sales",
        "ST-1",
        json.dumps(
            {
                "event_id": "b2",
                "occurred_at": iso(),
                "location_id": "ST-1",
                "lines": [{"sku": "A", "qty": -3}],
            }
        ).encode(),
        "greater than 0",
    ),
    (
        "pos_sales",
        "ST-1",
        json.dumps(
            {
                "event_id": "b3",
                "occurred_at": iso(),
                "location_id": "ST-1",
                "lines": [{"sku": "A", "qty": "5"}],
            }
        ).encode(),
        "valid integer",
    ),
    (
        "pos_sales",
        "NOPE",
        json.dumps(
            {
                "event_id": "b4",
                "occurred_at": iso(),
                "location_id": "NOPE",
                "lines": [{"sku": "A", "qty": 1}],
            }
        ).encode(),
        "unknown location_id 'NOPE'",
    ),
    (
        "supplier_feeds",
        "ST-1",
        json.dumps(
            {
                "event_id": "b5",
                "occurred_at": iso(),
                "type": "receipt",
                "location_id": "ST-1",
                "lines": [{"sku": "A", "qty": 0}],
            }
        ).encode(),
        "receipt quantity must be > 0",
    ),
    (
        "supplier_feeds",
        "ST-1",
        json.dumps(
            {
                "event_id": "b6",
                "occurred_at": iso(),
                "type": "gift",
                "location_id": "ST-1",
                "lines": [{"sku": "A", "qty": 1}],
            }
        ).encode(),
        "type",
    ),
    (
        "supplier_feeds",
        "ST-1",
        json.dumps(
            {
                "event_id": "b7",
                "type": "receipt",
                "location_id": "ST-1",
                "lines": [{"sku": "A", "qty": 1}],
            }
        ).encode(),
        "occurred_at",
    ),
    (
        "locations",
        "X-1",
        json.dumps(
            {"location_id": "X-1", "kind": "castle", "name": "x", "lat": 1, "lon": 2}
        ).encode(),
        "kind",
    ),
]


def test_bad_inputs_land_in_dead_letters_with_a_reason_and_good_ones_still_apply(
    cluster: Cluster, tmp_path: Path
) -> None:
    load_locations(cluster, tmp_path)
    cluster.worker().start()
    good = stock_events(50, seed=3)
    mixed: list[tuple[str, str | None, Any]] = []
    for i, (handle, key, raw, _) in enumerate(BAD_INPUTS):
        mixed.append((handle, key, raw))
        mixed.extend(good[i * 4 : (i + 1) * 4])
    mixed.extend(good[len(BAD_INPUTS) * 4 :])
    send(cluster, mixed)
    expected = oracle(good)
    try:
        wait_for(lambda: matches(cluster, expected), timeout=90, what="good events applied")
    except AssertionError:
        raise AssertionError(f"mismatch: {diff(cluster, expected)}") from None
    dead = wait_for(
        lambda: (d := messages(cluster, "dead_letters")) and len(d) >= len(BAD_INPUTS) and d,
        timeout=60,
        what="dead letters",
    )
    assert len(dead) == len(BAD_INPUTS)
    for (handle, key, raw, reason), letter in zip(
        BAD_INPUTS, sorted(dead, key=lambda d: BAD_INPUTS_ORDER(d)), strict=True
    ):
        assert letter["source_topic"] == cluster.name(handle)
        assert reason in letter["error"], (reason, letter["error"])
        if letter["raw_encoding"] == "utf-8":
            assert letter["raw"].encode() == raw
        else:
            import base64

            assert base64.b64decode(letter["raw"]) == raw
        assert letter["key"] == key and letter["offset"] >= 0


def BAD_INPUTS_ORDER(letter: dict[str, Any]) -> int:  # noqa: N802 - reads like the table above
    raws = [raw for _, _, raw, _ in BAD_INPUTS]
    import base64

    raw = (
        letter["raw"].encode()
        if letter["raw_encoding"] == "utf-8"
        else base64.b64decode(letter["raw"])
    )
    return raws.index(raw)


def test_a_worker_killed_mid_stream_and_restarted_matches_the_oracle_exactly(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Two SIGKILLs, each right after a chunk of input was acknowledged and once the worker
    incarnation has committed input of its own (so each lands mid-fold, with input in flight:
    asserted); more input arrives while the worker is down each time."""
    from tests.integration.test_chaos import Streamer  # it imports this module: not at the top

    load_locations(cluster, tmp_path)
    worker = cluster.worker().start()
    events = stock_events(4000, seed=4)
    inputs = ("pos_sales", "supplier_feeds")
    kills: list[probes.Kill] = []
    send(cluster, events[:1000])
    # (streamed once the worker is folding, then sent while it is down)
    plan = ((events[1000:2000], events[2000:3000]), (events[3000:3500], events[3500:]))
    with probes.OffsetReader(cluster) as offsets:
        for n, (streamed, while_down) in enumerate(plan, start=1):
            since = kills[-1].committed if kills else {}
            wait_for(
                lambda since=since: offsets.progressed(inputs, since),
                timeout=90,
                interval=0.2,
                what=f"kill {n}: the worker to commit input of its own",
            )
            streamer = Streamer(cluster, streamed, chunk=100, pause=0.1).start()
            streamer.next_chunk()
            kills.append(probes.sigkill(worker, inputs, offsets))
            assert kills[-1].in_flight, f"kill {n} hit a worker with nothing in flight"
            streamer.join()
            send(cluster, while_down)
            worker.start()
            assert probes.wait_worker_pid(worker) != kills[-1].pid
    expected = oracle(events)
    try:
        wait_for(lambda: matches(cluster, expected), timeout=180, what="stock after SIGKILLs")
    except AssertionError:
        raise AssertionError(f"mismatch: {diff(cluster, expected)}") from None


def test_event_ids_older_than_the_dedupe_window_are_pruned_from_state_and_changelog(
    cluster: Cluster, tmp_path: Path
) -> None:
    load_locations(cluster, tmp_path)
    cluster.worker().start()
    period = int(time.time() // (7 * DAY_S))  # the default 7-day window
    old_ms = (period - 2) * 7 * DAY_S * 1000 + 60_000  # two periods back: pruned
    now_ms = int(time.time() * 1000)

    sales = [
        (
            "pos_sales",
            "ST-3",
            {
                "event_id": event_id,
                "occurred_at": iso(),
                "location_id": "ST-3",
                "lines": [{"sku": "PRUNE", "qty": 1}],
            },
            ts,
        )
        for event_id, ts in [("OLD-1", old_ms), ("OLD-2", old_ms), ("NEW-1", now_ms)]
    ]
    send(cluster, sales)
    # every sale applied once (the pruned ids had been applied before they were pruned)
    wait_for(
        lambda: (
            latest_by_key(cluster, "stock_availability").get("PRUNE@ST-3", {}).get("on_hand") == -3
        ),
        timeout=60,
        what="the three sales folded",
    )
    old, new = f"{period - 2:06d}", f"{period:06d}"

    def pruned() -> dict[str, Any] | None:
        """The changelog's last record per key once NEW-1's chunk is in: by then no record of
        the expired period may be live (its chunk tombstoned, or never written when the old
        ids and NEW-1 were one batch). Ids are chunked: no changelog record per id."""
        records = asyncio.run(read_raw(cluster, f"{cluster.app_id}-seen_events-changelog"))
        c = {json.loads(k or b"null"): None if v is None else json.loads(v) for k, v in records}
        live_new = [v for k, v in c.items() if k.startswith(new + "~") and v]
        if not any(i == "NEW-1" for v in live_new for i, _ in v):
            return None
        return c

    log = wait_for(pruned, timeout=30, what="NEW-1's chunk")
    assert all("~" in k for k in log), log  # chunks only
    assert all(v is None for k, v in log.items() if k.startswith(old)), log


def test_a_new_safety_stock_re_publishes_availability_without_any_stock_event(
    cluster: Cluster, tmp_path: Path
) -> None:
    load_locations(cluster, tmp_path)
    cluster.worker().start()
    receipt = {
        "event_id": "r-safety",
        "occurred_at": iso(),
        "type": "receipt",
        "location_id": "ST-1",
        "lines": [{"sku": "SAFE-1", "qty": 10}, {"sku": "SAFE-2", "qty": 3}],
    }
    send(cluster, [("supplier_feeds", "ST-1", receipt)])

    def available() -> dict[str, int]:
        latest = latest_by_key(cluster, "stock_availability")
        return {k: v["available"] for k, v in latest.items() if k.startswith("SAFE-")}

    wait_for(lambda: available() == {"SAFE-1@ST-1": 8, "SAFE-2@ST-1": 1}, what="safety 2")
    st1 = next(loc for loc in LOCATIONS if loc["location_id"] == "ST-1")
    send(cluster, [("locations", "ST-1", {**st1, "safety_stock": 5})])
    wait_for(lambda: available() == {"SAFE-1@ST-1": 5, "SAFE-2@ST-1": 0}, what="safety 5")
