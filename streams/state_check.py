"""Does the worker's local state belong to the Kafka cluster and changelogs it connects to?

A worker's RocksDB tables are a cache of the table changelogs in Kafka. When the two no longer
match (the broker's data was wiped, the cluster was restored from a backup or replaced, the
changelog topics were deleted and re-created, an app id was reused against another cluster)
Faust's table recovery finds a persisted offset beyond the changelog's end and the worker dies
with `ConsistencyError`; worse, a state that is foreign but not ahead would be recovered on top
of without a word. This module runs before Faust opens the tables (`stockroute worker-process`
calls `prepare` first) and decides:

- keep: the state was built from these changelogs on this cluster;
- rebuild: it was not (or `--reset-state`): the data dir is moved aside (renamed with a
  timestamp, never deleted) and Faust rebuilds the tables from the changelogs into an empty one.
  When the changelogs lost records the state had (re-created topics on the same cluster), the
  consumer group's input offsets are also set back to the beginning of the inputs, so the
  tables are re-derived from what Kafka still holds: the committed input offsets described a
  state that no longer exists anywhere but on this disk. The folds are idempotent
  (docs/reliability.md), so re-reading counts nothing twice.
- fail: a mismatch while STOCKROUTE_STATE_MISMATCH=fail: one line, exit code 2.

What identifies the cluster and the changelogs (public aiokafka APIs only):

- the Kafka cluster id (the admin client's `describe_cluster`);
- per changelog topic an identity token: a random id this module commits, with the offset
  metadata of a dedicated consumer group (`<app id>-state-identity`), on every partition of
  the topic. Kafka drops a group's offsets for a deleted topic, so a re-created topic has no
  token. (Kafka's topic id would be the natural identity, but aiokafka's metadata request is too
  old to carry it.) The token is committed again at every start, so it does not expire while
  the worker is restarted at least once per `offsets.retention.minutes` (7 days by default); an
  expired token only costs a rebuild from the changelogs;
- per changelog partition, the persisted offset of the local store (read from the RocksDB files
  before Faust opens them) against the partition's log-start and end offsets.

What was recorded is kept in `stockroute-state.json` in the data dir (the marker).

`decide` is a pure function of the marker, the local offsets and the cluster facts, unit tested
in tests/unit/test_state_check.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from streams.settings import KafkaSettings, WorkerSettings
from streams.topics import TOPICS

log = logging.getLogger(__name__)

MARKER_FILE = "stockroute-state.json"
POLICY_ENV = "STOCKROUTE_STATE_MISMATCH"
POLICIES = ("rebuild", "fail")
TOKEN_PREFIX = "stockroute-state-id "
CONNECT_TIMEOUT_S = 15.0
#: a stopped worker may still be a member of its group until its session times out (Faust's
#: default session timeout is 60 s): resetting the group's offsets is retried that long
GROUP_EMPTY_TIMEOUT_S = 75.0

Action = Literal["keep", "rebuild", "fail"]
T = TypeVar("T")

_rebuilding = False


class StateMismatchError(Exception):
    """A mismatch under STOCKROUTE_STATE_MISMATCH=fail (or a bad setting): one line, exit 2."""


def rebuilding() -> bool:
    """True in a worker process that moved its local state aside at start (for /health)."""
    return _rebuilding


# ---- facts and the decision (pure) ------------------------------------------------------------


@dataclass(frozen=True)
class Marker:
    """What the local state was last checked against."""

    cluster_id: str
    app_id: str
    changelogs: dict[str, str | None] = field(default_factory=dict)  # topic -> identity token

    def to_json(self) -> str:
        return json.dumps(
            {
                "cluster_id": self.cluster_id,
                "app_id": self.app_id,
                "changelogs": self.changelogs,
                "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Marker:
        raw = json.loads(text)
        return cls(
            cluster_id=str(raw["cluster_id"]),
            app_id=str(raw["app_id"]),
            changelogs={str(k): v for k, v in dict(raw.get("changelogs", {})).items()},
        )


@dataclass(frozen=True)
class Changelog:
    """One changelog topic as the cluster has it."""

    exists: bool
    token: str | None = None  # its identity token, None when none is recorded
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)  # p -> (log start, end)

    @property
    def empty(self) -> bool:
        return all(begin >= end for begin, end in self.offsets.values())


@dataclass(frozen=True)
class ClusterFacts:
    cluster_id: str
    changelogs: dict[str, Changelog]


@dataclass(frozen=True)
class LocalState:
    """The worker's data dir: its marker (None when absent) and each table partition's
    persisted changelog offset (None: a table database without one)."""

    marker: Marker | None
    persisted: dict[tuple[str, int], int | None] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)  # databases RocksDB could not open

    @property
    def has_tables(self) -> bool:
        return bool(self.persisted or self.unreadable)


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    #: the changelogs lost records the local state had, on the same cluster: the group's input
    #: offsets go back to the beginning so the tables are derived again from the inputs
    reread_inputs: bool = False
    #: every changelog is missing or empty: the rebuilt tables start empty
    changelogs_empty: bool = False


def decide(
    local: LocalState,
    cluster: ClusterFacts,
    *,
    app_id: str,
    reset: bool = False,
    policy: str = "rebuild",
) -> Decision:
    """keep / rebuild / fail, with the reason, from what is on disk and what the cluster says."""
    empty = all(not c.exists or c.empty for c in cluster.changelogs.values())
    if reset:
        return Decision("rebuild", "--reset-state asked for a rebuild", changelogs_empty=empty)
    if not local.has_tables:
        return Decision("keep", "no local table state yet", changelogs_empty=empty)
    marker = local.marker
    findings: list[str] = []
    same_cluster = marker is None or marker.cluster_id == cluster.cluster_id
    if not same_cluster and marker is not None:
        findings.append(
            f"it was built on Kafka cluster {marker.cluster_id}, this is cluster "
            f"{cluster.cluster_id}"
        )
    if marker is not None and marker.app_id != app_id:
        findings.append(f"it was built for app id {marker.app_id}, this worker is {app_id}")
    missing: list[str] = []
    recreated: list[str] = []
    other: list[str] = []
    ahead: list[str] = []
    below: list[str] = []
    if same_cluster and marker is not None:
        for topic, token in sorted(marker.changelogs.items()):
            c = cluster.changelogs.get(topic)
            if token is None or c is None:
                continue
            if not c.exists:
                missing.append(topic)
            elif c.token is None:
                recreated.append(topic)
            elif c.token != token:
                other.append(topic)
    if same_cluster:
        for (topic, partition), offset in sorted(local.persisted.items()):
            c = cluster.changelogs.get(topic)
            if offset is None or c is None:
                continue  # c None: not a changelog of this app (the app id finding says so)
            if not c.exists or partition not in c.offsets:
                if topic not in missing:
                    missing.append(topic)
                continue
            begin, end = c.offsets[partition]
            if offset >= end:
                ahead.append(f"{topic}:{partition} at {offset}, its end {end}")
            elif offset + 1 < begin:
                below.append(f"{topic}:{partition} at {offset}, its log start {begin}")
    if missing:
        findings.append(f"changelog{_names(missing, app_id)} missing")
    if recreated:
        findings.append(f"changelog{_names(recreated, app_id)} re-created (identity record gone)")
    if other:
        findings.append(f"changelog{_names(other, app_id)} not the topic the state was built from")
    if ahead:
        findings.append(
            f"persisted offsets beyond the changelog's end on {len(ahead)} partition(s) "
            f"(e.g. {ahead[0]})"
        )
    if below:
        findings.append(
            f"persisted offsets below the changelog's log start on {len(below)} partition(s) "
            f"(e.g. {below[0]})"
        )
    if local.unreadable:
        findings.append(f"unreadable table database(s): {', '.join(local.unreadable[:3])}")
    if not findings:
        return Decision("keep", "the local state matches this cluster and its changelogs")
    shown = "; ".join(findings)
    lost = bool(missing or ahead)
    if policy == "fail":
        return Decision("fail", shown, changelogs_empty=empty)
    return Decision("rebuild", shown, reread_inputs=same_cluster and lost, changelogs_empty=empty)


def _names(topics: list[str], app_id: str) -> str:
    """`stockroute-stock-changelog` -> `stock`: the table names, comma separated."""
    head, tail = f"{app_id}-", "-changelog"
    names = [
        t[len(head) : -len(tail)] if t.startswith(head) and t.endswith(tail) else t for t in topics
    ]
    plural = "s" if len(names) > 1 else ""
    return f"{plural} of table{plural} {', '.join(names)}"


# ---- the local side ---------------------------------------------------------------------------


def changelog_partitions(app_id: str) -> dict[str, int]:
    """Each table's changelog topic, as Faust names it, and its partition count."""
    return {
        f"{app_id}-{name}-changelog": getattr(TOPICS, table.source).partitions
        for name, table in TOPICS.tables.items()
    }


