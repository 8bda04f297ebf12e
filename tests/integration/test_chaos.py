"""Chaos: SIGKILL a worker at random moments while thousands of stock events stream in.

Delivery is at-least-once, so every kill makes the restarted worker re-read inputs whose
offsets were not committed yet; the positional idempotency of the stock fold (domain/stock.py)
and the seen-event-id table (agents/ingest.py) must turn that into an exactly-once effect.
The final stock-availability must equal an oracle that applies each event once.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

from tests.integration import probes
from tests.integration.harness import Cluster, WorkerProcess, send, wait_for
from tests.integration.test_stock_table import diff, load_locations, matches, oracle, stock_events


class Streamer:
    """Sends events in small chunks on a background thread, so faults land mid-stream.

    With `holds` (event counts), it stops at each until `release()` is called once more: a
    fault test keeps part of the stream for after something slow (a worker restarting or
    joining), so input is streaming when the fault lands, whatever the speed of the machine.
    """

    def __init__(
        self,
        cluster: Cluster,
        events: list[Any],
        chunk: int = 100,
        pause: float = 0.1,
        holds: tuple[int, ...] = (),
    ) -> None:
        self.cluster, self.events, self.chunk, self.pause = cluster, events, chunk, pause
        self.holds = holds
        self.released = 0
        self._cond = threading.Condition()
        self.sent = 0
        self.done = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def release(self) -> None:
        """Let the stream pass its next hold."""
        with self._cond:
            self.released += 1
            self._cond.notify_all()

    def _held(self, at: int) -> None:
        passed = sum(1 for h in self.holds if h <= at)
        with self._cond:
            if not self._cond.wait_for(lambda: self.released >= passed, timeout=300):
                raise TimeoutError(f"streamer held at {at} events: nobody released it")

    def _run(self) -> None:
        try:
            for i in range(0, len(self.events), self.chunk):
                self._held(i)
                n = send(self.cluster, self.events[i : i + self.chunk])
                with self._cond:
                    self.sent += n
                    self._cond.notify_all()
                time.sleep(self.pause)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc
        finally:
            with self._cond:
                self.done = True
                self._cond.notify_all()

    def next_chunk(self, timeout: float = 60.0) -> None:
        """Return as soon as the broker acknowledged one more chunk: a fault injected right
        then lands with that chunk surely unfolded or uncommitted (a worker commits once a
        second, not within the milliseconds since), which is what a fault test needs."""
        with self._cond:
            seen = self.sent
            self._cond.wait_for(lambda: self.sent > seen or self.done, timeout)
            if self.sent == seen:
                held = "done" if self.done else f"held or stuck at {seen} events"
                raise AssertionError(f"no more input to land a fault in: the streamer is {held}")

    def start(self) -> Streamer:
        self._thread.start()
        return self

    def join(self, timeout: float = 300.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "producer did not finish"
        if self.error is not None:
            raise self.error
        assert self.sent == len(self.events)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


def assert_matches(cluster: Cluster, expected: dict[str, int], timeout: float, what: str) -> None:
    try:
        wait_for(lambda: matches(cluster, expected), timeout=timeout, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: mismatch {diff(cluster, expected)}") from None


def sigkill_mid_stream(
    worker: WorkerProcess,
    streamer: Streamer,
    inputs: tuple[str, ...],
    rnd: random.Random,
    count: int = 3,
) -> list[probes.Kill]:
    """SIGKILL and restart the worker `count` times while the streamer runs; assert that each
    kill hit the running worker process with input in flight and that a new process took over.

    The streamer holds a portion of its events for each restart (its `holds`), released once
    the restarted worker has committed input of its own (it is past start-up and folding), so
    every kill has a stream to land in on a fast machine too. Each kill comes a random delay
    later, right after the broker acknowledged a chunk of input. What the kill hit is then
    measured, not assumed (probes.sigkill): a kill after everything was committed, or one that
    found no worker process, fails here instead of passing as a chaos test that tested nothing.
    """
    kills: list[probes.Kill] = []
    pids = [probes.wait_worker_pid(worker)]
    with probes.OffsetReader(worker.cluster) as offsets:
        for n in range(1, count + 1):
            since = kills[-1].committed if kills else {}
            wait_for(
                lambda since=since: offsets.progressed(inputs, since),
                timeout=90,
                interval=0.2,
                what=f"kill {n}: the worker to commit input of its own",
            )
            if kills:
                streamer.release()  # the next portion streams into the restarted worker
            time.sleep(rnd.uniform(0.0, 1.0))  # picks the moment of the fault; waits for nothing
            streamer.next_chunk()
            kill = probes.sigkill(worker, inputs, offsets)
            kills.append(kill)
            assert kill.pid == pids[-1], (
                f"kill {n} hit {kill.pid}, the worker ran as {pids[-1]}: it restarted itself "
                f"{probes.restart_reasons(worker)}"
            )
            assert kill.in_flight, (
                f"kill {n}: nothing in flight (ends {kill.ends}, committed {kill.committed})"
            )
            worker.start()
            pids.append(probes.wait_worker_pid(worker))
            assert pids[-1] != kill.pid, f"kill {n}: the worker still runs as {kill.pid}"
            in_flight = sum(kill.in_flight.values())
            print(f"kill {n}: pid {kill.pid} -> {pids[-1]}, {in_flight} input messages in flight")
    streamer.release()  # the last portion
    assert not streamer.error, streamer.error
    assert len(set(pids)) == count + 1, f"a worker pid came back: {pids}"
    return kills


def test_three_sigkills_at_random_moments_while_events_stream_in_leave_stock_exact(
    cluster: Cluster, tmp_path: Path
) -> None:
    load_locations(cluster, tmp_path)
    worker = cluster.worker().start()
    events = stock_events(3000, seed=81)
    # a few hundred re-sent events (same event_id, same topic and key): must change nothing
    rnd = random.Random(81)
    events += rnd.sample(events[:2000], 300)
    quarter = len(events) // 4  # a portion per incarnation: ~17 chunks, several seconds
    streamer = Streamer(
        cluster, events, chunk=50, pause=0.15, holds=(quarter, 2 * quarter, 3 * quarter)
    ).start()
    sigkill_mid_stream(worker, streamer, ("pos_sales", "supplier_feeds"), rnd)
    streamer.join()
    assert_matches(cluster, oracle(events), 180, "stock after three SIGKILLs")
    assert worker.healthy()
