"""The `stockroute` command: local broker, topics, location data, worker, simulator, dashboard."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from streams.settings import KafkaSettings, WorkerSettings
from streams.topics import TOPICS, AnyTopic, Topic

ROOT = Path(__file__).resolve().parent.parent


class CliError(Exception):
    """A one-line, user-facing failure."""


async def _admin(kafka: KafkaSettings):  # type: ignore[no-untyped-def]
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs(), request_timeout_ms=10000)
    # aiokafka logs the real cause (e.g. SaslAuthenticationFailed) and raises only "Unable to
    # bootstrap": capture its log while connecting, so the user gets one line with the cause.
    aio_log, seen = logging.getLogger("aiokafka"), _Captured()
    aio_log.addHandler(seen)
    propagate, aio_log.propagate = aio_log.propagate, False
    try:
        await asyncio.wait_for(admin.start(), timeout=15)
    except (KafkaError, OSError, TimeoutError) as exc:
        await admin.close()
        auth = seen.find("AuthenticationFailed")
        if auth is not None:
            raise CliError(
                f"Kafka at {kafka.bootstrap} refused the credentials ({auth}); "
                "check KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME "
                "and KAFKA_SASL_PASSWORD"
            ) from None
        raise CliError(
            f"Kafka unreachable at {kafka.bootstrap} ({type(exc).__name__}: {exc}); "
            "start it with `stockroute kafka up` or set KAFKA_BOOTSTRAP"
        ) from None
    finally:
        aio_log.removeHandler(seen)
        aio_log.propagate = propagate
    return admin


class _Captured(logging.Handler):
    """Keeps the messages of a logger for a while (one line each), instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(" ".join(record.getMessage().split()))

    def find(self, needle: str) -> str | None:
        for line in self.lines:
            if needle in line:
                return line.split(": ", 1)[-1] if "]" not in line else line.split("] ", 1)[-1]
        return None


def changelog_specs(app_id: str) -> list[AnyTopic]:
    """The table changelogs of topics.yaml for this app id, as Faust names them.

    Created up front rather than left to Faust: a worker that creates them itself races its own
    metadata refresh and can find a changelog "with 0 partitions" and crash the agent.
    """
    specs: list[AnyTopic] = []
    for name, table in TOPICS.tables.items():
        source = getattr(TOPICS, table.source)
        specs.append(
            Topic(
                handle=f"{name}_changelog",
                name=f"{app_id}-{name}-changelog",
                key=table.key,
                partitions=source.partitions,
                cleanup="compact",
                schema="",
                visibility="internal",
                code="",
                model_name="table value",
                model=dict,
            )
        )
    return specs


async def ensure_topics(kafka: KafkaSettings, *, verbose: bool = True) -> list[str]:
    """Create every topic of topics.yaml (and the table changelogs) that is missing; verify
    the partition counts of those that exist."""
    from aiokafka.admin import NewTopic

    all_specs = [*TOPICS, *changelog_specs(WorkerSettings.from_env().app_id)]
    admin = await _admin(kafka)
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in all_specs if s.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        s.name, s.partitions, TOPICS.replication_factor, topic_configs=s.configs
                    )
                    for s in missing
                ]
            )
        problems: list[str] = []
        for _ in range(40):  # a topic just created may not show all its partitions at once
            described = await admin.describe_topics([s.name for s in all_specs])
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            problems = [
                f"{s.name} has {counts.get(s.name, 0)} partitions, topics.yaml says {s.partitions}"
                for s in all_specs
                if counts.get(s.name, 0) != s.partitions
            ]
            if not problems:
                break
            await asyncio.sleep(0.25)
        if problems:
            raise CliError("; ".join(problems))
        if verbose:
            for s in all_specs:
                state = "created" if s in missing else "ok"
                print(f"{s.name:32} {s.partitions:>3} partitions  {s.cleanup:8} {state}")
        return [s.name for s in missing]
    finally:
        await admin.close()


async def load_locations(kafka: KafkaSettings, path: Path) -> int:
    """Validate every location first, then publish them all (nothing half-loaded)."""
    from aiokafka import AIOKafkaProducer
    from pydantic import ValidationError

    from streams.codecs import describe_validation_error
    from streams.records import Location

    text = path.read_text()
    rows = (
        json.loads(text)
        if text.lstrip().startswith("[")
        else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    locations = []
    for i, row in enumerate(rows):
        try:
            locations.append(Location.model_validate(row))
        except ValidationError as exc:
            raise CliError(f"{path}: location #{i}: {describe_validation_error(exc)}") from None
    admin = await _admin(kafka)
    await admin.close()
    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs(), acks="all")
    await producer.start()
    try:
        for loc in locations:
            await producer.send(
                TOPICS.locations.name,
                key=loc.location_id.encode(),
                value=TOPICS.locations.encode(loc),
            )
        await producer.flush()
    finally:
        await producer.stop()
    return len(locations)