def table_databases(data_dir: Path, app_id: str) -> dict[tuple[str, int], Path]:
    """The RocksDB database of every table partition in the data dir (Faust names them
    `<table>-<partition>.db`, under the data dir's tables folder)."""
    found: dict[tuple[str, int], Path] = {}
    if not data_dir.is_dir():
        return found
    for name, table in TOPICS.tables.items():
        topic = f"{app_id}-{name}-changelog"
        for p in range(getattr(TOPICS, table.source).partitions):
            for path in data_dir.rglob(f"{name}-{p}.db"):
                if path.is_dir():
                    found[(topic, p)] = path
    return found


def persisted_offset(path: Path) -> int | None:
    """The changelog offset Faust recorded in one table partition's database, read-only and
    before Faust opens it (the key is Faust's own `Store.offset_key`)."""
    from faust.stores.rocksdb import Store
    from rocksdict import AccessType, Options, Rdict

    db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
    try:
        raw = db.get(Store.offset_key)
    finally:
        db.close()
    return None if raw is None else int(raw)


def read_local(data_dir: Path, app_id: str) -> LocalState:
    marker_path = data_dir / MARKER_FILE
    marker: Marker | None = None
    if marker_path.is_file():
        try:
            marker = Marker.from_json(marker_path.read_text())
        except (ValueError, KeyError, TypeError):
            log.warning("state check: unreadable %s, ignored", marker_path)
    persisted: dict[tuple[str, int], int | None] = {}
    unreadable: list[str] = []
    for tp, path in table_databases(data_dir, app_id).items():
        try:
            persisted[tp] = persisted_offset(path)
        except Exception as exc:  # noqa: BLE001 - a damaged database is rebuilt, not a crash
            log.warning("state check: cannot read %s (%s: %s)", path, type(exc).__name__, exc)
            unreadable.append(path.name)
    return LocalState(marker=marker, persisted=persisted, unreadable=unreadable)


