"""streams/state_check.py: the decision keep / rebuild / fail from the local marker, the local
persisted offsets and what the cluster says, with its reason (a pure function)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.state_check import (
    MARKER_FILE,
    Changelog,
    ClusterFacts,
    LocalState,
    Marker,
    StateMismatchError,
    changelog_partitions,
    decide,
    move_aside,
    policy_from_env,
    read_local,
)

APP = "stockroute-t"
STOCK = f"{APP}-location_stock-changelog"
ORDERS = f"{APP}-orders-changelog"


def cluster(
    cid: str = "A",
    *,
    stock: Changelog | None = None,
    orders: Changelog | None = None,
) -> ClusterFacts:
    default = Changelog(exists=True, token="t-stock", offsets={0: (0, 10), 1: (0, 5)})
    return ClusterFacts(
        cluster_id=cid,
        changelogs={
            STOCK: stock or default,
            ORDERS: orders or Changelog(exists=True, token="t-orders", offsets={0: (0, 0)}),
        },
    )


def local(
    cid: str | None = "A",
    *,
    persisted: dict[tuple[str, int], int | None] | None = None,
    tokens: dict[str, str | None] | None = None,
    app_id: str = APP,
) -> LocalState:
    marker = (
        None
        if cid is None
        else Marker(cid, app_id, tokens or {STOCK: "t-stock", ORDERS: "t-orders"})
    )
    offsets: dict[tuple[str, int], int | None] = {(STOCK, 0): 9, (STOCK, 1): 4}
    return LocalState(marker=marker, persisted=offsets | (persisted or {}))


def test_matching_state_is_kept() -> None:
    d = decide(local(), cluster(), app_id=APP)
    assert (d.action, d.reread_inputs) == ("keep", False)
    assert "matches" in d.reason


def test_a_state_behind_the_changelog_is_kept_faust_recovers_the_rest() -> None:
    d = decide(local(persisted={(STOCK, 0): 2, (STOCK, 1): None}), cluster(), app_id=APP)
    assert d.action == "keep"


def test_no_local_tables_is_kept_whatever_the_cluster() -> None:
    d = decide(LocalState(marker=None), cluster("B"), app_id=APP)
    assert d.action == "keep"


def test_another_cluster_id_is_rebuilt_without_rereading_inputs() -> None:
    empty = Changelog(exists=True, offsets={0: (0, 0), 1: (0, 0)})
    d = decide(local(), cluster("B", stock=empty, orders=empty), app_id=APP)
    assert d.action == "rebuild"
    assert "built on Kafka cluster A, this is cluster B" in d.reason
    assert d.changelogs_empty and not d.reread_inputs


def test_another_cluster_id_fails_under_the_fail_policy() -> None:
    d = decide(local(), cluster("B"), app_id=APP, policy="fail")
    assert d.action == "fail"
    assert "cluster A" in d.reason


def test_state_ahead_of_the_changelog_is_rebuilt_and_the_inputs_reread() -> None:
    """The ConsistencyError case: changelogs re-created (empty) on the same cluster."""
    recreated = Changelog(exists=True, token=None, offsets={0: (0, 0), 1: (0, 0)})
    d = decide(local(), cluster(stock=recreated), app_id=APP)
    assert d.action == "rebuild"
    assert "changelog of table location_stock re-created (identity record gone)" in d.reason
    assert "persisted offsets beyond the changelog's end on 2 partition(s)" in d.reason
    assert f"(e.g. {STOCK}:0 at 9, its end 0)" in d.reason
    assert d.reread_inputs


def test_a_legacy_state_without_marker_is_judged_by_its_offsets() -> None:
    assert decide(local(None), cluster(), app_id=APP).action == "keep"
    behind = Changelog(exists=True, offsets={0: (0, 3), 1: (0, 5)})
    d = decide(local(None), cluster(stock=behind), app_id=APP)
    assert d.action == "rebuild" and d.reread_inputs
    assert f"beyond the changelog's end on 1 partition(s) (e.g. {STOCK}:0 at 9, its end 3)" in (
        d.reason
    )


def test_a_recreated_and_refilled_changelog_is_caught_by_its_identity() -> None:
    """Offsets alone look fine (the new topic is longer than the state); the token is gone."""
    refilled = Changelog(exists=True, token=None, offsets={0: (0, 50), 1: (0, 50)})
    d = decide(local(), cluster(stock=refilled), app_id=APP)
    assert d.action == "rebuild"
    assert "re-created" in d.reason
    assert not d.reread_inputs  # the changelog has more than the state: nothing was lost


def test_another_token_means_another_topic() -> None:
    other = Changelog(exists=True, token="t-other", offsets={0: (0, 10), 1: (0, 5)})
    d = decide(local(), cluster(stock=other), app_id=APP)
    assert d.action == "rebuild" and "not the topic the state was built from" in d.reason


def test_a_missing_changelog_is_rebuilt() -> None:
    d = decide(local(), cluster(stock=Changelog(exists=False)), app_id=APP)
    assert d.action == "rebuild" and "changelog of table location_stock missing" in d.reason
    assert d.reread_inputs


def test_a_state_below_the_log_start_is_rebuilt() -> None:
    trimmed = Changelog(exists=True, token="t-stock", offsets={0: (20, 30), 1: (0, 5)})
    d = decide(local(), cluster(stock=trimmed), app_id=APP)
    assert d.action == "rebuild" and "below the changelog's log start on 1 partition(s)" in d.reason


def test_another_app_id_is_rebuilt() -> None:
    d = decide(local(app_id="stockroute-other"), cluster(), app_id=APP)
    assert d.action == "rebuild" and "app id stockroute-other" in d.reason


def test_reset_always_rebuilds() -> None:
    d = decide(local(), cluster(), app_id=APP, reset=True)
    assert d.action == "rebuild" and "--reset-state" in d.reason and not d.reread_inputs


def test_the_reason_is_one_line_grouped_by_finding() -> None:
    recreated = Changelog(exists=True, token=None, offsets={0: (0, 0), 1: (0, 0)})
    gone = Changelog(exists=False)
    d = decide(local(persisted={(ORDERS, 0): 3}), cluster(stock=recreated, orders=gone), app_id=APP)
    assert "\n" not in d.reason
    assert "changelog of table orders missing" in d.reason
    assert "changelog of table location_stock re-created" in d.reason


def test_marker_round_trip() -> None:
    m = Marker("A", APP, {STOCK: "x", ORDERS: None})
    assert Marker.from_json(m.to_json()) == m


def test_policy_from_env() -> None:
    assert policy_from_env({}) == "rebuild"
    assert policy_from_env({"STOCKROUTE_STATE_MISMATCH": "FAIL"}) == "fail"
    with pytest.raises(StateMismatchError, match="not one of"):
        policy_from_env({"STOCKROUTE_STATE_MISMATCH": "delete"})


def test_move_aside_renames_with_a_timestamp_and_never_deletes(tmp_path: Path) -> None:
    d = tmp_path / "worker"
    (d / "v1").mkdir(parents=True)
    (d / "v1" / "f").write_text("state")
    now = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    first = move_aside(d, now)
    (d / "g").write_text("more")
    second = move_aside(d, now)
    assert first.name == "worker.moved-20261130T120000Z"
    assert second.name == "worker.moved-20261130T120000Z-2"
    assert (first / "v1" / "f").read_text() == "state" and (second / "g").exists()
    assert d.is_dir() and not any(d.iterdir())


def test_every_table_has_its_changelog() -> None:
    topics = changelog_partitions(APP)
    assert STOCK in topics and ORDERS in topics and len(topics) == 9  # tables: topics.yaml


def test_an_unreadable_table_database_is_rebuilt() -> None:
    state = LocalState(marker=Marker("A", APP, {}), unreadable=["stock-0.db"])
    d = decide(state, cluster(), app_id=APP)
    assert d.action == "rebuild" and "unreadable table database(s): stock-0.db" in d.reason


def test_read_local_reads_faust_persisted_offsets_and_survives_a_damaged_database(
    tmp_path: Path,
) -> None:
    from faust.stores.rocksdb import Store
    from rocksdict import Options, Rdict

    tables = tmp_path / "v1" / "tables"
    tables.mkdir(parents=True)
    db = Rdict(str(tables / "location_stock-1.db"), options=Options(raw_mode=True))
    db[Store.offset_key] = b"41"
    db[b"SKU-1@ST-1"] = b"{}"
    db.close()
    (tables / "orders-0.db").mkdir()
    (tables / "orders-0.db" / "CURRENT").write_text("garbage\n")
    (tmp_path / MARKER_FILE).write_text(Marker("A", APP, {STOCK: "t"}).to_json())
    state = read_local(tmp_path, APP)
    assert state.marker == Marker("A", APP, {STOCK: "t"})
    assert state.persisted == {(STOCK, 1): 41}
    assert state.unreadable == ["orders-0.db"]


def test_a_token_counts_only_when_every_partition_carries_the_same_one() -> None:
    from aiokafka.structs import OffsetAndMetadata, TopicPartition

    from streams.state_check import TOKEN_PREFIX, _stored_tokens

    def tp(topic: str, p: int) -> TopicPartition:
        return TopicPartition(topic, p)

    committed = {
        tp("a", 0): OffsetAndMetadata(0, TOKEN_PREFIX + "x"),
        tp("a", 1): OffsetAndMetadata(0, TOKEN_PREFIX + "x"),
        tp("b", 0): OffsetAndMetadata(0, TOKEN_PREFIX + "y"),  # partition 1 has none
        tp("c", 0): OffsetAndMetadata(0, TOKEN_PREFIX + "y"),
        tp("c", 1): OffsetAndMetadata(0, TOKEN_PREFIX + "z"),  # two tokens
        tp("d", 0): OffsetAndMetadata(0, "something else"),
    }
    parts = {"a": [0, 1], "b": [0, 1], "c": [0, 1], "d": [0]}
    assert _stored_tokens(committed, parts) == {"a": "x"}
