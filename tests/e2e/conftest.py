"""End-to-end fixtures: run `scripts/demo.sh` (what `make demo` runs) isolated on the test broker.

Each launch gets its own topic prefix, Faust app id, worker and dashboard ports and data dirs
(under pytest's tmp_path), so it never touches a developer's `.data/demo` or another test's
topics. The broker is the one KAFKA_BOOTSTRAP names (`make test` starts one); without it the
tests skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import KafkaSettings
from streams.topic_reader import end_offsets
from streams.topics import Topics, load_topics

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.sh"

# A small retailer, so the opening stock folds in seconds even on a busy 2-CPU CI runner;
# --speed 120 so shipments move through the store staff within the test's minute.
E2E_SIM_ARGS = (
    "--speed 120 --warehouses 2 --stores 12 --suppliers 1 --skus 300 "
    "--web-orders-per-hour 600 --max-rate 400 --stock-wait 45"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(url: str, timeout: float = 3.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status)
    except Exception:  # noqa: BLE001 - any failure means "not answering"
        return None


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Demo:
    """One `scripts/demo.sh` process (its own process group) and what it was given."""

    def __init__(
        self,
        tmp: Path,
        duration: float | None = None,
        sim_args: str = E2E_SIM_ARGS,
        env: dict[str, str] | None = None,
    ) -> None:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
        if not bootstrap:
            pytest.skip("e2e tests need a broker (KAFKA_BOOTSTRAP): run them with `make test`")
        run = uuid.uuid4().hex[:8]
        self.prefix = f"e2e{run}-"
        self.app_id = f"stockroute-e2e-{run}"
        self.worker_port = free_port()
        self.dash_port = free_port()
        self.data_dir = tmp / "demo"
        self.url = f"http://127.0.0.1:{self.dash_port}"
        self.topics = load_topics(prefix=self.prefix)
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": bootstrap,
            "STOCKROUTE_TOPIC_PREFIX": self.prefix,
            "STOCKROUTE_APP_ID": self.app_id,
            "DEMO_FRESH": "1",
            "DEMO_DATA_DIR": str(self.data_dir),
            "DEMO_WORKER_DIR": str(tmp / "worker"),
            "DEMO_WORKER_PORT": str(self.worker_port),
            "DEMO_DASHBOARD_PORT": str(self.dash_port),
            "DEMO_ARGS": sim_args,
            "STOCKROUTE_DASHBOARD_REFRESH_S": "2",
            **(env or {}),
        }
        if duration is not None:
            self.env["DEMO_DURATION"] = str(int(duration))
        else:
            self.env.pop("DEMO_DURATION", None)
        tmp.mkdir(parents=True, exist_ok=True)
        self.out = tmp / "demo.out"
        self._outf = open(self.out, "wb")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            ["bash", str(DEMO)],
            cwd=ROOT,
            env=self.env,
            stdout=self._outf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def logs(self) -> str:
        parts = [f"--- demo.sh output\n{self.output()[-4000:]}"]
        for log in sorted(self.data_dir.glob("*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def wait_running(self, timeout: float = 240.0) -> None:
        """Until demo.sh says the whole stack is up (it waited for /health and the dashboard)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Stockroute demo is running" in self.output():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"demo.sh exited {self.proc.returncode}:\n{self.logs()}")
            time.sleep(0.5)
        raise AssertionError(f"demo not running after {timeout}s:\n{self.logs()}")

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 60.0) -> int:
        """Signal demo.sh itself (as Ctrl-C would) and wait; kill its group if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                raise AssertionError(
                    f"demo.sh did not stop in {timeout}s:\n{self.logs()}"
                ) from None
        self._outf.close()
        return int(self.proc.returncode)

    def kill(self) -> None:
        """Last resort in teardown: demo.sh itself, then any process of this demo still alive
        (its children are session leaders: they outlive demo.sh when it died first)."""
        try:
            if self.proc.poll() is None:
                self.stop(signal.SIGTERM)
        finally:
            for pid in self._leftovers():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(os.getpgid(pid), signal.SIGKILL)

    def _leftovers(self) -> list[int]:
        """Processes started for this demo: their environment carries its unique topic prefix."""
        mark = f"STOCKROUTE_TOPIC_PREFIX={self.prefix}".encode()
        found = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            pid = int(environ.parent.name)
            with contextlib.suppress(OSError):
                if pid != os.getpid() and mark in environ.read_bytes().split(b"\0"):
                    found.append(pid)
        return found

    def counts(self, handles: list[str]) -> dict[str, int]:
        """Messages currently in each topic (sum of end offsets)."""
        return asyncio.run(_end_offsets(self.topics, handles))

    def wait_counts(self, handles: list[str], timeout: float) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = self.counts(handles)
            if all(counts.values()):
                break
            if self.proc.poll() is not None:
                break
            time.sleep(2)
        return counts


async def _end_offsets(topics: Topics, handles: list[str]) -> dict[str, int]:
    names = {getattr(topics, h).name: h for h in handles}
    ends = await end_offsets(KafkaSettings.from_env(), names)
    out = dict.fromkeys(handles, 0)
    for tp, end in ends.items():
        out[names[tp.topic]] += end
    return out


@pytest.fixture
def demo_factory(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    started: list[Demo] = []

    def make(
        duration: float | None = None,
        sub: str = "run",
        sim_args: str = E2E_SIM_ARGS,
        env: dict[str, str] | None = None,
    ) -> Demo:
        d = Demo(tmp_path / sub, duration, sim_args, env)
        started.append(d)
        return d

    yield make
    for d in started:
        d.kill()
