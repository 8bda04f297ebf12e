"""`promise` section: the delivery-promise API's latency and throughput on one worker while
that worker routes orders (issue 14: p99 <= 20 ms at 200 requests/s while routing 200
orders/s).

One worker, the routing bench's network (2 warehouses, 8 stores, 200 SKUs, ample stock). For
`seconds`, orders are produced to web-orders at ORDER_RATE per second and, at the same time,
`POST /promise` requests at REQUEST_RATE per second (a random basket of 1-2 SKUs, a customer
anywhere in France, every mode, 3 pickup stores) from this process over loopback keep-alive
connections. Reported: /promise latency percentiles (request sent -> whole answer read),
requests answered per second, errors; the orders decided per second by the same worker in the
same window and their decision latency; the host's load average (the host is shared). The
reference, in the same run before the load: 300 requests one at a time with no orders (the
service time alone).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

import aiohttp
import orjson

from bench.common import dumps
from bench.kafka_bench import (
    ROUTING_SKUS,
    _Decisions,
    _order,
    _paced,
    _percentiles,
    _r,
    _routing_cluster,
)

ORDER_RATE = 200.0
REQUEST_RATE = 200.0
TARGET_P99_MS = 20.0


def _basket(rng: random.Random) -> dict[str, Any]:
    skus = rng.sample(ROUTING_SKUS, 1 if rng.random() < 0.7 else 2)
    return {
        "lines": [{"sku": s, "qty": 1} for s in skus],
        "customer": {"lat": 43.5 + rng.random() * 5.5, "lon": -1.0 + rng.random() * 7.0},
        "modes": ["home_standard", "home_express", "click_collect"],
        "pickup_stores": 3,
    }


async def _promise_load(
    port: int, rate: float, seconds: float
) -> tuple[list[float], int, int, float]:
    """Paced requests (each in its own task, so a slow answer does not hold the next one back):
    latencies in ms, answers with options, errors, wall seconds."""
    rng = random.Random(17)
    n = int(rate * seconds)
    bodies = [orjson.dumps(_basket(rng)) for _ in range(n)]
    lat: list[float] = []
    errors = 0
    with_options = 0
    url = f"http://127.0.0.1:{port}/promise"
    conn = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def one(body: bytes) -> None:
            nonlocal errors, with_options
            t = time.perf_counter()
            try:
                async with session.post(url, data=body) as r:
                    data = await r.read()
                    if r.status != 200:
                        errors += 1
                        return
            except aiohttp.ClientError:
                errors += 1
                return
            lat.append(1000 * (time.perf_counter() - t))
            if orjson.loads(data)["options"]:
                with_options += 1

        t0 = time.perf_counter()
        tasks = []
        for i, body in enumerate(bodies):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
    return lat, with_options, errors, wall


async def _sequential(port: int, n: int) -> list[float]:
    """One request at a time, no orders: the service time alone (the reference)."""
    rng = random.Random(19)
    out: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            body = orjson.dumps(_basket(rng))
            t = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{port}/promise", data=body) as r:
                await r.read()
            out.append(1000 * (time.perf_counter() - t))
    return out


async def bench_promise(quick: bool) -> dict[str, Any]:
    seconds = 15.0 if quick else 30.0
    cluster, ws = await _routing_cluster(1)
    try:
        port = ws[0].port
        # warm up (first requests build the caches) and check it answers
        warm, _, warm_errors, _ = await _promise_load(port, 20.0, 1.0)
        alone = await _sequential(port, 300)
        dec = _Decisions(cluster.name("routed_orders"))
        watcher = asyncio.create_task(dec.run())
        await dec.ready.wait()
        rng = random.Random(13)
        n_orders = int(ORDER_RATE * seconds)
        ids = [f"PRM-{i:07d}" for i in range(n_orders)]
        msgs = [(oid, dumps(_order(oid, rng))) for oid in ids]
        sent: dict[str, float] = {}
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        orders = asyncio.create_task(_paced(cluster.name("web_orders"), msgs, ORDER_RATE, sent))
        lat, with_options, errors, wall = await _promise_load(port, REQUEST_RATE, seconds)
        await orders
        t_load_end = time.perf_counter()
        decided_in_window = sum(1 for i in ids if i in dec.first and dec.first[i] <= t_load_end)
        await dec.wait_count(set(ids), 60)
        dec.stop = True
        await watcher
        load1 = os.getloadavg()
    finally:
        cluster.stop()
    order_lat = [1000 * (dec.first[i] - sent[i]) for i in ids if i in dec.first and i in sent]
    p = _percentiles(lat)
    return {
        "parameters": {
            "workers": 1,
            "seconds": seconds,
            "offered_requests_per_s": REQUEST_RATE,
            "offered_orders_per_s": ORDER_RATE,
            "basket": "70% 1 SKU, 30% 2; every mode, 3 pickup stores (5 routing decisions)",
            "method": "paced POST /promise over loopback keep-alive (aiohttp, 64 connections) "
            "while orders are produced at the order rate; latency = request sent -> answer read",
        },
        "requests": len(lat) + errors,
        "answered": len(lat),
        "with_options": with_options,
        "errors": errors,
        "warmup_errors": warm_errors + (0 if warm else 1),
        "requests_per_s": round(len(lat) / wall, 1) if wall else None,
        **p,
        "max_ms": _r(max(lat) if lat else None),
        "routing": {
            "orders": n_orders,
            "decided": len(order_lat),
            "decided_per_s_during_load": round(decided_in_window / (t_load_end - t0), 1),
            **_percentiles(order_lat),
        },
        "reference": {"sequential_no_orders": {"requests": len(alone), **_percentiles(alone)}},
        "host_load_avg_1m": {"before": round(load0[0], 2), "after": round(load1[0], 2)},
        "target": {"p99_ms": TARGET_P99_MS, "at_requests_per_s": REQUEST_RATE},
        "met": p["p99_ms"] is not None and p["p99_ms"] <= TARGET_P99_MS,
    }
