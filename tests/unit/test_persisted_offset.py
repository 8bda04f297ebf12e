"""Runtime.put / put_many: a changelog partition's persisted offset follows its last record
delivered, once per producer batch (records appended to one batch share its future)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from domain.routing import RoutingPolicy
from streams import app as app_module
from streams.app import Runtime
from streams.settings import WorkerSettings

CHANGELOG = "stockroute-stock-changelog"


class Store:
    def __init__(self) -> None:
        self.persisted: list[tuple[TP, int]] = []

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted.append((tp, offset))


@pytest.fixture
def local_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local store left out: each write gives its changelog record at once."""
    monkeypatch.setattr(
        app_module.faust_fixes, "store_set_local", lambda t, k, v, p: (k.encode(), b"v")
    )
    monkeypatch.setattr(
        app_module.faust_fixes,
        "store_write_local",
        lambda t, items, p: [(k.encode(), b"v") for k, _ in items],
    )


def _runtime(monkeypatch: pytest.MonkeyPatch, deliveries: list[Any]) -> tuple[Runtime, Any]:
    """A runtime whose records are delivered as `deliveries` say, and a table of a Store."""
    pending = iter(deliveries)

    async def produce(*args: Any) -> Any:
        return next(pending)

    app: Any = SimpleNamespace()
    rt = Runtime(app=app, settings=WorkerSettings(), policy=RoutingPolicy.default())
    monkeypatch.setattr(rt, "produce", produce)
    table = SimpleNamespace(
        data=Store(), changelog_topic=SimpleNamespace(get_topic_name=lambda: CHANGELOG)
    )
    return rt, table


@pytest.mark.usefixtures("local_writes")
def test_records_of_one_batch_record_the_last_offset_once_and_a_failed_batch_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        rt, table = _runtime(monkeypatch, [(first, 0), (first, 1), (first, 2), (second, 0)])
        await rt.put(table, "a", 1, 3)
        await rt.put_many(table, [("b", 1), ("c", 1)], 3)
        assert len(first._callbacks) == 1  # type: ignore[attr-defined]  # one per batch
        first.set_result(SimpleNamespace(offset=40))  # the batch's base offset
        await asyncio.sleep(0)
        assert table.data.persisted == [(TP(CHANGELOG, 3), 42)]  # its last record's
        await rt.put(table, "d", 1, 3)
        second.set_exception(RuntimeError("not delivered"))
        await asyncio.sleep(0)
        assert table.data.persisted == [(TP(CHANGELOG, 3), 42)]  # a failed batch: nothing

    asyncio.run(go())


@pytest.mark.usefixtures("local_writes")
def test_a_batch_done_after_a_newer_one_started_leaves_the_offset_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        rt, table = _runtime(monkeypatch, [(first, 5), (second, 0)])
        await rt.put(table, "a", 1, 0)
        await rt.put(table, "b", 1, 0)
        first.set_result(SimpleNamespace(offset=10))
        await asyncio.sleep(0)
        assert table.data.persisted == []  # the newer batch's record covers it
        second.set_result(SimpleNamespace(offset=16))
        await asyncio.sleep(0)
        assert table.data.persisted == [(TP(CHANGELOG, 0), 16)]

    asyncio.run(go())
