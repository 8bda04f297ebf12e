"""`stockroute simulate`: the simulated retailer, live on Kafka.

Glue between the pure models and the broker: the workload's events and the staff's fulfilment
events and returns go out through one aiokafka producer (acks=all, keys per topics.yaml), the
engine's routed-orders come back in to drive the staff. Simulated time runs `--speed` times
faster than real time, but the producer never exceeds `--max-rate` events per second: when the
cap bites, the simulated clock slows down instead of piling up a backlog of stale events, so
what the broker sees stays consistent with the clock printed on the progress line.

Reproducible: the same --seed and --run-id produce the same events. The run id (random by
default) is part of every event and order id so that running the demo twice against the same
worker is not swallowed by its event-id deduplication.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import orjson

from domain.routing import RoutingPolicy
from sim.network import generate_network, write_network_file
from sim.staff import Staff, StaffConfig
from sim.workload import CHANNELS, Catalogue, Emission, Workload
from streams.records import Location
from streams.settings import KafkaSettings, WorkerSettings
from streams.topic_reader import TopicReader, read_to_end
from streams.topics import TOPICS, AnyTopic

__all__ = [
    "RunStats",
    "SimError",
    "SimOptions",
    "TokenBucket",
    "backorder_channels",
    "build_parser",
    "main",
    "parse_start",
    "run",
    "write_network_file",
]

TICK_S = 0.05
MAX_TICK_S = 0.25
"""A tick never advances the clock by more than this much real time: slow sends slow the clock."""


@dataclass
class SimOptions:
    seed: int = 42
    speed: float = 60.0
    peak: bool = False
    peak_factor: float = 7.0
    warehouses: int = 3
    stores: int = 60
    suppliers: int = 2
    marketplaces: int = 0
    skus: int = 5000
    web_orders_per_hour: float = 240.0
    pos_sales_per_store_hour: float = 30.0
    duration_h: float | None = None
    max_rate: float = 2000.0
    start: datetime | None = None
    publish_locations: bool = True
    initial_stock: bool = True
    stock_wait_s: float = 120.0
    """After the opening stock, wait (at most this long) until the engine has folded it."""
    staff: bool = True
    staff_pace: float = 1.0
    """The share of their declared capacity_per_hour the simulated staff achieve."""
    run_id: str | None = None
    progress_interval_s: float = 1.0
    preorder_share: float = 0.03
    """Of the orders with a line whose SKU has supply announced (sim/workload.py)."""
    preorder_channels: tuple[str, ...] | None = None
    """Channels whose orders may ask preorders; None: those the routing policy enables
    backorders for (backorder_channels), where the engine accepts them."""


class SimError(RuntimeError):
    """A condition the user can fix (Kafka unreachable, topic missing): one line, no trace."""


@dataclass
class RunStats:
    sent: Counter[str] = field(default_factory=Counter)
    routed_in: int = 0
    bad_routed: int = 0
    delivery_errors: int = 0
    first_error: str | None = None
    sim_end: datetime | None = None


class TokenBucket:
    """Events-per-second cap with a burst of a tenth of a second (0 or less: no cap)."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst if burst is not None else rate / 10.0)
        self.tokens = self.capacity
        self.last = time.monotonic()

    async def take(self, n: int = 1) -> None:
        if self.rate <= 0:
            return
        while n > 0:
            part = min(float(n), self.capacity)
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= part:
                    self.tokens -= part
                    break
                await asyncio.sleep((part - self.tokens) / self.rate)
            n -= int(part)


def parse_start(text: str | None) -> datetime:
    """--start: ISO date-time (naive = local time), "HH:MM" today, or default today 08:00."""
    local_now = datetime.now().astimezone()
    if not text:
        return local_now.replace(hour=8, minute=0, second=0, microsecond=0)
    if len(text) <= 5 and ":" in text:
        hh, mm = text.split(":")
        return local_now.replace(hour=int(hh), minute=int(mm), second=0, microsecond=0)
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo is not None else dt.astimezone()


