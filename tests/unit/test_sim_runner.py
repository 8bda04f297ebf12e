"""The runner's pure parts: options, start time, rate cap, network file."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from sim.network import generate_network, read_network_file
from sim.runner import (
    RunStats,
    SimOptions,
    TokenBucket,
    _progress,
    backorder_channels,
    build_parser,
    main,
    parse_start,
    resume_start,
)
from sim.staff import Staff


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
            *("--stock-wait", "0", "--no-staff", "--run-id", "r1"),
        ]
    )
    assert args.stock_wait == 0 and not args.staff and args.run_id == "r1"
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


def test_the_progress_line_shows_counts_by_type_rate_clock_and_open_shipments() -> None:
    stats = RunStats()
    stats.sent.update({"pos": 40, "order": 12, "cancel": 1, "accepted": 5, "picked": 3})
    stats.routed_in = 9
    clock = datetime(2025, 11, 28, 18, 30).astimezone()
    line = _progress(stats, clock, 123.4, 60.0, Staff(generate_network(1, stores=2), 1))
    assert "18:30:00" in line and "x60" in line and "123/s" in line
    assert "sent 61" in line and "pos 40" in line and "order 12" in line and "cancel 1" in line
    assert "fulfilment 8 [accepted 5]" in line and "open shipments 0" in line


def test_without_start_the_day_goes_on_from_the_network_clock() -> None:
    """A second run on the same topics: the workers' clock never goes back, so the simulated
    day resumes where the network clock stands rather than at 08:00 again."""
    default = datetime(2026, 11, 30, 8, 0).astimezone()
    later = datetime(2026, 11, 30, 17, 45, tzinfo=UTC)
    assert resume_start(default, None) == default
    assert resume_start(default, default - timedelta(hours=3)) == default
    resumed = resume_start(default, later)
    assert resumed == later and resumed.tzinfo == default.tzinfo


def test_preorders_go_to_the_channels_the_policy_enables_backorders_for(tmp_path: Path) -> None:
    policy = Path(__file__).parents[2] / "policy" / "routing.yaml"
    assert backorder_channels(policy) == ()  # the shipped policy: backorders off
    data = yaml.safe_load(policy.read_text())
    data["backorder"] = {"enabled": False, "channels": {"app": {"enabled": True}}}
    custom = tmp_path / "routing.yaml"
    custom.write_text(yaml.safe_dump(data))
    assert backorder_channels(custom) == ("app",)
    assert backorder_channels(tmp_path / "missing.yaml") == ()
    assert build_parser().parse_args(["--preorder-share", "0"]).preorder_share == 0
    assert main(["--preorder-share", "2"]) == 2
