"""Isolated Stockroute deployments on a shared broker: their topics and worker processes.

Each Cluster gets its own topic prefix and app id, so its workers never see another cluster's
messages or state on the same broker (KAFKA_BOOTSTRAP). The integration tests and the
benchmarks both launch workers through it; it lives outside tests/ because bench/ may not
import tests/.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

from streams.settings import KafkaSettings
from streams.topics import Topics, load_topics

__all__ = ["ROOT", "Cluster", "WorkerProcess", "bootstrap", "free_port"]

ROOT = Path(__file__).resolve().parents[1]


def bootstrap() -> str:
    """The broker the cluster runs on: KAFKA_BOOTSTRAP, which `make test` and `make bench` set."""
    value = os.environ.get("KAFKA_BOOTSTRAP")
    if not value:
        raise RuntimeError("integration tests need a broker: run them with `make test`")
    return value


def free_port() -> int:
    """A TCP port free on loopback now (each worker needs its own web port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    """One `python -m <module> worker` process of a Cluster, in its own session (killable as a
    group), with its own data dir, web port and log file."""

    module = "streams.cli"  # what `python -m` runs
    command = "worker"  # its command: the supervised worker

    def __init__(self, cluster: Cluster, idx: int) -> None:
        self.cluster = cluster
        self.idx = idx
        self.data_dir = cluster.tmp / f"worker-{idx}"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cluster.tmp / f"worker-{idx}.log"

    def start(
        self, wait: bool = True, timeout: float = 90.0, extra_args: Sequence[str] = ()
    ) -> WorkerProcess:
        self.port = free_port()
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.module,
                self.command,
                "--data-dir",
                str(self.data_dir),
                "--web-port",
                str(self.port),
                "--loglevel",
                os.environ.get("STOCKROUTE_TEST_WORKER_LOGLEVEL", "warning"),
                *extra_args,
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
