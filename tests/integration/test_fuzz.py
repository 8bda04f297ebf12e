"""Bad-input fuzz: adversarial messages on every input topic, mixed with good stock events.

Hypothesis generates the bad messages up front (derandomized, so every run sends the same set);
they go, interleaved with a few hundred good events and re-sent duplicates, to one worker.
Then: the worker is alive and healthy, every bad message is in dead-letters exactly once (matched
by its raw bytes) with a reason, and the good events folded to exactly the oracle's stock.
"""

from __future__ import annotations

import base64
import json
import random
import time
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.records import MAX_QTY
from tests.integration import probes
from tests.integration.harness import Cluster, iso, messages, send, wait_for
from tests.integration.test_chaos import assert_matches
from tests.integration.test_stock_table import load_locations, oracle, stock_events

INPUTS = ["pos_sales", "supplier_feeds", "web_orders", "fulfilment_events", "returns", "locations"]
N_BAD = 160

# no surrogates: keys and JSON must still be encodable (bad *content*, not an unsendable message)
text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)
unknown_id = text.map(lambda s: f"ZZ-{s}")
huge = st.one_of(st.integers(MAX_QTY + 1, 10**30), st.just(10**40), st.just(2**63))
wrong_qty = st.one_of(
    huge,
    st.integers(-(10**9), 0),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
)


def line(qty: Any, sku: Any = "SKU-001") -> dict[str, Any]:
    return {"sku": sku, "qty": qty}


def sale(loc: Any = "ST-1", lines: Any = None) -> dict[str, Any]:
    return {
        "event_id": "E",
        "occurred_at": iso(),
        "location_id": loc,
        "lines": lines if lines is not None else [line(1)],
    }


def feed(kind: Any = "receipt", loc: Any = "ST-3", lines: Any = None) -> dict[str, Any]:
    return {**sale(loc, lines), "type": kind}


def order(order_id: str, **over: Any) -> dict[str, Any]:
    base = {
        "event_id": "E",
        "occurred_at": iso(),
        "type": "order_placed",
        "order_id": order_id,
        "channel": "web",
        "customer": {"lat": 48.8, "lon": 2.3},
        "delivery": {"mode": "home", "service": "standard"},
        "lines": [{"sku": "SKU-001", "qty": 1, "unit_price": 9.5}],
        "currency": "EUR",
        "payment": {"method": "card", "reference": "r"},
    }
    base.update(over)
    return base


def fulfilment(order_id: str, **over: Any) -> dict[str, Any]:
    base = {
        "event_id": "E",
        "occurred_at": iso(),
        "order_id": order_id,
        "shipment_id": f"{order_id}/s1",
        "location_id": "ST-1",
        "type": "shipped",
    }
    base.update(over)
    return base


def a_return(order_id: str, **over: Any) -> dict[str, Any]:
    base = {
        "event_id": "E",
        "occurred_at": iso(),
        "order_id": order_id,
        "location_id": "ST-1",
        "lines": [{"sku": "SKU-001", "qty": 1, "resellable": True}],
    }
    base.update(over)
    return base


def nested(depth: int, obj: bool) -> bytes:
    return (b'{"a":' * depth + b"1" + b"}" * depth) if obj else (b"[" * depth + b"]" * depth)


# (handle, key, value): value is bytes (sent as is) or a dict (JSON-encoded later)
stock_handle = st.sampled_from(["pos_sales", "supplier_feeds"])
order_id = text.map(lambda s: f"fz-{s}")

generic_bad = st.one_of(
    # not JSON at all, possibly not even UTF-8
    st.tuples(st.sampled_from(INPUTS), st.binary(max_size=40)).map(
        lambda t: (t[0], "K", b"\xff{" + t[1])
    ),
    st.tuples(st.sampled_from(INPUTS), text).map(lambda t: (t[0], "K", b"{" + t[1].encode())),
    # JSON, but not an object
    st.tuples(
        st.sampled_from(INPUTS),
        st.one_of(st.integers(), text, st.lists(st.integers(), max_size=4), st.booleans()),
    ).map(lambda t: (t[0], "K", orjson.dumps(t[1]))),
    # deeply nested (beyond the parser's recursion limit), even inside an ignored extra field
    st.tuples(st.sampled_from(INPUTS), st.integers(300, 5000), st.booleans()).map(
        lambda t: (t[0], "K", nested(t[1], t[2]))
    ),
    st.tuples(stock_handle, st.integers(300, 3000)).map(
        lambda t: (
            t[0],
            "ST-1",
            orjson.dumps(feed() if t[0] == "supplier_feeds" else sale())[:-1]
            + b',"extra":'
            + nested(t[1], False)
            + b"}",
        )
    ),
)

