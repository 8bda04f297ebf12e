"""streams/faust_fixes.py: the version check, each consumer patch against Faust's own consumer,
the accessors against the memory and RocksDB stores, and the scan that keeps private Faust and
aiokafka attributes inside that one module.

Each patch test runs twice: with `install()` (must pass), and with only that patch replaced by
Faust's own method (`without-patch`, a strict xfail). That run shows the test detects the
defect: if stock Faust ever passes it, the strict xfail fails the suite and the patch (or the
test) needs another look. `pytest --runxfail -k without-patch` shows the failures.

The consumer is built the way Faust's own unit tests build one
(tests/unit/transport/test_consumer.py upstream): the real `Consumer` class with its abstract
broker methods stubbed, on a real (unstarted) app, so the code under test is Faust's.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import tomllib
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import faust
import pytest
from faust.streams import _current_event
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.types import TP, Message
from faust.types.tuples import ConsumerMessage
from intervaltree import Interval, IntervalTree
from mode.services import WaitResults
from mode.utils.queues import FlowControlQueue

from streams import faust_fixes

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "stock-ops"
TP0 = TP(TOPIC, 0)

STOCK = pytest.param(
    "stock",
    id="without-patch",
    marks=pytest.mark.xfail(
        strict=True, reason="stock Faust 0.15.3 has the defect the patch fixes"
    ),
)


# --- fixtures -------------------------------------------------------------------------------


def _stub(*args: Any, **kwargs: Any) -> Any:
    return None


#: Faust's Consumer with its broker-facing abstract methods stubbed (what upstream's
#: MockedConsumerAbstractMethods does): everything exercised here is Faust's own code.
StubConsumer: type[Consumer] = type(
    "StubConsumer", (Consumer,), dict.fromkeys(Consumer.__abstractmethods__, _stub)
)


@pytest.fixture
def app(tmp_path: Path) -> faust.App:
    app = faust.App("faust-fixes-test", datadir=str(tmp_path), store="memory://")
    app.finalize()
    return app


def _consumer(app: faust.App) -> Consumer:
    consumer = StubConsumer(
        app.transport,
        callback=_stub,
        on_partitions_revoked=_stub,
        on_partitions_assigned=_stub,
    )
    # acks are on for the topics agents read (the conductor knows them once agents subscribe)
    app.topics.acks_enabled_for = lambda topic: True  # type: ignore[method-assign]
    app.flow_control.resume()  # a running worker between rebalances
    return consumer


def _use(monkeypatch: pytest.MonkeyPatch, variant: str) -> None:
    """Faust's own methods, then (`patched`) faust_fixes.install(); undone after the test."""
    for name, original in faust_fixes._ORIGINALS.items():
        monkeypatch.setattr(Consumer, name, original)
    for name, original in faust_fixes._RECOVERY_ORIGINALS.items():
        monkeypatch.setattr(Recovery, name, original)
    if variant == "patched":
        faust_fixes.install()


def _one_patch(name: str) -> Any:
    """A fixture running its test with every patch installed, then with only patch `name`
    replaced by Faust's own method (the strict xfail): the test must fail without it."""

    @pytest.fixture(params=["patched", STOCK])
    def fixture(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
        _use(monkeypatch, "patched")
        if request.param == "stock":
            monkeypatch.setattr(Consumer, name, faust_fixes._ORIGINALS[name])
        return str(request.param)

    return fixture


ack_patch = _one_patch("ack")
new_offset_patch = _one_patch("_new_offset")
wait_first_patch = _one_patch("wait_first")
getmany_patch = _one_patch("getmany")


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, "patched")


def _message(offset: int, generation_id: int = 0) -> Message:
    return Message(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None, generation_id=generation_id)


def _committable(consumer: Consumer) -> dict[TP, int]:
    """What the next `Consumer.commit` would commit."""
    return consumer._filter_committable_offsets({TP0})  # type: ignore[attr-defined]


# --- version check ----------------------------------------------------------------------------


def test_the_tested_versions_are_the_pinned_and_installed_ones() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {re.split(r"[\[=]", d)[0]: d.rsplit("==", 1)[-1] for d in deps if "==" in d}
    for package, version in faust_fixes.TESTED_VERSIONS.items():
        assert pins[package] == version
    faust_fixes.check_versions()  # the installed ones: no error


@pytest.mark.parametrize(
    ("package", "found", "shown"),
    [
        ("faust-streaming", "0.15.4", "0.15.4"),
        ("faust-streaming", "0.11.0", "0.11.0"),
        ("aiokafka", "0.13.0", "0.13.0"),
        ("aiokafka", None, "(not installed)"),
        ("mode-streaming", "0.8.0", "0.8.0"),
    ],
)
def test_an_unknown_version_is_refused_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch, package: str, found: str | None, shown: str
) -> None:
    versions: dict[str, str | None] = {**faust_fixes.TESTED_VERSIONS, package: found}
    monkeypatch.setattr(faust_fixes, "_installed_version", versions.__getitem__)
    with pytest.raises(RuntimeError) as err:
        faust_fixes.check_versions()
    text = str(err.value)
    expected = faust_fixes.TESTED_VERSIONS[package]
    assert f"{package} {shown} found" in text
    assert f"{package}=={expected}" in text
    assert "Re-verify each patch" in text and "bench/README.md" in text


def test_install_checks_the_versions_before_patching(monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, "stock")
    monkeypatch.setattr(faust_fixes, "_installed_version", lambda package: "9.9.9")
    with pytest.raises(RuntimeError, match="9.9.9"):
        faust_fixes.install()
    for name, original in faust_fixes._ORIGINALS.items():
        assert getattr(Consumer, name) is original
    for name, original in faust_fixes._RECOVERY_ORIGINALS.items():
        assert getattr(Recovery, name) is original


