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

from tests.integration.harness import Cluster, send, wait_for
from tests.integration.test_stock_table import diff, load_locations, matches, oracle, stock_events


class Streamer:
    """Sends events in small chunks on a background thread, so faults land mid-stream."""

    def __init__(
        self, cluster: Cluster, events: list[Any], chunk: int = 100, pause: float = 0.1
    ) -> None:
        self.cluster, self.events, self.chunk, self.pause = cluster, events, chunk, pause
        self.sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for i in range(0, len(self.events), self.chunk):
                self.sent += send(self.cluster, self.events[i : i + self.chunk])
                time.sleep(self.pause)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

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


def test_three_sigkills_at_random_moments_while_events_stream_in_leave_stock_exact(
    cluster: Cluster, tmp_path: Path
) -> None:
    load_locations(cluster, tmp_path)
    worker = cluster.worker().start()
    events = stock_events(3000, seed=81)
    # a few hundred re-sent events (same event_id, same topic and key): must change nothing
    rnd = random.Random(81)
    events += rnd.sample(events[:2000], 300)
    streamer = Streamer(cluster, events, chunk=100, pause=0.12).start()
    kills = 0
    for _ in range(3):
        time.sleep(rnd.uniform(0.3, 1.5))  # a random moment, mid-processing
        worker.kill()
        kills += 1
        time.sleep(rnd.uniform(0.0, 0.5))
        worker.start()
    streamer.join()
    assert kills == 3
    assert_matches(cluster, oracle(events), 180, "stock after three SIGKILLs")
    assert worker.healthy()
