"""Runtime.put / put_many: a changelog partition's persisted offset follows its last record
delivered, once per producer batch (records appended to one batch share its future)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

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


def _table(store: Store) -> Any:
    return SimpleNamespace(
        data=store, changelog_topic=SimpleNamespace(get_topic_name=lambda: CHANGELOG)
    )


def test_records_of_one_batch_record_the_last_offset_once_and_a_newer_batch_wins(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(
        app_module.faust_fixes, "store_set_local", lambda t, k, v, p: (k.encode(), b"v")
    )
    monkeypatch.setattr(
        app_module.faust_fixes,
        "store_write_local",
        lambda t, items, p: [(k.encode(), b"v") for k, _ in items],
    )

    async def go() -> None:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        deliveries = iter([(first, 0), (first, 1), (first, 2), (second, 0)])

        async def produce(*args: Any) -> Any:
            return next(deliveries)

        rt = Runtime(
            app=SimpleNamespace(), settings=WorkerSettings(), policy=RoutingPolicy.default()
        )
        monkeypatch.setattr(rt, "produce", produce)
        store = Store()
        table = _table(store)
        await rt.put(table, "a", 1, 3)
        await rt.put_many(table, [("b", 1), ("c", 1)], 3)
        assert len(first._callbacks) == 1  # type: ignore[attr-defined]  # one per batch
        first.set_result(SimpleNamespace(offset=40))  # the batch's base offset
        await asyncio.sleep(0)
        assert store.persisted == [(TP(CHANGELOG, 3), 42)]  # its last record's
        await rt.put(table, "d", 1, 3)
        third_batch_done = second
        third_batch_done.set_exception(RuntimeError("not delivered"))
        await asyncio.sleep(0)
        assert store.persisted == [(TP(CHANGELOG, 3), 42)]  # a failed batch records nothing

    asyncio.run(go())


def test_a_batch_done_after_a_newer_one_started_leaves_the_offset_to_it(monkeypatch: Any) -> None:
    monkeypatch.setattr(
        app_module.faust_fixes, "store_set_local", lambda t, k, v, p: (k.encode(), b"v")
    )

    async def go() -> None:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        deliveries = iter([(first, 5), (second, 0)])

        async def produce(*args: Any) -> Any:
            return next(deliveries)

        rt = Runtime(
            app=SimpleNamespace(), settings=WorkerSettings(), policy=RoutingPolicy.default()
        )
        monkeypatch.setattr(rt, "produce", produce)
        store = Store()
        await rt.put(_table(store), "a", 1, 0)
        await rt.put(_table(store), "b", 1, 0)
        first.set_result(SimpleNamespace(offset=10))
        await asyncio.sleep(0)
        assert store.persisted == []  # the newer batch's record covers it
        second.set_result(SimpleNamespace(offset=16))
        await asyncio.sleep(0)
        assert store.persisted == [(TP(CHANGELOG, 0), 16)]

    asyncio.run(go())
