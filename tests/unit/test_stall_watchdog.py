"""The runtime's stall watchdog: input that waits with nothing delivered makes the worker
restart (Runtime.stalled); idle partitions, rebalances and progress do not."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from domain.routing import RoutingPolicy
from streams import app as app_module
from streams.app import STALL_RESTART_S, Runtime
from streams.settings import WorkerSettings
from streams.topics import TOPICS

ORDERS = TP(TOPICS.web_orders.name, 0)
LOCATIONS = TP(TOPICS.locations.name, 0)  # compacted: not checked
CHANGELOG = TP("stockroute-orders-changelog", 0)


class Consumer:
    def __init__(self) -> None:
        self.high: dict[TP, int] = {}

    def assignment(self) -> set[TP]:
        return {ORDERS, LOCATIONS, CHANGELOG}

    def highwater(self, tp: TP) -> int | None:
        return self.high.get(tp)


@pytest.fixture
def rt(monkeypatch: pytest.MonkeyPatch) -> Runtime:
    app: Any = SimpleNamespace(rebalancing=False, consumer=Consumer())
    monkeypatch.setattr(app_module.faust_fixes, "tables_recovered", lambda a: True)
    monkeypatch.setattr(app_module.faust_fixes, "committed_offset", lambda a, tp: None)
    return Runtime(app=app, settings=WorkerSettings(), policy=RoutingPolicy.default())


def test_input_waiting_with_nothing_delivered_is_reported_after_the_delay(rt: Runtime) -> None:
    rt.app.consumer.high = {ORDERS: 1, LOCATIONS: 5, CHANGELOG: 9}
    assert rt.stalled(100.0) == {}
    assert rt.stalled(100.0 + STALL_RESTART_S - 1) == {}
    assert rt.stalled(100.0 + STALL_RESTART_S + 1) == {ORDERS: (0, 1)}


def test_progress_restarts_the_clock_and_a_drained_partition_is_not_stalled(rt: Runtime) -> None:
    rt.app.consumer.high = {ORDERS: 10}
    rt.stalled(0.0)
    rt._expected[ORDERS] = 4  # the agent moved on
    assert rt.stalled(STALL_RESTART_S + 1) == {}
    assert rt.stalled(2 * STALL_RESTART_S) == {}
    assert rt.stalled(2 * STALL_RESTART_S + 2) == {ORDERS: (4, 10)}
    rt._expected[ORDERS] = 10  # everything delivered: nothing waits
    assert rt.stalled(10 * STALL_RESTART_S) == {}


def test_nothing_is_checked_while_rebalancing(rt: Runtime) -> None:
    rt.app.consumer.high = {ORDERS: 3}
    rt.stalled(0.0)
    rt.app.rebalancing = True
    assert rt.stalled(5 * STALL_RESTART_S) == {}
    rt.app.rebalancing = False
    assert rt.stalled(5 * STALL_RESTART_S + 1) == {}  # the clock starts again after it
