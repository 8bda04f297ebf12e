"""agents/orders.py DueHeap: the timers' heap, rebuilt from a table by a scan during which the
handler may push deadlines the scan does not read."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from agents.orders import DueHeap


def test_a_rebuild_reads_the_table_and_keeps_what_was_pushed_meanwhile() -> None:
    heap = DueHeap()
    heap.push((5.0, "stale", "o0"))  # cleared since: the rebuild drops it
    table = {"s1": {"at": 30.0, "order_id": "o1"}, "s2": None, "s3": {"at": 10.0, "order_id": "o3"}}

    async def scan(_table: Any) -> AsyncIterator[tuple[str, Any]]:
        for key, value in list(table.items()):
            yield key, value
            await asyncio.sleep(0)
            if key == "s1":  # the handler sets a deadline the scan has gone past
                table["s0"] = {"at": 20.0, "order_id": "o0"}
                heap.push((20.0, "s0", "o0"))

    asyncio.run(heap.rebuild(SimpleNamespace(scan=scan), table))  # type: ignore[arg-type]
    popped = [heapq.heappop(heap.heap) for _ in range(len(heap.heap))]
    assert popped == [(10.0, "s3", "o3"), (20.0, "s0", "o0"), (30.0, "s1", "o1")]
    heap.push((1.0, "s4", "o4"))  # after the rebuild, pushes go to the heap only
    assert heap.heap == [(1.0, "s4", "o4")] and heap._meanwhile is None
