"""Shared helpers of the benchmarks: machine facts, percentiles, Kafka clients, lag, RSS."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.settings import KafkaSettings
from streams.topic_reader import TopicReader

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def dirty() -> bool:
    """Whether tracked files that can change a figure (not prose, not results) differ from
    the commit recorded beside it."""
    try:
        out = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)*.md",
                ":(exclude)docs",
                ":(exclude)bench/results",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return bool(out.stdout.strip())
    except Exception:  # noqa: BLE001
        return False


def machine() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process and all its descendants (`stockroute worker` is a
    supervisor; the worker is its child)."""

    def own(p: int) -> float:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        return 0.0

    def tree(p: int) -> list[int]:
        kids: list[int] = []
        for task in Path(f"/proc/{p}/task").iterdir():
            kids += [int(c) for c in (task / "children").read_text().split()]
        return [p, *(q for k in kids for q in tree(k))]

    try:
        return round(sum(own(p) for p in tree(pid)), 1)
    except OSError:
        return None


def kafka() -> KafkaSettings:
    return KafkaSettings.from_env()


async def produce_raw(
    topic_msgs: Sequence[tuple[str, bytes | None, bytes]], *, linger_ms: int = 20
) -> float:
    """Send (topic, key, value) as fast as possible; returns seconds taken."""
    producer = AIOKafkaProducer(
        **kafka().aiokafka_kwargs(), acks="all", linger_ms=linger_ms, max_batch_size=262144
    )
    await producer.start()
    t0 = time.perf_counter()
    try:
        futs = []
        for topic, key, value in topic_msgs:
            futs.append(await producer.send(topic, key=key, value=value))
            if len(futs) >= 5000:
                await asyncio.gather(*futs)
                futs = []
        await asyncio.gather(*futs)
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - t0


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


async def new_consumer(*topics: str, earliest: bool = True) -> AIOKafkaConsumer:
    c = AIOKafkaConsumer(
        *topics,
        **kafka().aiokafka_kwargs(),
        group_id=None,
        auto_offset_reset="earliest" if earliest else "latest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1048576,
        fetch_max_bytes=64 * 1048576,
    )
    await c.start()
    return c


async def group_lag(group: str, topics: list[str]) -> tuple[int, dict[str, int]]:
    """Sum over `topics` of end offset - committed offset of `group` (0 committed = from 0)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**kafka().aiokafka_kwargs())
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        async with TopicReader(kafka()) as reader:
            ends = await reader.end_offsets(topics)
        per: dict[str, int] = dict.fromkeys(topics, 0)
        for tp, end in ends.items():
            meta = committed.get(tp)
            pos = meta.offset if meta is not None and meta.offset >= 0 else 0
            per[tp.topic] += max(0, end - pos)
        return sum(per.values()), per
    finally:
        await admin.close()


# ---- CPU by process (procfs; psutil is not a dependency) ----------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _tree(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue  # a thread that ended meanwhile
    return [pid, *(q for k in kids for q in _tree(k))]


def _own_cpu(pid: int) -> float:
    """utime + stime of the process and cutime + cstime (its children already reaped), s."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    f = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    # f[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17
    return sum(int(x) for x in f[11:15]) / _TICK


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by a process and all its descendants, those
    that ended included once reaped (`stockroute worker` is a supervisor; the worker is its
    child). None when the process is gone or there is no procfs."""
    try:
        total = 0.0
        for p in _tree(pid):
            try:
                total += _own_cpu(p)
            except OSError:
                continue  # a child that exited between the listing and the read
        return round(total, 3)
    except OSError:
        return None


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            # local address "ADDR:PORT" (hex), state 0A = LISTEN, inode in column 10
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def listener_pid(port: int) -> int | None:
    """The local process listening on TCP `port` (its socket among its open files), or None."""
    wanted = {f"socket:[{i}]" for i in _listening_inodes(port)}
    if not wanted:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return int(proc.name)
        except OSError:
            continue  # another user's process, or gone
    return None


def broker_pid() -> int | None:
    """The pid of the broker KAFKA_BOOTSTRAP names when it runs on this host (the java process
    listening on the bootstrap port; BENCH_BROKER_PID overrides), else None."""
    if os.environ.get("BENCH_BROKER_PID"):
        return int(os.environ["BENCH_BROKER_PID"])
    boot = os.environ.get("KAFKA_BOOTSTRAP", "").split(",")[0].strip()
    host, _, port = boot.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0") or not port.isdigit():
        return None
    return listener_pid(int(port))
