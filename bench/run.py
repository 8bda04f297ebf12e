"""`python -m bench.run [--quick] [--only fold,routing,burst,scale,soak,quality,promise]`.

Writes bench/results/latest.json and prints a table. Benchmarks never fail on a number: a
section that raises is recorded with its error and the others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import commit, dirty, machine

SECTIONS = ("quality", "floor", "fold", "routing", "promise", "burst", "scale", "soak", "tuning")
OUT = Path(__file__).parent / "results" / "latest.json"


def _run_section(name: str, quick: bool) -> dict[str, Any]:
    if name == "quality":
        from bench.quality import bench_quality

        return bench_quality(quick)
    if name == "promise":
        from bench.promise_bench import bench_promise

        return asyncio.run(bench_promise(quick))
    if name == "floor":
        from bench.faust_floor import bench_floor

        return asyncio.run(bench_floor(quick))
    from bench import kafka_bench

    fn = getattr(kafka_bench, f"bench_{name}")
    return asyncio.run(fn(quick))


def _hop_rows(lat: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """A latency window's hop breakdown (p50/p99 ms per hop) and CPU per order, when measured."""
    rows: list[tuple[str, str, str, str]] = []
    for hop, h in lat.get("hops", {}).items():
        rows.append((f"    {hop} p50/p99 ms", f"{_fmt(h['p50_ms'])}/{_fmt(h['p99_ms'])}", "", ""))
    cpu = lat.get("cpu")
    if cpu:
        rows.append(
            (
                "    CPU ms/order (workers/broker), utilisation",
                f"{_fmt(cpu['workers_s_per_1k_events'])}/{_fmt(cpu['broker_s_per_1k_events'])}, "
                f"{_fmt(cpu['workers_utilisation'])}/{_fmt(cpu['broker_utilisation'])}",
                "",
                "",
            )
        )
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 10 else f"{v:,.0f}"
    return str(v)


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = []
    s = results["sections"]
    f = s.get("fold", {})
    if "events_per_s" in f:
        ref = f.get("reference", {})
        rows += [
            ("fold events/s (RocksDB, 1 worker)", _fmt(f["events_per_s"]), ">= 20,000", ""),
            ("  raw consume/s (ref)", _fmt(ref.get("raw_consume_per_s")), "", ""),
            (
                "  raw consume-update-produce/s (ref)",
                _fmt(ref.get("raw_consume_update_produce_per_s")),
                "",
                "",
            ),
            ("  fold / raw consume", _fmt(f.get("ratio_to_raw_consume")), ">= 0.5", ""),
            ("  fold / raw c-u-p", _fmt(f.get("ratio_to_raw_cup")), "", ""),
            ("  fold events/s (memory store)", _fmt(f.get("memory_events_per_s")), "", ""),
        ]
    fl = s.get("floor", {}).get("messages_per_s", {})
    for mode, rates in fl.items():
        rows.append(
            (
                f"faust floor msgs/s: {mode} (stock / with fixes)",
                f"{_fmt(rates.get('faust_stock'))} / {_fmt(rates.get('with_fixes'))}",
                "",
                "",
            )
        )
    pr = s.get("promise", {})
    if "p99_ms" in pr:
        rt = pr.get("routing", {})
        rows += [
            (
                "/promise p99 ms at 200 req/s while routing",
                _fmt(pr["p99_ms"]),
                "<= 20",
                "yes" if pr.get("met") else "no",
            ),
            (
                "  /promise answered req/s (p50 ms)",
                f"{_fmt(pr.get('requests_per_s'))} ({_fmt(pr.get('p50_ms'))})",
                "",
                "",
            ),
            (
                "  orders decided/s in the same run",
                _fmt(rt.get("decided_per_s_during_load")),
                "200",
                "",
            ),
        ]
    r = s.get("routing", {})
    if "orders_per_s" in r:
        lat, ref = r["latency"], r["reference"]["kafka_produce_consume"]
        rows += [
            ("routing orders/s (saturation)", _fmt(r["orders_per_s"]), ">= 2,000", ""),
            (
                f"  e2e p50/p95/p99 ms @ {lat['rate']:.0f}/s",
                f"{_fmt(lat['p50_ms'])}/{_fmt(lat['p95_ms'])}/{_fmt(lat['p99_ms'])}",
                "",
                "",
            ),
            (
                "  kafka p50/p99 ms (ref, same load)",
                f"{_fmt(ref['p50_ms'])}/{_fmt(ref['p99_ms'])}",
                "",
                "",
            ),
            ("  p99 - kafka p99 ms", _fmt(r.get("p99_minus_kafka_p99_ms")), "<= 50 @ 500/s", ""),
        ]
        rows += _hop_rows(lat)
        sat_cpu = r.get("saturation", {}).get("cpu")
        if sat_cpu:
            rows.append(
                (
                    "  CPU ms/order at saturation (workers/broker)",
                    f"{_fmt(sat_cpu['workers_s_per_1k_events'])}/"
                    f"{_fmt(sat_cpu['broker_s_per_1k_events'])}",
                    "",
                    "",
                )
            )
        low = r.get("latency_below_saturation")
        if low:
            lref = low["reference"]
            rows += [
                (
                    f"  e2e p50/p95/p99 ms @ {low['rate']:.0f}/s (below saturation)",
                    f"{_fmt(low['p50_ms'])}/{_fmt(low['p95_ms'])}/{_fmt(low['p99_ms'])}",
                    "",
                    "",
                ),
                (
                    "  kafka p50/p99 ms (ref, same load)",
                    f"{_fmt(lref['p50_ms'])}/{_fmt(lref['p99_ms'])}",
                    "",
                    "",
                ),
                (
                    "  p99 ms of each window (median reported)",
                    " / ".join(_fmt(w.get("p99_ms")) for w in low.get("windows", [])),
                    "",
                    "",
                ),
                ("  p99 - kafka p99 ms", _fmt(low.get("p99_minus_kafka_p99_ms")), "", ""),
            ]
            rows += _hop_rows(low)
    b = s.get("burst", {})
    if "locations_over_max_backlog" in b:
        rows += [
            (
                f"burst {b['orders']} orders, 2 workers: decided, orders/s",
                f"{_fmt(b['decided'])}, {_fmt(b['orders_per_s'])}",
                "",
                "",
            ),
            ("  locations over max_backlog", _fmt(b["locations_over_max_backlog"]), "0", ""),
            ("  oversold sku@location", _fmt(b["oversell"]), "0", ""),
            (
                "  slots taken / slots, unroutable (saturated)",
                f"{_fmt(b['slots_taken'])} / {_fmt(b['slots'])}, "
                f"{_fmt(b['unroutable'])} ({_fmt(b['unroutable_saturated'])})",
                "",
                "",
            ),
            (
                "  open / max_backlog per location",
                " ".join(
                    f"{loc}:{v['open']}/{v['max_backlog']}"
                    for loc, v in b["open_shipments"].items()
                ),
                "",
                "",
            ),
            (
                "  store-load open_orders = decisions",
                str(b["store_load_matches_decisions"]),
                "",
                "",
            ),
        ]
    sc = s.get("scale", {})
    if "efficiency" in sc:
        rows += [
            (
                "scale fold events/s 1 -> 2 workers",
                f"{_fmt(sc['one_worker'].get('events_per_s'))} -> "
                f"{_fmt(sc['two_workers'].get('events_per_s'))}",
                "",
                "",
            ),
            (
                "  efficiency (first-to-last output / from spawn)",
                f"{_fmt(sc['efficiency'])} / {_fmt(sc['efficiency_from_spawn'])}",
                ">= 0.8",
                "",
            ),
        ]
        wc, bc = sc.get("workers_cpu_s_per_1k_events"), sc.get("broker_cpu_s_per_1k_events")
        if wc and bc:
            rows += [
                (
                    "  workers CPU-s / 1k events, 1 -> 2 workers",
                    f"{_fmt(wc['one_worker'])} -> {_fmt(wc['two_workers'])}",
                    "",
                    "",
                ),
                (
                    "  workers CPU ratio 2 / 1",
                    _fmt(sc.get("workers_cpu_ratio_two_to_one")),
                    "<= 1.15",
                    "",
                ),
                (
                    "  broker CPU-s / 1k events, 1 -> 2 workers",
                    f"{_fmt(bc['one_worker'])} -> {_fmt(bc['two_workers'])}",
                    "",
                    "",
                ),
            ]
        st = sc.get("steady_state")
        if st:
            rows += [
                (
                    "  steady state (group settled first): events/s 1 -> 2",
                    f"{_fmt(st['one_worker'].get('events_per_s'))} -> "
                    f"{_fmt(st['two_workers'].get('events_per_s'))}",
                    "",
                    "",
                ),
                (
                    "  steady state: workers CPU-s / 1k events 1 -> 2, ratio",
                    f"{_fmt(st['one_worker']['workers_s_per_1k_events'])} -> "
                    f"{_fmt(st['two_workers']['workers_s_per_1k_events'])}, "
                    f"{_fmt(st['workers_cpu_ratio_two_to_one'])}",
                    "<= 1.15",
                    "",
                ),
            ]
    so = s.get("soak", {})
    if "max_lag" in so:
        rows += [
            (
                "soak max / final lag (msgs)",
                f"{_fmt(so['max_lag'])} / {_fmt(so['final_lag_10s_after_stop'])}",
                "",
                "",
            ),
            (
                "  worker RSS max / final MB",
                f"{_fmt(so['rss_mb_max'])} / {_fmt(so['rss_mb_final'])}",
                "",
                "",
            ),
        ]
    tu = s.get("tuning", {})
    for v in tu.get("variants", []):
        rows.append(
            (
                f"tuning fold {v['overrides']}"[:60],
                f"{_fmt(v['events_per_s'])} ev/s x{_fmt(v['speedup_vs_shipped'])}",
                "",
                "",
            )
        )
    for v in tu.get("routing", []):
        la = v["latency"]
        rows.append(
            (
                f"tuning routing {v['overrides']}"[:60],
                f"{_fmt(v['orders_per_s'])} ord/s, "
                f"p50/p99 {_fmt(la['p50_ms'])}/{_fmt(la['p99_ms'])} ms @{la['rate']:.0f}/s",
                "",
                "",
            )
        )
    q = s.get("quality", {})
    for day in ("normal", "peak"):
        d = q.get(day)
        if not d:
            continue
        for name, m in d["routers"].items():
            rows.append(
                (
                    f"quality {day}: {name}",
                    f"cost {_fmt(m['cost_per_order'])} ship/ord {_fmt(m['shipments_per_order'])} "
                    f"sla {_fmt(m['pct_within_sla'])}% sat {_fmt(m['peak_saturation'])} "
                    f"rej {_fmt(m['pct_rejected'])}% rer {_fmt(m['pct_rerouted'])}% "
                    f"unr {_fmt(m['pct_unroutable'])}%",
                    "",
                    "",
                )
            )
    for name, sec in s.items():
        if "error" in sec:
            rows.append((f"{name}: ERROR", sec["error"][:80], "", ""))
    w = max([len(a) for a, *_ in rows] + [10])
    w2 = max([len(b) for _, b, *_ in rows] + [10])
    lines = [f"{'benchmark'.ljust(w)}  {'measured'.ljust(w2)}  target"]
    lines += [f"{a.ljust(w)}  {b.ljust(w2)}  {c}" for a, b, c, _ in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run")
    p.add_argument("--quick", action="store_true", help="smaller sizes, shorter soak")
    p.add_argument("--only", default=",".join(SECTIONS), help="comma list of " + ",".join(SECTIONS))
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep sections of an existing output file that this run does not redo",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}")
    head = {"commit": commit(), "dirty_tree": dirty(), "machine": machine()}
    results: dict[str, Any] = {
        **head,
        "started_at": datetime.now(UTC).isoformat(),
        "quick": args.quick,
        "kafka_bootstrap": os.environ.get("KAFKA_BOOTSTRAP"),
        "sections": {},
    }
    if args.merge and args.out.exists():
        old = json.loads(args.out.read_text())
        results["sections"].update(old.get("sections", {}))
    for name in SECTIONS:
        if name not in only:
            continue
        if name != "quality" and not os.environ.get("KAFKA_BOOTSTRAP"):
            results["sections"][name] = {
                **head,
                "error": "KAFKA_BOOTSTRAP not set (use make bench)",
            }
            continue
        print(f"bench: {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            sec = _run_section(name, args.quick)
        except Exception as exc:  # noqa: BLE001 - benchmarks never fail the run
            sec = {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-3000:],
            }
        sec = {**head, "quick": args.quick, "wall_s": round(time.perf_counter() - t0, 1), **sec}
        results["sections"][name] = sec
        print(f"bench: {name} done in {sec['wall_s']}s", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    results["finished_at"] = datetime.now(UTC).isoformat()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
