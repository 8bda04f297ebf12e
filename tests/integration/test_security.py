"""Security: SASL credentials from the environment for every client; loopback-only web ports.

A local broker with a SASL_PLAINTEXT (PLAIN) listener runs on its own port for this module.
With the right KAFKA_SASL_* settings the CLI, a worker, the dashboard's live feed and the
simulator all work; with wrong ones each is refused with a clear error. The worker's web server
binds to 127.0.0.1 unless told otherwise, and Faust's table browser is off unless enabled.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.source import LiveFeed
from streams.settings import KafkaSettings
from tests.integration.harness import ROOT, Cluster, iso, messages, send, wait_for
from tests.integration.test_broker_restart import free_port_pair
from tests.integration.test_stock_table import load_locations
from tooling import kafka_local

USER, PASSWORD = "stockroute", "stockroute-secret"


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("java") is None:
        pytest.skip("needs java to run a local Kafka broker")
    port = free_port_pair(19792)
    data = tmp_path_factory.mktemp("kafka-sasl-security")
    kafka_local.up(port, sasl=True, fresh=True, data_dir=data, user=USER, password=PASSWORD)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        kafka_local.down(port, data, quiet=True)


def use_broker(
    monkeypatch: pytest.MonkeyPatch, bootstrap: str, user: str = USER, password: str = PASSWORD
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", bootstrap)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", user)
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", password)


def simulate(cluster: Cluster) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "simulate",
            "--duration",
            "0.02",
            "--speed",
            "3600",
            "--stores",
            "2",
            "--warehouses",
            "1",
            "--suppliers",
            "1",
            "--marketplaces",
            "0",
            "--skus",
            "5",
            "--no-staff",
            "--stock-wait",
            "0",
            "--seed",
            "7",
        ],
        env=cluster.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_worker_dashboard_and_simulator_connect_with_the_right_credentials(
    sasl_broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_broker(monkeypatch, sasl_broker)
    cluster = Cluster(tmp_path)
    try:
        done = cluster.cli("topics", check=False)
        assert done.returncode == 0, done.stderr
        load_locations(cluster, tmp_path)
        worker = cluster.worker().start()
        send(
            cluster,
            [
                (
                    "supplier_feeds",
                    "ST-3",
                    {
                        "event_id": "sasl-1",
                        "occurred_at": iso(),
                        "type": "receipt",
                        "location_id": "ST-3",
                        "lines": [{"sku": "SASL", "qty": 4}],
                    },
                )
            ],
        )
        got = wait_for(
            lambda: [
                m for m in messages(cluster, "stock_availability") if m["_key"] == "SASL@ST-3"
            ],
            timeout=60,
            what="the worker to fold an event over SASL",
        )
        assert got[-1]["on_hand"] == 4
        assert worker.healthy()

        feed = LiveFeed(KafkaSettings.from_env(), retry_s=1.0, connect_timeout_s=10).start()
        try:
            assert feed.wait_until(lambda s: s.connected, timeout=30), feed.status()
        finally:
            feed.stop()

        sim = simulate(cluster)
        assert sim.returncode == 0, sim.stderr[-2000:]
        assert messages(cluster, "supplier_feeds"), "the simulator published its opening stock"
    finally:
        cluster.stop()


def test_wrong_credentials_are_refused_with_a_clear_error_everywhere(
    sasl_broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_broker(monkeypatch, sasl_broker, password="not-the-password")
    cluster = Cluster(tmp_path)
    try:
        done = cluster.cli("topics", check=False)
        assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("stockroute: ") and sasl_broker in lines[0], lines[0]
        assert "refused the credentials" in lines[0], lines[0]
        assert "Authentication failed" in lines[0], lines[0]

        monkeypatch.setenv("KAFKA_SASL_USERNAME", "intruder")
        assert cluster.cli("topics", check=False).returncode == 2

        worker = cluster.worker().start(wait=False)
        deadline = time.time() + 20
        while time.time() < deadline:
            assert not worker.healthy(), "a worker with wrong credentials became healthy"
            time.sleep(0.5)
        log = worker.log.read_text(errors="replace")
        assert "Authentication" in log or "authentication" in log, log[-2000:]
        worker.kill()

        feed = LiveFeed(KafkaSettings.from_env(), retry_s=1.0, connect_timeout_s=10).start()
        try:
            assert feed.wait_until(lambda s: s.error is not None, timeout=30)
            status = feed.status()
            assert not status.connected and status.error
        finally:
            feed.stop()

        sim = simulate(cluster)
        assert sim.returncode != 0
        assert "cannot reach Kafka" in sim.stderr, sim.stderr[-2000:]
    finally:
        cluster.stop()


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a LISTEN socket on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            addr, p = cols[1].split(":")
            if int(p, 16) == port and cols[3] == "0A":
                found.add(addr)
    return found


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: only picks the outgoing address
            addr = str(s.getsockname()[0])
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_web_ports_bind_to_loopback_and_table_browsing_is_off_unless_enabled(
    cluster: Cluster, tmp_path: Path
) -> None:
    load_locations(cluster, tmp_path)
    worker = cluster.worker().start()
    assert _listening_addresses(worker.port) == {"0100007F"}, "only 127.0.0.1 listens"
    other = _non_loopback_address()
    if other is not None:
        with pytest.raises(OSError), socket.create_connection((other, worker.port), timeout=3):
            pass
    assert _status(f"http://127.0.0.1:{worker.port}/health") == 200
    assert _status(f"http://127.0.0.1:{worker.port}/table/") == 404

    cluster.env["STOCKROUTE_TABLE_BROWSING"] = "1"
    browsing = cluster.worker().start(timeout=120)
    assert _status(f"http://127.0.0.1:{browsing.port}/table/") == 200