def test_install_is_idempotent_and_the_originals_are_fausts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _use(monkeypatch, "patched")
    faust_fixes.install()
    for name, replacement in faust_fixes.PATCHES.items():
        assert getattr(Consumer, name) is replacement
    for name, replacement in faust_fixes.RECOVERY_PATCHES.items():
        assert getattr(Recovery, name) is replacement
    assert faust_fixes._RECOVERY_ORIGINALS["_resume_streams"].__qualname__ == (
        "Recovery._resume_streams"
    )
    assert faust_fixes._ORIGINALS["ack"].__qualname__ == "Consumer.ack"
    assert faust_fixes._ORIGINALS["_new_offset"].__qualname__ == "Consumer._new_offset"
    assert faust_fixes._ORIGINALS["wait_first"].__qualname__ == "Service.wait_first"


# --- patch 1: the ack guard (_ack_unless_stale) -----------------------------------------------


def test_a_message_of_an_old_generation_does_not_become_committable(
    ack_patch: str, app: faust.App
) -> None:
    consumer = _consumer(app)
    consumer._committed_offset[TP0] = 5  # type: ignore[attr-defined]
    app.consumer_generation_id = 2  # a rebalance happened since the message was fetched
    message = _message(5, generation_id=1)
    consumer.track_message(message)
    consumer.ack(message)
    assert message not in consumer.unacked  # a rebalance does not wait for it
    assert _committable(consumer) == {}  # the seek to offset 5 delivers it again


def test_a_message_acked_while_flow_is_suspended_does_not_become_committable(
    ack_patch: str, app: faust.App
) -> None:
    consumer = _consumer(app)
    consumer._committed_offset[TP0] = 5  # type: ignore[attr-defined]
    message = _message(5)
    consumer.track_message(message)
    app.flow_control.suspend()  # a rebalance started
    consumer.ack(message)
    assert message not in consumer.unacked
    assert _committable(consumer) == {}


@pytest.mark.parametrize("why", ["old generation", "flow suspended"])
def test_a_dropped_stale_message_wakes_a_rebalance_waiting_for_acks(
    patched: None, app: faust.App, why: str
) -> None:
    async def scenario(consumer: Consumer) -> None:
        message = _message(5, generation_id=0)
        consumer.track_message(message)
        if why == "old generation":
            app.consumer_generation_id = 1
        else:
            app.flow_control.suspend()
        # what Consumer._wait_for_ack arms while wait_empty waits for the unacked set to drain
        waiting = asyncio.get_running_loop().create_future()
        consumer._waiting_for_ack = waiting  # type: ignore[attr-defined]
        consumer.ack(message)
        assert waiting.done()  # woken now, not after its one-second poll
        assert not consumer.unacked

    _run(scenario, app)


def test_a_current_message_is_acked_as_faust_does(patched: None, app: faust.App) -> None:
    consumer = _consumer(app)
    consumer._committed_offset[TP0] = 5  # type: ignore[attr-defined]
    message = _message(5)
    consumer.track_message(message)
    assert consumer.ack(message) is True
    assert consumer.ack(message) is False  # once
    assert message not in consumer.unacked
    assert _committable(consumer) == {TP0: 6}


# --- patch 2: no commit across an unacked head (_new_offset_without_gaps) ---------------------


@pytest.mark.parametrize("committed", [5, 0], ids=["committed-5", "committed-0"])
def test_the_commit_does_not_move_past_a_message_never_acked(
    new_offset_patch: str, app: faust.App, committed: int
) -> None:
    """`committed` is the next offset to read: acking committed+1 and committed+2 but never
    `committed` itself must commit nothing (stock Faust commits committed+3: it tolerates a
    one-message gap, and any gap while the committed offset is 0)."""
    consumer = _consumer(app)
    consumer._committed_offset[TP0] = committed  # type: ignore[attr-defined]
    for offset in (committed + 1, committed + 2):
        message = _message(offset)
        consumer.track_message(message)
        consumer.ack(message)
    assert _committable(consumer) == {}


def test_once_the_head_is_acked_the_whole_run_commits(patched: None, app: faust.App) -> None:
    consumer = _consumer(app)
    consumer._committed_offset[TP0] = 5  # type: ignore[attr-defined]
    for offset in (6, 7, 5, 9):
        message = _message(offset)
        consumer.track_message(message)
        consumer.ack(message)
    assert _committable(consumer) == {TP0: 8}  # 8 was never acked: 9 waits


@pytest.mark.parametrize(
    ("committed", "acked", "gaps", "expected"),
    [
        (None, [3, 4], IntervalTree(), 5),  # nothing committed yet: Faust's own answer
        (2, [3, 4], IntervalTree([Interval(2, 3)]), 5),  # a compaction gap fills the head
        (1, [1, 2, 4], IntervalTree(), 3),
        (1, [], IntervalTree(), None),
    ],
)
def test_faust_s_own_computation_is_kept_otherwise(
    patched: None,
    app: faust.App,
    committed: int | None,
    acked: list[int],
    gaps: IntervalTree,
    expected: int | None,
) -> None:
    consumer = _consumer(app)
    consumer._committed_offset[TP0] = committed  # type: ignore[attr-defined]
    consumer._acked[TP0] = list(acked)  # type: ignore[attr-defined]
    consumer._acked_index[TP0] = set(acked)  # type: ignore[attr-defined]
    consumer._gap[TP0] = gaps  # type: ignore[attr-defined]
    assert consumer._new_offset(TP0) == expected  # type: ignore[attr-defined]


# --- patches 1 and 2 together, through Faust's own stream iterators ----------------------------


def _xfail_without(patch: str) -> Any:
    return pytest.mark.xfail(strict=True, reason=f"without {patch} the skipped input is lost")


