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

    async def process_batch(rt: Any, agent: Any, msgs: list[str], budget_s: Any = None) -> None:
        seen.append(list(msgs))

    monkeypatch.setattr(loop, "process_batch", process_batch)
    monkeypatch.setattr(faust_fixes, "take_queued", lambda stream, limit: [])
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


def test_what_else_is_queued_joins_the_event_the_stream_yields(
    batches: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream yields one event per turn of the event loop; the rest of what is queued
    (up to the batch's size) is taken with it (faust_fixes.take_queued, its own tests)."""
    monkeypatch.setattr(faust_fixes, "flow_suspended", lambda app: False)
    queued = [SimpleNamespace(message=m) for m in "bcdef"]
    limits: list[int] = []

    def take_queued(stream: Any, limit: int) -> list[Any]:
        limits.append(limit)
        taken = queued[:limit]
        del queued[:limit]
        return taken

    monkeypatch.setattr(faust_fixes, "take_queued", take_queued)
    stream = FakeStream(["a", "g"], queued=[0, 0])
    batcher = loop.EagerBatches(SimpleNamespace(app=None), None, stream, size=4)  # type: ignore[arg-type]
    asyncio.run(run_until(batcher, lambda: len(stream.acked) == 5))
    assert batches[0] == ["a", "b", "c", "d"] and limits[0] == 3
    assert stream.acked[:4] == ["a", "b", "c", "d"]


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


def test_a_batch_lets_the_event_loop_run_once_its_budget_is_spent_and_flushes_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each input takes 4 ms of (fake) wall time: with a 10 ms budget other tasks run after
    the third input and after the sixth, never inside an input; the batch is still one batch,
    flushed once at its end with every input. Without a budget nothing else runs."""
    clock = {"t": 0.0}
    ticks = {"n": 0}
    ran_before: list[tuple[str, int]] = []

    async def process(rt: Any, agent: Any, msg: str, batch: Any) -> None:
        ran_before.append((msg, ticks["n"]))
        batch.scratch[msg] = True
        clock["t"] += 0.004

    flushed: list[list[str]] = []

    def flush(batch: Any) -> list[Any]:
        flushed.append(sorted(batch.scratch))
        return []

    async def ticker() -> None:
        while True:
            ticks["n"] += 1
            await asyncio.sleep(0)

    monkeypatch.setattr(loop, "process", process)
    monkeypatch.setattr(loop.time, "perf_counter", lambda: clock["t"])
    observed: list[int] = []
    sent_now: list[int] = []  # flushes done when the batch's sends were pushed out
    bundles: list[tuple[str, int]] = []  # (what, inputs processed) as the batch's bundles went

    async def emit_bundles() -> None:
        bundles.append(("emit", len(ran_before)))

    async def end_batch() -> None:
        bundles.append(("end", len(ran_before)))

    rt = SimpleNamespace(
        begin_batch=lambda: bundles.append(("begin", len(ran_before))),
        emit_bundles=emit_bundles,
        end_batch=end_batch,
        send_now=lambda: sent_now.append(len(flushed)),
        processed={},
        metrics=SimpleNamespace(batch_size=SimpleNamespace(observe=observed.append)),
        clock=None,
        locations=None,
        availability=None,
        policy=None,
    )
    agent = SimpleNamespace(name="owner", batched=True, flush=flush)

    async def run(budget: float | None) -> list[int]:
        ran_before.clear()
        tick = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        await loop.process_batch(rt, agent, list("abcdefg"), budget)  # type: ignore[arg-type]
        tick.cancel()
        first = ran_before[0][1]
        return [n - first for _, n in ran_before]

    assert asyncio.run(run(0.01)) == [0, 0, 0, 1, 1, 1, 2]
    assert flushed == [list("abcdefg")] and observed == [7]
    assert sent_now == [1]  # once, after the flush: the batch's sends skip the linger
    # the bundles collected so far go before the loop runs, the rest at the batch's end
    assert bundles == [("begin", 0), ("emit", 3), ("emit", 6), ("end", 7)]
    bundles.clear()
    assert asyncio.run(run(None)) == [0] * 7
    assert bundles == [("begin", 0), ("end", 7)]
    assert rt.processed == {"owner": 14}
