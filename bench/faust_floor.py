"""Faust's own per-message cost on this machine, before any Stockroute logic.

The reference the fold figures are read against: the same pre-produced messages (4 partitions)
through a one-agent Faust app that does nothing with them, then one that produces a message per
input (Faust's `Topic.send`, or the producer call `Runtime.produce` uses), then one that also
writes a table (Faust's `table[k] = v`). Each variant runs with Faust's stock message delivery
and with streams/faust_fixes installed (eager delivery), in a fresh worker process.

`python -m bench.faust_floor worker` is the worker (settings from FLOOR_* variables); the
benchmark section is `bench_floor` (via `python -m bench.run --only floor`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import ROOT, kafka, produce_raw

VARIANTS = ("iterate", "topic_send", "producer_send", "table_and_producer_send")


def _app() -> Any:
    """The worker side: one agent, the variant's work per message, the rate written to a file."""
    import faust

    if os.environ.get("FLOOR_FIX") == "1":
        from streams import faust_fixes

        faust_fixes.install()
    mode, topic = os.environ["FLOOR_MODE"], os.environ["FLOOR_TOPIC"]
    n = int(os.environ["FLOOR_N"])
    out_file = Path(os.environ["FLOOR_OUT"])
    app = faust.App(
        os.environ["FLOOR_APP"],
        broker=f"kafka://{kafka().bootstrap}",
        store="memory://",
        datadir=os.environ["FLOOR_DATA"],
        web_enabled=False,
        topic_partitions=4,
        consumer_auto_offset_reset="earliest",
        producer_linger=0.005,
        producer_max_batch_size=262144,
        stream_buffer_maxsize=16384,
    )

    def raw_topic(name: str) -> Any:
        return app.topic(
            name,
            partitions=4,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

    source, sink = raw_topic(topic), raw_topic(f"{topic}-out")
    sink_name = sink.get_topic_name()
    table = app.Table("floor", default=int, partitions=4)
    seen = {"n": 0, "t0": 0.0}

    def count() -> None:
        if not seen["n"]:
            seen["t0"] = time.perf_counter()
        seen["n"] += 1
        if seen["n"] == n:
            rate = (n - 1) / (time.perf_counter() - seen["t0"])
            out_file.write_text(f"{rate:.1f}")
            os._exit(0)

    @app.agent(source, concurrency=1)
    async def floor(stream: Any) -> None:
        async for event in stream.events():
            if mode == "topic_send":
                await sink.send(key=event.key, value=event.value)
            elif mode == "producer_send":
                await app.producer.send(sink_name, event.key, event.value, None, None, None)
            elif mode == "table_and_producer_send":
                table[event.key] = table[event.key] + 1
                await app.producer.send(sink_name, event.key, event.value, None, None, None)
            count()

    return app


def _run_variant(topic: str, n: int, mode: str, fix: bool, timeout: float = 180.0) -> float | None:
    tmp = Path(tempfile.mkdtemp(prefix="stockroute-floor-"))
    out = tmp / "rate"
    env = {
        **os.environ,
        "FLOOR_MODE": mode,
        "FLOOR_N": str(n),
        "FLOOR_TOPIC": topic,
        "FLOOR_OUT": str(out),
        "FLOOR_FIX": "1" if fix else "0",
        "FLOOR_DATA": str(tmp / "data"),
        # a fresh consumer group per run: every variant reads the same n messages
        "FLOOR_APP": f"floor-{uuid.uuid4().hex[:8]}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.faust_floor", "worker", "-l", "warn"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return float(out.read_text()) if out.exists() else None


async def bench_floor(quick: bool) -> dict[str, Any]:
    from bench.kafka_bench import _create_topic

    n = 20000 if quick else 50000
    topic = f"bench-floor-{uuid.uuid4().hex[:8]}"
    await _create_topic(topic)
    await _create_topic(f"{topic}-out")
    value = b'{"event_id":"0f8fad5b-d9cb-469f-a165-70867728950e","location_id":"ST-001"}'
    await produce_raw([(topic, f"k{i % 5000}".encode(), value) for i in range(n)])
    rows: dict[str, dict[str, float | None]] = {}
    for mode in VARIANTS:
        rows[mode] = {}
        for fix in (False, True):
            rows[mode]["with_fixes" if fix else "faust_stock"] = await asyncio.to_thread(
                _run_variant, topic, n, mode, fix
            )
    return {
        "parameters": {
            "messages": n,
            "partitions": 4,
            "keys": 5000,
            "store": "memory://",
            "producer_linger_s": 0.005,
            "workers": 1,
        },
        "messages_per_s": rows,
        "note": "one agent, concurrency 1; faust_stock = Faust's own message delivery, "
        "with_fixes = streams/faust_fixes installed (eager delivery: no task per message)",
    }


if __name__ == "__main__":
    _app().main()
