"""The bench's printed table shows where a routing window's time and CPU went (hops, CPU per
order) when the section measured them, and still renders results recorded before they were."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from bench.run import table

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def _routing_run() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / "routing-42a9ed9-amd-epyc.json").read_text())
    return data


def test_a_routing_window_shows_its_hops_and_cpu_per_order() -> None:
    out = table(_routing_run())
    for hop in ("order_to_asks", "asks_to_answer", "answer_to_decision", "order_to_decision"):
        assert out.count(f"{hop} p50/p99 ms") == 2  # at 500/s and below saturation
    assert "11,762/17,092" in out  # order -> asks at 500/s, p50/p99 of that run
    assert "CPU ms/order (workers/broker), utilisation" in out
    assert "3.18/1.4, 0.9/0.4" in out
    assert "CPU ms/order at saturation (workers/broker)" in out


def test_results_recorded_before_the_hops_still_render() -> None:
    old = copy.deepcopy(_routing_run())
    routing = old["sections"]["routing"]
    for window in (routing["latency"], routing["latency_below_saturation"]):
        window.pop("hops")
        window.pop("cpu")
    routing["saturation"].pop("cpu")
    out = table(old)
    assert "routing orders/s (saturation)" in out
    assert "order_to_asks" not in out
    assert "CPU ms/order" not in out