stock_bad = st.one_of(
    st.tuples(stock_handle, wrong_qty).map(
        lambda t: (
            t[0],
            "ST-1",
            feed(lines=[line(t[1])]) if t[0] == "supplier_feeds" else sale(lines=[line(t[1])]),
        )
    ),
    st.tuples(stock_handle, unknown_id).map(
        lambda t: (t[0], t[1], feed(loc=t[1]) if t[0] == "supplier_feeds" else sale(loc=t[1]))
    ),
    st.one_of(st.just(""), st.just("S" * 129), st.integers()).map(
        lambda sku: ("pos_sales", "ST-2", sale("ST-2", [line(1, sku)]))
    ),
    st.sampled_from(["event_id", "occurred_at", "location_id", "lines"]).map(
        lambda f: ("pos_sales", "ST-2", {k: v for k, v in sale("ST-2").items() if k != f})
    ),
    st.sampled_from(["2024-01-01T00:00:00", "yesterday", "", "2024-13-01T00:00:00Z"]).map(
        lambda ts: ("pos_sales", "ST-2", {**sale("ST-2"), "occurred_at": ts})
    ),
    st.one_of(text, st.integers())
    .filter(lambda k: k not in ("receipt", "stock_count"))
    .map(lambda k: ("supplier_feeds", "ST-3", feed(kind=k))),
    st.just(("supplier_feeds", "ST-3", feed(lines=[line(0)]))),
    st.just(("pos_sales", "ST-2", sale("ST-2", []))),
    st.integers(501, 600).map(lambda n: ("pos_sales", "ST-2", sale("ST-2", [line(1)] * n))),
)

order_bad = st.one_of(
    # incomplete or ill-typed orders
    st.tuples(
        order_id, st.sampled_from(["customer", "delivery", "lines", "payment", "currency"])
    ).map(lambda t: ("web_orders", t[0], {k: v for k, v in order(t[0]).items() if k != t[1]})),
    st.tuples(order_id, st.floats(91, 1e300)).map(
        lambda t: ("web_orders", t[0], order(t[0], customer={"lat": t[1], "lon": 0}))
    ),
    st.tuples(order_id, huge).map(
        lambda t: (
            "web_orders",
            t[0],
            order(t[0], lines=[{"sku": "S", "qty": t[1], "unit_price": 1.0}]),
        )
    ),
    st.tuples(order_id, text).map(lambda t: ("web_orders", t[0], order(t[0], type=t[1]))),
    # the message key must be the order id
    st.tuples(order_id, text).map(lambda t: ("web_orders", f"other-{t[1]}", order(t[0]))),
    # unknown references and lifecycle events out of order: an order never placed
    order_id.map(lambda o: ("web_orders", o, order(o, type="order_cancelled"))),
    st.tuples(
        order_id, st.sampled_from(["accepted", "picked", "shipped", "collected", "rejected"])
    ).map(lambda t: ("fulfilment_events", t[0], fulfilment(t[0], type=t[1]))),
    st.tuples(order_id, unknown_id).map(
        lambda t: ("fulfilment_events", t[0], fulfilment(t[0], location_id=t[1]))
    ),
    order_id.map(lambda o: ("fulfilment_events", o, fulfilment(o, type="teleported"))),
    order_id.map(lambda o: ("returns", o, a_return(o))),
    st.tuples(order_id, wrong_qty).map(
        lambda t: (
            "returns",
            t[0],
            a_return(t[0], lines=[{"sku": "S", "qty": t[1], "resellable": True}]),
        )
    ),
)

location_bad = st.tuples(
    text.map(lambda s: f"FZ-{s}"),
    st.sampled_from(["kind", "lat", "lon", "capacity_per_hour", "name"]),
    st.one_of(text, st.floats(1000, 1e300), huge, st.lists(st.integers(), max_size=2)),
).map(
    lambda t: (
        "locations",
        t[0],
        {
            "location_id": t[0],
            "kind": "castle" if t[1] == "kind" else "store",
            "name": "x" * 300 if t[1] == "name" else "fz",
            "lat": t[2] if t[1] == "lat" else 1.0,
            "lon": t[2] if t[1] == "lon" else 2.0,
            "capacity_per_hour": t[2] if t[1] == "capacity_per_hour" else 1,
        },
    )
)

