"""Rebalance: a second worker joins mid-stream and leaves again; the stock stays exact.

Partitions (and their table state, restored from the changelogs) move to the new worker and
back; inputs processed but not committed when a partition moves are re-read by the next owner,
and the positional idempotency makes those replays no-ops.

The test proves the rebalance it relies on: the second worker's /health must list input
partitions that still had uncommitted input while it owned them (committed offsets of the
group behind the end offsets), the second worker must commit input of its own before it
leaves, and the first worker must own every input partition again afterwards.
"""

from __future__ import annotations

from pathlib import Path

from tests.integration import probes
from tests.integration.harness import Cluster, wait_for
from tests.integration.test_chaos import Streamer, assert_matches
from tests.integration.test_stock_table import load_locations, oracle, stock_events

INPUTS = ("pos_sales", "supplier_feeds")


def test_a_second_worker_joining_and_leaving_mid_stream_leaves_stock_exact(
    cluster: Cluster, tmp_path: Path
) -> None:
    load_locations(cluster, tmp_path)
    first = cluster.worker().start()
    events = stock_events(3000, seed=82)
    # the last third waits for the second worker, so input streams while it owns partitions
    streamer = Streamer(cluster, events, chunk=100, pause=0.15, holds=(2000,)).start()
    with probes.OffsetReader(cluster) as offsets:
        wait_for(
            lambda: offsets.progressed(INPUTS, {}),
            timeout=60,
            what="the first worker to commit input (mid-stream)",
        )
        second = cluster.worker().start(timeout=120)
        wait_for(
            lambda: probes.assigned(second, INPUTS),
            timeout=90,
            what="the second worker to own input partitions",
        )
        streamer.release()

        def handed_over() -> tuple[set[str], probes.Offsets, probes.Offsets] | None:
            """(owned, ends, committed) when the second worker owned input partitions with
            uncommitted input: /health before the end offsets, the committed offsets after
            them, /health again last, so the partitions were owned when the committed offsets
            were read (end offsets only grow)."""
            owned = probes.assigned(second, INPUTS)
            ends = offsets.ends(INPUTS)
            committed = offsets.committed(INPUTS)
            owned &= probes.assigned(second, INPUTS)
            lag = {tp for tp in probes.behind(ends, committed) if tp in owned}
            return (owned, ends, committed) if lag else None

        owned, ends, committed = wait_for(
            handed_over,
            timeout=90,
            interval=0.2,
            what="the second worker to own input partitions while input on them is uncommitted",
        )
        print(f"second owned {sorted(owned)} with {probes.behind(ends, committed)} uncommitted")
        wait_for(
            lambda: any(
                now > committed[tp] for tp, now in offsets.committed(INPUTS).items() if tp in owned
            ),
            timeout=90,
            interval=0.3,
            what="the second worker to commit input on its partitions",
        )
        second.stop()  # SIGTERM: a clean leave, its partitions go back to the first worker
        every = set(ends)
        wait_for(
            lambda: probes.assigned(first, INPUTS) == every,
            timeout=90,
            what="the first worker to own every input partition again",
        )
    streamer.join()
    assert_matches(cluster, oracle(events), 180, "stock after a worker joined and left")
    wait_for(first.healthy, timeout=60, what="first worker healthy after the rebalance")
