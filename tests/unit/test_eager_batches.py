"""streams/loop.py EagerBatches: batches close when nothing more is queued, and events held
while a rebalance suspends the flow are processed (so the rebalance's wait for them ends)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from streams import faust_fixes, loop


class FakeStream:
    """Yields the given events, then waits forever; `queued` says how many are still queued
    after each one (0: the queue is empty, the batch closes)."""

    def __init__(self, events: list[str], queued: list[int]) -> None:
        self.events_, self.queued = events, queued
        self.position = 0
        self.acked: list[str] = []
        self.enable_acks = True
        self.channel = SimpleNamespace(empty=lambda: self.queued[self.position - 1] == 0)

    async def events(self) -> AsyncIterator[Any]:
        for e in self.events_:
            self.position += 1
            yield SimpleNamespace(message=e)
        await asyncio.Event().wait()

    async def ack(self, event: Any) -> None:
        self.acked.append(event.message)


async def run_until(batcher: loop.EagerBatches, done: Any, timeout: float = 5.0) -> None:
    task = asyncio.ensure_future(batcher.run())
    deadline = asyncio.get_running_loop().time() + timeout
    while not done() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    seen: list[list[str]] = []

    async def process_batch(rt: Any, agent: Any, msgs: list[str]) -> None:
        seen.append(list(msgs))

    monkeypatch.setattr(loop, "process_batch", process_batch)
    return seen


def test_a_batch_closes_when_nothing_more_is_queued(
    batches: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faust_fixes, "flow_suspended", lambda app: False)
    stream = FakeStream(["a", "b", "c", "d", "e"], queued=[2, 1, 0, 0, 0])
    batcher = loop.EagerBatches(SimpleNamespace(app=None), None, stream, size=500)  # type: ignore[arg-type]
    asyncio.run(run_until(batcher, lambda: len(stream.acked) == 5))
    assert batches == [["a", "b", "c"], ["d"], ["e"]]
    assert stream.acked == ["a", "b", "c", "d", "e"] and not stream.enable_acks


def test_a_batch_closes_at_its_size(
    batches: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faust_fixes, "flow_suspended", lambda app: False)
    stream = FakeStream(list("abcde"), queued=[4, 3, 2, 1, 0])
    batcher = loop.EagerBatches(SimpleNamespace(app=None), None, stream, size=2)  # type: ignore[arg-type]
    asyncio.run(run_until(batcher, lambda: len(stream.acked) == 5))
    assert batches == [["a", "b"], ["c", "d"], ["e"]]


def test_events_held_while_the_flow_is_suspended_are_processed_and_acked(
    batches: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """More was queued after "b", but a rebalance cleared it: the stream waits for input that
    only comes after the rebalance, which itself waits for "a" and "b" to be acked."""
    suspended = {"now": False}
    monkeypatch.setattr(faust_fixes, "flow_suspended", lambda app: suspended["now"])
    stream = FakeStream(["a", "b"], queued=[5, 4])
    batcher = loop.EagerBatches(SimpleNamespace(app=None), None, stream, size=500)  # type: ignore[arg-type]

    async def scenario() -> None:
        task = asyncio.ensure_future(batcher.run())
        await asyncio.sleep(0)
        assert batches == [] and batcher.held  # held: more input was queued
        suspended["now"] = True
        deadline = asyncio.get_running_loop().time() + 5
        while len(stream.acked) < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert batches == [["a", "b"]]
    assert stream.acked == ["a", "b"]


def test_events_held_across_a_check_are_processed_even_with_the_flow_active(
    batches: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """More was queued after "b" but never comes (Faust dropped it): "a" and "b" are processed
    once they were held for a whole check interval, not left until a restart."""
    monkeypatch.setattr(faust_fixes, "flow_suspended", lambda app: False)
    stream = FakeStream(["a", "b"], queued=[5, 4])
    batcher = loop.EagerBatches(SimpleNamespace(app=None), None, stream, size=500)  # type: ignore[arg-type]
    asyncio.run(run_until(batcher, lambda: len(stream.acked) == 2))
    assert batches == [["a", "b"]]
    assert stream.acked == ["a", "b"]