def resume_start(default: datetime, network: datetime | None) -> datetime:
    """Without --start: the default start, or where the network clock stands when that is
    later (an earlier run on the same topics). The workers' clock never goes back, so a
    simulated day restarting earlier would be handled at the earlier run's time until it
    caught up; the day goes on instead."""
    if network is None or network <= default:
        return default
    return network.astimezone(default.tzinfo)


async def network_time(settings: KafkaSettings) -> datetime | None:
    """The network clock as the public topics tell it: the latest store-load `updated_at`
    (None when there is none yet or it cannot be read)."""
    try:
        records = await read_to_end(settings, [TOPICS.store_load.name], timeout_s=15.0)
    except Exception:  # noqa: BLE001 - no figure: the default start applies
        return None
    latest: datetime | None = None
    for rec in records:
        try:
            t = datetime.fromisoformat(orjson.loads(rec.value or b"null")["updated_at"])
        except (ValueError, TypeError, KeyError):
            continue
        if t.tzinfo is not None and (latest is None or t > latest):
            latest = t
    return latest


def backorder_channels(path: Path) -> tuple[str, ...]:
    """The channels the workers' routing policy (STOCKROUTE_ROUTING_POLICY, as the workers
    read it) enables backorders for: the engine refuses a preorder on any other, so the
    simulator asks none there (none at all when the file cannot be read)."""
    try:
        policy = RoutingPolicy.load(path)
    except (OSError, ValueError):
        return ()
    return tuple(ch for ch in CHANNELS if policy.backorder.rule(ch).enabled)


def _kind(topic: AnyTopic, value: dict[str, Any]) -> str:
    """Progress-line label: the topic handle, refined by message type where it tells more."""
    if topic.handle == "web_orders":
        return "cancel" if value.get("type") == "order_cancelled" else "order"
    if topic.handle == "fulfilment_events":
        return str(value.get("type", "fulfilment"))
    return {
        "pos_sales": "pos",
        "supplier_feeds": "feed",
        "returns": "return",
        "locations": "location",
    }.get(topic.handle, topic.handle)


_INPUTS = ("location", "feed", "pos", "order", "cancel")
_STEPS = ("accepted", "rejected", "shipped", "collected")


def _progress(
    stats: RunStats, clock: datetime, rate: float, speed: float, staff: Staff | None
) -> str:
    """One status line: what went out, how fast, where the simulated clock stands."""
    sent = stats.sent
    parts = [f"{k} {sent[k]}" for k in _INPUTS if sent.get(k)]
    fulfil = sum(v for k, v in sent.items() if k not in _INPUTS and k != "return")
    if fulfil:
        steps = ", ".join(f"{k} {sent[k]}" for k in _STEPS if sent.get(k))
        parts.append(f"fulfilment {fulfil}" + (f" [{steps}]" if steps else ""))
    if sent.get("return"):
        parts.append(f"return {sent['return']}")
    tail = f" | routed in {stats.routed_in}, open shipments {staff.open_shipments}" if staff else ""
    return (
        f"sim {clock.astimezone():%a %d %b %H:%M:%S} x{speed:.0f} | sent {sum(sent.values())} "
        f"({', '.join(parts) or '-'}) | {rate:.0f}/s{tail}"
    )


