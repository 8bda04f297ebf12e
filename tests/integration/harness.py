"""Real-broker test harness: isolated topic sets, worker processes, produce and read helpers.

Each test gets its own topic prefix and app id, so its workers never see another test's
messages or state, on one shared broker (KAFKA_BOOTSTRAP, started by scripts/with-kafka.sh).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.settings import KafkaSettings
from streams.topic_reader import read_to_end
from streams.topics import Topics, load_topics

ROOT = Path(__file__).resolve().parents[2]


def bootstrap() -> str:
    value = os.environ.get("KAFKA_BOOTSTRAP")
    if not value:
        raise RuntimeError("integration tests need a broker: run them with `make test`")
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC).isoformat()


class Cluster:
    """One isolated Stockroute deployment on the shared broker: its topics and its workers."""

    def __init__(
        self, tmp: Path, *, policy: Path | None = None, extra_env: dict[str, str] | None = None
    ):
        self.id = uuid.uuid4().hex[:10]
        self.prefix = f"t{self.id}-"
        self.app_id = f"stockroute-{self.id}"
        self.tmp = tmp
        self.topics: Topics = load_topics(prefix=self.prefix)
        self.kafka = KafkaSettings.from_env()
        self.env = {
            **os.environ,
            "STOCKROUTE_TOPIC_PREFIX": self.prefix,
            "STOCKROUTE_APP_ID": self.app_id,
            "KAFKA_BOOTSTRAP": bootstrap(),
            **(extra_env or {}),
        }
        if policy is not None:
            self.env["STOCKROUTE_ROUTING_POLICY"] = str(policy)
        self.workers: list[WorkerProcess] = []

    def name(self, handle: str) -> str:
        return getattr(self.topics, handle).name

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"stockroute {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
        return done

    def create_topics(self) -> None:
        self.cli("topics")

    def worker(self, n: int | None = None) -> WorkerProcess:
        idx = len(self.workers) if n is None else n
        w = WorkerProcess(self, idx)
        self.workers.append(w)
        return w

    def stop(self) -> None:
        for w in self.workers:
            w.kill()


class WorkerProcess:
    module = "streams.cli"  # what `python -m` runs: its `worker` command

    def __init__(self, cluster: Cluster, idx: int) -> None:
        self.cluster = cluster
        self.idx = idx
        self.data_dir = cluster.tmp / f"worker-{idx}"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cluster.tmp / f"worker-{idx}.log"

    def start(self, wait: bool = True, timeout: float = 90.0) -> WorkerProcess:
        self.port = free_port()
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.module,
                "worker",
                "--data-dir",
                str(self.data_dir),
                "--web-port",
                str(self.port),
                "--loglevel",
                "warning",
            ],
            env=self.cluster.env,
            cwd=ROOT,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_healthy(timeout)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return bool(r.status == 200)
        except Exception:  # noqa: BLE001
            return False

    def wait_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-3000:]}")
            if self.healthy():
                return
            time.sleep(0.3)
        raise TimeoutError(f"worker not healthy after {timeout}s: {self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def produce(cluster: Cluster, messages: Iterable[tuple[Any, ...]]) -> int:
    """Send (topic handle, key, value[, timestamp ms]); a bytes value is sent as it is (bad
    input); without a timestamp the producer stamps the message."""
    producer = AIOKafkaProducer(**cluster.kafka.aiokafka_kwargs(), acks="all", linger_ms=5)
    await producer.start()
    n = 0
    try:
        for handle, key, value, *stamp in messages:
            raw = value if isinstance(value, bytes) else orjson.dumps(value)
            await producer.send(
                cluster.name(handle),
                key=key.encode() if key else None,
                value=raw,
                timestamp_ms=stamp[0] if stamp else None,
            )
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n


def send(cluster: Cluster, messages: Iterable[tuple[Any, ...]]) -> int:
    return int(run(produce(cluster, messages)))


async def read_raw(cluster: Cluster, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) currently in a topic (a full topic name: changelogs too), in order."""
    return [(r.key, r.value) for r in await read_to_end(cluster.kafka, [topic])]


async def read_all(cluster: Cluster, handle: str) -> list[dict[str, Any]]:
    """Every message currently in a topic, decoded, with its key as `_key`."""
    out: list[dict[str, Any]] = []
    for key, raw in await read_raw(cluster, cluster.name(handle)):
        value = orjson.loads(raw) if raw is not None else None
        if isinstance(value, dict):
            value["_key"] = key.decode() if key else None
            out.append(value)
    return out


def messages(cluster: Cluster, handle: str) -> list[dict[str, Any]]:
    return list(run(read_all(cluster, handle)))


def latest_by_key(cluster: Cluster, handle: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for m in messages(cluster, handle):
        latest[m["_key"]] = m
    return latest


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.5, what: str = "") -> Any:
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def location(location_id: str, kind: str = "store", **kw: Any) -> dict[str, Any]:
    base = {
        "location_id": location_id,
        "kind": kind,
        "name": location_id,
        "lat": 48.85,
        "lon": 2.35,
        "ship_from_store": kind == "store",
        "click_collect": kind == "store",
        "capacity_per_hour": 30 if kind == "store" else 500,
        "max_backlog": 100 if kind == "store" else 5000,
        "safety_stock": 0,
        "active": True,
    }
    base.update(kw)
    return base
