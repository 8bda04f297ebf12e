"""Local state that does not belong to the cluster (issue 18), on real brokers.

(1) A worker's state from cluster A, the same deployment (prefix, app id, data dir) started
    against a fresh cluster B: the state is moved aside with one clear line, the worker starts
    empty without a traceback, and new input folds to the oracle of the new input only. Under
    STOCKROUTE_STATE_MISMATCH=fail it exits 2 with one line and touches nothing.
(2) The changelog topics deleted and re-created while the worker is down: the state is rebuilt,
    the inputs re-read, and the stock is exactly the oracle of every event (none lost, none
    counted twice).
(3) `--reset-state` on a healthy worker: the rebuilt tables hold exactly what they held before.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.state_check import MARKER_FILE, changelog_partitions
from tests.integration.harness import ROOT, Cluster, send, wait_for
from tests.integration.test_broker_restart import free_port_pair
from tests.integration.test_stock_table import diff, load_locations, matches, oracle, stock_events
from tooling import kafka_local


def assert_oracle(cluster: Cluster, expected: dict[str, int], what: str) -> None:
    try:
        wait_for(lambda: matches(cluster, expected), timeout=150, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: {diff(cluster, expected)}") from None


def log_since(path: Path, offset: int) -> str:
    return path.read_bytes()[offset:].decode("utf-8", "replace")


def assert_no_crash_output(text: str) -> None:
    for bad in ("Traceback", "ConsistencyError", "[ERROR]", "We experienced a crash"):
        assert bad not in text, f"{bad!r} in the worker log:\n{text[-3000:]}"


def tables(data_dir: Path) -> dict[str, dict[bytes, bytes]]:
    """Every table partition's contents on disk, Faust's own offset record left out."""
    from faust.stores.rocksdb import Store
    from rocksdict import AccessType, Options, Rdict

    out: dict[str, dict[bytes, bytes]] = {}
    for path in sorted(data_dir.rglob("*.db")):
        db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            items = db.items()  # raw mode: bytes keys and values
            out[path.name] = {k: v for k, v in items if k != Store.offset_key}  # type: ignore[misc]
        finally:
            db.close()
    return out


def moved_dirs(data_dir: Path) -> list[Path]:
    return sorted(data_dir.parent.glob(f"{data_dir.name}.moved-*"))


@pytest.fixture
def broker_b(tmp_path: Path) -> Iterator[str]:
    """A second, fresh broker: another Kafka cluster (its own cluster id)."""
    if shutil.which("java") is None:
        pytest.skip("needs java to run a local Kafka broker")
    port = free_port_pair(19692)
    data = tmp_path / "kafka-b"
    kafka_local.up(port, fresh=True, data_dir=data, quiet=True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        kafka_local.down(port, data, quiet=True)


def same_deployment_on(a: Cluster, bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """Cluster A's deployment (topic prefix, app id, workers' data dirs) on another broker."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP", bootstrap)
    b = Cluster(a.tmp)
    b.id, b.prefix, b.app_id, b.topics = a.id, a.prefix, a.app_id, a.topics
    b.env["STOCKROUTE_TOPIC_PREFIX"] = a.prefix
    b.env["STOCKROUTE_APP_ID"] = a.app_id
    return b


def test_state_from_cluster_a_against_a_fresh_cluster_b_starts_clean_and_folds_new_input(
    cluster: Cluster, broker_b: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_locations(cluster, tmp_path)
    wa = cluster.worker().start()
    first = stock_events(300, seed=181)
    send(cluster, first)
    assert_oracle(cluster, oracle(first), "stock on cluster A")
    wa.stop()
    cluster_a_id = json.loads((wa.data_dir / MARKER_FILE).read_text())["cluster_id"]
    before = tables(wa.data_dir)
    assert sum(len(t) for t in before.values()) > 0

    b = same_deployment_on(cluster, broker_b, monkeypatch)
    try:
        b.create_topics()
        load_locations(b, tmp_path)

        # operators who prefer to decide by hand: exit 2, one line, nothing touched
        strict = subprocess.run(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "worker-process",
                "--data-dir",
                str(wa.data_dir),
                "--web-port",
                "0",
                "--loglevel",
                "warning",
            ],
            env={**b.env, "STOCKROUTE_STATE_MISMATCH": "fail"},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert strict.returncode == 2, strict.stderr[-3000:]
        lines = strict.stderr.strip().splitlines()
        assert len(lines) == 1, strict.stderr[-3000:]
        assert lines[0].startswith("stockroute: local state in ")
        assert f"built on Kafka cluster {cluster_a_id}" in lines[0]
        assert "STOCKROUTE_STATE_MISMATCH=fail" in lines[0]
        assert tables(wa.data_dir) == before and not moved_dirs(wa.data_dir)

        # the default: moved aside, explained, started empty
        wb = b.worker(0)
        assert wb.data_dir == wa.data_dir
        offset = wb.log.stat().st_size
        wb.start()
        text = log_since(wb.log, offset)
        assert_no_crash_output(text)
        found = [ln for ln in text.splitlines() if "state check:" in ln]
        assert len(found) == 1, text[-3000:]
        assert f"built on Kafka cluster {cluster_a_id}" in found[0]
        assert "starting with empty tables" in found[0]
        (moved,) = moved_dirs(wa.data_dir)
        assert str(moved) in found[0]
        assert tables(moved) == before, "the foreign state is kept, not deleted"
        marker = json.loads((wb.data_dir / MARKER_FILE).read_text())
        assert marker["cluster_id"] != cluster_a_id

        second = stock_events(300, seed=182)
        send(b, second)
        assert_oracle(b, oracle(second), "stock on cluster B: the new input only")
        assert wb.proc is not None and wb.proc.poll() is None
        assert_no_crash_output(log_since(wb.log, offset))
    finally:
        b.stop()


async def _delete_changelogs(cluster: Cluster) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    names = set(changelog_partitions(cluster.app_id))
    admin = AIOKafkaAdminClient(**cluster.kafka.aiokafka_kwargs())
    await admin.start()
    try:
        await admin.delete_topics(sorted(names))
        for _ in range(120):  # bounded: deletion is asynchronous
            if not names & set(await admin.list_topics()):
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"changelogs still listed: {names & set(await admin.list_topics())}")
    finally:
        await admin.close()