bad_message = st.one_of(generic_bad, stock_bad, order_bad, location_bad)


def generate_bad(n: int) -> list[tuple[str, str, bytes]]:
    """Run hypothesis once, collect its examples, and give each a unique raw byte string."""
    collected: list[tuple[str, str, Any]] = []

    @settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(bad_message)
    def collect(example: tuple[str, str, Any]) -> None:
        collected.append(example)

    collect()
    out: list[tuple[str, str, bytes]] = []
    seen: set[bytes] = set()
    for i, (handle, key, value) in enumerate(collected):
        if isinstance(value, dict):
            if "event_id" in value:
                value = {**value, "event_id": f"bad-{i}"}
            else:
                value = {**value, "_fuzz": i}
            raw = json.dumps(value, ensure_ascii=False).encode()  # orjson stops at 64 bits
        else:
            raw = value
        if raw in seen:
            continue
        seen.add(raw)
        out.append((handle, key, raw))
    return out


def raw_of(letter: dict[str, Any]) -> bytes:
    if letter["raw_encoding"] == "base64":
        return base64.b64decode(letter["raw"])
    return str(letter["raw"]).encode()


def test_bad_input_fuzz_never_crashes_the_worker_dead_letters_each_once_and_good_ones_apply(
    cluster: Cluster, tmp_path: Path
) -> None:
    bad = generate_bad(N_BAD)
    assert len(bad) >= N_BAD // 2, "hypothesis should give a varied set"
    assert {h for h, _, _ in bad} == set(INPUTS), "every input topic gets bad messages"

    good = stock_events(400, seed=85)
    rnd = random.Random(85)
    # repeated event ids: the same message again, and a different one reusing an id (same
    # topic and key, so after the original): neither may change anything nor be dead-lettered
    repeats = rnd.sample(good, 40)
    reuse = [
        (h, k, {**m, "lines": [{"sku": "SKU-REUSED", "qty": 99}]})
        for h, k, m in rnd.sample(good, 20)
        if h == "pos_sales" or m["type"] == "receipt"
    ]
    good_all = good + repeats + reuse

    # bad ones spread among the good; the repeats after their originals (same topic and key)
    mixed: list[tuple[str, str | None, Any]] = list(good)
    for item in bad:
        mixed.insert(rnd.randrange(0, len(mixed) + 1), item)
    mixed += repeats + reuse

    load_locations(cluster, tmp_path)
    worker = cluster.worker().start()
    started = time.time()
    send(cluster, mixed)

    assert_matches(cluster, oracle(good_all), 120, "good events applied among the bad")

    bad_raws = {raw: (handle, key) for handle, key, raw in bad}

    def all_dead() -> list[dict[str, Any]] | None:
        d = messages(cluster, "dead_letters")
        return d if len(d) >= len(bad) else None

    try:
        dead = wait_for(all_dead, timeout=90, what="every bad message in dead-letters")
    except AssertionError:
        got = {raw_of(d) for d in messages(cluster, "dead_letters")}
        missing = [(h, k, r[:120]) for h, k, r in bad if r not in got][:5]
        raise AssertionError(f"bad messages not dead-lettered, e.g. {missing}") from None
    probes.wait_drained(cluster)  # every input handled: a second dead letter would show now
    dead = messages(cluster, "dead_letters")
    counts: dict[bytes, int] = {}
    for letter in dead:
        raw = raw_of(letter)
        counts[raw] = counts.get(raw, 0) + 1
        assert raw in bad_raws, f"a good message was dead-lettered: {letter}"
        handle, key = bad_raws[raw]
        assert letter["source_topic"] == cluster.name(handle)
        assert letter["key"] == key
        assert letter["error"].strip(), f"no reason for {letter}"
        assert letter["offset"] >= 0
    twice = [r[:80] for r, c in counts.items() if c != 1]
    assert not twice, f"dead-lettered more than once: {twice[:5]}"
    assert set(counts) == set(bad_raws)

    assert worker.proc is not None and worker.proc.poll() is None, "the worker crashed"
    assert worker.healthy(), "/health must answer 200 after the fuzz"
    assert time.time() - started < 240
