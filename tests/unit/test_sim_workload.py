"""The workload generator: valid events, realistic shape, reproducible, fast."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from functools import cache

import orjson
import pytest
from pydantic import BaseModel

from sim.network import generate_network
from sim.workload import Catalogue, Emission, Workload, initial_stock
from streams.records import MAX_LINES, PosSale, SupplierFeed, WebOrder
from streams.topics import TOPICS

PARIS = timezone(timedelta(hours=1))
FRIDAY = datetime(2025, 11, 28, 0, 0, tzinfo=PARIS)  # Black Friday; the 30th is a Sunday
MODELS: dict[str, type[BaseModel]] = {
    TOPICS.pos_sales.name: PosSale,
    TOPICS.supplier_feeds.name: SupplierFeed,
    TOPICS.web_orders.name: WebOrder,
}


def _wire(model: type[BaseModel], value: dict) -> BaseModel:  # type: ignore[type-arg]
    """Validate as the worker does: from the JSON bytes (strict models parse ISO text there)."""
    return model.model_validate_json(orjson.dumps(value))


@cache
def _world() -> tuple[list, Catalogue]:  # type: ignore[type-arg]
    return generate_network(1), Catalogue(1, 2000)


def _day(peak: bool = False, hours: float = 24, **kw: object) -> tuple[Workload, list[Emission]]:
    net, cat = _world()
    w = Workload(net, cat, 1, FRIDAY, peak, 240.0, **kw)  # type: ignore[arg-type]
    return w, w.events_between(FRIDAY, FRIDAY + timedelta(hours=hours))


def test_every_generated_event_validates_against_the_wire_models_with_the_right_key() -> None:
    w, events = _day(hours=30)  # crosses the 06:00 store replenishment of the next day
    seen: Counter[tuple[str, str | None]] = Counter()
    for topic, key, value in events:
        rec = _wire(MODELS[topic.name], value)
        seen[(topic.name, getattr(rec, "type", None))] += 1
        if topic.name == TOPICS.web_orders.name:
            assert key == value["order_id"]
        else:
            assert key == value["location_id"]
    assert seen[(TOPICS.pos_sales.name, None)] > 1000
    assert seen[(TOPICS.web_orders.name, "order_placed")] > 1000
    assert seen[(TOPICS.web_orders.name, "order_cancelled")] > 0
    assert seen[(TOPICS.supplier_feeds.name, "receipt")] > 0


def test_initial_stock_is_receipts_in_depth_at_warehouses_and_shallow_in_stores() -> None:
    net, cat = _world()
    msgs = initial_stock(net, cat, 1, at=FRIDAY)
    held: dict[str, dict[str, int]] = {}
    for m in msgs:
        feed = _wire(SupplierFeed, m)
        assert isinstance(feed, SupplierFeed)
        assert feed.type == "receipt" and len(feed.lines) <= MAX_LINES
        for ln in feed.lines:
            assert ln.qty > 0
            held.setdefault(feed.location_id, {})[ln.sku] = ln.qty
    assert initial_stock(net, cat, 1, at=FRIDAY) == msgs
    wh = held["WH-01"]
    assert len(wh) > 0.8 * len(cat)
    stores = [loc.location_id for loc in net if loc.kind == "store"]
    for s in stores:
        assert 0 < len(held[s]) < len(wh)
    top = cat.skus[cat.by_popularity[0]]
    avg_store = sum(held[s].get(top, 0) for s in stores) / len(stores)
    assert wh[top] > avg_store
    assert len(held["SUP-01"]) > 0.3 * len(cat)  # the long tail, drop-shipped


def test_the_same_seed_gives_the_same_events_however_time_is_sliced() -> None:
    net, cat = _world()
    end = FRIDAY + timedelta(hours=14)
    whole = Workload(net, cat, 9, FRIDAY).events_between(FRIDAY, end)
    w = Workload(net, cat, 9, FRIDAY)
    sliced: list[Emission] = []
    t = FRIDAY
    while t < end:
        nxt = min(end, t + timedelta(seconds=37.5))
        sliced += w.events_between(t, nxt)
        t = nxt
    assert sliced == whole
    ids = [v["event_id"] for _, _, v in whole]
    assert len(set(ids)) == len(ids)


def test_a_run_id_changes_every_id_but_not_the_trading() -> None:
    net, cat = _world()
    end = FRIDAY + timedelta(hours=12)
    a = Workload(net, cat, 9, FRIDAY).events_between(FRIDAY, end)
    b = Workload(net, cat, 9, FRIDAY, run_id="x1").events_between(FRIDAY, end)
    assert len(a) == len(b)
    assert not {v["event_id"] for _, _, v in a} & {v["event_id"] for _, _, v in b}
    assert [v.get("lines") for _, _, v in a] == [v.get("lines") for _, _, v in b]


def test_peak_mode_multiplies_web_orders_by_the_peak_factor() -> None:
    def placed(events: list[Emission]) -> int:
        return sum(1 for _, _, v in events if v.get("type") == "order_placed")

    normal = placed(_day(hours=6)[1])
    peak = placed(_day(peak=True, hours=6, peak_factor=7.0)[1])
    assert 5.5 * normal < peak < 8.5 * normal


def test_pos_sales_happen_only_within_each_stores_opening_hours() -> None:
    net, cat = _world()
    saturday, sunday = FRIDAY + timedelta(days=1), FRIDAY + timedelta(days=2)
    w = Workload(net, cat, 4, saturday, False, 0.0)
    events = w.events_between(saturday, saturday + timedelta(days=2))
    sales = [v for t, _, v in events if t.name == TOPICS.pos_sales.name]
    assert sales
    for v in sales:
        when = datetime.fromisoformat(v["occurred_at"])
        assert w.is_open(v["location_id"], when), v
    on_sunday = {v["location_id"] for v in sales if v["occurred_at"] >= sunday.isoformat()[:10]}
    sunday_open = {s for s, h in w.hours.items() if h.sunday is not None}
    assert on_sunday <= sunday_open
    hours = Counter(datetime.fromisoformat(v["occurred_at"]).astimezone(PARIS).hour for v in sales)
    assert set(hours) <= set(range(8, 21))


def test_web_orders_follow_the_daily_curve_and_the_delivery_mix() -> None:
    net, _ = _world()
    _, events = _day()
    orders = [v for _, _, v in events if v.get("type") == "order_placed"]
    by_hour = Counter(
        datetime.fromisoformat(v["occurred_at"]).astimezone(PARIS).hour for v in orders
    )
    assert sum(by_hour[h] for h in (19, 20, 21)) > 5 * sum(by_hour[h] for h in (2, 3, 4))
    cc = [v for v in orders if v["delivery"]["mode"] == "click_collect"]
    assert 0.22 < len(cc) / len(orders) < 0.36
    cc_stores = {loc.location_id for loc in net if loc.kind == "store" and loc.click_collect}
    assert {v["delivery"]["pickup_location_id"] for v in cc} <= cc_stores
    assert {len(v["lines"]) for v in orders} <= {1, 2, 3, 4}
    channels = Counter(v["channel"] for v in orders)
    assert set(channels) == {"web", "app", "store"}


def test_cancellations_are_about_two_percent_and_follow_their_order_shortly() -> None:
    _, events = _day(hours=24)
    web = [v for t, _, v in events if t.name == TOPICS.web_orders.name]
    placed = {v["order_id"]: v["occurred_at"] for v in web if v["type"] == "order_placed"}
    cancels = [v for v in web if v["type"] == "order_cancelled"]
    assert 0.01 < len(cancels) / len(placed) < 0.03
    for c in cancels:
        t0 = datetime.fromisoformat(placed[c["order_id"]])
        dt = datetime.fromisoformat(c["occurred_at"]) - t0
        assert timedelta(seconds=30) <= dt <= timedelta(hours=1)


def test_consumption_reported_by_the_staff_is_replenished_at_the_next_receipt() -> None:
    net, cat = _world()
    w = Workload(net, cat, 1, FRIDAY, replenish="consumption", pos_sales_per_store_hour=0.0)
    w.events_between(FRIDAY, FRIDAY + timedelta(hours=1))
    w.record_consumption("WH-02", "SKU-00042", 5)
    w.record_consumption("WH-02", "SKU-00042", 2)
    events = w.events_between(FRIDAY + timedelta(hours=1), FRIDAY + timedelta(hours=8))
    feeds = [v for t, _, v in events if t.name == TOPICS.supplier_feeds.name]
    assert [(f["location_id"], f["lines"]) for f in feeds] == [
        ("WH-02", [{"sku": "SKU-00042", "qty": 7}])
    ]


def test_naive_start_times_are_refused() -> None:
    net, cat = _world()
    with pytest.raises(ValueError):
        Workload(net, cat, 1, datetime(2025, 1, 1))


def test_order_changes_come_at_their_rates_and_validate() -> None:
    """ship_complete on multi-line home orders, partial cancellations, announced receipts:
    each at about its rate, each valid on the wire, an announcement before its receipt."""
    w, events = _day(hours=30, replenish="consumption", partial_cancel_rate=0.05)
    for _ in range(3):  # consumption replenishment: some units must have left the hubs
        w.record_consumption(w.warehouses[0].location_id, "SKU-00001", 5)
    events += w.events_between(FRIDAY + timedelta(hours=30), FRIDAY + timedelta(hours=40))
    placed = [v for t, _, v in events if t is TOPICS.web_orders and v["type"] == "order_placed"]
    multi_home = [v for v in placed if len(v["lines"]) > 1 and v["delivery"]["mode"] == "home"]
    complete = [v for v in multi_home if v["delivery"].get("split") == "ship_complete"]
    assert 0 < len(complete) < 0.15 * len(multi_home)
    partial = [
        v
        for t, _, v in events
        if t is TOPICS.web_orders and v["type"] == "order_cancelled" and v.get("lines")
    ]
    eligible = [v for v in placed if sum(ln["qty"] for ln in v["lines"]) > 1]
    assert 0 < len(partial) < 0.15 * len(eligible)
    for v in partial:
        _wire(MODELS[TOPICS.web_orders.name], v)
    feeds = [v for t, _, v in events if t is TOPICS.supplier_feeds]
    asn = [v for v in feeds if v["type"] == "expected_receipt"]
    assert asn
    for v in asn:
        rec = _wire(MODELS[TOPICS.supplier_feeds.name], v)
        assert rec.expected_date is not None and rec.expected_date > rec.occurred_at


def test_an_order_is_never_cancelled_both_in_part_and_whole() -> None:
    """One of the two would be refused (dead-lettered: "already cancelled"), so the generator
    keeps the whole cancellation and drops the partial one."""
    _, events = _day(hours=12, cancel_rate=0.3, partial_cancel_rate=0.3)
    kinds: dict[str, set[str]] = {}
    for topic, key, v in events:
        if topic is TOPICS.web_orders and v["type"] == "order_cancelled":
            kinds.setdefault(key, set()).add("part" if v.get("lines") else "whole")
    assert any(k == {"part"} for k in kinds.values())
    assert any(k == {"whole"} for k in kinds.values())
    assert all(len(k) == 1 for k in kinds.values())


def test_a_few_orders_ask_preorders_on_announced_supply_never_beyond_it() -> None:
    """lines[].preorder only for a SKU with an expected_receipt announced and not yet due, on
    a few % of the orders that have one, within the units announced; valid on the wire."""
    w, events = _day(hours=30)
    lots: dict[str, list[list[float]]] = {}  # sku -> [announced, due, units left]
    exposed = asked = 0
    for topic, _, v in sorted(events, key=lambda e: e[2]["occurred_at"]):
        at = datetime.fromisoformat(v["occurred_at"]).timestamp()
        if topic is TOPICS.supplier_feeds and v["type"] == "expected_receipt":
            due = datetime.fromisoformat(v["expected_date"]).timestamp()
            for ln in v["lines"]:
                lots.setdefault(ln["sku"], []).append([at, due, ln["qty"]])
        if topic is not TOPICS.web_orders or v["type"] != "order_placed":
            continue
        open_skus = {s for s, ls in lots.items() if any(a <= at < d for a, d, _ in ls)}
        if not any(ln["sku"] in open_skus for ln in v["lines"]):
            assert not any(ln.get("preorder") for ln in v["lines"])
            continue
        exposed += 1
        pre = [ln for ln in v["lines"] if ln.get("preorder")]
        asked += bool(pre)
        for ln in pre:
            lot = next(lot for lot in lots[ln["sku"]] if lot[0] <= at < lot[1])
            lot[2] -= ln["qty"]
            assert lot[2] >= 0  # never beyond what was announced
        if pre:
            assert _wire(MODELS[TOPICS.web_orders.name], v)
    assert exposed > 300 and 0 < asked <= 0.08 * exposed
    _, none = _day(hours=30, preorder_share=0.0)
    assert not any(ln.get("preorder") for _, _, v in none for ln in v.get("lines", []))


def test_preorders_are_asked_only_on_the_channels_given() -> None:
    """The runner gives the channels the workers' policy enables backorders for (the engine
    refuses a preorder elsewhere, sim/runner.py backorder_channels)."""
    _, events = _day(hours=30, preorder_share=0.5, preorder_channels=("app",))
    placed = [v for t, _, v in events if t is TOPICS.web_orders and v["type"] == "order_placed"]
    pre = [v for v in placed if any(ln.get("preorder") for ln in v["lines"])]
    assert pre and {v["channel"] for v in pre} == {"app"}
