"""Probes that let fault tests prove the fault happened, through public interfaces only.

A chaos test that kills a worker proves nothing if the kill landed on an idle worker (every
input already committed) or on a process that had already gone; a rebalance test proves
nothing if the second worker never owned a partition while there was input left to hand over.
These helpers read what is needed to assert that instead of assuming it:

- the consumer group's committed offsets and the topics' end offsets (aiokafka's public admin
  and consumer API; the group id of a Faust app is its app id),
- the pid of the worker process that `stockroute worker` (the supervisor in streams/cli.py)
  runs as its child (from /proc: Linux only, like the rest of the integration tier),
- a worker's /health document (assigned partitions and view positions, streams/app.py).

Offsets are keyed "topic:partition", the form /health uses for `assigned`.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.harness import Cluster, WorkerProcess, wait_for

Offsets = dict[str, int]  # "topic:partition" -> offset

# The views every worker follows (streams/app.py): routing reads them, so an order sent before
# a worker's views hold the stock and loads just published would be judged on an older world.
VIEW_HANDLES = ("locations", "stock_availability", "store_load")


def consumed_handles(cluster: Cluster) -> list[str]:
    """Every topic the worker group consumes and commits: the inputs and the internal topics."""
    return [s.handle for s in cluster.topics if s.visibility in ("input", "internal")]


def _partitions(cluster: Cluster, handles: Iterable[str]) -> list[TopicPartition]:
    specs = [getattr(cluster.topics, h) for h in handles]
    return [TopicPartition(s.name, p) for s in specs for p in range(s.partitions)]


def _key(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"


def behind(ends: Offsets, committed: Offsets) -> Offsets:
    """Per partition, how many produced messages the group had not committed (only those > 0).

    Sound when `ends` was read before `committed` (or before the group died): end offsets only
    grow, so a message counted here was produced before the committed offset was read and was
    still uncommitted when it was.
    """
    return {
        tp: end - committed.get(tp, 0) for tp, end in ends.items() if end > committed.get(tp, 0)
    }


class OffsetReader:
    """End offsets of topics and the worker group's committed offsets, on long-lived clients.

    The clients live on a private event loop thread, so a read costs one request rather than
    a connection: a measurement taken "just before a kill" is then milliseconds before it, not
    the quarter second a fresh client needs (in which a worker can commit what it had in flight).
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        try:
            self._call(self._start())
        except BaseException:
            self.close()
            raise

    def _call(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> None:
        kw = self.cluster.kafka.aiokafka_kwargs()
        self._consumer = AIOKafkaConsumer(**kw, group_id=None)
        await self._consumer.start()
        self._admin = AIOKafkaAdminClient(**kw, request_timeout_ms=10000)
        await self._admin.start()

    async def _stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()

    def close(self) -> None:
        if self._loop.is_running():
            try:
                self._call(self._stop(), timeout=30)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> OffsetReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _ends(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert self._consumer is not None
        return dict(await self._consumer.end_offsets(tps))

    async def _committed(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert self._consumer is not None and self._admin is not None
        got = await self._admin.list_consumer_group_offsets(self.cluster.app_id, partitions=tps)
        missing = [tp for tp in tps if tp not in got or got[tp].offset < 0]
        # a partition the group never committed is read from its beginning (auto_offset_reset)
        begin = await self._consumer.beginning_offsets(missing) if missing else {}
        return {tp: begin[tp] if tp in begin else got[tp].offset for tp in tps}

    def ends(self, handles: Iterable[str]) -> Offsets:
        """The offset the next message of each partition will get: everything below was produced."""
        got = self._call(self._ends(_partitions(self.cluster, handles)))
        return {_key(tp): off for tp, off in got.items()}

    def committed(self, handles: Iterable[str]) -> Offsets:
        """The worker group's committed offset of each partition (where a new owner resumes)."""
        got = self._call(self._committed(_partitions(self.cluster, handles)))
        return {_key(tp): off for tp, off in got.items()}

    def uncommitted(self, handles: Iterable[str]) -> Offsets:
        """Produced-but-uncommitted messages per partition now (ends read first, see behind)."""
        handles = list(handles)
        ends = self.ends(handles)
        return behind(ends, self.committed(handles))

    def progressed(self, handles: Iterable[str], since: Offsets) -> bool:
        """True when the group committed input beyond `since` (a restarted worker is folding)."""
        return any(off > since.get(tp, 0) for tp, off in self.committed(handles).items())

    def drained(self) -> bool:
        """True when the group has committed everything produced to the topics it consumes, and
        nothing was produced meanwhile: every effect of every input has been sent (the runtime
        flushes its producer before each commit), so nothing more is coming."""
        handles = consumed_handles(self.cluster)
        first = self.ends(handles)
        committed = self.committed(handles)
        return committed == first and self.ends(handles) == first


def end_offsets(cluster: Cluster, handles: Iterable[str]) -> Offsets:
    with OffsetReader(cluster) as offsets:
        return offsets.ends(handles)


def wait_drained(cluster: Cluster, timeout: float = 120.0) -> None:
    """Wait until the worker group has handled every message of the topics it consumes."""
    with OffsetReader(cluster) as offsets:
        wait_for(
            offsets.drained,
            timeout=timeout,
            interval=0.5,
            what="the worker group to commit every input and internal message",
        )


# ---- worker processes --------------------------------------------------------------------------


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after it
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def child_pids(parent: int) -> list[int]:
    """The live children of a process (a /proc scan: works without CONFIG_PROC_CHILDREN)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _parent_of(int(entry)) == parent and alive(int(entry)):
            out.append(int(entry))
    return sorted(out)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed, unreaped child still has a pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def worker_pid(worker: WorkerProcess) -> int | None:
    """The pid of the `worker-process` child that the worker's supervisor runs (the process
    that consumes and serves /health), or None while there is none."""
    if worker.proc is None or worker.proc.poll() is not None:
        return None
    for pid in child_pids(worker.proc.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker-process" in argv:
            return pid
    return None


def restart_reasons(worker: WorkerProcess, limit: int = 5) -> list[str]:
    """The worker log's lines that say why its process restarted itself (input gaps, a stall),
    for an assertion message: a self-restart is a defect the chaos tests must explain."""
    try:
        lines = worker.log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    why = [ln for ln in lines if "restarting" in ln or "input gap" in ln]
    return why[:limit] + why[-limit:] if len(why) > 2 * limit else why


def wait_worker_pid(worker: WorkerProcess, timeout: float = 30.0) -> int:
    return int(wait_for(lambda: worker_pid(worker), timeout=timeout, what="the worker's child"))


# ---- /health -----------------------------------------------------------------------------------


def health(worker: WorkerProcess) -> dict[str, Any] | None:
    """The worker's /health document, also while it answers 503 (starting or rebalancing)."""
    url = f"http://127.0.0.1:{worker.port}/health"
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            body = r.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except OSError:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def assigned(worker: WorkerProcess, handles: Iterable[str] | None = None) -> set[str]:
    """The "topic:partition"s the worker's consumer owns now, optionally of some topics only."""
    doc = health(worker) or {}
    owned = set(doc.get("assigned", []))
    if handles is None:
        return owned
    names = {getattr(worker.cluster.topics, h).name for h in handles}
    return {tp for tp in owned if tp.rsplit(":", 1)[0] in names}


def views_at(worker: WorkerProcess, ends: Offsets) -> bool:
    """True when the worker's views have applied every message below `ends` (view topics)."""
    views = (health(worker) or {}).get("views")
    if not isinstance(views, dict):
        return False
    for tp, end in ends.items():
        topic, partition = tp.rsplit(":", 1)
        if int(views.get(topic, {}).get(partition, 0)) < end:
            return False
    return True


def wait_views(
    cluster: Cluster,
    workers: Iterable[WorkerProcess] | None = None,
    handles: Iterable[str] = VIEW_HANDLES,
    timeout: float = 30.0,
) -> None:
    """Wait until each worker's views hold everything produced so far to the view topics:
    what a test published (and saw in the topic) is then what routing will read."""
    ends = end_offsets(cluster, handles)
    group = list(cluster.workers if workers is None else workers)
    wait_for(
        lambda: all(views_at(w, ends) for w in group),
        timeout=timeout,
        interval=0.2,
        what=f"the workers' views to reach {ends}",
    )


def holds_for(
    predicate: Callable[[], Any], seconds: float, what: str, interval: float = 0.5
) -> None:
    """Assert that a condition stays true for a whole window (for "nothing more happens")."""
    deadline = time.time() + seconds
    while True:
        assert predicate(), what
        if time.time() >= deadline:
            return
        time.sleep(interval)


# ---- faults ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    """What a SIGKILL hit: the worker process and the input still uncommitted at that moment."""

    pid: int  # the `worker-process` child that was killed
    ends: Offsets  # end offsets of the input topics, read just before the SIGKILL
    committed: Offsets  # the group's committed offsets, read after it

    @property
    def in_flight(self) -> Offsets:
        """Input produced before the kill and not committed by it: what the restarted worker
        must re-read (only the killed worker commits for the group, and a dead one commits
        nothing, so offsets read after the kill are those committed at the kill)."""
        return behind(self.ends, self.committed)


def sigkill(worker: WorkerProcess, handles: Iterable[str], offsets: OffsetReader) -> Kill:
    """SIGKILL the worker (supervisor and child) and record what the kill hit.

    Only valid when this worker is the group's sole member: the committed offsets are read after
    the kill, when no live member can move them. The killed child must be gone before this
    returns, so a later pid comparison compares two real processes.
    """
    handles = list(handles)
    pid = wait_worker_pid(worker)
    ends = offsets.ends(handles)
    worker.kill()
    wait_for(lambda: not alive(pid), timeout=10, interval=0.1, what=f"killed worker {pid} gone")
    return Kill(pid, ends, offsets.committed(handles))