@pytest.mark.parametrize(
    ("iterator", "without"),
    [
        ("compiled", None),
        ("python", None),
        pytest.param("compiled", "_new_offset", marks=_xfail_without("_new_offset")),
        pytest.param("python", "_new_offset", marks=_xfail_without("_new_offset")),
        pytest.param("python", "ack", marks=_xfail_without("ack")),
        ("compiled", "ack"),  # the compiled iterator never reaches Consumer.ack
    ],
)
def test_a_message_skipped_at_a_rebalance_is_never_committed_over(
    monkeypatch: pytest.MonkeyPatch, app: faust.App, iterator: str, without: str | None
) -> None:
    """The loss as it happened: the stream skips a message of the previous generation, the
    next ones are processed and acked, and the commit must stay at the skipped one. Faust
    streams through a compiled iterator when its extension imports (the pinned wheel), else a
    pure-Python one; they ack differently, so both are run."""
    _use(monkeypatch, "patched")
    if without is not None:
        monkeypatch.setattr(Consumer, without, faust_fixes._ORIGINALS[without])
    if iterator == "python":
        monkeypatch.setattr(faust.streams, "_CStreamIterator", None)
    elif faust.streams._CStreamIterator is None:  # type: ignore[attr-defined]
        pytest.skip("Faust's compiled stream iterator is not importable here")

    async def main() -> dict[TP, int]:
        app.flow_control.resume()
        app.topics.acks_enabled_for = lambda topic: True  # type: ignore[method-assign]
        app.consumer_generation_id = 1
        consumer = cast(Consumer, app.consumer)
        consumer._committed_offset[TP0] = 5  # type: ignore[attr-defined]
        channel = app.channel()
        stream = channel.stream()  # before the puts: the stream reads its own clone's queue
        for offset, generation in ((5, 0), (6, 1), (7, 1), (8, 1)):
            message = ConsumerMessage(
                TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None, generation_id=generation
            )
            message.incref()  # what the conductor does per subscribed stream
            await channel.put(faust.Event(app, b"k", b"v", None, message))
        processed = []
        async for event in stream.events():
            if event.message.offset == 8:
                break
            processed.append(event.message.offset)
        assert processed == [6, 7]  # 5 was skipped by Faust's generation check
        return _committable(consumer)

    assert asyncio.run(main()) == {}  # not {TP0: 8}: 5 is fetched again after the seek


# --- patch 3: eager delivery (_wait_first_eager) ----------------------------------------------


def _run(scenario: Callable[[Consumer], Any], app: faust.App) -> Any:
    """Run a scenario on a consumer built inside the loop (its events bind to it)."""

    async def main() -> Any:
        return await scenario(_consumer(app))

    return asyncio.run(main())


def test_a_delivery_that_does_not_suspend_creates_no_task(
    wait_first_patch: str, app: faust.App
) -> None:
    async def scenario(consumer: Consumer) -> None:
        ran_in: list[asyncio.Task[Any] | None] = []
        created: list[Any] = []
        ensure_future = asyncio.ensure_future

        def counting(*args: Any, **kwargs: Any) -> Any:
            created.append(args[0])
            return ensure_future(*args, **kwargs)

        async def deliver() -> str:
            ran_in.append(asyncio.current_task())
            return "delivered"

        d, s = deliver(), consumer.suspend_flow.wait()
        asyncio.ensure_future = counting  # type: ignore[assignment]
        try:
            res = await consumer.wait_first(d, s)
        finally:
            asyncio.ensure_future = ensure_future
        assert res == WaitResults([d], ["delivered"], False)
        assert ran_in == [asyncio.current_task()]  # run synchronously, in the caller's task
        assert created == []
        assert inspect.getcoroutinestate(s) == inspect.CORO_CLOSED  # not left un-awaited

    _run(scenario, app)


async def _deliver_suspending(consumer: Consumer, wait_first: Any, outcome: str) -> Any:
    """A delivery that blocks (a full stream buffer): `outcome` decides whether it completes
    or a flow suspension (a rebalance) wins. Returns the winners, the results, whether stopped,
    and the delivery coroutine's state afterwards."""
    consumer.suspend_flow.clear()  # the previous run may have set it
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()

    async def deliver() -> str:
        await gate
        return "delivered late"

    d, s = deliver(), consumer.suspend_flow.wait()
    task = asyncio.ensure_future(wait_first(consumer, d, s))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    if outcome == "delivered":
        gate.set_result(None)
    elif outcome == "suspended":
        consumer.suspend_flow.set()
    res = await asyncio.wait_for(task, 5)
    for _ in range(5):
        await asyncio.sleep(0)  # let the cancelled loser finish
    winners = ["deliver" if w is d else "suspended" if w is s else repr(w) for w in res.done]
    return winners, res.results, res.stopped, inspect.getcoroutinestate(d)


@pytest.mark.parametrize("outcome", ["delivered", "suspended"])
def test_a_delivery_that_suspends_still_races_a_flow_suspension(
    patched: None, app: faust.App, outcome: str
) -> None:
    async def scenario(consumer: Consumer) -> Any:
        patched = await _deliver_suspending(consumer, Consumer.wait_first, outcome)
        stock = await _deliver_suspending(consumer, faust_fixes._ORIGINALS["wait_first"], outcome)
        return patched, stock

    patched_result, stock_result = _run(scenario, app)
    assert patched_result == stock_result
    if outcome == "delivered":
        assert patched_result == (["deliver"], ["delivered late"], False, inspect.CORO_CLOSED)
    else:  # the delivery is cancelled, as in Faust: the message is fetched again after seeking
        assert patched_result == (["suspended"], [True], False, inspect.CORO_CLOSED)


@pytest.mark.parametrize("state", ["running", "flow suspended", "stopped"])
def test_the_eager_result_equals_faust_s(patched: None, app: faust.App, state: str) -> None:
    async def once(consumer: Consumer, wait_first: Any) -> Any:
        async def deliver() -> int:
            return 42

        d, s = deliver(), consumer.suspend_flow.wait()
        res = await wait_first(consumer, d, s)
        d.close()
        s.close()
        return [("deliver" if w is d else "suspended") for w in res.done], res.results, res.stopped

    async def scenario(consumer: Consumer) -> Any:
        if state == "flow suspended":
            consumer.suspend_flow.set()
        elif state == "stopped":
            consumer._stopped.set()  # type: ignore[attr-defined]
        return await once(consumer, Consumer.wait_first), await once(
            consumer, faust_fixes._ORIGINALS["wait_first"]
        )

    patched_result, stock_result = _run(scenario, app)
    assert patched_result == stock_result


