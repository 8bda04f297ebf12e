"""Broker restart mid-stream: the worker reconnects and finishes with the exact oracle state.

This test runs its own single-node broker (own port and data dir) so stopping it does not
disturb other tests; the Cluster is pointed at it through KAFKA_BOOTSTRAP.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import probes
from tests.integration.harness import Cluster, send, wait_for
from tests.integration.test_chaos import assert_matches
from tests.integration.test_stock_table import load_locations, oracle, stock_events
from tooling import kafka_local

pytestmark = pytest.mark.slow


def free_port_pair(preferred: int) -> int:
    """A broker needs port and port+1 (its controller)."""

    def free(port: int) -> bool:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
            return True

    for port in range(preferred, preferred + 400, 2):
        if free(port) and free(port + 1):
            return port
    raise RuntimeError("no free port pair for a test broker")


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    if shutil.which("java") is None:
        pytest.skip("needs java to run a local Kafka broker")
    port = free_port_pair(19592)
    data = tmp_path / "kafka"
    kafka_local.up(port, fresh=True, data_dir=data, quiet=True)
    try:
        yield port, data
    finally:
        kafka_local.down(port, data, quiet=True)


def test_the_worker_reconnects_after_a_broker_restart_and_finishes_exact(
    own_broker: tuple[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, data = own_broker
    monkeypatch.setenv("KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    cluster = Cluster(tmp_path / "cluster")
    (tmp_path / "cluster").mkdir()
    try:
        cluster.create_topics()
        load_locations(cluster, tmp_path)
        worker = cluster.worker().start()
        events = stock_events(2500, seed=83)
        send(cluster, events[:1200])
        inputs = ("pos_sales", "supplier_feeds")
        with probes.OffsetReader(cluster) as offsets:  # closed before the broker goes
            wait_for(
                lambda: offsets.progressed(inputs, {}),
                timeout=90,
                interval=0.2,
                what="part of the input folded and committed",
            )
            left = sum(offsets.uncommitted(inputs).values())
        print(f"broker stopped with {left} input messages uncommitted")
        kafka_local.down(port, data, quiet=True)
        time.sleep(3.0)  # the outage's length (the worker's requests fail meanwhile)
        assert worker.proc is not None and worker.proc.poll() is None, "worker died"
        kafka_local.up(port, data_dir=data, quiet=True)  # same data: topics and offsets kept
        send(cluster, events[1200:])
        assert_matches(cluster, oracle(events), 240, "stock after a broker restart")
        assert worker.proc.poll() is None, "the worker must survive, not be restarted"
        wait_for(worker.healthy, timeout=60, what="worker healthy after the broker restart")
    finally:
        cluster.stop()
