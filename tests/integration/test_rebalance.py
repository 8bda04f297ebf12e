"""Rebalance: a second worker joins mid-stream and leaves again; the stock stays exact.

Partitions (and their table state, restored from the changelogs) move to the new worker and
back; inputs processed but not committed when a partition moves are re-read by the next owner,
and the positional idempotency makes those replays no-ops.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.harness import Cluster, wait_for
from tests.integration.test_chaos import Streamer, assert_matches
from tests.integration.test_stock_table import load_locations, oracle, stock_events


def test_a_second_worker_joining_and_leaving_mid_stream_leaves_stock_exact(
    cluster: Cluster, tmp_path: Path
) -> None:
    load_locations(cluster, tmp_path)
    first = cluster.worker().start()
    events = stock_events(3000, seed=82)
    streamer = Streamer(cluster, events, chunk=100, pause=0.15).start()
    time.sleep(1.0)
    second = cluster.worker().start(timeout=120)
    # both healthy means the group settled with partitions on both workers
    wait_for(lambda: first.healthy() and second.healthy(), timeout=90, what="both workers")
    time.sleep(1.5)
    second.stop()  # SIGTERM: a clean leave, its partitions go back to the first worker
    streamer.join()
    assert_matches(cluster, oracle(events), 180, "stock after a worker joined and left")
    wait_for(first.healthy, timeout=60, what="first worker healthy after the rebalance")