def test_a_delivery_that_raises_raises(patched: None, app: faust.App) -> None:
    async def scenario(consumer: Consumer) -> None:
        async def deliver() -> None:
            raise ValueError("bad message")

        s = consumer.suspend_flow.wait()
        with pytest.raises(ValueError, match="bad message"):
            await consumer.wait_first(deliver(), s)
        assert inspect.getcoroutinestate(s) == inspect.CORO_CLOSED

    _run(scenario, app)


# --- patch 4: records a seek made stale (_perform_seek_recorded, _getmany_after_seeks) --------


class _Partition(StubConsumer):  # type: ignore[misc, valid-type]
    """One partition (offsets 0..10) behind Faust's fetch code: `_getmany` answers from the
    current position and moves it past what it returned (as aiokafka does); a seek moves it.
    The committed offset is 5. `gate`, when set, holds the next fetch's answer (computed when
    the fetch starts) until it is released: a fetch in flight."""

    END = 11
    COMMITTED = 5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.position = 8
        self.gate: asyncio.Event | None = None
        self.fetched = asyncio.Event()

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        records = list(range(self.position, self.END))
        self.position = self.END
        self.fetched.set()
        if self.gate is not None:
            gate, self.gate = self.gate, None
            await gate.wait()
        return {TP0: records} if records else {}

    def _to_message(self, tp: TP, record: Any) -> Message:
        return _message(record)

    async def seek_to_committed(self) -> dict[TP, int]:
        self.position = self.COMMITTED
        return {TP0: self.COMMITTED}

    async def _seek(self, tp: TP, offset: int) -> None:
        self.position = offset


async def _drain(consumer: Consumer, deliver: Callable[[int], Any], fetches: int) -> list[int]:
    """What Faust's fetcher (`Consumer._drain_messages`) does with the fetched records: deliver a
    record unless its offset is below the partition's read offset, then record it as read.
    Returns the delivered offsets."""
    delivered: list[int] = []
    for _ in range(fetches):
        async for tp, message in consumer.getmany(timeout=1.0):
            r_offset = consumer._read_offset[tp]  # type: ignore[attr-defined]
            if r_offset is None or message.offset >= r_offset:
                await deliver(message.offset)
                delivered.append(message.offset)
                consumer._read_offset[tp] = message.offset  # type: ignore[attr-defined]
    return delivered


def _partition(app: faust.App) -> _Partition:
    consumer = _Partition(
        app.transport,
        callback=_stub,
        on_partitions_revoked=_stub,
        on_partitions_assigned=_stub,
    )
    app.topics.acks_enabled_for = lambda topic: True  # type: ignore[method-assign]
    consumer._active_partitions = {TP0}  # type: ignore[attr-defined]
    return consumer


def test_records_fetched_before_a_seek_are_not_delivered_over_it(
    getmany_patch: str, app: faust.App
) -> None:
    """A fetch in flight while the partition is sought back to its committed offset (a
    rebalance's recovery) answers from the old position: those records must not be delivered
    and recorded as read, or the re-fetched records from the committed offset are dropped."""

    async def main() -> list[int]:
        consumer = _partition(app)
        held = consumer.gate = asyncio.Event()

        async def deliver(offset: int) -> None:
            return None

        drain = asyncio.ensure_future(_drain(consumer, deliver, fetches=2))
        await asyncio.wait_for(consumer.fetched.wait(), 5)  # the fetch is in flight ...
        await consumer.perform_seek()  # ... when the partition is sought
        held.set()
        return await asyncio.wait_for(drain, 5)

    delivered = asyncio.run(main())
    assert delivered == [5, 6, 7, 8, 9, 10]


def test_a_delivery_under_way_during_a_seek_does_not_move_the_read_offset_past_it(
    getmany_patch: str, app: faust.App
) -> None:
    """A record delivered while the seek runs (its stream was suspended; it completes after
    the recovery): the fetcher records it as read after the seek reset the read offset."""

    async def main() -> list[int]:
        consumer = _partition(app)

        seeks: list[int] = []

        async def deliver(offset: int) -> None:
            if not seeks:  # the first delivery is under way when the seek runs
                seeks.append(offset)
                await consumer.perform_seek()

        return await asyncio.wait_for(_drain(consumer, deliver, fetches=2), 5)

    delivered = asyncio.run(main())
    assert delivered[1:] == [5, 6, 7, 8, 9, 10]  # the first 8 was delivered before the seek


def test_a_fetch_after_the_seek_is_delivered_as_faust_does(patched: None, app: faust.App) -> None:
    async def main() -> list[int]:
        consumer = _partition(app)
        await consumer.perform_seek()

        async def deliver(offset: int) -> None:
            return None

        return await asyncio.wait_for(_drain(consumer, deliver, fetches=2), 5)

    assert asyncio.run(main()) == [5, 6, 7, 8, 9, 10]


# --- accessors --------------------------------------------------------------------------------