def write_schemas(root: Path) -> list[Path]:
    """schemas/ from the typed registry: one JSON Schema per topic, internal ones included."""
    from streams.topics import schemas

    written = []
    for rel, text in schemas().items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        written.append(p)
    return written


def run_worker(args: argparse.Namespace) -> int:
    import faust

    from streams.worker import create_worker

    settings = WorkerSettings.from_env(
        data_dir=Path(args.data_dir) if args.data_dir else None,
        web_port=args.web_port,
        web_host=args.web_host,
    )
    rt = create_worker(settings)
    worker = faust.Worker(rt.app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # simulate and dashboard own their options: hand them everything after the sub-command
    if argv[:1] == ["simulate"]:
        from sim.runner import main as sim_main

        return sim_main(argv[1:])
    if argv[:1] == ["dashboard"]:
        from dashboard.serve import main as dash_main

        return dash_main(argv[1:])
    p = argparse.ArgumentParser(prog="stockroute", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    k = sub.add_parser("kafka", help="the local single-node KRaft broker")
    k.add_argument("action", choices=["up", "down", "status"])
    k.add_argument("--port", type=int, default=9092)
    k.add_argument("--sasl", action="store_true", help="SASL_PLAINTEXT (PLAIN) listener")
    k.add_argument("--fresh", action="store_true", help="wipe the broker's data first")

    sub.add_parser("topics", help="create or verify every topic of topics.yaml")

    lo = sub.add_parser("locations", help="location master data")
    lo.add_argument("action", choices=["load"])
    lo.add_argument("file", type=Path, help="JSON array or JSON lines of Location records")

    for name, text in (
        ("worker", "run a Faust worker (restarted in place when it asks to)"),
        ("worker-process", "one worker process, unsupervised (used by `worker`)"),
    ):
        w = sub.add_parser(name, help=text)
        w.add_argument("--web-port", type=int, default=None)
        w.add_argument("--web-host", default=None)
        w.add_argument("--data-dir", default=None)
        w.add_argument("--loglevel", default="info")

    sub.add_parser("schemas", help="regenerate schemas/*.json from streams/records.py")
    up = sub.add_parser(
        "upgrade",
        help="move stock from the SKU-partitioned layout (before 2026-11) to the location "
        "owner's (workers stopped, after `stockroute topics`; tooling/upgrade.py)",
    )
    up.add_argument("--dry-run", action="store_true", help="count what would move, write nothing")
    sub.add_parser("simulate", help="run the simulated retailer (see `simulate --help`)")
    sub.add_parser("dashboard", help="run the planner dashboard (see `dashboard --help`)")

    args = p.parse_args(argv)
    kafka = KafkaSettings.from_env()
    try:
        if args.cmd == "kafka":
            from tooling import kafka_local

            try:
                if args.action == "up":
                    kafka_local.up(port=args.port, sasl=args.sasl, fresh=args.fresh)
                elif args.action == "down":
                    kafka_local.down(port=args.port)
                else:
                    return 0 if kafka_local.status(port=args.port).running else 3
            except kafka_local.KafkaLocalError as exc:
                raise CliError(str(exc)) from None
            return 0
        if args.cmd == "topics":
            asyncio.run(ensure_topics(kafka))
            return 0
        if args.cmd == "locations":
            n = asyncio.run(load_locations(kafka, args.file))
            print(f"published {n} locations to {TOPICS.locations.name}")
            return 0
        if args.cmd == "worker":
            from streams.supervisor import supervise_worker

            return supervise_worker(argv[1:])
        if args.cmd == "worker-process":
            return run_worker(args)
        if args.cmd == "upgrade":
            from tooling.upgrade import UpgradeRefused, upgrade

            try:
                app_id = WorkerSettings.from_env().app_id
                report = asyncio.run(upgrade(kafka, app_id, dry_run=args.dry_run))
            except UpgradeRefused as exc:
                raise CliError(str(exc)) from None
            print(("dry run, nothing written: " if args.dry_run else "") + str(report))
            return 0
        if args.cmd == "schemas":
            for path in write_schemas(ROOT):
                print(path.relative_to(ROOT))
            return 0
    except CliError as exc:
        print(f"stockroute: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