class _Sender:
    """The producer side: key per topics.yaml, orjson values, rate cap, delivery accounting."""

    def __init__(self, producer: Any, bucket: TokenBucket, stats: RunStats) -> None:
        self.producer = producer
        self.bucket = bucket
        self.stats = stats

    def _done(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self.stats.delivery_errors += 1
            if self.stats.first_error is None:
                self.stats.first_error = f"{type(exc).__name__}: {exc}"

    async def send(self, topic: AnyTopic, key: str, value: dict[str, Any]) -> None:
        await self.bucket.take(1)
        fut = await self.producer.send(topic.name, value=value, key=key)
        fut.add_done_callback(self._done)
        self.stats.sent[_kind(topic, value)] += 1

    async def send_all(self, batch: Sequence[Emission]) -> None:
        for topic, key, value in batch:
            await self.send(topic, key, value)


async def _check_topics(settings: KafkaSettings, names: Sequence[str]) -> None:
    """Fail fast with one clear line instead of a producer hanging on a missing topic."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs(), request_timeout_ms=10000)
    log = logging.getLogger("aiokafka")
    level = log.level
    log.setLevel(logging.CRITICAL)  # our one line says it; aiokafka's traceback adds nothing
    try:
        await admin.start()
    except Exception as exc:  # noqa: BLE001 - any failure here means "cannot reach Kafka"
        raise SimError(f"cannot reach Kafka at {settings.bootstrap} ({exc})") from None
    finally:
        log.setLevel(level)
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    missing = [n for n in names if n not in existing]
    if missing:
        raise SimError(f"missing topic(s) {', '.join(missing)}: run `stockroute topics`")


class _StockWatch:
    """Waits until the engine has folded the opening stock before the first order goes out.

    Without it the first minutes of orders race the opening receipts through the engine and come
    out "unroutable: insufficient stock", which says nothing about routing. The signal is the
    public stock-availability topic: it grows while receipts are folded and goes quiet after.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self.reader = TopicReader(settings)
        self.baseline = 0

    async def __aenter__(self) -> _StockWatch:
        await self.reader.start()
        self.baseline = await self._count()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.reader.stop()

    async def _count(self) -> int:
        """Messages ever written to stock-availability (the sum of its end offsets)."""
        return sum((await self.reader.end_offsets([TOPICS.stock_availability.name])).values())

    async def wait(
        self, max_wait_s: float, stop: asyncio.Event, *, idle_s: float = 10.0, quiet_s: float = 2.0
    ) -> str:
        began = time.monotonic()
        last, last_change = self.baseline, began
        while not stop.is_set() and time.monotonic() - began < max_wait_s:
            await asyncio.sleep(0.5)
            now, n = time.monotonic(), await self._count()
            if n != last:
                last, last_change = n, now
            elif last == self.baseline and now - began >= idle_s:
                return "no engine is folding stock (stock-availability unchanged); starting anyway"
            elif last != self.baseline and now - last_change >= quiet_s:
                return f"opening stock folded ({last - self.baseline} availability updates)"
        return f"stopped waiting for the opening stock after {time.monotonic() - began:.0f} s"


async def _routed_reader(settings: KafkaSettings) -> TopicReader:
    """A reader positioned at the end of routed-orders before we produce anything.

    No group: the simulator is a single observer and must not steal partitions from another
    consumer group; positions are resolved eagerly so no decision made after the first order
    is missed.
    """
    reader = TopicReader(settings)
    await reader.start()
    try:
        await reader.assign([TOPICS.routed_orders.name], start="end")
    except BaseException:
        await reader.stop()
        raise
    return reader


async def run(
    opts: SimOptions,
    *,
    settings: KafkaSettings | None = None,
    stop: asyncio.Event | None = None,
    out: TextIO | None = None,
) -> RunStats:
    """Run the simulated retailer against Kafka until --duration or `stop` is set."""
    from aiokafka import AIOKafkaProducer

    settings = settings or KafkaSettings.from_env()
    out = out or sys.stderr
    stop = stop or asyncio.Event()
    stats = RunStats()
    run_id = secrets.token_hex(3) if opts.run_id is None else opts.run_id
    needed = [TOPICS.pos_sales.name, TOPICS.supplier_feeds.name, TOPICS.web_orders.name]
    if opts.initial_stock and opts.stock_wait_s > 0:
        needed.append(TOPICS.stock_availability.name)
    if opts.publish_locations:
        needed.append(TOPICS.locations.name)
    if opts.staff:
        needed += [
            TOPICS.fulfilment_events.name,
            TOPICS.returns.name,
            TOPICS.routed_orders.name,
        ]
    await _check_topics(settings, needed)
    start = opts.start or resume_start(parse_start(None), await network_time(settings))
    network = generate_network(
        opts.seed, opts.warehouses, opts.stores, opts.suppliers, opts.marketplaces
    )
    catalogue = Catalogue(opts.seed, opts.skus)
    workload = Workload(
        network,
        catalogue,
        opts.seed,
        start,
        opts.peak,
        opts.web_orders_per_hour,
        peak_factor=opts.peak_factor,
        pos_sales_per_store_hour=opts.pos_sales_per_store_hour,
        replenish="consumption" if opts.staff else "demand",
        run_id=run_id,
        preorder_share=opts.preorder_share,
        preorder_channels=(
            backorder_channels(WorkerSettings.from_env().routing_policy)
            if opts.preorder_channels is None
            else opts.preorder_channels
        ),
    )
    staff = (
        Staff(network, opts.seed, config=StaffConfig(pace=opts.staff_pace), run_id=run_id)
        if opts.staff
        else None
    )
    end = start + timedelta(hours=opts.duration_h) if opts.duration_h is not None else None

    print(
        f"stockroute simulate: seed {opts.seed}, run id {run_id or '-'}, "
        f"{len(network)} locations, {len(catalogue)} SKUs, start {start.isoformat()}, "
        f"speed x{opts.speed:g}, max {opts.max_rate:g} events/s"
        + (f", PEAK x{opts.peak_factor:g}" if opts.peak else ""),
        file=out,
        flush=True,
    )

    producer = AIOKafkaProducer(
        **settings.aiokafka_kwargs(),
        acks="all",
        linger_ms=5,
        key_serializer=lambda k: k.encode("utf-8"),
        value_serializer=orjson.dumps,
    )
    await producer.start()
    try:
        routed = await _routed_reader(settings) if staff is not None else None
    except BaseException:
        await producer.stop()
        raise
    sender = _Sender(producer, TokenBucket(opts.max_rate), stats)

    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)

    clock = start
    began = time.monotonic()  # reset when the clock starts
    tasks: list[asyncio.Task[None]] = []

    async def consume() -> None:
        assert routed is not None and staff is not None
        while not stop.is_set():
            try:
                batches = await routed.consumer.getmany(timeout_ms=200, max_records=1000)
            except Exception as exc:  # noqa: BLE001 - keep the staff alive through broker hiccups
                print(f"\nstockroute simulate: routed-orders: {exc}", file=out, flush=True)
                await asyncio.sleep(1.0)
                continue
            for records in batches.values():
                for rec in records:
                    try:
                        msg = orjson.loads(rec.value)
                        if not isinstance(msg, dict):
                            raise TypeError("not a JSON object")
                        staff.on_routed(msg, clock)
                        stats.routed_in += 1
                    except Exception:  # noqa: BLE001 - one bad message must not stop the staff
                        stats.bad_routed += 1

    async def progress() -> None:
        tty = out.isatty()
        last_total, last_t, last_clock = 0, time.monotonic(), clock
        while True:
            await asyncio.sleep(opts.progress_interval_s)
            now = time.monotonic()
            total = sum(stats.sent.values())
            span = max(1e-6, now - last_t)
            rate = (total - last_total) / span
            speed = (clock - last_clock).total_seconds() / span
            last_total, last_t, last_clock = total, now, clock
            line = _progress(stats, clock, rate, speed, staff)
            if tty:
                out.write("\r" + line + "\x1b[K")
            else:
                out.write(line + "\n")
            out.flush()

    try:
        if opts.publish_locations:
            for loc in network:
                await sender.send(TOPICS.locations, loc.location_id, loc.model_dump(mode="json"))
        if opts.initial_stock:
            async with contextlib.AsyncExitStack() as stack:
                watch = None
                if opts.stock_wait_s > 0:
                    watch = await stack.enter_async_context(_StockWatch(settings))
                for value in workload.initial_stock(at=start - timedelta(minutes=1)):
                    await sender.send(TOPICS.supplier_feeds, value["location_id"], value)
                await producer.flush()
                if watch is not None:
                    say = (
                        f"waiting at most {opts.stock_wait_s:g} s for the engine to fold the stock"
                    )
                    print(f"stockroute simulate: {say}", file=out, flush=True)
                    said = await watch.wait(opts.stock_wait_s, stop)
                    print(f"stockroute simulate: {said}", file=out, flush=True)
        if routed is not None:
            tasks.append(asyncio.create_task(consume()))
        tasks.append(asyncio.create_task(progress()))

        last = began = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
            now = time.monotonic()
            dt = min(now - last, MAX_TICK_S)
            last = now
            nxt = clock + timedelta(seconds=dt * opts.speed)
            if end is not None and nxt >= end:
                nxt = end
            batch = workload.events_between(clock, nxt)
            if staff is not None:
                batch = [e for e in batch if e[0].handle != "web_orders" or staff.cancellable(e[2])]
                for topic, _key, value in batch:
                    if topic.handle == "web_orders":
                        staff.on_order(value)
                batch += staff.due(nxt)
                for loc_id, sku, qty in staff.drain_consumption():
                    workload.record_consumption(loc_id, sku, qty)
            clock = nxt
            await sender.send_all(batch)
            if end is not None and clock >= end:
                break
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for sig in installed:
            loop.remove_signal_handler(sig)
        try:
            await asyncio.wait_for(producer.flush(), 30)
        finally:
            await producer.stop()
            if routed is not None:
                await routed.stop()
        stats.sim_end = clock
        if out.isatty():
            out.write("\n")
        took = max(1e-6, time.monotonic() - began)
        avg_speed = (clock - start).total_seconds() / took
        out.write(_progress(stats, clock, sum(stats.sent.values()) / took, avg_speed, staff))
        out.write(f" | done in {took:.1f} s\n")
        if stats.delivery_errors:
            out.write(
                f"stockroute simulate: {stats.delivery_errors} events failed to deliver "
                f"(first: {stats.first_error})\n"
            )
        out.flush()
    return stats


