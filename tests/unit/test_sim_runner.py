"""The runner's pure parts: options, start time, rate cap, network file."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

from sim.network import read_network_file
from sim.runner import SimOptions, TokenBucket, build_parser, main, parse_start


def test_the_cli_defaults_match_the_documented_ones() -> None:
    args = build_parser().parse_args([])
    d = SimOptions()
    assert (args.seed, args.speed, args.max_rate, args.duration) == (d.seed, 60.0, d.max_rate, None)
    assert args.publish_locations and args.initial_stock and args.staff and not args.peak
    assert (args.stores, args.warehouses, args.suppliers, args.skus) == (60, 3, 2, 5000)


def test_the_cli_accepts_every_option_of_the_issue() -> None:
    args = build_parser().parse_args(
        [
            *("--seed", "7", "--speed", "600", "--peak", "--peak-factor", "9"),
            *("--stores", "10", "--warehouses", "2", "--suppliers", "1", "--skus", "500"),
            *("--web-orders-per-hour", "100", "--duration", "0.5", "--max-rate", "300"),
            *("--start", "07:30", "--no-publish-locations", "--no-initial-stock"),
        ]
    )
    assert args.peak and args.peak_factor == 9 and args.duration == 0.5 and args.max_rate == 300
    assert not args.publish_locations and not args.initial_stock
    assert parse_start(args.start).hour == 7 and parse_start(args.start).minute == 30


def test_start_defaults_to_today_at_eight_local_and_naive_times_are_local() -> None:
    s = parse_start(None)
    assert (s.hour, s.minute, s.tzinfo is not None) == (8, 0, True)
    assert s.date() == datetime.now().astimezone().date()
    assert parse_start("2025-11-28T09:15").tzinfo is not None
    assert parse_start("2025-11-28T09:15:00+01:00").utcoffset().total_seconds() == 3600  # type: ignore[union-attr]


def test_the_token_bucket_never_lets_more_than_the_rate_through() -> None:
    async def go() -> float:
        bucket = TokenBucket(2000.0)
        t = time.monotonic()
        for _ in range(700):
            await bucket.take(1)
        return time.monotonic() - t

    elapsed = asyncio.run(go())
    # 700 events at 2000/s with a 200-event burst need at least 0.25 s.
    assert elapsed >= 0.24


def test_write_network_writes_a_loadable_file_without_kafka(tmp_path: Path) -> None:
    path = tmp_path / "locations.jsonl"
    assert main(["--seed", "3", "--stores", "12", "--write-network", str(path)]) == 0
    locs = read_network_file(path)
    assert sum(loc.kind == "store" for loc in locs) == 12