def move_aside(data_dir: Path, now: datetime | None = None) -> Path:
    """Rename the data dir to `<dir>.moved-<UTC timestamp>` (never deleted) and make it anew."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = data_dir.with_name(f"{data_dir.name}.moved-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = data_dir.with_name(f"{data_dir.name}.moved-{stamp}-{n}")
    shutil.move(str(data_dir), str(target))
    data_dir.mkdir(parents=True, exist_ok=True)
    return target


# ---- the cluster side (public aiokafka API) ---------------------------------------------------


def identity_group(app_id: str) -> str:
    return f"{app_id}-state-identity"


async def _admin(kafka: KafkaSettings) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs(), request_timeout_ms=10000)
    try:
        await asyncio.wait_for(admin.start(), timeout=CONNECT_TIMEOUT_S)
    except BaseException:
        await admin.close()
        raise
    return admin


async def cluster_facts(kafka: KafkaSettings, app_id: str) -> ClusterFacts:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    topics = changelog_partitions(app_id)
    admin = await _admin(kafka)
    try:
        cluster_id = str((await admin.describe_cluster())["cluster_id"])
        existing = set(await admin.list_topics()) & set(topics)
        partitions: dict[str, list[int]] = {}
        if existing:
            for d in await admin.describe_topics(sorted(existing)):
                partitions[d["topic"]] = sorted(p["partition"] for p in d["partitions"])
        committed = await admin.list_consumer_group_offsets(identity_group(app_id))
    finally:
        await admin.close()
    tps = [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
    begin: dict[Any, int] = {}
    end: dict[Any, int] = {}
    if tps:
        consumer = AIOKafkaConsumer(**kafka.aiokafka_kwargs(), enable_auto_commit=False)
        await consumer.start()
        try:
            begin = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
    stored = _stored_tokens(committed, partitions)
    changelogs: dict[str, Changelog] = {}
    for topic in topics:
        if topic not in partitions:
            changelogs[topic] = Changelog(exists=False)
            continue
        changelogs[topic] = Changelog(
            exists=True,
            token=stored.get(topic),
            offsets={
                p: (begin[TopicPartition(topic, p)], end[TopicPartition(topic, p)])
                for p in partitions[topic]
            },
        )
    return ClusterFacts(cluster_id=cluster_id, changelogs=changelogs)


def _stored_tokens(committed: dict[Any, Any], partitions: dict[str, list[int]]) -> dict[str, str]:
    """topic -> the identity token committed on every one of its partitions (a topic whose
    partitions carry none, or different ones, has none)."""
    found: dict[str, set[str | None]] = {}
    for tp, meta in committed.items():
        text = meta.metadata or ""
        found.setdefault(tp.topic, set()).add(
            text[len(TOKEN_PREFIX) :] if text.startswith(TOKEN_PREFIX) else None
        )
    out: dict[str, str] = {}
    for topic, tokens in found.items():
        covered = sum(1 for tp in committed if tp.topic == topic) == len(partitions.get(topic, ()))
        token = next(iter(tokens)) if covered and len(tokens) == 1 else None
        if token:
            out[topic] = token
    return out


async def _commit(kafka: KafkaSettings, group: str, offsets: dict[Any, tuple[int, str]]) -> None:
    """Commit offsets (with metadata) for a group this process is not a member of; the broker
    accepts that only while the group has no live member."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import OffsetAndMetadata

    consumer = AIOKafkaConsumer(**kafka.aiokafka_kwargs(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await asyncio.wait_for(
            consumer.commit({tp: OffsetAndMetadata(o, m) for tp, (o, m) in offsets.items()}),
            timeout=CONNECT_TIMEOUT_S,
        )
    finally:
        await consumer.stop()


async def record_identities(
    kafka: KafkaSettings, app_id: str, cluster: ClusterFacts
) -> dict[str, str | None]:
    """Commit each existing changelog's identity token (a new one where it has none; the same
    again where it has one, so it does not expire) and return topic -> token."""
    from aiokafka.structs import TopicPartition

    tokens: dict[str, str | None] = {}
    offsets: dict[Any, tuple[int, str]] = {}
    for topic, c in sorted(cluster.changelogs.items()):
        if not c.exists:
            tokens[topic] = None
            continue
        token = c.token or uuid.uuid4().hex
        tokens[topic] = token
        for p in c.offsets:
            offsets[TopicPartition(topic, p)] = (0, TOKEN_PREFIX + token)
    if offsets:
        await _commit(kafka, identity_group(app_id), offsets)
    new = [t for t, c in cluster.changelogs.items() if c.exists and c.token is None]
    if new:  # two workers starting at once may both have made one: the one stored wins
        admin = await _admin(kafka)
        try:
            committed = await admin.list_consumer_group_offsets(identity_group(app_id))
        finally:
            await admin.close()
        partitions = {t: sorted(cluster.changelogs[t].offsets) for t in new}
        stored = _stored_tokens(committed, partitions)
        tokens.update({t: stored[t] for t in new if t in stored})
    return tokens


async def reread_inputs(kafka: KafkaSettings, app_id: str) -> int:
    """Set every input offset the app's consumer group committed back to the beginning of its
    partition; returns how many partitions. Retried while a stopped worker is still a member."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    admin = await _admin(kafka)
    try:
        committed = await admin.list_consumer_group_offsets(app_id)
    finally:
        await admin.close()
    changelogs = set(changelog_partitions(app_id))
    tps = [tp for tp, meta in committed.items() if tp.topic not in changelogs and meta.offset > 0]
    if not tps:
        return 0
    consumer = AIOKafkaConsumer(**kafka.aiokafka_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        begin = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    deadline = asyncio.get_running_loop().time() + GROUP_EMPTY_TIMEOUT_S
    # aiokafka logs each refused commit as an error; the refusal is expected while a stopped
    # worker's membership lingers, and the outcome is reported below in one line
    aio_log = logging.getLogger("aiokafka")
    level = aio_log.level
    aio_log.setLevel(logging.CRITICAL)
    try:
        while True:
            try:
                await _commit(kafka, app_id, {tp: (begin[tp], "") for tp in tps})
                return len(tps)
            except (KafkaError, TimeoutError) as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise KafkaError(
                        f"the group still has live members after {GROUP_EMPTY_TIMEOUT_S:.0f}s "
                        f"({type(exc).__name__})"
                    ) from None
                await asyncio.sleep(2.0)
    finally:
        aio_log.setLevel(level)


async def _retrying(call: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """`call()` again while it fails with a retriable Kafka error (a new cluster has no group
    coordinator for a few seconds), for at most `timeout` seconds."""
    from aiokafka.errors import KafkaError

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await call()
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or loop.time() > deadline:
                raise
            await asyncio.sleep(1.0)


# ---- the start-up step ------------------------------------------------------------------------


def policy_from_env(env: dict[str, str] | None = None) -> str:
    value = (os.environ if env is None else env).get(POLICY_ENV, "rebuild").strip().lower()
    if value not in POLICIES:
        raise StateMismatchError(f"{POLICY_ENV}={value!r} is not one of {', '.join(POLICIES)}")
    return value


def prepare(
    settings: WorkerSettings, *, reset: bool = False, loglevel: str = "info"
) -> Decision | None:
    """Check the worker's data dir against the cluster before Faust opens it, and act on it.

    Returns the decision (None when Kafka could not be reached: the check is skipped, with a
    warning, and the worker starts as before so Faust reports the connection problem). Raises
    StateMismatchError for a mismatch under STOCKROUTE_STATE_MISMATCH=fail.
    """
    policy = policy_from_env()
    if not log.handlers:  # Faust sets up logging only later: one line of ours, in its format
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("[%(asctime)s] [%(process)s] [%(levelname)s] %(message)s")
        )
        log.addHandler(handler)
        log.propagate = False
        log.setLevel(loglevel.upper())
    return asyncio.run(_prepare(settings, reset=reset, policy=policy))


async def _prepare(settings: WorkerSettings, *, reset: bool, policy: str) -> Decision | None:
    from aiokafka.errors import KafkaError

    global _rebuilding
    data_dir, kafka, app_id = settings.data_dir, settings.kafka, settings.app_id
    local = read_local(data_dir, app_id)
    try:
        cluster = await _retrying(lambda: cluster_facts(kafka, app_id))
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning(
            "state check skipped: Kafka at %s not reachable (%s: %s)",
            kafka.bootstrap,
            type(exc).__name__,
            exc,
        )
        return None
    decision = decide(local, cluster, app_id=app_id, reset=reset, policy=policy)
    if decision.action == "fail":
        raise StateMismatchError(
            f"local state in {data_dir} does not belong to the Kafka cluster at "
            f"{kafka.bootstrap}: {decision.reason}; not starting ({POLICY_ENV}=fail): move "
            f"{data_dir} aside or start with `stockroute worker --reset-state`"
        )
    reread = 0
    if decision.reread_inputs:  # first: should it fail, nothing was moved and the next start
        try:  # finds the same mismatch again
            reread = await _retrying(lambda: reread_inputs(kafka, app_id))
        except (KafkaError, OSError, TimeoutError) as exc:
            raise StateMismatchError(
                f"local state in {data_dir} does not belong to the Kafka cluster at "
                f"{kafka.bootstrap}: {decision.reason}; the inputs must be re-read but the "
                f"offsets of consumer group {app_id} could not be reset ({exc}): stop every "
                f"worker of app id {app_id} and start again"
            ) from None
    moved: Path | None = None
    if decision.action == "rebuild" and local.has_tables:
        moved = move_aside(data_dir)
        _rebuilding = True
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        tokens = await _retrying(lambda: record_identities(kafka, app_id, cluster))
    except (KafkaError, OSError, TimeoutError) as exc:  # checked again at the next start
        log.warning("state check: changelog identities not recorded (%r)", exc)
        tokens = {t: c.token for t, c in cluster.changelogs.items()}
    (data_dir / MARKER_FILE).write_text(Marker(cluster.cluster_id, app_id, tokens).to_json())
    if moved is not None:
        records = sum(
            end - begin for c in cluster.changelogs.values() for begin, end in c.offsets.values()
        )
        if decision.reread_inputs:
            then = (
                f"rebuilding the tables from the changelogs and re-reading the inputs of "
                f"{reread} partitions from their beginning (the changelogs lost records the "
                f"state had)"
            )
        elif decision.changelogs_empty:
            then = "the changelogs are empty (a new cluster?): starting with empty tables"
        else:
            then = f"rebuilding the tables from the changelogs ({records} records)"
        found = (
            f"--reset-state: local state in {data_dir}"
            if reset
            else f"local state in {data_dir} does not belong to the Kafka cluster at "
            f"{kafka.bootstrap}: {decision.reason}"
        )
        log.warning("state check: %s; moved it to %s; %s", found, moved, then)
    else:
        log.info("state check: %s (cluster %s)", decision.reason, cluster.cluster_id)
    return decision