def build_parser() -> argparse.ArgumentParser:
    from streams.cliargs import KAFKA_ENV, Parser

    p = Parser(
        prog="stockroute simulate",
        description="Run a simulated retailer (stores, warehouses, web orders, store staff) "
        "against Kafka, faster than real time.",
        epilog=KAFKA_ENV,
    )
    d = SimOptions()
    p.add_argument(
        "--seed", type=int, default=d.seed, help="reproducible run (default %(default)s)"
    )
    p.add_argument(
        "--speed",
        type=float,
        default=d.speed,
        help="simulated seconds per real second (default %(default)s: an hour a minute)",
    )
    p.add_argument(
        "--peak", action="store_true", help="Black Friday: web orders x --peak-factor (default off)"
    )
    p.add_argument(
        "--peak-factor",
        type=float,
        default=d.peak_factor,
        help="web order multiplier of --peak (default %(default)s)",
    )
    p.add_argument(
        "--warehouses",
        type=int,
        default=d.warehouses,
        help="warehouses in the network (default %(default)s)",
    )
    p.add_argument(
        "--stores", type=int, default=d.stores, help="stores in the network (default %(default)s)"
    )
    p.add_argument(
        "--suppliers",
        type=int,
        default=d.suppliers,
        help="suppliers (drop-ship) in the network (default %(default)s)",
    )
    p.add_argument(
        "--marketplaces",
        type=int,
        default=d.marketplaces,
        help="marketplace sellers in the network (default %(default)s)",
    )
    p.add_argument("--skus", type=int, default=d.skus, help="distinct SKUs (default %(default)s)")
    p.add_argument(
        "--web-orders-per-hour",
        type=float,
        default=d.web_orders_per_hour,
        help="daily mean before the peak factor (default %(default)s)",
    )
    p.add_argument(
        "--pos-sales-per-store-hour",
        type=float,
        default=d.pos_sales_per_store_hour,
        help="till sales per store and hour (default %(default)s)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="simulated hours to run (default: until Ctrl-C)",
    )
    p.add_argument(
        "--max-rate",
        type=float,
        default=d.max_rate,
        help="events per second cap (default %(default)s; 0 = no cap)",
    )
    p.add_argument(
        "--start",
        default=None,
        help="simulated start: ISO date-time (naive = local) or HH:MM (default today 08:00, "
        "or where the network clock on store-load stands if later: an earlier run goes on)",
    )
    p.add_argument(
        "--publish-locations",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="publish the generated network to the locations topic first (default: on)",
    )
    p.add_argument(
        "--initial-stock",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="publish the opening stock as supplier receipts first (default: on)",
    )
    p.add_argument(
        "--stock-wait",
        type=float,
        default=d.stock_wait_s,
        metavar="SECONDS",
        help="after the opening stock, wait at most this long for the engine to fold it before "
        "the clock starts (default %(default)s; 0 = do not wait)",
    )
    p.add_argument(
        "--staff",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="simulate store staff from routed-orders (fulfilment events, returns) (default: on)",
    )
    p.add_argument(
        "--staff-pace",
        type=float,
        default=d.staff_pace,
        metavar="SHARE",
        help="share of each location's declared capacity_per_hour its staff achieve (default "
        "%(default)s; e.g. 0.5 at a peak where walk-in customers come first: promises slip)",
    )
    p.add_argument(
        "--preorder-share",
        type=float,
        default=d.preorder_share,
        metavar="SHARE",
        help="share of the orders with a line whose SKU has supply announced that ask it as a "
        "preorder, on the channels the routing policy (STOCKROUTE_ROUTING_POLICY) enables "
        "backorders for (default %(default)s; 0 = none)",
    )
    p.add_argument(
        "--run-id",
        default=None,
        help="id namespace of events and orders (default: random); same seed and run id "
        "reproduce the same events",
    )
    p.add_argument(
        "--write-network",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the network as JSON lines (for `stockroute locations load`) and exit "
        "(default: publish it)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `stockroute simulate` (and `python -m sim`)."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    if args.speed <= 0:
        print("stockroute simulate: --speed must be > 0", file=sys.stderr)
        return 2
    if not 0 < args.staff_pace <= 1:
        print("stockroute simulate: --staff-pace must be in (0, 1]", file=sys.stderr)
        return 2
    if not 0 <= args.preorder_share <= 1:
        print("stockroute simulate: --preorder-share must be in [0, 1]", file=sys.stderr)
        return 2
    if args.write_network is not None:
        network: list[Location] = generate_network(
            args.seed, args.warehouses, args.stores, args.suppliers, args.marketplaces
        )
        path = write_network_file(args.write_network, network)
        print(f"wrote {len(network)} locations to {path}")
        return 0
    try:
        start = parse_start(args.start) if args.start else None  # None: resume_start
    except ValueError as exc:
        print(f"stockroute simulate: bad --start: {exc}", file=sys.stderr)
        return 2
    opts = SimOptions(
        seed=args.seed,
        speed=args.speed,
        peak=args.peak,
        peak_factor=args.peak_factor,
        warehouses=args.warehouses,
        stores=args.stores,
        suppliers=args.suppliers,
        marketplaces=args.marketplaces,
        skus=args.skus,
        web_orders_per_hour=args.web_orders_per_hour,
        pos_sales_per_store_hour=args.pos_sales_per_store_hour,
        duration_h=args.duration,
        max_rate=args.max_rate,
        start=start,
        publish_locations=args.publish_locations,
        initial_stock=args.initial_stock,
        stock_wait_s=args.stock_wait,
        staff=args.staff,
        staff_pace=args.staff_pace,
        run_id=args.run_id,
        preorder_share=args.preorder_share,
    )
    try:
        stats = asyncio.run(run(opts))
    except SimError as exc:
        print(f"stockroute simulate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 1 if stats.delivery_errors else 0


if __name__ == "__main__":
    sys.exit(main())
