"""`make demo` runs again after its broker's data was wiped (issue 18).

The demo starts its own local broker (no KAFKA_BOOTSTRAP) on a private port, runs for a few
seconds and stops it; the broker's data dir is then removed, as after re-creating a Docker volume
or moving to a new cluster, and the demo is run again with the same worker data dir. Before
streams/state_check.py the worker died at start with Faust's ConsistencyError; now it moves its
state aside, says so in one line (echoed by demo.sh) and starts empty.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import DEMO, ROOT, free_port
from tests.integration.test_broker_restart import free_port_pair
from tooling import kafka_local

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_port() -> Iterator[int]:
    if shutil.which("java") is None:
        pytest.skip("needs java to run a local Kafka broker")
    port = free_port_pair(19792)
    try:
        yield port
    finally:
        kafka_local.down(port, quiet=True)
        shutil.rmtree(kafka_local.default_data_dir(port), ignore_errors=True)


def run_demo(env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        ["bash", str(DEMO)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.timeout(900)
def test_make_demo_runs_again_after_its_broker_was_wiped(demo_port: int, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
    env |= {
        "DEMO_KAFKA_PORT": str(demo_port),
        "DEMO_DATA_DIR": str(tmp_path / "demo"),
        "DEMO_WORKER_DIR": str(tmp_path / "worker"),
        "DEMO_WORKER_PORT": str(free_port()),
        "DEMO_DASHBOARD_PORT": str(free_port()),
        "DEMO_DURATION": "5",
        "DEMO_ARGS": "--speed 120 --warehouses 2 --stores 6 --suppliers 1 --skus 100 "
        "--max-rate 200",
        "STOCKROUTE_TOPIC_PREFIX": "wipe-",
        "STOCKROUTE_APP_ID": "stockroute-wipe",
    }
    rc, out = run_demo(env)
    assert rc == 0, out[-4000:]
    assert not kafka_local.status(demo_port).running, "the demo stops the broker it started"
    assert any((tmp_path / "worker").rglob("*.db")), "the first run left worker state"

    shutil.rmtree(kafka_local.default_data_dir(demo_port))  # the broker's data is gone

    rc, out = run_demo(env)
    worker_log = (tmp_path / "demo" / "worker.log").read_text(errors="replace")
    assert rc == 0, out[-4000:] + "\n--- worker.log\n" + worker_log[-4000:]
    assert "worker healthy" in out
    (line,) = [ln for ln in out.splitlines() if "state check:" in ln]
    assert "does not belong to the Kafka cluster" in line and "starting with empty" in line
    for bad in ("Traceback", "ConsistencyError", "[ERROR]"):
        assert bad not in worker_log, worker_log[-4000:]
    assert list(tmp_path.glob("worker.moved-*")), "the old state was moved aside, not deleted"
