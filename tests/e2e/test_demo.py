"""`make demo` end to end: scripts/demo.sh for a bounded time (DEMO_DURATION) from a clean state.

Asserts flow, not business outcomes: routed orders, order events and store-load messages
appear on the run's own topics, the dashboard answers HTTP 200 while the demo runs, and the
script stops everything it started by itself (exit 0, worker and dashboard ports closed), and
no log of the run has a WARNING, ERROR or traceback.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import http_status, port_open

RUN_S = 75  # seconds the demo runs once up; flow normally shows within ~30 s of that


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_make_demo_flows_and_stops_by_itself(demo_factory) -> None:  # type: ignore[no-untyped-def]
    began = time.monotonic()
    demo = demo_factory(duration=RUN_S)
    demo.wait_running(timeout=240)
    up_s = time.monotonic() - began

    out = demo.output()
    assert f"http://127.0.0.1:{demo.dash_port}" in out, out
    assert "Logs:" in out, out
    assert http_status(f"http://127.0.0.1:{demo.worker_port}/health") == 200
    assert http_status(demo.url) == 200, f"dashboard did not answer 200:\n{demo.logs()}"

    handles = ["routed_orders", "order_events", "store_load"]
    counts = demo.wait_counts(handles, timeout=RUN_S - 5)
    flow_s = time.monotonic() - began - up_s
    # the dashboard still answers once data flows
    dash_ok = http_status(demo.url) == 200 if demo.proc.poll() is None else True

    rc = demo.proc.wait(timeout=RUN_S + 90)
    total_s = time.monotonic() - began
    print(f"demo up {up_s:.0f}s, flow after {flow_s:.0f}s, total {total_s:.0f}s, counts {counts}")
    assert all(counts.values()), f"no flow on some topics: {counts}\n{demo.logs()}"
    assert dash_ok, demo.logs()
    assert rc == 0, f"demo.sh exit {rc}\n{demo.logs()}"
    assert "DEMO_DURATION" in demo.output() and "stopped." in demo.output()
    # everything it started is gone: no worker, no dashboard listening any more
    assert not port_open(demo.worker_port), "worker still listening after the demo stopped"
    assert not port_open(demo.dash_port), "dashboard still listening after the demo stopped"
    loud = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")
    for log in ("worker", "simulator", "dashboard", "topics"):
        path = demo.data_dir / f"{log}.log"
        assert path.is_file(), log
        # a normal start and stop logs nothing at WARNING or above (issue 17)
        noisy = [line for line in path.read_text().splitlines() if loud.search(line)]
        assert noisy == [], f"{log}.log:\n" + "\n".join(noisy[:20])