@pytest.fixture(params=["memory://", "rocksdb://"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    app = faust.App("faust-fixes-store", datadir=str(tmp_path), store=request.param)
    table = app.Table("stock", default=None, partitions=4)
    app.finalize()
    yield table
    if request.param == "rocksdb://":
        table.data._dbs.clear()  # type: ignore[attr-defined]  # close the databases (tmp_path)


@contextmanager
def _event_on(app: faust.App, partition: int) -> Iterator[None]:
    """What an agent sees while it processes a message of `partition` (the RocksDB store
    picks the partition's database from it)."""
    message = Message(TOPIC, partition, 0, 0.0, 0, None, b"k", b"v", None)
    event = faust.Event(app, b"k", b"v", None, message)
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def test_store_get_and_set_local(table: Any) -> None:
    with _event_on(table.app, 2):
        assert faust_fixes.store_get(table, "SKU-1@ST-1") is None
        kb, vb = faust_fixes.store_set_local(table, "SKU-1@ST-1", {"on_hand": 3})
        assert (kb, vb) == (b'"SKU-1@ST-1"', b'{"on_hand":3}')  # the changelog record
        assert faust_fixes.store_get(table, "SKU-1@ST-1") == {"on_hand": 3}
        faust_fixes.store_set_local(table, "SKU-1@ST-1", {"on_hand": 4})
        assert faust_fixes.store_get(table, "SKU-1@ST-1") == {"on_hand": 4}
    assert faust_fixes.store_get(table, "SKU-1@ST-1") == {"on_hand": 4}  # outside an event too
    with _event_on(table.app, 2):
        assert faust_fixes.store_set_local(table, "SKU-1@ST-1", None) == (b'"SKU-1@ST-1"', None)
        assert faust_fixes.store_get(table, "SKU-1@ST-1") is None
        faust_fixes.store_set_local(table, "never-written", None)  # deleting nothing is fine
    assert table.changelog_topic.get_topic_name()  # the caller sends (kb, vb) there


def test_partition_keys(table: Any) -> None:
    for partition, keys in ((2, ["b", "a", "c"]), (1, ["z", "0"])):
        with _event_on(table.app, partition):
            for key in keys:
                faust_fixes.store_set_local(table, key, 1)
    if table.data.url.scheme == "rocksdb":
        changelog = table.changelog_topic.get_topic_name()
        table.data.set_persisted_offset(TP(changelog, 2), 7)  # Faust's own key in partition 2
        assert list(faust_fixes.partition_keys(table, 2)) == ["a", "b", "c"]
        assert list(faust_fixes.partition_keys(table, 1)) == ["0", "z"]
        assert list(faust_fixes.partition_keys(table, 3)) == []
    else:  # no partitions in memory: every key, sorted
        assert list(faust_fixes.partition_keys(table, 2)) == ["0", "a", "b", "c", "z"]


def test_scan_items_reads_every_key_and_lets_the_event_loop_run(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every key of the active partitions with its value (not Faust's offset key), and other
    tasks run during the scan, which may write meanwhile."""
    changelog = table.changelog_topic.get_topic_name()
    written = {}
    for i in range(600):
        partition = i % 3
        with _event_on(table.app, partition):
            faust_fixes.store_set_local(table, f"k{i:03d}", {"i": i}, partition)
        written[f"k{i:03d}"] = {"i": i}
    rocksdb = table.data.url.scheme == "rocksdb"
    if rocksdb:
        table.data.set_persisted_offset(TP(changelog, 1), 7)
        actives = {TP(changelog, p) for p in range(3)}
        monkeypatch.setattr(table.app.assignor, "assigned_actives", lambda: actives)

    async def main() -> tuple[dict[str, Any], list[int]]:
        ticks = {"n": 0}
        seen_at: list[int] = []

        async def ticker() -> None:
            while True:
                ticks["n"] += 1
                await asyncio.sleep(0)

        tick = asyncio.ensure_future(ticker())
        got: dict[str, Any] = {}
        async for key, value in faust_fixes.scan_items(table, every=100):
            got[key] = value
            seen_at.append(ticks["n"])
            if len(got) == 50:  # a write while the scan is under way
                faust_fixes.store_set_local(table, "new", {"i": -1}, 0)
        tick.cancel()
        return got, seen_at

    got, seen_at = asyncio.run(main())
    for key, value in written.items():
        assert got[key] == value
    assert set(got) - set(written) <= {"new"}
    assert len(set(seen_at)) >= 6  # the loop ran at least every 100 items


def test_committed_offset(app: faust.App) -> None:
    tp = TP(TOPIC, 3)
    assert faust_fixes.committed_offset(app, tp) is None
    assert tp not in app.consumer._committed_offset  # type: ignore[attr-defined]  # no entry made
    app.consumer._committed_offset[tp] = 42  # type: ignore[attr-defined]  # what a commit records
    assert faust_fixes.committed_offset(app, tp) == 42


def test_tables_recovered(app: faust.App) -> None:
    assert faust_fixes.tables_recovered(app) is False
    app.tables.recovery.completed.set()  # type: ignore[attr-defined]  # what recovery does at its end
    assert faust_fixes.tables_recovered(app) is True


# --- one seam: no private Faust/aiokafka attribute outside faust_fixes ------------------------

SCANNED = ("streams", "agents", "domain", "sim", "dashboard", "bench")
SEAM = ROOT / "streams" / "faust_fixes.py"
#: Private attributes of Faust stores, consumers, table managers and aiokafka clients that the
#: code base has reached (or would); `self.`/`cls.` receivers are a class's own attributes.
PRIVATE = re.compile(
    r"(?<!\bself)(?<!\bcls)\.("
    r"_committed_offset\b|_client\b|_db_for_partition\b|_dbs\b|_key_index\b"
    r"|_encode_key\b|_encode_value\b|_decode_key\b|_decode_value\b"
    r"|_get\(|_set\(|_del\(|_iterkeys\b"
    r"|_unacked_messages\b|_acked\b|_acked_index\b|_gap\b|_new_offset\b"
    r"|recovery\.completed\b"
    r")"
)


def _private_accesses(path: Path) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line.split("#", 1)[0])
    ]


def test_the_scan_sees_private_accesses() -> None:
    """The pattern is not vacuous: it finds what faust_fixes itself reaches."""
    found = "\n".join(_private_accesses(SEAM))
    for attr in ("_encode_key", "_db_for_partition", "_committed_offset", "recovery.completed"):
        assert attr in found
    assert not PRIVATE.search("self._set(running=True)")  # a class's own private method
    assert PRIVATE.search("await consumer._client.force_metadata_update()")


def test_private_faust_attributes_are_reached_only_in_faust_fixes() -> None:
    offenders = [
        hit
        for top in SCANNED
        for path in sorted((ROOT / top).rglob("*.py"))
        if path != SEAM and ".venv" not in path.parts
        for hit in _private_accesses(path)
    ]
    assert offenders == [], "use the accessors in streams/faust_fixes.py:\n" + "\n".join(offenders)


def test_store_access_with_an_explicit_partition_ignores_the_current_event(table: Any) -> None:
    """A batch of inputs writes each key in its own input's partition: the current event is
    only the last of the batch (Faust's own `_set` would write there)."""
    with _event_on(table.app, 3):  # the batch's last event is on partition 3
        faust_fixes.store_set_local(table, "A@ST-1", {"on_hand": 1}, partition=1)
        assert faust_fixes.store_get(table, "A@ST-1", partition=1) == {"on_hand": 1}
        if table.data.url.scheme == "rocksdb":
            assert faust_fixes.store_get(table, "A@ST-1", partition=3) is None
        assert list(faust_fixes.partition_keys(table, 1)) == ["A@ST-1"]
        faust_fixes.store_set_local(table, "A@ST-1", None, partition=1)
        assert faust_fixes.store_get(table, "A@ST-1", partition=1) is None


def test_a_write_batch_writes_in_order_in_its_partition_and_returns_the_records(
    table: Any,
) -> None:
    """Several keys of one partition written at once (one RocksDB write batch): the same
    stored values and changelog records as one `store_set_local` each, in order (the last
    write of a key wins, a delete is a tombstone)."""
    faust_fixes.store_set_local(table, "GONE@ST-1", {"on_hand": 9}, partition=1)
    items: list[tuple[str, Any]] = [
        ("A@ST-1", {"on_hand": 1}),
        ("B@ST-1", {"on_hand": 2}),
        ("A@ST-1", {"on_hand": 3}),
        ("GONE@ST-1", None),
    ]
    with _event_on(table.app, 3):  # the current event's partition is not where it writes
        records = faust_fixes.store_write_local(table, items, partition=1)
    assert records == [
        (b'"A@ST-1"', b'{"on_hand":1}'),
        (b'"B@ST-1"', b'{"on_hand":2}'),
        (b'"A@ST-1"', b'{"on_hand":3}'),
        (b'"GONE@ST-1"', None),
    ]
    assert records == [
        faust_fixes.store_set_local(table, key, value, partition=2) for key, value in items
    ]
    assert faust_fixes.store_get(table, "A@ST-1", partition=1) == {"on_hand": 3}
    assert faust_fixes.store_get(table, "B@ST-1", partition=1) == {"on_hand": 2}
    assert faust_fixes.store_get(table, "GONE@ST-1", partition=1) is None
    if table.data.url.scheme == "rocksdb":
        assert faust_fixes.store_get(table, "B@ST-1", partition=3) is None
        assert list(faust_fixes.partition_keys(table, 1)) == ["A@ST-1", "B@ST-1"]
        # a read that names no partition (a timer's) finds the keys in their partitions
        assert faust_fixes.store_get(table, "B@ST-1") == {"on_hand": 2}
        assert faust_fixes.store_get(table, "GONE@ST-1") is None


def _queued_stream(app: faust.App, n: int, generation_id: int = 0) -> Any:
    """A started stream of a raw topic's channel holding `n` events, as the conductor leaves
    them (the consumer's generation is `generation_id`)."""
    topic = app.topic(TOPIC, key_type=bytes, value_type=bytes, value_serializer="raw")
    channel = topic.clone(is_iterator=True)
    stream = app.stream(channel)
    for offset in range(n):
        message = ConsumerMessage(
            TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None, generation_id=generation_id
        )
        channel.queue.put_nowait(faust.Event(app, b"k", b"v", None, message))
    return stream


def test_take_queued_takes_what_is_queued_tracked_and_counted(app: faust.App) -> None:
    consumer = app.consumer = _consumer(app)
    app.topics._acking_topics.add(TOPIC)  # type: ignore[attr-defined]
    stream = _queued_stream(app, 5, generation_id=app.consumer_generation_id)
    taken = faust_fixes.take_queued(stream, 3)
    assert [e.message.offset for e in taken] == [0, 1, 2]
    assert all(e.message.tracked for e in taken)
    assert {m.offset for m in consumer._unacked_messages} == {0, 1, 2}  # type: ignore[attr-defined]
    assert stream.events_total == 3
    assert [e.message.offset for e in faust_fixes.take_queued(stream, 10)] == [3, 4]
    assert faust_fixes.take_queued(stream, 10) == []
    assert stream.channel.empty()


def test_take_queued_drops_a_stale_event_as_the_compiled_iterator_and_stops(
    app: faust.App,
) -> None:
    consumer = app.consumer = _consumer(app)
    app.topics._acking_topics.add(TOPIC)  # type: ignore[attr-defined]
    stream = _queued_stream(app, 3, generation_id=app.consumer_generation_id - 1)
    assert faust_fixes.take_queued(stream, 10) == []
    assert stream.channel.queue.qsize() == 2  # the rest is left to the iterator
    assert not consumer._unacked_messages  # type: ignore[attr-defined]  # never to be acked
    stream = _queued_stream(app, 2, generation_id=app.consumer_generation_id)
    app.flow_control.suspend()
    assert faust_fixes.take_queued(stream, 10) == []
    app.flow_control.resume()


def test_take_queued_leaves_a_queued_error_to_the_iterator(app: faust.App) -> None:
    stream = _queued_stream(app, 2, generation_id=app.consumer_generation_id)
    stream.channel.queue._throw(RuntimeError("boom"))
    assert faust_fixes.take_queued(stream, 10) == []
    assert stream.channel.queue._errors  # type: ignore[attr-defined]


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_an_expanding_table_writes_the_local_keys_of_what_recovery_applies(
    store: str, tmp_path: Path
) -> None:
    app = faust.App("faust-fixes-expand", datadir=str(tmp_path), store=store)

    def expand(key: str, value: Any) -> list[tuple[str, Any]]:
        return [(f"{key}/{v}", "local") for v in value] if key.startswith("chunk") else []

    table = faust_fixes.expanding_table(app, "seen", 4, expand)
    app.finalize()
    changelog = table.changelog_topic.get_topic_name()
    events = []
    for offset, (key, value) in enumerate([("chunk1", ["a", "b"]), ("plain", 1), ("gone", None)]):
        raw_key, raw_value = faust_fixes.store_set_local(table, key, value, 2)
        message = Message(changelog, 2, offset, 0.0, 0, None, raw_key, raw_value, None)
        events.append(faust.Event(app, key, value, None, message))
    for key in ("chunk1", "plain"):
        faust_fixes.store_set_local(table, key, None, 2)  # a fresh store: recovery rebuilds it
    table.apply_changelog_batch(events)
    assert faust_fixes.store_get(table, "chunk1", 2) == ["a", "b"]  # Faust's own apply
    assert faust_fixes.store_get(table, "plain", 2) == 1
    assert faust_fixes.store_get(table, "chunk1/a", 2) == "local"  # and the expansion
    assert faust_fixes.store_get(table, "chunk1/b", 2) == "local"
    assert faust_fixes.store_get(table, "plain/1", 2) is None
    if store == "rocksdb://":
        assert table.data.persisted_offset(TP(changelog, 2)) == 2
        table.data._dbs.clear()  # type: ignore[attr-defined]  # close the databases (tmp_path)


def test_send_now_ends_the_linger_of_what_was_produced_and_wakes_the_sender() -> None:
    """A batch of an agent ends: what it produced must not wait out the producer's linger, and
    the agent's next send must not wait for the sender to take the batch."""
    from types import SimpleNamespace

    from aiokafka.producer.message_accumulator import MessageAccumulator

    async def go() -> None:
        acc = MessageAccumulator(None, 16384, 0, 30.0, linger_ms=5000)
        tp = TP("t", 0)
        await acc.add_message(tp, b"k", b"v", timeout=1.0)
        batch = acc._batches[tp][0]
        assert batch.remaining_linger() is not None  # it would linger 5 s
        # the sender looked, found it lingering, and waits on a new future (or the linger)
        acc._waiter_future = asyncio.get_running_loop().create_future()
        app = SimpleNamespace(
            producer=SimpleNamespace(_producer=SimpleNamespace(_message_accumulator=acc))
        )
        faust_fixes.send_now(app)  # type: ignore[arg-type]
        assert batch.remaining_linger() is None  # ready for the sender now
        assert acc._waiter_future.done()  # and the sender is woken
        # the next message joins the same batch at once (no wait for the sender to take it)
        await asyncio.wait_for(acc.add_message(tp, b"k2", b"v2", timeout=1.0), 0.1)
        assert list(acc._batches[tp]) == [batch] and batch.record_count == 2
        faust_fixes.send_now(app)  # type: ignore[arg-type]  # again: nothing changes
        assert batch.remaining_linger() is None

    asyncio.run(go())


def test_send_now_leaves_a_producer_not_started_alone() -> None:
    from types import SimpleNamespace

    faust_fixes.send_now(SimpleNamespace(producer=SimpleNamespace()))  # type: ignore[arg-type]


def _producer_app(acc: Any) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(
        producer=SimpleNamespace(_producer=SimpleNamespace(_message_accumulator=acc))
    )


def test_append_record_joins_the_partitions_open_batch_at_once() -> None:
    """A record whose partition has an open batch is appended to it without awaiting anything,
    after what `send` put there (the partition's order), with no future of its own: the
    batch's future and its offset in the batch give its own offset; the watch is called once
    per batch, however many records of ours it holds."""
    from aiokafka.producer.message_accumulator import MessageAccumulator

    async def go() -> None:
        acc = MessageAccumulator(None, 16384, 0, 30.0, linger_ms=5000)
        tp = TP("t", 1)
        first = await acc.add_message(tp, b"k0", b"v0", timeout=1.0)
        app = _producer_app(acc)
        watched: list[asyncio.Future[Any]] = []
        one = faust_fixes.append_record(app, "t", 1, b"k1", b"v1", watched.append)
        two = faust_fixes.append_record(app, "t", 1, b"k2", b"v2", watched.append)
        assert one is not None and two is not None
        (batch,) = acc._batches[tp]
        assert batch.record_count == 3 and len(batch._msg_futures) == 1  # only send's
        assert one[0] is two[0] is batch.future and not batch.future.done()
        assert faust_fixes.append_record(app, "t", 0, b"k", b"v", watched.append) is None
        assert faust_fixes.append_record(app, "u", 1, b"k", b"v", watched.append) is None
        batch.done(base_offset=40)  # the broker's answer
        await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
        assert first.result().offset == 40
        assert [d[0].result().offset + d[1] for d in (one, two)] == [41, 42]
        assert watched == [batch.future]

    asyncio.run(go())


def test_a_failed_batch_fails_the_records_appended_to_it() -> None:
    from aiokafka.errors import KafkaError
    from aiokafka.producer.message_accumulator import MessageAccumulator

    async def go() -> None:
        acc = MessageAccumulator(None, 16384, 0, 30.0, linger_ms=5000)
        tp = TP("t", 0)
        await acc.add_message(tp, b"k0", b"v0", timeout=1.0)
        watched: list[asyncio.Future[Any]] = []
        delivery = faust_fixes.append_record(_producer_app(acc), "t", 0, b"k", b"v", watched.append)
        assert delivery is not None
        acc._batches[tp][0].failure(KafkaError("gave up"))
        await asyncio.sleep(0)
        assert watched == [delivery[0]] and isinstance(delivery[0].exception(), KafkaError)

    asyncio.run(go())


def test_append_record_leaves_a_full_batch_closed_or_failed_producer_to_send() -> None:
    from aiokafka.errors import KafkaError
    from aiokafka.producer.message_accumulator import MessageAccumulator

    def watch(fut: Any) -> None:
        pass

    async def go() -> None:
        acc = MessageAccumulator(None, 100, 0, 30.0, linger_ms=5000)
        tp = TP("t", 0)
        await acc.add_message(tp, b"k", b"v" * 40, timeout=1.0)
        app = _producer_app(acc)
        assert faust_fixes.append_record(app, "t", 0, b"k", b"v" * 80, watch) is None  # no room
        assert acc._batches[tp][0].record_count == 1
        acc._exception = KafkaError("failed")
        assert faust_fixes.append_record(app, "t", 0, b"k", b"v", watch) is None
        acc._exception = None
        acc._closed = True
        assert faust_fixes.append_record(app, "t", 0, b"k", b"v", watch) is None
        assert acc._batches[tp][0].record_count == 1

    asyncio.run(go())
    from types import SimpleNamespace

    not_started = SimpleNamespace(producer=SimpleNamespace())
    assert faust_fixes.append_record(not_started, "t", 0, b"k", b"v", watch) is None  # type: ignore[arg-type]


# --- the stores' codecs, called directly ------------------------------------------------------

_KEYS = ["SKU-1@ST-1", "é@ü-ß", 'a"b\\c\nd', "", "2026-12-02/evt-1"]
_VALUES: list[Any] = [
    {"on_hand": 3, "reserved": [["r1", 2]], "positions": {"ps:1": [5, 0]}},
    [["evt-1", 3], ["évt", None]],
    {"f": 1.5, "t": True, "n": None, "s": 'ü\u2028"q"'},
    [],
    {},
]


def test_the_direct_codecs_give_fausts_own_bytes_and_values(table: Any) -> None:
    """Keys and values encode to exactly the bytes Faust's serializer registry gives (what is
    already on disk and on the changelogs), and decode to the same values."""
    store = table.data
    codec = faust_fixes._codec(store)
    assert codec.encode_key is not store._encode_key  # the direct path is in use
    for key in _KEYS:
        assert codec.encode_key(key) == store._encode_key(key)
    for value in _VALUES:
        raw = codec.encode_value(value)
        assert raw == store._encode_value(value)
        assert raw is not None and codec.decode_value(raw) == store._decode_value(raw) == value
    assert faust_fixes._codec(store) is codec  # resolved once per store


def test_what_the_direct_codecs_do_not_cover_goes_through_faust(table: Any) -> None:
    store = table.data
    codec = faust_fixes._codec(store)
    assert codec.encode_value(7) == store._encode_value(7) == b"7"  # not a dict or list
    assert codec.encode_key(b"raw") == store._encode_key(b"raw")  # bytes: as they are
    blessed = b'{"__faust": {"ns": "no.such.Model"}, "x": 1}'
    with pytest.raises(faust.exceptions.ValueDecodeError):  # Faust's own decoding (and error)
        codec.decode_value(blessed)
    with pytest.raises(faust.exceptions.ValueDecodeError):
        codec.decode_value(b"not json")


def test_a_store_with_other_serializers_keeps_its_own_codecs(tmp_path: Path) -> None:
    app = faust.App("faust-fixes-codec", datadir=str(tmp_path), store="memory://")
    table = app.Table("t", default=None, partitions=1, key_type=int, value_type=int)
    app.finalize()
    codec = faust_fixes._codec(table.data)
    assert codec.encode_key == table.data._encode_key
    assert codec.encode_value == table.data._encode_value
    assert codec.decode_value == table.data._decode_value


# --- delivery_state (the stall watchdog's diagnosis) --------------------------------------------


def test_the_delivery_state_tells_a_paused_partition_and_suspended_flow_apart(
    app: faust.App,
) -> None:
    consumer = _consumer(app)
    app._consumer = consumer  # type: ignore[attr-defined]
    other = TP(TOPIC, 1)
    consumer._set_active_tps({TP0, other})  # type: ignore[attr-defined]
    consumer.pause_partitions({other})
    consumer._read_offset[TP0] = 41  # type: ignore[attr-defined]
    state = faust_fixes.delivery_state(app, [TP0, other])
    assert state["flow_control_active"] is True
    assert state["partitions"][f"{TOPIC}:0"] == {
        "active": True,
        "paused": False,
        "buffered": False,
        "read_offset": 41,
    }
    assert state["partitions"][f"{TOPIC}:1"]["paused"] is True
    assert state["partitions"][f"{TOPIC}:1"]["active"] is False
    app.flow_control.suspend()
    assert faust_fixes.delivery_state(app, [TP0])["flow_control_active"] is False


# --- patch 5: the flow is suspended while recovery resumes and seeks the inputs ----------------


@pytest.fixture(params=["patched", STOCK])
def recovery_variant(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    _use(monkeypatch, "patched")
    if request.param == "stock":
        for name, original in faust_fixes._RECOVERY_ORIGINALS.items():
            monkeypatch.setattr(Recovery, name, original)
    return str(request.param)


@pytest.mark.parametrize("method", ["_resume_streams", "on_recovery_completed"])
def test_a_record_fetched_while_recovery_seeks_the_inputs_is_not_cleared(
    recovery_variant: str, app: faust.App, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fetcher hands a record over while the recovery awaits the seek (its input
    partitions already resumed, flow control active since the changelog recovery); the
    resume of flow control that follows clears the streams' queues. The record must still
    reach the stream's queue."""

    async def main() -> int:
        consumer = _consumer(app)  # flow control active, as after the changelog recovery
        app._consumer = consumer  # type: ignore[attr-defined]
        monkeypatch.setattr(consumer, "assignment", lambda: {TP0})

        async def no_fetcher() -> None:
            return None

        monkeypatch.setattr(app._fetcher, "maybe_start", no_fetcher)  # type: ignore[attr-defined]
        queue: FlowControlQueue[str] = FlowControlQueue(
            maxsize=10, flow_control=app.flow_control, clear_on_resume=True
        )

        async def conductor_delivers() -> None:  # Conductor.on_message, reduced
            await app.flow_control.acquire()
            queue.put_nowait("record 35")

        delivery: list[asyncio.Future[None]] = []

        async def seek_while_fetching() -> None:
            delivery.append(asyncio.ensure_future(conductor_delivers()))
            for _ in range(3):
                await asyncio.sleep(0)  # the seek's round trip: the fetcher runs meanwhile

        monkeypatch.setattr(consumer, "perform_seek", seek_while_fetching)
        recovery = app.tables.recovery  # type: ignore[attr-defined]
        await getattr(recovery, method)(generation_id=app.consumer_generation_id)
        await asyncio.wait_for(delivery[0], timeout=5)
        assert app.flow_control.is_active()  # the recovery ended with the flow resumed
        return queue.qsize()

    assert asyncio.run(main()) == 1