def test_changelogs_recreated_while_the_worker_is_down_rebuild_exactly_without_double_counting(
    cluster: Cluster, tmp_path: Path
) -> None:
    load_locations(cluster, tmp_path)
    w = cluster.worker().start()
    first = stock_events(400, seed=281)
    send(cluster, first)
    assert_oracle(cluster, oracle(first), "stock before the changelogs are re-created")
    w.stop()

    asyncio.run(_delete_changelogs(cluster))
    deadline = time.monotonic() + 60
    while True:  # bounded: a topic just deleted may not be creatable again at once
        done = cluster.cli("topics", check=False)
        if done.returncode == 0:
            break
        assert time.monotonic() < deadline, done.stderr[-2000:]
        time.sleep(1.0)

    offset = w.log.stat().st_size
    w.start(timeout=150)
    text = log_since(w.log, offset)
    assert_no_crash_output(text)
    found = [ln for ln in text.splitlines() if "state check:" in ln]
    assert len(found) == 1, text[-3000:]
    assert "re-created" in found[0] and "re-reading the inputs" in found[0], found[0]
    assert len(moved_dirs(w.data_dir)) == 1

    second = stock_events(400, seed=282)
    send(cluster, second)
    # every event once: the first batch re-derived from the inputs, the second folded on top
    assert_oracle(cluster, oracle(first + second), "stock after the rebuild")
    assert_no_crash_output(log_since(w.log, offset))


def _health(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status, str(json.loads(r.read())["status"])
    except urllib.error.HTTPError as e:
        return e.code, str(json.loads(e.read())["status"])
    except Exception:  # noqa: BLE001 - not listening yet
        return 0, ""


def test_reset_state_on_a_healthy_worker_rebuilds_the_same_tables(
    cluster: Cluster, tmp_path: Path
) -> None:
    load_locations(cluster, tmp_path)
    w = cluster.worker().start()
    first = stock_events(500, seed=381)
    send(cluster, first)
    assert_oracle(cluster, oracle(first), "stock before the reset")
    w.stop()
    before = tables(w.data_dir)
    assert sum(len(t) for t in before.values()) > 100

    offset = w.log.stat().st_size
    w.start(wait=False, extra_args=["--reset-state"])
    seen: list[tuple[int, str]] = []

    def healthy() -> bool:
        if w.proc is not None and w.proc.poll() is not None:
            raise AssertionError(f"worker exited: {log_since(w.log, offset)[-3000:]}")
        seen.append(_health(w.port))
        return seen[-1][0] == 200

    wait_for(healthy, timeout=120, interval=0.05, what="worker healthy after --reset-state")
    # while the tables are rebuilt /health says so (then "starting" while the views catch up)
    waiting = [status for code, status in seen if code == 503]
    assert waiting[:1] == ["recovering"], f"/health while rebuilding said {sorted(set(waiting))}"
    text = log_since(w.log, offset)
    assert_no_crash_output(text)
    found = [ln for ln in text.splitlines() if "state check:" in ln]
    assert len(found) == 1 and "--reset-state" in found[0], text[-3000:]
    assert re.search(r"rebuilding the tables from the changelogs \(\d+ records\)", found[0])
    w.stop()

    (moved,) = moved_dirs(w.data_dir)
    assert tables(moved) == before, "the old state is kept aside"
    after = tables(w.data_dir)
    assert after == before, [
        (name, len(before.get(name, {})), len(after.get(name, {})))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]

    # and it goes on from there: nothing re-applied, nothing lost
    w.start()
    second = stock_events(200, seed=382)
    send(cluster, second)
    assert_oracle(cluster, oracle(first + second), "stock after the reset and more input")
    assert len(moved_dirs(w.data_dir)) == 1, "--reset-state is not repeated on a restart"
    assert os.path.isfile(w.data_dir / MARKER_FILE)
