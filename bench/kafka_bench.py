"""Benchmarks against the real broker: fold, routing, capacity burst, scale, peak soak.

Every figure comes with a reference measured in the same run on the same broker: raw aiokafka
loops for the fold, Kafka's own produce->consume latency for routing.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import (
    ROOT,
    broker_pid,
    cpu_seconds,
    dumps,
    group_lag,
    kafka,
    new_consumer,
    pct,
    produce_raw,
    rss_mb,
)
from streams.topic_reader import read_to_end
from tooling.cluster import Cluster, WorkerProcess
from tooling.fixtures import iso, location

# ---- helpers -----------------------------------------------------------------------------------


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="stockroute-bench-"))


class _CpuProbe:
    """CPU seconds used so far, by process, at named moments: each worker's process tree
    (supervisor + worker), the local broker (None when it is not on this host) and this bench
    process (the clients that produce and watch)."""

    def __init__(self, workers: list[WorkerProcess], broker: int | None) -> None:
        self.workers = workers
        self.broker = broker
        self.marks: dict[str, dict[str, Any]] = {}

    def snapshot(self) -> dict[str, Any]:
        per = [cpu_seconds(w.proc.pid) if w.proc else 0.0 for w in self.workers]
        return {
            "per_worker_s": per,
            "workers_s": None if None in per else sum(p or 0.0 for p in per),
            "broker_s": cpu_seconds(self.broker) if self.broker else None,
            "bench_client_s": time.process_time(),
        }

    def mark(self, name: str) -> None:
        self.marks[name] = self.snapshot()

    def window(self, start: str, end: str, events: int) -> dict[str, Any] | None:
        """CPU between two marks, in total and per 1,000 events."""
        a, b = self.marks.get(start), self.marks.get(end)
        if a is None or b is None:
            return None

        def d(x: float | None, y: float | None) -> float | None:
            return None if x is None or y is None else round(y - x, 3)

        def per_1k(x: float | None) -> float | None:
            return None if x is None else round(1000.0 * x / events, 4)

        out: dict[str, Any] = {
            "per_worker_s": [
                d(x, y) for x, y in zip(a["per_worker_s"], b["per_worker_s"], strict=True)
            ]
        }
        for k in ("workers_s", "broker_s", "bench_client_s"):
            out[k] = d(a[k], b[k])
            out[k.removesuffix("_s") + "_s_per_1k_events"] = per_1k(out[k])
        return out


async def _wait_healthy(workers: list[WorkerProcess], timeout: float = 180.0) -> float:
    deadline = time.time() + timeout
    pending = list(workers)
    while pending:
        if time.time() > deadline:
            raise TimeoutError("worker(s) not healthy")
        for w in list(pending):
            if w.proc is not None and w.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {w.log.read_text()[-2000:]}")
            if await asyncio.to_thread(w.healthy):
                pending.remove(w)
        if pending:
            await asyncio.sleep(0.1)
    return time.perf_counter()


class TunedWorker(WorkerProcess):
    """A worker started through bench.tuned_worker (Faust settings from BENCH_FAUST_OVERRIDES).

    The worker process itself, unsupervised: `worker` would run the supervisor, whose child is
    a plain `streams.cli worker-process` without the overrides."""

    module = "bench.tuned_worker"
    command = "worker-process"


def _start(workers: list[WorkerProcess]) -> None:
    for w in workers:
        w.start(wait=False)


async def _create_topic(name: str, partitions: int = 4) -> None:
    admin = AIOKafkaAdminClient(**kafka().aiokafka_kwargs())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    except Exception:  # noqa: BLE001 - exists
        pass
    finally:
        await admin.close()


STORES = [f"ST-{i:03d}" for i in range(1, 9)]


def _locations_msgs(cluster: Cluster) -> list[tuple[str, bytes | None, bytes]]:
    topic = cluster.name("locations")
    out: list[tuple[str, bytes | None, bytes]] = []
    for i, sid in enumerate(STORES):
        loc = location(sid, "store", lat=45.0 + i * 0.5, lon=2.0 + i * 0.3)
        out.append((topic, sid.encode(), dumps(loc)))
    return out


def fold_events(
    n: int, keys: int, seed: int = 7
) -> tuple[list[tuple[str, str, dict[str, Any]]], dict[str, int]]:
    """n one-line stock events over `keys` (sku, store) pairs: a receipt of 1000 first, then
    till sales of 1 (and a receipt every 10th event). Returns (handle, key, value) and the
    expected final on_hand per '<sku>@<location>'."""
    rng = random.Random(seed)
    pairs = [(f"SKU-{i // len(STORES):05d}", STORES[i % len(STORES)]) for i in range(keys)]
    expected: dict[str, int] = {}
    out: list[tuple[str, str, dict[str, Any]]] = []
    now = iso()
    for i in range(n):
        sku, loc = pairs[rng.randrange(keys)] if i >= keys else pairs[i]
        k = f"{sku}@{loc}"
        eid = str(uuid.uuid4())
        if k not in expected or i % 10 == 0:
            expected[k] = expected.get(k, 0) + 1000
            out.append(
                (
                    "supplier_feeds",
                    loc,
                    {
                        "event_id": eid,
                        "occurred_at": now,
                        "type": "receipt",
                        "location_id": loc,
                        "lines": [{"sku": sku, "qty": 1000}],
                    },
                )
            )
        else:
            expected[k] -= 1
            out.append(
                (
                    "pos_sales",
                    loc,
                    {
                        "event_id": eid,
                        "occurred_at": now,
                        "location_id": loc,
                        "lines": [{"sku": sku, "qty": 1}],
                    },
                )
            )
    return out, expected


def _encode(
    cluster: Cluster, events: list[tuple[str, str, dict[str, Any]]]
) -> list[tuple[str, bytes | None, bytes]]:
    return [(cluster.name(h), k.encode(), dumps(v)) for h, k, v in events]


async def _watch_availability(
    topic: str,
    expected: dict[str, int],
    timeout: float,
    started: asyncio.Event,
    on_mark: Callable[[str], None] | None = None,
) -> tuple[float | None, float | None, int, int]:
    """Consume stock-availability until every key shows its expected on_hand. Returns
    (perf_counter of the first message, of completion or None, messages seen, keys matching);
    `on_mark` is called with "first_output" and "last_output" at those moments."""
    c = await new_consumer(topic)
    started.set()
    latest: dict[str, int] = {}
    missing = set(expected)
    seen = 0
    first: float | None = None
    deadline = time.perf_counter() + timeout
    try:
        while time.perf_counter() < deadline:
            batch = await c.getmany(timeout_ms=200, max_records=20000)
            if batch and first is None:
                first = time.perf_counter()
                if on_mark:
                    on_mark("first_output")
            for recs in batch.values():
                for r in recs:
                    seen += 1
                    key = r.key.decode()
                    v = orjson.loads(r.value)
                    latest[key] = v["on_hand"]
                    if key in expected:
                        if v["on_hand"] == expected[key]:
                            missing.discard(key)
                        else:
                            missing.add(key)
            if not missing:
                done = time.perf_counter()
                if on_mark:
                    on_mark("last_output")
                return first, done, seen, len(expected)
        return first, None, seen, len(expected) - len(missing)
    finally:
        await c.stop()


async def _fold_once(
    events: list[tuple[str, str, dict[str, Any]]],
    expected: dict[str, int],
    *,
    workers: int = 1,
    store: str | None = None,
    timeout: float = 300.0,
    overrides: dict[str, Any] | None = None,
    settled: bool = False,
) -> dict[str, Any]:
    """Fold `events` with `workers` fresh workers; rates and CPU over first -> last output.
    `settled`: the events are produced once every worker owns partitions (steady state: no
    join, rebalance or recovery in the window), else before the workers start."""
    tmp = _tmp()
    env = {"STOCKROUTE_STORE": store} if store else {}
    if overrides:
        env["BENCH_FAUST_OVERRIDES"] = orjson.dumps(overrides).decode()
    cluster = Cluster(tmp, extra_env=env)
    await asyncio.to_thread(cluster.create_topics)
    await produce_raw(_locations_msgs(cluster))
    msgs = _encode(cluster, events)
    produce_s = 0.0 if settled else await produce_raw(msgs)
    if overrides:
        ws: list[WorkerProcess] = [TunedWorker(cluster, i) for i in range(workers)]
        cluster.workers.extend(ws)
    else:
        ws = [cluster.worker() for _ in range(workers)]
    probe = _CpuProbe(ws, broker_pid())
    started = asyncio.Event()
    watch = asyncio.create_task(
        _watch_availability(
            cluster.name("stock_availability"), expected, timeout, started, probe.mark
        )
    )
    await started.wait()
    try:
        probe.mark("spawn")
        t_spawn = time.perf_counter()
        await asyncio.to_thread(_start, ws)
        t_ready = await _wait_healthy(ws)
        probe.mark("ready")
        if settled:
            await _wait_all_assigned(ws)
            produce_s = await produce_raw(msgs)
        t_first, t_done, seen, matched = await watch
        rss = [rss_mb(w.proc.pid) for w in ws if w.proc]
    finally:
        cluster.stop()
    n = len(events)
    out: dict[str, Any] = {
        "events": n,
        "keys": len(expected),
        "workers": workers,
        "store": store or "rocksdb://",
        "produce_s": round(produce_s, 3),
        "startup_s": round(t_ready - t_spawn, 3),
        "availability_messages": seen,
        "keys_matching": matched,
        "complete": t_done is not None,
        "worker_rss_mb": rss,
        "faust_overrides": overrides or {},
        "cpu": {
            "broker_pid": probe.broker,
            # the window of events_per_s, and the whole run with the workers' start-up
            "first_to_last_output": probe.window("first_output", "last_output", n),
            "spawn_to_last_output": probe.window("spawn", "last_output", n),
        },
    }
    if t_done is not None and t_first is not None:
        # the rate from the first output to the last: processing only, as the raw loops are
        # timed (worker start-up and partition assignment vary by seconds from run to run)
        out["seconds_first_to_last_output"] = round(t_done - t_first, 3)
        out["seconds_from_ready"] = round(t_done - t_ready, 3)
        out["seconds_from_spawn"] = round(t_done - t_spawn, 3)
        out["events_per_s"] = round(n / max(1e-6, t_done - t_first), 1)
        out["events_per_s_from_ready"] = round(n / max(1e-6, t_done - t_ready), 1)
        out["events_per_s_from_spawn"] = round(n / (t_done - t_spawn), 1)
    return out


async def _raw_consume(topics: list[str], n: int) -> float:
    c = await new_consumer(*topics)
    try:
        got = 0
        t0 = time.perf_counter()
        while got < n:
            batch = await c.getmany(timeout_ms=500, max_records=20000)
            for recs in batch.values():
                for r in recs:
                    orjson.loads(r.value)
                    got += 1
        return n / (time.perf_counter() - t0)
    finally:
        await c.stop()


async def _raw_cup(topics: list[str], out_topic: str, n: int) -> float:
    """Consume, decode, update a dict per (sku, location), produce the new value: per message."""
    from aiokafka import AIOKafkaProducer

    await _create_topic(out_topic)
    c = await new_consumer(*topics)
    p = AIOKafkaProducer(**kafka().aiokafka_kwargs(), acks="all", linger_ms=1)
    await p.start()
    state: dict[str, int] = {}
    try:
        got = 0
        futs = []
        t0 = time.perf_counter()
        while got < n:
            batch = await c.getmany(timeout_ms=500, max_records=20000)
            for recs in batch.values():
                for r in recs:
                    v = orjson.loads(r.value)
                    loc = v["location_id"]
                    for ln in v["lines"]:
                        k = f"{ln['sku']}@{loc}"
                        d = ln["qty"] if v.get("type") == "receipt" else -ln["qty"]
                        state[k] = state.get(k, 0) + d
                        futs.append(
                            await p.send(
                                out_topic,
                                key=k.encode(),
                                value=orjson.dumps(
                                    {"sku": ln["sku"], "location_id": loc, "on_hand": state[k]}
                                ),
                            )
                        )
                    got += 1
            if len(futs) > 10000:
                await asyncio.gather(*futs)
                futs = []
        await asyncio.gather(*futs)
        await p.flush()
        return n / (time.perf_counter() - t0)
    finally:
        await p.stop()
        await c.stop()


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (incomplete runs count as 0), with every run's rate."""
    ranked = sorted(runs, key=lambda r: r.get("events_per_s") or 0.0)
    med = dict(ranked[(len(ranked) - 1) // 2])
    med["rates_of_all_runs"] = [r.get("events_per_s") for r in runs]
    return med


async def bench_fold(quick: bool) -> dict[str, Any]:
    n = 10000 if quick else 40000
    keys = 2000 if quick else 5000
    events, expected = fold_events(n, keys)
    # this host's run-to-run spread is wide (+-25 %): the median of several runs is reported
    repeats = 2 if quick else 3
    rocks_runs = [await _fold_once(events, expected) for _ in range(repeats)]
    rocks = _median_run(rocks_runs)
    # references on the same broker and the very same messages (rocks' cluster topics)
    tmp = _tmp()
    ref = Cluster(tmp)
    await asyncio.to_thread(ref.create_topics)
    await produce_raw(_encode(ref, events))
    topics = [ref.name("pos_sales"), ref.name("supplier_feeds")]
    raw = await _raw_consume(topics, n)
    cup = await _raw_cup(topics, f"{ref.prefix}bench-raw-out", n)
    mem = await _fold_once(events, expected, store="memory://")
    rate = rocks.get("events_per_s")
    return {
        "parameters": {
            "events": n,
            "keys": keys,
            "partitions": 4,
            "workers": 1,
            "event_mix": "1-line receipts (first per key, every 10th) + 1-unit till sales",
            "repeats": repeats,
            "rate": "events / (first -> last stock-availability output); median of the repeats",
        },
        "rocksdb": rocks,
        "memory": mem,
        "reference": {
            "raw_consume_per_s": round(raw, 1),
            "raw_consume_update_produce_per_s": round(cup, 1),
        },
        "events_per_s": rate,
        "memory_events_per_s": mem.get("events_per_s"),
        "ratio_to_raw_consume": round(rate / raw, 4) if rate else None,
        "ratio_to_raw_cup": round(rate / cup, 4) if rate else None,
        "target": {"ratio_to_raw_consume": 0.5, "events_per_s": 20000},
    }


# ---- routing -----------------------------------------------------------------------------------

ROUTING_SKUS = [f"RSKU-{i:04d}" for i in range(200)]


def _routing_locations() -> list[dict[str, Any]]:
    locs = [
        location(
            "WH-01", "warehouse", lat=48.85, lon=2.35, capacity_per_hour=100000, max_backlog=1000000
        ),
        location(
            "WH-02", "warehouse", lat=45.76, lon=4.84, capacity_per_hour=100000, max_backlog=1000000
        ),
    ]
    for i, sid in enumerate(STORES):
        locs.append(
            location(
                sid,
                "store",
                lat=44.0 + i * 0.6,
                lon=0.5 + i * 0.7,
                capacity_per_hour=100000,
                max_backlog=1000000,
            )
        )
    return locs


def _order(order_id: str, rng: random.Random) -> dict[str, Any]:
    nlines = 1 if rng.random() < 0.7 else 2
    skus = rng.sample(ROUTING_SKUS, nlines)
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": iso(),
        "type": "order_placed",
        "order_id": order_id,
        "channel": "web",
        "customer": {"lat": 43.5 + rng.random() * 5.5, "lon": -1.0 + rng.random() * 7.0},
        "delivery": {"mode": "home", "service": "standard"},
        "lines": [{"sku": s, "qty": 1, "unit_price": 9.99} for s in skus],
        "currency": "EUR",
        "payment": {"method": "card", "reference": f"pay-{order_id}"},
    }


class _Decisions:
    """Follows routed-orders: first decision time per order id."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.first: dict[str, float] = {}
        self.status: dict[str, str] = {}
        self.ready = asyncio.Event()
        self.stop = False

    async def run(self) -> None:
        c = await new_consumer(self.topic)
        self.ready.set()
        try:
            while not self.stop:
                batch = await c.getmany(timeout_ms=100, max_records=20000)
                t = time.perf_counter()
                for recs in batch.values():
                    for r in recs:
                        oid = r.key.decode()
                        if oid not in self.first:
                            self.first[oid] = t
                            self.status[oid] = orjson.loads(r.value).get("status", "?")
        finally:
            await c.stop()

    async def wait_count(self, ids: set[str], timeout: float) -> float | None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if all(i in self.first for i in ids):
                return max(self.first[i] for i in ids)
            await asyncio.sleep(0.05)
        return None


async def _paced(
    topic: str, msgs: list[tuple[str, bytes]], rate: float, sent: dict[str, float]
) -> None:
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(**kafka().aiokafka_kwargs(), acks="all", linger_ms=0)
    await p.start()
    try:
        t0 = time.perf_counter()
        for i, (key, value) in enumerate(msgs):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[key] = time.perf_counter()
            await p.send(topic, key=key.encode(), value=value)
        await p.flush()
    finally:
        await p.stop()


async def _kafka_latency(rate: float, seconds: float) -> dict[str, Any]:
    """Kafka's own produce->consume latency at `rate` msgs/s, same client settings."""
    topic = f"bench-echo-{uuid.uuid4().hex[:8]}"
    await _create_topic(topic)
    n = int(rate * seconds)
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    c = await new_consumer(topic)
    await asyncio.sleep(1.0)
    msgs = [(f"k{i}", orjson.dumps({"i": i, "pad": "x" * 300})) for i in range(n)]
    prod = asyncio.create_task(_paced(topic, msgs, rate, sent))
    deadline = time.perf_counter() + seconds + 30
    try:
        while len(got) < n and time.perf_counter() < deadline:
            batch = await c.getmany(timeout_ms=100, max_records=10000)
            t = time.perf_counter()
            for recs in batch.values():
                for r in recs:
                    got.setdefault(r.key.decode(), t)
        await prod
    finally:
        await c.stop()
    lat = [1000 * (got[k] - sent[k]) for k in got if k in sent]
    return {"rate": rate, "messages": n, "received": len(got), **_percentiles(lat)}


def _percentiles(lat_ms: list[float]) -> dict[str, float | None]:
    return {f"p{q}_ms": _r(pct(lat_ms, q)) for q in (50, 95, 99)}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


async def _routing_cluster(
    workers: int,
    overrides: dict[str, Any] | None = None,
    *,
    locations: list[dict[str, Any]] | None = None,
    skus: list[str] | None = None,
    qty: int = 100000,
) -> tuple[Cluster, list[WorkerProcess]]:
    """A running cluster with `locations` (the routing ones by default) each holding `qty`
    units of every one of `skus` (ROUTING_SKUS), the opening stock folded."""
    locs = locations if locations is not None else _routing_locations()
    sku_list = skus if skus is not None else ROUTING_SKUS
    env = {"BENCH_FAUST_OVERRIDES": orjson.dumps(overrides).decode()} if overrides else None
    cluster = Cluster(_tmp(), extra_env=env)
    await asyncio.to_thread(cluster.create_topics)
    await produce_raw(
        [(cluster.name("locations"), loc["location_id"].encode(), dumps(loc)) for loc in locs]
    )
    stock = []
    for loc in locs:
        lid = loc["location_id"]
        stock.append(
            (
                cluster.name("supplier_feeds"),
                lid.encode(),
                dumps(
                    {
                        "event_id": str(uuid.uuid4()),
                        "occurred_at": iso(),
                        "type": "receipt",
                        "location_id": lid,
                        "lines": [{"sku": s, "qty": qty} for s in sku_list],
                    }
                ),
            )
        )
    await produce_raw(stock)
    expected = {f"{s}@{loc['location_id']}": qty for loc in locs for s in sku_list}
    if overrides:
        ws: list[WorkerProcess] = [TunedWorker(cluster, i) for i in range(workers)]
        cluster.workers.extend(ws)
    else:
        ws = [cluster.worker() for _ in range(workers)]
    started = asyncio.Event()
    watch = asyncio.create_task(
        _watch_availability(cluster.name("stock_availability"), expected, 180, started)
    )
    await started.wait()
    await asyncio.to_thread(_start, ws)
    await _wait_healthy(ws)
    _, done, _, _ = await watch
    if done is None:
        raise RuntimeError("routing bench: opening stock never folded")
    await asyncio.sleep(2.0)  # the worker's availability view follows the compacted topic
    return cluster, ws


async def _saturation(
    cluster: Cluster,
    n: int,
    prefix: str,
    timeout: float,
    workers: list[WorkerProcess] | None = None,
) -> dict[str, Any]:
    """The routing saturation burst; with `workers`, the CPU they and the broker used per order
    from the burst's first send to its last decision."""
    probe = _CpuProbe(workers or [], broker_pid())
    probe.mark("start")
    out = await _saturation_of(cluster, n, prefix, _order, timeout)
    probe.mark("end")
    if workers:
        out["cpu"] = probe.window("start", "end", n)
    return out


async def _saturation_of(
    cluster: Cluster,
    n: int,
    prefix: str,
    build: Callable[[str, random.Random], dict[str, Any]],
    timeout: float,
) -> dict[str, Any]:
    """n orders (`build`) produced in one burst; decided / (first send -> last decision)."""
    dec = _Decisions(cluster.name("routed_orders"))
    task = asyncio.create_task(dec.run())
    await dec.ready.wait()
    rng = random.Random(11)
    ids = [f"{prefix}{i:07d}" for i in range(n)]
    msgs = [(cluster.name("web_orders"), oid.encode(), dumps(build(oid, rng))) for oid in ids]
    t0 = time.perf_counter()
    produce_s = await produce_raw(msgs)
    t_done = await dec.wait_count(set(ids), timeout)
    dec.stop = True
    await task
    got = [i for i in ids if i in dec.first]
    statuses: dict[str, int] = {}
    for i in got:
        statuses[dec.status[i]] = statuses.get(dec.status[i], 0) + 1
    end = t_done if t_done is not None else (max(dec.first[i] for i in got) if got else None)
    rate = len(got) / (end - t0) if end else 0.0
    return {
        "orders": n,
        "decided": len(got),
        "statuses": statuses,
        "produce_s": round(produce_s, 3),
        "seconds": round(end - t0, 3) if end else None,
        "orders_per_s": round(rate, 1),
        "complete": t_done is not None,
    }


async def _latency(
    cluster: Cluster,
    rate: float,
    seconds: float,
    prefix: str,
    workers: list[WorkerProcess] | None = None,
) -> dict[str, Any]:
    """Orders paced at `rate` for `seconds`: produced -> first routed-orders message consumed.
    With `workers`, also where the time went (`hops`, from the records' timestamps) and the CPU
    the workers and the broker used per order in the window (`cpu`)."""
    dec = _Decisions(cluster.name("routed_orders"))
    task = asyncio.create_task(dec.run())
    await dec.ready.wait()
    await asyncio.sleep(1.0)
    rng = random.Random(13)
    n = int(rate * seconds)
    ids = [f"{prefix}{i:07d}" for i in range(n)]
    msgs = [(oid, dumps(_order(oid, rng))) for oid in ids]
    sent: dict[str, float] = {}
    probe = _CpuProbe(workers or [], broker_pid())
    probe.mark("start")
    t0 = time.perf_counter()
    await _paced(cluster.name("web_orders"), msgs, rate, sent)
    await dec.wait_count(set(ids), 60)
    probe.mark("end")
    elapsed = time.perf_counter() - t0
    dec.stop = True
    await task
    lat = [1000 * (dec.first[i] - sent[i]) for i in ids if i in dec.first and i in sent]
    out: dict[str, Any] = {
        "rate": rate,
        "seconds": seconds,
        "orders": n,
        "decided": len(lat),
        **_percentiles(lat),
        "max_ms": _r(max(lat) if lat else None),
    }
    if workers:
        cpu = probe.window("start", "end", n)
        if cpu is not None:
            cpu["seconds"] = round(elapsed, 2)
            cpu["workers_utilisation"] = _r((cpu["workers_s"] or 0.0) / elapsed)
            cpu["broker_utilisation"] = _r((cpu["broker_s"] or 0.0) / elapsed)
        out["cpu"] = cpu
        out["hops"] = await _hops(cluster, set(ids))
    return out


async def _hops(cluster: Cluster, ids: set[str]) -> dict[str, Any]:
    """Per order, the time between the records of its three hops, from their Kafka timestamps
    (CreateTime, stamped by the producer when the record is sent, same host clock): web order
    -> the orders agent's first location op for it (its asks) -> the location owner's first
    answer -> the first routed-orders decision. Which hop the latency is spent in (queueing
    before the agent, the agent's batch, the producer) says which design lever to pull."""
    topics = {h: cluster.name(h) for h in ("web_orders", "location_ops", "order_commands")}
    topics["routed_orders"] = cluster.name("routed_orders")
    by_name = {v: k for k, v in topics.items()}
    first: dict[str, dict[str, int]] = {h: {} for h in topics}
    for r in await read_to_end(kafka(), list(topics.values()), timeout_s=120.0):
        if r.value is None:
            continue
        handle = by_name[r.topic]
        if handle == "location_ops":
            value = orjson.loads(r.value)  # a bundle's messages: [[key, message], ...]
            oids = [m.get("order_id") for _, m in value] if isinstance(value, list) else []
            oids = oids or [value.get("order_id")]
        elif r.value[:1] == b"[":  # a bundle of order commands, keyed by order_id
            oids = [k for k, _ in orjson.loads(r.value)]
        else:
            oids = [None if r.key is None else r.key.decode()]
        for oid in oids:
            if oid in ids:
                first[handle].setdefault(oid, r.timestamp)
    steps = (
        ("order_to_asks", "web_orders", "location_ops"),
        ("asks_to_answer", "location_ops", "order_commands"),
        ("answer_to_decision", "order_commands", "routed_orders"),
        ("order_to_decision", "web_orders", "routed_orders"),
    )
    out: dict[str, Any] = {}
    for name, a, b in steps:
        both = [oid for oid in first[a] if oid in first[b]]
        out[name] = {
            "orders": len(both),
            **_percentiles([float(first[b][o] - first[a][o]) for o in both]),
        }
    return out


TARGET_LOAD = 500.0  # issue 7: routing latency at 500 orders/s
LOW_WINDOWS = 3  # latency windows below saturation (the median one is reported)


def _median_by_p99(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose p99 is the median of the runs' (runs without a p99 sort last)."""
    ranked = sorted(runs, key=lambda r: (r.get("p99_ms") is None, r.get("p99_ms") or 0.0))
    return ranked[(len(ranked) - 1) // 2]


async def bench_routing(quick: bool) -> dict[str, Any]:
    """Saturation, then latency at the issue's 500 orders/s and at a quarter of the saturation
    rate (near saturation the figure is mostly queueing; well below it, the pipeline's own)."""
    n = 2000 if quick else 5000
    secs = 15.0 if quick else 30.0
    cluster, ws = await _routing_cluster(1)
    try:
        sat = await _saturation(cluster, n, "SAT-", timeout=240, workers=ws)
        sat_rate = sat["orders_per_s"] or 1.0
        lat = await _latency(cluster, TARGET_LOAD, secs, "LAT-", ws)
        # and at a quarter of saturation: the pipeline's own latency, without queueing
        await asyncio.sleep(5.0)  # let the follow-up work of the 500/s window drain
        low_load = float(os.environ.get("BENCH_ROUTING_LOW_RATE", 0)) or max(
            20.0, float(int(sat_rate * 0.25 / 10) * 10)
        )
        # three windows: one 30 s window's p99 is a handful of orders, and it moved by
        # 10-15 ms between runs of the same code (docs/throughput.md); the median window is
        # the figure, every window is kept
        lows = [await _latency(cluster, low_load, secs, f"LOW{i}-", ws) for i in range(LOW_WINDOWS)]
        low = {**_median_by_p99(lows), "windows": lows}
        rss = rss_mb(ws[0].proc.pid) if ws[0].proc else None
    finally:
        cluster.stop()
    ref = await _kafka_latency(TARGET_LOAD, secs)
    p99 = lat.get("p99_ms")
    out: dict[str, Any] = {
        "parameters": {
            "orders": n,
            "locations": 10,
            "skus": len(ROUTING_SKUS),
            "lines_per_order": "70% 1, 30% 2",
            "offered_load_per_s": TARGET_LOAD,
            "latency_seconds": secs,
            "workers": 1,
            "partitions": 4,
            "method": "saturation: orders produced in one burst to a running worker "
            "(stock loaded), rate = decided / (first send -> last decision); "
            "latency: produced -> first routed-orders message consumed",
        },
        "saturation": sat,
        "latency": lat,
        "reference": {"kafka_produce_consume": ref},
        "orders_per_s": sat["orders_per_s"],
        "p99_minus_kafka_p99_ms": round(p99 - ref["p99_ms"], 2)
        if p99 is not None and ref["p99_ms"] is not None
        else None,
        "worker_rss_mb": rss,
        "target": {
            "orders_per_s": 2000,
            "p99_minus_kafka_p99_ms": 50,
            "at_load_per_s": TARGET_LOAD,
        },
    }
    if low_load:
        low_ref = await _kafka_latency(low_load, secs)
        low_p99 = low.get("p99_ms")
        out["latency_below_saturation"] = {
            **low,
            "reference": low_ref,
            "p99_minus_kafka_p99_ms": round(low_p99 - low_ref["p99_ms"], 2)
            if low_p99 is not None and low_ref["p99_ms"] is not None
            else None,
        }
    return out


# ---- capacity burst ------------------------------------------------------------------------------

# small max_backlog (2..8, 28 slots in all) and plenty of stock: capacity, not stock, runs out
BURST_STORES = {"BST-A": 3, "BST-B": 5, "BST-C": 8, "BST-D": 4, "BST-E": 2, "BST-F": 6}
BURST_SKUS = [f"BSKU-{i}" for i in range(4)]
BURST_QTY = 100


def _burst_locations() -> list[dict[str, Any]]:
    return [
        location(sid, "store", lat=48.80 + 0.02 * i, lon=2.30 + 0.02 * i, max_backlog=cap)
        for i, (sid, cap) in enumerate(BURST_STORES.items())
    ]


def _burst_order(order_id: str, rng: random.Random) -> dict[str, Any]:
    skus = rng.sample(BURST_SKUS, rng.randint(1, 2))
    return {
        "event_id": f"place-{order_id}",
        "occurred_at": iso(),
        "type": "order_placed",
        "order_id": order_id,
        "channel": "web",
        "customer": {"lat": 48.85 + rng.uniform(-0.1, 0.1), "lon": 2.35},
        "delivery": {"mode": "home", "service": "standard"},
        "lines": [{"sku": s, "qty": 1, "unit_price": 10.0} for s in skus],
        "currency": "EUR",
        "payment": {"method": "card", "reference": f"pay-{order_id}"},
    }


def _health(port: int) -> dict[str, Any]:
    """A worker's /health body (a 503 while starting carries the same body), {} if none."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return dict(orjson.loads(r.read()))
    except urllib.error.HTTPError as exc:
        try:
            return dict(orjson.loads(exc.read()))
        except Exception:  # noqa: BLE001
            return {}
    except Exception:  # noqa: BLE001
        return {}


async def _wait_all_assigned(ws: list[WorkerProcess], timeout: float = 120.0) -> None:
    """Until every worker is healthy and owns partitions (the burst meets a settled group)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        bodies = [await asyncio.to_thread(_health, w.port) for w in ws]
        if all(b.get("status") == "ok" and b.get("assigned") for b in bodies):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("bench: not every worker owns partitions")


def _inputs_owned(health: dict[str, Any]) -> dict[str, list[int]]:
    """The partitions of web-orders and of the location owners' topic a worker owns."""
    out: dict[str, list[int]] = {}
    for tp in health.get("assigned", []):
        topic, _, part = str(tp).rpartition(":")
        for name in ("web-orders", "stockroute-location-ops"):
            if topic.endswith(f"-{name}"):
                out.setdefault(name, []).append(int(part))
    return out


def _mentions(value: Any, word: str) -> bool:
    if isinstance(value, str):
        return value == word
    if isinstance(value, dict):
        return any(k == word or _mentions(v, word) for k, v in value.items())
    if isinstance(value, list):
        return any(_mentions(v, word) for v in value)
    return False


async def _latest_by_key(topic: str) -> dict[str, dict[str, Any]]:
    """The latest value per key of a topic, read to its current end."""
    latest: dict[str, dict[str, Any]] = {}
    for r in await read_to_end(kafka(), [topic], timeout_s=120.0):
        if r.key is not None and r.value is not None:
            latest[r.key.decode()] = orjson.loads(r.value)
    return latest


def _burst_oracle(
    decisions: dict[str, dict[str, Any]], orders: set[str]
) -> tuple[Counter[str], Counter[str], list[dict[str, Any]]]:
    """Open shipments per location, reserved units per sku@location, unroutable decisions:
    from the latest decision per order. Nothing is fulfilled, so every routed shipment is open."""
    open_at: Counter[str] = Counter()
    reserved: Counter[str] = Counter()
    unroutable = []
    for oid in orders:
        d = decisions.get(oid)
        if d is None:
            continue
        if d.get("status") == "unroutable":
            unroutable.append(d)
        for sh in d.get("shipments", []):
            open_at[sh["location_id"]] += 1
            for ln in sh["lines"]:
                reserved[f"{ln['sku']}@{sh['location_id']}"] += ln["qty"]
    return open_at, reserved, unroutable


async def bench_burst(quick: bool) -> dict[str, Any]:
    """Capacity burst (issue 13): orders produced in one burst to 2 workers against stores
    with small max_backlog; checked from routed-orders against an oracle of what was sent."""
    n = 300 if quick else 2000
    workers = 2
    cluster, ws = await _routing_cluster(
        workers, locations=_burst_locations(), skus=BURST_SKUS, qty=BURST_QTY
    )
    try:
        await _wait_all_assigned(ws)
        assigned = {f"worker-{w.idx}": _inputs_owned(_health(w.port)) for w in ws}
        sat = await _saturation_of(cluster, n, "BRST-", _burst_order, timeout=300)
        # a decision may be followed by another (a refused round decided again): let them land
        await asyncio.sleep(3.0)
        ids = {f"BRST-{i:07d}" for i in range(n)}
        latest = await _latest_by_key(cluster.name("routed_orders"))
        open_at, reserved, unroutable = _burst_oracle(latest, ids)
        # store-load is the published view: wait (bounded) until it shows what was granted
        load: dict[str, dict[str, Any]] = {}
        deadline = time.perf_counter() + 30.0
        while time.perf_counter() < deadline:
            load = await _latest_by_key(cluster.name("store_load"))
            if all(load.get(loc, {}).get("open_orders") == open_at[loc] for loc in BURST_STORES):
                break
            await asyncio.sleep(1.0)
        rss = [rss_mb(w.proc.pid) for w in ws if w.proc]
    finally:
        cluster.stop()
    received = {f"{s}@{loc}": BURST_QTY for loc in BURST_STORES for s in BURST_SKUS}
    over = {loc: n_open for loc, n_open in open_at.items() if n_open > BURST_STORES.get(loc, 0)}
    oversold = {k: q - received.get(k, 0) for k, q in reserved.items() if q > received.get(k, 0)}
    slots = sum(BURST_STORES.values())
    return {
        "parameters": {
            "orders": n,
            "workers": workers,
            "partitions": 4,
            "stores_max_backlog": BURST_STORES,
            "skus": len(BURST_SKUS),
            "units_per_sku_per_store": BURST_QTY,
            "lines_per_order": "1-2 of the SKUs, 1 unit each, home delivery near the stores",
            "method": "orders produced in one burst to 2 running workers (stock folded, both "
            "owning partitions); rate = decided / (first send -> last first decision); the "
            "oracle is the latest routed-orders decision per order against the locations and "
            "receipts sent: no fulfilment event is sent, so every routed shipment stays open",
        },
        "assigned": assigned,
        "orders": n,
        "decided": sat["decided"],
        "seconds": sat["seconds"],
        "orders_per_s": sat["orders_per_s"],
        "complete": sat["complete"],
        "statuses": sat["statuses"],
        "open_shipments": {
            loc: {"open": open_at.get(loc, 0), "max_backlog": cap}
            for loc, cap in BURST_STORES.items()
        },
        "locations_over_max_backlog": len(over),
        "over_max_backlog": over,
        "slots": slots,
        "slots_taken": sum(open_at.values()),
        "routed": sum(1 for oid in ids if latest.get(oid, {}).get("status") == "routed"),
        "oversell": len(oversold),
        "oversold_units": oversold,
        "reserved_units": dict(sorted(reserved.items())),
        "unroutable": len(unroutable),
        "unroutable_saturated": sum(
            1 for d in unroutable if _mentions(d.get("reasons"), "saturated")
        ),
        "unroutable_reasons": dict(
            Counter(str(d.get("reasons", {}).get("unroutable")) for d in unroutable)
        ),
        "store_load_open_orders": {
            loc: load.get(loc, {}).get("open_orders") for loc in BURST_STORES
        },
        "store_load_matches_decisions": all(
            load.get(loc, {}).get("open_orders") == open_at[loc] for loc in BURST_STORES
        ),
        "worker_rss_mb": rss,
        "reference": {"max_backlog_total": slots, "units_received": sum(received.values())},
        "target": {"locations_over_max_backlog": 0, "oversell": 0},
    }


# ---- scale ---------------------------------------------------------------------------------------


async def bench_scale(quick: bool) -> dict[str, Any]:
    n = 10000 if quick else 30000
    keys = 2000 if quick else 4000
    events, expected = fold_events(n, keys, seed=21)
    ones, twos, ones_settled, twos_settled = [], [], [], []
    for _ in range(1 if quick else 3):  # interleaved, so drift on the host hits both alike
        ones.append(await _fold_once(events, expected, workers=1))
        twos.append(await _fold_once(events, expected, workers=2))
        # and in steady state: events produced once the group settled (no join in the window)
        ones_settled.append(await _fold_once(events, expected, workers=1, settled=True))
        twos_settled.append(await _fold_once(events, expected, workers=2, settled=True))
    one, two = _median_run(ones), _median_run(twos)

    def eff(key: str) -> float | None:
        a, b = one.get(key), two.get(key)
        return round(b / (2 * a), 3) if a and b else None

    def cpu(runs: list[dict[str, Any]], window: str) -> dict[str, Any]:
        """Median over the runs of each CPU figure per 1,000 events, with every run's."""
        out: dict[str, Any] = {}
        for k in ("workers_s_per_1k_events", "broker_s_per_1k_events"):
            vals = [(r["cpu"].get(window) or {}).get(k) for r in runs]
            got = [v for v in vals if v is not None]
            out[k] = pct(got, 50) if got else None
            out[k.replace("_per_1k_events", "_per_1k_events_runs")] = vals
        return out

    cpu_by_window: dict[str, Any] = {}
    for window in ("first_to_last_output", "spawn_to_last_output"):
        c1, c2 = cpu(ones, window), cpu(twos, window)
        w1, w2 = c1["workers_s_per_1k_events"], c2["workers_s_per_1k_events"]
        b1, b2 = c1["broker_s_per_1k_events"], c2["broker_s_per_1k_events"]
        cpu_by_window[window] = {
            "one_worker": c1,
            "two_workers": c2,
            "workers_cpu_ratio_two_to_one": round(w2 / w1, 3) if w1 and w2 else None,
            "broker_cpu_ratio_two_to_one": round(b2 / b1, 3) if b1 and b2 else None,
        }
    main = cpu_by_window["first_to_last_output"]
    s1 = cpu(ones_settled, "first_to_last_output")
    s2 = cpu(twos_settled, "first_to_last_output")
    sw1, sw2 = s1["workers_s_per_1k_events"], s2["workers_s_per_1k_events"]
    steady = {
        "method": "events produced once every worker owns partitions; first -> last output",
        "one_worker": {**s1, "events_per_s": _median_run(ones_settled).get("events_per_s")},
        "two_workers": {**s2, "events_per_s": _median_run(twos_settled).get("events_per_s")},
        "workers_cpu_ratio_two_to_one": round(sw2 / sw1, 3) if sw1 and sw2 else None,
    }

    return {
        "parameters": {
            "pipeline": "fold (stock events -> stock-availability)",
            "events": n,
            "keys": keys,
            "partitions": 4,
            "cores": os.cpu_count(),
            "note": "broker and both workers share the host's cores",
            "repeats": len(ones),
            "rate": "events / (first -> last output); median run of each worker count",
            "cpu": "user + system CPU seconds from /proc (utime + stime, reaped children "
            "included): every worker's process tree (supervisor + worker) summed, and the "
            "broker (the process listening on the bootstrap port), per 1,000 events, over the "
            "rate's window (first -> last output) and over spawn -> last output (start-up "
            "included); median over the repeats",
        },
        "one_worker": one,
        "two_workers": two,
        "reference": {
            "one_worker_events_per_s": one.get("events_per_s"),
            "one_worker_cpu_s_per_1k_events": main["one_worker"]["workers_s_per_1k_events"],
        },
        "efficiency": eff("events_per_s"),
        "efficiency_from_ready": eff("events_per_s_from_ready"),
        "efficiency_from_spawn": eff("events_per_s_from_spawn"),
        "cpu": cpu_by_window,
        "workers_cpu_s_per_1k_events": {
            "one_worker": main["one_worker"]["workers_s_per_1k_events"],
            "two_workers": main["two_workers"]["workers_s_per_1k_events"],
        },
        "broker_cpu_s_per_1k_events": {
            "one_worker": main["one_worker"]["broker_s_per_1k_events"],
            "two_workers": main["two_workers"]["broker_s_per_1k_events"],
        },
        "workers_cpu_ratio_two_to_one": main["workers_cpu_ratio_two_to_one"],
        "steady_state": steady,
        "target": {"efficiency": 0.8, "workers_cpu_ratio_two_to_one_max": 1.15},
    }


# ---- soak ----------------------------------------------------------------------------------------


async def bench_soak(quick: bool) -> dict[str, Any]:
    seconds = float(os.environ.get("BENCH_SOAK_S", 150.0 if quick else 240.0))
    max_rate = 300.0
    cluster = Cluster(_tmp())
    await asyncio.to_thread(cluster.create_topics)
    w = cluster.worker()
    await asyncio.to_thread(_start, [w])
    await _wait_healthy([w])
    sim_args = [
        "--peak",
        "--max-rate",
        str(max_rate),
        "--speed",
        "600",
        "--seed",
        "42",
        "--stores",
        "20",
        "--skus",
        "1000",
        "--stock-wait",
        "300",
        "--start",
        "2026-11-27T08:00",
    ]
    stock_phase_s = None
    log = cluster.tmp / "sim.log"
    logf = open(log, "ab")  # noqa: SIM115
    sim = subprocess.Popen(
        [sys.executable, "-m", "sim", *sim_args],
        env=cluster.env,
        cwd=ROOT,
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    group = cluster.app_id
    topics = [
        cluster.name(h)
        for h in (
            "pos_sales",
            "supplier_feeds",
            "web_orders",
            "fulfilment_events",
            "returns",
            "location_ops",
            "order_commands",
        )
    ]
    samples: list[dict[str, Any]] = []
    t_spawn = time.perf_counter()
    t0 = None  # the load phase starts once the simulator's opening stock is folded (or waited for)
    try:
        while sim.poll() is None:
            await asyncio.sleep(5.0)
            if t0 is None:
                text = log.read_text(errors="replace")
                if "waiting at most" in text and text.count("stockroute simulate:") >= 3:
                    t0 = time.perf_counter()
                    stock_phase_s = round(t0 - t_spawn, 1)
            elif time.perf_counter() - t0 >= seconds:
                break
            if time.perf_counter() - t_spawn > seconds + 400:
                break
            error = None
            try:
                lag, per = await group_lag(group, topics)
            except Exception as exc:  # noqa: BLE001
                lag, per, error = -1, {}, repr(exc)
            samples.append(
                {
                    "t": round(time.perf_counter() - t_spawn, 1),
                    "phase": "opening_stock" if t0 is None else "peak_load",
                    "lag": lag,
                    "lag_by_topic": per,
                    **({"error": error} if error else {}),
                    "rss_mb": rss_mb(w.proc.pid) if w.proc else None,
                }
            )
        sim_alive = sim.poll() is None
        if sim_alive:
            os.killpg(sim.pid, signal.SIGINT)
            try:
                sim.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(sim.pid, signal.SIGKILL)
                sim.wait()
        # drain: the final lag some seconds after the load stops
        await asyncio.sleep(10.0)
        final, per_final = await group_lag(group, topics)
        rss_final = rss_mb(w.proc.pid) if w.proc else None
        produced = _sim_events(log)
    finally:
        cluster.stop()
    load = [s for s in samples if s["phase"] == "peak_load"]
    lags = [s["lag"] for s in load if s["lag"] >= 0]
    rss = [s["rss_mb"] for s in samples if s["rss_mb"]]
    return {
        "parameters": {
            "sim_args": sim_args,
            "seconds": seconds,
            "max_rate_events_per_s": max_rate,
            "lag_topics": "all worker input topics (committed offsets of the app's group)",
        },
        "opening_stock_phase_s": stock_phase_s,
        "load_phase_s": round(samples[-1]["t"] - stock_phase_s, 1)
        if stock_phase_s and samples
        else None,
        "max_lag": max(lags) if lags else None,
        "final_lag_during_load": lags[-1] if lags else None,
        "final_lag_10s_after_stop": final,
        "final_lag_per_topic": per_final,
        "rss_mb_max": round(max(rss), 1) if rss else None,
        "rss_mb_final": round(rss_final, 1) if rss_final else None,
        "sim_stopped_early": not sim_alive,
        "sim_tail": produced,
        "samples": samples,
        "reference": {"offered_events_per_s_cap": max_rate},
    }


def _sim_events(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-600:]
    except OSError:
        return ""


# ---- tuning --------------------------------------------------------------------------------------

TUNING_VARIANTS: list[dict[str, Any]] = [
    {},  # as shipped in streams/app.py (producer linger 5 ms)
    {"producer_linger": 0.001},
    {"producer_linger": 0.02},
    {"broker_max_poll_records": 5000},
]
ROUTING_TUNING: list[dict[str, Any]] = [{}, {"producer_linger": 0.001}, {"producer_linger": 0.02}]
TUNING_LATENCY_LOAD = 100.0


async def bench_tuning(quick: bool) -> dict[str, Any]:
    """Fold throughput, routing throughput and routing latency with Faust settings overridden
    (bench.tuned_worker) against the shipped settings: same messages, same run."""
    n = 6000 if quick else 12000
    keys = 2000 if quick else 4000
    events, expected = fold_events(n, keys, seed=33)
    runs = []
    for ov in TUNING_VARIANTS:
        r = await _fold_once(events, expected, overrides=ov or None)
        runs.append(
            {
                "overrides": ov or "as shipped",
                "events_per_s": r.get("events_per_s"),
                "events_per_s_from_spawn": r.get("events_per_s_from_spawn"),
                "complete": r["complete"],
                "run": r,
            }
        )
    routing = []
    n_orders = 1500 if quick else 3000
    for ov in ROUTING_TUNING:
        cluster, ws = await _routing_cluster(1, ov or None)
        try:
            sat = await _saturation(cluster, n_orders, "SAT-", timeout=240)
            lat = await _latency(cluster, TUNING_LATENCY_LOAD, 15.0, "LAT-")
        finally:
            cluster.stop()
        routing.append(
            {
                "overrides": ov or "as shipped",
                "orders_per_s": sat["orders_per_s"],
                "saturation": sat,
                "latency": lat,
            }
        )
    base = runs[0]["events_per_s"]
    for r in runs:
        r["speedup_vs_shipped"] = (
            round(r["events_per_s"] / base, 3) if base and r["events_per_s"] else None
        )
    return {
        "parameters": {"pipeline": "fold", "events": n, "keys": keys, "workers": 1},
        "variants": runs,
        "routing": routing,
        "reference": {
            "shipped_events_per_s": base,
            "shipped_orders_per_s": routing[0]["orders_per_s"],
        },
    }
